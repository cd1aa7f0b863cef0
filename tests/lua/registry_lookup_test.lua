-- registry_lookup_test.lua - image_path's per-connection cache (issue 13,
-- ext/registry.c struct reg_lookup): one prepared statement, and the
-- registry check and store directory kept for the database's data
-- version. What the cache keeps must follow every change, made on the
-- same connection or on another one (another process is the same to
-- SQLite: the data version changes with any commit).
local t = ...
local registry = require "djinn.registry"
local fs = require "djinn.fs"
local proc = require "djinn.proc"

local dir = assert(fs.mkdtemp("djinn-lookup-test-"))
local function run(argv)
    local c = assert(proc.spawn { argv = argv, stdout = "null", stderr = "null" })
    local how, code = c:wait(60)
    return how == "exit" and code == 0
end
local img = fs.join(dir, "plain.qcow2")
assert(run { "qemu-img", "create", "-q", "-f", "qcow2", img, "1M" })

local dbpath = fs.join(dir, "registry.db")
local db1 = assert(registry.open(dbpath))
local db2 = assert(registry.open(dbpath))
t:ok(db1:register("team/ci", "a", img), "register team/ci a")
t:ok(db1:register("", "mine", img), "register a personal image")

local p1, sha = db1:resolve("team/ci", "a")
t:ok(p1 and p1:find("/images/" .. sha .. ".qcow2", 1, true) ~= nil,
     "resolve: the store beside the database: " .. tostring(p1))
t:ok(db1:resolve("", "mine") == p1, "a personal image (same content)")
t:is(db1:resolve("team/ci", "nope"), nil, "no such image: nil")
t:is(db1:resolve("team/nope", "a"), nil, "no such namespace: nil")
t:ok(db1:resolve("team/ci@" .. registry.user(), "a") == p1,
     "path@owner finds the same image")

-- Another connection moves the store: the first sees the new directory.
local store2 = fs.join(dir, "store2")
assert(run { "mkdir", store2 })
assert(run { "cp", "-p", p1, store2 .. "/" })
local ok, err = db2:exec("SELECT djinn_setting('store', ?)", store2)
t:ok(ok, "another connection sets the store: " .. tostring(err))
t:is(db1:resolve("team/ci", "a"), store2 .. "/" .. sha .. ".qcow2",
     "the first connection follows the other's store setting")

-- The same connection changes it back.
ok, err = db1:exec("SELECT djinn_setting('store', ?)", fs.join(dir, "images"))
t:ok(ok, "the same connection sets the store: " .. tostring(err))
t:is(db1:resolve("team/ci", "a"), p1, "and sees its own change")

-- Another connection removes and registers images.
t:ok(db2:remove("team/ci", "a"), "another connection removes team/ci a")
t:is(db1:resolve("team/ci", "a"), nil, "the first no longer finds it")
t:ok(db2:register("team/ci", "a", img), "another connection registers it again")
t:is(db1:resolve("team/ci", "a"), p1, "the first finds it again")

-- A registry made newer (by another connection) is refused at the next
-- lookup, with the check's own message, then accepted once it is back.
local version = db2:query("PRAGMA user_version")[1].user_version
assert(db2:exec("PRAGMA user_version = 99"))
local none, msg = db1:resolve("team/ci", "a")
t:is(none, nil, "a registry made newer meanwhile is refused")
t:like(tostring(msg), "newer than this extension knows",
       "with the registry check's message")
assert(db2:exec("PRAGMA user_version = " .. version))
t:is(db1:resolve("team/ci", "a"), p1, "and works again when it is back")

-- A damaged row: the fast path leaves the words to the slow one.
assert(db2:exec("PRAGMA ignore_check_constraints = ON"))
assert(db2:exec("UPDATE images SET sha256 = 'zz' WHERE name = 'a'"))
none, msg = db1:resolve("team/ci", "a")
t:is(none, nil, "a row without a valid sha256 is an error")
t:like(tostring(msg), "has no valid sha256", "the slow path's message")

-- Many lookups, one statement: the cache's statement is prepared once.
local n0 = #assert(db1:query("SELECT sql FROM sqlite_master"))
for i = 1, 200 do db1:resolve("", "mine") end
t:is(#assert(db1:query("SELECT sql FROM sqlite_master")), n0,
     "200 lookups change nothing in the schema")
db1:close()
db2:close()
t:ok(true, "both connections close")
assert(run { "rm", "-rf", dir })
