package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/proxy"
	"github.com/vm-run/vm-run/sandbox"
)

// stopGrace is how long the server gets after the client has gone before
// SIGTERM, and again before SIGKILL.
const stopGrace = 2 * time.Second

// serverPipes are the server's stdio: pipes, so that the proxy sits on
// stdin and stdout, and stderr is copied to vm-run's stderr, never handed a
// terminal.
type serverPipes struct {
	inR, inW, outR, outW, errR, errW *os.File
}

func newServerPipes() (*serverPipes, error) {
	var p serverPipes
	var err error
	if p.inR, p.inW, err = os.Pipe(); err != nil {
		return nil, fmt.Errorf("create server stdin pipe: %w", err)
	}
	if p.outR, p.outW, err = os.Pipe(); err != nil {
		p.closeAll()
		return nil, fmt.Errorf("create server stdout pipe: %w", err)
	}
	if p.errR, p.errW, err = os.Pipe(); err != nil {
		p.closeAll()
		return nil, fmt.Errorf("create server stderr pipe: %w", err)
	}
	// Large messages cross these pipes: a bigger pipe buffer moves them in
	// fewer, larger reads and writes, with fewer wake-ups on either side.
	for _, f := range []*os.File{p.inW, p.outR} {
		growPipe(f)
	}
	return &p, nil
}

// pipeSize is what vm-run asks of a pipe's buffer: fs.pipe-max-size's
// default, which any user may ask for (pipe(7), F_SETPIPE_SZ).
const pipeSize = 1 << 20

// growPipe enlarges the pipe f is an end of, if f is a pipe and the kernel
// lets it; nothing depends on it but speed.
func growPipe(f *os.File) {
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		return
	}
	unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, pipeSize)
}

// server returns the ends the server gets.
func (p *serverPipes) server() sandbox.Stdio {
	return sandbox.Stdio{Stdin: p.inR, Stdout: p.outW, Stderr: p.errW}
}

// closeServerEnds closes vm-run's copies of the server's ends, so that
// vm-run sees end of file when the server goes.
func (p *serverPipes) closeServerEnds() { closeFiles(p.inR, p.outW, p.errW) }

func (p *serverPipes) closeAll() { closeFiles(p.inR, p.outW, p.errW, p.inW, p.outR, p.errR) }

// closeFiles closes those of files that were opened.
func closeFiles(files ...*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// serve starts the sandboxed server, spawned with pipes' server ends, and
// runs the MCP proxy between vm-run's own stdin/stdout (the client) and the
// server's pipes. It returns the server's status once the server has exited
// and everything it wrote was handled.
func serve(pending *sandbox.Pending, spec *sandbox.Spec, net sandbox.Network, pipes *serverPipes, cfg proxy.Config) (sandbox.Status, error) {
	// A client that goes away must not kill vm-run with SIGPIPE before the
	// server is stopped and the session recorded: with SIGPIPE notified,
	// writes to a closed stdout return EPIPE instead (os/signal, "SIGPIPE").
	sigpipe := make(chan os.Signal, 1)
	signal.Notify(sigpipe, syscall.SIGPIPE)
	defer signal.Stop(sigpipe)

	proc, err := pending.StartNetwork(spec, net)
	pipes.closeServerEnds()
	if err != nil {
		pipes.closeAll()
		return sandbox.Status{}, err
	}
	type result struct {
		st  sandbox.Status
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := proc.Wait()
		done <- result{st, err}
	}()
	stderrDone := make(chan struct{})
	go func() {
		defer close(stderrDone)
		if cfg.Scrubber == nil {
			io.Copy(os.Stderr, pipes.errR)
			return
		}
		// The server's stderr ends in the client's logs: scrubbed as its
		// messages are, and once that fails, drained unseen.
		if err := proxy.ScrubStream(context.Background(), os.Stderr, pipes.errR, cfg.Scrubber, cfg.Recorder); err != nil {
			fmt.Fprintf(os.Stderr, "vm-run: the server's stderr: %v; the rest is discarded\n", err)
			io.Copy(io.Discard, pipes.errR)
		}
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
	perr := proxy.Run(ctx, cfg, os.Stdin, os.Stdout, pipes.inW, pipes.outR)
	r := <-done
	cancel()
	pipes.inW.Close()
	pipes.outR.Close()
	<-stderrDone
	pipes.errR.Close()
	if r.err != nil {
		return r.st, r.err
	}
	if perr != nil && !errors.Is(perr, proxy.ErrServerExited) {
		fmt.Fprintf(os.Stderr, "vm-run: proxy: %v\n", perr)
	}
	return r.st, nil
}
