package proxy

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/proxy/secrets"
)

const scrubToken = "ghp_Zq8VnA2kT7xW4mR9cL1s"

// scrubRecorder keeps every record, in order; fail makes Record fail.
type scrubRecorder struct {
	mu   sync.Mutex
	evs  []audit.Event
	fail error
}

func (r *scrubRecorder) Record(_ context.Context, ev audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.evs = append(r.evs, ev)
	return nil
}

func (r *scrubRecorder) Queue(ctx context.Context, ev audit.Event) error { return r.Record(ctx, ev) }

func (r *scrubRecorder) redactions() []audit.SecretRedacted {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []audit.SecretRedacted
	for _, ev := range r.evs {
		if s, ok := ev.(audit.SecretRedacted); ok {
			out = append(out, s)
		}
	}
	return out
}

func (r *scrubRecorder) seqOf(tool string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.evs {
		if d, ok := ev.(audit.Decision); ok && d.Tool == tool {
			return d.Seq
		}
	}
	return 0
}

func startScrubbing(t *testing.T, rec *scrubRecorder) *harness {
	t.Helper()
	pol, err := parsePolicy([]byte("default_action: allow\n"), "allow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := secrets.NewScrubber([]secrets.Secret{{Name: "github", Value: []byte(scrubToken)}})
	if err != nil {
		t.Fatal(err)
	}
	return startHarness(t, Config{Policy: pol, Recorder: rec, Scrubber: s})
}

// TestScrubServerMessages: every kind of server→client message is
// scrubbed before the client reads it, and each redaction is recorded with
// the method and the decision of the call it answers.
func TestScrubServerMessages(t *testing.T) {
	rec := &scrubRecorder{}
	h := startScrubbing(t, rec)
	b64 := base64.StdEncoding.EncodeToString([]byte("Authorization: token " + scrubToken))

	h.client(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get-env","arguments":{}}}`)
	h.serverGot()
	h.server(`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"GITHUB_TOKEN\":\"` + scrubToken +
		`\",\"B\":\"` + b64 + `\"}"}]}}`)
	got := h.clientGot()
	if strings.Contains(got, scrubToken) || strings.Contains(got, b64) || !strings.Contains(got, "[redacted: secret github]") {
		t.Errorf("tool result reached the client as %s, want the token redacted in both forms", got)
	}
	want := audit.SecretRedacted{Name: "github", Forms: []string{"raw", "base64"}, Count: 2, Method: "tools/call", Seq: rec.seqOf("get-env")}
	if r := rec.redactions(); len(r) != 1 || !sameRedaction(r[0], want) {
		t.Errorf("records = %+v, want %+v", r, want)
	}

	// A notification and a request of the server's: scrubbed as well.
	h.server(`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"token=` + scrubToken + `"}}`)
	if got := h.clientGot(); strings.Contains(got, scrubToken) || !strings.Contains(got, "token=[redacted: secret github]") {
		t.Errorf("notification reached the client as %s", got)
	}
	h.server(`{"jsonrpc":"2.0","id":"s1","method":"roots/list","params":{"_meta":{"x":"` + scrubToken + `"}}}`)
	if got := h.clientGot(); strings.Contains(got, scrubToken) {
		t.Errorf("request reached the client as %s", got)
	}
	r := rec.redactions()
	if len(r) != 3 || r[1].Method != "notifications/message" || r[2].Method != "roots/list" || r[2].Seq != 0 {
		t.Errorf("records = %+v, want a notification's and a request's after the result's", r)
	}

	// A message without the secret passes byte for byte.
	h.client(`{"jsonrpc":"2.0","id":2,"method":"ping"}`)
	h.serverGot()
	const pong = `{"jsonrpc":"2.0","id":2,"result":{ }}`
	h.server(pong)
	if got := h.clientGot(); got != pong {
		t.Errorf("ping answer = %s, want %s unchanged", got, pong)
	}
}

func sameRedaction(a, b audit.SecretRedacted) bool {
	return a.Name == b.Name && slices.Equal(a.Forms, b.Forms) && a.Count == b.Count && a.Method == b.Method && a.Seq == b.Seq
}

// TestScrubFailsClosed: an answer that redaction leaves invalid, and one
// whose redaction the ledger cannot record, reach the client as an error,
// never as the unscrubbed line.
func TestScrubFailsClosed(t *testing.T) {
	rec := &scrubRecorder{}
	h := startScrubbing(t, rec)

	// Two keys that differ only by the token become equal.
	h.client(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}`)
	h.serverGot()
	h.server(`{"jsonrpc":"2.0","id":1,"result":{"content":[],"structuredContent":{"[redacted: secret github]":1,"` + scrubToken + `":2}}}`)
	got := h.clientGot()
	if strings.Contains(got, scrubToken) {
		t.Fatalf("client got the token: %s", got)
	}
	e := wantError(t, got, "1", CodeInternalError)
	if e.Error != nil && !strings.Contains(e.Error.Message, "no longer valid JSON-RPC") {
		t.Errorf("error %q does not say why the answer was withheld", e.Error.Message)
	}
	if r := rec.redactions(); len(r) != 1 || r[0].Method != "tools/call" {
		t.Errorf("records = %+v, want the redaction recorded although the answer was withheld", r)
	}

	// The ledger fails: the requester gets an error.
	h.client(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{}}}`)
	h.serverGot()
	rec.mu.Lock()
	rec.fail = errors.New("disk full")
	rec.mu.Unlock()
	h.server(`{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"` + scrubToken + `"}]}}`)
	got = h.clientGot()
	if strings.Contains(got, scrubToken) || strings.Contains(got, "redacted: secret") {
		t.Fatalf("client got %s, want an error and no message content", got)
	}
	if e := wantError(t, got, "2", CodeInternalError); e.Error != nil && !strings.Contains(e.Error.Message, "could not record") {
		t.Errorf("error %q does not name the ledger", e.Error.Message)
	}
	// A notification with the token is dropped.
	h.server(`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"` + scrubToken + `"}}`)
	h.client(`{"jsonrpc":"2.0","id":3,"method":"ping"}`)
	h.serverGot()
	h.server(`{"jsonrpc":"2.0","id":3,"result":{}}`)
	if got := h.clientGot(); !strings.Contains(got, `"id":3`) {
		t.Errorf("after a withheld notification the client got %s, want the ping's answer", got)
	}
	if log := h.logBuf.String(); strings.Contains(log, scrubToken) {
		t.Errorf("the proxy's log holds the token:\n%s", log)
	}
}

// BenchmarkServerLineScrub is the cost the scrubber adds to a tools/call
// result without a secret, the case every message is.
func BenchmarkServerLineScrub(b *testing.B) {
	s, err := secrets.NewScrubber([]secrets.Secret{{Name: "github", Value: []byte(scrubToken)}})
	if err != nil {
		b.Fatal(err)
	}
	line := []byte(fmt.Sprintf(`{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":%q}]}}`,
		strings.Repeat("Echo: the quick brown fox jumps over the lazy dog. ", 20)))
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, hits := s.Scrub(line); hits != nil {
			b.Fatal("hit")
		}
	}
}

