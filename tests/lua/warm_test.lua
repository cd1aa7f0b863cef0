-- warm_test.lua - the warm snapshot cache without a VM (issue 15):
-- djinn.ipc (flock locks between processes, the one-shot Unix-socket
-- receiver with its peer check, size bound and stall timeout),
-- proc.spawn's inherited files, fs.touch, and djinn.warm (names per
-- image and machine shape, commit and lookup, a changed file found
-- corrupt, stale temporary directories, least-recently-used pruning that
-- skips a locked snapshot). The machine side is tests/e2e/warm.sh's.
local t = ...
local fs = require "djinn.fs"
local ipc = require "djinn.ipc"
local proc = require "djinn.proc"
local warm = require "djinn.warm"

local dir = t:tmpdir()

local function collect(c, limit)
    local out = {}
    local deadline = proc.now() + (limit or 20)
    while proc.now() < deadline do
        local data, what = c:read(1)
        if data then out[#out + 1] = data elseif what == "eof" then break end
    end
    local how, code = c:wait(10)
    return table.concat(out), how, code
end

-- --- ipc.lock -----------------------------------------------------------
local l1 = ipc.lock(dir .. "/x.lock")
t:ok(l1 ~= nil, "lock: taken")
local l2, err, code = ipc.lock(dir .. "/x.lock", 0.1)
t:ok(l2 == nil and code == "busy", "lock: a second holder is refused (busy)")
t:like(tostring(err), "held by another process", "lock: says why")
-- Another process: flock(1) cannot take it while we hold it.
local c = assert(proc.spawn{ argv = { "flock", "-n", dir .. "/x.lock",
                                      "true" } })
local _, how, st = collect(c)
t:ok(how == "exit" and st ~= 0, "lock: another process cannot take it")
l1:unlock()
c = assert(proc.spawn{ argv = { "flock", "-n", dir .. "/x.lock", "true" } })
_, how, st = collect(c)
t:ok(how == "exit" and st == 0, "lock: free again after unlock")
-- A holder that dies frees it.
c = assert(proc.spawn{ argv = { "flock", dir .. "/y.lock", "sleep", "30" } })
proc.sleep(0.3)
t:ok(ipc.lock(dir .. "/y.lock", 0.1) == nil, "lock: held by a live process")
c:kill("KILL")
c:wait(5)
local l3 = ipc.lock(dir .. "/y.lock", 5)
t:ok(l3 ~= nil, "lock: a killed holder's lock is free")
if l3 then l3:unlock() end
-- Shared locks (the image cache's "in use"): many shared holders, no
-- exclusive one while they hold; flock(1) -s agrees with ours.
local s1 = ipc.lock(dir .. "/s.lock", 0, "shared")
local s2 = ipc.lock(dir .. "/s.lock", 0, "shared")
t:ok(s1 ~= nil and s2 ~= nil, "lock shared: two shared holders")
local sx, _, scode = ipc.lock(dir .. "/s.lock", 0.1)
t:ok(sx == nil and scode == "busy", "lock shared: no exclusive one meanwhile")
c = assert(proc.spawn{ argv = { "flock", "-n", "-s", dir .. "/s.lock",
                                "true" } })
_, how, st = collect(c)
t:ok(how == "exit" and st == 0, "lock shared: flock -s (another process) shares it")
s1:unlock()
s2:unlock()
local sxx = ipc.lock(dir .. "/s.lock", 0)
t:ok(sxx ~= nil, "lock shared: exclusive once the shared holders are gone")
t:ok(ipc.lock(dir .. "/s.lock", 0, "shared") == nil,
     "lock shared: no shared holder while it is held exclusively")
sxx:unlock()
t:ok(not pcall(ipc.lock, dir .. "/s.lock", 0, "both"),
     "lock: an unknown mode is an argument error")
os.execute("ln -s /etc/passwd " .. dir .. "/link.lock")
t:ok(ipc.lock(dir .. "/link.lock") == nil,
     "lock: never through a symbolic link")

-- --- ipc.listen_unix / receive --------------------------------------------
local PY = "import socket,sys;s=socket.socket(socket.AF_UNIX);" ..
    "s.connect(sys.argv[1]);s.sendall(b'x'*int(sys.argv[2]));" ..
    "import time;time.sleep(float(sys.argv[3]));s.close()"
local function sender(sock, n, pause)
    return assert(proc.spawn{ argv = { "python3", "-c", PY, sock,
                                       tostring(n), tostring(pause or 0) } })
end
local sock = dir .. "/m.sock"
local l = assert(ipc.listen_unix(sock))
local s = sender(sock, 3000000)
local n, rerr = l:receive(dir .. "/state", 10, s:pid())
t:is(n, 3000000, "receive: every byte, to EOF")
t:is(fs.stat(dir .. "/state").size, 3000000, "receive: the file holds them")
t:is(fs.stat(dir .. "/state").mode & 511, 384, "receive: mode 0600")
collect(s)
l:close()
t:ok(not fs.exists(sock), "listener:close removes the socket")
t:ok(ipc.listen_unix(dir .. "/" .. string.rep("a", 120)) == nil,
     "listen_unix: a path too long for sun_path is refused")
-- The peer must be the expected process.
l = assert(ipc.listen_unix(sock))
s = sender(sock, 10)
n, rerr = l:receive(dir .. "/state2", 10, proc.getpid())
t:ok(n == nil and tostring(rerr):find("not from pid", 1, true),
     "receive: a connection from another pid is refused")
t:ok(not fs.exists(dir .. "/state2"), "receive: ... and nothing is kept")
collect(s)
l:close()
-- A bound on the size, and a stall.
l = assert(ipc.listen_unix(sock))
s = sender(sock, 100000)
n, rerr = l:receive(dir .. "/state3", 10, nil, 1000)
t:ok(n == nil and tostring(rerr):find("more than 1000 bytes", 1, true),
     "receive: more than max is an error")
t:ok(not fs.exists(dir .. "/state3"), "receive: ... the partial file removed")
collect(s)
l:close()
l = assert(ipc.listen_unix(sock))
s = sender(sock, 10, 30)
n, rerr = l:receive(dir .. "/state4", 3)
t:ok(n == nil and tostring(rerr):find("no byte for", 1, true),
     "receive: a stalled sender times out")
t:ok(not fs.exists(dir .. "/state4"), "receive: ... the partial file removed")
s:kill("KILL")
collect(s)
n, rerr = l:receive(dir .. "/state5", 0.3)
t:ok(n == nil and tostring(rerr):find("nobody connected", 1, true),
     "receive: nobody connecting times out")
l:close()

-- --- proc.spawn files -----------------------------------------------------
fs.writefile(dir .. "/f1", "one\n")
fs.writefile(dir .. "/f2", "two\n")
c = assert(proc.spawn{ argv = { "sh", "-c",
    "cat <&3; cat <&4; ls /proc/self/fd | wc -l" },
    files = { dir .. "/f1", dir .. "/f2" } })
local out = collect(c)
t:like(out, "^one\ntwo\n", "spawn files: inherited as fd 3 and 4")
-- 0 1 2 3 4, and ls's own directory fd: nothing else leaks in.
t:like(out, "\n6\n$", "spawn files: no other fd is inherited")
local c2, serr = proc.spawn{ argv = { "true" }, files = { dir .. "/nope" } }
t:ok(c2 == nil and serr:find("cannot open", 1, true),
     "spawn files: a missing file fails the spawn")
t:checkerr("files and reap", proc.spawn, { argv = { "true" },
           files = { dir .. "/f1" }, reap = true })

-- --- fs.touch ---------------------------------------------------------------
local before = fs.stat(dir .. "/f1").mtime_ns
proc.sleep(0.02)
t:ok(fs.touch(dir .. "/f1"), "touch")
t:ok(fs.stat(dir .. "/f1").mtime_ns > before, "touch: mtime moves")

-- --- djinn.warm ---------------------------------------------------------------
local shape = { memory = 256, cpus = 1, accel = "tcg", restrict = false }
local img = { sha256 = string.rep("ab", 32), path = dir .. "/x.qcow2" }
local name = warm.name(img, nil, shape)
t:is(name, string.rep("ab", 32) .. ".m256-c1-tcg-n-f" .. warm.FORMAT,
     "name: the content and the shape")
t:ok(warm.name(img, nil, { memory = 512, cpus = 1, accel = "tcg" }) ~= name,
     "name: another memory size, another snapshot")
t:ok(warm.name(img, nil, { memory = 256, cpus = 1, accel = "tcg",
                           restrict = true }) ~= name,
     "name: restrict changes it")
t:like(warm.name({ path = "/x" }, { dev = 1, ino = 2, size = 3,
                                     mtime_ns = 4 }, shape),
       "^base%-1%-2%-3%-4%.", "name: a base image by its file's identity")

local wd = dir .. "/warm"
fs.mkdir_p(wd)
t:ok(warm.lookup(wd, name) == nil, "lookup: none yet")
local function make(nm, size)
    local lock = assert(warm.lock(wd, nm))
    local tmp = assert(warm.begin(wd, nm))
    fs.writefile(tmp .. "/state", string.rep("s", size))
    fs.writefile(tmp .. "/disk.qcow2", "d")
    local snap, cerr = warm.commit(wd, nm, tmp, { qemu = { version = "7" } })
    lock:unlock()
    return snap, cerr
end
-- A dead creator's temporary directory goes when the next one begins.
fs.mkdir_p(wd .. "/.tmp-" .. name .. "-99999")
local snap = make(name, 100)
t:ok(snap and snap.meta.qemu.version == "7", "commit: then lookup finds it")
t:ok(not fs.exists(wd .. "/.tmp-" .. name .. "-99999"),
     "begin: a stale temporary directory is removed")
t:is(#fs.glob(wd .. "/.tmp-*"), 0, "commit: no temporary directory left")
-- A changed file: corrupt.
os.execute("printf x >> " .. snap.state)
local none, why = warm.lookup(wd, name)
t:ok(none == nil and tostring(why):find("changed", 1, true) and
     tostring(why):find("(size 101, recorded 100)", 1, true),
     "lookup: a state file that changed is refused, with why: " ..
     tostring(why))
-- begin() (with the lock) removes it.
snap = make(name, 100)
t:ok(snap ~= nil, "a corrupt snapshot is replaced by the next creator")
-- Same size, new times: the message names the field that differs.
fs.touch(snap.disk)
none, why = warm.lookup(wd, name)
t:ok(none == nil and tostring(why):find("its disk file changed after it " ..
     "was saved (mtime_ns ", 1, true),
     "lookup: a touched disk file is refused, naming mtime_ns: " ..
     tostring(why))
snap = make(name, 100)
-- meta.json that is not one.
fs.writefile(wd .. "/" .. name .. "/meta.json", "{}")
none, why = warm.lookup(wd, name)
t:ok(none == nil and why ~= nil, "lookup: a foreign meta.json is refused")

-- LRU: three snapshots, the oldest used goes first; a locked one stays.
local n1 = warm.name(img, nil, { memory = 1, cpus = 1, accel = "tcg" })
local n2 = warm.name(img, nil, { memory = 2, cpus = 1, accel = "tcg" })
local n3 = warm.name(img, nil, { memory = 3, cpus = 1, accel = "tcg" })
fs.rm_rf(wd .. "/" .. name)
make(n1, 1000)
proc.sleep(0.02)
make(n2, 1000)
proc.sleep(0.02)
make(n3, 1000)
proc.sleep(0.02)
warm.touch(warm.lookup(wd, n1)) -- n1 used last: n2 is the oldest
local held = warm.lock(wd, n2)
local removed = warm.prune(wd, 3000)
t:is(table.concat(removed, ","), n3,
     "prune: the least recently used unlocked snapshot goes")
held:unlock()
removed = warm.prune(wd, 1100, n1)
t:is(table.concat(removed, ","), n2, "prune: down to the bound, keep kept")
t:ok(warm.lookup(wd, n1) ~= nil, "prune: the kept one survives")
t:is(#warm.list(wd), 1, "list: one left")
t:ok(warm.remove(wd, n1) and not fs.exists(wd .. "/" .. n1),
     "remove: gone")
