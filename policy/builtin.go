package policy

import "slices"

// fsPathArgs are the argument names @modelcontextprotocol/server-filesystem
// uses for paths: "path" (most tools), "paths" (read_multiple_files),
// "source" and "destination" (move_file).
var fsPathArgs = []string{"path", "paths", "source", "destination"}

// builtinClasses are the classes every policy starts with. They list the
// tools of @modelcontextprotocol/server-filesystem (as of its 2026.8.31
// release, checked against its tools/list): every tool it annotates
// readOnlyHint: true is in "read", every other one in "write".
var builtinClasses = map[string]Class{
	"read": {
		Tools: []string{
			"read_file", "read_text_file", "read_media_file", "read_multiple_files",
			"list_directory", "list_directory_with_sizes", "directory_tree",
			"search_files", "get_file_info", "list_allowed_directories",
		},
		PathArgs: fsPathArgs,
		ReadOnly: true,
	},
	"write": {
		Tools:    []string{"write_file", "edit_file", "create_directory", "move_file"},
		PathArgs: fsPathArgs,
	},
}

// BuiltinClasses returns a copy of the classes every policy starts with.
func BuiltinClasses() map[string]Class {
	out := make(map[string]Class, len(builtinClasses))
	for k, v := range builtinClasses {
		v.Tools = slices.Clone(v.Tools)
		v.PathArgs = slices.Clone(v.PathArgs)
		out[k] = v
	}
	return out
}

// Strict returns the policy of the built-in strict profiles: default deny;
// the "read" class allowed anywhere in the workspace; resources and prompts
// allowed; writes, every other tool, sampling and elicitation denied.
//
// Why: an agent working in a regulated workspace needs to look before it
// acts, and reading inside the workspace discloses nothing the sandbox does
// not already expose to the server. Writes change the user's files and
// unknown tools do unknown things, so they must be named in a profile.
// Resources and prompts are reads the user or client initiates. Sampling
// spends the client's model on the server's behalf and elicitation asks the
// user for data: both are channels a hostile server would use, so they are
// off until a profile allows them.
func Strict() *Policy {
	p := &Policy{
		DefaultAction: Deny,
		Defaults:      map[Kind]Action{KindResource: Allow, KindPrompt: Allow},
		Rules: []Rule{{
			ID:     "strict-read",
			Reason: "the strict profile allows reading only",
			Allow:  []Matcher{{Spec: "read"}},
		}},
	}
	mustCompile(p)
	return p
}

// Permissive returns the policy of the built-in permissive profiles: every
// call is allowed, except that path arguments must still name places inside
// the workspace (step 1 of [Policy.Decide] always applies).
func Permissive() *Policy {
	p := &Policy{DefaultAction: Allow}
	mustCompile(p)
	return p
}

func mustCompile(p *Policy) {
	if err := p.Compile(); err != nil {
		panic("proxy: built-in policy: " + err.Error())
	}
}

// Merge returns the policy of a profile that extends base with over: rules
// of base first, then those of over (an ID in both is an error at Compile);
// classes merged; over's defaults win where set.
func Merge(base, over *Policy) *Policy {
	out := &Policy{}
	for _, p := range []*Policy{base, over} {
		if p == nil {
			continue
		}
		if p.DefaultAction != "" {
			out.DefaultAction = p.DefaultAction
		}
		for k, a := range p.Defaults {
			if out.Defaults == nil {
				out.Defaults = map[Kind]Action{}
			}
			out.Defaults[k] = a
		}
		out.Classes = mergeClasses(out.Classes, p.Classes)
		out.Rules = append(out.Rules, p.Rules...)
	}
	if len(out.Classes) == 0 {
		out.Classes = nil
	}
	return out
}

// mergeClasses returns the built-in classes extended by the policy's: tools
// and path arguments are added, and read_only, once set, stays set.
func mergeClasses(base, add map[string]Class) map[string]Class {
	out := make(map[string]Class, len(base)+len(add))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range add {
		b := out[k]
		out[k] = Class{
			Tools:    appendNew(slices.Clone(b.Tools), v.Tools...),
			PathArgs: appendNew(slices.Clone(b.PathArgs), v.PathArgs...),
			ReadOnly: b.ReadOnly || v.ReadOnly,
		}
	}
	return out
}

func appendNew(s []string, add ...string) []string {
	for _, a := range add {
		if !slices.Contains(s, a) {
			s = append(s, a)
		}
	}
	return s
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
