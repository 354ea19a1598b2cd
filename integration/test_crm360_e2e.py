#!/usr/bin/env python3
"""End-to-end tests of destination-crm360 against the CRM360 emulator.

    test_crm360_e2e.py --bin build/destinations/crm360/destination-crm360 [-k name]

The helpers it shares with the other CRM360 test scripts (emulator
start-up, config and catalog, expected store and dead-letter comparison, the
test case class) are in crm360_helpers.py; what does not depend on the
destination (test case machinery, input streams, state checks) is in lib.py
and airbyte_input.py.
"""

import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from airbyte_input import assert_states, input_states  # noqa: E402
from crm360_helpers import (FIELDS, RO_KEY, WRONG_KEY, CrmCase, assert_dead_letters,  # noqa: E402
                           assert_orders_after_customers, assert_store_matches, catalog,
                           dump_by_key, key_of, split_states_at, start_emulator)

# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

SPEC_FIELDS = ("api_url", "api_key", "brand", "batch_size", "max_batch_bytes", "max_in_flight",
               "requests_per_second", "burst", "connect_timeout_seconds",
               "request_timeout_seconds", "max_retries", "gzip", "rejected_records",
               "dead_letter_path", "stream_mappings", "max_line_bytes",
               "progress_interval_seconds", "max_checkpoint_wait_seconds", "log_level")


