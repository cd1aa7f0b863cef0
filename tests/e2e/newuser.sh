#!/bin/sh
# needs: dockerd (starts a private dockerd and registry)
# newuser.sh - the mistakes new users make (issue 11, items 4.1, 4.2, 4.9,
# 4.11), end to end through the real build/djinn-lua with the os driver
# and a real docker engine (a private dockerd and docker-registry on
# 127.0.0.1:$NU_REG_PORT, tests/docker/lib.sh):
#   - a misspelt job key (comands:) or job stage (stage: biuld): the load
#     warnings come first and again in the summary, and a build in which
#     no job ran is failed (exit 1, saying why); before, it "passed";
#   - djinn-lua check (0 valid, 2 invalid, --strict: warnings exit 1) and
#     run --strict;
#   - a misspelt driver.conf key (memroy 256): a warning with the file,
#     line, key and the nearest known key; before, silence;
#   - run --json on an invalid manifest: error events and a build_end on
#     stdout; before, nothing;
#   - run --tree [DIR]: the tree in the build's working directory before
#     the first job (git ls-files in a checkout: .gitignore honoured, no
#     .git; a plain directory whole), links leaving the tree and trees
#     over the object caps refused, in the os and docker drivers.
# Real git, real /bin/sh jobs. TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/newuser.XXXXXX") || exit 1
DK=$W/dk
# Not docker.sh's port 5000: the two suites may run at the same time.
NU_REG_PORT=${NU_REG_PORT:-5011}
DK_REG=127.0.0.1:$NU_REG_PORT
. "$TOP/tests/docker/lib.sh"
cleanup() {
	dk_stop "$DK"
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Never read the user's own driver.conf or registry.
export XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data" XDG_RUNTIME_DIR="$W/run"
unset NO_COLOR
export GIT_CONFIG_NOSYSTEM=1 HOME="$W/home"
mkdir -p "$HOME" "$W/run"
SHOW_LINES=40
. "$TOP/tests/e2e_lib.sh"
# line FILE STRING: the number of the first line holding STRING (or 99999)
line() { grep -n -F -e "$2" "$W/$1" | head -n 1 | cut -d: -f1 | grep . || echo 99999; }
json_ok() { python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$W/$1"; }

# --- 4.1: a misspelt key or stage ----------------------------------------
cat >"$W/comands.yml" <<'EOF'
driver: {type: os}
stages: [build]
jobs:
  - stage: build
    comands:
      - echo built > built.txt
EOF
cat >"$W/biuld.yml" <<'EOF'
driver: {type: os}
stages: [build]
jobs:
  - stage: biuld
    commands:
      - echo built
EOF
cat >"$W/half.yml" <<'EOF'
driver: {type: os}
stages: [build]
enviroment: [A=1]
jobs:
  - stage: build
    commands:
      - echo ran-the-job
EOF
cat >"$W/good.yml" <<'EOF'
driver: {type: os}
stages: [build]
jobs:
  - stage: build
    commands:
      - echo good
EOF
run comands run --artifacts "$W/art" "$W/comands.yml"
ok $((rc != 1)) "comands: typo: exit 1, not passed (got $rc)"
has comands.out '^build failed in [0-9.]*s: no job ran: its only job has no commands (see the warnings)$'
ok $? "comands: typo: the summary says no job ran and why"
hasF comands.err 'comands.yml:5:5: jobs[1]: unknown key "comands"'
ok $? "comands: typo: the unknown key is a warning with line:col"
hasF comands.out 'warning: '"$W"'/comands.yml:5:5: jobs[1]: unknown key "comands"'
ok $? "comands: typo: the warning is repeated in the summary"
! grep -q "Running with Driver" "$W/comands.out"
ok $? "comands: typo: no driver was created"

run biuld run --artifacts "$W/art" "$W/biuld.yml"
ok $((rc != 1)) "stage: biuld: exit 1 (got $rc)"
has biuld.out '^build failed in [0-9.]*s: no job ran: the manifest has no jobs in its stages (stages: build)'
ok $? "stage: biuld: the summary says no job ran and why"
hasF biuld.out 'stage "biuld" is not listed in stages; the job is dropped'
ok $? "stage: biuld: the dropped job's warning is in the summary"

# Warnings before anything else: stdout and stderr into one file.
timeout 60 "$D" run --artifacts "$W/art" "$W/half.yml" >"$W/half.all" 2>&1
rc=$?
ok $rc "a build with a warning and a real job passes (got $rc)"
w1=$(line half.all 'unknown key "enviroment"')
d1=$(line half.all 'Running with Driver os')
ok $([ "$w1" -lt "$d1" ]; echo $?) "the load warning comes before anything else (line $w1 < $d1)"
c=$(grep -c -F 'unknown key "enviroment"' "$W/half.all")
ok $([ "$c" -eq 2 ]; echo $?) "the load warning is printed first and repeated in the summary (got $c)"
l=$(tail -n 1 "$W/half.all")
case $l in 'warning: '*'unknown key "enviroment"'*) r=0 ;; *) r=1 ;; esac
ok $r "the summary ends with the warning: $l"

