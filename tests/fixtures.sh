#!/bin/sh
# tests/fixtures.sh OUTDIR - write the named qcow2 fixtures that the SQL,
# Lua and end-to-end suites use. Made fresh with the real qemu-img every
# run (never downloaded); fast (well under 2 s); only qemu-img, dd, printf
# and head.
#
#   plain.qcow2       1 GiB v3, empty                    valid
#   plain2.qcow2      2 GiB v3, empty (other bytes)      valid
#   small-data.qcow2  converted from a 192 KiB raw file  valid, 3+ clusters
#   v2.qcow2          compat=0.10                        version
#   backing.qcow2     -b OUTDIR/plain.qcow2 -F qcow2     backing_file
#   datafile.qcow2    data_file=OUTDIR/datafile.raw      data_file
#   dirty.qcow2       plain.qcow2 with the dirty bit     dirty
#   raw.img           1 MiB of zeros                     not_qcow2
#   empty.img         0 bytes                            not_qcow2
#   garbage.img       8.5 KiB of fixed non-image bytes   not_qcow2
set -eu
out=${1:?usage: fixtures.sh OUTDIR}
mkdir -p "$out"

q() { qemu-img "$@" >/dev/null; }

q create -f qcow2 "$out/plain.qcow2" 1G
q create -f qcow2 "$out/plain2.qcow2" 2G

# 192 KiB of text, different in every 64 KiB cluster.
i=0
while [ "$i" -lt 3072 ]; do
    printf 'djinn fixture line %05d: the quick brown fox %s\n' "$i" \
        "jumps over the lazy dog"
    i=$((i + 1))
done | head -c 196608 > "$out/small-data.raw"
q convert -f raw -O qcow2 "$out/small-data.raw" "$out/small-data.qcow2"

q create -f qcow2 -o compat=0.10 "$out/v2.qcow2" 1G
q create -f qcow2 -b "$out/plain.qcow2" -F qcow2 "$out/backing.qcow2"
q create -f qcow2 -o "data_file=$out/datafile.raw" "$out/datafile.qcow2" 64M

dd if="$out/plain.qcow2" of="$out/dirty.qcow2" bs=65536 status=none
printf '\001' | dd of="$out/dirty.qcow2" bs=1 seek=79 conv=notrunc status=none

head -c 1048576 /dev/zero > "$out/raw.img"
: > "$out/empty.img"
i=0
while [ "$i" -lt 256 ]; do
    printf '\217\023\344\001garbage-not-an-image-%03d\377\376\375\374\373\372' \
        "$i" | head -c 64
    i=$((i + 1))
done > "$out/garbage.img"