class Commands(CrmCase):
    def test_spec(self):
        spec = self.spec()
        cs = spec["connectionSpecification"]
        self.assertEqual(cs.get("type"), "object")
        self.assertEqual(set(cs.get("required", [])), {"api_url", "api_key"})
        props = cs["properties"]
        for f in SPEC_FIELDS:
            self.assertIn(f, props, "spec lacks %s" % f)
        self.assertIs(props["api_key"].get("airbyte_secret"), True)
        self.assertEqual(set(props["rejected_records"]["enum"]), {"dead_letter", "fail"})
        modes = spec.get("supported_destination_sync_modes")
        self.assertIn("append_dedup", modes)
        self.assertIn("soft_delete", modes)
        self.assertNotIn("overwrite", modes)

    def test_usage_errors_exit_2(self):
        for args in (["write", "--bogus"], [], ["spec", "check"], ["check", "--config"]):
            res = lib.run_connector(lib.binary(), args, self.wd, name="usage", timeout=30)
            self.assertEqual(res.rc, 2, "%s:\n%s" % (args, res.describe()))
            self.assertEqual(res.errors, [])

    def test_discover(self):
        """One DESTINATION_CATALOG: customers and orders, each with the
        operations CRM360 really has (upsert by (brand, external_id) as
        append and append_dedup, delete as soft_delete), the contract's
        fields, and the matching key; no request to CRM360."""
        cat = self.discover(self.cfg())
        ops = {(o["object_name"], o["sync_mode"]): o for o in cat["operations"]}
        self.assertEqual(set(ops), {(obj, m) for obj in ("customers", "orders")
                                    for m in ("append", "append_dedup", "soft_delete")})
        for o in ops.values():
            self.assertEqual(o["matching_keys"], [["brand", "external_id"]])
        cust = ops[("customers", "append_dedup")]["json_schema"]
        self.assertEqual(set(cust["properties"]), set(FIELDS["customers"]))
        self.assertEqual(set(cust["required"]), {"external_id", "brand", "email", "updated_at"})
        orders = ops[("orders", "append")]["json_schema"]
        self.assertEqual(set(orders["properties"]), set(FIELDS["orders"]))
        self.assertEqual(orders["properties"]["total"]["type"], "string")
        self.assertEqual(self.emu.get("/_admin/stats")["requests_total"], 0)

    def test_data_activation_stream(self):
        """A stream as the platform sends it for data activation: its own
        name and namespace, destination_object_name naming the object, the
        fields already mapped to the object's names; loads that object."""
        inp, exp = lib.run_gen_stream(self.wd, customers=25, orders=0, seed=5)
        lines = [ln.replace(b'"name":"customers"', b'"name":"contacts_model","namespace":'
                            b'"analytics"').replace(b'"stream":"customers"',
                                                    b'"stream":"contacts_model","namespace":'
                                                    b'"analytics"')
                 for ln in lib.read_input_lines(inp)]
        inp2 = self.wd.write_lines("activation.jsonl", lines)
        cat = catalog(streams=("customers",), namespace="analytics")
        st = cat["streams"][0]
        st["stream"]["name"] = "contacts_model"
        st["destination_object_name"] = "customers"
        res = self.write(inp2, cat=cat)
        self.assert_ok(res)
        self.assertGreater(len(res.states), 0)
        stored = dump_by_key(self.dump())
        self.assertEqual(set(stored["customers"]), set(exp["customers"]))
        self.assertEqual(stored["orders"], {})

    def test_truncating_generation_without_complete_is_loaded_with_a_warning(self):
        """minimum_generation_id = generation_id asks to remove earlier
        generations' records: without STREAM_STATUS COMPLETE nothing is
        removed (test_crm360_refresh.py and test_crm360_orders_refresh.py:
        with it)."""
        inp1, exp1 = lib.run_gen_stream(self.wd, name="gen1", customers=20, orders=0, seed=8)
        self.assert_ok(self.write(inp1, name="gen1"))
        inp2, exp2 = lib.run_gen_stream(self.wd, name="gen2", customers=10, orders=0, seed=9)
        cat = catalog(streams=("customers",))
        for st in cat["streams"]:
            st["generation_id"] = st["minimum_generation_id"] = 2
        res = self.write(inp2, name="gen2", cat=cat)
        self.assert_ok(res)
        warn = res.logs("WARN")
        self.assertEqual(len([m for m in warn if "stream 'customers': no STREAM_STATUS COMPLETE"
                              in m and "nothing of earlier generations is removed" in m]), 1,
                         res.describe())
        stored = dump_by_key(self.dump())["customers"]
        self.assertEqual(set(stored), set(exp1["customers"]) | set(exp2["customers"]))

    def test_check_succeeds(self):
        res, st = self.check(self.cfg())
        self.assertEqual(st["status"], "SUCCEEDED", res.describe())

    def test_check_wrong_key(self):
        res, st = self.check(self.cfg(api_key=WRONG_KEY))
        self.assertEqual(st["status"], "FAILED", res.describe())
        self.assertIn("api_key", st.get("message", ""))
        self.assertIn("401", st.get("message", ""))

    def test_check_key_without_write_scope(self):
        res, st = self.check(self.cfg(api_key=RO_KEY))
        self.assertEqual(st["status"], "FAILED", res.describe())
        msg = st.get("message", "")
        self.assertIn("api_key", msg)
        self.assertIn("write", msg)

    def test_check_unreachable(self):
        port = lib.free_port()
        t0 = time.monotonic()
        res, st = self.check(self.cfg(api_url="http://127.0.0.1:%d" % port,
                                      connect_timeout_seconds=3, request_timeout_seconds=5))
        self.assertEqual(st["status"], "FAILED", res.describe())
        self.assertIn("127.0.0.1:%d" % port, st.get("message", ""))
        self.assertLess(time.monotonic() - t0, 30)

    def test_plain_http_to_remote_host_rejected(self):
        for url in ("http://crm360.example.com", "http://localhost.example.com:8080",
                    "http://127.0.0.1.nip.io", "http://10.0.0.1:%d" % self.emu.port):
            res, st = self.check(self.cfg(api_url=url, connect_timeout_seconds=2,
                                          request_timeout_seconds=3), name="check-http")
            self.assertEqual(st["status"], "FAILED", "%s accepted:\n%s" % (url, res.describe()))
            self.assertIn("https", st.get("message", ""), url)
            self.assertIn("api_url", st.get("message", ""), url)
        inp = self.wd.write_lines("empty.jsonl", [])
        res = self.write(inp, cfg=self.cfg(api_url="http://crm360.example.com"))
        self.assert_fatal(res, "config_error", ["api_url", "https"])
        self.assertEqual(res.states, [])

    def test_write_with_wrong_key_fails_as_config_error(self):
        inp, exp = lib.run_gen_stream(self.wd, customers=20, orders=20, seed=3)
        res = self.write(inp, cfg=self.cfg(api_key=WRONG_KEY))
        self.assert_fatal(res, "config_error", ["api_key"])
        self.assertEqual(res.states, [])
        self.assertEqual(self.applied(), [])

    def test_write_unreachable_is_transient(self):
        inp, _ = lib.run_gen_stream(self.wd, customers=20, orders=20, seed=3)
        res = self.write(inp, cfg=self.cfg(api_url="http://127.0.0.1:%d" % lib.free_port(),
                                           max_retries=1, connect_timeout_seconds=2))
        self.assert_fatal(res, "transient_error")
        self.assertEqual(res.states, [])

    def test_overwrite_is_a_config_error(self):
        inp, _ = lib.run_gen_stream(self.wd, customers=20, orders=20, seed=3)
        res = self.write(inp, cat=catalog(modes={"customers": "overwrite"}))
        self.assert_fatal(res, "config_error", ["customers", "overwrite"])
        self.assertEqual(res.states, [])
        self.assertEqual(self.applied(), [])


