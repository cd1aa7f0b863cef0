#!/bin/sh
# needs: dockerd (starts a private dockerd and registry)
# docker.sh - end-to-end tests of the docker driver against a REAL engine:
# a private dockerd (data and exec roots, pid file and socket under a
# mktemp dir; no bridge, no iptables, no forwarding) and Debian's
# docker-registry on 127.0.0.1:5000 (tests/docker/lib.sh). A busybox image
# made from the busybox-static package's files is imported through the
# API, pushed to the registry and deleted locally, so the driver's pull
# really fetches it. Both daemons are stopped by PID and their directory
# removed on every exit path (trap). TAP on stdout.
#
# Needs root, docker.io, docker-registry, busybox-static, curl and jq
# (.ci/run installs them); fails (no skip) when they are missing or port
# 5000 is busy.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
EX=$TOP/examples
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/docker.XXXXXX") || exit 1
DK=$W/dk
BGPID=
cleanup() {
	if [ -n "$BGPID" ]; then kill "$BGPID" 2>/dev/null; fi
	dk_stop "$DK"
	rm -rf "$W"
}
. "$TOP/tests/docker/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM
export XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data"
# Build state directories (djinn.state) go to $W/run/djinn.
export XDG_RUNTIME_DIR="$W/run"
unset NO_COLOR

RUN_TIMEOUT=120
SHOW_LINES=40
. "$TOP/tests/e2e_lib.sh"
# leftovers: the number of containers + volumes labelled djinn.managed=true
leftovers() {
	f=$(jq -rn --arg l djinn.managed=true '{label: [$l]} | @uri')
	c=$(dk_api GET "/containers/json?all=1&filters=$f" | jq length)
	v=$(dk_api GET "/volumes?filters=$f" | jq '.Volumes | length')
	echo $((c + v))
}
docker0() { ip -o link show 2>/dev/null | grep -c 'docker0'; }

IMG=$DK_REG/djinn-test/busybox
net_before=$(docker0)

# --- the engine and the registry -------------------------------------------
dk_start "$DK" 2>"$W/start.err"
ok $? "dockerd and docker-registry started under a temp dir" || true
[ -s "$W/start.err" ] && show start.err
if ! [ -S "$DK/docker.sock" ]; then
	echo "Bail out! no engine: $(cat "$W/start.err")"
	exit 1
fi
dk_build_image "$IMG" 2>"$W/img.err"
ok $? "busybox image built from busybox-static and imported through the API"
dk_push_and_forget "$IMG" 2>>"$W/img.err"
ok $? "image pushed to $DK_REG and deleted locally"
dk_api GET "/images/$IMG:latest/json" >/dev/null 2>&1
ok $([ $? -ne 0 ]; echo $?) "the image is not present locally before the first build"

mkdir -p "$W/config/djinn"
CONF=$W/config/djinn/driver.conf
printf 'driver docker {\n    host "unix://%s/docker.sock"\n    network "none"\n    stop_timeout 2s\n}\n' "$DK" >"$CONF"

