package policy

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"syscall"
)

// maxSymlinks is the kernel's MAXSYMLINKS: a lookup that would follow a 41st
// symbolic link fails with ELOOP, however the links are nested
// (path_resolution(7), symlink(7); fs/namei.c).
const maxSymlinks = 40

var (
	// ErrOutsideWorkspace is what a [ResolveError] wraps when a path, or a
	// step of its lookup, leaves the workspace.
	ErrOutsideWorkspace = errors.New("leads outside the workspace")
	// ErrNotSupported is what Resolve fails with on systems other than
	// Linux, where the proxy cannot judge paths by the file system.
	ErrNotSupported = errors.New("resolving paths by the file system is supported on Linux only")
)

// Resolved is where a path argument really leads.
type Resolved struct {
	Rel    string   // workspace-relative, cleaned, "." for the workspace itself
	Exists bool     // the final component exists (after following links)
	Dir    bool     // ... and is a directory
	Links  uint64   // hard-link count of an existing non-directory (st_nlink), else 0
	Via    []string // the workspace-relative symlinks followed, in order (for the ledger/reason)
}

// ResolveError says why a path argument cannot be followed inside the
// workspace. Resolve returns it as a *ResolveError, never wrapped.
type ResolveError struct {
	Path   string // the path argument as given
	Reason string // what went wrong, to follow "path <Path> "
	Link   string // the workspace-relative link whose target went wrong, or ""
	// Err is ErrOutsideWorkspace, syscall.ELOOP, syscall.ENOTDIR,
	// syscall.ENOENT, syscall.EINVAL (a workspace or base the caller should
	// not have passed), or the error of a failed lstat or readlink
	// (ErrNotSupported off Linux); match it with errors.Is.
	Err error
}

func (e *ResolveError) Error() string {
	if e.Link == "" {
		return fmt.Sprintf("path %q %s", e.Path, e.Reason)
	}
	return fmt.Sprintf("path %q %s through the link %q", e.Path, e.Reason, e.Link)
}

func (e *ResolveError) Unwrap() error { return e.Err }

// Resolve returns where p leads inside the workspace ws (an absolute, clean
// path with no symlinks in it; the caller guarantees that). p is absolute
// (must lie within ws) or relative to base (an absolute directory inside
// ws). p has passed the lexical checks (no "..", no NUL, valid UTF-8), but
// symlink targets may contain "..", absolute paths and anything else.
//
// Resolve looks the path up as the kernel would (path_resolution(7)), one
// component at a time, with lstat and readlink only: it never opens
// anything and never hands the kernel a path with a link in it, so a proxy
// running as root cannot be made to touch a file through it. A symbolic link, the
// last component included, is replaced by its target (symlink(7)): a
// relative target is read against the directory holding the link, an
// absolute one from "/"; ".." in a target goes to the parent of the real
// directory reached so far. The result follows the last link, as open(2)
// and the server's realpath do; an operation on the link itself (rename's
// source, unlink) is judged by where the link points, which can only deny
// more.
//
// The lookup fails with a *ResolveError when
//
//   - any step leaves ws: a ".." above ws, or a link whose target is
//     outside ws, even one whose later steps would come back in
//     ([ErrOutsideWorkspace]; Link names the link);
//   - it would follow more than 40 links (ELOOP, as MAXSYMLINKS);
//   - it would look a name up in a non-directory (ENOTDIR: the server
//     would fail too);
//   - a link target walks into a directory that does not exist and back
//     out with ".." (ENOENT: the kernel stops at the missing directory);
//   - lstat or readlink fails for another reason (the error is wrapped).
//
// A component that does not exist ends the lookup: the remaining
// components are taken as names to be created, and Exists is false. A
// write through a dangling link thus resolves to the link's target, which
// is what open(2) with O_CREAT would create. A trailing slash requires a
// directory, as in path_resolution(7). Links is the hard-link count of an
// existing non-directory: a file with other names is one the policy cannot
// see all of. Rel and Via hold names as the file system has them: a name
// that came from a link target may be one the lexical checks would have
// refused (any bytes but NUL and '/'). A workspace that does not exist
// holds only paths to be created; one that is not a directory fails.
//
// Resolve changes nothing, and while the tree holds still it looks at
// nothing outside ws: every lstat and readlink names a path below ws made
// of components it has already seen to be real directories, and a link
// target outside ws is rejected before it is looked at.
//
// # The race that remains
//
// The answer describes the file system at the time of the call. Between
// Resolve and the server's use of the path, the server (or anyone with
// write access to the workspace) can replace a component with a symbolic
// link, and the server then reaches wherever that link leads; while
// Resolve runs, such a swap makes its answer wrong, and its later lstat and
// readlink calls read metadata where the swapped link points. Resolve stays
// bounded: it never loops (at most 40 links, each target read once), never
// panics, and never opens or follows anything. What bounds the race is the
// kernel sandbox: the server's Landlock rules still limit what it can reach
// at all. The policy's distinctions inside the workspace (write(src/*)
// denied, docs/ allowed) are not enforced by the kernel; they hold against
// a client that cannot change the tree between calls, not against a server
// that races its own proxy.
func Resolve(ws, base, p string) (Resolved, error) {
	return resolveIn(hostLookup{}, ws, base, p)
}