class Sync(CrmCase):
    """Full syncs of generated streams."""

    def full_sync(self, state_type="STREAM", seed=11, customers=1500, orders=3000, invalid=24,
                  timeout=180, **cfg_over):
        inp, exp = lib.run_gen_stream(self.wd, customers=customers, orders=orders,
                                      invalid=invalid, update_rate=0.15, state_every=40,
                                      state_type=state_type, seed=seed, complete=True)
        res = self.write(inp, cfg=self.cfg(**cfg_over), timeout=timeout)
        self.assert_ok(res)
        assert_store_matches(self, self.dump(), exp)
        assert_dead_letters(self, self.dead_letters(), exp["invalid"])
        assert_states(self, inp, res, exp["invalid"])
        self.assertGreater(len(res.states), 10)
        return inp, exp, res

    def test_stream_states_max_in_flight_1(self):
        self.full_sync(max_in_flight=1, batch_size=50)

    def test_stream_states_max_in_flight_8(self):
        # DEBUG logging: the most verbose output is searched for the key too.
        inp, _, _ = self.full_sync(max_in_flight=8, batch_size=25, log_level="DEBUG", seed=12)
        n = assert_orders_after_customers(self, self.applied(), inp)
        self.assertGreater(n, 1000)

    def test_global_states(self):
        self.full_sync(state_type="GLOBAL", seed=13, max_in_flight=4, batch_size=60)

    def test_gzip_off_and_byte_limited_batches(self):
        # Batches cut by max_batch_bytes (4 KiB: ~10 records) rather than by
        # batch_size; must take well under a second, 60 s is generous.
        self.full_sync(seed=14, customers=400, orders=800, invalid=8, gzip=False,
                       max_batch_bytes=4096, batch_size=1000, timeout=60)

    def test_orders_never_applied_before_their_customer(self):
        # Out-of-order completion: random latency per request, many small
        # batches in flight, orders dense right after their customers.
        self.emu.post("/_admin/faults", {"latency_ms": 1, "latency_jitter_ms": 25, "seed": 5})
        inp, exp = lib.run_gen_stream(self.wd, customers=600, orders=1800, invalid=8,
                                      update_rate=0.2, state_every=30, seed=21)
        res = self.write(inp, cfg=self.cfg(max_in_flight=8, batch_size=7))
        self.assert_ok(res)
        n = assert_orders_after_customers(self, self.applied(), inp)
        self.assertGreater(n, 1500)
        assert_store_matches(self, self.dump(), exp)
        assert_dead_letters(self, self.dead_letters(), exp["invalid"])

    def test_rerun_is_idempotent(self):
        inp, exp = lib.run_gen_stream(self.wd, customers=500, orders=1000, invalid=8,
                                      update_rate=0.15, state_every=40, seed=15)
        cfg = self.cfg(max_in_flight=4, batch_size=50)
        first = self.write(inp, cfg=cfg, name="first")
        self.assert_ok(first)
        applied = self.applied()
        dump = self.dump()
        assert_store_matches(self, dump, exp)
        second = self.write(inp, cfg=cfg, name="second")
        self.assert_ok(second)
        again = self.applied()
        self.assertEqual(len(again), len(applied),
                         "the rerun applied %d more writes, e.g. %s"
                         % (len(again) - len(applied), again[len(applied):][:3]))
        self.assertEqual(self.dump(), dump, "the rerun changed the store")
        assert_states(self, inp, second, exp["invalid"])
        self.assertEqual([lib.strip_dest_stats(s) for s in second.states],
                         [lib.strip_dest_stats(s) for s in first.states])

    def test_soft_delete_and_cdc_deleted_at(self):
        inp, exp = lib.run_gen_stream(self.wd, customers=40, orders=60, update_rate=0,
                                      state_every=20, seed=16)
        self.assert_ok(self.write(inp, name="load"))
        before = dump_by_key(self.dump())
        custs = sorted(exp["customers"].values(), key=key_of)
        ords = sorted(exp["orders"].values(), key=key_of)
        later = "2027-01-01T00:00:00Z"
        earlier = "2025-06-01T00:00:00Z"  # older than every stored updated_at
        lines = []

        def rec(stream, data):
            lines.append({"type": "RECORD", "record": {"stream": stream, "emitted_at": 1,
                                                        "data": data}})

        # customers: CDC deletes in an append_dedup stream
        rec("customers", dict(custs[0], _ab_cdc_deleted_at=later))
        rec("customers", dict(custs[1], _ab_cdc_deleted_at="2027-01-02T03:04:05Z"))
        rec("customers", dict(custs[2], _ab_cdc_deleted_at=earlier))        # stale
        rec("customers", dict(custs[3], _ab_cdc_deleted_at=None,            # upsert
                              name="Renamed", updated_at=later))
        lines.append({"type": "STATE", "state": {"type": "STREAM", "stream": {
            "stream_descriptor": {"name": "customers"}, "stream_state": {"c": 1}},
            "sourceStats": {"recordCount": 4.0}, "id": 1}})
        # orders: a soft_delete stream (deleted_at from updated_at)
        rec("orders", dict(ords[0], updated_at=later))
        rec("orders", dict(ords[1], updated_at=later, _ab_cdc_deleted_at=later))
        rec("orders", {"external_id": "O-NOPE", "brand": "aurora", "updated_at": later})
        lines.append({"type": "STATE", "state": {"type": "STREAM", "stream": {
            "stream_descriptor": {"name": "orders"}, "stream_state": {"c": 2}},
            "sourceStats": {"recordCount": 3.0}, "id": 2}})
        inp2 = self.wd.write_lines("deletes.jsonl", lines)
        n_applied = len(self.applied())
        res = self.write(inp2, name="deletes", cat=catalog(modes={"orders": "soft_delete"}))
        self.assert_ok(res)
        self.assertEqual(len(res.states), 2)
        for s in res.states:
            self.assertEqual(s["destinationStats"]["rejectedRecordCount"], 0)
        after = dump_by_key(self.dump())
        c = after["customers"]
        o = after["orders"]
        self.assertTrue(c[key_of(custs[0])]["deleted"])
        self.assertEqual(c[key_of(custs[0])]["deleted_at"], later)
        self.assertTrue(c[key_of(custs[1])]["deleted"])
        self.assertEqual(c[key_of(custs[1])]["deleted_at"], "2027-01-02T03:04:05Z")
        self.assertFalse(c[key_of(custs[2])]["deleted"], "a delete older than the record "
                         "must be stale")
        self.assertEqual(c[key_of(custs[2])], before["customers"][key_of(custs[2])])
        self.assertFalse(c[key_of(custs[3])]["deleted"])
        self.assertEqual(c[key_of(custs[3])]["name"], "Renamed")
        self.assertTrue(o[key_of(ords[0])]["deleted"])
        self.assertEqual(o[key_of(ords[0])]["deleted_at"], later)
        self.assertTrue(o[key_of(ords[1])]["deleted"])
        self.assertNotIn("aurora/O-NOPE", o)
        # nothing else changed
        for obj, touched in (("customers", custs[:4]), ("orders", ords[:2])):
            keys = {key_of(r) for r in touched}
            for k, r in before[obj].items():
                if k not in keys:
                    self.assertEqual(after[obj][k], r)
        new = self.applied()[n_applied:]
        self.assertEqual(sorted(a["status"] for a in new),
                         ["deleted", "deleted", "deleted", "deleted", "updated"], new)
        self.assertEqual(self.dead_letters(), [])