# --stage with no jobs in that stage.
printf 'driver: {type: os}\nstages: [a, b]\njobs:\n  - {stage: a, commands: [echo a]}\n' >"$W/stages.yml"
run nostage run --artifacts "$W/art" --stage b "$W/stages.yml"
ok $((rc != 1)) "--stage with no jobs: exit 1 (got $rc)"
hasF nostage.out "no job ran: stage b has no jobs"; ok $? "--stage with no jobs: says why"

# --- check and --strict -------------------------------------------------------
run ck_good check "$W/good.yml"
ok $rc "check good.yml: exit 0 (got $rc)"
hasF ck_good.out "good.yml: ok: driver os, 1 job in 1 stage"; ok $? "check: one ok line"
run ck_half check "$W/half.yml"
ok $rc "check: warnings alone are exit 0 (got $rc)"
hasF ck_half.err 'half.yml:3:1: unknown key "enviroment"'; ok $? "check: the warning on stderr"
run ck_strict check --strict "$W/half.yml" "$W/good.yml"
ok $((rc != 1)) "check --strict with a warning: exit 1 (got $rc)"
run ck_typo check "$W/good.yml" "$W/comands.yml" "$W/biuld.yml"
ok $((rc != 2)) "check of manifests where no job would run: exit 2 (got $rc)"
hasF ck_typo.out "comands.yml: invalid: no job would run: its only job has no commands" &&
	hasF ck_typo.out "biuld.yml: invalid: no job would run" && hasF ck_typo.out "good.yml: ok"
ok $? "check: one line per manifest"
printf 'driver: {type: os}\nenv: [NOEQUALS]\nstages: [a]\njobs:\n  - {stage: a, commands: [echo]}\n' >"$W/inv.yml"
run ck_inv check "$W/inv.yml"
ok $((rc != 2)) "check of an invalid manifest: exit 2 (got $rc)"
hasF ck_inv.err 'inv.yml:2:7: env[1]: "NOEQUALS" has no "="'; ok $? "check: the error with line:col"
run ck_none check "$W/none.yml"
ok $((rc != 2)) "check of a missing file: exit 2 (got $rc)"
run ck_usage check
ok $((rc != 2)) "check without a manifest: usage, exit 2 (got $rc)"
run help_main --help
hasF help_main.out "check [--strict] MANIFEST..."; ok $? "--help lists check"
run help_run run --help
hasF help_run.out "--strict" && hasF help_run.out "--tree [DIR]"; ok $? "run --help lists --strict and --tree"
run help_check help check
ok $rc "help check: exit 0 (got $rc)"

run strict run --strict --artifacts "$W/art" "$W/half.yml"
ok $((rc != 1)) "run --strict with a warning: exit 1 (got $rc)"
! hasF strict.out "ran-the-job" && ! hasF strict.out "Running with Driver"
ok $? "run --strict: nothing ran"
has strict.out '^build failed in .*: --strict: 1 warning; nothing was run$'; ok $? "run --strict: says why"
run strict_ok run --strict --artifacts "$W/art" "$W/good.yml"
ok $rc "run --strict without warnings runs and passes (got $rc)"

# --- 4.2: driver.conf ----------------------------------------------------------
printf 'driver qemu {\n    cpus 1\n    memroy 256\n}\ndriver os {}\n' >"$W/memroy.conf"
run conf run --driver-config "$W/memroy.conf" --artifacts "$W/art" "$W/good.yml"
ok $rc "a misspelt driver.conf key is not an error (got $rc)"
hasF conf.err "warning: $W/memroy.conf:3:5: driver qemu: unknown key \"memroy\" (ignored; did you mean memory?"
ok $? "driver.conf: the warning names the file, line:col, the key and the nearest key"
hasF conf.out "warning: $W/memroy.conf:3:5: driver qemu: unknown key \"memroy\""
ok $? "driver.conf: the warning is in the summary"
run ck_conf check --strict --driver-config "$W/memroy.conf" "$W/good.yml"
ok $((rc != 1)) "check --strict with a driver.conf warning: exit 1 (got $rc)"
printf 'driver qemux {}\nlimit { max_output 1MB }\n' >"$W/names.conf"
run ck_names check --driver-config "$W/names.conf" "$W/good.yml"
hasF ck_names.err 'names.conf:1:8: unknown driver "qemux" (its block is ignored; did you mean qemu?' &&
	hasF ck_names.err 'names.conf:2:1: unknown key "limit" (ignored; did you mean limits?'
