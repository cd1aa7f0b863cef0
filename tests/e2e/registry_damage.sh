#!/bin/sh
# registry_damage.sh - damaged and forged registry files in the stock
# sqlite3 shell with build/djinn.so: no crash, no hang, and never a lost
# store file.
#
# A real registry (three distinct images, one file shared by two rows,
# namespaces team/ci, team/ci/nightly and a/b, a notes.txt in the store) is
# copied and damaged:
#   forged headers  our application_id 0x446a6e6e with user_version -1,
#                   -2147483648, 0, 1, 3, 99 and 2^31-1; foreign
#                   application_ids (0, 0x12345678, 0x446a6e6f) and our
#                   tables with no marks at all; schema rows edited through
#                   PRAGMA writable_schema (image_list without its columns,
#                   the images and namespaces root pages swapped, every
#                   CHECK disabled plus a row whose sha256 is "../../x",
#                   the images table's SQL made unparsable)
#   bit flips       DJINN_DAMAGE_COUNT (200) copies, from a fixed seed
#                   (DJINN_DAMAGE_SEED), with 1 to 4 bits flipped: a fifth
#                   in the 100-byte file header, three tenths in the pages
#                   of sqlite_schema, half anywhere after the header
# For each, in a fresh copy of the registry's directory (the store is the
# pristine one every time), one shell session runs, without -bail:
#   .load; djinn_version(); SELECT * FROM image_list; image_path('team/ci',
#   'x'); djinn_store_check(); djinn_fsck(); djinn_fsck('repair');
#   namespace_resolve('a/b'); image_remove('team/ci', 'absent');
#   djinn_fsck('repair')
# and must end with an exit status below 128 (124 = timeout counts as a
# hang), no "AddressSanitizer", "LeakSanitizer" or "runtime error" on
# stderr, and every file of the store byte for byte as before (sha256sum):
# whatever a damaged registry says, repair must not delete an image. A
# second session removes a real image (team/ci y, whose file x shares) and
# repairs: no crash. For the forged headers, the file must also still carry
# its forged application_id and user_version (a damaged registry is refused,
# nothing written).
#
# TAP: one point per forged kind, bit flips in groups of 10 (a "# " line
# per failing copy with what was flipped and how to reproduce it).
# DJINN_DAMAGE_ONLY="name ..." runs only those variants (forged kinds by
# name, flips as flip-NNN); DJINN_DAMAGE_KEEP=DIR keeps each failing copy
# there as NAME/reg.db with its pristine store NAME/images (open it with:
# sqlite3 DIR/NAME/reg.db -cmd '.load build/djinn'). DJINN_DAMAGE_TIMEOUT
# (60) bounds each shell, in seconds.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
LIB=$B/djinn
SQLITE3=${SQLITE3:-sqlite3}
SEED=${DJINN_DAMAGE_SEED:-20240610}
COUNT=${DJINN_DAMAGE_COUNT:-200}
ONLY=${DJINN_DAMAGE_ONLY:-}
KEEP=${DJINN_DAMAGE_KEEP:-}
TMO=${DJINN_DAMAGE_TIMEOUT:-60}
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/damage.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
. "$TOP/tests/e2e_lib.sh"
SQL_TIMEOUT=$TMO
t0=$(date +%s)

# plain SQL... - the stock shell without the extension.
plain() { timeout -k 5 "$TMO" "$SQLITE3" -batch "$@"; }

# The registry: $R/reg.db with its store $R/images.
R=$W/run
P=$W/pristine
mkdir "$W/src" "$R" || exit 1
for i in 1 2 3; do
	qemu-img create -q -f qcow2 "$W/src/i$i.qcow2" 64M &&
		qemu-io -c "write -P 0x$i$i 0 64k" "$W/src/i$i.qcow2" >/dev/null ||
		exit 1
