package approval

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Dir returns the approvals directory of the caller, creating what is
// missing of it, after checking every directory vm-run made or will use:
//
//   - $XDG_RUNTIME_DIR/vm-run/approvals when XDG_RUNTIME_DIR is set;
//   - else /run/user/UID/vm-run/approvals when /run/user/UID exists and
//     belongs to the caller (what pam_systemd makes, for a shell whose
//     environment lost the variable);
//   - else vm-run-approvals-UID in [os.TempDir].
//
// The runtime directory must belong to the caller and be writable by no
// one else; vm-run's own directories must be real directories (not
// symbolic links), belong to the caller and be mode 0700 or stricter.
// Anything else is a [*DirError] that says what to do: the socket is only
// as private as the directory it is in. vm-run and `vm-run approvals` must
// see the same XDG_RUNTIME_DIR to meet.
func Dir() (string, error) {
	uid := os.Geteuid()
	var base string
	if x, ok := os.LookupEnv("XDG_RUNTIME_DIR"); ok && x != "" {
		if !filepath.IsAbs(x) {
			return "", &DirError{Path: x, Problem: "XDG_RUNTIME_DIR is not an absolute path",
				hint: "set XDG_RUNTIME_DIR to your runtime directory (/run/user/" + strconv.Itoa(uid) + " on systemd) or unset it"}
		}
		base = x
	} else if r := "/run/user/" + strconv.Itoa(uid); ownedDir(r, uid) {
		base = r
	}
	if base == "" {
		d := filepath.Join(os.TempDir(), "vm-run-approvals-"+strconv.Itoa(uid))
		return d, ensureDir(d, uid)
	}
	if err := checkRuntimeDir(base, uid); err != nil {
		return "", err
	}
	top := filepath.Join(base, "vm-run")
	if err := ensureDir(top, uid); err != nil {
		return "", err
	}
	d := filepath.Join(top, "approvals")
	return d, ensureDir(d, uid)
}

// DirError is an approvals directory that fails Dir's checks.
type DirError struct {
	Path    string
	Problem string
	Err     error // the underlying error, if any
	hint    string
}

func (e *DirError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("approvals directory %q: %s: %v", e.Path, e.Problem, e.Err)
	}
	return fmt.Sprintf("approvals directory %q: %s", e.Path, e.Problem)
}

func (e *DirError) Unwrap() error { return e.Err }

// Hint says what to do about it.
func (e *DirError) Hint() string { return e.hint }

func ownedDir(path string, uid int) bool {
	fi, err := os.Stat(path)
	if err != nil || !fi.IsDir() {
		return false
	}
	owner, ok := fileOwner(fi)
	return ok && owner == uid
}

// checkRuntimeDir checks the directory vm-run's own are made in: it may be
// a symbolic link (the user's choice), but must lead to a directory of the
// caller's that no one else can write, or another user could replace
// vm-run's directories in it.
func checkRuntimeDir(path string, uid int) error {
	fi, err := os.Stat(path)
	if err != nil {
		return &DirError{Path: path, Problem: "the runtime directory is unusable", Err: err,
			hint: "create it (mode 0700), or unset XDG_RUNTIME_DIR to use /run/user/" + strconv.Itoa(uid) + " or the temp dir"}
	}
	return checkMode(path, fi, uid, 0o022, "the runtime directory")
}

// ensureDir makes path (mode 0700) unless it exists, then checks it.
func ensureDir(path string, uid int) error {
	if err := os.Mkdir(path, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return &DirError{Path: path, Problem: "cannot create it", Err: err,
			hint: "check that its parent exists and is yours, or set XDG_RUNTIME_DIR to a directory of your own"}
	}
	return checkDir(path, uid)
}

// checkDir checks a directory of vm-run's own: not a symbolic link, a
// directory, the caller's, mode 0700 or stricter.
func checkDir(path string, uid int) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return &DirError{Path: path, Problem: "unusable", Err: err, hint: "create it with mode 0700, or let vm-run choose (unset XDG_RUNTIME_DIR for the default)"}
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return &DirError{Path: path, Problem: "is a symbolic link, which vm-run does not follow here",
			hint: "remove it (rm " + shellQuote(path) + "); vm-run makes the directory itself"}
	}
	return checkMode(path, fi, uid, 0o077, "vm-run's directory")
}

func checkMode(path string, fi fs.FileInfo, uid int, forbidden fs.FileMode, what string) error {
	if !fi.IsDir() {
		return &DirError{Path: path, Problem: what + " is not a directory",
			hint: "remove it (rm " + shellQuote(path) + ") or set XDG_RUNTIME_DIR to a directory of your own"}
	}
	owner, ok := fileOwner(fi)
	if !ok {
		return &DirError{Path: path, Problem: "its owner cannot be read", Err: ErrNotSupported}
	}
	if owner != uid {
		return &DirError{Path: path, Problem: fmt.Sprintf("%s belongs to uid %d, not to you (uid %d)", what, owner, uid),
			hint: "someone else made it: do not use it; remove it as its owner, or set XDG_RUNTIME_DIR to a directory of your own"}
	}
	if perm := fi.Mode().Perm(); perm&forbidden != 0 {
		return &DirError{Path: path, Problem: fmt.Sprintf("%s is mode %04o, open to others", what, perm),
			hint: "chmod 700 " + shellQuote(path)}
	}
	return nil
}

// shellQuote quotes a path for a hint the user may paste into a shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Sockets returns the approval sockets in dir, one per vm-run process that
// serves one (or that died without removing it), sorted by name.
func Sockets(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read approvals directory: %w", err)
	}
	var out []string
	for _, e := range es {
		if e.Type()&fs.ModeSocket != 0 && strings.HasSuffix(e.Name(), socketSuffix) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}
