#!/usr/bin/env python3
"""End-to-end tests of destination-shops against the Shops emulator.

    test_shops_e2e.py --bin build/destinations/shops/destination-shops [-k name]

The helpers it shares with the other Shops test scripts (emulator
start-up, config and catalog, the generator, expected store and dead-letter
comparison, the live state checker, the test case class) are in
shops_helpers.py; what does not depend on the destination (test case
machinery, input streams, state checks) is in lib.py and airbyte_input.py.

What the tests assert (each against the real binary and the real emulator):

* merge runs (append_dedup and append; STREAM and GLOBAL states): the stored
  products (variants with their parent_sku) and inventory per location equal
  the latest valid version of every key, field by field; the dead letters are
  exactly the invalid records, with the expected error and `rejected_by`;
  the emitted states are the input states, in order, unchanged but for
  destinationStats, whose counts add up (recordCount + rejectedRecordCount
  == sourceStats, the rejected count equal to the invalid records of the
  window); no state goes out before the import holding its records committed
  (checked live, by the stdout reader, against the emulator's applied writes,
  and afterwards against each import's committed_at); no import of ours is
  left open; no key version is applied twice;
* min_commit_records 1: one import per window, each committed in order with
  its window's state as checkpoint; a huge min_commit_records: one import for
  every window, its checkpoint the last state, every state after its commit;
* replace runs (overwrite + COMPLETE): the channel's items missing from the
  full refresh are deactivated (products active:false, inventory quantity 0,
  updated_at kept), the others replaced, the deactivation counts reported;
  states wait for the replace commit; products overwrite with inventory
  append_dedup (STREAM and GLOBAL states): inventory of new products waits
  for the replace import (nothing wrongly dead-lettered as unknown_sku),
  inventory is not deactivated; an empty full refresh with COMPLETE
  deactivates everything; lost answers of the replace commit and an expiry
  of the replace import midway change nothing in the outcome;
* check: ok; wrong secret -> FAILED, exit 0; unknown channel -> FAILED;
  unreachable API and plain http to a remote host -> FAILED; write with a
  wrong secret or an unsupported sync mode -> config_error, nothing loaded;
* secrets: neither the client secret nor any access token (tok_...) appears
  in stdout, stderr, dead letters or any other file the runs leave;
* OAuth tokens expiring early (2 s TTL in a slow run; revoked tokens) are
  replaced and the run succeeds; forced expiries of open imports make the
  destination re-create them and upload their records again (rejections not
  dead-lettered twice); commits slower than the request timeout are resolved
  through the import's status; 5xx/429/resets and lost commit answers are
  survived; the API's own rate limit is respected by the client-side limit,
  and its 429s are retried; a rerun of the same input applies nothing new;
* stream_mappings (nested source paths, a namespace; a missing mapped key is
  dead-lettered naming the source path; a mapping without sku is a config
  error); rejected_records "fail" (local and upload rejections: fatal naming
  the line, no state at or after it, nothing later committed); the spool on
  disk (no file left, none visible); a quiet source with stdin open gets its
  states through max_commit_interval_seconds; stale open imports of ours
  are aborted at start, another prefix's and another channel's are not;
  parts cut by part_max_bytes and an item too large for any part
  dead-lettered (too_long); a STATE over 64 KiB becomes a sha256 checkpoint;
  LOG lines (progress) reach stdout while a long full refresh runs.
"""

import hashlib
import json
import os
import random
import re
import secrets
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from airbyte_input import assert_states, input_states  # noqa: E402
from shops_helpers import (CHANNEL, CLIENT_ID, LABEL_PREFIX, OTHER_CHANNEL,  # noqa: E402
                          SECRET, STREAMS, WRONG_SECRET, Checker, Expirer, ShopsCase, Source,
                          applied_key, assert_dead_letters, assert_no_open_imports,
                          assert_store_equals, catalog, checkpoint_state, dump_by_key,
                          expected_after_replace, expected_store, our_imports,
                          summary_numbers, ts_key)

# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

SPEC_FIELDS = ("api_url", "client_id", "client_secret", "channel", "stream_mappings",
               "label_prefix", "part_max_items", "part_max_bytes", "gzip",
               "min_commit_records", "max_commit_interval_seconds",
               "replace_deactivate_without_complete", "spool_memory_bytes", "spool_dir",
               "rejected_records", "dead_letter_path", "max_in_flight",
               "requests_per_second", "burst", "connect_timeout_seconds",
               "request_timeout_seconds", "max_retries", "ca_path", "max_line_bytes",
               "progress_interval_seconds", "max_checkpoint_wait_seconds", "log_level")


