-- djinn.queue_cli: the queue's commands (issue 16): submit, worker,
-- status, logs, cancel, artifacts, workers. djinn.cli merges COMMANDS and HELP into
-- its own tables (so the parser, the help test, the man page test and the
-- completion see them) and calls M.main(cmd, args).
--
-- The Redis URL: --redis, else $DJINN_REDIS, else `queue { redis "URL" }`
-- in driver.conf. Exit statuses: submit, status, cancel and workers 0 /
-- 1 (no such build, nothing to cancel) / 2 usage / 3 Redis unreachable;
-- logs and submit --follow exit as the build did (run's codes).
local util = require "djinn.util"

local M = {}

-- The worker's image cache budget when neither --cache-max nor
-- queue { cache_max } gives one.
M.CACHE_MAX = 20 * 1024 * 1024 * 1024

local REDIS_OPT = { kind = "value", arg = "URL",
    help = "redis://[:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH " ..
        "(default $DJINN_REDIS, then driver.conf's queue block)" }
local CONF_OPT = { kind = "value", arg = "FILE",
    help = "driver.conf (for its queue block; default as for run)" }
local JSON_OPT = { kind = "flag", help = "JSON instead of text" }
local QKEY_OPT = { kind = "value", arg = "FILE",
    help = "the key secrets are sealed with (default $DJINN_QUEUE_KEY, " ..
        "then driver.conf's queue block)" }
local HELP_OPT = { kind = "flag", help = "show the help of the command" }

M.ORDER = { "submit", "worker", "status", "logs", "cancel", "artifacts",
            "workers" }
M.COMMANDS = {
    submit = {
        summary = "queue a build for the workers (prints its number)",
        usage = "djinn-lua submit [options] MANIFEST",
        args = { "MANIFEST" },
        options = {
            redis = REDIS_OPT, ["driver-config"] = CONF_OPT,
            env = { kind = "list", arg = "KEY=VALUE",
                help = "set a build variable (repeatable)" },
            secret = { kind = "list", arg = "KEY=VALUE",
                help = "a secret build variable, sealed with the queue " ..
                    "key and masked in all output (repeatable)" },
            ["secret-file"] = { kind = "list", arg = "FILE",
                help = "KEY=VALUE lines read as --secret" },
            ["queue-key"] = QKEY_OPT,
            objects = { kind = "value", arg = "DIR",
                help = "where the manifest's objects are read from " ..
                    "(default .); sent with the build, 5 MiB at most" },
            registry = { kind = "value", arg = "DB",
                help = "where a qemu build's image is pinned from " ..
                    "(default as for run)" },
            ["image-url"] = { kind = "value", arg = "URL",
                help = "the base URL serving the registry's store " ..
                    "(<URL>/<sha256>.qcow2; default $DJINN_IMAGE_URL, " ..
                    "then driver.conf's queue block)" },
            follow = { kind = "flag",
                help = "print the build's log until it ends; exit as " ..
                    "the build did" },
            json = JSON_OPT, help = HELP_OPT,
        },
    },
    worker = {
        summary = "run queued builds on this machine",
        usage = "djinn-lua worker [options]",
        args = {},
        options = {
            redis = REDIS_OPT, ["driver-config"] = CONF_OPT,
            name = { kind = "value", arg = "NAME",
                help = "this worker's name (default the host name)" },
            slots = { kind = "value", arg = "N",
                help = "builds run at once (default 1)" },
            drivers = { kind = "value", arg = "LIST",
                help = "the driver queues served, comma-separated " ..
                    "(default: qemu and docker if they run here; os " ..
                    "only when listed)" },
            lease = { kind = "value", arg = "DURATION",
                help = "how long a silent worker keeps its builds " ..
                    "(default 10s; renewed every sixth of it)" },
            registry = { kind = "value", arg = "DB",
                help = "the image registry of the builds (default as " ..
                    "for run)" },
            ["cache-max"] = { kind = "value", arg = "SIZE",
                help = "the image cache's budget (default 20GB, or " ..
                    "driver.conf's queue block); least recently used " ..
                    "images go first" },
            ["queue-key"] = QKEY_OPT,
            help = HELP_OPT,
        },
    },
    status = {
        summary = "a queued build's status, or the recent builds",
        usage = "djinn-lua status [--redis URL] [--json] [BUILD_ID]",
        args = { "[BUILD_ID]" },
        options = { redis = REDIS_OPT, ["driver-config"] = CONF_OPT,
                    json = JSON_OPT, help = HELP_OPT },
    },
    logs = {
        summary = "print a queued build's log (-f: follow it live)",
        usage = "djinn-lua logs [--redis URL] [-f] [--json] BUILD_ID",
        args = { "BUILD_ID" },
        options = {
            redis = REDIS_OPT, ["driver-config"] = CONF_OPT,
            follow = { kind = "flag",
                help = "wait for more until the build ends (also -f)" },
            after = { kind = "value", arg = "ENTRY",
                help = "start after this log entry id (resume)" },
            json = JSON_OPT, help = HELP_OPT,
        },
    },
    cancel = {
        summary = "cancel a queued or running build",
        usage = "djinn-lua cancel [--redis URL] [--json] BUILD_ID...",
        args = { "BUILD_ID..." },
        options = { redis = REDIS_OPT, ["driver-config"] = CONF_OPT,
                    json = JSON_OPT, help = HELP_OPT },
    },
    artifacts = {
        summary = "fetch a queued build's artifacts into a directory",
        usage = "djinn-lua artifacts [--redis URL] [--json] BUILD_ID DIR",
        args = { "BUILD_ID", "DIR" },
        options = { redis = REDIS_OPT, ["driver-config"] = CONF_OPT,
                    json = JSON_OPT, help = HELP_OPT },
    },
    workers = {
        summary = "the workers serving the queue",
        usage = "djinn-lua workers [--redis URL] [--json]",
        args = {},
        options = { redis = REDIS_OPT, ["driver-config"] = CONF_OPT,
                    json = JSON_OPT, help = HELP_OPT },
    },
}

local URL_TEXT = [[
  --redis URL           redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or
                        unix:///PATH (default $DJINN_REDIS, then
                        `queue { redis "URL" }` in driver.conf)
  --driver-config FILE  driver.conf (default as for run)
]]

