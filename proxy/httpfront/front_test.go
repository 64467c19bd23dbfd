package httpfront

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// These tests put the official Go SDK on both sides of the front: its
// Streamable HTTP client over httptest, and one SDK server per session
// speaking the stdio framing over pipes, as a sandboxed server would.

// pipeSession is a Session whose server is an in-process SDK server.
type pipeSession struct {
	in     *io.PipeWriter
	out    *io.PipeReader
	cancel context.CancelFunc
	closed *atomic.Int32
}

func (p *pipeSession) In() io.WriteCloser { return p.in }
func (p *pipeSession) Out() io.Reader     { return p.out }
func (p *pipeSession) Close() error {
	p.cancel()
	p.out.Close()
	p.closed.Add(1)
	return nil
}

type sdkStarter struct {
	started, closed atomic.Int32
	hanging         chan string // hang calls that have begun
	cancelled       chan string // hang calls whose context ended early
}

func newStarter() *sdkStarter {
	return &sdkStarter{hanging: make(chan string, 8), cancelled: make(chan string, 8)}
}

type noArgs struct{}

type echoArgs struct {
	Text string `json:"text"`
}

func (st *sdkStarter) Start(_ context.Context, id string) (Session, error) {
	st.started.Add(1)
	server := mcp.NewServer(&mcp.Implementation{Name: "fake", Version: "1"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "echo"}, func(_ context.Context, _ *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
	})
	mcp.AddTool(server, &mcp.Tool{Name: "progress"}, func(ctx context.Context, req *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
		for i := range 3 {
			req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
				ProgressToken: req.Params.GetProgressToken(), Progress: float64(i + 1), Total: 3,
			})
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil, nil
	})
	mcp.AddTool(server, &mcp.Tool{Name: "ask"}, func(ctx context.Context, req *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
		res, err := req.Session.Elicit(ctx, &mcp.ElicitParams{Message: "name?"})
		if err != nil {
			return nil, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: res.Action + " " + fmt.Sprint(res.Content["name"])}}}, nil, nil
	})
	mcp.AddTool(server, &mcp.Tool{Name: "hang"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
		st.hanging <- id
		<-ctx.Done()
		st.cancelled <- id
		return nil, nil, ctx.Err()
	})
	serverIn, in := io.Pipe()
	out, serverOut := io.Pipe()
	mcp.AddTool(server, &mcp.Tool{Name: "crash"}, func(context.Context, *mcp.CallToolRequest, noArgs) (*mcp.CallToolResult, any, error) {
		serverOut.CloseWithError(errors.New("server crashed"))
		select {}
	})
	ctx, cancel := context.WithCancel(context.Background())
	ss, err := server.Connect(ctx, &mcp.IOTransport{Reader: serverIn, Writer: serverOut}, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	go func() { ss.Wait(); serverOut.Close() }()
	go func() { <-ctx.Done(); ss.Close() }()
	return &pipeSession{in: in, out: out, cancel: cancel, closed: &st.closed}, nil
}

type front struct {
	h       *Handler
	srv     *httptest.Server
	starter *sdkStarter
}

func newFront(t *testing.T, cfg Config) *front {
	t.Helper()
	f := &front{starter: newStarter()}
	if cfg.Starter == nil {
		cfg.Starter = f.starter
	}
	if cfg.Authorizer == nil {
		cfg.Authorizer = AllowAll
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	mux := http.NewServeMux()
	mux.Handle(Endpoint, h)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		h.Close()
		f.srv.Close()
	})
	return f
}

type clientOpts struct {
	version   string
	noGET     bool
	progress  func(*mcp.ProgressNotificationClientRequest)
	elicited  *atomic.Int32
	transport http.RoundTripper
}

func (f *front) connect(t *testing.T, o clientOpts) (*mcp.ClientSession, error) {
	t.Helper()
	opts := &mcp.ClientOptions{
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			if o.elicited != nil {
				o.elicited.Add(1)
			}
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "ada"}}, nil
		},
	}
	if o.progress != nil {
		opts.ProgressNotificationHandler = func(_ context.Context, r *mcp.ProgressNotificationClientRequest) { o.progress(r) }
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "1"}, opts)
	tr := &mcp.StreamableClientTransport{Endpoint: f.srv.URL + Endpoint, DisableStandaloneSSE: o.noGET, MaxRetries: -1}
	if o.transport != nil {
		tr.HTTPClient = &http.Client{Transport: o.transport}
	}
	return client.Connect(context.Background(), tr, &mcp.ClientSessionOptions{ProtocolVersion: o.version})
}

