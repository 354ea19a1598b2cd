#!/usr/bin/env python3
"""source-totvs-moda against the TOTVS Moda emulator: spec, check, discover,
full and incremental reads equal to what the environment holds, bad config,
wrong credentials, 5xx, resets and 429 retried, the rate limit, token expiry
mid-sync and resumption mid-stream after a SIGKILL.

    python3 integration/test_totvs_e2e.py --bin build/gcc/sources/totvs-moda/source-totvs-moda
"""
import time

import lib
import totvs_helpers as th


class TotvsCase(lib.SourceCase):
    workdir_prefix = "ab-totvs-"

    def start_emulator(self, **kw):
        return th.emulator(**kw)

    def assert_no_secret(self, res, *secrets):
        """TOTVS Moda's source writes no CONTROL message: nowhere at all."""
        self.assertEqual(res.of_type("CONTROL"), [])
        super().assert_no_secret(res, *secrets)

    def assert_equal_to_environment(self, res, streams=th.STREAMS, cfg=None):
        dump = self.dump()
        branches = tuple((cfg or {}).get("branch_codes", (1, 2, 3)))
        for s in streams:
            got = th.records(res.messages, s)
            keys = [th.key(s, r) for r in got]
            self.assertEqual(len(keys), len(set(keys)), "duplicates in " + s)
            want = th.expected(dump, s, branches)
            if s == "balances":
                got = {th.key(s, r): [(b["branchCode"], b["stockCode"], b["stock"],
                                       b["salesOrder"]) for b in r["balances"]] for r in got}
                self.assertEqual(got, want, s)
                continue
            self.assertEqual(sorted(keys), sorted(want), s)
            for r in got:
                self.assertEqual(r, want[th.key(s, r)], s)


class Commands(TotvsCase):
    def test_spec(self):
        res = lib.run_connector(lib.binary(), ["spec"], self.wd)
        self.assertEqual(res.rc, 0, res.describe())
        props = res.of_type("SPEC")[0]["spec"]["connectionSpecification"]["properties"]
        for k in ("api_url", "client_id", "client_secret", "username", "password",
                  "branch_codes", "stock_codes", "price_codes", "start_date", "page_size",
                  "requests_per_second"):
            self.assertIn(k, props)
        self.assertTrue(props["password"]["airbyte_secret"])
        self.assertTrue(props["client_secret"]["airbyte_secret"])

    def test_check_reads_each_stream(self):
        cfg = th.config(self.srv)
        res = self.run_src("check", cfg)
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual(self.connection_status(res)["status"],
                         "SUCCEEDED")
        c = self.counters()
        for path in ("/person/v2/individuals/search", "/person/v2/legal-entities/search",
                     "/sales-order/v2/orders/search", "/product/v2/references/search",
                     "/product/v2/products/search", "/product/v2/balances/search"):
            self.assertEqual(c.get("path." + path), 1, path)
        self.assertEqual(c.get("tokens_issued"), 1)
        self.assert_no_secret(res, th.PASSWORD, th.SECRET)

    def test_check_wrong_credentials(self):
        for over, needle in (({"password": "not-the-password"}, "invalid_grant"),
                             ({"client_secret": "not-the-secret"}, "invalid_client")):
            self.check_failed(th.config(self.srv, **over), ("credentials", needle),
                              tuple(over.values()), name=needle)

    def test_check_bad_config(self):
        cfg = th.config(self.srv, api_url=self.srv.url + "/api/", password="short",
                        branch_codes=[])
        message = self.check_failed(cfg, ("password", "api_url", "branch_codes"))
        self.assertNotIn("short", message.replace("password", ""))
        self.assertEqual(self.counters().get("tokens_issued"), None)

    def test_discover(self):
        res = self.run_src("discover", th.config(self.srv))
        self.assertEqual(res.rc, 0, res.describe())
        streams = {s["name"]: s for s in res.of_type("CATALOG")[0]["catalog"]["streams"]}
        self.assertEqual(sorted(streams), sorted(th.STREAMS))
        self.assertEqual(streams["sales_orders"]["source_defined_primary_key"],
                         [["branchCode"], ["orderCode"]])
        for s in streams.values():
            self.assertEqual(s["default_cursor_field"], ["maxChangeFilterDate"])
            self.assertEqual(s["supported_sync_modes"], ["full_refresh", "incremental"])
        self.assertIn("items", streams["sales_orders"]["json_schema"]["properties"])
        self.assertIn("_ab_collection", streams["products"]["json_schema"]["properties"])
        self.assertEqual(self.counters().get("api_requests"), None)


