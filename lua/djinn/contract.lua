-- djinn.contract: the image-contract check (issue 14, part 2). Boots an
-- image on the qemu driver's own machine (djinn.drivers.qemu: Driver:boot
-- and Driver:login, the same command line, accelerator choice, boot wait
-- and teardown as a build) and checks, item by item, what a build needs
-- from it (docs/djinn-compat.md §2.3, Djinn's Images page):
--
--   banner    the SSH server sends its "SSH-" banner within boot_timeout
--   login     root logs in with an empty password: auth "none" and
--             password "" are tried on separate connections, and the
--             detail says which worked (either is enough)
--   exec      a command runs and its exit status comes back (`exit 3`
--             returns 3, its output arrives)
--   files     a file is placed and fetched back intact: over SFTP, or
--             over exec channels when SFTP does not work (a warning)
--   env       env requests are accepted (AcceptEnv) and arrive; refused:
--             a warning (the driver exports the variables in the job
--             script instead, Djinn itself drops them)
--   root      /root is writable (fail) and /root/.ssh exists (warning)
--   clock     the guest's clock is within a minute of the host's (warning)
--   shutdown  `poweroff` stops the machine within 60 s (warning)
--
-- Each item is { name, status = "pass" | "warn" | "fail" | "skip",
-- detail, fix } (fix: what to change in the image, e.g. the exact
-- sshd_config line). The verdict: any "fail" -> "unusable", else any
-- "warn" -> "warnings" (usable with warnings), else "usable". Items after
-- a failed banner or login are "skip".
--
--   contract.check(o) -> result | nil, cause
--     o = { image = NAME (as a manifest's image:), namespace = NS (as a
--           manifest's namespace:; nil for personal images and base
--           images), registry = PATH, config = the driver qemu block
--           (config.driver(cfg, "qemu")), boot_timeout = seconds (wins
--           over the config's), log = { line =, warn = } (the driver's
--           lines), on_item = function(item) (each item as it is
--           decided), ctx = pipeline context (cancellation) }
--     result = { verdict =, items = { ... }, machine = "qemu 7.2.22,
--       accel tcg, 1 CPU, 256 MiB", label =, path =, sha256 =,
--       seconds = (the whole check) }
--     nil, cause: the image could not be checked at all (not found, not
--     a valid QCOW2, changed on disk, qemu would not start, cancelled).
--     The machine is always torn down (Driver:destroy: QMP quit, TERM,
--     KILL of its process group by PID) and its directory removed.
--   contract.record(db, result) -> id | nil, err: one image_checks row
--   contract.VERDICT_TEXT[verdict] -> "usable with warnings", ...
local fs = require "djinn.fs"
local json = require "djinn.json"
local proc = require "djinn.proc"
local util = require "djinn.util"

local M = {}

M.VERDICT_TEXT = { usable = "usable", warnings = "usable with warnings",
                   unusable = "unusable" }

local SHUTDOWN_WAIT = 60
local CLOCK_SLACK = 60

local SSHD_CONFIG = " (in /etc/ssh/sshd_config, then restart sshd)"

-- What kind of server answered, from its banner.
local function server_kind(banner)
    banner = (banner or ""):lower()
    if banner:find("openssh", 1, true) then return "openssh" end
    if banner:find("dropbear", 1, true) then return "dropbear" end
    return "other"
end

local function login_fix(offered, kind)
    local lines = { "PermitRootLogin yes", "PermitEmptyPasswords yes" }
    if offered and not offered:find("password", 1, true) then
        lines[#lines + 1] = "PasswordAuthentication yes"
    end
    lines[#lines + 1] = "UsePAM no"
    local openssh = "let sshd accept it: " .. table.concat(lines, ", ") ..
        SSHD_CONFIG
    local dropbear = "start dropbear with -B (blank passwords)"
    local parts = { "give root an empty password: passwd -d root" }
    if kind == "dropbear" then
        parts[2] = dropbear
    elseif kind == "openssh" then
        parts[2] = openssh
    else
        parts[2] = "OpenSSH: " .. openssh .. "; dropbear: " .. dropbear
    end
    return table.concat(parts, "; ")
end

-- The guest side of the root item: 1 no /root, 2 not writable, 3 no
-- /root/.ssh. Shell builtins and busybox/coreutils only.
local ROOT_CMD = [[
cd /root 2>/dev/null || { echo "/root does not exist"; exit 1; }
f=/root/.djinn-contract-w.$$
{ : > "$f" && rm -f "$f"; } 2>/dev/null ||
    { echo "/root is not writable"; exit 2; }
[ -d /root/.ssh ] || { echo "/root/.ssh does not exist"; exit 3; }
echo ok
]]

local function verdict_of(items)
    local v = "usable"
    for _, it in ipairs(items) do
        if it.status == "fail" then return "unusable" end
        if it.status == "warn" then v = "warnings" end
    end
    return v
end

-- The checks on a logged-in session s. add(name, status, detail, fix).
local function exec_item(s, add)
    local st, info = s:exec("echo djinn-contract; exit 3", { timeout = 30 })
    if st == 3 and (info.stdout or ""):find("djinn-contract", 1, true) then
        add("exec", "pass", "`exit 3` returned 3 and its output came back")
        return
    end
    add("exec", "fail", st == nil and ("the command did not run: " ..
        tostring(info)) or string.format("`echo djinn-contract; exit 3` " ..
        "returned %s with output %q (expected 3 and that line)",
        tostring(st), tostring(info.stdout or "")),
        "root's login shell must be a POSIX shell (/bin/sh) and the SSH " ..
        "server must run exec requests and report their exit status")
end

local function files_item(s, dir, kind, add)
    local sshxfer = require "djinn.transport.sshxfer"
    local x = sshxfer.new(s, {})
    local how, why = x:method()
    local data = {}
    for i = 0, 4095 do data[#data + 1] = string.char((i * 7 + 3) % 256) end
    data = table.concat(data)
    local src, back = dir .. "/put.bin", dir .. "/get.bin"
    local remote = ".djinn-contract-file"
    local ok, err = fs.writefile(src, data)
    if ok then ok, err = x:put(src, remote, tonumber("600", 8)) end
    if ok then ok, err = x:get(remote, back, 1 << 20, 1) end
    s:exec("rm -f " .. remote, { timeout = 30 })
    if ok and fs.readfile(back) ~= data then
        ok, err = nil, "the file came back with other bytes"
    end
    if not ok then
        add("files", "fail", string.format("placing and fetching a 4 KiB " ..
            "file over %s failed: %s", how == "SFTP" and "SFTP" or
            "exec channels", tostring(err)),
            "the SSH server must run `cat` for root (exec channels) or " ..
            "offer SFTP: Subsystem sftp internal-sftp" .. SSHD_CONFIG)
        return
    end
    if how == "SFTP" then
        add("files", "pass", "placed and fetched a 4 KiB file over SFTP")
        return
    end
    add("files", "warn", "placed and fetched a 4 KiB file over exec " ..
        "channels (cat), the driver's fallback: SFTP does not work (" ..
        tostring(why) .. ")", kind == "dropbear" and
        "install an sftp-server where dropbear looks for it " ..
        "(/usr/lib/sftp-server, e.g. from openssh-sftp-server)" or
        ("Subsystem sftp internal-sftp" .. SSHD_CONFIG))
end

local function env_item(s, kind, add)
    local refused, err = s:env_probe{ DJINN_CONTRACT = "ok" }
    if refused == nil then
        add("env", "warn", "cannot probe env requests: " .. tostring(err) ..
            "; the driver exports build variables in the job script")
        return
    end
    if #refused == 0 then
        local st, info = s:exec('printf %s "$DJINN_CONTRACT"',
            { env = { DJINN_CONTRACT = "ok" }, timeout = 30 })
        if st == 0 and info.stdout == "ok" then
            add("env", "pass", "env requests are accepted (AcceptEnv) " ..
                "and arrive")
            return
        end
    end
    add("env", "warn", "the SSH server refuses env requests (" ..
        "DJINN_CONTRACT): the driver exports build variables in the job " ..
        "script instead (Djinn itself would drop them)", kind == "dropbear"
        and "dropbear accepts no env requests; use OpenSSH with AcceptEnv *"
        or ("AcceptEnv *" .. SSHD_CONFIG))
end

local function root_item(s, add)
    local st, info = s:exec(ROOT_CMD, { timeout = 30 })
    local out = (st and info.stdout or tostring(info)):gsub("%s+$", "")
    if st == 0 then
        add("root", "pass", "/root is writable and /root/.ssh exists")
    elseif st == 3 then
        add("root", "warn", "/root is writable but /root/.ssh does not " ..
            "exist (the driver creates it for its build key)",
            "mkdir -m 700 /root/.ssh")
    elseif st == 1 then
        add("root", "fail", out, "mkdir -m 700 /root (root's home)")
    else
        add("root", "fail", out ~= "" and out or "cannot check /root",
            "make /root writable by root (a read-only root file system?)")
    end
end

local function clock_item(s, add)
    local before = os.time()
    local st, info = s:exec("date +%s", { timeout = 30 })
    local after = os.time()
    local guest = st == 0 and tonumber((info.stdout or ""):match("%d+"))
    if guest == nil then
        add("clock", "warn", "cannot read the guest's clock (`date +%s`: " ..
            tostring(st and info.stdout or info) .. ")",
            "the image needs date(1)")
        return
    end
    local off = guest - (before + after) / 2
    if math.abs(off) <= CLOCK_SLACK then
        add("clock", "pass", string.format("the guest's clock is %.0f s " ..
            "from the host's", off))
        return
    end
    add("clock", "warn", string.format("the guest's clock is %.0f s %s " ..
        "the host's (TLS certificates, make and apt care)", math.abs(off),
        off > 0 and "ahead of" or "behind"),
        "set the clock at boot from the RTC (QEMU's RTC is UTC: " ..
        "hwclock --hctosys --utc) or by NTP")
end

-- Power off from inside and wait for qemu to exit.
local function shutdown_item(d, conn, add)
    local t = proc.now()
    local st, info, code = conn.session:exec("poweroff", { timeout = 10 })
    conn:close()
    local deadline = proc.now() + SHUTDOWN_WAIT
    while proc.now() < deadline do
        if d:dead() then
            add("shutdown", "pass", string.format("the machine powered " ..
                "off %.1f s after `poweroff`", proc.now() - t))
            return
        end
        proc.sleep(0.1)
    end
    local said = ""
    if st ~= nil and st ~= 0 then
        said = string.format(" (it exited %s: %s)", tostring(st),
            ((info.stdout or "") .. (info.stderr or "")):gsub("%s+$", ""))
    elseif st == nil and code ~= "signal" then
        said = " (" .. tostring(info) .. ")"
    end
    add("shutdown", "warn", string.format("the machine was still running " ..
        "%d s after `poweroff`%s; the driver stops it itself", SHUTDOWN_WAIT,
        said), "the image needs a poweroff that powers the machine off " ..
        "(ACPI; busybox init or systemd)")
end

function M.check(o)
    local qemu = require "djinn.drivers.qemu"
    local state = require "djinn.state"
    local t_start = proc.now()
    local cfg = {}
    for k, v in pairs(o.config or {}) do cfg[k] = v end
    if o.boot_timeout then cfg.boot_timeout = o.boot_timeout end
    local log = o.log or { line = function() end, warn = function() end }
    local d, err = qemu.new{ config = cfg, log = log, ctx = o.ctx,
        driver = { image = o.image }, registry = o.registry,
        manifest = { namespace = o.namespace } }
    if d == nil then return nil, err end
    -- A state directory, so that the crash reaper of a later run removes
    -- the machine if this process is killed (djinn.state).
    local rec = state.begin("qemu")
    local items = {}
    local function add(name, status, detail, fix)
        local it = { name = name, status = status, detail = detail,
                     fix = fix }
        items[#items + 1] = it
        if o.on_item then o.on_item(it) end
    end
    local function finish(res, cause)
        d:destroy()
        if rec then rec:finish() end
        return res, cause
    end
    -- Whatever happens (a Lua error included), the machine goes.
    local ok, res, cause = pcall(function()
        local img, t0 = d:boot()
        if img == nil then return finish(nil, t0) end
        local sha = img.sha256
        if sha == nil then
            local db = require("djinn.registry").open(o.registry)
            local rows
            if db then
                rows, err = db:query("SELECT image_sha256(?) AS h", img.path)
                db:close()
            end
            sha = rows and rows[1] and rows[1].h
            if sha == nil then
                return finish(nil, "image " .. img.label .. ": cannot hash " ..
                    img.path .. ": " .. util.plain_error(tostring(err)))
            end
        end
        local result = { label = img.label, path = img.path, sha256 = sha }
        local function done()
            result.items = items
            result.verdict = verdict_of(items)
            result.machine = string.format("qemu %s, accel %s, %d CPU, %d MiB",
                d.qemu_version or "?", tostring(d.accel_used),
                cfg.cpus or 1, cfg.memory or 2048)
            result.seconds = proc.now() - t_start
            return finish(result)
        end
        local function skip_rest(why)
            for _, n in ipairs{ "login", "exec", "files", "env", "root",
                                "clock", "shutdown" } do
                local seen = false
                for _, it in ipairs(items) do
                    if it.name == n then seen = true end
                end
                if not seen then add(n, "skip", why) end
            end
        end

        -- banner + login (auth none), then password "" on its own connection.
        local s_none, e_none, c_none = d:login(t0, { methods = { "none" },
                                                     auth_final = true })
        if s_none == nil and c_none == "cancelled" then
            return finish(nil, e_none)
        end
        if s_none == nil and c_none ~= "auth" then
            local why = tostring(e_none):gsub("^failed to boot machine\n", "")
            local console = d.dir and fs.readfile(d.dir .. "/console.log")
            local fix = "start an SSH server at boot, listening on port 22 " ..
                "(OpenSSH: systemctl enable ssh; dropbear: from inittab), " ..
                "with the network up by DHCP on the virtio NIC; a slow boot " ..
                "needs a longer boot_timeout"
            if console == nil or console == "" then
                why = why .. "\nthe serial console stayed empty: nothing " ..
                    "(boot loader, kernel, init) wrote to it within the " ..
                    "boot timeout (no bootable system on the disk?)"
                fix = "install a boot loader and a kernel on the disk, with " ..
                    "console=ttyS0 on the kernel command line; then " .. fix
            end
            add("banner", "fail", "no SSH banner: " .. why, fix)
            skip_rest("no SSH connection")
            return done()
        end
        local waited = proc.now() - t0
        -- password "" on a connection of its own, the banner known to come:
        -- no 0.3 s banner limit (a loaded OpenSSH answers slower), the host
        -- key pinned when the first login saw it.
        local s_pw, e_pw = require("djinn.transport.sshjob").connect{
            host = "127.0.0.1", port = d.port, user = "root",
            methods = { "password" }, attempt = 10, retry = 0.5,
            deadline = proc.now() + 30, ctx = o.ctx, auth_final = true,
            fingerprint = s_none and s_none.fingerprint,
            alive = function() return d:dead() end,
        }
        if s_pw == nil and o.ctx and o.ctx:cancelled() then
            if s_none then s_none:close() end
            return finish(nil, e_pw)
        end
        local conn = s_none or s_pw
        local banner = conn and conn.session:server_banner()
        add("banner", "pass", string.format("the SSH server answered after " ..
            "%.1f s%s", waited, banner and (" (" .. banner .. ")") or ""))
        local kind = server_kind(banner)
        local function said(c, e)
            if c then return "accepted" end
            local why = tostring(e or ""):gsub("^ssh%.connect: [^:]+:%d+: ", "")
            return "refused" .. (why ~= "" and (" (" .. why .. ")") or "")
        end
        local detail = string.format("root with an empty password: auth " ..
            "none %s; password \"\" %s", said(s_none, e_none), said(s_pw, e_pw))
        if conn == nil then
            local offered = tostring(e_pw or e_none):match(
                "the server offers (.*)$")
            add("login", "fail", detail, login_fix(offered, kind))
            skip_rest("no login")
            return done()
        end
        add("login", "pass", detail)
        if s_none and s_pw then s_pw:close() end
        local s = conn.session
        local ok_items, ierr = pcall(function()
            exec_item(s, add)
            files_item(s, rec and rec.dir or d.dir, kind, add)
            env_item(s, kind, add)
            root_item(s, add)
            clock_item(s, add)
            shutdown_item(d, conn, add)
        end)
        if not ok_items then
            add("error", "fail", "the check stopped: " .. tostring(ierr))
            skip_rest("the check stopped")
        end
        conn:close()
        return done()
    end)
    if not ok then
        finish()
        error(res, 0)
    end
    return res, cause
end

function M.record(db, result)
    local items = {}
    for i, it in ipairs(result.items) do
        items[i] = { name = it.name, status = it.status,
                     detail = it.detail or json.null,
                     fix = it.fix or json.null }
    end
    local n, err = db:exec("INSERT INTO image_checks(sha256, verdict, " ..
        "items, machine) VALUES (?, ?, ?, ?)", result.sha256, result.verdict,
        json.encode(json.array(items)), result.machine or "")
    if n == nil then return nil, err end
    local rows = db:query("SELECT last_insert_rowid() AS id")
    return rows and rows[1] and rows[1].id or true
end

return M
