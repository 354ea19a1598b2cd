#!/usr/bin/env python3
"""ab-run with real connectors: source-example piped into destination-crm360
against the emulator, the state carried from run to run, a capture taken,
a destination killed mid-run and the run resumed from the state file with
nothing lost or applied twice, secrets masked, and the exit code of every
kind of failure. (Captures replayed into each destination through ab-run:
test_captures.py.)

    python3 integration/test_ab_run.py --bin build/gcc/tools/ab-run/ab-run \\
        --crm360 build/gcc/destinations/crm360/destination-crm360 \\
        --source build/gcc/tests/example_source/source-example \\
        --bling build/gcc/sources/bling/source-bling
"""
import json
import os
import shlex
import signal
import stat
import time
import unittest

import bling_helpers as bh
import crm360_helpers as crm
import gen_captures
import lib
import shops_helpers as shp

SOURCE_TOKEN = "src-token-" + os.urandom(8).hex()
MAPPING = [{"stream": "numbers", "object": "customers",
            "fields": {"external_id": "label", "name": "label", "email": "email",
                       "updated_at": "updated_at"}}]
SHOPS_MAPPING = [{"stream": "numbers", "object": "products",
                  "fields": {"sku": "label", "title": "label", "brand": {"value": "aurora"},
                             "price": {"value": "10.00"}, "currency": {"value": "BRL"},
                             "updated_at": "updated_at"}}]


def example_catalog():
    return {"streams": [{
        "stream": {"name": "numbers", "json_schema": {"type": "object"},
                   "supported_sync_modes": ["full_refresh", "incremental"]},
        "sync_mode": "incremental", "cursor_field": ["id"], "destination_sync_mode": "append_dedup",
        "primary_key": [["id"]], "generation_id": 1, "minimum_generation_id": 0, "sync_id": 77}]}


def cursor_of(state):
    """The cursor of source-example's state file (None when absent)."""
    if state is None:
        return None
    assert len(state) == 1 and state[0]["type"] == "STREAM", state
    assert "sourceStats" not in state[0] and "destinationStats" not in state[0]
    return state[0]["stream"]["stream_state"]["cursor"]


def children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return out


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[-1][0] != "Z"
    except OSError:
        return False


