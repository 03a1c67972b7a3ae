#!/bin/sh
# A throwaway PostgreSQL cluster for the tests.
#
#   scripts/pg.sh start [DIR]   start a cluster in DIR (default: a new temporary
#                               directory) and print its DSN on stdout
#   scripts/pg.sh stop DIR      stop the cluster in DIR and remove DIR; safe to
#                               run twice, or on a DIR whose start failed
#
# The cluster listens only on a Unix socket inside DIR (no TCP port, so two
# clusters never collide), trusts local connections, and has the superuser
# "postgres". It keeps fsync on: the store refuses a server that does not.
# Run as root, the server runs as the "postgres" user (or "nobody"), since
# PostgreSQL refuses to run as root. If initdb is missing, Debian's
# postgresql package is installed.
#
# For use from a script, set the trap before starting:
#   dir=$(mktemp -d); trap 'scripts/pg.sh stop "$dir"' EXIT
#   BLINDEX_TEST_POSTGRES=$(scripts/pg.sh start "$dir")
set -eu

marker=.blindex-pg

log() { echo "scripts/pg.sh: $*" >&2; }

# find_bin prints the directory holding initdb and pg_ctl, newest version
# first, or nothing.
find_bin() {
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -rn); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			echo "$d"
			return
		fi
	done
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(command -v initdb)"
	fi
}

install_postgres() {
	log "installing PostgreSQL (Debian's postgresql package)"
	sudo=
	if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
	$sudo apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
}

# as_owner runs a command as the user that owns the cluster.
as_owner() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u "$(cat "$dir/owner")" -- "$@"
	else
		"$@"
	fi
}

start() {
	if [ $# -gt 0 ]; then
		dir=$1
		mkdir -p "$dir"
		if [ -n "$(ls -A "$dir")" ]; then
			log "$dir is not empty"
			exit 1
		fi
	else
		dir=$(mktemp -d "${TMPDIR:-/tmp}/blindex-pg.XXXXXX")
	fi
	dir=$(cd "$dir" && pwd)
	: >"$dir/$marker"

	bin=$(find_bin)
	if [ -z "$bin" ]; then
		install_postgres
		bin=$(find_bin)
	fi
	if [ -z "$bin" ]; then
		log "no initdb and pg_ctl found, even after installing postgresql"
		exit 1
	fi
	echo "$bin" >"$dir/bin"

	owner=$(id -un)
	if [ "$(id -u)" = 0 ]; then
		owner=nobody
		if id postgres >/dev/null 2>&1; then owner=postgres; fi
		chown "$owner" "$dir"
	fi
	echo "$owner" >"$dir/owner"

	as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust \
		--encoding=UTF8 --no-locale >"$dir/initdb.log" 2>&1 || {
		log "initdb failed:"
		cat "$dir/initdb.log" >&2
		exit 1
	}
	as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -s -w -t 60 \
		-o "-c listen_addresses='' -c unix_socket_directories='$dir' -c port=5432" \
		start >&2 || {
		log "pg_ctl start failed:"
		cat "$dir/data/server.log" >&2 || true
		exit 1
	}
	log "PostgreSQL $("$bin/pg_ctl" --version | sed 's/^pg_ctl (PostgreSQL) //; s/ .*//') running in $dir"
	if [ $# -eq 0 ]; then
		log "stop it with: scripts/pg.sh stop $dir"
	fi
	echo "postgres://postgres@/postgres?host=$dir&port=5432&sslmode=disable"
}

stop() {
	if [ $# -ne 1 ]; then
		log "usage: scripts/pg.sh stop DIR"
		exit 2
	fi
	dir=$1
	if [ ! -d "$dir" ]; then
		return 0 # already stopped and removed
	fi
	if [ ! -e "$dir/$marker" ]; then
		# Not ours, unless it is the empty directory a caller made for us.
		if rmdir "$dir" 2>/dev/null; then return 0; fi
		log "$dir has no $marker: not removing it"
		exit 1
	fi
	if [ -f "$dir/data/postmaster.pid" ] && [ -f "$dir/bin" ] && [ -f "$dir/owner" ]; then
		as_owner "$(cat "$dir/bin")/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 ||
			log "pg_ctl stop failed (the server may already be gone)"
	fi
	rm -rf "$dir"
}

case "${1:-}" in
start)
	shift
	start "$@"
	;;
stop)
	shift
	stop "$@"
	;;
*)
	log "usage: scripts/pg.sh start [DIR] | stop DIR"
	exit 2
	;;
esac
