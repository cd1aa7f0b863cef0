-- djinn.manifest: Djinn build manifests (.djinn.yml), parsed with the
-- position-keeping node API of djinn.yaml and validated strictly.
--
--   manifest.parse(text [, filename]) -> m, warnings | nil, errors
--   manifest.load(path)               -> m, warnings | nil, errors
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
function M.parse_passthrough(s)
    local src, dst = util.split_first(s, "=>")
    src = util.trim(src)
    if dst ~= nil then
        dst = util.trim(dst)
    end
    if dst == nil or dst == "" then
        return { src = src, dst = util.basename(src), named = false }
    end
    return { src = src, dst = dst, named = true }
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
-- Node helpers.
---------------------------------------------------------------------------
local kind_names = { scalar = "a string", seq = "a list", map = "a mapping" }

local function is_null(node)
    if node == nil then return true end
    if node.kind ~= "scalar" then return false end
    if node.tag == "!!null" then return true end
    if node.style ~= "plain" or node.tag ~= nil then return false end
    local v = node.value
    return v == "" or v == "~" or v == "null" or v == "Null" or v == "NULL"
end

local function describe(node)
    if is_null(node) then return "null" end
    return kind_names[node.kind] or "something else"
end

local Ctx = {}
Ctx.__index = Ctx

function Ctx:msg(node, fmt, ...)
    local line, col = 0, 0
    if node then line, col = node.line or 0, node.col or 0 end
    return string.format("%s:%d:%d: ", self.file, line, col) ..
        string.format(fmt, ...)
