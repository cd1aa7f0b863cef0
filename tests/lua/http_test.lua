-- http_test.lua - djinn.http (runtime/l_http.c) against a real HTTP server:
-- python3's http.server on a Unix socket and on a TCP port of 127.0.0.1
-- (started here, stopped by its PID). Methods, headers, string and
-- streaming request bodies, the streaming response mode, error statuses,
-- timeouts, cancellation, unreachable hosts, errors raised by callbacks.
local t = ...
local http = require "djinn.http"
local json = require "djinn.json"
local proc = require "djinn.proc"

local SERVER = [=[
import json, os, socket, socketserver, sys, time
from http.server import BaseHTTPRequestHandler

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def address_string(self): return "test"
    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                n = int(self.rfile.readline().strip(), 16)
                if n == 0:
                    self.rfile.readline()
                    return out, True
                out += self.rfile.read(n)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n), False
    def reply(self, code, data, extra=()):
        self.send_response(code)
        for k, v in extra: self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD": self.wfile.write(data)
    def any(self):
        p = self.path
        if p.startswith("/echo"):
            b, chunked = self.body()
            self.reply(200, json.dumps({"method": self.command, "path": p,
                "body": b.decode("latin-1"), "chunked": chunked,
                "headers": {k.lower(): v for k, v in self.headers.items()}}).encode(),
                [("Content-Type", "application/json"), ("X-Twice", "a"), ("X-Twice", "b")])
        elif p == "/missing":
            self.reply(404, b'{"message":"no such thing"}', [("Content-Type", "application/json")])
        elif p == "/stream":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            for part in (b"one\n", b"two\n", b"three\n"):
                self.wfile.write(part); self.wfile.flush(); time.sleep(0.3)
            self.close_connection = True
        elif p == "/slow":
            time.sleep(5)
            self.reply(200, b"late")
        elif p == "/big":
            self.reply(200, b"x" * 100000)
        elif p == "/endless":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                while True: self.wfile.write(b"y" * 65536)
            except OSError: pass
            self.close_connection = True
        else:
            self.reply(500, b"unknown path")
    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = any

class U(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    def handle_error(self, *a): pass  # aborted requests are expected
class T(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    def handle_error(self, *a): pass

import threading
u = U(sys.argv[1], H)
tcp = T(("127.0.0.1", 0), H)
threading.Thread(target=u.serve_forever, daemon=True).start()
threading.Thread(target=tcp.serve_forever, daemon=True).start()
print("READY %d" % tcp.server_address[1], flush=True)
sys.stdin.read()
]=]

local dir = t:tmpdir()
local sock = dir .. "/http.sock"
local server = assert(proc.spawn{ argv = { "python3", "-c", SERVER, sock },
                                  stdin = "pipe", stdout = "pipe",
                                  stderr = "inherit" })
local line = ""
local deadline = proc.now() + 20
while not line:find("\n") and proc.now() < deadline do
    local data = server:read(1)
    if data then line = line .. data end
end
local port = line:match("READY (%d+)")
t:ok(port ~= nil, "test server started (unix socket and tcp port " ..
     tostring(port) .. ")")
local U = "unix://" .. sock
local T = "tcp://127.0.0.1:" .. tostring(port)

-- GET over the Unix socket
local r, err, code = http.request{ host = U, path = "/echo?a=1" }
t:is(r and r.status, 200, "GET over a Unix socket: " .. tostring(err))
local e = r and json.decode(r.body) or {}
t:is({ e.method, e.path, e.body }, { "GET", "/echo?a=1", "" },
     "method, path and empty body arrive")
t:is(r and r.headers["content-type"], "application/json",
     "response headers, lower-case names")
t:is(r and r.headers["x-twice"], "a, b", "repeated headers joined")
t:is(e.headers and e.headers.expect, nil, "no Expect: 100-continue")

-- POST with a string body and headers over TCP
r, err = http.request{ host = T, method = "POST", path = "/echo",
                       headers = { ["Content-Type"] = "application/json",
                                   ["X-Registry-Auth"] = "e30=" },
                       body = '{"k":"v"}' }
e = r and json.decode(r.body) or {}
t:is({ e.method, e.body, e.headers and e.headers["x-registry-auth"],
       e.headers and e.headers["content-type"] },
     { "POST", '{"k":"v"}', "e30=", "application/json" },
     "POST over tcp:// with body and headers: " .. tostring(err))
r = http.request{ host = "http://127.0.0.1:" .. port, method = "POST",
                  path = "/echo" }
e = r and json.decode(r.body) or {}
t:is({ e.method, e.headers and e.headers["content-length"] },
     { "POST", "0" }, "POST without a body sends Content-Length: 0")

-- PUT / DELETE / HEAD
r = http.request{ host = U, method = "PUT", path = "/echo", body = "tar" }
e = r and json.decode(r.body) or {}
t:is({ e.method, e.body }, { "PUT", "tar" }, "PUT with a body")
r = http.request{ host = U, method = "DELETE", path = "/echo?force=1" }
e = r and json.decode(r.body) or {}
t:is(e.method, "DELETE", "DELETE")
r = http.request{ host = U, method = "HEAD", path = "/echo" }
t:is({ r and r.status, r and r.body }, { 200, "" }, "HEAD: status, no body")

-- a streaming request body (a reader), chunked and with a known size
local parts = { "alpha-", "beta-", "gamma" }
local i = 0
r, err = http.request{ host = U, method = "POST", path = "/echo",
    body = function() i = i + 1; return parts[i] end }
e = r and json.decode(r.body) or {}
t:is({ e.body, e.chunked }, { "alpha-beta-gamma", true },
     "reader body sent chunked: " .. tostring(err))
i = 0
r = http.request{ host = U, method = "PUT", path = "/echo", body_size = 16,
    body = function() i = i + 1; return parts[i] end }
e = r and json.decode(r.body) or {}
t:is({ e.method, e.body, e.chunked }, { "PUT", "alpha-beta-gamma", false },
     "reader body with body_size sent with Content-Length")

-- error statuses are responses, with the body
r = http.request{ host = U, path = "/missing" }
t:is({ r and r.status, r and r.body }, { 404, '{"message":"no such thing"}' },
     "404 is a response carrying the engine-style message")

-- the streaming mode: chunks arrive while the response is still open
local chunks, times = {}, {}
r, err = http.request{ host = U, path = "/stream", timeout = 20,
    on_data = function(d) chunks[#chunks + 1] = d; times[#times + 1] = proc.now() end }
t:is(r and r.status, 200, "streaming response: " .. tostring(err))
t:is(table.concat(chunks), "one\ntwo\nthree\n", "streamed bytes complete")
t:ok(#chunks >= 3, "delivered in pieces as they arrived (" .. #chunks ..
     " calls)")
t:is(r and r.body, "", "streamed body is not kept")
local got404 = {}
r = http.request{ host = U, path = "/missing",
    on_data = function(d) got404[#got404 + 1] = d end }
t:is({ r and r.status, r and r.body, #got404 },
     { 404, '{"message":"no such thing"}', 0 },
     "streaming mode: an error body is kept, not streamed")

-- timeout and cancel
r, err, code = http.request{ host = U, path = "/slow", timeout = 0.5 }
t:is({ r, code }, { nil, "timeout" }, "timeout gives nil, msg, \"timeout\"")
t:like(tostring(err), "^http: GET unix://.- /slow: timeout", "timeout message")
local polls = 0
r, err, code = http.request{ host = U, path = "/slow", timeout = 0,
    cancel = function() polls = polls + 1; return polls >= 3 and "enough" end }
t:is({ r, code }, { nil, "cancelled" }, "cancel stops a request")
t:like(tostring(err), "cancelled %(enough%)", "cancel reason in the message")
t:checkerr("needs a cancel function", http.request,
           { host = U, path = "/slow", timeout = 0 })

-- max_body
r, err, code = http.request{ host = U, path = "/big", max_body = 1000 }
t:is({ r, code }, { nil, "too_large" }, "max_body enforced")
r = http.request{ host = U, path = "/big" }
t:is(r and #r.body, 100000, "a 100 kB body read whole")
-- max_body with on_data bounds what is handed over: an endless body is
-- cut off there (without the bound this request would run to its timeout)
local got = 0
r, err, code = http.request{ host = U, path = "/endless", timeout = 60,
    max_body = 1000000, on_data = function(c) got = got + #c end }
t:is({ r, code }, { nil, "too_large" }, "streaming max_body: an endless body is aborted")
t:like(tostring(err), "^http: GET unix://.- /endless: the response body is larger than 1000000 bytes$",
       "streaming max_body: the message names the limit")
t:ok(got > 0 and got <= 1000000, "streaming max_body: at most max_body bytes handed over (" .. got .. ")")
got = 0
r = http.request{ host = U, path = "/big", max_body = 100000,
                  on_data = function(c) got = got + #c end }
t:ok(r and r.status == 200 and got == 100000, "streaming max_body: a body of exactly max_body passes")
r, err, code = http.request{ host = U, path = "/big", max_body = 99999, on_data = function() end }
t:is(code, "too_large", "streaming max_body: one byte over is refused")
got = 0
r = http.request{ host = U, path = "/stream", on_data = function(c) got = got + #c end }
t:ok(r and got == 14, "streaming without max_body: no limit by default")
t:checkerr("max_body must be an integer >= 0", http.request, { host = U, path = "/big", max_body = -1 })

-- base64_decode (for Docker's X-Docker-Container-Path-Stat)
t:is(http.base64_decode("eyJzaXplIjo1fQ=="), '{"size":5}', "base64_decode with padding")
t:is(http.base64_decode("Zm9v"), "foo", "base64_decode without padding")
t:is(http.base64_decode(""), "", "base64_decode of nothing")
t:is({ http.base64_decode("abc") },
     { nil, "http.base64_decode: 3 characters: not a multiple of 4 (padded base64 expected)" },
     "base64_decode: unpadded input refused")
t:is({ http.base64_decode("ab!=") }, { nil, "http.base64_decode: not valid base64" },
     "base64_decode: a character outside the alphabet refused")

-- unreachable hosts
r, err, code = http.request{ host = "unix://" .. dir .. "/nope.sock",
                             path = "/_ping" }
t:is({ r, code }, { nil, "connect" }, "missing socket: code connect")
t:like(tostring(err), "No such file or directory", "missing socket: cause")
r, err, code = http.request{ host = "tcp://127.0.0.1:1", path = "/" }
t:is({ r, code }, { nil, "connect" }, "refused TCP port: code connect")
t:like(tostring(err), "Connection refused", "refused TCP port: cause")
r, err = http.request{ host = "ftp://x", path = "/" }
t:like(tostring(err), "unsupported host ftp://x", "unsupported scheme")

-- misuse raises; callback errors propagate
t:checkerr("path must start with /", http.request, { host = U, path = "x" })
t:checkerr("host", http.request, { path = "/" })
t:checkerr("boom", http.request, { host = U, path = "/stream",
    on_data = function() error("boom") end })
t:checkerr("reader exploded", http.request, { host = U, method = "POST",
    path = "/echo", body = function() error("reader exploded") end })
r = http.request{ host = U, path = "/echo" }
t:is(r and r.status, 200, "the server still answers after aborted requests")

-- escape
t:is(http.escape("a b/c?d=e&f"), "a%20b%2Fc%3Fd%3De%26f", "escape")
t:is(http.escape('{"label":["x=y"]}'),
     "%7B%22label%22%3A%5B%22x%3Dy%22%5D%7D", "escape JSON filters")


-- djinn.transport.docker's pure helpers (the engine parts run in tests/e2e/docker.sh)
local docker = require "djinn.transport.docker"
t:is({ docker.parse_image("busybox") }, { "busybox", "latest" }, "parse_image: default tag")
t:is({ docker.parse_image("127.0.0.1:5000/a/b") }, { "127.0.0.1:5000/a/b", "latest" },
     "parse_image: registry port is not a tag")
t:is({ docker.parse_image("127.0.0.1:5000/a/b:1.2") }, { "127.0.0.1:5000/a/b", "1.2" },
     "parse_image: tag after a registry port")
t:is({ docker.parse_image("x/y@sha256:abc") }, { "x/y", "sha256:abc" }, "parse_image: digest")
local frames = string.pack(">B xxx s4", 1, "out-1\n") .. string.pack(">B xxx s4", 2, "err\n") ..
    string.pack(">B xxx s4", 1, "out-2\n")
-- Feed frames cut into pieces of `size` bytes; the payload pieces of one
-- stream in a row are joined (a frame may come in pieces, as it arrives).
local function demux_all(data, size)
    local got, dm = {}, docker.demux()
    local function emit(d, s)
        if got[#got] and got[#got][1] == s then
            got[#got][2] = got[#got][2] .. d
        else
            got[#got + 1] = { s, d }
        end
    end
    for k = 1, #data, size do dm(data:sub(k, k + size - 1), emit) end
    local out = {}
    for _, g in ipairs(got) do out[#out + 1] = g[1] .. ":" .. g[2] end
    return out
end
for _, size in ipairs{ 1, 2, 3, 5, 7, 8, 9, 13, #frames } do
    t:is(demux_all(frames, size),
         { "stdout:out-1\n", "stderr:err\n", "stdout:out-2\n" },
         "demux: frames fed in pieces of " .. size .. " bytes")
end
t:is(demux_all(string.pack(">B xxx s4", 1, "") .. string.pack(">B xxx s4", 2, "e"), 3),
     { "stderr:e" }, "demux: an empty frame gives nothing")
-- A guard that is not a timing (issue 13): what the decoder allocates
-- grows with the bytes fed, whatever the read size. 4 MiB of 100-byte
-- frames fed in 64 KiB pieces: the old decoder joined each piece to what
-- was pending and re-sliced the rest after every frame (~700 frames a
-- piece: ~20 MiB of copies per 64 KiB), quadratic in the read size.
do
    local frame = string.pack(">B xxx s4", 1, string.rep("x", 99) .. "\n")
    local big = string.rep(frame, 4 * 1024 * 1024 // #frame)
    local pieces = {}
    for k = 1, #big, 65536 do pieces[#pieces + 1] = big:sub(k, k + 65535) end
    local seen, dm = 0, docker.demux()
    local function emit(d) seen = seen + #d end
    collectgarbage("collect")
    collectgarbage("stop")
    local before = collectgarbage("count")
    for _, p in ipairs(pieces) do dm(p, emit) end
    local kib = collectgarbage("count") - before
    collectgarbage("restart")
    t:is(seen, (#big // #frame) * 100, "demux: every payload byte of 4 MiB in 64 KiB pieces")
    t:ok(kib < 3 * #big / 1024, string.format("demux allocates %.0f KiB for %.0f KiB " ..
         "fed in 64 KiB pieces (linear: under 3x)", kib, #big / 1024))
end
t:is(docker.engine_message{ status = 404, body = '{"message":"no such image: x"}' },
     "no such image: x", "engine_message: the engine's own text")
t:is(docker.engine_message{ status = 502, body = "" }, "HTTP 502", "engine_message: empty body")
local c, cerr, ccode = docker.connect{ host = "unix://" .. dir .. "/none.sock" }
t:ok(c == nil and ccode == "connect" and
     cerr:find("cannot reach the Docker engine at unix://", 1, true),
     "connect: unreachable engine: " .. tostring(cerr))
c, cerr = docker.connect{ host = U }
t:ok(c == nil and cerr:find("does not answer like a Docker engine", 1, true),
     "connect: a non-Docker HTTP server is recognised: " .. tostring(cerr))

server:close_stdin()
t:ok(server:terminate(5) ~= nil, "test server stopped")
