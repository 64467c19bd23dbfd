package sandbox

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
)

// A private home for a command root runs as another user.
//
// Root's sandbox runs the command as nobody by default, whose home
// (/nonexistent) does not exist: npx, pip and most runtimes need one, and
// the caches a user warmed for the sandbox (the README's npx step) are in
// root's home, which nobody may not even search (/root is mode 0700). So
// the command gets the caller's home path as its home, covered by an empty
// tmpfs of its own, and the paths the profile grants beneath it (the npm
// cache, an nvm or pyenv tree, a workspace under /root) come back.
//
// The init stage cannot bring them back itself: it runs as the command's
// uid, which may not search the caller's home, and no capability in its
// user namespace helps with files whose owner is not mapped there
// (capabilities(7), "Effect of user namespaces on capabilities"). The
// parent, root on the host, clones each such tree with open_tree(2)
// (OPEN_TREE_CLONE: a detached copy of the mount, attachable in another
// mount namespace), and the init stage attaches it with move_mount(2)
// after the tmpfs is in place. A tree the profile grants read-only is made
// read-only before it leaves the parent. A cache the profile overlays is
// also idmapped (mount_setattr(2), MOUNT_ATTR_IDMAP): its owner's files
// appear owned by the command's uid, so that the overlay above it lets the
// command write where the cache's owner could; what it writes stays in the
// overlay's private layer, as for any overlay. Idmapping a mount needs
// CAP_SYS_ADMIN over the file system's user namespace, the host's for a
// disk (Documentation/filesystems/idmappings.rst), so only the parent can.
//
//	parent (root)                               init stage (uid of the command)
//	  Build: PrivateHome in Hide, Trees listed
//	  OpenTrees: open_tree + mount_setattr
//	  Spawn ──── fds 4, 5, ... ─────────────────▶ (inherited)
//	  spec ───── Trees[i].Fd names each ────────▶ tmpfs on PrivateHome (0700)
//	                                              move_mount each tree back
//	                                              overlay on each cache tree

// Tree is a host path beneath PrivateHome that the init stage attaches
// from descriptor Fd.
type Tree struct {
	Path string `json:"path"`
	Fd   int    `json:"fd"`
	Dir  bool   `json:"dir"`
	// Overlay: the tree is the lower layer of an overlay (idmapped to the
	// command's ids when its owner is someone else).
	Overlay bool `json:"overlay,omitempty"`
}

// firstTreeFd is the init stage's descriptor of the first tree: after its
// end of the channel (channel_linux.go).
const firstTreeFd = chanFd + 1

// HolderArg0 is argv[0] of the process that holds the user namespace an
// idmapped tree is mapped with, until its standard input closes.
const HolderArg0 = "vm-run-userns"

