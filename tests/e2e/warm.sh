#!/bin/sh
# needs: guest
# warm.sh - warm VM snapshots on real VMs (issue 15). The tiny test image
# (tests/vm/build-image.sh) is registered; builds on the qemu driver
# (TCG, 256 MiB) then:
#   - the first boots cold and saves a snapshot at the SSH banner; two
#     more start from it: distinct /dev/urandom output, the host's clock,
#     a file the first wrote is absent, the image's and the snapshot's
#     files unchanged;
#   - three builds of a machine shape without a snapshot, started
#     together: all pass, one snapshot made;
#   - a changed shape (memory) or a changed image (another SHA-256) never
#     uses an old snapshot; image rm removes its snapshots; djinn_fsck
#     counts them and repair removes orphans;
#   - a snapshot whose file changed, and one whose state QEMU cannot
#     load, are removed and the build boots cold with one warning;
#   - SIGINT and kill -9 while a snapshot is being saved: no qemu is left
#     and no half snapshot is ever used;
#   - image warm; warm false and warm_skip; warm_max prunes.
# TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
VM=$B/vm
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/warm_e2e.XXXXXX") || exit 1
PIDS=
cleanup() {
	for p in $PIDS; do kill -KILL "$p" 2>/dev/null; done
	for q in $(qemu_pids); do kill -KILL "$q" 2>/dev/null; done
	chmod -R u+w "$W" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data"
export XDG_RUNTIME_DIR="$W/run" XDG_CACHE_HOME="$W/cache"
mkdir -p "$W/run" "$W/tmp"
unset NO_COLOR

. "$TOP/tests/e2e_lib.sh"

REG=$W/reg.db
STORE=$W/images
WARM=$STORE/warm
qemu_pids() { qemu_pids_in "$W"; }
conf() { # conf FILE MEMORY [EXTRA LINE]
	cat >"$1" <<EOF
driver qemu {
    cpus 1
    memory $2
    accel "tcg"
    boot_timeout 3m
    ${3:-}
}
EOF
}
runb() { # runb NAME CONF MANIFEST: a build in the foreground
	TMPDIR=$W/tmp timeout -k 5 600 "$D" run --registry "$REG" \
		--driver-config "$2" "$3" >"$W/$1.log" 2>&1
	rc=$?
}
startb() { # startb NAME CONF MANIFEST: in the background, pid in $bpid
	TMPDIR=$W/tmp "$D" run --registry "$REG" --driver-config "$2" "$3" \
		>"$W/$1.log" 2>&1 &
	bpid=$!
	PIDS="$PIDS $bpid"
}
snaps() { ls "$WARM" 2>/dev/null | grep -v '\.lock$' | grep -cv '^\.'; }
sha() { sha256sum "$1" | cut -c1-64; }
# What a build's job printed: the value after "KEY=".
val() { sed -n "s/^$2=//p" "$W/$1.log" | head -1; }

bash "$TOP/tests/vm/build-image.sh" "$VM" >"$W/img.out" 2>&1
ok $? "build-image.sh: $(tail -1 "$W/img.out")"
IMG=$VM/djinn-tiny.qcow2
# The same guest in other bytes (compressed clusters): another SHA-256.
IMGO=$W/tiny-compressed.qcow2
qemu-img convert -q -c -f qcow2 -O qcow2 "$IMG" "$IMGO"
ok $? "qemu-img convert -c: the same guest, another SHA-256"
"$D" image register --registry "$REG" e2e tiny "$IMG" >"$W/reg.out" 2>&1
ok $? "register the tiny image"
sq "$REG" "select djinn_setting('store')"
[ "$(cat "$W/sq.out")" = "$STORE" ] ||
	sq "$REG" "select djinn_setting('store', '$STORE')"
IMGSHA=$(sha "$IMG")
conf "$W/vm.conf" 256

cat >"$W/a.yml" <<'EOF'
namespace: e2e
driver:
  type: qemu
  image: tiny
stages: [build]
jobs:
  - stage: build
    commands:
      - echo "RAND=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
      - echo "CLOCK=$(date -u +%s)"
      - echo "SEEN=$(ls /root/written 2>/dev/null || echo none)"
      - echo mine > /root/written
EOF

# --- one snapshot, three builds ------------------------------------------------
runb a "$W/vm.conf" "$W/a.yml"
now=$(date -u +%s)
ok $rc "cold build A passes (exit $rc)"
check "A: boots cold and saves the snapshot at the banner" \
	sh -c "grep -q '^Saved warm snapshot $IMGSHA.m256-c1-tcg-n-f1 in ' '$W/a.log' &&
	! grep -q 'Starting the machine from warm snapshot' '$W/a.log'"
SNAP=$WARM/$IMGSHA.m256-c1-tcg-n-f1
check "A: the snapshot holds state, disk.qcow2, meta.json" \
	test -s "$SNAP/state" -a -s "$SNAP/disk.qcow2" -a -s "$SNAP/meta.json"
check "A: the snapshot's disk is a valid qcow2 (qemu-img check)" \
	qemu-img check -q -f qcow2 "$SNAP/disk.qcow2"
check "A: meta.json names the QEMU version and the shape" \
	sh -c "jq -e '.qemu.version != null and .shape.memory == 256 and .image.sha256 == \"$IMGSHA\"' '$SNAP/meta.json' >/dev/null"
S_STATE=$(sha "$SNAP/state")
S_DISK=$(sha "$SNAP/disk.qcow2")
runb b "$W/vm.conf" "$W/a.yml"
ok $rc "warm build B passes (exit $rc)"
check "B: starts from the snapshot" has b.log "from a warm snapshot"
check "B: its clock was set and its RNG reseeded (vmgenid)" \
	has b.log "Set the machine's clock and reseeded its RNG (vmgenid)"
runb c "$W/vm.conf" "$W/a.yml"
now=$(date -u +%s)
ok $rc "warm build C passes (exit $rc)"
check "C: starts from the snapshot" has c.log "from a warm snapshot"
ra=$(val a RAND) rb=$(val b RAND) rc_=$(val c RAND)
check "urandom: three builds, three different outputs ($rb, $rc_)" \
	sh -c "[ ${#rb} -eq 32 ] && [ ${#rc_} -eq 32 ] && [ '$ra' != '$rb' ] && [ '$rb' != '$rc_' ] && [ '$ra' != '$rc_' ]"
cb=$(val c CLOCK)
check "clock: the restored guest has the host's time (guest $cb, host $now)" \
	sh -c "[ -n '$cb' ] && d=\$(( $now - $cb )); [ \${d#-} -le 10 ]"
check "isolation: A's file is absent in B and C" \
	sh -c "[ '$(val b SEEN)' = none ] && [ '$(val c SEEN)' = none ]"
check "the image's SHA-256 is unchanged" test "$(sha "$IMG")" = "$IMGSHA"
check "the snapshot's files are unchanged by the builds" \
	sh -c "[ '$(sha "$SNAP/state")' = '$S_STATE' ] && [ '$(sha "$SNAP/disk.qcow2")' = '$S_DISK' ]"
check "no qemu left after the builds" test -z "$(qemu_pids)"
sq "$REG" "select json_extract(djinn_fsck(), '\$.warm.snapshots'), json_extract(djinn_fsck(), '\$.ok')"
check "fsck counts the snapshot and is ok" test "$(cat "$W/sq.out")" = "1|1"

# --- three builds of a new shape at once ------------------------------------------
conf "$W/vm320.conf" 320
for b in p1 p2 p3; do
	startb "$b" "$W/vm320.conf" "$W/a.yml"
	eval "pid_$b=$bpid"
done
allok=0
for b in p1 p2 p3; do
	eval "wait \$pid_$b" || allok=1
done
ok $allok "three builds of a cold shape started together all pass"
saved=$(cat "$W/p1.log" "$W/p2.log" "$W/p3.log" | grep -c '^Saved warm snapshot')
check "... one of them saved the snapshot ($saved)" test "$saved" = 1
check "... none used the 256 MiB snapshot" \
	sh -c "! grep -q 'from warm snapshot .*m256' '$W/p1.log' '$W/p2.log' '$W/p3.log'"
check "... two snapshots now, one per shape ($(snaps))" test "$(snaps)" = 2
runb p4 "$W/vm320.conf" "$W/a.yml"
check "a fourth build of that shape starts warm (exit $rc)" \
	sh -c "[ $rc -eq 0 ] && grep -q 'from warm snapshot $IMGSHA.m320' '$W/p4.log'"

# --- a changed snapshot falls back to a cold boot ------------------------------------
chmod u+w "$SNAP/state"
printf 'garbage' | dd of="$SNAP/state" bs=1 seek=4096 conv=notrunc 2>/dev/null
runb x "$W/vm.conf" "$W/a.yml"
ok $rc "a snapshot whose state changed: the build still passes (exit $rc)"
check "... with one warning, removed, booted cold" \
	sh -c "[ \$(grep -c 'warning: .*warm snapshot' '$W/x.log') -eq 1 ] && grep -q 'changed after it was saved' '$W/x.log' && ! grep -q 'from a warm snapshot' '$W/x.log'"
check "... and a good snapshot was saved in its place" \
	sh -c "grep -q '^Saved warm snapshot' '$W/x.log' && [ -s '$SNAP/state' ]"
# Garbage that keeps the recorded identity (meta.json rewritten): QEMU
# itself refuses to load it.
chmod u+w "$SNAP" "$SNAP/state" "$SNAP/meta.json"
head -c 1000000 /dev/urandom >"$SNAP/state"
python3 - "$SNAP" <<'EOF'
import json, os, sys
d = sys.argv[1]
m = json.load(open(d + "/meta.json"))
st = os.stat(d + "/state")
m["files"]["state"] = {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size,
                       "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}
json.dump(m, open(d + "/meta.json", "w"))
EOF
runb y "$W/vm.conf" "$W/a.yml"
ok $rc "a state QEMU cannot load: the build still passes (exit $rc)"
check "... one warning, the cause, a cold boot" \
	sh -c "[ \$(grep -c 'warning: .*warm snapshot' '$W/y.log') -eq 1 ] && grep -q 'could not be used' '$W/y.log' && grep -q '^Saved warm snapshot' '$W/y.log'"
# A snapshot saved by another QEMU version is never loaded.
chmod u+w "$SNAP" "$SNAP/meta.json"
# (python, not jq: jq 1.6 rounds the nanosecond times to doubles, and the
# snapshot's recorded identity would no longer match its files)
python3 - "$SNAP/meta.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
m["qemu"]["version"] = "0.0.1"
json.dump(m, open(sys.argv[1], "w"))
EOF
runb v "$W/vm.conf" "$W/a.yml"
before=$failed
check "another QEMU version: not loaded, one warning, a cold boot (exit $rc)" \
	sh -c "[ $rc -eq 0 ] && [ \$(grep -c 'warning: .*warm snapshot' '$W/v.log') -eq 1 ] && grep -q 'saved by QEMU 0.0.1' '$W/v.log' && ! grep -q 'from a warm snapshot' '$W/v.log' && grep -q '^Saved warm snapshot' '$W/v.log'"
[ $failed -eq $before ] || show v.log
check "no qemu left" test -z "$(qemu_pids)"

# --- interrupted while saving ---------------------------------------------------------
# Wait for the snapshot's temporary directory, then signal the runner.
interrupt() { # interrupt SIGNAL NAME CONF
	rm -rf "$WARM"/*.m288-* 2>/dev/null
	startb "$2" "$3" "$W/a.yml"
	i=0
	while [ $i -lt 3000 ]; do
		ls -d "$WARM"/.tmp-*m288* >/dev/null 2>&1 && break
		kill -0 "$bpid" 2>/dev/null || break
		sleep 0.02
		i=$((i + 1))
	done
	kill "-$1" "$bpid" 2>/dev/null
	wait "$bpid"
	rc=$?
}
conf "$W/vm288.conf" 288
interrupt INT int "$W/vm288.conf"
check "SIGINT while saving: the runner stops (exit $rc)" test "$rc" -ne 0
sleep 1
check "SIGINT: no qemu left" test -z "$(qemu_pids)"
check "SIGINT: no temporary snapshot directory left" \
	sh -c "! ls -d '$WARM'/.tmp-* >/dev/null 2>&1"
interrupt KILL kill9 "$W/vm288.conf"
check "kill -9 while saving: killed (exit $rc)" test "$rc" -eq 137
sleep 1
check "kill -9: no qemu left (PDEATHSIG)" test -z "$(qemu_pids)"
runb after "$W/vm288.conf" "$W/a.yml"
ok $rc "the next build passes (exit $rc)"
check "... it never started from half a snapshot: cold, then saved" \
	sh -c "! grep -q 'from a warm snapshot' '$W/after.log' && grep -q '^Saved warm snapshot' '$W/after.log'"
check "... and no temporary directory is left" \
	sh -c "! ls -d '$WARM'/.tmp-* >/dev/null 2>&1"

# --- image warm, warm false, warm_skip, warm_max ------------------------------------------
conf "$W/vm272.conf" 272
"$D" image warm --registry "$REG" --driver-config "$W/vm272.conf" e2e tiny \
	>"$W/w1.out" 2>"$W/w1.err"
ok $? "image warm: exit 0"
check "image warm: saved, says where" has w1.out "^saved $WARM/$IMGSHA.m272-c1-tcg-n-f1 in "
"$D" image warm --registry "$REG" --driver-config "$W/vm272.conf" e2e tiny \
	>"$W/w2.out" 2>"$W/w2.err"
ok $? "image warm again: exit 0"
check "image warm again: already warm, and it loads" has w2.out "^warm already: .* (the machine started from it in "
check "image warm: no qemu left" test -z "$(qemu_pids)"
conf "$W/off.conf" 256 "warm false"
runb off "$W/off.conf" "$W/a.yml"
check "warm false: a cold boot, nothing saved (exit $rc)" \
	sh -c "[ $rc -eq 0 ] && ! grep -q 'warm snapshot' '$W/off.log'"
"$D" image warm --registry "$REG" --driver-config "$W/off.conf" e2e tiny \
	>"$W/w3.out" 2>"$W/w3.err"
check "image warm with warm false: exit 1, says so" \
	sh -c "[ $? -eq 1 ] && grep -q 'warm false' '$W/w3.err'"
conf "$W/skip.conf" 256 'warm_skip ["other", "tiny"]'
runb skip "$W/skip.conf" "$W/a.yml"
check "warm_skip: a cold boot (exit $rc)" \
	sh -c "[ $rc -eq 0 ] && grep -q 'off for image tiny (warm_skip' '$W/skip.log' && ! grep -q 'from a warm snapshot' '$W/skip.log'"
before=$(snaps)
conf "$W/small.conf" 304 "warm_max 1MB"
runb small "$W/small.conf" "$W/a.yml"
check "warm_max 1MB: the older snapshots are pruned, the new one kept ($before -> $(snaps))" \
	sh -c "[ $rc -eq 0 ] && grep -q 'Removed least recently used warm snapshots' '$W/small.log' && [ $(snaps) -eq 1 ] && [ -d '$WARM/$IMGSHA.m304-c1-tcg-n-f1' ]"

# --- another image, image rm, fsck --------------------------------------------------------
"$D" image rm --registry "$REG" e2e tiny >/dev/null 2>&1
check "image rm: its snapshots go with its file ($(snaps) left)" test "$(snaps)" = 0
"$D" image register --registry "$REG" e2e tiny "$IMGO" >/dev/null 2>&1
OSHA=$(sha "$IMGO")
runb o "$W/small.conf" "$W/a.yml"
check "another image under the same name: its own snapshot, never the old one (exit $rc)" \
	sh -c "[ $rc -eq 0 ] && ! grep -q 'from a warm snapshot' '$W/o.log' && [ -d '$WARM/$OSHA.m304-c1-tcg-n-f1' ]"
mkdir -p "$WARM/$IMGSHA.m999-c1-tcg-n-f1"
: >"$WARM/$IMGSHA.m999-c1-tcg-n-f1/state"
sq "$REG" "select json_extract(djinn_fsck(), '\$.warm.orphans')"
check "fsck: a snapshot of a removed image is an orphan" has sq.out "$IMGSHA.m999"
sq "$REG" "select json_extract(djinn_fsck('repair'), '\$.removed')" "select json_extract(djinn_fsck(), '\$.ok')"
check "fsck repair removes it; fsck is ok" \
	sh -c "grep -q 'warm/$IMGSHA.m999' '$W/sq.out' && [ \"\$(tail -1 '$W/sq.out')\" = 1 ] && [ ! -e '$WARM/$IMGSHA.m999-c1-tcg-n-f1' ]"
check "no qemu left at the end" test -z "$(qemu_pids)"
tap_end
