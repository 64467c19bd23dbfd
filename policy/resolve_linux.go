package policy

import (
	"os"

	"golang.org/x/sys/unix"
)

// linkTargetMax bounds a symbolic link's target: symlink(2) takes at most
// PATH_MAX bytes with the NUL (ENAMETOOLONG beyond). A longer answer, from
// some other file system, is refused rather than cut off.
const linkTargetMax = 4096

// hostLookup is the file system of the running proxy.
type hostLookup struct{}

// lstat is lstat(2): it never follows the last component, so a link there
// is reported, not entered (symlink(7)).
func (hostLookup) lstat(name string) (entry, error) {
	var st unix.Stat_t
	if err := retryEINTR(func() error { return unix.Lstat(name, &st) }); err != nil {
		return entry{}, err
	}
	e := entry{kind: entryOther, nlink: uint64(st.Nlink)}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		e = entry{kind: entryDir}
	case unix.S_IFLNK:
		e = entry{kind: entrySymlink}
	}
	return e, nil
}

// readlink is readlink(2) into a buffer one byte longer than any target the
// kernel accepts: a full buffer means a target that was cut off.
func (hostLookup) readlink(name string) (string, error) {
	buf := make([]byte, linkTargetMax+1)
	var n int
	err := retryEINTR(func() error {
		var err error
		n, err = unix.Readlink(name, buf)
		return err
	})
	switch {
	case err != nil:
		return "", err
	case n > linkTargetMax:
		return "", unix.ENAMETOOLONG
	}
	return string(buf[:n]), nil
}

// entries lists a directory's entries. The directory is opened with
// O_NOFOLLOW: it was just seen to be a directory, and a link put in its
// place since is not followed out of the workspace (open(2)).
func (hostLookup) entries(dir string) ([]string, error) {
	var fd int
	err := retryEINTR(func() error {
		var err error
		fd, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	return f.Readdirnames(-1)
}

// retryEINTR retries a system call that a signal interrupted, as package os
// does: Go installs its signal handlers with SA_RESTART (signal(7)), yet
// FUSE and network file systems still return EINTR (Go issues 22838,
// 38033).
func retryEINTR(call func() error) error {
	for {
		if err := call(); err != unix.EINTR {
			return err
		}
	}
}
