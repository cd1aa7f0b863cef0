#!/bin/sh
# registry_python.sh - load build/djinn.so into /usr/bin/python3's sqlite3
# module (the system libsqlite3, not ours) and use the registry from there;
# also the load-time policies that a .sql file cannot reach: an in-memory
# database, someone else's database, a read-only one. TAP on stdout.
set -u
B=${DJINN_BUILD:-$(cd "$(dirname "$0")/../.." && pwd)/build}
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/python.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
PY=/usr/bin/python3
if [ ! -x "$PY" ]; then
	echo "not ok 1 - $PY is missing (apt-get install python3)"
	exit 1
fi
qemu-img create -q -f qcow2 "$W/disk.qcow2" 1G || exit 1
qemu-img create -q -f qcow2 -o compat=0.10 "$W/v2.qcow2" 1G || exit 1
qemu-img create -q -f qcow2 -b "$W/disk.qcow2" -F qcow2 "$W/backing.qcow2" || exit 1

run() {
	if [ -n "${DJINN_SHELL_PRELOAD:-}" ]; then
		LD_PRELOAD=$DJINN_SHELL_PRELOAD ASAN_OPTIONS=detect_leaks=0 timeout 120 "$PY" "$@"
	else
		timeout 120 "$PY" "$@"
	fi
}

run - "$B/djinn.so" "$W" <<'PYEOF'
import hashlib, json, os, pwd, sqlite3, stat, sys

lib, work = sys.argv[1], sys.argv[2]
n = 0
failed = 0


def ok(cond, name, got=None):
    global n, failed
    n += 1
    if not cond:
        failed += 1
    print("%sok %d - %s" % ("" if cond else "not ", n, name))
    if not cond and got is not None:
        print("#   got: %r" % (got,))


def connect(path, **kw):
    db = sqlite3.connect(path, isolation_level=None, **kw)
    db.enable_load_extension(True)
    db.load_extension(lib)
    db.enable_load_extension(False)
    return db


def error_of(db, sql, *args):
    try:
        db.execute(sql, args).fetchall()
    except sqlite3.Error as e:
        return str(e)
    return None


disk = os.path.join(work, "disk.qcow2")
me = pwd.getpwuid(os.geteuid()).pw_name

# A new registry file.
db = connect(os.path.join(work, "reg.db"))
row = db.execute("PRAGMA application_id").fetchone()
ok(row == (0x446A6E6E,), "a new file becomes a registry (application_id)", row)
row = db.execute("PRAGMA journal_mode").fetchone()
ok(row == ("wal",), "journal_mode is WAL", row)
iid = db.execute("SELECT image_register(?, ?, ?)", ("team/ci", "debian", disk)).fetchone()[0]
ok(iid == 1, "image_register from python returns the id", iid)
path = db.execute("SELECT image_path(?, ?)", ("team/ci", "debian")).fetchone()[0]
ok(path == os.path.join(work, "images", hashlib.sha256(open(disk, "rb").read()).hexdigest() + ".qcow2"),
   "image_path resolves to <store>/<sha256>.qcow2", path)
ok(path is not None and open(path, "rb").read() == open(disk, "rb").read(), "the stored file is a byte copy")
ok(path is not None and stat.S_IMODE(os.stat(path).st_mode) == 0o444, "the stored file is mode 0444")
row = db.execute("SELECT owner, namespace, name FROM image_list").fetchone()
ok(row == (me, "team/ci", "debian"), "image_list shows owner (the Unix user), namespace and name", row)
nsid = db.execute("SELECT namespace_resolve('team/ci')").fetchone()[0]
ok(nsid == 2, "namespace_resolve finds team/ci", nsid)

# The rejection message joins every error of the validator with "; ".
bk = os.path.join(work, "backing.qcow2")
report = json.loads(db.execute("SELECT qcow2_check(?)", (bk,)).fetchone()[0])
msgs = [e["message"] for e in report["errors"]]
err = error_of(db, "SELECT image_register('team/ci', 'bk', ?)", bk)
want = "image_register: %s: rejected, not an acceptable QCOW2 v3 image: %s" % (bk, "; ".join(msgs))
ok(len(msgs) >= 1 and err == want, "a rejected image raises with all the validator's reasons", err)
ok(sorted(f for f in os.listdir(os.path.join(work, "images")) if f != ".djinn-store") == [os.path.basename(path)],
   "a rejected image leaves no file", os.listdir(os.path.join(work, "images")))
err = error_of(db, "SELECT image_register('team/ci', 'debian', ?)", disk)
ok(err == "image_register: image 'debian' already exists in namespace 'team/ci'", "duplicate message", err)

# Python's implicit transactions: refused inside one, with a clear message.
db.execute("BEGIN")
err = error_of(db, "SELECT image_register(NULL, 'x', ?)", disk)
ok(err is not None and "cannot run inside an open transaction" in err, "refused inside BEGIN", err)
db.execute("ROLLBACK")
ok(db.execute("SELECT image_remove('team/ci', 'debian')").fetchone()[0] == 1, "image_remove from python")
ok(not os.path.exists(path), "the file went with its last row")
db.close()