ok $? "driver.conf: unknown driver types and blocks too"
mkdir -p "$W/config/djinn"
cp "$W/memroy.conf" "$W/config/djinn/driver.conf"
run defconf run --artifacts "$W/art" "$W/good.yml"
hasF defconf.err "$W/config/djinn/driver.conf:3:5: driver qemu: unknown key \"memroy\""
ok $? "driver.conf: the default file is checked too"
rm -f "$W/config/djinn/driver.conf"

# --- 4.9: --json for a build that cannot start --------------------------------
run json_inv run --json "$W/inv.yml"
ok $((rc != 2)) "--json invalid manifest: exit 2 (got $rc)"
json_ok json_inv.out; ok $? "--json invalid manifest: every stdout line is JSON"
python3 - "$W/json_inv.out" "$W/inv.yml" <<'EOF'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
errs = [e for e in ev if e["event"] == "error"]
assert len(errs) == 1, ev
e = errs[0]
assert (e["file"], e["line"], e["col"]) == (sys.argv[2], 2, 7), e
assert 'has no "="' in e["message"], e
end = ev[-1]
assert end["event"] == "build_end" and end["status"] == "invalid", end
assert end["exit_code"] == 2 and "invalid manifest (1 error)" in end["error"], end
EOF
ok $? "--json invalid manifest: an error event with file/line/col and a build_end"
run json_opt run --json --timeout soon "$W/good.yml"
python3 - "$W/json_opt.out" <<'EOF'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
assert ev[0]["event"] == "error" and "--timeout" in ev[0]["message"], ev
assert ev[-1]["status"] == "invalid" and ev[-1]["exit_code"] == 2, ev
EOF
ok $? "--json bad option: an error event (exit $rc)"
printf 'driver "os" {\n' >"$W/broken.conf"
run json_conf run --json --driver-config "$W/broken.conf" "$W/good.yml"
python3 - "$W/json_conf.out" <<'EOF'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
assert any(e["event"] == "error" and "broken.conf" in e.get("file", "") for e in ev), ev
assert ev[-1]["status"] == "invalid", ev
EOF
ok $? "--json broken driver.conf: error events (exit $rc)"
run json_typo run --json --artifacts "$W/art" "$W/comands.yml"
python3 - "$W/json_typo.out" <<'EOF'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
assert ev[0]["event"] == "warning" and "comands" in ev[0]["message"], ev
end = ev[-1]
assert end["event"] == "build_end" and end["status"] == "failed", end
assert end["exit_code"] == 1 and end["error"].startswith("no job ran"), end
assert any("comands" in w for w in end["warnings"]), end
EOF
ok $? "--json no job ran: warning events first, build_end failed with the warnings"

# --- 4.11: --tree --------------------------------------------------------------
R=$W/repo
mkdir -p "$R/src/lib" "$R/build" "$R/docs"
git -C "$R" init -q
printf '*.o\nbuild/\nsecret.env\n' >"$R/.gitignore"
printf 'int main(void) { return 0; }\n' >"$R/src/main.c"
printf 'lib\n' >"$R/src/lib/util.txt"
printf 'object file\n' >"$R/src/main.o"
printf 'junk\n' >"$R/build/out.bin"
printf 'TOKEN=no\n' >"$R/secret.env"
printf '#!/bin/sh\necho "script ran"\n' >"$R/run.sh"
chmod 755 "$R/run.sh"
ln -s ../src/main.c "$R/docs/main.c"
ln -s ../main.c "$R/src/lib/main.c"
git -C "$R" add -A
git -C "$R" -c user.email=t@t -c user.name=t commit -q -m init
printf 'not committed yet\n' >"$R/new.txt"
printf 'tracked, then removed\n' >"$R/gone.txt"
git -C "$R" add gone.txt
rm "$R/gone.txt"
cat >"$R/.djinn.yml" <<'EOF'
driver: {type: os}
stages: [test]
jobs:
  - stage: test
    commands:
      - find . | LC_ALL=C sort > listing.txt
      - ./run.sh
      - cat src/main.c docs/main.c new.txt
      - test -L src/lib/main.c && test -f docs/main.c && test ! -L docs/main.c
    artifacts:
      - listing.txt
