package proxy

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// Recorder receives every decision and the outcome of every allowed call.
// The audit ledger implements it.
type Recorder interface {
	// Record returns only when the decision is durable. The proxy calls it
	// before the call is forwarded or the denial sent; if it fails, the call
	// is denied (RuleLedger) and the failure reported.
	Record(ctx context.Context, d Decision) error
	// Outcome records how an allowed call ended. The proxy calls it before
	// the result reaches the requester; if it fails, the requester gets an
	// error instead of the result. An implementation may return before the
	// record is durable (vm-run's is written at once and synced with the
	// next decision: the call has already happened at the server, and only
	// the decision must precede it).
	Outcome(ctx context.Context, o Outcome) error
}

// Outcome statuses.
const (
	OutcomeOK          = "ok"            // a result
	OutcomeToolError   = "tool_error"    // a tools/call result with isError: true
	OutcomeError       = "error"         // a JSON-RPC error response
	OutcomeCancelled   = "cancelled"     // the requester sent notifications/cancelled
	OutcomeTimeout     = "timeout"       // no answer within Config.CallTimeout
	OutcomeServerGone  = "server_exited" // the server's output ended first
	OutcomeInvalid     = "invalid"       // the answer was malformed and not forwarded
	OutcomeWithheld    = "withheld"      // see Recorder.Outcome
	OutcomeInputDenied = "input_denied"  // the result asked for input the policy denies
)

// Outcome is how an allowed call ended.
type Outcome struct {
	Seq      uint64        `json:"seq"` // Decision.Seq
	Kind     Kind          `json:"kind"`
	Name     string        `json:"name"`
	Method   string        `json:"method"`
	Status   string        `json:"status"`
	Code     int           `json:"code,omitempty"` // JSON-RPC error code
	Size     int           `json:"size"`           // bytes of the answer line
	Duration time.Duration `json:"duration_ns"`    // forwarded to answered
}

// Discard is a Recorder that keeps nothing, for running without a ledger.
var Discard Recorder = discard{}

type discard struct{}

func (discard) Record(context.Context, Decision) error { return nil }
func (discard) Outcome(context.Context, Outcome) error { return nil }

// Redacted replaces the argument values.
const Redacted = "[REDACTED]"

// redact returns raw (a JSON object) with the value of every key named in
// keys, at any depth and compared case-insensitively, replaced by Redacted.
func redact(raw []byte, keys []string) json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	if len(keys) == 0 {
		return json.RawMessage(append([]byte(nil), raw...))
	}
	var v any
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	if d.Decode(&v) != nil {
		return nil
	}
	return json.RawMessage(marshalLine(redactValue(v, keys)))
}

func redactValue(v any, keys []string) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if redactKey(k, keys) {
				v[k] = Redacted
			} else {
				v[k] = redactValue(e, keys)
			}
		}
	case []any:
		for i, e := range v {
			v[i] = redactValue(e, keys)
		}
	}
	return v
}

func redactKey(k string, keys []string) bool {
	for _, r := range keys {
		if strings.EqualFold(k, r) {
			return true
		}
	}
	return false
}
