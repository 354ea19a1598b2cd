#!/usr/bin/env python3
"""A whole pipeline: source-bling | destination-crm360, a shell pipe between
the Bling and CRM360 emulators, with the shipped mapping
(examples/bling-crm360/). What CRM360 holds equals what Bling holds, mapped;
a second run, fed the destination's states and the source's rotated config,
moves only what changed; a SIGKILL of the source or of the destination
mid-run and a rerun lose nothing and apply nothing twice.

    python3 integration/test_pipeline_bling_crm360.py \\
        --bin build/gcc/sources/bling/source-bling --dest build/gcc/destinations/crm360/destination-crm360
"""
import json
import os
import shlex
import signal
import subprocess
import time
import unittest

import bling_helpers as bh
import crm360_helpers as ch
import lib

EXAMPLES = os.path.join(os.path.dirname(lib.HERE), "examples", "bling-crm360")
BRAND = "acme"
STATUS = {6: "pending", 15: "paid", 9: "delivered", 12: "cancelled"}


def load(name):
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
        return json.load(f)


def expected(dump):
    """The Bling account as CRM360 should hold it (without updated_at)."""
    customers = {str(c["id"]): {"email": c["email"], "name": c["nome"],
                                "document": c["numeroDocumento"],
                                "attributes": {"address": c["endereco"]["geral"],
                                               "phone": c["telefone"],
                                               "mobile": c["celular"]}}
                 for c in dump["contatos"]}
    orders = {str(o["id"]): {
        "customer_external_id": str(o["contato"]["id"]),
        "status": STATUS.get(o["situacao"]["id"], "pending"), "currency": "BRL",
        "total": "%.2f" % o["total"],
        "items": [{"sku": i["codigo"], "quantity": i["quantidade"],
                   "unit_price": "%.2f" % i["valor"]} for i in o["itens"]],
        "placed_at": o["data"] + "T03:00:00Z"} for o in dump["pedidos"]}
    return customers, orders


