package main

import (
	"github.com/vm-run/vm-run/profiles"
)

// withPolicyFile adds the tool policy of a --policy file to the profile's, as
// an extends would: its rules after the profile's, its default_action, if
// set, in place of the profile's. The returned profile's hash covers it, so
// the ledger names exactly the policy in force.
func withPolicyFile(p *profiles.Profile, file string) (*profiles.Profile, error) {
	if file == "" {
		return p, nil
	}
	extra, err := profiles.LoadPolicy(file)
	if err != nil {
		return nil, err
	}
	return p.WithPolicy(extra)
}
