package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
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

// FuzzDecide checks the path matcher on arbitrary paths: no panic, the
// same answer twice, nothing outside the workspace or ambiguous allowed,
// and the seeds' deny rule never bypassed.
func FuzzDecide(f *testing.F) {
	seedLines(f, "paths.txt", func(s string) { f.Add(s, "write_file") })
	f.Add("docs/a.md", "read_file")
	pol, err := parsePolicy([]byte(`
default_action: deny
rules:
  - id: allow-docs
    allow: ["read(docs/*)", "read(*.md)", "write(**)"]
  - id: block-src-writes
    deny: ["write(src/*)", "write(lib/*)"]
`), "fuzz.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p, toolName string) {
		for _, call := range []CallInfo{
			tool(toolName, map[string]any{"path": p}),
			tool(toolName, map[string]any{"source": "docs/a", "destination": p}),
			tool(toolName, map[string]any{"paths": []any{p, "x.md"}}),
		} {
			d := pol.Decide(call)
			if d2 := pol.Decide(call); d2.Verdict != d.Verdict || d2.RuleID != d.RuleID {
				t.Fatalf("Decide(%q) = %s/%s then %s/%s", p, d.Verdict, d.RuleID, d2.Verdict, d2.RuleID)
			}
			if !d.Allowed() {
				continue
			}
			rel, why := normalizePath(testWS, p)
			if why != "" || !utf8.ValidString(p) || strings.ContainsRune(p, 0) || rel == ".." || strings.HasPrefix(rel, "../") {
				t.Fatalf("Decide allowed %s with path %q (normalised %q, %s)", toolName, p, rel, why)
			}
			segs := strings.Split(rel, "/")
			switch toolName {
			case "write_file", "edit_file", "create_directory", "move_file":
				if rel == "." || segs[0] == "src" || segs[0] == "lib" {
					t.Fatalf("Decide allowed %s on %q past block-src-writes", toolName, p)
				}
			default:
				md := false
				for _, s := range segs {
					if ok, _ := path.Match("*.md", s); ok {
						md = true
					}
				}
				if !md && (segs[0] != "docs" || len(segs) < 2) {
					t.Fatalf("Decide allowed %s on %q, which no allow pattern covers", toolName, p)
				}
			}
		}
	})
}

// FuzzDecodePolicy checks the YAML decoder on arbitrary input: no panic,
// and a policy it accepts decides and survives a YAML round trip.
func FuzzDecodePolicy(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "policies", "*.yaml"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var n yaml.Node
		if yaml.Unmarshal(data, &n) != nil {
			return
		}
		p, err := DecodePolicy(&n, nil)
		if err != nil {
			return
		}
		for _, call := range []CallInfo{path1("read_file", "docs/a.md"), path1("write_file", "src/a"), tool("echo", nil), {Kind: KindSampling}} {
			p.Decide(call)
			p.Visible(call.Kind, call.Name, nil)
		}
		out, err := yaml.Marshal(p)
		if err != nil {
			t.Fatalf("marshal an accepted policy: %v", err)
		}
		if _, err := parsePolicy(out, "again.yaml"); err != nil {
			t.Fatalf("an accepted policy does not decode after a round trip: %v\n%s", err, out)
		}
	})
}
