package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// setupMounts builds the sandbox's view of the filesystem inside its own
// mount namespace: nothing propagates back to the host, the hidden
// directories (where host sockets live: /run, /tmp, /dev/shm) are covered by
// empty tmpfs, granted paths beneath them are bind-mounted back, the private
// temp dir is a fresh tmpfs, /proc shows only the sandbox's PID namespace
// and /sys/fs/cgroup only the sandbox's cgroup.
func setupMounts(s *Spec) error {
	// Mounts copied into a new mount namespace keep the host's propagation;
	// make them private first so our mounts never reach the host
	// (mount_namespaces(7), "Shared subtrees").
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return os.NewSyscallError("mount / private", err)
	}
	type kept struct {
		Keep
		fd  int
		dir bool
	}
	// Open the granted paths before they are hidden; bind them back from
	// the descriptors afterwards. Shortest first, so a path inside an
	// earlier bind of the same writability needs no mount of its own.
	keep := slices.Clone(s.Keep)
	slices.SortFunc(keep, func(a, b Keep) int { return len(a.Path) - len(b.Path) })
	var ks []kept
	for _, k := range keep {
		if s.treeAt(k.Path) || slices.ContainsFunc(ks, func(o kept) bool { return covers(o.Path, k.Path) && o.Writable == k.Writable }) {
			continue
		}
		fd, err := unix.Open(k.Path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: k.Path, Err: err}
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return &os.PathError{Op: "fstat", Path: k.Path, Err: err}
		}
		ks = append(ks, kept{k, fd, st.Mode&unix.S_IFMT == unix.S_IFDIR})
	}
	// The lower layers too must be opened before anything covers them.
	lower := make([]int, len(s.Overlay))
	for i, o := range s.Overlay {
		if s.treeAt(o) {
			continue // attachTrees
		}
		fd, err := unix.Open(o, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open overlay lower dir", Path: o, Err: err}
		}
		lower[i] = fd
	}
	hide := slices.Clone(s.Hide)
	if s.TmpDir != "" && !slices.Contains(hide, s.TmpDir) {
		hide = append(hide, s.TmpDir)
	}
	for _, h := range hide {
		opts := "mode=0755,size=64k"
		switch h {
		case s.TmpDir:
			opts = "mode=1777,size=" + strconv.FormatUint(s.TmpSize, 10)
		case s.PrivateHome:
			// Owned by the mounter, who is the command's uid. It may
			// lie beneath another hidden directory (a home under /tmp):
			// then it is mounted on a new directory in that tmpfs.
			opts = "mode=0700,size=" + strconv.FormatUint(s.TmpSize, 10)
			if err := mountPoint(h, true); err != nil {
				return err
			}
		}
		if err := unix.Mount("tmpfs", h, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			return os.NewSyscallError(fmt.Sprintf("mount tmpfs on %s", h), err)
		}
	}
	for _, k := range ks {
		if err := mountPoint(k.Path, k.dir); err != nil {
			return err
		}
		src := "/proc/self/fd/" + strconv.Itoa(k.fd)
		if err := unix.Mount(src, k.Path, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return os.NewSyscallError(fmt.Sprintf("bind-mount %s", k.Path), err)
		}
		unix.Close(k.fd)
		if !k.Writable {
			// Read-only at the mount, whatever Landlock rule covers the
			// directory it now sits in.
			flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV)
			if err := unix.Mount("", k.Path, "", flags, ""); err != nil {
				return os.NewSyscallError(fmt.Sprintf("remount %s read-only", k.Path), err)
			}
		}
	}
	if err := attachTrees(s); err != nil {
		return err
	}
	for i, o := range s.Overlay {
		if s.treeAt(o) {
			continue
		}
		if err := mountOverlay(o, lower[i]); err != nil {
			return err
		}
		unix.Close(lower[i])
	}
	// A fresh procfs for the new PID namespace: the command sees its own
	// processes only, and /proc/PID of host processes does not exist.
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return os.NewSyscallError("mount proc", err)
	}
	if err := maskProc(); err != nil {
		return err
	}
	return mountCgroupfs(s.Cgroupfs)
}

// maskedProc are files of the sandbox's /proc that describe the host and
// that no server needs: the kernel's command line (which can hold
// addresses and tokens), its configuration, symbols and modules (what the
// host runs and on which hardware), and key-users (the uids of every user
// with keys). The rest of /proc is the sandbox's own (its PID and network
// namespaces) or the kernel's tunables and counters; see doc.go, "What
// the sandbox sees of the host".
var maskedProc = []string{"/proc/cmdline", "/proc/config.gz", "/proc/kallsyms", "/proc/modules",
	"/proc/key-users", "/proc/timer_list", "/proc/sched_debug", "/proc/kcore"}

// maskProc covers each masked file the kernel has with /dev/null, read-only:
// it reads as empty, as runc masks such files.
func maskProc() error {
	for _, p := range maskedProc {
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := unix.Mount("/dev/null", p, "", unix.MS_BIND, ""); err != nil {
			return os.NewSyscallError("mask "+p, err)
		}
		flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NOEXEC)
		if err := unix.Mount("", p, "", flags, ""); err != nil {
			return os.NewSyscallError("remount "+p+" read-only", err)
		}
	}
	return nil
}

// mountOverlay covers dir with an overlay whose lower layer is the host's
// dir (open as lowerFd) and whose upper layer is a fresh tmpfs mounted on dir
// first, then hidden under the overlay itself. The sandbox reads the host's
// files and writes into memory; nothing reaches the host. userxattr lets an
// unprivileged user namespace mount it (overlayfs.rst, "User xattr").
func mountOverlay(dir string, lowerFd int) error {
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=1g"); err != nil {
		return os.NewSyscallError(fmt.Sprintf("mount overlay tmpfs on %s", dir), err)
	}
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("create overlay layer: %w", err)
		}
	}
	opts := fmt.Sprintf("lowerdir=/proc/self/fd/%d,upperdir=%s,workdir=%s,userxattr", lowerFd, upper, work)
	if err := unix.Mount("overlay", dir, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return os.NewSyscallError(fmt.Sprintf("mount overlay on %s", dir), err)
	}
	return nil
}

// mountPoint creates path (a directory, or an empty file) and its missing
// parents inside a tmpfs we just mounted.
func mountPoint(path string, dir bool) error {
	parent := path
	if !dir {
		parent = filepath.Dir(path)
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create mount point: %w", err)
	}
	if dir {
		return nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create mount point: %w", err)
	}
	return f.Close()
}

// hostname is the sandbox's name in its UTS namespace.
const hostname = "vm-run"

func setHostname() error {
	if err := unix.Sethostname([]byte(hostname)); err != nil {
		return os.NewSyscallError("sethostname", err)
	}
	return nil
}
