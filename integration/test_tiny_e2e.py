#!/usr/bin/env python3
"""source-tiny against the Tiny emulator: spec, check, discover, full and
incremental reads equal to what the account holds, bad config, state and
credentials, 5xx and 429 retries (a 429 waits for X-RateLimit-Reset), token
expiry mid-sync, refresh-token rotation (the CONTROL message reaches stdout
before the new token is used; a SIGKILL right after a refresh loses nothing)
and resumption mid-stream after a SIGKILL.

    python3 integration/test_tiny_e2e.py --bin build/gcc/sources/tiny/source-tiny
"""
import time

import lib
import tiny_helpers as th


class TinyCase(lib.SourceCase):
    workdir_prefix = "ab-tiny-"

    def start_emulator(self, **kw):
        return th.emulator(**kw)

    def assert_equal_to_account(self, res, streams=th.STREAMS):
        dump = self.dump()
        for s in streams:
            got = th.records(res.messages, s)
            self.assertEqual(len(got), len({r["id"] for r in got}), "duplicates in " + s)
            if s == "estoque":
                got = {r["id"]: r["saldo"] for r in got}
            else:
                got = {r["id"]: r for r in got}
            self.assertEqual(got, th.expected(dump, s), s)


class Commands(TinyCase):
    def test_spec(self):
        res = lib.run_connector(lib.binary(), ["spec"], self.wd)
        self.assertEqual(res.rc, 0, res.describe())
        props = res.of_type("SPEC")[0]["spec"]["connectionSpecification"]["properties"]
        for k in ("client_id", "client_secret", "refresh_token", "token_url", "start_date",
                  "lookback_seconds", "requests_per_second"):
            self.assertIn(k, props)
        self.assertTrue(props["refresh_token"]["airbyte_secret"])
        self.assertLessEqual(props["requests_per_second"]["default"] * 60, 30)

    def test_check_rotates_the_token_and_says_so_first(self):
        cfg = th.config(self.srv)
        new = self.check_rotating(cfg)
        # one read per stream, estoque with a product id
        paths = self.counters()
        for p in ("path.contatos", "path.pedidos", "path.produtos", "path.estoque"):
            self.assertEqual(paths.get(p), 1, p)
        self.assert_only_the_rotated_token_works(cfg, new)

    def test_check_wrong_client_secret(self):
        cfg = th.config(self.srv, client_secret="not-the-secret")
        self.check_failed(cfg, ("credentials", "invalid_client"), ("not-the-secret", th.RT0))

    def test_check_bad_config(self):
        cfg = th.config(self.srv, token_url="ftp://x", start_date="2024-13-45",
                        refresh_token="short")
        message = self.check_failed(cfg, ("refresh_token", "token_url"))
        self.assertNotIn("short", message)
        self.assertEqual(self.counters().get("tokens_issued"), None)

    def test_discover(self):
        res = self.run_src("discover", th.config(self.srv))
        self.assertEqual(res.rc, 0, res.describe())
        streams = {s["name"]: s for s in res.of_type("CATALOG")[0]["catalog"]["streams"]}
        self.assertEqual(sorted(streams), sorted(th.STREAMS))
        self.assertEqual(streams["pedidos"]["source_defined_primary_key"], [["id"]])
        self.assertEqual(streams["estoque"]["supported_sync_modes"], ["full_refresh"])
        self.assertEqual(streams["produtos"]["default_cursor_field"], ["dataAlteracao"])
        self.assertIn("itens", streams["pedidos"]["json_schema"]["properties"])
        self.assertIn("variacoes", streams["produtos"]["json_schema"]["properties"])
        self.assertEqual(self.counters().get("api_requests"), None)


