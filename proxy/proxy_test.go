package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/policy"
)

func TestPassthroughByteForByte(t *testing.T) {
	h := startHarness(t, Config{Policy: policy.Strict()})
	// Odd spacing, key order, escapes and a trailing CR must survive.
	toServer := []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"sampling":{},"elicitation":{},"roots":{"listChanged":true}},"clientInfo":{"name":"t","version":"1"}}}`,
		`{"method":"notifications/initialized","jsonrpc":"2.0"}`,
		` { "jsonrpc" : "2.0" , "id" : "p\u0031" , "method" : "ping" } `,
		`{"jsonrpc":"2.0","id":3,"method":"resources/templates/list","params":{"cursor":"abc"}}` + "\r",
		`{"jsonrpc":"2.0","id":4,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","value":"\u00e9"}}}`,
		`{"jsonrpc":"2.0","id":5,"method":"logging/setLevel","params":{"level":"debug"}}`,
		`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1,"total":2}}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":4,"reason":"x"}}`,
		`{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}`,
		`{"jsonrpc":"2.0","id":6,"method":"resources/read","params":{"uri":"file:///ws/a.txt"}}`,
		`{"jsonrpc":"2.0","id":7,"method":"prompts/get","params":{"name":"p","arguments":{"x":"y"}}}`,
		`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"read_text_file","arguments":{"path":"a.txt"},"_meta":{"progressToken":9}}}`,
	}
	for _, line := range toServer {
		h.client(line)
		if got := h.serverGot(); got != line {
			t.Errorf("server got %q, want %q", got, line)
		}
	}
	toClient := []string{
		`{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{"listChanged":true}},"serverInfo":{"name":"s","version":"1"}}}`,
		`{"result":{},"id":"p\u0031","jsonrpc":"2.0"}`,
		`{"jsonrpc":"2.0","id":3,"result":{"resourceTemplates":[],"nextCursor":"n"}}`,
		`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":{"a":[1,2]}}}`,
		`{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`,
		`{"jsonrpc":"2.0","id":"s1","method":"roots/list"}`,
		`{"jsonrpc":"2.0","id":"s2","method":"ping"}`,
		`{"jsonrpc":"2.0","id":5,"result":{}}`,
		`{"jsonrpc":"2.0","id":6,"result":{"contents":[{"uri":"file:///ws/a.txt","text":"hi"}]}}`,
		`{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"no such prompt"}}`,
		`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":9,"progress":1}}`,
		`{"jsonrpc":"2.0","id":8,"result":{"content":[{"type":"text","text":"hi"}],"isError":false}}`,
	}
	for _, line := range toClient {
		h.server(line)
		if got := h.clientGot(); got != line {
			t.Errorf("client got %q, want %q", got, line)
		}
	}
	// Roots are rewritten (roots_test.go); an empty list comes out as it
	// went in.
	for _, line := range []string{`{"jsonrpc":"2.0","id":"s1","result":{"roots":[]}}`, `{"jsonrpc":"2.0","id":"s2","result":{}}`} {
		h.client(line)
		if got := h.serverGot(); got != line {
			t.Errorf("server got %q, want %q", got, line)
		}
	}
	if err := h.finish(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	decisions, outcomes := h.rec.snapshot()
	if len(decisions) != 4 || len(outcomes) != 4 {
		t.Errorf("recorded %d decisions and %d outcomes, want 4 and 4 (completion/complete of a prompt, resources/read, prompts/get, tools/call)", len(decisions), len(outcomes))
	}
	// The completion was cancelled by the client before it was answered.
	wantStatus := []string{audit.OutcomeCancelled, audit.OutcomeOK, audit.OutcomeError, audit.OutcomeOK}
	for i, o := range outcomes {
		if i < len(wantStatus) && o.Status != wantStatus[i] {
			t.Errorf("outcome %d = %q, want %q", i, o.Status, wantStatus[i])
		}
	}
}

