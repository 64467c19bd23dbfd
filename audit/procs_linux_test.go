package audit

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Writer processes are the test binary re-executed with helperEnv set;
// they are real processes, so they contend for the file lock and can be
// killed like vm-run.
const (
	envLedger  = "VMRUN_AUDIT_TEST_LEDGER"
	envCount   = "VMRUN_AUDIT_TEST_COUNT"   // appends per process; 0: until killed
	envWorkers = "VMRUN_AUDIT_TEST_WORKERS" // concurrent appenders
	envPayload = "VMRUN_AUDIT_TEST_PAYLOAD" // "small" or "mixed"
)

func runHelper(mode string) int {
	switch mode {
	case "writer":
		return helperWriter()
	case "enospc":
		return enospcChild()
	}
	fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
	return 2
}

// helperWriter appends records and prints "seq hash" for each as soon as
// Append acknowledges it.
func helperWriter() int {
	count, _ := strconv.Atoi(os.Getenv(envCount))
	workers, _ := strconv.Atoi(os.Getenv(envWorkers))
	mixed := os.Getenv(envPayload) == "mixed"
	l, err := Open(os.Getenv(envLedger), Options{Profile: "test", RedactLimit: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	failed := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(w)))
			for i := 0; count == 0 || i < count/workers+boolInt(w < count%workers); i++ {
				payload := 64
				if mixed {
					// Large records make long writes for kills to land in.
					switch r := rng.IntN(10); {
					case r < 3:
						payload = 4 << 10
					case r == 9:
						payload = 128 << 10
					}
				}
				rec, err := l.Log(context.Background(), Decision{Tool: "t", Verdict: VerdictAllow,
					Args: map[string]any{"worker": w, "i": i, "pad": strings.Repeat("x", payload)}})
				if err != nil {
					failed <- err
					return
				}
				out.Lock()
				// One write per line: a kill between lines loses no half line.
				os.Stdout.WriteString(fmt.Sprintf("%d %s\n", rec.Seq, rec.Hash))
				out.Unlock()
			}
		})
	}
	wg.Wait()
	close(failed)
	for err := range failed {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := l.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// startWriter starts a writer process and returns it with its ack stream.
func startWriter(t *testing.T, ledger string, count, workers int, payload string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=writer", envLedger+"="+ledger,
		envCount+"="+strconv.Itoa(count), envWorkers+"="+strconv.Itoa(workers), envPayload+"="+payload)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewReader(stdout)
}

// TestManyProcesses runs four writer processes of 1,000 appends each, 8
// goroutines apiece, on one ledger: the chain must be one line of history
// holding exactly every acknowledged record.
func TestManyProcesses(t *testing.T) {
	const procs, each = 4, 1000
	ledger := t.TempDir() + "/ledger.jsonl"
	var mu sync.Mutex
	var acked []ack
	var wg sync.WaitGroup
	for range procs {
		cmd, acks := startWriter(t, ledger, each, 8, "small")
		wg.Go(func() {
			err := readAcks(acks, func(a ack) {
				mu.Lock()
				acked = append(acked, a)
				mu.Unlock()
			})
			if err != nil {
				t.Error(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("writer process: %v", err)
			}
		})
	}
	wg.Wait()
	b, err := os.ReadFile(ledger)
	if err != nil {
		t.Fatal(err)
	}
	rep := mustVerify(t, b)
	if want := 1 + procs*each; rep.Records != want || len(rep.Warnings) != 0 {
		t.Fatalf("Verify = %d records, %d warnings; want %d records (genesis + %d×%d), 0 warnings",
			rep.Records, len(rep.Warnings), want, procs, each)
	}
	if len(acked) != procs*each {
		t.Fatalf("%d appends acknowledged, want %d", len(acked), procs*each)
	}
	checkAcked(t, b, acked)
	sessions := map[string]int{}
	for _, line := range splitLines(b)[1:] {
		r, err := ParseLine(line)
		if err != nil {
			t.Fatal(err)
		}
		sessions[r.Session]++
	}
	if len(sessions) != procs {
		t.Fatalf("records from %d sessions, want %d", len(sessions), procs)
	}
	for s, n := range sessions {
		if n != each {
			t.Errorf("session %s has %d records, want %d", s, n, each)
		}
	}
}

// TestKillWriters kills writer processes with SIGKILL at random moments,
// 50 times, two at a time on one ledger, with records up to 128 KiB so that
// some kills land inside writes (most land in encoding or fdatasync; the
// torn writes a kill can leave are tested byte by byte in
// TestRecoverEveryCut and TestRecoverCutRecovery). Every acknowledged record must survive and the
// ledger must verify, torn writes being warnings.
func TestKillWriters(t *testing.T) {
	rounds := 50
	if testing.Short() {
		rounds = 10
	}
	ledger := t.TempDir() + "/ledger.jsonl"
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	var acked []ack
	for round := range rounds {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 2 {
			killAfter := rng.IntN(30)
			delay := time.Duration(rng.IntN(1000)) * time.Microsecond
			cmd, acks := startWriter(t, ledger, 0, 4, "mixed")
			wg.Go(func() {
				n := 0
				kill := func() {
					time.Sleep(delay) // a random moment, not an assertion
					cmd.Process.Signal(syscall.SIGKILL)
				}
				if killAfter == 0 {
					go kill()
				}
				err := readAcks(acks, func(a ack) {
					mu.Lock()
					acked = append(acked, a)
					mu.Unlock()
					if n++; n == killAfter {
						go kill()
					}
				})
				if err != nil {
					t.Error(err)
				}
				err = cmd.Wait()
				if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
					t.Errorf("round %d: writer exited with %v, want killed by SIGKILL", round, err)
				}
			})
		}
		wg.Wait()
		b, err := os.ReadFile(ledger)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := verifyBytes(b); err != nil {
			t.Fatalf("round %d: Verify = %v, want nil", round, err)
		}
	}
	// A last, clean writer recovers whatever the last kill tore.
	cmd, acks := startWriter(t, ledger, 1, 1, "small")
	if err := readAcks(acks, func(a ack) { acked = append(acked, a) }); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("final writer: %v", err)
	}
	b, err := os.ReadFile(ledger)
	if err != nil {
		t.Fatal(err)
	}
	rep := mustVerify(t, b)
	checkAcked(t, b, acked)
	t.Logf("%d rounds: %d records, %d acknowledged, %d torn writes recovered, %d warnings, %d bytes",
		rounds, rep.Records, len(acked), rep.Recovered, len(rep.Warnings), rep.Bytes)
}