class Reads(TotvsCase):
    def test_full_read_equals_the_environment(self):
        cfg = th.config(self.srv)
        res = self.run_src("read", cfg, th.catalog({s: "full_refresh" for s in th.STREAMS}))
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_equal_to_environment(res)
        self.assert_states_consistent(res)
        traces = res.of_type("TRACE")
        for s in th.STREAMS:
            statuses = [m["trace"]["stream_status"]["status"] for m in traces
                        if m["trace"]["type"] == "STREAM_STATUS"
                        and m["trace"]["stream_status"]["stream_descriptor"]["name"] == s]
            self.assertEqual(statuses, ["STARTED", "RUNNING", "COMPLETE"], s)
            estimates = [m["trace"]["estimate"] for m in traces if m["trace"]["type"] == "ESTIMATE"
                         and m["trace"]["estimate"]["name"] == s]
            self.assertEqual(len(estimates), 1, s)
            self.assertEqual(estimates[0]["row_estimate"], len(th.records(res.messages, s)), s)
            final = [st for st in res.states if st["stream"]["stream_descriptor"]["name"] == s]
            self.assertEqual(final[-1]["stream"]["stream_state"], {}, s)
        # the grid: every SKU of a reference is one of its colours x sizes
        refs = {r["referenceCode"]: r for r in th.records(res.messages, "references")}
        for p in th.records(res.messages, "products"):
            ref = refs[p["referenceCode"]]
            self.assertIn(p["size"], ref["sizes"])
            self.assertIn(p["colorCode"], [c["colorCode"] for c in ref["colors"]])
            self.assertEqual(p["_ab_collection"]["type"], 1)
        self.assert_no_secret(res, th.PASSWORD, th.SECRET)

    def test_branches_limit_the_orders(self):
        cfg = th.config(self.srv, branch_codes=[2], stock_codes=[1, 3])
        res = self.run_src("read", cfg, th.catalog({"sales_orders": "incremental",
                                                    "balances": "full_refresh"}))
        self.assertEqual(res.rc, 0, res.describe())
        orders = th.records(res.messages, "sales_orders")
        self.assertTrue(orders)
        self.assertEqual({o["branchCode"] for o in orders}, {2})
        self.assert_equal_to_environment(res, ("sales_orders",), cfg)
        for b in th.records(res.messages, "balances"):
            self.assertEqual([(x["branchCode"], x["stockCode"]) for x in b["balances"]],
                             [(2, 1), (2, 3)])

    def test_incremental_second_run_moves_only_what_changed(self):
        cfg = th.config(self.srv, lookback_seconds=0)
        cat = th.catalog()
        res = self.run_src("read", cfg, cat, name="first")
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_equal_to_environment(res)
        state = th.last_states(res.messages)
        for st in state:
            self.assertIn("cursor", st["stream"]["stream_state"])
            self.assertNotIn("page", st["stream"]["stream_state"])
        time.sleep(1.1)
        touched = self.srv.post("/_admin/mutate", {"individuals": 4, "orders": 3,
                                                  "new_orders": 2, "products": 1,
                                                  "references": 2, "stock": 5, "seed": 5})
        time.sleep(1.1)
        res = self.run_src("read", cfg, cat, state=state, name="second")
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_states_consistent(res)
        moved = {s: sorted(th.key(s, r) for r in th.records(res.messages, s)) for s in th.STREAMS}
        self.assertEqual(moved["individuals"], sorted((c,) for c in touched["individuals"]))
        self.assertEqual(moved["legal_entities"], [])
        self.assertEqual(moved["sales_orders"],
                         sorted(tuple(k) for k in touched["orders"] + touched["new_orders"]))
        self.assertEqual(moved["products"], sorted((c,) for c in touched["products"]))
        self.assertEqual(moved["references"], sorted((c,) for c in touched["references"]))
        self.assertEqual(moved["balances"], sorted((c,) for c in touched["stock"]))
        # what moved is the changed content
        dump = self.dump()
        want = th.expected(dump, "sales_orders")
        for o in th.records(res.messages, "sales_orders"):
            self.assertEqual(o, want[th.key("sales_orders", o)])
        # nothing changed: nothing moves
        state = th.last_states(res.messages, state)
        res = self.run_src("read", cfg, cat, state=state, name="third")
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual(th.records(res.messages), [])

    def test_many_changes_in_one_second(self):
        """45 persons changed in the same second, pages of 10: whole pages
        share one change time, the read pages on within it; each changed
        person once, nothing else."""
        cfg = th.config(self.srv, lookback_seconds=0, page_size=10)
        cat = th.catalog({"individuals": "incremental"})
        res = self.run_src("read", cfg, cat, name="first")
        self.assertEqual(res.rc, 0, res.describe())
        state = th.last_states(res.messages)
        time.sleep(1.1)
        touched = self.srv.post("/_admin/mutate", {"individuals": 45, "seed": 2})
        time.sleep(1.1)
        res = self.run_src("read", cfg, cat, state=state, name="second")
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_states_consistent(res)
        got = [r["code"] for r in th.records(res.messages)]
        self.assertEqual(sorted(got), sorted(touched["individuals"]))
        pages = [m["state"]["stream"]["stream_state"].get("page", 1) for m in res.messages
                 if m["type"] == "STATE"]
        self.assertGreater(max(pages), 1, "no page within one second")

    def test_start_date(self):
        dump = self.dump()
        t0 = sorted(p["_mtime"] for p in dump["individuals"])[30]
        day = time.strftime("%Y-%m-%d", time.gmtime(t0 - 3 * 3600))
        cfg = th.config(self.srv, start_date=day)
        res = self.run_src("read", cfg, th.catalog({"individuals": "incremental"}))
        self.assertEqual(res.rc, 0, res.describe())
        midnight = time.mktime(time.strptime(day, "%Y-%m-%d")) - time.timezone + 3 * 3600
        want = sorted(p["code"] for p in dump["individuals"] if p["_mtime"] >= midnight)
        self.assertEqual(sorted(r["code"] for r in th.records(res.messages)), want)
        self.assertLess(len(want), len(dump["individuals"]))


