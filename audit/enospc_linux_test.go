package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const envDir = "VMRUN_AUDIT_TEST_DIR"

// enospcResult is what the ENOSPC child reports.
type enospcResult struct {
	Acked       []ack    `json:"acked"`
	Errors      []string `json:"errors"`
	AllENOSPC   bool     `json:"all_enospc"`
	AllDead     bool     `json:"all_dead"`
	Hint        string   `json:"hint"`
	LaterErr    string   `json:"later_err"`
	LaterWrote  bool     `json:"later_wrote"`
	VerifyErr   string   `json:"verify_err"`
	Warnings    int      `json:"warnings"`
	Missing     int      `json:"missing"`
	ReopenErr   string   `json:"reopen_err"`
	Verify2Err  string   `json:"verify2_err"`
	Recovered2  int      `json:"recovered2"`
	Missing2    int      `json:"missing2"`
	SetupFailed string   `json:"setup_failed"`
}

// TestFullFilesystem fills a 64 KiB tmpfs with a ledger. Append must fail
// with ENOSPC and say so, acknowledge nothing it did not write, write
// nothing more through the dead handle, and leave a ledger that verifies
// and that a new handle can append to once there is space again.
//
// The tmpfs is mounted in a child process in a new mount namespace: as
// root directly, otherwise inside a new user namespace too.
func TestFullFilesystem(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=enospc", envDir+"="+dir)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	if os.Geteuid() != 0 {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	}
	out, err := cmd.Output()
	if err != nil && len(out) == 0 {
		requireNamespaces(t, err)
		t.Fatalf("ENOSPC child: %v", err)
	}
	var res enospcResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ENOSPC child printed %q: %v", out, err)
	}
	if res.SetupFailed != "" {
		t.Skipf("cannot mount a tmpfs in a new mount namespace (needs root or unprivileged user namespaces): %s", res.SetupFailed)
	}
	if len(res.Errors) == 0 {
		t.Fatal("no Append failed on a full 64 KiB tmpfs")
	}
	if !res.AllENOSPC || !res.AllDead {
		t.Errorf("Append errors = %q, want all to match syscall.ENOSPC and ErrDead", res.Errors)
	}
	if !strings.Contains(res.Errors[0], "no space left on device") {
		t.Errorf("Append error = %q, want it to say %q", res.Errors[0], "no space left on device")
	}
	if !strings.Contains(res.Hint, "full") {
		t.Errorf("Hint = %q, want advice about a full filesystem", res.Hint)
	}
	if res.LaterErr == "" || res.LaterWrote {
		t.Errorf("Append on the dead handle: error %q, wrote %v; want an error and no write", res.LaterErr, res.LaterWrote)
	}
	if res.VerifyErr != "" || res.Missing != 0 {
		t.Errorf("after ENOSPC: Verify = %q, %d acknowledged records missing; want nil, 0", res.VerifyErr, res.Missing)
	}
	if res.ReopenErr != "" || res.Verify2Err != "" || res.Missing2 != 0 {
		t.Errorf("after freeing space: Append = %q, Verify = %q, %d missing; want nil, nil, 0", res.ReopenErr, res.Verify2Err, res.Missing2)
	}
	t.Logf("%d records acknowledged before ENOSPC; %d warnings; %d torn writes recovered after freeing space",
		len(res.Acked), res.Warnings, res.Recovered2)
}

// requireNamespaces skips the test when the child could not be started in
// new namespaces.
func requireNamespaces(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSPC) {
		t.Skipf("cannot create a mount namespace (needs root, or CLONE_NEWUSER allowed for uid %d: see user.max_user_namespaces and kernel.apparmor_restrict_unprivileged_userns): %v",
			os.Geteuid(), err)
	}
}

// enospcChild runs in the new mount namespace and prints an enospcResult.
func enospcChild() int {
	var res enospcResult
	defer func() {
		b, _ := json.Marshal(res)
		os.Stdout.Write(b)
	}()
	dir := os.Getenv(envDir)
	// mount_namespaces(7): keep our mounts from propagating to the parent
	// namespace before mounting anything.
	if err := unix.Mount("none", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		res.SetupFailed = fmt.Sprintf("make / private: %v", err)
		return 0
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k,mode=0700"); err != nil {
		res.SetupFailed = fmt.Sprintf("mount tmpfs: %v", err)
		return 0
	}
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 8<<10), 0o600); err != nil {
		res.SetupFailed = fmt.Sprintf("write filler: %v", err)
		return 0
	}
	path := filepath.Join(dir, "state", "ledger.jsonl")
	l, err := Open(path, Options{RedactLimit: -1})
	if err != nil {
		res.SetupFailed = fmt.Sprintf("open ledger: %v", err)
		return 0
	}

	var mu sync.Mutex
	var wg sync.WaitGroup
	res.AllENOSPC, res.AllDead = true, true
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				rec, err := l.Log(context.Background(), Decision{Tool: "fill", Verdict: VerdictAllow,
					Args: map[string]any{"w": w, "i": i, "pad": strings.Repeat("y", 700)}})
				mu.Lock()
				if err != nil {
					res.Errors = append(res.Errors, err.Error())
					res.AllENOSPC = res.AllENOSPC && errors.Is(err, syscall.ENOSPC)
					res.AllDead = res.AllDead && errors.Is(err, ErrDead)
					if res.Hint == "" {
						res.Hint = Hint(err)
					}
					mu.Unlock()
					return
				}
				res.Acked = append(res.Acked, ack{Seq: rec.Seq, Hash: rec.Hash})
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	before, _ := os.Stat(path)
	if _, err := l.Log(context.Background(), Decision{Tool: "late", Verdict: VerdictAllow}); err != nil {
		res.LaterErr = err.Error()
	}
	after, _ := os.Stat(path)
	res.LaterWrote = before == nil || after == nil || before.Size() != after.Size()
	l.Close()

	check := func(verr, missing *int) string {
		b, err := os.ReadFile(path)
		if err != nil {
			return err.Error()
		}
		rep, err := verifyBytes(b)
		if verr != nil {
			*verr = len(rep.Warnings)
		}
		have := hashesBySeq(b)
		for _, a := range res.Acked {
			if have[a.Seq] != a.Hash {
				*missing++
			}
		}
		if err != nil {
			return err.Error()
		}
		if verr == nil {
			res.Recovered2 = rep.Recovered
		}
		return ""
	}
	res.VerifyErr = check(&res.Warnings, &res.Missing)

	if err := os.Remove(filler); err != nil {
		res.ReopenErr = err.Error()
		return 0
	}
	l2, err := Open(path, Options{})
	if err == nil {
		_, err = l2.Log(context.Background(), Decision{Tool: "after", Verdict: VerdictAllow})
		l2.Close()
	}
	if err != nil {
		res.ReopenErr = err.Error()
	}
	res.Verify2Err = check(nil, &res.Missing2)
	return 0
}
