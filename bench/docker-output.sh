#!/bin/bash
# bench/docker-output.sh [BUILD] - docker job output (issue 13) side by
# side with `docker run` on the same private dockerd (tests/docker/lib.sh:
# its own data root and socket on loopback, the busybox test image):
#   seq      a job printing `seq 1 1000000` (~7 MB)
#   base64   a job printing 40 MB of base64 text
# ours: djinn-lua run (docker driver, output cap off) > /dev/null;
# reference: docker run --rm IMAGE sh -c '...' > /dev/null (the attach
# stream the docker CLI uses). Both include creating, starting and
# removing one container. RUNS (default 7) runs of each side.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$TOP/build}" && pwd) || exit 2
RUNS=${RUNS:-7}
D=$B/djinn-lua
[ -x "$D" ] || { echo "build $D first: make" >&2; exit 2; }
command -v docker >/dev/null || { echo "docker CLI missing (apt-get install docker.io)" >&2; exit 2; }
. "$TOP/bench/lib.sh"
W=$(mktemp -d "${TMPDIR:-/tmp}/docker-output.XXXXXX") || exit 1
. "$TOP/tests/docker/lib.sh"
trap 'dk_stop "$W/dk"; rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
dk_start "$W/dk" || exit 1
IMG=djinn-bench/busybox
dk_build_image "$IMG" >/dev/null || exit 1
export DOCKER_HOST="unix://$W/dk/docker.sock"
cd "$W" || exit 1
printf 'driver docker {\n    host "unix://%s/dk/docker.sock"\n    network "none"\n}\nlimits { max_output 0 }\n' "$W" >dc.conf
job() { # job FILE COMMAND
	printf 'driver: {type: docker, image: %s, workspace: /workspace}\nstages: [s]\njobs:\n- stage: s\n  commands:\n  - %s\n' "$IMG" "$2" >"$1"
}
SEQ='seq 1 1000000'
B64='head -c 30000000 /dev/zero | base64'
job seq.yml "$SEQ"
job b64.yml "$B64"
SEQ_BYTES=$(seq 1 1000000 | wc -c)
B64_BYTES=$(head -c 30000000 /dev/zero | base64 | wc -c)

ours_seq() { "$D" run --driver-config dc.conf seq.yml; }
ref_seq() { docker run --rm --network none "$IMG" sh -c "$SEQ"; }
ours_b64() { "$D" run --driver-config dc.conf b64.yml; }
ref_b64() { docker run --rm --network none "$IMG" sh -c "$B64"; }

echo "docker output: $RUNS runs each, seq = $SEQ_BYTES bytes, base64 = $B64_BYTES bytes"
bench_compare "docker: job output, seq" "$RUNS" "$SEQ_BYTES" ours_seq ref_seq "docker run"
bench_compare "docker: job output, base64" "$RUNS" "$B64_BYTES" ours_b64 ref_b64 "docker run"
