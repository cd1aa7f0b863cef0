-- djinn.images: registered and base images, for every consumer (the QEMU
-- driver, the command line, scripts; later the URL cache and queue
-- workers): how people and manifests name them, how a manifest's image is
-- found, and how it is checked before a boot. No consumer reads the
-- registry's tables: resolution is djinn.registry's db:resolve (the SQL
-- function image_path), verification the SQL function image_verify.
--
-- A manifest names a registered image with two keys, `namespace:` (a
-- path[@owner], or none for the owner's personal images) and `image:` (a
-- name without "/"); a name with "/" is a base image path
-- (docs/djinn-compat.md §2.3). Everything djinn-lua prints about an image
-- uses that same reading, so what `image ls` shows can be written into a
-- manifest as it stands (issue 11, item 4).
--
-- Naming:
--   images.me() -> the owner a namespace without "@owner" and a personal
--       image belong to (djinn.registry.user(), as the registry decides)
--   images.namespace_text(path, owner, me) -> "team/ci", or "team/ci@bob"
--       for another owner's namespace; nil for a personal image
--   images.label(ns, name) -> "tiny (namespace: demo)" | "tiny (personal)"
--   images.manifest_text(row, me) -> "namespace: demo, image: tiny" |
--       "image: tiny" (a personal image of the current user)
--   images.named(db, name) -> rows of image_list with that name, in
--       every namespace and owner | nil, err
--   images.elsewhere(db, name, me) -> text listing where images called
--       name are and how a manifest writes each | nil
--
-- Finding and checking (the QEMU driver's image, before every boot):
--   images.resolve{ image = NAME, namespace = NS, registry = PATH,
--                   disks = DIR, arch = "x86_64" }
--       -> img | nil, cause
--       NAME is checked first (util.check_image_name: segments of
--       letters, digits, ".", "_", "-" joined by "/"; no "..", no leading
--       "/"), before any file is touched. A plain NAME (no "/" or ".") is
--       looked up in the registry PATH (when it exists; it is never
--       created): the namespace NS, then the personal images. Otherwise,
--       or when not registered, it is the base image file
--       <DISKS>/qemu/<ARCH>/<NAME> (DISKS default /var/lib/djinn/images).
--       img = { path =, label = "tiny (namespace: demo)" | "debian/stable
--       (base image)", name =, sha256 = (registered images), registry =
--       PATH (registered images) }. Not found: Djinn's message ("couldn't
--       find image NAME"), every place looked in, and the images of that
--       name registered elsewhere with the keys that find them.
--   images.verify(img [, log]) -> info, identity | nil, cause
--       A registered image's file must still have the SHA-256 recorded
--       at registration: SELECT image_verify(path, sha256), which answers
--       from its cache when the file's identity (device, inode, size,
--       mtime, ctime) is unchanged since the last check ('cached') and
--       hashes it otherwise ('hashed'). Then every image is re-validated
--       with the QCOW2 validator, and its identity must not have changed
--       meanwhile. log:line gets one "Image ...: SHA-256 matches" line.
--       info = djinn.qcow2's header info; identity = { dev, ino, size,
--       mtime_ns, ctime_ns } of the file that was checked.
--   images.unchanged(path, identity) -> bool: path is still that file
--       (QEMU opens it after the check).
--
-- The image-contract check's verdicts (djinn.contract records them in
-- image_checks, by content):
--   images.last_check(db, img [, only_unusable]) -> row of
--       image_last_check { sha256, verdict, items (decoded), machine,
--       checked_at } | nil (never checked) | nil, err. A base image has no
--       recorded SHA-256: its file is hashed (image_sha256), and with
--       only_unusable only when some content's last verdict is unusable,
--       so a registry without such verdicts costs a build no hashing.
--   images.failed_items(row) -> text: each failed item with its fix
--   images.check_refusal(img, registry, log, refuse) -> nil | cause
--       Before a boot (the qemu driver): when the last check of img's
--       content said unusable, the cause to fail with (its date, failed
--       items, fixes, and how to override); with refuse false a warning
--       (log:warn) and nil. No registry, or one that cannot be read: nil
--       (a warning for the latter; the boot itself decides).
local M = {}

function M.me()
    return require("djinn.registry").user()
end

function M.namespace_text(path, owner, me)
    if path == nil then return nil end
    if owner ~= nil and owner ~= (me or M.me()) then
        return path .. "@" .. owner
    end
    return path
end

function M.label(ns, name)
    if ns ~= nil and ns ~= "" and ns ~= "-" then
        return string.format("%s (namespace: %s)", name, ns)
    end
    return name .. " (personal)"
end

function M.manifest_text(row, me)
    me = me or M.me()
    local ns = M.namespace_text(row.namespace, row.owner, me)
    if ns then
        return string.format("namespace: %s, image: %s", ns, row.name)
    end
    if row.owner ~= me then
        -- Another user's personal image: a manifest cannot name it.
        return string.format("image: %s (a personal image of %s, usable " ..
            "only by %s)", row.name, row.owner, row.owner)
    end
    return "image: " .. row.name
