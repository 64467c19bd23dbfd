package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"
)

// seedLedgers adds every testdata ledger to f, whole or line by line.
func seedLedgers(f *testing.F, lines bool) {
	f.Helper()
	files, err := filepath.Glob("testdata/*.jsonl")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds in testdata: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		if !lines {
			f.Add(b)
			continue
		}
		for _, l := range splitLines(b) {
			f.Add(bytes.TrimSuffix(l, []byte("\n")))
		}
	}
}

// FuzzParseLine: whatever ParseLine accepts, the writer can write again,
// and that line parses to the same record.
func FuzzParseLine(f *testing.F) {
	seedLedgers(f, true)
	f.Fuzz(func(t *testing.T, line []byte) {
		fr, ferr := parseFrame(line)
		rec, err := ParseLine(line)
		if ferr != nil {
			if err == nil {
				t.Fatalf("parseFrame = %v but ParseLine = nil", ferr)
			}
			return
		}
		if err != nil || !validEventName(rec.Event) || rec.Seq != fr.seq {
			return // e.g. a time the layout allows but the calendar does not
		}
		h, err := newHeader(rec.Host, rec.Session, rec.Profile, rec.ProfileHash, rec.PID, rec.UID)
		if err != nil {
			t.Fatal(err)
		}
		var data bytes.Buffer
		if err := json.Compact(&data, rec.Data); err != nil {
			t.Fatalf("data %q passed the scanner but not json.Compact: %v", rec.Data, err)
		}
		var prev [hexLen]byte
		copy(prev[:], rec.Prev)
		again, hash := appendLine(nil, &h, rec.Seq, rec.Time, rec.Event, data.Bytes(), &prev)
		fr2, err := parseFrame(again[:len(again)-1])
		if err != nil || !fr2.hashOK() || string(fr2.hash) != string(hash[:]) {
			t.Fatalf("re-encoded line %q: parseFrame = %v, hash ok %v", again, err, err == nil && fr2.hashOK())
		}
		rec2, err := ParseLine(again)
		if err != nil {
			t.Fatal(err)
		}
		rec.Hash, rec2.Hash, rec.Data, rec2.Data = "", "", nil, nil
		rec.Time, rec2.Time = rec.Time.Round(0).UTC(), rec2.Time.Round(0).UTC()
		if !jsonEqual(rec, rec2) {
			t.Fatalf("round trip changed the record:\n%+v\n%+v", rec, rec2)
		}
	})
}

// FuzzVerify: Verify never panics, does not depend on how its input is
// split into reads, and what it accepts is a chain of seq 1..HeadSeq.
func FuzzVerify(f *testing.F) {
	seedLedgers(f, false)
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := verifyBytes(data)
		rep2, err2 := Verify(iotest.OneByteReader(bytes.NewReader(data)))
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) ||
			rep.Records != rep2.Records || len(rep.Warnings) != len(rep2.Warnings) {
			t.Fatalf("Verify depends on reads: %+v, %v vs %+v, %v", rep, err, rep2, err2)
		}
		if err != nil {
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify = %v, want a *VerifyError", err)
			}
			return
		}
		if uint64(rep.Records) != rep.HeadSeq {
			t.Fatalf("Verify accepted %d records ending at seq %d", rep.Records, rep.HeadSeq)
		}
		n := 0
		err = ReadRecords(bytes.NewReader(data), func(_ int, raw []byte, r Record, err error) error {
			if err == nil {
				n++
			}
			return nil
		})
		if err != nil || n < rep.Records {
			t.Fatalf("ReadRecords read %d records, %v; Verify counted %d", n, err, rep.Records)
		}
	})
}

// FuzzAppendAfter: a writer either refuses to append after data, or its
// append leaves a ledger whose first problem, if any, is one data had.
func FuzzAppendAfter(f *testing.F) {
	seedLedgers(f, false)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		before, errBefore := verifyBytes(data)
		m := &memFile{data: bytes.Clone(data)}
		l, err := newLedger("mem", fixedOptions, m)
		if err != nil {
			t.Fatal(err)
		}
		l.now = func() time.Time { return time.Unix(0, 0) }
		_, err = l.Append(ctx, "x", nil)
		l.Close()
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || !bytes.Equal(m.bytes(), data) {
				t.Fatalf("Append = %v and changed the file; want a CorruptError and no change", err)
			}
			return
		}
		after, errAfter := verifyBytes(m.bytes())
		switch {
		case errBefore == nil && errAfter != nil:
			t.Fatalf("Append broke a ledger that verified: %v", errAfter)
		case errBefore != nil && (errAfter == nil || errAfter.Error() != errBefore.Error()):
			t.Fatalf("Verify before = %v, after Append = %v; want the same problem", errBefore, errAfter)
		case errBefore == nil && after.Records < before.Records+1:
			t.Fatalf("Append: %d records before, %d after", before.Records, after.Records)
		}
	})
}

// FuzzValidJSON checks the scanner against encoding/json, which accepts
// invalid UTF-8 in strings where the scanner does not.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{}`, `[1,"a",{"b":null}]`, `-1.5e+10`, `"\u00e9\n"`, `{"a":[true,false]}`, `01`, `[1,]`} {
		f.Add([]byte(s))
	}
	seedLedgers(f, true)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, want := validJSON(b), json.Valid(b)
		if !utf8.Valid(b) {
			want = false
		}
		if got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid = %v", b, got, want)
		}
	})
}

// FuzzRedactSkip: when mayRedact lets Append skip redaction, redaction would
// indeed have changed nothing.
func FuzzRedactSkip(f *testing.F) {
	for _, s := range []string{`{"path":"a"}`, `{"Api-Key":"x"}`, `{"a":{"tok\u0065n":"x"}}`, `{"K":"\u212aey"}`, `{"s":"` + string(bytes.Repeat([]byte("x"), 50)) + `"}`} {
		f.Add([]byte(s), 16)
	}
	m := newKeyMatcher(DefaultRedactKeys)
	f.Fuzz(func(t *testing.T, data []byte, limit int) {
		if !json.Valid(data) || mayRedact(data, m, limit) {
			return
		}
		red, err := redactJSON(data, m.norm, limit)
		if err != nil {
			t.Fatal(err)
		}
		decode := func(b []byte) (v any) {
			d := json.NewDecoder(bytes.NewReader(b))
			d.UseNumber()
			if err := d.Decode(&v); err != nil {
				t.Fatalf("decode %q: %v", b, err)
			}
			return v
		}
		if !jsonEqual(decode(data), decode(red)) {
			t.Fatalf("mayRedact(%s) = false, but redaction gives %s", data, red)
		}
	})
}
