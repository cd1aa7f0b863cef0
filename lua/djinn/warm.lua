-- djinn.warm: the warm VM snapshot cache (issue 15). The QEMU driver
-- (lua/djinn/drivers/qemu.lua) boots an image cold once, saves the
-- booted machine's state when its SSH server first answers (before any
-- login: no build's data, key or secret is in it), and later builds of the
-- same image and machine shape start from that state in about a second.
-- This module only keeps the cache; the machine side is the driver's.
--
-- Where: a registered image's snapshots live beside its file, in
-- <store>/warm/, so that image_remove and djinn_fsck account for them (the
-- store is the registry's; ext/store.c). A base image's (a file under
-- `disks`), or a store this user cannot write, use
-- $XDG_CACHE_HOME/djinn/warm (~/.cache/djinn/warm).
--
-- One snapshot is a directory <dir>/<name>/ holding
--   state       the machine's device and memory state (QEMU's migration
--               stream, written by `migrate` to a Unix socket of ours)
--   disk.qcow2  the guest's disk writes up to that moment (the cold
--               boot's overlay, frozen; its backing is the image)
--   meta.json   { version, name, image, shape, qemu = { version,
--               package }, created, boot_s, save_s, files = { state =
--               identity, disk = identity } }
--   used        touched on every use (least recently used goes first)
-- name = <sha256 of the image, or base-<dev>-<ino>-<size>-<mtime_ns>>.
-- m<MiB>-c<cpus>-<accel>-<n|r (restrict)>-f<FORMAT>: a change of the
-- image or the machine's shape gives another name, so an old snapshot is
-- never used for it. The QEMU version is checked against meta.json before
-- the state is loaded. FORMAT changes whenever the machine's command line
-- changes in a way a saved state depends on.
--
-- Creation is made safe by a lock per name (<dir>/<name>.lock, flock: a
-- killed creator's lock goes with it) and a temporary directory
-- <dir>/.tmp-<name>-<pid> renamed into place only when complete: a build
-- never sees half a snapshot. Builds that find the lock held boot cold
-- and do not wait. Every file's identity (device, inode, size, mtime,
-- ctime) is recorded in meta.json when it is finished; a file that
-- changed since is corrupt, and the snapshot is removed (the driver then
-- boots cold with one warning).
--
--   warm.FORMAT
--   warm.dir_for(img) -> dir | nil, why (created 0700 when missing)
--   warm.name(img, identity, shape) -> name
--   warm.lookup(dir, name) -> snap | nil, why (why nil: there is none)
--       snap = { dir =, name =, path =, state =, disk =, meta = }
--   warm.lock(dir, name [, wait_s]) -> lock | nil, why, "busy"
--   warm.begin(dir, name) -> tmp dir | nil, why   (with the lock held:
--       stale temporary directories of that name are removed first)
--   warm.commit(dir, name, tmp, meta) -> snap | nil, why
--   warm.touch(snap)
--   warm.remove(dir, name) -> true | nil, why
--   warm.list(dir) -> { { name =, bytes =, used = mtime, meta = } ... }
--   warm.prune(dir, max_bytes [, keep]) -> removed names
local fs = require "djinn.fs"
local ipc = require "djinn.ipc"
local json = require "djinn.json"
local paths = require "djinn.paths"

local M = {}

M.FORMAT = 1

local function identity(path)
    local st = fs.stat(path)
    if st == nil or st.type ~= "file" then return nil end
    return { dev = st.dev, ino = st.ino, size = st.size,
             mtime_ns = st.mtime_ns, ctime_ns = st.ctime_ns }
end

-- The first field in which identity a differs from the recorded b, or nil.
local function differs(a, b)
    if type(b) ~= "table" then return "record" end
    for _, k in ipairs{ "size", "mtime_ns", "ctime_ns", "ino", "dev" } do
        if a[k] ~= b[k] then return k end
    end
    return nil
end

local function writable_dir(dir)
    local ok = fs.mkdir_p(dir, 448)
    if not ok then return false end
    local probe = dir .. "/.probe-" .. require("djinn.proc").getpid()
    local f = io.open(probe, "w")
    if f == nil then return false end
    f:close()
    os.remove(probe)
    return true
end

function M.dir_for(img)
    if img.sha256 and img.path then
        local dir = fs.dirname(img.path) .. "/warm"
        if writable_dir(dir) then return dir end
    end
    local cache, err = paths.default_cache()
    if cache == nil then return nil, err end
    local dir = cache .. "/djinn/warm"
    if not writable_dir(dir) then
        return nil, "cannot create the warm snapshot directory " .. dir
    end
    return dir
end

