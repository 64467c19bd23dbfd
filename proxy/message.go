package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// JSON-RPC 2.0 error codes (JSON-RPC 2.0 specification, section 5.1) and the
// one vm-run adds in the implementation-defined range -32000 to -32099.
// MCP itself uses -32002 (resource not found) and -32042 (URL elicitation
// required); the official SDKs take -32000 and -32001 (TypeScript: connection
// closed, request timeout) and -32003 and -32004 (Go: client and server
// closing, which the Go client reports as a closed connection), so vm-run's
// own code stays clear of all of them.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
	// CodePolicyDenied answers a request the policy denied when the method
	// has no error result of its own (everything but tools/call).
	CodePolicyDenied = -32030
)

// MetaKey is the _meta key under which a denial carries its rule and
// reason, in both denial shapes.
const MetaKey = "io.github.vm-run/policy"

type msgType int

const (
	msgRequest msgType = iota + 1
	msgNotification
	msgResponse
)

// message is one valid JSON-RPC message; byte slices alias the line.
type message struct {
	line   []byte
	typ    msgType
	id     []byte // raw, as sent
	idKey  string // canonical: equal for ids a peer would consider equal
	method string
	params []byte
	result []byte
	errRaw []byte
	// Members of an object result, read in the same pass (nil: absent).
	resultObject             bool
	resIsError, resInputReqs []byte
	resEmbeds                []byte // content, contents or messages
}

// rpcError is the error member of a JSON-RPC response.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

// badMessage is a line that cannot be forwarded.
type badMessage struct {
	rpcError
	id       []byte // id to answer with; nil answers with null
	idKey    string
	response bool // it looked like a response, which is never answered
}

func (b *badMessage) Error() string { return fmt.Sprintf("%d %s", b.Code, b.Message) }

func invalid(id []byte, idKey string, format string, args ...any) *badMessage {
	return &badMessage{rpcError: rpcError{Code: CodeInvalidRequest, Message: "Invalid Request: " + fmt.Sprintf(format, args...)}, id: id, idKey: idKey}
}

// parseMessage classifies one line. The checks follow JSON-RPC 2.0 and the
// MCP base protocol: ids are strings or integers (never null), params are
// structured, batches are not supported (MCP 2025-06-18 removed them).
func parseMessage(line []byte) (*message, *badMessage) {
	env, err := scanLine(line)
	if err != nil {
		return nil, &badMessage{rpcError: rpcError{Code: CodeParseError, Message: "Parse error: " + err.Error()}}
	}
	if env.isArray {
		return nil, invalid(nil, "", "batches are not supported (MCP 2025-06-18 removed JSON-RPC batching)")
	}
	if !env.isObject {
		return nil, invalid(nil, "", "a message must be a JSON object")
	}
	looksLikeResponse := env.method == nil && (env.result != nil || env.error != nil)
	var id []byte
	var idKey string
	if env.id != nil && !(env.dupTop && env.dupKey == "id") {
		if k, ok := canonicalID(env.id); ok {
			id, idKey = env.id, k
		}
	}
	fail := func(b *badMessage) (*message, *badMessage) {
		b.response = looksLikeResponse
		return nil, b
	}
	if env.dupKey != "" {
		return fail(invalid(id, idKey, "key %q appears twice in one object", env.dupKey))
	}
	if v, err := decodeString(env.jsonrpc); err != nil || v != "2.0" {
		return fail(invalid(id, idKey, "\"jsonrpc\" must be \"2.0\""))
	}
	if env.id != nil && id == nil {
		return fail(invalid(nil, "", "id must be a string or an integer of at most 53 bits"))
	}
	m := &message{line: line, id: id, idKey: idKey, params: env.params, result: env.result, errRaw: env.error,
		resultObject: env.resultObject, resIsError: env.resIsError, resInputReqs: env.resInputRequests,
		resEmbeds: env.resEmbeds}
	if env.method != nil {
		method, err := decodeString(env.method)
		switch {
		case err != nil:
			return fail(invalid(id, idKey, "method must be a string"))
		case env.result != nil || env.error != nil:
			return fail(invalid(id, idKey, "a request carries neither result nor error"))
		case env.params != nil && env.params[0] != '{' && env.params[0] != '[':
			return fail(invalid(id, idKey, "params must be an object or an array"))
		}
		m.method = method
		m.typ = msgNotification
		if id != nil {
			m.typ = msgRequest
		}
		return m, nil
	}
	switch {
	case id == nil:
		return fail(invalid(nil, "", "a message needs a method, or an id with a result or an error"))
	case (env.result == nil) == (env.error == nil):
		return fail(invalid(id, idKey, "a response carries exactly one of result and error"))
	case env.error != nil && !validErrorObject(env.error):
		return fail(invalid(id, idKey, "error must be an object with an integer code and a string message"))
	}
	m.typ = msgResponse
	return m, nil
}

