-- djinn.transport.docker: a small Docker Engine API client (djinn.http for HTTP over
-- a Unix socket or TCP, djinn.json for the bodies, djinn.tar for the
-- archive API). Every call returns nil, msg[, code] on failure; msg carries
-- the engine's own message ("docker: manifest for ... not found: manifest
-- unknown") or the transport error ("docker: cannot reach the Docker
-- engine at unix:///var/run/docker.sock: ...", code "connect").
--
--   local c, err = docker.connect{ host = "unix:///var/run/docker.sock",
--       version = nil | "auto" | "1.41", timeout = 60, cancel = fn }
--     Asks GET /version (unversioned). version nil/""/"auto": the API
--     version is negotiated: the engine's ApiVersion, capped at
--     M.MAX_VERSION; an engine below M.MIN_VERSION is refused. A version
--     given is the newest the client uses: an older engine (not below
--     MIN_VERSION) gets its own ApiVersion, as the docker CLI negotiates
--     down; otherwise the engine's own message refuses a version it does
--     not speak. c.version, c.negotiated, c.engine (the /version table).
--   c:call(method, path, opts) -> decoded JSON body (or the raw body, or
--       true when empty), resp | nil, msg, code
--     opts = { query = { k = v } (values escaped; tables JSON-encoded),
--              json = table (request body), body = string | reader,
--              headers =, timeout =, cancel =, on_data =, raw = bool,
--              ok = { [304] = true } (extra statuses that are success) }
--     code is the HTTP status for engine errors, else the transport code.
--   c:ping()                                   -> true
--   c:pull(image, on_status, opts)             -> true   (on_status(msg)
--       gets each JSON progress message; an error inside the stream fails)
--   c:image_inspect(name)                      -> table
--   c:volume_create(name, labels)              -> name
--   c:volume_remove(name)                      -> true
--   c:volumes(labels)                          -> { {Name=, Labels=}... }
--   c:container_create(config)                 -> id
--   c:container_start(id) / c:container_stop(id, grace) / c:container_kill(id)
--   c:container_wait(id, opts)                 -> StatusCode
--   c:container_logs(id, { follow =, on_output = fn(data, "stdout"|
--       "stderr"), cancel =, timeout = })      -> true
--   c:container_remove(id)                     -> true (force, v=1; a
--       missing container is success)
--   c:containers(labels)                       -> list (all=1)
--   c:put_archive(id, path, tar_bytes)         -> true
--   c:get_archive(id, path, { max_body =, on_data =, cancel =, timeout = })
--       -> tar bytes; with on_data the archive is handed over in chunks
--       as it arrives (nothing kept) -> true. max_body: the most bytes
--       the archive may have (default 1 GiB in memory, none streaming);
--       past it the transfer is aborted: nil, msg, "too_large"
--   c:stat_path(id, path)                      -> stat table | false (no
--       such path): HEAD /archive's X-Docker-Container-Path-Stat header
--       (base64 JSON): { name =, size =, mode = (Go os.FileMode bits),
--       mtime =, linkTarget = }; {} when the engine sent no header
--   docker.is_regular(mode) -> true when a stat mode is a regular file
--   docker.parse_image(ref) -> repo, tag_or_digest ("latest" when none)
--   c:container_attach(id, { on_attached =, on_output =, cancel =,
--       timeout = })                           -> true (see below)
--   docker.demux() -> function(chunk, emit): the 8-byte-header frame
--       decoder of attached/log streams (emit(data, "stdout"|"stderr"));
--       a frame's payload may come in pieces, as it arrives
local http = require "djinn.http"
local json = require "djinn.json"
local util = require "djinn.util"

local M = {}

M.DEFAULT_HOST = "unix:///var/run/docker.sock"
M.MIN_VERSION = "1.30" -- wait?condition=, Mounts, Init
M.MAX_VERSION = "1.43"

local function vnum(v)
    local a, b = tostring(v):match("^v?(%d+)%.(%d+)$")
    if a == nil then return nil end
    return tonumber(a) * 1000 + tonumber(b)
end
M.version_number = vnum

