-- djinn.config: Djinn's driver.conf block language (a lexer and a
-- recursive-descent parser; pure Lua).
--
--   config.parse(text [, filename [, opts]]) -> cfg, warnings | nil, err
--   config.load(path [, opts])               -> cfg, warnings | nil, err
--   config.defaults()                        -> the built-in defaults
--   config.driver(cfg, type)                 -> the block for one driver,
--                                               defaults filled in
--   opts.env = function(name) -> value       (default os.getenv)
--
-- err is "FILE:LINE:COL: message" (several such lines joined with "\n"
-- when the file is syntactically fine but has several type errors).
-- warnings is a list of "FILE:LINE:COL: message" strings (possibly
-- empty): a key no part of djinn-lua reads, in a block whose keys are
-- known (config.keys_at), is kept but drawn a warning naming the key and
-- the nearest known keys by edit distance (issue 11: `memroy 256` used
-- to give the VM the default memory without a word).
--
-- Syntax (Djinn's lib-config):
--   # comment to the end of the line
--   driver qemu {             a labelled block: cfg.driver.qemu = {...}
--       disks "/var/lib/djinn/images"
--       cpus 1                int
--       load 0.5              float
--       kvm true              bool
--       timeout 1h30m         duration -> seconds (ns us ms s m h; 500ms
--                             = 0.5), as Go's ParseDuration
--       limit 50MB            size -> bytes (B KB MB GB TB, powers of 1024)
--       args ["-a", "-b"]     array (commas optional)
--       store { path "x" }    nested block (unlabelled: cfg.store = {...})
--   }
--   include "other.conf"      relative to the including file
--   include ["a.conf", "b.conf"]
-- Strings: "..." with escapes \" \\ \n \t \r \$ and ${ENV} interpolation
-- (an unset variable gives ""). Statements may end with an optional ";".
-- Blocks with the same name and label merge (so an include can add driver
-- blocks); the same key twice in one block is an error. Unknown keys are
-- kept (each driver reads what it knows) and warned about. Keys with a
-- known type (the table config.schema, from the drivers' declarations:
-- conf_keys in lua/djinn/drivers/<type>_describe.lua, after Djinn's
-- config structs) are checked: writing
-- timeout "60s" (a string, as Djinn's own shipped file does) is an error
-- naming the key, its position and the fix (timeout 60s).
local util = require "djinn.util"
local describe = require "djinn.drivers.describe"

local M = {}

-- Key types of the driver blocks, from each driver's declaration
-- (conf_keys in lua/djinn/drivers/<type>_describe.lua, which also holds
-- the defaults and a line of documentation per key).
M.schema = {
    driver = describe.conf_schema(),
}

-- Keys read outside the driver blocks (no type checked here: the CLI
-- checks limits and secrets with its own messages).
M.top_keys = { driver = true, secrets = true, limits = true,
               queue = true }
M.section_keys = {
    secrets = { patterns = true },
    queue = { redis = true, image_url = true, key_file = true,
              cache_max = true },
    limits = { max_output = true, max_artifacts = true,
               max_artifact_size = true, max_artifacts_total = true,
               max_objects = true, max_object_size = true,
               max_objects_total = true, max_manifest_size = true,
               max_manifest_aliases = true },
}

-- The set of keys known at a block path ({} = the top level, {"driver",
-- "qemu"}, {"limits"}), or nil when that block's keys are not checked
-- (a block no part of djinn-lua reads, or an unknown driver type, which
-- is warned about at its label).
function M.keys_at(path)
    local n = #path
    if n == 0 then
        return M.top_keys
    elseif n == 1 and path[1] == "driver" then
        return M.schema.driver
    elseif n == 1 then
        return M.section_keys[path[1]]
    elseif n == 2 and path[1] == "driver" then
        return M.schema.driver[path[2]]
    end
    return nil
end

-- Optimal string alignment distance (Levenshtein plus the swap of two
-- neighbours, so "memroy" is 1 from "memory"); case-insensitive.
function M.distance(a, b)
    a, b = a:lower(), b:lower()
    local la, lb = #a, #b
    local d = {}
    for i = 0, la do d[i] = { [0] = i } end
    for j = 1, lb do d[0][j] = j end
    for i = 1, la do
        local ca = a:byte(i)
        for j = 1, lb do
            local cb = b:byte(j)
            local cost = ca == cb and 0 or 1
            local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1,
                               d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and ca == b:byte(j - 1) and
                a:byte(i - 1) == cb then
                v = math.min(v, d[i - 2][j - 2] + 1)
            end
            d[i][j] = v
        end
    end
    return d[la][lb]
end

-- The known names nearest to `name` (a sorted list; empty when none is
-- close: more than a third of the name's length, at least 2, away).
function M.nearest(name, known)
    local best, out = math.max(2, #name // 3), {}
    for k in pairs(known) do
        local dist = M.distance(name, k)
        if dist < best then
            best, out = dist, { k }
        elseif dist == best then
            out[#out + 1] = k
        end
    end
    table.sort(out)
    return out
end

-- "did you mean memory? known keys: a, b" (or only the known keys).
local function suggest(name, known, what)
    local all = {}
    for k in pairs(known) do all[#all + 1] = k end
    table.sort(all)
    local near = M.nearest(name, known)
    local list = #all > 0 and table.concat(all, ", ") or "none"
    if #near > 0 then
        return string.format("did you mean %s? known %s: %s",
                             table.concat(near, " or "), what, list)
    end
    return string.format("known %s: %s", what, list)
end

function M.defaults()
    -- Each driver's declared defaults (fresh tables on every call).
    return { driver = describe.defaults() }
end

---------------------------------------------------------------------------
-- Lexer. Tokens: { t = kind, v = value, line =, col = , text = }
--   kind: "ident" "string" "int" "float" "duration" "size" "{" "}" "["
--         "]" "," ";" "eof"
---------------------------------------------------------------------------
local ParseError = {}

local function lex(text, file, getenv)
    local toks = {}
    local pos, line, lstart = 1, 1, 1
    local len = #text
    local function fail(l, c, fmt, ...)
        error(setmetatable({ msg = string.format("%s:%d:%d: ", file, l, c) ..
                             string.format(fmt, ...) }, ParseError), 0)
    end
    while true do
        -- Skip blanks, newlines and comments.
        while pos <= len do
            local c = text:sub(pos, pos)
            if c == "\n" then
                line = line + 1
                pos = pos + 1
                lstart = pos
            elseif c == " " or c == "\t" or c == "\r" then
                pos = pos + 1
            elseif c == "#" then
                local nl = text:find("\n", pos, true)
                pos = nl or len + 1
            else
                break
            end
        end
        local col = pos - lstart + 1
        if pos > len then
            toks[#toks + 1] = { t = "eof", line = line, col = col,
                                text = "end of file" }
            return toks
        end
        local c = text:sub(pos, pos)
        if c:find("[{}%[%],;]") then
            toks[#toks + 1] = { t = c, line = line, col = col, text = c }
            pos = pos + 1
        elseif c == '"' then
            local buf, i = {}, pos + 1
            while true do
                local ch = text:sub(i, i)
                if ch == "" then
                    fail(line, col, "unterminated string (a \" is missing)")
                elseif ch == "\n" then
                    fail(line, col, "unterminated string: a newline inside " ..
                         "\"...\" (write \\n)")
                elseif ch == '"' then
                    i = i + 1
                    break
                elseif ch == "\\" then
                    local e = text:sub(i + 1, i + 1)
                    local map = { ['"'] = '"', ["\\"] = "\\", n = "\n",
                                  t = "\t", r = "\r", ["$"] = "$" }
                    if map[e] == nil then
                        fail(line, i - lstart + 1, "unknown escape \\%s in " ..
                             "string (allowed: \\\" \\\\ \\n \\t \\r \\$)", e)
                    end
                    buf[#buf + 1] = map[e]
                    i = i + 2
                elseif ch == "$" and text:sub(i + 1, i + 1) == "{" then
                    local close = text:find("}", i + 2, true)
                    local nl = text:find("\n", i + 2, true)
                    if close == nil or (nl and nl < close) then
                        fail(line, i - lstart + 1, "unterminated ${ in " ..
                             "string (write ${NAME})")
                    end
                    local name = text:sub(i + 2, close - 1)
                    if not name:match("^[%a_][%w_]*$") then
                        fail(line, i - lstart + 1, "invalid variable name " ..
                             "%q in ${...} (letters, digits and _)", name)
                    end
                    buf[#buf + 1] = getenv(name) or ""
                    i = close + 1
                else
                    buf[#buf + 1] = ch
                    i = i + 1
                end
            end
            toks[#toks + 1] = { t = "string", v = table.concat(buf),
                                line = line, col = col,
                                text = text:sub(pos, i - 1) }
            pos = i
        elseif c:find("[%d%-%+%.]") then
            local word = text:match("^[%-%+]?[%w%.\194\181\206\188]+", pos)
                or c
            local tok = { line = line, col = col, text = word }
            if word:match("^[%-%+]?%d+$") then
                tok.t, tok.v = "int", math.tointeger(tonumber(word))
                if tok.v == nil then
                    fail(line, col, "integer %s is out of range", word)
                end
            elseif word:match("^[%-%+]?%d+%.%d+$") then
                tok.t, tok.v = "float", tonumber(word)
            elseif word:match("^%d+[KMGT]?B$") then
                local n, err = util.parse_size(word)
                if n == nil then fail(line, col, "%s", err) end
                tok.t, tok.v = "size", n
            else
                local d = util.parse_duration(word)
                if d == nil then
                    fail(line, col, "invalid literal %s (expected an int " ..
                         "(2048), a float (0.5), a duration (60s, 1h30m, " ..
                         "500ms) or a size (50MB))", word)
                end
                tok.t, tok.v = "duration", d
            end
            toks[#toks + 1] = tok
            pos = pos + #word
        elseif c:find("[%a_]") then
            local word = text:match("^[%w_%-%.]+", pos)
            toks[#toks + 1] = { t = "ident", v = word, line = line,
                                col = col, text = word }
            pos = pos + #word
        else
            fail(line, col, "unexpected character %q", c)
        end
    end
end

---------------------------------------------------------------------------
-- Parser.
---------------------------------------------------------------------------
local type_names = {
    string = "a string", int = "an int", float = "a float",
    duration = "a duration", size = "a size", bool = "a bool",
    array = "an array", block = "a block",
}

-- Canonical name for cycle detection: the real path when djinn.fs is
-- there, else a lexically normalised one.
local function realpath(p)
    local ok, fs = pcall(require, "djinn.fs")
    if ok and type(fs) == "table" and fs.realpath then
        local r = fs.realpath(p)
        if r then return r end
    end
    local parts = {}
    for comp in p:gmatch("[^/]+") do
        if comp == ".." and #parts > 0 and parts[#parts] ~= ".." then
            parts[#parts] = nil
        elseif comp ~= "." then
            parts[#parts + 1] = comp
        end
    end
    return (p:sub(1, 1) == "/" and "/" or "") .. table.concat(parts, "/")
end

local function dirname(p)
    local d = p:match("^(.*)/[^/]*$")
    if d == nil then return "." end
    if d == "" then return "/" end
    return d
end

local function read_file(path)
    local f, err = io.open(path, "rb")
    if f == nil then return nil, err end
    local data = f:read(1024 * 1024 + 1) or ""
    f:close()
    if #data > 1024 * 1024 then
        return nil, path .. ": larger than 1 MiB"
    end
    return data
end

local Parser = {}
Parser.__index = Parser

function Parser:fail(tok, fmt, ...)
    error(setmetatable({ msg = string.format("%s:%d:%d: ", self.file,
                                             tok.line, tok.col) ..
                         string.format(fmt, ...) }, ParseError), 0)
end

function Parser:peek(k) return self.toks[self.i + (k or 0)] end
function Parser:next()
    local t = self.toks[self.i]
    self.i = self.i + 1
    return t
end

function Parser:value()
    local tok = self:next()
    local t = tok.t
    if t == "string" or t == "int" or t == "float" or t == "duration"
        or t == "size" then
        return tok.v, t, tok
    elseif t == "ident" and (tok.v == "true" or tok.v == "false") then
        return tok.v == "true", "bool", tok
    elseif t == "[" then
        local arr = {}
        while true do
            local p = self:peek()
            if p.t == "]" then
                self:next()
                break
            elseif p.t == "," then
                self:next()
            elseif p.t == "eof" then
                self:fail(tok, "unterminated array (a ] is missing)")
            else
                local v = self:value()
                arr[#arr + 1] = v
            end
        end
        return arr, "array", tok
    end
    self:fail(tok, "expected a value (a \"string\", number, duration, " ..
              "size, true/false or [array]), got %s", tok.text)
end

-- Store key = value in block `out` at path, checking duplicates and the
-- schema.
function Parser:assign(out, path, keytok, value, vtype, vtok)
    local key = keytok.v
    local schema = self.schema_at(path)
    local want = schema and schema[key:lower()]
    if want then
        key = key:lower()
    end
    self:check_key(keytok, path)
    local seen = self.positions[out]
    if seen[key] then
        self:fail(keytok, "%s%s is set twice (first at %s)",
                  #path > 0 and table.concat(path, " ") .. ": " or "",
                  key, seen[key])
    end
    seen[key] = string.format("%s:%d:%d", self.file, keytok.line,
                              keytok.col)
    if want and want ~= vtype and
        not (want == "float" and vtype == "int") then
        local where = #path > 0 and table.concat(path, " ") .. ": " or ""
        if want == "duration" and vtype == "string" then
            local ok = util.parse_duration(value)
            self.errors[#self.errors + 1] = string.format(
                "%s:%d:%d: %s%s: expected a duration, got the string %q; " ..
                "write it without quotes: %s %s", self.file, vtok.line,
                vtok.col, where, key, value, key,
                ok and value or "60s")
        else
            self.errors[#self.errors + 1] = string.format(
                "%s:%d:%d: %s%s: expected %s, got %s %s", self.file,
                vtok.line, vtok.col, where, key, type_names[want],
                type_names[vtype] or vtype, vtok.text or "")
        end
    end
    out[key] = value
end

-- Warn about a key (or block name) the block at `path` does not know.
-- A key may differ from the known one in case only (the schema lowers
-- it).
function Parser:check_key(tok, path)
    local known = M.keys_at(path)
    local key = tok.v
    if known == nil or known[key] or known[key:lower()] then
        return
    end
    local where = #path > 0 and table.concat(path, " ") .. ": " or ""
    local msg
    if #path == 1 and path[1] == "driver" then
        msg = string.format("unknown driver %q (its block is ignored; %s)",
                            key, suggest(key, known, "drivers"))
    else
        msg = string.format("%sunknown key %q (ignored; %s)", where, key,
                            suggest(key, known, "keys"))
    end
    self.warnings[#self.warnings + 1] = string.format("%s:%d:%d: %s",
        self.file, tok.line, tok.col, msg)
end

-- Parse statements into `out` until `stop` ("}" or "eof").
function Parser:block(out, path, stop)
    self.positions[out] = self.positions[out] or {}
    while true do
        local tok = self:next()
        if tok.t == stop then
            return
        elseif tok.t == ";" then -- optional separator
        elseif tok.t == "eof" then
            self:fail(tok, "unexpected end of file: a } is missing")
        elseif tok.t ~= "ident" then
            self:fail(tok, "expected a key, got %s", tok.text)
        elseif tok.v == "include" then
            local v, vt, vtok = self:value()
            local files = vt == "array" and v or { v }
            if vt ~= "string" and vt ~= "array" then
                self:fail(vtok, "include: expected a \"file\" or " ..
                          "[\"a\", \"b\"], got %s", vtok.text)
            end
            for _, f in ipairs(files) do
                if type(f) ~= "string" then
                    self:fail(vtok, "include: file names must be strings")
                end
                self:include(f, vtok, out, path)
            end
        else
            local p1, p2 = self:peek(), self:peek(1)
            if p1.t == "{" then
                self:next()
                self:check_key(tok, path)
                local sub = self:sub_block(out, tok, tok.v, path)
                local np = { table.unpack(path) }
                np[#np + 1] = tok.v
                self:block(sub, np, "}")
            elseif (p1.t == "ident" or p1.t == "string") and p2.t == "{" then
                self:next(); self:next()
                self:check_key(tok, path)
                local np1 = { table.unpack(path) }
                np1[#np1 + 1] = tok.v
                self:check_key(p1, np1)
                local outer = self:sub_block(out, tok, tok.v, path)
                local sub = self:sub_block(outer, p1, p1.v, path)
                local np = { table.unpack(path) }
                np[#np + 1] = tok.v
                np[#np + 1] = p1.v
                self:block(sub, np, "}")
            else
                local v, vt, vtok = self:value()
                self:assign(out, path, tok, v, vt, vtok)
            end
        end
    end
end

-- The table for block `name` inside `out` (created or merged).
function Parser:sub_block(out, tok, name, path)
    local cur = out[name]
    if cur == nil then
        cur = {}
        out[name] = cur
        self.positions[out][name] = "block"
        self.blocks[cur] = true
    elseif not self.blocks[cur] then
        self:fail(tok, "%s%s is already set to a value; it cannot also be " ..
                  "a block", #path > 0 and table.concat(path, " ") .. ": " or
                  "", name)
    end
    self.positions[cur] = self.positions[cur] or {}
    return cur
end

function Parser:include(name, tok, out, path)
    local full = name
    if full:sub(1, 1) ~= "/" and dirname(self.file) ~= "." then
        full = dirname(self.file) .. "/" .. name
    end
    local real = realpath(full)
    for _, f in ipairs(self.stack) do
        if f == real then
            local chain = {}
            for _, g in ipairs(self.stack) do chain[#chain + 1] = g end
            chain[#chain + 1] = real
            self:fail(tok, "include cycle: %s", table.concat(chain, " -> "))
        end
    end
    if #self.stack >= 32 then
        self:fail(tok, "includes nested more than 32 deep")
    end
    local text, err = read_file(full)
    if text == nil then
        self:fail(tok, "include %q: %s", name, err)
    end
    local sub = setmetatable({
        file = full, toks = lex(text, full, self.getenv), i = 1,
        positions = self.positions, blocks = self.blocks,
        errors = self.errors, warnings = self.warnings,
        stack = self.stack, getenv = self.getenv,
        schema_at = self.schema_at,
    }, Parser)
    self.stack[#self.stack + 1] = real
    sub:block(out, path, "eof")
    self.stack[#self.stack] = nil
end

local function schema_at(path)
    local s = M.schema
    for _, p in ipairs(path) do
        if type(s) ~= "table" then return nil end
        s = s[p]
    end
    if type(s) == "table" then return s end
    return nil
end

function M.parse(text, filename, opts)
    filename = filename or "<config>"
    opts = opts or {}
    local getenv = opts.env or os.getenv
    local out, warnings = {}, {}
    local ok, err = pcall(function()
        local p = setmetatable({
            file = filename, toks = lex(text, filename, getenv), i = 1,
            positions = {}, blocks = {}, errors = {}, warnings = warnings,
            stack = { realpath(filename) }, getenv = getenv,
            schema_at = schema_at,
        }, Parser)
        p:block(out, {}, "eof")
        if #p.errors > 0 then
            error(setmetatable({ msg = table.concat(p.errors, "\n") },
                               ParseError), 0)
        end
    end)
    if not ok then
        if getmetatable(err) == ParseError then
            return nil, err.msg
        end
        error(err, 0)
    end
    return out, warnings
end

function M.load(path, opts)
    local text, err = read_file(path)
    if text == nil then
        return nil, string.format("%s: cannot read the driver " ..
                                  "configuration: %s", path, err)
    end
    return M.parse(text, path, opts)
end

-- One driver's settings: the file's block over the built-in defaults.
function M.driver(cfg, dtype)
    local d = M.defaults().driver[dtype] or {}
    local blk = cfg and cfg.driver and cfg.driver[dtype]
    if type(blk) == "table" then
        for k, v in pairs(blk) do d[k] = v end
    end
    return d
end

return M
