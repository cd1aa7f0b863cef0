-- cli_test.lua - the command line's defaults and exit statuses (issue 10,
-- 2026-12-04):
--   defect 6: with HOME unset or empty the default registry silently
--     became ./djinn/registry.db in the current directory, and relative
--     HOME / XDG_* values were used;
--   defect 7: runtime/main.c kept only the first return value of
--     cli.main, so `nil, "interrupted", 130` exited 0 without a word.
-- The end-to-end side (a real pty, Ctrl-C mid-copy) is
-- tests/e2e/cli_safety.sh.
local t = ...
local cli = require "djinn.cli"
local sys = require "djinn.sys"
local proc = require "djinn.proc"
local fs = require "djinn.fs"

local function env_of(tbl)
    return function(k) return tbl[k] end
end
local function pw(home)
    return function() return { name = "me", uid = 1000, home = home } end
end
local function nopw()
    return nil, "sys.passwd: uid 4242: no entry in the password database"
end

-- 1. Defaults (defect 6).
t:is(cli.default_registry(env_of{ HOME = "/home/me" }, pw("/x")),
     "/home/me/.local/share/djinn/registry.db", "HOME")
t:is(cli.default_registry(env_of{ HOME = "/home/me",
                                  XDG_DATA_HOME = "/data" }, pw("/x")),
     "/data/djinn/registry.db", "an absolute XDG_DATA_HOME wins")
t:is(cli.default_registry(env_of{}, pw("/home/pw")),
     "/home/pw/.local/share/djinn/registry.db",
     "HOME unset: the password database's home")
t:is(cli.default_registry(env_of{ HOME = "" }, pw("/home/pw")),
     "/home/pw/.local/share/djinn/registry.db",
     "HOME empty: the password database's home")
t:is(cli.default_registry(env_of{ HOME = "rel/home" }, pw("/home/pw")),
     "/home/pw/.local/share/djinn/registry.db",
     "HOME relative: ignored, the password database's home")
t:is(cli.default_registry(env_of{ HOME = "/home/me", XDG_DATA_HOME = "d" },
                          pw("/x")),
     "/home/me/.local/share/djinn/registry.db",
     "a relative XDG_DATA_HOME is ignored (XDG spec)")
t:is(cli.default_driver_config(env_of{ HOME = "/h/",
                                       XDG_CONFIG_HOME = "./c" }, pw("/x")),
     "/h/.config/djinn/driver.conf",
     "driver.conf: relative XDG_CONFIG_HOME ignored, trailing / of HOME")
t:is(cli.default_driver_config(env_of{ XDG_CONFIG_HOME = "/cfg" }, nopw),
     "/cfg/djinn/driver.conf", "an absolute XDG value needs no home")

local p, why = cli.default_registry(env_of{}, nopw)
t:ok(p == nil, "no HOME, no password entry: no default registry")
t:like(tostring(why), "HOME is not set and sys%.passwd: uid 4242: no entry",
       "... the message says why")
t:like(tostring(why), "set HOME or XDG_DATA_HOME, or pass %-%-registry DB",
       "... and what to do")
p, why = cli.default_registry(env_of{ HOME = "", XDG_DATA_HOME = "rel" },
                              pw(""))
t:ok(p == nil, "empty HOME and an empty passwd home: none")
t:like(tostring(why), "HOME is empty and the password database gives me " ..
       'no absolute home directory %(""%)', "... says so")
t:like(tostring(why), "XDG_DATA_HOME=rel is ignored", "... and that the " ..
       "relative XDG_DATA_HOME was ignored")
p, why = cli.default_driver_config(env_of{ HOME = "h" }, pw("also/rel"))
t:ok(p == nil and tostring(why):find("HOME is not an absolute path %(h%)"),
     "relative HOME and relative passwd home: none (" .. tostring(why) .. ")")
t:like(tostring(why), "pass %-%-driver%-config FILE", "... what to do")

-- The real password database (through NSS, as getent reads it).
local me = sys.passwd()
t:ok(type(me) == "table" and type(me.home) == "string" and
     me.uid == math.tointeger(tonumber(io.open("/proc/self/status"):read("a")
         :match("\nUid:%s+%d+%s+(%d+)"))),
     "sys.passwd(): the effective uid's entry")
local c = assert(proc.spawn{ argv = { "getent", "passwd", tostring(me.uid) },
                             stdin = "null", stdout = "pipe",
                             stderr = "null" })