# --- a passing build: pull, env, objects, state, artifacts ------------------
run hello run --objects "$EX/docker-objects" --artifacts "$W/a1" "$EX/docker-hello.yml"
ok $([ $rc -eq 0 ]; echo $?) "docker-hello.yml passes (exit $rc)"
[ $rc -eq 0 ] || { show hello.out; show hello.err; }
hasF hello.out "Pulling image $IMG:latest..."; ok $? "pull announced"
has hello.out "Pulling fs layer\|Pull complete"; ok $? "pull progress lines shown live"
hasF hello.out "Downloaded newer image for $IMG:latest"; ok $? "the image was really pulled from the registry"
has hello.out "^Using docker API version 1\.[0-9]*"; ok $? "API version reported"
has hello.out "^Using Driver image $IMG:latest - sha256:[0-9a-f]*\.\.\.$"; ok $? "image id reported"
hasF hello.out "Placing object note.txt => data/note.txt"; ok $? "relative object placed"
hasF hello.out "Placing object note.txt => /etc/djinn/note.txt"; ok $? "absolute object placed"
[ "$(grep -c '^a note placed by djinn$' "$W/hello.out")" -eq 2 ]
ok $? "both objects readable in the job (volume and /etc/djinn)"
hasF hello.out "hello from docker in /workspace"; ok $? "env set and WorkingDir = workspace"
grep -q '^state$' "$W/hello.out"; ok $? "state kept in the workspace volume between jobs"
hasF hello.out "+ test -f /etc/djinn/note.txt"; ok $? "absolute object present in the second job's container"
[ "$(cat "$W/a1/result.txt" 2>/dev/null)" = built ]; ok $? "file artifact collected"
[ -d "$W/a1/logs" ] && [ "$(cat "$W/a1/logs/2.log" 2>/dev/null)" = two ]; ok $? "directory artifact kept as a directory"
[ "$(cat "$W/a1/flat/1.log" "$W/a1/flat/2.log" 2>/dev/null | tr '\n' ' ')" = "one two " ]; ok $? "glob artifact: every match collected"
hasF hello.out "Collecting artifact out/logs/2.log => flat/2.log"; ok $? "glob matches announced"
[ "$(leftovers)" -eq 0 ]; ok $? "no labelled container or volume left after success"

# --- artifact caps hold DURING the transfer (2026-11-27: the whole archive
# was downloaded into memory before the cap was checked) -------------------
# The 1 TiB files are sparse: downloading one would fill the disk (and
# the runner's memory) or run into the run's timeout.
cat >"$W/caps.yml" <<EOF
driver: {type: docker, image: $IMG, workspace: /workspace}
stages: [s]
jobs:
  - stage: s
    commands:
      - mkdir -p out/sparse-dir out/onebig out/two
      - head -c 1048576 /dev/zero > out/exact
      - head -c 1048577 /dev/zero > out/over
      - truncate -s 1099511627776 out/huge out/sparse-dir/huge
      - head -c 1100000 /dev/zero > out/onebig/f
      - head -c 600000 /dev/zero > out/two/a && head -c 600000 /dev/zero > out/two/b
    artifacts: [out/exact, out/over, out/huge, out/sparse-dir, out/onebig, out/two]
EOF
run caps run --max-artifact-size 1MB --artifacts "$W/a7" "$W/caps.yml"
ok $([ $rc -eq 0 ]; echo $?) "caps: the build passes, caps are artifact errors (exit $rc)"
[ $rc -eq 0 ] || { show caps.out; show caps.err; }
[ "$(wc -c <"$W/a7/exact" 2>/dev/null)" = 1048576 ]; ok $? "caps: a file of exactly the cap is kept"
hasF caps.out "artifact error: over: not kept: 1048577 bytes is over the per-file limit of 1048576 bytes (--max-artifact-size)"
ok $? "caps: one byte over the cap: refused from HEAD /archive's size"
hasF caps.out "artifact error: huge: not kept: 1099511627776 bytes is over the per-file limit of 1048576 bytes (--max-artifact-size)"
ok $? "caps: a 1 TiB file: refused before any download"
hasF caps.out "artifact error: sparse-dir: not kept: more than 1048576 bytes is over the per-file limit of 1048576 bytes (--max-artifact-size)"
ok $? "caps: a directory holding a 1 TiB file: the download stopped at the cap + 1 MiB"
hasF caps.out "artifact error: onebig: not kept: more than 1048576 bytes is over the per-file limit"
ok $? "caps: a directory holding a file over the cap: refused by the extraction"
hasF caps.out "artifact error: two: not kept: more than 1048576 bytes is over the per-file limit"
ok $? "caps: a directory whose files add up to more than the cap: refused"
[ "$(ls -A "$W/a7")" = exact ]; ok $? "caps: nothing partial kept, no spool file left" || ls -lAR "$W/a7" | sed 's/^/# /'
[ "$(leftovers)" -eq 0 ]; ok $? "caps: no labelled container or volume left"

