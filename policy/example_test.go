package policy_test

import (
	"fmt"

	"github.com/vm-run/vm-run/policy"
	"gopkg.in/yaml.v3"
)

func ExamplePolicy_Decide() {
	const tools = `
rules:
  - id: allow-docs
    allow: ["read(docs/*)", "read(*.md)"]
  - id: block-src-writes
    deny: ["write(src/*)", "write(lib/*)"]
default_action: deny
`
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(tools), &n); err != nil {
		panic(err)
	}
	p, err := policy.DecodePolicy(&n, nil)
	if err != nil {
		panic(err)
	}
	for _, path := range []string{"docs/intro.txt", "src/main.go", "../secrets"} {
		for _, tool := range []string{"read_text_file", "write_file"} {
			d := p.Decide(policy.CallInfo{
				Kind:      policy.KindTool,
				Name:      tool,
				Arguments: map[string]any{"path": path},
				Workspace: "/home/me/project",
			})
			fmt.Printf("%s %s: %s (%s)\n", tool, path, d.Verdict, d.Rule)
		}
	}
	// Output:
	// read_text_file docs/intro.txt: allow (allow-docs)
	// write_file docs/intro.txt: deny (vm-run:default)
	// read_text_file src/main.go: deny (vm-run:default)
	// write_file src/main.go: deny (block-src-writes)
	// read_text_file ../secrets: deny (vm-run:paths)
	// write_file ../secrets: deny (vm-run:paths)
}
