#!/bin/sh
# needs: guest dockerd
# hold.sh - run --hold (issue 15): a failed job's machine is kept for a
# look inside, with the exact command to get a shell in it, and released
# on `djinn-lua release`, Ctrl-C, or when the hold time is up. On real
# parts: the tiny VM image under QEMU (the printed `ssh` command is run
# with the real ssh client: the per-build key, the guest's host key pinned
# in a known_hosts file; root's empty password refused meanwhile), and a
# private dockerd with a local registry (tests/docker/lib.sh): the failed
# job's files in a container that the printed `docker exec` reaches.
# After each release: the job's exit status, no qemu, no container, no
# image, no state directory. TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
VM=$B/vm
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/hold_e2e.XXXXXX") || exit 1
DK=$W/dk
PIDS=
cleanup() {
	for p in $PIDS; do kill -KILL "$p" 2>/dev/null; done
	for q in $(qemu_pids); do kill -KILL "$q" 2>/dev/null; done
	dk_stop "$DK" 2>/dev/null
	rm -rf "$W"
}
. "$TOP/tests/docker/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM
export XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data"
export XDG_RUNTIME_DIR="$W/run" XDG_CACHE_HOME="$W/cache"
mkdir -p "$W/run" "$W/tmp"
unset NO_COLOR

. "$TOP/tests/e2e_lib.sh"

REG=$W/reg.db
qemu_pids() { qemu_pids_in "$W"; }
states() { ls "$W/run/djinn" 2>/dev/null | grep -c '^[0-9a-f]*$'; }
# held NAME CONF MANIFEST HOLD: a run with --hold in the background; waits
# for its "Release it" line. $hpid, $hcmd (the printed command), $hid.
held() {
	TMPDIR=$W/tmp "$D" run --registry "$REG" --driver-config "$2" \
		--hold "$4" "$3" >"$W/$1.log" 2>&1 &
	hpid=$!
	PIDS="$PIDS $hpid"
	i=0
	while [ $i -lt 1500 ]; do
		grep -q "^Release it with Ctrl-C or: djinn-lua release " "$W/$1.log" && break
		kill -0 "$hpid" 2>/dev/null || break
		sleep 0.2
		i=$((i + 1))
	done
	hcmd=$(sed -n 's/^    \(ssh .*\|docker .*\)$/\1/p' "$W/$1.log" | head -1)
	hid=$(sed -n 's/^Release it with Ctrl-C or: djinn-lua release \([0-9a-f]*\)$/\1/p' "$W/$1.log")
}
finished() { # finished NAME: wait for the held run, its status in $rc
	wait "$hpid"
	rc=$?
}

bash "$TOP/tests/vm/build-image.sh" "$VM" >"$W/img.out" 2>&1
ok $? "build-image.sh: $(tail -1 "$W/img.out")"
"$D" image register --registry "$REG" e2e tiny "$VM/djinn-tiny.qcow2" >/dev/null 2>&1
ok $? "register the tiny image"
cat >"$W/vm.conf" <<'EOF'
driver qemu {
    cpus 1
    memory 256
    accel "tcg"
    boot_timeout 3m
}
EOF
cat >"$W/fail.yml" <<'EOF'
namespace: e2e
driver:
  type: qemu
  image: tiny
stages: [build, never]
jobs:
  - stage: build
    commands:
      - echo left-behind > /root/clue
      - exit 7
  - stage: never
    commands:
      - echo should-not-run
EOF
cat >"$W/empty.lua" <<'EOF'
local ssh = require "djinn.ssh"
local s, e = ssh.connect{ host = "127.0.0.1", port = tonumber(arg[1]),
                          timeout = 10 }
if s then print("empty: accepted"); s:close()
elseif e:find("authentication failed", 1, true) then print("empty: refused")
else print("empty: error: " .. e) end
EOF

# --- qemu: release ------------------------------------------------------------
held q1 "$W/vm.conf" "$W/fail.yml" 2m
check "qemu: the hold is announced with an ssh command" \
	sh -c "[ -n '$hcmd' ] && [ -n '$hid' ] && grep -q '^Holding the machine for 2m00s' '$W/q1.log'"
