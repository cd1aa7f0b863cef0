-- Tests of djinn.manifest: every key, Djinn's defaults, every error and
-- warning with its FILE:LINE:COL.
local t = ...
local manifest = require "djinn.manifest"
-- Both loads, the one-pass and the full: they must agree on every case
-- (manifest_fast_test.lua).
manifest.loader = "both"

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
                               col = 9, named = true }, "artifact with a glob")
t:is(m.jobs[3].commands, {}, "a job without commands")
t:is({ m.jobs[2].line, m.jobs[2].col }, { 32, 5 }, "job position")

-- Passthrough and source grammar on their own (Djinn's tests).
t:is(manifest.parse_passthrough("a/b/c"),
     { src = "a/b/c", dst = "c", named = false }, "Test_Passthrough a/b/c")
t:is(manifest.parse_passthrough("x/y => z"),
     { src = "x/y", dst = "z", named = true }, "Test_Passthrough x/y => z")
t:is(manifest.parse_passthrough("a => b => c"),
     { src = "a", dst = "b => c", named = true }, "split on the first =>")
t:is(manifest.parse_passthrough("dir/"),
     { src = "dir/", dst = "dir", named = false },
     "basename ignores a trailing slash")
-- 2026-12-04 (issue 11, section 2): Djinn loads "SRC => " (its own API
-- client sends it for an artifact without a name) and " => x"; we
-- refused both.
t:is(manifest.parse_passthrough("/etc/hosts => "),
     { src = "/etc/hosts", dst = "hosts", named = false },
     "an empty DST after => is a DST not written")
t:is(manifest.parse_passthrough(" => x"), { src = "", dst = "x", named = true },
     "an empty source loads (Djinn's reading)")
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

-- A misspelt key names the nearest known keys (issue 11, item 4.1).
do
    local m2, w2 = manifest.parse([[
driver: {type: os}
stgaes: [build]
stages: [build]
jobs:
  - stage: build
    comands: [true]
    commands: [true]
]], "t.yml")
    t:ok(m2 ~= nil, "misspelt keys: still only warnings")
    t:ok(has(w2, 't.yml:6:5: jobs[1]: unknown key "comands" (ignored; did ' ..
             'you mean commands? known keys: stage, name, commands, ' ..
             'artifacts)'), "comands: did you mean commands?")
    t:ok(has(w2, 't.yml:2:1: unknown key "stgaes" (ignored; did you mean ' ..
             'stages? known keys: namespace, driver, env, objects, ' ..
             'sources, stages, allow_failures, jobs)'),
         "stgaes: did you mean stages?")
end
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
    artifacts: ["../x => /abs"]
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
t:ok(has(e, 'm.yml:22:17: jobs[4].artifacts[1]: destination "/abs": ' ..
         'absolute paths are not allowed (artifact destinations are ' ..
         'relative to the artifacts directory and stay inside it)'),
     "absolute artifact destination")
t:ok(has(e, "m.yml:23:5: jobs[5]: expected a mapping with stage, name, " ..
         "commands, artifacts; got a string"), "job that is not a mapping")
t:ok(not has(e, "m.yml:24:5: jobs[6]: the job has no stage (add stage: " ..
         "NAME, one of the names under stages)"),
     "a job without a stage is not an error (Djinn drops it)")
t:is(#e, 12, "all twelve errors are reported")
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

---------------------------------------------------------------------------
-- 2026-12-04 (issue 11, section 2): manifests Djinn loads and we refused,
-- each found in Djinn's own repositories (tests/manifests/djinn/).
---------------------------------------------------------------------------
-- namespace: "" is none: Djinn's API client always sends the key.
m, w = parse('namespace: ""\ndriver: {type: os}\n')
t:ok(m ~= nil, 'namespace: "" loads')
t:is(m and m.namespace, nil, 'namespace: "" is no namespace')
t:is(w, {}, "... without a warning")
t:ok(parse("namespace: ~\ndriver: {type: os}\n") ~= nil, "null namespace")
t:like(first_err('namespace: "a-b"\ndriver: {type: os}\n') or "",
       "^m%.yml:1:12: namespace: segment 1 'a%-b' of 'a%-b'",
       "a bad one still refused (the registry's message)")

-- An object whose source is "." loads (a warning); its placement fails at
-- run time, as in Djinn.
m, w = parse("driver: {type: os}\nobjects: [., ./ => x, ok.txt]\n")
t:ok(m ~= nil, 'an object whose source is "." loads')
t:is(m and { m.objects[1].src, m.objects[2].src }, { ".", "./" },
     "... with its source as written")
t:is(w, { 'm.yml:2:11: objects[1]: source "." names the objects directory ' ..
          'itself; it will not be placed (objects are files inside it)',
          'm.yml:2:14: objects[2]: source "./" names the objects directory ' ..
          'itself; it will not be placed (objects are files inside it)' },
     "... with a warning")
t:like(first_err("driver: {type: os}\nobjects: [../x]\n") or "",
       'objects%[1%]: source "%.%./x": "%.%." is not allowed',
       "an object source climbing out is still refused")
t:like(first_err("driver: {type: os}\nobjects: [/etc/passwd]\n") or "",
       'objects%[1%]: source "/etc/passwd": absolute paths are not allowed',
       "an absolute object source is still refused")

-- Artifacts as Djinn's client sends them ("SRC => ", from a map with
-- empty names), absolute sources (Djinn's os driver test).
m, w = parse([[
driver: {type: os}
stages: [collect]
jobs:
  - stage: collect
    artifacts:
      - '/etc/os-release => '
      - /etc/hosts
      - out/*.log
      - "out/*.log => logs/*"
      - .
]])
t:ok(m ~= nil, "artifacts with empty DSTs and absolute SRCs load")
local arts = {}
for i, a in ipairs(m and m.jobs[1].artifacts or {}) do
    arts[i] = { a.src, a.dst, a.named }
end
t:is(arts, { { "/etc/os-release", "os-release", false },
             { "/etc/hosts", "hosts", false },
             { "out/*.log", "*.log", false },
             { "out/*.log", "logs/*", true },
             { ".", ".", false } }, "their reading")
t:is(w, {}, "no warnings")

-- An empty source is a warning (Djinn loads it; nothing is placed or
-- collected).
m, w = parse("driver: {type: os}\nobjects: [' => x']\nstages: [s]\n" ..
             "jobs:\n  - {stage: s, artifacts: ['']}\n")
t:ok(m ~= nil, "empty passthrough sources load")
t:is(w, { 'm.yml:2:11: objects[1]: " => x" has an empty source; nothing ' ..
          'will be placed (expected SRC or SRC => DST)',
          'm.yml:5:28: jobs[1].artifacts[1]: "" has an empty source; ' ..
          'nothing will be collected (expected SRC or SRC => DST)' },
     "... with warnings")

-- A job without a stage, or a null job, is dropped with a warning (Djinn
-- drops it silently).
m, w = parse("driver: {type: os}\nstages: [s]\njobs:\n" ..
             "  - commands: [x]\n  - ~\n  - {stage: s, commands: [y]}\n")
t:ok(m ~= nil, "a job without a stage loads")
t:is(m and #m.jobs, 1, "... and is dropped")
t:is(m and m.jobs[1].name, "s.1", "the next job is s.1")
t:is(w, { "m.yml:4:5: jobs[1]: the job has no stage; it is dropped (add " ..
          "stage: NAME, one of the names under stages)",
          "m.yml:5:5: jobs[2]: the job is empty (null); it is dropped" },
     "... with a warning each")
t:like(first_err("driver: {type: os}\nstages: [s]\njobs:\n" ..
                 "  - {stage: [s]}\n") or "", "jobs%[1%]%.stage: expected a " ..
       "string, got a list", "a stage of the wrong type is still an error")

-- Null list items are "" (yaml.v2), not the text "~" or "null".
m = parse("driver: {type: os}\nstages: [s]\njobs:\n" ..
          "  - {stage: s, commands: [~, null, '~']}\n")
t:is(m and m.jobs[1].commands, { "", "", "~" }, "null commands are empty")

-- YAML merge keys, read as Djinn's yaml.v2 reads them (before, "<<" was an
-- unknown key and the merged fields were lost).
m, w = parse([[
driver: {type: os}
stages: [s, t]
x-job: &job
  stage: s
  commands: [make]
x-art: &art
  artifacts: [a.out]
  stage: t
jobs:
  - <<: *job
    name: plain
  - <<: [*job, *art]
    name: list
  - <<: *job
    commands: [after]
  - commands: [before]
    <<: *job
    name: before
]])
t:ok(m ~= nil, "merge keys load")
local js = {}
for i, j in ipairs(m and m.jobs or {}) do
    js[i] = { j.stage, j.name, table.concat(j.commands, ";"),
              j.artifacts[1] and j.artifacts[1].src or "-" }
end
t:is(js, { { "s", "plain", "make", "-" },
           { "s", "list", "make", "a.out" },
           { "s", "s.3", "after", "-" },
           { "s", "before", "make", "-" } },
     "merged fields; a list's earlier mapping wins; later keys replace " ..
     "merged ones, merged ones replace earlier keys (yaml.v2's order)")
t:is(w, { 'm.yml:3:1: unknown key "x-job" (ignored; known keys: ' ..
          'namespace, driver, env, objects, sources, stages, ' ..
          'allow_failures, jobs)',
          'm.yml:6:1: unknown key "x-art" (ignored; known keys: ' ..
          'namespace, driver, env, objects, sources, stages, ' ..
          'allow_failures, jobs)' }, "only the anchors' keys warn")
m = parse("x: &d {type: os}\ndriver:\n  <<: *d\n")
t:is(m and m.driver, { type = "os" }, "a merge in the driver mapping")
local function all_errs(text)
    local r, errs = parse(text)
    return r == nil and table.concat(errs, "\n") or ""
end
t:like(all_errs("driver:\n  <<: [os]\n"),
       "m%.yml:2:8: driver: <<%[1%]: a merge takes mappings, got a string",
       "a merge of something else is an error")
t:like(all_errs("driver:\n  <<: os\n"),
       "m%.yml:2:7: driver: <<: a merge takes a mapping or a list of " ..
       "mappings %(<<: %*name%), got a string", "... a scalar too")
t:ok(parse("driver:\n  <<: []\n  type: os\n") ~= nil,
     "an empty merge list merges nothing (yaml.v2)")
m, w = parse("driver: {type: os, '<<': x}\n")
t:ok(m ~= nil and w[1]:find('driver%.<<: unknown key') ~= nil,
     "a quoted '<<' is an ordinary key")
t:like(first_err("driver:\n  type: os\n  type: os\n") or "",
       'm.yml:3:3: driver: duplicate key "type" %(first at line 2:3%)',
       "a key written twice is still an error")
m = parse("x: &d {type: os}\ndriver:\n  <<: *d\n  type: os\n")
t:ok(m ~= nil, "a written key over a merged one is not a duplicate")

-- Merges of merges are bounded (10 levels of 10 merges would walk 10^10
-- keys): the YAML layer's limit on alias expansion refuses them.
local bomb = { "driver: {type: os}", "a0: &a0 {k: v}" }
for i = 1, 10 do
    bomb[#bomb + 1] = string.format("a%d: &a%d {<<: [%s]}", i, i,
        ("*a" .. (i - 1) .. ","):rep(10):sub(1, -2))
end
bomb[#bomb + 1] = "jobs:\n  - <<: *a10"
t:like(all_errs(table.concat(bomb, "\n") .. "\n"),
       "m%.yml:%d+:%d+: alias expansion exceeds 1000000 nodes " ..
       "%(the limit is max_manifest_aliases: raise it with `limits { " ..
       "max_manifest_aliases 10000000 }` in driver%.conf, 0 = no limit%)",
       "a merge bomb is refused, quickly, naming the limit and its key")

-- 2026-12-04: Djinn reads the first YAML document of a manifest and
-- ignores the rest; we refused the file.
m, w = parse("---\ndriver: {type: os}\nstages: [a]\n" ..
             "jobs: [{stage: a, commands: [x]}]\n---\ndriver: {type: qemu}\n")
t:ok(m ~= nil, "a second YAML document does not refuse the manifest")
t:is(m and m.driver, { type = "os" }, "the first document is the manifest")
t:is(w, { "m.yml:5:1: a second YAML document starts here; it is ignored " ..
          "(a manifest is the first document, as in Djinn)" },
     "... with a warning at the second one")
t:like(first_err("---\n---\ndriver: {type: os}\n") or "",
       "^m%.yml:2:1: the manifest is empty",
       "an empty first document is an empty manifest (Djinn: no driver)")

-- Issue 13: the packed tree. An aliased list gives each job its own
-- table (a job's commands can be changed without changing another's).
m = parse("x: &c [a, b]\ndriver: {type: os}\nstages: [s]\n" ..
          "jobs:\n- {stage: s, commands: *c}\n- {stage: s, commands: *c}\n")
t:ok(m and m.jobs[1].commands ~= m.jobs[2].commands and
     #m.jobs[2].commands == 2, "an aliased command list is copied per job")
-- Null items, non-string items and duplicates keep their messages and
-- positions in the fast paths.
t:is(all_errs("driver: {type: os}\nstages: [s]\njobs:\n- stage: s\n" ..
              "  commands: [a, [b], ~]\n  artifacts: [x => /abs]\n"),
     "m.yml:5:17: jobs[1].commands[2]: expected a string, got a list\n" ..
     "m.yml:6:15: jobs[1].artifacts[1]: destination \"/abs\": absolute " ..
     "paths are not allowed (artifact destinations are relative to the " ..
     "artifacts directory and stay inside it)",
     "errors in a job's lists, at their line:column")
m = parse("driver: {type: os}\nstages: [s]\njobs:\n- stage: s\n" ..
          "  commands: [a, ~, '']\n")
t:is(m and m.jobs[1].commands, { "a", "", "" }, "a null command is \"\"")

-- The limits (driver.conf limits { max_manifest_size;
-- max_manifest_aliases }, passed by djinn.check).
local M = require "djinn.manifest"
local text = "driver: {type: os}\nstages: [s]\njobs: [{stage: s, commands: [x]}]\n"
local lm, lerr = M.parse(text, "s.yml", { max_manifest_size = 20 })
t:is(lm == nil and lerr[1], "s.yml: the manifest is larger than 20 bytes " ..
     "(" .. #text .. " bytes; the limit is max_manifest_size: raise it with " ..
     "`limits { max_manifest_size 1MB }` in driver.conf)",
     "parse over max_manifest_size: the key and how to raise it")
lm = M.parse(text, "s.yml", { max_manifest_size = #text })
t:ok(lm ~= nil, "a manifest of exactly max_manifest_size loads")
local atext = "x: &c [a, b, c]\n" .. text ..
    "y: [*c, *c, *c]\n"
lm, lerr = M.parse(atext, "a.yml", { max_manifest_aliases = 8 })
t:like(lm == nil and lerr[1] or "", "^a%.yml:5:13: alias expansion " ..
       "exceeds 8 nodes %(the limit is max_manifest_aliases: raise it with " ..
       "`limits { max_manifest_aliases 80 }` in driver%.conf, 0 = no limit%)$",
       "max_manifest_aliases: the alias past it, the key, how to raise it")
lm = M.parse(atext, "a.yml", { max_manifest_aliases = 0 })
t:ok(lm ~= nil, "max_manifest_aliases 0 is no limit")
t:is({ M.MAX_SIZE, M.MAX_ALIAS_NODES }, { 8 * 1024 * 1024, 1000000 },
     "the defaults: 8 MiB, 1,000,000 alias nodes")
-- No limit on the document's own nodes below the size limit: 200,000
-- one-byte-apart nodes in 600 KB load (the old limit was 100,000).
local many = { "driver: {type: os}\nstages: [s]\njobs:\n- stage: s\n  commands:\n" }
for i = 1, 200000 do many[#many + 1] = "  - x\n" end
lm = M.parse(table.concat(many), "n.yml")
t:ok(lm ~= nil and #lm.jobs[1].commands == 200000,
     "200,000 commands in one job load (no node limit under the size limit)")
