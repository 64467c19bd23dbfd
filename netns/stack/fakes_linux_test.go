//go:build linux

package stack

// The test's stand-ins for the policy, the host's dialer and the ledger,
// the upstream servers on the host's loopback, and env, which ties them
// to a sandbox and a Stack.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/netns/egress"
)

// fakePolicy allows what its rules list: a name by equality or as a
// subdomain of a wildcard, an address literal by equality.
type fakePolicy struct{ rules []*egress.Rule }

func newPolicy(t testing.TB, rules ...string) *fakePolicy {
	t.Helper()
	p := &fakePolicy{}
	for _, s := range rules {
		noSNI := strings.HasSuffix(s, " nosni")
		r, err := egress.ParseRule(strings.TrimSuffix(s, " nosni"))
		if err != nil {
			t.Fatal(err)
		}
		r.NoSNI = noSNI
		p.rules = append(p.rules, &r)
	}
	return p
}

func hostMatches(host, name string) bool {
	if suffix, ok := strings.CutPrefix(host, "*."); ok {
		return strings.HasSuffix(name, "."+suffix)
	}
	return host == name
}

func (p *fakePolicy) Name(name string) (*egress.Rule, bool) {
	for _, r := range p.rules {
		if hostMatches(r.Host, name) {
			return r, true
		}
	}
	return nil, false
}

func (p *fakePolicy) Connect(name string, addr netip.Addr, port uint16) (*egress.Rule, string) {
	for _, r := range p.rules {
		if !slices.Contains(r.Ports, port) {
			continue
		}
		if name != "" && hostMatches(r.Host, name) || name == "" && r.Host == addr.String() {
			return r, ""
		}
	}
	if name == "" {
		name = addr.String()
	}
	return nil, fmt.Sprintf("no rule allows %s:%d", name, port)
}

// fakeDialer dials the loopback address its targets give each "name:port"
// or "addr:port"; the target "block" never answers (a black hole) and
// "refuse:REASON" is a *egress.Refusal. Anything else is not dialled.
type fakeDialer struct {
	mu      sync.Mutex
	targets map[string]string
	dials   atomic.Int64
}

func (d *fakeDialer) set(key, target string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.targets[key] = target
}

