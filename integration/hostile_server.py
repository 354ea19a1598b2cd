#!/usr/bin/env python3
"""hostile_server.py - a server that answers every API request with a hostile body.

For the destinations' tests against a broken or malicious target: whatever
the request (a CRM360 batch or ping, a Shops token, listing, import or part),
the answer is the one the current mode gives:

    deep      400, {"error": [[[[...]]]]} nested a million deep (2 MB); to a
              token request half a million deep (1 MB), within the 1 MiB a
              client reads of a token answer
    huge      200, a 65 MiB JSON array of numbers
    not_utf8  400, {"error": {"code", "message"}} with bytes that are not UTF-8
    echo      the request quoted back: its headers (Authorization, with the
              api key or the access token) and its body (a token request's
              client_secret); a CRM360 batch gets 200 with every record
              rejected under a message quoting them, anything else 400 with
              an error message quoting them
    hang      no answer for 10 minutes (the connection stays open)
    token     a Shops token answer whose access_token is the request's
              Authorization header and body quoted (to be masked as any
              token), valid for 1e300 seconds

    hostile_server.py --port 0 --port-file F

Admin: POST /_admin/mode {"mode": "<mode>"}, POST /_admin/reset (mode
"deep"), GET /_admin/health. The plumbing is httpbase.py; standard library
only.
"""

import argparse
import json
import re
import sys
import threading
import time

import httpbase

MODES = ("deep", "huge", "not_utf8", "echo", "hang", "token")
DEPTH = 1000 * 1000
TOKEN_DEPTH = 500 * 1000
HUGE_BYTES = 65 * 1024 * 1024  # just above the clients' 64 MiB cap
_BATCH = re.compile(r"/v1/(customers|orders):(batchUpsert|batchDelete)")


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.mode = "deep"
        self.requests = 0
        self._huge = None

    def huge(self):
        with self.lock:
            if self._huge is None:
                n = (HUGE_BYTES - 2) // 2
                self._huge = b"[" + b"0," * n + b"0]"
            return self._huge


class Handler(httpbase.Handler):
    server_version = "hostile/1"
    max_body = 64 * 1024 * 1024

    def handle_request(self):
        st = self.app
        body = self.read_body()
        path = self.url_path
        if path.startswith("/_admin/"):
            self.admin(path, body)
            return
        with st.lock:
            mode = st.mode
            st.requests += 1
        if mode == "deep":
            n = TOKEN_DEPTH if path.endswith("/oauth/token") else DEPTH
            self.send_bytes(400, b'{"error":' + b"[" * n + b"]" * n + b"}")
        elif mode == "huge":
            self.send_bytes(200, st.huge())
        elif mode == "not_utf8":
            self.send_bytes(400, b'{"error":{"code":"bad_\xc0\xaf","message":"\xed\xa0\x80 '
                                 b'and \xff\xfe"}}')
        elif mode == "echo":
            self.echo(path, body)
        elif mode == "hang":
            time.sleep(600)
            self.close_connection = True
        else:
            quoted = self.quote(body)
            self.send_json(200, {"access_token": "tok_" + quoted, "token_type": "Bearer",
                                 "expires_in": 1e300})

    def quote(self, body):
        try:
            body = httpbase.decode_body(self.headers, body, 1 << 30)
        except httpbase.HttpError:
            pass
        heads = "; ".join("%s: %s" % (k, v) for k, v in self.headers.items())
        return "%s %s with %s and body %s" % (self.command, self.path, heads,
                                             body.decode("utf-8", "replace"))

    def echo(self, path, body):
        quoted = self.quote(body)
        if self.method == "POST" and _BATCH.fullmatch(path):
            try:
                recs = json.loads(httpbase.decode_body(self.headers, body, 1 << 30))["records"]
            except (ValueError, KeyError, TypeError, httpbase.HttpError):
                recs = []
            if recs:
                self.send_json(200, {
                    "batch_id": "b_hostile", "committed_at": "2026-01-01T00:00:00Z",
                    "results": [{"external_id": r.get("external_id"), "status": "rejected",
                                 "errors": [{"field": "name", "code": "invalid_format",
                                             "message": "you sent " + quoted}]}
                                for r in recs]})
                return
        self.send_json(400, httpbase.error_body("invalid_request", "you sent " + quoted))

    def admin(self, path, body):
        st = self.app
        if self.method == "GET" and path == "/_admin/health":
            self.send_json(200, {"status": "ok"})
        elif self.method == "POST" and path == "/_admin/reset":
            with st.lock:
                st.mode = "deep"
                st.requests = 0
            self.send_json(200, {"status": "reset"})
        elif self.method == "POST" and path == "/_admin/mode":
            mode = json.loads(body or b"{}").get("mode")
            if mode not in MODES:
                raise httpbase.HttpError(400, "invalid_request", "mode must be one of %s"
                                         % ", ".join(MODES))
            with st.lock:
                st.mode = mode
            self.send_json(200, {"mode": mode})
        elif self.method == "GET" and path == "/_admin/stats":
            with st.lock:
                self.send_json(200, {"mode": st.mode, "requests": st.requests})
        else:
            raise httpbase.HttpError(404, "not_found", "no such admin endpoint")


def main(argv=None):
    p = argparse.ArgumentParser(description="answers every API request with a hostile body")
    httpbase.add_server_arguments(p)
    args = p.parse_args(argv)
    server = httpbase.Server((args.host, args.port), Handler, State(),
                             tls=(args.tls_cert, args.tls_key))
    return httpbase.serve(server, args.port_file, "hostile-server: listening on " + server.url)


if __name__ == "__main__":
    sys.exit(main())
