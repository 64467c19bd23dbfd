package proxy

import (
	"slices"
	"strings"
	"testing"

	"github.com/vm-run/vm-run/audit"
)

const embedPolicy = `
default_action: allow
rules:
  - id: no-secret
    deny: ["resource(demo://secret/**)"]
`

// TestEmbeddedResourcesJudged: a tool result, a prompt and a resources/read
// result that carry a denied resource are withheld; others pass.
func TestEmbeddedResourcesJudged(t *testing.T) {
	pol, err := parsePolicy([]byte(embedPolicy), "embed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := startHarness(t, Config{Policy: pol})
	tests := []struct {
		req, answer string
		denied      bool
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ref"}}`,
			`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"x"},{"type":"resource","resource":{"uri":"DEMO://secret/1","text":"s3cret"}}]}}`, true},
		{`{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"p"}}`,
			`{"jsonrpc":"2.0","id":2,"result":{"messages":[{"role":"user","content":{"type":"resource","resource":{"uri":"demo://secret/01","text":"s3cret"}}}]}}`, true},
		{`{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"demo://public/1"}}`,
			`{"jsonrpc":"2.0","id":3,"result":{"contents":[{"uri":"demo://public/1","text":"a"},{"uri":"demo://secret/2","text":"s3cret"}]}}`, true},
		{`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"ref"}}`,
			`{"jsonrpc":"2.0","id":4,"result":{"content":[{"type":"resource_link","uri":"demo://secret/1","name":"s"},{"type":"resource","resource":{"uri":"demo://public/2","text":"p"}}]}}`, false},
	}
	for _, tt := range tests {
		h.client(tt.req)
		h.serverGot()
		h.server(tt.answer)
		got := h.clientGot()
		if leaked := strings.Contains(got, "s3cret"); leaked != false || tt.denied != strings.Contains(got, "no-secret") {
			t.Errorf("answer to %s = %s; want denied %v, and the secret never passed", tt.req, got, tt.denied)
		}
	}
	decisions, outcomes := h.rec.snapshot()
	var statuses []string
	for _, o := range outcomes {
		statuses = append(statuses, o.Status)
	}
	if want := []string{audit.OutcomeContentDenied, audit.OutcomeContentDenied, audit.OutcomeContentDenied, audit.OutcomeOK}; !slices.Equal(statuses, want) {
		t.Errorf("outcomes %q, want %q", statuses, want)
	}
	var embedDenials int
	for _, d := range decisions {
		if d.Kind == "resource" && d.From == "server" && d.Rule == "no-secret" {
			embedDenials++
		}
	}
	if embedDenials != 3 {
		t.Errorf("%d recorded denials of embedded resources, want 3", embedDenials)
	}
}
