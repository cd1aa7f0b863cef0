-- djinn.queue: the build queue on Redis (issue 16), shared by `djinn-lua
-- submit`, `worker`, `status`, `logs`, `cancel` and `workers`.
--
-- KEYS (one Redis; the design, the guarantees and the facts it rests on
-- are in docs/queue.md):
--   djinn:seq           build number counter (INCR)
--   djinn:q:<queue>     a stream per driver queue (os, docker, ssh,
--                       qemu-x86_64), consumer group "workers"; one entry
--                       per queued build, deleted when it closes
--   djinn:b:<id>        hash: status, attempt (the fencing token), worker,
--                       cancel, error, exit, manifest, file, queue, env,
--                       objects (a tar), secrets (a JSON list of K=V
--                       sealed with the queue key, djinn.crypto: never in
--                       clear), image (SHA256:SIZE:URL, a qemu
--                       build's pinned image), artifacts (the attempt whose
--                       set is the build's), submitted, started, finished
--   djinn:art:<id>:<n>  string: attempt n's artifacts as a tar (EX 7 days)
--   djinn:log:<id>      stream: {a = attempt, e = one `run --json` event
--                       line} entries; {a, restart = why} when a build is
--                       re-run; one closing {a, end = status, x = exit}
--   djinn:ev            stream of start and finish events (MAXLEN ~)
--   djinn:workers       hash: consumer -> JSON {name, host, pid, slots,
--                       running, drivers, seen}; for display only
--
-- DELIVERY: at-least-once execution, exactly-once completion. A running
-- build is leased: its queue entry's idle time in the group's pending
-- list, reset by the worker's renew. Another worker takes over an entry
-- idle longer than the lease (XAUTOCLAIM) and starts the build again with
-- attempt + 1. Every state change (start, renew, finish, cancel) is a
-- Redis Function that checks, in the same atomic step, that the caller
-- owns the entry and that its attempt is the current one: a worker that
-- lost its lease can neither renew (its VM is killed) nor finish (its
-- result is discarded). Functions persist across a Redis restart (unlike
-- SCRIPT LOAD), so a finish never meets NOSCRIPT.
--
-- LIBRARY (Lua): M.parse_url(url) -> {path | host, port, user, password,
-- db} | nil, why; M.redact(url); M.open(url [, timeout]) -> q | nil, why
-- (connects, authenticates, loads the functions); q:submit(m, text,
-- opts) -> id; q:build(id) -> hash | nil; q:cancel(id) -> result;
-- q:log_range(id, after, count, block) -> entries; q:workers();
-- M.queue_of(driver) -> queue name; M.render(entry, writer) prints one
-- log entry as `run` would have. The worker is djinn.worker.
local redis = require "djinn.redis"
local json = require "djinn.json"

local M = {}

M.GROUP = "workers"
M.MAX_ATTEMPTS = 3
M.LOG_MAXLEN = 200000
M.EXPIRE = 7 * 86400 -- a closed build's keys live this long
M.TERMINAL = { passed = true, passed_with_failures = true, failed = true,
               killed = true, timed_out = true }
-- run's exit codes by status (docs/cli.md)
M.EXIT = { passed = 0, passed_with_failures = 0, failed = 1, killed = 130,
           timed_out = 4 }

-- The server side. KEYS and ARGV per function are in the comments; every
-- terminal transition goes through close(), which writes the status, the
-- log's end entry and the finish event, and acks and deletes the queue
-- entry, all in one step.
M.FUNCTIONS = [=[
#!lua name=djinn
local function now() return redis.call('TIME')[1] end
local function owner(q, entry)
  local p = redis.call('XPENDING', q, 'workers', entry, entry, 1)
  return p[1] and p[1][2]
end
local function done(q, entry)
  redis.call('XACK', q, 'workers', entry)
  redis.call('XDEL', q, entry)
end
-- KEYS b, log, ev
local function close(k, id, status, attempt, err, exit, worker)
  redis.call('HSET', k[1], 'status', status, 'error', err or '',
             'exit', exit, 'finished', now())
  redis.call('XADD', k[2], 'MAXLEN', '~', ARGV_LOGMAX, '*', 'a', attempt,
             'end', status, 'x', exit, 'error', err or '')
  redis.call('XADD', k[3], 'MAXLEN', '~', 100000, '*', 'type', 'finish',
             'build', id, 'status', status, 'attempt', attempt,
             'worker', worker)
  for _, key in ipairs({k[1], k[2]}) do
    redis.call('EXPIRE', key, ARGV_EXPIRE)
  end
end
-- djinn_submit KEYS q, b, ev  ARGV id, field, value, ...
redis.register_function('djinn_submit', function(k, a)
  redis.pcall('XGROUP', 'CREATE', k[1], 'workers', '0', 'MKSTREAM')
  local fields = {}
  for i = 2, #a do fields[#fields + 1] = a[i] end
  redis.call('HSET', k[2], 'status', 'queued', 'attempt', 0,
             'submitted', now(), unpack(fields))
  local entry = redis.call('XADD', k[1], '*', 'build', a[1])
  redis.call('HSET', k[2], 'entry', entry)
  redis.call('XADD', k[3], 'MAXLEN', '~', 100000, '*', 'type', 'submit',
             'build', a[1])
  return entry
end)
-- djinn_start KEYS q, b, ev, log  ARGV entry, me, id, max attempts,
-- worker name -> {attempt, 'ok'} | {0, why}
redis.register_function('djinn_start', function(k, a)
  local bk = {k[2], k[4], k[3]}
  if owner(k[1], a[1]) ~= a[2] then return {0, 'not-owner'} end
  local st = redis.call('HGET', k[2], 'status')
  if st ~= 'queued' and st ~= 'running' then
    done(k[1], a[1]); return {0, st or 'gone'}
  end
  local n = tonumber(redis.call('HGET', k[2], 'attempt') or '0')
  if redis.call('HGET', k[2], 'cancel') == '1' then
    close(bk, a[3], 'killed', n, 'cancelled while its worker was lost',
          130, a[5])
    done(k[1], a[1]); return {0, 'killed'}
  end
  n = redis.call('HINCRBY', k[2], 'attempt', 1)
  if n > tonumber(a[4]) then
    close(bk, a[3], 'failed', n - 1, 'worker lost ' .. (n - 1) ..
          ' times', 3, a[5])
    done(k[1], a[1]); return {0, 'lost'}
  end
  if n > 1 then
    redis.call('XADD', k[4], 'MAXLEN', '~', ARGV_LOGMAX, '*', 'a', n,
               'restart', 'previous worker lost')
  end
  redis.call('HSET', k[2], 'status', 'running', 'worker', a[5],
             'consumer', a[2], 'started', now())
  redis.call('XADD', k[3], 'MAXLEN', '~', 100000, '*', 'type', 'start',
             'build', a[3], 'attempt', n, 'worker', a[5])
  return {n, 'ok'}
end)
-- djinn_renew KEYS q, b  ARGV entry, me, attempt
-- -> -1 lease lost (kill the build) | 1 cancel requested | 0 ok
redis.register_function('djinn_renew', function(k, a)
  if owner(k[1], a[1]) ~= a[2] or
     redis.call('HGET', k[2], 'attempt') ~= a[3] then return -1 end
  redis.call('XCLAIM', k[1], 'workers', a[2], 0, a[1], 'JUSTID')
  return redis.call('HGET', k[2], 'cancel') == '1' and 1 or 0
end)
-- djinn_finish KEYS q, b, ev, log  ARGV entry, me, id, attempt, status,
-- exit, error, worker name, 'fenced' | 'unfenced' (the tests' negative
-- control, which skips the check), '1' when this attempt stored
-- artifacts  -> 1 recorded | 0 rejected (lease lost)
redis.register_function('djinn_finish', function(k, a)
  if a[9] ~= 'unfenced' and (owner(k[1], a[1]) ~= a[2] or
     redis.call('HGET', k[2], 'attempt') ~= a[4] or
     redis.call('HGET', k[2], 'status') ~= 'running') then return 0 end
  if a[10] == '1' then redis.call('HSET', k[2], 'artifacts', a[4]) end
  close({k[2], k[4], k[3]}, a[3], a[5], a[4], a[7], a[6], a[8])
  done(k[1], a[1])
  return 1
end)
-- djinn_cancel KEYS q, b, ev, log  ARGV id
-- queued -> killed now; running -> flagged (its worker stops it at the
-- next renew, or the next taker closes it); else the status
redis.register_function('djinn_cancel', function(k, a)
  local st = redis.call('HGET', k[2], 'status')
  if st == 'queued' then
    local entry = redis.call('HGET', k[2], 'entry')
    redis.call('HSET', k[2], 'cancel', '1')
    close({k[2], k[4], k[3]}, a[1], 'killed', 0, 'cancelled', 130, '-')
    if entry then done(k[1], entry) end
    return 'killed'
  end
  if st == 'running' then
    redis.call('HSET', k[2], 'cancel', '1'); return 'requested'
  end
  return st or 'unknown'
end)
]=]

-- Two constants are substituted into the library text.
local function library()
    return (M.FUNCTIONS:gsub("ARGV_LOGMAX", tostring(M.LOG_MAXLEN))
                       :gsub("ARGV_EXPIRE", tostring(M.EXPIRE)))
end

-- redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], unix:///PATH[?db=N]
-- (or unix:PATH): -> spec | nil, why
function M.parse_url(url)
    if type(url) ~= "string" or url == "" then
        return nil, "no Redis URL (--redis URL, $DJINN_REDIS, or redis " ..
            "in driver.conf's queue block)"
    end
    local path = url:match("^unix://(/[^?]*)") or
        url:match("^unix:(/[^?]*)")
    if path then
        local db = url:match("%?db=(%d+)$")
        if url:find("?", 1, true) and db == nil then
            return nil, url .. ": the only query allowed is ?db=N"
        end
        return { path = path, db = tonumber(db) }
    end
    local rest = url:match("^redis://(.*)$")
    if rest == nil then
        return nil, M.redact(url) .. ": not a Redis URL (allowed: " ..
            "redis://[:PASSWORD@]HOST[:PORT][/DB], unix:///PATH)"
    end
    local spec = {}
    local cred, hostpart = rest:match("^(.*)@([^@]*)$")
    if cred then
        local user, pass = cred:match("^([^:]*):(.*)$")
        if user == nil then user, pass = nil, cred end
        spec.user = user ~= "" and user or nil
        spec.password = pass
        rest = hostpart
    end
    local hostport, db = rest:match("^([^/]*)/?(%d*)$")
    if hostport == nil then
        return nil, M.redact(url) .. ": the path must be a database " ..
            "number (redis://HOST:PORT/DB)"
    end
    local host, port = hostport:match("^%[(.+)%]:?(%d*)$")
    if host == nil then host, port = hostport:match("^([^:]*):?(%d*)$") end
    if host == nil or host == "" then
        return nil, M.redact(url) .. ": no host"
    end
    port = port ~= "" and tonumber(port) or 6379
    if port < 1 or port > 65535 then
        return nil, M.redact(url) .. ": port out of range (1-65535)"
    end
    spec.host, spec.port, spec.db = host, port, tonumber(db)
    return spec
