-- Tests of djinn.state: per-build state directories and the reaper that
-- cleans up after a runner killed with kill -9 (issue 6, part 2). Real
-- processes and a real directory tree; the Docker engine is a fake module
-- here (tests/e2e/docker.sh reaps from a real dockerd).
local t = ...
local state = require "djinn.state"
local fs = require "djinn.fs"
local json = require "djinn.json"
local proc = require "djinn.proc"

local root = t:tmpdir()
local function envf(vars) return function(k) return vars[k] end end
local function run(argv)
    local c = assert(proc.spawn{ argv = argv })
    return c:wait(10)
end

-- base(): $XDG_RUNTIME_DIR/djinn, else ${TMPDIR:-/tmp}/djinn-<uid>.
local base, err = state.base(envf{ XDG_RUNTIME_DIR = root .. "/xdg" })
t:is(base, root .. "/xdg/djinn", "base: $XDG_RUNTIME_DIR/djinn")
t:is(base and fs.stat(base).mode, tonumber("700", 8), "base: mode 0700")
local tb = state.base(envf{ TMPDIR = root .. "/tmp/" })
t:like(tb or "", "^" .. root:gsub("%p", "%%%0") .. "/tmp/djinn%-%d+$",
       "base: ${TMPDIR}/djinn-<uid> without XDG_RUNTIME_DIR")
fs.mkdir_p(root .. "/open/djinn", tonumber("755", 8))
run{ "chmod", "755", root .. "/open/djinn" }
local nb, nerr = state.base(envf{ XDG_RUNTIME_DIR = root .. "/open" })
t:is(nb, nil, "base: a group/other-accessible directory is refused")
t:like(nerr or "", "must be a directory owned by uid %d+ with mode 0700 " ..
       "%(found dir, owner %d+, mode 0755%)", "base: the error says why")
fs.mkdir_p(root .. "/link")
run{ "ln", "-s", base, root .. "/link/djinn" }
nb, nerr = state.base(envf{ XDG_RUNTIME_DIR = root .. "/link" })
t:is(nb, nil, "base: a symlink is refused")
t:like(nerr or "", "found link", "base: the symlink is named")

-- proc_start(): field 22 of /proc/PID/stat.
t:like(state.proc_start(proc.getpid()) or "", "^%d+$",
       "proc_start: our own start time")
t:is(state.proc_start(0), nil, "proc_start: pid 0 -> nil")

-- begin / set / add / del / finish.
t:is(state.current().null, true, "current(): the null record outside a build")
t:ok(state.current():add("containers", "x"), "null record: add is a no-op")
local rec = state.begin("docker", { base = base })
t:ok(rec and rec.dir and fs.stat(rec.dir).type == "dir",
     "begin: the build directory exists")
t:is(rec and fs.stat(rec.dir).mode, tonumber("700", 8), "begin: mode 0700")
t:ok(state.current() == rec, "begin: the record is current")
rec:set("docker", { host = "unix:///x.sock", build = "b1" })
rec:add("containers", "c1")
rec:add("containers", "c2")
rec:del("containers", "c1")
rec:add("volumes", "v1")
local data = json.decode(fs.readfile(rec.dir .. "/state"))
t:is(data.runner.pid, proc.getpid(), "state: the runner's pid")
t:is(data.runner.start, state.proc_start(proc.getpid()),
     "state: the runner's start time")
t:is(data.driver, "docker", "state: the driver type")
t:is(data.containers.c2, true, "state: an added container")
t:is(data.containers.c1, nil, "state: a deleted container is gone")
t:is(data.docker.build, "b1", "state: a set field")
t:is(fs.stat(rec.dir .. "/state").mode, tonumber("600", 8),
     "state: the file is mode 0600")
local sub = rec:mkdir("qemu")
t:is(sub, rec.dir .. "/qemu", "mkdir: a directory inside the build's")
local r0 = state.reap{ base = base }
t:ok(fs.exists(rec.dir), "reap: a live runner's directory is kept")
t:is(r0.dirs, 0, "reap: nothing reaped while the runner lives")
local dir1 = rec.dir
rec:finish()
t:ok(not fs.exists(dir1), "finish: the directory is removed")
t:ok(state.current().null, "finish: no current record")

-- A dead runner: the pid of a process that has exited.
local function dead_pid()
    local c = proc.spawn{ argv = { "true" } }
    local pid = c:pid()
    c:wait()
    return pid
end

local function fake_build(name, d)
    local dir = base .. "/" .. name
    fs.mkdir_p(dir, tonumber("700", 8))
    fs.writefile(dir .. "/state", json.encode(d), tonumber("600", 8))
    return dir
end

local function alive(c)
    return c:wait(0) == nil
end

-- A "qemu" that is ours (start time matches, its command line names the
-- build directory), one whose start time does not match (a reused pid),
-- and one that does not name the directory: only the first is killed.
local dA = base .. "/aaaa0001"
local ours = proc.spawn{ argv = { "sh", "-c", "while :; do sleep 1; done",
                                  dA .. "/console.log" } }
local reused = proc.spawn{ argv = { "sh", "-c", "while :; do sleep 1; done",
                                    base .. "/aaaa0002/x" } }
local unnamed = proc.spawn{ argv = { "sh", "-c", "while :; do sleep 1; done",
                                     "elsewhere" } }