M.HELP = {
    submit = [[
usage: djinn-lua submit [options] MANIFEST

Queue MANIFEST for the workers serving its driver's queue (os, docker,
ssh, qemu-x86_64) and print the build's number. The manifest is checked
first, as `djinn-lua check` does: an invalid one is refused (exit 2) and
nothing is queued.

Options:
]] .. URL_TEXT .. [[
  --env KEY=VALUE       set a build variable (repeatable); a name that
                        marks a secret (*_PASSWORD, *_SECRET, *_TOKEN,
                        *_KEY) is refused: give it as --secret
  --secret KEY=VALUE    a secret build variable (repeatable): sealed
                        with the queue key (AES-256-GCM) before it is
                        sent, opened by the worker, masked in all output
  --secret-file FILE    KEY=VALUE lines (# comments) read as --secret
  --queue-key FILE      the queue key: 64 hex digits, mode 0600 (default
                        $DJINN_QUEUE_KEY, then key_file in driver.conf's
                        queue block); make one with
                        (umask 077; openssl rand -hex 32 >FILE)
  --objects DIR         where the manifest's objects are read from
                        (default .); they travel with the build, 5 MiB
                        at most
  --registry DB         a qemu build's image is pinned at submit to its
                        SHA-256 in this registry (default as for run)
  --image-url URL       where workers fetch it: <URL>/<sha256>.qcow2, any
                        static HTTP server over the registry's store
                        (default $DJINN_IMAGE_URL, then image_url in
                        driver.conf's queue block)
  --follow              then print the build's log as it runs, and exit
                        as the build did (run's exit codes)
  --json                print {"build": N} (with --follow, the events)
  -h, --help            this help

Exit status: 0 queued (--follow: the build's exit status), 2 usage
error or invalid manifest, 3 Redis unreachable.
]],
    worker = [[
usage: djinn-lua worker [options]

Run queued builds on this machine until SIGTERM. Each build runs as a
child `djinn-lua run` (its own process group; it dies with the worker,
and so do its VMs and containers). A build is taken only when a slot is
free; a running build's lease is renewed every sixth of --lease; when a
worker is lost (killed, frozen, cut off), another takes its builds over
after the lease and runs them again from the start ("restarted: previous
worker lost" in the log); after 3 lost workers a build closes as failed.
A cancelled build is stopped at the next renewal.

Options:
]] .. URL_TEXT .. [[
  --name NAME           this worker's name (default the host name)
  --slots N             builds run at once (default 1)
  --drivers LIST        the driver queues served, comma-separated
                        (default: those of qemu and docker this machine
                        can run, checked at start; the os driver, which
                        runs jobs on this machine itself, only when
                        listed). A listed qemu or docker that cannot run
                        here is refused.
  --lease DURATION      how long a silent worker keeps its builds
                        (default 10s)
  --registry DB         the image registry the builds use (default as
                        for run); pinned images are cached in it
  --cache-max SIZE      the image cache's byte budget (default 20GB, or
                        cache_max in driver.conf's queue block): before
                        a download, least recently used images are
                        removed, never one a build is using
  --queue-key FILE      the key that opens builds' secrets (default
                        $DJINN_QUEUE_KEY, then key_file in driver.conf's
                        queue block); without it a build with secrets
                        fails (exit 3)
  -h, --help            this help

SIGTERM: take no more builds, finish those running, exit 0. A second
SIGTERM, or SIGINT, cancels them (they close as killed) and exits 130.

Exit status: 0 stopped by SIGTERM, 2 usage error (also: no driver
this machine can run, an unusable queue key), 3 Redis unreachable
at start, 130 stopped by SIGINT.
]],
    status = [[
usage: djinn-lua status [--redis URL] [--json] [BUILD_ID]

A build's status (queued, running, passed, passed_with_failures, failed,
killed, timed_out), its attempt, worker, times, exit status and error;
without an id, the last 20 builds.

Options:
]] .. URL_TEXT .. [[
  --json                JSON instead of text
  -h, --help            this help

Exit status: 0 success, 1 no such build, 2 usage error, 3 Redis
unreachable.
]],
    logs = [[
usage: djinn-lua logs [--redis URL] [-f] [--after ENTRY] [--json] BUILD_ID

Print a queued build's log as `run` printed it, from the start (or after
ENTRY, an id `--json` shows). -f, --follow: wait for more until the build
ends. A build re-run after its worker was lost shows "restarted: previous
worker lost (attempt N)" before the new attempt's lines.

Options:
]] .. URL_TEXT .. [[
  -f, --follow          wait for more until the build ends
  --after ENTRY         start after this log entry (resume)
  --json                the `run --json` events, each with "attempt"
                        and "entry"
  -h, --help            this help

Exit status: the build's (run's codes) once it has ended; 0 for a build
still running without --follow; 1 no such build, 2 usage error, 3 Redis
unreachable.
]],
    cancel = [[
usage: djinn-lua cancel [--redis URL] [--json] BUILD_ID...

Cancel builds: a queued one closes as killed at once; a running one is
stopped by its worker at its next lease renewal and closes as killed; one
whose worker was lost closes when another worker takes it over, without
running again.

Options:
]] .. URL_TEXT .. [[
  --json                JSON instead of text
  -h, --help            this help

Exit status: 0 every build was cancelled (or asked to stop), 1 one was
unknown or had already ended, 2 usage error, 3 Redis unreachable.
]],
    artifacts = [[
usage: djinn-lua artifacts [--redis URL] [--json] BUILD_ID DIR

Write the artifacts of an ended build into DIR (created if missing; an
existing file of the same name is replaced), as `run --artifacts DIR`
would have. They are the set of the attempt that ended the build (never a
lost worker's); a worker sends back at most 64 MiB of them, and they are
kept 7 days.

Options:
]] .. URL_TEXT .. [[
  --json                {"build": N, "attempt": N, "files": [...]}
  -h, --help            this help

Exit status: 0 written, 1 no such build, not ended yet, or no artifacts,
2 usage error, 3 Redis unreachable.
]],
    workers = [[
usage: djinn-lua workers [--redis URL] [--json]

The workers seen in the last minute: name, host, pid, slots, running
builds, queues, seconds since their last renewal.

Options:
]] .. URL_TEXT .. [[
  --json                JSON instead of text
  -h, --help            this help

Exit status: 0 success, 2 usage error, 3 Redis unreachable.
]],
}

local function eprint(...)
    io.stderr:write(table.concat({ ... }, ""), "\n")
end

-- driver.conf (--driver-config, else the default file when it exists),
-- loaded once per command: -> cfg | false (no file) | nil, why
local function load_conf(opts)
    if opts._conf ~= nil then return opts._conf, opts._conf_err end
    local paths = require "djinn.paths"
    local path = opts["driver-config"] or paths.default_driver_config()
    opts._conf = false
    if path and (opts["driver-config"] or require("djinn.fs").exists(path)) then
        local cfg, err = require("djinn.config").load(path)
        if cfg == nil then
            opts._conf = nil
            opts._conf_err = type(err) == "table" and
                table.concat(err, "\n") or tostring(err)
        else
            opts._conf = cfg
        end
    end
    return opts._conf, opts._conf_err
end

-- A key of driver.conf's queue block, or nil.
local function conf_queue(opts, key)
    local cfg = load_conf(opts)
    local q = cfg and cfg.queue
    return type(q) == "table" and q[key] or nil
end

-- The Redis URL of the command: -> url | nil, why
local function redis_url(opts)
    if opts.redis then return opts.redis end
    local env = os.getenv("DJINN_REDIS")
    if env and env ~= "" then return env end
    local cfg, err = load_conf(opts)
    if cfg == nil then return nil, err end
    local url = conf_queue(opts, "redis")
    if type(url) == "string" then return url end
    return nil, "no Redis URL: give --redis URL, set DJINN_REDIS, or " ..
        "write queue { redis \"redis://HOST:PORT\" } in driver.conf"
end

-- The executable a command name runs (a name with "/" as it is, else
-- the first match on $PATH), or nil.
local function which(name)
    local fs = require "djinn.fs"
    local function exe(p)
        local st = fs.stat(p)
        return st and st.type == "file" and st.mode & 73 ~= 0
    end
    if name:find("/", 1, true) then return exe(name) and name or nil end
    for dir in (os.getenv("PATH") or "/usr/bin:/bin"):gmatch("[^:]+") do
        if exe(dir .. "/" .. name) then return dir .. "/" .. name end
    end
    return nil
end

-- Can this machine run driver d's builds? (the worker's --drivers)
-- -> true | false, why
function M.can_run(d, cfg)
    local config = require "djinn.config"
    if d == "qemu" or d:match("^qemu%-") then
        local bin = config.driver(cfg or nil, "qemu").binary or
            "qemu-system-x86_64"
        if which(bin) == nil then
            return false, "qemu: " .. bin .. " is not installed (not " ..
                "found on PATH; set binary in driver.conf's qemu block)"
        end
        return true
    elseif d == "docker" then
        local host = config.driver(cfg or nil, "docker").host
        local c, err = require("djinn.transport.docker").connect{
            host = host, timeout = 5 }
        if c == nil then return false, err end
        return true
    end
    return true
