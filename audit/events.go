package audit

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
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
	EventOutcome      = "outcome"
	EventRoots        = "roots"
)

// Verdict is what a decision does with a call. The tool policy (package
// policy) decides in these terms and writes them as its actions, so that a
// verdict has one spelling from the profile to the ledger.
type Verdict string

// Verdicts of a [Decision].
const (
	VerdictAllow Verdict = "allow"
	VerdictDeny  Verdict = "deny"
	// VerdictWouldDeny: observe mode forwarded a call the policy denies.
	VerdictWouldDeny Verdict = "would_deny"
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
	// Limits counts what the sandbox's cgroup limits refused it, when
	// they refused anything.
	Limits *LimitHits `json:"limits,omitempty"`
	// LandlockDenials are the accesses Landlock refused the sandbox, as
	// the kernel's audit records name them, when vm-run could read them
	// (as root, with audit enabled; see landlock.WatchDenials).
	LandlockDenials []LandlockDenial `json:"landlock_denials,omitempty"`
}

// LandlockDenial is one kind of access Landlock refused a session: the
// access rights or scope that blocked it, what it was refused on, and how
// many times.
type LandlockDenial struct {
	// Blockers are the kernel's names of what blocked the access, as in
	// its LANDLOCK_ACCESS record, e.g. "fs.read_file" or
	// "fs.make_reg,fs.refer".
	Blockers string `json:"blockers"`
	// Object is the path refused, or for an access without one the
	// record's own description (e.g. "opid=42 ocomm=\"sh\"").
	Object string `json:"object"`
	// Count is how many such denials the session had.
	Count int `json:"count"`
}

// LimitHits counts a session's run-ins with its cgroup limits.
type LimitHits struct {
	// OOMKills counts processes the kernel's OOM killer killed because
	// the sandbox reached its memory limit.
	OOMKills uint64 `json:"oom_kills,omitempty"`
	// PidsMaxHits counts forks refused because the sandbox held as many
	// tasks as its pids limit allows.
	PidsMaxHits uint64 `json:"pids_max_hits,omitempty"`
}

// NewSessionEnd returns a SessionEnd for a command that ran for d.
func NewSessionEnd(exitStatus int, signal string, d time.Duration) SessionEnd {
	return SessionEnd{ExitStatus: exitStatus, Signal: signal, DurationNS: int64(d)}
}

// EventType implements [Event].
func (SessionEnd) EventType() string { return EventSessionEnd }

// Decision is the record of one policy decision of the MCP proxy: what was
// asked, by whom, what the policy said and why. The proxy appends it, and it
// is on disk, before the decision takes effect (the call forwarded or the
// denial sent). The tool policy fills the policy fields ([policy.Decide]),
// the proxy the rest; `vm-run audit show`, `stats` and `policy generate`
// read it back with [ReadEvent].
//
// Members are written in the order of the fields, and those after Args only
// when set, so that records of older versions read the same.
type Decision struct {
	// Method is the JSON-RPC method, e.g. "tools/call".
	Method string `json:"method,omitempty"`
	// RequestID is the JSON-RPC id of the request, verbatim.
	RequestID json.RawMessage `json:"request_id,omitempty"`
	// Tool names what was asked for: the tool or prompt name, the
	// resource URI as sent, or the method of a server request.
	Tool    string  `json:"tool"`
	Verdict Verdict `json:"verdict"`
	// Rule is the id of the rule that decided, or one of the policy's own
	// ("vm-run:default", "vm-run:paths", ...).
	Rule string `json:"rule,omitempty"`
	// Reason explains the verdict in words an agent can act on.
	Reason string `json:"reason,omitempty"`
	// Args are the call's arguments as sent. The ledger stores secrets
	// among them only as hashes of their real values ([Redact]): pass
	// them whole.
	Args any `json:"args,omitempty"`
	// Kind is what was asked for: tool, resource, prompt, sampling or
	// elicitation.
	Kind string `json:"kind,omitempty"`
	// From is the side that asked: "client" or "server".
	From string `json:"from,omitempty"`
	// Matcher is the matcher that decided, as the profile writes it.
	Matcher string `json:"matcher,omitempty"`
	// LatencyNS is the time from the request's arrival to the verdict,
	// recording excluded.
	LatencyNS int64 `json:"latency_ns,omitempty"`
	// Seq numbers the session's decisions; an [Outcome] refers to it.
	Seq uint64 `json:"seq,omitempty"`
	// Paths are the workspace-relative paths the call's path arguments
	// really lead to (symbolic links followed), in argument order: what
	// the server would touch, which is what the policy judged.
	Paths []string `json:"paths,omitempty"`
	// URI is the normalised form of a resource URI the policy judged, when
	// it differs from Tool.
	URI string `json:"uri,omitempty"`
}

