#!/bin/sh
# Regenerates the figures of docs/performance.md in one run: it builds
# synthetic directories ("blindex synth"), runs the Go benchmarks (each with
# a baseline measured in the same run), loads a live "blindex serve" with
# "blindex bench", and rewrites the block between the bench.sh markers in
# docs/performance.md: every figure with the command that produced it, the
# machine, the date, the targets of issue 6 and the peer comparison. The rest
# of the file is left as it is.
#
# Usage: scripts/bench.sh [OWNERS...]     (default: 100000 1000000 10000000)
#
# Environment:
#   BENCH_DIR   synthetic directories and raw results (default
#               /tmp/blindex-bench); a directory built there before, with its
#               synth-N.json, is reused rather than built again
#   BENCH_TIME  -benchtime of the OPRF, HTTP and store benchmarks (default 3s)
#   LOOKUPS     -benchtime of the lookup benchmarks (default 20x)
#   BLINDEX     a blindex binary to use instead of building ./cmd/blindex
#   BENCH_DOC   the document to update (default docs/performance.md)
#   BENCH_REPORT_ONLY=1  run nothing: rewrite the document from the raw results
#               of the last run in BENCH_DIR (after editing this script's text)
#
# With 10 M owners a run takes about an hour and 15 GB of disk on a 2-core
# machine. The absolute figures are only as good as the machine is quiet:
# the load average at the start and the end goes into the document.
set -eu
cd "$(dirname "$0")/.."

DIR=${BENCH_DIR:-/tmp/blindex-bench}
BT=${BENCH_TIME:-3s}
LOOKUPS=${LOOKUPS:-20x}
SIZES=${*:-100000 1000000 10000000}
R=$DIR/results
DOC=${BENCH_DOC:-docs/performance.md}
FRIEND=+14155550100 # in every synthetic allowlist: the lookup caller
OTHER=+14155552671  # the evaluate caller of the live run
REPORT_ONLY=${BENCH_REPORT_ONLY:-}
mkdir -p "$R"
: >"$R/figures"

if [ -n "${BLINDEX:-}" ]; then
	BIN=$BLINDEX
elif [ -z "$REPORT_ONLY" ]; then
	BIN=$DIR/blindex
	go build -o "$BIN" ./cmd/blindex
fi
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
if [ -z "$REPORT_ONLY" ]; then
	echo "LOAD_START='$(loadavg)' START='$(date -u '+%Y-%m-%d %H:%M UTC')'" >"$R/run.env"
fi
. "$R/run.env"

# produce FILE COMMAND...: runs COMMAND, its output to FILE (and stderr),
# unless only the report is wanted.
produce() {
	f=$1
	shift
	if [ -z "$REPORT_ONLY" ]; then
		"$@" | tee "$f" >&2
	fi
}

