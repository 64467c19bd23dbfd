package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Problem names what is wrong with the first bad line of a ledger.
type Problem string

const (
	// ProblemBadJSON: the line is not a record in the documented layout,
	// or is cut short without a recovery record covering it.
	ProblemBadJSON Problem = "bad JSON"
	// ProblemHashMismatch: the stored hash is not the SHA-256 of the line.
	ProblemHashMismatch Problem = "hash mismatch"
	// ProblemBrokenChain: "prev" is not the hash of the previous record.
	ProblemBrokenChain Problem = "broken chain"
	// ProblemSequenceGap: "seq" is not the previous record's plus one.
	ProblemSequenceGap Problem = "sequence gap"
	// ProblemBadRecovery: a ledger_recovered record names bytes that are
	// not a torn write.
	ProblemBadRecovery Problem = "bad recovery record"
	// ProblemTooLong: the line is longer than MaxLineSize.
	ProblemTooLong Problem = "line too long"
	// ProblemAnchor: a record named by VerifyOptions.Anchors is missing or
	// has another hash.
	ProblemAnchor Problem = "anchor mismatch"
)

// VerifyError describes the first bad line of a ledger. Line numbers count
// from 1.
type VerifyError struct {
	Line    int     `json:"line"`
	Offset  int64   `json:"offset"`
	Problem Problem `json:"problem"`
	Detail  string  `json:"detail"`
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("line %d (byte %d): %s: %s", e.Line, e.Offset, e.Problem, e.Detail)
}

