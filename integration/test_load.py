#!/usr/bin/env python3
"""load: plain JSONL files (and gzip) into destination-crm360, with a checkpoint file.

    test_load.py --bin build/destinations/crm360/destination-crm360

* 100,000 records, the load killed with SIGKILL at 10 random points and rerun
  each time with the same checkpoint file: at the end every record was
  applied exactly once (the emulator's journal of applied writes holds each
  key once, created, and nothing answered "unchanged").
* gzip input, several files (plain and gzip) in one load, a resumed file.
* bad input: a line that is not an object and a line that is not JSON are
  rejections naming their line and file; corrupt and truncated gzip are an
  error naming the byte offset, with nothing after the last commit
  recorded; a corrupt, foreign or stale checkpoint file is an error and
  nothing is sent.
"""

import gzip
import json
import os
import random
import signal
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from crm360_helpers import CrmCase  # noqa: E402


def customer(i, brand="b1"):
    return {"external_id": "c%06d" % i, "brand": brand, "email": "c%d@example.com" % i,
            "name": "Customer %d" % i, "updated_at": "2024-01-01T00:00:%02dZ" % (i % 60)}


def write_records(path, recs, gz=False, extra=()):
    data = "".join(json.dumps(r) + "\n" for r in recs) + "".join(extra)
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data.encode())
    else:
        with open(path, "w") as f:
            f.write(data)
    return path


def file_identity(path):
    """What the checkpoint file records of an input file."""
    st = os.stat(path)
    with open(path, "rb") as f:
        head = f.read(65536)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "head_crc32": zlib.crc32(head)}


