-- tests/lua/runner.lua - a TAP runner for Lua test files.
--
--   djinn-lua tests/lua/runner.lua FILE_test.lua...
--
-- Each file is loaded as a chunk and called with a test object `t`:
--   t:ok(cond, name)
--   t:is(got, want, name)        deep comparison of tables; on failure
--                                prints "# got ... want ..." diff lines
--   t:like(str, pattern, name)   Lua pattern match
--   t:checkerr(pattern, fn, ...) fn(...) must raise an error matching
--                                pattern
--   t:diag(msg)                  a "# msg" comment
--   t.dir                        the directory of the test file
--   t:tmpdir()                   a fresh temporary directory, removed
--                                after the file ran
-- Output: "ok N - FILE: name" / "not ok N - FILE: name", then "1..N".
-- A file that raises counts as one "not ok". Exit status 1 if anything
-- failed (returned through os.exit(code, true)).
local files = { ... }
local n, failed = 0, 0

local function fmt(v, depth)
    depth = depth or 0
    if type(v) == "string" then
        return string.format("%q", v)
    elseif type(v) ~= "table" then
        return tostring(v)
    elseif depth > 4 then
        return "{...}"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
        if type(a) == type(b) and (type(a) == "number" or type(a) == "string")
        then return a < b end
        return type(a) < type(b)
    end)
    local parts = {}
    for _, k in ipairs(keys) do
        local ks = math.type(k) == "integer" and "" or
            (type(k) == "string" and k:match("^[%a_][%w_]*$") and k .. "=" or
             "[" .. fmt(k) .. "]=")
        parts[#parts + 1] = ks .. fmt(v[k], depth + 1)
    end
    return "{" .. table.concat(parts, ", ") .. "}"
end

-- Returns nil when equal, else a path and the two differing values.
local function deep_diff(got, want, path)
    if type(got) ~= "table" or type(want) ~= "table" then
        if got == want then return nil end
        return path, got, want
    end
    for k, w in pairs(want) do
        local p, g2, w2 = deep_diff(got[k], w, path .. "[" .. fmt(k) .. "]")
        if p then return p, g2, w2 end
    end
    for k, g in pairs(got) do
        if want[k] == nil then
            return path .. "[" .. fmt(k) .. "]", g, nil
        end
    end
    return nil
end

local T = {}
T.__index = T

function T:_report(pass, name)
    n = n + 1
    if not pass then failed = failed + 1 end
    print(string.format("%s %d - %s: %s", pass and "ok" or "not ok", n,
                        self.file, tostring(name or "")))
    io.stdout:flush()
    return pass
end

function T:diag(msg)
    for line in (tostring(msg) .. "\n"):gmatch("(.-)\n") do
        print("# " .. line)
    end
end

function T:ok(cond, name)
    return self:_report(cond and true or false, name)
end

function T:is(got, want, name)
    local path, g, w = deep_diff(got, want, "")
    local pass = path == nil
    self:_report(pass, name)
    if not pass then
        if path ~= "" then self:diag("at " .. path) end
        self:diag("got  " .. fmt(g))
        self:diag("want " .. fmt(w))
        if path ~= "" then
            self:diag("whole got " .. fmt(got))
        end
    end
    return pass
end

function T:like(s, pattern, name)
    local pass = type(s) == "string" and s:find(pattern) ~= nil
    self:_report(pass, name)
    if not pass then
        self:diag("got  " .. fmt(s))
        self:diag("want a match for " .. fmt(pattern))
    end
    return pass
end

function T:checkerr(pattern, fn, ...)
    local ok, err = pcall(fn, ...)
    local pass = not ok and tostring(err):find(pattern) ~= nil
    self:_report(pass, "raises " .. pattern)
    if not pass then
        self:diag(ok and "no error raised" or ("error was " .. tostring(err)))
    end
    return pass
end

function T:tmpdir()
    local fs = require "djinn.fs"
    local d = assert(fs.mkdtemp("djinn-lua-test-"))
    self.tmps[#self.tmps + 1] = d
    return d
end

for _, file in ipairs(files) do
    local short = file:match("([^/]+)$")
    local t = setmetatable({ file = short, dir = file:match("^(.*)/") or ".",
                             tmps = {} }, T)
    local chunk, err = loadfile(file)
    if chunk == nil then
        t:_report(false, "load: " .. tostring(err))
    else
        local ok, e = xpcall(chunk, debug.traceback, t)
        if not ok then
            t:_report(false, "the file raised an error")
            t:diag(e)
        end
    end
    local okfs, fs = pcall(require, "djinn.fs")
    for _, d in ipairs(t.tmps) do
        if okfs then fs.rm_rf(d) end
    end
end

print("1.." .. n)
if n == 0 then
    print("# no tests ran")
    failed = 1
end
os.exit(failed > 0 and 1 or 0, true)