proc.sleep(0.05)
fake_build("aaaa0001", { version = 1, build = "aaaa0001", driver = "qemu",
    runner = { pid = dead_pid(), start = "1" },
    qemu = { pid = ours:pid(), start = state.proc_start(ours:pid()) } })
fake_build("aaaa0002", { version = 1, build = "aaaa0002", driver = "qemu",
    runner = { pid = proc.getpid(), start = "1" }, -- our pid, another start
    qemu = { pid = reused:pid(), start = "1" } })
fake_build("aaaa0003", { version = 1, build = "aaaa0003", driver = "qemu",
    runner = { pid = dead_pid(), start = "1" },
    qemu = { pid = unnamed:pid(), start = state.proc_start(unnamed:pid()) } })
-- A live runner (this process) with a matching qemu record: untouched.
local liveproc = proc.spawn{ argv = { "sh", "-c", "while :; do sleep 1; done",
                                      base .. "/aaaa0004/x" } }
fake_build("aaaa0004", { version = 1, build = "aaaa0004", driver = "qemu",
    runner = { pid = proc.getpid(), start = state.proc_start(proc.getpid()) },
    qemu = { pid = liveproc:pid(), start = state.proc_start(liveproc:pid()) } })
-- Not a build directory name, and a fresh directory without a state file.
fs.mkdir_p(base .. "/not-a-build")
fs.mkdir_p(base .. "/aaaa0005")

local warned = {}
local log = { warn = function(_, s) warned[#warned + 1] = s end }
local r = state.reap{ base = base, log = log }
proc.sleep(0.1)
t:is(r.killed, { ours:pid() }, "reap: only the recorded, matching, " ..
     "directory-naming process is killed")
t:ok(not alive(ours), "reap: our qemu stand-in is dead")
t:ok(alive(reused), "reap: a pid whose start time differs is not signalled")
t:ok(alive(unnamed), "reap: a process not naming the build directory is " ..
     "not signalled")
t:ok(alive(liveproc), "reap: a live runner's process is not signalled")
t:ok(not fs.exists(dA) and not fs.exists(base .. "/aaaa0002") and
     not fs.exists(base .. "/aaaa0003"), "reap: dead builds' directories removed")
t:ok(fs.exists(base .. "/aaaa0004"), "reap: a live build's directory kept")
t:ok(fs.exists(base .. "/not-a-build"), "reap: other names are not touched")
t:ok(fs.exists(base .. "/aaaa0005"),
     "reap: a fresh directory without a state file is kept (a runner " ..
     "between mkdir and its first write)")
t:is(r.dirs, 3, "reap: three directories reaped")
t:like(warned[1] or "", "cleaned up after 3 dead build%(s%): killed 1 " ..
       "process%(es%), removed 0 container%(s%) and 0 volume%(s%)",
       "reap: says what it did")
for _, c in ipairs({ reused, unnamed, liveproc }) do c:terminate(1) end
fs.rm_rf(base .. "/aaaa0004")

-- Docker: only recorded AND labelled objects are removed; an unreachable
-- engine keeps the directory for the next run.
local removed = {}
local engine_up = true
local fake = {
    connect = function(o)
        if not engine_up then
            return nil, "docker: cannot reach the Docker engine at " .. o.host
        end
        local c = {}
        function c.containers(_, labels)
            t:is(labels, { ["djinn.managed"] = "true", ["djinn.build"] = "B" },
                 "docker reap: containers listed by our labels")
            return {
                { Id = "c-rec", Labels = { ["djinn.managed"] = "true",
                                           ["djinn.build"] = "B" } },
                { Id = "c-unrec", Labels = { ["djinn.managed"] = "true",
                                             ["djinn.build"] = "B" } },
                { Id = "c-badlabel", Labels = { ["djinn.build"] = "B" } },
            }
        end
        function c.volumes()
            return { { Name = "v-rec", Labels = { ["djinn.managed"] = "true",
                                                  ["djinn.build"] = "B" } },
                     { Name = "v-other", Labels = {} } }
        end
        function c.container_remove(_, id)
            removed[#removed + 1] = "c:" .. id
            return true
        end
        function c.volume_remove(_, name)
            removed[#removed + 1] = "v:" .. name
            return true
        end
        return c
    end,
}
local dD = fake_build("bbbb0001", { version = 1, build = "bbbb0001",
    driver = "docker", runner = { pid = dead_pid(), start = "1" },
    docker = { host = "unix:///nope.sock", build = "B" },
    containers = { ["c-rec"] = true, ["c-badlabel"] = true },
    volumes = { ["v-rec"] = true, ["v-other"] = true } })
engine_up = false
warned = {}
r = state.reap{ base = base, docker = fake, log = log }
t:ok(fs.exists(dD), "docker reap: engine unreachable -> directory kept")
t:is(r.kept, { dD }, "docker reap: reported as kept")
t:like(warned[1] or "", "cannot clean up after the dead build bbbb0001 .*" ..
       "cannot reach the Docker engine.*kept for the next run",
       "docker reap: the warning names the build and the cause")
engine_up = true
r = state.reap{ base = base, docker = fake }
t:is(removed, { "c:c-rec", "v:v-rec" }, "docker reap: only recorded and " ..
     "labelled container and volume removed")
t:ok(not fs.exists(dD), "docker reap: directory removed afterwards")
fs.rm_rf(base .. "/aaaa0005")