// entryKind is what lstat found at a path, as far as a lookup cares.
type entryKind uint8

const (
	entryOther   entryKind = iota // a regular file, device, FIFO, socket
	entryDir                      // a directory
	entrySymlink                  // a symbolic link
)

// entry is the part of an lstat answer that Resolve uses.
type entry struct {
	kind  entryKind
	nlink uint64 // st_nlink
}

// lookup is the file system as Resolve sees it: lstat and readlink of one
// absolute path, nothing else. hostLookup is the real one
// (resolve_linux.go); tests substitute others to record or to lie.
// Errors are bare errnos where the system gives one.
type lookup interface {
	lstat(name string) (entry, error)
	readlink(name string) (string, error)
	// entries lists the entries of the directory dir, for the names that
	// are only canonically equivalent to one asked for (see equivalent).
	entries(dir string) ([]string, error)
}

// resolveStep is one path component waiting to be looked up, with the link
// whose target it came from ("" for the argument itself and its base).
type resolveStep struct {
	name string
	link string
}

// resolveWalk is the state of one lookup.
type resolveWalk struct {
	fsys lookup
	ws   string
	arg  string // the argument, for errors
	// dirs are the components below ws of the directory reached so far:
	// each was seen to be a real directory, or lies below missing.
	dirs []string
	// todo holds the components still to look up, the next one last.
	todo []resolveStep
	// missing is the workspace-relative path of the first component that
	// did not exist, "" while every component so far exists.
	missing string
	via     []string
}

// resolveIn is Resolve on the file system fsys.
func resolveIn(fsys lookup, ws, base, p string) (Resolved, error) {
	w := &resolveWalk{fsys: fsys, ws: ws, arg: p}
	if ws == "" || !path.IsAbs(ws) || path.Clean(ws) != ws {
		return w.fail(fmt.Sprintf("cannot be judged: the workspace %q is not an absolute clean path", ws), "", syscall.EINVAL)
	}
	var start []string
	switch {
	case p == "":
		return w.fail("is empty", "", syscall.ENOENT)
	case path.IsAbs(p):
		rest, ok := beneathWorkspace(ws, p)
		if !ok {
			return w.fail("is outside the workspace", "", ErrOutsideWorkspace)
		}
		start = rest
	case !path.IsAbs(base):
		return w.fail(fmt.Sprintf("cannot be judged: the base %q is not absolute", base), "", syscall.EINVAL)
	default:
		rest, ok := beneathWorkspace(ws, base)
		if !ok {
			return w.fail(fmt.Sprintf("cannot be judged: the base %q is outside the workspace", base), "", ErrOutsideWorkspace)
		}
		start = append(rest, strings.Split(p, "/")...)
	}
	// The caller vouches for ws; one lstat makes a workspace replaced by a
	// file or a link fail closed instead of resolving against whatever is
	// there. A workspace that does not exist has nothing in it: every path
	// is one to be created, judged by its names alone (as the proxy's tests
	// judge calls for a workspace elsewhere).
	switch e, err := fsys.lstat(ws); {
	case errors.Is(err, syscall.ENOENT):
		w.missing = "."
	case err != nil:
		return w.failLookup("lstat", ".", "", err)
	case e.kind != entryDir:
		return w.fail(fmt.Sprintf("cannot be judged: the workspace %q is not a directory", ws), "", syscall.ENOTDIR)
	}
	w.push(start, "")
	return w.run()
}

