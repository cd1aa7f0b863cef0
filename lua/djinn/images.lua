-- djinn.images: how people and manifests name registered images.
--
-- A manifest names a registered image with two keys, `namespace:` (a
-- path[@owner], or none for the owner's personal images) and `image:` (a
-- name without "/"); a name with "/" is a base image path
-- (docs/djinn-compat.md §2.3). Everything djinn-lua prints about an image
-- uses that same reading, so what `image ls` shows can be written into a
-- manifest as it stands (issue 11, item 4).
--
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

return M
