-- progress_test.lua - djinn.log's progress API (issue 11, item 4.10):
-- Writer:progress / progress_end / meter draw one status line on err, on
-- a terminal only; any other output erases it first. The real terminal
-- and pipe cases run in tests/e2e/qemu_imagespage.sh (script(1) pty).
local t = ...
local log = require "djinn.log"
local proc = require "djinn.proc"

local function sink()
  local s = { buf = {} }
  function s:write(x) self.buf[#self.buf + 1] = x end
  function s.text(self) return table.concat(self.buf) end
  return s
end

-- Shown: text on err as "\r<text>\27[K".
local out, err = sink(), sink()
local w = log.new { out = out, err = err, progress = true, color = false, sanitize = false }
w:progress("boot", "Booting: 1.0s")
t:is(err:text(), "\rBooting: 1.0s\27[K", "progress draws the status line on err")
-- Throttled: a second redraw of the same id within 0.1 s is dropped...
w:progress("boot", "Booting: 1.1s")
t:is(err:text(), "\rBooting: 1.0s\27[K", "a redraw of the same id within 0.1 s is dropped")
-- ... but a new id is drawn at once.
w:progress("xfer", "x: 1.0 MiB")
t:like(err:text(), "\rx: 1%.0 MiB\27%[K$", "a new id is drawn at once")
-- Any other output erases the line first.
w:line("Placing object a => b")
t:like(err:text(), "\27%[K\r\27%[K$", "a normal line erases the status line (on err)")
t:is(out:text(), "Placing object a => b\n", "the line itself goes to out, untouched")
-- progress_end erases only its own line.
w:progress("boot", "Booting: 2.0s")
local before = err:text()
w:progress_end("other")
t:is(err:text(), before, "progress_end of another id leaves the line")
w:progress_end("boot")
t:like(err:text(), "\r\27%[K$", "progress_end erases its own line")
-- A warning erases it too.
w:progress("boot", "Booting: 3.0s")
w:warn("careful")
t:like(err:text(), "Booting: 3%.0s\27%[K\r\27%[Kwarning: careful\n$", "a warning erases the status line first")

-- Masked, one line, cut to 79 columns.
out, err = sink(), sink()
w = log.new { out = out, err = err, progress = true, secrets = { "hunter22" } }
w:progress("m", "copying hunter22.txt\nnext")
t:is(err:text(), "\rcopying xxxxxx.txt next\27[K", "progress text is masked and kept on one line")
w:progress("long", ("y"):rep(200))
t:is(#err:text():match("\r(y+%.%.%.)\27%[K$"), 79, "progress text is cut to 79 columns")
-- Terminal escapes in a name are shown, not obeyed.
w:progress("esc", "a\27]0;title\7b")
t:ok(not err:text():find("\27]0;", 1, true), "an OSC sequence in the text is neutralised")

-- Not over an unfinished line of job output.
out, err = sink(), sink()
w = log.new { out = out, err = err, progress = true }
w:output("downloading...")
w:progress("p", "busy")
t:is(err:text(), "", "no status line while the last output line is unfinished")

-- Off: progress = false, JSON mode, and by default when err is not a tty.
for _, o in ipairs { { progress = false }, { json = true, progress = true }, {} } do
  out, err = sink(), sink()
  o.out, o.err = out, err
  w = log.new(o)
  w:progress("boot", "Booting: 1.0s")
  local tick = w:meter("x", 10)
  tick(0); tick(5); tick(nil)
  w:progress_end("boot")
  t:is(err:text(), "", "nothing drawn (" .. (o.json and "json" or o.progress == false and "progress=false" or "err not a terminal") .. ")")
end

-- meter: silent for the first 0.5 s, then bytes, total and rate.
out, err = sink(), sink()
w = log.new { out = out, err = err, progress = true }
local tick = w:meter("out/big.bin", 30 * 1024 * 1024)
tick(0)
tick(1024)
t:is(err:text(), "", "a meter shows nothing during its first 0.5 s")
proc.sleep(0.6)
tick(3 * 1024 * 1024)
t:like(err:text(), "^\rout/big%.bin: 3%.0 MiB of 30%.0 MiB, [%d.]+ [KMG]?i?B/s\27%[K$", "then bytes, total and rate")
tick(nil)
t:like(err:text(), "\r\27%[K$", "tick(nil) erases it")
local t2 = w:meter("unknown")
t2(0); proc.sleep(0.6); t2(2048)
t:like(err:text(), "\runknown: 2%.0 KiB, [%d.]+ [KMG]?i?B/s\27%[K$", "without a total: bytes and rate")
t:is(log.fmt_bytes(5), "5 B", "fmt_bytes: bytes")
t:is(log.fmt_bytes(3 * 1024 * 1024 * 1024), "3.00 GiB", "fmt_bytes: GiB")
