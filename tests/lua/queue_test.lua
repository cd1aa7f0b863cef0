-- queue_test.lua - the queue's parts without workers (issue 16):
-- djinn.redis against a real redis-server started here (Debian's, on a
-- Unix socket in a private directory, stopped by its pid): every reply
-- type, Redis errors and I/O errors told apart, a timeout, a server that
-- goes away (no SIGPIPE death, a closed connection after); djinn.queue's
-- URL parsing and redaction, and its Redis Functions driven directly:
-- the fencing (start, renew and finish by a non-owner or a stale attempt
-- are refused), cancel of a queued and a running build, the attempt bound.
-- The whole system with real workers is tests/e2e/queue.sh.
local t = ...
local proc = require "djinn.proc"
local redis = require "djinn.redis"
local queue = require "djinn.queue"
local fs = require "djinn.fs"

-- --- URLs ---------------------------------------------------------------
local function url(u)
    local s, why = queue.parse_url(u)
    return s, why
end
local s = url("unix:///run/r.sock")
t:ok(s and s.path == "/run/r.sock" and s.host == nil, "unix:///PATH")
s = url("unix:/run/r.sock?db=3")
t:ok(s and s.path == "/run/r.sock" and s.db == 3, "unix:PATH?db=N")
s = url("redis://h.example:6380/2")
t:ok(s and s.host == "h.example" and s.port == 6380 and s.db == 2,
     "redis://HOST:PORT/DB")
s = url("redis://:pw@127.0.0.1")
t:ok(s and s.password == "pw" and s.user == nil and s.port == 6379,
     "redis://:PASSWORD@HOST (default port)")
s = url("redis://alice:p@ss:w@[::1]:7000")
t:ok(s and s.user == "alice" and s.password == "p@ss:w" and
     s.host == "::1" and s.port == 7000, "USER:PASSWORD@[IPv6]:PORT")
local _, why = url("http://x")
t:like(why, "not a Redis URL %(allowed: redis://", "http: refused, says what is")
_, why = url("redis://:secret@h:99999")
t:ok(why and why:find("port out of range", 1, true) and
     not why:find("secret", 1, true), "a bad port; the password not shown")
_, why = url("unix:///x?user=a")
t:like(why, "only query allowed", "unix: an unknown query")
_, why = url(nil)
t:like(why, "DJINN_REDIS", "no URL: says where one comes from")
t:is(queue.redact("redis://u:pw@h:1/0"), "redis://***@h:1/0", "redact")
t:is(queue.redact("unix:///x"), "unix:///x", "redact: nothing to hide")
t:is(queue.queue_of{ type = "qemu" }, "qemu-x86_64", "queue of qemu")
t:is(queue.queue_of{ type = "qemu", arch = "aarch64" }, "qemu-aarch64",
     "queue of qemu, another arch")
t:is(queue.queue_of("os"), "os", "queue of os")

-- --- a private redis-server -------------------------------------------------
local dir = t:tmpdir()
local sock = dir .. "/r.sock"
local server = assert(proc.spawn{
    argv = { "redis-server", "--port", "0", "--unixsocket", sock,
             "--unixsocketperm", "700", "--dir", dir, "--save", "",
             "--appendonly", "no" },
    stdout = "null", stderr = "null", pdeathsig = true })
local conn
local deadline = proc.now() + 10
repeat
    conn = redis.connect{ path = sock, timeout = 2 }
    if conn == nil then proc.sleep(0.05) end
until conn or proc.now() > deadline
t:ok(conn ~= nil, "redis-server started, connected by Unix socket")

