#!/bin/bash
# bench/output.sh [BUILD] - the output path of `djinn-lua run` (issue 13),
# side by side in one run (bench/lib.sh: interleaved runs, medians,
# spread, ratio). An os-driver job prints 169 MB (`seq 1 20000000`) or
# 405 MB of base64 text; the output cap is off (limits { max_output 0 }).
#   plain          djinn-lua run > /dev/null   vs  seq | cat (the same
#                  bytes through one pipe and one reader, as a job's are)
#   --json         djinn-lua run --json        vs  djinn-lua run (plain)
#   10 secrets     plain with 10 --secret      vs  plain without
#   10 secrets     --json with 10 --secret     vs  --json without
# The secrets start with digits ("0x0secret", ...), the worst case for
# a matcher on seq's output (every byte could start one).
# Then the peak RSS of a 405 MB --json run (the issue's bound: 32 MB).
# RUNS (default 7) runs of each side.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$TOP/build}" && pwd) || exit 2
RUNS=${RUNS:-7}
D=$B/djinn-lua
[ -x "$D" ] || { echo "build $D first: make" >&2; exit 2; }
. "$TOP/bench/lib.sh"
W=$(mktemp -d "${TMPDIR:-/tmp}/output-bench.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
cd "$W" || exit 1

printf 'limits { max_output 0 }\n' >dc.conf
job() { # job FILE COMMAND
	printf 'driver: {type: os}\nstages: [s]\njobs:\n- stage: s\n  commands:\n  - %s\n' "$2" >"$1"
}
job seq.yml 'seq 1 20000000'
job b64.yml 'head -c 300000000 /dev/zero | base64'
SEQ_BYTES=$(seq 1 20000000 | wc -c)
B64_BYTES=$(head -c 300000000 /dev/zero | base64 | wc -c)
SECRETS=()
for i in 0 1 2 3 4 5 6 7 8 9; do SECRETS+=(--secret "K$i=${i}x${i}secret"); done

run_plain() { "$D" run --driver-config dc.conf seq.yml; }
run_json() { "$D" run --json --driver-config dc.conf seq.yml; }
run_sec() { "$D" run --driver-config dc.conf "${SECRETS[@]}" seq.yml; }
run_json_sec() { "$D" run --json --driver-config dc.conf "${SECRETS[@]}" seq.yml; }
shell_seq() { seq 1 20000000 | cat; }
b64_plain() { "$D" run --driver-config dc.conf b64.yml; }
b64_json() { "$D" run --json --driver-config dc.conf b64.yml; }

echo "output path: $RUNS runs each, seq 1 20000000 = $SEQ_BYTES bytes, base64 = $B64_BYTES bytes"
bench_compare "output: run (plain)" "$RUNS" "$SEQ_BYTES" run_plain shell_seq "seq|cat"
bench_compare "output: run --json" "$RUNS" "$SEQ_BYTES" run_json run_plain "plain"
bench_compare "output: run --json, base64 text" "$RUNS" "$B64_BYTES" b64_json b64_plain "plain"
bench_compare "output: 10 secrets (plain)" "$RUNS" "$SEQ_BYTES" run_sec run_plain "none"
bench_compare "output: 10 secrets (--json)" "$RUNS" "$SEQ_BYTES" run_json_sec run_json "none"
rss=$(bench_peak_rss_kb "$D" run --json --driver-config dc.conf b64.yml)
echo "output: peak RSS of a $((B64_BYTES / 1000000)) MB --json run: $((rss / 1024)) MiB (bound: 32 MiB)"
if [ -n "${BENCH_TSV:-}" ]; then
	printf 'output: peak RSS, %d MB --json\t%s\t32768\t%.3f\t-\t-\tKiB vs bound\n' \
		"$((B64_BYTES / 1000000))" "$rss" "$(awk -v a="$rss" 'BEGIN { print a / 32768 }')" >>"$BENCH_TSV"
fi
