# shellcheck shell=bash
# bench/lib.sh - side-by-side timing for the benches under bench/ (sourced
# by bash scripts; not part of `make test`, which has no timing assertions).
#
#   bench_compare LABEL RUNS BYTES ours_fn ref_fn [REF_NAME]
#       Runs ours_fn and ref_fn RUNS times each, interleaved (ours, ref,
#       ours, ref, ...) after one warm-up run of each, timing each run by
#       the wall clock. Prints, on stdout, one row:
#         LABEL  ours MEDIAN s [MIN-MAX]  REF MEDIAN s [MIN-MAX]  ratio R
#       where R = median(ours) / median(ref) (time: below 1 is faster than
#       the reference), and, when BYTES > 0, each side's throughput in
#       MB/s (10^6 bytes) over BYTES. The row is also appended to
#       $BENCH_TSV (when set) as
#         LABEL<TAB>ours_median<TAB>ref_median<TAB>ratio<TAB>spread_ours<TAB>spread_ref<TAB>REF_NAME
#       for the summary `make bench` prints. A function that fails aborts
#       the bench (exit 1) with its name: a bench never times a failure.
#   bench_time fn      -> seconds (float) of one run of fn, on stdout: by
#       the wall clock, or, when BENCH_SELF_TIMED is set, the number on
#       the last "seconds S" line fn prints (a tool that times its own
#       loop, leaving its start-up out)
#   bench_median       -> the median of the numbers on stdin (one per line)
#   bench_peak_rss_kb CMD ARGS... -> peak RSS (KiB) of CMD, via
#       /usr/bin/time -f %M (stdout of CMD discarded)

bench_time() {
	local t0 t1 out
	if [ -n "${BENCH_SELF_TIMED:-}" ]; then
		out=$("$@") || {
			echo "bench: '$*' failed" >&2
			return 1
		}
		printf '%s\n' "$out" | awk '$1 == "seconds" { s = $2 }
			END { if (s == "") exit 1; printf "%.6f\n", s }' || {
			echo "bench: '$*' printed no \"seconds S\" line" >&2
			return 1
		}
		return 0
	fi
	t0=$EPOCHREALTIME
	"$@" >/dev/null || {
		echo "bench: '$*' failed" >&2
		return 1
	}
	t1=$EPOCHREALTIME
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }'
}

bench_median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

bench_compare() {
	local label=$1 runs=$2 bytes=$3 ours=$4 ref=$5 refname=${6:-$5}
	local dir i t
	dir=$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX") || return 1
	# Warm-up (page cache, lazy daemons), not counted.
	bench_time "$ours" >/dev/null || { rm -rf "$dir"; exit 1; }
	bench_time "$ref" >/dev/null || { rm -rf "$dir"; exit 1; }
	i=0
	while [ "$i" -lt "$runs" ]; do
		t=$(bench_time "$ours") || { rm -rf "$dir"; exit 1; }
		echo "$t" >>"$dir/ours"
		t=$(bench_time "$ref") || { rm -rf "$dir"; exit 1; }
		echo "$t" >>"$dir/ref"
		i=$((i + 1))
	done
	awk -v label="$label" -v bytes="$bytes" -v refname="$refname" \
		-v tsv="${BENCH_TSV:-}" '
		FNR == 1 { side++ }
		{ v[side, ++n[side]] = $1 }
		function med(s,   k, a, c, j, tmp) {
			c = n[s]
			for (k = 1; k <= c; k++) a[k] = v[s, k]
			for (k = 2; k <= c; k++) {      # insertion sort: c is small
				tmp = a[k]
				for (j = k - 1; j >= 1 && a[j] > tmp; j--) a[j + 1] = a[j]
				a[j + 1] = tmp
			}
			lo[s] = a[1]; hi[s] = a[c]
			return (c % 2) ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2
		}
		END {
			mo = med(1); mr = med(2)
			ratio = (mr > 0) ? mo / mr : 0
			so = sprintf("%.4g-%.4g", lo[1], hi[1])
			sr = sprintf("%.4g-%.4g", lo[2], hi[2])
			printf "%-34s ours %8.4f s [%s]  %s %8.4f s [%s]  ratio %.2f",
				label, mo, so, refname, mr, sr, ratio
			if (bytes > 0)
				printf "  (%.0f vs %.0f MB/s)", bytes / mo / 1e6, bytes / mr / 1e6
			printf "\n"
			if (tsv != "")
				printf "%s\t%.6f\t%.6f\t%.3f\t%s\t%s\t%s\n", label, mo, mr,
					ratio, so, sr, refname >> tsv
		}' "$dir/ours" "$dir/ref"
	rm -rf "$dir"
}

bench_peak_rss_kb() {
	local out
	out=$(/usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -n 1)
	echo "$out"
}
