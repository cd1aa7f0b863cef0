-- run_test.lua - djinn.run from a script (require "djinn"): secrets,
-- secret patterns and their errors, on the os driver (real /bin/sh jobs).
local t = ...
local djinn = require "djinn"
local mask = require "djinn.mask"

local X = mask.REPLACEMENT

-- A log writer that keeps everything written to it.
local function capture()
    local buf = {}
    local sink = { write = function(_, s) buf[#buf + 1] = s end }
    local log = djinn.log.new{ out = sink, err = sink, color = false }
    return log, function() return table.concat(buf) end
end

local function manifest(commands, env)
    return { driver = { type = "os" }, env = env, stages = { "s" },
             jobs = { { stage = "s", name = "j", commands = commands } } }
end

local dir = t:tmpdir()

-- 1. secrets = { K = V }: the job sees the value, the output never does.
do
    local log, out = capture()
    local r, err, code = djinn.run(manifest{
        'echo "got:$DEPLOY_PASS:"',
        'test "$DEPLOY_PASS" = "hunter2-hunter2"',
    }, { secrets = { DEPLOY_PASS = "hunter2-hunter2" }, log = log,
         artifacts = dir, signals = false })
    t:is(r and r.status, "passed", "secrets: the job passes (it saw the " ..
         "value): " .. tostring(err) .. " " .. tostring(code))
    t:ok(not out():find("hunter2", 1, true),
         "secrets: the value appears nowhere in the output")
    t:like(out(), "got:" .. X .. ":", "secrets: it is printed as " .. X)
end

-- 2. secrets = { "K=V" } and secret_patterns over env.
do
    local log, out = capture()
    local r = djinn.run(manifest({ "echo $A_TOKEN $MY_CRED $SHORT_TOKEN" },
                                 { "MY_CRED=visible-cred-1" }),
        { secrets = { "A_TOKEN=token-value-99" }, log = log, artifacts = dir,
          env = { SHORT_TOKEN = "abc" }, secret_patterns = { "MY_*" },
          signals = false })
    t:is(r and r.status, "passed", "list secrets and patterns: passes")
    t:ok(not out():find("token-value-99", 1, true),
         "list form {\"K=V\"}: masked")
    t:ok(not out():find("visible-cred-1", 1, true),
         "secret_patterns: a manifest env value whose name matches MY_* " ..
         "is masked")
    t:like(out(), "SHORT_TOKEN matches the secret pattern %*_TOKEN but " ..
           "is shorter than 6 characters", "a short match is warned about")
end

-- 3. Errors: nil, message, 2, and nothing runs.
local bad = {
    { { X_PASS = "short" }, "secret X_PASS cannot be shorter than 6" },
    { { ["1BAD"] = "long-enough-value" }, '"1BAD" is not a variable name' },
    { { "NOEQUALS" }, 'env "NOEQUALS": expected KEY=VALUE' },
}
for _, b in ipairs(bad) do
    local log, out = capture()
    local r, err, code = djinn.run(manifest{ "echo ran" },
        { secrets = b[1], log = log, artifacts = dir, signals = false })
    t:ok(r == nil and code == 2 and err:find(b[2], 1, true) ~= nil,
         "secrets error: " .. tostring(err))
    t:ok(not out():find("ran", 1, true), "secrets error: no job ran")
end
do
    local r, err, code = djinn.run(manifest{ "true" },
        { secret_patterns = { 5 }, quiet = true, artifacts = dir,
          signals = false })
    t:ok(r == nil and code == 2 and err:find("glob strings", 1, true),
         "secret_patterns must be strings: " .. tostring(err))
end

-- 4. mask.scan_env directly.
do
    local warned = {}
    local found = mask.scan_env({ "*_KEY", "DB_*" },
        { { { key = "API_KEY", value = "k-123456" },
            { key = "OTHER", value = "not-a-secret" } },
          { { key = "DB_PASS", value = "dbpass-1" },
            { key = "X_KEY", value = "tiny" } } },
        function(w) warned[#warned + 1] = w end)
    t:is(found, { "k-123456", "dbpass-1" }, "scan_env: matching values, " ..
         "in order, from every list")
    t:is(#warned, 1, "scan_env: one warning for the short match")
    t:like(warned[1] or "", "^X_KEY matches the secret pattern %*_KEY",
           "scan_env: the warning names the variable and the pattern")
end
