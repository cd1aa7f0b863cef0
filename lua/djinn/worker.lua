-- djinn.worker: `djinn-lua worker`, the queue's build runner (issue 16).
--
-- One process, one loop, no threads. Each build runs in a child process,
-- a runner, running `djinn-lua run --json` in its own process group with
-- PDEATHSIG, so the loop never blocks on a VM or a job, and a worker that
-- dies (kill -9, OOM) takes its builds' processes, VMs and containers down
-- with it. A runner is a fork of the worker (proc.spawn{fn =}) that calls
-- djinn.cli's main with run's arguments, as an exec of djinn-lua would,
-- without starting djinn-lua and compiling the Lua library again (the
-- worker loads the pipeline and its queues' drivers once), and it runs its
-- slot's builds one after another (runner_main), so that a build costs no
-- fork. What a runner inherits of the worker (its Redis connection, the
-- other builds' handles) is closed at the fork and inert in it. The worker
-- runs the generational collector and its runners exit without closing
-- their Lua state, so that neither side writes to the pages they share
-- more than it must (each such write is a copy-on-write fault). A worker
-- runs the Lua library it started with: restart it to take a new one.
--
-- The loop, every turn:
--   1. each build: forward what its runner printed (`run --json` event
--      lines, and job output as frames of bytes: take_data) to the
--      build's log stream; when the runner says the build is done (or
--      has exited), finish the build
--      (djinn_finish: recorded only if this worker still owns it);
--   2. every lease/6: renew each build (djinn_renew). -1: the lease was
--      lost (another worker runs it now): kill its runner at once, record
--      nothing. 1: cancel requested: SIGTERM its runner (run exits 130 as
--      killed), SIGKILL after a grace;
--   3. a free slot: first, at most every 0.5 s, take over a build whose
--      lease ran out (XAUTOCLAIM, idle > lease); else read the next new
--      entry (XREADGROUP COUNT 1: no prefetch, a build is taken only by
--      a worker with a free slot).
-- Redis unreachable: reconnect every 0.5 s; after 0.8 x lease without
-- it, kill every runner (other workers will re-run those builds; fencing
-- keeps this worker's late results out). SIGTERM: take nothing more,
-- finish what runs, exit 0; a second SIGTERM (or SIGINT) cancels the
-- running builds (they close as killed), takes nothing more, and exits 130.
--
-- M.main(opts) -> exit status. opts: url, name, slots, drivers (a list of
-- queue names), lease (s), driver_config, registry, cache_max (bytes:
-- the image cache's budget, given to each run), key (the queue key that
-- opens builds' secrets, or nil), out (a line writer), unfenced (the
-- tests' negative control).
local queue = require "djinn.queue"
local proc = require "djinn.proc"
local fs = require "djinn.fs"
local json = require "djinn.json"
local redis = require "djinn.redis"

local M = {}

-- djinn.cli's main, set by M.main (djinn.cli requires this module).
local cli_main

M.GRACE = 10      -- seconds between SIGTERM and SIGKILL of a cancelled build
M.STDERR_TAIL = 2000
M.MAX_ARTIFACTS = 64 * 1024 * 1024 -- bytes of artifacts sent back per build
M.RUNNER_BUILDS = 100 -- builds a runner runs before a fresh one replaces it

-- The line a runner prints after a build's own events: {"runner_done":CODE}
-- (every line of run --json is an event object, {"event": first), after
-- a newline (an empty line is no event: the worker drops it).
local RUNNER_DONE = '{"runner_done":'
-- What ps shows of a runner between builds (its spawn title too).
local IDLE_TITLE = "djinn-lua worker: idle runner"

local W = {}
W.__index = W

function W:say(fmt, ...)
    self.out:write(os.date("%H:%M:%S "), string.format(fmt, ...), "\n")
    if self.out.flush then self.out:flush() end
end

-- Redis calls through the current connection; an I/O failure drops it
-- (reconnect() makes a new one).
function W:call(...)
    if self.q == nil then return nil, "redis: not connected", "io" end
    local v, err, kind = self.q:call(...)
    if v == nil and kind == "io" then
        self:say("lost Redis (%s); reconnecting", err)
        self.q:close()
        self.q = nil
        self.lost_at = self.lost_at or proc.now()
    end
    return v, err, kind
end

function W:reconnect()
    if self.q then return true end
    local now = proc.now()
    if self.next_connect and now < self.next_connect then return false end
    self.next_connect = now + 0.5
    local q, err = queue.open(self.url, { timeout = self.timeout })
    if q == nil then
        if not self.said_down then
            self:say("cannot reach Redis: %s", err)
            self.said_down = true
        end
        return false
    end
    if self.lost_at then self:say("reconnected to Redis") end
    self.q = q
    self.said_down, self.lost_at = false, nil
    for _, name in ipairs(self.queues) do
        q:call("XGROUP", "CREATE", "djinn:q:" .. name, queue.GROUP, "0",
               "MKSTREAM")
    end
    return true
end

local function keys(b)
    local id = b.id
    return "djinn:q:" .. b.queue, "djinn:b:" .. id, "djinn:ev",
        "djinn:log:" .. id
end

-- One complete line of the runner's stdout: its result, its done line,
-- or an event for the build's log.
local function take_line(b, line)
    if line:sub(1, 21) == '{"event":"build_end",' then
        local ev = json.decode(line)
        if type(ev) == "table" then b.result = ev end
    end
    if line:sub(1, #RUNNER_DONE) == RUNNER_DONE then
        b.done = math.tointeger(tonumber(line:match("(%d+)}"))) or 1
    elseif line ~= "\n" then -- (the runner's newline before its done)
        b.pending[#b.pending + 1] = line
    end
end

-- The frame being read (b.frame), as a log entry: its bytes so far, its
-- job and build.
local function end_frame(b)
    local f = b.frame
    b.pending[#b.pending + 1] = {
        o = #f.raw == 1 and f.raw[1] or table.concat(f.raw),
        j = f.j, b = f.b }
    b.frame = nil
end

-- Send what the runner wrote to the build's log: event lines as `e`,
-- output frames as `o` (the bytes), `j` (the job) and `b` (the run's own
-- build id, as its events carry it). final: an unfinished last line or
-- frame too.
function W:forward(b, final)
    if final then
        if b.frame then end_frame(b) end -- (a runner that died in one)
        local rest = table.concat(b.head)
        b.head = {}
        if rest ~= "" then take_line(b, rest .. "\n") end
    end
    local pending, sent = b.pending, 0
    local key = "djinn:log:" .. b.id
    while sent < #pending and self.q do
        local e, ok = pending[sent + 1], nil
        if type(e) == "table" then
            ok = self:call("XADD", key, "MAXLEN", "~", queue.LOG_MAXLEN, "*",
                           "a", b.attempt, "o", e.o, "j", e.j or "",
                           "b", e.b or "")
        else
            ok = self:call("XADD", key, "MAXLEN", "~", queue.LOG_MAXLEN, "*",
                           "a", b.attempt, "e", e)
        end
        if ok == nil then break end
        sent = sent + 1
    end
    if sent > 0 then
        local n = #pending
        table.move(pending, sent + 1, n, 1)
        for i = n - sent + 1, n do pending[i] = nil end
    end
end

-- The runner's stdout, read on from where the last read stopped: event
-- lines, and output frames (djinn.log's output_frames: a header line,
-- then that many bytes as they are, which no line of the job's output
-- can imitate). Linear in the bytes: an unfinished line's pieces wait in
-- b.head and a frame's in b.frame.raw, each joined once.
local FRAME = '{"event":"output_raw",'
local function take_data(b, data)
    local pos, len = 1, #data
    while pos <= len do
        local f = b.frame
        if f then
            local stop = math.min(len, pos + f.need - 1)
            f.raw[#f.raw + 1] = (pos == 1 and stop == len) and data or
                data:sub(pos, stop)
            f.need = f.need - (stop - pos + 1)
            pos = stop + 1
            if f.need == 0 then end_frame(b) end
        else
            local nl = data:find("\n", pos, true)
            if nl == nil then
                b.head[#b.head + 1] = data:sub(pos)
                return
            end
            local line = data:sub(pos, nl)
            pos = nl + 1
            if #b.head > 0 then
                b.head[#b.head + 1] = line
                line = table.concat(b.head)
                b.head = {}
            end
            local h = line:sub(1, #FRAME) == FRAME and json.decode(line)
            local n = type(h) == "table" and math.tointeger(h.bytes)
            if n and n > 0 then
                b.frame = { need = n, raw = {},
                            j = type(h.job) == "string" and h.job or nil,
                            b = type(h.build) == "string" and h.build or nil }
            elseif not h then
                take_line(b, line)
            end
        end
    end
end

-- One read of the child's output (waiting up to timeout): stdout to
-- take_data (joining every read onto a backlog once took the worker
-- 9.7 s for a build's 16 MB), stderr kept as its tail.
-- -> whether data came
local function absorb(b, timeout)
    local data, which = b.child:read(timeout)
    if data == nil then
        if which == "eof" then b.eof = true end
        return false
    end
    if which == "stderr" then
        b.err = (b.err .. data):sub(-M.STDERR_TAIL)
    else
        take_data(b, data)
    end
    return true
end

-- Read what the child has written, sending its lines after each read:
-- what waits is never more than one read and an unfinished line.
function W:drain(b)
    while b.child and absorb(b, 0) do
        if #b.pending > 0 then self:forward(b) end
    end
    self:forward(b)
end

-- The build's closing status, exit code and error from what its run
-- printed and how it ended.
local function outcome(b, how, code)
    if b.fail then return "failed", 3, b.fail end
    local r = b.result
    local exit = how == "exit" and code or 128 + (code or 9)
    if r and r.status == "invalid" then
        return "failed", r.exit_code or exit, r.error or "invalid manifest"
    elseif r and queue.TERMINAL[r.status] then
        return r.status, r.exit_code or exit, r.error
    end
    local err = b.err:gsub("%s+$", ""):match("([^\n]*)$")
    if b.mask then err = b.mask:mask(err) end
    if exit == 130 or b.cancelled then
        return "killed", 130, "cancelled"
    end
    return "failed", exit ~= 0 and exit or 3, string.format(
        "djinn-lua run ended with %s %s before its result%s", how,
        tostring(code), err ~= "" and (": " .. err) or "")
end

-- The artifacts the run collected, as one tar under
-- djinn:art:<id>:<attempt> (the finish records which attempt's set is the
-- build's). Over M.MAX_ARTIFACTS: a line in the log, nothing stored.
-- -> "1" stored | "" none
function W:store_artifacts(b)
    local root = b.dir and b.dir .. "/artifacts"
    local entries, total, over = {}, 0, nil
    local function walk(rel)
        local path = root .. (rel ~= "" and ("/" .. rel) or "")
        for _, n in ipairs(fs.listdir(path) or {}) do
            local r = rel ~= "" and (rel .. "/" .. n) or n
            local st = fs.lstat(path .. "/" .. n)
            if st and st.type == "dir" then
                entries[#entries + 1] = { name = r, type = "dir" }
                walk(r)
            elseif st and st.type == "file" then
                total = total + st.size
                if total > M.MAX_ARTIFACTS then over = over or r end
                entries[#entries + 1] = { name = r,
                                          path = path .. "/" .. n }
            end
        end
    end
    if root == nil or not fs.exists(root) then return "" end
    walk("")
    local files = 0
    for _, e in ipairs(entries) do if e.path then files = files + 1 end end
    if files == 0 then return "" end
    local function note(text)
        b.pending[#b.pending + 1] = json.encode{ event = "output",
            data = text .. "\n", job = json.null } .. "\n"
        self:forward(b)
    end
    if over then
        note(string.format("artifact error: the artifacts are over the " ..
            "queue's limit of %d MiB (at %s); none were sent back",
            M.MAX_ARTIFACTS >> 20, over))
        return ""
    end
    local data, err = require("djinn.tar").create(entries)
    if data == nil then
        note("artifact error: " .. tostring(err) .. "; none were sent back")
        return ""
    end
    local ok = self:call("SET", "djinn:art:" .. b.id .. ":" .. b.attempt,
                         data, "EX", queue.EXPIRE)
    return ok and "1" or ""
end

function W:finish(b, how, code)
    self:drain(b)
    self:forward(b, true)
    local status, exit, err = outcome(b, how, code)
    local arts = self:store_artifacts(b)
    local q, bk, ev, lk = keys(b)
    local r = self:call("FCALL", "djinn_finish", 4, q, bk, ev, lk, b.entry,
                        self.consumer, b.id, b.attempt, status, exit,
                        err or "", self.name,
                        self.unfenced and "unfenced" or "fenced", arts)
    if r == 1 then
        self:say("build %s %s (exit %d)", b.id, status, exit)
    elseif r == 0 then
        self:say("build %s: finish rejected: the lease was lost, another " ..
                 "worker runs it", b.id)
    else
        self:say("build %s: finish not recorded (Redis unreachable); " ..
                 "another worker will run it again", b.id)
    end
    self:cleanup(b)
end

function W:cleanup(b)
    local r = b.runner
    if r then
        b.runner = nil
        if b.done and not b.cancelled and not self.cancelling and
            r.builds < M.RUNNER_BUILDS then
            self.idle[#self.idle + 1] = r
        else
            self:retire(r)
        end
    end
    fs.rm_rf(b.dir)
    for i, x in ipairs(self.running) do
        if x == b then table.remove(self.running, i) break end
    end
end

function W:kill(b, why)
    if b.child then
        b.child:kill("KILL")
        b.child:wait(5)
        b.runner = nil
    end
    self:say("build %s: stopped (%s)", b.id, why)
    self:cleanup(b)
end

function W:renew_all()
    for _, b in ipairs({ table.unpack(self.running) }) do
        local q, bk = keys(b)
        local r = self:call("FCALL", "djinn_renew", 2, q, bk, b.entry,
                            self.consumer, b.attempt)
        if r == -1 and not self.unfenced then
            -- (unfenced, a test's negative control: the worker trusts
            -- no fencing, the lease's included, so its build finishes
            -- as a second completion whatever it sees first on waking)
            self:kill(b, "lease lost: another worker took it over")
        elseif r == 1 and not b.cancelled then
            b.cancelled = proc.now()
            self:say("build %s: cancel requested; stopping it", b.id)
            b.child:kill("TERM")
        end
    end
    self:call("HSET", "djinn:workers", self.consumer, json.encode{
        name = self.name, host = self.host, pid = proc.getpid(),
        slots = self.slots, running = #self.running,
        drivers = json.array(self.queues),
        seen = tonumber((self:call("TIME") or { os.time() })[1]),
        draining = self.draining or false })
end

-- A runner: a child of the worker (a fork of it, proc.spawn{fn =}) that
-- runs builds one after another, each as `djinn-lua run` would: it reads
-- a request line on stdin ({"id": ID, "args": [run's arguments]}), sets
-- DJINN_BUILD and its title (`djinn-lua run: build ID`), calls
-- djinn.cli's main and prints RUNNER_DONE with the exit code after the
-- run's own events. EOF on stdin: it exits. A fork for each build cost
-- more than the build (on this machine kind every page a fresh process
-- touches is a fault, ~12 ms a build: bench/queue.sh); a runner pays it
-- once for M.RUNNER_BUILDS builds. A signal the previous build did not
-- see is dropped before the next starts.
local function runner_main()
    proc.on_signals{ "INT", "TERM" }
    -- Job output goes to the worker as frames of bytes (see take_data).
    require("djinn.log").output_frames = true
    while true do
        local line, err, code = io.stdin:read("l")
        if line == nil then
            if code ~= 4 then return err and 3 or 0 end -- 4: EINTR
        else
            local req = json.decode(line)
            if type(req) ~= "table" or type(req.args) ~= "table" then
                io.stderr:write("djinn-lua: the worker sent a runner a " ..
                                "request it cannot read\n")
                return 3
            end
            while proc.pending_signal() do end
            proc.setenv("DJINN_BUILD", tostring(req.id))
            proc.settitle("djinn-lua run: build " .. tostring(req.id))
            local ok, rc = xpcall(cli_main, debug.traceback, req.args)
            if not ok then
                io.stderr:write("djinn-lua: ", tostring(rc), "\n")
            elseif type(rc) ~= "number" then
                rc = (rc == false) and 1 or 0
            end
            -- On a line of its own even after a last line without one.
            io.stdout:write("\n", RUNNER_DONE,
                            ok and math.tointeger(rc) or 1, "}\n")
            io.stdout:flush()
            -- A run that raised may have left its state half made: this
            -- runner runs no other build.
            if not ok then return 1 end
            proc.settitle(IDLE_TITLE)
        end
    end
end

-- An idle runner, or a new one. -> { child =, builds = } | nil, why
function W:runner()
    while #self.idle > 0 do
        local r = table.remove(self.idle)
        if r.child:wait(0) == nil then return r end
    end
    -- A young collection (see M.main). close = false: a runner's builds
    -- clean up after themselves (their drivers' teardown, then
    -- state:finish); what they start dies with the runner (pdeathsig).
    collectgarbage("step")
    local child, err = proc.spawn{ fn = runner_main,
                                   collect = false, close = false,
                                   title = IDLE_TITLE,
                                   cwd = self.tmp, stdin = "pipe",
                                   stdout = "pipe", stderr = "pipe",
                                   setpgid = true, pdeathsig = true }
    if child == nil then return nil, err end
    return { child = child, builds = 0 }
end

-- A runner that is not to run another build: EOF on its stdin ends it.
function W:retire(r)
    r.child:close_stdin()
    if r.child:wait(2) == nil then
        r.child:kill("KILL")
        r.child:wait(5)
    end
end

function W:start(qname, entry)
    local id = entry[2] and queue.hash(entry[2]).build
    if id == nil then
        -- Not a build entry (or one deleted meanwhile): drop it.
        self:call("XACK", "djinn:q:" .. qname, queue.GROUP, entry[1])
        return
    end
    local b = { id = id, queue = qname, entry = entry[1],
                err = "", pending = {}, head = {} }
    local q, bk, ev, lk = keys(b)
    local r = self:call("FCALL", "djinn_start", 4, q, bk, ev, lk, b.entry,
                        self.consumer, id, self.max_attempts, self.name)
    if type(r) ~= "table" then return end
    local n = tonumber(r[1])
    if n == 0 then
        if r[2] == "lost" then
            self:say("build %s: closed as failed: its worker was lost " ..
                     "%d times", id, self.max_attempts)
        elseif r[2] == "killed" then
            self:say("build %s: closed as killed: cancelled while its " ..
                     "worker was lost", id)
        end
        return
    end
    b.attempt = n
    local h = self.q and self.q:build(id)
    if h == nil or h.manifest == nil then
        self:say("build %s: its record is gone", id)
        return
    end
    local derr
    b.dir, derr = fs.mkdtemp(string.format("djinn-build-%d-%s-",
                                           proc.getpid(), id), self.tmp)
    self.running[#self.running + 1] = b
    if b.dir == nil then
        b.fail = "the worker could not make the build's directory: " ..
            tostring(derr)
        self:finish(b, "exit", 3)
        return
    end
    local file = (h.file ~= "" and h.file:match("([^/]+)$")) or
        ".djinn.yml"
    fs.mkdir_p(b.dir .. "/objects", 448)
    fs.mkdir_p(b.dir .. "/manifest", 448)
    -- No fsync: a worker that crashes takes this directory's build with
    -- it (another worker re-runs it from Redis).
    local wok, werr = fs.writefile(b.dir .. "/manifest/" .. file, h.manifest,
                                   tonumber("644", 8), false)
    if not wok then
        b.fail = "the worker could not write the build's manifest: " ..
            tostring(werr)
        self:finish(b, "exit", 3)
        return
    end
    if h.objects and h.objects ~= "" then
        local ok, names, terr = pcall(require("djinn.tar").extract,
                                      h.objects, b.dir .. "/objects")
        if not ok or names == nil then
            terr = ok and terr or names
            b.fail = "the build's objects could not be unpacked: " ..
                tostring(terr)
            self:finish(b, "exit", 3)
            return
        end
    end
    local args = { "run", "--json", "--objects", b.dir .. "/objects",
                   "--artifacts", b.dir .. "/artifacts" }
    if self.driver_config then
        args[#args + 1] = "--driver-config=" .. self.driver_config
    end
    if self.registry then args[#args + 1] = "--registry=" .. self.registry end
    if h.image and h.image ~= "" then
        args[#args + 1] = "--image-pin=" .. h.image
    end
    if self.cache_max then
        args[#args + 1] = "--image-cache-max=" .. self.cache_max
    end
    for _, kv in ipairs(json.decode(h.env or "[]") or {}) do
        args[#args + 1] = "--env=" .. kv
    end
    if h.secrets and h.secrets ~= "" then
        local list, why = self:open_secrets(h)
        if list == nil then
            b.fail = why
            self:finish(b, "exit", 3)
            return
        end
        local values = {}
        for i, kv in ipairs(list) do values[i] = kv:match("=(.*)$") end
        b.mask = require("djinn.mask").new(values)
        -- In memory only: run's arguments reach the runner through a
        -- pipe (its command line is its title), so the secrets never
        -- touch the disk.
        for _, kv in ipairs(list) do
            args[#args + 1] = "--secret=" .. kv
        end
    end
    args[#args + 1] = "--"
    args[#args + 1] = b.dir .. "/manifest/" .. file
    fs.mkdir_p(b.dir .. "/artifacts", 448)
    local r, err = self:runner()
    if r then
        local ok
        ok, err = r.child:write(json.encode{ id = id, args = args } .. "\n",
                                5)
        if not ok then
            r.child:kill("KILL")
            r.child:wait(5)
            r = nil
        end
    end
    if r == nil then
        b.fail = "the worker could not start djinn-lua run: " ..
            tostring(err)
        self:finish(b, "exit", 3)
        return
    end
    r.builds = r.builds + 1
    b.runner, b.child = r, r.child
    self:say("build %s: started (attempt %d, pid %d)", id, n, b.child:pid())
end

-- A build's secrets, opened with this worker's queue key.
-- -> { "K=V", ... } | nil, why (an infrastructure error)
function W:open_secrets(h)
    if not self.key then
        return nil, "the build has secrets and this worker has no queue " ..
            "key to open them (worker --queue-key FILE, $DJINN_QUEUE_KEY " ..
            "or queue { key_file } in driver.conf)"
    end
    local text, err = require("djinn.crypto").open(self.key, h.secrets,
        queue.secrets_aad(h.manifest or ""))
    if text == nil then
        return nil, "the build's secrets do not open with this worker's " ..
            "queue key (" .. err:gsub("^crypto%.open: ", "") .. ")"
    end
    local list = json.decode(text)
    if type(list) ~= "table" then
        return nil, "the build's secrets are not a list"
    end
    return list
end

-- A free slot: a build whose lease ran out first, then a new one.
function W:take(block)
    local now = proc.now()
    if now >= self.next_claim then
        self.next_claim = now + math.min(0.5, self.lease / 4)
        for _, name in ipairs(self.queues) do
            local v = self:call("XAUTOCLAIM", "djinn:q:" .. name,
                                queue.GROUP, self.consumer,
                                math.floor(self.lease * 1000),
                                self.cursor[name] or "0-0", "COUNT", 1)
            if type(v) == "table" then
                self.cursor[name] = v[1]
                for _, e in ipairs(v[2] or {}) do
                    if e ~= redis.null and #self.running < self.slots then
                        self:say("taking over build entry %s of %s " ..
                                 "(lease ran out)", e[1], name)
                        self:start(name, e)
                        return true
                    end
                end
            end
        end
    end
    -- New entries: each queue in turn without blocking, then one blocking
    -- read over all of them. COUNT 1 per stream: with several queues a
    -- blocking read can return one entry of each (rare); all are started.
    local n = #self.queues
    for i = 0, n - 1 do
        local name = self.queues[(self.turn + i) % n + 1]
        local v = self:call("XREADGROUP", "GROUP", queue.GROUP,
                            self.consumer, "COUNT", 1, "STREAMS",
                            "djinn:q:" .. name, ">")
        if type(v) == "table" then
            self.turn = (self.turn + i + 1) % n
            self:start(name, v[1][2][1])
            return true
        end
    end
    if block > 0 then
        local argv = { "XREADGROUP", "GROUP", queue.GROUP, self.consumer,
                       "COUNT", 1, "BLOCK", math.max(1, math.floor(block *
                       1000)), "STREAMS" }
        for _, name in ipairs(self.queues) do
            argv[#argv + 1] = "djinn:q:" .. name
        end
        for _ = 1, n do argv[#argv + 1] = ">" end
        local v = self:call(table.unpack(argv))
        if type(v) == "table" then
            for _, s in ipairs(v) do
                self:start(s[1]:sub(#"djinn:q:" + 1), s[2][1])
            end
            return true
        end
    end
    return false
end

-- Build directories of workers that died (kill -9 leaves them; their
-- runs and VMs died with them): djinn-build-<worker pid>-<id>-XXXXXX
-- whose worker is gone, or is no longer a djinn-lua process.
function W:remove_stale()
    for _, n in ipairs(fs.listdir(self.tmp) or {}) do
        local pid = n:match("^djinn%-build%-(%d+)%-%d+%-")
        if pid and tonumber(pid) ~= proc.getpid() then
            local cmd = fs.readfile("/proc/" .. pid .. "/cmdline", 4096)
            if cmd == nil or not cmd:find("djinn-lua", 1, true) then
                fs.rm_rf(self.tmp .. "/" .. n)
            end
        end
    end
end

function W:signals()
    local sig = proc.pending_signal()
    while sig do
        if sig == "INT" or self.draining then
            -- Cancelling takes nothing more either, not even into a
            -- slot a cancelled build leaves.
            self.draining = true
            if not self.cancelling then
                self.cancelling = true
                self:say("stopping: cancelling %d running build(s)",
                         #self.running)
                for _, b in ipairs(self.running) do
                    b.cancelled = proc.now()
                    if b.child then b.child:kill("TERM") end
                end
            end
        else
            self.draining = true
            self:say("SIGTERM: taking no more builds; finishing %d " ..
                     "(SIGTERM again cancels them)", #self.running)
        end
        sig = proc.pending_signal()
    end
end

function M.main(opts)
    local self = setmetatable({
        url = opts.url, name = opts.name, slots = opts.slots or 1,
        queues = opts.drivers, lease = opts.lease or 10,
        driver_config = opts.driver_config, registry = opts.registry,
        cache_max = opts.cache_max, key = opts.key,
        out = opts.out or io.stdout, unfenced = opts.unfenced,
        max_attempts = opts.max_attempts or queue.MAX_ATTEMPTS,
        running = {}, idle = {}, cursor = {}, turn = 0, next_claim = 0,
        timeout = math.max(1, (opts.lease or 10) / 3),
        tmp = os.getenv("TMPDIR") or "/tmp",
    }, W)
    -- What every build loads, loaded once: the builds run in forks of
    -- this process.
    cli_main = require("djinn.cli").main
    for _, m in ipairs{ "djinn", "djinn.pipeline", "djinn.state",
                        "djinn.yaml" } do
        require(m)
    end
    for _, q in ipairs(self.queues) do
        pcall(require, "djinn.drivers." .. q)
    end
    -- Generational: what is loaded above becomes old and stays unwritten.
    -- Each runner is a fork that shares this heap's pages until one side
    -- writes to them, and every such write is a copy-on-write fault (on
    -- this machine kind a TLB flush through the hypervisor). A young
    -- collection touches only young objects; the incremental collector
    -- marked every object each cycle, and the full collection before each
    -- fork (which a young one replaces, spawn's collect = false) did too.
    collectgarbage("generational")
    -- Freed memory stays with malloc up to 4 MiB (and so in each runner,
    -- forked from here): at glibc's default of 128 KiB, giving it back
    -- after each relayed entry of a loud build cost a TLB flush each
    -- time; the worker's CPU for a 16 MiB log went from 0.22 to 0.04 s.
    proc.malloc_keep(4 << 20)
    self.host = (fs.readfile("/proc/sys/kernel/hostname", 256) or
                 "localhost"):gsub("%s+$", "")
    self.consumer = string.format("%s:%d:%d", self.name, proc.getpid(),
                                  os.time())
    proc.on_signals{ "INT", "TERM" }
    self:remove_stale()
    if not self:reconnect() then
        return 3
    end
    self:say("worker %s: %d slot(s), queues %s, lease %gs, Redis %s",
             self.consumer, self.slots, table.concat(self.queues, " "),
             self.lease, self.q.url)
    local renew_every = math.max(0.1, self.lease / 6)
    local next_renew = 0
    while true do
        self:signals()
        for _, b in ipairs({ table.unpack(self.running) }) do
            self:drain(b)
            local how, code
            if b.done then
                how, code = "exit", b.done
            else
                how, code = b.child:wait(0)
            end
            if how then
                self:finish(b, how, code)
            elseif b.cancelled and proc.now() - b.cancelled > M.GRACE then
                b.child:kill("KILL")
            end
        end
        if self.q == nil then
            self:reconnect()
            if self.q == nil and self.lost_at and
                proc.now() - self.lost_at > 0.8 * self.lease then
                for _, b in ipairs({ table.unpack(self.running) }) do
                    self:kill(b, "Redis unreachable for 0.8 x the lease")
                end
                self.lost_at = proc.now()
            end
        end
        if self.q and proc.now() >= next_renew then
            next_renew = proc.now() + renew_every
            self:renew_all()
        end
        if (self.draining or self.cancelling) and #self.running == 0 then
            break
        end
        local took = false
        if self.q and not self.draining and #self.running < self.slots then
            -- Block for new work only as long as the running builds'
            -- output may wait.
            took = self:take(#self.running > 0 and 0.02 or 0.2)
        end
        if not took and (#self.running >= self.slots or self.draining or
                         self.q == nil) then
            -- Wait on every child's output at once (a build that ends is
            -- seen at once, not at the next 20 ms tick), or just sleep.
            local children = {}
            for _, b in ipairs(self.running) do
                if b.child and not b.eof then
                    children[#children + 1] = b.child
                end
            end
            local _, why = proc.ready(children, 0.02)
            if why == "eof" then proc.sleep(0.02) end
        end
    end
    for _, r in ipairs(self.idle) do self:retire(r) end
    self.idle = {}
    if self.q then
        self:call("HDEL", "djinn:workers", self.consumer)
        -- Forget this consumer where it holds nothing: deleting one with
        -- pending entries would drop them (a build whose finish could not
        -- be recorded must stay claimable by the others).
        for _, name in ipairs(self.queues) do
            local p = self:call("XPENDING", "djinn:q:" .. name, queue.GROUP,
                                "-", "+", 1, self.consumer)
            if type(p) == "table" and #p == 0 then
                self:call("XGROUP", "DELCONSUMER", "djinn:q:" .. name,
                          queue.GROUP, self.consumer)
            end
        end
    end
    self:say("worker %s: stopped", self.consumer)
    return self.cancelling and 130 or 0
end

return M
