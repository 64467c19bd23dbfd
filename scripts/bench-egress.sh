#!/bin/sh
# bench-egress.sh: network mode egress against direct loopback, each
# measured in the same run as its baseline (package netns/stack's
# benchmarks): one-stream download through the stack and straight from the
# test process; four streams at once with the process's peak RSS; and
# connection setup, p50 added over a direct connect, with the records kept
# in memory and, as vm-run run does, synced to a ledger in $TMPDIR (put it
# on a disk: on tmpfs a sync costs nothing). Issue 11's targets: download
# at least 0.4x direct, setup adding at most 0.5 ms, RSS at most 64 MB,
# 1,000 concurrent connections held (under the default limits).
#
# Environment: BENCH_COUNT (runs of each, default 3), TMPDIR.
set -eu
cd "$(dirname "$0")/.."
count=${BENCH_COUNT:-3}
dir=${TMPDIR:-/tmp}
echo "== network mode egress against direct loopback ($count runs each; ledger on $(stat -f -c %T "$dir" 2>/dev/null || echo unknown) in $dir)"
go test -run '^$' -bench 'Download|Connect|Hold' -benchtime 2x -count "$count" ./netns/stack |
	awk '/^Benchmark/ {
		name = $1; sub(/-[0-9]+$/, "", name)
		line = ""
		for (i = 3; i < NF; i += 2) if ($(i+1) != "ns/op") line = line sprintf("  %s %s", $i, $(i+1))
		print name ":" line
	}'
