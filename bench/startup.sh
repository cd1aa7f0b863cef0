#!/bin/bash
# bench/startup.sh [BUILD] - the start of djinn-lua (issue 13: start-up),
# side by side with the programs a user would compare it to:
#   djinn-lua --version       vs  the sqlite3 shell running "select 1"
#   djinn-lua SCRIPT.lua      vs  lua5.4 running the same empty script
# djinn-lua maps 12 shared objects at start: djinn.ssh, djinn.http and
# djinn.tar (libssh, libcurl, libarchive and about 40 objects behind them)
# are loaded only when first required (runtime/lazy.c). The last row
# times a require of all three, what a start cost before. Each side runs
# RUNS (default 7) x 10 times in a row per sample (bench/lib.sh).
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$TOP/build}" && pwd) || exit 2
RUNS=${RUNS:-7}
D=$B/djinn-lua
[ -x "$D" ] || { echo "build $B first: make" >&2; exit 2; }
. "$TOP/bench/lib.sh"
W=$(mktemp -d "${TMPDIR:-/tmp}/startup-bench.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
echo 'return 0' >"$W/empty.lua"
echo 'require "djinn.ssh"; require "djinn.http"; require "djinn.tar"' >"$W/heavy.lua"
ten() { for _ in 1 2 3 4 5 6 7 8 9 10; do "$@" >/dev/null || return 1; done; }
ours_version() { ten "$D" --version; }
ref_sqlite() { ten sqlite3 :memory: 'select 1'; }
ours_script() { ten "$D" "$W/empty.lua"; }
ref_lua() { ten lua5.4 "$W/empty.lua"; }
ours_heavy() { ten "$D" "$W/heavy.lua"; }
bench_compare "start: djinn-lua --version (x10)" "$RUNS" 0 ours_version ref_sqlite "sqlite3-select-1"
bench_compare "start: djinn-lua empty.lua (x10)" "$RUNS" 0 ours_script ref_lua "lua5.4"
bench_compare "start: + require ssh, http, tar (x10)" "$RUNS" 0 ours_heavy ours_script "djinn-lua-empty"
