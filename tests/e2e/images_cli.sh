#!/bin/sh
# images_cli.sh - the image commands as a new user meets them (issue 11,
# items 4.4, 4.5, 4.6, 4.7, 4.10 and 4.12), with the real djinn-lua, real
# qemu-img images, the stock sqlite3 shell and a real pty (script(1)):
#   4.4  names printed as a manifest writes them; an image not found where
#        the manifest says is listed where it is, with the keys that find it
#   4.5  image fsck [--repair] for djinn_fsck
#   4.6  read-only commands never create a registry
#   4.7  ls - is personal images only; owners shown; columns fit long
#        names; --json on every image command
#   4.10 image register shows bytes and rate on a terminal, not in a pipe
#   4.12 one prefix, then the message
# TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/images_cli.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
export XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data"
. "$TOP/tests/e2e_lib.sh"

# pyjson FILE EXPR: python3 evaluates EXPR with d = the JSON in $W/FILE.
pyjson() {
	python3 - "$W/$1" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)
EOF
}

REG=$W/reg/registry.db
ME=$(id -un)
qemu-img create -q -f qcow2 "$W/a.qcow2" 16M
qemu-img create -q -f qcow2 "$W/b.qcow2" 32M
LONG=an-image-name-much-longer-than-the-twenty-four-columns-of-old
run r1 image register --registry "$REG" demo tiny "$W/a.qcow2"
ok $rc "register demo tiny (got $rc)"
check "... printed as a manifest writes it" hasF r1.out "registered namespace: demo, image: tiny (id"
run r2 image register --registry "$REG" demo@alice tiny "$W/b.qcow2"
ok $rc "register tiny in alice's namespace demo (got $rc)"
check "... printed with the owner, as a manifest writes it" hasF r2.out "registered namespace: demo@alice, image: tiny (id"
run r3 image register --registry "$REG" - "$LONG" "$W/a.qcow2"
ok $rc "register a personal image with a long name (got $rc)"
check "... printed as personal" hasF r3.out "registered image: $LONG (personal, id"

# --- 4.12: one prefix -------------------------------------------------------
printf 'not an image\n' >"$W/raw.img"
run bad image register --registry "$REG" demo raw "$W/raw.img"
ok $((rc != 1)) "register a raw file: exit 1 (got $rc)"
check "one prefix, then the message" hasF bad.err "djinn-lua: image register: $W/raw.img: rejected, not an acceptable QCOW2 v3 image"
check "... no internal names stacked in it" sh -c "! grep -E 'registry\\.register|image_register:' '$W/bad.err'"
run badns image info --registry "$REG" 'bad ns' tiny
check "a bad namespace: one prefix" sh -c "grep -q '^djinn-lua: image info: namespace:' '$W/badns.err' && ! grep -q 'registry\\.\\|image_path:' '$W/badns.err'"

# --- 4.7: ls --------------------------------------------------------------
run ls image ls --registry "$REG"
ok $rc "image ls (got $rc)"
check "... header names the manifest keys and the owner" has ls.out '^NAMESPACE  *IMAGE  *OWNER  *SIZE'
check "... your namespace as a manifest writes it" has ls.out "^demo  *tiny  *$ME "
check "... another owner's namespace as path@owner" has ls.out '^demo@alice  *tiny  *alice '
check "... a long name does not break the columns" python3 -c "
import sys
lines = open('$W/ls.out').read().splitlines()
start = lines[0].index('OWNER')
for l in lines[1:]:
    cols = l.split()
    assert l.index(cols[2], len(cols[0]) + len(cols[1])) == start, l
"
run lsp image ls --registry "$REG" -
ok $rc "image ls - (got $rc)"
check "... lists the personal image" hasF lsp.out "$LONG"
check "... and no namespaced image (help: personal images only)" sh -c "! grep -q 'tiny' '$W/lsp.out'"
run lsn image ls --registry "$REG" demo
check "image ls demo: your namespace only, not alice's demo" sh -c "grep -q '^demo  *tiny' '$W/lsn.out' && ! grep -q alice '$W/lsn.out'"
run lsa image ls --registry "$REG" demo@alice
check "image ls demo@alice: alice's" sh -c "grep -q '^demo@alice  *tiny' '$W/lsa.out' && [ \$(wc -l <'$W/lsa.out') -eq 2 ]"
run lsj image ls --registry "$REG" --json
ok $rc "image ls --json (got $rc)"
check "... a JSON array of three images with owner and manifest keys" pyjson lsj.out \
	"len(d) == 3 and {r['owner'] for r in d} == {'$ME', 'alice'} and 'namespace: demo@alice, image: tiny' in [r['manifest'] for r in d]"
run lsj0 image ls --registry "$REG" --json nosuch
check "image ls --json of an empty namespace: []" pyjson lsj0.out "d == []"
run infj image info --registry "$REG" --json demo tiny
ok $rc "image info --json (got $rc)"
check "... one object with the path and the QCOW2 header" pyjson infj.out \
	"d['name'] == 'tiny' and d['owner'] == '$ME' and d['qcow2']['version'] == 3 and d['path'].endswith('.qcow2')"
