//go:build !linux

package netns

import "errors"

// ErrNotSupported is returned on systems without network namespaces.
var ErrNotSupported = errors.New("network namespaces need Linux")

// ID is not available off Linux.
func ID() (string, error) { return "", ErrNotSupported }

// LoopbackUp is not available off Linux.
func LoopbackUp() error { return ErrNotSupported }
