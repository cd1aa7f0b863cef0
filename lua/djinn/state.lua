-- djinn.state: a per-build state directory recording what a build
-- created outside the runner's own memory (QEMU processes, Docker
-- containers and volumes), and a reaper that cleans up after builds whose
-- runner died without cleaning up (kill -9, OOM killer, power cut of the
-- session).
--
--   state.base([env]) -> dir | nil, err
--       $XDG_RUNTIME_DIR/djinn when XDG_RUNTIME_DIR is set, else
--       ${TMPDIR:-/tmp}/djinn-<uid>. Created mode 0700; refused unless it
--       is a real directory (not a symlink) owned by us with no group or
--       other permission bits.
--   state.new_id() -> a fresh build id: 16 lowercase hex digits (8 bytes
--       of /dev/urandom). djinn.run makes one per build; it names the
--       state directory, labels the driver's resources (docker
--       djinn.build=ID), and is every JSON event's "build".
--   state.begin(driver_type [, opts]) -> rec | nil, err
--       creates <base>/<build id>/ (0700) and its "state" file; becomes
--       state.current(). opts.base overrides the base directory; opts.id
--       is the build's id (state.new_id(); default a new one). An id
--       whose directory exists already is refused.
--   state.current() -> the record of the running build, or a null record
--       (every method a no-op; dir nil) when none.
--   rec.id, rec.dir
--   rec:set(key, value)         top-level field (JSON-able), file rewritten
--   rec:add(key, item) / rec:del(key, item)   a set of strings under key
--   rec:mkdir(name) -> path | nil, err        a directory inside rec.dir
--   rec:record_process(key, pid)               { pid =, start = } of pid
--   rec:finish()                removes the directory; no longer current
--   state.proc_start(pid) -> start time (clock ticks since boot, field 22
--       of /proc/PID/stat) as a string | nil when no such process
--   state.held([opts]) -> { { id, dir, driver, until, command, pid } ... }
--       the builds holding a failed job's machine (run --hold, issue 15)
--       whose runner is alive; `djinn-lua release` ends a hold by creating
--       <dir>/release, which the holding runner polls. The reaper leaves
--       them alone while their runner lives, like every running build.
--   state.reap([opts]) -> report
--       For each build directory whose runner is provably dead (no such
--       pid, or the pid now belongs to a process with another start time):
--       - kills (SIGKILL) a recorded process only when its start time
--         matches the record AND its /proc/PID/cmdline contains the build
--         directory's path (QEMU's files live there, so its command line
--         names it): a reused pid is never signalled;
--       - removes recorded Docker containers and volumes only when the
--         engine lists them with our labels (djinn.managed=true,
--         djinn.build=<the recorded build id>);
--       - then removes the directory. A directory whose engine cannot be
--         reached is kept for the next run (and reported).
--       What to kill and remove is what the drivers declare (reap in
--       lua/djinn/drivers/<type>_describe.lua: process records, Docker
--       object sets), over every driver type.
--       A directory without a state file is removed once it is older than
--       a minute (a runner killed between mkdir and the first write).
--       opts = { base =, log = (with :warn / :line) , docker = module }
--       report = { dirs = n, killed = { pid... }, containers = { id... },
--                  volumes = { name... }, kept = { dir... } }
--
-- The state file is JSON, written atomically (temp file + rename) after
-- every change, and synced when it records something to clean up (the
-- first write, with only the runner, is not):
--   { "version": 1, "build": ID, "driver": TYPE,
--     "runner": { "pid": N, "start": "TICKS" },
--     "qemu": { "pid": N, "start": "TICKS" },
--     "docker": { "host": H, "version": V, "build": ID },
--     "containers": { ID: true }, "volumes": { NAME: true } }
local fs = require "djinn.fs"
local json = require "djinn.json"
local proc = require "djinn.proc"

local M = {}

local function uid()
    local f = io.open("/proc/self/status", "r")
    if f == nil then return nil end
    local s = f:read("a")
    f:close()
    return tonumber(s:match("\nUid:%s+(%d+)"))
end