done
sql_shell "$R/reg.db" -bail ".load $LIB" \
	"SELECT namespace_resolve('a/b')" \
	"SELECT image_register('team/ci', 'x', '$W/src/i1.qcow2')" \
	"SELECT image_register('team/ci', 'y', '$W/src/i1.qcow2')" \
	"SELECT image_register('team/ci/nightly', 'z', '$W/src/i2.qcow2')" \
	"SELECT image_register(NULL, 'p', '$W/src/i3.qcow2')" \
	>"$W/setup.out" 2>&1
rc=$?
echo "the sea is salt" >"$R/images/notes.txt"
# One file: fold the WAL in (the shell's last close did; make sure).
plain "$R/reg.db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null 2>&1
[ -s "$R/reg.db-wal" ] && rc=1
rm -f "$R/reg.db-wal" "$R/reg.db-shm"
files=$(ls "$R/images" | wc -l)
[ "$rc" -eq 0 ] && [ "$files" -ge 4 ]
ok $? "a registry with 4 rows, 3 image files and a note in its store (rc $rc)"
if [ "$rc" -ne 0 ]; then
	show setup.out
	tap_end
	exit
fi
cp -a "$R" "$P"
store_sum() { (cd "$1" && find . -type f | LC_ALL=C sort | xargs -r sha256sum); }
store_sum "$P/images" >"$W/store.sum"
ps=$(plain "$P/reg.db" "PRAGMA page_size")
size=$(wc -c <"$P/reg.db")
app=$(plain "$P/reg.db" "PRAGMA application_id")
ver=$(plain "$P/reg.db" "PRAGMA user_version")
schema_pages=$(plain "$P/reg.db" \
	"SELECT pageno FROM dbstat WHERE name = 'sqlite_schema' ORDER BY pageno" \
	2>/dev/null)
[ -n "$schema_pages" ] || schema_pages=1
echo "# registry: $size bytes, page size $ps, schema version $ver, sqlite_schema on pages" $schema_pages

cat >"$W/probe.sql" <<EOF
.load $LIB
SELECT djinn_version();
SELECT * FROM image_list;
SELECT image_path('team/ci', 'x');
SELECT djinn_store_check();
SELECT djinn_fsck();
SELECT djinn_fsck('repair');
SELECT namespace_resolve('a/b');
SELECT image_remove('team/ci', 'absent');
SELECT djinn_fsck('repair');
EOF
cat >"$W/probe2.sql" <<EOF
.load $LIB
SELECT image_remove('team/ci', 'y');
SELECT djinn_fsck('repair');
EOF

wanted() {
	[ -z "$ONLY" ] && return 0
	case " $ONLY " in *" $1 "*) return 0 ;; esac
	return 1
}

# crashed RC ERRFILE - 0 when the session crashed, hung or a sanitizer
# spoke; $why says which.
crashed() {
	why=
	if [ "$1" -eq 124 ]; then
		why="hung (timeout ${TMO}s)"
	elif grep -q -E 'ERROR: (Address|Leak)Sanitizer|runtime error' "$2"; then
		why="sanitizer: $(grep -m1 -E 'ERROR: (Address|Leak)Sanitizer|runtime error' "$2" | sed 's/^==[0-9]*==//')"
	elif [ "$1" -ge 128 ]; then
		why="exit status $1 (signal $(($1 - 128)))"
	fi
	[ -n "$why" ] && grep -q 'error during initialization' "$2" &&
		why="$why, in a call after the failed .load"
	[ -n "$why" ]
}

