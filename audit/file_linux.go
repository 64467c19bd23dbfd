package audit

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// osFile is a ledger file on Linux.
type osFile struct {
	f    *os.File
	fd   int
	path string
	// The open file's device and inode, which never change.
	dev, ino uint64
}

// openFile opens path for appending, creating it and its missing parent
// directories (mode 0700) if needed. A file it creates gets exactly mode,
// whatever the umask, and its directory entry is synced so that a crash
// cannot lose a ledger that records were acknowledged in.
func openFile(path string, mode fs.FileMode) (ledgerFile, error) {
	newDirs, err := mkdirAll(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	created := true
	// O_APPEND: every write lands at the end of the file, whatever another
	// process did to the offset; vm-run never writes anywhere else.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, mode.Perm())
	if errors.Is(err, fs.ErrExist) {
		created = false
		f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open ledger %q: %w", path, err)
	}
	o := &osFile{f: f, fd: int(f.Fd()), path: path}
	var st unix.Stat_t
	if err := unix.Fstat(o.fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat ledger %q: %w", path, os.NewSyscallError("fstat", err))
	}
	o.dev, o.ino = uint64(st.Dev), uint64(st.Ino)
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("open ledger %q: %w", path, ErrNotRegular)
	}
	if created {
		if err := f.Chmod(mode.Perm()); err != nil {
			f.Close()
			return nil, fmt.Errorf("chmod ledger %q: %w", path, err)
		}
		// fsync(2): syncing a file does not sync its directory entry; the
		// new name and any new directories need their parents synced.
		dirs := []string{filepath.Dir(path)}
		for _, d := range newDirs {
			dirs = append(dirs, filepath.Dir(d))
		}
		for _, d := range dirs {
			if err := syncDir(d); err != nil {
				f.Close()
				return nil, err
			}
		}
	}
	return o, nil
}

// mkdirAll is os.MkdirAll(dir, 0700) that also returns the directories it
// created, deepest first.
func mkdirAll(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		missing = append(missing, d)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create ledger directory %q: %w", dir, err)
	}
	return missing, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %q to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %q: %w", dir, err)
	}
	return nil
}

// Lock takes a write lock on the whole file. It is an open file description
// lock (fcntl(2), F_OFD_SETLKW): owned by this open file, not by the
// process, so two handles on one ledger in one process exclude each other
// too, and the kernel drops it when the last fd is closed, including when
// the process is killed.
func (o *osFile) Lock() error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	for {
		err := unix.FcntlFlock(uintptr(o.fd), unix.F_OFD_SETLKW, &lk)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("fcntl F_OFD_SETLKW", err)
		}
		return nil
	}
}

func (o *osFile) Unlock() error {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(uintptr(o.fd), unix.F_OFD_SETLK, &lk); err != nil {
		return os.NewSyscallError("fcntl F_OFD_SETLK F_UNLCK", err)
	}
	return nil
}

func (o *osFile) Size() (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(o.fd, &st); err != nil {
		return 0, os.NewSyscallError("fstat", err)
	}
	return st.Size, nil
}

// SamePath reports whether the ledger's path still names the open file; it
// does not once the file was renamed, removed or replaced. It costs one
// stat(2) of the path: the writer asks before every batch.
func (o *osFile) SamePath() (bool, error) {
	var pst unix.Stat_t
	if err := unix.Stat(o.path, &pst); err != nil {
		if err == unix.ENOENT {
			return false, nil
		}
		return false, &os.PathError{Op: "stat", Path: o.path, Err: err}
	}
	return uint64(pst.Dev) == o.dev && uint64(pst.Ino) == o.ino, nil
}

func (o *osFile) ReadAt(p []byte, off int64) (int, error) { return o.f.ReadAt(p, off) }

func (o *osFile) Write(p []byte) (int, error) { return o.f.Write(p) }

// Datasync flushes the file's data and the metadata needed to read it back,
// including its size (fdatasync(2)). It is never retried: a writeback error
// is reported once per open file (Documentation/core-api/errseq.rst) and
// the pages that failed may already be dropped, so a second call can
// succeed without the data being on disk (LWN 752063, "PostgreSQL's
// fsync() surprise", 2018).
func (o *osFile) Datasync() error {
	if err := unix.Fdatasync(o.fd); err != nil {
		return os.NewSyscallError("fdatasync", err)
	}
	return nil
}

func (o *osFile) Close() error { return o.f.Close() }