class Failures(TotvsCase):
    def test_bad_catalog_and_state_are_config_errors(self):
        cfg = th.config(self.srv)
        self.assert_config_errors_before_any_request(cfg, (
            (th.catalog({"invoices": "full_refresh"}), None, "invoices"),
            (th.catalog({"sales_orders": "incremental"}),
             [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "sales_orders"},
                                            "stream_state": {"cursor": "yesterday"}}}],
             "cursor")))

    def test_wrong_password_is_a_config_error(self):
        cfg = th.config(self.srv, password="not-the-password")
        res = self.run_src("read", cfg, th.catalog())
        self.assert_read_failed(res, "config_error", "invalid_grant")
        self.assert_no_secret(res, "not-the-password", th.SECRET)

    def test_5xx_resets_and_throttling_are_retried(self):
        res = self.read_through_faults({"seed": 11, "rate_503": 0.1, "rate_500": 0.05,
                                        "rate_reset": 0.05, "rate_429": 0.05},
                                       th.config(self.srv, max_retries=8), th.catalog(), 3)
        self.assert_equal_to_environment(res)

    def test_persistent_5xx_is_transient_error(self):
        self.srv.post("/_admin/faults", {"rate_503": 1.0})
        res = self.run_src("read", th.config(self.srv, max_retries=1),
                           th.catalog({"individuals": "incremental"}))
        self.assert_read_failed(res, "transient_error", "HTTP 503", "InternalError")

    def test_an_unsorted_answer_stops_the_read(self):
        # an API that ignores "order": reading on by change time could skip
        # records, so the read stops with a system error naming the item
        self.srv.post("/_admin/quirks", {"ignore_order": True})
        res = self.run_src("read", th.config(self.srv, page_size=50),
                           th.catalog({"individuals": "incremental"}))
        self.assert_read_failed(res, "system_error", "out of \"maxChangeFilterDate\" order",
                                "individuals")

    def test_token_expiry_mid_sync(self):
        # a token refused right after its renewal fails the request (credentials
        # that do not hold); the seeded draws here never hit one twice in a row
        self.srv.post("/_admin/faults", {"seed": 3, "rate_token_expire": 0.05})
        cfg = th.config(self.srv)
        res = self.run_src("read", cfg, th.catalog())
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_equal_to_environment(res)
        c = self.counters()
        self.assertGreater(c["fault.token_expire"], 0)
        self.assertEqual(c["tokens_issued"], c["fault.token_expire"] + 1)


