-- frontdoor_test.lua - one front door for a build (issue 12): djinn.run
-- applies every default itself (djinn.defaults: the 30-minute timeout,
-- the default driver.conf and registry of djinn.paths, the reaper), and
-- makes one build id that the state directory, the drivers, the log and
-- the result share. Real /bin/sh jobs on the os driver. The command line
-- against a script, with a home of its own, is tests/e2e/frontdoor.sh.
local t = ...
local djinn = require "djinn"
local paths = require "djinn.paths"
local state = require "djinn.state"
local fs = require "djinn.fs"
local json = require "djinn.json"

local dir = t:tmpdir()
local m = { driver = { type = "os" }, stages = { "s" },
            jobs = { { stage = "s", name = "j", commands = { "true" } } } }

-- A JSON log writer that keeps its events.
local function capture()
    local buf = {}
    local sink = { write = function(_, s) buf[#buf + 1] = s end }
    local log = djinn.log.new{ out = sink, err = { write = function() end },
                               json = true }
    return log, function()
        local events = {}
        for l in table.concat(buf):gmatch("[^\n]+") do
            events[#events + 1] = assert(json.decode(l))
        end
        return events
    end
end

-- 1. The defaults, in one place.
do
    local o = djinn.defaults{}
    t:is(o.timeout, 30 * 60, "defaults: the timeout is 30 minutes")
    t:is(o.reap, true, "defaults: the reaper runs")
    t:is(o.registry, (paths.default_registry()),
         "defaults: the registry is djinn.paths' default registry")
    local def = paths.default_driver_config()
    t:is(o.default_driver_config, def or false,
         "defaults: driver.conf is djinn.paths' default file")
    o = djinn.defaults{ timeout = false, registry = false, reap = false,
                        driver_config = "/x.conf" }
    t:is({ o.timeout, o.registry, o.reap, o.default_driver_config },
         { 0, nil, false, nil }, "defaults: false turns each off; an " ..
         "explicit driver.conf is not replaced")
    local src = { stage = "s" }
    djinn.defaults(src)
    t:is(src, { stage = "s" }, "defaults: the caller's table is not changed")
end

-- 2. A script with no options gets the CLI's 30-minute timeout.
do
    local r = djinn.run(m, { quiet = true, artifacts = dir, signals = false })
    t:is(r and r.status, "passed", "djinn.run with no timeout passes")
    t:is(r and r.timeout, 30 * 60, "... with the 30-minute default timeout " ..
         "(result.timeout)")
    r = djinn.run(m, { quiet = true, artifacts = dir, signals = false,
                       timeout = 0 })
    t:is(r and r.timeout, nil, "timeout = 0: none")
    r = djinn.run(m, { quiet = true, artifacts = dir, signals = false,
                       timeout = "90s" })
    t:is(r and r.timeout, 90, "timeout = \"90s\": 90 seconds")
    local r2, err, code = djinn.run(m, { quiet = true, artifacts = dir,
                                         signals = false, timeout = -5 })
    t:ok(r2 == nil and code == 2 and err:find("timeout: expected seconds " ..
         ">= 0", 1, true), "a negative timeout is refused: " .. tostring(err))
end

-- 3. One build id: the result's, every JSON event's (a writer the script
-- made itself too), fresh for each build.
do
    local log, events = capture()
    local r = djinn.run(m, { log = log, artifacts = dir, signals = false })
    t:like(r and r.build_id or "", "^%x+$", "result.build_id: " ..
           tostring(r and r.build_id))
    t:is(#(r and r.build_id or ""), 16, "... 16 hex digits")
    local ev, same = events(), true
    for _, e in ipairs(ev) do
        if e.build ~= r.build_id then same = false end
    end
    t:ok(#ev >= 4 and same, string.format("all %d JSON events carry it " ..
         "as \"build\"", #ev))
    local r2 = djinn.run(m, { quiet = true, artifacts = dir,
                              signals = false })
    t:ok(r2 and r2.build_id ~= r.build_id, "the next build has another id")
    -- A refused build's events carry the id too.
    log, events = capture()
    local bad = djinn.run({ driver = { type = "os" }, stages = { "s" },
        jobs = { { stage = "s", name = "j", commands = "x" } } },
        { log = log, artifacts = dir, signals = false })
    ev = events()
    t:ok(bad == nil and #ev >= 2 and ev[#ev].event == "build_end" and
         ev[#ev].status == "invalid" and type(ev[#ev].build) == "string" and
         ev[1].build == ev[#ev].build, "an invalid build's error events " ..
         "carry one id as well")
end

-- 4. The id names the state directory; a used id is refused.
do
    local base = dir .. "/state"
    assert(fs.mkdir_p(base, tonumber("700", 8)))
    local id = state.new_id()
    t:like(id, "^%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x$", "state.new_id(): " ..
           "16 hex digits")
    local rec, err = state.begin("os", { base = base, id = id })
    t:is(rec and rec.dir, base .. "/" .. id, "state.begin{id}: the " ..
         "directory is named by the build id: " .. tostring(err))
    local data = rec and json.decode(fs.readfile(rec.dir .. "/state"))
    t:is(data and data.build, id, "... and the state file's build is it")
    local again, aerr = state.begin("os", { base = base, id = id })
    t:ok(again == nil and aerr:find("exists already", 1, true),
         "an id is used once: " .. tostring(aerr))
    rec:finish()
    local odd
    odd, aerr = state.begin("os", { base = base, id = "../x" })
    t:ok(odd == nil and aerr:find("expected hex digits", 1, true),
         "an id that is not hex is refused: " .. tostring(aerr))
end

-- 5. The docker driver labels with the build's id (no id of its own).
do
    local docker = require "djinn.drivers.docker"
    local d = assert(docker.new{ config = {}, build_id = "0123abcd4567ef89",
        driver = { type = "docker", image = "alpine", workspace = "/w" } })
    t:is({ d.id, d.labels["djinn.build"] }, { "0123abcd4567ef89",
         "0123abcd4567ef89" }, "docker: djinn.build=<the build id>")
    d = assert(docker.new{ config = {},
        driver = { type = "docker", image = "alpine", workspace = "/w" } })
    t:like(d.labels["djinn.build"], "^%x+$", "docker without a build id " ..
           "(used directly): one of its own")
end

-- 6. The qemu driver names its machine after the build (ps shows it).
do
    local qemu = require "djinn.drivers.qemu"
    local argv = qemu.machine_argv{ accel = "tcg", cpus = 1, memory = 256,
        image = "/i.qcow2", overlay = "/o.qcow2", console = "/c.log",
        name = "djinn-0123abcd4567ef89" }
    t:ok(table.concat(argv, " "):find(" -name djinn-0123abcd4567ef89 ", 1,
         true), "qemu: -name djinn-<build id>")
    local d = assert(qemu.new{ config = { cpus = 1, memory = 256 },
        build_id = "0123abcd4567ef89", log = {},
        driver = { type = "qemu", image = "tiny" } })
    t:is(d.build_id, "0123abcd4567ef89", "qemu: the driver keeps the " ..
         "build id it was given")
end
