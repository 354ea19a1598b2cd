"""Self-test of the TOTVS Moda API V2 emulator.

Starts ``totvs_emulator.py`` on a free loopback port and checks, over real
HTTP, the behaviour ``README-totvs.md`` promises: the password grant with a
signed JWT and its lifetime, POST searches with ``filter``/``expand``/
``order``/``page``/``pageSize`` and the ``hasNext`` envelope, the change
window on ``maxChangeFilterDate``, the required ``branchCodeList`` and
``option.balances``, ``messages`` error bodies, 401 for a bad token, the
rate limit answered with 429 and fault injection.

    cd integration/emulators && python3 -m unittest test_totvs_emulator -v
"""

import base64
import datetime
import json
import os
import sys
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import lib  # noqa: E402

EMULATOR = os.path.join(HERE, "totvs_emulator.py")
BASE = "/api/totvsmoda"
FORM = {"grant_type": "password", "client_id": "totvs-client", "client_secret": "totvs-secret",
        "username": "apiuser", "password": "apipass1234", "scope": "openid"}
BRT = datetime.timezone(datetime.timedelta(hours=-3))


call = lib.http_call


def local(t):
    return datetime.datetime.fromtimestamp(int(t), BRT).strftime("%Y-%m-%dT%H:%M:%S")


