#!/usr/bin/env python3
"""source-postgres against a real PostgreSQL server: spec, check, discover,
full refresh in resumable chunks (primary key and ctid), views, incremental
by cursor with ties, xmin, and the errors users meet (wrong password,
missing database, table or column, permission denied, TLS).

    python3 integration/test_postgres_e2e.py --bin build/gcc/sources/postgres/source-postgres
"""
import json

import lib
from pg_helpers import PgCase, catalog, records, states_of


class Discover(PgCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pg.sql("""
            create schema shop;
            create type mood as enum ('sad', 'ok');
            create domain pos_int as int check (value > 0);
            create table shop.products (sku text, region int, name text not null,
                price numeric(12,2), tags text[], grid int[][], updated_at timestamptz,
                qty pos_int, m mood, doc jsonb, primary key (region, sku));
            create view shop.cheap as select sku, price from shop.products where price < 10;
            create materialized view shop.totals as select region, count(*) n from shop.products group by region;
            create table public.other (id int);
        """)

    def test_spec(self):
        res = self.run_src("spec")
        self.assert_ok(res)
        props = res.of_type("SPEC")[0]["spec"]["connectionSpecification"]["properties"]
        for k in ("host", "port", "database", "username", "password", "schemas", "ssl_mode",
                  "replication_method", "chunk_size", "checkpoint_interval",
                  "statement_timeout_seconds", "connection_string"):
            self.assertIn(k, props)
        self.assertTrue(props["password"]["airbyte_secret"])
        modes = [o["properties"]["mode"]["const"] for o in props["ssl_mode"]["oneOf"]]
        self.assertEqual(modes, ["disable", "allow", "prefer", "require", "verify-ca",
                                 "verify-full"])

    def test_discover_tables_views_matviews(self):
        res = self.run_src("discover", self.config(schemas=["shop"]))
        self.assert_ok(res)
        streams = {s["name"]: s for s in res.of_type("CATALOG")[0]["catalog"]["streams"]}
        self.assertEqual(sorted(streams), ["cheap", "products", "totals"])
        p = streams["products"]
        self.assertEqual(p["namespace"], "shop")
        self.assertEqual(p["source_defined_primary_key"], [["region"], ["sku"]])
        self.assertEqual(p["supported_sync_modes"], ["full_refresh", "incremental"])
        self.assertEqual(p["default_cursor_field"], ["updated_at"])
        props = p["json_schema"]["properties"]
        self.assertEqual(props["name"]["type"], ["string"])
        self.assertEqual(props["region"]["type"], ["integer"])
        self.assertEqual(props["price"]["type"], ["null", "string"])
        self.assertEqual(props["updated_at"]["format"], "date-time")
        self.assertEqual(props["tags"]["type"], ["null", "array"])
        self.assertEqual(props["qty"]["type"], ["null", "integer"])  # domain over int
        self.assertEqual(props["m"]["type"], ["null", "string"])
        self.assertEqual(props["doc"], {})
        self.assertIn("updated_at", p["x-cursor-candidates"])
        self.assertNotIn("doc", p["x-cursor-candidates"])
        self.assertFalse(streams["cheap"]["is_resumable"])
        self.assertTrue(streams["totals"]["is_resumable"])
        self.assertEqual(streams["cheap"]["source_defined_primary_key"], [])
        # xmin: no incremental for a view
        res = self.run_src("discover", self.config(schemas=["shop"],
                                                   replication_method={"method": "Xmin"}))
        streams = {s["name"]: s for s in res.of_type("CATALOG")[0]["catalog"]["streams"]}
        self.assertEqual(streams["cheap"]["supported_sync_modes"], ["full_refresh"])
        self.assertEqual(streams["products"]["supported_sync_modes"],
                         ["full_refresh", "incremental"])
        self.assertTrue(streams["products"]["source_defined_cursor"])

    def test_check(self):
        self.assertEqual(self.check_status(self.config(schemas=["shop", "public"]))["status"],
                         "SUCCEEDED")
        st = self.check_status(self.config(password="not-the-password"))
        self.assertEqual(st["status"], "FAILED")
        self.assertIn("password authentication failed", st["message"])
        self.assertIn("127.0.0.1:%d" % self.pg.port, st["message"])
        self.assertIn("user 'postgres'", st["message"])
        st = self.check_status(self.config(database="nowhere"))
        self.assertEqual(st["status"], "FAILED")
        self.assertIn('database "nowhere" does not exist', st["message"])
        st = self.check_status(self.config(schemas=["shop", "missing_schema"]))
        self.assertEqual(st["status"], "FAILED")
        self.assertIn("no schema 'missing_schema'", st["message"])
        res = self.run_src("check", self.config(password="not-the-password"), name="secret")
        self.assert_no_secret(res, "not-the-password")

    def test_connection_string(self):
        cs = "postgresql://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable" % (
            "superpass-for-tests", self.pg.port)
        st = self.check_status({"connection_string": cs, "schemas": ["shop"]})
        self.assertEqual(st["status"], "SUCCEEDED", st)
        # the separate fields override the string
        st = self.check_status({"connection_string": cs, "database": "nowhere"})
        self.assertEqual(st["status"], "FAILED")
        self.assertNotIn("superpass-for-tests", st["message"])


class FullRefresh(PgCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pg.sql('''
            create table items (id int primary key, name text);
            insert into items select g, 'item ' || g from generate_series(1, 1050) g;
            analyze items;
            create table pairs (a text, b int, v text, primary key (a, b));
            insert into pairs select chr(97 + g % 3), g, 'v' from generate_series(1, 100) g;
            create table heap (n int, t text);
            insert into heap select g, repeat('x', 200) from generate_series(1, 3000) g;
            analyze heap;
            create view items_view as select id, name from items where id <= 30;
            create materialized view items_mv as select id from items where id <= 40;
            create table "Odd ""Name""" ("Weird col" int primary key, "select" text);
            insert into "Odd ""Name""" values (1, 'a'), (2, 'b');
        ''')

    def full(self, name, **cfg):
        res = self.read(catalog((name, "full_refresh")), self.config(**cfg), name=name)
        self.assert_ok(res)
        return res

    def test_chunks_by_primary_key_with_states(self):
        res = self.full("items", chunk_size=100)
        ids = [r["id"] for r in records(res)]
        self.assertEqual(ids, list(range(1, 1051)))
        states = [s["stream"]["stream_state"] for s in res.states]
        self.assertEqual(states[0], {"pk": ["100"]})
        self.assertEqual(states[9], {"pk": ["1000"]})
        self.assertEqual(states[-1], {})  # complete: the next sync starts over
        self.assertEqual(len(states), 11)
        self.assertEqual([s["sourceStats"]["recordCount"] for s in res.states],
                         [100.0] * 10 + [50.0])
        statuses = [m["trace"]["stream_status"]["status"] for m in res.of_type("TRACE")
                    if m["trace"]["type"] == "STREAM_STATUS"]
        self.assertEqual(statuses, ["STARTED", "RUNNING", "COMPLETE"])
        estimates = [m["trace"]["estimate"] for m in res.of_type("TRACE")
                     if m["trace"]["type"] == "ESTIMATE"]
        self.assertEqual([e.get("row_estimate") for e in estimates], [1050])

    def test_resume_from_a_chunk_state(self):
        first = self.full("items", chunk_size=100)
        state = [{"type": "STREAM", "stream": {
            "stream_descriptor": {"name": "items", "namespace": "public"},
            "stream_state": first.states[2]["stream"]["stream_state"]}}]
        res = self.read(catalog(("items", "full_refresh")), self.config(chunk_size=100),
                        state=state, name="resumed")
        self.assert_ok(res)
        self.assertEqual([r["id"] for r in records(res)], list(range(301, 1051)))

    def test_composite_key(self):
        res = self.full("pairs", chunk_size=7)
        got = [(r["a"], r["b"]) for r in records(res)]
        want = sorted((chr(97 + g % 3), g) for g in range(1, 101))
        self.assertEqual(got, want)
        self.assertEqual(res.states[0]["stream"]["stream_state"], {"pk": list(map(str, want[6]))})

    def test_no_key_in_ctid_ranges(self):
        res = self.full("heap", chunk_size=500)
        ns = sorted(r["n"] for r in records(res))
        self.assertEqual(ns, list(range(1, 3001)))
        pages = [s["stream"]["stream_state"].get("ctid_page") for s in res.states]
        self.assertGreater(len(pages), 4)
        self.assertEqual(pages[-1], None)
        self.assertEqual(pages[:-1], sorted(pages[:-1]))
        # resume from the second state: exactly the rows of the later pages
        state = [{"type": "STREAM", "stream": {
            "stream_descriptor": {"name": "heap", "namespace": "public"},
            "stream_state": res.states[1]["stream"]["stream_state"]}}]
        again = self.read(catalog(("heap", "full_refresh")), self.config(chunk_size=500),
                          state=state, name="heap2")
        self.assert_ok(again)
        before = sum(int(s["sourceStats"]["recordCount"]) for s in res.states[:2])
        self.assertEqual(len(records(again)), 3000 - before)
        self.assertEqual(sorted(r["n"] for r in records(again)), ns[before:])

    def test_views_and_matviews_and_quoted_names(self):
        res = self.read(catalog(("items_view", "full_refresh"), ("items_mv", "full_refresh"),
                                ('Odd "Name"', "full_refresh")), self.config(chunk_size=7))
        self.assert_ok(res)
        self.assertEqual([r["id"] for r in records(res, "items_view")], list(range(1, 31)))
        self.assertEqual(sorted(r["id"] for r in records(res, "items_mv")), list(range(1, 41)))
        self.assertEqual(records(res, 'Odd "Name"'), [{"Weird col": 1, "select": "a"},
                                                     {"Weird col": 2, "select": "b"}])

    def test_missing_table_and_permission(self):
        res = self.read(catalog(("nope", "full_refresh")))
        self.assert_config_error(res, "stream 'public.nope'", "no table", "database 'postgres'")
        self.sql("create role reader login password 'reader-pass'; "
                 "create table secret (id int); grant select on items to reader;")
        cfg = self.config(username="reader", password="reader-pass")
        res = self.read(catalog(("secret", "full_refresh")), cfg, name="denied")
        self.assert_config_error(res, "permission denied", '"public"."secret"')
        res = self.read(catalog(("items", "full_refresh")), cfg, name="allowed")
        self.assert_ok(res)
        self.assertEqual(len(records(res)), 1050)

    def test_statement_timeout_is_transient(self):
        self.sql("create view slow as select 1 as x from pg_sleep(3)")
        res = self.read(catalog(("slow", "full_refresh")), self.config(statement_timeout_seconds=1))
        self.assertEqual(res.rc, 1, res.describe())
        self.assertEqual(len(res.errors), 1, res.describe())
        self.assertEqual(res.errors[0]["failure_type"], "transient_error")
        self.assertIn("stream 'slow'", res.errors[0]["message"])
        self.assertIn("statement timeout", res.errors[0]["message"])

    def test_wrong_password_on_read_is_config_error(self):
        res = self.read(catalog(("items", "full_refresh")), self.config(password="wrong-pw-1"))
        self.assert_config_error(res, "password authentication failed", "user 'postgres'")
        self.assert_no_secret(res, "wrong-pw-1")


class Incremental(PgCase):
    def setUp(self):
        super().setUp()
        self.sql("drop table if exists ev; create table ev (id int primary key, "
                 "updated_at timestamp, note text);")

    def incr(self, state=None, name="read", **cfg):
        res = self.read(catalog(("ev", "incremental", "updated_at")),
                        self.config(**cfg), state=state, name=name)
        self.assert_ok(res)
        return res

    def test_cursor_with_ties(self):
        self.sql("insert into ev select g, timestamp '2024-01-01' + (g / 3) * interval '1 hour', "
                 "'a' from generate_series(1, 20) g")
        first = self.incr(checkpoint_interval=4)
        self.assertEqual(sorted(r["id"] for r in records(first)), list(range(1, 21)))
        # states fall on value boundaries: the count covers every row of that value
        for st in first.states:
            s = st["stream"]["stream_state"]
            n = int(self.sql("select count(*) from ev where updated_at = '%s'" % s["cursor"]))
            self.assertEqual(s["cursor_record_count"], n, s)
        last = first.states[-1]["stream"]["stream_state"]
        self.assertEqual(last["cursor"], "2024-01-01 06:00:00")
        self.assertEqual(last["cursor_record_count"], 3)  # ids 18, 19, 20
        # nothing changed: nothing emitted, the same state again
        again = self.incr(states_of(first), name="again")
        self.assertEqual(records(again), [])
        self.assertEqual(again.states[-1]["stream"]["stream_state"], last)
        # a row with the same cursor value as the last one appears, and a newer one
        self.sql("insert into ev values (100, '2024-01-01 06:00:00', 'tie'), "
                 "(101, '2024-01-01 07:00:00', 'new'); update ev set note = 'b', "
                 "updated_at = '2024-01-02' where id = 5")
        third = self.incr(states_of(again), name="third")
        ids = sorted(r["id"] for r in records(third))
        # the tied rows are read again (at least once), nothing older
        self.assertEqual(ids, [5, 18, 19, 20, 100, 101])
        fourth = self.incr(states_of(third), name="fourth")
        self.assertEqual(records(fourth), [])

    def test_missing_cursor_column(self):
        res = self.read(catalog(("ev", "incremental", "nope")))
        self.assert_config_error(res, "cursor_field 'nope'", '"public"."ev"')

    def test_xmin(self):
        self.sql("insert into ev select g, null, 'a' from generate_series(1, 50) g")
        cfg = {"replication_method": {"method": "Xmin"}}
        first = self.read(catalog(("ev", "incremental")), self.config(**cfg))
        self.assert_ok(first)
        self.assertEqual(len(records(first)), 50)
        st = first.states[-1]["stream"]["stream_state"]
        self.assertEqual(set(st), {"xmin_raw_value", "xmin_xid_value", "num_wraparound"})
        self.assertEqual(st["xmin_raw_value"], st["num_wraparound"] * 2**32 + st["xmin_xid_value"])
        self.sql("update ev set note = 'b' where id in (3, 7); insert into ev values (60, null, 'c')")
        second = self.read(catalog(("ev", "incremental")), self.config(**cfg),
                           state=states_of(first), name="second")
        self.assert_ok(second)
        self.assertEqual(sorted(r["id"] for r in records(second)), [3, 7, 60])
        third = self.read(catalog(("ev", "incremental")), self.config(**cfg),
                          state=states_of(second), name="third")
        self.assert_ok(third)
        self.assertEqual(records(third), [])
        # a state from before a wraparound: everything is read again
        old = states_of(second)
        old[0]["stream"]["stream_state"]["num_wraparound"] = st["num_wraparound"] + 1
        wrapped = self.read(catalog(("ev", "incremental")), self.config(**cfg), state=old,
                            name="wrapped")
        self.assert_ok(wrapped)
        self.assertEqual(len(records(wrapped)), 51)
        self.assertIn("wrapped around", json.dumps(wrapped.logs("WARN")))


class Tls(PgCase):
    def test_verify_full_and_refusals(self):
        ok = self.config(ssl_mode={"mode": "verify-full", "ca_certificate": self.pg.pem("ca.crt")})
        self.assertEqual(self.check_status(ok)["status"], "SUCCEEDED")
        # a client certificate for a role that authenticates by certificate only
        self.sql("create role certuser login")
        cert = self.config(username="certuser", password=None, ssl_mode={
            "mode": "verify-full", "ca_certificate": self.pg.pem("ca.crt"),
            "client_certificate": self.pg.pem("client.crt"),
            "client_key": self.pg.pem("client.key")})
        del cert["password"]
        st = self.check_status(cert)
        # the client certificate names postgres, not certuser: refused by the server
        self.assertEqual(st["status"], "FAILED")
        self.assertIn("certificate authentication failed", st["message"])
        # the wrong CA: verification fails
        wrong = self.config(ssl_mode={"mode": "verify-full",
                                      "ca_certificate": self.pg.pem("client.crt")})
        st = self.check_status(wrong)
        self.assertEqual(st["status"], "FAILED")
        self.assertIn("certificate verify failed", st["message"])
        res = self.read(catalog(("pg_class", "full_refresh")), wrong)
        self.assert_config_error(res, "certificate verify failed")


class TlsRefused(PgCase):
    server_kw = {"ssl": False}

    def test_require_against_a_server_without_tls(self):
        st = self.check_status(self.config(ssl_mode={"mode": "require"}))
        self.assertEqual(st["status"], "FAILED")
        self.assertIn("server does not support SSL", st["message"])


if __name__ == "__main__":
    lib.main(__doc__)
