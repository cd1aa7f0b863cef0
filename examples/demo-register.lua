-- demo-register.lua IMAGE [NAMESPACE NAME [REGISTRY]] - register IMAGE in
-- the registry (default: djinn-lua's default registry) as NAMESPACE/NAME
-- (default demo/tiny), unless it is already registered with the same
-- SHA-256. Used by `make demo`.
local registry = require "djinn.registry"
local cli = require "djinn.cli"
local image, ns, name, regpath = ...
if image == nil then
    io.stderr:write("usage: djinn-lua demo-register.lua IMAGE [NAMESPACE NAME [REGISTRY]]\n")
    return 2
end
ns, name = ns or "demo", name or "tiny"
regpath = regpath or cli.default_registry()
local db = assert(registry.open(regpath))
local want = assert(db:query("SELECT image_sha256(?) AS h", image))[1].h
local path = db:resolve(ns, name)
if path then
    -- The store names each file by its content: <store>/<sha256>.qcow2.
    if path:match("/(%x+)%.qcow2$") == want then
        print(string.format("%s/%s already registered in %s (sha256 %s)", ns, name, regpath, want:sub(1, 12)))
        db:close()
        return 0
    end
    assert(db:remove(ns, name))
    print(string.format("%s/%s: replacing the registered image (the file changed)", ns, name))
end
local id, err = db:register(ns, name, image)
db:close()
if id == nil then
    io.stderr:write("demo-register.lua: ", tostring(err), "\n")
    return 1
end
print(string.format("registered %s/%s in %s (sha256 %s)", ns, name, regpath, want:sub(1, 12)))
return 0