-- Start time of a process (field 22 of /proc/PID/stat; the command name in
-- field 2 may contain spaces and parentheses, so count after the last ")").
function M.proc_start(pid)
    pid = math.tointeger(tonumber(pid))
    if pid == nil or pid <= 0 then return nil end
    local f = io.open("/proc/" .. pid .. "/stat", "r")
    if f == nil then return nil end
    local s = f:read("a")
    f:close()
    local rest = s and s:match("^.*%)%s+(.*)$")
    if rest == nil then return nil end
    local fields = {}
    for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
    -- rest starts at field 3 (state): field 22 is rest[20].
    return fields[20]
end

local function cmdline(pid)
    local f = io.open("/proc/" .. pid .. "/cmdline", "rb")
    if f == nil then return nil end
    local s = f:read("a")
    f:close()
    return s
end

function M.base(env)
    env = env or os.getenv
    local me = uid()
    if me == nil then
        return nil, "state: cannot read the user id from /proc/self/status"
    end
    local dir
    local xdg = env("XDG_RUNTIME_DIR")
    if xdg and xdg:sub(1, 1) == "/" then
        dir = xdg:gsub("/+$", "") .. "/djinn"
    else
        local tmp = env("TMPDIR")
        if tmp == nil or tmp:sub(1, 1) ~= "/" then tmp = "/tmp" end
        dir = tmp:gsub("/+$", "") .. "/djinn-" .. me
    end
    local ok, err = fs.mkdir_p(dir, tonumber("700", 8))
    if not ok then
        return nil, "state: cannot create the state directory " .. dir ..
            ": " .. tostring(err)
    end
    local st = fs.lstat(dir)
    if st == nil or st.type ~= "dir" or st.uid ~= me or
        st.mode & tonumber("077", 8) ~= 0 then
        return nil, string.format("state: %s must be a directory owned by " ..
            "uid %d with mode 0700 (found %s, owner %s, mode %s); remove " ..
            "it or set XDG_RUNTIME_DIR", dir, me,
            st and st.type or "nothing", st and tostring(st.uid) or "-",
            st and string.format("%04o", st.mode) or "-")
    end
    return dir
end

---------------------------------------------------------------------------
-- Records.
---------------------------------------------------------------------------
local Rec = {}
Rec.__index = Rec

-- The record when no build is running (drivers used directly by tests):
-- every method does nothing; dir and id are nil.
local function nop() return true end
local null = { null = true, set = nop, add = nop, del = nop,
               record_process = nop, finish = nop, save = nop,
               mkdir = function() return nil, "no state directory" end }

local current = nil

function M.current()
    return current or null
end

function M.new_id()
    local f = io.open("/dev/urandom", "rb")
    local raw = f and f:read(8)
    if f then f:close() end
    if raw == nil or #raw < 8 then
        raw = tostring(proc.now()) .. tostring(proc.getpid())
    end
    return (raw:sub(1, 8):gsub(".", function(c)
        return string.format("%02x", c:byte())
    end))
end

-- sync = false: no fsync (the first save, which records nothing to clean
-- up: lost in a power cut, the directory is removed as one without a
-- state file). Every save that records a process, container or volume is
-- made durable.
function Rec:save(sync)
    local ok, err = fs.writefile(self.dir .. "/state",
        json.encode(self.data) .. "\n", tonumber("600", 8), sync ~= false)
    if not ok then
        return nil, "state: cannot write " .. self.dir .. "/state: " ..
            tostring(err)
    end
    return true
end

function Rec:set(key, value)
    self.data[key] = value
    return self:save()
end

function Rec:add(key, item)
    local set = self.data[key] or json.object{}
    set[tostring(item)] = true
    self.data[key] = set
    return self:save()
end

function Rec:del(key, item)
    local set = self.data[key]
    if set == nil or set[tostring(item)] == nil then return true end
    set[tostring(item)] = nil
    return self:save()
end

function Rec:mkdir(name)
    local p = self.dir .. "/" .. name
    local ok, err = fs.mkdir_p(p, tonumber("700", 8))
    if not ok then return nil, err end
    return p
end

