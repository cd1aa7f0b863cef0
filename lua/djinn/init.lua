-- djinn: the library user scripts get with `require "djinn"`, and the
-- one front door of a build: `djinn-lua run` only turns its arguments
-- into djinn.run's options, so a script and the command line get the
-- same build, with the same defaults (issue 12).
--
--   djinn.version            "0.1.0" (from the linked extension)
--   djinn.sqlite_version     "3.x.y"
--   djinn.manifest           djinn.manifest (parse, load, from_table)
--   djinn.config             djinn.config (driver.conf parser)
--   djinn.pipeline, djinn.log, djinn.util, djinn.tree (lazily)
--   djinn.registry, djinn.yaml, djinn.proc, djinn.fs, djinn.qcow2
--                            the C modules (loaded on first use)
--   djinn.images             registered and base images: names,
--                            resolve, verify (lazily)
--   djinn.paths              the default registry and driver.conf (XDG;
--                            the home from HOME or NSS) (lazily)
--   djinn.state              build state directories, new_id, reap
--                            (lazily)
--   djinn.run(manifest, options) -> result | nil, msg, exit_code
--     manifest: a path, a parsed manifest (from djinn.manifest.load/parse)
--       or a plain table shaped like the YAML (validated the same way).
--     options (all optional; the defaults are djinn.defaults'):
--       driver_config = path of driver.conf, or config = parsed table;
--         default: the default driver.conf (djinn.paths:
--         $XDG_CONFIG_HOME/djinn/driver.conf or ~/.config/djinn/
--         driver.conf) when that file exists, else the built-in
--         defaults (with a warning when there is no home to look in);
--         false = the built-in defaults
--       registry = path of the image registry; default the default
--         registry (djinn.paths: $XDG_DATA_HOME/djinn/registry.db or
--         ~/.local/share/djinn/registry.db; with no home, a qemu build
--         is refused saying what to set); false = none
--       timeout = seconds or a duration string ("30m"); default 30
--         minutes (djinn.DEFAULT_TIMEOUT); 0 or false = none
--       hold = seconds or a duration ("10m"): when a job fails, keep its
--         machine (or container) that long and print how to get a shell
--         in it; released early by Ctrl-C or `djinn-lua release`. Default
--         driver.conf's `hold` of the driver block; 0 = never
--       reap = bool (default true): first clean up after earlier builds
--         whose runner was killed (djinn.state.reap)
--       objects = dir (default "."), artifacts = dir (default "."),
--       stage = name, env = { K = V } or { "K=V", ... },
--       secrets = { K = V } or { "K=V", ... }: secret build variables,
--         passed to the jobs as env and replaced by "xxxxxx" in every
--         output (names are variable names, values >= 6 characters),
--       secret_patterns = { "*_TOKEN", ... }: env names matching these
--         globs are secrets too (added to driver.conf's secrets.patterns,
--         default *_PASSWORD *_SECRET *_TOKEN *_KEY),
--       json = bool, quiet = bool (no output), log = writer (djinn.log),
--       signals = bool (default true: SIGINT/SIGTERM kill the build),
--       strict = bool: any load warning (manifest, driver.conf, a job
--         without commands) fails the build before anything runs (exit
--         code 1),
--       tree = true | "DIR": copy DIR (true: the git checkout around the
--         current directory) into the build's working directory before
--         the first job (djinn.tree; .gitignore honoured in a checkout),
--       limits = { max_output =, max_artifacts =, max_artifact_size =,
--         max_artifacts_total =, max_objects =, max_object_size =,
--         max_objects_total = } over driver.conf's `limits {}` (each a
--         count or size >= 0, else the build is refused); max_output
--         goes to the log writer, the rest to the pipeline,
--       notes = { warning... } printed before anything else,
--       image_pin = { sha256 =, size =, url = } (djinn-lua worker: a
--         queued build's image, M.fetch_pinned), image_cache_max = bytes
--         (the worker's image cache budget),
--       default_driver_config = path | false: the file tried when
--         driver_config is not given (normally djinn.paths')
--     THE BUILD ID: djinn.run makes one id per build (djinn.state.new_id,
--     16 hex digits) before anything is printed. It names the build's
--     state directory (djinn.state), is given to the driver (o.build_id:
--     docker labels djinn.build=ID), is set on the log writer
--     (log.build_id: every JSON event carries "build": ID, refusals too)
--     and is result.build_id.
--     result = { status =, duration =, jobs = {...}, not_run = {...},
--                error =, exit_code =, warnings = {...}, build_id =,
--                timeout = (seconds, nil = none) } (see djinn.pipeline):
--                a build that ran no job is "failed".
--     Invalid manifests/options give nil, "message(s)", 2 (or the code
--     of the refusal), after reporting them through the log: load
--     warnings first, then the errors (log:invalid; JSON: "error"
--     events and a build_end with status "invalid").
--   djinn.defaults(options) -> a copy of options with every default
--     filled in (driver.conf, registry and registry_missing, timeout,
--     reap) and .notes (warnings about a default that cannot be located)
--   djinn.check(manifest, options) -> c: load and validate without
--     running (the CLI's run and check, and djinn.run, all go through
--     it): c = { manifest = m | nil, config = cfg | nil, errors = {...},
--     warnings = {...}, notes = {...}, summary = "x.yml: invalid
--     manifest (2 errors)" | nil }. options: driver_config, config,
--     default_driver_config, stage, drivers, as for run (the same
--     default driver.conf).
local M = {}

M.manifest = require "djinn.manifest"
M.config = require "djinn.config"
M.pipeline = require "djinn.pipeline"
M.log = require "djinn.log"
M.util = require "djinn.util"

local lazy = { registry = "djinn.registry", yaml = "djinn.yaml",
               proc = "djinn.proc", fs = "djinn.fs", qcow2 = "djinn.qcow2",
               tree = "djinn.tree", images = "djinn.images",
               paths = "djinn.paths", state = "djinn.state" }

local versions
local function get_versions()
    if versions then return versions end
    versions = { djinn = "0.1.0", sqlite = "unknown" }
    local ok, reg = pcall(require, "djinn.registry")
    if ok and type(reg) == "table" then
        local db = reg.open(":memory:")
        if db then
            local rows = db:query("SELECT djinn_version() AS d, " ..
                                  "sqlite_version() AS s")
            if rows and rows[1] then
                versions.djinn = (rows[1].d or ""):match("djinn (%S+)")
                    or versions.djinn
                versions.sqlite = rows[1].s or versions.sqlite
            end
            db:close()
        end
    end
    return versions
end

setmetatable(M, { __index = function(t, k)
    if lazy[k] then
        local mod = require(lazy[k])
        rawset(t, k, mod)
        return mod
    elseif k == "version" then
        return get_versions().djinn
    elseif k == "sqlite_version" then
        return get_versions().sqlite
    end
end })

local function env_option(env)
    if env == nil then return nil end
    local out = {}
    if env[1] ~= nil then
        for _, item in ipairs(env) do
            local k, v = M.util.split_first(item, "=")
            if v == nil or k == "" then
                return nil, string.format("env %q: expected KEY=VALUE", item)
            end
            out[#out + 1] = { key = k, value = v }
        end
        return out
    end
    local keys = {}
    for k in pairs(env) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
        out[#out + 1] = { key = k, value = tostring(env[k]) }
    end
    return out
end

local function plural(n, what)
    return string.format("%d %s%s", n, what, n == 1 and "" or "s")
end

local function append(list, more)
    for _, x in ipairs(more or {}) do list[#list + 1] = x end
    return list
end

-- Every default of a build, in one place (the command line passes only
-- what its arguments say). -> a copy of options with the defaults filled
-- in, and notes (warnings to print before anything else: a default that
-- cannot be located).
--   driver_config: nil = the default driver.conf (djinn.paths) when that
--     file exists, else the built-in defaults; false = built-in defaults
--   registry: nil = the default registry (djinn.paths); false = none
--   timeout: nil = 30 minutes; 0 or false = none
--   reap: nil = true
M.DEFAULT_TIMEOUT = 30 * 60

function M.defaults(options)
    if options and options.defaulted then return options end
    local paths = require "djinn.paths"
    local o, notes = { defaulted = true }, {}
    for k, v in pairs(options or {}) do o[k] = v end
    for _, n in ipairs(o.notes or {}) do notes[#notes + 1] = n end
    if o.config == nil and o.driver_config == nil and
        o.default_driver_config == nil then
        local def, derr = paths.default_driver_config()
        if def == nil then
            notes[#notes + 1] = derr .. "; using the built-in driver defaults"
            o.default_driver_config = false
        else
            o.default_driver_config = def
        end
    end
    if o.registry == nil then
        o.registry, o.registry_missing = paths.default_registry()
    elseif o.registry == false then
        o.registry = nil
    end
    if o.timeout == nil then
        o.timeout = M.DEFAULT_TIMEOUT
    elseif o.timeout == false then
        o.timeout = 0
    end
    if o.reap == nil then o.reap = true end
    o.notes = notes
    return o
end

-- The driver configuration of a run or a check (see M.check).
-- -> cfg, warnings | nil, errors (a list), source
local function load_config(options)
    if options.config then
        return options.config, {}
    end
    local path = options.driver_config
    if path == false then path = nil end
    if path == nil and options.default_driver_config then
        local f = io.open(options.default_driver_config, "rb")
        if f then
            f:close()
            path = options.default_driver_config
        end
    end
    if path == nil then
        return M.config.defaults(), {}
    end
    local cfg, res = M.config.load(path)
    if cfg == nil then
        local errors = {}
        for l in (tostring(res) .. "\n"):gmatch("(.-)\n") do
            if l ~= "" then errors[#errors + 1] = l end
        end
        return nil, errors, path
    end
    return cfg, res or {}, path
end

function M.check(manifest, options)
    options = M.defaults(options)
    local c = { errors = {}, warnings = {}, notes = options.notes }
    -- driver.conf first: its limits { max_manifest_size,
    -- max_manifest_aliases } (over which options.limits) bound the
    -- manifest's loading. (Its messages still come after the
    -- manifest's.)
    local cfg, cres, cpath = load_config(options)
    local mlimits = {}
    if cfg and type(cfg.limits) == "table" then
        for k, v in pairs(cfg.limits) do mlimits[k] = v end
    end
    for k, v in pairs(options.limits or {}) do mlimits[k] = v end
    for _, k in ipairs{ "max_manifest_size", "max_manifest_aliases" } do
        if math.type(mlimits[k]) ~= "integer" or mlimits[k] < 0 then
            mlimits[k] = nil -- (refused with its message by run)
        end
    end
    local m, problems
    if type(manifest) == "string" then
        m, problems = M.manifest.load(manifest, mlimits)
    elseif type(manifest) == "table" and manifest.driver and
        manifest.allowed and manifest.jobs then
        m = manifest -- already parsed
    else
        m, problems = M.manifest.from_table(manifest)
    end
    local name = type(manifest) == "string" and manifest or
        (m and m.file) or "<table>"
    local summary = {}
    if m == nil then
        append(c.errors, problems)
        summary[#summary + 1] = string.format("%s: invalid manifest (%s)",
            name, plural(#problems, "error"))
    else
        append(c.warnings, problems)
    end
    if cfg == nil then
        append(c.errors, cres)
        summary[#summary + 1] = string.format("%s: invalid driver " ..
            "configuration (%s)", cpath, plural(#cres, "error"))
    else
        append(c.warnings, cres)
    end
    if m then
        local perrs, pwarns = M.pipeline.check(m, {
            stage = options.stage, drivers = options.drivers })
        append(c.errors, perrs)
        append(c.warnings, pwarns)
    end
    if #summary > 0 then
        c.summary = table.concat(summary, "; ")
    end
    c.manifest, c.config = m, cfg
    return c
end

-- driver.conf `limits {}` with options.limits over it; -> limits | nil,
-- why.
local function merge_limits(cfg, limits)
    local l = {}
    if type(cfg.limits) == "table" then
        for k, v in pairs(cfg.limits) do l[k] = v end
    end
    for k, v in pairs(limits or {}) do l[k] = v end
    for k, v in pairs(l) do
        if math.type(v) ~= "integer" or v < 0 then
            return nil, string.format("driver configuration: limits.%s " ..
                "must be a size (e.g. 16MB) or a count >= 0, got %s", k,
                tostring(v))
        end
    end
    return l
end

-- A queued build's image, pinned at submit to {sha256, size, url}: found
-- in (or first downloaded into) registry as cache/sha-<sha256>, by
-- db:register with the hash pinned (streamed while hashing, the
-- fail-closed validator, an atomic commit: nothing partial is ever left).
-- One download per image even when several builds need it at once (a
-- lock beside the registry).
--
-- The cache's byte budget (opts.cache_max, bytes; nil: none): before a
-- download, the least recently used images are removed until the new one
-- fits, never one in use. "In use" is a shared flock on
-- <registry dir>/.use-<sha256>.lock that the build holds from before its
-- lookup to its end (the kernel drops it when the build dies); eviction
-- takes that lock exclusively without waiting, so it passes over an image
-- in use, and a build that comes for an image being evicted waits, then
-- finds it gone and downloads it again. The lock file's mtime, touched at
-- each use, is the "recently used" order.
-- -> nil, the use lock (keep it until the build ends) | why (an
-- infrastructure error)
local function use_lock_path(dir, sha)
    return dir .. "/.use-" .. sha .. ".lock"
end

-- Remove cached images, least recently used first, until `need` more
-- bytes fit under max; -> removed names, bytes still over (0: fits).
function M.evict_cache(db, dir, max, need, log)
    local fs, ipc = require "djinn.fs", require "djinn.ipc"
    local rows = db:query("SELECT name, sha256, file_size FROM image_list " ..
                          "WHERE namespace = 'cache'") or {}
    local total = need
    for _, r in ipairs(rows) do
        total = total + (tonumber(r.file_size) or 0)
        local st = fs.lstat(use_lock_path(dir, r.sha256 or ""))
        r.used = st and st.mtime_ns or 0
    end
    table.sort(rows, function(a, b) return a.used < b.used end)
    local removed = {}
    for _, r in ipairs(rows) do
        if total <= max then break end
        local lock = r.sha256 and ipc.lock(use_lock_path(dir, r.sha256), 0)
        if lock then
            if db:remove("cache", r.name) then
                total = total - (tonumber(r.file_size) or 0)
                removed[#removed + 1] = r.name
                if log then
                    log:line(string.format("Evicted image sha256:%s (%s) " ..
                        "from the worker's cache (least recently used)",
                        tostring(r.sha256):sub(1, 12),
                        require("djinn.log").fmt_bytes(
                            tonumber(r.file_size) or 0)))
                end
            end
            -- The lock file stays (empty): unlinking it would let a
            -- build that opened it just before hold its shared lock on a
            -- name nobody else can see any more.
            lock:unlock()
        end
    end
    return removed, math.max(0, total - max)
end

function M.fetch_pinned(regpath, pin, log, opts)
    opts = opts or {}
    local fs, ipc = require "djinn.fs", require "djinn.ipc"
    local registry = require "djinn.registry"
    if type(pin.sha256) ~= "string" or not pin.sha256:match("^%x+$") or
        #pin.sha256 ~= 64 then
        return "the pinned image's SHA-256 is not 64 hex digits"
    end
    if regpath == nil then
        return "a pinned image needs a registry to cache it in (--registry)"
    end
    local name = "sha-" .. pin.sha256
    local dir = fs.dirname(regpath)
    fs.mkdir_p(dir, 448)
    local use, uerr = ipc.lock(use_lock_path(dir, pin.sha256), 1800,
                               "shared")
    if use == nil then
        return "image cache lock: " .. tostring(uerr)
    end
    fs.touch(use_lock_path(dir, pin.sha256))
    local lock, lerr = ipc.lock(dir .. "/.fetch-" .. pin.sha256 .. ".lock",
                                1800)
    if lock == nil then
        use:unlock()
        return "image cache lock: " .. tostring(lerr)
    end
    local db, err = registry.open(regpath)
    if db == nil then
        lock:unlock()
        use:unlock()
        return "image cache " .. regpath .. ": " .. tostring(err)
    end
    local function fail(why)
        db:close()
        lock:unlock()
        use:unlock()
        return why
    end
    local path, sha = db:resolve("cache", name)
    if path and sha == pin.sha256 then
        log:line("Image sha256:" .. pin.sha256:sub(1, 12) ..
                 " is in the worker's cache")
        db:close()
        lock:unlock()
        return nil, use
    end
    if pin.url == nil or pin.url == "" then
        return fail("image sha256:" .. pin.sha256:sub(1, 12) .. " is not " ..
            "in this worker's cache and the build has no image URL to " ..
            "fetch it from (submit with --image-url, or queue { image_url } " ..
            "in the submitter's driver.conf)")
    end
    local size = tonumber(pin.size) or 0
    if opts.cache_max then
        if size > opts.cache_max then
            return fail(string.format("image sha256:%s is %s, over the " ..
                "worker's image cache budget of %s (worker --cache-max)",
                pin.sha256:sub(1, 12), M.log.fmt_bytes(size),
                M.log.fmt_bytes(opts.cache_max)))
        end
        local _, over = M.evict_cache(db, dir, opts.cache_max, size, log)
        if over > 0 then
            log:line(string.format("The worker's image cache stays %s over " ..
                "its budget: the images that would make room are in use",
                M.log.fmt_bytes(over)))
        end
    end
    local t0 = require("djinn.proc").now()
    log:line("Fetching image sha256:" .. pin.sha256:sub(1, 12) .. " from " ..
             pin.url)
    local id, info = db:register("cache", name, pin.url, {
        sha256 = pin.sha256,
        max_size = size > 0 and size or nil,
        stall_timeout = 60, connect_timeout = 20,
    })
    if id == nil then
        return fail("image sha256:" .. pin.sha256:sub(1, 12) .. " from " ..
            pin.url .. ": " .. tostring(info))
    end
    db:close()
    lock:unlock()
    log:line(string.format("Fetched and validated the image (%s) in %.1fs",
        M.log.fmt_bytes(info and info.bytes or 0),
        require("djinn.proc").now() - t0))
    return nil, use
end

function M.run(manifest, options)
    options = M.defaults(options)
    -- One id per build, made here: the state directory's name, the
    -- drivers' (docker labels djinn.build=ID), every JSON event's "build"
    -- and result.build_id.
    local state = require "djinn.state"
    local build_id = state.new_id()
    local log = options.log
    if log == nil then
        log = options.quiet and M.log.null() or
            M.log.new{ json = options.json, build_id = build_id }
    end
    log.build_id = build_id
    -- Every refusal goes through the log (JSON: error events and a
    -- build_end "invalid"), then back to the caller.
    local function invalid(errors, summary, code)
        if type(log.invalid) == "function" then
            log:invalid(errors, summary, code or 2)
        end
        local all = append({}, errors)
        if summary then all[#all + 1] = summary end
        return nil, table.concat(all, "\n"), code or 2
    end
    -- Seconds, or a duration string; -> seconds | nil, the error.
    local function duration(name, v, example)
        if type(v) == "string" then
            local d, err = M.util.parse_duration(v)
            if d == nil then return nil, name .. ": " .. err end
            v = d
        end
        if type(v) ~= "number" or v < 0 then
            return nil, string.format("%s: expected seconds >= 0 or a " ..
                "duration such as \"%s\" (0 = none), got %s", name,
                example, tostring(v))
        end
        return v
    end
    local timeout, terr = duration("timeout", options.timeout, "30m")
    if timeout == nil then return invalid{ terr } end
    if timeout == 0 then timeout = nil end
    local hold, herr = nil, nil
    if options.hold ~= nil then
        hold, herr = duration("hold", options.hold, "10m")
        if hold == nil then return invalid{ herr } end
    end
    local env, eerr = env_option(options.env)
    if eerr then
        return invalid{ eerr }
    end
    local mask = require "djinn.mask"
    local secrets, serr = env_option(options.secrets)
    if serr then
        return invalid{ "secrets: " .. serr }
    end
    local values = {}
    for _, kv in ipairs(secrets or {}) do
        if not kv.key:match("^[%a_][%w_]*$") then
            return invalid{ string.format("secrets: %q is not a variable " ..
                "name ([A-Za-z_][A-Za-z0-9_]*)", kv.key) }
        end
        local why = mask.check(kv.key, kv.value)
        if why then return invalid{ "secrets: " .. why } end
        values[#values + 1] = kv.value
        env = env or {}
        env[#env + 1] = kv
    end
    for _, p in ipairs(options.secret_patterns or {}) do
        if type(p) ~= "string" then
            return invalid{ "secret_patterns: expected glob strings" }
        end
    end
    if #values > 0 then
        if type(log.add_secrets) ~= "function" then
            return invalid{ "secrets: the log writer has no add_secrets " ..
                "(use djinn.log.new)" }
        end
        log:add_secrets(values)
    end

    local c = M.check(manifest, options)
    local m, cfg = c.manifest, c.config
    local scan_warnings = {}
    -- Env values whose names match a secret pattern are masked before
    -- anything (a warning may quote them) is printed.
    if m and cfg then
        local sc = cfg.secrets
        if type(sc) == "table" and sc.patterns ~= nil and
            type(sc.patterns) ~= "table" then
            c.errors[#c.errors + 1] = "driver configuration: " ..
                "secrets.patterns must be an array of glob strings, " ..
                "e.g. secrets { patterns [\"*_TOKEN\"] }"
        else
            local patterns = mask.patterns(type(sc) == "table" and
                sc.patterns or nil, options.secret_patterns)
            local found = mask.scan_env(patterns, { m.env, env or {} },
                function(w) scan_warnings[#scan_warnings + 1] = w end)
            if #found > 0 and type(log.add_secrets) == "function" then
                log:add_secrets(found)
            end
        end
    end
    -- Load warnings come before anything else (issue 11).
    for _, w in ipairs(options.notes or {}) do
        log:warn(w)
    end
    for _, w in ipairs(c.warnings) do
        log:warn(w)
    end
    for _, w in ipairs(scan_warnings) do
        log:warn(w)
    end
    if #c.errors > 0 then
        return invalid(c.errors, c.summary)
    end
    if m.driver.type == "qemu" and options.registry == nil and
        options.registry_missing then
        return invalid{ options.registry_missing }
    end
    local limits, lerr = merge_limits(cfg, options.limits)
    if limits == nil then
        return invalid{ lerr }
    end
    cfg.limits = limits
    if limits.max_output then
        log.max_output = limits.max_output
    end
    if options.strict and #c.warnings > 0 then
        local result = {
            status = "failed", exit_code = 1, duration = 0, jobs = {},
            not_run = {}, infra = false, warnings = c.warnings,
            error = string.format("--strict: %s; nothing was run",
                                  plural(#c.warnings, "warning")),
        }
        log:build_start{ manifest = m.file, driver = m.driver.type }
        log:build_end(result)
        return result
    end
    local image_use
    if options.image_pin and m.driver.type == "qemu" then
        local ferr
        ferr, image_use = M.fetch_pinned(options.registry, options.image_pin,
                                         log, { cache_max = options.image_cache_max })
        if ferr then
            local result = {
                status = "failed", exit_code = 3, duration = 0, jobs = {},
                not_run = {}, infra = true, warnings = c.warnings,
                error = ferr,
            }
            log:build_start{ manifest = m.file, driver = m.driver.type }
            log:build_end(result)
            return result
        end
        m.namespace, m.driver.image = "cache", "sha-" .. options.image_pin.sha256
    end
    local tree
    if options.tree then
        local terr
        tree, terr = require("djinn.tree").stage(
            options.tree ~= true and options.tree or nil,
            { limits = limits })
        if tree == nil then
            return invalid{ terr }
        end
    end
    if options.reap then
        -- Clean up after earlier runs that were killed (djinn.state).
        state.reap{ log = log }
    end
    local res = table.pack(pcall(M.pipeline.run, m, {
        log = log, config = cfg, objects = options.objects,
        artifacts = options.artifacts, stage = options.stage,
        timeout = timeout, env = env, registry = options.registry,
        signals = options.signals, drivers = options.drivers,
        warnings = c.warnings, tree = tree, build_id = build_id,
        hold = hold,
    }))
    if tree then tree:remove() end
    if image_use then image_use:unlock() end
    if not res[1] then
        error(res[2], 0)
    end
    if res[2] == nil and res[3] ~= nil then
        return invalid({ tostring(res[3]) }, nil, res[4])
    end
    return table.unpack(res, 2, res.n)
end

return M