class FailPolicy(CrmCase):
    def run_fail(self, inp, first_bad_line, stream, rejected_by):
        res = self.write(inp, cfg=self.cfg(rejected_records="fail", max_in_flight=4,
                                           batch_size=20))
        e = self.assert_fatal(res, None, ["line %d" % first_bad_line, "'%s'" % stream])
        self.assertIn(rejected_by, e["message"])
        ins = input_states(inp)
        out = res.states
        self.assertLessEqual(len(out), len(ins))
        for (line, st, _, _), o in zip(ins, out):
            self.assertEqual(lib.strip_dest_stats(o), st)
            self.assertLess(line, first_bad_line, "state at input line %d emitted after the "
                            "rejected record at line %d" % (line, first_bad_line))
        return res

    def test_fail_on_local_rejection(self):
        inp, exp = lib.run_gen_stream(self.wd, customers=300, orders=600, invalid=4,
                                      state_every=20, seed=31)
        first = exp["invalid"][0]
        self.assertEqual(first["reason"], "missing_field external_id")
        res = self.run_fail(inp, first["line"], "customers", "destination")
        before, _ = split_states_at(inp, first["line"])
        self.assertGreater(len(before), 0)

    def test_fail_on_target_rejection(self):
        inp, exp = lib.run_gen_stream(self.wd, customers=300, orders=600, invalid=4,
                                      state_every=20, seed=32)
        # keep only the second invalid record (a bad email CRM360 rejects):
        # drop the first (missing external_id) and every invalid after it.
        drop = {i["line"] for i in exp["invalid"] if i["reason"] != "invalid_format email"}
        lines = [ln for n, ln in enumerate(lib.read_input_lines(inp), 1) if n not in drop]
        inp2 = self.wd.write_lines("one-bad.jsonl", lines)
        bad = [n for n, ln in enumerate(lines, 1) if b'"not-an-email"' in ln]
        self.assertEqual(len(bad), 1)
        self.run_fail(inp2, bad[0], "customers", "target")


