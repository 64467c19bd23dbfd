//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"
)

// Targets (issue 9), as ratios to the same traffic spoken directly.
const (
	targetPipelined = 0.6 // calls/s with 16 in flight, ≥ this × direct
	targetBigTime   = 1.5 // a 10 MB tool result, ≤ this × direct time
	targetFlood     = 0.7 // notifications/s, ≥ this × direct
)

// pipelined makes n calls to echo with k of them in flight at a time, as a
// client with concurrent tool calls does, and returns the calls per second.
// Answers may come in any order; each must be the echo.
func pipelined(s *session, n, k int) (float64, error) {
	sent, got := 0, 0
	t0 := time.Now()
	for ; sent < min(k, n); sent++ {
		if err := s.send("tools/call", `{"name":"echo","arguments":{"message":"bench"}}`); err != nil {
			return 0, err
		}
	}
	for got < n {
		line, err := s.r.ReadSlice('\n')
		if err != nil {
			return 0, s.errorf("read answers: %w", err)
		}
		if !bytes.Contains(line, []byte(`"id":`)) || bytes.HasPrefix(line, []byte(floodPrefix)) {
			continue
		}
		if !bytes.Contains(line, []byte(`Echo: bench`)) {
			return 0, s.errorf("a pipelined echo answered %q", truncate(line))
		}
		got++
		if sent < n {
			if err := s.send("tools/call", `{"name":"echo","arguments":{"message":"bench"}}`); err != nil {
				return 0, err
			}
			sent++
		}
	}
	return float64(n) / time.Since(t0).Seconds(), nil
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// throughput times pipelined echo calls to the real server, directly and
// behind vm-run with its ledger on disk, interleaved, for 1 and 16 calls in
// flight.
func throughput(c *config) error {
	fmt.Printf("== pipelined tools/call %q: %d calls, medians of %d interleaved runs\n", "echo", c.pipelineCalls, c.repeats)
	direct, err := start("direct", c.server)
	if err != nil {
		return err
	}
	defer direct.kill()
	proxied, err := start("vm-run", c.vmRun(filepath.Join(c.ledgers, "pipelined.jsonl"), false, c.server))
	if err != nil {
		return err
	}
	defer proxied.kill()
	ss := []*session{direct, proxied}
	for _, s := range ss { // warm up
		if _, err := pipelined(s, 500, 16); err != nil {
			return err
		}
	}
	fmt.Printf("%-10s %-8s %12s %9s\n", "in flight", "path", "calls/s", "x direct")
	for _, k := range []int{1, 16} {
		rates := [2][]float64{}
		for r := range c.repeats {
			for j := range ss {
				i := (r + j) % 2
				rate, err := pipelined(ss[i], c.pipelineCalls, k)
				if err != nil {
					return err
				}
				rates[i] = append(rates[i], rate)
			}
		}
		base := median(rates[0])
		for i, name := range []string{"direct", "vm-run"} {
			fmt.Printf("%-10d %-8s %12.0f %9.2f\n", k, name, median(rates[i]), median(rates[i])/base)
		}
		if k == 16 {
			ratio := median(rates[1]) / base
			fmt.Printf("target: 16 in flight >= %.1fx direct: %s (%.2fx)\n", targetPipelined, passMiss(ratio >= targetPipelined), ratio)
		}
	}
	return errors.Join(direct.close(), proxied.close())
}

// bigResults times tool results of 10, 20 and 50 MB from the fake server,
// directly and behind vm-run, and the vm-run parent's peak memory after
// each size (the sizes in increasing order, so each peak is that size's).
func bigResults(c *config) error {
	fmt.Printf("== large tool results from the fake server: medians of %d interleaved runs\n", c.repeats)
	server := []string{c.fake, "fake-server"}
	direct, err := start("fake direct", server)
	if err != nil {
		return err
	}
	defer direct.kill()
	proxied, err := start("fake behind vm-run", c.vmRun(filepath.Join(c.ledgers, "big.jsonl"), false, server))
	if err != nil {
		return err
	}
	defer proxied.kill()
	ss := []*session{direct, proxied}
	fmt.Printf("%-8s %10s %10s %9s %12s %-10s\n", "size MB", "direct ms", "vm-run ms", "x direct", "vm-run HWM", "HWM target")
	for _, size := range []int{10e6, 20e6, 50e6} {
		times := [2][]time.Duration{}
		for r := range c.repeats {
			for j := range ss {
				i := (r + j) % 2
				t0 := time.Now()
				text, err := callWithin(ss[i], "big", `{"size":`+strconv.Itoa(size)+`}`, time.Minute)
				d := time.Since(t0)
				if err != nil {
					return err
				}
				if len(text) != size {
					return fmt.Errorf("%s: big %d answered %d bytes", ss[i].name, size, len(text))
				}
				times[i] = append(times[i], d)
			}
		}
		m, err := readMemory(proxied.pid())
		if err != nil {
			return err
		}
		dd, pd := medianDuration(times[0]), medianDuration(times[1])
		limit := int64(2*size) + 20e6
		fmt.Printf("%-8d %10s %10s %9.2f %12s %-10s\n", size/1e6, ms(dd), ms(pd), pd.Seconds()/dd.Seconds(), mb(m.hwm),
			fmt.Sprintf("%s (<= %s)", passMiss(m.hwm <= limit), mb(limit)))
		if size == 10e6 {
			ratio := pd.Seconds() / dd.Seconds()
			fmt.Printf("target: 10 MB result <= %.1fx direct time: %s (%.2fx)\n", targetBigTime, passMiss(ratio <= targetBigTime), ratio)
		}
	}
	return errors.Join(direct.close(), proxied.close())
}

func medianDuration(d []time.Duration) time.Duration {
	x := make([]float64, len(d))
	for i, v := range d {
		x[i] = float64(v)
	}
	return time.Duration(median(x))
}

// callWithin is callTool with a deadline: a proxy that drops an answer it
// thinks too large leaves the client waiting for ever.
func callWithin(s *session, name, args string, limit time.Duration) (string, error) {
	type answer struct {
		text string
		err  error
	}
	c := make(chan answer, 1)
	go func() {
		text, err := s.callTool(name, args, nil)
		c <- answer{text, err}
	}()
	select {
	case a := <-c:
		return a.text, a.err
	case <-time.After(limit):
		s.kill()
		return "", fmt.Errorf("%s: %s %s: no answer within %v", s.name, name, args, limit)
	}
}
