#!/usr/bin/env python3
"""Refreshes (generation_id / minimum_generation_id) of destination-crm360.

    test_crm360_refresh.py --bin build/destinations/crm360/destination-crm360

A stream whose minimum_generation_id equals its generation_id (> 0) asks the
destination to remove what earlier generations loaded. Every customer is
stored with a tag naming its stream and generation; once a truncating
stream is COMPLETE and committed, the customers tagged by an earlier
generation of it are listed and deleted:

* two syncs, the second truncating: the store ends with exactly the second
  generation's customers (in their latest version), each tagged with it;
  customers loaded by another stream, or by no stream, stay;
* the truncating sync SIGKILLed in the middle (states acknowledged, nothing
  removed), then the restarted attempt of the same generation from its last
  state: exactly the second generation's customers, including those only
  the killed attempt loaded;
* a truncating stream without COMPLETE (or INCOMPLETE) deletes nothing;
* a customer the truncating stream sends that CRM360 answers `stale` (a
  newer version written by someone else, still tagged with generation 1)
  is read back and written again with generation 2's tag, its content and
  updated_at kept, so the removal leaves it; several such customers too large
  for one body of max_batch_bytes are written again in several requests; one
  stored larger than max_batch_bytes fails the sync, naming it, removing nothing;
  written again by the other writer between the read and the write (a proxy
  in front of the emulator writes it), it is read and written once more, and
  after three times a WARN names it.
"""

import http.client
import json
import os
import secrets
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from airbyte_input import record, stream_state, stream_status  # noqa: E402
from crm360_helpers import (ALL_KEYS, API_KEY, CrmCase, catalog, config,  # noqa: E402
                            key_of, start_emulator)

WRITE_ONLY_KEY = "sk-crm360-wo-" + secrets.token_hex(12)
T0 = 1767225600  # 2026-01-01T00:00:00Z


def rfc3339(secs):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(secs))


def customer(i, gen, brand="acme"):
    return {"external_id": "C-%04d" % i, "brand": brand,
            "email": "c%d.g%d@example.com" % (i, gen), "name": "Customer %d" % i,
            "tags": ["vip"] if i % 3 == 0 else None,
            "updated_at": rfc3339(T0 + gen * 100000 + i)}


def messages(ids, gen, stream="customers", every=10, end=None):
    """Records of the ids, a STATE after every `every` records and at the end,
    then STREAM_STATUS end (None: no status)."""
    out = []
    for n, i in enumerate(ids, 1):
        out.append(record(stream, customer(i, gen)))
        if n % every == 0 or n == len(ids):
            out.append(stream_state(stream, {"n": n}))
    if end:
        out.append(stream_status(stream, end))
    return out


def generation(gen, minimum, streams=("customers",)):
    cat = catalog(streams=streams)
    for s in cat["streams"]:
        s["generation_id"] = gen
        s["minimum_generation_id"] = minimum
    return cat


def gen_tags(rec):
    return sorted(t for t in rec.get("tags") or [] if t.startswith("ab-gen:"))


