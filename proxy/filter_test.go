package proxy

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/policy"
)

// listed returns the names (or URIs) in one page of a list result, and the
// page's nextCursor.
func listed(t *testing.T, line, key, nameKey string) ([]string, string) {
	t.Helper()
	r := decodeReply(t, line)
	var res map[string]json.RawMessage
	if err := json.Unmarshal(r.Result, &res); err != nil {
		t.Fatalf("result of %s: %v", line, err)
	}
	var items []map[string]any
	if err := json.Unmarshal(res[key], &items); err != nil {
		t.Fatalf("%s of %s: %v", key, line, err)
	}
	var names []string
	for _, it := range items {
		names = append(names, it[nameKey].(string))
	}
	var cursor string
	json.Unmarshal(res["nextCursor"], &cursor)
	return names, cursor
}

func TestToolsListFilteredWithPagination(t *testing.T) {
	h := startHarness(t, Config{Policy: loadPolicy(t, "seeds")})
	h.client(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	h.serverGot()
	h.server(`{"jsonrpc":"2.0","id":1,"result":{"tools":[` +
		`{"name":"read_file","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":true}},` +
		`{"name":"write_file","inputSchema":{"type":"object"}},` +
		`{"name":"echo","inputSchema":{"type":"object"}},` +
		`{"name":"list_directory","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":true,"destructiveHint":"sure"}},` +
		`{"inputSchema":{"type":"object"}},` +
		`{"name":"get_file_info","description":"<b>&</b>","inputSchema":{"type":"object"}}` +
		`],"nextCursor":"c2","_meta":{"k":"v"}}}`)
	got := h.clientGot()
	names, cursor := listed(t, got, "tools", "name")
	if !slices.Equal(names, []string{"read_file", "get_file_info"}) || cursor != "c2" {
		t.Errorf("page 1 = %v, cursor %q; want [read_file get_file_info], cursor \"c2\"", names, cursor)
	}
	if !strings.Contains(got, `"_meta":{"k":"v"}`) || !strings.Contains(got, `"description":"<b>&</b>"`) || !strings.Contains(got, `"id":1`) {
		t.Errorf("page 1 = %s, want other members and items unchanged", got)
	}

	// Page 2 has nothing to remove: forwarded byte for byte.
	h.client(`{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"cursor":"c2"}}`)
	if got := h.serverGot(); !strings.Contains(got, `"cursor":"c2"`) {
		t.Errorf("server got %q, want the cursor", got)
	}
	page2 := `{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"read_text_file","inputSchema":{"type":"object"}}]}}`
	h.server(page2)
	if got := h.clientGot(); got != page2 {
		t.Errorf("page 2 = %q, want %q", got, page2)
	}

	// An empty page after filtering keeps its cursor.
	h.client(`{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"cursor":"c3"}}`)
	h.serverGot()
	h.server(`{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"move_file","inputSchema":{}}],"nextCursor":"c4"}}`)
	if names, cursor := listed(t, h.clientGot(), "tools", "name"); len(names) != 0 || cursor != "c4" {
		t.Errorf("page 3 = %v, cursor %q; want no tools, cursor \"c4\"", names, cursor)
	}

	// The server said list_directory is destructive (a non-boolean hint is
	// read as the worrying value): the read class no longer allows it.
	h.client(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"list_directory","arguments":{"path":"docs/sub"}}}`)
	if rule := toolDenial(t, h.clientGot(), "4"); rule != policy.RuleDefault {
		t.Errorf("call to a tool annotated destructive: rule %q, want %q", rule, policy.RuleDefault)
	}
	decisions, _ := h.rec.snapshot()
	if len(decisions) != 1 || !strings.Contains(decisions[0].Reason, "destructiveHint: true") {
		t.Errorf("decisions = %+v, want one citing the annotation", decisions)
	}
	// read_file still works; the hidden echo is denied when called anyway.
	h.client(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"docs/sub"}}}`)
	h.serverGot()
	h.client(`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":{}}}`)
	toolDenial(t, h.clientGot(), "6")
}

