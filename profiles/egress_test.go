package profiles

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vm-run/vm-run/netns/egress"
)

func rule(host string, ports ...uint16) egress.Rule { return egress.Rule{Host: host, Ports: ports} }

// loadFiles writes files to a temp dir and loads D/p.yaml from it, with D
// replaced by the dir in error messages.
func loadFiles(t *testing.T, files map[string]string) (*Profile, string, error) {
	t.Helper()
	dir := writeFiles(t, files)
	p, err := (&Loader{Dirs: []string{filepath.Join(dir, "user")}}).Load(filepath.Join(dir, "p.yaml"), testVars)
	if err != nil {
		return nil, strings.ReplaceAll(err.Error(), dir+"/", "D/"), err
	}
	return p, "", nil
}

// TestEgressLoad reads both forms of a rule, normalised and without
// duplicates, and the other keys of mode egress.
func TestEgressLoad(t *testing.T) {
	p, msg, err := loadFiles(t, map[string]string{"p.yaml": `network:
  mode: egress
  allow:
    - API.GitHub.com.:443
    - "*.slack.com:443"
    - 10.0.0.5:5432
    - host-loopback:8080
    - api.github.com:443
    - host: db.internal
      ports: [5433, 5432, 5433]
      private: true
    - host: legacy.example.com
      ports: [443]
      sni: false
    - host: api.github.com
      ports: [443]
      sni: true
  upstream_proxy: http://ann:pa$ss@proxy.corp:3128
  resolver: "[2001:db8::0053]:53"
  limits:
    connections: 64
    buffer: 1MiB
    idle_timeout: 2m
`})
	if err != nil {
		t.Fatalf("Load(p.yaml) = %s", msg)
	}
	two := func(a, b uint64) (*uint64, *uint64) { return &a, &b }
	conns, buf := two(64, 1<<20)
	want := Network{
		Mode: NetworkEgress,
		Allow: []egress.Rule{
			rule("api.github.com", 443), // case, trailing dot; the repeats dropped
			rule("*.slack.com", 443),
			rule("10.0.0.5", 5432),
			rule("host-loopback", 8080),
			{Host: "db.internal", Ports: []uint16{5432, 5433}, Private: true},
			{Host: "legacy.example.com", Ports: []uint16{443}, NoSNI: true},
			// sni: true is a rule of its own: the name checked on every port.
			{Host: "api.github.com", Ports: []uint16{443}, RequireSNI: true},
		},
		UpstreamProxy: "http://ann:pa$ss@proxy.corp:3128", // not expanded
		Resolver:      "[2001:db8::53]:53",
		Limits:        &NetLimits{Connections: conns, Buffer: buf, IdleTimeout: u64(120)},
	}
	if !reflect.DeepEqual(p.Network, want) {
		t.Errorf("network =\n%#v\nwant\n%#v", p.Network, want)
	}
	gotLimits := p.Network.EgressLimits()
	wantLimits := egress.Limits{Connections: 64, Buffer: 1 << 20, IdleTimeout: 2 * time.Minute}
	if gotLimits != wantLimits {
		t.Errorf("EgressLimits() = %+v, want %+v", gotLimits, wantLimits)
	}
	if got, want := p.Network.DescribeLimits(),
		"connections=64 handshakes=128 (default) buffer=1MiB idle_timeout=2m dial_timeout=10s (default)"; got != want {
		t.Errorf("DescribeLimits() = %q, want %q", got, want)
	}
}

// TestEgressShortForm: "network: egress" is mode egress with nothing
// allowed, which is valid, and takes every default.
func TestEgressShortForm(t *testing.T) {
	p, msg, err := loadFiles(t, map[string]string{"p.yaml": "network: egress\n"})
	if err != nil {
		t.Fatalf("Load(p.yaml) = %s", msg)
	}
	if p.Network.Mode != NetworkEgress || len(p.Network.Allow) != 0 || p.Network.Limits != nil {
		t.Errorf("network = %+v, want mode egress and nothing else", p.Network)
	}
	if got := p.Network.EgressLimits().WithDefaults(); got != (egress.Limits{}).WithDefaults() {
		t.Errorf("EgressLimits().WithDefaults() = %+v, want the defaults", got)
	}
}

