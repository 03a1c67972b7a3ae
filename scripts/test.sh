#!/bin/sh
# The blindex test command. It runs every test, with the race detector, on
# a fresh clone with nothing but Go and gcc installed (it installs openssl
# and PostgreSQL if they are missing). Extra arguments go to "go test" (for
# example: scripts/test.sh -run TestStory ./directory).
set -eu
cd "$(dirname "$0")/.."

if ! command -v openssl >/dev/null 2>&1; then
	# The credential tests check our certificates with a second, independent
	# X.509 implementation.
	echo "scripts/test.sh: installing openssl" >&2
	if [ "$(id -u)" = 0 ]; then apt-get install -y openssl >&2; else sudo apt-get install -y openssl >&2; fi
fi

# The PostgreSQL store's tests need a server: unless BLINDEX_TEST_POSTGRES
# names one, start a throwaway cluster (scripts/pg.sh) and always stop it.
if [ -z "${BLINDEX_TEST_POSTGRES:-}" ]; then
	pgdir=$(mktemp -d "${TMPDIR:-/tmp}/blindex-pg.XXXXXX")
	trap 'scripts/pg.sh stop "$pgdir"' EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
	BLINDEX_TEST_POSTGRES=$(scripts/pg.sh start "$pgdir")
	export BLINDEX_TEST_POSTGRES
fi

if [ $# -eq 0 ]; then
	set -- ./...
fi
go test -race -count=1 "$@"