func TestResourcesAndPromptsListFiltered(t *testing.T) {
	h := startHarness(t, Config{Policy: loadPolicy(t, "names")})
	h.client(`{"jsonrpc":"2.0","id":1,"method":"resources/list"}`)
	h.serverGot()
	h.server(`{"jsonrpc":"2.0","id":1,"result":{"resources":[{"uri":"file:///ws/docs/a","name":"a"},{"uri":"file:///ws/docs/private/k","name":"k"},{"uri":"file:///etc/passwd","name":"p"}]}}`)
	if uris, _ := listed(t, h.clientGot(), "resources", "uri"); !slices.Equal(uris, []string{"file:///ws/docs/a"}) {
		t.Errorf("resources = %v, want only file:///ws/docs/a", uris)
	}
	h.client(`{"jsonrpc":"2.0","id":2,"method":"prompts/list"}`)
	h.serverGot()
	h.server(`{"jsonrpc":"2.0","id":2,"result":{"prompts":[{"name":"review_code"},{"name":"steal"}],"nextCursor":"n"}}`)
	if names, cursor := listed(t, h.clientGot(), "prompts", "name"); !slices.Equal(names, []string{"review_code"}) || cursor != "n" {
		t.Errorf("prompts = %v, cursor %q; want [review_code], \"n\"", names, cursor)
	}
}

func TestInputRequestsChecked(t *testing.T) {
	h := startHarness(t, Config{Policy: policy.Permissive()})
	h.client(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ask"}}`)
	h.serverGot()
	// roots/list and allowed elicitation pass.
	ok := `{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required","inputRequests":{"a":{"method":"roots/list"},"b":{"method":"elicitation/create","params":{"message":"name?"}}}}}`
	h.server(ok)
	if got := h.clientGot(); got != ok {
		t.Errorf("client got %q, want %q", got, ok)
	}

	h2 := startHarness(t, Config{Policy: policy.Strict()})
	h2.client(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"a"}}}`)
	h2.serverGot()
	h2.server(`{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required","inputRequests":{"s":{"method":"sampling/createMessage","params":{"messages":[],"maxTokens":9}}}}}`)
	if rule := toolDenial(t, h2.clientGot(), "1"); rule != policy.RuleDefault {
		t.Errorf("sampling via inputRequests: rule %q, want %q", rule, policy.RuleDefault)
	}
	h2.client(`{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"p"}}`)
	h2.serverGot()
	h2.server(`{"jsonrpc":"2.0","id":2,"result":{"inputRequests":{"x":{"method":"shell/exec"}}}}`)
	wantError(t, h2.clientGot(), "2", CodePolicyDenied)
	_, outcomes := h2.rec.snapshot()
	if len(outcomes) != 2 || outcomes[0].Status != audit.OutcomeInputDenied {
		t.Errorf("outcomes = %+v, want two %q", outcomes, audit.OutcomeInputDenied)
	}
}

func TestServerRequestsToClient(t *testing.T) {
	h := startHarness(t, Config{Policy: loadPolicy(t, "names")})
	// elicitation is allowed by the names policy: forwarded both ways
	// unchanged, with a decision and an outcome.
	req := `{"jsonrpc":"2.0","id":10,"method":"elicitation/create","params":{"message":"Your name?","requestedSchema":{"type":"object","properties":{}}}}`
	h.server(req)
	if got := h.clientGot(); got != req {
		t.Errorf("client got %q, want %q", got, req)
	}
	h.server(`{"jsonrpc":"2.0","id":10,"method":"ping"}`) // same id in flight
	wantError(t, h.serverGot(), "10", CodeInvalidRequest)
	resp := `{"jsonrpc":"2.0","id":10,"result":{"action":"decline"}}`
	h.client(resp)
	if got := h.serverGot(); got != resp {
		t.Errorf("server got %q, want %q", got, resp)
	}
	// Answered twice: the second is dropped.
	h.client(resp)
	h.client(`{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	if got := h.serverGot(); !strings.Contains(got, "ping") {
		t.Errorf("server got %q, want the ping", got)
	}
	decisions, outcomes := h.rec.snapshot()
	if len(decisions) != 1 || decisions[0].Kind != string(policy.KindElicitation) || decisions[0].From != "server" || len(outcomes) != 1 || outcomes[0].Status != audit.OutcomeOK {
		t.Errorf("decisions %+v, outcomes %+v; want one allowed elicitation with an ok outcome", decisions, outcomes)
	}
}
