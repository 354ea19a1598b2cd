#!/usr/bin/env python3
"""load, replay and dry runs of destination-shops.

    test_shops_load.py --bin build/destinations/shops/destination-shops

* load of products from a plain and a gzip file with a checkpoint file: the
  store holds every product; a rerun sends nothing.
* a dry run of the same load makes no request (the emulator's request
  counter stays 0), reports the parts it would upload and the records the
  destination rejects itself, as the real run does.
* write --input of a generated stream without a catalog loads what the
  expected store says.
"""

import gzip
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from shops_helpers import ShopsCase, assert_store_equals, expected_store  # noqa: E402


def product(i):
    return {"sku": "SKU-%05d" % i, "brand": "Aurora", "title": "Camiseta %d" % i,
            "price": "%d.90" % (10 + i % 50), "currency": "BRL",
            "updated_at": "2026-01-01T00:00:00Z"}


class ShopsLoad(ShopsCase):
    def run_bin(self, args, name):
        return self.finish(lib.Connector(lib.binary(), args, self.wd, name=name))

    def files(self):
        a = self.wd.join("a.jsonl")
        with open(a, "w") as f:
            for i in range(400):
                f.write(json.dumps(product(i)) + "\n")
            f.write(json.dumps({"title": "no sku"}) + "\n")
        b = self.wd.join("b.jsonl.gz")
        with gzip.open(b, "wt") as f:
            for i in range(400, 700):
                f.write(json.dumps(product(i)) + "\n")
        return a, b

    def test_load_products(self):
        a, b = self.files()
        cfg = self.write_config(self.cfg(), "c.json")
        ck = self.wd.join("ck")
        res = self.run_bin(["load", "--config", cfg, "--object", "products", "--checkpoint-file",
                            ck, a, b], "load")
        self.assert_ok(res)
        skus = {p["sku"] for p in self.dump()["products"]}
        self.assertEqual(skus, {"SKU-%05d" % i for i in range(700)})
        dl = self.dead_letters()
        self.assertEqual([(e["file"], e["line"], e["errors"][0]["code"]) for e in dl],
                         [(a, 401, "missing_field")])
        with open(ck) as f:
            doc = json.load(f)
        self.assertEqual([x["complete"] for x in doc["files"]], [True, True])
        before = self.stats()
        again = self.run_bin(["load", "--config", cfg, "--object", "products",
                              "--checkpoint-file", ck, a, b], "again")
        self.assert_ok(again)
        after = self.stats()
        self.assertEqual(after["imports"], before["imports"])
        self.assertEqual(after["parts_uploaded"], before["parts_uploaded"])

    def test_dry_run_sends_nothing(self):
        a, b = self.files()
        cfg = self.write_config(self.cfg(dead_letter_path=self.wd.join("dry.jsonl")), "c.json")
        res = self.run_bin(["load", "--config", cfg, "--object", "products", "--dry-run",
                            "--show-requests", "1", a, b], "dry")
        self.assert_ok(res)
        st = self.stats()  # every request counts, this one too
        self.assertEqual(st["requests"], 1, st)
        self.assertEqual(st["tokens_issued"], 0)
        self.assertEqual(sum(st["imports"].values()), 0)
        self.assertFalse(os.path.exists(self.wd.join("dry.jsonl")))
        logs = "\n".join(res.logs())
        self.assertIn("dry run: products import part:", logs)
        self.assertIn("700 records", logs)
        self.assertIn("line 401 of %s of stream 'products' would be rejected by the destination"
                      % a, logs)
        self.assertIn("Shops' item rules were checked locally", logs)
        self.assertEqual(len([m for m in res.logs() if m.startswith("dry run: request ")]), 1)

    def test_replay_without_catalog(self):
        inp, exp = self.gen(products=150, inventory=150, invalid=0, seed=4)
        cfg = self.write_config(self.cfg(), "c.json")
        res = self.run_bin(["write", "--config", cfg, "--input", inp], "replay")
        self.assert_ok(res)
        assert_store_equals(self, self.dump(), expected_store(exp))


if __name__ == "__main__":
    lib.main(__doc__)
