#!/usr/bin/env python3
"""Crash test of destination-crm360: SIGKILL at random points under faults.

    test_crm360_crash.py --bin build/destinations/crm360/destination-crm360 [--seed N]

A 20,000-record stream (updates and invalid records mixed in) is loaded into
the emulator with about 13% of batch requests failing (429, 500, 503,
connection reset, commit-then-drop) plus random latency. The destination is
killed with SIGKILL at >= 10 seeded random points and restarted each time the
way Airbyte does: from the last state it emitted.

* GLOBAL states: the restarted input is the original input without
  everything up to and including the line of the last emitted STATE.
* STREAM states: each stream resumes after its own last emitted state (the
  source keeps a cursor per stream), i.e. a RECORD or STATE of stream s stays
  in the input when its line is after the last emitted state of s. With one
  STREAM state per window this is the rule above applied stream by stream.

While a run goes on, a checker (the stdout reader thread) verifies each STATE
the moment it is read: every valid record of the state's scope before it in
the input is committed (the emulator's applied writes hold that key with an
updated_at at least the record's). At the end: the store equals the latest
valid version of every key, no key version was applied twice, the dead-letter
files (one per run) hold every invalid record and no valid one.
"""

import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from airbyte_input import Restarts, check_emitted_state  # noqa: E402
from crm360_helpers import (CrmCase, assert_dead_letters, assert_store_matches,  # noqa: E402
                            catalog, key_of)

FAULTS = {"rate_429": 0.03, "rate_500": 0.03, "rate_503": 0.02, "rate_reset": 0.02,
          "rate_commit_drop": 0.03, "latency_ms": 1, "latency_jitter_ms": 12, "retry_after": 1}
MIN_KILLS = 10
MAX_RUNS = 40


class Source:
    """The original input, indexed: its messages and states (what
    airbyte_input.resume_lines restarts it from) and its valid records."""

    def __init__(self, path, expected):
        self.lines = lib.read_input_lines(path)
        self.msgs = {}
        self.state_line_by_id = {}
        self.state_stream = {}      # line -> stream name, or None for GLOBAL
        self.valid = {}             # stream -> [(line, key, updated_at)]
        bad = {i["line"] for i in expected["invalid"]}
        for n, m in lib.parse_input(path):
            self.msgs[n] = m
            if m["type"] == "STATE":
                st = m["state"]
                self.state_line_by_id[st["id"]] = n
                self.state_stream[n] = (None if st["type"] == "GLOBAL"
                                        else st["stream"]["stream_descriptor"]["name"])
            elif m["type"] == "RECORD" and n not in bad:
                d = m["record"]["data"]
                self.valid.setdefault(m["record"]["stream"], []).append(
                    (n, key_of(d), d["updated_at"]))
        self.streams = sorted(self.valid)


class Checker:
    """Verifies each emitted STATE against the emulator's applied writes as
    soon as it is read. Runs in the connector's stdout reader thread."""

    def __init__(self, emu, source):
        self.emu = emu
        self.src = source
        self.mirror = {}            # (object, key) -> max applied updated_at
        self.seen = 0               # applied entries fetched so far
        self.checked = {s: 0 for s in source.streams}   # index into valid[s]
        self.failures = []
        self.states_checked = 0
        self.records_checked = 0
        self.lock = threading.Lock()
        self.begin_run([])

    def begin_run(self, run_lines):
        self.run_states = [n for n in run_lines if n in self.src.state_stream]
        self.emitted = []           # original lines of states emitted this run

    def refresh(self):
        new = self.emu.get("/_admin/applied?after_seq=%d" % self.seen)
        self.seen += len(new)
        for a in new:
            if a["status"] in ("created", "updated"):
                k = (a["object"], "%s/%s" % (a["brand"], a["external_id"]))
                if a["updated_at"] > self.mirror.get(k, ""):
                    self.mirror[k] = a["updated_at"]

    def on_line(self, raw):
        if not raw.startswith(b'{"type":"STATE"'):
            return
        with self.lock:
            try:
                self._check(json.loads(raw)["state"])
            except Exception as exc:  # keep reading; reported at the end
                self.failures.append("checker error: %r" % exc)

    def _check(self, st):
        line = check_emitted_state(self.src, st, self.run_states, self.emitted, self.failures)
        if line is None:
            return
        orig = self.src.msgs[line]["state"]
        ds = st.get("destinationStats", {})
        if ds.get("recordCount", -1) + ds.get("rejectedRecordCount", 0) != \
                orig["sourceStats"]["recordCount"]:
            self.failures.append("state at line %d: destinationStats %r, sourceStats %r"
                                 % (line, ds, orig["sourceStats"]))
        self.emitted.append(line)
        self.refresh()
        scope = self.src.state_stream[line]
        for s in ([scope] if scope else self.src.streams):
            recs = self.src.valid.get(s, [])
            i = self.checked[s]
            while i < len(recs) and recs[i][0] < line:
                n, key, ts = recs[i]
                have = self.mirror.get((s, key))
                if have is None or have < ts:
                    self.failures.append(
                        "state at line %d emitted but %s %s (line %d, updated_at %s) is not "
                        "committed (stored: %s)" % (line, s, key, n, ts, have))
                i += 1
                self.records_checked += 1
            self.checked[s] = i
        self.states_checked += 1


