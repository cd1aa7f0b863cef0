-- djinn.util: small pure-Lua helpers shared by the pipeline, the CLI and
-- the drivers. Nothing here touches the C modules, so this file also runs
-- under the stock lua5.4 interpreter.
--
--   util.utf8_split(s)          -> complete, rest  (rest = a trailing
--                                  incomplete UTF-8 sequence, max 3 bytes)
--   util.parse_duration(s)      -> seconds | nil, msg   ("60s", "1h30m",
--                                  "500ms", "1.5h", "0"; Go ParseDuration)
--   util.parse_size(s)          -> bytes | nil, msg      ("50MB", "1GB")
--   util.basename(p)            Go filepath.Base ("a/b/" -> "b", "" -> ".")
--   util.trim(s)
--   util.split_first(s, sep)    -> before, after | s, nil (plain find)
--   util.safe_relpath(p)        -> normalised relative path | nil, why
--                                  (rejects "", absolute paths and "..")
--   util.fmt_duration(seconds)  "1.2s", "2m03s", "1h02m03s"
--   util.shallow_copy(t)
--   util.lines()                -> feed, rest: a stream cut into lines
local M = {}

-- (JSON: djinn.json, the one encoder; see runtime/l_json.c.)

-- Length of the valid UTF-8 sequence starting at byte i of s, or nil.
local function utf8_seq(s, i)
    local c = s:byte(i)
    local n, lo, hi
    if c < 0x80 then
        return 1
    elseif c >= 0xC2 and c <= 0xDF then
        n, lo, hi = 2, 0x80, 0xBF
    elseif c == 0xE0 then
        n, lo, hi = 3, 0xA0, 0xBF
    elseif (c >= 0xE1 and c <= 0xEC) or c == 0xEE or c == 0xEF then
        n, lo, hi = 3, 0x80, 0xBF
    elseif c == 0xED then
        n, lo, hi = 3, 0x80, 0x9F -- no surrogates
    elseif c == 0xF0 then
        n, lo, hi = 4, 0x90, 0xBF
    elseif c >= 0xF1 and c <= 0xF3 then
        n, lo, hi = 4, 0x80, 0xBF
    elseif c == 0xF4 then
        n, lo, hi = 4, 0x80, 0x8F -- up to U+10FFFF
    else
        return nil
    end
    local c2 = s:byte(i + 1)
    if c2 == nil or c2 < lo or c2 > hi then
        return nil
    end
    for k = i + 2, i + n - 1 do
        local ck = s:byte(k)
        if ck == nil or ck < 0x80 or ck > 0xBF then
            return nil
        end
    end
    return n
end
M.utf8_seq = utf8_seq


-- Split s into the part made of complete UTF-8 sequences (or invalid
-- bytes) and a trailing, possibly valid but incomplete sequence.
function M.utf8_split(s)
    local len = #s
    -- Look back at most 3 bytes for a lead byte whose sequence runs past
    -- the end of the string.
    for back = 1, math.min(3, len) do
        local i = len - back + 1
        local c = s:byte(i)
        if c >= 0xC0 then
            local need = c >= 0xF0 and 4 or c >= 0xE0 and 3 or 2
            if need > back and c >= 0xC2 and c <= 0xF4 then
                -- Check the bytes present are continuation bytes.
                local ok = true
                for k = i + 1, len do
                    local ck = s:byte(k)
                    if ck < 0x80 or ck > 0xBF then ok = false end
                end
                if ok then
                    return s:sub(1, i - 1), s:sub(i)
                end
            end
            break
        elseif c < 0x80 then
            break
        end
    end
    return s, ""
end

---------------------------------------------------------------------------
-- Durations and sizes.
---------------------------------------------------------------------------
local duration_units = {
    ns = 1e-9, us = 1e-6, ["\194\181s"] = 1e-6, ["\206\188s"] = 1e-6,
    ms = 1e-3, s = 1, m = 60, h = 3600,
}

