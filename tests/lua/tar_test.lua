-- tar_test.lua - djinn.tar (runtime/l_tar.c, over libarchive): archives
-- made in memory are read back by the real tar(1) and vice versa;
-- extraction refuses absolute names, "..", escaping links.
local t = ...
local tar = require "djinn.tar"
local fs = require "djinn.fs"
local proc = require "djinn.proc"

local function run(argv)
    local c = assert(proc.spawn{ argv = argv, stdout = "pipe", stderr = "stdout" })
    local out = {}
    while true do
        local d, w = c:read(10)
        if d then out[#out + 1] = d elseif w == "eof" then break end
    end
    local how, code = c:wait(10)
    return how == "exit" and code == 0, table.concat(out)
end

local dir = t:tmpdir()
local src = dir .. "/src"
assert(fs.mkdir_p(src .. "/sub/deep"))
assert(fs.writefile(src .. "/a.txt", "alpha\n"))
assert(fs.writefile(src .. "/sub/deep/b.sh", "#!/bin/sh\n", tonumber("755", 8)))
assert(fs.writefile(dir .. "/single.txt", "single\n", tonumber("600", 8)))

-- create: data, dirs, symlinks, host files and trees
local data, err = tar.create({
    { name = "x/hello.txt", data = "hello\n", mode = tonumber("640", 8) },
    { name = "x/empty", type = "dir" },
    { name = "x/link", type = "symlink", linkname = "hello.txt" },
    { name = "tree", path = src },
    { name = "one.txt", path = dir .. "/single.txt" },
}, { mtime = 1000000000 })
t:ok(type(data) == "string" and #data % 512 == 0, "create -> a tar string: " .. tostring(err))
local list = tar.list(data)
local names, byname = {}, {}
for _, e in ipairs(list or {}) do names[#names + 1] = e.name; byname[e.name] = e end
table.sort(names)
t:is(names, { "one.txt", "tree", "tree/a.txt", "tree/sub", "tree/sub/deep",
              "tree/sub/deep/b.sh", "x/empty", "x/hello.txt", "x/link" },
     "list: every entry, trees renamed")
t:is({ byname["x/hello.txt"].type, byname["x/hello.txt"].size, byname["x/hello.txt"].mode },
     { "file", 6, tonumber("640", 8) }, "data entry: type, size, mode")
t:is({ byname["x/link"].type, byname["x/link"].linkname }, { "symlink", "hello.txt" }, "symlink entry")
t:is(byname["tree/sub/deep/b.sh"].mode, tonumber("755", 8), "host mode kept")
t:is(byname["one.txt"].mode, tonumber("600", 8), "host file mode kept")

-- the real tar(1) reads it
assert(fs.writefile(dir .. "/made.tar", data))
local ok, out = run{ "tar", "-tvf", dir .. "/made.tar" }
t:ok(ok and out:find("x/hello.txt") and out:find(" 0/0 ") and
     out:find("tree/sub/deep/b.sh"), "tar(1) lists it, owned by 0/0")
ok, out = run{ "tar", "-xOf", dir .. "/made.tar", "tree/a.txt" }
t:is(out, "alpha\n", "tar(1) extracts the content")

-- extract what tar(1) made
local td = dir .. "/from-tar"
assert(fs.mkdir_p(td))
ok = run{ "tar", "-C", src, "-cf", dir .. "/real.tar", "." }
local res, xerr = tar.extract(assert(fs.readfile(dir .. "/real.tar")), td)
t:ok(res ~= nil, "extract a tar(1) archive: " .. tostring(xerr))
t:is(fs.readfile(td .. "/sub/deep/b.sh"), "#!/bin/sh\n", "content extracted")
t:is((fs.stat(td .. "/sub/deep/b.sh") or {}).mode, tonumber("755", 8), "mode restored")

-- extract our own, with top renaming (GET /archive of "out" -> "res")
local out_dir = dir .. "/x1"
assert(fs.mkdir_p(out_dir))
local t2 = tar.create{ { name = "out", type = "dir" },
                       { name = "out/f.txt", data = "f" },
                       { name = "out/l", type = "symlink", linkname = "f.txt" } }
res, xerr = tar.extract(t2, out_dir, { top = "res" })
t:is(res, { "res", "res/f.txt", "res/l" }, "top renames the first component: " .. tostring(xerr))
t:is(fs.readfile(out_dir .. "/res/f.txt"), "f", "renamed file content")
t:is((fs.lstat(out_dir .. "/res/l") or {}).type, "link", "symlink inside the tree extracted")
res = tar.extract(tar.create{ { name = "file.bin", data = "1" } }, out_dir, { top = "renamed.bin" })
t:is(fs.readfile(out_dir .. "/renamed.bin"), "1", "top renames a single file")

-- refusals
local function refuse(entries_tar, pattern, name)
    local d = dir .. "/r" .. tostring(math.random(1e9))
    assert(fs.mkdir_p(d))
    local r2, e2 = tar.extract(entries_tar, d)
    t:ok(r2 == nil and tostring(e2):find(pattern) ~= nil, name .. ": " .. tostring(e2))
    return d
end
-- archives with bad names, made by tar(1) (tar.create refuses them)
local evil = dir .. "/evil"
assert(fs.mkdir_p(evil))
assert(fs.writefile(evil .. "/x", "x"))
ok = run{ "tar", "-C", evil, "-cf", dir .. "/abs.tar", "-P", "--transform", "s,^x,/tmp/djinn-abs-x,", "x" }
refuse(assert(fs.readfile(dir .. "/abs.tar")), "absolute name", "absolute name refused")
t:ok(not fs.exists("/tmp/djinn-abs-x"), "nothing written at the absolute path")
ok = run{ "tar", "-C", evil, "-cf", dir .. "/dotdot.tar", "-P", "--transform", "s,^x,a/../../escape,", "x" }
refuse(assert(fs.readfile(dir .. "/dotdot.tar")), "%.%.", "\"..\" component refused")
t:ok(not fs.exists(dir .. "/escape"), "nothing written outside")
refuse(tar.create{ { name = "l", type = "symlink", linkname = "/etc" } },
       "leaves the target directory", "absolute symlink refused")
refuse(tar.create{ { name = "d/l", type = "symlink", linkname = "../../up" } },
       "leaves the target directory", "symlink climbing out refused")
-- writing through a symlink (made on disk first) is refused by libarchive
local d3 = dir .. "/through"
assert(fs.mkdir_p(d3))
os.execute("ln -s " .. dir .. "/evil " .. d3 .. "/lnk")
res, xerr = tar.extract(tar.create{ { name = "lnk/pwned", data = "x" } }, d3)
t:ok(res == nil and not fs.exists(dir .. "/evil/pwned"),
     "extracting through an existing symlink is refused: " .. tostring(xerr))
-- hard link to outside
ok = run{ "sh", "-c", "cd " .. evil .. " && ln x hl && tar -cf " .. dir ..
          "/hl.tar -P --transform 's,^x,/etc/passwd,' x hl" }
refuse(assert(fs.readfile(dir .. "/hl.tar")), "absolute name", "hard link archive with absolute target refused")

-- create refusals and errors
local r3, e3 = tar.create{ { name = "../x", data = "1" } }
t:ok(r3 == nil and e3:find("%.%."), "create refuses .. names")
r3, e3 = tar.create{ { name = "/abs", data = "1" } }
t:ok(r3 == nil and e3:find("absolute"), "create refuses absolute names")
r3, e3 = tar.create{ { name = "x", path = dir .. "/nope" } }
t:like(tostring(e3), "nope: No such file or directory", "missing host path -> nil, msg")
t:checkerr("needs data", tar.create, { { name = "x" } })
t:checkerr("unknown type", tar.create, { { name = "x", type = "fifo" } })
t:checkerr("no name", tar.create, { { data = "x" } })
local r4, e4 = tar.list("not a tar at all, definitely not" .. ("\0"):rep(600))
t:ok(r4 == nil and e4:find("^tar%.list: "), "garbage -> nil, msg: " .. tostring(e4))
local r5, e5 = tar.extract("x", dir .. "/does/not/exist")
t:ok(r5 == nil and e5:find("No such file"), "missing target dir -> nil, msg")
t:is(tar.list(tar.create{}), {}, "an empty archive")

-- max: entries refused from their headers, before their data is written
-- (the docker driver's bound on an artifact). 2026-11-27.
local lim = tar.create{ { name = "out", type = "dir" },
                        { name = "out/a", data = ("a"):rep(600) },
                        { name = "out/b", data = ("b"):rep(600) } }
local ld = dir .. "/lim1"
assert(fs.mkdir_p(ld))
t:is({ tar.extract(lim, ld, { max = 599 }) },
     { nil, "tar.extract: out/a: 600 bytes is larger than the limit of 599 bytes", "limit" },
     "max: an entry larger than max -> nil, msg, 'limit'")
t:ok(not fs.exists(ld .. "/out/a"), "max: the oversized entry is not written")
ld = dir .. "/lim2"
assert(fs.mkdir_p(ld))
t:is({ tar.extract(lim, ld, { max = 1199 }) },
     { nil, "tar.extract: out/b: the archive's files add up to more than the limit of 1199 bytes", "limit" },
     "max: entries adding up to more than max are refused")
t:ok(fs.readfile(ld .. "/out/a") == ("a"):rep(600) and not fs.exists(ld .. "/out/b"),
     "max: the entries before stay (the caller removes them), the one over is not written")
ld = dir .. "/lim3"
assert(fs.mkdir_p(ld))
t:is(tar.extract(lim, ld, { max = 1200, top = "res" }), { "res", "res/a", "res/b" },
     "max: exactly max bytes in all extracts")
t:checkerr("max must be an integer >= 0", tar.extract, lim, ld, { max = -1 })

-- extract_file: the same from an archive file
assert(fs.writefile(dir .. "/lim.tar", lim))
ld = dir .. "/lim4"
assert(fs.mkdir_p(ld))
t:is(tar.extract_file(dir .. "/lim.tar", ld, { top = "got" }), { "got", "got/a", "got/b" },
     "extract_file: names")
t:is(fs.readfile(ld .. "/got/b"), ("b"):rep(600), "extract_file: content")
t:is({ tar.extract_file(dir .. "/lim.tar", ld, { max = 10 }) },
     { nil, "tar.extract_file: out/a: 600 bytes is larger than the limit of 10 bytes", "limit" },
     "extract_file with max")
local r6, e6 = tar.extract_file(dir .. "/nope.tar", ld)
t:ok(r6 == nil and e6:find("^tar%.extract_file: .*nope%.tar"), "extract_file of a missing file: " .. tostring(e6))
