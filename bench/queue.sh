#!/bin/bash
# bench/queue.sh [BUILD] - the build queue on a private redis-server
# (issue 16), side by side where there is a reference:
#   1. overhead per build: a trivial os-driver build through `submit
#      --follow` (submit -> worker -> finish -> the follower exits) vs the
#      same `djinn-lua run` directly (RUNS interleaved runs, medians);
#   1b. output: a build printing 16 MiB (`seq`, cut at the output cap)
#      through `submit --follow` vs the same `djinn-lua run` (MB/s of
#      the job's output);
#   2. throughput: N (default 500, QUEUE_N) trivial builds queued, then 3
#      workers x 4 slots start: builds/s until the last ends, each
#      worker's share (balance = busiest / least busy), and the CPU a
#      build costs (the workers and all they start);
#   2b. the floor under it: the same builds' processes with no work in
#      them (bench/queue_floor.c), as the worker starts them, as it did
#      with a fork per build, and as the reference note's prototype;
#   3. recovery: a worker killed (kill -9) while it runs a build: from the
#      kill to the build's start on the other worker (lease 2 s; 5 times,
#      median);
#   4. live log lag: a job printing a nanosecond timestamp every 50 ms,
#      followed by `logs -f --json` elsewhere: arrival minus the stamp
#      (median and 95th percentile of 40 lines).
# Redis runs on a Unix socket in a private directory and is stopped by PID.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$TOP/build}" && pwd) || exit 2
D=$B/djinn-lua
RUNS=${RUNS:-7}
N=${QUEUE_N:-500}
# shellcheck source=bench/lib.sh
. "$TOP/bench/lib.sh"
W=$(mktemp -d "${TMPDIR:-/tmp}/queue-bench.XXXXXX") || exit 1
PIDS=
cleanup() {
	for p in $PIDS; do kill -KILL "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export TMPDIR=$W/tmp XDG_RUNTIME_DIR=$W/run XDG_CONFIG_HOME=$W/config \
	XDG_DATA_HOME=$W/data
mkdir -p "$W/tmp" "$W/run"
SOCK=$W/redis.sock
export DJINN_REDIS="unix://$SOCK"
rcli() { redis-cli -s "$SOCK" "$@"; }
redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 --dir "$W" \
	--save "" --appendonly no --logfile "$W/redis.log" &
PIDS="$PIDS $!"
for _ in $(seq 100); do [ "$(rcli PING 2>/dev/null)" = PONG ] && break; sleep 0.05; done
worker() { # worker NAME SLOTS LEASE
	"$D" worker --name "$1" --slots "$2" --drivers os --lease "$3" \
		>"$W/$1.log" 2>&1 &
	eval "wpid_$1=$!"
	PIDS="$PIDS $!"
}
stop_workers() {
	for p in $PIDS; do [ "$p" = "${PIDS%% *}" ] || kill -TERM "$p" 2>/dev/null; done
	sleep 0.5
}
cat >"$W/t.yml" <<EOF
driver:
  type: os
stages: [a]
jobs:
- stage: a
  commands: [true]
EOF

# 1. overhead
worker w1 1 10s
sleep 0.5
queued() { "$D" submit --follow "$W/t.yml" >/dev/null 2>&1; }
direct() { "$D" run "$W/t.yml" >/dev/null 2>&1; }
bench_compare "queue: trivial os build, submit --follow" "$RUNS" 0 queued \
	direct "djinn-lua run"

# 1b. output
printf 'driver: {type: os}\nstages: [a]\njobs: [{stage: a, commands: [seq 1 5000000]}]\n' \
	>"$W/loud.yml"
loud_queued() { "$D" submit --follow "$W/loud.yml" >/dev/null 2>&1; }
loud_direct() { "$D" run "$W/loud.yml" >/dev/null 2>&1; }
bench_compare "queue: a build printing 16 MiB, submit --follow" "$RUNS" \
	$((16 << 20)) loud_queued loud_direct "djinn-lua run"
kill -TERM "$wpid_w1"
wait "$wpid_w1" 2>/dev/null

# 2. throughput
first=$(($(rcli GET djinn:seq) + 1))
t0=$EPOCHREALTIME
for _ in $(seq "$N"); do "$D" submit "$W/t.yml" >/dev/null || exit 1; done
t1=$EPOCHREALTIME
last=$(rcli GET djinn:seq)
count_done() {
	rcli --raw XRANGE djinn:ev - + | awk -v lo="$first" -v hi="$last" '
		$0 == "type" { t = 1; next } t == 1 { type = $0; t = 0; next }
		$0 == "build" { b = 1; next }
		b == 1 { if (type == "finish" && $0 + 0 >= lo && $0 + 0 <= hi) c++; b = 0 }
		END { print c + 0 }'
}
# CPU of the workers and everything they start (each build's run, keeper
# and shell), from bash's own accounting of its reaped children: steadier
# than builds/s on a machine whose speed varies (one CPU hog elsewhere
# moves builds/s, not the CPU a build costs).
times >"$W/times0"
mkfifo "$W/fifo" # a sleep without a process: read -t on it
t2=$EPOCHREALTIME
worker ta 4 10s
worker tb 4 10s
worker tc 4 10s
# Waiting reads the workers' own logs (a line per recorded finish), not
# XRANGE of the whole event stream: that re-read every entry each turn
# and took CPU from the builds it measured. It reads them with bash's
# own read, no process started: a cat, grep and sleep every 0.1 s took
# about 4 ms of CPU a build from the builds it measured.
finish_re='^[0-9:]+ build [0-9]+ [a-z_]+ \(exit [0-9]+\)$'
ended() { # -> $n: finishes logged so far
	n=0
	local f line
	for f in "$W/ta.log" "$W/tb.log" "$W/tc.log"; do
		while IFS= read -r line; do
			[[ $line =~ $finish_re ]] && n=$((n + 1))
		done <"$f"
	done
}
n=0
while [ "$n" -lt "$N" ]; do
	read -r -t 0.1 <>"$W/fifo" || :
	ended
done
t3=$EPOCHREALTIME
done_n=$(count_done)
[ "$done_n" = "$N" ] || echo "queue: WARNING: the workers logged $N finishes, the event stream has $done_n" >&2
shares=$(for w in ta tb tc; do grep -c ' passed (exit 0)' "$W/$w.log"; done | tr '\n' ' ')
awk -v n="$N" -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v s="$shares" 'BEGIN {
	split(s, x, " "); mx = x[1]; mn = x[1]
	for (i = 2; i <= 3; i++) { if (x[i] > mx) mx = x[i]; if (x[i] < mn) mn = x[i] }
	printf "queue: %d submits in %.2f s (%.1f ms each, one process per submit)\n", n, b - a, (b - a) * 1000 / n
	printf "queue: %d trivial builds on 3 workers x 4 slots in %.2f s: %.1f builds/s; shares %s(balance %.2f)\n", n, d - c, n / (d - c), s, (mn > 0 ? mx / mn : 0)
}'
for w in ta tb tc; do eval "kill -TERM \$wpid_$w; wait \$wpid_$w"; done
times >"$W/times1"
awk -v n="$N" 'function secs(t, a) { split(t, a, /[ms]/); return a[1] * 60 + a[2] }
	FNR == 2 { if (NR == FNR) { u0 = secs($1); s0 = secs($2) } else { u1 = secs($1); s1 = secs($2) } }
	END { printf "queue: CPU per build (the workers and all they start): %.1f ms (user %.1f, system %.1f)\n", (u1 - u0 + s1 - s0) * 1000 / n, (u1 - u0) * 1000 / n, (s1 - s0) * 1000 / n }' "$W/times0" "$W/times1"

