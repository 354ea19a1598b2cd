#!/usr/bin/env python3
"""test_rejected_storage.py - where destination-crm360 puts rejected records.

The real binary against the CRM360 emulator and the S3-compatible emulator
(integration/emulators/s3_emulator.py, SigV4 verified): object_storage_config
S3 (objects under prefix/stream/date/, each line with the record as received,
as sent and errors naming `target <- source.path`), a bucket that refuses
writes (the sync fails and no state counting those rejections goes out),
None (counted, stored nowhere), the default (a file under $TMPDIR named after
the connector and the sync, nothing in the working directory), the legacy
dead_letter_path, and check against a good and a refusing bucket.
"""

import datetime
import json
import os
import secrets
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import crm360_helpers as crm  # noqa: E402

S3_EMULATOR = os.path.join(lib.EMULATORS, "s3_emulator.py")
KEY_ID = "AKIATEST" + secrets.token_hex(4).upper()
SECRET = "s3-secret-" + secrets.token_hex(16)
SYNC_ID = 4242

MAPPING = [{"stream": "clientes", "object": "customers",
            "fields": {"external_id": "id", "brand": "marca", "email": "contact.mail",
                       "name": "nome", "updated_at": "atualizado"}}]


def record(i, **over):
    data = {"id": "C-%d" % i, "marca": "acme", "contact": {"mail": "c%d@example.com" % i},
            "nome": "Cliente %d" % i, "atualizado": "2026-05-01T00:00:%02dZ" % i}
    data.update(over)
    return {"type": "RECORD", "record": {"stream": "clientes", "data": data,
                                         "emitted_at": 1700000000000}}


def state(n):
    return {"type": "STATE", "state": {"type": "STREAM", "stream": {
        "stream_descriptor": {"name": "clientes"}, "stream_state": {"n": n}}}}


def catalog():
    return {"streams": [{
        "stream": {"name": "clientes", "json_schema": {"type": "object"},
                   "supported_sync_modes": ["full_refresh", "incremental"]},
        "sync_mode": "incremental", "destination_sync_mode": "append_dedup",
        "primary_key": [["id"]], "cursor_field": ["atualizado"],
        "generation_id": 1, "minimum_generation_id": 0, "sync_id": SYNC_ID}]}


# 3 good records, 1 without id (rejected before sending), 1 with a bad email
# (rejected by CRM360), then one state counting them all.
INPUT = [record(1), record(2), {"drop": "id"}, record(4, contact={"mail": "not-an-email"}),
         record(5), state(1)]


def input_lines():
    out = []
    for m in INPUT:
        if "drop" in m:
            r = record(3)
            del r["record"]["data"]["id"]
            out.append(r)
        else:
            out.append(m)
    return out