func TestDeniedCallNeverReachesServer(t *testing.T) {
	h := startHarness(t, Config{Policy: loadPolicy(t, "seeds")})
	h.client(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"src/main.go","content":"secret"}}}`)
	if rule := toolDenial(t, h.clientGot(), "1"); rule != "block-src-writes" {
		t.Errorf("denial rule = %q, want %q", rule, "block-src-writes")
	}
	h.client(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"../../etc/passwd"}}}`)
	if rule := toolDenial(t, h.clientGot(), "2"); rule != policy.RulePaths {
		t.Errorf("denial rule = %q, want %q", rule, policy.RulePaths)
	}
	h.client(`{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"x"}}`)
	r := wantError(t, h.clientGot(), "3", CodePolicyDenied)
	if !strings.Contains(r.Error.Message, policy.RuleDefault) || !strings.Contains(string(r.Error.Data), `"retryable":false`) {
		t.Errorf("prompts/get denial = %+v, want the rule and retryable: false", r.Error)
	}
	// The next line the server sees is the ping: nothing denied got through.
	h.client(`{"jsonrpc":"2.0","id":4,"method":"ping"}`)
	if got := h.serverGot(); !strings.Contains(got, `"ping"`) {
		t.Errorf("server got %q, want the ping", got)
	}
	decisions, _ := h.rec.snapshot()
	if len(decisions) != 3 {
		t.Fatalf("recorded %d decisions, want 3", len(decisions))
	}
	// The arguments go to the Recorder as sent: the ledger hashes secrets
	// among them by their real values.
	if d := decisions[0]; d.Verdict != policy.Deny || d.Tool != "write_file" || !strings.Contains(argsText(d), `"content":"secret"`) || string(d.RequestID) != "1" {
		t.Errorf("decision = %+v (args %s), want a denial of write_file with its arguments as sent", d, argsText(d))
	}
	// Each denial was recorded before it was sent.
	evs := h.events.all()
	for i, want := range []string{"record 1 deny", "client<-", "record 2 deny", "client<-", "record 3 deny", "client<-", "server<-"} {
		if i >= len(evs) || !strings.HasPrefix(evs[i], want) {
			t.Fatalf("events = %q, want the order %q", evs, want)
		}
	}
}

func argsText(d audit.Decision) string {
	raw, _ := d.Args.(json.RawMessage)
	return string(raw)
}

