package audit

// Records of a person in the loop: the questions the proxy asks before a
// call under an ask rule goes ahead (or before a secret under approve: ask
// is handed to the server), how each was answered, the secrets a session
// was given, what the proxy scrubbed from the server's answers, and tool
// definitions that changed since they were pinned. Like a Decision, each
// answer is on disk before it takes effect.

// Event types of the approval, secret and pin records.
const (
	EventApprovalRequested = "approval_requested"
	EventApprovalGranted   = "approval_granted"
	EventApprovalDenied    = "approval_denied"
	EventApprovalExpired   = "approval_expired"
	EventSecretProvided    = "secret_provided"
	EventSecretRedacted    = "secret_redacted"
	EventToolChanged       = "tool_changed"
)

// VerdictAsk is the verdict of a call an ask rule holds until a person
// answers: its Decision is followed by an ApprovalRequested and, before
// the call is forwarded or refused, by the answer's record.
const VerdictAsk Verdict = "ask"

// Approval channels: how a question reached a person.
const (
	// ChannelElicitation: the MCP client, through an elicitation/create
	// request of vm-run's own.
	ChannelElicitation = "elicitation"
	// ChannelCLI: `vm-run approvals` on the user's approval socket.
	ChannelCLI = "cli"
	// ChannelRemembered: a grant for the same call made earlier in the
	// session and still within its rule's ttl; no one was asked.
	ChannelRemembered = "remembered"
)

// Grant scopes.
const (
	ScopeOnce = "once" // this call only
	ScopeTTL  = "ttl"  // this call and the same call until the rule's ttl ends
)

// ApprovalRequested is a question put to a person: the call (or the
// secret) waiting, the rule that asks, and where the question went.
type ApprovalRequested struct {
	// ID names the question in this session; the answer's record and
	// `vm-run approvals` use it.
	ID string `json:"id"`
	// Seq is the Decision.Seq of the call waiting; 0 for a secret.
	Seq uint64 `json:"seq,omitempty"`
	// Kind is what waits: tool, resource, prompt, sampling, elicitation
	// or secret.
	Kind string `json:"kind"`
	// Name is the tool, prompt, URI or secret name.
	Name string `json:"name"`
	// Args are the judged arguments, stored redacted as a Decision's are.
	Args any `json:"args,omitempty"`
	// Paths are the paths the call really leads to, as in the Decision.
	Paths  []string `json:"paths,omitempty"`
	Rule   string   `json:"rule,omitempty"`
	Reason string   `json:"reason,omitempty"`
	// Channels are where the question went, in order of preference.
	Channels []string `json:"channels"`
	// TimeoutNS is how long the question waits before it expires.
	TimeoutNS int64 `json:"timeout_ns"`
	// TTLNS is how long a grant for the rule's TTL holds; 0 when the rule
	// offers only once.
	TTLNS int64 `json:"ttl_ns,omitempty"`
}

// EventType implements [Event].
func (ApprovalRequested) EventType() string { return EventApprovalRequested }

// ApprovalGranted is a yes: the call goes ahead once this is on disk.
type ApprovalGranted struct {
	ID string `json:"id"`
	// Channel is where the answer came from (ChannelElicitation,
	// ChannelCLI or ChannelRemembered).
	Channel string `json:"channel"`
	// By says who answered: the client's name and version for
	// elicitation, "uid=N pid=M" for the CLI, the ID of the earlier grant
	// for a remembered one.
	By string `json:"by"`
	// Scope is ScopeOnce or ScopeTTL.
	Scope string `json:"scope"`
	// TTLNS is how long a ScopeTTL grant holds from now.
	TTLNS int64  `json:"ttl_ns,omitempty"`
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	// Args are the judged arguments the grant covers (redacted), so that
	// `vm-run policy generate` can propose an allow rule for them.
	Args any    `json:"args,omitempty"`
	Rule string `json:"rule,omitempty"`
}

// EventType implements [Event].
func (ApprovalGranted) EventType() string { return EventApprovalGranted }

// ApprovalDenied is a no from a person: the call is refused.
type ApprovalDenied struct {
	ID      string `json:"id"`
	Channel string `json:"channel"`
	By      string `json:"by"`
	// Reason is what the person said, if anything.
	Reason string `json:"reason,omitempty"`
}

// EventType implements [Event].
func (ApprovalDenied) EventType() string { return EventApprovalDenied }

// ApprovalExpired is a question that ended without an answer: its timeout
// passed, the client withdrew the call (notifications/cancelled), or the
// session ended. The call is refused (or, when withdrawn, never sent).
type ApprovalExpired struct {
	ID string `json:"id"`
	// Reason is "timeout", "cancelled" or "session end".
	Reason string `json:"reason"`
}

// EventType implements [Event].
func (ApprovalExpired) EventType() string { return EventApprovalExpired }

// SecretProvided is a secret handed to the server as environment
// variables. The value itself is never recorded: its SHA-256 lets an
// auditor tell which value it was without learning it.
type SecretProvided struct {
	// Name is the secret's name in the profile.
	Name string `json:"name"`
	// Source is "file", "env" or "command".
	Source string `json:"source"`
	// SHA256 is the hex SHA-256 of the value.
	SHA256 string `json:"sha256"`
	// Env are the variables of the server's environment that hold it.
	Env []string `json:"env"`
}

// EventType implements [Event].
func (SecretProvided) EventType() string { return EventSecretProvided }

// SecretRedacted is a server message in which the proxy replaced a
// secret's value before the client saw it.
type SecretRedacted struct {
	// Name is the secret's name in the profile.
	Name string `json:"name"`
	// Forms are the encodings the value was found in ("raw", "url",
	// "base64", "base64url"), each once.
	Forms []string `json:"forms"`
	// Count is how many occurrences were replaced.
	Count int `json:"count"`
	// Method is the method of the message or of the request it answers.
	Method string `json:"method,omitempty"`
	// Seq is the Decision.Seq of the call it answers, when there is one.
	Seq uint64 `json:"seq,omitempty"`
}

// EventType implements [Event].
func (SecretRedacted) EventType() string { return EventSecretRedacted }

// ToolChanged is a tool whose definition differs from the one pinned for
// this profile and server command in an earlier session.
type ToolChanged struct {
	Tool string `json:"tool"`
	// Pinned and Seen are the hex SHA-256 of the definitions.
	Pinned string `json:"pinned"`
	Seen   string `json:"seen"`
	// Changed names what differs: "description", "inputSchema",
	// "outputSchema", "annotations", "title".
	Changed []string `json:"changed"`
	// Summary says it in a line.
	Summary string `json:"summary"`
	// Action is what the profile's tools.on_change made of it: "ask",
	// "deny" or "allow".
	Action string `json:"action"`
}

// EventType implements [Event].
func (ToolChanged) EventType() string { return EventToolChanged }
