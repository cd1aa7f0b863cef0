#!/bin/sh
# needs: root (mounts, unshare)
# registry_fulldisk.sh - the registry and its store on a full disk (issue
# 10): a small tmpfs holds the registry file and the store; images are
# registered until the disk is full, then one more. Every failure must say
# that space ran out, leave no row, no temp file and no unreferenced file;
# every image registered before keeps its bytes; repair converges; once
# space is freed (image_remove), registration works again. Then the same
# with only the registry's own file system full (the WAL cannot grow: the
# COMMIT fails after the file was put in place). Needs root (mount); CI
# runs as root. TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/fulldisk.XXXXXX") || exit 1
MNT=$W/mnt
MOUNTED=
cleanup() {
	[ -n "$MOUNTED" ] && umount "$MNT" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data"

. "$TOP/tests/e2e_lib.sh"

mkdir -p "$MNT"
if ! mount -t tmpfs -o size=3m tmpfs "$MNT" 2>"$W/mount.err"; then
	echo "not ok 1 - cannot mount a tmpfs (run as root): $(cat "$W/mount.err")"
	exit 1
fi
MOUNTED=1

sha() { sha256sum "$1" | cut -c1-64; }

# Images with real data (qemu-io writes distinct patterns), about 520 KiB
# each, so that the 3 MiB disk fills after a few.
i=0
while [ $i -lt 8 ]; do
	qemu-img create -q -f qcow2 "$W/img$i.qcow2" 8M &&
		qemu-io -f qcow2 -c "write -P $((i + 1)) 0 512k" "$W/img$i.qcow2" >/dev/null ||
		exit 1
	i=$((i + 1))
done

R=$MNT/reg.db
STORE=$MNT/images
registered=
failed_at=
i=0
while [ $i -lt 8 ]; do
	sq "$R" "select image_register('team/ci','img$i','$W/img$i.qcow2')"
	if [ "$rc" -ne 0 ]; then
		failed_at=$i
		break
	fi
	registered="$registered $i"
	i=$((i + 1))
done
ok $([ -n "$failed_at" ] && [ -n "$registered" ]; echo $?) \
	"the disk fills: images$registered registered, img${failed_at:-?} refused"
ok $(grep -q "No space left on device" "$W/sq.err"; echo $?) \
	"the refusal says no space is left"
show sq.err
sq "$R" "select count(*) from images where name = 'img${failed_at:-x}'"
ok $([ "$(cat "$W/sq.out")" = 0 ]; echo $?) "no row for the refused image"
left=$(ls -A "$STORE" | grep -c '^\.tmp-\|^\.trash-')
ok "$left" "no temp or trash file left ($left)"
nfiles=$(ls "$STORE" | grep -c '\.qcow2$')
nreg=$(echo $registered | wc -w)
ok $([ "$nfiles" -eq "$nreg" ]; echo $?) "one file per registered image ($nfiles files, $nreg images)"
bad=0
for j in $registered; do
	s=$(sha "$W/img$j.qcow2")
	[ "$(sha "$STORE/$s.qcow2" 2>/dev/null)" = "$s" ] || bad=$((bad + 1))
done
ok "$bad" "every registered image keeps its bytes ($bad lost)"
sq "$R" "select json_extract(djinn_fsck('repair'), '\$.ok')" "select json_extract(djinn_fsck('repair'), '\$.removed')"
ok $([ "$(head -1 "$W/sq.out")" = 1 ] && [ "$(tail -1 "$W/sq.out")" = "[]" ]; echo $?) \
	"repair on the full disk: ok, nothing to remove"
# Free space, then the refused image fits.
sq "$R" "select image_remove('team/ci','img0')" "select image_remove('team/ci','img1')"
sq "$R" "select image_register('team/ci','img$failed_at','$W/img$failed_at.qcow2') > 0"
ok $([ "$rc" -eq 0 ] && [ "$(cat "$W/sq.out")" = 1 ]; echo $?) \
	"after image_remove freed space, the refused image registers"

# djinn-lua on the full disk: exit 1 with the reason, nothing left.
fill=$MNT/filler
dd if=/dev/zero of="$fill" bs=64k 2>/dev/null
RUN_TIMEOUT=60 run cli image register --registry "$R" team/ci late "$W/img7.qcow2"
ok $([ "$rc" -eq 1 ] && grep -q "No space left on device" "$W/cli.err"; echo $?) \
	"djinn-lua image register on a full disk: exit 1, says why (exit $rc)"
left=$(ls -A "$STORE" | grep -c '^\.tmp-\|^\.trash-')
ok "$left" "djinn-lua: no temp file left ($left)"
rm -f "$fill"
sq "$R" "select json_extract(djinn_fsck(), '\$.ok')"
ok $([ "$(cat "$W/sq.out")" = 1 ]; echo $?) "fsck ok after the full-disk refusals"

# Only the registry's own disk is full: the store is elsewhere, so the
# copy, validation and rename succeed and the COMMIT is what fails.
umount "$MNT" && MOUNTED=
mount -t tmpfs -o size=1m tmpfs "$MNT" && MOUNTED=1
R=$MNT/reg.db
mkdir -p "$W/store2"
sq "$R" "select djinn_setting('store', '$W/store2')" "select image_register('a','x','$W/img0.qcow2')"
s0=$(sha "$W/img0.qcow2")
dd if=/dev/zero of="$MNT/filler" bs=4k 2>/dev/null
k=1 fails=0
while [ $k -lt 8 ]; do
	sq "$R" "select image_register('a','y$k','$W/img$k.qcow2')"
	[ "$rc" -ne 0 ] && fails=$((fails + 1))
	k=$((k + 1))
done
ok $([ "$fails" -gt 0 ]; echo $?) "registry disk full: registrations fail ($fails of 7)"
show sq.err
rm -f "$MNT/filler"
sq "$R" "select count(*) from images" "select json_extract(djinn_fsck(), '\$.orphans')" "select json_extract(djinn_fsck(), '\$.ok')"
rows=$(head -1 "$W/sq.out")
nfiles=$(ls "$W/store2" | grep -c '\.qcow2$')
ok $([ "$nfiles" -eq "$rows" ] && [ "$(tail -1 "$W/sq.out")" = 1 ]; echo $?) \
	"registry disk full: a file for each row and none other ($nfiles files, $rows rows)"
ok $([ "$(sha "$W/store2/$s0.qcow2")" = "$s0" ]; echo $?) "registry disk full: the first image is intact"

tap_end
