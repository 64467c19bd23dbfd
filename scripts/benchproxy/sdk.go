//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// sdkRun is one run of sdk/client.mjs, the official TypeScript SDK client:
// what a client built on it, as Claude Code and many others are, sees.
type sdkRun struct {
	Calls         int     `json:"calls"`
	Notifications int     `json:"notifications"`
	Bytes         int     `json:"bytes"`
	Seconds       float64 `json:"seconds"`
}

// sdkOnce runs the SDK client once against server.
func sdkOnce(c *config, mode string, args []string, server []string) (sdkRun, error) {
	argv := append([]string{c.sdkClient, c.sdkDir, mode}, args...)
	argv = append(append(argv, "--"), server...)
	cmd := exec.Command("node", argv...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return sdkRun{}, fmt.Errorf("sdk client %s %v: %w\n%s", mode, args, err, lastLines(stderr.String(), 10))
	}
	var r sdkRun
	if err := json.Unmarshal(out, &r); err != nil || r.Seconds <= 0 {
		return sdkRun{}, fmt.Errorf("sdk client %s %v printed %q: %v", mode, args, out, err)
	}
	return r, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// sdkTraffic measures the traffic of the table with the official
// TypeScript SDK client, directly and behind vm-run, interleaved: the
// figures a user of such a client gets. Each run starts its own server.
func sdkTraffic(c *config) error {
	if c.sdkDir == "" {
		return nil
	}
	if _, err := os.Stat(filepath.Join(c.sdkDir, "dist", "esm", "client", "index.js")); err != nil {
		return fmt.Errorf("the TypeScript SDK is not at %s: %w", c.sdkDir, err)
	}
	fake := []string{c.fake, "fake-server"}
	type row struct {
		name, unit string
		mode       string
		args       []string
		server     []string
		rate       func(sdkRun) float64
		target     float64 // minimum x direct (rates) or maximum (times); 0: none
		isTime     bool
	}
	per := func(n func(sdkRun) int) func(sdkRun) float64 {
		return func(r sdkRun) float64 { return float64(n(r)) / r.Seconds }
	}
	rows := []row{
		{"echo, 16 in flight", "calls/s", "pipelined", []string{"2000", "16"}, c.server, per(func(r sdkRun) int { return r.Calls }), targetPipelined, false},
		{"echo, 1 in flight", "calls/s", "pipelined", []string{"1000", "1"}, c.server, per(func(r sdkRun) int { return r.Calls }), 0, false},
		{"100k notifications of 290 B", "msgs/s", "flood", []string{"100000", "290"}, fake, per(func(r sdkRun) int { return r.Notifications }), targetFlood, false},
		{"10 MB tool result", "ms", "big", []string{"10000000"}, fake, func(r sdkRun) float64 { return r.Seconds * 1e3 }, targetBigTime, true},
	}
	fmt.Printf("== the official TypeScript SDK client (%s): medians of %d interleaved runs, a server started per run\n",
		filepath.Base(filepath.Dir(filepath.Dir(c.sdkDir)))+"/sdk", c.repeats)
	fmt.Printf("%-30s %-8s %12s %12s %9s  %s\n", "traffic", "unit", "direct", "vm-run", "x direct", "target")
	var errs []error
	for _, rw := range rows {
		vals := [2][]float64{}
		var failed error
		for r := range c.repeats {
			for j := range 2 {
				i := (r + j) % 2
				server := rw.server
				if i == 1 {
					server = c.vmRun(filepath.Join(c.ledgers, "sdk.jsonl"), false, rw.server)
				}
				res, err := sdkOnce(c, rw.mode, rw.args, server)
				if err != nil {
					failed = err
					break
				}
				vals[i] = append(vals[i], rw.rate(res))
			}
			if failed != nil {
				break
			}
		}
		if failed != nil {
			fmt.Printf("%-30s %-8s failed: %v\n", rw.name, rw.unit, failed)
			errs = append(errs, failed)
			continue
		}
		d, v := median(vals[0]), median(vals[1])
		ratio := v / d
		target := "-"
		switch {
		case rw.target > 0 && rw.isTime:
			target = fmt.Sprintf("<= %.1fx: %s", rw.target, passMiss(ratio <= rw.target))
		case rw.target > 0:
			target = fmt.Sprintf(">= %.1fx: %s", rw.target, passMiss(ratio >= rw.target))
		}
		fmt.Printf("%-30s %-8s %12.0f %12.0f %9.2f  %s\n", rw.name, rw.unit, d, v, ratio, target)
	}
	return errors.Join(errs...)
}
