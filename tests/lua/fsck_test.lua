-- fsck_test.lua - djinn_fsck() and djinn_fsck('repair') on a real store:
-- what repair deletes (orphans named <sha256>.qcow2, .trash-*, .tmp-* of
-- dead registrations) and what it keeps (foreign names, .tmp-* of a live
-- pid or under a lock held by another process, registered files, rows
-- whose file is missing).
local t = ...
local registry = require "djinn.registry"
local fs = require "djinn.fs"
local proc = require "djinn.proc"
local json = require "djinn.json"

local dir = t:tmpdir()
local img = fs.join(dir, "plain.qcow2")
do
  local c = assert(proc.spawn { argv = { "qemu-img", "create", "-q", "-f",
    "qcow2", img, "16M" }, stdout = "null", stderr = "null" })
  assert(c:wait(60) == "exit")
end
local db = assert(registry.open(fs.join(dir, "registry.db")))
assert(db:register("team/ci", "plain", img))
local stored = assert(db:resolve("team/ci", "plain"))
local store = stored:match("^(.*)/[^/]+$")

local function fsck(arg)
  local rows, err
  if arg then
    rows, err = db:query("SELECT djinn_fsck(?) AS j", arg)
  else
    rows, err = db:query("SELECT djinn_fsck() AS j")
  end
  if rows == nil then return nil, err end
  return json.decode(rows[1].j)
end
local function set(list)
  local s = {}
  for _, v in ipairs(list or {}) do s[v] = true end
  return s
end
local function touch(name)
  assert(fs.writefile(fs.join(store, name), "x"))
end

-- A pid that is surely gone: a child that exited and was reaped.
local dead
do
  local c = assert(proc.spawn { argv = { "true" } })
  dead = c:pid()
  assert(c:wait(10) == "exit")
end
local me = tonumber(assert(io.open("/proc/self/stat")):read("a"):match("^(%d+)"))

local orphan = string.rep("ab", 32) .. ".qcow2"
touch(orphan)
touch("notes.txt")
touch(".trash-" .. dead .. "-0011")
touch(".tmp-" .. dead .. "-dead")
touch(".tmp-" .. me .. "-live")
touch(".tmp-" .. dead .. "-locked")
touch(".tmp-nopid")

-- Another process holds an fcntl lock on one of them (as a registering
-- djinn.so does), on a pid that is not alive: the lock alone keeps it.
local holder = assert(proc.spawn { argv = { "python3", "-c", [[
import fcntl, sys, time
f = open(sys.argv[1], "r+")
fcntl.lockf(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
]], fs.join(store, ".tmp-" .. dead .. "-locked") }, stdout = "pipe",
  stderr = "stdout" })
local said = ""
while not said:find("locked") do
  local d, w = holder:read(10)
  if d then said = said .. d elseif w ~= "timeout" then break end
end
t:like(said, "locked", "a second process holds the lock")

local r = assert(fsck())
t:is(r.ok, false, "report: not ok")
t:is(set(r.orphans), set{ orphan, "notes.txt" }, "report: both orphans")
t:is(#r.temp, 5, "report: the five temp names")
t:is(r.removed, nil, "report only: no 'removed' key")
t:ok(fs.exists(fs.join(store, orphan)), "report only: nothing deleted")

r = assert(fsck("repair"))
t:is(set(r.removed), set{ orphan, ".trash-" .. dead .. "-0011",
                          ".tmp-" .. dead .. "-dead" },
     "repair removes the sha256-named orphan, the trash and the dead temp")
t:is(set(r.orphans), set{ "notes.txt" }, "repair keeps a foreign name")
t:is(set(r.temp), set{ ".tmp-" .. me .. "-live", ".tmp-" .. dead .. "-locked",
                       ".tmp-nopid" },
     "repair keeps temps of a live pid, under a lock, or without a pid")
t:ok(not fs.exists(fs.join(store, orphan)) and
     not fs.exists(fs.join(store, ".tmp-" .. dead .. "-dead")),
     "the removed files are gone")
t:ok(fs.exists(stored), "the registered image's file is untouched")
t:is(r.images, 1, "the row is still there")
t:is(r.ok, false, "still not ok: a foreign file and busy temps remain")

holder:terminate(2)
r = assert(fsck("repair"))
t:is(set(r.removed), set{ ".tmp-" .. dead .. "-locked" },
     "once its holder is gone, the locked temp is removed")

-- A row whose file is missing: reported, never deleted.
fs.remove(fs.join(store, ".tmp-" .. me .. "-live"))
fs.remove(fs.join(store, ".tmp-nopid"))
fs.remove(fs.join(store, "notes.txt"))
assert(os.remove(stored))
r = assert(fsck("repair"))
t:is(r.missing, { stored }, "missing file: reported")
t:is(r.images, 1, "missing file: the row is kept (image_remove it)")
t:is(r.ok, false, "missing file: not ok")
t:ok(db:remove("team/ci", "plain"), "image_remove of that row works")
r = assert(fsck("repair"))
t:is(r.ok, true, "after image_remove: ok")

-- Misuse.
local _, err = fsck("fix")
t:like(err or "", "djinn_fsck: unknown mode 'fix'; allowed: 'repair'",
       "an unknown mode names the allowed one")
assert(db:exec("BEGIN"))
_, err = fsck("repair")
t:like(err or "", "transaction", "repair refuses to run inside a transaction")
assert(db:exec("ROLLBACK"))
db:close()
