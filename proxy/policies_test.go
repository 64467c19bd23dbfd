package proxy

import (
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/vm-run/vm-run/policy"
)

// testWS is the workspace of the proxy's tests: a directory that does not
// exist, so that paths are judged as written.
const testWS = "/ws"

// loadPolicy decodes ../policy/testdata/policies/NAME.yaml, the policies
// package policy tests with.
func loadPolicy(t testing.TB, name string) *policy.Policy {
	t.Helper()
	file := filepath.Join("..", "policy", "testdata", "policies", name+".yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parsePolicy(data, file)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// parsePolicy decodes a YAML document as a tools: section.
func parsePolicy(data []byte, file string) (*policy.Policy, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		return nil, err
	}
	return policy.DecodePolicy(&n, nil)
}