EOF
git -C "$R" add .djinn.yml
expected='.
./.djinn.yml
./.gitignore
./docs
./docs/main.c
./new.txt
./run.sh
./src
./src/lib
./src/lib/main.c
./src/lib/util.txt
./src/main.c'
run tree run --tree "$R" --artifacts "$W/t1" "$R/.djinn.yml"
ok $rc "--tree DIR (a checkout): the build passes (got $rc)"
[ $rc -eq 0 ] || { show tree.out; show tree.err; }
[ "$(grep -v listing.txt "$W/t1/listing.txt" 2>/dev/null)" = "$expected" ]
ok $? "--tree: exactly what git ls-files lists (no .git, no ignored files, untracked ones too)"
[ $? -eq 0 ] || show t1/listing.txt
hasF tree.out "Placing tree $R (git ls-files: 8 files, " &&
	hasF tree.out "; 1 link between top-level entries copied as its target) => the working directory"
ok $? "--tree: one Placing tree line (a link from docs/ into src/ copied as its target)"
p=$(line tree.out "Placing tree")
j=$(line tree.out "==> test/test.1")
ok $([ "$p" -lt "$j" ]; echo $?) "--tree: placed before the first job"
hasF tree.out "script ran"; ok $? "--tree: the executable bit is kept"
! grep -q "Placing object" "$W/tree.out"; ok $? "--tree: no Placing object line per entry"
[ -f "$R/src/main.o" ] && [ -f "$R/new.txt" ] && [ -d "$R/.git" ]
ok $? "--tree: the tree itself is untouched"
ls -d "${TMPDIR:-/tmp}"/djinn-tree-* >"$W/left" 2>/dev/null
c=$(grep -c . "$W/left")
ok $([ "$c" -eq 0 ]; echo $?) "--tree: its temporary copy is removed (left: $c)"

# --tree without DIR: the checkout around the current directory.
(cd "$R/src/lib" && timeout 60 "$D" run --tree --artifacts "$W/t2" ../../.djinn.yml) >"$W/tree2.out" 2>"$W/tree2.err"
rc=$?
ok $rc "--tree without DIR in a subdirectory of a checkout: passes (got $rc)"
[ "$(grep -v listing.txt "$W/t2/listing.txt" 2>/dev/null)" = "$expected" ]
ok $? "--tree without DIR: the whole checkout, from its top"
(cd "$W" && timeout 60 "$D" run --tree --artifacts "$W/t3" "$R/.djinn.yml") >"$W/tree3.out" 2>"$W/tree3.err"
rc=$?
ok $((rc != 2)) "--tree without DIR outside a checkout: exit 2 (got $rc)"
hasF tree3.err "--tree without DIR copies the git checkout around the current directory, and $W is not in one"
ok $? "--tree without DIR outside a checkout: says so and what to do"

# Without --tree nothing is copied.
run notree run --artifacts "$W/t4" "$R/.djinn.yml"
ok $((rc != 1)) "without --tree nothing is copied: the job fails (got $rc)"
# (listing.txt itself may or may not be listed: sort's redirect creates it
# while find runs, a race of the pipeline; the other checks drop it too.)
[ -f "$W/t4/listing.txt" ] && [ "$(grep -v listing.txt "$W/t4/listing.txt")" = "." ]
r=$?; ok $r "without --tree the working directory is empty"
[ $r -eq 0 ] || { show t4/listing.txt; show notree.out; show notree.err; }

# A directory that is not a checkout is copied whole.
P=$W/plain
mkdir -p "$P/a/empty" "$P/b"
printf 'x\n' >"$P/a/x.o"
printf 'y\n' >"$P/b/y"
printf 'driver: {type: os}\nstages: [t]\njobs:\n  - stage: t\n    commands:\n      - find . | LC_ALL=C sort > listing.txt\n    artifacts: [listing.txt]\n' >"$W/plain.yml"
run plain run --tree "$P" --artifacts "$W/t5" "$W/plain.yml"
ok $rc "--tree DIR (not a checkout): passes (got $rc)"
[ "$(grep -v listing.txt "$W/t5/listing.txt" 2>/dev/null)" = "$(printf '.\n./a\n./a/empty\n./a/x.o\n./b\n./b/y')" ]
ok $? "--tree DIR (not a checkout): copied whole, empty directories too"
hasF plain.out "Placing tree $P (whole directory: 2 files, 4 B)"; ok $? "--tree: the line says how it was copied"

