"""Self-test of crm360_emulator.py against the CRM360 v1 contract.

Starts the emulator as a subprocess on a free port (--port 0 --port-file) and
talks HTTP to it with http.client. Run from the repository root:

    python3 -m unittest integration/emulators/test_crm360_emulator.py -v
"""

import gzip
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid
from collections import namedtuple

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "crm360_emulator.py")

MAX_BYTES = 8 * 1024 * 1024
T0 = "2024-05-01T10:00:00Z"
T0_SAME = "2024-05-01T07:00:00.000-03:00"  # the same instant as T0
T_OLD = "2024-05-01T09:59:59.999Z"
T_NEW = "2024-05-01T10:00:00.001Z"

Response = namedtuple("Response", "status headers body")


class Emulator:
    """One emulator subprocess and a tiny HTTP client for it."""

    def __init__(self, *extra_args):
        self.tmpdir = tempfile.TemporaryDirectory()
        self.port_file = os.path.join(self.tmpdir.name, "port")
        self.journal = os.path.join(self.tmpdir.name, "journal.jsonl")
        self.proc = subprocess.Popen(
            [sys.executable, EMULATOR, "--host", "127.0.0.1", "--port", "0",
             "--port-file", self.port_file, "--journal", self.journal, *extra_args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("emulator did not start: "
                                   + self.proc.stderr.read().decode(errors="replace"))
            time.sleep(0.02)
        with open(self.port_file, encoding="ascii") as f:
            self.port = int(f.read())

    def stop(self):
        """Terminate; return (stdout, stderr)."""
        self.proc.terminate()
        try:
            out, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        self.tmpdir.cleanup()
        return out, err

    def call(self, method, path, body=None, key="demo-key", idem=None, raw=None,
             headers=None, timeout=30):
        hdrs = {}
        if key is not None:
            hdrs["Authorization"] = "Bearer " + key
        if idem is not None:
            hdrs["Idempotency-Key"] = idem
        data = raw
        if data is None and body is not None:
            data = json.dumps(body).encode("utf-8")
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
        finally:
            conn.close()
        return Response(resp.status, resp.headers, json.loads(payload) if payload else None)

    def admin(self, method, name, body=None):
        return self.call(method, "/_admin/" + name, body=body, key=None).body

    def batch(self, obj, op, records, idem=None, key="demo-key", **kwargs):
        return self.call("POST", f"/v1/{obj}:{op}", {"records": records}, key=key,
                         idem=idem or str(uuid.uuid4()), **kwargs)

    def upsert(self, obj, records, **kwargs):
        return self.batch(obj, "batchUpsert", records, **kwargs)

    def delete(self, obj, records, **kwargs):
        return self.batch(obj, "batchDelete", records, **kwargs)


def customer(ext="C-1", brand="acme", updated_at=T0, **fields):
    rec = {"external_id": ext, "brand": brand, "email": f"{ext.lower()}@example.com",
           "updated_at": updated_at}
    rec.update(fields)
    return rec


def order(ext="O-1", brand="acme", customer_id="C-1", updated_at=T0, **fields):
    rec = {"external_id": ext, "brand": brand, "customer_external_id": customer_id,
           "status": "paid", "currency": "BRL", "total": "199.90",
           "items": [{"sku": "SKU-1", "quantity": 2, "unit_price": "99.95"}],
           "placed_at": T0, "updated_at": updated_at}
    rec.update(fields)
    return rec


EMU = None


def setUpModule():
    global EMU
    EMU = Emulator("--api-key", "demo-key", "--api-key", "ro-key:read",
                   "--api-key", "wo-key:write", "--api-key", "other-key:read,write",
                   "--rate", "0", "--seed", "7", "--workspace", "acme-ws")


def tearDownModule():
    if EMU is not None:
        EMU.stop()


class EmulatorTest(unittest.TestCase):
    def setUp(self):
        EMU.admin("POST", "reset")

    def statuses(self, resp):
        self.assertEqual(resp.status, 200, resp.body)
        return [r["status"] for r in resp.body["results"]]

    def assertError(self, resp, status, code):
        self.assertEqual(resp.status, status, resp.body)
        self.assertEqual(resp.body["error"]["code"], code, resp.body)
        self.assertIsInstance(resp.body["error"]["message"], str)
        self.assertIn("X-RateLimit-Remaining", resp.headers)

    def only_error(self, resp):
        """(field, code) of the single error of the single result."""
        self.assertEqual(resp.status, 200, resp.body)
        (result,) = resp.body["results"]
        self.assertEqual(result["status"], "rejected", result)
        return [(e["field"], e["code"]) for e in result["errors"]]

    def applied(self):
        return EMU.admin("GET", "applied")


class TestAuth(EmulatorTest):
    def test_ping(self):
        resp = EMU.call("GET", "/v1/ping")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, {"workspace": "acme-ws", "scopes": ["read", "write"]})
        self.assertIn("X-RateLimit-Remaining", resp.headers)
        self.assertEqual(EMU.call("GET", "/v1/ping", key="ro-key").body["scopes"], ["read"])

    def test_missing_or_wrong_key_is_401(self):
        for key in (None, "nope"):
            resp = EMU.upsert("customers", [customer()], key=key)
            self.assertError(resp, 401, "unauthorized")
            self.assertIn("Bearer", resp.headers["WWW-Authenticate"])
        resp = EMU.call("GET", "/v1/ping", key=None, headers={"Authorization": "Basic eDp5"})
        self.assertError(resp, 401, "unauthorized")
        self.assertEqual(self.applied(), [])

    def test_key_without_write_scope_is_403(self):
        self.assertError(EMU.upsert("customers", [customer()], key="ro-key"), 403, "forbidden")
        self.assertError(EMU.delete("customers", [{"external_id": "C-1", "brand": "acme",
                                                   "deleted_at": T0}], key="ro-key"),
                         403, "forbidden")
        self.assertEqual(EMU.call("GET", "/v1/customers", key="ro-key").status, 200)

    def test_key_without_read_scope_cannot_read(self):
        self.assertEqual(self.statuses(EMU.upsert("customers", [customer()], key="wo-key")),
                         ["created"])
        self.assertError(EMU.call("GET", "/v1/customers/acme/C-1", key="wo-key"),
                         403, "forbidden")

    def test_auth_errors_are_not_stored(self):
        key = "auth-then-ok"
        self.assertEqual(EMU.upsert("customers", [customer()], key="ro-key", idem=key).status,
                         403)
        resp = EMU.upsert("customers", [customer()], key="demo-key", idem=key)
        self.assertEqual(self.statuses(resp), ["created"])
        self.assertNotIn("Idempotent-Replayed", resp.headers)


class TestEnvelope(EmulatorTest):
    def test_idempotency_key_missing(self):
        resp = EMU.call("POST", "/v1/customers:batchUpsert", {"records": [customer()]})
        self.assertError(resp, 400, "idempotency_key_missing")

    def test_idempotency_key_invalid(self):
        for bad in ("has space", "k" * 256, "caf\u00e9", "tab\there"):
            resp = EMU.upsert("customers", [customer()], idem=bad)
            self.assertError(resp, 400, "idempotency_key_invalid")
        self.assertEqual(EMU.upsert("customers", [customer()], idem="k" * 255).status, 200)
        self.assertEqual(EMU.upsert("orders", [order()], idem="!~").status, 200)

    def test_invalid_json_and_request_shape(self):
        path = "/v1/customers:batchUpsert"
        cases = [
            (b"{not json", "invalid_json"),
            (b'{"records": [NaN]}', "invalid_json"),
            (b"\xff\xfe{}", "invalid_json"),
            (b'{"records": []}', "invalid_request"),
            (b'{"records": {}}', "invalid_request"),
            (b'[{"external_id": "C-1"}]', "invalid_request"),
            (b'{"data": []}', "invalid_request"),
        ]
        for raw, code in cases:
            with self.subTest(raw=raw):
                resp = EMU.call("POST", path, raw=raw, idem=str(uuid.uuid4()))
                self.assertError(resp, 400, code)

    def assertTooLarge(self, resp):
        self.assertError(resp, 413, "batch_too_large")
        self.assertEqual(resp.body["error"]["max_records"], 1000)
        self.assertEqual(resp.body["error"]["max_bytes"], MAX_BYTES)
        self.assertEqual(resp.body["max_records"], 1000)
        self.assertEqual(resp.body["max_bytes"], MAX_BYTES)

    def test_too_many_records(self):
        records = [customer(f"C-{i}") for i in range(1001)]
        self.assertTooLarge(EMU.upsert("customers", records))
        self.assertEqual(self.statuses(EMU.upsert("customers", records[:1000])),
                         ["created"] * 1000)

    def test_too_many_bytes(self):
        big = customer(attributes={"pad": "x" * MAX_BYTES})
        self.assertTooLarge(EMU.upsert("customers", [big]))
        self.assertEqual(self.applied(), [])

    def test_gzip_bodies(self):
        raw = json.dumps({"records": [customer()]}).encode()
        resp = EMU.call("POST", "/v1/customers:batchUpsert", raw=gzip.compress(raw),
                        idem="gz-1", headers={"Content-Encoding": "gzip"})
        self.assertEqual(self.statuses(resp), ["created"])
        # The fingerprint is over the decompressed body: a plain retry replays.
        resp = EMU.call("POST", "/v1/customers:batchUpsert", raw=raw, idem="gz-1")
        self.assertEqual(resp.headers["Idempotent-Replayed"], "true")

        resp = EMU.call("POST", "/v1/customers:batchUpsert", raw=b"\x1f\x8bnot gzip",
                        idem="gz-2", headers={"Content-Encoding": "gzip"})
        self.assertError(resp, 400, "invalid_encoding")
        bomb = gzip.compress(b'{"records": [' + b" " * (MAX_BYTES + 10) + b"]}")
        resp = EMU.call("POST", "/v1/customers:batchUpsert", raw=bomb, idem="gz-3",
                        headers={"Content-Encoding": "gzip"})
        self.assertTooLarge(resp)

    def test_other_content_encoding_is_415(self):
        for encoding in ("br", "deflate", "gzip, br"):
            resp = EMU.call("POST", "/v1/customers:batchUpsert", {"records": [customer()]},
                            idem=str(uuid.uuid4()), headers={"Content-Encoding": encoding})
            self.assertEqual(resp.status, 415, encoding)
            self.assertIn("code", resp.body["error"])

    def test_envelope_errors_are_not_stored(self):
        resp = EMU.call("POST", "/v1/customers:batchUpsert", raw=b"{oops", idem="env-1")
        self.assertError(resp, 400, "invalid_json")
        resp = EMU.upsert("customers", [customer()], idem="env-1")
        self.assertEqual(self.statuses(resp), ["created"])

    def test_unknown_path_and_method(self):
        self.assertError(EMU.call("GET", "/v1/products"), 404, "not_found")
        self.assertError(EMU.call("GET", "/v1/customers:batchUpsert"), 405,
                         "method_not_allowed")
        self.assertError(EMU.call("POST", "/v1/ping", body={}), 405, "method_not_allowed")

    def test_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", EMU.port, timeout=10)
        try:
            conn.request("GET", "/v1/ping", headers={"Authorization": "Bearer demo-key"})
            resp = conn.getresponse()
            resp.read()
            sock = conn.sock
            for i in range(3):
                body = json.dumps({"records": [customer(f"K-{i}")]})
                conn.request("POST", "/v1/customers:batchUpsert", body=body,
                             headers={"Authorization": "Bearer demo-key",
                                      "Idempotency-Key": f"ka-{i}"})
                resp = conn.getresponse()
                self.assertEqual(resp.status, 200)
                self.assertIsNotNone(resp.getheader("Content-Length"))
                resp.read()
            self.assertIs(conn.sock, sock)
        finally:
            conn.close()


class TestIdempotency(EmulatorTest):
    def test_replay_returns_first_response(self):
        records = [customer("C-1"), customer("C-2")]
        first = EMU.upsert("customers", records, idem="idem-1")
        self.assertEqual(self.statuses(first), ["created", "created"])
        self.assertNotIn("Idempotent-Replayed", first.headers)
        again = EMU.upsert("customers", records, idem="idem-1")
        self.assertEqual(again.status, 200)
        self.assertEqual(again.headers["Idempotent-Replayed"], "true")
        self.assertEqual(again.body, first.body)
        self.assertEqual(len(self.applied()), 2)
        self.assertEqual(EMU.admin("GET", "stats")["idempotent_replays"], 1)

    def test_different_body_is_422(self):
        EMU.upsert("customers", [customer("C-1")], idem="idem-2")
        resp = EMU.upsert("customers", [customer("C-2")], idem="idem-2")
        self.assertError(resp, 422, "idempotency_key_reused")
        resp = EMU.delete("customers", [customer("C-1")], idem="idem-2")
        self.assertError(resp, 422, "idempotency_key_reused")
        self.assertEqual(len(self.applied()), 1)

    def test_keys_are_scoped_per_api_key(self):
        EMU.upsert("customers", [customer("C-1")], idem="shared")
        resp = EMU.upsert("customers", [customer("C-1")], idem="shared", key="other-key")
        self.assertNotIn("Idempotent-Replayed", resp.headers)
        self.assertEqual(self.statuses(resp), ["unchanged"])

    def test_in_flight_is_409_and_other_body_is_422(self):
        # The latency sleep of the first request happens after its key is
        # reserved, so the two later requests find it in flight.
        EMU.admin("POST", "faults", {"latency_ms": 1500})
        responses = {}

        def send(name, ext):
            responses[name] = EMU.upsert("customers", [customer(ext)], idem="flight")

        first = threading.Thread(target=send, args=("first", "C-1"))
        first.start()
        time.sleep(0.4)
        later = [threading.Thread(target=send, args=("same", "C-1")),
                 threading.Thread(target=send, args=("other", "C-9"))]
        for thread in later:
            thread.start()
        for thread in [first] + later:
            thread.join()
        self.assertError(responses["same"], 409, "idempotency_key_in_use")
        self.assertGreaterEqual(int(responses["same"].headers["Retry-After"]), 1)
        self.assertError(responses["other"], 422, "idempotency_key_reused")
        self.assertEqual(self.statuses(responses["first"]), ["created"])
        self.assertEqual(len(self.applied()), 1)
        EMU.admin("POST", "faults", {})
        replay = EMU.upsert("customers", [customer("C-1")], idem="flight")
        self.assertEqual(replay.headers["Idempotent-Replayed"], "true")


class TestValidation(EmulatorTest):
    CUSTOMER_CASES = [
        ({"email": None}, "email", "missing_field"),
        ({"email": ""}, "email", "missing_field"),
        ({"external_id": ""}, "external_id", "missing_field"),
        ({"brand": None}, "brand", "missing_field"),
        ({"updated_at": None}, "updated_at", "missing_field"),
        ({"external_id": 5}, "external_id", "invalid_type"),
        ({"external_id": "x" * 129}, "external_id", "too_long"),
        ({"brand": "b" * 65}, "brand", "too_long"),
        ({"name": "\u00e7" * 257}, "name", "too_long"),
        ({"name": 7}, "name", "invalid_type"),
        ({"email": "no-at-sign"}, "email", "invalid_format"),
        ({"email": "a@localhost"}, "email", "invalid_format"),
        ({"email": "a..b@example.com"}, "email", "invalid_format"),
        ({"email": " a@example.com"}, "email", "invalid_format"),
        ({"phone": "11987654321"}, "phone", "invalid_format"),
        ({"phone": "+0511987654321"}, "phone", "invalid_format"),
        ({"phone": ""}, "phone", "invalid_format"),
        ({"document": "52998224724"}, "document", "invalid_format"),
        ({"document": "11111111111"}, "document", "invalid_format"),
        ({"document": "529.982.247-25"}, "document", "invalid_format"),
        ({"document": "11222333000182"}, "document", "invalid_format"),
        ({"document": "123456789012"}, "document", "invalid_format"),
        ({"tags": "vip"}, "tags", "invalid_type"),
        ({"tags": ["t"] * 51}, "tags", "out_of_range"),
        ({"tags": ["ok", 1]}, "tags[1]", "invalid_type"),
        ({"tags": ["x" * 65]}, "tags[0]", "too_long"),
        ({"attributes": []}, "attributes", "invalid_type"),
        ({"attributes": {"k": "\u00e9" * 8200}}, "attributes", "too_long"),
        ({"updated_at": "2024-05-01 10:00:00Z"}, "updated_at", "invalid_format"),
        ({"updated_at": "2024-05-01T10:00Z"}, "updated_at", "invalid_format"),
        ({"updated_at": "2024-05-01T10:00:00"}, "updated_at", "invalid_format"),
        ({"updated_at": "2024-02-30T10:00:00Z"}, "updated_at", "invalid_format"),
        ({"updated_at": "2024-05-01T24:00:00Z"}, "updated_at", "invalid_format"),
        ({"updated_at": 1714557600}, "updated_at", "invalid_type"),
        ({"created_at": "2024-05-01"}, "created_at", "invalid_format"),
    ]

    ORDER_CASES = [
        ({"total": 199.9}, "total", "invalid_type"),
        ({"total": "199.999"}, "total", "invalid_format"),
        ({"total": "1e3"}, "total", "invalid_format"),
        ({"total": "-0.01"}, "total", "out_of_range"),
        ({"total": None}, "total", "missing_field"),
        ({"status": "open"}, "status", "invalid_enum"),
        ({"status": "PAID"}, "status", "invalid_enum"),
        ({"currency": "brl"}, "currency", "invalid_format"),
        ({"currency": "BRLX"}, "currency", "invalid_format"),
        ({"items": []}, "items", "out_of_range"),
        ({"items": [{"sku": "S", "quantity": 1, "unit_price": "1"}] * 501},
         "items", "out_of_range"),
        ({"items": "SKU-1"}, "items", "invalid_type"),
        ({"items": None}, "items", "missing_field"),
        ({"items": [7]}, "items[0]", "invalid_type"),
        ({"items": [{"quantity": 1, "unit_price": "1.00"}]}, "items[0].sku", "missing_field"),
        ({"items": [{"sku": "S", "quantity": True, "unit_price": "1.00"}]},
         "items[0].quantity", "invalid_type"),
        ({"items": [{"sku": "S", "quantity": 1.5, "unit_price": "1.00"}]},
         "items[0].quantity", "invalid_type"),
        ({"items": [{"sku": "S", "quantity": 0, "unit_price": "1.00"}]},
         "items[0].quantity", "out_of_range"),
        ({"items": [{"sku": "S", "quantity": 1, "unit_price": 1}]},
         "items[0].unit_price", "invalid_type"),
        ({"items": [{"sku": "S", "quantity": 1, "unit_price": "-1"}]},
         "items[0].unit_price", "out_of_range"),
        ({"customer_external_id": ""}, "customer_external_id", "missing_field"),
        ({"placed_at": None}, "placed_at", "missing_field"),
        ({"brand": ""}, "brand", "missing_field"),
    ]

    def test_customer_rules(self):
        for change, field, code in self.CUSTOMER_CASES:
            with self.subTest(change=str(change)[:60]):
                resp = EMU.upsert("customers", [customer(**change)])
                self.assertEqual(self.only_error(resp), [(field, code)])
        self.assertEqual(self.applied(), [])

    def test_order_rules(self):
        EMU.upsert("customers", [customer("C-1")])
        for change, field, code in self.ORDER_CASES:
            with self.subTest(change=str(change)[:60]):
                resp = EMU.upsert("orders", [order(**change)])
                self.assertEqual(self.only_error(resp), [(field, code)])
        self.assertEqual(len(self.applied()), 1)

    def test_valid_edge_values_are_accepted(self):
        records = [
            customer("C-1", name="\u00e7" * 256, external_id="\u00e9" * 128),
            customer("C-2", document="52998224725", phone="+5511987654321"),
            customer("C-3", document="11222333000181", tags=["x" * 64] * 50),
            customer("C-4", attributes={"k": "x" * 16000}, created_at="2024-01-01t10:00:00z"),
            customer("C-5", updated_at="2024-05-01T10:00:00.123456789+05:30"),
        ]
        self.assertEqual(self.statuses(EMU.upsert("customers", records)), ["created"] * 5)
        resp = EMU.upsert("orders", [order(customer_id="C-2", brand="acme", total="0",
                                           items=[{"sku": "S", "quantity": 1,
                                                   "unit_price": "0.5"}] * 500)])
        self.assertEqual(self.statuses(resp), ["created"])

    def test_batch_mixes_results_in_input_order(self):
        records = [customer("C-1"), "not an object", customer("C-2", email="bad"),
                   customer("C-3", email=None, phone="123", updated_at="x")]
        resp = EMU.upsert("customers", records)
        self.assertEqual(self.statuses(resp), ["created", "rejected", "rejected", "rejected"])
        results = resp.body["results"]
        self.assertEqual([r["external_id"] for r in results], ["C-1", None, "C-2", "C-3"])
        self.assertEqual([r["brand"] for r in results], ["acme", None, "acme", "acme"])
        self.assertNotIn("errors", results[0])
        self.assertEqual(results[1]["errors"][0]["code"], "invalid_type")
        self.assertEqual({e["field"] for e in results[3]["errors"]},
                         {"email", "phone", "updated_at"})
        for error in results[3]["errors"]:
            self.assertEqual(set(error), {"field", "code", "message"})

    def test_stored_form(self):
        rec = customer("C-1", email="John.Doe@Example.COM", name=None, unknown="x",
                       tags=["a"], attributes={"nested": {"n": 1}})
        self.assertEqual(self.statuses(EMU.upsert("customers", [rec])), ["created"])
        got = EMU.call("GET", "/v1/customers/acme/C-1").body
        self.assertEqual(got, {"external_id": "C-1", "brand": "acme",
                               "email": "john.doe@example.com", "tags": ["a"],
                               "attributes": {"nested": {"n": 1}}, "updated_at": T0,
                               "version": 1})
        EMU.upsert("customers", [customer("C-1")])
        resp = EMU.upsert("orders", [order(customer_id="C-1", extra=1,
                                           items=[{"sku": "S", "quantity": 1,
                                                   "unit_price": "1.00", "x": 2}])])
        self.assertEqual(self.statuses(resp), ["created"])
        got = EMU.call("GET", "/v1/orders/acme/O-1").body
        self.assertNotIn("extra", got)
        self.assertEqual(got["items"], [{"sku": "S", "quantity": 1, "unit_price": "1.00"}])


class TestLastWriteWins(EmulatorTest):
    def version(self, ext="C-1", obj="customers"):
        return EMU.call("GET", f"/v1/{obj}/acme/{ext}").body["version"]

    def test_stale_unchanged_updated(self):
        self.assertEqual(self.statuses(EMU.upsert("customers", [customer(name="A")])),
                         ["created"])
        self.assertEqual(self.version(), 1)
        steps = [
            (customer(name="B", updated_at=T_OLD), "stale", 1),
            (customer(name="A", updated_at=T0_SAME), "unchanged", 1),
            (customer(name="A", updated_at="2024-05-01T10:00:00.000Z"), "unchanged", 1),
            (customer(name="B", updated_at=T0), "updated", 2),
            (customer(name="C", updated_at=T_NEW), "updated", 3),
            (customer(name="C", updated_at=T_NEW), "unchanged", 3),
        ]
        for rec, status, version in steps:
            with self.subTest(rec=rec):
                self.assertEqual(self.statuses(EMU.upsert("customers", [rec])), [status])
                self.assertEqual(self.version(), version)
        got = EMU.call("GET", "/v1/customers/acme/C-1").body
        self.assertEqual(got["name"], "C")
        statuses = [a["status"] for a in self.applied()]
        self.assertEqual(statuses, ["created", "updated", "updated"])

    def test_unchanged_compares_values_not_spelling(self):
        EMU.upsert("customers", [customer("C-1")])
        EMU.upsert("orders", [order(total="10.50", attributes={"a": 1})])
        same = order(total="10.5", placed_at="2024-05-01T10:00:00.000+00:00")
        self.assertEqual(self.statuses(EMU.upsert("orders", [same])), ["unchanged"])
        email_case = customer("C-1", email="C-1@EXAMPLE.com")
        self.assertEqual(self.statuses(EMU.upsert("customers", [email_case])), ["unchanged"])

    def test_duplicates_in_one_batch_apply_in_order(self):
        resp = EMU.upsert("customers", [customer(name="A"), customer(name="A"),
                                        customer(name="B", updated_at=T_NEW),
                                        customer(name="Z", updated_at=T_OLD)])
        self.assertEqual(self.statuses(resp), ["created", "unchanged", "updated", "stale"])
        self.assertEqual(self.version(), 2)


class TestDeletes(EmulatorTest):
    def delete_one(self, when, ext="C-1", obj="customers"):
        return self.statuses(EMU.delete(obj, [{"external_id": ext, "brand": "acme",
                                               "deleted_at": when}]))

    def test_delete_rules(self):
        self.assertEqual(self.delete_one(T0), ["not_found"])
        EMU.upsert("customers", [customer()])
        self.assertEqual(self.delete_one(T_OLD), ["stale"])
        self.assertEqual(self.delete_one(T0_SAME), ["deleted"])  # a tie deletes
        self.assertEqual(self.delete_one(T_NEW), ["not_found"])  # already deleted
        self.assertError(EMU.call("GET", "/v1/customers/acme/C-1"), 404, "not_found")
        dump = EMU.admin("GET", "dump")["customers"]
        self.assertEqual(len(dump), 1)
        self.assertTrue(dump[0]["deleted"])
        self.assertEqual(dump[0]["version"], 2)

    def test_upsert_after_delete(self):
        EMU.upsert("customers", [customer()])
        self.delete_one(T_NEW)
        self.assertEqual(self.statuses(EMU.upsert("customers", [customer(updated_at=T0)])),
                         ["stale"])
        self.assertEqual(self.statuses(EMU.upsert("customers",
                                                  [customer(updated_at=T_NEW)])),
                         ["stale"])
        later = "2024-05-02T00:00:00Z"
        self.assertEqual(self.statuses(EMU.upsert("customers", [customer(updated_at=later)])),
                         ["created"])
        got = EMU.call("GET", "/v1/customers/acme/C-1").body
        self.assertEqual(got["version"], 3)
        self.assertEqual([a["status"] for a in self.applied()],
                         ["created", "deleted", "created"])

    def test_rejected_deletes(self):
        resp = EMU.delete("customers", [{"external_id": "C-1", "brand": "acme"},
                                        {"external_id": "C-2", "brand": "acme",
                                         "deleted_at": "yesterday"}, 3])
        self.assertEqual(self.statuses(resp), ["rejected"] * 3)
        self.assertEqual(resp.body["results"][0]["errors"][0]["code"], "missing_field")
        self.assertEqual(resp.body["results"][1]["errors"][0]["code"], "invalid_format")

    def test_orders_need_a_live_customer(self):
        resp = EMU.upsert("orders", [order()])
        self.assertEqual(self.only_error(resp), [("customer_external_id", "unknown_customer")])
        EMU.upsert("customers", [customer("C-1")])
        resp = EMU.upsert("orders", [order("O-1"), order("O-2", brand="other")])
        self.assertEqual(self.statuses(resp), ["created", "rejected"])
        self.assertEqual(resp.body["results"][1]["errors"][0]["code"], "unknown_customer")
        self.delete_one(T_NEW)
        resp = EMU.upsert("orders", [order("O-1", updated_at="2024-06-01T00:00:00Z")])
        self.assertEqual(self.only_error(resp), [("customer_external_id", "unknown_customer")])
        self.assertEqual(self.delete_one(T_NEW, "O-1", "orders"), ["deleted"])


class TestReads(EmulatorTest):
    def test_get_record(self):
        rec = customer("A/B 1", brand="br x", email="ab@example.com")
        resp = EMU.upsert("customers", [rec])
        self.assertEqual(self.statuses(resp), ["created"])
        resp = EMU.call("GET", "/v1/customers/br%20x/A%2FB%201")
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(resp.body["external_id"], "A/B 1")
        self.assertEqual(resp.body["version"], 1)
        self.assertError(EMU.call("GET", "/v1/customers/acme/missing"), 404, "not_found")

    def test_list_with_cursor(self):
        records = [customer(f"C-{i}", updated_at=f"2024-05-0{1 + i % 3}T10:00:00Z")
                   for i in range(7)]
        records.append(customer("X-1", brand="other"))
        EMU.upsert("customers", records)
        expected = sorted(((r["updated_at"], r["external_id"]) for r in records[:7]))
        seen, cursor, pages = [], None, 0
        while True:
            path = "/v1/customers?brand=acme&limit=3" + (f"&cursor={cursor}" if cursor else "")
            body = EMU.call("GET", path).body
            seen += [(r["updated_at"], r["external_id"]) for r in body["data"]]
            self.assertTrue(all("version" in r for r in body["data"]))
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        self.assertEqual(seen, expected)
        self.assertEqual(pages, 3)

        body = EMU.call("GET", "/v1/customers?updated_since=2024-05-03T07:00:00-03:00").body
        self.assertEqual(sorted(r["external_id"] for r in body["data"]), ["C-2", "C-5"])
        self.assertIsNone(body["next_cursor"])
        self.assertEqual(len(EMU.call("GET", "/v1/customers").body["data"]), 8)

    def test_list_parameter_errors(self):
        for query in ("limit=0", "limit=1001", "limit=x", "updated_since=2024-05-01"):
            self.assertError(EMU.call("GET", "/v1/customers?" + query), 400, "invalid_request")
        self.assertError(EMU.call("GET", "/v1/customers?cursor=%%%"), 400, "invalid_cursor")


class TestFaults(EmulatorTest):
    def set_faults(self, **spec):
        resp = EMU.call("POST", "/_admin/faults", spec, key=None)
        self.assertEqual(resp.status, 200, resp.body)

    def assertNotApplied(self):
        self.assertEqual(self.applied(), [])
        self.assertEqual(EMU.admin("GET", "dump")["customers"], [])

    def retry_is_fresh(self, idem):
        self.set_faults()
        resp = EMU.upsert("customers", [customer()], idem=idem)
        self.assertEqual(self.statuses(resp), ["created"])
        self.assertNotIn("Idempotent-Replayed", resp.headers)

    def test_429(self):
        self.set_faults(rate_429=1.0, retry_after=2)
        resp = EMU.upsert("customers", [customer()], idem="f429")
        self.assertError(resp, 429, "rate_limited")
        self.assertEqual(resp.headers["Retry-After"], "2")
        self.assertNotApplied()
        self.assertEqual(EMU.call("GET", "/v1/ping").status, 200)  # batches only
        self.retry_is_fresh("f429")

    def test_500_and_503(self):
        for kind, code in (("rate_500", "internal_error"), ("rate_503", "service_unavailable")):
            with self.subTest(kind=kind):
                EMU.admin("POST", "reset")
                self.set_faults(**{kind: 1.0})
                resp = EMU.upsert("customers", [customer()], idem="f5xx")
                self.assertError(resp, int(kind[-3:]), code)
                if kind == "rate_503":
                    self.assertGreaterEqual(int(resp.headers["Retry-After"]), 1)
                self.assertNotApplied()
                self.retry_is_fresh("f5xx")

    def test_reset(self):
        self.set_faults(rate_reset=1.0)
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            EMU.upsert("customers", [customer()], idem="freset")
        self.assertNotApplied()
        self.retry_is_fresh("freset")

    def test_commit_then_drop(self):
        self.set_faults(rate_commit_drop=1.0)
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            EMU.upsert("customers", [customer()], idem="fdrop")
        self.assertEqual(len(self.applied()), 1)
        self.set_faults()
        resp = EMU.upsert("customers", [customer()], idem="fdrop")
        self.assertEqual(resp.headers["Idempotent-Replayed"], "true")
        self.assertEqual(self.statuses(resp), ["created"])
        self.assertEqual(len(self.applied()), 1)

    def test_latency(self):
        self.set_faults(latency_ms=300, latency_jitter_ms=50)
        started = time.monotonic()
        self.assertEqual(EMU.call("GET", "/v1/ping").status, 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.3)

    def test_one_draw_selects_one_fault_and_stats_count_it(self):
        self.set_faults(seed=3, rate_500=0.5, rate_503=0.5)
        codes = [EMU.upsert("customers", [customer()]).status for _ in range(20)]
        self.assertTrue(set(codes) <= {500, 503}, codes)
        stats = EMU.admin("GET", "stats")
        self.assertEqual(stats["faults_injected"].get("500", 0)
                         + stats["faults_injected"].get("503", 0), 20)
        self.assertEqual(stats["requests_by_status"].get("500", 0)
                         + stats["requests_by_status"].get("503", 0), 20)
        self.assertNotApplied()

    def test_fault_config_is_validated(self):
        for bad in ({"rate_500": 2}, {"rate_500": 0.6, "rate_503": 0.6}, {"nope": 1},
                    {"retry_after": 0}):
            resp = EMU.call("POST", "/_admin/faults", bad, key=None)
            self.assertEqual(resp.status, 400, bad)


class TestAdmin(EmulatorTest):
    def test_health_stats_applied_journal(self):
        self.assertEqual(EMU.call("GET", "/_admin/health", key=None).status, 200)
        EMU.upsert("customers", [customer("C-1"), customer("C-2", email="bad")])
        EMU.upsert("customers", [customer("C-1", updated_at=T_NEW, name="N")])
        EMU.delete("customers", [{"external_id": "C-1", "brand": "acme",
                                  "deleted_at": T_NEW}])
        applied = self.applied()
        self.assertEqual([(a["status"], a["seq"]) for a in applied],
                         [("created", 1), ("updated", 2), ("deleted", 3)])
        self.assertEqual(set(applied[0]), {"object", "brand", "external_id", "updated_at",
                                           "status", "batch_id", "seq"})
        with open(EMU.journal, encoding="utf-8") as f:
            self.assertEqual([json.loads(line) for line in f], applied)
        stats = EMU.admin("GET", "stats")
        self.assertEqual(stats["batches_applied"], 3)
        self.assertEqual(stats["records_by_status"],
                         {"created": 1, "rejected": 1, "updated": 1, "deleted": 1})
        self.assertEqual(stats["requests_by_status"], {"200": 3})
        EMU.admin("POST", "reset")
        self.assertEqual(EMU.admin("GET", "dump"), {"customers": [], "orders": []})
        self.assertEqual(self.applied(), [])
        self.assertEqual(os.path.getsize(EMU.journal), 0)


class TestProcess(unittest.TestCase):
    def test_rate_limit_and_quiet_stdout(self):
        emu = Emulator("--rate", "1", "--burst", "2")
        try:
            with open(emu.port_file, encoding="ascii") as f:
                self.assertEqual(f.read().strip(), str(emu.port))
            remaining = []
            for _ in range(2):
                resp = emu.call("GET", "/v1/ping")
                self.assertEqual(resp.status, 200)
                remaining.append(resp.headers["X-RateLimit-Remaining"])
            self.assertEqual(remaining, ["1", "0"])
            resp = emu.call("GET", "/v1/ping")
            self.assertEqual(resp.status, 429)
            self.assertEqual(resp.body["error"]["code"], "rate_limited")
            self.assertGreaterEqual(int(resp.headers["Retry-After"]), 1)
            self.assertEqual(resp.headers["X-RateLimit-Remaining"], "0")
        finally:
            out, err = emu.stop()
        self.assertEqual(out, b"")
        self.assertEqual(len(err.decode().splitlines()), 1, err)

    def test_rejects_non_loopback_host(self):
        proc = subprocess.run([sys.executable, EMULATOR, "--host", "0.0.0.0"],
                              capture_output=True, timeout=30)
        self.assertNotEqual(proc.returncode, 0)


if __name__ == "__main__":
    unittest.main()