class TotvsEmulator(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = lib.Server(EMULATOR, ["--persons", "230", "--references", "8", "--orders",
                                        "60", "--rate", "0", "--access-ttl", "2"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def setUp(self):
        self.srv.post("/_admin/reset")

    def token(self, **over):
        form = dict(FORM, **over)
        return call("POST", self.srv.url + BASE + "/authorization/v2/token",
                    urllib.parse.urlencode(form).encode(),
                    {"Content-Type": "application/x-www-form-urlencoded"})

    def access(self):
        status, body, _ = self.token()
        self.assertEqual(status, 200, body)
        return body["access_token"]

    def search(self, path, body, access=None):
        return call("POST", self.srv.url + BASE + path, json.dumps(body).encode(),
                    {"Authorization": "Bearer " + (access or self.access()),
                     "Content-Type": "application/json"})

    def test_password_grant_gives_a_jwt_with_its_lifetime(self):
        status, body, _ = self.token()
        self.assertEqual(status, 200)
        self.assertEqual(body["token_type"], "Bearer")
        self.assertEqual(body["expires_in"], 2)
        head, payload, sig = body["access_token"].split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        self.assertEqual(claims["sub"], "apiuser")
        self.assertIn(claims["exp"] - claims["iat"], (2, 3))  # at least the lifetime
        # refresh grant works once
        status, again, _ = self.token(grant_type="refresh_token",
                                      refresh_token=body["refresh_token"])
        self.assertEqual(status, 200)
        status, dead, _ = self.token(grant_type="refresh_token",
                                     refresh_token=body["refresh_token"])
        self.assertEqual((status, dead["error"]), (400, "invalid_grant"))
        # the token dies with its lifetime: 401, empty body, WWW-Authenticate
        access = body["access_token"]
        self.assertEqual(self.search("/person/v2/individuals/search", {}, access)[0], 200)
        time.sleep(max(0.0, claims["exp"] - time.time()) + 0.2)
        status, err, headers = self.search("/person/v2/individuals/search", {}, access)
        self.assertEqual((status, err), (401, None))
        self.assertIn("invalid_token", headers["WWW-Authenticate"])

    def test_refused_grants(self):
        for over, error in (({"password": "nope"}, "invalid_grant"),
                            ({"client_secret": "nope"}, "invalid_client"),
                            ({"grant_type": "implicit"}, "unsupported_grant_type")):
            status, body, _ = self.token(**over)
            self.assertEqual((status, body["error"]), (400, error), over)
        status, body, _ = self.search("/person/v2/individuals/search", {}, "x.y.z")
        self.assertEqual(status, 401)

    def test_pages_end_with_has_next_false(self):
        access = self.access()
        seen, page = [], 1
        while True:
            status, body, _ = self.search("/person/v2/individuals/search",
                                          {"page": page, "pageSize": 50}, access)
            self.assertEqual(status, 200, body)
            self.assertEqual(body["totalItems"], 230)
            self.assertEqual(body["totalPages"], 5)
            self.assertEqual(body["count"], len(body["items"]))
            seen += [p["code"] for p in body["items"]]
            if not body["hasNext"]:
                break
            page += 1
        self.assertEqual(page, 5)
        self.assertEqual(seen, sorted(seen))
        self.assertEqual(len(set(seen)), 230)
        # past the end: empty, hasNext false
        status, body, _ = self.search("/person/v2/individuals/search",
                                      {"page": 9, "pageSize": 50}, access)
        self.assertEqual((body["items"], body["hasNext"], body["count"]), ([], False, 0))
        # pageSize over 500 is a 400 with a messages body
        status, body, _ = self.search("/person/v2/individuals/search", {"pageSize": 501}, access)
        self.assertEqual(status, 400)
        self.assertEqual(body["messages"][0]["code"], "InvalidPageSize")
        self.assertEqual(body["messages"][0]["severity"], "Error")

    def test_expand_and_order(self):
        access = self.access()
        _, plain, _ = self.search("/person/v2/individuals/search", {"pageSize": 5}, access)
        self.assertNotIn("emails", plain["items"][0])
        _, full, _ = self.search("/person/v2/individuals/search",
                                 {"pageSize": 5, "expand": "emails,phones"}, access)
        self.assertIn("@", full["items"][0]["emails"][0]["email"])
        self.assertNotIn("addresses", full["items"][0])
        _, desc, _ = self.search("/person/v2/individuals/search",
                                 {"pageSize": 5, "order": "-code"}, access)
        codes = [p["code"] for p in desc["items"]]
        self.assertEqual(codes, sorted(codes, reverse=True))

    def test_change_window_on_max_change_filter_date(self):
        dump = self.srv.get("/_admin/dump")["individuals"]
        times = sorted(p["_mtime"] for p in dump)
        lo, hi = times[50], times[120]
        want = sorted(p["code"] for p in dump if lo <= p["_mtime"] <= hi)
        access = self.access()
        for start, end in ((local(lo), local(hi)),
                           (datetime.datetime.fromtimestamp(lo, datetime.timezone.utc)
                            .strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                            datetime.datetime.fromtimestamp(hi, BRT).isoformat())):
            status, body, _ = self.search("/person/v2/individuals/search", {
                "filter": {"change": {"startDate": start, "endDate": end}},
                "order": "maxChangeFilterDate,code", "pageSize": 500}, access)
            self.assertEqual(status, 200, body)
            got = [p["code"] for p in body["items"]]
            self.assertEqual(sorted(got), want)
            stamps = [p["maxChangeFilterDate"] for p in body["items"]]
            self.assertEqual(stamps, sorted(stamps))
            self.assertRegex(stamps[0], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
        status, body, _ = self.search("/person/v2/individuals/search", {
            "filter": {"change": {"startDate": "01/06/2024"}}}, access)
        self.assertEqual((status, body["messages"][0]["code"]), (400, "InvalidDate"))

    def test_orders_need_branches(self):
        access = self.access()
        status, body, _ = self.search("/sales-order/v2/orders/search", {}, access)
        self.assertEqual((status, body["messages"][0]["code"]), (400, "BranchCodeListRequired"))
        status, body, _ = self.search("/sales-order/v2/orders/search", {
            "filter": {"branchCodeList": [1]}, "expand": "items", "pageSize": 500}, access)
        self.assertEqual(status, 200)
        self.assertTrue(body["items"])
        self.assertEqual({o["branchCode"] for o in body["items"]}, {1})
        self.assertTrue(all(o["items"] for o in body["items"]))
        every = self.srv.get("/_admin/dump")["orders"]
        self.assertEqual(body["totalItems"], sum(1 for o in every if o["branchCode"] == 1))

    def test_products_grid_prices_and_balances(self):
        access = self.access()
        _, body, _ = self.search("/product/v2/products/search", {
            "expand": "classifications", "pageSize": 500,
            "option": {"prices": [{"branchCode": 1, "priceCodeList": [1]}]}}, access)
        skus = body["items"]
        refs = {}
        for p in skus:
            refs.setdefault(p["referenceCode"], set()).add((p["colorCode"], p["size"]))
            self.assertEqual(p["prices"][0]["priceCode"], 1)
            self.assertTrue(any(c["type"] == 1 for c in p["classifications"]))
        _, rbody, _ = self.search("/product/v2/references/search",
                                  {"expand": "colors", "pageSize": 500}, access)
        for r in rbody["items"]:
            grid = {(c["colorCode"], s) for c in r["colors"] for s in r["sizes"]}
            self.assertEqual(refs[r["referenceCode"]], grid)
        status, bad, _ = self.search("/product/v2/balances/search", {}, access)
        self.assertEqual((status, bad["messages"][0]["code"]), (400, "BalancesRequired"))
        _, bal, _ = self.search("/product/v2/balances/search", {
            "option": {"balances": [{"branchCode": 1, "stockCodeList": [1]}]},
            "pageSize": 1000}, access)
        self.assertEqual(bal["totalItems"], len(skus))
        self.assertEqual(len(bal["items"][0]["balances"]), 1)

    def test_rate_limit_and_faults(self):
        srv = lib.Server(EMULATOR, ["--persons", "5", "--references", "1", "--orders", "1",
                                    "--rate", "2", "--burst", "2"]).start()
        try:
            status, body, _ = call("POST", srv.url + BASE + "/authorization/v2/token",
                                   urllib.parse.urlencode(FORM).encode())
            access = body["access_token"]
            answers = [call("POST", srv.url + BASE + "/person/v2/individuals/search", b"{}",
                            {"Authorization": "Bearer " + access}) for _ in range(6)]
            limited = [a for a in answers if a[0] == 429]
            self.assertTrue(limited)
            self.assertEqual(limited[0][1]["messages"][0]["code"], "TooManyRequests")
            self.assertGreaterEqual(int(limited[0][2]["Retry-After"]), 1)
        finally:
            srv.stop()
        self.srv.post("/_admin/faults", {"seed": 4, "rate_503": 1.0})
        status, body, _ = self.search("/person/v2/individuals/search", {})
        self.assertEqual((status, body["messages"][0]["code"]), (503, "InternalError"))
        self.srv.post("/_admin/faults", {"rate_token_expire": 1.0})
        access = self.access()
        self.assertEqual(self.search("/person/v2/individuals/search", {}, access)[0], 401)
        self.srv.post("/_admin/faults", {})
        self.assertEqual(self.search("/person/v2/individuals/search", {}, access)[0], 401)
        self.assertEqual(self.search("/person/v2/individuals/search", {})[0], 200)

    def test_mutate_moves_the_change_date(self):
        before = time.time() - 1
        touched = self.srv.post("/_admin/mutate", {"individuals": 3, "new_orders": 2,
                                                   "orders": 1, "stock": 2, "products": 1})
        access = self.access()
        _, body, _ = self.search("/person/v2/individuals/search", {
            "filter": {"change": {"startDate": local(before)}}}, access)
        self.assertEqual(sorted(p["code"] for p in body["items"]),
                         sorted(touched["individuals"]))
        _, body, _ = self.search("/sales-order/v2/orders/search", {
            "filter": {"branchCodeList": [1, 2, 3], "change": {"startDate": local(before)}}},
            access)
        self.assertEqual(sorted([o["branchCode"], o["orderCode"]] for o in body["items"]),
                         sorted(touched["orders"] + touched["new_orders"]))
        _, body, _ = self.search("/product/v2/balances/search", {
            "option": {"balances": [{"branchCode": 1, "stockCodeList": [1]}]},
            "filter": {"change": {"startDate": local(before)}}}, access)
        self.assertEqual(sorted(p["productCode"] for p in body["items"]), sorted(touched["stock"]))


class TotvsApiHub(unittest.TestCase):
    """--api-key: the API Hub's training environment under /treino; the key
    on every request (the token request too) besides the Bearer token."""
    KEY = "hub-key-0123456789"

    @classmethod
    def setUpClass(cls):
        cls.srv = lib.Server(EMULATOR, ["--persons", "5", "--references", "2", "--orders", "5",
                                        "--rate", "0", "--api-key", cls.KEY,
                                        "--path-prefix", "/treino"]).start()
        cls.api = cls.srv.url + "/treino" + BASE

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def token(self, headers):
        return call("POST", self.api + "/authorization/v2/token",
                    urllib.parse.urlencode(FORM).encode(),
                    dict(headers, **{"Content-Type": "application/x-www-form-urlencoded"}))

    def test_the_key_on_every_request(self):
        for headers, code in (({}, "ApiKeyRequired"), ({"x-api-key": "wrong"}, "InvalidApiKey")):
            status, body, _ = self.token(headers)
            self.assertEqual((status, body["messages"][0]["code"]), (401, code))
        status, body, _ = self.token({"X-Api-Key": self.KEY})
        self.assertEqual(status, 200, body)
        access = body["access_token"]
        search = self.api + "/person/v2/individuals/search"
        auth = {"Authorization": "Bearer " + access, "Content-Type": "application/json"}
        status, body, _ = call("POST", search, b"{}", auth)
        self.assertEqual((status, body["messages"][0]["code"]), (401, "ApiKeyRequired"))
        status, body, _ = call("POST", search, b"{}", dict(auth, **{"x-api-key": self.KEY}))
        self.assertEqual((status, body["totalItems"]), (200, 5))
        # a right key without a token: the API's own 401
        status, body, _ = call("POST", search, b"{}", {"x-api-key": self.KEY})
        self.assertEqual((status, body), (401, None))
        # not under the prefix: nothing
        status, _, _ = call("POST", self.srv.url + BASE + "/person/v2/individuals/search",
                            b"{}", dict(auth, **{"x-api-key": self.KEY}))
        self.assertEqual(status, 404)
        counters = self.srv.get("/_admin/stats")["counters"]
        self.assertEqual(counters["hub_refused"], 3)


if __name__ == "__main__":
    unittest.main()