class Reads(TinyCase):
    def test_full_read_equals_the_account(self):
        cfg = th.config(self.srv)
        res = self.run_src("read", cfg, th.catalog({s: "full_refresh" for s in th.STREAMS}))
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_equal_to_account(res)
        self.assert_states_consistent(res)
        dump = self.dump()
        for s in th.STREAMS:
            statuses = [m["trace"]["stream_status"]["status"] for m in res.of_type("TRACE")
                        if m["trace"]["type"] == "STREAM_STATUS"
                        and m["trace"]["stream_status"]["stream_descriptor"]["name"] == s]
            self.assertEqual(statuses, ["STARTED", "RUNNING", "COMPLETE"], s)
            final = [st for st in res.states if st["stream"]["stream_descriptor"]["name"] == s]
            self.assertEqual(final[-1]["stream"]["stream_state"], {}, s)
        estimates = {m["trace"]["estimate"]["name"]: m["trace"]["estimate"]["row_estimate"]
                     for m in res.of_type("TRACE") if m["trace"]["type"] == "ESTIMATE"}
        self.assertEqual(estimates["pedidos"], len(dump["pedidos"]))
        self.assertEqual(estimates["contatos"], len(dump["contatos"]))
        self.assertEqual(estimates["produtos"], len(dump["produtos"]))
        self.assertNotIn("estoque", estimates)
        # orders carry their items, products their variations (and grids)
        self.assertTrue(all(o["itens"] for o in th.records(res.messages, "pedidos")))
        variations = [v for p in th.records(res.messages, "produtos") for v in p["variacoes"]]
        self.assertTrue(variations)
        self.assertTrue(all(v["grade"] for v in variations))
        self.assert_no_secret(res, cfg["client_secret"], th.RT0,
                              th.latest_config(res.messages, cfg)["refresh_token"])

    def test_incremental_second_run_moves_only_what_changed(self):
        cfg = th.config(self.srv, lookback_seconds=0)
        cat = th.catalog()
        res = self.run_src("read", cfg, cat, name="first")
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_equal_to_account(res)
        state = th.last_states(res.messages)
        cursors = {st["stream"]["stream_descriptor"]["name"]: st["stream"]["stream_state"]
                   for st in state}
        self.assertIn("cursor", cursors["pedidos"])
        time.sleep(1.1)
        touched = self.srv.post("/_admin/mutate", {"contatos": 4, "pedidos": 3, "produtos": 2,
                                                  "new_pedidos": 2, "stock": 3, "seed": 5})
        time.sleep(1.1)
        cfg = th.latest_config(res.messages, cfg)
        res = self.run_src("read", cfg, cat, state=state, name="second")
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_states_consistent(res)
        dump = self.dump()
        self.assertEqual(sorted(r["id"] for r in th.records(res.messages, "contatos")),
                         sorted(touched["contatos"]))
        self.assertEqual(sorted(r["id"] for r in th.records(res.messages, "pedidos")),
                         sorted(touched["pedidos"] + touched["new_pedidos"]))
        self.assertEqual(sorted(r["id"] for r in th.records(res.messages, "produtos")),
                         sorted(touched["produtos"]))
        self.assertEqual(sorted({r["produtoPai"]["id"]
                                 for r in th.records(res.messages, "variacoes")}),
                         sorted(p for p in touched["produtos"]
                                if th.expected(dump, "produtos")[p]["variacoes"]))
        # what moved is the changed content
        for s in ("contatos", "pedidos", "produtos", "variacoes"):
            want = th.expected(dump, s)
            for r in th.records(res.messages, s):
                self.assertEqual(r, want[r["id"]], s)
        # stock has no change filter: all of it again, with the new balances
        self.assert_equal_to_account(res, ("estoque",))
        # nothing changed: nothing moves, the cursors advance
        cfg = th.latest_config(res.messages, cfg)
        state = th.last_states(res.messages, state)
        res = self.run_src("read", cfg, th.catalog({"contatos": "incremental",
                                                    "pedidos": "incremental"}),
                           state=state, name="third")
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual(th.records(res.messages), [])


