#!/bin/sh
# registry_concurrency.sh - 8 stock sqlite3 shells with build/djinn.so
# register, list and remove images in one registry at the same time,
# starting from a file that does not exist yet (so they also race to create
# the schema). Then the registry must be exactly what they did: no errors
# ("database is locked" or any other), the right rows, no duplicate rows or
# namespaces, every row's file present with the right SHA-256 and mode 0444,
# no file without a row, no temp files. TAP on stdout.
set -u
B=${DJINN_BUILD:-$(cd "$(dirname "$0")/../.." && pwd)/build}
LIB=$B/djinn
SQLITE3=${SQLITE3:-sqlite3}
P=8 # processes
N=6 # images each process registers in its own namespace
M=3 # images each process registers in the shared namespace
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/concurrency.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$TOP/tests/e2e_lib.sh"

# Three distinct images (real qemu-img); identical content is shared.
# src4 is registered and removed by every process (the last remover
# unlinks its file while others may be registering it); uniqK by process K
# only, and removed again.
for s in 1 2 3 4; do
	qemu-img create -q -f qcow2 "$W/src$s.qcow2" "${s}G" || exit 1
done
for k in $(seq 1 $P); do
	qemu-img create -q -f qcow2 "$W/uniq$k.qcow2" "$((10 + k))M" || exit 1
done
DB=$W/reg.db

# Each process: register N in team/pK and M in shared/ci (sources cycle
# through the three files, so content repeats across names and processes),
# list after every step, then remove two of its own and one shared.
for k in $(seq 1 $P); do
	f=$W/script$k.sql
	: >"$f"
	for i in $(seq 1 $N); do
		s=$(((i + k) % 3 + 1))
		echo "SELECT 'reg', image_register('team/p$k', 'img$i', '$W/src$s.qcow2') > 0;" >>"$f"
		echo "SELECT 'list', count(*) >= 0 FROM image_list;" >>"$f"
		if [ "$i" -le $M ]; then
			echo "SELECT 'reg', image_register('shared/ci', 'p${k}x$i', '$W/src$s.qcow2') > 0;" >>"$f"
		fi
	done
	echo "SELECT 'reg', image_register('shared/ci', 'churn$k', '$W/src4.qcow2') > 0;" >>"$f"
	echo "SELECT 'reg', image_register(NULL, 'uniq$k', '$W/uniq$k.qcow2') > 0;" >>"$f"
	echo "SELECT 'rm', image_remove('shared/ci', 'churn$k');" >>"$f"
	echo "SELECT 'rm', image_remove('', 'uniq$k');" >>"$f"
	echo "SELECT 'rm', image_remove('team/p$k', 'img2');" >>"$f"
	echo "SELECT 'rm', image_remove('team/p$k', 'img5');" >>"$f"
	echo "SELECT 'rm', image_remove('shared/ci', 'p${k}x1');" >>"$f"
	echo "SELECT 'list', count(*) >= 0 FROM image_list WHERE namespace = 'team/p$k';" >>"$f"
done

# Meanwhile a ninth process repairs the store again and again: it must
# never delete a copy that a registration is still making, or a file that
# a registration has renamed but not yet committed.
R=40
for i in $(seq 1 $R); do
	echo "SELECT 'fsck', djinn_fsck('repair') IS NOT NULL;"
done >"$W/repair.sql"
pids=
for k in $(seq 1 $P); do
	sql_shell "$DB" -cmd ".load $LIB" <"$W/script$k.sql" >"$W/out$k" 2>"$W/err$k" &
	pids="$pids $!"
