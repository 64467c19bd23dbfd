#!/usr/bin/env bash
# Installs what building and testing vm-run needs and is missing: Debian's
# libseccomp-dev (static library for the cgo build), bubblewrap (the
# benchmark's baseline) and the real MCP servers and SDK from the npm registry
# (end-to-end tests, demo). Safe to run again: it only installs what is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in libseccomp-dev bubblewrap pkg-config; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "setup: installing ${need[*]}" >&2
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

command -v go >/dev/null || { echo "setup: go is not installed (https://go.dev/doc/install)" >&2; exit 1; }
command -v node >/dev/null && command -v npm >/dev/null || {
	echo "setup: installing nodejs and npm" >&2
	sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
}

# The MCP servers and client SDK used by the end-to-end tests and the demo,
# pinned in scripts/mcp/package.json and installed into .cache/mcp.
mcp=.cache/mcp
if [ ! -f "$mcp/.installed" ] || [ scripts/mcp/package.json -nt "$mcp/.installed" ]; then
	echo "setup: installing MCP servers into $mcp" >&2
	mkdir -p "$mcp"
	cp scripts/mcp/package.json "$mcp/package.json"
	(cd "$mcp" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
	touch "$mcp/.installed"
fi
go mod download
