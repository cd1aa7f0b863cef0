-- Tests of djinn.config: Djinn's driver.conf block language.
local t = ...
local config = require "djinn.config"
local fs = require "djinn.fs"

local function env(vars)
    return { env = function(k) return vars[k] end }
end

-- Every literal type.
local cfg, err = config.parse([==[
# a comment
driver qemu {
    disks "/var/lib/djinn/images"   # trailing comment
    cpus 1
    memory 2048
    load 0.75
    kvm true
    debug false
    boot 1h30m
    poll 500ms
    frac 1.5h
    negative -3
    limit 50MB
    small 1KB
    bytes 7B
    big 2TB
    args ["-a", "-b" "-c",]
    mixed [1 2.5 "x" 60s true ["nested"]]
    empty []
    store { path "/srv"; type "file" }
    accel "tcg"
}
]==], "d.conf")
t:ok(cfg ~= nil, "all literal types parse: " .. tostring(err))
local q = cfg and cfg.driver.qemu or {}
t:is(q.disks, "/var/lib/djinn/images", "string")
t:is(math.type(q.cpus), "integer", "int is an integer")
t:is(q.memory, 2048, "int")
t:is(q.load, 0.75, "float")
t:is({ q.kvm, q.debug }, { true, false }, "bools")
t:is(q.boot, 5400, "duration 1h30m in seconds")
t:is(q.poll, 0.5, "duration 500ms")
t:is(q.frac, 5400, "duration 1.5h")
t:is(q.negative, -3, "negative int")
t:is(q.limit, 50 * 1024 * 1024, "size 50MB, powers of 1024")
t:is({ q.small, q.bytes, q.big }, { 1024, 7, 2 * 1024 ^ 4 // 1 },
     "sizes KB B TB")
t:is(q.args, { "-a", "-b", "-c" }, "array, commas optional, trailing comma")
t:is(q.mixed, { 1, 2.5, "x", 60, true, { "nested" } }, "mixed array")
t:is(q.empty, {}, "empty array")
t:is(q.store, { path = "/srv", type = "file" }, "nested block, ; separators")
t:is(q.accel, "tcg", "unknown keys are kept")

-- Strings: escapes and ${ENV}.
cfg = config.parse([[a "q\"b\\s\n\t\r\$x ${HOME_X}/y ${UNSET_X}! $z"]], "s",
                   env{ HOME_X = "/home/u" })
t:is(cfg and cfg.a, "q\"b\\s\n\t\r$x /home/u/y ! $z",
     "escapes, ${ENV}, unset variable is empty, lone $ kept")
cfg = config.parse([[p "${PATH}"]], "s")
t:is(cfg and cfg.p, os.getenv("PATH"), "${ENV} from the real environment")

-- Blocks: labelled and unlabelled, merging, several drivers.
cfg = config.parse([[
driver ssh { timeout 60s user "root" }
driver os {}
store artifacts { type "file" }
store objects { type "file" }
driver ssh { password "pw" }
top { inner { deep 1 } }
]], "b")
t:is(cfg, {
    driver = { ssh = { timeout = 60, user = "root", password = "pw" },
               os = {} },
    store = { artifacts = { type = "file" }, objects = { type = "file" } },
    top = { inner = { deep = 1 } },
}, "blocks merge by name and label")

-- config.driver fills defaults under the file's values.
t:is(config.driver(cfg, "ssh"), { timeout = 60, user = "root",
                                  password = "pw" }, "driver(): ssh")
t:is(config.driver(nil, "qemu"), { disks = "/var/lib/djinn/images",
                                   cpus = 1, memory = 2048 },
     "driver(): qemu defaults")
t:is(config.driver({}, "os"), {}, "driver(): os has no settings")

-- Errors with FILE:LINE:COL.
local function perr(text)
    local r, e = config.parse(text, "e.conf")
    return r == nil and e or ("no error: " .. tostring(r))
end
t:is(perr('driver ssh {\n  timeout "60s"\n}\n'),
     'e.conf:2:11: driver ssh: timeout: expected a duration, got the ' ..
     'string "60s"; write it without quotes: timeout 60s',
     "a duration written as a string (Djinn's shipped file)")
t:is(perr('driver qemu { cpus "1" }'),
     'e.conf:1:20: driver qemu: cpus: expected an int, got a string "1"',
     "int written as a string")
t:is(perr('driver qemu { memory 2.5 }'),
     'e.conf:1:22: driver qemu: memory: expected an int, got a float 2.5',
     "float for an int")
t:is(perr('driver qemu { cpus 1 cpus 2 }'),
     'e.conf:1:22: driver qemu: cpus is set twice (first at e.conf:1:15)',
     "a key set twice")
t:is(perr('a "x'), 'e.conf:1:3: unterminated string (a " is missing)',
     "unterminated string")
t:is(perr('a "x\ny"'), 'e.conf:1:3: unterminated string: a newline ' ..
     'inside "..." (write \\n)', "newline in a string")
t:is(perr('a "\\q"'), 'e.conf:1:4: unknown escape \\q in string ' ..
     '(allowed: \\" \\\\ \\n \\t \\r \\$)', "unknown escape")
t:is(perr('a "${X"'), 'e.conf:1:4: unterminated ${ in string (write ' ..
     '${NAME})', "unterminated ${")
t:is(perr('a 12x'), 'e.conf:1:3: invalid literal 12x (expected an int ' ..
     '(2048), a float (0.5), a duration (60s, 1h30m, 500ms) or a size ' ..
     '(50MB))', "invalid literal")
t:like(perr('a 5d'), '^e%.conf:1:3: invalid literal 5d', "unknown unit")
t:is(perr('driver qemu {\n  cpus 1\n'),
     'e.conf:3:1: unexpected end of file: a } is missing', "missing }")
t:is(perr('a [1, 2'), 'e.conf:1:3: unterminated array (a ] is missing)',
     "unterminated array")
t:is(perr('a }'), 'e.conf:1:3: expected a value (a "string", number, ' ..
     'duration, size, true/false or [array]), got }', "missing value")
t:is(perr('"a" 1'), 'e.conf:1:1: expected a key, got "a"', "string as key")
t:is(perr('a @'), 'e.conf:1:3: unexpected character "@"', "bad character")
t:is(perr('a 1\na { b 1 }'), 'e.conf:2:1: a is already set to a value; ' ..
     'it cannot also be a block', "value and block under one name")
t:is(perr('driver ssh { timeout "1m" }\ndriver qemu { cpus "2" }\n'),
     'e.conf:1:22: driver ssh: timeout: expected a duration, got the ' ..
     'string "1m"; write it without quotes: timeout 1m\n' ..
     'e.conf:2:20: driver qemu: cpus: expected an int, got a string "2"',
     "every type error is reported")

-- Includes, relative to the including file; cycles.
local dir = t:tmpdir()
assert(fs.mkdir_p(dir .. "/sub"))
assert(fs.writefile(dir .. "/main.conf",
    'driver os {}\ninclude "sub/ssh.conf"\ninclude ["q1.conf", "q2.conf"]\n'))
assert(fs.writefile(dir .. "/sub/ssh.conf",
    'driver ssh { timeout 5m }\ninclude "../more.conf"\n'))
assert(fs.writefile(dir .. "/more.conf", 'driver ssh { user "ci" }\n'))
assert(fs.writefile(dir .. "/q1.conf", 'driver qemu { cpus 4 }\n'))
assert(fs.writefile(dir .. "/q2.conf", 'driver qemu { memory 512 }\n'))
cfg, err = config.load(dir .. "/main.conf")
t:is(cfg, { driver = { os = {}, ssh = { timeout = 300, user = "ci" },
                       qemu = { cpus = 4, memory = 512 } } },
     "include a file and an array, nested and relative: " .. tostring(err))

assert(fs.writefile(dir .. "/c1.conf", 'x 1\ninclude "c2.conf"\n'))
assert(fs.writefile(dir .. "/c2.conf", 'y 1\ninclude "c1.conf"\n'))
cfg, err = config.load(dir .. "/c1.conf")
local real = fs.realpath(dir)
t:is(err, string.format("%s/c2.conf:2:9: include cycle: %s/c1.conf -> " ..
                        "%s/c2.conf -> %s/c1.conf", dir, real, real, real),
     "include cycle detected")
assert(fs.writefile(dir .. "/self.conf", 'include "self.conf"\n'))
cfg, err = config.load(dir .. "/self.conf")
t:like(err, "include cycle", "a file including itself")
assert(fs.writefile(dir .. "/bad.conf", 'include "nope.conf"\n'))
cfg, err = config.load(dir .. "/bad.conf")
t:like(err, '^.*/bad%.conf:1:9: include "nope%.conf": .*No such file',
       "missing include names the including file and position")
assert(fs.writefile(dir .. "/inc-err.conf", 'include "sub/broken.conf"\n'))
assert(fs.writefile(dir .. "/sub/broken.conf", '\n\n  x "unterminated\n'))
cfg, err = config.load(dir .. "/inc-err.conf")
t:like(err, "^.*/sub/broken%.conf:3:5: unterminated string",
       "errors inside an included file name that file")
cfg, err = config.load(dir .. "/missing.conf")
t:like(err, "missing%.conf: cannot read the driver configuration",
       "missing file")

-- Djinn's shipped example (examples/driver.conf, timeout written 60s).
local top = os.getenv("DJINN_TOP") or (t.dir .. "/../..")
cfg, err = config.load(top .. "/examples/driver.conf")
t:is(cfg, {
    driver = {
        ssh = { timeout = 60, user = "root" },
        docker = { host = "unix:///var/run/docker.sock", version = "1.40" },
        qemu = { disks = "/var/lib/djinn/images", cpus = 1, memory = 2048 },
        os = {},
    },
}, "examples/driver.conf loads: " .. tostring(err))
-- The built-in defaults are Djinn's, except that the Docker API version is
-- negotiated with the engine unless configured (Djinn pins 1.40).
local expected = config.defaults()
expected.driver.docker.version = "1.40"
t:is(cfg, expected, "the example equals the built-in defaults plus version")
t:is(config.defaults().driver.docker.version, nil,
     "no default Docker API version: negotiated")
-- And as Djinn ships it (timeout "60s"), it is refused with the fix.
local text = assert(fs.readfile(top .. "/examples/driver.conf"))
local djinn_text = text:gsub("timeout 60s", 'timeout "60s"')
t:ok(djinn_text ~= text, "the example has timeout 60s")
cfg, err = config.parse(djinn_text, "dist/driver.conf")
t:like(err, '^dist/driver%.conf:%d+:%d+: driver ssh: timeout: expected a ' ..
       'duration, got the string "60s"; write it without quotes: ' ..
       'timeout 60s$', "Djinn's dist file is refused with the fix")
