"""pg_helpers.py - shared helpers of the source-postgres tests: a server per
test class (pg_server.PgServer), runs of the binary, catalogs, and what a
read emitted (records per stream, states, statuses).

Standard library only.
"""
import json
import os
import unittest

import lib
import pg_server


def catalog(*streams):
    """streams: (name, sync_mode[, cursor]) tuples, namespace public, or
    dicts passed through."""
    out = []
    for s in streams:
        if isinstance(s, dict):
            out.append(s)
            continue
        name, mode = s[0], s[1]
        ns = "public"
        if "." in name:
            ns, name = name.split(".", 1)
        c = {"stream": {"name": name, "namespace": ns, "json_schema": {},
                        "supported_sync_modes": ["full_refresh", "incremental"]},
             "sync_mode": mode, "destination_sync_mode": "append"}
        if len(s) > 2:
            c["cursor_field"] = [s[2]]
        out.append(c)
    return {"streams": out}


def states_of(res):
    """The input state for the next run: the last STATE of each stream."""
    last = {}
    for st in res.states:
        d = st["stream"]["stream_descriptor"]
        last[(d.get("namespace"), d["name"])] = {
            "type": "STREAM", "stream": {"stream_descriptor": d,
                                         "stream_state": st["stream"]["stream_state"]}}
    return list(last.values())


def records(res, stream=None):
    return [m["record"]["data"] for m in res.messages
            if m["type"] == "RECORD" and (stream is None or m["record"]["stream"] == stream)]


def records_before_last_state(res, stream):
    """Records of stream emitted before its last STATE, or last GLOBAL state
    (what a restarted attempt does not read again)."""
    out, pending = [], []
    for m in res.messages:
        if m["type"] == "RECORD" and m["record"]["stream"] == stream:
            pending.append(m["record"]["data"])
        elif m["type"] == "STATE" and (
                m["state"]["type"] == "GLOBAL" or
                m["state"]["stream"]["stream_descriptor"]["name"] == stream):
            out += pending
            pending = []
    return out


def cache_dir():
    return os.path.dirname(lib.binary())


class PgCase(unittest.TestCase):
    """One PostgreSQL server for the class; a work directory per test."""
    server_kw = {}

    @classmethod
    def setUpClass(cls):
        cls.pg = pg_server.PgServer(cache_dir(), **cls.server_kw).start()
        # also when a subclass's setUpClass fails after this
        cls.addClassCleanup(cls.pg.stop)

    def setUp(self):
        self.wd = lib.Workdir("ab-pg-")

    def tearDown(self):
        self.wd.cleanup(keep=lib.test_failed(self))

    def sql(self, text, **kw):
        return self.pg.sql(text, **kw)

    def config(self, **over):
        return self.pg.config(**over)

    def run_src(self, command, config=None, cat=None, state=None, name="run", **kw):
        argv = [command]
        if config is not None:
            argv += ["--config", self.wd.write_json(name + "-config.json", config)]
        if cat is not None:
            argv += ["--catalog", self.wd.write_json(name + "-catalog.json", cat)]
        if state is not None:
            argv += ["--state", self.wd.write_json(name + "-state.json", state)]
        return lib.run_connector(lib.binary(), argv, self.wd, name=name, **kw)

    def read(self, cat, config=None, state=None, name="read", **kw):
        res = self.run_src("read", config or self.config(), cat, state, name=name, **kw)
        return res

    def assert_ok(self, res):
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual(res.errors, [], res.describe())

    def assert_config_error(self, res, *contains):
        self.assertEqual(res.rc, 1, res.describe())
        errs = res.errors
        self.assertEqual(len(errs), 1, res.describe())
        self.assertEqual(errs[0]["failure_type"], "config_error", res.describe())
        for c in contains:
            self.assertIn(c, errs[0]["message"])
        return errs[0]["message"]

    def assert_no_secret(self, res, secret):
        for blob in (res.stdout, res.stderr):
            self.assertNotIn(secret.encode(), blob)

    def check_status(self, config):
        res = self.run_src("check", config, name="check")
        self.assertEqual(res.rc, 0, res.describe())
        return res.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