class Crash(CrmCase):
    def crash_run(self, state_type, seed):
        rng = random.Random(seed)
        inp, exp = lib.run_gen_stream(self.wd, customers=6000, orders=14000, invalid=40,
                                      update_rate=0.1, state_every=100,
                                      state_type=state_type, seed=seed)
        src = Source(inp, exp)
        self.emu.post("/_admin/faults", dict(FAULTS, seed=seed))
        checker = Checker(self.emu, src)
        cat_path = self.wd.write_json("catalog.json", catalog(sync_id=seed))
        # Kill plan: 12 kills once the output reaches seeded random input
        # lines (one in each twelfth of 10%..80%), a random 0-200 ms later so requests
        # are in flight, and 3 more at random times after a start (maybe
        # before any state), interleaved.
        nlines = len(src.lines)
        span = nlines * 70 // 100 // 12
        points = [nlines // 10 + i * span + rng.randrange(span) for i in range(12)]
        plans = [("line", pt, rng.uniform(0, 0.2)) for pt in points]
        for _ in range(3):
            plans.insert(rng.randrange(len(plans) + 1), ("time", rng.uniform(0.05, 1.0), 0))

        def start_run(run, lines):
            data = b"".join(src.lines[n - 1] + b"\n" for n in lines)
            cfg = self.cfg(max_in_flight=4, batch_size=100, max_retries=20,
                           request_timeout_seconds=5, connect_timeout_seconds=2,
                           dead_letter_path=self.wd.join("dl-%02d.jsonl" % run))
            cfg_path = self.write_config(cfg, "config-%02d.json" % run)
            return lib.Connector(lib.binary(), ["write", "--config", cfg_path, "--catalog",
                                                cat_path], self.wd, name="run-%02d" % run,
                                 stdin=data, on_line=checker.on_line)

        t_start = time.monotonic()
        runs = Restarts(src, checker).run(self, plans, start_run, MAX_RUNS, wait_limit=60)
        kills, results, per_run = runs.kills, runs.results, runs.per_run
        self.assertGreaterEqual(kills, MIN_KILLS)
        elapsed = time.monotonic() - t_start
        self.assertFalse(checker.failures, "%d checker failures, first: %s"
                         % (len(checker.failures), checker.failures[:5]))

        # nothing lost
        assert_store_matches(self, self.dump(), exp)
        # no key version applied twice
        applied = self.applied()
        counts = {}
        for a in applied:
            if a["status"] in ("created", "updated"):
                k = (a["object"], a["brand"], a["external_id"], a["updated_at"])
                counts[k] = counts.get(k, 0) + 1
        twice = {k: n for k, n in counts.items() if n > 1}
        self.assertFalse(twice, "%d key versions applied more than once, e.g. %s"
                         % (len(twice), list(twice.items())[:3]))
        # dead letters: every invalid record at least once, no valid one
        entries = runs.dead_letters(lambda run: self.wd.join("dl-%02d.jsonl" % run))
        assert_dead_letters(self, entries, exp["invalid"], exact=False)

        stats = self.emu.get("/_admin/stats")
        faults = stats["faults_injected"]
        batch_faults = sum(v for k, v in faults.items() if k != "latency")
        for kind in ("429", "500", "503", "reset", "commit_drop"):
            self.assertGreater(faults.get(kind, 0), 0, "no %s fault injected: %s"
                               % (kind, faults))
        reqs = stats["requests_total"]
        sys.stderr.write(
            "\n  [%s] %d runs, %d SIGKILLs, %.1f s; %d states checked live (%d records); "
            "%d requests, %d batch faults (%.0f%%) %s; %d replays; %d applied writes; "
            "%d dead letters\n  runs (states emitted, resumed at line, rc): %s\n  " % (
                state_type, len(results), kills, elapsed, checker.states_checked,
                checker.records_checked, reqs, batch_faults,
                100.0 * batch_faults / max(1, reqs), faults, stats["idempotent_replays"],
                len(applied), len(entries), per_run))
        self.assertGreaterEqual(batch_faults, 0.08 * reqs)

    def test_sigkill_restarts_global_states(self):
        self.crash_run("GLOBAL", lib.OPTIONS.seed if lib.OPTIONS else 1)

    def test_sigkill_restarts_stream_states(self):
        self.crash_run("STREAM", (lib.OPTIONS.seed if lib.OPTIONS else 1) + 1000)


if __name__ == "__main__":
    lib.main(__doc__.split("\n")[0],
             extra_args=lambda p: p.add_argument("--seed", type=int, default=1))
