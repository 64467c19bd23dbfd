//go:build !linux

package landlock

import "time"

// Detect reports ABI 0: Landlock exists only on Linux.
func Detect() Support {
	return Support{Reason: "Landlock is a Linux feature; this system is not Linux"}
}

// Restrict returns [ErrNotSupported]: Landlock exists only on Linux.
func (r Rules) Restrict() error {
	return ErrNotSupported
}

// DenialWatch would read Landlock's audit records; Landlock exists only
// on Linux.
type DenialWatch struct{}

// WatchDenials returns [ErrNotSupported].
func WatchDenials(int, int) (*DenialWatch, error) { return nil, ErrNotSupported }

// Flush does nothing.
func (w *DenialWatch) Flush(time.Duration) {}

// Denials returns nothing.
func (w *DenialWatch) Denials() ([]Denial, int) { return nil, 0 }

// Close does nothing.
func (w *DenialWatch) Close() error { return nil }

// AuditStatus says that Landlock exists only on Linux.
func AuditStatus() (bool, string) { return false, "Landlock is a Linux feature" }
