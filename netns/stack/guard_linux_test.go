package stack

import "testing"

func TestSubnetBroadcast(t *testing.T) {
	if got := subnetBroadcast.String(); got != "198.19.255.255" {
		t.Errorf("subnetBroadcast = %s, want 198.19.255.255", got)
	}
}
