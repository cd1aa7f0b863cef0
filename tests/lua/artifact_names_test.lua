-- Where collected artifacts go (pipeline.collect_artifacts with a real
-- store on disk, the driver's glob and get faked).
--
-- 2026-12-04 (issue 11, item 4.3): `artifacts: [out/*.log]` collected
-- a.log.log: the DST not written defaulted to basename(SRC) = "*.log",
-- whose "*" was then replaced by each match's name (Djinn does the same).
-- A DST not written now keeps each match's own name; a written DST with
-- "*" keeps Djinn's replacement.
local t = ...
local fs = require "djinn.fs"
local pipeline = require "djinn.pipeline"
local manifest = require "djinn.manifest"

-- Collect the artifacts of a one-job manifest whose build environment
-- holds `files` (name -> content); returns the log lines and the store.
local function collect(artifacts_yaml, files)
    local dir = t:tmpdir()
    local m, msgs = manifest.parse("driver: {type: os}\nstages: [s]\n" ..
        "jobs:\n  - stage: s\n    artifacts:\n" .. artifacts_yaml, "a.yml")
    assert(m, msgs and table.concat(msgs, "\n"))
    local names = {}
    for name in pairs(files) do names[#names + 1] = name end
    table.sort(names)
    local lines = {}
    local lg = { line = function(_, l) lines[#lines + 1] = l end }
    local store = pipeline.new_store(dir, fs)
    pipeline.collect_artifacts(m.jobs[1], lg, store,
        function(src)
            -- a glob over the fake environment: "*" matches within a name
            local pat = "^" .. src:gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0")
                :gsub("%*", "[^/]*") .. "$"
            local out = {}
            for _, n in ipairs(names) do
                if n:match(pat) then out[#out + 1] = n end
            end
            return out
        end,
        function(path, host)
            return fs.writefile(host, files[path])
        end)
    return lines, dir
end

local files = { ["out/a.log"] = "a\n", ["out/b.log"] = "b\n",
                ["out/c.txt"] = "c\n", ["out/s*r.log"] = "star\n" }

local lines, dir = collect("      - out/*.log\n", files)
t:is(lines, { "Collecting artifact out/a.log => a.log",
              "Collecting artifact out/b.log => b.log",
              "Collecting artifact out/s*r.log => s*r.log" },
     "out/*.log: each match keeps its own name")
t:is(fs.readfile(dir .. "/a.log"), "a\n", "a.log collected as a.log")
t:ok(not fs.exists(dir .. "/a.log.log"), "no a.log.log")
t:is(fs.readfile(dir .. "/s*r.log"), "star\n",
     "a match with * in its own name keeps it as it is")

lines, dir = collect('      - "out/*.log =>"\n', files)
t:is(lines[1], "Collecting artifact out/a.log => a.log",
     '"SRC =>" (nothing after it) is a DST not written')
t:ok(fs.exists(dir .. "/b.log") and not fs.exists(dir .. "/b.log.log"),
     "... b.log too")

lines, dir = collect('      - "out/*.log => logs/*"\n' ..
                     '      - "out/*.txt => copy-*.bak"\n', files)
t:is(lines, { "Collecting artifact out/a.log => logs/a.log",
              "Collecting artifact out/b.log => logs/b.log",
              "Collecting artifact out/s*r.log => logs/s*r.log",
              "Collecting artifact out/c.txt => copy-c.txt.bak" },
     "a written DST with * keeps Djinn's replacement")
t:is(fs.readfile(dir .. "/copy-c.txt.bak"), "c\n", "copy-c.txt.bak")

lines, dir = collect("      - out/c.txt => kept.txt\n      - out/a.log\n",
                     files)
t:is(lines, { "Collecting artifact out/c.txt => kept.txt",
              "Collecting artifact out/a.log => a.log" },
     "plain sources: the written DST, or the basename")

-- Artifacts built by hand (no `named`) keep the old meaning: dst as given.
local hand = t:tmpdir()
local hl = {}
pipeline.collect_artifacts({ artifacts = { { src = "x/*.log", dst = "*" } } },
    { line = function(_, l) hl[#hl + 1] = l end },
    pipeline.new_store(hand, fs),
    function() return { "x/a.log" } end,
    function(_, host) return fs.writefile(host, "h") end)
t:is(hl, { "Collecting artifact x/a.log => a.log" },
     "an artifact without `named` has its DST's * replaced")

-- An empty source names no file: an artifact error, the driver not asked.
local asked = false
hl = {}
pipeline.collect_artifacts({ artifacts = { manifest.parse_passthrough("") } },
    { line = function(_, l) hl[#hl + 1] = l end },
    pipeline.new_store(t:tmpdir(), fs),
    function() asked = true; return {} end,
    function() return true end)
t:is(hl, { "artifact error: an empty source names no file (expected SRC " ..
           "or SRC => DST)" }, "an empty source is an artifact error")
t:ok(not asked, "... without asking the driver to glob it")
