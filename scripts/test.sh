#!/bin/sh
# The blindex test command. It runs every test, with the race detector, on
# a fresh clone with nothing but Go and gcc installed. Extra arguments go to
# "go test" (for example: scripts/test.sh -run TestStory ./directory).
set -eu
cd "$(dirname "$0")/.."

if ! command -v openssl >/dev/null 2>&1; then
	# The credential tests check our certificates with a second, independent
	# X.509 implementation.
	echo "scripts/test.sh: installing openssl" >&2
	if [ "$(id -u)" = 0 ]; then apt-get install -y openssl >&2; else sudo apt-get install -y openssl >&2; fi
fi

if [ $# -eq 0 ]; then
	set -- ./...
fi
exec go test -race -count=1 "$@"