check "qemu: the command pins the host key and uses the build's key" \
	sh -c "echo '$hcmd' | grep -q 'UserKnownHostsFile=.*/known_hosts -o StrictHostKeyChecking=yes -i .*/build_key -o IdentitiesOnly=yes root@127.0.0.1'"
# The printed command, as printed, with a command to run instead of a shell.
sh -c "$hcmd -o BatchMode=yes cat /root/clue" >"$W/q1.ssh" 2>"$W/q1.ssh.err" </dev/null
ok $? "qemu: the printed ssh command logs in (real ssh client)"
check "qemu: ... into the failed job's machine (its file is there)" has q1.ssh "^left-behind$"
port=$(echo "$hcmd" | sed -n 's/^ssh -p \([0-9]*\) .*/\1/p')
"$D" "$W/empty.lua" "$port" >"$W/q1.empty" 2>&1
check "qemu: root's empty password stays refused while held" has q1.empty "^empty: refused$"
"$D" release >"$W/ls.out" 2>&1
check "release (no id) lists the held build and its command" \
	sh -c "grep -q '^$hid  qemu ' '$W/ls.out' && grep -qF -- '$hcmd' '$W/ls.out'"
"$D" release --json >"$W/ls.json" 2>&1
check "release --json lists it" sh -c "jq -e '.[0].build == \"$hid\" and (.[0].command | length) > 0' '$W/ls.json' >/dev/null"
check "while held, qemu runs and the state directory exists" \
	sh -c "[ -n '$(qemu_pids)' ] && [ -d '$W/run/djinn/$hid' ]"
"$D" release "$hid" >"$W/rel.out" 2>&1
ok $? "release ID: exit 0"
check "release ID: says so" has rel.out "^released $hid$"
finished q1
check "released: the run exits with the failed job's status (1, got $rc)" test "$rc" = 1
check "released: the log says why" has q1.log "^Released the held machine (djinn-lua release)$"
check "released: no later stage ran" sh -c "! grep -q should-not-run '$W/q1.log'"
check "released: no qemu, no state directory left" \
	sh -c "[ -z '$(qemu_pids)' ] && [ $(states) -eq 0 ]"
"$D" release 0123456789abcdef >"$W/rel2.out" 2>"$W/rel2.err"
check "release of an id that holds nothing: exit 1, says how to list" \
	sh -c "[ $? -eq 1 ] && grep -q 'no held build of that id' '$W/rel2.err'"

# --- qemu: Ctrl-C, expiry, --json ----------------------------------------------------
held q2 "$W/vm.conf" "$W/fail.yml" 2m
kill -INT "$hpid"
finished q2
check "Ctrl-C ends the hold: exit 1 (the job's), released (got $rc)" \
	sh -c "[ $rc -eq 1 ] && grep -q '^Released the held machine (SIGINT)$' '$W/q2.log'"
check "Ctrl-C: no qemu, no state directory left" \
	sh -c "[ -z '$(qemu_pids)' ] && [ $(states) -eq 0 ]"
held q3 "$W/vm.conf" "$W/fail.yml" 3s
finished q3
check "--hold 3s: released when the time is up (exit $rc)" \
	sh -c "[ $rc -eq 1 ] && grep -q '^Released the held machine (the hold time is up)$' '$W/q3.log'"
check "expiry: no qemu, no state directory left" \
	sh -c "[ -z '$(qemu_pids)' ] && [ $(states) -eq 0 ]"
TMPDIR=$W/tmp "$D" run --json --registry "$REG" --driver-config "$W/vm.conf" \
	--hold 1s "$W/fail.yml" >"$W/q4.json" 2>"$W/q4.err"
check "--json: a hold event with the command, the time and how to release" \
	sh -c "jq -e -s 'map(select(.event == \"hold\"))[0] | (.command | startswith(\"ssh -p \")) and .seconds == 1 and (.release | startswith(\"djinn-lua release \"))' '$W/q4.json' >/dev/null"