// Allowed reports whether the call may go ahead: allowed, or denied by a
// policy in observe mode (would_deny), which forwards it.
func (d Decision) Allowed() bool { return d.Verdict == VerdictAllow || d.Verdict == VerdictWouldDeny }

// EventType implements [Event].
func (Decision) EventType() string { return EventDecision }

// Outcome statuses.
const (
	OutcomeOK            = "ok"             // a result
	OutcomeToolError     = "tool_error"     // a tools/call result with isError: true
	OutcomeError         = "error"          // a JSON-RPC error response
	OutcomeCancelled     = "cancelled"      // the requester sent notifications/cancelled
	OutcomeTimeout       = "timeout"        // no answer within the proxy's call timeout
	OutcomeServerGone    = "server_exited"  // the server's output ended first
	OutcomeInvalid       = "invalid"        // the answer was malformed and not forwarded
	OutcomeWithheld      = "withheld"       // the outcome could not be recorded, the answer was withheld
	OutcomeInputDenied   = "input_denied"   // the result asked for input the policy denies
	OutcomeTooLarge      = "too_large"      // the answer was over the proxy's message limit
	OutcomeContentDenied = "content_denied" // the answer embeds a resource the policy denies
)

// Outcome is the record of how an allowed call ended. The proxy appends it
// before the answer reaches the requester, without waiting for it to be
// synced: the call has already happened, and the next record's sync makes
// it durable ([Ledger.AppendQueued]).
type Outcome struct {
	Seq    uint64 `json:"seq"` // Decision.Seq
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Method string `json:"method"`
	Status string `json:"status"`
	// Code is the JSON-RPC error code of an error answer.
	Code int `json:"code,omitempty"`
	// Size is the length of the answer line in bytes.
	Size int `json:"size"`
	// DurationNS is the time from forwarding to the answer.
	DurationNS int64 `json:"duration_ns"`
}

// EventType implements [Event].
func (Outcome) EventType() string { return EventOutcome }

// Roots is the record of the MCP roots the proxy let through to the server:
// what the client offered, what the server was told, and what was dropped
// and why. It is on disk before the server hears of the roots.
type Roots struct {
	// Offered are the root URIs of the client's roots/list answer.
	Offered []string `json:"offered"`
	// Kept are the roots the server is told, as file URIs of the
	// directories they really name.
	Kept []string `json:"kept"`
	// Dropped are the roots the server is not told.
	Dropped []DroppedRoot `json:"dropped,omitempty"`
}

// DroppedRoot is a client root the proxy did not pass on.
type DroppedRoot struct {
	URI    string `json:"uri"`
	Reason string `json:"reason"`
}

// EventType implements [Event].
func (Roots) EventType() string { return EventRoots }

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

// ReadEvent decodes the data of r as the event type T: the reader that
// pairs with [Ledger.Log] for this package's records, so that what is
// written and what is read are the same type. It fails when r is another
// event type. Numbers in untyped values (Decision.Args) decode as
// json.Number, as the client sent them.
func ReadEvent[T Event](r Record) (T, error) {
	var v T
	if r.Event != v.EventType() {
		return v, fmt.Errorf("record %d is a %q event, not %q", r.Seq, r.Event, v.EventType())
	}
	dec := json.NewDecoder(bytes.NewReader(r.Data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return v, fmt.Errorf("decode %s record %d: %w", r.Event, r.Seq, err)
	}
	return v, nil
}
