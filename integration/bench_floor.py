#!/usr/bin/env python3
"""Destinations against the parse floor: CPU and instructions per record.

    bench_floor.py --crm360-bin B --shops-bin B [--records 200000,1000000]
                   [--repeat 5] [--callgrind-records 200000] [--quick]
                   [--cache-dir D]

A destination's unavoidable work per record is to parse its line. This
benchmark runs, in one go and on the same input files:

* the parse floor: `json_verify -s` (Debian's yajl-tools) on the file, which
  only parses every line;
* destination-crm360 with gzip, destination-crm360 without gzip (both on a
  customers + orders stream, the one bench_crm360.py generates) and
  destination-shops with gzip (its default) and without it (products +
  inventory, as bench_shops.py generates), each against its fast sink (integration/fast_sink*.py, a server that
  answers at once without validating, so the figures are the destination's
  own).

For every input size it prints the median CPU seconds (user + sys, of
`--repeat` runs, default 5) of the destination and of the floor, run
alternately (floor, destination, floor, ...) so that both see the same
machine, the microseconds per record and their ratio, and the destination's peak RSS
(the largest of the runs; GNU time's %M of the process alone). Then, for
`--callgrind-records` records, the instructions each executes under
`valgrind --tool=callgrind` (exact, so immune to a busy machine) and their
ratio. Every destination run must exit 0 without a TRACE error; nothing else
is asserted (figures never fail a run).

--quick (the ctest smoke): 20,000 records, 1 repeat, callgrind on 2,000.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import crm360_helpers  # noqa: E402
import shops_helpers  # noqa: E402
from bench_crm360 import gen as gen_crm360  # noqa: E402
from bench_shops import bench_config as shops_config  # noqa: E402

CRM_SINK = os.path.join(lib.HERE, "fast_sink.py")
SHOPS_SINK = os.path.join(lib.HERE, "fast_sink_shops.py")
JSON_VERIFY = "json_verify"
TIME = "/usr/bin/time"


def gen_shops(wd, records, seed, cache):
    """bench_shops' stream (20% products with variants, 80% inventory)."""
    products = records // 5
    name = "shops-%d-%d" % (records, seed)
    out_dir = cache or wd.path
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name + ".jsonl")
    if cache and os.path.exists(path):
        return path
    exp = os.path.join(out_dir, name + ".counts.json")
    subprocess.run([sys.executable, shops_helpers.GENERATOR, "--out", path, "--expected", exp,
                    "--counts-only", "--products", str(products), "--inventory",
                    str(records - products), "--update-rate", "0.1", "--state-every", "5000",
                    "--locations", "6", "--seed", str(seed)], check=True)
    os.unlink(exp)
    return path


def count_records(path):
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if b'"type":"RECORD"' in line or b'"type": "RECORD"' in line:
                n += 1
    return n