end

-- The queue's secret key (32 bytes, for djinn.crypto.seal/open): the file
-- --queue-key, else $DJINN_QUEUE_KEY, else queue { key_file } of
-- driver.conf; 64 hex digits, readable by its owner only.
-- -> key | false (none configured) | nil, why
function M.queue_key(opts)
    local path = opts["queue-key"]
    if path == nil or path == "" then path = os.getenv("DJINN_QUEUE_KEY") end
    if path == nil or path == "" then path = conf_queue(opts, "key_file") end
    if path == nil or path == "" then return false end
    if type(path) ~= "string" then
        return nil, "queue.key_file: expected a file name"
    end
    local fs = require "djinn.fs"
    local st, serr = fs.stat(path)
    if st == nil then return nil, "queue key " .. tostring(serr) end
    if st.mode & 63 ~= 0 then
        return nil, string.format("queue key %s: readable by others " ..
            "(mode %o); it must be readable by its owner only " ..
            "(chmod 600 %s)", path, st.mode & 511, path)
    end
    local text = fs.readfile(path, 4096) or ""
    local hex = text:match("^%s*(%x+)%s*$")
    if hex == nil or #hex ~= 64 then
        return nil, "queue key " .. path .. ": expected 64 hex digits " ..
            "(256 bits; make one with: (umask 077; openssl rand -hex 32 " ..
            ">" .. path .. "))"
    end
    return (hex:gsub("%x%x", function(h)
        return string.char(tonumber(h, 16))
    end))