class HubCase(TotvsCase):
    """Through the API Hub emulator (hub_args for th.hub_emulator())."""
    hub_args = {}

    def start_emulator(self, **kw):
        return th.hub_emulator(**dict(self.hub_args, **kw))

    def wrong_or_missing_key_fails(self, needles, header=None):
        """With a wrong key (in header), and with none: a check fails naming
        needles["wrong"|"missing"], a read is a config_error before any
        record; no key, password or client secret in their output."""
        wrong = "not-the-hub-key-0123"
        secrets = (wrong, th.HUB_KEY, th.PASSWORD, th.SECRET)
        for name, cfg in (("wrong", th.hub_config(self.srv, key=wrong, header=header)),
                          ("missing", th.config(self.srv, api_url=self.srv.url + th.HUB_PREFIX))):
            self.check_failed(cfg, needles[name], secrets, name="check-" + name)
            res = self.run_src("read", cfg, th.catalog({"individuals": "incremental"}),
                               name="read-" + name)
            self.assert_read_failed(res, "config_error")
            self.assertEqual(th.records(res.messages), [], name)
            self.assert_no_secret(res, *secrets)

    def assert_key_hidden(self, res):
        """Not in the output, nor in any file of the run but its config."""
        self.assert_no_secret(res, th.HUB_KEY, th.PASSWORD, th.SECRET)
        for path in self.wd.files():
            if not path.endswith(".config.json"):
                with open(path, "rb") as f:
                    self.assertNotIn(th.HUB_KEY.encode(), f.read(), path)


class ApiHub(HubCase):
    """The key on every request, the token request too; a missing or wrong
    key answers 401 before the token is looked at."""

    def test_spec_declares_the_hub(self):
        res = lib.run_connector(lib.binary(), ["spec"], self.wd)
        self.assertEqual(res.rc, 0, res.describe())
        auth = res.of_type("SPEC")[0]["spec"]["connectionSpecification"]["properties"][
            "authentication"]
        self.assertEqual(auth["default"], {"mode": "direct"})
        modes = {b["properties"]["mode"]["const"]: b for b in auth["oneOf"]}
        self.assertEqual(sorted(modes), ["api_hub", "direct"])
        key = modes["api_hub"]["properties"]["api_key"]
        self.assertTrue(key["airbyte_secret"])
        self.assertGreaterEqual(key["minLength"], 8)
        self.assertIn("api_key", modes["api_hub"]["required"])
        self.assertEqual(modes["api_hub"]["properties"]["api_key_header"]["default"], "x-api-key")

    def test_check_discover_read_with_the_key(self):
        cfg = th.hub_config(self.srv, log_level="DEBUG")
        res = self.run_src("check", cfg, name="check")
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual(self.connection_status(res)["status"],
                         "SUCCEEDED", res.describe())
        self.assert_key_hidden(res)
        res = self.run_src("discover", cfg, name="discover")
        self.assertEqual(res.rc, 0, res.describe())
        streams = res.of_type("CATALOG")[0]["catalog"]["streams"]
        self.assertEqual(sorted(s["name"] for s in streams), sorted(th.STREAMS))
        self.assert_key_hidden(res)
        res = self.run_src("read", cfg, th.catalog({s: "full_refresh" for s in th.STREAMS}))
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_equal_to_environment(res)
        self.assert_states_consistent(res)
        self.assert_key_hidden(res)
        c = self.counters()
        self.assertEqual(c.get("hub_refused", 0), 0)
        self.assertGreater(c.get("api_requests", 0), len(th.STREAMS))
        # an incremental run through the Hub, then one that moves only what changed
        cat = th.catalog()
        first = self.run_src("read", th.hub_config(self.srv, lookback_seconds=0), cat,
                             name="first")
        self.assertEqual(first.rc, 0, first.describe())
        time.sleep(1.1)
        touched = self.srv.post("/_admin/mutate", {"individuals": 3, "seed": 4})
        time.sleep(1.1)
        second = self.run_src("read", th.hub_config(self.srv, lookback_seconds=0), cat,
                              state=th.last_states(first.messages), name="second")
        self.assertEqual(second.rc, 0, second.describe())
        self.assertEqual(sorted(r["code"] for r in th.records(second.messages, "individuals")),
                         sorted(touched["individuals"]))
        self.assert_key_hidden(second)

    def test_wrong_or_missing_key_is_a_config_error(self):
        self.wrong_or_missing_key_fails({"wrong": ("HTTP 401", "authentication.api_key"),
                                         "missing": ("HTTP 401",)})
        c = self.counters()
        self.assertGreaterEqual(c.get("hub_refused", 0), 4)
        self.assertEqual(c.get("tokens_issued", 0), 0)
        self.assertEqual(c.get("api_requests", 0), 0)

    def test_a_key_for_a_direct_environment_is_refused_there(self):
        """A direct environment does not take the Hub's paths: the wrong
        api_url is a config_error, not a read of nothing."""
        self.srv.stop()
        self.srv = th.emulator().start()
        res = self.run_src("check", th.hub_config(self.srv))
        status = self.connection_status(res)
        self.assertEqual(status["status"], "FAILED")
        self.assertIn("404", status["message"])
        self.assert_no_secret(res, th.HUB_KEY)