// beneathWorkspace returns the components of the absolute path abs that
// follow ws, and whether abs starts with ws. Every step before ws must
// be a plain name of ws: a ".." there could leave ws on the way, and the
// directories above ws are no business of the proxy. Empty and "."
// components are skipped as the kernel skips them. What follows ws is
// returned as it is, "..", "." and "" included, for the walk to take.
func beneathWorkspace(ws, abs string) ([]string, bool) {
	if !path.IsAbs(abs) {
		return nil, false
	}
	comps := strings.Split(abs[1:], "/")
	i := 0
	for _, want := range strings.Split(ws[1:], "/") {
		if want == "" { // ws is "/"
			break
		}
		for i < len(comps) && (comps[i] == "" || comps[i] == ".") {
			i++
		}
		if i == len(comps) || comps[i] != want {
			return nil, false
		}
		i++
	}
	return comps[i:], true
}

// push queues comps to be looked up next, first component first.
func (w *resolveWalk) push(comps []string, link string) {
	for i := len(comps) - 1; i >= 0; i-- {
		w.todo = append(w.todo, resolveStep{name: comps[i], link: link})
	}
}

// run looks the queued components up, one at a time.
func (w *resolveWalk) run() (Resolved, error) {
	for len(w.todo) > 0 {
		s := w.todo[len(w.todo)-1]
		w.todo = w.todo[:len(w.todo)-1]
		switch s.name {
		case "", ".":
			// The directory reached so far, which is a directory (or one
			// that is to be created).
			continue
		case "..":
			if w.missing != "" {
				return w.fail(fmt.Sprintf("goes into %q, which does not exist, and back out with \"..\"", w.missing), s.link, syscall.ENOENT)
			}
			if len(w.dirs) == 0 {
				if w.ws == "/" {
					continue // ".." in the root is the root (path_resolution(7))
				}
				return w.fail("leads outside the workspace", s.link, ErrOutsideWorkspace)
			}
			w.dirs = w.dirs[:len(w.dirs)-1]
			continue
		}
		rel := w.rel(s.name)
		if w.missing != "" {
			w.dirs = append(w.dirs, s.name)
			continue
		}
		abs := w.abs(rel)
		e, err := w.fsys.lstat(abs)
		switch {
		case errors.Is(err, syscall.ENOENT):
			alt, found, err := w.equivalent(s)
			if err != nil {
				return Resolved{}, err
			}
			if found {
				// Looked up again under the name that exists.
				w.todo = append(w.todo, resolveStep{name: alt, link: s.link})
				continue
			}
			w.missing = rel
			w.dirs = append(w.dirs, s.name)
			continue
		case err != nil:
			return w.failLookup("lstat", rel, s.link, err)
		}
		switch e.kind {
		case entryDir:
			w.dirs = append(w.dirs, s.name)
		case entrySymlink:
			if err := w.follow(rel, abs); err != nil {
				return Resolved{}, err
			}
		default:
			if len(w.todo) > 0 {
				// Even a trailing "/" or "." asks for a directory.
				next := w.todo[len(w.todo)-1]
				return w.fail(fmt.Sprintf("looks a name up in %q, which is not a directory", rel), next.link, syscall.ENOTDIR)
			}
			return Resolved{Rel: rel, Exists: true, Links: e.nlink, Via: w.via}, nil
		}
	}
	rel := "."
	if len(w.dirs) > 0 {
		rel = strings.Join(w.dirs, "/")
	}
	if w.missing != "" {
		return Resolved{Rel: rel, Via: w.via}, nil
	}
	return Resolved{Rel: rel, Exists: true, Dir: true, Via: w.via}, nil
}