end

function M.named(db, name)
    return db:query("SELECT * FROM image_list WHERE name = ?", name)
end

function M.elsewhere(db, name, me)
    local rows = M.named(db, name)
    if rows == nil or #rows == 0 then return nil end
    me = me or M.me()
    local lines = {}
    for _, r in ipairs(rows) do
        lines[#lines + 1] = "  " .. M.manifest_text(r, me)
    end
    return string.format("the registry has %d image%s called %s; a " ..
        "manifest names %s as:\n%s", #rows, #rows == 1 and "" or "s", name,
        #rows == 1 and "it" or "them", table.concat(lines, "\n"))
end

---------------------------------------------------------------------------
-- Finding an image.
---------------------------------------------------------------------------
local function open_registry(path)
    local db, err = require("djinn.registry").open(path)
    if db == nil then
        return nil, "cannot open the image registry: " ..
            require("djinn.util").plain_error(err)
    end
    return db
end

function M.resolve(o)
    local fs = require "djinn.fs"
    local util = require "djinn.util"
    local name, why = util.check_image_name(o.image)
    if name == nil then
        return nil, why
    end
    local looked = {}
    local ns = o.namespace
    if ns == "" then ns = nil end
    -- The registry is opened for a plain name (which it may hold), and
    -- otherwise only for the hints of an image not found: a base image
    -- path that exists never depends on the registry.
    local plain = name:match("^[%w_%-]+$") ~= nil
    local have = o.registry and fs.exists(o.registry)
    local db
    if plain and have then
        local err
        db, err = open_registry(o.registry)
        if db == nil then return nil, err end
    elseif plain and o.registry then
        looked[#looked + 1] = "registry " .. o.registry ..
            " (does not exist)"
    end
    if db then
        local scopes = {}
        if ns then scopes[#scopes + 1] = ns end
        scopes[#scopes + 1] = false
        for _, scope in ipairs(scopes) do
            local okr, path, sha = pcall(db.resolve, db, scope or nil, name)
            if okr and path then
                db:close()
                local label = M.label(scope or nil, name)
                if sha == nil then
                    return nil, "image " .. label .. ": the registry has " ..
                        "no SHA-256 for " .. path
                end
                return { path = path, sha256 = sha, registry = o.registry,
                         label = label, name = name }
            end
            looked[#looked + 1] = string.format("registry %s, %s%s",
                o.registry, scope and ("namespace " .. scope) or
                "personal images", okr and "" or
                (" (" .. util.plain_error(path) .. ")"))
        end
    end
    local base = string.format("%s/qemu/%s/%s", o.disks or
                               "/var/lib/djinn/images", o.arch or "x86_64",
                               name)
    local st = fs.stat(base)
    if st and st.type == "file" then
        if db then db:close() end
        return { path = base, label = name .. " (base image)", name = name }
    end
    -- Not found: say where images of that name are, and how a manifest
    -- names them. A name with "/" is a base image path; its last segment
    -- may be a registered image written as NAMESPACE/NAME.
    local hint
    if db == nil and have then
        db = require("djinn.registry").open(o.registry)
    end
    if db then
        local short = name:match("/([%w_%-]+)$")
        local other = M.elsewhere(db, short or name)
        if other and short then
            hint = string.format("%q is read as a base image path (a " ..
                "name with \"/\"); registered images are named with " ..
                "the namespace: and image: keys.\n%s", name, other)
        elseif other then
            hint = other
        end
        db:close()
    end
    if st then
        return nil, string.format("couldn't find image %s: the base image " ..
                                  "%s is not a file%s", name, base,
                                  hint and ("\n" .. hint) or "")
    end
    looked[#looked + 1] = "base image " .. base .. " (disks in driver.conf)"
    return nil, string.format("couldn't find image %s%s\nmake sure your " ..
        "image exists in the namespace the build is being run from\n" ..
        "looked in: %s%s", name, ns and (" in namespace " .. ns) or "",
        table.concat(looked, "; "), hint and ("\n" .. hint) or "")
end

---------------------------------------------------------------------------
-- Checking an image before a boot.
---------------------------------------------------------------------------
local function identity(st)
    return { dev = st.dev, ino = st.ino, size = st.size,
             mtime_ns = st.mtime_ns, ctime_ns = st.ctime_ns }
end

local function same_identity(a, b)
    return a.dev == b.dev and a.ino == b.ino and a.size == b.size and
        a.mtime_ns == b.mtime_ns and a.ctime_ns == b.ctime_ns
end

function M.unchanged(path, id)
    local st = require("djinn.fs").stat(path)
    return st ~= nil and same_identity(id, identity(st))
end

-- The registry's check of img's SHA-256 (image_verify). -> true | nil,
-- cause
local function check_sha256(img, log)
    local proc = require "djinn.proc"
    local util = require "djinn.util"
    local db, err = open_registry(img.registry)
    if db == nil then
        return nil, "image " .. img.label .. ": " .. err
    end
    local t0 = proc.now()
    local rows
    rows, err = db:query("SELECT image_verify(?, ?) AS v", img.path,
                         img.sha256)
    db:close()
    local how = rows and rows[1] and rows[1].v
    if how == "cached" then
        if log then
            log:line("Image " .. img.label .. ": SHA-256 matches the " ..
                     "registry (unchanged since the last check)")
        end
        return true
    elseif how == "hashed" then
        if log then
            log:line(string.format("Image %s: SHA-256 matches the " ..
                "registry (checked in %s)", img.label,
                util.fmt_duration(proc.now() - t0)))
        end
        return true
    end
    local msg = util.plain_error(err or ("image_verify answered " ..
                                         tostring(how)))
    if msg:find("does not match the registry", 1, true) then
        return nil, string.format("image %s: %s: it was modified or " ..
            "replaced after registration; refusing to boot it (remove " ..
            "and register the image again)", img.label, msg)
    elseif msg:find("changed while it was being checked", 1, true) then
        return nil, "image " .. img.label .. ": " .. msg ..
            "; refusing to boot it"
    end
    return nil, "image " .. img.label .. ": cannot hash " .. img.path ..
        ": " .. msg
end

function M.verify(img, log)
    local fs = require "djinn.fs"
    local st, err = fs.stat(img.path)
    if st == nil then
        return nil, "image " .. img.label .. ": " .. tostring(err)
    end
    local id = identity(st)
    if img.sha256 then
        local ok, cause = check_sha256(img, log)
        if not ok then return nil, cause end
    end
    local rep = require("djinn.qcow2").check(img.path)
    if not rep.valid then
        local msgs = {}
        for _, e in ipairs(rep.errors or {}) do
            msgs[#msgs + 1] = (e.code and (e.code .. ": ") or "") ..
                tostring(e.message)
        end
        return nil, string.format("image %s: %s is not a valid QCOW2 " ..
            "image; refusing to boot it:\n  %s", img.label, img.path,
            table.concat(msgs, "\n  "))
    end
    -- The hash and the validation were of this very file.
    if not M.unchanged(img.path, id) then
        return nil, "image " .. img.label .. ": " .. img.path ..
            " changed while it was being checked; refusing to boot it"
    end
    return rep.info or {}, id
end

---------------------------------------------------------------------------
-- The image-contract check's verdicts.
---------------------------------------------------------------------------
function M.last_check(db, img, only_unusable)
    local json = require "djinn.json"
    local sha = img.sha256
    if sha == nil then
        if only_unusable then
            local any, err = db:query("SELECT 1 AS x FROM image_last_check " ..
                                      "WHERE verdict = 'unusable' LIMIT 1")
            if any == nil then return nil, err end
            if #any == 0 then return nil end
        end
        local rows, err = db:query("SELECT image_sha256(?) AS h", img.path)
        sha = rows and rows[1] and rows[1].h
        if sha == nil then return nil, err end
    end
    local rows, err = db:query("SELECT * FROM image_last_check WHERE " ..
                               "sha256 = ?", sha)
    if rows == nil then return nil, err end
    local row = rows[1]
    if row == nil then return nil end
    row.items = json.decode(row.items or "[]") or {}
    return row
end

function M.failed_items(row)
    local lines = {}
    for _, it in ipairs(row.items or {}) do
        if type(it) == "table" and it.status == "fail" then
            lines[#lines + 1] = string.format("  %s: %s", tostring(it.name),
                                              tostring(it.detail))
            if type(it.fix) == "string" and it.fix ~= "" then
                lines[#lines + 1] = "    fix: " .. it.fix
            end
        end
    end
    return table.concat(lines, "\n")
end

function M.check_refusal(img, registry, log, refuse)
    local fs = require "djinn.fs"
    if registry == nil or not fs.exists(registry) then return nil end
    local db, err = open_registry(registry)
    local row
    if db then
        row, err = M.last_check(db, img, true)
        db:close()
    end
    if row == nil then
        if err and log then
            log:warn("image " .. img.label .. ": cannot read its last " ..
                     "boot check: " .. require("djinn.util").plain_error(err))
        end
        return nil
    end
    if row.verdict ~= "unusable" then return nil end
    local text = string.format("image %s: its last boot check (%s, %s) " ..
        "said unusable:\n%s", img.label, tostring(row.checked_at),
        tostring(row.machine), M.failed_items(row))
    if refuse then
        return text .. "\nfix the image and check it again (djinn-lua " ..
            "image check --boot), or set refuse_unusable false in the " ..
            "driver qemu block of driver.conf to boot it anyway"
    end
    if log then
        log:warn(text .. "\nbooting it anyway (refuse_unusable false in " ..
                 "driver.conf)")
    end
    return nil
end

return M