# metric FILE BENCHMARK UNIT: the value reported with UNIT on BENCHMARK's line.
metric() {
	awk -v b="$2" -v u="$3" '
		$1 == b || (index($1, b) == 1 && substr($1, length(b) + 1) ~ /^-[0-9]+$/) {
			for (i = 4; i <= NF; i++) if ($i == u) { print $(i - 1); exit }
		}' "$1"
}
# jget FILE KEY: a number from a JSON object.
jget() { jq -r ".$2 // empty" "$1"; }
# fmt VALUE DIGITS: VALUE rounded, or "n/a".
fmt() { if [ -z "$1" ]; then echo "n/a"; else printf "%.${2}f" "$1"; fi; }
# figure NAME VALUE COMMAND: one row of the figures table. A pipe in the
# command is escaped, or Markdown would split the cell there.
figure() { printf '| %s | %s | `%s` |\n' "$1" "$2" "$(printf '%s' "$3" | sed 's/|/\\|/g')" >>"$R/figures"; }
# cmp VALUE OP LIMIT: "met" or "not met" (OP is le or ge), "not measured" without a value.
cmp() {
	if [ -z "$1" ]; then echo "not measured"; return; fi
	awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { ok = (op == "le") ? v <= t : v >= t; print ok ? "**met**" : "**not met**" }'
}
div() { if [ -z "$1" ] || [ -z "$2" ]; then echo ""; else awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'; fi; }

echo "== OPRF against circl" >&2
C_OPRF="go test -run '^\$' -bench 'VsCircl|AllCores' -benchtime $BT ./oprf"
produce "$R/oprf.txt" go test -run '^$' -bench 'VsCircl|AllCores' -benchtime "$BT" ./oprf
O=$R/oprf.txt
for n in 1 10 100 1000; do
	figure "Server evaluate, batch $n: ours / circl POPRF / plain OPRF (µs per element)" \
		"$(fmt "$(div "$(metric "$O" "BenchmarkServerEvaluateVsCircl/$n" ours-ns/elem)" 1000)" 1) / $(fmt "$(div "$(metric "$O" "BenchmarkServerEvaluateVsCircl/$n" circl-ns/elem)" 1000)" 1) / $(fmt "$(div "$(metric "$O" "BenchmarkServerEvaluateVsCircl/$n" plain-ns/elem)" 1000)" 1)" "$C_OPRF"
done
for n in 1 10 100 1000; do
	figure "Client blind, batch $n: ours / circl POPRF / plain OPRF (µs per element)" \
		"$(fmt "$(div "$(metric "$O" "BenchmarkClientBlindVsCircl/$n" ours-ns/elem)" 1000)" 1) / $(fmt "$(div "$(metric "$O" "BenchmarkClientBlindVsCircl/$n" circl-ns/elem)" 1000)" 1) / $(fmt "$(div "$(metric "$O" "BenchmarkClientBlindVsCircl/$n" plain-ns/elem)" 1000)" 1)" "$C_OPRF"
done
for n in 1 10 100 1000; do
	figure "Client finalize with proof check, batch $n: ours / circl POPRF / plain OPRF without proof (µs per element)" \
		"$(fmt "$(div "$(metric "$O" "BenchmarkClientFinalizeVsCircl/$n" ours-ns/elem)" 1000)" 1) / $(fmt "$(div "$(metric "$O" "BenchmarkClientFinalizeVsCircl/$n" circl-ns/elem)" 1000)" 1) / $(fmt "$(div "$(metric "$O" "BenchmarkClientFinalizeVsCircl/$n" plain-ns/elem)" 1000)" 1)" "$C_OPRF"
done
figure "Full (unblinded) evaluation of one number: ours / circl POPRF / plain OPRF (µs)" \
	"$(fmt "$(div "$(metric "$O" BenchmarkFullEvaluateVsCircl ours-ns/elem)" 1000)" 1) / $(fmt "$(div "$(metric "$O" BenchmarkFullEvaluateVsCircl circl-ns/elem)" 1000)" 1) / $(fmt "$(div "$(metric "$O" BenchmarkFullEvaluateVsCircl plain-ns/elem)" 1000)" 1)" "$C_OPRF"
ALLCORES_OURS=$(metric "$O" BenchmarkEvaluateAllCores ours-elem/s)
ALLCORES_CIRCL=$(metric "$O" BenchmarkEvaluateAllCores circl-elem/s)
figure "Batch-1000 evaluation on every core: ours / circl POPRF / plain OPRF (elements/s)" \
	"$(fmt "$ALLCORES_OURS" 0) / $(fmt "$ALLCORES_CIRCL" 0) / $(fmt "$(metric "$O" BenchmarkEvaluateAllCores plain-elem/s)" 0)" "$C_OPRF"
T2=$(metric "$O" BenchmarkServerEvaluateVsCircl/1000 ours/plain)
T2C=$(metric "$O" BenchmarkServerEvaluateVsCircl/1000 circl/plain)
T3=$(metric "$O" BenchmarkClientFinalizeVsCircl/1000 ours/plain)

echo "== Server over HTTP, store writes" >&2
C_DIR="go test -run '^\$' -bench 'EvaluateHTTP|PublishHTTP' -benchtime $BT ./directory"
produce "$R/directory.txt" go test -run '^$' -bench 'EvaluateHTTP|PublishHTTP' -benchtime "$BT" ./directory
D=$R/directory.txt
for n in 16 1024; do
	figure "Evaluate over HTTP, batch $n, 2 per core in flight: HTTP / in-process on every core (elements/s)" \
		"$(fmt "$(metric "$D" "BenchmarkEvaluateHTTP/$n" http-elem/s)" 0) / $(fmt "$(metric "$D" "BenchmarkEvaluateHTTP/$n" inproc-elem/s)" 0) (ratio $(fmt "$(metric "$D" "BenchmarkEvaluateHTTP/$n" http/inproc)" 2))" "$C_DIR"
done
T1=$(metric "$D" BenchmarkEvaluateHTTP/1024 http/inproc)
T7=$(metric "$D" BenchmarkPublishHTTP http-rec/s)
figure "Publish (record + 4 ACL entries), 2 owners per core at once: HTTP / straight to the store (records/s)" \
	"$(fmt "$T7" 0) / $(fmt "$(metric "$D" BenchmarkPublishHTTP store-rec/s)" 0)" "$C_DIR"
C_STORE="go test -run '^\$' -bench PutRecord -benchtime $BT ./directory/sqlite"
produce "$R/store.txt" go test -run '^$' -bench PutRecord -benchtime "$BT" ./directory/sqlite
figure "Store publish transaction, one at a time / bare durable commit (per second)" \
	"$(fmt "$(metric "$R/store.txt" BenchmarkPutRecord put-rec/s)" 0) / $(fmt "$(metric "$R/store.txt" BenchmarkPutRecord commit/s)" 0)" "$C_STORE"

SMALL="" LARGE="" T4_1M="" T4_10M="" T4_10M_MIB="" T5_SMALL="" T5_LARGE="" T8=""
for n in $SIZES; do
	d=$DIR/synth-$n
	C_SYNTH="blindex synth --data $d --owners $n --seed 1 --friend $FRIEND --json"
	if [ ! -f "$d.json" ] && [ -z "$REPORT_ONLY" ]; then
		echo "== Building $n owners" >&2
		rm -rf "$d"
		"$BIN" synth --data "$d" --owners "$n" --seed 1 --friend "$FRIEND" --json >"$d.json.tmp"
		mv "$d.json.tmp" "$d.json"
		echo "$(date -u '+%Y-%m-%d %H:%M UTC'), load average $(loadavg)" >"$d.built"
	fi
	S=$d.json
	figure "Synthetic directory, $n owners: build time, rows/s overall, rows/s writing (built $(cat "$d.built" 2>/dev/null || echo "earlier"))" \
		"$(fmt "$(jget "$S" total_seconds)" 0) s, $(fmt "$(jget "$S" rows_per_second)" 0), $(fmt "$(jget "$S" write_rows_per_second)" 0) ($(jget "$S" records) records, $(jget "$S" acl_lists) access lists of $(jget "$S" acl_entries) entries, $(jget "$S" holders) holders)" "$C_SYNTH"
	BPR=$(div "$(jget "$S" db_bytes)" "$(jget "$S" records)")
	figure "Database bytes per record, $n owners (every table and index)" "$(fmt "$BPR" 0)" "$C_SYNTH"
	T8=$BPR
	if command -v sqlite3 >/dev/null 2>&1; then
		# Where the bytes go, per record, from SQLite's dbstat table.
		C_STAT="sqlite3 -readonly $d/blindex.db 'SELECT name, SUM(pgsize) FROM dbstat GROUP BY name'"
		split=$(sqlite3 -readonly "$d/blindex.db" "SELECT name, SUM(pgsize) FROM dbstat WHERE name IN
			('records', 'records_expiry', 'acls', 'holders') GROUP BY name ORDER BY 2 DESC" |
			awk -F'|' -v r="$(jget "$S" records)" '{ printf "%s%s %.0f", sep, $1, $2 / r; sep = ", " }')
		figure "Database bytes per record by table and index, $n owners" "$split" "$C_STAT"
	fi

	echo "== Store reads, $n owners" >&2
	C_READ="BLINDEX_BENCH_DATA=$d BLINDEX_BENCH_OWNERS=$n go test -run '^\$' -bench 'Buckets|CountOwners' -benchtime 5x ./directory/sqlite"
	produce "$R/store-$n.txt" env BLINDEX_BENCH_DATA="$d" BLINDEX_BENCH_OWNERS="$n" \
		go test -run '^$' -bench 'Buckets|CountOwners' -benchtime 5x ./directory/sqlite
	F=$R/store-$n.txt
	figure "Store fetch of 1,024 buckets, $n owners: with the access lists / the records rows alone (ms; rows, MiB)" \
		"$(fmt "$(metric "$F" BenchmarkBuckets buckets-ms)" 1) / $(fmt "$(metric "$F" BenchmarkBuckets plain-ms)" 1) ($(fmt "$(metric "$F" BenchmarkBuckets rows/fetch)" 0) rows, $(fmt "$(metric "$F" BenchmarkBuckets MiB/fetch)" 1) MiB)" "$C_READ"
	figure "Owner count (redone every 10 s, and after a publish but no sooner than 20 times its cost), $n owners / plain row count (ms)" \
		"$(fmt "$(metric "$F" BenchmarkCountOwners count-owners-ms)" 1) / $(fmt "$(metric "$F" BenchmarkCountOwners count-holders-ms)" 1)" "$C_READ"

	echo "== Lookups, $n owners" >&2
	C_LOOKUP="BLINDEX_BENCH_DATA=$d BLINDEX_BENCH_OWNERS=$n go test -run '^\$' -bench Lookup -benchtime $LOOKUPS ./client"
	produce "$R/lookup-$n.txt" env BLINDEX_BENCH_DATA="$d" BLINDEX_BENCH_OWNERS="$n" \
		go test -run '^$' -bench Lookup -benchtime "$LOOKUPS" ./client
	L=$R/lookup-$n.txt
	figure "Single-number lookup, $n owners: p50 / p99 (ms), KiB received" \
		"$(fmt "$(metric "$L" BenchmarkLookup/single p50-ms)" 1) / $(fmt "$(metric "$L" BenchmarkLookup/single p99-ms)" 1), $(fmt "$(metric "$L" BenchmarkLookup/single KiB/lookup)" 0) KiB" "$C_LOOKUP"
	PAR=$(metric "$L" BenchmarkLookup/single-parallel lookups/s)
	figure "Single-number lookups, 2 per core at once, $n owners (lookups/s)" "$(fmt "$PAR" 1)" "$C_LOOKUP"
	AB=$(metric "$L" BenchmarkLookup/addressbook-1024 p50-ms)
	figure "1,024-contact lookup end to end, $n owners: p50 / p99 (ms), MiB received, ratio to the OPRF work alone" \
		"$(fmt "$AB" 0) / $(fmt "$(metric "$L" BenchmarkLookup/addressbook-1024 p99-ms)" 0), $(fmt "$(div "$(metric "$L" BenchmarkLookup/addressbook-1024 KiB/lookup)" 1024)" 1) MiB, $(fmt "$(metric "$L" BenchmarkLookup/addressbook-1024 lookup/oprf)" 1)×" "$C_LOOKUP"
	case $n in
	1000000) T4_1M=$AB ;;
	10000000) T4_10M=$AB T4_10M_MIB=$(div "$(metric "$L" BenchmarkLookup/addressbook-1024 KiB/lookup)" 1024) ;;
	esac
	if [ -z "$SMALL" ]; then
		SMALL=$n T5_SMALL=$PAR
		echo "== Privacy scan, $n owners" >&2
		C_SCAN="BLINDEX_BENCH_DATA=$d BLINDEX_BENCH_OWNERS=$n go test -run '^\$' -bench PrivacyScan -benchtime 1x ./directory"
		produce "$R/scan-$n.txt" env BLINDEX_BENCH_DATA="$d" BLINDEX_BENCH_OWNERS="$n" \
			go test -run '^$' -bench PrivacyScan -benchtime 1x ./directory
		P=$R/scan-$n.txt
		figure "Privacy scan for 100 numbers, $n owners: scan / read the same files (MiB/s)" \
			"$(fmt "$(metric "$P" BenchmarkPrivacyScan scan-MiB/s)" 1) / $(fmt "$(metric "$P" BenchmarkPrivacyScan read-MiB/s)" 0) ($(fmt "$(metric "$P" BenchmarkPrivacyScan MiB)" 0) MiB, scan $(fmt "$(metric "$P" BenchmarkPrivacyScan scan/read)" 0)× the read)" "$C_SCAN"
	fi
	LARGE=$n T5_LARGE=$PAR
