-- lines_test.lua - util.lines: a stream read in pieces, cut into lines
-- (the Docker transport's JSON messages, the URL worker's progress
-- lines; the queue worker once relayed a runner's output with a buffer
-- that copied its backlog at every read). What it returns, and a
-- guard on the work: the bytes it allocates are counted (the collector
-- stopped, so every allocation stays in collectgarbage("count")), not
-- timed, so a buffer that copies its backlog at every read fails here on
-- any machine.
local t = ...
local util = require "djinn.util"

local function cut(pieces)
    local feed, rest = util.lines()
    local out = {}
    for _, p in ipairs(pieces) do
        for _, line in ipairs(feed(p)) do out[#out + 1] = line end
    end
    return out, rest()
end

local lines, rest = cut{ "ab", "c\nd", "e\nf\ng", "", "h", "\n\n", "tail" }
t:is(lines, { "abc\n", "de\n", "f\n", "gh\n", "\n" },
     "lines across pieces, each with its newline; an empty line kept")
t:is(rest, "tail", "rest: the unfinished line")
local feed, rest2 = util.lines()
t:is(feed("x\ny"), { "x\n" }, "one piece: the line it ends")
t:is(rest2(), "y", "rest")
t:is(rest2(), "", "... which it forgets")
t:is(feed("z\n"), { "z\n" }, "after rest(): a fresh line")
t:is(cut{ "" }, {}, "nothing: no line")
t:is(select(2, cut{ "" }), "", "... and no rest")
t:is(cut{ "\n" }, { "\n" }, "a lone newline is a line")

-- The same lines whatever the pieces: every cut of a text into 1..7-byte
-- pieces gives its lines.
local text = "one\ntwo\n\nthree four\nfive"
local want = { "one\n", "two\n", "\n", "three four\n" }
local same = true
for size = 1, 7 do
    local pieces = {}
    for i = 1, #text, size do pieces[#pieces + 1] = text:sub(i, i + size - 1) end
    local got, r = cut(pieces)
    if table.concat(got, "|") ~= table.concat(want, "|") or r ~= "five" then
        same = false
        t:diag("pieces of " .. size .. ": " .. table.concat(got, "|"))
    end
end
t:ok(same, "every cut into 1..7-byte pieces gives the same lines")

-- Linear work: 1 MiB as one line in 4 KiB pieces, then as 64-byte lines
-- in 64 KiB pieces. A backlog joined at each read (buf = buf .. data)
-- allocates ~128 MiB for the first; a line taken off the front of the
-- buffer at a time (buf = buf:sub(nl + 1)) ~500 MiB for the second.
local function allocated_kib(fn)
    collectgarbage()
    collectgarbage("stop")
    local before = collectgarbage("count")
    fn()
    local after = collectgarbage("count")
    collectgarbage("restart")
    return after - before
end
local MiB = 1024 * 1024
local long = allocated_kib(function()
    local f, r = util.lines()
    local piece = ("x"):rep(4096)
    for _ = 1, MiB // 4096 do f(piece) end
    local out = f("\n")
    assert(#out == 1 and #out[1] == MiB + 1 and r() == "")
end)
t:ok(long < 8 * 1024, string.format(
    "1 MiB line in 4 KiB pieces: %.0f KiB allocated (< 8 MiB)", long))
local short = allocated_kib(function()
    local f = util.lines()
    local piece = (("y"):rep(63) .. "\n"):rep(1024)
    local n = 0
    for _ = 1, MiB // #piece do n = n + #f(piece) end
    assert(n == MiB // 64)
end)
t:ok(short < 8 * 1024, string.format(
    "1 MiB of 64-byte lines in 64 KiB pieces: %.0f KiB allocated (< 8 MiB)",
    short))