class Pipeline(unittest.TestCase):
    def setUp(self):
        self.wd = lib.Workdir("ab-pipe-")
        self.bling = bh.emulator(contacts=40, products=10, orders=30).start()
        self.crm = ch.start_emulator()
        self.src_cfg = dict(load("source.json"), **bh.config(self.bling))
        del self.src_cfg["start_date"]
        self.dst_cfg = dict(load("destination.json"), api_url=self.crm.url, api_key=ch.API_KEY,
                            brand=BRAND, requests_per_second=0,
                            dead_letter_path=self.wd.join("dead-letters.jsonl"))
        self.state = None

    def tearDown(self):
        self.bling.stop()
        self.crm.stop()
        self.wd.cleanup(keep=lib.test_failed(self))

    def start(self, name):
        """source | tee | destination in a shell; the tee keeps what the
        source wrote (its CONTROL messages) for the test."""
        src = [lib.binary(), "read", "--config", self.wd.write_json(name + ".src.json", self.src_cfg),
               "--catalog", os.path.join(EXAMPLES, "source-catalog.json")]
        if self.state is not None:
            src += ["--state", self.wd.write_json(name + ".state.json", self.state)]
        dst = [dest_binary(), "write", "--config",
               self.wd.write_json(name + ".dst.json", self.dst_cfg),
               "--catalog", os.path.join(EXAMPLES, "destination-catalog.json")]
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
        # the next run: the destination's states, the source's rotated config
        self.state = bh.last_states(dst, self.state)
        for st in self.state:
            st.pop("destinationStats", None)
        self.src_cfg = bh.latest_config(src, self.src_cfg)
        return proc.returncode, src, dst, err

    def run_pipe(self, name):
        rc, src, dst, err = self.finish(self.start(name))
        self.assertEqual(rc, 0, err.decode()[-3000:])
        return src, dst

    def crm_store(self):
        dump = self.crm.get("/_admin/dump")
        out = {}
        for obj in ("customers", "orders"):
            out[obj] = {r["external_id"]: r for r in dump[obj] if r["brand"] == BRAND}
        return out

    def assert_mirrors_bling(self):
        want_c, want_o = expected(self.bling.get("/_admin/dump"))
        store = self.crm_store()
        self.assertEqual(sorted(store["customers"]), sorted(want_c))
        self.assertEqual(sorted(store["orders"]), sorted(want_o))
        for k, w in want_c.items():
            got = store["customers"][k]
            self.assertEqual({f: got.get(f) for f in w}, w, k)
        for k, w in want_o.items():
            got = store["orders"][k]
            self.assertEqual({f: got.get(f) for f in w}, w, k)
        return store

    def test_mirror_then_only_changes(self):
        src, dst = self.run_pipe("first")
        store = self.assert_mirrors_bling()
        self.assertFalse(os.path.exists(self.wd.join("dead-letters.jsonl"))
                         and os.path.getsize(self.wd.join("dead-letters.jsonl")))
        self.assertTrue(any(m["type"] == "CONTROL" for m in src))
        before = {o: {k: r["updated_at"] for k, r in store[o].items()} for o in store}
        time.sleep(1.1)
        touched = self.bling.post("/_admin/mutate", {"contatos": 3, "pedidos": 2,
                                                     "new_pedidos": 1, "seed": 9})
        time.sleep(1.1)
        self.src_cfg["lookback_seconds"] = 0
        src, dst = self.run_pipe("second")
        moved = {s: {str(r["id"]) for r in bh.records(src, s)} for s in ("contatos", "pedidos")}
        self.assertEqual(moved["contatos"], {str(i) for i in touched["contatos"]})
        self.assertEqual(moved["pedidos"],
                         {str(i) for i in touched["pedidos"] + touched["new_pedidos"]})
        store = self.assert_mirrors_bling()
        # only the changed records were written again
        for obj, stream in (("customers", "contatos"), ("orders", "pedidos")):
            rewritten = {k for k, r in store[obj].items()
                         if before[obj].get(k) != r["updated_at"]}
            self.assertEqual(rewritten, moved[stream], obj)

    def test_ab_run_keeps_the_rotated_token(self):
        """Through ab-run: the source's CONTROL message rewrites source.json,
        so the second run refreshes with the live token and moves only what
        changed."""
        d = self.wd.join("conf")
        os.mkdir(d)
        self.wd.write_json("conf/source.json", self.src_cfg)
        self.wd.write_json("conf/destination.json", self.dst_cfg)
        with open(os.path.join(EXAMPLES, "destination-catalog.json"), encoding="utf-8") as f:
            self.wd.write_json("conf/catalog.json", json.load(f))

        def ab_run(name):
            res = lib.run_connector(abrun_binary(), [
                "--source", lib.binary(), "--destination", dest_binary(), "--config-dir", d],
                self.wd, name=name)
            self.assertEqual(res.rc, 0, res.stderr.decode()[-3000:])
            return res

        res = ab_run("abrun1")
        self.assertIn(b"the source updated its config", res.stderr)
        with open(os.path.join(d, "source.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        self.assertNotEqual(cfg["refresh_token"], bh.RT0)
        self.assertEqual(oct(os.stat(os.path.join(d, "source.json")).st_mode & 0o777), "0o600")
        self.assertNotIn(cfg["refresh_token"].encode(), res.stderr)
        self.assert_mirrors_bling()
        before = {k: r["updated_at"] for k, r in self.crm_store()["orders"].items()}
        time.sleep(1.1)
        touched = self.bling.post("/_admin/mutate", {"pedidos": 2, "seed": 4})
        time.sleep(1.1)
        cfg["lookback_seconds"] = 0
        self.wd.write_json("conf/source.json", cfg)
        ab_run("abrun2")
        self.assert_mirrors_bling()
        after = self.crm_store()["orders"]
        self.assertEqual({k for k, r in after.items() if before.get(k) != r["updated_at"]},
                         {str(i) for i in touched["pedidos"]})

    def killed_then_rerun(self, victim, states):
        """victim (a command name) SIGKILLed once the source wrote that many
        states, then the pipeline run again from the destination's states."""
        # slow enough to be caught mid-stream: pages of 5, 20 requests/s;
        # batches of 5, so that the destination acknowledges states as it goes
        self.src_cfg.update(page_size=5, requests_per_second=20)
        self.dst_cfg.update(batch_size=5)
        proc = self.start("killed")
        deadline = time.monotonic() + 60
        while True:
            if os.path.exists(self.src_out):
                with open(self.src_out, "rb") as f:
                    if f.read().count(b'"type":"STATE"') >= states:
                        break
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.01)
        # both sides are children of the shell running the pipe
        pid = int(subprocess.check_output(["pgrep", "-P", str(proc.pid), "-f",
                                           victim]).split()[0])
        os.kill(pid, signal.SIGKILL)
        rc, src, dst, err = self.finish(proc, allow_partial=True)
        self.assertTrue(self.state, "no state reached the destination's output")
        self.assertLess(len(bh.records(src)), 70, "the source finished before the kill")
        acked = {st["stream"]["stream_descriptor"]["name"]: st["stream"]["stream_state"]
                 for st in self.state}
        # what the destination acknowledged is in CRM360
        store = self.crm_store()
        for name, obj in (("contatos", "customers"), ("pedidos", "orders")):
            if name not in acked:
                continue
            at = max(i for i, m in enumerate(src) if m["type"] == "STATE"
                     and m["state"]["stream"]["stream_descriptor"]["name"] == name
                     and m["state"]["stream"]["stream_state"] == acked[name])
            for r in bh.records(src[:at], name):
                self.assertIn(str(r["id"]), store[obj], "acknowledged, not in CRM360")
        self.run_pipe("rerun")
        self.assert_mirrors_bling()
        # nothing applied twice: every applied write is one distinct (object, key, updated_at)
        seen = set()
        for e in self.crm.get("/_admin/applied"):
            key = (e.get("object"), e.get("external_id"), e.get("updated_at"))
            self.assertNotIn(key, seen, "applied twice: %r" % (key,))
            seen.add(key)

    def test_source_killed_mid_run_then_rerun(self):
        self.killed_then_rerun("source-bling", 3)

    def test_destination_killed_mid_run_then_rerun(self):
        self.killed_then_rerun("destination-crm360", 6)


def dest_binary():
    return os.path.abspath(lib.OPTIONS.dest)


def abrun_binary():
    return os.path.abspath(lib.OPTIONS.abrun)


if __name__ == "__main__":
    def extra(p):
        p.add_argument("--dest", required=True, help="the destination-crm360 binary")
        p.add_argument("--abrun", required=True, help="the ab-run binary")

    lib.main(__doc__, extra_args=extra)
