package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/vm-run/vm-run/proxy"
	"github.com/vm-run/vm-run/sandbox"
)

// stopGrace is how long the server gets after the client has gone before
// SIGTERM, and again before SIGKILL.
const stopGrace = 2 * time.Second

// serve runs the sandboxed server with the MCP proxy between vm-run's own
// stdin/stdout (the client) and the server's pipes. The server's stderr is a
// pipe copied to vm-run's stderr, never a terminal. It returns the server's
// status once the server has exited and everything it wrote was handled.
func serve(spec *sandbox.Spec, cfg proxy.Config) (sandbox.Status, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return sandbox.Status{}, fmt.Errorf("create server stdin pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return sandbox.Status{}, fmt.Errorf("create server stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return sandbox.Status{}, fmt.Errorf("create server stderr pipe: %w", err)
	}
	closeChildEnds := sync.OnceFunc(func() { inR.Close(); outW.Close(); errW.Close() })

	// A client that goes away must not kill vm-run with SIGPIPE before the
	// server is stopped and the session recorded: with SIGPIPE notified,
	// writes to a closed stdout return EPIPE instead (os/signal, "SIGPIPE").
	pipes := make(chan os.Signal, 1)
	signal.Notify(pipes, syscall.SIGPIPE)
	defer signal.Stop(pipes)

	type result struct {
		st  sandbox.Status
		err error
	}
	procs := make(chan *sandbox.Process, 1)
	done := make(chan result, 1)
	go func() {
		st, err := sandbox.Run(spec, sandbox.Stdio{Stdin: inR, Stdout: outW, Stderr: errW}, func(p *sandbox.Process) {
			closeChildEnds()
			procs <- p
		})
		closeChildEnds()
		done <- result{st, err}
	}()
	var proc *sandbox.Process
	select {
	case proc = <-procs:
	case r := <-done:
		inW.Close()
		outR.Close()
		errR.Close()
		return r.st, r.err
	}
	stderrDone := make(chan struct{})
	go func() {
		io.Copy(os.Stderr, errR)
		close(stderrDone)
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.ClientClosed = func() {
		// The client hung up and the server's stdin is closed: give the
		// server a grace period to exit on its own, then stop it.
		go func() {
			for _, sig := range []os.Signal{syscall.SIGTERM, syscall.SIGKILL} {
				select {
				case <-time.After(stopGrace):
					proc.Signal(sig)
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	perr := proxy.Run(ctx, cfg, os.Stdin, os.Stdout, inW, outR)
	r := <-done
	cancel()
	inW.Close()
	outR.Close()
	<-stderrDone
	if r.err != nil {
		return r.st, r.err
	}
	if perr != nil && !errors.Is(perr, proxy.ErrServerExited) {
		fmt.Fprintf(os.Stderr, "vm-run: proxy: %v\n", perr)
	}
	return r.st, nil
}
