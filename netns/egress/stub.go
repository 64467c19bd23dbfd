package egress

import (
	"context"
	"errors"
	"strings"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/vm-run/vm-run/audit"
)

// Stub is the sandbox's only DNS server, at StubAddr: it answers the A
// question of a name the policy allows with the name's synthetic address,
// other questions of such a name with an empty answer, and any other name
// with NXDOMAIN, and forwards nothing to any resolver. Each answer is
// recorded (audit.NetDNS) before it is returned. Safe for concurrent use.
type Stub struct {
	policy Policy
	names  *Names
	rec    Recorder
}

// NewStub returns a stub for the policy's names.
func NewStub(p Policy, n *Names, r Recorder) *Stub { return &Stub{policy: p, names: n, rec: r} }

// Answers of the stub. An answer's TTL is short so that a program that
// keeps a name for long still asks again now and then, and each asking is
// in the ledger; the address never changes within a session anyway.
const (
	answerTTL = 60
	// ednsPayload is the UDP payload size the stub advertises in its OPT
	// record: the size DNS Flag Day 2020 settled on. The stub's answers
	// are never longer than 512 bytes, so it matters only to the client.
	ednsPayload = 1232
	// maxUDPAnswer is the size of a DNS message over UDP without EDNS
	// (RFC 1035 §2.3.4). A question (at most 255 bytes of name), one A
	// record sent with its name compressed, and an OPT record fit in it.
	maxUDPAnswer = 512
	// rcodeBadVers is the extended RCODE BADVERS (RFC 6891 §6.1.3).
	rcodeBadVers dnsmessage.RCode = 16
)

// query is what the stub reads of a DNS message.
type query struct {
	hdr dnsmessage.Header
	// q is the question, when the message holds exactly one that parses;
	// hasQ says so.
	q    dnsmessage.Question
	hasQ bool
	// malformed is set when the message is not one well-formed question
	// with at most one OPT record.
	malformed bool
	// edns is set when the additional section holds an OPT record, of
	// EDNS version ednsVersion.
	edns        bool
	ednsVersion uint8
}

// parseQuery reads msg. It returns ok false when msg is not a query at all
// (it is a response, which the stub never answers, lest two stubs answer
// each other forever).
func parseQuery(msg []byte) (query, bool) {
	var q query
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		// Too short for a header: answer FORMERR to the id it carries,
		// unless the QR bit it may carry says it is a response.
		q.hdr.ID = uint16(msg[0])<<8 | uint16(msg[1])
		q.malformed = true
		return q, len(msg) < 3 || msg[2]&0x80 == 0
	}
	q.hdr = h
	if h.Response {
		return q, false
	}
	n := 0
	for {
		question, err := p.Question()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err != nil {
			q.malformed = true
			return q, true
		}
		if n == 0 {
			q.q = question
		}
		n++
	}
	if n != 1 {
		q.malformed = true
		return q, true
	}
	q.hasQ = true
	// RFC 6891 §6.1.1: an OPT record may be anywhere in the additional
	// section, and a query with more than one is answered FORMERR.
	if p.SkipAllAnswers() != nil || p.SkipAllAuthorities() != nil {
		q.malformed = true
		return q, true
	}
	for {
		rh, err := p.AdditionalHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err == nil {
			err = p.SkipAdditional()
		}
		if err != nil || rh.Type == dnsmessage.TypeOPT && q.edns {
			q.malformed = true
			return q, true
		}
		if rh.Type == dnsmessage.TypeOPT {
			q.edns = true
			q.ednsVersion = uint8(rh.TTL >> 16)
		}
	}
	return q, true
}

