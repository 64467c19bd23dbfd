package selftest

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// ProbeArg0 is the argv[0] that makes vm-run run one probe of the battery
// instead of its CLI. main checks it before kong parses anything.
const ProbeArg0 = "vm-run:probe"

// verdict is what a probe prints: one JSON line on stdout.
type verdict struct {
	// Escaped says the attack worked.
	Escaped bool `json:"escaped"`
	// Detail says what the probe did and saw, errno values included.
	Detail string `json:"detail"`
	// Mechanism names what stopped the attack when it did not work, as far
	// as the probe can tell from inside: "landlock", "seccomp (EPERM)",
	// "PID namespace", ...
	Mechanism string `json:"mechanism,omitempty"`
	// Impossible, set on a failed attack, says why the attack cannot work
	// in this environment whatever the sandbox does: a kernel without the
	// feature, a caller without the privilege. An unsandboxed run that
	// fails without it means the battery could not prove the probe.
	Impossible string `json:"impossible,omitempty"`
	// Error says the probe could not do its job (bad parameters, a broken
	// fixture): neither an escape nor a block.
	Error string `json:"error,omitempty"`
	// Refused lists what the probe saw refused after it reached vm-run's
	// stack in network mode egress: "dns NAME" (NXDOMAIN from the stub),
	// "tcp IP:PORT" (a reset), "udp IP:PORT" (sent, never answered). The
	// battery checks that the stack recorded a denial of each.
	Refused []string `json:"refused,omitempty"`
}

// ProbeMain runs the probe named by args[0] in the current process with the
// parameters that follow (KEY=VALUE words) and prints its verdict as one
// JSON line on stdout. It returns 0 when the probe reached a verdict and 2
// when it could not run. A probe killed by a seccomp filter prints nothing;
// the battery reads the signal from its exit status.
func ProbeMain(args []string) int {
	if len(args) == 0 {
		return emit(verdict{Error: "no probe named"}, 2)
	}
	p, ok := probes[args[0]]
	if !ok {
		return emit(verdict{Error: fmt.Sprintf("unknown probe %q", args[0])}, 2)
	}
	ps, err := parseParams(args[1:])
	if err != nil {
		return emit(verdict{Error: fmt.Sprintf("probe %q: %v", args[0], err)}, 2)
	}
	prepareProbe()
	v := p(ps)
	if v.Error != "" {
		return emit(v, 2)
	}
	return emit(v, 0)
}

func emit(v verdict, code int) int {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vm-run: probe: encode verdict: %v\n", err)
		return 2
	}
	os.Stdout.Write(append(b, '\n'))
	return code
}

// params are a probe's KEY=VALUE parameters; a key may repeat.
type params map[string][]string

func parseParams(words []string) (params, error) {
	ps := params{}
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("parameter %q: want KEY=VALUE", w)
		}
		ps[k] = append(ps[k], v)
	}
	return ps, nil
}

// get returns the last value of key, or "".
func (ps params) get(key string) string {
	vs := ps[key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// param builds one KEY=VALUE word.
func param(key, value string) string { return key + "=" + value }

// escaped and blocked build verdicts.
func escaped(format string, a ...any) verdict {
	return verdict{Escaped: true, Detail: fmt.Sprintf(format, a...)}
}

func blocked(mechanism, format string, a ...any) verdict {
	return verdict{Mechanism: mechanism, Detail: fmt.Sprintf(format, a...)}
}

func broken(format string, a ...any) verdict {
	return verdict{Error: fmt.Sprintf(format, a...)}
}

// impossible marks a failed attack that cannot work here at all.
func (v verdict) impossible(format string, a ...any) verdict {
	v.Impossible = fmt.Sprintf(format, a...)
	return v
}
