-- crypto_test.lua - djinn.crypto (issue 16: the queue's sealed secrets)
-- and the queue key's rules (djinn.queue_cli.queue_key): round trips of
-- several sizes, a fresh nonce per seal, every single-byte change of a
-- sealed value refused, the associated data checked, misuse raising. The
-- same blob opened by Python's `cryptography` (an AES-GCM nobody here
-- wrote) is tests/e2e/queue_secrets.sh.
local t = ...
local crypto = require "djinn.crypto"
local fs = require "djinn.fs"

local key = crypto.random(32)
t:is(#key, 32, "random(32): 32 bytes")
t:ok(crypto.random(32) ~= key, "random: two draws differ")
t:ok(not pcall(crypto.random, 0) and not pcall(crypto.random, 4097),
     "random: 0 and 4097 bytes are argument errors")

for _, n in ipairs{ 0, 1, 15, 16, 17, 1000, 1 << 20 } do
    local pt = string.rep("s", n)
    local blob = crypto.seal(key, pt, "aad")
    t:ok(#blob == n + 32 and blob:sub(1, 4) == "DJS1",
         "seal " .. n .. " bytes: DJS1 + nonce + ciphertext + tag (" ..
         #blob .. " bytes)")
    t:ok(crypto.open(key, blob, "aad") == pt, "open " .. n .. " bytes: the plaintext")
end
local pt = "DEPLOY_TOKEN=s3cr3t-value"
local b1, b2 = crypto.seal(key, pt), crypto.seal(key, pt)
t:ok(b1 ~= b2 and b1:sub(5, 16) ~= b2:sub(5, 16),
     "two seals of one plaintext differ (a fresh nonce each)")
t:ok(not b1:find(pt, 1, true), "the plaintext is not in the sealed value")
local all = true
for i = 5, #b1 do
    local c = b1:sub(1, i - 1) .. string.char(b1:byte(i) ~ 1) .. b1:sub(i + 1)
    if crypto.open(key, c) ~= nil then all = false end
end
t:ok(all, "every single-bit change of nonce, ciphertext or tag is refused")
local v, err = crypto.open(key, b1:sub(1, -2))
t:ok(v == nil and err:find("does not authenticate", 1, true),
     "a truncated value is refused: " .. tostring(err))
v, err = crypto.open(crypto.random(32), b1)
t:ok(v == nil and err == "crypto.open: it does not authenticate: another key, or altered data",
     "another key: refused, saying so")
v = crypto.open(key, crypto.seal(key, pt, "manifest A"), "manifest B")
t:ok(v == nil, "other associated data: refused")
t:ok(crypto.open(key, crypto.seal(key, pt, "m"), "m") == pt, "the same associated data: opened")
v, err = crypto.open(key, "DJS0" .. b1:sub(5))
t:ok(v == nil and err == "crypto.open: not a sealed value", "another prefix: not a sealed value")
v, err = crypto.open(key, "DJS1short")
t:ok(v == nil and err == "crypto.open: not a sealed value", "too short: not a sealed value")
t:ok(not pcall(crypto.seal, key:sub(2), pt), "seal: a 31-byte key is an argument error")
t:ok(not pcall(crypto.open, key .. "x", b1), "open: a 33-byte key is an argument error")

-- The queue key file.
local qc = require "djinn.queue_cli"
local dir = t:tmpdir()
local hex = ("0123456789abcdef"):rep(4)
local function keyfile(name, text, mode)
    local p = dir .. "/" .. name
    fs.writefile(p, text, mode)
    return p
end
local k = qc.queue_key{ ["queue-key"] = keyfile("ok.key", hex .. "\n", 384) }
t:ok(k and #k == 32 and k:byte(1) == 0x01 and k:byte(32) == 0xef,
     "queue key: 64 hex digits (and a newline) -> 32 bytes")
local nk, why = qc.queue_key{ ["queue-key"] = keyfile("g.key", hex, 416) }
t:ok(nk == nil and why:find("readable by others (mode 640)", 1, true),
     "queue key: group-readable is refused: " .. tostring(why))
nk, why = qc.queue_key{ ["queue-key"] = keyfile("s.key", hex:sub(2), 384) }
t:ok(nk == nil and why:find("expected 64 hex digits", 1, true),
     "queue key: 63 digits are refused")
nk, why = qc.queue_key{ ["queue-key"] = dir .. "/missing.key" }
t:ok(nk == nil and why:find("missing.key", 1, true), "queue key: a missing file is named")
t:is(qc.queue_key{ ["driver-config"] = keyfile("empty.conf", "", 384) }, false,
     "queue key: none configured -> false")
local conf = keyfile("q.conf", 'queue { key_file "' .. dir .. '/ok.key" }\n', 384)
k = qc.queue_key{ ["driver-config"] = conf }
t:ok(k and #k == 32, "queue key: from driver.conf's queue { key_file }")
