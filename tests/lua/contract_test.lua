-- contract_test.lua - the image-contract check's verdicts without a VM
-- (issue 14, part 2): contract.record into a real registry, read back by
-- images.last_check for a registered image and a base image (hashed by
-- content), images.check_refusal (refuse, override with a warning, no
-- refusal for usable/warnings or no check), and the qemu driver's gate
-- failing before boot. The checks on real VMs are
-- tests/e2e/image_check.sh's.
local t = ...
local contract = require "djinn.contract"
local images = require "djinn.images"
local registry = require "djinn.registry"
local fs = require "djinn.fs"
local proc = require "djinn.proc"
local json = require "djinn.json"

local function run(argv)
    local c = assert(proc.spawn{ argv = argv, stdout = "pipe",
                                 stderr = "pipe" })
    local out = {}
    while true do
        local data, what = c:read(10)
        if data then out[#out + 1] = data
        elseif what == "eof" or what == "timeout" then break end
    end
    local _, code = c:wait(10)
    return code, table.concat(out)
end

local function logger()
    local l = { lines = {}, warns = {} }
    function l:line(s) self.lines[#self.lines + 1] = s end
    function l:warn(s) self.warns[#self.warns + 1] = s end
    return l
end

local dir = t:tmpdir()
local a, b = dir .. "/a.qcow2", dir .. "/b.qcow2"
t:is(run{ "qemu-img", "create", "-q", "-f", "qcow2", a, "8M" }, 0,
     "qemu-img create a")
t:is(run{ "qemu-img", "create", "-q", "-f", "qcow2", b, "16M" }, 0,
     "qemu-img create b")
local disks = dir .. "/disks"
assert(fs.mkdir_p(disks .. "/qemu/x86_64/deb"))
assert(fs.copy(b, disks .. "/qemu/x86_64/deb/base"))
local regpath = dir .. "/reg/registry.db"
local db = assert(registry.open(regpath))
assert(db:register("e2e", "a", a))
local _, sha_a = db:resolve("e2e", "a")
local img_a = assert(images.resolve{ image = "a", namespace = "e2e",
                                     registry = regpath, disks = disks })
local img_base = assert(images.resolve{ image = "deb/base",
                                        registry = regpath, disks = disks })

-- Nothing recorded: no check, no refusal, no hashing of the base image.
t:is(images.last_check(db, img_a), nil, "never checked: nil")
t:is(images.check_refusal(img_a, regpath, logger(), true), nil,
     "never checked: no refusal")
t:is(images.check_refusal(img_a, dir .. "/none.db", logger(), true), nil,
     "no registry: no refusal")

local function result(sha, verdict, items)
    return { sha256 = sha, verdict = verdict, machine = "qemu 7.2.22, " ..
             "accel tcg, 1 CPU, 256 MiB", items = items }
end
local FAIL = {
    { name = "banner", status = "pass", detail = "after 6.0 s" },
    { name = "login", status = "fail", detail = "auth none refused",
      fix = "give root an empty password: passwd -d root" },
    { name = "exec", status = "skip", detail = "no login" },
}
local id = contract.record(db, result(sha_a, "warnings", {
    { name = "env", status = "warn", detail = "refused", fix = "AcceptEnv *" },
}))
t:ok(math.type(id) == "integer", "record -> the row id")
local row = images.last_check(db, img_a)
t:is(row and row.verdict, "warnings", "last_check: the verdict")
t:is(row and row.items[1].fix, "AcceptEnv *", "last_check: items decoded")
t:is(images.check_refusal(img_a, regpath, logger(), true), nil,
     "warnings: no refusal")

-- A newer unusable check wins; refused with the item, its fix and the way
-- out; overridden with a warning.
assert(contract.record(db, result(sha_a, "unusable", FAIL)))
row = images.last_check(db, img_a)
t:is(row and row.verdict, "unusable", "the newest check is the last one")
t:is(images.failed_items(row), "  login: auth none refused\n" ..
     "    fix: give root an empty password: passwd -d root",
     "failed_items: the failed item and its fix only")
local why = images.check_refusal(img_a, regpath, logger(), true)
t:like(why or "", "^image a %(namespace: e2e%): its last boot check %(.*" ..
       "qemu 7%.2%.22, accel tcg, 1 CPU, 256 MiB%) said unusable:\n" ..
       "  login: auth none refused\n", "refusal: what, when, which item")
t:like(why or "", "passwd %-d root", "refusal: the fix")
t:like(why or "", "refuse_unusable false", "refusal: how to override")
local l = logger()
t:is(images.check_refusal(img_a, regpath, l, false), nil,
     "refuse_unusable false: no refusal")
t:like(l.warns[1] or "", "said unusable.*booting it anyway " ..
       "%(refuse_unusable false in driver.conf%)", "... but a warning")

-- A base image: found by its content's hash; only hashed when some
-- content is unusable (it is, a's).
t:is(images.last_check(db, img_base), nil, "base image never checked: nil")
local rows = db:query("SELECT image_sha256(?) AS h", b)
assert(contract.record(db, result(rows[1].h, "unusable", FAIL)))
t:is(images.last_check(db, img_base).verdict, "unusable",
     "base image: the verdict by content")
t:like(images.check_refusal(img_base, regpath, logger(), true) or "",
       "^image deb/base %(base image%): its last boot check",
       "base image: refused")
t:is(contract.VERDICT_TEXT.warnings, "usable with warnings",
     "VERDICT_TEXT")

-- The schema refuses a verdict outside the three.
local n, err = db:exec("INSERT INTO image_checks(sha256, verdict, items) " ..
                       "VALUES (?, 'maybe', '[]')", sha_a)
t:is(n, nil, "image_checks: verdict 'maybe' refused")
t:like(tostring(err), "CHECK constraint", "... by its CHECK")
db:close()

-- The qemu driver's gate: the build fails before qemu is started (the
-- binary does not exist: starting it would be a different error).
local qemu = require "djinn.drivers.qemu"
local pipeline = require "djinn.pipeline"
local function driver(refuse)
    return assert(qemu.new{ log = logger(), ctx = pipeline.new_ctx(nil, proc),
        config = { cpus = 1, memory = 64, accel = "tcg", disks = disks,
                   binary = dir .. "/no-such-qemu", refuse_unusable = refuse },
        driver = { image = "a" }, manifest = { namespace = "e2e" },
        registry = regpath })
end
local d = driver(true)
local ok, cause = d:create({}, {})
d:destroy()
t:is(ok, nil, "gate: create fails")
t:like(tostring(cause), "^failed to boot machine\nimage a %(namespace: " ..
       "e2e%): its last boot check", "gate: with the check's reason")
d = driver(false)
ok, cause = d:create({}, {})
d:destroy()
t:like(tostring(cause), "no%-such%-qemu", "refuse_unusable false: it " ..
       "goes on to start qemu")
t:like(d.log.warns[1] or "", "booting it anyway", "... after a warning")
