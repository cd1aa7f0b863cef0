#!/bin/sh
# image_cache.sh - the queue workers' image cache and its byte budget
# (issue 16), through djinn.fetch_pinned (what a worker's `run` calls
# before a qemu build boots) in real djinn-lua processes: images made with
# the real qemu-img, registered in a submitter's registry, its
# content-addressed store served by `python3 -m http.server` on 127.0.0.1
# (every request logged); "in use" held by util-linux's flock(1) (a
# lock-holder nobody here wrote) or by a fetching process itself:
#   a miss downloads once; a hit makes no request;
#   over the budget the least recently used image goes (a hit counts as a
#   use), its store file too;
#   an image in use is never evicted: the next one goes instead; when all
#   that could make room are in use, the download still happens and the
#   log says how far over the budget the cache stays;
#   a holder killed with kill -9 pins nothing (the kernel dropped its lock);
#   a build's own fetch holds its image in use until it ends;
#   an image larger than the whole budget: refused before any request.
# TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/image_cache.XXXXXX") || exit 1
PIDS=
HTTP_PID=
cleanup() {
	for p in $PIDS; do kill -KILL "$p" 2>/dev/null; done
	[ -n "$HTTP_PID" ] && kill "$HTTP_PID" 2>/dev/null
	chmod -R u+w "$W" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export TMPDIR=$W/tmp XDG_RUNTIME_DIR=$W/run XDG_CONFIG_HOME=$W/config \
	XDG_DATA_HOME=$W/data XDG_CACHE_HOME=$W/cache
mkdir -p "$W/tmp" "$W/run" "$W/cache"
. "$TOP/tests/e2e_lib.sh"

# Four images of different content (virtual sizes differ), each the same
# size on disk.
for x in a b c d; do
	case $x in a) v=64M ;; b) v=65M ;; c) v=66M ;; d) v=67M ;; esac
	qemu-img create -q -f qcow2 "$W/$x.qcow2" "$v" &&
		"$D" image register --registry "$W/sub/registry.db" e2e "$x" \
			"$W/$x.qcow2" >"$W/reg-$x.out" 2>&1 || echo "register $x failed"
	eval "SHA_$x=$(sha256sum "$W/$x.qcow2" | cut -c1-64)"
done >"$W/reg.log"
check "four qcow2 images made by qemu-img, registered" test ! -s "$W/reg.log"
SIZE=$(stat -c %s "$W/a.qcow2")
STORE=$W/sub/images
[ -d "$STORE" ] || STORE=$(dirname "$("$D" image info --registry "$W/sub/registry.db" --json e2e a | jq -r .path)")
python3 -u -m http.server --bind 127.0.0.1 --directory "$STORE" 0 \
	>"$W/http.out" 2>"$W/http.log" &
HTTP_PID=$!
wait_for 10 grep -q port "$W/http.out"
PORT=$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$W/http.out" | head -1)
check "an HTTP server over the store on 127.0.0.1:$PORT" test -n "$PORT"
URL=http://127.0.0.1:$PORT
CACHE=$W/worker/registry.db
CDIR=$W/worker
gets() { grep -c "GET /$1.qcow2" "$W/http.log"; }
sha() { eval "echo \$SHA_$1"; }
# fetch X BUDGET [HOLD_S]: djinn.fetch_pinned of image X into the cache
# with that budget (bytes); its log lines -> $W/fetch-X.log; with HOLD_S,
# the process keeps the use lock that long after the fetch.
cat >"$W/fetch.lua" <<'EOF'
local djinn = require "djinn"
local sha, size, url, reg, max, hold = table.unpack(arg, 1, 6)
local log = { line = function(_, s) io.stdout:write(s, "\n") io.stdout:flush() end }
local err, use = djinn.fetch_pinned(reg, { sha256 = sha, size = tonumber(size),
    url = url .. "/" .. sha .. ".qcow2" }, log, { cache_max = tonumber(max) })
