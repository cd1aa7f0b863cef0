-- install-base.lua FILE NAME [ALIAS...] [--driver-config F] [--disks DIR]
-- Install FILE as Djinn's base image NAME (e.g. debian/12): the file
-- <disks>/qemu/x86_64/NAME, where a manifest's `image: NAME` finds it,
-- plus each ALIAS as a symlink to it in the same directory (debian/stable
-- -> 12), as Djinn keeps its base images. disks is driver.conf's (the
-- default driver.conf, or --driver-config) unless --disks is given.
-- FILE is validated first (the registry's QCOW2 validator); the copy is
-- written beside its final name and renamed (fs.copy), so a build never
-- boots half a file. Run by `make images`:
--   djinn-lua examples/images/install-base.lua build/images/debian-12.qcow2 \
--       debian/12 debian/stable
local fs = require "djinn.fs"
local qcow2 = require "djinn.qcow2"
local config = require "djinn.config"
local paths = require "djinn.paths"

local function die(...)
    io.stderr:write("install-base: ", ...)
    io.stderr:write("\n")
    os.exit(1)
end

local pos, conf, disks = {}, nil, nil
local i = 1
while i <= #arg do
    if arg[i] == "--driver-config" then
        conf, i = arg[i + 1], i + 1
    elseif arg[i] == "--disks" then
        disks, i = arg[i + 1], i + 1
    else
        pos[#pos + 1] = arg[i]
    end
    i = i + 1
end
local file, name = pos[1], pos[2]
if not file or not name then
    die("usage: install-base.lua FILE NAME [ALIAS...] [--driver-config F] ",
        "[--disks DIR]")
end
local function check_name(n)
    if not n:match("^[%w_.-]+/[%w_.-]+$") or n:find("..", 1, true) then
        die(string.format("%q: expected GROUP/NAME (letters, digits, " ..
                          "'_', '-', '.'), e.g. debian/12", n))
    end
end
check_name(name)
for k = 3, #pos do
    check_name(pos[k])
    if pos[k]:match("^[^/]+") ~= name:match("^[^/]+") then
        die(string.format("alias %s: must be in %s's group (%s/...)", pos[k],
                          name, name:match("^[^/]+")))
    end
end

if disks == nil then
    if conf == nil then
        local def = paths.default_driver_config()
        if def and fs.exists(def) then conf = def end
    end
    local cfg = {}
    if conf then
        local c, err = config.load(conf)
        if c == nil then die(err) end
        cfg = c
    end
    disks = config.driver(cfg, "qemu").disks
    if disks == nil then die("no disks directory in ", conf or "the defaults") end
end

local rep = qcow2.check(file)
if not rep.valid then
    local why = {}
    for _, e in ipairs(rep.errors or {}) do why[#why + 1] = e.message or tostring(e) end
    die(file, ": not a valid QCOW2 v3 image: ", table.concat(why, "; "))
end

local dir = disks .. "/qemu/x86_64/" .. name:match("^[^/]+")
local base = name:match("[^/]+$")
local ok, err = fs.mkdir_p(dir)
if not ok then die("cannot create ", dir, ": ", tostring(err)) end
-- fs.copy writes beside the final name and renames: never half a file.
ok, err = fs.copy(file, dir .. "/" .. base, tonumber("644", 8))
if not ok then die(tostring(err)) end
print(string.format("installed %s -> %s/%s", file, dir, base))
local proc = require "djinn.proc"
for k = 3, #pos do
    local alias = pos[k]:match("[^/]+$")
    local ltmp = dir .. "/." .. alias .. ".link"
    fs.remove(ltmp)
    local child = assert(proc.spawn{ argv = { "ln", "-s", base, ltmp } })
    local how, code = child:wait(10)
    if how ~= "exit" or code ~= 0 then die("ln -s ", base, " ", ltmp, " failed") end
    ok, err = fs.rename(ltmp, dir .. "/" .. alias)
    if not ok then die(tostring(err)) end
    print(string.format("alias %s -> %s", pos[k], name))
end
