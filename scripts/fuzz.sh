#!/bin/sh
# Runs every fuzz target for a bounded time each (default 30s).
# New crashers land in the package's testdata/fuzz/ and fail the run.
set -eu
cd "$(dirname "$0")/.."
budget="${1:-30s}"
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "fuzz $pkg $target ($budget)"
		go test -run '^$' -fuzz "^$target\$" -fuzztime "$budget" "$pkg"
	done
done