func TestRecordBeforeForwardAndOutcomeBeforeResult(t *testing.T) {
	h := startHarness(t, Config{Policy: loadPolicy(t, "seeds")})
	h.client(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"docs/a.md"}}}`)
	h.serverGot()
	h.server(`{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}`)
	h.clientGot()
	evs := h.events.all()
	want := []string{"record 1 allow", "server<-", "outcome 1 tool_error", "client<-"}
	if len(evs) != len(want) {
		t.Fatalf("events = %q, want %q", evs, want)
	}
	for i := range want {
		if !strings.HasPrefix(evs[i], want[i]) {
			t.Errorf("event %d = %q, want %q", i, evs[i], want[i])
		}
	}
}

func TestRecorderFailureDenies(t *testing.T) {
	var reported []error
	cfg := Config{Policy: policy.Permissive(), OnRecorderError: func(err error) { reported = append(reported, err) }}
	h := startHarness(t, cfg)
	h.rec.setFail(errLedger)
	h.client(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}`)
	if rule := toolDenial(t, h.clientGot(), "1"); rule != policy.RuleLedger {
		t.Errorf("denial rule = %q, want %q", rule, policy.RuleLedger)
	}
	h.client(`{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"mem://a"}}`)
	wantError(t, h.clientGot(), "2", CodePolicyDenied)
	h.client(`{"jsonrpc":"2.0","id":3,"method":"ping"}`)
	if got := h.serverGot(); !strings.Contains(got, `"ping"`) {
		t.Errorf("server got %q, want the ping (the denied calls must not get through)", got)
	}
	// A failed outcome withholds the result.
	h.rec.setFail(nil)
	h.client(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{}}}`)
	h.serverGot()
	h.rec.setFail(errLedger)
	h.server(`{"jsonrpc":"2.0","id":4,"result":{"content":[{"type":"text","text":"the result"}]}}`)
	wantError(t, h.clientGot(), "4", CodeInternalError)
	if len(reported) != 3 || !errors.Is(reported[0], errLedger) {
		t.Errorf("OnRecorderError got %v, want 3 errors wrapping %v", reported, errLedger)
	}
	if !strings.Contains(h.logBuf.String(), "disk full") {
		t.Errorf("log %q does not report the ledger failure", h.logBuf.String())
	}
}

func TestClientBadInput(t *testing.T) {
	h := startHarness(t, Config{Policy: policy.Permissive(), MaxLine: 4096})
	tests := []struct {
		name, line, id string
		code           int
	}{
		{"not JSON", `hello`, "null", CodeParseError},
		{"truncated", `{"jsonrpc":"2.0","id":1,"method":"ping"`, "null", CodeParseError},
		{"invalid UTF-8", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"a\":\"\xff\"}}", "null", CodeParseError},
		{"lone surrogate", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file\ud800"}}`, "null", CodeParseError},
		{"too deep", strings.Repeat("[", 600) + strings.Repeat("]", 600), "null", CodeParseError},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, "null", CodeInvalidRequest},
		{"empty batch", `[]`, "null", CodeInvalidRequest},
		{"string", `"ping"`, "null", CodeInvalidRequest},
		{"number", `42`, "null", CodeInvalidRequest},
		{"wrong version", `{"jsonrpc":"1.0","id":1,"method":"ping"}`, "1", CodeInvalidRequest},
		{"no version", `{"id":"a","method":"ping"}`, `"a"`, CodeInvalidRequest},
		{"null id", `{"jsonrpc":"2.0","id":null,"method":"ping"}`, "null", CodeInvalidRequest},
		{"fractional id", `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`, "null", CodeInvalidRequest},
		{"huge id", `{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}`, "null", CodeInvalidRequest},
		{"object id", `{"jsonrpc":"2.0","id":{},"method":"ping"}`, "null", CodeInvalidRequest},
		{"duplicate method", `{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}`, "1", CodeInvalidRequest},
		{"duplicate id", `{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}`, "null", CodeInvalidRequest},
		{"duplicate nested", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}`, "1", CodeInvalidRequest},
		{"method not string", `{"jsonrpc":"2.0","id":1,"method":5}`, "1", CodeInvalidRequest},
		{"scalar params", `{"jsonrpc":"2.0","id":1,"method":"ping","params":3}`, "1", CodeInvalidRequest},
		{"request with result", `{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}`, "1", CodeInvalidRequest},
		{"no method no result", `{"jsonrpc":"2.0","id":1}`, "1", CodeInvalidRequest},
		{"nothing", `{}`, "null", CodeInvalidRequest},
		{"unknown method", `{"jsonrpc":"2.0","id":1,"method":"tools/delete"}`, "1", CodeMethodNotFound},
		{"server method from client", `{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage","params":{}}`, "1", CodeMethodNotFound},
		{"call without name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}`, "1", CodeInvalidParams},
		{"call with array args", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[1]}}`, "1", CodeInvalidParams},
		{"call with array params", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["x"]}`, "1", CodeInvalidParams},
		{"read without uri", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":7}}`, "1", CodeInvalidParams},
		// Answered under its own id when it comes first (issue 9), else null.
		{"over the line limit", `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"` + strings.Repeat("a", 5000) + `"}}`, "1", CodeInvalidRequest},
		{"over the line limit, id last", `{"jsonrpc":"2.0","method":"ping","params":{"x":"` + strings.Repeat("a", 5000) + `"},"id":1}`, "null", CodeInvalidRequest},
	}
	for _, tt := range tests {
		h.client(tt.line)
		got := h.clientGot()
		r := decodeReply(t, got)
		if r.Error == nil || r.Error.Code != tt.code || string(r.ID) != tt.id {
			t.Errorf("%s: client got %s, want error %d with id %s", tt.name, got, tt.code, tt.id)
		}
	}
	// Dropped with a log line, never answered: malformed responses,
	// responses to unknown ids, unknown notifications, blank lines. The
	// next thing either side sees is what follows them.
	for _, line := range []string{
		`{"jsonrpc":"2.0","id":99,"result":{}}`,
		`{"jsonrpc":"2.0","id":99,"result":{},"error":{"code":1,"message":"x"}}`,
		`{"jsonrpc":"2.0","id":99,"error":{"code":"x","message":"x"}}`,
		`{"jsonrpc":"2.0","method":"notifications/unknown"}`,
		``,
		`   `,
	} {
		h.client(line)
	}
	h.client(`{"jsonrpc":"2.0","id":"after","method":"ping"}`)
	if got := h.serverGot(); !strings.Contains(got, `"after"`) {
		t.Errorf("server got %q, want the ping after the dropped lines", got)
	}
	h.client(`{"jsonrpc":"2.0","id":1,"method":"nope"}`)
	wantError(t, h.clientGot(), "1", CodeMethodNotFound)
	for _, want := range []string{"unknown request id 99", "malformed response", `unknown notification "notifications/unknown"`} {
		if !strings.Contains(h.logBuf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, h.logBuf.String())
		}
	}
	// The ledger saw the malformed calls as denials with policy.RuleInvalid.
	decisions, _ := h.rec.snapshot()
	invalids := 0
	for _, d := range decisions {
		if d.Rule == policy.RuleInvalid && d.Verdict == policy.Deny {
			invalids++
		}
	}
	if invalids != 4 {
		t.Errorf("recorded %d invalid calls, want 4", invalids)
	}
}

