-- djinn.log: the build output writer.
--
--   local w = log.new{ out = io.stdout, json = false, color = nil }
--     out    anything with :write(s) (and optionally :flush()); io.stdout
--            by default. Written and flushed as output arrives (live).
--     json   one JSON object per line instead of text (see below).
--     color  true/false; nil = auto: only when fd 1 is a terminal and
--            NO_COLOR is not set. Never in JSON mode.
--     err    where warnings go (io.stderr).
--     sanitize  true/false; nil = auto: in text mode, when out is
--            io.stdout on a terminal (fd 1); for warnings, when err is
--            io.stderr on a terminal (fd 2). See TERMINAL below.
--
-- Methods, called by the pipeline and the drivers:
--   w:build_start{ manifest = path, driver = type }
--   w:line(text)          one message line of the runner or the driver
--                         ("Running with Driver os...", "Placing object
--                         a => b", "object error: ..."); a newline is added.
--   w:output(data)        raw bytes of the running job's output
--   w:job_start(job)      job = { name =, stage = }
--   w:job_end(job, r)     r = { status =, duration =, exit_code =, cause = }
--   w:build_end(r)        r = { status =, duration =, error =, not_run = {jobs},
--                         warnings = {text...}, exit_code = }: the summary;
--                         the build's load warnings are repeated in it
--   w:warn(text)          "warning: text" on err (also in JSON mode, where
--                         a "warning" event goes to out as well)
--   w:invalid(errors, summary, code)  the build cannot start (an invalid
--                         manifest, driver.conf or option): each error on
--                         err (as is when it has FILE:LINE:COL, else
--                         "error: "), then "error: summary"; in JSON mode
--                         also an "error" event per error and a build_end
--                         with status "invalid" on out (issue 11: --json
--                         printed nothing on stdout for such a build)
--   w:mask(text)          text with every secret replaced (djinn.mask)
--   w:progress(id, text)  a status line for a long wait (see PROGRESS)
--   w:progress_end(id)
--   w:meter(label, total) -> function(done [, total])  (see PROGRESS)
--
-- PROGRESS (issue 11, item 4.10): one status line on stderr that is
-- redrawn in place while something slow runs (a boot, a large transfer,
-- an image copy), on a terminal only.
--   w:progress(id, text)  shows text ("Booting: 3.2s") as the status line
--        of `id` (any string naming the activity), replacing what the line
--        showed before (another id's too). Redraws are throttled to 10 a
--        second per writer (a call in between is dropped, except the first
--        one of a new id). The text is masked and made safe like every
--        message, cut to 79 columns, and written as "\r<text>\27[K".
--   w:progress_end(id)   erases the line if it shows `id`'s text.
--   Any other output of this writer (a line, job output, a warning, the
--   summary) erases the status line first, so it never mixes with them;
--   the next w:progress call draws it again.
--   w:meter(label, total) -> tick(done [, total]): a byte counter for a
--        transfer. tick draws "<label>: 12.5 MiB of 100.0 MiB, 5.1 MiB/s"
--        (without "of ..." when total is unknown) once the transfer has
--        run for 0.5 s (small transfers never show one); tick(nil) ends it
--        (progress_end). Give it to put/get as the progress callback.
--   Progress is shown only when this writer is in text mode and its err
--   stream is io.stderr on a terminal (fd 2); opts.progress = true/false
--   overrides that (tests). Elsewhere -- --json, a pipe, a file -- every
--   progress call does nothing, so callers need no check of their own.
--
-- SECRETS (opts.secrets = { "value", ... }): every byte this writer
-- prints -- job output, runner and driver lines, warnings, causes, the
-- summary, JSON events -- passes through one djinn.mask object, so a
-- secret value is printed as "xxxxxx". Job output is masked as a stream
-- (a value split across two reads is still found; at most len(longest)-1
-- bytes are held back, and flushed before the next line, at job end and
-- at build end).
-- OUTPUT CAP (opts.max_output bytes, default 16 MiB, 0 = none): per job
-- (and for the output before the first job). Past the cap the rest of the
-- job's output is dropped after one line "[djinn: output truncated after
-- 16.0 MiB; the job keeps running]"; the job's status is not affected.
--
-- TERMINAL (sanitize; issue 10, defect 10): job output must not drive
-- the user's terminal. Every byte printed in text mode -- job output as a
-- stream (after masking: a sequence split across two reads is held back
-- until complete, at most 66 bytes, and flushed before the next line and
-- at job and build end), runner and driver lines, causes, the summary,
-- warnings -- passes through djinn.term.sanitize: TAB, LF, CR, printable
-- text and colour (SGR: ESC [ <digits ; :> m) stay; every other C0
-- control and DEL is shown as ^X (ESC as ^[: a title, clear-screen,
-- clipboard (OSC 52) or cursor-move sequence prints as text), a C1
-- control U+0080-U+009F as \u0080.., a raw 8-bit C1 byte as \x80...
-- Chain: mask -> cap -> sanitize -> out. Output that is not a terminal
-- (a file, a pipe) keeps its bytes as they are; JSON escapes them.
--
-- Text format: Djinn's lines unchanged, plus "==> stage/job" before each
-- job, "--> <status> in 1.2s" after it, and a final "build <status> in
-- 12.3s[: <error>]" with a "not run: stage/job, ..." line when jobs were
-- left unrun, and one "warning: ..." line per load warning (the same
-- lines were printed on err before anything else).
--
-- JSON format: each line is an object whose first key is "event":
--   {"event":"build_start","driver":"os","manifest":"x.yml"}
--   {"event":"job_start","job":"test.1","stage":"test"}
--   {"event":"output","job":"test.1","data":"+ make\n"}    (job is null
--        for runner lines outside a job)
--   {"event":"job_end","job":"test.1","stage":"test","status":"passed",
--        "duration":0.52,"exit_code":0}
--   {"event":"build_end","status":"passed","duration":1.3,
--        "not_run":[...],"error":"...","exit_code":0,"warnings":[...]}
--   {"event":"warning","message":"x.yml:4:5: jobs[1]: unknown key ..."}
--   {"event":"error","message":"x.yml:3:5: env[1]: ...","file":"x.yml",
--        "line":3,"col":5}   (file/line/col when the message has them)
--   {"event":"build_end","status":"invalid","exit_code":2,"error":
--        "x.yml: invalid manifest (1 error)","not_run":[],"duration":0}
-- Output data is valid UTF-8: a multi-byte character split between two
-- reads is held back until its end arrives; invalid bytes become U+FFFD.
local util = require "djinn.util"
local mask = require "djinn.mask"
local term = require "djinn.term"

local M = {}

M.DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024
local Writer = {}
Writer.__index = Writer

local status_color = {
    passed = "32", passed_with_failures = "33", failed = "31",
    killed = "31", timed_out = "31", queued = "2", running = "36",
}

local function isatty(fd)
    local ok, proc = pcall(require, "djinn.proc")
    if not ok or type(proc) ~= "table" or not proc.isatty then
        return false
    end
    return proc.isatty(fd) == true
end

local function auto_color()
    if os.getenv("NO_COLOR") ~= nil then
        return false
    end
    return isatty(1)
end

function M.new(opts)
    opts = opts or {}
    local w = setmetatable({}, Writer)
    w.out = opts.out or io.stdout
    w.err = opts.err or io.stderr
    w.json = opts.json and true or false
    w.build_id = opts.build_id  -- every JSON event's "build" (djinn.run)
    if w.json then
        w.color = false
    elseif opts.color == nil then
        w.color = auto_color()
    else
        w.color = opts.color and os.getenv("NO_COLOR") == nil
    end
    if w.json then
        w.sanitize, w.sanitize_err = false, false
    elseif opts.sanitize ~= nil then
        w.sanitize = opts.sanitize and true or false
        w.sanitize_err = w.sanitize
    else
        w.sanitize = w.out == io.stdout and isatty(1)
        w.sanitize_err = w.err == io.stderr and isatty(2)
    end
    w.term_held = ""   -- sanitize: the start of an unfinished sequence
    w.bol = true       -- text mode: the last byte written was "\n"
    w.job = nil        -- the running job, for JSON output events
    w.pending = ""     -- JSON mode: held-back partial UTF-8 sequence
    w.masker = mask.new(opts.secrets)
    w.max_output = opts.max_output or M.DEFAULT_MAX_OUTPUT
    w.job_bytes = 0    -- output bytes of the current job so far
    w.truncated = false
    if w.json then
        w.show_progress = false
    elseif opts.progress ~= nil then
        w.show_progress = opts.progress and true or false
    else
        w.show_progress = w.err == io.stderr and isatty(2)
    end
    w.status_id = nil  -- the id whose status line is on the screen
    w.status_next = 0  -- proc.now() before which redraws are dropped
    return w
end

---------------------------------------------------------------------------
-- Progress (see PROGRESS above).
---------------------------------------------------------------------------
local function now()
    local ok, proc = pcall(require, "djinn.proc")
    if ok and type(proc) == "table" and proc.now then
        return proc.now()
    end
    return os.time()
end

-- Erase the status line, if one is shown (before any other output).
function Writer:_clear_status()
    if self.status_id == nil then return end
    self.status_id = nil
    self.status_next = 0
    self.err:write("\r\27[K")
    if self.err.flush then self.err:flush() end
end

function Writer:progress(id, text)
    -- Not over a line the job or a message left unfinished.
    if not self.show_progress or not self.bol then return end
    local t = now()
    if self.status_id == id and t < self.status_next then return end
    text = term.sanitize(self.masker:mask(tostring(text)):gsub("[\r\n]", " "),
                         true)
    if utf8.len(text) and utf8.len(text) > 79 then
        text = text:sub(1, utf8.offset(text, 77) - 1) .. "..."
    elseif #text > 79 then
        text = text:sub(1, 76) .. "..."
    end
    self.status_id = id
    self.status_next = t + 0.1
    self.err:write("\r" .. text .. "\27[K")
    if self.err.flush then self.err:flush() end
end

function Writer:progress_end(id)
    if self.status_id ~= nil and self.status_id == id then
        self:_clear_status()
    end
end

local function fmt_bytes(n)
    if n >= 1024 * 1024 * 1024 then
        return string.format("%.2f GiB", n / (1024 * 1024 * 1024))
    elseif n >= 1024 * 1024 then
        return string.format("%.1f MiB", n / (1024 * 1024))
    elseif n >= 1024 then
        return string.format("%.1f KiB", n / 1024)
    end
    return string.format("%d B", n)
end
M.fmt_bytes = fmt_bytes

function Writer:meter(label, total)
    local id = {}  -- a fresh id per transfer
    local t0
    return function(done, tot)
        if done == nil then
            self:progress_end(id)
            return
        end
        if not self.show_progress then return end
        local t = now()
        t0 = t0 or t
        tot = tot or total
        if t - t0 < 0.5 then return end
        local rate = done / math.max(t - t0, 0.001)
        local text = label .. ": " .. fmt_bytes(done)
        if tot then text = text .. " of " .. fmt_bytes(tot) end
        self:progress(id, text .. ", " .. fmt_bytes(rate) .. "/s")
    end
end

-- A writer that discards everything (for scripts that want no output).
function M.null()
    return M.new{ out = { write = function() end }, color = false,
                  err = { write = function() end } }
end

function Writer:_write(s)
    if s == "" then return end
    if self.status_id then self:_clear_status() end
    self.out:write(s)
    if self.out.flush then self.out:flush() end
    if not self.json then
        self.bol = s:sub(-1) == "\n"
    end
end

-- Text mode: a whole message of ours (it may quote the manifest, a
-- guest's file names, a cause): made safe, nothing held back.
function Writer:_say(s)
    if self.sanitize then
        self:_flush_term()
        s = term.sanitize(s, true)
    end
    self:_write(s)
end

-- Text mode: job output, as a stream.
function Writer:_stream(data)
    if self.sanitize then
        local held = self.term_held
        if held ~= "" then data = held .. data end
        data, self.term_held = term.sanitize(data)
    end
    self:_write(data)
end

-- Write what _stream held back (the stream ends, or a line follows).
function Writer:_flush_term()
    local held = self.term_held
    if held ~= "" then
        self.term_held = ""
        self:_write((term.sanitize(held, true)))
    end
end

function Writer:_paint(code, s)
    if self.color and code then
        return "\27[" .. code .. "m" .. s .. "\27[0m"
    end
    return s
end

function Writer:_event(name, fields)
    fields = fields or {}
    if self.build_id ~= nil then fields.build = self.build_id end
    local body = util.json(fields)
    if body == "{}" then
        body = '{"event":' .. util.json(name) .. '}'
    else
        body = '{"event":' .. util.json(name) .. ',' .. body:sub(2)
    end
    self:_write(body .. "\n")
end

function Writer:_bol()
    self:_flush_term()
    if not self.bol then
        self:_write("\n")
    end
end

function Writer:mask(text)
    return self.masker:mask(text)
end

-- Add secrets (e.g. found by a driver); keeps what was already held.
function Writer:add_secrets(list)
    local all = {}
    for _, s in ipairs(self.masker.secrets) do all[#all + 1] = s end
    for _, s in ipairs(list) do all[#all + 1] = s end
    local held = self.masker.held
    self.masker = mask.new(all)
    self.masker.held = held
end

local function fmt_mib(n)
    return string.format("%.1f MiB", n / (1024 * 1024))
end

-- Write masked output bytes, enforcing the per-job cap.
function Writer:_emit(data)
    if data == "" or self.truncated then return end
    local cap = self.max_output
    if cap and cap > 0 and self.job_bytes + #data > cap then
        data = data:sub(1, cap - self.job_bytes)
        self.job_bytes = cap
        self.truncated = true
        self:_emit_raw(data)
        self:_notice("[djinn: output truncated after " .. fmt_mib(cap) ..
                     "; the job keeps running]")
        return
    end
    self.job_bytes = self.job_bytes + #data
    self:_emit_raw(data)
end

function Writer:_emit_raw(data)
    if data == "" then return end
    if self.json then
        local whole, rest = util.utf8_split(self.pending .. data)
        self.pending = rest
        if whole ~= "" then
            self:_event("output", { job = self.job or util.json_null,
                                    data = whole })
        end
    else
        self:_stream(data)
    end
end

-- Flush the stream masker's held-back bytes.
function Writer:_flush_stream()
    local rest = self.masker:flush()
    if rest ~= "" then self:_emit(rest) end
end

function Writer:_notice(text)
    if self.json then
        self:_flush_pending()
        self:_event("output", { job = self.job or util.json_null,
                                data = text .. "\n" })
    else
        self:_bol()
        self:_say(text .. "\n")
    end
end

function Writer:_flush_pending()
    if self.pending ~= "" then
        local p = self.pending
        self.pending = ""
        self:_event("output", { job = self.job or util.json_null,
                                data = p })
    end
end

function Writer:build_start(info)
    info = info or {}
    if self.json then
        self:_event("build_start", { manifest = info.manifest,
                                     driver = info.driver })
    end
end

function Writer:line(text)
    self:_flush_stream()
    self:_notice(self.masker:mask(text))
end

function Writer:output(data)
    if data == nil or data == "" then return end
    self:_emit(self.masker:feed(data))
end

function Writer:job_start(job)
    self:_flush_stream()
    self:_flush_pending()
    self.job = job.name
    self.job_bytes, self.truncated = 0, false
    if self.json then
        self:_event("job_start", { job = job.name, stage = job.stage })
    else
        self:_bol()
        self:_say(self:_paint("1;36", "==> " .. job.stage .. "/" ..
                              job.name) .. "\n")
    end
end

function Writer:job_end(job, r)
    self:_flush_stream()
    if self.json then
        self:_flush_pending()
        self:_event("job_end", {
            job = job.name, stage = job.stage, status = r.status,
            duration = math.floor((r.duration or 0) * 1000 + 0.5) / 1000,
            exit_code = r.exit_code or util.json_null,
        })
    else
        self:_bol()
        local msg = "--> " .. self:_paint(status_color[r.status], r.status)
            .. " in " .. util.fmt_duration(r.duration or 0)
        if r.cause and r.status ~= "passed" then
            msg = msg .. ": " .. self.masker:mask(r.cause)
        end
        self:_say(msg .. "\n")
    end
    self.job = nil
    self.job_bytes, self.truncated = 0, false
end

function Writer:build_end(r)
    self:_flush_stream()
    local rerr = r.error and self.masker:mask(r.error)
    if self.json then
        self:_flush_pending()
        local not_run = util.json_array()
        for _, j in ipairs(r.not_run or {}) do
            not_run[#not_run + 1] = j.name
        end
        local warnings = util.json_array()
        for _, w in ipairs(r.warnings or {}) do
            warnings[#warnings + 1] = self.masker:mask(w)
        end
        self:_event("build_end", {
            status = r.status,
            duration = math.floor((r.duration or 0) * 1000 + 0.5) / 1000,
            error = rerr, not_run = not_run, exit_code = r.exit_code,
            warnings = #warnings > 0 and warnings or nil,
        })
        return
    end
    self:_bol()
    local msg = "build " .. self:_paint(status_color[r.status], r.status)
        .. " in " .. util.fmt_duration(r.duration or 0)
    if rerr then
        msg = msg .. ": " .. rerr
    end
    self:_say("\n" .. msg .. "\n")
    if r.not_run and #r.not_run > 0 then
        local names = {}
        for _, j in ipairs(r.not_run) do
            names[#names + 1] = j.stage .. "/" .. j.name
        end
        self:_say("not run: " .. table.concat(names, ", ") .. "\n")
    end
    for _, w in ipairs(r.warnings or {}) do
        self:_say("warning: " .. self.masker:mask(w) .. "\n")
    end
end

function Writer:_err(msg)
    if self.sanitize_err then msg = term.sanitize(msg, true) end
    if self.status_id then self:_clear_status() end
    self.err:write(msg)
    if self.err.flush then self.err:flush() end
end

function Writer:warn(text)
    self:_flush_stream()
    local masked = self.masker:mask(text)
    self:_err("warning: " .. masked .. "\n")
    if self.json then
        self:_flush_pending()
        self:_event("warning", { message = masked })
    end
end

-- "FILE:LINE:COL: message" -> file, line, col (nil when it has none).
local function position(text)
    local file, line, col = text:match("^(.-):(%d+):(%d+): ")
    if file and file ~= "" then
        return file, tonumber(line), tonumber(col)
    end
end

function Writer:invalid(errors, summary, code)
    self:_flush_stream()
    for _, e in ipairs(errors) do
        local masked = self.masker:mask(e)
        self:_err((position(masked) and "" or "error: ") .. masked .. "\n")
        if self.json then
            local file, line, col = position(masked)
            self:_event("error", { message = masked, file = file,
                                   line = line, col = col })
        end
    end
    local msum = summary and self.masker:mask(summary)
    if msum then
        self:_err("error: " .. msum .. "\n")
    end
    if self.json then
        self:_flush_pending()
        self:_event("build_end", { status = "invalid", duration = 0,
                                   error = msum, exit_code = code or 2,
                                   not_run = util.json_array() })
    end
end

return M
