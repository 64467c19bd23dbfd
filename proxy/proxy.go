package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/policy"
	"github.com/vm-run/vm-run/proxy/approval"
	"github.com/vm-run/vm-run/proxy/pins"
	"github.com/vm-run/vm-run/proxy/secrets"
)

// Defaults for Config.
const (
	DefaultMaxLine    = 256 << 20 // bytes per message
	DefaultMaxPending = 1024      // requests in flight per direction
)

// ErrServerExited is returned by Run when the server's output ended while
// the client was still connected (the server exited or crashed).
var ErrServerExited = errors.New("the MCP server closed its output")

// Config configures Run.
type Config struct {
	// Policy decides on calls. Nil denies every governed call.
	Policy *policy.Policy
	// Resolver tells where path arguments really lead; nil is
	// [policy.FS], the file system as the proxy sees it, which is the
	// server's view of the workspace. Tests may judge lexically.
	Resolver policy.Resolver
	// Workspace is the directory relative path arguments refer to, as the
	// server sees it. Required.
	Workspace string
	// Bases are more directories inside the workspace that the server may
	// read a relative path against from the start, such as directories
	// named on its command line (server-filesystem reads relative paths
	// against the first directory it serves). Relative paths are judged
	// against the workspace, each of these and every root the server is
	// told. Directories outside the workspace are ignored.
	Bases []string
	// MaxLine bounds one message in bytes (0: DefaultMaxLine). Memory use is
	// a small multiple of it, whatever the traffic.
	MaxLine int
	// MaxPending bounds requests in flight per direction (0:
	// DefaultMaxPending); a request beyond it is answered with an error.
	MaxPending int
	// Recorder receives decisions and outcomes. Required: use Discard to run
	// without a ledger.
	Recorder Recorder
	// CallTimeout, if positive, answers a client request the server has not
	// answered in time with an error and cancels it at the server. It
	// counts from the request, or from the server's last progress
	// notification for it (progress.go). vm-run sets DefaultCallTimeout
	// unless told otherwise.
	CallTimeout time.Duration
	// Log receives one line per dropped or refused message (nil: discard).
	Log io.Writer
	// OnRecorderError is called when the Recorder fails (the call is denied
	// either way); the launcher may stop.
	OnRecorderError func(error)
	// Pins holds the tool definitions pinned for this profile and server
	// command (package pins). Each tools/list page is compared with it
	// before it reaches the client: a tool seen for the first time is
	// pinned, a changed one is recorded (audit.ToolChanged) and treated as
	// the policy's tools.on_change says (pinning.go). Nil: no pinning, for
	// tests and library use; vm-run always sets it when it proxies.
	Pins *pins.Set
	// ClientClosed is called once when the client's input ends, after the
	// server's input has been closed; the launcher may start its grace
	// period before SIGTERM and SIGKILL.
	ClientClosed func()
	// Approver puts the questions of ask rules to a person when the client
	// cannot be asked itself (it did not declare elicitation): the
	// approval socket of `vm-run approvals`. Nil: such calls are denied.
	Approver approval.Approver
	// ServerName describes the server in questions: the profile and the
	// command.
	ServerName string
	// Scrubber, if set, replaces the values of the secrets the server
	// was handed in everything it sends toward the client, and each
	// replacement is recorded as secret_redacted (scrub.go). Nil: lines
	// pass as they are, at no cost.
	Scrubber *secrets.Scrubber
}