class Commands(ShopsCase):
    def test_spec(self):
        spec = self.spec()
        cs = spec["connectionSpecification"]
        self.assertEqual(set(cs.get("required", [])),
                         {"api_url", "client_id", "client_secret", "channel"})
        props = cs["properties"]
        for f in SPEC_FIELDS:
            self.assertIn(f, props, "spec lacks %s" % f)
        self.assertIs(props["client_secret"].get("airbyte_secret"), True)
        self.assertEqual(props["min_commit_records"].get("default"), 20000)
        self.assertEqual(props["replace_deactivate_without_complete"].get("default"), False)
        self.assertEqual(sorted(spec.get("supported_destination_sync_modes")),
                         ["append", "append_dedup", "overwrite"])

    def test_discover(self):
        """One DESTINATION_CATALOG: products and inventory with what Shops
        imports really do (merge as append and append_dedup, replace as
        overwrite; no delete), the contract's fields and the matching keys;
        no request to Shops."""
        cat = self.discover(self.cfg())
        ops = {(o["object_name"], o["sync_mode"]): o for o in cat["operations"]}
        self.assertEqual(set(ops), {(obj, m) for obj in ("products", "inventory")
                                    for m in ("append", "append_dedup", "overwrite")})
        self.assertEqual(ops[("products", "append")]["matching_keys"], [["sku"]])
        self.assertEqual(ops[("inventory", "overwrite")]["matching_keys"], [["sku", "location"]])
        prod = ops[("products", "append_dedup")]["json_schema"]
        self.assertEqual(set(prod["required"]),
                         {"sku", "brand", "title", "price", "currency", "updated_at"})
        self.assertEqual(prod["properties"]["price"]["type"], "string")
        inv = ops[("inventory", "append")]["json_schema"]
        self.assertEqual(set(inv["properties"]), {"sku", "location", "quantity", "updated_at"})
        self.assertEqual(self.stats().get("tokens_issued", 0), 0)

    def test_data_activation_stream(self):
        """A stream as the platform sends it for data activation (its own
        name, destination_object_name naming the object, fields already
        named as the object's) loads that object."""
        inp, _ = self.gen(products=20, inventory=0, seed=4)
        lines = [ln.replace(b'"name":"products"', b'"name":"catalogo_model"')
                 .replace(b'"stream":"products"', b'"stream":"catalogo_model"')
                 for ln in lib.read_input_lines(inp)]
        inp2 = self.wd.write_lines("activation.jsonl", lines)
        skus = {m["record"]["data"]["sku"] for _, m in lib.parse_input(inp2)
                if m["type"] == "RECORD"}
        self.assertGreater(len(skus), 5)
        cat = catalog(streams=("products",))
        cat["streams"][0]["stream"]["name"] = "catalogo_model"
        cat["streams"][0]["destination_object_name"] = "products"
        res = self.write(inp2, cat=cat)
        self.assert_ok(res)
        self.assertGreater(len(res.states), 0)
        self.assertEqual(set(dump_by_key(self.dump())["products"]), skus)

    def test_check_ok(self):
        res, st = self.check(self.cfg())
        self.assertEqual(st["status"], "SUCCEEDED", res.describe())
        self.assertGreaterEqual(self.stats()["tokens_issued"], 1)

    def test_check_wrong_secret(self):
        res, st = self.check(self.cfg(client_secret=WRONG_SECRET))
        self.assertEqual(st["status"], "FAILED", res.describe())
        msg = st.get("message", "")
        self.assertTrue("invalid_client" in msg or "client_secret" in msg, msg)
        self.assertNotIn(WRONG_SECRET, msg)

    def test_check_unknown_channel(self):
        res, st = self.check(self.cfg(channel="store-nowhere"))
        self.assertEqual(st["status"], "FAILED", res.describe())
        self.assertIn("store-nowhere", st.get("message", ""))

    def test_check_unreachable(self):
        port = lib.free_port()
        res, st = self.check(self.cfg(api_url="http://127.0.0.1:%d" % port,
                                      connect_timeout_seconds=2, request_timeout_seconds=3,
                                      max_retries=1))
        self.assertEqual(st["status"], "FAILED", res.describe())

    def test_check_plain_http_to_remote_host(self):
        res, st = self.check(self.cfg(api_url="http://shops.example.com"))
        self.assertEqual(st["status"], "FAILED", res.describe())
        self.assertIn("https", st.get("message", ""))

    def test_write_with_wrong_secret_is_config_error(self):
        inp, _ = self.gen(products=20, inventory=20, seed=3)
        res = self.write(inp, cfg=self.cfg(client_secret=WRONG_SECRET))
        self.assert_fatal(res, "config_error")
        self.assertEqual(res.states, [])
        self.assertEqual(self.applied(), [])

    def test_unsupported_sync_mode(self):
        inp, _ = self.gen(products=20, inventory=20, seed=3)
        res = self.write(inp, cat=catalog(modes={"inventory": "soft_delete"}))
        self.assert_fatal(res, "config_error", ["inventory", "soft_delete"])
        self.assertEqual(res.states, [])
        self.assertEqual(self.applied(), [])


