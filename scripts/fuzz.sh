#!/bin/sh
# Runs every fuzz target for a bounded time each (default 30s).
# New crashers land in the package's testdata/fuzz/ and fail the run.
set -eu
cd "$(dirname "$0")/.."
budget="${1:-30s}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "fuzz $pkg $target ($budget)"
		for attempt in 1 2; do
			if go test -run '^$' -fuzz "^$target\$" -fuzztime "$budget" "$pkg" >"$out" 2>&1; then
				cat "$out"
				break
			fi
			cat "$out"
			# The fuzzing engine itself sometimes ends with "context deadline
			# exceeded" as the time runs out (golang/go#48127-like); that is
			# not a finding if no crasher was written. Retry once.
			if [ "$attempt" = 1 ] && grep -q 'context deadline exceeded' "$out" &&
				[ ! -d "$dir/testdata/fuzz/$target" -o -z "$(git status --porcelain -- "$dir/testdata/fuzz/$target")" ]; then
				echo "fuzz $target: engine timeout without a crasher; retrying once"
				continue
			fi
			exit 1
		done
	done
done
