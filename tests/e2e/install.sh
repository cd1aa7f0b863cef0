#!/bin/sh
# install.sh - `make install` into a private DESTDIR, then use the installed
# djinn-lua (Lua modules found under <prefix>/share/djinn/lua, even though
# the tree was moved by DESTDIR) and the installed djinn.so from the stock
# sqlite3 shell, from an unrelated working directory. TAP.
set -u
TOP=${DJINN_TOP:?} B=${DJINN_BUILD:?}
T=$(mktemp -d "${TMPDIR:-/tmp}/djinn-install.XXXXXX")
trap 'rm -rf "$T"' EXIT
n=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

make -s -C "$TOP" B="$B" DESTDIR="$T/root" PREFIX=/usr install >"$T/make.log" 2>&1
ok $? "make install DESTDIR=... PREFIX=/usr"
[ -x "$T/root/usr/bin/djinn-lua" ] && [ -f "$T/root/usr/lib/djinn/djinn.so" ] &&
	[ -f "$T/root/usr/share/djinn/lua/djinn/cli.lua" ] &&
	[ -f "$T/root/usr/share/djinn/lua/djinn/drivers/os.lua" ]
ok $? "binary, extension and Lua modules are installed"

cd "$T" || exit 1
out=$("$T/root/usr/bin/djinn-lua" --version 2>&1)
case $out in "djinn-lua "*) r=0 ;; *) r=1 ;; esac
ok $r "installed djinn-lua finds its Lua modules: $out"

cat >"$T/m.yml" <<'YML'
driver:
  type: os
stages: [build]
jobs:
  - stage: build
    commands:
      - echo installed-runner-works
YML
out=$("$T/root/usr/bin/djinn-lua" run --artifacts "$T/art" "$T/m.yml" 2>&1)
r=$?
echo "$out" | grep -q '^installed-runner-works$' && [ $r -eq 0 ]
ok $? "installed djinn-lua runs a manifest (exit $r)"

qemu-img create -q -f qcow2 "$T/d.qcow2" 64M
out=$(env LD_PRELOAD="${DJINN_SHELL_PRELOAD:-}" sqlite3 "$T/reg.db" \
	".load $T/root/usr/lib/djinn/djinn" \
	"select image_register('inst', 'd', '$T/d.qcow2')" \
	"select qcow2_validate(image_path('inst', 'd'))" 2>&1)
[ "$out" = "1
1" ]
ok $? "installed djinn.so loads in the stock sqlite3 shell: $(echo $out)"
echo "1..$n"