# --- a failing build --------------------------------------------------------
run fail run --artifacts "$W/a2" "$EX/docker-fail.yml"
ok $([ $rc -eq 1 ]; echo $?) "docker-fail.yml fails with exit 1 (got $rc)"
hasF fail.out "about to fail"; ok $? "failing job output shown"
hasF fail.out "exit status 3"; ok $? "exit code from wait reported"
hasF fail.out "not run: after/after.1"; ok $? "later job not run"
[ "$(leftovers)" -eq 0 ]; ok $? "no labelled container or volume left after failure"

# --- live output: the first line must arrive while the job runs ------------
# The job prints, then waits until the test drops "go" into its workspace
# (PUT /archive into the running container), then prints again. Without
# live logs the test never sees the first line, the job never ends and
# the build fails after 30 s.
cat >"$W/live.yml" <<EOF
driver: {type: docker, image: $IMG, workspace: /workspace}
stages: [live]
jobs:
  - stage: live
    commands:
      - echo first-line
      - i=0; while [ ! -e /workspace/go ] && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i+1)); done
      - test -e /workspace/go
      - echo second-line
EOF
mkdir -p "$W/go" && : >"$W/go/go" && tar -C "$W/go" -cf "$W/go.tar" go
(
	timeout 120 "$D" run --artifacts "$W/a3" "$W/live.yml" 2>"$W/live.err"
	echo $? >"$W/live.rc"
) | while IFS= read -r line; do
	printf '%s %s\n' "$(date +%s.%N)" "$line"
done >"$W/live.out" &
BGPID=$!
i=0
while ! grep -q ' first-line$' "$W/live.out" && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
t_first=$(date +%s.%N)
f=$(jq -rn '{label: ["djinn.managed=true"], status: ["running"]} | @uri')
cid=$(dk_api GET "/containers/json?filters=$f" | jq -r '.[0].Id // empty')
[ -n "$cid" ] && dk_api PUT "/containers/$cid/archive?path=/workspace" \
	-H 'Content-Type: application/x-tar' --data-binary @"$W/go.tar" >/dev/null
wait "$BGPID"
BGPID=
rc=$(cat "$W/live.rc" 2>/dev/null || echo none)
ok $([ -n "$cid" ]; echo $?) "live: the first line arrived while the job's container was running"
ok $([ "$rc" = 0 ]; echo $?) "live: the job saw the test's answer and passed (exit $rc)"
[ "$rc" = 0 ] || show live.out
t1=$(awk '$2 == "first-line" { print $1; exit }' "$W/live.out")
t2=$(awk '$2 == "second-line" { print $1; exit }' "$W/live.out")
ok $([ -n "$t1" ] && [ -n "$t2" ]; echo $?) "live: both lines timestamped on arrival"
echo "# live: first-line at +0.00 s, second-line at +$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.2f", b - a }') s (the test answered at +$(awk -v a="$t1" -v b="$t_first" 'BEGIN { printf "%.2f", b - a }') s)"

# --- --timeout stops the container -----------------------------------------
run slow run --artifacts "$W/a4" --timeout 4s "$EX/docker-slow.yml"
ok $([ $rc -eq 4 ]; echo $?) "--timeout 4s on sleep 60 exits 4 (got $rc)"
has slow.out '^build timed_out in'; ok $? "timeout: build timed_out"
has slow.out '^Stopping container [0-9a-f]* '; ok $? "timeout: the container was stopped"
hasF slow.out "not run: after/after.1"; ok $? "timeout: later job not run"
[ "$(leftovers)" -eq 0 ]; ok $? "timeout: no labelled container or volume left"

# --- SIGINT ----------------------------------------------------------------
# signal_mid_job NAME ARTDIR SIG: run docker-slow.yml in the background,
# wait until its job printed "started" (up to 30 s), send SIG to the
# runner, wait for it: output in $W/NAME.out/.err, status in $rc.
signal_mid_job() {
	"$D" run --artifacts "$2" "$EX/docker-slow.yml" >"$W/$1.out" 2>"$W/$1.err" &
	BGPID=$!
	i=0
	while ! grep -q '^started$' "$W/$1.out" && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
	kill -"$3" "$BGPID"
	wait "$BGPID"
	rc=$?
	BGPID=
}
signal_mid_job int "$W/a5" INT
ok $([ $rc -eq 130 ]; echo $?) "SIGINT mid-job exits 130 (got $rc)"
has int.out '^build killed in'; ok $? "SIGINT: build killed"
[ "$(leftovers)" -eq 0 ]; ok $? "SIGINT: no labelled container or volume left (listed by label)"