-- Go's time.ParseDuration syntax: [-+]? (number unit)+ or "0".
function M.parse_duration(s)
    if type(s) ~= "string" then
        return nil, "expected a duration string"
    end
    local text = s
    local sign = 1
    if s:sub(1, 1) == "-" then
        sign, s = -1, s:sub(2)
    elseif s:sub(1, 1) == "+" then
        s = s:sub(2)
    end
    if s == "0" then
        return 0
    end
    if s == "" then
        return nil, string.format("invalid duration %q", text)
    end
    local total, pos = 0, 1
    while pos <= #s do
        local num, unit, nxt = s:match("^(%d*%.?%d*)([^%d%.]+)()", pos)
        if num == nil or num == "" or num == "." then
            return nil, string.format(
                "invalid duration %q: expected a number followed by a " ..
                "unit (ns, us, ms, s, m, h), e.g. 60s, 1h30m, 500ms", text)
        end
        local mult = duration_units[unit]
        if mult == nil then
            return nil, string.format(
                "invalid duration %q: unknown unit %q (allowed: ns, us, " ..
                "ms, s, m, h)", text, unit)
        end
        total = total + tonumber(num) * mult
        pos = nxt
    end
    return sign * total
end

local size_units = { B = 1, KB = 1024, MB = 1024^2, GB = 1024^3,
                     TB = 1024^4 }

