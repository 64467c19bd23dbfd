package proxy

import (
	"context"
	"fmt"

	"github.com/vm-run/vm-run/audit"
)

// A message over Config.MaxLine is never forwarded, and never left
// unanswered: the reader reports it as soon as it crosses the limit, with
// its first bytes (lineReader), and the proxy answers whoever waits for it
// from what those bytes say. JSON-RPC messages start with their envelope in
// practice ({"jsonrpc":"2.0","id":7,"result":...), so the id is there; when
// it is not, every request that message could answer gets an error, since
// one of them would otherwise wait for ever.

// head is what the first bytes of a message over the limit say.
type head struct {
	id, idKey string // the id as sent, and canonical; "" if not seen
	method    bool   // a "method" member was seen: a request or notification
	reply     bool   // a "result" or "error" member was seen: a response
}

// readHead reads the complete top-level members at the start of a cut-off
// message.
func readHead(b []byte) head {
	var h head
	s := scanner{buf: b, visit: func(k string, raw []byte) {
		switch k {
		case "id":
			if key, ok := canonicalID(raw); ok {
				h.id, h.idKey = string(raw), key
			}
		case "method":
			h.method = true
		case "result", "error":
			h.reply = true
		}
	}}
	_ = s.value(true) // cut off: it fails where the message was cut
	return h
}

// clientTooLong answers a client message over the limit.
func (p *proxy) clientTooLong(ctx context.Context, first []byte) {
	h := readHead(first)
	msg := fmt.Sprintf("message longer than vm-run's limit of %d bytes (--max-message, or the profile's limits.max_message)", p.cfg.MaxLine)
	p.logf("client sent a message over %d bytes; refused (id %s)", p.cfg.MaxLine, orNull(h.id))
	if h.idKey != "" && !h.method {
		// Perhaps the client's answer to a request of the server: that
		// request gets the error, so the server does not wait for ever.
		if pd := p.take(p.fromServer, h.idKey); pd != nil {
			p.replyServer(pd.id, rpcError{Code: CodeInternalError, Message: "the client's answer is a " + msg})
			return
		}
	}
	var id []byte
	if h.idKey != "" {
		id = []byte(h.id)
	}
	p.replyClient(id, rpcError{Code: CodeInvalidRequest, Message: "Invalid Request: " + msg})
}

// serverTooLong answers for a server message over the limit: the client
// request it answers gets an error at once, and the outcome says why.
func (p *proxy) serverTooLong(ctx context.Context, first []byte) {
	h := readHead(first)
	msg := fmt.Sprintf("the MCP server sent a message longer than vm-run's limit of %d bytes "+
		"(raise it with --max-message or the profile's limits.max_message)", p.cfg.MaxLine)
	switch {
	case h.method && h.idKey != "":
		p.logf("server sent a request over %d bytes; refused (id %s)", p.cfg.MaxLine, h.id)
		p.replyServer([]byte(h.id), rpcError{Code: CodeInvalidRequest, Message: "Invalid Request: message longer than the limit"})
	case h.method:
		p.logf("server sent a notification over %d bytes; dropped", p.cfg.MaxLine)
	case h.idKey != "":
		p.logf("server sent an answer over %d bytes to request %s; the client gets an error", p.cfg.MaxLine, h.id)
		if pd := p.take(p.fromClient, h.idKey); pd != nil {
			p.outcome(ctx, pd, audit.OutcomeTooLarge, CodeInternalError, 0)
			p.replyClient(pd.id, rpcError{Code: CodeInternalError, Message: msg})
		}
	default:
		p.logf("server sent a message over %d bytes whose id vm-run could not read; every waiting request gets an error", p.cfg.MaxLine)
		p.failPending(ctx, msg+"; vm-run could not tell which request it answered", audit.OutcomeTooLarge)
	}
}

func orNull(id string) string {
	if id == "" {
		return "null"
	}
	return id
}
