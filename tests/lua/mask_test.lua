-- mask_test.lua - djinn.mask (the streaming secret replacer) and the
-- log writer's masking and output cap (djinn.log).
local t = ...
local mask = require "djinn.mask"
local log = require "djinn.log"

local X = mask.REPLACEMENT

-- Feed `text` cut at the given offsets (sorted), return all output.
local function feed_split(secrets, text, cuts)
    local m = mask.new(secrets)
    local out, last = {}, 0
    for _, c in ipairs(cuts) do
        out[#out + 1] = m:feed(text:sub(last + 1, c))
        last = c
    end
    out[#out + 1] = m:feed(text:sub(last + 1))
    out[#out + 1] = m:flush()
    return table.concat(out)
end

-- whole strings
local m = mask.new{ "s3cr3t-value" }
t:is(m:mask("a s3cr3t-value b"), "a " .. X .. " b", "whole string masked")
t:is(m:mask("s3cr3t-values3cr3t-value"), X .. X,
     "two occurrences, non-overlapping")
t:is(m:mask("nothing here"), "nothing here", "no secret: unchanged")
t:is(mask.new{}:feed("abc"), "abc", "no secrets: feed passes through")
t:is(mask.new{ "", "s3cr3t-value", "s3cr3t-value" }.secrets[2], nil,
     "empty and duplicate secrets ignored")

-- every split position inside the value, for a value in context
local S = "p4ss-w0rd-XYZ"
local text = "before " .. S .. " middle " .. S .. "\n"
local want = "before " .. X .. " middle " .. X .. "\n"
local all_ok = true
for c = 1, #text - 1 do
    local got = feed_split({ S }, text, { c })
    if got ~= want then
        all_ok = false
        t:is(got, want, "split at " .. c)
    end
end
t:ok(all_ok, "one split at every offset (" .. (#text - 1) .. " cases)")

all_ok = true
for a = 1, #text - 2 do
    for b = a + 1, #text - 1 do
        if feed_split({ S }, text, { a, b }) ~= want then
            all_ok = false
        end
    end
end
t:ok(all_ok, "two splits at every pair of offsets")

-- byte by byte, and the hold-back bound
do
    local mm = mask.new{ S, "other-secret" }
    local out, maxheld = {}, 0
    for i = 1, #text do
        out[#out + 1] = mm:feed(text:sub(i, i))
        if #mm.held > maxheld then maxheld = #mm.held end
    end
    out[#out + 1] = mm:flush()
    t:is(table.concat(out), want, "byte by byte")
    t:ok(maxheld <= #S - 1,
         "holds back at most len(longest)-1 bytes (held " .. maxheld .. ")")
    t:is(mm:flush(), "", "flush twice: nothing more")
end

-- a prefix of the secret at the end of the stream is released by flush
do
    local mm = mask.new{ S }
    local a = mm:feed("tail p4ss-w0")
    t:is(a, "tail ", "partial value held back")
    t:is(mm:flush(), "p4ss-w0", "flush releases a partial value unchanged")
end

-- overlapping secrets: longest first at the same position
do
    local mm = mask.new{ "abcdef", "abcdefghij" }
    t:is(mm:mask("xxabcdefghijyy"), "xx" .. X .. "yy",
         "longest secret wins at the same position")
    t:is(mm:mask("abcdefgh"), X .. "gh", "shorter one when the longer " ..
         "does not match")
    local ok2 = true
    local tx = "1abcdefghij2abcdef3"
    local wx = "1" .. X .. "2" .. X .. "3"
    for c = 1, #tx - 1 do
        if feed_split({ "abcdef", "abcdefghij" }, tx, { c }) ~= wx then
            ok2 = false
        end
    end
    t:ok(ok2, "overlapping secrets, split at every offset")
    -- a secret that contains another one in the middle
    t:is(mask.new{ "zz123456zz", "123456" }:mask("a123456b zz123456zz"),
         "a" .. X .. "b " .. X, "a secret inside another")
    -- a secret that starts inside a longer one's prefix
    t:is(feed_split({ "aaaaab", "aaab12" }, "aaaaab aaab12", { 3 }),
         X .. " " .. X, "self-overlapping prefixes")
end

-- minimum length and globs
t:like(mask.check("K", "12345"), "cannot be shorter than 6 characters",
       "5 characters refused")
t:is(mask.check("K", "123456"), nil, "6 characters accepted")
t:ok(mask.glob_match("*_PASSWORD", "DB_PASSWORD"), "glob *_PASSWORD")
t:ok(not mask.glob_match("*_PASSWORD", "DB_PASSWORDS"), "glob anchored")
t:ok(mask.glob_match("A?C", "ABC") and not mask.glob_match("A?C", "AC"),
     "glob ?")
t:ok(mask.glob_match("X.%Y*", "X.%Y1") and not mask.glob_match("X.%Y", "XZ%Y"),
     "glob punctuation is literal")

-- the log writer: every path is masked
local function capture(opts)
    local buf, ebuf = {}, {}
    opts.out = { write = function(_, s) buf[#buf + 1] = s end }
    opts.err = { write = function(_, s) ebuf[#ebuf + 1] = s end }
    opts.color = false
    local w = log.new(opts)
    return w, function() return table.concat(buf) end,
           function() return table.concat(ebuf) end
end

for _, json in ipairs{ false, true } do
    local w, out, err = capture{ secrets = { S }, json = json }
    w:build_start{ manifest = "m.yml", driver = "os" }
    w:line("Placing object " .. S .. " => x")
    w:output("driver creation says p4ss")
    w:output("-w0rd-XYZ\n")
    w:job_start{ name = "j.1", stage = "j" }
    w:output("+ echo p4ss-w")
    w:output("0rd-XYZ")
    w:output("\np4ss-w0rd-X") -- held back at job end, then flushed
    w:job_end({ name = "j.1", stage = "j" },
              { status = "failed", duration = 1, exit_code = 1,
                cause = "exit " .. S })
    w:warn("warn " .. S)
    w:build_end{ status = "failed", duration = 1, error = "err " .. S }
    local mode = json and "json" or "text"
    t:ok(not out():find("p4ss-w0rd-XYZ", 1, true) and
         not err():find("p4ss-w0rd-XYZ", 1, true), mode .. ": no secret")
    local _, nx = out():gsub(X, "")
    -- text: line, creation, echo, cause, summary; JSON has no cause but
    -- a "warning" event (issue 11)
    t:is(nx, 5, mode .. ": every copy replaced on stdout")
    t:like(err(), "warning: warn " .. X, mode .. ": warning masked")
    t:ok(out():find("p4ss-w0rd-X", 1, true) ~= nil,
         mode .. ": a partial value is flushed at job end")
end

-- output cap
do
    local w, out = capture{ max_output = 10 }
    w:job_start{ name = "j.1", stage = "j" }
    w:output("0123456")
    w:output("789abcdef")
    w:output("more")
    w:job_end({ name = "j.1", stage = "j" }, { status = "passed",
                                               duration = 0 })
    w:job_start{ name = "j.2", stage = "j" }
    w:output("2nd job\n")
    w:job_end({ name = "j.2", stage = "j" }, { status = "passed",
                                               duration = 0 })
    local o = out()
    t:like(o, "0123456789\n%[djinn: output truncated after 0%.0 MiB; " ..
           "the job keeps running%]\n", "truncated at the cap with a notice")
    t:ok(not o:find("abcdef", 1, true) and not o:find("more", 1, true),
         "nothing past the cap")
    t:like(o, "2nd job", "the cap is per job")
    local _, nn = o:gsub("output truncated", "")
    t:is(nn, 1, "one notice")
    t:like(o, "%-%-> passed", "status unaffected")
end

-- The scan in C (djinn.mask.core, issue 13) against the rules written as
-- plain Lua (the implementation it replaced, kept here as the model):
-- random texts over a small alphabet, so secrets overlap, share
-- prefixes, repeat and straddle the chunk cuts; the same output and the
-- same held-back tail for every call.
do
    local core = require "djinn.mask.core"
    local function model_tail(secrets, maxlen, buf, i)
        local n = #buf
        local from = math.max(n - maxlen + 2, i)
        for q = from, n do
            local rest = buf:sub(q)
            for _, s in ipairs(secrets) do
                if #s > #rest and s:sub(1, #rest) == rest then return q end
            end
        end
        return n + 1
    end
    local function model_scan(secrets, buf, final)
        local maxlen = secrets[1] and #secrets[1] or 0
        local out, i, n = {}, 1, #buf
        while true do
            local best, blen = nil, 0
            for _, s in ipairs(secrets) do
                local p = buf:find(s, i, true)
                if p and (best == nil or p < best) then best, blen = p, #s end
            end
            local q = final and n + 1 or model_tail(secrets, maxlen, buf, i)
            if best and best < q then
                out[#out + 1] = buf:sub(i, best - 1) .. X
                i = best + blen
            else
                out[#out + 1] = buf:sub(i, q - 1)
                return table.concat(out), buf:sub(q)
            end
        end
    end
    local seed = 99
    local function rnd(n)
        seed = (seed * 1103515245 + 12345) % 2147483648
        return seed % n
    end
    local function word(len)
        local c = {}
        for k = 1, len do c[k] = string.char(97 + rnd(3)) end
        return table.concat(c)
    end
    local bad, calls = 0, 0
    for _ = 1, 2000 do
        local list = {}
        for k = 1, 1 + rnd(5) do list[k] = word(1 + rnd(k == 1 and 7 or 12)) end
        local m = mask.new(list) -- dedups and sorts longest first
        local buf = word(rnd(80))
        for _, final in ipairs{ false, true } do
            local a1, a2 = core.compile(m.secrets):scan(buf, final, X)
            local b1, b2 = model_scan(m.secrets, buf, final)
            calls = calls + 1
            if a1 ~= b1 or a2 ~= b2 then
                bad = bad + 1
                if bad == 1 then
                    t:diag(string.format("buf %q secrets %s final %s: got " ..
                        "%q %q want %q %q", buf, table.concat(m.secrets, ","),
                        tostring(final), a1, a2, b1, b2))
                end
            end
        end
    end
    t:is(bad, 0, "mask.core.scan = the Lua model on " .. calls ..
         " random scans (overlapping, repeated, prefix-sharing secrets)")
    -- Long buffers (512 bytes and more are searched as two halves at
    -- once): secrets rare (long ones over a wider alphabet) and frequent.
    local function word4(len, letters)
        local c = {}
        for k = 1, len do c[k] = string.char(97 + rnd(letters)) end
        return table.concat(c)
    end
    bad, calls = 0, 0
    for round = 1, 300 do
        local list = {}
        for k = 1, 1 + rnd(4) do
            list[k] = word4(round % 2 == 0 and 2 + rnd(4) or 5 + rnd(8), 3)
        end
        local m = mask.new(list)
        local buf = word4(500 + rnd(2500), round % 3 == 0 and 3 or 6)
        for _, final in ipairs{ false, true } do
            local a1, a2 = m.matcher:scan(buf, final, X)
            local b1, b2 = model_scan(m.secrets, buf, final)
            calls = calls + 1
            if a1 ~= b1 or a2 ~= b2 then bad = bad + 1 end
        end
    end
    t:is(bad, 0, "mask.core.scan = the Lua model on " .. calls ..
         " long random scans (two halves searched at once)")
    t:checkerr("a secret is empty", core.compile, { "" })
    t:is(select(1, core.compile{ "abcdef" }:scan("", false, X)), "",
         "an empty buffer gives nothing")
end
