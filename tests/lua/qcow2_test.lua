-- qcow2_test.lua - djinn.qcow2 (runtime/l_qcow2.c): the validator on a
-- good image (real qemu-img) and bad ones.
local t = ...
local qcow2 = require "djinn.qcow2"
local fs = require "djinn.fs"
local proc = require "djinn.proc"

local dir = assert(fs.mkdtemp("djinn-qcow2-test-"))
local good = fs.join(dir, "good.qcow2")
local c = assert(proc.spawn { argv = { "qemu-img", "create", "-q", "-f", "qcow2", good, "64M" } })
t:is(select(2, c:wait(60)), 0, "qemu-img create")

local r = qcow2.check(good)
t:is(r.valid, true, "good image is valid")
t:is(r.is_qcow2, true, "good image is qcow2")
t:is(#r.errors, 0, "no errors")
t:is(r.info.version, 3, "version 3")
t:is(r.info.virtual_size, 64 * 1024 * 1024, "virtual size")
t:is(r.info.cluster_size, 65536, "cluster size")
t:is(r.info.compression_type, "zlib", "compression type")
t:is(r.info.deep_checked, true, "deep check ran")
t:is(qcow2.check(good, { header_only = true }).info.deep_checked, false, "header_only")
t:is(qcow2.validate(good), true, "validate good")
local info = qcow2.info(good)
t:is(info.virtual_size, 64 * 1024 * 1024, "info virtual size")

local bytes = fs.readfile(good)
t:is(qcow2.check_string(bytes).valid, true, "check_string on the same bytes")

-- not qcow2
local raw = fs.join(dir, "raw.img")
assert(fs.writefile(raw, string.rep("\0", 4096)))
r = qcow2.check(raw)
t:is(r.valid, false, "raw image invalid")
t:is(r.is_qcow2, false, "raw is not qcow2")
t:is(r.errors[1].code, "not_qcow2", "not_qcow2 code")
t:ok(#r.errors[1].message > 0, "error has a message")
t:is(qcow2.validate(raw), false, "validate raw")
local i2, imsg = qcow2.info(raw)
t:ok(i2 == nil and imsg:find("^qcow2%.info: " .. raw:gsub("%p", "%%%0") .. ": ") ~= nil,
  "info on a bad image is nil, msg: " .. tostring(imsg))

-- a version-2 header (byte 7 = 2) is refused
local v2 = bytes:sub(1, 7) .. "\2" .. bytes:sub(9)
r = qcow2.check_string(v2)
t:is(r.valid, false, "version 2 refused")
local codes = {}
for _, e in ipairs(r.errors) do codes[e.code] = true end
t:ok(codes.version, "version error code")

-- truncated
r = qcow2.check_string(bytes:sub(1, 50))
t:is(r.valid, false, "truncated header refused")

-- missing file: an io error in the report
r = qcow2.check(fs.join(dir, "missing.qcow2"))
t:ok(r.valid == false and r.errors[1].code == "io", "missing file is an io error")

t:checkerr("string expected", qcow2.check, {})
fs.rm_rf(dir)
