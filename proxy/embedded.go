package proxy

import (
	"bytes"
	"context"
	"time"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/policy"
)

// A server can hand over a resource without a resources/read: embedded in
// a tool result (content items of type "resource"), in a prompt (messages
// whose content is such an item, as server-everything's resource-prompt
// does), or as a further item of a resources/read result, under another
// URI than the one read. Each embedded resource is judged as a
// resources/read of its URI would be; if the policy denies one, the whole
// answer is withheld and the requester gets the denial. A resource_link
// item is only a pointer: reading it is a resources/read, judged then.

// embedded judges the resources an answer embeds and returns the first
// denial, recorded, or nil.
func (p *proxy) embedded(ctx context.Context, pd *pending, m *message) *audit.Decision {
	raw := m.resEmbeds
	// Most answers embed nothing: a search for the word settles it without
	// decoding a large result.
	if raw == nil || !bytes.Contains(raw, []byte(`"uri"`)) {
		return nil
	}
	for _, uri := range embeddedURIs(pd.method, raw) {
		call := policy.CallInfo{Kind: policy.KindResource, Name: uri, Workspace: p.cfg.Workspace}
		in := &message{method: pd.method + " result", id: pd.id}
		d := p.judge(in, "server", call, nil, nil, time.Now())
		if d.Verdict == policy.Allow {
			continue
		}
		d.Reason = "the answer embeds " + d.Reason
		// Observe mode forwards it, recorded like any would_deny; a
		// record that fails makes it a denial.
		p.record(ctx, &d)
		if d.Allowed() {
			continue
		}
		return &d
	}
	return nil
}

// embeddedURIs lists the URIs of the resources an answer to method embeds.
func embeddedURIs(method string, raw []byte) []string {
	items, ok := arrayItems(raw)
	if !ok {
		return nil
	}
	var uris []string
	for _, item := range items {
		obj, ok := objectMembers(item)
		if !ok {
			continue
		}
		switch method {
		case "resources/read": // contents: [{uri, text|blob}]
			if u, err := decodeString(obj["uri"]); err == nil {
				uris = append(uris, u)
			}
			continue
		case "prompts/get": // messages: [{role, content: {...}}]
			if obj, ok = objectMembers(obj["content"]); !ok {
				continue
			}
		}
		if t, _ := decodeString(obj["type"]); t != "resource" {
			continue
		}
		if res, ok := objectMembers(obj["resource"]); ok {
			if u, err := decodeString(res["uri"]); err == nil {
				uris = append(uris, u)
			}
		}
	}
	return uris
}