// Run proxies one MCP session over the stdio transport: newline-delimited
// JSON-RPC 2.0 from client to server and from serverOut to clientOut,
// enforcing cfg.Policy. Messages no policy concerns pass byte for byte.
//
// Run returns when the server's output ends: nil if the client had gone
// first (its input ended, or writing to it failed), ErrServerExited
// otherwise, or ctx.Err() when ctx is done. When the
// client's input ends Run closes server (the server's stdin) and keeps
// forwarding the server's output until it ends. Requests still waiting for
// the server then get an error. Run cannot interrupt a Read on client that
// never returns; the goroutine reading it outlives Run and writes nothing
// after Run returns.
func Run(ctx context.Context, cfg Config, client io.Reader, clientOut io.Writer, server io.WriteCloser, serverOut io.Reader) error {
	p, err := newProxy(cfg, clientOut, server)
	if err != nil {
		return err
	}
	p.ctx = ctx
	serverDone := make(chan error, 1)
	go func() { serverDone <- p.pumpServer(ctx, serverOut) }()
	go p.pumpClient(ctx, client)

	select {
	case err = <-serverDone:
		p.failPending(ctx, "the MCP server exited before answering", audit.OutcomeServerGone)
		if err == nil && !p.clientGone.Load() {
			err = ErrServerExited
		}
	case <-ctx.Done():
		p.failPending(ctx, "vm-run is shutting down", audit.OutcomeServerGone)
		p.toServer.close()
		if c, ok := serverOut.(io.Closer); ok {
			c.Close()
		}
		err = ctx.Err()
	}
	p.stopped.Store(true)
	// Decisions still being recorded answer nothing after Run returns
	// (stopped), but must be done with the Recorder before its owner
	// closes it.
	p.recorders.Wait()
	p.toClient.close()
	return err
}

// proxy is the state of one session.
type proxy struct {
	cfg        Config
	policy     *policy.Policy
	log        io.Writer
	toClient   *lineWriter
	toServer   *lineWriter
	clientGone atomic.Bool
	clientEOF  atomic.Bool
	// stopped is set when Run returns: the goroutine still reading the
	// client must not reach the Recorder any more.
	stopped   atomic.Bool
	closeOnce sync.Once
	seq       atomic.Uint64
	// out carries the client's messages to the server in order.
	out *outbox
	// recorders counts the goroutines recording client decisions.
	recorders sync.WaitGroup
	recq      recQueue
	// quiet: the client's reader has no more input buffered (tryInline).
	quiet atomic.Bool

	mu         sync.Mutex
	fromClient map[string]*pending // client requests awaiting the server
	fromServer map[string]*pending // server requests awaiting the client
	hints      map[string]*policy.ToolAnnotations
	hidden     hiddenTools
	pins       pinState
	progress   map[string]*pending // client requests by progress token
	roots      rootsState
	order      orderState
	ask        askState
	// ctx is Run's, for work that starts on other goroutines.
	ctx context.Context
}

// pending is a forwarded request awaiting its answer.
type pending struct {
	id       []byte // raw id, copied
	method   string
	decision *audit.Decision // nil for requests no policy concerns
	// writes and relative count the request in orderState (see order.go).
	writes, relative bool
	// progressKey is the request's progress token, canonical, if any.
	progressKey string
	start       time.Time
	timer       *time.Timer
	// asking is set while the request waits for a person (ask.go).
	asking *asking
}

func newProxy(cfg Config, clientOut io.Writer, server io.WriteCloser) (*proxy, error) {
	if cfg.Recorder == nil {
		return nil, errors.New("proxy: no Recorder (use proxy.Discard to run without a ledger)")
	}
	if cfg.Workspace == "" || !filepath.IsAbs(cfg.Workspace) {
		return nil, fmt.Errorf("proxy: workspace %q is not an absolute path", cfg.Workspace)
	}
	cfg.Workspace = filepath.Clean(cfg.Workspace)
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = DefaultMaxLine
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	pol, err := cfg.Policy.Ready()
	if err != nil {
		return nil, fmt.Errorf("proxy: tool policy: %w", err)
	}
	log := cfg.Log
	if log == nil {
		log = io.Discard
	}
	p := &proxy{
		cfg:        cfg,
		policy:     pol,
		log:        log,
		toClient:   newLineWriter(clientOut, nil),
		toServer:   newLineWriter(server, server),
		fromClient: map[string]*pending{},
		fromServer: map[string]*pending{},
		hints:      map[string]*policy.ToolAnnotations{},
		progress:   map[string]*pending{},
		roots:      rootsState{bases: startBases(cfg.Workspace, cfg.Bases)},
		hidden:     hiddenTools{w: log},
	}
	p.out = newOutbox(cfg.MaxPending, p.toServer.writeLine)
	return p, nil
}

