-- djinn: the library user scripts get with `require "djinn"`.
--
--   djinn.version            "0.1.0" (from the linked extension)
--   djinn.sqlite_version     "3.x.y"
--   djinn.manifest           djinn.manifest (parse, load, from_table)
--   djinn.config             djinn.config (driver.conf parser)
--   djinn.pipeline, djinn.log, djinn.util
--   djinn.registry, djinn.yaml, djinn.proc, djinn.fs, djinn.qcow2
--                            the C modules (loaded on first use)
--   djinn.run(manifest, options) -> result | nil, msg, exit_code
--     manifest: a path, a parsed manifest (from djinn.manifest.load/parse)
--       or a plain table shaped like the YAML (validated the same way).
--     options (all optional):
--       driver_config = path of driver.conf, or config = parsed table
--       objects = dir (default "."), artifacts = dir (default "."),
--       stage = name, timeout = seconds or a duration string ("30m";
--       default none), env = { K = V } or { "K=V", ... },
--       secrets = { K = V } or { "K=V", ... }: secret build variables,
--         passed to the jobs as env and replaced by "xxxxxx" in every
--         output (names are variable names, values >= 6 characters),
--       secret_patterns = { "*_TOKEN", ... }: env names matching these
--         globs are secrets too (added to driver.conf's secrets.patterns,
--         default *_PASSWORD *_SECRET *_TOKEN *_KEY),
--       json = bool, quiet = bool (no output), log = writer (djinn.log),
--       signals = bool (default true: SIGINT/SIGTERM kill the build)
--     result = { status =, duration =, jobs = {...}, not_run = {...},
--                error =, exit_code = } (see djinn.pipeline)
--     Invalid manifests/options give nil, "message(s)", 2.
local M = {}

M.manifest = require "djinn.manifest"
M.config = require "djinn.config"
M.pipeline = require "djinn.pipeline"
M.log = require "djinn.log"
M.util = require "djinn.util"

local lazy = { registry = "djinn.registry", yaml = "djinn.yaml",
               proc = "djinn.proc", fs = "djinn.fs", qcow2 = "djinn.qcow2" }

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

function M.run(manifest, options)
    options = options or {}
    local m, problems
    if type(manifest) == "string" then
        m, problems = M.manifest.load(manifest)
    elseif type(manifest) == "table" and manifest.driver and
        manifest.allowed and manifest.jobs then
        m = manifest -- already parsed
    else
        m, problems = M.manifest.from_table(manifest)
    end
    if m == nil then
        return nil, table.concat(problems, "\n"), 2
    end
    local log = options.log
    if log == nil then
        log = options.quiet and M.log.null() or
            M.log.new{ json = options.json }
    end
    local cfg = options.config
    if cfg == nil and options.driver_config then
        local err
        cfg, err = M.config.load(options.driver_config)
        if cfg == nil then
            return nil, err, 2
        end
    end
    local timeout = options.timeout
    if type(timeout) == "string" then
        local err
        timeout, err = M.util.parse_duration(timeout)
        if timeout == nil then
            return nil, "timeout: " .. err, 2
        end
    end
    local env, eerr = env_option(options.env)
    if eerr then
        return nil, eerr, 2
    end
    local mask = require "djinn.mask"
    local secrets, serr = env_option(options.secrets)
    if serr then
        return nil, "secrets: " .. serr, 2
    end
    local values = {}
    for _, kv in ipairs(secrets or {}) do
        if not kv.key:match("^[%a_][%w_]*$") then
            return nil, string.format("secrets: %q is not a variable name " ..
                                      "([A-Za-z_][A-Za-z0-9_]*)", kv.key), 2
        end
        local why = mask.check(kv.key, kv.value)
        if why then return nil, "secrets: " .. why, 2 end
        values[#values + 1] = kv.value
        env = env or {}
        env[#env + 1] = kv
    end
    for _, p in ipairs(options.secret_patterns or {}) do
        if type(p) ~= "string" then
            return nil, "secret_patterns: expected glob strings", 2
        end
    end
    local sc = cfg and cfg.secrets
    local patterns = mask.patterns(type(sc) == "table" and
        type(sc.patterns) == "table" and sc.patterns or nil,
        options.secret_patterns)
    for _, v in ipairs(mask.scan_env(patterns, { m.env, env or {} },
                                     function(w) log:warn(w) end)) do
        values[#values + 1] = v
    end
    if #values > 0 then
        if type(log.add_secrets) ~= "function" then
            return nil, "secrets: the log writer has no add_secrets " ..
                "(use djinn.log.new)", 2
        end
        log:add_secrets(values)
    end
    for _, w in ipairs(problems or {}) do
        log:warn(w)
    end
    return M.pipeline.run(m, {
        log = log, config = cfg, objects = options.objects,
        artifacts = options.artifacts, stage = options.stage,
        timeout = timeout, env = env, registry = options.registry,
        signals = options.signals, drivers = options.drivers,
    })
end

return M
