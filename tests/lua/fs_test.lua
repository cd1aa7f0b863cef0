-- fs_test.lua - djinn.fs (runtime/l_fs.c).
local t = ...
local fs = require "djinn.fs"

local root = assert(fs.mkdtemp("djinn-fs-test-"))
t:ok(fs.stat(root).type == "dir", "mkdtemp creates a directory")
t:ok(fs.basename(root):find("^djinn%-fs%-test%-") ~= nil, "mkdtemp uses the prefix")
t:is(fs.stat(root).mode, tonumber("700", 8), "mkdtemp directory is 0700")
t:checkerr("must not contain '/'", fs.mkdtemp, "a/b")

-- mkdir_p
local deep = fs.join(root, "a", "b", "c")
t:is(deep, root .. "/a/b/c", "join")
t:ok(fs.mkdir_p(deep), "mkdir_p creates every level")
t:ok(fs.mkdir_p(deep), "mkdir_p on an existing directory")
t:is(fs.stat(deep).type, "dir", "deep directory exists")
t:ok(fs.writefile(fs.join(root, "file"), "x"), "writefile")
local ok, msg = fs.mkdir_p(fs.join(root, "file", "sub"))
t:ok(ok == nil and msg:find("^fs%.mkdir_p: .*/file: Not a directory") ~= nil, "mkdir_p through a file: " .. tostring(msg))

