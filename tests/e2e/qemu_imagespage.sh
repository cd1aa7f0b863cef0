#!/bin/sh
# needs: guest (boots a VM under QEMU)
# qemu_imagespage.sh - the QEMU and SSH drivers on an OpenSSH image
# configured exactly as Djinn's Images page tells users to (issue 11,
# section 3): `PubkeyAuthentication no`, `AcceptEnv *`,
# `PermitUserEnvironment yes` and `Subsystem sftp
# /usr/libexec/openssh/sftp-server`, a path Debian does not have, so the
# SFTP subsystem cannot start (`UsePAM no`: the tiny image has no PAM).
# Built by tests/vm/build-image.sh (SSHD=openssh-imagespage). TAP.
#
# Two boots:
#   P: `djinn-lua run` with the qemu driver, on a pseudo-terminal: file
#      and directory objects, `out/copy.txt => copy.txt`, `out/*.log`, a
#      directory artifact and a 30 MiB one, all over exec channels; env
#      through AcceptEnv; the root lock refused by the server (warning,
#      root left as it was); progress lines (boot, transfer) on the pty.
#   V: the same image booted by tests/vm/boot.sh, driven by the ssh
#      driver: a build in a pipe (no progress bytes), one under --json on
#      a pty (no progress bytes), and an object error that fails the build
#      (issue 11, 4.8).
# Before issue 11 (on main at 4db96ad): `artifact error: ssh.glob: ...:
# needs SFTP`, `object error: tree: not a regular file`, the build still
# "passed", root's password locked behind a key the server refuses, and
# no progress.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
VM=$B/vm
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/qemu_page.XXXXXX") || exit 1
PPID_=
SSHVM=
cleanup() {
	[ -n "$PPID_" ] && kill -KILL "$PPID_" 2>/dev/null
	[ -n "$SSHVM" ] && bash "$TOP/tests/vm/boot.sh" stop "$SSHVM" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data"
export XDG_RUNTIME_DIR="$W/run"
mkdir -p "$W/tmp"
export TMPDIR="$W/tmp"
unset NO_COLOR DJINN_TRACE
. "$TOP/tests/e2e_lib.sh"

SSHD=openssh-imagespage bash "$TOP/tests/vm/build-image.sh" "$VM" >"$W/img.out" 2>&1
ok $? "build-image.sh (SSHD=openssh-imagespage): $(tail -1 "$W/img.out")"
IMG=$VM/djinn-tiny-openssh-imagespage.qcow2
REG=$W/reg/registry.db
"$D" image register --registry "$REG" e2e page "$IMG" >"$W/reg.out" 2>&1
ok $? "register the Images-page image as e2e/page"

cat >"$W/vm.conf" <<EOF
driver qemu {
    cpus 1
    memory 256
    accel "tcg"
    boot_timeout 3m
    restrict true
}
EOF

# The objects: a file, and a directory with a subdirectory, an empty
# directory, binary data and names a shell would misread.
O=$W/objects
mkdir -p "$O/tree/sub/deep" "$O/tree/empty"
printf 'object data\n' >"$O/file.txt"
printf 'a\n' >"$O/tree/a.txt"
printf 'it is quoted\n' >"$O/tree/sub/it's \$(touch pwned).txt"
head -c 300000 /dev/urandom >"$O/tree/sub/deep/c.bin"
chmod 755 "$O/tree/sub/deep/c.bin"

cat >"$W/p.yml" <<'EOF'
namespace: e2e
driver:
  type: qemu
  image: page
env:
  - FOO=bar baz
objects:
  - file.txt => file.txt
  - tree => placed/tree
stages: [s]
jobs:
  - stage: s
    commands:
      - test "$FOO" = "bar baz"
      - cat file.txt
      - cat "placed/tree/sub/it's \$(touch pwned).txt"
      - test -d placed/tree/empty && test ! -e pwned && test -x placed/tree/sub/deep/c.bin
      - echo "root-entries:$(grep -c '^root::' /etc/shadow)"
      - if grep -qs djinn-build /root/.ssh/authorized_keys; then echo key-left; else echo key-gone; fi
      - mkdir -p out && cp file.txt out/copy.txt && echo one > out/a.log && echo two > out/b.log && echo no > out/c.txt
      - head -c 31457280 /dev/zero > out/big.bin
    artifacts:
      - out/copy.txt => copy.txt
      - out/*.log
      - placed/tree => tree-back
      - out/big.bin => big.bin
EOF

# --- P on a pty ------------------------------------------------------------
# pty NAME CMD: CMD on a pseudo-terminal (script(1)); everything it wrote
# to the terminal, stdout and stderr, in $W/NAME.out; status in $W/NAME.rc.
pty() {
	timeout 300 script -qec "$2" /dev/null >"$W/$1.out" 2>&1
	echo $? >"$W/$1.rc"
}
pty P "'$D' run --registry '$REG' --driver-config '$W/vm.conf' --objects '$O' --artifacts '$W/art-p' '$W/p.yml'" &
PPID_=$!
wait "$PPID_"
PPID_=
# V boots after P (not at once: on a loaded machine two TCG guests
# starting together are slow enough to make a boot wait flaky).
bash "$TOP/tests/vm/boot.sh" start "$IMG" 180 >"$W/boot.out" 2>&1
rcb=$?
SSHVM=$(sed -n 's/^pid=\([0-9]*\) .*/\1/p' "$W/boot.out")
PORT=$(sed -n 's/.* port=\([0-9]*\) .*/\1/p' "$W/boot.out")
rc=$(cat "$W/P.rc")
# The transcript without the terminal's CRs, for line checks.
tr -d '\r' <"$W/P.out" >"$W/P.txt"

ok "$rc" "P: the build on the Images-page image exits 0 (got $rc)"
[ "$rc" = 0 ] || show P.txt
check "P: build passed" has P.txt "^build .*passed.* in "
check "P: the transfer method is said, with the reason" has P.txt "^File transfers: exec channels (cat), because the SSH server's SFTP does not work: SFTP subsystem did not start"
c=$(grep -c "^File transfers:" "$W/P.txt")
ok $((c != 1)) "P: ... once per build (got $c)"
check "P: the file object arrived" hasF P.txt "object data"
check "P: the directory object arrived whole (subdirectories, odd names, modes)" hasF P.txt "it is quoted"
check "P: no object error" sh -c "! grep -q 'object error' '$W/P.txt'"
check "P: env through AcceptEnv (no fallback into the script)" sh -c "! grep -q 'refused env requests' '$W/P.txt'"
check "P: the root lock warning says the server refused the key" has P.txt "warning: the machine's empty root password stays usable .*refused the build's key"
check "P: root's empty password was left as it was" hasF P.txt "root-entries:1"
check "P: the build's key was taken out of authorized_keys again" hasF P.txt "key-gone"
check "P: no artifact error" sh -c "! grep -q 'artifact error' '$W/P.txt'"
check "P: out/copy.txt => copy.txt" cmp -s "$O/file.txt" "$W/art-p/copy.txt"
check "P: out/*.log collected (both)" sh -c "grep -q 'Collecting artifact out/a.log => ' '$W/P.txt' && grep -q 'Collecting artifact out/b.log => ' '$W/P.txt' && test \"\$(cat '$W'/art-p/a.log* '$W'/art-p/b.log*)\" = 'one
two'"
check "P: the glob collected nothing else" sh -c "! ls '$W/art-p' | grep -q c.txt"
check "P: a directory artifact comes back whole" diff -r "$O/tree" "$W/art-p/tree-back"
s=$(stat -c %s "$W/art-p/big.bin" 2>/dev/null)
ok $(( ${s:-0} != 31457280 )) "P: the 30 MiB artifact, every byte (got ${s:-none})"
check "P: nothing temporary left in the artifacts directory" sh -c "! ls -A '$W/art-p' | grep -q djinn"
# Progress on the terminal: the status line is drawn with \r ... ESC[K.
check "P (pty): the boot wait shows the elapsed time" grep -qa "Booting machine with image page: [0-9.]*s" "$W/P.out"
check "P (pty): the large transfer shows bytes and a rate" grep -qaE "out/big.bin: [0-9.]+ MiB( of 30.0 MiB)?, [0-9.]+ [KMG]?i?B/s" "$W/P.out"
check "P (pty): the status line is erased before the next line" grep -qa "$(printf '\r\033\\[K')" "$W/P.out"
check "P: qemu is gone, no state left" sh -c "test -z \"\$(ls -A '$W/run/djinn' 2>/dev/null)\""

# --- V: the ssh driver on the same image ----------------------------------
ok $rcb "V: boot.sh booted the Images-page image ($(tail -1 "$W/boot.out"))"
[ "$rcb" = 0 ] || show boot.out
cat >"$W/v.yml" <<EOF
driver:
  type: ssh
  address: 127.0.0.1:$PORT
env:
  - FOO=bar baz
objects:
  - file.txt => file.txt
  - tree => placed/tree
stages: [s]
jobs:
  - stage: s
    commands:
      - test "\$FOO" = "bar baz"
      - mkdir -p out && cp -r placed/tree out/t && head -c 3000000 /dev/zero > out/z.bin
    artifacts:
      - out/t => t
      - out/*.bin => bin/*
EOF
cat >"$W/ssh.conf" <<EOF
driver ssh {
    timeout 30s
}
EOF
RUN_TIMEOUT=120 run V1 run --driver-config "$W/ssh.conf" --objects "$O" --artifacts "$W/art-v" "$W/v.yml"
ok $rc "V1: the ssh driver build passes over exec channels (got $rc)"
[ "$rc" = 0 ] || show V1.out
check "V1: the transfer method line" has V1.out "^File transfers: exec channels (cat)"
check "V1: the directory object and artifact round trip" diff -r "$O/tree" "$W/art-v/t"
check "V1: a glob with * in DST" test -f "$W/art-v/bin/z.bin"
check "V1 (pipe): no progress bytes on stdout or stderr" sh -c "! cat '$W/V1.out' '$W/V1.err' | grep -qa \"\$(printf '\\033\\\\[K')\""
check "V1 (pipe): no carriage return either" sh -c "! cat '$W/V1.out' '$W/V1.err' | grep -qa \"\$(printf '\\r')\""
pty V2 "'$D' run --json --driver-config '$W/ssh.conf' --objects '$O' --artifacts '$W/art-v2' '$W/v.yml'"
ok "$(cat "$W/V2.rc")" "V2: the same build with --json on a pty passes"
check "V2 (--json on a pty): no progress bytes" sh -c "! grep -qa \"\$(printf '\\033\\\\[K')\" '$W/V2.out'"
check "V2 (--json): the transfer method line is an output event" grep -q '"data":"File transfers: exec channels' "$W/V2.out"

# 4.8: an object that cannot be placed fails the build (it used to go on).
cat >"$W/v3.yml" <<EOF
driver:
  type: ssh
  address: 127.0.0.1:$PORT
objects:
  - file.txt => file.txt
  - missing.txt => missing.txt
stages: [s]
jobs:
  - stage: s
    commands: [echo should-not-run]
EOF
RUN_TIMEOUT=120 run V3 run --driver-config "$W/ssh.conf" --objects "$O" --artifacts "$W/art-v3" "$W/v3.yml"
ok $((rc == 0)) "V3: a missing object fails the build (exit $rc)"
check "V3: the object error is printed" hasF V3.out "object error:"
check "V3: the summary names it" has V3.out "^build failed in .*object error: 1 of 2 objects could not be placed (missing.txt)"
check "V3: no job ran" sh -c "! grep -q should-not-run '$W/V3.out'"

tap_end