class Runner:
    def __init__(self, wd):
        self.wd = wd
        self.n = 0
        self.failures = []

    def _argv(self, kind, argv):
        self.n += 1
        out = self.wd.join("run-%d.out" % self.n)
        if kind == "time":
            tpath = self.wd.join("run-%d.time" % self.n)
            return [TIME, "-f", "%M %U %S", "-o", tpath] + argv, out, tpath
        cg = self.wd.join("run-%d.callgrind" % self.n)
        return (["valgrind", "--tool=callgrind", "--callgrind-out-file=" + cg] + argv, out, cg)

    def _run(self, label, argv, stdin_path, check_airbyte):
        """Runs argv[0] with stdout to argv[1]; False (and a failure noted)
        unless it exits 0, with no TRACE error when check_airbyte."""
        with open(stdin_path, "rb") as fin, open(argv[1], "wb") as fout, \
                open(argv[1] + ".err", "wb") as ferr:
            proc = subprocess.Popen(argv[0], stdin=fin, stdout=fout, stderr=ferr,
                                    cwd=self.wd.path)
            _, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        # wait4 counts the waited-for children of the child (GNU time's one)
        self.last_cpu = ru.ru_utime + ru.ru_stime
        ok = proc.returncode == 0
        if ok and check_airbyte:
            with open(argv[1], "rb") as f:
                for line in f:
                    if b'"TRACE"' in line:
                        m = json.loads(line)
                        if m.get("trace", {}).get("type") == "ERROR":
                            ok = False
                            break
        if not ok:
            with open(argv[1] + ".err", "rb") as f:
                tail = f.read()[-2000:].decode("utf-8", "replace")
            self.failures.append("%s: exit %d\n%s" % (label, proc.returncode, tail))
        return ok

    def time(self, label, argv, stdin_path, check_airbyte):
        """(cpu seconds, peak RSS KiB) of one run."""
        full, out, tpath = self._argv("time", argv)
        self._run(label, (full, out), stdin_path, check_airbyte)
        with open(tpath) as f:
            rss = int(f.read().split()[-3])
        return self.last_cpu, rss

    def instructions(self, label, argv, stdin_path, check_airbyte):
        full, out, cg = self._argv("callgrind", argv)
        self._run(label + " (callgrind)", (full, out), stdin_path, check_airbyte)
        total = 0
        with open(cg) as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    total = int(line.split()[1])
        os.unlink(cg)
        return total


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--crm360-bin", required=True)
    p.add_argument("--shops-bin", required=True)
    p.add_argument("--records", default="200000,1000000",
                   help="comma-separated input sizes (default 200000,1000000)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per figure (median)")
    p.add_argument("--callgrind-records", type=int, default=200000,
                   help="input size of the callgrind runs; 0 skips them")
    p.add_argument("--only", default="crm360-gzip,crm360-plain,shops,shops-plain",
                   help="comma-separated subset of crm360-gzip,crm360-plain,shops (with gzip), "
                   "shops-plain (without)")
    p.add_argument("--quick", action="store_true", help="CI smoke: 20,000 records, 1 run")
    p.add_argument("--cache-dir", default=None, help="keep generated inputs here")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    opts = p.parse_args()
    if opts.quick:
        opts.records, opts.repeat, opts.callgrind_records = "20000", 1, 2000
    sizes = [int(x) for x in opts.records.split(",") if x]
    only = set(opts.only.split(","))
    t0 = time.monotonic()
    wd = lib.Workdir(prefix="bench-floor-")
    run = Runner(wd)
    crm_bin = os.path.abspath(opts.crm360_bin)
    shops_bin = os.path.abspath(opts.shops_bin)

    def crm_args(url, gzip):
        cfg = {"api_url": url, "api_key": crm360_helpers.API_KEY, "requests_per_second": 0,
               "dead_letter_path": wd.join("dl.jsonl"), "batch_size": 500,
               "max_in_flight": 8, "max_retries": 5, "request_timeout_seconds": 120,
               "progress_interval_seconds": 3600, "gzip": gzip}
        c = wd.write_json("crm-%s.config.json" % gzip, cfg)
        k = wd.write_json("crm.catalog.json", crm360_helpers.catalog())
        return [crm_bin, "write", "--config", c, "--catalog", k]

    def shops_args(url, n, gzip):
        c = wd.write_json("shops-%s.config.json" % gzip, shops_config(url, wd, gzip=gzip))
        k = wd.write_json("shops-%d.catalog.json" % n, shops_helpers.catalog(sync_id=n))
        return [shops_bin, "write", "--config", c, "--catalog", k]

    rows = []
    sinks = []
    try:
        crm_sink = lib.Server(CRM_SINK, [], name="fast-sink").start()
        sinks.append(crm_sink)
        shops_sink = lib.Server(SHOPS_SINK, [], name="fast-sink-shops").start()
        sinks.append(shops_sink)
        cases = []
        all_sizes = sorted(set(sizes) | ({opts.callgrind_records} - {0}))
        for n in all_sizes:
            crm_in = gen_crm360(wd, n, 5, opts.cache_dir)
            shops_in = gen_shops(wd, n, 1, opts.cache_dir)
            if "crm360-gzip" in only:
                cases.append((n, "crm360 gzip", crm_in, lambda n: crm_args(crm_sink.url, True)))
            if "crm360-plain" in only:
                cases.append((n, "crm360 no gzip", crm_in,
                              lambda n: crm_args(crm_sink.url, False)))
            if "shops" in only:
                cases.append((n, "shops gzip", shops_in,
                              lambda n: shops_args(shops_sink.url, n, True)))
            if "shops-plain" in only:
                cases.append((n, "shops no gzip", shops_in,
                              lambda n: shops_args(shops_sink.url, n, False)))
        floors = {}
        for n, name, path, argv in cases:
            recs = count_records(path)
            if n in sizes:
                # the floor and the destination alternate, run by run: each
                # ratio compares runs made side by side, whatever else the
                # machine does meanwhile
                ts = []
                dest = []
                for _ in range(opts.repeat):
                    ts.append(run.time("json_verify", [JSON_VERIFY, "-s"], path, False)[0])
                    dest.append(run.time("%s %d" % (name, n), argv(n), path, True))
                cpu = statistics.median(d[0] for d in dest)
                row = {"name": name, "records": recs, "size": n, "cpu": cpu,
                       "floor": statistics.median(ts), "rss_kb": max(d[1] for d in dest),
                       "mb": os.path.getsize(path) / 1e6}
                rows.append(row)
                sys.stderr.write("  %-15s %8d records: %.3f s CPU (%.2f us/record), floor %.3f s, "
                                 "x%.2f, peak RSS %.1f MiB\n"
                                 % (name, recs, cpu, cpu * 1e6 / recs, row["floor"],
                                    cpu / row["floor"], row["rss_kb"] / 1024.0))
            if n == opts.callgrind_records:
                key = ("ir", path)
                if key not in floors:
                    floors[key] = run.instructions("json_verify", [JSON_VERIFY, "-s"], path,
                                                   False)
                ir = run.instructions("%s %d" % (name, n), argv(n), path, True)
                rows.append({"name": name, "records": recs, "size": n, "ir": ir,
                             "ir_floor": floors[key]})
                sys.stderr.write("  %-15s %8d records: %d instructions (%.0f per record), floor "
                                 "%d, x%.2f\n" % (name, recs, ir, ir / recs, floors[key],
                                                  ir / floors[key]))
    finally:
        for s in sinks:
            s.stop()
    print()
    print("CPU, median of %d runs; peak RSS, the largest" % opts.repeat)
    fmt = "%-15s %9s %7s %9s %9s %9s %9s %7s %10s"
    print(fmt % ("destination", "records", "MB", "CPU s", "us/rec", "floor s", "floor us",
                 "ratio", "peak RSS"))
    for r in rows:
        if "cpu" in r:
            print(fmt % (r["name"], r["records"], "%.0f" % r["mb"], "%.3f" % r["cpu"],
                         "%.2f" % (r["cpu"] * 1e6 / r["records"]), "%.3f" % r["floor"],
                         "%.2f" % (r["floor"] * 1e6 / r["records"]),
                         "x%.2f" % (r["cpu"] / r["floor"]), "%.1f MiB" % (r["rss_kb"] / 1024.0)))
    if any("ir" in r for r in rows):
        print()
        print("instructions (valgrind --tool=callgrind)")
        fmt = "%-15s %9s %14s %10s %14s %10s %7s"
        print(fmt % ("destination", "records", "Ir", "Ir/rec", "floor Ir", "floor/rec",
                     "ratio"))
        for r in rows:
            if "ir" in r:
                print(fmt % (r["name"], r["records"], r["ir"], "%.0f" % (r["ir"] / r["records"]),
                             r["ir_floor"], "%.0f" % (r["ir_floor"] / r["records"]),
                             "x%.2f" % (r["ir"] / r["ir_floor"])))
    print()
    print("-" * 70)
    print("Ran %d runs in %.1fs" % (run.n, time.monotonic() - t0))
    print()
    if run.failures:
        for f in run.failures:
            print("FAILED RUN: " + f)
        print("FAILED (failures=%d)" % len(run.failures))
        wd.cleanup(keep=True)
        return 1
    print("OK")
    wd.cleanup(keep=opts.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