class Load(CrmCase):
    def load(self, files, cfg=None, extra=(), name="load", timeout=300, obj="customers"):
        cfg_path = self.write_config(cfg or self.cfg(), name + ".config.json")
        args = ["load", "--config", cfg_path, "--object", obj] + list(extra) + list(files)
        return lib.Connector(lib.binary(), args, self.wd, name=name)

    def run_load(self, files, **kw):
        return self.finish(self.load(files, **kw))

    def stats(self):
        return self.emu.get("/_admin/stats")

    def applied_keys(self):
        return [(a["object"], a["brand"], a["external_id"], a["status"]) for a in self.applied()]

    def assert_exactly_once(self, n, brand="b1"):
        applied = self.applied_keys()
        keys = [k[2] for k in applied]
        self.assertEqual(len(keys), len(set(keys)), "a record was applied twice")
        want = {"c%06d" % i for i in range(n)}
        self.assertEqual(set(keys), want)
        self.assertEqual({k[3] for k in applied}, {"created"})
        st = self.stats()
        self.assertEqual(st["records_live"]["customers"], n)
        self.assertNotIn("unchanged", st["records_by_status"], st)

    # -- the crash test ------------------------------------------------------------

    def test_sigkill_ten_times_applies_each_record_once(self):
        n = 100000
        path = write_records(self.wd.join("customers.jsonl"), [customer(i) for i in range(n)])
        ck = self.wd.join("load.ckpt")
        rng = random.Random(int(os.environ.get("AB_TEST_SEED", "9")))
        cfg = self.cfg(batch_size=200, max_in_flight=4)
        kills = 0
        runs = 0
        last_line = 0
        while kills < 10:
            runs += 1
            self.assertLess(runs, 40, "the load kept finishing before it could be killed")
            conn = self.load([path], cfg=cfg, extra=["--checkpoint-file", ck],
                             name="run%d" % runs)
            time.sleep(rng.uniform(0.15, 1.2))
            if conn.proc.poll() is None:
                os.kill(conn.pid, signal.SIGKILL)
                kills += 1
            res = conn.wait(timeout=120)
            # the checkpoint file is always whole, and only moves forward (a
            # run killed before its first commit has not written it yet)
            if not os.path.exists(ck):
                self.assertEqual(last_line, 0, "the checkpoint file disappeared")
                continue
            with open(ck) as f:
                doc = json.load(f)
            line = doc["files"][0]["line"]
            self.assertGreaterEqual(line, last_line)
            last_line = line
            if res.rc == 0:
                break
        res = self.run_load([path], cfg=cfg, extra=["--checkpoint-file", ck], name="final")
        self.assert_ok(res)
        with open(ck) as f:
            doc = json.load(f)
        self.assertTrue(doc["files"][0]["complete"], doc)
        self.assertEqual(doc["files"][0]["line"], n)
        self.assertGreaterEqual(kills, 10)
        self.assert_exactly_once(n)
        print("  %d runs, %d killed, resumed at lines up to %d" % (runs + 1, kills, last_line))

    def test_rerun_after_completion_sends_nothing(self):
        path = write_records(self.wd.join("c.jsonl"), [customer(i) for i in range(500)])
        ck = self.wd.join("ck")
        self.assert_ok(self.run_load([path], extra=["--checkpoint-file", ck]))
        before = self.stats()["requests_total"]
        res = self.run_load([path], extra=["--checkpoint-file", ck], name="again")
        self.assert_ok(res)
        self.assertIn(b"loaded completely by an earlier run", res.stdout)
        self.assertEqual(self.stats()["requests_total"], before)
        self.assert_exactly_once(500)

    # -- inputs --------------------------------------------------------------------

    def test_gzip_input(self):
        path = write_records(self.wd.join("c.jsonl.gz"), [customer(i) for i in range(3000)],
                             gz=True)
        ck = self.wd.join("ck")
        self.assert_ok(self.run_load([path], extra=["--checkpoint-file", ck]))
        self.assert_exactly_once(3000)
        with open(ck) as f:
            doc = json.load(f)
        self.assertTrue(doc["files"][0]["complete"])
        self.assertEqual(doc["files"][0]["line"], 3000)

    def test_gzip_resume_from_checkpoint(self):
        """A checkpoint in the middle of a gzip file: the rerun inflates it
        from the start and sends only what follows the committed line."""
        recs = [customer(i) for i in range(2000)]
        plain = write_records(self.wd.join("first.jsonl"), recs[:1200])
        ck = self.wd.join("ck")
        self.assert_ok(self.run_load([plain], extra=["--checkpoint-file", ck], name="first"))
        with open(ck) as f:
            doc = json.load(f)
        gz = write_records(self.wd.join("all.jsonl.gz"), recs, gz=True)
        # a checkpoint saying "1200 lines of all.jsonl.gz are committed"
        doc["files"] = [dict(file_identity(gz), path=gz, offset=doc["files"][0]["offset"],
                             line=1200, complete=False)]
        with open(ck, "w") as f:
            json.dump(doc, f)
        res = self.run_load([gz], extra=["--checkpoint-file", ck], name="resume")
        self.assert_ok(res)
        self.assertIn(b"resuming after line 1200", res.stdout)
        self.assert_exactly_once(2000)

    def test_several_files(self):
        a = write_records(self.wd.join("a.jsonl"), [customer(i) for i in range(0, 700)],
                          extra=["[\"not\", \"an object\"]\n"])
        b = write_records(self.wd.join("b.jsonl.gz"), [customer(i) for i in range(700, 1500)],
                          gz=True, extra=["{\"broken\": \n"])
        ck = self.wd.join("ck")
        res = self.run_load([a, b], extra=["--checkpoint-file", ck])
        self.assert_ok(res)
        self.assert_exactly_once(1500)
        dl = self.dead_letters()
        self.assertEqual([(e["file"], e["line"], e["errors"][0]["code"]) for e in dl],
                         [(a, 701, "not_an_object"), (b, 801, "invalid_json")])
        self.assertIn("line 701", dl[0]["errors"][0]["message"])
        self.assertEqual(dl[0]["record"], ["not", "an object"])
        with open(ck) as f:
            doc = json.load(f)
        self.assertEqual([(x["path"], x["line"], x["complete"]) for x in doc["files"]],
                         [(a, 701, True), (b, 801, True)])

    def test_stdin(self):
        data = "".join(json.dumps(customer(i)) + "\n" for i in range(300)).encode()
        cfg_path = self.write_config(self.cfg(), "stdin.config.json")
        res = self.finish(lib.Connector(lib.binary(), ["load", "--config", cfg_path, "--object",
                                                       "customers", "-"],
                                        self.wd, name="stdin", stdin=data))
        self.assert_ok(res)
        self.assert_exactly_once(300)

    # -- bad input ------------------------------------------------------------------

    def corrupt_gzip(self, n):
        """A gzip file of n records with bytes flipped in the middle."""
        path = write_records(self.wd.join("bad.jsonl.gz"), [customer(i) for i in range(n)],
                             gz=True)
        with open(path, "r+b") as f:
            data = bytearray(f.read())
            mid = len(data) * 3 // 4
            for i in range(mid, mid + 64):
                data[i] ^= 0x5A
            f.seek(0)
            f.write(data)
        return path, mid

    def test_corrupt_gzip(self):
        path, mid = self.corrupt_gzip(20000)
        ck = self.wd.join("ck")
        res = self.run_load([path], extra=["--checkpoint-file", ck])
        e = self.assert_fatal(res, contains=["corrupt gzip data", "at byte", path])
        at = int(e["message"].split("at byte ")[1].split()[0])
        # found where inflation fails: in the flipped bytes, or at the
        # member's CRC-32 when they still decode
        self.assertGreaterEqual(at, mid)
        self.assertLessEqual(at, os.path.getsize(path))
        with open(ck) as f:
            doc = json.load(f)
        # the checkpoint holds only committed lines, each of them applied
        line = doc["files"][0]["line"]
        self.assertFalse(doc["files"][0]["complete"])
        keys = {k[2] for k in self.applied_keys()}
        self.assertTrue({"c%06d" % i for i in range(line)} <= keys)

    def test_gzip_bad_second_member(self):
        """A valid member followed by one with a broken header: the error
        names the byte where the second member starts (give or take its
        header); the first member's records are committed."""
        first = gzip.compress("".join(json.dumps(customer(i)) + "\n"
                                      for i in range(1000)).encode())
        path = self.wd.write_bytes("two.jsonl.gz", first + b"\x1f\x8b\x63\x00" + b"x" * 200)
        res = self.run_load([path], extra=["--checkpoint-file", self.wd.join("ck")])
        e = self.assert_fatal(res, contains=["corrupt gzip data", "at byte"])
        at = int(e["message"].split("at byte ")[1].split()[0])
        self.assertGreaterEqual(at, len(first))
        self.assertLessEqual(at, len(first) + 10)
        with open(self.wd.join("ck")) as f:
            doc = json.load(f)
        self.assertFalse(doc["files"][0]["complete"])
        self.assertLessEqual(doc["files"][0]["line"], 1000)

    def test_truncated_gzip(self):
        path = write_records(self.wd.join("t.jsonl.gz"), [customer(i) for i in range(2000)],
                             gz=True)
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(size - 20)
        res = self.run_load([path], extra=["--checkpoint-file", self.wd.join("ck")])
        self.assert_fatal(res, contains=["truncated gzip data", "at byte"])

    def test_corrupt_checkpoint_file(self):
        path = write_records(self.wd.join("c.jsonl"), [customer(i) for i in range(100)])
        ck = self.wd.write_bytes("ck", b'{"format":"ab-load-checkpoint","version":1,"conn')
        res = self.run_load([path], extra=["--checkpoint-file", ck])
        self.assert_fatal(res, failure_type="config_error", contains=["is corrupt", ck])
        self.assertEqual(self.stats()["requests_total"], 0)

    def test_foreign_checkpoint_file(self):
        a = write_records(self.wd.join("a.jsonl"), [customer(i) for i in range(100)])
        b = write_records(self.wd.join("b.jsonl"), [customer(i) for i in range(100, 150)])
        ck = self.wd.join("ck")
        self.assert_ok(self.run_load([a], extra=["--checkpoint-file", ck]))
        sent = self.stats()["requests_total"]
        # another object
        res = self.run_load([a], extra=["--checkpoint-file", ck], obj="orders", name="orders")
        self.assert_fatal(res, failure_type="config_error", contains=["belongs to another load"])
        # another file list
        res = self.run_load([b], extra=["--checkpoint-file", ck], name="other")
        self.assert_fatal(res, failure_type="config_error", contains=["this load names"])
        # the same path, another content
        write_records(a, [customer(i) for i in range(101)])
        res = self.run_load([a], extra=["--checkpoint-file", ck], name="changed")
        self.assert_fatal(res, failure_type="config_error",
                          contains=["was recorded for another file", "the size differs"])
        # not a checkpoint at all
        ck2 = self.wd.write_bytes("ck2", b'{"hello": "world"}')
        res = self.run_load([a], extra=["--checkpoint-file", ck2], name="notckpt")
        self.assert_fatal(res, failure_type="config_error", contains=["is not a load checkpoint"])
        self.assertEqual(self.stats()["requests_total"], sent)

    def test_usage_errors(self):
        cfg_path = self.write_config(self.cfg(), "u.config.json")
        for args, needle in (
                (["load", "--config", cfg_path, "x.jsonl"], b"exactly one of --object"),
                (["load", "--config", cfg_path, "--object", "customers"], b"at least one FILE"),
                (["load", "--config", cfg_path, "--object", "customers", "--checkpoint-file",
                  "ck", "-"], b"stdin cannot be read again")):
            res = lib.run_connector(lib.binary(), args, self.wd, name="usage")
            self.assertEqual(res.rc, 2, res.describe())
            self.assertIn(needle, res.stderr)


if __name__ == "__main__":
    lib.main(__doc__)
