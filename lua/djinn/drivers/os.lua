-- djinn.drivers.os: run jobs with /bin/sh on this machine (docs/djinn-compat.md
-- §3.4), for tests and trusted setups. It gives NO isolation: jobs run as
-- the current user and can touch anything that user can.
--
-- Unlike Djinn's OS driver it never changes the process-wide cwd or
-- environment: each build gets a fresh temporary directory
-- (fs.mkdtemp "djinn-os-"), holding workspace/ (the jobs' cwd, where
-- objects are placed and artifacts are collected from) and scripts/ (the
-- job scripts, outside the workspace). Each job runs the Djinn script
-- (#!/bin/sh, set -ex) with `/bin/sh SCRIPT`, with the environment = the
-- runner's environment + the build env, passed to spawn (never setenv).
-- Output is streamed live from the child's pipe. destroy() removes the
-- directory.
--
-- A job is everything its script started (issue 10, defect 9): the script
-- runs under a keeper process (proc.spawn{reap = true}), a child
-- subreaper, so background and detached processes (`cmd &`, `(cmd &)`,
-- setsid, nohup, double forks) stay its descendants. The job ends when
-- the script ends: the keeper then kills whatever the script left
-- running, and the driver stops reading output at most DRAIN seconds
-- after the script's exit (a process outside the job holding the pipe
-- cannot keep the job open). On timeout or kill the keeper sends TERM to
-- the script's process group, kills every descendant after 1 s, and is
-- itself killed after 2 s. A kill -9 of the runner makes the keeper do
-- the same (PDEATHSIG).
--
-- Object destinations are paths inside the workspace; absolute paths and
-- ".." are refused (object error). Artifact sources are paths inside the
-- workspace (".." refused: artifact error) or absolute paths on this
-- machine, collected from where they are, as Djinn's os driver does (its
-- integration test collects /etc/os-release, /etc/hosts and /etc/shells)
-- and as the qemu driver collects absolute paths in the guest; the jobs
-- can read them anyway. Artifact sources may be globs; directories are
-- copied recursively. The artifact size limits bound the copy itself
-- (fs.copy / fs.copy_tree with max): an oversized file is refused from
-- its size before anything is written, a growing one is stopped at the
-- limit and removed. A directory's files count toward --max-artifacts
-- while it is copied (fs.copy_tree max_files). Copies go to a temporary
-- name beside the destination and are renamed when complete: a full disk
-- leaves nothing partial or empty and is an "artifact error: fs.copy:
-- DST: No space left on device". A directory holding a symbolic link
-- that leaves it (absolute, or climbing out with "..") is not collected.
local fs = require "djinn.fs"
local proc = require "djinn.proc"
local util = require "djinn.util"
local pipeline = require "djinn.pipeline"

local M = {}

-- What this driver declares (manifest keys, driver.conf keys and
-- defaults, what the reaper cleans): lua/djinn/drivers/os_describe.lua.
M.describe = require "djinn.drivers.os_describe"
local Driver = {}
Driver.__index = Driver

-- Seconds of output still read after the script's exit (see above).
M.DRAIN = 0.5

function M.new(o)
    return setmetatable({ log = o.log, ctx = o.ctx, config = o.config or {},
                          nscript = 0 }, Driver)
end

local function glob_escape(s)
    return (s:gsub("[%*%?%[%]\\]", "\\%0"))
end

-- Copy a file or a directory tree (src followed when it is a link);
-- max (bytes, nil = none) bounds the file, or the tree's files together;
-- max_files (nil = none) the tree's count of files and links. Past
-- either the copy stops: nil, cause, "limit" [, size] | "count". Nothing
-- is ever left at dst but a complete copy.
local function copy_any(src, dst, max, max_files)
    local st, err = fs.stat(src)
    if st == nil then
        return nil, err
    end
    if st.type == "dir" then
        return fs.copy_tree(src, dst, max, max_files)
    end
    return fs.copy(src, dst, nil, max)
end

