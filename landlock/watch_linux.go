//go:build linux

package landlock

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Audit netlink constants (include/uapi/linux/audit.h).
const (
	auditGet        = 1000 // AUDIT_GET: read the audit status
	auditUserMsg    = 1112 // AUDIT_USER: a message from user space
	auditNLGrpRead  = 1    // AUDIT_NLGRP_READLOG: the read-only multicast group
	auditStatusSize = 32   // struct audit_status up to and including backlog
)

// ErrAuditOff is returned by [WatchDenials] when the kernel's audit is
// disabled: Landlock then logs nothing.
var ErrAuditOff = errors.New("the kernel's audit is disabled (auditctl -s: enabled 0), so Landlock logs no denials")

// DenialWatch reads Landlock's denial records from the kernel's audit
// multicast group while a sandbox runs. Its methods are safe for
// concurrent use.
type DenialWatch struct {
	f       *os.File // the socket, non-blocking, in the runtime's poller
	marker  string
	mu      sync.Mutex
	log     *denialLog
	flushed chan struct{} // closed when the marker came back
	done    chan struct{} // closed when the reader ended
	readErr error
}

// WatchDenials subscribes to the audit multicast group that copies every
// audit record read-only (AUDIT_NLGRP_READLOG, which needs CAP_AUDIT_READ
// and the initial user and network namespaces), if audit is enabled, and
// keeps the denials of the Landlock domains that process pid (as the
// initial PID namespace numbers it: the init stage), running as uid on
// the host, creates while it runs this executable. It must be called
// before the sandbox can be denied anything, and [Rules.LogDenials] set
// for the kernel to log the command's denials. Records come
// whether or not an audit daemon runs; with none the kernel also prints
// them to its log. Close it when done.
func WatchDenials(pid, uid int) (*DenialWatch, error) {
	if on, err := auditEnabled(); err != nil {
		return nil, err
	} else if !on {
		return nil, ErrAuditOff
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_AUDIT)
	if err != nil {
		return nil, fmt.Errorf("audit netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (auditNLGrpRead - 1)}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("join the audit read-log group (needs CAP_AUDIT_READ): %w", err)
	}
	// The kernel drops multicast records when the socket's buffer is
	// full; a large one rides out a burst of denials.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	var nonce [8]byte
	rand.Read(nonce[:])
	w := &DenialWatch{f: os.NewFile(uintptr(fd), "audit-readlog"), marker: "vm-run-denials-flush=" + hex.EncodeToString(nonce[:]),
		log: newDenialLog(pid, uid, selfExe()), flushed: make(chan struct{}), done: make(chan struct{})}
	go w.read()
	return w, nil
}

// read runs until Close, handing Landlock records to the log.
func (w *DenialWatch) read() {
	defer close(w.done)
	buf := make([]byte, 1<<16)
	rc, err := w.f.SyscallConn()
	if err != nil {
		w.mu.Lock()
		w.readErr = err
		w.mu.Unlock()
		return
	}
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EINTR) {
			// Records were lost to a full buffer; keep the rest.
			continue
		}
		if err == nil {
			// Only the kernel's records (sender port 0): a process
			// with CAP_NET_ADMIN may multicast to the group too.
			if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
				continue
			}
		}
		if err != nil {
			w.mu.Lock()
			w.readErr = err
			w.mu.Unlock()
			return
		}
		for _, m := range parseAuditMessages(buf[:n]) {
			text := m.text
			if m.typ == auditUserMsg && strings.Contains(text, w.marker) {
				w.mu.Lock()
				select {
				case <-w.flushed:
				default:
					close(w.flushed)
				}
				w.mu.Unlock()
				continue
			}
			w.mu.Lock()
			w.log.add(m.typ, text)
			w.mu.Unlock()
		}
	}
}

// Flush waits until every record the kernel queued before the call has
// been read, or until timeout. It writes a marker message into the audit
// log (AUDIT_USER, which needs CAP_AUDIT_WRITE) and waits for it to come
// back: the kernel's audit thread sends records in the order they were
// queued. If the marker cannot be sent, or an audit rule filters it out,
// Flush waits the whole timeout.
func (w *DenialWatch) Flush(timeout time.Duration) {
	err := sendAudit(auditUserMsg, []byte(w.marker+" (vm-run collects the Landlock denials of a session that ended)\x00"), false)
	if err != nil {
		timeout = min(timeout, 200*time.Millisecond)
	}
	select {
	case <-w.flushed:
	case <-w.done:
	case <-time.After(timeout):
	}
}

