package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/vm-run/vm-run/netns/egress"
	"github.com/vm-run/vm-run/profiles"
)

// dryRun runs vm-run --dry-run with args in a fresh workspace and returns
// its status, stdout and stderr.
func dryRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ws := t.TempDir()
	var stdout, stderr bytes.Buffer
	all := append([]string{"--dry-run", "-w", ws}, args...)
	code := run(append(all, "--", "true"), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// field returns the value of a --dry-run row, or "".
func field(out, key string) []string {
	var vals []string
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `\s{2,}(.*)$`)
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		vals = append(vals, m[1])
	}
	return vals
}

// TestAllowNetFlag: --allow-net repeats, and takes its value whole (a
// comma does not split it: the value is refused as it was written).
func TestAllowNetFlag(t *testing.T) {
	var grammar runCLI
	parser, err := kong.New(&grammar)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--allow-net", "api.github.com:443", "--allow-net=*.slack.com:443", "--allow-net", "a:1,b:2", "--", "true"}
	if _, err := parser.Parse(args); err != nil {
		t.Fatal(err)
	}
	if got, want := grammar.Run.AllowNet, []string{"api.github.com:443", "*.slack.com:443", "a:1,b:2"}; !slices.Equal(got, want) {
		t.Errorf("--allow-net = %q, want %q", got, want)
	}
}

