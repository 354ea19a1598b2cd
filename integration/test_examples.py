#!/usr/bin/env python3
"""The files in examples/ work as the README's quick start says: each
destination's config, catalog and messages load into its emulator (started
with the credentials the examples use, on a free port instead of the fixed
one), the rejected example record is the only rejection, `load` loads the
plain JSONL of customers, and the ab-run config directory runs
source-example into destination-crm360.

    python3 integration/test_examples.py --bin build/gcc/tools/ab-run/ab-run \\
        --crm360 ... --shops ... --source ...
"""
import json
import os
import shutil

import lib

ROOT = os.path.dirname(lib.HERE)
EXAMPLES = os.path.join(ROOT, "examples")


def load(*path):
    with open(os.path.join(EXAMPLES, *path), encoding="utf-8") as f:
        return json.load(f)


class Examples(lib.ServersCase):
    workdir_prefix = "ab-examples-"

    def config(self, path, url):
        cfg = load(*path)
        self.assertTrue(cfg["api_url"].startswith("http://127.0.0.1:"))
        cfg["api_url"] = url  # a free port instead of the fixed one
        cfg["dead_letter_path"] = self.wd.join("rejected.jsonl")
        return self.wd.write_json("config.json", cfg)

    def write(self, binary, example, url, stdin):
        res = lib.run_connector(os.path.abspath(binary), [
            "write", "--config", self.config((example, "config.json"), url),
            "--catalog", os.path.join(EXAMPLES, example, "catalog.json")], self.wd, stdin=stdin)
        self.assertEqual(lib.sanitizer_report(res.stderr), "")
        return res

    def input_states(self, path):
        with open(path, "rb") as f:
            return [m["state"]["id"] for m in lib.parse_messages(f.read()) if m["type"] == "STATE"]

    def test_crm360_example(self):
        emu = self.emulator("crm360")
        msgs = os.path.join(EXAMPLES, "crm360", "messages.jsonl")
        res = self.write(lib.OPTIONS.crm360, "crm360", emu.url, msgs)
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual([s["id"] for s in res.states], self.input_states(msgs))
        dump = emu.get("/_admin/dump")
        by_key = {r["external_id"]: r for r in dump["customers"]}
        self.assertEqual(sorted(by_key), ["C-0001", "C-0002", "C-0003"])
        self.assertEqual(by_key["C-0002"]["email"], "bruno.lima@example.com")
        self.assertEqual([o["external_id"] for o in dump["orders"]], ["O-0001"])
        rejected = lib.read_jsonl(self.wd.join("rejected.jsonl"))
        self.assertEqual([e["record"]["external_id"] for e in rejected], ["C-0004"])

    def test_shops_example(self):
        emu = self.emulator("shops")
        msgs = os.path.join(EXAMPLES, "shops", "messages.jsonl")
        res = self.write(lib.OPTIONS.shops, "shops", emu.url, msgs)
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual([s["id"] for s in res.states], self.input_states(msgs))
        dump = emu.get("/_admin/dump")
        prices = {p["sku"]: p["price"] for p in dump["products"]}
        self.assertEqual(prices, {"CAM-AZ": "89.90", "CAM-AZ-M": "99.90", "CAM-AZ-G": "99.90"})
        self.assertEqual(sorted((i["sku"], i["quantity"]) for i in dump["inventory"]),
                         [("CAM-AZ-G", 4), ("CAM-AZ-M", 12)])
        self.assertEqual(lib.read_jsonl(self.wd.join("rejected.jsonl")), [])

    def test_plain_customers_load(self):
        """Each line is one object with no envelope; `load` loads them all."""
        with open(os.path.join(EXAMPLES, "customers.jsonl"), "rb") as f:
            rows = [json.loads(line) for line in f.read().splitlines()]
        self.assertGreaterEqual(len(rows), 10)
        for r in rows:
            self.assertIsInstance(r, dict)
            self.assertNotIn("type", r)
        emu = self.emulator("crm360")
        res = lib.run_connector(os.path.abspath(lib.OPTIONS.crm360), [
            "load", "--config", self.config(("crm360", "config.json"), emu.url),
            "--object", "customers", os.path.join(EXAMPLES, "customers.jsonl")], self.wd)
        self.assertEqual(lib.sanitizer_report(res.stderr), "")
        self.assertEqual(res.rc, 0, res.describe())
        stored = {r["external_id"]: r for r in emu.get("/_admin/dump")["customers"]}
        self.assertEqual(sorted(stored), sorted(r["external_id"] for r in rows))
        self.assertEqual(lib.read_jsonl(self.wd.join("rejected.jsonl")), [])

    def test_ab_run_example(self):
        emu = self.emulator("crm360")
        cfgdir = self.wd.join("ab-run")
        shutil.copytree(os.path.join(EXAMPLES, "ab-run"), cfgdir)
        dest = load("ab-run", "destination.json")
        dest["api_url"] = emu.url
        dest["dead_letter_path"] = self.wd.join("rejected.jsonl")
        with open(os.path.join(cfgdir, "destination.json"), "w") as f:
            json.dump(dest, f)
        res = lib.run_connector(lib.binary(), [
            "--source", os.path.abspath(lib.OPTIONS.source),
            "--destination", os.path.abspath(lib.OPTIONS.crm360),
            "--config-dir", cfgdir, "--state", self.wd.join("state.json")], self.wd)
        self.assertEqual(lib.sanitizer_report(res.stderr), "")
        self.assertEqual(res.rc, 0, res.describe())
        count = load("ab-run", "source.json")["count"]
        self.assertEqual(len(emu.get("/_admin/dump")["customers"]), count)


def extra(p):
    p.add_argument("--crm360", required=True)
    p.add_argument("--shops", required=True)
    p.add_argument("--source", required=True)


if __name__ == "__main__":
    lib.main(__doc__, extra)
