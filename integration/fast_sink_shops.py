#!/usr/bin/env python3
"""A minimal, fast stand-in for the Shops import API, for benchmarks.

    fast_sink_shops.py --port 0 --port-file /tmp/sink.port

It answers just what destination-shops needs to load data, as cheaply as
possible, so that the destination's own cost can be measured without the
emulator's validation and storage dominating:

* POST /oauth/token: a fixed bearer token (no credential check);
* GET /v1/channels/{ch}: 200;
* GET /v1/imports?...: no open imports;
* POST /v1/imports: a new import (the same one again for a repeated
  Idempotency-Key);
* PUT /v1/imports/{id}/parts/{n}: every item accepted; items are counted
  (gunzip, then occurrences of '"updated_at":'; --parse counts with a real
  JSON parse);
* POST /v1/imports/{id}/commit: committed, applied = the items of its parts;
* GET /v1/imports/{id}: its status; DELETE: aborted;
* GET /_admin/stats: items, parts, commits, requests, bytes received and the
  sink's own CPU seconds.

Nothing is validated or stored. The server plumbing is httpbase.py.
Standard library only.
"""

import argparse
import json
import re
import sys
import threading
import time
import zlib

import httpbase

PART_RE = re.compile(r"^/v1/imports/([^/]+)/parts/(\d+)$")
COMMIT_RE = re.compile(r"^/v1/imports/([^/]+)/commit$")
IMPORT_RE = re.compile(r"^/v1/imports/([^/?]+)$")
OBJECT_RE = re.compile(rb'"object"\s*:\s*"(products|inventory)"')


class Sink:
    def __init__(self, parse):
        self.parse = parse
        self.lock = threading.Lock()
        self.imports = {}       # id -> {"status", "parts": {n: (object, count)}}
        self.keys = {}          # idempotency key -> id
        self.n = 0
        self.stats = {"requests": 0, "items": 0, "parts": 0, "commits": 0,
                      "bytes_in": 0, "bytes_uncompressed": 0}

    def new_import(self, key, body):
        with self.lock:
            if key and key in self.keys:
                return 200, self.view(self.keys[key])
            self.n += 1
            iid = "imp_fast_%d" % self.n
            obj = {}
            try:
                obj = json.loads(body or b"{}")
            except ValueError:
                pass
            self.imports[iid] = {"status": "open", "parts": {}, "mode": obj.get("mode"),
                                 "label": obj.get("label"), "channel": obj.get("channel")}
            if key:
                self.keys[key] = iid
            return 201, self.view(iid)

    def view(self, iid):
        imp = self.imports[iid]
        return {"import_id": iid, "status": imp["status"], "mode": imp["mode"],
                "label": imp["label"], "channel": imp["channel"],
                "parts": sorted(imp["parts"]), "expires_at": "2099-01-01T00:00:00.000Z",
                "committed_at": imp.get("committed_at")}

    def count(self, raw, gz):
        data = zlib.decompress(raw, 31) if gz else raw
        m = OBJECT_RE.search(data)
        obj = m.group(1).decode() if m else "products"
        if self.parse:
            items = len(json.loads(data)["items"])
        else:
            items = data.count(b'"updated_at":')
        return obj, items, len(data)


class Handler(httpbase.Handler):
    server_version = "fast-sink-shops/1"
    methods = ("GET", "POST", "PUT", "DELETE")
    max_body = 64 * 1024 * 1024

    def send(self, status, obj):
        self.send_json(status, obj)

    def handle_request(self):
        s = self.app
        method = self.method
        raw = self.read_body()
        path = self.url_path
        with s.lock:
            s.stats["requests"] += 1
            s.stats["bytes_in"] += len(raw)
        if method == "POST" and path == "/oauth/token":
            return self.send(200, {"access_token": "fast-sink-token", "token_type": "Bearer",
                                   "expires_in": 3600})
        if method == "GET" and path == "/_admin/stats":
            with s.lock:
                st = dict(s.stats, cpu_s=round(time.process_time(), 3))
            return self.send(200, st)
        if method == "GET" and path.startswith("/v1/channels/"):
            return self.send(200, {"channel": path.split("/")[3], "name": "x",
                                   "currency": "BRL"})
        if method == "GET" and path == "/v1/imports":
            return self.send(200, {"data": [], "has_more": False})
        if method == "POST" and path == "/v1/imports":
            status, obj = s.new_import(self.headers.get("Idempotency-Key"), raw)
            return self.send(status, obj)
        m = PART_RE.match(path)
        if m and method == "PUT":
            gz = (self.headers.get("Content-Encoding") or "").lower() in ("gzip", "x-gzip")
            obj, items, size = s.count(raw, gz)
            n = int(m.group(2))
            with s.lock:
                imp = s.imports.get(m.group(1))
                if imp is None:
                    return self.send(404, {"error": {"code": "not_found", "message": ""}})
                if n not in imp["parts"]:
                    s.stats["parts"] += 1
                imp["parts"][n] = (obj, items)
                s.stats["bytes_uncompressed"] += size
            return self.send(200, {"part": n, "object": obj, "accepted": items,
                                   "rejected": []})
        m = COMMIT_RE.match(path)
        if m and method == "POST":
            with s.lock:
                imp = s.imports.get(m.group(1))
                if imp is None:
                    return self.send(404, {"error": {"code": "not_found", "message": ""}})
                applied = {"products": 0, "inventory": 0}
                for obj, items in imp["parts"].values():
                    applied[obj] += items
                if imp["status"] != "committed":
                    imp["status"] = "committed"
                    imp["committed_at"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z",
                                                        time.gmtime())
                    s.stats["commits"] += 1
                    s.stats["items"] += sum(applied.values())
                body = {"import_id": m.group(1), "status": "committed",
                        "committed_at": imp["committed_at"], "parts": len(imp["parts"]),
                        "applied": applied, "unchanged": {"products": 0, "inventory": 0},
                        "deactivated": {"products": 0, "inventory": 0}, "rejected": []}
            return self.send(200, body)
        m = IMPORT_RE.match(path)
        if m and method in ("GET", "DELETE"):
            with s.lock:
                imp = s.imports.get(m.group(1))
                if imp is None:
                    return self.send(404, {"error": {"code": "not_found", "message": ""}})
                if method == "DELETE" and imp["status"] == "open":
                    imp["status"] = "aborted"
                return self.send(200, s.view(m.group(1)))
        return self.send(404, {"error": {"code": "not_found", "message": path}})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    httpbase.add_server_arguments(p)
    p.add_argument("--parse", action="store_true", help="count items with a JSON parse")
    a = p.parse_args(argv)
    srv = httpbase.Server((a.host, a.port), Handler, Sink(a.parse), tls=(a.tls_cert, a.tls_key))
    return httpbase.serve(srv, a.port_file, "fast-sink-shops listening on " + srv.url)


if __name__ == "__main__":
    sys.exit(main())