func TestDuplicateInFlightID(t *testing.T) {
	h := startHarness(t, Config{Policy: policy.Permissive()})
	h.client(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"slow"}}`)
	h.serverGot()
	h.client(`{"jsonrpc":"2.0","id":5,"method":"ping"}`)
	wantError(t, h.clientGot(), "5", CodeInvalidRequest)
	// "5" (a string) is another id; 5 written as "5.0" or 5e0 is refused.
	h.client(`{"jsonrpc":"2.0","id":"5","method":"ping"}`)
	if got := h.serverGot(); !strings.Contains(got, `"5"`) {
		t.Errorf("server got %q, want the ping with id \"5\"", got)
	}
	h.server(`{"jsonrpc":"2.0","id":5,"result":{"content":[]}}`)
	if got := h.clientGot(); got != `{"jsonrpc":"2.0","id":5,"result":{"content":[]}}` {
		t.Errorf("client got %q, want the server's answer", got)
	}
	// The id is free again.
	h.client(`{"jsonrpc":"2.0","id":5,"method":"ping"}`)
	h.serverGot()
}

func TestServerBadInput(t *testing.T) {
	h := startHarness(t, Config{Policy: policy.Strict()})
	h.client(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	h.serverGot()
	h.client(`{"jsonrpc":"2.0","id":2,"method":"ping"}`)
	h.serverGot()

	// Non-JSON on stdout: dropped, and the server is told.
	h.server(`Server listening on stdio`)
	wantError(t, h.serverGot(), "null", CodeParseError)
	// A response to an id nobody asked: dropped.
	h.server(`{"jsonrpc":"2.0","id":77,"result":{}}`)
	// Unknown request: -32601 to the server; unknown notification: dropped.
	h.server(`{"jsonrpc":"2.0","id":"x","method":"shell/exec","params":{}}`)
	wantError(t, h.serverGot(), `"x"`, CodeMethodNotFound)
	h.server(`{"jsonrpc":"2.0","method":"notifications/evil"}`)
	// Sampling is denied by the strict policy: the client never sees it.
	h.server(`{"jsonrpc":"2.0","id":"s","method":"sampling/createMessage","params":{"messages":[],"maxTokens":5}}`)
	r := wantError(t, h.serverGot(), `"s"`, CodePolicyDenied)
	if !strings.Contains(string(r.Error.Data), policy.RuleDefault) {
		t.Errorf("sampling denial data = %s, want rule %q", r.Error.Data, policy.RuleDefault)
	}
	// A malformed answer to a pending request: the client gets -32603.
	h.server(`{"jsonrpc":"2.0","id":2,"result":{"a":1,"a":2}}`)
	wantError(t, h.clientGot(), "2", CodeInternalError)
	// A tools/list result that is not a list: -32603, not forwarded.
	h.server(`{"jsonrpc":"2.0","id":1,"result":{"tools":{"read_file":{}}}}`)
	wantError(t, h.clientGot(), "1", CodeInternalError)
	// Then a good notification still flows.
	h.server(`{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`)
	if got := h.clientGot(); got != `{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}` {
		t.Errorf("client got %q, want the list_changed notification", got)
	}
	for _, want := range []string{"Parse error", "unknown request id 77", `unknown notification "notifications/evil"`, `unknown method "shell/exec"`} {
		if !strings.Contains(h.logBuf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, h.logBuf.String())
		}
	}
}

func TestServerCrashFailsPending(t *testing.T) {
	h := startHarness(t, Config{Policy: policy.Permissive()})
	for i := 1; i <= 3; i++ {
		h.client(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"t%d"}}`, i, i))
		h.serverGot()
	}
	h.server(`{"jsonrpc":"2.0","id":2,"result":{"content":[]}}`)
	h.clientGot()
	h.serverOut.Close() // the server dies mid-call
	var ids []string
	for i := 0; i < 2; i++ {
		r := decodeReply(t, h.clientGot())
		if r.Error == nil || r.Error.Code != CodeInternalError || !strings.Contains(r.Error.Message, "exited") {
			t.Errorf("pending call got %+v, want -32603 saying the server exited", r)
		}
		ids = append(ids, string(r.ID))
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"1", "3"}) {
		t.Errorf("errors went to ids %v, want [1 3]", ids)
	}
	if err := <-h.done; !errors.Is(err, ErrServerExited) {
		t.Errorf("Run = %v, want ErrServerExited", err)
	}
	_, outcomes := h.rec.snapshot()
	gone := 0
	for _, o := range outcomes {
		if o.Status == audit.OutcomeServerGone {
			gone++
		}
	}
	if gone != 2 {
		t.Errorf("recorded %d server_exited outcomes, want 2", gone)
	}
}

