// Package profiles owns vm-run's sandbox profiles: the YAML schema, the
// built-in profiles, lookup by name, extends:, variables and validation.
// It turns a name or a path into a [Profile] that is merged, expanded and
// checked, and says where in which file anything is wrong. A profile's
// tools: section is the MCP tool policy of package policy: this package
// finds, merges and checks it, policy defines and enforces it.
//
//	p, err := profiles.Load("strict", profiles.Vars{
//		Workspace: "/home/ann/src/proj",
//		Home:      "/home/ann",
//		TmpDir:    "/tmp",
//	})
//	if err != nil {
//		return err // e.g. my.yaml:12:7: network.mode: want none, loopback or egress, got "lan"
//	}
//	out, _ := p.YAML() // what "vm-run profiles show" prints
//
//	extra, err := profiles.LoadPolicy("review.yaml") // --policy review.yaml
//	if err != nil {
//		return err
//	}
//	p, err = p.WithPolicy(extra) // p.Tools now has extra's rules too
//
// Package profiles decides what a profile says, never whether the machine
// can do it: the launcher (package sandbox) drops missing optional paths and
// refuses to start when a required path or kernel feature is missing.
//
// # Finding a profile
//
// [Load] takes a path (anything containing "/" or ending in ".yaml" or
// ".yml", relative to the current directory) or a name. A name is looked up
// as NAME.yaml in, in order:
//
//  1. $XDG_CONFIG_HOME/vm-run/profiles, or ~/.config/vm-run/profiles
//  2. /etc/vm-run/profiles
//  3. the built-in profiles (this directory, embedded)
//
// and the first found wins; [List] shows what shadows what. A file that
// exists but cannot be read is an error, never a reason to fall back to the
// next directory. [Loader] makes the directories explicit (tests, tools).
// Names are letters, digits, ".", "_" and "-", starting with a letter or
// digit. A file is at most 1 MiB and holds one YAML document.
//
// # Built-in profiles
//
//   - strict: no network at all; /usr and the other system directories,
//     language runtimes under $HOME (nvm, pyenv, ~/.local/bin, ~/go/bin,
//     ~/.cargo/bin) and the workspace are readable and executable, /etc,
//     /proc and a few /sys files readable; the private ${TMPDIR} is the
//     only writable place; ~/.npm is an overlay so that npx runs from a
//     warm cache without writing to it; /dev/null, zero, full, random and
//     urandom; tmpfs over /tmp, /var/tmp, /run, /var/run, /dev/shm and
//     /etc/vm-run; every Landlock feature of ABI 6; 512 tasks and a
//     quarter of the host's memory for the whole sandbox, CPU not capped;
//     4096 open files, no core dumps; only the locale, terminal and
//     identity variables pass.
//     Tools: default deny; the "read" class (the read tools of
//     @modelcontextprotocol/server-filesystem) with paths anywhere in the
//     workspace; resources and prompts allowed; sampling, elicitation,
//     writes and every other tool denied. This is [policy.Strict], written
//     out.
//   - standard: strict, with the workspace writable, and the "write" class
//     allowed in the workspace.
//   - dev: standard, with network mode loopback and any_port (the
//     sandbox's own loopback; the host's stays out of reach), the
//     unix-sockets syscall group and 1024 tasks. Tools as standard.
//
// Read the files for the exact lists: "vm-run profiles show strict".
//
// # Schema
//
// Every key is optional. Unknown keys, at any depth, are errors, as are
// values of the wrong type, duplicate keys, YAML anchors, aliases, merge
// keys (<<) and tags.
//
//	name: NAME          # default: the file name without .yaml
//	description: TEXT   # one line, for "vm-run profiles list"
//	extends: NAME|PATH  # see Extends
//	best_effort: BOOL   # default false: a kernel feature the profile needs
//	                    # and the kernel lacks, or a cgroup for limits the
//	                    # caller may not create, stops the launch; true
//	                    # runs anyway with what there is, and says so
//	filesystem:
//	  read: [PATH]      # read files, list directories beneath PATH
//	  exec: [PATH]      # read plus execute
//	  write: [PATH]     # read plus create, write, truncate, rename, remove
//	                    # (not execute)
//	  overlay: [PATH]   # as write, but writes go to a private in-memory
//	                    # layer discarded at exit; the host copy is unchanged
//	  devices: [PATH]   # read, write and ioctl on device files
//	  hide: [PATH]      # an empty tmpfs covers PATH inside the sandbox;
//	                    # granted paths beneath it are mounted back
//	network:
//	  mode: none|loopback|egress
//	                       # default none: an empty network namespace;
//	                       # loopback brings up the sandbox's own lo;
//	                       # egress reaches the hosts allow lists, by
//	                       # name, through vm-run; "off" is read as none
//	  connect_tcp: [PORT]  # loopback only: TCP ports that may be connected
//	  bind_tcp: [PORT]     # to and bound (Landlock); empty means none
//	  any_port: BOOL       # loopback only: no Landlock TCP rule at all
//	  allow:               # egress only: what the sandbox may reach; see
//	    - HOST:PORT        # Network mode egress
//	    - host: HOST
//	      ports: [PORT]
//	      private: BOOL    # default false
//	      sni: BOOL        # default true
//	  upstream_proxy: URL  # egress only: http://[USER:PASSWORD@]HOST:PORT,
//	                       # the HTTP CONNECT proxy vm-run dials through
//	  resolver: IP:PORT    # egress only: the DNS server vm-run asks for
//	                       # allowed names (default: the host's resolv.conf)
//	  limits:              # egress only: what the sandbox can make vm-run
//	                       # hold; unset: the default
//	    connections: COUNT # TCP connections open at once (default 1024)
//	    handshakes: COUNT  # connections being dialled at once (128)
//	    buffer: SIZE       # TCP buffer of each connection, each way,
//	                       # 4KiB to 4MiB (256KiB)
//	    idle_timeout: TIME # close a connection idle this long (5m)
//	    dial_timeout: TIME # give up one upstream dial after (10s)
//	landlock:
//	  require: [FEATURE]   # filesystem, refer, truncate, tcp, ioctl-dev,
//	                       # scope-abstract-unix, scope-signal,
//	                       # resolve-unix, udp (see package landlock)
//	syscalls:
//	  allow: [GROUP]       # opt-in seccomp groups: [seccomp.OptInGroups]
//	limits:                # pids, memory, cpu: the sandbox's own cgroup,
//	                       # all its processes together; unset or
//	                       # "unlimited": none. They need root or a
//	                       # delegated cgroup (package sandbox/cgroup)
//	  pids: COUNT          # tasks, processes and threads, at once
//	  memory: SIZE|N%      # memory, swap included, or N% of the host's
//	  cpu: CPUS|N%         # CPU bandwidth: 0.5 is half a CPU, 2 two, N%
//	                       # of the host's CPUs
//	                       # the rest are setrlimit(2), soft and hard, of
//	                       # each process; unset: inherited
//	  nofile: COUNT        # open files (not unlimited)
//	  nproc: COUNT         # processes of the user (every process of that
//	                       # uid counts, inside the sandbox or not)
//	  as: SIZE             # address space
//	  fsize: SIZE          # largest file written
//	  cpu_time: TIME       # CPU time
//	  core: SIZE           # core dump size; 0 for none
//	  tmp_size: SIZE       # size of the private temp dir (default 256MiB)
//	env:
//	  pass: [NAME]         # variables copied from vm-run's environment
//	  set: {NAME: VALUE}   # variables set; they win over pass; VALUE may
//	                       # use ${secret:SECRET} (see Secrets)
//	secrets:               # values vm-run reads outside the sandbox, as
//	                       # you, and hands over only through env.set
//	  SECRET:              # a-z, 0-9, "_" and "-"
//	    file: PATH         # one of file, env, command: a file of yours,
//	                       # mode 0600 or stricter ("~/" is your home),
//	    env: NAME          # one of vm-run's variables,
//	    command: [ARG]     # or what a command prints ([pass, show, x])
//	    approve: none|ask  # default none; ask: a person approves first
//	    ttl: TIME          # ask only: how long an approval holds
//	tools:                 # the MCP tool policy; see Tool policy below
//	                       # and package policy, "Policy schema"
//	  default_action: allow|deny   # default deny
//	  defaults: {KIND: allow|deny} # tool resource prompt sampling elicitation
//	  classes:
//	    NAME: {tools: [GLOB], path_args: [ARG], read_only: BOOL}
//	  rules:
//	    - id: ID
//	      reason: TEXT             # shown to the agent when the rule denies
//	      allow: [MATCHER]         # "read(docs/*)", "echo", "tool(x)", ...
//	      deny: [MATCHER]
//	audit:
//	  ledger: PATH         # the ledger file (default: see package audit);
//	                       # must lie outside every filesystem entry
//	  redact: [KEY]        # argument keys whose values the ledger masks
//
// PATH is absolute once variables are expanded, and is cleaned. A PATH
// ending in "?" is optional: the launcher drops it when it does not exist;
// any other missing path stops the launch. The "?" stays in the [Profile];
// [SplitOptional] takes it off. PORT is 1 to 65535. NAME (of a variable) is
// [A-Za-z_][A-Za-z0-9_]*. COUNT is a decimal number, or "unlimited".
// SIZE is a number of bytes with an optional binary unit: 4096, "64K",
// "64KiB", "512MiB", "2G" (K, M, G, T, in any case, with or without "i"
// or "iB", are powers of 1024; "MB" and friends are refused as ambiguous),
// or "unlimited". TIME is seconds with an optional unit: 30, "90s", "10m",
// "2h", or "unlimited". N% is a whole percentage from 1 to 100 of what the
// host running the sandbox has (memory rounded down to a whole MiB); CPUS
// is a number with at most three decimals, from 0.01. limits.memory and
// limits.cpu are a [Share]; a loaded profile holds them in canonical form
// ("25%", "512MiB", "0.5"). Numbers are decimal digits only: no signs, no 0x,
// no underscores. Lists lose duplicates, keeping the first; where a path is
// listed both required and optional, required wins.
//
// network: MODE is short for network: {mode: MODE}, so the seeds'
// "network: off" reads as mode none; over an inherited network: it
// replaces only the mode.
//
// # Network mode egress
//
// In mode egress the sandbox has a network device whose far end is vm-run
// (package netns/egress): programs reach, by name and with no proxy
// variable, exactly the hosts and TCP ports network.allow lists. A name
// no rule lists does not resolve and is asked of no resolver; an IP
// literal, the host's loopback, link-local, private, shared (CGNAT) and
// multicast addresses are refused unless a rule names them. A rule is
// HOST:PORT ([egress.ParseRule]) or a mapping:
//
//   - HOST is a name ("api.github.com"), a wildcard over a domain's
//     subdomains ("*.slack.com" matches a.slack.com, not slack.com), an
//     IPv4 address ("10.0.0.5"), or host-loopback, the host's own
//     127.0.0.1. Names are read case-blind, internationalised names as
//     their punycode; "*" only as a whole first label.
//   - ports lists one or more TCP ports; the short form names one.
//   - private: true lets a name resolve to loopback, private (RFC 1918)
//     and shared (RFC 6598) addresses, which are otherwise refused when
//     the connection is dialled (DNS rebinding).
//   - sni: false turns off, for a client that sends no server name, the
//     check that a TLS ClientHello to port 443 names a host the rule
//     allows.
//
// Rules are normalised, and a rule identical to an earlier one is
// dropped. An empty allow list is valid: nothing is reachable and every
// name is answered NXDOMAIN. Mode egress has no connect_tcp, bind_tcp or
// any_port; allow, upstream_proxy, resolver and limits need mode egress.
// Over extends:, allow accumulates and the rest override; "allow: ~"
// (and null for upstream_proxy, resolver, limits or one limit) removes
// what is inherited, so that a child can choose another mode. An
// upstream proxy's password is never printed: [Profile.YAML], "vm-run
// profiles show" and "vm-run --dry-run" write it "xxxxx".
//
// A profile for a server that calls the GitHub and Slack APIs and a
// database on the private network, from behind a corporate proxy:
//
//	name: github-and-db
//	extends: strict
//	network:
//	  mode: egress
//	  allow:
//	    - api.github.com:443
//	    - "*.slack.com:443"            # quoted: * starts a YAML alias
//	    - host: db.internal
//	      ports: [5432]
//	      private: true                # resolves to 10.x on the host
//	    - host-loopback:8080           # a service on the host's 127.0.0.1
//	  upstream_proxy: http://proxy.corp:3128
//	  limits:
//	    connections: 64
//	    idle_timeout: 2m
//
// "vm-run --allow-net HOST:PORT" adds rules the same way from the command
// line, and switches the profile to mode egress ([Profile.WithAllow]).
//
// In flow lists ([a, b]) quote entries that end in "?" or use a variable:
// ["/lib64?", "${HOME}/.npm"]. yaml.v3 cannot read them unquoted there (a
// syntax error that says so); block lists ("- /lib64?") need no quotes.
//
// # Secrets
//
// secrets: names values the command needs (API tokens) and where vm-run
// reads them at launch, outside the sandbox and as the caller: a file
// (a regular file of the caller's, mode 0600 or stricter, not a link), a
// variable of vm-run's environment, or the output of a command (run with
// stdin /dev/null and a 30 s limit); each value is 8 bytes to 64 KiB, one
// trailing newline dropped. A secret reaches the command only as
// ${secret:NAME} in env.set values, whole or inside a string:
//
//	secrets:
//	  github:
//	    file: ~/.config/vm-run/secrets/github
//	    approve: ask
//	    ttl: 15m
//	env:
//	  set:
//	    GITHUB_TOKEN: ${secret:github}
//	    NPM_CONFIG_USERCONFIG_AUTH: "//registry.npmjs.org/:_authToken=${secret:npm}"
//
// ${secret:NAME} anywhere else (a path, a command's arguments, tools:, a
// literal such as description:) is an error, as is a reference to a
// secret the profile does not define, a secret no env.set value uses, a
// secret with no source or two, and ttl without approve: ask. The
// variable an env: secret is read from is never passed through to the
// command under its own name (env.pass or --pass-env naming it is noted
// and ignored); only env.set hands it over.
//
// Over extends:, an extending profile may only tighten an inherited
// secret: restate it as it is, add approve: ask, shorten its ttl, or
// remove it with "NAME: ~" (and the env.set entries that use it). It may
// not change where the value comes from (file, env or command, and what
// they name): that is an error naming the inherited source, since it
// would hand the command another value under a name the user trusts. Nor
// may it relax approve: ask, or add or lengthen a ttl.
//
// A loaded profile holds where each secret comes from, never a value:
// [Profile.YAML] ("vm-run profiles show") and "vm-run --dry-run" print
// each secret's source and approval and load nothing. In a loaded
// env.set value a reference is held in a form no profile value can take
// (it contains NUL bytes); [SecretRefs] lists them and [FillSecrets]
// fills them in.
//
// # Tool policy
//
// tools: is checked and decoded by package policy ([policy.DecodePolicy]);
// its errors name file:line:column like any other. A profile chain with no
// tools: section at all denies every tool call, resource, prompt, sampling
// and elicitation request (fail closed), and a policy without
// default_action gets default_action: deny written in; after Load,
// Profile.Tools is never nil and is compiled. The seeds' example loads as:
//
//	name: docs-only
//	extends: strict
//	network: off
//	tools:
//	  rules:
//	    - id: allow-docs
//	      allow: ["read(docs/*)", "read(*.md)"]
//	    - id: block-src-writes
//	      deny: ["write(src/*)", "write(lib/*)"]
//	  default_action: deny
//
// Across extends: one rule, [policy.Inherit]: deny and ask rules
// accumulate down the chain and nothing later can remove them, nor lengthen
// an ask rule's ttl or timeout; allow rules, default_action (deny when
// unset) and defaults come from the nearest tools: section, so the example
// above allows reads in docs/ and of *.md files only, not strict's reads
// plus those. Classes add up, so a child can use its base's. A profile
// without a tools: section inherits its base's policy whole. "tools: ~" is
// an empty section: it drops the inherited allows and default (the child
// starts from deny everything) and keeps the inherited denies and asks;
// within tools:, null and "!X" remove nothing. Each rule remembers the file
// it comes from (policy.Rule.Origin). The built-in profiles have no ask
// rules; `vm-run profiles show` prints those in force with their ttl,
// timeout and origin.
//
// [LoadPolicy] reads a file holding just a tools: section's contents, for
// vm-run's --policy flag, and [Profile.WithPolicy] applies it to a profile
// as a child profile would: the profile's denies stay, the file's allow
// rules and default replace the profile's, classes add up.
//
// # Variables
//
// In every string value (not in keys, name, description, extends or
// tools:):
//
//	${WORKSPACE}  the workspace, the command's working directory
//	${HOME}       the user's home directory
//	${TMPDIR}     the sandbox's private temp dir, as seen inside it
//	$$            a literal "$"
//	${secret:NAME} in env.set values only: see Secrets
//
// Anything else after a "$" is an error at its line and column. Variables
// are expanded after merging, so a value an extending profile overrides
// is never expanded; their syntax is checked in every file regardless. A
// variable that is empty or not an absolute path is an error where used.
//
// tools: is not expanded and "$" is literal there: its path patterns are
// relative to the workspace already ("docs/*" is ${WORKSPACE}/docs/*;
// absolute patterns are refused) and "$" anchors its regexps. ${WORKSPACE},
// ${HOME} or ${TMPDIR} in it is an error, lest a deny rule written with one
// silently match nothing.
//
// # Extends
//
// extends: names the profile this one builds on: a name, looked up as
// above, or a path, relative to the directory of the extending file. The
// chain is read to its end (at most 16 profiles; a cycle is an error that
// lists it) and merged from the base up, each file over the result so far:
//
//   - scalars (strings, numbers, booleans) override;
//   - mappings merge key by key; a key set to null (~) removes the
//     inherited key: env.set entries and limits (an inherited limit goes
//     back to "inherit from vm-run"), and network's egress keys;
//   - tools: merges as described under Tool policy;
//   - lists append, skipping entries already present; a quoted entry "!X"
//     removes the inherited entry X (for paths, X with or without its "?"):
//     landlock.require: ["!tcp"]. Unquoted, !X is a YAML tag, which is
//     an error that says to quote it. Lists of mappings append all
//     their entries;
//   - name, description and extends are the file's own, never inherited.
//
// A removal (null or "!X") that finds nothing to remove is an error. A
// built-in profile extends only built-ins. A profile found by name that
// extends its own name gets the next one in the search order, so
// ~/.config/vm-run/profiles/strict.yaml with "extends: strict" refines the
// built-in strict rather than extending itself.
//
// # Errors
//
// Problems in a file are [*Error] values that print as file:line:column:
// path: message, with built-ins named builtin:NAME.yaml. yaml.v3 reports no
// column for syntax errors, so those print file:line: message.
//
// # Output
//
// [Profile.YAML] writes the merged, expanded profile as a loadable file, in
// a stable order, tools: included, with the upstream proxy's password
// written "xxxxx"; [Profile.Hash] identifies its rules, tool policy
// included, for the ledger (the password hashed as "xxxxx" too).
package profiles
