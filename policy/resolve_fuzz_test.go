//go:build linux

package policy

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// A fuzz tree is a list of records separated by ';', each one operation:
//
//	d P N         mkdir N in directory P
//	f P N         create the file N in P
//	h P N F       hard link N in P to the F-th file made so far
//	r P N TARGET  symlink N in P to TARGET, as it is
//	a P N TARGET  symlink to WS/TARGET (absolute, into the workspace)
//	t P N TARGET  symlink to ROOT/TARGET (absolute, ROOT holds ws and out)
//	e P N TARGET  symlink to /TARGET (absolute, anywhere)
//
// P and F are digits, or any byte taken modulo the count; N is a letter or
// digit, or any byte mapped onto "abcd". Directory 0 is the workspace
// ROOT/ws, directory 1 is ROOT/out beside it; each d adds one. Any other
// operation byte is mapped onto the ones above, and operations that fail
// (a name taken) are skipped, so every input is a tree. In a TARGET, a
// byte that is not printable ASCII stands for one of fuzzTargetTokens, so
// that random mutations make targets with "..", absolute parts and names
// of the tree often.
const (
	fuzzOps      = "dfhrate"
	fuzzNames    = "abcd"
	fuzzRecords  = 32
	fuzzTargetSz = 64
)

var (
	fuzzTargetTokens = []string{"..", "../", "/", "./", "a/", "b", "ws/", "out/", "../ws/", "../../", "a", "//"}
	fuzzPathTokens   = []string{"a/", "b/", "c", "d/", "./", "/", "a", "b", "//"}
)

// fuzzExpand replaces every byte of s outside printable ASCII by a token.
func fuzzExpand(s string, tokens []string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c > ' ' && c < 0x7f {
			b.WriteByte(c)
		} else {
			b.WriteString(tokens[int(c)%len(tokens)])
		}
	}
	return b.String()
}

// fuzzTree is a workspace built from a fuzz input.
type fuzzTree struct {
	root, ws string
	wsDirs   []string // the real directories in the workspace, ws first
}

