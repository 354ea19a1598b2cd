#!/usr/bin/env python3
"""Crash test of destination-shops: SIGKILL at random points under faults.

    test_shops_crash.py --bin build/destinations/shops/destination-shops [--seed N]

A 20,000-record merge stream (products with variants, inventory at several
locations, updates and invalid records mixed in, a STATE every 100 records) is
loaded into the emulator with more than 10% of the API requests failing (429,
500, 503, connection resets, revoked access tokens) and 25% of the commit
answers lost after the commit ran (rate_commit_drop), plus random latency. In
most runs one open import is forcibly expired while the run goes on (POST
/_admin/expire), so the destination must re-create it and upload its records
again from its spool.

The destination is killed with SIGKILL at >= 10 seeded random points and
restarted each time the way Airbyte does, from the last state it emitted:

* GLOBAL states: the new input is the original input minus everything up to
  and including the line of the last STATE the killed run emitted;
* STREAM states: each stream resumes after its own last emitted state (the
  source keeps a cursor per stream): a RECORD or STATE of stream s stays in
  the input when its line is after the last emitted state of s.

While a run goes on, a checker (the stdout reader thread) verifies each
STATE the moment it is read: it is the next state of the input, unchanged
but for destinationStats, whose counts add up to sourceStats; and every valid
record before it is applied in the emulator. At the end:

* nothing lost: the store equals the latest valid version of every key;
* nothing applied twice: each (sku[, location], updated_at) appears at most
  once in /_admin/applied;
* no state emitted before its import committed: for every emitted state,
  every valid record before it was first applied by an import whose
  committed_at is not later than the moment the state was read;
* no import of ours left open (GET /_admin/dump imports by label prefix);
* the dead letters of all runs hold every invalid record and no valid one.
"""

import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from airbyte_input import Restarts  # noqa: E402
from shops_helpers import (Checker, Expirer, ShopsCase, Source, assert_dead_letters,  # noqa: E402
                           assert_no_key_version_twice, assert_no_open_imports,
                           assert_states_after_commits, assert_store_equals, catalog,
                           expected_store, our_imports)

FAULTS = {"rate_429": 0.04, "rate_500": 0.035, "rate_503": 0.03, "rate_reset": 0.03,
          "rate_token_expire": 0.025, "rate_commit_drop": 0.25, "latency_ms": 1,
          "latency_jitter_ms": 10, "retry_after": 1}
MIN_KILLS = 10
MAX_RUNS = 40
EXPIRE_RUNS = 0.7       # share of the runs in which one open import is expired
RECREATE_LOG = b"creating a new import and uploading its"


