-- djinn.sshjob: what the QEMU and SSH drivers share (djinn-spec.md §3.2,
-- §1.9): connecting with retries and host-key pinning, the build
-- environment, objects over SFTP, and running one job over SSH.
--
--   sshjob.connect(o) -> conn | nil, cause
--     o = { host =, port =, user = "root", password =, identity =,
--           fingerprint = nil (pin: refuse any other host key),
--           attempt = 2 (seconds per attempt: TCP + banner + kex + auth),
--           deadline = proc.now() value to give up at,
--           ctx = the pipeline context (polled between attempts),
--           alive = function() -> nil | cause (e.g. "qemu exited: ..."),
--           label = "127.0.0.1:2222" (for messages) }
--     Retries every 100 ms (a refused or reset connection fails fast)
--     until the deadline. The first session's host key fingerprint is
--     recorded in conn.fingerprint and pinned for every later connection
--     of the same build (conn:reconnect()).
--   conn:setup_env(env, log) -> true | nil, cause
--     env = { {key=, value=}, ... }. Env requests are tried once with a
--     probe (`true`); the names the server refuses (dropbear refuses all;
--     OpenSSH refuses names outside AcceptEnv) are passed inside every job
--     script instead, as `export K='v'` lines placed BEFORE `set -ex`, so
--     values are never echoed. Those names must be shell identifiers
--     ([A-Za-z_][A-Za-z0-9_]*); another name is an error naming it.
--   conn:place_objects(objects, log)  -- SFTP put, mode 0700, as Djinn
--   conn:execute(job, store, ctx, log [, poll]) -> status, cause, code
--     Uploads the script to <login dir>/<job>.sh (spaces and characters
--     outside [A-Za-z0-9._-] become "-"), mode 0755, runs `./<job>.sh`
--     with the accepted env requests, streams output live to
--     log:output(), polls ctx (and poll(), which may return a cause to
--     stop the job, e.g. the VM died) every 100 ms; cancellation closes
--     the channel. A non-zero exit fails the job. Then the artifacts are
--     collected (SFTP glob + get, "*" in DST = basename of the match) and
--     the script is removed.
--   conn:close()
local ssh = require "djinn.ssh"
local proc = require "djinn.proc"
local pipeline = require "djinn.pipeline"

local M = {}
local Conn = {}
Conn.__index = Conn
M._Conn = Conn -- for tests

local function shell_quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

function M.script_name(job_name)
    local n = job_name:gsub(" ", "-"):gsub("[^%w%._-]", "-")
    return n .. ".sh"
end

local function try_connect(o, fingerprint)
    return ssh.connect{
        host = o.host, port = o.port, user = o.user or "root",
        password = o.password, identity = o.identity,
        timeout = o.attempt or 2, fingerprint = fingerprint,
        methods = o.methods,
    }
end

function M.connect(o)
    local last = "no attempt"
    local conn = setmetatable({ o = o, label = o.label or
        (o.host .. ":" .. o.port), accepted = {}, exports = "" }, Conn)
    while true do
        local reason = o.ctx and o.ctx:cancelled()
        if reason then
            return nil, o.ctx:cause() or reason, reason
        end
        if o.alive then
            local dead = o.alive()
            if dead then
                return nil, dead
            end
        end
        local s, err = try_connect(o, o.fingerprint)
        if s then
            conn.session = s
            conn.fingerprint = s:fingerprint()
            return conn
        end
        last = tostring(err)
        -- A pinned key that does not match will not start to match.
        if last:find("host key mismatch", 1, true) then
            return nil, last
        end
        if proc.now() >= o.deadline then
            return nil, string.format("Timed out trying to connect to " ..
                "%s... (last attempt: %s)", conn.label, last)
        end
        proc.sleep(0.1)
    end
end

-- A new session to the same machine, refusing any other host key.
function Conn:reconnect()
    if self.session then
        self.session:close()
        self.session = nil
    end
    local s, err = try_connect(self.o, self.fingerprint)
    if s == nil then
        return nil, err
    end
    self.session = s
    return s
