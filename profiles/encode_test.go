package profiles

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// roundTrip checks that p.YAML() loads back into p (but for Source) and
// returns the YAML.
func roundTrip(t testing.TB, p *Profile, v Vars) []byte {
	t.Helper()
	out, err := p.YAML()
	if err != nil {
		t.Fatalf("YAML() of %q = %v", p.Name, err)
	}
	q, err := (&Loader{}).Parse("roundtrip.yaml", out, v)
	if err != nil {
		t.Fatalf("YAML() of %q does not load back: %v\n%s", p.Name, err, out)
	}
	a, b := *p, *q
	a.Source, b.Source = nil, nil
	// The proxy's password is written xxxxx, and loads back so.
	a.Network.UpstreamProxy = RedactURL(a.Network.UpstreamProxy)
	a.Tools, b.Tools = sameRules(t, a.Tools), sameRules(t, b.Tools)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("YAML() of %q loads back different:\n%#v\nwant\n%#v\nYAML:\n%s", p.Name, b, a, out)
	}
	if p.Hash() != q.Hash() {
		t.Fatalf("YAML() of %q loads back with hash %s, want %s", p.Name, q.Hash(), p.Hash())
	}
	return out
}

func TestYAMLRoundTrip(t *testing.T) {
	for _, name := range builtinNames() {
		p, err := (&Loader{}).Load(name, testVars)
		if err != nil {
			t.Fatalf("Load(%q) = %v", name, err)
		}
		roundTrip(t, p, testVars)
		// The output is expanded: it loads the same with other Vars.
		roundTrip(t, p, Vars{Workspace: "/elsewhere", Home: "/root", TmpDir: "/t"})
	}
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p, err := (&Loader{}).Parse(f, data, testVars)
		if err != nil {
			continue // testdata also seeds the fuzzer with broken files
		}
		roundTrip(t, p, testVars)
	}
}

// TestYAMLTrickyStrings feeds values that YAML would read as something else
// if written plain.
func TestYAMLTrickyStrings(t *testing.T) {
	p := &Profile{
		Name:        "tricky",
		Description: "a: b # c ${HOME} $5",
		Filesystem: Filesystem{
			Read: []string{"/with space", "/a$b", "/x?", "/-", "/\u00e9t\u00e9", "/line\nbreak"},
		},
		Network: Network{Mode: NetworkNone},
		Env: Env{
			Pass: []string{"A"},
			Set: map[string]string{
				"NUM": "8080", "BOOL": "true", "NULL": "~", "EMPTY": "", "DOLLAR": "$HOME",
				"BANG": "!x", "COLON": "a: b", "LIST": "[1]", "LEAD": " x", "TAB": "\t",
				"LONG": strings.Repeat("word ", 40),
			},
		},
		Tools: denyAll(),
		Audit: Audit{Redact: []string{"*", "&a", "- x"}},
	}
	out := roundTrip(t, p, testVars)
	if !strings.Contains(string(out), `"$$HOME"`) && !strings.Contains(string(out), `$$HOME`) {
		t.Errorf("YAML() does not escape $ as $$:\n%s", out)
	}
}

func TestYAMLFormatsNumbers(t *testing.T) {
	p := &Profile{
		Name:    "n",
		Network: Network{Mode: NetworkLoopback, BindTCP: []uint16{80, 443}},
		Limits: Limits{
			NoFile: u64(4096), NProc: u64(Unlimited), AS: u64(3 << 30),
			FSize: u64(1000), CPUTime: u64(90), Core: u64(0), TmpSize: 256 << 20,
			Pids: u64(512), Memory: share("25%"), CPU: share("1.5"),
		},
		Tools: denyAll(),
	}
	out := string(roundTrip(t, p, testVars))
	want := `name: n
network:
  mode: loopback
  bind_tcp: [80, 443]
limits:
  pids: 512
  memory: 25%
  cpu: "1.5"
  nofile: 4096
  nproc: unlimited
  as: 3GiB
  fsize: 1000
  cpu_time: 90
  core: 0
  tmp_size: 256MiB
tools:
  default_action: deny
`
	if out != want {
		t.Errorf("YAML() =\n%s\nwant\n%s", out, want)
	}
}

func TestHash(t *testing.T) {
	load := func(name string) *Profile {
		t.Helper()
		p, err := (&Loader{}).Load(name, testVars)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b := load("strict"), load("strict")
	b.Source = []string{"/somewhere/else.yaml"}
	if a.Hash() != b.Hash() {
		t.Errorf("Hash() depends on Source")
	}
	if h := a.Hash(); !strings.HasPrefix(h, "sha256:") || len(h) != len("sha256:")+64 {
		t.Errorf("Hash() = %q, want sha256: and 64 hex digits", h)
	}
	b.Filesystem.Read = append(b.Filesystem.Read, "/srv")
	if a.Hash() == b.Hash() {
		t.Errorf("Hash() unchanged by an added read path")
	}
	if load("strict").Hash() == load("standard").Hash() {
		t.Errorf("strict and standard hash the same")
	}
}
