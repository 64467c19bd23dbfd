package approval

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vm-run/vm-run/audit"
)

// Question is what a person is asked: a call (or a secret) held by an ask
// rule. Everything in it may be shown to the person and to the client;
// arguments are already redacted as the ledger stores them. Its JSON form
// is what `vm-run approvals list --json` prints and what the approval
// socket sends.
type Question struct {
	// ID names the question within the vm-run process that asks it:
	// short, unguessable, printable (see NewID).
	ID string `json:"id"`
	// Server describes the sandboxed server: the profile and command.
	Server string `json:"server"`
	// Kind is tool, resource, prompt, sampling, elicitation or secret.
	Kind string `json:"kind"`
	// Name is the tool, prompt, URI or secret name.
	Name string `json:"name"`
	// Args are the judged arguments, redacted (nil for a secret).
	Args any `json:"args,omitempty"`
	// Paths are the paths the call really leads to.
	Paths []string `json:"paths,omitempty"`
	// Hidden names the argument members shown only as a hash because
	// their keys name secrets (audit.DefaultRedactKeys): what the person
	// cannot see. Every channel must say so next to the choice.
	Hidden []string `json:"hidden,omitempty"`
	// Rule and Reason are the ask rule's id and reason.
	Rule   string `json:"rule,omitempty"`
	Reason string `json:"reason,omitempty"`
	// TTL is how long a grant for the rule's TTL would hold; 0 when only
	// "approve once" is offered.
	TTL time.Duration `json:"ttl_ns,omitempty"`
	// Deadline is when the question expires unanswered; the zero time
	// leaves the expiry to the caller's context alone.
	Deadline time.Time `json:"deadline,omitzero"`
}

// Answer is a person's answer.
type Answer struct {
	// Granted is true for approve, false for deny.
	Granted bool
	// Scope is audit.ScopeOnce or audit.ScopeTTL (granted only; ScopeTTL
	// only when the question offered a TTL).
	Scope string
	// Channel is where the answer came from: audit.ChannelElicitation or
	// audit.ChannelCLI.
	Channel string
	// By says who answered: the client's name and version for
	// elicitation, "uid=N pid=M" for the CLI.
	By string
	// Reason is what the person said, if anything.
	Reason string
}

// ErrUnavailable is returned by Ask when the approver cannot put the
// question to anyone (no client with elicitation, no approval socket).
var ErrUnavailable = errors.New("no approval channel is available")

// ErrClosed is returned by Ask when the approver was closed before anyone
// answered, and by Ask on an approver already closed.
var ErrClosed = errors.New("the approval channel is closed")

// ErrNotSupported is returned where the approval socket cannot work: on
// systems other than Linux, which lack SO_PEERCRED.
var ErrNotSupported = errors.New("the approval socket needs Linux")

// Approver puts a question to a person and waits for the answer.
//
// Contract: Ask blocks until a person answers, ctx is done, or the approver
// fails; it never answers on its own (no default yes, no default no). When
// ctx is done (the question's deadline passed, the client withdrew the
// call, the session is ending) Ask withdraws the question from wherever it
// was shown and returns ctx.Err(). Any error other than a person's answer
// means the call does not go ahead; the caller records why. Ask may be
// called from many goroutines at once, one call per question; it must not
// block the caller's other work (the proxy calls it on a goroutine of its
// own per question). The answer must come from outside the sandbox: an
// Approver never reads anything the sandboxed server can write.
type Approver interface {
	Ask(ctx context.Context, q Question) (Answer, error)
}

// idAlphabet is Crockford's base 32 in lower case: no i, l, o or u, so an
// ID read aloud or copied by hand survives.
const idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// NewID returns a fresh question ID: 10 characters of idAlphabet, 50 bits
// from crypto/rand, so IDs of the vm-run processes of one user do not
// collide and cannot be guessed.
func NewID() string { return randomString(10) }

