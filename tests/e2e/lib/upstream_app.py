#!/usr/bin/env python3
"""A small application server for the reverse-proxy tests (standard library only).

usage: upstream_app.py [--port N | --unix PATH]

Listens on loopback (port 0: any free one) or a Unix socket, prints
"listening PORT" (or "listening PATH") once it accepts, and serves what an
application in front of which receiptd stands would:

  GET  /page.html       an HTML page that differs on every request, setting a cookie
  GET  /private         302 to /login?next=/private without the session cookie, else a page
  GET  /login           a login form (HTML)
  POST /login           a form post: 303 to the "next" field, setting the session cookie
  GET  /api/items       JSON
  POST /api/echo        JSON: the body's length and SHA-256, and its Content-Type
  PUT|DELETE|PATCH /api/echo   the same
  GET  /download.bin    10 MiB of deterministic bytes, with Content-Length
  GET  /firmware.bin    64 KiB of deterministic bytes, with an ETag
  GET  /chunked.txt     a chunked body
  GET  /etag.txt        a text with an ETag; 304 to a matching If-None-Match
  GET|HEAD /bodiless?status=S[&length=N][&chunked=1]
                        status S (200 to HEAD, 204, 304) with no body, an ETag, and
                        Content-Length: N only when length is given (Transfer-Encoding:
                        chunked with chunked=1): what a 304 or a HEAD says of the 200
  GET  /slow?ms=N       answers after N milliseconds
  GET  /slow-body?ms=N  sends its headers, then the body after N milliseconds
  GET  /cut             declares 100000 bytes, sends 50000, closes
  GET  /cut-chunked     a chunked body that stops before its last chunk
  GET  /garbage         bytes that are no HTTP
  GET  /close           closes the connection without answering
  GET  /big-headers     an answer with 64 KiB of header fields
  GET  .../headers      JSON: the request line and every header field as received
  GET  .../headers?html=1   the same JSON in an HTML page (<pre id="seen">), with an ETag;
                        304 to a matching If-None-Match, 206 to Range: bytes=0-...
  GET  /stats           JSON: connections accepted and requests served so far
  anything else         404 (HTML)
"""

import argparse
import hashlib
import html
import json
import os
import socket
import socketserver
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DOWNLOAD_SIZE = 10 * 1024 * 1024
FIRMWARE_SIZE = 64 * 1024

STATS = {"connections": 0, "requests": 0}
STATS_LOCK = threading.Lock()
PAGE_COUNTER = [0]


def pattern(size, seed):
    """Deterministic bytes: SHA-256 in counter mode."""
    out = bytearray()
    n = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{n}".encode()).digest()
        n += 1
    return bytes(out[:size])