function Rec:record_process(key, pid)
    return self:set(key, { pid = pid, start = M.proc_start(pid) })
end

function Rec:finish()
    if current == self then current = nil end
    if self.dir then
        fs.rm_rf(self.dir)
        self.dir = nil
    end
end

-- opts.base, else state.base(opts.env). -> dir | nil, err
local function base_of(opts)
    if opts.base then return opts.base end
    return M.base(opts.env)
end

function M.begin(dtype, opts)
    opts = opts or {}
    local base, err = base_of(opts)
    if base == nil then return nil, err end
    local pid = proc.getpid()
    local start = M.proc_start(pid)
    local id, dir = opts.id, nil
    if id ~= nil then
        if type(id) ~= "string" or not id:match("^%x+$") then
            return nil, string.format("state: build id %q: expected hex " ..
                "digits (state.new_id())", tostring(id))
        end
        dir = base .. "/" .. id
        if fs.exists(dir) then
            return nil, "state: the build directory " .. dir ..
                " exists already (a build id is used once)"
        end
    else
        for _ = 1, 8 do
            id = M.new_id()
            dir = base .. "/" .. id
            if not fs.exists(dir) then break end
            dir = nil
        end
        if dir == nil then
            return nil, "state: cannot find a free build directory in " ..
                base
        end
    end
    local ok
    ok, err = fs.mkdir_p(dir, tonumber("700", 8))
    if not ok then
        return nil, "state: cannot create " .. dir .. ": " .. tostring(err)
    end
    local rec = setmetatable({ id = id, dir = dir, data = {
        version = 1, build = id, driver = dtype,
        runner = { pid = pid, start = start },
    } }, Rec)
    ok, err = rec:save(false)
    if not ok then
        fs.rm_rf(dir)
        return nil, err
    end
    current = rec
    return rec
end

---------------------------------------------------------------------------
-- The reaper.
---------------------------------------------------------------------------
-- Is the recorded process the one still running?
local function same_process(r)
    if type(r) ~= "table" then return false end
    local pid = math.tointeger(r.pid)
    if pid == nil or pid <= 0 or r.start == nil then return false end
    return M.proc_start(pid) == r.start
end

-- Is the runner of a build alive? Without a recorded start time (no
-- /proc when it started) a live pid counts as alive: when in doubt, the
-- build is left alone.
local function runner_alive(r)
    if type(r) ~= "table" then return false end
    local pid = math.tointeger(r.pid)
    if pid == nil or pid <= 0 then return false end
    if r.start == nil then
        return fs.exists("/proc/" .. pid)
    end
    return M.proc_start(pid) == r.start
end

local function kill9(pid)
    return proc.kill(math.tointeger(pid), "KILL") == true
end

