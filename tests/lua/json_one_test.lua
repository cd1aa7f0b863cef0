-- json_one_test.lua - issue 12: one JSON encoder (djinn.json) for every
-- place that writes JSON in Lua: the value encodes the same from
-- json.encode, from the log's --json events and from the QEMU driver's
-- -blockdev arguments; one null, one array marker, one rule for invalid
-- UTF-8 (each invalid byte -> U+FFFD), NaN/inf refused.
local t = ...
local json = require "djinn.json"
local log = require "djinn.log"
local util = require "djinn.util"
local qemu = require "djinn.drivers.qemu"

local FFFD = "\239\191\189"

-- The rules, on json.encode itself.
t:is(json.encode({ a = { 1, 2, { b = false } }, s = "x\"\\\n\t\0\31",
                   n = 1.5, i = -3, e = json.array(), o = {},
                   z = json.null }),
     '{"a":[1,2,{"b":false}],"e":[],"i":-3,"n":1.5,"o":{},' ..
     '"s":"x\\"\\\\\\n\\t\\u0000\\u001F","z":null}',
     "nested; keys sorted; {} is an object, json.array() an array; null")
t:is(json.encode("\237\160\128 \192\175 \244\144\128\128 \240\159\152\128"),
     '"' .. FFFD:rep(3) .. " " .. FFFD:rep(2) .. " " .. FFFD:rep(4) ..
     ' \240\159\152\128"',
     "surrogates, overlongs, > U+10FFFF: one U+FFFD per byte; valid kept")
t:is(json.encode({ ["k\255"] = "v\128" }), '{"k' .. FFFD .. '":"v' .. FFFD ..
     '"}', "keys follow the same UTF-8 rule")
t:is(json.encode("ab\226\130"), '"ab' .. FFFD .. FFFD .. '"',
     "a truncated sequence: one U+FFFD per byte")
t:is(json.encode({ math.maxinteger, math.mininteger, 2^53 + 0.0, 2.0, -0.0 }),
     "[9223372036854775807,-9223372036854775808,9007199254740992.0,2,0]",
     "large integers exact; integral floats below 2^53 as integers")
t:is(json.encode({ 0.007, 0.1, 1 / 3, 1e300, 0.52 }),
     "[0.007,0.1,0.3333333333333333,1e300,0.52]", "floats read back exactly")
local v = json.decode(json.encode({ 0.1, 1 / 3, 1e300 }))
t:is({ v[1], v[2], v[3] }, { 0.1, 1 / 3, 1e300 }, "floats round-trip")
t:checkerr("NaN and infinity have no JSON form", json.encode, 0 / 0)
t:checkerr("NaN and infinity have no JSON form", json.encode, { d = -math.huge })
t:ok(util.json == nil and util.json_null == nil and util.json_array == nil,
     "util has no JSON encoder of its own")