end

local function open(cmd, opts)
    local url, why = redis_url(opts)
    if url == nil then
        eprint("djinn-lua ", cmd, ": ", why)
        return nil, 2
    end
    local queue = require "djinn.queue"
    local spec, perr = queue.parse_url(url)
    if spec == nil then
        eprint("djinn-lua ", cmd, ": ", perr)
        return nil, 2
    end
    local q, err = queue.open(url)
    if q == nil then
        eprint("djinn-lua ", cmd, ": ", err)
        return nil, 3
    end
    return q
end

local function fmt_time(t)
    t = tonumber(t)
    return t and os.date("%Y-%m-%d %H:%M:%S", t) or "-"
end

-- Print build id's log; follow: until its end entry. -> exit status
local function print_log(q, id, opts)
    local queue = require "djinn.queue"
    local json = require "djinn.json"
    local out = io.stdout
    local log = require "djinn.log"
    local w = log.new{ out = out, json = false, max_output = 0 }
    local state = {
        sink = function(ev) M.replay(w, ev) end,
        line = function(text) w:_sink{ kind = "line", text = text } end,
    }
    -- --json: job output as `run --json` prints it, from the bytes the
    -- log keeps (djinn.log's output frames): valid UTF-8, a character
    -- split between two entries held back until its end, invalid bytes
    -- as U+FFFD.
    local held, held_e = "", nil
    local function json_event(data, e)
        local f = e.f
        local head, tail = log.output_event_parts(
            f.b ~= "" and f.b or nil, f.j ~= "" and f.j or nil)
        out:write(json.quote(data, head, tail:sub(1, -2) .. ',"attempt":' ..
            (tonumber(f.a) or 0) .. ',"entry":"' .. e.id .. '"}\n'))
    end
    local function json_output(e)
        local whole, rest = util.utf8_split(held .. e.f.o)
        held, held_e = rest, e
        if whole ~= "" then json_event(whole, e) end
    end
    local function json_flush()
        if held ~= "" then json_event(held, held_e) end
        held = ""
    end
    local after = opts.after or "0"
    while true do
        -- 32 entries a read: a job printing as fast as it can makes
        -- ~64 KB entries, and 1,000 of them were one 60 MB reply (a
        -- 16 MiB log: 42 MB resident; 13 MB so).
        local list, err = q:log_range(id, after, 32,
                                      opts.follow and 1 or nil)
        if list == nil then
            eprint("djinn-lua logs: ", err)
            return 3
        end
        for _, e in ipairs(list) do
            after = e.id
            if opts.json and not e.f.o then json_flush() end
            if e.f["end"] then
                out:flush()
                local code = tonumber(e.f.x) or 1
                if opts.json then
                    out:write(json.encode{ event = "end", build = id,
                                           status = e.f["end"],
                                           exit_code = code,
                                           attempt = tonumber(e.f.a),
                                           entry = e.id,
                                           error = e.f.error ~= "" and
                                               e.f.error or nil }, "\n")
                elseif e.f.error and e.f.error ~= "" and
                    tonumber(e.f.a) == 0 then
                    state.line("build " .. e.f["end"] .. ": " .. e.f.error)
                end
                out:flush()
                return code
            end
            if opts.json and e.f.o then
                json_output(e)
            elseif opts.json and e.f.e then
                out:write(e.f.e:sub(1, -3), ',"attempt":', tonumber(e.f.a)
                          or 0, ',"entry":"', e.id, '"}\n')
            else
                queue.render(e, out, opts.json, state)
            end
        end
        out:flush()
        if #list == 0 and not opts.follow then
            local b = q:build(id)
            local st = b and b.status
            if st and queue.TERMINAL[st] then
                return tonumber(b.exit) or queue.EXIT[st] or 1
            end
            return 0
        end
        if opts.follow and #list == 0 then
            local b = q:build(id)
            if b and b.status == nil then
                eprint("djinn-lua logs: build ", id, " is gone")
                return 1
            end
        end
    end
end

-- Replay a `run --json` event into writer w's sink (already masked and
-- capped by the run that printed it).
function M.replay(w, ev)
    local k = ev.event
    if k == "output" then
        w:_sink{ kind = "output", data = ev.data }
    elseif k == "job_start" then
        w:_sink{ kind = "job_start", job = ev.job, stage = ev.stage }
    elseif k == "job_end" then
        w:_sink{ kind = "job_end", job = ev.job, stage = ev.stage,
                 status = ev.status, duration = ev.duration or 0,
                 exit_code = ev.exit_code }
    elseif k == "build_end" and ev.status == "invalid" then
        w:_sink{ kind = "invalid_end", error = ev.error,
                 code = ev.exit_code }
    elseif k == "build_end" then
        w:_sink{ kind = "build_end", status = ev.status,
                 duration = ev.duration or 0,
                 error = ev.error, not_run = {},
                 warnings = type(ev.warnings) == "table" and ev.warnings or
                     {} }
        -- (the JSON names the jobs not run without their stages)
        if type(ev.not_run) == "table" and #ev.not_run > 0 then
            w:_sink{ kind = "line", text = "not run: " ..
                     table.concat(ev.not_run, ", ") }
        end
    elseif k == "warning" then
        w:_sink{ kind = "warning", message = ev.message }
    elseif k == "error" then
        w:_sink{ kind = "error", message = ev.message }
    elseif k == "hold" then
        w:_sink{ kind = "hold", command = ev.command, seconds = ev.seconds,
                 ["until"] = ev["until"],
                 id = tostring(ev.release or ""):match("(%S+)$") }
    end
