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
Standard library only.
"""

import argparse
import json
import os
import re
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_BATCH = re.compile(r"/v1/(customers|orders):(batchUpsert|batchDelete)")


class State:
    def __init__(self, latency_ms):
        self.lock = threading.Lock()
        self.latency_ms = latency_ms
        self.requests = 0
        self.records = 0
        self.bytes_in = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fast-sink/1"
    sys_version = ""
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def _reply(self, status, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-RateLimit-Remaining", "1000")
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n else b""
        if "gzip" in (self.headers.get("Content-Encoding") or ""):
            data = zlib.decompress(data, 16 + zlib.MAX_WBITS)
        return data

    def do_GET(self):
        st = self.server.state
        if self.path == "/v1/ping":
            self._reply(200, {"workspace": "fast-sink", "scopes": ["read", "write"]})
        elif self.path == "/_admin/stats":
            with st.lock:
                self._reply(200, {"requests": st.requests, "records": st.records,
                                  "bytes_in": st.bytes_in})
        elif self.path == "/_admin/health":
            self._reply(200, {"status": "ok"})
        else:
            self._reply(404, {"error": {"code": "not_found", "message": "no such endpoint"}})

    def do_POST(self):
        st = self.server.state
        body = self._body()
        m = _BATCH.fullmatch(self.path)
        if m:
            recs = json.loads(body)["records"]
            status = "deleted" if m.group(2) == "batchDelete" else "created"
            ids = [r.get("external_id") if isinstance(r, dict) else None for r in recs]
            results = json.dumps([{"external_id": i, "status": status} for i in ids],
                                 separators=(",", ":")).encode()
            with st.lock:
                st.requests += 1
                st.records += len(ids)
                st.bytes_in += len(body)
                delay = st.latency_ms / 1000.0
            if delay:
                time.sleep(delay)
            self._reply(200, b'{"batch_id":"b_sink","committed_at":"2026-01-01T00:00:00Z",'
                             b'"results":' + results + b"}")
        elif self.path == "/_admin/faults":
            spec = json.loads(body or b"{}")
            with st.lock:
                st.latency_ms = float(spec.get("latency_ms", 0))
                self._reply(200, {"latency_ms": st.latency_ms})
        elif self.path == "/_admin/reset":
            with st.lock:
                st.requests = st.records = st.bytes_in = 0
            self._reply(200, {"status": "reset"})
        else:
            self._reply(404, {"error": {"code": "not_found", "message": "no such endpoint"}})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--latency-ms", type=float, default=0)
    p.add_argument("--api-key", action="append", help="accepted and ignored")
    a = p.parse_args()
    srv = Server((a.host, a.port), Handler)
    srv.state = State(a.latency_ms)
    if a.port_file:
        tmp = "%s.%d.tmp" % (a.port_file, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.replace(tmp, a.port_file)
    sys.stderr.write("fast-sink: listening on %s:%d\n" % srv.server_address[:2])
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