func TestClientEOFClosesServerInput(t *testing.T) {
	h := startHarness(t, Config{Policy: policy.Permissive()})
	h.client(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}`)
	h.serverGot()
	h.toProxy.Close()
	<-h.serverEOF
	<-h.clientGone
	// The server's late answer still reaches the client.
	h.server(`{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`)
	if got := h.clientGot(); !strings.Contains(got, `"id":1`) {
		t.Errorf("client got %q, want the late answer", got)
	}
	h.serverOut.Close()
	if err := <-h.done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

func TestCancellationForgetsRequest(t *testing.T) {
	h := startHarness(t, Config{Policy: policy.Permissive()})
	h.client(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}`)
	h.serverGot()
	cancel := `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"reason":"user"}}`
	h.client(cancel)
	if got := h.serverGot(); got != cancel {
		t.Errorf("server got %q, want the cancellation unchanged", got)
	}
	h.server(`{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`) // too late: dropped
	h.server(`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}`)
	if got := h.clientGot(); !strings.Contains(got, "notifications/message") {
		t.Errorf("client got %q, want the log notification (the late answer is dropped)", got)
	}
	_, outcomes := h.rec.snapshot()
	if len(outcomes) != 1 || outcomes[0].Status != audit.OutcomeCancelled {
		t.Errorf("outcomes = %+v, want one %q", outcomes, audit.OutcomeCancelled)
	}
}

func TestCallTimeout(t *testing.T) {
	h := startHarness(t, Config{Policy: policy.Permissive(), CallTimeout: 1})
	h.client(`{"jsonrpc":"2.0","id":"slow","method":"tools/call","params":{"name":"hang"}}`)
	h.serverGot()
	wantError(t, h.clientGot(), `"slow"`, CodeInternalError)
	var n struct {
		Method string
		Params struct {
			RequestID json.RawMessage `json:"requestId"`
		}
	}
	if err := json.Unmarshal([]byte(h.serverGot()), &n); err != nil || n.Method != "notifications/cancelled" || string(n.Params.RequestID) != `"slow"` {
		t.Errorf("server got %+v (%v), want notifications/cancelled for \"slow\"", n, err)
	}
}

// endlessLine yields n bytes of 'a' and then a newline, without holding
// them anywhere.
type endlessLine struct{ n int }

