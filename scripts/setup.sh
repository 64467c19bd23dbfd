#!/usr/bin/env bash
# Installs what building, testing and the demo need and is missing, on
# Debian 12 or later and Ubuntu 24.04 or later, as root or with sudo:
#
#   - from Debian's (or Ubuntu's) packages: gcc and the C library's static
#     files and libseccomp-dev (the static cgo build), pkg-config,
#     bubblewrap (the benchmark's baseline), curl and musl-tools (the
#     egress tests), Node.js and npm (the real MCP servers), and a Go new
#     enough to switch toolchains (1.21 or later: the release's own, or its
#     backports where that is older);
#   - with the go command: the Go that go.mod names, downloaded from the Go
#     module proxy by the go command's own toolchain switching (the
#     Makefile sets GOTOOLCHAIN=auto), and the modules;
#   - from the npm registry: the MCP servers and SDK, into .cache/mcp.
#
# Each step says what it does before it does it. Safe to run again: it only
# installs what is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*" >&2; }

# as_root runs a command as root: directly, or with sudo for anyone else.
# Nothing needs it unless something is missing.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		say "error: $1 must run as root to install what is missing: run this as root, or install sudo"
		exit 1
	fi
}
apt_updated=""
apt_update() {
	if [ -z "$apt_updated" ]; then
		say "updating the package lists (apt-get update)"
		as_root apt-get update -q
		apt_updated=1
	fi
}
# apt_install PKG... [-- APT-OPTIONS...] installs the packages not yet
# installed, showing apt's progress.
apt_install() {
	local pkgs=() opts=() need=()
	while (($#)); do
		if [ "$1" = -- ]; then shift; opts=("$@"); break; fi
		pkgs+=("$1"); shift
	done
	for pkg in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
	done
	((${#need[@]})) || return 0
	apt_update
	say "installing ${need[*]} (apt-get install)"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${opts[@]}" "${need[@]}"
}

command -v apt-get >/dev/null || { say "error: this script installs with apt-get (Debian, Ubuntu); install by hand: gcc, libseccomp-dev, pkg-config, python3 with venv, curl, musl-gcc, Go 1.21 or later, Node.js 18 or later with npm"; exit 1; }

apt_install ca-certificates gcc libc6-dev libseccomp-dev pkg-config bubblewrap
# For the tests of a Python server in a virtual environment.
apt_install python3-venv
# For the egress tests, which run curl inside the sandbox, and a client
# built statically against musl (musl-gcc), whose resolver is not glibc's.
apt_install curl musl-tools

# Network mode egress opens /dev/net/tun as the user who runs vm-run. Its
# usual mode is 0666, which udev's default rules set on Debian and Ubuntu;
# a machine without udev (a minimal VM, a container) may have it 0600,
# and the tests' unprivileged pass then could not run a single egress
# sandbox. Opening the device grants nothing by itself: creating a device
# needs CAP_NET_ADMIN in a network namespace of one's own.
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
	say "/dev/net/tun is mode $(stat -c %a /dev/net/tun); setting its usual 0666, as udev does"
	as_root chmod 0666 /dev/net/tun
elif [ ! -e /dev/net/tun ]; then
	say "/dev/net/tun is missing: loading the tun module"
	as_root modprobe tun || say "warning: modprobe tun failed; network mode egress will refuse to start (vm-run doctor)"
fi

# go_minor prints the minor version of the go command on PATH (21 for
# go1.21.5), or nothing.
go_minor() {
	# GOTOOLCHAIN=local: the version of this go command, not of the one
	# go.mod would switch to.
	GOTOOLCHAIN=local go env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p'
}
# A Go installed from go.dev's archive is often not on PATH yet.
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
minor=$(command -v go >/dev/null && go_minor || true)
if [ -z "$minor" ] || [ "$minor" -lt 21 ]; then
	say "Go ${minor:+1.$minor }is missing or too old to switch toolchains (want 1.21 or later)"
	apt_update
	candidate=$(apt-cache policy golang-go | sed -n 's/^ *Candidate: *[0-9]*:*1\.\([0-9]*\).*/\1/p')
	. /etc/os-release
	if [ -n "$candidate" ] && [ "$candidate" -ge 21 ]; then
		apt_install golang-go
	elif [ "${ID:-}" = debian ] && [ -n "${VERSION_CODENAME:-}" ]; then
		# The release's Go is older: its backports have a newer one, from
		# the same mirror the release comes from.
		mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' 2>/dev/null |
			grep -v -e security -e backports | head -n1)
		mirror=${mirror:-http://deb.debian.org/debian/}
		list=/etc/apt/sources.list.d/vm-run-backports.list
		say "adding ${VERSION_CODENAME}-backports from $mirror ($list) for a newer Go"
		echo "deb ${mirror%/} ${VERSION_CODENAME}-backports main" | as_root tee "$list" >/dev/null
		apt_updated=""
		apt_install golang-go -- -t "${VERSION_CODENAME}-backports"
	else
		say "error: no Go 1.21 or later in this system's packages; install one from https://go.dev/dl/ and run make again"
		exit 1
	fi
	hash -r
	minor=$(go_minor)
	say "installed go1.$minor"
fi
want=$(sed -n 's/^go //p' go.mod)
say "go.mod asks for Go $want or later; go1.$minor fetches it from the Go module proxy if it is older itself"
GOTOOLCHAIN=${GOTOOLCHAIN:-auto} go version >&2

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	say "installing Node.js and npm for the MCP servers (a few minutes on a new machine)"
	apt_install nodejs npm
fi

# The MCP servers and client SDK used by the end-to-end tests and the demo,
# pinned in scripts/mcp/package.json and installed into .cache/mcp.
mcp=.cache/mcp
if [ ! -f "$mcp/.installed" ] || [ scripts/mcp/package.json -nt "$mcp/.installed" ]; then
	say "installing the MCP servers and SDK from the npm registry into $mcp (npm install)"
	mkdir -p "$mcp"
	cp scripts/mcp/package.json "$mcp/package.json"
	(cd "$mcp" && npm install --no-audit --no-fund --loglevel=error)
	touch "$mcp/.installed"
fi
say "downloading Go modules (go mod download)"
GOTOOLCHAIN=${GOTOOLCHAIN:-auto} go mod download
