#!/usr/bin/env python3
"""Benchmark of source-tiny: records/s and peak RSS reading orders.

    bench_tiny.py --bin build/gcc/sources/tiny/source-tiny [--quick]

Reads every order (a list page of 100, then one detail request per order, as
Tiny requires: only the detail has the items) from the Tiny emulator with the
rate limits off on both sides. Full mode: 100,000 orders; --quick (the
suite's smoke run): 3,000. Prints figures; fails only when a run fails or an
order is missing or repeated. The emulator (Python, one thread per
connection) is the bottleneck: the figures say what the source costs (CPU
seconds, peak RSS), the wall time what the pair does.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import tiny_helpers as th  # noqa: E402


class BenchTiny(unittest.TestCase):
    def test_orders(self):
        n = 3000 if lib.OPTIONS and lib.OPTIONS.quick else 100000
        wd = lib.Workdir("ab-bench-tiny-")
        srv = th.emulator(contacts=200, products=50, orders=n, per_minute=0, timeout=600)
        t0 = time.monotonic()
        srv.start()
        started = time.monotonic() - t0
        try:
            cfg = th.config(srv, page_size=100, requests_per_second=0, max_in_flight=1)
            args = ["read", "--config", wd.write_json("config.json", cfg),
                    "--catalog", wd.write_json("catalog.json",
                                               th.catalog({"pedidos": "full_refresh"}))]
            conn = lib.Connector(lib.binary(), args, wd, name="bench", measure=True)
            res = conn.wait(timeout=7200)
            self.assertEqual(res.rc, 0, res.describe())
            ids = [m["record"]["data"]["id"]
                   for m in res.messages if m["type"] == "RECORD"]
            self.assertEqual(len(ids), n)
            self.assertEqual(len(set(ids)), n)
            print("\nsource-tiny: %d orders (%d requests) in %.1f s wall: %.0f records/s; "
                  "source CPU %.2f s (%.1f us/record); peak RSS %.1f MB; emulator start %.1f s"
                  % (n, n + (n + 99) // 100 + 1, res.wall, n / res.wall, res.cpu,
                     1e6 * res.cpu / n, res.maxrss_kb / 1024.0, started))
            wd.cleanup()
        finally:
            srv.stop()


if __name__ == "__main__":
    lib.main(__doc__, extra_args=lambda p: p.add_argument("--quick", action="store_true"))
