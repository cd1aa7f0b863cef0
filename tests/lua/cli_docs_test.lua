-- cli_docs_test.lua - djinn.cli's option table (COMMANDS) against what is
-- derived from it or written about it: the parser itself (each kind
-- behaves as its table entry says), each command's --help text, the man
-- page docs/djinn-lua.1 (as roff writes "--x-y": \-\-x\-y), docs/cli.md
-- and the generated bash completion. An option added to COMMANDS without
-- being documented fails here.
local t = ...
local cli = require "djinn.cli"
local completion = require "djinn.completion"
local top = assert(os.getenv("DJINN_TOP"), "DJINN_TOP is not set")

local function slurp(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("a")
    f:close()
    return s
end
local function sorted(t0)
    local r = {}
    for k in pairs(t0) do r[#r + 1] = k end
    table.sort(r)
    return r
end
local function plain_find(s, needle)
    return s:find(needle, 1, true) ~= nil
end

local man = slurp(top .. "/docs/djinn-lua.1")
local md = slurp(top .. "/docs/cli.md")
local bash = completion.bash()
local KINDS = { flag = true, value = true, list = true,
                ["optional-dir"] = true }

t:is(#cli.COMMAND_ORDER, #sorted(cli.COMMANDS),
     "COMMAND_ORDER lists every command once")
for _, cmd in ipairs(cli.COMMAND_ORDER) do
    local c = cli.COMMANDS[cmd]
    t:ok(c ~= nil and type(c.summary) == "string" and
         type(c.usage) == "string", cmd .. ": summary and usage")
    t:ok(plain_find(man, ".SS " .. cmd), cmd .. ": a section of the man page")
    t:ok(plain_find(md, "## `djinn-lua " .. cmd .. "`"),
         cmd .. ": a section of docs/cli.md")
    local bad, nohelp, noman, nomd, nocomp = {}, {}, {}, {}, {}
    for _, o in ipairs(sorted(c.options)) do
        local spec = c.options[o]
        -- internal = true: between djinn-lua and its own worker process,
        -- never documented.
        if spec.internal then goto continue end
        if not KINDS[spec.kind] or type(spec.help) ~= "string" or
            (spec.kind ~= "flag" and type(spec.arg) ~= "string") then
            bad[#bad + 1] = o
        end
        if not plain_find(cli.HELP[cmd], "--" .. o) then
            nohelp[#nohelp + 1] = o
        end
        if not plain_find(man, "\\-\\-" .. o:gsub("%-", "\\-")) then
            noman[#noman + 1] = o
        end
        if not plain_find(md, "`--" .. o) then nomd[#nomd + 1] = o end
        if not bash:find("[' ]%-%-" .. o:gsub("%-", "%%-") .. "[' ]") then
            nocomp[#nocomp + 1] = o
        end
        ::continue::
    end
    t:is(table.concat(bad, " "), "",
         cmd .. ": every option has a kind, help and (with a value) arg")
    t:is(table.concat(nohelp, " "), "", cmd .. ": --help names every option")
    t:is(table.concat(noman, " "), "",
         cmd .. ": docs/djinn-lua.1 names every option")
    t:is(table.concat(nomd, " "), "",
         cmd .. ": docs/cli.md names every option")
    t:is(table.concat(nocomp, " "), "",
         cmd .. ": the bash completion offers every option")
    for _, s in ipairs(sorted(c.subcommands or {})) do
        t:ok((plain_find(man, ".B " .. s) or
              plain_find(man, cmd .. " " .. s)) and
             (plain_find(md, "`" .. s) or plain_find(md, cmd .. " " .. s)),
             cmd .. " " .. s .. ": in the man page and docs/cli.md")
    end
end

-- The parser reads the table: an unknown option lists exactly its names
-- (but the internal ones),
-- and each kind parses as documented (through main, as a user types it).
local function run_main(argv)
    local path = os.tmpname()
    local saved = io.stderr
    local f = assert(io.open(path, "w"))
    io.stderr = f
    local ok, rc = pcall(cli.main, argv)
    io.stderr = saved
    f:close()
    local err = slurp(path)
    os.remove(path)
    assert(ok, rc)
    return rc, err
end
for _, cmd in ipairs(cli.COMMAND_ORDER) do
    local known = {}
    for _, o in ipairs(sorted(cli.COMMANDS[cmd].options)) do
        if not cli.COMMANDS[cmd].options[o].internal then
            known[#known + 1] = "--" .. o
        end
    end
    local rc, err = run_main{ cmd, "--no-such-option" }
    t:is(rc, 2, cmd .. " --no-such-option: exit 2")
    t:is(err, string.format("djinn-lua %s: unknown option --no-such-option " ..
        "(known: %s)\nTry 'djinn-lua help %s' for more information.\n",
        cmd, table.concat(known, ", "), cmd),
        cmd .. ": the error lists the table's options, byte for byte")
end
local rc, err = run_main{ "check", "--strict=yes", "x.yml" }
t:is(rc, 2, "a flag with =value: exit 2")
t:like(err, "^djinn%-lua check: %-%-strict takes no value\n",
       "a flag with =value: the message")
rc, err = run_main{ "check", "--stage" }
t:like(err, "^djinn%-lua check: %-%-stage needs a value\n",
       "a value option without its value: the message")
t:is(rc, 2, "a value option without its value: exit 2")
