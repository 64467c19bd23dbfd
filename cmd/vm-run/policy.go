package main

import (
	"fmt"
	"maps"
	"strings"

	"github.com/vm-run/vm-run/profiles"
)

// withPolicyFile adds a tool policy to the profile's, as an extends would:
// its deny rules after the profile's, which stay; its allow rules and
// default_action in place of the profile's. The returned profile's hash
// covers it, so the ledger names exactly the policy in force.
//
// ref is a file, or builtin:NAME for the tool policy of a built-in preset
// profile (server-memory, server-git, ...). A preset's environment
// settings come with it, where the profile does not set the same variable
// itself: server-memory's MEMORY_FILE_PATH, say.
func withPolicyFile(p *profiles.Profile, ref string, v profiles.Vars) (*profiles.Profile, error) {
	if ref == "" {
		return p, nil
	}
	name, builtin := strings.CutPrefix(ref, "builtin:")
	if !builtin {
		extra, err := profiles.LoadPolicy(ref)
		if err != nil {
			return nil, err
		}
		return p.WithPolicy(extra)
	}
	// A Loader without directories finds the built-ins only.
	preset, err := (&profiles.Loader{}).Load(name, v)
	if err != nil {
		return nil, fmt.Errorf("--policy %s: %w", ref, err)
	}
	q, err := p.WithPolicy(preset.Tools)
	if err != nil {
		return nil, err
	}
	q.Env.Set = maps.Clone(q.Env.Set)
	for k, val := range preset.Env.Set {
		if _, set := q.Env.Set[k]; !set {
			if q.Env.Set == nil {
				q.Env.Set = map[string]string{}
			}
			q.Env.Set[k] = val
		}
	}
	return q, nil
}
