package landlock

import (
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
)

// Record types of Landlock's audit records (include/uapi/linux/audit.h,
// Linux 6.15 and later).
const (
	auditLandlockAccess = 1423 // AUDIT_LANDLOCK_ACCESS: one denied access
	auditLandlockDomain = 1424 // AUDIT_LANDLOCK_DOMAIN: a domain's life
)

// Denial is one kind of access Landlock refused: what blocked it, on what
// object, and how many times.
type Denial struct {
	// Blockers are the kernel's names of the missing rights or the scope,
	// comma-separated, e.g. "fs.read_file" or "scope.signal".
	Blockers string
	// Object is the path refused, or for an access without a path the
	// rest of the record (e.g. `opid=42 ocomm="sh"`, `daddr=10.0.0.1
	// dest=443`).
	Object string
	Count  int
}

// maxDenials bounds what one session keeps: the distinct denials, not
// their count, which a looping server could make endless.
const maxDenials = 64

// maxUnclaimed bounds the denials held while their domain is not yet
// known: its LANDLOCK_DOMAIN record follows the domain's first denial in
// the same audit event, so a few suffice.
const maxUnclaimed = 16

// denialLog keeps, from one audit stream that carries every process's
// records, the denials of the Landlock domains one process created (the
// init stage's, by its pid in the initial PID namespace). Landlock logs a
// domain's LANDLOCK_DOMAIN record (status=allocated, with the pid and
// executable of the process that created it) once, right after the
// domain's first LANDLOCK_ACCESS record; every LANDLOCK_ACCESS record names
// its domain by id (Documentation/admin-guide/LSM/landlock.rst, "Audit").
// Other processes' denials are never kept, so they cannot crowd out the
// session's, and memory stays bounded whatever the host logs. It is not
// safe for concurrent use.
type denialLog struct {
	// pid, uid and exe are the creator's: its pid in the initial PID
	// namespace, its uid on the host and its executable. A pid alone
	// could be a recycled one's, whose old domains live on in its
	// children.
	pid       int
	uid       string
	exe       string
	ours      map[string]bool // domain ids the process created (at most one per thread)
	foreign   string          // the last domain seen to be someone else's
	denials   []Denial
	dropped   int     // distinct denials over maxDenials
	unclaimed []claim // denials of domains not yet known, oldest first
}

// claim is a denial waiting for its domain's record.
type claim struct {
	domain string
	d      Denial
}

func newDenialLog(pid, uid int, exe string) *denialLog {
	return &denialLog{pid: pid, uid: strconv.Itoa(uid), exe: exe, ours: map[string]bool{}}
}

// add takes one record of the given audit type; its text is the payload
// of the audit netlink message: "audit(SECONDS.MS:SERIAL): FIELDS".
// Records of other types are ignored.
func (l *denialLog) add(typ int, text string) {
	if typ != auditLandlockAccess && typ != auditLandlockDomain {
		return
	}
	_, fields, ok := strings.Cut(text, "): ")
	if !ok {
		return
	}
	fields = strings.TrimRight(fields, "\x00\n")
	kv := auditFields(fields)
	domain := kv["domain"]
	if domain == "" {
		return
	}
	if typ == auditLandlockDomain {
		if kv["status"] != "allocated" {
			return
		}
		pid, err := strconv.Atoi(kv["pid"])
		if err != nil {
			return
		}
		exe := strings.TrimSuffix(auditValue(kv["exe"]), " (deleted)")
		mine := pid == l.pid && kv["uid"] == l.uid && (l.exe == "" || exe == l.exe)
		if mine && len(l.ours) < 1024 {
			l.ours[domain] = true
		} else if !mine {
			l.foreign = domain
		}
		kept := l.unclaimed[:0]
		for _, c := range l.unclaimed {
			switch {
			case c.domain != domain:
				kept = append(kept, c)
			case mine:
				l.keep(c.d)
			}
		}
		l.unclaimed = kept
		return
	}
	d := Denial{Blockers: kv["blockers"], Count: 1}
	if p, ok := kv["path"]; ok {
		d.Object = auditValue(p)
	} else {
		// Everything after the blockers: the object as the record
		// describes it (a peer process, an address and port).
		_, rest, _ := strings.Cut(fields, " blockers="+d.Blockers)
		d.Object = strings.TrimSpace(rest)
	}
	switch {
	case l.ours[domain]:
		l.keep(d)
	case domain == l.foreign:
	default:
		if len(l.unclaimed) == maxUnclaimed {
			l.unclaimed = append(l.unclaimed[:0], l.unclaimed[1:]...)
		}
		l.unclaimed = append(l.unclaimed, claim{domain, d})
	}
}

// keep counts d among the process's denials.
func (l *denialLog) keep(d Denial) {
	if i := slices.IndexFunc(l.denials, func(x Denial) bool {
		return x.Blockers == d.Blockers && x.Object == d.Object
	}); i >= 0 {
		l.denials[i].Count += d.Count
		return
	}
	if len(l.denials) >= maxDenials {
		l.dropped++
		return
	}
	l.denials = append(l.denials, d)
}

// result returns the process's denials, in the order first seen, and how
// many distinct ones were not kept.
func (l *denialLog) result() ([]Denial, int) {
	return slices.Clone(l.denials), l.dropped
}

// auditFields splits an audit record's "name=value name=value" text. The
// kernel writes values that could hold spaces either quoted, when they
// hold no space, quote or control character, or in hexadecimal
// (audit_log_untrustedstring in kernel/audit.c), so a space always
// separates fields.
func auditFields(s string) map[string]string {
	kv := map[string]string{}
	for _, f := range strings.Fields(s) {
		if k, v, ok := strings.Cut(f, "="); ok {
			if _, dup := kv[k]; !dup {
				kv[k] = v
			}
		}
	}
	return kv
}

// auditValue decodes a value audit_log_untrustedstring wrote: quoted text
// as is, otherwise hexadecimal. A value that is neither is returned as it
// stands.
func auditValue(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	if b, err := hex.DecodeString(v); err == nil && v != "" {
		return string(b)
	}
	return v
}

// auditMessage is one netlink message from the kernel's audit: its type
// (a record type, or NLMSG_ERROR) and its payload.
type auditMessage struct {
	typ  int
	text string
}

// parseAuditMessages splits a datagram from an audit netlink socket into
// its messages. Unlike syscall.ParseNetlinkMessage it accepts a last
// message whose length is not padded to a multiple of 4 (NLMSG_ALIGNTO),
// as the kernel's audit sends its records: nlmsg_len is the 16-byte
// header and the text.
func parseAuditMessages(b []byte) []auditMessage {
	const hdrLen = 16 // struct nlmsghdr
	var out []auditMessage
	for len(b) >= hdrLen {
		n := int(binary.NativeEndian.Uint32(b[0:]))
		if n < hdrLen || n > len(b) {
			break
		}
		out = append(out, auditMessage{typ: int(binary.NativeEndian.Uint16(b[4:])), text: string(b[hdrLen:n])})
		next := (n + 3) &^ 3
		if next >= len(b) {
			break
		}
		b = b[next:]
	}
	return out
}