end
function Ctx:err(node, fmt, ...)
    self.errors[#self.errors + 1] = self:msg(node, fmt, ...)
end
function Ctx:warn(node, fmt, ...)
    self.warnings[#self.warnings + 1] = self:msg(node, fmt, ...)
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

-- A YAML merge key: a plain "<<" (or one tagged !!merge), as yaml.v2
-- reads it.
local function is_merge(knode)
    return knode.kind == "scalar" and knode.value == "<<" and
        ((knode.style == "plain" and knode.tag == nil) or
         knode.tag == "!!merge")
end

-- Iterate a mapping: reports non-string and duplicate keys; yields
-- key, key_node, value_node for each key, in the order of first
-- appearance. Merge keys ("<<: *defaults", "<<: [*a, *b]") are read as
-- Djinn's yaml.v2 reads them: in document order, a merged key replacing
-- what came before it and replaced by what comes after; in a list the
-- earlier mappings win. A key written twice in the mapping itself is
-- still an error (yaml.v2 keeps the last).
function Ctx:pairs(node, path)
    local slot, items, written = {}, {}, {}
    local prefix = path == "" and "" or path .. ": "
    local function set(k, knode, vnode)
        local it = slot[k]
        if it == nil then
            it = { k, knode, vnode }
            slot[k] = it
            items[#items + 1] = it
        else
            it[2], it[3] = knode, vnode
        end
    end
    local merge
    local function merge_map(m, depth)
        for i, knode in ipairs(m.keys) do
            local vnode = m.values[i]
            if is_merge(knode) then
                merge(vnode, depth + 1)
            elseif knode.kind == "scalar" then
                set(knode.value, knode, vnode)
            end
        end
    end
    -- (The work is bounded by the YAML layer's limit on alias expansion,
    -- max_nodes: a merge walks keys that limit counted.)
    merge = function(vnode, depth)
        if depth > 32 then
            self:err(vnode, "%s<<: merges nested too deep", prefix)
        elseif vnode.kind == "map" then
            merge_map(vnode, depth)
        elseif vnode.kind == "seq" then
            for i = #vnode, 1, -1 do
                if vnode[i].kind ~= "map" then
                    self:err(vnode[i], "%s<<[%d]: a merge takes mappings, " ..
                             "got %s", prefix, i, describe(vnode[i]))
                else
                    merge_map(vnode[i], depth)
                end
            end
        else
            self:err(vnode, "%s<<: a merge takes a mapping or a list of " ..
                     "mappings (<<: *name), got %s", prefix, describe(vnode))
        end
    end
    for i, knode in ipairs(node.keys) do
        local vnode = node.values[i]
        if is_merge(knode) then
            merge(vnode, 1)
        elseif knode.kind ~= "scalar" then
            self:err(knode, "%s: keys must be strings, got %s", path,
                     describe(knode))
        else
            local k = knode.value
            if written[k] then
                self:err(knode, "%sduplicate key %q (first at line %d:%d)",
                         prefix, k, written[k].line or 0,
                         written[k].col or 0)
            else
                written[k] = knode
                set(k, knode, vnode)
            end
        end
    end
    local i = 0
    return function()
        i = i + 1
        local it = items[i]
        if it then return it[1], it[2], it[3] end
    end
end

-- A string value; nil (no error) for null.
function Ctx:string(node, path)
    if is_null(node) then return nil end
    if node.kind ~= "scalar" then
        self:err(node, "%s: expected a string, got %s", path, describe(node))
        return nil
    end
    return node.value
end

-- A list of strings; {} for null. Each item is returned with its node.
function Ctx:string_list(node, path)
    local out, nodes = {}, {}
    if is_null(node) then return out, nodes end
    if node.kind ~= "seq" then
        self:err(node, "%s: expected a list of strings, got %s", path,
                 describe(node))
        return out, nodes
    end
    for i, item in ipairs(node) do
        if is_null(item) then
            -- Djinn (yaml.v2) reads a null item as "".
            out[#out + 1] = ""
            nodes[#nodes + 1] = item
        elseif item.kind ~= "scalar" then
            self:err(item, "%s[%d]: expected a string, got %s", path, i,
                     describe(item))
        else
            out[#out + 1] = item.value
            nodes[#nodes + 1] = item
        end
    end
    return out, nodes
end

function Ctx:passthrough_list(node, path)
    local list = {}
    local items, nodes = self:string_list(node, path)
    for i, s in ipairs(items) do
        local pt = M.parse_passthrough(s)
        pt.line, pt.col = nodes[i].line, nodes[i].col
        list[#list + 1] = pt
        if pt.src == "" then
            self:warn(nodes[i], "%s[%d]: %q has an empty source; nothing " ..
                      "will be %s (expected SRC or SRC => DST)", path, i, s,
                      path == "objects" and "placed" or "collected")
        end
    end
    return list
end

-- Paths that would escape their directory (absolute, or with "..") are
-- manifest errors (exit 2, before any driver is created): object
-- sources, and the artifact destinations the manifest wrote. Other paths
-- that name no file ("", ".") load, as in Djinn, and fail at run time
-- with an "object error:" or "artifact error:" line.
function Ctx:check_paths(list, path, artifacts)
    for i, pt in ipairs(list) do
        local p = artifacts and pt.dst:gsub("%*", "x") or pt.src
        local _, why = util.safe_relpath(p)
        if artifacts and not pt.named then
            why = nil  -- each match's own name, checked by store:target
        elseif why == "the path names the directory itself" then
            if not artifacts then
                self:warn(pt, "%s[%d]: source %q names the objects " ..
                          "directory itself; it will not be placed " ..
                          "(objects are files inside it)", path, i, pt.src)
            end
            why = nil
        end
        if why and why ~= "empty path" then
            if artifacts then
                self:err(pt, "%s[%d]: destination %q: %s (artifact " ..
                         "destinations are relative to the artifacts " ..
                         "directory and stay inside it)", path, i, pt.dst,
                         why)
            else
                self:err(pt, "%s[%d]: source %q: %s (objects are read " ..
                         "from the objects directory, relative paths " ..
                         "inside it)", path, i, pt.src, why)
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
local function parse_driver(ctx, node, root)
    local drv = {}
    if node == nil then
        ctx:err(root, "invalid driver specified (the manifest has no " ..
                "driver; allowed types: %s)", allowed_types)
        return drv
    end
    if node.kind ~= "map" then
        ctx:err(node, "driver: expected a mapping, got %s", describe(node))
        return drv
    end
    local tnode, knodes = nil, {}
    for k, knode, v in ctx:pairs(node, "driver") do
        knodes[#knodes + 1] = { k, knode }
        local s = ctx:string(v, "driver." .. k)
        if s and s:find("\0", 1, true) then
            ctx:err(v, "driver.%s: NUL bytes are not allowed", k)
        else
            drv[k] = s
        end
        if k == "type" then tnode = v or knode end
    end
    local t = drv.type
    local keys = t and M.driver_keys[t]
    if keys == nil then
        ctx:err(tnode or node, "invalid driver specified %s (allowed: " ..
                "%s)", t or "(driver.type is missing)", allowed_types)
        return drv
    end
    for _, kk in ipairs(knodes) do
        local k, knode = kk[1], kk[2]
        if not keys[k] then
            ctx:warn(knode, "driver.%s: unknown key for driver %s " ..
                     "(ignored; %sknown: %s)", k, t, did_you_mean(k, keys),
                     known_list(keys))
        end
    end
    local function need(key)
        if drv[key] == nil or drv[key] == "" then
            ctx:err(node, "driver %s requires %s", t, key)
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
            if why then ctx:err(node, "%s", why) end
        end
        -- Djinn forces arch = x86_64 for qemu (docs/djinn-compat.md
        -- §1.3, §4).
        if drv.arch ~= nil and drv.arch ~= "x86_64" then
            ctx:warn(node, "driver.arch: %q is not supported; qemu runs " ..
                     "x86_64 (as Djinn, arch is forced to x86_64)", drv.arch)
        end
        drv.arch = "x86_64"
    end
    return drv
end

local function parse_job(ctx, node, i)
    local path = string.format("jobs[%d]", i)
    if is_null(node) then
        ctx:warn(node, "%s: the job is empty (null); it is dropped", path)
        return nil
    end
    if node.kind ~= "map" then
        ctx:err(node, "%s: expected a mapping with stage, name, commands, " ..
                "artifacts; got %s", path, describe(node))
        return nil
    end
    local job = { commands = {}, artifacts = {}, line = node.line,
                  col = node.col, node = node }
    for k, knode, v in ctx:pairs(node, path) do
        if k == "stage" then
            job.stage = ctx:string(v, path .. ".stage")
            job.stage_node = v
        elseif k == "name" then
            job.name = ctx:string(v, path .. ".name")
            job.name_node = v
        elseif k == "commands" then
            job.commands = ctx:string_list(v, path .. ".commands")
        elseif k == "artifacts" then
            job.artifacts = ctx:check_paths(
                ctx:passthrough_list(v, path .. ".artifacts"),
                path .. ".artifacts", true)
        else
            ctx:warn(knode, "%s: unknown key %q (ignored; %sknown keys: %s)",
                     path, k, did_you_mean(k, job_keys),
                     table.concat(job_keys, ", "))
        end
    end
    if job.stage == nil then
        -- (a stage of the wrong type was already reported as an error)
        if job.stage_node == nil or is_null(job.stage_node) then
            ctx:warn(node, "%s: the job has no stage; it is dropped (add " ..
                     "stage: NAME, one of the names under stages)", path)
        end
        return nil
    end
    return job
end

local function validate(root, file)
    local ctx = setmetatable({ file = file, errors = {}, warnings = {} }, Ctx)
    local m = { file = file, driver = {}, env = {}, objects = {},
                sources = {}, stages = {}, allow_failures = {},
                allowed = {}, jobs = {} }
    if root == nil or is_null(root) then
        ctx:err(root or { line = 1, col = 1 },
                "the manifest is empty (expected a mapping with driver, " ..
                "stages, jobs ...)")
        return nil, ctx.errors
    end
    if root.kind ~= "map" then
        ctx:err(root, "expected a mapping at the top level, got %s",
                describe(root))
        return nil, ctx.errors
    end
    local nodes = {}
    for k, knode, v in ctx:pairs(root, "") do
        if top_set[k] then
            nodes[k] = v or knode
        else
            ctx:warn(knode, "unknown key %q (ignored; %sknown keys: %s)", k,
                     did_you_mean(k, top_keys), table.concat(top_keys, ", "))
        end
    end

    if nodes.namespace then
        m.namespace = ctx:string(nodes.namespace, "namespace")
        if m.namespace == "" then
            -- Djinn: an empty namespace is none (its client always sends
            -- `namespace: ""`).
            m.namespace = nil
        end
        if m.namespace then
            local _, nwhy = M.check_namespace(m.namespace)
            if nwhy then ctx:err(nodes.namespace, "%s", nwhy) end
        end
    end
    m.driver = parse_driver(ctx, nodes.driver, root)

    local env_items, env_nodes = ctx:string_list(nodes.env, "env")
    for i, item in ipairs(env_items) do
        local key, value = util.split_first(item, "=")
        if value == nil then
            ctx:err(env_nodes[i], "env[%d]: %q has no \"=\" (expected " ..
                    "KEY=VALUE)", i, item)
        elseif key == "" then
            ctx:err(env_nodes[i], "env[%d]: %q has an empty name (expected " ..
                    "KEY=VALUE)", i, item)
        elseif item:find("\0", 1, true) then
            ctx:err(env_nodes[i], "env[%d]: NUL bytes are not allowed", i)
        else
            m.env[#m.env + 1] = { key = key, value = value }
        end
    end

    m.objects = ctx:check_paths(ctx:passthrough_list(nodes.objects,
                                                     "objects"), "objects")

    local srcs, src_nodes = ctx:string_list(nodes.sources, "sources")
    for i, s in ipairs(srcs) do
        local src, why = M.parse_source(s)
        if src then
            src.line, src.col = src_nodes[i].line, src_nodes[i].col
            m.sources[#m.sources + 1] = src
        else
            ctx:err(src_nodes[i], "sources[%d]: %s", i, why)
        end
    end

    local stages, stage_nodes = ctx:string_list(nodes.stages, "stages")
    local stage_at = {}
    for i, s in ipairs(stages) do
        if stage_at[s] then
            ctx:warn(stage_nodes[i], "stages[%d]: stage %q is listed twice " ..
                     "(the first position, line %d, is kept)", i, s,
                     stage_at[s].line or 0)
        else
            stage_at[s] = stage_nodes[i]
            m.stages[#m.stages + 1] = s
        end
    end

    local allow, allow_nodes = ctx:string_list(nodes.allow_failures,
                                               "allow_failures")
    for i, s in ipairs(allow) do
        if not stage_at[s] then
            ctx:warn(allow_nodes[i], "allow_failures[%d]: stage %q is not " ..
                     "listed in stages (ignored)", i, s)
        end
        if not m.allowed[s] then
            m.allowed[s] = true
            m.allow_failures[#m.allow_failures + 1] = s
        end
    end

    local jobs = nodes.jobs
    if jobs and not is_null(jobs) and jobs.kind ~= "seq" then
        ctx:err(jobs, "jobs: expected a list of jobs, got %s",
                describe(jobs))
    elseif jobs and not is_null(jobs) then
        local count, names = {}, {}
        for i, jnode in ipairs(jobs) do
            local job = parse_job(ctx, jnode, i)
            if job and not stage_at[job.stage] then
                ctx:warn(job.stage_node or jnode, "jobs[%d]: stage %q is " ..
                         "not listed in stages; the job is dropped " ..
                         "(stages: %s)", i, job.stage,
                         #m.stages > 0 and table.concat(m.stages, ", ")
                         or "none")
            elseif job then
                local st = job.stage
                count[st] = (count[st] or 0) + 1
                names[st] = names[st] or {}
                if job.name == nil or job.name == "" then
                    job.name = st .. "." .. count[st]
                end
                local first = names[st][job.name]
                if first then
                    ctx:err(job.name_node or jnode, "jobs[%d]: duplicate " ..
                            "job name %q in stage %s (first at line %d:%d)",
                            i, job.name, st, first.line or 0, first.col or 0)
                else
                    names[st][job.name] = job.name_node or jnode
                end
                job.index = i
                job.node, job.stage_node, job.name_node = nil, nil, nil
                m.jobs[#m.jobs + 1] = job
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

function M.parse(text, filename)
    filename = filename or "<manifest>"
    local yaml = require "djinn.yaml"
    local root, err = yaml.parse(text, { filename = filename })
    local second
    if root == nil then
        -- Djinn (yaml.v2's Decode) reads the first document and ignores
        -- the others; so do we, with a warning.
        local first
        first, second = first_document(text, err)
        if first then
            root = yaml.parse(first, { filename = filename })
        end
        if root == nil then
            return nil, { err }
        end
    end
    local m, msgs = validate(root, filename)
    if m and second then
        table.insert(msgs, string.format("%s:%d:1: a second YAML document " ..
            "starts here; it is ignored (a manifest is the first " ..
            "document, as in Djinn)", filename, second))
    end
    return m, msgs
end

function M.load(path)
    local f, err = io.open(path, "rb")
    if f == nil then
        return nil, { string.format("%s: cannot read the manifest: %s",
                                    path, err) }
    end
    -- Check the size first (a regular file): nothing of a huge file is
    -- read. For pipes, read at most the limit + 1 byte.
    local size = f:seek("end")
    if size and size > 8 * 1024 * 1024 then
        f:close()
        return nil, { string.format("%s: the manifest is larger than 8 " ..
            "MiB (%d bytes; the limit is %d bytes)", path, size,
            8 * 1024 * 1024) }
    end
    if size then f:seek("set", 0) end
    local text = f:read(8 * 1024 * 1024 + 1)
    f:close()
    text = text or ""
    if #text > 8 * 1024 * 1024 then
        return nil, { path .. ": the manifest is larger than 8 MiB" }
    end
    return M.parse(text, path)
end

-- Plain Lua value -> node tree (positions 0:0), so tables get the same
-- validation as YAML text.
local function to_node(v)
    local tv = type(v)
    if tv == "table" then
        if v[1] ~= nil or next(v) == nil then
            local n = { kind = "seq", line = 0, col = 0 }
            for i, item in ipairs(v) do n[i] = to_node(item) end
            if next(v) == nil then
                return n
            end
            return n
        end
        local keys = {}
        for k in pairs(v) do keys[#keys + 1] = tostring(k) end
        table.sort(keys)
        local n = { kind = "map", line = 0, col = 0, keys = {}, values = {} }
        for i, k in ipairs(keys) do
            local val = v[k]
            if val == nil then val = v[tonumber(k)] end
            n.keys[i] = { kind = "scalar", value = k, style = "plain",
                          line = 0, col = 0 }
            n.values[i] = to_node(val)
        end
        return n
    end
    return { kind = "scalar", value = tostring(v), style = "double",
             line = 0, col = 0 }
end

function M.from_table(t, name)
    if type(t) ~= "table" then
        return nil, { (name or "<table>") .. ":0:0: expected a table" }
    end
    return validate(to_node(t), name or "<table>")
end

return M
