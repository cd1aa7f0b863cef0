#!/bin/sh
# registry_lookup.sh - image_path's per-connection cache (issue 13) in the
# stock sqlite3 shell: guards that are not timings.
#   - 1000 lookups run ONE prepared statement 1000 times (the shell's
#     sqlite_stmt table: the statement and its run count), where each
#     call prepared three before;
#   - the registry check and the store setting are read once for 1000
#     lookups, not once per lookup (the shell's .trace --stmt);
#   - the shell closes the connection without "unable to close due to
#     unfinalized statements" (the kept statement is finalized by the
#     djinn_lookup_hook virtual table's disconnect);
#   - a registry whose store setting is changed by another process between
#     two lookups of one connection is followed (a FIFO feeds one shell),
#     and so is one changed inside BEGIN, then rolled back.
# TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/reglookup.XXXXXX") || exit 1
SHELLPID=
cleanup() {
	[ -n "$SHELLPID" ] && kill "$SHELLPID" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
. "$TOP/tests/e2e_lib.sh"

qemu-img create -q -f qcow2 "$W/a.qcow2" 1M || exit 1
SA=$(sha256sum "$W/a.qcow2" | cut -c1-64)
sq "$W/reg.db" "SELECT image_register('team/ci', 'a', '$W/a.qcow2');"
ok $rc "register team/ci a"

# 1. One statement for 1000 lookups.
sq "$W/reg.db" \
	"SELECT count(image_path('team/ci', 'a')) FROM generate_series(1, 1000);" \
	"SELECT run FROM sqlite_stmt WHERE sql LIKE 'SELECT n.id, i.sha256 FROM%';"
ok $rc "1000 lookups in the shell"
show sq.err
[ "$(sed -n 1p "$W/sq.out")" = 1000 ]
ok $? "1000 paths"
[ "$(sed -n 2p "$W/sq.out")" = 1000 ]
ok $? "one prepared statement ran 1000 times (sqlite_stmt: $(sed -n 2p "$W/sq.out" | tr '\n' ' '))"
[ "$(wc -l <"$W/sq.out")" -eq 2 ]
ok $? "and only one such statement exists"
[ ! -s "$W/sq.err" ]
ok $? "the shell closes the connection without an error"

# 2. The registry check and the store setting: once, not per lookup.
sq "$W/reg.db" ".trace $W/trace.txt --stmt" \
	"SELECT count(image_path('team/ci', 'a')) FROM generate_series(1, 1000);"
ok $rc "1000 traced lookups"
n_check=$(grep -c 'pragma_application_id' "$W/trace.txt")
n_store=$(grep -c "FROM settings" "$W/trace.txt")
n_find=$(grep -c 'LEFT JOIN images AS i' "$W/trace.txt")
echo "# trace: registry check $n_check, store setting $n_store, lookup $n_find"
[ "$n_find" -eq 1000 ]
ok $? "the lookup ran 1000 times"
[ "$n_check" -le 2 ] && [ "$n_store" -le 2 ]
ok $? "the registry check ($n_check) and the store setting ($n_store) ran at most twice, not per lookup"

# 2b. Inside a transaction of the same connection: a change not yet
# committed is seen, and is gone again after ROLLBACK (the cache is not
# used inside BEGIN: the data version does not move for either).
sq "$W/reg.db" "SELECT image_path('team/ci', 'a');" "BEGIN;" \
	"INSERT OR REPLACE INTO settings(key, value) VALUES ('store', '/elsewhere');" \
	"SELECT image_path('team/ci', 'a');" "ROLLBACK;" \
	"SELECT image_path('team/ci', 'a');"
ok $rc "lookups around a rolled-back change"
[ "$(sed -n 2p "$W/sq.out")" = "/elsewhere/$SA.qcow2" ]
ok $? "inside BEGIN: the uncommitted store setting is seen"
[ "$(sed -n 3p "$W/sq.out")" = "$W/images/$SA.qcow2" ]
ok $? "after ROLLBACK: the store beside the database again"

# 3. Another process changes the store between two lookups of one
# connection: a shell reading SQL from a FIFO, held open by this script.
mkdir "$W/store2" && cp "$W/images/$SA.qcow2" "$W/store2/" || exit 1
mkfifo "$W/in"
sql_shell "$W/reg.db" -cmd ".load $B/djinn" <"$W/in" >"$W/held.out" 2>"$W/held.err" &
SHELLPID=$!
exec 3>"$W/in"
echo "SELECT image_path('team/ci', 'a');" >&3
# The shell's output to a file is buffered until it ends: it says it has
# done the first lookup by making a file (the wait is bounded: 60 s).
echo ".shell touch '$W/first-done'" >&3
i=0
while [ ! -e "$W/first-done" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
sq "$W/reg.db" "SELECT djinn_setting('store', '$W/store2');"
ok $rc "another process sets the store"
echo "SELECT image_path('team/ci', 'a');" >&3
exec 3>&-
wait "$SHELLPID"
rc=$?
SHELLPID=
ok $rc "the held shell ends"
[ "$(sed -n 1p "$W/held.out")" = "$W/images/$SA.qcow2" ]
ok $? "its first lookup: the store beside the database"
[ "$(sed -n 2p "$W/held.out")" = "$W/store2/$SA.qcow2" ]
ok $? "its second lookup follows the other process's store setting"
show held.out
show held.err
tap_end
