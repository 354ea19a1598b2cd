"""Self-test of the Shops import API emulator.

Starts ``shops_emulator.py`` as a subprocess on a free loopback port and
checks it against the contract in ``docs/api/shops.md`` over real HTTP.

    python3 -m unittest integration/emulators/test_shops_emulator.py -v
"""

import base64
import gzip
import http.client
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "shops_emulator.py")

CLIENT = ("demo-client", "demo-secret")
OTHER = ("other-client", "other-secret")
T0 = "2024-01-01T09:00:00Z"
T1 = "2024-01-01T10:00:00Z"
T2 = "2024-01-01T11:00:00Z"
T3 = "2024-01-01T12:00:00Z"

_keys = itertools.count(1)


def new_key():
    return "key-%d-%d" % (os.getpid(), next(_keys))


def product(sku, **fields):
    item = {"sku": sku, "brand": "Acme", "title": "Product %s" % sku, "price": "10.00",
            "currency": "BRL", "updated_at": T1}
    item.update(fields)
    return item


def stock(sku, quantity, **fields):
    item = {"sku": sku, "quantity": quantity, "updated_at": T1}
    item.update(fields)
    return item


class Emulator:
    """The emulator as a subprocess, bound to a free port."""

    def __init__(self, *args):
        self.dir = tempfile.TemporaryDirectory()
        self.port_file = os.path.join(self.dir.name, "port")
        self.journal = os.path.join(self.dir.name, "journal.jsonl")
        self.stderr_path = os.path.join(self.dir.name, "stderr")
        cmd = [sys.executable, EMULATOR, "--host", "127.0.0.1", "--port", "0",
               "--port-file", self.port_file, "--journal", self.journal] + list(args)
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr)
        deadline = time.time() + 10
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("emulator did not start")
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stdout = self.proc.stdout.read()
        self.proc.stdout.close()
        self._stderr.close()
        with open(self.stderr_path, "rb") as f:
            self.stderr = f.read()
        self.dir.cleanup()


class Answer:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.body = json.loads(raw) if raw else None

    def header(self, name):
        return self.headers.get(name)

    @property
    def code(self):
        error = (self.body or {}).get("error")
        return error.get("code") if isinstance(error, dict) else error


