-- djinn.drivers.docker: run each job in its own container, over the Docker
-- Engine API (docs/djinn-compat.md §3.3, with Djinn's weaknesses fixed).
--
-- driver.conf, block `driver docker { ... }`:
--   host        "unix:///var/run/docker.sock" (default) | "tcp://H:P"
--   version     API version; unset or "auto" = negotiated from /version
--   network     HostConfig.NetworkMode of the job containers (default:
--               the engine's default network; "none" = loopback only)
--   init        true (default): run the job under the engine's init
--               (docker-init / tini) so that stop's SIGTERM reaches it
--   stop_timeout  grace period of a stop before SIGKILL (default 5s)
--   pull_timeout  limit for pulling the image (default 10m)
-- Manifest: driver.image (pulled), driver.workspace (absolute path).
--
-- Create: connect (check the engine answers; API version); pull the
-- image with its progress lines in the log (if the pull fails and the
-- image is present locally, say so and use it); create the workspace
-- volume; place the objects through the archive API ("Placing object SRC
-- => DST"): relative DSTs and DSTs inside the workspace go into the
-- volume (through a helper container that is never started); an absolute
-- DST outside the workspace goes where it says, in every job container
-- (uploaded before it starts), since only the volume outlives a container.
--
-- Execute: one container per job: the image, the build env, the volume at
-- workspace, WorkingDir = workspace, the job script uploaded into the
-- volume as <workspace>/.djinn/NNN-<job>.sh and run as
-- `/bin/sh <script>`. The output is followed live (logs?follow=1,
-- demultiplexed) while the job runs; the exit code comes from wait;
-- non-zero = failed. Artifacts come out through the archive API, relative
-- to the workspace: directories stay directories; globs are expanded by
-- the image's /bin/sh in a short helper container (the same rules as
-- glob(3): * does not match a leading dot), literal paths are checked
-- with HEAD /archive. The artifact size limit (max) holds DURING the
-- transfer: a regular file whose HEAD /archive stat is over max is refused
-- before any download; the archive is streamed to a spool file beside the
-- target (never held in memory) and aborted once it passes max +
-- TAR_OVERHEAD bytes; the extraction refuses entries over max (or adding
-- up to more). Nothing partial is left.
--
-- Every container and volume is labelled djinn.build=<id> (the build's
-- id, o.build_id: the same as its state directory and JSON events) and
-- djinn.managed=true; destroy() force-removes them on every path. On
-- timeout or SIGINT the running container is stopped (stop with the
-- grace period, then kill) before execute returns. The engine, the build
-- id, every container id and the volume name are recorded in the build's
-- state directory (djinn.state) while they exist, so that the next run
-- removes them if this runner is killed (kill -9) before destroy().
local docker = require "djinn.transport.docker"
local fs = require "djinn.fs"
local json = require "djinn.json"
local tar = require "djinn.tar"
local util = require "djinn.util"
local pipeline = require "djinn.pipeline"
local proc = require "djinn.proc"
local state = require "djinn.state"

local M = {}

-- What this driver declares (manifest keys, driver.conf keys and
-- defaults, what the reaper cleans): lua/djinn/drivers/docker_describe.lua.
M.describe = require "djinn.drivers.docker_describe"
local Driver = {}
Driver.__index = Driver

local function short(id)
    return (tostring(id):gsub("^sha256:", "")):sub(1, 12)
end

function M.new(o)
    local cfg = o.config or {}
    local ws = o.driver and o.driver.workspace
    local image = o.driver and o.driver.image
    if type(image) ~= "string" or image == "" then
        return nil, "driver docker requires image"
    end
    if type(ws) ~= "string" or ws:sub(1, 1) ~= "/" then
        return nil, string.format("driver docker: workspace must be an " ..
            "absolute path in the container, got %q", tostring(ws))
    end
    ws = ws:gsub("/+$", "")
    if ws == "" or ws:find("/%.%.?/") or ws:find("/%.%.?$") then
        return nil, string.format("driver docker: workspace %q must be " ..
            "an absolute path below / without . or ..", o.driver.workspace)
    end
    local kinds = { network = "string", init = "boolean",
                    stop_timeout = "number", pull_timeout = "number",
                    host = "string", version = "string" }
    for k, want in pairs(kinds) do
        if cfg[k] ~= nil and type(cfg[k]) ~= want then
            return nil, string.format("driver.conf: docker %s: expected " ..
                "%s, got %s %s (e.g. network \"none\", init false, " ..
                "stop_timeout 10s, pull_timeout 5m)", k,
                want == "number" and "a duration" or "a " .. want,
                type(cfg[k]), tostring(cfg[k]))
        end
    end
    -- The build's id (djinn.run makes it: the state directory's name and
    -- every JSON event's "build"); a driver made without one gets its own.
    local id = o.build_id or state.new_id()
    return setmetatable({
        log = o.log, ctx = o.ctx, cfg = cfg, image = image, ws = ws,
        id = id, labels = { ["djinn.build"] = id,
                            ["djinn.managed"] = "true" },
        containers = {}, nscript = 0,
        grace = tonumber(cfg.stop_timeout) or 5,
    }, Driver)
end

function Driver:cancel_fn()
    local ctx = self.ctx
    return function() return ctx and ctx:cancelled() end
end

-- A container config for the image with the workspace volume.
function Driver:config(extra)
    local c = {
        Image = self.image_id, WorkingDir = self.ws,
        Labels = json.object(util.shallow_copy(self.labels)),
        Tty = false, OpenStdin = false,
        HostConfig = {
            Mounts = json.array{ { Type = "volume", Source = self.volume,
                                   Target = self.ws } },
            Init = self.cfg.init ~= false,
        },
    }
    if type(self.cfg.network) == "string" and self.cfg.network ~= "" then
        c.HostConfig.NetworkMode = self.cfg.network
    end
    for k, v in pairs(extra or {}) do c[k] = v end
    return c
end

function Driver:new_container(extra)
    local id, err = self.c:container_create(self:config(extra))
    if id == nil then return nil, err end
    self.containers[id] = true
    state.current():add("containers", id)
    return id
end

function Driver:remove_container(id)
    local ok, err = self.c:container_remove(id)
    if ok then
        self.containers[id] = nil
        state.current():del("containers", id)
    end
    return ok, err
end

function Driver:pull()
    local log, image = self.log, self.image
    log:line("Pulling image " .. image .. "...")
    local last = {}
    local ok, err, code = self.c:pull(image, function(msg)
        local status = msg.status or ""
        local line = msg.id and (msg.id .. ": " .. status) or status
        if msg.progress and msg.progress ~= "" then
            line = line .. " " .. msg.progress
        end
        -- Every state change is shown; repeated progress of the same
        -- state at most once a second per layer.
        local key = (msg.id or "") .. "\0" .. status
        local now = proc.now()
        local prev = last[msg.id or ""]
        if prev == nil or prev.key ~= key or now - prev.t >= 1 then
            last[msg.id or ""] = { key = key, t = now }
            log:line("  " .. line)
        end
    end, { cancel = self:cancel_fn(), timeout = self.cfg.pull_timeout })
    if ok then return true end
    if code == "cancelled" or code == "connect" then
        return nil, err
    end
    local info = self.c:image_inspect(image)
    if type(info) == "table" and info.Id then
        log:line(string.format("Pulling %s failed: %s", image,
                               (err:gsub("^docker: ", ""))))
        log:line("Using the image " .. image .. " present locally instead")
        return true
    end
    return nil, string.format("docker: pulling image %s failed: %s", image,
                              (err:gsub("^docker: ", "")))
end

-- Where an object's DST goes: "vol", relative path inside the volume |
-- "root", path relative to / | nil, cause.
function Driver:object_target(dst)
    if dst:sub(1, 1) == "/" then
        local norm = dst:gsub("/+", "/"):gsub("/$", "")
        if norm == self.ws then
            return nil, dst .. ": is the workspace itself (name a file " ..
                "inside it)"
        end
        if norm:sub(1, #self.ws + 1) == self.ws .. "/" then
            local rel, why = util.safe_relpath(norm:sub(#self.ws + 2))
            if rel == nil then return nil, dst .. ": " .. why end
            return "vol", rel
        end
        local rel, why = util.safe_relpath(norm:sub(2))
        if rel == nil or rel == "" then
            return nil, dst .. ": " .. (why or "not a file path")
        end
        return "root", rel
    end
    local rel, why = util.safe_relpath(dst)
    if rel == nil then
        return nil, string.format("%s: %s (relative destinations are " ..
            "inside the workspace %s)", dst, why, self.ws)
    end
    return "vol", rel
end

-- Objects (files, and directories with everything below them: the tar
-- carries the tree) -> true | nil, cause when any could not be placed
-- (issue 11, 4.8: an object error fails the build).
function Driver:place(objects)
    local helper
    local outside = {}
    local failed = {}
    for _, obj in ipairs(objects) do
        if obj.err then failed[#failed + 1] = obj.src end
    end
    pipeline.place_objects(objects, self.log, function(obj)
        local ok, err = self:place_one(obj, outside, helper)
        if type(ok) == "string" then helper, ok = ok, true end
        if not ok then failed[#failed + 1] = obj.src end
        return ok, err
    end)
    if helper then
        self:remove_container(helper)
    end
    if #outside > 0 then
        local data, err = tar.create(outside)
        if data == nil then
            self.log:line("object error: " .. tostring(err))
            failed[#failed + 1] = "(outside the workspace)"
        else
            self.outside = data
        end
    end
    local why = pipeline.object_failure(failed, #objects)
    if why then return nil, why end
    return true
end

-- One object: -> true | helper id (a helper container was made) | nil, cause
function Driver:place_one(obj, outside, helper)
    local where, rel = self:object_target(obj.dst)
    if where == nil then return nil, rel end
    local data, terr = tar.create{ { name = rel, path = obj.path } }
    if data == nil then return nil, terr end
    if where == "root" then
        outside[#outside + 1] = { name = rel, path = obj.path }
        return true
    end
    local made
    if helper == nil then
        local err
        helper, err = self:new_container{ Cmd = json.array{ "true" } }
        if helper == nil then return nil, err end
        made = helper
    end
    local ok, err = self.c:put_archive(helper, self.ws, data)
    if not ok then
        if made then self:remove_container(made) end
        return nil, err
    end
    return made or true
end

-- The pipeline prints "driver docker: <cause>": no second "docker: ".
local function plain(err)
    return (tostring(err):gsub("^docker: ", ""))
end

function Driver:create(env, objects)
    local ok, err = self:_create(env, objects)
    if not ok then return nil, plain(err) end
    return true
end

function Driver:_create(env, objects)
    local log, cfg = self.log, self.cfg
    local c, err = docker.connect{ host = cfg.host, version = cfg.version,
                                   cancel = self:cancel_fn() }
    if c == nil then return nil, err end
    self.c = c
    state.current():set("docker", { host = c.host, version = c.version,
                                    build = self.id })
    log:line(string.format("Using docker API version %s%s (engine %s at " ..
        "%s)...", c.version, c.negotiated and ", negotiated" or "",
        tostring(c.engine.Version), c.host))
    local ok
    ok, err = self:pull()
    if not ok then return nil, err end
    local info
    info, err = c:image_inspect(self.image)
    if type(info) ~= "table" then
        return nil, "docker: inspecting image " .. self.image .. ": " ..
            tostring(err):gsub("^docker: ", "")
    end
    self.image_id = info.Id
    log:line(string.format("Using Driver image %s - %s...", self.image,
                           info.Id))
    log:line("")
    local vol
    -- Recorded before it exists: the name is known, so no kill -9 window.
    state.current():add("volumes", "djinn-" .. self.id)
    vol, err = c:volume_create("djinn-" .. self.id, self.labels)
    if vol == nil then
        return nil, "docker: creating the workspace volume: " ..
            tostring(err):gsub("^docker: ", "")
    end
    self.volume = vol
    local list = json.array{}
    for _, kv in ipairs(env) do
        list[#list + 1] = kv.key .. "=" .. kv.value
    end
    self.env = list
    return self:place(objects)
end

-- Stop a running job container: stop with the grace period, then kill.
function Driver:stop(id)
    self.log:line(string.format("Stopping container %s (SIGTERM, SIGKILL " ..
                                "after %gs)...", short(id), self.grace))
    local ok = self.c:container_stop(id, self.grace)
    if not ok then
        self.c:container_kill(id)
    end
end

function Driver:glob(job_id, src)
    local rel, why = util.safe_relpath(src)
    if rel == nil then
        return nil, string.format("%s: %s (artifacts are collected from " ..
                                  "the workspace %s)", src, why, self.ws)
    end
    if not rel:find("[%*%?%[]") then
        local st, err = self.c:stat_path(job_id, self.ws .. "/" .. rel)
        if st == nil then return nil, err end
        return st and { rel } or {}
    end
    -- Expand the pattern with the image's shell: IFS= stops field
    -- splitting, pathname expansion stays; a pattern that matches nothing
    -- is left as is and dropped by the test.
    local id, err = self:new_container{
        Entrypoint = json.array{ "/bin/sh" },
        Cmd = json.array{ "-c", 'IFS=; for f in $1; do ' ..
            'if [ -e "$f" ] || [ -L "$f" ]; then printf "%s\\0" "$f"; fi; ' ..
            'done', "sh", rel },
    }
    if id == nil then return nil, err end
    local out = {}
    local ok
    ok, err = self.c:container_start(id)
    if ok then
        ok, err = self.c:container_wait(id, { timeout = 60 })
    end
    if ok then
        ok, err = self.c:container_logs(id, { on_output = function(d, s)
            if s == "stdout" then out[#out + 1] = d end
        end })
    end
    self:remove_container(id)
    if not ok then return nil, err end
    local list = {}
    for name in table.concat(out):gmatch("([^%z]+)%z") do
        list[#list + 1] = name
    end
    table.sort(list)
    return list
end

-- Bytes an archive may have beyond its files' max: tar headers and
-- padding (512-byte blocks, pax records, the end blocks).
M.TAR_OVERHEAD = 1024 * 1024

-- Stream the archive of src into the file `file`; max bounds it.
function Driver:fetch(job_id, src, path, file, max)
    local f, ferr = io.open(file, "wb")
    if f == nil then return nil, ferr end
    local bound = max and max + M.TAR_OVERHEAD
    local ok, r, err, code = pcall(self.c.get_archive, self.c, job_id, src, {
        max_body = bound, cancel = self:cancel_fn(),
        on_data = function(chunk) assert(f:write(chunk)) end,
    })
    local cok, cerr = f:close()
    if not ok then
        return nil, "docker: writing " .. file .. ": " .. tostring(r)
    elseif r == nil and code == "too_large" then
        return nil, string.format("docker: %s: the archive is larger than " ..
            "%d bytes (the limit of %d bytes + %d for tar headers); the " ..
            "transfer was stopped", path, bound, max, M.TAR_OVERHEAD),
            "limit"
    elseif r == nil then
        return nil, err, code
    elseif not cok then
        return nil, "docker: writing " .. file .. ": " .. tostring(cerr)
    end
    return true
end

function Driver:get(job_id, path, host, max)
    local src = self.ws .. "/" .. path
    if max then
        local st, err = self.c:stat_path(job_id, src)
        if st == nil then return nil, err end
        if st and docker.is_regular(st.mode) and st.size and st.size > max
        then
            return nil, string.format("docker: %s: %d bytes is larger " ..
                "than the limit of %d bytes", path, st.size, max), "limit",
                st.size
        end
    end
    local parent = host:match("^(.*)/[^/]*$")
    local spool, serr = fs.mkdtemp(".djinn-get-", parent)
    if spool == nil then return nil, serr end
    local archive = spool .. "/archive.tar"
    local ok, err, code = self:fetch(job_id, src, path, archive, max)
    if ok then
        ok, err, code = tar.extract_file(archive, parent,
            { top = util.basename(host), max = max })
    end
    fs.rm_rf(spool)
    if not ok then
        if code == "limit" then fs.rm_rf(host) end
        return nil, err, code
    end
    return true
end

function Driver:execute(job, store)
    local ctx, log, c = self.ctx, self.log, self.c
    self.nscript = self.nscript + 1
    local rel = string.format(".djinn/%03d-%s.sh", self.nscript,
                              (job.name:gsub("[^%w%._-]", "-")))
    local script = self.ws .. "/" .. rel
    local id, err = self:new_container{
        Entrypoint = json.array{ "/bin/sh" }, Cmd = json.array{ script },
        Env = self.env,
    }
    if id == nil then return "failed", err end
    local data = tar.create{
        { name = ".djinn", type = "dir", mode = tonumber("755", 8) },
        { name = rel, data = job.script, mode = tonumber("755", 8) },
    }
    local ok
    ok, err = c:put_archive(id, self.ws, data)
    if ok and self.outside then
        ok, err = c:put_archive(id, "/", self.outside)
    end
    if not ok then
        self:remove_container(id)
        return "failed", err
    end
    -- Attach, then start once attached (as `docker run` does: the attach
    -- stream is ~3x faster than following the logs; issue 13).
    local cancel = self:cancel_fn()
    local code, started
    ok, err, code = c:container_attach(id, {
        cancel = cancel,
        on_attached = function()
            local sok, serr = c:container_start(id)
            started = sok and true or false
            return sok, serr
        end,
        on_output = function(d) log:output(d) end,
    })
    if started == false or (started == nil and code ~= "cancelled") then
        self:remove_container(id)
        return "failed", err or "docker: the container did not start"
    end
    if not ok and code ~= "cancelled" then
        log:line("warning: the output stream of the job broke: " ..
                 tostring(err))
    end
    local exit
    if code ~= "cancelled" then
        exit, err, code = c:container_wait(id, { cancel = cancel })
    end
    if code == "cancelled" then
        local reason = ctx:cancelled()
        self:stop(id)
        self:remove_container(id)
        return reason, ctx:cause() or reason, nil
    end
    if exit == nil then
        self:remove_container(id)
        return "failed", err
    end
    local status, cause = "passed", nil
    if exit ~= 0 then
        status, cause = "failed", "exit status " .. tostring(exit)
    end
    pipeline.collect_artifacts(job, log, store,
        function(src) return self:glob(id, src) end,
        function(path, host, max) return self:get(id, path, host, max) end)
    if status == "failed" then
        -- Kept until destroy: run --hold looks inside it (hold_info).
        self.failed = id
    else
        self:remove_container(id)
    end
    return status, cause, exit
end

-- run --hold: the failed job's container has exited, so its file system
-- is committed to an image (labelled with the build) and a new container
-- of it, with the workspace volume, sleeps for the hold; a shell goes in
-- with docker exec. destroy removes both. -> { command = } | nil, why
function Driver:hold_info(secs)
    local id = self.failed
    if id == nil then return nil, "no failed job container" end
    local img, err = self.c:commit(id, self.labels)
    if img == nil then return nil, "docker commit: " .. tostring(err) end
    self.hold_image = img
    local cid
    cid, err = self:new_container{ Image = img,
        Entrypoint = json.array{ "/bin/sh", "-c",
            "trap 'exit 0' TERM INT; sleep " .. math.ceil(secs or 600) ..
            " & wait" } }
    if cid == nil then return nil, "docker create: " .. tostring(err) end
    local ok
    ok, err = self.c:container_start(cid)
    if not ok then return nil, "docker start: " .. tostring(err) end
    self.hold_container = cid
    local host = self.cfg.host
    local argv = { "docker" }
    if type(host) == "string" and host ~= "" then
        argv[#argv + 1] = "-H"
        argv[#argv + 1] = host
    end
    for _, a in ipairs{ "exec", "-it", short(cid), "/bin/sh" } do
        argv[#argv + 1] = a
    end
    return { command = util.shell_join(argv) }
end

-- nil while the held container runs, else why it is gone.
function Driver:hold_alive()
    local cid = self.hold_container
    if cid == nil then return nil end
    local r = self.c:call("GET", "/containers/" .. cid .. "/json")
    if type(r) == "table" and type(r.State) == "table" and
        r.State.Running == false then
        return "the held container stopped"
    end
end

function Driver:destroy()
    if self.c == nil then return end
    local ids = {}
    for id in pairs(self.containers) do ids[#ids + 1] = id end
    table.sort(ids)
    for _, id in ipairs(ids) do
        local ok, r, err = pcall(self.remove_container, self, id)
        if not ok or not r then
            self.log:warn("cannot remove container " .. short(id) ..
                          ": " .. tostring(ok and err or r))
        end
    end
    if self.hold_image then
        pcall(self.c.image_remove, self.c, self.hold_image)
        self.hold_image = nil
    end
    if self.volume then
        local ok, r, err = pcall(self.c.volume_remove, self.c, self.volume)
        if not ok or not r then
            self.log:warn("cannot remove volume " .. self.volume .. ": " ..
                          tostring(ok and err or r))
        else
            state.current():del("volumes", self.volume)
            self.volume = nil
        end
    end
end

return M
