-- tests/docs_check.lua - the docs-coverage checker (run by tests/e2e/docs.sh).
--
--   djinn-lua tests/docs_check.lua TOP DOCS DJINN_SO [CHECK...]
--
-- TOP is the source tree, DOCS the directory holding the reference pages
-- (normally TOP/docs; the test points it at a damaged copy to prove that a
-- missing name fails), DJINN_SO the extension without ".so". CHECKs, any
-- of: lua manifest conf sql cli cites (default: all). Prints one TAP point
-- per check (no plan: the caller adds it); a failing point is followed by
-- "# undocumented: NAME" lines naming exactly what is missing.
--
-- Each enumeration lives in one small function (lua_names, manifest_names,
-- conf_names, sql_names, cli_names, cited_docs), so that a restructuring
-- of the code changes one function here. They read the code's own tables
-- and, where a table is private, the code's behaviour (the "known keys:"
-- list of an unknown-key warning).
local fs = require "djinn.fs"
local proc = require "djinn.proc"

local TOP, DOCS, SO = arg[1], arg[2], arg[3]
assert(TOP and DOCS and SO, "usage: docs_check.lua TOP DOCS DJINN_SO [CHECK...]")
local wanted = {}
for i = 4, #arg do wanted[arg[i]] = true end
local function want(c) return next(wanted) == nil or wanted[c] end

local n = 0
local function point(ok, name, missing)
    n = n + 1
    print(string.format("%s %d - %s", ok and "ok" or "not ok", n, name))
    for _, m in ipairs(missing or {}) do print("# undocumented: " .. m) end
end

local function read(path)
    local t = fs.readfile(path)
    return t
end

