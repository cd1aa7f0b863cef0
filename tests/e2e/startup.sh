#!/bin/sh
# startup.sh - what a start of djinn-lua maps (issue 13: start-up), as
# guards that are not timings. libcurl, libssh and libarchive drag about
# 40 shared objects in (gnutls, krb5, ldap, libxml2 ...): djinn.http,
# djinn.ssh and djinn.tar are modules of their own (runtime/lazy.c),
# loaded when first required.
#   - the binary does not name libcurl, libssh or libarchive (readelf's
#     NEEDED entries; the modules do);
#   - `check`, `image ls`, `image register` of a file and an os-driver
#     `run` with objects and artifacts load none of the modules (the
#     dynamic loader's own log, LD_DEBUG=files), and a require of each
#     does load its file (the control: the log can show it);
#   - an image import from a URL (dj_fetch, forwarded to mod/http.so)
#     works from djinn-lua, over a real HTTP server on loopback.
# TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/startup.XXXXXX") || exit 1
HTTPPID=
cleanup() {
	[ -n "$HTTPPID" ] && kill "$HTTPPID" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
. "$TOP/tests/e2e_lib.sh"
export HOME="$W/home" XDG_CONFIG_HOME="$W/home/.config" \
	XDG_DATA_HOME="$W/home/.local/share"
mkdir -p "$HOME"

needed=$(readelf -d "$D" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
echo "$needed" | grep -q '^liblua5\.4' &&
	! echo "$needed" | grep -q '^libcurl\|^libssh\|^libarchive'
ok $? "djinn-lua links none of libcurl, libssh, libarchive (NEEDED: $(echo $needed))"
for m in ssh http tar; do
	lib=$(case $m in ssh) echo libssh ;; http) echo libcurl ;; tar) echo libarchive ;; esac)
	readelf -d "$B/mod/$m.so" | grep NEEDED | grep -q "\[$lib"
	ok $? "mod/$m.so names $lib"
done

# The modules a command loaded, from the loader's log ("" when none).
loaded() {
	grep -o 'file=[^ ]*/mod/[a-z]*\.so .*dynamically loaded' "$1" |
		sed 's|file=.*/mod/\([a-z]*\)\.so.*|\1|' | sort -u | tr '\n' ' '
}
mods_of() {
	name=$1
	shift
	LD_DEBUG=files LD_DEBUG_OUTPUT="$W/$name.ld" "$D" "$@" \
		>"$W/$name.out" 2>"$W/$name.err"
	rc=$?
	cat "$W/$name.ld".* >"$W/$name.log" 2>/dev/null
	rm -f "$W/$name.ld".*
}

cat >"$W/m.yml" <<'YML'
driver:
  type: os
stages: [build]
objects:
  - in.txt
jobs:
  - stage: build
    commands:
      - cp in.txt out.txt
    artifacts:
      - out.txt
YML
mkdir -p "$W/objects"
echo input >"$W/objects/in.txt"
qemu-img create -q -f qcow2 "$W/a.qcow2" 1M || exit 1

mods_of check check "$W/m.yml"
[ $rc -eq 0 ] && [ -z "$(loaded "$W/check.log")" ] && [ -s "$W/check.log" ]
ok $? "check loads no module (exit $rc; loaded: $(loaded "$W/check.log"))"
mods_of register image register --registry "$W/reg.db" t/ci a "$W/a.qcow2"
[ $rc -eq 0 ] && [ -z "$(loaded "$W/register.log")" ]
ok $? "image register of a file loads no module (exit $rc; loaded: $(loaded "$W/register.log"))"
mods_of ls image ls --registry "$W/reg.db"
[ $rc -eq 0 ] && [ -z "$(loaded "$W/ls.log")" ] && grep -q '^t/ci  *a ' "$W/ls.out"
ok $? "image ls loads no module (exit $rc; loaded: $(loaded "$W/ls.log"))"
mods_of run run --objects "$W/objects" --artifacts "$W/art" "$W/m.yml"
[ $rc -eq 0 ] && [ -z "$(loaded "$W/run.log")" ] &&
	[ "$(cat "$W/art/out.txt" 2>/dev/null)" = input ]
ok $? "an os-driver run with objects and artifacts loads no module (exit $rc; loaded: $(loaded "$W/run.log"))"

cat >"$W/req.lua" <<'LUA'
for _, m in ipairs { "ssh", "http", "tar" } do require("djinn." .. m) end
LUA
mods_of req "$W/req.lua"
[ $rc -eq 0 ] && [ "$(loaded "$W/req.log")" = "http ssh tar " ]
ok $? "require loads each module's file (the control; loaded: $(loaded "$W/req.log"))"

# An import from a URL: the registry's dj_fetch, in mod/http.so.
mkdir -p "$W/www"
cp "$W/a.qcow2" "$W/www/a.qcow2"
python3 -m http.server 0 --bind 127.0.0.1 --directory "$W/www" \
	>"$W/http.log" 2>&1 &
HTTPPID=$!
port=
wait_for 10 sh -c "grep -q 'port [0-9]' '$W/http.log'"
port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$W/http.log" | head -n 1)
mods_of url image register --registry "$W/reg.db" t/ci b \
	"http://127.0.0.1:$port/a.qcow2"
[ $rc -eq 0 ] && [ "$(loaded "$W/url.log")" = "http " ] &&
	grep -q 'GET /a.qcow2' "$W/http.log"
ok $? "image register of a URL downloads through mod/http.so (exit $rc; loaded: $(loaded "$W/url.log"))"
[ $rc -eq 0 ] || show url.err
tap_end
