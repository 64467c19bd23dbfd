package proxy

import (
	"bytes"
	"time"
)

// A call the server works on visibly is not a hung call. MCP lets a
// requester reset its timeout when a progress notification for the request
// arrives (MCP 2025-06-18 basic/lifecycle, "Timeouts": implementations MAY
// reset the timeout clock on progress), so the proxy's CallTimeout counts
// from the last sign of life: a long build that reports progress runs as
// long as it needs, a server that stopped answering is cut off. The token
// is the one the client put in params._meta.progressToken.

// progressKey returns the canonical progress token of a request's params,
// or "" when it has none.
func progressKey(params []byte) string {
	if !bytes.Contains(params, []byte("progressToken")) {
		return ""
	}
	p, ok := objectMembers(params)
	if !ok {
		return ""
	}
	meta, ok := objectMembers(p["_meta"])
	if !ok {
		return ""
	}
	key, _ := canonicalID(meta["progressToken"])
	return key
}

// progressed restarts the timer of the client request a server progress
// notification is about.
func (p *proxy) progressed(m *message) {
	if p.cfg.CallTimeout <= 0 {
		return
	}
	params, ok := objectMembers(m.params)
	if !ok {
		return
	}
	key, ok := canonicalID(params["progressToken"])
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pd := p.progress[key]; pd != nil && pd.timer != nil {
		pd.timer.Reset(p.cfg.CallTimeout)
	}
}

// Call timeouts, as vm-run sets them by default.
const DefaultCallTimeout = 10 * time.Minute
