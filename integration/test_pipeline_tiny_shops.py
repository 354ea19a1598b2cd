#!/usr/bin/env python3
"""A whole pipeline through ab-run: source-tiny into destination-shops,
between the Tiny and Shops emulators, with the shipped mapping
(examples/tiny-shops/). What Shops holds equals what Tiny holds, mapped
(products with their variants, stock as inventory); a second, incremental
run moves only the products that changed; a SIGKILL of the source or of
the destination mid-run and a rerun lose nothing and apply nothing twice.

    python3 integration/test_pipeline_tiny_shops.py --bin build/gcc/tools/ab-run/ab-run \\
        --source build/gcc/sources/tiny/source-tiny \\
        --dest build/gcc/destinations/shops/destination-shops
"""
import datetime
import json
import os
import signal
import time
import unittest

import lib
import shops_helpers as sh
import tiny_helpers as th

EXAMPLES = os.path.join(os.path.dirname(lib.HERE), "examples", "tiny-shops")
BRAND = "Loja Tiny"
BRT = datetime.timezone(datetime.timedelta(hours=-3))


def load(name):
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
        return json.load(f)


def utc(brt_text):
    t = datetime.datetime.strptime(brt_text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=BRT)
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def expected(dump):
    """The Tiny account as Shops should hold it: sku -> product (without
    active), sku -> stock quantity."""
    products, stock = {}, {}
    for p in dump["produtos"]:
        base = {"brand": BRAND, "currency": "BRL", "updated_at": utc(p["dataAlteracao"])}
        products[p["sku"]] = dict(base, sku=p["sku"], title=p["descricao"],
                                  price="%.2f" % p["precos"]["preco"])
        for v in p["variacoes"]:
            products[v["sku"]] = dict(base, sku=v["sku"], parent_sku=p["sku"],
                                      title=v["descricao"], price="%.2f" % v["precos"]["preco"],
                                      attributes={{"Tamanho": "size", "Cor": "color"}[g["chave"]]: g["valor"]
                                                  for g in v["grade"]})
    for s in dump["estoque"].values():
        stock[s["codigo"]] = s["saldo"]
    return products, stock


def children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return out


def descendant_running(pid, needle):
    """The pid of a descendant of pid whose command line holds needle."""
    todo = children(pid)
    while todo:
        c = todo.pop()
        try:
            with open("/proc/%d/cmdline" % c, "rb") as f:
                if needle.encode() in f.read():
                    return c
        except OSError:
            pass
        todo += children(c)
    return None


class PipelineCase(unittest.TestCase):
    tiny_args = {}

    def setUp(self):
        self.wd = lib.Workdir("ab-tiny-shops-")
        self.tiny = th.emulator(**self.tiny_args).start()
        self.shops = sh.start_emulator()
        self.cfgdir = self.wd.join("cfg")
        os.mkdir(self.cfgdir)
        src = dict(load("source.json"), **th.config(self.tiny, page_size=10))
        del src["start_date"]
        dst = load("destination.json")
        for m in dst["stream_mappings"]:
            if "brand" in m["fields"]:
                m["fields"]["brand"] = {"value": BRAND}
        dst.update(sh.config(self.shops.url, self.wd, min_commit_records=40,
                             max_commit_interval_seconds=1))
        for name, obj in (("source.json", src), ("destination.json", dst),
                          ("catalog.json", load("catalog.json"))):
            with open(os.path.join(self.cfgdir, name), "w") as f:
                json.dump(obj, f)
        self.state = self.wd.join("state.json")

    def tearDown(self):
        self.tiny.stop()
        self.shops.stop()
        self.wd.cleanup(keep=lib.test_failed(self))

    def args(self, capture=None):
        out = ["--source", os.path.abspath(lib.OPTIONS.source), "--destination",
               os.path.abspath(lib.OPTIONS.dest), "--config-dir", self.cfgdir,
               "--state", self.state]
        return out + (["--capture", capture] if capture else [])

    def run_ab(self, name, capture=None):
        res = lib.run_connector(lib.binary(), self.args(capture), self.wd, name=name,
                                timeout=300)
        self.assertEqual(lib.sanitizer_report(res.stderr), "")
        for secret in (th.RT0, "tiny-secret", sh.SECRET):
            lib.assert_absent(secret, paths=[capture] if capture else [], blobs=[res.stderr])
        return res

    def assert_shops_holds_tiny(self):
        products, stock = expected(self.tiny.get("/_admin/dump"))
        held = sh.dump_by_key(self.shops.get("/_admin/dump"))
        got = {k: {f: v for f, v in p.items() if f != "active"}
               for k, p in held["products"].items()}
        self.assertEqual(got, products)
        # the dotted targets attributes.size and attributes.color: one object
        variants = [p for p in held["products"].values() if p.get("parent_sku")]
        self.assertTrue(variants)
        for p in variants:
            self.assertEqual(sorted(p["attributes"]), ["color", "size"], p["sku"])
        self.assertTrue(all(p["active"] for p in held["products"].values()))
        self.assertEqual({i["sku"]: i["quantity"] for i in held["inventory"].values()}, stock)
        self.assertEqual({i["location"] for i in held["inventory"].values()}, {"default"})

    def assert_nothing_applied_twice(self):
        applied = self.shops.get("/_admin/applied")
        entries = applied["applied"] if isinstance(applied, dict) else applied
        seen = set()
        for e in entries:
            key = (e.get("object"), e.get("sku"), e.get("location"), e.get("updated_at"))
            self.assertNotIn(key, seen, "applied twice: %s" % (key,))
            seen.add(key)

    def records(self, capture):
        out = {}
        with open(capture, "rb") as f:
            for line in f:
                if line.startswith(b'{"type":"RECORD"'):
                    m = json.loads(line)
                    out.setdefault(m["record"]["stream"], []).append(m["record"]["data"])
        return out



