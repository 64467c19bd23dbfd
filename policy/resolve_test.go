//go:build linux

package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// resolveRoot makes an empty directory with no symbolic links in its path,
// as Resolve requires of the workspace: t.TempDir may sit below one.
func resolveRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// resolveTree lays out a workspace with the link shapes the policy must see
// through, and returns it. Beside it, root/out holds what the workspace
// must not reach.
func resolveTree(t *testing.T) (ws string) {
	t.Helper()
	root := resolveRoot(t)
	ws = filepath.Join(root, "ws")
	for _, d := range []string{"ws/src", "ws/docs", "ws/chain", "out"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"ws/src/main.c", "ws/src/util.c", "ws/docs/readme.md", "out/secret"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(ws, "src/util.c"), filepath.Join(ws, "docs/util-hard.c")); err != nil {
		t.Fatal(err)
	}
	links := [][2]string{
		{"ws/docs/srclink", "../src"},
		{"ws/docs/mainlink.c", "../src/main.c"},
		{"ws/docs/abslink", ws + "/src"},
		{"ws/docs/chain1", "chain2"},
		{"ws/docs/chain2", "srclink"},
		{"ws/docs/loop1", "loop2"},
		{"ws/docs/loop2", "loop1"},
		{"ws/docs/etc", "/etc"},
		{"ws/docs/rootlink", "/"},
		{"ws/docs/outlink", "../../out/secret"},
		{"ws/docs/outback", "../../ws/src"},
		{"ws/docs/absoutback", ws + "/../ws/src"},
		{"ws/docs/viaout", "../../out/back"},
		{"out/back", "../ws/src"},
		{"ws/docs/dangling", "../src/new.c"},
		{"ws/docs/danglingdir", "../newdir/sub/file.c"},
		{"ws/docs/absdangling", ws + "/gen/out.c"},
		{"ws/docs/missingback", "nothere/../../src"},
		{"ws/docs/dirslash", "../src/"},
		{"ws/docs/fileslash", "../src/main.c/"},
		{"ws/docs/here", "."},
		{"ws/docs/dotdot", "../src/../docs/./readme.md"},
	}
	// chain/l0 -> l1 -> ... -> l40 -> ../src/main.c: 41 links from l0,
	// 40 from l1.
	for i := range maxSymlinks {
		links = append(links, [2]string{fmt.Sprintf("ws/chain/l%d", i), fmt.Sprintf("l%d", i+1)})
	}
	links = append(links, [2]string{fmt.Sprintf("ws/chain/l%d", maxSymlinks), "../src/main.c"})
	for _, l := range links {
		if err := os.Symlink(l[1], filepath.Join(root, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	return ws
}

type resolveCase struct {
	p    string // "$WS" stands for the workspace
	base string // workspace-relative; "" is the workspace
	want Resolved
	err  error  // what the error wraps, nil for success
	link string // the ResolveError's Link
}

func TestResolve(t *testing.T) {
	ws := resolveTree(t)
	main := Resolved{Rel: "src/main.c", Exists: true, Links: 1}
	via := func(r Resolved, links ...string) Resolved { r.Via = links; return r }
	srcDir := Resolved{Rel: "src", Exists: true, Dir: true}
	chainVia := make([]string, maxSymlinks)
	for i := range chainVia {
		chainVia[i] = fmt.Sprintf("chain/l%d", i+1)
	}
	for _, c := range []resolveCase{
		// The four shapes that walked around write(src/*).
		{p: "docs/srclink/main.c", want: via(main, "docs/srclink")},
		{p: "docs/mainlink.c", want: via(main, "docs/mainlink.c")},
		{p: "docs/srclink/new.c", want: Resolved{Rel: "src/new.c", Via: []string{"docs/srclink"}}},
		{p: "docs/stolen.c", want: Resolved{Rel: "docs/stolen.c"}}, // move_file's destination
		// Absolute targets into the workspace, absolute arguments.
		{p: "docs/abslink/main.c", want: via(main, "docs/abslink")},
		{p: "$WS/docs/srclink/main.c", want: via(main, "docs/srclink")},
		{p: "$WS/docs/abslink/", want: via(srcDir, "docs/abslink")},
		// Chains.
		{p: "docs/chain1/main.c", want: via(main, "docs/chain1", "docs/chain2", "docs/srclink")},
		{p: "chain/l1", want: via(main, chainVia...)},
		{p: "docs/dotdot", want: Resolved{Rel: "docs/readme.md", Exists: true, Links: 1, Via: []string{"docs/dotdot"}}},
		{p: "docs/here/here/readme.md", want: Resolved{Rel: "docs/readme.md", Exists: true, Links: 1, Via: []string{"docs/here", "docs/here"}}},
		// Loops.
		{p: "docs/loop1", err: syscall.ELOOP, link: "docs/loop1"},
		{p: "docs/loop2/x", err: syscall.ELOOP, link: "docs/loop2"},
		{p: "chain/l0", err: syscall.ELOOP, link: "chain/l40"},
		// Out of the workspace, and out and back in.
		{p: "docs/etc/passwd", err: ErrOutsideWorkspace, link: "docs/etc"},
		{p: "docs/etc", err: ErrOutsideWorkspace, link: "docs/etc"},
		{p: "docs/rootlink/etc", err: ErrOutsideWorkspace, link: "docs/rootlink"},
		{p: "docs/outlink", err: ErrOutsideWorkspace, link: "docs/outlink"},
		{p: "docs/outback/main.c", err: ErrOutsideWorkspace, link: "docs/outback"},
		{p: "docs/absoutback/main.c", err: ErrOutsideWorkspace, link: "docs/absoutback"},
		{p: "docs/viaout/main.c", err: ErrOutsideWorkspace, link: "docs/viaout"},
		{p: "/etc/passwd", err: ErrOutsideWorkspace},
		{p: "$WSx/a", err: ErrOutsideWorkspace},
		{p: "a", base: "../out", err: ErrOutsideWorkspace},
		// Dangling links: a write creates the target.
		{p: "docs/dangling", want: Resolved{Rel: "src/new.c", Via: []string{"docs/dangling"}}},
		{p: "docs/danglingdir", want: Resolved{Rel: "newdir/sub/file.c", Via: []string{"docs/danglingdir"}}},
		{p: "docs/absdangling", want: Resolved{Rel: "gen/out.c", Via: []string{"docs/absdangling"}}},
		{p: "docs/missingback", err: syscall.ENOENT, link: "docs/missingback"},
		{p: "new/dir/file", want: Resolved{Rel: "new/dir/file"}},
		// Relative to another base, also one reached through a link.
		{p: "srclink/main.c", base: "docs", want: via(main, "docs/srclink")},
		{p: "main.c", base: "docs/srclink", want: via(main, "docs/srclink")},
		{p: "readme.md", base: "docs", want: Resolved{Rel: "docs/readme.md", Exists: true, Links: 1}},
		// Hard links.
		{p: "docs/util-hard.c", want: Resolved{Rel: "docs/util-hard.c", Exists: true, Links: 2}},
		{p: "src/util.c", want: Resolved{Rel: "src/util.c", Exists: true, Links: 2}},
		// The workspace itself, ".", trailing slashes.
		{p: "$WS", want: Resolved{Rel: ".", Exists: true, Dir: true}},
		{p: "$WS/", want: Resolved{Rel: ".", Exists: true, Dir: true}},
		{p: ".", want: Resolved{Rel: ".", Exists: true, Dir: true}},
		{p: "./", want: Resolved{Rel: ".", Exists: true, Dir: true}},
		{p: ".", base: "docs", want: Resolved{Rel: "docs", Exists: true, Dir: true}},
		{p: "./src/./main.c", want: main},
		{p: "src//main.c", want: main},
		{p: "src/", want: srcDir},
		{p: "src/.", want: srcDir},
		{p: "docs/srclink/", want: via(srcDir, "docs/srclink")},
		{p: "docs/dirslash", want: via(srcDir, "docs/dirslash")},
		{p: "newdir/", want: Resolved{Rel: "newdir"}},
		{p: "src/main.c/", err: syscall.ENOTDIR},
		{p: "src/main.c/.", err: syscall.ENOTDIR},
		{p: "src/main.c/x", err: syscall.ENOTDIR},
		{p: "docs/mainlink.c/", err: syscall.ENOTDIR},
		{p: "docs/fileslash", err: syscall.ENOTDIR, link: "docs/fileslash"},
		{p: "", err: syscall.ENOENT},
	} {
		p := strings.ReplaceAll(c.p, "$WS", ws)
		base := ws
		if c.base != "" {
			base = path.Join(ws, c.base)
		}
		got, err := Resolve(ws, base, p)
		if c.err != nil {
			var re *ResolveError
			if !errors.Is(err, c.err) || !errors.As(err, &re) || re.Link != c.link || re.Path != p {
				t.Errorf("Resolve(%q) = %+v, %v, want error %v through %q", p, got, err, c.err, c.link)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("Resolve(%q) = %+v, %v, want %+v", p, got, err, c.want)
			continue
		}
		// What the kernel makes of it, for the paths that exist.
		if c.want.Exists {
			full := p
			if !path.IsAbs(p) {
				full = path.Join(base, p)
			}
			real, err := filepath.EvalSymlinks(full)
			if err != nil || real != filepath.Join(ws, got.Rel) {
				t.Errorf("EvalSymlinks(%q) = %q, %v, want %q", p, real, err, filepath.Join(ws, got.Rel))
			}
		}
	}
}

func TestResolveErrorMessages(t *testing.T) {
	ws := resolveTree(t)
	for _, c := range []struct{ p, want string }{
		{"docs/etc/passwd", `path "docs/etc/passwd" leads outside the workspace through the link "docs/etc"`},
		{"/etc/passwd", `path "/etc/passwd" is outside the workspace`},
		{"docs/loop1", `path "docs/loop1" follows more than 40 symbolic links through the link "docs/loop1"`},
		{"src/main.c/x", `path "src/main.c/x" looks a name up in "src/main.c", which is not a directory`},
		{"docs/missingback", `path "docs/missingback" goes into "docs/nothere", which does not exist, and back out with ".." through the link "docs/missingback"`},
	} {
		_, err := Resolve(ws, ws, c.p)
		if err == nil || err.Error() != c.want {
			t.Errorf("Resolve(%q) error = %v, want %s", c.p, err, c.want)
		}
	}
}

// recordingLookup passes lookups through and notes every path asked for.
type recordingLookup struct {
	lookup
	mu    sync.Mutex
	names []string
}

func (r *recordingLookup) lstat(name string) (entry, error) {
	r.note(name)
	return r.lookup.lstat(name)
}

func (r *recordingLookup) readlink(name string) (string, error) {
	r.note(name)
	return r.lookup.readlink(name)
}

func (r *recordingLookup) entries(dir string) ([]string, error) {
	r.note(dir)
	return r.lookup.entries(dir)
}

func (r *recordingLookup) note(name string) {
	r.mu.Lock()
	r.names = append(r.names, name)
	r.mu.Unlock()
}

// checkTouched fails unless every path looked at is ws or a clean path
// below it.
func checkTouched(t testing.TB, ws, p string, names []string) {
	t.Helper()
	for _, n := range names {
		if n != ws && (!strings.HasPrefix(n, ws+"/") || path.Clean(n) != n) {
			t.Fatalf("Resolve(%q) looked at %q, outside the workspace %q", p, n, ws)
		}
	}
}

// TestResolveStaysInside checks that nothing outside the workspace is
// even looked at, whatever the links point to.
func TestResolveStaysInside(t *testing.T) {
	ws := resolveTree(t)
	for _, p := range []string{"docs/etc/passwd", "docs/rootlink/etc", "docs/outlink", "docs/outback/main.c",
		"docs/absoutback/main.c", "docs/viaout/main.c", "docs/srclink/main.c", "chain/l0", "/etc/passwd"} {
		rec := &recordingLookup{lookup: hostLookup{}}
		if _, err := resolveIn(rec, ws, ws, p); err != nil && !errors.As(err, new(*ResolveError)) {
			t.Errorf("Resolve(%q) error %T, want *ResolveError", p, err)
		}
		checkTouched(t, ws, p, rec.names)
	}
}

// lyingLookup answers at random, as a file system that changes between
// every two calls might: it is the worst a concurrent writer can do.
type lyingLookup struct {
	ws    string
	rng   *rand.Rand
	calls int
}

func (l *lyingLookup) lstat(string) (entry, error) {
	l.calls++
	switch l.rng.IntN(5) {
	case 0:
		return entry{}, syscall.ENOENT
	case 1:
		return entry{kind: entryOther, nlink: l.rng.Uint64()}, nil
	case 2:
		return entry{kind: entryDir}, nil
	case 3:
		return entry{}, syscall.EACCES
	}
	return entry{kind: entrySymlink}, nil
}

func (l *lyingLookup) entries(string) ([]string, error) {
	l.calls++
	return []string{"a", "b", "e\u0301", "\u00e9"}[:l.rng.IntN(5)], nil
}

func (l *lyingLookup) readlink(string) (string, error) {
	l.calls++
	parts := []string{"..", ".", "", "a", "b", l.ws, l.ws + "/..", "/", "/etc"}
	var b strings.Builder
	for range l.rng.IntN(8) {
		b.WriteString(parts[l.rng.IntN(len(parts))])
		b.WriteByte('/')
	}
	return b.String(), nil
}

// TestResolveUnderChange checks that a file system that changes under the
// walk can make the answer wrong, but never makes Resolve panic, loop, or
// produce an unclean or escaping Rel.
func TestResolveUnderChange(t *testing.T) {
	const ws = "/ws/x"
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		l := &lyingLookup{ws: ws, rng: rng}
		p := []string{"a/b/c", "a", ".", ws + "/a/", "a//b/./c"}[i%5]
		r, err := resolveIn(l, ws, ws, p)
		// One lstat for ws and one per component: at most 6 in p, at most
		// 40 in each of at most 40 targets read, and 41 readlinks.
		if l.calls > 1+6+40*40+41 {
			t.Fatalf("Resolve(%q) made %d lookups", p, l.calls)
		}
		if err != nil {
			if !errors.As(err, new(*ResolveError)) {
				t.Fatalf("Resolve(%q) error %T, want *ResolveError", p, err)
			}
			continue
		}
		checkResolved(t, p, r)
	}
}

// TestResolveRace swaps a directory for a link to /etc while Resolve runs:
// any answer will do, as long as it comes and stays in its contract.
func TestResolveRace(t *testing.T) {
	ws := resolveTree(t)
	flip := filepath.Join(ws, "flip")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			os.Remove(flip)
			os.Mkdir(flip, 0o755)
			os.Remove(flip)
			os.Symlink("/etc", flip)
		}
	}()
	for range 2000 {
		r, err := Resolve(ws, ws, "flip/passwd")
		if err == nil {
			checkResolved(t, "flip/passwd", r)
		} else if !errors.As(err, new(*ResolveError)) {
			t.Fatalf("Resolve(%q) error %T, want *ResolveError", "flip/passwd", err)
		}
	}
	close(stop)
	<-done
}

// checkResolved checks what every successful Resolve must return,
// whatever the file system: a clean workspace-relative Rel, consistent
// flags, at most 40 links.
func checkResolved(t testing.TB, p string, r Resolved) {
	t.Helper()
	bad := func(rel string) bool {
		return rel == "" || rel == ".." || strings.HasPrefix(rel, "../") || path.IsAbs(rel) || path.Clean(rel) != rel
	}
	switch {
	case bad(r.Rel):
		t.Fatalf("Resolve(%q) = %+v: Rel is not clean and workspace-relative", p, r)
	case r.Dir && !r.Exists, r.Links > 0 && (!r.Exists || r.Dir):
		t.Fatalf("Resolve(%q) = %+v: Dir or Links without an existing file", p, r)
	case len(r.Via) > maxSymlinks:
		t.Fatalf("Resolve(%q) = %+v: %d links followed, more than %d", p, r, len(r.Via), maxSymlinks)
	}
	for _, v := range r.Via {
		if bad(v) || v == "." {
			t.Fatalf("Resolve(%q) = %+v: link %q is not clean and workspace-relative", p, r, v)
		}
	}
}

// failingLookup fails lstat with err from the n-th call on.
type failingLookup struct {
	lookup
	n   int
	err error
}

func (f *failingLookup) lstat(name string) (entry, error) {
	if f.n--; f.n < 0 {
		return entry{}, f.err
	}
	return f.lookup.lstat(name)
}

// TestResolveLookupErrors checks that a lookup the proxy is refused (say,
// a directory it may not search) denies instead of guessing.
func TestResolveLookupErrors(t *testing.T) {
	ws := resolveTree(t)
	for _, c := range []struct {
		n    int
		err  error
		want string
	}{
		{0, syscall.EACCES, `path "docs/readme.md" cannot be resolved: lstat ".": permission denied`},
		{2, syscall.EACCES, `path "docs/readme.md" cannot be resolved: lstat "docs/readme.md": permission denied`},
		{1, syscall.ENOTDIR, `path "docs/readme.md" cannot be resolved: lstat "docs": not a directory`},
		{1, ErrNotSupported, `path "docs/readme.md" cannot be resolved: lstat "docs": ` + ErrNotSupported.Error()},
	} {
		_, err := resolveIn(&failingLookup{lookup: hostLookup{}, n: c.n, err: c.err}, ws, ws, "docs/readme.md")
		if !errors.Is(err, c.err) || err.Error() != c.want {
			t.Errorf("Resolve(%q) with lstat %d failing = %v, want %s", "docs/readme.md", c.n, err, c.want)
		}
	}
	// A workspace that is not a directory, or not clean and absolute.
	file := filepath.Join(ws, "src/main.c")
	for _, c := range []struct {
		ws, base string
		want     error
	}{
		{file, file, syscall.ENOTDIR},
		{"rel/ws", "rel/ws", syscall.EINVAL},
		{ws + "/", ws, syscall.EINVAL},
		{ws + "/docs/../src", ws, syscall.EINVAL},
		{ws, "docs", syscall.EINVAL},
		{ws, filepath.Dir(ws), ErrOutsideWorkspace},
		{ws + "/docs/srclink", ws + "/docs/srclink", syscall.ENOTDIR},
	} {
		if _, err := Resolve(c.ws, c.base, "x"); !errors.Is(err, c.want) {
			t.Errorf("Resolve(%q) in workspace %q, base %q = %v, want %v", "x", c.ws, c.base, err, c.want)
		}
	}
}

// TestResolveNoWorkspace checks that a workspace that does not exist has
// only paths to be created in it.
func TestResolveNoWorkspace(t *testing.T) {
	ws := filepath.Join(resolveRoot(t), "gone")
	for _, c := range []struct {
		p    string
		want Resolved
	}{
		{"docs/a.md", Resolved{Rel: "docs/a.md"}},
		{ws + "/", Resolved{Rel: "."}},
		{"./src//main.c", Resolved{Rel: "src/main.c"}},
	} {
		got, err := Resolve(ws, ws, c.p)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("Resolve(%q) = %+v, %v, want %+v", c.p, got, err, c.want)
		}
	}
}