class Merge(ShopsCase):
    """Incremental syncs (append_dedup / append): merge imports."""

    # a rule beyond the contract (reserved_sku items): Shops rejects items at
    # part upload that pass every rule destination-shops checks before sending
    emulator_args = {"extra": ["--reserved-sku-prefix", "RSV-"]}

    def merge_run(self, gen_opts, cfg_over=None, faults=None, mode="append_dedup",
                  timeout=180, checker_hook=None):
        inp, exp = self.gen(**gen_opts)
        src = Source(inp, exp)
        checker = Checker(self.emu, src)
        if checker_hook:
            checker_hook(checker)
        if faults:
            self.emu.post("/_admin/faults", faults)
        res = self.write(inp, cfg=self.cfg(**(cfg_over or {})), cat=catalog(mode=mode),
                         on_line=checker.on_line, timeout=timeout)
        if faults:
            self.emu.post("/_admin/faults", {})
        dump, applied = self.full_check(inp, exp, res, checker)
        return inp, exp, res, dump, applied, checker

    def test_stream_states_products_variants_inventory(self):
        # A short commit delay widens the window in which a premature state
        # would be caught by the live check.
        inp, exp, res, dump, applied, checker = self.merge_run(
            dict(products=1200, inventory=3000, invalid=25, locations=4, update_rate=0.15,
                 state_every=60, seed=11),
            faults={"commit_delay_ms": 60})
        store = dump_by_key(dump)
        variants = [p for p in store["products"].values() if "parent_sku" in p]
        self.assertGreater(len(variants), 200)
        for v in variants:
            self.assertIn(v["parent_sku"], store["products"], "variant %s without its parent"
                          % v["sku"])
            self.assertIn("size", v["attributes"])
            self.assertIn("color", v["attributes"])
        per_sku = {}
        for i in store["inventory"].values():
            per_sku.setdefault(i["sku"], set()).add(i["location"])
        self.assertGreater(sum(1 for locs in per_sku.values() if len(locs) >= 3), 20)
        self.assertIn("default", {i["location"] for i in store["inventory"].values()})
        kinds = {i["reason"] for i in exp["invalid"]}
        self.assertEqual(len(kinds), 5, kinds)
        self.assertGreater(checker.records_checked, 3000)
        # every record was sent once: no re-upload, every state counted
        self.assertEqual(summary_numbers(res, "re-created"), 0)
        self.assertGreater(len(res.states), 50)

    def test_global_states_debug_log_no_gzip(self):
        # DEBUG logging: the most verbose output is searched for secrets too.
        self.merge_run(dict(products=500, inventory=1500, invalid=10, state_every=70,
                            state_type="GLOBAL", seed=12),
                       cfg_over=dict(log_level="DEBUG", gzip=False, max_in_flight=8,
                                     part_max_items=37))

    def test_append_mode(self):
        self.merge_run(dict(products=300, inventory=600, invalid=5, seed=13), mode="append")

    def test_one_import_per_window(self):
        inp, exp, res, dump, _, _ = self.merge_run(
            dict(products=150, inventory=300, invalid=5, state_every=25, seed=14),
            cfg_over=dict(min_commit_records=1))
        # the import is sealed at every state that follows a record
        sealing = []
        last_was_record = False
        for n, m in lib.parse_input(inp):
            if m["type"] == "RECORD":
                last_was_record = True
            elif m["type"] == "STATE":
                if last_was_record:
                    sealing.append(m["state"]["id"])
                last_was_record = False
        imps = [i for i in our_imports(dump) if i["status"] == "committed"]
        self.assertEqual(len(our_imports(dump)), len(imps), "imports not committed: %s"
                         % [i for i in our_imports(dump) if i["status"] != "committed"])
        imps.sort(key=lambda i: i["committed_at"])
        self.assertEqual([checkpoint_state(i)["id"] for i in imps], sealing,
                         "expected one import per window, committed in order with the "
                         "window's state as checkpoint")
        self.assertEqual(summary_numbers(res, "imports created"), len(sealing))

    def test_windows_share_one_import(self):
        inp, exp, res, dump, _, checker = self.merge_run(
            dict(products=400, inventory=1200, invalid=6, state_every=20, seed=15),
            cfg_over=dict(min_commit_records=10 ** 9))
        imps = our_imports(dump)
        self.assertEqual(len(imps), 1, "expected a single import: %s" % imps)
        self.assertEqual(imps[0]["status"], "committed")
        self.assertEqual(imps[0]["mode"], "merge")
        last = input_states(inp)[-1][1]
        self.assertEqual(checkpoint_state(imps[0]), last, "the checkpoint is not the last state")
        self.assertGreater(len(res.states), 60)
        committed = ts_key(imps[0]["committed_at"])
        early = [(line, t) for line, t in checker.arrivals if t + 0.002 < committed]
        self.assertEqual(early, [], "states read before the only import committed")
        self.assertGreaterEqual(len(imps[0]["parts"]), 16)

    def test_rerun_is_idempotent(self):
        inp, exp = self.gen(products=400, inventory=1200, invalid=8, update_rate=0.2, seed=16)
        src = Source(inp, exp)
        checker = Checker(self.emu, src)
        first = self.write(inp, name="first", on_line=checker.on_line)
        self.full_check(inp, exp, first, checker)
        applied = self.applied()
        store = dump_by_key(self.dump())
        os.unlink(self.wd.join("dead-letters.jsonl"))
        checker.begin_run(list(range(1, len(src.lines) + 1)))
        second = self.write(inp, name="second", on_line=checker.on_line)
        self.assert_ok(second)
        self.assertEqual(checker.failures, [])
        again = self.applied()
        self.assertEqual(len(again), len(applied), "the rerun applied %d more writes, e.g. %s"
                         % (len(again) - len(applied), again[len(applied):][:3]))
        self.assertEqual(dump_by_key(self.dump()), store, "the rerun changed the store")
        assert_states(self, inp, second, exp["invalid"])
        assert_dead_letters(self, self.dead_letters(), exp["invalid"])
        assert_no_open_imports(self, self.dump())
        self.assertEqual(summary_numbers(second, "products applied"), 0)

    def test_faults_and_lost_commit_answers(self):
        faults = {"rate_429": 0.05, "rate_500": 0.05, "rate_503": 0.05, "rate_reset": 0.04,
                  "rate_commit_drop": 0.3, "retry_after": 1, "latency_ms": 1,
                  "latency_jitter_ms": 8, "seed": 5}
        _, _, res, _, _, _ = self.merge_run(
            dict(products=600, inventory=1800, invalid=10, state_every=40, seed=17),
            cfg_over=dict(min_commit_records=150, max_retries=10), faults=faults)
        st = self.stats()["faults"]
        for kind in ("429", "500", "503", "reset", "commit_drop"):
            self.assertGreater(st[kind], 0, "no %s fault injected: %s" % (kind, st))
        self.assertGreater(summary_numbers(res, "commits in doubt"), 0)

    def test_commit_slower_than_request_timeout(self):
        """Each commit takes 2.5 s, the request timeout is 1 s: the commit
        answer never arrives in time; the destination asks the import's
        status (committing, then committed) instead of committing blindly
        again, and fetches the stored result."""
        _, _, res, _, _, _ = self.merge_run(
            dict(products=100, inventory=200, invalid=4, state_every=50, seed=19),
            cfg_over=dict(min_commit_records=150, request_timeout_seconds=1, max_retries=3),
            faults={"commit_delay_ms": 2500}, timeout=240)
        self.assertGreater(summary_numbers(res, "commits in doubt"), 0)
        st = self.stats()
        self.assertEqual(st["commits"], summary_numbers(res, "committed"))
        self.assertTrue(any("committing" in m for m in res.logs()), res.describe())

    def test_forced_import_expiry_recreates(self):
        """Open imports expired under the destination's feet (twice) are
        re-created and their records uploaded again; the rejections of the
        parts uploaded again are not dead-lettered twice."""
        expirer = Expirer(self.emu, random.Random(5), every=0.1)
        expirer.arm(2)
        expirer.start()
        try:
            _, exp, res, dump, _, _ = self.merge_run(
                dict(products=400, inventory=1200, invalid=30, state_every=40, seed=18,
                     invalid_kinds="missing_sku,price_number,reserved_sku,unknown_sku,"
                                   "unknown_parent"),
                cfg_over=dict(min_commit_records=400, max_in_flight=1, part_max_items=50),
                faults={"latency_ms": 25})
        finally:
            expirer.stop()
        self.assertEqual(len(expirer.expired), 2, "could not expire two open imports")
        status = {i["import_id"]: i["status"] for i in our_imports(dump)}
        for i in expirer.expired:
            self.assertEqual(status[i], "expired")
        self.assertGreaterEqual(summary_numbers(res, "re-created"), 2)
        # Shops rejected items at part upload (its rule beyond the contract),
        # again when their part was uploaded again into a re-created import;
        # each was dead-lettered once (full_check compares the dead letters
        # exactly)
        reserved = [i for i in exp["invalid"] if i["key"] and i["key"].startswith("RSV-")]
        self.assertGreater(len(reserved), 0)
        self.assertGreaterEqual(self.stats()["items"]["rejected_upload"], len(reserved))


