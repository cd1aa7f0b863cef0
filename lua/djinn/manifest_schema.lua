-- djinn.manifest_schema: a JSON Schema (draft 2020-12) of the build
-- manifest, for editors (as builds.sr.ht's manifest has one in
-- SchemaStore). Generated from the tables the loader itself reads: the top
-- and job keys of djinn.manifest (M.top_keys, M.job_keys) and each
-- driver's declared manifest keys (lua/djinn/drivers/<type>_describe.lua),
-- so a key added to the loader or to a driver appears here without an
-- edit. docs/manifest.schema.json is its output; e2e/manifest_schema
-- fails when the two differ, and checks the schema with python3-jsonschema
-- against every manifest the loader takes. Regenerate with a script:
--   djinn-lua gen.lua > docs/manifest.schema.json, where gen.lua is
--   io.write(require("djinn.manifest_schema").text())
--
--   manifest_schema.schema() -> table (encode with djinn.json)
--   manifest_schema.text() -> the JSON text, indented, keys sorted
--
-- Unknown keys are warnings for the loader (the build runs, the key is
-- ignored); the schema says additionalProperties: false so that an editor
-- marks them, as `djinn-lua run --strict` refuses them. Scalars may be
-- strings, numbers or booleans (YAML reads `name: 1` as a number; the
-- loader takes any scalar as its text).
local manifest = require "djinn.manifest"
local describe = require "djinn.drivers.describe"
local json = require "djinn.json"

local M = {}

local SCALAR = { "string", "number", "boolean" }

local function scalar(doc)
    return { type = SCALAR, description = doc }
end

local function string_list(doc)
    return { type = json.array{ "array", "null" }, description = doc,
             items = { type = json.array{ "string", "number", "boolean",
                                          "null" } } }
end

local TOP_DOC = {
    namespace = "the namespace the build runs in: path[@owner] (as the " ..
        "registry's namespaces: segments [A-Za-z0-9]+, at most 20 levels)",
    driver = "where the jobs run: a mapping whose type picks the driver",
    env = "KEY=VALUE variables for every job",
    objects = "files placed before the first job: SRC or SRC => DST",
    sources = "git repositories cloned before the first job: URL [=> DIR]",
    stages = "the stages, in order; jobs run stage by stage",
    allow_failures = "stages whose failure does not fail the build",
    jobs = "the jobs: stage, name, commands, artifacts",
}
local JOB_DOC = {
    stage = "the stage this job belongs to (one of stages)",
    name = "the job's name",
    commands = "shell commands, run in order; the first failure fails " ..
        "the job",
    artifacts = "files collected after the job: SRC or SRC => DST " ..
        "(SRC may use *)",
}

local function driver_schema()
    local variants = json.array()
    for _, t in ipairs(manifest.driver_types) do
        local d = describe.of(t)
        local props, required = {}, json.array{ "type" }
        for _, k in ipairs(d.manifest_keys) do
            if k.name == "type" then
                props.type = { const = t, description = d.doc }
            else
                props[k.name] = scalar(k.doc)
                if k.required then required[#required + 1] = k.name end
            end
        end
        variants[#variants + 1] = {
            type = "object", title = "driver " .. t, properties = props,
            required = required, additionalProperties = false,
        }
    end
    local types = json.array()
    for i, t in ipairs(manifest.driver_types) do types[i] = t end
    return {
        type = "object", description = TOP_DOC.driver,
        required = json.array{ "type" },
        properties = { type = { enum = types } },
        oneOf = variants,
    }
end

function M.schema()
    local props = {}
    for _, k in ipairs(manifest.top_keys) do
        if k == "driver" then
            props[k] = driver_schema()
        elseif k == "namespace" then
            props[k] = scalar(TOP_DOC[k])
        elseif k == "jobs" then
            local jp = {}
            for _, jk in ipairs(manifest.job_keys) do
                if jk == "commands" or jk == "artifacts" then
                    jp[jk] = string_list(JOB_DOC[jk])
                else
                    jp[jk] = scalar(JOB_DOC[jk])
                end
            end
            props[k] = { type = json.array{ "array", "null" },
                         description = TOP_DOC[k],
                         items = { type = "object", properties = jp,
                                   additionalProperties = false } }
        else
            props[k] = string_list(TOP_DOC[k] or k)
        end
    end
    return {
        ["$schema"] = "https://json-schema.org/draft/2020-12/schema",
        ["$id"] = "https://djinn.invalid/manifest.schema.json",
        title = "djinn build manifest (.djinn.yml)",
        description = "A Djinn CI build manifest as djinn-lua reads it " ..
            "(docs/manifest.md). Generated from lua/djinn/manifest.lua " ..
            "and the drivers' declarations by djinn.manifest_schema.",
        type = "object",
        required = json.array{ "driver" },
        properties = props,
        additionalProperties = false,
    }
end

function M.text()
    return json.encode(M.schema(), { indent = 2 }) .. "\n"
end

return M