end

-- The manifest's objects, read from dir, as one tar (at most
-- M.MAX_OBJECTS bytes of files): -> tar string ("" when there are none) |
-- nil, why
M.MAX_OBJECTS = 5 * 1024 * 1024
local function pack_objects(m, dir)
    local fs = require "djinn.fs"
    local entries, total, seen = {}, 0, {}
    local function add(rel)
        if seen[rel] then return true end
        seen[rel] = true
        local path = dir .. "/" .. rel
        local st = fs.stat(path)
        if st == nil then
            return nil, string.format("object %s: no such file in %s " ..
                "(--objects DIR)", rel, dir)
        elseif st.type == "dir" then
            entries[#entries + 1] = { name = rel, type = "dir" }
            for _, n in ipairs(fs.listdir(path) or {}) do
                local ok, why = add(rel .. "/" .. n)
                if not ok then return nil, why end
            end
        elseif st.type == "file" then
            total = total + st.size
            if total > M.MAX_OBJECTS then
                return nil, string.format("the objects are over the " ..
                    "queue's limit of %d MiB (at %s); objects this large " ..
                    "need a build run where they are (djinn-lua run)",
                    M.MAX_OBJECTS >> 20, rel)
            end
            entries[#entries + 1] = { name = rel, path = path }
        else
            return nil, "object " .. rel .. ": not a file or a directory"
        end
        return true
    end
    for _, o in ipairs(m.objects or {}) do
        local rel = o.src and util.safe_relpath(o.src)
        if rel == nil then
            return nil, "object " .. tostring(o.src) .. ": not a path " ..
                "inside the objects directory"
        end
        local ok, why = add(rel)
        if not ok then return nil, why end
    end
    if #entries == 0 then return "" end
    return require("djinn.tar").create(entries)
end

-- A qemu build's image, pinned now to {sha256, size, url} from the
-- submitter's registry (Djinn resolves the name when the build runs, so a
-- re-registered image changes a queued build; here it never does).
-- -> pin | false (not pinned: another driver, or a base image a worker
-- finds under its own disks) | nil, why
local function pin_image(m, opts)
    if m.driver.type ~= "qemu" then return false end
    local paths = require "djinn.paths"
    local regpath = opts.registry or paths.default_registry()
    local img, why = require("djinn.images").resolve{
        image = m.driver.image, registry = regpath,
        namespace = m.namespace, arch = m.driver.arch or "x86_64" }
    if img == nil then return nil, why end
    if img.sha256 == nil then return false end
    local st = require("djinn.fs").stat(img.path)
    local base = opts["image-url"] or os.getenv("DJINN_IMAGE_URL")
    if base == nil or base == "" then
        base = conf_queue(opts, "image_url")
    end
    local url = ""
    if type(base) == "string" and base ~= "" then
        url = base:gsub("/+$", "") .. "/" .. img.sha256 .. ".qcow2"
    end
    return { sha256 = img.sha256, size = st and st.size or 0, url = url }
end

local function cmd_submit(q, opts, pos)
    local manifest = require "djinn.manifest"
    local queue = require "djinn.queue"
    local json = require "djinn.json"
    local file = pos[1] or ".djinn.yml"
    local f, ferr = io.open(file, "rb")
    if f == nil then
        eprint("djinn-lua submit: ", ferr)
        return 2
    end
    local text = f:read("a")
    f:close()
    local m, errs = manifest.parse(text, file)
    if m == nil then
        for _, e in ipairs(errs) do eprint(e) end
        eprint("djinn-lua submit: ", file, ": invalid manifest (",
               #errs, " error", #errs == 1 and "" or "s", "); nothing queued")
        return 2
    end
    -- A variable whose name marks it a secret (run's default patterns)
    -- would sit in clear in Redis: it must come as --secret.
    local mask = require "djinn.mask"
    for _, kv in ipairs(opts.env or {}) do
        local k = kv:match("^([%a_][%w_]*)=")
        if k == nil then
            eprint("djinn-lua submit: --env ", kv, ": expected KEY=VALUE")
            return 2
        end
        for _, pat in ipairs(mask.DEFAULT_PATTERNS) do
            if mask.glob_match(pat, k) then
                eprint("djinn-lua submit: --env ", k, ": a secret (its ",
                       "name matches ", pat, "), which the queue would ",
                       "store in clear: give it as --secret ", k, "=... ",
                       "(sealed with the queue key); nothing queued")
                return 2
            end
        end
    end
    local sealed = ""
    local secrets, serr = mask.collect(opts.secret, opts["secret-file"])
    if secrets == nil then
        eprint("djinn-lua submit: ", serr, "; nothing queued")
        return 2
    end
    if #secrets > 0 then
        for _, kv in ipairs(secrets) do
            if kv:find("[\r\n]") then
                eprint("djinn-lua submit: --secret ", kv:match("^[^=]*"),
                       ": a value with a line break cannot travel ",
                       "through the queue; nothing queued")
                return 2
            end
        end
        local key, kerr = M.queue_key(opts)
        if not key then
            eprint("djinn-lua submit: ", kerr or ("secrets need the " ..
                   "queue key the workers have: --queue-key FILE, " ..
                   "$DJINN_QUEUE_KEY or queue { key_file \"FILE\" } in " ..
                   "driver.conf (make one with: (umask 077; openssl rand " ..
                   "-hex 32 >FILE))"), "; nothing queued")
            return 2
        end
        sealed = require("djinn.crypto").seal(key,
            require("djinn.json").encode(secrets),
            require("djinn.queue").secrets_aad(text))
    end
    local objects, oerr = pack_objects(m, opts.objects or ".")
    if objects == nil then
        eprint("djinn-lua submit: ", oerr, "; nothing queued")
        return 2
    end
    local pin, perr = pin_image(m, opts)
    if pin == nil then
        eprint("djinn-lua submit: ", perr, "; nothing queued")
        return 2
    end
    local qname = queue.queue_of(m.driver)
    local id, err = q:submit{ text = text, file = util.basename(file),
                              queue = qname, env = opts.env,
                              objects = objects, secrets = sealed,
                              image = pin ~= false and
                                  string.format("%s:%d:%s", pin.sha256,
                                                pin.size, pin.url) or "" }
    if id == nil then
        eprint("djinn-lua submit: ", err)
        return 3
    end
    if opts.json then
        print(json.encode{ build = id, queue = qname })
    else
        print(id)
    end
    io.stdout:flush()
    if opts.follow then
        return print_log(q, tostring(id), { follow = true,
                                            json = opts.json })
    end
    return 0
end

local function build_json(id, b)
    local json = require "djinn.json"
    return json.encode{ build = tonumber(id) or id, status = b.status,
        attempt = tonumber(b.attempt), worker = b.worker ~= "" and b.worker
        or nil, queue = b.queue, file = b.file,
        submitted = tonumber(b.submitted), started = tonumber(b.started),
        finished = tonumber(b.finished), exit_code = tonumber(b.exit),
        error = b.error ~= "" and b.error or nil,
        cancel = b.cancel == "1" or nil }
end

local function cmd_status(q, opts, pos)
    local ids = {}
    if pos[1] then
        ids[1] = pos[1]
    else
        local last = tonumber(q:call("GET", "djinn:seq")) or 0
        for i = last, math.max(1, last - 19), -1 do
            ids[#ids + 1] = tostring(i)
        end
    end
    local rows = {}
    for _, id in ipairs(ids) do
        local b, err = q:build(id)
        if b == nil then
            eprint("djinn-lua status: ", err)
            return 3
        end
        if b.status == nil then
            if pos[1] then
                eprint("djinn-lua status: no build ", id, " (closed " ..
                       "builds are kept 7 days)")
                return 1
            end
        else
            rows[#rows + 1] = { id = id, b = b }
        end
    end
    if opts.json then
        local out = {}
        for _, r in ipairs(rows) do out[#out + 1] = build_json(r.id, r.b) end
        if pos[1] then
            print(out[1])
        else
            print("[" .. table.concat(out, ",") .. "]")
        end
        return 0
    end
    if pos[1] then
        local b = rows[1].b
        print(string.format("build %s: %s", pos[1], b.status))
        print(string.format("  file       %s (queue %s)", b.file, b.queue))
        print(string.format("  attempt    %s%s", b.attempt,
            b.worker and b.worker ~= "" and (" on " .. b.worker) or ""))
        print("  submitted  " .. fmt_time(b.submitted))
        if b.started then print("  started    " .. fmt_time(b.started)) end
        if b.finished then
            print("  finished   " .. fmt_time(b.finished))
            print("  exit       " .. tostring(b.exit))
        end
        if b.error and b.error ~= "" then print("  error      " .. b.error) end
        if b.cancel == "1" and not b.finished then
            print("  cancel     requested")
        end
        return 0
    end
    print(string.format("%-6s  %-20s  %-14s  %-7s  %s", "BUILD", "STATUS",
                        "QUEUE", "ATTEMPT", "FILE"))
    for _, r in ipairs(rows) do
        print(string.format("%-6s  %-20s  %-14s  %-7s  %s", r.id,
                            r.b.status, r.b.queue or "", r.b.attempt or "",
                            r.b.file or ""))
    end
    return 0
end

local function cmd_cancel(q, opts, pos)
    local json = require "djinn.json"
    if #pos == 0 then
        eprint("djinn-lua cancel: which build? (djinn-lua status lists " ..
               "them)")
        return 2
    end
    local rc = 0
    for _, id in ipairs(pos) do
        local r, err = q:cancel(id)
        if r == nil then
            eprint("djinn-lua cancel: ", err)
            return 3
        end
        local ok = r == "killed" or r == "requested"
        if opts.json then
            print(json.encode{ build = tonumber(id) or id, result = r })
        elseif r == "killed" then
            print(id .. ": killed (it was queued)")
        elseif r == "requested" then
            print(id .. ": cancel requested; its worker stops it at its " ..
                  "next renewal")
        elseif r == "unknown" then
            eprint("djinn-lua cancel: no build ", id)
        else
            eprint("djinn-lua cancel: build ", id, " has already ended (",
                   r, ")")
        end
        if not ok then rc = 1 end
    end
    return rc
end

local function cmd_artifacts(q, opts, pos)
    local json = require "djinn.json"
    local id, dir = pos[1], pos[2]
    local b, err = q:build(id)
    if b == nil then
        eprint("djinn-lua artifacts: ", err)
        return 3
    end
    if b.status == nil then
        eprint("djinn-lua artifacts: no build ", id)
        return 1
    end
    if not require("djinn.queue").TERMINAL[b.status] then
        eprint("djinn-lua artifacts: build ", id, " has not ended (",
               b.status, "); try again when it has (logs -f waits)")
        return 1
    end
    if b.artifacts == nil then
        eprint("djinn-lua artifacts: build ", id, " sent back no artifacts")
        return 1
    end
    local data
    data, err = q:call("GET", "djinn:art:" .. id .. ":" .. b.artifacts)
    if data == nil then
        eprint("djinn-lua artifacts: ", err)
        return 3
    end
    if type(data) ~= "string" then
        eprint("djinn-lua artifacts: build ", id, "'s artifacts have ",
               "expired")
        return 1
    end
    local fs = require "djinn.fs"
    local ok, merr = fs.mkdir_p(dir)
    if not ok then
        eprint("djinn-lua artifacts: ", merr)
        return 1
    end
    local names, xerr = require("djinn.tar").extract(data, dir)
    if names == nil then
        eprint("djinn-lua artifacts: ", xerr)
        return 1
    end
    if opts.json then
        print(json.encode{ build = tonumber(id), attempt =
                           tonumber(b.artifacts), files = json.array(names) })
    else
        for _, n in ipairs(names) do print(dir .. "/" .. n) end
    end
    return 0
end

local function cmd_workers(q, opts)
    local json = require "djinn.json"
    local list, err = q:workers(60)
    if list == nil then
        eprint("djinn-lua workers: ", err)
        return 3
    end
    if opts.json then
        local out = json.array()
        for _, w in ipairs(list) do out[#out + 1] = w end
        print(json.encode(out))
        return 0
    end
    if #list == 0 then
        print("no worker seen in the last minute")
        return 0
    end
    print(string.format("%-24s  %-16s  %-7s  %-7s  %-5s  %s", "NAME", "HOST",
                        "PID", "RUNNING", "SEEN", "QUEUES"))
    for _, w in ipairs(list) do
        print(string.format("%-24s  %-16s  %-7s  %-7s  %-5s  %s", w.name,
            w.host, tostring(w.pid), string.format("%d/%d", w.running or 0,
            w.slots or 0), string.format("%ds", w.age),
            table.concat(type(w.drivers) == "table" and w.drivers or {}, ",")
            .. (w.draining and " (draining)" or "")))
    end
    return 0
end

local function cmd_worker(opts)
    local queue = require "djinn.queue"
    local url, why = redis_url(opts)
    if url == nil then
        eprint("djinn-lua worker: ", why)
        return 2
    end
    local spec, perr = queue.parse_url(url)
    if spec == nil then
        eprint("djinn-lua worker: ", perr)
        return 2
    end
    local slots = tonumber(opts.slots or "1")
    if slots == nil or slots ~= math.floor(slots) or slots < 1 or
        slots > 256 then
        eprint("djinn-lua worker: --slots ", tostring(opts.slots),
               ": expected a whole number from 1 to 256")
        return 2
    end
    local lease = 10
    if opts.lease then
        lease = util.parse_duration(opts.lease)
        if lease == nil or lease < 0.5 then
            eprint("djinn-lua worker: --lease ", opts.lease, ": expected ",
                   "a duration of at least 0.5s, e.g. 10s or 1m")
            return 2
        end
    end
    local known = require("djinn.manifest").driver_types
    local listed = {}
    for d in (opts.drivers or ""):gmatch("[^,%s]+") do
        local ok = false
        for _, t in ipairs(known) do if t == d then ok = true end end
        if not ok and not d:match("^qemu%-") then
            eprint("djinn-lua worker: --drivers: unknown driver ", d,
                   " (known: ", table.concat(known, ", "), ")")
            return 2
        end
        listed[#listed + 1] = d
    end
    if opts.drivers and #listed == 0 then
        eprint("djinn-lua worker: --drivers: no driver given")
        return 2
    end
    -- The isolating drivers must be runnable here: listed ones are
    -- checked (a worker taking builds it cannot run would fail them all),
    -- and without --drivers the worker serves those that are.
    local cfg, cerr = load_conf(opts)
    if cfg == nil then
        eprint("djinn-lua worker: ", cerr)
        return 2
    end
    local drivers, why = {}, {}
    for _, d in ipairs(#listed > 0 and listed or { "qemu", "docker" }) do
        local ok, no = M.can_run(d, cfg)
        if ok then
            drivers[#drivers + 1] = queue.queue_of(d)
        elseif #listed > 0 then
            eprint("djinn-lua worker: --drivers ", d, ": ", no)
            return 2
        else
            why[#why + 1] = no
        end
    end
    if #drivers == 0 then
        eprint("djinn-lua worker: this machine can run no isolating ",
               "driver (", table.concat(why, "; "), "); give --drivers ",
               "(os runs jobs on this machine itself)")
        return 2
    end
    local cache_max = opts["cache-max"] or conf_queue(opts, "cache_max") or
        M.CACHE_MAX
    if type(cache_max) == "string" then
        local b, berr = util.parse_size(cache_max)
        if b == nil then
            eprint("djinn-lua worker: --cache-max ", cache_max, ": ", berr)
            return 2
        end
        cache_max = b
    end
    if math.type(cache_max) ~= "integer" or cache_max < 0 then
        eprint("djinn-lua worker: queue.cache_max: expected a size such ",
               "as 20GB, got ", tostring(cache_max))
        return 2
    end
    local name = opts.name or ((require("djinn.fs").readfile(
        "/proc/sys/kernel/hostname", 256) or "worker"):gsub("%s+$", ""))
    if not name:match("^[%w._-]+$") then
        eprint("djinn-lua worker: --name ", name, ": letters, digits, ",
               "'.', '_' and '-' only")
        return 2
    end
    local key, kerr = M.queue_key(opts)
    if key == nil then
        eprint("djinn-lua worker: ", kerr)
        return 2
    end
    return require("djinn.worker").main{
        url = url, name = name, slots = slots, drivers = drivers,
        lease = lease, driver_config = opts["driver-config"],
        registry = opts.registry, cache_max = cache_max, key = key or nil,
        unfenced = os.getenv("DJINN_TEST_UNFENCED") == "1",
    }
end

function M.main(cmd, args, parse_opts, usage_error)
    -- logs -f
    local a2 = {}
    for _, a in ipairs(args) do
        a2[#a2 + 1] = (a == "-f" and cmd == "logs") and "--follow" or a
    end
    local opts, pos = parse_opts(a2, M.COMMANDS[cmd].options)
    if opts == nil then return usage_error(cmd, pos) end
    if opts.help then
        io.stdout:write(M.HELP[cmd])
        return 0
    end
    if cmd == "worker" then
        if #pos > 0 then return usage_error(cmd, "no arguments expected") end
        return cmd_worker(opts)
    end
    if (cmd == "logs" and #pos ~= 1) or (cmd == "status" and #pos > 1) or
        (cmd == "artifacts" and #pos ~= 2) or
        ((cmd == "workers") and #pos > 0) or
        (cmd == "submit" and #pos > 1) then
        return usage_error(cmd, "usage: " .. M.COMMANDS[cmd].usage)
    end
    local ids = cmd ~= "submit" and pos or {}
    if cmd == "artifacts" then ids = { pos[1] } end
    for _, id in ipairs(ids) do
        if not id:match("^%d+$") then
            return usage_error(cmd, "a build id is a number, not " ..
                               string.format("%q", id))
        end
    end
    local q, rc = open(cmd, opts)
    if q == nil then return rc end
    local r
    if cmd == "submit" then
        r = cmd_submit(q, opts, pos)
    elseif cmd == "status" then
        r = cmd_status(q, opts, pos)
    elseif cmd == "logs" then
        local b = q:build(pos[1])
        if b and b.status == nil then
            eprint("djinn-lua logs: no build ", pos[1])
            r = 1
        else
            r = print_log(q, pos[1], opts)
        end
    elseif cmd == "cancel" then
        r = cmd_cancel(q, opts, pos)
    elseif cmd == "artifacts" then
        r = cmd_artifacts(q, opts, pos)
    else
        r = cmd_workers(q, opts)
    end
    q:close()
    return r
end

return M
