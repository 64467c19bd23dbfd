package audit

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// ledger1000 is a ledger of a genesis record and 1,000 decisions.
func ledger1000(t *testing.T) (b []byte, lines [][]byte, starts []int) {
	t.Helper()
	b = buildLedger(t, 1000)
	lines = splitLines(b)
	off := 0
	for _, l := range lines {
		starts = append(starts, off)
		off += len(l)
	}
	return b, lines, starts
}

// lineOf returns the 1-based line holding byte i.
func lineOf(starts []int, i int) int {
	n, found := slices.BinarySearch(starts, i)
	if found {
		return n + 1
	}
	return n
}

// TestVerifyCatchesFlips changes single bytes across a 1,000-event ledger:
// every byte of the first, middle and last lines to several values, and
// random bytes everywhere else. Verify must report the line of the change.
func TestVerifyCatchesFlips(t *testing.T) {
	orig, lines, starts := ledger1000(t)
	rep := mustVerify(t, orig)
	if rep.Records != 1001 || len(rep.Warnings) != 0 {
		t.Fatalf("Verify = %+v, want 1001 records and no warnings", rep)
	}
	var positions []int
	for _, ln := range []int{1, 501, 1001} {
		for i := range lines[ln-1] {
			positions = append(positions, starts[ln-1]+i)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	random := 2000
	if testing.Short() {
		random = 200
	}
	for range random {
		positions = append(positions, rng.IntN(len(orig)))
	}
	// Workers each change their own copy; Verify reads it.
	workers := runtime.GOMAXPROCS(0)
	var checked atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			b := bytes.Clone(orig)
			rng := rand.New(rand.NewPCG(3, uint64(w)))
			for p := w; p < len(positions); p += workers {
				i := positions[p]
				o := orig[i]
				for _, c := range []byte{o ^ 0x01, o ^ 0x80, '\n', byte(rng.IntN(256))} {
					if c == o {
						continue
					}
					b[i] = c
					_, err := verifyBytes(b)
					var ve *VerifyError
					if !errors.As(err, &ve) || ve.Line != lineOf(starts, i) {
						t.Errorf("byte %d (line %d) %q→%q: Verify = %v, want an error on line %d",
							i, lineOf(starts, i), o, c, err, lineOf(starts, i))
						return
					}
					checked.Add(1)
				}
				b[i] = o
			}
		})
	}
	wg.Wait()
	t.Logf("%d single-byte changes caught", checked.Load())
}

// TestVerifyCatchesLineEdits deletes, duplicates, swaps, moves and inserts
// whole lines of a 1,000-event ledger.
func TestVerifyCatchesLineEdits(t *testing.T) {
	orig, lines, _ := ledger1000(t)
	m := &memFile{}
	o := fixedOptions
	o.SessionID = "another-session"
	l := memLedger(t, m, o)
	if _, err := l.Log(context.Background(), Decision{Tool: "x", Verdict: VerdictAllow}); err != nil {
		t.Fatal(err)
	}
	other := splitLines(m.bytes())
	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }
	n := len(lines)
	// Every line near either end, every tenth in between.
	for k := 1; k <= n; k++ {
		if k > 20 && k < n-20 && k%10 != 0 {
			continue
		}
		i := k - 1
		rest := slices.Clone(lines)
		del := join(slices.Delete(slices.Clone(rest), i, i+1)...)
		if k < n {
			_, err := verifyBytes(del)
			wantProblem(t, "delete line "+strconv.Itoa(k), err, k, ProblemBrokenChain)
		}
		dup := join(slices.Insert(slices.Clone(rest), i, lines[i])...)
		_, err := verifyBytes(dup)
		wantProblem(t, "duplicate line "+strconv.Itoa(k), err, k+1, ProblemBrokenChain)
		if k < n {
			sw := slices.Clone(rest)
			sw[i], sw[i+1] = sw[i+1], sw[i]
			_, err = verifyBytes(join(sw...))
			wantProblem(t, "swap lines "+strconv.Itoa(k)+","+strconv.Itoa(k+1), err, k, ProblemBrokenChain)
			mv := append(slices.Delete(slices.Clone(rest), i, i+1), lines[i])
			_, err = verifyBytes(join(mv...))
			wantProblem(t, "move line "+strconv.Itoa(k)+" to the end", err, k, ProblemBrokenChain)
		}
		ins := join(slices.Insert(slices.Clone(rest), i, other[1])...)
		_, err = verifyBytes(ins)
		wantProblem(t, "insert a foreign line before line "+strconv.Itoa(k), err, k, ProblemBrokenChain)
	}

	// A hash chain cannot show that its end was cut off; an anchor can.
	cut := join(lines[:n-1]...)
	if _, err := verifyBytes(cut); err != nil {
		t.Fatalf("Verify(last line deleted) = %v; a chain alone cannot see that", err)
	}
	head := hashesBySeq(orig)[uint64(n)]
	_, err := VerifyWith(bytes.NewReader(cut), VerifyOptions{Anchors: []Anchor{{Seq: uint64(n), Hash: head}}})
	wantProblem(t, "delete the last line, with an anchor", err, 0, ProblemAnchor)
	if _, err := VerifyWith(bytes.NewReader(orig), VerifyOptions{Anchors: []Anchor{{Seq: uint64(n), Hash: head}}}); err != nil {
		t.Fatalf("VerifyWith(intact, anchor at head) = %v, want nil", err)
	}
	_, err = VerifyWith(bytes.NewReader(orig), VerifyOptions{Anchors: []Anchor{{Seq: 7, Hash: head}}})
	wantProblem(t, "anchor with the wrong hash", err, 7, ProblemAnchor)
}

// TestVerifyChunking runs Verify with chunks smaller than a line and with
// every chunk sent to the workers: reports must not change.
func TestVerifyChunking(t *testing.T) {
	b := buildLedger(t, 300)
	lines := splitLines(b)
	inputs := [][]byte{
		b,
		append(bytes.Clone(b), lines[5][:100]...),
		bytes.Join(append(slices.Clone(lines[:100]), lines[101:]...), nil),
	}
	for _, i := range []int{0, 1, 1000, len(b) / 2, len(b) - 2} {
		f := bytes.Clone(b)
		f[i] ^= 0x01
		inputs = append(inputs, f)
	}
	type result struct {
		rep Report
		err string
	}
	run := func() []result {
		var out []result
		for _, in := range inputs {
			rep, err := verifyBytes(in)
			r := result{rep: rep}
			if err != nil {
				r.err = err.Error()
			}
			out = append(out, r)
		}
		return out
	}
	want := run()
	defer func(c, i int) { chunkSize, inlineBytes = c, i }(chunkSize, inlineBytes)
	for _, size := range []int{100, 700, 4096} {
		chunkSize, inlineBytes = size, 0
		got := run()
		for k := range want {
			if !reflect.DeepEqual(got[k], want[k]) {
				t.Errorf("chunk size %d, input %d: Verify = %+v, want %+v", size, k, got[k], want[k])
			}
		}
	}
}
