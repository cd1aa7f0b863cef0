#!/bin/sh
# output_scale.sh - the output path of `djinn-lua run` at volume (issue
# 13), with the OS driver: guards that are not timings.
#   - memory stays flat: the peak RSS of a 405 MB --json run is at most
#     32 MiB (not checked under ASan, whose shadow memory is most of it),
#     and at most 8 MiB above a 4 MB run's in every build (under ASan with
#     its quarantine of freed memory off);
#   - --json carries every byte: the output events' data of a 60 MB job
#     (seq and base64 text) is exactly the job's output (sha256);
#   - 10 secrets at volume: the masked plain output is exactly the job's
#     output with each secret replaced (sed), secrets placed at many
#     offsets so they straddle reads, and none left.
# TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/output_scale.XXXXXX") || exit 1
trap '[ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
export XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data"
. "$TOP/tests/e2e_lib.sh"
cd "$W" || exit 1

printf 'limits { max_output 0 }\n' >dc.conf
job() { # job FILE COMMAND
	printf 'driver: {type: os}\nstages: [s]\njobs:\n- stage: s\n  commands:\n  - %s\n' "$2" >"$1"
}
# peak_rss_kb ARGS...: run djinn-lua ARGS (stdout to /dev/null), print
# the peak RSS in KiB of the children waited for (djinn-lua is the
# largest); the exit status is djinn-lua's.
peak_rss_kb() {
	timeout 300 python3 -c '
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(r.returncode)' "$D" "$@"
}
asan=0
if nm "$D" 2>/dev/null | grep -q __asan_init; then
	asan=1
	# ASan holds freed memory in a quarantine (256 MB by default), which
	# would grow with the output however flat djinn-lua is: none here.
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0"
	export ASAN_OPTIONS
fi

# 1. Memory is flat.
job big.yml 'head -c 300000000 /dev/zero | base64'
job small.yml 'head -c 3000000 /dev/zero | base64'
big=$(peak_rss_kb run --json --driver-config dc.conf big.yml)
ok $? "a 405 MB --json run passes"
small=$(peak_rss_kb run --json --driver-config dc.conf small.yml)
ok $? "a 4 MB --json run passes"
echo "# peak RSS: 405 MB run ${big} KiB, 4 MB run ${small} KiB (ASan: $asan)"
if [ "$asan" -eq 0 ]; then
	[ "${big:-999999}" -le 32768 ]
	ok $? "peak RSS of a 405 MB --json run <= 32 MiB (${big} KiB)"
else
	echo "# ASan build: the absolute bound is checked by the plain suite"
	ok 0 "peak RSS bound: ASan build, flatness checked below instead"
fi
[ $((${big:-999999} - ${small:-0})) -le 8192 ]
ok $? "RSS is flat: 405 MB run within 8 MiB of a 4 MB run's (${big} vs ${small} KiB)"
plain=$(peak_rss_kb run --driver-config dc.conf big.yml)
ok $? "a 405 MB plain run passes"
[ $((${plain:-999999} - ${small:-0})) -le 8192 ]
ok $? "plain output is flat too (${plain} KiB)"

# 2. --json carries every byte, in order.
# (The job runs a script, so that its trace is the one line "+ sh FILE".)
printf 'seq 1 3000000; head -c 30000000 /dev/zero | base64; seq 5 7 3000000\n' >mixed.sh
job mixed.yml "sh $W/mixed.sh"
{
	echo "+ sh $W/mixed.sh"
	sh mixed.sh
} | sha256sum | cut -d' ' -f1 >want.sha
run mixed run --json --driver-config dc.conf mixed.yml
ok $rc "a 60 MB --json run passes"
python3 - "$W/mixed.out" >got.sha <<'PY'
import hashlib, json, sys
h = hashlib.sha256()
for line in open(sys.argv[1], encoding="utf-8"):
    e = json.loads(line)
    if e["event"] == "output" and e["job"] is not None:
        h.update(e["data"].encode("utf-8"))
print(h.hexdigest())
PY
ok $? "every event of the 60 MB run is valid JSON"
cmp -s want.sha got.sha
ok $? "the output events' data is exactly the job's output ($(cat got.sha))"

# 3. Ten secrets, masked exactly, at volume.
printf '%s\n' 'i=0' 'while [ $i -lt 400 ]; do' '	seq $i 3 4000' \
	'	printf "%dx%dsecret" $((i % 10)) $((i % 10))' '	i=$((i + 1))' \
	'done' >sec.sh
job sec.yml "sh $W/sec.sh"
set --
for i in 0 1 2 3 4 5 6 7 8 9; do set -- "$@" --secret "K$i=${i}x${i}secret"; done
{
	echo "+ sh $W/sec.sh"
	sh sec.sh
	echo
} | sed 's/[0-9]x[0-9]secret/xxxxxx/g' | sha256sum | cut -d' ' -f1 >want2.sha
run sec run --driver-config dc.conf "$@" sec.yml
ok $rc "a run with 10 secrets passes"
# The job's output is what lies between "==> s/..." and "--> passed".
sed -n '/^==> s\//,/^--> passed/p' "$W/sec.out" | sed '1d;$d' | sha256sum |
	cut -d' ' -f1 >got2.sha
cmp -s want2.sha got2.sha
ok $? "the masked output is exactly the output with each secret replaced"
grep -q 'x[0-9]secret' "$W/sec.out"
[ $? -ne 0 ]
ok $? "no secret is left in the output"
tap_end
