-- djinn.pipeline: the specification of a build, and its runner.
--
-- A build (docs/djinn-compat.md §1.5-§1.9, §3.0, §4, §6.1) is:
--   1. the stage "setup" with one job "clone.<n>" (n from 1) per manifest
--      source: `mkdir -p DIR` (when DIR is not empty), `git clone URL DIR`,
--      then `cd DIR` and `git checkout -q REF` only when REF is set;
--   2. the manifest stages in order (stages without jobs are skipped; with
--      opts.stage only setup and that stage), the jobs in manifest order,
--      strictly one after another.
-- Each job runs the Djinn script (M.script): "#!/bin/sh\nexec 2>&1\nset
-- -ex\n\n" and every command followed by "\n"; a block-scalar command is
-- one command. The environment is the manifest env plus opts.env.
--
-- Statuses, in enum order: queued < running < passed <
-- passed_with_failures < failed < killed < timed_out. The build status is
-- the worst job status. A failed job in an allow_failures stage is
-- passed_with_failures and the build goes on; any other failure STOPS the
-- build: later jobs stay "queued" and are listed as not run. A driver that
-- cannot be created fails the build (result.infra = true, exit 3). The
-- whole-build timeout gives timed_out, SIGINT/SIGTERM give killed; then
-- the running job is stopped (its process group terminated) and the driver
-- is destroyed before run() returns.
--
-- THE DRIVER INTERFACE. A driver type T is the module djinn.drivers.T:
--
--   mod.new(o) -> driver | nil, cause
--     o.config    this driver's driver.conf block, defaults filled in
--                 (config.driver(cfg, T)); unknown keys kept
--     o.manifest  the parsed manifest; o.driver = manifest.driver (type and
--                 string keys, e.g. image)
--     o.log       the output writer (djinn.log): log:line(text) for the
--                 driver's own messages, log:output(bytes) for job output
--                 AS IT ARRIVES (live), log:warn(text) for stderr warnings
--     o.ctx       the cancellation context, see below
--     o.registry  path of the image registry database (--registry)
--     o.build_id  the build's id (djinn.state.new_id()): name what the
--                 driver creates after it (docker: djinn.build=ID)
--     o.objects_dir, o.artifacts_dir  absolute host directories
--   driver:create(env, objects) -> true | nil, cause
--     Boot/connect, remember env ({ {key=, value=}, ... }, in order; the
--     map form is env.map), then place the objects with
--     pipeline.place_objects(objects, log, put) where put(obj) copies the
--     host file obj.path to obj.dst in the build environment (-> true |
--     nil, cause). An object problem never fails create.
--     Must poll ctx:cancelled() during long waits (boot) and give up with
--     nil, reason when it returns non-nil.
--   driver:execute(job, store) -> status, cause, exit_code
--     job = { name =, stage =, commands = {...}, script = "#!/bin/sh...",
--             artifacts = { {src=, dst=, named=}, ... } }
--     Runs job.script with the create() env, streams the merged
--     stdout+stderr to log:output(), and returns
--       "passed", nil, 0
--       "failed", "exit status 1", 1          (cause as Djinn prints it)
--       "killed" | "timed_out", cause, nil    (when ctx:cancelled() said so:
--                                              the job's processes are
--                                              stopped before returning)
--     ctx:cancelled() must be polled at least every 100 ms while waiting.
--     After the script ended (passed or failed) the driver collects the
--     job's artifacts with pipeline.collect_artifacts(job, log, store,
--     glob, get): glob(src) -> list of matching paths in the build
--     environment | nil, cause; get(path, host_path, max, max_files) ->
--     true | nil, cause [, code [, size]]. max = store:room(): the most
--     bytes the file (a directory: its files together) may have, nil = no
--     limit. A get that would go past max stops the transfer at once
--     (when the size is known before, e.g. from a stat, nothing is
--     fetched), leaves no partial file and returns nil, cause, "limit",
--     size (the size when it was known, else nil); the pipeline then
--     prints the same "not kept" error as the final accounting
--     (store:account) does. max_files = store:files_room(): the most files
--     and links a directory may bring (--max-artifacts); a get that can
--     count while it copies stops past it with nil, cause, "count" [, n];
--     one that cannot is caught by the accounting after the copy. A get
--     must never leave a partial or empty file under host_path (write a
--     temporary name and rename it); whatever a failed get left where
--     nothing was before is removed (store:abandon), with the directories
--     target() made for it. Its cause should say what failed and where
--     ("fs.copy: /art/x: No space left on device").
--   driver:destroy()  always called once create() was called (even when
--     it failed); tears everything down; must not raise.
--   A Lua error raised by a driver method is caught: from new/create it
--   fails the build as an infrastructure error, from execute it fails the
--   job.
--
-- THE CONTEXT (ctx):
--   ctx:cancelled() -> nil | "killed" | "timed_out"   (latched: once
--                      non-nil it stays so; polls proc.pending_signal())
--   ctx.deadline    proc.now() value at which the build times out, or nil
--   ctx:remaining() -> seconds left (>= 0) or nil when there is no limit
--
-- THE ARTIFACT STORE (store), given to execute:
--   store.dir                   the absolute artifacts directory
--   store:target(dst [, match]) -> host path | nil, cause: "*" in dst is
--       replaced by basename(match) (collect_artifacts passes no match for
--       an artifact whose DST the manifest did not write, named = false:
--       dst is then the match's own basename, `*` and all, so out/*.log
--       collects a.log, not Djinn's a.log.log); dst must be relative with
--       no "..";
--       parent directories are created without following a symbolic
--       link below store.dir (fs.mkdir_beneath: `latest -> /elsewhere` in
--       the artifacts directory refuses `x => latest/x`, nothing is made
--       outside); an existing symlink at the path itself is refused.
--   store:room() -> bytes | nil: the byte limit for the next artifact
--   store:files_room() -> count | nil: the file limit for the next one
--   (collect_artifacts also calls store:admit, :over, :over_count,
--   :account and :abandon; a store without them is not capped.)
--
--   M.run(manifest, opts) -> result | nil, msg, 2 (usage: unknown stage,
--                                                  driver not available)
--     opts = { log =, config = (parsed driver.conf table or nil),
--              objects = ".", artifacts = ".", stage = nil,
--              timeout = seconds (nil or 0: none), env = { {key=,value=} }
--              or { K = V }, registry = path, signals = true (install
--              INT/TERM handlers), drivers = { T = module } (overrides),
--              warnings = { text... } (load warnings, repeated in the
--              summary), tree = { objects = {...}, line = text } (run
--              --tree: djinn.tree.stage; placed first, see below),
--              build_id = ID (djinn.state.new_id(); default a new one) }
--     result = { status =, duration =, exit_code =, error = summary or nil,
--                infra = bool, jobs = { {name, stage, status, duration,
--                exit_code, cause}... } (every planned job, in order),
--                not_run = { jobs still queued }, warnings = opts.warnings,
--                build_id = ID, timeout = opts.timeout (seconds) }
--   NO JOB RAN IS NOT A PASS (issue 11): a build whose plan has no
--   manifest job with a command (every job dropped by a misspelt stage,
--   a misspelt `commands`, a --stage without jobs) fails at once with
--   exit 1 and "no job ran: <why>"; no driver is created.
--   M.check(manifest, opts) -> errors, warnings: what run would refuse
--     (an unknown --stage or driver) and what it would run to no effect
--     (a job without commands); "FILE:LINE:COL: message" when the job has
--     a position. M.nothing_to_run(manifest, opts) -> why | nil.
--   THE TREE (run --tree): opts.tree.objects are objects like the
--     manifest's ({ src =, dst =, path =, tree = true }: the top-level
--     entries of a staged copy of the tree, dst relative = the build's
--     working directory), placed before the manifest objects through the
--     same driver:create(env, objects) and pipeline.place_objects. One
--     line (opts.tree.line) replaces their "Placing object" lines. A tree
--     object that cannot be placed, or that a driver never placed, fails
--     the build as an infrastructure error (exit 3): jobs never run on
--     half a tree.
--   M.exit_code(status, infra) -> 0 passed/passed_with_failures, 1 failed,
--     3 failed with infra, 4 timed_out, 130 killed.
local util = require "djinn.util"
local config = require "djinn.config"

