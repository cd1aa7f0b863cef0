-- bench/manifest-load.lua FILE [REPEAT] - load and validate a manifest
-- REPEAT times (default 1) in one process, as `djinn-lua run` and
-- `check` do (djinn.manifest.load: read, YAML with positions, validate),
-- with the default limits; exit 1 on the first error. The reference
-- side of bench/manifest-load.sh, bench/yaml_events, pulls libyaml's
-- events over the file the same number of times.
-- Prints "seconds S": the CPU time of the loads (os.clock: user and
-- system time, page faults included; time the shared machine gives to
-- others left out), without process start-up and without collecting the
-- previous load's result (a full collection between loads, not timed):
-- what one load costs a `djinn-lua run`, which loads once and keeps the
-- manifest. bench/lib.sh reads it when BENCH_SELF_TIMED is set.
local manifest = require "djinn.manifest"
local path, repeat_n = arg[1], tonumber(arg[2] or "1")
if path == nil or repeat_n == nil or repeat_n < 1 then
    io.stderr:write("usage: djinn-lua bench/manifest-load.lua FILE [REPEAT]\n")
    os.exit(2)
end
local m, errs
local spent = 0
for _ = 1, repeat_n do
    m = nil
    collectgarbage()
    local t0 = os.clock()
    m, errs = manifest.load(path)
    spent = spent + (os.clock() - t0)
    if m == nil then
        io.stderr:write(table.concat(errs, "\n"), "\n")
        os.exit(1)
    end
end
print(string.format("%s: %d jobs (%s load)", path, #m.jobs,
                    manifest.last_loader))
print(string.format("seconds %.6f", spent))
