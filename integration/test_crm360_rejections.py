#!/usr/bin/env python3
"""Rejection thresholds and check warnings of destination-crm360.

    test_crm360_rejections.py --bin build/destinations/crm360/destination-crm360

| input / config                                  | outcome                               |
|-------------------------------------------------|---------------------------------------|
| no default brand, 300 records without brand     | config_error once 50% of at least 100 |
|                                                 | records are rejected, naming          |
|                                                 | missing_field and the brand option;   |
|                                                 | only committed states acknowledged    |
| 2 of 3 records of wrong types                   | system_error naming invalid_type      |
| max_rejected_records 5, 6 bad records           | system_error at the 6th               |
| one bad record                                  | exit 0, the summary is a WARN         |
| max_rejected_ratio 1                            | exit 0 with everything rejected       |
| check without a default brand                   | SUCCEEDED with a WARN; FAILED when a  |
|                                                 | mapping sends no brand                |
| check against an HTML site                      | FAILED: "this is not a CRM360 API"    |
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from airbyte_input import input_states, js, record  # noqa: E402
from crm360_helpers import CrmCase, dump_by_key  # noqa: E402

HTML_SITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "html_site.py")


def stream_lines(n, make, state_every=10):
    """n customer records (make(i) -> data) with a STREAM state after every
    state_every records, sourceStats filled in."""
    lines = []
    since = 0
    for i in range(n):
        lines.append(js(record("customers", make(i))))
        since += 1
        if since == state_every or i == n - 1:
            lines.append(js({"type": "STATE", "state": {
                "type": "STREAM",
                "stream": {"stream_descriptor": {"name": "customers"},
                           "stream_state": {"upto": i}},
                "sourceStats": {"recordCount": float(since)}}}))
            since = 0
    return lines


def customer(i, **over):
    d = {"external_id": "C-%04d" % i, "brand": "aurora", "email": "c%d@example.com" % i,
         "updated_at": "2026-05-01T00:00:00Z"}
    d.update(over)
    return {k: v for k, v in d.items() if v is not None}


class Rejections(CrmCase):

    def assert_committed_prefix(self, inp, res):
        """The emitted states are a prefix of the input's, and every valid
        record of their windows is stored."""
        ins = input_states(inp)
        self.assertLess(len(res.states), len(ins), res.describe())
        stored = dump_by_key(self.dump())["customers"]
        msgs = dict(lib.parse_input(inp))
        for (line, st, _, window), out in zip(ins, res.states):
            self.assertEqual(lib.strip_dest_stats(out), st)
            for ln in window:
                d = msgs[ln]["record"]["data"]
                if isinstance(d.get("external_id"), str) and d.get("brand"):
                    self.assertIn(d["external_id"], stored, "line %d not stored" % ln)
        return ins

    def test_no_default_brand_fails_as_config_error(self):
        inp = self.wd.write_lines("in.jsonl", stream_lines(300, lambda i: customer(i, brand=None)))
        res = self.write(inp)
        e = self.assert_fatal(res, "config_error", [
            "too many rejected records", "of the 100 records of stream 'customers' rejected",
            "max_rejected_ratio (0.5)", "missing_field 100",
            "set the config option 'brand'"])
        self.assertNotIn("aurora", e["message"])
        self.assert_committed_prefix(inp, res)
        # everything before the 100th record was rejected (and counted)
        self.assertEqual(len(res.states), 9, res.describe())
        for out in res.states:
            self.assertEqual(out["destinationStats"]["recordCount"], 0.0)
            self.assertEqual(out["destinationStats"]["rejectedRecordCount"], 10.0)
        self.assertEqual(len(self.dead_letters()), 100)
        self.assertEqual(self.dump()["customers"], [])
        self.assertTrue(any(m.startswith("summary: stopped") for m in res.logs("WARN")),
                        res.describe())

    def test_wrong_types_fail_as_system_error(self):
        def make(i):
            return customer(i) if i % 3 == 0 else customer(i, external_id=i)
        inp = self.wd.write_lines("in.jsonl", stream_lines(300, make))
        res = self.write(inp)
        self.assert_fatal(res, "system_error", ["too many rejected records",
                                                "max_rejected_ratio", "invalid_type"])
        self.assert_committed_prefix(inp, res)

    def test_max_rejected_records(self):
        def make(i):
            return customer(i, external_id=None) if i % 7 == 3 else customer(i)
        inp = self.wd.write_lines("in.jsonl", stream_lines(60, make))
        res = self.write(inp, cfg=self.cfg(max_rejected_records=5))
        self.assert_fatal(res, "system_error", [
            "6 records rejected, more than max_rejected_records (5)", "missing_field 6"])
        self.assert_committed_prefix(inp, res)
        self.assertEqual(len(self.dead_letters()), 6)

    def test_under_the_thresholds_the_summary_is_a_warning(self):
        inp = self.wd.write_lines("in.jsonl", stream_lines(
            30, lambda i: customer(i, external_id=None) if i == 4 else customer(i)))
        res = self.write(inp)
        self.assert_ok(res)
        warn = [m for m in res.logs("WARN") if m.startswith("summary: finished")]
        self.assertEqual(len(warn), 1, res.describe())
        self.assertIn("1 rejected (missing_field 1)", warn[0])
        self.assertEqual(res.states[0]["destinationStats"]["rejectedRecordCount"], 1.0)

    def test_without_rejections_the_summary_is_info(self):
        inp = self.wd.write_lines("in.jsonl", stream_lines(30, customer))
        res = self.write(inp)
        self.assert_ok(res)
        self.assertTrue(any(m.startswith("summary: finished") for m in res.logs("INFO")))
        self.assertFalse(any(m.startswith("summary:") for m in res.logs("WARN")))

    def test_ratio_one_never_trips(self):
        inp = self.wd.write_lines("in.jsonl", stream_lines(150, lambda i: customer(i, brand=None)))
        res = self.write(inp, cfg=self.cfg(max_rejected_ratio=1))
        self.assert_ok(res)
        self.assertEqual(sum(s["destinationStats"]["rejectedRecordCount"] for s in res.states),
                         150)

    # -- check -----------------------------------------------------------------

    def test_check_warns_without_default_brand(self):
        res, st = self.check(self.cfg())
        self.assertEqual(st["status"], "SUCCEEDED", res.describe())
        self.assertTrue(any("no default brand" in m for m in res.logs("WARN")), res.describe())
        res, st = self.check(self.cfg(brand="aurora"), name="check-brand")
        self.assertEqual(st["status"], "SUCCEEDED", res.describe())
        self.assertFalse(any("brand" in m for m in res.logs("WARN")), res.describe())

    def test_check_fails_when_a_mapping_sends_no_brand(self):
        maps = [{"stream": "clientes", "object": "customers",
                 "fields": {"external_id": "id", "email": "mail"}}]
        res, st = self.check(self.cfg(stream_mappings=maps))
        self.assertEqual(st["status"], "FAILED", res.describe())
        self.assertIn("stream_mappings[0] (stream 'clientes') maps no 'brand'", st["message"])
        res, st = self.check(self.cfg(stream_mappings=maps, brand="aurora"), name="check-brand")
        self.assertEqual(st["status"], "SUCCEEDED", res.describe())

    def test_check_against_an_html_site(self):
        for status in (200, 404):
            site = lib.Server(HTML_SITE, ["--status", str(status)], name="html-site").start()
            try:
                res, st = self.check(self.cfg(api_url=site.url, brand="aurora"),
                                     name="check-html-%d" % status)
            finally:
                site.stop()
            self.assertEqual(st["status"], "FAILED", res.describe())
            self.assertIn("this is not a CRM360 API", st["message"])
            self.assertIn("HTML page", st["message"])
            self.assertNotIn("write scope", st["message"])


if __name__ == "__main__":
    lib.main(__doc__)
