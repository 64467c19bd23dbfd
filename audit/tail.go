package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// tailState is what a writer must know about the end of the file before
// appending.
type tailState struct {
	empty  bool         // no bytes at all: write the genesis record
	seq    uint64       // sequence number of the last intact record
	prev   [hexLen]byte // its hash (zeroHash if there is none)
	needNL bool         // the file does not end in a newline
	torn   *Recovered   // unfinished writes after the last intact record
}

// Tail scanning reads the file backwards in chunks, growing up to
// maxTailScan; beyond that the damage is not a torn write.
const (
	tailChunk   = 64 << 10
	maxTailScan = 8 * MaxLineSize
)

// scanTail finds the last intact record of a file of size bytes and any
// torn write after it.
func scanTail(f ledgerFile, size int64) (tailState, error) {
	if size == 0 {
		return tailState{empty: true, prev: zeroHash}, nil
	}
	n := min(size, tailChunk)
	for {
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, size-n); err != nil {
			return tailState{}, fmt.Errorf("read tail: %w", err)
		}
		t, more, err := parseTail(buf, size-n)
		if !more {
			return t, err
		}
		if n == size || n >= maxTailScan {
			return t, &CorruptError{Offset: size - n, Msg: fmt.Sprintf("no intact record in the last %d bytes", n)}
		}
		n = min(size, 4*n)
	}
}

// parseTail examines buf, the last bytes of the file from offset base on.
// It walks lines from the end: proper prefixes of a record (what a torn
// write leaves, possibly ended by the newline of a writer that crashed
// while recovering) are skipped, the first intact record ends the walk, and
// anything else is damage. more asks for a longer buf.
func parseTail(buf []byte, base int64) (t tailState, more bool, err error) {
	end := len(buf)
	terminated := buf[end-1] == '\n'
	tornEnd := end
	if terminated {
		tornEnd--
	}
	t.needNL = !terminated
	lineEnd := tornEnd
	region := -1
	for {
		start := bytes.LastIndexByte(buf[:lineEnd], '\n') + 1
		if start == 0 && base > 0 {
			return t, true, nil
		}
		line := buf[start:lineEnd]
		fr, ferr := parseFrame(line)
		switch {
		case ferr == nil && fr.hashOK():
			t.seq = fr.seq
			copy(t.prev[:], fr.hash)
			t.torn = tornRange(buf, base, region, tornEnd)
			return t, false, nil
		case ferr == nil:
			return t, false, &CorruptError{Offset: base + int64(start), Msg: "hash mismatch in the last record"}
		case len(line) > 0 && errors.Is(ferr, errTruncated):
			region = start
		case len(line) == 0:
			return t, false, &CorruptError{Offset: base + int64(start), Msg: "empty line"}
		default:
			return t, false, &CorruptError{Offset: base + int64(start), Msg: "not a record: " + ferr.Error()}
		}
		if start == 0 {
			// Nothing intact at all: the first write was torn.
			t.prev = zeroHash
			t.torn = tornRange(buf, base, region, tornEnd)
			return t, false, nil
		}
		lineEnd = start - 1
	}
}

func tornRange(buf []byte, base int64, start, end int) *Recovered {
	if start < 0 {
		return nil
	}
	sum := sha256.Sum256(buf[start:end])
	return &Recovered{
		TornOffset: base + int64(start),
		TornLength: int64(end - start),
		TornSHA256: hex.EncodeToString(sum[:]),
	}
}