done

d=$DIR/synth-$LARGE
BIG=1000000000
C_SERVE="blindex serve --data $d --addr 127.0.0.1:0 --budget-burst $BIG --budget-per-day $BIG --budget-global-per-second $BIG"
C_BENCH="$C_SERVE; blindex bench --server URL --state STATE --requests 200 --duration 60s --json"
C_BENCHL="$C_SERVE; blindex bench --server URL --state STATE --op lookup --owners $LARGE --seed 1 --concurrency 2 --requests 10 --duration 120s --json"
if [ -z "$REPORT_ONLY" ]; then
	echo "== Live server, $LARGE owners" >&2
	LOG=$R/serve.log
	"$BIN" serve --data "$d" --addr 127.0.0.1:0 --log-format json \
		--budget-burst $BIG --budget-per-day $BIG --budget-global-per-second $BIG 2>"$LOG" &
	PID=$!
	trap 'kill $PID 2>/dev/null || true' EXIT
	ADDR=""
	for _ in $(seq 300); do
		ADDR=$(grep -s '"msg":"listening"' "$LOG" | sed 's/.*"addr":"\([^"]*\)".*/\1/' || true)
		[ -n "$ADDR" ] && break
		sleep 0.1
	done
	[ -n "$ADDR" ] || { echo "bench.sh: the server did not start:" >&2; cat "$LOG" >&2; exit 1; }
	URL=http://$ADDR
	for who in "$OTHER" "$FRIEND"; do
		st=$R/state-$who
		rm -rf "$st"
		"$BIN" verify start --server "$URL" --state "$st" "$who" >/dev/null
		code=$(grep -o '"code":"[0-9]*"' "$LOG" | tail -1 | tr -dc 0-9)
		"$BIN" verify confirm --server "$URL" --state "$st" "$code" >/dev/null
	done
	RSS_IDLE=$(awk '/VmRSS/ { print $2 }' "/proc/$PID/status")
	"$BIN" bench --server "$URL" --state "$R/state-$OTHER" --requests 200 --duration 60s --json >"$R/bench-evaluate.json"
	HWM_EVAL=$(awk '/VmHWM/ { print $2 }' "/proc/$PID/status")
	"$BIN" bench --server "$URL" --state "$R/state-$FRIEND" --op lookup --owners "$LARGE" --seed 1 \
		--concurrency 2 --requests 10 --duration 120s --json >"$R/bench-lookup.json"
	HWM_ALL=$(awk '/VmHWM/ { print $2 }' "/proc/$PID/status")
	kill $PID
	wait $PID 2>/dev/null || true
	trap - EXIT
	echo "RSS_IDLE=$RSS_IDLE HWM_EVAL=$HWM_EVAL HWM_ALL=$HWM_ALL LOAD_END='$(loadavg)'" >"$R/live.env"