func buildFuzzTree(t *testing.T, spec string) fuzzTree {
	t.Helper()
	root := resolveRoot(t)
	ft := fuzzTree{root: root, ws: filepath.Join(root, "ws")}
	dirs := []string{ft.ws, filepath.Join(root, "out")}
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ft.wsDirs = dirs[:1:1]
	if err := os.WriteFile(filepath.Join(root, "out/secret"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	files := []string{filepath.Join(root, "out/secret")}
	records := strings.Split(spec, ";")
	if len(records) > fuzzRecords {
		records = records[:fuzzRecords]
	}
	for _, rec := range records {
		if len(rec) < 3 {
			continue
		}
		op := rec[0]
		if strings.IndexByte(fuzzOps, op) < 0 {
			op = fuzzOps[int(op)%len(fuzzOps)]
		}
		parent := dirs[fuzzIndex(rec[1], len(dirs))]
		name := filepath.Join(parent, fuzzName(rec[2]))
		rest := fuzzExpand(rec[3:], fuzzTargetTokens)
		if len(rest) > fuzzTargetSz {
			rest = rest[:fuzzTargetSz]
		}
		var err error
		switch op {
		case 'd':
			if err = os.Mkdir(name, 0o755); err == nil {
				dirs = append(dirs, name)
				if strings.HasPrefix(name, ft.ws+"/") {
					ft.wsDirs = append(ft.wsDirs, name)
				}
			}
		case 'f':
			if err = os.WriteFile(name, nil, 0o644); err == nil {
				files = append(files, name)
			}
		case 'h':
			if len(rest) > 0 {
				err = os.Link(files[fuzzIndex(rest[0], len(files))], name)
			}
		case 'r':
			err = os.Symlink(rest, name)
		case 'a':
			err = os.Symlink(ft.ws+"/"+rest, name)
		case 't':
			err = os.Symlink(root+"/"+rest, name)
		case 'e':
			err = os.Symlink("/"+rest, name)
		}
		_ = err // a name taken, a NUL in a target: the tree goes without
	}
	return ft
}

func fuzzIndex(b byte, n int) int {
	if '0' <= b && b <= '9' {
		return int(b-'0') % n
	}
	return int(b) % n
}

func fuzzName(b byte) string {
	if 'a' <= b && b <= 'z' || '0' <= b && b <= '9' {
		return string(b)
	}
	return string(fuzzNames[int(b)%len(fuzzNames)])
}

// fuzzPath makes a path argument that passes the lexical checks out of
// any string: no NUL, no ".." segment, not empty; a leading "/" makes it
// absolute inside the workspace. Bytes outside printable ASCII stand for
// fuzzPathTokens.
func fuzzPath(ws, s string) string {
	s = fuzzExpand(s, fuzzPathTokens)
	if len(s) > 128 {
		s = s[:128]
	}
	segs := strings.Split(s, "/")
	for i, seg := range segs {
		if seg == ".." {
			segs[i] = "."
		}
	}
	s = strings.Join(segs, "/")
	switch {
	case s == "":
		return "."
	case strings.HasPrefix(s, "/"):
		return ws + s
	}
	return s
}

// kernelResult is where the kernel itself leads a path: the real path of an
// O_PATH descriptor (open(2)), with its stat, or the error.
type kernelResult struct {
	real string
	dir  bool
	nl   uint64
	err  error
}

// kernelOpen looks name up with open(2), or openat2(2) from dirfd when how
// is set, and reports where it leads.
//
// An ELOOP is asked again: the kernel can fail a lookup of fewer than 40
// links with ELOOP when a mount anywhere on the machine makes its RCU walk
// start over in ref-walk mode, since the links the first attempt followed
// stay counted (fs/namei.c sets total_link_count once per lookup, in
// set_nameidata, not per attempt). FuzzResolve found this on a machine
// where other tests were mounting; a loop of tmpfs mounts in another mount
// namespace reproduces it for a 29-link path about once in 4,000 opens.
func kernelOpen(dirfd int, name string, how *unix.OpenHow) kernelResult {
	var fd int
	var err error
	for range 10 {
		if how == nil {
			fd, err = unix.Open(name, unix.O_PATH|unix.O_CLOEXEC, 0)
		} else {
			fd, err = unix.Openat2(dirfd, name, how)
		}
		if err != unix.ELOOP {
			break
		}
	}
	if err != nil {
		return kernelResult{err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return kernelResult{err: fmt.Errorf("fstat: %w", err)}
	}
	real, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return kernelResult{err: fmt.Errorf("readlink /proc/self/fd: %w", err)}
	}
	return kernelResult{real: real, dir: st.Mode&unix.S_IFMT == unix.S_IFDIR, nl: uint64(st.Nlink)}
}

// FuzzResolve builds a random tree of directories, files, hard links and
// symbolic links (relative, absolute, with ".."; into the workspace, out of
// it, out and back, nowhere), resolves a random path in it, and holds the
// answer against the kernel's own lookups:
//
//   - open(2) with O_PATH: where the path really leads, or the errno;
//   - openat2(2) with RESOLVE_BENEATH from the workspace, which fails with
//     EXDEV when any step leaves it (or a link is absolute);
//   - filepath.EvalSymlinks.
func FuzzResolve(f *testing.F) {
	for _, seed := range [][2]string{
		{"d0s;f2m;d0d;r3l../s", "d/l/m"},          // docs/srclink -> ../src
		{"d0s;f2m;d0d;r3l../s", "d/l/new"},        // a new file through it
		{"d0s;f2m;d0d;r3k../s/m", "d/k"},          // docs/mainlink.c -> ../src/main.c
		{"d0s;f2m;d0d;a3ks", "/d/k/m"},            // absolute target into the workspace
		{"d0s;f2m;r0xy;r0yz;r0zs", "x/m"},         // a chain
		{"r0xy;r0yx", "x/a"},                      // a loop
		{"r0x./x", "x"},                           // a link to itself
		{"d0d;e2eetc", "d/e/passwd"},              // out, to /etc
		{"e0r", "r/etc"},                          // out, to /
		{"d0s;f2m;r0o../ws/s", "o/m"},             // out and back, relative
		{"d0s;f2m;t0ows/../ws/s", "o/m"},          // out and back, absolute
		{"d0s;f2m;r1b../ws/s;r0o../out/b", "o/m"}, // out, and a link there back in
		{"d0s;r0x./s/new", "x"},                   // dangling: the target is created
		{"r0xnew/dir/", "x/"},                     // dangling into a new directory
		{"d0s;r0xs/nothere/../..", "x"},           // into a missing directory and back
		{"f0a;h0b1", "b"},                         // a hard link (file 1 is a)
		{"d0s;f2m", "s/m/"},                       // a trailing slash on a file
		{"d0s;f2m;r0ls/", "l/m"},                  // a target with a trailing slash
		{"d0s;r2u..;r2v../..", "s/u/s/v"},         // ".." in targets
		{"d0s;d2t;r3u../../s/t", "s/t/u/t/."},     // ".." through directories
		{"", "."},
		{"", "/"},
		{"d0s;f2m;r0l.", strings.Repeat("l/", 40) + "s/m"}, // 40 links: allowed
		{"d0s;f2m;r0l.", strings.Repeat("l/", 41) + "s/m"}, // 41 links: ELOOP
	} {
		f.Add(seed[0], seed[1], uint8(0))
	}
	f.Add("d0s;d0d;r3l../s;f2m", "l/m", uint8(1)) // relative to the base d
	f.Fuzz(func(t *testing.T, spec, arg string, baseIdx uint8) {
		ft := buildFuzzTree(t, spec)
		ws := ft.ws
		base := ft.wsDirs[int(baseIdx)%len(ft.wsDirs)]
		p := fuzzPath(ws, arg)
		full := p
		if !path.IsAbs(p) {
			full = base + "/" + p
		}

		rec := &recordingLookup{lookup: hostLookup{}}
		r, err := resolveIn(rec, ws, base, p)
		checkTouched(t, ws, p, rec.names)
		r2, err2 := Resolve(ws, base, p)
		if fmt.Sprint(r, err) != fmt.Sprint(r2, err2) {
			t.Fatalf("Resolve(%q) = %+v, %v, then %+v, %v", p, r, err, r2, err2)
		}
		var re *ResolveError
		if err != nil {
			if re, _ = err.(*ResolveError); re == nil || re.Path != p {
				t.Fatalf("Resolve(%q) error %#v, want a *ResolveError for the argument", p, err)
			}
		} else {
			checkResolved(t, p, r)
		}
		absLink := false // a link followed has an absolute target
		for _, v := range r.Via {
			target, err := os.Readlink(filepath.Join(ws, v))
			if err != nil {
				t.Fatalf("Resolve(%q) = %+v: %q is not a link: %v", p, r, v, err)
			}
			if path.IsAbs(target) {
				absLink = true
				if target != ws && !strings.HasPrefix(target, ws+"/") {
					t.Fatalf("Resolve(%q) = %+v, followed %q -> %q out of the workspace", p, r, v, target)
				}
			}
		}
		want := filepath.Join(ws, r.Rel)

		// The kernel's lookup.
		k := kernelOpen(0, full, nil)
		var errno syscall.Errno
		switch {
		case err == nil && r.Exists:
			if k.err != nil || k.real != want || k.dir != r.Dir || (!r.Dir && k.nl != r.Links) {
				t.Fatalf("Resolve(%q) = %+v, want %+v (the kernel's lookup)", p, r, k)
			}
		case err == nil:
			if !errors.Is(k.err, syscall.ENOENT) {
				t.Fatalf("Resolve(%q) = %+v, want the kernel's %+v, not a missing file", p, r, k)
			}
		case errors.As(err, &errno):
			if !errors.Is(k.err, errno) {
				t.Fatalf("Resolve(%q) = %v, want the kernel's %+v", p, err, k)
			}
		}

		// The kernel's lookup confined to the workspace.
		wsfd, ferr := unix.Open(ws, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if ferr != nil {
			t.Fatal(ferr)
		}
		defer unix.Close(wsfd)
		relFull := strings.TrimLeft(strings.TrimPrefix(full, ws), "/")
		if relFull == "" {
			relFull = "."
		}
		if strings.HasSuffix(full, "/") && !strings.HasSuffix(relFull, "/") {
			relFull += "/"
		}
		b := kernelOpen(wsfd, relFull, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH,
		})
		if errors.Is(b.err, syscall.ENOSYS) {
			t.Skip("openat2(2) is missing: Linux 5.6 or later needed")
		}
		switch {
		case errors.Is(err, ErrOutsideWorkspace):
			if !errors.Is(b.err, syscall.EXDEV) {
				t.Fatalf("Resolve(%q) = %v, but the lookup stays beneath the workspace: %+v", p, err, b)
			}
		case err == nil && !absLink:
			if fmt.Sprint(b) != fmt.Sprint(k) {
				t.Fatalf("Resolve(%q) = %+v, but the lookup beneath the workspace gives %+v, not %+v", p, r, b, k)
			}
		}

		// What Go makes of it.
		real, everr := filepath.EvalSymlinks(full)
		if err == nil && r.Exists && (everr != nil || real != want) {
			t.Fatalf("Resolve(%q) = %+v, but EvalSymlinks(%q) = %q, %v", p, r, full, real, everr)
		}
		if everr == nil && real != ws && !strings.HasPrefix(real, ws+"/") && err == nil {
			t.Fatalf("Resolve(%q) = %+v, but EvalSymlinks(%q) = %q, outside the workspace", p, r, full, real)
		}
	})
}