-- writefile / readfile
local f = fs.join(root, "a", "data.bin")
local payload = string.rep("\0\1\2\255", 5000)
t:ok(fs.writefile(f, payload, tonumber("600", 8)), "writefile binary")
t:is(fs.readfile(f), payload, "readfile round trip")
t:is(fs.stat(f).mode, tonumber("600", 8), "writefile mode")
t:is(fs.stat(f).size, #payload, "stat size")
t:ok(fs.writefile(f, "short"), "writefile replaces")
t:is(fs.readfile(f), "short", "replaced content")
t:is(table.concat(fs.listdir(fs.join(root, "a"))), "bdata.bin", "no temp file left behind")
local r, rmsg = fs.readfile(f, 3)
t:ok(r == nil and rmsg:find("larger than 3 bytes", 1, true), "readfile max_bytes")
r, rmsg = fs.readfile(fs.join(root, "missing"))
t:ok(r == nil and rmsg == "fs.readfile: " .. root .. "/missing: No such file or directory", "readfile missing file")
local w, wmsg = fs.writefile(fs.join(root, "nodir", "x"), "y")
t:ok(w == nil and wmsg:find("No such file or directory", 1, true), "writefile into a missing dir")

-- copy
local src = fs.join(root, "src.sh")
assert(fs.writefile(src, "#!/bin/sh\necho hi\n", tonumber("750", 8)))
t:ok(fs.copy(src, fs.join(root, "dst.sh")), "copy")
t:is(fs.readfile(fs.join(root, "dst.sh")), "#!/bin/sh\necho hi\n", "copied content")
t:is(fs.stat(fs.join(root, "dst.sh")).mode, tonumber("750", 8), "copy keeps the mode")
t:ok(fs.copy(src, fs.join(root, "dst2"), tonumber("644", 8)), "copy with a mode")
t:is(fs.stat(fs.join(root, "dst2")).mode, tonumber("644", 8), "copy mode applied")
local c, cmsg = fs.copy(root, fs.join(root, "x"))
t:ok(c == nil and cmsg:find("not a regular file", 1, true), "copy of a directory refused")

-- stat / lstat / symlinks
local link = fs.join(root, "link")
local outside = assert(fs.mkdtemp("djinn-fs-outside-"))
assert(fs.writefile(fs.join(outside, "keep"), "precious"))
local ln = assert(require("djinn.proc").spawn { argv = { "ln", "-s", outside, link } })
t:is(select(2, ln:wait(10)), 0, "symlink created")
t:is(fs.lstat(link).type, "link", "lstat sees the link")
t:is(fs.stat(link).type, "dir", "stat follows it")
local st = fs.stat(f)
t:ok(st.type == "file" and math.type(st.mtime) == "integer" and st.ino > 0, "stat fields")
local s, smsg = fs.stat(fs.join(root, "nope"))
t:ok(s == nil and smsg:find("^fs%.stat: ") ~= nil, "stat of a missing path")
t:ok(fs.exists(f), "exists")
t:ok(not fs.exists(fs.join(root, "nope")), "exists false")

-- glob and listdir are sorted
for _, n in ipairs { "g3.txt", "g1.txt", "g2.txt", "g.log" } do
  assert(fs.writefile(fs.join(root, n), n))
end
local g = fs.glob(fs.join(root, "g*.txt"))
t:is(#g, 3, "glob matches")
t:is(fs.basename(g[1]) .. fs.basename(g[3]), "g1.txtg3.txt", "glob sorted")
t:is(#fs.glob(fs.join(root, "*.none")), 0, "glob without matches is empty")
local l = fs.listdir(root)
local sorted = { table.unpack(l) }
table.sort(sorted)
t:is(table.concat(l, ","), table.concat(sorted, ","), "listdir sorted")
t:ok(select(2, fs.listdir(fs.join(root, "nope"))):find("^fs%.listdir:") ~= nil, "listdir missing dir")

-- copy_tree
t:ok(fs.copy_tree(fs.join(root, "a"), fs.join(root, "a2")), "copy_tree")
t:is(fs.readfile(fs.join(root, "a2", "data.bin")), "short", "copy_tree file")
t:is(fs.stat(fs.join(root, "a2", "b", "c")).type, "dir", "copy_tree dirs")

-- copy with a byte limit: fstat first, then the bytes are counted (a file
-- may grow while it is copied); nothing is left behind over the limit.
local big = fs.join(root, "big.bin")
assert(fs.writefile(big, string.rep("x", 1000)))
local bc = fs.join(root, "big.copy")
t:is({ fs.copy(big, bc, nil, 999) },
     { nil, "fs.copy: " .. big .. ": larger than the limit of 999 bytes", "limit", 1000 },
     "copy over max: nil, msg, 'limit', the fstat size")
t:ok(not fs.exists(bc), "copy over max (told by fstat): no dst created")
t:ok(fs.copy(big, bc, nil, 1000), "copy of exactly max bytes")
t:is(fs.readfile(bc), string.rep("x", 1000), "exactly max: the whole file kept")
t:ok(fs.copy(big, bc, tonumber("600", 8), 1001) and fs.stat(bc).mode == tonumber("600", 8),
     "copy with a mode and a max")
-- /proc files stat as 0 bytes but have content: only the count can stop them
t:is(fs.stat("/proc/self/status").size, 0, "/proc/self/status stats as 0 bytes")
local pc = fs.join(root, "status.copy")
t:is({ fs.copy("/proc/self/status", pc, nil, 10) },
     { nil, "fs.copy: /proc/self/status: larger than the limit of 10 bytes", "limit" },
     "a file growing past max during the copy is stopped by the count (no size: fstat said 0)")
t:ok(not fs.exists(pc), "the partly written copy is removed")
t:ok(fs.copy("/proc/self/status", pc, nil, 1000000) and #fs.readfile(pc) > 10,
     "the same file under a larger max is copied whole")
assert(fs.writefile(fs.join(root, "empty"), ""))
t:ok(fs.copy(fs.join(root, "empty"), fs.join(root, "empty.copy"), nil, 0), "max 0 allows an empty file")
t:checkerr("max must be >= 0 bytes", fs.copy, big, bc, nil, -1)
t:checkerr("number has no integer representation", fs.copy, big, bc, nil, 1.5)
-- a FIFO is refused at once (opening it must not wait for a writer)
local fifo = fs.join(root, "fifo")
local mk = assert(require("djinn.proc").spawn { argv = { "mkfifo", fifo } })
t:is(select(2, mk:wait(10)), 0, "mkfifo")
local fc, fmsg = fs.copy(fifo, fs.join(root, "fifo.copy"), nil, 100)
t:is({ fc, fmsg }, { nil, "fs.copy: " .. fifo .. ": not a regular file" }, "copy of a FIFO: refused, not blocked")
fs.remove(fifo)

-- copy_tree with a limit on all its files together
local tsrc = fs.join(root, "tsrc")
assert(fs.mkdir_p(fs.join(tsrc, "sub")))
assert(fs.writefile(fs.join(tsrc, "a"), string.rep("a", 600)))
assert(fs.writefile(fs.join(tsrc, "sub", "b"), string.rep("b", 600)))
local tdst = fs.join(root, "tdst")
local tr, tmsg, tcode = fs.copy_tree(tsrc, tdst, 1199)
t:is({ tr, tmsg, tcode }, { nil, "fs.copy_tree: " .. tsrc .. ": larger than the limit of 1199 bytes", "limit" },
     "copy_tree over max: nil, msg, 'limit'")
t:ok(not fs.exists(tdst), "copy_tree over max: the partial copy it made is removed")
t:ok(fs.copy_tree(tsrc, tdst, 1200), "copy_tree of exactly max bytes")
t:is(fs.readfile(fs.join(tdst, "sub", "b")), string.rep("b", 600), "copy_tree under max: files copied")
t:checkerr("max must be >= 0 bytes", fs.copy_tree, tsrc, tdst, -5)

-- mkdtemp in a given directory
local sub = fs.mkdtemp("djinn-sub-", root)
t:ok(sub and fs.dirname(sub) == root and fs.stat(sub).mode == tonumber("700", 8),
     "mkdtemp(prefix, dir) creates a 0700 directory in dir")
t:checkerr("dir must not be empty", fs.mkdtemp, "x-", "")

-- rename, remove, realpath
t:ok(fs.rename(fs.join(root, "dst2"), fs.join(root, "dst3")), "rename")
t:ok(fs.remove(fs.join(root, "dst3")), "remove")
t:ok(not fs.exists(fs.join(root, "dst3")), "removed")
t:is(fs.realpath(link), fs.realpath(outside), "realpath resolves links")

-- path helpers
t:is(fs.basename("/a/b/"), "b", "basename trailing slash")
t:is(fs.basename("/"), "/", "basename root")
t:is(fs.dirname("/a/b"), "/a", "dirname")
t:is(fs.dirname("a"), ".", "dirname relative")
t:is(fs.dirname("/a"), "/", "dirname of top level")
t:is(fs.join("a/", "b", "/abs", "c"), "/abs/c", "join restarts at an absolute part")
t:ok(type(fs.cwd()) == "string", "cwd")

-- rm_rf does not follow symlinks and refuses dangerous paths
for _, p in ipairs { "/", "", ".", "..", "//", "a/.." } do
  local ok2, m2 = fs.rm_rf(p)
  t:ok(ok2 == nil and m2:find("refusing", 1, true) ~= nil, "rm_rf refuses '" .. p .. "'")
end
t:ok(fs.rm_rf(root), "rm_rf the tree")
t:ok(not fs.exists(root), "tree removed")
t:is(fs.readfile(fs.join(outside, "keep")), "precious", "symlink target outside survived")
t:ok(fs.rm_rf(root), "rm_rf of a missing path is fine")
t:ok(fs.rm_rf(outside), "cleanup outside")
