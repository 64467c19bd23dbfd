//go:build linux && cgo

package seccomp

import (
	"bytes"
	"fmt"
)

// Program compiles the filter for c into raw classic BPF, as the kernel
// loads it: instructions of 8 bytes in native byte order. vm-run compiles
// in the parent while the init stage is still starting, and the init stage
// loads the program with [LoadProgram], so libseccomp's compile time is off
// the sandbox's start-up path.
func Program(c Config) ([]byte, error) {
	api, err := APILevel()
	if err != nil {
		return nil, fmt.Errorf("%w: read libseccomp API level: %w", ErrNotSupported, err)
	}
	if api < minAPI {
		return nil, fmt.Errorf("%w: libseccomp %s with this kernel offers API level %d, need %d",
			ErrNotSupported, LibraryVersion(), api, minAPI)
	}
	var b bytes.Buffer
	if err := ExportBPF(c, &b); err != nil {
		return nil, err
	}
	if b.Len() == 0 || b.Len()%8 != 0 {
		return nil, fmt.Errorf("compile seccomp filter: libseccomp exported %d bytes, not whole instructions", b.Len())
	}
	return b.Bytes(), nil
}
