-- djinn.transport.sshjob: what the QEMU and SSH drivers share
-- (docs/djinn-compat.md §3.2, §1.9): connecting with retries and
-- host-key pinning, the build environment, objects over SFTP, and running
-- one job over SSH.
--
--   sshjob.connect(o) -> conn | nil, cause
--     o = { host =, port =, user = "root", password =, identity =,
--           fingerprint = nil (pin: refuse any other host key),
--           attempt = 2 (seconds per attempt: TCP + banner + kex + auth),
--           banner_timeout = nil (seconds: TCP + the "SSH-" banner must
--             come within it, then `attempt` bounds kex + auth: a boot
--             wait that fails fast while the guest is not listening;
--             after 10 s of connections that opened but brought no
--             banner, each such attempt's limit grows by half, up to 5 s:
--             a loaded guest whose sshd needs longer than 0.3 s to
--             answer is not flooded with connections it never
--             finishes -- issue 11, seen with OpenSSH under TCG),
--           retry = 0.1 (seconds between attempts),
--           deadline = proc.now() value to give up at,
--           ctx = the pipeline context (polled between attempts),
--           alive = function() -> nil | cause (e.g. "qemu exited: ..."),
--           auth_final = false (true: a server that answers but refuses
--             every method ends the wait at once: nil, cause, "auth"),
--           label = "127.0.0.1:2222" (for messages) }
--     Retries every `retry` s (a refused or reset connection fails fast)
--     until the deadline. The first session's host key fingerprint is
--     recorded in conn.fingerprint and pinned for every later connection
--     of the same build (conn:reconnect()).
--   conn:setup_env(env, log) -> true | nil, cause
--     env = { {key=, value=}, ... }. Env requests are tried once with a
--     probe (session:env_probe: a channel that runs nothing); the names
--     the server refuses (dropbear refuses all;
--     OpenSSH refuses names outside AcceptEnv) are passed inside every job
--     script instead, as `export K='v'` lines placed BEFORE `set -ex`, so
--     values are never echoed. Those names must be shell identifiers
--     ([A-Za-z_][A-Za-z0-9_]*); another name is an error naming it.
--   conn:place_objects(objects, log) -> true | nil, cause
--     Files and directories (recursively), mode 0700 as Djinn, through
--     djinn.transport.sshxfer: over SFTP, or over exec channels when the server's
--     SFTP subsystem does not work (one line says which, once per build).
--     Any object error (a missing source, a failed transfer) makes it
--     return nil, cause after every object was tried: the build fails
--     (issue 11, 4.8: it used to carry on without the object).
--   conn:prepare(env, objects, log) -> true | nil, cause
--     setup_env, then place_objects: what a driver does after login
--   conn:transfers(log) -> the connection's djinn.transport.sshxfer object
--   conn:execute(job, store, ctx, log [, poll]) -> status, cause, code
--     Writes the script to <login dir>/<job>.sh (spaces and characters
--     outside [A-Za-z0-9._-] become "-"), mode 0755, and runs `./<job>.sh`
--     with the accepted env requests, in ONE exec: the script travels on
--     its stdin, `cat > ./<job>.sh && chmod 755 ./<job>.sh && exec
--     ./<job>.sh` (no SFTP start before the first job's first line; the
--     job's stdin is then at EOF, like Djinn's), streams output live to
--     log:output(), polls ctx (and poll(), which may return a cause to
--     stop the job, e.g. the VM died) every 100 ms; cancellation closes
--     the channel. A non-zero exit fails the job. Then the artifacts are
--     collected (glob + get through djinn.transport.sshxfer, SFTP or exec
--     channels; "*" in DST = basename of the match; files and
--     directories; get is bounded by the artifact size and count limits:
--     an oversized file is refused from its size, a growing one stopped at
--     the limit) and the script is removed.
--   conn:close()
local ssh = require "djinn.ssh"
local proc = require "djinn.proc"
local sshxfer = require "djinn.transport.sshxfer"
local pipeline = require "djinn.pipeline"
local trace = require "djinn.trace"

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
        methods = o.methods, banner_timeout = o.banner_limit or
            o.banner_timeout,
    }
end