local M = {}

M.statuses = { "queued", "running", "passed", "passed_with_failures",
               "failed", "killed", "timed_out" }
M.rank = {}
for i, s in ipairs(M.statuses) do M.rank[s] = i end

function M.worst(a, b)
    return M.rank[b] > M.rank[a] and b or a
end

function M.exit_code(status, infra)
    if status == "passed" or status == "passed_with_failures" then
        return 0
    elseif status == "timed_out" then
        return 4
    elseif status == "killed" then
        return 130
    end
    return infra and 3 or 1
end

function M.script(commands)
    local parts = { "#!/bin/sh\nexec 2>&1\nset -ex\n\n" }
    for _, c in ipairs(commands) do
        parts[#parts + 1] = c .. "\n"
    end
    return table.concat(parts)
end

function M.clone_commands(src)
    local cmds = {}
    if src.dir ~= "" then
        cmds[#cmds + 1] = "mkdir -p " .. src.dir
    end
    cmds[#cmds + 1] = "git clone " .. src.url .. " " .. src.dir
    if src.ref and src.ref ~= "" then
        cmds[#cmds + 1] = "cd " .. src.dir
        cmds[#cmds + 1] = "git checkout -q " .. src.ref
    end
    return cmds
end

-- The stages to run: { { name =, jobs = { job... } }, ... } | nil, msg
function M.plan(m, opts)
    opts = opts or {}
    local stages = {}
    if opts.stage ~= nil then
        local found = false
        for _, s in ipairs(m.stages) do
            if s == opts.stage then found = true end
        end
        if not found then
            return nil, string.format("unknown stage %q (the manifest's " ..
                "stages: %s)", opts.stage,
                #m.stages > 0 and table.concat(m.stages, ", ") or "none")
        end
    end
    local setup = { name = "setup", jobs = {} }
    for i, src in ipairs(m.sources) do
        local cmds = M.clone_commands(src)
        setup.jobs[i] = { name = "clone." .. i, stage = "setup",
                          commands = cmds, artifacts = {},
                          script = M.script(cmds) }
    end
    if #setup.jobs > 0 then
        stages[#stages + 1] = setup
    end
    for _, sname in ipairs(m.stages) do
        if opts.stage == nil or opts.stage == sname then
            local st = { name = sname, jobs = {},
                         allow_failure = m.allowed[sname] or false }
            for _, j in ipairs(m.jobs) do
                if j.stage == sname then
                    st.jobs[#st.jobs + 1] = {
                        name = j.name, stage = sname, commands = j.commands,
                        artifacts = j.artifacts, script = M.script(j.commands),
                    }
                end
            end
            if #st.jobs > 0 then
                stages[#stages + 1] = st
            end
        end
    end
    return stages
end

-- Why a build of m (with opts.stage) would run no command at all, or
-- nil. Only manifest jobs count: clone jobs alone build nothing.
function M.nothing_to_run(m, opts)
    opts = opts or {}
    local planned, empty = 0, 0
    for _, j in ipairs(m.jobs) do
        if opts.stage == nil or j.stage == opts.stage then
            planned = planned + 1
            if #j.commands == 0 then empty = empty + 1 end
        end
    end
    if planned > empty then
        return nil
    elseif opts.stage and planned == 0 then
        return string.format("stage %s has no jobs", opts.stage)
    elseif planned == 0 then
        return "the manifest has no jobs in its stages" ..
            (#m.stages == 0 and " (it lists no stages)" or
             " (stages: " .. table.concat(m.stages, ", ") .. ")")
    end
    return planned == 1 and "its only job has no commands" or
        string.format("none of its %d jobs has commands", planned)
end

function M.check(m, opts)
    opts = opts or {}
    local errors, warnings = {}, {}
    local _, perr = M.plan(m, opts)
    if perr then errors[#errors + 1] = perr end
    local dtype = m.driver and m.driver.type
    if dtype then
        local _, derr = M.load_driver(dtype, opts.drivers, true)
        if derr then errors[#errors + 1] = derr end
    end
    for _, j in ipairs(m.jobs) do
        if #j.commands == 0 and (opts.stage == nil or j.stage == opts.stage)
        then
            warnings[#warnings + 1] = string.format("%s:%d:%d: jobs[%s]: " ..
                "job %s in stage %s has no commands; it runs nothing",
                m.file or "<manifest>", j.line or 0, j.col or 0,
                tostring(j.index or "?"), j.name, j.stage)
        end
    end
    return errors, warnings
end

---------------------------------------------------------------------------
-- Context, store and the helpers drivers use.
---------------------------------------------------------------------------
local Ctx = {}
Ctx.__index = Ctx

function M.new_ctx(timeout, proc, signals)
    local ctx = setmetatable({ proc = proc, signals = signals }, Ctx)
    if timeout and timeout > 0 then
        ctx.deadline = proc.now() + timeout
        ctx.timeout = timeout
    end
    return ctx
end

function Ctx:cancelled()
    if self.reason then return self.reason end
    if self.signals then
        local sig = self.proc.pending_signal()
        if sig then
            self.reason, self.signal = "killed", sig
            return self.reason
        end
    end
    if self.deadline and self.proc.now() >= self.deadline then
        self.reason = "timed_out"
    end
    return self.reason
end

function Ctx:remaining()
    if not self.deadline then return nil end
    return math.max(0, self.deadline - self.proc.now())
end

function Ctx:cause()
    if self.reason == "killed" then
        return "killed by SIG" .. (self.signal or "INT")
    elseif self.reason == "timed_out" then
        return "timed out after " .. util.fmt_timeout(self.timeout or 0)
    end
end

local Store = {}
Store.__index = Store

-- Artifact caps (opts.config.limits: max_artifacts, max_artifact_size,
-- max_artifacts_total; 0 = no limit). Over a cap a file is not kept and
-- an "artifact error:" line says which cap and how to raise it.
-- max_artifacts counts files: a directory artifact counts the files and
-- symbolic links below it (at least 1), not 1 (issue 10, defect 12).
M.DEFAULT_LIMITS = { max_artifacts = 1000,
                     max_artifact_size = 1024 * 1024 * 1024,
                     max_artifacts_total = 10 * 1024 * 1024 * 1024 }

function M.new_store(dir, fs, limits)
    local l = {}
    for k, v in pairs(M.DEFAULT_LIMITS) do
        local o = limits and limits[k]
        l[k] = type(o) == "number" and o or v
    end
    return setmetatable({ dir = dir, fs = fs, limits = l, count = 0,
                          total = 0, pending = {} }, Store)
end

-- Before fetching: nil | cause when the count cap is already reached.
-- (The files are counted when kept: store:account.)
function Store:admit(shown)
    local cap = self.limits.max_artifacts
    if cap > 0 and self.count >= cap then
        return string.format("%s: not collected: the build already has " ..
            "%d artifacts, the limit (--max-artifacts %d)", shown, cap, cap)
    end
    return nil
end

-- The most files (and links) the next artifact may bring: what is left
-- of the count cap; nil = no limit. Drivers that can count while they
-- copy stop there (get(path, host, max, max_files)).
function Store:files_room()
    local cap = self.limits.max_artifacts
    if cap > 0 then
        return math.max(0, cap - self.count)
    end
    return nil
end

-- The most bytes the next artifact may have: the per-file cap or what is
-- left of the total cap, whichever is smaller; nil = no limit. Drivers
-- stop a transfer that goes past it (get(path, host, max)).
function Store:room()
    local cap, tcap = self.limits.max_artifact_size,
                      self.limits.max_artifacts_total
    local room
    if cap > 0 then room = cap end
    if tcap > 0 then
        local left = math.max(0, tcap - self.total)
        room = room and math.min(room, left) or left
    end
    return room
end

-- The one wording of a size refusal: nil when `size` bytes fit, else
-- "<shown>: not kept: ... (--max-artifact-size | --max-artifacts-total)".
-- size nil: the transfer was stopped after more than `max` bytes (the
-- room given to the driver), the real size is unknown.
function Store:over(shown, size, max)
    local cap, tcap = self.limits.max_artifact_size,
                      self.limits.max_artifacts_total
    local n = size or (max or 0) + 1
    local what = size and string.format("%d bytes", size) or
        string.format("more than %d bytes", max or 0)
    if cap > 0 and n > cap then
        return string.format("%s: not kept: %s is over the per-file " ..
            "limit of %d bytes (--max-artifact-size)", shown, what, cap)
    elseif tcap > 0 and self.total + n > tcap then
        return string.format("%s: not kept: %s would bring the build's " ..
            "artifacts over the total limit of %d bytes " ..
            "(--max-artifacts-total)", shown, what, tcap)
    end
    return nil
end

-- The one wording of a count refusal: nil when `files` more fit, else
-- "<shown>: not kept: its N files would bring ... (--max-artifacts ...)".
-- files nil: the copy was stopped after more than `max_files` (the room
-- given to the driver).
function Store:over_count(shown, files, max_files)
    local cap = self.limits.max_artifacts
    local n = files or (max_files or 0) + 1
    if cap <= 0 or self.count + n <= cap then
        return nil
    end
    local what = files and string.format("its %d files", files) or
        string.format("more than %d files", max_files or 0)
    return string.format("%s: not kept: %s would bring the " ..
        "build's artifacts over the limit of %d files (--max-artifacts " ..
        "%d; raise it with --max-artifacts N, 0 = no limit)", shown, what,
        cap, cap)
end

-- Bytes and files of an artifact on the host: a file is 1 file of its
-- size; a directory, the regular files and links below it (symbolic
-- links count 0 bytes, never followed).
local function host_usage(fs, path, st)
    st = st or fs.lstat(path)
    if st == nil then
        return 0, 0
    elseif st.type == "file" then
        return st.size, 1
    elseif st.type == "dir" and fs.listdir then
        local total, files = 0, 0
        for _, name in ipairs(fs.listdir(path) or {}) do
            local b, f = host_usage(fs, path .. "/" .. name)
            total, files = total + b, files + f
        end
        return total, files
    end
    return 0, 1
end

-- Undo what target() made for host: the directories it created for it
-- (emptied ones only), and host itself when it did not exist before
-- (what a failed transfer left there). Nothing that was there before.
function Store:abandon(host)
    local p = self.pending[host]
    self.pending[host] = nil
    if p == nil then return end
    if not p.existed then
        if self.fs.rm_rf then self.fs.rm_rf(host) else self.fs.remove(host) end
    end
    if p.made then
        local d = self.fs.dirname(host)
        while #d >= #p.made do
            if not self.fs.remove(d) then break end  -- not empty: stop
            d = self.fs.dirname(d)
        end
    end
end

-- After fetching to host (the exact accounting): nil | cause (and the
-- file or directory removed) when it is over the count cap, the
-- per-file or the total size cap; else it counts toward them.
function Store:account(host, shown)
    local size, files = host_usage(self.fs, host)
    files = math.max(files, 1)
    local why = self:over_count(shown, files) or self:over(shown, size)
    if why then
        if self.fs.rm_rf then self.fs.rm_rf(host) else self.fs.remove(host) end
        self:abandon(host)
        return why
    end
    self.pending[host] = nil
    self.total = self.total + size
    self.count = self.count + files
    return nil
end

-- The host path for the artifact dst (see the interface above). Every
-- directory below store.dir is created or entered without following a
-- symbolic link (fs.mkdir_beneath): a link `latest -> /elsewhere` in the
-- artifacts directory cannot carry `x => latest/x` outside it.
function Store:target(dst, match)
    if match then
        local base = util.basename(match)
        dst = dst:gsub("%*", function() return base end)
    end
    local rel, why = util.safe_relpath(dst)
    if rel == nil then
        return nil, string.format("%s: %s (artifact destinations are " ..
            "relative to the artifacts directory %s)", dst, why, self.dir)
    end
    local path = self.dir .. "/" .. rel
    local made
    local parent = rel:match("^(.*)/[^/]*$")
    if parent then
        local ok, top = self.fs.mkdir_beneath(self.dir, parent)
        if not ok then
            return nil, string.format("%s: %s", dst, top)
        end
        made = top
    end
    local st = self.fs.lstat(path)
    if st and st.type == "link" then
        return nil, string.format("%s: refusing to write through the " ..
                                  "symbolic link %s", dst, path)
    end
    self.pending[path] = { existed = st ~= nil, made = made }
    return path
end

-- Place objects: objects[i] = { src =, dst =, path = host file | nil,
-- err = cause | nil [, tree = true, line = text] }. put(obj) -> true |
-- nil, cause. Each object gets placed = true or failed = cause (the
-- pipeline checks the tree's objects after create).
function M.place_objects(objects, log, put)
    for _, obj in ipairs(objects) do
        if obj.err then
            obj.failed = obj.err
            log:line("object error: " .. obj.err)
        else
            if obj.line then
                log:line(obj.line)
            elseif not obj.tree then
                log:line("Placing object " .. obj.src .. " => " .. obj.dst)
            end
            local ok, why = put(obj)
            if ok then
                obj.placed = true
            else
                obj.failed = tostring(why)
                log:line("object error: " .. tostring(why))
            end
        end
    end
end

-- The verdict on a driver's objects once it has placed them (issue 11,
-- 4.8: an object that cannot be placed fails the build in every driver):
-- failed lists the sources not placed. -> nil | "object error: ..."
function M.object_failure(failed, total)
    if #failed == 0 then return nil end
    return string.format("object error: %d of %d objects could not be " ..
        "placed (%s); see the object error lines above", #failed, total,
        table.concat(failed, ", "))
end

-- Collect a job's artifacts (see the interface above). Where each match
-- goes: when the manifest wrote no DST (a.named == false: "out/*.log",
-- or "out/*.log =>"), the match's own basename; otherwise the DST with
-- each "*" replaced by the match's basename.
function M.collect_artifacts(job, log, store, glob, get)
    for _, a in ipairs(job.artifacts or {}) do
        local matches, why
        if a.src == "" then
            why = "an empty source names no file (expected SRC or SRC => DST)"
        else
            matches, why = glob(a.src)
        end
        if matches == nil then
            log:line("artifact error: " .. tostring(why))
        elseif #matches == 0 then
            log:line("artifact error: " .. a.src .. ": no such file")
        else
            for _, match in ipairs(matches) do
                local base = util.basename(match)
                local dst, star = a.dst, match
                if a.named == false then
                    dst, star = base, nil
                end
                local shown = star and dst:gsub("%*", function()
                    return base
                end) or dst
                local over = store.admit and store:admit(shown)
                local host, err
                if not over then
                    host, err = store:target(dst, star)
                end
                if over then
                    log:line("artifact error: " .. over)
                elseif host == nil then
                    log:line("artifact error: " .. err)
                else
                    log:line("Collecting artifact " .. match .. " => " ..
                             shown)
                    local max = store.room and store:room()
                    local maxf = store.files_room and store:files_room()
                    local ok, gerr, code, size = get(match, host, max, maxf)
                    local refused
                    if not ok and code == "limit" and store.over then
                        refused = store:over(shown, size, max)
                    elseif not ok and code == "count" and store.over_count
                    then
                        refused = store:over_count(shown, size, maxf)
                    end
                    if not ok then
                        -- nothing partial or empty stays under the name
                        if store.abandon then store:abandon(host) end
                        log:line("artifact error: " ..
                                 (refused or tostring(gerr)))
                    elseif store.account then
                        refused = store:account(host, shown)
                        if refused then
                            log:line("artifact error: " .. refused)
                        end
                    end
                end
            end
        end
    end
end

---------------------------------------------------------------------------
-- The runner.
---------------------------------------------------------------------------
local function env_list(m, extra)
    local list, at = {}, {}
    local function add(k, v)
        if at[k] then
            list[at[k]].value = v
        else
            list[#list + 1] = { key = k, value = v }
            at[k] = #list
        end
    end
    for _, kv in ipairs(m.env) do add(kv.key, kv.value) end
    if extra then
        if extra[1] ~= nil then
            for _, kv in ipairs(extra) do add(kv.key, kv.value) end
        else
            local keys = {}
            for k in pairs(extra) do keys[#keys + 1] = k end
            table.sort(keys)
            for _, k in ipairs(keys) do add(k, tostring(extra[k])) end
        end
    end
    local map = {}
    for _, kv in ipairs(list) do map[kv.key] = kv.value end
    list.map = map
    return list
end

-- The driver module of type dtype | nil, why. find_only: do not load it.
function M.load_driver(dtype, overrides, find_only)
    if overrides and overrides[dtype] then
        return overrides[dtype]
    end
    local name = "djinn.drivers." .. dtype
    if not package.searchpath(name, package.path) and
        not package.preload[name] and not package.loaded[name] then
        return nil, string.format("unknown driver: %s (no module %s in " ..
            "this installation)", dtype, name)
    end
    if find_only then return true end
    return require(name)
end
local load_driver = M.load_driver

local function abspath(fs, p)
    if p:sub(1, 1) == "/" then return p end
    p = p:gsub("^%./", ""):gsub("/%.$", "")
    if p == "." or p == "" then return fs.cwd() end
    return fs.cwd() .. "/" .. p
end

-- Resolve the manifest objects against the objects directory.
local function resolve_objects(m, dir, fs)
    local out = {}
    for _, o in ipairs(m.objects) do
        local obj = { src = o.src, dst = o.dst }
        local rel, why = util.safe_relpath(o.src)
        if rel == nil then
            obj.err = string.format("%s: %s (objects are read from the " ..
                                    "objects directory %s)", o.src, why, dir)
        else
            obj.path = dir .. "/" .. rel
            local st, err = fs.stat(obj.path)
            if st == nil then
                obj.err = err
                obj.path = nil
            end
        end
        out[#out + 1] = obj
    end
    return out
end

local function protect(f, ...)
    local res = table.pack(xpcall(f, function(e)
        if os.getenv("DJINN_DEBUG") then
            return debug.traceback(tostring(e), 2)
        end
        return tostring(e)
    end, ...))
    if not res[1] then
        return false, res[2]
    end
    return true, table.unpack(res, 2, res.n)
end

-- Keep a failed build's machine for `secs` (run --hold): print the
-- driver's command to get a shell in it (drv:hold_info()), record the
-- hold in the build's state directory (djinn-lua release finds it there)
-- and wait until the time is up, a signal (Ctrl-C, TERM) comes, the
-- file <state dir>/release appears (djinn-lua release), or the machine
-- stops. The build's own timeout does not cut it short: the build is
-- over. o = { proc, fs, log, signals, build, type }
function M.hold(drv, rec, secs, o)
    local proc, fs, log = o.proc, o.fs, o.log
    local ok, info, why = protect(drv.hold_info or function()
        return nil, "the " .. o.type .. " driver has no machine to keep " ..
            "(its jobs ran on this machine)"
    end, drv, secs)
    if not ok or info == nil then
        log:line("--hold: nothing is held: " .. tostring(ok and why or info))
        return
    end
    local deadline = proc.now() + secs
    local h = { command = info.command, seconds = secs,
                ["until"] = os.time() + math.ceil(secs), build = o.build }
    if rec and rec.dir then
        rec:set("hold", { ["until"] = h["until"], command = info.command })
    end
    log:hold(h)
    local release = rec and rec.dir and (rec.dir .. "/release")
    local why_end = "the hold time is up"
    while proc.now() < deadline do
        local sig = o.signals and proc.pending_signal()
        if sig then
            why_end = "SIG" .. sig
            break
        end
        if release and fs.exists(release) then
            why_end = "djinn-lua release"
            break
        end
        local gone = drv.hold_alive and drv:hold_alive()
        if gone then
            why_end = gone
            break
        end
        proc.sleep(math.min(0.2, math.max(0.01, deadline - proc.now())))
    end
    if rec and rec.dir then rec:set("hold", nil) end
    log:line("Released the held machine (" .. why_end .. ")")
end

function M.run(m, opts)
    opts = opts or {}
    local proc = opts.proc or require "djinn.proc"
    local fs = opts.fs or require "djinn.fs"
    local log = opts.log or require("djinn.log").new()

    local stages, perr = M.plan(m, opts)
    if stages == nil then
        return nil, perr, 2
    end
    local dtype = m.driver.type
    local mod, derr = load_driver(dtype, opts.drivers)
    if mod == nil then
        return nil, derr, 2
    end

    local artifacts_dir = abspath(fs, opts.artifacts or ".")
    local objects_dir = abspath(fs, opts.objects or ".")
    local ok, aerr = fs.mkdir_p(artifacts_dir)
    if not ok then
        return nil, "cannot create the artifacts directory: " ..
            tostring(aerr), 2
    end

    local jobs = {}
    for _, st in ipairs(stages) do
        for _, j in ipairs(st.jobs) do
            j.status = "queued"
            jobs[#jobs + 1] = j
        end
    end
    -- One id per build (djinn.run makes it, and gives it to the log
    -- too; a direct call gets one here): the state directory and the
    -- driver (o.build_id).
    local build_id = opts.build_id or require("djinn.state").new_id()
    local result = { status = "running", jobs = jobs, not_run = {},
                     infra = false, build_id = build_id,
                     timeout = opts.timeout }
    local signals = opts.signals ~= false
    if signals then
        proc.on_signals{ "INT", "TERM" }
    end
    local ctx = M.new_ctx(opts.timeout, proc, signals)
    local store = M.new_store(artifacts_dir, fs,
                              opts.config and opts.config.limits)
    local env = env_list(m, opts.env)
    local started = proc.now()
    result.warnings = opts.warnings
    log:build_start{ manifest = m.file, driver = dtype }

    -- Nothing to run: fail before any driver is created (issue 11).
    local nothing = M.nothing_to_run(m, opts)
    if nothing then
        if signals then proc.default_signals() end
        result.not_run = jobs
        result.status = "failed"
        result.error = "no job ran: " .. nothing ..
            (opts.warnings and #opts.warnings > 0 and
             " (see the warnings)" or "")
        result.duration = proc.now() - started
        result.exit_code = M.exit_code("failed", false)
        log:build_end(result)
        return result
    end

    local drv, created
    local status = "passed"
    local summary

    -- The build's state directory (djinn.state): what the driver creates
    -- outside this process is recorded there, so that a run after a
    -- kill -9 of this one can clean it up. opts.state = false: none.
    local rec
    if opts.state ~= false then
        local serr
        rec, serr = require("djinn.state").begin(dtype, { id = build_id })
        if rec == nil and log.warn then
            log:warn(tostring(serr) .. " (nothing can be cleaned up if " ..
                     "this run is killed)")
        end
    end
    log:line("Running with Driver " .. dtype .. "...")
    local okn, d, nerr = protect(mod.new, {
        config = config.driver(opts.config, dtype), manifest = m,
        driver = m.driver, log = log, ctx = ctx, registry = opts.registry,
        build_id = build_id, objects_dir = objects_dir, artifacts_dir = artifacts_dir,
    })
    if okn and d then
        drv = d
        local objects = resolve_objects(m, objects_dir, fs)
        local tree = opts.tree and opts.tree.objects or {}
        for i = #tree, 1, -1 do
            table.insert(objects, 1, tree[i])
        end
        local okc, c, cerr = protect(drv.create, drv, env, objects)
        created = true
        if okc and c then
            created = "ok"
            for _, obj in ipairs(tree) do
                if not obj.placed then
                    created, nerr = true, string.format("--tree: %s " ..
                        "was not placed in the build environment: %s",
                        obj.src, obj.failed or "the driver did not " ..
                        "place it")
                    break
                end
            end
        else
            nerr = okc and cerr or c
        end
    else
        nerr = okn and nerr or d
    end

    if created ~= "ok" then
        local reason = ctx:cancelled()
        status = reason or "failed"
        result.infra = reason == nil
        log:line(tostring(nerr or "driver creation failed"))
        summary = reason and ctx:cause() or
            ("driver " .. dtype .. ": " .. tostring(nerr))
    else
        for _, st in ipairs(stages) do
            for _, job in ipairs(st.jobs) do
                local reason = ctx:cancelled()
                if reason then
                    status = M.worst(status, reason)
                    summary = ctx:cause()
                    break
                end
                job.status = "running"
                log:job_start(job)
                local t0 = proc.now()
                local oke, js, cause, code = protect(drv.execute, drv, job,
                                                     store)
                if not oke then
                    js, cause, code = "failed", js, nil
                end
                if js == "failed" and st.allow_failure then
                    js = "passed_with_failures"
                elseif M.rank[js] == nil or M.rank[js] < M.rank.passed then
                    js, cause = "failed", "driver returned the status " ..
                        tostring(js)
                end
                job.status, job.cause, job.exit_code = js, cause, code
                job.duration = proc.now() - t0
                log:job_end(job, job)
                status = M.worst(status, js)
                if js == "failed" then
                    log:line("")
                    log:line(string.format("error: job %s in stage %s " ..
                        "failed: %s", job.name, job.stage,
                        tostring(cause or "failed")))
                    summary = string.format("job %s in stage %s failed (%s)",
                        job.name, job.stage, tostring(cause or "failed"))
                    break
                elseif js == "killed" or js == "timed_out" then
                    summary = string.format("%s (job %s in stage %s was " ..
                        "running)", ctx:cause() or js, job.name, job.stage)
                    break
                end
            end
            if summary then break end
        end
        if not summary then
            local reason = ctx:cancelled()
            if reason and status == "passed" and #jobs == 0 then
                status, summary = reason, ctx:cause()
            end
        end
    end

    -- run --hold (issue 15): a failed job's machine is kept for a look.
    local hold = opts.hold or config.driver(opts.config, dtype).hold
    if created == "ok" and status == "failed" and hold and hold > 0 and
        not ctx:cancelled() then
        M.hold(drv, rec, hold, { proc = proc, fs = fs, log = log,
                                 signals = signals, build = build_id,
                                 type = dtype })
    end
    if created then
        protect(drv.destroy, drv)
    end
    if rec then
        rec:finish()
    end
    if signals then
        proc.default_signals()
    end
    for _, j in ipairs(jobs) do
        if j.status == "queued" then
            result.not_run[#result.not_run + 1] = j
        end
    end
    result.status = status
    result.error = summary
    result.duration = proc.now() - started
    result.exit_code = M.exit_code(status, result.infra)
    log:build_end(result)
    return result
end

return M