class AbRun(unittest.TestCase):
    def setUp(self):
        self.wd = lib.Workdir("ab-run-")
        self.emu = crm.start_emulator()
        self.cfgdir = self.wd.join("cfg")
        os.makedirs(self.cfgdir)
        self.state = self.wd.join("state.json")
        self.source = os.path.abspath(lib.OPTIONS.source)
        self.dest = os.path.abspath(lib.OPTIONS.crm360)
        self.write_configs()

    def tearDown(self):
        self.emu.stop()
        self.wd.cleanup(keep=lib.test_failed(self))

    def write_configs(self, source=None, **dest):
        src = {"count": 3000, "page_size": 250, "state_every": 500, "customer_fields": True,
               "token": SOURCE_TOKEN}
        src.update(source or {})
        cfg = crm.config(self.emu.url, self.wd, brand="aurora", stream_mappings=MAPPING)
        cfg.update(dest)
        for name, obj in (("source.json", src), ("destination.json", cfg),
                          ("catalog.json", example_catalog())):
            with open(os.path.join(self.cfgdir, name), "w") as f:
                json.dump(obj, f)

    def args(self, source=None, destination=None, extra=()):
        return (["--source", source or self.source, "--destination", destination or self.dest,
                 "--config-dir", self.cfgdir, "--state", self.state] + list(extra))

    def run_ab(self, args, name="run", timeout=300):
        res = lib.run_connector(lib.binary(), args, self.wd, name=name, timeout=timeout)
        self.assertEqual(res.stdout, b"", "ab-run writes nothing to stdout")
        self.assert_no_secret(res.stderr)
        return res

    def start_ab(self, args, name="run"):
        return lib.Connector(lib.binary(), args, self.wd, name=name)

    def assert_no_secret(self, blob):
        self.assertEqual(lib.sanitizer_report(blob), "")
        for s in crm.ALL_KEYS + (SOURCE_TOKEN,):
            lib.assert_absent(s, blobs=[blob])

    def read_state(self):
        if not os.path.exists(self.state):
            return None
        with open(self.state, encoding="utf-8") as f:
            return json.load(f)

    def stored(self):
        """external_id -> version of the stored customers."""
        return {r["external_id"]: r["version"] for r in self.emu.get("/_admin/dump")["customers"]}

    def assert_exactly(self, n):
        """Customers n1..n<n> stored, each applied once (version 1), and
        CRM360 created each exactly once."""
        st = self.stored()
        want = {"n%d" % i for i in range(1, n + 1)}
        self.assertEqual(set(st), want, "stored keys: %d missing, %d extra" % (
            len(want - set(st)), len(set(st) - want)))
        self.assertEqual({v for v in st.values()}, {1}, "a record applied twice")
        stats = self.emu.get("/_admin/stats")
        self.assertEqual(stats["records_by_status"].get("created"), n, stats)
        self.assertNotIn("updated", stats["records_by_status"], stats)

    # -------------------------------------------------------------------

    def test_source_into_destination_state_carried_and_capture(self):
        cap = self.wd.join("capture.jsonl")
        res = self.run_ab(self.args(extra=["--capture", cap]), "first")
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual(cursor_of(self.read_state()), 3000)
        self.assertEqual(stat.S_IMODE(os.stat(self.state).st_mode), 0o600)
        self.assert_exactly(3000)
        self.assertIn(b"no state file", res.stderr)
        self.assertIn(b"[source] INFO source-example", res.stderr)
        self.assertIn(b"[destination] INFO destination-crm360", res.stderr)
        self.assertIn(b"6 states acknowledged", res.stderr)
        # the capture is the source's output, line for line
        with open(cap, "rb") as f:
            msgs = lib.parse_messages(f.read())
        self.assertEqual(stat.S_IMODE(os.stat(cap).st_mode), 0o600)
        self.assertEqual([m["record"]["data"]["id"] for m in msgs if m["type"] == "RECORD"],
                         list(range(1, 3001)))
        self.assertEqual(len([m for m in msgs if m["type"] == "STATE"]), 6)
        self.assertTrue(any(m["type"] == "TRACE" for m in msgs))

        # the next run passes the state: nothing new, nothing sent
        before = self.emu.get("/_admin/stats")["requests_total"]
        res = self.run_ab(self.args(), "second")
        self.assertEqual(res.rc, 0, res.describe())
        self.assertIn(b"resuming from the state", res.stderr)
        self.assertEqual(self.emu.get("/_admin/stats")["requests_total"], before)
        self.assertEqual(cursor_of(self.read_state()), 3000)

        # more rows at the source: only they are sent
        self.write_configs({"count": 3700})
        res = self.run_ab(self.args(), "third")
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual(cursor_of(self.read_state()), 3700)
        self.assertIn(b"(700 records, ", res.stderr)
        self.assert_exactly(3700)

    def test_secrets_masked(self):
        # wrappers that print their whole config on stderr before running
        leak = ("sh -c 'if [ \"$1\" != spec ]; then cat \"$3\" >&2; echo >&2; fi; "
                "exec \"$0\" \"$@\"' %s")
        res = self.run_ab(self.args(source=leak % shlex.quote(self.source),
                                    destination=leak % shlex.quote(self.dest)))
        self.assertEqual(res.rc, 0, res.describe())
        self.assertIn(b'[source] {"count"', res.stderr)
        self.assertIn(b'"token": "**********"', res.stderr)
        self.assertIn(b'"api_key": "**********"', res.stderr)
        self.assert_exactly(3000)

    def wait_for_cursor(self, proc, at_least, limit=120):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            c = cursor_of(self.read_state())  # replaced atomically: always whole
            if c is not None and c >= at_least:
                return c
            self.assertIsNone(proc.poll(), "ab-run ended early")
            time.sleep(0.02)
        self.fail("no state with cursor >= %d in %d s" % (at_least, limit))

    def side_pid(self, proc, name, command):
        """The pid of ab-run's child running `name command` (not its spec)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for c in children(proc.pid):
                if name in cmdline(c) and " %s " % command in cmdline(c):
                    return c
            time.sleep(0.01)
        self.fail("no %s process under ab-run" % name)

    def test_destination_killed_then_resume(self):
        self.write_configs({"count": 20000, "page_size": 250, "state_every": 1000,
                            "page_delay_ms": 25}, batch_size=100)
        proc = self.start_ab(self.args(), "killed")
        src_pid = self.side_pid(proc, "source-example", "read")
        dst_pid = self.side_pid(proc, "destination-crm360", "write")
        self.wait_for_cursor(proc, 4000)
        os.kill(dst_pid, signal.SIGKILL)
        res = proc.wait(120)
        self.assert_no_secret(res.stderr)
        self.assertEqual(res.rc, 4, res.describe())
        self.assertIn(b"the destination failed (killed by signal 9)", res.stderr)
        self.assertIn(b"stopping the source", res.stderr)
        self.assertFalse(alive(src_pid), "the source still runs")
        cursor = cursor_of(self.read_state())
        self.assertGreaterEqual(cursor, 4000)
        self.assertLess(cursor, 20000, "the kill came too late to test anything")
        # everything the state acknowledges is committed
        st = self.stored()
        missing = [i for i in range(1, cursor + 1) if "n%d" % i not in st]
        self.assertEqual(missing, [], "acknowledged but not stored")

        res = self.run_ab(self.args(), "resumed")
        self.assertEqual(res.rc, 0, res.describe())
        self.assertIn(b"resuming from the state", res.stderr)
        self.assertEqual(cursor_of(self.read_state()), 20000)
        self.assert_exactly(20000)

    def test_shops_destination_killed_then_resume(self):
        """destination-shops through the runner: killed mid-run, rerun from
        the state file; every product stored, each applied once."""
        emu = shp.start_emulator()
        try:
            self.write_configs({"count": 6000, "page_size": 250, "state_every": 500,
                                "page_delay_ms": 40})
            cfg = shp.config(emu.url, self.wd, stream_mappings=SHOPS_MAPPING,
                             min_commit_records=500)
            with open(os.path.join(self.cfgdir, "destination.json"), "w") as f:
                json.dump(cfg, f)
            dest = os.path.abspath(lib.OPTIONS.shops)
            proc = self.start_ab(self.args(destination=dest), "shops-killed")
            dst_pid = self.side_pid(proc, "destination-shops", "write")
            self.wait_for_cursor(proc, 1500)
            os.kill(dst_pid, signal.SIGKILL)
            res = proc.wait(120)
            self.assertEqual(res.rc, 4, res.describe())
            for s in shp.ALL_SECRETS:
                lib.assert_absent(s, blobs=[res.stderr])
            cursor = cursor_of(self.read_state())
            self.assertLess(cursor, 6000, "the kill came too late to test anything")
            stored = {p["sku"] for p in emu.get("/_admin/dump")["products"]}
            self.assertEqual([i for i in range(1, cursor + 1) if "n%d" % i not in stored], [],
                             "acknowledged but not stored")
            applied_before = emu.get("/_admin/stats")["items"]["accepted"]

            res = self.run_ab(self.args(destination=dest), "shops-resumed")
            self.assertEqual(res.rc, 0, res.describe())
            self.assertIn(b"resuming from the state", res.stderr)
            self.assertEqual(cursor_of(self.read_state()), 6000)
            dump = emu.get("/_admin/dump")["products"]
            self.assertEqual(sorted(p["sku"] for p in dump),
                             sorted("n%d" % i for i in range(1, 6001)))
            # the rerun sent only what the state did not acknowledge
            applied = emu.get("/_admin/stats")["items"]["accepted"] - applied_before
            self.assertLessEqual(applied, 6000 - cursor + 500, "records sent twice")
        finally:
            emu.stop()

    def test_replay_from_a_pipe(self):
        name = "crm360-global"
        with open(os.path.join(gen_captures.CAPTURES, name + ".jsonl"), "rb") as f:
            data = f.read()
        args = ["--replay", "/dev/stdin", "--destination", self.dest, "--config-dir",
                self.cfgdir, "--state", self.state, "--catalog",
                os.path.join(gen_captures.CAPTURES, name + ".catalog.json")]
        res = lib.run_connector(lib.binary(), args, self.wd, stdin=data, name="pipe")
        self.assert_no_secret(res.stderr)
        self.assertEqual(res.rc, 0, res.describe())
        exp = gen_captures.load_expected(name)
        self.assertEqual(gen_captures.store_view("crm360", self.emu.get("/_admin/dump"),
                                                 exp["store"]), exp["store"])
        self.assertEqual(self.read_state(), exp["final_state"])

    def test_source_config_update_persisted_and_masked(self):
        """source-bling rotates its refresh token at every run and says so in
        a CONTROL message: ab-run rewrites source.json with it, so the next
        run works; no token reaches the destination, the capture or stderr."""
        srv = bh.emulator(contacts=25, products=5, orders=15)
        srv.start()
        self.addCleanup(srv.stop)
        cfg = bh.config(srv)
        for name, obj in (("source.json", cfg), ("catalog.json", bh.catalog()),
                          ("destination.json", {})):
            with open(os.path.join(self.cfgdir, name), "w") as f:
                json.dump(obj, f)
        # a destination that acknowledges every state it is given, and keeps
        # what it was given
        got = self.wd.join("destination-input.jsonl")
        echo = ("sh -c 'if [ \"$1\" = spec ]; then exec \"$0\" spec; fi; "
                "tee %s | grep --line-buffered \"^{.type.:.STATE.\"' %s"
                % (shlex.quote(got), shlex.quote(self.dest)))
        cap = self.wd.join("capture.jsonl")
        bling = os.path.abspath(lib.OPTIONS.bling)
        tokens = [cfg["refresh_token"], cfg["client_secret"]]
        for run in (1, 2):
            res = self.run_ab(self.args(source=bling, destination=echo,
                                        extra=["--capture", cap]), "bling-%d" % run)
            self.assertEqual(res.rc, 0, res.describe())
            self.assertIn(b"the source updated its config", res.stderr)
            with open(os.path.join(self.cfgdir, "source.json")) as f:
                new = json.load(f)
            self.assertNotIn(new["refresh_token"], tokens, "the token was not rotated")
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.cfgdir, "source.json"))
                                          .st_mode), 0o600)
            tokens.append(new["refresh_token"])
            with open(cap, "rb") as f:
                captured = f.read()
            self.assertGreater(captured.count(b'"type":"RECORD"'), 25 if run == 1 else 0)
            with open(got, "rb") as f:
                given = f.read()
            self.assertEqual(given, captured, "the destination got what was captured")
            for t in tokens:
                lib.assert_absent(t, paths=[cap, got, self.state], blobs=[res.stderr])
            self.assertIsNotNone(self.read_state())
            if run == 2:
                self.assertIn(b"resuming from the state", res.stderr)
        # the first config's token is dead: without the rewrite, a run fails
        with open(os.path.join(self.cfgdir, "source.json"), "w") as f:
            json.dump(cfg, f)
        res = self.run_ab(self.args(source=bling, destination=echo), "stale-token")
        self.assertEqual(res.rc, 3, res.describe())

    # ---- exit codes --------------------------------------------------

    def test_usage_errors_exit_2(self):
        for args in ([], ["--destination", self.dest, "--config-dir", self.cfgdir],
                     self.args(extra=["--replay", self.state]),
                     ["--replay", "x", "--capture", "y", "--destination", self.dest,
                      "--config-dir", self.cfgdir],
                     self.args(extra=["--bogus"]),
                     ["--source", self.source, "--destination", self.dest, "--config-dir",
                      self.wd.join("nowhere")]):
            res = self.run_ab(args, "usage")
            self.assertEqual(res.rc, 2, "%r: %s" % (args, res.describe()))
            self.assertIn(b"ab-run: ", res.stderr)

    def test_source_failure_exit_3_state_untouched(self):
        res = self.run_ab(self.args(), "first")
        self.assertEqual(res.rc, 0, res.describe())
        with open(self.state, "rb") as f:
            before = f.read()
        self.write_configs({"count": -1})
        res = self.run_ab(self.args(), "failing")
        self.assertEqual(res.rc, 3, res.describe())
        self.assertIn(b"the source failed (exited with 1)", res.stderr)
        self.assertIn(b"[source] ERROR (config_error)", res.stderr)
        with open(self.state, "rb") as f:
            self.assertEqual(f.read(), before)

    def test_source_failing_mid_stream_exit_3(self):
        """A source that dies after some states: the destination is stopped
        and the state file is one of the states it could have acknowledged,
        with every record before that state committed."""
        name = "crm360-global"
        cap = os.path.join(gen_captures.CAPTURES, name + ".jsonl")
        self.write_configs(batch_size=20)
        with open(os.path.join(self.cfgdir, "catalog.json"), "w") as f:
            json.dump(gen_captures.catalog("crm360", None), f)
        src = ("sh -c 'if [ \"$1\" = spec ]; then exec %s spec; fi; head -n 250 %s; sleep 1; exit 7' x"
               % (shlex.quote(self.source), shlex.quote(cap)))
        res = self.run_ab(self.args(source=src), "dies")
        self.assertEqual(res.rc, 3, res.describe())
        self.assertIn(b"the source failed (exited with 7)", res.stderr)
        self.assertIn(b"stopping the destination", res.stderr)
        with open(cap, "rb") as f:
            msgs = lib.parse_messages(f.read())[:250]
        states = [i for i, m in enumerate(msgs) if m["type"] == "STATE"]
        got = self.read_state() or []
        ok_k = [k for k in range(len(states) + 1)
                if gen_captures.final_state([msgs[i] for i in states[:k]]) == got]
        self.assertTrue(ok_k, "the state file is no state the destination acknowledged: %r"
                        % got)
        k = ok_k[-1]
        upto = states[k - 1] if k else 0
        want = {crm.key_of(m["record"]["data"]) for m in msgs[:upto]
                if m["type"] == "RECORD" and m["record"]["data"].get("external_id")
                and m["record"]["stream"] == "customers"}
        have = {crm.key_of(r) for r in self.emu.get("/_admin/dump")["customers"]}
        exp = gen_captures.load_expected(name)
        want &= set(exp["store"]["customers"])  # the valid ones
        self.assertEqual(want - have, set(), "acknowledged customers not stored")

    def test_destination_failure_exit_4(self):
        self.write_configs(api_key=crm.WRONG_KEY)
        res = self.run_ab(self.args(), "refused")
        self.assertEqual(res.rc, 4, res.describe())
        self.assertIn(b"[destination] ERROR (config_error)", res.stderr)
        self.assertIn(b"the destination failed (exited with 1)", res.stderr)
        self.assertIsNone(self.read_state())
        # a destination that stops reading and exits 0 has not taken the input
        quits = ("sh -c 'if [ \"$1\" = spec ]; then exec \"$0\" spec; fi; "
                 "head -c 100 >/dev/null; exit 0' %s" % shlex.quote(self.dest))
        res = self.run_ab(self.args(destination=quits), "quits")
        self.assertEqual(res.rc, 4, res.describe())
        self.assertIn(b"the destination exited before the end of its input", res.stderr)
        self.assertIsNone(self.read_state())

    def test_state_file_unwritable_exit_1(self):
        self.state = self.wd.join("no-such-dir", "state.json")
        self.write_configs({"count": 5000, "page_size": 100, "page_delay_ms": 20})
        res = self.run_ab(self.args(), "unwritable")
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn(b"no-such-dir/state.json.tmp", res.stderr)
        self.assertIn(b"stopping the source", res.stderr)
        self.assertIn(b"stopping the destination", res.stderr)
        self.assertIn(b"state file '%s' not updated" % self.state.encode(), res.stderr)
        self.assertFalse(os.path.exists(self.state))

    def test_sigterm_stops_both_sides_exit_143(self):
        self.write_configs({"count": 100000, "page_size": 100, "page_delay_ms": 50})
        proc = self.start_ab(self.args(), "terminated")
        src_pid = self.side_pid(proc, "source-example", "read")
        dst_pid = self.side_pid(proc, "destination-crm360", "write")
        self.wait_for_cursor(proc, 500)
        before = cursor_of(self.read_state())
        proc.signal(signal.SIGTERM)
        res = proc.wait(60)
        self.assert_no_secret(res.stderr)
        self.assertEqual(res.rc, 143, res.describe())
        self.assertFalse(alive(src_pid) or alive(dst_pid), "a side still runs")
        after = cursor_of(self.read_state())
        self.assertGreaterEqual(after, before)
        st = self.stored()
        self.assertEqual([i for i in range(1, after + 1) if "n%d" % i not in st], [])


def extra(p):
    p.add_argument("--crm360", required=True, help="destination-crm360 binary")
    p.add_argument("--source", required=True, help="source-example binary")
    p.add_argument("--bling", required=True, help="source-bling binary")
    p.add_argument("--shops", required=True, help="destination-shops binary")


if __name__ == "__main__":
    lib.main(__doc__, extra)
