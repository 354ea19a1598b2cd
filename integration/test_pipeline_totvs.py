#!/usr/bin/env python3
"""Whole pipelines from source-totvs-moda, shell pipes between the TOTVS Moda
emulator and the Shops or CRM360 emulator, with the shipped configs
(examples/totvs-shops/, examples/totvs-crm360/):

* TOTVS Moda -> Shops: references -> parent products, SKUs (the size/colour
  grid) -> variants with parent_sku, balances -> inventory;
* TOTVS Moda -> CRM360: individuals -> customers, sales orders -> orders.

What the destination emulator holds equals what the TOTVS emulator holds,
mapped; a second run fed the destination's states moves only what changed;
a SIGKILL of the source, or of the destination, mid-run and a rerun lose
nothing and apply nothing twice; one run goes through ab-run.

    python3 integration/test_pipeline_totvs.py --bin build/gcc/sources/totvs-moda/source-totvs-moda \\
        --shops build/gcc/destinations/shops/destination-shops \\
        --crm360 build/gcc/destinations/crm360/destination-crm360 --abrun build/gcc/tools/ab-run/ab-run
"""
import calendar
import json
import os
import shlex
import signal
import subprocess
import time
import unittest

import crm360_helpers as ch
import lib
import shops_helpers as sh
import totvs_helpers as th

ROOT = os.path.dirname(lib.HERE)
BRAND = "acme"
STATUS = {"InProgress": "pending", "InComposition": "pending", "InAnalysis": "pending",
          "Blocked": "pending", "BillingReleased": "paid", "PartiallyAnswered": "shipped",
          "Attended": "delivered", "Canceled": "cancelled"}


TOTVS_ARGS = {"persons": 40, "companies": 0, "references": 6, "orders": 40,
              "extra": ["--branches", "1"]}


def load(example, name):
    with open(os.path.join(ROOT, "examples", example, name), encoding="utf-8") as f:
        return json.load(f)


def rfc3339(local):
    """TOTVS's local time (UTC-03:00, no offset) as RFC 3339 UTC."""
    t = calendar.timegm(time.strptime(local, "%Y-%m-%dT%H:%M:%S")) + 3 * 3600
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def local(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch - 3 * 3600))


def with_brand(cfg):
    """The example's "<your brand>" constants set to the test's brand."""
    text = json.dumps(cfg).replace("<your brand>", BRAND)
    return json.loads(text)


class PipelineCase(unittest.TestCase):
    example = None
    src_proc = "source-totvs-moda"

    def setUp(self):
        self.wd = lib.Workdir("ab-pipe-totvs-")
        self.totvs = th.emulator(**TOTVS_ARGS).start()
        self.src_cfg = dict(load(self.example, "source.json"), **th.config(self.totvs))
        self.src_cfg.update(branch_codes=[1], start_date="2000-01-01")
        self.state = None

    def tearDown(self):
        self.totvs.stop()
        self.dst.stop()
        self.wd.cleanup(keep=lib.test_failed(self))

    def start(self, name):
        src = [lib.binary(), "read", "--config",
               self.wd.write_json(name + ".src.json", self.src_cfg), "--catalog",
               os.path.join(ROOT, "examples", self.example, "source-catalog.json")]
        if self.state is not None:
            src += ["--state", self.wd.write_json(name + ".state.json", self.state)]
        dst = [self.dest_binary(), "write", "--config",
               self.wd.write_json(name + ".dst.json", self.dst_cfg),
               "--catalog", os.path.join(ROOT, "examples", self.example,
                                         "destination-catalog.json")]
        self.src_out = self.wd.join(name + ".source.jsonl")
        cmd = "%s 2>%s | tee %s | %s" % (
            " ".join(map(shlex.quote, src)), shlex.quote(self.wd.join(name + ".src.err")),
            shlex.quote(self.src_out), " ".join(map(shlex.quote, dst)))
        return subprocess.Popen(["/bin/sh", "-c", cmd], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=self.wd.path)

    def finish(self, proc, allow_partial=False):
        out, err = proc.communicate(timeout=300)
        with open(self.src_out, "rb") as f:
            src = lib.parse_messages(f.read(), allow_partial_tail=allow_partial)
        dst = lib.parse_messages(out, allow_partial_tail=allow_partial)
        self.state = th.last_states(dst, self.state)
        return proc.returncode, src, dst, err

    def run_pipe(self, name):
        rc, src, dst, err = self.finish(self.start(name))
        self.assertEqual(rc, 0, err.decode()[-3000:])
        return src, dst

    def kill_one(self, proc, name):
        pid = int(subprocess.check_output(["pgrep", "-P", str(proc.pid), "-f", name]).split()[0])
        os.kill(pid, signal.SIGKILL)

    def wait_states(self, n):
        deadline = time.monotonic() + 60
        while True:
            if os.path.exists(self.src_out):
                with open(self.src_out, "rb") as f:
                    if f.read().count(b'"type":"STATE"') >= n:
                        return
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.01)

    def mirror_then_changes(self, mutation, moved_streams):
        src, dst = self.run_pipe("first")
        self.assert_mirrors()
        before = self.updated_at()
        time.sleep(1.1)
        touched = self.totvs.post("/_admin/mutate", dict(mutation, seed=9))
        time.sleep(1.1)
        self.src_cfg["lookback_seconds"] = 0
        src, dst = self.run_pipe("second")
        moved = {s: sorted(th.key(s, r) for r in th.records(src, s)) for s in moved_streams}
        self.assert_mirrors()
        after = self.updated_at()
        rewritten = {k for k, v in after.items() if before.get(k) != v}
        return touched, moved, rewritten

    def killed_then_rerun(self, victim):
        self.src_cfg.update(page_size=3, requests_per_second=20)
        proc = self.start("killed")
        self.wait_states(4)
        self.kill_one(proc, victim)
        rc, src, dst, err = self.finish(proc, allow_partial=True)
        if victim.startswith("destination"):
            self.assertNotEqual(rc, 0)  # the pipe's status is the destination's
        self.assertLess(len(th.records(src)), self.total_records(), "finished before the kill")
        self.run_pipe("rerun")
        self.assert_mirrors()
        self.assert_applied_once()


