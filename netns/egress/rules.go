package egress

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
)

// ParseRule reads the short form of a rule, "HOST:PORT", as in a profile's
// allow list and in --allow-net: "api.github.com:443", "*.slack.com:443",
// "10.0.0.5:5432", "host-loopback:8080". The long form, a mapping, is
// read by package profiles into a Rule and checked with [Rule.Normalize].
func ParseRule(s string) (Rule, error) {
	host, port, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || strings.Contains(port, ":") {
		return Rule{}, fmt.Errorf("want HOST:PORT (api.github.com:443), got %q", s)
	}
	p, err := ParsePort(port)
	if err != nil {
		return Rule{}, fmt.Errorf("%q: %v", s, err)
	}
	r := Rule{Host: host, Ports: []uint16{p}}
	if err := r.Normalize(); err != nil {
		return Rule{}, err
	}
	return r, nil
}

// ParsePort reads a TCP port number, 1 to 65535.
func ParsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("want a port number from 1 to 65535, got %q", s)
	}
	return uint16(n), nil
}

// Normalize checks r and puts it in its canonical form: the host in lower
// case ASCII (an internationalised name in its punycode form), without a
// trailing dot; ports sorted, without duplicates.
func (r *Rule) Normalize() error {
	if len(r.Ports) == 0 {
		return fmt.Errorf("%s: no port; a rule names at least one", r.Host)
	}
	for _, p := range r.Ports {
		if p == 0 {
			return fmt.Errorf("%s: want a port number from 1 to 65535, got 0", r.Host)
		}
	}
	slices.Sort(r.Ports)
	r.Ports = slices.Compact(r.Ports)
	h, err := NormalizeHost(r.Host)
	if err != nil {
		return err
	}
	r.Host = h
	if r.NoSNI && r.RequireSNI {
		return fmt.Errorf("%s: sni cannot be both on and off", h)
	}
	if _, err := netip.ParseAddr(h); err == nil && r.Private {
		return fmt.Errorf("%s: private applies to names; an address literal is allowed as it is", h)
	}
	return nil
}

// NormalizeHost returns a rule's host in canonical form: HostLoopback, an
// IPv4 address, or a name (possibly "*." and a name) in lower-case ASCII
// without a trailing dot.
func NormalizeHost(h string) (string, error) {
	if h == HostLoopback {
		return h, nil
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if !a.Is4() {
			return "", fmt.Errorf("%s: only IPv4 addresses can be allowed; IPv6 is off inside the sandbox", h)
		}
		return a.String(), nil
	}
	wild := strings.HasPrefix(h, "*.")
	name, err := NormalizeName(strings.TrimPrefix(h, "*."))
	if err != nil {
		return "", err
	}
	if strings.Contains(name, "*") {
		return "", fmt.Errorf("%s: a wildcard is a whole first label, \"*.example.com\"", h)
	}
	if wild {
		if !strings.Contains(name, ".") {
			return "", fmt.Errorf("%s: a wildcard over a top-level domain would allow too much; name the domain", h)
		}
		return "*." + name, nil
	}
	return name, nil
}

// NormalizeName returns a DNS name in lower-case ASCII (punycode for an
// internationalised name), without a trailing dot, or an error when it is
// not a valid host name (RFC 1123 labels; "*" is let through for the
// caller to judge).
func NormalizeName(name string) (string, error) {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return "", fmt.Errorf("empty host name")
	}
	ascii, err := idna.Lookup.ToASCII(name)
	if err != nil && !strings.Contains(name, "*") {
		return "", fmt.Errorf("%q is not a valid host name: %v", name, err)
	}
	if err != nil {
		ascii = strings.ToLower(name)
	}
	if len(ascii) > 253 {
		return "", fmt.Errorf("%q is not a valid host name: longer than 253 bytes", name)
	}
	for _, label := range strings.Split(ascii, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("%q is not a valid host name: empty or over-long label", name)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '*') {
				return "", fmt.Errorf("%q is not a valid host name: %q in a label", name, c)
			}
		}
	}
	return ascii, nil
}

// String returns the rule in the short form, with its ports joined by
// commas: "api.github.com:443", "db.internal:5432,5433".
func (r Rule) String() string {
	ports := make([]string, len(r.Ports))
	for i, p := range r.Ports {
		ports[i] = strconv.Itoa(int(p))
	}
	return r.Host + ":" + strings.Join(ports, ",")
}

// SNIChecked reports whether connections under r to port must carry a TLS
// ClientHello whose server name the rule allows: on port 443 unless the
// rule says sni: false, on every port when it says sni: true.
func (r Rule) SNIChecked(port uint16) bool { return r.RequireSNI || port == 443 && !r.NoSNI }
