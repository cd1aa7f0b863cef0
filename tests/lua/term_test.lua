-- term_test.lua - djinn.term.sanitize and the log writer's terminal
-- stage (issue 10, defect 10, 2026-12-04: job output reached the user's
-- terminal with its control sequences -- window title, clear screen,
-- clipboard writes, cursor moves painting a fake "--> passed" line).
-- The real-pty end of it is tests/e2e/cli_safety.sh.
local t = ...
local term = require "djinn.term"
local log = require "djinn.log"
local mask = require "djinn.mask"

local ESC = "\27"

-- 1. The filter on whole strings (final).
local cases = {
    { "plain text\n", "plain text\n", "plain text unchanged" },
    { "a\tb\r\nc", "a\tb\r\nc", "TAB, CR, LF kept" },
    { ESC .. "[31mred" .. ESC .. "[0m", ESC .. "[31mred" .. ESC .. "[0m",
      "SGR colour kept" },
    { ESC .. "[1;38;5;208mx" .. ESC .. "[m", ESC .. "[1;38;5;208mx" ..
      ESC .. "[m", "256-colour and empty SGR kept" },
    { ESC .. "[38:2::1:2:3mx", ESC .. "[38:2::1:2:3mx",
      "colon sub-parameters kept" },
    { ESC .. "]0;pwned" .. "\7", "^[]0;pwned^G", "window title (OSC 0)" },
    { ESC .. "]52;c;cHduZWQ=\7", "^[]52;c;cHduZWQ=^G",
      "clipboard write (OSC 52)" },
    { ESC .. "]52;c;cHduZWQ=" .. ESC .. "\\", "^[]52;c;cHduZWQ=^[\\",
      "OSC 52 ended by ST" },
    { ESC .. "[2J" .. ESC .. "[H", "^[[2J^[[H", "clear screen, home" },
    { "x" .. ESC .. "[1A" .. ESC .. "[2K\r--> passed in 0.0s\n",
      "x^[[1A^[[2K\r--> passed in 0.0s\n", "cursor up + erase line" },
    { ESC .. "[?25l", "^[[?25l", "private CSI (hide cursor)" },
    { ESC .. "P1$r" .. ESC .. "\\", "^[P1$r^[\\", "DCS" },
    { ESC .. "c", "^[c", "full reset" },
    { ESC .. "[" .. ("1;"):rep(40) .. "m", "^[[" .. ("1;"):rep(40) .. "m",
      "an SGR longer than 64 parameter bytes is shown" },
    { "\0\7\8\11\12\14\15\127", "^@^G^H^K^L^N^O^?",
      "other C0 controls and DEL" },
    { "\194\155" .. "2J", "\\u009b2J", "C1 CSI as UTF-8 (U+009B)" },
    { "\194\157" .. "0;t\194\156", "\\u009d0;t\\u009c",
      "C1 OSC and ST as UTF-8" },
    { "\155" .. "2J", "\\x9b2J", "raw 8-bit CSI byte" },
    { "caf\195\169 \226\130\172 \240\159\152\128 \194\160",
      "caf\195\169 \226\130\172 \240\159\152\128 \194\160",
      "UTF-8 text kept (continuation bytes 0x80-0x9F inside characters)" },
    { "\233t\233", "\233t\233", "Latin-1 letters kept" },
    { "\226\155", "\226\\x9b",
      "a broken character: its lead passes, a C1 byte after it is shown" },
    { ESC, "^[", "a lone ESC at the end (final)" },
    { ESC .. "[3", "^[[3", "an unfinished SGR at the end (final)" },
}
for _, c in ipairs(cases) do
    local out, rest = term.sanitize(c[1], true)
    t:is({ out, rest }, { c[2], "" }, c[3])
end

-- 2. Streams: no copy when nothing changes; the held-back tail.
local s = ("x"):rep(1000) .. "\n"
t:ok(select(1, term.sanitize(s)) == s, "unchanged text comes back as is")
t:is({ term.sanitize("ab" .. ESC) }, { "ab", ESC }, "ESC held back")
t:is({ term.sanitize("ab" .. ESC .. "[1;3") }, { "ab", ESC .. "[1;3" },
     "an unfinished SGR held back")
t:is({ term.sanitize("ab\226\130") }, { "ab", "\226\130" },
     "an unfinished UTF-8 character held back")
t:is({ term.sanitize("ab\194") }, { "ab", "\194" },
     "a C2 lead (maybe C1) held back")
t:is({ term.sanitize("ab" .. ESC .. "]0") }, { "ab^[]0", "" },
     "an OSC needs no look-ahead")
t:checkerr("string expected", term.sanitize, {})

local hostile = "ok " .. ESC .. "[32mgreen" .. ESC .. "[0m " .. ESC ..
    "]0;title\7" .. ESC .. "]52;c;aGk=\7 caf\195\169 \194\155" .. "2J " ..
    "\155" .. "H" .. ESC .. "[1A" .. ESC .. "[2K--> passed\n\226\130\172" ..
    ESC .. "[" .. ("9"):rep(70) .. "m" .. ESC