function M.name(img, id, shape)
    local base = img.sha256
    if base == nil then
        base = string.format("base-%d-%d-%d-%d", id.dev, id.ino, id.size,
                             id.mtime_ns)
    end
    return string.format("%s.m%d-c%d-%s-%s-f%d", base, shape.memory,
                         shape.cpus, shape.accel,
                         shape.restrict and "r" or "n", M.FORMAT)
end

function M.lookup(dir, name)
    local path = dir .. "/" .. name
    local text = fs.readfile(path .. "/meta.json", 1 << 20)
    if text == nil then return nil end
    local meta = json.decode(text)
    if type(meta) ~= "table" or meta.version ~= 1 or meta.name ~= name or
        type(meta.files) ~= "table" then
        return nil, "its meta.json is not a snapshot's description"
    end
    local snap = { dir = dir, name = name, path = path, meta = meta,
                   state = path .. "/state", disk = path .. "/disk.qcow2" }
    for _, f in ipairs{ "state", "disk" } do
        local id = identity(snap[f])
        if id == nil then
            return nil, "its " .. f .. " file is missing"
        end
        local k = differs(id, meta.files[f])
        if k == "record" then
            return nil, "its meta.json records no identity for its " .. f ..
                " file"
        elseif k then
            return nil, string.format("its %s file changed after it was " ..
                "saved (%s %s, recorded %s)", f, k, tostring(id[k]),
                tostring(meta.files[f][k]))
        end
    end
    return snap
end

function M.lock(dir, name, wait)
    return ipc.lock(dir .. "/" .. name .. ".lock", wait or 0)
end

function M.begin(dir, name)
    -- With the lock held: a snapshot of this name that does not check
    -- out, and temporary directories of dead creators, are removed.
    local _, bad = M.lookup(dir, name)
    if bad then fs.rm_rf(dir .. "/" .. name) end
    for _, n in ipairs(fs.listdir(dir) or {}) do
        if n:sub(1, #name + 6) == ".tmp-" .. name .. "-" then
            fs.rm_rf(dir .. "/" .. n)
        end
    end
    local tmp = string.format("%s/.tmp-%s-%d", dir, name,
                              require("djinn.proc").getpid())
    local ok, err = fs.mkdir_p(tmp, 448)
    if not ok then return nil, err end
    return tmp
end

function M.commit(dir, name, tmp, meta)
    meta.version, meta.name, meta.files = 1, name, {}
    for f, file in pairs{ state = "state", disk = "disk.qcow2" } do
        local id = identity(tmp .. "/" .. file)
        if id == nil then
            fs.rm_rf(tmp)
            return nil, "the snapshot's " .. file .. " was not written"
        end
        meta.files[f] = id
    end
    -- Renaming the directory leaves the files inside as they are (inode,
    -- size, times), so their identities hold at the final place.
    local ok, err = fs.writefile(tmp .. "/meta.json",
                                 json.encode(meta) .. "\n", 292)
    if ok then ok, err = fs.writefile(tmp .. "/used", "") end
    if ok then ok, err = fs.rename(tmp, dir .. "/" .. name) end
    if not ok then
        fs.rm_rf(tmp)
        return nil, err
    end
    return M.lookup(dir, name)
end

function M.touch(snap)
    fs.touch(snap.path .. "/used")
end

function M.remove(dir, name)
    local ok, err = fs.rm_rf(dir .. "/" .. name)
    if not ok then return nil, err end
    os.remove(dir .. "/" .. name .. ".lock")
    return true
end

function M.list(dir)
    local out = {}
    for _, n in ipairs(fs.listdir(dir) or {}) do
        local path = dir .. "/" .. n
        local st = n:sub(1, 1) ~= "." and fs.lstat(path)
        if st and st.type == "dir" then
            local bytes = 0
            for _, f in ipairs(fs.listdir(path) or {}) do
                local fst = fs.lstat(path .. "/" .. f)
                if fst and fst.type == "file" then bytes = bytes + fst.size end
            end
            local used = fs.lstat(path .. "/used")
            local text = fs.readfile(path .. "/meta.json", 1 << 20)
            out[#out + 1] = { name = n, bytes = bytes,
                              used = used and used.mtime_ns or 0,
                              meta = text and json.decode(text) or nil }
        end
    end
    table.sort(out, function(a, b) return a.used < b.used end)
    return out
end

function M.prune(dir, max, keep)
    local all = M.list(dir)
    local total = 0
    for _, s in ipairs(all) do total = total + s.bytes end
    local removed = {}
    for _, s in ipairs(all) do
        if total <= max then break end
        if s.name ~= keep then
            local lock = M.lock(dir, s.name)
            if lock then
                if M.remove(dir, s.name) then
                    total = total - s.bytes
                    removed[#removed + 1] = s.name
                end
                lock:unlock()
            end
        end
    end
    return removed, total
end

return M