// Answer returns the response to one DNS message (as carried by UDP, or
// by TCP without its 2-byte length), or nil when query is not a query
// worth answering (too short to hold an id) or its record could not be
// written: the sandbox then sees a timeout, never an unrecorded answer.
//
// A message that is not one question in class IN gets FORMERR (zero or
// several questions, or a malformed one), NOTIMP (an opcode other than
// QUERY) or REFUSED (another class); one with an EDNS version other than
// 0 gets BADVERS. A response, which a stub never answers, gets nil. The
// answer echoes the question as asked (letter case included, RFC 5452
// §9.1 clients check it), copies RD, sets RA, and carries an OPT record
// when the query did (RFC 6891 §7), without the DO bit: the stub signs
// nothing. It is never longer than 512 bytes.
func (s *Stub) Answer(ctx context.Context, msg []byte) []byte {
	if len(msg) < 2 {
		return nil
	}
	q, ok := parseQuery(msg)
	if !ok {
		return nil
	}
	ev := audit.NetDNS{Verdict: audit.VerdictDeny}
	if q.hasQ {
		ev.Name = strings.TrimSuffix(q.q.Name.String(), ".")
		ev.Type = typeName(q.q.Type)
	}
	rcode := dnsmessage.RCodeSuccess
	var answer *dnsmessage.AResource
	switch {
	case q.malformed:
		rcode = dnsmessage.RCodeFormatError
	case q.hdr.OpCode != 0:
		rcode = dnsmessage.RCodeNotImplemented
	case q.edns && q.ednsVersion != 0:
		rcode = rcodeBadVers
	case q.q.Class != dnsmessage.ClassINET:
		rcode = dnsmessage.RCodeRefused
	default:
		rcode, answer = s.decide(q.q, &ev)
	}
	resp := build(q, rcode, answer)
	if err := s.rec.Record(ctx, ev); err != nil {
		return nil
	}
	return resp
}

// decide answers a well-formed question of class IN and fills in ev's
// verdict, rule and answer.
func (s *Stub) decide(q dnsmessage.Question, ev *audit.NetDNS) (dnsmessage.RCode, *dnsmessage.AResource) {
	name, err := NormalizeName(ev.Name)
	if err != nil {
		return dnsmessage.RCodeNameError, nil
	}
	ev.Name = name
	rule, ok := s.policy.Name(name)
	if !ok {
		return dnsmessage.RCodeNameError, nil
	}
	ev.Rule = rule.String()
	if q.Type != dnsmessage.TypeA {
		// NOERROR with no answer: the name exists, without records of
		// this type (RFC 2308 §2.2), so that a client asking AAAA and A
		// goes on with the A answer.
		ev.Verdict = audit.VerdictAllow
		return dnsmessage.RCodeSuccess, nil
	}
	a, ok := s.names.Addr(name)
	if !ok {
		return dnsmessage.RCodeServerFailure, nil
	}
	ev.Verdict = audit.VerdictAllow
	ev.Answer = a.String()
	return dnsmessage.RCodeSuccess, &dnsmessage.AResource{A: a.As4()}
}

// build packs the response to q.
func build(q query, rcode dnsmessage.RCode, answer *dnsmessage.AResource) []byte {
	h := dnsmessage.Header{
		ID:                 q.hdr.ID,
		Response:           true,
		OpCode:             q.hdr.OpCode,
		RecursionDesired:   q.hdr.RecursionDesired,
		RecursionAvailable: true,
		// The header holds the low 4 bits; an extended RCODE's high
		// bits go in the OPT record (RFC 6891 §6.1.3).
		RCode: rcode & 0xF,
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, maxUDPAnswer), h)
	b.EnableCompression()
	err := b.StartQuestions()
	if err == nil && q.hasQ && !q.malformed {
		err = b.Question(q.q)
	}
	if err == nil && answer != nil {
		err = b.StartAnswers()
		if err == nil {
			err = b.AResource(dnsmessage.ResourceHeader{Name: q.q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: answerTTL}, *answer)
		}
	}
	if err == nil && q.edns && !q.malformed {
		var rh dnsmessage.ResourceHeader
		err = rh.SetEDNS0(ednsPayload, rcode, false)
		if err == nil {
			err = b.StartAdditionals()
		}
		if err == nil {
			err = b.OPTResource(rh, dnsmessage.OPTResource{})
		}
	}
	var out []byte
	if err == nil {
		out, err = b.Finish()
	}
	if err != nil || len(out) > maxUDPAnswer {
		// Not reached with a question that parsed; answer SERVFAIL
		// with the header alone rather than nothing.
		h.RCode = dnsmessage.RCodeServerFailure
		b = dnsmessage.NewBuilder(nil, h)
		out, _ = b.Finish()
	}
	return out
}

// typeName spells a question type as the ledger does: "A", "AAAA",
// "HTTPS", "ANY", or "TYPE65534" for a type without a mnemonic (RFC 3597
// §5).
func typeName(t dnsmessage.Type) string {
	if t == dnsmessage.TypeALL {
		return "ANY"
	}
	s := t.String()
	if name, ok := strings.CutPrefix(s, "Type"); ok {
		return name
	}
	return "TYPE" + s
}