class ApiHubOpenToken(HubCase):
    """A Hub whose token endpoint takes no key, answering 403 to a search
    without the right key in a header of another name."""
    HEADER = "X-Gateway-Key"
    hub_args = {"status": 403, "header": HEADER, "open_token": True}

    def test_check_discover_read_with_the_key(self):
        self.assertRaises(AssertionError, self.run_check, th.hub_config(self.srv))
        self.run_check(th.hub_config(self.srv, header=self.HEADER))

    def run_check(self, cfg):
        res = self.run_src("check", cfg)
        self.assertEqual(self.connection_status(res)["status"],
                         "SUCCEEDED", res.describe())
        res = self.run_src("read", cfg, th.catalog({s: "full_refresh" for s in th.STREAMS}))
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_equal_to_environment(res)
        self.assert_key_hidden(res)

    def test_wrong_or_missing_key_is_a_config_error(self):
        streams = tuple("stream '%s'" % s for s in th.STREAMS)
        self.wrong_or_missing_key_fails({"wrong": streams + ("HTTP 403", "InvalidApiKey"),
                                         "missing": streams + ("HTTP 403", "ApiKeyRequired")},
                                        header=self.HEADER)
        self.assertEqual(self.counters().get("api_requests", 0), 0)


class Lifetime(TotvsCase):
    emulator_args = {"persons": 40, "references": 2, "orders": 5,
                     "extra": ["--access-ttl", "2"]}

    def test_tokens_are_renewed_before_they_expire(self):
        cfg = th.config(self.srv, page_size=2, requests_per_second=4)
        res = self.run_src("read", cfg, th.catalog({"individuals": "full_refresh"}))
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_equal_to_environment(res, ("individuals",))
        c = self.counters()
        self.assertGreaterEqual(c["tokens_issued"], 3)
        self.assertEqual(c.get("unauthorized", 0), 0)


class RateLimit(TotvsCase):
    emulator_args = {"persons": 60, "references": 2, "orders": 5, "rate": 3}

    def test_over_the_limit_429_is_retried(self):
        cfg = th.config(self.srv, requests_per_second=0, max_retries=10, page_size=5)
        res = self.run_src("read", cfg, th.catalog({"individuals": "full_refresh"}))
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_equal_to_environment(res, ("individuals",))
        self.assertGreater(self.counters().get("rate_limited", 0), 0)
        summary = [m for m in res.logs() if m.startswith("totvs: ")][-1]
        self.assertNotRegex(summary, r"\b0 throttled")

    def test_a_rate_under_the_limit_never_trips_it(self):
        cfg = th.config(self.srv, requests_per_second=2.5, page_size=5)
        res = self.run_src("read", cfg, th.catalog({"individuals": "full_refresh"}))
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual(self.counters().get("rate_limited", 0), 0)


class Crashes(TotvsCase):
    emulator_args = {"persons": 300, "references": 2, "orders": 5}

    def test_sigkill_mid_stream_then_resume_from_state(self):
        cfg = th.config(self.srv, page_size=10, requests_per_second=50)
        for mode in ("incremental", "full_refresh"):
            cat = th.catalog({"individuals": mode})
            first, second, state, _ = self.read_killed_then_resumed(cfg, cat, mode)
            st = state[0]["stream"]["stream_state"]
            self.assertIn("cursor", st["resume"] if mode == "full_refresh" else st)
            got = {r["code"] for r in th.records(first.messages) + th.records(second.messages)}
            self.assertEqual(got, {c["code"] for c in self.dump()["individuals"]}, mode)
            # the second run began where the first stopped (a page of overlap at most)
            self.assertLessEqual(len(th.records(second.messages)),
                                 300 - len(th.records(first.messages)) + 10, mode)


if __name__ == "__main__":
    lib.main(__doc__)
