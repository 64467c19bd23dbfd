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
# server's files.
if [ "$(id -u)" -eq 0 ] && ! setpriv --reuid 65534 --regid 65534 --clear-groups \
	test -r "$mcp/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js" 2>/dev/null; then
	echo "demo: uid 65534 (nobody), who runs the server for root, cannot read $mcp" >&2
	echo "demo: hint: make the checkout readable by others (chmod -R o+rX), or run as a normal user" >&2
	exit 2
fi

# Built rather than `go run`, which would fold the demo's exit status into 1.
mkdir -p .cache/demo
go build -o .cache/demo/demo ./scripts/demo
# The Landlock case needs a directory the sandbox sees but is not granted:
# one in the checkout (the sandbox hides /tmp).
exec .cache/demo/demo -vmrun "$bin" -mcp "$mcp" -outside "$root/.cache/demo/outside" "$@"
