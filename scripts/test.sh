#!/bin/sh
# The blindex test command. It runs every test, with the race detector, on
# a fresh clone with nothing but Go, gcc and npm installed (it installs
# openssl, chromium, systemd and PostgreSQL if they are missing). Before the
# Go tests it lints docs/api.yaml and verifies the systemd units in
# docs/systemd. Extra arguments go to "go test" (for example:
# scripts/test.sh -run TestStory ./directory).
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
# systemd-analyze checks the unit files in docs/systemd.
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
if [ -n "$missing" ]; then
	apt_install $missing
fi

# The API description must lint clean. Redocly CLI is pinned, and npm keeps
# it in the user cache directory (a temporary one without a home), so only
# the first run downloads it. recommended-strict is the default rule set
# with every warning an error, so any problem fails the run.
if ! command -v npx >/dev/null 2>&1; then
	echo "scripts/test.sh: npx not found: install Node.js 20.19 or newer with npm (the docs/api.yaml lint needs it)" >&2
	exit 1
fi
cache=${XDG_CACHE_HOME:-${HOME:+$HOME/.cache}}
if [ -z "$cache" ] || ! mkdir -p "$cache/blindex/npm" 2>/dev/null; then
	cache=${TMPDIR:-/tmp}/blindex-cache-$(id -u)
	mkdir -p "$cache/blindex/npm"
fi
npm_config_cache=$cache/blindex/npm REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
	npx --yes @redocly/cli@2.77.0 lint --extends recommended-strict --format stylish docs/api.yaml

# verify_units checks each unit in docs/systemd with systemd-analyze verify,
# inside a scratch root that holds this checkout's blindex at the units'
# ExecStart path (verify refuses a missing binary) and the host's system
# units (verify needs sysinit.target and the like). verify only warns about
# a misspelled directive or a bad value, so any output fails the check too.
# Then "systemd-analyze security" must rate each unit's exposure 1.5 or
# less (1.1 now), and the directives docs/operations.md promises must be
# there.
verify_units() {
	root=$(mktemp -d "${TMPDIR:-/tmp}/blindex-units.XXXXXX")
	mkdir -p "$root/usr/local/bin" "$root/usr/lib/systemd" "$root/etc/systemd/system"
	cp -R /usr/lib/systemd/system "$root/usr/lib/systemd/"
	go build -o "$root/usr/local/bin/blindex" ./cmd/blindex
	cp docs/systemd/*.service "$root/etc/systemd/system/"
	ok=true
	for unit in docs/systemd/*.service; do
		name=$(basename "$unit")
		if ! out=$(systemd-analyze verify --root="$root" --man=no --generators=no "$root/etc/systemd/system/$name" 2>&1) || [ -n "$out" ]; then
			echo "scripts/test.sh: systemd-analyze verify $unit:" >&2
			echo "$out" >&2
			ok=false
		fi
		if ! out=$(systemd-analyze security --offline=yes --threshold=15 --root="$root" --man=no "$root/etc/systemd/system/$name" 2>&1); then
			echo "scripts/test.sh: $unit is exposed more than 1.5:" >&2
			echo "$out" | grep -v '^✓' >&2 || true
			ok=false
		fi
		for want in '^User=blindex' '^StateDirectory=blindex' '^ReadWritePaths=/var/lib/blindex' '^LoadCredential=identity:/etc/' \
			'^ExecStart=/usr/local/bin/blindex .*--identity %d/identity' '^Restart=on-failure$' '^NoNewPrivileges=yes$' \
			'^ProtectSystem=strict$' '^ProtectHome=yes$' '^PrivateTmp=yes$'; do
			if ! grep -q "$want" "$unit"; then
				echo "scripts/test.sh: $unit lacks a line matching $want" >&2
				ok=false
			fi
		done
	done
	rm -rf "$root"
	$ok
}
verify_units

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