class Crash(ShopsCase):
    def test_sigkill_restarts_global_states(self):
        self.crash_run("GLOBAL", lib.OPTIONS.seed if lib.OPTIONS else 1)

    def test_sigkill_restarts_stream_states(self):
        self.crash_run("STREAM", (lib.OPTIONS.seed if lib.OPTIONS else 1) + 1000)

    def crash_run(self, state_type, seed):
        rng = random.Random(seed)
        inp, exp = self.gen(products=5000, inventory=15000, invalid=40, update_rate=0.1,
                            state_every=100, state_type=state_type, locations=4, seed=seed)
        src = Source(inp, exp)
        self.emu.post("/_admin/faults", dict(FAULTS, seed=seed))
        checker = Checker(self.emu, src)
        cat_path = self.wd.write_json("catalog.json", catalog(sync_id=seed))
        base = self.stats()

        # forced expiries of open imports (at most one per run, in a share of
        # the runs), by a thread that lists our open imports through the API
        expirer = Expirer(self.emu, random.Random(seed + 1))
        expirer.start()
        arm_rng = random.Random(seed + 2)

        arrivals = []
        # Kill plan: 14 kills once a state at or past seeded random input
        # lines (10%..75%, increasing) is out, a random 0-200 ms later so
        # requests are in flight, and 3 more at random times after a start
        # (maybe before any state), interleaved. A run may still finish
        # before its kill (states come in bursts): at least MIN_KILLS must hit.
        nlines = len(src.lines)
        points = sorted(rng.sample(range(nlines // 10, nlines * 75 // 100), 14))
        plans = [("line", pt, rng.uniform(0, 0.2)) for pt in points]
        for _ in range(3):
            plans.insert(rng.randrange(len(plans) + 1), ("time", rng.uniform(0.05, 1.0), 0))

        def start_run(run, lines):
            cfg = self.cfg(min_commit_records=500, part_max_items=100, max_in_flight=4,
                           max_retries=20, request_timeout_seconds=5,
                           connect_timeout_seconds=2,
                           dead_letter_path=self.wd.join("dl-%02d.jsonl" % run))
            cfg_path = self.write_config(cfg, "config-%02d.json" % run)
            expirer.arm(1 if arm_rng.random() < EXPIRE_RUNS else 0)
            return lib.Connector(lib.binary(), ["write", "--config", cfg_path, "--catalog",
                                                cat_path], self.wd, name="run-%02d" % run,
                                 stdin=src.data(lines), on_line=checker.on_line)

        t_start = time.monotonic()
        runs = Restarts(src, checker)
        try:
            runs.run(self, plans, start_run, MAX_RUNS, wait_limit=90,
                     after_run=lambda res: arrivals.extend(checker.arrivals))
        finally:
            expirer.stop()
        kills, results, per_run = runs.kills, runs.results, runs.per_run
        expired = expirer.expired
        elapsed = time.monotonic() - t_start
        self.assertEqual(per_run[-1][2], 0, "no run finished in %d runs: %s" % (MAX_RUNS, per_run))
        self.assertGreaterEqual(kills, MIN_KILLS)
        self.assertFalse(checker.failures, "%d checker failures, first: %s"
                         % (len(checker.failures), checker.failures[:5]))

        # The API requests of the destination (and of the expirer's lists):
        # every request the emulator counted since `base`, less the test's
        # own admin calls (this one included) and the token requests.
        stats = self.stats()
        v1_requests = (stats["requests"] - base["requests"] - 1 - checker.refreshes
                       - expirer.admin_calls - (stats["tokens_issued"] - base["tokens_issued"]))
        dump = self.dump()
        applied = self.applied()
        # nothing lost
        assert_store_equals(self, dump, expected_store(exp))
        # nothing applied twice
        assert_no_key_version_twice(self, applied)
        # no state before its import committed
        assert_states_after_commits(self, src, arrivals, dump, applied)
        # no import of ours left open
        assert_no_open_imports(self, dump)
        # dead letters: every invalid record at least once, no valid one
        entries = runs.dead_letters(lambda run: self.wd.join("dl-%02d.jsonl" % run))
        assert_dead_letters(self, entries, exp["invalid"], exact=False)

        faults = stats["faults"]
        for kind in ("429", "500", "503", "reset", "token_expire", "commit_drop"):
            self.assertGreater(faults.get(kind, 0), 0, "no %s fault injected: %s"
                               % (kind, faults))
        injected = sum(faults.values())
        reqs = v1_requests
        self.assertGreaterEqual(injected, 0.10 * reqs, "only %d faults in %d API requests"
                                % (injected, reqs))
        self.assertGreaterEqual(len(expired), 2, "fewer than 2 imports were expired")
        recreated = sum(r.stdout.count(RECREATE_LOG) for r in results)
        self.assertGreaterEqual(recreated, 1, "no run re-created an expired import")
        imps = our_imports(dump)
        by_status = {}
        for i in imps:
            by_status[i["status"]] = by_status.get(i["status"], 0) + 1
        sys.stderr.write(
            "\n  [%s] %d runs, %d SIGKILLs, %.1f s; %d states checked live (%d records); "
            "%d API requests, %d faults injected (%.0f%%) %s; %d imports expired by the test, "
            "%d re-creations logged; imports by status %s; %d applied writes; "
            "%d dead letters\n  runs (states emitted, resumed at line, rc): %s\n  " % (
                state_type, len(results), kills, elapsed, checker.states_checked,
                checker.records_checked,
                reqs, injected, 100.0 * injected / max(1, reqs), faults, len(expired),
                recreated, by_status, len(applied), len(entries), per_run))


if __name__ == "__main__":
    lib.main(__doc__.split("\n")[0],
             extra_args=lambda p: p.add_argument("--seed", type=int, default=1))