# 2b. the floor: the same number of builds' processes with no work in them
# (bench/queue_floor.c): the keeper and the job's shell started from a
# runner as the worker's builds are, the same with a fork of a
# worker-sized process per build (the worker's shape before its runners),
# and the reference note's prototype (a fork and an exec of /bin/true).
# Medians of 3 interleaved runs each, 12 at a time as 3 x 4 slots.
FLOOR=$B/queue_floor
if [ ! -x "$FLOOR" ] || [ "$TOP/bench/queue_floor.c" -nt "$FLOOR" ]; then
	cc -O2 -o "$FLOOR" "$TOP/bench/queue_floor.c" || exit 1
fi
for _ in 1 2 3; do
	for m in keeper fork-keeper fork-exec; do
		"$FLOOR" "$m" "$N" 12 "$B/djinn-keeper" >>"$W/floor.$m" || exit 1
	done
done
for m in keeper fork-keeper fork-exec; do
	echo "queue: floor ($m): $(awk '{ print $6 }' "$W/floor.$m" | bench_median) builds/s, CPU a build $(awk '{ print $11 }' "$W/floor.$m" | bench_median) ms (median of 3; $N builds, 12 at a time, no work in them)"
done

# 3. recovery
cat >"$W/long.yml" <<EOF
driver:
  type: os