# Links leaving the tree are refused, before anything runs.
ln -s /etc/passwd "$R/src/passwd"
run escape run --tree "$R" --artifacts "$W/t6" "$R/.djinn.yml"
ok $((rc != 2)) "--tree: a link to /etc/passwd is refused, exit 2 (got $rc)"
hasF escape.err "--tree $R: src/passwd: a symbolic link to /etc/passwd, which leaves the tree"
ok $? "--tree: the refusal names the link and its target"
! grep -q "Running with Driver" "$W/escape.out" && [ ! -e "$W/t6/listing.txt" ]
ok $? "--tree: refused before any driver is created"
rm "$R/src/passwd"
ln -s ../../../outside "$R/src/up"
run escape2 run --tree "$R" --artifacts "$W/t6" "$R/.djinn.yml"
ok $((rc != 2)) "--tree: a link climbing out with .. is refused (got $rc)"
rm "$R/src/up"

# The object caps.
printf 'limits { max_objects 3 }\n' >"$W/caps.conf"
run caps run --tree "$R" --driver-config "$W/caps.conf" --artifacts "$W/t7" "$R/.djinn.yml"
ok $((rc != 2)) "--tree over max_objects: exit 2 (got $rc)"
hasF caps.err "more than 3 files, the limit (max_objects; raise it with"
ok $? "--tree over max_objects: says which cap and how to raise it"
printf 'limits { max_object_size 10B }\n' >"$W/caps2.conf"
run caps2 run --tree "$R" --driver-config "$W/caps2.conf" --artifacts "$W/t7" "$R/.djinn.yml"
ok $((rc != 2)) "--tree over max_object_size: exit 2 (got $rc)"
hasF caps2.err "bytes, over the per-file limit of 10 bytes (max_object_size"
ok $? "--tree over max_object_size: names the file and the cap"
printf 'limits { max_objects_total 40B }\n' >"$W/caps3.conf"
run caps3 run --tree "$P" --driver-config "$W/caps3.conf" --artifacts "$W/t7" "$W/plain.yml"
ok $rc "--tree under max_objects_total: passes (got $rc)"
printf 'limits { max_objects_total 3B }\n' >"$W/caps4.conf"
run caps4 run --tree "$P" --driver-config "$W/caps4.conf" --artifacts "$W/t7" "$W/plain.yml"
ok $((rc != 2)) "--tree over max_objects_total: exit 2 (got $rc)"
hasF caps4.err "the total limit (max_objects_total"; ok $? "--tree over max_objects_total: says so"

# --- --tree with the docker driver -------------------------------------------
dk_start "$DK" 2>"$W/start.err"
ok $? "dockerd and docker-registry ($DK_REG) started under a temp dir"
[ -s "$W/start.err" ] && show start.err
IMG=$DK_REG/djinn-newuser/busybox
if [ -S "$DK/docker.sock" ] && dk_build_image "$IMG" 2>"$W/img.err" &&
	dk_push_and_forget "$IMG" 2>>"$W/img.err"; then
	r=0
else
	r=1
	show img.err
fi
ok $r "busybox image built and pushed to $DK_REG"
printf 'driver docker {\n    host "unix://%s/docker.sock"\n    network "none"\n    stop_timeout 2s\n}\n' "$DK" >"$W/docker.conf"
cat >"$W/docker-tree.yml" <<EOF
driver:
  type: docker
  image: $IMG:latest
  workspace: /workspace
stages: [test]
jobs:
  - stage: test
    commands:
      - pwd
      - find . | LC_ALL=C sort > listing.txt
      - ./run.sh
      - test -L src/lib/main.c
      - cat docs/main.c
    artifacts:
      - listing.txt
EOF
RUN_TIMEOUT=180
run docker run --tree "$R" --driver-config "$W/docker.conf" --artifacts "$W/t8" "$W/docker-tree.yml"
ok $rc "docker --tree: the build passes (got $rc)"
[ $rc -eq 0 ] || { show docker.out; show docker.err; }
# (the driver keeps its job scripts in <workspace>/.djinn)
[ "$(grep -v -e listing.txt -e '^\./\.djinn$' -e '^\./\.djinn/' "$W/t8/listing.txt" 2>/dev/null)" = "$expected" ]
r=$?; ok $r "docker --tree: the workspace holds exactly the git ls-files tree"
[ $r -eq 0 ] || { show t8/listing.txt; show docker.out; }
hasF docker.out "script ran" && hasF docker.out "int main(void)"
ok $? "docker --tree: executable bits and in-tree links kept"
run docker_none run --driver-config "$W/docker.conf" --artifacts "$W/t9" "$W/docker-tree.yml"
ok $((rc != 1)) "docker without --tree: nothing copied, the job fails (got $rc)"

tap_end
