#!/usr/bin/env python3
"""Both destinations against a server answering with hostile bodies.

    test_hostile_server.py --bin build/destinations/crm360/destination-crm360
    test_hostile_server.py --bin build/destinations/shops/destination-shops

hostile_server.py answers every request with one hostile body (nested a
million deep, 65 MiB, not UTF-8, quoting the request's secrets back). For
each, the run ends in time with its defined outcome and no crash:

| answer                                   | outcome                                    |
|------------------------------------------|--------------------------------------------|
| nested a million deep                    | exit 1, one TRACE error saying the answer  |
|                                          | is nested too deeply                       |
| 65 MiB                                   | exit 1, one TRACE error                    |
| not UTF-8                                | exit 1, one TRACE error                    |
| error quoting Authorization and the body | exit 1, one TRACE error; no secret in it   |
| (crm360) 200 rejecting every record with | exit 0; every record dead-lettered; the    |
| a message quoting Authorization          | dead-letter errors hold no secret          |
| no answer at all (SIGTERM after 2 s, in   | exit 143 within 3 s of the signal          |
| Shops' blocking token call at start-up)  |                                            |
| (Shops) a token quoting the token        | the token is masked like any token;        |
| request, valid for 1e300 s               | exit 1 on the next answer; no secret       |

After each test every file of the run (stdout, stderr, dead letters) is
searched for every secret (the case classes' check).
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from airbyte_input import js, record  # noqa: E402

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostile_server.py")
DEADLINE = 90  # seconds a run may take, retries included


# the destination under test, from --bin (the test cases differ per API)
SHOPS = "--bin" in sys.argv and "shops" in os.path.basename(
    sys.argv[sys.argv.index("--bin") + 1])


def start_server():
    return lib.Server(SERVER, [], name="hostile").start()


if SHOPS:
    import shops_helpers as helpers
    from shops_helpers import ShopsCase as Case  # noqa: E402

    def records():
        return [js(record("products", {
            "sku": "SKU-%d" % i, "brand": "aurora", "title": "product %d" % i, "price": "10.00",
            "currency": "BRL", "active": True, "updated_at": "2026-05-01T00:00:00Z"}))
            for i in range(5)]
else:
    import crm360_helpers as helpers
    from crm360_helpers import CrmCase as Case  # noqa: E402

    def records():
        return [js(record("customers", {
            "external_id": "C-%d" % i, "brand": "aurora", "email": "c%d@example.com" % i,
            "updated_at": "2026-05-01T00:00:00Z"})) for i in range(5)]


def state_line():
    return js({"type": "STATE", "state": {"type": "STREAM", "stream": {
        "stream_descriptor": {"name": "customers" if not SHOPS else "products"},
        "stream_state": {"cursor": 1}}}})


class Hostile(Case):
    fatal_error_last = True

    @classmethod
    def launch_emulator(cls):
        return start_server()

    def cfg(self, **over):
        over.setdefault("max_retries", 1)
        over.setdefault("request_timeout_seconds", 20)
        return helpers.config(self.emu.url, self.wd, **over)

    def run_mode(self, mode):
        self.emu.post("/_admin/mode", {"mode": mode})
        inp = self.wd.write_lines("in.jsonl", records() + [state_line()])
        t0 = time.monotonic()
        res = self.write(inp, timeout=DEADLINE)
        self.assertLess(time.monotonic() - t0, DEADLINE, res.describe())
        self.assertNotIn(res.rc, (-11, 139, -6, 134), "crashed:\n" + res.describe())
        return res

    def test_deep_answer(self):
        res = self.run_mode("deep")
        self.assert_fatal(res)
        self.assertIn("deeper than", res.stdout.decode("utf-8", "replace"), res.describe())

    def test_huge_answer(self):
        self.assert_fatal(self.run_mode("huge"))

    def test_answer_not_utf8(self):
        self.assert_fatal(self.run_mode("not_utf8"))

    def test_answer_echoing_secrets(self):
        res = self.run_mode("echo")
        if SHOPS:
            self.assert_fatal(res)
            return
        # CRM360's batch answer rejects every record, quoting the api key
        self.assert_ok(res)
        dls = self.dead_letters()
        self.assertEqual(len(dls), 5, dls)
        for e in dls:
            self.assertEqual(e["rejected_by"], "target")
            self.assertIn("**********", e["errors"][0]["message"])

    def test_sigterm_while_the_server_does_not_answer(self):
        self.emu.post("/_admin/mode", {"mode": "hang"})
        inp = self.wd.write_lines("in.jsonl", records() + [state_line()])
        cfg_path = self.write_config(self.cfg(request_timeout_seconds=600), "hang.config.json")
        cat_path = self.wd.write_json("hang.catalog.json", self.default_catalog())
        p = lib.Connector(lib.binary(), ["write", "--config", cfg_path, "--catalog", cat_path],
                          self.wd, name="hang", stdin=inp)
        try:
            time.sleep(2)
            self.assertIsNone(p.poll(), "the destination ended before SIGTERM")
            t0 = time.monotonic()
            p.signal(signal.SIGTERM)
            while p.poll() is None and time.monotonic() < t0 + 10:
                time.sleep(0.01)
            took = time.monotonic() - t0
        finally:
            res = p.wait(timeout=60)
        self.assertLess(took, 3.0, "exit took %.1f s after SIGTERM:\n%s" % (took, res.describe()))
        self.assertEqual(res.rc, 143, res.describe())

    if SHOPS:
        def test_token_quoting_the_request(self):
            """CRM360 has no token endpoint: Shops only."""
            self.assert_fatal(self.run_mode("token"))


if __name__ == "__main__":
    lib.main(__doc__.split("\n")[0])
