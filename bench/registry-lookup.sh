#!/bin/bash
# bench/registry-lookup.sh [BUILD] - registry lookups side by side with the
# same lookups in plain SQL (issue 13), on a registry of 10,000 images
# (one 1 MiB qcow2 registered under 10,000 names; the store keeps one file).
#   image_path x100000   sqlite3 shell, one statement   vs the same lookup
#                        in plain SQL (namespace, then the images index)
#   db:resolve x20000    djinn-lua, one call each        vs db:query of the
#                        plain SQL (each also prepares its statement)
#   image ls             djinn-lua image ls              vs sqlite3 listing
#                        the image_list view
#   register             one image_register of a 1 MiB image (copy, hash,
#                        validate, fsync, commit)      vs cp + sync of it
# RUNS (default 7) runs of each side.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$TOP/build}" && pwd) || exit 2
RUNS=${RUNS:-7}
D=$B/djinn-lua
[ -x "$D" ] && [ -f "$B/djinn.so" ] || { echo "build $B first: make" >&2; exit 2; }
. "$TOP/bench/lib.sh"
W=$(mktemp -d "${TMPDIR:-/tmp}/registry-bench.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
cd "$W" || exit 1

qemu-img create -q -f qcow2 tiny.qcow2 1M || exit 1
echo "registering 10,000 images ..." >&2
{
	echo ".load $B/djinn"
	echo "SELECT count(image_register('bench/ci', 'img' || value, '$W/tiny.qcow2')) FROM generate_series(1, 1) ;"
	for i in $(seq 2 10000); do echo "SELECT image_register('bench/ci', 'img$i', '$W/tiny.qcow2');"; done
} | sqlite3 -batch reg.db >/dev/null || exit 1
[ "$(sqlite3 reg.db 'SELECT count(*) FROM images')" = 10000 ] || { echo "registration failed" >&2; exit 1; }
ME=$(sqlite3 -batch reg.db ".load $B/djinn" "SELECT owner FROM images LIMIT 1")
STORE=$W/images

sql_ours() {
	sqlite3 -batch reg.db ".load $B/djinn" \
		"SELECT count(image_path('bench/ci', 'img' || (value % 10000 + 1))) FROM generate_series(1, 100000);"
}
sql_raw() {
	sqlite3 -batch reg.db "SELECT count((SELECT '$STORE/' || i.sha256 || '.qcow2'
		FROM namespaces AS n, images AS i
		WHERE n.owner = '$ME' AND n.path = 'bench/ci' AND i.owner = n.owner
		AND ifnull(i.namespace_id, 0) = +n.id AND i.name = 'img' || (value % 10000 + 1)))
		FROM generate_series(1, 100000);"
}
cat >resolve.lua <<EOF
local registry = require "djinn.registry"
local db = assert(registry.open("$W/reg.db"))
local raw = arg[1] == "raw"
local me = registry.user()
for i = 1, 20000 do
    local name = "img" .. (i % 10000 + 1)
    if raw then
        assert(db:query("SELECT '$STORE/' || i.sha256 || '.qcow2' AS p FROM namespaces AS n, images AS i WHERE n.owner = ? AND n.path = ? AND i.owner = n.owner AND ifnull(i.namespace_id, 0) = +n.id AND i.name = ?", me, "bench/ci", name)[1])
    else
        assert(db:resolve("bench/ci", name))
    end
end
EOF
lua_ours() { "$D" resolve.lua; }
lua_raw() { "$D" resolve.lua raw; }
ls_ours() { "$D" image ls --registry reg.db; }
ls_raw() { sqlite3 reg.db "SELECT * FROM image_list"; }
reg_ours() {
	sqlite3 -batch reg.db ".load $B/djinn" \
		"SELECT image_register('bench/one', 'r$(date +%s%N)', '$W/tiny.qcow2');"
}
reg_raw() {
	cp tiny.qcow2 "copy.$(date +%s%N)" && sync -f copy.*
}

echo "registry: $RUNS runs each, 10,000 images"
bench_compare "registry: image_path x100000 (sqlite3)" "$RUNS" 0 sql_ours sql_raw "plain SQL"
bench_compare "registry: db:resolve x20000 (Lua)" "$RUNS" 0 lua_ours lua_raw "db:query"
bench_compare "registry: image ls, 10,000 images" "$RUNS" 0 ls_ours ls_raw "sqlite3"
bench_compare "registry: register a 1 MiB image" "$RUNS" 0 reg_ours reg_raw "cp+sync"
