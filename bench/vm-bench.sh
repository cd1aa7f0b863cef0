#!/bin/bash
# vm-bench.sh [BUILD] [RUNS] - how fast the QEMU driver gets a job running,
# and what a job costs on a booted VM. Not part of `make test` (it prints
# timings, it asserts none). `make vm-bench` runs it.
#
# Side by side, RUNS times each (default 3), interleaved:
#   (a) from spawning `djinn-lua run` to the first byte of the first job's
#       output, with the tiny image registered in a fresh registry
#       (includes djinn-lua start-up, the registry's SHA-256 check, the
#       overlay, qemu, the boot wait + SSH login, env probe, the job's
#       exec); its phases come from DJINN_TRACE=1 (lua/djinn/trace.lua);
#   (b) the guest's SSH-ready time: qemu started directly, banner polled;
#   (c) Djinn's method simulated on the same image: sleep 2 s after
#       starting qemu, then an SSH connect with a 1 s timeout every 1 s;
#   (w) (a) from a warm snapshot (issue 15): the snapshot's size and
#       creation time, run start -> first job output, its ratio to (a),
#       and djinn-lua's own share of it (everything but qemu's state load
#       and the guest's first answer). Then the same for 1 GiB and 2 GiB
#       guests, and for the Debian 12 base image (build/images, made by
#       `make images`) when it exists.
# Goals (issue 15): (w) <= 1.5 s and <= 0.25 x (a); djinn-lua's share of
# (w) <= 0.2 s.
# Then, on one booted VM: djinn.ssh exec of `true` (mean of 50), the
# driver's per-job round trips (write + run the script, rm), and a fresh `ssh`
# client process per job (mean of 20). Goals: (a) <= (b) + 0.1 s;
# exec <= 0.2 x the ssh CLI.
# Needs qemu-system-x86, openssh-client, and the image packages of
# tests/vm/build-image.sh. All under TCG (accel tcg), as in CI.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$TOP/build}
RUNS=${2:-3}
case $B in /*) ;; *) B=$PWD/$B ;; esac
W=$(mktemp -d "${TMPDIR:-/tmp}/djinn-vm-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
bash "$TOP/tests/vm/build-image.sh" "$B/vm" >/dev/null
"$B/djinn-lua" image register --registry "$W/reg/registry.db" bench tiny "$B/vm/djinn-tiny.qcow2" >/dev/null
# (a) is the cold path: warm snapshots off. (w) the same machine with
# them on (a snapshot is made first with `image warm`).
cat >"$W/vm.conf" <<EOC
driver qemu {
    cpus 1
    memory 256
    accel "tcg"
    restrict true
    warm false
}
EOC
sed '/warm false/d' "$W/vm.conf" >"$W/vm-warm.conf"
cat >"$W/first.yml" <<'EOM'
namespace: bench
driver:
  type: qemu
  image: tiny
env:
  - A=1
stages: [s]
jobs:
  - stage: s
    commands:
      - echo first-output
EOM
XDG_CONFIG_HOME=$W/config "$B/djinn-lua" "$TOP/bench/vm-bench.lua" "$TOP" "$B" "$W" "$RUNS"