func (d *fakeDialer) Dial(ctx context.Context, name string, addr netip.Addr, port uint16, rule *egress.Rule) (net.Conn, string, string, error) {
	d.dials.Add(1)
	key := name
	if key == "" {
		key = addr.String()
	}
	key = fmt.Sprintf("%s:%d", key, port)
	d.mu.Lock()
	target, ok := d.targets[key]
	d.mu.Unlock()
	switch {
	case !ok:
		return nil, "", "", &egress.Refusal{Reason: "test dialer: no target for " + key}
	case target == "block":
		<-ctx.Done()
		return nil, "", "", ctx.Err()
	case strings.HasPrefix(target, "refuse:"):
		return nil, "", "", &egress.Refusal{Reason: strings.TrimPrefix(target, "refuse:")}
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp4", target)
	if err != nil {
		return nil, "", "", err
	}
	return c, target, "", nil
}

// fakeRecorder keeps the records; fail, when set, decides which fail.
type fakeRecorder struct {
	mu   sync.Mutex
	evs  []audit.Event
	fail func(audit.Event) error
}

func (r *fakeRecorder) Record(_ context.Context, ev audit.Event) error {
	r.mu.Lock()
	fail := r.fail
	r.mu.Unlock()
	// Outside the lock: a hook that writes a real ledger syncs
	// concurrent records together, as vm-run's does.
	if fail != nil {
		if err := fail(ev); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
	return nil
}

func (r *fakeRecorder) setFail(f func(audit.Event) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = f
}

// connects returns the NetConnect records so far.
func (r *fakeRecorder) connects() []audit.NetConnect {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []audit.NetConnect
	for _, ev := range r.evs {
		if c, ok := ev.(audit.NetConnect); ok {
			out = append(out, c)
		}
	}
	return out
}

// closes returns the NetClose records so far.
func (r *fakeRecorder) closes() []audit.NetClose {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []audit.NetClose
	for _, ev := range r.evs {
		if c, ok := ev.(audit.NetClose); ok {
			out = append(out, c)
		}
	}
	return out
}

// waitFor polls cond for up to five seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("gave up waiting for %s", what)
}

// env is one sandbox on one Stack, with the fakes behind it.
type env struct {
	t      testing.TB
	sb     *sandbox
	st     *Stack
	pol    *fakePolicy
	dialer *fakeDialer
	rec    *fakeRecorder
	names  *egress.Names
	// goroutines is how many the test process ran just before Start.
	goroutines int
}

// newEnv starts a sandbox and a Stack on its device with the given rules
// and limits; targets map "name:port" to the loopback address dialled.
func newEnv(t testing.TB, lim egress.Limits, rules []string, targets map[string]string) *env {
	t.Helper()
	sb := newSandbox(t)
	e := &env{
		t: t, sb: sb,
		pol:    newPolicy(t, rules...),
		dialer: &fakeDialer{targets: map[string]string{}},
		rec:    &fakeRecorder{},
		names:  egress.NewNames(),
	}
	for k, v := range targets {
		e.dialer.set(k, v)
	}
	e.goroutines = runtime.NumGoroutine()
	st, err := Start(sb.tun, egress.Config{Policy: e.pol, Names: e.names, Dialer: e.dialer, Recorder: e.rec, Limits: lim})
	sb.tun = nil // the Stack owns it now
	if err != nil {
		t.Fatalf("Start() = %v", err)
	}
	e.st = st
	t.Cleanup(func() {
		if err := closeWithin(st, closeBound); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return e
}

// closeBound is how long the harness waits for Stack.Close: far more
// than it takes (the records written at Close have 10 s each), so that a
// Close that never returns fails the test with every goroutine's stack
// rather than hanging it (go test's -timeout does not cover benchmarks).
const closeBound = 90 * time.Second

// closeWithin calls st.Close and waits at most d for it to return. When
// it does not, the error holds the stacks of every goroutine, and the
// Close is left running.
func closeWithin(st *Stack, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- st.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("not returned after %v; the goroutines:\n%s", d, allStacks())
	}
}

// allStacks returns the stacks of every goroutine of the test process.
func allStacks() []byte {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}

// addr hands name a synthetic address, as the stub does when the
// sandbox resolves it, and returns "addr:port".
func (e *env) addr(name string, port int) string {
	a, ok := e.names.Addr(name)
	if !ok {
		e.t.Fatalf("no synthetic address left for %s", name)
	}
	return fmt.Sprintf("%s:%d", a, port)
}

// do runs a command in the sandbox.
func (e *env) do(c cmd) result {
	e.t.Helper()
	return e.sb.do(c)
}

// mustDo runs a command that must succeed.
func (e *env) mustDo(c cmd) result {
	e.t.Helper()
	r := e.sb.do(c)
	if r.Errno != "" {
		e.t.Fatalf("%s %s %s: %s (%s)", c.Op, c.ID, c.Addr, r.Errno, r.Err)
	}
	return r
}

// upstreamBound is how long a listener's cleanup waits for the
// connections it still serves to end. It runs after the Stack's Close
// (cleanups run last registered first, and listen comes before newEnv),
// which closed every upstream connection: their ends on this side see
// the close at once.
const upstreamBound = 30 * time.Second

// listen runs serve on each connection to a new loopback listener and
// returns the listener's address. At the end of the test, a connection
// still served upstreamBound after the listener closed fails the test
// (the stack left it open) and is closed.
func listen(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
	)
	t.Cleanup(func() {
		l.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
			return
		case <-time.After(upstreamBound):
		}
		mu.Lock()
		t.Errorf("%d upstream connections still open %v after the test ended", len(conns), upstreamBound)
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		<-done
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				serve(c)
			}()
		}
	}()
	return l.Addr().String()
}

// echo sends back what it reads, and half-closes when its peer does.
func echo(c net.Conn) {
	io.Copy(c, c)
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
}

// bulk writes zeros until its peer goes away.
func bulk(c net.Conn) {
	buf := make([]byte, 256<<10)
	for {
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// closedPort returns a loopback address nothing listens on: a dial gets
// ECONNREFUSED.
func closedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

var errRecord = errors.New("test recorder: disk full")
