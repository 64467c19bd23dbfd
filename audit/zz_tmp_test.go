package audit

import (
	"bytes"
	"os"
	"testing"
	"testing/iotest"
)

func BenchmarkZZFuzzBody(b *testing.B) {
	data, _ := os.ReadFile("testdata/recovered.jsonl")
	for b.Loop() {
		verifyBytes(data)
		Verify(iotest.OneByteReader(bytes.NewReader(data)))
		ReadRecords(bytes.NewReader(data), func(_ int, raw []byte, r Record, err error) error { return nil })
	}
}