// TestAllowNetDryRun: --allow-net turns strict (mode none) into mode
// egress with the rules given, normalised and once each, and --dry-run
// shows them, the proxy from the environment with its password hidden,
// the resolver and the limits.
func TestAllowNetDryRun(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://ann:s3cret@proxy.corp:3128")
	t.Setenv("https_proxy", "")
	code, out, errOut := dryRun(t, "--profile", "strict")
	if code != 0 {
		t.Fatalf("vm-run --dry-run = %d, stderr %q", code, errOut)
	}
	if got := field(out, "network"); !slices.Equal(got, []string{"none (empty network namespace)"}) {
		t.Fatalf("without --allow-net: network = %q, want none", got)
	}
	plainHash := field(out, "profile hash")

	code, out, errOut = dryRun(t, "--profile", "strict", "--allow-net", "API.GitHub.com:443",
		"--allow-net", "*.slack.com:443", "--allow-net", "api.github.com.:443", "--allow-net", "host-loopback:8080")
	if code != 0 {
		t.Fatalf("vm-run --dry-run --allow-net = %d, stderr %q", code, errOut)
	}
	if got := field(out, "network"); len(got) != 1 || !strings.HasPrefix(got[0], "egress:") {
		t.Errorf("network = %q, want egress", got)
	}
	wantAllow := []string{
		"api.github.com:443 (SNI checked on 443)",
		"*.slack.com:443 (subdomains of slack.com only; SNI checked on 443)",
		"host-loopback:8080 (the host's own 127.0.0.1, by the name host-loopback inside)",
	}
	if got := field(out, "  allow"); !slices.Equal(got, wantAllow) {
		t.Errorf("allow rows = %q, want %q", got, wantAllow)
	}
	for key, want := range map[string]string{
		"  upstream proxy": "none in the profile; $HTTPS_PROXY of vm-run's environment: http://ann:xxxxx@proxy.corp:3128",
		"  resolver":       "the host's (/etc/resolv.conf), asked only for allowed names",
		"  egress limits":  "connections=1024 (default) handshakes=128 (default) buffer=256KiB (default) idle_timeout=5m (default) dial_timeout=10s (default)",
	} {
		if got := field(out, key); !slices.Equal(got, []string{want}) {
			t.Errorf("%s = %q, want %q", strings.TrimSpace(key), got, want)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("--dry-run prints the proxy's password:\n%s", out)
	}
	if h := field(out, "profile hash"); slices.Equal(h, plainHash) {
		t.Errorf("profile hash %q is the same with --allow-net: the ledger could not tell the rules apart", h)
	}
}

// TestAllowNetErrors: a bad value, and a loopback profile whose port
// rules egress would drop, stop vm-run with status 125, the error and a
// hint. Each profile dry-runs without the flag.
func TestAllowNetErrors(t *testing.T) {
	dir := t.TempDir()
	ports := filepath.Join(dir, "ports.yaml")
	if err := os.WriteFile(ports, []byte("extends: standard\nnetwork:\n  mode: loopback\n  connect_tcp: [5432]\n  bind_tcp: [8080, 8081]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const hint = "vm-run: hint: --allow-net takes one HOST:PORT: a name (api.github.com:443), a domain's subdomains " +
		"('*.slack.com:443', quoted for the shell), an IPv4 address (10.0.0.5:5432) or host-loopback:PORT " +
		"for the host's own 127.0.0.1; repeat the flag for more\n"
	for _, tt := range []struct {
		name    string
		profile string
		value   string
		want    string
	}{
		{"no port", "strict", "x",
			`vm-run: error: --allow-net "x": want HOST:PORT (api.github.com:443), got "x"` + "\n" + hint},
		{"port zero", "strict", "api.github.com:0",
			`vm-run: error: --allow-net "api.github.com:0": want a port number from 1 to 65535, got "0"` + "\n" + hint},
		{"two in one", "strict", "a.com:443,b.com:443",
			`vm-run: error: --allow-net "a.com:443,b.com:443": want HOST:PORT (api.github.com:443), got "a.com:443,b.com:443"` + "\n" + hint},
		{"IPv6", "strict", "[::1]:80",
			`vm-run: error: --allow-net "[::1]:80": want HOST:PORT (api.github.com:443), got "[::1]:80"` + "\n" + hint},
		{"dev's any_port", "dev", "api.github.com:443",
			`vm-run: error: --allow-net: profile "dev" has network mode loopback with any_port; --allow-net switches it to mode egress, which replaces loopback mode and its port rules` + "\n" +
				`vm-run: hint: use a profile in mode none or egress (strict, standard), or write one with extends: dev and network: {mode: egress, any_port: false}` + "\n"},
		{"loopback ports", ports, "api.github.com:443",
			`vm-run: error: --allow-net: profile "ports" has network mode loopback with connect_tcp and bind_tcp; --allow-net switches it to mode egress, which replaces loopback mode and its port rules` + "\n" +
				`vm-run: hint: use a profile in mode none or egress (strict, standard), or write one with extends: ` + ports + ` and network: {mode: egress, connect_tcp: ["!5432"], bind_tcp: ["!8080", "!8081"]}` + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, _, errOut := dryRun(t, "--profile", tt.profile); code != 0 {
				t.Fatalf("without --allow-net: vm-run --dry-run --profile %s = %d, stderr %q", tt.profile, code, errOut)
			}
			code, out, errOut := dryRun(t, "--profile", tt.profile, "--allow-net", tt.value)
			if code != 125 || errOut != tt.want || out != "" {
				t.Errorf("vm-run --dry-run --allow-net %q = %d, stdout %q, stderr\n%s\nwant 125, no output, stderr\n%s",
					tt.value, code, out, errOut, tt.want)
			}
		})
	}
}

// TestProfilesShowEgress: profiles show describes an egress profile's
// network, an empty allowlist included, and never prints the proxy's
// password.
func TestProfilesShowEgress(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"empty.yaml": "network: egress\n",
		"full.yaml":  "network:\n  mode: egress\n  allow:\n    - {host: db.internal, ports: [5432], private: true}\n  upstream_proxy: http://ann:s3cret@proxy.corp:3128\n  resolver: 10.1.2.3:53\n  limits: {connections: 64}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		file string
		want []string
	}{
		{"empty.yaml", []string{
			"#   allow           (empty) allows no host: every name is answered NXDOMAIN, nothing is reachable\n",
			"#   upstream proxy  none in the profile: vm-run dials directly, or through $HTTPS_PROXY of its own environment if set\n",
			"\n  mode: egress\n",
		}},
		{"full.yaml", []string{
			"#   allow           db.internal:5432 (private addresses too)\n",
			"#   upstream proxy  http://ann:xxxxx@proxy.corp:3128 (HTTP CONNECT; the sandbox never sees it)\n",
			"#   resolver        10.1.2.3:53, asked only for allowed names\n",
			"#   egress limits   connections=64 handshakes=128 (default) ",
			"\n  upstream_proxy: http://ann:xxxxx@proxy.corp:3128\n",
		}},
	} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"profiles", "show", "-w", dir, filepath.Join(dir, tt.file)}, &stdout, &stderr); code != 0 {
			t.Fatalf("vm-run profiles show %s = %d, stderr %q", tt.file, code, stderr.String())
		}
		out := stdout.String()
		for _, want := range tt.want {
			if !strings.Contains(out, want) {
				t.Errorf("vm-run profiles show %s lacks %q:\n%s", tt.file, want, out)
			}
		}
		if strings.Contains(out, "s3cret") {
			t.Errorf("vm-run profiles show %s prints the proxy's password:\n%s", tt.file, out)
		}
	}
	// Mode none says nothing of egress.
	var stdout, stderr bytes.Buffer
	run([]string{"profiles", "show", "strict"}, &stdout, &stderr)
	if strings.Contains(stdout.String(), "network egress") {
		t.Errorf("vm-run profiles show strict describes egress:\n%s", stdout.String())
	}
}

