#!/bin/sh
# examples/queue-demo.sh [BUILD] - `make queue-demo`: the build queue in one
# command. Starts a private redis-server (a Unix socket in a temporary
# directory), two workers (2 slots each, the os driver: the example jobs
# run on this machine), submits the os-driver examples, follows one live,
# lists the builds and the workers, then stops everything it started (by
# PID) and removes the directory.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$TOP/build}" && pwd) || exit 2
D=$B/djinn-lua
T=$(mktemp -d "${TMPDIR:-/tmp}/djinn-queue-demo.XXXXXX") || exit 1
PIDS=
cleanup() {
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export DJINN_REDIS="unix://$T/redis.sock" TMPDIR="$T"
redis-server --port 0 --unixsocket "$T/redis.sock" --unixsocketperm 700 \
	--dir "$T" --save "" --appendonly no --logfile "$T/redis.log" &
PIDS=$!
i=0
until redis-cli -s "$T/redis.sock" PING >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 100 ] || { echo "queue-demo: redis-server did not start" >&2; exit 1; }
	sleep 0.05
done
for w in w1 w2; do
	"$D" worker --name "$w" --slots 2 --drivers os --lease 5s >"$T/$w.log" 2>&1 &
	PIDS="$PIDS $!"
done
echo "== submit (DJINN_REDIS=$DJINN_REDIS)"
for m in slow failing allow-failures matrix; do
	printf '%s.yml -> build ' "$m"
	"$D" submit "$TOP/examples/$m.yml" || exit 1
done
echo "== djinn-lua submit --objects examples/files --follow examples/os-hello.yml"
"$D" submit --objects "$TOP/examples/files" --follow "$TOP/examples/os-hello.yml"
echo "(exit $?)"
i=0
while [ $i -lt 600 ] && "$D" status | grep -Eq ' (queued|running) '; do
	sleep 0.1
	i=$((i + 1))
done
echo "== djinn-lua status"
"$D" status
echo "== djinn-lua workers"
"$D" workers
