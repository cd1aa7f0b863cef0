-- djinn.drivers.qemu: run a build in a QEMU virtual machine booted from a
-- QCOW2 image, over SSH (docs/djinn-compat.md §2.3, §3.1; the job
-- execution is djinn.transport.sshjob's, shared with the SSH driver).
--
-- driver.conf, `driver qemu { ... }`:
--   disks "/var/lib/djinn/images"  base images: <disks>/qemu/x86_64/<name>
--   cpus 1                         -smp
--   memory 2048                    -m, in MiB (Djinn's docs say bytes; its
--                                  code, and this driver, use MiB)
--   accel "auto"                   kvm | tcg | auto: KVM only when it really
--                                  works (djinn.kvm: kvm.usable), else TCG
--   boot_timeout 5m                how long to wait for the guest's SSH
--   restrict false                 true: slirp restrict=on (the guest
--                                  reaches nothing but its SSH forward)
--   lock_root true               after the first login, give root a
--                                  per-build key and end the empty-
--                                  password login (see below)
--   refuse_unusable true           refuse to boot an image whose last
--                                  image-contract check (djinn.contract,
--                                  `image check --boot`) said unusable,
--                                  with its failed items and their
--                                  fixes; false: a warning, then boot
--   binary "qemu-system-x86_64"
--   warm true                      start from a warm snapshot (below)
--   warm_max 8GB                   the snapshots' total size, per cache
--                                  directory (least recently used go)
--   warm_skip ["team/ci/x"]        images never snapshotted (as the
--                                  manifest names them)
--
-- Image resolution (driver.image) and verification are djinn.images'
-- (images.resolve, images.verify), shared with every other consumer: a
-- name of letters, digits, ".", "_" and "-" segments joined by "/" (no
-- "..", no leading "/"), checked before any file is touched. A name
-- without "/" or "." is first looked up in the registry (--registry):
-- the manifest's namespace, then the personal images. Otherwise it is the
-- base image <disks>/qemu/x86_64/<name>. A registered image's file must
-- still have the SHA-256 recorded at registration (the SQL function
-- image_verify, cached by device, inode, size, mtime and ctime, so an
-- unchanged file is not hashed again), and every image is re-validated
-- with the QCOW2 validator before each boot: a swapped or tampered file
-- never boots.
--
-- The machine: qemu-system-x86_64 is a DIRECT child (no -daemonize) in its
-- own process group, killed by the kernel if djinn-lua dies (PDEATHSIG).
-- The disk is a chain of -blockdev nodes: the image, opened read-only
-- with its format pinned to qcow2 and its backing file disabled
-- ("backing": null), under a temporary qcow2 overlay that takes every
-- guest write; the image file itself is never written. Networking is
-- slirp with a forward 127.0.0.1:<port> -> guest :22, where the host port
-- is 0 (the kernel picks a free one atomically, so parallel builds never
-- collide) and the bound port is read back over QMP (human-monitor-command
-- "info usernet"). QMP runs over qemu's stdin/stdout pipes: private to this
-- process, no socket file to protect or remove. The serial console goes to
-- a file, whose tail is shown when the boot fails. A virtio-rng device
-- seeds the guest's RNG (sshd and dropbear wait for it at start).
--
-- Boot wait: the forward accepts TCP before the guest exists, so readiness
-- is the "SSH-" banner. Login attempts wait for it on their own connection
-- (0.3 s each, 20 ms apart, up to boot_timeout), then log in on that same
-- connection: no separate banner poll, no second connection. If qemu exits
-- meanwhile the build fails at once with its stderr.
--
-- Lock (lock_root, default true): the forwarded port is open to every
-- local user, and the image contract lets anyone in as root with an empty
-- password. So right after the driver's own login it appends a new
-- per-build ed25519 key (ssh.keygen, kept in the machine's temporary
-- directory) to /root/.ssh/authorized_keys, proves that the server
-- accepts it with a second connection (publickey only, the host key
-- pinned), and only then turns root's empty password into "*" in
-- /etc/shadow (and /etc/passwd); later connections of this build (a
-- reconnect) use the key. If the key login fails (an image with
-- `PubkeyAuthentication no`, as Djinn's Images page configures them:
-- issue 11, section 3) or the guest cannot do a step, the key line is
-- taken out again (and /root/.ssh or authorized_keys, if the driver made
-- them), root stays as it was, a warning says the machine stays open, and
-- the build goes on with the password login. The overlay is discarded,
-- so the image itself never changes.
--
-- A full disk (issue 10, defect 4): every guest write lands in the
-- overlay, in the build's state directory (djinn.state: under
-- $XDG_RUNTIME_DIR or $TMPDIR). When that file system fills, QEMU pauses
-- the guest (virtio-blk werror=enospc, set explicitly) and sends the QMP
-- event BLOCK_IO_ERROR (action "stop", nospace true), which pump() picks
-- out of the QMP stream. The boot wait and every job poll it: the job
-- fails at once with "no space left for the VM's disk overlay in DIR"
-- (or the I/O error QEMU reported), instead of a paused guest waiting
-- for the build's timeout. Read errors are reported to the guest
-- (rerror=report), as are write errors other than ENOSPC.
--
-- Warm snapshots (issue 15; the cache is djinn.warm's): with `warm` on, a
-- build whose image and machine shape (memory, CPUs, accelerator,
-- restrict) have no snapshot boots cold and, if it gets the snapshot's
-- lock (others boot cold without waiting), saves one as soon as the
-- guest's SSH server first sends its banner, before any login: the guest
-- is paused (QMP stop), a new overlay is put over the disk
-- (blockdev-snapshot, so the old one is frozen and flushed), the device
-- and memory state goes to `migrate` on a Unix socket in the build's
-- state directory (djinn.ipc.listen_unix; never an exec: shell string),
-- the frozen overlay is copied beside it, and the guest runs on. A later
-- build starts qemu with `-incoming defer`, the state file inherited as fd
-- 3 (proc.spawn's files) and a chain image <- frozen overlay <- its own
-- fresh overlay, checks the QEMU version against the snapshot's before
-- `migrate-incoming fd:3`, then `cont`. Nothing a build writes reaches the
-- snapshot. After the login (before any job) the guest is made its own:
-- its clock is set to the host's, and its kernel RNG is reseeded -- the
-- vmgenid device gives every qemu process a new generation id, which a
-- Linux guest with the vmgenid driver takes as a reseed; host randomness
-- is also written to /dev/urandom, and where perl exists (Debian's
-- perl-base) RNDRESEEDCRNG forces the reseed at once. A guest that can do
-- neither gets a warning. The per-build root key comes after, as on a
-- cold boot. A snapshot that fails to load, or whose files changed, is
-- removed and the build boots cold with one warning.
--
-- Teardown (destroy, on
-- every path): close SSH, QMP "quit", wait up to 3 s, then TERM and KILL
-- the process group; the temporary directory (overlay, console log) is
-- removed.
local fs = require "djinn.fs"
local images = require "djinn.images"
local ipc = require "djinn.ipc"
local kvm = require "djinn.kvm"
local proc = require "djinn.proc"
local util = require "djinn.util"
local sshjob = require "djinn.transport.sshjob"
local state = require "djinn.state"
local trace = require "djinn.trace"
local warm = require "djinn.warm"

local M = {}

-- What this driver declares (manifest keys, driver.conf keys and
-- defaults, what the reaper cleans): lua/djinn/drivers/qemu_describe.lua.
M.describe = require "djinn.drivers.qemu_describe"
local Driver = {}
Driver.__index = Driver

local ARCH = "x86_64"

function M.new(o)
    local cfg = o.config or {}
    local d = setmetatable({ log = o.log, ctx = o.ctx, cfg = cfg,
                             manifest = o.manifest, image = o.driver.image,
                             registry = o.registry,
                             build_id = o.build_id }, Driver)
    local accel = cfg.accel or "auto"
    if accel ~= "auto" and accel ~= "kvm" and accel ~= "tcg" then
        return nil, string.format("driver.conf: driver qemu: accel %q is " ..
            "not known (allowed: kvm, tcg, auto)", tostring(accel))
    end
    d.accel = accel
    for _, k in ipairs{ "cpus", "memory" } do
        local v = cfg[k]
        if math.type(v) ~= "integer" or v < 1 or v > 1048576 then
            return nil, string.format("driver.conf: driver qemu: %s %s " ..
                "must be a positive integer (memory in MiB)", k, tostring(v))
        end
    end
    d.boot_timeout = cfg.boot_timeout or 300
    if type(d.boot_timeout) ~= "number" or d.boot_timeout <= 0 then
        return nil, "driver.conf: driver qemu: boot_timeout must be a " ..
            "positive duration, e.g. 5m"
    end
    return d
end

---------------------------------------------------------------------------
-- Image resolution and verification: djinn.images, for every consumer.
---------------------------------------------------------------------------
-- -> img (djinn.images.resolve) | nil, cause
function Driver:resolve()
    return images.resolve{ image = self.image, registry = self.registry,
        namespace = self.manifest and self.manifest.namespace,
        disks = self.cfg.disks, arch = ARCH }
end

-- -> info (qcow2 info table), identity | nil, cause
function Driver:verify(img)
    return images.verify(img, self.log)
end

---------------------------------------------------------------------------
-- The QEMU process.
---------------------------------------------------------------------------
function Driver:choose_accel()
    if self.accel == "tcg" then
        return "tcg", "accel tcg in driver.conf"
    end
    local ok, why = kvm.usable()
    if self.accel == "kvm" then
        if not ok then
            self.log:warn("accel kvm: KVM does not look usable here (" ..
                why .. "); the guest may hang in the BIOS until " ..
                "boot_timeout. Use accel \"auto\" or \"tcg\".")
        end
        return "kvm", "accel kvm in driver.conf"
    end
    if ok then
        return "kvm", "accel auto: KVM works"
    end
    return "tcg", "accel auto: KVM is not usable: " .. why
end

-- Read whatever qemu wrote, without blocking longer than `t`. QMP
-- events that stopped the guest on a disk error are taken out of the
-- stream into self.io_error (the event's JSON line).
function Driver:pump(t)
    local q = self.q
    if q == nil then return end
    local data, what = q:read(t or 0)
    local qmp = false
    while data do
        if what == "stderr" then
            if #self.stderr < 65536 then
                self.stderr = self.stderr .. data
            end
        else
            self.qmp = (self.qmp .. data):sub(-65536)
            qmp = true
        end
        data, what = q:read(0)
    end
    if qmp and self.qmp:find("BLOCK_IO_ERROR", 1, true) then
        self.qmp = self.qmp:gsub('[^\n]*"BLOCK_IO_ERROR"[^\n]*\n',
            function(line)
                local json = require "djinn.json"
                local ev = json.decode(line)
                local d = type(ev) == "table" and ev.data
                if type(d) == "table" and d.action == "stop" and
                    self.io_error == nil then
                    self.io_error = d
                end
                return ""
            end)
    end
end

-- nil, or the cause to fail the build with when a disk error stopped
-- the guest (see "A full disk" above). The paused machine is told to
-- quit at once: an SSH channel to a frozen guest would otherwise wait
-- out its close timeouts.
function Driver:disk_stopped()
    local d = self.io_error
    if d == nil then return nil end
    if not self.quit_sent and self.q and not self.exited then
        self.quit_sent = true
        self.q:write('{"execute":"quit"}\n', 1)
    end
    if d.nospace == true then
        return string.format("no space left for the VM's disk overlay in " ..
            "%s (QEMU paused the guest; free space there, or point " ..
            "XDG_RUNTIME_DIR or TMPDIR at a larger file system)",
            tostring(self.dir))
    end
    return string.format("I/O error on the VM's disk overlay in %s: %s " ..
        "(QEMU paused the guest)", tostring(self.dir),
        tostring(d.reason or d.operation or "unknown"))
end

-- nil while qemu runs, else a message with its exit status and stderr.
function Driver:dead()
    local q = self.q
    if q == nil then return "qemu is not running" end
    local how, code = q:wait(0)
    if how == nil then return nil end
    self:pump(0)
    self.exited = true
    return string.format("qemu exited (%s %s)%s", how, tostring(code),
        self.stderr ~= "" and (": " .. self.stderr:gsub("%s+$", "")) or "")
end

local function run_tool(argv, timeout)
    local c, err = proc.spawn{ argv = argv, stdin = "null", stdout = "pipe",
                               stderr = "stdout" }
    if c == nil then return nil, err end
    local out, deadline = {}, proc.now() + timeout
    while proc.now() < deadline do
        local data, what = c:read(0.2)
        if data then out[#out + 1] = data elseif what == "eof" then break end
    end
    local how, code = c:wait(math.max(0.1, deadline - proc.now()))
    if how == nil then
        c:terminate(1)
        return nil, argv[1] .. ": timed out after " .. timeout .. " s"
    end
    if how ~= "exit" or code ~= 0 then
        return nil, string.format("%s failed (%s %s): %s", argv[1], how,
            tostring(code), table.concat(out):gsub("%s+$", ""))
    end
    return true
end

local function friendly(stderr, label)
    if stderr:find("No such file or directory", 1, true) then
        return "couldn't find image " .. label
    elseif stderr:find('Failed to get "write" lock', 1, true) or
        stderr:find('Failed to get shared "write" lock', 1, true) then
        return "image is currently being modified"
    end
end

function Driver:boot_failure(why)
    local lines = { "failed to boot machine" }
    local f = friendly(self.stderr or "", self.label or "")
    if f then lines[#lines + 1] = f end
    lines[#lines + 1] = why
    local console = self.dir and fs.readfile(self.dir .. "/console.log")
    if console and console ~= "" then
        local tail = console:sub(-1500):gsub("\r", "")
        lines[#lines + 1] = "last lines of the guest console:\n" .. tail
    end
    return table.concat(lines, "\n")
end

-- Send one QMP command and wait for its reply; -> reply text | nil, cause
function Driver:qmp_command(cmd, timeout)
    local ok, err = self.q:write(cmd .. "\n", timeout)
    if not ok then
        return nil, "QMP write: " .. tostring(err)
    end
    local deadline = proc.now() + timeout
    while true do
        local s, e = self.qmp:find('{"return"[^\n]*\n')
        local es, ee = self.qmp:find('{"error"[^\n]*\n')
        if es and (s == nil or es < s) then
            local reply = self.qmp:sub(es, ee)
            self.qmp = self.qmp:sub(ee + 1)
            return nil, "QMP error: " .. reply
        end
        if s then
            local reply = self.qmp:sub(s, e)
            self.qmp = self.qmp:sub(e + 1)
            return reply
        end
        local dead = self:dead()
        if dead then return nil, dead end
        if proc.now() >= deadline then
            return nil, "no QMP reply within " .. timeout .. " s"
        end
        self:pump(0.1)
    end
end

-- The machine's command line (also bench/vm-bench.sh's, so that its
-- reference boots are this very machine). m = { binary =, accel =, cpus =,
-- memory = (MiB), image = path, overlay = path (a qcow2 over the image),
-- console = path (serial log), restrict = bool, name = "djinn-<build
-- id>" (default "djinn") }.
function M.machine_argv(m)
    local json = require("djinn.json").encode
    local netdev = "user,id=net0,hostfwd=tcp:127.0.0.1:0-:22"
    if m.restrict then
        netdev = netdev .. ",restrict=on"
    end
    local argv = {
        m.binary or "qemu-system-x86_64",
        "-name", m.name or "djinn", "-nodefaults", "-no-user-config",
        "-display", "none", "-accel", m.accel,
        "-smp", tostring(m.cpus), "-m", tostring(m.memory),
        "-qmp", "stdio",
        "-serial", "file:" .. m.console:gsub(",", ",,"),
        "-blockdev", json{ driver = "file", ["node-name"] = "image-file",
                           filename = m.image, ["read-only"] = true },
        "-blockdev", json{ driver = "qcow2", ["node-name"] = "image",
                           file = "image-file", ["read-only"] = true,
                           backing = require("djinn.json").null },
    }
    local function add(...)
        for _, v in ipairs{ ... } do argv[#argv + 1] = v end
    end
    if m.warm then
        -- A warm start: the snapshot's frozen overlay between the image
        -- and this machine's own; the state comes in on fd 3.
        add("-blockdev", json{ driver = "file", ["node-name"] = "warm-file",
                               filename = m.warm, ["read-only"] = true },
            "-blockdev", json{ driver = "qcow2", ["node-name"] = "warm",
                               file = "warm-file", ["read-only"] = true,
                               backing = "image" },
            "-incoming", "defer")
    end
    add("-blockdev", json{ driver = "file", ["node-name"] = "overlay-file",
                           filename = m.overlay },
        "-blockdev", json{ driver = "qcow2", ["node-name"] = "disk0",
                           file = "overlay-file",
                           backing = m.warm and "warm" or "image" },
        -- A full overlay pauses the guest (BLOCK_IO_ERROR, see pump).
        "-device", "virtio-blk-pci,drive=disk0,werror=enospc,rerror=report",
        "-netdev", netdev, "-device", "virtio-net-pci,netdev=net0",
        -- Entropy from the host (QEMU's getrandom backend): a guest
        -- whose SSH server waits for the kernel's RNG answers ~1 s sooner
        -- under TCG, and boots less variably.
        "-device", "virtio-rng-pci",
        -- A new generation id for every qemu process (guid=auto): a
        -- Linux guest restored from a warm snapshot reseeds its RNG.
        "-device", "vmgenid")
    return argv
end

-- Start qemu: cold, or (snap, a djinn.warm snapshot) from a warm
-- snapshot. -> true | nil, cause [, "warm"] ("warm": the snapshot could
-- not be used; qemu is stopped then, and a cold start may follow).
function Driver:start_qemu(img, info, accel, snap)
    -- In the build's state directory (djinn.state) when there is one: the
    -- command line then names it, which the reaper needs to prove that a
    -- qemu left by a killed runner is ours.
    local dir, err = self.dir, nil
    if dir == nil then
        dir, err = state.current():mkdir("qemu")
        if dir == nil then dir, err = fs.mkdtemp("djinn-qemu-") end
        if dir == nil then
            return nil, "cannot create a temporary directory: " ..
                tostring(err)
        end
        self.dir = dir
    end
    local overlay = dir .. "/overlay.qcow2"
    os.remove(overlay)
    local vsize = info.virtual_size
    if math.type(vsize) ~= "integer" or vsize <= 0 then
        return nil, "image " .. img.label .. ": no virtual size in its header"
    end
    local ok
    ok, err = run_tool({ "qemu-img", "create", "-q", "-f", "qcow2", "-o",
                         "compat=1.1", overlay, tostring(vsize) }, 60)
    if not ok then
        return nil, "cannot create the disk overlay: " .. tostring(err)
    end
    trace.mark("qemu: overlay created")
    local argv = M.machine_argv{ binary = self.cfg.binary, accel = accel,
        cpus = self.cfg.cpus, memory = self.cfg.memory, image = img.path,
        overlay = overlay, console = dir .. "/console.log",
        name = self.build_id and ("djinn-" .. self.build_id) or nil,
        restrict = self.cfg.restrict == true, warm = snap and snap.disk }
    self.stderr, self.qmp, self.exited, self.io_error = "", "", nil, nil
    local q
    q, err = proc.spawn{ argv = argv, stdin = "pipe", stdout = "pipe",
                         stderr = "pipe", files = snap and { snap.state } }
    if q == nil then
        return nil, tostring(err) .. " (install qemu-system-x86)"
    end
    self.q = q
    self.t_spawn = proc.now()
    trace.mark("qemu: spawned")
    self.qemu_pid = q:pid()
    state.current():record_process("qemu", self.qemu_pid)
    self.log:line(string.format("Started qemu (pid %d, accel %s, %d CPU, " ..
        "%d MiB)", self.qemu_pid, accel, self.cfg.cpus, self.cfg.memory))
    -- The QMP greeting, capabilities negotiation, then the bound port.
    local deadline = proc.now() + 30
    while not self.qmp:find('{"QMP"[^\n]*\n') do
        local dead = self:dead()
        if dead then return nil, self:boot_failure(dead) end
        if proc.now() >= deadline then
            return nil, self:boot_failure("no QMP greeting from qemu " ..
                                          "within 30 s")
        end
        self:pump(0.1)
    end
    -- QEMU's version, from the greeting (the image check records it).
    local g = self.qmp:match('{"QMP"[^\n]*\n') or ""
    local maj, min, mic = g:match('"major":%s*(%d+)'), g:match(
        '"minor":%s*(%d+)'), g:match('"micro":%s*(%d+)')
    self.qemu_version = maj and string.format("%s.%s.%s", maj, min or "0",
                                              mic or "0") or nil
    self.qemu_package = g:match('"package":%s*"([^"]*)"') or ""
    trace.mark("qemu: QMP greeting")
    self.qmp = self.qmp:gsub('^.-{"QMP"[^\n]*\n', "")
    local reply
    reply, err = self:qmp_command('{"execute":"qmp_capabilities"}', 30)
    if reply == nil then
        return nil, self:boot_failure(err)
    end
    if snap then
        local ok2, why = self:restore(snap)
        if not ok2 then
            self:kill_qemu()
            return nil, why, "warm"
        end
    end
    reply, err = self:qmp_command('{"execute":"human-monitor-command",' ..
        '"arguments":{"command-line":"info usernet"}}', 30)
    if reply == nil then
        return nil, self:boot_failure(err)
    end
    local port = tonumber(reply:match(
        "HOST_FORWARD%]%s+%d+%s+127%.0%.0%.1%s+(%d+)%s"))
    if port == nil or port < 1 or port > 65535 then
        return nil, self:boot_failure("qemu did not report the forwarded " ..
                                      "SSH port: " .. reply)
    end
    self.port = port
    trace.mark("qemu: port known")
    if snap then
        reply, err = self:qmp_command('{"execute":"cont"}', 30)
        if reply == nil then
            self:kill_qemu()
            return nil, "cont after the restore: " .. tostring(err), "warm"
        end
        trace.mark("qemu: running from the snapshot")
    end
    return true
end

---------------------------------------------------------------------------
-- Warm snapshots (see "Warm snapshots" at the top; the cache: djinn.warm).
---------------------------------------------------------------------------
local json_null = require("djinn.json").null

local function mib(n)
    return string.format("%.1f MiB", (n or 0) / 1048576)
end

-- Stop qemu without removing the state directory (a cold start follows).
function Driver:kill_qemu()
    local q = self.q
    if q == nil then return end
    if not self.exited then
        q:write('{"execute":"quit"}\n', 1)
        if q:wait(2) == nil then q:terminate(1) end
    end
    q:terminate(1)
    self.q, self.exited = nil, nil
end

-- Poll query-migrate until it ends; -> true | nil, cause
function Driver:migration_done(timeout)
    local deadline = proc.now() + timeout
    while true do
        local reply, err = self:qmp_command('{"execute":"query-migrate"}', 10)
        if reply == nil then return nil, err end
        local status = reply:match('"status":%s*"([^"]+)"')
        if status == "completed" then return true end
        if status == "failed" or status == "cancelled" then
            return nil, "the migration " .. status ..
                (reply:match('"error%-desc":%s*"([^"]*)"') and (": " ..
                reply:match('"error%-desc":%s*"([^"]*)"')) or "")
        end
        if proc.now() >= deadline then
            return nil, "the migration did not finish within " .. timeout ..
                " s (status " .. tostring(status) .. ")"
        end
        self:pump(0.02)
    end
end

-- Load snap's state into the qemu started with -incoming defer (fd 3).
function Driver:restore(snap)
    local want = snap.meta.qemu or {}
    if want.version ~= self.qemu_version or
        (want.package or "") ~= (self.qemu_package or "") then
        return nil, string.format("it was saved by QEMU %s (%s); this is " ..
            "QEMU %s (%s)", tostring(want.version), tostring(want.package),
            tostring(self.qemu_version), tostring(self.qemu_package))
    end
    local reply, err = self:qmp_command('{"execute":"migrate-incoming",' ..
        '"arguments":{"uri":"fd:3"}}', 30)
    if reply == nil then return nil, err end
    trace.mark("qemu: migrate-incoming sent")
    local ok
    ok, err = self:migration_done(120)
    if not ok then
        self:pump(0.2)
        return nil, err .. (self.stderr ~= "" and
            ("; qemu: " .. self.stderr:gsub("%s+$", "")) or "")
    end
    trace.mark("qemu: state loaded")
    return true
end

-- The snapshot this build may use or make: sets self.warm = { dir =,
-- name =, snap = (one to start from) | lock = (ours to make) }; nil
-- when the feature is off for this image.
function Driver:warm_plan(img, id, accel)
    if self.cfg.warm == false then return end
    for _, n in ipairs(self.cfg.warm_skip or {}) do
        if n == self.image or n == img.name then
            self.log:line("Warm snapshots: off for image " .. self.image ..
                          " (warm_skip in driver.conf)")
            return
        end
    end
    local dir, err = warm.dir_for(img)
    if dir == nil then
        self.log:warn("no warm snapshot (" .. tostring(err) .. ")")
        return
    end
    local name = warm.name(img, id, { memory = self.cfg.memory,
        cpus = self.cfg.cpus, accel = accel,
        restrict = self.cfg.restrict == true })
    self.warm = { dir = dir, name = name }
    local snap, bad = warm.lookup(dir, name)
    if snap then
        self.warm.snap = snap
        return
    end
    local lock = warm.lock(dir, name)
    if lock == nil then
        self.log:line("Warm snapshot " .. name .. " is being made by " ..
                      "another build: booting cold")
        return
    end
    snap, bad = warm.lookup(dir, name) -- made while we took the lock?
    if snap then
        lock:unlock()
        self.warm.snap = snap
        return
    end
    if bad then
        self.log:warn("the warm snapshot " .. name .. " is unusable (" ..
                      bad .. "): removed, booting cold")
        warm.remove(dir, name)
    end
    self.warm.lock = lock
end

-- A snapshot could not be used: one warning, remove it (when no other
-- build is making it), and make a new one if we may.
function Driver:warm_failed(why)
    local w = self.warm
    self.log:warn("the warm snapshot " .. w.name .. " could not be " ..
                  "used (" .. tostring(why) .. "): removed, booting cold")
    w.snap = nil
    local lock = warm.lock(w.dir, w.name)
    if lock then
        warm.remove(w.dir, w.name)
        w.lock = lock
    end
end

-- Wait for the guest's first SSH banner, without logging in.
-- -> true | nil, cause
function Driver:wait_banner(t0)
    local ssh = require "djinn.ssh"
    local deadline = t0 + self.boot_timeout
    -- Each attempt waits longer than the last, up to 3 s: a guest whose
    -- sshd takes more than the first 0.3 s to answer a connection
    -- (OpenSSH re-executes itself per connection; under TCG on a loaded
    -- machine that took seconds) must not be cut off at every attempt.
    local attempt = 0.3
    while true do
        self:pump(0)
        local dead = self:disk_stopped() or self:dead()
        if dead then return nil, self:boot_failure(dead) end
        local reason = self.ctx:cancelled()
        if reason then return nil, self.ctx:cause() or reason end
        if ssh.wait_banner("127.0.0.1", self.port, attempt, attempt, 0.02) then
            return true
        end
        attempt = math.min(3, attempt * 1.5)
        if self.log.progress then
            self.log:progress("boot", string.format("Booting machine " ..
                "with image %s: %.1fs", self.image, proc.now() - t0))
        end
        if proc.now() >= deadline then
            return nil, "no SSH banner within boot_timeout"
        end
    end
end

-- Save the booted, not yet logged-in machine as the snapshot
-- self.warm.name; the machine then runs on (on a new top overlay).
-- -> snap | nil, cause. The machine keeps running either way.
function Driver:warm_save(boot_s)
    local w, t0 = self.warm, proc.now()
    local tmp, err = warm.begin(w.dir, w.name)
    if tmp == nil then return nil, err end
    local stopped = false
    local function fail(why)
        if stopped then self:qmp_command('{"execute":"cont"}', 30) end
        fs.rm_rf(tmp)
        return nil, why
    end
    local top = self.dir .. "/top.qcow2"
    local ok
    ok, err = run_tool({ "qemu-img", "create", "-q", "-f", "qcow2", "-o",
                         "compat=1.1", top, tostring(self.vsize) }, 60)
    if not ok then return fail(err) end
    local sock = self.dir .. "/migrate.sock"
    local l
    l, err = ipc.listen_unix(sock)
    if l == nil then return fail(err) end
    local json = require("djinn.json").encode
    local steps = {
        '{"execute":"stop"}',
        json{ execute = "blockdev-add", arguments = { driver = "file",
              ["node-name"] = "top-file", filename = top } },
        json{ execute = "blockdev-add", arguments = { driver = "qcow2",
              ["node-name"] = "top", file = "top-file",
              backing = json_null } },
        json{ execute = "blockdev-snapshot", arguments = { node = "disk0",
              overlay = "top" } },
        json{ execute = "migrate", arguments = { uri = "unix:" .. sock } },
    }
    for i, cmd in ipairs(steps) do
        local reply
        reply, err = self:qmp_command(cmd, 30)
        if reply == nil then
            l:close()
            return fail(err)
        end
        if i == 1 then stopped = true end
    end
    local bytes
    bytes, err = l:receive(tmp .. "/state", 60, self.qemu_pid)
    l:close()
    if bytes == nil then return fail(err) end
    ok, err = self:migration_done(60)
    if not ok then return fail(err) end
    -- The old overlay is read-only and flushed now (blockdev-snapshot
    -- reopened it so, and the migration inactivated every disk).
    ok, err = fs.copy(self.dir .. "/overlay.qcow2", tmp .. "/disk.qcow2",
                      292)
    if not ok then return fail(err) end
    local reply
    reply, err = self:qmp_command('{"execute":"cont"}', 30)
    if reply == nil then return nil, "cont after saving: " .. tostring(err) end
    stopped = false
    local snap
    snap, err = warm.commit(w.dir, w.name, tmp, {
        image = { label = self.label, sha256 = self.img.sha256,
                  path = self.img.path },
        shape = { memory = self.cfg.memory, cpus = self.cfg.cpus,
                  accel = self.accel_used,
                  restrict = self.cfg.restrict == true },
        qemu = { version = self.qemu_version, package = self.qemu_package },
        created = os.time(), boot_s = boot_s,
        save_s = proc.now() - t0, state_bytes = bytes })
    if snap == nil then return nil, err end
    w.saved = snap
    self.log:line(string.format("Saved warm snapshot %s in %.2fs (%s " ..
        "state, %s disk); later builds start from it", w.name,
        proc.now() - t0, mib(bytes), mib(snap.meta.files.disk.size)))
    local removed = warm.prune(w.dir, self.cfg.warm_max or (8 << 30), w.name)
    if #removed > 0 then
        self.log:line("Removed least recently used warm snapshots (warm_max): "
                      .. table.concat(removed, ", "))
    end
    return snap
end

-- Make a machine started from (or paused for) a snapshot its own, after
-- the driver's login and before any job: the host's time, and a reseeded
-- kernel RNG. It prints what it did: "warm:vmgenid" (the kernel has the
-- driver that reseeds on the new generation id), else "warm:reseeded"
-- (RNDRESEEDCRNG through perl, after mixing in the host's bytes; perl
-- starts slowly under TCG, so only without vmgenid), "warm:noclock".
-- Shell builtins where possible (each process costs tens of milliseconds
-- under TCG); run on its own, or ahead of lock_root's first command (one
-- round trip less).
local FIXUP_CMD = [[
date -u -s "@$1" >/dev/null 2>&1 || date -u -s "@${1%.*}" >/dev/null 2>&1 ||
    echo warm:noclock
printf '%s' "$2" > /dev/urandom 2>/dev/null
if [ -d /sys/bus/acpi/drivers/vmgenid ]; then
    echo warm:vmgenid
elif command -v perl >/dev/null 2>&1 &&
    perl -e 'open(my $f, ">", "/dev/urandom") or exit 1;
             ioctl($f, 0x5207, 0) or exit 1' 2>/dev/null; then
    echo warm:reseeded
fi
set --
]]

function Driver:warm_fixup_cmd()
    local f = io.open("/dev/urandom", "rb")
    local seed = f and f:read(64) or ""
    if f then f:close() end
    local ns = proc.now() % 1
    return string.format("set -- %d.%03d %s\n%s", os.time(),
        math.floor(ns * 1000), (seed:gsub(".", function(c)
            return string.format("%02x", c:byte())
        end)), FIXUP_CMD)
end

-- What the fix-up printed (nil: it did not run).
function Driver:warm_fixup_report(out)
    if out == nil then
        self.log:warn("could not set the machine's clock and reseed its " ..
                      "RNG after the warm start")
        return
    end
    if out:find("warm:noclock", 1, true) then
        self.log:warn("the machine's clock could not be set (date -s " ..
                      "failed): it keeps the snapshot's time")
    end
    local how = out:find("warm:vmgenid", 1, true) and "vmgenid" or
        out:find("warm:reseeded", 1, true) and "RNDRESEEDCRNG"
    if how then
        self.log:line("Set the machine's clock and reseeded its RNG (" ..
                      how .. ")")
    elseif self.warm_started then
        self.log:warn("the machine's kernel RNG may repeat the snapshot's " ..
            "output until it reseeds on its own: its kernel has no " ..
            "vmgenid driver and there is no perl to ask for a reseed " ..
            "(opt the image out with warm_skip in driver.conf)")
    end
end

---------------------------------------------------------------------------
-- The driver interface.
---------------------------------------------------------------------------
-- Boot the machine (shared with djinn.contract, the image check):
-- resolve and verify the image, with o.gate the refusal of an image whose
-- last check said unusable (images.check_refusal; refuse_unusable in
-- driver.conf), choose the accelerator, start qemu; the image must still
-- be the file that was checked. -> img, t0 (proc.now() before qemu
-- started) | nil, cause. self.accel_used is the accelerator.
function Driver:boot(o)
    local log = self.log
    local img, err = self:resolve()
    trace.mark("qemu: image resolved")
    if img == nil then
        return nil, "failed to boot machine\n" .. err
    end
    self.label = img.label
    local info, id = self:verify(img)
    trace.mark("qemu: image verified")
    if info == nil then
        return nil, "failed to boot machine\n" .. id
    end
    self.img = img
    if o and o.gate then
        local why = images.check_refusal(img, self.registry, log,
                                         self.cfg.refuse_unusable ~= false)
        if why then
            return nil, "failed to boot machine\n" .. why
        end
    end
    log:line("Booting machine with image " .. self.image .. "...")
    local accel, why = self:choose_accel()
    log:line("Using accelerator " .. accel .. " (" .. why .. ")")
    self.accel_used = accel
    local t0 = proc.now()
    self.vsize = info.virtual_size
    if o and o.warm then self:warm_plan(img, id, accel) end
    local w, ok, why = self.warm, nil, nil
    if w and w.snap then
        log:line("Starting the machine from warm snapshot " .. w.name ..
                 "...")
        ok, err, why = self:start_qemu(img, info, accel, w.snap)
        if ok then
            self.warm_started = true
            warm.touch(w.snap)
        else
            -- Whatever failed (the state, or a snapshot file removed
            -- meanwhile), the cold path may still work.
            if why ~= "warm" then self:kill_qemu() end
            self:warm_failed(err)
        end
    end
    if not ok then
        t0 = proc.now()
        ok, err = self:start_qemu(img, info, accel)
        if not ok then
            return nil, err
        end
    end
    -- qemu holds the image open now; it must still be the file we checked.
    if not images.unchanged(img.path, id) then
        return nil, "failed to boot machine\nimage " .. img.label .. ": " ..
            img.path .. " changed while the machine was starting"
    end
    return img, t0
end

-- Wait for the guest's SSH server and log in (shared with
-- djinn.contract). The boot wait is the login itself: attempts whose TCP
-- connect and "SSH-" banner must come within 0.3 s (slirp accepts before
-- the guest listens; a guest without network yet leaves the connection
-- hanging), 20 ms apart, each then given 5 s for key exchange and login
-- on the same connection. Between attempts: cancellation, and qemu's
-- death fails at once with its stderr. o = { methods = (default none,
-- password, publickey), auth_final = (an authentication failure ends the
-- wait at once: the server answered) }. -> conn | nil, cause, code
-- (code "auth": refused; "timeout": nothing answered within
-- boot_timeout; "cancelled").
function Driver:login(t0, o)
    o = o or {}
    local log, ctx = self.log, self.ctx
    local deadline = t0 + self.boot_timeout
    local conn, err, code = sshjob.connect{
        host = "127.0.0.1", port = self.port, user = "root",
        -- A restored guest is up already, only slow to answer at first
        -- (TCG translates its code afresh): one longer wait beats
        -- reconnecting.
        banner_timeout = self.warm_started and 2 or 0.3, attempt = 5, retry = 0.02,
        deadline = deadline, ctx = ctx, methods = o.methods,
        auth_final = o.auth_final,
        alive = function()
            self:pump(0)
            if log.progress then
                log:progress("boot", string.format("Booting machine " ..
                    "with image %s: %.1fs", self.image, proc.now() - t0))
            end
            return self:disk_stopped() or self:dead()
        end,
    }
    if log.progress_end then log:progress_end("boot") end
    if conn then return conn end
    local reason = ctx:cancelled()
    if reason then return nil, ctx:cause() or reason, "cancelled" end
    if code == "auth" then return nil, err, "auth" end
    local full = self:disk_stopped()
    if full then return nil, self:boot_failure(full) end
    if self.exited then return nil, self:boot_failure(err) end
    if proc.now() >= deadline then
        return nil, self:boot_failure(string.format("the machine did " ..
            "not answer on SSH (127.0.0.1:%d) within %s (boot_timeout " ..
            "in driver.conf; last attempt: %s)", self.port,
            util.fmt_timeout(self.boot_timeout), err)), "timeout"
    end
    return nil, self:boot_failure(err)
end

function Driver:create(env, objects)
    local log = self.log
    trace.mark("qemu: create")
    log:line("Creating machine with arch " .. ARCH .. "...")
    local img, t0 = self:boot{ gate = true, warm = true }
    if img == nil then
        return nil, t0
    end
    local w = self.warm
    if w and w.lock then
        -- Ours to make: at the first banner, before any login.
        local ok, err = self:wait_banner(t0)
        trace.mark("qemu: first banner")
        if ok then
            local snap
            snap, err = self:warm_save(proc.now() - t0)
            if snap == nil then
                log:warn("no warm snapshot was saved: " .. tostring(err))
            end
            self.warm_paused = true
            trace.mark("qemu: snapshot saved")
        end
        w.lock:unlock()
        w.lock = nil
        if not ok then
            return nil, err
        end
    end
    local conn, err = self:login(t0)
    if conn == nil then
        return nil, err
    end
    self.conn = conn
    trace.mark("qemu: logged in")
    log:line("Established SSH connection to machine as root...")
    local now = proc.now()
    log:line(string.format("Machine ready in %s (%sSSH login after %.2fs; " ..
        "SSH on 127.0.0.1:%d, host key %s)", util.fmt_duration(now - t0),
        self.warm_started and "from a warm snapshot; " or "",
        now - self.t_spawn, self.port, conn.fingerprint))
    log:line("")
    local fix = (self.warm_started or self.warm_paused) and
        self:warm_fixup_cmd()
    if self.cfg.lock_root ~= false then
        local snap = self.warm_started and self.warm.snap
        local ok, why = self:lock_root(conn, fix, snap and
            fs.exists(snap.path .. "/keylogin"))
        trace.mark("qemu: root locked")
        if ok and self.warm and self.warm.saved then
            -- This guest state takes a build key: restores may skip the
            -- proof (see lock_root).
            fs.writefile(self.warm.saved.path .. "/keylogin", "")
        end
        if ok then
            log:line("Locked the machine's root login to a per-build key")
        else
            log:warn("the machine's empty root password stays usable by " ..
                     "other local users on 127.0.0.1:" .. self.port ..
                     " during this build: " .. tostring(why))
        end
    end
    if fix then
        if self.fixup_out == nil then
            local st, info = conn.session:exec(fix, { timeout = 30 })
            self.fixup_out = st and (info.stdout or "") or nil
        end
        self:warm_fixup_report(self.fixup_out)
        trace.mark("qemu: clock and RNG set")
    end
    return conn:prepare(env, objects, log)
end

-- The guest side of lock_root, in three steps. ADD_KEY_CMD: the key
-- arrives on stdin and is appended to authorized_keys; it prints what it
-- had to create ("made DIR FILE", 1 = created). UNDO_KEY_CMD (after
-- `set -- DIR FILE`): takes that line out again, and what was created.
-- LOCK_CMD: root's empty password field becomes "*" (no password matches
-- it; keys still work, unlike "!" which locks the account for every
-- method). Shell builtins only (read, printf, case, redirections) where a
-- file exists already: every process started in a TCG guest costs tens
-- of milliseconds.
local ADD_KEY_CMD = [[
umask 077
d=0; [ -d /root/.ssh ] || { mkdir -p /root/.ssh || exit 1; d=1; }
f=0; [ -e /root/.ssh/authorized_keys ] || f=1
IFS= read -r key || exit 1
printf '%s\n' "$key" >> /root/.ssh/authorized_keys || exit 1
echo "made $d $f"
]]

local UNDO_KEY_CMD = [[
IFS= read -r key || exit 1
a=/root/.ssh/authorized_keys
if [ -f "$a" ]; then
    out=
    while IFS= read -r l || [ -n "$l" ]; do
        [ "$l" = "$key" ] || out="$out$l
"
    done < "$a"
    if [ "$2" = 1 ] && [ -z "$out" ]; then
        rm -f "$a" || exit 1
    else
        printf '%s' "$out" > "$a" || exit 1
    fi
fi
[ "$1" = 1 ] && rmdir /root/.ssh 2>/dev/null
exit 0
]]

local LOCK_CMD = [[
for f in /etc/shadow /etc/passwd; do
    [ -f "$f" ] || continue
    out=; hit=
    while IFS= read -r l || [ -n "$l" ]; do
        case $l in root::*) l="root:*:${l#root::}"; hit=1 ;; esac
        out="$out$l
"
    done < "$f"
    [ -z "$hit" ] || printf '%s' "$out" > "$f" || exit 1
done
]]

local function guest_run(conn, what, cmd, stdin)
    local st, info = conn.session:exec(cmd, { stdin = stdin, timeout = 60 })
    if st == nil then return nil, tostring(info) end
    if st ~= 0 then
        local out = ((info.stdout or "") .. (info.stderr or "")):gsub("%s+$",
                                                                     "")
        return nil, string.format("the guest's %s command exited %d%s",
                                  what, st, out ~= "" and (": " .. out) or "")
    end
    return info.stdout or ""
end

-- prefix: guest commands to run ahead of the first step (the warm
-- fix-up). proven: this very guest state accepted a build key before (a
-- warm snapshot whose maker's lock succeeded: its "keylogin" mark), so
-- adding the key and locking are one command, without the proof's second
-- connection.
function Driver:lock_root(conn, prefix, proven)
    local ssh = require "djinn.ssh"
    local key = self.dir .. "/build_key"
    local pub, err = ssh.keygen(key)
    if pub == nil then return nil, err end
    local line = pub .. " djinn-build"
    local made
    made, err = guest_run(conn, "add-key", (prefix or "") .. ADD_KEY_CMD ..
                          (proven and LOCK_CMD or ""), line .. "\n")
    if made == nil then return nil, err end
    if prefix then self.fixup_out = made end
    if proven then
        conn.o.identity = key
        conn.o.methods = { "publickey" }
        self.key = key
        return true
    end
    local d, f = made:match("made (%d) (%d)")
    -- The key must work before the password goes: a server that refuses
    -- it (PubkeyAuthentication no) would lock the build out.
    local s, lerr = conn:try_login{ identity = key, methods = { "publickey" },
                                    attempt = 10 }
    if s == nil then
        local ok, uerr = guest_run(conn, "remove-key", "set -- " ..
            (d or "0") .. " " .. (f or "0") .. "\n" .. UNDO_KEY_CMD,
            line .. "\n")
        return nil, "the SSH server refused the build's key on a second " ..
            "connection (" .. tostring(lerr) .. "; an image with " ..
            "PubkeyAuthentication no?), so root's login was left as it " ..
            "was" .. (ok and "" or ("; removing the key failed: " ..
            tostring(uerr)))
    end
    s:close()
    local ok
    ok, err = guest_run(conn, "lock", LOCK_CMD)
    if not ok then return nil, err end
    -- Later connections of this build log in with the key.
    conn.o.identity = key
    conn.o.methods = { "publickey" }
    self.key = key
    return true
end

function Driver:execute(job, store)
    if self.conn == nil then
        return "failed", "no SSH connection to the machine"
    end
    local status, cause, code = self.conn:execute(job, store, self.ctx,
        self.log, function()
            self:pump(0)
            local full = self:disk_stopped()
            if full then
                return full
            end
            local dead = self:dead()
            if dead then
                return "the machine stopped: " .. dead
            end
        end)
    -- A disk error that paused the guest after the job's last poll.
    local full = status ~= "passed" and self:disk_stopped()
    if full and cause ~= full then
        cause = full .. (cause and ("; " .. cause) or "")
    end
    return status, cause, code
end

-- run --hold: the ssh command that gets a shell in this machine: the
-- per-build key (lock_root), and the guest's host key pinned in a
-- known_hosts file of the build's, so ssh neither asks nor trusts blindly.
-- -> { command = } | nil, why
function Driver:hold_info()
    if self.conn == nil or self.port == nil or self:dead() then
        return nil, "the machine is not running"
    end
    local argv = { "ssh", "-p", tostring(self.port) }
    local function add(...)
        for _, v in ipairs{ ... } do argv[#argv + 1] = v end
    end
    local hk = self.conn.session and self.conn.session:host_key()
    if hk then
        local kh = self.dir .. "/known_hosts"
        if fs.writefile(kh, string.format("[127.0.0.1]:%d %s\n", self.port,
                                          hk), 384) then
            add("-o", "UserKnownHostsFile=" .. kh,
                "-o", "StrictHostKeyChecking=yes")
        end
    end
    if self.key then
        add("-i", self.key, "-o", "IdentitiesOnly=yes")
    end
    add("root@127.0.0.1")
    local cmd = util.shell_join(argv)
    if not self.key then
        cmd = cmd .. "    # no per-build key (lock_root is off or " ..
            "failed): root's empty password"
    end
    return { command = cmd }
end

-- nil while the held machine runs, else why it is gone.
function Driver:hold_alive()
    self:pump(0)
    return self:dead()
end

function Driver:destroy()
    if self.warm and self.warm.lock then
        self.warm.lock:unlock()
        self.warm.lock = nil
    end
    if self.conn then
        pcall(self.conn.close, self.conn)
        self.conn = nil
    end
    local q = self.q
    if q then
        if not self.exited then
            q:write('{"execute":"quit"}\n', 1)
            local how = q:wait(3)
            if how == nil then
                q:terminate(2)
            end
        end
        -- The process group may hold helpers; make sure it is gone.
        q:terminate(1)
        self.q = nil
    end
    if self.dir then
        fs.rm_rf(self.dir)
        self.dir = nil
    end
end

return M
