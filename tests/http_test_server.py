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
  /token?k=KEY               an OAuth 2.0 token endpoint: the n-th request for
                             KEY gets {"access_token": "tok-KEY-n-...",
                             "token_type": "Bearer", "expires_in": 3600}
       &type=T               token_type T instead
       &none=1               no access_token
       &exp=SECONDS          expires_in SECONDS (a JSON number: 1e300)
  /last?k=KEY                the body of KEY's last /token request

The server plumbing is integration/httpbase.py.
"""

import gzip
import hashlib
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import httpbase  # noqa: E402

LOCK = threading.Lock()
COUNTS = {}
LAST = {}
CONNS = [0]
TEXT = "text/plain"


class Handler(httpbase.Handler):
    server_version = "http-test-server/1"
    methods = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
    max_body = 1 << 30

    def setup(self):
        super().setup()
        with LOCK:
            CONNS[0] += 1

    def reply(self, status, body=b"", headers=()):
        self.send_bytes(status, body, headers, TEXT)

    def handle_request(self):
        q = httpbase.query_params(self.query)
        body = self.read_body()
        path = self.url_path
        if path == "/seq":
            key = q.get("k", "")
            seq = q.get("s", "200").split(",")
            with LOCK:
                n = COUNTS.get(key, 0)
                COUNTS[key] = n + 1
            what = seq[min(n, len(seq) - 1)]
            if "delay" in q:
                time.sleep(int(q["delay"]) / 1000.0)
            if what == "reset":
                self.reset_connection()
                return
            status = int(what)
            headers = []
            if "ra" in q and not 200 <= status < 300:
                headers.append(("Retry-After", q["ra"]))
            if "wr" in q and not 200 <= status < 300:
                headers.append(("X-Window-Reset", q["wr"]))
            if q.get("replayed") == "1":
                headers.append(("Idempotent-Replayed", "true"))
            self.reply(status, ("%s %d %d" % (key, n, status)).encode(), headers)
        elif path == "/count":
            with LOCK:
                n = COUNTS.get(q.get("k", ""), 0)
            self.reply(200, str(n).encode())
        elif path == "/conns":
            with LOCK:
                n = CONNS[0]
            self.reply(200, str(n).encode())
        elif path == "/echo":
            enc = self.headers.get("Content-Encoding") or ""
            data = gzip.decompress(body) if enc == "gzip" else body
            if q.get("info") == "1":
                data = ("%s %d" % (enc or "none", len(body))).encode()
            elif q.get("digest") == "1":
                data = ("%d %s" % (len(data), hashlib.sha256(data).hexdigest())).encode()
            self.reply(200, data, [("X-Echo-Encoding", enc or "none"),
                                   ("X-Echo-Raw-Length", str(len(body)))])
        elif path == "/headers":
            text = "".join("%s: %s\n" % (k, v) for k, v in self.headers.items())
            self.reply(200, text.encode())
        elif path == "/auth":
            if httpbase.bearer_token(self.headers) == q.get("good", ""):
                self.reply(200, b"ok")
            else:
                self.send_bytes(401, b'{"code":"token_expired","message":"expired"}')
        elif path == "/token":
            key = q.get("k", "")
            with LOCK:
                n = COUNTS.get(key, 0)
                COUNTS[key] = n + 1
                LAST[key] = body
            answer = {"token_type": q.get("type", "Bearer"),
                      "expires_in": float(q["exp"]) if "exp" in q else 3600}
            if q.get("none") != "1":
                answer["access_token"] = "tok-%s-%d-0123456789abcdef" % (key, n)
            self.send_bytes(200, json.dumps(answer).encode(), (), "application/json")
        elif path == "/last":
            with LOCK:
                self.reply(200, LAST.get(q.get("k", ""), b""))
        elif path == "/big":
            self.reply(200, b"x" * int(q.get("n", "0")))
        else:
            self.reply(404, b"no such path")


def main():
    server = httpbase.Server(("127.0.0.1", 0), Handler)
    return httpbase.serve(server, sys.argv[1])


if __name__ == "__main__":
    sys.exit(main())
