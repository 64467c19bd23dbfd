package audit

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
)

// TestReadEventReadsWhatLogWrote: each record type comes back from the
// ledger as the value that was logged (arguments, which the ledger may
// redact, come back as decoded JSON with numbers as json.Number).
func TestReadEventReadsWhatLogWrote(t *testing.T) {
	m := &memFile{}
	l := memLedger(t, m, fixedOptions)
	d := benchDecision(3)
	o := Outcome{Seq: 4, Kind: "tool", Name: "read_file", Method: "tools/call", Status: OutcomeOK, Size: 120, DurationNS: 5}
	r := Roots{Offered: []string{"file:///", "file:///ws/src"}, Kept: []string{"file:///ws/src"},
		Dropped: []DroppedRoot{{URI: "file:///", Reason: "lies outside the workspace"}}}
	var recs []Record
	for _, ev := range []Event{d, o, r} {
		rec, err := l.Log(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	gotD, err := ReadEvent[Decision](recs[0])
	if err != nil {
		t.Fatal(err)
	}
	want := d
	want.Args = map[string]any{"path": "docs/section-3/page.md"}
	if !reflect.DeepEqual(gotD, want) {
		t.Errorf("ReadEvent[Decision] = %+v, want %+v", gotD, want)
	}
	if got, err := ReadEvent[Outcome](recs[1]); err != nil || got != o {
		t.Errorf("ReadEvent[Outcome] = %+v, %v; want %+v", got, err, o)
	}
	if got, err := ReadEvent[Roots](recs[2]); err != nil || !reflect.DeepEqual(got, r) {
		t.Errorf("ReadEvent[Roots] = %+v, %v; want %+v", got, err, r)
	}
	if _, err := ReadEvent[Outcome](recs[0]); err == nil {
		t.Errorf("ReadEvent[Outcome] of a decision record succeeded, want an error")
	}
	num, err := ReadEvent[Decision](Record{Event: EventDecision, Data: json.RawMessage(`{"tool":"t","verdict":"allow","args":{"n":10000000000000000001}}`)})
	if err != nil || num.Args.(map[string]any)["n"] != json.Number("10000000000000000001") {
		t.Errorf("ReadEvent kept args %v, %v; want the number as written", num.Args, err)
	}
}
