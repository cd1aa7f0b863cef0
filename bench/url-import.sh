#!/bin/bash
# bench/url-import.sh [BUILD] - `image register NS NAME URL` side by side
# with what a careful user does by hand to get the same guarantees (issue
# 14): the same 256 MiB QCOW2 (200 MiB written) served over loopback by
# Python's http.server (tests/e2e/image_url_server.py, /f/ path).
#   ours   djinn-lua image register (download streamed into the store
#          while hashed, fsync, full QCOW2 validation, commit; a new name
#          each run, so each run downloads and hashes everything)
#   ref    curl -o FILE, then sha256sum FILE, then sync -f FILE (no
#          validation at all)
# RUNS (default 7) runs of each side.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$TOP/build}" && pwd) || exit 2
RUNS=${RUNS:-7}
D=$B/djinn-lua
[ -x "$D" ] || { echo "build $B first: make" >&2; exit 2; }
. "$TOP/bench/lib.sh"
W=$(mktemp -d "${TMPDIR:-/tmp}/url-bench.XXXXXX") || exit 1
SRV=
trap '[ -n "$SRV" ] && kill "$SRV"; rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
mkdir -p "$W/www"
qemu-img create -q -f qcow2 -o compat=1.1 "$W/www/img.qcow2" 256M &&
	qemu-io -f qcow2 -c "write -P 0x5a 0 200M" "$W/www/img.qcow2" >/dev/null || exit 1
BYTES=$(stat -c %s "$W/www/img.qcow2")
python3 "$TOP/tests/e2e/image_url_server.py" "$W/www" "$W/port" &
SRV=$!
i=0
while [ ! -s "$W/port" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
URL=http://127.0.0.1:$(cat "$W/port")/f/img.qcow2
# Each run in a subshell (bench_time): a fresh name from the clock.
ours() {
	"$D" image register --registry "$W/reg.db" bench/url "i${EPOCHREALTIME/./}" "$URL"
}
ref() {
	rm -f "$W/copy.qcow2"
	curl -sSf -o "$W/copy.qcow2" "$URL" && sha256sum "$W/copy.qcow2" &&
		sync -f "$W/copy.qcow2"
}
echo "url-import: $RUNS runs each, $BYTES bytes over loopback HTTP"
bench_compare "url: register a 256 MiB image" "$RUNS" "$BYTES" ours ref "curl+sha256sum+sync"
