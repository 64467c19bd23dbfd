package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/proxy/secrets"
)

// Scrubbing: the server was handed secrets as environment variables
// (Config.Scrubber holds their values), and nothing it sends may carry one
// to the client, which would show it to the model. Every line from the
// server goes through scrubServer before anything else reads it, so the
// rest of the proxy (parsing, policy, filtering, the proxy's own error
// messages and log lines that quote the server) sees only the scrubbed
// line. The client's lines need nothing: the client never had the values.

// scrubServer returns line with every secret replaced, after recording
// what was replaced; it returns line itself when nothing was. It returns
// nil when the line must not go on: the requester, if any, has then had an
// error instead, and nothing of the line reached the client.
func (p *proxy) scrubServer(ctx context.Context, line []byte) []byte {
	out, hits := p.cfg.Scrubber.Scrub(line)
	if hits == nil {
		return line
	}
	m, bad := parseMessage(out)
	broken := false
	if bad != nil {
		// Redacting a key can make two keys of one object equal (see
		// package secrets): the scrubbed line cannot be forwarded and
		// the original must not be. Its id and method come from the
		// original, which is read for nothing else. A line that was
		// bad before goes on scrubbed, to be refused as any bad line.
		if orig, obad := parseMessage(line); obad == nil {
			m, broken = orig, true
		}
	}
	method, seq := p.scrubContext(m)
	if p.stopped.Load() {
		return nil
	}
	if err := p.recordRedactions(ctx, hits, method, seq); err != nil {
		p.withhold(ctx, m, fmt.Sprintf("%s the audit ledger could not record the redaction, so the message is withheld", scrubbedWhat))
		return nil
	}
	if broken {
		p.logf("server message held a secret and is no longer valid JSON-RPC once redacted (%s); withheld", bad.Message)
		p.withhold(ctx, m, fmt.Sprintf("%s redacted, the message is no longer valid JSON-RPC, so it is withheld", scrubbedWhat))
		return nil
	}
	return out
}

const scrubbedWhat = "vm-run: the MCP server's message held a secret of the profile;"

// scrubContext names what a scrubbed message belongs to, for the ledger:
// the method of the client's request it answers and that call's decision,
// or the message's own method. m may be nil (a line that is not JSON-RPC).
func (p *proxy) scrubContext(m *message) (method string, seq uint64) {
	if m == nil {
		return "", 0
	}
	if m.typ != msgResponse {
		return m.method, 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pd := p.fromClient[m.idKey]; pd != nil {
		method = pd.method
		if pd.decision != nil {
			seq = pd.decision.Seq
		}
	}
	return method, seq
}

// recordRedactions records one audit.SecretRedacted per secret found.
//
// They are recorded durably (Record, not Queue), before the scrubbed line
// goes on, although the scrubbed line is safe to send either way and the
// record holds nothing secret: a redaction is evidence that the server
// tried to hand a secret to the model, which is what an auditor most needs
// to find after a crash, and a queued record is lost if vm-run dies before
// the next sync. It costs a sync only for the rare line that holds a
// secret; the line without one never gets here.
func (p *proxy) recordRedactions(ctx context.Context, hits []secrets.Hit, method string, seq uint64) error {
	evs := redactionEvents(hits, method, seq)
	if br, ok := p.cfg.Recorder.(BatchRecorder); ok && len(evs) > 1 {
		for _, err := range br.RecordAll(ctx, evs) {
			if err != nil {
				p.recorderFailed(fmt.Errorf("record secret_redacted: %w", err))
				return err
			}
		}
		return nil
	}
	for _, ev := range evs {
		if err := p.cfg.Recorder.Record(ctx, ev); err != nil {
			p.recorderFailed(fmt.Errorf("record secret_redacted: %w", err))
			return err
		}
	}
	return nil
}

// withhold answers for a server message that cannot go on: the client's
// request it answers gets -32603, a request of the server's gets -32603
// back, a notification is dropped.
func (p *proxy) withhold(ctx context.Context, m *message, msg string) {
	if m == nil {
		return
	}
	switch m.typ {
	case msgResponse:
		if pd := p.take(p.fromClient, m.idKey); pd != nil {
			p.outcome(ctx, pd, audit.OutcomeInvalid, CodeInternalError, len(m.line))
			p.replyClient(pd.id, rpcError{Code: CodeInternalError, Message: msg})
		}
	case msgRequest:
		p.replyServer(m.id, rpcError{Code: CodeInternalError, Message: msg})
	}
}

// MaxStderrLine bounds a line of the server's standard error that
// ScrubStream passes on; a longer one is dropped, not cut, since a secret
// could straddle the cut.
const MaxStderrLine = 1 << 20

// ScrubStream copies the server's standard error (r) to w a line at a
// time, each line scrubbed of the secrets s holds: MCP clients keep a
// server's stderr in their logs, where a model or a person may read it.
// Each redaction is recorded as an audit.SecretRedacted with method
// "stderr" through rec, durably, before the line is written; a line whose
// redaction cannot be recorded, and a line over MaxStderrLine, is dropped
// with a note in its place. ScrubStream returns when r ends, with nil, or
// with the error that stopped it.
func ScrubStream(ctx context.Context, w io.Writer, r io.Reader, s *secrets.Scrubber, rec Recorder) error {
	lr := newLineReader(r, MaxStderrLine) // lines.go: an over-long line is discarded as it streams
	var buf []byte                        // the line written: the reader's slice must not be appended to
	for {
		line, tooLong, err := lr.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if tooLong {
			fmt.Fprintf(w, "vm-run: a line of the server's stderr over %d bytes was dropped\n", MaxStderrLine)
			continue
		}
		out, hits := s.Scrub(line)
		for _, ev := range redactionEvents(hits, "stderr", 0) {
			if rerr := rec.Record(ctx, ev); rerr != nil {
				out = []byte("vm-run: a line of the server's stderr held a secret, and the ledger could not record its redaction; dropped")
				break
			}
		}
		buf = append(append(buf[:0], out...), '\n')
		if _, werr := w.Write(buf); werr != nil {
			return werr
		}
	}
}

// redactionEvents turns a message's hits into one audit.SecretRedacted per
// secret.
func redactionEvents(hits []secrets.Hit, method string, seq uint64) []audit.Event {
	var evs []audit.Event
	for _, h := range hits {
		i := slices.IndexFunc(evs, func(e audit.Event) bool { return e.(audit.SecretRedacted).Name == h.Name })
		if i < 0 {
			evs = append(evs, audit.SecretRedacted{Name: h.Name, Method: method, Seq: seq})
			i = len(evs) - 1
		}
		r := evs[i].(audit.SecretRedacted)
		if !slices.Contains(r.Forms, h.Form) {
			r.Forms = append(r.Forms, h.Form)
		}
		r.Count += h.Count
		evs[i] = r
	}
	return evs
}
