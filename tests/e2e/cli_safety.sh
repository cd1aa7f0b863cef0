#!/bin/sh
# needs: root (mounts, unshare)
# cli_safety.sh - the command line under hostile output, interruption,
# missing homes and damaged registries (issue 10, 2026-12-04). TAP on
# stdout.
#   defect 10: job output reached the user's terminal with its control
#     sequences (window title, clear screen, OSC 52 clipboard writes,
#     cursor moves painting a fake "--> passed" line). On a real pty
#     (script(1)) only colour may pass; a pipe keeps the bytes.
#   defect 7: `image register` exited 0 with no message on Ctrl-C (and
#     left its temporary copy in the store) and when its worker could not
#     start. Ctrl-C / SIGTERM -> 130, no .tmp-* file, no row; a worker
#     that dies or cannot start -> non-zero and a message; on a terminal
#     and off it.
#   defect 6: with HOME unset the default registry became
#     ./djinn/registry.db in the current directory. The password
#     database's home is used (a private mount namespace puts a tmpfs on
#     root's home, so the real one is never touched); with no home at all
#     the command says so.
#   defect 13 (CLI half): `image info` said "no image" when the registry
#     could not be read; errors are reported as errors.
# Needs root (unshare -m, mount, setpriv).
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/cli_safety.XXXXXX") || exit 1
# World-readable, for a user without a password entry.
NW=$(mktemp -d /tmp/djinn-cli-safety.XXXXXX) || exit 1
chmod 755 "$NW"
BG=
cleanup() {
	[ -n "$BG" ] && kill -KILL "$BG" 2>/dev/null
	rm -rf "$W" "$NW"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data"
unset NO_COLOR

. "$TOP/tests/e2e_lib.sh"
# pyok FILE EXPR: python3 EXPR is true of d, the bytes of $W/FILE
pyok() {
	python3 -c 'import re, sys
d = open(sys.argv[1], "rb").read()
sys.exit(0 if eval(sys.argv[2]) else 1)' "$W/$1" "$2"
}
# pty NAME CMD: CMD (a shell command line) on a pseudo-terminal; what the
# terminal received -> $W/NAME.out, the status -> $rc. $W/NAME.pid holds
# the command's pid (it leads its process group on the pty).
pty() {
	timeout 120 script -qec "echo \$\$ > '$W/$1.pid'; exec $2" /dev/null >"$W/$1.out" 2>&1
	rc=$?
}

# --- defect 10: control sequences on a terminal -----------------------------
cat >"$W/hostile.yml" <<'EOF'
driver:
  type: os
stages: [s]
jobs:
  - stage: s
    commands:
      - |
        printf 'title:\033]0;pwned-title\007\n'
        printf 'clear:\033[2J\033[H\n'
        printf 'clip:\033]52;c;cHduZWQ=\007\n'
        printf 'fake\033[1A\033[2K\r--> passed in 0.0s\n'
        printf 'color:\033[31mred\033[0m\n'
        printf 'c1:\302\2332J raw:\2332J\n'
        printf 'utf8:caf\303\251 \342\202\254\n'
        ( set +x; printf 'split:\033'; sleep 0.5; printf ']0;split-title\007\n' )
        ( set +x; printf 'sgr:\033[3'; sleep 0.5; printf '2mgreen\033[0m\n' )
        ( set +x; printf 'secret:%s' "${S%?????????}"; sleep 0.5; printf '%s:end\n' "${S#"${S%?????????}"}" )
EOF
SEC=s3cr3t-value-4242
pty term "'$D' run --secret S=$SEC --artifacts '$W/a' '$W/hostile.yml'"
ok $rc "a hostile job on a pty: the build passes (got $rc)"
pyok term.out 'b"title:" in d and b"secret:" in d'
ok $? "the job's output reached the pty"
pyok term.out 'not re.search(rb"\x1b(?!\[[0-9;:]*m)", d)'
r=$?
ok $r "the terminal receives no escape sequence but colour (SGR)"
[ $r = 0 ] || show term.out
pyok term.out 'b"\x07" not in d and b"\x9b" not in d'
ok $? "no BEL, no C1 CSI (raw 0x9B or UTF-8 U+009B)"
pyok term.out 'b"title:^[]0;pwned-title^G" in d'
ok $? "the window-title sequence is shown as text"
pyok term.out 'b"clear:^[[2J^[[H" in d'
ok $? "clear-screen is shown as text"
pyok term.out 'b"clip:^[]52;c;cHduZWQ=^G" in d'
ok $? "the OSC 52 clipboard write is shown as text"
pyok term.out 'b"fake^[[1A^[[2K\r--> passed" in d'
ok $? "the cursor moves of a fake '--> passed' line are shown"
pyok term.out 'b"color:\x1b[31mred\x1b[0m" in d and b"sgr:\x1b[32mgreen\x1b[0m" in d'
ok $? "colour passes, also when split across two reads"
pyok term.out 'b"c1:\\u009b2J raw:\\x9b2J" in d'
ok $? "C1 controls (UTF-8 and raw) are shown"
pyok term.out '"utf8:café €".encode() in d'
ok $? "UTF-8 text is intact"
pyok term.out 'b"split:^[]0;split-title^G" in d'
ok $? "an escape split across two reads is still caught"
pyok term.out "b\"secret:xxxxxx:end\" in d and b\"$SEC\" not in d"
ok $? "a secret split across two reads is still masked"
pyok term.out 'b"\x1b[1;36m==> s/s.1\x1b[0m" in d'
ok $? "the runner's own colours are kept"

# Not a terminal: the log keeps the job's bytes.
run pipe run --secret S=$SEC --artifacts "$W/a" "$W/hostile.yml"
ok $rc "the same build to a pipe passes"
pyok pipe.out 'b"title:\x1b]0;pwned-title\x07" in d and b"raw:\x9b2J" in d'
ok $? "to a pipe the bytes are as the job wrote them"
pyok pipe.out "b\"$SEC\" not in d"
ok $? "and secrets are masked there too"

# --- defect 7: image register, interrupted or failing --------------------------
REG=$W/reg/registry.db
STORE=$W/reg/images
qemu-img create -q -f qcow2 "$W/small.qcow2" 64M
qemu-img create -q -f qcow2 -o preallocation=full "$W/big.qcow2" 600M
ok $? "a valid 600 MB image (preallocated, slow to copy)"
run reg0 image register --registry "$REG" t small "$W/small.qcow2"
ok $rc "image register off a terminal works (got $rc)"
check "... and prints what it registered" hasF reg0.out "registered namespace: t, image: small (id"
pty reg1 "'$D' image register --registry '$REG' t small2 '$W/small.qcow2'"
ok $rc "image register on a terminal works (got $rc)"
check "... and prints what it registered" hasF reg1.out "registered namespace: t, image: small2 (id"

# wait_tmp: until the store holds a .tmp-* copy (up to 30 s); each case
# below starts with none (one left by a failed case is removed after its
# check).
wait_tmp() {
	i=0
	while [ $i -lt 600 ]; do
		ls "$STORE"/.tmp-* >/dev/null 2>&1 && return 0
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}
# clean NAME: no .tmp-* in the store and no image NAME in the registry
clean() {
	! ls "$STORE"/.tmp-* >/dev/null 2>&1 &&
		"$D" image ls --registry "$REG" t >"$W/ls.out" 2>&1 &&
		! grep -q "^t  *$1 " "$W/ls.out"
}

# Ctrl-C on a terminal: SIGINT to the foreground process group.
timeout 120 script -qec "echo \$\$ > '$W/c1.pid'; exec '$D' image register --registry '$REG' t big '$W/big.qcow2'" /dev/null >"$W/c1.out" 2>&1 &
BG=$!
wait_tmp
ok $? "terminal: the copy started (a .tmp-* file in the store)"
kill -s INT -- "-$(cat "$W/c1.pid")"
wait $BG
rc=$?
BG=
ok $((rc != 130)) "terminal: Ctrl-C mid-copy exits 130 (got $rc; was 0)"
check "terminal: it says so" hasF c1.out "interrupted; nothing was registered"
check "terminal: no .tmp-* copy left, no row" clean big
rm -f "$STORE"/.tmp-*

# Off a terminal: SIGINT, then SIGTERM, to the command. (A background
# command of a script starts with SIGINT ignored; dfl gives it the
# default disposition an interactive shell's foreground command has.)
dfl() {
	exec python3 -c 'import os, signal, sys
for s in (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ):
    signal.signal(s, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$@"
}
for s in INT TERM; do
	dfl "$D" image register --registry "$REG" t big "$W/big.qcow2" >"$W/c$s.out" 2>&1 &
	BG=$!
	wait_tmp
	ok $? "no terminal: the copy started ($s)"
	kill -$s "$BG"
	wait $BG
	rc=$?
	BG=
	ok $((rc != 130)) "no terminal: SIG$s mid-copy exits 130 (got $rc)"
	check "no terminal: SIG$s: it says so" hasF c$s.out "interrupted; nothing was registered"
	check "no terminal: SIG$s: no .tmp-* copy left, no row (was: the copy stayed)" clean big
	rm -f "$STORE"/.tmp-*
done

# The worker killed (kill -9) mid-copy: an error, a message, no copy.
dfl "$D" image register --registry "$REG" t big "$W/big.qcow2" >"$W/ck.out" 2>&1 &
BG=$!
wait_tmp
WK=$(cat "/proc/$BG/task/$BG/children" 2>/dev/null | tr -d ' ')
[ -n "$WK" ] && kill -KILL "$WK"
wait $BG
rc=$?
BG=
ok $((rc == 0 || rc == 130)) "the worker (pid $WK) killed mid-copy: a failure (got $rc)"
check "... that says so" hasF ck.out "was killed by signal KILL; nothing was registered; removed its partial copy"
check "... and leaves no .tmp-* copy, no row" clean big
rm -f "$STORE"/.tmp-*

# A worker that cannot start (no file descriptor left for its pipes).
pty nofd "sh -c 'ulimit -n 6; exec \"\$0\" \"\$@\"' '$D' image register --registry '$REG' t nofd '$W/small.qcow2'"
ok $((rc == 0)) "terminal: a worker that cannot start is a failure (got $rc; was 0)"
check "... with a message" hasF nofd.out "image register: cannot start the worker process"
(ulimit -n 4 && exec "$D" image register --registry "$REG" t nofd "$W/small.qcow2") >"$W/nofd2.out" 2>&1
rc=$?
ok $((rc == 0)) "no terminal: a worker that cannot start is a failure (got $rc)"
check "... with a message" hasF nofd2.out "image register: cannot start the worker process"
check "no temporary files in the store after all that" sh -c "! ls '$STORE'/.tmp-* >/dev/null 2>&1"

# --- defect 6: no HOME ----------------------------------------------------------
mkdir -p "$W/cwd"
chmod 777 "$W/cwd"
cat >"$W/nohome.sh" <<EOF
set -u
# A private mount namespace: a fresh tmpfs on root's passwd home.
home=\$(getent passwd "\$(id -u)" | cut -d: -f6)
mount -t tmpfs -o size=16m tmpfs "\$home" || exit 99
cd "$W/cwd" || exit 98
unset XDG_DATA_HOME XDG_CONFIG_HOME
env -u HOME "$D" image ls >"$W/nh1.out" 2>&1
echo "unset=\$?"
grep -qF "no registry yet at \$home/.local/share/djinn/registry.db" "$W/nh1.out" && echo "unset-home-registry"
HOME= XDG_DATA_HOME=rel "$D" image register - mine "$W/small.qcow2" >"$W/nh2.out" 2>&1
echo "empty=\$?"
HOME=relhome "$D" image info - mine >"$W/nh3.out" 2>&1
echo "relative=\$?"
ls -A "$W/cwd"
EOF
unshare -m sh "$W/nohome.sh" >"$W/nohome.out" 2>&1
ok $? "a private mount namespace with a tmpfs on the passwd home"
check "HOME unset: image ls works (exit 0)" hasF nohome.out "unset=0"
check "HOME unset: the registry is the passwd home's (image ls names it, creates nothing)" hasF nohome.out "unset-home-registry"
check "HOME empty, XDG_DATA_HOME relative: register works in the passwd home" hasF nohome.out "empty=0"
check "HOME relative: the same registry (info finds the image)" hasF nohome.out "relative=0"
check "nothing was created in the current directory (was ./djinn/registry.db)" test -z "$(ls -A "$W/cwd")"
[ -z "$(ls -A "$W/cwd")" ] || show nohome.out
check "... and nothing in root's real home" test ! -e "$HOME/.local/share/djinn/registry.db.cli_safety"
# No home at all: a uid without a password entry.
(cd "$W/cwd" && setpriv --reuid 54321 --regid 54321 --clear-groups env -u HOME \
	-u XDG_DATA_HOME -u XDG_CONFIG_HOME "$D" image ls) >"$W/nouser.out" 2>&1
rc=$?
ok $((rc != 2)) "no HOME and no password entry: image ls refuses (exit 2, got $rc)"
check "... saying why and what to do" grep -q "cannot locate the default registry: no home directory: HOME is not set and sys.passwd: uid 54321: no entry in the password database; set HOME or XDG_DATA_HOME, or pass --registry DB" "$W/nouser.out"
check "... and creates nothing in the current directory" test -z "$(ls -A "$W/cwd")"
printf 'driver:\n  type: os\nstages: [s]\njobs:\n  - stage: s\n    commands: [echo os-ok]\n' >"$NW/os.yml"
mkdir -m 777 "$NW/art"
(cd "$NW" && setpriv --reuid 54321 --regid 54321 --clear-groups env -u HOME \
	-u XDG_DATA_HOME -u XDG_CONFIG_HOME -u XDG_RUNTIME_DIR TMPDIR="$NW/art" \
	"$D" run --artifacts "$NW/art" "$NW/os.yml") >"$W/nouser2.out" 2>&1
rc=$?
ok $rc "no home at all: an os build still runs (got $rc)"
check "... with a warning about the driver configuration" hasF nouser2.out "warning: cannot locate the default driver.conf: no home directory"

# --- defect 13 (CLI): errors are not "no image" -----------------------------------
cp -r "$W/reg" "$W/dmg"
sqlite3 "$W/dmg/registry.db" "DROP VIEW image_list; CREATE VIEW image_list AS SELECT json('not json') AS namespace, json('not json') AS owner, json('not json') AS name"
run info_dmg image info --registry "$W/dmg/registry.db" t small
ok $((rc != 1)) "info on a damaged registry: exit 1 (got $rc)"
check "... with the registry's error" hasF info_dmg.err "image info: malformed JSON"
check "... not 'no image'" sh -c "! grep -q 'no image' '$W/info_dmg.err'"
run ls_dmg image ls --registry "$W/dmg/registry.db"
ok $((rc != 1)) "ls on a damaged registry: exit 1 with the error"
check "... the error" hasF ls_dmg.err "image ls: malformed JSON"
run info_ns image info --registry "$REG" 'bad ns' small
ok $((rc != 1)) "info with an invalid namespace: exit 1"
check "... names the namespace error, not 'no image'" sh -c "grep -q 'image info: namespace:' '$W/info_ns.err' && ! grep -q 'no image' '$W/info_ns.err'"
run info_missing image info --registry "$REG" t nosuch
ok $((rc != 1)) "info of a real absence: exit 1"
check "... 'no image'" hasF info_missing.err "image info: no image nosuch (namespace: t)"
run info_ok image info --registry "$REG" t small
ok $rc "info of a present image: exit 0"
check "... its row and header" sh -c "grep -q '^name  *small$' '$W/info_ok.out' && grep -q '^qcow2.virtual_size  *67108864$' '$W/info_ok.out'"
chmod u+w "$STORE"/*.qcow2 2>/dev/null
for f in "$STORE"/*.qcow2; do : >"$f"; done
run info_trunc image info --registry "$REG" t small
ok $((rc != 1)) "info when the stored file is damaged: exit 1 (was 0, header silently left out)"
check "... says the file cannot be read" hasF info_trunc.err "image info: cannot read the stored file"

tap_end
