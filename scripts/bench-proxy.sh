#!/usr/bin/env bash
# bench-proxy.sh: what vm-run's MCP proxy costs (scripts/benchproxy).
#
#  - tools/call latency, p50 and p99, of server-everything's "echo" tool
#    spoken to directly, behind `vm-run --no-proxy` (the sandbox alone), and
#    behind vm-run with its ledger on tmpfs and on the repository's disk
#    (every allowed call waits for two fsynced records), and with one
#    secret handed to the server, so that every answer is scrubbed (the
#    ratio against the same run without); interleaved blocks;
#  - notification pass-through, both directions, through a fake MCP server
#    (benchproxy fake-server) that floods faster than a real one;
#  - VmRSS and VmHWM of the vm-run parent (proxy + ledger writer) under load.
#
# Targets (issue 9): added p50 <= 0.3 ms with the durable ledger; proxy
# RSS <= 20 MB. A MISS is reported, not an error.
#
# Environment: VMRUN (default bin/vm-run, `make build`), BENCH_BLOCKS and
# BENCH_CALLS (default 10 blocks of 100 calls per variant), BENCH_REPEATS
# (floods, default 3), BENCH_LEDGERS (ledger directory, default a temporary
# one under .cache, on the repository's disk: fsync on tmpfs costs nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
vmrun=${VMRUN:-$root/bin/vm-run}
modules=$root/.cache/mcp/node_modules
everything=$modules/@modelcontextprotocol/server-everything/dist/index.js
[ -x "$vmrun" ] || { echo "bench-proxy: $vmrun is missing: run make build" >&2; exit 1; }
[ -f "$everything" ] || { echo "bench-proxy: $everything is missing: run scripts/setup.sh" >&2; exit 1; }

# Everything lives under .cache so the ledgers are on the repository's disk.
# As root the server runs as uid 65534: the workspace and the fake server
# must be readable and executable by it.
mkdir -p .cache
tmp=$(mktemp -d "$root/.cache/bench-proxy.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 0755 "$tmp"
mkdir -m 0755 "$tmp/ws" "$tmp/ledgers"
ledgers=${BENCH_LEDGERS:-$tmp/ledgers}
CGO_ENABLED=0 go build -o "$tmp/ws/benchproxy" ./scripts/benchproxy
chmod 0755 "$tmp/ws/benchproxy"

# strict, plus reading the installed MCP servers (the workspace, where the
# fake server lives, is already readable and executable under strict).
cat >"$tmp/profile.yaml" <<EOF
name: bench-proxy
description: strict plus read access to the installed MCP servers
extends: strict
filesystem:
  read:
    - $modules
EOF
# The same, handing the server one secret: every message it sends is then
# scrubbed (the "scrubbing" variant; benchproxy sets VMRUN_BENCH_SECRET).
cat >"$tmp/profile-secrets.yaml" <<EOF
name: bench-proxy-secrets
extends: $tmp/profile.yaml
secrets:
  bench: {env: VMRUN_BENCH_SECRET}
env:
  set:
    BENCH_TOKEN: \${secret:bench}
EOF
# The policy allows only what the benchmark calls.
cat >"$tmp/policy.yaml" <<'EOF'
rules:
  - id: bench
    allow: [echo, flood, stats, big]
EOF

# A tmpfs ledger shows what the fsyncs cost; skipped where there is none.
shm=
if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
	shm=$(mktemp -d /dev/shm/vm-run-bench-proxy.XXXXXX)
	trap 'rm -rf "$tmp" "$shm"' EXIT
fi

"$tmp/ws/benchproxy" -vm-run "$vmrun" -profile "$tmp/profile.yaml" -policy "$tmp/policy.yaml" \
	-workspace "$tmp/ws" -ledgers "$ledgers" -tmpfs "$shm" -fake "$tmp/ws/benchproxy" \
	-secrets "$tmp/profile-secrets.yaml" \
	-blocks "${BENCH_BLOCKS:-10}" -calls "${BENCH_CALLS:-100}" -repeats "${BENCH_REPEATS:-3}" \
	-sdk "$modules/@modelcontextprotocol/sdk" -sdk-client "$root/scripts/benchproxy/sdk/client.mjs" \
	-- node "$everything" stdio
