#!/usr/bin/env python3
"""Benchmark of destination-shops: CPU, throughput and peak memory.

    bench_shops.py --bin build/destinations/shops/destination-shops [--quick]

Prints figures; never fails on time (only when a run fails or loses
records). Full mode:

* 100,000 and 1,000,000 records (20% products with variants, 80% inventory,
  10% updates) against fast_sink_shops.py, a minimal stand-in for the API
  that accepts everything at once: the destination's own cost (CPU seconds,
  CPU seconds per million records, records/s, peak RSS), and peak RSS at
  100k vs 1M to show that memory does not grow with the volume;
* the same 1,000,000 records against the Shops emulator (--rate 0): the
  end-to-end figures (the emulator's validation and storage dominate the wall
  time; its CPU is printed too), and every record applied.

--quick (CI smoke, < 60 s): 20,000 and 100,000 records against the sink,
20,000 against the emulator.

Each run uses the destination's defaults (spec.json: parts of 1000 items,
gzip, commits every 20,000 records, 4 uploads in flight, 8 MiB spool budget)
with the client-side rate limit off.
"""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from shops_helpers import (CHANNEL, CLIENT_ID, GENERATOR, LABEL_PREFIX, SECRET,  # noqa: E402
                           catalog, start_emulator)

SINK = os.path.join(lib.HERE, "fast_sink_shops.py")
RESULTS = []


def quick():
    return bool(lib.OPTIONS and lib.OPTIONS.quick)


def generate(wd, name, records, seed=1):
    """20% products, 80% inventory; returns (path, counts)."""
    out = wd.join(name + ".jsonl")
    exp = wd.join(name + ".counts.json")
    products = records // 5
    subprocess.run([sys.executable, GENERATOR, "--out", out, "--expected", exp, "--counts-only",
                    "--products", str(products), "--inventory", str(records - products),
                    "--update-rate", "0.1", "--state-every", "5000", "--locations", "6",
                    "--seed", str(seed)], check=True)
    with open(exp) as f:
        return out, json.load(f)


def bench_config(url, wd, **over):
    cfg = {"api_url": url, "client_id": CLIENT_ID, "client_secret": SECRET,
           "channel": CHANNEL, "label_prefix": LABEL_PREFIX, "requests_per_second": 0,
           "dead_letter_path": wd.join("dead-letters.jsonl"), "progress_interval_seconds": 60}
    cfg.update(over)
    return cfg


def figures(label, records, res, extra=""):
    rps = records / res.wall if res.wall > 0 else 0.0
    cpu_m = res.cpu / records * 1e6 if records else 0.0
    line = ("%-34s %9d records  wall %7.2f s  %9.0f records/s  destination CPU %6.2f s "
            "(user %.2f, sys %.2f)  %5.2f CPU s per million  peak RSS %6.1f MB%s"
            % (label, records, res.wall, rps, res.cpu, res.user, res.sys, cpu_m,
               res.maxrss_kb / 1024.0, extra))
    RESULTS.append(line)
    sys.stderr.write("\n  " + line + "\n")
    return line


class Bench(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wd = lib.Workdir(prefix="shops-bench-")
        q = quick()
        cls.small_n, cls.big_n = (20000, 100000) if q else (100000, 1000000)
        cls.emu_n = 20000 if q else 1000000
        cls.inputs = {}
        for n in sorted({cls.small_n, cls.big_n, cls.emu_n}):
            cls.inputs[n] = generate(cls.wd, "in-%d" % n, n)

    @classmethod
    def tearDownClass(cls):
        cls.wd.cleanup()
        sys.stderr.write("\n\nbench_shops figures (%s mode):\n  %s\n"
                         % ("quick" if quick() else "full", "\n  ".join(RESULTS)))

    def run_dest(self, url, n, name, timeout):
        path, counts = self.inputs[n]
        cfg_path = self.wd.write_json(name + ".config.json", bench_config(url, self.wd))
        cat_path = self.wd.write_json(name + ".catalog.json", catalog(sync_id=n))
        res = lib.run_connector(lib.binary(), ["write", "--config", cfg_path, "--catalog",
                                               cat_path], self.wd, stdin=path, name=name,
                                timeout=timeout)
        self.assertFalse(res.timed_out, res.describe())
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual(res.errors, [], res.describe())
        self.assertEqual(len(res.states), counts["states"], "not every state was emitted")
        records = sum(counts["valid_records"].values())
        got = sum(s["destinationStats"]["recordCount"] for s in res.states)
        self.assertEqual(got, records, "states count %d records, the input has %d"
                         % (got, records))
        return res, records, counts

    def test_1_fast_sink_small_vs_large(self):
        sink = lib.Server(SINK, [], name="fast-sink").start()
        try:
            rss = {}
            for n in (self.small_n, self.big_n):
                before = sink.get("/_admin/stats")
                res, records, _ = self.run_dest(sink.url, n, "sink-%d" % n, timeout=600)
                after = sink.get("/_admin/stats")
                self.assertEqual(after["items"] - before["items"], records,
                                 "the sink received %d items for %d records"
                                 % (after["items"] - before["items"], records))
                wire = after["bytes_in"] - before["bytes_in"]
                raw = after["bytes_uncompressed"] - before["bytes_uncompressed"]
                figures("fast sink", records, res,
                        "  (%d parts, %d commits, %.0f MB JSON sent as %.0f MB gzip; sink CPU "
                        "%.1f s)" % (after["parts"] - before["parts"],
                                     after["commits"] - before["commits"], raw / 1e6,
                                     wire / 1e6, after["cpu_s"] - before["cpu_s"]))
                rss[n] = res.maxrss_kb / 1024.0
            line = ("peak RSS %d records %.1f MB vs %d records %.1f MB: x%.2f for x%d records"
                    % (self.small_n, rss[self.small_n], self.big_n, rss[self.big_n],
                       rss[self.big_n] / rss[self.small_n], self.big_n // self.small_n))
            RESULTS.append(line)
            sys.stderr.write("  " + line + "\n")
        finally:
            sink.stop()

    def test_2_emulator(self):
        emu = start_emulator(rate=0)
        try:
            n = self.emu_n
            res, records, counts = self.run_dest(emu.url, n, "emulator-%d" % n,
                                                 timeout=1800)
            st = emu.get("/_admin/stats")
            self.assertEqual(st["applied_log"], records, "applied writes %d, records %d"
                             % (st["applied_log"], records))
            self.assertEqual(st["stored"], counts["distinct"])
            figures("emulator (--rate 0)", records, res,
                    "  (emulator CPU %.1f s; %d commits, %d parts)"
                    % (st["cpu_s"], st["commits"], st["parts_uploaded"]))
        finally:
            emu.stop()


if __name__ == "__main__":
    lib.main(__doc__.split("\n")[0],
             extra_args=lambda p: p.add_argument("--quick", action="store_true",
                                                 help="CI smoke sizes (< 60 s)"))