sed 's/^}$/    hold 2s\n}/' "$W/vm.conf" >"$W/vm-hold.conf"
TMPDIR=$W/tmp "$D" run --registry "$REG" --driver-config "$W/vm-hold.conf" \
	"$W/fail.yml" >"$W/q5.log" 2>&1
check "driver.conf hold 2s is the default" has q5.log "^Holding the machine for 2.0s\|^Holding the machine for 2s"
cat >"$W/pass.yml" <<'EOF'
namespace: e2e
driver:
  type: qemu
  image: tiny
stages: [build]
jobs:
  - stage: build
    commands:
      - echo fine
EOF
TMPDIR=$W/tmp "$D" run --registry "$REG" --driver-config "$W/vm.conf" \
	--hold 2m "$W/pass.yml" >"$W/q6.log" 2>&1
check "a passing build is not held (exit $?)" sh -c "! grep -q Holding '$W/q6.log'"
"$D" run --hold soon "$W/pass.yml" >"$W/q7.log" 2>&1
check "--hold soon: a usage error (exit $?)" sh -c "grep -q -- '--hold: ' '$W/q7.log'"
check "no qemu left after the qemu cases" test -z "$(qemu_pids)"

# --- docker ------------------------------------------------------------------------
dk_start "$DK" 2>"$W/start.err"
ok $? "dockerd and docker-registry started under a temp dir"
IMG=$DK_REG/djinn-test/busybox
dk_build_image "$IMG" 2>"$W/dimg.err" && dk_push_and_forget "$IMG" 2>>"$W/dimg.err"
ok $? "busybox image built and pushed to the local registry"
printf 'driver docker {\n    host "unix://%s/docker.sock"\n    network "none"\n    stop_timeout 2s\n}\n' "$DK" >"$W/dk.conf"
cat >"$W/dfail.yml" <<EOF
driver:
  type: docker
  image: $IMG:latest
  workspace: /workspace
stages: [build]
jobs:
  - stage: build
    commands:
      - echo docker-clue > clue.txt
      - exit 3
EOF
labelled() { # containers + images labelled djinn.managed=true
	f=$(jq -rn --arg l djinn.managed=true '{label: [$l]} | @uri')
	c=$(dk_api GET "/containers/json?all=1&filters=$f" | jq length)
	i=$(dk_api GET "/images/json?filters=$f" | jq length)
	echo $((c + i))
}
held d1 "$W/dk.conf" "$W/dfail.yml" 2m
check "docker: the hold prints a docker exec command" \
	sh -c "echo '$hcmd' | grep -q '^docker -H unix://.*/docker.sock exec -it [0-9a-f]* /bin/sh$'"
dcmd=$(echo "$hcmd" | sed 's/ exec -it / exec /; s|/bin/sh$|cat /workspace/clue.txt|')
sh -c "DOCKER_HOST= $dcmd" >"$W/d1.exec" 2>&1 </dev/null
check "docker: the printed command reaches the failed job's files (docker CLI)" has d1.exec "^docker-clue$"
"$D" release "$hid" >/dev/null 2>&1
finished d1
check "docker: released, exit 1 (the job's status; got $rc)" \
	sh -c "[ $rc -eq 1 ] && grep -q '^Released the held machine (djinn-lua release)$' '$W/d1.log'"
check "docker: no labelled container or image left ($(labelled))" test "$(labelled)" = 0
check "docker: no state directory left" test "$(states)" = 0
dk_stop "$DK"
ok $? "dockerd and the registry stopped"

# --- os: nothing to hold -----------------------------------------------------------------
cat >"$W/ofail.yml" <<'EOF'
driver:
  type: os
stages: [build]
jobs:
  - stage: build
    commands:
      - exit 4
EOF
(cd "$W" && timeout 60 "$D" run --hold 1m "$W/ofail.yml" >"$W/o1.log" 2>&1)
check "os: nothing is held, said once, the build ends at once (exit $?)" \
	sh -c "[ \$(grep -c 'nothing is held: the os driver has no machine to keep' '$W/o1.log') -eq 1 ]"
tap_end