local out = {}
while true do
    local d, w = c:read(10)
    if d then out[#out + 1] = d elseif w ~= "timeout" then break end
end
c:wait(10)
local f = {}
for x in (table.concat(out):gsub("\n$", "") .. ":"):gmatch("([^:]*):") do
    f[#f + 1] = x
end
t:is({ me.name, me.home, me.shell }, { f[1], f[6], f[7] },
     "sys.passwd() agrees with getent passwd")
local none, nerr = sys.passwd(2147483000)
t:ok(none == nil and tostring(nerr):find("no entry in the password database"),
     "an unknown uid: nil, message (" .. tostring(nerr) .. ")")
t:checkerr("uid out of range", sys.passwd, -1)
t:is(cli.home(env_of{}), me.home, "cli.home() with HOME unset: the real " ..
     "password database's home")

-- 2. Exit statuses through runtime/main.c (defect 7): a fake djinn.cli
-- whose main returns each kind of result.
local exe = fs.realpath("/proc/self/exe")
local dir = t:tmpdir()
assert(fs.mkdir_p(dir .. "/djinn"))
local function status_of(body, argv)
    assert(fs.writefile(dir .. "/djinn/cli.lua",
                        "return { main = function(argv) " .. body .. " end }"))
    local env = proc.environ()
    env.DJINN_LUA_PATH = dir .. "/?.lua"
    local ch = assert(proc.spawn{ argv = { exe, table.unpack(argv or {}) },
                                  env = env, stdin = "null", stdout = "null",
                                  stderr = "pipe" })
    local e = {}
    while true do
        local d, w = ch:read(10)
        if d then e[#e + 1] = d elseif w ~= "timeout" then break end
    end
    local how, code = ch:wait(10)
    return how == "exit" and code or -1, table.concat(e)
end
t:is({ status_of("return 0") }, { 0, "" }, "main returns 0: exit 0")
t:is({ status_of("return 3") }, { 3, "" }, "main returns 3: exit 3")
t:is({ status_of("return 300") }, { 1, "" }, "an integer over 255: exit 1")
t:is({ status_of("return true") }, { 0, "" }, "true: exit 0")
t:is({ status_of("return false") }, { 1, "" }, "false: exit 1")
t:is({ status_of('return nil, "interrupted", 130') },
     { 130, "djinn-lua: interrupted\n" },
     "nil, message, 130: the message and exit 130 (was a silent 0)")
t:is({ status_of('return nil, "the worker could not start"') },
     { 1, "djinn-lua: the worker could not start\n" },
     "nil, message: the message and exit 1 (was a silent 0)")
local st, msg = status_of("return nil")
t:is(st, 1, "nil alone: exit 1, not 0")
t:like(msg, "internal error: djinn.cli.main returned nil instead of an " ..
       "exit status", "... with a message")
st, msg = status_of("return")
t:ok(st == 1 and msg:find("returned nothing", 1, true),
     "nothing: exit 1 and a message")
st, msg = status_of('return "0"')
t:ok(st == 1 and msg:find("returned string", 1, true),
     'a string "0" is not a status: exit 1')
st, msg = status_of("return 2.5")
t:ok(st == 1 and msg:find("returned number", 1, true),
     "a float: exit 1 and a message")
st, msg = status_of("error('boom', 0)")
t:ok(st == 1 and msg:find("^djinn%-lua: boom\n"),
     "a raise: exit 1 with its message (as before)")

-- Scripts run by the real cli: nil, message [, code] is a failure.
local script = dir .. "/s.lua"
local function script_status(body)
    assert(fs.writefile(script, body))
    local ch = assert(proc.spawn{ argv = { exe, script }, stdin = "null",
                                  stdout = "null", stderr = "pipe" })
    local e = {}
    while true do
        local d, w = ch:read(10)
        if d then e[#e + 1] = d elseif w ~= "timeout" then break end
    end
    local how, code = ch:wait(10)
    return how == "exit" and code or -1, table.concat(e)
end
t:is({ script_status('return nil, "cannot do it"') },
     { 1, "djinn-lua: cannot do it\n" }, "a script's nil, message: exit 1")
t:is({ script_status('return nil, "later", 5') },
     { 5, "djinn-lua: later\n" }, "a script's nil, message, 5: exit 5")
t:is({ script_status("local x = 1") }, { 0, "" },
     "a script returning nothing: exit 0 (as lua.c)")
t:is({ script_status("return 4") }, { 4, "" }, "a script's integer: its status")
