package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
)

// oddStrings are strings that encoding/json escapes or rewrites: quotes,
// control characters, HTML characters, U+2028 and U+2029, invalid and
// truncated UTF-8, surrogate halves, and non-ASCII text.
var oddStrings = []string{
	"", "plain", `quote " and back\slash`, "\x00\x01\x07\x1f\x7f", "\b\f\n\r\t",
	"<script>alert('x')</script> & more", "line\u2028sep\u2029para", "é日本語🎉",
	"\xff\xfe", "cut \xe2\x80", "a\xe2\x80\xa8b", "\xed\xa0\x80 surrogate", "\xc0\xaf overlong",
	"tab\there", "/slash/", "\u00a0\ufeff\U0010ffff", strings.Repeat("x<", 2100),
}

// encodeCases returns event fields of every kind the encoder knows, and some
// it hands to json.Marshal.
func encodeCases() []any {
	type custom struct {
		A string `json:"a"`
		B []int  `json:"b,omitempty"`
	}
	nested := map[string]any{"leaf": "x"}
	for i := range 100 {
		nested = map[string]any{fmt.Sprintf("level%d", i): nested, "n": float64(i)}
	}
	args := []any{
		nil, "s", true, false, 0.0, math.Copysign(0, -1), 1.0, -1.5, 1e20, 1e21, 123456789e15, 1e-6, 1e-7, 5e-324,
		math.MaxFloat64, -math.MaxFloat64, 0.1, 1.0 / 3, float64(1<<53 + 1), math.NaN(), math.Inf(1),
		0, -1, math.MaxInt, math.MinInt, int64(math.MaxInt64), int64(math.MinInt64), uint64(math.MaxUint64), int32(-7), uint8(200), float32(0.1),
		json.Number("0"), json.Number("-12.5e+3"), json.Number("123456789012345678901234567890"), json.Number("1e400"),
		json.Number(""), json.Number("01"), json.Number("1."), json.Number("+1"), json.Number("NaN"),
		json.RawMessage(nil), json.RawMessage{}, json.RawMessage(`7`), json.RawMessage(` {"a" : [1, 2 ,"x y<z>&"], "b":{}} `),
		json.RawMessage("\"\u2028\u2029\""), json.RawMessage(`"\u003c\"\\"`), json.RawMessage("\"\xff\""), json.RawMessage(`{`),
		json.RawMessage(`{"API-Key":"x"}`), json.RawMessage(`[ "token" , {"x":1} ]`), json.RawMessage("{\"k\":\"a b\"}\n"),
		[]any{}, []any(nil), []any{1.0, "two", nil, []any{map[string]any{}}}, []string{"a", "<b>"}, []string(nil),
		map[string]any{}, map[string]any(nil), map[string]string{"k": "v&"}, custom{A: "<x>"}, &custom{B: []int{1}},
		(*custom)(nil), nested, make(chan int),
	}
	for _, s := range oddStrings {
		args = append(args, s, map[string]any{s: s}, json.RawMessage(mustMarshal(s)))
	}
	keys := map[string]any{}
	for _, k := range []string{"path", "Path", "API-Key", "apiKey", "x.token.y", "passWord", "tok\u00e9n", "\u212aey",
		"a\\b", "<token>", "pass word", "", strings.Repeat("k", 300), strings.Repeat("y", 300) + "secret"} {
		keys[k] = k
	}
	args = append(args, keys)

	var cases []any
	for _, a := range args {
		cases = append(cases, Decision{Tool: "t", Verdict: VerdictAllow, Args: a}, map[string]any{"v": a})
	}
	for _, s := range oddStrings {
		cases = append(cases,
			Decision{Method: s, RequestID: json.RawMessage(mustMarshal(s)), Tool: s, Verdict: Verdict(s), Rule: s, Reason: s,
				Args: map[string]any{"path": s, "nested": []any{s, map[string]any{"z": s, "a": s}}}},
			&Decision{Tool: s, Verdict: Verdict(s)},
			SessionStart{Argv: []string{s}, Profile: s, ProfileHash: s, Workdir: s, Sandbox: s, Kernel: map[string]any{"k": s}},
			&SessionStart{Argv: []string{"a", s}},
			SessionEnd{ExitStatus: -1, Signal: s, DurationNS: math.MaxInt64, Error: s},
			&SessionEnd{ExitStatus: math.MaxInt32},
			SessionEnd{ExitStatus: 137, Signal: s, Limits: &LimitHits{OOMKills: 1}},
			SessionEnd{ExitStatus: 2, Error: s, Limits: &LimitHits{PidsMaxHits: math.MaxUint64}},
			SessionEnd{ExitStatus: 1, LandlockDenials: []LandlockDenial{{Blockers: "fs.read_file", Object: s, Count: 3}}},
			SessionEnd{LandlockDenials: []LandlockDenial{{Blockers: s, Object: "/x"}, {Object: s, Count: -1}, {}}},
			Recovered{TornOffset: math.MaxInt64, TornLength: 1, TornSHA256: s},
			Decision{Tool: s, Verdict: VerdictDeny, Kind: s, From: s, Matcher: s, LatencyNS: -1, Seq: math.MaxUint64,
				Paths: []string{s, "src/" + s}, URI: s, Args: json.RawMessage(mustMarshal(map[string]any{"token": s}))},
			Outcome{Seq: 1, Kind: s, Name: s, Method: s, Status: s, Code: -32603, Size: math.MaxInt32, DurationNS: math.MaxInt64},
			&Outcome{Name: s},
			Roots{Offered: []string{s}, Kept: []string{s, s}, Dropped: []DroppedRoot{{URI: s, Reason: s}, {}}},
			Roots{Offered: []string{}, Kept: nil},
		)
		cases = append(cases, netCases(s)...)
	}
	cases = append(cases,
		Decision{}, (*Decision)(nil), SessionStart{}, (*SessionStart)(nil), SessionEnd{}, (*SessionEnd)(nil),
		SessionEnd{Limits: &LimitHits{}}, SessionEnd{Limits: &LimitHits{OOMKills: 3, PidsMaxHits: 4}},
		Recovered{}, &Recovered{TornOffset: 3}, genesis{Format: 1, Algorithm: "sha256"},
		Outcome{}, (*Outcome)(nil), Roots{}, (*Roots)(nil), Decision{Paths: []string{}},
		NetDNS{}, NetConnect{}, NetClose{}, (*NetDNS)(nil), (*NetConnect)(nil), (*NetClose)(nil),
		Decision{Tool: "t", Verdict: "v", RequestID: json.RawMessage(`{"token" : "x"}`)},
		Decision{Tool: "t", Verdict: "v", RequestID: json.RawMessage(`nope`)},
		benchDecision(7), custom{A: "a"}, "not an object", 42, []any{}, nil,
		struct {
			Decision
			Extra string `json:"extra"`
		}{Decision: benchDecision(1), Extra: "x"},
	)
	return cases
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// redactConfigs are the key sets and limits the encoder's redaction verdict
// is checked under.
var redactConfigs = []struct {
	keys  []string
	limit int
}{
	{DefaultRedactKeys, DefaultRedactLimit},
	{DefaultRedactKeys, 10},
	{DefaultRedactKeys, -1},
	{[]string{"tool", "Verdict", "argv"}, 0},
	{[]string{"kills", "max-hits"}, 4096}, // the members of SessionEnd.Limits
	{[]string{"answer", "dialed"}, 4096},  // members of the network records only
	{[]string{}, 4096},
	{[]string{}, -1},
}

// checkEncode fails the test unless the encoder writes for fields exactly
// what json.Marshal writes, fails exactly when it fails, and says what
// mayRedact says of the result.
func checkEncode(t *testing.T, fields any) {
	t.Helper()
	want, wantErr := json.Marshal(fields)
	for _, c := range redactConfigs {
		m := newKeyMatcher(c.keys)
		e := dataEncoder{buf: []byte("prefix"), keys: m, limit: c.limit}
		redact, err := e.fields(fields)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("encode %#v: error %v, json.Marshal error %v", fields, err, wantErr)
		}
		if err != nil {
			return
		}
		got, ok := bytes.CutPrefix(e.buf, []byte("prefix"))
		if !ok || !bytes.Equal(got, want) {
			t.Fatalf("encode %#v:\n got %q\nwant %q", fields, got, want)
		}
		if wantRedact := mayRedact(want, m, c.limit); redact != wantRedact {
			t.Fatalf("encode %#v with keys %q, limit %d: redact = %v, mayRedact = %v", fields, c.keys, c.limit, redact, wantRedact)
		}
	}
}