-- The same value from every place.
local samples = {
    "plain", "", "caf\195\169", "bad \255\254 bytes", "ctl \0\1\27[2J\127",
    "\237\160\128", "quote \" back \\ slash /", "\240\159\152\128",
}
local function sink()
    local s = { buf = {} }
    function s:write(x) self.buf[#self.buf + 1] = x end
    function s.text(self) return table.concat(self.buf) end
    return s
end
for i, s in ipairs(samples) do
    -- the log: a runner line is an output event whose data is s .. "\n"
    local out = sink()
    local w = log.new{ out = out, err = sink(), json = true }
    w:line(s)
    t:is(out:text(), '{"event":"output","data":' .. json.encode(s .. "\n") ..
         ',"job":null}\n', "log line event = json.encode (sample " .. i .. ")")
    -- job output (arbitrary bytes) in one read
    out = sink()
    w = log.new{ out = out, err = sink(), json = true }
    w:job_start{ name = "j", stage = "s" }
    w:output(s .. "\n")
    w:job_end({ name = "j", stage = "s" }, { status = "passed", duration = 0,
                                             exit_code = 0 })
    local lines = {}
    for l in out:text():gmatch("[^\n]+") do lines[#lines + 1] = l end
    t:is(lines[2], '{"event":"output","data":' .. json.encode(s .. "\n") ..
         ',"job":"j"}', "log output event = json.encode (sample " .. i .. ")")
    for k, l in ipairs(lines) do
        local ev, err = json.decode(l)
        t:ok(ev ~= nil, "event " .. k .. " of sample " .. i ..
             " parses back" .. (err and (": " .. err) or ""))
    end
    -- the QEMU driver's -blockdev option
    local argv = qemu.machine_argv{ accel = "tcg", cpus = 1, memory = 64,
                                    image = s, overlay = "o",
                                    console = "c" }
    local bd
    for k = 1, #argv do
        if argv[k] == "-blockdev" then bd = argv[k + 1]; break end
    end
    t:is(bd, json.encode{ driver = "file", ["node-name"] = "image-file",
                          filename = s, ["read-only"] = true },
         "qemu -blockdev = json.encode (sample " .. i .. ")")
end

-- Output events are written by json.quote (issue 13's fast path): the
-- same bytes as json.encode of the whole event, for random bytes, a build
-- id, and a job name that itself needs escaping; the job and build change
-- between events (the cached head and tail follow them).
do
    local out = sink()
    local w = log.new{ out = out, err = sink(), json = true, build_id = "b\"1" }
    local seed, want = 7, {}
    local function rnd(n)
        seed = (seed * 1103515245 + 12345) % 2147483648
        return seed % n
    end
    for round = 1, 40 do
        if round == 11 then w.build_id = "b-2" end
        local job = round % 3 == 0 and "j\t\"" .. round or "job" .. round % 2
        w:job_start{ name = job, stage = "s" }
        local bytes = {}
        for k = 1, 1 + rnd(3000) do
            -- ASCII (mostly) and every other byte, so multi-byte
            -- characters, invalid bytes and controls all occur
            bytes[k] = rnd(4) == 0 and rnd(256) or 32 + rnd(95)
        end
        -- whole UTF-8 characters only, so each write is one event
        local data = util.utf8_split(string.char(table.unpack(bytes)))
        w:output(data)
        w:job_end({ name = job, stage = "s" },
                  { status = "passed", duration = 0, exit_code = 0 })
        want[#want + 1] = { build = w.build_id, job = job, data = data }
    end
    local n, bad = 0, 0
    for l in out:text():gmatch("[^\n]+") do
        if l:find('^{"event":"output"') then
            n = n + 1
            local e = want[n]
            local enc = json.encode{ build = e.build, data = e.data, job = e.job }
            if l ~= '{"event":"output",' .. enc:sub(2) then bad = bad + 1 end
        end
    end
    t:is(n, 40, "40 output events written")
    t:is(bad, 0, "each output event = json.encode of the event (random bytes, " ..
         "changing build and job)")
end

-- A guard that is not a timing (issue 13): output events do not go
-- through json.encode (a jansson tree per event, ~110 MB/s) but through
-- json.quote, the head and tail made once per job.
do
    local out = sink()
    local w = log.new{ out = out, err = sink(), json = true, build_id = "b" }
    w:job_start{ name = "j", stage = "s" }
    local real, calls = json.encode, 0
    json.encode = function(...) calls = calls + 1; return real(...) end
    local ok, err = pcall(function()
        for _ = 1, 100 do w:output(string.rep("line\n", 100)) end
    end)
    json.encode = real
    t:ok(ok, "100 output events written" .. (err and (": " .. err) or ""))
    t:ok(calls <= 2, "100 output events of one job call json.encode at most " ..
         "twice (the head and tail), not once each: " .. calls .. " calls")
end

-- The build id: every JSON event carries it; text output does not.
local out = sink()
local w = log.new{ out = out, err = sink(), json = true, build_id = "b-1" }
w:build_start{ manifest = "x.yml", driver = "os" }
w.build_id = "b-2"
w:job_start{ name = "j", stage = "s" }
w:output("hi\n")
w:warn("careful")
w:job_end({ name = "j", stage = "s" }, { status = "passed", duration = 0.5,
                                         exit_code = 0 })
w:build_end{ status = "passed", duration = 1 }
local lines = {}
for l in out:text():gmatch("[^\n]+") do lines[#lines + 1] = l end
t:is(lines[1], '{"event":"build_start","build":"b-1","driver":"os",' ..
     '"manifest":"x.yml"}', "build_start carries the build id")
t:is(#lines, 6, "six events")
local all = true
for k = 2, #lines do
    local ev = json.decode(lines[k])
    if not ev or ev.build ~= "b-2" then all = false end
end
t:ok(all, "every later event carries the id set later (w.build_id = ...)")
t:is(lines[4], '{"event":"warning","build":"b-2","message":"careful"}',
     "warning event with the id")
local tout = sink()
local tw = log.new{ out = tout, err = sink(), color = false, sanitize = false,
                    build_id = "b-1" }
tw:job_start{ name = "j", stage = "s" }
tw:output("hi\n")
tw:job_end({ name = "j", stage = "s" }, { status = "passed", duration = 0.5 })
t:is(tout:text(), "==> s/j\nhi\n--> passed in 0.5s\n",
     "text output does not show the build id")
local nw = log.new{ out = sink(), err = sink(), json = true }
local nb = sink()
nw.out, nw.sink.out = nb, nb
nw:line("x")
t:ok(not nb:text():find('"build"'), "no build key without an id")
