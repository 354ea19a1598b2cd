#!/usr/bin/env python3
"""Refreshes of CRM360 orders: the key ledger in object storage.

    test_crm360_orders_refresh.py --bin build/destinations/crm360/destination-crm360

An order has no field to carry a generation tag, so every committed batch
of an orders stream puts the keys it committed as one object (a run) of the
stream's refresh ledger in the S3 bucket of object_storage_config. Once a
truncating orders stream is COMPLETE and committed, the runs are merged and
the orders earlier generations recorded and this one did not load are
deleted. The real binary against the CRM360 emulator and the S3-compatible
emulator (SigV4 verified, ListObjectsV2 pages of 3 keys):

* two syncs, the second truncating with fewer keys: exactly the missing
  orders are deleted; an order written by someone else stays, and an order
  of generation 1 written again meanwhile with a newer updated_at is
  `stale` and stays; the earlier generation's runs leave the bucket;
* the truncating sync SIGKILLed in the middle (states acknowledged, nothing
  deleted), then the restarted attempt of the same generation: what the
  first attempt loaded stays, the old orders go;
* an incomplete truncating stream deletes nothing;
* customers and orders truncating in the same sync: both removed;
* a bucket refusing the ledger's PUT fails the sync before any STATE
  covering the orders goes out; check warns when the ledger cannot be
  listed;
* a truncating orders stream with no object storage is a config_error at
  the start, naming the stream and the option.
"""

import json
import os
import re
import secrets
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from airbyte_input import record, stream_state, stream_status  # noqa: E402
from crm360_helpers import API_KEY, CrmCase, catalog, key_of  # noqa: E402

S3_EMULATOR = os.path.join(lib.EMULATORS, "s3_emulator.py")
KEY_ID = "AKIATEST" + secrets.token_hex(4).upper()
SECRET = "s3-secret-" + secrets.token_hex(16)
T0 = 1767225600  # 2026-01-01T00:00:00Z
LEDGER = "rej/crm/refresh-ledger/orders/"


def rfc3339(secs):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(secs))


def customer(i):
    return {"external_id": "C-%04d" % i, "brand": "acme", "email": "c%d@example.com" % i,
            "updated_at": rfc3339(T0 + i)}


def order(i, gen):
    return {"external_id": "O-%04d" % i, "brand": "acme", "customer_external_id": "C-%04d" % (i % 5),
            "status": "paid", "currency": "BRL", "total": "10.00",
            "items": [{"sku": "S-%d" % gen, "quantity": 1, "unit_price": "10.00"}],
            "placed_at": rfc3339(T0), "updated_at": rfc3339(T0 + gen * 100000 + i)}


def order_messages(ids, gen, every=10, end="COMPLETE", stream="orders", prefix="O"):
    out = []
    for n, i in enumerate(ids, 1):
        out.append(record(stream, dict(order(i, gen), external_id="%s-%04d" % (prefix, i))))
        if n % every == 0 or n == len(ids):
            out.append(stream_state(stream, {"n": n}))
    if end:
        out.append(stream_status(stream, end))
    return out


def customer_messages():
    return [record("customers", customer(i)) for i in range(5)] + [
        stream_state("customers", {"n": 5}), stream_status("customers", "COMPLETE")]


def generation(gen, minimum, streams=("orders",)):
    cat = catalog(streams=streams)
    for s in cat["streams"]:
        s["generation_id"] = gen
        s["minimum_generation_id"] = minimum
    return cat


