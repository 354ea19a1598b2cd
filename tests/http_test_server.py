#!/usr/bin/env python3
# http_test_server.py - scriptable HTTP/1.1 server for test_http.c.
# SPDX-License-Identifier: MIT
"""Listens on 127.0.0.1, port chosen by the kernel, written to PORT_FILE.

Usage: http_test_server.py PORT_FILE

Every method is handled alike. Paths and query parameters:
  /seq?k=KEY&s=503,429,200   the n-th request for KEY answers s[n] (the last
                             entry repeats). "reset" reads the request, then
                             resets the connection (SO_LINGER 0 close).
       &ra=VALUE             adds "Retry-After: VALUE" to non-2xx answers
       &delay=MS             sleeps before answering
       &replayed=1           adds "Idempotent-Replayed: true"
       The answer body is "KEY n STATUS".
  /count?k=KEY               how many requests KEY has seen
  /conns                     how many TCP connections were accepted so far
  /echo                      answers the request body, gzip-decoded when the
                             request has Content-Encoding: gzip; headers
                             X-Echo-Encoding and X-Echo-Raw-Length describe
                             what arrived
  /headers                   answers the request headers, one per line
  /auth?good=TOKEN           200 when Authorization is "Bearer TOKEN", else
                             401 {"code":"token_expired"}
  /big?n=BYTES               answers BYTES bytes of "x"
"""

import gzip
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
COUNTS = {}
CONNS = [0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with LOCK:
            CONNS[0] += 1

    def log_message(self, format, *args):  # noqa: A002 - keep the test output clean
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reset(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def handle_any(self):
        url = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        body = self.read_body()
        if url.path == "/seq":
            key = q.get("k", "")
            seq = q.get("s", "200").split(",")
            with LOCK:
                n = COUNTS.get(key, 0)
                COUNTS[key] = n + 1
            what = seq[min(n, len(seq) - 1)]
            if "delay" in q:
                time.sleep(int(q["delay"]) / 1000.0)
            if what == "reset":
                self.reset()
                return
            status = int(what)
            headers = []
            if "ra" in q and not 200 <= status < 300:
                headers.append(("Retry-After", q["ra"]))
            if q.get("replayed") == "1":
                headers.append(("Idempotent-Replayed", "true"))
            self.reply(status, ("%s %d %d" % (key, n, status)).encode(), headers)
        elif url.path == "/count":
            with LOCK:
                n = COUNTS.get(q.get("k", ""), 0)
            self.reply(200, str(n).encode())
        elif url.path == "/conns":
            with LOCK:
                n = CONNS[0]
            self.reply(200, str(n).encode())
        elif url.path == "/echo":
            enc = self.headers.get("Content-Encoding") or ""
            data = gzip.decompress(body) if enc == "gzip" else body
            if q.get("info") == "1":
                data = ("%s %d" % (enc or "none", len(body))).encode()
            self.reply(200, data, [("X-Echo-Encoding", enc or "none"),
                                   ("X-Echo-Raw-Length", str(len(body)))])
        elif url.path == "/headers":
            text = "".join("%s: %s\n" % (k, v) for k, v in self.headers.items())
            self.reply(200, text.encode())
        elif url.path == "/auth":
            if self.headers.get("Authorization") == "Bearer " + q.get("good", ""):
                self.reply(200, b"ok")
            else:
                self.reply(401, b'{"code":"token_expired","message":"expired"}',
                           [("Content-Type", "application/json")])
        elif url.path == "/big":
            self.reply(200, b"x" * int(q.get("n", "0")))
        else:
            self.reply(404, b"no such path")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops SYNs of parallel connects


def main():
    server = Server(("127.0.0.1", 0), Handler)
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(tmp, sys.argv[1])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
