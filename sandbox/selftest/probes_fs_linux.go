package selftest

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// readToken reads path and reports whether it holds token. Every file
// fixture of the battery holds a random token, so reading it back proves
// the read reached the host file and not some stand-in.
func readToken(path, token string) (bool, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	return fdHoldsToken(fd, token)
}

func fdHoldsToken(fd int, token string) (bool, error) {
	buf := make([]byte, 4096)
	n, err := unix.Pread(fd, buf, 0)
	if err != nil {
		return false, &os.SyscallError{Syscall: "pread", Err: err}
	}
	return bytes.Contains(buf[:n], []byte(token)), nil
}

// probeRead: read path=P and find token=T in it.
func probeRead(ps params) verdict {
	path, token := ps.get("path"), ps.get("token")
	ok, err := readToken(path, token)
	switch {
	case err != nil:
		return blocked(pathMechanism(err), "read %s: %s", path, errName(err))
	case !ok:
		return broken("read %s: the token is not in it", path)
	}
	return escaped("read %s and found its token", path)
}

// probeWrite: append one byte to path=P.
func probeWrite(ps params) verdict {
	path := ps.get("path")
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0)
	if err != nil {
		return blocked(pathMechanism(err), "open %s for writing: %s", path, errName(err))
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte("x")); err != nil {
		return blocked(pathMechanism(err), "write %s: %s", path, errName(err))
	}
	return escaped("appended to %s", path)
}

// probeCreate: create a new file in dir=D.
func probeCreate(ps params) verdict {
	path := filepath.Join(ps.get("dir"), "created-by-probe")
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return blocked(pathMechanism(err), "create %s: %s", path, errName(err))
	}
	unix.Close(fd)
	unix.Unlink(path)
	return escaped("created %s", path)
}

// probeTruncate: truncate path=P to zero bytes.
func probeTruncate(ps params) verdict {
	path := ps.get("path")
	if err := unix.Truncate(path, 0); err != nil {
		return blocked(pathMechanism(err), "truncate %s: %s", path, errName(err))
	}
	return escaped("truncated %s", path)
}

// probeSymlink: plant a symlink in dir=D pointing at target=P and read
// token=T through it.
func probeSymlink(ps params) verdict {
	dir, target, token := ps.get("dir"), ps.get("target"), ps.get("token")
	link := filepath.Join(dir, "symlink-by-probe")
	if err := unix.Symlink(target, link); err != nil {
		return blocked(pathMechanism(err), "symlink %s -> %s: %s", link, target, errName(err))
	}
	defer unix.Unlink(link)
	ok, err := readToken(link, token)
	switch {
	case err != nil:
		return blocked(pathMechanism(err), "created %s -> %s; reading through it: %s", link, target, errName(err))
	case !ok:
		return broken("read %s: the token is not in it", link)
	}
	return escaped("read %s through the symlink %s", target, link)
}

// probeHardlink: hard-link target=P into each dir=D and read token=T
// through the new name. A link that succeeds is an escape by itself: the
// file is now reachable under a path the rules grant.
func probeHardlink(ps params) verdict {
	target, token := ps.get("target"), ps.get("token")
	var tried []string
	mech := ""
	for _, dir := range ps["dir"] {
		link := filepath.Join(dir, "hardlink-by-probe")
		if err := unix.Link(target, link); err != nil {
			m := pathMechanism(err)
			if errnoOf(err) == unix.EXDEV {
				m = exdevMechanism(target, dir)
			}
			tried = append(tried, fmt.Sprintf("link into %s: %s", dir, errName(err)))
			mech = joinMechanism(mech, m)
			continue
		}
		ok, err := readToken(link, token)
		unix.Unlink(link)
		if err != nil {
			return escaped("linked %s to %s (reading it: %s)", target, link, errName(err))
		}
		if ok {
			return escaped("linked %s to %s and read its token", target, link)
		}
		return escaped("linked %s to %s", target, link)
	}
	return blocked(mech, "%s", strings.Join(tried, "; "))
}