end

-- The URL without its password.
function M.redact(url)
    return (tostring(url):gsub("^(redis://)[^@/]*@", "%1***@"))
end

-- What a build's sealed secrets are bound to (the AEAD's associated
-- data): its manifest, so a sealed value moved to another build does
-- not open.
function M.secrets_aad(manifest_text)
    return "djinn-secrets-v1\0" .. manifest_text
end

function M.queue_of(driver)
    if type(driver) == "table" then
        if driver.type == "qemu" then
            return "qemu-" .. (driver.arch or "x86_64")
        end
        return driver.type
    end
    if driver == "qemu" then return "qemu-x86_64" end
    return driver
end

local Q = {}
Q.__index = Q

-- -> q | nil, why. opts: timeout (seconds, default 5).
function M.open(url, opts)
    opts = opts or {}
    local spec, why = M.parse_url(url)
    if spec == nil then return nil, why end
    local where = spec.path or (spec.host .. ":" .. spec.port)
    local conn, err = redis.connect{ path = spec.path, host = spec.host,
                                     port = spec.port,
                                     timeout = opts.timeout or 5 }
    if conn == nil then return nil, err end
    local ok
    if spec.password then
        if spec.user then
            ok, err = conn:call("AUTH", spec.user, spec.password)
        else
            ok, err = conn:call("AUTH", spec.password)
        end
        if ok == nil then
            conn:close()
            return nil, "redis: " .. where .. ": AUTH refused: " ..
                tostring(err)
        end
    end
    if spec.db then
        ok, err = conn:call("SELECT", spec.db)
        if ok == nil then
            conn:close()
            return nil, "redis: " .. where .. ": " .. tostring(err)
        end
    end
    ok, err = conn:call("FUNCTION", "LOAD", "REPLACE", library())
    if ok == nil then
        conn:close()
        return nil, "redis: " .. where .. ": cannot load the queue's " ..
            "functions (Redis 7 or later is needed): " .. tostring(err)
    end
    return setmetatable({ conn = conn, url = M.redact(url), where = where,
                          timeout = opts.timeout or 5 }, Q)
