package audit

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Event types. Genesis and recovery records are written by the ledger
// itself; Append refuses them so that no caller can forge one.
const (
	EventGenesis      = "ledger_genesis"
	EventRecovered    = "ledger_recovered"
	EventSessionStart = "session_start"
	EventSessionEnd   = "session_end"
	EventDecision     = "decision"
)

// Verdicts of a [Decision].
const (
	VerdictAllow = "allow"
	VerdictDeny  = "deny"
)

// Event is a value that knows its event type; see [Ledger.Log].
type Event interface {
	EventType() string
}

// SessionStart is the first record of a `vm-run run`: what was run, under
// which profile and with which sandbox.
type SessionStart struct {
	Argv        []string `json:"argv"`
	Profile     string   `json:"profile"`
	ProfileHash string   `json:"profile_hash"`
	// Workdir is the workspace the command ran in.
	Workdir string `json:"workdir,omitempty"`
	// Sandbox summarises what the sandbox enforces (namespaces, Landlock
	// rules, seccomp groups, limits); any JSON-encodable value.
	Sandbox any `json:"sandbox,omitempty"`
	// Kernel lists the kernel features found (Landlock ABI, user
	// namespaces, seccomp); any JSON-encodable value.
	Kernel any `json:"kernel,omitempty"`
}

// EventType implements [Event].
func (SessionStart) EventType() string { return EventSessionStart }

// SessionEnd is the last record of a `vm-run run`.
type SessionEnd struct {
	// ExitStatus is the status vm-run exits with (128+N after signal N).
	ExitStatus int `json:"exit_status"`
	// Signal names the signal that killed the command, if one did.
	Signal string `json:"signal,omitempty"`
	// DurationNS is the command's wall-clock run time in nanoseconds.
	DurationNS int64 `json:"duration_ns"`
	// Error says why vm-run itself failed, if it did.
	Error string `json:"error,omitempty"`
}

// NewSessionEnd returns a SessionEnd for a command that ran for d.
func NewSessionEnd(exitStatus int, signal string, d time.Duration) SessionEnd {
	return SessionEnd{ExitStatus: exitStatus, Signal: signal, DurationNS: int64(d)}
}

// EventType implements [Event].
func (SessionEnd) EventType() string { return EventSessionEnd }

// Decision records a policy decision of the proxy. It is appended, and on
// disk, before the decision takes effect. `vm-run audit show` and `stats`
// read the "tool", "verdict" and "rule" fields.
type Decision struct {
	// Method is the JSON-RPC method, e.g. "tools/call".
	Method string `json:"method,omitempty"`
	// RequestID is the JSON-RPC id of the request, verbatim.
	RequestID json.RawMessage `json:"request_id,omitempty"`
	Tool      string          `json:"tool"`
	Verdict   string          `json:"verdict"` // VerdictAllow or VerdictDeny
	Rule      string          `json:"rule,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	// Args are the call's arguments; the ledger redacts them (see
	// [Options.RedactKeys]).
	Args any `json:"args,omitempty"`
}

// EventType implements [Event].
func (Decision) EventType() string { return EventDecision }

// Recovered is the data of a ledger_recovered record: the byte range
// [TornOffset, TornOffset+TornLength) of the file held an unfinished write
// that the record's writer found and closed with a newline.
type Recovered struct {
	TornOffset int64  `json:"torn_offset"`
	TornLength int64  `json:"torn_length"`
	TornSHA256 string `json:"torn_sha256"`
}

// genesis is the data of the first record of a new ledger.
type genesis struct {
	Format    int    `json:"format"`
	Algorithm string `json:"algorithm"`
}

// NewSessionID returns a fresh random session id: 16 lower-case hex digits
// (64 bits from crypto/rand).
func NewSessionID() string {
	var b [8]byte
	// crypto/rand.Read never returns an error on Linux (it panics if the
	// kernel's getrandom fails, which it does not once booted).
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
