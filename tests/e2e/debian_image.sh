#!/bin/sh
# needs: guest (boots a VM under QEMU), root (mmdebstrap), the Debian mirror
# debian_image.sh - the real Debian 12 base image (issue 14, part 3):
# examples/images/debian-12.sh builds it from the host's mirror
# (mmdebstrap in unshare mode, no mounts), install-base.lua installs it as
# Djinn's base image debian/12 with the alias debian/stable, the
# image-contract check (image check --boot) finds it usable, and a manifest
# with `image: debian/stable` runs a real job on it: apt-get install from
# the mirror, a C compile of an object, an artifact back. The image is
# built once per checkout (build/images, kept by its stamp; the package
# cache beside it), whatever build directory runs the suite (make asan
# reuses it). TAP.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
IMAGES=${DJINN_IMAGES:-$TOP/build/images}
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/debian_image.XXXXXX") || exit 1
cleanup() { rm -rf "$W"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
export XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data"
. "$TOP/tests/e2e_lib.sh"

IMG=$IMAGES/debian-12.qcow2
t0=$(date +%s)
bash "$TOP/examples/images/debian-12.sh" "$IMG" >"$W/build.out" 2>&1
ok $? "examples/images/debian-12.sh: $(tail -1 "$W/build.out") in $(($(date +%s) - t0)) s"
[ -f "$IMG" ] || { show build.out; tap_end; exit 1; }
check "qemu-img check passes" qemu-img check -q -f qcow2 "$IMG"
run qcheck image check "$IMG"
ok $rc "djinn-lua image check (the registry's validator) passes"
check "QCOW2 v3 (compat 1.1), compressed clusters" sh -c "qemu-img info --output=json '$IMG' | grep -q '\"compat\": \"1.1\"'"

run install "$TOP/examples/images/install-base.lua" "$IMG" debian/12 debian/stable --disks "$W/disks"
ok $rc "install-base.lua: installed as debian/12"
check "debian/stable is a symlink to 12, beside it" test "$(readlink "$W/disks/qemu/x86_64/debian/stable")" = 12
check "the installed file is the image" cmp "$IMG" "$W/disks/qemu/x86_64/debian/12"
run refuse "$TOP/examples/images/install-base.lua" /etc/hostname debian/bad --disks "$W/disks"
ok $((rc == 0)) "install-base.lua refuses a file that is not QCOW2 v3"
check "... and installs nothing" test ! -e "$W/disks/qemu/x86_64/debian/bad"

cat >"$W/driver.conf" <<EOF
driver qemu {
    disks        "$W/disks"
    cpus         2
    memory       1024
    accel        "auto"
    boot_timeout 5m
}
EOF
RUN_TIMEOUT=600 run bootcheck image check --boot --registry "$W/reg.db" --driver-config "$W/driver.conf" debian/stable
ok $rc "image check --boot debian/stable: usable (exit $rc)"
[ $rc = 0 ] || { show bootcheck.out; show bootcheck.err; }
check "... every item passed" sh -c "[ \$(grep -c '^pass ' '$W/bootcheck.out') -ge 8 ] && ! grep -q -e '^fail ' -e '^warn ' '$W/bootcheck.out'"
check "... the verdict is recorded for its content" sh -c "sqlite3 '$W/reg.db' \"SELECT verdict FROM image_last_check WHERE sha256 = '\$(sha256sum '$IMG' | cut -d' ' -f1)'\" | grep -qx usable"
grep -e '^pass  banner' -e '^verdict' "$W/bootcheck.out" | sed 's/^/# /'

mkdir -p "$W/objs" "$W/arts"
printf '#include <stdio.h>\nint main(void) { puts("built on debian " VERSION); return 0; }\n' >"$W/objs/hello.c"
cat >"$W/m.yml" <<'EOF'
driver:
  type: qemu
  image: debian/stable
env:
  - GREETING=from the manifest
objects:
  - hello.c
stages:
  - build
jobs:
  - stage: build
    commands:
      - echo "debian_version $(cat /etc/debian_version)"
      - echo "uid $(id -u)"
      - echo "greeting $GREETING"
      - apt-get update -q
      - apt-get install -y -q --no-install-recommends tcc libc6-dev
      - tcc -DVERSION="\"$(cat /etc/debian_version)\"" -o hello hello.c
      - ./hello | tee hello.out
    artifacts:
      - hello.out
EOF
RUN_TIMEOUT=1200 run job run --driver-config "$W/driver.conf" --objects "$W/objs" --artifacts "$W/arts" "$W/m.yml"
ok $rc "a manifest with image: debian/stable passes (exit $rc)"
[ $rc = 0 ] || { SHOW_LINES=40 show job.out; show job.err; }
check "the guest is Debian 12" has job.out "^debian_version 12\."
check "the job runs as root" has job.out "^uid 0$"
check "env reaches the job" has job.out "^greeting from the manifest$"
check "apt-get installed tcc from the mirror" has job.out "Setting up tcc"
has_art() { grep -q "^built on debian 12\." "$W/arts/hello.out"; }
check "the artifact holds the program's output" has_art
grep "Machine ready" "$W/job.out" | sed 's/^/# /'

tap_end
