#!/usr/bin/env python3
"""Replaying a captured Airbyte stream: write --input FILE, with or without a catalog.

    test_replay.py --bin build/destinations/crm360/destination-crm360

* --print-catalog prints the catalog inferred from the file: every stream
  and namespace seen, the sync mode and sync_id from the flags.
* A replay without --catalog (plain and gzip input) loads what a write with
  the hand-written catalog loads, and emits every state.
* A second replay of the same file with the same sync_id is answered by
  CRM360's idempotency store: its summary says so ("already applied by an
  earlier run") and counts nothing as created or updated; the emulator
  applies nothing. A new --sync-id applies it again.
"""

import gzip
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from crm360_helpers import CrmCase, assert_store_matches  # noqa: E402


def summary_counts(res, obj):
    """The counts of the 'crm360 <obj>:' summary line."""
    for m in res.logs():
        if m.startswith("crm360 %s:" % obj):
            return {k.strip(): int(v) for v, k in
                    ((x.split()[-1], " ".join(x.split()[:-1])) for x in
                     m.split(":", 1)[1].split(","))}
    raise AssertionError("no summary for %s:\n%s" % (obj, res.describe()))


class Replay(CrmCase):
    def replay(self, inp, extra=(), name="replay", cfg=None):
        cfg_path = self.write_config(cfg or self.cfg(), name + ".config.json")
        return self.finish(lib.Connector(lib.binary(), ["write", "--config", cfg_path,
                                                        "--input", inp] + list(extra),
                                         self.wd, name=name))

    def gen(self, **kw):
        opts = dict(customers=300, orders=500, seed=11, invalid=6)
        opts.update(kw)
        return lib.run_gen_stream(self.wd, **opts)

    def test_print_catalog(self):
        inp, _ = self.gen(namespace="erp", customers=20, orders=20)
        cfg_path = self.write_config(self.cfg(), "p.config.json")
        res = subprocess.run([lib.binary(), "write", "--config", cfg_path, "--input", inp,
                              "--print-catalog", "--sync-mode", "append_dedup", "--sync-id",
                              "77"], capture_output=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        cat = json.loads(res.stdout)  # stdout holds the catalog alone
        got = [(s["stream"]["name"], s["stream"]["namespace"], s["destination_sync_mode"],
                s["sync_id"]) for s in cat["streams"]]
        self.assertEqual(sorted(got), [("customers", "erp", "append_dedup", 77),
                                       ("orders", "erp", "append_dedup", 77)])
        self.assertEqual(self.emu.get("/_admin/stats")["requests_total"], 0)

    def check_replay(self, inp, exp, extra=()):
        res = self.replay(inp, extra=extra)
        self.assert_ok(res)
        assert_store_matches(self, self.dump(), exp)
        want = len([1 for _, m in lib.parse_input(inp if not inp.endswith(".gz") else self.plain)
                    if m["type"] == "STATE"])
        self.assertEqual(len(res.states), want)
        return res

    def test_replay_without_catalog(self):
        inp, exp = self.gen(namespace="erp")
        self.plain = inp
        res = self.check_replay(inp, exp)
        self.assertTrue(any("catalog inferred from" in m for m in res.logs()), res.describe())

    def test_replay_gzip(self):
        inp, exp = self.gen(state_type="GLOBAL")
        self.plain = inp
        gz = inp + ".gz"
        with open(inp, "rb") as f, gzip.open(gz, "wb") as g:
            shutil.copyfileobj(f, g)
        self.check_replay(gz, exp)

    def test_second_replay_is_already_applied(self):
        inp, exp = self.gen()
        first = self.replay(inp, name="first")
        self.assert_ok(first)
        applied = self.emu.get("/_admin/stats")["batches_applied"]
        c1 = summary_counts(first, "customers")
        o1 = summary_counts(first, "orders")
        self.assertEqual(c1["already applied by an earlier run"], 0)
        self.assertGreater(c1["created"], 0)

        second = self.replay(inp, name="second")
        self.assert_ok(second)
        st = self.emu.get("/_admin/stats")
        self.assertEqual(st["batches_applied"], applied, "the second replay applied something")
        self.assertGreater(st["idempotent_replays"], 0)
        for obj, c in (("customers", c1), ("orders", o1)):
            c2 = summary_counts(second, obj)
            self.assertEqual(c2["created"] + c2["updated"] + c2["unchanged"] + c2["stale"], 0,
                             c2)
            self.assertEqual(c2["already applied by an earlier run"],
                             c["created"] + c["updated"] + c["unchanged"] + c["stale"]
                             + c["deleted"] + c["not_found"])
        self.assertTrue(any("run with a new sync_id" in m for m in second.logs()), second.logs())
        assert_store_matches(self, self.dump(), exp)

        third = self.replay(inp, extra=["--sync-id", "4242"], name="third")
        self.assert_ok(third)
        self.assertGreater(self.emu.get("/_admin/stats")["batches_applied"], applied)
        c3 = summary_counts(third, "customers")
        self.assertEqual(c3["already applied by an earlier run"], 0)
        self.assertEqual(c3["created"], 0)
        self.assertGreater(c3["unchanged"], 0)

    def test_catalog_needed_for_stdin(self):
        inp, _ = self.gen(customers=5, orders=5)
        cfg_path = self.write_config(self.cfg(), "s.config.json")
        res = self.finish(lib.Connector(lib.binary(), ["write", "--config", cfg_path], self.wd,
                                        name="nocat", stdin=inp))
        self.assert_fatal(res, failure_type="config_error",
                          contains=["missing --catalog", "--input FILE"])

    def test_sync_mode_flag_with_catalog_is_refused(self):
        inp, _ = self.gen(customers=5, orders=5)
        cat = self.wd.write_json("cat.json", self.default_catalog())
        cfg_path = self.write_config(self.cfg(), "s.config.json")
        res = lib.run_connector(lib.binary(), ["write", "--config", cfg_path, "--catalog", cat,
                                               "--input", inp, "--sync-id", "3"], self.wd)
        self.assertEqual(res.rc, 2)
        self.assertTrue(re.search(rb"describe an inferred catalog", res.stderr), res.stderr)


if __name__ == "__main__":
    lib.main(__doc__)