DOWNLOAD = pattern(DOWNLOAD_SIZE, "download")
FIRMWARE = pattern(FIRMWARE_SIZE, "firmware")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "upstream-app/1.0"

    def setup(self):
        super().setup()
        with STATS_LOCK:
            STATS["connections"] += 1

    def log_message(self, fmt, *args):
        pass

    def address_string(self):
        return "unix" if not self.client_address else str(self.client_address[0])

    # -- helpers -------------------------------------------------------------

    def send(self, status, body=b"", ctype="text/plain; charset=utf-8", headers=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def cookie(self, name):
        for part in self.headers.get("Cookie", "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == name:
                return v
        return None

    def page(self, title, text, more=""):
        return (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n<p>{text}</p>\n"
            f"{more}</body>\n</html>\n"
        )

    # -- routes --------------------------------------------------------------

    def route(self):
        with STATS_LOCK:
            STATS["requests"] += 1
        url = urllib.parse.urlsplit(self.path)
        path, query = url.path, urllib.parse.parse_qs(url.query)
        method = self.command

        if path == "/page.html" and method in ("GET", "HEAD"):
            PAGE_COUNTER[0] += 1
            n = PAGE_COUNTER[0]
            token = os.urandom(8).hex()
            self.send(200, self.page("Terms of service", f"View {n}, token {token}.",
                                     '<p><a id="download" href="/firmware.bin" download>'
                                     "Firmware</a></p>\n"),
                      "text/html; charset=utf-8",
                      [("Set-Cookie", f"visit={n}; Path=/; HttpOnly"),
                       ("Set-Cookie", "theme=dark; Path=/"),
                       ("ETag", f"\"page-{n}\""),
                       ("Last-Modified", "Mon, 01 Dec 2025 10:00:00 GMT"),
                       ("Cache-Control", "max-age=60"),
                       ("X-App", "upstream-app")])
            return
        if path == "/private" and method in ("GET", "HEAD"):
            if self.cookie("session") != "ok":
                self.send(302, "", None, [("Location", "/login?next=/private")])
            else:
                self.send(200, self.page("Private", "For members only."), "text/html; charset=utf-8")
            return
        if path == "/login" and method == "GET":
            form = ('<form method="post" action="/login"><input name="user">'
                    '<input type="hidden" name="next" value="/private"></form>')
            self.send(200, self.page("Log in", form), "text/html; charset=utf-8")
            return
        if path == "/login" and method == "POST":
            fields = urllib.parse.parse_qs(self.body().decode())
            nxt = fields.get("next", ["/"])[0]
            user = fields.get("user", [""])[0]
            if not user:
                self.send(422, json.dumps({"error": "no user"}), "application/json")
                return
            self.send(303, "", None, [("Location", nxt), ("Set-Cookie", "session=ok; Path=/; HttpOnly")])
            return
        if path == "/api/items" and method in ("GET", "HEAD"):
            self.send(200, json.dumps({"items": [{"id": 1, "name": "terms"}, {"id": 2, "name": "notice"}]}),
                      "application/json")
            return
        if path == "/api/echo" and method in ("POST", "PUT", "PATCH", "DELETE"):
            data = self.body()
            self.send(201 if method == "POST" else 200,
                      json.dumps({"method": method, "length": len(data),
                                  "sha256": hashlib.sha256(data).hexdigest(),
                                  "content_type": self.headers.get("Content-Type"),
                                  "chunked": self.headers.get("Transfer-Encoding") is not None}),
                      "application/json")
            return
        if path == "/download.bin" and method in ("GET", "HEAD"):
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(DOWNLOAD)))
            self.end_headers()
            if method == "GET":
                for i in range(0, len(DOWNLOAD), 256 * 1024):
                    self.wfile.write(DOWNLOAD[i:i + 256 * 1024])
            return
        if path == "/firmware.bin" and method in ("GET", "HEAD"):
            etag = '"fw-1"'
            if self.headers.get("If-None-Match") == etag:
                self.send(304, b"", None, [("ETag", etag)])
                return
            self.send(200, FIRMWARE, "application/octet-stream", [("ETag", etag)])
            return
        if path == "/chunked.txt" and method == "GET":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"first piece\n", b"second piece\n", b"last piece\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        if path == "/etag.txt" and method in ("GET", "HEAD"):
            etag = '"etag-1"'
            if self.headers.get("If-None-Match") == etag:
                self.send(304, b"", None, [("ETag", etag)])
                return
            self.send(200, "versioned text\n", "text/plain", [("ETag", etag)])
            return
        if path == "/bodiless" and method in ("GET", "HEAD"):
            self.send_response(int(query["status"][0]))
            self.send_header("ETag", '"bodiless-1"')
            if "length" in query:
                self.send_header("Content-Length", query["length"][0])
            if "chunked" in query:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            return
        if path == "/slow" and method == "GET":
            time.sleep(int(query.get("ms", ["1000"])[0]) / 1000)
            self.send(200, "finally\n")
            return
        if path == "/slow-body" and method == "GET":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.flush()
            time.sleep(int(query.get("ms", ["1000"])[0]) / 1000)
            self.wfile.write(b"later\n")
            return
        if path == "/cut" and method == "GET":
            self.send_response(200)
            self.send_header("Content-Type", query.get("type", ["application/octet-stream"])[0])
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 50000)
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if path == "/cut-chunked" and method == "GET":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"10\r\n<html><body>cut\r\n")
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if path == "/garbage" and method == "GET":
            self.wfile.write(b"this is not HTTP at all\r\n\r\n")
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if path == "/close" and method == "GET":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if path == "/large-headers" and method in ("GET", "HEAD"):
            # ?bytes=N: header fields of about N bytes in all, 1000 at most each
            total = int(query.get("bytes", ["0"])[0])
            fields = [(f"X-Large-{i}", "l" * min(990, total - i * 1000))
                      for i in range((total + 999) // 1000)]
            self.send(200, "large\n", "text/plain", fields)
            return
        if path == "/big-headers" and method == "GET":
            self.send(200, "big\n", "text/plain", [(f"X-Filler-{i}", "f" * 1000) for i in range(64)])
            return
        if path.endswith("/headers") and method in ("GET", "POST", "HEAD"):
            if method == "POST":
                self.body()
            seen = json.dumps({"method": method, "path": self.path,
                               "headers": [[k, v] for k, v in self.headers.items()]})
            if "html" not in query:
                self.send(200, seen, "application/json")
                return
            # A page that honours conditionals and ranges as an application would.
            etag = '"seen-1"'
            if self.headers.get("If-None-Match") == etag:
                self.send(304, b"", None, [("ETag", etag)])
                return
            body = self.page("Headers", "As received.",
                             f'<pre id="seen">{html.escape(seen, quote=False)}</pre>\n').encode()
            if (self.headers.get("Range") or "").startswith("bytes=0-"):
                self.send(206, body[:10], "text/html; charset=utf-8",
                          [("ETag", etag), ("Content-Range", f"bytes 0-9/{len(body)}")])
                return
            self.send(200, body, "text/html; charset=utf-8", [("ETag", etag)])
            return
        if path == "/stats" and method == "GET":
            with STATS_LOCK:
                body = json.dumps(STATS)
            self.send(200, body, "application/json")
            return
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            self.body()
        self.send(404, self.page("Not found", "Nothing here."), "text/html; charset=utf-8",
                  [("Set-Cookie", "seen404=1; Path=/")])

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = route


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128


class TCPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops connections under a burst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--unix")
    args = ap.parse_args()
    if args.unix:
        if os.path.exists(args.unix):
            os.unlink(args.unix)
        server = UnixServer(args.unix, Handler)
        print(f"listening {args.unix}", flush=True)
    else:
        server = TCPServer(("127.0.0.1", args.port), Handler)
        print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