// TestEgressErrors: every mistake in the egress keys is reported at its
// file, line and column, with the path to it.
func TestEgressErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"bad short rule", map[string]string{"p.yaml": "network:\n  mode: egress\n  allow:\n    - a.com:443\n    - a.com\n"},
			`D/p.yaml:5:7: network.allow[1]: want HOST:PORT (api.github.com:443), got "a.com"`},
		{"port zero", map[string]string{"p.yaml": "network:\n  mode: egress\n  allow: [\"a.com:0\"]\n"},
			`D/p.yaml:3:11: network.allow[0]: "a.com:0": want a port number from 1 to 65535, got "0"`},
		{"bad host name", map[string]string{"p.yaml": "network:\n  mode: egress\n  allow:\n    - exa mple.com:443\n"},
			`D/p.yaml:4:7: network.allow[0]: "exa mple.com" is not a valid host name: idna: disallowed rune U+0020`},
		{"wildcard over a TLD", map[string]string{"p.yaml": "network:\n  mode: egress\n  allow: [\"*.com:443\"]\n"},
			`D/p.yaml:3:11: network.allow[0]: *.com: a wildcard over a top-level domain would allow too much; name the domain`},
		{"IPv6 literal", map[string]string{"p.yaml": "network:\n  mode: egress\n  allow:\n    - host: \"::1\"\n      ports: [80]\n"},
			`D/p.yaml:4:13: network.allow[0].host: ::1: only IPv4 addresses can be allowed; IPv6 is off inside the sandbox`},
		{"number for a rule", map[string]string{"p.yaml": "network:\n  mode: egress\n  allow: [443]\n"},
			`D/p.yaml:3:11: network.allow[0]: want HOST:PORT (api.github.com:443) or a mapping with host and ports, got "443"`},
		{"null rule", map[string]string{"p.yaml": "network:\n  mode: egress\n  allow:\n    -\n"},
			`D/p.yaml:4:6: network.allow[0]: want HOST:PORT (api.github.com:443) or a mapping with host and ports, got null`},
		{"unknown key in a rule", map[string]string{"p.yaml": "network:\n  mode: egress\n  allow:\n    - host: a.com\n      port: 443\n"},
			`D/p.yaml:5:7: network.allow[0]: unknown key "port"; known keys: host, ports, private, sni`},
		{"rule without host", map[string]string{"p.yaml": "network:\n  mode: egress\n  allow:\n    - ports: [443]\n"},
			`D/p.yaml:4:7: network.allow[0]: a rule needs host: NAME`},
		{"rule without ports", map[string]string{"p.yaml": "network:\n  mode: egress\n  allow:\n    - host: a.com\n"},
			`D/p.yaml:4:7: network.allow[0]: a rule needs ports: [PORT, ...], at least one`},
		{"rule with empty ports", map[string]string{"p.yaml": "network:\n  mode: egress\n  allow:\n    - {host: a.com, ports: []}\n"},
			`D/p.yaml:4:28: network.allow[0]: a rule needs ports: [PORT, ...], at least one`},
		{"rule with port zero", map[string]string{"p.yaml": "network:\n  mode: egress\n  allow:\n    - {host: a.com, ports: [80, 0]}\n"},
			`D/p.yaml:4:33: network.allow[0].ports[1]: want a port number from 1 to 65535, got 0`},
		{"rule with a port too large", map[string]string{"p.yaml": "network:\n  mode: egress\n  allow:\n    - {host: a.com, ports: [65536]}\n"},
			`D/p.yaml:4:29: network.allow[0].ports[0]: want a port number from 1 to 65535, got "65536"`},
		{"sni not a bool", map[string]string{"p.yaml": "network:\n  mode: egress\n  allow:\n    - {host: a.com, ports: [443], sni: no}\n"},
			`D/p.yaml:4:40: network.allow[0].sni: want true or false, got "no"`},
		{"sni null", map[string]string{"p.yaml": "network:\n  mode: egress\n  allow:\n    - {host: a.com, ports: [443], sni: ~}\n"},
			`D/p.yaml:4:40: network.allow[0].sni: want true or false, got null`},
		{"private address literal", map[string]string{"p.yaml": "network:\n  mode: egress\n  allow:\n    - {host: 10.0.0.1, ports: [5432], private: true}\n"},
			`D/p.yaml:4:14: network.allow[0].host: 10.0.0.1: private applies to names; an address literal is allowed as it is`},
		{"removal entry", map[string]string{"p.yaml": "network:\n  mode: egress\n  allow: [\"!a.com:443\"]\n"},
			`D/p.yaml:3:11: network.allow[0]: "!a.com:443": rules are not removed one by one; "allow: ~" drops the inherited list, then list the rules to keep`},
		{"duplicate key in a rule", map[string]string{"p.yaml": "network:\n  mode: egress\n  allow:\n    - {host: a.com, host: b.com, ports: [1]}\n"},
			`D/p.yaml:4:21: network.allow[0]: duplicate key "host" (first at line 4)`},
		{"allow without egress", map[string]string{"p.yaml": "network:\n  mode: loopback\n  allow: [a.com:443]\n"},
			`D/p.yaml:3:3: network.allow: needs network.mode egress; the mode is loopback`},
		{"proxy without egress", map[string]string{"p.yaml": "network:\n  upstream_proxy: http://p:3128\n"},
			`D/p.yaml:2:3: network.upstream_proxy: needs network.mode egress; the mode is none`},
		{"resolver without egress", map[string]string{"p.yaml": "network:\n  mode: none\n  resolver: 10.0.0.1:53\n"},
			`D/p.yaml:3:3: network.resolver: needs network.mode egress; the mode is none`},
		{"limits without egress", map[string]string{"p.yaml": "network:\n  limits: {connections: 5}\n"},
			`D/p.yaml:2:3: network.limits: needs network.mode egress; the mode is none`},
		{"loopback ports with egress", map[string]string{"p.yaml": "network:\n  mode: egress\n  connect_tcp: [80]\n"},
			`D/p.yaml:3:3: network.connect_tcp: ports need network.mode loopback; the mode is egress`},
		{"any_port with egress", map[string]string{"p.yaml": "network:\n  mode: egress\n  any_port: true\n"},
			`D/p.yaml:3:3: network.any_port: needs network.mode loopback; the mode is egress`},
		{"https proxy", map[string]string{"p.yaml": "network:\n  mode: egress\n  upstream_proxy: https://ann:secret@p.corp:3128\n"},
			`D/p.yaml:3:19: network.upstream_proxy: "https://ann:xxxxx@p.corp:3128": want an http:// proxy (HTTP CONNECT); scheme "https" is not supported`},
		{"proxy without port", map[string]string{"p.yaml": "network:\n  mode: egress\n  upstream_proxy: http://ann:secret@p.corp\n"},
			`D/p.yaml:3:19: network.upstream_proxy: "http://ann:xxxxx@p.corp": no port; write http://p.corp:3128, say`},
		{"proxy with a path", map[string]string{"p.yaml": "network:\n  mode: egress\n  upstream_proxy: http://p.corp:3128/x?y\n"},
			`D/p.yaml:3:19: network.upstream_proxy: "http://p.corp:3128/x?y": a proxy URL is http://HOST:PORT, without path, query or fragment`},
		{"proxy not a URL", map[string]string{"p.yaml": "network:\n  mode: egress\n  upstream_proxy: \"http://ann:se%zz@p:1\"\n"},
			`D/p.yaml:3:19: network.upstream_proxy: want http://HOST:PORT (http://proxy.corp:3128), got "http://xxxxx@p:1"`},
		{"proxy host only", map[string]string{"p.yaml": "network:\n  mode: egress\n  upstream_proxy: proxy.corp:3128\n"},
			`D/p.yaml:3:19: network.upstream_proxy: want http://HOST:PORT (http://proxy.corp:3128), got "proxy.corp:3128"`},
		{"proxy without scheme", map[string]string{"p.yaml": "network:\n  mode: egress\n  upstream_proxy: ann:secret@p:3128\n"},
			`D/p.yaml:3:19: network.upstream_proxy: want http://HOST:PORT (http://proxy.corp:3128), got "xxxxx@p:3128"`},
		{"proxy port zero", map[string]string{"p.yaml": "network:\n  mode: egress\n  upstream_proxy: http://p:0\n"},
			`D/p.yaml:3:19: network.upstream_proxy: "http://p:0": want a port number from 1 to 65535, got "0"`},
		{"resolver without port", map[string]string{"p.yaml": "network:\n  mode: egress\n  resolver: 10.1.2.3\n"},
			`D/p.yaml:3:13: network.resolver: want IP:PORT (10.1.2.3:53, [2001:db8::53]:53), got "10.1.2.3"`},
		{"resolver by name", map[string]string{"p.yaml": "network:\n  mode: egress\n  resolver: dns.corp:53\n"},
			`D/p.yaml:3:13: network.resolver: want IP:PORT (10.1.2.3:53, [2001:db8::53]:53), got "dns.corp:53"`},
		{"resolver unspecified", map[string]string{"p.yaml": "network:\n  mode: egress\n  resolver: 0.0.0.0:53\n"},
			`D/p.yaml:3:13: network.resolver: "0.0.0.0:53" names no server; want IP:PORT such as 10.1.2.3:53`},
		{"connections zero", map[string]string{"p.yaml": "network:\n  mode: egress\n  limits:\n    connections: 0\n"},
			`D/p.yaml:4:18: network.limits.connections: want 1 to 65536, got 0`},
		{"handshakes unlimited", map[string]string{"p.yaml": "network:\n  mode: egress\n  limits:\n    handshakes: unlimited\n"},
			`D/p.yaml:4:17: network.limits.handshakes: cannot be unlimited: each bound keeps a hostile sandbox from exhausting vm-run; leave it out for the default`},
		{"buffer too small", map[string]string{"p.yaml": "network:\n  mode: egress\n  limits:\n    buffer: 1000\n"},
			`D/p.yaml:4:13: network.limits.buffer: want 4KiB to 4MiB, got 1000`},
		{"buffer too large", map[string]string{"p.yaml": "network:\n  mode: egress\n  limits:\n    buffer: 1G\n"},
			`D/p.yaml:4:13: network.limits.buffer: want 4KiB to 4MiB, got 1GiB`},
		{"buffer in MB", map[string]string{"p.yaml": "network:\n  mode: egress\n  limits:\n    buffer: 1MB\n"},
			`D/p.yaml:4:13: network.limits.buffer: size "1MB" is ambiguous; write 1MiB (powers of 1024) or a number of bytes`},
		{"idle_timeout zero", map[string]string{"p.yaml": "network:\n  mode: egress\n  limits:\n    idle_timeout: 0s\n"},
			`D/p.yaml:4:19: network.limits.idle_timeout: want 1s to 9223372036s, got 0s`},
		{"dial_timeout in days", map[string]string{"p.yaml": "network:\n  mode: egress\n  limits:\n    dial_timeout: 1d\n"},
			`D/p.yaml:4:19: network.limits.dial_timeout: want a time such as 30, "90s", "10m" or "unlimited", got "1d"`},
		{"unknown limit", map[string]string{"p.yaml": "network:\n  mode: egress\n  limits:\n    streams: 4\n"},
			`D/p.yaml:4:5: network.limits: unknown key "streams"; known keys: buffer, connections, dial_timeout, handshakes, idle_timeout`},
		{"allow null with nothing inherited", map[string]string{"p.yaml": "network:\n  mode: egress\n  allow: ~\n"},
			`D/p.yaml:3:10: network.allow: null removes an inherited value, but none is inherited`},
		{"bad rule in an overridden base", map[string]string{
			"p.yaml":    "extends: base.yaml\nnetwork:\n  allow: ~\n",
			"base.yaml": "network:\n  mode: egress\n  allow: [\"a.com:https\"]\n",
		}, `D/base.yaml:3:11: network.allow[0]: "a.com:https": want a port number from 1 to 65535, got "https"`},
		{"inherited allow under another mode", map[string]string{
			"p.yaml":    "extends: base.yaml\nnetwork: none\n",
			"base.yaml": "network:\n  mode: egress\n  allow: [a.com:443]\n",
		}, `D/base.yaml:3:3: network.allow: needs network.mode egress; the mode is none`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, msg, err := loadFiles(t, tt.files)
			if err == nil {
				t.Fatalf("Load(p.yaml) = nil error, want %q", tt.want)
			}
			if msg != tt.want {
				t.Errorf("Load(p.yaml) error:\n got %s\nwant %s", msg, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("Load(p.yaml) error %T is not an *Error", err)
			}
			if strings.Contains(msg, "secret") {
				t.Errorf("Load(p.yaml) error prints the proxy's password: %s", msg)
			}
		})
	}
}

