#!/bin/sh
# cli_os.sh - end-to-end tests of `djinn-lua run` with the OS driver and of
# the example scripts: real manifests from examples/, real /bin/sh jobs,
# real git, artifacts on disk, statuses and exit codes, --timeout and
# SIGINT (the job's processes must be gone afterwards), --json parsed by
# python3, image commands on a real qcow2 made by qemu-img. TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
EX=$TOP/examples
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/cli_os.XXXXXX") || exit 1
BGPID=
cleanup() {
	if [ -n "$BGPID" ]; then kill "$BGPID" 2>/dev/null; fi
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Never read the user's own driver.conf or registry.
export XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data"
unset NO_COLOR

. "$TOP/tests/e2e_lib.sh"

# --- a passing build ------------------------------------------------------
run hello run --objects "$EX/files" --artifacts "$W/a1" "$EX/os-hello.yml"
ok $rc "os-hello.yml exits 0 (got $rc)"
[ $rc -eq 0 ] || show hello.err
hasF hello.out "Running with Driver os..."; ok $? "hello: Running with Driver os..."
hasF hello.out "Placing object greeting.txt => in/greeting.txt"; ok $? "hello: Placing object line"
hasF hello.out "==> build/build.1"; ok $? "hello: job header"
hasF hello.out "hello, world"; ok $? "hello: manifest env reaches the job"
hasF hello.out "+ echo hello, world"; ok $? "hello: set -x echo"
hasF hello.out "Collecting artifact dist/app.txt => app.txt"; ok $? "hello: Collecting artifact line"
has hello.out '^--> passed in [0-9.]*s$'; ok $? "hello: job footer"
has hello.out '^build passed in [0-9.]*s$'; ok $? "hello: summary"
[ "$(cat "$W/a1/app.txt" 2>/dev/null)" = "hello from an object" ]
ok $? "hello: artifact on disk holds the object's content"
[ "$(cat "$W/a1/parts/one.part" 2>/dev/null)" = "one" ] && [ -f "$W/a1/parts/two.part" ]
ok $? "hello: glob artifacts with * in DST"

# --env overrides the manifest env; --opt=value form.
run env run --objects="$EX/files" --artifacts="$W/a2" --env TARGET=tests --env=NEW=1 "$EX/os-hello.yml"
hasF env.out "hello, tests"; ok $? "--env overrides the manifest env"

# --- a failing build --------------------------------------------------------
run fail run --artifacts "$W/a3" "$EX/failing.yml"
ok $([ $rc -eq 1 ]; echo $?) "failing.yml exits 1 (got $rc)"
hasF fail.out "error: job test.1 in stage test failed: exit status 3"; ok $? "failing: Djinn's error line"
! hasF fail.out "second test" && ! hasF fail.out "deploying" && ! hasF fail.out "unreachable"
ok $? "failing: nothing runs after the failure"
hasF fail.out "not run: test/test.2, deploy/deploy.1"; ok $? "failing: jobs not run are listed"
has fail.out '^build failed in [0-9.]*s: job test.1 in stage test failed (exit status 3)$'
ok $? "failing: summary names the job"

# --- allow_failures -------------------------------------------------------
run allow run --artifacts "$W/a4" "$EX/allow-failures.yml"
ok $rc "allow-failures.yml exits 0 (got $rc)"
has allow.out '^build passed_with_failures in'; ok $? "allow-failures: passed_with_failures"
hasF allow.out "build done"; ok $? "allow-failures: the next stage ran"

# --- --stage ----------------------------------------------------------------
run stage run --objects "$EX/files" --artifacts "$W/a5" --stage test "$EX/os-hello.yml"
ok $rc "--stage test exits 0 (got $rc)"
hasF stage.out "==> test/check" && ! hasF stage.out "==> build/"
ok $? "--stage runs only that stage"
run stage2 run --stage nope "$EX/os-hello.yml"
ok $([ $rc -eq 2 ]; echo $?) "--stage with an unknown stage exits 2 (got $rc)"
hasF stage2.err 'unknown stage "nope"'; ok $? "unknown stage message"

# --- --timeout ----------------------------------------------------------
run slow run --artifacts "$W/a6" --timeout 2s --env "PIDFILE=$W/t.pid" "$EX/slow.yml"
ok $([ $rc -eq 4 ]; echo $?) "--timeout 2s on sleep 30 exits 4 (got $rc)"
has slow.out '^build timed_out in'; ok $? "timeout: build timed_out"
hasF slow.out "not run: after/after.1"; ok $? "timeout: later job not run"
pid=$(cat "$W/t.pid" 2>/dev/null)
[ -n "$pid" ]; ok $? "timeout: the job wrote its sleep pid"
[ -n "$pid" ] && gone "$pid"; ok $? "timeout: the sleep process is gone"

# --- SIGINT mid-job -------------------------------------------------------
"$D" run --artifacts "$W/a7" --env "PIDFILE=$W/i.pid" "$EX/slow.yml" >"$W/int.out" 2>"$W/int.err" &
BGPID=$!
i=0
while [ ! -s "$W/i.pid" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
kill -INT "$BGPID"
wait "$BGPID"
rc=$?
BGPID=
ok $([ $rc -eq 130 ]; echo $?) "SIGINT mid-job exits 130 (got $rc)"
has int.out '^build killed in'; ok $? "SIGINT: build killed"
pid=$(cat "$W/i.pid" 2>/dev/null)
[ -n "$pid" ] && gone "$pid"; ok $? "SIGINT: no child left"

# --- invalid input ----------------------------------------------------------
printf 'driver:\n  type: os\nstages: [a\njobs: []\n' >"$W/bad.yml"
run bad run "$W/bad.yml"
ok $([ $rc -eq 2 ]; echo $?) "bad YAML exits 2 (got $rc)"
has bad.err "bad.yml:[0-9][0-9]*:[0-9][0-9]*: "; ok $? "bad YAML: FILE:LINE:COL"

printf 'driver:\n  type: lxc\nstages: [a]\n' >"$W/lxc.yml"
run lxc run "$W/lxc.yml"
ok $([ $rc -eq 2 ]; echo $?) "unknown driver exits 2 (got $rc)"
hasF lxc.err "lxc.yml:2:9: invalid driver specified lxc"; ok $? "unknown driver: Djinn's message with line:col"

printf 'driver: {type: os}\nenv:\n  - NOEQUALS\nstages: [a]\njobs:\n  - stage: a\n    commands: {x: y}\n' >"$W/inv.yml"
run inv run "$W/inv.yml"
ok $([ $rc -eq 2 ]; echo $?) "invalid manifest exits 2 (got $rc)"
hasF inv.err 'inv.yml:3:5: env[1]: "NOEQUALS" has no "=" (expected KEY=VALUE)' &&
	hasF inv.err 'inv.yml:7:15: jobs[1].commands: expected a list of strings, got a mapping'
ok $? "invalid manifest: every error with line:col"

run nofile run "$W/none.yml"
ok $([ $rc -eq 2 ]; echo $?) "missing manifest exits 2 (got $rc)"

run badopt run --bogus "$EX/os-hello.yml"
ok $([ $rc -eq 2 ]; echo $?) "unknown option exits 2 (got $rc)"

run badto run --timeout 10 "$EX/os-hello.yml"
ok $([ $rc -eq 2 ]; echo $?) "--timeout without a unit exits 2 (got $rc)"

# --- driver.conf -----------------------------------------------------------
run conf run --driver-config "$EX/driver.conf" --objects "$EX/files" --artifacts "$W/a8" "$EX/os-hello.yml"
ok $rc "examples/driver.conf loads (got $rc)"
sed 's/timeout 60s/timeout "60s"/' "$EX/driver.conf" >"$W/dist.conf"
run dist run --driver-config "$W/dist.conf" "$EX/os-hello.yml"
ok $([ $rc -eq 2 ]; echo $?) "Djinn's dist driver.conf (timeout \"60s\") exits 2 (got $rc)"
has dist.err 'dist.conf:[0-9]*:[0-9]*: driver ssh: timeout: expected a duration, got the string "60s"; write it without quotes: timeout 60s'
ok $? "dist driver.conf: message names the key, position and fix"

# --- a git source -----------------------------------------------------------
repo=$W/repo
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com
git init -q "$repo" && echo v1 >"$repo/file.txt" && git -C "$repo" add file.txt &&
	git -C "$repo" commit -q -m one && git -C "$repo" tag v1 &&
	echo v2 >"$repo/file.txt" && git -C "$repo" commit -q -a -m two
ok $? "made a local git repository"
cat >"$W/git.yml" <<EOF
driver:
  type: os
sources:
  - file://$repo v1 => src/app
  - file://$repo
stages: [check]
jobs:
  - stage: check
    commands:
      - cat src/app/file.txt
      - test "\$(cat repo/file.txt)" = v2
    artifacts:
      - src/app/file.txt => cloned.txt
EOF
run git run --artifacts "$W/a9" "$W/git.yml"
ok $rc "manifest with git sources exits 0 (got $rc)"
[ $rc -eq 0 ] || show git.out
hasF git.out "==> setup/clone.1" && hasF git.out "==> setup/clone.2"; ok $? "git: clone jobs in the setup stage"
hasF git.out "+ git clone file://$repo src/app" && hasF git.out "+ git checkout -q v1"
ok $? "git: clone and checkout commands"
[ "$(cat "$W/a9/cloned.txt" 2>/dev/null)" = v1 ]; ok $? "git: the ref was checked out"

# --- --json --------------------------------------------------------------
run json run --json --objects "$EX/files" --artifacts "$W/a10" "$EX/os-hello.yml"
ok $rc "--json exits 0 (got $rc)"
/usr/bin/python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]' <"$W/json.out"
ok $? "--json: every line is JSON"
/usr/bin/python3 -c '
import json, sys
ev = [json.loads(l) for l in sys.stdin]
kinds = [e["event"] for e in ev]
assert kinds[0] == "build_start" and kinds[-1] == "build_end", kinds
assert ev[-1]["status"] == "passed", ev[-1]
ends = [e for e in ev if e["event"] == "job_end"]
assert [(e["stage"], e["job"], e["status"], e["exit_code"]) for e in ends] == \
    [("build", "build.1", "passed", 0), ("test", "check", "passed", 0)], ends
out = "".join(e["data"] for e in ev if e["event"] == "output" and e["job"] == "build.1")
assert "hello, world\n" in out, out
' <"$W/json.out"
ok $? "--json: events, statuses and output"

run jsonfail run --json --artifacts "$W/a11" "$EX/failing.yml"
/usr/bin/python3 -c '
import json, sys
ev = [json.loads(l) for l in sys.stdin]
assert ev[-1]["event"] == "build_end" and ev[-1]["status"] == "failed", ev[-1]
assert ev[-1]["not_run"] == ["test.2", "deploy.1"], ev[-1]
' <"$W/jsonfail.out" && [ $rc -eq 1 ]
ok $? "--json on a failing build"

# issue 12: a job printing invalid UTF-8 and control bytes still gives
# valid JSON (djinn.json: every invalid byte -> U+FFFD), split across reads.
cat >"$W/badutf8.yml" <<'EOF'
driver:
  type: os
stages: [s]
jobs:
  - stage: s
    commands:
      - sh -c "printf 'ok \\303\\251 bad \\377\\376 \\355\\240\\200 ctl \\001\\033[2J\\177 half \\342'; sleep 0.2; printf '\\202\\254 end\\n'"
EOF
run badutf8 run --json "$W/badutf8.yml"
ok $rc "--json, job printing invalid UTF-8: exits 0 (got $rc)"
/usr/bin/python3 -c '
import json, sys
raw = sys.stdin.buffer.read()
ev = [json.loads(l) for l in raw.decode("utf-8").splitlines()]
out = "".join(e["data"] for e in ev if e["event"] == "output" and e["job"] == "s.1")
want = "ok \u00e9 bad \ufffd\ufffd \ufffd\ufffd\ufffd ctl \x01\x1b[2J\x7f half \u20ac end\n"
assert want in out, repr(out)
' <"$W/badutf8.out"
ok $? "--json, invalid UTF-8: valid JSON, invalid bytes as U+FFFD, a split character joined"
sed -n '$p' "$W/badutf8.out" >"$W/last.json"
/usr/bin/python3 -m json.tool "$W/last.json" >/dev/null
ok $? "--json, invalid UTF-8: python3 -m json.tool reads the summary"

# --- the example scripts ---------------------------------------------------
run matrix "$EX/matrix.lua" "$W/mx" plain debug broken
ok $([ $rc -eq 1 ]; echo $?) "matrix.lua exits 1 with a broken flavour (got $rc)"
has matrix.out '^plain  *passed' && has matrix.out '^debug  *passed' && has matrix.out '^broken  *failed'
ok $? "matrix.lua: one line per flavour"
[ "$(cat "$W/mx/debug/flavour.txt" 2>/dev/null)" = debug ]; ok $? "matrix.lua: per-flavour artifacts"
run matrix2 "$EX/matrix.lua" "$W/mx2" plain
ok $rc "matrix.lua exits 0 when every flavour passes (got $rc)"

qemu-img create -q -f qcow2 "$W/disk.qcow2" 64M
ok $? "qemu-img made an image"
run reg1 image register --registry "$W/reg.db" team/ci debian "$W/disk.qcow2"
ok $rc "image register (got $rc)"
run reg2 image register --registry "$W/reg.db" - mine "$W/disk.qcow2"
ok $rc "image register of a personal image (got $rc)"
run ls image ls --registry "$W/reg.db"
has ls.out '^team/ci  *debian ' && has ls.out '^-  *mine '; ok $? "image ls"
run ls2 image ls --registry "$W/reg.db" team/ci
has ls2.out 'debian' && ! has ls2.out 'mine'; ok $? "image ls NAMESPACE"
run info image info --registry "$W/reg.db" team/ci debian
ok $rc "image info (got $rc)"
has info.out '^qcow2.version  *3$'; ok $? "image info shows the QCOW2 header"
run report "$EX/registry-report.lua" "$W/reg.db"
ok $rc "registry-report.lua exits 0 (got $rc)"
hasF report.out "2 image(s) in 2 namespace(s)"; ok $? "registry-report.lua: totals"
run check image check "$W/disk.qcow2"
ok $rc "image check of a valid image (got $rc)"
printf 'not an image' >"$W/raw.img"
run check2 image check "$W/raw.img"
ok $([ $rc -eq 1 ]; echo $?) "image check of a raw file exits 1 (got $rc)"
has check2.out 'raw.img: error: '; ok $? "image check prints the problem"
run rm image rm --registry "$W/reg.db" team/ci debian
ok $rc "image rm (got $rc)"
run rm2 image rm --registry "$W/reg.db" team/ci debian
ok $([ $rc -eq 1 ]; echo $?) "image rm of a missing image exits 1 (got $rc)"

# --- colour only on a terminal, never with NO_COLOR ---------------------------
esc=$(printf '\033')
grep -q "$esc" "$W/hello.out"; ok $([ $? -ne 0 ]; echo $?) "no colour when stdout is not a terminal"
if command -v script >/dev/null 2>&1; then
	# script(1) takes a command string: keep it constant, pass paths in
	# the environment.
	printf '%s\n' 'exec "$TTY_D" run --artifacts "$TTY_A" "$TTY_M"' >"$W/tty-run.sh"
	export TTY_D="$D" TTY_A="$W/a12" TTY_M="$EX/allow-failures.yml"
	(cd "$W" && timeout 60 script -qec 'sh ./tty-run.sh' /dev/null) >"$W/tty.out" 2>&1
	grep -q "${esc}\[1;36m==> lint/lint.1" "$W/tty.out"; ok $? "colour on a terminal"
	(cd "$W" && NO_COLOR=1 timeout 60 script -qec 'sh ./tty-run.sh' /dev/null) >"$W/tty2.out" 2>&1
	hasF tty2.out "==> lint/lint.1" && ! grep -q "$esc" "$W/tty2.out"; ok $? "NO_COLOR on a terminal: no colour"
else
	ok 1 "script(1) from util-linux is needed for the terminal tests"
fi

# --- help and version -------------------------------------------------------
run ver --version
ok $rc "--version exits 0"
has ver.out '^djinn-lua [^ ]* (Lua 5\.4, SQLite [0-9][0-9.]*)$'; ok $? "--version format"
run h1 --help
hasF h1.out "Exit status:" && hasF h1.out "130"; ok $? "--help documents exit codes"
run h2 run --help
ok $rc "run --help exits 0"
hasF h2.out "--timeout DURATION"; ok $? "run --help lists options"
run h3 help image
hasF h3.out "register NAMESPACE NAME SOURCE"; ok $? "help image"
run h4 frobnicate
ok $([ $rc -eq 2 ]; echo $?) "unknown command exits 2 (got $rc)"

tap_end
