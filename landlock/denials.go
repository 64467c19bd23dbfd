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

// denialLog gathers the Landlock records of one audit stream and sorts
// them by domain. Landlock logs a domain's LANDLOCK_DOMAIN record
// (status=allocated, with the pid and executable of the process that
// created it) once, with the domain's first denial; every LANDLOCK_ACCESS
// record names its domain by id (Documentation/admin-guide/LSM/landlock.rst,
// "Audit"). It is not safe for concurrent use.
type denialLog struct {
	creator map[string]domainCreator // domain id → who created it
	denials map[string][]Denial      // domain id → what it refused
	dropped int                      // distinct denials over maxDenials
}

// domainCreator is what a LANDLOCK_DOMAIN record says of the process that
// created the domain: its pid in the initial PID namespace and its
// executable.
type domainCreator struct {
	pid int
	exe string
}

func newDenialLog() *denialLog {
	return &denialLog{creator: map[string]domainCreator{}, denials: map[string][]Denial{}}
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
		l.creator[domain] = domainCreator{pid: pid, exe: auditValue(kv["exe"])}
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
	list := l.denials[domain]
	if i := slices.IndexFunc(list, func(x Denial) bool {
		return x.Blockers == d.Blockers && x.Object == d.Object
	}); i >= 0 {
		list[i].Count++
		return
	}
	if l.total() >= maxDenials {
		l.dropped++
		return
	}
	l.denials[domain] = append(list, d)
}

func (l *denialLog) total() int {
	n := 0
	for _, list := range l.denials {
		n += len(list)
	}
	return n
}

// of returns the denials of the domains that process pid created running
// exe (any executable if exe is ""), merged and in the order first seen
// per domain, and how many distinct denials were not kept.
func (l *denialLog) of(pid int, exe string) ([]Denial, int) {
	var out []Denial
	ids := make([]string, 0, len(l.creator))
	for id, c := range l.creator {
		if c.pid == pid && (exe == "" || c.exe == exe) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		for _, d := range l.denials[id] {
			if i := slices.IndexFunc(out, func(x Denial) bool {
				return x.Blockers == d.Blockers && x.Object == d.Object
			}); i >= 0 {
				out[i].Count += d.Count
				continue
			}
			out = append(out, d)
		}
	}
	return out, l.dropped
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
