//go:build !linux || !cgo

package seccomp

import "io"

// Load returns [ErrNotSupported]: seccomp filters need Linux and a build with
// cgo for libseccomp.
func Load(c Config) error {
	return ErrNotSupported
}

// ExportPFC returns [ErrNotSupported].
func ExportPFC(c Config, w io.Writer) error {
	return ErrNotSupported
}

// APILevel returns [ErrNotSupported].
func APILevel() (uint, error) {
	return 0, ErrNotSupported
}

// LibraryVersion returns "" when libseccomp is not linked in.
func LibraryVersion() string {
	return ""
}

// ExportBPF returns [ErrNotSupported].
func ExportBPF(c Config, w io.Writer) error {
	return ErrNotSupported
}
