package httpfront

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf8"
)

// kind says what a JSON-RPC message is; the transport treats the three
// differently ("Sending Messages to the Server", items 4 and 5).
type kind int

const (
	kindRequest kind = iota + 1
	kindNotification
	kindResponse
)

// message is what the front reads from a POST body or a server line: just
// enough to route it. The session behind the front (the stdio proxy) judges
// the message in full; nothing here trusts more than the envelope.
type message struct {
	kind   kind
	method string
	id     json.RawMessage // as sent; nil for a notification
	idKey  string          // canonical form of id, for correlation
	// progressKey is the canonical progress token: params._meta.progressToken
	// of a request, params.progressToken of notifications/progress.
	progressKey string
	// line is the message compacted onto one line and ending in "\n", as
	// the stdio framing wants ("stdio": messages MUST NOT contain embedded
	// newlines).
	line []byte
}

// errBatch refuses a JSON array: since 2025-06-18 the body of a POST "MUST
// be a single JSON-RPC request, notification, or response".
var errBatch = errors.New("JSON-RPC batches are not supported")

type envelope struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  *string         `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
}

type progressParams struct {
	Meta *struct {
		ProgressToken json.RawMessage `json:"progressToken"`
	} `json:"_meta"`
	ProgressToken json.RawMessage `json:"progressToken"`
}

// parseMessage reads one JSON-RPC 2.0 message. It refuses what cannot be
// routed without guessing: invalid UTF-8 (MCP: "JSON-RPC messages MUST be
// UTF-8 encoded"), anything but one object, a wrong "jsonrpc", an id that is
// neither a string nor an integer within ±(2^53-1) (MCP forbids null ids),
// and a response with neither or both of result and error.
func parseMessage(b []byte) (*message, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("message is not UTF-8")
	}
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) > 0 && t[0] == '[' {
		return nil, errBatch
	}
	if len(t) == 0 || t[0] != '{' {
		return nil, errors.New("message is not a JSON object")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, fmt.Errorf("parse message: %w", err)
	}
	var env envelope
	if err := json.Unmarshal(buf.Bytes(), &env); err != nil {
		return nil, fmt.Errorf("parse message: %w", err)
	}
	if env.JSONRPC != "2.0" {
		return nil, errors.New(`"jsonrpc" must be "2.0"`)
	}
	m := &message{}
	if env.ID != nil {
		key, err := idKey(env.ID)
		if err != nil {
			return nil, err
		}
		m.id, m.idKey = env.ID, key
	}
	switch {
	case env.Method != nil:
		if *env.Method == "" {
			return nil, errors.New(`"method" is empty`)
		}
		if env.Result != nil || env.Error != nil {
			return nil, errors.New("a request carries no result or error")
		}
		m.method = *env.Method
		m.kind = kindNotification
		if m.id != nil {
			m.kind = kindRequest
		}
		var p progressParams
		if json.Unmarshal(env.Params, &p) == nil {
			tok := p.ProgressToken
			if m.kind == kindRequest && p.Meta != nil {
				tok = p.Meta.ProgressToken
			}
			if tok != nil {
				m.progressKey, _ = idKey(tok)
			}
		}
	case m.id == nil:
		return nil, errors.New(`a message needs "method" or "id"`)
	case (env.Result == nil) == (env.Error == nil):
		return nil, errors.New("a response carries exactly one of result and error")
	default:
		m.kind = kindResponse
	}
	buf.WriteByte('\n')
	m.line = buf.Bytes()
	return m, nil
}

// idKey gives a request id (or progress token) a canonical form, so that
// 7, 7.0 and 7e0 from one side match 7 from the other, and "7" matches
// neither.
func idKey(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("parse id: %w", err)
		}
		return "s" + s, nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	const maxSafe = 1<<53 - 1
	if err != nil || f != math.Trunc(f) || math.Abs(f) > maxSafe {
		return "", fmt.Errorf("id %s is neither a string nor an integer", raw)
	}
	return "n" + strconv.FormatInt(int64(f), 10), nil
}

// errorLine is a JSON-RPC error response; id nil gives "id": null, as the
// transport allows for an error about a body it could not read.
func errorLine(id json.RawMessage, code int, msg string) []byte {
	if id == nil {
		id = json.RawMessage("null")
	}
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{JSONRPC: "2.0", ID: id, Error: struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, msg}})
	return append(b, '\n')
}

// JSON-RPC error codes the front itself answers with.
const (
	codeParse    = -32700
	codeInvalid  = -32600
	codeInternal = -32603
)

// readLine returns the next line of r without its newline. A line longer
// than max is read through and discarded, and reported as tooLong, so a
// server cannot make the front hold more than max bytes of one message.
func readLine(r *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > max+1 {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == nil:
			if tooLong {
				return nil, true, nil
			}
			return bytes.TrimRight(buf, "\r\n"), false, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(buf) > 0 && !tooLong:
			return buf, false, nil
		default:
			return nil, tooLong, err
		}
	}
}

// sseEvent frames one message as a Server-Sent Event. The data is one line
// (parseMessage compacted it), so one "data:" field holds it whole.
func sseEvent(line []byte) []byte {
	line = bytes.TrimRight(line, "\n")
	b := make([]byte, 0, len(line)+len("event: message\ndata: \n\n"))
	b = append(b, "event: message\ndata: "...)
	b = append(b, line...)
	return append(b, "\n\n"...)
}
