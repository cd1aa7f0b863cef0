-- manifest_fast_test.lua - the one-pass manifest load (yaml.manifest_fast,
-- issue 13) against the full load (yaml.parse_packed and the validator).
-- With manifest.loader = "both" every parse runs both loads and raises
-- when the one-pass load's result or messages differ from the full
-- load's; each case below also says which load must give the result: the
-- one-pass load for what loads without a message, the full load for
-- everything it declines (each construct it declines has a case). The
-- other manifest tests (manifest_test, djinn_manifests_test,
-- manifest_names_test) and the manifest fuzzer run with "both" as well.
local t = ...
local manifest = require "djinn.manifest"
local yaml = require "djinn.yaml"

manifest.loader = "both"

local head = "driver:\n  type: os\nstages: [build, test]\n"

-- Parse under "both": the loader used, or "differs: ..." when the two
-- loads disagree.
local function which(text)
    local ok, err = pcall(manifest.parse, text, "f.yml")
    if not ok then return "differs: " .. tostring(err) end
    return manifest.last_loader
end

local fast = {
    { "a plain manifest", head .. [[
env: [A=1, B=x=y, C=]
jobs:
- stage: build
  name: one
  commands:
  - make
  - make check
  artifacts:
  - out/a.log => logs/a.log
  - out/b.log
- stage: test
  commands: [true]
]] },
    { "quoted keys and values, tagged scalars", head .. [[
"jobs":
- 'stage': "build"
  name: !!str 42
  commands: [!!str 1, 'two', "three"]
]] },
    { "a null name, commands and artifacts: defaults", head .. [[
jobs:
- stage: build
  name:
  commands:
  artifacts: ~
- stage: build
  name: ""
]] },
    { "artifacts: no DST, an empty DST, globs, trailing slashes", head .. [[
jobs:
- stage: build
  artifacts:
  - "out/dir/"
  - "out/x.log =>"
  - " spaced  =>  dest/file "
  - out/*.log => logs/*.txt
  - a=>b
  - "///"
  - "x => ."
  - "x => ./y/"
]] },
    { "literal and folded commands", head .. [[
jobs:
- stage: test
  commands:
  - |
    echo one
    echo two
  - >
    folded
    text
]] },
    { "warnings outside the jobs", head .. [[
unknown: 1
allow_failures: [nope]
jobs:
- stage: build
]] },
    { "errors outside the jobs", [[
driver: {type: nope}
stages: [build]
jobs:
- stage: build
]] },
    { "no jobs key, null jobs", head .. "jobs:\n" },
    { "a document start and end", "---\n" .. head .. "jobs: []\n...\n" },
    { "namespace, objects, sources", head .. [[
namespace: team/ci
objects: [a/b, c => d]
sources: [https://example.com/r.git main => src]
jobs: [{stage: build, commands: [x]}]
]] },
}

local full = {
    { "an anchor and an alias", head .. [[
x: &c [a, b]
jobs:
- stage: build
  commands: *c
]] },
    { "a merge key", head .. [[
x: &d {stage: build}
jobs:
- <<: *d
  name: m
]] },
    { "a tag on a job", head .. "jobs:\n- !!map {stage: build}\n" },
    { "an unknown job key", head .. "jobs:\n- stage: build\n  comands: [x]\n" },
    { "a repeated job key", head .. "jobs:\n- stage: build\n  stage: test\n" },
    { "a null job", head .. "jobs:\n- \n- stage: build\n" },
    { "a job that is a string", head .. "jobs:\n- build\n" },
    { "a null stage", head .. "jobs:\n- stage: ~\n" },
    { "a job without a stage", head .. "jobs:\n- name: x\n" },
    { "a stage that is a list", head .. "jobs:\n- stage: [build]\n" },
    { "a stage not listed", head .. "jobs:\n- stage: deploy\n" },
    { "a duplicate job name", head ..
        "jobs:\n- {stage: build, name: a}\n- {stage: build, name: a}\n" },
    { "a duplicate default name", head ..
        "jobs:\n- {stage: build, name: build.2}\n- {stage: build}\n" },
    { "a null command", head .. "jobs:\n- stage: build\n  commands: [a, ~]\n" },
    { "a command that is a list", head ..
        "jobs:\n- stage: build\n  commands: [[a]]\n" },
    { "commands as a string", head .. "jobs:\n- stage: build\n  commands: x\n" },
    { "commands as a mapping", head ..
        "jobs:\n- stage: build\n  commands: {a: b}\n" },
    { "an artifact with an empty source", head ..
        "jobs:\n- stage: build\n  artifacts: [' => x']\n" },
    { "an absolute artifact destination", head ..
        "jobs:\n- stage: build\n  artifacts: ['a => /etc/x']\n" },
    { "an artifact destination with ..", head ..
        "jobs:\n- stage: build\n  artifacts: ['a => x/../../y']\n" },
    { "an env item without =", head .. "env: [A]\njobs: []\n" },
    { "an env item with an empty name", head .. "env: [=1]\njobs: []\n" },
    { "an env item with a NUL", head .. "env: [\"A=\\0\"]\njobs: []\n" },
    { "a null env item", head .. "env: [A=1, ~]\njobs: []\n" },
    { "a repeated top-level key", head .. "jobs: []\njobs: []\n" },
    { "a top-level key that is a list", head .. "[a]: 1\n" },
    { "a second document", head .. "jobs: []\n---\nx: 1\n" },
    { "a YAML error", head .. "jobs: [\n" },
    { "a list at the top", "- a\n" },
    { "an empty document", "" },
    { "a tag on a list", head .. "env: !!seq [A=1]\n" },
    { "more than 16 top-level keys", head .. (function()
        local l = {}
        for i = 1, 16 do l[i] = "k" .. i .. ": 1\n" end
        return table.concat(l)
    end)() },
}

for _, c in ipairs(fast) do
    t:is(which(c[2]), "fast", "one-pass load, same as the full: " .. c[1])
end
for _, c in ipairs(full) do
    t:is(which(c[2]), "full", "declined, the full load says it: " .. c[1])
end

-- Nesting deeper than the one-pass load follows (32), under the YAML
-- limit (64): the full load.
local deep = head .. "x: " .. string.rep("[", 40) .. string.rep("]", 40) ..
    "\n"
t:is(which(deep), "full", "declined: nesting deeper than 32")

-- The size limit: the one-pass load declines, the full load says it.
local lm, lerr = manifest.parse(head, "s.yml", { max_manifest_size = 10 })
t:ok(lm == nil and manifest.last_loader == "full" and
     lerr[1]:find("max_manifest_size", 1, true) ~= nil,
     "over max_manifest_size: the full load's message")

-- The one-pass load's own shape.
local root, rm, shared = yaml.manifest_fast(head .. [[
env: [A=1]
jobs:
- stage: build
  name: n
  commands: [c]
  artifacts: [s => d]
]])
t:ok(type(root) == "table" and root.kind == "map" and shared == 0 and
     rm == (1 << 36 | 1 << 7), "manifest_fast: the root map and its meta")
local jobs = root and root.values[4]
t:is(jobs, { kind = "seq", fast = true, items = { {
    stage = "build", name = "n", commands = { "c" }, line = 6, col = 3,
    artifacts = { { src = "s", dst = "d", named = true, line = 9,
                    col = 15 } } } } }, "manifest_fast: the jobs as loaded")
t:is(root and root.values[3], { kind = "seq", fast = true,
     items = { { key = "A", value = "1" } } }, "manifest_fast: env split")
local none, why = yaml.manifest_fast(head .. "jobs:\n- stage: build\n  x: 1\n")
t:is({ none, why }, { nil, "an unknown job key" },
     "manifest_fast: nil and what it declined")

-- The large manifests of bench/manifest-load.sh (tests/gen_manifest.awk's
-- shapes) take the one-pass load: a guard that the fast path is not lost
-- to a change that makes them decline, without a timing.
local function gen(kind, n)
    local l = { "driver:\n  type: os\n" }
    if kind == "env" then
        l[#l + 1] = "env:\n"
        for i = 1, n do
            l[#l + 1] = string.format("- VAR_%d=value number %d\n", i, i)
        end
    end
    l[#l + 1] = "stages:\n- build\n- test\njobs:\n"
    local jobs = kind == "jobs" and n or 2
    for i = 1, jobs do
        l[#l + 1] = string.format("- stage: %s\n  name: job-%d\n  commands:\n",
                                  i % 2 == 1 and "build" or "test", i)
        local cmds = kind == "cmds" and n or 3
        for c = 1, cmds do
            l[#l + 1] = string.format("  - echo \"job %d step %d\"; make\n",
                                      i, c)
        end
        l[#l + 1] = string.format("  artifacts:\n  - out/job-%d.log => " ..
                                  "logs/job-%d.log\n", i, i)
    end
    return table.concat(l)
end
for _, k in ipairs({ { "jobs", 2000 }, { "cmds", 2000 }, { "env", 2000 } }) do
    local text = gen(k[1], k[2])
    t:is(which(text), "fast", string.format("generated %s %d: one-pass, " ..
         "same as the full load", k[1], k[2]))
end

-- manifest.load reads a file itself (yaml.manifest_fast_file: one copy of
-- the bytes, no Lua string) and gives what manifest.parse gives the text;
-- what it cannot take (not a regular file, over the size limit, missing)
-- is read as before, with the same messages.
local fs = require "djinn.fs"
local proc = require "djinn.proc"
local dir = t:tmpdir()
local text = gen("jobs", 50)
local path = dir .. "/m.yml"
local f = assert(io.open(path, "wb"))
f:write(text)
f:close()
local lm1, lw1 = manifest.load(path)
t:is(manifest.last_loader, "fast", "load: the one-pass load over the file")
local pm, pw = manifest.parse(text, path)
t:is({ lm1, lw1 }, { pm, pw }, "load: the same result as parse of the text")
local froot, fwhy = yaml.manifest_fast_file(path)
local troot = yaml.manifest_fast(text)
t:ok(froot ~= nil and fwhy ~= nil, "manifest_fast_file: a root and its meta")
t:is(froot, troot, "manifest_fast_file: the tree manifest_fast gives")
t:is({ yaml.manifest_fast_file(dir) }, { nil, "not a regular file" },
     "manifest_fast_file: a directory is declined")
t:is({ yaml.manifest_fast_file(path, { max_size = 10 }) },
     { nil, "over the size limit" },
     "manifest_fast_file: over max_size is declined")
t:is({ yaml.manifest_fast_file(dir .. "/none.yml") },
     { nil, "the file cannot be opened" },
     "manifest_fast_file: a missing file is declined")
local none, nerr = manifest.load(dir .. "/none.yml")
t:ok(none == nil and manifest.last_loader == "full" and
     nerr[1]:find("cannot read the manifest", 1, true) ~= nil,
     "load of a missing file: the full load's message")
local big, berr = manifest.load(path, { max_manifest_size = 100 })
t:ok(big == nil and berr[1]:find("is larger than 100 bytes", 1, true),
     "load over max_manifest_size: the size message, nothing parsed: " ..
     tostring(berr and berr[1]))
-- A pipe: read as before (up to the limit), the one-pass load on the text.
local fifo = dir .. "/fifo.yml"
local mk = proc.spawn{ argv = { "mkfifo", fifo } }
t:ok(mk and mk:wait(10) == "exit", "mkfifo")
local writer = proc.spawn{ argv = { "sh", "-c", 'cat "$1" > "$2"', "sh", path,
                                    fifo } }
local qm = manifest.load(fifo)
t:ok(qm ~= nil and #qm.jobs == 50 and manifest.last_loader == "fast",
     "load of a named pipe: read, then the one-pass load of the text")
if writer then writer:wait(10) end
t:ok(fs.stat(dir) ~= nil, "the test directory is there")
