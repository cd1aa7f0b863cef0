#!/bin/sh
# needs: root (mounts a full tmpfs)
# os_faults.sh - jobs that misbehave and artifacts under attack on the os
# driver, end to end (issue 10, defects 2, 3, 9 and 12; 2026-12-04):
#   - defect 9: a background process (`sleep 1001 &`) no longer keeps a
#     finished job open until --timeout; detached processes ((cmd &),
#     setsid, nohup, a double fork) are gone after the job, after a
#     --timeout kill, a SIGINT and a kill -9 of the runner. Each process
#     is found by a unique marker in /proc/*/cmdline (an argument
#     100N.<pid of this script>); anything found left is killed by pid.
#   - defect 3: the artifacts directory on a 1 MiB tmpfs: a file and a
#     directory that do not fit are "artifact error: ...: No space left
#     on device" naming the destination, nothing partial, empty or
#     temporary stays, what fits is kept, the build passes
#     (docs/djinn-compat.md §1.7: an artifact that cannot be collected
#     never fails the job). The
#     tmpfs is always unmounted (trap), even on failure; without root or
#     mount(8) that is one failing point (CI runs as root).
#   - defect 2: a link `latest -> elsewhere` inside the artifacts
#     directory does not carry `x => latest/x` outside it; directory
#     artifacts holding a link to /etc or climbing out with ".." are not
#     collected; links that stay inside a directory are.
#   - defect 12: a directory artifact of 20,000 files under
#     --max-artifacts 10 is refused (the copy stops at the cap), the
#     files of smaller directories count toward the cap.
# TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/os_faults.XXXXXX") || exit 1
M=$$ # the marker: sleep 100N.$M
BGPID=
MOUNTED=
# The pids of live processes with an argument "100N.$M" (grep -z: each
# NUL-separated argument is a line, -x: the whole argument).
marked() {
	grep -l -a -z -x -E "100[0-9]\.$M" /proc/[0-9]*/cmdline 2>/dev/null |
		sed 's|^/proc/||; s|/cmdline$||'
}
cleanup() {
	if [ -n "$BGPID" ]; then kill "$BGPID" 2>/dev/null; fi
	for p in $(marked); do kill -9 "$p" 2>/dev/null; done
	if [ -n "$MOUNTED" ]; then umount "$MOUNTED" || umount -l "$MOUNTED"; fi
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data"
# The build directories of the runs killed below stay for the next run's
# reaper: in the suite's own directory, not the machine's /tmp.
export TMPDIR="$W/tmp"
mkdir -p "$TMPDIR"

. "$TOP/tests/e2e_lib.sh"

# none_left WHAT: no process with the marker is alive (waits up to 5 s:
# a killed process may take a moment to be reaped).
none_left() {
	i=0
	while [ $i -lt 100 ]; do
		[ -z "$(marked)" ] && return 0
		sleep 0.05
		i=$((i + 1))
	done
	for p in $(marked); do
		echo "# left: $p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
		kill -9 "$p" 2>/dev/null
	done
	return 1
}
# wait_file FILE: up to 10 s for FILE to exist.
wait_file() {
	i=0
	while [ ! -e "$1" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
	[ -e "$1" ]
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- defect 9: a background process does not keep a job open --------------
cat >"$W/bg.yml" <<EOF
driver: {type: os}
stages: [s]
jobs:
  - stage: s
    commands:
      - echo started
      - sleep 1001.$M &
  - stage: s
    commands: [echo second job ran]
EOF
t0=$(now)
run bg run --timeout 10s --artifacts "$W/a-bg" "$W/bg.yml"
took=$(elapsed "$t0")
ok $rc "a script ending with 'sleep 1001 &' passes (exit $rc)"
[ $rc -eq 0 ] || show bg.out
hasF bg.out "second job ran" && has bg.out '^build passed in'
ok $? "bg: the next job ran, the build passed"
awk -v t="$took" 'BEGIN { exit !(t < 5) }'
ok $? "bg: the job ended when its script did (${took}s, the timeout was 10s)"
none_left
ok $? "bg: the background sleep is gone after the build"

# --- defect 9: detached processes do not outlive the job --------------------
cat >"$W/detach.yml" <<EOF
driver: {type: os}
stages: [s]
jobs:
  - stage: s
    commands:
      - (sleep 1002.$M >/dev/null 2>&1 &)
      - setsid sleep 1003.$M >/dev/null 2>&1 &
      - nohup sleep 1004.$M >/dev/null 2>&1 &
      - sh -c 'sh -c "sleep 1005.$M >/dev/null 2>&1 &" &'
      - sleep 0.3
  - stage: s
    commands: [echo second job ran]
EOF
run detach run --timeout 20s --artifacts "$W/a-detach" "$W/detach.yml"
ok $rc "detached processes: the build passes (exit $rc)"
[ $rc -eq 0 ] || show detach.out
none_left
ok $? "(cmd &), setsid, nohup and a double fork are all gone after the job"

# --- defect 9: --timeout, SIGINT and kill -9 leave nothing ------------------
cat >"$W/stuck.yml" <<EOF
driver: {type: os}
stages: [s]
jobs:
  - stage: s
    commands:
      - (sleep 1002.$M >/dev/null 2>&1 &)
      - setsid sleep 1003.$M >/dev/null 2>&1 &
      - nohup sleep 1004.$M >/dev/null 2>&1 &
      - sleep 0.2
      - touch "\$READY"
      - sleep 1006.$M
EOF
run to run --timeout 2s --env "READY=$W/ready.to" --artifacts "$W/a-to" "$W/stuck.yml"
ok $([ $rc -eq 4 ]; echo $?) "--timeout 2s on a stuck job exits 4 (got $rc)"
none_left
ok $? "--timeout: every process the job started is gone"

"$D" run --env "READY=$W/ready.int" --artifacts "$W/a-int" "$W/stuck.yml" >"$W/int.out" 2>&1 &
BGPID=$!
wait_file "$W/ready.int"
kill -INT "$BGPID"
wait "$BGPID"
rc=$?
BGPID=
ok $([ $rc -eq 130 ]; echo $?) "SIGINT of the runner exits 130 (got $rc)"
none_left
ok $? "SIGINT: every process the job started is gone"

"$D" run --env "READY=$W/ready.k9" --artifacts "$W/a-k9" "$W/stuck.yml" >"$W/k9.out" 2>&1 &
BGPID=$!
wait_file "$W/ready.k9"
kill -9 "$BGPID"
{ wait "$BGPID"; } 2>/dev/null
BGPID=
none_left
ok $? "kill -9 of the runner: every process the job started is gone"

# --- defect 3: a full artifacts directory -----------------------------------
FULL=$W/full
mkdir -p "$FULL"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=1m tmpfs "$FULL" 2>"$W/mount.err"; then
	MOUNTED=$FULL
fi
cat >"$W/full.yml" <<'EOF'
driver: {type: os}
stages: [s]
jobs:
  - stage: s
    commands:
      - echo small > small.txt
      - head -c 2000000 /dev/urandom > big.bin
      - mkdir -p tree/sub
      - for i in 1 2 3 4 5 6; do head -c 300000 /dev/urandom > tree/sub/f$i; done
      - echo after > after.txt
    artifacts:
      - small.txt
      - big.bin => deep/dir/big.bin
      - tree
      - after.txt
EOF
if [ -n "$MOUNTED" ]; then
	run full run --artifacts "$FULL" "$W/full.yml"
	ok $rc "full disk: the build still passes (exit $rc)"
	hasF full.out "artifact error: fs.copy: $FULL/deep/dir/big.bin: No space left on device"
	ok $? "full disk: a file that does not fit says 'No space left on device' and where" || show full.out
	has full.out "^artifact error: fs.copy_tree: $FULL/tree/sub/f[0-9]: No space left on device\$"
	ok $? "full disk: so does a directory that does not fit" || show full.out
	[ "$(ls -A "$FULL" | tr '\n' ' ')" = "after.txt small.txt " ]
	ok $? "full disk: nothing partial, empty or temporary is left (got: $(ls -A "$FULL" | tr '\n' ' '))"
	[ "$(cat "$FULL/small.txt")" = small ] && [ "$(cat "$FULL/after.txt")" = after ]
	ok $? "full disk: what fits is kept whole, also after a failure"
	umount "$FULL" && MOUNTED=
	ok $? "the tmpfs is unmounted"
else
	# Not skipped: CI runs as root; elsewhere this fails visibly.
	ok 1 "full disk: a tmpfs must be mountable (run as root): $(cat "$W/mount.err" 2>/dev/null)"
fi

# --- defect 2: symbolic links in the artifacts directory and in trees -------
ART=$W/a-link
mkdir -p "$ART" "$W/elsewhere"
ln -s "$W/elsewhere" "$ART/latest"
cat >"$W/link.yml" <<'EOF'
driver: {type: os}
stages: [s]
jobs:
  - stage: s
    commands:
      - echo x > x
      - mkdir -p d/sub && echo in > d/sub/f && ln -s /etc d/evil
      - mkdir -p e/sub && ln -s ../../.. e/sub/up
      - mkdir -p ok/sub && echo y > ok/sub/y && ln -s sub/y ok/link && ln -s ../link ok/sub/back
    artifacts:
      - x => latest/x
      - x => latest/deeper/x
      - d
      - e
      - ok
EOF
run link run --artifacts "$ART" "$W/link.yml"
ok $rc "links: the build passes (exit $rc)"
[ -z "$(ls -A "$W/elsewhere")" ]
ok $? "links: nothing written through latest -> elsewhere (got: $(ls -A "$W/elsewhere" | tr '\n' ' '))"
hasF link.out "artifact error: latest/x: fs.mkdir_beneath: $ART/latest: a symbolic link (links below $ART are not followed)"
ok $? "links: 'x => latest/x' is an artifact error naming the link" || show link.out
has link.out "^artifact error: fs.copy_tree: .*/d/evil: a symbolic link to /etc, which leaves the copied tree"
ok $? "links: a directory with a link to /etc is refused, saying so"
has link.out "^artifact error: fs.copy_tree: .*/e/sub/up: a symbolic link to \.\./\.\./\.\., which leaves the copied tree"
ok $? "links: a directory with a link climbing out is refused, saying so"
[ ! -e "$ART/d" ] && [ ! -e "$ART/e" ]
ok $? "links: nothing of the refused directories is kept"
[ "$(readlink "$ART/ok/link")" = sub/y ] && [ "$(cat "$ART/ok/sub/back")" = y ]
ok $? "links: links that stay inside a directory are kept"

# --- defect 12: --max-artifacts counts files --------------------------------
cat >"$W/many.yml" <<'EOF'
driver: {type: os}
stages: [s]
jobs:
  - stage: s
    commands:
      - mkdir many && (cd many && seq 1 20000 | xargs touch)
      - mkdir five && (cd five && touch 1 2 3 4 5)
      - echo one > one.txt
    artifacts:
      - many
      - five
      - five => five2
      - one.txt
EOF
t0=$(now)
run many run --max-artifacts 10 --artifacts "$W/a-many" "$W/many.yml"
took=$(elapsed "$t0")
ok $rc "--max-artifacts 10: the build passes (exit $rc)"
hasF many.out "artifact error: many: not kept: more than 10 files would bring the build's artifacts over the limit of 10 files (--max-artifacts 10; raise it with --max-artifacts N, 0 = no limit)"
ok $? "a directory of 20,000 files under --max-artifacts 10: an error naming the cap and how to raise it" || show many.out
[ ! -e "$W/a-many/many" ] && [ -z "$(ls -A "$W/a-many" | grep -v '^five')" ]
ok $? "nothing of it is kept (no partial or temporary copy)"
[ "$(ls "$W/a-many/five" | wc -l)" -eq 5 ] && [ "$(ls "$W/a-many/five2" | wc -l)" -eq 5 ]
ok $? "two directories of 5 files fill the cap of 10"
hasF many.out "artifact error: one.txt: not collected: the build already has 10 artifacts, the limit (--max-artifacts 10)"
ok $? "the next file is over the cap: the directories' files counted"
echo "# 20,000-file directory refused, whole build in ${took}s"

tap_end