run chkj image check --json "$W/raw.img"
ok $((rc != 1)) "image check --json of a raw file: exit 1 (got $rc)"
check "... the validator's report as JSON" pyjson chkj.out "d['valid'] is False and len(d['errors']) >= 1"
run regj image register --registry "$REG" --json team j "$W/b.qcow2"
check "image register --json: id, name, sha256" pyjson regj.out \
	"isinstance(d['id'], int) and d['name'] == 'j' and len(d['sha256']) == 64"
run rmj image rm --registry "$REG" --json team j
check "image rm --json" pyjson rmj.out "d['removed'] is True and d['name'] == 'j'"

# --- 4.4: not found where the manifest says --------------------------------
run nf image info --registry "$REG" - tiny
ok $((rc != 1)) "info of a personal tiny that is not there: exit 1 (got $rc)"
check "... lists where images called tiny are, as a manifest writes them" sh -c \
	"grep -qF 'namespace: demo, image: tiny' '$W/nf.err' && grep -qF 'namespace: demo@alice, image: tiny' '$W/nf.err'"
mkdir -p "$W/disks"
printf 'driver { qemu { disks "%s" } }\n' "$W/disks" >"$W/d.conf"
for m in "demo/tiny" "tiny"; do
	f=$W/m-$(echo "$m" | tr / _).yml
	printf 'driver:\n  type: qemu\n  image: %s\nstages: [s]\njobs:\n  - stage: s\n    commands: [true]\n' "$m" >"$f"
done
run q1 run --registry "$REG" --driver-config "$W/d.conf" "$W/m-demo_tiny.yml"
ok $((rc != 3)) "image: demo/tiny: not found (driver error, exit 3; got $rc)"
check "... says a name with / is a base image path" hasF q1.out '"demo/tiny" is read as a base image path'
check "... and how a manifest names the registered tiny" hasF q1.out "namespace: demo, image: tiny"
run q2 run --registry "$REG" --driver-config "$W/d.conf" "$W/m-tiny.yml"
ok $((rc != 3)) "image: tiny without namespace: not found (got $rc)"
check "... says tiny exists in namespace demo" hasF q2.out "namespace: demo, image: tiny"

# --- 4.5: fsck --------------------------------------------------------------
run f0 image fsck --registry "$REG"
ok $rc "image fsck on a sound registry: exit 0 (got $rc)"
check "... says ok" has f0.out '^ok$'
STORE=$(sql_shell "$REG" -cmd ".load $B/djinn" "SELECT djinn_store()")
cp "$W/b.qcow2" "$STORE/$(printf '%064d' 0).qcow2"
run f1 image fsck --registry "$REG"
ok $((rc != 1)) "image fsck with an orphan file: exit 1 (got $rc)"
check "... names the orphan" hasF f1.out "$(printf '%064d' 0).qcow2"
check "... and says how to repair" hasF f1.out "image fsck --repair"
run f1j image fsck --registry "$REG" --json
check "image fsck --json: djinn_fsck's report" pyjson f1j.out "d['ok'] is False and len(d['orphans']) == 1"
run f2 image fsck --repair --registry "$REG"
ok $rc "image fsck --repair: exit 0 (got $rc)"
check "... removed the orphan" sh -c "[ ! -e '$STORE/$(printf '%064d' 0).qcow2' ]"
check "... and the images' files are all there" sh -c "[ \$(ls '$STORE' | grep -c 'qcow2$') -eq 2 ]"
run f3 image fsck --registry "$REG"
ok $rc "image fsck after the repair: exit 0 (got $rc)"

# --- 4.6: read-only commands create nothing --------------------------------
for c in "ls" "info demo tiny" "rm demo tiny" "fsck"; do
	set -- $c
	run ro image "$@" --registry "$W/typo/registry.db"
	ok $((rc != 1)) "image $1 on a mistyped --registry: exit 1 (got $rc)"
	check "... says the registry does not exist" hasF ro.err "the registry $W/typo/registry.db does not exist"
	check "... and creates nothing" sh -c "[ ! -e '$W/typo' ]"
done
XDG_DATA_HOME=$W/fresh run fresh image ls
ok $rc "image ls before anything was registered (default registry): exit 0 (got $rc)"
check "... says there is no registry yet" hasF fresh.err "no registry yet at $W/fresh/djinn/registry.db"
check "... and creates none" sh -c "[ ! -e '$W/fresh' ]"

# --- 4.10: register progress on a terminal, none in a pipe -----------------
qemu-img create -q -f qcow2 -o preallocation=full "$W/big.qcow2" 300M
timeout 120 script -qec "'$D' image register --registry '$REG' demo big '$W/big.qcow2'" /dev/null >"$W/tty.out" 2>&1
ok $? "register a 300 MB image on a pty"
check "... shows bytes copied of the total and a rate" has tty.out 'registering big [0-9.]* [KMG]*i\{0,1\}B of 300\.[0-9] MiB ([0-9.]* [KMG]*i\{0,1\}B/s)'
run pipe image register --registry "$REG" demo big2 "$W/big.qcow2"
ok $rc "the same off a terminal (got $rc)"
check "... prints no progress" sh -c "! grep -q 'registering' '$W/pipe.out' '$W/pipe.err'"

tap_end