class Tls(CrmCase):
    """https with TLS verification: a certificate signed by a private CA is
    accepted only when ca_path names that CA."""

    @classmethod
    def setUpClass(cls):
        cls.pki = lib.Workdir(prefix="crm360-pki-")
        d = cls.pki.path

        def ssl_cmd(*args):
            subprocess.run(["openssl"] + list(args), cwd=d, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        ssl_cmd("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
                "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA")
        ssl_cmd("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out",
                "srv.csr", "-subj", "/CN=127.0.0.1")
        with open(os.path.join(d, "san.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        ssl_cmd("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "san.ext")
        cls.ca = os.path.join(d, "ca.pem")
        cls.emu = start_emulator(extra=["--tls-cert", os.path.join(d, "srv.pem"),
                                        "--tls-key", os.path.join(d, "srv.key")])

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()
        cls.pki.cleanup()

    def https_cfg(self, **over):
        return self.cfg(api_url="https://127.0.0.1:%d" % self.emu.port, **over)

    def test_verified_with_ca_path(self):
        res, st = self.check(self.https_cfg(ca_path=self.ca))
        self.assertEqual(st["status"], "SUCCEEDED", res.describe())
        inp, exp = lib.run_gen_stream(self.wd, customers=30, orders=30, state_every=10, seed=3)
        res = self.write(inp, cfg=self.https_cfg(ca_path=self.ca))
        self.assert_ok(res)
        self.assertEqual(len(res.states), len(input_states(inp)))
        assert_store_matches(self, self.dump(), exp)

    def test_unknown_ca_refused(self):
        res, st = self.check(self.https_cfg())
        self.assertEqual(st["status"], "FAILED", res.describe())
        self.assertIn("certificate", st["message"].lower(), res.describe())
        inp, _ = lib.run_gen_stream(self.wd, customers=10, orders=10, state_every=5, seed=3)
        res = self.write(inp, cfg=self.https_cfg())
        self.assert_fatal(res, "config_error", ["certificate"])
        self.assertEqual(res.states, [])
        self.assertEqual(self.emu.get("/_admin/applied"), [])


class Signals(CrmCase):
    def test_sigterm_mid_run(self):
        # Slow answers keep requests in flight; stdin stays open like a
        # source that is still producing.
        self.emu.post("/_admin/faults", {"latency_ms": 400})
        inp, exp = lib.run_gen_stream(self.wd, customers=2000, orders=4000, state_every=20,
                                      seed=41)
        with open(inp, "rb") as f:
            data = f.read()
        cfg_path = self.write_config(self.cfg(max_in_flight=4, batch_size=20), "sig.config.json")
        cat_path = self.wd.write_json("sig.catalog.json", catalog())
        first_state = threading.Event()

        def on_line(line):
            if line.startswith(b'{"type":"STATE"'):
                first_state.set()

        p = lib.Connector(lib.binary(), ["write", "--config", cfg_path, "--catalog", cat_path],
                          self.wd, name="sigterm", stdin=data, keep_stdin_open=True,
                          on_line=on_line)
        try:
            self.assertTrue(first_state.wait(60), "no state within 60 s")
            time.sleep(0.3)
            self.assertIsNone(p.poll(), "the destination ended before SIGTERM")
            t0 = time.monotonic()
            p.signal(signal.SIGTERM)
            deadline = t0 + 5
            while p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            took = time.monotonic() - t0
        finally:
            res = p.wait(timeout=120)
        sys.stderr.write("[exit %.2f s after SIGTERM] " % took)
        self.assertLess(took, 5.0, "exit took %.1f s after SIGTERM" % took)
        self.assertEqual(res.rc, 143, res.describe())
        self.assertTrue(res.stdout.endswith(b"\n"), "partial last line: %r" % res.stdout[-100:])
        # every line parsed (lib.parse_messages) and the states are a prefix
        assert_states(self, inp, res, [], prefix=True)
        self.assertGreater(len(res.states), 0)
        self.assertLess(len(res.states), len(input_states(inp)))


if __name__ == "__main__":
    lib.main(__doc__.split("\n")[0])