func TestBeneathWorkspace(t *testing.T) {
	for _, c := range []struct {
		ws, abs string
		want    []string
		ok      bool
	}{
		{"/w/s", "/w/s", []string{}, true},
		{"/w/s", "/w/s/", []string{""}, true},
		{"/w/s", "//w/./s/a/../b", []string{"a", "..", "b"}, true},
		{"/w/s", "/w/sx", nil, false},
		{"/w/s", "/w", nil, false},
		{"/w/s", "/w/../w/s", nil, false},
		{"/w/s", "w/s", nil, false},
		{"/", "/", []string{""}, true},
		{"/", "/a/..", []string{"a", ".."}, true},
	} {
		got, ok := beneathWorkspace(c.ws, c.abs)
		if ok != c.ok || (ok && !reflect.DeepEqual(got, c.want)) {
			t.Errorf("beneathWorkspace(%q, %q) = %q, %v, want %q, %v", c.ws, c.abs, got, ok, c.want, c.ok)
		}
	}
}

// TestResolveRootWorkspace checks ws "/": ".." in the root stays there.
func TestResolveRootWorkspace(t *testing.T) {
	ws := resolveTree(t)
	got, err := Resolve("/", "/", strings.TrimPrefix(ws, "/")+"/docs/srclink/main.c")
	want := Resolved{Rel: strings.TrimPrefix(ws, "/") + "/src/main.c", Exists: true, Links: 1,
		Via: []string{strings.TrimPrefix(ws, "/") + "/docs/srclink"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Resolve(%q) = %+v, %v, want %+v", "/", got, err, want)
	}
	if got, err := resolveIn(dotdotLookup{}, "/", "/", "up"); err != nil || got.Rel != "." {
		t.Errorf("Resolve(%q) = %+v, %v, want %+v", "up", got, err, Resolved{Rel: ".", Exists: true, Dir: true})
	}
}

// dotdotLookup has one link, /up -> ../../.., in a root directory.
type dotdotLookup struct{}

func (dotdotLookup) lstat(name string) (entry, error) {
	if name == "/up" {
		return entry{kind: entrySymlink}, nil
	}
	return entry{kind: entryDir}, nil
}

func (dotdotLookup) readlink(string) (string, error) { return "../../..", nil }

func (dotdotLookup) entries(string) ([]string, error) { return nil, nil }
