-- vm-bench.lua TOP BUILD WORK RUNS - the VM benchmark behind
-- bench/vm-bench.sh (read that file's header). Prints a table; every
-- number is measured in this run, nothing is assumed.
local proc = require "djinn.proc"
local ssh = require "djinn.ssh"
local fs = require "djinn.fs"

local top, build, work, runs = ...
runs = tonumber(runs) or 3
local dl = build .. "/djinn-lua"
local image = build .. "/vm/djinn-tiny.qcow2"
local reg = work .. "/reg/registry.db"

local function median(t)
    local c = {}
    for i, v in ipairs(t) do c[i] = v end
    table.sort(c)
    local n = #c
    if n == 0 then return 0 / 0 end
    if n % 2 == 1 then return c[(n + 1) // 2] end
    return (c[n // 2] + c[n // 2 + 1]) / 2
end

local function mean(t)
    local s = 0
    for _, v in ipairs(t) do s = s + v end
    return s / #t
end

local function fmt(t)
    local p = {}
    for i, v in ipairs(t) do p[i] = string.format("%.2f", v) end
    return table.concat(p, " ")
end

-- Run argv to completion, return exit code and output.
local function run(argv, timeout)
    local c = assert(proc.spawn{ argv = argv, stdin = "null",
                                 stdout = "pipe", stderr = "stdout" })
    local out, deadline = {}, proc.now() + (timeout or 120)
    while proc.now() < deadline do
        local d, w = c:read(0.5)
        if d then out[#out + 1] = d elseif w == "eof" then break end
    end
    local how, code = c:wait(5)
    if how == nil then c:terminate(1) end
    return how == "exit" and code or -1, table.concat(out)
end

-- The driver's machine (qemu.machine_argv, as start_qemu runs it), for (b)
-- and (c); the overlay is made before the clock starts (in (a) it is
-- inside the measured time).
local nq = 0
local function spawn_qemu()
    nq = nq + 1
    local dir = string.format("%s/q%d", work, nq)
    assert(fs.mkdir_p(dir))
    local info = assert(require("djinn.qcow2").info(image))
    assert(run({ "qemu-img", "create", "-q", "-f", "qcow2", "-o",
                 "compat=1.1", dir .. "/overlay.qcow2",
                 tostring(info.virtual_size) }) == 0)
    local argv = require("djinn.drivers.qemu").machine_argv{
        accel = "tcg", cpus = 1, memory = 256, image = image,
        overlay = dir .. "/overlay.qcow2", console = dir .. "/console.log",
        restrict = true }
    local q = assert(proc.spawn{ argv = argv, stdin = "pipe",
                                 stdout = "pipe", stderr = "pipe" })
    local t0 = proc.now()
    assert(q:write('{"execute":"qmp_capabilities"}\n{"execute":' ..
        '"human-monitor-command","arguments":{"command-line":' ..
        '"info usernet"}}\n'))
    local seen, port = "", nil
    local deadline = proc.now() + 30
    while not port and proc.now() < deadline do
        local d = q:read(0.05)
        if d then
            seen = seen .. d
            port = tonumber(seen:match(
                "HOST_FORWARD%]%s+%d+%s+127%.0%.0%.1%s+(%d+)"))
        end
    end
    assert(port, "no port from qemu: " .. seen)
    return q, port, t0
end

-- (b) a plain banner poll straight after starting qemu: fresh TCP
-- connections read until "SSH-" (0.3 s each, as the driver's), retried
-- 10 ms after each failure (tighter than the driver's 20 ms, so (b) is
-- never late), and nothing else of the driver: no registry, no SSH login.
local function measure_b()
    local q, port, t0 = spawn_qemu()
    while true do
        if ssh.wait_banner("127.0.0.1", port, 0.5, 0.3, 0.01) then break end
        assert(q:wait(0) == nil, "qemu exited")
        assert(proc.now() - t0 < 180, "no banner in 180 s")
    end
    local t = proc.now() - t0
    q:terminate(2)
    return t
end

-- (c) Djinn: sleep 2 s after starting qemu, then a connect attempt with a
-- 1 s timeout every 1 s until one succeeds (docs/djinn-compat.md §3.1, §3.2).
local function measure_c()
    local q, port, t0 = spawn_qemu()
    proc.sleep(2)
    local t
    while true do
        local s = ssh.connect{ host = "127.0.0.1", port = port, timeout = 1 }
        if s then
            t = proc.now() - t0
            s:close()
            break
        end
        assert(proc.now() - t0 < 180, "no connection in 180 s")
        proc.sleep(1)
    end
    q:terminate(2)
    return t
end

-- (a) djinn-lua run: from spawning it to the first byte of the first
-- job's output ("+ echo first-output" from set -x).
local function measure_a(conf, manifest)
    local m = manifest or (work .. "/first.yml")
    local t0 = proc.now()
    local env = proc.environ()
    env.DJINN_TRACE = "1"
    local c = assert(proc.spawn{ argv = { dl, "run", "--registry", reg,
        "--driver-config", conf or (work .. "/vm.conf"), "--artifacts",
        work .. "/art", m }, stdin = "null", stdout = "pipe",
        stderr = "stdout", env = env })
    local out, t_first, ready = "", nil, nil
    while true do
        local d, w = c:read(1)
        if d then
            out = out .. d
            if not t_first and out:find("+ echo first-output", 1, true) then
                t_first = proc.now() - t0
            end
        elseif w == "eof" then
            break
        end
        assert(proc.now() - t0 < 300, "run did not finish")
    end
    local how, code = c:wait(10)
    assert(how == "exit" and code == 0, "the run failed:\n" .. out)
    ready = tonumber(out:match("Machine ready in ([%d.]+)s"))
    -- DJINN_TRACE=1 phase stamps (djinn.trace), relative to the spawn
    local phases = {}
    for abs, label in out:gmatch("djinn%-trace: ([%d.]+) %+[%d.]+ ([^\n]+)") do
        phases[#phases + 1] = { label = label, t = tonumber(abs) - t0 }
    end
    return t_first, ready, phases
end

-- per-job overhead on one booted VM
local function measure_jobs()
    local q, port = spawn_qemu()
    while not ssh.wait_banner("127.0.0.1", port, 0.5) do
        assert(q:wait(0) == nil, "qemu exited")
    end
    local s = assert(ssh.connect{ host = "127.0.0.1", port = port,
                                  timeout = 5 })
    s:exec("true")
    local N = 50
    local t0 = proc.now()
    for _ = 1, N do assert(s:exec("true") == 0) end
    local per_exec = (proc.now() - t0) / N
    -- What the driver does per job besides the script (djinn.transport.sshjob):
    -- one exec that writes ./j.sh from stdin and runs it, then rm.
    t0 = proc.now()
    for _ = 1, 20 do
        assert(s:exec("cat > './j.sh' && chmod 755 './j.sh' && exec " ..
                      "'./j.sh'", { stdin = "#!/bin/sh\ntrue\n" }) == 0)
        assert(s:exec("rm -f ./j.sh") == 0)
    end
    local per_job = (proc.now() - t0) / 20
    s:close()
    local NC = 20
    local argv = { "ssh", "-q", "-p", tostring(port), "-o", "BatchMode=yes",
                   "-o", "StrictHostKeyChecking=no", "-o",
                   "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                   "root@127.0.0.1", "true" }
    assert(run(argv, 30) == 0, "ssh CLI failed")
    t0 = proc.now()
    for _ = 1, NC do
        local rc, out = run(argv, 30)
        assert(rc == 0, "ssh CLI failed: " .. out)
    end
    local per_cli = (proc.now() - t0) / NC
    q:terminate(2)
    return per_exec, per_job, per_cli, N, NC
end

-- image warm: make the snapshot for conf; -> seconds, state MiB, disk MiB
local function make_warm(conf, ns, name)
    local rc, out = run({ dl, "image", "warm", "--registry", reg,
                          "--driver-config", conf, ns, name }, 600)
    assert(rc == 0, "image warm failed:\n" .. out)
    local secs, st, dk = out:match("Saved warm snapshot %S+ in ([%d.]+)s " ..
        "%(([%d.]+) MiB state, ([%d.]+) MiB disk%)")
    return tonumber(secs), tonumber(st), tonumber(dk)
end

-- djinn-lua's own share of a warm start: the time to the first output
-- minus qemu's state load (spawned -> state loaded) and the guest's first
-- answer (running -> banner seen).
local function own_share(t_first, phases)
    local t = {}
    for _, e in ipairs(phases) do t[e.label] = t[e.label] or e.t end
    local sp, ld = t["qemu: spawned"], t["qemu: state loaded"]
    local rn, bn = t["qemu: running from the snapshot"], t["ssh: banner seen"]
    if not (sp and ld and rn and bn) then return 0 / 0 end
    return t_first - (ld - sp) - (bn - rn), {
        -- djinn-lua's own steps: start-up to qemu's spawn, and its QMP
        -- commands after qemu's greeting
        own = sp + ((t["qemu: migrate-incoming sent"] or sp) -
                    (t["qemu: QMP greeting"] or sp)),
        -- the guest's work after its first answer: key exchange, login,
        -- the fix-up and lock exec, the first job's start
        guest = t_first - bn }
end

local function warm_conf(memory, path, extra)
    local f = assert(io.open(path, "w"))
    -- Not restrict (vm-warm.conf's shape has it): a snapshot of its own.
    f:write(string.format("driver qemu {\n    cpus 1\n    memory %d\n" ..
        "    accel \"tcg\"\n%s}\n", memory, extra or ""))
    f:close()
    return path
end

io.write(string.format("vm-bench: %d run(s) each, TCG, image %s (%d bytes)\n",
                       runs, image, fs.stat(image).size))
local wsecs, wstate, wdisk = make_warm(work .. "/vm-warm.conf", "bench",
                                       "tiny")
local A, R, Bs, Cs, P, Wt, Wo = {}, {}, {}, {}, {}, {}, {}
local Wown, Wguest = {}, {}
for i = 1, runs do
    -- interleave, so load drifts hit every method alike
    Bs[i] = measure_b()
    A[i], R[i], P[i] = measure_a()
    local wt, _, wp = measure_a(work .. "/vm-warm.conf")
    Wt[i] = wt
    local split
    Wo[i], split = own_share(Wt[i], wp)
    Wown[i], Wguest[i] = split and split.own or 0 / 0,
        split and split.guest or 0 / 0
    Cs[i] = measure_c()
    io.write(string.format("  run %d: a %.2f s  b %.2f s  c %.2f s  w %.2f s" ..
                           "\n", i, A[i], Bs[i], Cs[i], Wt[i]))
    io.flush()
end
local ma, mb, mc = median(A), median(Bs), median(Cs)
print("")
print("boot to first job output (seconds; median of " .. runs .. ")")
print(string.format("  (a) djinn-lua run -> first job output  %6.2f   [%s]",
                    ma, fmt(A)))
print(string.format("      of which the driver's boot wait    %6.2f   [%s]",
                    median(R), fmt(R)))
print(string.format("  (b) guest SSH banner (plain poll)      %6.2f   [%s]",
                    mb, fmt(Bs)))
print(string.format("  (c) Djinn: sleep 2 s + 1 s retries     %6.2f   [%s]",
                    mc, fmt(Cs)))
print(string.format("  (a) - (b) = %+.2f s (goal <= +0.10); (c) - (a) = " ..
                    "%+.2f s", ma - mb, mc - ma))
local mw = median(Wt)
print("")
print("warm snapshots (issue 15; median of " .. runs .. ")")
print(string.format("  snapshot made in %.2f s: %.1f MiB state, %.1f MiB disk",
                    wsecs or 0 / 0, wstate or 0 / 0, wdisk or 0 / 0))
print(string.format("  (w) warm run -> first job output        %6.2f   [%s]",
                    mw, fmt(Wt)))
print(string.format("  (w) / (a) = %.2f (goal <= 0.25); (w) <= 1.5 s: %s",
                    mw / ma, mw <= 1.5 and "yes" or "no"))
print(string.format("  djinn-lua's own share of (w): %.2f s (goal <= 0.20) " ..
                    "[%s]", median(Wo), fmt(Wo)))
print(string.format("    of which djinn-lua's own steps %.2f s (start-up " ..
    "to qemu's spawn, its QMP commands) and the guest's work after its " ..
    "first answer %.2f s (SSH login, the fix-up and lock exec, the first " ..
    "job's start)", median(Wown), median(Wguest)))
-- The phases of (a), from DJINN_TRACE=1 (median per label, seconds after
-- the spawn of djinn-lua; the boot phases relative to (b) for scale).
print("")
print("phases of (a) (DJINN_TRACE=1; median s after spawning djinn-lua)")
local order, at = {}, {}
for _, ph in ipairs(P) do
    for _, e in ipairs(ph) do
        if not at[e.label] then
            at[e.label] = {}
            order[#order + 1] = e.label
        end
        table.insert(at[e.label], e.t)
    end
end
local prev
for _, label in ipairs(order) do
    local m = median(at[label])
    print(string.format("  %-28s %7.3f  %s", label, m,
        prev and string.format("(+%.1f ms)", (m - prev) * 1000) or ""))
    prev = m
end
-- The same split per run, on (a)'s own VM (no boot-to-boot variance):
-- what djinn-lua adds before qemu starts, and what comes after the
-- guest's banner (key exchange, login and the job's start all run in the
-- TCG guest; (b) stops at the banner).
local pre, post, kex, login, lock, job = {}, {}, {}, {}, {}, {}
for _, ph in ipairs(P) do
    local t = {}
    for _, e in ipairs(ph) do t[e.label] = t[e.label] or e.t end
    local b, o = t["ssh: banner seen"], t["job: first output"]
    if b and o and t["qemu: spawned"] then
        pre[#pre + 1] = t["qemu: spawned"]
        post[#post + 1] = o - b
        kex[#kex + 1] = t["ssh: key exchange done"] - b
        login[#login + 1] = t["ssh: logged in"] - t["ssh: key exchange done"]
        local l = t["qemu: root locked"] or t["ssh: logged in"]
        lock[#lock + 1] = l - t["ssh: logged in"]
        job[#job + 1] = o - l
    end
end
if #post > 0 then
    print(string.format("  per run, on (a)'s own VM: djinn-lua start -> qemu " ..
        "%.0f ms; banner -> first output %.0f ms [%s]", median(pre) * 1000,
        median(post) * 1000, fmt(post)))
    print(string.format("    of which key exchange %.0f ms, login %.0f " ..
        "ms, root lock %.0f ms, env probe + first job's start %.0f ms",
        median(kex) * 1000, median(login) * 1000, median(lock) * 1000,
        median(job) * 1000))
    print(string.format("  (a) - (b) on the same VM = %+.2f s", median(pre) +
        median(post)))
end
-- Memory scaling, and the Debian base image when it was built.
local function scale(label, memory, ns, name, manifest, n)
    local conf = warm_conf(memory, string.format("%s/scale-%s-%d.conf",
                                                 work, ns, memory))
    local secs, st, dk = make_warm(conf, ns, name)
    local T = {}
    for i = 1, n do T[i] = measure_a(conf, manifest) end
    print(string.format("  %-22s %5d MiB: made in %5.2f s, %6.1f MiB " ..
        "state, %5.1f MiB disk; warm start %.2f s [%s]", label, memory,
        secs or 0 / 0, st or 0 / 0, dk or 0 / 0, median(T), fmt(T)))
end
print("")
print("warm snapshots by guest memory and image (warm start: median of " ..
      runs .. ")")
for _, mem in ipairs{ 256, 1024, 2048 } do
    scale("tiny", mem, "bench", "tiny", nil, runs)
end
local deb = build .. "/images/debian-12.qcow2"
if fs.exists(deb) then
    assert(run({ dl, "image", "register", "--registry", reg, "bench",
                 "debian", deb }, 600) == 0)
    local m = work .. "/debian.yml"
    local f = assert(io.open(m, "w"))
    f:write((fs.readfile(work .. "/first.yml"):gsub("image: tiny",
                                                    "image: debian")))
    f:close()
    -- The cold path once, for scale (warm false).
    local cold = warm_conf(1024, work .. "/debian-cold.conf",
                           "    warm false\n")
    local tc = measure_a(cold, m)
    print(string.format("  %-22s %5d MiB: cold start %.2f s", "debian-12", 1024,
                        tc))
    scale("debian-12", 1024, "bench", "debian", m, runs)
else
    print("  (no build/images/debian-12.qcow2: `make images` builds it)")
end

local pe, pj, pc, N, NC = measure_jobs()
print("")
print("per-job overhead on a booted VM (milliseconds)")
print(string.format("  djinn.ssh exec of true (mean of %d)       %7.1f", N,
                    pe * 1000))
print(string.format("  driver job: write+run ./j.sh, rm (mean 20) %7.1f",
                    pj * 1000))
print(string.format("  fresh ssh CLI process per job (mean of %d) %7.1f", NC,
                    pc * 1000))
print(string.format("  exec / ssh CLI = %.3f (goal <= 0.2); driver job / " ..
                    "ssh CLI = %.3f", pe / pc, pj / pc))
return 0