// TestScrubStream: the server's stderr is scrubbed line by line, each
// redaction recorded before its line is written, and a line too long to
// scrub whole is dropped.
func TestScrubStream(t *testing.T) {
	s, err := secrets.NewScrubber([]secrets.Secret{{Name: "tok", Value: []byte("ghp_S3cr3tT0kenValue123")}})
	if err != nil {
		t.Fatal(err)
	}
	in := "starting\ndebug: token is ghp_S3cr3tT0kenValue123\n" + strings.Repeat("x", MaxStderrLine+10) + "ghp_S3cr3tT0kenValue123\nlast without newline ghp_S3cr3tT0kenValue123"
	var out bytes.Buffer
	var got []audit.Event
	r := recorderFunc(func(ev audit.Event) error { got = append(got, ev); return nil })
	if err := ScrubStream(context.Background(), &out, strings.NewReader(in), s, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "ghp_S3cr3tT0kenValue123") || !strings.Contains(out.String(), "starting\n") ||
		!strings.Contains(out.String(), "over 1048576 bytes was dropped") || strings.Count(out.String(), "[redacted: secret tok]") != 2 {
		t.Errorf("stderr passed on:\n%.300s", out.String())
	}
	if len(got) != 2 || got[0].(audit.SecretRedacted).Method != "stderr" {
		t.Errorf("records = %+v, want two secret_redacted with method stderr", got)
	}
}

// recorderFunc records through f, synced or queued alike.
type recorderFunc func(audit.Event) error

func (f recorderFunc) Record(_ context.Context, ev audit.Event) error { return f(ev) }
func (f recorderFunc) Queue(_ context.Context, ev audit.Event) error  { return f(ev) }
