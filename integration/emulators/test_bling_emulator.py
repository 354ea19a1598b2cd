"""Self-test of the Bling API v3 emulator.

Starts ``bling_emulator.py`` on a free loopback port and checks, over real
HTTP, the behaviour ``README-bling.md`` promises: OAuth with Basic client
authentication and rotating refresh tokens, ``{"data": [...]}`` lists paged by
``pagina``/``limite`` (clamped at 100, empty past the end), modification
windows in Brazil time, ``criterio``, the required ``idsProdutos[]``, the
3 requests/s limit answered with 429, error envelopes and fault injection.

    cd integration/emulators && python3 -m unittest test_bling_emulator -v
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

EMULATOR = os.path.join(HERE, "bling_emulator.py")
CLIENT = ("bling-client", "bling-secret")
RT0 = "rt-initial-0000000000000000"
BRT = datetime.timezone(datetime.timedelta(hours=-3))


call = lib.http_call


class BlingEmulator(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = lib.Server(EMULATOR, ["--contacts", "250", "--products", "30", "--orders",
                                        "40", "--rate", "0"]).start()
        cls.api = cls.srv.url + "/Api/v3"

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def setUp(self):
        self.srv.post("/_admin/reset")

    def token(self, rt=RT0, client=CLIENT):
        basic = base64.b64encode(("%s:%s" % client).encode()).decode()
        body = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": rt})
        return call("POST", self.api + "/oauth/token", body.encode(),
                    {"Authorization": "Basic " + basic,
                     "Content-Type": "application/x-www-form-urlencoded"})

    def get(self, path, access):
        return call("GET", self.api + path, headers={"Authorization": "Bearer " + access})

    def access(self):
        status, body, _ = self.token()
        self.assertEqual(status, 200, body)
        return body["access_token"]

    def test_refresh_rotates_and_the_old_token_dies(self):
        status, body, _ = self.token()
        self.assertEqual(status, 200)
        self.assertEqual(body["token_type"], "Bearer")
        self.assertEqual(body["expires_in"], 21600)
        self.assertNotEqual(body["refresh_token"], RT0)
        status, again, _ = self.token()
        self.assertEqual(status, 400)
        self.assertEqual(again["error"]["type"], "invalid_grant")
        status, newer, _ = self.token(body["refresh_token"])
        self.assertEqual(status, 200)
        # the access token of the first grant still works until it expires
        self.assertEqual(self.get("/contatos?limite=1", body["access_token"])[0], 200)

    def test_client_authentication_is_basic(self):
        status, body, _ = self.token(client=("bling-client", "wrong"))
        self.assertEqual(status, 401)
        self.assertEqual(body["error"]["type"], "invalid_client")
        status, body, _ = call("POST", self.api + "/oauth/token",
                               urllib.parse.urlencode({"grant_type": "refresh_token",
                                                       "refresh_token": RT0,
                                                       "client_id": CLIENT[0],
                                                       "client_secret": CLIENT[1]}).encode())
        self.assertEqual(status, 401)

    def test_unknown_or_expired_access_token(self):
        status, body, _ = self.get("/contatos", "at_nope")
        self.assertEqual(status, 401)
        self.assertEqual(body["error"], {"type": "invalid_token", "message": "invalid_token",
                                         "description": "The access token provided is invalid"})
        access = self.access()
        self.srv.post("/_admin/expire_tokens")
        self.assertEqual(self.get("/contatos", access)[0], 401)

    def test_pages_carry_data_only_and_end_empty(self):
        access = self.access()
        seen = []
        page = 1
        while True:
            status, body, _ = self.get("/contatos?criterio=1&limite=100&pagina=%d" % page,
                                       access)
            self.assertEqual(status, 200)
            self.assertEqual(list(body), ["data"])
            if not body["data"]:
                break
            seen += [c["id"] for c in body["data"]]
            page += 1
        self.assertEqual(len(seen), 250)
        self.assertEqual(len(set(seen)), 250)
        self.assertEqual(page, 4)  # 100, 100, 50, then empty
        # limite is clamped at 100; list items are headers only
        status, body, _ = self.get("/contatos?criterio=1&limite=500", access)
        self.assertEqual(len(body["data"]), 100)
        self.assertEqual(set(body["data"][0]), {"id", "nome", "codigo", "situacao",
                                                "numeroDocumento", "telefone", "celular"})
        self.assertNotIn("_mtime", json.dumps(body))

    def test_criterio_defaults_to_recent_only(self):
        access = self.access()
        all_products = self.get("/produtos?criterio=5&limite=100", access)[1]["data"]
        recent = self.get("/produtos?limite=100", access)[1]["data"]
        self.assertLess(len(recent), len(all_products))
        all_contacts = self.get("/contatos?criterio=1&limite=100", access)[1]["data"]
        default_contacts = self.get("/contatos?limite=100", access)[1]["data"]
        self.assertLess(len(default_contacts), len(all_contacts))

    def test_modification_window(self):
        access = self.access()
        dump = self.srv.get("/_admin/dump")
        mtimes = sorted(int(c["_mtime"]) for c in dump["contatos"])
        lo, hi = mtimes[50], mtimes[120]

        def brt(t):
            return datetime.datetime.fromtimestamp(t, BRT).strftime("%Y-%m-%d %H:%M:%S")

        q = urllib.parse.urlencode({"criterio": 1, "limite": 100, "dataAlteracaoInicial": brt(lo),
                                    "dataAlteracaoFinal": brt(hi)})
        body = self.get("/contatos?" + q, access)[1]
        expect = [c["id"] for c in dump["contatos"] if lo <= int(c["_mtime"]) <= hi]
        self.assertEqual(sorted(c["id"] for c in body["data"]), sorted(expect))
        # a window over a year is refused
        q = urllib.parse.urlencode({"dataAlteracaoInicial": "2024-01-01 00:00:00",
                                    "dataAlteracaoFinal": "2025-06-01 00:00:00"})
        status, body, _ = self.get("/pedidos/vendas?" + q, access)
        self.assertEqual(status, 400)
        self.assertEqual(body["error"]["type"], "VALIDATION_ERROR")

    def test_details(self):
        access = self.access()
        order = self.get("/pedidos/vendas?limite=1", access)[1]["data"][0]
        status, body, _ = self.get("/pedidos/vendas/%d" % order["id"], access)
        self.assertEqual(status, 200)
        self.assertGreater(len(body["data"]["itens"]), 0)
        products = self.get("/produtos?criterio=5&limite=100", access)[1]["data"]
        parent = next(p for p in products if p["formato"] == "V")
        detail = self.get("/produtos/%d" % parent["id"], access)[1]["data"]
        self.assertGreaterEqual(len(detail["variacoes"]), 2)
        for v in detail["variacoes"]:
            self.assertRegex(v["variacao"]["nome"], r"^Tamanho:[^;]+;Cor:.+$")
            self.assertEqual(v["variacao"]["produtoPai"]["id"], parent["id"])
        status, body, _ = self.get("/contatos/1", access)
        self.assertEqual(status, 404)
        self.assertEqual(body["error"]["type"], "RESOURCE_NOT_FOUND")

    def test_stock_needs_product_ids(self):
        access = self.access()
        status, body, _ = self.get("/estoques/saldos", access)
        self.assertEqual(status, 400)
        self.assertEqual(body["error"]["type"], "MISSING_REQUIRED_FIELD_ERROR")
        products = self.get("/produtos?criterio=5&limite=3", access)[1]["data"]
        q = "&".join("idsProdutos%%5B%%5D=%d" % p["id"] for p in products)
        body = self.get("/estoques/saldos?" + q, access)[1]
        self.assertEqual([s["produto"]["id"] for s in body["data"]], [p["id"] for p in products])
        for s in body["data"]:
            self.assertEqual(s["saldoFisicoTotal"], sum(d["saldoFisico"] for d in s["depositos"]))

    def test_three_requests_per_second(self):
        srv = lib.Server(EMULATOR, ["--contacts", "5", "--products", "2", "--orders", "2"])
        srv.start()
        try:
            api = srv.url + "/Api/v3"
            basic = base64.b64encode(("%s:%s" % CLIENT).encode()).decode()
            _, tok, _ = call("POST", api + "/oauth/token",
                             urllib.parse.urlencode({"grant_type": "refresh_token",
                                                     "refresh_token": RT0}).encode(),
                             {"Authorization": "Basic " + basic})
            statuses = [call("GET", api + "/contatos", headers={
                "Authorization": "Bearer " + tok["access_token"]}) for _ in range(6)]
            codes = [s[0] for s in statuses]
            self.assertEqual(codes[:3], [200, 200, 200])
            self.assertIn(429, codes[3:])
            limited = next(s for s in statuses if s[0] == 429)
            self.assertEqual(limited[1]["error"]["type"], "TOO_MANY_REQUESTS")
            time.sleep(1.1)
            self.assertEqual(call("GET", api + "/contatos", headers={
                "Authorization": "Bearer " + tok["access_token"]})[0], 200)
        finally:
            srv.stop()

    def test_faults_are_seeded(self):
        access = self.access()
        self.srv.post("/_admin/faults", {"seed": 7, "rate_503": 0.5})
        first = [self.get("/contatos?limite=1", access)[0] for _ in range(20)]
        self.srv.post("/_admin/faults", {"seed": 7, "rate_503": 0.5})
        second = [self.get("/contatos?limite=1", access)[0] for _ in range(20)]
        self.assertEqual(first, second)
        self.assertIn(503, first)
        self.assertIn(200, first)
        self.srv.post("/_admin/faults", {"rate_token_expire": 1.0})
        self.assertEqual(self.get("/contatos", access)[0], 401)
        self.srv.post("/_admin/faults", {})
        self.assertEqual(self.get("/contatos", access)[0], 401)  # that token is gone

    def test_mutate_moves_records_into_a_new_window(self):
        access = self.access()
        touched = self.srv.post("/_admin/mutate", {"contatos": 3, "pedidos": 2, "seed": 3})
        now = time.time()
        q = urllib.parse.urlencode({
            "criterio": 1, "dataAlteracaoInicial": datetime.datetime.fromtimestamp(
                now - 30, BRT).strftime("%Y-%m-%d %H:%M:%S"),
            "dataAlteracaoFinal": datetime.datetime.fromtimestamp(
                now + 5, BRT).strftime("%Y-%m-%d %H:%M:%S")})
        got = self.get("/contatos?" + q, access)[1]["data"]
        self.assertEqual(sorted(c["id"] for c in got), sorted(touched["contatos"]))
        got = self.get("/pedidos/vendas?" + q, access)[1]["data"]
        self.assertEqual(sorted(o["id"] for o in got), sorted(touched["pedidos"]))


if __name__ == "__main__":
    unittest.main()
