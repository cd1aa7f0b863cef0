#!/bin/sh
# bench/qcow2-bench.sh [BUILD [RUNS]] - compare the qcow2 validator with
# `qemu-img check -f qcow2` on two images made in a temp dir:
#   prealloc  100 GiB virtual, preallocation=metadata (sparse file)
#   real      ~2.5 GiB of non-zero data converted from a raw file
# Each is validated RUNS times (default 5) by build/qcow2_bench (full check,
# in-process header-only mean over 100000 runs) and by qemu-img check, after
# one warm-up run of each (page cache hot). Prints a table of medians and
# the ratio. Not part of `make test`: build with `make bench` first.
set -eu
build=${1:-build}
runs=${2:-5}
bench="$build/qcow2_bench"
[ -x "$bench" ] || { echo "build $bench first: make bench" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/qcow2_bench.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

echo "creating images in $work ..." >&2
qemu-img create -q -f qcow2 -o preallocation=metadata "$work/prealloc.qcow2" 100G
# 64 MiB of random bytes repeated 40 times: 2.5 GiB of non-zero data,
# without reading 2.5 GiB from /dev/urandom.
head -c 67108864 /dev/urandom > "$work/chunk"
i=0
while [ "$i" -lt 40 ]; do
    dd if="$work/chunk" of="$work/real.raw" bs=1M seek=$((i * 64)) \
        conv=notrunc status=none
    i=$((i + 1))
done
rm -f "$work/chunk"
qemu-img convert -f raw -O qcow2 "$work/real.raw" "$work/real.qcow2"
rm -f "$work/real.raw"

printf '%-9s %12s %14s %14s %8s %12s %7s\n' image file_MiB ours_ms qemu_ms ratio header_us valid
for img in prealloc real; do
    f="$work/$img.qcow2"
    "$bench" "$f" 1 1 >/dev/null || true
    qemu-img check -f qcow2 "$f" >/dev/null 2>&1 || true
    out=$("$bench" "$f" "$runs" 100000 || true)
    ours=$(echo "$out" | awk '/^full_ms/ {print $2}' | median)
    hdr=$(echo "$out" | awk '/^header_us/ {print $2}')
    valid=$(echo "$out" | awk '/^valid/ {print $2}')
    : > "$work/q.txt"
    i=0
    while [ "$i" -lt "$runs" ]; do
        t0=$(date +%s%N)
        qemu-img check -f qcow2 "$f" >/dev/null 2>&1 || true
        t1=$(date +%s%N)
        echo "$(( (t1 - t0) / 1000 ))" | awk '{printf "%.3f\n", $1 / 1000}' >> "$work/q.txt"
        i=$((i + 1))
    done
    qemu=$(median < "$work/q.txt")
    size=$(( $(stat -c %s "$f") / 1048576 ))
    echo "$out" | awk '/^full_ms/ {printf "  ours run: %s ms\n", $2}' >&2
    awk '{printf "  qemu-img check run: %s ms\n", $1}' "$work/q.txt" >&2
    printf '%-9s %12s %14.3f %14.3f %8.3f %12s %7s\n' "$img" "$size" \
        "$ours" "$qemu" "$(echo "$ours $qemu" | awk '{print $1 / $2}')" \
        "$hdr" "$valid"
done
echo "(ratio = ours / qemu-img check, medians of $runs runs; target <= 0.5)"
