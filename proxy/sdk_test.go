package proxy

import (
	"context"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vm-run/vm-run/policy"
)

// These tests put the proxy between the official Go SDK's client and
// server, so the framing and the denial shapes are checked against a real
// MCP implementation rather than against this package's idea of one.

const sdkPolicy = `
default_action: deny
rules:
  - id: tools
    allow: ["echo", "ask", "read(docs/**)"]
  - id: tmp-writes
    allow: ["write(tmp/**)"]
  - id: no-src
    reason: sources are read-only for agents
    deny: ["write(src/**)"]
`

type pathArg struct {
	Path string `json:"path"`
}

type sdkSession struct {
	client  *mcp.ClientSession
	calls   map[string]*atomic.Int32 // server-side handler invocations
	sampled atomic.Int32             // client-side sampling handler invocations
	elicits atomic.Int32
	rec     *memRecorder
	runErr  chan error
}

func text(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			b.WriteString(t.Text)
		}
	}
	return b.String()
}

func startSDK(t *testing.T, version string) *sdkSession {
	t.Helper()
	pol, err := parsePolicy([]byte(sdkPolicy), "sdk.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := &sdkSession{calls: map[string]*atomic.Int32{}, rec: &memRecorder{}, runErr: make(chan error, 1)}
	for _, name := range []string{"echo", "read_file", "write_file", "shell", "ask"} {
		s.calls[name] = &atomic.Int32{}
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "fake", Version: "1"}, nil)
	pathTool := func(name string) mcp.ToolHandlerFor[pathArg, any] {
		return func(_ context.Context, _ *mcp.CallToolRequest, in pathArg) (*mcp.CallToolResult, any, error) {
			s.calls[name].Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name + " " + in.Path}}}, nil, nil
		}
	}
	yes, no := true, false
	mcp.AddTool(server, &mcp.Tool{Name: "echo"}, pathTool("echo"))
	mcp.AddTool(server, &mcp.Tool{Name: "read_file", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, pathTool("read_file"))
	mcp.AddTool(server, &mcp.Tool{Name: "write_file", Annotations: &mcp.ToolAnnotations{DestructiveHint: &yes}}, pathTool("write_file"))
	mcp.AddTool(server, &mcp.Tool{Name: "shell", Annotations: &mcp.ToolAnnotations{DestructiveHint: &no}}, pathTool("shell"))
	// ask needs sampling and elicitation. It asks the way the SDK wants for
	// every protocol version: as inputRequests in its result (2026-07-28),
	// which the SDK turns into server requests for older clients.
	mcp.AddTool(server, &mcp.Tool{Name: "ask"}, func(ctx context.Context, req *mcp.CallToolRequest, _ pathArg) (*mcp.CallToolResult, any, error) {
		s.calls["ask"].Add(1)
		if len(req.Params.InputResponses) == 0 {
			return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{
				"e": &mcp.ElicitParams{Message: "password?"},
				"s": &mcp.CreateMessageParams{MaxTokens: 5, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "hi"}}}},
			}}, nil, nil
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "answered"}}}, nil, nil
	})

	clientIn, toProxy := io.Pipe()
	fromProxy, clientOut := io.Pipe()
	serverIn, toServer := io.Pipe()
	fromServer, serverOut := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if _, err := server.Connect(ctx, &mcp.IOTransport{Reader: serverIn, Writer: serverOut}, nil); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.runErr <- Run(ctx, Config{Policy: pol, Workspace: testWS, Recorder: s.rec}, clientIn, clientOut, toServer, fromServer)
		clientOut.Close()
	}()
	client := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "1"}, &mcp.ClientOptions{
		CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			s.sampled.Add(1)
			return &mcp.CreateMessageResult{Model: "m", Role: "assistant", Content: &mcp.TextContent{Text: "leak"}}, nil
		},
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			s.elicits.Add(1)
			return &mcp.ElicitResult{Action: "decline"}, nil
		},
	})
	cs, err := client.Connect(ctx, &mcp.IOTransport{Reader: fromProxy, Writer: toProxy}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect through the proxy (protocol %s): %v", version, err)
	}
	s.client = cs
	return s
}

