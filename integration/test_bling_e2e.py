#!/usr/bin/env python3
"""source-bling against the Bling emulator: spec, check, discover, full and
incremental reads equal to what the account holds, bad config and state,
5xx and 429 retries, token expiry mid-sync, refresh-token rotation (the
CONTROL message reaches stdout before the new token is used; a SIGKILL right
after a refresh loses nothing) and resumption mid-stream after a SIGKILL.

    python3 integration/test_bling_e2e.py --bin build/gcc/sources/bling/source-bling
"""
import calendar
import time

import bling_helpers as bh
import lib


class BlingCase(lib.SourceCase):
    workdir_prefix = "ab-bling-"

    def start_emulator(self, **kw):
        return bh.emulator(**kw)

    def assert_equal_to_account(self, res, streams=bh.STREAMS):
        dump = self.dump()
        for s in streams:
            got = bh.records(res.messages, s)
            key = (lambda r: r["produto"]["id"]) if s == "estoques" else (lambda r: r["id"])
            self.assertEqual(len(got), len({key(r) for r in got}), "duplicates in " + s)
            self.assertEqual(sorted(got, key=key),
                             sorted((bh.public(r) for r in dump[s]), key=key), s)


class Commands(BlingCase):
    def test_spec(self):
        res = lib.run_connector(lib.binary(), ["spec"], self.wd)
        self.assertEqual(res.rc, 0, res.describe())
        props = res.of_type("SPEC")[0]["spec"]["connectionSpecification"]["properties"]
        for k in ("client_id", "client_secret", "refresh_token", "start_date", "window_days",
                  "requests_per_second"):
            self.assertIn(k, props)
        self.assertTrue(props["refresh_token"]["airbyte_secret"])
        self.assertEqual(props["requests_per_second"]["default"], 3)

    def test_check_rotates_the_token_and_says_so_first(self):
        cfg = bh.config(self.srv)
        new = self.check_rotating(cfg)
        # one read per stream (produtos and variacoes both list /produtos),
        # estoques with a product id
        paths = self.counters()
        for p, n in (("path./contatos", 1), ("path./pedidos/vendas", 1), ("path./produtos", 2),
                     ("path./estoques/saldos", 1)):
            self.assertEqual(paths.get(p), n, p)
        self.assert_only_the_rotated_token_works(cfg, new)

    def test_check_wrong_client_secret(self):
        cfg = bh.config(self.srv, client_secret="not-the-secret")
        self.check_failed(cfg, ("credentials", "HTTP 401"), ("not-the-secret", bh.RT0))

    def test_check_bad_config(self):
        cfg = bh.config(self.srv, api_url="http://example.com/Api/v3", start_date="2024-13-45",
                        refresh_token="short")
        message = self.check_failed(cfg, ("refresh_token",))
        self.assertNotIn("short", message)

    def test_discover(self):
        res = self.run_src("discover", bh.config(self.srv))
        self.assertEqual(res.rc, 0, res.describe())
        streams = {s["name"]: s for s in res.of_type("CATALOG")[0]["catalog"]["streams"]}
        self.assertEqual(sorted(streams), sorted(bh.STREAMS))
        self.assertEqual(streams["pedidos"]["source_defined_primary_key"], [["id"]])
        self.assertEqual(streams["estoques"]["source_defined_primary_key"], [["produto", "id"]])
        self.assertEqual(streams["estoques"]["supported_sync_modes"], ["full_refresh"])
        self.assertIn("itens", streams["pedidos"]["json_schema"]["properties"])
        self.assertIn("variacoes", streams["produtos"]["json_schema"]["properties"])
        self.assertIn("variacao", streams["variacoes"]["json_schema"]["properties"])
        self.assertEqual(streams["variacoes"]["source_defined_primary_key"], [["id"]])
        self.assertEqual(self.counters().get("api_requests"), None)


