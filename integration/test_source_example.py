#!/usr/bin/env python3
"""source-example on the connector core: spec, check, discover, read (full
refresh, incremental from a state, a loop timer between pages), SIGTERM, and
memory while a slow consumer reads its stdout.

    python3 integration/test_source_example.py --bin build/gcc/tests/source-example
"""
import os
import signal
import subprocess
import time
import unittest

import lib


def catalog(sync_mode="incremental"):
    return {"streams": [{
        "stream": {"name": "numbers", "json_schema": {},
                   "supported_sync_modes": ["full_refresh", "incremental"]},
        "sync_mode": sync_mode, "cursor_field": ["id"], "destination_sync_mode": "append"}]}


def stream_state(cursor):
    return [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "numbers"},
                                          "stream_state": {"cursor": cursor}}}]


def rss_kb(pid):
    with open("/proc/%d/status" % pid, encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class SourceExample(unittest.TestCase):
    def setUp(self):
        self.wd = lib.Workdir("ab-src-")

    def tearDown(self):
        self.wd.cleanup(keep=lib.test_failed(self))

    def run_src(self, args, config=None, state=None, sync_mode="incremental", **kw):
        argv = list(args)
        if config is not None:
            argv += ["--config", self.wd.write_json("config.json", config)]
        if "read" in args:
            argv += ["--catalog", self.wd.write_json("catalog.json", catalog(sync_mode))]
            if state is not None:
                argv += ["--state", self.wd.write_json("state.json", state)]
        return lib.run_connector(lib.binary(), argv, self.wd, **kw)

    def assert_read_consistent(self, res, first, last):
        """Records first..last in order; every STATE covers exactly the
        records before it since the previous one; statuses in order."""
        ids = []
        since = 0
        statuses = []
        for m in res.messages:
            if m["type"] == "RECORD":
                self.assertEqual(m["record"]["stream"], "numbers")
                self.assertNotIn("namespace", m["record"])
                self.assertIsInstance(m["record"]["emitted_at"], int)
                ids.append(m["record"]["data"]["id"])
                since += 1
            elif m["type"] == "STATE":
                st = m["state"]
                self.assertEqual(st["type"], "STREAM")
                self.assertEqual(st["stream"]["stream_state"]["cursor"], ids[-1] if ids else 0)
                self.assertEqual(st["sourceStats"]["recordCount"], float(since))
                since = 0
            elif m["type"] == "TRACE" and m["trace"]["type"] == "STREAM_STATUS":
                statuses.append(m["trace"]["stream_status"]["status"])
        self.assertEqual(ids, list(range(first, last + 1)))
        self.assertEqual(since, 0, "records after the last state")
        self.assertEqual(statuses, ["STARTED", "RUNNING", "COMPLETE"])
        return ids

    def test_spec(self):
        res = self.run_src(["spec"])
        self.assertEqual(res.rc, 0, res.describe())
        spec = res.of_type("SPEC")[0]["spec"]
        self.assertIn("count", spec["connectionSpecification"]["properties"])

    def test_check(self):
        res = self.run_src(["check"], {"count": 1, "token": "good-token"})
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual(res.of_type("CONNECTION_STATUS")[0]["connectionStatus"]["status"],
                         "SUCCEEDED")
        res = self.run_src(["check"], {"count": 1, "token": "wrong"})
        self.assertEqual(res.rc, 0, res.describe())
        status = res.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
        self.assertEqual(status["status"], "FAILED")
        self.assertIn("token", status["message"])
        res = self.run_src(["check"], {"count": -1, "token": "sec"})
        status = res.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
        self.assertEqual(status["status"], "FAILED")
        self.assertIn("count", status["message"])
        self.assertIn("token", status["message"])  # too short, named, not quoted
        self.assertNotIn("sec\"", res.stdout.decode())

    def test_discover(self):
        res = self.run_src(["discover"], {"count": 1})
        self.assertEqual(res.rc, 0, res.describe())
        streams = res.of_type("CATALOG")[0]["catalog"]["streams"]
        self.assertEqual([s["name"] for s in streams], ["numbers"])
        self.assertEqual(streams[0]["source_defined_primary_key"], [["id"]])
        self.assertEqual(streams[0]["default_cursor_field"], ["id"])

    def test_commands_of_the_other_kind_are_usage_errors(self):
        res = self.run_src(["write"], {"count": 1})
        self.assertEqual(res.rc, 2)
        self.assertIn(b"command of destinations", res.stderr)

    def test_full_read(self):
        res = self.run_src(["read"], {"count": 2500, "page_size": 300, "state_every": 1000},
                           sync_mode="full_refresh")
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_read_consistent(res, 1, 2500)
        self.assertEqual(len(res.states), 3)
        est = [m["trace"]["estimate"] for m in res.of_type("TRACE")
               if m["trace"]["type"] == "ESTIMATE"]
        self.assertEqual(est, [{"name": "numbers", "type": "STREAM", "row_estimate": 2500}])

    def test_incremental_resumes_after_the_state(self):
        res = self.run_src(["read"], {"count": 50, "state_every": 7}, state=stream_state(42))
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_read_consistent(res, 43, 50)
        # nothing new: one state, no records
        res = self.run_src(["read"], {"count": 50}, state=stream_state(50))
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual(res.of_type("RECORD"), [])
        self.assertEqual(res.states[-1]["stream"]["stream_state"], {"cursor": 50})

    def test_bad_state_is_a_config_error(self):
        for state, needle in (({"not": "an array"}, "array"),
                              (stream_state("x"), "cursor")):
            res = self.run_src(["read"], {"count": 5}, state=state)
            self.assertEqual(res.rc, 1, res.describe())
            self.assertEqual(res.errors[0]["failure_type"], "config_error")
            self.assertIn(needle, res.errors[0]["message"])

    def test_timer_between_pages(self):
        t0 = time.monotonic()
        res = self.run_src(["read"], {"count": 50, "page_size": 10, "page_delay_ms": 100})
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_read_consistent(res, 1, 50)
        self.assertGreaterEqual(time.monotonic() - t0, 0.4)

    def test_sigterm_marks_the_stream_incomplete(self):
        cfg = self.wd.write_json("config.json", {"count": 1000, "page_size": 10,
                                                 "page_delay_ms": 200, "state_every": 10})
        cat = self.wd.write_json("catalog.json", catalog())
        proc = subprocess.Popen([lib.binary(), "read", "--config", cfg, "--catalog", cat],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.7)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(proc.returncode, 143)
        msgs = lib.parse_messages(out)
        statuses = [m["trace"]["stream_status"]["status"] for m in msgs
                    if m["type"] == "TRACE" and m["trace"]["type"] == "STREAM_STATUS"]
        self.assertEqual(statuses[-1], "INCOMPLETE")
        self.assertTrue(any(m["type"] == "STATE" for m in msgs))

    def test_slow_consumer_keeps_memory_bounded(self):
        """2,000,000 rows (about 150 MB of output) read at about 2 MB/s: the
        source blocks on stdout instead of buffering; its RSS stays flat."""
        cfg = self.wd.write_json("config.json", {"count": 2000000, "page_size": 5000})
        cat = self.wd.write_json("catalog.json", catalog())
        proc = subprocess.Popen([lib.binary(), "read", "--config", cfg, "--catalog", cat],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        peak = 0
        got = 0
        samples = []
        t_end = time.monotonic() + 4
        while time.monotonic() < t_end:
            chunk = proc.stdout.read(64 * 1024)
            got += len(chunk)
            kb = rss_kb(proc.pid)
            peak = max(peak, kb)
            samples.append(kb)
            time.sleep(0.03)
        self.assertIsNone(proc.poll(), "the source finished although nobody read its output")
        # the rest at full speed: memory stays where it was
        while True:
            chunk = proc.stdout.read(1 << 20)
            if not chunk:
                break
            got += len(chunk)
            if proc.poll() is None:
                peak = max(peak, rss_kb(proc.pid))
        self.assertEqual(proc.wait(timeout=60), 0)
        print("slow consumer: %d bytes read, peak RSS %.1f MB, RSS while slow %d..%d kB"
              % (got, peak / 1024.0, min(samples), max(samples)))
        self.assertGreater(got, 100 * 1000 * 1000)
        self.assertLess(peak, 16 * 1024, "peak RSS %d kB" % peak)


if __name__ == "__main__":
    lib.main(__doc__)