end

function Conn:close()
    if self.session then
        self.session:close()
        self.session = nil
    end
end

function Conn:setup_env(env, log)
    self.accepted, self.exports = {}, ""
    if #env == 0 then
        return true
    end
    local req = {}
    for _, kv in ipairs(env) do req[kv.key] = kv.value end
    local st, info = self.session:exec("true", { env = req, timeout = 60 })
    if st == nil then
        return nil, "cannot probe the SSH server's env support: " ..
            tostring(info)
    end
    local rejected = {}
    for _, k in ipairs(info.env_rejected or {}) do rejected[k] = true end
    local lines, names = {}, {}
    for _, kv in ipairs(env) do
        if rejected[kv.key] then
            if not kv.key:match("^[%a_][%w_]*$") then
                return nil, string.format("env: %q: the SSH server " ..
                    "refused the env request and the name is not a " ..
                    "shell variable name, so it cannot be exported in the " ..
                    "job script (allowed: letters, digits and _, not " ..
                    "starting with a digit)", kv.key)
            end
            lines[#lines + 1] = "export " .. kv.key .. "=" ..
                shell_quote(kv.value) .. "\n"
            names[#names + 1] = kv.key
        else
            self.accepted[kv.key] = kv.value
        end
    end
    self.exports = table.concat(lines)
    if #names > 0 then
        log:line("The SSH server refused env requests for " ..
                 table.concat(names, ", ") ..
                 ": passing them inside the job scripts")
    end
    return true
end

function Conn:place_objects(objects, log)
    pipeline.place_objects(objects, log, function(obj)
        local fs = require "djinn.fs"
        local st = fs.stat(obj.path)
        if st and st.type ~= "file" then
            return nil, string.format("%s: not a regular file (objects " ..
                "placed over SFTP are files)", obj.src)
        end
        return self.session:put(obj.path, obj.dst, tonumber("700", 8))
    end)
end

-- The job script with the exports spliced in before `set -ex`.
function Conn:script(job)
    if self.exports == "" then
        return job.script
    end
    local head = "#!/bin/sh\nexec 2>&1\n"
    if job.script:sub(1, #head) == head then
        return head .. self.exports .. job.script:sub(#head + 1)
    end
    return "#!/bin/sh\n" .. self.exports .. job.script:gsub("^#![^\n]*\n", "")
end

function Conn:execute(job, store, ctx, log, poll)
    local name = M.script_name(job.name)
    local s = self.session
    if s == nil then
        return "failed", "the SSH connection is closed"
    end
    local script = self:script(job)
    local ok, err = s:put_data(script, name, tonumber("755", 8))
    if not ok then
        -- The connection may have dropped (a job restarted sshd, say):
        -- reconnect once, to the same host key only.
        s, err = self:reconnect()
        if s then
            ok, err = s:put_data(script, name, tonumber("755", 8))
        end
        if not ok then
            return "failed", "cannot upload the job script: " .. tostring(err)
        end
    end
    local stop_cause
    local st, info, code = s:exec("./" .. name, {
        env = self.accepted,
        on_output = function(data) log:output(data) end,
        cancel = function()
            local reason = ctx:cancelled()
            if reason then return reason end
            if poll then
                stop_cause = poll()
                return stop_cause
            end
        end,
    })
    if st == nil then
        local reason = ctx:cancelled()
        if reason then
            return reason, ctx:cause() or reason, nil
        end
        if code == "signal" then
            s:exec("rm -f ./" .. name, { timeout = 30 })
            return "failed", tostring(info)
        end
        return "failed", tostring(stop_cause or info)
    end
    local status, cause = "passed", nil
    if st ~= 0 then
        status, cause = "failed", "exit status " .. tostring(st)
    end
    pipeline.collect_artifacts(job, log, store,
        function(src) return s:glob(src) end,
        function(path, host) return s:get(path, host) end)
    s:exec("rm -f ./" .. name, { timeout = 30 })
    return status, cause, st
end

return M