function M.connect(o)
    local last = "no attempt"
    local t_start = proc.now()
    o.banner_limit = o.banner_timeout
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
        local t_try = proc.now()
        local s, err = try_connect(o, o.fingerprint)
        if s then
            if trace.on then
                local tm = s:timing()
                trace.mark("ssh: the login attempt began", t_try)
                if tm.banner then trace.mark("ssh: banner seen", tm.banner) end
                trace.mark("ssh: key exchange done", tm.kex)
                trace.mark("ssh: logged in", tm.auth)
            end
            conn.session = s
            conn.fingerprint = s:fingerprint()
            return conn
        end
        last = tostring(err)
        -- A pinned key that does not match will not start to match.
        if last:find("host key mismatch", 1, true) then
            return nil, last
        end
        if o.auth_final and last:find("authentication failed", 1, true) then
            return nil, last, "auth"
        end
        if proc.now() >= o.deadline then
            return nil, string.format("Timed out trying to connect to " ..
                "%s... (last attempt: %s)", conn.label, last)
        end
        if o.banner_limit and proc.now() - t_start > 10 and
            last:find("connected, but no banner", 1, true) then
            o.banner_limit = math.min(o.banner_limit * 1.5, 5)
        end
        proc.sleep(o.retry or 0.1)
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
    if self.xfer then self.xfer:rebind(s) end
    return s
end

-- A second connection to the same machine with other credentials (o's
-- user, identity, methods), the host key pinned: -> session | nil, cause.
-- The caller closes it. (qemu's lock_root proves the build's key with it.)
function Conn:try_login(o)
    local t = {}
    for k, v in pairs(self.o) do t[k] = v end
    for k, v in pairs(o) do t[k] = v end
    t.banner_timeout, t.banner_limit = nil, nil
    return try_connect(t, self.fingerprint)
end

-- The transfer object (djinn.transport.sshxfer), made on first use; its method is
-- said once per build (when the first object or artifact moves).
function Conn:transfers(log)
    if self.xfer == nil then
        self.xfer = sshxfer.new(self.session, { log = log, ctx = self.o.ctx })
    end
    local x = self.xfer
    x.log = log or x.log
    if not x.told then
        x.told = true
        if log then log:line(x:describe()) end
    end
    return x
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
    local refused, err = self.session:env_probe(req)
    if refused == nil then
        return nil, "cannot probe the SSH server's env support: " ..
            tostring(err)
    end
    local rejected = {}
    for _, k in ipairs(refused) do rejected[k] = true end
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
    local failed = {}
    local x
    for _, obj in ipairs(objects) do
        if obj.err then
            failed[#failed + 1] = obj.src
        elseif x == nil then
            x = self:transfers(log) -- says the method before the first
        end
    end
    pipeline.place_objects(objects, log, function(obj)
        local ok, err = x:put(obj.path, obj.dst, tonumber("700", 8))
        if not ok then failed[#failed + 1] = obj.src end
        return ok, err
    end)
    local why = pipeline.object_failure(failed, #objects)
    if why then return nil, why end
    return true
end

-- What a driver does once it is logged in, before the first job: env
-- (setup_env), then the objects (place_objects). -> true | nil, cause
function Conn:prepare(env, objects, log)
    local ok, err = self:setup_env(env, log)
    if not ok then
        return nil, err
    end
    trace.mark("ssh: env set up")
    if #objects > 0 then
        ok, err = self:place_objects(objects, log)
        log:line("")
        if not ok then
            return nil, err
        end
    end
    return true
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
    local path = shell_quote("./" .. name)
    local cmd = "cat > " .. path .. " && chmod 755 " .. path ..
        " && exec " .. path
    local stop_cause
    local first = true
    local opts = {
        env = self.accepted, stdin = self:script(job),
        on_output = function(data)
            if first then trace.mark("job: first output"); first = false end
            log:output(data)
        end,
        cancel = function()
            local reason = ctx:cancelled()
            if reason then return reason end
            if poll then
                stop_cause = poll()
                return stop_cause
            end
        end,
    }
    trace.mark("job: exec")
    local st, info, code = s:exec(cmd, opts)
    if st == nil and code == "unstarted" then
        -- The connection dropped before anything ran (a job restarted
        -- sshd, say): reconnect once, to the same host key only.
        local err
        s, err = self:reconnect()
        if s == nil then
            return "failed", "cannot run the job script: " .. tostring(info) ..
                "; reconnecting failed: " .. tostring(err)
        end
        st, info, code = s:exec(cmd, opts)
    end
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
    if job.artifacts and #job.artifacts > 0 then
        local x = self:transfers(log)
        pipeline.collect_artifacts(job, log, store,
            function(src) return x:glob(src) end,
            function(path, host, max, max_files)
                return x:get(path, host, max, max_files)
            end)
    end
    s:exec("rm -f ./" .. name, { timeout = 30 })
    return status, cause, st
end

return M