class Features(ShopsCase):
    """Mappings, the fail policy, the spool on disk, the commit timer, the
    recovery of stale imports."""

    # a rule beyond the contract, so that Shops rejects items at upload that
    # pass every rule destination-shops checks before sending
    emulator_args = {"extra": ["--reserved-sku-prefix", "RSV-"]}

    def test_stream_mappings_with_namespace(self):
        t = lambda k: "2026-02-01T00:%02d:%02dZ" % (k // 60, k % 60)  # noqa: E731
        lines = []
        n = 0
        for i in range(20):
            n += 1
            d = {"codigo": "M-%03d" % i, "marca": "aurora", "nome": "Item %d" % i,
                 "preco": {"valor": "%d.90" % (10 + i), "moeda": "BRL"},
                 "atributos": {"size": "M"}, "interno": "not sent", "alterado_em": t(n)}
            if i % 4 == 3:
                d["pai"] = "M-%03d" % (i - 1)
            lines.append({"type": "RECORD", "record": {"stream": "catalogo", "namespace": "erp",
                                                       "emitted_at": 1, "data": d}})
        bad_p = len(lines) + 1
        lines.append({"type": "RECORD", "record": {"stream": "catalogo", "namespace": "erp",
                                                   "emitted_at": 1, "data": {
                                                       "marca": "aurora", "nome": "sem codigo",
                                                       "alterado_em": t(99)}}})
        bad_t = len(lines) + 1  # Shops rejects its price at upload
        bad_t_data = {"codigo": "M-900", "marca": "aurora", "nome": "Item 900",
                      "preco": {"valor": "12,90", "moeda": "BRL"}, "interno": "not sent",
                      "alterado_em": t(98)}
        lines.append({"type": "RECORD", "record": {"stream": "catalogo", "namespace": "erp",
                                                   "emitted_at": 1, "data": bad_t_data}})
        lines.append({"type": "STATE", "state": {"type": "STREAM", "stream": {
            "stream_descriptor": {"name": "catalogo", "namespace": "erp"},
            "stream_state": {"c": 1}}, "sourceStats": {"recordCount": 22.0}, "id": 1}})
        for i in range(30):
            n += 1
            lines.append({"type": "RECORD", "record": {"stream": "estoque", "emitted_at": 1,
                                                       "data": {
                "produto": {"codigo": "M-%03d" % (i % 20)}, "loja": "loja-%d" % (i // 20),
                "qtd": i, "alterado_em": t(n)}}})
        bad_i = len(lines) + 1
        lines.append({"type": "RECORD", "record": {"stream": "estoque", "emitted_at": 1,
                                                   "data": {"produto": {}, "qtd": 1,
                                                            "alterado_em": t(99)}}})
        lines.append({"type": "STATE", "state": {"type": "STREAM", "stream": {
            "stream_descriptor": {"name": "estoque"}, "stream_state": {"c": 2}},
            "sourceStats": {"recordCount": 31.0}, "id": 2}})
        inp = self.wd.write_lines("mapped.jsonl", lines)
        cat = catalog()
        cat["streams"][0]["stream"].update(name="catalogo", namespace="erp")
        cat["streams"][1]["stream"]["name"] = "estoque"
        mappings = [
            {"stream": "catalogo", "namespace": "erp", "object": "products",
             "fields": {"sku": "codigo", "parent_sku": "pai", "brand": "marca", "title": "nome",
                        "price": "preco.valor", "currency": "preco.moeda",
                        "attributes": "atributos", "updated_at": "alterado_em"}},
            {"stream": "estoque", "object": "inventory",
             "fields": {"sku": "produto.codigo", "location": "loja", "quantity": "qtd",
                        "updated_at": "alterado_em"}}]
        res = self.write(inp, cat=cat, cfg=self.cfg(stream_mappings=mappings))
        self.assert_ok(res)
        self.assertEqual([s["destinationStats"]["rejectedRecordCount"] for s in res.states],
                         [2, 1])
        store = dump_by_key(self.dump())
        self.assertEqual(len(store["products"]), 20)
        self.assertEqual(len(store["inventory"]), 30)
        p3 = store["products"]["M-003"]
        self.assertEqual(p3, {"sku": "M-003", "parent_sku": "M-002", "brand": "aurora",
                              "title": "Item 3", "price": "13.90", "currency": "BRL",
                              "attributes": {"size": "M"}, "active": True,
                              "updated_at": t(4)})
        self.assertEqual(store["inventory"]["M-005|loja-1"]["quantity"], 25)
        dls = {e["line"]: e for e in self.dead_letters()}
        self.assertEqual(sorted(dls), [bad_p, bad_t, bad_i])
        # rejected by Shops: the record as received and the item as sent
        target = dls.pop(bad_t)
        self.assertEqual(target["rejected_by"], "target")
        self.assertEqual(target["record"], bad_t_data)
        self.assertEqual(target["record_sent"]["sku"], "M-900")
        self.assertEqual(target["record_sent"]["price"], "12,90")
        self.assertNotIn("interno", target["record_sent"])
        self.assertEqual(target["errors"][0]["field"], "price")
        self.assertEqual(target["errors"][0].get("mapping"), "price <- preco.valor")
        self.assertEqual(dls[bad_p]["stream"], "catalogo")
        self.assertEqual(dls[bad_p]["namespace"], "erp")
        self.assertIn("codigo", dls[bad_p]["errors"][0]["message"])
        self.assertIn("produto.codigo", dls[bad_i]["errors"][0]["message"])
        for e in dls.values():
            self.assertEqual(e["errors"][0]["code"], "missing_field")
            self.assertEqual(e["rejected_by"], "destination")

    def test_mapping_without_sku_is_config_error(self):
        inp, _ = self.gen(products=10, inventory=10, seed=3)
        res = self.write(inp, cfg=self.cfg(stream_mappings=[
            {"stream": "inventory", "object": "inventory",
             "fields": {"location": "location", "quantity": "quantity"}}]))
        self.assert_fatal(res, "config_error", ["inventory", "sku"])
        self.assertEqual(self.dump()["imports"], [])

    def fail_policy(self, kind, rejected_by):
        inp, exp = self.gen(products=300, inventory=700, invalid=3, invalid_kinds=kind,
                            state_every=20, seed=71)
        first = exp["invalid"][0]
        res = self.write(inp, cfg=self.cfg(rejected_records="fail", min_commit_records=100))
        e = self.assert_fatal(res, None, ["line %d" % first["line"], first["stream"]])
        self.assertIn(rejected_by, e["message"])
        ins = input_states(inp)
        self.assertGreater(len(res.states), 0)
        for (line, st, _, _), o in zip(ins, res.states):
            self.assertEqual(lib.strip_dest_stats(o), st)
            self.assertLess(line, first["line"], "state at input line %d emitted after the "
                            "rejected record at line %d" % (line, first["line"]))
        # nothing after the import holding the rejected record was committed:
        # every applied write is of a record before the next state
        nxt = min(line for line, _, _, _ in ins if line > first["line"])
        src = Source(inp, exp)
        late = []
        for a in self.applied():
            line = src.record_at.get((a["object"], applied_key(a)[1], ts_key(a["updated_at"])))
            if line is None or line > nxt:
                late.append((line, a))
        self.assertEqual(late, [], "records after the failing window were committed")
        self.assertEqual(len(self.dead_letters()), 0)
        return res

    def test_fail_policy_local_rejection(self):
        self.fail_policy("missing_sku", "destination")

    def test_fail_policy_rules_rejection(self):
        self.fail_policy("price_number", "target")

    def test_fail_policy_upload_rejection(self):
        self.fail_policy("reserved_sku", "target")

    def test_spool_on_disk(self):
        """spool_memory_bytes 0: records wait for their commit in a temporary
        file of spool_dir, unlinked at once (seen through /proc/PID/fd while
        the run goes on), and nothing is left behind."""
        spool = self.wd.join("spool")
        os.mkdir(spool)
        inp, exp = self.gen(products=500, inventory=1500, invalid=5, seed=72)
        src = Source(inp, exp)
        checker = Checker(self.emu, src)
        self.emu.post("/_admin/faults", {"commit_delay_ms": 50, "latency_ms": 5})
        p = self.start(inp, cfg=self.cfg(spool_memory_bytes=0, spool_dir=spool,
                                         min_commit_records=500),
                       on_line=checker.on_line)
        targets = set()
        while p.poll() is None:
            try:
                for fd in os.listdir("/proc/%d/fd" % p.pid):
                    try:
                        targets.add(os.readlink("/proc/%d/fd/%s" % (p.pid, fd)))
                    except OSError:
                        pass
            except OSError:
                break
            time.sleep(0.01)
        res = self.finish(p)
        self.full_check(inp, exp, res, checker)
        in_spool = sorted(t for t in targets if t.startswith(spool + "/"))
        self.assertTrue(in_spool, "no spool file was opened in spool_dir")
        self.assertEqual([t for t in in_spool if not t.endswith(" (deleted)")], [],
                         "spool files were visible (not unlinked)")
        self.assertEqual(os.listdir(spool), [], "spool files left behind")
        # the summary says where the records waited: none in RAM, all in the file
        kept = [m for m in res.logs() if m.startswith("shops: records kept for their commit")]
        self.assertEqual(len(kept), 1, kept)
        m = re.search(r"at most ([0-9.]+) MiB in RAM .*, ([0-9.]+) MiB in the spool file",
                      kept[0])
        self.assertIsNotNone(m, kept[0])
        self.assertEqual(float(m.group(1)), 0.0)
        self.assertGreater(float(m.group(2)), 0.0)

    def test_quiet_source_commits_on_timer(self):
        """Records and states, then the source goes quiet with stdin open:
        max_commit_interval_seconds commits the import and the states go out
        without more input."""
        inp, exp = self.gen(products=100, inventory=200, state_every=50, seed=73)
        src = Source(inp, exp)
        checker = Checker(self.emu, src)
        cfg_path = self.write_config(self.cfg(min_commit_records=10 ** 6,
                                              max_commit_interval_seconds=1), "quiet.json")
        cat_path = self.wd.write_json("quiet.catalog.json", catalog())
        with open(inp, "rb") as f:
            data = f.read()
        p = lib.Connector(lib.binary(), ["write", "--config", cfg_path, "--catalog", cat_path],
                          self.wd, name="quiet", stdin=data, keep_stdin_open=True,
                          on_line=checker.on_line)
        try:
            t0 = time.monotonic()
            while len(checker.emitted) < len(checker.run_states) and \
                    time.monotonic() - t0 < 15 and p.poll() is None:
                time.sleep(0.05)
            took = time.monotonic() - t0
            self.assertIsNone(p.poll(), "the destination ended with stdin open")
            self.assertEqual(len(checker.emitted), len(checker.run_states),
                             "states still held %.1f s after the source went quiet" % took)
        finally:
            p.close_stdin()
        res = self.finish(p, timeout=60)
        self.full_check(inp, exp, res, checker)
        self.assertLess(took, 6)

    def test_progress_logs_flow_during_a_long_full_refresh(self):
        """A full refresh emits no STATE before its end; its LOG lines
        (progress every progress_interval_seconds, import created...) must
        still reach stdout while it runs, or the platform shows nothing for
        the whole sync."""
        inp, exp = self.gen(products=100, inventory=300, complete=True, seed=77)
        src = Source(inp, exp)
        checker = Checker(self.emu, src)
        seen = []

        def on_line(raw):
            if b'"LOG"' in raw:
                seen.append((time.monotonic(), raw))
            checker.on_line(raw)

        self.emu.post("/_admin/faults", {"latency_ms": 100})
        cfg_path = self.write_config(self.cfg(progress_interval_seconds=1, max_in_flight=1,
                                              part_max_items=20), "slow.json")
        cat_path = self.wd.write_json("slow.catalog.json", catalog(mode="overwrite"))
        with open(inp, "rb") as f:
            data = f.read()
        t0 = time.monotonic()
        p = lib.Connector(lib.binary(), ["write", "--config", cfg_path, "--catalog", cat_path],
                          self.wd, name="slow", stdin=data, keep_stdin_open=True,
                          on_line=on_line)
        try:
            time.sleep(4)
            early = [raw for t, raw in seen if t - t0 < 4]
            running = p.poll() is None
        finally:
            p.close_stdin()
        res = self.finish(p, timeout=120)
        self.emu.post("/_admin/faults", {})
        self.assertTrue(running, "the run ended too soon for this test")
        self.full_check(inp, exp, res, checker)
        self.assertTrue([r for r in early if b"progress:" in r],
                        "no progress LOG reached stdout in the first 4 s of a full refresh "
                        "(%d LOG lines then, %d in all)" % (len(early), len(seen)))

    def test_stale_open_imports_aborted_at_start(self):
        tok = api_token(self.emu)
        ours = api_create_import(self.emu, tok, LABEL_PREFIX + ":41:1")
        theirs = api_create_import(self.emu, tok, "other-conn:41:1")
        other_channel = api_create_import(self.emu, tok, LABEL_PREFIX + ":41:2",
                                          channel=OTHER_CHANNEL)
        inp, exp = self.gen(products=50, inventory=100, seed=74)
        res = self.write(inp)
        self.assert_ok(res)
        status = {i["import_id"]: i["status"] for i in self.emu.get("/_admin/dump")["imports"]}
        self.assertEqual(status[ours], "aborted")
        self.assertEqual(status[theirs], "open", "another connection's import was aborted")
        self.assertEqual(status[other_channel], "open", "an import of another channel "
                         "was aborted")
        self.assertEqual(summary_numbers(res, "stale imports aborted at start"), 1)
        assert_store_equals(self, self.dump(), expected_store(exp))


    def test_item_too_large_for_a_part_and_byte_cut_parts(self):
        """part_max_bytes 4096: parts are cut by size; an item that cannot
        fit a part of its own is dead-lettered as too_long by the
        destination."""
        lines, exp = self.gen_lines(products=200, inventory=300, seed=75)
        big = dict(self.first_data(lines, "products"), sku="BIG-1",
                   description="x" * 5000, updated_at="2026-06-01T00:00:00Z")
        lines.insert(5, json.dumps({"type": "RECORD", "record": {
            "stream": "products", "emitted_at": 1, "data": big}}).encode())
        lines = fix_stream_source_stats(lines)
        inp = self.wd.write_lines("in.jsonl", lines)
        invalid = [{"stream": "products", "line": 6, "reason": "too_long",
                    "rejected_by": "destination"}]
        exp = dict(exp, invalid=invalid)
        src = Source(inp, exp)
        checker = Checker(self.emu, src)
        res = self.write(inp, cfg=self.cfg(part_max_bytes=4096, gzip=False,
                                           min_commit_records=10 ** 6),
                         on_line=checker.on_line)
        dump, _ = self.full_check(inp, exp, res, checker)
        parts = sum(len(i["parts"]) for i in our_imports(dump))
        # each part body is at most 4096 bytes: at least this many parts
        size = sum(len(json.dumps(m["record"]["data"], separators=(",", ":"),
                              ensure_ascii=False).encode()) + 1
                   for _, m in lib.parse_input(inp) if m["type"] == "RECORD")
        self.assertGreaterEqual(parts, (size - 5000) // 4096, "parts were not cut by size")
        self.assertGreater(parts, 10)

    def test_huge_state_checkpoint_is_hashed(self):
        """A STATE over 64 KiB: the import's checkpoint is sha256:<hex> of
        it (the API's limit), and the state is emitted unchanged."""
        lines, exp = self.gen_lines(products=30, inventory=30, state_every=1000, seed=76)
        big = {"type": "STATE", "state": {"type": "STREAM", "stream": {
            "stream_descriptor": {"name": "products"},
            "stream_state": {"blob": "z" * 70000}},
            "sourceStats": {"recordCount": 0.0}, "id": 777}}
        lines.append(json.dumps(big).encode())
        lines = fix_stream_source_stats(lines)
        inp = self.wd.write_lines("in.jsonl", lines)
        res = self.write(inp)
        self.assert_ok(res)
        assert_states(self, inp, res, [])
        cps = [i["checkpoint"] for i in our_imports(self.dump())]
        self.assertEqual(len(cps), 1)
        self.assertRegex(cps[0], r"^sha256:[0-9a-f]{64}$")
        members = json.dumps(big["state"], separators=(",", ":"))[1:-1].encode()
        self.assertEqual(cps[0], "sha256:" + hashlib.sha256(members).hexdigest())

    def gen_lines(self, **opts):
        inp, exp = self.gen(name="base", **opts)
        return lib.read_input_lines(inp), exp

    @staticmethod
    def first_data(lines, stream):
        for ln in lines:
            m = json.loads(ln)
            if m["type"] == "RECORD" and m["record"]["stream"] == stream:
                return m["record"]["data"]
        raise AssertionError("no %s record" % stream)


def fix_stream_source_stats(lines):
    """Recompute sourceStats.recordCount of STREAM states after records were
    inserted."""
    counts = {}
    out = []
    for ln in lines:
        m = json.loads(ln)
        if m.get("type") == "RECORD":
            counts[m["record"]["stream"]] = counts.get(m["record"]["stream"], 0) + 1
        elif m.get("type") == "STATE" and m["state"].get("type") == "STREAM":
            st = m["state"]["stream"]["stream_descriptor"]["name"]
            m["state"]["sourceStats"] = {"recordCount": float(counts.pop(st, 0))}
            ln = json.dumps(m, separators=(",", ":")).encode()
        out.append(ln)
    return out


class RateLimited(ShopsCase):
    """The API allows 5 requests/s with bursts of 10 (its default)."""

    emulator_args = {"rate": 5}

    def test_client_rate_limit_avoids_429(self):
        inp, exp = self.gen(products=150, inventory=250, invalid=4, state_every=50, seed=91)
        src = Source(inp, exp)
        checker = Checker(self.emu, src)
        res = self.write(inp, cfg=self.cfg(requests_per_second=4, burst=5, part_max_items=40,
                                           min_commit_records=150),
                         on_line=checker.on_line)
        self.full_check(inp, exp, res, checker)
        st = self.stats()
        self.assertEqual(st["rate_limited"], 0, "the client-side limit let 429s happen")
        self.assertGreater(st["requests"], 15)

    def test_429_retried_after_retry_after(self):
        inp, exp = self.gen(products=150, inventory=250, invalid=4, state_every=50, seed=92)
        src = Source(inp, exp)
        checker = Checker(self.emu, src)
        res = self.write(inp, cfg=self.cfg(requests_per_second=0, part_max_items=20,
                                           max_in_flight=8, max_retries=10,
                                           min_commit_records=150),
                         on_line=checker.on_line)
        self.full_check(inp, exp, res, checker)
        self.assertGreater(self.stats()["rate_limited"], 0, "no 429: the test proves nothing")
        self.assertGreater(summary_numbers(res, "retries"), 0)


def api_token(emu):
    body = ("grant_type=client_credentials&client_id=%s&client_secret=%s"
            % (CLIENT_ID, SECRET)).encode()
    st, obj = lib.http_json("POST", emu.url + "/oauth/token", body,
                            {"Content-Type": "application/x-www-form-urlencoded"})
    assert st == 200, (st, obj)
    return obj["access_token"]


def api_create_import(emu, token, label, channel=CHANNEL, mode="merge"):
    st, obj = lib.http_json("POST", emu.url + "/v1/imports",
                            {"channel": channel, "mode": mode,
                             "objects": ["products", "inventory"], "label": label},
                            {"Authorization": "Bearer " + token,
                             "Idempotency-Key": "it-" + secrets.token_hex(8)})
    assert st == 201, (st, obj)
    return obj["import_id"]


class TokenExpiry(ShopsCase):
    """Access tokens that live 2 s, in a run slowed to several seconds."""

    emulator_args = {"token_ttl": 2}

    def test_short_token_ttl_and_revoked_tokens(self):
        inp, exp = self.gen(products=300, inventory=900, invalid=6, state_every=30, seed=21)
        src = Source(inp, exp)
        checker = Checker(self.emu, src)
        self.emu.post("/_admin/faults", {"latency_ms": 150, "rate_token_expire": 0.05,
                                         "seed": 3})
        t0 = time.monotonic()
        res = self.write(inp, cfg=self.cfg(min_commit_records=100, max_in_flight=1,
                                           part_max_items=50, max_retries=8),
                         on_line=checker.on_line)
        took = time.monotonic() - t0
        stats = self.stats()
        self.emu.post("/_admin/faults", {})
        self.full_check(inp, exp, res, checker)
        self.assertGreater(took, 5, "the run must outlive a couple of tokens")
        self.assertGreater(stats["faults"]["token_expire"], 0)
        fetched = summary_numbers(res, "tokens fetched")
        self.assertGreaterEqual(fetched, 3, "tokens fetched %s in %.1f s" % (fetched, took))
        self.assertGreaterEqual(stats["tokens_issued"], fetched)


class Replace(ShopsCase):
    """Full refreshes (overwrite): one replace import, committed at the end."""

    def preseed(self, **opts):
        inp, exp = self.gen(name="seed", **opts)
        res = self.write(inp, name="seed", cfg=self.cfg(
            dead_letter_path=self.wd.join("seed-dead-letters.jsonl")))
        self.assert_ok(res)
        want = expected_store(exp)
        assert_store_equals(self, self.dump(), want, "pre-seeded store")
        return exp, want

    def test_replace_with_complete_deactivates_missing_items(self):
        old_exp, old = self.preseed(products=400, inventory=1000, invalid=0, seed=31)
        # the full refresh: parents from 100 on (so 0..99 and their variants
        # disappear), newer times, some new parents, other locations
        inp, exp = self.gen(products=500, inventory=1200, invalid=10, seed=32,
                            sku_start=100, time_offset=old_exp["clock"] + 1000, complete=True,
                            locations=5, state_every=40)
        new = expected_store(exp)
        want = expected_after_replace(old, new)
        n_deact = {s: sum(1 for k, v in old[s].items() if k not in new[s] and
                          (v["active"] if s == "products" else v["quantity"] != 0))
                   for s in STREAMS}
        self.assertGreater(n_deact["products"], 100)
        self.assertGreater(n_deact["inventory"], 100)
        self.assertGreater(len(set(old["products"]) & set(new["products"])), 50)
        src = Source(inp, exp)
        checker = Checker(self.emu, src)
        self.emu.post("/_admin/faults", {"commit_delay_ms": 100})
        res = self.write(inp, cat=catalog(mode="overwrite"), on_line=checker.on_line)
        dump, _ = self.full_check(inp, exp, res, checker, want_store=want)
        store = dump_by_key(dump)
        for k, v in old["products"].items():
            if k not in new["products"]:
                self.assertIs(store["products"][k]["active"], False)
                self.assertEqual(store["products"][k]["updated_at"], v["updated_at"])
        for k, v in old["inventory"].items():
            if k not in new["inventory"]:
                self.assertEqual(store["inventory"][k]["quantity"], 0)
                self.assertEqual(store["inventory"][k]["updated_at"], v["updated_at"])
        reps = [i for i in our_imports(dump) if i["mode"] == "replace"]
        self.assertEqual([i["status"] for i in reps], ["committed"], reps)
        self.assertEqual(sorted(reps[0]["objects"]), ["inventory", "products"])
        # every state of a replaced stream waits for the replace commit
        committed = ts_key(reps[0]["committed_at"])
        early = [line for line, t in checker.arrivals if t + 0.002 < committed]
        self.assertEqual(early, [], "states emitted before the replace import committed")
        st = self.stats()["deactivated"]
        self.assertEqual(st, n_deact)
        self.assertEqual(summary_numbers(res, "deactivated"), n_deact["products"])
        self.assertTrue(any("replace:" in m for m in res.logs("INFO")), res.describe())

    def test_replace_products_with_incremental_inventory(self):
        """products overwrite, inventory append_dedup: inventory of products
        that exist only in the pending replace import waits for it (deferred),
        nothing is wrongly rejected, inventory is not deactivated."""
        self.mixed_modes("STREAM")

    def test_replace_products_with_incremental_inventory_global_states(self):
        self.mixed_modes("GLOBAL")

    def mixed_modes(self, state_type):
        old_exp, old = self.preseed(products=200, inventory=500, seed=41)
        inp, exp = self.gen(products=300, inventory=900, invalid=10, seed=42, sku_start=100,
                            time_offset=old_exp["clock"] + 1000, complete=True,
                            state_every=40, state_type=state_type)
        new = expected_store(exp)
        want = expected_after_replace(old, new, replaced=("products",))
        src = Source(inp, exp)
        checker = Checker(self.emu, src)
        res = self.write(inp, cat=catalog(modes={"products": "overwrite",
                                                 "inventory": "append_dedup"}),
                         on_line=checker.on_line)
        # Deferred inventory commits after the last merge import, so an older
        # deferred version can meet a newer one already applied ('unchanged'):
        # not every version shows up in the applied log (fresh=False).
        dump, _ = self.full_check(inp, exp, res, checker, want_store=want, fresh=False)
        store = dump_by_key(dump)
        self.assertTrue(all(v["quantity"] == store["inventory"][k]["quantity"]
                            for k, v in old["inventory"].items() if k not in new["inventory"]),
                        "inventory of an append stream was deactivated")
        deferred = re.search(r"(\d+) deferred after the replace import",
                             " ".join(res.logs()))
        self.assertIsNotNone(deferred, res.describe())
        self.assertGreater(int(deferred.group(1)), 0, "no inventory record needed deferring: "
                           "the test does not exercise the deferral")
        self.assertEqual(self.stats()["deactivated"]["inventory"], 0)
        self.assertGreater(self.stats()["deactivated"]["products"], 30)

    def replace_run(self, faults=None, before=None, cfg_over=None, seed=81):
        """Pre-seed, then a full refresh with COMPLETE under faults; the
        store must be the replaced one."""
        old_exp, old = self.preseed(products=300, inventory=800, seed=seed)
        inp, exp = self.gen(products=300, inventory=800, invalid=6, seed=seed + 1,
                            sku_start=60, time_offset=old_exp["clock"] + 1000, complete=True,
                            state_every=40)
        want = expected_after_replace(old, expected_store(exp))
        src = Source(inp, exp)
        checker = Checker(self.emu, src)
        if before:
            before()
        if faults:
            self.emu.post("/_admin/faults", faults)
        res = self.write(inp, cat=catalog(mode="overwrite"), on_line=checker.on_line,
                         cfg=self.cfg(**(cfg_over or {})))
        n_deact = self.stats()["deactivated"]
        self.emu.post("/_admin/faults", {})
        dump, _ = self.full_check(inp, exp, res, checker, want_store=want)
        self.assertGreater(n_deact["products"], 30)
        self.assertEqual(summary_numbers(res, "deactivated"), n_deact["products"],
                         "the summary does not report the commit's deactivations")
        return res, dump

    def test_replace_commit_answer_lost(self):
        """The answers of the replace commit are lost (the commit runs, the
        connection is reset) until the test lifts the fault (after 2 or a few
        more): the destination asks the import's status and fetches the
        stored result (counts, commit-time rejections) rather than re-running
        anything."""
        stop = threading.Event()

        def lift_after_two_drops():
            while not stop.wait(0.01):
                if self.stats()["faults"]["commit_drop"] >= 2:
                    self.emu.post("/_admin/faults", {})
                    return

        t = threading.Thread(target=lift_after_two_drops, daemon=True)
        t.start()
        try:
            res, dump = self.replace_run(faults={"rate_commit_drop": 1.0})
        finally:
            stop.set()
            t.join(5)
        drops = self.stats()["faults"]["commit_drop"]
        self.assertGreaterEqual(drops, 2)
        self.assertGreaterEqual(summary_numbers(res, "commits in doubt"), drops)
        self.assertGreater(summary_numbers(res, "commits in doubt"), 0)
        self.assertGreater(self.stats()["commit_replays"], 0)
        reps = [i for i in our_imports(dump) if i["mode"] == "replace"]
        self.assertEqual([i["status"] for i in reps], ["committed"])

    def test_replace_import_expired_midway(self):
        """The replace import (open for the whole run) is expired twice while
        it takes parts: it is re-created, its records uploaded again from the
        spool, and the replace still applies exactly once."""
        expirer = Expirer(self.emu, random.Random(6), every=0.1)
        expirer.start()
        try:
            res, dump = self.replace_run(faults={"latency_ms": 40},
                                         cfg_over=dict(max_in_flight=1, part_max_items=50),
                                         before=lambda: expirer.arm(2))
        finally:
            expirer.stop()
        self.assertEqual(len(expirer.expired), 2, "could not expire the replace import twice")
        reps = [i for i in our_imports(dump) if i["mode"] == "replace"]
        self.assertEqual(sorted(i["status"] for i in reps),
                         ["committed", "expired", "expired"], reps)
        self.assertGreaterEqual(summary_numbers(res, "re-created"), 2)

    def test_empty_full_refresh_with_complete_deactivates_everything(self):
        _, old = self.preseed(products=100, inventory=300, seed=51)
        lines = [{"type": "TRACE", "trace": {
            "type": "STREAM_STATUS", "emitted_at": 1.0,
            "stream_status": {"stream_descriptor": {"name": s}, "status": "COMPLETE"}}}
            for s in STREAMS]
        inp = self.wd.write_lines("empty.jsonl", lines)
        res = self.write(inp, cat=catalog(mode="overwrite"))
        self.assert_ok(res)
        want = expected_after_replace(old, {"products": {}, "inventory": {}})
        dump = self.dump()
        assert_store_equals(self, dump, want)
        assert_no_open_imports(self, dump)


if __name__ == "__main__":
    lib.main(__doc__.split("\n")[0])
