-- djinn.tree: your own working tree in the build (run --tree [DIR]).
--
-- act and Cirrus CLI copy the working tree into the job; Djinn only
-- clones sources inside the build (a file:// source needs git in the
-- guest). `djinn-lua run --tree DIR` copies DIR into the build's working
-- directory before the first job, in every driver (the os driver's
-- workspace, the docker workspace volume, root's home in a qemu or ssh
-- machine), through the drivers' own object placement
-- (pipeline.place_objects): nothing driver-specific lives here.
--
--   tree.find(dir [, o]) -> root, kind | nil, why
--       dir nil: the top of the git checkout containing the current
--       directory (`git rev-parse --show-toplevel`). kind = "git" when
--       root is inside a git work tree (`git rev-parse
--       --is-inside-work-tree`), else "dir". A directory with a .git
--       entry is refused when git cannot run (its .gitignore could not
--       be honoured).
--   tree.list(root, kind [, o]) -> entries | nil, why
--       entries = { { rel =, type = "file"|"link"|"dir"|"other" }, ... }
--       "git": `git ls-files -z --cached --others --exclude-standard`
--       spawned in root (an argv array, never a shell), so .gitignore,
--       .git/info/exclude and the global excludes are honoured and .git
--       is never copied; a tracked file deleted from the disk is left
--       out; a nested repository or submodule (listed as a directory) is
--       copied whole. "dir": everything below root, empty directories
--       too.
--   tree.stage(dir, o) -> t | nil, why
--       find + list, then a copy of those entries into a private
--       temporary directory (fs.mkdtemp), so that drivers place a
--       snapshot: t = { root =, kind =, dir = the copy, files =, bytes =,
--       objects = { { src =, dst =, path =, tree = true [, line =] } },
--       line = "Placing tree ROOT (...) => the working directory" }.
--       objects are the copy's top-level entries, dst = their names
--       (relative: the build's working directory). t:remove() deletes
--       the copy (always call it; a nil t left nothing behind).
--       Symbolic links stay links when they point inside their own
--       top-level entry; a link from one top-level entry into another
--       (docs/x -> ../src/x) is copied as its target, because drivers
--       place each top-level entry as one object and keep only links
--       that stay inside it.
--       Refused (nil, why; nothing left behind): a symbolic link whose
--       target is absolute or climbs out of the tree (its relative
--       target may start with ".." only as far as its own depth), more
--       files (and links) than the object caps allow, a file over the
--       per-file cap, a tree over the total cap.
--   o = { limits = (driver.conf `limits {}`: max_objects,
--         max_object_size, max_objects_total; 0 = no limit),
--         git = "git" (the program), timeout = 60 (seconds per git
--         command), cwd = fs.cwd() (for dir == nil) }
local fs = require "djinn.fs"
local proc = require "djinn.proc"
local util = require "djinn.util"

local M = {}

-- The object caps: files (and links), bytes per file, bytes in all.
M.DEFAULT_LIMITS = { max_objects = 100000,
                     max_object_size = 1024 * 1024 * 1024,
                     max_objects_total = 10 * 1024 * 1024 * 1024 }
-- git's output is read up to this many bytes.
local MAX_OUTPUT = 64 * 1024 * 1024

-- Run argv in cwd; -> stdout, stderr, how, code | nil, why (could not
-- start, timed out, too much output).
local function capture(argv, cwd, timeout)
    local child, err = proc.spawn{ argv = argv, cwd = cwd, stdin = "null",
                                   stdout = "pipe", stderr = "pipe" }
    if child == nil then
        return nil, err
    end
    local out, errs, n = {}, {}, 0
    local deadline = proc.now() + timeout
    while true do
        local left = deadline - proc.now()
        if left <= 0 then
            child:terminate(1)
            return nil, string.format("%s timed out after %ds",
                                      table.concat(argv, " "), timeout)
        end
        local data, what = child:read(math.min(left, 1))
        if data then
            n = n + #data
            if n > MAX_OUTPUT then
                child:terminate(1)
                return nil, string.format("%s printed more than %d bytes",
                                          table.concat(argv, " "),
                                          MAX_OUTPUT)
            end
            if what == "stderr" then errs[#errs + 1] = data
            else out[#out + 1] = data end
        elseif what == "eof" then
            break
        end
    end
    local how, code = child:wait(math.max(1, deadline - proc.now()))
    if how == nil then
        child:terminate(1)
        return nil, table.concat(argv, " ") .. " did not exit"
    end
    return table.concat(out), table.concat(errs), how, code
end

local function git_cmd(o, root, ...)
    return capture({ o.git or "git", ... }, root, o.timeout or 60)
end

local function first_line(s)
    return (s or ""):match("^%s*([^\n]-)%s*\n") or util.trim(s or "")
end

function M.find(dir, o)
    o = o or {}
    if dir == nil then
        local cwd = o.cwd or fs.cwd()
        local out, err, how, code = git_cmd(o, cwd, "rev-parse",
                                            "--show-toplevel")
        if out == nil or how ~= "exit" or code ~= 0 then
            return nil, string.format("--tree without DIR copies the git " ..
                "checkout around the current directory, and %s is not in " ..
                "one (git: %s); name the directory: --tree DIR", cwd,
                out == nil and err or first_line(err))
        end
        dir = first_line(out)
    end
    local st, serr = fs.stat(dir)
    if st == nil then
        return nil, string.format("--tree %s: %s", dir, tostring(serr))
    elseif st.type ~= "dir" then
        return nil, string.format("--tree %s: not a directory", dir)
    end
    local root = fs.realpath(dir) or dir
    local out, err, how, code = git_cmd(o, root, "rev-parse",
                                        "--is-inside-work-tree")
    if out == nil then
        if fs.lstat(root .. "/.git") then
            return nil, string.format("--tree %s: a git checkout, but " ..
                "git cannot run (%s), so its .gitignore cannot be " ..
                "honoured; install git or copy the files elsewhere", root,
                tostring(err))
        end
        return root, "dir"
    end
    if how == "exit" and code == 0 and first_line(out) == "true" then
        return root, "git"
    end
    return root, "dir"
end

local function kind_of(st)
    if st == nil then return nil end
    if st.type == "file" or st.type == "dir" or st.type == "link" then
        return st.type
    end
    return "other"
end

-- Everything below root (sorted, parents before children), stopping
-- once more than `max` entries were found (nil, why).
local function walk(root, max)
    local entries, n = {}, 0
    local function visit(rel)
        local names, err = fs.listdir(rel == "" and root or
                                      root .. "/" .. rel)
        if names == nil then
            return nil, err
        end
        for _, name in ipairs(names) do
            local r = rel == "" and name or rel .. "/" .. name
            local kind = kind_of(fs.lstat(root .. "/" .. r))
            if kind then
                entries[#entries + 1] = { rel = r, type = kind }
                if kind ~= "dir" then n = n + 1 end
                if max and n > max then
                    return nil, "count"
                end
                if kind == "dir" then
                    local ok, verr = visit(r)
                    if not ok then return nil, verr end
                end
            end
        end
        return true
    end
    local ok, err = visit("")
    if not ok then return nil, err end
    return entries
end

function M.list(root, kind, o)
    o = o or {}
    if kind ~= "git" then
        return walk(root, o.max)
    end
    local out, err, how, code = git_cmd(o, root, "ls-files", "-z",
        "--cached", "--others", "--exclude-standard")
    if out == nil or how ~= "exit" or code ~= 0 then
        return nil, string.format("git ls-files in %s failed: %s", root,
                                  out == nil and err or first_line(err))
    end
    local entries, seen = {}, {}
    for rel in out:gmatch("([^%z]+)%z") do
        rel = rel:gsub("/$", "")  -- a nested repository: "sub/"
        if not seen[rel] then
            seen[rel] = true
            local kind_ = kind_of(fs.lstat(root .. "/" .. rel))
            if kind_ then  -- nil: tracked, but deleted from the disk
                entries[#entries + 1] = { rel = rel, type = kind_ }
            end
        end
    end
    table.sort(entries, function(a, b) return a.rel < b.rel end)
    return entries
end

-- The target of the symbolic link at path (read through djinn.tar,
-- which stores a link as a link).
local function readlink(path)
    local tar = require "djinn.tar"
    local data, err = tar.create{ { name = "l", path = path } }
    if data == nil then return nil, err end
    local list
    list, err = tar.list(data)
    if list == nil or list[1] == nil or list[1].type ~= "symlink" then
        return nil, err or (path .. ": not a symbolic link")
    end
    return list[1].linkname
end

-- Whether a link at rel with target `target` stays inside the tree: a
-- relative target whose leading ".." components climb at most to the
-- top, and no ".." after a name (fs.copy_tree's rule).
local function link_inside(rel, target)
    if target == "" or target:sub(1, 1) == "/" then return false end
    local depth = select(2, rel:gsub("/", ""))
    local named = false
    for comp in target:gmatch("[^/]+") do
        if comp == ".." then
            if named then return false end
            depth = depth - 1
            if depth < 0 then return false end
        elseif comp ~= "." then
            named = true
        end
    end
    return true
end

-- The first component of the path the link at rel points to (its
-- target resolved lexically; link_inside(rel, target) holds).
local function target_top(rel, target)
    local parts = {}
    for comp in rel:gmatch("[^/]+") do parts[#parts + 1] = comp end
    parts[#parts] = nil
    for comp in target:gmatch("[^/]+") do
        if comp == ".." then
            parts[#parts] = nil
        elseif comp ~= "." then
            parts[#parts + 1] = comp
        end
    end
    return parts[1]
end

local function human(n)
    if n < 1024 then return string.format("%d B", n) end
    local units, i = { "KiB", "MiB", "GiB", "TiB" }, 0
    repeat
        n, i = n / 1024, i + 1
    until n < 1024 or i == #units
    return string.format("%.1f %s", n, units[i])
end

local Tree = {}
Tree.__index = Tree

function Tree:remove()
    if self.tmp then
        fs.rm_rf(self.tmp)
        self.tmp = nil
    end
end

-- The caps in effect: driver.conf limits over the defaults.
function M.limits(limits)
    local l = {}
    for k, v in pairs(M.DEFAULT_LIMITS) do
        local o = limits and limits[k]
        l[k] = math.type(o) == "integer" and o >= 0 and o or v
    end
    return l
end

local function cap_hint(key, value)
    return string.format("raise it with `limits { %s %s }` in driver.conf, " ..
                         "0 = no limit", key, value)
end

function M.stage(dir, o)
    o = o or {}
    local root, kind = M.find(dir, o)
    if root == nil then return nil, kind end
    local lim = M.limits(o.limits)
    local maxn = lim.max_objects > 0 and lim.max_objects or nil
    local entries, lerr = M.list(root, kind, { git = o.git,
        timeout = o.timeout, max = maxn })
    if entries == nil then
        if lerr == "count" then
            return nil, string.format("--tree %s: more than %d files, the " ..
                "limit (max_objects; %s)", root, maxn,
                cap_hint("max_objects", "N"))
        end
        return nil, string.format("--tree %s: %s", root, tostring(lerr))
    end
    local tmp, terr = fs.mkdtemp("djinn-tree-")
    if tmp == nil then
        return nil, "--tree: cannot make a temporary copy: " .. tostring(terr)
    end
    local t = setmetatable({ root = root, kind = kind, tmp = tmp,
                           dir = tmp .. "/tree", files = 0, bytes = 0,
                           objects = {} }, Tree)
    local function fail(fmt, ...)
        t:remove()
        return nil, string.format("--tree %s: ", root) ..
            string.format(fmt, ...)
    end
    local ok, err = fs.mkdir_p(t.dir)
    if not ok then return fail("%s", tostring(err)) end
    for _, e in ipairs(entries) do
        local src, dst = root .. "/" .. e.rel, t.dir .. "/" .. e.rel
        if e.type ~= "dir" then
            t.files = t.files + 1
            if maxn and t.files > maxn then
                return fail("more than %d files, the limit (max_objects; %s)",
                            maxn, cap_hint("max_objects", "N"))
            end
        end
        local parent = fs.dirname(dst)
        ok, err = fs.mkdir_p(parent)
        if not ok then return fail("%s", tostring(err)) end
        if e.type == "file" then
            local st = fs.lstat(src)
            local size = st and st.size or 0
            if lim.max_object_size > 0 and size > lim.max_object_size then
                return fail("%s: %d bytes, over the per-file limit of %d " ..
                    "bytes (max_object_size; %s)", e.rel, size,
                    lim.max_object_size, cap_hint("max_object_size", "2GB"))
            end
            if lim.max_objects_total > 0 and
                t.bytes + size > lim.max_objects_total then
                return fail("more than %d bytes, the total limit " ..
                    "(max_objects_total; %s)", lim.max_objects_total,
                    cap_hint("max_objects_total", "20GB"))
            end
            local max = lim.max_object_size > 0 and lim.max_object_size or nil
            ok, err = fs.copy(src, dst, nil, max)
            if not ok then return fail("%s", tostring(err)) end
            t.bytes = t.bytes + size
        elseif e.type == "link" then
            local target, rerr = readlink(src)
            if target == nil then return fail("%s", tostring(rerr)) end
            if not link_inside(e.rel, target) then
                return fail("%s: a symbolic link to %s, which leaves the " ..
                    "tree (links inside the tree are copied as links; " ..
                    "remove it or add it to .gitignore)", e.rel, target)
            end
            local top = e.rel:match("^[^/]+")
            if e.rel:find("/", 1, true) and target_top(e.rel, target) ~= top
            then
                -- The drivers place each top-level entry as one object
                -- and keep only links inside it: a link from docs/ into
                -- src/ is copied as what it points to.
                local st = fs.stat(src)
                if st == nil then
                    return fail("%s: a symbolic link to %s, which does " ..
                        "not exist", e.rel, target)
                end
                local leftn = maxn and maxn - t.files + 1 or nil
                local left = lim.max_objects_total > 0 and
                    lim.max_objects_total - t.bytes or nil
                if st.type == "dir" then
                    ok, rerr = fs.copy_tree(src, dst, left, leftn)
                else
                    if left and st.size > left then
                        return fail("more than %d bytes, the total limit " ..
                            "(max_objects_total; %s)", lim.max_objects_total,
                            cap_hint("max_objects_total", "20GB"))
                    end
                    ok, rerr = fs.copy(src, dst, nil,
                        lim.max_object_size > 0 and lim.max_object_size or
                        nil)
                end
                if not ok then return fail("%s", tostring(rerr)) end
                t.files = t.files - 1
                for _, u in ipairs(st.type == "dir" and walk(dst) or
                                   { { rel = "", type = "file" } }) do
                    if u.type ~= "dir" then
                        local ust = fs.lstat(u.rel == "" and dst or
                                             dst .. "/" .. u.rel)
                        t.files = t.files + 1
                        t.bytes = t.bytes + (u.type == "file" and ust and
                                             ust.size or 0)
                    end
                end
                t.derefs = (t.derefs or 0) + 1
            else
                local tar = require "djinn.tar"
                local one
                one, rerr = tar.create{ { name = e.rel, type = "symlink",
                                          linkname = target } }
                if one == nil then return fail("%s", tostring(rerr)) end
                ok, rerr = tar.extract(one, t.dir)
                if not ok then return fail("%s", tostring(rerr)) end
            end
        elseif e.type == "dir" and kind == "git" then
            -- A nested repository or a submodule: copied whole.
            local left = lim.max_objects_total > 0 and
                lim.max_objects_total - t.bytes or nil
            local leftn = maxn and maxn - t.files or nil
            ok, err = fs.copy_tree(src, dst, left, leftn)
            if not ok then return fail("%s", tostring(err)) end
            local usage = walk(dst) or {}
            for _, u in ipairs(usage) do
                if u.type ~= "dir" then
                    t.files = t.files + 1
                    local st = fs.lstat(dst .. "/" .. u.rel)
                    t.bytes = t.bytes + (u.type == "file" and st and
                                         st.size or 0)
                end
            end
        elseif e.type == "dir" then
            ok, err = fs.mkdir_p(dst)
            if not ok then return fail("%s", tostring(err)) end
        else
            return fail("%s: not a regular file, directory or symbolic " ..
                        "link (a FIFO, socket or device is not copied)",
                        e.rel)
        end
    end
    t.line = string.format("Placing tree %s (%s: %d file%s, %s%s) => " ..
        "the working directory", root, kind == "git" and
        "git ls-files" or "whole directory", t.files,
        t.files == 1 and "" or "s", human(t.bytes),
        t.derefs and string.format("; %d link%s between top-level " ..
            "entries copied as %s target%s", t.derefs,
            t.derefs == 1 and "" or "s", t.derefs == 1 and "its" or "their",
            t.derefs == 1 and "" or "s") or "")
    for _, name in ipairs(fs.listdir(t.dir) or {}) do
        t.objects[#t.objects + 1] = { src = root .. "/" .. name,
                                      dst = name, path = t.dir .. "/" .. name,
                                      tree = true }
    end
    if t.objects[1] then
        t.objects[1].line = t.line
    end
    return t
end

return M