class Test(__import__("unittest").TestCase):
    @classmethod
    def setUpClass(cls):
        cls.crm = crm.start_emulator()
        cls.s3 = lib.Server(S3_EMULATOR, ["--bucket", "rejects", "--refuse", "locked",
                                          "--key", "%s:%s" % (KEY_ID, SECRET)],
                            name="s3").start()

    @classmethod
    def tearDownClass(cls):
        cls.crm.stop()
        cls.s3.stop()

    def setUp(self):
        self.wd = lib.Workdir()
        self.tmp = self.wd.join("tmp")
        self.cwd = self.wd.join("cwd")
        os.mkdir(self.tmp)
        os.mkdir(self.cwd)

    def tearDown(self):
        self.wd.cleanup(keep=lib.test_failed(self))

    def s3_config(self, bucket="rejects", prefix="rej/crm"):
        return {"storage_type": "S3", "endpoint": self.s3.url, "region": "us-east-1",
                "bucket": bucket, "prefix": prefix, "access_key_id": KEY_ID,
                "secret_access_key": SECRET}

    def config(self, **over):
        cfg = {"api_url": self.crm.url, "api_key": crm.API_KEY, "requests_per_second": 0,
               "stream_mappings": MAPPING, "batch_size": 100}
        cfg.update(over)
        return cfg

    def run_cmd(self, cmd, cfg, name):
        cfg_path = self.wd.write_json(name + "-config.json", cfg)
        args = [cmd, "--config", cfg_path]
        stdin = None
        if cmd == "write":
            args += ["--catalog", self.wd.write_json(name + "-catalog.json", catalog())]
            stdin = self.wd.write_lines(name + "-input.jsonl", input_lines())
        env = dict(os.environ, TMPDIR=self.tmp)
        res = lib.run_connector(lib.binary(), args, self.wd, stdin=stdin, name=name, env=env,
                                cwd=self.cwd, timeout=120)
        for blob in (res.stdout, res.stderr):
            self.assertNotIn(SECRET.encode(), blob, "the secret access key leaked")
        return res

    def objects(self, bucket=None):
        status, got = lib.http_json("GET", self.s3.url + "/_admin/objects")
        self.assertEqual(status, 200)
        got = got["objects"]
        return [o for o in got if bucket is None or o["bucket"] == bucket]

    def assert_lines(self, lines):
        """The two rejections, each with what users need to fix it."""
        self.assertEqual(len(lines), 2, lines)
        by_line = {e["line"]: e for e in lines}
        self.assertEqual(set(by_line), {3, 4})
        local, target = by_line[3], by_line[4]
        self.assertEqual(local["rejected_by"], "destination")
        self.assertEqual(local["stream"], "clientes")
        self.assertEqual(local["record"], input_lines()[2]["record"]["data"])
        self.assertIsNone(local["record_sent"])
        self.assertIn("external_id <- id", [e.get("mapping") for e in local["errors"]])
        self.assertEqual(target["rejected_by"], "target")
        self.assertEqual(target["record"], input_lines()[3]["record"]["data"])
        self.assertEqual(target["record_sent"]["email"], "not-an-email")
        self.assertEqual(target["record_sent"]["external_id"], "C-4")
        errs = {e.get("field"): e for e in target["errors"]}
        self.assertEqual(errs["email"]["source_field"], "contact.mail")
        self.assertEqual(errs["email"]["mapping"], "email <- contact.mail")

    def assert_state_counts(self, res):
        self.assertEqual(len(res.states), 1, res.describe())
        stats = res.states[0]["destinationStats"]
        self.assertEqual(stats["recordCount"], 3.0)  # committed
        self.assertEqual(stats.get("rejectedRecordCount"), 2.0, res.states[0])

    def assert_nothing_local(self):
        self.assertEqual(os.listdir(self.cwd), [], "files in the working directory")

    # -- S3 ----------------------------------------------------------------------

    def test_s3_objects_under_prefix_stream_date(self):
        prefix = "rej-%s/crm" % secrets.token_hex(3)
        res = self.run_cmd("write", self.config(object_storage_config=self.s3_config(
            prefix=prefix)), "s3")
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_state_counts(res)
        objs = [o for o in self.objects("rejects") if o["key"].startswith(prefix + "/")]
        self.assertEqual(len(objs), 1, objs)
        today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        key = objs[0]["key"]
        self.assertTrue(key.startswith("%s/clientes/%s/destination-crm360-sync-%d-"
                                       % (prefix, today, SYNC_ID)), key)
        self.assertTrue(key.endswith(".jsonl"), key)
        self.assert_lines([json.loads(x) for x in objs[0]["text"].splitlines()])
        self.assert_nothing_local()
        self.assertEqual(os.listdir(self.tmp), [])
        self.assertTrue(any("s3://rejects/" + prefix in m for m in res.logs()), res.logs())

    def test_refusing_bucket_fails_before_the_state(self):
        res = self.run_cmd("write", self.config(object_storage_config=self.s3_config(
            bucket="locked")), "locked")
        self.assertNotEqual(res.rc, 0, res.describe())
        self.assertEqual(res.states, [], "a state counting unstored rejections went out")
        self.assertEqual(len(res.errors), 1, res.describe())
        self.assertIn("AccessDenied", res.errors[0]["message"])
        self.assertEqual(self.objects("locked"), [])

    def test_check_probes_the_bucket(self):
        ok = self.run_cmd("check", self.config(object_storage_config=self.s3_config()), "chk")
        status = ok.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
        self.assertEqual(status["status"], "SUCCEEDED", ok.describe())
        self.assertFalse([o for o in self.objects("rejects") if "/_check/" in o["key"]])
        bad = self.run_cmd("check", self.config(object_storage_config=self.s3_config(
            bucket="locked")), "chk-locked")
        status = bad.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
        self.assertEqual(status["status"], "FAILED", bad.describe())
        self.assertIn("AccessDenied", status["message"])
        wrong = dict(self.s3_config(), secret_access_key="wrong-secret-" + "x" * 8)
        bad = self.run_cmd("check", self.config(object_storage_config=wrong), "chk-wrong")
        status = bad.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
        self.assertEqual(status["status"], "FAILED", bad.describe())
        self.assertIn("SignatureDoesNotMatch", status["message"])

    # -- None, default, legacy -------------------------------------------------

    def test_none_counts_and_stores_nothing(self):
        before = len(self.objects())
        res = self.run_cmd("write", self.config(object_storage_config={"storage_type": "None"}),
                           "none")
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_state_counts(res)
        self.assertEqual(len(self.objects()), before)
        self.assertEqual(os.listdir(self.tmp), [])
        self.assert_nothing_local()
        self.assertTrue(any("2 rejected" in m for m in res.logs()), res.logs())

    def test_default_is_a_file_under_tmpdir_named_after_the_sync(self):
        res = self.run_cmd("write", self.config(), "default")
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_state_counts(res)
        self.assert_nothing_local()
        name = "destination-crm360-sync-%d-rejected.jsonl" % SYNC_ID
        self.assertEqual(os.listdir(self.tmp), [name])
        path = os.path.join(self.tmp, name)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assert_lines(lib.read_jsonl(path))

    def test_local_path_and_legacy_dead_letter_path(self):
        path = self.wd.join("mine.jsonl")
        res = self.run_cmd("write", self.config(object_storage_config={
            "storage_type": "Local", "path": path}), "local")
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_lines(lib.read_jsonl(path))
        legacy = self.wd.join("legacy.jsonl")
        res = self.run_cmd("write", self.config(dead_letter_path=legacy), "legacy")
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_lines(lib.read_jsonl(legacy))
        self.assert_nothing_local()
        self.assertEqual(os.listdir(self.tmp), [])

    def test_relative_local_path_is_refused(self):
        res = self.run_cmd("check", self.config(object_storage_config={
            "storage_type": "Local", "path": "rejected.jsonl"}), "relative")
        status = res.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
        self.assertEqual(status["status"], "FAILED", res.describe())
        self.assertIn("object_storage_config.path", status["message"])
        self.assert_nothing_local()


if __name__ == "__main__":
    lib.main(__doc__.split("\n")[0])