// TestEncodeMatchesMarshal: the hand-written encoder and encoding/json write
// the same bytes, so a ledger does not depend on which of them encoded a
// record, and the encoder's redaction verdict is mayRedact's.
func TestEncodeMatchesMarshal(t *testing.T) {
	for _, fields := range encodeCases() {
		checkEncode(t, fields)
	}
}

// TestEncodeData: what Append stores is json.Marshal's output, redacted
// where mayRedact says it may need to be, as before the encoder existed.
func TestEncodeData(t *testing.T) {
	for _, c := range redactConfigs {
		l, err := newLedger("mem", Options{Host: "h", RedactKeys: c.keys, RedactLimit: c.limit}, &memFile{})
		if err != nil {
			t.Fatal(err)
		}
		for _, fields := range encodeCases() {
			got, err := l.encode(fields)
			want, wantErr := referenceEncode(fields, l.redact, l.limit)
			if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
				t.Fatalf("encode(%#v) = %q, %v; want %q, %v", fields, got, err, want, wantErr)
			}
		}
		l.Close()
	}
}

// referenceEncode is how Append encoded fields before the hand-written
// encoder: json.Marshal, then redaction where mayRedact says so.
func referenceEncode(fields any, m *keyMatcher, limit int) ([]byte, error) {
	if fields == nil {
		return []byte("{}"), nil
	}
	data, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 || data[0] != '{' {
		return nil, fmt.Errorf("not an object: %s", data)
	}
	if !mayRedact(data, m, limit) {
		return data, nil
	}
	return redactJSON(data, m.norm, limit)
}

// FuzzEncode compares the encoder with json.Marshal on decisions made of
// arbitrary strings, numbers and raw JSON.
func FuzzEncode(f *testing.F) {
	for i, s := range oddStrings {
		f.Add(s, s+"k", []byte(mustMarshal(s)), float64(i)*1.5e-7, fmt.Sprint(i))
	}
	f.Add("a", "API_key", []byte(` {"x" : [1,2]} `), 1e21, "1e5")
	f.Fuzz(func(t *testing.T, s, key string, raw []byte, x float64, num string) {
		checkEncode(t, Decision{Method: s, RequestID: raw, Tool: key, Verdict: Verdict(s), Reason: s,
			Args: map[string]any{key: s, "raw": json.RawMessage(raw), "x": x, "n": json.Number(num),
				"list": []any{s, x, map[string]any{s: key}}}})
		checkEncode(t, map[string]any{key: json.RawMessage(raw)})
		var v any
		if json.Unmarshal(raw, &v) == nil {
			checkEncode(t, Decision{Tool: s, Verdict: Verdict(key), Args: v})
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if d.Decode(&v) == nil {
			checkEncode(t, SessionStart{Argv: []string{s, key}, Sandbox: v})
		}
	})
}
