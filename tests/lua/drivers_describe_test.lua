-- drivers_describe_test.lua - every driver declares its facts
-- (lua/djinn/drivers/<type>_describe.lua, shape in
-- lua/djinn/drivers/describe.lua), and the manifest validator, the
-- driver.conf parser and the reaper read those declarations.
local t = ...
local describe = require "djinn.drivers.describe"
local manifest = require "djinn.manifest"
local config = require "djinn.config"

local conf_types = { string = true, int = true, float = true, bool = true,
                     duration = true, size = true, array = true }
-- A driver.conf value of each type (what the parser makes of it).
local sample = { string = '"x"', int = "3", float = "0.5", bool = "true",
                 duration = "90s", size = "1MB", array = '["a"]' }

local function sorted_keys(s)
    local out = {}
    for k in pairs(s) do out[#out + 1] = k end
    table.sort(out)
    return out
end

t:is(describe.types, { "docker", "qemu", "ssh", "os" },
     "the driver types, in the order messages list them")
t:is(manifest.driver_types, describe.types,
     "manifest.driver_types comes from the declarations")

for _, dt in ipairs(describe.types) do
    local d = describe.of(dt)
    t:ok(type(d) == "table" and d.type == dt, dt .. ": declares itself")
    local drv = require("djinn.drivers." .. dt)
    t:ok(drv.describe == d, dt .. ": the driver module exposes its " ..
         "declaration as .describe")
    t:ok(type(d.doc) == "string" and #d.doc > 0, dt .. ": has a doc line")

    -- Manifest keys: a list of { name, doc [, required] }, "type" first.
    local names, ok = {}, type(d.manifest_keys) == "table"
    for i, k in ipairs(d.manifest_keys or {}) do
        ok = ok and type(k.name) == "string" and type(k.doc) == "string" and
            #k.doc > 0 and (k.required == nil or k.required == true)
        names[i] = k.name
    end
    t:ok(ok, dt .. ": every manifest key has a name and a doc line")
    t:is(names[1], "type", dt .. ": the manifest key type comes first")
    local set = {}
    for _, n in ipairs(names) do set[n] = true end
    t:is(manifest.driver_keys[dt], set,
         dt .. ": manifest.driver_keys is the declared list")

    -- driver.conf keys: a known type and a doc line each; defaults agree.
    ok = type(d.conf_keys) == "table"
    for k, v in pairs(d.conf_keys or {}) do
        if not (type(k) == "string" and conf_types[v.type] and
                type(v.doc) == "string" and #v.doc > 0) then
            ok = false
            t:diag(dt .. ": conf key " .. tostring(k) .. " is malformed")
        end
    end
    t:ok(ok, dt .. ": every driver.conf key has a type and a doc line")
    ok = type(d.defaults) == "table"
    for k, v in pairs(d.defaults or {}) do
        if d.conf_keys[k] == nil or d.conf_keys[k].default ~= v then
            ok = false
            t:diag(dt .. ": default " .. k .. " differs from conf_keys")
        end
    end
    t:ok(ok, dt .. ": each filled-in default is the key's declared default")
    t:is(sorted_keys(config.schema.driver[dt]), sorted_keys(d.conf_keys),
         dt .. ": config.schema has exactly the declared keys")
    for k, v in pairs(d.conf_keys) do
        if config.schema.driver[dt][k] ~= v.type then
            t:ok(false, dt .. ": config.schema type of " .. k)
        end
    end
    t:is(config.defaults().driver[dt], d.defaults,
         dt .. ": config.defaults() fills in the declared defaults")

    -- Reaper: the fields are lists of strings.
    ok = type(d.reap) == "table" and type(d.reap.processes) == "table" and
        type(d.reap.docker) == "table"
    t:ok(ok, dt .. ": declares what the reaper cleans")

    -- Every declared key, set to a value of its type, parses without a
    -- warning or an error.
    local lines = { "driver " .. dt .. " {" }
    for _, k in ipairs(sorted_keys(d.conf_keys)) do
        lines[#lines + 1] = "    " .. k .. " " .. sample[d.conf_keys[k].type]
    end
    lines[#lines + 1] = "}"
    local cfg, warns = config.parse(table.concat(lines, "\n"), "all.conf")
    t:ok(cfg ~= nil and #warns == 0, dt .. ": every declared key is " ..
         "accepted (" .. tostring(warns and warns[1] or warns) .. ")")

    -- A misspelt declared key draws a warning naming the key it resembles.
    for _, k in ipairs(sorted_keys(d.conf_keys)) do
        local typo = k:sub(1, -2) -- the last letter dropped
        if not d.conf_keys[typo] then
            local _, w = config.parse("driver " .. dt .. " { " .. typo ..
                                      " " .. sample[d.conf_keys[k].type] ..
                                      " }", "typo.conf")
            local msg = w and w[1] or ""
            if not (msg:find('unknown key "' .. typo .. '"', 1, true) and
                    msg:match("did you mean [^?]*%f[%w_]" .. k .. "%f[^%w_]")) then
                t:ok(false, dt .. ": typo " .. typo .. " of " .. k ..
                     " suggests it: " .. msg)
            end
        end
    end
end

-- The unknown-key warning, in full, for one case.
local _, w = config.parse("driver qemu {\n    memroy 256\n}\n", "vm.conf")
t:is(w, { 'vm.conf:2:5: driver qemu: unknown key "memroy" (ignored; did ' ..
          'you mean memory? known keys: accel, arch, binary, boot_timeout, ' ..
          'cpus, disks, hold, image, lock_root, memory, refuse_unusable, ' ..
          'restrict, warm, warm_max, warm_skip)' },
     "config: an unknown key is warned about, with the nearest declared key")
-- A key no driver declares is refused in every driver block.
for _, dt in ipairs(describe.types) do
    local _, ww = config.parse("driver " .. dt .. " { frobnicate true }",
                               "x.conf")
    t:like(ww and ww[1] or "", 'unknown key "frobnicate"',
           dt .. ": an undeclared key draws a warning")
end

-- The manifest's required keys come from the declarations.
for _, dt in ipairs(describe.types) do
    for _, k in ipairs(describe.of(dt).manifest_keys) do
        if k.required then
            local m, err = manifest.parse("driver:\n  type: " .. dt ..
                                          "\njobs:\n  - commands: [true]\n",
                                          "m.yml")
            local text = type(err) == "table" and table.concat(err, "; ")
                or tostring(err)
            t:ok(m == nil and text:find("driver " .. dt .. " requires " ..
                                        k.name, 1, true),
                 dt .. ": a manifest without driver." .. k.name ..
                 " is refused: " .. text)
        end
    end
end

-- The reaper's declarations name the state keys the drivers record.
for _, dt in ipairs(describe.types) do
    local f = assert(io.open(assert(package.searchpath(
        "djinn.drivers." .. dt, package.path))))
    local src = f:read("a")
    f:close()
    for _, key in ipairs(describe.of(dt).reap.processes) do
        t:ok(src:find('record_process("' .. key .. '"', 1, true),
             dt .. ": records the process it declares (" .. key .. ")")
    end
    for _, kind in ipairs(describe.of(dt).reap.docker) do
        t:ok(src:find(':add("' .. kind .. '"', 1, true),
             dt .. ": records the Docker objects it declares (" .. kind ..
             ")")
    end
end
