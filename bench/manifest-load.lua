-- bench/manifest-load.lua FILE [REPEAT] - load and validate a manifest
-- REPEAT times (default 1) in one process, as `djinn-lua run` and
-- `check` do (djinn.manifest.load: read, YAML with positions, validate),
-- with the default limits; exit 1 on the first error. The reference
-- side of bench/manifest-load.sh, bench/yaml_events, pulls libyaml's
-- events over the file the same number of times.
local manifest = require "djinn.manifest"
local path, repeat_n = arg[1], tonumber(arg[2] or "1")
if path == nil or repeat_n == nil or repeat_n < 1 then
    io.stderr:write("usage: djinn-lua bench/manifest-load.lua FILE [REPEAT]\n")
    os.exit(2)
end
local m, errs
for _ = 1, repeat_n do
    m, errs = manifest.load(path)
    if m == nil then
        io.stderr:write(table.concat(errs, "\n"), "\n")
        os.exit(1)
    end
end
print(string.format("%s: %d jobs", path, #m.jobs))
