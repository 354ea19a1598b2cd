#!/usr/bin/env python3
"""Full refreshes of destination-shops whose input lacks STREAM_STATUS COMPLETE.

    test_shops_replace_incomplete.py --bin build/destinations/shops/destination-shops

The end of input does not prove a source finished (a failed source also ends
its output), so an overwrite run without COMPLETE for every overwrite stream
must not deactivate anything. Each test pre-seeds the channel with a first
(merge) run, then sends a full refresh that lacks some of the channel's
items:

* no COMPLETE at all: nothing is deactivated (the pre-seeded items that the
  refresh lacks stay as they were, active and with their quantities), every
  record of the refresh is loaded in merge mode (store = latest version of
  every key over both runs), the replace import is not committed (aborted,
  its records uploaded again into a merge import), every state is emitted in
  order with correct counts after the records it covers are applied, the
  dead letters are exactly the invalid records, a WARN log and the WARN
  summary line say the replace was not applied and name the streams that
  lacked COMPLETE;
* COMPLETE for one of the two overwrite streams only: the same (nothing is
  deactivated in either object), the WARN names only the stream without
  COMPLETE;
* replace_deactivate_without_complete: true: the end of input counts as
  completion, the missing items are deactivated (active:false / quantity 0,
  updated_at kept), and a WARN says why.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from shops_helpers import (STREAMS, Checker, ShopsCase, Source,  # noqa: E402
                           assert_store_equals, catalog, dump_by_key, expected_after_replace,
                           expected_store, merge_stores, our_imports, summary_numbers)


class ReplaceIncomplete(ShopsCase):
    def preseed(self):
        inp, exp = self.gen(name="seed", products=400, inventory=1000, seed=61)
        res = self.write(inp, name="seed", cfg=self.cfg(
            dead_letter_path=self.wd.join("seed-dead-letters.jsonl")))
        self.assert_ok(res)
        want = expected_store(exp)
        assert_store_equals(self, self.dump(), want, "pre-seeded store")
        return exp, want

    def refresh(self, old_exp, name="refresh", **opts):
        """A full refresh lacking parents 0..119 (and their variants and
        inventory) of the pre-seeded store, with newer versions of the rest."""
        return self.gen(name=name, products=450, inventory=1100, invalid=10, seed=62,
                        sku_start=120, time_offset=old_exp["clock"] + 1000, state_every=40,
                        **opts)

    def run_refresh(self, inp, exp, cfg_over=None):
        src = Source(inp, exp)
        checker = Checker(self.emu, src)
        res = self.write(inp, cfg=self.cfg(**(cfg_over or {})), cat=catalog(mode="overwrite"),
                         on_line=checker.on_line)
        return res, checker

    def assert_not_deactivated(self, inp, exp, old, res, checker, missing_streams):
        new = expected_store(exp)
        lacking = {s: [k for k in old[s] if k not in new[s]] for s in STREAMS}
        self.assertGreater(len(lacking["products"]), 100)
        self.assertGreater(len(lacking["inventory"]), 100)
        # merge semantics: the latest version of every key over both runs
        dump, _ = self.full_check(inp, exp, res, checker, want_store=merge_stores(old, new))
        store = dump_by_key(dump)
        for s in STREAMS:
            for k in lacking[s]:
                self.assertEqual(store[s][k], old[s][k], "%s %s changed" % (s, k))
        self.assertEqual(self.stats()["deactivated"], {"products": 0, "inventory": 0})
        imps = our_imports(dump)
        reps = [i for i in imps if i["mode"] == "replace"]
        self.assertTrue(reps, "no replace import was created")
        self.assertEqual({i["status"] for i in reps}, {"aborted"},
                         "the replace import must be aborted, not committed: %s" % reps)
        merges = [i for i in imps if i["mode"] == "merge" and i["status"] == "committed"]
        self.assertGreater(len(merges), 1)  # the seed's import and the fallback
        # why, in a WARN log and in the WARN summary line
        warns = res.logs("WARN")
        why = [m for m in warns if "replace not applied" in m]
        self.assertGreaterEqual(len(why), 2, "expected a WARN and a summary line:\n"
                                + res.describe())
        summary = [m for m in why if m.startswith("shops: replace not applied")]
        self.assertEqual(len(summary), 1, res.describe())
        for m in why:
            self.assertIn("COMPLETE", m)
            for s in STREAMS:
                if s in missing_streams:
                    self.assertIn("'%s'" % s, m)
                else:
                    self.assertNotIn("'%s'" % s, m)
        self.assertEqual(summary_numbers(res, "deactivated"), 0)
        return dump

    def test_no_complete_deactivates_nothing(self):
        old_exp, old = self.preseed()
        inp, exp = self.refresh(old_exp)
        res, checker = self.run_refresh(inp, exp)
        self.assert_not_deactivated(inp, exp, old, res, checker, STREAMS)

    def test_complete_for_one_stream_only_deactivates_nothing(self):
        old_exp, old = self.preseed()
        inp, exp = self.refresh(old_exp, complete_streams="products")
        res, checker = self.run_refresh(inp, exp)
        self.assert_not_deactivated(inp, exp, old, res, checker, ("inventory",))

    def test_no_complete_products_overwrite_inventory_incremental(self):
        """products overwrite without COMPLETE, inventory append_dedup: the
        inventory of new products (deferred behind the replace import) is
        loaded after the products fall back to merge; nothing is deactivated
        and nothing is wrongly rejected as unknown_sku."""
        old_exp, old = self.preseed()
        inp, exp = self.refresh(old_exp)
        src = Source(inp, exp)
        checker = Checker(self.emu, src)
        res = self.write(inp, cat=catalog(modes={"products": "overwrite",
                                                 "inventory": "append_dedup"}),
                         on_line=checker.on_line)
        new = expected_store(exp)
        # Deferred inventory commits after the last merge import, so an older
        # deferred version can meet a newer one already applied ('unchanged'):
        # not every version shows up in the applied log (fresh=False).
        dump, _ = self.full_check(inp, exp, res, checker, want_store=merge_stores(old, new),
                                  fresh=False)
        self.assertEqual(self.stats()["deactivated"], {"products": 0, "inventory": 0})
        why = [m for m in res.logs("WARN") if "replace not applied" in m]
        self.assertTrue(why, res.describe())
        self.assertIn("'products'", why[0])
        self.assertNotIn("'inventory'", why[0])

    def test_opt_in_flag_deactivates_without_complete(self):
        old_exp, old = self.preseed()
        inp, exp = self.refresh(old_exp)
        new = expected_store(exp)
        res, checker = self.run_refresh(inp, exp,
                                        cfg_over={"replace_deactivate_without_complete": True})
        want = expected_after_replace(old, new)
        dump, _ = self.full_check(inp, exp, res, checker, want_store=want)
        store = dump_by_key(dump)
        n = {"products": 0, "inventory": 0}
        for s in STREAMS:
            for k, v in old[s].items():
                if k in new[s]:
                    continue
                if s == "products":
                    self.assertIs(store[s][k]["active"], False, k)
                    n[s] += v["active"] is True
                else:
                    self.assertEqual(store[s][k]["quantity"], 0, k)
                    n[s] += v["quantity"] != 0
                self.assertEqual(store[s][k]["updated_at"], v["updated_at"])
        self.assertGreater(n["products"], 100)
        self.assertEqual(self.stats()["deactivated"], n)
        reps = [i for i in our_imports(dump) if i["mode"] == "replace"]
        self.assertEqual([i["status"] for i in reps], ["committed"], reps)
        warns = [m for m in res.logs("WARN") if "replace_deactivate_without_complete" in m]
        self.assertTrue(warns, "no WARN explains the deactivation:\n" + res.describe())
        for s in STREAMS:
            self.assertIn("'%s'" % s, warns[0])


if __name__ == "__main__":
    lib.main(__doc__.split("\n")[0])
