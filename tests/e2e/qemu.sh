#!/bin/sh
# needs: guest (boots a VM under QEMU)
# qemu.sh - end-to-end tests of the QEMU and SSH drivers: real VMs booted
# under QEMU (TCG) from the tiny images of tests/vm/build-image.sh (built
# once, cached in $DJINN_BUILD/vm), registered in a fresh registry, driven
# by `djinn-lua run`. TAP on stdout.
#
# To keep the suite short, builds run two or three at a time, and each
# boot checks several things:
#   phase 1 (two builds at once, distinct ports): A = dropbear image, env
#     passed inside the script, objects, artifact globs, allow_failures, a
#     guest disk write that must not reach the image file; C = OpenSSH
#     image, env passed as env requests, personal-image fallback.
#   phase 2: B = a failing build from a base image (<disks>/qemu/x86_64);
#     G = a git clone of a repository served from the host (git daemon);
#     V = the SSH driver against a VM booted by tests/vm/boot.sh.
#   phase 3: T = --timeout (exit 4), S = SIGINT mid-job (exit 130),
#     K = kill -9 of djinn-lua (PDEATHSIG): no qemu may be left behind.
#   no boot: bad and missing image names, a hostile image refused at
#     registration, a tampered store file refused before boot.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
VM=$B/vm
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/qemu_e2e.XXXXXX") || exit 1
PIDS=
GITD=
SSHVM=
cleanup() {
	for p in $PIDS; do kill -KILL "$p" 2>/dev/null; done
	[ -n "$GITD" ] && kill "$GITD" 2>/dev/null
	[ -n "$SSHVM" ] && bash "$TOP/tests/vm/boot.sh" stop "$SSHVM" 2>/dev/null
	chmod -R u+w "$W" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data"
# Build state directories (djinn.state; QEMU's files live in them).
export XDG_RUNTIME_DIR="$W/run"
mkdir -p "$W/tmp" "$W/tmpk"
unset NO_COLOR

. "$TOP/tests/e2e_lib.sh"
# start NAME ARGS...: djinn-lua in the background, output to $W/NAME.log
start() {
	name=$1
	shift
	TMPDIR=${RUN_TMPDIR:-$W/tmp} "$D" "$@" >"$W/$name.log" 2>&1 &
	eval "pid_$name=$!"
	PIDS="$PIDS $!"
}
# finish NAME: wait for it; its status in rc_NAME
finish() {
	eval "wait \$pid_$1"
	eval "rc_$1=$?"
}
qemu_pid() { sed -n 's/^Started qemu (pid \([0-9]*\),.*/\1/p' "$W/$1.log" | head -1; }
port_of() { sed -n 's/.*SSH on 127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$W/$1.log" | head -1; }
# wait_for NAME REGEX: until the log has REGEX (up to 180 s)
wait_for() {
	i=0
	while [ $i -lt 1800 ]; do
		has "$1.log" "$2" && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# --- images and registry ---------------------------------------------------
bash "$TOP/tests/vm/build-image.sh" "$VM" >"$W/img1.out" 2>&1
ok $? "build-image.sh (dropbear): $(tail -1 "$W/img1.out")"
SSHD=openssh bash "$TOP/tests/vm/build-image.sh" "$VM" >"$W/img2.out" 2>&1
ok $? "build-image.sh (openssh): $(tail -1 "$W/img2.out")"
GIT=1 bash "$TOP/tests/vm/build-image.sh" "$VM" >"$W/img3.out" 2>&1
ok $? "build-image.sh (GIT=1): $(tail -1 "$W/img3.out")"
IMG=$VM/djinn-tiny.qcow2
IMGO=$VM/djinn-tiny-openssh.qcow2
IMGG=$VM/djinn-tiny-git.qcow2
REG=$W/reg/registry.db
"$D" image register --registry "$REG" e2e tiny "$IMG" >"$W/reg1.out" 2>&1
ok $? "register the dropbear image as e2e/tiny"
"$D" image register --registry "$REG" - tinyssh "$IMGO" >"$W/reg2.out" 2>&1
ok $? "register the OpenSSH image as a personal image"
"$D" image register --registry "$REG" e2e tinygit "$IMGG" >"$W/reg3.out" 2>&1
ok $? "register the git image as e2e/tinygit"
STORE=$W/reg/images/$(sha256sum "$IMG" | cut -d' ' -f1).qcow2
check "the store holds the dropbear image under its SHA-256" test -f "$STORE"
SUM0=$(sha256sum "$STORE" | cut -d' ' -f1)
MT0=$(stat -c %Y "$STORE")

# A hostile image (a backing file pointing at the host) is refused.
qemu-img create -q -f qcow2 -F qcow2 -b /etc/passwd "$W/evil.qcow2" 2>/dev/null ||
	qemu-img create -q -f qcow2 -F qcow2 -b "$IMG" "$W/evil.qcow2"
"$D" image register --registry "$REG" e2e evil "$W/evil.qcow2" >"$W/evil.out" 2>&1
rc=$?
ok $((rc != 1)) "an image with a backing file is refused at registration (exit $rc)"
check "the refusal says why (backing files are not allowed)" hasF evil.out "backing files are not allowed"
"$D" image info --registry "$REG" e2e evil >/dev/null 2>&1
ok $((! $?)) "the refused image is not in the registry"

cat >"$W/vm.conf" <<EOF
driver qemu {
    disks "$W/disks"
    cpus 1
    memory 256
    accel "tcg"
    boot_timeout 3m
    restrict true
}
EOF
sed -e '/restrict/d' -e 's/^}$/    lock_root false\n}/' "$W/vm.conf" >"$W/vm-net.conf"
# probe.lua PORT KEY...: while a build runs, is root's empty-password
# login refused, and does one of the builds' keys log in? The key login
# leaves /tmp/probed in the guest, which the build's job waits for, so
# the probe is proved to have met a live machine.
cat >"$W/probe.lua" <<'EOF'
local ssh = require "djinn.ssh"
local port = tonumber(arg[1])
local s, e = ssh.connect{ host = "127.0.0.1", port = port, timeout = 10 }
if s then print("empty: accepted"); s:close()
elseif e:find("authentication failed", 1, true) then print("empty: refused")
else print("empty: error: " .. e) end
for i = 2, #arg do
  s, e = ssh.connect{ host = "127.0.0.1", port = port, timeout = 10,
                      identity = arg[i], methods = { "publickey" } }
  if not s then print("key " .. arg[i] .. ": " .. e) end
  if s then
    print("key: " .. (s:exec("touch /tmp/probed") == 0 and "ok" or "exec failed"))
    s:close()
    return
  end
end
print("key: none of " .. (#arg - 1) .. " keys logged in")
EOF
# lock_probe NAME: wait for NAME's lock line, probe its port -> $W/NAME.probe
lock_probe() {
	wait_for "$1" "^Locked the machine's root login" || return 1
	"$D" "$W/probe.lua" "$(port_of "$1")" "$W"/run/djinn/*/qemu/build_key >"$W/$1.probe" 2>&1
}

# --- no boot: names, missing images -----------------------------------------
mk() { # mk NAME IMAGE: a one-job manifest
	printf 'namespace: e2e\ndriver:\n  type: qemu\n  image: "%s"\nstages: [s]\njobs:\n  - stage: s\n    commands: [echo hi]\n' "$2" >"$W/$1.yml"
}
for bad in "../etc/passwd" "/etc/passwd" "a/../../b" "x;rm -rf" ".hidden"; do
	mk bad "$bad"
	"$D" run --registry "$REG" --driver-config "$W/vm.conf" "$W/bad.yml" >"$W/bad.out" 2>&1
	rc=$?
	ok $((rc != 2)) "image name '$bad' refused as a manifest error (exit $rc)"
	if hasF bad.out "driver.image" && ! hasF bad.out "Started qemu"; then r=0; else r=1; show bad.out; fi
	ok $r "image name '$bad': the message names driver.image, no qemu started"
done
mk miss nope
"$D" run --registry "$REG" --driver-config "$W/vm.conf" "$W/miss.yml" >"$W/miss.out" 2>&1
rc=$?
ok $((rc != 3)) "a missing image fails the build as an infrastructure error (exit $rc)"
check "missing image: Djinn's message" hasF miss.out "couldn't find image nope"
check "missing image: says where it looked (namespace, personal, base path)" \
	grep -q "looked in: registry $REG, namespace e2e; registry $REG, personal images; base image $W/disks/qemu/x86_64/nope" "$W/miss.out"

# --- phase 1: A (dropbear) and C (openssh) at once ---------------------------
mkdir -p "$W/objects"
printf 'object data\n' >"$W/objects/data.txt"
cat >"$W/a.yml" <<'EOF'
namespace: e2e
driver:
  type: qemu
  image: tiny
env:
  - PLAIN=value
  - QUOTED=it's "q" $HOME `x` \n end
objects:
  - data.txt => data.txt
stages: [build, flaky, test]
allow_failures: [flaky]
jobs:
  - stage: build
    commands:
      - printf '%s|%s\n' "$PLAIN" "$QUOTED" > env.out
      - cat data.txt
      - test "$(pwd)" = /root
      - ls -l build.1.sh | grep -q '^-rwxr-xr-x'
      - mkdir -p out && echo one > out/1.txt && echo two > out/2.txt && echo log > out/x.log
      - dd if=/dev/zero of=/big bs=1M count=8 2>/dev/null && sync
    artifacts:
      - "out/*.txt => txt/*"
      - env.out
      - "nomatch/* => nope/*"
  - stage: flaky
    commands:
      - exit 3
  - stage: test
    commands:
      - test -f out/1.txt
      - echo all-good
      - i=0; while [ ! -e /tmp/probed ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; test -e /tmp/probed
EOF
cat >"$W/c.yml" <<'EOF'
namespace: e2e
driver:
  type: qemu
  image: tinyssh
env:
  - FOO=bar
  - SPACED=a b  c
  - API_TOKEN=vm-token-from-manifest
stages: [s]
jobs:
  - stage: s
    commands:
      - test "$FOO" = bar
      - echo "[$SPACED]"
      - echo "secret:$VM_S:$API_TOKEN"
      - ( set +x; printf 'split:%s' "${VM_S%?????????}"; sleep 1; printf '%s:end\n' "${VM_S#"${VM_S%?????????}"}" )
      - test "$(cat top.txt)" = top && test "$(cat sub/deeper/file.txt)" = deep && test ! -e ignored.log && test ! -e .git && echo tree-ok
      - i=0; while [ ! -e /tmp/probed ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; test -e /tmp/probed
EOF
# C also gets a working tree (--tree, issue 11, 4.11): a git checkout whose
# .gitignore'd file and .git must not travel; a nested directory must.
mkdir -p "$W/tree/sub/deeper"
printf 'top\n' >"$W/tree/top.txt"
printf 'deep\n' >"$W/tree/sub/deeper/file.txt"
printf '*.log\n' >"$W/tree/.gitignore"
printf 'ignored\n' >"$W/tree/ignored.log"
git -C "$W/tree" init -q && git -C "$W/tree" add top.txt .gitignore
start A run --registry "$REG" --driver-config "$W/vm.conf" --objects "$W/objects" --artifacts "$W/art-a" "$W/a.yml"
start C run --registry "$REG" --driver-config "$W/vm.conf" --artifacts "$W/art-c" --secret VM_S=vm-secret-value-42 --tree "$W/tree" "$W/c.yml"
lock_probe A
lock_probe C
finish A
finish C
for b in A C; do
	check "$b: the guest's empty root login is refused once the driver has logged in" hasF $b.probe "empty: refused"
	check "$b: the build's own key logs in (and the probe met the live machine)" hasF $b.probe "key: ok"
	has $b.probe "empty: refused" && has $b.probe "key: ok" || show $b.probe
done
check "A, C: the key files were removed with the machines" sh -c "test -z \"\$(ls '$W'/run/djinn/*/qemu/build_key 2>/dev/null)\""
ok $rc_A "A: a build with an allowed failure exits 0 (got $rc_A)"
[ "$rc_A" = 0 ] || show A.log
ok $rc_C "C: the OpenSSH build exits 0 (got $rc_C)"
[ "$rc_C" = 0 ] || show C.log
check "A: Djinn's lines in order" sh -c "grep -E '^(Running with Driver|Creating machine|Booting machine|Established SSH)' '$W/A.log' | tr '\n' '|' | grep -qx 'Running with Driver qemu...|Creating machine with arch x86_64...|Booting machine with image tiny...|Established SSH connection to machine as root...|'"
check "A: the accelerator choice is printed" hasF A.log "Using accelerator tcg (accel tcg in driver.conf)"
check "A: the boot time is printed" has A.log '^Machine ready in [0-9hm.]*s '
PA=$(port_of A)
PC=$(port_of C)
if [ -n "$PA" ] && [ -n "$PC" ] && [ "$PA" != "$PC" ]; then r=0; else r=1; fi
ok $r "two builds at once use distinct ports ($PA, $PC)"
check "A: registered image verified by SHA-256" hasF A.log "Image tiny (namespace: e2e): SHA-256 matches the registry"
check "A: dropbear refuses env requests: passed inside the script" hasF A.log "refused env requests for PLAIN, QUOTED"
printf '%s\n' "value|it's \"q\" \$HOME \`x\` \\n end" >"$W/env.want"
check "A: env values arrive intact (quotes, \$, backquotes, backslash)" cmp -s "$W/env.want" "$W/art-a/env.out"
check "A: the export lines are not echoed into the log" sh -c "! grep -q 'export ' '$W/A.log'"
check "A: object placed" hasF A.log "Placing object data.txt => data.txt"
check "A: object content in the guest" hasF A.log "object data"
# (A missing object fails the build since issue 11, 4.8: qemu_imagespage.sh.)
check "A: glob artifacts collected with * in DST" sh -c "test \"\$(cat '$W/art-a/txt/1.txt' '$W/art-a/txt/2.txt')\" = 'one
two'"
check "A: Collecting artifact lines" hasF A.log "Collecting artifact out/2.txt => txt/2.txt"
check "A: the glob does not collect other files" test ! -e "$W/art-a/txt/x.log"
check "A: no match is an artifact error" hasF A.log "artifact error: nomatch/*"
check "A: the allowed failure is passed_with_failures" has A.log "passed_with_failures"
check "A: the build went on after the allowed failure" hasF A.log "all-good"
check "A: exit status of the failing job reported" hasF A.log "exit status 3"
SUM1=$(sha256sum "$STORE" | cut -d' ' -f1)
MT1=$(stat -c %Y "$STORE")
if [ "$SUM0" = "$SUM1" ] && [ "$MT0" = "$MT1" ]; then r=0; else r=1; fi
ok $r "the image file is unchanged after a build that wrote 8 MiB to the disk"
check "A: qemu is gone after the build" gone "$(qemu_pid A)"
check "C: qemu is gone after the build" gone "$(qemu_pid C)"
check "C: a personal image found after the namespace lookup" hasF C.log "Image tinyssh (personal): SHA-256 matches"
check "C: OpenSSH accepts env requests (nothing passed in the script)" sh -c "! grep -q 'refused env requests' '$W/C.log'"
check "C: env over env requests reaches the job" hasF C.log "[a b  c]"
check "C: --tree placed the checkout (nested, untracked included) without ignored files or .git" hasF C.log "tree-ok"
check "C: --tree says so" hasF C.log "Placing tree"
check "C: secrets (--secret, *_TOKEN) never in the log" sh -c "! grep -q -e vm-secret-value-42 -e vm-token-from-manifest '$W/C.log'"
check "C: echo and set -x lines masked" sh -c "test \"\$(grep -c -F 'secret:xxxxxx:xxxxxx' '$W/C.log')\" = 2"
check "C: a secret split across two reads is masked" hasF C.log "split:xxxxxx:end"
check "no temporary directories left behind" sh -c "test -z \"\$(ls -A '$W/tmp')\""
check "no build state directory left behind" sh -c "test -z \"\$(ls -A '$W/run/djinn')\""

# --- phase 2: B (fail, base image), G (git clone), V (ssh driver) ------------
mkdir -p "$W/disks/qemu/x86_64/base"
cp "$IMG" "$W/disks/qemu/x86_64/base/tiny"
cat >"$W/b.yml" <<'EOF'
driver:
  type: qemu
  image: base/tiny
stages: [build, test]
jobs:
  - stage: build
    commands:
      - echo before-fail
      - "false"
      - echo after-fail
  - stage: test
    commands:
      - echo never-run
EOF
# The repository served to the guest: git daemon on the host's loopback,
# which the guest reaches as 10.0.2.2 through slirp.
GP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$W/git/proj"
(cd "$W/git/proj" && git init -q -b main && printf 'from git\n' >README &&
	git add README && git -c user.name=t -c user.email=t@t commit -q -m init &&
	git tag v1 && printf 'later\n' >>README &&
	git -c user.name=t -c user.email=t@t commit -q -am later) >"$W/git.out" 2>&1
ok $? "a test repository (2 commits, tag v1)"
git daemon --listen=127.0.0.1 --port="$GP" --export-all --base-path="$W/git" --reuseaddr \
	"$W/git" >"$W/gitd.out" 2>&1 &
GITD=$!
cat >"$W/g.yml" <<EOF
namespace: e2e
driver:
  type: qemu
  image: tinygit
sources:
  - git://10.0.2.2:$GP/proj v1 => src
stages: [check]
jobs:
  - stage: check
    commands:
      - cat src/README
      - test "\$(cat src/README)" = "from git"
      - grep -q '^root::' /etc/shadow
EOF
bash "$TOP/tests/vm/boot.sh" start "$IMG" 180 >"$W/sshvm.out" 2>&1 &
BOOTSH=$!
start B run --registry "$REG" --driver-config "$W/vm.conf" --artifacts "$W/art-b" "$W/b.yml"
start G run --registry "$REG" --driver-config "$W/vm-net.conf" --artifacts "$W/art-g" "$W/g.yml"
wait $BOOTSH
rcb=$?
ok $rcb "a VM for the SSH driver booted: $(tail -1 "$W/sshvm.out")"
[ "$rcb" = 0 ] || show sshvm.out
SSHVM=$(sed -n 's/^pid=\([0-9]*\) .*/\1/p' "$W/sshvm.out")
VPORT=$(sed -n 's/.* port=\([0-9]*\) .*/\1/p' "$W/sshvm.out")
cat >"$W/v.yml" <<EOF
driver:
  type: ssh
  address: 127.0.0.1:$VPORT
env:
  - WHO=ssh driver
objects:
  - data.txt => placed.txt
stages: [s]
jobs:
  - stage: s
    commands:
      - echo "hello from \$WHO" > out.txt
      - cat placed.txt >> out.txt
    artifacts:
      - out.txt => v/out.txt
EOF
cat >"$W/ssh.conf" <<'EOF'
driver ssh {
    user "root"
    timeout 30s
}
EOF
"$D" run --driver-config "$W/ssh.conf" --objects "$W/objects" --artifacts "$W/art-v" "$W/v.yml" >"$W/V.log" 2>&1
rc=$?
ok $rc "V: the SSH driver build against 127.0.0.1:$VPORT exits 0 (got $rc)"
[ "$rc" = 0 ] || show V.log
check "V: Djinn's connection lines" sh -c "grep -q '^Connecting to root@127.0.0.1:$VPORT...' '$W/V.log' && grep -q '^Established Driver connection to 127.0.0.1:$VPORT...' '$W/V.log'"
printf 'hello from ssh driver\nobject data\n' >"$W/v.want"
check "V: env, object and artifact work over the SSH driver" cmp -s "$W/v.want" "$W/art-v/v/out.txt"
FP=$(sed -n 's/^Host key \(SHA256:.*\)$/\1/p' "$W/V.log")
printf 'driver ssh {\n    timeout 5s\n    fingerprint "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"\n}\n' >"$W/ssh-bad.conf"
"$D" run --driver-config "$W/ssh-bad.conf" "$W/v.yml" >"$W/V2.log" 2>&1
rc=$?
ok $((rc != 3)) "V: a pinned fingerprint that does not match fails the build (exit $rc)"
check "V: the mismatch names both keys" grep -q "host key mismatch: expected SHA256:AAAA.*, got $FP" "$W/V2.log"
printf 'driver ssh {\n    timeout 5s\n    fingerprint "%s"\n}\n' "$FP" >"$W/ssh-pin.conf"
"$D" run --driver-config "$W/ssh-pin.conf" --objects "$W/objects" --artifacts "$W/art-v2" "$W/v.yml" >"$W/V3.log" 2>&1
ok $? "V: the right pinned fingerprint is accepted"
sed "s/address: .*/address: 127.0.0.1/" "$W/v.yml" >"$W/v-bad.yml"
"$D" run --driver-config "$W/ssh.conf" "$W/v-bad.yml" >"$W/V4.log" 2>&1
rc=$?
ok $((rc != 3)) "V: an address without a port is refused (exit $rc)"
check "V: the message says host:port" hasF V4.log "must be host:port"
bash "$TOP/tests/vm/boot.sh" stop "$SSHVM"
SSHVM=
finish B
finish G
ok $((rc_B != 1)) "B: a failing job fails the build with exit 1 (got $rc_B)"
check "B: the base image from <disks>/qemu/x86_64 booted" hasF B.log "Booting machine with image base/tiny..."
check "B: output before the failure" has B.log '^before-fail$'
check "B: nothing after the failing command" sh -c "! grep -q 'after-fail' '$W/B.log'"
check "B: later jobs are not run" sh -c "! grep -q 'never-run' '$W/B.log'"
check "B: the error line" hasF B.log "error: job build.1 in stage build failed: exit status 1"
check "B: not run listed" has B.log "not run:.*test.1"
check "B: qemu is gone" gone "$(qemu_pid B)"
ok $rc_G "G: the clone build exits 0 (got $rc_G)"
[ "$rc_G" = 0 ] || show G.log
check "G: the clone job ran git clone and checked out v1" hasF G.log "+ git checkout -q v1"
check "G: the guest has the tagged content" has G.log '^from git$'
check "G: lock_root false: root's empty password is left as it was" sh -c "! grep -q -e '^Locked the machine' -e 'empty root password stays' '$W/G.log' && grep -q -F '+ grep -q ^root:: /etc/shadow' '$W/G.log'"
check "G: qemu is gone" gone "$(qemu_pid G)"
kill "$GITD" 2>/dev/null
wait "$GITD" 2>/dev/null
GITD=

# --- phase 3: timeout, SIGINT and kill -9 -------------------------------------
cat >"$W/slow.yml" <<'EOF'
namespace: e2e
driver:
  type: qemu
  image: tiny
stages: [s, after]
jobs:
  - stage: s
    commands:
      - echo job-started
      - sleep 600
  - stage: after
    commands:
      - echo never-run
EOF
start T run --registry "$REG" --driver-config "$W/vm.conf" --timeout 60s "$W/slow.yml"
start S run --registry "$REG" --driver-config "$W/vm.conf" "$W/slow.yml"
RUN_TMPDIR=$W/tmpk start K run --registry "$REG" --driver-config "$W/vm.conf" "$W/slow.yml"
wait_for S '^job-started$'
ok $? "S: the job started"
kill -INT "$pid_S"
wait_for K '^job-started$'
ok $? "K: the job started"
QK=$(qemu_pid K)
# Three builds of the same image at once: three machines, three ports.
wait_for T '^job-started$'
pS=$(port_of S) pT=$(port_of T) pK=$(port_of K)
ok $([ -n "$pS" ] && [ -n "$pT" ] && [ -n "$pK" ] && [ "$pS" != "$pT" ] && [ "$pS" != "$pK" ] && [ "$pT" != "$pK" ] && [ "$(qemu_pid S)" != "$(qemu_pid T)" ]; echo $?) "S, T and K boot the same image at once: distinct qemu processes and ports ($pS $pT $pK)"
kill -KILL "$pid_K"
check "K: qemu dies with djinn-lua (kill -9; PDEATHSIG)" gone "$QK"
finish S
finish T
ok $((rc_S != 130)) "S: SIGINT mid-job exits 130 (got $rc_S)"
check "S: qemu is gone" gone "$(qemu_pid S)"
check "S: the build is killed, later jobs not run" sh -c "grep -q 'killed' '$W/S.log' && ! grep -q never-run '$W/S.log'"
ok $((rc_T != 4)) "T: --timeout exits 4 (got $rc_T)"
check "T: qemu is gone" gone "$(qemu_pid T)"
check "T: the build timed out" has T.log "timed_out"
check "no qemu child of this test is left" sh -c "! ps -eo comm= -o args= | grep '^qemu-system' | grep -qF '$W/'"
check "no temporary directories left behind after timeout and SIGINT" sh -c "test -z \"\$(ls -A '$W/tmp')\""
KD=$(ls -d "$W"/run/djinn/*/ 2>/dev/null)
ok $([ "$(echo "$KD" | grep -c .)" -eq 1 ]; echo $?) "K: the killed build's state directory is left until the next run (S and T removed theirs)"
check "K: its state file records the dead runner's qemu (pid $QK)" sh -c "jq -e '.qemu.pid == $QK and .driver == \"qemu\"' '${KD}state'"
check "K: qemu's files were in the state directory" test -f "${KD}qemu/console.log"

# --- a tampered image never boots --------------------------------------------
check "the registry cached the verification (no rehash)" hasF S.log "SHA-256 matches the registry (unchanged since the last check)"
chmod u+w "$STORE"
# Flip one byte in the data area, then put the mtime back: ctime still moves.
printf '\125' | dd of="$STORE" bs=1 seek=4194304 conv=notrunc status=none
touch -d "@$MT0" "$STORE"
mk tamper tiny
"$D" run --registry "$REG" --driver-config "$W/vm.conf" "$W/tamper.yml" >"$W/tamper.out" 2>&1
rc=$?
ok $((rc != 3)) "a tampered store file is refused (exit $rc)"
check "tampered: the message says it does not match the registry" hasF tamper.out "does not match the registry"
check "tampered: refused before boot (no qemu started)" sh -c "! grep -q 'Started qemu' '$W/tamper.out'"
[ "$rc" = 3 ] || show tamper.out
check "the run after kill -9 removed the killed build's state directory" sh -c "test ! -e '$KD' && test -z \"\$(ls -A '$W/run/djinn')\""

tap_end