// text is a tool result's text, or the call's error.
func text(res *mcp.CallToolResult, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func TestSDKClient(t *testing.T) {
	for _, tt := range []struct {
		version string
		noGET   bool
	}{
		{"2025-06-18", false},
		{"2025-11-25", false},
		{"2025-11-25", true}, // server requests ride the tools/call stream
		{"", false},          // the SDK's default: server/discover, then initialize
	} {
		t.Run(fmt.Sprintf("%s noGET=%v", tt.version, tt.noGET), func(t *testing.T) {
			f := newFront(t, Config{})
			var progress []float64
			var pmu sync.Mutex
			elicited := &atomic.Int32{}
			cs, err := f.connect(t, clientOpts{version: tt.version, noGET: tt.noGET, elicited: elicited,
				progress: func(r *mcp.ProgressNotificationClientRequest) {
					pmu.Lock()
					progress = append(progress, r.Params.Progress)
					pmu.Unlock()
				}})
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			ctx := context.Background()
			tools, err := cs.ListTools(ctx, nil)
			if err != nil || len(tools.Tools) != 5 {
				t.Fatalf("ListTools = %v, %v; want 5 tools", tools, err)
			}
			if got := text(cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}})); got != "hi" {
				t.Errorf("echo = %q, want %q", got, "hi")
			}

			p := &mcp.CallToolParams{Name: "progress", Arguments: map[string]any{}}
			p.SetProgressToken("tok-1")
			if got := text(cs.CallTool(ctx, p)); got != "done" {
				t.Errorf("progress = %q, want done", got)
			}
			// The client handles notifications on goroutines of its own, so
			// the last may land after the result.
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				pmu.Lock()
				n := len(progress)
				pmu.Unlock()
				if n == 3 || time.Now().After(deadline) {
					if n != 3 {
						t.Errorf("got %d progress notifications, want 3", n)
					}
					break
				}
			}

			got := text(cs.CallTool(ctx, &mcp.CallToolParams{Name: "ask", Arguments: map[string]any{}}))
			if got != "accept ada" || elicited.Load() != 1 {
				t.Errorf("ask = %q (elicited %d), want %q after one elicitation", got, elicited.Load(), "accept ada")
			}

			// Cancellation: the client's context ends, the SDK sends
			// notifications/cancelled, the server's handler sees it.
			cctx, cancel := context.WithCancel(ctx)
			errc := make(chan error, 1)
			go func() {
				_, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: "hang", Arguments: map[string]any{}})
				errc <- err
			}()
			<-f.starter.hanging
			cancel()
			if err := <-errc; err == nil {
				t.Errorf("cancelled call returned no error")
			}
			select {
			case <-f.starter.cancelled:
			case <-time.After(5 * time.Second):
				t.Errorf("server never saw the cancellation")
			}

			if f.h.Sessions() != 1 {
				t.Errorf("Sessions() = %d, want 1", f.h.Sessions())
			}
			if err := cs.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			if f.h.Sessions() != 0 || f.starter.closed.Load() != 1 {
				t.Errorf("after DELETE: %d sessions, %d closed; want 0 and 1", f.h.Sessions(), f.starter.closed.Load())
			}
		})
	}
}

func TestConcurrentSessions(t *testing.T) {
	f := newFront(t, Config{})
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cs, err := f.connect(t, clientOpts{version: "2025-11-25"})
			if err != nil {
				errs <- err
				return
			}
			defer cs.Close()
			want := fmt.Sprint("session ", i)
			for range 5 {
				res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": want}})
				if err != nil {
					errs <- err
					return
				}
				if got := res.Content[0].(*mcp.TextContent).Text; got != want {
					errs <- fmt.Errorf("echo = %q, want %q", got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := f.starter.started.Load(); got != n {
		t.Errorf("started %d sessions, want %d", got, n)
	}
}

func TestSessionLimit(t *testing.T) {
	f := newFront(t, Config{MaxSessions: 1, RetryAfter: 7 * time.Second})
	cs, err := f.connect(t, clientOpts{version: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	resp := post(t, f, "", initBody, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("initialize over the limit = %d, Retry-After %q; want 503, 7", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	cs.Close()
	if _, err := f.connect(t, clientOpts{version: "2025-11-25"}); err != nil {
		t.Errorf("connect after the first session ended: %v", err)
	}
}

func TestIdleTimeout(t *testing.T) {
	f := newFront(t, Config{IdleTimeout: 500 * time.Millisecond})
	cs, err := f.connect(t, clientOpts{version: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	deadline := time.Now().Add(5 * time.Second)
	for (f.h.Sessions() != 0 || f.starter.closed.Load() != 1) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if f.h.Sessions() != 0 || f.starter.closed.Load() != 1 {
		t.Errorf("after idling: %d sessions, %d closed; want 0 and 1", f.h.Sessions(), f.starter.closed.Load())
	}
	if _, err := cs.ListTools(context.Background(), nil); err == nil {
		t.Errorf("ListTools on an expired session succeeded")
	}
}

var errStart = errors.New("no sandbox today")

type failStarter struct{}

func (failStarter) Start(context.Context, string) (Session, error) { return nil, errStart }

func TestStartFails(t *testing.T) {
	f := newFront(t, Config{Starter: failStarter{}})
	if resp := post(t, f, "", initBody, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("initialize with a failing Starter = %d, want 503", resp.StatusCode)
	}
	if f.h.Sessions() != 0 {
		t.Errorf("Sessions() = %d, want 0", f.h.Sessions())
	}
}

// TestServerCrash checks that a session whose server output ends answers
// its waiting call -32603 and is gone, while another session carries on.
func TestServerCrash(t *testing.T) {
	f := newFront(t, Config{})
	ctx := context.Background()
	other, err := f.connect(t, clientOpts{version: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	cs, err := f.connect(t, clientOpts{version: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	// The client hears -32603 on the call's stream or sees its GET stream
	// end first, whichever its goroutines read first: an error either way.
	if got := text(cs.CallTool(ctx, &mcp.CallToolParams{Name: "crash", Arguments: map[string]any{}})); !strings.HasPrefix(got, "error: ") {
		t.Errorf("crash = %q, want an error", got)
	}
	if f.h.Sessions() != 1 {
		t.Errorf("Sessions() = %d after a crash, want 1", f.h.Sessions())
	}
	if got := text(other.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "still here"}})); got != "still here" {
		t.Errorf("echo in the other session = %q, want %q", got, "still here")
	}
}
