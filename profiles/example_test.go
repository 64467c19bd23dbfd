package profiles_test

import (
	"fmt"

	"github.com/vm-run/vm-run/profiles"
)

func ExampleLoader_Load() {
	l := &profiles.Loader{} // built-ins only; profiles.Load also searches the user's and system dirs
	p, err := l.Load("standard", profiles.Vars{Workspace: "/src/app", Home: "/home/ann", TmpDir: "/tmp"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Source)
	fmt.Println(p.Network.Mode, p.Filesystem.Write)
	// Output:
	// [builtin:standard builtin:strict]
	// none [/tmp /src/app]
}

func ExampleError() {
	_, err := (&profiles.Loader{}).Parse("my.yaml", []byte("network:\n  mode: lan\n"), profiles.Vars{})
	fmt.Println(err)
	// Output:
	// my.yaml:2:9: network.mode: want none, loopback or egress, got "lan"
}