class Reads(BlingCase):
    def test_full_read_equals_the_account(self):
        cfg = bh.config(self.srv)
        res = self.run_src("read", cfg, bh.catalog({s: "full_refresh" for s in bh.STREAMS}))
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_equal_to_account(res)
        self.assert_states_consistent(res)
        for s in bh.STREAMS:
            statuses = [m["trace"]["stream_status"]["status"] for m in res.of_type("TRACE")
                        if m["trace"]["type"] == "STREAM_STATUS"
                        and m["trace"]["stream_status"]["stream_descriptor"]["name"] == s]
            self.assertEqual(statuses, ["STARTED", "RUNNING", "COMPLETE"], s)
            final = [st for st in res.states if st["stream"]["stream_descriptor"]["name"] == s]
            self.assertEqual(final[-1]["stream"]["stream_state"], {}, s)
        # one ESTIMATE per stream, before its records: the length of its list
        # (produtos: its variations too, which come inside their parents)
        for s in bh.STREAMS:
            idx = [i for i, m in enumerate(res.messages) if m["type"] == "TRACE"
                   and m["trace"]["type"] == "ESTIMATE"
                   and m["trace"]["estimate"]["name"] == s]
            self.assertEqual(len(idx), 1, s)
            est = res.messages[idx[0]]["trace"]["estimate"]
            self.assertEqual(est["type"], "STREAM")
            n = len(bh.records(res.messages, s))
            if s == "produtos":
                n += len(bh.records(res.messages, "variacoes"))
            self.assertEqual(est["row_estimate"], n, s)
            first = min(i for i, m in enumerate(res.messages) if m["type"] == "RECORD"
                        and m["record"]["stream"] == s)
            self.assertLess(idx[0], first, s)
        # every record says the window it was read in (a full read: the run's start)
        ends = {r["_ab_window_end"] for r in bh.records(res.messages, raw=True)}
        self.assertEqual(len(ends), 1)
        self.assertRegex(ends.pop(), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        # orders carry their items, products their variations
        orders = bh.records(res.messages, "pedidos")
        self.assertTrue(all(o["itens"] for o in orders))
        self.assertTrue(any(p.get("variacoes") for p in bh.records(res.messages, "produtos")))
        # each variation on its own, naming its parent, which holds it too
        parents = {p["id"]: p for p in bh.records(res.messages, "produtos")}
        variations = bh.records(res.messages, "variacoes")
        self.assertTrue(variations)
        for v in variations:
            parent = parents[v["variacao"]["produtoPai"]["id"]]
            self.assertIn(v, parent["variacoes"])
        self.assertEqual(len(variations), sum(len(p.get("variacoes", [])) for p in parents.values()))
        self.assert_no_secret(res, cfg["client_secret"], bh.RT0,
                              bh.latest_config(res.messages, cfg)["refresh_token"])

    def test_incremental_second_run_moves_only_what_changed(self):
        cfg = bh.config(self.srv, lookback_seconds=0)
        cat = bh.catalog()
        res = self.run_src("read", cfg, cat, name="first")
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_equal_to_account(res)
        state = bh.last_states(res.messages)
        cursors = {st["stream"]["stream_descriptor"]["name"]: st["stream"]["stream_state"]
                   for st in state}
        self.assertIn("cursor", cursors["pedidos"])
        time.sleep(1.1)
        touched = self.srv.post("/_admin/mutate", {"contatos": 4, "pedidos": 3, "produtos": 2,
                                                  "new_pedidos": 2, "seed": 5})
        time.sleep(1.1)
        cfg = bh.latest_config(res.messages, cfg)
        res = self.run_src("read", cfg, cat, state=state, name="second")
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_states_consistent(res)
        dump = self.dump()
        self.assertEqual(sorted(r["id"] for r in bh.records(res.messages, "contatos")),
                         sorted(touched["contatos"]))
        self.assertEqual(sorted(r["id"] for r in bh.records(res.messages, "pedidos")),
                         sorted(touched["pedidos"] + touched["new_pedidos"]))
        self.assertEqual(sorted(r["id"] for r in bh.records(res.messages, "produtos")),
                         sorted(touched["produtos"]))
        self.assertEqual(sorted(r["id"] for r in bh.records(res.messages, "variacoes")),
                         sorted(touched["variacoes"]))
        self.assertTrue(touched["variacoes"])
        # what moved is the changed content
        by_id = {o["id"]: bh.public(o) for o in dump["pedidos"]}
        for o in bh.records(res.messages, "pedidos"):
            self.assertEqual(o, by_id[o["id"]])
        # stock has no change filter: all of it again
        self.assertEqual(len(bh.records(res.messages, "estoques")), len(dump["estoques"]))
        # nothing changed: nothing moves, the cursors advance
        cfg = bh.latest_config(res.messages, cfg)
        state = bh.last_states(res.messages, state)
        res = self.run_src("read", cfg, bh.catalog({"contatos": "incremental",
                                                    "pedidos": "incremental"}),
                           state=state, name="third")
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual(bh.records(res.messages), [])

    def test_start_date_windows(self):
        """A start date 200 days back with 30-day windows: several windows,
        a state after each, and exactly the records changed since then."""
        start = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 200 * 86400))
        cfg = bh.config(self.srv, start_date=start, window_days=30)
        res = self.run_src("read", cfg, bh.catalog({"pedidos": "incremental"}))
        self.assertEqual(res.rc, 0, res.describe())
        t0 = calendar.timegm(time.strptime(start, "%Y-%m-%d")) + 3 * 3600  # Brazil midnight
        expect = sorted(o["id"] for o in self.dump()["pedidos"] if o["_mtime"] >= t0)
        self.assertEqual(sorted(r["id"] for r in bh.records(res.messages)), expect)
        self.assertGreaterEqual(len(res.states), 7)
        self.assert_states_consistent(res)