class Client:
    """A keep-alive HTTP client for one emulator."""

    def __init__(self, port):
        self.port = port
        self.conn = None
        self.token = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def raw(self, method, path, body=None, headers=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            resp = self.conn.getresponse()
            raw = resp.read()
        except Exception:
            self.close()
            raise
        if resp.will_close:
            self.close()
        return Answer(resp.status, resp.headers, raw)

    def call(self, method, path, body=None, headers=None, token=True):
        hdrs = {}
        if token and self.token:
            hdrs["Authorization"] = "Bearer " + self.token
        hdrs.update(headers or {})
        return self.raw(method, path, body, hdrs)

    def login(self, client=CLIENT):
        answer = self.raw("POST", "/oauth/token",
                          "grant_type=client_credentials&client_id=%s&client_secret=%s" % client,
                          {"Content-Type": "application/x-www-form-urlencoded"})
        assert answer.status == 200, answer.raw
        self.token = answer.body["access_token"]
        return self.token

    # -- import helpers --

    def create(self, mode="merge", objects=("products", "inventory"), label="test",
               channel="store-br", key=None):
        return self.call("POST", "/v1/imports",
                         {"channel": channel, "mode": mode, "objects": list(objects),
                          "label": label},
                         {"Idempotency-Key": key or new_key()})

    def create_id(self, **kwargs):
        answer = self.create(**kwargs)
        assert answer.status == 201, answer.raw
        return answer.body["import_id"]

    def put(self, import_id, n, obj, items, headers=None):
        return self.call("PUT", "/v1/imports/%s/parts/%s" % (import_id, n),
                         {"object": obj, "items": items}, headers)

    def commit(self, import_id, parts, checkpoint=None):
        body = {"parts": parts}
        if checkpoint is not None:
            body["checkpoint"] = checkpoint
        return self.call("POST", "/v1/imports/%s/commit" % import_id, body)

    def run(self, parts, mode="merge", objects=("products", "inventory")):
        """Create, upload [(object, items)...] as parts 1..n, commit."""
        import_id = self.create_id(mode=mode, objects=objects)
        for n, (obj, items) in enumerate(parts, 1):
            answer = self.put(import_id, n, obj, items)
            assert answer.status == 200 and not answer.body["rejected"], answer.raw
        answer = self.commit(import_id, len(parts))
        assert answer.status == 200, answer.raw
        return answer.body

    def product(self, sku, channel="store-br"):
        return self.call("GET", "/v1/channels/%s/products/%s" % (channel, sku))

    def stock(self, sku, location=None, channel="store-br"):
        path = "/v1/channels/%s/inventory/%s" % (channel, sku)
        if location is not None:
            path += "?location=" + location
        return self.call("GET", path)

    def faults(self, **settings):
        answer = self.raw("POST", "/_admin/faults", settings)
        assert answer.status == 200, answer.raw
        return answer.body


class EmulatorTestCase(unittest.TestCase):
    ARGS = ("--rate", "0", "--seed", "7",
            "--client", "%s:%s" % CLIENT, "--client", "%s:%s" % OTHER,
            "--channel", "store-br:Loja BR:BRL", "--channel", "store-ar:Tienda AR:ARS")

    @classmethod
    def setUpClass(cls):
        cls.emulator = Emulator(*cls.ARGS)

    @classmethod
    def tearDownClass(cls):
        cls.emulator.stop()

    def setUp(self):
        self.api = Client(self.emulator.port)
        self.assertEqual(self.api.raw("POST", "/_admin/reset").status, 200)
        self.api.login()

    def tearDown(self):
        self.api.close()

    def assertError(self, answer, status, code):
        self.assertEqual(answer.status, status, answer.raw)
        self.assertEqual(answer.code, code, answer.raw)
        if isinstance(answer.body.get("error"), dict):
            self.assertIsInstance(answer.body["error"].get("message"), str)


class TokenTest(EmulatorTestCase):
    def test_form_body(self):
        answer = self.api.raw("POST", "/oauth/token",
                              "grant_type=client_credentials&client_id=demo-client"
                              "&client_secret=demo-secret",
                              {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.body["token_type"], "Bearer")
        self.assertEqual(answer.body["expires_in"], 3600)
        self.assertTrue(answer.body["access_token"])
        self.assertEqual(answer.header("Cache-Control"), "no-store")

    def test_http_basic(self):
        basic = base64.b64encode(b"demo-client:demo-secret").decode()
        answer = self.api.raw("POST", "/oauth/token", "grant_type=client_credentials",
                              {"Authorization": "Basic " + basic,
                               "Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(answer.status, 200, answer.raw)
        self.api.token = answer.body["access_token"]
        self.assertEqual(self.api.call("GET", "/v1/channels/store-br").status, 200)

    def test_invalid_client(self):
        answer = self.api.raw("POST", "/oauth/token",
                              "grant_type=client_credentials&client_id=demo-client"
                              "&client_secret=wrong")
        self.assertEqual(answer.status, 401)
        self.assertEqual(answer.body["error"], "invalid_client")
        basic = base64.b64encode(b"nobody:demo-secret").decode()
        answer = self.api.raw("POST", "/oauth/token", "grant_type=client_credentials",
                              {"Authorization": "Basic " + basic})
        self.assertEqual(answer.status, 401)
        self.assertEqual(answer.body["error"], "invalid_client")
        self.assertIn("Basic", answer.header("WWW-Authenticate"))

    def test_bad_grant_and_double_credentials(self):
        answer = self.api.raw("POST", "/oauth/token",
                              "grant_type=password&client_id=demo-client"
                              "&client_secret=demo-secret")
        self.assertEqual((answer.status, answer.body["error"]), (400, "unsupported_grant_type"))
        basic = base64.b64encode(b"demo-client:demo-secret").decode()
        answer = self.api.raw("POST", "/oauth/token",
                              "grant_type=client_credentials&client_id=demo-client"
                              "&client_secret=demo-secret",
                              {"Authorization": "Basic " + basic})
        self.assertEqual((answer.status, answer.body["error"]), (400, "invalid_request"))

    def test_unauthorized_vs_token_expired(self):
        answer = self.api.call("GET", "/v1/channels/store-br", token=False)
        self.assertError(answer, 401, "unauthorized")
        answer = self.api.call("GET", "/v1/channels/store-br", token=False,
                               headers={"Authorization": "Basic Zm9vOmJhcg=="})
        self.assertError(answer, 401, "unauthorized")
        answer = self.api.call("GET", "/v1/channels/store-br", token=False,
                               headers={"Authorization": "Bearer not-a-token"})
        self.assertError(answer, 401, "token_expired")

    def test_reset_revokes_tokens(self):
        self.api.raw("POST", "/_admin/reset")
        self.assertError(self.api.call("GET", "/v1/channels/store-br"), 401, "token_expired")


class ChannelTest(EmulatorTestCase):
    def test_get_channel(self):
        answer = self.api.call("GET", "/v1/channels/store-br")
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.body, {"channel": "store-br", "name": "Loja BR",
                                       "currency": "BRL"})
        answer = self.api.call("GET", "/v1/channels/store-ar")
        self.assertEqual(answer.body["currency"], "ARS")
        self.assertError(self.api.call("GET", "/v1/channels/nope"), 404, "not_found")

    def test_keep_alive(self):
        self.api.call("GET", "/v1/channels/store-br")
        sock = self.api.conn.sock
        for _ in range(5):
            self.assertEqual(self.api.call("GET", "/v1/channels/store-br").status, 200)
        self.assertIs(self.api.conn.sock, sock)

    def test_unknown_route_and_method(self):
        self.assertError(self.api.call("GET", "/v1/nothing"), 404, "not_found")
        answer = self.api.call("PATCH", "/v1/imports")
        self.assertError(answer, 405, "method_not_allowed")
        self.assertIn("POST", answer.header("Allow"))

    def test_product_and_inventory_reads(self):
        self.api.run([("products", [product("B"), product("A"), product("C")]),
                      ("inventory", [stock("A", 1), stock("A", 2, location="wh-2")])])
        self.assertEqual(self.api.product("A").body["sku"], "A")
        self.assertError(self.api.product("Z"), 404, "not_found")
        self.assertEqual(self.api.stock("A").body["quantity"], 1)
        self.assertEqual(self.api.stock("A", "wh-2").body["quantity"], 2)
        self.assertError(self.api.stock("A", "nowhere"), 404, "not_found")
        page = self.api.call("GET", "/v1/channels/store-br/products?limit=2").body
        self.assertEqual([p["sku"] for p in page["data"]], ["A", "B"])
        page = self.api.call("GET", "/v1/channels/store-br/products?limit=2&cursor="
                             + page["next_cursor"]).body
        self.assertEqual([p["sku"] for p in page["data"]], ["C"])
        self.assertIsNone(page["next_cursor"])


class ImportCreateTest(EmulatorTestCase):
    BODY = {"channel": "store-br", "mode": "merge", "objects": ["products"], "label": "L"}

    def test_idempotency(self):
        self.assertError(self.api.call("POST", "/v1/imports", self.BODY), 400,
                         "idempotency_key_missing")
        key = new_key()
        first = self.api.call("POST", "/v1/imports", self.BODY, {"Idempotency-Key": key})
        self.assertEqual(first.status, 201, first.raw)
        self.assertTrue(first.body["import_id"].startswith("imp_"))
        self.assertEqual(first.body["status"], "open")
        self.assertIn("T", first.body["expires_at"])
        self.assertIsNone(first.header("Idempotent-Replayed"))

        again = self.api.call("POST", "/v1/imports", self.BODY, {"Idempotency-Key": key})
        self.assertEqual(again.status, 200)
        self.assertEqual(again.header("Idempotent-Replayed"), "true")
        self.assertEqual(again.body["import_id"], first.body["import_id"])

        import_id = first.body["import_id"]
        self.assertEqual(self.api.call("DELETE", "/v1/imports/" + import_id).status, 200)
        again = self.api.call("POST", "/v1/imports", self.BODY, {"Idempotency-Key": key})
        self.assertEqual((again.status, again.body["status"]), (200, "aborted"))

        other = dict(self.BODY, label="different")
        self.assertError(self.api.call("POST", "/v1/imports", other, {"Idempotency-Key": key}),
                         422, "idempotency_key_reused")

    def test_body_validation(self):
        for body in (dict(self.BODY, mode="upsert"), dict(self.BODY, objects=[]),
                     dict(self.BODY, objects=["orders"]), dict(self.BODY, label="x" * 257),
                     {"mode": "merge", "objects": ["products"]}):
            answer = self.api.call("POST", "/v1/imports", body, {"Idempotency-Key": new_key()})
            self.assertError(answer, 400, "invalid_request")
        answer = self.api.call("POST", "/v1/imports", dict(self.BODY, channel="nope"),
                               {"Idempotency-Key": new_key()})
        self.assertError(answer, 404, "not_found")
        answer = self.api.call("POST", "/v1/imports", "{not json",
                               {"Idempotency-Key": new_key()})
        self.assertError(answer, 400, "invalid_json")


class PartTest(EmulatorTestCase):
    def test_product_validation(self):
        import_id = self.api.create_id()
        cases = [
            (product("OK-1"), None),
            (product("OK-2", title="é" * 256, description="é" * 32768, price="0",
                     compare_at_price="0", attributes={"size": "M", "x": 1},
                     images=["https://cdn.example.com/a.jpg"] * 20, active=False,
                     parent_sku="OK-1", updated_at="2024-01-01T10:00:00.123456789-03:00"),
             None),
            ({k: v for k, v in product("X").items() if k != "sku"}, ("sku", "missing_field")),
            (product("a b"), ("sku", "invalid_format")),
            (product("S" * 65), ("sku", "too_long")),
            (product(123), ("sku", "invalid_type")),
            (product("P1", parent_sku="bad parent"), ("parent_sku", "invalid_format")),
            ({k: v for k, v in product("P2").items() if k != "brand"}, ("brand", "missing_field")),
            (product("P3", title=""), ("title", "missing_field")),
            (product("P4", title="t" * 257), ("title", "too_long")),
            (product("P5", description="é" * 32769), ("description", "too_long")),
            (product("P6", price=10), ("price", "invalid_type")),
            (product("P7", price="10.123"), ("price", "invalid_format")),
            (product("P8", price="-1.00"), ("price", "out_of_range")),
            (product("P9", price="1e3"), ("price", "invalid_format")),
            (product("P10", compare_at_price="9.99"), ("compare_at_price", "out_of_range")),
            (product("P11", currency="brl"), ("currency", "invalid_format")),
            (product("P12", attributes=["size"]), ("attributes", "invalid_type")),
            (product("P13", images=["https://a.example/x.jpg"] * 21), ("images", "out_of_range")),
            (product("P14", images=["http://a.example/x.jpg"]), ("images[0]", "invalid_format")),
            (product("P15", active="yes"), ("active", "invalid_type")),
            (product("P16", updated_at="2024-01-01 10:00:00Z"), ("updated_at", "invalid_format")),
            (product("P17", updated_at="2024-01-01T10:00Z"), ("updated_at", "invalid_format")),
            (product("P18", updated_at="2024-02-30T10:00:00Z"), ("updated_at", "invalid_format")),
            (product("P19", updated_at="2024-01-01T10:00:00"), ("updated_at", "invalid_format")),
            ({k: v for k, v in product("P20").items() if k != "updated_at"},
             ("updated_at", "missing_field")),
            ("not an object", ("item", "invalid_type")),
        ]
        answer = self.api.put(import_id, 1, "products", [c[0] for c in cases])
        self.assertEqual(answer.status, 200, answer.raw)
        self.assertEqual(answer.body["part"], 1)
        self.assertEqual(answer.body["accepted"], 2)
        rejected = {r["index"]: r for r in answer.body["rejected"]}
        expected = {i: c[1] for i, c in enumerate(cases) if c[1] is not None}
        self.assertEqual(sorted(rejected), sorted(expected))  # 0-based indexes
        for index, (field, code) in expected.items():
            errors = [(e["field"], e["code"]) for e in rejected[index]["errors"]]
            self.assertIn((field, code), errors, "item %d: %s" % (index, errors))
        self.assertEqual(rejected[3]["sku"], "a b")
        self.assertIsNone(rejected[5]["sku"])

    def test_inventory_validation(self):
        import_id = self.api.create_id()
        cases = [
            (stock("A", 0), None),
            (stock("A", 10 ** 9, location="x" * 64), None),
            (stock("A", True), ("quantity", "invalid_type")),
            (stock("A", 1.5), ("quantity", "invalid_type")),
            (stock("A", "5"), ("quantity", "invalid_type")),
            (stock("A", -1), ("quantity", "out_of_range")),
            (stock("A", 10 ** 9 + 1), ("quantity", "out_of_range")),
            (stock("A", 1, location=""), ("location", "invalid_format")),
            (stock("A", 1, location="x" * 65), ("location", "too_long")),
            (stock("A", 1, location=12), ("location", "invalid_type")),
            ({"quantity": 1, "updated_at": T1}, ("sku", "missing_field")),
            ({"sku": "A", "updated_at": T1}, ("quantity", "missing_field")),
            (stock("A", 1, updated_at="yesterday"), ("updated_at", "invalid_format")),
        ]
        answer = self.api.put(import_id, 1, "inventory", [c[0] for c in cases])
        self.assertEqual(answer.status, 200, answer.raw)
        self.assertEqual(answer.body["accepted"], 2)
        rejected = {r["index"]: r for r in answer.body["rejected"]}
        expected = {i: c[1] for i, c in enumerate(cases) if c[1] is not None}
        self.assertEqual(sorted(rejected), sorted(expected))
        for index, (field, code) in expected.items():
            errors = [(e["field"], e["code"]) for e in rejected[index]["errors"]]
            self.assertIn((field, code), errors, "item %d: %s" % (index, errors))

    def test_envelope_errors(self):
        import_id = self.api.create_id(objects=["products"])
        self.assertError(self.api.put(import_id, 1, "products", []), 400, "invalid_request")
        self.assertError(self.api.put(import_id, 1, "inventory", [stock("A", 1)]), 400,
                         "invalid_request")
        self.assertError(self.api.put(import_id, 1, "orders", [product("A")]), 400,
                         "invalid_request")
        answer = self.api.call("PUT", "/v1/imports/%s/parts/1" % import_id,
                               {"object": "products", "items": {"sku": "A"}})
        self.assertError(answer, 400, "invalid_request")
        for n in (0, 10001, "x"):
            self.assertError(self.api.put(import_id, n, "products", [product("A")]), 400,
                             "invalid_request")
        self.assertEqual(self.api.put(import_id, 10000, "products", [product("A")]).status, 200)

    def test_part_too_large(self):
        import_id = self.api.create_id(objects=["products"])
        answer = self.api.put(import_id, 1, "products",
                              [product("S%d" % i) for i in range(1001)])
        self.assertError(answer, 413, "part_too_large")
        self.assertEqual(answer.body["error"]["max_items"], 1000)
        big = json.dumps({"object": "products", "items": [product("A")],
                          "pad": "x" * (8 * 1024 * 1024)})
        answer = self.api.call("PUT", "/v1/imports/%s/parts/1" % import_id, big)
        self.assertError(answer, 413, "part_too_large")
        gz = gzip.compress(big.encode())
        answer = self.api.call("PUT", "/v1/imports/%s/parts/1" % import_id, gz,
                               {"Content-Encoding": "gzip"})
        self.assertError(answer, 413, "part_too_large")
        self.assertEqual(self.api.call("GET", "/v1/imports/" + import_id).body["parts"], [])

    def test_gzip_and_encodings(self):
        import_id = self.api.create_id(objects=["products"])
        body = gzip.compress(json.dumps({"object": "products",
                                         "items": [product("G1")]}).encode())
        path = "/v1/imports/%s/parts/1" % import_id
        answer = self.api.call("PUT", path, body, {"Content-Encoding": "gzip"})
        self.assertEqual((answer.status, answer.body["accepted"]), (200, 1), answer.raw)
        answer = self.api.call("PUT", path, body, {"Content-Encoding": "br"})
        self.assertError(answer, 415, "unsupported_encoding")
        answer = self.api.call("PUT", path, b"not gzip", {"Content-Encoding": "gzip"})
        self.assertError(answer, 400, "invalid_encoding")

    def test_put_replaces_part(self):
        import_id = self.api.create_id(objects=["products"])
        self.api.put(import_id, 1, "products", [product("A"), product("B")])
        self.api.put(import_id, 1, "products", [product("C")])
        body = self.api.commit(import_id, 1).body
        self.assertEqual(body["applied"]["products"], 1)
        self.assertError(self.api.product("A"), 404, "not_found")
        self.assertEqual(self.api.product("C").status, 200)


class CommitTest(EmulatorTestCase):
    def test_parts_missing_and_unexpected(self):
        import_id = self.api.create_id(objects=["products"])
        self.api.put(import_id, 1, "products", [product("A")])
        self.api.put(import_id, 3, "products", [product("B")])
        answer = self.api.commit(import_id, 3)
        self.assertError(answer, 409, "parts_missing")
        self.assertEqual(answer.body["error"]["missing"], [2])
        self.assertEqual(answer.body["missing"], [2])
        answer = self.api.commit(import_id, 1)
        self.assertError(answer, 409, "parts_unexpected")
        self.assertEqual(answer.body["error"]["unexpected"], [3])
        answer = self.api.commit(import_id, 0)
        self.assertError(answer, 409, "parts_unexpected")
        self.assertError(self.api.call("POST", "/v1/imports/%s/commit" % import_id, {}),
                         400, "invalid_request")
        self.assertEqual(self.api.call("GET", "/v1/imports/" + import_id).body["status"], "open")

    def test_zero_parts(self):
        import_id = self.api.create_id()
        answer = self.api.commit(import_id, 0)
        self.assertEqual(answer.status, 200, answer.raw)
        self.assertEqual(answer.body["applied"], {"products": 0, "inventory": 0})

    def test_atomic_commit_and_replay(self):
        import_id = self.api.create_id()
        self.api.put(import_id, 1, "products", [product("A"), product("B")])
        self.api.put(import_id, 2, "inventory", [stock("A", 4)])
        self.assertError(self.api.product("A"), 404, "not_found")
        self.assertEqual(self.api.raw("GET", "/_admin/dump").body["products"], [])
        first = self.api.commit(import_id, 2, checkpoint="cursor=42")
        self.assertEqual(first.status, 200, first.raw)
        self.assertEqual(first.body["status"], "committed")
        self.assertEqual(first.body["applied"], {"products": 2, "inventory": 1})
        self.assertEqual(first.body["unchanged"], {"products": 0, "inventory": 0})
        self.assertEqual(first.body["deactivated"], {"products": 0, "inventory": 0})
        self.assertEqual(first.body["rejected"], [])
        self.assertIsNone(first.header("Idempotent-Replayed"))
        self.assertEqual(self.api.stock("A").body["quantity"], 4)

        again = self.api.commit(import_id, 2, checkpoint="other")
        self.assertEqual(again.status, 200)
        self.assertEqual(again.header("Idempotent-Replayed"), "true")
        self.assertEqual(again.raw, first.raw)
        applied = self.api.raw("GET", "/_admin/applied").body
        self.assertEqual(len(applied), 3)

        view = self.api.call("GET", "/v1/imports/" + import_id).body
        self.assertEqual(view["status"], "committed")
        self.assertEqual(view["checkpoint"], "cursor=42")
        self.assertEqual(view["parts"], [1, 2])
        self.assertEqual(view["committed_at"], first.body["committed_at"])

    def test_checkpoint_too_large(self):
        import_id = self.api.create_id()
        answer = self.api.commit(import_id, 0, checkpoint="x" * (64 * 1024 + 1))
        self.assertError(answer, 413, "checkpoint_too_large")
        self.assertEqual(self.api.commit(import_id, 0, checkpoint="x" * 64 * 1024).status, 200)

    def test_unknown_sku_and_parent_any_part_order(self):
        import_id = self.api.create_id()
        # Parts are uploaded last-first; the variant comes before its parent.
        self.api.put(import_id, 3, "products", [product("PARENT")])
        self.api.put(import_id, 2, "products", [product("VAR", parent_sku="PARENT"),
                                                product("ORPHAN", parent_sku="NOPE")])
        self.api.put(import_id, 1, "inventory", [stock("VAR", 1), stock("PARENT", 2),
                                                 stock("GHOST", 3), stock("ORPHAN", 4)])
        answer = self.api.commit(import_id, 3)
        self.assertEqual(answer.status, 200, answer.raw)
        body = answer.body
        self.assertEqual(body["applied"], {"products": 2, "inventory": 2})
        rejected = [(r["part"], r["index"], r["sku"], r["errors"][0]["code"])
                    for r in body["rejected"]]
        self.assertEqual(rejected, [(1, 2, "GHOST", "unknown_sku"),
                                    (1, 3, "ORPHAN", "unknown_sku"),
                                    (2, 1, "ORPHAN", "unknown_parent")])
        self.assertEqual(self.api.product("VAR").body["parent_sku"], "PARENT")
        self.assertError(self.api.product("ORPHAN"), 404, "not_found")
        # A later import may reference what is stored now.
        body = self.api.run([("inventory", [stock("VAR", 9)]),
                             ("products", [product("VAR2", parent_sku="VAR")])])
        self.assertEqual(body["applied"], {"products": 1, "inventory": 1})

    def test_last_write_wins(self):
        self.api.run([("products", [product("A", price="10.00")]),
                      ("inventory", [stock("A", 5)])])
        body = self.api.run([("products", [product("A", price="99.00", updated_at=T0)]),
                             ("inventory", [stock("A", 7, updated_at=T0)])])
        self.assertEqual(body["applied"], {"products": 0, "inventory": 0})
        self.assertEqual(body["unchanged"], {"products": 1, "inventory": 1})
        # Same instant written differently, same content: unchanged.
        body = self.api.run([("products", [product("A", updated_at="2024-01-01T07:00:00-03:00"),
                                           product("A", updated_at="2024-01-01T10:00:00.000Z")]),
                             ("inventory", [stock("A", 5, updated_at="2024-01-01T10:00:00.0Z")])])
        self.assertEqual(body["unchanged"], {"products": 2, "inventory": 1})
        self.assertEqual(self.api.product("A").body["updated_at"], T1)
        # Same updated_at, different content: applied.
        body = self.api.run([("products", [product("A", price="11.00")]),
                             ("inventory", [stock("A", 6)])])
        self.assertEqual(body["applied"], {"products": 1, "inventory": 1})
        self.assertEqual(self.api.product("A").body["price"], "11.00")
        # Newer: applied.
        body = self.api.run([("inventory", [stock("A", 8, updated_at=T2)])])
        self.assertEqual(self.api.stock("A").body["quantity"], 8)

    def test_duplicates_apply_in_part_then_index_order(self):
        import_id = self.api.create_id(objects=["products"])
        self.api.put(import_id, 2, "products", [product("A", price="30.00", updated_at=T3),
                                                product("A", price="10.00", updated_at=T1),
                                                product("B", price="2.00")])
        self.api.put(import_id, 1, "products", [product("A", price="20.00", updated_at=T2),
                                                product("B", price="1.00")])
        body = self.api.commit(import_id, 2).body
        self.assertEqual(body["applied"]["products"], 4)
        self.assertEqual(body["unchanged"]["products"], 1)
        self.assertEqual(self.api.product("A").body["price"], "30.00")
        self.assertEqual(self.api.product("B").body["price"], "2.00")
        applied = [(e["sku"], e["updated_at"]) for e in self.api.raw("GET", "/_admin/applied").body]
        self.assertEqual(applied, [("A", T2), ("B", T1), ("A", T3), ("B", T1)])
        self.assertEqual([e["seq"] for e in self.api.raw("GET", "/_admin/applied").body],
                         [1, 2, 3, 4])

    def test_replace_mode(self):
        self.api.run([("products", [product("P1"), product("P2"), product("P3"),
                                    product("P4", active=False, updated_at=T0)]),
                      ("inventory", [stock("P1", 5), stock("P2", 0),
                                     stock("P3", 7, location="wh")])])
        body = self.api.run([("products", [product("P1"), product("P5")]),
                             ("inventory", [stock("P1", 6)])], mode="replace")
        self.assertEqual(body["applied"], {"products": 1, "inventory": 1})
        self.assertEqual(body["unchanged"], {"products": 1, "inventory": 0})
        self.assertEqual(body["deactivated"], {"products": 2, "inventory": 1})
        p2 = self.api.product("P2").body
        self.assertEqual((p2["active"], p2["updated_at"]), (False, T1))
        p4 = self.api.product("P4").body
        self.assertEqual((p4["active"], p4["updated_at"]), (False, T0))
        self.assertTrue(self.api.product("P1").body["active"])
        wh = self.api.stock("P3", "wh").body
        self.assertEqual((wh["quantity"], wh["updated_at"]), (0, T1))
        self.assertEqual(self.api.stock("P1").body["quantity"], 6)
        # Replace of inventory alone, with no parts: every stocked row goes to 0,
        # products are not touched.
        body = self.api.run([], mode="replace", objects=["inventory"])
        self.assertEqual(body["deactivated"], {"products": 0, "inventory": 1})
        self.assertEqual(self.api.stock("P1").body["quantity"], 0)
        self.assertTrue(self.api.product("P5").body["active"])
        # Re-sending a deactivated product with the same updated_at re-activates it.
        body = self.api.run([("products", [product("P2")])])
        self.assertEqual(body["applied"]["products"], 1)
        self.assertTrue(self.api.product("P2").body["active"])

    def test_commit_while_committing(self):
        import_id = self.api.create_id(objects=["products"])
        self.api.put(import_id, 1, "products", [product("A")])
        self.api.faults(commit_delay_ms=1500)
        result = {}

        def first_commit():
            client = Client(self.emulator.port)
            client.token = self.api.token
            result["answer"] = client.commit(import_id, 1)
            client.close()

        thread = threading.Thread(target=first_commit)
        thread.start()
        deadline = time.time() + 5
        while self.api.call("GET", "/v1/imports/" + import_id).body["status"] != "committing":
            self.assertLess(time.time(), deadline)
            time.sleep(0.02)
        answer = self.api.commit(import_id, 1)
        self.assertError(answer, 409, "import_committing")
        self.assertTrue(answer.header("Retry-After"))
        self.assertError(self.api.put(import_id, 1, "products", [product("B")]), 409,
                         "import_committing")
        self.assertError(self.api.call("DELETE", "/v1/imports/" + import_id), 409,
                         "import_committing")
        thread.join()
        self.assertEqual(result["answer"].status, 200)
        self.assertEqual(result["answer"].body["applied"]["products"], 1)


class LifecycleTest(EmulatorTestCase):
    def test_visibility_per_client(self):
        import_id = self.api.create_id(label="mine")
        other = Client(self.emulator.port)
        other.login(OTHER)
        try:
            path = "/v1/imports/" + import_id
            self.assertError(other.call("GET", path), 404, "not_found")
            self.assertError(other.put(import_id, 1, "products", [product("A")]), 404,
                             "not_found")
            self.assertError(other.commit(import_id, 0), 404, "not_found")
            self.assertError(other.call("DELETE", path), 404, "not_found")
            self.assertEqual(other.call("GET", "/v1/imports?channel=store-br").body["data"], [])
            self.assertEqual(self.api.call("GET", path).status, 200)
        finally:
            other.close()

    def test_list_imports(self):
        first = self.api.create_id(label="nightly-1")
        second = self.api.create_id(label="nightly-2")
        manual = self.api.create_id(label="manual-1")
        self.api.create_id(label="nightly-ar", channel="store-ar")
        third = self.api.create_id(label="nightly-3")
        self.api.call("DELETE", "/v1/imports/" + second)
        data = self.api.call("GET", "/v1/imports?channel=store-br&status=open"
                             "&label_prefix=nightly-").body["data"]
        self.assertEqual([i["import_id"] for i in data], [third, first])
        self.assertEqual(data[0]["label"], "nightly-3")
        data = self.api.call("GET", "/v1/imports?channel=store-br").body["data"]
        self.assertEqual([i["import_id"] for i in data], [third, manual, second, first])
        data = self.api.call("GET", "/v1/imports?channel=store-br&status=aborted").body["data"]
        self.assertEqual([i["import_id"] for i in data], [second])
        self.assertError(self.api.call("GET", "/v1/imports?status=bogus"), 400,
                         "invalid_request")

    def test_abort(self):
        import_id = self.api.create_id()
        self.api.put(import_id, 1, "products", [product("A")])
        path = "/v1/imports/" + import_id
        answer = self.api.call("DELETE", path)
        self.assertEqual((answer.status, answer.body["status"]), (200, "aborted"))
        self.assertEqual(self.api.call("DELETE", path).status, 200)
        self.assertError(self.api.put(import_id, 2, "products", [product("A")]), 410,
                         "import_aborted")
        self.assertError(self.api.commit(import_id, 1), 410, "import_aborted")
        self.assertEqual(self.api.call("GET", path).body["status"], "aborted")
        self.assertError(self.api.product("A"), 404, "not_found")

    def test_committed_import_is_final(self):
        import_id = self.api.create_id()
        self.api.commit(import_id, 0)
        self.assertError(self.api.call("DELETE", "/v1/imports/" + import_id), 409,
                         "import_committed")
        self.assertError(self.api.put(import_id, 1, "products", [product("A")]), 409,
                         "import_committed")

    def test_expired_import(self):
        import_id = self.api.create_id()
        self.api.put(import_id, 1, "products", [product("A")])
        answer = self.api.raw("POST", "/_admin/expire?import_id=" + import_id)
        self.assertEqual(answer.status, 200, answer.raw)
        self.assertError(self.api.put(import_id, 2, "products", [product("A")]), 410,
                         "import_expired")
        self.assertError(self.api.commit(import_id, 1), 410, "import_expired")
        self.assertError(self.api.call("DELETE", "/v1/imports/" + import_id), 410,
                         "import_expired")
        self.assertEqual(self.api.call("GET", "/v1/imports/" + import_id).body["status"],
                         "expired")
        self.assertError(self.api.product("A"), 404, "not_found")

    def test_import_ttl_counts_from_last_upload(self):
        self.api.faults(import_ttl=1.0)
        import_id = self.api.create_id(objects=["products"])
        for n in (1, 2, 3):
            time.sleep(0.4)     # 1.2 s in all: only the uploads keep it alive
            self.assertEqual(self.api.put(import_id, n, "products", [product("A")]).status, 200)
        time.sleep(1.2)
        self.assertError(self.api.commit(import_id, 3), 410, "import_expired")
        data = self.api.call("GET", "/v1/imports?status=expired").body["data"]
        self.assertEqual([i["import_id"] for i in data], [import_id])


class FaultTest(EmulatorTestCase):
    def setUp(self):
        super().setUp()
        self.import_id = self.api.create_id(objects=["products"])
        self.api.put(self.import_id, 1, "products", [product("A")])

    def view(self):
        return self.api.call("GET", "/v1/imports/" + self.import_id).body

    def test_injected_500(self):
        self.api.faults(rate_500=1.0)
        self.assertError(self.api.commit(self.import_id, 1), 500, "internal_error")
        self.api.faults()
        self.assertEqual(self.view()["status"], "open")
        self.assertError(self.api.product("A"), 404, "not_found")
        self.assertEqual(self.api.commit(self.import_id, 1).status, 200)

    def test_injected_503_and_429(self):
        self.api.faults(rate_503=1.0, retry_after=2)
        answer = self.api.put(self.import_id, 2, "products", [product("B")])
        self.assertError(answer, 503, "service_unavailable")
        self.assertEqual(answer.header("Retry-After"), "2")
        self.api.faults(rate_429=1.0)
        answer = self.api.put(self.import_id, 2, "products", [product("B")])
        self.assertError(answer, 429, "rate_limited")
        self.assertEqual(answer.header("Retry-After"), "1")
        self.api.faults()
        self.assertEqual(self.view()["parts"], [1])
        stats = self.api.raw("GET", "/_admin/stats").body
        self.assertEqual((stats["faults"]["503"], stats["faults"]["429"]), (1, 1))

    def test_injected_reset(self):
        self.api.faults(rate_reset=1.0)
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            self.api.put(self.import_id, 2, "products", [product("B")])
        self.api.faults()
        self.assertEqual(self.view()["parts"], [1])

    def test_injected_commit_drop(self):
        self.api.faults(rate_commit_drop=1.0)
        # Only commits are dropped.
        self.assertEqual(self.api.call("GET", "/v1/imports/" + self.import_id).status, 200)
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            self.api.commit(self.import_id, 1)
        self.api.faults()
        self.assertEqual(self.view()["status"], "committed")
        self.assertEqual(self.api.product("A").status, 200)
        answer = self.api.commit(self.import_id, 1)
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.header("Idempotent-Replayed"), "true")
        self.assertEqual(answer.body["applied"]["products"], 1)
        self.assertEqual(len(self.api.raw("GET", "/_admin/applied").body), 1)

    def test_injected_token_expiry(self):
        self.api.faults(rate_token_expire=1.0)
        self.assertError(self.api.call("GET", "/v1/channels/store-br"), 401, "token_expired")
        self.api.faults()
        self.assertError(self.api.call("GET", "/v1/channels/store-br"), 401, "token_expired")
        self.api.login()
        self.assertEqual(self.api.call("GET", "/v1/channels/store-br").status, 200)

    def test_latency(self):
        self.api.faults(latency_ms=300, latency_jitter_ms=50)
        start = time.time()
        self.assertEqual(self.api.call("GET", "/v1/channels/store-br").status, 200)
        self.assertGreaterEqual(time.time() - start, 0.3)
        self.api.faults()
        start = time.time()
        self.api.raw("GET", "/_admin/health")
        self.assertLess(time.time() - start, 0.3)

    def test_fault_settings_validation(self):
        for bad in ({"rate_500": 2}, {"rate_500": 0.6, "rate_503": 0.6}, {"nope": 1},
                    {"import_ttl": 0}):
            answer = self.api.raw("POST", "/_admin/faults", bad)
            self.assertEqual(answer.status, 400, bad)
        current = self.api.faults(rate_500=0.25, seed=3)
        self.assertEqual(current["rate_500"], 0.25)
        self.assertEqual(self.api.raw("GET", "/_admin/faults").body["rate_500"], 0.25)

    def test_seeded_draws_are_reproducible(self):
        def pattern():
            self.api.faults(rate_500=0.5, seed=11)
            return [self.api.call("GET", "/v1/channels/store-br").status for _ in range(20)]

        first = pattern()
        self.assertEqual(pattern(), first)
        self.assertIn(500, first)
        self.assertIn(200, first)


class AdminTest(EmulatorTestCase):
    def test_dump_stats_applied_journal(self):
        self.assertEqual(self.api.raw("GET", "/_admin/health").body["status"], "ok")
        self.api.run([("products", [product("A"), product("B")]),
                      ("inventory", [stock("A", 3)])])
        self.api.create_id(label="open-one", channel="store-ar")
        dump = self.api.raw("GET", "/_admin/dump?channel=store-br").body
        self.assertEqual([p["sku"] for p in dump["products"]], ["A", "B"])
        self.assertTrue(all(p["active"] for p in dump["products"]))
        self.assertEqual(dump["inventory"][0]["quantity"], 3)
        self.assertEqual(len(dump["imports"]), 1)
        imp = dump["imports"][0]
        for field in ("status", "parts", "label", "mode", "checkpoint_bytes", "created_at",
                      "committed_at"):
            self.assertIn(field, imp)
        self.assertEqual(len(self.api.raw("GET", "/_admin/dump").body["imports"]), 2)
        self.assertEqual(self.api.raw("GET", "/_admin/dump?channel=nope").status, 404)

        stats = self.api.raw("GET", "/_admin/stats").body
        self.assertEqual(stats["applied"], {"products": 2, "inventory": 1})
        self.assertEqual(stats["imports"]["committed"], 1)
        self.assertEqual(stats["imports"]["open"], 1)

        applied = self.api.raw("GET", "/_admin/applied").body
        self.assertEqual([(e["object"], e["sku"], e["location"]) for e in applied],
                         [("products", "A", None), ("products", "B", None),
                          ("inventory", "A", "default")])
        self.assertEqual(set(applied[0]), {"import_id", "object", "sku", "location",
                                           "updated_at", "seq"})
        self.assertEqual(len(self.api.raw("GET", "/_admin/applied?since=2").body), 1)
        with open(self.emulator.journal) as f:
            lines = [json.loads(line) for line in f]
        self.assertEqual(lines, applied)

    def test_expire_requires_open_import(self):
        import_id = self.api.create_id()
        self.api.commit(import_id, 0)
        self.assertEqual(self.api.raw("POST", "/_admin/expire?import_id=" + import_id).status,
                         409)
        self.assertEqual(self.api.raw("POST", "/_admin/expire?import_id=imp_nope").status, 404)


class MaxJsonDepthTest(EmulatorTestCase):
    """--max-json-depth: a part nested deeper is refused as a whole."""
    ARGS = EmulatorTestCase.ARGS + ("--max-json-depth", "8")

    def test_deep_part_refused_whole(self):
        import_id = self.api.create_id()
        deep = "x"
        for _ in range(6):  # body {, items [, item {, then 6 levels: 9
            deep = {"a": deep}
        answer = self.api.put(import_id, 1, "products",
                              [product("OK-1"), product("DEEP", attributes=deep)])
        self.assertError(answer, 400, "invalid_json")
        self.assertIn("nested deeper than 8", answer.body["error"]["message"])
        # nothing of the part is stored: the commit misses it
        self.assertError(self.api.call("POST", "/v1/imports/%s/commit" % import_id,
                                       {"parts": 1}), 409, "parts_missing")
        answer = self.api.put(import_id, 1, "products",
                              [product("OK-1"), product("SHALLOW", attributes=deep["a"])])
        self.assertEqual(answer.status, 200, answer.raw)
        self.assertEqual(answer.body["accepted"], 2)


class LimitsTest(unittest.TestCase):
    """A second emulator with a tight rate limit and short-lived tokens."""

    @classmethod
    def setUpClass(cls):
        cls.emulator = Emulator("--rate", "0.2", "--burst", "3", "--token-ttl", "1")

    @classmethod
    def tearDownClass(cls):
        cls.emulator.stop()
        # Nothing on stdout, a single startup line on stderr.
        assert cls.emulator.stdout == b"", cls.emulator.stdout
        lines = cls.emulator.stderr.decode().splitlines()
        assert len(lines) == 1 and "listening" in lines[0], lines

    def test_rate_limit_and_token_expiry(self):
        api = Client(self.emulator.port)
        try:
            api.login()
            statuses = [api.call("GET", "/v1/channels/store-br").status for _ in range(4)]
            self.assertEqual(statuses[:3], [200, 200, 200])
            self.assertEqual(statuses[3], 429)
            answer = api.call("GET", "/v1/channels/store-br")
            self.assertEqual(answer.status, 429)
            self.assertGreaterEqual(int(answer.header("Retry-After")), 1)
            for _ in range(5):  # the token endpoint is not rate-limited
                api.login()
            time.sleep(1.2)
            answer = api.call("GET", "/v1/channels/store-br")
            self.assertEqual(answer.status, 401)
            self.assertEqual(answer.body["error"]["code"], "token_expired")
            api.login()
            # The new token authenticates (the bucket may still be empty).
            self.assertIn(api.call("GET", "/v1/channels/store-br").status, (200, 429))
        finally:
            api.close()


if __name__ == "__main__":
    unittest.main()
