-- djinn.paths: where djinn-lua looks by default, for the command line and
-- for scripts alike (djinn.run uses these when an option is not given).
--
--   paths.home([getenv, passwd]) -> dir | nil, why
--       $HOME when it is an absolute path, else the home of the password
--       database's entry for the effective uid (getpwuid_r, so NSS
--       answers: djinn.sys.passwd), when that is absolute. Never "." or a
--       relative path: with HOME unset the registry used to become
--       ./djinn/registry.db in whatever directory the command ran from
--       (issue 10, defect 6).
--   paths.default_registry([getenv, passwd]) -> path | nil, why
--       $XDG_DATA_HOME/djinn/registry.db, or ~/.local/share/djinn/
--       registry.db
--   paths.default_cache([getenv, passwd]) -> dir | nil, why
--       $XDG_CACHE_HOME, or ~/.cache (warm VM snapshots of base images)
--   paths.default_driver_config([getenv, passwd]) -> path | nil, why
--       $XDG_CONFIG_HOME/djinn/driver.conf, or ~/.config/djinn/driver.conf
--
-- XDG_* values that are not absolute paths are ignored, as the XDG Base
-- Directory specification says. getenv and passwd default to os.getenv
-- and djinn.sys.passwd (tests pass their own). The "why" of a missing
-- default says what to set, or which option to pass instead.
local M = {}

function M.home(getenv, passwd)
    getenv = getenv or os.getenv
    local home = getenv("HOME")
    if home and home:sub(1, 1) == "/" then return home end
    local pw, perr
    if passwd then
        pw, perr = passwd()
    else
        pw, perr = require("djinn.sys").passwd()
    end
    if pw and type(pw.home) == "string" and pw.home:sub(1, 1) == "/" then
        return pw.home
    end
    local why = home == nil and "HOME is not set" or home == "" and
        "HOME is empty" or ("HOME is not an absolute path (" .. home .. ")")
    if pw then
        why = string.format("%s and the password database gives %s no " ..
            "absolute home directory (%q)", why, tostring(pw.name),
            tostring(pw.home))
    else
        why = why .. " and " .. tostring(perr)
    end
    return nil, "no home directory: " .. why
end

-- $VAR when it is an absolute path, else <home>/<fallback>.
-- -> path | nil, why
local function xdg_dir(var, fallback, getenv, passwd)
    getenv = getenv or os.getenv
    local v = getenv(var)
    if v and v:sub(1, 1) == "/" then return v end
    local home, err = M.home(getenv, passwd)
    if home == nil then
        return nil, err .. (v and v ~= "" and
            string.format(" (%s=%s is ignored: not absolute)", var, v) or "")
    end
    return home:gsub("/+$", "") .. "/" .. fallback
end

function M.default_driver_config(getenv, passwd)
    local dir, err = xdg_dir("XDG_CONFIG_HOME", ".config", getenv, passwd)
    if dir == nil then
        return nil, "cannot locate the default driver.conf: " .. err ..
            "; set HOME or XDG_CONFIG_HOME, or pass --driver-config FILE"
    end
    return dir .. "/djinn/driver.conf"
end

function M.default_cache(getenv, passwd)
    local dir, err = xdg_dir("XDG_CACHE_HOME", ".cache", getenv, passwd)
    if dir == nil then
        return nil, "cannot locate the cache directory: " .. err ..
            "; set HOME or XDG_CACHE_HOME"
    end
    return dir
end

function M.default_registry(getenv, passwd)
    local dir, err = xdg_dir("XDG_DATA_HOME", ".local/share", getenv, passwd)
    if dir == nil then
        return nil, "cannot locate the default registry: " .. err ..
            "; set HOME or XDG_DATA_HOME, or pass --registry DB"
    end
    return dir .. "/djinn/registry.db"
end

return M
