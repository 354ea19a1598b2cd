#!/usr/bin/env python3
"""Refreshes (generation_id / minimum_generation_id) of destination-shops.

    test_shops_refresh.py --bin build/destinations/shops/destination-shops

A stream whose minimum_generation_id equals its generation_id (> 0) asks the
destination to remove what earlier generations loaded. Shops does it with one
replace import committed only after STREAM_STATUS COMPLETE:

* sync 1 (generation 1, append_dedup) loads the channel;
* sync 2 (generation 2, truncating, append_dedup) lacks part of it and is
  SIGKILLed in the middle, its replace import open with parts uploaded:
  nothing is deactivated, nothing of it is applied, the store is sync 1's;
* the restarted attempt of generation 2 (the same ids) runs to its end with
  COMPLETE: the items only generation 1 had are deactivated (active: false,
  quantity 0), every item of generation 2 is stored in its latest version,
  everything the killed attempt had uploaded is among them (nothing of the
  same generation is removed), no import of ours is left open.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from shops_helpers import (STREAMS, ShopsCase, assert_no_open_imports,  # noqa: E402
                           assert_store_equals, catalog, dump_by_key, expected_after_replace,
                           expected_store, our_imports)


def generation(gen, minimum, mode="append_dedup"):
    cat = catalog(mode=mode)
    for s in cat["streams"]:
        s["generation_id"] = gen
        s["minimum_generation_id"] = minimum
    return cat


class Refresh(ShopsCase):

    def test_truncating_generation_killed_then_restarted(self):
        inp1, old_exp = self.gen(name="gen1", products=300, inventory=800, seed=71, complete=True)
        res = self.write(inp1, name="gen1", cat=generation(1, 0))
        self.assert_ok(res)
        old = expected_store(old_exp)
        assert_store_equals(self, self.dump(), old, "generation 1")

        inp2, exp2 = self.gen(name="gen2", products=320, inventory=850, seed=72, sku_start=90,
                              time_offset=old_exp["clock"] + 1000, state_every=40, complete=True)
        new = expected_store(exp2)
        lacking = {s: [k for k in old[s] if k not in new[s]] for s in STREAMS}
        self.assertGreater(len(lacking["products"]), 50)

        # attempt 1 of generation 2: most of the input, then SIGKILL while
        # its replace import is open
        lines = lib.read_input_lines(inp2)
        head = b"".join(ln + b"\n" for ln in lines[:len(lines) * 2 // 3])
        cfg_path = self.write_config(self.cfg(), "gen2a.config.json")
        cat_path = self.wd.write_json("gen2a.catalog.json", generation(2, 2))
        conn = lib.Connector(lib.binary(), ["write", "--config", cfg_path, "--catalog", cat_path],
                             self.wd, name="gen2a", stdin=head, keep_stdin_open=True)
        deadline = time.monotonic() + 60
        opened = []
        while time.monotonic() < deadline and not opened:
            opened = [i for i in our_imports(self.dump()) if i["mode"] == "replace"
                      and i["status"] == "open" and i.get("parts", 0)]
            if not opened:
                time.sleep(0.1)
        self.assertTrue(opened, "no replace import with parts opened")
        time.sleep(0.3)
        conn.signal(signal.SIGKILL)
        res = self.finish(conn)
        self.assertEqual(res.states, [], "a replace acknowledges nothing before its commit")
        self.assertEqual(self.stats()["deactivated"], {"products": 0, "inventory": 0})
        assert_store_equals(self, self.dump(), old, "after the killed attempt")

        # attempt 2 of generation 2, from the start (no state was acknowledged)
        res = self.write(inp2, name="gen2b", cat=generation(2, 2))
        self.assert_ok(res)
        self.assertEqual(len(res.states), sum(1 for ln in lines if b'"type":"STATE"' in ln))
        want = expected_after_replace(old, new)
        dump = self.dump()
        assert_store_equals(self, dump, want, "after generation 2")
        # (items generation 1 had already deactivated are not counted again)
        deact = self.stats()["deactivated"]
        for s in STREAMS:
            self.assertGreater(deact[s], len(lacking[s]) // 2, deact)
            self.assertLessEqual(deact[s], len(lacking[s]), deact)
        assert_no_open_imports(self, dump)
        self.assertTrue(any("generation 2 removes what earlier generations loaded" in m
                            for m in res.logs("INFO")), res.describe())

    def test_incomplete_truncating_generation_removes_nothing(self):
        """Without COMPLETE a truncating generation is loaded as a merge:
        nothing is deactivated, and a WARN says why."""
        inp1, old_exp = self.gen(name="gen1", products=200, inventory=400, seed=73, complete=True)
        self.assert_ok(self.write(inp1, name="gen1", cat=generation(1, 0)))
        old = expected_store(old_exp)
        inp2, exp2 = self.gen(name="gen2", products=150, inventory=300, seed=74, sku_start=100,
                              time_offset=old_exp["clock"] + 1000)
        res = self.write(inp2, name="gen2", cat=generation(2, 2))
        self.assert_ok(res)
        self.assertEqual(self.stats()["deactivated"], {"products": 0, "inventory": 0})
        # the items only generation 1 had are exactly as generation 1 left them
        store = dump_by_key(self.dump())
        new = expected_store(exp2)
        kept = 0
        for s in STREAMS:
            for k in old[s]:
                if k not in new[s]:
                    self.assertEqual(store[s][k], old[s][k], "%s %s changed" % (s, k))
                    kept += 1
        self.assertGreater(kept, 20)
        self.assertTrue(any("replace not applied" in m for m in res.logs("WARN")),
                        res.describe())


if __name__ == "__main__":
    lib.main(__doc__)
