package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedLines adds every line of a testdata file to the corpus.
func seedLines(f *testing.F, name string, add func(string)) {
	f.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		add(line)
	}
}

// FuzzParseMessage checks the line classifier: it never panics, accepts
// only what encoding/json accepts, and every answer it builds is one valid
// JSON line.
func FuzzParseMessage(f *testing.F) {
	seedLines(f, "messages.jsonl", func(s string) { f.Add([]byte(s)) })
	f.Fuzz(func(t *testing.T, line []byte) {
		if bytes.IndexByte(line, '\n') >= 0 {
			return // the line reader never hands over a newline
		}
		_, scanErr := scanLine(line)
		if scanErr == nil && !json.Valid(line) {
			t.Fatalf("scanLine accepted %q, which encoding/json rejects", line)
		}
		m, bad := parseMessage(line)
		if (m == nil) == (bad == nil) {
			t.Fatalf("parseMessage(%q) = %v, %v; want exactly one", line, m, bad)
		}
		if bad != nil {
			out := errorResponse(bad.id, bad.rpcError)
			if !json.Valid(out) || bytes.IndexByte(out, '\n') >= 0 {
				t.Fatalf("error answer to %q is not one JSON line: %q", line, out)
			}
			return
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(line, &obj); err != nil {
			t.Fatalf("parseMessage accepted %q, not a JSON object: %v", line, err)
		}
		var method string
		if json.Unmarshal(obj["method"], &method); method != m.method {
			t.Fatalf("parseMessage(%q) method %q, encoding/json reads %q", line, m.method, method)
		}
	})
}

// FuzzProxy feeds arbitrary client input through Run, in front of a fake
// server that answers every request, under a policy that denies
// everything. Invariants: Run returns; every line the client gets is one
// JSON-RPC object; every line the server gets is a client line byte for
// byte or the proxy's own cancellation; no governed call reaches the
// server.
func FuzzProxy(f *testing.F) {
	var all []string
	seedLines(f, "messages.jsonl", func(s string) {
		f.Add([]byte(s + "\n"))
		all = append(all, s)
	})
	f.Add([]byte(strings.Join(all, "\n")))
	f.Add([]byte(strings.Repeat("x", 3000) + "\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}"))
	f.Fuzz(func(t *testing.T, input []byte) {
		inputLines := map[string]bool{}
		for _, l := range bytes.Split(input, []byte("\n")) {
			inputLines[string(l)] = true
		}
		serverIn, toServer := io.Pipe()
		fromServer, serverOut := io.Pipe()
		var clientOut bytes.Buffer
		var serverGot []string
		done := make(chan struct{})
		go func() { // the fake server
			defer close(done)
			defer serverOut.Close()
			sc := bufio.NewScanner(serverIn)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				line := sc.Text()
				serverGot = append(serverGot, line)
				var msg map[string]json.RawMessage
				if json.Unmarshal([]byte(line), &msg) == nil && msg["id"] != nil && msg["method"] != nil {
					io.WriteString(serverOut, `{"jsonrpc":"2.0","id":`+string(msg["id"])+`,"result":{"tools":[{"name":"x"}]}}`+"\n")
				}
			}
			io.Copy(io.Discard, serverIn)
		}()
		err := Run(context.Background(), Config{Workspace: testWS, Recorder: Discard, MaxLine: 2048}, bytes.NewReader(input), &clientOut, toServer, fromServer)
		<-done
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
		for _, line := range strings.Split(strings.TrimSuffix(clientOut.String(), "\n"), "\n") {
			if line == "" {
				continue
			}
			var msg map[string]json.RawMessage
			if err := json.Unmarshal([]byte(line), &msg); err != nil || string(msg["jsonrpc"]) != `"2.0"` {
				t.Fatalf("client got %q, not a JSON-RPC object (%v)", line, err)
			}
		}
		for _, line := range serverGot {
			var msg map[string]json.RawMessage
			if err := json.Unmarshal([]byte(line), &msg); err != nil {
				t.Fatalf("server got %q, not JSON (%v)", line, err)
			}
			var method string
			json.Unmarshal(msg["method"], &method)
			switch {
			case method == "tools/call" || method == "resources/read" || method == "resources/subscribe" || method == "prompts/get":
				t.Fatalf("a %s reached the server under a deny-all policy: %q", method, line)
			case !inputLines[line] && !inputLines[line+"\r"] && method != "notifications/cancelled":
				t.Fatalf("server got %q, which the client did not send", line)
			}
		}
	})
}
