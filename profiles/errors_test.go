package profiles

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var testVars = Vars{Workspace: "/work/proj", Home: "/home/ann", TmpDir: "/tmp"}

// writeFiles creates files (path relative to a new temp dir → content) and
// returns the dir.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestLoadErrors loads D/p.yaml (D a temp dir holding files) with a Loader
// searching D/user, and wants an *Error that prints as want, with D for the
// temp dir.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		vars  *Vars
		want  string
	}{
		// Structure.
		{"unknown top-level key", map[string]string{"p.yaml": "filesytem: {}\n"},
			nil, `D/p.yaml:1:1: profile: unknown key "filesytem"; known keys: audit, best_effort, description, env, extends, filesystem, landlock, limits, name, network, secrets, syscalls, tools`},
		{"unknown nested key", map[string]string{"p.yaml": "filesystem:\n  reed: [/x]\n"},
			nil, `D/p.yaml:2:3: filesystem: unknown key "reed"; known keys: devices, exec, hide, overlay, read, write`},
		{"unknown key in a base profile", map[string]string{
			"p.yaml":    "extends: base.yaml\n",
			"base.yaml": "network:\n  mode: none\n  ports: [1]\n",
		}, nil, `D/base.yaml:3:3: network: unknown key "ports"; known keys: allow, any_port, bind_tcp, connect_tcp, limits, mode, resolver, upstream_proxy`},
		{"overridden bad value in a base profile", map[string]string{
			"p.yaml":    "extends: base.yaml\nlimits:\n  nofile: 10\n",
			"base.yaml": "limits:\n  nofile: lots\n",
		}, nil, `D/base.yaml:2:11: limits.nofile: want a whole number or "unlimited", got "lots"`},
		{"duplicate key", map[string]string{"p.yaml": "network:\n  mode: none\n  mode: loopback\n"},
			nil, `D/p.yaml:3:3: network: duplicate key "mode" (first at line 2)`},
		{"list for mapping", map[string]string{"p.yaml": "filesystem: [a]\n"},
			nil, `D/p.yaml:1:13: filesystem: want a mapping, got a list`},
		{"string for list", map[string]string{"p.yaml": "filesystem:\n  read: /usr\n"},
			nil, `D/p.yaml:2:9: filesystem.read: want a list, got "/usr"`},
		{"list for string", map[string]string{"p.yaml": "name: [a]\n"},
			nil, `D/p.yaml:1:7: name: want a string, got a list`},
		{"null section", map[string]string{"p.yaml": "filesystem:\n"},
			nil, `D/p.yaml:1:12: filesystem: want a mapping, got null`},
		{"null list entry", map[string]string{"p.yaml": "filesystem:\n  read:\n    -\n"},
			nil, `D/p.yaml:3:6: filesystem.read[0]: want a string, got null`},
		{"null scalar", map[string]string{"p.yaml": "network:\n  mode: ~\n"},
			nil, `D/p.yaml:2:9: network.mode: want a string, got null`},
		{"yes is not a bool", map[string]string{"p.yaml": "best_effort: yes\n"},
			nil, `D/p.yaml:1:14: best_effort: want true or false, got "yes"`},
		{"anchor", map[string]string{"p.yaml": "filesystem:\n  read: &r [/etc]\n  exec: *r\n"},
			nil, `D/p.yaml:2:9: filesystem.read: anchors (&r) are not supported`},
		{"merge key", map[string]string{"p.yaml": "<<: {}\n"},
			nil, `D/p.yaml:1:1: profile: merge keys (<<) are not supported; use extends:`},
		{"tagged key", map[string]string{"p.yaml": "env:\n  set:\n    !x A: b\n"},
			nil, `D/p.yaml:3:5: env.set: keys must be plain strings`},
		{"null key", map[string]string{"p.yaml": "~: b\n"},
			nil, `D/p.yaml:1:1: profile: keys must be plain strings`},
		{"custom tag", map[string]string{"p.yaml": "name: !x y\n"},
			nil, `D/p.yaml:1:7: name: YAML tag !x is not supported`},
		{"unquoted removal", map[string]string{"p.yaml": "landlock:\n  require:\n    - !tcp\n"},
			nil, `D/p.yaml:3:7: landlock.require[0]: !tcp is a YAML tag; to remove an inherited entry, quote it: "!tcp"`},
		{"syntax error with a line", map[string]string{"p.yaml": "name: x\nfilesystem: [\n"},
			nil, `D/p.yaml:2: YAML syntax: did not find expected node content`},
		{"syntax error without a line from yaml.v3", map[string]string{"p.yaml": "name: x\ndescription: note: y\n"},
			nil, `D/p.yaml:2: YAML syntax: mapping values are not allowed in this context`},
		{"optional path unquoted in a flow list", map[string]string{"p.yaml": "name: x\nfilesystem:\n  read: [/etc,\n    /lib64?]\n"},
			nil, `D/p.yaml:4: YAML syntax: did not find expected ',' or ']'; in [...] lists, quote entries that end in "?" or use variables: ["/lib64?", "${HOME}/x"]`},
		{"variable unquoted in a flow list", map[string]string{"p.yaml": "filesystem:\n  read: [${HOME}/x]\n"},
			nil, `D/p.yaml:2: YAML syntax: did not find expected ',' or ']'; in [...] lists, quote entries that end in "?" or use variables: ["/lib64?", "${HOME}/x"]`},
		{"empty file", map[string]string{"p.yaml": "# nothing\n"},
			nil, `D/p.yaml: empty profile; write {} for a profile that grants nothing`},
		{"two documents", map[string]string{"p.yaml": "name: a\n---\nname: b\n"},
			nil, `D/p.yaml:2:1: a profile file holds one YAML document; this is a second`},
		{"top level not a mapping", map[string]string{"p.yaml": "- /usr\n"},
			nil, `D/p.yaml:1:1: profile: want a mapping, got a list`},

		// Values.
		{"bad name", map[string]string{"p.yaml": "name: my profile\n"},
			nil, `D/p.yaml:1:7: name: "my profile" is not a profile name: use letters, digits, ".", "_" and "-", starting with a letter or digit`},
		{"relative path", map[string]string{"p.yaml": "filesystem:\n  read:\n    - /etc\n    - docs\n"},
			nil, `D/p.yaml:4:7: filesystem.read[1]: "docs" is not an absolute path; start it with "/" or a variable such as ${WORKSPACE}`},
		{"relative optional path", map[string]string{"p.yaml": "filesystem:\n  exec:\n    - bin?\n"},
			nil, `D/p.yaml:3:7: filesystem.exec[0]: "bin" is not an absolute path; start it with "/" or a variable such as ${WORKSPACE}`},
		{"hide /", map[string]string{"p.yaml": "filesystem:\n  hide: [/tmp, /./]\n"},
			nil, `D/p.yaml:2:16: filesystem.hide[1]: cannot cover / itself`},
		{"network mode", map[string]string{"p.yaml": "network:\n  mode: lan\n"},
			nil, `D/p.yaml:2:9: network.mode: want none, loopback or egress, got "lan"`},
		{"ports with mode none", map[string]string{"p.yaml": "network:\n  connect_tcp: [8080]\n"},
			nil, `D/p.yaml:2:3: network.connect_tcp: ports need network.mode loopback; the mode is none`},
		{"ports with inherited mode none", map[string]string{
			"p.yaml":    "extends: base.yaml\nnetwork:\n  bind_tcp: [8080]\n",
			"base.yaml": "network:\n  mode: none\n",
		}, nil, `D/p.yaml:3:3: network.bind_tcp: ports need network.mode loopback; the mode is none`},
		{"port too large", map[string]string{"p.yaml": "network:\n  mode: loopback\n  bind_tcp: [70000]\n"},
			nil, `D/p.yaml:3:14: network.bind_tcp[0]: want a port number from 1 to 65535, got "70000"`},
		{"port zero", map[string]string{"p.yaml": "network:\n  mode: loopback\n  bind_tcp: [80, 0]\n"},
			nil, `D/p.yaml:3:18: network.bind_tcp[1]: want a port number from 1 to 65535, got 0`},
		{"hex port", map[string]string{"p.yaml": "network:\n  mode: loopback\n  bind_tcp: [0x50]\n"},
			nil, `D/p.yaml:3:14: network.bind_tcp[0]: want a port number from 1 to 65535, got "0x50"`},
		{"any_port with mode none", map[string]string{"p.yaml": "network:\n  any_port: true\n"},
			nil, `D/p.yaml:2:3: network.any_port: needs network.mode loopback; the mode is none`},
		{"any_port with ports", map[string]string{"p.yaml": "network:\n  mode: loopback\n  any_port: true\n  connect_tcp: [80]\n"},
			nil, `D/p.yaml:4:3: network.connect_tcp: lists ports, but network.any_port allows them all; drop one of the two`},
		{"unknown landlock feature", map[string]string{"p.yaml": "landlock:\n  require: [filesystem, tcpp]\n"},
			nil, `D/p.yaml:2:25: landlock.require[1]: unknown Landlock feature "tcpp"; known: filesystem, refer, truncate, tcp, ioctl-dev, scope-abstract-unix, scope-signal, resolve-unix, udp`},
		{"unknown syscall group", map[string]string{"p.yaml": "syscalls:\n  allow:\n    - ptrace\n"},
			nil, `D/p.yaml:3:7: syscalls.allow[0]: unknown syscall group "ptrace"; known: unix-sockets, numa`},
		{"bad env pass name", map[string]string{"p.yaml": "env:\n  pass: [PATH, 1BAD]\n"},
			nil, `D/p.yaml:2:16: env.pass[1]: "1BAD" is not an environment variable name`},
		{"bad env set name", map[string]string{"p.yaml": "env:\n  set:\n    BAD-NAME: x\n"},
			nil, `D/p.yaml:3:5: env.set.BAD-NAME: "BAD-NAME" is not an environment variable name`},
		{"env set list value", map[string]string{"p.yaml": "env:\n  set:\n    A: [x]\n"},
			nil, `D/p.yaml:3:8: env.set.A: want a string, got a list`},
		{"count with unit", map[string]string{"p.yaml": "limits:\n  nproc: 10k\n"},
			nil, `D/p.yaml:2:10: limits.nproc: want a whole number or "unlimited", got "10k"`},
		{"ambiguous size", map[string]string{"p.yaml": "limits:\n  as: 12MB\n"},
			nil, `D/p.yaml:2:7: limits.as: size "12MB" is ambiguous; write 12MiB (powers of 1024) or a number of bytes`},
		{"unknown size unit", map[string]string{"p.yaml": "limits:\n  fsize: 3 parsecs\n"},
			nil, `D/p.yaml:2:10: limits.fsize: size "3 parsecs": unknown unit "parsecs"; use K, M, G or T (powers of 1024)`},
		{"size overflow", map[string]string{"p.yaml": "limits:\n  as: 99999999999T\n"},
			nil, `D/p.yaml:2:7: limits.as: size "99999999999T" is too large`},
		{"negative size", map[string]string{"p.yaml": "limits:\n  core: -1\n"},
			nil, `D/p.yaml:2:9: limits.core: want a size such as 4096, "64KiB" or "unlimited", got "-1"`},
		{"bad time", map[string]string{"p.yaml": "limits:\n  cpu_time: 1d\n"},
			nil, `D/p.yaml:2:13: limits.cpu_time: want a time such as 30, "90s", "10m" or "unlimited", got "1d"`},
		{"pids zero", map[string]string{"p.yaml": "limits:\n  pids: 0\n"},
			nil, `D/p.yaml:2:9: limits.pids: 0 would stop the command from starting`},
		{"pids with unit", map[string]string{"p.yaml": "limits:\n  pids: 1k\n"},
			nil, `D/p.yaml:2:9: limits.pids: want a whole number or "unlimited", got "1k"`},
		{"memory zero", map[string]string{"p.yaml": "limits:\n  memory: 0\n"},
			nil, `D/p.yaml:2:11: limits.memory: 0 bytes would stop the command from starting`},
		{"memory ambiguous", map[string]string{"p.yaml": "limits:\n  memory: 512MB\n"},
			nil, `D/p.yaml:2:11: limits.memory: want a size such as "512MiB", a share of the host's memory such as "25%", or "unlimited": size "512MB" is ambiguous; write 512MiB (powers of 1024) or a number of bytes`},
		{"memory percent over 100", map[string]string{"p.yaml": "limits:\n  memory: 150%\n"},
			nil, `D/p.yaml:2:11: limits.memory: want a whole percentage from 1% to 100% of the host's memory, got "150%"`},
		{"memory fractional percent", map[string]string{"p.yaml": "limits:\n  memory: 12.5%\n"},
			nil, `D/p.yaml:2:11: limits.memory: want a whole percentage from 1% to 100% of the host's memory, got "12.5%"`},
		{"memory list", map[string]string{"p.yaml": "limits:\n  memory: [1]\n"},
			nil, `D/p.yaml:2:11: limits.memory: want a string, got a list`},
		{"cpu as a time", map[string]string{"p.yaml": "limits:\n  cpu: 90s\n"},
			nil, `D/p.yaml:2:8: limits.cpu: "90s" is not a number of CPUs: limits.cpu is the sandbox's CPU bandwidth, 0.5 for half a CPU, 2 for two, "50%" for half the host's; the CPU-time rlimit is limits.cpu_time`},
		{"cpu in millicpus", map[string]string{"p.yaml": "limits:\n  cpu: 500m\n"},
			nil, `D/p.yaml:2:8: limits.cpu: "500m" is not a number of CPUs: limits.cpu is the sandbox's CPU bandwidth, 0.5 for half a CPU, 2 for two, "50%" for half the host's; the CPU-time rlimit is limits.cpu_time`},
		{"cpu zero", map[string]string{"p.yaml": "limits:\n  cpu: 0\n"},
			nil, `D/p.yaml:2:8: limits.cpu: "0" is below 0.01 CPU, the smallest bandwidth the kernel allows (1 ms per 100 ms)`},
		{"cpu too fine", map[string]string{"p.yaml": "limits:\n  cpu: 0.0005\n"},
			nil, `D/p.yaml:2:8: limits.cpu: want a number of CPUs such as 0.5 or 2 (at most 3 decimals), a share of the host's CPUs such as "50%", or "unlimited", got "0.0005"`},
		{"cpu exponent", map[string]string{"p.yaml": "limits:\n  cpu: 1e3\n"},
			nil, `D/p.yaml:2:8: limits.cpu: want a number of CPUs such as 0.5 or 2 (at most 3 decimals), a share of the host's CPUs such as "50%", or "unlimited", got "1e3"`},
		{"cpu negative", map[string]string{"p.yaml": "limits:\n  cpu: -1\n"},
			nil, `D/p.yaml:2:8: limits.cpu: want a number of CPUs such as 0.5 or 2 (at most 3 decimals), a share of the host's CPUs such as "50%", or "unlimited", got "-1"`},
		{"cpu zero percent", map[string]string{"p.yaml": "limits:\n  cpu: 0%\n"},
			nil, `D/p.yaml:2:8: limits.cpu: want a whole percentage from 1% to 100% of the host's CPUs, got "0%"`},
		{"nofile unlimited", map[string]string{"p.yaml": "limits:\n  nofile: unlimited\n"},
			nil, `D/p.yaml:2:11: limits.nofile: cannot be unlimited: the kernel caps it at fs.nr_open`},
		{"nofile zero", map[string]string{"p.yaml": "limits:\n  nofile: 0\n"},
			nil, `D/p.yaml:2:11: limits.nofile: 0 would stop the command from starting`},
		{"tmp_size zero", map[string]string{"p.yaml": "limits:\n  tmp_size: 0\n"},
			nil, `D/p.yaml:2:13: limits.tmp_size: want a size such as "256MiB", got 0`},
		{"ledger not absolute", map[string]string{"p.yaml": "audit:\n  ledger: ledger.jsonl\n"},
			nil, `D/p.yaml:2:11: audit.ledger: "ledger.jsonl" is not an absolute path; start it with "/" or a variable such as ${HOME}`},
		{"ledger inside a granted path", map[string]string{
			"p.yaml": "filesystem:\n  write:\n    - ${WORKSPACE}\naudit:\n  ledger: ${WORKSPACE}/.vm-run/ledger.jsonl\n",
		}, nil, `D/p.yaml:5:11: audit.ledger: "/work/proj/.vm-run/ledger.jsonl" is reachable from the sandbox through filesystem.write entry "/work/proj"; keep the ledger outside every path the profile grants`},
		{"empty redaction key", map[string]string{"p.yaml": "audit:\n  redact: [token, ' ']\n"},
			nil, `D/p.yaml:2:19: audit.redact[1]: empty redaction key`},

		// Variables.
		{"unknown variable", map[string]string{"p.yaml": "filesystem:\n  read:\n    - ${WORKSPACE}/a/${FOO}\n"},
			nil, `D/p.yaml:3:22: filesystem.read[0]: unknown variable ${FOO}; known: ${WORKSPACE}, ${HOME}, ${TMPDIR}`},
		{"stray dollar in quotes", map[string]string{"p.yaml": "env:\n  set:\n    PS1: 'cost $5'\n"},
			nil, `D/p.yaml:3:16: env.set.PS1: a "$" must start ${WORKSPACE}, ${HOME} or ${TMPDIR}; write "$$" for a literal "$"`},
		{"unterminated variable", map[string]string{"p.yaml": "audit:\n  ledger: /x/${HOME/l\n"},
			nil, `D/p.yaml:2:14: audit.ledger: unterminated "${"`},
		{"variable in an overridden value", map[string]string{
			"p.yaml":    "extends: base.yaml\naudit:\n  ledger: /var/ledger\n",
			"base.yaml": "audit:\n  ledger: $LEDGER\n",
		}, nil, `D/base.yaml:2:11: audit.ledger: a "$" must start ${WORKSPACE}, ${HOME} or ${TMPDIR}; write "$$" for a literal "$"`},
		{"variable in a removal", map[string]string{"p.yaml": "filesystem:\n  read: [\"!${HOM}/x\"]\n"},
			nil, `D/p.yaml:2:12: filesystem.read[0]: unknown variable ${HOM}; known: ${WORKSPACE}, ${HOME}, ${TMPDIR}`},
		{"empty variable", map[string]string{"p.yaml": "filesystem:\n  read: [/etc, '${HOME}/.npmrc']\n"},
			&Vars{Workspace: "/w"}, `D/p.yaml:2:17: filesystem.read[1]: ${HOME} is empty here`},
		{"relative variable", map[string]string{"p.yaml": "filesystem:\n  read:\n    - ${WORKSPACE}\n"},
			&Vars{Workspace: "proj", Home: "/h", TmpDir: "/tmp"}, `D/p.yaml:3:7: filesystem.read[0]: ${WORKSPACE} is "proj", not an absolute path`},

		// Extends.
		{"removal that finds nothing", map[string]string{"p.yaml": "landlock:\n  require: [\"!tcp\"]\n"},
			nil, `D/p.yaml:2:13: landlock.require[0]: "!tcp" removes nothing: no inherited entry "tcp"`},
		{"removal of nothing inherited", map[string]string{
			"p.yaml": "extends: strict\nfilesystem:\n  read: [/etc, '!/usr']\n",
		}, nil, `D/p.yaml:3:16: filesystem.read[1]: "!/usr" removes nothing: no inherited entry "/usr"`},
		{"null that removes nothing", map[string]string{"p.yaml": "extends: strict\nlimits:\n  nproc: ~\n"},
			nil, `D/p.yaml:3:10: limits.nproc: null removes an inherited value, but none is inherited`},
		{"extends an unknown name", map[string]string{"p.yaml": "extends: nosuch\n"},
			nil, `D/p.yaml:1:10: extends: profile not found: "nosuch" (searched D/user, the built-ins (dev, server-everything, server-fetch, server-filesystem, server-git, server-memory, server-sequential-thinking, server-time, standard, strict))`},
		{"extends a missing file", map[string]string{"p.yaml": "extends: ./base.yaml\n"},
			nil, `D/p.yaml:1:10: extends: open profile "D/base.yaml": no such file or directory`},
		{"extends a directory", map[string]string{"p.yaml": "extends: sub.yaml\n", "sub.yaml/x": ""},
			nil, `D/p.yaml:1:10: extends: open profile "D/sub.yaml": not a regular file`},
		{"extends a bad name", map[string]string{"p.yaml": "extends: -x\n"},
			nil, `D/p.yaml:1:10: extends: "-x" is neither a profile name nor a path`},
		{"extends itself", map[string]string{"p.yaml": "extends: p.yaml\n"},
			nil, `D/p.yaml:1:10: extends: cycle: D/p.yaml -> D/p.yaml`},
		{"extends cycle", map[string]string{
			"p.yaml":     "extends: a.yaml\n",
			"a.yaml":     "extends: sub/b.yaml\n",
			"sub/b.yaml": "name: b\nextends: ../a.yaml\n",
		}, nil, `D/sub/b.yaml:2:10: extends: cycle: D/a.yaml -> D/sub/b.yaml -> D/a.yaml`},
		{"extends cycle through a name", map[string]string{
			"p.yaml":      "extends: a\n",
			"user/a.yaml": "extends: b\n",
			"user/b.yaml": "extends: a\n",
		}, nil, `D/user/b.yaml:1:10: extends: cycle: D/user/a.yaml -> D/user/b.yaml -> D/user/a.yaml`},
		{"extends not a string", map[string]string{"p.yaml": "extends: [strict]\n"},
			nil, `D/p.yaml:1:10: extends: want a string, got a list`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			v := testVars
			if tt.vars != nil {
				v = *tt.vars
			}
			l := &Loader{Dirs: []string{filepath.Join(dir, "user")}}
			_, err := l.Load(filepath.Join(dir, "p.yaml"), v)
			want := strings.ReplaceAll(tt.want, "D/", dir+"/")
			if err == nil {
				t.Fatalf("Load(p.yaml) = nil error, want %q", want)
			}
			if err.Error() != want {
				t.Errorf("Load(p.yaml) error:\n got %s\nwant %s", err, want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("Load(p.yaml) error %T is not an *Error", err)
			}
		})
	}
}

