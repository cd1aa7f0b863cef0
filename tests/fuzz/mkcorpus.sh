#!/bin/sh
# tests/fuzz/mkcorpus.sh OUTDIR - write the seed corpora of the qcow2,
# manifest/yaml and driver.conf harnesses into OUTDIR/{qcow2,manifest,conf}
# (each emptied first). Built from what the project already holds, never
# committed copies:
#   manifest  examples/*.yml, Djinn's own manifests (tests/manifests/djinn/,
#             tests/manifests/*.yml) and the hostile seeds of
#             tests/fuzz/seeds/*.yml (alias bombs, deep nesting, tags...)
#   conf      examples/*.conf and tests/fuzz/seeds/*.conf
#   qcow2     images made now with the real qemu-img and qemu-io, one per
#             feature the validator reads: plain with data, zlib and zstd
#             compressed clusters, extended L2, 1-bit refcounts, an
#             internal snapshot, a 512-byte-cluster image, a v3 image
#             with a dirty bit and one with a bitmap
# Needs qemu-img and qemu-io (qemu-utils).
set -eu
out=${1:?usage: mkcorpus.sh OUTDIR}
top=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$out/qcow2" "$out/manifest" "$out/conf"
mkdir -p "$out/qcow2" "$out/manifest" "$out/conf"

# Copies keep the name of their source, with its directory folded in.
seed() { # DIR FILE...
    d=$1
    shift
    for f in "$@"; do
        [ -f "$f" ] || continue
        rel=${f#"$top"/}
        cp "$f" "$d/$(printf '%s' "$rel" | tr '/' '_')"
    done
}
seed "$out/manifest" "$top"/examples/*.yml "$top"/tests/manifests/*.yml \
    "$top"/tests/manifests/djinn/*.yml "$top"/tests/fuzz/seeds/*.yml
seed "$out/conf" "$top"/examples/*.conf "$top"/tests/fuzz/seeds/*.conf

q=$out/qcow2
t=$(mktemp -d "${TMPDIR:-/tmp}/djinn-corpus.XXXXXX")
trap 'rm -rf "$t"' EXIT
# 48 KiB of text, then zeros; 4 KiB clusters (except where the cluster
# size is the point) keep every seed under the harness's 256 KiB max_len.
i=0
while [ "$i" -lt 768 ]; do
    printf 'djinn seed line %05d: the quick brown fox jumps over it\n' "$i"
    i=$((i + 1))
done >"$t/data.raw"
truncate -s 4M "$t/data.raw"
img() { qemu-img "$@" >/dev/null; }
c4k=cluster_size=4096
io() { qemu-io "$@" >/dev/null; }
img convert -f raw -O qcow2 -o $c4k "$t/data.raw" "$q/plain.qcow2"
img convert -c -f raw -O qcow2 -o $c4k "$t/data.raw" "$q/zlib.qcow2"
img convert -c -f raw -O qcow2 -o compression_type=zstd,$c4k "$t/data.raw" \
    "$q/zstd-compressed.qcow2"
img create -f qcow2 -o compression_type=zstd,$c4k "$q/zstd.qcow2" 4M
img create -f qcow2 -o extended_l2=on,cluster_size=32k "$q/extl2.qcow2" 4M
io -f qcow2 -c "write -P 0x5a 64k 8k" -c "write -z 256k 64k" "$q/extl2.qcow2"
img create -f qcow2 -o refcount_bits=1,$c4k "$q/refcount1.qcow2" 4M
io -f qcow2 -c "write -P 0x11 0 128k" "$q/refcount1.qcow2"
img create -f qcow2 -o cluster_size=512 "$q/cluster512.qcow2" 1M
io -f qcow2 -c "write -P 0x22 0 4k" "$q/cluster512.qcow2"
img create -f qcow2 -o $c4k "$q/snapshot.qcow2" 4M
io -f qcow2 -c "write -P 0x33 0 64k" "$q/snapshot.qcow2"
img snapshot -c first "$q/snapshot.qcow2"
io -f qcow2 -c "write -P 0x44 0 64k" "$q/snapshot.qcow2"
img create -f qcow2 -o lazy_refcounts=on,$c4k "$q/dirty.qcow2" 4M
io -f qcow2 -c "write -P 0x55 0 64k" -c "sigraise 9" "$q/dirty.qcow2" \
    2>/dev/null || true
img create -f qcow2 -o $c4k "$q/bitmap.qcow2" 4M
img bitmap --add "$q/bitmap.qcow2" b0
io -f qcow2 -c "write -P 0x66 0 64k" "$q/bitmap.qcow2"
for f in "$q"/*.qcow2; do
    [ "$(wc -c <"$f")" -le 262144 ] ||
        { echo "mkcorpus.sh: $f is over 256 KiB" >&2; exit 1; }
done
n=$(find "$q" -type f | wc -l)
[ "$n" -ge 10 ] || { echo "mkcorpus.sh: only $n qcow2 seeds made" >&2; exit 1; }
