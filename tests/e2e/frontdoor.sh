#!/bin/sh
# frontdoor.sh - one front door for a build (issue 12): the same manifest
# run by `djinn-lua run` and by djinn.run from a script
# (`djinn-lua SCRIPT.lua`) gets the same defaults and the same result:
#   - the default registry ($HOME/.local/share/djinn/registry.db): the
#     qemu image of examples/hello.yml (namespace demo, image tiny) is
#     found and verified (before, djinn.run said "couldn't find image
#     tiny" where the CLI found it); the build then stops where the
#     default driver.conf's qemu binary does not exist, so no VM boots;
#   - the default driver.conf ($HOME/.config/djinn/driver.conf): its qemu
#     binary and its `limits { max_output }` apply to both;
#   - the crash reaper runs before a script's build too;
#   - one build id: every --json event carries "build", the same within a
#     build, and it is the name of the build's state directory and the
#     "build" of its state file (the job reads them).
# Real qemu-img image, real registry, real /bin/sh jobs. TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
EX=$TOP/examples
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/frontdoor.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
. "$TOP/tests/e2e_lib.sh"

# A home of our own: the defaults come from it, never from the real one.
mkdir -p "$W/home/.config/djinn" "$W/run"
chmod 700 "$W/run"
export HOME="$W/home" XDG_RUNTIME_DIR="$W/run"
unset XDG_DATA_HOME XDG_CONFIG_HOME
REG=$HOME/.local/share/djinn/registry.db
CONF=$HOME/.config/djinn/driver.conf

# The script: djinn.run with only what a script must say.
cat >"$W/build.lua" <<'EOF'
local djinn = require "djinn"
local r, _, code = djinn.run(arg[1], { json = true, objects = arg[2],
                                       artifacts = arg[3] })
return r and r.exit_code or code
EOF

# norm FILE: the JSON events of FILE without what differs between two
# builds (the build id, durations, whether the image hash was cached).
norm() {
	python3 - "$W/$1" <<'EOF'
import json, re, sys
out = []
for line in open(sys.argv[1]):
    e = json.loads(line)
    e.pop("build", None)
    e.pop("duration", None)
    # Output arrives in pieces of any size: one event per run of output.
    if (e["event"] == "output" and out and out[-1]["event"] == "output"
            and out[-1].get("job") == e.get("job")):
        out[-1]["data"] += e["data"]
    else:
        out.append(e)
for e in out:
    if "data" in e:
        e["data"] = re.sub(r"\((checked in [^)]*|unchanged since the last check)\)",
                           "(checked)", e["data"])
    print(json.dumps(e, sort_keys=True))
EOF
}

# builds FILE: the distinct "build" values of FILE's events ("-" for an
# event without one), one a line.
builds() {
	python3 - "$W/$1" <<'EOF'
import json, sys
ids = []
for line in open(sys.argv[1]):
    b = json.loads(line).get("build", "-")
    if b not in ids:
        ids.append(b)
print("\n".join(ids))
EOF
}

# --- the default registry and driver.conf, qemu ------------------------
qemu-img create -q -f qcow2 "$W/tiny.qcow2" 16M
run reg image register demo tiny "$W/tiny.qcow2"
ok $rc "image register demo tiny into the default registry (got $rc)"
check "... which is $REG" test -f "$REG"
printf 'driver qemu {\n    binary "%s/no-such-qemu"\n    cpus 1\n    memory 256\n    accel "tcg"\n}\nlimits {\n    max_output 1KB\n}\n' "$W" >"$CONF"

run cli run --json --objects "$EX/files" --artifacts "$W/a1" "$EX/hello.yml"
cli_rc=$rc
run lib "$W/build.lua" "$EX/hello.yml" "$EX/files" "$W/a2"
lib_rc=$rc
ok $((cli_rc != 3)) "djinn-lua run hello.yml: exit 3 where the qemu binary is missing (got $cli_rc)"
ok $((lib_rc != 3)) "djinn.run hello.yml from a script: the same exit 3 (got $lib_rc)"
check "the CLI found the image in the default registry and verified it" hasF cli.out "Image tiny (namespace: demo): SHA-256 matches the registry"
check "the script found it there too (not \"couldn't find image tiny\")" hasF lib.out "Image tiny (namespace: demo): SHA-256 matches the registry"
check "... and neither said couldn't find" sh -c "! grep -q \"couldn't find\" '$W/cli.out' '$W/lib.out'"
check "the script read the default driver.conf (its qemu binary)" hasF lib.out "$W/no-such-qemu"
norm cli.out >"$W/cli.norm"
norm lib.out >"$W/lib.norm"
check "the two builds print the same events (but for the id and times)" cmp -s "$W/cli.norm" "$W/lib.norm"
cmp -s "$W/cli.norm" "$W/lib.norm" || diff "$W/cli.norm" "$W/lib.norm" | cut -c1-400 | sed 's/^/# /'
check "... and a qemu build_end that failed at the machine" has lib.norm '"event": "build_end".*"exit_code": 3'