stages: [a]
jobs:
- stage: a
  commands: [sleep 3]
EOF
: >"$W/recovery"
for _ in 1 2 3 4 5; do
	worker ra 1 2s
	worker rb 1 2s
	sleep 0.3
	id=$("$D" submit "$W/long.yml")
	while [ "$(rcli HGET "djinn:b:$id" status)" != running ]; do sleep 0.02; done
	who=$(rcli HGET "djinn:b:$id" worker)
	other=ra
	[ "$who" = ra ] && other=rb
	eval "victim=\$wpid_$who"
	# shellcheck disable=SC2154 # set by eval
	kill -KILL "$victim"
	tk=$EPOCHREALTIME
	wait "$victim" 2>/dev/null
	while [ "$(rcli HGET "djinn:b:$id" attempt)" != 2 ]; do sleep 0.01; done
	tr=$EPOCHREALTIME
	awk -v a="$tk" -v b="$tr" 'BEGIN { printf "%.3f\n", b - a }' >>"$W/recovery"
	while [ "$(rcli HGET "djinn:b:$id" status)" = running ]; do sleep 0.05; done
	eval "kill -TERM \$wpid_$other"
	sleep 0.3
done
echo "queue: kill -9 of a worker -> its build started elsewhere (lease 2 s): median $(bench_median <"$W/recovery") s [$(sort -g "$W/recovery" | head -1)-$(sort -g "$W/recovery" | tail -1)]"

# 4. live log lag
cat >"$W/lag.yml" <<EOF
driver:
  type: os
stages: [a]
jobs:
- stage: a
  commands:
  - 'for i in \$(seq 40); do echo "STAMP \$(date +%s%N)"; sleep 0.05; done'
EOF
# The build is queued first and its worker starts only once the reader
# (logs -f and python3) is running: python3's own start-up (about 0.8 s
# on this machine kind) held the first lines in the pipe and was
# measured as lag before.
id=$("$D" submit "$W/lag.yml")
"$D" logs -f --json "$id" | python3 -c '
import json, sys, time
open(sys.argv[1], "w").close()
lags = []
for line in sys.stdin:
    now = time.time_ns()
    try:
        ev = json.loads(line)
    except ValueError:
        continue
    for part in (ev.get("data") or "").split("\n"):
        if part.startswith("STAMP "):
            lags.append((now - int(part[6:])) / 1e6)
lags.sort()
if not lags:
    print("queue: live log lag: no stamped line arrived"); sys.exit(1)
med = lags[len(lags) // 2]
p95 = lags[min(len(lags) - 1, int(len(lags) * 0.95))]
print("queue: live log lag (job prints -> logs -f prints), %d lines: median %.1f ms, p95 %.1f ms, max %.1f ms" % (len(lags), med, p95, lags[-1]))
' "$W/lag.ready" >"$W/lag.out" &
reader=$!
while [ ! -e "$W/lag.ready" ]; do sleep 0.02; done
sleep 0.2
worker lw 1 10s
wait "$reader"
cat "$W/lag.out"
kill -TERM "$wpid_lw"
