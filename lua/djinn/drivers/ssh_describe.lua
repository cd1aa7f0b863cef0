-- The ssh driver's declaration (shape: lua/djinn/drivers/describe.lua).
return {
    type = "ssh",
    doc = "run a build on an existing machine over SSH",
    manifest_keys = {
        { name = "type", doc = "ssh" },
        { name = "address", required = true,
          doc = "the machine: host:port or [v6addr]:port" },
    },
    conf_keys = {
        hold = { type = "duration",
                 doc = "run --hold's default: when a job fails, keep the session " ..
                       "this long for a look inside (0: never)" },
        timeout = { type = "duration", default = 60,
                    doc = "how long to keep trying to connect" },
        user = { type = "string", default = "root", doc = "login user" },
        password = { type = "string",
                     doc = "password (tried after \"none\"; \"\" when " ..
                           "unset)" },
        identity = { type = "string",
                     doc = "private key file (publickey auth)" },
        fingerprint = { type = "string",
                        doc = "pin the host key (\"SHA256:...\"): any " ..
                              "other key is refused; unset, the first " ..
                              "key seen is trusted" },
        addr = { type = "string",
                 doc = "in Djinn's config struct; not read (the " ..
                       "manifest's driver.address names the machine)" },
    },
    defaults = { timeout = 60, user = "root" },
    reap = { processes = {}, docker = {} },
}