class Failures(TinyCase):
    def test_bad_catalog_and_state_are_config_errors(self):
        cfg = th.config(self.srv)
        self.assert_config_errors_before_any_request(cfg, (
            (th.catalog({"estoque": "incremental"}), None, "estoque"),
            (th.catalog({"notas": "full_refresh"}), None, "notas"),
            (th.catalog({"pedidos": "incremental"}),
             [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "pedidos"},
                                            "stream_state": {"cursor": "yesterday"}}}],
             "cursor")))

    def test_wrong_credentials_are_config_errors(self):
        for over, needle in (({"refresh_token": "rt-not-valid-000000"}, "invalid_grant"),
                             ({"client_secret": "not-the-secret"}, "invalid_client")):
            res = self.run_src("read", th.config(self.srv, **over), th.catalog(), name=needle)
            self.assert_read_failed(res, "config_error", needle)
            self.assert_no_secret(res, "rt-not-valid-000000", "not-the-secret")

    def test_5xx_resets_and_throttling_are_retried(self):
        res = self.read_through_faults({"seed": 11, "rate_503": 0.1, "rate_500": 0.05,
                                        "rate_reset": 0.05},
                                       th.config(self.srv, max_retries=8), th.catalog(), 5)
        self.assert_equal_to_account(res)

    def test_persistent_5xx_is_transient_error(self):
        self.srv.post("/_admin/faults", {"rate_503": 1.0})
        res = self.run_src("read", th.config(self.srv, max_retries=1),
                           th.catalog({"contatos": "incremental"}))
        self.assert_read_failed(res, "transient_error", "HTTP 503", "/contatos")
        statuses = [m["trace"]["stream_status"]["status"] for m in res.of_type("TRACE")
                    if m["trace"]["type"] == "STREAM_STATUS"]
        self.assertEqual(statuses[-1], "INCOMPLETE")

    def test_token_expiry_mid_sync(self):
        res = self.read_through_token_expiry(th.config(self.srv), th.catalog(), 0.05)
        self.assert_equal_to_account(res)


class RateLimit(TinyCase):
    emulator_args = {"contacts": 40, "products": 2, "orders": 2, "per_minute": 6}

    def test_429_waits_for_the_reset_the_answer_names(self):
        """Over the plan's reads per minute Tiny answers 429 with
        X-RateLimit-Reset: the retry waits that long, so one 429 is all the
        account sees (backing off on its own, the client would knock again
        and again within the minute)."""
        cfg = th.config(self.srv, requests_per_second=0, max_retries=3, page_size=5)
        res = self.run_src("read", cfg, th.catalog({"contatos": "full_refresh"}))
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_equal_to_account(res, ("contatos",))
        c = self.counters()
        self.assertEqual(c.get("rate_limited"), 1, c)
        summary = [m for m in res.logs() if m.startswith("tiny: ")][-1]
        self.assertIn(" 1 throttled", summary)


class Crashes(TinyCase):
    emulator_args = {"contacts": 200, "products": 10, "orders": 30}

    def test_crash_right_after_a_refresh_loses_nothing(self):
        """The API holds every request made with the new token; by then the
        CONTROL with the new refresh token must already be on stdout. The
        source is killed there: the config from that CONTROL carries on, the
        old one is dead."""
        cat = th.catalog({"contatos": "incremental"})
        new_cfg = self.read_killed_right_after_a_refresh(th.config(self.srv), cat)
        # the one from the CONTROL reads everything
        res = self.run_src("read", new_cfg, cat, name="new")
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_equal_to_account(res, ("contatos",))

    def test_sigkill_mid_stream_then_resume_from_state(self):
        cfg = th.config(self.srv, page_size=10, requests_per_second=100)
        for mode in ("incremental", "full_refresh"):
            self.srv.post("/_admin/reset")
            cat = th.catalog({"contatos": mode})
            first, second, state, cfg = self.read_killed_then_resumed(cfg, cat, mode)
            resume = state[0]["stream"]["stream_state"]["resume"]
            self.assertGreaterEqual(resume["offset"], 50)
            # everything, and the second run began where the first stopped
            got = {r["id"] for r in th.records(first.messages) + th.records(second.messages)}
            self.assertEqual(got, {c["id"] for c in self.dump()["contatos"]}, mode)
            self.assertEqual(len(th.records(second.messages)), 200 - resume["offset"], mode)
            cfg = th.latest_config(second.messages, cfg)
            cfg["refresh_token"] = th.RT0  # the next loop resets the account


if __name__ == "__main__":
    lib.main(__doc__)
