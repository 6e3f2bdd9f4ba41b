#!/usr/bin/env bash
# bench/run.sh — run the benchmark suite and write bench/README.md.
#
#   bench/run.sh                      default (CI-safe) sizes, < 15 min on 2 cores
#   POUW_BENCH_FULL=1 bench/run.sh    adds the full sizes (an hour or more)
#   POUW_BENCH_COUNT=5 bench/run.sh   more -count runs (default 3)
#   bench/run.sh --report-only DIR    rewrite bench/README.md from a kept run
#
# The raw go test output, benchstat's summary and the commands are kept in
# $POUW_BENCH_OUT (default: a new /tmp/pouw-bench.* directory, printed at
# the end), so the README can be regenerated without rerunning.
#
# Runs the backend × tier benchmarks and the queue-depth benchmark of
# bench/, the store, API and farm benchmarks of their own packages (each
# beside its same-run baseline), summarises the raw output with benchstat,
# and generates bench/README.md (bench/internal/report) with the machine,
# the exact commands and the per-area notes bench/<area>.md merged in.
# A command that fails is listed in the README and the script exits 1 at
# the end, after writing what it has.
set -uo pipefail
cd "$(dirname "$0")/.."

COUNT=${POUW_BENCH_COUNT:-3}
FULL=${POUW_BENCH_FULL:-0}
# golang.org/x/perf has no tags; this pseudo-version is its newest commit
# when the script was written (go list -m golang.org/x/perf@latest).
BENCHSTAT=golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
export CGO_CFLAGS=${CGO_CFLAGS:--Wno-deprecated-declarations} # go-nvml's cgo warnings
export POUW_BENCH_FULL=$FULL

report() { # report DIR: write bench/README.md from a run's files
	# shellcheck disable=SC1091
	. "$1/meta.env"
	go run ./bench/internal/report \
		-raw "$1/raw.txt" -benchstat "$1/benchstat.txt" \
		-commands "$1/commands.txt" -failures "$1/failed.txt" \
		-load-start "$LOAD0" -seconds "$SECS" -full="$FULLRUN" \
		-commit "$COMMIT" -go-version "$GOVERSION" \
		-notes bench -out bench/README.md
}

if [ "${1:-}" = --report-only ]; then
	[ -f "${2:-}/meta.env" ] || { echo "usage: bench/run.sh --report-only DIR (a directory a run kept)" >&2; exit 2; }
	report "$2" || exit 1
	echo "bench/run.sh: wrote bench/README.md from $2" >&2
	exit 0
fi

command -v redis-server >/dev/null || { echo "bench/run.sh: redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }

work=${POUW_BENCH_OUT:-$(mktemp -d /tmp/pouw-bench.XXXXXX)}
mkdir -p "$work"
: >"$work/raw.txt"
: >"$work/commands.txt"
: >"$work/failed.txt"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
commit=$(git rev-parse --short HEAD 2>/dev/null)
[ -n "$(git status --porcelain -- bench backends trace coordinator devnet scheduler 2>/dev/null)" ] && commit="$commit+uncommitted changes"
t0=$(date +%s)
timeout=60m
[ "$FULL" = 1 ] && timeout=600m

bench() { # bench PKG REGEX BENCHTIME COUNT
	local cmd=(go test -run '^$' -bench "$2" -benchtime "$3" -count "$4" -timeout "$timeout" "$1")
	local shown="go test -run '^\$' -bench '$2' -benchtime $3 -count $4 -timeout $timeout $1"
	[ "$FULL" = 1 ] && shown="POUW_BENCH_FULL=1 $shown"
	echo "$shown" >>"$work/commands.txt"
	echo "+ $shown" >&2
	if ! "${cmd[@]}" 2>&1 | tee -a "$work/raw.txt"; then
		echo "$shown" >>"$work/failed.txt"
	fi
}

# Backends × tiers: every case proves once untimed, then COUNT timed proofs.
bench ./bench/ '^Benchmark(Prove|Verify)$' 1x "$COUNT"
# Queue depth (1k, 100k, 1M pending): 5000 claims per depth for the p99;
# each queue is filled once per process (1M: minutes).
bench ./bench/ '^BenchmarkClaimScale$' 5000x 1
# Orchestration, each beside its baseline from the same run.
bench ./coordinator/store/redisstore/ '^BenchmarkRedisClaimSubmit$' 1000x "$COUNT"
bench ./coordinator/store/boltstore/ '^BenchmarkBoltClaimSubmit$' 100x "$COUNT"
bench ./coordinator/api/ '^BenchmarkAPILease$' 500x "$COUNT"
bench ./devnet/ '^BenchmarkFarmThroughput$' 10x "$COUNT"

# benchstat's 95% intervals need 6 samples; with fewer, ask for the level
# that the count supports (0.75 with 3), which the README states.
conf=0.95
[ "$COUNT" -lt 6 ] && conf=0.75
echo "(cd OUTDIR && go run $BENCHSTAT -confidence $conf raw.txt)  # OUTDIR: where the raw output of the commands above was collected" >>"$work/commands.txt"
if ! (cd "$work" && go run "$BENCHSTAT" -confidence "$conf" raw.txt >benchstat.txt 2>&1); then
	echo "go run $BENCHSTAT -confidence $conf raw.txt" >>"$work/failed.txt"
fi
secs=$(($(date +%s) - t0))
full=false
[ "$FULL" = 1 ] && full=true
cat >"$work/meta.env" <<META
LOAD0='$load0'
SECS=$secs
FULLRUN=$full
COMMIT='$commit'
GOVERSION='$(go env GOVERSION)'
META
report "$work" || exit 1
echo "bench/run.sh: wrote bench/README.md in ${secs}s; raw output kept in $work" >&2
[ -s "$work/failed.txt" ] && { echo "bench/run.sh: failed:" >&2; cat "$work/failed.txt" >&2; exit 1; }
exit 0
