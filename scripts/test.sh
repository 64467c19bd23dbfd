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

# The sandbox does not speak MCP: the policy language is package policy,
# and nothing of the proxy or the MCP SDK may be linked into it.
echo "== go list -deps ./sandbox" >&2
if go list -tags "$tags" -deps ./sandbox | grep -E 'vm-run/vm-run/proxy|modelcontextprotocol'; then
	echo "the sandbox package depends on an MCP transport package (above)" >&2
	exit 1
fi

# A failure here does not stop the unprivileged pass: both are reported,
# and the script fails if either did.
echo "== go test (uid $(id -u))" >&2
first=0
go test -tags "$tags" -count=1 -timeout 15m ./... || first=1
# Each benchmark once, so that `make bench` never meets one that no longer
# runs; the figures mean nothing here.
echo "== benchmarks, once each" >&2
go test -tags "$tags" -count=1 -run '^$' -bench . -benchtime 1x ./... >/dev/null || first=1

# The same kernel-facing tests as uid 65534. Test binaries and vm-run are
# copied where that uid can read and execute them.
kernel_pkgs=(landlock seccomp sandbox sandbox/cgroup sandbox/selftest netns netns/egress netns/stack policy proxy cmd/vm-run)
if [ "$(id -u)" -ne 0 ]; then
	echo "== unprivileged pass skipped: already running as uid $(id -u)" >&2
	exit $first
fi
work=$(mktemp -d /tmp/vmrun-unpriv.XXXXXX)
home=
cgroups=()
cleanup() {
	rm -rf "$work" ${home:+"$home"}
	# Deepest first: vm-run's cgroups beneath the delegated ones.
	for d in ${cgroups[@]+"${cgroups[@]}"}; do
		find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
}
trap cleanup EXIT
# uid 65534's home is where users' homes are, not under /tmp, which the
# sandbox hides: the tests keep servers and files there, outside the
# workspace, as users do. /home may not be writable by root (NFS with
# root squashed): /var/lib then.
home=$(mktemp -d /home/vmrun-unpriv-home.XXXXXX 2>/dev/null) ||
	home=$(mktemp -d /var/lib/vmrun-unpriv-home.XXXXXX)

# Real users are not root, and the built-in profiles' limits need a cgroup
# delegated to them, as systemd's user manager has one. Delegate one to uid
# 65534 in every hierarchy that holds pids, memory or cpu, as an
# administrator would on v1 (the directory, cgroup.procs, tasks) and
# systemd does on v2 (with cgroup.subtree_control and cgroup.threads, the
# controllers passed on, the tests in a child, as apps are in scopes under
# user@.service); a v2 hierarchy without those controllers is delegated
# too, for the v2 tests of sandbox/cgroup. The tests move themselves in.
procs=""
cgname=vmrun-unpriv-$$
while read -r _ _ _ mroot point _ rest; do
	fstype=${rest#*- }
	super=${fstype##* }
	fstype=${fstype%% *}
	[ "$mroot" = / ] || continue
	case $fstype in
	cgroup)
		case ",$super," in
		*,pids,* | *,memory,* | *,cpu,*) ;;
		*) continue ;;
		esac
		cg=$point/$cgname
		mkdir "$cg" || continue
		cgroups+=("$cg")
		chown 65534:65534 "$cg" "$cg/cgroup.procs" "$cg/tasks"
		procs="$procs $cg/cgroup.procs"
		;;
	cgroup2)
		cg=$point/$cgname
		for c in $(cat "$point/cgroup.controllers"); do
			echo "+$c" >"$point/cgroup.subtree_control" || true
		done
		mkdir "$cg" || continue
		cgroups+=("$cg")
		for c in $(cat "$cg/cgroup.controllers"); do
			echo "+$c" >"$cg/cgroup.subtree_control"
		done
		mkdir "$cg/tests"
		chown 65534:65534 "$cg" "$cg/cgroup.procs" "$cg/cgroup.subtree_control" "$cg/cgroup.threads" \
			"$cg/tests" "$cg/tests/cgroup.procs" "$cg/tests/cgroup.subtree_control" "$cg/tests/cgroup.threads"
		procs="$procs $cg/tests/cgroup.procs"
		;;
	esac
done </proc/self/mountinfo
chmod 0755 "$work"
mkdir -p "$work/bin"
cp bin/vm-run "$work/bin/vm-run"
# The Go example server, which uid 65534 cannot build (no go on its PATH).
go build -o "$work/bin/wordcount" ./scripts/examples/wordcount-go
CGO_ENABLED=0 go build -o "$work/bin/netclient" ./cmd/vm-run/testdata/netclient
# The egress test's musl client (scripts/setup.sh installs musl-tools).
musl-gcc -static -O2 -o "$work/bin/muslclient" cmd/vm-run/testdata/muslclient/main.c
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
chown -R 65534:65534 "$home"
chmod 0755 "$home"
chmod -R a+rX "$work"
fail=0
for pkg in "${kernel_pkgs[@]}"; do
	t="$work/$(echo "$pkg" | tr / _).test"
	[ -f "$t" ] || continue
	echo "== $pkg as uid 65534" >&2
	if ! (cd "$src/$pkg" && env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$home" TMPDIR=/tmp \
		VMRUN_BIN="$work/bin/vm-run" VMRUN_WORDCOUNT="$work/bin/wordcount" VMRUN_NETCLIENT="$work/bin/netclient" VMRUN_MUSLCLIENT="$work/bin/muslclient" VMRUN_MCP="$VMRUN_MCP" VMRUN_MCP_SERVERS="$VMRUN_MCP_SERVERS" VMRUN_UNPRIVILEGED=1 CI="${CI:-}" \
		sh -c 'for p in $1; do echo $$ >"$p"; done; shift; exec "$@"' sh "$procs" \
		setpriv --reuid 65534 --regid 65534 --clear-groups "$t" -test.count=1 -test.timeout=10m); then
		fail=1
	fi
done
if [ $first -ne 0 ]; then
	echo "== FAILED: the tests as uid $(id -u) (above)" >&2
fi
if [ $fail -ne 0 ]; then
	echo "== FAILED: the tests as uid 65534 (above)" >&2
fi
exit $((first | fail))
