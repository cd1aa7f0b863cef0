#!/bin/sh
# queue.sh - the build queue on a real Redis (issue 16): Debian's
# redis-server, started here on a Unix socket in a private directory
# (port 0, no persistence unless a test needs it) and stopped by PID;
# real `djinn-lua worker` processes running os-driver builds. The plan is
# the team's scale-out research note's (its §5; docs/queue.md says what holds):
#   basics: submit (+ --follow, --env, --objects, --json), status, logs (text, JSON,
#     resumed with --after), workers, an invalid manifest, a bad and an
#     unreachable URL;
#   cancel of a queued, a running and an orphaned build (its worker
#     killed; closed at takeover without a second start);
#   SIGTERM drains a worker; SIGINT cancels and takes nothing more;
#   16 MiB of output relayed whole;
#   Q1/Q2: 3 workers x 2 slots, 30 builds, one worker kill -9'd and one
#     frozen (SIGSTOP) past its lease: every build ends once, nothing
#     pending, no job of the killed worker left;
#   Q3: the same check catches a double completion when the fencing is
#     switched off (the negative control), and sees none with it on;
#   Q5: a build that kills every worker that takes it closes as failed
#     after 3 lost workers;
#   Q6: logs -f started before the build shows the restart after a
#     takeover and exits with the build's status;
#   Q7: Redis killed (kill -9) and restarted with appendonly: every build
#     still ends exactly once.
# TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/queue_e2e.XXXXXX") || exit 1
PIDS=
REDIS_PID=
cleanup() {
	for p in $PIDS; do kill -KILL "$p" 2>/dev/null; done
	[ -n "$REDIS_PID" ] && kill -KILL "$REDIS_PID" 2>/dev/null
	# Jobs the tests recorded (each job writes its shell's pid).
	for f in "$W"/jobs/*; do
		[ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
	done
	[ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export TMPDIR=$W/tmp XDG_RUNTIME_DIR=$W/run XDG_CONFIG_HOME=$W/config \
	XDG_DATA_HOME=$W/data XDG_CACHE_HOME=$W/cache
mkdir -p "$W/tmp" "$W/run" "$W/jobs" "$W/redis"
. "$TOP/tests/e2e_lib.sh"

SOCK=$W/redis/redis.sock
export DJINN_REDIS="unix://$SOCK"
. "$TOP/tests/queue_lib.sh"

# worker NAME SLOTS [ENV=VALUE...]: a worker on the os queue, lease 2s.
worker() {
	wn=$1
	ws=$2
	shift 2
	env "$@" "$D" worker --name "$wn" --slots "$ws" --drivers os \
		--lease 2s >"$W/$wn.log" 2>&1 &
	eval "wpid_$wn=$!"
	PIDS="$PIDS $!"
}
wpid() { eval "echo \$wpid_$1"; }
# stop_workers: SIGTERM every worker (each finishes what it runs) and
# wait for them to exit.
stop_workers() {
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	PIDS=
}
# manifest FILE SECONDS [EXTRA COMMAND]: an os-driver build that records
# its job's pid in $W/jobs/<file's name>.<pid>, prints, sleeps, prints.
manifest() {
	cat >"$1" <<EOF
driver:
  type: os
stages:
- test
jobs:
- stage: test
  commands:
  - echo \$\$ > $W/jobs/$(basename "$1").\$\$
  - echo "start \${FOO:-}"
  - ${3:-true}
  - sleep $2
  - echo "end"
EOF
}
pending() { rcli XPENDING djinn:q:os workers | head -1; }

start_redis
ok $? "redis-server started on a private socket (pid $REDIS_PID)"

# --- basics -----------------------------------------------------------------
manifest "$W/pass.yml" 0
cat >"$W/fail.yml" <<EOF
driver:
  type: os
stages:
- test
jobs:
- stage: test
  commands:
  - echo failing
  - exit 3
EOF
printf 'driver:\n  type: nosuch\nstages: [a]\njobs:\n- stage: a\n  commands: [true]\n' >"$W/bad.yml"

run sub1 submit --env FOO=bar "$W/pass.yml"
check "submit: exit 0, prints the build number ($(cat "$W/sub1.out"))" \
	sh -c "[ $rc -eq 0 ] && grep -qx '1' '$W/sub1.out'"
check "... queued, attempt 0" test "$(bstatus 1)" = queued
worker w0 2
check "a worker takes it and it passes" wait_for 20 terminal 1
check "... status passed" test "$(bstatus 1)" = passed
run logs1 logs 1
check "logs: exit 0, the job's output with the variable" \
	sh -c "[ $rc -eq 0 ] && grep -q '^start bar$' '$W/logs1.out' && grep -q '^build passed' '$W/logs1.out'"
run logsj logs --json 1
check "logs --json: every line an event with attempt 1 and an entry id" \
	sh -c "[ $rc -eq 0 ] && jq -e -s 'length > 3 and all(.[]; .attempt == 1 and (.entry | type) == \"string\" or .event == \"end\")' '$W/logsj.out'"
check "... the last is the end: passed, exit 0" \
	sh -c "tail -1 '$W/logsj.out' | jq -e '.event == \"end\" and .status == \"passed\" and .exit_code == 0'"
third=$(sed -n 3p "$W/logsj.out" | jq -r .entry)
run logsa logs --json --after "$third" 1
check "logs --after ENTRY: exactly the entries after it, no duplicate" \
	sh -c "[ \$(wc -l <'$W/logsa.out') -eq \$((\$(wc -l <'$W/logsj.out') - 3)) ] && ! grep -q '\"$third\"' '$W/logsa.out'"
run st1 status --json 1
check "status --json: passed, attempt 1, on w0, exit 0" \
	sh -c "jq -e '.status == \"passed\" and .attempt == 1 and .worker == \"w0\" and .exit_code == 0' '$W/st1.out'"
RUN_TIMEOUT=30 run fol submit --follow "$W/fail.yml"
check "submit --follow of a failing build: exit 1, its output, 'build failed'" \
	sh -c "[ $rc -eq 1 ] && grep -q '^failing$' '$W/fol.out' && grep -q '^build failed' '$W/fol.out'"
check "... status failed" test "$(bstatus 2)" = failed
run bad submit "$W/bad.yml"
check "an invalid manifest: exit 2, where and what, nothing queued" \
	sh -c "[ $rc -eq 2 ] && grep -q 'bad.yml:[0-9]*:[0-9]*:' '$W/bad.err' && grep -q 'nothing queued' '$W/bad.err' && [ \$(redis-cli -s '$SOCK' GET djinn:seq) = 2 ]"
run sec submit --env API_TOKEN=hunter2 "$W/pass.yml"
check "a secret-named --env: exit 2, refused, nothing queued" \
	sh -c "[ $rc -eq 2 ] && grep -q 'API_TOKEN: a secret' '$W/sec.err' && [ \$(redis-cli -s '$SOCK' GET djinn:seq) = 2 ] && ! redis-cli -s '$SOCK' --scan | xargs -r -n1 redis-cli -s '$SOCK' DUMP 2>/dev/null | grep -aq hunter2"
RUN_TIMEOUT=60 run obj submit --objects "$TOP/examples/files" --follow "$TOP/examples/os-hello.yml"
check "submit --objects: the objects travel with the build (examples/os-hello.yml passes)" \
	sh -c "[ $rc -eq 0 ] && grep -q 'Placing object greeting.txt' '$W/obj.out' && grep -q '^tests passed' '$W/obj.out'"
objid=$(head -1 "$W/obj.out")
run art artifacts "$objid" "$W/arts"
check "artifacts ID DIR: the build's artifacts, as run would write them" \
	sh -c "[ $rc -eq 0 ] && [ -f '$W/arts/app.txt' ] && [ \"\$(cat '$W/arts/parts/one.part')\" = one ] && grep -q object '$W/arts/app.txt'"
run artj artifacts --json "$objid" "$W/arts2"
check "... --json: the attempt and the files" \
	sh -c "jq -e '.attempt == 1 and (.files | index(\"app.txt\"))' '$W/artj.out'"
run art1 artifacts 1 "$W/arts3"
check "artifacts of a build that made none: exit 1, says so" \
	sh -c "[ $rc -eq 1 ] && grep -q 'sent back no artifacts' '$W/art1.err'"
mkdir -p "$W/big"
head -c 6000000 /dev/zero >"$W/big/greeting.txt"
seq_before=$(rcli GET djinn:seq)
run big submit --objects "$W/big" "$TOP/examples/os-hello.yml"
check "objects over 5 MiB: exit 2, the limit named, nothing queued" \
	sh -c "[ $rc -eq 2 ] && grep -q 'limit of 5 MiB' '$W/big.err' && [ \$(redis-cli -s '$SOCK' GET djinn:seq) = $seq_before ]"
run nobj submit --objects "$W/tmp" "$TOP/examples/os-hello.yml"
check "a missing object: exit 2, which and where" \
	sh -c "[ $rc -eq 2 ] && grep -q 'object greeting.txt: no such file' '$W/nobj.err'"
run url submit --redis "http://x" "$W/pass.yml"
check "a URL that is not Redis's: exit 2, what is allowed" \
	sh -c "[ $rc -eq 2 ] && grep -q 'redis://' '$W/url.err'"
run down status --redis "unix://$W/nosuch.sock" 1
check "an unreachable Redis: exit 3, says where" \
	sh -c "[ $rc -eq 3 ] && grep -q 'nosuch.sock' '$W/down.err'"
run wk workers --json
check "workers --json: w0, 2 slots, the os queue" \
	sh -c "jq -e '.[] | select(.name == \"w0\") | .slots == 2 and .drivers == [\"os\"]' '$W/wk.out'"

# --- cancel -----------------------------------------------------------------
cat >"$W/dock.yml" <<EOF
driver:
  type: docker
  image: debian:bookworm
  workspace: /work
stages: [a]
jobs:
- stage: a
  commands: [true]
EOF
run qd submit "$W/dock.yml"
qd=$(cat "$W/qd.out")
run cq cancel "$qd"
check "cancel of a queued build (no docker worker): killed at once" \
	sh -c "[ $rc -eq 0 ] && grep -q 'killed' '$W/cq.out' && [ \"\$(redis-cli -s '$SOCK' HGET djinn:b:$qd status)\" = killed ]"
run lq logs "$qd"
check "... logs exits 130 (killed)" test "$rc" = 130
check "... nothing left in its queue" \
	sh -c "[ \"\$(redis-cli -s '$SOCK' XLEN djinn:q:docker)\" = 0 ]"
manifest "$W/long.yml" 60
run lr submit "$W/long.yml"
lr=$(cat "$W/lr.out")
wait_for 20 running "$lr" && wait_for 10 sh -c "ls '$W'/jobs/long.yml.* >/dev/null 2>&1"
ljob=$(cat "$W"/jobs/long.yml.* 2>/dev/null | head -1)
# The build runs in a runner, a child of its worker, titled for ps.
lrun=$(sed -n "s/.* build $lr: started (attempt [0-9]*, pid \([0-9]*\)).*/\1/p" "$W"/*.log | head -1)
lparent=$(ps -o ppid= -p "${lrun:-0}" | tr -d ' ')
check "the running build is a child of its worker titled 'djinn-lua run: build $lr' ($(ps -o args= -p "${lrun:-0}"))" \
	sh -c "ps -o args= -p '${lrun:-0}' | grep -q '^djinn-lua run: build $lr\$' && ps -o args= -p '${lparent:-0}' | grep -q ' worker '"
t0=$(date +%s%N)
run cr cancel "$lr"
check "cancel of a running build: 'requested'" \
	sh -c "[ $rc -eq 0 ] && grep -q 'requested' '$W/cr.out'"
wait_for 15 terminal "$lr"
t1=$(date +%s%N)
check "... killed within 15 s ($(((t1 - t0) / 1000000)) ms)" test "$(bstatus "$lr")" = killed
check "... its job's process ($ljob) is gone" \
	sh -c "[ -n '$ljob' ] && ! kill -0 '$ljob' 2>/dev/null"
check "... ended once" test "$(finishes "$lr")" = 1
rm -f "$W"/jobs/long.yml.*

# SIGTERM drains: the running build finishes, then the worker exits 0.
manifest "$W/short.yml" 2
run sh1 submit "$W/short.yml"
sh1=$(cat "$W/sh1.out")
wait_for 20 running "$sh1"
kill -TERM "$(wpid w0)"
wait "$(wpid w0)"
wrc=$?
check "SIGTERM: the worker finishes its build and exits 0 (exit $wrc)" \
	sh -c "[ $wrc -eq 0 ] && [ \"\$(redis-cli -s '$SOCK' HGET djinn:b:$sh1 status)\" = passed ]"

# --- runners: one process runs a slot's builds one after another -------------
# one_job FILE COMMAND: an os-driver build of one job running COMMAND.
one_job() {
	printf 'driver:\n  type: os\nstages: [a]\njobs:\n- stage: a\n  commands:\n  - %s\n' "$2" >"$1"
}
# shellcheck disable=SC2016 # the job's shell expands them
one_job "$W/who.yml" 'echo "build=$DJINN_BUILD stdin=$(readlink /proc/$$/fd/0)"'
worker wr 1
run r1 submit "$W/who.yml"
run r2 submit "$W/who.yml"
run r3 submit "$W/who.yml"
r1=$(cat "$W/r1.out") r2=$(cat "$W/r2.out") r3=$(cat "$W/r3.out")
wait_for 30 terminal "$r1" "$r2" "$r3"
check "three builds on one slot pass ($(bstatus "$r1"), $(bstatus "$r2"), $(bstatus "$r3"))" \
	sh -c "[ '$(bstatus "$r1")$(bstatus "$r2")$(bstatus "$r3")' = passedpassedpassed ]"
# runpid ID: the pid the worker's log says the build started in
runpid() { sed -n "s/.* build $1: started (attempt [0-9]*, pid \([0-9]*\)).*/\1/p" "$W/wr.log" | head -1; }
p1=$(runpid "$r1") p2=$(runpid "$r2") p3=$(runpid "$r3")
check "... all in one runner, a child of the worker (pids $p1 $p2 $p3)" \
	sh -c "[ -n '$p1' ] && [ '$p1' = '$p2' ] && [ '$p2' = '$p3' ] && [ \"\$(ps -o ppid= -p '$p1' | tr -d ' ')\" = '$(wpid wr)' ]"
check "... which ps shows as idle between builds ($(ps -o args= -p "${p1:-0}"))" \
	sh -c "ps -o args= -p '${p1:-0}' | grep -q '^djinn-lua worker: idle runner\$'"
for id in "$r1" "$r2" "$r3"; do
	run "rl$id" logs "$id"
done
check "... each job saw its own build's DJINN_BUILD" \
	sh -c "grep -qx 'build=$r1 stdin=/dev/null' '$W/rl$r1.out' && grep -qx 'build=$r2 stdin=/dev/null' '$W/rl$r2.out' && grep -qx 'build=$r3 stdin=/dev/null' '$W/rl$r3.out'"
check "... and none could read the runner's requests (the job's stdin is /dev/null)" \
	sh -c "! grep -q 'stdin=pipe' '$W'/rl*.out"
manifest "$W/rlong.yml" 60
run rc1 submit "$W/rlong.yml"
rc1=$(cat "$W/rc1.out")
wait_for 20 running "$rc1" && wait_for 10 sh -c "ls '$W'/jobs/rlong.yml.* >/dev/null 2>&1"
run rcc cancel "$rc1"
wait_for 15 terminal "$rc1"
check "a cancelled build in a runner: killed" test "$(bstatus "$rc1")" = killed
pc=$(runpid "$rc1")
run r4 submit "$W/who.yml"
r4=$(cat "$W/r4.out")
wait_for 20 terminal "$r4"
p4=$(runpid "$r4")
check "... the next build passes in a fresh runner ($pc then $p4), the cancel not carried over" \
	sh -c "[ '$(bstatus "$r4")' = passed ] && [ -n '$p4' ] && [ '$p4' != '$pc' ] && ! kill -0 '${pc:-0}' 2>/dev/null"
wrpid=$(wpid wr)
kill -TERM "$wrpid"
wait "$wrpid"
check "SIGTERM: the worker exits and its idle runner with it" \
	sh -c "! kill -0 '${p4:-0}' 2>/dev/null"
rm -f "$W"/jobs/rlong.yml.*

# SIGINT (Ctrl-C) cancels the running builds and takes nothing more, even
# into a free slot while the cancelled ones are still stopping: a build
# submitted after the signal stays queued for another worker.
manifest "$W/ilong.yml" 60
worker wi 2
run i1 submit "$W/ilong.yml"
i1=$(cat "$W/i1.out")
wait_for 20 running "$i1" && wait_for 10 sh -c "ls '$W'/jobs/ilong.yml.* >/dev/null 2>&1"
wipid=$(wpid wi)
kill -INT "$wipid"
run i2 submit "$W/who.yml"
i2=$(cat "$W/i2.out")
wait "$wipid"
wrc=$?
check "SIGINT: the worker cancels its build and exits 130 (exit $wrc, build $(bstatus "$i1"))" \
	sh -c "[ $wrc -eq 130 ] && [ '$(bstatus "$i1")' = killed ]"
check "... and took nothing after it: the next build is still queued ($(bstatus "$i2"))" \
	test "$(bstatus "$i2")" = queued
run ic cancel "$i2"
wait_for 10 terminal "$i2"
rm -f "$W"/jobs/ilong.yml.*

# A build that prints as fast as it can (seq, cut at the 16 MiB output
# cap): its whole log arrives through the worker, in order. (The worker
# once joined every read onto its backlog: 9.7 s for this build, 0.7 s
# now; tests/lua/lines_test.lua guards the line splitter's work.) `logs`
# reads it 32 entries at a time, so its memory stays bounded.
one_job "$W/loud.yml" "seq 1 5000000"
worker wl 1
wait_for 10 sh -c "grep -q 'slot' '$W/wl.log'"
wlpid=$(wpid wl)
run l1 submit "$W/loud.yml"
l1=$(cat "$W/l1.out")
wait_for 60 terminal "$l1"
timeout 60 /usr/bin/time -o "$W/loud.rss" -f %M "$D" logs "$l1" \
	>"$W/l1l.out" 2>"$W/l1l.err"
"$D" run "$W/loud.yml" >"$W/loud.run" 2>&1
grep -x '[0-9][0-9]*' "$W/l1l.out" >"$W/loud.a"
grep -x '[0-9][0-9]*' "$W/loud.run" >"$W/loud.b"
check "16 MiB of output through a worker: passed, every line of run's in order ($(wc -l <"$W/loud.a") lines)" \
	sh -c "[ '$(bstatus "$l1")' = passed ] && [ \$(wc -l <'$W/loud.a') -gt 2000000 ] && cmp -s '$W/loud.a' '$W/loud.b'"
check "... and \`logs\` printed it in bounded memory: $(cat "$W/loud.rss") KB resident (< 32 MiB; 1,000 entries a read took 42 MB)" \
	test "$(cat "$W/loud.rss")" -lt 32768
rm -f "$W"/loud.*

# Job output reaches the log as bytes (djinn.log's output frames): bytes
# that are not UTF-8 print as `run` prints them, `logs --json` shows them
# as `run --json` does (U+FFFD each; a valid character whole), and output
# that looks like the runner's own lines (a frame header, the done line)
# is only output.
# shellcheck disable=SC2016 # printf's escapes, for the job's shell
one_job "$W/bytes.yml" 'printf "caf\\351 \\377\\376 ok\\n{\"event\":\"output_raw\",\"bytes\":3,\"job\":null}\\nabc\\n{\"runner_done\":0}\\n\\342\\202\\254 euro\\n"'
run by submit "$W/bytes.yml"
by=$(cat "$W/by.out")
wait_for 30 terminal "$by"
run byl logs "$by"
run byj logs --json "$by"
"$D" run "$W/bytes.yml" >"$W/bytes.run" 2>/dev/null
"$D" run --json "$W/bytes.yml" >"$W/bytes.runj" 2>/dev/null
grep -av '^Workspace' "$W/byl.out" | grep -av ' in [0-9.]*s$' >"$W/bytes.a"
grep -av '^Workspace' "$W/bytes.run" | grep -av ' in [0-9.]*s$' >"$W/bytes.b"
check "bytes that are not UTF-8: \`logs\` prints the job's output byte for byte as \`run\` ($(bstatus "$by"))" \
	sh -c "[ '$(bstatus "$by")' = passed ] && cmp -s '$W/bytes.a' '$W/bytes.b' && grep -aq 'caf$(printf '\351') $(printf '\377\376') ok' '$W/bytes.a'"
jq -j 'select(.event == "output") | .data' "$W/byj.out" 2>/dev/null |
	grep -av '^Workspace' >"$W/bytes.ja"
jq -j 'select(.event == "output") | .data' "$W/bytes.runj" 2>/dev/null |
	grep -av '^Workspace' >"$W/bytes.jb"
check "... \`logs --json\` the same output as \`run --json\` (U+FFFD for them; the euro sign whole)" \
	sh -c "cmp -s '$W/bytes.ja' '$W/bytes.jb' && grep -q 'caf$(printf '\357\277\275') ' '$W/bytes.ja' && grep -q '€ euro' '$W/bytes.ja'"
check "... every output event carries its attempt and entry" \
	sh -c "jq -e -s '[.[] | select(.event == \"output\")] | length > 0 and all(.[]; .attempt == 1 and (.entry | type) == \"string\")' '$W/byj.out' >/dev/null"
check "... and lines that imitate the runner's (a frame header, the done line) are only output" \
	sh -c "grep -aqx '{\"event\":\"output_raw\",\"bytes\":3,\"job\":null}' '$W/bytes.a' && grep -aqx 'abc' '$W/bytes.a' && grep -aqx '{\"runner_done\":0}' '$W/bytes.a'"
rm -f "$W"/bytes.*
kill -TERM "$wlpid"
wait "$wlpid"

# --- Q1/Q2: 30 builds, one worker killed, one frozen ------------------------
i=1
first=$(($(rcli GET djinn:seq) + 1))
while [ $i -le 30 ]; do
	manifest "$W/b$i.yml" $((i % 2 + 1))
	"$D" submit "$W/b$i.yml" >/dev/null 2>&1
	i=$((i + 1))
done
last=$(rcli GET djinn:seq)
ids=$(seq "$first" "$last")
worker wa 2
worker wb 2
worker wc 2
wait_for 20 sh -c "grep -q 'started' '$W/wb.log'"
sleep 0.5
kill -KILL "$(wpid wb)"
killed_at=$(date +%s)
wait_for 10 sh -c "grep -q 'started' '$W/wc.log'"
kill -STOP "$(wpid wc)"
# Frozen for 4 leases: the one live worker (wa) takes entries over only
# as its own builds end, so 5 s were sometimes not enough for it to reach
# one of wc's (which wc then finished, rightly, as their owner).
sleep 8
kill -CONT "$(wpid wc)"
wait_for 90 terminal $ids
ok $? "Q1: all 30 builds ended ($(($(date +%s) - killed_at)) s after the kill)"
allpass=0
for id in $ids; do [ "$(bstatus "$id")" = passed ] || allpass=1; done
ok $allpass "... every one passed"
once=0
for id in $ids; do [ "$(finishes "$id")" = 1 ] || once=1; done
ok $once "... each ended exactly once (one finish event)"
check "... nothing pending in the queue ($(pending))" test "$(pending)" = 0
wb_builds=$(sed -n 's/.*build \([0-9]*\): started.*/\1/p' "$W/wb.log")
restarted=0
for id in $wb_builds; do
	rcli --raw XRANGE "djinn:log:$id" - + | grep -qx restart || restarted=1
done
check "... the killed worker's builds ($(echo $wb_builds)) were restarted, and say so" \
	sh -c "[ -n '$wb_builds' ] && [ $restarted -eq 0 ]"
left=0
for f in "$W"/jobs/*; do
	[ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && left=1
done
ok $left "... no job process of any worker is left"
check "Q2: the frozen worker had builds taken over and recorded none of them" \
	sh -c "grep -Eq 'finish rejected|lease lost' '$W/wc.log'"
rm -f "$W"/jobs/*

# --- Q3: the same check with the fencing off catches a double completion ----
# freeze_case NAME ENV: worker NAME_1 takes a 3 s build and is frozen for
# 6 s; NAME_2 takes it over after the 2 s lease; then NAME_1 wakes.
freeze_case() {
	stop_workers
	manifest "$W/$1.yml" 3
	"$D" submit "$W/$1.yml" >"$W/$1.id"
	fid=$(cat "$W/$1.id")
	worker "${1}1" 1 "$2"
	wait_for 20 running "$fid"
	kill -STOP "$(wpid "${1}1")"
	worker "${1}2" 1 "$2"
	sleep 6
	kill -CONT "$(wpid "${1}1")"
	wait_for 20 terminal "$fid"
	# Fenced: give the woken worker time to record a second finish (it
	# must not). Unfenced: wait for the second finish it records.
	if [ "$1" = unfenced ]; then
		wait_for 15 two_finishes "$fid"
	else
		sleep 2
	fi
}
two_finishes() { [ "$(finishes "$1")" -ge 2 ]; }
freeze_case fenced DJINN_TEST_UNFENCED=0
check "Q3: fencing on: a frozen worker's build ends once ($(finishes "$fid"))" \
	test "$(finishes "$fid")" = 1
freeze_case unfenced DJINN_TEST_UNFENCED=1
check "Q3: negative control, fencing off: the check sees two completions ($(finishes "$fid"))" \
	test "$(finishes "$fid")" -ge 2

# --- cancel of an orphaned build; logs -f across a takeover -------------------
stop_workers
manifest "$W/orph.yml" 30
run or submit "$W/orph.yml"
orph=$(cat "$W/or.out")
manifest "$W/follow.yml" 3
run fo submit "$W/follow.yml"
fo=$(cat "$W/fo.out")
timeout 60 "$D" logs -f "$fo" >"$W/follow.out" 2>&1 &
fpid=$!
PIDS="$PIDS $fpid"
worker wo 2
both_running() { running "$orph" && running "$fo"; }
wait_for 20 both_running
wait_for 10 sh -c "grep -q '^start' '$W/follow.out'"
kill -KILL "$(wpid wo)"
run oc cancel "$orph"
check "cancel of a build whose worker was killed: 'requested'" \
	sh -c "[ $rc -eq 0 ] && grep -q requested '$W/oc.out'"
worker wp 2
wait_for 20 terminal "$orph"
check "... closed as killed when taken over ($(bstatus "$orph"))" test "$(bstatus "$orph")" = killed
check "... and never started again (1 start event)" test "$(starts "$orph")" = 1
wait "$fpid"
frc=$?
check "logs -f (started before the build): exit 0 as the build" test "$frc" = 0
check "... shows the restart after the takeover" \
	grep -q '^restarted: previous worker lost (attempt 2)' "$W/follow.out"
check "... both attempts' lines, then the end" \
	sh -c "[ \$(grep -c '^start' '$W/follow.out') -eq 2 ] && tail -3 '$W/follow.out' | grep -q '^build passed'"

# --- Q5: a build that kills every worker that takes it ------------------------
cat >"$W/poison.yml" <<EOF
driver:
  type: os
stages: [a]
jobs:
- stage: a
  commands:
  - p=\$\$; while [ "\$p" -gt 1 ]; do if tr '\\0' ' ' </proc/\$p/cmdline | grep -q ' worker '; then kill -9 \$p; fi; p=\$(sed -n 's/^PPid:[[:space:]]*//p' /proc/\$p/status); done
  - sleep 5
EOF
run po submit "$W/poison.yml"
poison=$(cat "$W/po.out")
manifest "$W/fine.yml" 0
run fi submit "$W/fine.yml"
fine=$(cat "$W/fi.out")
tries=0
while [ $tries -lt 8 ] && ! terminal "$poison"; do
	if ! kill -0 "$(wpid wp)" 2>/dev/null; then
		tries=$((tries + 1))
		worker wp 1
	fi
	sleep 0.3
done
wait_for 20 terminal "$poison"
check "Q5: the poison build closes as failed after 3 lost workers" \
	sh -c "[ \"\$(redis-cli -s '$SOCK' HGET djinn:b:$poison status)\" = failed ] && redis-cli -s '$SOCK' HGET djinn:b:$poison error | grep -q 'worker lost 3 times'"
wait_for 20 terminal "$fine"
check "... the other build is unaffected (passed)" test "$(bstatus "$fine")" = passed

# --- Q7: Redis killed and restarted with appendonly -------------------------
stop_workers
kill -KILL "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null
rm -f "$SOCK"
start_redis yes
ok $? "redis-server restarted with appendonly yes"
first=$(($(rcli GET djinn:seq) + 1))
i=1
while [ $i -le 6 ]; do
	manifest "$W/r$i.yml" 2
	"$D" submit "$W/r$i.yml" >/dev/null 2>&1
	i=$((i + 1))
done
ids=$(seq "$first" "$(rcli GET djinn:seq)")
worker wr1 2
worker wr2 2
wait_for 20 sh -c "grep -q 'started' '$W/wr1.log'"
sleep 0.5
kill -KILL "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null
rm -f "$SOCK"
start_redis yes
ok $? "Q7: Redis killed mid-run and restarted from its AOF"
wait_for 60 terminal $ids
ok $? "... every build ended"
once=0
for id in $ids; do [ "$(finishes "$id")" = 1 ] || once=1; done
ok $once "... each exactly once"
check "... nothing pending" test "$(pending)" = 0
check "... the workers reconnected" \
	sh -c "grep -q 'lost Redis' '$W/wr1.log' && grep -q 'passed' '$W/wr1.log'"

stop_workers
rcli SHUTDOWN NOSAVE >/dev/null 2>&1
wait "$REDIS_PID" 2>/dev/null
REDIS_PID=
tap_end