// equivalent finds the entry that a server maps a missing name to:
// server-filesystem, asked for a name that does not exist, looks for an
// entry of the directory whose NFC form is the name's NFC form, and uses it
// (resolveUnicodeEquivalentPath in its lib.js), refusing when there is more
// than one. So does the proxy, or it would judge a new file where the
// server writes into an existing directory or through an existing link
// spelled another way ("e\u0301" for "\u00e9"). found is false when no other
// entry is equivalent: the name is new.
func (w *resolveWalk) equivalent(s resolveStep) (alt string, found bool, err error) {
	want := nfc(s.name)
	dir := w.ws
	if len(w.dirs) > 0 {
		dir = w.abs(strings.Join(w.dirs, "/"))
	}
	entries, lerr := w.fsys.entries(dir)
	if lerr != nil {
		_, err := w.failLookup("read the directory of", w.rel(s.name), s.link, lerr)
		return "", false, err
	}
	var matches []string
	for _, e := range entries {
		if e != s.name && nfc(e) == want {
			matches = append(matches, e)
		}
	}
	switch len(matches) {
	case 0:
		return "", false, nil
	case 1:
		return matches[0], true, nil
	}
	_, err = w.fail(fmt.Sprintf("matches %d names that differ only in Unicode normalisation (%q); the server refuses it too",
		len(matches), matches), s.link, syscall.EINVAL)
	return "", false, err
}

// follow replaces the link at rel by its target (symlink(7)).
func (w *resolveWalk) follow(rel, abs string) error {
	if len(w.via) == maxSymlinks {
		_, err := w.fail(fmt.Sprintf("follows more than %d symbolic links", maxSymlinks), rel, syscall.ELOOP)
		return err
	}
	target, err := w.fsys.readlink(abs)
	if err != nil {
		_, err = w.failLookup("readlink", rel, rel, err)
		return err
	}
	w.via = append(w.via, rel)
	switch {
	case target == "":
		// symlink(2) refuses empty targets; a file system that has one
		// makes lookups through it fail with ENOENT.
		_, err := w.fail("meets a symbolic link with an empty target", rel, syscall.ENOENT)
		return err
	case path.IsAbs(target):
		rest, ok := beneathWorkspace(w.ws, target)
		if !ok {
			_, err := w.fail("leads outside the workspace", rel, ErrOutsideWorkspace)
			return err
		}
		w.dirs = w.dirs[:0]
		w.push(rest, rel)
	default:
		w.push(strings.Split(target, "/"), rel)
	}
	return nil
}

// rel is the workspace-relative path of name in the directory reached so
// far.
func (w *resolveWalk) rel(name string) string {
	if len(w.dirs) == 0 {
		return name
	}
	return strings.Join(w.dirs, "/") + "/" + name
}

// abs is the absolute path of the workspace-relative rel.
func (w *resolveWalk) abs(rel string) string {
	if rel == "." {
		return w.ws
	}
	if w.ws == "/" {
		return "/" + rel
	}
	return w.ws + "/" + rel
}

func (w *resolveWalk) fail(reason, link string, err error) (Resolved, error) {
	return Resolved{}, &ResolveError{Path: w.arg, Reason: reason, Link: link, Err: err}
}

// failLookup reports a failed lstat or readlink of rel, naming the system
// call and keeping its error for errors.Is.
func (w *resolveWalk) failLookup(op, rel, link string, err error) (Resolved, error) {
	return w.fail(fmt.Sprintf("cannot be resolved: %s %q: %v", op, rel, err), link,
		fmt.Errorf("%s %q: %w", op, w.abs(rel), err))
}
