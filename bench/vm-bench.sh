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
#       starting qemu, then an SSH connect with a 1 s timeout every 1 s.
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
cat >"$W/vm.conf" <<EOC
driver qemu {
    cpus 1
    memory 256
    accel "tcg"
    restrict true
}
EOC
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