// newCode returns a one-time approval code: codeLen characters of
// idAlphabet in upper case, which is how it is shown.
func newCode() string {
	b := []byte(randomString(codeLen))
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// codeLen is the length of a one-time approval code.
const codeLen = 6

func randomString(n int) string {
	b := make([]byte, n)
	// crypto/rand.Read never returns an error (it crashes the program
	// when the kernel's source fails).
	rand.Read(b)
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}

// validID reports whether s can be a question ID on the socket: 1 to 64
// ASCII letters, digits, '-' and '_'. Anything else could not be typed on
// a command line or shown safely.
func validID(s string) bool {
	if s == "" || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

const maxIDLen = 64

// The wire protocol of the approval socket: one JSON object per line in
// each direction, UTF-8, no line longer than its limit. doc.go shows the
// exchanges; these are the messages.

// ProtocolVersion is the version the broker announces in its hello; a
// client refuses a broker of another version.
const ProtocolVersion = 1

// Limits on what crosses the socket.
const (
	// MaxRequest bounds a request line, newline included. Requests are
	// small: an ID, a code, a reason.
	MaxRequest = 4 << 10
	// MaxReason bounds the reason of a deny, in bytes.
	MaxReason = 1 << 10
	// MaxReply bounds a reply line as a client reads it: a list of
	// questions with their redacted arguments.
	MaxReply = 8 << 20
)

// Request ops.
const (
	OpList      = "list"      // the questions waiting
	OpChallenge = "challenge" // a one-time code to approve one question
	OpApprove   = "approve"   // approve, with that code
	OpDeny      = "deny"      // deny, with a reason if any
	OpWatch     = "watch"     // the questions waiting, then each new or ended one
)

// Request is one line from a client.
type Request struct {
	Op string `json:"op"`
	// ID names the question (challenge, approve, deny).
	ID string `json:"id,omitempty"`
	// Scope is "once" (the default) or "ttl" (approve).
	Scope string `json:"scope,omitempty"`
	// Code is the code this connection's challenge returned (approve).
	Code string `json:"code,omitempty"`
	// Reason is what the person said (deny).
	Reason string `json:"reason,omitempty"`
}

// Reply types.
const (
	ReplyHello     = "hello"     // first line on every accepted connection
	ReplyQuestions = "questions" // answers list
	ReplyChallenge = "challenge" // answers challenge
	ReplyDone      = "done"      // answers approve and deny: the answer counted
	ReplyWatching  = "watching"  // answers watch; events follow
	ReplyEvent     = "event"     // a question asked or ended (watch, challenge)
	ReplyError     = "error"     // the request was refused; see Error.Code
)

// Reply is one line from the broker. Type says which one field is set.
type Reply struct {
	Type      string     `json:"type"`
	Hello     *Hello     `json:"hello,omitempty"`
	Questions []Question `json:"questions,omitempty"`
	Challenge *Challenge `json:"challenge,omitempty"`
	Event     *Event     `json:"event,omitempty"`
	Error     *Error     `json:"error,omitempty"`
}

// Hello is the broker's first line: who listens, so that a client talks
// to the vm-run process it meant to.
type Hello struct {
	Proto int `json:"proto"`
	// PID is the vm-run process that asks.
	PID int `json:"pid"`
	// Socket is the socket's file name: the pid and a random suffix.
	Socket string `json:"socket"`
}

// Challenge is the broker's answer to a challenge: the question as it
// stands and the code that approves it, valid on this connection only and
// for one approve.
type Challenge struct {
	Question Question `json:"question"`
	Code     string   `json:"code"`
}

// Event types.
const (
	EventAsked = "asked" // a new question waits
	EventEnded = "ended" // a question was answered, withdrawn or expired
)

// Why a question ended.
const (
	EndedAnswered  = "answered"  // someone approved or denied it
	EndedExpired   = "expired"   // its deadline passed
	EndedWithdrawn = "withdrawn" // the client withdrew the call, or the session is ending
	EndedClosed    = "closed"    // the broker was closed
)

// Event is a question asked or ended.
type Event struct {
	Type string `json:"type"`
	// Question is set for EventAsked.
	Question *Question `json:"question,omitempty"`
	// ID and Why are set for EventEnded.
	ID  string `json:"id,omitempty"`
	Why string `json:"why,omitempty"`
}

// Error codes of a refused request.
const (
	CodeBadRequest    = "bad_request"     // not a request this protocol knows
	CodeTooLong       = "too_long"        // a line over MaxRequest; the connection closes
	CodeUnknownID     = "unknown_id"      // no question of that ID waits here
	CodeNoChallenge   = "no_challenge"    // approve without a challenge on this connection
	CodeWrongCode     = "wrong_code"      // the code is not the challenge's; the challenge is void
	CodeTTLNotOffered = "ttl_not_offered" // scope ttl on a question that offers only once
	CodeExpired       = "expired"         // the question's deadline has passed
	CodePeerRefused   = "peer_refused"    // the peer may not use this socket; the connection closes
	CodeBusy          = "busy"            // too many connections; the connection closes
	CodeTimeout       = "timeout"         // no request in time; the connection closes
)

// Error is a refused request.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s (%s)", e.Message, e.Code) }

// parseRequest reads one request line (without its newline) strictly:
// unknown fields, trailing data, fields the op does not take, IDs outside
// validID, codes and scopes the broker never issues are all refused.
func parseRequest(line []byte) (Request, error) {
	var r Request
	if !utf8.Valid(line) {
		return r, fmt.Errorf("request is not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Request{}, fmt.Errorf("request: %w", err)
	}
	if dec.More() {
		return Request{}, fmt.Errorf("request: data after the object")
	}
	// Which fields each op takes; any other set is an error.
	id, scope, code, reason := false, false, false, false
	switch r.Op {
	case OpList, OpWatch:
	case OpChallenge:
		id = true
	case OpApprove:
		id, scope, code = true, true, true
	case OpDeny:
		id, reason = true, true
	default:
		return Request{}, fmt.Errorf("unknown op %q", r.Op)
	}
	switch {
	case id != (r.ID != ""):
		if id {
			return Request{}, fmt.Errorf("%s needs an id", r.Op)
		}
		return Request{}, fmt.Errorf("%s takes no id", r.Op)
	case id && !validID(r.ID):
		return Request{}, fmt.Errorf("id %q: want 1 to %d letters, digits, '-' or '_'", r.ID, maxIDLen)
	case !scope && r.Scope != "", !code && r.Code != "", !reason && r.Reason != "":
		return Request{}, fmt.Errorf("%s takes only the fields of its op", r.Op)
	case scope && r.Scope != "" && r.Scope != audit.ScopeOnce && r.Scope != audit.ScopeTTL:
		return Request{}, fmt.Errorf("scope %q: want %q or %q", r.Scope, audit.ScopeOnce, audit.ScopeTTL)
	case code && !validCode(r.Code):
		return Request{}, fmt.Errorf("approve needs the %d-character code of a challenge", codeLen)
	case len(r.Reason) > MaxReason:
		return Request{}, fmt.Errorf("reason is %d bytes, over %d", len(r.Reason), MaxReason)
	}
	if scope && r.Scope == "" {
		r.Scope = audit.ScopeOnce
	}
	return r, nil
}

// validCode reports whether s has the form of a code newCode makes,
// ignoring case, as a person types it.
func validCode(s string) bool {
	if len(s) != codeLen {
		return false
	}
	for _, c := range strings.ToLower(s) {
		if !strings.ContainsRune(idAlphabet, c) {
			return false
		}
	}
	return true
}
