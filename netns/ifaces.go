package netns

import (
	"fmt"
	"net"
)

// Interfaces lists the names of the network interfaces in the calling
// thread's network namespace.
func Interfaces() ([]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	names := make([]string, 0, len(ifs))
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	return names, nil
}
