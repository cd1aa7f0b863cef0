-- newuser_test.lua - the mistakes new users make (issue 11, items 4.1,
-- 4.2, 4.9, 4.11) through the library: djinn.run and djinn.check behave
-- as the CLI does (one door), driver.conf's unknown keys, the summary and
-- JSON events of djinn.log, djinn.tree on real git checkouts.
local t = ...
local djinn = require "djinn"
local config = require "djinn.config"
local pipeline = require "djinn.pipeline"
local tree = require "djinn.tree"
local fs = require "djinn.fs"
local proc = require "djinn.proc"
local json = require "djinn.json"

-- A log writer that keeps stdout and stderr apart.
local function capture(o)
    local out, err = {}, {}
    o = o or {}
    o.out = { write = function(_, s) out[#out + 1] = s end }
    o.err = { write = function(_, s) err[#err + 1] = s end }
    o.color = false
    local log = djinn.log.new(o)
    return log, function() return table.concat(out) end,
           function() return table.concat(err) end
end

local dir = t:tmpdir()
local function write(path, text)
    assert(fs.writefile(path, text))
    return path
end

-- 2026-12 (issue 11): every build below "passed" on main, running nothing.
-- 1. djinn.run: no job ran is failed, exit code 1, the reason said.
do
    local log, out, err = capture()
    local r = djinn.run(write(dir .. "/comands.yml", [[
driver: {type: os}
stages: [build]
jobs:
  - stage: build
    comands: [echo hi]
]]), { log = log, artifacts = dir .. "/a", signals = false })
    t:is({ r and r.status, r and r.exit_code }, { "failed", 1 },
         "djinn.run: a misspelt commands key fails with exit code 1")
    t:like(r and r.error or "", "^no job ran: its only job has no commands",
           "djinn.run: says no job ran and why")
    t:like(err(), '^warning: [^\n]*comands%.yml:5:5: jobs%[1%]: unknown key ' ..
           '"comands"', "djinn.run: the load warning is printed first")
    t:like(out(), 'build failed in [^\n]*\nnot run: build/build%.1\n' ..
           'warning: [^\n]*unknown key "comands"', "djinn.run: and repeated " ..
           "in the summary")
    t:is(r and #r.warnings, 2, "result.warnings: the unknown key and the " ..
         "job without commands")
    t:ok(not out():find("Running with Driver", 1, true),
         "djinn.run: no driver was created")
end
do
    local r = djinn.run({ driver = { type = "os" }, stages = { "build" },
                          jobs = { { stage = "biuld", commands = { "true" } } } },
                        { quiet = true, artifacts = dir .. "/a",
                          signals = false })
    t:is({ r and r.status, r and r.exit_code }, { "failed", 1 },
         "djinn.run: a job of a misspelt stage is dropped: failed, 1")
    t:like(r and r.error or "", "no job ran: the manifest has no jobs in " ..
           "its stages %(stages: build%)", "the reason names the stages")
end

-- 2. djinn.run{strict = true}: any load warning fails before anything.
local half = write(dir .. "/half.yml", [[
driver: {type: os}
stages: [s]
enviroment: [A=1]
jobs:
  - {stage: s, commands: ["echo ran > ran.txt"], artifacts: [ran.txt]}
]])
do
    local log, out = capture()
    local r = djinn.run(half, { log = log, strict = true,
                                artifacts = dir .. "/strict",
                                signals = false })
    t:is({ r and r.status, r and r.exit_code }, { "failed", 1 },
         "strict: a warning fails the build, exit code 1")
    t:like(r and r.error or "", "^%-%-strict: 1 warning; nothing was run",
           "strict: says why")
    t:ok(not fs.exists(dir .. "/strict/ran.txt") and
         not out():find("Running with", 1, true), "strict: nothing ran")
    local r2 = djinn.run(half, { quiet = true, artifacts = dir .. "/lax",
                                 signals = false })
    t:is(r2 and r2.status, "passed", "without strict the same build passes")
    t:ok(fs.exists(dir .. "/lax/ran.txt"), "without strict the job ran")
end

-- 3. djinn.check: the CLI's check and run go through it.
do
    local c = djinn.check(half)
    t:is({ #c.errors, #c.warnings, c.manifest ~= nil }, { 0, 1, true },
         "check: a warning, no error")
    c = djinn.check(write(dir .. "/inv.yml", "driver: {type: os}\n" ..
                          "env: [NOEQ]\nstages: [s]\n"))
    t:is(#c.errors, 1, "check: an invalid manifest has errors")
    t:like(c.summary or "", "inv%.yml: invalid manifest %(1 error%)",
           "check: the summary")
    c = djinn.check(half, { stage = "nope" })
    t:like(c.errors[1] or "", 'unknown stage "nope"', "check: --stage")
    c = djinn.check(half, { driver_config = write(dir .. "/m.conf",
        "driver qemu {\n  memroy 256\n}\n") })
    t:like(c.warnings[2] or "", "m%.conf:2:3: driver qemu: unknown key " ..
           '"memroy" %(ignored; did you mean memory%?',
           "check: driver.conf warnings too")
    c = djinn.check(half, { driver_config = write(dir .. "/bad.conf",
        "driver qemu {\n  cpus \"x\"\n  memory \"y\"\n}\n") })
    t:is(#c.errors, 2, "check: each driver.conf error")
    t:like(c.summary or "", "bad%.conf: invalid driver configuration " ..
           "%(2 errors%)", "check: the driver.conf summary")
end

-- 4. driver.conf: unknown keys warn with the nearest known keys.
do
    local cfg, w = config.parse([[
driver qemu {
    memroy 256
    CPUS 2
    lock_rot true
    zzzzzz 1
}
driver "dokcer" { host "x" }
limits { max_outptu 1MB }
secrets { pattern ["*_X"] }
]], "d.conf")
    t:ok(cfg ~= nil, "a misspelt key is not an error")
    t:is(cfg and cfg.driver.qemu.memroy, 256, "unknown keys are kept")
    t:is(w, {
        'd.conf:2:5: driver qemu: unknown key "memroy" (ignored; did you ' ..
        'mean memory? known keys: accel, arch, binary, boot_timeout, cpus, ' ..
        'disks, hold, image, lock_root, memory, refuse_unusable, restrict, ' ..
        'warm, warm_max, warm_skip)',
        'd.conf:4:5: driver qemu: unknown key "lock_rot" (ignored; did ' ..
        'you mean lock_root? known keys: accel, arch, binary, ' ..
        'boot_timeout, cpus, disks, hold, image, lock_root, memory, ' ..
        'refuse_unusable, restrict, warm, warm_max, warm_skip)',
        'd.conf:5:5: driver qemu: unknown key "zzzzzz" (ignored; known ' ..
        'keys: accel, arch, binary, boot_timeout, cpus, disks, hold, ' ..
        'image, lock_root, memory, refuse_unusable, restrict, warm, warm_max, ' ..
        'warm_skip)',
        'd.conf:7:8: unknown driver "dokcer" (its block is ignored; did ' ..
        'you mean docker? known drivers: docker, os, qemu, ssh)',
        'd.conf:8:10: limits: unknown key "max_outptu" (ignored; did you ' ..
        'mean max_output? known keys: max_artifact_size, max_artifacts, ' ..
        'max_artifacts_total, max_manifest_aliases, max_manifest_size, ' ..
        'max_object_size, max_objects, max_objects_total, max_output)',
        'd.conf:9:11: secrets: unknown key "pattern" (ignored; did you ' ..
        'mean patterns? known keys: patterns)',
    }, "warnings: file:line:col, the key, the nearest known keys")
    local _, w2 = config.parse("driver qemu { memory 256 cpus 1 }\n" ..
        "driver os {}\nlimits { max_output 1MB }\n", "ok.conf")
    t:is(w2, {}, "a file with known keys only: no warning")
    write(dir .. "/inc.conf", "driver ssh {\n  tiemout 5s\n}\n")
    local _, w3 = config.parse('include "inc.conf"\n', dir .. "/main.conf")
    t:like(w3[1] or "", "^" .. dir:gsub("%p", "%%%0") .. "/inc%.conf:2:3: " ..
           'driver ssh: unknown key "tiemout" %(ignored; did you mean ' ..
           "timeout%?", "an included file's warnings name that file")
    local _, w4 = config.load(dir .. "/inc.conf")
    t:is(#w4, 1, "config.load returns the warnings too")
    t:is({ config.distance("memroy", "memory"), config.distance("", "abc"),
           config.distance("kitten", "sitting"), config.distance("A", "a") },
         { 1, 3, 3, 0 }, "distance: a swap counts 1, case is ignored")
    t:is(config.nearest("cpu", config.schema.driver.qemu), { "cpus" },
         "nearest: the closest key")
    t:is(config.nearest("xyzzy", config.schema.driver.qemu), {},
         "nearest: none when nothing is close")
end

-- 5. The log: the summary and the JSON events.
do
    local log, out = capture{ json = true }
    log:warn("x.yml:1:1: a warning")
    log:build_start{ manifest = "x.yml", driver = "os" }
    log:build_end{ status = "failed", duration = 0, error = "no job ran: x",
                   exit_code = 1, warnings = { "x.yml:1:1: a warning" } }
    local ev = {}
    for l in out():gmatch("[^\n]+") do ev[#ev + 1] = json.decode(l) end
    t:is(ev[1], { event = "warning", message = "x.yml:1:1: a warning" },
         "JSON: a warning event")
    t:is({ ev[3].exit_code, ev[3].warnings }, { 1, { "x.yml:1:1: a warning" } },
         "JSON: build_end has exit_code and the warnings")
    log, out = capture{ json = true, secrets = { "s3cret-value" } }
    log:invalid({ "m.yml:3:5: env[1]: bad s3cret-value", "no position" },
                "m.yml: invalid manifest (2 errors)", 2)
    ev = {}
    for l in out():gmatch("[^\n]+") do ev[#ev + 1] = json.decode(l) end
    t:is(ev, {
        { event = "error", message = "m.yml:3:5: env[1]: bad xxxxxx",
          file = "m.yml", line = 3, col = 5 },
        { event = "error", message = "no position" },
        { event = "build_end", status = "invalid", exit_code = 2,
          duration = 0, not_run = {},
          error = "m.yml: invalid manifest (2 errors)" },
    }, "JSON: invalid -> error events (masked) and a build_end")
    local tl, tout, terr = capture()
    tl:invalid({ "m.yml:3:5: bad", "no position" }, "summary", 2)
    t:is({ tout(), terr() }, { "", "m.yml:3:5: bad\nerror: no position\n" ..
         "error: summary\n" }, "text: invalid goes to stderr only")
end
do
    local log, out = capture{ json = true }
    local r, err, code = djinn.run(dir .. "/inv.yml",
                                   { log = log, signals = false })
    t:is({ r, code }, { nil, 2 }, "djinn.run json: invalid manifest -> nil, 2")
    t:like(err or "", "inv%.yml: invalid manifest %(1 error%)$",
           "djinn.run: the message ends with the summary")
    t:like(out(), '^{"event":"error",.*"line":2,.*\n{"event":"build_end"',
           "djinn.run json: the errors are events on stdout")
end

-- 6. pipeline: a tree object a driver did not place fails the build.
do
    local placed = {}
    local fake = { new = function()
        return {
            create = function(_, _, objects)
                for _, o in ipairs(objects) do placed[#placed + 1] = o.dst end
                return true
            end,
            execute = function() return "passed", nil, 0 end,
            destroy = function() end,
        }
    end }
    local m = assert(djinn.manifest.parse("driver: {type: os}\nstages: " ..
        "[s]\njobs:\n  - {stage: s, commands: [true]}\n", "f.yml"))
    local log, out = capture()
    local r = pipeline.run(m, { log = log, drivers = { os = fake },
        artifacts = dir .. "/p", signals = false, state = false,
        tree = { objects = { { src = "/t/a", dst = "a", path = "/t/a",
                               tree = true } } } })
    t:is({ r.status, r.exit_code, r.infra }, { "failed", 3, true },
         "a tree the driver never placed: infrastructure failure, exit 3")
    t:like(out(), "%-%-tree: /t/a was not placed in the build environment",
           "the summary says which entry")
    t:is(placed, { "a" }, "the tree's objects come first")
    local objs = { { src = "x", dst = "x", path = "/x", tree = true,
                     line = "Placing tree T" },
                   { src = "y", dst = "y", path = "/y", tree = true } }
    local l2, o2 = capture()
    pipeline.place_objects(objs, l2, function(o)
        if o.dst == "y" then return nil, "no room" end
        return true
    end)
    t:is({ objs[1].placed, objs[2].failed }, { true, "no room" },
         "place_objects marks placed and failed objects")
    t:is(o2(), "Placing tree T\nobject error: no room\n",
         "one line for the tree, no Placing object line per entry")
end

-- 7. djinn.tree on a real checkout.
local function git(root, ...)
    local child = assert(proc.spawn{ argv = { "git", ... }, cwd = root,
                                     stdin = "null", stdout = "null",
                                     stderr = "null" })
    local how, code = child:wait(30)
    assert(how == "exit" and code == 0, "git " .. table.concat({ ... }, " "))
end
do
    local R = dir .. "/repo"
    assert(fs.mkdir_p(R .. "/src/deep"))
    write(R .. "/.gitignore", "*.log\nout/\n")
    write(R .. "/src/a.c", "a\n")
    write(R .. "/src/deep/b.c", "bb\n")
    write(R .. "/x.log", "ignored\n")
    assert(fs.mkdir_p(R .. "/out"))
    write(R .. "/out/o", "ignored\n")
    git(R, "init", "-q")
    git(R, "add", "-A")
    write(R .. "/untracked.txt", "u\n")
    local root, kind = tree.find(R)
    t:is({ root, kind }, { fs.realpath(R), "git" }, "find: a checkout")
    local entries = tree.list(root, kind)
    local rels = {}
    for _, e in ipairs(entries or {}) do rels[#rels + 1] = e.rel end
    t:is(rels, { ".gitignore", "src/a.c", "src/deep/b.c", "untracked.txt" },
         "list: git ls-files, ignored files and .git left out")
    local st = assert(tree.stage(R))
    t:is({ st.files, st.bytes, st.kind }, { 4, 18, "git" },
         "stage: files and bytes counted")
    local names = {}
    for _, o in ipairs(st.objects) do
        names[#names + 1] = o.dst
        assert(o.tree and o.path:sub(1, #st.dir) == st.dir)
    end
    t:is(names, { ".gitignore", "src", "untracked.txt" },
         "stage: one object per top-level entry of the copy")
    t:is(st.objects[1].line, st.line, "stage: the first object carries " ..
         "the Placing tree line")
    t:is(fs.readfile(st.dir .. "/src/deep/b.c"), "bb\n", "stage: the copy")
    local tmp = st.tmp
    st:remove()
    t:ok(not fs.exists(tmp), "remove: the copy is gone")

    local sub_root, sub_kind = tree.find(nil, { cwd = R .. "/src/deep" })
    t:is({ sub_root, sub_kind }, { fs.realpath(R), "git" },
         "find(nil): the top of the checkout around the directory")
    local no, why = tree.find(nil, { cwd = dir })
    t:ok(no == nil and why:find("is not in one", 1, true),
         "find(nil) outside a checkout: " .. tostring(why))
    local _, nogit = tree.find(R, { git = "/nonexistent/git" })
    t:like(nogit or "", "a git checkout, but git cannot run",
           "a checkout without git is refused, not copied with its .git")
    local P = dir .. "/plain"
    assert(fs.mkdir_p(P .. "/e"))
    write(P .. "/f", "f")
    t:is({ tree.find(P) }, { fs.realpath(P), "dir" }, "find: a plain directory")
    local ps = assert(tree.stage(P))
    t:ok(fs.stat(ps.dir .. "/e") ~= nil and ps.files == 1,
         "a plain directory is copied whole, empty directories too")
    ps:remove()
    local nst, nerr = tree.stage(P, { limits = { max_objects = 0,
        max_object_size = 0, max_objects_total = 0 } })
    t:ok(nst ~= nil, "0 = no limit: " .. tostring(nerr))
    if nst then nst:remove() end
    local cst, cerr = tree.stage(R, { limits = { max_objects = 2 } })
    t:ok(cst == nil and cerr:find("more than 2 files", 1, true),
         "max_objects: " .. tostring(cerr))
    local before = #(fs.glob((os.getenv("TMPDIR") or "/tmp") ..
                             "/djinn-tree-*") or {})
    write(R .. "/big.txt", string.rep("x", 100))
    cst, cerr = tree.stage(R, { limits = { max_object_size = 50 } })
    t:ok(cst == nil and cerr:find("big.txt: 100 bytes, over the per-file " ..
         "limit of 50 bytes", 1, true), "max_object_size: " .. tostring(cerr))
    t:is(#(fs.glob((os.getenv("TMPDIR") or "/tmp") .. "/djinn-tree-*") or {}),
         before, "a refused tree leaves no copy behind")
end
