#!/bin/sh
# needs: guest
# queue_vm.sh - queued qemu builds on real VMs (issue 16): images pinned at
# submit and fetched by the workers, and a worker killed while its VM runs.
# A private redis-server (Unix socket, stopped by PID), the tiny test image
# (tests/vm/build-image.sh) registered in the submitter's registry, whose
# store directory is served by `python3 -m http.server` on 127.0.0.1 (the
# store is content-addressed: <sha256>.qcow2), workers with a registry of
# their own as the image cache:
#   I1: the first build downloads the image (one GET in the server's log),
#       checks its SHA-256, validates and caches it, and passes; the second
#       makes no HTTP request; a file that is not what was pinned (other
#       bytes) fails the build as an infrastructure error (exit 3) with
#       nothing left in the cache; a pinned file that is not a valid image
#       (the right hash of bad bytes) is refused by the validator, exit 3;
#   V1: 2 workers x 1 slot, builds of the tiny image, one worker killed
#       (kill -9) while its VM runs: that qemu dies with it (the time is
#       printed, not asserted),
#       the build is taken over and passes, each build ends once, no qemu
#       and no build directory are left (the next worker removes the dead
#       one's).
# TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
VM=$B/vm
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/queue_vm_e2e.XXXXXX") || exit 1
PIDS=
REDIS_PID=
HTTP_PID=
. "$TOP/tests/e2e_lib.sh"
qemu_pids() { qemu_pids_in "$W"; }
cleanup() {
	for p in $PIDS; do kill -KILL "$p" 2>/dev/null; done
	for q in $(qemu_pids); do kill -KILL "$q" 2>/dev/null; done
	[ -n "$HTTP_PID" ] && kill "$HTTP_PID" 2>/dev/null
	[ -n "$REDIS_PID" ] && kill -KILL "$REDIS_PID" 2>/dev/null
	chmod -R u+w "$W" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export TMPDIR=$W/tmp XDG_RUNTIME_DIR=$W/run XDG_CONFIG_HOME=$W/config \
	XDG_DATA_HOME=$W/data XDG_CACHE_HOME=$W/cache
mkdir -p "$W/tmp" "$W/run" "$W/redis" "$W/bad"
SOCK=$W/redis/redis.sock
export DJINN_REDIS="unix://$SOCK"
. "$TOP/tests/queue_lib.sh"
worker() { # worker NAME
	"$D" worker --name "$1" --slots 1 --drivers qemu --lease 3s \
		--registry "$W/worker/cache.db" --driver-config "$W/vm.conf" \
		>"$W/$1.log" 2>&1 &
	eval "wpid_$1=$!"
	PIDS="$PIDS $!"
}

bash "$TOP/tests/vm/build-image.sh" "$VM" >"$W/img.out" 2>&1
ok $? "build-image.sh: $(tail -1 "$W/img.out")"
IMG=$VM/djinn-tiny.qcow2
SHA=$(sha256sum "$IMG" | cut -c1-64)
"$D" image register --registry "$W/sub.db" e2e tiny "$IMG" >"$W/reg.out" 2>&1
ok $? "the submitter registers the tiny image"
STORE=$(dirname "$("$D" image info --registry "$W/sub.db" --json e2e tiny | jq -r .path)")
check "... stored as <store>/<sha256>.qcow2" test -f "$STORE/$SHA.qcow2"

# The store, served as is; every request is logged.
python3 -u -m http.server --bind 127.0.0.1 --directory "$STORE" 0 \
	>"$W/http.out" 2>"$W/http.log" &
HTTP_PID=$!
wait_for 10 grep -q 'port' "$W/http.out"
PORT=$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$W/http.out" | head -1)
check "an HTTP server over the store on 127.0.0.1:$PORT" test -n "$PORT"
URL=http://127.0.0.1:$PORT

start_redis
ok $? "redis-server on a private socket"
cat >"$W/vm.conf" <<EOF
driver qemu {
    cpus 1
    memory 256
    accel "tcg"
    boot_timeout 3m
}
EOF
cat >"$W/a.yml" <<'EOF'
namespace: e2e
driver:
  type: qemu
  image: tiny
stages: [build]
jobs:
  - stage: build
    commands:
      - echo "GUEST=$(uname -m)"
      - sleep 4
      - echo done
EOF
gets() { grep -c "GET /$SHA.qcow2" "$W/http.log"; }

# --- I1 ----------------------------------------------------------------------
run s1 submit --registry "$W/sub.db" --image-url "$URL" "$W/a.yml"
id1=$(cat "$W/s1.out")
check "submit pins the image: sha256, size and <URL>/<sha256>.qcow2" \
	sh -c "[ $rc -eq 0 ] && [ \"\$(redis-cli -s '$SOCK' HGET djinn:b:$id1 image)\" = '$SHA:$(stat -c %s "$IMG"):$URL/$SHA.qcow2' ]"
worker wa
wait_for 300 terminal "$id1"
check "the first build passes ($(bstatus "$id1"))" test "$(bstatus "$id1")" = passed
"$D" logs "$id1" >"$W/l1.out" 2>&1
check "... it fetched the image, and says so" \
	sh -c "grep -q 'Fetching image sha256:$(echo "$SHA" | cut -c1-12)' '$W/l1.out' && grep -q 'Fetched and validated' '$W/l1.out' && grep -q '^GUEST=x86_64' '$W/l1.out'"
check "... one GET of the image ($(gets))" test "$(gets)" = 1
check "... now in the worker's cache as cache/sha-<hex>" \
	sh -c "'$D' image info --registry '$W/worker/cache.db' --json cache sha-$SHA >'$W/ci.json' && jq -e '.sha256 == \"$SHA\"' '$W/ci.json'"
run s2 submit --registry "$W/sub.db" --image-url "$URL" "$W/a.yml"
id2=$(cat "$W/s2.out")
wait_for 300 terminal "$id2"
"$D" logs "$id2" >"$W/l2.out" 2>&1
check "the second build passes from the cache, no HTTP request ($(gets) GET)" \
	sh -c "[ \"\$(redis-cli -s '$SOCK' HGET djinn:b:$id2 status)\" = passed ] && grep -q \"in the worker's cache\" '$W/l2.out' && [ $(gets) = 1 ]"

# Another image (a valid QCOW2 v3 that boots nothing: the fetch fails
# first), served with other bytes under its name.
qemu-img create -q -f qcow2 "$W/other.qcow2" 16M
"$D" image register --registry "$W/sub.db" e2e other "$W/other.qcow2" >/dev/null 2>&1
OSHA=$(sha256sum "$W/other.qcow2" | cut -c1-64)
head -c 1048576 /dev/urandom >"$W/bad/$OSHA.qcow2"
python3 -u -m http.server --bind 127.0.0.1 --directory "$W/bad" 0 \
	>"$W/http2.out" 2>"$W/http2.log" &
H2=$!
PIDS="$PIDS $H2"
wait_for 10 grep -q 'port' "$W/http2.out"
URL2=http://127.0.0.1:$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$W/http2.out" | head -1)
sed 's/image: tiny/image: other/' "$W/a.yml" >"$W/o.yml"
run s3 submit --registry "$W/sub.db" --image-url "$URL2" "$W/o.yml"
id3=$(cat "$W/s3.out")
wait_for 120 terminal "$id3"
"$D" logs "$id3" >"$W/l3.out" 2>&1
lrc=$?
check "other bytes than were pinned: the build fails, exit 3 (exit $lrc)" \
	sh -c "[ $lrc -eq 3 ] && [ \"\$(redis-cli -s '$SOCK' HGET djinn:b:$id3 status)\" = failed ] && grep -qi 'sha-\?256' '$W/l3.out'"
check "... nothing of it in the cache (no row, no file)" \
	sh -c "! '$D' image info --registry '$W/worker/cache.db' cache sha-$OSHA >/dev/null 2>&1 && ! ls '$W/worker'/*/'$OSHA'* >/dev/null 2>&1 && [ -z \"\$(find '$W/worker' -newer '$W/s3.out' -type f ! -name 'cache.db*' ! -name '.fetch-*.lock' ! -name '.use-*.lock')\" ]"
# The right hash of bytes that are not a valid image: the worker's
# validator refuses it (the pin is written into the queued build).
BAD=$W/bad/notqcow2.img
printf 'QFI\373 not really an image' >"$BAD"
BSHA=$(sha256sum "$BAD" | cut -c1-64)
mv "$BAD" "$W/bad/$BSHA.qcow2"
kill -TERM "$(eval echo \$wpid_wa)"
wait "$(eval echo \$wpid_wa)" 2>/dev/null
run s4 submit --registry "$W/sub.db" --image-url "$URL2" "$W/o.yml"
id4=$(cat "$W/s4.out")
rcli HSET "djinn:b:$id4" image "$BSHA:$(stat -c %s "$W/bad/$BSHA.qcow2"):$URL2/$BSHA.qcow2" >/dev/null
worker wb
wait_for 120 terminal "$id4"
"$D" logs "$id4" >"$W/l4.out" 2>&1
lrc=$?
check "the pinned hash of a file that is not QCOW2 v3: refused by the validator, exit 3" \
	sh -c "[ $lrc -eq 3 ] && grep -qi 'qcow2\|magic\|header' '$W/l4.out' && ! '$D' image info --registry '$W/worker/cache.db' cache sha-$BSHA >/dev/null 2>&1"

# --- V1: a worker killed while its VM runs ---------------------------------------
worker wc
sed 's/sleep 4/sleep 15/' "$W/a.yml" >"$W/v.yml"
run v1 submit --registry "$W/sub.db" --image-url "$URL" "$W/v.yml"
v1=$(cat "$W/v1.out")
run v2 submit --registry "$W/sub.db" --image-url "$URL" "$W/v.yml"
v2=$(cat "$W/v2.out")
# Wait until a build has its machine up (its job runs), then kill its worker.
wait_for 300 sh -c "'$D' logs $v1 2>/dev/null | grep -q '^GUEST=' || '$D' logs $v2 2>/dev/null | grep -q '^GUEST='"
victim=$(rcli HGET "djinn:b:$v1" worker)
vb=$v1
"$D" logs "$v1" 2>/dev/null | grep -q '^GUEST=' || { victim=$(rcli HGET "djinn:b:$v2" worker); vb=$v2; }
vpid=$(eval echo "\$wpid_$victim")
# The victim's qemu: the one whose ancestors include the worker.
vq=
for q in $(qemu_pids); do
	p=$q
	while [ -n "$p" ] && [ "$p" -gt 1 ]; do
		[ "$p" = "$vpid" ] && { vq=$q; break; }
		p=$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$p/status" 2>/dev/null)
	done
done
# alive PID: running or sleeping (a zombie is dead, waiting to be reaped
# by whoever inherited it).
alive() { grep -q '^State:[[:space:]]*[^Z]' "/proc/$1/status" 2>/dev/null; }
kill -KILL "$vpid"
t0=$(date +%s%N)
i=0
while [ $i -lt 1000 ] && [ -n "$vq" ] && alive "$vq"; do
	sleep 0.01
	i=$((i + 1))
done
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
# (No timing assertion: the machine is shared. The time is printed; the
# kill is what must take the VM down, without anyone cleaning up.)
check "kill -9 of worker $victim: its qemu ($vq) dies with it (after $ms ms)" \
	sh -c "[ -n '$vq' ] && ! grep -q '^State:[[:space:]]*[^Z]' /proc/$vq/status 2>/dev/null"
worker wd
wait_for 400 terminal "$v1" "$v2"
check "both builds pass ($(bstatus "$v1"), $(bstatus "$v2"))" \
	sh -c "[ \"\$(redis-cli -s '$SOCK' HGET djinn:b:$v1 status)\" = passed ] && [ \"\$(redis-cli -s '$SOCK' HGET djinn:b:$v2 status)\" = passed ]"
check "... each ended once" sh -c "[ $(finishes "$v1") = 1 ] && [ $(finishes "$v2") = 1 ]"
check "... the killed worker's build was restarted (attempt 2)" \
	test "$(rcli HGET "djinn:b:$vb" attempt)" = 2
for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
for p in $PIDS; do wait "$p" 2>/dev/null; done
PIDS=
check "no qemu left" test -z "$(qemu_pids)"
check "no build directory left" sh -c "! ls -d '$W'/tmp/djinn-build-* >/dev/null 2>&1"
tap_end