class Pipeline(PipelineCase):
    tiny_args = {"contacts": 5, "products": 30, "orders": 5}

    def test_pipeline_then_incremental(self):
        res = self.run_ab("first")
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_shops_holds_tiny()
        time.sleep(1.1)
        touched = self.tiny.post("/_admin/mutate", {"produtos": 3, "stock": 4, "seed": 9})
        time.sleep(1.1)
        cap = self.wd.join("second.jsonl")
        res = self.run_ab("second", cap)
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_shops_holds_tiny()
        moved = self.records(cap)
        self.assertEqual(sorted(r["id"] for r in moved["produtos"]), sorted(touched["produtos"]))
        dump = self.tiny.get("/_admin/dump")
        variants = {v["id"] for p in dump["produtos"] if p["id"] in touched["produtos"]
                    for v in p["variacoes"]}
        self.assertEqual({r["id"] for r in moved.get("variacoes", [])}, variants)
        # stock has no change filter: every balance again
        self.assertEqual(len(moved["estoque"]), len(dump["estoque"]))
        self.assert_nothing_applied_twice()



class Kills(PipelineCase):
    tiny_args = {"contacts": 5, "products": 400, "orders": 5}

    def kill_mid_run(self, side):
        conn = lib.Connector(lib.binary(), self.args(self.wd.join("killed.jsonl")), self.wd,
                             name="killed-" + side)
        needle = os.path.basename(lib.OPTIONS.source if side == "source" else lib.OPTIONS.dest)
        deadline = time.monotonic() + 60
        # a commit acknowledged (the state file exists), the run not over
        while not os.path.exists(self.state):
            self.assertLess(time.monotonic(), deadline, "no state before the deadline")
            self.assertIsNone(conn.poll(), "finished before it could be killed")
            time.sleep(0.01)
        pid = descendant_running(conn.proc.pid, needle)
        self.assertIsNotNone(pid, "no %s process" % side)
        os.kill(pid, signal.SIGKILL)
        res = conn.wait()
        self.assertEqual(res.rc, 3 if side == "source" else 4, res.describe())
        with open(self.state) as f:
            self.assertTrue(json.load(f))
        res = self.run_ab("rerun-" + side)
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_shops_holds_tiny()
        self.assert_nothing_applied_twice()

    def test_kill_source_mid_run(self):
        self.kill_mid_run("source")

    def test_kill_destination_mid_run(self):
        self.kill_mid_run("destination")


if __name__ == "__main__":
    lib.main(__doc__, extra_args=lambda p: (p.add_argument("--source", required=True),
                                            p.add_argument("--dest", required=True)))
