#!/usr/bin/env python3
"""Benchmark of destination-crm360: throughput, CPU and memory.

    bench_crm360.py --bin build/destinations/crm360/destination-crm360
                    [--records 1000000] [--quick] [--sink emulator|fast|both]

Prints figures, never fails on time; exits non-zero only when a run fails
(non-zero exit or a TRACE error).

1. Scaling: the same kind of stream (customers + orders, 10% updates) at
   records/10 and records, so that peak RSS can be compared across input
   sizes. Against the CRM360 emulator (--rate 0; it validates and stores
   every record and may itself be the bottleneck) and/or fast_sink.py (a
   tiny server answering every batch "created" without validation, to
   measure the destination itself).
2. Concurrency: the emulator with 20 ms injected latency per request,
   batch_size 100, max_in_flight 1 vs 8; prints the throughput ratio.

Destination CPU time (user+sys) and peak RSS come from wait4() on the
destination process alone.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from crm360_helpers import API_KEY, catalog, start_emulator  # noqa: E402

SINK = os.path.join(lib.HERE, "fast_sink.py")


def gen(wd, records, seed, cache):
    """gen_stream output of `records` records (1/3 customers), cached."""
    customers = records // 3
    orders = records - customers
    name = "bench-%d-%d-%d" % (customers, orders, seed)
    if cache:
        os.makedirs(cache, exist_ok=True)
        path = os.path.join(cache, name + ".jsonl")
        if os.path.exists(path):
            return path
    t0 = time.monotonic()
    out_dir = cache or wd.path
    path, _ = lib.run_gen_stream(out_dir, name=name, customers=customers, orders=orders,
                                 update_rate=0.1, state_every=1000, seed=seed)
    os.unlink(os.path.join(out_dir, name + ".expected.json"))
    sys.stderr.write("generated %d records in %.1f s (%s, %.0f MB)\n"
                     % (records, time.monotonic() - t0, path,
                        os.path.getsize(path) / 1e6))
    return path


class Bench:
    def __init__(self, opts):
        self.opts = opts
        self.wd = lib.Workdir(prefix="crm360-bench-")
        self.rows = []
        self.failures = []
        self.runs = 0

    def run(self, label, sink, url, inp, records, **cfg_over):
        cfg = {"api_url": url, "api_key": API_KEY, "requests_per_second": 0,
               "dead_letter_path": self.wd.join("dl.jsonl"), "batch_size": 500,
               "max_in_flight": 8, "max_retries": 5, "request_timeout_seconds": 120,
               "progress_interval_seconds": 3600}
        cfg.update(cfg_over)
        self.runs += 1
        cfg_path = self.wd.write_json("config-%d.json" % self.runs, cfg)
        cat_path = self.wd.write_json("catalog.json", catalog())
        res = lib.run_connector(lib.binary(), ["write", "--config", cfg_path, "--catalog",
                                               cat_path], self.wd, stdin=inp,
                                name="bench-%d" % self.runs, timeout=3600, measure=True)
        ok = res.rc == 0 and not res.errors
        if not ok:
            self.failures.append("%s: %s" % (label, res.describe()))
        row = {"label": label, "sink": sink, "records": records, "wall": res.wall,
               "rps": records / res.wall if res.wall else 0, "cpu": res.cpu,
               "cpu_per_m": res.cpu * 1e6 / records, "rss_mb": res.maxrss_kb / 1024.0,
               "batch": cfg["batch_size"], "inflight": cfg["max_in_flight"],
               "gzip": cfg.get("gzip", True), "ok": ok}
        self.rows.append(row)
        sys.stderr.write("  %-28s %-8s %9d rec %7.2f s %9.0f rec/s cpu %6.2f s rss %6.1f MB%s\n"
                         % (label, sink, records, row["wall"], row["rps"], row["cpu"],
                            row["rss_mb"], "" if ok else "  FAILED"))
        return row

    def table(self):
        head = ("run", "sink", "records", "batch", "infl", "wall s", "rec/s", "CPU s",
                "CPU s/M", "peak RSS MB")
        fmt = "%-26s %-8s %9s %5s %4s %7s %9s %7s %8s %11s"
        print(fmt % head)
        print("-" * 104)
        for r in self.rows:
            print(fmt % (r["label"], r["sink"], r["records"], r["batch"], r["inflight"],
                         "%.2f" % r["wall"], "%.0f" % r["rps"], "%.2f" % r["cpu"],
                         "%.2f" % r["cpu_per_m"], "%.1f" % r["rss_mb"]))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", required=True, help="destination-crm360 binary")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    if True:
        p.add_argument("--records", type=int, default=1000000)
        p.add_argument("--quick", action="store_true", help="small sizes (CI smoke, < 60 s)")
        p.add_argument("--sink", choices=("emulator", "fast", "both"), default="both")
        p.add_argument("--latency-records", type=int, default=None,
                       help="records for the latency run (default 100000, quick 4000)")
        p.add_argument("--cache-dir", default=None,
                       help="keep generated inputs here between runs")
    opts = p.parse_args()
    lib._BINARY = os.path.abspath(opts.bin)
    lib.KEEP = lib.KEEP or opts.keep
    big = 40000 if opts.quick else opts.records
    small = max(1000, big // 10)
    lat_n = opts.latency_records or (4000 if opts.quick else 100000)
    t0 = time.monotonic()
    b = Bench(opts)
    emu = sink = None
    try:
        inputs = {n: gen(b.wd, n, 5, opts.cache_dir) for n in sorted({small, big, lat_n})}
        sys.stderr.write("scaling runs:\n")
        if opts.sink in ("fast", "both"):
            sink = lib.Server(SINK, [], name="fast-sink").start()
            for n in (small, big):
                b.run("scale %d" % n, "fast", sink.url, inputs[n], n)
            sink.stop()
            sink = None
        if opts.sink in ("emulator", "both"):
            for n in (small, big):
                emu = start_emulator(rate=0)
                b.run("scale %d" % n, "emulator", emu.url, inputs[n], n)
                stats = emu.get("/_admin/stats")
                live = stats["records_live"]
                if sum(live.values()) == 0:
                    b.failures.append("emulator stored nothing")
                emu.stop()
                emu = None
        sys.stderr.write("latency runs (20 ms per request):\n")
        lat = {}
        for inflight in (1, 8):
            emu = start_emulator(rate=0)
            emu.post("/_admin/faults", {"latency_ms": 20})
            lat[inflight] = b.run("latency 20ms in_flight %d" % inflight, "emulator", emu.url,
                                  inputs[lat_n], lat_n, batch_size=100,
                                  max_in_flight=inflight)
            emu.stop()
            emu = None
    finally:
        if emu:
            emu.stop()
        if sink:
            sink.stop()
    print()
    b.table()
    print()
    rows = {(r["label"], r["sink"]): r for r in b.rows}
    for s in ("fast", "emulator"):
        a, z = rows.get(("scale %d" % small, s)), rows.get(("scale %d" % big, s))
        if a and z:
            print("peak RSS %s sink: %.1f MB at %d records, %.1f MB at %d records (x%.2f for "
                  "x%.0f input)" % (s, a["rss_mb"], small, z["rss_mb"], big,
                                    z["rss_mb"] / a["rss_mb"], big / small))
    if lat.get(1) and lat.get(8):
        print("20 ms latency, batch_size 100: max_in_flight 8 is x%.2f the throughput of "
              "max_in_flight 1 (%.0f vs %.0f rec/s)"
              % (lat[8]["rps"] / lat[1]["rps"], lat[8]["rps"], lat[1]["rps"]))
    print()
    print("-" * 70)
    print("Ran %d benchmark runs in %.1fs" % (b.runs, time.monotonic() - t0))
    print()
    if b.failures:
        for f in b.failures:
            print("FAILED RUN: " + f)
        print("FAILED (failures=%d)" % len(b.failures))
        b.wd.cleanup(keep=True)
        return 1
    print("OK")
    b.wd.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
