#!/usr/bin/env bash
# Runs every test: vet, the whole suite as the caller (root on CI), then the
# packages that touch the kernel again as an unprivileged uid, since real
# users are not root. Called by `make test` after setup and build.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CGO_ENABLED=1
export VMRUN_BIN=$root/bin/vm-run
export VMRUN_MCP=$root/.cache/mcp/node_modules
export VMRUN_MCP_SERVERS=$root/.cache/mcp
tags=osusergo,netgo

echo "== go vet" >&2
go vet -tags "$tags" ./...

echo "== go test (uid $(id -u))" >&2
go test -tags "$tags" -count=1 -timeout 15m ./...

# The same kernel-facing tests as uid 65534. Test binaries and vm-run are
# copied where that uid can read and execute them.
kernel_pkgs=(landlock seccomp sandbox sandbox/selftest netns cmd/vm-run)
if [ "$(id -u)" -ne 0 ]; then
	echo "== unprivileged pass skipped: already running as uid $(id -u)" >&2
	exit 0
fi
work=$(mktemp -d /tmp/vmrun-unpriv.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"
mkdir -p "$work/home" "$work/bin"
cp bin/vm-run "$work/bin/vm-run"
for pkg in "${kernel_pkgs[@]}"; do
	[ -d "$pkg" ] || continue
	go test -tags "$tags" -c -o "$work/$(echo "$pkg" | tr / _).test" "./$pkg"
done
# Test binaries read their testdata relative to the package directory, and
# the end-to-end tests read the MCP servers: when uid 65534 cannot reach the
# checkout (a clone under /root, say), run from a copy it can.
src=$root
if ! setpriv --reuid 65534 --regid 65534 --clear-groups test -r "$root/go.mod"; then
	echo "== uid 65534 cannot read $root: copying the tree to $work/src" >&2
	mkdir -p "$work/src"
	git ls-files -z | xargs -0 cp --parents -t "$work/src"
	mkdir -p "$work/src/.cache"
	cp -a .cache/mcp "$work/src/.cache/mcp"
	src=$work/src
	VMRUN_MCP=$src/.cache/mcp/node_modules
	VMRUN_MCP_SERVERS=$src/.cache/mcp
fi
chown -R 65534:65534 "$work/home"
chmod -R a+rX "$work"
fail=0
for pkg in "${kernel_pkgs[@]}"; do
	t="$work/$(echo "$pkg" | tr / _).test"
	[ -f "$t" ] || continue
	echo "== $pkg as uid 65534" >&2
	if ! (cd "$src/$pkg" && env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$work/home" TMPDIR=/tmp \
		VMRUN_BIN="$work/bin/vm-run" VMRUN_MCP="$VMRUN_MCP" VMRUN_MCP_SERVERS="$VMRUN_MCP_SERVERS" VMRUN_UNPRIVILEGED=1 \
		setpriv --reuid 65534 --regid 65534 --clear-groups "$t" -test.count=1 -test.timeout=10m); then
		fail=1
	fi
done
exit $fail
