package sandbox_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vm-run/vm-run/sandbox"
)

// procStat returns the fields of /proc/PID/stat (proc(5)) from STATE on
// (field 3, at index 0), or nil if there is no such process, not even a
// zombie. COMM may hold spaces, so the fields are counted after its
// closing parenthesis.
func procStat(pid int) []string {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(stat), ')')
	if fields := strings.Fields(string(stat[i+1:])); len(fields) >= 20 {
		return fields
	}
	return nil
}

// procStart returns the start time of process pid (field 22), or "" if
// there is no such process. With the pid, it names one process even if the
// pid is reused.
func procStart(pid int) string {
	if f := procStat(pid); f != nil {
		return f[19]
	}
	return ""
}

// isInitStage reports whether pid runs the init stage.
func isInitStage(pid int) bool {
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && strings.HasPrefix(string(cmdline), sandbox.InitArg0+"\x00")
}

// spawn spawns an init stage for the box's ids from the test's goroutine,
// which stays locked to its thread until the test ends.
func spawn(t *testing.T, b *box, stdio sandbox.Stdio) *sandbox.Pending {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	p := sandbox.Spawn(b.uid, b.gid, stdio)
	if p.Pid() == 0 {
		_, err := p.Start(b.spec(t, "strict", "/bin/true"))
		t.Fatalf("Spawn(%d, %d) did not start an init stage: %v", b.uid, b.gid, err)
	}
	return p
}

// TestSpawnAbort: an init stage started ahead of a spec that never comes is
// killed and reaped by Abort; no process, not even a zombie, is left.
func TestSpawnAbort(t *testing.T) {
	b := newBox(t)
	p := spawn(t, b, sandbox.Stdio{})
	pid := p.Pid()
	if !isInitStage(pid) {
		t.Fatalf("process %d is not an init stage after Spawn", pid)
	}
	start := procStart(pid)
	p.Abort()
	if start != "" && procStart(pid) == start {
		t.Errorf("init stage %d still exists after Abort", pid)
	}
}

// TestSpawnWaitsForSpec: the init stage waits for its spec however long the
// parent takes to load the profile and open the ledger, then runs the
// command as Run would.
func TestSpawnWaitsForSpec(t *testing.T) {
	b := newBox(t)
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	out := readAll(outR)
	p := spawn(t, b, sandbox.Stdio{Stdout: outW})
	time.Sleep(200 * time.Millisecond)
	proc, err := p.Start(b.sh(t, "strict", "echo started late; id -u"))
	outW.Close()
	if err != nil {
		t.Fatalf("Start after a delay: %v", err)
	}
	st, err := proc.Wait()
	got := <-out
	if want := "started late\n" + strconv.Itoa(b.uid) + "\n"; err != nil || st != (sandbox.Status{}) || got != want {
		t.Errorf("late spec: %v, %v, printed %q; want exit status 0, printed %q", st, err, got, want)
	}
}

// TestSpawnOtherIDs: a spec for other ids than the init stage was spawned
// with is refused, and the init stage is not left behind.
func TestSpawnOtherIDs(t *testing.T) {
	b := newBox(t)
	p := spawn(t, b, sandbox.Stdio{})
	pid := p.Pid()
	start := procStart(pid)
	s := b.spec(t, "strict", "/bin/true")
	s.UID++
	if _, err := p.Start(s); err == nil || !strings.Contains(err.Error(), "spawned for") {
		t.Errorf("Start(spec for uid %d) on an init stage spawned for %d = %v, want an error naming both", s.UID, b.uid, err)
	}
	if start != "" && procStart(pid) == start {
		t.Errorf("init stage %d still exists after a refused spec", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// pendingParentMain is the pendingParentArg0 program: arguments UID GID.
func pendingParentMain(args []string) int {
	if len(args) != 2 {
		fmt.Fprintf(os.Stderr, "pending parent: want UID GID, got %q\n", args)
		return 2
	}
	uid, _ := strconv.Atoi(args[0])
	gid, _ := strconv.Atoi(args[1])
	runtime.LockOSThread()
	p := sandbox.Spawn(uid, gid, sandbox.Stdio{})
	if p.Pid() == 0 {
		_, err := p.Start(&sandbox.Spec{UID: uid, GID: gid})
		fmt.Fprintf(os.Stderr, "pending parent: spawn: %v\n", err)
		return 2
	}
	fmt.Println(p.Pid())
	select {}
}

// TestParentDeathPending kills a vm-run parent while its init stage waits
// for the spec: the init stage must die with it.
func TestParentDeathPending(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	parent := &exec.Cmd{Path: exe, Args: []string{pendingParentArg0, strconv.Itoa(b.uid), strconv.Itoa(b.gid)}, Stderr: &stderr}
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		parent.Process.Kill()
		parent.Wait()
		t.Fatalf("the parent printed %q, want the init stage's pid; stderr: %s", line, stderr.String())
	}
	start := procStart(pid)
	if !isInitStage(pid) || start == "" {
		t.Fatalf("process %d is not a running init stage", pid)
	}
	if err := parent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	parent.Wait()
	deadline := time.Now().Add(pollBound)
	for procAlive(pid, start) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("init stage %d outlived its parent by %v", pid, pollBound)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// procAlive reports whether the process pid that started at start still
// runs: it exists and is not a zombie waiting to be reaped by whoever
// inherited it.
func procAlive(pid int, start string) bool {
	f := procStat(pid)
	return f != nil && f[19] == start && f[0] != "Z"
}
