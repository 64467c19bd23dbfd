//go:build !linux

package landlock

// Detect reports ABI 0: Landlock exists only on Linux.
func Detect() Support {
	return Support{Reason: "Landlock is a Linux feature; this system is not Linux"}
}

// Restrict returns [ErrNotSupported]: Landlock exists only on Linux.
func (r Rules) Restrict() error {
	return ErrNotSupported
}
