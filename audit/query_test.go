package audit

import (
	"bytes"
	"testing"
	"time"
)

func TestFilter(t *testing.T) {
	var recs []Record
	for _, line := range splitLines(buildLedger(t, 10)) {
		r, err := ParseLine(line)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	at := func(i int) time.Time { return recs[i].Time }
	tests := []struct {
		name string
		f    Filter
		want int
	}{
		{"everything", Filter{}, 11},
		{"session prefix", Filter{Session: "0123"}, 11},
		{"other session", Filter{Session: "ffff"}, 0},
		{"event", Filter{Event: EventDecision}, 10},
		{"genesis", Filter{Event: EventGenesis}, 1},
		{"verdict", Filter{Verdict: string(VerdictDeny)}, 2},
		{"tool glob", Filter{Tool: "tool_[01]"}, 4},
		{"tool and verdict", Filter{Tool: "tool_0", Verdict: string(VerdictDeny)}, 1},
		{"since", Filter{Since: at(5)}, 6},
		{"until", Filter{Until: at(5)}, 5},
		{"since and until", Filter{Since: at(2), Until: at(4)}, 2},
		{"event glob", Filter{Event: "dec*"}, 10},
		{"event glob of none", Filter{Event: "approval_*"}, 0},
	}
	for _, tt := range tests {
		got := 0
		for _, r := range recs {
			if tt.f.Match(r) {
				got++
			}
		}
		if got != tt.want {
			t.Errorf("%s: %d records match %+v, want %d", tt.name, got, tt.f, tt.want)
		}
	}
	if err := (Filter{Tool: "["}).Validate(); err == nil {
		t.Error(`Filter{Tool: "["}.Validate() = nil, want an error`)
	}
	if err := (Filter{Event: "approval_["}).Validate(); err == nil {
		t.Error(`Filter{Event: "approval_["}.Validate() = nil, want an error`)
	}
}

func TestLastLines(t *testing.T) {
	b := buildLedger(t, 400) // well over one 64 KiB read
	all := splitLines(b)
	trim := func(ls [][]byte) [][]byte {
		out := make([][]byte, len(ls))
		for i, l := range ls {
			out[i] = bytes.TrimSuffix(l, []byte("\n"))
		}
		return out
	}
	torn := append(bytes.Clone(b), `{"v":1,"seq":40`...)
	tests := []struct {
		name string
		data []byte
		n    int
		keep func([]byte) bool
		want [][]byte
	}{
		{"last 3", b, 3, nil, trim(all[len(all)-3:])},
		{"all and more", b, 1000, nil, trim(all)},
		{"torn final line left out", torn, 2, nil, trim(all[len(all)-2:])},
		{"filtered", b, 2, func(l []byte) bool {
			return bytes.Contains(l, []byte(`"seq":7,`)) || bytes.Contains(l, []byte(`"seq":8,`))
		}, trim(all[6:8])},
		{"empty", nil, 5, nil, nil},
	}
	for _, tt := range tests {
		got, err := LastLines(bytes.NewReader(tt.data), int64(len(tt.data)), tt.n, tt.keep)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tt.want) {
			t.Fatalf("%s: LastLines = %d lines, want %d", tt.name, len(got), len(tt.want))
		}
		for i := range got {
			if !bytes.Equal(got[i], tt.want[i]) {
				t.Fatalf("%s: line %d = %.60q, want %.60q", tt.name, i, got[i], tt.want[i])
			}
		}
	}
}

func TestStats(t *testing.T) {
	s := NewStats()
	err := ReadRecords(bytes.NewReader(buildLedger(t, 20)), func(n int, raw []byte, r Record, err error) error {
		if err != nil {
			return err
		}
		s.Add(r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Records != 21 || s.Verdicts[string(VerdictDeny)] != 4 || s.Verdicts[string(VerdictAllow)] != 16 || len(s.Sessions) != 1 {
		t.Fatalf("Stats = %d records, verdicts %v, %d sessions; want 21, deny 4 allow 16, 1", s.Records, s.Verdicts, len(s.Sessions))
	}
	// Denials go to decisions 0, 5, 10, 15: tools 0, 5, 3, 1.
	md := s.MostDenied(10)
	if len(md) != 4 || md[0].Denied != 1 || md[0].TopRule() != "rule-deny" {
		t.Fatalf("MostDenied = %d tools, first %+v; want 4 tools with 1 denial by rule-deny", len(md), md[0])
	}
	if tl := s.ToolList(); len(tl) != 7 || tl[0].Decisions != 3 {
		t.Fatalf("ToolList = %d tools, first with %d decisions; want 7, 3", len(tl), tl[0].Decisions)
	}
}
