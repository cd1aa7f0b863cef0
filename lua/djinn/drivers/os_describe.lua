-- The os driver's declaration (shape: lua/djinn/drivers/describe.lua).
return {
    type = "os",
    doc = "run jobs with /bin/sh on this machine (no isolation)",
    manifest_keys = {
        { name = "type", doc = "os" },
    },
    conf_keys = {},
    defaults = {},
    reap = { processes = {}, docker = {} },
}
