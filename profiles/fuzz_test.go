package profiles

import (
	"os"
	"path/filepath"
	"testing"
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