# One build id per build, on every event.
builds cli.out >"$W/cli.ids"
builds lib.out >"$W/lib.ids"
check "every event of the CLI build carries one build id" has cli.ids '^[0-9a-f]\{16\}$'
ok "$(($(wc -l <"$W/cli.ids") != 1))" "... the same on every event ($(tr '\n' ' ' <"$W/cli.ids"))"
ok "$(($(wc -l <"$W/lib.ids") != 1))" "every event of the script's build carries one id too ($(tr '\n' ' ' <"$W/lib.ids"))"
check "... and the two builds have different ids" sh -c "! cmp -s '$W/cli.ids' '$W/lib.ids'"

# --- os: the build id is the state directory's; max_output; the reaper ---
cat >"$W/os.yml" <<'EOF'
driver:
  type: os
stages: [s]
jobs:
  - stage: s
    name: state
    commands:
      - cd "$XDG_RUNTIME_DIR/djinn" && for d in *; do echo "dir=$d"; cat "$d/state"; echo; done
  - stage: s
    name: big
    commands:
      - "i=0; while [ $i -lt 200 ]; do echo 0123456789abcdef0123456789; i=$((i+1)); done"
EOF
# A build whose runner died: a state directory with a dead runner pid.
dead=$(sh -c 'echo $$')
mkdir -m 700 -p "$W/run/djinn/00dead00dead0000"
printf '{"version":1,"build":"00dead00dead0000","driver":"os","runner":{"pid":%s,"start":"1"}}\n' "$dead" >"$W/run/djinn/00dead00dead0000/state"
chmod 700 "$W/run/djinn"
run oslib "$W/build.lua" "$W/os.yml" "$W" "$W/a3"
ok $rc "djinn.run os.yml from a script passes (got $rc)"
check "the script's djinn.run reaped the dead build's state directory" test ! -e "$W/run/djinn/00dead00dead0000"
python3 - "$W/oslib.out" >"$W/oslib.check" 2>&1 <<'EOF'
import json, re, sys
events = [json.loads(l) for l in open(sys.argv[1])]
ids = {e.get("build") for e in events}
assert len(ids) == 1 and None not in ids, ids
bid = ids.pop()
out = "".join(e.get("data", "") for e in events
              if e["event"] == "output" and e.get("job") == "state")
dirs = re.findall(r"^dir=(\w+)$", out, re.M)
assert dirs == [bid], (dirs, bid)
state = json.loads(re.search(r"^(\{.*\})$", out, re.M).group(1))
assert state["build"] == bid, (state, bid)
print("ok", bid)
EOF
ok $? "the build id of every event is the state directory's name and its state file's build ($(cat "$W/oslib.check" | tr '\n' ' '))"
check "the default driver.conf's max_output applies to the script's build" hasF oslib.out "[djinn: output truncated after"
run oscli run --json --artifacts "$W/a4" "$W/os.yml"
ok $rc "djinn-lua run os.yml passes (got $rc)"
check "... with the same max_output" hasF oscli.out "[djinn: output truncated after"
norm oscli.out | grep -v '"job": "state"' >"$W/oscli.norm"
norm oslib.out | grep -v '"job": "state"' | sed "s|$W/a3|$W/a4|g" >"$W/oslib.norm"
# The workspace is a fresh temporary directory in each build.
sed -i 's|/djinn-os-[A-Za-z0-9]*/|/djinn-os-X/|' "$W/oscli.norm" "$W/oslib.norm"
check "the two os builds print the same events (but for the state job)" cmp -s "$W/oscli.norm" "$W/oslib.norm"
cmp -s "$W/oscli.norm" "$W/oslib.norm" || diff "$W/oscli.norm" "$W/oslib.norm" | cut -c1-400 | sed 's/^/# /'

tap_end
