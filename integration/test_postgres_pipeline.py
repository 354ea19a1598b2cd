#!/usr/bin/env python3
"""The examples/postgres/ pipelines through ab-run against the emulators: a
warehouse (examples/postgres/warehouse.sql) in a real PostgreSQL server,
source-postgres piped into destination-shops (products, stock) and into
destination-crm360 (customers, orders) with the example configs, the state
file carried to a second run that moves only the rows changed since.

    python3 integration/test_postgres_pipeline.py --bin build/gcc/tools/ab-run/ab-run \\
        --source build/gcc/sources/postgres/source-postgres --crm360 ... --shops ...
"""
import json
import os
import shutil
import subprocess

import lib
import pg_server

ROOT = os.path.dirname(lib.HERE)
EXAMPLE = os.path.join(ROOT, "examples", "postgres")
READER_PASSWORD = "reader-" + os.urandom(6).hex()


class Pipeline(lib.ServersCase):
    workdir_prefix = "ab-pg-pipe-"

    @classmethod
    def setUpClass(cls):
        cls.pg = pg_server.PgServer(os.path.dirname(os.path.abspath(lib.OPTIONS.source))).start()
        cls.addClassCleanup(cls.pg.stop)
        cls.pg.sql("create database warehouse")
        subprocess.run(cls.pg.psql_argv("warehouse") + ["-f", os.path.join(EXAMPLE, "warehouse.sql")],
                       check=True, stdout=subprocess.DEVNULL)
        cls.pg.sql("create role airbyte_reader login password '%s'; "
                   "grant usage on schema warehouse to airbyte_reader; "
                   "grant select on all tables in schema warehouse to airbyte_reader"
                   % READER_PASSWORD, database="warehouse")

    def config_dir(self, target, emu):
        d = self.wd.join(target)
        os.makedirs(d)
        with open(os.path.join(EXAMPLE, target, "source.json"), encoding="utf-8") as f:
            src = json.load(f)
        src.update(port=self.pg.port, password=READER_PASSWORD, ssl_mode={"mode": "disable"})
        with open(os.path.join(EXAMPLE, target, "destination.json"), encoding="utf-8") as f:
            dst = json.load(f)
        self.assertTrue(dst["api_url"].startswith("http://127.0.0.1:"))
        dst.update(api_url=emu.url, dead_letter_path=self.wd.join(target + "-rejected.jsonl"))
        if "spool_dir" in dst:
            dst["spool_dir"] = self.wd.path
        for name, obj in (("source.json", src), ("destination.json", dst)):
            with open(os.path.join(d, name), "w", encoding="utf-8") as f:
                json.dump(obj, f)
        shutil.copy(os.path.join(EXAMPLE, target, "catalog.json"), d)
        return d

    def run_pipeline(self, cfgdir, target, name):
        capture = self.wd.join(name + ".capture.jsonl")
        res = lib.run_connector(lib.binary(), [
            "--source", os.path.abspath(lib.OPTIONS.source),
            "--destination", os.path.abspath(getattr(lib.OPTIONS, target)),
            "--config-dir", cfgdir, "--state", self.wd.join(target + "-state.json"),
            "--capture", capture], self.wd, name=name)
        self.assertEqual(res.rc, 0, res.describe())
        self.assertNotIn(READER_PASSWORD.encode(), res.stderr)
        with open(capture, encoding="utf-8") as f:
            recs = [json.loads(l)["record"] for l in f if l.startswith('{"type":"RECORD"')]
        self.assertFalse(os.path.exists(self.wd.join(target + "-rejected.jsonl")),
                         "rejected records")
        return recs

    def test_warehouse_into_shops(self):
        emu = self.emulator("shops")
        d = self.config_dir("shops", emu)
        recs = self.run_pipeline(d, "shops", "first")
        self.assertEqual(len(recs), 40 + 80)
        dump = emu.get("/_admin/dump")
        products = {p["sku"]: p for p in dump["products"]}
        self.assertEqual(len(products), 40)
        self.assertEqual(products["SKU-3"]["price"], "22.50")
        self.assertEqual(products["SKU-3"]["title"], "Product 3")
        self.assertEqual(products["SKU-3"]["updated_at"], "2026-01-01T00:03:00Z")
        self.assertEqual(len(dump["inventory"]), 80)
        inv = {(i["sku"], i["location"]): i["quantity"] for i in dump["inventory"]}
        self.assertEqual(inv[("SKU-7", "rj-02")], 21)
        # a few rows change; the second run moves exactly them
        self.pg.sql("update warehouse.product set unit_price = unit_price + 1, modified_at = "
                    "now() where product_code in ('SKU-1', 'SKU-2'); "
                    "update warehouse.stock set on_hand = 0, modified_at = now() "
                    "where product_code = 'SKU-5' and store_code = 'sp-01'", database="warehouse")
        recs = self.run_pipeline(d, "shops", "second")
        self.assertEqual(sorted(r["data"]["product_code"] for r in recs),
                         ["SKU-1", "SKU-2", "SKU-5"])
        dump = emu.get("/_admin/dump")
        products = {p["sku"]: p for p in dump["products"]}
        self.assertEqual(products["SKU-1"]["price"], "8.50")
        inv = {(i["sku"], i["location"]): i["quantity"] for i in dump["inventory"]}
        self.assertEqual(inv[("SKU-5", "sp-01")], 0)
        recs = self.run_pipeline(d, "shops", "third")
        self.assertEqual(recs, [])

    def test_warehouse_into_crm360(self):
        emu = self.emulator("crm360")
        d = self.config_dir("crm360", emu)
        recs = self.run_pipeline(d, "crm360", "first")
        self.assertEqual(len(recs), 30 + 60)
        dump = emu.get("/_admin/dump")
        customers = {c["external_id"]: c for c in dump["customers"]}
        orders = {o["external_id"]: o for o in dump["orders"]}
        self.assertEqual(len(customers), 30)
        self.assertEqual(len(orders), 60)
        self.assertEqual(customers["C4"]["email"], "customer4@example.com")
        self.assertEqual(orders["O2"]["total"], "20.90")
        self.assertEqual(orders["O2"]["items"], [{"sku": "SKU-3", "quantity": 1,
                                                  "unit_price": "20.90"}])
        self.assertEqual(orders["O2"]["customer_external_id"], "C3")
        self.pg.sql("update warehouse.customer set email = 'new' || customer_id || "
                    "'@example.com', modified_at = now() where customer_id in ('C1', 'C2'); "
                    "insert into warehouse.sales_order values ('O999', 'aurora', 'C1', "
                    "'pending', 'BRL', 5.00, '[{\"sku\": \"SKU-1\", \"quantity\": 1, "
                    "\"unit_price\": \"5.00\"}]', now(), now())", database="warehouse")
        recs = self.run_pipeline(d, "crm360", "second")
        self.assertEqual(sorted(r["data"].get("customer_id") or r["data"]["order_id"]
                                for r in recs if r["stream"] == "customer"), ["C1", "C2"])
        self.assertEqual([r["data"]["order_id"] for r in recs if r["stream"] == "sales_order"],
                         ["O999"])
        dump = emu.get("/_admin/dump")
        customers = {c["external_id"]: c for c in dump["customers"]}
        self.assertEqual(customers["C2"]["email"], "newc2@example.com")
        self.assertIn("O999", {o["external_id"] for o in dump["orders"]})
        self.assertEqual(self.run_pipeline(d, "crm360", "third"), [])


def extra(p):
    p.add_argument("--source", required=True, help="source-postgres binary")
    p.add_argument("--crm360", required=True, help="destination-crm360 binary")
    p.add_argument("--shops", required=True, help="destination-shops binary")


if __name__ == "__main__":
    lib.main(__doc__, extra)