-- What the drivers declare for the reaper (reap in
-- lua/djinn/drivers/<type>_describe.lua), over every driver type: a state
-- file is cleaned by what it holds, whatever its driver.
local function reap_decl(field)
    local describe = require "djinn.drivers.describe"
    local out, seen = {}, {}
    for _, dt in ipairs(describe.types) do
        for _, v in ipairs(describe.of(dt).reap[field]) do
            if not seen[v] then
                seen[v] = true
                out[#out + 1] = v
            end
        end
    end
    return out
end

-- How to list and remove each kind of Docker object a driver may declare.
local docker_kinds = {
    containers = { key = "Id", list = "containers",
                   remove = "container_remove" },
    volumes = { key = "Name", list = "volumes", remove = "volume_remove" },
}

local function reap_docker(data, report, opts)
    local dk = data.docker
    local kinds, any = reap_decl("docker"), false
    for _, kind in ipairs(kinds) do
        if next(data[kind] or {}) ~= nil then any = true end
    end
    if not any then return true end
    if type(dk) ~= "table" or type(dk.build) ~= "string" then
        return true -- nothing we could prove is ours
    end
    local docker = opts.docker or require "djinn.transport.docker"
    local c, err = docker.connect{ host = dk.host, version = dk.version,
                                   timeout = 30 }
    if c == nil then
        return nil, err
    end
    local labels = { ["djinn.managed"] = "true", ["djinn.build"] = dk.build }
    -- Remove what the engine lists that this build recorded AND that
    -- carries its labels; the names go to report[kind].
    local function remove(kind, key, list_fn, remove_fn, recorded)
        local list, lerr = list_fn(c, labels)
        if list == nil then return nil, lerr end
        for _, x in ipairs(list) do
            local lb = x.Labels or {}
            if recorded[x[key]] and lb["djinn.managed"] == "true" and
                lb["djinn.build"] == dk.build then
                local ok, rerr = remove_fn(c, x[key])
                if not ok then return nil, rerr end
                report[kind][#report[kind] + 1] = x[key]
            end
        end
        return true
    end
    for _, kind in ipairs(kinds) do
        local k = docker_kinds[kind]
        local ok, rerr = remove(kind, k.key, c[k.list], c[k.remove],
                                data[kind] or {})
        if not ok then return nil, rerr end
    end
    return true
end

local function reap_processes(dir, data, report)
    for _, key in ipairs(reap_decl("processes")) do
        local r = data[key]
        if same_process(r) then
            local cl = cmdline(r.pid)
            if cl and cl:find(dir, 1, true) then
                if kill9(r.pid) then
                    report.killed[#report.killed + 1] = r.pid
                end
            end
        end
    end
end

-- The builds holding a failed job's machine (run --hold) whose runner is
-- alive: { { id =, dir =, driver =, ["until"] =, command =, pid = } ... },
-- oldest hold first. opts = { base =, env = }. -> list | nil, err
function M.held(opts)
    opts = opts or {}
    local base, err = base_of(opts)
    if base == nil then return nil, err end
    local out = {}
    for _, name in ipairs(fs.listdir(base) or {}) do
        local dir = base .. "/" .. name
        local text = name:match("^%x+$") and
            fs.readfile(dir .. "/state", 1024 * 1024)
        local data = text and json.decode(text)
        if type(data) == "table" and type(data.hold) == "table" and
            runner_alive(data.runner) then
            out[#out + 1] = { id = name, dir = dir, driver = data.driver,
                              ["until"] = data.hold["until"],
                              command = data.hold.command,
                              pid = data.runner.pid }
        end
    end
    table.sort(out, function(a, b)
        return (a["until"] or 0) < (b["until"] or 0)
    end)
    return out
end

function M.reap(opts)
    opts = opts or {}
    local report = { dirs = 0, killed = {}, containers = {}, volumes = {},
                     kept = {} }
    local base = opts.base
    if base == nil then
        local err
        base, err = M.base(opts.env)
        if base == nil then
            report.error = err
            return report
        end
    end
    local names = fs.listdir(base) or {}
    for _, name in ipairs(names) do
        local dir = base .. "/" .. name
        local st = fs.lstat(dir)
        if name:match("^%x+$") and st and st.type == "dir" and
            (current == nil or current.dir ~= dir) then
            local text = fs.readfile(dir .. "/state", 1024 * 1024)
            local data = text and json.decode(text)
            if type(data) ~= "table" then
                if os.time() - st.mtime > 60 then
                    fs.rm_rf(dir)
                    report.dirs = report.dirs + 1
                end
            elseif not runner_alive(data.runner) then
                reap_processes(dir, data, report)
                local ok, err = reap_docker(data, report, opts)
                if ok then
                    fs.rm_rf(dir)
                    report.dirs = report.dirs + 1
                else
                    report.kept[#report.kept + 1] = dir
                    if opts.log then
                        opts.log:warn(string.format("cannot clean up after " ..
                            "the dead build %s (%s): %s; kept for the next " ..
                            "run", name, dir, tostring(err)))
                    end
                end
            end
        end
    end
    if opts.log and (#report.killed > 0 or #report.containers > 0 or
                     #report.volumes > 0) then
        opts.log:warn(string.format("cleaned up after %d dead build(s): " ..
            "killed %d process(es), removed %d container(s) and %d " ..
            "volume(s)", report.dirs, #report.killed, #report.containers,
            #report.volumes))
    end
    return report
end

return M
