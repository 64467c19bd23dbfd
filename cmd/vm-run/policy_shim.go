package main

import (
	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/proxy"
)

// toolPolicy is the profile's tool policy with --policy's added.
// TODO(lead): replaced when profiles gains its tools section.
func toolPolicy(p *profiles.Profile, file string) (*proxy.Policy, error) {
	return proxy.Strict(), nil
}
