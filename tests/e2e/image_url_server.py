#!/usr/bin/env python3
"""image_url_server.py DOCROOT PORTFILE [CERT KEY] - the HTTP(S) server of
tests/e2e/image_url.sh (issue 14): files from DOCROOT, plus the awkward
cases a real server on the internet produces. Binds 127.0.0.1 on a free
port and writes the port to PORTFILE once it listens. Python's own
http.server does the protocol; only the cases below are written here.

  /f/NAME           DOCROOT/NAME, Content-Type application/x-qemu-disk
  /plain/NAME       DOCROOT/NAME, Content-Type application/octet-stream
  /odd/NAME         DOCROOT/NAME, Content-Type application/x-unusual
  /page             a 200 HTML page (a login form), text/html
  /trunc/NAME       Content-Length of NAME, half its bytes, then close
  /stall/NAME       Content-Length of NAME, 4096 bytes, then silence (60 s)
  /slow/NAME        NAME at 64 KiB every 0.2 s (for an interrupted import)
  /loop             302 to /loop, for ever
  /hop/N/NAME       N redirects, then /f/NAME
  /auth/NAME        NAME only with Basic user "ci" password "s3cr3t p@ss"
  /to-http/NAME     302 to http://127.0.0.1:HTTP_PORT/f/NAME (env
                    HTTP_PORT): a redirect from https down to http
  /log              every request line seen so far (the test reads it)
"""
import base64
import http.server
import os
import ssl
import sys
import time

DOCROOT, PORTFILE = sys.argv[1], sys.argv[2]
SEEN = []


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send(self, code, ctype, body, extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def file(self, name):
        path = os.path.join(DOCROOT, os.path.basename(name))
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            return None

    def redirect(self, where):
        self.send_response(302)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        SEEN.append(self.path + " auth=" +
                    ("yes" if self.headers.get("Authorization") else "no"))
        parts = self.path.split("/")[1:]
        kind, rest = parts[0], "/".join(parts[1:])
        if kind == "log":
            return self.send(200, "text/plain",
                             "\n".join(SEEN).encode() + b"\n")
        if kind == "page":
            return self.send(200, "text/html; charset=utf-8",
                             b"<html><form>login</form></html>\n" * 20)
        if kind == "loop":
            return self.redirect("/loop")
        if kind == "hop":
            n, name = int(parts[1]), parts[2]
            return self.redirect("/hop/%d/%s" % (n - 1, name) if n > 1
                                 else "/f/" + name)
        if kind == "to-http":
            return self.redirect("http://127.0.0.1:%s/f/%s" %
                                 (os.environ.get("HTTP_PORT", "1"), rest))
        data = self.file(rest)
        if data is None:
            return self.send(404, "text/html", b"<h1>Not Found</h1>\n")
        if kind == "f":
            return self.send(200, "application/x-qemu-disk", data)
        if kind == "plain":
            return self.send(200, "application/octet-stream", data)
        if kind == "odd":
            return self.send(200, "application/x-unusual", data)
        if kind == "auth":
            want = base64.b64encode(b"ci:s3cr3t p@ss").decode()
            if self.headers.get("Authorization") != "Basic " + want:
                return self.send(401, "text/plain", b"who are you?\n",
                                 [("WWW-Authenticate", 'Basic realm="ci"')])
            return self.send(200, "application/x-qemu-disk", data)
        if kind in ("trunc", "stall", "slow"):
            self.send_response(200)
            self.send_header("Content-Type", "application/x-qemu-disk")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if kind == "trunc":
                self.wfile.write(data[:len(data) // 2])
            elif kind == "stall":
                self.wfile.write(data[:4096])
                self.wfile.flush()
                time.sleep(60)
            else:
                for i in range(0, len(data), 65536):
                    self.wfile.write(data[i:i + 65536])
                    self.wfile.flush()
                    time.sleep(0.2)
            self.close_connection = True
            return
        return self.send(404, "text/html", b"<h1>Not Found</h1>\n")


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
# A client that gives up mid-body (a stall timeout, a size limit, Ctrl-C)
# is what the tests do on purpose: no traceback for it.
server.handle_error = lambda request, address: None
if len(sys.argv) > 4:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
with open(PORTFILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORTFILE + ".tmp", PORTFILE)
server.serve_forever()
