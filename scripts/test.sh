#!/bin/sh
# The blindex test command. It runs every test, with the race detector, on
# a fresh clone with nothing but Go and gcc installed (it installs openssl,
# chromium and PostgreSQL if they are missing). Extra arguments go to "go test" (for
# example: scripts/test.sh -run TestStory ./directory).
set -eu
cd "$(dirname "$0")/.."

# apt_install PACKAGE... installs Debian packages (as root, or through sudo).
apt_install() {
	echo "scripts/test.sh: installing $*" >&2
	if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
	$sudo apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >&2
}

# The credential tests check our certificates with a second, independent
# X.509 implementation (openssl); the disclosure report is rendered in a
# real browser (chromium).
missing=
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
if [ -n "$missing" ]; then
	apt_install $missing
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
