#!/usr/bin/env python3
"""fast_sink.py - a minimal, fast stand-in for the CRM360 batch API.

For benchmarks of destination-crm360 itself: the Python emulator validates
and stores every record and can become the bottleneck at a million records.
This sink answers every POST /v1/{object}:batchUpsert|batchDelete with 200
and one {"external_id", "status": "created"|"deleted"} result per record,
without validation, storage or idempotency. GET /v1/ping answers a
read/write workspace. Any bearer token is accepted.

    fast_sink.py --port 0 --port-file F [--latency-ms N]

Admin: GET /_admin/stats ({"requests", "records", "bytes_in"}),
POST /_admin/faults {"latency_ms": N} (only latency), POST /_admin/reset.
The server plumbing is httpbase.py. Standard library only.
"""

import argparse
import json
import re
import sys
import threading
import time

import httpbase

_BATCH = re.compile(r"/v1/(customers|orders):(batchUpsert|batchDelete)")
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


class State:
    def __init__(self, latency_ms):
        self.lock = threading.Lock()
        self.latency_ms = latency_ms
        self.requests = 0
        self.records = 0
        self.bytes_in = 0


class Handler(httpbase.Handler):
    server_version = "fast-sink/1"
    methods = ("GET", "POST")
    max_body = 64 * 1024 * 1024

    def reply(self, status, body):
        self.send_json(status, body, (("X-RateLimit-Remaining", "1000"),))

    def handle_request(self):
        st = self.app
        path = self.url_path
        body = self.read_body()
        m = _BATCH.fullmatch(path) if self.method == "POST" else None
        if m:
            recs = json.loads(httpbase.decode_body(self.headers, body, 1 << 30))["records"]
            status = "deleted" if m.group(2) == "batchDelete" else "created"
            results = _ENCODE([{"external_id": r.get("external_id") if isinstance(r, dict)
                                else None, "status": status} for r in recs]).encode()
            with st.lock:
                st.requests += 1
                st.records += len(recs)
                st.bytes_in += len(body)
                delay = st.latency_ms / 1000.0
            if delay:
                time.sleep(delay)
            self.reply(200, b'{"batch_id":"b_sink","committed_at":"2026-01-01T00:00:00Z",'
                            b'"results":' + results + b"}")
        elif self.method == "GET" and path == "/v1/ping":
            self.reply(200, {"workspace": "fast-sink", "scopes": ["read", "write"]})
        elif self.method == "GET" and path == "/_admin/stats":
            with st.lock:
                self.reply(200, {"requests": st.requests, "records": st.records,
                                 "bytes_in": st.bytes_in})
        elif self.method == "GET" and path == "/_admin/health":
            self.reply(200, {"status": "ok"})
        elif self.method == "POST" and path == "/_admin/faults":
            spec = json.loads(body or b"{}")
            with st.lock:
                st.latency_ms = float(spec.get("latency_ms", 0))
                self.reply(200, {"latency_ms": st.latency_ms})
        elif self.method == "POST" and path == "/_admin/reset":
            with st.lock:
                st.requests = st.records = st.bytes_in = 0
            self.reply(200, {"status": "reset"})
        else:
            self.reply(404, httpbase.error_body("not_found", "no such endpoint"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    httpbase.add_server_arguments(p)
    p.add_argument("--latency-ms", type=float, default=0)
    p.add_argument("--api-key", action="append", help="accepted and ignored")
    a = p.parse_args()
    srv = httpbase.Server((a.host, a.port), Handler, State(a.latency_ms),
                          tls=(a.tls_cert, a.tls_key))
    return httpbase.serve(srv, a.port_file, "fast-sink: listening on " + srv.url)


if __name__ == "__main__":
    sys.exit(main())
