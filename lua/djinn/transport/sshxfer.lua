-- djinn.transport.sshxfer: moving files to and from a machine over SSH, for
-- djinn.transport.sshjob (the QEMU and SSH drivers). Issue 11, section 3 and 4.8.
--
--   local x = sshxfer.new(session, o)
--     o = { log = writer (progress meters), ctx = pipeline context
--           (polled during transfers) }
--   x:method() -> "SFTP" | "exec", why: the data path, chosen once, on
--     first use: SFTP when the server's SFTP subsystem starts, else exec
--     channels (why = the SFTP failure). x:describe() -> a line for the
--     build log saying which one is in use.
--   x:rebind(session): a reconnect; the method stays unless SFTP stops
--     working on the new session.
--   x:put(host_path, dst [, mode = 0700]) -> true | nil, cause
--     A file, or a directory with everything below it (files and
--     directories; a symbolic link inside it is refused, naming it).
--     Parent directories of dst are created (mkdir -p), as the os driver
--     does. The data goes to a temporary name beside dst
--     (".djinn-put-<hex>") and is renamed to dst only when complete and
--     of the right size (checked in the guest with wc -c): a failed or
--     cut transfer leaves nothing under dst, and the temporary name is
--     removed. An existing file dst is replaced; an existing directory
--     dst is replaced as a whole by a directory object and refused for a
--     file object (as SFTP refuses it).
--   x:glob(pattern) -> sorted matches | nil, cause
--     Per path component, "*", "?" and "[...]" as fnmatch (FNM_PERIOD: a
--     leading "." is matched only by a pattern starting with "."), like
--     session:glob over SFTP.
--   x:get(remote, host, max, max_files) -> true | nil, cause [, code [, n]]
--     The pipeline's get (see the top of djinn.pipeline): a file or a
--     directory (its files and directories; a symbolic link in it is
--     refused), into a temporary name beside host, renamed when complete.
--     max (bytes) and max_files are checked from the sizes the guest
--     reports before a byte moves ("limit" with the size, "count" with
--     the number) and the bytes are counted while they come (a growing
--     file is stopped at max: "limit" without a size).
--
-- Both paths share everything but the bytes: names, directories, size
-- checks and renames are small shell commands (POSIX sh, cat, wc, mkdir,
-- mv, rm, chmod: busybox has them all) run in one exec each. The bytes go
-- over SFTP (session:put/get) or, without SFTP, over an exec channel:
-- `cat > TMP` fed from the host file chunk by chunk (exec's stdin
-- producer), and `cat FILE` after a header line with its size. Paths
-- are always passed single-quoted; nothing of a file name is ever
-- interpreted by the guest's shell. Large transfers show a meter on a
-- terminal (log:meter).
local fs = require "djinn.fs"
local proc = require "djinn.proc"
local util = require "djinn.util"

local M = {}
local X = {}
X.__index = X

local CHUNK = 256 * 1024
local GLOB_MAX = 100000

