//go:build !linux

package audit

import (
	"fmt"
	"io/fs"
)

func openFile(path string, mode fs.FileMode) (ledgerFile, error) {
	return nil, fmt.Errorf("open ledger %q: %w", path, ErrNotSupported)
}