// Warning is something verify found that is not tampering: a torn write,
// recovered or not yet, or a final record without its newline.
type Warning struct {
	Line   int    `json:"line"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	Msg    string `json:"message"`
}

// Report summarises a verified ledger, or the part before the first bad
// line.
type Report struct {
	Lines     int       `json:"lines"`     // lines read, torn ones included
	Records   int       `json:"records"`   // intact records
	Bytes     int64     `json:"bytes"`     // bytes read
	Recovered int       `json:"recovered"` // torn segments covered by a ledger_recovered record
	HeadSeq   uint64    `json:"head_seq"`
	HeadHash  string    `json:"head_hash"` // hash of the last intact record; "" if none
	Warnings  []Warning `json:"warnings"`
}

// Anchor is a record known from outside the ledger, such as the head that
// an earlier verify printed. A hash chain alone cannot show that lines were
// cut off its end; an anchor can.
type Anchor struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// VerifyOptions tune VerifyWith.
type VerifyOptions struct {
	Anchors []Anchor
}

// Verify reads a whole ledger and checks every line: its layout, its hash,
// its link to the previous record and its sequence number. It returns a
// *VerifyError for the first bad line and any other error when r fails.
// Torn writes are warnings, not errors: a segment of lines that are each a
// proper prefix of a record, either at the end of the file or followed by
// a ledger_recovered record that names exactly its bytes and chains from
// the record before it.
func Verify(r io.Reader) (Report, error) {
	return VerifyWith(r, VerifyOptions{})
}

// VerifyWith is Verify that also checks the anchors in o.
func VerifyWith(r io.Reader, o VerifyOptions) (Report, error) {
	v := verifier{last: zeroHash, anchors: map[uint64]string{}, region: -1}
	for _, a := range o.Anchors {
		v.anchors[a.Seq] = a.Hash
	}
	rep, err := v.run(r)
	if rep.Records > 0 {
		rep.HeadHash = string(v.last[:])
	}
	return rep, err
}

func (v *verifier) run(r io.Reader) (Report, error) {
	p := newPipeline(r)
	defer p.stop()
	for {
		c, err := p.next()
		if err != nil {
			return v.rep, err
		}
		if c == nil {
			break
		}
		if c.tooLong {
			return v.rep, v.tooLong()
		}
		for i := range c.lines {
			s := &c.lines[i]
			if err := v.line(c.buf[s.start:s.end], s); err != nil {
				return v.rep, err
			}
		}
		p.recycle(c)
	}
	if v.region >= 0 {
		n := v.regionEnd - v.region
		v.warn(v.regionLine, v.region, n,
			fmt.Sprintf("torn write: %d bytes from byte %d, in %d line(s), not yet recovered; the next append records a %s",
				n, v.region, v.regionLines, EventRecovered))
	}
	for seq, h := range v.anchors {
		if seq > v.rep.HeadSeq {
			return v.rep, &VerifyError{Line: v.rep.Lines, Offset: v.rep.Bytes, Problem: ProblemAnchor,
				Detail: fmt.Sprintf("record %d (hash %.16s…) is missing: the ledger ends at record %d, so lines were cut off its end", seq, h, v.rep.HeadSeq)}
		}
	}
	return v.rep, nil
}

type verifier struct {
	rep     Report
	last    [hexLen]byte // hash of the last intact record
	seq     uint64       // its sequence number
	anchors map[uint64]string

	// The pending torn segment: offset of its first byte (-1: none), its
	// first line, how many lines, and a running SHA-256 of its bytes.
	region      int64
	regionEnd   int64 // offset after its last byte, newline excluded
	regionLine  int
	regionLines int
	regionSum   hash.Hash
	regionErr   *VerifyError
}

// tooLong reports the line after the last one read as too long.
func (v *verifier) tooLong() error {
	if v.region >= 0 {
		return v.regionErr
	}
	return &VerifyError{Line: v.rep.Lines + 1, Offset: v.rep.Bytes, Problem: ProblemTooLong,
		Detail: fmt.Sprintf("longer than %d bytes", MaxLineSize)}
}

func (v *verifier) warn(line int, off, n int64, msg string) {
	v.rep.Warnings = append(v.rep.Warnings, Warning{Line: line, Offset: off, Length: n, Msg: msg})
}

// line checks one line, as scanned by a worker.
func (v *verifier) line(line []byte, s *scanned) error {
	off := v.rep.Bytes
	if len(line) > MaxLineSize {
		return v.tooLong()
	}
	v.rep.Lines++
	v.rep.Bytes += int64(len(line))
	if s.terminated {
		v.rep.Bytes++
	}
	n := v.rep.Lines
	fr, ferr := &s.fr, s.err
	switch {
	case s.hashOK:
		return v.record(n, off, fr, s.terminated)
	case v.region >= 0 && (ferr == nil || len(line) == 0 || !errors.Is(ferr, errTruncated)):
		return v.regionErr
	case ferr == nil:
		sum := sha256.Sum256(fr.body)
		return &VerifyError{Line: n, Offset: off, Problem: ProblemHashMismatch,
			Detail: fmt.Sprintf("stored hash %.16s…, SHA-256 of the line is %.16s…", fr.hash, hex.EncodeToString(sum[:]))}
	case len(line) == 0:
		return &VerifyError{Line: n, Offset: off, Problem: ProblemBadJSON, Detail: "empty line"}
	case !errors.Is(ferr, errTruncated):
		return &VerifyError{Line: n, Offset: off, Problem: ProblemBadJSON, Detail: ferr.Error()}
	}
	// A proper prefix of a record: part of a torn write, unless what
	// follows says otherwise.
	if v.region < 0 {
		v.region, v.regionLine, v.regionLines = off, n, 0
		if v.regionSum == nil {
			v.regionSum = sha256.New()
		}
		v.regionSum.Reset()
		v.regionErr = &VerifyError{Line: n, Offset: off, Problem: ProblemBadJSON,
			Detail: "line is cut short, and no " + EventRecovered + " record follows it"}
	} else {
		v.regionSum.Write([]byte{'\n'})
	}
	v.regionLines++
	v.regionSum.Write(line)
	v.regionEnd = off + int64(len(line))
	return nil
}

// record checks an intact line: its place in the chain and, for a recovery
// record, the torn segment it names.
func (v *verifier) record(n int, off int64, fr *frame, terminated bool) error {
	if string(fr.event) == EventRecovered {
		if err := v.recovery(n, off, fr); err != nil {
			return err
		}
	} else if v.region >= 0 {
		return v.regionErr
	}
	if string(fr.prev) != string(v.last[:]) {
		return &VerifyError{Line: n, Offset: off, Problem: ProblemBrokenChain,
			Detail: fmt.Sprintf("prev is %.16s…, but the previous record's hash is %.16s…", fr.prev, v.last[:])}
	}
	if fr.seq != v.seq+1 {
		return &VerifyError{Line: n, Offset: off, Problem: ProblemSequenceGap,
			Detail: fmt.Sprintf("seq is %d, want %d", fr.seq, v.seq+1)}
	}
	if h, ok := v.anchors[fr.seq]; ok && h != string(fr.hash) {
		return &VerifyError{Line: n, Offset: off, Problem: ProblemAnchor,
			Detail: fmt.Sprintf("record %d has hash %.16s…, the anchor says %.16s…", fr.seq, fr.hash, h)}
	}
	if !terminated {
		v.warn(n, off, int64(len(fr.body)+hashTail),
			"the final record has no newline (its writer was interrupted; the next append adds it)")
	}
	v.seq = fr.seq
	copy(v.last[:], fr.hash)
	v.rep.Records++
	v.rep.HeadSeq = fr.seq
	return nil
}

// recovery checks a ledger_recovered record on line n against the pending
// torn segment, which must end with the newline just before it.
func (v *verifier) recovery(n int, off int64, fr *frame) error {
	var rec Recovered
	if err := json.Unmarshal(fr.data, &rec); err != nil {
		return &VerifyError{Line: n, Offset: off, Problem: ProblemBadRecovery, Detail: "decode data: " + err.Error()}
	}
	if v.region < 0 {
		return &VerifyError{Line: n, Offset: off, Problem: ProblemBadRecovery,
			Detail: fmt.Sprintf("names %d bytes from byte %d, but no torn write precedes it", rec.TornLength, rec.TornOffset)}
	}
	length := off - 1 - v.region
	sum := hex.EncodeToString(v.regionSum.Sum(nil))
	if rec.TornOffset != v.region || rec.TornLength != length || rec.TornSHA256 != sum {
		e := *v.regionErr
		e.Detail = fmt.Sprintf("line is cut short, and the %s record on line %d names other bytes (%d from byte %d, sha256 %.16s…; found %d from byte %d, sha256 %.16s…)",
			EventRecovered, n, rec.TornLength, rec.TornOffset, rec.TornSHA256, length, v.region, sum)
		return &e
	}
	v.warn(v.regionLine, v.region, length,
		fmt.Sprintf("torn write: %d bytes from byte %d, in %d line(s), recovered by line %d", length, v.region, v.regionLines, n))
	v.rep.Recovered++
	v.region = -1
	return nil
}
