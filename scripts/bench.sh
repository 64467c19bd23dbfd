#!/usr/bin/env bash
# `make bench`: start-up cost of the sandbox against bare /bin/true,
# `unshare -rn` and bubblewrap with the same isolation (user, network, PID,
# IPC and UTS namespaces, a new session, a fresh /proc and /tmp, and vm-run's
# own seccomp filter loaded with --seccomp), then the ledger and proxy
# benchmarks. The "go re-exec floor" row (scripts/benchfloor) is a minimal
# Go program that only re-executes itself into the same namespaces and
# executes the command: what vm-run's design costs before any of its work. Figures are medians of interleaved runs, as ratios measured in
# the same run: this machine is noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${BENCH_RUNS:-50}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/benchrun" ./scripts/benchrun
CGO_ENABLED=0 go build -o "$tmp/benchfloor" ./scripts/benchfloor
CGO_ENABLED=1 go build -tags osusergo,netgo -o "$tmp/bpfexport" ./scripts/bpfexport
"$tmp/bpfexport" "$tmp/filter.bpf"
root=$PWD
ws=$(mktemp -d)
chmod 0755 "$ws"
trap 'rm -rf "$tmp" "$ws"' EXIT
echo "== sandbox start-up: /bin/true, $runs runs each"
(cd "$ws" && "$tmp/benchrun" -n "$runs" -base bwrap -fd3 "$tmp/filter.bpf" ${BENCH_MARKDOWN:+-markdown} \
	"bare=/bin/true" \
	"unshare -rn=unshare -rn /bin/true" \
	"go re-exec floor=$tmp/benchfloor /bin/true" \
	"bwrap=bwrap --unshare-user --unshare-net --unshare-pid --unshare-ipc --unshare-uts --die-with-parent --new-session --ro-bind / / --proc /proc --dev /dev --tmpfs /tmp --seccomp 3 /bin/true" \
	"vm-run strict=$root/bin/vm-run --profile strict --no-proxy --workspace $ws -- /bin/true")
for extra in scripts/bench-*.sh; do
	[ -f "$extra" ] || continue
	echo
	bash "$extra"
done
