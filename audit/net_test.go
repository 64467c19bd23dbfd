package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// netCases returns network records holding s in every string field, with
// the numbers at their edges, for the encoder tests (encode_test.go).
func netCases(s string) []any {
	return []any{
		NetDNS{Name: s, Type: s, Verdict: Verdict(s), Rule: s, Answer: s, Suppressed: math.MaxInt},
		NetDNS{Name: s, Type: "A", Verdict: VerdictDeny, Suppressed: -1},
		&NetDNS{Name: s},
		NetConnect{Conn: math.MaxUint64, Proto: s, Name: s, Address: s, Port: math.MaxUint16, Verdict: Verdict(s),
			Rule: s, Reason: s, SNI: s, Dialed: s, Via: s, Suppressed: math.MinInt},
		NetConnect{Proto: "tcp", Address: s, Port: 80, Verdict: VerdictDeny, Reason: s, Suppressed: 12},
		&NetConnect{Name: s},
		NetClose{Conn: 1, Name: s, Port: 443, BytesOut: math.MaxUint64, BytesIn: 1, DurationNS: math.MinInt64, Reason: s},
		NetClose{Conn: 0, Port: 0, Reason: s},
		&NetClose{Name: s},
	}
}

// TestEncodeNetFastPath: the network records take the hand-written path,
// which allocates nothing beyond boxing the value, not json.Marshal's
// reflection, which allocates for every record.
func TestEncodeNetFastPath(t *testing.T) {
	m := newKeyMatcher(DefaultRedactKeys)
	for _, ev := range []Event{
		NetDNS{Name: "api.github.com", Type: "A", Verdict: VerdictAllow, Rule: "api.github.com:443", Answer: "198.18.0.4"},
		NetConnect{Conn: 3, Proto: "tcp", Name: "api.github.com", Address: "198.18.0.4:443", Port: 443, Verdict: VerdictAllow,
			Rule: "api.github.com:443", SNI: "api.github.com", Dialed: "140.82.112.5:443"},
		NetClose{Conn: 3, Name: "api.github.com", Port: 443, BytesOut: 1200, BytesIn: 45000, DurationNS: 2.1e9},
	} {
		e := dataEncoder{buf: make([]byte, 0, 1024), keys: m, limit: DefaultRedactLimit}
		var fields any = ev
		allocs := testing.AllocsPerRun(100, func() {
			e.buf = e.buf[:0]
			if _, err := e.fields(fields); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("encoding %T allocated %v times per record, want 0 (the hand-written encoder)", ev, allocs)
		}
		want, _ := json.Marshal(ev)
		if !bytes.Equal(e.buf, want) {
			t.Errorf("encode %T = %s, want %s", ev, e.buf, want)
		}
	}
}

// TestNetRecordsRoundTrip writes each network record with a real ledger
// file (Open, Log, LogAll, AppendQueued), reads each back with ReadEvent,
// and verifies the file.
func TestNetRecordsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l, err := Open(path, Options{SessionID: "0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var evs []Event
	for _, s := range oddStrings {
		if len(s) > 1000 {
			continue // over the redaction limit: stored cut, as an object
		}
		evs = append(evs,
			NetDNS{Name: "x" + s, Type: "A", Verdict: VerdictDeny, Suppressed: 7},
			NetDNS{Name: "api.github.com", Type: "A", Verdict: VerdictAllow, Rule: "api.github.com:443", Answer: "198.18.0.4"},
			NetDNS{Name: "api.github.com", Type: "AAAA", Verdict: VerdictAllow, Rule: s},
			NetConnect{Conn: 3, Proto: "tcp", Name: "api.github.com", Address: "198.18.0.4:443", Port: 443, Verdict: VerdictAllow,
				Rule: "api.github.com:443", SNI: s, Dialed: "140.82.112.5:443", Via: "proxy.corp:3128"},
			NetConnect{Proto: "tcp", Name: s, Address: "198.18.0.5:80", Port: 80, Verdict: VerdictDeny,
				Reason: "no rule allows " + s + ":80", Suppressed: 12},
			NetConnect{Proto: "udp", Address: "10.0.0.7:53", Port: 53, Verdict: VerdictDeny, Reason: s},
			NetClose{Conn: 3, Name: "api.github.com", Port: 443, BytesOut: 1200, BytesIn: math.MaxUint64, DurationNS: 2.1e9, Reason: s},
		)
	}
	for i, ev := range evs {
		var err error
		switch i % 3 {
		case 0:
			_, err = l.Log(ctx, ev)
		case 1:
			err = l.LogAll(ctx, []Event{ev})[0]
		case 2:
			_, err = l.AppendQueued(ctx, ev.EventType(), ev)
		}
		if err != nil {
			t.Fatalf("log %#v: %v", ev, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []Record
	err = ReadRecords(f, func(n int, _ []byte, r Record, err error) error {
		if err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		if r.Event != EventGenesis {
			got = append(got, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(evs) {
		t.Fatalf("read %d records, want %d", len(got), len(evs))
	}
	for i, ev := range evs {
		r := got[i]
		if r.Event != ev.EventType() {
			t.Fatalf("record %d is %q, want %q", r.Seq, r.Event, ev.EventType())
		}
		var back any
		var err error
		switch ev.(type) {
		case NetDNS:
			back, err = ReadEvent[NetDNS](r)
		case NetConnect:
			back, err = ReadEvent[NetConnect](r)
		case NetClose:
			back, err = ReadEvent[NetClose](r)
		}
		if want := viaJSON(t, ev); err != nil || !reflect.DeepEqual(back, want) {
			t.Errorf("ReadEvent(record %d) = %+v, %v; want %+v", r.Seq, back, err, want)
		}
	}
	if _, err := ReadEvent[NetClose](got[0]); err == nil {
		t.Errorf("ReadEvent[NetClose] of a net_dns record succeeded, want an error")
	}

	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(f)
	if err != nil || rep.Records != len(evs)+1 {
		t.Errorf("Verify = %d records, %v; want %d, intact", rep.Records, err, len(evs)+1)
	}
}

// viaJSON returns ev as JSON gives it back: invalid UTF-8 in a string
// comes back as U+FFFD, as encoding/json writes it.
func viaJSON(t *testing.T, ev Event) any {
	t.Helper()
	p := reflect.New(reflect.TypeOf(ev))
	if err := json.Unmarshal(mustMarshal(ev), p.Interface()); err != nil {
		t.Fatal(err)
	}
	return p.Elem().Interface()
}

// TestFilterNetVerdict: --verdict selects network records by their
// verdict; --tool, which they have none of, leaves them out.
func TestFilterNetVerdict(t *testing.T) {
	recs := map[string]Record{
		"dns allow":     netRecord(t, "s", NetDNS{Name: "a.example", Type: "A", Verdict: VerdictAllow}),
		"dns deny":      netRecord(t, "s", NetDNS{Name: "b.example", Type: "A", Verdict: VerdictDeny}),
		"connect allow": netRecord(t, "s", NetConnect{Proto: "tcp", Name: "a.example", Port: 443, Verdict: VerdictAllow}),
		"connect deny":  netRecord(t, "s", NetConnect{Proto: "tcp", Name: "b.example", Port: 80, Verdict: VerdictDeny}),
		"close":         netRecord(t, "s", NetClose{Conn: 1, Port: 443}),
	}
	tests := []struct {
		f    Filter
		want []string
	}{
		{Filter{Verdict: "deny"}, []string{"connect deny", "dns deny"}},
		{Filter{Verdict: "allow", Event: EventNetConnect}, []string{"connect allow"}},
		{Filter{Event: EventNetClose}, []string{"close"}},
		{Filter{Tool: "*"}, nil},
		{Filter{}, []string{"close", "connect allow", "connect deny", "dns allow", "dns deny"}},
	}
	for _, tt := range tests {
		var got []string
		for name, r := range recs {
			if tt.f.Match(r) {
				got = append(got, name)
			}
		}
		slices.Sort(got)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%+v matches %q, want %q", tt.f, got, tt.want)
		}
	}
}

// netRecord returns a record of ev in session as ParseLine returns it.
func netRecord(t *testing.T, session string, ev Event) Record {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return Record{Session: session, Event: ev.EventType(), Data: b}
}

// FuzzEncodeNet compares the encoder with json.Marshal on network records
// made of arbitrary strings and numbers.
func FuzzEncodeNet(f *testing.F) {
	for i, s := range oddStrings {
		f.Add(s, s+"x", uint64(i), uint16(i), int64(-i))
	}
	f.Fuzz(func(t *testing.T, s, u string, n uint64, port uint16, d int64) {
		checkEncode(t, NetDNS{Name: s, Type: u, Verdict: Verdict(s), Rule: u, Answer: s, Suppressed: int(d)})
		checkEncode(t, NetConnect{Conn: n, Proto: u, Name: s, Address: u, Port: port, Verdict: Verdict(u),
			Rule: s, Reason: u, SNI: s, Dialed: u, Via: s, Suppressed: int(d)})
		checkEncode(t, NetClose{Conn: n, Name: s, Port: port, BytesOut: n, BytesIn: uint64(d), DurationNS: d, Reason: u})
	})
}

// TestNetStats counts a session's network records: suppressed denials
// count as denials, and a close without a name is put down to the
// destination of its connection.
func TestNetStats(t *testing.T) {
	st := NewStats()
	for _, r := range []Record{
		netRecord(t, "s1", NetDNS{Name: "api.github.com", Type: "A", Verdict: VerdictAllow, Answer: "198.18.0.4"}),
		netRecord(t, "s1", NetDNS{Name: "telemetry.example", Type: "A", Verdict: VerdictDeny}),
		netRecord(t, "s1", NetDNS{Name: "telemetry.example", Type: "AAAA", Verdict: VerdictDeny, Suppressed: 4}),
		netRecord(t, "s1", NetConnect{Conn: 1, Proto: "tcp", Name: "api.github.com", Address: "198.18.0.4:443", Port: 443, Verdict: VerdictAllow}),
		netRecord(t, "s1", NetConnect{Conn: 2, Proto: "tcp", Address: "10.0.0.5:5432", Port: 5432, Verdict: VerdictAllow}),
		netRecord(t, "s1", NetConnect{Proto: "tcp", Name: "example.com", Address: "198.18.0.5:80", Port: 80, Verdict: VerdictDeny,
			Reason: "no rule allows example.com:80", Suppressed: 12}),
		netRecord(t, "s1", NetClose{Conn: 2, Port: 5432, BytesOut: 10, BytesIn: 20, DurationNS: 5}),
		netRecord(t, "s1", NetClose{Conn: 1, Name: "api.github.com", Port: 443, BytesOut: 1200, BytesIn: 45000, DurationNS: 7}),
		netRecord(t, "s2", NetClose{Conn: 1, Port: 443, BytesOut: 1}), // its connect record filtered out
	} {
		st.Add(r)
	}
	n := st.Network
	if n == nil {
		t.Fatal("Stats.Network = nil after network records")
	}
	if n.Connections != 15 || n.Allowed != 2 || n.Denied != 13 || n.Suppressed != 12 || n.Closed != 3 ||
		n.BytesOut != 1211 || n.BytesIn != 45020 {
		t.Errorf("connections %+v, want 15: 2 allowed, 13 denied (12 suppressed); 3 closed, 1211 bytes out, 45020 in", *n)
	}
	if n.DNSQuestions != 7 || n.DNSAnswered != 1 || n.DNSDenied != 6 || n.DNSSuppressed != 4 {
		t.Errorf("DNS %+v, want 7 questions: 1 answered, 6 denied (4 suppressed)", *n)
	}
	var dests []string
	for _, d := range n.TopDestinations(10) {
		dests = append(dests, d.Destination)
	}
	if want := []string{"example.com:80", "api.github.com:443", "10.0.0.5:5432", ":443"}; !slices.Equal(dests, want) {
		t.Errorf("TopDestinations = %q, want %q", dests, want)
	}
	if d := n.Destinations["10.0.0.5:5432"]; d == nil || d.Closed != 1 || d.BytesIn != 20 || d.DurationNS != 5 {
		t.Errorf("10.0.0.5:5432 = %+v, want its close counted", d)
	}
	if d := n.Destinations["example.com:80"]; d == nil || d.Denied != 13 || d.TopReason() != "no rule allows example.com:80" {
		t.Errorf("example.com:80 = %+v, want 13 denials, no rule", d)
	}
	if names := n.TopDeniedNames(1); len(names) != 1 || names[0].Name != "telemetry.example" || names[0].Denied != 6 ||
		!slices.Equal(names[0].TypeList(), []string{"A", "AAAA"}) {
		t.Errorf("TopDeniedNames(1) = %+v, want telemetry.example, 6 denials of A and AAAA", names)
	}
	if NewStats().Network != nil {
		t.Errorf("Stats.Network set without network records")
	}
}