class ToShops(PipelineCase):
    example = "totvs-shops"

    def setUp(self):
        super().setUp()
        self.dst = sh.start_emulator()
        self.dst_cfg = dict(with_brand(load(self.example, "destination.json")),
                            api_url=self.dst.url, client_id=sh.CLIENT_ID,
                            client_secret=sh.SECRET, channel=sh.CHANNEL,
                            requests_per_second=0, min_commit_records=1,
                            dead_letter_path=self.wd.join("dead-letters.jsonl"),
                            spool_dir=self.wd.path)

    def dest_binary(self):
        return os.path.abspath(lib.OPTIONS.shops)

    def total_records(self):
        dump = self.totvs.get("/_admin/dump")
        return len(dump["references"]) + 2 * len(dump["products"])

    def expected(self):
        dump = self.totvs.get("/_admin/dump")
        products, inventory = {}, {}
        for r in dump["references"]:
            coll = th.collection(r)
            products[r["referenceCode"]] = {
                "sku": r["referenceCode"], "brand": BRAND, "title": r["referenceName"],
                "price": "0.00", "currency": "BRL", "active": True,
                "attributes": {"collection": coll["name"], "grid": r["gridDescription"]},
                "updated_at": rfc3339(r["maxChangeFilterDate"])}
        for p in dump["products"]:
            coll = th.collection(p)
            products[str(p["productCode"])] = {
                "sku": str(p["productCode"]), "parent_sku": p["referenceCode"], "brand": BRAND,
                "title": p["productName"], "price": "%.2f" % p["_prices"]["1"],
                "currency": "BRL", "active": True,
                "attributes": {"size": p["size"], "color": p["colorName"],
                               "color_code": p["colorCode"], "collection": coll["name"],
                               "ean": p["productSku"]},
                "updated_at": rfc3339(p["maxChangeFilterDate"])}
        for b in dump["balances"]:
            q = [x for x in b["balances"] if x["branchCode"] == 1 and x["stockCode"] == 1][0]
            inventory[(str(b["productCode"]), "1")] = {
                "sku": str(b["productCode"]), "location": "1", "quantity": q["stock"],
                "updated_at": rfc3339(local(b["_mtime"]))}
        return products, inventory

    def store(self):
        dump = self.dst.get("/_admin/dump?channel=" + sh.CHANNEL)
        return ({p["sku"]: p for p in dump["products"]},
                {(i["sku"], i["location"]): i for i in dump["inventory"]})

    def assert_mirrors(self):
        want_p, want_i = self.expected()
        got_p, got_i = self.store()
        self.assertEqual(sorted(got_p), sorted(want_p))
        self.assertEqual(sorted(got_i), sorted(want_i))
        for k, w in want_p.items():
            self.assertEqual({f: got_p[k].get(f) for f in w}, w, k)
            if "parent_sku" not in w:
                self.assertIsNone(got_p[k].get("parent_sku"), k)
        for k, w in want_i.items():
            self.assertEqual({f: got_i[k].get(f) for f in w}, w, k)
        self.assertFalse(os.path.exists(self.wd.join("dead-letters.jsonl"))
                         and os.path.getsize(self.wd.join("dead-letters.jsonl")))

    def updated_at(self):
        got_p, got_i = self.store()
        out = {("p", k): v["updated_at"] for k, v in got_p.items()}
        out.update({("i",) + k: v["updated_at"] for k, v in got_i.items()})
        return out

    def assert_applied_once(self):
        seen = set()
        for e in self.dst.get("/_admin/applied"):
            key = (e["object"], e["sku"], e.get("location"), e["updated_at"])
            self.assertNotIn(key, seen, "applied twice: %r" % (key,))
            seen.add(key)

    def test_mirror_then_only_changes(self):
        touched, moved, rewritten = self.mirror_then_changes(
            {"products": 1, "references": 1, "stock": 3}, ("references", "products", "balances"))
        self.assertEqual(moved["products"], sorted((c,) for c in touched["products"]))
        self.assertEqual(moved["balances"], sorted((c,) for c in touched["stock"]))
        self.assertEqual(moved["references"], sorted((c,) for c in touched["references"]))
        want = ({("p", str(c)) for c in touched["products"]}
                | {("p", r) for r in touched["references"]}
                | {("i", str(c), "1") for c in touched["stock"]})
        self.assertEqual(rewritten, want)

    def test_through_the_api_hub(self):
        """The source reads through the TOTVS Moda API Hub (its key on every
        request): the same mirror, then only the changes; the key in no file
        of the runs but the source's config."""
        self.totvs.stop()
        self.totvs = th.hub_emulator(**TOTVS_ARGS).start()
        self.src_cfg.update(api_url=self.totvs.url + th.HUB_PREFIX,
                            authentication={"mode": "api_hub", "api_key": th.HUB_KEY})
        touched, moved, rewritten = self.mirror_then_changes(
            {"products": 2, "stock": 2}, ("references", "products", "balances"))
        self.assertEqual(moved["products"], sorted((c,) for c in touched["products"]))
        self.assertEqual(moved["balances"], sorted((c,) for c in touched["stock"]))
        self.assertEqual(moved["references"], [])
        self.assertEqual(rewritten, {("p", str(c)) for c in touched["products"]}
                         | {("i", str(c), "1") for c in touched["stock"]})
        c = self.totvs.get("/_admin/stats")["counters"]
        self.assertEqual(c.get("hub_refused", 0), 0)
        self.assertGreater(c.get("api_requests", 0), 0)
        for path in self.wd.files():
            if not path.endswith(".src.json"):
                with open(path, "rb") as f:
                    self.assertNotIn(th.HUB_KEY.encode(), f.read(), path)

    def test_source_killed_mid_run_then_rerun(self):
        self.killed_then_rerun("source-totvs-moda")

    def test_destination_killed_mid_run_then_rerun(self):
        self.killed_then_rerun("destination-shops")