func (r *endlessLine) Read(p []byte) (int, error) {
	if r.n < 0 {
		return 0, io.EOF
	}
	i := 0
	for ; i < len(p) && r.n > 0; i++ {
		p[i] = 'a'
		r.n--
	}
	if i < len(p) && r.n == 0 {
		p[i] = '\n'
		i++
		r.n = -1
	}
	return i, nil
}

func TestLineReaderBounded(t *testing.T) {
	const max = 1 << 20
	r := newLineReader(io.MultiReader(&endlessLine{n: 64 << 20}, strings.NewReader("{}\n")), max)
	line, tooLong, err := r.next()
	if !tooLong || len(line) != headMax || err != nil {
		t.Fatalf("next() on a 64 MiB line = %d bytes, %v, %v; want tooLong with its first %d bytes", len(line), tooLong, err, headMax)
	}
	if cap(r.buf) > max+1 {
		t.Errorf("the reader held %d bytes for a line over the %d-byte limit", cap(r.buf), max)
	}
	if line, _, err := r.next(); string(line) != "{}" || err != nil {
		t.Errorf("next() after the long line = %q, %v; want \"{}\"", line, err)
	}
	if _, _, err := r.next(); err != io.EOF {
		t.Errorf("next() at the end = %v, want io.EOF", err)
	}
	// A line of exactly max bytes is kept; one byte more is not.
	for _, n := range []int{max, max + 1} {
		r := newLineReader(&endlessLine{n: n}, max)
		line, tooLong, _ := r.next()
		if tooLong != (n > max) || (!tooLong && len(line) != n) {
			t.Errorf("next() on a %d-byte line with limit %d = %d bytes, tooLong %v", n, max, len(line), tooLong)
		}
	}
}

// BenchmarkPassthrough measures forwarding of unconcerned requests and
// their answers through Run.
func BenchmarkPassthrough(b *testing.B) {
	clientIn, toProxy := io.Pipe()
	serverIn, toServer := io.Pipe()
	fromServer, serverOut := io.Pipe()
	go func() { // the server answers every ping
		sc := bufio.NewScanner(serverIn)
		for i := 0; sc.Scan(); i++ {
			fmt.Fprintf(serverOut, `{"jsonrpc":"2.0","id":%d,"result":{}}`+"\n", i)
		}
		serverOut.Close()
	}()
	fromProxy, clientOut := io.Pipe()
	go Run(context.Background(), Config{Workspace: testWS, Recorder: Discard}, clientIn, clientOut, toServer, fromServer)
	answers := bufio.NewScanner(fromProxy)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fmt.Fprintf(toProxy, `{"jsonrpc":"2.0","id":%d,"method":"ping"}`+"\n", i)
		if !answers.Scan() {
			b.Fatal("no answer")
		}
	}
	b.StopTimer()
	toProxy.Close()
}

// BenchmarkLargeResult measures a 10 MB tools/call result through Run:
// reading, checking and forwarding one large line.
func BenchmarkLargeResult(b *testing.B) {
	const size = 10 << 20
	result := []byte(`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"` + strings.Repeat("x", size) + `"}]}}` + "\n")
	clientIn, toProxy := io.Pipe()
	serverIn, toServer := io.Pipe()
	fromServer, serverOut := io.Pipe()
	go func() {
		r := bufio.NewReader(serverIn)
		for {
			if _, err := r.ReadBytes('\n'); err != nil {
				serverOut.Close()
				return
			}
			serverOut.Write(result)
		}
	}()
	fromProxy, clientOut := io.Pipe()
	go Run(context.Background(), Config{Workspace: testWS, Recorder: Discard, Policy: policy.Permissive()}, clientIn, clientOut, toServer, fromServer)
	answers := bufio.NewReaderSize(fromProxy, 1<<20)
	b.SetBytes(int64(len(result)))
	b.ResetTimer()
	for range b.N {
		io.WriteString(toProxy, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"big","arguments":{}}}`+"\n")
		line, err := answers.ReadBytes('\n')
		if err != nil || len(line) != len(result) {
			b.Fatalf("answer of %d bytes, %v; want %d", len(line), err, len(result))
		}
	}
	b.StopTimer()
	toProxy.Close()
}
