#!/usr/bin/env python3
"""Benchmark of load beside write: the same records, plain JSONL vs Airbyte messages.

    bench_load.py --bin build/destinations/crm360/destination-crm360 [--records 1000000] [--quick]

The same customer records are written once as plain JSONL (one object per
line, for `load --object customers`) and once as Airbyte RECORD messages
with a STATE every 1,000 records (for `write`). Both runs go to
fast_sink.py (answers every batch "created" without validation), batch_size
500, max_in_flight 8. load also keeps a checkpoint file. CPU seconds
(user+sys) and peak RSS of the destination alone come from GNU time when
installed (wait4() otherwise). A second load of a tenth of the records
shows that peak RSS does not follow the input size.

Prints figures, never fails on time; exits non-zero only when a run fails.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from crm360_helpers import API_KEY  # noqa: E402

SINK = os.path.join(lib.HERE, "fast_sink.py")


def customer(i):
    return {"external_id": "c%08d" % i, "brand": "aurora", "email": "c%d@example.com" % i,
            "name": "Customer %d" % i, "phone": "+5511987%06d" % (i % 1000000),
            "tags": ["vip"] if i % 7 == 0 else [], "updated_at": "2026-01-01T00:00:00Z"}


def make_inputs(wd, n):
    plain = wd.join("customers-%d.jsonl" % n)
    msgs = wd.join("customers-%d.airbyte.jsonl" % n)
    enc = json.JSONEncoder(separators=(",", ":")).encode
    with open(plain, "w") as p, open(msgs, "w") as m:
        for i in range(n):
            rec = customer(i)
            p.write(enc(rec) + "\n")
            m.write(enc({"type": "RECORD", "record": {"stream": "customers", "data": rec,
                                                      "emitted_at": 1767225600000}}) + "\n")
            if (i + 1) % 1000 == 0 or i + 1 == n:
                m.write(enc({"type": "STATE", "state": {
                    "type": "STREAM", "stream": {
                        "stream_descriptor": {"name": "customers"},
                        "stream_state": {"cursor": i}},
                    "sourceStats": {"recordCount": 1000 if (i + 1) % 1000 == 0
                                    else (i + 1) % 1000}}}) + "\n")
    return plain, msgs


def catalog():
    return {"streams": [{"stream": {"name": "customers", "json_schema": {"type": "object"},
                                    "supported_sync_modes": ["incremental"]},
                         "sync_mode": "incremental", "destination_sync_mode": "append_dedup",
                         "primary_key": [["brand"], ["external_id"]], "sync_id": 1}]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--records", type=int, default=1000000)
    ap.add_argument("--quick", action="store_true", help="100,000 records")
    opts = ap.parse_args()
    lib._BINARY = os.path.abspath(opts.bin)
    n = 100000 if opts.quick else opts.records
    wd = lib.Workdir(prefix="load-bench-")
    sink = lib.Server(SINK, []).start()
    failures = []
    rows = []
    try:
        plain, msgs = make_inputs(wd, n)
        small_plain, _ = make_inputs(wd, n // 10)
        cfg = {"api_url": sink.url, "api_key": API_KEY, "requests_per_second": 0,
               "dead_letter_path": wd.join("dl.jsonl"), "batch_size": 500, "max_in_flight": 8,
               "request_timeout_seconds": 120, "progress_interval_seconds": 3600}
        cfg_path = wd.write_json("config.json", cfg)
        cat_path = wd.write_json("catalog.json", catalog())
        runs = [
            ("write (Airbyte messages)", n, ["write", "--config", cfg_path, "--catalog",
                                             cat_path], msgs),
            ("load (plain JSONL)", n, ["load", "--config", cfg_path, "--object", "customers",
                                       "--checkpoint-file", wd.join("ck1"), plain], None),
            ("load, a tenth", n // 10, ["load", "--config", cfg_path, "--object", "customers",
                                         "--checkpoint-file", wd.join("ck2"), small_plain],
             None),
        ]
        for label, recs, args, stdin in runs:
            res = lib.run_connector(lib.binary(), args, wd, stdin=stdin, name="bench",
                                    timeout=3600, measure=True)
            ok = res.rc == 0 and not res.errors
            if not ok:
                failures.append("%s: %s" % (label, res.describe()))
            rows.append((label, recs, os.path.getsize(stdin or args[-1]), res.wall, res.cpu,
                         res.maxrss_kb / 1024.0, ok))
    finally:
        sink.stop()
    fmt = "%-26s %9s %9s %8s %10s %7s %12s"
    print(fmt % ("run", "records", "input MB", "wall s", "rec/s", "CPU s", "peak RSS MB"))
    print("-" * 88)
    for label, recs, size, wall, cpu, rss, ok in rows:
        print(fmt % (label, recs, "%.0f" % (size / 1e6), "%.2f" % wall,
                     "%.0f" % (recs / wall if wall else 0), "%.2f" % cpu,
                     "%.1f%s" % (rss, "" if ok else " FAILED")))
    if len(rows) == 3:
        print("load/write CPU: %.2f; load RSS at %d vs %d records: %.1f vs %.1f MB"
              % (rows[1][4] / rows[0][4] if rows[0][4] else 0, rows[1][1], rows[2][1],
                 rows[1][5], rows[2][5]))
    if failures:
        print("\n".join(failures))
        wd.cleanup(keep=True)
        return 1
    wd.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
