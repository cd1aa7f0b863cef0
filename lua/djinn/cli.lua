-- djinn.cli: the djinn-lua command line. main(argv) -> exit status.
--
--   djinn-lua run [options] [MANIFEST]       run a build (offline runner)
--   djinn-lua check [--strict] MANIFEST...   load and validate, run nothing
--   djinn-lua image register|ls|info|rm|check|fsck ...
--   djinn-lua docker prune [--driver-config FILE]
--   djinn-lua SCRIPT.lua [ARGS...]           run a user script
--   djinn-lua help [COMMAND] | --help | --version
--
-- run: secrets (--secret, --secret-file, env names matching the patterns
-- of --secret-pattern / driver.conf `secrets { patterns [...] }`, default
-- *_PASSWORD *_SECRET *_TOKEN *_KEY) are handed to djinn.log, which masks
-- every byte it prints (djinn.mask); caps (--max-output, --max-artifacts,
-- --max-artifact-size, --max-artifacts-total, driver.conf `limits {}`)
-- go to the log writer and to the pipeline as cfg.limits.
--
-- run and check only turn arguments into djinn.run / djinn.check options:
-- every default (timeout, driver.conf, registry, reaper) is djinn.run's
-- (djinn.defaults), so a script gets the same build as the command line.
-- Exit statuses survive every path (issue 10): main returns an integer,
-- and runtime/main.c turns anything else into a message and 1. Defaults:
-- djinn.paths (also M.home, M.default_registry, M.default_driver_config
-- here: -> path | nil, why) never fall back to "." or a relative path.
-- Images are djinn.images' everywhere: the image commands name them with
-- images.label / manifest_text / elsewhere, and a manifest's image is
-- found and checked by images.resolve / images.verify (the qemu driver;
-- scripts call the same). image register runs in a worker process
-- (register_worker); image info/ls/rm report registry errors as errors,
-- "no image" only for a real absence.
local util = require "djinn.util"

local M = {}