// TestEgressExtends: over extends:, allow accumulates (identical rules
// once), scalars and limits override, and null removes what a child does
// not want, down to another mode.
func TestEgressExtends(t *testing.T) {
	base := `network:
  mode: egress
  allow:
    - api.github.com:443
    - host: db.internal
      ports: [5432]
      private: true
  upstream_proxy: http://proxy.corp:3128
  resolver: 10.1.2.3:53
  limits:
    connections: 64
    handshakes: 8
`
	p, msg, err := loadFiles(t, map[string]string{
		"base.yaml": base,
		"p.yaml": `extends: base.yaml
network:
  allow:
    - "*.slack.com:443"
    - api.github.com:443
  upstream_proxy: http://other.corp:8080
  limits:
    connections: 128
    handshakes: ~
`,
	})
	if err != nil {
		t.Fatalf("Load(p.yaml) = %s", msg)
	}
	want := Network{
		Mode: NetworkEgress,
		Allow: []egress.Rule{
			rule("api.github.com", 443),
			{Host: "db.internal", Ports: []uint16{5432}, Private: true},
			rule("*.slack.com", 443),
		},
		UpstreamProxy: "http://other.corp:8080",
		Resolver:      "10.1.2.3:53",
		Limits:        &NetLimits{Connections: u64(128)},
	}
	if !reflect.DeepEqual(p.Network, want) {
		t.Errorf("network =\n%#v\nwant\n%#v", p.Network, want)
	}

	// The same base with the child going back to mode none: without the
	// nulls it is refused (TestEgressErrors), with them it loads.
	p, msg, err = loadFiles(t, map[string]string{
		"base.yaml": base,
		"p.yaml":    "extends: base.yaml\nnetwork:\n  mode: none\n  allow: ~\n  upstream_proxy: ~\n  resolver: ~\n  limits: ~\n",
	})
	if err != nil {
		t.Fatalf("Load(p.yaml) back to mode none = %s", msg)
	}
	if !reflect.DeepEqual(p.Network, Network{Mode: NetworkNone}) {
		t.Errorf("network = %#v, want mode none and nothing else", p.Network)
	}
}

