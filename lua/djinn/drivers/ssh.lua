-- djinn.drivers.ssh: run a build on an existing machine over SSH
-- (docs/djinn-compat.md §3.2). The manifest names the machine:
--
--   driver:
--     type: ssh
--     address: build-host.example:22      (host:port; [v6addr]:port)
--
-- driver.conf, `driver ssh { ... }`:
--   user "root"           login user
--   password "..."        password (tried after "none"; "" when unset)
--   identity "/path/key"  private key file (publickey auth)
--   fingerprint "SHA256:..."  pin the host key: any other key is refused
--   timeout 60s           how long to keep trying to connect
--
-- Djinn's HEAD reads the manifest key `addr` while validating `address`
-- (a bug): this driver reads `address`, the documented key. Jobs run as in
-- the QEMU driver (djinn.transport.sshjob): the script is uploaded to the login
-- directory as <job>.sh, mode 0755, and run as ./<job>.sh. The host key
-- seen at the first connection is pinned for every later connection of the
-- build. Without `fingerprint` the first key is trusted (Djinn accepts any
-- key); set it for machines you do not control.
local proc = require "djinn.proc"
local sshjob = require "djinn.transport.sshjob"

local M = {}

-- What this driver declares (manifest keys, driver.conf keys and
-- defaults, what the reaper cleans): lua/djinn/drivers/ssh_describe.lua.
M.describe = require "djinn.drivers.ssh_describe"
local Driver = {}
Driver.__index = Driver

-- "host:port" | "[v6]:port" -> host, port | nil, why
function M.parse_address(a)
    if type(a) ~= "string" or a == "" then
        return nil, "driver ssh requires address"
    end
    local host, port = a:match("^%[([^%]]+)%]:(%d+)$")
    if host == nil then
        host, port = a:match("^([^:%[%]]+):(%d+)$")
    end
    port = tonumber(port)
    if host == nil or port == nil or port < 1 or port > 65535 then
        return nil, string.format("driver ssh: address %q must be " ..
            "host:port (port 1..65535; IPv6 as [addr]:port)", a)
    end
    return host, port
end

function M.new(o)
    local host, port = M.parse_address(o.driver.address)
    if host == nil then
        return nil, port
    end
    local cfg = o.config or {}
    local timeout = cfg.timeout or 60
    if type(timeout) ~= "number" or timeout <= 0 then
        return nil, "driver.conf: driver ssh: timeout must be a positive " ..
            "duration, e.g. 60s"
    end
    return setmetatable({ log = o.log, ctx = o.ctx, cfg = cfg, host = host,
                          port = port, address = o.driver.address,
                          timeout = timeout }, Driver)
end

function Driver:create(env, objects)
    local log, cfg = self.log, self.cfg
    local user = cfg.user or "root"
    log:line("Connecting to " .. user .. "@" .. self.address .. "...")
    local conn, err = sshjob.connect{
        host = self.host, port = self.port, user = user,
        password = cfg.password, identity = cfg.identity,
        fingerprint = cfg.fingerprint,
        attempt = math.min(5, self.timeout),
        deadline = proc.now() + self.timeout, ctx = self.ctx,
        label = self.address,
    }
    if conn == nil then
        return nil, err
    end
    self.conn = conn
    log:line("Established Driver connection to " .. self.address .. "...")
    log:line("Host key " .. conn.fingerprint)
    log:line("")
    return conn:prepare(env, objects, log)
end

function Driver:execute(job, store)
    if self.conn == nil then
        return "failed", "no SSH connection"
    end
    return self.conn:execute(job, store, self.ctx, self.log)
end

-- run --hold: the host outlives the build anyway; what is held is its
-- session and the job's files in the login's home. -> { command = }
function Driver:hold_info()
    local argv = { "ssh", "-p", tostring(self.port) }
    if self.cfg.identity then
        argv[#argv + 1] = "-i"
        argv[#argv + 1] = self.cfg.identity
    end
    argv[#argv + 1] = (self.cfg.user or "root") .. "@" ..
        self.host
    return { command = require("djinn.util").shell_join(argv) }
end

function Driver:destroy()
    if self.conn then
        pcall(self.conn.close, self.conn)
        self.conn = nil
    end
end

return M