-- The commands and their options: the one table that parse_opts reads,
-- and that the bash completion (djinn.completion, `djinn-lua completion
-- bash`), the man page test and the docs test are checked against.
-- options[name].kind: "flag" (no value), "value" (--name V or --name=V,
-- last wins), "list" (repeatable, collected in order), "optional-dir"
-- (--name, --name=DIR, or --name DIR when DIR is a directory). arg names
-- the value (FILE, DIR and DB complete as paths). The HELP texts below
-- are written by hand; tests/lua/cli_docs_test.lua checks that each lists
-- every option of its command.
local HELP_OPT = { kind = "flag", help = "show the help of the command" }
M.COMMANDS = {
    run = {
        summary = "run a Djinn build manifest (default .djinn.yml)",
        usage = "djinn-lua run [options] [MANIFEST]",
        args = { "MANIFEST" },
        options = {
            ["driver-config"] = { kind = "value", arg = "FILE",
                help = "driver.conf (default $XDG_CONFIG_HOME/djinn/" ..
                    "driver.conf)" },
            objects = { kind = "value", arg = "DIR",
                help = "where object sources are read from (default .)" },
            artifacts = { kind = "value", arg = "DIR",
                help = "where artifacts are written (default .)" },
            stage = { kind = "value", arg = "NAME",
                help = "run the setup stage and this stage only" },
            registry = { kind = "value", arg = "DB",
                help = "image registry (default $XDG_DATA_HOME/djinn/" ..
                    "registry.db)" },
            timeout = { kind = "value", arg = "DURATION",
                help = "whole-build timeout (default 30m; 0 = none)" },
            hold = { kind = "value", arg = "DURATION",
                help = "when a job fails, keep its machine this long " ..
                    "and print how to get a shell in it (default " ..
                    "driver.conf's hold; 0 = never)" },
            env = { kind = "list", arg = "KEY=VALUE",
                help = "add or override a build variable (repeatable)" },
            json = { kind = "flag", help = "one JSON event per line" },
            strict = { kind = "flag",
                help = "a load warning fails the build (exit 1)" },
            -- SHA256:SIZE:URL, from djinn-lua worker (the image a queued
            -- build was pinned to at submit; djinn.fetch_pinned)
            ["image-pin"] = { kind = "value", arg = "PIN", internal = true,
                help = "(the worker's) the build's pinned image" },
            -- bytes, from djinn-lua worker --cache-max: the image cache's
            -- budget, kept by evicting least recently used images
            ["image-cache-max"] = { kind = "value", arg = "BYTES",
                internal = true,
                help = "(the worker's) the image cache's byte budget" },
            tree = { kind = "optional-dir", arg = "DIR",
                help = "copy DIR (default: the git checkout) into the build" },
            secret = { kind = "list", arg = "KEY=VALUE",
                help = "a secret build variable, masked in all output" },
            ["secret-file"] = { kind = "list", arg = "FILE",
                help = "KEY=VALUE lines read as --secret" },
            ["secret-pattern"] = { kind = "list", arg = "GLOB",
                help = "env names matching GLOB are secrets too" },
            ["max-output"] = { kind = "value", arg = "SIZE",
                help = "per-job output cap (default 16MB; 0 = none)" },
            ["max-artifacts"] = { kind = "value", arg = "N",
                help = "artifact files per build (default 1000)" },
            ["max-artifact-size"] = { kind = "value", arg = "SIZE",
                help = "bytes per artifact file (default 1GB)" },
            ["max-artifacts-total"] = { kind = "value", arg = "SIZE",
                help = "bytes of artifacts per build (default 10GB)" },
            help = HELP_OPT,
        },
    },
    check = {
        summary = "load and validate manifests without running anything",
        usage = "djinn-lua check [options] MANIFEST...",
        args = { "MANIFEST..." },
        options = {
            ["driver-config"] = { kind = "value", arg = "FILE",
                help = "driver.conf to check (default as for run)" },
            stage = { kind = "value", arg = "NAME",
                help = "check as for run --stage NAME" },
            strict = { kind = "flag",
                help = "warnings are failures (exit 1)" },
            help = HELP_OPT,
        },
    },
    image = {
        summary = "manage the local QCOW2 image registry",
        usage = "djinn-lua image SUBCOMMAND [--registry DB] [--json] ARGS...",
        options = {
            registry = { kind = "value", arg = "DB",
                help = "image registry (default as for run)" },
            json = { kind = "flag", help = "print JSON instead of text" },
            progress = { kind = "flag", internal = true,
                help = "(internal: image register's worker)" },
            repair = { kind = "flag",
                help = "image fsck: repair what is provably safe to" },
            sha256 = { kind = "value", arg = "HEX",
                help = "register: the content must have this SHA-256" },
            ["max-size"] = { kind = "value", arg = "SIZE",
                help = "register URL: largest download (default 64GiB)" },
            ["connect-timeout"] = { kind = "value", arg = "DURATION",
                help = "register URL: time to connect (default 30s)" },
            ["stall-timeout"] = { kind = "value", arg = "DURATION",
                help = "register URL: time without a byte (default 60s)" },
            timeout = { kind = "value", arg = "DURATION",
                help = "register URL: whole download (default none)" },
            ["max-redirects"] = { kind = "value", arg = "N",
                help = "register URL: redirects followed (default 10)" },
            insecure = { kind = "flag",
                help = "register URL: skip TLS and SSH host key checks" },
            ["ca-file"] = { kind = "value", arg = "FILE",
                help = "register URL: trust the CAs in FILE for https" },
            identity = { kind = "value", arg = "FILE",
                help = "register sftp URL: private key file" },
            ["known-hosts"] = { kind = "value", arg = "FILE",
                help = "register sftp URL: host keys (default " ..
                    "~/.ssh/known_hosts)" },
            boot = { kind = "flag",
                help = "check: boot the image and check its contract" },
            ["boot-check"] = { kind = "flag",
                help = "register: then check it as image check --boot" },
            ["boot-timeout"] = { kind = "value", arg = "DURATION",
                help = "check --boot: wait for SSH (default boot_timeout)" },
            ["driver-config"] = { kind = "value", arg = "FILE",
                help = "check --boot: driver.conf (default as for run)" },
            help = HELP_OPT,
        },
        subcommands = {
            register = { args = { "NAMESPACE", "NAME", "SOURCE" },
                options = { "sha256", "max-size", "connect-timeout",
                            "stall-timeout", "timeout", "max-redirects",
                            "insecure", "ca-file", "identity",
                            "known-hosts", "boot-check", "boot-timeout",
                            "driver-config" },
                summary = "validate FILE or URL and store it as NAME" },
            ls = { args = { "[NAMESPACE]" }, summary = "list images" },
            info = { args = { "NAMESPACE", "NAME" },
                summary = "show an image and its QCOW2 header" },
            rm = { args = { "NAMESPACE", "NAME" },
                summary = "remove an image" },
            check = { args = { "FILE" },
                options = { "boot", "boot-timeout", "driver-config" },
                summary = "validate a QCOW2 file; with --boot, boot an " ..
                    "image and check the image contract" },
            fsck = { args = {}, options = { "repair" },
                summary = "check the registry against its store" },
            warm = { args = { "NAMESPACE", "NAME" },
                options = { "driver-config" },
                summary = "boot an image once and save its warm " ..
                    "snapshot, so that builds start from it" },
        },
    },
    docker = {
        summary = "remove leftover containers and volumes of the " ..
            "docker driver",
        usage = "djinn-lua docker prune [--driver-config FILE]",
        options = {
            ["driver-config"] = { kind = "value", arg = "FILE",
                help = "driver.conf (default as for run)" },
            help = HELP_OPT,
        },
        subcommands = {
            prune = { args = {},
                summary = "remove every container and volume labelled " ..
                    "djinn.managed=true" },
        },
    },
}
M.COMMANDS.release = {
    summary = "end the hold of a failed build's machine (run --hold)",
    usage = "djinn-lua release [BUILD_ID...] [--json]",
    args = { "[BUILD_ID...]" },
    options = {
        json = { kind = "flag", help = "JSON instead of text" },
        help = HELP_OPT,
    },
}
-- The queue's commands (issue 16) live in djinn.queue_cli.
local queue_cli = require "djinn.queue_cli"
for k, v in pairs(queue_cli.COMMANDS) do M.COMMANDS[k] = v end
-- The order commands are listed in (help, man page, completion).
M.COMMAND_ORDER = { "run", "check", "image", "docker", "release" }
for _, k in ipairs(queue_cli.ORDER) do
    M.COMMAND_ORDER[#M.COMMAND_ORDER + 1] = k
end

local EXIT_TEXT = [[
Exit status:
  0    the build passed (or passed_with_failures)
  1    the build failed (a job failed, no job ran, or --strict and a
       load warning); image: the command failed
  2    usage error, invalid manifest or driver configuration, unknown
       driver or stage
  3    driver or infrastructure error (the driver could not be created)
  4    the build timed out (--timeout)
  130  killed by SIGINT or SIGTERM
]]

local HELP = {
    main = [[
usage: djinn-lua COMMAND [ARGS...]
       djinn-lua SCRIPT.lua [ARGS...]

Commands:
  run [options] [MANIFEST]   run a Djinn build manifest (default .djinn.yml)
  check [--strict] MANIFEST...
                             load and validate manifests (and driver.conf)
                             without running anything
  image SUBCOMMAND ...       manage the local QCOW2 image registry
  docker prune               remove leftover containers and volumes of the
                             docker driver (labelled djinn.managed=true)
  release [BUILD_ID...]      list the builds holding a failed job's machine
                             (run --hold), or end their holds

The build queue on Redis (--redis URL or $DJINN_REDIS):
  submit [options] MANIFEST  queue a build; prints its number
  worker [options]           run queued builds on this machine
  status [BUILD_ID]          a build's status, or the recent builds
  logs [-f] BUILD_ID         a build's log (-f: live, until it ends)
  cancel BUILD_ID...         cancel queued or running builds
  artifacts BUILD_ID DIR     fetch an ended build's artifacts
  workers                    the workers serving the queue

  help [COMMAND]             show help for a command
  completion bash            print the bash completion script
  --version                  print the version

A file ending in .lua runs as a script with `require "djinn"` available
(djinn.run, djinn.manifest, djinn.registry, ...); it may return an exit
status (an integer, or true/false), or nil and a message (printed;
exit status 1, or a third return value).

]] .. EXIT_TEXT,
    run = [[
usage: djinn-lua run [options] [MANIFEST]

Run the build described by MANIFEST (default .djinn.yml): the setup stage
(one clone job per source), then the manifest stages in order, one job
at a time. Output streams live to stdout. On a terminal, control
sequences in it other than colour (title, clear screen, clipboard,
cursor moves, C1 controls) are shown as text (^[ ... ^G, \u009b); a
pipe or file gets the bytes as they are; --json escapes them.

Options (also written --option=value):
  --driver-config FILE  driver.conf (default $XDG_CONFIG_HOME/djinn/
                        driver.conf or ~/.config/djinn/driver.conf; a
                        missing default file means built-in defaults)
  --objects DIR         where object sources are read from (default .)
  --artifacts DIR       where artifacts are written (default ., created)
  --stage NAME          run the setup stage and this stage only
  --registry DB         image registry (default $XDG_DATA_HOME/djinn/
                        registry.db or ~/.local/share/djinn/registry.db)
                        ~ is $HOME, or the password database's home when
                        HOME is unset, empty or relative; XDG_* values
                        that are not absolute are ignored. No home at
                        all: a warning and built-in driver defaults, and
                        exit 2 for a qemu build without --registry
  --timeout DURATION    whole-build timeout, e.g. 90s, 30m, 1h30m
                        (default 30m; 0 = none)
  --hold DURATION       when a job fails, keep its machine this long and
                        print the command that gets a shell in it; ends
                        on Ctrl-C or `djinn-lua release` (default
                        driver.conf's hold; 0 = never)
  --env KEY=VALUE       add or override a build variable (repeatable)
  --json                one JSON event per line instead of text; a build
                        that cannot start (invalid manifest, driver.conf
                        or option) gives one "error" event per error and
                        a build_end with status "invalid" and exit_code
  --strict              a load warning (unknown key, job of an unlisted
                        stage, job without commands, unknown driver.conf
                        key, ...) fails the build before anything runs
                        (exit 1)
  --tree [DIR]          copy DIR into the build's working directory before
                        the first job, in every driver (os: the workspace,
                        docker: the workspace volume, qemu/ssh: root's
                        home). Without DIR (or when the next argument is
                        not a directory): the git checkout around the
                        current directory. In a git checkout only what
                        `git ls-files --cached --others --exclude-standard`
                        lists is copied (.gitignore honoured, no .git);
                        any other directory is copied whole. Symbolic
                        links leaving the tree are refused; caps (exit 2
                        over them): driver.conf `limits { max_objects
                        100000 max_object_size 1GB max_objects_total
                        10GB }`. Without --tree nothing is copied.
  --secret KEY=VALUE    a secret build variable (repeatable): passed to the
                        jobs like --env, and its value is printed as xxxxxx
                        everywhere (job output of every driver, driver
                        messages, errors, summary, JSON). At least 6
                        characters, else exit 2
  --secret-file FILE    KEY=VALUE lines (# comments, blank lines) read as
                        --secret (repeatable)
  --secret-pattern GLOB env names matching GLOB (* and ?) are secrets too
                        (repeatable; added to the patterns: by default
                        *_PASSWORD *_SECRET *_TOKEN *_KEY, replaced by
                        driver.conf `secrets { patterns ["*_PASS"] }`);
                        matching values under 6 characters get a warning
  --max-output SIZE     per-job output cap (default 16MB; 0 = none); past
                        it one "[djinn: output truncated ...]" line is
                        printed, the job runs on, its status is unchanged
  --max-artifacts N     artifact files per build (default 1000; 0 = none)
  --max-artifact-size SIZE  bytes per artifact file (default 1GB)
  --max-artifacts-total SIZE  bytes of artifacts per build (default 10GB)
                        (over a cap: an "artifact error:" line, the file
                        is not kept; never a silent truncation)
                        driver.conf may set the same caps: `limits {
                        max_output 16MB max_artifacts 1000
                        max_artifact_size 1GB max_artifacts_total 10GB }`
                        (the options win)
  -h, --help            this help

Load warnings (manifest and driver.conf) are printed on stderr before
anything else and repeated in the summary. A build in which no job ran
(every job dropped by a misspelt stage, no commands, --stage without
jobs) fails: exit 1, "no job ran: <why>".

Hostile input is refused before any driver is created (exit 2): a
manifest over 8 MiB (checked from its size), YAML nested deeper than 64
or expanding aliases past 100000 nodes, a qemu image name with "..", an
absolute path or odd characters, a namespace deeper than 20 segments or
with characters other than letters and digits, an object source or an
artifact destination outside its directory.

]] .. EXIT_TEXT,
    check = [[
usage: djinn-lua check [options] MANIFEST...

Load and validate each MANIFEST as run would, and the driver
configuration run would use, without creating a driver or running
anything. Errors and warnings are printed on stderr (FILE:LINE:COL:
message), then one line per manifest on stdout: "ok: ..." or
"invalid: ...". A manifest in which no job would run (every job dropped
or without commands) is invalid.

Options:
  --driver-config FILE  driver.conf to check (default as for run)
  --stage NAME          check as for run --stage NAME
  --strict              warnings are failures (exit 1)
  -h, --help            this help

Exit status: 0 every manifest is valid, 1 --strict and warnings, 2 a
manifest or the driver configuration is invalid (or a usage error).
]],
    image = [[
usage: djinn-lua image SUBCOMMAND [--registry DB] [--json] ARGS...

  register NAMESPACE NAME SOURCE validate SOURCE (a file, or an http,
                                 https, file or sftp URL) and store
                                 it as NAME
  ls [NAMESPACE]                 list images: all of them; with "-",
                                 your personal images; with a
                                 namespace, the images in it
  info NAMESPACE NAME            show an image and its QCOW2 header
  rm NAMESPACE NAME              remove an image
  check FILE                     validate a QCOW2 file; prints every
                                 problem, exit 1 if it is not valid
  check --boot NAMESPACE NAME    boot the image and check the image
  check --boot IMAGE             contract (see below); IMAGE as a
                                 manifest's image: (with "/": a base
                                 image under disks)
  fsck [--repair]                check the registry against its store
                                 (djinn_fsck); --repair puts back
                                 trashed files still in use and removes
                                 what is provably garbage
  warm NAMESPACE NAME            boot the image once and save its warm
  warm IMAGE                     snapshot for driver.conf's machine
                                 shape (--driver-config FILE), so that
                                 builds start from it in about a second

NAMESPACE is path[@owner] (e.g. team/ci, or team/ci@alice for another
user's), or "-" or "" for your personal images. A manifest names an
image the same way: `namespace: team/ci` and `image: NAME` (a NAME with
"/" is a base image path, not a namespace). `image ls` shows both
columns as a manifest writes them. --json prints JSON instead of text.
--registry DB as for run (default $XDG_DATA_HOME/djinn/registry.db or
~/.local/share/djinn/registry.db; see djinn-lua help run for ~ and
XDG_*). Only register creates a registry: the other commands say when
it does not exist. -h, --help: this help.

register copies SOURCE into the store in a worker process (a spinner
with bytes copied, rate and ETA shows on a terminal; --json prints
{"event":"progress"} lines while a URL downloads). A URL is streamed
into the store while it is hashed, then validated like a file; where it
came from (credentials removed) shows in image info. Options of
register: --sha256 HEX (the content must have this SHA-256), and for a
URL --max-size SIZE (default 64GiB), --connect-timeout DURATION
(default 30s), --stall-timeout DURATION (no byte for that long; default
60s), --timeout DURATION (the whole download; default none),
--max-redirects N (default 10; never from https to http), --ca-file
FILE (trust these CAs for https), --insecure (skip the TLS and SSH host
key checks), --identity FILE and --known-hosts FILE (sftp; default
~/.ssh/known_hosts). Any Content-Type is accepted (a warning unless
application/x-qemu-disk or application/octet-stream): the bytes decide. Interrupted (Ctrl-C,
SIGTERM), it stops the worker, removes the partial copy and registers
nothing (exit 130). A registry that cannot be read (damaged, not a
registry, no permission) is reported with its error, never as "no
image".

check --boot boots the image on the qemu driver's machine (driver.conf's
driver qemu block: accel, cpus, memory, boot_timeout; --driver-config
FILE as for run; --boot-timeout DURATION wins over boot_timeout) and
checks, one line each with the fix for anything not right: the SSH
banner within the boot timeout; root's login with an empty password
(auth none and password "" tried separately); a command's exit status;
a file placed and fetched (SFTP, or the exec fallback: a warning);
env requests (refused: a warning, the driver exports them in the job
script); /root writable and /root/.ssh present; the guest clock within
a minute; a clean poweroff. Verdict: usable, usable with warnings, or
unusable (exit 1), recorded in the registry by content (shown by ls and
info; a base image's check creates the registry). --json: "log",
"item" and a last "result" event. A qemu build refuses an image whose
last check said unusable, before boot (driver.conf refuse_unusable
false: a warning, then it boots). register --boot-check registers, then
checks.

Exit status: 0 success, 1 the operation failed (invalid image, no such
image, the registry cannot be read or does not exist, fsck found a
problem, the worker could not start, check --boot: unusable), 2 usage error (also: no default
registry because there is no home directory), 130 interrupted.
]],
    release = [[
usage: djinn-lua release [BUILD_ID...] [--json]

A build run with --hold (or driver.conf's hold) keeps a failed job's
machine for a look inside. Without an id: list the held builds (id,
driver, until when, and the command that gets a shell in it). With ids:
end those holds now; each runner then tears its machine down and exits
with the failed job's status. Ctrl-C in the holding run does the same.
Only your own builds are seen (they live in your state directory,
$XDG_RUNTIME_DIR/djinn or ${TMPDIR:-/tmp}/djinn-<uid>).

Options:
  --json      JSON instead of text
  -h, --help  this help

Exit status: 0 success (also: nothing held), 1 an id is not a held
build, or its runner did not end within 30 s, 2 usage error.
]],
    docker = [[
usage: djinn-lua docker prune [--driver-config FILE]

Remove every container and volume labelled djinn.managed=true (what the
docker driver creates; builds remove their own, but a killed runner can
leave some behind) from the engine named by host in the docker block of
driver.conf (default unix:///var/run/docker.sock). Nothing without that
label is touched. Running builds lose their containers: prune when no
build runs.

Options:
  --driver-config FILE  driver.conf (default as for run)
  -h, --help            this help

Exit status: 0 success, 1 something could not be removed, 2 usage error,
3 the engine cannot be reached.
]],
}

for k, v in pairs(queue_cli.HELP) do HELP[k] = v end
M.HELP = HELP

local NULL_SINK = { write = function() end }

local function eprint(...)
    io.stderr:write(table.concat({ ... }, ""), "\n")
end

local function usage_error(cmd, msg)
    eprint("djinn-lua", cmd and (" " .. cmd) or "", ": ", msg)
    eprint("Try 'djinn-lua help", cmd and (" " .. cmd) or "",
           "' for more information.")
    return 2
end

-- Parse options. spec = M.COMMANDS[cmd].options: spec[name].kind is
-- "flag" | "value" | "list" | "optional-dir" (run --tree [DIR]).
-- Returns opts, positional | nil, msg.
local function parse_opts(args, spec)
    local opts, pos = {}, {}
    local i = 1
    while i <= #args do
        local a = args[i]
        if a == "--" then
            for k = i + 1, #args do pos[#pos + 1] = args[k] end
            break
        elseif a == "-h" then
            opts.help = true
        elseif a:sub(1, 2) == "--" and #a > 2 then
            local name, val = a:sub(3), nil
            local eq = name:find("=", 1, true)
            if eq then
                name, val = name:sub(1, eq - 1), name:sub(eq + 1)
            end
            local kind = spec[name] and spec[name].kind
            if kind == nil then
                local known = {}
                for k, o in pairs(spec) do
                    -- (internal: between djinn-lua and its own workers)
                    if not o.internal then known[#known + 1] = "--" .. k end
                end
                table.sort(known)
                return nil, string.format("unknown option --%s (known: %s)",
                                          name, table.concat(known, ", "))
            end
            if kind == "flag" then
                if val ~= nil then
                    return nil, "--" .. name .. " takes no value"
                end
                opts[name] = true
            elseif kind == "optional-dir" then
                -- --NAME=DIR, --NAME DIR when the next argument is a
                -- directory (a manifest is a file), else true.
                if val == "" then
                    return nil, "--" .. name .. "=: expected a directory"
                elseif val == nil then
                    local nxt = args[i + 1]
                    local st = nxt and nxt:sub(1, 1) ~= "-" and
                        require("djinn.fs").stat(nxt)
                    if st and st.type == "dir" then
                        val = nxt
                        i = i + 1
                    end
                end
                opts[name] = val or true
            else
                if val == nil then
                    i = i + 1
                    val = args[i]
                    if val == nil then
                        return nil, "--" .. name .. " needs a value"
                    end
                end
                if kind == "list" then
                    opts[name] = opts[name] or {}
                    table.insert(opts[name], val)
                else
                    opts[name] = val
                end
            end
        elseif a:sub(1, 1) == "-" and #a > 1 then
            return nil, "unknown option " .. a .. " (options start with --)"
        else
            pos[#pos + 1] = a
        end
        i = i + 1
    end
    return opts, pos
end

-- The defaults (the home directory, the default registry and
-- driver.conf) are djinn.paths', shared with djinn.run; kept here under
-- their old names for scripts (examples/registry-report.lua).
local paths = require "djinn.paths"
M.home = paths.home
M.default_driver_config = paths.default_driver_config
M.default_registry = paths.default_registry

-- The driver configuration: FILE (--driver-config), else the default
-- file when it exists, else the built-in defaults (with a warning when
-- there is no home directory to look in). -> cfg | nil, message
local function load_config(cpath, warn)
    local config = require "djinn.config"
    if cpath then
        return config.load(cpath)
    end
    local def, derr = M.default_driver_config()
    if def == nil then
        warn(derr .. "; using the built-in driver defaults")
        return config.defaults()
    end
    local f = io.open(def, "rb")
    if f then
        f:close()
        return config.load(def)
    end
    return config.defaults()
end

---------------------------------------------------------------------------
-- run
---------------------------------------------------------------------------
local function cmd_run(args)
    local opts, pos = parse_opts(args, M.COMMANDS.run.options)
    if opts == nil then
        return usage_error("run", pos)
    end
    if opts.help then
        io.stdout:write(HELP.run)
        return 0
    end
    -- With --json a refusal is also an "error" event and a build_end on
    -- stdout (issue 11).
    local function refuse(msg)
        if opts.json then
            -- A build refused before djinn.run has an id all the same.
            require("djinn.log").new{ json = true, err = NULL_SINK,
                build_id = require("djinn.state").new_id() }:invalid(
                { "djinn-lua run: " .. msg }, nil, 2)
        end
        return usage_error("run", msg)
    end
    if #pos > 1 then
        return refuse("expected at most one MANIFEST, got " .. #pos ..
                      " arguments")
    end
    local mpath = pos[1] or ".djinn.yml"
    local timeout -- nil: djinn.run's default (30 minutes)
    if opts.timeout then
        local t, err = util.parse_duration(opts.timeout)
        if t == nil or t < 0 then
            return refuse("--timeout: " .. (err or "must not be negative"))
        end
        timeout = t
    end
    local hold
    if opts.hold then
        local t, err = util.parse_duration(opts.hold)
        if t == nil or t < 0 then
            return refuse("--hold: " .. (err or "must not be negative"))
        end
        hold = t
    end
    local env = {}
    for _, item in ipairs(opts.env or {}) do
        local k, v = util.split_first(item, "=")
        if v == nil or k == "" then
            return refuse(string.format("--env %q: expected KEY=VALUE", item))
        end
        env[#env + 1] = item
    end
    -- Secrets: --secret KEY=VALUE and --secret-file FILE (also job env).
    local secrets, serr = require("djinn.mask").collect(opts.secret,
                                                        opts["secret-file"])
    if secrets == nil then return refuse(serr) end
    local limits = {}
    for _, o in ipairs{ "max-output", "max-artifact-size",
                        "max-artifacts-total" } do
        if opts[o] then
            local b, berr = 0, nil
            if opts[o] ~= "0" then b, berr = util.parse_size(opts[o]) end
            if b == nil then
                return refuse("--" .. o .. ": " .. berr)
            end
            limits[(o:gsub("-", "_"))] = b
        end
    end
    if opts["max-artifacts"] then
        local c = tonumber(opts["max-artifacts"])
        if c == nil or c < 0 or c ~= math.floor(c) then
            return refuse("--max-artifacts: expected a count >= 0 (0 = no " ..
                          "limit), got " .. opts["max-artifacts"])
        end
        limits.max_artifacts = math.tointeger(c)
    end

    local pin
    if opts["image-pin"] then
        local sha, size, url = opts["image-pin"]:match("^(%x+):(%d*):(.*)$")
        if sha == nil then
            return usage_error("run", "--image-pin: expected SHA256:SIZE:URL")
        end
        pin = { sha256 = sha, size = tonumber(size), url = url }
    end
    local cache_max
    if opts["image-cache-max"] then
        cache_max = math.tointeger(tonumber(opts["image-cache-max"]))
        if cache_max == nil or cache_max < 0 then
            return usage_error("run", "--image-cache-max: expected bytes")
        end
    end
    -- Everything else is djinn.run's (one door: the library and the
    -- command line load, check, report and run a build the same way,
    -- with the same defaults: timeout, driver.conf, registry, reaper).
    local options = {
        json = opts.json, strict = opts.strict, tree = opts.tree,
        image_pin = pin, image_cache_max = cache_max,
        objects = opts.objects, artifacts = opts.artifacts,
        stage = opts.stage, timeout = timeout, env = env, hold = hold,
        secrets = secrets, secret_patterns = opts["secret-pattern"],
        limits = limits, driver_config = opts["driver-config"],
        registry = opts.registry,
    }
    local djinn = require "djinn"
    local result, _, code = djinn.run(mpath, options)
    if result == nil then
        return code or 2
    end
    return result.exit_code
end

---------------------------------------------------------------------------
-- check
---------------------------------------------------------------------------
local function cmd_check(args)
    local opts, pos = parse_opts(args, M.COMMANDS.check.options)
    if opts == nil then
        return usage_error("check", pos)
    end
    if opts.help then
        io.stdout:write(HELP.check)
        return 0
    end
    if #pos == 0 then
        return usage_error("check", "expected at least one MANIFEST")
    end
    local djinn = require "djinn"
    -- The defaults (driver.conf) are djinn.check's, as for run.
    local options = djinn.defaults{ driver_config = opts["driver-config"],
                                    stage = opts.stage }
    for _, n in ipairs(options.notes) do
        eprint("warning: ", n)
    end
    options.notes = nil
    local invalid, warned = 0, 0
    local seen = {}
    for _, mpath in ipairs(pos) do
        local c = djinn.check(mpath, options)
        for _, w in ipairs(c.warnings) do
            -- driver.conf's warnings are said once, not per manifest.
            if not seen[w] then
                seen[w] = true
                eprint("warning: ", w)
            end
        end
        for _, e in ipairs(c.errors) do
            eprint(e:match("^.-:%d+:%d+: ") and "" or "error: ", e)
        end
        local m = c.manifest
        local nothing = m and #c.errors == 0 and
            djinn.pipeline.nothing_to_run(m, { stage = opts.stage })
        if #c.errors > 0 then
            invalid = invalid + 1
            print(string.format("%s: invalid (%s)", mpath,
                c.summary or string.format("%d error%s", #c.errors,
                                           #c.errors == 1 and "" or "s")))
        elseif nothing then
            invalid = invalid + 1
            print(string.format("%s: invalid: no job would run: %s", mpath,
                                nothing))
        else
            local njobs, nstages = 0, {}
            for _, j in ipairs(m.jobs) do
                if opts.stage == nil or j.stage == opts.stage then
                    njobs = njobs + 1
                    nstages[j.stage] = true
                end
            end
            local ns = 0
            for _ in pairs(nstages) do ns = ns + 1 end
            if #c.warnings > 0 then warned = warned + 1 end
            print(string.format("%s: ok: driver %s, %d job%s in %d " ..
                "stage%s%s%s", mpath, m.driver.type, njobs,
                njobs == 1 and "" or "s", ns, ns == 1 and "" or "s",
                #m.sources > 0 and string.format(", %d source%s",
                    #m.sources, #m.sources == 1 and "" or "s") or "",
                #c.warnings > 0 and string.format(" (%d warning%s)",
                    #c.warnings, #c.warnings == 1 and "" or "s") or ""))
        end
    end
    if invalid > 0 then
        return 2
    elseif opts.strict and warned > 0 then
        eprint(string.format("djinn-lua check: --strict: %d manifest%s " ..
            "with warnings", warned, warned == 1 and "" or "s"))
        return 1
    end
    return 0
end

---------------------------------------------------------------------------
-- image
---------------------------------------------------------------------------
local function ns_arg(s)
    if s == nil or s == "-" or s == "" then return nil end
    return s
end

-- One prefix, then the message (issue 11, item 4.12).
local function image_fail(sub, ...)
    eprint("djinn-lua: image ", sub, ": ",
           util.plain_error(table.concat({ ... }, "")))
    return 1
end

-- Open the registry for image SUB. Only `register` creates one: a read
-- or a removal on a registry that does not exist says so and creates
-- nothing (a mistyped --registry used to leave directories and an empty
-- registry behind; issue 11, item 4.6). -> db | nil, exit status
local function open_registry(path, sub, explicit)
    local fs = require "djinn.fs"
    if sub ~= "register" and sub ~= "__register" and not fs.exists(path) then
        if explicit then
            return nil, image_fail(sub, "the registry ", path, " does not " ..
                "exist (check --registry; `djinn-lua image register` " ..
                "creates a registry)")
        end
        -- The default registry before anything was registered: nothing
        -- to show is not a failure for ls, but is for the others.
        eprint("djinn-lua: image ", sub, ": no registry yet at ", path,
               " (`djinn-lua image register` creates it)")
        return nil, sub == "ls" and 0 or 1
    end
    local registry = require "djinn.registry"
    local db, err = registry.open(path)
    if db == nil then
        return nil, image_fail(sub, "cannot open the registry: ", err)
    end
    return db
end

-- Print rows as columns as wide as their widest cell: one write of the
-- text djinn.term.columns builds (10,000 images were 10,000 write calls,
-- then 70 ms of padding and joining in Lua; issue 13).
local function print_columns(header, rows)
    io.stdout:write(require("djinn.term").columns(header, rows))
    io.stdout:flush()
end

-- A byte count for people: "1.5 MiB" (djinn.term.size).
local human_size = require("djinn.term").size

-- Print a QCOW2 check report; returns whether the image is valid.
local function print_report(path, rep)
    for _, e in ipairs(rep.errors or {}) do
        print(string.format("%s: error: %s%s", path,
            e.code and (e.code .. ": ") or "", e.message or tostring(e)))
    end
    for _, w in ipairs(rep.warnings or {}) do
        print(string.format("%s: warning: %s%s", path,
            w.code and (w.code .. ": ") or "", w.message or tostring(w)))
    end
    local info = rep.info or {}
    if rep.valid then
        print(string.format("%s: valid QCOW2 v%s image, virtual size %s",
            path, tostring(info.version or "?"),
            human_size(info.virtual_size)))
    else
        print(string.format("%s: INVALID (%d error%s)", path,
            #(rep.errors or {}), #(rep.errors or {}) == 1 and "" or "s"))
    end
    return rep.valid == true
end

-- Print a djinn_fsck report for people.
local function print_fsck(regpath, rep, repaired)
    local json = require "djinn.json"
    local function list(key, what)
        local v = rep[key]
        if type(v) ~= "table" or #v == 0 then return end
        print(string.format("%s (%d):", what, #v))
        for _, x in ipairs(v) do print("  " .. tostring(x)) end
    end
    print(string.format("registry %s, store %s: %s image%s, %s file%s",
        regpath, tostring(rep.store), tostring(rep.images),
        rep.images == 1 and "" or "s", tostring(rep.files),
        rep.files == 1 and "" or "s"))
    if rep.error ~= nil and rep.error ~= json.null then
        print("error: " .. tostring(rep.error))
    end
    list("missing", "images whose file is missing (remove and register " ..
         "them again)")
    list("orphans", "files no image uses")
    list("temp", "temporary files left by registrations")
    list("restored", "restored from the trash")
    list("removed", "removed")
    if rep.ok and (rep.error == nil or rep.error == json.null) then
        print(repaired and "ok (repaired)" or "ok")
    elseif not repaired then
        print("not ok: `djinn-lua image fsck --repair` removes what is " ..
              "provably garbage and puts back trashed files still in use")
    else
        print("not ok: what is left needs a person (see above)")
    end
end

-- Remove the temporary copies (<store>/.tmp-<pid>-<hex>) a registration
-- by process `pid` left behind; call only once that process is gone (its
-- fcntl lock on the copy died with it). The registry is not created when
-- it does not exist yet. -> count removed, problems (a list of messages)
-- The store of an existing registry (djinn_store()). -> dir | nil, why
local function store_of(regpath)
    local db, err = require("djinn.registry").open(regpath)
    if db == nil then
        return nil, "cannot open the registry: " .. tostring(err)
    end
    local rows
    rows, err = db:query("SELECT djinn_store() AS store")
    db:close()
    local store = rows and rows[1] and rows[1].store
    if store == nil then
        return nil, "cannot find the store: " .. tostring(err)
    end
    return store
end

local function remove_worker_temps(regpath, pid)
    local fs = require "djinn.fs"
    local problems = {}
    if not fs.exists(regpath) then return 0, problems end
    local store, err = store_of(regpath)
    if store == nil then
        return 0, { "cleaning up: " .. tostring(err) }
    end
    local names = fs.listdir(store) or {}
    local pat = "^%.tmp%-" .. math.tointeger(pid) .. "%-%x+$"
    local n = 0
    for _, name in ipairs(names) do
        if name:match(pat) then
            local ok, rerr = fs.remove(store .. "/" .. name)
            if ok then
                n = n + 1
            else
                problems[#problems + 1] = tostring(rerr)
            end
        end
    end
    return n, problems
end

-- image register runs in a worker, a child djinn-lua ("image __register
-- ..."), on every path (issue 10, defect 7): the parent stays in control
-- when the copy is interrupted. On a terminal (stderr) the parent shows a
-- spinner and relays the worker's output at the end; otherwise the worker
-- writes to our stdout and stderr itself. The worker runs in its own
-- process group (a terminal's Ctrl-C reaches the parent only) and dies
-- with the parent (PDEATHSIG). On SIGINT/SIGTERM the parent terminates
-- the worker, removes the temporary copy it left in the store, and
-- returns 130; a worker that fails or dies leaves no copy either, and a
-- worker that cannot start is an error (exit 1) with a message. What an
-- interrupted or killed worker leaves is looked up, not assumed: an
-- image that appeared meanwhile (the interrupt came after the commit)
-- is reported as registered. -> exit status
-- The import options of image register (URL sources; --sha256 for any),
-- as given: forwarded to the worker.
local IMPORT_OPTS = { "sha256", "max-size", "connect-timeout",
                      "stall-timeout", "timeout", "max-redirects",
                      "insecure", "ca-file", "identity", "known-hosts" }

-- A source given as scheme://...: a URL (db:register streams it).
local function is_url(src)
    return src:match("^[%a][%w+.-]*://") ~= nil
end

-- db:register's options from the command line. -> opts | nil, usage msg
local function import_opts(opts, src)
    local o, url = {}, is_url(src)
    for _, k in ipairs(IMPORT_OPTS) do
        if opts[k] ~= nil and k ~= "sha256" and not url then
            return nil, "--" .. k .. " is for a URL source (http, https, " ..
                "file, sftp); " .. src .. " is a file"
        end
    end
    if opts.sha256 then
        if not opts.sha256:match("^" .. string.rep("%x", 64) .. "$") then
            return nil, "--sha256: expected 64 hex digits, got " ..
                string.format("%q", opts.sha256)
        end
        o.sha256 = opts.sha256
    end
    if opts["max-size"] then
        local n, err = util.parse_size(opts["max-size"])
        if n == nil or n <= 0 then
            return nil, "--max-size: " .. (err or "must be more than 0")
        end
        o.max_size = n
    end
    for _, k in ipairs{ "connect-timeout", "stall-timeout", "timeout" } do
        if opts[k] then
            local d, err = util.parse_duration(opts[k])
            if d == nil or d <= 0 then
                return nil, "--" .. k .. ": " .. (err or "must be more " ..
                    "than 0")
            end
            o[k:gsub("-", "_")] = d
        end
    end
    if opts["max-redirects"] then
        local n = math.tointeger(tonumber(opts["max-redirects"]))
        if n == nil or n < 0 or n > 100 then
            return nil, "--max-redirects: expected a whole number from 0 " ..
                "to 100, got " .. string.format("%q", opts["max-redirects"])
        end
        o.max_redirects = n
    end
    o.insecure = opts.insecure or nil
    o.ca_file = opts["ca-file"]
    o.identity = opts.identity
    o.known_hosts = opts["known-hosts"]
    return o
end

-- "1m05s" for an ETA.
local function eta_text(s)
    s = math.floor(s + 0.5)
    if s >= 3600 then
        return string.format("%dh%02dm", s // 3600, s % 3600 // 60)
    elseif s >= 60 then
        return string.format("%dm%02ds", s // 60, s % 60)
    end
    return string.format("%ds", s)
end

local function register_worker(regpath, ns, name, file, json, opts)
    local proc = require "djinn.proc"
    local fs = require "djinn.fs"
    local url = is_url(file)
    -- A URL reaches the worker on its stdin, never in its argv (where
    -- other users could read credentials in it).
    local argv = { "image", "__register", "--registry", regpath }
    for _, k in ipairs(IMPORT_OPTS) do
        if opts[k] == true then
            argv[#argv + 1] = "--" .. k
        elseif opts[k] ~= nil then
            argv[#argv + 1] = "--" .. k .. "=" .. opts[k]
        end
    end
    if json then argv[#argv + 1] = "--json" end
    local tty = proc.isatty(2) == true and not json
    if url and tty then argv[#argv + 1] = "--progress" end
    argv[#argv + 1] = "--"
    argv[#argv + 1] = ns or "-"
    argv[#argv + 1] = name
    argv[#argv + 1] = url and "-" or file
    local function fail(msg)
        eprint("djinn-lua: image register: ", util.plain_error(msg))
        return 1
    end
    -- The stored path of NAME, nil when absent or unknown (no registry
    -- file yet: none is created here).
    local function lookup()
        if not fs.exists(regpath) then return nil end
        local db = require("djinn.registry").open(regpath)
        if db == nil then return nil end
        local path = db:resolve(ns, name)
        db:close()
        return path
    end
    local before = lookup()
    local exe, xerr = fs.realpath("/proc/self/exe")
    if exe == nil then
        return fail("cannot find djinn-lua's own executable to start the " ..
                    "worker: " .. tostring(xerr))
    end
    local sink = tty and "pipe" or "inherit"
    proc.on_signals{ "INT", "TERM" }
    local child, err = proc.spawn{ argv = { exe, table.unpack(argv) },
                                   stdin = url and "pipe" or "null",
                                   stdout = sink, stderr = sink }
    if child == nil then
        proc.default_signals()
        return fail("cannot start the worker process " .. exe .. ": " ..
                    tostring(err))
    end
    if url then
        child:write(file .. "\n", 10)
        child:close_stdin()
    end
    local pid = child:pid()
    local frames = { "|", "/", "-", "\\" }
    local t0, n = proc.now(), 0
    -- Progress on a terminal: the worker copies FILE to
    -- <store>/.tmp-<pid>-<hex>; its size against FILE's is the progress.
    local fst = not url and fs.stat(file)
    local total = fst and fst.type == "file" and fst.size or nil
    local store, tmp, looked = nil, nil, -1
    local function copied()
        local now = proc.now()
        if tmp == nil and total and now - looked >= 0.5 then
            looked = now
            if store == nil and fs.exists(regpath) then
                store = store_of(regpath)
            end
            for _, f in ipairs(store and fs.listdir(store) or {}) do
                if f:match("^%.tmp%-" .. math.tointeger(pid) .. "%-") then
                    tmp = store .. "/" .. f
                end
            end
        end
        local st = tmp and fs.stat(tmp)
        return st and st.size
    end
    local out, errs = {}, {}
    local eof = not tty
    local how, code, sig
    -- A URL's worker reports "\30progress BYTES TOTAL|-" lines on stderr.
    local got = nil
    local feed_lines, partial_line = util.lines()
    local function progress_lines(data)
        local keep = {}
        for _, line in ipairs(feed_lines(data)) do
            local g, t = line:match("^\30progress (%d+) ([%d-]+)\n$")
            if g then
                got = tonumber(g)
                total = tonumber(t)
            else
                keep[#keep + 1] = line
            end
        end
        return table.concat(keep)
    end
    while how == nil do
        sig = proc.pending_signal()
        if sig then break end
        if eof then
            how, code = child:wait(0.2)
        else
            local data, what = child:read(0.1)
            if data and what == "stderr" and url then
                errs[#errs + 1] = progress_lines(data)
            elseif data then
                if what == "stderr" then errs[#errs + 1] = data
                else out[#out + 1] = data end
            elseif what == "eof" then
                eof = true
            end
            n = n + 1
            local dt = proc.now() - t0
            local done = url and got or copied()
            local bytes = ""
            if url and done and not (total and done >= total) then
                local rate = dt > 0 and done / dt or 0
                bytes = string.format(" %s%s (%s/s%s)", human_size(done),
                    total and (" of " .. human_size(total)) or "",
                    human_size(rate), (total and rate > 0) and
                    (", ETA " .. eta_text((total - done) / rate)) or "")
            elseif url and done then
                bytes = string.format(" %s downloaded, validating",
                                      human_size(done))
            elseif done and total and total > 0 and done >= total then
                bytes = string.format(" %s copied, checking",
                                      human_size(total))
            elseif done and total and total > 0 then
                bytes = string.format(" %s of %s (%s/s)", human_size(done),
                    human_size(total), human_size(dt > 0 and done / dt or 0))
            end
            io.stderr:write(string.format("\r%s registering %s%s %.0fs \27[K",
                frames[n % 4 + 1], name, bytes, dt))
            io.stderr:flush()
        end
    end
    if sig then
        -- The worker is told to stop; it may be mid-copy.
        child:terminate(5)
    end
    proc.default_signals()
    if tty then io.stderr:write("\r\27[K") end
    io.stdout:write(table.concat(out))
    io.stdout:flush()
    io.stderr:write(table.concat(errs), partial_line())
    local removed, problems = 0, {}
    if sig or how ~= "exit" or code ~= 0 then
        removed, problems = remove_worker_temps(regpath, pid)
    end
    for _, p in ipairs(problems) do eprint("djinn-lua: image register: ", p) end
    local left = removed > 0 and string.format("; removed its partial " ..
        "copy (%d file%s)", removed, removed == 1 and "" or "s") or ""
    local outcome = "nothing was registered"
    if sig or how == "signal" then
        local after = lookup()
        if after and after ~= before then
            outcome = string.format("the image had been registered " ..
                "already: %s -> %s",
                require("djinn.images").label(ns, name), after)
        end
    end
    if sig then
        eprint("djinn-lua: image register: interrupted; ", outcome, left)
        return 130
    end
    if how == "signal" then
        local sname = ({ [2] = "INT", [9] = "KILL", [15] = "TERM" })[code]
        eprint(string.format("djinn-lua: image register: the worker " ..
            "(pid %d) was killed by signal %s; %s%s", pid,
            sname or tostring(code), outcome, left))
        return (code == 2 or code == 15) and 130 or 1
    end
    return code
end

-- image info's lines for the last boot check of the image's content:
-- when, verdict, machine, and each item that failed or warned (with its
-- fix); "never" when it was not checked.
local function print_last_check(last)
    if last == nil then
        print(string.format("%-26s %s", "check", "never (djinn-lua image " ..
                            "check --boot NAMESPACE NAME)"))
        return
    end
    print(string.format("%-26s %s (%s)", "check", require("djinn.contract")
        .VERDICT_TEXT[last.verdict] or tostring(last.verdict),
        tostring(last.checked_at)))
    print(string.format("%-26s %s", "check.machine", tostring(last.machine)))
    for _, it in ipairs(last.items or {}) do
        if type(it) == "table" and (it.status == "fail" or
                                    it.status == "warn") then
            print(string.format("%-26s %s: %s", "check." ..
                tostring(it.name), it.status, (tostring(it.detail):gsub(
                "\n", "\n" .. string.rep(" ", 27)))))
            if type(it.fix) == "string" then
                print(string.format("%-26s %s", "check." ..
                                    tostring(it.name) .. ".fix", it.fix))
            end
        end
    end
end

-- The options of the boot check belong to check --boot and register
-- (--boot-check). -> nil | usage message
local function boot_opts_misused(sub, opts)
    if opts.boot and sub ~= "check" then
        return "--boot is an option of image check"
    elseif opts["boot-check"] and sub ~= "register" then
        return "--boot-check is an option of image register"
    end
    local booting = (sub == "check" and opts.boot) or
        (sub == "register" and opts["boot-check"])
    for _, k in ipairs{ "boot-timeout", "driver-config" } do
        if opts[k] ~= nil and not booting and
            not (sub == "warm" and k == "driver-config") then
            return "--" .. k .. " is an option of image check --boot " ..
                "and image register --boot-check"
        end
    end
end

-- image check --boot (and register --boot-check): boot the image on the
-- qemu driver's machine and check the image contract (djinn.contract),
-- then record the verdict in the registry (image_checks, by content; a
-- base image's check creates the registry like register does). Text: one
-- line per item (and its fix) on stdout, the driver's lines on stderr;
-- --json: {"event":"log"|"item"|"result"} lines on stdout. IMAGE is read
-- as a manifest's image: with NS as its namespace: (nil: personal image,
-- or a base image path with "/"). -> exit status: 0 usable (with or
-- without warnings), 1 unusable or not checked, 2 usage, 130 interrupted.
local function image_boot_check(regpath, ns, image, opts)
    local contract = require "djinn.contract"
    local json = require "djinn.json"
    local proc = require "djinn.proc"
    local boot_timeout
    if opts["boot-timeout"] then
        local d, derr = util.parse_duration(opts["boot-timeout"])
        if d == nil or d <= 0 then
            return usage_error("image", "--boot-timeout: " ..
                (derr or "must be more than 0"))
        end
        boot_timeout = d
    end
    local function emit(v)
        io.stdout:write(json.encode(v), "\n")
        io.stdout:flush()
    end
    local cfg, cerr = load_config(opts["driver-config"], function(m)
        eprint("djinn-lua: image check: warning: ", m)
    end)
    if cfg == nil then
        return image_fail("check", "driver.conf: ", cerr)
    end
    local log = {
        line = function(_, l)
            if opts.json then emit{ event = "log", line = l }
            elseif l ~= "" then eprint(l) end
        end,
        warn = function(_, l)
            if opts.json then emit{ event = "log", level = "warning",
                                    line = l }
            else eprint("warning: ", l) end
        end,
    }
    local function on_item(it)
        if opts.json then
            emit{ event = "item", name = it.name, status = it.status,
                  detail = it.detail, fix = it.fix }
            return
        end
        print(string.format("%-4s  %-8s  %s", it.status, it.name,
            (tostring(it.detail):gsub("\n", "\n                "))))
        if it.fix then print("                fix: " .. it.fix) end
        io.stdout:flush()
    end
    proc.on_signals{ "INT", "TERM" }
    local ctx = require("djinn.pipeline").new_ctx(nil, proc, true)
    local res, err = contract.check{ image = image, namespace = ns,
        registry = regpath, config = require("djinn.config").driver(cfg,
        "qemu"), boot_timeout = boot_timeout, log = log, on_item = on_item,
        ctx = ctx }
    proc.default_signals()
    if res == nil then
        if ctx:cancelled() then
            eprint("djinn-lua: image check: interrupted (", tostring(err),
                   "); the machine was stopped, nothing was recorded")
            return 130
        end
        if opts.json then emit{ event = "error", message = err } end
        return image_fail("check", err)
    end
    local db, derr = require("djinn.registry").open(regpath)
    local id
    if db then
        id, derr = contract.record(db, res)
        db:close()
    end
    if opts.json then
        emit{ event = "result", image = res.label, path = res.path,
              sha256 = res.sha256, verdict = res.verdict,
              machine = res.machine, seconds = res.seconds,
              recorded = id ~= nil, items = json.array(res.items) }
    else
        print(string.format("verdict: %s: %s (sha256 %s), checked in %s " ..
            "on %s", contract.VERDICT_TEXT[res.verdict], res.label,
            res.sha256:sub(1, 12), util.fmt_duration(res.seconds),
            res.machine))
    end
    if id == nil then
        return image_fail("check", "cannot record the verdict in ",
                          regpath, ": ", tostring(derr))
    end
    return res.verdict == "unusable" and 1 or 0
end

-- image warm: prepare an image's warm snapshot ahead of the first build
-- (the qemu driver's own path: a cold boot that saves it, or a start from
-- the snapshot when there is one, which proves it loads). The driver's
-- lines go to stderr; stdout gets one line: the snapshot and how the
-- machine started. -> 0 | 1 (no snapshot) | 130
local function image_warm(regpath, ns, image, opts)
    local proc = require "djinn.proc"
    local state = require "djinn.state"
    local cfg, cerr = load_config(opts["driver-config"], function(m)
        eprint("djinn-lua: image warm: warning: ", m)
    end)
    if cfg == nil then
        return image_fail("warm", "driver.conf: ", cerr)
    end
    local qcfg = require("djinn.config").driver(cfg, "qemu")
    if qcfg.warm == false then
        return image_fail("warm", "warm snapshots are off in driver.conf " ..
                          "(driver qemu { warm false })")
    end
    local log = {
        line = function(_, l) if l ~= "" then eprint(l) end end,
        warn = function(_, l) eprint("warning: ", l) end,
    }
    proc.on_signals{ "INT", "TERM" }
    local ctx = require("djinn.pipeline").new_ctx(nil, proc, true)
    local d, err = require("djinn.drivers.qemu").new{ config = qcfg,
        log = log, ctx = ctx, driver = { image = image },
        registry = regpath, manifest = { namespace = ns } }
    if d == nil then
        proc.default_signals()
        return image_fail("warm", "driver.conf: ", err)
    end
    local rec = state.begin("qemu")
    local t0 = proc.now()
    local ok, res, cause = pcall(d.create, d, {}, {})
    d:destroy()
    if rec then rec:finish() end
    proc.default_signals()
    if not ok then cause = res; res = nil end
    if ctx:cancelled() then
        eprint("djinn-lua: image warm: interrupted; the machine was " ..
               "stopped, no snapshot was kept")
        return 130
    end
    local w = d.warm
    if res == nil or w == nil then
        return image_fail("warm", tostring(cause or
            "warm snapshots are off for this image (warm_skip)"))
    end
    if w.saved then
        print(string.format("saved %s/%s in %s", w.dir, w.name,
                            util.fmt_duration(proc.now() - t0)))
    elseif d.warm_started then
        print(string.format("warm already: %s/%s (the machine started " ..
            "from it in %s)", w.dir, w.name,
            util.fmt_duration(proc.now() - t0)))
    else
        return image_fail("warm", "no snapshot was saved (see the " ..
                          "warnings above)")
    end
    return 0
end

local function cmd_image(args)
    local opts, pos = parse_opts(args, M.COMMANDS.image.options)
    if opts == nil then
        return usage_error("image", pos)
    end
    local sub = table.remove(pos, 1)
    if opts.help or sub == "help" then
        io.stdout:write(HELP.image)
        return 0
    elseif sub == nil then
        io.stderr:write(HELP.image)
        return 2
    end
    local known = { register = true, __register = true, ls = true,
                    info = true, rm = true, check = true, fsck = true,
                    warm = true }
    if not known[sub] then
        return usage_error("image", string.format("unknown subcommand %q " ..
            "(allowed: register, ls, info, rm, check, fsck, warm)", sub))
    end
    if opts.repair and sub ~= "fsck" then
        return usage_error("image", "--repair is an option of image fsck")
    end
    for _, k in ipairs(IMPORT_OPTS) do
        if opts[k] ~= nil and sub ~= "register" and sub ~= "__register" then
            return usage_error("image", "--" .. k .. " is an option of " ..
                               "image register")
        end
    end
    local bad = boot_opts_misused(sub, opts)
    if bad then return usage_error("image", bad) end
    local regpath, rerr = opts.registry, nil
    if regpath == nil and (sub ~= "check" or opts.boot) then
        regpath, rerr = M.default_registry()
        if regpath == nil then
            eprint("djinn-lua: image ", sub, ": ", rerr)
            return 2
        end
    end
    local explicit = opts.registry ~= nil
    local images = require "djinn.images"
    local function nargs(lo, hi, u)
        if #pos < lo or #pos > hi then
            usage_error("image", "usage: djinn-lua image " .. sub .. " " .. u)
            return false
        end
        return true
    end
    local function say_json(v)
        print(require("djinn.json").encode(v))
    end
    if sub == "warm" then
        if not nargs(1, 2, "NAMESPACE NAME | IMAGE") then return 2 end
        return image_warm(regpath, #pos == 2 and ns_arg(pos[1]) or nil,
                          pos[#pos], opts)
    elseif sub == "check" and opts.boot then
        if not nargs(1, 2, "--boot NAMESPACE NAME | --boot IMAGE") then
            return 2
        end
        return image_boot_check(regpath, #pos == 2 and ns_arg(pos[1]) or nil,
                                pos[#pos], opts)
    elseif sub == "check" then
        if not nargs(1, 1, "FILE") then return 2 end
        local qcow2 = require "djinn.qcow2"
        local rep = qcow2.check(pos[1])
        if opts.json then
            say_json(rep)
            return rep.valid and 0 or 1
        end
        return print_report(pos[1], rep) and 0 or 1
    elseif sub == "register" or sub == "__register" then
        if not nargs(3, 3, "NAMESPACE NAME SOURCE") then return 2 end
        local src = pos[3]
        if sub == "__register" and src == "-" then
            src = io.read("l") or ""
        end
        local ropts, oerr = import_opts(opts, src)
        if ropts == nil then return usage_error("image", oerr) end
        if sub == "register" then
            local st = register_worker(regpath, ns_arg(pos[1]), pos[2], src,
                                       opts.json, opts)
            if st == 0 and opts["boot-check"] then
                return image_boot_check(regpath, ns_arg(pos[1]), pos[2],
                                        opts)
            end
            return st
        end
        local db, st = open_registry(regpath, sub, explicit)
        if db == nil then return st end
        local ns = ns_arg(pos[1])
        local url = is_url(src)
        if url and (opts.progress or opts.json) then
            local proc = require "djinn.proc"
            local last, said = -1, -1
            ropts.progress = function(got, total)
                local now = proc.now()
                if got == said or (now - last < (opts.json and 1 or 0.2)
                                   and got ~= total) then
                    return
                end
                last, said = now, got
                if opts.json then
                    say_json{ event = "progress", bytes = got,
                              total = total }
                    io.stdout:flush()
                else
                    io.stderr:write(string.format("\30progress %d %s\n",
                        got, total and tostring(total) or "-"))
                    io.stderr:flush()
                end
            end
        end
        local id, info = db:register(ns, pos[2], src,
                                     (url or ropts.sha256) and ropts or nil)
        if id == nil then
            db:close()
            return image_fail("register", info)
        end
        local path, sha = db:resolve(ns, pos[2])
        db:close()
        local ctype = info and info.content_type
        local odd = url and ctype and not
            (ctype:match("^application/x%-qemu%-disk") or
             ctype:match("^application/octet%-stream"))
        if odd then
            eprint("djinn-lua: image register: warning: ", info.url,
                   " was sent as ", ctype, ", not application/x-qemu-disk;",
                   " its bytes were validated as a QCOW2 image anyway")
        end
        if opts.json then
            say_json{ id = id, namespace = ns, name = pos[2], path = path,
                      sha256 = sha, source = info and info.url,
                      content_type = ctype, bytes = info and info.bytes }
        else
            local me = images.me()
            local text = images.manifest_text({ name = pos[2],
                namespace = ns and ns:match("^[^@]*"),
                owner = ns and ns:match("@(.*)$") or me }, me)
            print(string.format("registered %s (%sid %s) -> %s%s", text,
                ns and "" or "personal, ", tostring(id), tostring(path),
                info and ("\n  from " .. info.url .. " (" ..
                          human_size(info.bytes) .. ")") or ""))
        end
        return 0
    elseif sub == "ls" then
        if not nargs(0, 1, "[NAMESPACE]") then return 2 end
        local db, st = open_registry(regpath, sub, explicit)
        if db == nil then
            if st == 0 and opts.json then say_json(require("djinn.json").array()) end
            return st
        end
        -- No argument: every image; "-" or "": your personal images;
        -- path: your namespace path; path@owner: that owner's (db:list).
        local me = images.me()
        -- Text needs six columns (a brief list: issue 13), JSON all.
        local rows, err = db:list(pos[1], not opts.json)
        -- A store this registry may not use (another registry's, or one
        -- full of images beside an empty registry: a lost registry file)
        -- is said before the list, which could otherwise look empty.
        local chk = db:query("SELECT djinn_store_check() AS why")
        db:close()
        if rows == nil then
            return image_fail("ls", err)
        end
        local why = chk and chk[1] and chk[1].why
        if why then
            eprint("djinn-lua: image ls: warning: ", why)
        end
        if opts.json then
            for _, r in ipairs(rows) do
                r.manifest = images.manifest_text(r, me)
            end
            say_json(require("djinn.json").array(rows))
            return 0
        end
        -- NAMESPACE as a manifest's namespace: key writes it (path, or
        -- path@owner for another owner's), IMAGE as its image: key.
        local cells = {}
        for _, r in ipairs(rows) do
            cells[#cells + 1] = {
                images.namespace_text(r.namespace, r.owner, me) or "-",
                r.name or "?", r.owner or "?", human_size(r.file_size),
                human_size(r.virtual_size), (r.sha256 or ""):sub(1, 12),
                r.check_verdict or "-" }
        end
        print_columns({ "NAMESPACE", "IMAGE", "OWNER", "SIZE", "VIRTUAL",
                        "SHA256", "CHECK" }, cells)
        return 0
    elseif sub == "info" then
        if not nargs(2, 2, "NAMESPACE NAME") then return 2 end
        local db, st = open_registry(regpath, sub, explicit)
        if db == nil then return st end
        -- An error (an unreadable or damaged registry, a bad namespace)
        -- is reported as such, never as "no image" (issue 10, defect 13).
        local ns = ns_arg(pos[1])
        -- resolve -> path, sha256 | nil (absent) | nil, err
        local path, sha_or_err = db:resolve(ns, pos[2])
        local sha = path and sha_or_err
        local err = (path == nil) and sha_or_err or nil
        local rows, other
        if err == nil then
            rows, err = db:list(ns or "-")
        end
        if path == nil and err == nil then
            other = images.elsewhere(db, pos[2])
        end
        local last = path and images.last_check(db, { sha256 = sha })
        db:close()
        if err ~= nil then
            return image_fail("info", err)
        end
        if path == nil then
            return image_fail("info", string.format("no image %s%s",
                images.label(ns, pos[2]), other and ("\n" .. other) or ""))
        end
        -- The row of that content in that namespace.
        local row
        for _, r in ipairs(rows) do
            if r.name == pos[2] and (sha == nil or r.sha256 == sha) then
                row = r
            end
        end
        if row == nil then
            return image_fail("info", string.format("the registry resolves " ..
                "%s to %s but lists no such image", images.label(ns, pos[2]),
                path))
        end
        row.path = path
        row.manifest = images.manifest_text(row)
        local qcow2 = require "djinn.qcow2"
        local info, qerr = qcow2.info(path)
        if info == nil then
            return image_fail("info", "cannot read the stored file: ", qerr)
        end
        if opts.json then
            row.qcow2 = info
            row.check = last and { verdict = last.verdict,
                checked_at = last.checked_at, machine = last.machine,
                items = require("djinn.json").array(last.items) }
            say_json(row)
            return 0
        end
        local keys = {}
        for k in pairs(row) do keys[#keys + 1] = k end
        table.sort(keys)
        for _, k in ipairs(keys) do
            print(string.format("%-26s %s", k, tostring(row[k])))
        end
        local ik = {}
        for k in pairs(info) do ik[#ik + 1] = k end
        table.sort(ik)
        for _, k in ipairs(ik) do
            if type(info[k]) ~= "table" then
                print(string.format("%-26s %s", "qcow2." .. k,
                                    tostring(info[k])))
            end
        end
        print_last_check(last)
        return 0
    elseif sub == "rm" then
        if not nargs(2, 2, "NAMESPACE NAME") then return 2 end
        local db, st = open_registry(regpath, sub, explicit)
        if db == nil then return st end
        local ns = ns_arg(pos[1])
        local ok, err = db:remove(ns, pos[2])
        local other = ok == false and images.elsewhere(db, pos[2]) or nil
        db:close()
        if ok == nil then
            return image_fail("rm", err)
        elseif not ok then
            return image_fail("rm", string.format("no image %s%s",
                images.label(ns, pos[2]), other and ("\n" .. other) or ""))
        end
        if opts.json then
            say_json{ removed = true, namespace = ns, name = pos[2] }
        else
            print("removed " .. images.label(ns, pos[2]))
        end
        return 0
    elseif sub == "fsck" then
        if not nargs(0, 0, "[--repair]") then return 2 end
        local db, st = open_registry(regpath, sub, explicit)
        if db == nil then return st end
        local rows, err
        if opts.repair then
            rows, err = db:query("SELECT djinn_fsck('repair') AS j")
        else
            rows, err = db:query("SELECT djinn_fsck() AS j")
        end
        db:close()
        local text = rows and rows[1] and rows[1].j
        if text == nil then
            return image_fail("fsck", err or "no report")
        end
        local rep, jerr = require("djinn.json").decode(text)
        if rep == nil then
            return image_fail("fsck", "unreadable report: ", jerr)
        end
        if opts.json then
            print(text)
        else
            print_fsck(regpath, rep, opts.repair)
        end
        return (rep.ok and (rep.error == nil or
                           rep.error == require("djinn.json").null)) and 0 or 1
    end
    return 2
end

---------------------------------------------------------------------------
-- docker prune
---------------------------------------------------------------------------
-- release [ID...]: list the held builds, or end their holds (the file
-- <state dir>/release, which the holding runner polls; then wait up to 30 s
-- for its state directory to go).
local function cmd_release(args)
    local opts, pos = parse_opts(args, M.COMMANDS.release.options)
    if opts == nil then
        return usage_error("release", pos)
    end
    if opts.help or pos[1] == "help" then
        io.stdout:write(HELP.release)
        return 0
    end
    local state = require "djinn.state"
    local json = require "djinn.json"
    local list, err = state.held()
    if list == nil then
        eprint("djinn-lua: release: ", err)
        return 1
    end
    if #pos == 0 then
        if opts.json then
            local out = json.array()
            for _, h in ipairs(list) do
                out[#out + 1] = { build = h.id, driver = h.driver,
                                  ["until"] = h["until"],
                                  command = h.command }
            end
            print(json.encode(out))
        elseif #list == 0 then
            print("no build holds a machine")
        else
            for _, h in ipairs(list) do
                print(string.format("%s  %-6s  until %s  %s", h.id,
                    tostring(h.driver), os.date("%H:%M:%S", h["until"]),
                    tostring(h.command)))
            end
        end
        return 0
    end
    local byid = {}
    for _, h in ipairs(list) do byid[h.id] = h end
    local status, proc, fs = 0, require "djinn.proc", require "djinn.fs"
    for _, id in ipairs(pos) do
        local h = byid[id]
        if h == nil then
            eprint("djinn-lua: release: ", id, ": no held build of that " ..
                   "id (djinn-lua release lists them)")
            status = 1
        else
            fs.writefile(h.dir .. "/release", "")
            local deadline = proc.now() + 30
            while fs.exists(h.dir) and proc.now() < deadline do
                proc.sleep(0.1)
            end
            if fs.exists(h.dir) then
                eprint("djinn-lua: release: ", id, ": asked, but its " ..
                       "runner (pid ", tostring(h.pid), ") did not end " ..
                       "within 30 s")
                status = 1
            elseif opts.json then
                print(json.encode{ build = id, released = true })
            else
                print("released " .. id)
            end
        end
    end
    return status
end

local function cmd_docker(args)
    local opts, pos = parse_opts(args, M.COMMANDS.docker.options)
    if opts == nil then
        return usage_error("docker", pos)
    end
    if opts.help or pos[1] == "help" then
        io.stdout:write(HELP.docker)
        return 0
    end
    if pos[1] ~= "prune" or #pos > 1 then
        return usage_error("docker", pos[1] == nil and
            "missing subcommand (allowed: prune)" or
            string.format("unknown arguments %q (allowed: prune)",
                          table.concat(pos, " ")))
    end
    local config = require "djinn.config"
    local cfg, cerr = load_config(opts["driver-config"], function(w)
        eprint("warning: ", w)
    end)
    if cfg == nil then
        eprint(cerr)
        return 2
    end
    local dcfg = config.driver(cfg, "docker")
    local docker = require "djinn.transport.docker"
    local c, err = docker.connect{ host = dcfg.host, version = dcfg.version }
    if c == nil then
        eprint("djinn-lua: docker prune: ", err)
        return 3
    end
    local labels = { ["djinn.managed"] = "true" }
    local status = 0
    local list
    list, err = c:containers(labels)
    if list == nil then
        eprint("djinn-lua: docker prune: listing containers: ", err)
        return 1
    end
    local nc, nv = 0, 0
    for _, ct in ipairs(list) do
        -- The engine filtered by label; check again before removing.
        if type(ct.Labels) == "table" and
            ct.Labels["djinn.managed"] == "true" then
            local ok, rerr = c:container_remove(ct.Id)
            if ok then
                nc = nc + 1
                print(string.format("removed container %s (build %s)",
                    ct.Id:sub(1, 12), tostring(ct.Labels["djinn.build"])))
            else
                eprint("djinn-lua: docker prune: container ",
                       ct.Id:sub(1, 12), ": ", rerr)
                status = 1
            end
        end
    end
    list, err = c:volumes(labels)
    if list == nil then
        eprint("djinn-lua: docker prune: listing volumes: ", err)
        return 1
    end
    for _, v in ipairs(list) do
        if type(v.Labels) == "table" and
            v.Labels["djinn.managed"] == "true" then
            local ok, rerr = c:volume_remove(v.Name)
            if ok then
                nv = nv + 1
                print(string.format("removed volume %s (build %s)", v.Name,
                                    tostring(v.Labels["djinn.build"])))
            else
                eprint("djinn-lua: docker prune: volume ", v.Name, ": ",
                       rerr)
                status = 1
            end
        end
    end
    print(string.format("pruned %d container%s and %d volume%s at %s", nc,
                        nc == 1 and "" or "s", nv, nv == 1 and "" or "s",
                        c.host))
    return status
end

---------------------------------------------------------------------------
-- scripts, help, version
---------------------------------------------------------------------------
local function run_script(argv)
    local path = argv[1]
    local chunk, err = loadfile(path)
    if chunk == nil then
        eprint("djinn-lua: ", err)
        return 1
    end
    local script_arg = { [0] = path }
    for i = 2, #argv do script_arg[i - 1] = argv[i] end
    script_arg[-1] = arg and arg[0] or "djinn-lua"
    arg = script_arg -- luacheck: ignore (the global, as lua.c sets it)
    local res = table.pack(xpcall(chunk, debug.traceback,
                                  table.unpack(argv, 2)))
    if not res[1] then
        eprint("djinn-lua: ", tostring(res[2]))
        return 1
    end
    local r = res[2]
    if math.type(r) == "integer" then return r end
    if r == false then return 1 end
    if r == nil and type(res[3]) == "string" then
        -- nil, message [, code]: the operational-failure convention.
        eprint("djinn-lua: ", res[3])
        local c = math.type(res[4]) == "integer" and res[4] or 1
        return (c >= 1 and c <= 255) and c or 1
    end
    return 0
end

local function version_string()
    local djinn = require "djinn"
    return string.format("djinn-lua %s (Lua %s, SQLite %s)", djinn.version,
                         _VERSION:match("%d+%.%d+") or "5.4",
                         djinn.sqlite_version)
end

function M.main(argv)
    local cmd = argv[1]
    if cmd == nil then
        io.stderr:write(HELP.main)
        return 2
    end
    local rest = { table.unpack(argv, 2) }
    if cmd == "--version" or cmd == "version" then
        print(version_string())
        return 0
    elseif cmd == "--help" or cmd == "-h" then
        io.stdout:write(HELP.main)
        return 0
    elseif cmd == "help" then
        local topic = rest[1]
        if topic == nil then
            io.stdout:write(HELP.main)
            return 0
        end
        if HELP[topic] == nil then
            return usage_error(nil, string.format("no help for %q " ..
                "(commands: %s)", topic, table.concat(M.COMMAND_ORDER, ", ")))
        end
        io.stdout:write(HELP[topic])
        return 0
    elseif cmd == "run" then
        return cmd_run(rest)
    elseif cmd == "check" then
        return cmd_check(rest)
    elseif cmd == "image" then
        return cmd_image(rest)
    elseif cmd == "docker" then
        return cmd_docker(rest)
    elseif cmd == "release" then
        return cmd_release(rest)
    elseif queue_cli.COMMANDS[cmd] then
        return queue_cli.main(cmd, rest, parse_opts, usage_error)
    elseif cmd == "completion" then
        return require("djinn.completion").main(rest)
    elseif cmd:match("%.lua$") then
        return run_script(argv)
    end
    return usage_error(nil, string.format("unknown command %q (commands: " ..
        "%s, help; or a SCRIPT.lua)", cmd,
        table.concat(M.COMMAND_ORDER, ", ")))
end

return M
