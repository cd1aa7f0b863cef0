#!/bin/sh
# os_artifacts.sh - where `djinn-lua run` puts artifacts, end to end with
# the os driver (real /bin/sh jobs, real files):
#   * Djinn's own integration test manifest (tests/manifests/djinn/
#     client-worker-collect-artifacts.yml, Test_WorkerCollectArtifacts):
#     three absolute sources under /etc, written "SRC => " by Djinn's API
#     client, are collected under their own names (issue 11, section 2);
#   * a DST not written keeps each glob match's own name: out/*.log gives
#     a.log, not Djinn's a.log.log (issue 11, item 4.3); a written DST
#     with "*" keeps Djinn's replacement;
#   * absolute sources on this machine, globs included; an object whose
#     source is "." loads and fails to be placed at run time, as in Djinn.
# TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/os_artifacts.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
# Never read the user's own driver.conf or registry.
export XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data"

. "$TOP/tests/e2e_lib.sh"

# --- Djinn's Test_WorkerCollectArtifacts, as its client sent it -----------
M=$TOP/tests/manifests/djinn/client-worker-collect-artifacts.yml
run etc run --artifacts "$W/etc" "$M"
ok $rc "Djinn's collect-artifacts manifest exits 0 (got $rc)"
[ $rc -eq 0 ] || { show etc.out; show etc.err; }
for f in os-release hosts shells; do
	hasF etc.out "Collecting artifact /etc/$f => $f"
	ok $? "Collecting artifact /etc/$f => $f"
	cmp -s "/etc/$f" "$W/etc/$f"
	ok $? "/etc/$f collected with its content as $f"
done
! hasF etc.out "artifact error"; ok $? "no artifact error"
[ "$(ls "$W/etc" 2>/dev/null | wc -l)" -eq 3 ]; ok $? "exactly three artifacts, as Djinn's test expects"

# --- names of glob matches --------------------------------------------------
cat >"$W/names.yml" <<'YML'
driver: {type: os}
stages: [make]
jobs:
  - stage: make
    commands:
      - mkdir -p out && echo a > out/a.log && echo b > out/b.log
    artifacts:
      - out/*.log
      - "out/*.log => logs/*"
      - "out/a.log => renamed-*.txt"
YML
run names run --artifacts "$W/names" "$W/names.yml"
ok $rc "names.yml exits 0 (got $rc)"
[ $rc -eq 0 ] || { show names.out; show names.err; }
[ "$(cat "$W/names/a.log" 2>/dev/null)" = a ] && [ "$(cat "$W/names/b.log" 2>/dev/null)" = b ]
ok $? "out/*.log collects a.log and b.log under their own names"
[ ! -e "$W/names/a.log.log" ] && [ ! -e "$W/names/b.log.log" ]
ok $? "no a.log.log (Djinn's default DST *.log with its * replaced)"
has names.out '^Collecting artifact out/a\.log => a\.log$'
ok $? "Collecting artifact out/a.log => a.log"
[ "$(cat "$W/names/logs/a.log" 2>/dev/null)" = a ] && [ "$(cat "$W/names/logs/b.log" 2>/dev/null)" = b ]
ok $? "a written DST with * keeps Djinn's replacement (logs/*)"
[ "$(cat "$W/names/renamed-a.log.txt" 2>/dev/null)" = a ]
ok $? "* inside a written DST is the match's name (renamed-a.log.txt)"
[ "$(find "$W/names" -type f 2>/dev/null | wc -l)" -eq 5 ]
ok $? "nothing else collected"

# "SRC =>" with nothing after it is a DST not written (Djinn's client).
cat >"$W/arrow.yml" <<'YML'
driver: {type: os}
stages: [make]
jobs:
  - stage: make
    commands: [mkdir -p out, echo c > out/c.log]
    artifacts: ["out/*.log =>"]
YML
run arrow run --artifacts "$W/arrow" "$W/arrow.yml"
ok $rc "arrow.yml exits 0 (got $rc)"
[ "$(cat "$W/arrow/c.log" 2>/dev/null)" = c ] && [ "$(ls "$W/arrow" 2>/dev/null)" = c.log ]
ok $? '"out/*.log =>" collects c.log'

# --- absolute sources: globs, a missing file, ".." still refused ----------
printf 'x\n' >"$W/abs1.src"
printf 'y\n' >"$W/abs2.src"
cat >"$W/abs.yml" <<YML
driver: {type: os}
stages: [s]
jobs:
  - stage: s
    commands: [true]
    artifacts:
      - "$W/abs*.src"
      - "$W/nothing-here"
      - ../up
YML
run abs run --artifacts "$W/abs" "$W/abs.yml"
ok $rc "abs.yml exits 0 (got $rc)"
[ "$(cat "$W/abs/abs1.src" 2>/dev/null)" = x ] && [ "$(cat "$W/abs/abs2.src" 2>/dev/null)" = y ]
ok $? "an absolute glob collects each match under its own name"
hasF abs.out "artifact error: $W/nothing-here: no such file"
ok $? "a missing absolute source is an artifact error"
hasF abs.out 'artifact error: ../up: ".." is not allowed'
ok $? "a relative source climbing out of the workspace is still refused"

# --- an object whose source is "." ------------------------------------------
printf 'driver: {type: os}\nobjects: [.]\nstages: [s]\njobs:\n  - {stage: s, commands: [true]}\n' >"$W/dot.yml"
run dot run --objects "$W" --artifacts "$W/dot" "$W/dot.yml"
ok $((rc != 3)) "dot.yml: the object cannot be placed, the build fails (exit 3, got $rc)"
hasF dot.err 'objects[1]: source "." names the objects directory itself'
ok $? 'an object whose source is "." loads with a warning'
has dot.out '^object error: \.: the path names the directory itself'
ok $? "... and its placement fails at run time, as in Djinn"

tap_end