// HolderMain is that process's main.
func HolderMain() {
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// OpenTrees clones the trees beneath s.PrivateHome, fills in s.Trees and
// returns the descriptors to pass to SpawnTrees in that order. The caller
// closes them once the init stage has started. Only root can.
func (s *Spec) OpenTrees() ([]*os.File, error) {
	s.Trees = nil
	if s.PrivateHome == "" {
		return nil, nil
	}
	var files []*os.File
	fail := func(err error) ([]*os.File, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, &SetupError{Code: ExitSetup, Op: "home", Msg: err.Error()}
	}
	var paths []Tree
	for _, o := range s.Overlay {
		if within(o, s.PrivateHome) {
			paths = append(paths, Tree{Path: o, Dir: true, Overlay: true})
		}
	}
	for _, k := range s.Keep {
		if within(k.Path, s.PrivateHome) && !slices.ContainsFunc(paths, func(t Tree) bool { return t.Path == k.Path }) {
			st, err := os.Stat(k.Path)
			if err != nil {
				return fail(err)
			}
			paths = append(paths, Tree{Path: k.Path, Dir: st.IsDir()})
		}
	}
	for _, t := range paths {
		f, err := s.openTree(t, s.keep(t.Path))
		if err != nil {
			return fail(fmt.Errorf("%s: %w", t.Path, err))
		}
		t.Fd = firstTreeFd + len(files)
		files = append(files, f)
		s.Trees = append(s.Trees, t)
	}
	return files, nil
}

func (s *Spec) keep(path string) Keep {
	for _, k := range s.Keep {
		if k.Path == path {
			return k
		}
	}
	return Keep{Path: path}
}

// openTree clones one tree and sets its mount attributes.
func (s *Spec) openTree(t Tree, k Keep) (*os.File, error) {
	// No symbolic link is followed: Build resolved the path, and only
	// root can change what lies beneath a private home (safePrivateHome
	// in the command); a link now is a change since.
	fd, err := unix.OpenTree(unix.AT_FDCWD, t.Path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE|unix.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		return nil, os.NewSyscallError("open_tree", err)
	}
	f := os.NewFile(uintptr(fd), t.Path)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	// An overlay's lower layer is only read: read-only too.
	if t.Overlay || !k.Writable {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if t.Overlay {
		// The owner of what was cloned, not of what the path names now.
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			f.Close()
			return nil, &os.PathError{Op: "stat", Path: t.Path, Err: err}
		}
		if int(st.Uid) != s.UID || int(st.Gid) != s.GID {
			ns, done, err := idmapNamespace(int(st.Uid), s.UID, int(st.Gid), s.GID)
			if err != nil {
				f.Close()
				return nil, err
			}
			defer done()
			attr.Attr_set |= unix.MOUNT_ATTR_IDMAP
			attr.Userns_fd = uint64(ns.Fd())
		}
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		f.Close()
		return nil, os.NewSyscallError("mount_setattr", err)
	}
	return f, nil
}

// idmapNamespace returns a user namespace in which uid fromUID (and gid
// fromGID) of the file system is uid toUID (gid toGID), held by a process
// that done ends.
func idmapNamespace(fromUID, toUID, fromGID, toGID int) (*os.File, func(), error) {
	cmd := &exec.Cmd{
		Path: "/proc/self/exe",
		Args: []string{HolderArg0},
		Env:  []string{},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: fromUID, HostID: toUID, Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: fromGID, HostID: toGID, Size: 1}},
		},
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start the idmap namespace holder: %w", err)
	}
	done := func() {
		// The namespace outlives its holder while a descriptor names
		// it (namespaces(7), "The namespaces/ directory"): once it is
		// open the holder is killed, not waited for while its Go
		// runtime starts only to see its standard input close.
		cmd.Process.Kill()
		stdin.Close()
		cmd.Wait()
	}
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	if err != nil {
		done()
		return nil, nil, err
	}
	// The holder may go now; ns keeps the namespace and its mapping.
	done()
	return ns, func() { ns.Close() }, nil
}

// attachTrees is the init stage's part: each tree is attached where it
// belongs inside the tmpfs on PrivateHome, an overlay's with its overlay
// on top. It runs after the tmpfs is mounted.
func attachTrees(s *Spec) error {
	for _, t := range s.Trees {
		if err := mountPoint(t.Path, t.Dir); err != nil {
			return err
		}
		if err := unix.MoveMount(t.Fd, "", unix.AT_FDCWD, t.Path, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return os.NewSyscallError(fmt.Sprintf("move_mount %s", t.Path), err)
		}
		unix.Close(t.Fd)
		if !t.Overlay {
			continue
		}
		lower, err := unix.Open(t.Path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open overlay lower dir", Path: t.Path, Err: err}
		}
		err = mountOverlay(t.Path, lower)
		unix.Close(lower)
		if err != nil {
			return err
		}
	}
	return nil
}

// treeAt reports whether path is attached from a tree (and so is not
// opened, bound back or overlaid the ordinary way).
func (s *Spec) treeAt(path string) bool {
	return slices.ContainsFunc(s.Trees, func(t Tree) bool { return t.Path == path })
}
