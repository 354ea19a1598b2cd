#!/usr/bin/env python3
"""The summary of destination-shops on a pseudo-terminal: a replay of a
capture with the emulator slowed down prints, after the stream table, one
row per kind of request (count, retried, p50/p95/max latency) and --report
holds the same numbers; the counts equal the emulator's.

    test_shops_terminal.py --bin build/destinations/shops/destination-shops
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_captures  # noqa: E402
import lib  # noqa: E402
from shops_helpers import ShopsCase  # noqa: E402


class ShopsTerminal(ShopsCase):
    def test_summary_has_request_latencies(self):
        self.emu.post("/_admin/faults", {"latency_ms": 60, "seed": 1})
        cfg = self.write_config(self.cfg(part_max_items=40), "c.json")
        report = self.wd.join("report.json")
        name = os.path.join(gen_captures.CAPTURES, "shops-global")
        rc, chunks, stdout = lib.run_on_pty([
            lib.binary(), "write", "--config", cfg, "--catalog", name + ".catalog.json",
            "--input", name + ".jsonl", "--report", report], self.wd)
        text = "".join(c for _, c in chunks)
        self.assertEqual(rc, 0, text[-3000:])
        self.assertNotIn(b'"type":"LOG"', stdout)
        self.assertRegex(text, r"INFO  stream\s+read\s+rejected")
        self.assertRegex(text, r"INFO  requests\s+count\s+retried\s+p50 ms\s+p95 ms\s+max ms")
        with open(report) as f:
            rep = json.load(f)
        by = {r["name"]: r for r in rep["requests_by"]}
        stats = self.stats()
        self.assertEqual(by["part uploads"]["requests"], stats["parts_uploaded"])
        self.assertGreater(stats["parts_uploaded"], 1)
        self.assertEqual(by["import creations"]["requests"], 1)
        self.assertEqual(by["import commits"]["requests"], 1)
        for kind, r in by.items():
            self.assertTrue(60 <= r["p50_ms"] <= r["p95_ms"] <= r["max_ms"], r)
            self.assertRegex(text, r"INFO  %s\s+%d\s+%d\s+%s\s+%s\s+%s" % (
                re.escape(kind), r["requests"], r["retried"], "%.1f" % r["p50_ms"],
                "%.1f" % r["p95_ms"], "%.1f" % r["max_ms"]))


if __name__ == "__main__":
    lib.main(__doc__)
