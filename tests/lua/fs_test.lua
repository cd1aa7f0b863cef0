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
local us = fs.join(root, "unsynced", "file")
assert(fs.mkdir_p(fs.dirname(us)))
t:ok(fs.writefile(us, "unsynced", tonumber("640", 8), false), "writefile sync = false")
t:is(fs.readfile(us), "unsynced", "sync = false: the content")
t:is(fs.stat(us).mode, tonumber("640", 8), "sync = false: the mode")
t:is(table.concat(fs.listdir(fs.dirname(us))), "file", "sync = false: no temp file left behind")
-- Whether the fsync happens, seen by strace (the real system calls of a
-- djinn-lua writing with sync true, nil and false).
do
    local proc = require "djinn.proc"
    local build = assert(os.getenv("DJINN_BUILD"), "DJINN_BUILD is not set (run tests/run.sh)")
    local script = fs.join(root, "sync.lua")
    assert(fs.writefile(script, [==[
local fs = require "djinn.fs"
local p, mode = arg[1], tonumber("644", 8)
local sync = ({ ["true"] = true, ["false"] = false })[arg[2]]
assert(fs.writefile(p, "x", mode, sync))
]==]))
    -- LeakSanitizer cannot run under ptrace (an ASan build's exit).
    local env = proc.environ()
    env.ASAN_OPTIONS = (env.ASAN_OPTIONS and env.ASAN_OPTIONS .. ":" or "") .. "detect_leaks=0"
    for _, case in ipairs{ { "true", 1 }, { "nil", 1 }, { "false", 0 } } do
        local trace = fs.join(root, "trace-" .. case[1])
        local c = assert(proc.spawn{ argv = { "strace", "-f", "-qq", "-e", "trace=fsync,fdatasync",
                                              "-o", trace, build .. "/djinn-lua", script,
                                              fs.join(root, "synced-" .. case[1]), case[1] },
                                     env = env, stdout = "null", stderr = "null" })
        local how, code = c:wait(60)
        t:ok(how == "exit" and code == 0, "strace djinn-lua writefile sync = " .. case[1] .. ": " .. tostring(how) .. " " .. tostring(code))
        local n = 0
        for line in (fs.readfile(trace) or ""):gmatch("[^\n]+") do
            if line:find("fsync(", 1, true) or line:find("fdatasync(", 1, true) then n = n + 1 end
        end
        t:is(n, case[2], "writefile sync = " .. case[1] .. ": fsync calls")
    end
end

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

-- Issue 10, defect 2 (2026-12-04): artifacts were written through a
-- symbolic link in the middle of the destination path, and copy_tree
-- brought links to anywhere along.
local function symlink(target, path)
  local c = assert(require("djinn.proc").spawn { argv = { "ln", "-s", target, path } })
  assert(select(2, c:wait(10)) == 0, "ln -s " .. target .. " " .. path)
end
local function names(dir)
  return table.concat(fs.listdir(dir) or {}, " ")
end
do
  local art = fs.join(root, "art")
  local away = fs.join(root, "away")
  assert(fs.mkdir_p(art) and fs.mkdir_p(away))
  symlink(away, fs.join(art, "latest"))
  t:is({ fs.mkdir_beneath(art, "a/b/c") }, { true, art .. "/a" },
       "mkdir_beneath creates every level, returns the first it made")
  t:is({ fs.mkdir_beneath(art, "a/b/c") }, { true },
       "mkdir_beneath on existing directories: true, nothing made")
  t:is(fs.stat(art .. "/a/b/c").type, "dir", "mkdir_beneath: the directory exists")
  t:is({ fs.mkdir_beneath(art, "latest/x") },
       { nil, "fs.mkdir_beneath: " .. art .. "/latest: a symbolic link " ..
         "(links below " .. art .. " are not followed)" },
       "mkdir_beneath refuses a link in the middle")
  t:is({ fs.mkdir_beneath(art, "a/../latest/x") },
       { nil, "fs.mkdir_beneath: " .. art .. '/a/..: ".." is not allowed' },
       "mkdir_beneath refuses ..")
  t:ok(select(2, fs.mkdir_beneath(art, "/etc")):find("not a relative path", 1, true),
       "mkdir_beneath refuses an absolute rel")
  t:is(names(away), "", "nothing was made through the link")
  t:ok(not fs.mkdir_beneath(art, "new1/new2/latest2/../x") and not fs.exists(art .. "/new1"),
       "a failing mkdir_beneath removes the directories it made")
  symlink(away, art .. "/a/b/c/lnk")
  t:ok(not fs.mkdir_beneath(art, "a/b/c/n1/n2/../x") and not fs.exists(art .. "/a/b/c/n1") and
       fs.exists(art .. "/a/b/c/lnk"), "... and only those")
  local rootlink = fs.join(root, "artlink")
  symlink(art, rootlink)
  t:ok(fs.mkdir_beneath(rootlink, "via/root"), "the root itself may be a link")
  t:is(fs.stat(art .. "/via/root").type, "dir", "... and is followed")
  assert(fs.writefile(fs.join(art, "file"), "f"))
  t:like(select(2, fs.mkdir_beneath(art, "file/x")), "^fs%.mkdir_beneath: .*/file: Not a directory$",
         "mkdir_beneath through a file")

  -- fs.copy writes a temporary file and renames it: a link at dst is
  -- replaced, never written through; a failed copy leaves dst as it was.
  assert(fs.writefile(fs.join(away, "victim"), "precious"))
  symlink(fs.join(away, "victim"), fs.join(art, "out"))
  local csrc = fs.join(root, "csrc")
  assert(fs.writefile(csrc, "new content"))
  t:ok(fs.copy(csrc, fs.join(art, "out")), "copy onto a symbolic link")
  t:is(fs.readfile(fs.join(away, "victim")), "precious", "copy: the link's target is untouched")
  t:is(fs.lstat(fs.join(art, "out")).type, "file", "copy: the link was replaced by the file")
  t:is(fs.readfile(fs.join(art, "out")), "new content", "copy: content")
  assert(fs.writefile(csrc, ("z"):rep(100)))
  t:is(select(3, fs.copy(csrc, fs.join(art, "out"), nil, 10)), "limit", "a copy over its limit")
  t:is(fs.readfile(fs.join(art, "out")), "new content", "a failed copy leaves dst as it was")
  t:ok(not names(art):find(".djinn", 1, true), "no temporary file left: " .. names(art))

  -- copy_tree copies only links that stay inside the tree
  local tree = fs.join(root, "tree")
  assert(fs.mkdir_p(fs.join(tree, "sub", "deep")))
  assert(fs.writefile(fs.join(tree, "sub", "y"), "y"))
  symlink("sub/y", fs.join(tree, "down"))
  symlink("../y", fs.join(tree, "sub", "deep", "up1"))
  symlink("../../down", fs.join(tree, "sub", "deep", "up2"))
  symlink("./sub/./y", fs.join(tree, "dots"))
  symlink("missing", fs.join(tree, "dangling"))
  local tcopy = fs.join(art, "tree")
  t:ok(fs.copy_tree(tree, tcopy), "copy_tree with links inside the tree")
  t:is(fs.readfile(fs.join(tcopy, "sub", "deep", "up2")), "y", "links inside are copied and resolve inside")
  t:is(fs.lstat(fs.join(tcopy, "dangling")).type, "link", "a dangling link inside is copied")
  for _, case in ipairs {
    { "abs", "/etc" }, { "sub/up", "../.." }, { "sub/deep/up3", "../../../x" },
    { "climb", "sub/../../x" }, { "back", "sub/../sub/y" },
  } do
    local l = fs.join(tree, case[1])
    symlink(case[2], l)
    local ok2, m2 = fs.copy_tree(tree, fs.join(art, "t2"))
    t:is({ ok2, m2 }, { nil, "fs.copy_tree: " .. l .. ": a symbolic link to " .. case[2] ..
         ", which leaves the copied tree (only links that stay inside it are copied)" },
         "copy_tree refuses a link to " .. case[2])
    t:ok(not fs.exists(fs.join(art, "t2")), "... and leaves nothing at dst")
    fs.remove(l)
  end
  t:ok(not names(art):find(".djinn", 1, true), "copy_tree: no temporary directory left: " .. names(art))
  -- the top may be a link to a directory: it is followed
  symlink(tree, fs.join(root, "treelink"))
  t:ok(fs.copy_tree(fs.join(root, "treelink"), fs.join(art, "t3")), "copy_tree of a link to a directory")
  t:is(fs.lstat(fs.join(art, "t3")).type, "dir", "... copies the directory")
  -- an existing directory is replaced as a whole; a link in it is not followed
  symlink(away, fs.join(art, "t3", "sub", "hole"))
  assert(fs.writefile(fs.join(tree, "sub", "hole"), "file, not link"))
  t:ok(fs.copy_tree(tree, fs.join(art, "t3")), "copy_tree over an existing directory")
  t:is(fs.readfile(fs.join(art, "t3", "sub", "hole")), "file, not link", "... replaces it")
  t:is(names(away), "victim", "... writing nothing through the old link")
  t:ok(not names(art):find(".djinn", 1, true), "... and nothing temporary stays: " .. names(art))
  -- a file as the top is refused
  t:like(select(2, fs.copy_tree(csrc, fs.join(art, "t4"))), "not a directory$", "copy_tree of a file")
  t:ok(not fs.exists(fs.join(art, "t4")), "... leaves nothing")
end

-- Issue 10, defect 12 (2026-12-04): copy_tree counts files and links
-- (max_files) and stops past the count, leaving nothing.
do
  local many = fs.join(root, "many")
  assert(fs.mkdir_p(fs.join(many, "sub")))
  for i = 1, 6 do assert(fs.writefile(fs.join(many, "sub", "f" .. i), "x")) end
  symlink("sub/f1", fs.join(many, "l"))
  local mdst = fs.join(root, "many.copy")
  t:is({ fs.copy_tree(many, mdst, nil, 6) },
       { nil, "fs.copy_tree: " .. many .. ": more than 6 files, the limit", "count" },
       "copy_tree over max_files: nil, msg, 'count'")
  t:ok(not fs.exists(mdst), "copy_tree over max_files leaves nothing")
  t:ok(fs.copy_tree(many, mdst, nil, 7), "copy_tree of exactly max_files (6 files + 1 link)")
  t:checkerr("max_files must be >= 0", fs.copy_tree, many, mdst, nil, -1)
end

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
