#!/bin/sh
# needs: guest (boots VMs under QEMU)
# image_check.sh - the image-contract check (issue 14, part 2):
# `djinn-lua image check --boot` and `image register --boot-check` on real
# VMs under TCG, each image getting its verdict and messages, the verdict
# recorded in the registry (image_checks), shown by image ls and image
# info, and a build on an unusable image refused before boot (and the
# driver.conf override, refuse_unusable false). TAP.
#
# Images (tests/vm/build-image.sh, cached in build/vm):
#   tiny    dropbear: usable with warnings (dropbear refuses env requests)
#   page    OpenSSH as Djinn's Images page configures it (SSHD=
#           openssh-imagespage): SFTP broken -> exec fallback -> warnings
#   pw      ROOT_PASSWORD=1: root has a password -> unusable (passwd -d root)
#   nosshd  SSHD=none: boots, no SSH server -> unusable (no banner within
#           a short --boot-timeout, long enough for the guest's init to
#           write to the console)
#   blank   `qemu-img create -f qcow2`: a valid QCOW2 with nothing to boot
#           -> unusable, registered and as a base image under disks
# After every check: no qemu process of this test is left, and no state
# directory. A check stopped by SIGTERM leaves neither either (exit 130).
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
VM=$B/vm
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/image_check.XXXXXX") || exit 1
BG=
cleanup() {
	[ -n "$BG" ] && kill -KILL "$BG" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data"
export XDG_RUNTIME_DIR="$W/run"
mkdir -p "$W/tmp" "$W/run"
export TMPDIR="$W/tmp"
unset NO_COLOR DJINN_TRACE
. "$TOP/tests/e2e_lib.sh"
RUN_TIMEOUT=300

for v in SSHD=dropbear SSHD=openssh-imagespage ROOT_PASSWORD=1 SSHD=none; do
	env "$v" bash "$TOP/tests/vm/build-image.sh" "$VM" >"$W/img.out" 2>&1
	ok $? "build-image.sh ($v): $(tail -1 "$W/img.out")"
done
qemu-img create -q -f qcow2 "$W/blank.qcow2" 1G
ok $? "qemu-img create -f qcow2: a valid QCOW2 with no bootable system"

REG=$W/reg/registry.db
DISKS=$W/disks
mkdir -p "$DISKS/qemu/x86_64/test"
cp "$W/blank.qcow2" "$DISKS/qemu/x86_64/test/blank"
cat >"$W/vm.conf" <<EOF
driver qemu {
    cpus 1
    memory 256
    accel "tcg"
    boot_timeout 3m
    restrict true
    disks "$DISKS"
}
EOF
cp "$W/vm.conf" "$W/override.conf"
sed -i 's/^}$/    refuse_unusable false\n}/' "$W/override.conf"

# No qemu of this test and no state directory left behind.
clean() {
	! pgrep -f "$W" >/dev/null 2>&1 &&
		[ -z "$(ls -A "$W/run/djinn" 2>/dev/null)" ]
}
# The item line of NAME in FILE: "STATUS  NAME  detail".
item() { grep -E "^$2 +$3" "$W/$1" >/dev/null; }

# --- tiny: register --boot-check ----------------------------------------------
run tiny image register --registry "$REG" --boot-check \
	--driver-config "$W/vm.conf" e2e tiny "$VM/djinn-tiny.qcow2"
ok $((rc != 0)) "tiny: register --boot-check exits 0 (got $rc)"
[ "$rc" = 0 ] || show tiny.err
check "tiny: registered first" has tiny.out "^registered namespace: e2e, image: tiny "
check "tiny: banner passes, naming dropbear" item tiny.out pass "banner .*SSH-2.0-dropbear"
check "tiny: login passes, auth none accepted (said)" item tiny.out pass "login .*auth none accepted"
check "tiny: exec passes (exit 3 returned 3)" item tiny.out pass "exec .*returned 3"
check "tiny: files over SFTP" item tiny.out pass "files .*over SFTP"
check "tiny: env refused: a warning, the driver exports them" item tiny.out warn "env .*exports build variables in the job script"
check "tiny: /root writable, /root/.ssh present" item tiny.out pass "root +/root is writable and /root/.ssh exists"
check "tiny: clock within a minute" item tiny.out pass "clock "
check "tiny: clean shutdown" item tiny.out pass "shutdown .*powered off"
check "tiny: verdict usable with warnings" has tiny.out "^verdict: usable with warnings: tiny (namespace: e2e)"
check "tiny: the driver's lines on stderr" has tiny.err "^Started qemu (pid [0-9]*, accel tcg"
check "tiny: no qemu, no state directory left" clean
SECS=$(sed -n 's/.* checked in \([0-9.]*s\) on .*/\1/p' "$W/tiny.out")
echo "# tiny: the check took $SECS"

# --- page: the Images page's OpenSSH ------------------------------------------
"$D" image register --registry "$REG" e2e page \
	"$VM/djinn-tiny-openssh-imagespage.qcow2" >/dev/null 2>&1
run page image check --boot --registry "$REG" --driver-config "$W/vm.conf" e2e page
ok "$rc" "page: check --boot exits 0 (usable with warnings; got $rc)"
check "page: banner names OpenSSH" item page.out pass "banner .*OpenSSH"
check "page: auth none and password both said" item page.out pass "login .*auth none accepted; password \"\" accepted"
check "page: files over the exec fallback, saying why" item page.out warn "files .*exec channels.*SFTP does not work"
check "page: the fix is the sshd_config line" hasF page.out "fix: Subsystem sftp internal-sftp (in /etc/ssh/sshd_config"
check "page: env accepted (AcceptEnv *)" item page.out pass "env .*accepted"
check "page: verdict usable with warnings" has page.out "^verdict: usable with warnings: page "
check "page: no qemu, no state directory left" clean

# --- pw: root has a password ---------------------------------------------------
"$D" image register --registry "$REG" e2e pw "$VM/djinn-tiny-rootpw.qcow2" >/dev/null 2>&1
run pw image check --boot --registry "$REG" --driver-config "$W/vm.conf" e2e pw
ok $((rc != 1)) "pw: check --boot exits 1 (unusable; got $rc)"
check "pw: the banner came" item pw.out pass "banner "
check "pw: login fails, both methods refused" item pw.out fail "login .*auth none refused.*password \"\" refused"
check "pw: the fix is passwd -d root" hasF pw.out "fix: give root an empty password: passwd -d root"
check "pw: the rest is skipped" item pw.out skip "exec "
check "pw: verdict unusable" has pw.out "^verdict: unusable: pw "
check "pw: no qemu, no state directory left" clean

# --- nosshd: no SSH server; a short boot timeout, JSON -------------------------
"$D" image register --registry "$REG" e2e nosshd "$VM/djinn-tiny-nosshd.qcow2" >/dev/null 2>&1
run nosshd image check --boot --json --registry "$REG" --boot-timeout 30s \
	--driver-config "$W/vm.conf" e2e nosshd
ok $((rc != 1)) "nosshd: check --boot --json exits 1 (got $rc)"
check "nosshd: every stdout line is a JSON event" sh -c "jq -e -s 'all(.[]; .event)' '$W/nosshd.out'"
check "nosshd: the banner item fails within the boot timeout" sh -c "jq -e -s '[.[] | select(.event == \"item\" and .name == \"banner\")][0] | .status == \"fail\" and (.detail | test(\"within 30s\"))' '$W/nosshd.out'"
check "nosshd: ... with the guest console's tail" sh -c "jq -e -s '[.[] | select(.event == \"item\" and .name == \"banner\")][0].detail | test(\"guest console\")' '$W/nosshd.out'"
check "nosshd: the result object: unusable, recorded, 8 items" sh -c "jq -e -s '[.[] | select(.event == \"result\")][0] | .verdict == \"unusable\" and .recorded and (.items | length) == 8' '$W/nosshd.out'"
check "nosshd: no qemu, no state directory left" clean

# --- blank: nothing to boot, as a registered and as a base image --------------
"$D" image register --registry "$REG" e2e blank "$W/blank.qcow2" >/dev/null 2>&1
run blank image check --boot --registry "$REG" --boot-timeout 10s \
	--driver-config "$W/vm.conf" e2e blank
ok $((rc != 1)) "blank: check --boot exits 1 (got $rc)"
check "blank: no banner, and the console stayed empty" hasF blank.out "the serial console stayed empty"
check "blank: the fix: a boot loader and a kernel" hasF blank.out "fix: install a boot loader and a kernel"
check "blank: verdict unusable" has blank.out "^verdict: unusable: blank "
run base image check --boot --registry "$REG" --boot-timeout 10s \
	--driver-config "$W/vm.conf" test/blank
ok $((rc != 1)) "test/blank (a base image under disks): exits 1 (got $rc)"
check "test/blank: read as a base image" has base.out "^verdict: unusable: test/blank (base image) "
check "blank: no qemu, no state directory left" clean

# --- the registry ---------------------------------------------------------------
TINY_SHA=$(sha256sum <"$VM/djinn-tiny.qcow2" | cut -d' ' -f1)
BLANK_SHA=$(sha256sum <"$W/blank.qcow2" | cut -d' ' -f1)
sq "$REG" "SELECT verdict, json_array_length(items), machine LIKE 'qemu %, accel tcg, 1 CPU, 256 MiB' FROM image_last_check WHERE sha256 = '$TINY_SHA';"
ok $((rc != 0)) "registry: the row of the tiny image's content"
check "registry: tiny: warnings, 8 items, the machine" test "$(cat "$W/sq.out")" = "warnings|8|1"
sq "$REG" "SELECT count(*), min(verdict), max(verdict) FROM image_checks WHERE sha256 = '$BLANK_SHA';"
check "registry: the blank content was checked twice (by name and as a base image), unusable" test "$(cat "$W/sq.out")" = "2|unusable|unusable"
sq "$REG" "SELECT json_extract(items, '\$[1].fix') FROM image_last_check, images WHERE images.name = 'pw' AND images.sha256 = image_last_check.sha256;"
check "registry: pw's login item keeps its fix" grep -q "passwd -d root" "$W/sq.out"
run ls image ls --registry "$REG"
check "image ls: a CHECK column" has ls.out "^NAMESPACE .* SHA256 *CHECK$"
check "image ls: tiny warnings" has ls.out "^e2e *tiny .* warnings$"
check "image ls: pw unusable" has ls.out "^e2e *pw .* unusable$"
run lsj image ls --json --registry "$REG"
check "image ls --json: check_verdict and checked_at" sh -c "jq -e 'map(select(.name == \"page\"))[0] | .check_verdict == \"warnings\" and (.checked_at | length) > 0' '$W/lsj.out'"
run info image info --registry "$REG" e2e pw
check "image info: when and the verdict" has info.out "^check  *unusable (20[0-9-]*T"
check "image info: the failed item and its fix" sh -c "grep -q '^check.login  *fail: ' '$W/info.out' && grep -q '^check.login.fix  *give root an empty password: passwd -d root' '$W/info.out'"
run infoj image info --json --registry "$REG" e2e page
check "image info --json: check.items" sh -c "jq -e '.check.verdict == \"warnings\" and (.check.items | map(select(.name == \"files\"))[0].status == \"warn\")' '$W/infoj.out'"

# --- a build on an unusable image: refused before boot, then overridden -------
job_yml() { # IMAGE [NAMESPACE-LINE]
	cat <<EOF
${2-}
driver:
  type: qemu
  image: $1
stages: [s]
jobs:
  - stage: s
    commands:
      - echo contract-job-ran
EOF
}
job_yml pw "namespace: e2e" >"$W/pw.yml"
run runpw run --registry "$REG" --driver-config "$W/vm.conf" "$W/pw.yml"
ok $((rc == 0)) "run on pw: refused (got $rc)"
cat "$W/runpw.out" "$W/runpw.err" >"$W/runpw.all"
check "run on pw: the reason and the fix" sh -c "grep -q 'its last boot check .* said unusable' '$W/runpw.all' && grep -q 'passwd -d root' '$W/runpw.all'"
check "run on pw: refused before boot (no qemu started)" sh -c "! grep -q 'Started qemu' '$W/runpw.all'"
check "run on pw: says how to override" hasF runpw.all "set refuse_unusable false in the driver qemu block of driver.conf"
job_yml test/blank >"$W/base.yml"
run runbase run --registry "$REG" --driver-config "$W/vm.conf" "$W/base.yml"
cat "$W/runbase.out" "$W/runbase.err" >"$W/runbase.all"
check "run on the base image test/blank: refused before boot" sh -c "grep -q 'test/blank (base image): its last boot check' '$W/runbase.all' && ! grep -q 'Started qemu' '$W/runbase.all'"
# The tiny content marked unusable by hand: refused, then booted with
# refuse_unusable false (a warning), and the job runs.
sq "$REG" "INSERT INTO image_checks(sha256, verdict, items, machine) VALUES ('$TINY_SHA', 'unusable', json('[{\"name\":\"login\",\"status\":\"fail\",\"detail\":\"marked by the test\",\"fix\":\"none needed\"}]'), 'test');"
job_yml tiny "namespace: e2e" >"$W/tiny.yml"
run runtiny run --registry "$REG" --driver-config "$W/vm.conf" "$W/tiny.yml"
ok $((rc == 0)) "run on tiny marked unusable: refused (got $rc)"
check "run on tiny marked unusable: names the item" grep -q -F "login: marked by the test" "$W/runtiny.out" "$W/runtiny.err"
run override run --registry "$REG" --driver-config "$W/override.conf" "$W/tiny.yml"
ok "$rc" "refuse_unusable false: the build runs and passes (got $rc)"
[ "$rc" = 0 ] || show override.out
check "refuse_unusable false: a warning says so" grep -q "booting it anyway (refuse_unusable false in driver.conf)" "$W/override.out" "$W/override.err"
check "refuse_unusable false: the job ran" hasF override.out "contract-job-ran"
check "after the builds: no qemu, no state directory left" clean

# --- usage -----------------------------------------------------------------------
run u1 image ls --boot --registry "$REG"
check "--boot on image ls: usage error (exit 2)" test "$rc" = 2
check "... naming where it belongs" hasF u1.err "--boot is an option of image check"
run u2 image check --boot-timeout 5s "$W/blank.qcow2"
check "--boot-timeout without --boot: usage error" test "$rc" = 2
run u3 image check --boot --registry "$REG" --boot-timeout soon e2e tiny
check "--boot-timeout soon: usage error naming the option" sh -c "test $rc = 2 && grep -q -- '--boot-timeout' '$W/u3.err'"
run u4 image check --boot --registry "$REG" --driver-config "$W/vm.conf" e2e nosuch
check "an unknown image: exit 1, couldn't find image" sh -c "test $rc = 1 && grep -q \"couldn't find image nosuch\" '$W/u4.err'"

# --- interrupted: SIGTERM during the boot wait ---------------------------------
timeout 120 "$D" image check --boot --registry "$REG" --boot-timeout 60s \
	--driver-config "$W/vm.conf" e2e nosshd >"$W/int.out" 2>"$W/int.err" &
BG=$!
i=0
while [ $i -lt 200 ] && ! grep -q "Started qemu" "$W/int.err"; do
	sleep 0.1
	i=$((i + 1))
done
sleep 1
kill -TERM "$BG"
wait "$BG"
rc=$?
BG=
ok $((rc != 130)) "SIGTERM during the boot wait: exit 130 (got $rc)"
check "... says nothing was recorded" hasF int.err "nothing was recorded"
check "... no qemu, no state directory left" clean
tap_end
