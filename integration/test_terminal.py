#!/usr/bin/env python3
"""The terminal experience of destination-crm360, on a pseudo-terminal.

    test_terminal.py --bin build/destinations/crm360/destination-crm360

stderr is the slave side of a pty (Python's pty module), stdout a file.

* A load of a file with the emulator slowed down: human-readable log lines
  on stderr, a live progress line redrawn at least every 2 s (records,
  bytes read, records/s, in flight, committed, rejected, percentage and
  ETA), stdout free of LOG messages; at the end a summary table per stream
  with the last acknowledged position; --report writes the same as JSON.
* SIGINT in the middle: the summary table and how to resume, exit 130.
* write with stdin on the terminal says it reads Airbyte messages from
  stdin.
"""

import json
import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from crm360_helpers import CrmCase  # noqa: E402

FRAME_RE = re.compile(r"\r\x1b\[K(\d+) records \| [0-9.]+ [kMG]B read \| \d+ rec/s \| "
                      r"in flight \d+ \| committed \d+ \| rejected \d+ \|\s+\d+% ETA \d+:\d\d")


def customers(path, n, bad_every=0):
    with open(path, "w") as f:
        for i in range(n):
            if bad_every and i % bad_every == 7:
                f.write("[%d]\n" % i)
                continue
            f.write(json.dumps({"external_id": "c%06d" % i, "brand": "b1",
                                "email": "c%d@example.com" % i,
                                "updated_at": "2024-01-01T00:00:00Z"}) + "\n")
    return path


class Terminal(CrmCase):
    def spawn(self, args, stdin_tty=False, stop_after=None):
        return lib.run_on_pty([lib.binary()] + args, self.wd, stdin_tty, stop_after)

    def slow(self, ms):
        self.emu.post("/_admin/faults", {"latency_ms": ms, "seed": 1})

    def test_progress_line_and_summary(self):
        path = customers(self.wd.join("c.jsonl"), 20000, bad_every=1000)
        self.slow(120)
        cfg = self.write_config(self.cfg(batch_size=100, max_in_flight=2), "c.json")
        report = self.wd.join("report.json")
        rc, chunks, stdout = self.spawn(["load", "--config", cfg, "--object", "customers",
                                         "--checkpoint-file", self.wd.join("ck"),
                                         "--report", report, path])
        text = "".join(c for _, c in chunks)
        self.assertEqual(rc, 0, text)
        self.assertNotIn(b'"type":"LOG"', stdout)
        frames = [(t, m) for t, c in chunks for m in FRAME_RE.finditer(c)]
        self.assertGreaterEqual(len(frames), 3, text[-2000:])
        times = [t for t, _ in frames]
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertLessEqual(max(gaps), 2.5, gaps)
        counts = [int(m.group(1)) for _, m in frames]
        self.assertEqual(counts, sorted(counts))
        # human-readable log lines, and the summary table
        self.assertRegex(text, r"\d\d:\d\d:\d\d INFO  destination-crm360 [0-9.]+: loading 1 file")
        self.assertRegex(text, r"INFO  stream\s+read\s+rejected")
        self.assertRegex(text, r"INFO  customers\s+20000\s+20")
        self.assertIn("finished after", text)
        self.assertIn("complete", text)
        with open(report) as f:
            rep = json.load(f)
        self.assertEqual(rep["outcome"], "finished")
        self.assertEqual(rep["records_read"], 20000)
        self.assertEqual(rep["rejected"], 20)
        self.assertEqual(rep["streams"], [{"name": "customers", "namespace": None,
                                           "read": 20000, "rejected": 20}])
        # request latencies per object, in the table and the report
        self.assertRegex(text, r"INFO  requests\s+count\s+retried\s+p50 ms\s+p95 ms\s+max ms")
        lat, = rep["requests_by"]
        self.assertEqual(lat["name"], "customers")
        self.assertEqual(lat["requests"], 200)
        self.assertTrue(120 <= lat["p50_ms"] <= lat["p95_ms"] <= lat["max_ms"], lat)
        self.assertRegex(text, r"INFO  customers\s+200\s+0\s+%.1f\s+%.1f\s+%.1f"
                         % (lat["p50_ms"], lat["p95_ms"], lat["max_ms"]))

    def test_sigint_prints_summary_and_resume(self):
        path = customers(self.wd.join("c.jsonl"), 40000)
        self.slow(150)
        ck = self.wd.join("ck")
        cfg = self.write_config(self.cfg(batch_size=100, max_in_flight=2), "c.json")
        rc, chunks, _ = self.spawn(["load", "--config", cfg, "--object", "customers",
                                    "--checkpoint-file", ck, path], stop_after=3.0)
        text = "".join(c for _, c in chunks)
        self.assertEqual(rc, 128 + signal.SIGINT, text[-3000:])
        self.assertIn("stopped by SIGINT after", text)
        self.assertRegex(text, r"INFO  stream\s+read\s+rejected")
        self.assertIn("resume: rerun the same command: --checkpoint-file '%s'" % ck, text)
        with open(ck) as f:
            doc = json.load(f)
        line = doc["files"][0]["line"]
        self.assertGreater(line, 0)
        self.assertIn("committed up to line %d" % line, text)

    def test_stdin_on_a_terminal(self):
        cfg = self.write_config(self.cfg(), "c.json")
        cat = self.wd.write_json("cat.json", self.default_catalog())
        rc, chunks, _ = self.spawn(["write", "--config", cfg, "--catalog", cat], stdin_tty=True)
        text = "".join(c for _, c in chunks)
        self.assertEqual(rc, 0, text)
        self.assertIn("reading Airbyte messages from stdin", text)

    def test_json_logs_when_not_a_terminal(self):
        path = customers(self.wd.join("c.jsonl"), 100)
        cfg = self.write_config(self.cfg(), "c.json")
        res = self.finish(lib.Connector(lib.binary(), ["load", "--config", cfg, "--object",
                                                       "customers", path], self.wd, name="json"))
        self.assert_ok(res)
        self.assertTrue(any(m.strip().startswith("stream") for m in res.logs()), res.logs())
        self.assertNotIn(b"\x1b[K", res.stderr)


if __name__ == "__main__":
    lib.main(__doc__)
