package profiles

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzLoad feeds arbitrary bytes to the parser. It must not panic, and any
// profile it accepts must survive YAML() and loading back unchanged.
func FuzzLoad(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, name := range builtinNames() {
		data, err := builtinFS.ReadFile(name + ".yaml")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	l := &Loader{} // built-ins only: the fuzzer must not depend on ~/.config
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := l.Parse("fuzz.yaml", data, testVars)
		if err != nil {
			return
		}
		roundTrip(t, p, testVars)
	})
}

// FuzzLoadPolicy feeds arbitrary bytes to the --policy parser. It must not
// panic, its errors must be *Error values (file:line:col), and a policy it
// accepts must marshal and parse back to the same policy.
func FuzzLoadPolicy(f *testing.F) {
	files, err := filepath.Glob("testdata/policies/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parsePolicy("fuzz.yaml", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("parsePolicy error %T is not an *Error: %v", err, err)
			}
			return
		}
		out, err := yaml.Marshal(p)
		if err != nil {
			t.Fatalf("marshal policy: %v", err)
		}
		q, err := parsePolicy("again.yaml", out)
		if err != nil {
			t.Fatalf("marshalled policy does not parse back: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(sameRules(t, p), sameRules(t, q)) {
			t.Fatalf("marshalled policy parses back different:\n%#v\nwant\n%#v\nYAML:\n%s", q, p, out)
		}
	})
}
