-- Tests of djinn.manifest: every key, Djinn's defaults, every error and
-- warning with its FILE:LINE:COL.
local t = ...
local manifest = require "djinn.manifest"

local function parse(text)
    return manifest.parse(text, "m.yml")
end

-- Errors as a set of strings for exact comparisons.
local function has(list, s)
    for _, v in ipairs(list or {}) do
        if v == s then return true end
    end
    return false
end

local full = [[
namespace: team/ci
driver:
  type: qemu
  image: debian/stable
env:
  - GREETING=hello=world
  - EMPTY=
objects:
  - a/b/c
  - x/y => z
  - " spaced  =>  dest/file "
sources:
  - https://github.com/git/git
  - git@github.com:andrewpillar/mgrt.git v1.2 => src/mgrt
  - https://example.com/r.git main
stages:
  - build
  - test
  - empty
allow_failures:
  - test
jobs:
  - stage: build
    commands:
      - make
      - |
        echo one
        echo two
    artifacts:
      - bin/app
      - "out/*.log => logs/*"
  - stage: test
    name: unit
    commands: [make test]
  - stage: test
  - stage: build
]]

local m, w = parse(full)
t:ok(m ~= nil, "full manifest parses")
t:is(w, {}, "full manifest has no warnings")
t:is(m.namespace, "team/ci", "namespace")
t:is(m.driver, { type = "qemu", image = "debian/stable", arch = "x86_64" },
     "driver keys; qemu arch forced to x86_64")
t:is(m.env, { { key = "GREETING", value = "hello=world" },
              { key = "EMPTY", value = "" } }, "env split on the first =")
t:is(m.objects[1].src, "a/b/c", "object src")
t:is(m.objects[1].dst, "c", "object dst defaults to basename")
t:is({ m.objects[2].src, m.objects[2].dst }, { "x/y", "z" }, "x/y => z")
t:is({ m.objects[3].src, m.objects[3].dst }, { "spaced", "dest/file" },
     "passthrough parts are trimmed")
t:is({ m.objects[1].line, m.objects[1].col }, { 9, 5 }, "object position")
t:is({ m.sources[1].url, m.sources[1].ref, m.sources[1].dir },
     { "https://github.com/git/git", "", "git" }, "source defaults")
t:is({ m.sources[2].url, m.sources[2].ref, m.sources[2].dir },
     { "git@github.com:andrewpillar/mgrt.git", "v1.2", "src/mgrt" },
     "source with ref and dir")
t:is({ m.sources[3].ref, m.sources[3].dir }, { "main", "r" },
     "source with ref only: .git stripped from the dir")