-- The text of the section whose heading line contains `title` exactly
-- (up to the next heading of the same or a higher level), or nil.
local function section(doc, title)
    local lines, out, level = {}, nil, nil
    for l in (doc .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
    for _, l in ipairs(lines) do
        local hashes = l:match("^(#+)%s")
        if out and hashes and #hashes <= level then break end
        if out then
            out[#out + 1] = l
        elseif hashes and l:find(title, 1, true) then
            out, level = {}, #hashes
        end
    end
    return out and table.concat(out, "\n")
end

local function sorted(set)
    local l = {}
    for k in pairs(set) do l[#l + 1] = k end
    table.sort(l)
    return l
end

local function has_code(text, name)
    return text ~= nil and text:find("`" .. name, 1, true) ~= nil
end

---------------------------------------------------------------------------
-- (a) Lua API: every djinn.* module (C modules from package.preload, Lua
-- modules from the files under lua/djinn/), its public fields, and the
-- methods of every object type the C modules register (luaL_newmetatable
-- names "djinn.<module>.<type>" in the Lua registry).
-- Returns { { section = "djinn.fs", names = { "fs.readfile", ... } }, ... }
---------------------------------------------------------------------------
local function lua_names()
    local mods = {}
    for name in pairs(package.preload) do
        if name:match("^djinn%.") then mods[name] = true end
    end
    local function walk(dir, prefix)
        for _, e in ipairs(fs.listdir(dir) or {}) do
            local p = dir .. "/" .. e
            local st = fs.stat(p)
            if st and st.type == "dir" then
                walk(p, prefix .. e .. ".")
            elseif e:match("%.lua$") then
                local m = prefix .. e:gsub("%.lua$", "")
                mods[(m:gsub("%.init$", ""))] = true
            end
        end
    end
    walk(TOP .. "/lua/djinn", "djinn.")
    local out = {}
    for _, m in ipairs(sorted(mods)) do
        local ok, t = pcall(require, m)
        local short = m == "djinn" and "djinn" or m:gsub("^djinn%.", "")
        local names = {}
        if ok and type(t) == "table" then
            for k in pairs(t) do
                if type(k) == "string" and not k:match("^_") then
                    names[#names + 1] = short .. "." .. k
                end
            end
        elseif not ok then
            names[#names + 1] = m .. " (require failed: " .. tostring(t) .. ")"
        end
        table.sort(names)
        out[#out + 1] = { section = m, names = names }
    end
    -- Object types: methods of each registered metatable.
    local types = {}
    for k, v in pairs(debug.getregistry()) do
        if type(k) == "string" and k:match("^djinn%.[%w_]+%.[%w_]+$") and
            type(v) == "table" and type(v.__index) == "table" then
            types[k] = v.__index
        end
    end
    for _, tn in ipairs(sorted(types)) do
        local mod, ty = tn:match("^(djinn%.[%w_]+)%.([%w_]+)$")
        local names = {}
        for k in pairs(types[tn]) do
            if type(k) == "string" and not k:match("^_") then
                names[#names + 1] = ty .. ":" .. k
            end
        end
        table.sort(names)
        out[#out + 1] = { section = mod, names = names }
    end
    -- Objects the Lua modules return: their public methods (own function
    -- fields and those of their __index chain), as "<prefix>:<method>".
    local function methods(o)
        local names, seen, t = {}, {}, o
        while type(t) == "table" do
            for k, v in pairs(t) do
                if type(k) == "string" and type(v) == "function" and
                    not k:match("^_") and not seen[k] then
                    seen[k] = true
                    names[#names + 1] = k
                end
            end
            local mt = getmetatable(t)
            t = mt and mt.__index
        end
        table.sort(names)
        return names
    end
    local objects = {
        { "djinn.log", "w", function(m)
            return m.new{ out = { write = function() end }, json = false }
        end },
        { "djinn.mask", "m", function(m) return m.new{ "secret-1" } end },
        { "djinn.pipeline", "ctx", function(m)
            return m.new_ctx(10, proc, false)
        end },
    }
    for _, ob in ipairs(objects) do
        local ok, mod = pcall(require, ob[1])
        local ok2, o = ok, nil
        if ok then ok2, o = pcall(ob[3], mod) end
        local names = {}
        if ok2 then
            for _, k in ipairs(methods(o)) do names[#names + 1] = ob[2] .. ":" .. k end
        else
            names[1] = ob[1] .. " (could not make a " .. ob[2] .. ": " .. tostring(o or mod) .. ")"
        end
        out[#out + 1] = { section = ob[1], names = names }
    end
    return out
end

---------------------------------------------------------------------------
-- (b) Manifest keys: { top = {...}, job = {...}, driver = { type = {...} } }
-- Read from the loader's warnings for an unknown key ("known keys: a, b"),
-- so that private key tables and driver modules that declare their own keys
-- are covered alike.
---------------------------------------------------------------------------
local function manifest_names()
    local manifest = require "djinn.manifest"
    local function known(yaml, pat)
        local _, w = manifest.parse(yaml, "probe.yml")
        for _, msg in ipairs(w or {}) do
            local list = msg:match(pat)
            if list then
                local l = {}
                for k in list:gmatch("[%w_]+") do l[#l + 1] = k end
                return l
            end
        end
        return { "(no unknown-key warning to read the keys from)" }
    end
    local r = { driver = {} }
    r.top = known("driver: {type: os}\nzzzz: 1\njobs: []\n",
                  "known keys: ([%w_, ]+)")
    r.job = known("driver: {type: os}\nstages: [a]\njobs:\n" ..
                  "  - {stage: a, commands: [x], zzzz: 1}\n",
                  "known keys: ([%w_, ]+)")
    -- Driver types: the loader's list, and every driver module (one with
    -- new()) in lua/djinn/drivers/.
    local types = {}
    for _, t in ipairs(manifest.driver_types or {}) do types[t] = true end
    for _, e in ipairs(fs.listdir(TOP .. "/lua/djinn/drivers") or {}) do
        local t = e:match("^([%w_]+)%.lua$")
        local ok, mod = pcall(require, "djinn.drivers." .. (t or ""))
        if t and ok and type(mod) == "table" and type(mod.new) == "function" then
            types[t] = true
        end
    end
    for _, t in ipairs(sorted(types)) do
        local keys = manifest.driver_keys and manifest.driver_keys[t]
        local l = {}
        if keys then
            for k in pairs(keys) do l[#l + 1] = k end
        else
            l = known("driver: {type: " .. t .. ", zzzz: 1}\njobs: []\n",
                      "known: ([%w_, ]+)")
        end
        table.sort(l)
        r.driver[t] = l
    end
    return r
end

---------------------------------------------------------------------------
-- (c) driver.conf: { ["driver qemu"] = {keys}, limits = {keys}, ... }
---------------------------------------------------------------------------
local function conf_names()
    local config = require "djinn.config"
    local r = {}
    for top in pairs(config.keys_at({})) do
        if top == "driver" then
            for t in pairs(config.keys_at({ "driver" })) do
                r["driver " .. t] = sorted(config.keys_at({ "driver", t }) or {})
            end
        else
            r[top] = sorted(config.keys_at({ top }) or {})
        end
    end
    return r
end

---------------------------------------------------------------------------
-- (d) SQL: the functions the extension adds to a stock sqlite3 shell, and
-- the tables and views of a fresh registry.
---------------------------------------------------------------------------
local function shell(args)
    -- Under an ASan build the stock shell needs the sanitizer runtimes
    -- preloaded to load the extension (tests/run.sh sets this).
    local pre = os.getenv("DJINN_SHELL_PRELOAD")
    if pre and pre ~= "" then
        table.insert(args, 1, "LD_PRELOAD=" .. pre)
        table.insert(args, 1, "env")
    end
    local p = assert(proc.spawn({ argv = args, stdout = "pipe", stderr = "pipe" }))
    local out = {}
    while true do
        local chunk, which = p:read(30)
        if not chunk then break end
        if which == "stdout" then out[#out + 1] = chunk end
    end
    local st = p:wait(30)
    return table.concat(out), st
end

local function sql_names()
    local q = "SELECT DISTINCT name FROM pragma_function_list ORDER BY 1"
    local base = shell({ "sqlite3", "-batch", ":memory:", q })
    local with = shell({ "sqlite3", "-batch", ":memory:", ".load " .. SO, q })
    local seen, funcs = {}, {}
    for l in base:gmatch("[^\n]+") do seen[l] = true end
    for l in with:gmatch("[^\n]+") do
        if not seen[l] then funcs[#funcs + 1] = l end
    end
    local dir = assert(fs.mkdtemp("docs-check-"))
    local objs = shell({ "sqlite3", "-batch", dir .. "/r.db", ".load " .. SO,
                         "SELECT name FROM sqlite_schema WHERE type IN " ..
                         "('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY 1" })
    fs.rm_rf(dir)
    local tables = {}
    for l in objs:gmatch("[^\n]+") do tables[#tables + 1] = l end
    return funcs, tables
end

---------------------------------------------------------------------------
-- (e) CLI options: djinn.cli.COMMANDS[cmd].options[name], when the CLI has
-- that table; nil otherwise.
---------------------------------------------------------------------------
local function cli_names()
    -- DOCS_CHECK_CLI=FILE: a Lua file returning a stand-in for djinn.cli
    -- (tests/e2e/docs.sh proves with it that a missing option fails).
    local stub = os.getenv("DOCS_CHECK_CLI")
    local ok, cli
    if stub then
        ok, cli = pcall(dofile, stub)
    else
        ok, cli = pcall(require, "djinn.cli")
    end
    if not ok or type(cli.COMMANDS) ~= "table" then return nil end
    local r = {}
    for cmd, spec in pairs(cli.COMMANDS) do
        -- An internal option (between djinn-lua and its own worker) is
        -- never documented.
        local public = {}
        for name, o in pairs(type(spec) == "table" and spec.options or {}) do
            if not (type(o) == "table" and o.internal) then
                public[name] = true
            end
        end
        r[cmd] = sorted(public)
    end
    return r
end

---------------------------------------------------------------------------
-- Cited documents: every "*.md" named in the code, and every section it
-- names ("docs/x.md §1.2" needs a heading "1.2 ..." in docs/x.md; "rule N"
-- of docs/style.md needs a rule "N."). Returns a list of "file:line: why".
---------------------------------------------------------------------------
local function cited_docs()
    local bad, files = {}, {}
    local function walk(dir)
        for _, e in ipairs(fs.listdir(dir) or {}) do
            local p = dir .. "/" .. e
            local st = fs.stat(p)
            if st and st.type == "dir" then
                if p ~= TOP .. "/tests/manifests" and p ~= TOP .. "/tests/fuzz/corpus" then
                    walk(p)
                end
            elseif e == "docs_check.lua" or e == "docs.sh" then
                -- the checker and its test name documents as data
            elseif e:match("%.[chl]u?a?$") or e:match("%.sh$") or
                e:match("%.sql$") or e:match("%.py$") or e == "Makefile" or
                e:match("%.conf$") then
                files[#files + 1] = p
            end
        end
    end
    for _, d in ipairs({ "ext", "runtime", "lua", "schema", "tests",
                         "examples", "bench" }) do
        walk(TOP .. "/" .. d)
    end
    files[#files + 1] = TOP .. "/Makefile"
    local docs_cache = {}
    local function doc(rel)
        if docs_cache[rel] == nil then docs_cache[rel] = read(TOP .. "/" .. rel) or false end
        return docs_cache[rel] or nil
    end
    for _, f in ipairs(files) do
        local text = read(f) or ""
        local rel = f:sub(#TOP + 2)
        local ln = 0
        for line in (text .. "\n"):gmatch("(.-)\n") do
            ln = ln + 1
            local where = rel .. ":" .. ln
            for name in line:gmatch("([%w_%./%-]+%.md)%f[^%w]") do
                local path = name:gsub("^%./", "")
                if not (doc(path) or doc("docs/" .. path)) then
                    bad[#bad + 1] = where .. ": cites " .. name .. ", not in the tree"
                end
            end
            for path, sec in line:gmatch("(docs/[%w_%-]+%.md),? §([%d%.]*%d)") do
                local d = doc(path)
                if d and not d:find("\n#+ " .. sec:gsub("%.", "%%.") .. "[ %.]") then
                    bad[#bad + 1] = where .. ": cites " .. path .. " §" .. sec ..
                        ", no such section"
                end
            end
            for rules in line:gmatch("docs/style%.md,? rules? ([%d/, and]+)") do
                local d = doc("docs/style.md") or ""
                for r in rules:gmatch("%d+") do
                    if not d:find("\n" .. r .. "%. ") then
                        bad[#bad + 1] = where .. ": cites docs/style.md rule " .. r ..
                            ", no such rule"
                    end
                end
            end
            if line:find("djinn%-spec") or line:find("STYLE %d") or
                line:find("notes/lua%-api") then
                bad[#bad + 1] = where .. ": cites an outside document: " ..
                    line:gsub("^%s+", "")
            end
        end
    end
    return bad
end

---------------------------------------------------------------------------
-- The checks.
---------------------------------------------------------------------------
local function check_lua()
    local doc = read(DOCS .. "/lua-api.md")
    local missing = {}
    if not doc then missing[1] = DOCS .. "/lua-api.md (no such file)" end
    for _, m in ipairs(doc and lua_names() or {}) do
        local sec = section(doc, "`" .. m.section .. "`")
        if not sec then
            missing[#missing + 1] = m.section .. " (no section titled `" .. m.section .. "`)"
        else
            for _, name in ipairs(m.names) do
                -- A module in a folder may be written by its last name
                -- (sshjob.connect for djinn.transport.sshjob.connect).
                local last = name:match("([^.]+%.[^.]+)$")
                if not has_code(sec, name) and
                    not (last and has_code(sec, last)) then
                    missing[#missing + 1] = name .. " (in section " .. m.section .. ")"
                end
            end
        end
    end
    point(#missing == 0, "docs/lua-api.md documents every djinn.* module, field and method", missing)
end

local function check_manifest()
    local doc = read(DOCS .. "/manifest.md")
    local missing = {}
    if not doc then missing[1] = DOCS .. "/manifest.md (no such file)" end
    local k = doc and manifest_names() or { top = {}, job = {}, driver = {} }
    for _, name in ipairs(k.top) do
        if not has_code(section(doc, "Top-level keys") or "", name .. "`") then
            missing[#missing + 1] = name .. " (top-level key)"
        end
    end
    for _, name in ipairs(k.job) do
        if not has_code(section(doc, "Job keys") or "", name .. "`") then
            missing[#missing + 1] = name .. " (job key)"
        end
    end
    for t, keys in pairs(k.driver) do
        local sec = section(doc, "Driver `" .. t .. "`")
        for _, name in ipairs(keys) do
            if not has_code(sec, name .. "`") then
                missing[#missing + 1] = "driver." .. name .. " (driver " .. t ..
                    (sec and "" or "; no section \"Driver `" .. t .. "`\"") .. ")"
            end
        end
    end
    table.sort(missing)
    point(#missing == 0, "docs/manifest.md documents every manifest key", missing)
end

local function check_conf()
    local doc = read(DOCS .. "/driver-conf.md")
    local missing = {}
    if not doc then missing[1] = DOCS .. "/driver-conf.md (no such file)" end
    for block, keys in pairs(doc and conf_names() or {}) do
        local sec = section(doc, "`" .. block .. "`")
        if not sec then
            missing[#missing + 1] = block .. " (no section titled `" .. block .. "`)"
        end
        for _, key in ipairs(keys) do
            if sec and not has_code(sec, key .. "`") and not has_code(sec, key .. " ") then
                missing[#missing + 1] = block .. " " .. key
            end
        end
    end
    table.sort(missing)
    point(#missing == 0, "docs/driver-conf.md documents every driver.conf block and key", missing)
end

local function check_sql()
    local doc = read(DOCS .. "/sql.md")
    local missing = {}
    if not doc then missing[1] = DOCS .. "/sql.md (no such file)" end
    local funcs, tables = sql_names()
    if doc and #funcs == 0 then missing[#missing + 1] = "(the extension added no SQL function: could not load " .. SO .. ")" end
    for _, f in ipairs(doc and funcs or {}) do
        if not has_code(doc, f .. "(") then missing[#missing + 1] = f .. "() (function)" end
    end
    for _, t in ipairs(doc and tables or {}) do
        if not has_code(doc, t .. "`") then missing[#missing + 1] = t .. " (table or view)" end
    end
    point(#missing == 0, "docs/sql.md documents every SQL function, table and view", missing)
end

local function check_cli()
    local cmds = cli_names()
    if not cmds then
        print("# skip (e): djinn.cli has no COMMANDS table (COMMANDS[cmd].options[name]);" ..
              " docs/cli.md is not checked until it has")
        return
    end
    local doc = read(DOCS .. "/cli.md")
    local missing = {}
    if not doc then missing[1] = DOCS .. "/cli.md (no such file)" end
    for cmd, opts in pairs(doc and cmds or {}) do
        -- The command's own section ("djinn-lua run" in a heading), else
        -- the whole page.
        local sec = section(doc, "djinn-lua " .. cmd) or doc
        for _, o in ipairs(opts) do
            local flag = (#o == 1 and "-" or "--") .. o
            if not has_code(sec, flag) then missing[#missing + 1] = cmd .. " " .. flag end
        end
    end
    table.sort(missing)
    point(#missing == 0, "docs/cli.md documents every option of every command", missing)
end

local function check_cites()
    local bad = cited_docs()
    n = n + 1
    print(string.format("%s %d - no file cites a document or section that is not in the tree",
                        #bad == 0 and "ok" or "not ok", n))
    for _, b in ipairs(bad) do print("# " .. b) end
end

if want("lua") then check_lua() end
if want("manifest") then check_manifest() end
if want("conf") then check_conf() end
if want("sql") then check_sql() end
if want("cli") then check_cli() end
if want("cites") then check_cites() end