done
sql_shell "$DB" -cmd ".load $LIB" <"$W/repair.sql" >"$W/repair.out" 2>"$W/repair.err" &
rpid=$!
k=0
for pid in $pids; do
	k=$((k + 1))
	wait "$pid"
	rc=$?
	ok "$rc" "process $k exited 0 (status $rc)"
	if [ -s "$W/err$k" ]; then
		ok 1 "process $k printed no error"
		sed 's/^/#   /' "$W/err$k"
	else
		ok 0 "process $k printed no error"
	fi
	bad=$(grep -cv '|1$' "$W/out$k")
	lines=$(wc -l <"$W/out$k")
	want=$((N * 2 + M + 8))
	[ "$bad" -eq 0 ] && [ "$lines" -eq "$want" ]
	ok $? "process $k: $want results, all true (got $lines, $bad false)"
done

wait "$rpid"
rc=$?
[ "$rc" -eq 0 ] && [ ! -s "$W/repair.err" ] && [ "$(grep -c '|1$' "$W/repair.out")" -eq "$R" ]
ok $? "the repairing process ran $R repairs alongside, no error (status $rc)"
[ -s "$W/repair.err" ] && sed 's/^/#   /' "$W/repair.err"

q() { sql_shell "$DB" -cmd ".load $LIB" "$@"; }
rows=$(q "SELECT count(*) FROM images;")
want=$((P * (N - 2) + P * (M - 1)))
[ "$rows" = "$want" ]
ok $? "row count is exactly $want (got $rows)"
dups=$(q "SELECT count(*) FROM (SELECT 1 FROM images GROUP BY owner, ifnull(namespace_id, 0), name HAVING count(*) > 1);")
[ "$dups" = 0 ]
ok $? "no duplicate image rows (got $dups)"
nsdups=$(q "SELECT count(*) FROM (SELECT 1 FROM namespaces GROUP BY owner, path HAVING count(*) > 1);")
[ "$nsdups" = 0 ]
ok $? "no duplicate namespaces (got $nsdups)"
nss=$(q "SELECT count(*) FROM namespaces;")
[ "$nss" = $((P + 1 + 2)) ]
ok $? "namespaces: team, team/p1..p$P, shared, shared/ci (got $nss)"
gone=$(q "SELECT count(*) FROM image_list WHERE name IN ('img2', 'img5') OR name LIKE 'p%x1' OR name LIKE 'churn%' OR name LIKE 'uniq%';")
[ "$gone" = 0 ]
ok $? "removed images are gone (got $gone)"
ic=$(q "PRAGMA integrity_check;")
[ "$ic" = ok ]
ok $? "integrity_check: $ic"

# The store, checked with ls and sha256sum, not with the extension.
store=$W/images
q "SELECT DISTINCT '$store/' || sha256 || '.qcow2 ' || sha256 FROM images ORDER BY 1;" >"$W/rows"
missing=0 badsum=0 badmode=0
while read -r path sum; do
	if [ ! -f "$path" ]; then
		missing=$((missing + 1))
		continue
	fi
	got=$(sha256sum "$path" | cut -d' ' -f1)
	[ "$got" = "$sum" ] || badsum=$((badsum + 1))
	[ "$(stat -c %a "$path")" = 444 ] || badmode=$((badmode + 1))
done <"$W/rows"
ok "$missing" "every row's file exists ($missing missing)"
ok "$badsum" "every file has its row's SHA-256 ($badsum wrong)"
ok "$badmode" "every file is mode 0444 ($badmode wrong)"
files=$(ls -A "$store" | grep -vxF .djinn-store | wc -l)
distinct=$(wc -l <"$W/rows")
[ "$files" -eq "$distinct" ] && [ "$distinct" -eq 3 ]
ok $? "one file per distinct content, none without a row ($files files, $distinct referenced)"
tmp=$(ls -A "$store" | grep -vxF .djinn-store | grep -c '^\.')
ok "$tmp" "no temp or trash files left ($tmp)"
[ -f "$store/.djinn-store" ]
ok $? "the store has its owner marker"
fsck=$(q "SELECT json_extract(djinn_fsck(), '\$.ok');")
[ "$fsck" = 1 ]
ok $? "djinn_fsck agrees"
tap_end
