#!/usr/bin/env python3
"""source-postgres CDC through a pgoutput logical replication slot: the
snapshot, then inserts, updates and deletes in commit order with
_ab_cdc_lsn/_ab_cdc_updated_at/_ab_cdc_deleted_at, an update that leaves a
TOAST column unchanged, GLOBAL states holding the LSN, the slot confirmed
only to the LSN of the state fed back, a rerun from that state emitting
nothing twice, and the configuration errors (slot, publication).

    python3 integration/test_postgres_cdc.py --bin build/gcc/sources/postgres/source-postgres
"""
import collections
import signal
import threading

import lib
from pg_helpers import PgCase, catalog, records, records_before_last_state


def cdc(slot="ab_slot", pub="ab_pub"):
    return {"method": "CDC", "replication_slot": slot, "publication": pub}


def lsn_num(text):
    hi, lo = text.strip().split("/")
    return int(hi, 16) << 32 | int(lo, 16)


class Cdc(PgCase):
    def setUp(self):
        super().setUp()
        self.sql("drop publication if exists ab_pub; drop table if exists cust, other; "
                 "select pg_drop_replication_slot(slot_name) from pg_replication_slots; "
                 "create table cust (id int primary key, name text, doc text, tags int[]); "
                 "alter table cust alter column doc set storage external; "
                 "create table other (id int primary key); "
                 "insert into cust select g, 'n' || g, null, '{1,2}' from generate_series(1, 25) g; "
                 "create publication ab_pub for table cust; "
                 "select pg_create_logical_replication_slot('ab_slot', 'pgoutput');")

    def read_cdc(self, state=None, name="read", **cfg):
        res = self.read(catalog(("cust", "incremental")),
                        self.config(replication_method=cdc(), **cfg), state=state, name=name)
        self.assert_ok(res)
        return res

    def confirmed(self):
        return lsn_num(self.sql("select confirmed_flush_lsn from pg_replication_slots "
                                "where slot_name = 'ab_slot'"))

    def global_state(self, res):
        st = res.states[-1]
        self.assertEqual(st["type"], "GLOBAL")
        return [st]

    def test_snapshot_changes_toast_and_acknowledged_rerun(self):
        created_at = self.confirmed()
        first = self.read_cdc(chunk_size=10)
        rows = records(first)
        self.assertEqual(sorted(r["id"] for r in rows), list(range(1, 26)))
        for r in rows:
            self.assertEqual(r["_ab_cdc_lsn"], created_at)
            self.assertIsNone(r["_ab_cdc_deleted_at"])
            self.assertEqual(r["tags"], [1, 2])
        # the snapshot is resumable: a state after each chunk
        self.assertGreaterEqual(len(first.states), 3)
        self.assertEqual(first.states[0]["global"]["stream_states"][0]["stream_state"],
                         {"pk": ["10"]})
        st = self.global_state(first)
        self.assertEqual(st[0]["global"]["stream_states"][0]["stream_state"],
                         {"snapshot": "done"})
        # nothing is confirmed to the slot by a run: only the state fed back
        self.assertEqual(self.confirmed(), created_at)
        statuses = [m["trace"]["stream_status"]["status"] for m in first.of_type("TRACE")
                    if m["trace"]["type"] == "STREAM_STATUS"]
        self.assertEqual(statuses, ["STARTED", "RUNNING", "COMPLETE"])

        big = self.sql("select string_agg(md5(g::text), '') from generate_series(1, 400) g").strip()
        self.sql("insert into cust values (100, 'new', '%s', '{{1,2},{3,4}}')" % big)
        self.sql("update cust set name = 'renamed' where id = 3")
        self.sql("begin; delete from cust where id = 4; insert into cust values (101, 'x', null, "
                 "null); commit;")
        self.sql("update cust set name = 'toast kept' where id = 100")  # doc unchanged, TOASTed
        self.sql("insert into other values (1)")  # not in the publication
        second = self.read_cdc(state=st, name="second")
        self.assertEqual(self.confirmed(), st[0]["global"]["shared_state"]["lsn"])
        rows = records(second)
        self.assertEqual([(r["id"], r["name"]) for r in rows],
                         [(100, "new"), (3, "renamed"), (4, None), (101, "x"),
                          (100, "toast kept")])
        lsns = [r["_ab_cdc_lsn"] for r in rows]
        self.assertEqual(lsns, sorted(lsns))
        self.assertEqual(rows[0]["doc"], big)
        self.assertEqual(rows[0]["tags"], [[1, 2], [3, 4]])
        self.assertIsNotNone(rows[2]["_ab_cdc_deleted_at"])
        self.assertIsNone(rows[1]["_ab_cdc_deleted_at"])
        self.assertEqual(rows[2]["_ab_cdc_updated_at"], rows[3]["_ab_cdc_updated_at"])  # one tx
        self.assertNotIn("doc", rows[4])
        self.assertEqual(rows[4]["_ab_cdc_unchanged_columns"], ["doc"])
        self.assertTrue(rows[0]["_ab_cdc_updated_at"].endswith("Z"))
        st2 = self.global_state(second)
        self.assertGreater(st2[0]["global"]["shared_state"]["lsn"],
                           st[0]["global"]["shared_state"]["lsn"])

        third = self.read_cdc(state=st2, name="third")
        self.assertEqual(records(third), [])
        self.assertEqual(self.confirmed(), st2[0]["global"]["shared_state"]["lsn"])

    def test_states_every_interval_within_the_wal(self):
        first = self.read_cdc()
        self.sql("update cust set name = name || '!'")  # one transaction, 25 rows
        for i in range(5):
            self.sql("insert into cust values (%d, 'i', null, null)" % (200 + i))
        res = self.read_cdc(state=self.global_state(first), name="wal", checkpoint_interval=2)
        self.assertEqual(len(records(res)), 30)
        # states follow commits: one after the big transaction, then every 2 rows
        counts = [s["sourceStats"]["recordCount"] for s in res.states]
        self.assertEqual(counts[0], 25.0)
        self.assertEqual(sum(counts), 30.0)

    def test_full_refresh_streams_ride_in_the_global_state(self):
        cat = catalog(("cust", "incremental"), ("other", "full_refresh"))
        self.sql("insert into other select generate_series(1, 12)")
        res = self.read(cat, self.config(replication_method=cdc(), chunk_size=5))
        self.assert_ok(res)
        self.assertEqual({s["type"] for s in res.states}, {"GLOBAL"})
        last = res.states[-1]["global"]
        self.assertEqual({s["stream_descriptor"]["name"]: s["stream_state"]
                          for s in last["stream_states"]},
                         {"cust": {"snapshot": "done"}, "other": {}})
        mid = [s for s in res.states if any(
            x["stream_descriptor"]["name"] == "other" and "pk" in x["stream_state"]
            for x in s["global"]["stream_states"])]
        self.assertTrue(mid)
        self.assertEqual(len(records(res, "other")), 12)
        # resumed from a state taken inside the full-refresh stream
        res2 = self.read(cat, self.config(replication_method=cdc(), chunk_size=5),
                         state=[mid[0]], name="resumed")
        self.assert_ok(res2)
        self.assertEqual(sorted(r["id"] for r in records(res2, "other")), list(range(6, 13)))

    def test_sigkill_in_the_wal_phase_resumes_exactly_once(self):
        first = self.read_cdc()
        self.sql("".join("insert into cust select g, 'w', null, null from generate_series(%d, %d) g;"
                         % (1000 + i * 50, 1000 + i * 50 + 49) for i in range(200)))
        want = list(range(1000, 11000))
        cfg = self.config(replication_method=cdc(), checkpoint_interval=500)
        argv = ["read", "--config", self.wd.write_json("kill-config.json", cfg),
                "--catalog", self.wd.write_json("kill-catalog.json", catalog(("cust", "incremental"))),
                "--state", self.wd.write_json("kill-state.json", self.global_state(first))]
        seen = {"n": 0}
        box = {}
        fired = threading.Event()

        def on_line(line):
            if b'"type":"STATE"' in line:
                seen["n"] += 1
                if seen["n"] == 4 and not fired.is_set():
                    fired.set()
                    box["c"].signal(signal.SIGKILL)

        conn = lib.Connector(lib.binary(), argv, self.wd, name="killed", on_line=on_line)
        box["c"] = conn
        res = conn.wait(timeout=300, allow_partial_tail=True)
        self.assertTrue(fired.is_set(), res.describe())
        counted = [r["id"] for r in records_before_last_state(res, "cust")]
        self.assertGreater(len(counted), 0)
        self.assertLess(len(counted), len(want), "the read was not interrupted")
        last = [s for s in res.states][-1]
        again = self.read_cdc(state=[last], name="resumed")
        ids = counted + [r["id"] for r in records(again)]
        self.assertEqual([k for k, n in collections.Counter(ids).items() if n > 1][:5], [])
        self.assertEqual(sorted(ids), want)

    def test_configuration_errors(self):
        res = self.read(catalog(("cust", "incremental")),
                        self.config(replication_method=cdc(slot="no_slot")), name="slot")
        self.assert_config_error(res, "replication slot 'no_slot'", "pg_create_logical_replication_slot")
        res = self.read(catalog(("cust", "incremental")),
                        self.config(replication_method=cdc(pub="no_pub")), name="pub")
        self.assert_config_error(res, "no publication 'no_pub'")
        res = self.read(catalog(("other", "incremental")),
                        self.config(replication_method=cdc()), name="table")
        self.assert_config_error(res, "publication 'ab_pub' does not include table",
                                 '"public"."other"')
        st = self.check_status(self.config(replication_method=cdc(slot="no_slot", pub="no_pub")))
        self.assertEqual(st["status"], "FAILED")
        self.assertIn("no replication slot 'no_slot'", st["message"])
        self.assertIn("no publication 'no_pub'", st["message"])
        # the source never creates them
        self.assertEqual(self.sql("select count(*) from pg_replication_slots").strip(), "1")
        self.assertEqual(self.sql("select count(*) from pg_publication").strip(), "1")
        # discover: CDC streams are tables, with the _ab_cdc fields
        res = self.run_src("discover", self.config(replication_method=cdc()))
        streams = {s["name"]: s for s in res.of_type("CATALOG")[0]["catalog"]["streams"]}
        self.assertIn("_ab_cdc_deleted_at", streams["cust"]["json_schema"]["properties"])
        self.assertEqual(streams["cust"]["default_cursor_field"], ["_ab_cdc_lsn"])


if __name__ == "__main__":
    lib.main(__doc__)