function M.parse_size(s)
    local num, unit = tostring(s):match("^(%d+)(%u+)$")
    local mult = unit and size_units[unit]
    if not mult then
        return nil, string.format(
            "invalid size %q: expected digits followed by B, KB, MB, GB " ..
            "or TB (powers of 1024), e.g. 50MB", tostring(s))
    end
    local n = math.tointeger(tonumber(num))
    if n == nil or n > (math.maxinteger // mult) then
        return nil, string.format("size %q is too large", s)
    end
    return n * math.tointeger(mult)
end

---------------------------------------------------------------------------
-- Strings and paths.
---------------------------------------------------------------------------
-- (%s: space, \t, \n, \v, \f, \r)
local space_byte = { [32] = true, [9] = true, [10] = true, [11] = true,
                     [12] = true, [13] = true }

-- argv as one line a person can paste into a POSIX shell: each argument
-- as it is when it is made of safe characters only, else in single quotes
-- (a ' inside as '\''). For display (run --hold); never run through a
-- shell by djinn-lua.
function M.shell_join(argv)
    local out = {}
    for i, a in ipairs(argv) do
        a = tostring(a)
        if a ~= "" and not a:find("[^%w%-_./:=@,+%%]") then
            out[i] = a
        else
            out[i] = "'" .. a:gsub("'", "'\\''") .. "'"
        end
    end
    return table.concat(out, " ")
end

function M.trim(s)
    -- Most strings have nothing to trim: no pattern matching for them.
    if s ~= "" and not space_byte[s:byte(1)] and
        not space_byte[s:byte(-1)] then
        return s
    end
    local i = s:find("%S")
    if i == nil then return "" end
    local j = #s
    while space_byte[s:byte(j)] do j = j - 1 end
    return s:sub(i, j)
end

-- An error message for people: the internal prefixes a message gathers
-- on its way up ("registry.register: ", the SQL function's
-- "image_register: ", "sys.passwd: ") are removed, so the command line
-- prints one prefix of its own and then the message (issue 11, item
-- 4.12). Only those leading names are removed; the rest is kept as is.
local INTERNAL = { "^registry%.%w+: ", "^image_%w+: ", "^djinn_%w+: ",
                   "^qcow2_%w+: ", "^namespace_resolve: ", "^sys%.%w+: ",
                   "^qcow2%.%w+: " }
function M.plain_error(msg)
    msg = tostring(msg)
    local again = true
    while again do
        again = false
        for _, pat in ipairs(INTERNAL) do
            local rest = msg:gsub(pat, "", 1)
            if rest ~= msg and rest ~= "" then
                msg, again = rest, true
            end
        end
    end
    return msg
end

function M.split_first(s, sep)
    local i, j = s:find(sep, 1, true)
    if i == nil then
        return s, nil
    end
    return s:sub(1, i - 1), s:sub(j + 1)
end

function M.basename(p)
    if p == "" then return "." end
    if p:byte(-1) == 47 then -- trailing "/"s
        p = p:gsub("/+$", "")
        if p == "" then return "/" end
    end
    -- (anchored: one pass; "([^/]*)$" would try every start)
    return p:match("^.*/(.*)$") or p
end

-- A relative path that stays inside its base directory: not empty, not
-- absolute, no ".." component. Returns it with "." and empty components
-- removed.
function M.safe_relpath(p)
    if type(p) ~= "string" or p == "" then
        return nil, "empty path"
    end
    if p:sub(1, 1) == "/" then
        return nil, "absolute paths are not allowed"
    end
    -- Already normal (no "." or ".." component, no empty one): itself.
    if p:byte(1) ~= 46 and p:byte(-1) ~= 47 and
        not p:find("//", 1, true) and not p:find("/.", 1, true) then
        return p
    end
    local parts = {}
    for comp in p:gmatch("[^/]+") do
        if comp == ".." then
            return nil, "\"..\" is not allowed"
        elseif comp ~= "." then
            parts[#parts + 1] = comp
        end
    end
    if #parts == 0 then
        return nil, "the path names the directory itself"
    end
    return table.concat(parts, "/")
end

local NAME_RULE = "names are segments of letters, digits, '.', '_' and " ..
    "'-' joined by '/', e.g. debian/stable or a registered image name"

-- An image name (driver.image of the qemu driver): segments of letters,
-- digits, '.', '_' and '-' joined by '/', none "." or "..", none starting
-- with '.', at most 255 characters. Checked by the manifest (exit 2) and
-- again by the driver before any file is touched.
function M.check_image_name(name)
    if type(name) ~= "string" or name == "" then
        return nil, "driver.image is empty (" .. NAME_RULE .. ")"
    end
    if #name > 255 then
        return nil, string.format("driver.image %q is longer than 255 " ..
                                  "characters", name:sub(1, 40) .. "...")
    end
    if name:sub(1, 1) == "/" then
        return nil, string.format("driver.image %q: absolute paths are " ..
                                  "not allowed (%s)", name, NAME_RULE)
    end
    for seg in (name .. "/"):gmatch("([^/]*)/") do
        if seg == ".." or seg == "." then
            return nil, string.format("driver.image %q: %q is not " ..
                "allowed (%s)", name, seg, NAME_RULE)
        elseif seg == "" then
            return nil, string.format("driver.image %q: empty path " ..
                "segment (%s)", name, NAME_RULE)
        elseif not seg:match("^[%w_%-][%w%._%-]*$") then
            return nil, string.format("driver.image %q: segment %q has " ..
                "characters outside the rules, or starts with '.' (%s)",
                name, seg, NAME_RULE)
        end
    end
    return name
end

function M.fmt_duration(d)
    if d < 60 then
        return string.format("%.1fs", d)
    end
    local s = math.floor(d + 0.5)
    if s < 3600 then
        return string.format("%dm%02ds", s // 60, s % 60)
    end
    return string.format("%dh%02dm%02ds", s // 3600, (s % 3600) // 60, s % 60)
end

-- A duration as written in options: 2s, 30m, 1h30m, 1.5s, 500ms.
function M.fmt_timeout(d)
    if d < 1 then
        return string.format("%gms", d * 1000)
    elseif d ~= math.floor(d) then
        return string.format("%gs", d)
    end
    d = math.floor(d)
    local h, m, s = d // 3600, (d % 3600) // 60, d % 60
    local out = ""
    if h > 0 then out = out .. h .. "h" end
    if m > 0 then out = out .. m .. "m" end
    if s > 0 or out == "" then out = out .. s .. "s" end
    return out
end

function M.shallow_copy(t)
    local r = {}
    for k, v in pairs(t) do r[k] = v end
    return r
end

-- A stream read in pieces, cut into lines: feed(data) -> the list of the
-- lines data completes, each with its "\n" (often none); rest() -> what
-- is left of an unfinished line (and forgets it). Linear in the bytes:
-- pieces of an unfinished line wait in a list and are joined once, when
-- the line ends (a buffer that grew by `buf .. data` at each read and
-- lost a line at a time copied its whole backlog again and again).
function M.lines()
    local parts = {}
    local function feed(data)
        local out = {}
        local nl = data:find("\n", 1, true)
        if nl == nil then
            if data ~= "" then parts[#parts + 1] = data end
            return out
        end
        parts[#parts + 1] = data:sub(1, nl)
        out[1] = table.concat(parts)
        parts = {}
        local start = nl + 1
        while true do
            nl = data:find("\n", start, true)
            if nl == nil then break end
            out[#out + 1] = data:sub(start, nl)
            start = nl + 1
        end
        if start <= #data then parts[1] = data:sub(start) end
        return out
    end
    local function rest()
        local r = table.concat(parts)
        parts = {}
        return r
    end
    return feed, rest
end

return M