func TestSDKThroughProxy(t *testing.T) {
	for _, version := range []string{"2025-06-18", "2025-11-25", ""} {
		t.Run("protocol "+version, func(t *testing.T) {
			s := startSDK(t, version)
			ctx := context.Background()

			var names []string
			for tool, err := range s.client.Tools(ctx, nil) {
				if err != nil {
					t.Fatalf("list tools: %v", err)
				}
				names = append(names, tool.Name)
			}
			slices.Sort(names)
			if want := []string{"ask", "echo", "read_file", "write_file"}; !slices.Equal(names, want) {
				t.Errorf("tools = %v, want %v", names, want)
			}

			tests := []struct {
				tool, path string
				wantRule   string // "" for an allowed call
			}{
				{"echo", "x", ""},
				{"read_file", "docs/a.md", ""},
				{"read_file", "src/a.go", policy.RuleDefault},
				{"read_file", "../../etc/passwd", policy.RulePaths},
				{"write_file", "tmp/out", ""},
				{"write_file", "src/main.go", "no-src"},
				{"shell", "rm -rf /", policy.RuleDefault},
			}
			for _, tt := range tests {
				before := s.calls[tt.tool].Load()
				res, err := s.client.CallTool(ctx, &mcp.CallToolParams{Name: tt.tool, Arguments: map[string]any{"path": tt.path}})
				if err != nil {
					t.Errorf("CallTool(%s %q): %v", tt.tool, tt.path, err)
					continue
				}
				reached := s.calls[tt.tool].Load() > before
				if tt.wantRule == "" {
					if res.IsError || !reached || text(res) != tt.tool+" "+tt.path {
						t.Errorf("CallTool(%s %q) = %q (isError %v, reached %v), want the tool's answer", tt.tool, tt.path, text(res), res.IsError, reached)
					}
					continue
				}
				meta, _ := res.Meta[MetaKey].(map[string]any)
				if !res.IsError || reached || meta["rule"] != tt.wantRule || !strings.Contains(text(res), "retrying it will be denied again") {
					t.Errorf("CallTool(%s %q) = %q (isError %v, reached %v, _meta %v), want a denial by %q", tt.tool, tt.path, text(res), res.IsError, reached, res.Meta, tt.wantRule)
				}
			}

			// The server asks for sampling and elicitation; the policy
			// allows neither, so the client's handlers never run.
			res, err := s.client.CallTool(ctx, &mcp.CallToolParams{Name: "ask", Arguments: map[string]any{"path": "-"}})
			if s.sampled.Load() != 0 || s.elicits.Load() != 0 {
				t.Errorf("client handled %d sampling and %d elicitation requests, want none", s.sampled.Load(), s.elicits.Load())
			}
			switch {
			case err != nil: // older protocols: the server's requests were denied
				if !strings.Contains(err.Error(), "vm-run policy denied") {
					t.Errorf("CallTool(ask) = %v, want the server's sampling or elicitation denied", err)
				}
			case !res.IsError || !strings.Contains(text(res), policy.RuleDefault):
				// 2026-07-28: the result asking for input was replaced.
				t.Errorf("CallTool(ask) = %q, want a denial of the input it asks for", text(res))
			}

			if err := s.client.Close(); err != nil {
				t.Errorf("close client: %v", err)
			}
			if err := <-s.runErr; err != nil {
				t.Errorf("Run = %v, want nil after the client closed", err)
			}
			decisions, outcomes := s.rec.snapshot()
			if len(decisions) < len(tests)+2 || len(outcomes) == 0 {
				t.Errorf("recorded %d decisions and %d outcomes, want at least %d and some", len(decisions), len(outcomes), len(tests)+2)
			}
		})
	}
}
