#!/bin/sh
# needs: root (runs commands as nobody with setpriv)
# registry_safety.sh - the registry under damage (issue 10), through the
# stock sqlite3 shell, python3 and djinn-lua: forged schema versions on a
# file marked as ours, a crash inside image_remove (the state it leaves:
# the row and only a .trash-* copy), a registry moved with its store, a
# row whose sha256 names a path, a registry truncated to 0 bytes beside a
# full store (with and without the store's owner marker), two registries
# sharing one store, FIFOs given to the qcow2 functions, a user who may
# read the registry but not write it, and a writer stuck in a transaction.
# After each: no registered image's bytes are lost. TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/regsafety.XXXXXX") || exit 1
# The read-only user needs a directory it can traverse (DJINN_WORK is 0700).
RO=$(mktemp -d /tmp/djinn-ro.XXXXXX) || exit 1
HOLDER=
cleanup() {
	[ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null
	rm -rf "$W" "$RO"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data"

. "$TOP/tests/e2e_lib.sh"

# plain DB SQL... - the stock shell WITHOUT the extension (a forger).
plain() { sqlite3 -batch "$@" >/dev/null 2>&1; }
sha() { sha256sum "$1" | cut -c1-64; }

qemu-img create -q -f qcow2 "$W/a.qcow2" 16M || exit 1
qemu-img create -q -f qcow2 "$W/b.qcow2" 32M || exit 1
qemu-img create -q -f qcow2 "$W/c.qcow2" 48M || exit 1
SA=$(sha "$W/a.qcow2")
SB=$(sha "$W/b.qcow2")
SC=$(sha "$W/c.qcow2")

# mkreg DIR: a registry DIR/reg.db with team/ci a, team/ci a2 (same
# content as a) and team/ci b; store DIR/images.
mkreg() {
	mkdir -p "$1"
	sq "$1/reg.db" "select image_register('team/ci','a','$W/a.qcow2')" \
		"select image_register('team/ci','a2','$W/a.qcow2')" \
		"select image_register('team/ci','b','$W/b.qcow2')"
	[ "$rc" -eq 0 ] || { echo "# mkreg $1 failed:"; sed 's/^/# /' "$W/sq.err"; }
}
# intact DIR: every image of mkreg still has its file, with its bytes.
intact() {
	[ "$(sha "$1/images/$SA.qcow2" 2>/dev/null)" = "$SA" ] &&
		[ "$(sha "$1/images/$SB.qcow2" 2>/dev/null)" = "$SB" ]
}

# 1. A file marked as ours (application_id 0x446a6e6e) with a schema
#    version below 1: refused with what to do, nothing written, no crash
#    (the migrations array was indexed with it: a segfault).
for v in -1 -2147483648 0; do
	R=$W/ver$v
	mkreg "$R"
	plain "$R/reg.db" "pragma user_version = $v"
	before=$(sha "$R/reg.db")
	sq "$R/reg.db" "select image_path('team/ci','a')"
	ok $([ "$rc" -eq 1 ] && grep -q "damaged" "$W/sq.err"; echo $?) \
		"user_version $v: the stock shell refuses with 'damaged' (exit $rc)"
	hasF sq.err "restore the file from a backup" || hasF sq.err "Restore the file from a backup"
	ok $? "user_version $v: the message says what to do"
	run "ls$v" image ls --registry "$R/reg.db"
	ok $([ "$rc" -eq 1 ] && grep -q "damaged" "$W/ls$v.err"; echo $?) \
		"user_version $v: djinn-lua image ls exits 1 with 'damaged' (exit $rc)"
	sq "$R/reg.db" "select 1"
	ok $([ "$(plain_v=$(sqlite3 "$R/reg.db" 'pragma user_version'); echo "$plain_v")" = "$v" ] &&
		[ "$(sha "$R/reg.db")" = "$before" ]; echo $?) \
		"user_version $v: the file is unchanged (still $v)"
	ok $(intact "$R"; echo $?) "user_version $v: the store is untouched"
done

# 1b. A load that fails (a file that is not a database; a version its
#     tables contradict) must not leave functions pointing into the
#     unloaded library: the shell goes on after a failed .load, and the
#     next call crashed.
head -c 8192 /dev/urandom >"$W/noise.db"
R=$W/stale
mkreg "$R"
plain "$R/reg.db" "pragma user_version = 1"
for f in "$W/noise.db" "$R/reg.db"; do
	printf '.load %s
select djinn_version();
select 42;
' "$B/djinn" |
		if [ -n "${DJINN_SHELL_PRELOAD:-}" ]; then
			LD_PRELOAD=$DJINN_SHELL_PRELOAD timeout 60 sqlite3 -batch "$f"
		else
			timeout 60 sqlite3 -batch "$f"
		fi >"$W/sq.out" 2>"$W/sq.err"
	rc=$?
	ok $([ "$rc" -lt 128 ] && grep -qx 42 "$W/sq.out" &&
		grep -q "no such function: djinn_version" "$W/sq.err"; echo $?) \
		"a failed .load of $(basename "$f") leaves no function behind (exit $rc)"
done
ok $(grep -q "nothing changed" "$W/sq.err" && intact "$R"; echo $?) \
	"a contradicted schema version: the load says nothing changed; store intact"

# 2. A crash inside image_remove between its rename to .trash-* and COMMIT
#    leaves the row and only the trash copy. Repair must put it back (it
#    deleted it). Both the trash name of today (with the SHA-256) and the
#    one of earlier versions (content hashed) are restored.
R=$W/trash
mkreg "$R"
mv "$R/images/$SB.qcow2" "$R/images/.trash-$SB-99999-0123456789abcdef"
sq "$R/reg.db" "select djinn_fsck('repair')"
ok $([ "$(sha "$R/images/$SB.qcow2" 2>/dev/null)" = "$SB" ]; echo $?) \
	"trash of a crashed image_remove: repair restores the file the row needs"
hasF sq.out "\"restored\":[\"$SB.qcow2\"]"
ok $? "trash: repair lists it under restored"
mv "$R/images/$SA.qcow2" "$R/images/.trash-99998-00112233aabbccdd"
sq "$R/reg.db" "select djinn_fsck('repair')"
ok $(intact "$R"; echo $?) "trash with an old-style name: restored by its content"
sq "$R/reg.db" "select json_extract(djinn_fsck(), '\$.ok'), count(*) from images"
ok $([ "$(cat "$W/sq.out")" = "1|3" ]; echo $?) "trash: fsck ok, all three rows"
# A trash file no row needs is garbage; one whose file is there, too.
cp "$W/c.qcow2" "$R/images/.trash-$SC-99997-0123456789abcdef"
cp "$W/a.qcow2" "$R/images/.trash-$SA-99996-0123456789abcdef"
sq "$R/reg.db" "select json_array_length(djinn_fsck('repair'), '\$.removed')"
ok $([ "$(cat "$W/sq.out")" = 2 ] && intact "$R" &&
	[ -z "$(ls -A "$R/images" | grep trash)" ]; echo $?) \
	"trash nobody needs, or already restored: removed, images intact"

# 3. A registry moved with its store: repair deleted every image (orphans
#    were decided by the stored absolute path). Now paths follow the store.
R=$W/moved
mkreg "$W/orig"
mv "$W/orig" "$R"
sq "$R/reg.db" "select djinn_fsck('repair')" "select image_path('team/ci','b')"
ok $(intact "$R"; echo $?) "moved registry: repair deletes nothing"
ok $(grep -qx "$R/images/$SB.qcow2" "$W/sq.out"; echo $?) \
	"moved registry: image_path follows the store"
sq "$R/reg.db" "select json_extract(djinn_fsck(), '\$.ok')"
ok $([ "$(cat "$W/sq.out")" = 1 ]; echo $?) "moved registry: fsck ok"

# 4. A row is never a path: a forged sha256 (CHECK constraints switched
#    off) is refused by image_remove, and nothing outside the store goes.
R=$W/forged
mkreg "$R"
echo precious >"$W/victim"
plain "$R/reg.db" "pragma ignore_check_constraints = 1" \
	"update images set sha256 = '../../victim' where name = 'b'"
sq "$R/reg.db" "select image_remove('team/ci','b')"
ok $([ "$rc" -ne 0 ] && grep -q "no valid sha256" "$W/sq.err" &&
	[ -f "$W/victim" ] && intact "$R"; echo $?) \
	"forged sha256: image_remove refuses, the outside file and the store stay"
sq "$R/reg.db" "select djinn_fsck('repair')"
ok $([ -f "$W/victim" ] && intact "$R"; echo $?) "forged sha256: repair deletes nothing"

# 5. A registry truncated to 0 bytes beside a full store: re-created empty;
#    repair must not delete every image, and the user is told.
R=$W/trunc
mkreg "$R"
: >"$R/reg.db"
rm -f "$R/reg.db-wal" "$R/reg.db-shm"
sq "$R/reg.db" "select json_extract(djinn_fsck(), '\$.owner'), json_extract(djinn_fsck(), '\$.ok')"
ok $([ "$(cat "$W/sq.out")" = "foreign|0" ]; echo $?) \
	"truncated registry: fsck says the store is another registry's"
sq "$R/reg.db" "select djinn_fsck('repair')"
ok $([ "$rc" -ne 0 ] && grep -q "refusing to repair" "$W/sq.err" &&
	grep -q "recovered" "$W/sq.err" && intact "$R"; echo $?) \
	"truncated registry: repair refused with how to recover; images intact"
sq "$R/reg.db" "select image_register('x','c','$W/c.qcow2')"
ok $([ "$rc" -ne 0 ] && grep -q "belongs to another registry" "$W/sq.err" &&
	[ ! -f "$R/images/$SC.qcow2" ]; echo $?) \
	"truncated registry: registering into the old store is refused, nothing copied"
sq "$R/reg.db" "select djinn_store_check() is not null"
ok $([ "$(cat "$W/sq.out")" = 1 ]; echo $?) "truncated registry: djinn_store_check() says why"
run trunc-ls image ls --registry "$R/reg.db"
ok $(grep -q "another registry" "$W/trunc-ls.err"; echo $?) \
	"truncated registry: djinn-lua image ls warns (exit $rc)"
# The recovery the message gives: move the store aside, register again.
mv "$R/images" "$R/images.recovered"
sq "$R/reg.db" "select image_register('team/ci','b','$R/images.recovered/$SB.qcow2')"
ok $([ "$rc" -eq 0 ] && [ "$(sha "$R/images/$SB.qcow2")" = "$SB" ]; echo $?) \
	"truncated registry: recovery as the message says works"
# The same with a store from before markers (no .djinn-store).
R=$W/trunc-old
mkreg "$R"
rm -f "$R/images/.djinn-store"
: >"$R/reg.db"
rm -f "$R/reg.db-wal" "$R/reg.db-shm"
sq "$R/reg.db" "select djinn_fsck('repair')"
ok $([ "$rc" -ne 0 ] && grep -q "looks lost" "$W/sq.err" && intact "$R"; echo $?) \
	"truncated registry, store without a marker: repair refused; images intact"
sq "$R/reg.db" "select json_extract(djinn_fsck(), '\$.owner')"
ok $([ "$(cat "$W/sq.out")" = lost ]; echo $?) "store without a marker: fsck says lost"
# ...while a registry WITH rows adopts a store without a marker.
R=$W/adopt
mkreg "$R"
rm -f "$R/images/.djinn-store"
sq "$R/reg.db" "select json_extract(djinn_fsck('repair'), '\$.owner')"
ok $([ "$(cat "$W/sq.out")" = ours ] && [ -f "$R/images/.djinn-store" ] &&
	intact "$R"; echo $?) "a registry with rows adopts its unmarked store"

# 6. Two registries sharing one store delete each other's images on repair.
R=$W/one
mkreg "$R"
mkdir -p "$W/two"
sq "$W/two/reg.db" "select djinn_setting('store', '$R/images')"
sq "$W/two/reg.db" "select djinn_fsck('repair')"
ok $([ "$rc" -ne 0 ] && grep -q "belongs to another registry" "$W/sq.err" &&
	intact "$R"; echo $?) "second registry on the same store: repair refused"
sq "$W/two/reg.db" "select image_register(NULL,'c','$W/c.qcow2')"
ok $([ "$rc" -ne 0 ] && [ ! -f "$R/images/$SC.qcow2" ]; echo $?) \
	"second registry: register refused, nothing copied"
sq "$R/reg.db" "select json_extract(djinn_fsck(), '\$.ok')"
ok $([ "$(cat "$W/sq.out")" = 1 ] && intact "$R"; echo $?) "the first registry is fine"

# 7. The qcow2 functions on a FIFO: they blocked forever.
mkfifo "$W/fifo"
sq :memory: "select qcow2_validate('$W/fifo')" "select json_extract(qcow2_check('$W/fifo'), '\$.errors[0].message')"
ok $([ "$rc" -eq 0 ] && grep -q "a FIFO" "$W/sq.out"; echo $?) \
	"qcow2_validate/qcow2_check on a FIFO: answered at once (exit $rc)"
sq :memory: "select qcow2_info('$W/fifo')"
ok $([ "$rc" -eq 1 ] && grep -q "FIFO" "$W/sq.err"; echo $?) "qcow2_info on a FIFO: an error"
RUN_TIMEOUT=20 run fifo image check "$W/fifo"
ok $([ "$rc" -eq 1 ] && grep -q "FIFO" "$W/fifo.out"; echo $?) \
	"djinn-lua image check FIFO: exit 1 with the reason (exit $rc)"

# 8. A user who may read the registry but not write it: every read works,
#    and an error never reads "no such image".
chmod 755 "$RO"
mkdir -p "$RO/bin" "$RO/lib"
cp "$D" "$RO/bin/djinn-lua" && cp -R "$TOP/lua" "$RO/lua" &&
	cp "$B/djinn.so" "$RO/lib/djinn.so"
mkreg "$RO/reg"
chmod -R a+rX "$RO"
NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"
as_nobody() { $NOBODY env HOME=/nonexistent "$@"; }
ROREG=$RO/reg/reg.db
as_nobody "$RO/bin/djinn-lua" image ls --registry "$ROREG" >"$W/ro-ls.out" 2>"$W/ro-ls.err"
ok $([ $? -eq 0 ] && grep -q " a " "$W/ro-ls.out" && grep -q " b " "$W/ro-ls.out"; echo $?) \
	"read-only user: image ls lists the images"
show ro-ls.err
ME=$(id -un)
as_nobody "$RO/bin/djinn-lua" image info --registry "$ROREG" "team/ci@$ME" b >"$W/ro-info.out" 2>"$W/ro-info.err"
ok $([ $? -eq 0 ] && grep -q "$SB" "$W/ro-info.out"; echo $?) "read-only user: image info"
show ro-info.err
as_nobody env LD_PRELOAD="${DJINN_SHELL_PRELOAD:-}" sqlite3 -batch "$ROREG" -cmd ".load $RO/lib/djinn" \
	"select count(*) from image_list" "select image_path('team/ci@$ME','a')" >"$W/ro-sq.out" 2>"$W/ro-sq.err"
ok $([ "$(head -1 "$W/ro-sq.out")" = 3 ] && grep -q "$SA.qcow2" "$W/ro-sq.out"; echo $?) \
	"read-only user: the stock shell reads image_list and image_path"
show ro-sq.err
as_nobody "$RO/bin/djinn-lua" image rm --registry "$ROREG" "team/ci@$ME" b >"$W/ro-rm.out" 2>"$W/ro-rm.err"
ok $([ $? -ne 0 ] && grep -q "read-only\|readonly" "$W/ro-rm.err" &&
	! grep -q "no image" "$W/ro-rm.err" && intact "$RO/reg"; echo $?) \
	"read-only user: image rm fails saying read-only, not 'no image'"

# 9. A writer stuck inside a transaction: the wait is bounded by the busy
#    timeout as a whole (it was 40 retries of it: 204 s for 5 s).
R=$W/stuck
mkreg "$R"
python3 - "$R/reg.db" >"$W/holder.out" 2>&1 <<'PY' &
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(60)
PY
HOLDER=$!
i=0
while ! grep -q locked "$W/holder.out" 2>/dev/null && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
t0=$(date +%s)
sq "$R/reg.db" "pragma busy_timeout = 1000" "select image_register('x','c','$W/c.qcow2')"
t1=$(date +%s)
ok $([ "$rc" -ne 0 ] && grep -q "locked for 1\.[0-9] s" "$W/sq.err" &&
	[ $((t1 - t0)) -lt 15 ] && [ ! -f "$R/images/$SC.qcow2" ]; echo $?) \
	"stuck writer: image_register gives up after the busy timeout (1 s), says so, copies nothing ($((t1 - t0)) s)"
show sq.err
kill "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null
HOLDER=

tap_end