# --- kill -9 mid-job: the next run removes what the dead runner left --------
signal_mid_job k9 "$W/a9" KILL
ok $([ $rc -eq 137 ]; echo $?) "kill -9 mid-job: the runner died (status $rc)"
sd=$(ls -d "$XDG_RUNTIME_DIR"/djinn/*/ 2>/dev/null)
ok $([ "$(echo "$sd" | grep -c .)" -eq 1 ] && [ -f "${sd}state" ]; echo $?) "kill -9: one build state directory with a state file left in \$XDG_RUNTIME_DIR/djinn"
k9c=$(jq -r '.containers // {} | keys[]' "${sd}state" 2>/dev/null)
k9v=$(jq -r '.volumes // {} | keys[]' "${sd}state" 2>/dev/null)
dk_api GET "/containers/$k9c/json" 2>/dev/null | jq -e '.Config.Labels["djinn.managed"] == "true"' >/dev/null
ok $? "kill -9: the job's container ($(echo "$k9c" | cut -c1-12)) is recorded and still exists"
dk_api GET "/volumes/$k9v" 2>/dev/null | jq -e '.Labels["djinn.managed"] == "true"' >/dev/null
ok $? "kill -9: the workspace volume ($k9v) is recorded and still exists"
# One build id (issue 12): the state directory's name is the labels' id.
k9id=$(basename "$sd")
dk_api GET "/containers/$k9c/json" 2>/dev/null | jq -e --arg b "$k9id" '.Config.Labels["djinn.build"] == $b' >/dev/null
ok $? "kill -9: the container's djinn.build label is the build id, the state directory's name ($k9id)"
ok $([ "$k9v" = "djinn-$k9id" ] && jq -e --arg b "$k9id" '.build == $b and .docker.build == $b' "${sd}state" >/dev/null; echo $?) "kill -9: the volume is djinn-<build id> ($k9v), the state file's build and docker.build are the id"
# Labelled like ours but not recorded by the dead build: must survive.
foreign=$(dk_api POST /containers/create -H 'Content-Type: application/json' \
	-d "$(jq -cn --arg i "$IMG:latest" '{Image: $i, Cmd: ["true"], Labels: {"djinn.managed": "true", "djinn.build": "another-runner"}}')" | jq -r .Id)
run reap run "$EX/docker-fail.yml"
ok $([ $rc -eq 1 ]; echo $?) "the next run runs its own build (docker-fail.yml, exit $rc)"
hasF reap.err "cleaned up after 1 dead build(s): killed 0 process(es), removed 1 container(s) and 1 volume(s)"
ok $? "the next run reports what it cleaned up" || show reap.err
dk_api GET "/containers/$k9c/json" >/dev/null 2>&1
ok $([ $? -ne 0 ]; echo $?) "the dead build's container is gone from the engine"
dk_api GET "/volumes/$k9v" >/dev/null 2>&1
ok $([ $? -ne 0 ]; echo $?) "the dead build's volume is gone from the engine"
dk_api GET "/containers/$foreign/json" >/dev/null 2>&1
ok $? "a labelled container the dead build did not record is left alone"
[ ! -e "$sd" ] && [ -z "$(ls -A "$XDG_RUNTIME_DIR/djinn")" ]
ok $? "the state directories are removed (the dead build's and the new one's)"
dk_api DELETE "/containers/$foreign?force=1" >/dev/null
[ "$(leftovers)" -eq 0 ]; ok $? "kill -9: no labelled container or volume left"

# --- a missing image --------------------------------------------------------
cat >"$W/missing.yml" <<EOF
driver: {type: docker, image: $DK_REG/djinn-test/nope:1.0, workspace: /workspace}
stages: [a]
jobs:
  - stage: a
    commands: [echo never]
EOF
run missing run "$W/missing.yml"
ok $([ $rc -eq 3 ]; echo $?) "missing image: exit 3 (got $rc)"
has missing.out "pulling image $DK_REG/djinn-test/nope:1.0 failed: .*manifest unknown"
ok $? "missing image: the engine's own message"
[ "$(leftovers)" -eq 0 ]; ok $? "missing image: nothing left"

# --- secrets: job output and driver creation output are masked --------------
cat >"$W/secret.yml" <<EOF
driver: {type: docker, image: $IMG, workspace: /workspace}
env: [REG_PASSWORD=docker-env-password-1]
stages: [s]
jobs:
  - stage: s
    commands:
      - echo "secret:\$DK_S:\$REG_PASSWORD"
      - ( set +x; printf 'split:%s' "\${DK_S%?????????}"; sleep 1; printf '%s:end\n' "\${DK_S#"\${DK_S%?????????}"}" )
EOF
run secret run --artifacts "$W/a6" --secret DK_S=docker-secret-value-7 "$W/secret.yml"
ok $([ $rc -eq 0 ]; echo $?) "secrets: the build passes (exit $rc)"
! grep -q -e docker-secret-value-7 -e docker-env-password-1 "$W/secret.out" "$W/secret.err"
ok $? "secrets: no value in stdout or stderr"
[ "$(grep -c -F 'secret:xxxxxx:xxxxxx' "$W/secret.out")" = 2 ]; ok $? "secrets: echo and set -x lines masked"
hasF secret.out "split:xxxxxx:end"; ok $? "secrets: a value split across two reads masked"
sed "s|image: $IMG|image: $DK_REG/djinn-test/nope-docker-secret-value-7:1.0|" "$W/secret.yml" >"$W/secret2.yml"
run secret2 run --secret DK_S=docker-secret-value-7 "$W/secret2.yml"
ok $([ $rc -eq 3 ]; echo $?) "secrets: a driver creation failure (exit $rc)"
! grep -q -e docker-secret-value-7 "$W/secret2.out" "$W/secret2.err" &&
	hasF secret2.out "djinn-test/nope-xxxxxx:1.0"
ok $? "secrets: the driver creation output (pull error) is masked"

# --- an image only present locally: the failed pull says so -----------------
dk_build_image "djinn-test/localonly" 2>>"$W/img.err"
cat >"$W/local.yml" <<EOF
driver: {type: docker, image: djinn-test/localonly, workspace: /w}
stages: [a]
jobs:
  - stage: a
    commands: [echo local-ok]
EOF
run local run "$W/local.yml"
ok $([ $rc -eq 0 ]; echo $?) "local-only image: passes (exit $rc)"
has local.out "^Pulling djinn-test/localonly failed: "; ok $? "local-only image: the failed pull is reported"
hasF local.out "Using the image djinn-test/localonly present locally instead"; ok $? "local-only image: local copy used, and said so"
dk_api DELETE "/images/djinn-test/localonly:latest" >/dev/null 2>&1

# --- an unreachable engine ---------------------------------------------------
printf 'driver docker {\n    host "unix://%s/nope.sock"\n}\n' "$W" >"$W/nope.conf"
run nope run --driver-config "$W/nope.conf" "$EX/docker-fail.yml"
ok $([ $rc -eq 3 ]; echo $?) "unreachable engine: exit 3 (got $rc)"
hasF nope.out "cannot reach the Docker engine at unix://$W/nope.sock" ; ok $? "unreachable engine: clear error"
has nope.out "No such file or directory"; ok $? "unreachable engine: the cause"

# --- docker prune removes only labelled leftovers ---------------------------
mk() { # mk LABELS_JSON -> container id
	dk_api POST /containers/create -H 'Content-Type: application/json' \
		-d "$(jq -cn --arg i "$IMG:latest" --argjson l "$1" '{Image: $i, Cmd: ["true"], Labels: $l}')" | jq -r .Id
}
mine=$(mk '{"djinn.managed": "true", "djinn.build": "leftover"}')
other=$(mk '{"owner": "someone-else"}')
dk_api POST /volumes/create -H 'Content-Type: application/json' \
	-d '{"Name": "djinn-leftover", "Labels": {"djinn.managed": "true", "djinn.build": "leftover"}}' >/dev/null
dk_api POST /volumes/create -H 'Content-Type: application/json' -d '{"Name": "not-djinn"}' >/dev/null
run prune docker prune --driver-config "$CONF"
ok $([ $rc -eq 0 ]; echo $?) "docker prune exits 0 (got $rc)"
hasF prune.out "removed container $(echo "$mine" | cut -c1-12) (build leftover)"; ok $? "prune: the labelled container removed"
hasF prune.out "removed volume djinn-leftover (build leftover)"; ok $? "prune: the labelled volume removed"
dk_api GET "/containers/$mine/json" >/dev/null 2>&1
ok $([ $? -ne 0 ]; echo $?) "prune: the labelled container is gone from the engine"
dk_api GET "/containers/$other/json" >/dev/null 2>&1; ok $? "prune: the unlabelled container is still there"
dk_api GET "/volumes/not-djinn" >/dev/null 2>&1; ok $? "prune: the unlabelled volume is still there"
[ "$(leftovers)" -eq 0 ]; ok $? "prune: no labelled object left"
dk_api DELETE "/containers/$other?force=1" >/dev/null
dk_api DELETE "/volumes/not-djinn" >/dev/null
run prune2 docker prune --driver-config "$W/nope.conf"
ok $([ $rc -eq 3 ]; echo $?) "docker prune with an unreachable engine exits 3 (got $rc)"

# --- issue 11, 4.8: directory objects are placed recursively; an object
# that cannot be placed fails the build (it used to carry on) -------------
mkdir -p "$W/dobj/tree/sub/empty"
printf 'deep\n' >"$W/dobj/tree/sub/d.txt"
cat >"$W/dobj.yml" <<EOF
driver: {type: docker, image: $IMG, workspace: /workspace}
objects:
  - tree => placed/tree
stages: [s]
jobs:
  - stage: s
    commands:
      - cat placed/tree/sub/d.txt
      - test -d placed/tree/sub/empty
EOF
run dobj run --objects "$W/dobj" --artifacts "$W/a-dobj" "$W/dobj.yml"
ok $([ $rc -eq 0 ]; echo $?) "a directory object is placed recursively (exit $rc)"
[ $rc -eq 0 ] || { show dobj.out; show dobj.err; }
sed -e 's|  - tree => placed/tree|  - tree => placed/tree\n  - missing.txt => missing.txt|' \
	-e 's|cat placed/tree/sub/d.txt|echo should-not-run|' "$W/dobj.yml" >"$W/dmiss.yml"
run dmiss run --objects "$W/dobj" --artifacts "$W/a-dmiss" "$W/dmiss.yml"
ok $([ $rc -ne 0 ]; echo $?) "a missing object fails the build (exit $rc)"
hasF dmiss.out "object error: 1 of 2 objects could not be placed (missing.txt)"; ok $? "the summary names the object"
! hasF dmiss.out "should-not-run"; ok $? "no job ran after the object error"
[ "$(leftovers)" -eq 0 ]; ok $? "no labelled container or volume left after the object error"

# --- stop everything; nothing left behind -----------------------------------
dpid=$(cat "$DK/dockerd.pid.bg")
rpid=$(cat "$DK/registry.pid")
dk_stop "$DK"
! kill -0 "$dpid" 2>/dev/null && ! kill -0 "$rpid" 2>/dev/null
ok $? "dockerd and the registry stopped by PID"
[ ! -e "$DK" ] && ! grep -q " $DK/" /proc/mounts; ok $? "their directory removed, no mount left"
ok $([ "$(docker0)" -eq "$net_before" ] && [ "$net_before" -eq 0 ]; echo $?) "no docker0 link before or after"
tap_end