class OrdersRefresh(CrmCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.s3 = lib.Server(S3_EMULATOR, ["--bucket", "rejects", "--page-size", "3",
                                          "--refuse", "locked", "--no-list", "unlisted",
                                          "--key", "%s:%s" % (KEY_ID, SECRET)],
                            name="s3").start()

    @classmethod
    def tearDownClass(cls):
        cls.s3.stop()
        super().tearDownClass()

    secret_values = CrmCase.secret_values + (SECRET,)

    def storage(self, bucket="rejects"):
        return {"storage_type": "S3", "endpoint": self.s3.url, "region": "us-east-1",
                "bucket": bucket, "prefix": "rej/crm", "access_key_id": KEY_ID,
                "secret_access_key": SECRET}

    def setUp(self):
        super().setUp()
        # an empty bucket per test: the ledger of earlier tests is gone
        self.clear_bucket()

    def clear_bucket(self):
        status_, got = lib.http_json("POST", self.s3.url + "/_admin/clear", {})
        self.assertEqual(status_, 200, got)

    def objects(self):
        status_, got = lib.http_json("GET", self.s3.url + "/_admin/objects")
        self.assertEqual(status_, 200)
        return got["objects"]

    def ledger(self):
        """{generation: [run texts]} of the orders stream."""
        out = {}
        for o in self.objects():
            if o["key"].startswith(LEDGER):
                gen = int(o["key"][len(LEDGER):].split("/")[1][1:])
                out.setdefault(gen, []).append(o["text"])
        return out

    def live_orders(self):
        return {key_of(r): r for r in self.dump()["orders"] if not r.get("deleted")}

    def run_gen(self, name, msgs, cat, **cfg):
        path = self.wd.write_lines(name + ".jsonl", msgs)
        cfg.setdefault("object_storage_config", self.storage())
        return self.write(path, cfg=self.cfg(dead_letter_path=None, **cfg), cat=cat, name=name)

    def load_gen1(self, ids, batch_size=7):
        res = self.run_gen("gen1", customer_messages() + order_messages(ids, 1),
                           generation(1, 0, streams=("customers", "orders")),
                           batch_size=batch_size)
        self.assert_ok(res)
        self.assertEqual(set(self.live_orders()), {"acme/O-%04d" % i for i in ids})
        ledger = self.ledger()
        self.assertEqual(list(ledger), [1], ledger)
        keys = [ln for run in ledger[1] for ln in run.splitlines()]
        self.assertEqual(sorted(k.split("\t")[0] for k in keys),
                         ["acme\\|O-%04d" % i for i in ids])
        for run in ledger[1]:
            lines = run.splitlines()
            self.assertEqual(lines, sorted(lines), "a run is sorted")
        return res

    def test_truncating_generation_deletes_exactly_the_missing_orders(self):
        gen1 = list(range(0, 40))
        gen2 = list(range(10, 30)) + list(range(40, 45))
        self.load_gen1(gen1, batch_size=1)  # 40 runs: more than the merge's fan-in of 32
        headers = {"Authorization": "Bearer " + API_KEY}
        # an order no stream loaded, and order 30 written again with a newer updated_at
        lib.http_json("POST", self.emu.url + "/v1/orders:batchUpsert",
                      {"records": [dict(order(900, 1)),
                                   dict(order(30, 1), updated_at=rfc3339(T0 + 900000))]},
                      dict(headers, **{"Idempotency-Key": "manual-orders-1"}))

        res = self.run_gen("gen2", order_messages(gen2, 2), generation(2, 2), batch_size=4)
        self.assert_ok(res)
        self.assertEqual(len(res.states), 3)
        live = self.live_orders()
        want = {"acme/O-%04d" % i for i in gen2} | {"acme/O-0900", "acme/O-0030"}
        self.assertEqual(set(live), want)
        for i in gen2:
            self.assertEqual(live["acme/O-%04d" % i]["items"][0]["sku"], "S-2")
        dead = {key_of(r): r for r in self.dump()["orders"] if r.get("deleted")}
        self.assertEqual(set(dead), {"acme/O-%04d" % i for i in list(range(0, 10)) +
                                     list(range(31, 40))})
        # deleted_at is the updated_at the ledger recorded (generation 1's)
        self.assertEqual(dead["acme/O-0005"]["deleted_at"], order(5, 1)["updated_at"])
        info = " ".join(res.logs("INFO"))
        self.assertIn("deleted 19, stale (written again meanwhile, kept) 1", info)
        passes = re.search(r"25 orders in generation 2, 40 in earlier generations, 20 of them "
                           r"to delete \((\d+) merge passes\)", info)
        self.assertIsNotNone(passes, info)
        self.assertEqual(int(passes.group(1)), 3, "40 earlier runs: 2 passes; 7 current: 1")
        # the earlier generation's runs are gone; generation 2's stay
        self.assertEqual(list(self.ledger()), [2])

        # the same generation again (a new attempt that loads part of it): nothing more goes
        res = self.run_gen("gen2-again", order_messages(gen2[:3], 2), generation(2, 2))
        self.assert_ok(res)
        self.assertEqual(set(self.live_orders()), want)
        # a later normal sync of generation 3 adds its runs, deletes nothing
        res = self.run_gen("gen3", order_messages([41], 3), generation(3, 0))
        self.assert_ok(res)
        self.assertEqual(set(self.live_orders()), want)
        self.assertEqual(sorted(self.ledger()), [2, 3])
        # nothing of it in the working directory or the temporary directory
        self.assertFalse([f for f in os.listdir(self.wd.path) if f.startswith("ab-keys-")])

    def test_killed_truncating_generation_then_restarted(self):
        gen1 = list(range(0, 60))
        gen2 = list(range(30, 90))
        self.load_gen1(gen1)
        msgs = order_messages(gen2, 2)
        head = msgs[:33]  # 30 records, 3 states
        self.assertEqual(head[-1]["type"], "STATE")
        data = b"".join(json.dumps(m).encode() + b"\n" for m in head)
        cfg_path = self.write_config(self.cfg(dead_letter_path=None, batch_size=5,
                                              object_storage_config=self.storage()),
                                     "gen2a.config.json")
        cat_path = self.wd.write_json("gen2a.catalog.json", generation(2, 2))
        conn = lib.Connector(lib.binary(), ["write", "--config", cfg_path, "--catalog", cat_path],
                             self.wd, name="gen2a", stdin=data, keep_stdin_open=True)
        conn.wait_for_states(3)
        conn.signal(signal.SIGKILL)
        res = self.finish(conn)
        self.assertEqual(len(res.states), 3, res.describe())
        # nothing deleted; the acknowledged orders of generation 2 are in its ledger
        self.assertEqual(set(self.live_orders()), {"acme/O-%04d" % i for i in range(0, 60)})
        keys2 = {ln.split("\t")[0] for run in self.ledger()[2] for ln in run.splitlines()}
        self.assertTrue({"acme\\|O-%04d" % i for i in range(30, 60)} <= keys2, keys2)

        # attempt 2 of generation 2, from after the last acknowledged state
        res = self.run_gen("gen2b", msgs[33:], generation(2, 2), batch_size=5)
        self.assert_ok(res)
        self.assertEqual(set(self.live_orders()), {"acme/O-%04d" % i for i in gen2})
        self.assertIn("deleted 30,", " ".join(res.logs("INFO")))
        self.assertEqual(list(self.ledger()), [2])

    def test_incomplete_truncating_stream_deletes_nothing(self):
        gen1 = list(range(0, 20))
        self.load_gen1(gen1)
        for end in (None, "INCOMPLETE"):
            res = self.run_gen("gen2-%s" % end, order_messages(range(15, 25), 2, end=end),
                               generation(2, 2))
            self.assert_ok(res)
            self.assertTrue(any("nothing of earlier generations is removed" in ln
                                for ln in res.logs("WARN")), res.logs())
            self.assertEqual(set(self.live_orders()), {"acme/O-%04d" % i for i in range(0, 25)})
            self.assertEqual(sorted(self.ledger()), [1, 2])

    def test_customers_and_orders_truncating_together(self):
        self.load_gen1(list(range(0, 12)))
        msgs = [record("customers", customer(i)) for i in (0, 1, 2)] + [
            stream_state("customers", {"n": 3}), stream_status("customers", "COMPLETE")]
        msgs += order_messages([1, 2, 3], 2)
        res = self.run_gen("gen2", msgs, generation(2, 2, streams=("customers", "orders")))
        self.assert_ok(res)
        self.assertEqual(set(self.live_orders()), {"acme/O-0001", "acme/O-0002", "acme/O-0003"})
        live_customers = {key_of(r) for r in self.dump()["customers"] if not r.get("deleted")}
        self.assertEqual(live_customers, {"acme/C-0000", "acme/C-0001", "acme/C-0002"})
        self.assertEqual(list(self.ledger()), [2])

    def test_two_orders_streams_in_the_same_batches(self):
        """Each stream has its own ledger; a batch holding both puts a run
        for each."""
        maps = [{"stream": "orders", "object": "orders"},
                {"stream": "web_orders", "object": "orders"}]
        streams = ("orders", "web_orders")
        self.assert_ok(self.run_gen("customers", customer_messages(),
                                    generation(1, 0, streams=("customers",))))

        def both(gen, o_ids, w_ids):
            a = order_messages(o_ids, gen, every=100)
            b = order_messages(w_ids, gen, every=100, stream="web_orders", prefix="W")
            recs = [m for pair in zip(a, b) for m in pair if m["type"] == "RECORD"]
            return recs + [m for m in a + b if m["type"] != "RECORD"]

        res = self.run_gen("gen1", both(1, range(10), range(10)), generation(1, 0, streams),
                           stream_mappings=maps, batch_size=6)
        self.assert_ok(res)
        self.assertEqual(len([o for o in self.objects() if o["key"].startswith(LEDGER)]), 8,
                         "4 batches, each with records of both streams")
        res = self.run_gen("gen2", both(2, range(5), range(5, 10)), generation(2, 2, streams),
                           stream_mappings=maps, batch_size=6)
        self.assert_ok(res)
        self.assertEqual(set(self.live_orders()), {"acme/O-%04d" % i for i in range(5)} |
                         {"acme/W-%04d" % i for i in range(5, 10)})

    def test_refused_ledger_put_fails_before_the_states(self):
        res = self.run_gen("customers", customer_messages(),
                           generation(1, 0, streams=("customers",)))
        self.assert_ok(res)
        res = self.run_gen("orders", order_messages(range(8), 1, every=4), generation(1, 0),
                           object_storage_config=self.storage("locked"), batch_size=4)
        self.assert_fatal(res, "config_error", ("refresh ledger", "AccessDenied"))
        self.assertEqual(res.states, [], "no STATE covers orders whose keys are not recorded")

    def test_check_warns_when_the_ledger_cannot_be_listed(self):
        res, st = self.check(self.cfg(dead_letter_path=None,
                                      object_storage_config=self.storage()))
        self.assertEqual(st["status"], "SUCCEEDED", res.describe())
        self.assertFalse([m for m in res.logs("WARN") if "refresh ledger" in m], res.describe())
        res, st = self.check(self.cfg(dead_letter_path=None,
                                      object_storage_config=self.storage("unlisted")))
        self.assertEqual(st["status"], "SUCCEEDED", res.describe())
        warn = [m for m in res.logs("WARN") if "listing the refresh ledger of orders failed" in m]
        self.assertEqual(len(warn), 1, res.describe())
        self.assertIn("AccessDenied", warn[0])
        self.assertIn("rej/crm/refresh-ledger/orders/", warn[0])

    def test_truncating_orders_without_object_storage(self):
        path = self.wd.write_lines("in.jsonl", order_messages([1], 2))
        res = self.write(path, cfg=self.cfg(), cat=generation(2, 2))
        err = self.assert_fatal(res, "config_error", ("stream 'orders'", "object_storage_config"))
        self.assertEqual(res.states, [])
        self.assertEqual(self.live_orders(), {})
        del err


if __name__ == "__main__":
    lib.main(__doc__)
