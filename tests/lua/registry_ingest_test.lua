-- registry_ingest_test.lua - the store's streaming ingest from Lua
-- (db:ingest(), ext/store.c), db:resolve's sha256, image_verify (the
-- verification cache behind a SQL function) and the registry's name rules
-- (registry.check_namespace / check_image_name). Images are made with the
-- real qemu-img.
local t = ...
local registry = require "djinn.registry"
local fs = require "djinn.fs"
local proc = require "djinn.proc"

local dir = assert(fs.mkdtemp("djinn-ingest-test-"))

local function run(argv)
  local c = assert(proc.spawn { argv = argv, stdout = "null", stderr = "null" })
  local how, code = c:wait(60)
  return how == "exit" and code == 0
end

local good = fs.join(dir, "good.qcow2")
assert(run { "qemu-img", "create", "-q", "-f", "qcow2", good, "16M" })
local data = assert(fs.readfile(good))

local db = assert(registry.open(fs.join(dir, "registry.db")))
local store = db:query("SELECT djinn_store() AS s")[1].s

-- What the store directory holds besides the owner marker.
local function store_files()
  local names = {}
  local list = fs.listdir and fs.listdir(store) or nil
  if list == nil then
    local rows = db:query("SELECT djinn_fsck() AS j")
    return rows[1].j
  end
  for _, n in ipairs(list) do
    if n ~= ".djinn-store" then names[#names + 1] = n end
  end
  table.sort(names)
  return table.concat(names, " ")
end

local function count_images()
  return db:query("SELECT count(*) AS n FROM images")[1].n
end

-- 1. A real image in chunks of 1000 bytes.
local want = db:query("SELECT image_sha256(?) AS h", good)[1].h
local ing, err = db:ingest("http://127.0.0.1/good.qcow2")
t:ok(ing ~= nil, "db:ingest() begins: " .. tostring(err))
local okw = true
for i = 1, #data, 1000 do
  local ok, werr = ing:write(data:sub(i, i + 999))
  if not ok then okw = false; t:diag(werr) end
end
t:ok(okw, "every chunk is written")
local id, sha = ing:commit("team/ci", "streamed")
t:ok(math.type(id) == "integer", "commit returns the new id: " .. tostring(sha))
t:is(sha, want, "commit returns the content's SHA-256")
local rows = db:query("SELECT sha256, file_size FROM image_list WHERE " ..
  "name = 'streamed' AND namespace = 'team/ci'")
t:is(#rows, 1, "the image is registered")
t:is(rows[1] and rows[1].sha256, want, "with the right sha256")
t:is(rows[1] and rows[1].file_size, #data, "and the right size")
local path, rsha = db:resolve("team/ci", "streamed")
t:is(path, fs.join(store, want .. ".qcow2"), "resolve finds the stored file")
t:is(rsha, want, "resolve returns the sha256 as its second value")
t:is(fs.readfile(path), data, "the stored file is the ingested bytes")
t:checkerr("finished ingest", function() ing:write("x") end)
t:is(store_files(), want .. ".qcow2", "nothing but the stored file is left")

-- 2. Garbage: a clear error, no row, no file.
local before = count_images()
ing = assert(db:ingest("http://127.0.0.1/garbage"))
t:ok(ing:write(string.rep("garbage!", 8192)), "garbage is written")
local gid, gerr = ing:commit("team/ci", "garbage")
t:is(gid, nil, "garbage is not committed")
t:like(gerr or "", "http://127%.0%.0%.1/garbage: rejected, not an acceptable QCOW2 v3 image",
  "the error names the source and says why")
t:is(count_images(), before, "no row was added")
t:is(db:query("SELECT count(*) AS n FROM namespaces")[1].n, 2,
  "no namespace was added")
t:is(store_files(), want .. ".qcow2", "no file is left in the store")

-- 3. A duplicate name: refused in the transaction, nothing left.
ing = assert(db:ingest())
assert(ing:write(data))
local did, derr = ing:commit("team/ci", "streamed")
t:is(did, nil, "a name that exists is refused")
t:like(derr or "", "image 'streamed' already exists in namespace 'team/ci'",
  "with the registry's message")
t:is(store_files(), want .. ".qcow2", "the shared file stays, no temp file")

-- 4. Abort (and __gc): nothing left.
ing = assert(db:ingest())
assert(ing:write(data:sub(1, 4096)))
t:ok(store_files() ~= want .. ".qcow2", "a temp file exists while ingesting")
ing:abort()
ing:abort()
t:is(store_files(), want .. ".qcow2", "abort leaves nothing")
t:is(count_images(), before, "and registers nothing")
do
  local g = assert(db:ingest())
  assert(g:write(data:sub(1, 4096)))
  g = nil -- luacheck: ignore 311
end
collectgarbage()
collectgarbage()
t:is(store_files(), want .. ".qcow2", "a forgotten ingest is aborted by __gc")

-- 5. The same content under a second name shares the file; removing one
-- keeps it (store_refs), removing both removes it.
ing = assert(db:ingest())
assert(ing:write(data))
t:ok(ing:commit(nil, "mine") ~= nil, "the same content as a personal image")
t:is(store_files(), want .. ".qcow2", "shares the one file")
t:is(db:remove("team/ci", "streamed"), true, "remove one of the two")
t:ok(fs.exists(path), "the file stays while a row references it")
t:is(db:query("SELECT count(*) AS n FROM store_refs WHERE sha256 = ?", want)[1].n,
  1, "store_refs lists the remaining reference")
t:is(db:remove(nil, "mine"), true, "remove the other")
t:ok(not fs.exists(path), "the file goes with its last reference")

-- 6. image_verify: the verification cache behind a SQL function.
assert(db:register("team/ci", "v", good))
path, rsha = db:resolve("team/ci", "v")
local function verify(p, h)
  local r, e = db:query("SELECT image_verify(?, ?) AS v", p, h)
  return r and r[1].v, e
end
t:is(verify(path, rsha), "hashed", "first check hashes the file")
t:is(db:query("SELECT count(*) AS n FROM image_verified WHERE path = ?",
  path)[1].n, 1, "and remembers it")
t:is(verify(path, rsha), "cached", "second check is answered from the cache")
local other = string.rep("0", 64)
local v, verr = verify(path, other)
t:is(v, nil, "a different registered sha256 is refused")
t:like(verr or "", "the file " .. path:gsub("%p", "%%%0") ..
  " does not match the registry %(SHA%-256 " .. rsha .. ", registered " ..
  other .. "%)", "with the file, both hashes")
t:is(db:query("SELECT count(*) AS n FROM image_verified WHERE path = ?",
  path)[1].n, 0, "a mismatch drops the cached row")
t:is(verify(path, rsha), "hashed", "a good check after it hashes again")
-- A changed file (a copy whose cache row is forged to its identity but
-- another hash) is hashed, not trusted.
local copy = fs.join(dir, "copy.qcow2")
assert(fs.writefile(copy, data))
t:is(verify(copy, rsha), "hashed", "an identical copy verifies")
assert(fs.writefile(copy, data .. "x"))
v, verr = verify(copy, rsha)
t:is(v, nil, "a modified file is refused (its identity changed)")
t:like(verr or "", "does not match the registry", "as a mismatch")
v, verr = verify("relative.qcow2", rsha)
t:like(verr or "", "not absolute", "a relative path is refused")
v, verr = verify(path, "XYZ")
t:like(verr or "", "not 64 lowercase hex digits", "a malformed sha256 is refused")
v, verr = verify(fs.join(dir, "missing.qcow2"), rsha)
t:like(verr or "", "missing%.qcow2", "a missing file is an error naming it")

-- 7. The name rules, with the registry's messages.
t:is(registry.check_namespace("team/ci@alice"), true, "a good namespace")
t:is(registry.check_image_name("debian-12_x"), true, "a good image name")
local okn, msg = registry.check_namespace("team@..")
t:is(okn, nil, "owner '..' is refused")
t:like(msg or "", "owner '%.%.' may contain only", "with the registry's message")
okn, msg = registry.check_namespace("team@" .. string.rep("a", 80))
t:is(okn, nil, "an 80-character owner is refused")
t:like(msg or "", "1 to 64 characters", "saying the limit")
okn, msg = registry.check_image_name("a.b")
t:is(okn, nil, "'.' in an image name is refused")
t:like(msg or "", "image name 'a%.b': a name may contain only", "registry message")
local _, serr = db:query("SELECT namespace_resolve('team@..') AS x")
t:ok(serr and serr:find(select(2, registry.check_namespace("team@..")), 1, true),
  "the SQL function says the same")

db:close()
fs.rm_rf(dir)
