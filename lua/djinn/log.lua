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
--   w:hold(h)             h = { command =, seconds =, ["until"] = epoch,
--                         build = id } (run --hold, issue 15): how to get
--                         a shell in the failed job's machine, and until
--                         when it is kept; JSON: a "hold" event
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
--
-- BUILD ID: log.new{ build_id = ID } (or w.build_id = ID, set later):
-- every JSON event then carries "build": ID (after "event", with the
-- other keys in byte order). Text output does not show it.
--
-- STRUCTURE: every method turns its call into an event (a table: kind +
-- fields) and sends it down one chain:
--   mask  (secrets replaced; job output masked as a stream)
--   caps  (max_output per job, with its one truncation notice)
--   sink  a text sink (Djinn's lines, colour, terminal sanitising, the
--         progress line) or a JSON sink (one object per line, encoded by
--         djinn.json, so with its one rule for invalid UTF-8).
-- Event kinds: build_start, line (a message of ours), output (job bytes),
-- job_start, job_end, build_end, warning, error, invalid_end.
local util = require "djinn.util"
local mask = require "djinn.mask"
local term = require "djinn.term"
local json = require "djinn.json"

local M = {}

M.DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024
-- OUTPUT FRAMES (the queue worker's runners set it): a JSON sink writes
-- job output not as output events but as frames, a header line
-- {"event":"output_raw"[,"build":ID],"bytes":N,"job":J} and then the N
-- bytes as they are (masked and capped, not made UTF-8), which the
-- worker stores in the build's log unchanged: `logs` prints them as `run`
-- does, with no JSON decoding, and a job's output cannot forge a line.
M.output_frames = false
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

local function now()
    local ok, proc = pcall(require, "djinn.proc")
    if ok and type(proc) == "table" and proc.now then
        return proc.now()
    end
    return os.time()
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

local function fmt_mib(n)
    return string.format("%.1f MiB", n / (1024 * 1024))
end

-- Seconds rounded to the millisecond (the JSON events' durations).
local function ms(d)
    return math.floor((d or 0) * 1000 + 0.5) / 1000
end

-- "FILE:LINE:COL: message" -> file, line, col (nil when it has none).
local function position(text)
    local file, line, col = text:match("^(.-):(%d+):(%d+): ")
    if file and file ~= "" then
        return file, tonumber(line), tonumber(col)
    end
end

local function write_flush(stream, s)
    stream:write(s)
    if stream.flush then stream:flush() end
end

---------------------------------------------------------------------------
-- The text sink: Djinn's lines on out, warnings and errors on err, the
-- progress line on err (a terminal only).
---------------------------------------------------------------------------
local Text = {}
Text.__index = Text

local function text_sink(opts, out, err)
    local s = setmetatable({ out = out, err = err }, Text)
    if opts.color == nil then
        s.color = auto_color()
    else
        s.color = opts.color and os.getenv("NO_COLOR") == nil
    end
    if opts.sanitize ~= nil then
        s.sanitize = opts.sanitize and true or false
        s.sanitize_err = s.sanitize
    else
        s.sanitize = out == io.stdout and isatty(1)
        s.sanitize_err = err == io.stderr and isatty(2)
    end
    if opts.progress ~= nil then
        s.show_progress = opts.progress and true or false
    else
        s.show_progress = err == io.stderr and isatty(2)
    end
    s.term_held = ""   -- sanitize: the start of an unfinished sequence
    s.bol = true       -- the last byte written was "\n"
    s.status_id = nil  -- the id whose status line is on the screen
    s.status_next = 0  -- proc.now() before which redraws are dropped
    return s
end

-- Erase the status line, if one is shown (before any other output).
function Text:clear_status()
    if self.status_id == nil then return end
    self.status_id = nil
    self.status_next = 0
    write_flush(self.err, "\r\27[K")
end

function Text:write(s)
    if s == "" then return end
    self:clear_status()
    write_flush(self.out, s)
    self.bol = s:sub(-1) == "\n"
end

-- A whole message of ours (it may quote the manifest, a guest's file
-- names, a cause): made safe, nothing held back.
function Text:say(s)
    if self.sanitize then
        self:flush_term()
        s = term.sanitize(s, true)
    end
    self:write(s)
end

-- Write what the output stream held back (it ends, or a line follows).
function Text:flush_term()
    local held = self.term_held
    if held ~= "" then
        self.term_held = ""
        self:write((term.sanitize(held, true)))
    end
end

function Text:begin_line()
    self:flush_term()
    if not self.bol then self:write("\n") end
end

function Text:paint(code, s)
    if self.color and code then
        return "\27[" .. code .. "m" .. s .. "\27[0m"
    end
    return s
end

function Text:to_err(msg)
    if self.sanitize_err then msg = term.sanitize(msg, true) end
    self:clear_status()
    write_flush(self.err, msg)
end

function Text:emit(ev)
    local k = ev.kind
    if k == "output" then
        local data = ev.data
        if self.sanitize then
            if self.term_held ~= "" then data = self.term_held .. data end
            data, self.term_held = term.sanitize(data)
        end
        self:write(data)
    elseif k == "line" then
        self:begin_line()
        self:say(ev.text .. "\n")
    elseif k == "job_start" then
        self:begin_line()
        self:say(self:paint("1;36", "==> " .. ev.stage .. "/" .. ev.job)
                 .. "\n")
    elseif k == "job_end" then
        self:begin_line()
        local msg = "--> " .. self:paint(status_color[ev.status], ev.status)
            .. " in " .. util.fmt_duration(ev.duration or 0)
        if ev.cause and ev.status ~= "passed" then
            msg = msg .. ": " .. ev.cause
        end
        self:say(msg .. "\n")
    elseif k == "build_end" then
        self:begin_line()
        local msg = "build " .. self:paint(status_color[ev.status], ev.status)
            .. " in " .. util.fmt_duration(ev.duration or 0)
        if ev.error then msg = msg .. ": " .. ev.error end
        self:say("\n" .. msg .. "\n")
        if #ev.not_run > 0 then
            local names = {}
            for _, j in ipairs(ev.not_run) do
                names[#names + 1] = j.stage .. "/" .. j.name
            end
            self:say("not run: " .. table.concat(names, ", ") .. "\n")
        end
        for _, w in ipairs(ev.warnings) do
            self:say("warning: " .. w .. "\n")
        end
    elseif k == "hold" then
        self:begin_line()
        self:say(string.format("\nHolding the machine for %s (until %s) " ..
            "for a look inside:\n    %s\nRelease it with Ctrl-C or: " ..
            "djinn-lua release %s\n", util.fmt_duration(ev.seconds),
            os.date("%H:%M:%S", ev["until"]), ev.command, ev.id))
    elseif k == "warning" then
        self:to_err("warning: " .. ev.message .. "\n")
    elseif k == "error" then
        self:to_err((position(ev.message) and "" or "error: ") ..
                    ev.message .. "\n")
    elseif k == "invalid_end" then
        if ev.error then self:to_err("error: " .. ev.error .. "\n") end
    end
    -- build_start: nothing in text
end

-- PROGRESS (text sink only).
function Text:progress(id, text)
    -- Not over a line the job or a message left unfinished.
    if not self.show_progress or not self.bol then return end
    local t = now()
    if self.status_id == id and t < self.status_next then return end
    text = term.sanitize(text:gsub("[\r\n]", " "), true)
    if utf8.len(text) and utf8.len(text) > 79 then
        text = text:sub(1, utf8.offset(text, 77) - 1) .. "..."
    elseif #text > 79 then
        text = text:sub(1, 76) .. "..."
    end
    self.status_id = id
    self.status_next = t + 0.1
    write_flush(self.err, "\r" .. text .. "\27[K")
end

function Text:progress_end(id)
    if self.status_id ~= nil and self.status_id == id then
        self:clear_status()
    end
end

---------------------------------------------------------------------------
-- The JSON sink: one object per line on out ({"event":KIND,...}); the
-- warnings and errors also as text on err.
---------------------------------------------------------------------------
local Json = {}
Json.__index = Json

local function json_sink(out, err)
    return setmetatable({
        out = out, err = err,
        show_progress = false, color = false, sanitize = false,
        job = nil,     -- the running job, for output events
        pending = "",  -- a held-back partial UTF-8 sequence
    }, Json)
end

function Json:event(name, fields, build)
    fields.build = build
    local body = json.encode(fields)
    if body == "{}" then
        body = '{"event":' .. json.encode(name) .. '}'
    else
        body = '{"event":' .. json.encode(name) .. ',' .. body:sub(2)
    end
    write_flush(self.out, body .. "\n")
end

-- What surrounds the quoted data of a --json output event:
-- '{"event":"output"[,"build":B],"data":' and ',"job":J}' (no newline),
-- the bytes Json:event would give ({"event","build","data","job"}: keys
-- in byte order). `logs --json` builds its output events with them too.
function M.output_event_parts(build, job)
    return '{"event":"output",' ..
        (build ~= nil and '"build":' .. json.encode(build) .. ',' or '') ..
        '"data":', ',"job":' .. (job ~= nil and json.encode(job) or 'null') ..
        '}'
end

-- Output events are the volume of a --json run (issue 13): their line is
-- written by json.quote around a head and tail made once per job, at the
-- escaper's speed instead of jansson's tree.
function Json:output(data, build)
    local job = self.job
    if M.output_frames then -- (two writes: the bytes are not copied)
        local out = self.out
        out:write('{"event":"output_raw",' ..
            (build ~= nil and '"build":' .. json.encode(build) .. ',' or '')
            .. '"bytes":' .. #data .. ',"job":' ..
            (job ~= nil and json.encode(job) or 'null') .. '}\n')
        write_flush(out, data)
        return
    end
    if self.out_head == nil or self.out_key_job ~= job or
        self.out_key_build ~= build then
        self.out_key_job, self.out_key_build = job, build
        local head, tail = M.output_event_parts(build, job)
        self.out_head, self.out_tail = head, tail .. "\n"
    end
    write_flush(self.out, json.quote(data, self.out_head, self.out_tail))
end

function Json:flush_pending(build)
    if self.pending ~= "" then
        local p = self.pending
        self.pending = ""
        self:output(p, build)
    end
end

function Json:emit(ev)
    local k, b = ev.kind, ev.build
    if k == "output" then
        if M.output_frames then -- (bytes as they are: nothing held back)
            if ev.data ~= "" then self:output(ev.data, b) end
            return
        end
        local whole, rest = util.utf8_split(self.pending .. ev.data)
        self.pending = rest
        if whole ~= "" then self:output(whole, b) end
        return
    elseif k == "build_start" then
        self:event("build_start", { manifest = ev.manifest,
                                    driver = ev.driver }, b)
        return
    elseif k == "warning" then
        write_flush(self.err, "warning: " .. ev.message .. "\n")
    elseif k == "error" then
        write_flush(self.err, (position(ev.message) and "" or "error: ") ..
                    ev.message .. "\n")
        local file, line, col = position(ev.message)
        self:event("error", { message = ev.message, file = file,
                              line = line, col = col }, b)
        return
    elseif k == "invalid_end" and ev.error then
        write_flush(self.err, "error: " .. ev.error .. "\n")
    end
    self:flush_pending(b)
    if k == "line" then
        self:output(ev.text .. "\n", b)
    elseif k == "job_start" then
        self.job = ev.job
        self:event("job_start", { job = ev.job, stage = ev.stage }, b)
    elseif k == "job_end" then
        self:event("job_end", {
            job = ev.job, stage = ev.stage, status = ev.status,
            duration = ms(ev.duration), exit_code = ev.exit_code or json.null,
        }, b)
        self.job = nil
    elseif k == "build_end" then
        local not_run = json.array()
        for _, j in ipairs(ev.not_run) do not_run[#not_run + 1] = j.name end
        self:event("build_end", {
            status = ev.status, duration = ms(ev.duration),
            error = ev.error, not_run = not_run, exit_code = ev.exit_code,
            warnings = #ev.warnings > 0 and json.array(ev.warnings) or nil,
        }, b)
    elseif k == "warning" then
        self:event("warning", { message = ev.message }, b)
    elseif k == "hold" then
        self:event("hold", { command = ev.command, seconds = ev.seconds,
                             ["until"] = ev["until"],
                             release = "djinn-lua release " .. ev.id }, b)
    elseif k == "invalid_end" then
        self:event("build_end", { status = "invalid", duration = 0,
                                  error = ev.error, exit_code = ev.code,
                                  not_run = json.array() }, b)
    end
end

function Json.progress() end
function Json.progress_end() end

---------------------------------------------------------------------------
-- The writer: the public API; events go mask -> caps -> sink.
---------------------------------------------------------------------------
function M.new(opts)
    opts = opts or {}
    local w = setmetatable({}, Writer)
    w.out = opts.out or io.stdout
    w.err = opts.err or io.stderr
    w.json = opts.json and true or false
    w.sink = w.json and json_sink(w.out, w.err)
        or text_sink(opts, w.out, w.err)
    -- What callers may read (unchanged names).
    w.color, w.sanitize = w.sink.color, w.sink.sanitize
    w.show_progress = w.sink.show_progress
    w.build_id = opts.build_id
    w.masker = mask.new(opts.secrets)
    w.max_output = opts.max_output or M.DEFAULT_MAX_OUTPUT
    w.job_bytes = 0    -- caps: output bytes of the current job so far
    w.truncated = false
    return w
end

-- A writer that discards everything (for scripts that want no output).
function M.null()
    return M.new{ out = { write = function() end }, color = false,
                  err = { write = function() end } }
end

-- The end of the chain.
function Writer:_sink(ev)
    ev.build = self.build_id
    self.sink:emit(ev)
end

-- caps: the per-job output cap (output events only).
function Writer:_cap(data)
    if data == "" or self.truncated then return end
    local cap = self.max_output
    if cap and cap > 0 and self.job_bytes + #data > cap then
        data = data:sub(1, cap - self.job_bytes)
        self.job_bytes = cap
        self.truncated = true
        if data ~= "" then self:_sink{ kind = "output", data = data } end
        self:_sink{ kind = "line", text = "[djinn: output truncated after "
                    .. fmt_mib(cap) .. "; the job keeps running]" }
        return
    end
    self.job_bytes = self.job_bytes + #data
    self:_sink{ kind = "output", data = data }
end

function Writer:_reset_caps()
    self.job_bytes, self.truncated = 0, false
end

-- mask: the output stream's held-back bytes go on before any other event.
function Writer:_flush_stream()
    local rest = self.masker:flush()
    if rest ~= "" then self:_cap(rest) end
end

-- mask: a message event (its text fields masked), then caps and sink.
function Writer:_send(ev)
    self:_flush_stream()
    self:_sink(ev)
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

function Writer:build_start(info)
    info = info or {}
    self:_sink{ kind = "build_start", manifest = info.manifest,
                driver = info.driver }
end

function Writer:line(text)
    self:_send{ kind = "line", text = self:mask(text) }
end

function Writer:output(data)
    if data == nil or data == "" then return end
    self:_cap(self.masker:feed(data))
end

function Writer:job_start(job)
    self:_flush_stream()
    self:_reset_caps()
    self:_sink{ kind = "job_start", job = job.name, stage = job.stage }
end

function Writer:job_end(job, r)
    self:_send{ kind = "job_end", job = job.name, stage = job.stage,
                status = r.status, duration = r.duration,
                exit_code = r.exit_code,
                cause = r.cause and self:mask(r.cause) }
    self:_reset_caps()
end

function Writer:build_end(r)
    local warnings = {}
    for _, w in ipairs(r.warnings or {}) do
        warnings[#warnings + 1] = self:mask(w)
    end
    self:_send{ kind = "build_end", status = r.status, duration = r.duration,
                error = r.error and self:mask(r.error),
                not_run = r.not_run or {}, warnings = warnings,
                exit_code = r.exit_code }
end

function Writer:hold(h)
    self:_send{ kind = "hold", command = self:mask(h.command),
                seconds = h.seconds, ["until"] = h["until"], id = h.build }
end

function Writer:warn(text)
    self:_send{ kind = "warning", message = self:mask(text) }
end

function Writer:invalid(errors, summary, code)
    self:_flush_stream()
    for _, e in ipairs(errors) do
        self:_sink{ kind = "error", message = self:mask(e) }
    end
    self:_sink{ kind = "invalid_end", error = summary and self:mask(summary),
                code = code or 2 }
end

-- PROGRESS: the text sink's status line (nothing in JSON).
function Writer:progress(id, text)
    self.sink:progress(id, self:mask(tostring(text)))
end

function Writer:progress_end(id)
    self.sink:progress_end(id)
end

function Writer:meter(label, total)
    local id = {}  -- a fresh id per transfer
    local t0
    return function(done, tot)
        if done == nil then
            self:progress_end(id)
            return
        end
        if not self.sink.show_progress then return end
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

return M
