package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Why a command cannot reach a file, told apart the way the kernel decides
// inside the sandbox: the file system's own permissions for the uid and
// gid the command runs as (path_resolution(7): search permission on every
// directory of the path, then the access on the file), and Landlock, which
// allows an access only beneath a path the ruleset grants it. A permission
// error inside says neither which nor where: the parent, which sees the
// host file system and holds the spec, works it out after the fact, so that
// the hint fixes the real cause. (Unix permissions are why a program under
// /root, mode 0700, fails for nobody, who runs the command for root; no
// profile rule changes that.)

// Unreachable is why the command cannot reach a file.
type Unreachable struct {
	Path string // the file, as given
	// Landlock is set when no grant of the profile covers the file: the
	// profile key that would (filesystem.exec or filesystem.read).
	Landlock string
	// Hidden is the directory the sandbox covers with an empty tmpfs that
	// holds the file, when the file is also not granted: inside, it is not
	// there at all.
	Hidden string
	// Blocked are the components of the path that the command's uid may
	// not search (directories) or use (the file), when Unix permissions
	// stop it, each with the chmod that would let it.
	Blocked []Blocked
	UID     int
	// Role says why the command needs the file, for Unreachables'
	// warnings: "named on its command line", or what reads it.
	Role string
}

// Blocked is one component of a path the command's ids may not use.
type Blocked struct {
	Path         string
	Mode         fs.FileMode
	Owner, Group uint32
	Chmod        string // "o+x", "g+r", ...
}

// Reason says why, without the path: the permissions, the profile, or
// both.
func (u *Unreachable) Reason() string {
	var why []string
	if len(u.Blocked) > 0 {
		b := u.Blocked[0]
		why = append(why, fmt.Sprintf("uid %d, who the command runs as, may not use %s (mode %04o, owner %d, group %d): "+
			"the file system's permissions", u.UID, b.Path, b.Mode.Perm(), b.Owner, b.Group))
	}
	if u.Landlock != "" {
		w := fmt.Sprintf("it is beneath no path the profile grants under %s (Landlock)", u.Landlock)
		if u.Hidden != "" {
			w += fmt.Sprintf(", and the sandbox hides %s, which holds it", u.Hidden)
		}
		why = append(why, w)
	}
	return strings.Join(why, "; and ")
}

func (u *Unreachable) Error() string { return fmt.Sprintf("%q: %s", u.Path, u.Reason()) }

// Hint says what fixes it: for permissions, exactly the chmods, on every
// component of the path that needs one; for the profile, the grant.
func (u *Unreachable) Hint() string {
	var fix []string
	if len(u.Blocked) > 0 {
		var cmds []string
		for _, b := range u.Blocked {
			cmds = append(cmds, fmt.Sprintf("chmod %s %s", b.Chmod, b.Path))
		}
		f := fmt.Sprintf("let uid %d through (%s), or put the file where it can (/opt, /usr/local)", u.UID, strings.Join(cmds, "; "))
		if u.UID != os.Getuid() {
			f += "; as root, vm-run runs the command as nobody unless --user says otherwise"
		}
		fix = append(fix, f)
	}
	if u.Landlock != "" {
		fix = append(fix, fmt.Sprintf("add %s, or a directory above it, to %s in a profile of your own (extends: the one you use)", filepath.Dir(u.Path), u.Landlock))
	}
	return strings.Join(fix, "; and ")
}

// Reach reports why the command cannot reach path (absolute, or relative
// to the workspace) for exec, or for reading when exec is false, or nil
// when nothing stops it or the file does not exist on the host.
func (s *Spec) Reach(path string, exec bool) *Unreachable {
	if !filepath.IsAbs(path) {
		path = filepath.Join(s.Dir, path)
	}
	real, err := filepath.EvalSymlinks(path)
	switch {
	case errors.Is(err, fs.ErrPermission):
		// The caller may not search the path either (its own uid, a
		// directory of mode 0600): judged as spelled.
		real = filepath.Clean(path)
	case err != nil:
		return nil
	}
	u := &Unreachable{Path: path, UID: s.UID, Blocked: s.blockedInside(real, exec)}
	grants, key := slices.Concat(s.Landlock.Read, s.Landlock.Exec, s.Landlock.Write), "filesystem.read"
	if exec {
		grants, key = s.Landlock.Exec, "filesystem.exec"
	}
	// The grants of the private temp dir and home reach the fresh tmpfs
	// mounted there, never the host's files beneath them.
	host := func(g string) bool { return g != s.TmpDir && g != s.PrivateHome && covers(g, real) }
	if !slices.ContainsFunc(grants, host) {
		u.Landlock = key
		// Not there at all inside when it is beneath a hidden directory
		// and nothing the profile grants brings it back (the private
		// temp dir and home are fresh tmpfs, not the host's).
		any := slices.Concat(s.Landlock.Read, s.Landlock.Exec, s.Landlock.Write, s.Landlock.Devices)
		if i := slices.IndexFunc(s.Hide, func(h string) bool { return within(real, h) }); i >= 0 &&
			!slices.ContainsFunc(any, func(g string) bool { return g != s.TmpDir && g != s.PrivateHome && covers(g, real) }) {
			u.Hidden = s.Hide[i]
		}
	}
	if u.Landlock == "" && len(u.Blocked) == 0 {
		return nil
	}
	return u
}