class ToCrm360(PipelineCase):
    example = "totvs-crm360"

    def setUp(self):
        super().setUp()
        self.dst = ch.start_emulator()
        self.dst_cfg = dict(load(self.example, "destination.json"), api_url=self.dst.url,
                            api_key=ch.API_KEY, brand=BRAND, requests_per_second=0,
                            dead_letter_path=self.wd.join("dead-letters.jsonl"))

    def dest_binary(self):
        return os.path.abspath(lib.OPTIONS.crm360)

    def total_records(self):
        dump = self.totvs.get("/_admin/dump")
        return len(dump["individuals"]) + len(dump["orders"])

    def expected(self):
        dump = self.totvs.get("/_admin/dump")
        customers = {str(c["code"]): {
            "email": c["emails"][0]["email"], "name": c["name"], "document": c["cpf"],
            "attributes": {"city": c["addresses"][0]["cityName"],
                           "state": c["addresses"][0]["stateAbbreviation"],
                           "gender": c["gender"], "birth_date": c["birthDate"],
                           "phone": c["phones"][0]["number"]},
            "created_at": rfc3339(c["insertDate"]),
            "updated_at": rfc3339(c["maxChangeFilterDate"])} for c in dump["individuals"]}
        orders = {str(o["orderId"]): {
            "customer_external_id": str(o["customerCode"]),
            "status": STATUS[o["statusOrder"]], "currency": "BRL",
            "total": "%.2f" % o["totalAmountOrder"],
            "items": [{"sku": str(i["productCode"]), "quantity": i["quantity"],
                       "unit_price": "%.2f" % i["price"]} for i in o["items"]],
            "placed_at": rfc3339(o["orderDate"]),
            "updated_at": rfc3339(o["maxChangeFilterDate"])} for o in dump["orders"]}
        return customers, orders

    def store(self):
        dump = self.dst.get("/_admin/dump")
        return tuple({r["external_id"]: r for r in dump[o] if r["brand"] == BRAND}
                     for o in ("customers", "orders"))

    def assert_mirrors(self):
        for want, got in zip(self.expected(), self.store()):
            self.assertEqual(sorted(got), sorted(want))
            for k, w in want.items():
                self.assertEqual({f: got[k].get(f) for f in w}, w, k)
        self.assertFalse(os.path.exists(self.wd.join("dead-letters.jsonl"))
                         and os.path.getsize(self.wd.join("dead-letters.jsonl")))

    def updated_at(self):
        customers, orders = self.store()
        out = {("c", k): v["updated_at"] for k, v in customers.items()}
        out.update({("o", k): v["updated_at"] for k, v in orders.items()})
        return out

    def assert_applied_once(self):
        seen = set()
        for e in self.dst.get("/_admin/applied"):
            key = (e.get("object"), e.get("external_id"), e.get("updated_at"))
            self.assertNotIn(key, seen, "applied twice: %r" % (key,))
            seen.add(key)

    def test_mirror_then_only_changes(self):
        touched, moved, rewritten = self.mirror_then_changes(
            {"individuals": 3, "orders": 2, "new_orders": 2}, ("individuals", "sales_orders"))
        self.assertEqual(moved["individuals"], sorted((c,) for c in touched["individuals"]))
        self.assertEqual(moved["sales_orders"],
                         sorted(tuple(k) for k in touched["orders"] + touched["new_orders"]))
        orders = {(o["branchCode"], o["orderCode"]): str(o["orderId"])
                  for o in self.totvs.get("/_admin/dump")["orders"]}
        want = ({("c", str(c)) for c in touched["individuals"]}
                | {("o", orders[tuple(k)]) for k in touched["orders"] + touched["new_orders"]})
        self.assertEqual(rewritten, want)

    def test_source_killed_mid_run_then_rerun(self):
        self.killed_then_rerun("source-totvs-moda")

    def test_destination_killed_mid_run_then_rerun(self):
        self.killed_then_rerun("destination-crm360")

    def test_through_ab_run(self):
        d = self.wd.join("conf")
        os.mkdir(d)
        self.wd.write_json("conf/source.json", self.src_cfg)
        self.wd.write_json("conf/destination.json", self.dst_cfg)
        self.wd.write_json("conf/catalog.json", load(self.example, "destination-catalog.json"))

        def ab_run(name):
            res = lib.run_connector(os.path.abspath(lib.OPTIONS.abrun), [
                "--source", lib.binary(), "--destination", self.dest_binary(),
                "--config-dir", d], self.wd, name=name)
            self.assertEqual(res.rc, 0, res.stderr.decode()[-3000:])
            self.assertNotIn(th.PASSWORD.encode(), res.stdout + res.stderr)
            return res

        ab_run("abrun1")
        self.assert_mirrors()
        before = self.updated_at()
        time.sleep(1.1)
        touched = self.totvs.post("/_admin/mutate", {"orders": 2, "seed": 4})
        time.sleep(1.1)
        cfg = dict(self.src_cfg, lookback_seconds=0)
        self.wd.write_json("conf/source.json", cfg)
        ab_run("abrun2")
        self.assert_mirrors()
        orders = {(o["branchCode"], o["orderCode"]): str(o["orderId"])
                  for o in self.totvs.get("/_admin/dump")["orders"]}
        after = self.updated_at()
        self.assertEqual({k for k, v in after.items() if before.get(k) != v},
                         {("o", orders[tuple(k)]) for k in touched["orders"]})


if __name__ == "__main__":
    def extra(p):
        p.add_argument("--shops", required=True, help="the destination-shops binary")
        p.add_argument("--crm360", required=True, help="the destination-crm360 binary")
        p.add_argument("--abrun", required=True, help="the ab-run binary")

    lib.main(__doc__, extra_args=extra)
