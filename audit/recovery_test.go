package audit

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// nextWrite returns the bytes that a new handle's Append of one record of
// type typ adds to a ledger holding data. Handles in these tests use a
// fixed clock, so the same call always writes the same bytes.
func nextWrite(t *testing.T, data []byte, typ string) []byte {
	t.Helper()
	m := &memFile{data: bytes.Clone(data)}
	l := memLedger(t, m, fixedOptions)
	if _, err := l.Append(ctx, typ, map[string]string{"pad": strings.Repeat("p", 100)}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	return m.bytes()[len(data):]
}

// TestRecoverEveryCut cuts a batch write at every byte and then a writer's
// recovery write at every byte: each time the ledger must verify (torn
// writes as warnings), the next writer must append, and nothing appended
// before the cut may change.
func TestRecoverEveryCut(t *testing.T) {
	base := &memFile{}
	lb := memLedger(t, base, fixedOptions)
	for range 3 {
		if _, err := lb.Append(ctx, "before", nil); err != nil {
			t.Fatal(err)
		}
	}
	lb.Close()
	intact := base.bytes()

	batch := nextWrite(t, intact, "batch")
	step := 1
	if testing.Short() {
		step = 7
	}
	for k := 0; k < len(batch); k += step {
		m := &memFile{data: append(bytes.Clone(intact), batch[:k]...)}
		rep, err := verifyBytes(m.bytes())
		if err != nil {
			t.Fatalf("cut at %d: Verify = %v, want nil", k, err)
		}
		wantWarn := 0
		if k > 0 {
			wantWarn = 1
		}
		if len(rep.Warnings) != wantWarn {
			t.Fatalf("cut at %d: %d warnings, want %d: %+v", k, len(rep.Warnings), wantWarn, rep.Warnings)
		}
		l := memLedger(t, m, fixedOptions)
		if _, err := l.Append(ctx, "after", nil); err != nil {
			t.Fatalf("cut at %d: Append = %v, want nil", k, err)
		}
		l.Close()
		got := m.bytes()
		rep = mustVerify(t, got)
		wantRec := 0
		if k > 0 && k < len(batch)-1 {
			wantRec = 1 // a proper prefix; a record short of its newline is intact
		}
		if rep.Recovered != wantRec || !bytes.HasPrefix(got, intact) {
			t.Fatalf("cut at %d: Recovered = %d, want %d; intact prefix kept: %v", k, rep.Recovered, wantRec, bytes.HasPrefix(got, intact))
		}
	}
}

// TestRecoverCutRecovery cuts the recovery write itself at every byte: the
// writer after it must still find a torn segment and chain over it.
func TestRecoverCutRecovery(t *testing.T) {
	base := &memFile{}
	lb := memLedger(t, base, fixedOptions)
	if _, err := lb.Append(ctx, "before", nil); err != nil {
		t.Fatal(err)
	}
	lb.Close()
	first := nextWrite(t, base.bytes(), "first")
	torn := append(base.bytes(), first[:len(first)/2]...)
	// What a recovering writer adds to torn: a newline, the recovery
	// record and its own record.
	recovery := nextWrite(t, torn, "after")
	for k := 0; k < len(recovery); k++ {
		m := &memFile{data: append(bytes.Clone(torn), recovery[:k]...)}
		if _, err := verifyBytes(m.bytes()); err != nil {
			t.Fatalf("recovery cut at %d: Verify = %v, want nil", k, err)
		}
		l := memLedger(t, m, fixedOptions)
		if _, err := l.Append(ctx, "third", nil); err != nil {
			t.Fatalf("recovery cut at %d: Append = %v, want nil", k, err)
		}
		l.Close()
		rep := mustVerify(t, m.bytes())
		if rep.Recovered < 1 || !bytes.HasPrefix(m.bytes(), torn) {
			t.Fatalf("recovery cut at %d: Recovered = %d, want at least 1, with the bytes before kept", k, rep.Recovered)
		}
	}
}

// TestTornFirstWrite: a ledger whose very first write was torn starts its
// chain with the recovery record.
func TestTornFirstWrite(t *testing.T) {
	first := nextWrite(t, nil, "first")
	m := &memFile{data: bytes.Clone(first[:50])}
	l := memLedger(t, m, fixedOptions)
	rec, err := l.Append(ctx, "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	lines := splitLines(m.bytes())
	r, err := ParseLine(lines[1])
	if err != nil || r.Event != EventRecovered || r.Seq != 1 || r.Prev != string(zeroHash[:]) {
		t.Fatalf("line 2 = %+v, %v; want a recovery record with seq 1 and prev of zeros", r, err)
	}
	if rec.Seq != 2 {
		t.Fatalf("Append = seq %d, want 2", rec.Seq)
	}
	if rep := mustVerify(t, m.bytes()); rep.Recovered != 1 {
		t.Fatalf("Recovered = %d, want 1", rep.Recovered)
	}
}

// TestDamagedTailStopsAppends: damage at the end that is not a torn write
// must stop the writer, which writes nothing.
func TestDamagedTailStopsAppends(t *testing.T) {
	intact := buildLedger(t, 3)
	last := bytes.LastIndex(intact[:len(intact)-1], []byte("\n")) + 1
	flip := bytes.Clone(intact)
	flip[last+len(flip[last:])/2] ^= 0x01
	tests := []struct {
		name string
		data []byte
	}{
		{"changed byte in the last record", flip},
		{"empty line at the end", append(bytes.Clone(intact), '\n')},
		{"not a record", append(bytes.Clone(intact), "garbage\n"...)},
		{"a torn write after damage", append(bytes.Clone(flip), `{"v":1,"se`...)},
		{"a second record line glued on", append(bytes.Clone(intact[:len(intact)-1]), intact[last:]...)},
	}
	for _, tt := range tests {
		m := &memFile{data: bytes.Clone(tt.data)}
		l := memLedger(t, m, fixedOptions)
		_, err := l.Append(ctx, "x", nil)
		var ce *CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Append = %v, want a CorruptError", tt.name, err)
		}
		if !bytes.Equal(m.bytes(), tt.data) {
			t.Errorf("%s: Append changed the file", tt.name)
		}
		if _, err := verifyBytes(tt.data); err == nil {
			t.Errorf("%s: Verify = nil, want an error", tt.name)
		}
	}
}

// TestVerifyTornSegments checks how Verify judges hand-made torn segments.
func TestVerifyTornSegments(t *testing.T) {
	intact := buildLedger(t, 2)
	next := splitLines(buildLedger(t, 3))[3] // the record that would follow
	prefix := next[:len(next)/2]
	recovered := func(tornData []byte) []byte {
		m := &memFile{data: append(bytes.Clone(intact), tornData...)}
		l := memLedger(t, m, fixedOptions)
		if _, err := l.Append(ctx, "x", nil); err != nil {
			t.Fatal(err)
		}
		l.Close()
		return m.bytes()
	}
	good := recovered(prefix)
	goodLines := splitLines(good)
	tamperedFragment := bytes.Clone(good)
	// A digit of the fragment's year: still a prefix, but other bytes.
	tamperedFragment[len(intact)+len(`{"v":1,"seq":4,"time":"202`)] ^= 0x01
	tests := []struct {
		name      string
		data      []byte
		warnings  int
		recovered int
		problem   Problem
		line      int
	}{
		{"intact", intact, 0, 0, "", 0},
		{"torn at the end", append(bytes.Clone(intact), prefix...), 1, 0, "", 0},
		{"torn at the end, newline added", append(append(bytes.Clone(intact), prefix...), '\n'), 1, 0, "", 0},
		{"record without newline at the end", append(bytes.Clone(intact), next[:len(next)-1]...), 1, 0, "", 0},
		{"recovered", good, 1, 1, "", 0},
		{"fragment changed after recovery", tamperedFragment, 0, 0, ProblemBadJSON, 4},
		{"recovery record removed", bytes.Join(append(goodLines[:4:4], goodLines[5:]...), nil), 0, 0, ProblemBadJSON, 4},
		{"recovery record without torn write", bytes.Join(append(goodLines[:3:3], goodLines[4:]...), nil), 0, 0, ProblemBadRecovery, 4},
		{"fragment followed by a record", append(append(append(bytes.Clone(intact), prefix...), '\n'), next...), 0, 0, ProblemBadJSON, 4},
		{"empty line", append(bytes.Clone(intact), '\n'), 0, 0, ProblemBadJSON, 4},
		{"line too long", append(bytes.Clone(intact), bytes.Repeat([]byte("x"), MaxLineSize+10)...), 0, 0, ProblemTooLong, 4},
		{"format version 2", append(bytes.Clone(intact), bytes.Replace(next, []byte(`"v":1`), []byte(`"v":2`), 1)...), 0, 0, ProblemBadJSON, 4},
	}
	for _, tt := range tests {
		rep, err := verifyBytes(tt.data)
		if tt.problem != "" {
			wantProblem(t, tt.name, err, tt.line, tt.problem)
			continue
		}
		if err != nil || len(rep.Warnings) != tt.warnings || rep.Recovered != tt.recovered {
			t.Errorf("%s: Verify = %d warnings, %d recovered, %v; want %d, %d, nil",
				tt.name, len(rep.Warnings), rep.Recovered, err, tt.warnings, tt.recovered)
		}
	}
}