// canonicalID maps an id to a key that is equal for ids the peer treats as
// equal: "s:" and the decoded string, or "n:" and the integer without sign
// noise. Integers beyond 2^53-1 are refused: a JavaScript peer would round
// them and answer with a different id.
func canonicalID(raw []byte) (string, bool) {
	if len(raw) == 0 {
		return "", false
	}
	if raw[0] == '"' {
		s, err := decodeString(raw)
		return "s:" + s, err == nil
	}
	if bytes.ContainsAny(raw, ".eE") || raw[0] == 'n' || raw[0] == 't' || raw[0] == 'f' || raw[0] == '{' || raw[0] == '[' {
		return "", false
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n > 1<<53-1 || n < -(1<<53-1) {
		return "", false
	}
	return "n:" + strconv.FormatInt(n, 10), true
}

func validErrorObject(raw []byte) bool {
	var e map[string]json.RawMessage
	if json.Unmarshal(raw, &e) != nil {
		return false
	}
	var code json.Number
	d := json.NewDecoder(bytes.NewReader(e["code"]))
	d.UseNumber()
	if d.Decode(&code) != nil {
		return false
	}
	if _, err := code.Int64(); err != nil {
		return false
	}
	_, err := decodeString(e["message"])
	return err == nil
}

// errorCode returns the code of a validated error member.
func errorCode(raw []byte) int {
	var e struct {
		Code int `json:"code"`
	}
	_ = json.Unmarshal(raw, &e)
	return e.Code
}

// marshalLine encodes v without HTML escaping; the result has no newline.
func marshalLine(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only values built by this package are encoded here.
		panic("proxy: encode: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

var nullID = json.RawMessage("null")

func rawID(id []byte) json.RawMessage {
	if id == nil {
		return nullID
	}
	return json.RawMessage(id)
}

func errorResponse(id []byte, e rpcError) []byte {
	return marshalLine(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   rpcError        `json:"error"`
	}{"2.0", rawID(id), e})
}

func resultResponse(id []byte, result any) []byte {
	return marshalLine(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  any             `json:"result"`
	}{"2.0", rawID(id), result})
}

func notification(method string, params any) []byte {
	return marshalLine(struct {
		JSONRPC string `json:"jsonrpc"`
		Method  string `json:"method"`
		Params  any    `json:"params"`
	}{"2.0", method, params})
}

// objectMembers decodes a JSON object into its members with exact keys.
// (Decoding into a struct would match keys case-insensitively, so
// {"name":"a","NAME":"b"} would read differently here and in the server.)
func objectMembers(raw []byte) (map[string]json.RawMessage, bool) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	// The proxy's own scanner, not encoding/json: a tool result may be
	// hundreds of megabytes, and this is called on it. As with
	// json.Unmarshal into a map, the last of duplicate keys wins.
	m := map[string]json.RawMessage{}
	s := scanner{buf: raw, visit: func(k string, v []byte) { m[k] = v }}
	if err := s.value(true); err != nil {
		return nil, false
	}
	s.skipSpace()
	return m, s.pos == len(raw)
}

// arrayItems splits a validated JSON array into its items, with the
// proxy's scanner (see objectMembers).
func arrayItems(raw []byte) ([][]byte, bool) {
	s := scanner{buf: raw}
	s.skipSpace()
	if s.pos >= len(raw) || raw[s.pos] != '[' {
		return nil, false
	}
	s.pos++
	var items [][]byte
	for {
		s.skipSpace()
		if s.pos < len(raw) && raw[s.pos] == ']' && len(items) == 0 {
			s.pos++
			break
		}
		start := s.pos
		if err := s.value(false); err != nil {
			return nil, false
		}
		items = append(items, raw[start:s.pos])
		s.skipSpace()
		if s.pos >= len(raw) {
			return nil, false
		}
		if raw[s.pos] == ']' {
			s.pos++
			break
		}
		if raw[s.pos] != ',' {
			return nil, false
		}
		s.pos++
	}
	s.skipSpace()
	return items, s.pos == len(raw)
}

// decodeArguments decodes an arguments object; numbers stay json.Number so
// argument patterns see their text as sent.
func decodeArguments(raw []byte) (map[string]any, bool) {
	if raw == nil {
		return map[string]any{}, true
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	return m, d.Decode(&m) == nil
}
