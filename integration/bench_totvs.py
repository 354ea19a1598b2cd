#!/usr/bin/env python3
"""Benchmark of source-totvs-moda: records/s and peak RSS reading sales orders.

    bench_totvs.py --bin build/gcc/sources/totvs-moda/source-totvs-moda [--quick]

Reads every sales order (POST searches of 500, items, invoices and the
shipping address expanded) from the TOTVS Moda emulator with the rate limits
off on both sides. Full mode: 100,000 orders; --quick (the suite's smoke
run): 3,000. Prints figures; fails only when a run fails or an order is
missing or read twice. The emulator (Python) builds every page: the figures
say what the source costs (CPU seconds, peak RSS), the wall time what the
pair does.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import totvs_helpers as th  # noqa: E402


class BenchTotvs(unittest.TestCase):
    def test_orders(self):
        n = 3000 if lib.OPTIONS and lib.OPTIONS.quick else 100000
        wd = lib.Workdir("ab-bench-totvs-")
        srv = th.emulator(persons=200, companies=0, references=20, orders=n, timeout=900)
        t0 = time.monotonic()
        srv.start()
        started = time.monotonic() - t0
        try:
            cfg = th.config(srv, page_size=500, requests_per_second=0)
            args = ["read", "--config", wd.write_json("config.json", cfg),
                    "--catalog", wd.write_json("catalog.json",
                                               th.catalog({"sales_orders": "full_refresh"}))]
            conn = lib.Connector(lib.binary(), args, wd, name="bench", measure=True)
            res = conn.wait(timeout=7200)
            self.assertEqual(res.rc, 0, res.describe())
            keys = {(m["record"]["data"]["branchCode"], m["record"]["data"]["orderCode"])
                    for m in res.messages if m["type"] == "RECORD"}
            got = sum(1 for m in res.messages if m["type"] == "RECORD")
            self.assertEqual((got, len(keys)), (n, n))
            print("\nsource-totvs-moda: %d orders (%d requests) in %.1f s wall: %.0f records/s; "
                  "source CPU %.2f s (%.1f us/record); peak RSS %.1f MB; emulator start %.1f s"
                  % (n, -(-n // 500) + 1, res.wall, n / res.wall, res.cpu, 1e6 * res.cpu / n,
                     res.maxrss_kb / 1024.0, started))
            wd.cleanup()
        finally:
            srv.stop()


if __name__ == "__main__":
    lib.main(__doc__, extra_args=lambda p: p.add_argument("--quick", action="store_true"))
