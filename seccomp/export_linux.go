//go:build linux && cgo

package seccomp

import (
	"fmt"
	"io"
)

// ExportBPF writes the filter for c as raw classic BPF, the form the kernel
// loads and bubblewrap's --seccomp reads (the benchmark uses it to give both
// sandboxes the same filter).
func ExportBPF(c Config, w io.Writer) error {
	f, err := Build(c)
	if err != nil {
		return err
	}
	defer f.Release()
	if err := export(f.ExportBPF, w); err != nil {
		return fmt.Errorf("export seccomp BPF: %w", err)
	}
	return nil
}