// TestEgressRows: the rows name every rule, and the proxy without its
// password whether it comes from the profile or the environment.
func TestEgressRows(t *testing.T) {
	n := profiles.Network{Mode: profiles.NetworkEgress, Allow: []egress.Rule{
		{Host: "legacy.example.com", Ports: []uint16{443}, NoSNI: true},
	}}
	env := func(k string) string {
		if k == "https_proxy" {
			return "http://bob:hunter2@p:1"
		}
		return ""
	}
	rows := egressRows(n, env)
	if got, want := rows[0], [2]string{"allow", "legacy.example.com:443 (SNI not checked, sni: false)"}; got != want {
		t.Errorf("egressRows()[0] = %q, want %q", got, want)
	}
	if got, want := rows[1][1], "none in the profile; $https_proxy of vm-run's environment: http://bob:xxxxx@p:1"; got != want {
		t.Errorf("upstream proxy row = %q, want %q", got, want)
	}
	n.UpstreamProxy = "http://ann:s3cret@proxy.corp:3128"
	for _, r := range egressRows(n, env) {
		if strings.Contains(r[1], "s3cret") || strings.Contains(r[1], "hunter2") {
			t.Errorf("egressRows() prints a password: %q", r)
		}
	}
}

// TestTunCheck: the doctor's row is ok where the TUN device opens, and
// names the fix where it is missing or refused.
func TestTunCheck(t *testing.T) {
	if _, err := os.Stat(tunDevice); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: %v (CI must have the TUN device)", tunDevice, err)
		}
		t.Skipf("needs %s: %v", tunDevice, err)
	}
	if ok, detail := tunCheck(tunDevice); !ok {
		t.Errorf("tunCheck(%s) = false, %q; the device is there", tunDevice, detail)
	}
	missing := filepath.Join(t.TempDir(), "tun")
	ok, detail := tunCheck(missing)
	if ok || !strings.Contains(detail, "modprobe tun") || !strings.Contains(detail, "--device /dev/net/tun") {
		t.Errorf("tunCheck(missing) = %v, %q; want false with the modprobe and --device hints", ok, detail)
	}
	if os.Getuid() == 0 {
		return // root opens a mode-0 file: the refusal needs another uid
	}
	refused := filepath.Join(t.TempDir(), "tun")
	if err := os.WriteFile(refused, nil, 0); err != nil {
		t.Fatal(err)
	}
	ok, detail = tunCheck(refused)
	if ok || !strings.Contains(detail, "permission denied") || !strings.Contains(detail, "0666") {
		t.Errorf("tunCheck(mode 0) = %v, %q; want false, permission denied, the mode hint", ok, detail)
	}
}