t:is(conn:call("PING"), "PONG", "a status reply is a string")
t:is(conn:call("SET", "k", 41), "OK", "a number argument")
t:is(conn:call("INCR", "k"), 42, "an integer reply is an integer")
t:is(math.type(conn:call("INCR", "k")), "integer", "... a Lua integer")
t:is(conn:call("GET", "k"), "43", "a bulk reply is a string")
t:ok(conn:call("GET", "none") == redis.null, "a nil reply is redis.null")
t:is(type(redis.null), "userdata", "redis.null is not a table")
conn:call("RPUSH", "l", "a", "b\0c")
local l = conn:call("LRANGE", "l", 0, -1)
t:ok(l[1] == "a" and l[2] == "b\0c", "an array; binary-safe values")
local v, err, kind = conn:call("NOSUCHCOMMAND")
t:ok(v == nil and err:find("unknown command", 1, true) and kind == "reply",
     "a Redis error: nil, its text, \"reply\"")
t:is(conn:call("PING"), "PONG", "... and the connection is still usable")
conn:call("XADD", "s", "1-1", "f", "v")
local x = conn:call("XRANGE", "s", "-", "+")
t:ok(x[1][1] == "1-1" and x[1][2][1] == "f" and x[1][2][2] == "v",
     "nested arrays (a stream entry)")
local empty = conn:call("XREAD", "COUNT", 1, "STREAMS", "nostream", "0")
t:ok(empty == redis.null, "a nil array is redis.null")
conn:timeout(0.2)
local t0 = proc.now()
v, err, kind = conn:call("BLPOP", "nolist", 5)
t:ok(v == nil and kind == "io" and err:find("timeout", 1, true) and
     proc.now() - t0 < 2, "a command past the timeout: nil, \"io\", " ..
     "within the timeout (" .. string.format("%.2f", proc.now() - t0) ..
     " s)")
v, err, kind = conn:call("PING")
t:ok(v == nil and err == "redis: connection closed" and kind == "io",
     "... the connection is closed after an I/O failure")
local c2 = assert(redis.connect{ path = sock })
local ok, e = pcall(c2.call, c2)
t:ok(not ok and tostring(e):find("a command", 1, true), "call() with no " ..
     "command raises")
ok, e = pcall(c2.call, c2, "SET", "k", {})
t:ok(not ok and tostring(e):find("a string or a number", 1, true),
     "a table argument raises")
local nc, nerr = redis.connect{ path = dir .. "/none.sock" }
t:ok(nc == nil and nerr:find("none.sock", 1, true),
     "connect to a missing socket: nil and where")
ok = pcall(redis.connect, { path = sock, host = "x" })
t:ok(not ok, "connect with both path and host raises")

-- --- the functions, driven directly ---------------------------------------
local q = assert(queue.open("unix://" .. sock))
local id = assert(q:submit{ text = "x", file = "a.yml", queue = "os",
                            env = { "A=1" } })
local b = q:build(id)
t:ok(b.status == "queued" and b.attempt == "0" and b.env == '["A=1"]',
     "submit: a queued build with its fields")
local function read(me)
    local r = q:call("XREADGROUP", "GROUP", "workers", me, "COUNT", 1,
                     "STREAMS", "djinn:q:os", ">")
    return r[1][2][1][1]
end
local entry = read("w1")
local K = { "djinn:q:os", "djinn:b:" .. id, "djinn:ev", "djinn:log:" .. id }
local function fcall(name, nkeys, ...)
    return q:call("FCALL", name, nkeys, ...)
end
t:is(fcall("djinn_start", 4, K[1], K[2], K[3], K[4], entry, "w2", id, 3,
           "w2")[2], "not-owner", "start by a non-owner: refused")
local r = fcall("djinn_start", 4, K[1], K[2], K[3], K[4], entry, "w1", id,
                3, "w1")
t:ok(r[1] == 1 and r[2] == "ok", "start by the owner: attempt 1")
t:is(fcall("djinn_renew", 2, K[1], K[2], entry, "w1", 1), 0, "renew: ok")
t:is(fcall("djinn_renew", 2, K[1], K[2], entry, "w2", 1), -1,
     "renew by another: lease lost")