t:is(m.stages, { "build", "test", "empty" }, "stages in order")
t:is(m.allow_failures, { "test" }, "allow_failures")
t:ok(m.allowed.test and not m.allowed.build, "allowed set")
t:is(#m.jobs, 4, "four jobs")
t:is({ m.jobs[1].name, m.jobs[2].name, m.jobs[3].name, m.jobs[4].name },
     { "build.1", "unit", "test.2", "build.2" },
     "default names: <stage>.<jobs already in the stage + 1>")
t:is(m.jobs[1].commands, { "make", "echo one\necho two\n" },
     "a block scalar is one command")
t:is(m.jobs[1].artifacts[2], { src = "out/*.log", dst = "logs/*", line = 31,
                               col = 9 }, "artifact with a glob")
t:is(m.jobs[3].commands, {}, "a job without commands")
t:is({ m.jobs[2].line, m.jobs[2].col }, { 32, 5 }, "job position")

-- Passthrough and source grammar on their own (Djinn's tests).
t:is(manifest.parse_passthrough("a/b/c"), { src = "a/b/c", dst = "c" },
     "Test_Passthrough a/b/c")
t:is(manifest.parse_passthrough("x/y => z"), { src = "x/y", dst = "z" },
     "Test_Passthrough x/y => z")
t:is(manifest.parse_passthrough("a => b => c"), { src = "a", dst = "b => c" },
     "split on the first =>")
t:is(manifest.parse_passthrough("dir/"), { src = "dir/", dst = "dir" },
     "basename ignores a trailing slash")
t:ok(manifest.parse_passthrough(" => x") == nil, "empty source refused")
t:is(manifest.parse_source("https://h/o/r.git a b => c d"),
     { url = "https://h/o/r.git", ref = "ab", dir = "cd" },
     "spaces removed after the URL (Djinn)")

-- Minimal manifest: os driver, empty lists.
m, w = parse("driver:\n  type: os\n")
t:ok(m ~= nil, "minimal manifest")
t:is({ #m.jobs, #m.stages, #m.env, #m.objects, #m.sources },
     { 0, 0, 0, 0, 0 }, "empty defaults")
t:is(w, {}, "no warnings")

-- Null values are empty lists.
m = parse("driver: {type: os}\nenv:\nobjects: ~\nstages: []\n")
t:ok(m ~= nil and #m.env == 0 and #m.objects == 0, "null lists are empty")

-- Warnings.
m, w = parse([[
driver:
  type: os
  image: nope
stages: [build, test, build]
allow_failures: [deploy]
colour: blue
jobs:
  - stage: build
    commands: [true]
    timeout: 5
  - stage: deploy
    commands: [true]
]])
t:ok(m ~= nil, "warnings do not fail the parse")
t:ok(has(w, 'm.yml:3:3: driver.image: unknown key for driver os ' ..
         '(ignored; known: type)'), "unknown driver key warns")
t:ok(has(w, 'm.yml:4:23: stages[3]: stage "build" is listed twice ' ..
         '(the first position, line 4, is kept)'), "duplicate stage warns")
t:ok(has(w, 'm.yml:5:18: allow_failures[1]: stage "deploy" is not listed ' ..
         'in stages (ignored)'), "allow_failures of an unlisted stage warns")
t:ok(has(w, 'm.yml:6:1: unknown key "colour" (ignored; known keys: ' ..
         'namespace, driver, env, objects, sources, stages, ' ..
         'allow_failures, jobs)'), "unknown top-level key warns")
t:ok(has(w, 'm.yml:10:5: jobs[1]: unknown key "timeout" (ignored; known ' ..
         'keys: stage, name, commands, artifacts)'), "unknown job key warns")
t:ok(has(w, 'm.yml:11:12: jobs[2]: stage "deploy" is not listed in ' ..
         'stages; the job is dropped (stages: build, test)'),
     "job of an unlisted stage warns")
t:is(#w, 6, "exactly six warnings")
t:is(#m.jobs, 1, "the job of the unlisted stage is dropped")
t:is(m.stages, { "build", "test" }, "duplicate stage keeps the first")

-- Errors: all of them, each with FILE:LINE:COL.
local _, e = parse([[
driver:
  type: docker
env:
  - NOVALUE
  - =x
  - [a]
stages: [test]
stages: [again]
objects: {a: b}
sources:
  - "   "
jobs:
  - stage: test
    name: dup
    commands: [true]
  - stage: test
    name: dup
  - stage: test
    commands:
      a: b
  - stage: test
    artifacts: [" => x"]
  - just a string
  - commands: [x]
]])
t:ok(_ == nil, "invalid manifest gives nil")
local want = {
    "m.yml:1:1: driver docker requires image",
    "m.yml:1:1: driver docker requires workspace",
}
-- The driver errors are reported at the driver mapping (line 2).
t:ok(has(e, "m.yml:2:3: driver docker requires image"),
     "driver docker requires image (Djinn's text without the typo)")
t:ok(has(e, "m.yml:2:3: driver docker requires workspace"),
     "driver docker requires workspace")
t:ok(not has(e, want[1]), "driver error is not at 1:1")
t:ok(has(e, 'm.yml:4:5: env[1]: "NOVALUE" has no "=" (expected KEY=VALUE)'),
     "env item without =")
t:ok(has(e, 'm.yml:5:5: env[2]: "=x" has an empty name (expected ' ..
         'KEY=VALUE)'), "env item with an empty name")
t:ok(has(e, "m.yml:6:5: env[3]: expected a string, got a list"),
     "env item of the wrong type")
t:ok(has(e, 'm.yml:8:1: duplicate key "stages" (first at line 7:1)'),
     "duplicate mapping key")
t:ok(has(e, "m.yml:9:10: objects: expected a list of strings, got a " ..
         "mapping"), "objects of the wrong type")
t:ok(has(e, "m.yml:11:5: sources[1]: empty source (expected URL [REF] " ..
         "[=> DIR])"), "empty source")
t:ok(has(e, 'm.yml:17:11: jobs[2]: duplicate job name "dup" in stage test ' ..
         '(first at line 14:11)'), "duplicate job name in a stage")
t:ok(has(e, "m.yml:20:7: jobs[3].commands: expected a list of strings, " ..
         "got a mapping"), "commands of the wrong type (the issue's example)")
t:ok(has(e, 'm.yml:22:17: jobs[4].artifacts[1]: " => x" has an empty ' ..
         'source (expected SRC or SRC => DST)'), "empty artifact source")
t:ok(has(e, "m.yml:23:5: jobs[5]: expected a mapping with stage, name, " ..
         "commands, artifacts; got a string"), "job that is not a mapping")
t:ok(has(e, "m.yml:24:5: jobs[6]: the job has no stage (add stage: NAME, " ..
         "one of the names under stages)"), "job without a stage")
t:is(#e, 13, "all thirteen errors are reported")
t:is(e[1], 'm.yml:2:3: driver docker requires image', "errors sorted by position")
for _, msg in ipairs(e) do
    t:like(msg, "^m%.yml:%d+:%d+: ", "error has FILE:LINE:COL: " .. msg)
end

-- Driver validation, one by one.
local function first_err(text)
    local r, errs = parse(text)
    return r == nil and errs[1] or nil
end
t:is(first_err("driver:\n  type: qemu\n"),
     "m.yml:2:3: driver qemu requires image", "qemu requires image")
t:is(first_err("driver:\n  type: ssh\n"),
     "m.yml:2:3: driver ssh requires address", "ssh requires address")
t:is(first_err("driver:\n  type: ssh\n  address: ''\n"),
     "m.yml:2:3: driver ssh requires address", "an empty value is missing")
t:is(first_err("driver:\n  type: lxc\n"),
     "m.yml:2:9: invalid driver specified lxc (allowed: docker, qemu, " ..
     "ssh, os)", "unknown driver type")
t:like(first_err("driver:\n  image: x\n"),
       "^m%.yml:2:3: invalid driver specified", "missing driver type")
t:like(first_err("stages: []\n"),
       "^m%.yml:1:1: invalid driver specified %(the manifest has no driver",
       "missing driver")
t:is(first_err("driver: os\n"),
     "m.yml:1:9: driver: expected a mapping, got a string",
     "driver of the wrong type")
t:is(first_err("driver:\n  type: [os]\n"),
     "m.yml:2:9: driver.type: expected a string, got a list",
     "driver value of the wrong type")
m, w = parse("driver:\n  type: qemu\n  image: x\n  arch: aarch64\n")
t:is(m and m.driver.arch, "x86_64", "qemu arch is forced")
t:is(w, { 'm.yml:2:3: driver.arch: "aarch64" is not supported; qemu runs ' ..
          'x86_64 (as Djinn, arch is forced to x86_64)' }, "with a warning")
m = parse("driver:\n  type: ssh\n  address: 10.0.0.1:22\n")
t:is(m and m.driver.address, "10.0.0.1:22", "ssh address")
m = parse("driver:\n  type: docker\n  image: alpine\n  workspace: /w\n")
t:is(m and m.driver, { type = "docker", image = "alpine", workspace = "/w" },
     "docker driver")

-- The top level and the YAML layer.
t:is(first_err(""), "m.yml:1:1: the manifest is empty (expected a mapping " ..
     "with driver, stages, jobs ...)", "empty manifest")
t:is(first_err("- a\n- b\n"), "m.yml:1:1: expected a mapping at the top " ..
     "level, got a list", "a list at the top level")
t:like(first_err("driver: {type: os\n"), "^m%.yml:%d+:%d+: ",
       "YAML syntax error has FILE:LINE:COL")
t:is(first_err("driver: {type: os}\njobs: {a: 1}\n"),
     "m.yml:2:7: jobs: expected a list of jobs, got a mapping",
     "jobs of the wrong type")
t:is(first_err("driver: {type: os}\nstages: [build]\njobs:\n" ..
               "  - stage: build\n    name: [x]\n"),
     "m.yml:5:11: jobs[1].name: expected a string, got a list",
     "job name of the wrong type")

-- Aliases work (the same node twice).
m = parse("driver: {type: os}\nstages: [a]\njobs:\n" ..
          "  - &j {stage: a, commands: [x]}\n  - *j\n")
t:is(m and { m.jobs[1].name, m.jobs[2].name }, { "a.1", "a.2" },
     "an aliased job is a second job with its own default name")
m = parse("driver: {type: os}\nstages: [a]\njobs:\n" ..
          "  - {stage: a, commands: &c [x, y]}\n" ..
          "  - {stage: a, commands: *c}\n")
t:is(m and m.jobs[2].commands, { "x", "y" }, "alias of a command list")

-- from_table: plain Lua tables get the same validation.
m = manifest.from_table({
    driver = { type = "os" }, stages = { "s" },
    jobs = { { stage = "s", commands = { "true" } } },
    env = { "A=1" },
})
t:is(m and m.jobs[1].name, "s.1", "from_table")
local r2, e2 = manifest.from_table({ driver = { type = "os" }, env = { "A" } })
t:ok(r2 == nil and e2[1]:find('env%[1%]: "A" has no "="'),
     "from_table validates")

-- load() of a missing file.
local r3, e3 = manifest.load("/nonexistent/x.yml")
t:ok(r3 == nil and e3[1]:find("^/nonexistent/x%.yml: cannot read"),
     "load of a missing file")