local whole = term.sanitize(hostile, true)
t:ok(not whole:find(ESC .. "[^%[]") and not whole:find(ESC .. "%[[%d;:]*[^%d;:m]")
     and not whole:find("\7", 1, true),
     "the hostile stream has no escape left but SGR")
local function stream(text, cuts)
    local out, held, last = {}, "", 0
    cuts[#cuts + 1] = #text
    for _, c in ipairs(cuts) do
        local o
        o, held = term.sanitize(held .. text:sub(last + 1, c))
        out[#out + 1] = o
        last = c
    end
    out[#out + 1] = term.sanitize(held, true)
    return table.concat(out)
end
local all_ok = true
for c = 0, #hostile do
    local got = stream(hostile, { c })
    if got ~= whole then
        all_ok = false
        t:is(got, whole, "split at " .. c)
    end
end
t:ok(all_ok, "split at every offset (" .. #hostile + 1 ..
     " cases): the same as the whole")
all_ok = true
local bytes = {}
for i = 1, #hostile do bytes[i] = i end
if stream(hostile, bytes) ~= whole then all_ok = false end
t:ok(all_ok, "one byte at a time: the same as the whole")

-- 3. The log writer: mask -> cap -> sanitize -> out.
local function buf()
    local b = { parts = {} }
    function b:write(x) self.parts[#self.parts + 1] = x end
    function b:text() return table.concat(self.parts) end
    return b
end
local function writer(o)
    local out, err = buf(), buf()
    o.out, o.err = out, err
    local w = log.new(o)
    return w, out, err
end
local job = { name = "j.1", stage = "s" }

local w, out = writer{ color = false, sanitize = true }
w:job_start(job)
for _, c in ipairs{ "a" .. ESC, "]0;ti", "tle\7 b" .. ESC .. "[3", "1mred",
                    ESC .. "[0m\n" } do
    w:output(c)
end
w:job_end(job, { status = "passed", duration = 0.1 })
t:like(out:text(), "\na^%[%]0;title^G b\27%[31mred\27%[0m\n%-%-> passed",
       "writer: a title split over three reads is shown, a split SGR kept")

w, out = writer{ color = false, sanitize = false }
w:job_start(job)
w:output(ESC .. "]0;title\7\n")
w:job_end(job, { status = "passed", duration = 0.1 })
t:like(out:text(), "\27%]0;title\7\n", "sanitize = false: bytes as they are")

w, out = writer{ color = false }
w:output(ESC .. "]0;title\7\n")
t:like(out:text(), "\27%]0;title\7",
       "auto: output that is not io.stdout on a terminal is not changed")

-- Secrets are still masked across reads, next to escapes.
local S = "s3cr3t-" .. "value-42"
w, out = writer{ color = false, sanitize = true, secrets = { S } }
w:job_start(job)
local text = "x" .. ESC .. "]0;" .. S .. "\7 " .. S .. ESC .. "[1m" .. S ..
    "\n"
local pieces = {}
for i = 1, #text, 5 do pieces[#pieces + 1] = text:sub(i, i + 4) end
for _, p in ipairs(pieces) do w:output(p) end
w:job_end(job, { status = "passed", duration = 0.1 })
local X = mask.REPLACEMENT
t:ok(not out:text():find(S, 1, true), "a secret split in 5-byte reads " ..
     "never appears")
t:like(out:text(), "x^%[%]0;" .. X .. "^G " .. X .. "\27%[1m" .. X .. "\n",
       "masked and sanitized together")

-- An escape held back when a runner line comes: flushed (visible) first.
w, out = writer{ color = false, sanitize = true }
w:job_start(job)
w:output("half" .. ESC)
w:line("Collecting artifact x => y")
t:like(out:text(), "half^%[\nCollecting artifact", "a held ESC is shown " ..
       "before the next line")

-- Runner lines, causes, errors and job names are sanitized too; our
-- own colours stay.
w, out = writer{ color = true, sanitize = true }
w:line("artifact error: guest file " .. ESC .. "]0;x\7")
w:job_start({ name = "evil" .. ESC .. "[2J", stage = "s" })
w:job_end({ name = "evil", stage = "s" },
          { status = "failed", duration = 1, cause = "exit " .. ESC .. "c" })
w:build_end{ status = "failed", duration = 1, error = "e" .. ESC .. "[H",
             not_run = { { name = "n" .. ESC .. "[K", stage = "s" } } }
local o = out:text()
t:ok(not o:find(ESC .. "[^%[]") and not o:find(ESC .. "%[[%d;]*[^%d;m]"),
     "no escape but SGR in the runner's lines")
t:like(o, "guest file ^%[%]0;x^G", "a runner line shows the sequence")
t:like(o, "\27%[1;36m==> s/evil^%[%[2J\27%[0m", "the job header keeps its " ..
       "colour, the name's sequence is shown")
t:like(o, "exit ^%[c", "the cause shows it")
t:like(o, "not run: s/n^%[%[K", "not-run names show it")

-- Warnings: sanitized when err is (forced) sanitized.
local err
w, out, err = writer{ color = false, sanitize = true }
w:warn("bad " .. ESC .. "]2;x\7")
t:is(err:text(), "warning: bad ^[]2;x^G\n", "warnings are sanitized")

-- JSON mode: unchanged (escaped by the encoder).
w, out = writer{ json = true, sanitize = true }
w:job_start(job)
w:output(ESC .. "]0;t\7\n")
w:job_end(job, { status = "passed", duration = 0 })
t:like(out:text(), '"data":"\\u001B%]0;t\\u0007\\n"',
       "JSON escapes (djinn.json: \\u00XX, upper-case hex)")

-- The output cap still counts the job's bytes, and its notice follows
-- a flushed tail.
w, out = writer{ color = false, sanitize = true, max_output = 4 }
w:job_start(job)
w:output("abc" .. ESC .. "[2Jdef")
t:like(out:text(), "\nabc^%[\n%[djinn: output truncated", "cap: the cut ESC " ..
       "is shown, then the notice")

-- term.columns: the table `image ls` prints (issue 13), against the Lua
-- it replaced (pad every cell but the last of its line to the widest
-- cell of its column, two spaces between, a newline after every line).
local function lua_columns(header, rows)
    local w = {}
    for i, h in ipairs(header) do w[i] = #h end
    for _, r in ipairs(rows) do
        for i, c in ipairs(r) do
            if #c > w[i] then w[i] = #c end
        end
    end
    local lines = {}
    local function line(cells)
        local out = {}
        for i, c in ipairs(cells) do
            out[i] = i < #cells and (c .. string.rep(" ", w[i] - #c)) or c
        end
        lines[#lines + 1] = table.concat(out, "  ") .. "\n"
    end
    line(header)
    for _, r in ipairs(rows) do line(r) end
    return table.concat(lines)
end
t:is(term.columns({ "A", "BB", "C" }, { { "xyz", "1", "" }, { "", "", "q" } }),
     "A    BB  C\nxyz  1   \n         q\n",
     "columns: padded to the widest cell, the last cell unpadded")
t:is(term.columns({ "NAME" }, {}), "NAME\n", "columns: a header alone")
t:is(term.columns({ "A", "B", "C" }, { { "long cell" } }),
     "A          B  C\nlong cell\n",
     "columns: a short row ends at its last cell")
local rng_rows = {}
math.randomseed(13)
for i = 1, 500 do
    local r = {}
    for j = 1, 7 do
        r[j] = string.rep(string.char(96 + j), math.random(0, 20)) ..
            (i % 7 == 0 and "\0ü" or "")
    end
    rng_rows[i] = r
end
local hdr = { "NAMESPACE", "IMAGE", "OWNER", "SIZE", "VIRTUAL", "SHA256",
              "CHECK" }
t:is(term.columns(hdr, rng_rows), lua_columns(hdr, rng_rows),
     "columns: 500 random rows (NULs, UTF-8) as the Lua version lays them out")
t:checkerr("cell 2 is a number %(cells are strings%)", term.columns,
           { "A", "B" }, { { "x", 5 } })
t:checkerr("row 2 is a string %(arrays%)", term.columns, { "A" },
           { { "x" }, "y" })
t:checkerr("table expected", term.columns, "A", {})

-- term.size: the byte counts `image ls` and the progress lines show,
-- against the Lua version it replaced on edges and random values.
local UNITS = { "B", "KiB", "MiB", "GiB", "TiB" }
local function lua_size(n)
    if type(n) ~= "number" then return "-" end
    local i = 1
    while n >= 1024 and i < #UNITS do
        n = n / 1024
        i = i + 1
    end
    return i == 1 and string.format("%d B", n) or
        string.format("%.1f %s", n, UNITS[i])
end
local sizes = { 0, 1, 1023, 1024, 1025, 2304, 1048575, 1048576, 1 << 40,
                (1 << 50) + 7, 1 << 62, math.maxinteger, -5, 1024.0, 1536.5,
                0.0 }
for i = 0, 62 do sizes[#sizes + 1] = (1 << i) - 1 end
for _ = 1, 20000 do sizes[#sizes + 1] = math.random(0, 1 << 45) end
local differ = {}
for _, n in ipairs(sizes) do
    if term.size(n) ~= lua_size(n) then
        differ[#differ + 1] = string.format("%s: %s vs %s", tostring(n),
                                            term.size(n), lua_size(n))
    end
end
t:is(differ, {}, "size: " .. #sizes .. " values as the Lua version shows them")
t:is({ term.size(nil), term.size("12"), term.size(1536.4), term.size(7.6) },
     { "-", "-", "1.5 KiB", "8 B" },
     "size: a non-number is -, a fraction under 1 KiB is rounded")
