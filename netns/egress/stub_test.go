package egress

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/vm-run/vm-run/audit"
)

// dnsQuery packs a query for name and type, with id 0x1234 and RD set,
// and an OPT record of EDNS version ednsVersion when edns.
func dnsQuery(t testing.TB, name string, typ dnsmessage.Type, edns bool, ednsVersion uint8) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x1234, RecursionDesired: true})
	b.StartQuestions()
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	if edns {
		var rh dnsmessage.ResourceHeader
		rh.SetEDNS0(4096, 0, true)
		rh.TTL |= uint32(ednsVersion) << 16
		b.StartAdditionals()
		if err := b.OPTResource(rh, dnsmessage.OPTResource{}); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// parseAnswer unpacks a response, failing the test when it does not parse.
func parseAnswer(t testing.TB, resp []byte) dnsmessage.Message {
	t.Helper()
	var m dnsmessage.Message
	if err := m.Unpack(resp); err != nil {
		t.Fatalf("answer %x does not parse: %v", resp, err)
	}
	return m
}

func newTestStub(t testing.TB, rules ...string) (*Stub, *fakeRecorder) {
	t.Helper()
	rec := &fakeRecorder{}
	return NewStub(mustAllowlist(t, rules...), NewNames(), rec), rec
}

func TestStubAnswer(t *testing.T) {
	tests := []struct {
		name    string
		typ     dnsmessage.Type
		rcode   dnsmessage.RCode
		answer  bool // an A record is expected
		verdict audit.Verdict
		rule    string
	}{
		{"api.github.com.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, true, audit.VerdictAllow, "api.github.com:443"},
		{"API.GitHub.com.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, true, audit.VerdictAllow, "api.github.com:443"},
		{"example.com.", dnsmessage.TypeA, dnsmessage.RCodeNameError, false, audit.VerdictDeny, ""},
		{"github.com.", dnsmessage.TypeA, dnsmessage.RCodeNameError, false, audit.VerdictDeny, ""},
		{"a.b.slack.com.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, true, audit.VerdictAllow, "*.slack.com:443"},
		{"slack.com.", dnsmessage.TypeA, dnsmessage.RCodeNameError, false, audit.VerdictDeny, ""},
		{"api.github.com.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, false, audit.VerdictAllow, "api.github.com:443"},
		{"api.github.com.", dnsmessage.TypeHTTPS, dnsmessage.RCodeSuccess, false, audit.VerdictAllow, "api.github.com:443"},
		{"api.github.com.", dnsmessage.TypeMX, dnsmessage.RCodeSuccess, false, audit.VerdictAllow, "api.github.com:443"},
		{"example.com.", dnsmessage.TypeAAAA, dnsmessage.RCodeNameError, false, audit.VerdictDeny, ""},
		{"10.0.0.5.", dnsmessage.TypeA, dnsmessage.RCodeNameError, false, audit.VerdictDeny, ""},
		{"*.slack.com.", dnsmessage.TypeA, dnsmessage.RCodeNameError, false, audit.VerdictDeny, ""},
		{"bad name.slack.com.", dnsmessage.TypeA, dnsmessage.RCodeNameError, false, audit.VerdictDeny, ""},
		{".", dnsmessage.TypeA, dnsmessage.RCodeNameError, false, audit.VerdictDeny, ""},
	}
	for _, tt := range tests {
		s, rec := newTestStub(t, "api.github.com:443", "*.slack.com:443", "10.0.0.5:5432")
		resp := s.Answer(context.Background(), dnsQuery(t, tt.name, tt.typ, false, 0))
		m := parseAnswer(t, resp)
		if !m.Response || m.ID != 0x1234 || !m.RecursionDesired || !m.RecursionAvailable || m.RCode != tt.rcode {
			t.Errorf("%s %v: header %+v, want a response to 0x1234 with RD, RA and %v", tt.name, tt.typ, m.Header, tt.rcode)
		}
		if len(m.Questions) != 1 || m.Questions[0].Name.String() != tt.name || m.Questions[0].Type != tt.typ {
			t.Errorf("%s %v: question %v, want the one asked, as asked", tt.name, tt.typ, m.Questions)
		}
		if len(m.Additionals) != 0 {
			t.Errorf("%s %v: additional records %v in an answer to a query without EDNS", tt.name, tt.typ, m.Additionals)
		}
		evs := rec.all()
		if len(evs) != 1 {
			t.Fatalf("%s %v: %d records, want 1", tt.name, tt.typ, len(evs))
		}
		ev := evs[0].(audit.NetDNS)
		if ev.Verdict != tt.verdict || ev.Rule != tt.rule || ev.Type != strings.TrimPrefix(tt.typ.String(), "Type") {
			t.Errorf("%s %v: recorded %+v, want verdict %s, rule %q", tt.name, tt.typ, ev, tt.verdict, tt.rule)
		}
		if !tt.answer {
			if len(m.Answers) != 0 || ev.Answer != "" {
				t.Errorf("%s %v: answers %v, recorded answer %q, want none", tt.name, tt.typ, m.Answers, ev.Answer)
			}
			continue
		}
		if len(m.Answers) != 1 {
			t.Fatalf("%s %v: answers %v, want one A record", tt.name, tt.typ, m.Answers)
		}
		a, ok := m.Answers[0].Body.(*dnsmessage.AResource)
		got := netip.AddrFrom4(a.A)
		if !ok || m.Answers[0].Header.TTL != answerTTL || m.Answers[0].Header.Name.String() != tt.name ||
			!SyntheticPrefix.Contains(got) || got.String() != ev.Answer {
			t.Errorf("%s: answer %v, recorded %q, want a synthetic address, TTL %d, recorded", tt.name, m.Answers[0], ev.Answer, answerTTL)
		}
		if back, _ := s.names.Lookup(got); back != strings.ToLower(strings.TrimSuffix(tt.name, ".")) || ev.Name != back {
			t.Errorf("%s: %s maps back to %q, recorded name %q", tt.name, got, back, ev.Name)
		}
	}
}

// noAnswer stands for no answer at all in TestStubMalformed.
const noAnswer dnsmessage.RCode = 0xFFFF

func TestStubMalformed(t *testing.T) {
	s, rec := newTestStub(t, "api.github.com:443")
	ok := dnsQuery(t, "api.github.com.", dnsmessage.TypeA, false, 0)

	twoQ := func() []byte {
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7})
		b.StartQuestions()
		for _, n := range []string{"api.github.com.", "example.com."} {
			b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(n), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
		}
		m, _ := b.Finish()
		return m
	}()
	noQ := func() []byte {
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7})
		m, _ := b.Finish()
		return m
	}()
	withHeader := func(f func(h *dnsmessage.Header)) []byte {
		var m dnsmessage.Message
		m.Unpack(ok)
		f(&m.Header)
		b, _ := m.Pack()
		return b
	}
	chaos := func() []byte {
		var m dnsmessage.Message
		m.Unpack(ok)
		m.Questions[0].Class = dnsmessage.ClassCHAOS
		b, _ := m.Pack()
		return b
	}()
	twoOPT := func() []byte {
		var m dnsmessage.Message
		m.Unpack(dnsQuery(t, "api.github.com.", dnsmessage.TypeA, true, 0))
		m.Additionals = append(m.Additionals, m.Additionals[0])
		b, _ := m.Pack()
		return b
	}()

	tests := []struct {
		what  string
		msg   []byte
		rcode dnsmessage.RCode // noAnswer: no answer at all
	}{
		{"the probe itself", ok, dnsmessage.RCodeSuccess},
		{"empty", nil, noAnswer},
		{"one byte", []byte{0x12}, noAnswer},
		{"id only", []byte{0x12, 0x34}, dnsmessage.RCodeFormatError},
		{"truncated header", ok[:7], dnsmessage.RCodeFormatError},
		{"truncated question", ok[:len(ok)-3], dnsmessage.RCodeFormatError},
		{"two questions", twoQ, dnsmessage.RCodeFormatError},
		{"no question", noQ, dnsmessage.RCodeFormatError},
		{"two OPT records", twoOPT, dnsmessage.RCodeFormatError},
		{"opcode STATUS", withHeader(func(h *dnsmessage.Header) { h.OpCode = 2 }), dnsmessage.RCodeNotImplemented},
		{"class CHAOS", chaos, dnsmessage.RCodeRefused},
		{"a response", withHeader(func(h *dnsmessage.Header) { h.Response = true }), noAnswer},
		{"a short response", []byte{0x12, 0x34, 0x80}, noAnswer},
	}
	for _, tt := range tests {
		before := len(rec.all())
		resp := s.Answer(context.Background(), tt.msg)
		recorded := len(rec.all()) - before
		if tt.rcode == noAnswer {
			if resp != nil || recorded != 0 {
				t.Errorf("%s: answer %x and %d records, want neither", tt.what, resp, recorded)
			}
			continue
		}
		m := parseAnswer(t, resp)
		if m.RCode != tt.rcode || !m.Response || recorded != 1 {
			t.Errorf("%s: rcode %v with %d records, want %v and 1", tt.what, m.RCode, recorded, tt.rcode)
		}
		if len(tt.msg) >= 2 && m.ID != uint16(tt.msg[0])<<8|uint16(tt.msg[1]) {
			t.Errorf("%s: id %#x, want the query's", tt.what, m.ID)
		}
		if tt.rcode != dnsmessage.RCodeSuccess && len(m.Answers) != 0 {
			t.Errorf("%s: answers %v with %v", tt.what, m.Answers, m.RCode)
		}
		if ev := rec.all()[len(rec.all())-1].(audit.NetDNS); tt.rcode != dnsmessage.RCodeSuccess && ev.Verdict != audit.VerdictDeny {
			t.Errorf("%s: recorded %+v, want a denial", tt.what, ev)
		}
	}
}

func TestStubEDNS(t *testing.T) {
	s, _ := newTestStub(t, "api.github.com:443")
	m := parseAnswer(t, s.Answer(context.Background(), dnsQuery(t, "api.github.com.", dnsmessage.TypeA, true, 0)))
	if m.RCode != dnsmessage.RCodeSuccess || len(m.Answers) != 1 || len(m.Additionals) != 1 {
		t.Fatalf("EDNS query: %v, %d answers, additionals %v, want one answer and one OPT", m.RCode, len(m.Answers), m.Additionals)
	}
	opt := m.Additionals[0].Header
	if opt.Type != dnsmessage.TypeOPT || opt.Class != ednsPayload || opt.DNSSECAllowed() || opt.TTL != 0 {
		t.Errorf("OPT %+v, want payload %d, version 0, no DO bit", opt, ednsPayload)
	}
	// RFC 6891 §6.1.3: an unknown version gets BADVERS, carried in part
	// by the OPT record.
	m = parseAnswer(t, s.Answer(context.Background(), dnsQuery(t, "api.github.com.", dnsmessage.TypeA, true, 1)))
	if len(m.Additionals) != 1 || m.Additionals[0].Header.ExtendedRCode(m.RCode) != rcodeBadVers || len(m.Answers) != 0 {
		t.Errorf("EDNS version 1: rcode %v, additionals %v, want BADVERS", m.RCode, m.Additionals)
	}
}

func TestStubRecordFails(t *testing.T) {
	s, rec := newTestStub(t, "api.github.com:443")
	q := dnsQuery(t, "api.github.com.", dnsmessage.TypeA, false, 0)
	if resp := s.Answer(context.Background(), q); resp == nil {
		t.Fatal("Answer with a working recorder = nil, want an answer")
	}
	rec.err = errDiskFull
	for _, name := range []string{"api.github.com.", "example.com."} {
		if resp := s.Answer(context.Background(), dnsQuery(t, name, dnsmessage.TypeA, false, 0)); resp != nil {
			t.Errorf("Answer(%s) with a failing recorder = %x, want nil", name, resp)
		}
	}
}

func TestStubExhausted(t *testing.T) {
	s, rec := newTestStub(t, "*.example.com:443")
	s.names.next = netip.MustParseAddr("198.19.255.255") // the broadcast address
	m := parseAnswer(t, s.Answer(context.Background(), dnsQuery(t, "a.example.com.", dnsmessage.TypeA, false, 0)))
	if m.RCode != dnsmessage.RCodeServerFailure || len(m.Answers) != 0 {
		t.Errorf("out of addresses: %v with %v, want SERVFAIL and no answer", m.RCode, m.Answers)
	}
	if ev := rec.all()[0].(audit.NetDNS); ev.Verdict != audit.VerdictDeny || ev.Rule != "*.example.com:443" {
		t.Errorf("recorded %+v, want a denial naming the rule", ev)
	}
}

func TestStubLongName(t *testing.T) {
	label := strings.Repeat("a", 63)
	name := label + "." + label + "." + label + "." + strings.Repeat("b", 49) + ".example.com."
	if len(name) != 254 {
		t.Fatalf("test name is %d bytes, want 254", len(name))
	}
	s, _ := newTestStub(t, "*.example.com:443")
	resp := s.Answer(context.Background(), dnsQuery(t, name, dnsmessage.TypeA, true, 0))
	m := parseAnswer(t, resp)
	if m.RCode != dnsmessage.RCodeSuccess || len(m.Answers) != 1 || len(resp) > maxUDPAnswer {
		t.Errorf("longest name: %v, %d answers, %d bytes, want an answer of at most %d bytes", m.RCode, len(m.Answers), len(resp), maxUDPAnswer)
	}
}

func TestTypeName(t *testing.T) {
	for typ, want := range map[dnsmessage.Type]string{
		dnsmessage.TypeA: "A", dnsmessage.TypeAAAA: "AAAA", dnsmessage.TypeHTTPS: "HTTPS",
		dnsmessage.TypeSVCB: "SVCB", dnsmessage.TypeALL: "ANY", 65534: "TYPE65534",
	} {
		if got := typeName(typ); got != want {
			t.Errorf("typeName(%d) = %q, want %q", typ, got, want)
		}
	}
}

// FuzzStubAnswer feeds the stub arbitrary messages: it never panics, every
// answer parses, is recorded, fits in 512 bytes, and an address is given
// only for a name the policy allows.
func FuzzStubAnswer(f *testing.F) {
	f.Add(dnsQuery(f, "api.github.com.", dnsmessage.TypeA, false, 0))
	f.Add(dnsQuery(f, "x.slack.com.", dnsmessage.TypeA, true, 0))
	f.Add(dnsQuery(f, "example.com.", dnsmessage.TypeAAAA, true, 3))
	f.Add(dnsQuery(f, "API.GITHUB.COM.", dnsmessage.TypeA, false, 0))
	f.Add([]byte{0, 1, 2})
	policy := mustAllowlist(f, "api.github.com:443", "*.slack.com:443")
	f.Fuzz(func(t *testing.T, msg []byte) {
		rec := &fakeRecorder{}
		s := NewStub(policy, NewNames(), rec)
		resp := s.Answer(context.Background(), msg)
		if resp == nil {
			if n := len(rec.all()); n != 0 {
				t.Fatalf("no answer, but %d records", n)
			}
			return
		}
		if len(resp) > maxUDPAnswer {
			t.Fatalf("answer of %d bytes", len(resp))
		}
		if n := len(rec.all()); n != 1 {
			t.Fatalf("answer with %d records, want 1", n)
		}
		m := parseAnswer(t, resp)
		if !m.Response || m.ID != uint16(msg[0])<<8|uint16(msg[1]) {
			t.Fatalf("header %+v does not answer id %x", m.Header, msg[:2])
		}
		ev := rec.all()[0].(audit.NetDNS)
		for _, a := range m.Answers {
			body, ok := a.Body.(*dnsmessage.AResource)
			if !ok {
				t.Fatalf("answer %v is not an A record", a)
			}
			name, ok := s.names.Lookup(netip.AddrFrom4(body.A))
			if !ok {
				t.Fatalf("answer %v is no synthetic address given out", a)
			}
			if _, allowed := policy.Name(name); !allowed || ev.Verdict != audit.VerdictAllow || ev.Name != name {
				t.Fatalf("answered %v for %q (allowed %v), recorded %+v", a, name, allowed, ev)
			}
			n, err := NormalizeName(strings.TrimSuffix(a.Header.Name.String(), "."))
			if err != nil || n != name {
				t.Fatalf("answer's owner %q is not %q", a.Header.Name, name)
			}
		}
	})
}
