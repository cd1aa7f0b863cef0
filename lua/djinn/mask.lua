-- djinn.mask: replace secret values by "xxxxxx" in a stream of bytes.
--
--   local m = mask.new{ "secret-1", "another-secret" }
--   m:feed(chunk) -> text that is safe to print now
--   m:flush()     -> the held-back rest (end of the job / stream closed)
--   m:mask(text)  -> a whole string, masked (no state kept)
--   m:empty()     -> true when there is nothing to mask
--   mask.collect(items, files) -> { "K=V", ... } | nil, why: the secrets
--     of --secret K=V items and --secret-file files (run and submit)
--   mask.patterns(configured, extra) -> the secret env-name globs in
--     effect: `configured` (driver.conf's secrets.patterns) or the
--     defaults, then `extra` (--secret-pattern, secret_patterns)
--   mask.scan_env(patterns, lists, warn) -> values
--     the values of env entries ({key=, value=} in each list) whose name
--     matches one of the glob patterns; a match shorter than MIN_LEN is
--     not masked and warn(message) says so.
--
-- Matching is leftmost, then longest: at the first position where any
-- secret starts, the longest secret that matches there is replaced, and
-- the scan goes on after it. feed() holds back at most len(longest
-- secret) - 1 bytes: the shortest tail of the input that is still the
-- beginning of some secret. Secrets shorter than M.MIN_LEN are refused
-- by M.check (Djinn's rule), duplicates are ignored.
local core = require "djinn.mask.core"
local util = require "djinn.util"

local M = {}

M.MIN_LEN = 6
M.REPLACEMENT = "xxxxxx"
M.DEFAULT_PATTERNS = { "*_PASSWORD", "*_SECRET", "*_TOKEN", "*_KEY" }

local Mask = {}
Mask.__index = Mask

-- nil | "message" for a value offered as a secret.
function M.check(name, value)
    if #value < M.MIN_LEN then
        return string.format("secret %s cannot be shorter than %d " ..
                             "characters in length (it has %d)", name,
                             M.MIN_LEN, #value)
    end
    return nil
end

-- The secrets of --secret KEY=VALUE items and --secret-file FILEs
-- (KEY=VALUE lines; blank lines and # comments skipped), as run and
-- submit take them. -> { "KEY=VALUE", ... } | nil, "where: what is wrong"
function M.collect(items, files)
    local out = {}
    local function add(k, v, where)
        if v == nil or k == nil or not k:match("^[%a_][%w_]*$") then
            return string.format("%s: expected KEY=VALUE with KEY a " ..
                                 "variable name", where)
        end
        local why = M.check(k, v)
        if why then return where .. ": " .. why end
        out[#out + 1] = k .. "=" .. v
    end
    for _, item in ipairs(items or {}) do
        local k, v = util.split_first(item, "=")
        local bad = add(k, v, "--secret " .. (k or "?"))
        if bad then return nil, bad end
    end
    for _, file in ipairs(files or {}) do
        local f, ferr = io.open(file, "rb")
        if f == nil then return nil, "--secret-file: " .. ferr end
        local n = 0
        for l in f:lines() do
            n = n + 1
            l = l:gsub("\r$", "")
            if not l:match("^%s*$") and not l:match("^%s*#") then
                local k, v = util.split_first(l, "=")
                local bad = add(k and k:match("^%s*(.-)%s*$"), v,
                                string.format("%s:%d", file, n))
                if bad then f:close(); return nil, bad end
            end
        end
        f:close()
    end
    return out
end

function M.new(secrets)
    local seen, list = {}, {}
    for _, s in ipairs(secrets or {}) do
        if type(s) == "string" and s ~= "" and not seen[s] then
            seen[s] = true
            list[#list + 1] = s
        end
    end
    table.sort(list, function(a, b)
        if #a ~= #b then return #a > #b end
        return a < b
    end)
    return setmetatable({ secrets = list, maxlen = list[1] and #list[1]
                          or 0, held = "",
                          matcher = list[1] and core.compile(list) }, Mask)
end

function Mask:empty()
    return #self.secrets == 0
end

-- Mask buf; when final is false, return also the tail to hold back.
-- The scan itself is djinn.mask.core (runtime/l_mask.c: all secrets in
-- one pass, Wu-Manber; issue 13), by the rules above, compiled once in
-- mask.new.
function Mask:_scan(buf, final)
    return self.matcher:scan(buf, final, M.REPLACEMENT)
end

function Mask:feed(chunk)
    if chunk == nil or chunk == "" then return "" end
    if self.maxlen == 0 then return chunk end
    local text, held = self:_scan(self.held .. chunk, false)
    self.held = held
    return text
end

function Mask:flush()
    local h = self.held
    self.held = ""
    if h == "" then return "" end
    return (self:_scan(h, true))
end

function Mask:mask(text)
    if self.maxlen == 0 or text == nil or text == "" then return text end
    return (self:_scan(text, true))
end

-- Glob match of an env NAME against a pattern ("*" any run, "?" one
-- character; everything else literal, case-sensitive).
function M.glob_match(pattern, name)
    local lp = { "^" }
    for c in pattern:gmatch(".") do
        if c == "*" then lp[#lp + 1] = ".*"
        elseif c == "?" then lp[#lp + 1] = "."
        else lp[#lp + 1] = "%" .. c end
    end
    lp[#lp + 1] = "$"
    -- "%" before an alphanumeric is a class: escape only punctuation.
    local pat = table.concat(lp):gsub("%%(%w)", "%1")
    return name:find(pat) ~= nil
end

function M.patterns(configured, extra)
    local list = { table.unpack(configured or M.DEFAULT_PATTERNS) }
    for _, p in ipairs(extra or {}) do list[#list + 1] = p end
    return list
end

-- Env entries whose NAME matches a secret pattern are secrets too (the
-- CLI's --secret-pattern and driver.conf `secrets { patterns [...] }`,
-- djinn.run's secret_patterns).
function M.scan_env(patterns, lists, warn)
    local found = {}
    for _, list in ipairs(lists) do
        for _, kv in ipairs(list) do
            for _, p in ipairs(patterns) do
                if type(p) == "string" and M.glob_match(p, kv.key) then
                    if #kv.value >= M.MIN_LEN then
                        found[#found + 1] = kv.value
                    elseif kv.value ~= "" and warn then
                        warn(string.format("%s matches the secret " ..
                            "pattern %s but is shorter than %d characters" ..
                            ": it is NOT masked", kv.key, p, M.MIN_LEN))
                    end
                    break
                end
            end
        end
    end
    return found
end

return M