if err then io.stdout:write("ERROR ", err, "\n") os.exit(3) end
io.stdout:write("FETCHED\n") io.stdout:flush()
if hold then require("djinn.proc").sleep(tonumber(hold)) end
use:unlock()
EOF
fetch() {
	"$D" "$W/fetch.lua" "$(sha "$1")" "$SIZE" "$URL" "$CACHE" "$2" ${3:-} \
		>"$W/fetch-$1.log" 2>&1
}
cached() { # cached X...: exactly these images are in the cache
	want=$(for x in "$@"; do echo "sha-$(sha "$x")"; done | sort | tr '\n' ' ')
	got=$(sqlite3 "$CACHE" "SELECT name FROM images ORDER BY name" 2>/dev/null | tr '\n' ' ')
	[ "$got" = "$want" ] || { echo "# cache has: $got"; return 1; }
	files=$(find "$CDIR" -name '*.qcow2' | wc -l)
	[ "$files" -eq $# ] || { echo "# $files store files for $# images"; return 1; }
}
lockf() { echo "$CDIR/.use-$(sha "$1").lock"; }
TWO=$((SIZE * 5 / 2)) # room for two images, not three

fetch a "$TWO"
check "a miss: fetched, one GET" sh -c "grep -q FETCHED '$W/fetch-a.log' && [ $(gets "$SHA_a") -eq 1 ]"
sleep 0.05
fetch b "$TWO"
sleep 0.05
fetch a "$TWO"
check "a hit: no second GET, 'is in the worker's cache'" \
	sh -c "grep -q \"is in the worker's cache\" '$W/fetch-a.log' && [ $(gets "$SHA_a") -eq 1 ]"
cached a b
ok $? "two images fit the budget: a and b cached"
sleep 0.05
fetch c "$TWO"
check "a third: the least recently used (b; a was used since) is evicted, saying so" \
	sh -c "grep -q 'Evicted image sha256:$(echo "$SHA_b" | cut -c1-12)' '$W/fetch-c.log' && ! grep -q 'Evicted image sha256:$(echo "$SHA_a" | cut -c1-12)' '$W/fetch-c.log'"
cached a c
ok $? "... a and c cached, b's row and store file gone"

# a is now the least recently used; hold it in use with flock(1).
touch "$(lockf c)"
# -o: the lock stays with flock itself, not with its child sleep.
flock -s -o "$(lockf a)" sleep 60 &
FL=$!
PIDS="$PIDS $FL"
wait_for 5 sh -c "grep -q ' $(stat -c %i "$(lockf a)") ' /proc/locks || grep -q ':$(stat -c %i "$(lockf a)") ' /proc/locks"
sleep 0.05
fetch d "$TWO"
check "a held in use by flock -s: not evicted, c goes instead" \
	sh -c "grep -q 'Evicted image sha256:$(echo "$SHA_c" | cut -c1-12)' '$W/fetch-d.log' && ! grep -q 'Evicted image sha256:$(echo "$SHA_a" | cut -c1-12)' '$W/fetch-d.log'"
cached a d
ok $? "... a and d cached"

# Both in use (a by flock, d by a build that holds its own fetch's lock).
"$D" "$W/fetch.lua" "$SHA_d" "$SIZE" "$URL" "$CACHE" "$TWO" 60 \
	>"$W/fetch-d.log" 2>&1 &
FD=$!
PIDS="$PIDS $FD"
wait_for 10 grep -q FETCHED "$W/fetch-d.log"
fetch b "$TWO"
check "every image that could make room is in use: b is fetched anyway" \
	grep -q FETCHED "$W/fetch-b.log"
check "... and the log says how far over the budget the cache stays" \
	grep -q "image cache stays .* over its budget: the images that would make room are in use" "$W/fetch-b.log"
cached a b d
ok $? "... a, b and d cached (nothing in use was removed)"

# kill -9 of the holders: their locks die with them.
kill -KILL "$FL" "$FD" 2>/dev/null
wait "$FL" "$FD" 2>/dev/null
fetch c "$TWO"
check "after kill -9 of the holders, eviction makes room again" \
	sh -c "[ \$(grep -c 'Evicted image' '$W/fetch-c.log') -ge 2 ]"
cached c b || cached c d || cached c a
ok $? "... down to two images, c one of them"

# b was evicted above or is still cached; remove it to be sure of a miss.
"$D" image rm --registry "$CACHE" cache "sha-$SHA_b" >/dev/null 2>&1
before=$(gets "$SHA_b")
fetch b 1000
check "an image larger than the whole budget: refused, naming the budget" \
	sh -c "grep -q \"over the worker's image cache budget of 1000 B\" '$W/fetch-b.log' && ! grep -q FETCHED '$W/fetch-b.log'"
check "... before any request" test "$before" = "$(gets "$SHA_b")"

tap_end