# probe NAME DB [APP VER] - run the sessions on a copy of the registry
# directory whose reg.db is DB. Sets $bad to what went wrong ("" if
# nothing). With APP and VER, the header must still say so afterwards.
probe() {
	name=$1 db=$2
	bad=
	rm -rf "$R"
	cp -a "$P" "$R"
	cp "$db" "$R/reg.db"
	sql_shell "$R/reg.db" <"$W/probe.sql" >"$W/p.out" 2>"$W/p.err"
	rc=$?
	if crashed "$rc" "$W/p.err"; then
		bad="session 1: $why"
	fi
	store_sum "$R/images" >"$W/now.sum"
	if ! cmp -s "$W/store.sum" "$W/now.sum"; then
		bad="${bad:+$bad; }the store changed: $(diff "$W/store.sum" "$W/now.sum" |
			sed -n 's/^\([<>]\) [0-9a-f]* *\.\//\1 /p' | tr '\n' ' ')"
	fi
	if [ $# -ge 4 ]; then
		got=$(plain "$R/reg.db" "PRAGMA application_id" "PRAGMA user_version" 2>/dev/null | tr '\n' ' ')
		if [ "$got" != "$3 $4 " ]; then
			bad="${bad:+$bad; }the header changed from application_id $3 user_version $4 to ${got:-unreadable}"
		fi
	fi
	sql_shell "$R/reg.db" <"$W/probe2.sql" >"$W/p2.out" 2>"$W/p2.err"
	rc2=$?
	if crashed "$rc2" "$W/p2.err"; then
		bad="${bad:+$bad; }session 2 (image_remove, repair): $why"
	fi
	if [ -n "$bad" ] && [ -n "$KEEP" ]; then
		rm -rf "${KEEP:?}/$name"
		mkdir -p "$KEEP/$name"
		cp "$db" "$KEEP/$name/reg.db"
		cp -a "$P/images" "$KEEP/$name/images"
	fi
	nprobed=$((nprobed + 1))
	[ -z "$bad" ]
}
nprobed=0
nfailed=0

repro() {
	echo "#   reproduce: DJINN_BUILD=$B DJINN_DAMAGE_ONLY=$1 DJINN_DAMAGE_KEEP=/tmp/damage sh tests/e2e/registry_damage.sh"
}

# forged NAME DESCRIPTION SQL... - a copy changed by SQL in the plain shell.
forged() {
	name=$1 desc=$2
	shift 2
	wanted "$name" || return 0
	rm -f "$W/f.db" "$W/f.db-wal" "$W/f.db-shm"
	cp "$P/reg.db" "$W/f.db"
	plain "$W/f.db" "$@" >/dev/null 2>"$W/forge.err"
	plain "$W/f.db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null 2>&1
	rm -f "$W/f.db-wal" "$W/f.db-shm"
	fapp=$(plain "$W/f.db" "PRAGMA application_id" 2>/dev/null)
	fver=$(plain "$W/f.db" "PRAGMA user_version" 2>/dev/null)
	if probe "$name" "$W/f.db" "$fapp" "$fver"; then
		ok 0 "$desc"
	else
		ok 1 "$desc"
		nfailed=$((nfailed + 1))
		echo "# $name: $bad"
		sed 's/^/#   stderr: /' "$W/p.err" | head -n 3
		repro "$name"
	fi
}

id=1147825774 # 0x446a6e6e
for v in -1 -2147483648 0 1 3 99 2147483647; do
	forged "uv$v" "forged header: our application_id, user_version $v" \
		"PRAGMA application_id = $id" "PRAGMA user_version = $v"
done
forged app0 "forged header: application_id 0 over a registry's tables" \
	"PRAGMA application_id = 0"
forged app0-uv0 "forged header: application_id 0 and user_version 0 over a registry's tables" \
	"PRAGMA application_id = 0" "PRAGMA user_version = 0"
forged app-12345678 "forged header: foreign application_id 0x12345678" \
	"PRAGMA application_id = 305419896"
forged app-446a6e6f "forged header: application_id 0x446a6e6f (ours + 1)" \
	"PRAGMA application_id = 1147825775"
ws="PRAGMA writable_schema = ON"
forged schema-view "schema row edited: image_list without its columns" "$ws" \
	"UPDATE sqlite_schema SET sql = 'CREATE VIEW image_list AS SELECT 1 AS id' WHERE name = 'image_list'"
