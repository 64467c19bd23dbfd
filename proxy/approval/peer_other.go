//go:build !linux

package approval

import (
	"io/fs"
	"net"
)

// peerIdentity is a peer process; on systems other than Linux the socket
// cannot learn it, and nothing is admitted.
type peerIdentity struct{ uid, pid int }

func (p peerIdentity) String() string { return "unknown" }

func ownIdentity() (peerIdentity, error) { return peerIdentity{}, ErrNotSupported }

func peerOf(*net.UnixConn) (peerIdentity, error) { return peerIdentity{}, ErrNotSupported }

func (peerIdentity) admits(peerIdentity) error { return ErrNotSupported }

func fileOwner(fs.FileInfo) (int, bool) { return 0, false }