// blockedInside is blocked for the path as the sandbox has it. Beneath a
// private home, the home and the directories down to each tree brought
// back are the command's own (trees_linux.go): only the host's tree is
// judged, from its root down, and not at all for a cache overlaid on an
// idmapped tree, whose files are the command's. A path beneath the home
// in no tree is not there inside, which Reach says (Hidden).
func (s *Spec) blockedInside(real string, exec bool) []Blocked {
	if s.PrivateHome == "" || !covers(s.PrivateHome, real) {
		return s.blocked(real, "/", exec)
	}
	tree, idmapped := "", false
	consider := func(p string, overlay bool) {
		if covers(p, real) && within(p, s.PrivateHome) && len(p) > len(tree) {
			tree, idmapped = p, overlay
		}
	}
	for _, o := range s.Overlay {
		consider(o, true)
	}
	for _, k := range s.Keep {
		consider(k.Path, false)
	}
	if tree == "" || idmapped {
		return nil
	}
	return s.blocked(real, tree, exec)
}

// blocked walks real (resolved) and returns every component from the
// directory from down that the command's ids may not search (a directory)
// or use (the file itself).
func (s *Spec) blocked(real, from string, exec bool) []Blocked {
	var out []Blocked
	parts := strings.Split(strings.TrimPrefix(real, "/"), "/")
	cur := "/"
	for i, part := range append([]string{""}, parts...) {
		cur = filepath.Join(cur, part)
		if !covers(from, cur) {
			continue // above from: the sandbox's own
		}
		st, err := os.Stat(cur)
		if err != nil {
			return out // beyond what may be searched: what blocks it is out
		}
		want := uint32(1) // search
		if i == len(parts) {
			switch {
			case st.IsDir():
				want = 4 | 1
			case exec:
				want = 1
			default:
				want = 4
			}
		}
		if class, missing := s.may(st, want); missing != 0 {
			sys := st.Sys().(*syscall.Stat_t)
			out = append(out, Blocked{Path: cur, Mode: st.Mode().Perm(), Owner: sys.Uid, Group: sys.Gid,
				Chmod: class + "+" + rwx(missing)})
		}
	}
	return out
}

// may returns the chmod class ("u", "g" or "o") whose bits apply to the
// command's ids on st, as the kernel checks them for a process without
// capabilities, and which of the wanted rwx bits it lacks. The command has
// no supplementary groups.
func (s *Spec) may(st fs.FileInfo, want uint32) (string, uint32) {
	sys := st.Sys().(*syscall.Stat_t)
	perm, class := uint32(st.Mode().Perm()), "o"
	switch {
	case int(sys.Uid) == s.UID:
		perm, class = perm>>6, "u"
	case int(sys.Gid) == s.GID:
		perm, class = perm>>3, "g"
	}
	return class, want &^ (perm & 7)
}

func rwx(bits uint32) string {
	var b strings.Builder
	for i, c := range "rwx" {
		if bits&(4>>i) != 0 {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// Unreachables lists the files the command names that exist on the host
// and that it will not be able to use, beyond the program itself (which a
// failed exec reports; see explainExec): what lies beside the program (a
// Python virtual environment's interpreter reads pyvenv.cfg one directory
// up), and every argument that names an existing file (a script for an
// interpreter). Arguments that are not files are no concern of this.
func (s *Spec) Unreachables() []*Unreachable {
	var out []*Unreachable
	seen := map[string]bool{}
	add := func(u *Unreachable) {
		if u != nil && !seen[u.Path] {
			seen[u.Path] = true
			out = append(out, u)
		}
	}
	if strings.Contains(s.Path, "/") && s.Reach(s.Path, true) == nil {
		if cfg := filepath.Join(filepath.Dir(filepath.Dir(s.abs(s.Path))), "pyvenv.cfg"); exists(cfg) {
			if u := s.Reach(cfg, false); u != nil {
				u.Role = "the virtual environment's settings, which its python reads as it starts"
				add(u)
			}
		}
	}
	for _, a := range s.Args[1:] {
		if a == "" || strings.HasPrefix(a, "-") {
			continue
		}
		if st, err := os.Stat(s.abs(a)); err == nil && st.Mode().IsRegular() {
			if u := s.Reach(a, false); u != nil {
				u.Role = "named on its command line"
				add(u)
			}
		}
	}
	return out
}

func (s *Spec) abs(path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(s.Dir, path)
}

// explainExec turns the init stage's report of a failed exec into one that
// says why, where the host file system tells: a *SetupError whose message
// names the path and the real cause and whose hint fixes it.
func (s *Spec) explainExec(e *SetupError) *SetupError {
	if e.Op != "exec" || (e.Code != ExitNotExecutable && e.Code != ExitNotFound) || !strings.Contains(s.Path, "/") {
		return e
	}
	u := s.Reach(s.Path, true)
	if u == nil {
		return e
	}
	return &SetupError{Code: e.Code, Op: "exec", Msg: u.Error(), Hint: u.Hint()}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