t:is(fcall("djinn_renew", 2, K[1], K[2], entry, "w1", 7), -1,
     "renew of a stale attempt: lease lost")
-- w2 takes it over (as XAUTOCLAIM would), attempt 2.
q:call("XCLAIM", K[1], "workers", "w2", 0, entry)
r = fcall("djinn_start", 4, K[1], K[2], K[3], K[4], entry, "w2", id, 3, "w2")
t:is(r[1], 2, "takeover: attempt 2")
local log = q:log_range(id, "0", 10)
t:ok(log[1] and log[1].f.restart == "previous worker lost" and
     log[1].f.a == "2", "... the log says restarted, attempt 2")
t:is(fcall("djinn_finish", 4, K[1], K[2], K[3], K[4], entry, "w1", id, 1,
           "passed", 0, "", "w1"), 0, "finish by the old owner: rejected")
t:is(fcall("djinn_finish", 4, K[1], K[2], K[3], K[4], entry, "w1", id, 1,
           "passed", 0, "", "w1", "unfenced"), 1,
     "... the same, unfenced (the negative control): recorded")
-- A fresh build for the rest.
id = assert(q:submit{ text = "x", queue = "os" })
K = { "djinn:q:os", "djinn:b:" .. id, "djinn:ev", "djinn:log:" .. id }
entry = read("w1")
fcall("djinn_start", 4, K[1], K[2], K[3], K[4], entry, "w1", id, 3, "w1")
t:is(q:cancel(id), "requested", "cancel of a running build: requested")
t:is(fcall("djinn_renew", 2, K[1], K[2], entry, "w1", 1), 1,
     "... the next renewal says so")
t:is(fcall("djinn_finish", 4, K[1], K[2], K[3], K[4], entry, "w1", id, 1,
           "killed", 130, "cancelled", "w1"), 1, "finish killed: recorded")
t:is(fcall("djinn_finish", 4, K[1], K[2], K[3], K[4], entry, "w1", id, 1,
           "passed", 0, "", "w1"), 0, "a second finish: rejected")
b = q:build(id)
t:ok(b.status == "killed" and b.exit == "130", "status killed, exit 130")
t:is(q:call("XPENDING", "djinn:q:os", "workers")[1], 0,
     "nothing pending; the entry was acked")
t:is(q:cancel(id), "killed", "cancel of an ended build: its status")
t:is(q:cancel("999"), "unknown", "cancel of no build: unknown")
-- The attempt bound: a build started max times closes as failed.
id = assert(q:submit{ text = "x", queue = "os" })
K = { "djinn:q:os", "djinn:b:" .. id, "djinn:ev", "djinn:log:" .. id }
entry = read("w1")
for _ = 1, 3 do
    fcall("djinn_start", 4, K[1], K[2], K[3], K[4], entry, "w1", id, 3, "w1")
end
r = fcall("djinn_start", 4, K[1], K[2], K[3], K[4], entry, "w1", id, 3, "w1")
b = q:build(id)
t:ok(r[1] == 0 and r[2] == "lost" and b.status == "failed" and
     b.error == "worker lost 3 times", "a 4th start: failed, worker lost " ..
     "3 times")
-- Cancel of a queued build: killed at once, its entry gone.
id = assert(q:submit{ text = "x", queue = "docker" })
t:is(q:cancel(id), "killed", "cancel of a queued build: killed")
t:is(q:call("XLEN", "djinn:q:docker"), 0, "... its queue entry is gone")
t:ok(q:call("TTL", "djinn:b:" .. id) > 0, "... its record expires")

-- A server that goes away: an I/O error, not a SIGPIPE death.
server:kill("KILL")
server:wait(5)
v, err, kind = q:call("SET", "x", string.rep("y", 1 << 20))
t:ok(v == nil and kind == "io", "the server killed: nil, \"io\" (" ..
     tostring(err) .. "), and this process lives")
q:close()
fs.rm_rf(dir)
