-- registry_test.lua - djinn.registry (runtime/l_registry.c) over the
-- statically linked extension. Images are made with the real qemu-img.
local t = ...
local registry = require "djinn.registry"
local fs = require "djinn.fs"
local proc = require "djinn.proc"

local dir = assert(fs.mkdtemp("djinn-reg-test-"))

local function run(argv)
  local c = assert(proc.spawn { argv = argv, stdout = "null", stderr = "null" })
  local how, code = c:wait(60)
  return how == "exit" and code == 0
end

-- a good image: the fixture when present, else our own
local good = os.getenv("DJINN_FIXTURES") and fs.join(os.getenv("DJINN_FIXTURES"), "plain.qcow2")
if not (good and fs.exists(good)) then
  good = fs.join(dir, "plain.qcow2")
  assert(run { "qemu-img", "create", "-q", "-f", "qcow2", good, "16M" })
end
local bad = fs.join(dir, "bad.qcow2")
assert(fs.writefile(bad, string.rep("\0", 65536)))

local dbpath = fs.join(dir, "sub", "dir", "registry.db")
local db, err = registry.open(dbpath)
t:ok(db ~= nil, "open a fresh registry in a new directory: " .. tostring(err))
t:ok(fs.exists(dbpath), "database file created")
t:ok(tostring(db):find("registry.db", 1, true) ~= nil, "__tostring names the file")

local id, rerr = db:register("team/ci", "plain", good)
t:ok(math.type(id) == "integer", "register returns an id: " .. tostring(rerr))
local path = db:resolve("team/ci", "plain")
t:ok(type(path) == "string" and path:sub(1, 1) == "/", "resolve gives an absolute path")
t:ok(path and fs.exists(path), "the stored file exists")
t:is(db:resolve("team/ci", "nope"), nil, "resolve of an unknown image is nil")

local rows = db:list()
t:is(#rows, 1, "list has one image")
t:is(rows[1].name, "plain", "list row name")
t:is(rows[1].namespace, "team/ci", "list row namespace")
t:is(rows[1].id, id, "list row id")
t:is(#db:list("team/ci"), 1, "list filtered by namespace")
t:is(#db:list("other"), 0, "list of another namespace is empty")
t:is(registry.user(), rows[1].owner, "registry.user() is the owner of a path without @")
t:is(#db:list("team/ci@" .. registry.user()), 1, "path@owner names the same namespace")
t:is(#db:list("team/ci@somebody"), 0, "another owner's team/ci is another namespace")
t:is(#db:list("-"), 0, "no personal images yet")

local bid, berr = db:register("team/ci", "bad", bad)
t:ok(bid == nil, "a bad image is refused")
t:ok(berr and berr:find("^registry%.register: ") and berr:find("qcow2", 1, true),
  "refusal message: " .. tostring(berr))
t:is(#db:list(), 1, "nothing registered for the bad image")

local q = db:query("SELECT count(*) AS n FROM images WHERE name = ?", "plain")
t:is(q[1].n, 1, "query with a parameter")
local qn, qerr = db:query("SELECT * FROM no_such_table")
t:ok(qn == nil and qerr:find("no such table", 1, true), "query error is nil, msg")
t:is(db:exec("CREATE TABLE t(a, b); INSERT INTO t VALUES (1, 'x'); INSERT INTO t VALUES (2, NULL)"), 1,
  "exec runs every statement and returns changes")
t:is(db:exec("UPDATE t SET b = ? WHERE a >= ?", "y", 1), 2, "exec with parameters")
local tr = db:query("SELECT a, b FROM t ORDER BY a")
t:ok(#tr == 2 and tr[2].b == "y", "rows read back")
t:checkerr("parameter must be", db.query, db, "SELECT ?", {})

t:is(db:remove("team/ci", "plain"), true, "remove an image")
t:is(db:remove("team/ci", "plain"), false, "remove again gives false")
t:ok(not fs.exists(path), "stored file removed")
t:is(#db:list(), 0, "list empty after remove")

db:close()
t:checkerr("closed registry", db.list, db)
db:close() -- closing twice is fine

local ro, roerr = registry.open("/proc/nope/registry.db")
t:ok(ro == nil and roerr:find("^registry%.open: ") ~= nil, "open in an impossible place: " .. tostring(roerr))

do
  local db2 <close> = assert(registry.open(dbpath))
  t:is(#db2:list(), 0, "reopen an existing registry")
end
fs.rm_rf(dir)
