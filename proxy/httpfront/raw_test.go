package httpfront

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// These tests speak HTTP by hand, to reach what no well-behaved client
// sends: the status codes of "Streamable HTTP" for every refusal.

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

func post(t *testing.T, f *front, session, body string, hdr map[string]string) *http.Response {
	t.Helper()
	return do(t, f, http.MethodPost, session, body, hdr)
}

func do(t *testing.T, f *front, method, session, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+Endpoint, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if session != "" {
		req.Header.Set(HeaderSessionID, session)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// initialize opens a session by hand and returns its id.
func initialize(t *testing.T, f *front) string {
	t.Helper()
	resp := post(t, f, "", initBody, nil)
	var res struct {
		Result struct{ ProtocolVersion string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != 200 {
		t.Fatalf("initialize = %d, %v", resp.StatusCode, err)
	}
	id := resp.Header.Get(HeaderSessionID)
	if len(id) != 32 || res.Result.ProtocolVersion != "2025-11-25" {
		t.Fatalf("initialize gave session %q, version %q", id, res.Result.ProtocolVersion)
	}
	if r := post(t, f, id, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, nil); r.StatusCode != http.StatusAccepted {
		t.Fatalf("notifications/initialized = %d, want 202", r.StatusCode)
	}
	return id
}

func TestRefusals(t *testing.T) {
	f := newFront(t, Config{MaxBodyBytes: 1024, AllowedOrigins: []string{"http://localhost:8700"}, AllowedHosts: []string{"127.0.0.1", "localhost", "::1"}})
	id := initialize(t, f)
	list := `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	v := map[string]string{HeaderProtocolVersion: "2025-11-25"}
	tests := []struct {
		name, method, session, body string
		hdr                         map[string]string
		want                        int
	}{
		{"tools/list", "POST", id, list, v, 200},
		{"no version header", "POST", id, list, nil, 200},
		{"unknown version", "POST", id, list, map[string]string{HeaderProtocolVersion: "1999-01-01"}, 400},
		{"other version than negotiated", "POST", id, list, map[string]string{HeaderProtocolVersion: "2025-06-18"}, 400},
		{"allowed origin", "POST", id, list, map[string]string{"Origin": "http://localhost:8700"}, 200},
		{"bad origin", "POST", id, list, map[string]string{"Origin": "http://evil.example"}, 403},
		{"bad origin on GET", "GET", id, "", map[string]string{"Origin": "http://evil.example"}, 403},
		{"allowed host", "POST", id, list, map[string]string{"Host": "LOCALHOST:8700"}, 200},
		{"allowed IPv6 host", "POST", id, list, map[string]string{"Host": "[::1]:8700"}, 200},
		{"rebound host", "POST", id, list, map[string]string{"Host": "evil.example:8700"}, 403},
		{"oversized body", "POST", id, `{"jsonrpc":"2.0","id":3,"method":"x","params":{"p":"` + strings.Repeat("a", 2048) + `"}}`, nil, 413},
		{"no session id", "POST", "", list, nil, 400},
		{"unknown session", "POST", "0123", list, nil, 404},
		{"batch", "POST", id, "[" + list + "]", nil, 400},
		{"not JSON", "POST", id, "{", nil, 400},
		{"fractional id", "POST", id, `{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}`, nil, 400},
		{"wrong content type", "POST", id, list, map[string]string{"Content-Type": "text/plain"}, 415},
		{"accepts neither", "POST", id, list, map[string]string{"Accept": "text/html"}, 406},
		{"second initialize", "POST", id, initBody, nil, 400},
		{"notification", "POST", id, `{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}`, nil, 202},
		{"PUT", "PUT", id, list, nil, 405},
		{"GET without session", "GET", "", "", nil, 400},
	}
	for _, tt := range tests {
		resp := do(t, f, tt.method, tt.session, tt.body, tt.hdr)
		if resp.StatusCode != tt.want {
			b, _ := io.ReadAll(resp.Body)
			t.Errorf("%s: %s = %d (%s), want %d", tt.name, tt.method, resp.StatusCode, bytes.TrimSpace(b), tt.want)
		}
	}
	if r := do(t, f, "DELETE", id, "", nil); r.StatusCode != http.StatusNoContent {
		t.Errorf("DELETE = %d, want 204", r.StatusCode)
	}
	if r := post(t, f, id, list, nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("POST after DELETE = %d, want 404", r.StatusCode)
	}
}

func TestAuthorizer(t *testing.T) {
	auth := AuthorizerFunc(func(r *http.Request) error {
		switch r.Header.Get("Authorization") {
		case "Bearer good":
			return nil
		case "":
			return ErrUnauthenticated
		}
		return errors.New("token not allowed")
	})
	var refused []int
	f := newFront(t, Config{Authorizer: auth, Refused: func(_ *http.Request, status int, _ error) { refused = append(refused, status) }})
	for _, tt := range []struct {
		token string
		want  int
	}{{"", 401}, {"Bearer bad", 403}, {"Bearer good", 200}} {
		resp := post(t, f, "", initBody, map[string]string{"Authorization": tt.token})
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tt.want {
			t.Errorf("token %q: status %d, want %d", tt.token, resp.StatusCode, tt.want)
		}
		if tt.want != 200 && strings.Contains(string(b), "allowed") {
			t.Errorf("token %q: body %q tells why", tt.token, b)
		}
	}
	if len(refused) != 2 {
		t.Errorf("Refused heard %v, want 401 and 403", refused)
	}
	if _, err := New(Config{Starter: f.starter}); err == nil {
		t.Errorf("New without an Authorizer succeeded")
	}
}

// TestHeldUntilGET checks that a server message with no stream to carry it
// waits for the GET stream and then leaves on it.
func TestHeldUntilGET(t *testing.T) {
	f := newFront(t, Config{})
	id := initialize(t, f)
	// The test server says nothing unasked, so route a line as the
	// session's reader would.
	f.h.mu.Lock()
	s := f.h.sessions[id]
	f.h.mu.Unlock()
	m, err := parseMessage([]byte(`{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`))
	if err != nil {
		t.Fatal(err)
	}
	s.route(m)
	resp := do(t, f, http.MethodGet, id, "", map[string]string{"Accept": "text/event-stream"})
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("GET = %d %q, want 200 text/event-stream", resp.StatusCode, ct)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			if !strings.Contains(data, "list_changed") {
				t.Errorf("GET stream sent %q, want the held notification", data)
			}
			return
		}
	}
	t.Errorf("GET stream ended without the held message: %v", sc.Err())
}

// FuzzParseMessage checks the invariants the router relies on: a message
// that parses is one line of valid JSON ending in a newline, and parsing
// that line again gives the same kind, method, id and progress token.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		initBody,
		`{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x","_meta":{"progressToken":7}}}`,
		`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}`,
		`{"jsonrpc":"2.0","id":7.0,"result":{}}`,
		`{"jsonrpc":"2.0","id":1e3,"error":{"code":-1,"message":"m"}}`,
		"{\"jsonrpc\":\"2.0\",\n\"id\":1,\"method\":\"a\\nb\"}",
		`[{"jsonrpc":"2.0","id":1,"method":"x"}]`,
		`{"jsonrpc":"2.0","id":null,"method":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMessage(b)
		if err != nil {
			return
		}
		body, ok := bytes.CutSuffix(m.line, []byte("\n"))
		if !ok || bytes.ContainsAny(body, "\r\n") || !json.Valid(body) {
			t.Fatalf("parseMessage(%q).line = %q, want one line of JSON", b, m.line)
		}
		again, err := parseMessage(m.line)
		if err != nil {
			t.Fatalf("parseMessage(%q) = %v, but its own line %q does not parse: %v", b, m, m.line, err)
		}
		if again.kind != m.kind || again.method != m.method || again.idKey != m.idKey || again.progressKey != m.progressKey {
			t.Fatalf("parseMessage(%q) = %+v, then %+v from its line", b, m, again)
		}
		if !bytes.Equal(sseEvent(m.line), sseEvent(again.line)) {
			t.Fatalf("line %q changed on a second parse", m.line)
		}
	})
}

// TestCrashAnswersPending checks the -32603 a waiting request gets when its
// server's output ends, and the 404 its session id gets afterwards.
func TestCrashAnswersPending(t *testing.T) {
	f := newFront(t, Config{})
	id := initialize(t, f)
	resp := post(t, f, id, `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"crash","arguments":{}}}`,
		map[string]string{"Accept": "application/json"})
	var res struct {
		ID    int
		Error struct{ Code int }
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || res.ID != 9 || res.Error.Code != codeInternal {
		t.Errorf("call to a crashing server = %+v, %v; want id 9 and error -32603", res, err)
	}
	if r := post(t, f, id, `{"jsonrpc":"2.0","id":10,"method":"ping"}`, nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("POST after the crash = %d, want 404", r.StatusCode)
	}
}
