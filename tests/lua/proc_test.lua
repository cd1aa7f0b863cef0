-- proc_test.lua - djinn.proc (runtime/l_proc.c): spawning from argv,
-- pipes, exit status, timeouts, process groups, signals.
local t = ...
local proc = require "djinn.proc"

-- read everything until eof; returns stdout, stderr
local function drain(c, timeout)
  local out, err = {}, {}
  local deadline = proc.now() + (timeout or 20)
  while proc.now() < deadline do
    local data, what = c:read(1)
    if data then
      if what == "stdout" then out[#out + 1] = data else err[#err + 1] = data end
    elseif what == "eof" then
      break
    end
  end
  return table.concat(out), table.concat(err)
end

-- is the process gone (no /proc entry, or a zombie)?
local function gone(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return true end
  local s = f:read("a") or ""
  f:close()
  return s:match("^%d+ %b() (%a)") == "Z"
end

local function wait_gone(pid)
  local deadline = proc.now() + 10
  while proc.now() < deadline do
    if gone(pid) then return true end
    proc.sleep(0.02)
  end
  return false
end

-- stdout and stderr capture, exit code
local c = assert(proc.spawn { argv = { "sh", "-c", 'echo out; echo err >&2; exit 3' } })
t:ok(math.type(c:pid()) == "integer" and c:pid() > 0, "pid is a positive integer")
local out, err = drain(c)
t:is(out, "out\n", "stdout captured")
t:is(err, "err\n", "stderr captured")
local how, code = c:wait(10)
t:is(how, "exit", "exit status kind")
t:is(code, 3, "exit code")
local how2, code2 = c:wait()
t:ok(how2 == "exit" and code2 == 3, "wait again returns the same status")
t:ok(tostring(c):find("exit 3", 1, true) ~= nil, "__tostring shows the status")

-- echo, argument passing without a shell
c = assert(proc.spawn { argv = { "echo", "a b", "$HOME", ";", "*" } })
t:is((drain(c)), "a b $HOME ; *\n", "argv passed verbatim (no shell)")
t:is(select(2, c:wait(10)), 0, "echo exits 0")

-- stderr = "stdout"
c = assert(proc.spawn { argv = { "sh", "-c", "echo e >&2" }, stderr = "stdout" })
local o2, e2 = drain(c)
t:ok(o2 == "e\n" and e2 == "", "stderr merged into stdout")
c:wait(10)

-- a signal
c = assert(proc.spawn { argv = { "sleep", "100" } })
t:ok(c:kill("KILL"), "kill with a name")
how, code = c:wait(10)
t:ok(how == "signal" and code == 9, "killed by SIGKILL reported as signal 9")

-- timeouts on read and wait
c = assert(proc.spawn { argv = { "sleep", "100" } })
local data, what = c:read(0.05)
t:ok(data == nil and what == "timeout", "read times out")
how, code = c:wait(0.05)
t:ok(how == nil and code == "timeout", "wait times out")
how, code = c:terminate(5)
t:ok(how == "signal" and code == 15, "terminate sends TERM first")

-- terminate escalates to KILL when TERM is ignored
c = assert(proc.spawn { argv = { "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done" } })
t:is(c:read(10), "ready\n", "TERM-ignoring child is ready")
how, code = c:terminate(0.2)
t:ok(how == "signal" and code == 9, "terminate escalates to KILL")

-- exec of a missing program
local nc, nmsg = proc.spawn { argv = { "/nonexistent/prog" } }
t:ok(nc == nil, "missing program gives nil")
t:is(nmsg, "proc.spawn: /nonexistent/prog: No such file or directory", "missing program message")
nc, nmsg = proc.spawn { argv = { "djinn-no-such-program-xyz" } }
t:ok(nc == nil and nmsg:find("No such file or directory", 1, true), "missing program on PATH")
nc, nmsg = proc.spawn { argv = { "true" }, cwd = "/nonexistent/dir" }
t:ok(nc == nil and nmsg == "proc.spawn: chdir /nonexistent/dir: No such file or directory",
  "bad cwd gives nil, msg: " .. tostring(nmsg))

-- env replaced
c = assert(proc.spawn { argv = { "/usr/bin/env" }, env = { ONLY = "me", X = "a=b" } })
out = drain(c)
local lines = {}
for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
table.sort(lines)
t:is(table.concat(lines, ","), "ONLY=me,X=a=b", "env replaces the whole environment")
c:wait(10)
c = assert(proc.spawn { argv = { "env" }, env = { PATH = "/usr/bin:/bin" } })
t:ok(drain(c):find("PATH=", 1, true) ~= nil, "env program found through the runner's PATH")
c:wait(10)
-- env inherited
local env = proc.environ()
t:ok(type(env.PATH) == "string", "environ() has PATH")
c = assert(proc.spawn { argv = { "sh", "-c", "echo $PATH" } })
t:is(drain(c), env.PATH .. "\n", "environment inherited when env is nil")
c:wait(10)

-- cwd
c = assert(proc.spawn { argv = { "pwd" }, cwd = "/usr" })
t:is(drain(c), "/usr\n", "cwd applied")
c:wait(10)

-- stdin pipe
c = assert(proc.spawn { argv = { "cat" }, stdin = "pipe" })
t:ok(c:write("hello "), "write to stdin")
t:ok(c:write("world"), "second write")
c:close_stdin()
t:is(drain(c), "hello world", "cat echoes stdin")
t:is(select(2, c:wait(10)), 0, "cat exits 0 after eof")
-- a large write through a pipe that is read concurrently by the child
c = assert(proc.spawn { argv = { "wc", "-c" }, stdin = "pipe" })
t:ok(c:write(string.rep("x", 1000000)), "1 MB written through stdin")
c:close_stdin()
t:is((drain(c):gsub("%s", "")), "1000000", "child read all of it")
c:wait(10)
-- writing to a child that closed its stdin gives nil, msg (no SIGPIPE death)
c = assert(proc.spawn { argv = { "true" }, stdin = "pipe" })
c:wait(10)
local wok, wmsg = c:write(string.rep("x", 100000))
t:ok(wok == nil and wmsg:find("Broken pipe", 1, true), "write to a dead child: " .. tostring(wmsg))
-- stdin null
c = assert(proc.spawn { argv = { "cat" } })
t:is(drain(c), "", "stdin defaults to /dev/null")
c:wait(10)

-- fds other than 0,1,2 are closed in the child
local keep = io.open("/dev/null")
c = assert(proc.spawn { argv = { "ls", "/proc/self/fd" } })
out = drain(c)
local fds = {}
for fd in out:gmatch("%d+") do fds[#fds + 1] = fd end
table.sort(fds)
t:is(table.concat(fds, ","), "0,1,2,3", "only 0,1,2 (and ls's own dir fd) are open")
keep:close()
c:wait(10)

-- process group: the grandchild dies with the child
c = assert(proc.spawn { argv = { "sh", "-c", "sleep 100 & echo $!; wait" } })
local line = ""
while not line:find("\n") do
  local d = c:read(10)
  if not d then break end
  line = line .. d
end
local gpid = tonumber(line:match("%d+"))
t:ok(gpid ~= nil and not gone(gpid), "grandchild is running")
how, code = c:terminate(5)
t:is(how, "signal", "child terminated by a signal")
t:ok(gone(c:pid()), "child is gone")
t:ok(wait_gone(gpid), "grandchild in the process group is gone")

-- kill() with setpgid=false signals only the child
c = assert(proc.spawn { argv = { "sleep", "100" }, setpgid = false })
t:ok(c:kill("TERM"), "kill without a process group")
how, code = c:wait(10)
t:ok(how == "signal" and code == 15, "TERM delivered")

-- __close terminates a running child
local cpid
do
  local cc <close> = assert(proc.spawn { argv = { "sleep", "100" } })
  cpid = cc:pid()
end
t:ok(gone(cpid), "__close terminated and reaped the child")

-- signals: handler records, read returns early on EINTR
t:ok(proc.on_signals { "USR1" }, "on_signals installs a handler")
local me = proc.getpid()
c = assert(proc.spawn { argv = { "kill", "-USR1", tostring(me) } })
c:wait(10)
local got = proc.pending_signal()
local deadline = proc.now() + 5
while not got and proc.now() < deadline do
  proc.sleep(0.01)
  got = proc.pending_signal()
end
t:is(got, "USR1", "pending_signal reports USR1")
t:is(proc.pending_signal(), nil, "pending_signal clears it")
-- a signal during a blocking read makes it return
local sleeper = assert(proc.spawn { argv = { "sleep", "100" } })
local killer = assert(proc.spawn { argv = { "sh", "-c", "sleep 0.2; kill -USR1 " .. me } })
data, what = sleeper:read(nil)
t:ok(data == nil and what == "timeout", "blocking read returns on a signal")
t:is(proc.pending_signal(), "USR1", "the interrupting signal is pending")
killer:wait(10)
sleeper:terminate(1)
t:ok(proc.default_signals(), "default_signals")

-- misuse raises
t:checkerr("argv must be a table", proc.spawn, { argv = "ls" })
t:checkerr("argv must have", proc.spawn, { argv = {} })
t:checkerr("argv%[2%] must be a string", proc.spawn, { argv = { "ls", 1 } })
t:checkerr("invalid stdout 'file'", proc.spawn, { argv = { "ls" }, stdout = "file" })
t:checkerr("env must map strings", proc.spawn, { argv = { "ls" }, env = { 1 } })
t:checkerr("unknown signal 'NOPE'", c.kill, c, "NOPE")
t:checkerr("timeout must be", c.read, c, -1)

-- misc
t:ok(type(proc.now()) == "number", "now() is a number")
t:is(type(proc.isatty(0)), "boolean", "isatty returns a boolean")
t:checkerr("fd must be 0, 1 or 2", proc.isatty, 5)

-- Issue 10, defect 9 (2026-12-04): a background process kept a job open
-- until it ended, and detached processes ((cmd &), setsid, nohup) outlived
-- it. spawn{reap = true} runs the program under a keeper (a child
-- subreaper) that kills everything the program started when it ends.
-- Each process here carries an argument 300N.<our pid>, found in
-- /proc/*/cmdline; whatever is found left is killed by pid at the end.
local fs = require "djinn.fs"
local MARK = tostring(proc.getpid())
local function marked()
  local pids = {}
  for _, d in ipairs(fs.listdir("/proc") or {}) do
    local f = d:match("^%d+$") and io.open("/proc/" .. d .. "/cmdline")
    if f then
      local s = f:read("a") or ""
      f:close()
      for a in s:gmatch("[^%z]+") do
        if a:match("^300%d%." .. MARK .. "$") and not gone(tonumber(d)) then
          pids[#pids + 1] = tonumber(d)
        end
      end
    end
  end
  return pids
end
local function none_marked()
  local deadline = proc.now() + 5
  while proc.now() < deadline do
    if #marked() == 0 then return true end
    proc.sleep(0.05)
  end
  return false
end
local function s(n) return "sleep 300" .. n .. "." .. MARK end

-- the job ends when its script ends; every kind of background process goes
local t0 = proc.now()
c = assert(proc.spawn { argv = { "sh", "-c", "echo $PPID; " .. s(1) .. " & (" .. s(2) ..
  " &); setsid " .. s(3) .. " & nohup " .. s(4) .. " >/dev/null 2>&1 & sh -c '" .. s(5) ..
  " &' & sleep 0.2; exit 3" }, reap = true })
local eof = false
out = ""
while proc.now() < t0 + 5 do
  local d, w = c:read(0.5)
  if d then out = out .. d elseif w == "eof" then eof = true break end
end
t:ok(eof, "reap: the output ends when the script does, background processes or not")
t:is(tonumber(out:match("%d+")), c:pid(), "reap: the script's parent is the keeper, c:pid()")
t:is({ c:wait(5) }, { "exit", 3 }, "reap: the keeper exits with the script's status")
t:ok(proc.now() - t0 < 3, "reap: promptly (" .. string.format("%.2f", proc.now() - t0) .. "s)")
t:ok(none_marked(), "reap: (cmd &), setsid, nohup, a double fork: all gone with the job")

c = assert(proc.spawn { argv = { "sh", "-c", "kill -TERM $$" }, reap = true })
t:is({ c:wait(5) }, { "signal", 15 }, "reap: a script killed by a signal: the keeper reports it")
local rc2, rmsg = proc.spawn { argv = { "/nonexistent/prog" }, reap = true }
t:is({ rc2, rmsg }, { nil, "proc.spawn: /nonexistent/prog: No such file or directory" },
  "reap: a missing program is nil, msg")
rc2, rmsg = proc.spawn { argv = { "true" }, cwd = "/nonexistent/dir", reap = true }
t:is(rmsg, "proc.spawn: chdir /nonexistent/dir: No such file or directory", "reap: a bad cwd is nil, msg")

-- The keeper is a program of its own (djinn-keeper, started with vfork
-- and exec, issue 16). The job's environment is never on its command
-- line (anyone may read a command line; the environment may hold
-- secrets), and the job's program is still sought on the runner's PATH,
-- also when the env given has none.
do
  local secret = "s3cr3t-" .. MARK
  local kc = assert(proc.spawn { argv = { "sh", "-c", 'echo "$DJINN_KEEPER_TEST"; exec sleep 30' },
                                 env = { DJINN_KEEPER_TEST = secret }, reap = true })
  local got = ""
  local deadline = proc.now() + 10
  while not got:find("\n", 1, true) and proc.now() < deadline do
    got = got .. (kc:read(1) or "")
  end
  t:is(got, secret .. "\n", "reap: the job's environment is the env given (sh found without a PATH in it)")
  local f = io.open("/proc/" .. kc:pid() .. "/cmdline")
  local cmdline = f and f:read("a") or ""
  if f then f:close() end
  t:is(cmdline:match("^[^%z]*"), "djinn-keeper", "reap: the keeper is the djinn-keeper program")
  t:ok(cmdline ~= "" and not cmdline:find(secret, 1, true),
       "reap: no value of the job's environment on the keeper's command line: " .. cmdline:gsub("%z", " "))
  kc:kill("KILL")
  t:is(kc:wait(5), "signal", "reap: that keeper ends with KILL")
  t:ok(none_marked(), "reap: and leaves nothing")
end
do
  local build = assert(os.getenv("DJINN_BUILD"), "DJINN_BUILD is not set (run tests/run.sh)")
  -- run by hand: no status pipe (fd 3), a usage line, exit 2
  local kc = assert(proc.spawn { argv = { build .. "/djinn-keeper", "inherit", "--", "true" } })
  local out, err = drain(kc)
  t:is({ kc:wait(5) }, { "exit", 2 }, "djinn-keeper run by hand exits 2")
  t:like(err, "started by djinn%-lua, not by hand", "djinn-keeper run by hand says what it is")
  -- a djinn-lua with no djinn-keeper beside it (nor installed): a clear
  -- error naming where it looked
  local dir = t:tmpdir()
  local exe = dir .. "/bin/djinn-lua"
  assert(fs.mkdir_p(dir .. "/bin"))
  assert(fs.copy(build .. "/djinn-lua", exe))
  assert(fs.writefile(dir .. "/spawn.lua", [==[
local proc = require "djinn.proc"
local c, msg = proc.spawn { argv = { "true" }, reap = true }
io.write(tostring(c and "started" or msg))
if c then c:wait(5) end
return 0
]==]))
  local installed = "/usr/local/lib/djinn/djinn-keeper"
  kc = assert(proc.spawn { argv = { exe, dir .. "/spawn.lua" } })
  out = drain(kc)
  kc:wait(10)
  if fs.exists(installed) then
    t:diag("reap without a keeper beside djinn-lua: " .. installed .. " is installed here, so it is found: " .. out)
  else
    t:is(out, "proc.spawn: true: the keeper program djinn-keeper is missing (looked for " ..
      dir .. "/bin/djinn-keeper, " .. dir .. "/bin/../lib/djinn/djinn-keeper, " .. installed ..
      "; build it with make, or install with make install)",
      "reap: no djinn-keeper: nil, msg naming where it looked")
  end
end

-- terminate: TERM to the script's group, everything killed after the
-- keeper's grace (1 s), also when the script ignores TERM
c = assert(proc.spawn { argv = { "sh", "-c", "trap '' TERM; setsid " .. s(6) .. " & (" .. s(7) ..
  " &); echo ready; while :; do sleep 1; done" }, reap = true })
t:is(c:read(10), "ready\n", "reap: a TERM-ignoring script with detached children is ready")
t0 = proc.now()
how = c:terminate(3)
t:is(how, "signal", "reap: terminate ends it")
t:ok(proc.now() - t0 < 2.5, "reap: within the keeper's grace (" .. string.format("%.2f", proc.now() - t0) .. "s)")
t:ok(none_marked(), "reap: terminate leaves nothing")
-- a grace shorter than the keeper's: it is told to kill at once (QUIT)
c = assert(proc.spawn { argv = { "sh", "-c", "trap '' TERM; setsid " .. s(8) ..
  " & echo ready; while :; do sleep 1; done" }, reap = true })
c:read(10)
t0 = proc.now()
c:terminate(0.1)
t:ok(proc.now() - t0 < 1.5, "reap: terminate(0.1) does not wait for the keeper's grace (" ..
  string.format("%.2f", proc.now() - t0) .. "s)")
t:ok(none_marked(), "reap: terminate(0.1) leaves nothing")
-- signals reach the script's group; KILL makes the keeper kill everything
c = assert(proc.spawn { argv = { "sh", "-c", "trap 'echo got USR1' USR1; setsid " .. s(9) ..
  " & echo ready; while :; do sleep 0.05; done" }, reap = true })
t:is(c:read(10), "ready\n", "reap: ready for signals")
t:ok(c:kill("USR1"), "reap: kill USR1")
out = ""
t0 = proc.now()
while not out:find("got USR1\n", 1, true) and proc.now() < t0 + 5 do
  out = out .. (c:read(1) or "")
end
t:like(out, "got USR1\n", "reap: USR1 is forwarded to the script's group")
t:ok(c:kill("KILL"), "reap: kill KILL")
t:is(c:wait(5), "signal", "reap: KILL ends the job")
t:ok(none_marked(), "reap: KILL leaves nothing")
-- __close of a running keeper
do
  local cc <close> = assert(proc.spawn { argv = { "sh", "-c", "setsid " .. s(1) .. " & wait" }, reap = true })
  proc.sleep(0.2)
end
t:ok(none_marked(), "reap: __close leaves nothing")
for _, p in ipairs(marked()) do
  local k = proc.spawn { argv = { "kill", "-9", tostring(p) } }
  if k then k:wait(5) end
end

-- proc.kill(pid, sig): one process by pid (the crash reaper's kill of a
-- recorded QEMU, which is not a child of the runner that reaps it).
do
  local c = assert(proc.spawn { argv = { "sleep", "30" } })
  local pid = c:pid()
  t:is(proc.kill(pid, "KILL"), true, "proc.kill(pid, 'KILL') -> true")
  t:is({ c:wait(5) }, { "signal", 9 }, "proc.kill: the process died of SIGKILL")
  local ok, err = proc.kill(pid, "TERM")
  t:is(ok, nil, "proc.kill of a reaped pid fails")
  t:like(tostring(err), "^proc%.kill: pid " .. pid .. ": No such process",
         "proc.kill says which pid and why")
  c = assert(proc.spawn { argv = { "sleep", "30" } })
  t:is(proc.kill(c:pid()), true, "proc.kill defaults to TERM")
  t:is({ c:wait(5) }, { "signal", 15 }, "proc.kill: the process died of SIGTERM")
  local raised, msg = pcall(proc.kill, 0, "KILL")
  t:ok(not raised and tostring(msg):find("pid must be a positive process id"),
       "proc.kill(0) raises: no process group is signalled")
  raised, msg = pcall(proc.kill, -1, "KILL")
  t:ok(not raised and tostring(msg):find("pid must be a positive process id"),
       "proc.kill(-1) raises")
  raised, msg = pcall(proc.kill, 1, "NOPE")
  t:ok(not raised, "proc.kill with an unknown signal name raises: " .. tostring(msg))
end

-- proc.ready: one wait over several children (the queue worker's loop).
do
  local quiet = assert(proc.spawn { argv = { "sleep", "100" } })
  local talker = assert(proc.spawn { argv = { "sh", "-c", "sleep 0.3; echo hi" } })
  local t0 = proc.now()
  local i, why = proc.ready({ quiet, talker }, 10)
  local waited = proc.now() - t0
  t:is({ i, why }, { 2 }, "ready: the second child's output wakes the wait")
  t:ok(waited >= 0.2 and waited < 8, string.format(
    "ready: it waited for that output (%.2f s), not for the timeout", waited))
  t:is({ talker:read(1) }, { "hi\n", "stdout" }, "ready: nothing was read")
  t:is({ proc.ready({ quiet }, 0.1) }, { nil, "timeout" },
       "ready: a quiet child times out")
  quiet:kill("KILL")
  t:is({ proc.ready({ quiet }, 5) }, { 1 }, "ready: a child's end of output counts")
  drain(quiet, 5)
  drain(talker, 5)
  quiet:wait(5)
  talker:wait(5)
  t0 = proc.now()
  t:is({ proc.ready({ quiet, talker }, 5) }, { nil, "eof" },
       "ready: no open pipe left: eof at once")
  t:ok(proc.now() - t0 < 1, "ready: eof does not wait for the timeout")
  t:is({ proc.ready({}, 0) }, { nil, "eof" }, "ready: no children: eof")
  t:checkerr("item 1 is not a child", proc.ready, { "x" }, 1)
  t:checkerr("timeout must be", proc.ready, {}, -1)
end

-- proc.spawn{fn =}: the function runs in a fork of this state (the queue
-- worker's builds, issue 16) with the same setup as an argv child.
do
  local dir = t:tmpdir()
  local keep = assert(proc.spawn { argv = { "sleep", "100" } })
  local c = assert(proc.spawn { fn = function()
    io.write(proc.getpid(), " ", os.getenv("DJINN_FN_TEST") or "unset", " ",
             require("djinn.fs").cwd(), "\n")
    io.stderr:write("to stderr\n")
    return 7
  end, env = { DJINN_FN_TEST = "yes", PATH = os.getenv("PATH") }, cwd = dir })
  local out, err = drain(c)
  t:is({ c:wait(10) }, { "exit", 7 }, "fn: an integer result is the exit status")
  local pid, env, cwd = out:match("^(%d+) (%S+) (.-)\n$")
  t:ok(pid and tonumber(pid) == c:pid() and tonumber(pid) ~= proc.getpid(),
       "fn: it ran in the child process: " .. out)
  t:is(env, "yes", "fn: env is the child's whole environment")
  t:is(cwd, dir, "fn: cwd applies")
  t:is(err, "to stderr\n", "fn: stderr is its own pipe")
  t:is({ keep:wait(0) }, { nil, "timeout" },
       "fn: a handle the child inherited was not terminated when it exited")

  c = assert(proc.spawn { fn = function() error("fn failed here") end })
  out, err = drain(c)
  t:is({ c:wait(10) }, { "exit", 1 }, "fn: an error exits 1")
  t:like(err, "^djinn%-lua: .-fn failed here\nstack traceback:",
         "fn: an error is printed with its traceback")
  c = assert(proc.spawn { fn = function() return nil, "no luck", 4 end })
  out, err = drain(c)
  t:is({ c:wait(10) }, { "exit", 4 }, "fn: nil, msg, code exits code")
  t:is(err, "djinn-lua: no luck\n", "fn: and prints msg as djinn-lua's main")
  c = assert(proc.spawn { fn = function() return true end })
  drain(c)
  t:is({ c:wait(10) }, { "exit", 0 }, "fn: true is 0")
  c = assert(proc.spawn { fn = function() return {} end })
  out, err = drain(c)
  t:is({ c:wait(10) }, { "exit", 1 }, "fn: anything else is 1")
  t:like(err, "internal error: proc.spawn's fn returned table instead of an exit status",
         "fn: and says what it returned")

  -- What the child makes is its own: finalized when it exits.
  c = assert(proc.spawn { fn = function()
    local s = assert(proc.spawn { argv = { "sleep", "100" } })
    io.write(s:pid(), "\n")
    return 0
  end })
  out = drain(c)
  c:wait(10)
  t:ok(tonumber(out) and wait_gone(tonumber(out)),
       "fn: a process the child spawned and left is terminated at its exit")
  -- A Lua finalizer runs at the child's close, and may allocate there.
  local gcfile = dir .. "/gc.out"
  c = assert(proc.spawn { fn = function()
    _G.keep = setmetatable({}, { __gc = function()
      local parts = {}
      for i = 1, 20000 do parts[i] = tostring(i) end
      local f = assert(io.open(gcfile, "w"))
      f:write(table.concat(parts, ","))
      f:close()
    end })
    return 0
  end })
  drain(c)
  t:is({ c:wait(10) }, { "exit", 0 }, "fn: a child with a finalizer exits 0")
  local f = io.open(gcfile)
  local got = f and f:read("a")
  if f then f:close() end
  t:ok(got and #got > 100000 and got:sub(-12) == ",19999,20000",
       "fn: its finalizer ran at the close, allocating as it went")

  -- An object already garbage, whose finalizer appends the pid of the
  -- process running it to path; the collector is stopped until the
  -- caller restarts it (if it was running: the result).
  local function garbage_at(path)
    local running = collectgarbage("isrunning")
    collectgarbage("stop")
    setmetatable({}, { __gc = function()
      local pf = assert(io.open(path, "a"))
      pf:write(proc.getpid(), "\n")
      pf:close()
    end })
    return running
  end

  -- Garbage at the fork: the collection before it runs its finalizer in
  -- the parent, once; the child's close does not run it again.
  do
    local pidfile = dir .. "/gc-pids"
    local running = garbage_at(pidfile)
    c = assert(proc.spawn { fn = function() return 0 end })
    if running then collectgarbage("restart") end
    drain(c)
    t:is({ c:wait(10) }, { "exit", 0 }, "fn: a child forked with garbage about exits 0")
    collectgarbage()
    local pf = io.open(pidfile)
    t:is(pf and pf:read("a"), proc.getpid() .. "\n",
         "fn: garbage at the fork is finalized once, in the parent")
    if pf then pf:close() end
  end

  -- collect = false: no collection before the fork (the worker, in
  -- generational mode, runs a young one itself): garbage is still there
  -- after the spawn, for the parent's own collector.
  do
    local pidfile = dir .. "/gc-nocollect"
    local running = garbage_at(pidfile)
    c = assert(proc.spawn { fn = function() return 0 end, collect = false })
    local pf = io.open(pidfile)
    local fin = pf and pf:read("a") or ""
    if pf then pf:close() end
    if running then collectgarbage("restart") end
    drain(c)
    t:is({ c:wait(10) }, { "exit", 0 }, "fn, collect = false: the child exits 0")
    -- (the child's close may finalize it there: it runs every finalizer)
    t:ok(not fin:find("^" .. proc.getpid() .. "\n") and
         not fin:find("\n" .. proc.getpid() .. "\n"),
         "fn, collect = false: no collection in the parent before the fork")
  end
  t:checkerr("collect goes with fn", proc.spawn,
             { argv = { "true" }, collect = false })
  t:checkerr("option 'collect' must be a boolean", proc.spawn,
             { fn = function() return 0 end, collect = "no" })

  -- close = false: the child exits when fn returns, its state not
  -- closed: a Lua finalizer of its own does not run; a process it started
  -- (pdeathsig, the default) dies with it all the same.
  do
    local nofile = dir .. "/gc-noclose"
    c = assert(proc.spawn { fn = function()
      _G.keep_noclose = setmetatable({}, { __gc = function()
        local nf = assert(io.open(nofile, "w"))
        nf:write("finalized\n")
        nf:close()
      end })
      local s = assert(proc.spawn { argv = { "sleep", "100" } })
      io.write(s:pid(), "\n")
      return 7
    end, close = false })
    out = drain(c)
    t:is({ c:wait(10) }, { "exit", 7 }, "fn, close = false: the child exits with fn's status")
    t:is(require("djinn.fs").exists(nofile), false,
         "fn, close = false: no finalizer runs at its exit")
    t:ok(tonumber(out) and wait_gone(tonumber(out)),
         "fn, close = false: a process it started dies with it (pdeathsig)")
  end
  t:checkerr("close goes with fn", proc.spawn,
             { argv = { "true" }, close = false })

  -- The child's close frees nothing: freeing wrote to every page of the
  -- heap it shares with its parent (each a copy-on-write fault), for
  -- memory the exit returns anyway. With 20 MiB of live tables here, the
  -- child's page faults (cminflt of /proc/self/stat, counted when it is
  -- reaped) stay far below the 5,000 pages it shares; freeing them
  -- was 5,500 faults.
  do
    local function cminflt()
      local sf = assert(io.open("/proc/self/stat"))
      local rest = sf:read("a"):gsub("^.*%) ", "")
      sf:close()
      local fields = {}
      for x in rest:gmatch("%S+") do fields[#fields + 1] = x end
      return tonumber(fields[9]) -- field 11: cminflt
    end
    local keep = {}
    for i = 1, 200000 do keep[i] = { i } end
    local before = cminflt()
    c = assert(proc.spawn { fn = function() return #keep > 0 and 0 or 1 end })
    drain(c)
    t:is({ c:wait(30) }, { "exit", 0 }, "fn: a child of a 20 MiB heap exits 0")
    local faults = cminflt() - before
    local sf = assert(io.open("/proc/self/comm"))
    local me = sf:read("a")
    sf:close()
    if me:find("^memcheck") then
      -- valgrind's own bookkeeping writes to the child's memory
      t:diag("fn: page faults of the close not counted under valgrind (" ..
             faults .. ")")
    else
      t:ok(faults < 1500, "fn: the child's close frees nothing: " .. faults ..
           " page faults for a heap of 5,000 pages")
    end
    keep = nil
  end

  -- An inherited socket listener is not unlinked by the child.
  local ipc = require "djinn.ipc"
  local sock = dir .. "/s.sock"
  local l = assert(ipc.listen_unix(sock))
  c = assert(proc.spawn { fn = function()
    local l2 = l -- the parent's, reachable from here
    l2 = nil
    collectgarbage()
    return 0
  end })
  drain(c)
  c:wait(10)
  t:ok(require("djinn.fs").exists(sock),
       "fn: a listener inherited and collected in the child leaves the socket")
  l:close()

  -- ps tells a forked child from its parent: its title. cmdline_of(title,
  -- before): the command line of a fn child titled so, once it has run
  -- before().
  local function cmdline_of(title, before)
    local ch = assert(proc.spawn { fn = function()
      if before then before() end
      local g = assert(io.open("/proc/self/cmdline"))
      io.write(g:read("a"))
      g:close()
      return 0
    end, title = title })
    local text = drain(ch)
    ch:wait(10)
    return text:match("^[^%z]*")
  end
  out = cmdline_of("djinn-lua run: build 42")
  local f = assert(io.open("/proc/self/comm"))
  local comm = f:read("a")
  f:close()
  if comm:find("^memcheck") then
    -- valgrind runs the program on a copy of its arguments and shows that
    -- copy as its command line: no title can reach it.
    t:diag("fn: title not checked under valgrind (the command line is valgrind's)")
  else
    t:is(out, "djinn-lua run: build 42",
         "fn: the title is the child's command line")
    -- proc.settitle: the worker's runners say which build they run.
    t:is(cmdline_of("djinn-lua worker: idle runner", function()
      proc.settitle("djinn-lua run: build 7")
    end), "djinn-lua run: build 7",
         "settitle: a new command line, the old one gone")
  end
  -- proc.setenv: what children spawned without env = and environ() see.
  t:is(proc.setenv("DJINN_SETENV_TEST", "b=1"), true, "setenv: true")
  t:is(proc.environ().DJINN_SETENV_TEST, "b=1", "setenv: environ() sees it")
  c = assert(proc.spawn { argv = { "sh", "-c", "printf %s \"$DJINN_SETENV_TEST\"" } })
  t:is(drain(c), "b=1", "setenv: a child spawned without env = inherits it")
  c:wait(10)
  t:is(proc.setenv("DJINN_SETENV_TEST"), true, "setenv(name): removes it")
  t:is(os.getenv("DJINN_SETENV_TEST"), nil, "setenv(name): gone")
  t:checkerr("non%-empty and have no '='", proc.setenv, "A=B", "1")
  t:checkerr("non%-empty and have no '='", proc.setenv, "", "1")
  t:checkerr("title must be a string, and goes with fn", proc.spawn,
             { argv = { "true" }, title = "x" })
  t:checkerr("argv and fn do not go together", proc.spawn,
             { fn = function() end, argv = { "true" } })
  t:checkerr("fn and reap = true do not go together", proc.spawn,
             { fn = function() end, reap = true })
  t:checkerr("fn must be a function", proc.spawn, { fn = "true" })
  keep:kill("KILL")
  keep:wait(5)
end
-- proc.malloc_keep: requests below the kept size come from the heap, not
-- from a mapping of their own (the worker keeps 4 MiB so: glibc giving
-- memory back at 128 KiB cost it a TLB flush a relayed log entry). Seen
-- in a fresh djinn-lua's /proc/self/maps: a 2 MiB string is one more
-- mapping at glibc's defaults, none after malloc_keep(4 MiB).
do
  local build = assert(os.getenv("DJINN_BUILD"), "DJINN_BUILD is not set (run tests/run.sh)")
  local dir = t:tmpdir()
  assert(fs.writefile(dir .. "/keep.lua", [==[
local proc = require "djinn.proc"
local function maps()
    local n, asan = 0, false
    for line in io.lines("/proc/self/maps") do
        n = n + 1
        if line:find("libasan", 1, true) then asan = true end
    end
    return n, asan
end
local s1 = string.rep("x", 1 << 20)
local before, asan = maps()
if asan then -- (ASan's mallopt refuses everything: nil, msg)
    io.write("asan ", tostring(proc.malloc_keep(4 << 20)), "\n")
    return 0
end
if arg[1] == "keep" then
    assert(proc.malloc_keep(4 << 20))
    before = maps()
end
local s2 = string.rep("y", 2 << 20)
io.write(tostring(maps() - before), "\n")
return #s1 + #s2 > 0 and 0 or 1
]==]))
  local function mappings(mode)
    local c = assert(proc.spawn { argv = { build .. "/djinn-lua", dir .. "/keep.lua", mode } })
    local out = drain(c)
    t:is({ c:wait(30) }, { "exit", 0 }, "malloc_keep: the " .. mode .. " child exits 0")
    return out:match("^(%S+)")
  end
  local default, kept = mappings("default"), mappings("keep")
  if default == "asan" then
    -- ASan's allocator is not glibc's: its mallopt refuses, and
    -- malloc_keep says so (the worker goes on without it)
    t:diag("malloc_keep: mappings not counted under ASan")
  else
    t:is(default, "1", "malloc_keep: at glibc's defaults a 2 MiB string is a mapping of its own")
    t:is(kept, "0", "malloc_keep(4 MiB): the same string comes from the heap")
  end
  t:checkerr("between 1 byte and 32 MiB", proc.malloc_keep, 0)
  t:checkerr("between 1 byte and 32 MiB", proc.malloc_keep, 64 << 20)
end
