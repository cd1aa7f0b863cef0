-- images_test.lua - djinn.images.resolve / verify / unchanged, the one
-- API that finds a manifest's image and checks it before a boot (issue
-- 12), called directly as a script or a queue worker would: a real
-- registry, real qcow2 files made by qemu-img, no driver. (The qemu
-- driver's wrappers are tests/lua/qemu_test.lua's.)
local t = ...
local images = require "djinn.images"
local registry = require "djinn.registry"
local fs = require "djinn.fs"
local proc = require "djinn.proc"

local function run(argv)
    local c = assert(proc.spawn{ argv = argv, stdout = "pipe",
                                 stderr = "pipe" })
    local out = {}
    while true do
        local data, what = c:read(10)
        if data then out[#out + 1] = data
        elseif what == "eof" then break
        elseif what == "timeout" then break end
    end
    local _, code = c:wait(10)
    return code, table.concat(out)
end

local function logger()
    local l = { lines = {} }
    function l:line(s) self.lines[#self.lines + 1] = s end
    return l
end

local dir = t:tmpdir()
local img = dir .. "/a.qcow2"
local rc, out = run{ "qemu-img", "create", "-q", "-f", "qcow2", img, "8M" }
t:is(rc, 0, "qemu-img create: " .. out)
local disks = dir .. "/disks"
assert(fs.mkdir_p(disks .. "/qemu/x86_64/deb"))
assert(fs.copy(img, disks .. "/qemu/x86_64/deb/base"))
local regpath = dir .. "/reg/registry.db"
local db = assert(registry.open(regpath))
assert(db:register("team", "tiny", img))
local stored = db:resolve("team", "tiny")
db:close()

-- 1. Base images (no registry needed).
local r, err = images.resolve{ image = "deb/base", disks = disks,
                               registry = regpath }
t:is(r and { r.path, r.label, r.sha256 }, { disks ..
     "/qemu/x86_64/deb/base", "deb/base (base image)", nil },
     "resolve: a name with / is a base image under <disks>/qemu/<arch>: " ..
     tostring(err))
local l = logger()
local info, id = images.verify(r, l)
t:ok(info and info.virtual_size == 8 * 1048576 and type(id) == "table",
     "verify: a valid base image gives its header info and identity")
t:is(#l.lines, 0, "verify: a base image has no SHA-256 to check (no line)")
t:ok(images.unchanged(r.path, id), "unchanged: the same file")
assert(run{ "touch", "-d", "@1", r.path } == 0)
t:ok(not images.unchanged(r.path, id), "unchanged: a touched file is not")
r, err = images.resolve{ image = "x", arch = "aarch64", disks = disks }
t:like(tostring(err), "base image " .. disks:gsub("%p", "%%%0") ..
       "/qemu/aarch64/x", "resolve: arch picks the base image directory")
r, err = images.resolve{ image = "../etc/passwd", disks = disks }
t:ok(r == nil and err:find('".." is not allowed', 1, true),
     "resolve: a bad name is refused before any file is touched: " ..
     tostring(err))

-- 2. Not found: Djinn's message, where it looked, and where it is.
r, err = images.resolve{ image = "tiny", registry = regpath, disks = disks }
t:ok(r == nil, "resolve: a namespaced image is not found without its " ..
     "namespace")
t:like(tostring(err), "^couldn't find image tiny\nmake sure your image " ..
       "exists in the namespace", "... with Djinn's message")
t:like(tostring(err), "namespace: team, image: tiny", "... and the keys " ..
       "that find it")
r, err = images.resolve{ image = "tiny", registry = dir .. "/no.db",
                         disks = disks }
t:like(tostring(err), "no%.db %(does not exist%)", "resolve: a missing " ..
       "registry is named")
t:ok(not fs.exists(dir .. "/no.db"), "... and not created")

-- 3. Registered images: db:resolve's path and SHA-256, then image_verify
-- (hashed, then cached; a tampered file refused).
r, err = images.resolve{ image = "tiny", namespace = "team",
                         registry = regpath, disks = disks }
t:ok(r and r.path == stored and r.label == "tiny (namespace: team)" and
     r.registry == regpath and #(r.sha256 or "") == 64,
     "resolve: a registered image, its path and SHA-256: " .. tostring(err))
if r then
    l = logger()
    info, err = images.verify(r, l)
    t:ok(info ~= nil, "verify: the registered image passes: " ..
         tostring(err))
    t:like(l.lines[1] or "", "^Image tiny %(namespace: team%): SHA%-256 " ..
           "matches the registry %(checked in", "... hashed the first time")
    images.verify(r, l)
    t:like(l.lines[2] or "", "unchanged since the last check%)$",
           "... from the cache the second time")
    local data = assert(fs.readfile(stored))
    assert(run{ "chmod", "u+w", stored } == 0)
    local fh = assert(io.open(stored, "r+b"))
    fh:seek("set", #data - 1)
    fh:write(string.char((data:byte(#data) + 1) % 256))
    fh:close()
    info, err = images.verify(r, logger())
    t:ok(info == nil, "verify: a tampered registered image is refused")
    t:like(tostring(err), "^image tiny %(namespace: team%): the file " ..
           ".* does not match the registry %(SHA%-256 %x+, registered " ..
           "%x+%): it was modified or replaced after registration; " ..
           "refusing to boot it", "... with the message it always had")
end