// Denials returns what Landlock refused the watched process's domains,
// in the order first seen, and how many distinct denials were past the
// limit a session keeps.
func (w *DenialWatch) Denials() ([]Denial, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log.result()
}

// Close stops the watch.
func (w *DenialWatch) Close() error {
	// The socket is in the runtime's poller, so closing it wakes the
	// reader.
	err := w.f.Close()
	<-w.done
	return err
}

// AuditStatus says whether vm-run can report Landlock's denials here, and
// if not, why and what would let it. For `vm-run doctor`.
func AuditStatus() (ok bool, why string) {
	if Detect().ABI < 7 {
		return false, "Landlock logs denials from ABI 7 (Linux 6.15) on"
	}
	if os.Geteuid() != 0 {
		return false, "reading the kernel's audit records needs root (CAP_AUDIT_READ)"
	}
	on, err := auditEnabled()
	switch {
	case err != nil:
		return false, err.Error()
	case !on:
		return false, ErrAuditOff.Error() + "; `auditctl -e 1` or the audit=1 boot parameter enables it"
	}
	return true, "root, audit enabled"
}

// auditEnabled asks the kernel for its audit status (AUDIT_GET).
func auditEnabled() (bool, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	if err != nil {
		return false, fmt.Errorf("audit netlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := sendOn(fd, auditGet, nil, false); err != nil {
		return false, fmt.Errorf("audit status: %w", err)
	}
	buf := make([]byte, 1<<12)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return false, fmt.Errorf("audit status: %w", err)
		}
		for _, m := range parseAuditMessages(buf[:n]) {
			switch m.typ {
			case unix.NLMSG_ERROR:
				if len(m.text) >= 4 {
					if e := int32(binary.NativeEndian.Uint32([]byte(m.text))); e != 0 {
						return false, fmt.Errorf("audit status: %w", unix.Errno(-e))
					}
				}
			case auditGet:
				if len(m.text) < 8 {
					return false, errors.New("audit status: short reply")
				}
				// struct audit_status: mask, enabled, ...
				return binary.NativeEndian.Uint32([]byte(m.text[4:8])) != 0, nil
			}
		}
	}
}

// SetAuditEnabled turns the kernel's audit on or off (AUDIT_SET, which
// needs CAP_AUDIT_CONTROL). Only tests use it, to restore what they found.
func SetAuditEnabled(on bool) error {
	st := make([]byte, auditStatusSize)
	binary.NativeEndian.PutUint32(st[0:], 1) // AUDIT_STATUS_ENABLED
	if on {
		binary.NativeEndian.PutUint32(st[4:], 1)
	}
	return sendAudit(1001, st, true) // AUDIT_SET
}

// sendAudit sends one request to the kernel's audit and, with ack, waits
// for its answer.
func sendAudit(typ uint16, data []byte, ack bool) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := sendOn(fd, typ, data, ack); err != nil {
		return err
	}
	if !ack {
		return nil
	}
	buf := make([]byte, 1<<12)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	for _, m := range parseAuditMessages(buf[:n]) {
		if m.typ == unix.NLMSG_ERROR && len(m.text) >= 4 {
			if e := int32(binary.NativeEndian.Uint32([]byte(m.text))); e != 0 {
				return unix.Errno(-e)
			}
		}
	}
	return nil
}

func sendOn(fd int, typ uint16, data []byte, ack bool) error {
	flags := uint16(unix.NLM_F_REQUEST)
	if ack {
		flags |= unix.NLM_F_ACK
	}
	msg := make([]byte, unix.NLMSG_HDRLEN+len(data))
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], flags)
	binary.NativeEndian.PutUint32(msg[8:], 1)
	copy(msg[unix.NLMSG_HDRLEN:], data)
	return unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

// selfExe is this program's executable as the kernel names it, which the
// init stage, a re-execution of it, runs; "" if it cannot be read.
func selfExe() string {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(exe, " (deleted)")
}