// TestBuiltinErrorNames checks that errors in built-in profiles name them
// as builtin:NAME.yaml, here through a variable the launch left empty.
func TestBuiltinErrorNames(t *testing.T) {
	data, err := builtinFS.ReadFile("strict.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var line, col int
	for i, l := range strings.Split(string(data), "\n") {
		if c := strings.Index(l, "${WORKSPACE}"); c >= 0 && !strings.HasPrefix(strings.TrimSpace(l), "#") {
			line, col = i+1, c+1
			break
		}
	}
	_, err = (&Loader{}).Load("strict", Vars{Home: "/h", TmpDir: "/tmp"})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Load(strict) with no workspace = %v, want an *Error", err)
	}
	if e.File != "builtin:strict.yaml" || e.Line != line || e.Column != col {
		t.Errorf("Load(strict) with no workspace: error at %s:%d:%d, want builtin:strict.yaml:%d:%d (%v)",
			e.File, e.Line, e.Column, line, col, err)
	}
}

func TestLoadNotFound(t *testing.T) {
	dir := t.TempDir()
	l := &Loader{Dirs: []string{dir}}
	_, err := l.Load("nosuch", testVars)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Load(nosuch) = %v, want ErrNotFound", err)
	}
	_, err = l.Load("bad name", testVars)
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Load(%q) = %v, want an invalid-name error", "bad name", err)
	}
	_, err = l.Load(filepath.Join(dir, "nosuch.yaml"), testVars)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(path to nothing) = %v, want os.ErrNotExist", err)
	}
}
