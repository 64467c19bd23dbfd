package landlock

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// The record texts are in the form Documentation/admin-guide/LSM/landlock.rst
// shows and this VM's kernel (6.18) printed, as the audit netlink payload
// carries them (without the "type=... msg=" prefix auditd adds).
func TestDenialLog(t *testing.T) {
	// feed gives the same stream to a log for each pid.
	type rec struct {
		typ  int
		text string
	}
	var stream []rec
	access := func(serial int, domain, rest string) {
		stream = append(stream, rec{auditLandlockAccess, fmt.Sprintf("audit(1796456515.826:%d): domain=%s %s", serial, domain, rest)})
	}
	domain := func(serial int, id string, pid int) {
		stream = append(stream, rec{auditLandlockDomain, fmt.Sprintf(`audit(1796456515.826:%d): domain=%s status=allocated mode=enforcing pid=%d uid=65534 exe="/usr/local/bin/vm-run" comm="exe"`, serial, id, pid)})
	}
	// A domain whose creator had pid 300 too, before it was recycled:
	// another uid, another executable.
	domain(29, "dead1", 300)
	stream[len(stream)-1].text = strings.Replace(stream[len(stream)-1].text, "uid=65534", "uid=1000", 1)
	access(29, "dead1", `blockers=fs.read_file path="/home/u/x" dev="vda" ino=9`)
	domain(29, "dead2", 300)
	stream[len(stream)-1].text = strings.Replace(stream[len(stream)-1].text, "/usr/local/bin/vm-run", "/usr/bin/python3", 1)
	access(29, "dead2", `blockers=fs.read_file path="/home/u/y" dev="vda" ino=9`)
	// The first denial comes before its domain's record.
	access(30, "195ba459b", `blockers=fs.read_file path="/var/lib/x/secret.txt" dev="vda" ino=803343`)
	domain(30, "195ba459b", 300)
	access(31, "195ba459b", `blockers=fs.read_file path="/var/lib/x/secret.txt" dev="vda" ino=803343`)
	// A path with a space is logged in hexadecimal.
	access(32, "195ba459b", `blockers=fs.make_reg,fs.refer path=2F746D702F6120622F63 dev="vda" ino=1`)
	// Another thread's domain of the same process (below ABI 8 each
	// thread has one), and a scope denial without a path.
	access(33, "195ba45a0", `blockers=scope.signal opid=1 ocomm="systemd"`)
	domain(33, "195ba45a0", 300)
	// Someone else's sandbox, before and after its domain's record, and
	// records that are not Landlock's.
	access(34, "1aa", `blockers=fs.execute path="/bin/ls" dev="vda" ino=2`)
	domain(34, "1aa", 301)
	access(35, "1aa", `blockers=fs.execute path="/bin/ps" dev="vda" ino=3`)
	stream = append(stream,
		rec{1300, `audit(1796456515.826:30): arch=c000003e syscall=257 success=no exit=-13`},
		rec{auditLandlockDomain, `audit(1796456517.000:36): domain=195ba459b status=deallocated denials=3`})

	feed := func(pid int) *denialLog {
		l := newDenialLog(pid, 65534, "/usr/local/bin/vm-run")
		for _, r := range stream {
			l.add(r.typ, r.text)
		}
		return l
	}
	got, dropped := feed(300).result()
	want := []Denial{
		{Blockers: "fs.read_file", Object: "/var/lib/x/secret.txt", Count: 2},
		{Blockers: "fs.make_reg,fs.refer", Object: "/tmp/a b/c", Count: 1},
		{Blockers: "scope.signal", Object: `opid=1 ocomm="systemd"`, Count: 1},
	}
	if !slices.Equal(got, want) || dropped != 0 {
		t.Errorf("denials of pid 300 = %+v, %d dropped\nwant %+v", got, dropped, want)
	}
	want301 := []Denial{{Blockers: "fs.execute", Object: "/bin/ls", Count: 1}, {Blockers: "fs.execute", Object: "/bin/ps", Count: 1}}
	if got, _ := feed(301).result(); !slices.Equal(got, want301) {
		t.Errorf("denials of pid 301 = %+v, want %+v", got, want301)
	}
	if got, _ := feed(302).result(); len(got) != 0 {
		t.Errorf("denials of pid 302, which created no domain = %+v", got)
	}
}

// TestDenialLogBounded: a server that loops over new paths cannot make a
// session keep more than maxDenials of them, and another process's
// denials, however many, neither count against the session's nor grow
// the log.
func TestDenialLogBounded(t *testing.T) {
	l := newDenialLog(7, 0, "")
	for i := range 1000 {
		// Another sandbox's domain each time, its record after its
		// first denial, as the kernel logs them.
		l.add(auditLandlockAccess, fmt.Sprintf(`audit(1.0:%d): domain=f%d blockers=fs.read_file path="/q/%d" dev="vda" ino=1`, i, i, i))
		l.add(auditLandlockDomain, fmt.Sprintf(`audit(1.0:%d): domain=f%d status=allocated mode=enforcing pid=8 uid=0 exe="/y" comm="y"`, i, i))
		// And denials of domains whose record never comes.
		l.add(auditLandlockAccess, fmt.Sprintf(`audit(1.0:%d): domain=g%d blockers=fs.read_file path="/r/%d" dev="vda" ino=1`, i, i, i))
	}
	l.add(auditLandlockDomain, `audit(2.0:1): domain=a status=allocated mode=enforcing pid=7 uid=0 exe="/x" comm="x"`)
	for i := range maxDenials + 10 {
		l.add(auditLandlockAccess, fmt.Sprintf(`audit(2.0:%d): domain=a blockers=fs.read_file path="/p/%d" dev="vda" ino=1`, i+2, i))
	}
	got, dropped := l.result()
	if len(got) != maxDenials || dropped != 10 || got[0].Object != "/p/0" {
		t.Errorf("kept %d (first %+v), dropped %d; want the first %d of pid 7's and 10 dropped", len(got), got[0], dropped, maxDenials)
	}
	if len(l.unclaimed) > maxUnclaimed || len(l.ours) != 1 {
		t.Errorf("the log holds %d unclaimed denials and %d domains; want at most %d and 1", len(l.unclaimed), len(l.ours), maxUnclaimed)
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
