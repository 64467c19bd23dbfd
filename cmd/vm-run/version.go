package main

import (
	"fmt"
	"io"
	"runtime"
)

type versionCmd struct{}

func (versionCmd) Run(stdout io.Writer) error {
	_, err := fmt.Fprintf(stdout, "vm-run %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
