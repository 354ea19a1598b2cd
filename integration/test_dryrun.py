#!/usr/bin/env python3
"""--dry-run of write and load (destination-crm360): validate, map and batch, send nothing.

    test_dryrun.py --bin build/destinations/crm360/destination-crm360

* A dry run makes no request to the emulator (its request counter stays at
  0), writes no dead-letter file, no checkpoint file and no STATE.
* It reports the requests it would send per object and operation, shows
  --show-requests N bodies, and reports every rejection a real run makes
  for rules that can be checked locally, with the same line, field and
  code; a real run of the same input then rejects exactly those plus the
  records only CRM360 can judge (unknown_customer), which the dry run names.
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from crm360_helpers import CrmCase  # noqa: E402

REJECT_RE = re.compile(r"^dry run: line (\d+)(?: of (\S+))? of stream '([^']*)' would be "
                       r"rejected by the (destination|target \(its rules, checked locally\)): "
                       r"(\[.*\])$")


def dry_rejections(res):
    out = set()
    for m in res.logs():
        g = REJECT_RE.match(m)
        if g:
            for e in json.loads(g.group(5)):
                out.add((int(g.group(1)), e["field"], e["code"]))
    return out


def customer(i, **over):
    r = {"external_id": "c%04d" % i, "brand": "b1", "email": "c%d@example.com" % i,
         "updated_at": "2024-01-01T00:00:00Z"}
    r.update(over)
    return r


class DryRun(CrmCase):
    def run_bin(self, args, name, stdin=None):
        return self.finish(lib.Connector(lib.binary(), args, self.wd, name=name, stdin=stdin))

    def test_write_dry_run_reports_the_real_runs_local_rejections(self):
        inp, exp = lib.run_gen_stream(self.wd, customers=300, orders=400, seed=5, invalid=40)
        cfg = self.write_config(self.cfg(dead_letter_path=self.wd.join("dry-dl.jsonl")), "d.json")
        cat = self.wd.write_json("cat.json", self.default_catalog())
        dry = self.run_bin(["write", "--config", cfg, "--catalog", cat, "--input", inp,
                            "--dry-run", "--show-requests", "1"], "dry")
        self.assert_ok(dry)
        self.assertEqual(self.emu.get("/_admin/stats")["requests_total"], 0)
        self.assertEqual(dry.states, [])
        self.assertFalse(os.path.exists(self.wd.join("dry-dl.jsonl")))
        logs = dry.logs()
        self.assertTrue(any(m.startswith("dry run: customers batchUpsert:") for m in logs), logs)
        self.assertTrue(any(m.startswith("dry run: orders batchUpsert:") for m in logs), logs)
        self.assertTrue(any("unknown_customer" in m for m in logs))
        shown = [m for m in logs if m.startswith("dry run: request ")]
        self.assertEqual(len(shown), 1)
        body = json.loads(shown[0].split("): ", 1)[1])
        self.assertGreater(len(body["records"]), 0)

        real = self.write(inp, name="real")
        self.assert_ok(real)
        dl = self.dead_letters()
        real_rej = {(e["line"], x["field"], x["code"]) for e in dl for x in e["errors"]}
        local = {r for r in real_rej if r[2] != "unknown_customer"}
        self.assertEqual(dry_rejections(dry), local)
        self.assertGreater(len(local), 0)
        kinds = {i["reason"].split()[0] for i in exp["invalid"]}
        self.assertIn("unknown_customer", kinds, "the input has no target-only rejection")
        self.assertTrue(any(r[2] == "unknown_customer" for r in real_rej))
        # what the dry run would send plus what it rejected by the target's
        # rules is what the real run sent
        recs = sum(int(m.split(", ")[1].split()[0]) for m in logs
                   if re.match(r"dry run: \w+ \w+: \d+ requests", m))
        by_target = [e for e in dl if e["rejected_by"] == "target"
                     and e["errors"][0]["code"] != "unknown_customer"]
        sent = sum(self.emu.get("/_admin/stats")["records_by_status"].values())
        self.assertEqual(recs + len(by_target), sent)

    def test_load_dry_run_rules_and_samples(self):
        recs = [customer(i) for i in range(250)]
        recs[10]["email"] = "not-an-email"
        recs[20]["document"] = "12345678900"
        recs[30]["phone"] = "11 98765-4321"
        recs[40]["updated_at"] = "2024-01-01 10:00"
        recs[50]["tags"] = ["x" * 65]
        recs[60]["name"] = 7
        del recs[70]["external_id"]
        path = self.wd.write_bytes("c.jsonl", "".join(json.dumps(r) + "\n"
                                                      for r in recs).encode() + b"[1]\n")
        ck = self.wd.join("ck")
        cfg = self.write_config(self.cfg(batch_size=100), "l.json")
        dry = self.run_bin(["load", "--config", cfg, "--object", "customers", "--dry-run",
                            "--show-requests", "2", "--checkpoint-file", ck, path], "dry")
        self.assert_ok(dry)
        self.assertEqual(self.emu.get("/_admin/stats")["requests_total"], 0)
        self.assertFalse(os.path.exists(ck))
        got = dry_rejections(dry)
        self.assertEqual(got, {(11, "email", "invalid_format"), (21, "document", "invalid_format"),
                               (31, "phone", "invalid_format"), (41, "updated_at", "invalid_format"),
                               (51, "tags[0]", "too_long"), (61, "name", "invalid_type"),
                               (71, "external_id", "missing_field"), (251, "$", "not_an_object")})
        self.assertEqual(len([m for m in dry.logs() if m.startswith("dry run: request ")]), 2)
        self.assertIn("dry run: customers batchUpsert: 3 requests, 243 records", "\n".join(dry.logs()))

        real = self.run_bin(["load", "--config", cfg, "--object", "customers", path], "real")
        self.assert_ok(real)
        real_rej = {(e["line"], x["field"], x["code"]) for e in self.dead_letters()
                    for x in e["errors"]}
        self.assertEqual(real_rej, got)


if __name__ == "__main__":
    lib.main(__doc__)