// TestEgressYAML: YAML() writes rules in their shortest form and loads
// back; the proxy's password is written xxxxx, and Hash does not depend
// on it (but does on everything else).
func TestEgressYAML(t *testing.T) {
	p, err := (&Loader{}).Load("testdata/egress.yaml", testVars)
	if err != nil {
		t.Fatal(err)
	}
	out := string(roundTrip(t, p, testVars))
	for _, want := range []string{
		"\n    - api.github.com:443\n",
		"\n    - '*.slack.com:443'\n",
		"\n    - host: db.internal\n      ports: [5432, 5433]\n      private: true\n",
		"\n    - host: legacy.example.com\n      ports: [443]\n      sni: false\n",
		"\n    - host: xn--bcher-kva.example\n      ports: [443]\n      sni: true\n",
		"\n  upstream_proxy: http://ann:xxxxx@proxy.corp:3128\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("YAML() lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("YAML() prints the proxy's password:\n%s", out)
	}
	q := *p
	q.Network.UpstreamProxy = "http://ann:other@proxy.corp:3128"
	if p.Hash() != q.Hash() {
		t.Errorf("Hash() depends on the proxy's password")
	}
	q.Network.UpstreamProxy = "http://bob:s3cret@proxy.corp:3128"
	if p.Hash() == q.Hash() {
		t.Errorf("Hash() is the same for another proxy user")
	}
	q = *p
	q.Network.Allow = q.Network.Allow[1:]
	if p.Hash() == q.Hash() {
		t.Errorf("Hash() is the same without a rule")
	}
}