function Driver:create(env, objects)
    local user = os.getenv("USER") or os.getenv("LOGNAME") or
        "the current user"
    self.log:line("warning: the os driver runs jobs directly on this " ..
                  "machine as " .. user .. ", with no isolation")
    local dir, err = fs.mkdtemp("djinn-os-")
    if dir == nil then
        return nil, "cannot create the workspace: " .. tostring(err)
    end
    self.dir = dir
    self.ws = dir .. "/workspace"
    self.scripts = dir .. "/scripts"
    local ok
    ok, err = fs.mkdir_p(self.ws)
    if ok then ok, err = fs.mkdir_p(self.scripts, tonumber("700", 8)) end
    if not ok then
        return nil, "cannot create the workspace: " .. tostring(err)
    end
    local e = proc.environ()
    for _, kv in ipairs(env) do
        e[kv.key] = kv.value
    end
    self.env = e
    self.log:line("Workspace " .. self.ws)
    pipeline.place_objects(objects, self.log, function(obj)
        local rel, why = util.safe_relpath(obj.dst)
        if rel == nil then
            return nil, string.format("%s: %s (the os driver places " ..
                "objects inside the workspace)", obj.dst, why)
        end
        local target = self.ws .. "/" .. rel
        local pok, perr = fs.mkdir_p(fs.dirname(target))
        if not pok then
            return nil, perr
        end
        return copy_any(obj.path, target)
    end)
    -- An object that could not be placed fails the build, as in every
    -- driver (issue 11, item 4.8): a job must not run without its input.
    local failed = {}
    for _, obj in ipairs(objects) do
        if obj.failed then failed[#failed + 1] = obj.src end
    end
    local why = pipeline.object_failure(failed, #objects)
    if why then return nil, why end
    return true
end

-- Matches of an artifact source: paths relative to the workspace, or
-- absolute paths for an absolute source.
function Driver:_glob(src)
    if src:sub(1, 1) == "/" then
        return fs.glob(src)
    end
    local rel, why = util.safe_relpath(src)
    if rel == nil then
        return nil, string.format("%s: %s (artifacts are collected from " ..
                                  "the workspace)", src, why)
    end
    local matches, err = fs.glob(glob_escape(self.ws) .. "/" .. rel)
    if matches == nil then
        return nil, err
    end
    local out = {}
    for i, p in ipairs(matches) do
        out[i] = p:sub(#self.ws + 2)
    end
    return out
end

function Driver:execute(job, store)
    local ctx, log = self.ctx, self.log
    self.nscript = self.nscript + 1
    local script = string.format("%s/%03d-%s.sh", self.scripts, self.nscript,
                                 (job.name:gsub("[^%w%._-]", "-")))
    -- No fsync: the script is read at once by this machine's sh, and
    -- nothing reads it after a crash.
    local ok, err = fs.writefile(script, job.script, tonumber("700", 8),
                                 false)
    if not ok then
        return "failed", "cannot write the job script: " .. tostring(err)
    end
    local child
    child, err = proc.spawn{
        argv = { "/bin/sh", script }, cwd = self.ws, env = self.env,
        stdin = "null", stdout = "pipe", stderr = "stdout", reap = true,
    }
    if child == nil then
        return "failed", tostring(err)
    end
    local function stop(reason)
        child:terminate(2)
        return reason, ctx:cause() or reason, nil
    end
    -- Read until EOF; once the script (the keeper) has exited, read what
    -- is left for at most DRAIN seconds: the keeper killed everything the
    -- job started, so only a process outside the job can hold the pipe.
    local how, code, ended
    while true do
        local data, what = child:read(0.1)
        if data then
            log:output(data)
        elseif what == "eof" then
            break
        end
        local reason = ctx:cancelled()
        if reason then
            return stop(reason)
        end
        if ended == nil then
            how, code = child:wait(0)
            if how ~= nil then
                ended = proc.now()
            end
        elseif proc.now() - ended > M.DRAIN then
            break
        end
    end
    while how == nil do
        how, code = child:wait(0.1)
        if how == nil then
            local reason = ctx:cancelled()
            if reason then
                return stop(reason)
            end
        end
    end
    local status, cause, exit_code = "passed", nil, 0
    if how == "signal" then
        status, cause, exit_code = "failed", "killed by signal " ..
            tostring(code), nil
    elseif code ~= 0 then
        status, cause, exit_code = "failed", "exit status " .. tostring(code),
            code
    end
    pipeline.collect_artifacts(job, log, store,
        function(src) return self:_glob(src) end,
        function(path, host, max, max_files)
            if path:sub(1, 1) ~= "/" then
                path = self.ws .. "/" .. path
            end
            return copy_any(path, host, max, max_files)
        end)
    return status, cause, exit_code
end

function Driver:destroy()
    if self.dir then
        fs.rm_rf(self.dir)
        self.dir = nil
    end
end

return M