function M.parse_image(ref)
    local name, digest = ref:match("^(.-)@(.+)$")
    if name then return name, digest end
    local last = ref:match("[^/]*$")
    local tag = last:match(":([^:]+)$")
    if tag then
        return ref:sub(1, #ref - #tag - 1), tag
    end
    return ref, "latest"
end

local function query_string(q)
    if not q then return "" end
    local keys = {}
    for k in pairs(q) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
        local v = q[k]
        if type(v) == "table" then v = json.encode(v) end
        if type(v) == "boolean" then v = v and "1" or "0" end
        parts[#parts + 1] = http.escape(k) .. "=" .. http.escape(tostring(v))
    end
    if #parts == 0 then return "" end
    return "?" .. table.concat(parts, "&")
end

-- The engine's own message from an error response.
local function engine_message(resp)
    local body = resp.body or ""
    local ok, v = pcall(json.decode, body)
    if ok and type(v) == "table" and type(v.message) == "string" then
        return v.message
    end
    body = body:gsub("%s+$", "")
    if body ~= "" then return body end
    return "HTTP " .. tostring(resp.status)
end
M.engine_message = engine_message

local Client = {}
Client.__index = Client

function M.connect(o)
    o = o or {}
    local host = o.host
    if host == nil or host == "" then host = M.DEFAULT_HOST end
    local c = setmetatable({ host = host, timeout = o.timeout or 60,
                             cancel = o.cancel }, Client)
    local resp, err, code = http.request{ host = host, path = "/version",
        timeout = math.min(c.timeout, 30), connect_timeout = 10,
        cancel = o.cancel }
    if resp == nil then
        if code == "cancelled" then return nil, err, code end
        return nil, string.format("docker: cannot reach the Docker engine " ..
            "at %s: %s (is dockerd running? the engine is set by host in " ..
            "the docker block of driver.conf)", host,
            (err:gsub("^http: %S+ %S+ %S+: ", ""))), code or "connect"
    end
    local ok, v = pcall(json.decode, resp.body)
    if resp.status ~= 200 or not ok or type(v) ~= "table" then
        return nil, string.format("docker: %s does not answer like a " ..
            "Docker engine (GET /version: HTTP %d %s)", host, resp.status,
            (resp.body or ""):sub(1, 200)), "connect"
    end
    c.engine = v
    local want = o.version
    if want == nil or want == "" or want == "auto" then
        local server = v.ApiVersion
        if vnum(server) == nil then
            return nil, string.format("docker: %s reports no usable " ..
                "ApiVersion (%s)", host, tostring(server))
        end
        if vnum(server) < vnum(M.MIN_VERSION) then
            return nil, string.format("docker: the engine at %s speaks API " ..
                "%s; djinn needs %s or later", host, server, M.MIN_VERSION)
        end
        if vnum(server) > vnum(M.MAX_VERSION) then
            server = M.MAX_VERSION
        end
        c.version = server
        c.negotiated = true
    else
        want = tostring(want):gsub("^v", "")
        if vnum(want) == nil then
            return nil, string.format("docker: invalid API version %q " ..
                "(expected MAJOR.MINOR, e.g. 1.41, or \"auto\")", want)
        end
        -- The configured version is the newest the client asks for: an
        -- older engine gets its own version (as the docker CLI
        -- negotiates down), if it is not below MIN_VERSION.
        local server = v.ApiVersion
        if vnum(server) and vnum(server) < vnum(want) and
            vnum(server) >= vnum(M.MIN_VERSION) then
            want = server
            c.negotiated = true
        end
        c.version = want
    end
    return c
end

function Client:call(method, path, o)
    o = o or {}
    local headers = o.headers or {}
    local body = o.body
    if o.json ~= nil then
        body = json.encode(o.json)
        headers["Content-Type"] = "application/json"
    end
    local full = "/v" .. self.version .. path .. query_string(o.query)
    local resp, err, code = http.request{
        host = self.host, method = method, path = full, headers = headers,
        body = body, timeout = o.timeout or self.timeout,
        cancel = o.cancel, on_data = o.on_data, max_body = o.max_body,
        on_headers = o.on_headers,
        connect_timeout = 10,
    }
    if resp == nil then
        if code == "connect" then
            return nil, string.format("docker: cannot reach the Docker " ..
                "engine at %s: %s", self.host,
                (err:gsub("^http: %S+ %S+ %S+: ", ""))), code
        end
        return nil, "docker: " .. err, code
    end
    if resp.status >= 400 or (resp.status >= 300 and
                              not (o.ok and o.ok[resp.status])) then
        return nil, "docker: " .. engine_message(resp), resp.status
    end
    if o.raw or o.on_data then
        return resp.body, resp
    end
    if resp.body == nil or resp.body == "" then
        return true, resp
    end
    local ok, v = pcall(json.decode, resp.body)
    if ok and v ~= nil then
        return v, resp
    end
    return resp.body, resp
end

function Client:ping()
    local r, err, code = self:call("GET", "/_ping", { raw = true })
    if r == nil then return nil, err, code end
    return true
end

-- Split a stream of JSON messages (one per line) and hand each decoded
-- message to fn.
local function json_lines(fn)
    local feed, rest = util.lines()
    local function one(line)
        if line:match("%S") then
            local ok, v = pcall(json.decode, line)
            if ok and type(v) == "table" then fn(v) end
        end
    end
    return function(chunk)
        for _, line in ipairs(feed(chunk)) do one(line) end
    end, function()
        one(rest())
    end
end

function Client:pull(image, on_status, o)
    o = o or {}
    local repo, tag = M.parse_image(image)
    local stream_err
    local feed, flush = json_lines(function(msg)
        if msg.error or msg.errorDetail then
            stream_err = msg.errorDetail and msg.errorDetail.message or
                msg.error
        elseif on_status then
            on_status(msg)
        end
    end)
    local r, err, code = self:call("POST", "/images/create", {
        query = { fromImage = repo, tag = tag },
        headers = { ["X-Registry-Auth"] = "e30=" },
        on_data = feed, timeout = o.timeout or 600, cancel = o.cancel,
    })
    if r == nil then return nil, err, code end
    flush()
    if stream_err then
        return nil, "docker: " .. tostring(stream_err), "stream"
    end
    return true
end

function Client:image_inspect(name)
    return self:call("GET", "/images/" .. http.escape(name) .. "/json")
end

function Client:volume_create(name, labels)
    local v, err, code = self:call("POST", "/volumes/create", {
        json = { Name = name, Labels = json.object(labels or {}) } })
    if v == nil then return nil, err, code end
    return v.Name
end

function Client:volume_remove(name)
    local r, err, code = self:call("DELETE", "/volumes/" .. http.escape(name),
                                   { query = { force = true } })
    if r == nil and code ~= 404 then return nil, err, code end
    return true
end

local function label_filter(labels)
    local list = json.array{}
    local keys = {}
    for k in pairs(labels or {}) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
        list[#list + 1] = k .. "=" .. labels[k]
    end
    return { label = list }
end

function Client:volumes(labels)
    local v, err, code = self:call("GET", "/volumes",
        { query = { filters = label_filter(labels) } })
    if v == nil then return nil, err, code end
    return v.Volumes or {}
end

function Client:containers(labels)
    return self:call("GET", "/containers/json",
        { query = { all = true, filters = label_filter(labels) } })
end

function Client:container_create(config)
    local v, err, code = self:call("POST", "/containers/create",
                                   { json = config })
    if v == nil then return nil, err, code end
    return v.Id
end

function Client:container_start(id)
    local r, err, code = self:call("POST", "/containers/" .. id .. "/start",
                                   { ok = { [304] = true } })
    if r == nil then return nil, err, code end
    return true
end

function Client:container_stop(id, grace)
    grace = math.floor(grace or 5)
    local r, err, code = self:call("POST", "/containers/" .. id .. "/stop", {
        query = { t = grace }, ok = { [304] = true },
        timeout = grace + 30 })
    if r == nil then return nil, err, code end
    return true
end

function Client:container_kill(id)
    local r, err, code = self:call("POST", "/containers/" .. id .. "/kill")
    if r == nil and code ~= 409 then return nil, err, code end
    return true
end

function Client:container_wait(id, o)
    o = o or {}
    local v, err, code = self:call("POST", "/containers/" .. id .. "/wait", {
        query = { condition = o.condition or "not-running" },
        timeout = o.timeout or 0, cancel = o.cancel or function()
            return nil
        end })
    if v == nil then return nil, err, code end
    if type(v) ~= "table" or math.type(v.StatusCode) ~= "integer" then
        return nil, "docker: unexpected answer to wait: " .. tostring(v)
    end
    if type(v.Error) == "table" and v.Error.Message and
        v.Error.Message ~= "" then
        return nil, "docker: " .. v.Error.Message
    end
    return v.StatusCode
end

-- The frame decoder works in one pass over each chunk, in time and memory
-- linear in the bytes fed (issue 13: it joined every chunk to what was
-- pending and re-sliced the rest after each frame, quadratic in the read
-- size). A frame's payload is handed on as it arrives, in pieces when it
-- spans reads (live output); only a header split between two reads (at
-- most 7 bytes) is kept.
function M.demux()
    local names = { [0] = "stdout", [1] = "stdout", [2] = "stderr" }
    local head = ""       -- a partial frame header
    local left = 0        -- payload bytes of the current frame still to come
    local stream = "stdout"
    return function(chunk, emit)
        local i, n = 1, #chunk
        while i <= n do
            if left > 0 then
                local last = i + left - 1
                if last > n then last = n end
                emit(i == 1 and last == n and chunk or chunk:sub(i, last),
                     stream)
                left = left - (last - i + 1)
                i = last + 1
            else
                local want = 8 - #head
                if n - i + 1 < want then
                    head = head .. chunk:sub(i)
                    return
                end
                local s, size
                if head == "" then
                    s, size = string.unpack(">B xxx I4", chunk, i)
                else
                    s, size = string.unpack(">B xxx I4",
                                            head .. chunk:sub(i, i + want - 1))
                    head = ""
                end
                i = i + want
                stream = names[s] or "stdout"
                left = size
            end
        end
    end
end

-- c:container_attach(id, { on_attached = fn() -> true | nil, err,
--   on_output = fn(data, "stdout"|"stderr"), cancel =, timeout = })
--   -> true | nil, err, code
-- Follows the container's output as `docker run` does: POST /attach
-- (stream=1), and once the engine has answered -- the streams are attached
-- -- on_attached() runs (the caller starts the container there), so no
-- byte is lost; the stream ends when the container does. A failing
-- on_attached ends the attach with its error.
function Client:container_attach(id, o)
    local demux = M.demux()
    local failed
    local r, err, code = self:call("POST", "/containers/" .. id .. "/attach", {
        query = { stream = true, stdout = true, stderr = true },
        raw = true,
        on_headers = function(status)
            if status < 300 and o.on_attached then
                local ok, why = o.on_attached()
                if not ok then failed = why or "on_attached failed" end
            end
        end,
        on_data = function(chunk) demux(chunk, o.on_output) end,
        timeout = o.timeout or 0,
        cancel = function()
            if failed then return "start" end
            return o.cancel and o.cancel() or nil
        end,
    })
    if failed then return nil, failed end
    if r == nil then return nil, err, code end
    return true
end

function Client:container_logs(id, o)
    o = o or {}
    local demux = M.demux()
    local r, err, code = self:call("GET", "/containers/" .. id .. "/logs", {
        query = { stdout = true, stderr = true, follow = o.follow or false },
        on_data = function(chunk) demux(chunk, o.on_output) end,
        timeout = o.timeout or (o.follow and 0 or 60),
        cancel = o.cancel or (o.follow and function() return nil end),
    })
    if r == nil then return nil, err, code end
    return true
end

function Client:container_remove(id)
    local r, err, code = self:call("DELETE", "/containers/" .. id,
                                   { query = { force = true, v = true } })
    if r == nil and code ~= 404 then return nil, err, code end
    return true
end

-- POST /commit: the container's file system as a new image (run --hold
-- keeps a failed job's files so). -> image id | nil, err
function Client:commit(id, labels)
    local r, err, code = self:call("POST", "/commit", {
        query = { container = id, pause = false },
        json = { Labels = json.object(labels or {}) }, timeout = 300 })
    if r == nil then return nil, err, code end
    return type(r) == "table" and r.Id or nil, "docker: commit gave no id"
end

function Client:image_remove(id)
    local r, err, code = self:call("DELETE", "/images/" .. id,
                                   { query = { force = true } })
    if r == nil and code ~= 404 then return nil, err, code end
    return true
end

function Client:put_archive(id, path, data)
    local r, err, code = self:call("PUT", "/containers/" .. id .. "/archive",
        { query = { path = path }, body = data, timeout = 300,
          headers = { ["Content-Type"] = "application/x-tar" } })
    if r == nil then return nil, err, code end
    return true
end

function Client:get_archive(id, path, o)
    o = o or {}
    local r, err, code = self:call("GET", "/containers/" .. id .. "/archive",
        { query = { path = path }, raw = true, timeout = o.timeout or 300,
          cancel = o.cancel, on_data = o.on_data,
          max_body = o.max_body or
              (o.on_data == nil and 1024 * 1024 * 1024 or nil) })
    if r == nil then return nil, err, code end
    if o.on_data then return true end
    return r
end

-- Go's os.FileMode type bits (ModeDir, ModeSymlink, ModeDevice,
-- ModeNamedPipe, ModeSocket, ModeCharDevice, ModeIrregular): none set =
-- a regular file.
local MODE_TYPE = (1 << 31) | (1 << 27) | (1 << 26) | (1 << 25) |
                  (1 << 24) | (1 << 21) | (1 << 19)
function M.is_regular(mode)
    return math.type(mode) == "integer" and mode & MODE_TYPE == 0
end

-- HEAD archive: the X-Docker-Container-Path-Stat header (base64 JSON).
function Client:stat_path(id, path)
    local r, resp, code = self:call("HEAD", "/containers/" .. id ..
                                    "/archive",
                                    { query = { path = path }, raw = true })
    if r == nil then
        if code == 404 then return false end
        return nil, resp, code
    end
    local h = resp.headers and resp.headers["x-docker-container-path-stat"]
    local raw = h and http.base64_decode(h)
    local ok, st = pcall(json.decode, raw or "")
    if ok and type(st) == "table" then
        if math.type(st.size) ~= "integer" then st.size = nil end
        return st
    end
    return {}
end

return M
