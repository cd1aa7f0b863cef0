-- djinn.trace: phase timings for performance work. With DJINN_TRACE=1 in
-- the environment, trace.mark(label) writes one line to stderr:
--   djinn-trace: <CLOCK_MONOTONIC seconds> +<ms since the previous mark> <label>
-- The absolute stamp is the clock proc.now() reads in every process, so a
-- parent (bench/vm-bench.lua) can line the phases up with its own clock.
-- Without DJINN_TRACE=1, mark() is a no-op (one upvalue test).
local proc = require "djinn.proc"

local M = {}
local on = os.getenv("DJINN_TRACE") == "1"
local last

M.on = on

-- t: the moment to stamp (a proc.now() value), default now.
function M.mark(label, t)
    if not on then return end
    local now = t or proc.now()
    io.stderr:write(string.format("djinn-trace: %.6f +%.1f %s\n", now,
        last and (now - last) * 1000 or 0, label))
    io.stderr:flush()
    last = now
end

return M
