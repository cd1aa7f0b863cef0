-- The docker driver's declaration (shape: lua/djinn/drivers/describe.lua).
return {
    type = "docker",
    doc = "run each job in its own container, over the Docker Engine API",
    manifest_keys = {
        { name = "type", doc = "docker" },
        { name = "image", required = true,
          doc = "the image of the job containers (pulled)" },
        { name = "workspace", required = true,
          doc = "absolute path of the workspace volume in the containers" },
    },
    conf_keys = {
        hold = { type = "duration",
                 doc = "run --hold's default: when a job fails, keep a container of the failed job's files " ..
                       "this long for a look inside (0: never)" },
        host = { type = "string", default = "unix:///var/run/docker.sock",
                 doc = "the engine: unix:///path or tcp://H:P" },
        version = { type = "string",
                    doc = "API version; unset or \"auto\" = negotiated " ..
                          "from /version" },
        network = { type = "string",
                    doc = "HostConfig.NetworkMode of the job containers " ..
                          "(unset: the engine's default network; " ..
                          "\"none\" = loopback only)" },
        init = { type = "bool", default = true,
                 doc = "run the job under the engine's init (docker-init" ..
                       " / tini) so that stop's SIGTERM reaches it" },
        stop_timeout = { type = "duration", default = 5,
                         doc = "grace period of a stop before SIGKILL" },
        pull_timeout = { type = "duration", default = 600,
                         doc = "limit for pulling the image" },
        image = { type = "string",
                  doc = "in Djinn's config struct; not read (the " ..
                        "manifest's driver.image is used)" },
        workspace = { type = "string",
                      doc = "in Djinn's config struct; not read (the " ..
                            "manifest's driver.workspace is used)" },
    },
    -- No API version: it is negotiated from the engine's /version.
    defaults = { host = "unix:///var/run/docker.sock" },
    reap = { processes = {}, docker = { "containers", "volumes" } },
}