ri=$(plain "$P/reg.db" "SELECT rootpage FROM sqlite_schema WHERE name = 'images'")
rn=$(plain "$P/reg.db" "SELECT rootpage FROM sqlite_schema WHERE name = 'namespaces'")
forged schema-swap "schema rows edited: images and namespaces root pages swapped" "$ws" \
	"UPDATE sqlite_schema SET rootpage = $rn WHERE name = 'images'" \
	"UPDATE sqlite_schema SET rootpage = $ri WHERE name = 'namespaces'"
forged schema-nocheck "schema rows edited: CHECKs off, a row's sha256 is '../../x', another's is upper case" "$ws" \
	"UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (', 'CHECK (1 OR ') WHERE name = 'images'" \
	"PRAGMA writable_schema = RESET" \
	"UPDATE images SET sha256 = '../../x' WHERE name = 'z'" \
	"UPDATE images SET sha256 = upper(sha256) WHERE name = 'p'"
forged schema-garbage "schema row edited: the images table's SQL unparsable" "$ws" \
	"UPDATE sqlite_schema SET sql = 'CREATE TABLE images(' WHERE name = 'images'"

# Bit flips. A 31-bit LCG from SEED, so that every run and machine makes
# the same copies.
x=$SEED
rnd() { # rnd N - a number in [0, N) in $r
	x=$(((x * 1103515245 + 12345) % 2147483648))
	hi=$((x / 65536))
	x=$(((x * 1103515245 + 12345) % 2147483648))
	r=$((((hi * 32768) + x / 65536) % $1))
}
nschema=$(echo $schema_pages | wc -w)
nhead=$((COUNT / 5))
nsch=$((COUNT * 3 / 10))
flip_at() { # flip_at FILE OFFSET BIT
	v=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	v=$((v ^ (1 << $3)))
	printf "\\$(printf %o "$v")" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
group_fail=0 group_n=0 group_first=
end_group() {
	[ "$group_n" -gt 0 ] || return 0
	ok "$group_fail" "bit flips $group_region: copies $group_first-$((i - 1)) (${group_n}): no crash, store intact"
	group_fail=0 group_n=0
}
i=0
group_region=
while [ "$i" -lt "$COUNT" ]; do
	if [ "$i" -lt "$nhead" ]; then
		region="in the header"
	elif [ "$i" -lt $((nhead + nsch)) ]; then
		region="in the schema pages"
	else
		region="anywhere"
	fi
	if [ "$region" != "$group_region" ] || [ "$group_n" -ge 10 ]; then
		end_group
		group_region=$region group_first=$i
	fi
	name=flip-$(printf %03d "$i")
	bits=$((i % 4 + 1))
	desc=
	cp "$P/reg.db" "$W/f.db"
	k=0
	while [ "$k" -lt "$bits" ]; do
		case $region in
		"in the header") rnd 100; off=$r ;;
		"in the schema pages")
			# Page 1's b-tree header follows the file header.
			rnd "$nschema"
			pg=$(echo $schema_pages | cut -d ' ' -f $((r + 1)))
			if [ "$pg" -eq 1 ]; then
				rnd $((ps - 100))
				off=$((100 + r))
			else
				rnd "$ps"
				off=$(((pg - 1) * ps + r))
			fi ;;
		*) rnd $((size - 100)); off=$((100 + r)) ;;
		esac
		rnd 8
		flip_at "$W/f.db" "$off" "$r"
		desc="$desc $off:$r"
		k=$((k + 1))
	done
	if wanted "$name"; then
		group_n=$((group_n + 1))
		if ! probe "$name" "$W/f.db"; then
			group_fail=1
			nfailed=$((nfailed + 1))
			echo "# $name (byte:bit$desc): $bad"
			sed 's/^/#   stderr: /' "$W/p.err" | head -n 1
			repro "$name"
		fi
	fi
	i=$((i + 1))
done
end_group

echo "# $nprobed damaged registries probed ($nfailed failing) in $(($(date +%s) - t0)) s"
tap_end