local function q(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end
M.quote = q

local seq = 0
local function tmpname(dir, base)
    seq = seq + 1
    local n = math.floor((proc.now() * 1e6) % 0xffffff)
    local name = string.format(".djinn-%s-%d-%06x%d", base, proc.getpid(), n,
                               seq)
    if dir == "" then return name end
    return dir .. "/" .. name
end

-- "a/b/c" -> "a/b", "c"; "c" -> "", "c"; "/c" -> "/", "c"
local function split(p)
    p = p:gsub("/+$", "")
    local d, b = p:match("^(.*)/([^/]*)$")
    if d == nil then return "", p end
    if d == "" then d = "/" end
    return d, b
end

function M.new(session, o)
    o = o or {}
    return setmetatable({ s = session, log = o.log, ctx = o.ctx }, X)
end

function X:rebind(session)
    self.s = session
end

function X:method()
    if self.how == nil then
        local ok, why = self.s:sftp()
        if ok then
            self.how = "SFTP"
        else
            self.how, self.why = "exec", tostring(why)
        end
    elseif self.how == "SFTP" then
        local ok, why = self.s:sftp()
        if not ok then
            self.how, self.why = "exec", tostring(why)
            self.told = false
        end
    end
    return self.how, self.why
end

function X:describe()
    local how, why = self:method()
    if how == "SFTP" then
        return "File transfers: SFTP"
    end
    return "File transfers: exec channels (cat), because the SSH " ..
        "server's SFTP does not work: " .. why
end

-- Run a short shell command; -> stdout | nil, cause (its stderr).
function X:sh(cmd, what)
    local st, info, code = self.s:exec(cmd, { timeout = 300,
        cancel = self.ctx and function() return self.ctx:cancelled() end })
    if st == nil then
        return nil, tostring(info), code
    end
    if st ~= 0 then
        local e = ((info.stderr or "") .. (info.stdout or "")):gsub("%s+$", "")
        return nil, string.format("%s: %s", what,
            e ~= "" and e or ("the guest's shell exited " .. st)), st
    end
    return info.stdout or ""
end

local function meter(self, label, total)
    if self.log and self.log.meter then
        return self.log:meter(label, total)
    end
    return function() end
end

---------------------------------------------------------------------------
-- put
---------------------------------------------------------------------------

-- The files and directories below the host directory root:
-- { dirs = { "a", "a/b" }, files = { {rel=, path=, size=, mode=} } }
local function host_tree(root, shown)
    local t = { dirs = {}, files = {} }
    local function walk(dir, rel)
        local names, err = fs.listdir(dir)
        if names == nil then return nil, err end
        for _, n in ipairs(names) do
            local path, r = dir .. "/" .. n, rel == "" and n or (rel .. "/" .. n)
            local st, serr = fs.lstat(path)
            if st == nil then return nil, serr end
            if st.type == "dir" then
                t.dirs[#t.dirs + 1] = { rel = r, mode = st.mode }
                local ok, werr = walk(path, r)
                if not ok then return nil, werr end
            elseif st.type == "file" then
                t.files[#t.files + 1] = { rel = r, path = path,
                                          size = st.size, mode = st.mode }
            else
                return nil, string.format("%s/%s: a %s; directory objects " ..
                    "placed over SSH may hold only files and directories",
                    shown, r, st.type == "link" and "symbolic link" or
                    st.type)
            end
        end
        return true
    end
    local ok, err = walk(root, "")
    if not ok then return nil, err end
    return t
end

-- The bytes of the host file `path` to the guest file `tmp` (created
-- 0600, parents existing), over SFTP or `cat`; the exec path also checks
-- the size. -> true | nil, cause
function X:send(path, tmp, size, label)
    local tick = meter(self, label, size)
    local ok, err
    if self:method() == "SFTP" then
        ok, err = self.s:put(path, tmp, tonumber("600", 8),
                             { progress = tick })
    else
        local f, ferr = io.open(path, "rb")
        if f == nil then
            tick(nil)
            return nil, ferr
        end
        local sent = 0
        local cmd = "umask 077; t=" .. q(tmp) .. "; n=" .. size .. "\n" ..
            [[cat > "$t" || { rm -f "$t"; exit 1; }
got=$(wc -c < "$t") && got=$((got)) || { rm -f "$t"; exit 1; }
if [ "$got" -ne "$n" ]; then
    rm -f "$t"; echo "received $got of $n bytes" >&2; exit 1
fi
]]
        local st, info = self.s:exec(cmd, {
            stdin = function()
                local data = f:read(CHUNK)
                if data == nil then return nil end
                sent = sent + #data
                tick(sent, size)
                return data
            end,
            cancel = self.ctx and function() return self.ctx:cancelled() end,
        })
        f:close()
        if st == nil then
            ok, err = nil, tostring(info)
        elseif st ~= 0 then
            local e = ((info.stderr or "") .. (info.stdout or "")):gsub(
                "%s+$", "")
            ok, err = nil, "writing " .. tmp .. ": " ..
                (e ~= "" and e or ("exit status " .. st))
        elseif sent ~= size then
            ok, err = nil, string.format("%s changed size while it was " ..
                "being sent (%d bytes, then %d)", path, size, sent)
        else
            ok = true
        end
    end
    tick(nil)
    return ok, err
end

function X:put(path, dst, mode)
    mode = mode or tonumber("700", 8)
    local st, err = fs.stat(path)
    if st == nil then return nil, err end
    if dst == "" then return nil, "empty destination" end
    local dir, base = split(dst)
    if base == "" or base == "." or base == ".." then
        return nil, dst .. ": the destination must name a file or directory"
    end
    local tmp = tmpname(dir, "put")
    local mkparent = dir ~= "" and ("mkdir -p -- " .. q(dir) .. " || exit 1\n")
        or ""
    local done = "d=" .. q(dst) .. "; t=" .. q(tmp) .. "\n"
    local clean = "rm -rf -- " .. q(tmp)
    if st.type == "file" then
        local ok = true
        if mkparent ~= "" then
            ok, err = self:sh(mkparent, "creating " .. dir)
        end
        if ok then
            ok, err = self:send(path, tmp, st.size, dst)
        end
        if ok then
            ok, err = self:sh(done .. string.format("chmod %o \"$t\" || " ..
                "{ rm -f \"$t\"; exit 1; }\n", mode) ..
                [[if [ -d "$d" ] && [ ! -L "$d" ]; then
    rm -f "$t"; echo "cannot replace the directory $d with a file" >&2; exit 1
fi
mv -f "$t" "$d" || { rm -f "$t"; exit 1; }
]], dst)
        end
        if not ok then
            self:sh(clean, "removing " .. tmp)
            return nil, err
        end
        return true
    elseif st.type ~= "dir" then
        return nil, path .. ": not a file or directory"
    end
    -- A directory: the tree under tmp, then one rename.
    local tree
    tree, err = host_tree(path, path)
    if tree == nil then return nil, err end
    local mk = { mkparent, "umask 077\nmkdir -- " .. q(tmp) .. " || exit 1\n" }
    for _, d in ipairs(tree.dirs) do
        mk[#mk + 1] = "mkdir -- " .. q(tmp .. "/" .. d.rel) .. " || exit 1\n"
    end
    local ok
    ok, err = self:sh(table.concat(mk), "creating " .. dst)
    for _, f in ipairs(tree.files) do
        if not ok then break end
        ok, err = self:send(f.path, tmp .. "/" .. f.rel, f.size,
                            dst .. "/" .. f.rel)
    end
    if ok then
        -- Modes: the host's, as the os driver's copy keeps them (0700 for
        -- the top, the object mode).
        local ch = { done, string.format("chmod %o \"$t\" || exit 1\n", mode) }
        for _, d in ipairs(tree.dirs) do
            ch[#ch + 1] = string.format("chmod %o %s || exit 1\n",
                (d.mode or 493) & 4095, q(tmp .. "/" .. d.rel))
        end
        for _, f in ipairs(tree.files) do
            ch[#ch + 1] = string.format("chmod %o %s || exit 1\n",
                f.mode & 4095, q(tmp .. "/" .. f.rel))
        end
        ch[#ch + 1] = "o=" .. q(tmpname(dir, "old")) .. "\n" .. [[
if [ -d "$d" ] && [ ! -L "$d" ]; then mv "$d" "$o" || exit 1; fi
if mv "$t" "$d"; then rm -rf -- "$o"; exit 0; fi
[ -d "$o" ] && mv "$o" "$d"
exit 1
]]
        ok, err = self:sh(table.concat(ch), "placing " .. dst)
    end
    if not ok then
        self:sh(clean, "removing " .. tmp)
        return nil, err
    end
    return true
end

---------------------------------------------------------------------------
-- glob
---------------------------------------------------------------------------
local function has_magic(s)
    return s:find("[%*%?%[\\]") ~= nil
end

-- The shell program that prints the matches of pattern, NUL-terminated.
function M.glob_script(pattern)
    local comps = {}
    for c in pattern:gmatch("[^/]+") do comps[#comps + 1] = c end
    local out = { "r() { printf '%s\\0' \"$1\"; }\n",
                  "b() { case $1 in */) B=$1 ;; '') B= ;; *) B=$1/ ;; esac; }\n" }
    local n = #comps
    for i, c in ipairs(comps) do
        out[#out + 1] = "p" .. i .. "=" .. q(c) .. "\n"
    end
    for i = n, 1, -1 do
        local nxt = i == n and "x" or ("l" .. (i + 1))
        local body
        if has_magic(comps[i]) then
            local e = "e" .. i
            body = "b \"$1\"; for " .. e .. " in \"$B\"* \"$B\".[!.]* " ..
                "\"$B\"..?*; do\n" ..
                "  [ -e \"$" .. e .. "\" ] || [ -L \"$" .. e .. "\" ] || " ..
                "continue\n" ..
                "  N=${" .. e .. "##*/}\n" ..
                "  case $N in .*) case $p" .. i .. " in .*) ;; *) continue ;; " ..
                "esac ;; esac\n" ..
                "  case $N in $p" .. i .. ") " .. nxt .. " \"$" .. e ..
                "\" ;; esac\ndone"
        else
            body = "b \"$1\"; " .. nxt .. " \"$B$p" .. i .. "\""
        end
        out[#out + 1] = "l" .. i .. "() { " .. body .. "; }\n"
    end
    out[#out + 1] = "x() { if [ -e \"$1\" ] || [ -L \"$1\" ]; then r \"$1\"; " ..
        "fi; }\n"
    out[#out + 1] = "l1 " .. (pattern:sub(1, 1) == "/" and "/" or "''") ..
        "\n"
    return table.concat(out)
end

function X:glob(pattern)
    if pattern == "" then return nil, "empty pattern" end
    if self:method() == "SFTP" then
        return self.s:glob(pattern)
    end
    if not pattern:find("[^/]") then
        return { pattern }
    end
    local outp, err = self:sh(M.glob_script(pattern), "glob " .. pattern)
    if outp == nil then
        return nil, "ssh.glob (exec): " .. tostring(err)
    end
    local list = {}
    for m in outp:gmatch("([^%z]*)%z") do
        list[#list + 1] = m
        if #list > GLOB_MAX then
            return nil, string.format("glob %s: more than %d matches",
                                      pattern, GLOB_MAX)
        end
    end
    table.sort(list)
    return list
end

---------------------------------------------------------------------------
-- get
---------------------------------------------------------------------------

-- What is at remote: { type = "file"|"dir", size = (file), files =
-- { {rel=, size=} } and dirs = { rel } (dir) } | nil, cause
local STAT = [[
f=$1
if [ -d "$f" ]; then
    echo dir
    w() {
        for e in "$1"/* "$1"/.[!.]* "$1"/..?*; do
            [ -e "$e" ] || [ -L "$e" ] || continue
            if [ -L "$e" ]; then printf 'L %s\0' "${e#"$f"/}"
            elif [ -d "$e" ]; then printf 'D %s\0' "${e#"$f"/}"; w "$e"
            elif [ -f "$e" ]; then
                n=$(wc -c < "$e") && n=$((n)) || exit 1
                printf 'F %d %s\0' "$n" "${e#"$f"/}"
            else printf 'O %s\0' "${e#"$f"/}"
            fi
        done
    }
    w "$f"
elif [ -f "$f" ]; then
    n=$(wc -c < "$f") && n=$((n)) || exit 1
    echo "file $n"
elif [ -e "$f" ]; then
    echo "$f: not a regular file or directory" >&2; exit 2
else
    echo "$f: No such file or directory" >&2; exit 2
fi
]]

function X:rstat(remote)
    local outp, err = self:sh("set -- " .. q(remote) .. "\n" .. STAT,
                              "stat " .. remote)
    if outp == nil then return nil, err end
    local kind, rest = outp:match("^(%a+)[ \n](.*)$")
    if kind == "file" then
        return { type = "file", size = tonumber(rest:match("^(%d+)")) }
    elseif kind ~= "dir" then
        return nil, "stat " .. remote .. ": unexpected answer"
    end
    local t = { type = "dir", files = {}, dirs = {}, size = 0 }
    for e in rest:gmatch("([^%z]*)%z") do
        local k, a = e:match("^(%a) (.*)$")
        if k == "F" then
            local n, rel = a:match("^(%d+) (.*)$")
            t.files[#t.files + 1] = { rel = rel, size = tonumber(n) }
            t.size = t.size + tonumber(n)
        elseif k == "D" then
            t.dirs[#t.dirs + 1] = a
        else
            return nil, string.format("%s/%s: a %s; directory artifacts " ..
                "collected over SSH may hold only files and directories",
                remote, tostring(a), k == "L" and "symbolic link" or
                "special file")
        end
    end
    return t
end

-- One remote file into the host file tmp (created here). max = bytes the
-- file may have (nil = none). -> true | nil, cause [, "limit" [, size]]
function X:fetch(remote, tmp, size, max, label)
    local tick = meter(self, label, size)
    if self:method() == "SFTP" then
        local ok, err, code, n = self.s:get(remote, tmp,
                                            { max = max, progress = tick })
        tick(nil)
        return ok, err, code, n
    end
    if max and size and size > max then
        tick(nil)
        return nil, string.format("%s: %d bytes is larger than the limit " ..
            "of %d bytes", remote, size, max), "limit", size
    end
    local f, ferr = io.open(tmp, "wb")
    if f == nil then
        tick(nil)
        return nil, ferr
    end
    local got, over, werr = 0, false, nil
    local errs = {}
    local st, info = self.s:exec("exec cat -- " .. q(remote), {
        on_output = function(data, stream)
            if stream == "stderr" then
                errs[#errs + 1] = data
                return
            end
            if over or werr then return end
            if max and got + #data > max then
                over = true
                return
            end
            got = got + #data
            local ok, e = f:write(data)
            if not ok then werr = e end
            tick(got, size)
        end,
        cancel = function()
            if over then return "limit" end
            if werr then return "write error" end
            return self.ctx and self.ctx:cancelled()
        end,
    })
    local cok, cerr = f:close()
    tick(nil)
    if over then
        os.remove(tmp)
        return nil, string.format("%s: larger than the limit of %d bytes " ..
            "(the transfer was stopped)", remote, max), "limit"
    end
    local err
    if werr or not cok then
        err = "writing " .. tmp .. ": " .. tostring(werr or cerr)
    elseif st == nil then
        err = tostring(info)
    elseif st ~= 0 then
        err = string.format("cat %s: %s", remote,
            (table.concat(errs):gsub("%s+$", "")))
    elseif size and got ~= size then
        err = string.format("%s changed while it was being fetched " ..
                            "(%d bytes, then %d)", remote, size, got)
    end
    if err then
        os.remove(tmp)
        return nil, err
    end
    return true
end

function X:get(remote, host, max, max_files)
    local info, err = self:rstat(remote)
    if info == nil then return nil, err end
    local hdir = fs.dirname(host)
    local base = util.basename(host)
    if info.type == "file" then
        if max and info.size and info.size > max and self:method() ~= "SFTP"
        then
            return nil, string.format("%s: %d bytes is larger than the " ..
                "limit of %d bytes", remote, info.size, max), "limit",
                info.size
        end
        local tmp = hdir .. "/." .. base .. ".djinn-" ..
            tmpname("", "get"):sub(8)
        local ok, ferr, code, n = self:fetch(remote, tmp, info.size, max,
                                              remote)
        if not ok then
            os.remove(tmp)
            return nil, ferr, code, n
        end
        local st = fs.lstat(host)
        if st and st.type == "dir" then
            os.remove(tmp)
            return nil, host .. ": a directory is in the way"
        end
        local rok, rerr = fs.rename(tmp, host)
        if not rok then
            os.remove(tmp)
            return nil, rerr
        end
        return true
    end
    -- A directory: counted and sized from the listing first.
    local nfiles = #info.files
    if max_files and nfiles > max_files then
        return nil, string.format("%s: %d files, over the limit of %d",
            remote, nfiles, max_files), "count", nfiles
    end
    if max and info.size > max then
        return nil, string.format("%s: its files add up to %d bytes, over " ..
            "the limit of %d bytes", remote, info.size, max), "limit",
            info.size
    end
    local tmp = hdir .. "/." .. base .. ".djinn-" .. tmpname("", "get"):sub(8)
    local ok
    ok, err = fs.mkdir_p(tmp, tonumber("755", 8))
    for _, d in ipairs(info.dirs) do
        if not ok then break end
        ok, err = fs.mkdir_p(tmp .. "/" .. d, tonumber("755", 8))
    end
    local left, code, n = max, nil, nil
    for _, f in ipairs(info.files) do
        if not ok then break end
        local tf = tmp .. "/" .. f.rel
        ok, err, code, n = self:fetch(remote .. "/" .. f.rel, tf, f.size,
                                      left, remote .. "/" .. f.rel)
        if ok and left then
            local st = fs.lstat(tf)
            left = left - (st and st.size or 0)
        end
    end
    if ok then
        local st = fs.lstat(host)
        if st and st.type == "dir" then
            ok, err = fs.rm_rf(host)
        end
        if ok then ok, err = fs.rename(tmp, host) end
    end
    if not ok then
        fs.rm_rf(tmp)
        if code == "limit" then
            return nil, err, "limit"
        end
        return nil, err, code, n
    end
    return true
end

return M
