package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/vm-run/vm-run/audit"
)

// harness runs Run between a scripted client and a scripted fake server,
// both over io.Pipe. Each side's output is read by a goroutine into a
// channel, so a test reads lines in order and never deadlocks on a pipe.
type harness struct {
	t          *testing.T
	toProxy    *io.PipeWriter // client → proxy
	fromProxy  chan string    // proxy → client
	toServer   chan string    // proxy → server (what the fake server reads)
	serverOut  *io.PipeWriter // server → proxy
	serverEOF  chan struct{}  // closed when the proxy closed the server's stdin
	done       chan error     // Run's result
	rec        *memRecorder
	events     *eventLog
	logBuf     *syncBuffer
	cancel     context.CancelFunc
	clientGone chan struct{}
}

// eventLog orders what the proxy does: records, and lines written to either
// side (logged in the proxy's goroutine, before the pipe write).
type eventLog struct {
	mu  sync.Mutex
	evs []string
}

func (l *eventLog) add(s string) {
	l.mu.Lock()
	l.evs = append(l.evs, s)
	l.mu.Unlock()
}

func (l *eventLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.evs...)
}

type taggedWriter struct {
	tag    string
	events *eventLog
	w      io.WriteCloser
}

func (w *taggedWriter) Write(b []byte) (int, error) {
	if s := strings.TrimSuffix(string(b), "\n"); s != "" {
		w.events.add(w.tag + s)
	}
	return w.w.Write(b)
}

func (w *taggedWriter) Close() error { return w.w.Close() }

// memRecorder keeps decisions, outcomes and roots; fail makes it fail.
type memRecorder struct {
	mu        sync.Mutex
	decisions []audit.Decision
	outcomes  []audit.Outcome
	roots     []audit.Roots
	approvals []audit.Event // approval_* records, in order
	fail      error
	events    *eventLog
}

func (r *memRecorder) Record(_ context.Context, ev audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	switch ev := ev.(type) {
	case audit.Decision:
		r.decisions = append(r.decisions, ev)
		if r.events != nil {
			r.events.add(fmt.Sprintf("record %d %s", ev.Seq, ev.Verdict))
		}
	case audit.Roots:
		r.roots = append(r.roots, ev)
		if r.events != nil {
			r.events.add(fmt.Sprintf("roots %v", ev.Kept))
		}
	case audit.ApprovalRequested, audit.ApprovalGranted, audit.ApprovalDenied, audit.ApprovalExpired:
		r.approvals = append(r.approvals, ev)
		if r.events != nil {
			r.events.add(ev.EventType())
		}
	default:
		return fmt.Errorf("Record(%T): not a synced record", ev)
	}
	return nil
}

func (r *memRecorder) Queue(_ context.Context, ev audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	o, ok := ev.(audit.Outcome)
	if !ok {
		return fmt.Errorf("Queue(%T): only outcomes are queued", ev)
	}
	r.outcomes = append(r.outcomes, o)
	if r.events != nil {
		r.events.add(fmt.Sprintf("outcome %d %s", o.Seq, o.Status))
	}
	return nil
}

func (r *memRecorder) setFail(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

func (r *memRecorder) snapshot() ([]audit.Decision, []audit.Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Decision(nil), r.decisions...), append([]audit.Outcome(nil), r.outcomes...)
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func readLines(r io.Reader, ch chan<- string, eof chan<- struct{}) {
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			ch <- strings.TrimSuffix(line, "\n")
		}
		if err != nil {
			if eof != nil {
				close(eof)
			}
			close(ch)
			return
		}
	}
}

func startHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	events := &eventLog{}
	h := &harness{
		t:          t,
		fromProxy:  make(chan string, 1024),
		toServer:   make(chan string, 1024),
		serverEOF:  make(chan struct{}),
		done:       make(chan error, 1),
		rec:        &memRecorder{events: events},
		events:     events,
		logBuf:     &syncBuffer{},
		clientGone: make(chan struct{}),
	}
	if cfg.Recorder == nil {
		cfg.Recorder = h.rec
	}
	if cfg.Workspace == "" {
		cfg.Workspace = testWS
	}
	cfg.Log = h.logBuf
	cfg.ClientClosed = func() { close(h.clientGone) }
	clientIn, toProxy := io.Pipe()
	fromProxyR, fromProxyW := io.Pipe()
	serverInR, serverInW := io.Pipe()
	serverOutR, serverOutW := io.Pipe()
	h.toProxy, h.serverOut = toProxy, serverOutW
	go readLines(fromProxyR, h.fromProxy, nil)
	go readLines(serverInR, h.toServer, h.serverEOF)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		h.done <- Run(ctx, cfg, clientIn,
			&taggedWriter{"client<-", events, fromProxyW},
			&taggedWriter{"server<-", events, serverInW}, serverOutR)
		fromProxyW.Close()
	}()
	t.Cleanup(func() {
		cancel()
		toProxy.Close()
		serverOutW.Close()
	})
	return h
}

// client sends one line from the client.
func (h *harness) client(line string) {
	h.t.Helper()
	if _, err := io.WriteString(h.toProxy, line+"\n"); err != nil {
		h.t.Fatalf("client write: %v", err)
	}
}

// server sends one line from the server.
func (h *harness) server(line string) {
	h.t.Helper()
	if _, err := io.WriteString(h.serverOut, line+"\n"); err != nil {
		h.t.Fatalf("server write: %v", err)
	}
}

// clientGot returns the next line the client received.
func (h *harness) clientGot() string {
	h.t.Helper()
	line, ok := <-h.fromProxy
	if !ok {
		h.t.Fatalf("client output closed; proxy log:\n%s", h.logBuf.String())
	}
	return line
}

// serverGot returns the next line the server received.
func (h *harness) serverGot() string {
	h.t.Helper()
	line, ok := <-h.toServer
	if !ok {
		h.t.Fatalf("server input closed; proxy log:\n%s", h.logBuf.String())
	}
	return line
}

// rpcReply is a response as a client or server reads it.
type rpcReply struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
}

func decodeReply(t *testing.T, line string) rpcReply {
	t.Helper()
	var r rpcReply
	if err := json.Unmarshal([]byte(line), &r); err != nil || r.JSONRPC != "2.0" {
		t.Fatalf("not a JSON-RPC response: %q (%v)", line, err)
	}
	return r
}

// wantError checks that line is an error response with the id and code.
func wantError(t *testing.T, line, id string, code int) rpcReply {
	t.Helper()
	r := decodeReply(t, line)
	if r.Error == nil || r.Error.Code != code || string(r.ID) != id {
		t.Errorf("got %s, want error %d for id %s", line, code, id)
	}
	return r
}

// toolDenial checks a tools/call denial and returns its rule.
func toolDenial(t *testing.T, line, id string) string {
	t.Helper()
	r := decodeReply(t, line)
	var res struct {
		Content []struct{ Type, Text string }
		IsError bool `json:"isError"`
		Meta    map[string]struct {
			Rule      string `json:"rule"`
			Reason    string `json:"reason"`
			Retryable *bool  `json:"retryable"`
		} `json:"_meta"`
	}
	if string(r.ID) != id || json.Unmarshal(r.Result, &res) != nil || !res.IsError || len(res.Content) != 1 {
		t.Fatalf("got %s, want a tool error result for id %s", line, id)
	}
	meta := res.Meta[MetaKey]
	if meta.Retryable == nil || *meta.Retryable || meta.Reason == "" {
		t.Errorf("denial %s: _meta[%q] = %+v, want rule, reason and retryable: false", line, MetaKey, meta)
	}
	if text := res.Content[0].Text; !strings.Contains(text, meta.Rule) || !strings.Contains(text, "retrying it will be denied again") {
		t.Errorf("denial text %q does not name rule %q and say that retrying will not help", text, meta.Rule)
	}
	return meta.Rule
}

// finish closes the client and then the server, and returns Run's result.
func (h *harness) finish() error {
	h.t.Helper()
	h.toProxy.Close()
	<-h.serverEOF
	h.serverOut.Close()
	err := <-h.done
	for range h.fromProxy {
	}
	return err
}

var errLedger = errors.New("ledger: disk full")