class Failures(BlingCase):
    def test_bad_catalog_and_state_are_config_errors(self):
        cfg = bh.config(self.srv)
        self.assert_config_errors_before_any_request(cfg, (
            (bh.catalog({"estoques": "incremental"}), None, "estoques"),
            (bh.catalog({"nfe": "full_refresh"}), None, "nfe"),
            (bh.catalog({"pedidos": "incremental"}),
             [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "pedidos"},
                                            "stream_state": {"cursor": "yesterday"}}}],
             "cursor")))

    def test_wrong_client_secret_is_a_config_error(self):
        cfg = bh.config(self.srv, client_secret="not-the-secret-000")
        res = self.run_src("read", cfg, bh.catalog())
        self.assert_read_failed(res, "config_error", "invalid_client")
        self.assertEqual(self.counters().get("api_requests"), None)
        self.assert_no_secret(res, "not-the-secret-000", bh.RT0)

    def test_dead_refresh_token_is_a_config_error(self):
        cfg = bh.config(self.srv, refresh_token="rt-not-valid-000000")
        res = self.run_src("read", cfg, bh.catalog())
        self.assert_read_failed(res, "config_error", "invalid_grant", "authorize")

    def test_5xx_resets_and_throttling_are_retried(self):
        res = self.read_through_faults({"seed": 11, "rate_503": 0.1, "rate_500": 0.05,
                                        "rate_reset": 0.05, "rate_429": 0.05},
                                       bh.config(self.srv, max_retries=8), bh.catalog(), 5)
        self.assert_equal_to_account(res)

    def test_persistent_5xx_is_transient_error(self):
        self.srv.post("/_admin/faults", {"rate_503": 1.0})
        res = self.run_src("read", bh.config(self.srv, max_retries=1),
                           bh.catalog({"contatos": "incremental"}))
        self.assert_read_failed(res, "transient_error", "HTTP 503", "SERVER_ERROR")

    def test_token_expiry_mid_sync(self):
        res = self.read_through_token_expiry(bh.config(self.srv), bh.catalog(), 0.03)
        self.assert_equal_to_account(res)