func (p *proxy) logf(format string, args ...any) {
	line := []byte(fmt.Sprintf("vm-run: proxy: "+format+"\n", args...))
	if p.cfg.Scrubber != nil {
		// A log line may quote what the server sent before it was read
		// whole (the id of a line over the limit): never a secret.
		line, _ = p.cfg.Scrubber.Scrub(line)
	}
	p.log.Write(line)
}

// pumpClient reads the client until EOF, then closes the server's input.
func (p *proxy) pumpClient(ctx context.Context, client io.Reader) {
	r := newLineReader(client, p.cfg.MaxLine)
	for {
		line, tooLong, err := r.next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				p.logf("read from client: %v", err)
			}
			break
		}
		if ctx.Err() != nil || p.stopped.Load() {
			break
		}
		more := r.buffered()
		p.quiet.Store(!more)
		p.toServer.batch(more)
		switch {
		case tooLong:
			p.clientTooLong(ctx, line)
		case len(bytes.TrimSpace(line)) == 0:
		default:
			p.clientLine(ctx, line)
		}
		if more && !r.buffered() {
			p.toServer.batch(false)
		}
	}
	p.toServer.batch(false)
	// The server's input closes once everything queued for it has gone.
	p.out.close(func() { p.clientClosed(true) })
}

// clientClosed runs once when the client is gone: at its EOF (orderly:
// what is buffered for the server is written first), or when writing to
// it fails (not orderly: the server's input closes at once, since a
// server that no longer reads would block a flush for ever).
func (p *proxy) clientClosed(orderly bool) {
	p.closeOnce.Do(func() {
		p.clientGone.Store(true)
		if orderly {
			p.toServer.finish()
		} else {
			p.toServer.close()
		}
		if p.cfg.ClientClosed != nil {
			p.cfg.ClientClosed()
		}
	})
}

// pumpServer reads the server until EOF.
func (p *proxy) pumpServer(ctx context.Context, serverOut io.Reader) error {
	r := newLineReader(serverOut, p.cfg.MaxLine)
	for {
		line, tooLong, err := r.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			p.logf("read from server: %v", err)
			return nil
		}
		more := r.buffered()
		p.toClient.batch(more)
		switch {
		case tooLong:
			p.serverTooLong(ctx, line)
		case len(bytes.TrimSpace(line)) == 0:
		default:
			p.serverLine(ctx, line)
		}
		if more && !r.buffered() {
			p.toClient.batch(false)
		}
	}
}

// replyClient sends the proxy's own error answer to the client.
func (p *proxy) replyClient(id []byte, e rpcError) {
	p.sendClient(errorResponse(id, e))
}

func (p *proxy) replyServer(id []byte, e rpcError) {
	if err := p.toServer.writeLine(errorResponse(id, e)); err != nil {
		p.logf("write to server: %v", err)
	}
}

func (p *proxy) sendClient(line []byte) {
	if err := p.toClient.writeLine(line); err != nil {
		if !errors.Is(err, errWriterClosed) {
			// The client stopped reading: it is gone, as at its EOF (which
			// may or may not have been seen yet when a client exits).
			if !p.clientEOF.Load() {
				p.logf("write to client: %v; treating the client as gone", err)
			}
			p.clientClosed(false)
		}
	}
}

// failPending answers every client request still waiting for the server.
func (p *proxy) failPending(ctx context.Context, msg, status string) {
	p.mu.Lock()
	var all []*pending
	for k, pd := range p.fromClient {
		all = append(all, pd)
		delete(p.fromClient, k)
		p.leftLocked(pd)
		pd.withdrawLocked(errAskEnd)
	}
	p.mu.Unlock()
	p.release()
	for _, pd := range all {
		pd.stop()
		p.outcome(ctx, pd, status, CodeInternalError, 0)
		p.replyClient(pd.id, rpcError{Code: CodeInternalError, Message: msg})
	}
}

func (pd *pending) stop() {
	if pd.timer != nil {
		pd.timer.Stop()
	}
}

// startBases are the workspace and the directories of extra that lie
// inside it.
func startBases(ws string, extra []string) []string {
	bases := []string{ws}
	for _, d := range extra {
		d = filepath.Clean(d)
		if _, ok := inside(ws, d); ok && filepath.IsAbs(d) && !slices.Contains(bases, d) {
			bases = append(bases, d)
		}
	}
	return bases
}
