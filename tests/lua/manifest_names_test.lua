-- manifest_names_test.lua - the manifest's namespace rule is the
-- registry's (djinn.registry.check_namespace, ext/registry.c): what the
-- registry refuses, the manifest refuses, with the same message behind the
-- manifest's file:line:col. Before, the manifest had a looser copy that
-- accepted `team@..` and an 80-character owner.
local t = ...
local manifest = require "djinn.manifest"
-- Both loads, the one-pass and the full: they must agree on every case
-- (manifest_fast_test.lua).
manifest.loader = "both"
local registry = require "djinn.registry"

local function first_err(text)
    local m, errs = manifest.parse(text, "m.yml")
    return m == nil and errs and errs[1] or nil
end

local function refused(ns, label)
    local _, want = registry.check_namespace(ns)
    t:ok(want ~= nil, label .. ": the registry refuses it")
    local got = first_err("namespace: '" .. ns .. "'\ndriver: {type: os}\n")
    t:is(got, "m.yml:1:12: " .. tostring(want),
         label .. ": the manifest refuses it with the registry's message")
end

refused("team@..", "owner '..'")
refused("team@.", "owner '.'")
refused("team@" .. string.rep("a", 80), "an 80-character owner")
refused("a//b", "an empty segment")
refused("/team", "a leading '/'")
refused(string.rep("a/", 20) .. "a", "21 segments")

-- And what the registry accepts, the manifest accepts.
for _, ns in ipairs { "team/ci", "team/ci@alice", "a@" .. string.rep("b", 64),
                      string.rep("a/", 19) .. "a" } do
    local m, errs = manifest.parse("namespace: '" .. ns ..
                                   "'\ndriver: {type: os}\n", "m.yml")
    t:ok(m ~= nil and m.namespace == ns,
         "accepted: " .. ns:sub(1, 30) .. " " .. tostring(errs and errs[1]))
end

-- The registry says the same when a namespace is used there.
local _, why = registry.check_namespace("team@..")
t:ok(why and why:find("owner '..' may contain only", 1, true),
     "the message says what is allowed: " .. tostring(why))
