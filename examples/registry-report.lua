-- examples/registry-report.lua - summarise an image registry: every image
-- with its namespace, size and whether its stored file still passes the
-- QCOW2 validator, then totals. Exits 1 if a stored file is invalid.
--
--   djinn-lua examples/registry-report.lua [REGISTRY_DB]
--   (default $XDG_DATA_HOME/djinn/registry.db or
--    ~/.local/share/djinn/registry.db)
local djinn = require "djinn"

local path = arg[1] or require("djinn.cli").default_registry()
local db, err = djinn.registry.open(path)
if db == nil then
    io.stderr:write("registry-report: ", err, "\n")
    return 1
end
local rows = assert(db:list())
-- Each file is <store>/<sha256>.qcow2 (the store names files by content).
local store = assert(db:query("SELECT djinn_store() AS dir"))[1].dir
db:close()

local namespaces, bytes, invalid = {}, 0, 0
print(string.format("%-16s %-20s %12s  %s", "NAMESPACE", "NAME", "BYTES",
                    "FILE"))
for _, r in ipairs(rows) do
    local ns = r.namespace or "-"
    namespaces[ns] = (namespaces[ns] or 0) + 1
    bytes = bytes + (r.file_size or 0)
    local ok = djinn.qcow2.validate(store .. "/" .. r.sha256 .. ".qcow2")
    if not ok then invalid = invalid + 1 end
    print(string.format("%-16s %-20s %12d  %s", ns, r.name, r.file_size or 0,
                        ok and "valid" or "INVALID"))
end
local nns = 0
for _ in pairs(namespaces) do nns = nns + 1 end
print(string.format("%d image(s) in %d namespace(s), %d bytes, %d invalid",
                    #rows, nns, bytes, invalid))
return invalid > 0 and 1 or 0