end

-- conn:call with a message that says where: -> value | nil, why, kind
function Q:call(...)
    local v, err, kind = self.conn:call(...)
    if v == nil and err then
        return nil, err:find("^redis:") and err or ("redis: " .. err), kind
    end
    return v
end

function Q:close() self.conn:close() end

-- A hash reply (flat array) as a table.
local function hash(arr)
    local t = {}
    for i = 1, #arr - 1, 2 do t[arr[i]] = arr[i + 1] end
    return t
end
M.hash = hash

local function bkey(id) return "djinn:b:" .. id end
local function lkey(id) return "djinn:log:" .. id end

-- opts: text (the manifest), file (its name), queue, env (list of K=V),
-- objects (a tar of them, or ""), secrets (sealed: djinn.crypto), image.
-- -> id | nil, why
function Q:submit(opts)
    local id, err = self:call("INCR", "djinn:seq")
    if id == nil then return nil, err end
    local fields = { "manifest", opts.text, "file", opts.file or "",
                     "queue", opts.queue,
                     "env", json.encode(json.array(opts.env or {})),
                     "objects", opts.objects or "",
                     "secrets", opts.secrets or "",
                     "image", opts.image or "" }
    local q = "djinn:q:" .. opts.queue
    local entry
    entry, err = self:call("FCALL", "djinn_submit", 3, q, bkey(id),
                           "djinn:ev", id, table.unpack(fields))
    if entry == nil then return nil, err end
    return id
