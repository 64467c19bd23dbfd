//go:build linux

package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The scrubbing variant: the same echo calls through vm-run with the
// ledger on the same disk, under a profile (-secrets) that hands the
// server one secret, so that every message the server sends goes through
// the proxy's scrubber (package proxy/secrets). Echo answers never hold
// the secret: this is the cost every message pays, the case the scrubber
// is built to make cheap. The figure is a ratio against the variant
// without a secret, measured in the same interleaved blocks.

// benchSecretVar is the variable the -secrets profile reads its secret
// from; benchproxy sets it to a fresh random value, which vm-run inherits.
const benchSecretVar = "VMRUN_BENCH_SECRET"

// scrubVariant returns the scrubbing variant, or nil without -secrets.
func scrubVariant(c *config, fs string) *variant {
	if c.secrets == "" {
		return nil
	}
	b := make([]byte, 16)
	rand.Read(b)
	os.Setenv(benchSecretVar, "bench-"+hex.EncodeToString(b))
	sc := *c
	sc.profile = c.secrets
	return &variant{name: "vm-run, scrubbing, " + fs,
		argv: sc.vmRun(filepath.Join(c.ledgers, "scrub.jsonl"), false, c.server), vmrun: true}
}

// printScrubbing prints what scrubbing adds to the echo calls of base.
func printScrubbing(base, scrub *variant) {
	if scrub == nil {
		return
	}
	b50, s50 := percentile(base.lat, 50), percentile(scrub.lat, 50)
	b99, s99 := percentile(base.lat, 99), percentile(scrub.lat, 99)
	fmt.Printf("scrubbing (one secret, echo calls, answers without it): p50 %s ms vs %s ms without, ratio %.3f (%+.3f ms); p99 ratio %.3f; mean ratio %.3f\n",
		ms(s50), ms(b50), ratio(s50, b50), (s50-b50).Seconds()*1e3, ratio(s99, b99), ratio(mean(scrub.lat), mean(base.lat)))
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}
