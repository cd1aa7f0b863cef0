-- examples/matrix.lua - run examples/matrix.yml once per flavour, each
-- with its own FLAVOUR env and artifacts directory, like a CI matrix, and
-- print one line per run. Exits with the worst exit status.
--
--   djinn-lua examples/matrix.lua [OUTDIR [FLAVOUR...]]
--   (default OUTDIR matrix-out, flavours plain debug release)
local djinn = require "djinn"

local here = arg[0]:match("^(.*)/") or "."
local outdir = arg[1] or "matrix-out"
local flavours = { table.unpack(arg, 2) }
if #flavours == 0 then
    flavours = { "plain", "debug", "release" }
end

local m, problems = djinn.manifest.load(here .. "/matrix.yml")
if m == nil then
    io.stderr:write(table.concat(problems, "\n"), "\n")
    return 2
end

local worst = 0
for _, flavour in ipairs(flavours) do
    local r, err, code = djinn.run(m, {
        env = { FLAVOUR = flavour },
        artifacts = outdir .. "/" .. flavour,
        timeout = "5m",
        quiet = true,
    })
    if r == nil then
        io.stderr:write(flavour, ": ", err, "\n")
        return code
    end
    print(string.format("%-10s %-22s %d job(s)", flavour, r.status, #r.jobs))
    worst = math.max(worst, r.exit_code)
    if r.status == "killed" then -- Ctrl-C stops the whole matrix
        break
    end
end
return worst