fi
. "$R/live.env"
B=$R/bench-evaluate.json
figure "blindex bench, evaluate, batch 1024, 2 per core in flight, $LARGE owners: numbers/s, p50 / p99 (ms), errors, ratio to in-process" \
	"$(fmt "$(jget "$B" numbers_per_second)" 0), $(fmt "$(jget "$B" p50_ms)" 0) / $(fmt "$(jget "$B" p99_ms)" 0), $(jget "$B" errors), $(fmt "$(jget "$B" ratio)" 2) of $(fmt "$(jget "$B" inprocess_numbers_per_second)" 0)" "$C_BENCH"
B=$R/bench-lookup.json
figure "blindex bench, 1,024-number lookups, 2 at once, $LARGE owners: p50 / p99 (ms), records found, errors" \
	"$(fmt "$(jget "$B" p50_ms)" 0) / $(fmt "$(jget "$B" p99_ms)" 0), $(jget "$B" records_found), $(jget "$B" errors)" "$C_BENCHL"
T6=$(div "$HWM_EVAL" 1024)
figure "Server resident memory, $LARGE owners: idle / peak under the evaluate load / peak after the lookups too (MiB)" \
	"$(fmt "$(div "$RSS_IDLE" 1024)" 0) / $(fmt "$T6" 0) / $(fmt "$(div "$HWM_ALL" 1024)" 0)" "$C_SERVE; grep -E 'VmRSS|VmHWM' /proc/PID/status (idle, after the evaluate load, after the lookups)"