// TestEgressKeepsOldHashes: a profile that does not use mode egress hashes
// as before the egress keys existed (they are all left out of the JSON).
func TestEgressKeepsOldHashes(t *testing.T) {
	for _, n := range []Network{{Mode: NetworkNone}, {Mode: NetworkEgress, Limits: nil}} {
		b, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"mode":"` + n.Mode + `"}`; string(b) != want {
			t.Errorf("network as JSON = %s, want %s", b, want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"http://proxy.corp:3128", "http://proxy.corp:3128"},
		{"http://ann@proxy.corp:3128", "http://ann@proxy.corp:3128"},
		{"http://ann:s3cret@proxy.corp:3128", "http://ann:xxxxx@proxy.corp:3128"},
		{"http://ann:s3@cret@proxy.corp:3128", "http://ann:xxxxx@proxy.corp:3128"},
		{"http://ann:se%zz@p:1", "http://xxxxx@p:1"}, // does not parse
		{"ann:s3cret@p:1", "xxxxx@p:1"},
		{"http://p:1/a@b", "http://xxxxx@b"}, // no userinfo: masked anyway
		{"", ""},
	} {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestWithAllow: --allow-net's rules switch none and portless loopback to
// egress, add to what the profile allows, and never touch the original; a
// loopback profile with port rules is refused.
func TestWithAllow(t *testing.T) {
	github := rule("API.github.com", 443)
	for _, tt := range []struct {
		name string
		net  Network
		want []egress.Rule
		err  error
	}{
		{"from none", Network{Mode: NetworkNone}, []egress.Rule{rule("api.github.com", 443)}, nil},
		{"from loopback without ports", Network{Mode: NetworkLoopback}, []egress.Rule{rule("api.github.com", 443)}, nil},
		{"adds to egress", Network{Mode: NetworkEgress, Allow: []egress.Rule{rule("a.com", 80), rule("api.github.com", 443)}},
			[]egress.Rule{rule("a.com", 80), rule("api.github.com", 443)}, nil},
		{"loopback with any_port", Network{Mode: NetworkLoopback, AnyPort: true}, nil, ErrLoopbackPorts},
		{"loopback with connect_tcp", Network{Mode: NetworkLoopback, ConnectTCP: []uint16{5432}}, nil, ErrLoopbackPorts},
		{"loopback with bind_tcp", Network{Mode: NetworkLoopback, BindTCP: []uint16{8080}}, nil, ErrLoopbackPorts},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &Profile{Name: "p", Network: tt.net}
			before := p.Hash()
			q, err := p.WithAllow(github, github)
			if p.Hash() != before {
				t.Errorf("WithAllow changed the profile it was given")
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("WithAllow() error = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if q.Network.Mode != NetworkEgress || !reflect.DeepEqual(q.Network.Allow, tt.want) {
				t.Errorf("WithAllow() network = %+v, want mode egress, allow %v", q.Network, tt.want)
			}
		})
	}
	if _, err := (&Profile{}).WithAllow(rule("a.com")); err == nil {
		t.Errorf("WithAllow(a rule without ports) = nil error")
	}
}

func TestDescribeRule(t *testing.T) {
	for _, tt := range []struct {
		r    egress.Rule
		want string
	}{
		{rule("api.github.com", 443), "api.github.com:443 (SNI checked on 443)"},
		{rule("*.slack.com", 443), "*.slack.com:443 (subdomains of slack.com only; SNI checked on 443)"},
		{rule("host-loopback", 8080), "host-loopback:8080 (the host's own 127.0.0.1, by the name host-loopback inside)"},
		{rule("10.0.0.5", 5432), "10.0.0.5:5432 (an address literal)"},
		{egress.Rule{Host: "db.internal", Ports: []uint16{5432, 5433}, Private: true}, "db.internal:5432,5433 (private addresses too)"},
		{egress.Rule{Host: "old.example", Ports: []uint16{80, 443}, NoSNI: true}, "old.example:80,443 (SNI not checked, sni: false)"},
		{rule("example.com", 80), "example.com:80"},
	} {
		if got := DescribeRule(tt.r); got != tt.want {
			t.Errorf("DescribeRule(%v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}
