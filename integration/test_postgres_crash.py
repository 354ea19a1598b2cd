#!/usr/bin/env python3
"""source-postgres killed mid-read (SIGKILL) or losing its connection
(the server ends the backend), then restarted from the last STATE it
emitted: across the attempts every row is emitted exactly once, counting
only what came before the last STATE of a failed attempt.

    python3 integration/test_postgres_crash.py --bin build/gcc/sources/postgres/source-postgres
"""
import collections
import signal
import threading

import lib
from pg_helpers import PgCase, catalog, records, records_before_last_state, states_of

ROWS = 60000


class Crash(PgCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pg.sql("create table big (id bigint primary key, name text, updated_at timestamp); "
                   "insert into big select g, 'name ' || g, timestamp '2024-01-01' + "
                   "(g / 7) * interval '1 second' from generate_series(1, %d) g; "
                   "create table bigheap as select * from big; analyze bigheap;" % ROWS)

    def interrupted(self, cat, cfg, key, action, name, state=None):
        """A read stopped by action(conn) after its third STATE; the records
        that count (before its last STATE) and the state to resume from."""
        seen = {"states": 0}
        fired = threading.Event()
        conn_box = {}

        def on_line(line):
            if b'"type":"STATE"' in line:
                seen["states"] += 1
                if seen["states"] == 3 and not fired.is_set():
                    fired.set()
                    action(conn_box["c"])

        argv = ["read", "--config", self.wd.write_json(name + "-config.json", cfg),
                "--catalog", self.wd.write_json(name + "-catalog.json", cat)]
        if state is not None:
            argv += ["--state", self.wd.write_json(name + "-state.json", state)]
        conn = lib.Connector(lib.binary(), argv, self.wd, name=name, on_line=on_line)
        conn_box["c"] = conn
        res = conn.wait(timeout=300, allow_partial_tail=True)
        self.assertTrue(fired.is_set(), res.describe())
        stream = cat["streams"][0]["stream"]["name"]
        counted = [r[key] for r in records_before_last_state(res, stream)]
        emitted = len(records(res, stream))
        self.assertLess(len(counted), ROWS, "the read was not interrupted")
        return res, counted, emitted, states_of(res)

    def assert_exactly_once(self, ids):
        dup = [k for k, n in collections.Counter(ids).items() if n > 1]
        self.assertEqual(dup[:5], [])
        self.assertEqual(sorted(ids), list(range(1, ROWS + 1)))

    def kill(self, conn):
        conn.signal(signal.SIGKILL)

    def resume_all(self, cat, cfg, key, action, name):
        res, counted, emitted, state = self.interrupted(cat, cfg, key, action, name)
        self.assertGreater(len(counted), 0)
        final = self.read(cat, cfg, state=state, name=name + "-resumed")
        self.assert_ok(final)
        again = [r[key] for r in records(final)]
        self.assert_exactly_once(counted + again)
        return res, emitted

    def test_sigkill_full_refresh_by_primary_key(self):
        self.resume_all(catalog(("big", "full_refresh")), self.config(chunk_size=1000), "id",
                        self.kill, "pk")

    def test_sigkill_full_refresh_by_ctid(self):
        self.resume_all(catalog(("bigheap", "full_refresh")), self.config(chunk_size=1000), "id",
                        self.kill, "ctid")

    def test_sigkill_incremental_cursor(self):
        self.resume_all(catalog(("big", "incremental", "updated_at")),
                        self.config(checkpoint_interval=1000), "id", self.kill, "cursor")

    def test_dropped_connection_is_transient_and_resumes(self):
        def terminate(conn):
            self.sql("select pg_terminate_backend(pid) from pg_stat_activity "
                     "where application_name = 'source-postgres'")

        res, _ = self.resume_all(catalog(("big", "full_refresh")), self.config(chunk_size=1000),
                                 "id", terminate, "dropped")
        self.assertEqual(res.rc, 1, res.describe())
        self.assertEqual([e["failure_type"] for e in res.errors], ["transient_error"])
        statuses = [m["trace"]["stream_status"]["status"] for m in res.of_type("TRACE")
                    if m["trace"]["type"] == "STREAM_STATUS"]
        self.assertEqual(statuses[-1], "INCOMPLETE")


if __name__ == "__main__":
    lib.main(__doc__)
