#!/bin/sh
# tests/docker/bench.sh [BUILD] - measure the docker driver on a private
# dockerd + registry (tests/docker/lib.sh): the pull time of the test
# image (POST /images/create from 127.0.0.1:5000, 5 runs, the local copy
# deleted before each) and the container-per-job overhead: the mean
# duration of 10 jobs that run `true` (each: create, upload the script,
# start, follow the logs, wait, remove), from the --json job_end events.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-$TOP/build}
W=$(mktemp -d "${TMPDIR:-/tmp}/docker-bench.XXXXXX") || exit 1
. "$TOP/tests/docker/lib.sh"
trap 'dk_stop "$W/dk"; rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
dk_start "$W/dk" || exit 1
IMG=$DK_REG/djinn-test/busybox
dk_build_image "$IMG" && dk_push_and_forget "$IMG" || exit 1
sum=0
for i in 1 2 3 4 5; do
	t=$(curl -sS -o /dev/null -w '%{time_total}' --unix-socket "$W/dk/docker.sock" \
		-X POST "http://docker/v1.41/images/create?fromImage=$IMG&tag=latest")
	echo "pull $i: ${t} s"
	sum=$(awk -v a="$sum" -v b="$t" 'BEGIN { print a + b }')
	dk_api DELETE "/images/$IMG:latest" >/dev/null
done
echo "pull mean: $(awk -v s="$sum" 'BEGIN { printf "%.3f", s / 5 }') s"
{
	printf 'driver: {type: docker, image: %s, workspace: /workspace}\nstages: [s]\njobs:\n' "$IMG"
	for i in 1 2 3 4 5 6 7 8 9 10; do printf '  - stage: s\n    commands: ["true"]\n'; done
} >"$W/ten.yml"
printf 'driver docker {\n    host "unix://%s/dk/docker.sock"\n    network "none"\n}\n' "$W" >"$W/driver.conf"
start=$(date +%s.%N)
"$B/djinn-lua" run --json --driver-config "$W/driver.conf" "$W/ten.yml" >"$W/ten.json" || { cat "$W/ten.json"; exit 1; }
end=$(date +%s.%N)
python3 - "$W/ten.json" "$start" "$end" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
d = [e["duration"] for e in ev if e.get("event") == "job_end"]
b = [e for e in ev if e.get("event") == "build_end"][0]
first = next(i for i, e in enumerate(ev) if e.get("event") == "job_start")
print("jobs: %d, per-job overhead (a `true` job): mean %.3f s, min %.3f s, max %.3f s"
      % (len(d), sum(d) / len(d), min(d), max(d)))
print("whole build %.2f s (create incl. pull ~ %.2f s), wall %.2f s"
      % (b["duration"], b["duration"] - sum(d), float(sys.argv[3]) - float(sys.argv[2])))
PY
