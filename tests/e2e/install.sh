#!/bin/sh
# install.sh - `make install` into a private DESTDIR, then use the installed
# djinn-lua (Lua modules found under <prefix>/share/djinn/lua, even though
# the tree was moved by DESTDIR) and the installed djinn.so from the stock
# sqlite3 shell, from an unrelated working directory. Then the man page,
# the bash completion, the examples and the image builder of
# `make install PREFIX=...`, and `make uninstall` leaving no file. TAP.
set -u
TOP=${DJINN_TOP:?} B=${DJINN_BUILD:?}
T=$(mktemp -d "${TMPDIR:-/tmp}/djinn-install.XXXXXX")
trap 'rm -rf "$T"' EXIT
n=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

make -s -C "$TOP" B="$B" DESTDIR="$T/root" PREFIX=/usr install >"$T/make.log" 2>&1
ok $? "make install DESTDIR=... PREFIX=/usr"
[ -x "$T/root/usr/bin/djinn-lua" ] && [ -f "$T/root/usr/lib/djinn/djinn.so" ] &&
	[ -x "$T/root/usr/lib/djinn/djinn-keeper" ] &&
	[ -f "$T/root/usr/share/djinn/lua/djinn/cli.lua" ] &&
	[ -f "$T/root/usr/share/djinn/lua/djinn/drivers/os.lua" ]
ok $? "binary, extension, the os driver's djinn-keeper and Lua modules are installed"

cd "$T" || exit 1
out=$("$T/root/usr/bin/djinn-lua" --version 2>&1)
case $out in "djinn-lua "*) r=0 ;; *) r=1 ;; esac
ok $r "installed djinn-lua finds its Lua modules: $out"

# djinn.ssh, djinn.http and djinn.tar are shared objects of their own,
# found beside the moved tree (<bin>/../lib/djinn), loaded on require.
cat >"$T/mods.lua" <<'LUA'
local names = {}
for _, m in ipairs { "ssh", "http", "tar" } do
    local mod = require("djinn." .. m)
    names[#names + 1] = m .. "=" .. type(mod)
end
print(table.concat(names, " "))
LUA
out=$("$T/root/usr/bin/djinn-lua" "$T/mods.lua" 2>&1)
[ "$out" = "ssh=table http=table tar=table" ]
ok $? "installed djinn-lua loads djinn.ssh, djinn.http, djinn.tar: $out"
# Without its module file, a require says which file it looked for where.
mv "$T/root/usr/lib/djinn/tar.so" "$T/tar.so.away"
out=$("$T/root/usr/bin/djinn-lua" "$T/mods.lua" 2>&1)
r=$?
mv "$T/tar.so.away" "$T/root/usr/lib/djinn/tar.so"
echo "$out" | grep -q "module djinn.tar: tar.so is missing (looked for .*/usr/bin/mod/tar.so, .*/usr/bin/../lib/djinn/tar.so, .*/lib/djinn/tar.so;" &&
	[ $r -ne 0 ]
ok $? "a missing module file is named with every place tried (exit $r)"

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
# make install PREFIX=... (no DESTDIR): man page, completion, examples,
# image builder; then make uninstall removes every file it installed.
P=$T/prefix
make -s -C "$TOP" B="$B" PREFIX="$P" install >"$T/make2.log" 2>&1
ok $? "make install PREFIX=$P"
[ -f "$P/share/man/man1/djinn-lua.1" ] &&
	[ -f "$P/share/bash-completion/completions/djinn-lua" ] &&
	[ -f "$P/share/djinn/examples/hello.yml" ] &&
	[ -f "$P/share/djinn/examples/files/greeting.txt" ] &&
	[ -x "$P/share/djinn/vm/build-image.sh" ]
ok $? "man page, bash completion, examples and image builder are installed"
out=$(MANPATH="$P/share/man" MANWIDTH=80 timeout 60 man -P cat djinn-lua 2>&1)
r=$?
echo "$out" | grep -q '^NAME' && echo "$out" | grep -q 'EXIT STATUS' &&
	echo "$out" | grep -q -- '--max-artifacts-total' && [ $r -eq 0 ]
ok $? "MANPATH=\$P/share/man man djinn-lua shows the page (exit $r)"
bash -c '. "$1" && complete -p djinn-lua' sh \
	"$P/share/bash-completion/completions/djinn-lua" 2>&1 |
	grep -q -- '-F _djinn_lua djinn-lua'
ok $? "the installed completion registers itself in bash"
cmp -s "$P/share/djinn/lua/djinn/cli.lua" "$TOP/lua/djinn/cli.lua"
ok $? "the Lua modules are installed as they are in the tree"

make -s -C "$TOP" B="$B" PREFIX="$P" uninstall >"$T/make3.log" 2>&1
ok $? "make uninstall PREFIX=$P"
left=$(find "$P" ! -type d | sed "s|^$P/||")
[ -z "$left" ] && [ ! -e "$P/share/djinn" ] && [ ! -e "$P/lib/djinn" ]
ok $? "make uninstall leaves no file (left: $(echo $left))"
make -s -C "$TOP" B="$B" PREFIX="$P" uninstall >"$T/make4.log" 2>&1
ok $? "make uninstall again (nothing installed) succeeds"
echo "1..$n"