end

-- -> the build's hash (empty table: no such build) | nil, why
function Q:build(id)
    local v, err = self:call("HGETALL", bkey(id))
    if v == nil then return nil, err end
    return hash(v)
end

-- -> "killed" | "requested" | a terminal status | "unknown" | nil, why
function Q:cancel(id)
    local b, err = self:build(id)
    if b == nil then return nil, err end
    if b.queue == nil then return "unknown" end
    return self:call("FCALL", "djinn_cancel", 4, "djinn:q:" .. b.queue,
                     bkey(id), "djinn:ev", lkey(id), id)
end

-- Log entries after id `after` ("0" = from the start): a list of
-- {id = entry id, f = fields}; block (seconds) waits for one.
function Q:log_range(id, after, count, block)
    local v, err
    if block then
        v, err = self:call("XREAD", "COUNT", count or 1000, "BLOCK",
                           math.floor(block * 1000), "STREAMS", lkey(id),
                           after)
        if v == nil then return nil, err end
        if v == redis.null then return {} end
        v = v[1][2]
    else
        v, err = self:call("XRANGE", lkey(id),
                           after == "0" and "-" or ("(" .. after), "+",
                           "COUNT", count or 1000)
        if v == nil then return nil, err end
    end
    local out = {}
    for _, e in ipairs(v) do out[#out + 1] = { id = e[1], f = hash(e[2]) } end
    return out
end

-- The workers seen in the last `within` seconds: a list of tables.
function Q:workers(within)
    local v, err = self:call("HGETALL", "djinn:workers")
    if v == nil then return nil, err end
    local t = self:call("TIME")
    local now = t and tonumber(t[1]) or os.time()
    local out = {}
    for name, text in pairs(hash(v)) do
        local w = json.decode(text)
        if type(w) == "table" then
            w.consumer = name
            w.age = now - (tonumber(w.seen) or 0)
            if within == nil or w.age <= within then out[#out + 1] = w end
        end
    end
    table.sort(out, function(a, b) return a.consumer < b.consumer end)
    return out
end

-- Replay one log entry into a djinn.log writer's sink as `run` printed
-- it: a `run --json` event line, job output (its bytes), a restart
-- notice, or the end.
-- json_out: print the event lines themselves (with "attempt" added).
function M.render(entry, out, json_out, state)
    local f = entry.f
    local attempt = tonumber(f.a) or 0
    if f.o then
        state.sink{ event = "output", data = f.o }
    elseif f.e then
        -- (with --json, logs prints event lines itself, with their entry)
        local ev = json.decode(f.e)
        if type(ev) ~= "table" then return end
        state.sink(ev)
    elseif f.restart then
        if json_out then
            out:write(json.encode{ event = "restart", attempt = attempt,
                                   reason = f.restart }, "\n")
        else
            state.line(string.format("restarted: %s (attempt %d)",
                                     f.restart, attempt))
        end
    end
end

return M
