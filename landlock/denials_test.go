package landlock

import (
	"fmt"
	"slices"
	"testing"
)

// The record texts are in the form Documentation/admin-guide/LSM/landlock.rst
// shows and this VM's kernel (6.18) printed, as the audit netlink payload
// carries them (without the "type=... msg=" prefix auditd adds).
func TestDenialLog(t *testing.T) {
	l := newDenialLog()
	access := func(serial int, domain, rest string) {
		l.add(auditLandlockAccess, fmt.Sprintf("audit(1796456515.826:%d): domain=%s %s", serial, domain, rest))
	}
	access(30, "195ba459b", `blockers=fs.read_file path="/var/lib/x/secret.txt" dev="vda" ino=803343`)
	l.add(auditLandlockDomain, `audit(1796456515.826:30): domain=195ba459b status=allocated mode=enforcing pid=300 uid=65534 exe="/usr/local/bin/vm-run" comm="exe"`)
	access(31, "195ba459b", `blockers=fs.read_file path="/var/lib/x/secret.txt" dev="vda" ino=803343`)
	// A path with a space is logged in hexadecimal.
	access(32, "195ba459b", `blockers=fs.make_reg,fs.refer path=2F746D702F6120622F63 dev="vda" ino=1`)
	// Another thread's domain of the same process (below ABI 8 each
	// thread has one), and a scope denial without a path.
	l.add(auditLandlockDomain, `audit(1796456515.900:33): domain=195ba45a0 status=allocated mode=enforcing pid=300 uid=65534 exe="/usr/local/bin/vm-run" comm="exe"`)
	access(33, "195ba45a0", `blockers=scope.signal opid=1 ocomm="systemd"`)
	// Someone else's sandbox, and records that are not Landlock's.
	l.add(auditLandlockDomain, `audit(1796456516.000:34): domain=1aa status=allocated mode=enforcing pid=301 uid=0 exe="/bin/other" comm="other"`)
	access(34, "1aa", `blockers=fs.execute path="/bin/ls" dev="vda" ino=2`)
	l.add(1300, `audit(1796456515.826:30): arch=c000003e syscall=257 success=no exit=-13`)
	l.add(auditLandlockDomain, `audit(1796456517.000:35): domain=195ba459b status=deallocated denials=3`)

	got, dropped := l.of(300, "")
	want := []Denial{
		{Blockers: "fs.read_file", Object: "/var/lib/x/secret.txt", Count: 2},
		{Blockers: "fs.make_reg,fs.refer", Object: "/tmp/a b/c", Count: 1},
		{Blockers: "scope.signal", Object: `opid=1 ocomm="systemd"`, Count: 1},
	}
	if !slices.Equal(got, want) || dropped != 0 {
		t.Errorf("denials of pid 300 = %+v, %d dropped\nwant %+v", got, dropped, want)
	}
	if got, _ := l.of(300, "/bin/other"); len(got) != 0 {
		t.Errorf("denials of pid 300 running /bin/other = %+v, want none", got)
	}
	if got, _ := l.of(301, "/bin/other"); len(got) != 1 || got[0].Object != "/bin/ls" {
		t.Errorf("denials of pid 301 = %+v, want its one fs.execute", got)
	}
	if got, _ := l.of(302, ""); len(got) != 0 {
		t.Errorf("denials of pid 302, which created no domain = %+v", got)
	}
}

// TestDenialLogBounded: a server that loops over new paths cannot make a
// session keep more than maxDenials of them.
func TestDenialLogBounded(t *testing.T) {
	l := newDenialLog()
	l.add(auditLandlockDomain, `audit(1.0:1): domain=a status=allocated mode=enforcing pid=7 uid=0 exe="/x" comm="x"`)
	for i := range maxDenials + 10 {
		l.add(auditLandlockAccess, fmt.Sprintf(`audit(1.0:%d): domain=a blockers=fs.read_file path="/p/%d" dev="vda" ino=1`, i+2, i))
	}
	got, dropped := l.of(7, "")
	if len(got) != maxDenials || dropped != 10 {
		t.Errorf("kept %d, dropped %d; want %d and 10", len(got), dropped, maxDenials)
	}
}

func TestAuditValue(t *testing.T) {
	for in, want := range map[string]string{
		`"/usr/bin"`: "/usr/bin",
		"2F612062":   "/a b",
		"(null)":     "(null)",
		`"`:          `"`,
		"":           "",
		"2F6":        "2F6", // odd length: not hexadecimal
	} {
		if got := auditValue(in); got != want {
			t.Errorf("auditValue(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseAudit(t *testing.T) {
	// Two messages in one datagram, the last one's length not padded.
	msg := func(typ uint16, text string) []byte {
		b := make([]byte, 16+len(text))
		b[0] = byte(len(b))
		b[4], b[5] = byte(typ), byte(typ>>8)
		copy(b[16:], text)
		return b
	}
	first := msg(auditLandlockAccess, "abc") // 19 bytes, padded to 20
	dgram := append(append(first, 0), msg(auditLandlockDomain, "hello")...)
	got := parseAuditMessages(dgram)
	if len(got) != 2 || got[0].typ != auditLandlockAccess || got[0].text != "abc" ||
		got[1].typ != auditLandlockDomain || got[1].text != "hello" {
		t.Errorf("parse = %+v", got)
	}
	if got := parseAuditMessages(first[:10]); len(got) != 0 {
		t.Errorf("a short datagram gave %+v", got)
	}
}
