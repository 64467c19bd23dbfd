// Command bpfexport writes vm-run's default seccomp filter as raw BPF, the
// form bubblewrap's --seccomp reads, so that the benchmark compares both
// sandboxes with the same filter.
package main

import (
	"fmt"
	"os"

	"github.com/vm-run/vm-run/seccomp"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: bpfexport FILE")
		os.Exit(2)
	}
	f, err := os.Create(os.Args[1])
	if err == nil {
		err = seccomp.ExportBPF(seccomp.Config{}, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bpfexport: error: %v\n", err)
		os.Exit(1)
	}
}