// exdevMechanism tells the two reasons for EXDEV apart: a link or rename
// between mounts is refused by the VFS before any LSM sees it; on one
// mount, EXDEV comes from Landlock's refer rules (landlock(7)). stat needs
// no Landlock right, so the probe can compare the devices.
func exdevMechanism(from, toDir string) string {
	var a, b unix.Stat_t
	if unix.Stat(from, &a) == nil && unix.Stat(toDir, &b) == nil && a.Dev != b.Dev {
		return "separate mounts (EXDEV)"
	}
	return "landlock (refer, EXDEV)"
}

// joinMechanism adds m to a "; "-separated list unless it is there.
func joinMechanism(list, m string) string {
	if m == "" || strings.Contains(list, m) {
		return list
	}
	if list == "" {
		return m
	}
	return list + "; " + m
}

// probeRename: move src=P into each dst=D. Success means the probe
// changed a directory it may not write; it moves the file back.
func probeRename(ps params) verdict {
	src := ps.get("src")
	var tried []string
	mech := ""
	for _, dir := range ps["dst"] {
		dst := filepath.Join(dir, "renamed-by-probe")
		if err := unix.Rename(src, dst); err != nil {
			m := pathMechanism(err)
			if errnoOf(err) == unix.EXDEV {
				m = exdevMechanism(src, dir)
			}
			tried = append(tried, fmt.Sprintf("rename to %s: %s", dir, errName(err)))
			mech = joinMechanism(mech, m)
			continue
		}
		unix.Rename(dst, src)
		return escaped("moved %s to %s", src, dst)
	}
	return blocked(mech, "%s", strings.Join(tried, "; "))
}

// probeByHandle: open a host file by the handle name_to_handle_at(2) gave
// the harness (type=N handle=HEX), relative to a directory mount=DIR on
// the same filesystem, and read token=T. This bypasses every
// path-based check, which is why the kernel wants CAP_DAC_READ_SEARCH
// (open_by_handle_at(2)).
func probeByHandle(ps params) verdict {
	typ, err := strconv.ParseInt(ps.get("type"), 10, 32)
	if err != nil {
		return broken("type %q: %v", ps.get("type"), err)
	}
	raw, err := hex.DecodeString(ps.get("handle"))
	if err != nil {
		return broken("handle %q: %v", ps.get("handle"), err)
	}
	// The mount fd must be open for real (O_PATH gives EBADF) on the
	// handle's filesystem: the first mount=DIR the probe may open.
	mfd, mount := -1, ""
	var notes []string
	for _, dir := range ps["mount"] {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == nil {
			mfd, mount = fd, dir
			break
		}
		notes = append(notes, fmt.Sprintf("open %s: %s", dir, errName(err)))
	}
	if mfd < 0 {
		return broken("no directory on the handle's filesystem to open: %s", strings.Join(notes, "; "))
	}
	defer unix.Close(mfd)
	fd, err := unix.OpenByHandleAt(mfd, unix.NewFileHandle(int32(typ), raw), unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		v := blocked(filterMechanism(err, "kernel ("+errName(err)+")"), "open_by_handle_at (mount fd %s): %s", mount, errName(err))
		if errnoOf(err) == unix.EPERM && !filtered() && !hasCap(unix.CAP_DAC_READ_SEARCH) {
			v = v.impossible("open_by_handle_at needs CAP_DAC_READ_SEARCH in the initial user namespace, which uid %d lacks", os.Getuid())
		}
		return v
	}
	defer unix.Close(fd)
	ok, err := fdHoldsToken(fd, ps.get("token"))
	if err != nil {
		return escaped("opened the file by handle (reading it: %s)", errName(err))
	}
	if !ok {
		return escaped("opened a file by handle, but not the one holding the token")
	}
	return escaped("opened the file by its handle and read its token")
}