# A second connection sees the same registry (schema applied once).
db = connect(os.path.join(work, "reg.db"))
row = db.execute("PRAGMA user_version").fetchone()[0]
ok(row == db.execute("SELECT CAST(substr(djinn_version(), instr(djinn_version(), 'schema ') + 7) AS INTEGER)").fetchone()[0],
   "reopening keeps the schema version", row)
db.close()

# SELECT image_register(...) FROM t holds a read snapshot: when another
# connection writes meanwhile, the call fails with words, not "locked".
a = connect(os.path.join(work, "reg.db"))
b = connect(os.path.join(work, "reg.db"))
a.execute("CREATE TABLE todo(name)")
a.execute("INSERT INTO todo VALUES ('q1'), ('q2')")
ok(a.execute("SELECT count(*) FROM (SELECT image_register('from', name, ?) AS id FROM todo) WHERE id > 0",
             (disk,)).fetchone()[0] == 2, "image_register from a SELECT over a table works")


def poke():
    b.execute("INSERT INTO todo VALUES ('poked')")
    return ""


a.create_function("poke", 0, poke)
err = error_of(a, "SELECT image_register('snap', name || poke(), ?) FROM todo WHERE name = 'q1'", disk)
ok(err is not None and err.startswith("image_register: another connection changed the registry")
   and "statement of its own" in err, "a stale read snapshot gives a clear error", err)
ok(a.execute("SELECT count(*) FROM images WHERE name LIKE 'q1%' AND namespace_id = (SELECT id FROM namespaces WHERE path = 'snap')").fetchone()[0] == 0,
   "and no row", None)
ok(json.loads(a.execute("SELECT djinn_fsck()").fetchone()[0])["ok"], "and no stray file")
a.close()
b.close()

# In memory: a registry, but no store beside it until one is set.
mem = connect(":memory:")
err = error_of(mem, "SELECT image_register(NULL, 'm', ?)", disk)
ok(err is not None and "in memory or temporary" in err and "djinn_setting('store'" in err,
   "in-memory database: says how to set the store", err)
err = error_of(mem, "SELECT djinn_setting('store', 'rel')")
ok(err is None, "a relative store can be stored")
err = error_of(mem, "SELECT image_register(NULL, 'm', ?)", disk)
ok(err is not None and "is relative, but the database is in memory" in err, "but not used in memory", err)
mem.execute("SELECT djinn_setting('store', ?)", (os.path.join(work, "memstore"),))
mid = mem.execute("SELECT image_register(NULL, 'm', ?)", (disk,)).fetchone()[0]
ok(mid == 1 and os.path.isdir(os.path.join(work, "memstore")), "in-memory database with an absolute store", mid)
mem.close()

# Someone else's database: left alone; qcow2_* work; registry refuses.
other = os.path.join(work, "other.db")
o = sqlite3.connect(other, isolation_level=None)
o.execute("CREATE TABLE mine(x)")
o.close()
o = connect(other)
names = [r[0] for r in o.execute("SELECT name FROM sqlite_schema ORDER BY 1")]
ok(names == ["mine"], "a foreign database gets no tables", names)
ok(o.execute("PRAGMA application_id").fetchone()[0] == 0, "nor an application_id")
ok(o.execute("PRAGMA journal_mode").fetchone()[0] == "delete", "nor WAL")
ok(o.execute("SELECT qcow2_validate(?)", (disk,)).fetchone()[0] == 1, "qcow2_validate works there")
err = error_of(o, "SELECT image_register(NULL, 'x', ?)", disk)
ok(err is not None and err.startswith("image_register: this database is not a djinn registry (application_id 0x00000000"),
   "image_register refuses there", err)
o.close()

# Read-only: nothing is written at load; an empty read-only file stays empty.
ro = os.path.join(work, "ro.db")
open(ro, "wb").close()
r = connect("file:%s?mode=ro" % ro, uri=True)
ok(os.path.getsize(ro) == 0, "a read-only empty database is not initialised")
ok(r.execute("SELECT qcow2_validate(?)", (disk,)).fetchone()[0] == 1, "qcow2 functions on a read-only database")
r.close()
r = connect("file:%s?mode=ro" % os.path.join(work, "reg.db"), uri=True)
ok(r.execute("SELECT count(*) FROM images").fetchone()[0] == 2, "a read-only registry can be read")
err = error_of(r, "SELECT image_register(NULL, 'x', ?)", disk)
ok(err == "image_register: the registry is open read-only", "but not written", err)
ok(not [f for f in os.listdir(os.path.join(work, "images")) if f.startswith(".") and f != ".djinn-store"], "and leaves no temp file")
r.close()

# A registry from an older extension is migrated on load.
old = os.path.join(work, "old.db")
o = sqlite3.connect(old, isolation_level=None)
o.execute("PRAGMA application_id = %d" % 0x446A6E6E)
o.close()
o = connect(old)
ver = o.execute("PRAGMA user_version").fetchone()[0]
ok(ver >= 1 and o.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'images'").fetchone()[0] == 1,
   "a version-0 registry is migrated", ver)
o.close()

print("1..%d" % n)
sys.exit(1 if failed else 0)
PYEOF
