#!/usr/bin/env bash
# Runs every native Go fuzz target for FUZZTIME each (default 30s), one at a
# time: go test -fuzz takes one target per run. New crashers land in the
# package's testdata/fuzz and fail the run; they are then regression seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=1
fuzztime=${FUZZTIME:-30s}
fail=0
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "== $pkg $target ($fuzztime)" >&2
		if ! go test -tags osusergo,netgo -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"; then
			fail=1
		fi
	done
done
exit $fail
