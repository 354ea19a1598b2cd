#!/usr/bin/env python3
"""A whole pipeline through ab-run: source-bling into destination-shops,
between the Bling and Shops emulators, with the shipped mapping
(examples/bling-shops/: produtos and variacoes into products with variants,
estoques into inventory). What Shops holds equals what Bling holds, mapped;
a second run, with ab-run's state file and the rotated refresh token it
saved, moves only what changed; a SIGKILL of the source or of the
destination mid-run and a rerun lose nothing and apply nothing twice.

    python3 integration/test_pipeline_bling_shops.py \\
        --bin build/gcc/sources/bling/source-bling \\
        --dest build/gcc/destinations/shops/destination-shops \\
        --abrun build/gcc/tools/ab-run/ab-run
"""
import json
import os
import signal
import time
import unittest

import bling_helpers as bh
import lib
import shops_helpers as sh

EXAMPLES = os.path.join(os.path.dirname(lib.HERE), "examples", "bling-shops")
BRAND = "acme"
PLACEHOLDER_BRAND = "<your brand>"


def load(name):
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
        return json.load(f)


def expected(dump):
    """The Bling account as Shops should hold it (without updated_at):
    sku -> product, sku -> inventory quantity."""
    products = {}
    for stream in ("produtos", "variacoes"):
        for p in dump[stream]:
            item = {"brand": BRAND, "title": p["nome"], "description": p["descricaoCurta"],
                    "price": "%.2f" % p["preco"], "currency": "BRL",
                    "active": p["situacao"] == "A", "images": [p["imagemURL"]]}
            if stream == "variacoes":
                item["parent_sku"] = str(p["variacao"]["produtoPai"]["id"])
                pairs = dict(kv.split(":") for kv in p["variacao"]["nome"].split(";"))
                item["attributes"] = {"size": pairs.pop("Tamanho"), "color": pairs.pop("Cor")}
                assert not pairs, pairs  # the emulator's variations: size and colour
            products[str(p["id"])] = item
    inventory = {str(e["produto"]["id"]): int(e["saldoVirtualTotal"]) for e in dump["estoques"]}
    return products, inventory


def children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return out


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


