package approval

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// peerIdentity is a process as the kernel names it: its uid and pid (from
// SO_PEERCRED for a peer, never from anything it says) and its user
// namespace.
type peerIdentity struct {
	uid, pid int
	userNS   nsID
}

// nsID names a namespace: the device and inode of its /proc/PID/ns file
// (namespaces(7), "The /proc/[pid]/ns/ directory").
type nsID struct{ dev, ino uint64 }

// String is how the ledger records who answered.
func (p peerIdentity) String() string { return fmt.Sprintf("uid=%d pid=%d", p.uid, p.pid) }

func ownIdentity() (peerIdentity, error) {
	ns, err := userNSOf("self")
	if err != nil {
		return peerIdentity{}, err
	}
	return peerIdentity{uid: os.Geteuid(), pid: os.Getpid(), userNS: ns}, nil
}

// peerOf reads the credentials the kernel recorded for the peer of nc
// when it connected (SO_PEERCRED, unix(7)), and the peer's user namespace.
func peerOf(nc *net.UnixConn) (peerIdentity, error) {
	raw, err := nc.SyscallConn()
	if err != nil {
		return peerIdentity{}, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return peerIdentity{}, err
	}
	if serr != nil {
		return peerIdentity{}, &os.SyscallError{Syscall: "getsockopt SO_PEERCRED", Err: serr}
	}
	p := peerIdentity{uid: int(cred.Uid), pid: int(cred.Pid)}
	if p.pid == 0 {
		// The kernel reports pid 0 for a peer whose PID namespace does
		// not show in ours: it is none of our account's processes.
		return p, fmt.Errorf("peer uid=%d is in a PID namespace this vm-run cannot see", p.uid)
	}
	if p.userNS, err = userNSOf(strconv.Itoa(p.pid)); err != nil {
		return p, fmt.Errorf("peer %s: %w", p, err)
	}
	return p, nil
}

func userNSOf(pid string) (nsID, error) {
	var st unix.Stat_t
	path := "/proc/" + pid + "/ns/user"
	if err := unix.Stat(path, &st); err != nil {
		return nsID{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return nsID{dev: st.Dev, ino: st.Ino}, nil
}

// admits says why peer may not use a socket that self serves, or nil.
//
// The uid must be self's: the directory's mode already keeps other users
// out, and this check holds should the socket be reached some other way.
// Root is not let in to a user's socket: it gains nothing by it (it can
// become the user), and "uid=N" in the ledger then always names the
// account that owns the session.
//
// The user namespace must be self's as well. The sandbox runs in a user
// namespace of its own, whose uid maps to the caller's: were the socket
// ever visible inside (a runtime directory under a path a profile grants,
// in a profile that allows AF_UNIX), the uid alone would let the
// sandboxed server approve its own calls.
func (self peerIdentity) admits(peer peerIdentity) error {
	if peer.uid != self.uid {
		return fmt.Errorf("peer %s is not uid %d, the owner of this socket", peer, self.uid)
	}
	if peer.userNS != self.userNS {
		return fmt.Errorf("peer %s is in another user namespace (a sandbox or container); approve from a shell outside it", peer)
	}
	return nil
}

// fileOwner returns the uid that owns fi.
func fileOwner(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