class DailyQuota(BlingCase):
    emulator_args = {"contacts": 30, "products": 4, "orders": 10,
                     "extra": ["--daily-quota", "12"]}

    def test_the_daily_quota_ends_the_run_as_transient_error(self):
        """Over the quota every request answers 429 until the next day:
        retries spent, the run ends as a transient_error quoting Bling, after
        the states of what was read (a later run resumes there)."""
        cfg = bh.config(self.srv, page_size=5, max_retries=2)
        res = self.run_src("read", cfg, bh.catalog({"contatos": "full_refresh"}))
        self.assertEqual(res.rc, 1, res.describe())
        self.assertEqual(res.errors[0]["failure_type"], "transient_error")
        self.assertIn("HTTP 429", res.errors[0]["message"])
        self.assertIn("TOO_MANY_REQUESTS", res.errors[0]["message"])
        self.assertIn("diário", res.errors[0]["message"])
        c = self.counters()
        self.assertEqual(c["quota_exceeded"], 3)  # the request and its 2 retries
        # 12 requests: page 1, pages 2, 4, 8, 6, 7 (the list's end: 30
        # contacts), 5 details, page 2; the states cover what was read
        est = [m["trace"]["estimate"]["row_estimate"] for m in res.of_type("TRACE")
               if m["trace"]["type"] == "ESTIMATE"]
        self.assertEqual(est, [30])
        self.assert_states_consistent(res)
        resume = bh.last_states(res.messages)[0]["stream"]["stream_state"]["resume"]
        self.assertEqual(resume["page"], 2)
        self.assertEqual(len(bh.records(res.messages)), 5)


class RateLimit(BlingCase):
    emulator_args = {"contacts": 15, "products": 4, "orders": 10, "rate": 3}

    def test_the_default_rate_never_trips_the_limit(self):
        cfg = bh.config(self.srv)
        del cfg["requests_per_second"]  # the spec's default: Bling's 3/s
        t0 = time.monotonic()
        res = self.run_src("read", cfg, bh.catalog({"contatos": "full_refresh",
                                                    "pedidos": "full_refresh"}))
        wall = time.monotonic() - t0
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_equal_to_account(res, ("contatos", "pedidos"))
        c = self.counters()
        self.assertEqual(c.get("rate_limited", 0), 0)
        self.assertGreaterEqual(wall, (c["api_requests"] - 3) / 3.0)

    def test_over_the_limit_429_is_retried(self):
        cfg = bh.config(self.srv, requests_per_second=0, max_retries=10)
        res = self.run_src("read", cfg, bh.catalog({"contatos": "full_refresh"}))
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_equal_to_account(res, ("contatos",))
        self.assertGreater(self.counters().get("rate_limited", 0), 0)
        summary = [m for m in res.logs() if m.startswith("bling: ")][-1]
        self.assertNotRegex(summary, r"\b0 throttled")


class Crashes(BlingCase):
    emulator_args = {"contacts": 200, "products": 10, "orders": 30}

    def test_crash_right_after_a_refresh_loses_nothing(self):
        """The API holds every request made with the new token; by then the
        CONTROL with the new refresh token must already be on stdout. The
        source is killed there: the config from that CONTROL carries on, the
        old one is dead."""
        cat = bh.catalog({"contatos": "incremental"})
        new_cfg = self.read_killed_right_after_a_refresh(bh.config(self.srv), cat)
        # the one from the CONTROL reads everything
        res = self.run_src("read", new_cfg, cat, name="new")
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_equal_to_account(res, ("contatos",))

    def test_sigkill_mid_stream_then_resume_from_state(self):
        cfg = bh.config(self.srv, page_size=10, requests_per_second=100)
        for mode in ("incremental", "full_refresh"):
            self.srv.post("/_admin/reset")
            cat = bh.catalog({"contatos": mode})
            first, second, state, cfg = self.read_killed_then_resumed(cfg, cat, mode)
            resume = state[0]["stream"]["stream_state"]["resume"]
            self.assertGreaterEqual(resume["page"], 5)
            # everything, and the second run began where the first stopped
            got = {r["id"] for r in bh.records(first.messages) + bh.records(second.messages)}
            self.assertEqual(got, {c["id"] for c in self.dump()["contatos"]}, mode)
            self.assertLessEqual(len(bh.records(second.messages)),
                                 200 - (resume["page"] - 1) * 10, mode)
            cfg = bh.latest_config(second.messages, cfg)
            cfg["refresh_token"] = bh.RT0  # the next loop resets the account


if __name__ == "__main__":
    lib.main(__doc__)
