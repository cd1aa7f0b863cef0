#!/bin/bash
# bench/run.sh [BUILD] - `make bench`: every side-by-side bench, one after
# the other (never two at once: they would time each other), then one
# summary table of all rows (label, ours, reference, ratio, spread).
#   BENCH=PATTERN  only the benches whose script name matches (e.g.
#                  BENCH=output, BENCH='docker*')
#   RUNS=N         runs of each side (default 7)
# The benches (each also runs alone: bash bench/NAME.sh BUILD):
#   startup.sh          djinn-lua's start vs sqlite3 and lua5.4
#   output.sh           run's output path: plain, --json, secrets, RSS
#   docker-output.sh    docker job output vs `docker run` (private dockerd)
#   registry-lookup.sh  image_path / resolve / image ls vs raw SQL
#   url-import.sh       image register URL vs curl + sha256sum + sync
#   manifest-load.sh    manifest load vs libyaml's event loop
#   qcow2-bench.sh      the QCOW2 validator vs qemu-img check
#   queue.sh            the build queue: overhead vs run, throughput,
#                       recovery, live log lag (private redis-server)
# Not here: bench/vm-bench.sh (`make vm-bench`, boots VMs).
# Each bench is timed by the wall clock on whatever else the machine is
# doing: run it on an idle machine, and read the spread.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$TOP/build}" && pwd) || exit 2
export RUNS=${RUNS:-7}
export BENCH_TSV
BENCH_TSV=$(mktemp "${TMPDIR:-/tmp}/bench-tsv.XXXXXX") || exit 1
trap 'rm -f "$BENCH_TSV"' EXIT
trap 'exit 130' INT TERM
failed=0
for name in startup output docker-output registry-lookup url-import manifest-load qcow2-bench queue; do
	script=$TOP/bench/$name.sh
	# shellcheck disable=SC2053 # BENCH is a pattern
	[[ -n ${BENCH:-} && $name != ${BENCH} && $name != *${BENCH}* ]] && continue
	[ -f "$script" ] || continue
	echo "== $name"
	if [ "$name" = qcow2-bench ]; then
		sh "$script" "$B" "$RUNS" || failed=$((failed + 1))
	else
		bash "$script" "$B" || failed=$((failed + 1))
	fi
	echo
done
if [ -s "$BENCH_TSV" ]; then
	echo "== summary (ratio = ours / reference, by median time; below 1 is faster)"
	awk -F '\t' '{ printf "%-44s %10.4f %10.4f  %6.2f  %s\n", $1, $2, $3, $4, $7 }' "$BENCH_TSV"
fi
[ "$failed" -eq 0 ] || { echo "$failed bench(es) failed" >&2; exit 1; }
