-- djinn.drivers.describe: what each driver declares about itself. Every
-- driver type has one declaration, in lua/djinn/drivers/<type>_describe.lua
-- (also reachable as require("djinn.drivers.<type>").describe); the
-- manifest validator (djinn.manifest: the driver block), the driver.conf
-- parser (djinn.config: blocks, key types, defaults, unknown-key
-- warnings) and the crash reaper (djinn.state) read them instead of
-- keeping their own copies, and the reference docs and their coverage
-- test enumerate them. Pure data: these files require no other module
-- (the manifest and driver.conf fuzzers load them with the parsers).
--
-- The shape of one declaration (every field present; lists may be empty):
--   {
--     type = "qemu",                 the manifest's driver.type
--     doc = "...",                   one line: what the driver does
--     manifest_keys = {              keys of the manifest's driver block,
--       { name = "type", doc = "..." },   in documentation order; any
--       { name = "image", required = true, doc = "..." },  other key is
--       ...                          kept but warned about. required:
--     },                             missing or "" is a manifest error.
--     conf_keys = {                  keys of `driver <type> { ... }` in
--       key = {                      driver.conf; any other key is kept
--         type = "string" | "int" | "float" | "bool" | "duration" |
--                "size" | "array",  (checked by config.parse)
--         default = value | nil,     the value the driver uses when the
--                                    key is unset (nil: none; durations
--                                    and sizes in seconds and bytes)
--         doc = "...",               one line
--       }, ...                       but warned about, with the nearest
--     },                             declared keys as a suggestion.
--     defaults = { key = value },    what config.driver() fills in when
--                                    the file omits a key (each equals
--                                    conf_keys[key].default)
--     reap = {                       what the crash reaper cleans up
--       processes = { "qemu" },      state keys holding { pid =, start = }
--                                    of a process to SIGKILL (when its
--                                    start time matches and its command
--                                    line names the build directory)
--       docker = { "containers", "volumes" },  state sets of Docker
--                                    objects to remove (when the engine
--                                    lists them with the build's labels)
--     },
--   }
--
--   describe.types          the driver types, in the order messages list
--                           them: { "docker", "qemu", "ssh", "os" }
--   describe.of(type)       -> the declaration | nil
--   describe.manifest_keys(type) -> { name = true } | nil
--   describe.conf_schema()  -> { type = { key = conf type } } (fresh)
--   describe.defaults()     -> { type = { key = value } } (fresh)
local M = {}

M.types = { "docker", "qemu", "ssh", "os" }

local decl = {}
for _, t in ipairs(M.types) do
    decl[t] = require("djinn.drivers." .. t .. "_describe")
    assert(decl[t].type == t, "djinn.drivers." .. t .. "_describe: type")
end

function M.of(t)
    return decl[t]
end

function M.manifest_keys(t)
    local d = decl[t]
    if d == nil then return nil end
    local set = {}
    for _, k in ipairs(d.manifest_keys) do set[k.name] = true end
    return set
end

function M.conf_schema()
    local s = {}
    for _, t in ipairs(M.types) do
        s[t] = {}
        for k, v in pairs(decl[t].conf_keys) do s[t][k] = v.type end
    end
    return s
end

function M.defaults()
    local s = {}
    for _, t in ipairs(M.types) do
        s[t] = {}
        for k, v in pairs(decl[t].defaults) do s[t][k] = v end
    end
    return s
end

return M
