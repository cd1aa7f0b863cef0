-- Tests of djinn.pipeline with the OS driver: statuses, allow_failures,
-- stop on failure, the stage filter, objects, artifacts (globs and "*"),
-- env, timeout, kill by signal, JSON events, the driver interface.
local t = ...
local manifest = require "djinn.manifest"
local pipeline = require "djinn.pipeline"
local log = require "djinn.log"
local util = require "djinn.util"
local fs = require "djinn.fs"
local proc = require "djinn.proc"

local function buffer()
    local b = { parts = {} }
    function b:write(s) self.parts[#self.parts + 1] = s end
    function b:text() return table.concat(self.parts) end
    return b
end

local function parse(text)
    local m, w = manifest.parse(text, "p.yml")
    assert(m, w and table.concat(w, "\n"))
    return m
end

-- Run a manifest text; returns result, output text, dirs.
local function run(text, opts)
    opts = opts or {}
    local out = buffer()
    local dir = t:tmpdir()
    opts.log = log.new{ out = out, json = opts.json, color = false,
                        err = buffer() }
    opts.artifacts = opts.artifacts or (dir .. "/artifacts")
    opts.objects = opts.objects or (dir .. "/objects")
    fs.mkdir_p(opts.objects)
    if opts.files then
        for name, data in pairs(opts.files) do
            fs.mkdir_p(fs.dirname(opts.objects .. "/" .. name))
            assert(fs.writefile(opts.objects .. "/" .. name, data))
        end
    end
    local r, err, code = pipeline.run(parse(text), opts)
    return r, out:text(), opts, err, code
end

local function statuses(r)
    local s = {}
    for _, j in ipairs(r.jobs) do s[#s + 1] = j.stage .. "/" .. j.name ..
        "=" .. j.status end
    return s
end

-- The job script.
t:is(pipeline.script({ "echo a", "x\ny\n" }),
     "#!/bin/sh\nexec 2>&1\nset -ex\n\necho a\nx\ny\n\n",
     "the Djinn job script")
t:is(pipeline.clone_commands{ url = "u", ref = "", dir = "d" },
     { "mkdir -p d", "git clone u d" }, "clone without a ref")
t:is(pipeline.clone_commands{ url = "u", ref = "v1", dir = "d" },
     { "mkdir -p d", "git clone u d", "cd d", "git checkout -q v1" },
     "clone with a ref")

-- The plan: setup stage, stage order, empty stages skipped, filter.
local pm = parse([[
driver: {type: os}
sources: [https://h/a.git, "https://h/b v2 => x"]
stages: [one, empty, two]
jobs:
  - {stage: two, commands: [b]}
  - {stage: one, commands: [a]}
]])
local plan = pipeline.plan(pm)
t:is({ #plan, plan[1].name, plan[2].name, plan[3].name },
     { 3, "setup", "one", "two" }, "plan: setup first, empty stage skipped")
t:is({ plan[1].jobs[1].name, plan[1].jobs[2].name }, { "clone.1", "clone.2" },
     "clone jobs numbered from 1")
t:is(plan[1].jobs[2].commands, { "mkdir -p x", "git clone https://h/b x",
                                 "cd x", "git checkout -q v2" },
     "clone job commands")
plan = pipeline.plan(pm, { stage = "two" })
t:is({ #plan, plan[1].name, plan[2].name }, { 2, "setup", "two" },
     "plan with a stage filter: setup and that stage")
local np, perr = pipeline.plan(pm, { stage = "nope" })
t:ok(np == nil, "unknown stage refused")
t:is(perr, 'unknown stage "nope" (the manifest\'s stages: one, empty, two)',
     "unknown stage message")

-- Exit codes.
t:is({ pipeline.exit_code("passed"), pipeline.exit_code("passed_with_failures"),
       pipeline.exit_code("failed"), pipeline.exit_code("failed", true),
       pipeline.exit_code("timed_out"), pipeline.exit_code("killed") },
     { 0, 0, 1, 3, 4, 130 }, "exit codes")
t:is(pipeline.worst("passed", "failed"), "failed", "worst status")
t:is(pipeline.worst("timed_out", "failed"), "timed_out", "enum order")

-- A passing build: env, objects, artifacts.
local r, out, o = run([[
driver: {type: os}
env:
  - GREETING=hello world
  - OVERRIDE=manifest
objects:
  - in.txt => data/in.txt
  - sub/tool.sh
stages: [build]
jobs:
  - stage: build
    commands:
      - echo "greeting=$GREETING override=$OVERRIDE extra=$EXTRA"
      - test "$HOME" = "$EXPECT_HOME"
      - cat data/in.txt
      - sh tool.sh > made.txt
      - mkdir -p logs && echo a > logs/a.log && echo b > logs/b.log
      - |
        for i in 1 2; do
          echo "loop $i"
        done
    artifacts:
      - made.txt
      - made.txt => deep/dir/renamed.txt
      - "logs/*.log => logs/*"
      - "logs/*.log => flat-*.txt"
      - logs
      - nothing.here
      - /etc/passwd
      - ../x
]], { files = { ["in.txt"] = "object-data\n",
                ["sub/tool.sh"] = "echo from-tool\n" },
      env = { { key = "OVERRIDE", value = "cli" },
              { key = "EXTRA", value = "x" },
              { key = "EXPECT_HOME", value = os.getenv("HOME") or "" } } })
t:is(r.status, "passed", "passing build")
t:is(r.exit_code, 0, "exit code 0")
t:is(statuses(r), { "build/build.1=passed" }, "job statuses")
t:like(out, "^Running with Driver os%.%.%.\n", "Djinn's first line")
t:like(out, "\nwarning: the os driver runs jobs directly on this machine",
       "no-isolation warning")
t:like(out, "\nPlacing object in%.txt => data/in%.txt\n", "object placed")
t:like(out, "\nPlacing object sub/tool%.sh => tool%.sh\n",
       "object DST defaults to the basename")
-- Paths escaping the objects/artifacts directory are manifest errors
-- (issue 6, part 7), caught before any driver is created.
do
    local em, errs = manifest.parse([[
driver: {type: os}
objects:
  - ../escape.txt
  - /etc/hostname
  - ok.txt
stages: [b]
jobs:
  - stage: b
    commands: [true]
    artifacts:
      - "made.txt => ../out.txt"
      - "made.txt => /tmp/out.txt"
      - "a/* => ../*"
      - "made.txt => fine/*"
]], "p.yml")
    local all = table.concat(errs or {}, "\n")
    t:ok(em == nil, "escaping paths: the manifest is invalid")
    t:like(all, 'p%.yml:3:5: objects%[1%]: source "%.%./escape%.txt": ' ..
           '"%.%." is not allowed', "object SRC escaping the objects dir")
    t:like(all, 'objects%[2%]: source "/etc/hostname": absolute paths ' ..
           "are not allowed", "absolute object SRC")
    t:like(all, 'artifacts%[1%]: destination "%.%./out%.txt": "%.%." is ' ..
           "not allowed %(artifact destinations are relative to the " ..
           "artifacts directory", "artifact DST escaping the artifacts dir")
    t:like(all, 'artifacts%[2%]: destination "/tmp/out%.txt": absolute',
           "absolute artifact DST")
    t:like(all, 'artifacts%[3%]: destination "%.%./%*"', "DST with * escaping")
    local _, nerr = all:gsub("\n", "")
    t:is(nerr + 1, 5, "exactly five errors (ok.txt and fine/* accepted)")
end
-- An object that cannot be placed fails the build before any job runs,
-- in every driver (issue 11, item 4.8).
do
    local rm, mout = run([[
driver: {type: os}
objects:
  - in.txt
  - missing.txt
stages: [build]
jobs:
  - stage: build
    commands: [echo job-ran]
]], { files = { ["in.txt"] = "x\n" } })
    t:like(mout, "\nobject error: [^\n]*missing%.txt: No such file",
           "missing object: an object error line")
    t:is({ rm.status, rm.exit_code }, { "failed", 3 },
         "missing object: the build fails (driver error, exit 3)")
    t:ok(not mout:find("job-ran", 1, true), "missing object: no job ran")
    t:like(mout, "object error: 1 of 2 objects could not be placed " ..
           "%(missing%.txt%)", "missing object: the summary names it")
end
t:like(out, "\n==> build/build%.1\n", "job header")
t:like(out, "\n%+ echo greeting=hello world override=cli extra=x\n",
       "set -x echo")
t:like(out, "\ngreeting=hello world override=cli extra=x\n",
       "manifest env, --env overrides and adds")
t:like(out, "\nobject%-data\n", "object content visible to the job")
t:like(out, "\n%+ echo loop 1\nloop 1\n%+ echo loop 2\nloop 2\n",
       "block scalar runs as one command")
t:like(out, "\n%-%-> passed in %d+%.%ds\n", "job footer")
t:like(out, "\nbuild passed in %d+%.%ds\n$", "summary line last")
local A = o.artifacts
t:is(fs.readfile(A .. "/made.txt"), "from-tool\n", "artifact collected")
t:is(fs.readfile(A .. "/deep/dir/renamed.txt"), "from-tool\n",
     "artifact DST with parent directories created")
t:is(fs.readfile(A .. "/logs/a.log"), "a\n", "glob with * in DST (a)")
t:is(fs.readfile(A .. "/logs/b.log"), "b\n", "glob with * in DST (b)")
t:is(fs.readfile(A .. "/flat-a.log.txt"), "a\n",
     "* inside a DST name is the match's basename")
t:like(out, "\nCollecting artifact logs/a%.log => logs/a%.log\n",
       "Collecting artifact line per match")
t:like(out, "\nCollecting artifact logs/b%.log => flat%-b%.log%.txt\n",
       "Collecting artifact line shows the expanded DST")
t:ok(fs.stat(A .. "/logs") and fs.stat(A .. "/logs").type == "dir",
     "a directory artifact")
t:like(out, "\nartifact error: nothing%.here: no such file\n",
       "missing artifact")
-- 2026-12-04 (issue 11, section 2): Djinn's os driver collects absolute
-- sources (its integration test collects three files from /etc); we
-- refused them.
t:like(out, "\nCollecting artifact /etc/passwd => passwd\n",
       "absolute artifact SRC collected from this machine")
t:is(fs.readfile(A .. "/passwd"), fs.readfile("/etc/passwd"),
     "... with its content")
t:like(out, '\nartifact error: %.%./x: "%.%." is not allowed',
       "artifact SRC escaping the workspace refused")
t:ok(not fs.exists(fs.dirname(A) .. "/out.txt"), "nothing written outside")
local ws = out:match("\nWorkspace ([^\n]+)\n")
t:ok(ws ~= nil and not fs.exists(ws), "workspace removed by destroy")

-- A failing job stops the build; later jobs are not run.
r, out = run([[
driver: {type: os}
stages: [build, test, deploy]
jobs:
  - {stage: build, commands: [true]}
  - {stage: test, commands: ["echo before", "exit 3", "echo after"],
     artifacts: [out.txt]}
  - {stage: test, commands: [echo second]}
  - {stage: deploy, commands: [echo deploy]}
]])
t:is(r.status, "failed", "failing build")
t:is(r.exit_code, 1, "exit code 1")
t:is(statuses(r), { "build/build.1=passed", "test/test.1=failed",
                    "test/test.2=queued", "deploy/deploy.1=queued" },
     "later jobs stay queued")
t:is(r.jobs[2].exit_code, 3, "exit code of the failed job")
t:is(r.jobs[2].cause, "exit status 3", "cause of the failed job")
t:like(out, "\n\nerror: job test%.1 in stage test failed: exit status 3\n",
       "Djinn's error line after a blank line")
t:ok(not out:find("\nafter\n") and not out:find("\nsecond\n") and
     not out:find("deploy\n"), "nothing ran after the failure")
t:like(out, "artifact error: out%.txt: no such file",
       "artifacts are collected after a failed job too")
t:like(out, "\nbuild failed in [%d.]+s: job test%.1 in stage test failed " ..
       "%(exit status 3%)\nnot run: test/test%.2, deploy/deploy%.1\n$",
       "summary with the jobs not run")
t:is(#r.not_run, 2, "result.not_run")

-- allow_failures: passed_with_failures and the build goes on.
r, out = run([[
driver: {type: os}
stages: [lint, build]
allow_failures: [lint]
jobs:
  - {stage: lint, commands: [false]}
  - {stage: lint, commands: [echo lint2]}
  - {stage: build, commands: [echo built]}
]])
t:is(r.status, "passed_with_failures", "allowed failure")
t:is(r.exit_code, 0, "exit 0 with allowed failures")
t:is(statuses(r), { "lint/lint.1=passed_with_failures", "lint/lint.2=passed",
                    "build/build.1=passed" }, "all jobs ran")
t:like(out, "%-%-> passed_with_failures in [%d.]+s: exit status 1\n",
       "job footer of an allowed failure")

-- A failure after an allowed failure still fails the build.
r = run([[
driver: {type: os}
stages: [a, b]
allow_failures: [a]
jobs:
  - {stage: a, commands: [false]}
  - {stage: b, commands: [false]}
]])
t:is(r.status, "failed", "worst status wins")

-- Stage filter: setup + that stage only.
r, out = run([[
driver: {type: os}
stages: [one, two]
jobs:
  - {stage: one, commands: [echo ONE]}
  - {stage: two, commands: [echo TWO]}
]], { stage = "two" })
t:is(statuses(r), { "two/two.1=passed" }, "--stage runs only that stage")
t:ok(not out:find("ONE"), "the other stage did not run")
local rr, _, _, e2, c2 = run("driver: {type: os}\nstages: [a]\n",
                             { stage = "b" })
t:ok(rr == nil and c2 == 2 and e2:find('unknown stage "b"'),
     "unknown stage gives exit 2")

-- Empty build. Until 2026-12 (issue 11) it passed having run nothing;
-- a build in which no job ran is failed, exit 1, and says why.
r = run("driver: {type: os}\n")
t:is({ r.status, #r.jobs, r.exit_code }, { "failed", 0, 1 },
     "a build with no jobs fails (exit 1)")
t:like(r.error or "", "^no job ran: the manifest has no jobs",
       "a build with no jobs says why")

-- Timeout: the job's process group is terminated, the build is timed_out.
local tdir = t:tmpdir()
r, out = run(string.format([[
driver: {type: os}
stages: [slow, after]
jobs:
  - stage: slow
    commands:
      - sleep 30 &
      - echo $! > %s/sleep.pid
      - wait
  - {stage: after, commands: [echo never]}
]], tdir), { timeout = 1 })
t:is(r.status, "timed_out", "timeout gives timed_out")
t:is(r.exit_code, 4, "exit code 4")
t:is(statuses(r), { "slow/slow.1=timed_out", "after/after.1=queued" },
     "the running job is timed_out, the rest not run")
t:like(r.error, "^timed out after 1s %(job slow%.1 in stage slow was " ..
       "running%)$", "timeout summary")

local function gone(pid)
    for _ = 1, 100 do
        local st = fs.readfile("/proc/" .. pid .. "/stat")
        if st == nil or st:match("^%d+ %b() (%a)") == "Z" then
            return true
        end
        proc.sleep(0.05)
    end
    return false
end
local pid = (fs.readfile(tdir .. "/sleep.pid") or ""):match("%d+")
t:ok(pid ~= nil, "the job wrote its sleep pid")
t:ok(pid and gone(pid), "the background sleep was killed with its group")

-- Kill by signal: the job sends SIGINT to the runner (since issue 10 its
-- parent is the job's keeper, so the runner's pid comes in the env).
r, out = run(string.format([[
driver: {type: os}
stages: [s]
jobs:
  - stage: s
    commands:
      - sleep 30 &
      - echo $! > %s/sleep2.pid
      - kill -INT $RUNNER_PID
      - wait
  - {stage: s, commands: [echo never]}
]], tdir), { timeout = 60,
             env = { { key = "RUNNER_PID", value = tostring(proc.getpid()) } } })
t:is(r.status, "killed", "SIGINT gives killed")
t:is(r.exit_code, 130, "exit code 130")
t:is(statuses(r), { "s/s.1=killed", "s/s.2=queued" }, "statuses after kill")
t:like(r.error, "^killed by SIGINT", "kill summary")
pid = (fs.readfile(tdir .. "/sleep2.pid") or ""):match("%d+")
t:ok(pid and gone(pid), "the job's processes are gone after the kill")
t:is(proc.pending_signal(), nil, "no signal left pending")

-- JSON events.
r, out = run([[
driver: {type: os}
stages: [s]
jobs:
  - {stage: s, commands: ["printf 'caf\\303\\251 \\377 \\001\\n'"]}
  - {stage: s, commands: [exit 2]}
]], { json = true })
local lines = {}
for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
local events = {}
for _, l in ipairs(lines) do
    events[#events + 1] = l:match('^{"event":"([%w_]+)"')
end
t:is(#events, #lines, "every line is an event object")
t:is(events[1], "build_start", "build_start first")
t:is(events[#events], "build_end", "build_end last")
t:like(out, '{"event":"job_start","job":"s%.1","stage":"s"}',
       "job_start event")
t:like(out, 'caf\195\169 \239\191\189 \\u0001\\n',
       "UTF-8 passes, invalid byte -> U+FFFD, control escaped")
t:like(out, '{"event":"job_end","duration":[%d.e-]+,"exit_code":2,' ..
       '"job":"s%.2","stage":"s","status":"failed"}', "job_end event")
t:like(lines[#lines], '^{"event":"build_end","duration":[%d.e-]+,' ..
       '"error":"job s%.2 in stage s failed %(exit status 2%)",' ..
       '"exit_code":1,"not_run":%[%],"status":"failed"}$', "build_end event")
t:like(out, '{"event":"output","data":"Running with Driver os%.%.%.\\n",' ..
       '"job":null}', "runner lines are output events with job null")

-- The JSON encoder (djinn.json): tests/lua/json_one_test.lua.
t:is({ util.fmt_timeout(2), util.fmt_timeout(1800), util.fmt_timeout(5400),
       util.fmt_timeout(90), util.fmt_timeout(0.5), util.fmt_timeout(1.5) },
     { "2s", "30m", "1h30m", "1m30s", "500ms", "1.5s" }, "fmt_timeout")
t:is({ util.utf8_split("ab\226\130") }, { "ab", "\226\130" },
     "split keeps an incomplete sequence")
t:is({ util.utf8_split("ab\255") }, { "ab\255", "" },
     "an invalid byte is not held back")
local jb = buffer()
local jw = log.new{ out = jb, json = true }
jw:job_start{ name = "j", stage = "s" }
jw:output("x\226")
jw:output("\130\172y")
jw:job_end({ name = "j", stage = "s" }, { status = "passed", duration = 0,
                                         exit_code = 0 })
t:like(jb:text(), '"data":"x",[^\n]*\n[^\n]*"data":"\226\130\172y"',
       "a character split across reads is joined")

-- Plain writer: colour codes only when asked.
local cb = buffer()
local cw = log.new{ out = cb, color = true }
cw:job_start{ name = "j", stage = "s" }
t:like(cb:text(), "^\27%[1;36m==> s/j\27%[0m\n", "colour header")

-- The driver interface: a fake driver module plugs in by type.
local calls = {}
local fake = {
    new = function(o)
        calls[#calls + 1] = "new:" .. tostring(o.config.cpus)
        return {
            create = function(self, env, objects)
                calls[#calls + 1] = "create:" .. env.map.A .. ":" ..
                    #objects
                return true
            end,
            execute = function(self, job, store)
                calls[#calls + 1] = "execute:" .. job.name
                o.log:output("out of " .. job.name .. "\n")
                if job.name == "b" then error("driver blew up") end
                return "passed", nil, 0
            end,
            destroy = function() calls[#calls + 1] = "destroy" end,
        }
    end,
}
r, out = run([[
driver: {type: qemu, image: x}
env: [A=1]
stages: [s]
jobs:
  - {stage: s, name: a, commands: [x]}
  - {stage: s, name: b, commands: [x]}
  - {stage: s, name: c, commands: [x]}
]], { drivers = { qemu = fake }, config = { driver = { qemu = { cpus = 8 } } } })
t:is(calls, { "new:8", "create:1:0", "execute:a", "execute:b", "destroy" },
     "driver lifecycle")
t:is(statuses(r), { "s/a=passed", "s/b=failed", "s/c=queued" },
     "a raising execute fails the job")
t:like(out, "error: job b in stage s failed: [^\n]*driver blew up", "cause")

-- Driver creation failure: failed, infrastructure (exit 3).
calls = {}
r, out = run("driver: {type: qemu, image: x}\nstages: [s]\n" ..
             "jobs: [{stage: s, commands: [x]}]\n",
    { drivers = { qemu = { new = function()
        return { create = function() return nil, "no such image x" end,
                 destroy = function() calls[#calls + 1] = "destroy" end }
    end } } })
t:is({ r.status, r.exit_code, r.infra }, { "failed", 3, true },
     "create failure is an infrastructure failure")
t:like(out, "\nno such image x\n", "create error printed")
t:is(calls, { "destroy" }, "destroy called after a failed create")
t:is(statuses(r), { "s/s.1=queued" }, "no job ran")

-- Every driver type now has a module (docker since issue 5).
t:ok(package.searchpath("djinn.drivers.docker", package.path) ~= nil,
     "the docker driver module is installed")

-- Artifact size caps during the transfer (2026-11-27): store:room() is
-- passed to get as max; a get that stops at it (nil, cause, "limit"
-- [, size]) gets the same "not kept" wording as the final accounting.
do
    local adir = t:tmpdir()
    local st = pipeline.new_store(adir, fs, { max_artifact_size = 100,
                                              max_artifacts_total = 250 })
    t:is(st:room(), 100, "room: the per-file cap")
    st.total = 200
    t:is(st:room(), 50, "room: what is left of the total, when smaller")
    st.total = 300
    t:is(st:room(), 0, "room: 0 once the total is used up")
    t:is(pipeline.new_store(adir, fs, { max_artifact_size = 0,
        max_artifacts_total = 0 }):room(), nil, "room: nil without caps")
    t:is(pipeline.new_store(adir, fs, { max_artifact_size = 0,
        max_artifacts_total = 70 }):room(), 70, "room: the total alone")

    -- collect_artifacts with a fake driver
    local function collect(store, files, get)
        local lines = {}
        local lg = { line = function(_, l) lines[#lines + 1] = l end }
        local arts = {}
        for _, f in ipairs(files) do arts[#arts + 1] = { src = f, dst = f } end
        pipeline.collect_artifacts({ artifacts = arts }, lg, store,
            function(src) return { src } end, get)
        return lines
    end
    local store = pipeline.new_store(adir, fs, { max_artifact_size = 100,
                                                 max_artifacts_total = 250 })
    local maxes = {}
    local lines = collect(store, { "ok1", "big", "grows", "ok2", "last" },
        function(path, host, max)
            maxes[#maxes + 1] = max
            if path == "big" then return nil, "driver words", "limit", 120 end
            if path == "grows" then return nil, "driver words", "limit" end
            if path == "last" then return nil, "driver words", "limit" end
            return fs.writefile(host, ("x"):rep(path == "ok1" and 100 or 90))
        end)
    t:is(maxes, { 100, 100, 100, 100, 60 },
         "get gets max = store:room() (per-file cap, then what is left)")
    t:is(lines, {
        "Collecting artifact ok1 => ok1",
        "Collecting artifact big => big",
        "artifact error: big: not kept: 120 bytes is over the per-file " ..
            "limit of 100 bytes (--max-artifact-size)",
        "Collecting artifact grows => grows",
        "artifact error: grows: not kept: more than 100 bytes is over the " ..
            "per-file limit of 100 bytes (--max-artifact-size)",
        "Collecting artifact ok2 => ok2",
        "Collecting artifact last => last",
        "artifact error: last: not kept: more than 60 bytes would bring " ..
            "the build's artifacts over the total limit of 250 bytes " ..
            "(--max-artifacts-total)",
    }, "a get stopped at the limit: the caps' own wording, size or 'more than'")
    t:is(store.total, 190, "only the kept files count toward the total")
    lines = collect(store, { "other" }, function()
        return nil, "ssh.get: cannot open other", "io"
    end)
    t:is(lines[2], "artifact error: ssh.get: cannot open other",
         "another get failure keeps the driver's message")

    -- the final accounting counts a directory's files, and removes it
    local tree = pipeline.new_store(adir, fs, { max_artifact_size = 100 })
    lines = collect(tree, { "d" }, function(_, host)
        assert(fs.mkdir_p(host .. "/sub"))
        assert(fs.writefile(host .. "/a", ("a"):rep(60)))
        return fs.writefile(host .. "/sub/b", ("b"):rep(60))
    end)
    t:is(lines[2], "artifact error: d: not kept: 120 bytes is over the " ..
         "per-file limit of 100 bytes (--max-artifact-size)",
         "account: a directory's size is its files' (not the inode's)")
    t:ok(not fs.exists(adir .. "/d"), "account: the directory over the cap is removed")
end

-- Issue 10, defect 2 (2026-12-04): the store wrote artifacts through a
-- symbolic link in the middle of the destination path (mkdir_p followed
-- it; only the last component was lstat'ed). Every driver's artifacts go
-- through store:target.
local function symlink(target, path)
    local c = assert(proc.spawn{ argv = { "ln", "-s", target, path } })
    assert(select(2, c:wait(10)) == 0)
end
local function names(dir)
    return table.concat(fs.listdir(dir) or {}, " ")
end
do
    local adir, away = t:tmpdir(), t:tmpdir()
    symlink(away, adir .. "/latest")
    assert(fs.mkdir_p(adir .. "/a"))
    symlink(away, adir .. "/a/latest")
    local st = pipeline.new_store(adir, fs)
    for _, dst in ipairs{ "latest/x", "latest/deeper/x", "a/latest/b/x",
                          "./latest/x" } do
        local host, err = st:target(dst)
        t:ok(host == nil and err:find("a symbolic link (links below " ..
             adir .. " are not followed)", 1, true),
             "store:target refuses " .. dst .. ": " .. tostring(err))
    end
    t:is(names(away), "", "store:target made nothing through the links")
    t:like(select(2, st:target("latest")), "refusing to write through " ..
           "the symbolic link", "a link as the artifact itself is refused")
    t:is(st:target("new/dir/x"), adir .. "/new/dir/x",
         "store:target creates real parent directories")
    -- collect_artifacts with a fake driver whose get writes whatever it
    -- is given: nothing reaches the other side of the link.
    local lines = {}
    local lg = { line = function(_, l) lines[#lines + 1] = l end }
    pipeline.collect_artifacts({ artifacts = {
        { src = "f", dst = "latest/f" }, { src = "f", dst = "a/latest/f" },
        { src = "f", dst = "ok/f" } } }, lg, pipeline.new_store(adir, fs),
        function(src) return { src } end,
        function(_, host) return fs.writefile(host, "data") end)
    t:is(names(away), "", "collect_artifacts: nothing written outside")
    t:is(lines[1], "artifact error: latest/f: fs.mkdir_beneath: " .. adir ..
         "/latest: a symbolic link (links below " .. adir ..
         " are not followed)", "collect_artifacts: the link is named")
    t:is(fs.readfile(adir .. "/ok/f"), "data", "a plain destination works")
end

-- Issue 10, defect 3 (2026-12-04): whatever a failed get left under the
-- artifact's name (a partial or empty file, a partial tree) and the
-- directories made for it are removed; what was there before stays.
do
    local adir = t:tmpdir()
    local lines = {}
    local lg = { line = function(_, l) lines[#lines + 1] = l end }
    assert(fs.writefile(adir .. "/old.txt", "from an earlier job"))
    pipeline.collect_artifacts({ artifacts = {
        { src = "f", dst = "deep/dir/f" }, { src = "d", dst = "tree" },
        { src = "f", dst = "old.txt" } } }, lg, pipeline.new_store(adir, fs),
        function(src) return { src } end,
        function(path, host)
            if path == "d" then
                assert(fs.mkdir_p(host .. "/sub"))
                assert(fs.writefile(host .. "/sub/part", "pa"))
            elseif host:find("old", 1, true) then
                return nil, "fs.copy: " .. host .. ": No space left on device"
            else
                assert(fs.writefile(host, ""))
            end
            return nil, "fs.copy: " .. host .. ": No space left on device"
        end)
    t:is(lines, {
        "Collecting artifact f => deep/dir/f",
        "artifact error: fs.copy: " .. adir ..
            "/deep/dir/f: No space left on device",
        "Collecting artifact d => tree",
        "artifact error: fs.copy: " .. adir .. "/tree: No space left on device",
        "Collecting artifact f => old.txt",
        "artifact error: fs.copy: " .. adir ..
            "/old.txt: No space left on device",
    }, "a failed get: the driver's cause")
    t:is(names(adir), "old.txt", "nothing partial, empty or made for it is left")
    t:is(fs.readfile(adir .. "/old.txt"), "from an earlier job",
         "an artifact that was there before stays")
end

-- Issue 10, defect 12 (2026-12-04): --max-artifacts counted entries: one
-- directory brought 20,000 files under a cap of 10.
do
    local adir = t:tmpdir()
    local st = pipeline.new_store(adir, fs, { max_artifacts = 10 })
    local lines, rooms = {}, {}
    local lg = { line = function(_, l) lines[#lines + 1] = l end }
    -- A driver that cannot count while copying: 20 files arrive, the
    -- accounting refuses and removes them. One that can stops at the cap.
    local function dir_of(n)
        return function(_, host, _, maxf)
            rooms[#rooms + 1] = maxf
            assert(fs.mkdir_p(host .. "/sub"))
            for i = 1, n do
                assert(fs.writefile(host .. "/sub/" .. i, "x"))
            end
            return true
        end
    end
    local get = {
        big = dir_of(20), five = dir_of(5), four = dir_of(4),
        counted = function(_, _, _, maxf)
            rooms[#rooms + 1] = maxf
            return nil, "fs.copy_tree: counted: more than 1 files, the limit",
                "count"
        end,
        one = function(_, host, _, maxf)
            rooms[#rooms + 1] = maxf
            return fs.writefile(host, "1")
        end,
    }
    pipeline.collect_artifacts({ artifacts = {
        { src = "big", dst = "big" }, { src = "five", dst = "five" },
        { src = "four", dst = "four" }, { src = "counted", dst = "counted" },
        { src = "one", dst = "one" }, { src = "one", dst = "two" } } },
        lg, st, function(src) return { src } end,
        function(path, host, max, maxf) return get[path](path, host, max, maxf) end)
    t:is(lines, {
        "Collecting artifact big => big",
        "artifact error: big: not kept: its 20 files would bring the " ..
            "build's artifacts over the limit of 10 files (--max-artifacts " ..
            "10; raise it with --max-artifacts N, 0 = no limit)",
        "Collecting artifact five => five",
        "Collecting artifact four => four",
        "Collecting artifact counted => counted",
        "artifact error: counted: not kept: more than 1 files would bring " ..
            "the build's artifacts over the limit of 10 files " ..
            "(--max-artifacts 10; raise it with --max-artifacts N, 0 = no " ..
            "limit)",
        "Collecting artifact one => one",
        "artifact error: two: not collected: the build already has 10 " ..
            "artifacts, the limit (--max-artifacts 10)",
    }, "a directory's files count toward --max-artifacts")
    t:is(rooms, { 10, 10, 5, 1, 1 }, "get gets max_files = store:files_room()")
    t:is(st.count, 10, "the count is files kept")
    t:is(names(adir), "five four one", "the refused directory is removed")
    t:is(pipeline.new_store(adir, fs, { max_artifacts = 7 }):files_room(), 7,
         "files_room: the count cap")
    t:is(pipeline.new_store(adir, fs, { max_artifacts = 0 }):files_room(),
         nil, "files_room: nil without a cap")
end
