//go:build !linux

package selftest

import (
	"context"

	"github.com/vm-run/vm-run/sandbox"
)

// Run is not available off Linux.
func Run(context.Context, Options) (*Report, error) { return nil, sandbox.ErrNotSupported }
