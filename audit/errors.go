package audit

import (
	"errors"
	"fmt"
	"syscall"
)

var (
	// ErrDead matches every error of a ledger handle that a write or sync
	// error has killed. Such a handle never writes or syncs again.
	ErrDead = errors.New("ledger handle is dead")
	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("ledger is closed")
	// ErrCorrupt means the end of the ledger holds damage that is not a
	// torn write, so there is no intact record to chain a new one from.
	ErrCorrupt = errors.New("ledger is damaged")
	// ErrReplaced means the ledger's path no longer names the file the
	// handle has open: it was renamed, removed or replaced.
	ErrReplaced = errors.New("ledger file was moved or replaced while open")
	// ErrNotRegular means the ledger path is not a regular file.
	ErrNotRegular = errors.New("not a regular file")
	// ErrNotSupported is returned by Open on systems other than Linux.
	ErrNotSupported = errors.New("audit ledger is supported on Linux only")
	// ErrEventName means an event type is not lower-case letters, digits
	// and underscores, or is one the ledger reserves for itself.
	ErrEventName = errors.New("invalid event type")
	// ErrTooLarge means a record would exceed MaxLineSize.
	ErrTooLarge = errors.New("record too large")
)

// WriteError is the error of the Append whose write or sync failed, and of
// every later Append on the same handle. It matches ErrDead and, through
// Unwrap, the errno (syscall.ENOSPC, syscall.EIO, syscall.EROFS, ...).
type WriteError struct {
	Path string
	Op   string // "write", "fdatasync", "unlock"
	Err  error
}

func (e *WriteError) Error() string {
	cause := e.Err
	var errno syscall.Errno
	if errors.As(cause, &errno) {
		cause = errno
	}
	return fmt.Sprintf("ledger %q: %s: %v (the ledger handle is dead; nothing more is recorded through it)", e.Path, e.Op, cause)
}

func (e *WriteError) Unwrap() error { return e.Err }

// Is makes every WriteError match ErrDead.
func (e *WriteError) Is(target error) bool { return target == ErrDead }

// Hint returns advice for the user; see [Hint].
func (e *WriteError) Hint() string { return Hint(e) }

// CorruptError says where the damage is that stops appends; it matches
// ErrCorrupt.
type CorruptError struct {
	Path   string
	Offset int64
	Msg    string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("ledger %q is damaged at byte %d: %s; nothing is appended after damage", e.Path, e.Offset, e.Msg)
}

// Is makes every CorruptError match ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Hint returns advice for the user; see [Hint].
func (e *CorruptError) Hint() string { return Hint(e) }

// Hint returns advice for the user about a ledger error, or "" when there
// is none. The CLI prints it as "vm-run: hint: ...".
func Hint(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "the filesystem holding the ledger is full: free space, or point --ledger or " + EnvLedger + " at another filesystem"
	case errors.Is(err, syscall.EROFS):
		return "the filesystem holding the ledger is read-only: remount it read-write, or point --ledger or " + EnvLedger + " elsewhere"
	case errors.Is(err, syscall.EIO):
		return "the disk reported an I/O error (see dmesg); vm-run does not retry a failed sync"
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return "this user cannot write the ledger or its directory: fix its permissions, or point --ledger or " + EnvLedger + " elsewhere"
	case errors.Is(err, ErrCorrupt):
		return `run "vm-run audit verify" to see the damage, then move the ledger aside; vm-run starts a new one`
	case errors.Is(err, ErrReplaced):
		return "start vm-run again to write to the file now at the ledger path"
	case errors.Is(err, ErrNoLedgerPath):
		return "pass --ledger PATH"
	}
	return ""
}