class Pipeline(unittest.TestCase):
    def setUp(self):
        self.wd = lib.Workdir("ab-pipe-shops-")
        self.bling = bh.emulator(contacts=5, products=30, orders=5).start()
        self.shops = sh.start_emulator()
        self.conf = self.wd.join("conf")
        os.mkdir(self.conf)
        src = dict(load("source.json"), **bh.config(self.bling))
        del src["start_date"]
        src["lookback_seconds"] = 0
        dst = load("destination.json")
        for m in dst["stream_mappings"]:
            if m["fields"].get("brand") == {"value": PLACEHOLDER_BRAND}:
                m["fields"]["brand"] = {"value": BRAND}
        dst.update(api_url=self.shops.url, client_id=sh.CLIENT_ID, client_secret=sh.SECRET,
                   channel=sh.CHANNEL, requests_per_second=0,
                   dead_letter_path=self.wd.join("dead-letters.jsonl"))
        self.write("source.json", src)
        self.write("destination.json", dst)
        self.write("catalog.json", load("catalog.json"))
        self.state_path = os.path.join(self.conf, "state.json")

    def tearDown(self):
        self.bling.stop()
        self.shops.stop()
        self.wd.cleanup(keep=lib.test_failed(self))

    def write(self, name, obj):
        with open(os.path.join(self.conf, name), "w", encoding="utf-8") as f:
            json.dump(obj, f)

    def read(self, name):
        with open(os.path.join(self.conf, name), encoding="utf-8") as f:
            return json.load(f)

    def update(self, name, **over):
        cfg = self.read(name)
        cfg.update(over)
        self.write(name, cfg)

    def args(self, capture=None):
        a = ["--source", lib.binary(), "--destination", os.path.abspath(lib.OPTIONS.dest),
             "--config-dir", self.conf]
        if capture:
            a += ["--capture", self.wd.join(capture)]
        return a

    def ab_run(self, name, capture=None):
        res = lib.run_connector(os.path.abspath(lib.OPTIONS.abrun), self.args(capture), self.wd,
                                name=name, timeout=300)
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_no_secret(res.stderr)
        return res

    def captured(self, name):
        with open(self.wd.join(name), "rb") as f:
            return lib.parse_messages(f.read())

    def assert_no_secret(self, blob):
        self.assertEqual(lib.sanitizer_report(blob), "")
        lib.assert_absent(sh.SECRET, blobs=[blob])
        lib.assert_absent(self.read("source.json")["refresh_token"], blobs=[blob])

    def store(self):
        dump = self.shops.get("/_admin/dump?channel=" + sh.CHANNEL)
        products = {p["sku"]: p for p in dump["products"]}
        inventory = {}
        for i in dump["inventory"]:
            self.assertEqual(i["location"], "default")
            inventory[i["sku"]] = i
        return products, inventory

    def applied(self):
        return self.shops.get("/_admin/applied")

    def assert_mirrors_bling(self):
        want_p, want_i = expected(self.bling.get("/_admin/dump"))
        self.assertTrue(any("parent_sku" in p for p in want_p.values()))
        products, inventory = self.store()
        self.assertEqual(sorted(products), sorted(want_p))
        for sku, w in want_p.items():
            got = products[sku]
            self.assertEqual({f: got.get(f) for f in w}, w, sku)
            if "parent_sku" not in w:
                self.assertNotIn("parent_sku", got, sku)
                self.assertNotIn("attributes", got, sku)
        self.assertEqual({s: r["quantity"] for s, r in inventory.items()}, want_i)
        dead = self.wd.join("dead-letters.jsonl")
        self.assertFalse(os.path.exists(dead) and os.path.getsize(dead), "rejected records")
        return products, inventory

    def assert_nothing_applied_twice(self):
        seen = set()
        for e in self.applied():
            key = (e["object"], e["sku"], e["location"], e["updated_at"])
            self.assertNotIn(key, seen, "applied twice: %r" % (key,))
            seen.add(key)

    # -------------------------------------------------------------------

    def test_mirror_then_only_changes(self):
        rt0 = self.read("source.json")["refresh_token"]
        res = self.ab_run("first", capture="first.jsonl")
        self.assertIn(b"the source updated its config", res.stderr)
        self.assertNotEqual(self.read("source.json")["refresh_token"], rt0)
        self.assert_mirrors_bling()
        msgs = self.captured("first.jsonl")
        self.assertFalse([m for m in msgs if m["type"] == "CONTROL"], "CONTROL in the capture")
        states = {s["stream"]["stream_descriptor"]["name"] for s in self.read("state.json")}
        self.assertEqual(states, {"produtos", "variacoes", "estoques"})
        seq = len(self.applied())

        time.sleep(1.1)
        touched = self.bling.post("/_admin/mutate", {"produtos": 3, "stock": 4, "seed": 9})
        time.sleep(1.1)
        self.assertTrue(touched["variacoes"], "no product with variations was changed")
        self.ab_run("second", capture="second.jsonl")
        self.assert_mirrors_bling()
        msgs = self.captured("second.jsonl")
        moved = {s: sorted(r["id"] for r in bh.records(msgs, s))
                 for s in ("produtos", "variacoes")}
        self.assertEqual(moved["produtos"], sorted(touched["produtos"]))
        self.assertEqual(moved["variacoes"], sorted(touched["variacoes"]))
        # products: only the changed ones were applied again
        again = [e for e in self.applied()[seq:] if e["object"] == "products"]
        self.assertEqual(sorted(e["sku"] for e in again),
                         sorted(str(i) for i in touched["produtos"] + touched["variacoes"]))
        # stock has no change filter at Bling: all of it is read and written
        # again (a newer updated_at), and the changed quantities are Shops'
        stock = [e for e in self.applied()[seq:] if e["object"] == "inventory"]
        self.assertEqual(len(stock), len(self.bling.get("/_admin/dump")["estoques"]))
        self.assert_nothing_applied_twice()

        # nothing changed: no product moves
        seq = len(self.applied())
        self.ab_run("third", capture="third.jsonl")
        msgs = self.captured("third.jsonl")
        self.assertEqual(bh.records(msgs, "produtos") + bh.records(msgs, "variacoes"), [])
        self.assertEqual([e for e in self.applied()[seq:] if e["object"] == "products"], [])
        self.assert_mirrors_bling()

    def side_pid(self, proc, name):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for c in children(proc.pid):
                line = cmdline(c)
                if name in line and (" read " in line or " write " in line):
                    return c
            time.sleep(0.01)
        self.fail("no %s process under ab-run" % name)

    def killed_then_rerun(self, victim, rc):
        # slow enough to be caught mid-stream: pages of 5 at 20 requests/s;
        # the destination commits every 10 records
        self.update("source.json", page_size=5, requests_per_second=20)
        self.update("destination.json", min_commit_records=10, part_max_items=10)
        proc = lib.Connector(os.path.abspath(lib.OPTIONS.abrun), self.args("killed.jsonl"),
                             self.wd, name="killed")
        pid = self.side_pid(proc, victim)
        deadline = time.monotonic() + 120
        while True:
            states = self.read("state.json") if os.path.exists(self.state_path) else []
            names = {s["stream"]["stream_descriptor"]["name"] for s in states}
            if "variacoes" in names:
                break
            self.assertIsNone(proc.poll(), "ab-run ended before the kill")
            self.assertLess(time.monotonic(), deadline, "no state for variacoes")
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        res = proc.wait(120)
        self.assertEqual(res.rc, rc, res.describe())
        self.assertIn(b"killed by signal 9", res.stderr)
        self.assert_no_secret(res.stderr)
        msgs = self.captured("killed.jsonl")
        self.assertFalse(bh.records(msgs, "estoques"), "the kill came too late")
        # every record before a state the state file holds is in Shops
        products, _ = self.store()
        acked = 0
        for st in self.read("state.json"):
            name = st["stream"]["stream_descriptor"]["name"]
            at = max(i for i, m in enumerate(msgs) if m["type"] == "STATE"
                     and m["state"]["stream"]["stream_descriptor"]["name"] == name
                     and m["state"]["stream"]["stream_state"] == st["stream"]["stream_state"])
            for r in bh.records(msgs[:at], name):
                self.assertIn(str(r["id"]), products, "acknowledged, not in Shops")
                acked += 1
        self.assertGreater(acked, 0)

        self.ab_run("rerun")
        self.assert_mirrors_bling()
        self.assert_nothing_applied_twice()
        # every product was applied exactly once over both runs
        skus = [e["sku"] for e in self.applied() if e["object"] == "products"]
        self.assertEqual(len(skus), len(set(skus)))

    def test_source_killed_mid_run_then_rerun(self):
        self.killed_then_rerun("source-bling", 3)

    def test_destination_killed_mid_run_then_rerun(self):
        self.killed_then_rerun("destination-shops", 4)


if __name__ == "__main__":
    def extra(p):
        p.add_argument("--dest", required=True, help="the destination-shops binary")
        p.add_argument("--abrun", required=True, help="the ab-run binary")

    lib.main(__doc__, extra_args=extra)
