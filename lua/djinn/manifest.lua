-- djinn.manifest: Djinn build manifests (.djinn.yml), parsed with the
-- position-keeping packed tree of djinn.yaml (yaml.parse_packed: a scalar
-- is its string with a position integer beside it, no table per scalar)
-- and validated strictly.
--
-- Two loads, one result. The one-pass load (yaml.manifest_fast, in C)
-- builds the jobs and the env list straight from libyaml's events into
-- the tables below while it checks them, and takes only what loads
-- without a message; whatever it declines (anything this file would warn
-- about or refuse in the jobs or env, anchors and aliases, merge keys, a
-- second document, a YAML error, a limit) is loaded the full way, which
-- says what and where. M.loader picks them (see there); tests and the
-- manifest fuzzer run both and fail when they differ.
--
--   manifest.parse(text [, filename [, limits]]) -> m, warnings | nil, errors
--   manifest.load(path [, limits])    -> m, warnings | nil, errors
--       limits = { max_manifest_size =, max_manifest_aliases = } (driver.conf
--       `limits {}`; see M.MAX_SIZE below)
--   manifest.from_table(t [, name])   -> m, warnings | nil, errors
--       (t is a plain Lua value shaped like the YAML; positions are 0:0)
--   manifest.parse_passthrough(s)     -> { src =, dst =, named = bool }
--   manifest.parse_source(s)          -> { url =, ref =, dir = } | nil, why
--
-- warnings and errors are arrays of "FILE:LINE:COL: message" strings;
-- every error in the file is reported, not only the first.
--
-- The result (every field present, lists possibly empty):
--   m.file            the filename used in messages
--   m.namespace       string or nil (ignored by the offline runner; an
--                     empty string is none, as in Djinn, whose own client
--                     always sends the key)
--   m.driver          { type = "os", image = "...", ... } (strings; for
--                     qemu, arch is always "x86_64" as in Djinn)
--   m.env             ordered { { key =, value = }, ... } (split on the
--                     first "=")
--   m.objects         ordered { { src =, dst =, named = }, ... } (Djinn
--                     keeps a map and loses the order; we keep the list)
--   m.sources         { { url =, ref = "" | REF, dir = }, ... }
--   m.stages          { "build", "test", ... } (first occurrence kept)
--   m.allow_failures  { "test", ... }, and m.allowed[stage] = true
--   m.jobs            { { stage =, name =, commands = {...},
--                         artifacts = { {src=,dst=,named=}... }, line =,
--                         col = } }
--                     in manifest order; jobs of unlisted stages dropped.
--
-- A passthrough's `named` is false when the manifest wrote no DST ("SRC",
-- or "SRC =>" with nothing after it, which Djinn's own API client sends):
-- dst is then basename(SRC), and each artifact a glob matches keeps its
-- own name (Djinn would name every match after the basename of the
-- pattern with its "*" replaced: out/*.log gave a.log.log).
--
-- Defaults follow Djinn's offline runner: job name "<stage>.<n>" with n =
-- number of jobs already in that stage + 1; passthrough DST = basename of
-- SRC; source DIR = last "/" element of the URL without ".git".
--
-- Where Djinn is silent we are not (Djinn behaviour in brackets):
--   warnings: unknown keys [ignored]; jobs whose stage is not listed, or
--     with no stage, or null [dropped, still dropped]; a stage listed
--     twice; allow_failures naming an unlisted stage [ignored]; unknown
--     driver keys for the type; an object or artifact with an empty
--     source, an object whose source is the objects directory itself
--     ("."), [loaded; placing or collecting it fails at run time, and
--     still does].
--   errors: wrong types; env items without "=" [panic]; duplicate job
--     names in a stage [the later replaced the earlier]; duplicate mapping
--     keys [last wins]; missing driver keys (Djinn's messages, without its
--     "requies" typo); an empty source URL; object sources and artifact
--     destinations that are absolute or climb out with ".." [left to the
--     drivers].
-- YAML merge keys (<<: *defaults) are read as yaml.v2 reads them (see
-- Ctx:pairs).
-- Everything Djinn accepts otherwise loads here with the same reading
-- (tests/lua/djinn_manifests_test.lua checks the manifests in
-- tests/manifests/djinn/, collected from Djinn's own repositories).
-- Lists are reported with 1-based indices: jobs[2] is the second job.
local util = require "djinn.util"
local driver_decl = require "djinn.drivers.describe"

local M = {}

-- The driver types and the manifest driver keys each type reads (others
-- draw a warning), from each driver's declaration
-- (lua/djinn/drivers/<type>_describe.lua: manifest_keys).
M.driver_types = {}
M.driver_keys = {}
for i, dt in ipairs(driver_decl.types) do
    M.driver_types[i] = dt
    M.driver_keys[dt] = driver_decl.manifest_keys(dt)
end
local allowed_types = table.concat(M.driver_types, ", ")
local top_keys = { "namespace", "driver", "env", "objects", "sources",
                   "stages", "allow_failures", "jobs" }
local job_keys = { "stage", "name", "commands", "artifacts" }
-- The loader's key lists, read also by djinn.manifest_schema (the JSON
-- Schema for editors is generated from these same tables).
M.top_keys, M.job_keys = top_keys, job_keys

local function set_of(list)
    local s = {}
    for _, v in ipairs(list) do s[v] = true end
    return s
end
local top_set, job_set = set_of(top_keys), set_of(job_keys)

---------------------------------------------------------------------------
-- Grammar helpers shared with the pipeline.
---------------------------------------------------------------------------

-- SRC [=> DST], split on the first "=>". Never fails: as in Djinn, an
-- empty SRC loads (and fails when placed or collected), and an empty DST
-- after "=>" is a DST not written (named = false, dst = basename(SRC)).
local space_byte = { [32] = true, [9] = true, [10] = true, [11] = true,
                     [12] = true, [13] = true } -- (Lua's %s)

function M.parse_passthrough(s)
    -- The usual "SRC => DST": one space each side of the first "=>", no
    -- space at either end (what the trims below would give, without
    -- them). (line and col: room for the manifest's positions.)
    local a = s:find("=>", 1, true)
    if a and a > 2 and s:byte(a - 1) == 32 and s:byte(a + 2) == 32 then
        local b1, b2, e1, e2 = s:byte(1), s:byte(a - 2), s:byte(a + 3),
                               s:byte(-1)
        if e1 and not space_byte[b1] and not space_byte[b2] and
            not space_byte[e1] and not space_byte[e2] then
            return { src = s:sub(1, a - 2), dst = s:sub(a + 3),
                     named = true, line = nil, col = nil }
        end
    end
    local src, dst = util.split_first(s, "=>")
    src = util.trim(src)
    if dst ~= nil then
        dst = util.trim(dst)
    end
    if dst == nil or dst == "" then
        return { src = src, dst = util.basename(src), named = false,
                 line = nil, col = nil }
    end
    return { src = src, dst = dst, named = true, line = nil, col = nil }
end

-- URL [REF] [=> DIR] (Djinn's Source.UnmarshalYAML).
function M.parse_source(s)
    s = util.trim(s)
    local url, rest = s:match("^(%S+)(.*)$")
    if url == nil then
        return nil, "empty source (expected URL [REF] [=> DIR])"
    end
    local base = url:gsub("/+$", ""):match("([^/]*)$")
    local dir = base:gsub("%.git$", "")
    local ref = ""
    rest = rest:gsub("%s", "")
    if rest:find("=>", 1, true) then
        ref, dir = util.split_first(rest, "=>")
    else
        ref = rest
    end
    if url:find("=>", 1, true) then
        return nil, string.format("source %q: write a space before \"=>\" " ..
                                  "(URL [REF] [=> DIR])", s)
    end
    if dir == "" then
        return nil, string.format("source %q: cannot tell the directory " ..
                                  "to clone into; write URL => DIR", s)
    end
    return { url = url, ref = ref, dir = dir }
end

---------------------------------------------------------------------------
-- Node helpers. The tree is djinn.yaml's packed form (yaml.parse_packed):
-- a scalar is its string value with a meta integer beside it (position,
-- null and merge flags); a collection is a table whose array part holds
-- its items' metas (a map: key, value, key, value ...), with .items or
-- .keys/.values. Every function below takes a value with its meta.
---------------------------------------------------------------------------
local kind_names = { seq = "a list", map = "a mapping" }
local POS_MASK = (1 << 29) - 1
local META_NULL, META_MERGE = 32, 64

-- A position ({ line =, col = }) for messages.
local function pos(meta)
    return { line = meta >> 36, col = (meta >> 7) & POS_MASK }
end

local function is_null(v, meta)
    return v == nil or (type(v) == "string" and meta & META_NULL ~= 0)
end

local function describe(v, meta)
    if is_null(v, meta) then return "null" end
    if type(v) == "string" then return "a string" end
    return kind_names[v.kind] or "something else"
end

local Ctx = {}
Ctx.__index = Ctx

-- A message's path: path, or the format path with the index idx
-- ("jobs[%d].commands", 3): formatted only when a message needs it.
local function P(path, idx)
    if idx then return string.format(path, idx) end
    return path
end

-- at: a meta integer or a { line =, col = } table.
function Ctx:msg(at, fmt, ...)
    local line, col = 0, 0
    if type(at) == "number" then
        line, col = at >> 36, (at >> 7) & POS_MASK
    elseif at then
        line, col = at.line or 0, at.col or 0
    end
    return string.format("%s:%d:%d: ", self.file, line, col) ..
        string.format(fmt, ...)
end
function Ctx:err(at, fmt, ...)
    self.errors[#self.errors + 1] = self:msg(at, fmt, ...)
end
function Ctx:warn(at, fmt, ...)
    self.warnings[#self.warnings + 1] = self:msg(at, fmt, ...)
end

-- Sort messages by line and column (stable: the order of discovery breaks
-- ties).
local function by_position(list)
    local keyed = {}
    for i, s in ipairs(list) do
        local l, c = s:match(":(%d+):(%d+): ")
        keyed[i] = { tonumber(l) or 0, tonumber(c) or 0, i, s }
    end
    table.sort(keyed, function(a, b)
        if a[1] ~= b[1] then return a[1] < b[1] end
        if a[2] ~= b[2] then return a[2] < b[2] end
        return a[3] < b[3]
    end)
    for i, k in ipairs(keyed) do list[i] = k[4] end
    return list
end

-- A mapping's entries: n, keys, values, metas (metas[2i-1] the key's,
-- metas[2i] the value's). Reports non-string and duplicate keys; entries
-- are in the order of first appearance. Merge keys ("<<: *defaults",
-- "<<: [*a, *b]") are read as Djinn's yaml.v2 reads them: in document
-- order, a merged key replacing what came before it and replaced by what
-- comes after; in a list the earlier mappings win. A key written twice
-- in the mapping itself is still an error (yaml.v2 keeps the last).
function Ctx:entries(node, path, index)
    local keys, values = node.keys, node.values
    local n = #keys
    if not node.merge and not node.odd then
        -- The common case: string keys, no merges; only duplicates to
        -- look for (djinn.yaml compared the keys of small mappings: no
        -- dup flag, none).
        local dup = false
        if node.dup then
            local seen = {}
            for i = 1, n do
                local k = keys[i]
                if seen[k] then dup = true break end
                seen[k] = true
            end
        end
        if not dup then
            return n, keys, values, node
        end
    end
    if index then path = string.format(path, index) end
    local prefix = path == "" and "" or path .. ": "
    local slot, ks, vs, ms, written, wmeta = {}, {}, {}, {}, {}, {}
    local function set(k, km, v, vm)
        local at = slot[k]
        if at == nil then
            at = #ks + 1
            slot[k] = at
            ks[at] = k
        end
        vs[at], ms[2 * at - 1], ms[2 * at] = v, km, vm
    end
    local merge
    local function merge_map(m, depth)
        for i, k in ipairs(m.keys) do
            local km = m[2 * i - 1]
            if type(k) == "string" and km & META_MERGE ~= 0 then
                merge(m.values[i], m[2 * i], depth + 1)
            elseif type(k) == "string" then
                set(k, km, m.values[i], m[2 * i])
            end
        end
    end
    -- (The work is bounded by the YAML layer's limit on alias expansion,
    -- max_alias_nodes: a merge walks keys that limit counted.)
    merge = function(v, vm, depth)
        if depth > 32 then
            self:err(vm, "%s<<: merges nested too deep", prefix)
        elseif type(v) == "table" and v.kind == "map" then
            merge_map(v, depth)
        elseif type(v) == "table" and v.kind == "seq" then
            for i = #v.items, 1, -1 do
                local item = v.items[i]
                if type(item) ~= "table" or item.kind ~= "map" then
                    self:err(v[i], "%s<<[%d]: a merge takes mappings, " ..
                             "got %s", prefix, i, describe(item, v[i]))
                else
                    merge_map(item, depth)
                end
            end
        else
            self:err(vm, "%s<<: a merge takes a mapping or a list of " ..
                     "mappings (<<: *name), got %s", prefix,
                     describe(v, vm))
        end
    end
    for i = 1, n do
        local k, km = keys[i], node[2 * i - 1]
        local v, vm = values[i], node[2 * i]
        if type(k) == "string" and km & META_MERGE ~= 0 then
            merge(v, vm, 1)
        elseif type(k) ~= "string" then
            self:err(km, "%s: keys must be strings, got %s", path,
                     describe(k, km))
        elseif written[k] then
            local first = wmeta[k]
            self:err(km, "%sduplicate key %q (first at line %d:%d)",
                     prefix, k, first >> 36, (first >> 7) & POS_MASK)
        else
            written[k], wmeta[k] = true, km
            set(k, km, v, vm)
        end
    end
    return #ks, ks, vs, ms
end

-- A string value; nil (no error) for null.
function Ctx:string(v, vm, path, idx)
    if is_null(v, vm) then return nil end
    if type(v) ~= "string" then
        self:err(vm, "%s: expected a string, got %s", P(path, idx),
                 describe(v, vm))
        return nil
    end
    return v
end

-- A list of strings; {} for null. Returns the strings and their metas
-- (metas[i] for out[i]). shared: the document has aliases of
-- collections, so the items table may be reached twice: copy it.
function Ctx:string_list(v, vm, path, idx)
    if is_null(v, vm) then return {}, {} end
    if type(v) ~= "table" or v.kind ~= "seq" then
        self:err(vm, "%s: expected a list of strings, got %s", P(path, idx),
                 describe(v, vm))
        return {}, {}
    end
    local items = v.items
    if not v.odd then
        if self.shared then
            return table.move(items, 1, #items, 1, {}), v
        end
        return items, v
    end
    local out, metas = {}, {}
    for i, item in ipairs(items) do
        local im = v[i]
        if is_null(item, im) then
            -- Djinn (yaml.v2) reads a null item as "".
            out[#out + 1] = ""
            metas[#metas + 1] = im
        elseif type(item) ~= "string" then
            self:err(im, "%s[%d]: expected a string, got %s", P(path, idx),
                     i, describe(item, im))
        else
            out[#out + 1] = item
            metas[#metas + 1] = im
        end
    end
    return out, metas
end

function Ctx:passthrough_list(v, vm, path, idx)
    local list = {}
    local items, metas = self:string_list(v, vm, path, idx)
    local parse = M.parse_passthrough
    for i, s in ipairs(items) do
        local pt = parse(s)
        local meta = metas[i]
        pt.line, pt.col = meta >> 36, (meta >> 7) & POS_MASK
        list[i] = pt
        if pt.src == "" then
            self:warn(meta, "%s[%d]: %q has an empty source; nothing " ..
                      "will be %s (expected SRC or SRC => DST)", P(path, idx),
                      i, s, path == "objects" and "placed" or "collected")
        end
    end
    return list
end

-- Paths that would escape their directory (absolute, or with "..") are
-- manifest errors (exit 2, before any driver is created): object
-- sources, and the artifact destinations the manifest wrote. Other paths
-- that name no file ("", ".") load, as in Djinn, and fail at run time
-- with an "object error:" or "artifact error:" line.
function Ctx:check_paths(list, path, artifacts, idx)
    local safe_relpath = util.safe_relpath
    for i, pt in ipairs(list) do
        local why
        if not artifacts then
            _, why = safe_relpath(pt.src)
            if why == "the path names the directory itself" then
                self:warn(pt, "%s[%d]: source %q names the objects " ..
                          "directory itself; it will not be placed " ..
                          "(objects are files inside it)", P(path, idx), i,
                          pt.src)
                why = nil
            end
        elseif pt.named then
            -- (not named: each match's own name, checked by store:target)
            local p = pt.dst
            if p:find("*", 1, true) then p = p:gsub("%*", "x") end
            _, why = safe_relpath(p)
            if why == "the path names the directory itself" then
                why = nil
            end
        end
        if why and why ~= "empty path" then
            if artifacts then
                self:err(pt, "%s[%d]: destination %q: %s (artifact " ..
                         "destinations are relative to the artifacts " ..
                         "directory and stay inside it)", P(path, idx), i,
                         pt.dst, why)
            else
                self:err(pt, "%s[%d]: source %q: %s (objects are read " ..
                         "from the objects directory, relative paths " ..
                         "inside it)", P(path, idx), i, pt.src, why)
            end
        end
    end
    return list
end

-- "did you mean commands? " for a misspelt key (issue 11, item 4.1):
-- the known keys nearest by edit distance (djinn.config.nearest), or "".
-- known: a list or a set of names.
local function did_you_mean(k, known)
    local ok, config = pcall(require, "djinn.config")
    if not ok or type(k) ~= "string" then return "" end
    local set = {}
    for a, b in pairs(known) do
        if type(a) == "number" then set[b] = true else set[a] = true end
    end
    local near = config.nearest(k, set)
    if #near == 0 then return "" end
    return "did you mean " .. table.concat(near, " or ") .. "? "
end

-- Djinn's namespace rule, path[@owner], is the registry's: one rule and
-- one message, from the extension (ext/registry.c reg_check_namespace via
-- djinn.registry.check_namespace), never a looser copy here.
function M.check_namespace(ns)
    local ok, why = require("djinn.registry").check_namespace(ns)
    if not ok then return nil, why end
    return ns
end

local function known_list(set)
    local l = {}
    for k in pairs(set) do l[#l + 1] = k end
    table.sort(l)
    return table.concat(l, ", ")
end

---------------------------------------------------------------------------
-- The validator.
---------------------------------------------------------------------------
local function parse_driver(ctx, node, nm, root_meta)
    local drv = {}
    if node == nil then
        ctx:err(root_meta, "invalid driver specified (the manifest has no " ..
                "driver; allowed types: %s)", allowed_types)
        return drv
    end
    if type(node) ~= "table" or node.kind ~= "map" then
        ctx:err(nm, "driver: expected a mapping, got %s", describe(node, nm))
        return drv
    end
    local tmeta, kms = nil, {}
    local n, keys, values, metas = ctx:entries(node, "driver")
    for i = 1, n do
        local k, v, vm = keys[i], values[i], metas[2 * i]
        kms[i] = metas[2 * i - 1]
        local s = ctx:string(v, vm, "driver." .. k)
        if s and s:find("\0", 1, true) then
            ctx:err(vm, "driver.%s: NUL bytes are not allowed", k)
        else
            drv[k] = s
        end
        if k == "type" then tmeta = vm end
    end
    local t = drv.type
    local dkeys = t and M.driver_keys[t]
    if dkeys == nil then
        ctx:err(tmeta or nm, "invalid driver specified %s (allowed: " ..
                "%s)", t or "(driver.type is missing)", allowed_types)
        return drv
    end
    for i = 1, n do
        local k = keys[i]
        if not dkeys[k] then
            ctx:warn(kms[i], "driver.%s: unknown key for driver %s " ..
                     "(ignored; %sknown: %s)", k, t, did_you_mean(k, dkeys),
                     known_list(dkeys))
        end
    end
    local function need(key)
        if drv[key] == nil or drv[key] == "" then
            ctx:err(nm, "driver %s requires %s", t, key)
        end
    end
    for _, k in ipairs(driver_decl.of(t).manifest_keys) do
        if k.required then need(k.name) end
    end
    if t == "qemu" then
        -- The driver's image name rule, checked here too so that a
        -- hostile name is a manifest error (exit 2).
        local img = drv.image
        if img and img ~= "" then
            local _, why = util.check_image_name(img)
            if why then ctx:err(nm, "%s", why) end
        end
        -- Djinn forces arch = x86_64 for qemu (docs/djinn-compat.md
        -- §1.3, §4).
        if drv.arch ~= nil and drv.arch ~= "x86_64" then
            ctx:warn(nm, "driver.arch: %q is not supported; qemu runs " ..
                     "x86_64 (as Djinn, arch is forced to x86_64)", drv.arch)
        end
        drv.arch = "x86_64"
    end
    return drv
end

-- One job (jobs[i]); nil when it is dropped. The path "jobs[i]" is only
-- formatted for a message.
local function parse_job(ctx, node, nm, i)
    if is_null(node, nm) then
        ctx:warn(nm, "jobs[%d]: the job is empty (null); it is dropped", i)
        return nil
    end
    if type(node) ~= "table" or node.kind ~= "map" then
        ctx:err(nm, "jobs[%d]: expected a mapping with stage, name, " ..
                "commands, artifacts; got %s", i, describe(node, nm))
        return nil
    end
    -- (every field named: the table is made with room for them all)
    local job = { stage = nil, name = nil, commands = nil, artifacts = nil,
                  line = nm >> 36, col = (nm >> 7) & POS_MASK, index = nil }
    local stage_v, stage_m, name_m
    local n, keys, values, metas = ctx:entries(node, "jobs[%d]", i)
    for j = 1, n do
        local k, v, vm = keys[j], values[j], metas[2 * j]
        if k == "stage" then
            if type(v) == "string" and vm & META_NULL == 0 then
                job.stage = v
            else
                job.stage = ctx:string(v, vm, "jobs[%d].stage", i)
            end
            stage_v, stage_m = v, vm
        elseif k == "name" then
            if type(v) == "string" and vm & META_NULL == 0 then
                job.name = v
            else
                job.name = ctx:string(v, vm, "jobs[%d].name", i)
            end
            name_m = vm
        elseif k == "commands" then
            if type(v) == "table" and not v.odd and v.kind == "seq" and
                not ctx.shared then
                job.commands = v.items
            else
                job.commands = ctx:string_list(v, vm, "jobs[%d].commands",
                                               i)
            end
        elseif k == "artifacts" then
            job.artifacts = ctx:check_paths(
                ctx:passthrough_list(v, vm, "jobs[%d].artifacts", i),
                "jobs[%d].artifacts", true, i)
        else
            ctx:warn(metas[2 * j - 1], "jobs[%d]: unknown key %q (ignored; " ..
                     "%sknown keys: %s)", i, k, did_you_mean(k, job_keys),
                     table.concat(job_keys, ", "))
        end
    end
    if job.commands == nil then job.commands = {} end
    if job.artifacts == nil then job.artifacts = {} end
    if job.stage == nil then
        -- (a stage of the wrong type was already reported as an error)
        if stage_m == nil or is_null(stage_v, stage_m) then
            ctx:warn(nm, "jobs[%d]: the job has no stage; it is dropped " ..
                     "(add stage: NAME, one of the names under stages)", i)
        end
        return nil
    end
    return job, stage_m, name_m
end

-- validate's answer when a tree from yaml.manifest_fast has something to
-- say about its jobs: load the text the full way instead.
local FALLBACK = {}

-- A job's place in its stage (count[stage]: jobs so far; names[stage]:
-- name -> what was first seen under it): the default name "<stage>.<n>"
-- (n = the jobs already in the stage + 1, as Djinn's offline runner) when
-- it has none, and what was first seen under its name (nil: nothing, and
-- seen_as is remembered).
local function place_job(count, names, job, seen_as)
    local st = job.stage
    local c = (count[st] or 0) + 1
    count[st] = c
    local seen = names[st]
    if seen == nil then
        seen = {}
        names[st] = seen
    end
    if job.name == nil or job.name == "" then
        job.name = st .. "." .. c
    end
    local first = seen[job.name]
    if first == nil then
        seen[job.name] = seen_as
    end
    return first
end

local function validate(root, rm, file, shared)
    local ctx = setmetatable({ file = file, errors = {}, warnings = {},
                               shared = shared ~= nil and shared > 0 },
                             Ctx)
    local m = { file = file, driver = {}, env = {}, objects = {},
                sources = {}, stages = {}, allow_failures = {},
                allowed = {}, jobs = {} }
    if root == nil or is_null(root, rm) then
        ctx:err(root ~= nil and rm or { line = 1, col = 1 },
                "the manifest is empty (expected a mapping with driver, " ..
                "stages, jobs ...)")
        return nil, ctx.errors
    end
    if type(root) ~= "table" or root.kind ~= "map" then
        ctx:err(rm, "expected a mapping at the top level, got %s",
                describe(root, rm))
        return nil, ctx.errors
    end
    local nv, nmeta = {}, {}
    local n, keys, values, metas = ctx:entries(root, "")
    for i = 1, n do
        local k = keys[i]
        if top_set[k] then
            nv[k], nmeta[k] = values[i], metas[2 * i]
        else
            ctx:warn(metas[2 * i - 1], "unknown key %q (ignored; %sknown " ..
                     "keys: %s)", k, did_you_mean(k, top_keys),
                     table.concat(top_keys, ", "))
        end
    end

    if nmeta.namespace then
        m.namespace = ctx:string(nv.namespace, nmeta.namespace, "namespace")
        if m.namespace == "" then
            -- Djinn: an empty namespace is none (its client always sends
            -- `namespace: ""`).
            m.namespace = nil
        end
        if m.namespace then
            local _, nwhy = M.check_namespace(m.namespace)
            if nwhy then ctx:err(nmeta.namespace, "%s", nwhy) end
        end
    end
    m.driver = parse_driver(ctx, nv.driver, nmeta.driver, rm)

    local env_items, env_metas = {}, nil
    if type(nv.env) == "table" and nv.env.fast then
        m.env = nv.env.items -- (yaml.manifest_fast split them)
    else
        env_items, env_metas = ctx:string_list(nv.env, nmeta.env, "env")
    end
    local menv = m.env
    for i, item in ipairs(env_items) do
        local eq = item:find("=", 1, true)
        if eq == nil then
            ctx:err(env_metas[i], "env[%d]: %q has no \"=\" (expected " ..
                    "KEY=VALUE)", i, item)
        elseif eq == 1 then
            ctx:err(env_metas[i], "env[%d]: %q has an empty name " ..
                    "(expected KEY=VALUE)", i, item)
        elseif item:find("\0", 1, true) then
            ctx:err(env_metas[i], "env[%d]: NUL bytes are not allowed", i)
        else
            menv[#menv + 1] = { key = item:sub(1, eq - 1),
                                value = item:sub(eq + 1) }
        end
    end

    m.objects = ctx:check_paths(ctx:passthrough_list(nv.objects,
        nmeta.objects, "objects"), "objects")

    local srcs, src_metas = ctx:string_list(nv.sources, nmeta.sources,
                                            "sources")
    for i, s in ipairs(srcs) do
        local src, why = M.parse_source(s)
        if src then
            src.line = src_metas[i] >> 36
            src.col = (src_metas[i] >> 7) & POS_MASK
            m.sources[#m.sources + 1] = src
        else
            ctx:err(src_metas[i], "sources[%d]: %s", i, why)
        end
    end

    local stages, stage_metas = ctx:string_list(nv.stages, nmeta.stages,
                                                "stages")
    local stage_at = {}
    for i, s in ipairs(stages) do
        if stage_at[s] then
            ctx:warn(stage_metas[i], "stages[%d]: stage %q is listed " ..
                     "twice (the first position, line %d, is kept)", i, s,
                     stage_at[s] >> 36)
        else
            stage_at[s] = stage_metas[i]
            m.stages[#m.stages + 1] = s
        end
    end

    local allow, allow_metas = ctx:string_list(nv.allow_failures,
        nmeta.allow_failures, "allow_failures")
    for i, s in ipairs(allow) do
        if not stage_at[s] then
            ctx:warn(allow_metas[i], "allow_failures[%d]: stage %q is not " ..
                     "listed in stages (ignored)", i, s)
        end
        if not m.allowed[s] then
            m.allowed[s] = true
            m.allow_failures[#m.allow_failures + 1] = s
        end
    end

    local jobs, jm = nv.jobs, nmeta.jobs
    if jm and type(jobs) == "table" and jobs.fast then
        -- yaml.manifest_fast built the jobs, each of which loads without
        -- a message; what is left is what needs the stages. Anything
        -- here that has a message is left to the full load, which says
        -- it (FALLBACK).
        local count, names = {}, {}
        local mjobs = m.jobs
        for i, job in ipairs(jobs.items) do
            if not stage_at[job.stage] or
                place_job(count, names, job, true) then
                return FALLBACK
            end
            job.index = i
            mjobs[i] = job
        end
    elseif jm and not is_null(jobs, jm) and
        (type(jobs) ~= "table" or jobs.kind ~= "seq") then
        ctx:err(jm, "jobs: expected a list of jobs, got %s",
                describe(jobs, jm))
    elseif jm and not is_null(jobs, jm) then
        local count, names = {}, {}
        local mjobs = m.jobs
        for i, jnode in ipairs(jobs.items) do
            local jmeta = jobs[i]
            local job, stage_m, name_m = parse_job(ctx, jnode, jmeta, i)
            if job and not stage_at[job.stage] then
                ctx:warn(stage_m or jmeta, "jobs[%d]: stage %q is " ..
                         "not listed in stages; the job is dropped " ..
                         "(stages: %s)", i, job.stage,
                         #m.stages > 0 and table.concat(m.stages, ", ")
                         or "none")
            elseif job then
                local first = place_job(count, names, job, name_m or jmeta)
                if first then
                    ctx:err(name_m or jmeta, "jobs[%d]: duplicate " ..
                            "job name %q in stage %s (first at line %d:%d)",
                            i, job.name, job.stage, first >> 36,
                            (first >> 7) & POS_MASK)
                end
                job.index = i
                mjobs[#mjobs + 1] = job
            end
        end
    end

    if #ctx.errors > 0 then
        return nil, by_position(ctx.errors)
    end
    return m, by_position(ctx.warnings)
end

-- The text of the first YAML document when yaml.parse refused a second
-- one (its message "FILE:L:C: more than one YAML document" says where
-- that one starts; a document start is the first thing on its line), or
-- nil.
local function first_document(text, err)
    local line = err:match(":(%d+):%d+: more than one YAML document$")
    line = tonumber(line)
    if line == nil or line < 2 then
        return nil
    end
    local pos = 1
    for _ = 2, line do
        pos = text:find("\n", pos, true)
        if pos == nil then
            return nil
        end
        pos = pos + 1
    end
    return text:sub(1, pos - 1), line
end

-- The limits on a manifest (driver.conf `limits { max_manifest_size;
-- max_manifest_aliases }`, docs/driver-conf.md):
--   max_manifest_size: bytes of the file (default 8 MiB; 0 = the most
--     the YAML layer takes, 128 MiB).
--   max_manifest_aliases: the nodes that YAML aliases stand for, in all
--     ("billion laughs": ten lines of aliases can stand for 10^10
--     nodes; default 1,000,000, so that even 5,000 jobs that each alias
--     a 100-item list load; 0 = no limit).
-- The document's own nodes have no limit of their own: each costs at
-- least one byte (`{a,b}`, "?\n"), so the size limit bounds them; the
-- YAML layer's max_nodes is set past that (twice the size, plus the
-- aliases) and is only a backstop.
M.MAX_SIZE = 8 * 1024 * 1024
M.MAX_ALIAS_NODES = 1000000
local HARD_MAX_SIZE = 128 * 1024 * 1024

local function human_size(n)
    if n % (1024 * 1024) == 0 then
        return string.format("%d MiB", n // (1024 * 1024))
    elseif n % 1024 == 0 then
        return string.format("%d KiB", n // 1024)
    end
    return string.format("%d bytes", n)
end

-- limits (optional): { max_manifest_size =, max_manifest_aliases = }
-- (0 or nil: see above) -> max_size, max_alias_nodes.
local function manifest_limits(limits)
    local size = limits and limits.max_manifest_size
    local aliases = limits and limits.max_manifest_aliases
    if size == nil then size = M.MAX_SIZE end
    if size == 0 or size > HARD_MAX_SIZE then size = HARD_MAX_SIZE end
    if aliases == nil then aliases = M.MAX_ALIAS_NODES end
    if aliases == 0 then aliases = math.maxinteger // 4 end
    return size, aliases
end

-- How to raise a limit (the words of djinn.tree's caps).
local function raise_hint(key, value)
    return string.format("raise it with `limits { %s %s }` in " ..
                         "driver.conf", key, value)
end

-- "NMB", at least `bytes` (driver.conf sizes are powers of 1024), or nil
-- past the most the YAML layer takes.
local function size_to_raise(bytes)
    if bytes > HARD_MAX_SIZE then return nil end
    local mb = (bytes + 1024 * 1024 - 1) // (1024 * 1024)
    return string.format("%dMB", mb)
end

-- The YAML layer's limit messages, with the driver.conf key that raises
-- each.
local function explain_limit(err, size, aliases)
    local rest = err:match("^(.*) %(max_alias_nodes%)$")
    if rest then
        return string.format("%s (the limit is max_manifest_aliases: %s, " ..
            "0 = no limit)",
            rest, raise_hint("max_manifest_aliases",
                             string.format("%d", aliases * 10)))
    end
    rest = err:match("^(.*) %(max_nodes%)$")
    if rest then
        local hint = size_to_raise(size * 2)
        return string.format("%s (the limit is 2 per byte of " ..
            "max_manifest_size, %s, plus the aliases%s)", rest,
            human_size(size), hint and ": " ..
            raise_hint("max_manifest_size", hint) or "")
    end
    local got = err:match("^.*: input is (%d+) bytes, larger than " ..
                          "max_size %d+$")
    if got then
        local hint = size_to_raise(tonumber(got))
        return string.format("%s: the manifest is larger than %s (%s " ..
            "bytes; the limit is max_manifest_size%s)",
            err:match("^(.-):1:1: ") or "", human_size(size), got,
            hint and ": " ..
            raise_hint("max_manifest_size", hint) or
            ", and past the most a manifest may be, " ..
            human_size(HARD_MAX_SIZE))
    end
    return err
end

-- parse(text [, filename [, limits]]): see the file header.
local parse_text
-- The collector is held while the tree is built and validated: all of it
-- is live until the end (tracing it while it grows, many times over, cost
-- a third of a large load), and neither the YAML layer nor the validator
-- makes much garbage.
local function gc_held(...)
    local running = collectgarbage("isrunning")
    collectgarbage("stop")
    local ok, m, msgs = pcall(parse_text, ...)
    if running then collectgarbage("restart") end
    if not ok then error(m, 0) end
    return m, msgs
end

function M.parse(text, filename, limits)
    return gc_held(text, filename, limits)
end

-- The one-pass load (yaml.manifest_fast, or manifest_fast_file over the
-- file at src): true, m, msgs, or nil (and why, from djinn.yaml) when it
-- declines (the full load then says what is wrong and where).
local function fast_load(fast, src, filename, opts)
    local root, rm, shared = fast(src, opts)
    if root == nil then
        return nil, nil, nil, rm
    end
    local m, msgs = validate(root, rm, filename, shared)
    if m == FALLBACK then
        return nil
    end
    return true, m, msgs
end

-- The full load: the packed tree of the whole text, then the validator.
local function full_load(yaml, text, filename, opts, max_size, max_alias)
    local root, rm, shared = yaml.parse_packed(text, opts)
    local second
    if root == nil then
        local err = rm
        -- Djinn (yaml.v2's Decode) reads the first document and ignores
        -- the others; so do we, with a warning.
        local first
        first, second = first_document(text, err)
        if first then
            root, rm, shared = yaml.parse_packed(first, opts)
        end
        if root == nil then
            return nil, { explain_limit(err, max_size, max_alias) }
        end
    end
    local m, msgs = validate(root, rm, filename, shared)
    if m and second then
        table.insert(msgs, string.format("%s:%d:1: a second YAML document " ..
            "starts here; it is ignored (a manifest is the first " ..
            "document, as in Djinn)", filename, second))
    end
    return m, msgs
end

-- Where two results differ ("[jobs][2][name]"), or nil (for "both").
local function differ(a, b, path)
    if type(a) ~= "table" or type(b) ~= "table" then
        if a == b then return nil end
        return path
    end
    for k, v in pairs(a) do
        local where = differ(v, b[k], path .. "[" .. tostring(k) .. "]")
        if where then return where end
    end
    for k in pairs(b) do
        if a[k] == nil then return path .. "[" .. tostring(k) .. "]" end
    end
    return nil
end

-- M.loader: "auto" (the one-pass load, else the full one), "full" (only
-- the full load) or "both" (tests and the fuzzer: both loads, raising if
-- the one-pass load's result or messages differ from the full load's).
-- M.last_loader says which load gave the last result: "fast" or "full".
M.loader = "auto"

-- text, or nil and read: a function that returns the text or nil,
-- errors (load: the one-pass load reads the file itself, and the text is
-- read only when it declines, or for "both").
parse_text = function(text, filename, limits, read)
    filename = filename or "<manifest>"
    local yaml = require "djinn.yaml"
    local max_size, max_alias = manifest_limits(limits)
    local opts = { filename = filename, max_size = max_size,
                   max_alias_nodes = max_alias,
                   max_nodes = math.min(math.maxinteger // 2,
                                        2 * max_size + max_alias + 64) }
    local errs
    -- The text, read (once) when it was not given: nil when it cannot be,
    -- and errs says why.
    local function the_text()
        if text == nil then
            text, errs = read()
        end
        return text
    end
    if M.loader ~= "full" then
        local ok, m, msgs, why
        if text == nil then
            ok, m, msgs, why = fast_load(yaml.manifest_fast_file, filename,
                                         filename, opts)
            -- a pipe: its text, then the one-pass load of that
            if why == "not a regular file" and the_text() == nil then
                return nil, errs
            end
        end
        if text ~= nil and not ok then
            ok, m, msgs = fast_load(yaml.manifest_fast, text, filename, opts)
        end
        if ok and M.loader == "both" then
            if the_text() == nil then
                error("djinn.manifest: " .. errs[1], 0)
            end
            local fm, fmsgs = full_load(yaml, text, filename, opts, max_size,
                                        max_alias)
            local where = differ({ m, msgs }, { fm, fmsgs }, "")
            if where then
                error(string.format("djinn.manifest: the one-pass load " ..
                    "differs from the full load of %s at %s", filename,
                    where), 0)
            end
        end
        if ok then
            M.last_loader = "fast"
            return m, msgs
        end
    end
    M.last_loader = "full"
    if the_text() == nil then
        return nil, errs
    end
    return full_load(yaml, text, filename, opts, max_size, max_alias)
end

-- load(path [, limits])
function M.load(path, limits)
    local max_size, max_alias = manifest_limits(limits)
    local function too_big(size)
        local hint = size_to_raise(size or max_size + 1)
        return string.format("%s: the manifest is larger than %s (%s" ..
            "the limit is max_manifest_size%s)", path, human_size(max_size),
            size and string.format("%d bytes; ", size) or "",
            hint and ": " .. raise_hint("max_manifest_size", hint) or
            ", and past the most a manifest may be, " ..
            human_size(HARD_MAX_SIZE))
    end
    local function read()
        local f, err = io.open(path, "rb")
        if f == nil then
            return nil, { string.format("%s: cannot read the manifest: %s",
                                        path, err) }
        end
        -- Check the size first (a regular file): nothing of a huge file
        -- is read. For pipes, read at most the limit + 1 byte.
        local size = f:seek("end")
        if size and size > max_size then
            f:close()
            return nil, { too_big(size) }
        end
        if size then f:seek("set", 0) end
        -- (a regular file: read exactly its size, one buffer of that
        -- size; a pipe: up to the limit + 1 byte)
        local text = f:read(size and size + 1 or max_size + 1)
        f:close()
        text = text or ""
        if #text > max_size then
            return nil, { too_big(nil) }
        end
        return text
    end
    return gc_held(nil, path, { max_manifest_size = max_size,
                                max_manifest_aliases = max_alias }, read)
end

-- Plain Lua value -> packed node (positions 0:0: meta 0, plus flags), so
-- tables get the same validation as YAML text. Scalars are "double"
-- quoted (never null); keys plain ("<<" is a merge key).
local function to_node(v)
    local tv = type(v)
    if tv == "table" then
        if v[1] ~= nil or next(v) == nil then
            local n = { kind = "seq", items = {} }
            local odd = 0
            for i, item in ipairs(v) do
                n.items[i], n[i] = to_node(item)
                if type(n.items[i]) == "table" then odd = odd + 1 end
            end
            if odd > 0 then n.odd = odd end
            return n, 0
        end
        local keys = {}
        for k in pairs(v) do keys[#keys + 1] = tostring(k) end
        table.sort(keys)
        local n = { kind = "map", keys = {}, values = {} }
        for i, k in ipairs(keys) do
            local val = v[k]
            if val == nil then val = v[tonumber(k)] end
            n.keys[i] = k
            n[2 * i - 1] = k == "<<" and META_MERGE or 0
            if k == "<<" then n.merge = true end
            n.values[i], n[2 * i] = to_node(val)
        end
        return n, 0
    end
    return tostring(v), 2
end

function M.from_table(t, name)
    if type(t) ~= "table" then
        return nil, { (name or "<table>") .. ":0:0: expected a table" }
    end
    local root, rm = to_node(t)
    return validate(root, rm, name or "<table>", 1)
end

return M