class WritingProxy:
    """Forwards every request to the emulator; after answering a GET of the
    customer `key` (brand/external_id) from the emulator, and before passing
    the answer on, it calls write(n) (n: that customer's GETs so far), the
    other writer writing it again meanwhile."""

    def __init__(self, upstream, key, write):
        target = urllib.parse.urlsplit(upstream)
        proxy = self
        self.gets = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body or None, headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if self.command == "GET" and self.path.endswith("/v1/customers/" + key):
                    proxy.gets += 1
                    write(proxy.gets)
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "content-length", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Refresh(CrmCase):
    secret_values = ALL_KEYS + (WRITE_ONLY_KEY,)

    @classmethod
    def launch_emulator(cls):
        return start_emulator(extra=["--api-key", WRITE_ONLY_KEY + ":write"])

    def customers(self):
        return {key_of(r): r for r in self.dump()["customers"] if not r.get("deleted")}

    def run_gen(self, name, msgs, cat, **cfg):
        path = self.wd.write_lines(name + ".jsonl", msgs)
        return self.write(path, cfg=self.cfg(**cfg), cat=cat, name=name)

    def assert_generation(self, store, ids, gen, label):
        want = {"acme/C-%04d" % i for i in ids}
        self.assertEqual(set(store), want, "%s: stored keys" % label)
        tags = {tuple(gen_tags(r)) for r in store.values()}
        self.assertEqual(len(tags), 1, "%s: one generation tag for all: %r" % (label, tags))
        (tag,) = tags
        self.assertEqual(len(tag), 1, tag)
        self.assertTrue(tag[0].endswith(":%d" % gen), tag)
        for i in ids:
            r = store["acme/C-%04d" % i]
            self.assertEqual(r["email"], "c%d.g%d@example.com" % (i, gen), label)
            self.assertEqual([t for t in r.get("tags") or [] if not t.startswith("ab-gen:")],
                             ["vip"] if i % 3 == 0 else [], label)

    def test_truncating_generation_keeps_exactly_its_records(self):
        gen1 = list(range(0, 40))
        gen2 = list(range(25, 60))
        res = self.run_gen("gen1", messages(gen1, 1, end="COMPLETE"), generation(1, 0))
        self.assert_ok(res)
        self.assert_generation(self.customers(), gen1, 1, "generation 1")
        # a customer of another stream and one written by someone else
        lib.http_json("POST", self.emu.url + "/v1/customers:batchUpsert",
                      {"records": [dict(customer(900, 1), tags=["manual"])]},
                      {"Authorization": "Bearer " + API_KEY, "Idempotency-Key": "manual-1"})
        res = self.run_gen("other", messages([901], 1, stream="vip_customers", end="COMPLETE"),
                           generation(1, 0, streams=("vip_customers",)),
                           stream_mappings=[{"stream": "vip_customers", "object": "customers"}])
        self.assert_ok(res)

        res = self.run_gen("gen2", messages(gen2, 2, end="COMPLETE"), generation(2, 2),
                           batch_size=7)
        self.assert_ok(res)
        self.assertEqual(len(res.states), 4)
        store = self.customers()
        self.assertIn("acme/C-0900", store, "a customer no generation tagged stays")
        self.assertIn("acme/C-0901", store, "another stream's customer stays")
        del store["acme/C-0900"], store["acme/C-0901"]
        self.assert_generation(store, gen2, 2, "after generation 2")
        self.assertTrue(any("deleted 25," in ln for ln in res.logs("INFO")), res.logs())

        # a refresh of generation 2 again (a new attempt, everything loaded):
        # nothing more goes
        res = self.run_gen("gen2-again", messages(gen2[:3], 2, end="COMPLETE"), generation(2, 2))
        self.assert_ok(res)
        self.assertEqual(len(self.customers()), len(gen2) + 2)

    def test_killed_truncating_generation_then_restarted(self):
        gen1 = list(range(0, 60))
        gen2 = list(range(30, 90))
        self.assert_ok(self.run_gen("gen1", messages(gen1, 1, end="COMPLETE"), generation(1, 0)))

        # attempt 1 of generation 2: the first half of the input, stdin held
        # open; SIGKILL once its states are acknowledged
        msgs = messages(gen2, 2, end="COMPLETE")
        head = msgs[:33]  # 30 records, 3 states
        self.assertEqual(head[-1]["type"], "STATE")
        data = b"".join(json.dumps(m).encode() + b"\n" for m in head)
        cfg_path = self.write_config(self.cfg(batch_size=5), "gen2a.config.json")
        cat_path = self.wd.write_json("gen2a.catalog.json", generation(2, 2))
        conn = lib.Connector(lib.binary(), ["write", "--config", cfg_path, "--catalog", cat_path],
                             self.wd, name="gen2a", stdin=data, keep_stdin_open=True)
        conn.wait_for_states(3)
        conn.signal(signal.SIGKILL)
        res = self.finish(conn)
        self.assertEqual(len(res.states), 3, res.describe())
        store = self.customers()
        # nothing removed: generation 1 whole, the first 30 of generation 2 loaded
        self.assertEqual(set(store), {"acme/C-%04d" % i for i in range(0, 60)})
        self.assertEqual({tuple(gen_tags(store["acme/C-%04d" % i]))[0][-2:]
                          for i in range(30, 60)}, {":2"})

        # attempt 2 of generation 2: from after the last acknowledged state
        res = self.run_gen("gen2b", msgs[33:], generation(2, 2), batch_size=5)
        self.assert_ok(res)
        self.assert_generation(self.customers(), gen2, 2, "after the restarted attempt")

    def test_incomplete_truncating_stream_deletes_nothing(self):
        gen1 = list(range(0, 20))
        self.assert_ok(self.run_gen("gen1", messages(gen1, 1, end="COMPLETE"), generation(1, 0)))
        for end in (None, "INCOMPLETE"):
            res = self.run_gen("gen2-%s" % end, messages(range(15, 25), 2, end=end),
                               generation(2, 2))
            self.assert_ok(res)
            self.assertTrue(any("nothing of earlier generations is removed" in ln
                                for ln in res.logs("WARN")), res.logs())
            store = self.customers()
            self.assertEqual(set(store), {"acme/C-%04d" % i for i in range(0, 25)})
            self.assertEqual({gen_tags(store["acme/C-%04d" % i])[0][-2:] for i in range(0, 15)},
                             {":1"})

    def test_stale_customer_is_tagged_with_the_generation_and_kept(self):
        gen1 = list(range(0, 20))
        self.assert_ok(self.run_gen("gen1", messages(gen1, 1, end="COMPLETE"), generation(1, 0)))
        store = self.customers()
        tag1 = gen_tags(store["acme/C-0005"])
        # another writer: customers 5 and 7 again, newer, keeping generation 1's tag
        newer = rfc3339(T0 + 900000)
        others = [dict(customer(i, 1), email="other%d@example.com" % i, updated_at=newer,
                       tags=tag1 + ["manual"]) for i in (5, 7)]
        status_, got = lib.http_json("POST", self.emu.url + "/v1/customers:batchUpsert",
                                     {"records": others},
                                     {"Authorization": "Bearer " + API_KEY,
                                      "Idempotency-Key": "other-writer-1"})
        self.assertEqual(status_, 200, got)

        res = self.run_gen("gen2", messages(gen1, 2, end="COMPLETE"), generation(2, 2),
                           batch_size=6)
        self.assert_ok(res)
        self.assertEqual(len(res.states), 2)
        store = self.customers()
        self.assertEqual(set(store), {"acme/C-%04d" % i for i in gen1}, "nothing deleted")
        for i in (5, 7):
            r = store["acme/C-%04d" % i]
            self.assertEqual(r["email"], "other%d@example.com" % i, "the newer version stays")
            self.assertEqual(r["updated_at"], newer)
            self.assertIn("manual", r["tags"])
            self.assertEqual(len(gen_tags(r)), 1)
            self.assertTrue(gen_tags(r)[0].endswith(":2"), r)
        info = " ".join(res.logs("INFO"))
        self.assertIn("2 customers answered stale (CRM360 holds a newer version) were tagged "
                      "with their generation: updated 2", info)
        self.assertIn("deleted 0,", info)

    def test_stale_customers_tagged_again_in_bodies_of_max_batch_bytes(self):
        gen1 = list(range(0, 20))
        self.assert_ok(self.run_gen("gen1", messages(gen1, 1, end="COMPLETE"), generation(1, 0)))
        tag1 = gen_tags(self.customers()["acme/C-0002"])
        # another writer: six customers newer, each ~1.5 KB stored (20 long tags),
        # so no more than two fit in a body of 4096 bytes
        newer = rfc3339(T0 + 900000)
        stale = (2, 4, 6, 8, 10, 12)
        big = ["other-%02d-" % t + "x" * 52 for t in range(20)]
        others = [dict(customer(i, 1), email="other%d@example.com" % i, updated_at=newer,
                       tags=tag1 + big) for i in stale]
        status_, got = lib.http_json("POST", self.emu.url + "/v1/customers:batchUpsert",
                                     {"records": others},
                                     {"Authorization": "Bearer " + API_KEY,
                                      "Idempotency-Key": "other-writer-big"})
        self.assertEqual(status_, 200, got)
        applied = self.emu.get("/_admin/applied")
        after = applied[-1]["seq"]

        res = self.run_gen("gen2", messages(gen1, 2, end="COMPLETE"), generation(2, 2),
                           batch_size=20, max_batch_bytes=4096)
        self.assert_ok(res)
        store = self.customers()
        self.assertEqual(set(store), {"acme/C-%04d" % i for i in gen1}, "nothing deleted")
        for i in stale:
            r = store["acme/C-%04d" % i]
            self.assertEqual(r["email"], "other%d@example.com" % i, "the newer version stays")
            self.assertEqual(r["updated_at"], newer)
            self.assertEqual([t for t in r["tags"] if not t.startswith("ab-gen:")], big)
            self.assertEqual(len(gen_tags(r)), 1)
            self.assertTrue(gen_tags(r)[0].endswith(":2"), r)
        applied = self.emu.get("/_admin/applied?after_seq=%d" % after)
        keys = {"C-%04d" % i for i in stale}
        retag = [a for a in applied if a["external_id"] in keys and a["status"] == "updated"]
        self.assertEqual(sorted(a["external_id"] for a in retag), sorted(keys), applied)
        batches = {a["batch_id"] for a in retag}
        self.assertGreater(len(batches), 1, "the stale customers took more than one body")
        self.assertGreaterEqual(len(batches), 3, "no more than two ~1.5 KB records in 4096 bytes")
        info = " ".join(res.logs("INFO"))
        self.assertIn("6 customers answered stale (CRM360 holds a newer version) were tagged "
                      "with their generation: updated 6", info)

    def test_stale_customer_stored_larger_than_max_batch_bytes_fails_the_sync(self):
        gen1 = list(range(0, 20))
        self.assert_ok(self.run_gen("gen1", messages(gen1, 1, end="COMPLETE"), generation(1, 0)))
        tag1 = gen_tags(self.customers()["acme/C-0005"])
        newer = rfc3339(T0 + 900000)
        other = dict(customer(5, 1), email="other5@example.com", updated_at=newer, tags=tag1,
                     attributes={"notes": "y" * 5000})
        status_, got = lib.http_json("POST", self.emu.url + "/v1/customers:batchUpsert",
                                     {"records": [other]},
                                     {"Authorization": "Bearer " + API_KEY,
                                      "Idempotency-Key": "other-writer-huge"})
        self.assertEqual(status_, 200, got)

        res = self.run_gen("gen2", messages(gen1, 2, end="COMPLETE"), generation(2, 2),
                           batch_size=20, max_batch_bytes=4096)
        self.assert_fatal(res, "config_error", ("acme/C-0005", "max_batch_bytes"))
        self.assertEqual(res.states, [], "the state covering the untagged customer waits")
        store = self.customers()
        self.assertEqual(set(store), {"acme/C-%04d" % i for i in gen1}, "nothing deleted")
        self.assertEqual(store["acme/C-0005"]["email"], "other5@example.com")
        self.assertEqual(gen_tags(store["acme/C-0005"]), tag1)

    def other_writer(self, i, when, email, tags, key):
        rec = dict(customer(i, 1), email=email, updated_at=rfc3339(when), tags=tags)
        status_, got = lib.http_json("POST", self.emu.url + "/v1/customers:batchUpsert",
                                     {"records": [rec]},
                                     {"Authorization": "Bearer " + API_KEY,
                                      "Idempotency-Key": key})
        self.assertEqual(status_, 200, got)
        self.assertEqual(got["results"][0]["status"], "updated", got)

    def stale_again_run(self, writes):
        """Generation 2 through a proxy that lets the other writer write
        customer 5 again after each of its first `writes` reads."""
        gen1 = list(range(0, 20))
        self.assert_ok(self.run_gen("gen1", messages(gen1, 1, end="COMPLETE"), generation(1, 0)))
        tag1 = gen_tags(self.customers()["acme/C-0005"])
        self.other_writer(5, T0 + 900000, "other5@example.com", tag1, "other-writer-0")

        def write(n):
            if n <= writes:
                self.other_writer(5, T0 + 900000 + n, "other5.%d@example.com" % n, tag1,
                                  "other-writer-%d" % n)

        proxy = WritingProxy(self.emu.url, "acme/C-0005", write)
        try:
            path = self.wd.write_lines("gen2.jsonl", messages(gen1, 2, end="COMPLETE"))
            res = self.write(path, cfg=config(proxy.url, self.wd, batch_size=20),
                             cat=generation(2, 2), name="gen2")
        finally:
            proxy.close()
        return res, proxy.gets, gen1

    def test_stale_again_is_read_and_written_again(self):
        res, gets, gen1 = self.stale_again_run(1)
        self.assert_ok(res)
        self.assertEqual(gets, 2, "read, written meanwhile (stale again), read once more")
        store = self.customers()
        self.assertEqual(set(store), {"acme/C-%04d" % i for i in gen1}, "nothing deleted")
        r = store["acme/C-0005"]
        self.assertEqual(r["email"], "other5.1@example.com", "the latest version stays")
        self.assertEqual(len(gen_tags(r)), 1)
        self.assertTrue(gen_tags(r)[0].endswith(":2"), r)
        self.assertIn("1 customers answered stale (CRM360 holds a newer version) were tagged "
                      "with their generation: updated 1", " ".join(res.logs("INFO")))

    def test_stale_every_time_gives_up_with_a_warning(self):
        res, gets, _ = self.stale_again_run(3)
        self.assert_ok(res)
        self.assertEqual(gets, 3, "read and written three times")
        warns = " ".join(res.logs("WARN"))
        self.assertIn("customer acme/C-0005 was written by another writer 3 times", warns)
        self.assertIn("written again by others too often 1", " ".join(res.logs("INFO")))

    def test_key_without_read_scope(self):
        """check warns; a truncating sync loads and acknowledges everything,
        then fails as a config_error when listing is refused."""
        res, st = self.check(self.cfg(api_key=WRITE_ONLY_KEY))
        self.assertEqual(st["status"], "SUCCEEDED", res.describe())
        self.assertTrue(any("no read scope" in m for m in res.logs("WARN")), res.describe())
        self.assert_ok(self.run_gen("gen1", messages(range(5), 1, end="COMPLETE"),
                                    generation(1, 0), api_key=WRITE_ONLY_KEY))
        res = self.run_gen("gen2", messages(range(3, 8), 2, end="COMPLETE"), generation(2, 2),
                           api_key=WRITE_ONLY_KEY)
        self.assertEqual(res.rc, 1, res.describe())
        self.assertEqual(len(res.states), 1, "the state of committed records goes out")
        self.assertEqual([e["failure_type"] for e in res.errors], ["config_error"])
        self.assertIn("read and write scopes", res.errors[0]["message"])
        self.assertEqual(len(self.customers()), 8, "nothing deleted")


if __name__ == "__main__":
    lib.main(__doc__)
