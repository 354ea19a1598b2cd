"""Self-test of the Tiny ERP API v3 emulator: Keycloak-style tokens with the
client in the form body and rotating refresh tokens, limit/offset lists with
paginacao.total, bare details, per-product stock, the modification filters,
the per-minute read limit with its headers, error bodies and faults.

    cd integration/emulators && python3 -m unittest test_tiny_emulator -v
"""

import os
import sys
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import lib  # noqa: E402

EMULATOR = os.path.join(HERE, "tiny_emulator.py")
RT0 = "rt-tiny-initial-000000000000"
TOKEN = "/realms/tiny/protocol/openid-connect/token"


call = lib.http_call


class TinyEmulator(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = lib.Server(EMULATOR, ["--contacts", "230", "--products", "20", "--orders",
                                        "30", "--per-minute", "0"]).start()
        cls.api = cls.srv.url + "/public-api/v3"

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def setUp(self):
        self.srv.post("/_admin/reset")

    def token(self, rt=RT0, secret="tiny-secret"):
        body = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": rt,
                                       "client_id": "tiny-client", "client_secret": secret})
        return call("POST", self.srv.url + TOKEN, body.encode())

    def get(self, path, access):
        return call("GET", self.api + path, headers={"Authorization": "Bearer " + access})

    def access(self):
        status, body, _ = self.token()
        self.assertEqual(status, 200, body)
        return body["access_token"]

    def test_refresh_rotates(self):
        status, body, _ = self.token()
        self.assertEqual(status, 200)
        self.assertEqual((body["expires_in"], body["refresh_expires_in"]), (14400, 86400))
        self.assertEqual(self.token()[1]["error"], "invalid_grant")
        self.assertEqual(self.token(body["refresh_token"])[0], 200)
        self.assertEqual(self.token(secret="wrong")[0], 401)

    def test_offset_pages_and_total(self):
        access = self.access()
        seen, offset = [], 0
        while True:
            status, body, _ = self.get("/contatos?limit=100&offset=%d" % offset, access)
            self.assertEqual(status, 200)
            self.assertEqual(body["paginacao"]["total"], 230)
            seen += [c["id"] for c in body["itens"]]
            offset += len(body["itens"])
            if offset >= body["paginacao"]["total"]:
                break
        self.assertEqual(len(set(seen)), 230)
        self.assertEqual(len(self.get("/contatos?limit=500", access)[1]["itens"]), 100)
        status, body, _ = self.get("/contatos?limit=abc", access)
        self.assertEqual(status, 400)
        self.assertEqual(body["detalhes"][0]["campo"], "limit")

    def test_details_variations_and_stock(self):
        access = self.access()
        orders = self.get("/pedidos?limit=5", access)[1]["itens"]
        self.assertNotIn("itens", orders[0])
        self.assertNotIn("dataAtualizacao", orders[0])
        detail = self.get("/pedidos/%d" % orders[0]["id"], access)[1]
        self.assertGreater(len(detail["itens"]), 0)
        products = self.get("/produtos?limit=100", access)[1]["itens"]
        parent = next(p for p in products if p["tipoVariacao"] == "P")
        self.assertNotIn("variacoes", parent)
        variations = self.get("/produtos/%d" % parent["id"], access)[1]["variacoes"]
        self.assertEqual(variations[0]["grade"][0]["chave"], "Tamanho")
        stock = self.get("/estoque/%d" % variations[0]["id"], access)[1]
        self.assertEqual(stock["disponivel"], stock["saldo"] - stock["reservado"])
        self.assertEqual(self.get("/estoque/1", access)[0], 404)
        self.assertEqual(self.get("/contatos", "nope")[0], 401)

    def test_modification_filter(self):
        access = self.access()
        dump = self.srv.get("/_admin/dump")
        cut = sorted(int(p["_mtime"]) for p in dump["produtos"])[10]
        text = next(p["dataAlteracao"] for p in dump["produtos"] if int(p["_mtime"]) == cut)
        body = self.get("/produtos?" + urllib.parse.urlencode({"dataAlteracao": text}),
                        access)[1]
        self.assertEqual(sorted(p["id"] for p in body["itens"]),
                         sorted(p["id"] for p in dump["produtos"] if int(p["_mtime"]) >= cut))

    def test_reads_per_minute(self):
        srv = lib.Server(EMULATOR, ["--contacts", "3", "--products", "2", "--orders", "2",
                                    "--per-minute", "3"]).start()
        try:
            body = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": RT0,
                                           "client_id": "tiny-client",
                                           "client_secret": "tiny-secret"})
            tok = call("POST", srv.url + TOKEN, body.encode())[1]["access_token"]
            answers = [call("GET", srv.url + "/public-api/v3/contatos",
                            headers={"Authorization": "Bearer " + tok}) for _ in range(8)]
            statuses = [a[0] for a in answers]
            # a minute boundary may fall between the calls: one side still has 4 or more
            self.assertIn(429, statuses)
            limited = next(a for a in answers if a[0] == 429)
            self.assertEqual(limited[2]["X-RateLimit-Limit"], "3")
            self.assertEqual(limited[2]["X-RateLimit-Remaining"], "0")
            self.assertTrue(1 <= int(limited[2]["X-RateLimit-Reset"]) <= 60)
        finally:
            srv.stop()

    def test_faults(self):
        access = self.access()
        self.srv.post("/_admin/faults", {"seed": 5, "rate_503": 0.5})
        first = [self.get("/contatos?limit=1", access)[0] for _ in range(16)]
        self.srv.post("/_admin/faults", {"seed": 5, "rate_503": 0.5})
        self.assertEqual(first, [self.get("/contatos?limit=1", access)[0] for _ in range(16)])
        self.assertIn(503, first)


if __name__ == "__main__":
    unittest.main()
