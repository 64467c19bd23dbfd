#!/usr/bin/env bash
# `make demo`: runs @modelcontextprotocol/server-filesystem under vm-run with
# the seeds' tool policy (a profile extending strict) and prints, call by
# call, what the proxy allowed or denied and why, what Landlock refused in
# the kernel, and `vm-run audit verify` and `show` on the session's ledger.
# The report is scripts/demo (Go, the official MCP Go SDK as the client).
# Exits non-zero if anything went otherwise than it must. Called by
# `make demo` after setup and build; runs as root or as a normal user.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bin=$root/bin/vm-run
mcp=$root/.cache/mcp
if [ ! -x "$bin" ]; then
	echo "demo: $bin is missing: run make build" >&2
	exit 2
fi
if [ ! -f "$mcp/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js" ]; then
	echo "demo: the MCP servers are not installed in $mcp: run scripts/setup.sh" >&2
	exit 2
fi

# As root, vm-run runs the server as nobody, who must be able to read the
# server's files. A checkout under /root (mode 0700) or with a umask of 077
# is not readable by nobody: then the demo runs a copy of the servers made
# readable, in a private directory under /tmp (the sandbox hides /tmp, but
# paths a profile grants beneath it are mounted back).
probe="node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"
if [ "$(id -u)" -eq 0 ] && ! setpriv --reuid 65534 --regid 65534 --clear-groups test -r "$mcp/$probe" 2>/dev/null; then
	stage=$(mktemp -d /tmp/vm-run-demo-mcp.XXXXXX)
	trap 'rm -rf "$stage"' EXIT
	echo "demo: nobody, who runs the server for root, cannot read $mcp; using a readable copy in $stage" >&2
	cp -a "$mcp/." "$stage/"
	chmod -R o+rX,go-w "$stage"
	chmod 755 "$stage"
	mcp=$stage
	setpriv --reuid 65534 --regid 65534 --clear-groups test -r "$mcp/$probe" || {
		echo "demo: error: nobody cannot read the copy in $mcp either" >&2
		exit 2
	}
fi

# Built rather than `go run`, which would fold the demo's exit status into 1.
mkdir -p .cache/demo
go build -o .cache/demo/demo ./scripts/demo
# The Landlock case needs a directory the sandbox sees but is not granted:
# one in the checkout if that is such a place, else another (see
# scripts/demo/outside.go).
.cache/demo/demo -vmrun "$bin" -mcp "$mcp" -outside "$root/.cache/demo/outside" "$@"
