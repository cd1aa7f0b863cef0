#!/bin/sh
# tests/fuzz/mkcorpus-registry.sh OUTDIR [LIB] - write the seed corpus of
# registry_fuzz (tests/fuzz/registry_fuzz.c) into OUTDIR (emptied first):
# registries made by the stock sqlite3 shell with LIB (default build/djinn,
# i.e. build/djinn.so) loaded, then copies with forged headers and edited
# schema rows. Generated every time, never committed: the seeds follow the
# schema of the extension being fuzzed. Needs sqlite3 and qemu-img.
#
#   empty.db              0 bytes: the extension makes a new registry
#   fresh.db              a registry with no rows
#   reg4k.db, reg512.db   namespaces team/ci, team/ci/nightly, a/b@alice;
#                         images team/ci x and y (one shared file),
#                         team/ci/nightly z, personal p; page size 4096 / 512
#   many.db               60 images in 12 namespaces (deeper b-trees)
#   journal.db            reg512 in rollback-journal mode
#   *-odd.db              reg512, reg4k and many with one more byte (the
#                         harness picks its store layout by the length)
#   uv-N.db               our application_id 0x446a6e6e with user_version N:
#                         -1, -2147483648, 0, 1, 2, 3, 99, 2147483647
#   app-*.db              foreign application_ids (0, 0x12345678,
#                         0x446a6e6f, 0x6e6e6a44) over our tables
#   plain.db              somebody else's database (one table)
#   sch-*.db              schema rows edited with PRAGMA writable_schema:
#                         CHECKs disabled plus hostile rows (names with '/',
#                         sha256 "../../x", owner ''), images and namespaces
#                         root pages swapped, image_list recursive or
#                         without columns, the images table's SQL replaced
#                         by garbage, a trigger calling image_remove, the
#                         store setting '/' or '..', no registry identity
#
# The image files are qemu-img's 1, 2 and 3 MiB images with 512-byte
# clusters: registry_fuzz rebuilds the same bytes (tiny_qcow2) into its
# private store, so that the seed rows find their files.
set -eu
out=${1:?usage: mkcorpus-registry.sh OUTDIR [LIB]}
lib=${2:-build/djinn}
SQLITE3=${SQLITE3:-sqlite3}
case $lib in /*) ;; *) lib=$(pwd)/$lib ;; esac
pre=
# An ASan build of the extension needs the sanitizer runtimes preloaded
# into the stock shell (as tests/run.sh does).
if ldd "$lib.so" 2>/dev/null | grep -q libasan; then
	pre="$(${CC:-cc} -print-file-name=libasan.so) $(${CC:-cc} -print-file-name=libubsan.so)"
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/mkcorpus-registry.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

sq() { LD_PRELOAD=$pre "$SQLITE3" -batch "$@"; }
# dj DB SQL... - run SQL with the extension loaded; any error stops.
dj() {
	db=$1
	shift
	LD_PRELOAD=$pre "$SQLITE3" -batch -bail "$db" ".load $lib" "$@" >/dev/null
}

for m in 1 2 3; do
	qemu-img create -q -f qcow2 -o cluster_size=512 "$work/i$m.qcow2" "${m}M"
done

# mkreg NAME PAGE_SIZE - the standard registry, checkpointed into one file.
mkreg() {
	d=$work/$1
	mkdir "$d"
	LD_PRELOAD=$pre "$SQLITE3" -batch -bail "$d/reg.db" \
		"PRAGMA page_size = $2" ".load $lib" \
		"SELECT namespace_resolve('a/b@alice')" \
		"SELECT image_register('team/ci', 'x', '$work/i1.qcow2')" \
		"SELECT image_register('team/ci', 'y', '$work/i1.qcow2')" \
		"SELECT image_register('team/ci/nightly', 'z', '$work/i2.qcow2')" \
		"SELECT image_register(NULL, 'p', '$work/i2.qcow2')" >/dev/null
	settle "$d/reg.db"
}
# settle DB - fold the WAL into the file, so that one file is the database.
# The shell's last close checkpoints (even when the schema it was given is
# malformed, where this PRAGMA fails); a WAL with frames left is an error.
settle() {
	sq "$1" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null 2>&1 || true
	if [ -s "$1-wal" ]; then
		echo "mkcorpus-registry: $1: the WAL was not checkpointed" >&2
		exit 1
	fi
	rm -f "$1-wal" "$1-shm"
}
# forge NAME FROM SQL... - a copy of FROM changed by SQL in the plain shell.
forge() {
	name=$1 from=$2
	shift 2
	cp "$from" "$out/$name.db"
	sq "$out/$name.db" "$@" >/dev/null
	settle "$out/$name.db"
}

rm -rf "$out"
mkdir -p "$out"
: >"$out/empty.db"

mkdir "$work/fresh"
LD_PRELOAD=$pre "$SQLITE3" -batch -bail "$work/fresh/reg.db" \
	"PRAGMA page_size = 512" ".load $lib" "SELECT djinn_version()" >/dev/null
settle "$work/fresh/reg.db"
cp "$work/fresh/reg.db" "$out/fresh.db"

mkreg r4k 4096
mkreg r512 512
cp "$work/r4k/reg.db" "$out/reg4k.db"
base=$work/r512/reg.db
cp "$base" "$out/reg512.db"

mkdir "$work/many"
{
	echo "PRAGMA page_size = 512;"
	echo ".load $lib"
	i=0
	while [ "$i" -lt 60 ]; do
		echo "SELECT image_register('ns$((i % 12))/sub$((i % 3))', 'img$i', '$work/i$((i % 3 + 1)).qcow2');"
		i=$((i + 1))
	done
} | LD_PRELOAD=$pre "$SQLITE3" -batch -bail "$work/many/reg.db" >/dev/null
settle "$work/many/reg.db"
cp "$work/many/reg.db" "$out/many.db"

forge journal "$base" "PRAGMA journal_mode = DELETE"
# Odd lengths (a byte past the last page, which SQLite ignores): the
# harness then leaves the 2 MiB image in the store only as a trash file.
for s in reg512 reg4k many; do
	{ cat "$out/$s.db"; printf 'x'; } >"$out/$s-odd.db"
done

# Forged headers: our application_id, any user_version.
for v in -1 -2147483648 0 1 2 3 99 2147483647; do
	forge "uv$v" "$base" "PRAGMA application_id = 1147825774" \
		"PRAGMA user_version = $v"
done
# Foreign application_ids over our tables.
forge app-0 "$base" "PRAGMA application_id = 0"
forge app-0-uv0 "$base" "PRAGMA application_id = 0" "PRAGMA user_version = 0"
forge app-12345678 "$base" "PRAGMA application_id = 305419896"
forge app-446a6e6f "$base" "PRAGMA application_id = 1147825775"
forge app-6e6e6a44 "$base" "PRAGMA application_id = 1852795460"
rm -f "$work/plain.db"
sq "$work/plain.db" "CREATE TABLE t(a, b)" \
	"INSERT INTO t VALUES (1, 'somebody else''s data')"
cp "$work/plain.db" "$out/plain.db"

# Schema rows edited behind SQLite's back.
ws="PRAGMA writable_schema = ON"
# Every CHECK of the images and namespaces tables always true, then rows
# the extension would never write.
forge sch-nocheck "$base" "$ws" \
	"UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (', 'CHECK (1 OR ')
	 WHERE name IN ('images', 'namespaces', 'settings')" \
	"PRAGMA writable_schema = RESET"
sq "$out/sch-nocheck.db" \
	"UPDATE images SET sha256 = '../../../../tmp/registry-fuzz-escape' WHERE name = 'z'" \
	"UPDATE images SET name = '../x', owner = '' WHERE name = 'p'" \
	"UPDATE namespaces SET path = 'team/../..' WHERE path = 'a/b'" \
	"INSERT INTO images(namespace_id, owner, author, name, driver, sha256, file_size, virtual_size)
	 SELECT namespace_id, owner, author, 'dup', driver, upper(sha256), -1, -1
	 FROM images WHERE name = 'x'" >/dev/null 2>&1 || true
settle "$out/sch-nocheck.db"
# The images and namespaces tables' root pages swapped.
ri=$(sq "$base" "SELECT rootpage FROM sqlite_schema WHERE name = 'images'")
rn=$(sq "$base" "SELECT rootpage FROM sqlite_schema WHERE name = 'namespaces'")
forge sch-swap "$base" "$ws" \
	"UPDATE sqlite_schema SET rootpage = $rn WHERE name = 'images'" \
	"UPDATE sqlite_schema SET rootpage = $ri WHERE name = 'namespaces'"
# image_list without the columns, and recursive without end.
forge sch-view "$base" "$ws" \
	"UPDATE sqlite_schema SET sql = 'CREATE VIEW image_list AS SELECT 1 AS id'
	 WHERE name = 'image_list'"
forge sch-loop "$base" "$ws" \
	"UPDATE sqlite_schema SET sql = 'CREATE VIEW image_list AS WITH RECURSIVE
	 c(namespace, name) AS (SELECT ''team/ci'', ''x'' UNION ALL
	 SELECT namespace, name || ''x'' FROM c) SELECT * FROM c'
	 WHERE name = 'image_list'"
forge sch-garbage "$base" "$ws" \
	"UPDATE sqlite_schema SET sql = 'CREATE TABLE images(' WHERE name = 'images'"
forge sch-notable "$base" "$ws" \
	"DELETE FROM sqlite_schema WHERE name = 'settings'"
# A trigger that calls a DIRECTONLY function, one that re-inserts.
forge sch-trigger "$base" \
	"CREATE TRIGGER evil AFTER DELETE ON images BEGIN
	 SELECT image_remove('team/ci/nightly', 'z'); END"
forge sch-reinsert "$base" \
	"CREATE TRIGGER back AFTER DELETE ON images BEGIN
	 INSERT INTO images SELECT OLD.*; END" 2>/dev/null ||
	forge sch-reinsert "$base" \
		"CREATE TRIGGER back AFTER DELETE ON images BEGIN
		 INSERT INTO images(id, namespace_id, owner, author, name, sha256,
		 file_size, virtual_size) VALUES (OLD.id, OLD.namespace_id,
		 OLD.owner, OLD.author, OLD.name, OLD.sha256, OLD.file_size,
		 OLD.virtual_size); END"
# Settings a user could not have set.
forge set-root "$base" "INSERT OR REPLACE INTO settings VALUES ('store', '/')"
forge set-dotdot "$base" \
	"INSERT OR REPLACE INTO settings VALUES ('store', 'images/../..')"
forge set-unknown "$base" \
	"INSERT OR REPLACE INTO settings VALUES ('colour', 'blue')"
# No identity, two identities (schemas that have one).
if sq "$base" "SELECT 1 FROM sqlite_schema WHERE name = 'registry_identity'" |
	grep -q 1; then
	forge id-none "$base" "DELETE FROM registry_identity"
	forge id-bad "$base" "$ws" \
		"UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (', 'CHECK (1 OR ')
		 WHERE name = 'registry_identity'" \
		"PRAGMA writable_schema = RESET" \
		"UPDATE registry_identity SET id = '../../not-hex'"
fi
echo "mkcorpus-registry: $(ls "$out" | wc -l) seeds in $out"