T5=$(div "$T5_LARGE" "$T5_SMALL")
RECORD_FLOOR=$((699 + 32)) # smallest size class sealed (record.ValidCiphertextSize) + index

BLOCK=$R/block.md
{
	echo "<!-- bench.sh begin: generated by scripts/bench.sh; edits here are overwritten -->"
	echo
	echo "Generated by \`scripts/bench.sh $SIZES\` on $START."
	echo
	echo "- Machine: $(grep -c ^processor /proc/cpuinfo) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(awk '/MemTotal/ { printf "%.0f GiB", $2/1048576 }' /proc/meminfo) RAM, $(uname -sr), $(go version | cut -d' ' -f3)."
	echo "- Load average (1, 5, 15 min) at the start: $LOAD_START; at the end: $LOAD_END. The ratios are measured"
	echo "  in the same run, interleaved with their baselines, and hold up under load better than the absolute times."
	echo
	echo "### Figures"
	echo
	echo "| Figure | Value | Command |"
	echo "|---|---|---|"
	cat "$R/figures"
	echo
	echo "### Targets (issue 6)"
	echo
	echo "| # | Target | Measured | Status |"
	echo "|---|---|---|---|"
	# Target 1 is against raw circl; the HTTP benchmark's baseline is our
	# oprf package, so the strict ratio multiplies in the wrapper's own.
	WRAP=$(div "$ALLCORES_OURS" "$ALLCORES_CIRCL")
	T1S=""
	[ -n "$T1" ] && [ -n "$WRAP" ] && T1S=$(awk -v a="$T1" -v b="$WRAP" 'BEGIN { print a * b }')
	echo "| 1 | Evaluate over HTTP, both cores busy: ≥ 0.85× raw in-process circl batch evaluation on both cores | $(fmt "$T1" 2)× our in-process evaluator (\`oprf\`, in the same run), which runs at $(fmt "$WRAP" 2)× raw circl on every core (another benchmark of this run): ≈ $(fmt "$T1S" 2)× raw circl | $(cmp "$T1S" ge 0.85) (against our own evaluator: $(cmp "$T1" ge 0.85)) |"
	echo "| 2 | Server batch POPRF at 1000: ≤ 1.3× a plain OPRF evaluation per element | $(fmt "$T2" 2)× (circl's own: $(fmt "$T2C" 2)×) | $(cmp "$T2" le 1.3) |"
	echo "| 3 | Client finalize with verification at 1000: ≤ 1.5× a plain OPRF finalize per element | $(fmt "$T3" 2)× | $(cmp "$T3" le 1.5) |"
	echo "| 4 | 1,024-contact lookup at 1 M owners: p50 ≤ 200 ms (and the same at 10 M) | $(fmt "$T4_1M" 0) ms at 1 M; $(fmt "$T4_10M" 0) ms at 10 M | $(cmp "$T4_1M" le 200) at 1 M; $(cmp "$T4_10M" le 200) at 10 M |"
	echo "| 5 | Single-lookup throughput at 10 M ≥ 0.8× at 100 k | $(fmt "$T5" 2)× ($(fmt "$T5_LARGE" 1) at $LARGE vs $(fmt "$T5_SMALL" 1) lookups/s at $SMALL; separate runs) | $(if [ "$LARGE" = 10000000 ] && [ "$SMALL" = 100000 ]; then cmp "$T5" ge 0.8; else echo "not measured"; fi) |"
	echo "| 6 | Server resident memory ≤ 256 MiB under the load of target 1 with 10 M owners | $(fmt "$T6" 0) MiB peak under the evaluate load at $LARGE owners; $(fmt "$(div "$HWM_ALL" 1024)" 0) MiB once 1,024-number lookups ran too | $(if [ "$LARGE" = 10000000 ]; then cmp "$T6" le 256; else echo "not measured"; fi) under evaluate load; $(if [ "$LARGE" = 10000000 ]; then cmp "$(div "$HWM_ALL" 1024)" le 256; else echo "not measured"; fi) with lookups |"
	echo "| 7 | Publish ≥ 1,000 records/s sustained on SQLite, ACL rows included | $(fmt "$T7" 0) records/s over HTTP | $(cmp "$T7" ge 1000) |"
	echo "| 8 | Disk ≤ 1.5 × (padded ciphertext + 32-byte index) = $((RECORD_FLOOR * 3 / 2)) bytes per record | $(fmt "$T8" 0) bytes per record at $LARGE owners, bulk-loaded in index order (synthetic holders carry no log label; a real one adds its label to each holders row) | $(cmp "$T8" le $((RECORD_FLOOR * 3 / 2))) |"
	echo
	echo "### Side by side with the published peers"
	echo
	echo "The peers' figures are from their papers, on their hardware; blindex's are from this run, client and"
	echo "server on this one machine over loopback."
	echo
	echo "| Workload | Peer | blindex |"
	echo "|---|---|---|"
	echo "| 1,024 contacts against a large directory | PIR-PSI: 1.36 s against 67 M users | p50 $(fmt "$T4_10M" 0) ms against 10 M owners ($(fmt "$T4_1M" 0) ms at 1 M); 67 M not measured |"
	echo "| ~1,000 contacts against a very large directory | Kales et al.: ~3 s against 1 B users, after a large client download | p50 $(fmt "$T4_10M" 0) ms against 10 M owners, $(fmt "$T4_10M_MIB" 1) MiB of buckets per lookup and nothing downloaded ahead; 1 B not measured |"
	echo "| One lookup at 100 k rows | Apple PIR: 51–65 ms | p50 $(fmt "$(metric "$R/lookup-$SMALL.txt" BenchmarkLookup/single p50-ms)" 1) ms at $SMALL owners |"
	echo
	echo "<!-- bench.sh end -->"
} >"$BLOCK"

# Replace the generated block, or append it if the document has none.
if grep -q '<!-- bench.sh begin' "$DOC"; then
	awk -v block="$BLOCK" '
		/<!-- bench.sh begin/ { while ((getline line < block) > 0) print line; skip = 1; next }
		/<!-- bench.sh end -->/ { skip = 0; next }
		!skip' "$DOC" >"$DOC.tmp"
	mv "$DOC.tmp" "$DOC"
else
	{ echo; cat "$BLOCK"; } >>"$DOC"
fi
echo "bench.sh: wrote $DOC (raw results in $R)" >&2
