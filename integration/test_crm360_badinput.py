#!/usr/bin/env python3
"""Bad input for destination-crm360: each case has one defined outcome.

    test_crm360_badinput.py --bin build/destinations/crm360/destination-crm360

| input                                   | outcome                                        |
|-----------------------------------------|------------------------------------------------|
| malformed JSON line N                   | fatal system_error naming "line N"; states     |
|                                         | before N emitted (their records committed),    |
|                                         | none after                                     |
| truncated last line (no newline)        | the same, naming the last line                 |
| complete last line without newline      | accepted                                       |
| invalid UTF-8 on line N                 | fatal naming "line N"                          |
| RECORD for a stream not in the catalog  | fatal naming the stream, the line and the      |
|                                         | catalog's closest streams and namespaces       |
| RECORD missing its key                  | dead letter, the sync goes on                  |
| wrong field types                       | dead letter (local or CRM360), sync goes on    |
| line over max_line_bytes                | fatal naming the line and the limit; peak RSS  |
|                                         | < 100 MB for a 200 MB line with a 1 MiB limit  |
| STATE for a stream not in the catalog   | passed through in order, counts 0              |
| empty input                             | exit 0, no states                              |
| unknown message type                    | ignored with a WARN log                        |
| integers over 64 bits                   | stored exactly in attributes; a state id over  |
|                                         | 64 bits is echoed with the same digits         |
| a record CRM360 refuses the whole batch | the batch is split until that record is alone: |
| for (400 invalid_json)                  | it is dead-lettered with CRM360's error, every |
|                                         | other record is committed; a rerun succeeds    |
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import airbyte_input  # noqa: E402
import lib  # noqa: E402
from airbyte_input import (BIG, BIG_NEG, U64_PLUS_1, assert_states,  # noqa: E402
                           fix_source_stats, insert_mid_window, js, record)
from crm360_helpers import (CrmCase, assert_dead_letters, assert_store_matches,  # noqa: E402
                            dump_by_key, key_of, start_emulator)


def base_lines(case, seed=101):
    """A small generated stream (80 records, states every 10 records of a
    stream) as a list of byte lines."""
    inp, exp = lib.run_gen_stream(case.wd, name="base", customers=40, orders=40,
                                  state_every=10, update_rate=0.1, seed=seed)
    return lib.read_input_lines(inp), exp


STREAM_NAME = 'customers'
KEY_NAME = b'external_id'
OBJECTS = ('customers', 'orders')
DATA_TMPL = (b'{"type":"RECORD","record":{"stream":"customers","emitted_at":1,"data":'
             b'{"external_id":%POISON%,"brand":"aurora","email":"a@b.com",'
             b'"updated_at":"2026-05-01T00:00:00Z"}}}')


class BadInput(CrmCase):
    # -- helpers -------------------------------------------------------------

    def valid_records_before(self, inp, line_no):
        """key -> latest updated_at among valid RECORD lines before line_no."""
        latest = {}
        for n, m in lib.parse_input(inp):
            if n >= line_no or m["type"] != "RECORD":
                continue
            d = m["record"]["data"]
            k = (m["record"]["stream"], key_of(d))
            latest[k] = max(latest.get(k, ""), d["updated_at"])
        return latest

    def assert_input_error(self, inp, res, line_no, contains=(), failure_type="system_error"):
        """Fatal at line_no: one TRACE error naming it, every state before it
        emitted (with its records stored), none after."""
        airbyte_input.assert_fatal_at_line(self, inp, res, line_no, contains, failure_type)
        stored = dump_by_key(self.dump())
        for (stream, key), ts in self.valid_records_before(inp, line_no).items():
            self.assertIn(key, stored[stream], "%s %s (before line %d) not stored"
                          % (stream, key, line_no))
            self.assertGreaterEqual(stored[stream][key]["updated_at"], ts)

    # -- fatal input errors --------------------------------------------------

    def test_malformed_json_line(self):
        lines, _ = base_lines(self)
        bad = b'{"type":"RECORD","record":{"stream":"customers","data":{"external_id":"C-X",}}}'
        lines, n = insert_mid_window(lines, [bad])
        inp = self.wd.write_lines("in.jsonl", lines)
        self.assert_input_error(inp, self.write(inp), n)

    def test_raw_nul_control_character_deep_nesting(self):
        lines, _ = base_lines(self)
        airbyte_input.check_lines_the_intake_stops_at(self, lines, "customers")

    def test_malformed_json_first_line(self):
        lines, _ = base_lines(self)
        inp = self.wd.write_lines("in.jsonl", [b"RECORD customers C-1"] + lines)
        self.assert_input_error(inp, self.write(inp), 1)

    def test_truncated_last_line(self):
        lines, _ = base_lines(self)
        airbyte_input.check_truncated_last_line(self, lines)

    def test_complete_last_line_without_newline(self):
        lines, exp = base_lines(self)
        airbyte_input.check_complete_last_line_without_newline(self, lines)

    def test_crlf_line_endings(self):
        lines, exp = base_lines(self)
        airbyte_input.check_crlf_line_endings(self, lines)

    def test_rate_too_low_is_a_config_error(self):
        """1e-300 requests per second used to wait forever without a word."""
        _, st = self.check(self.cfg(requests_per_second=1e-300))
        self.assertEqual(st["status"], "FAILED", st)
        self.assertIn("requests_per_second", st["message"])
        self.assertIn("request_timeout_seconds", st["message"])
        _, st = self.check(self.cfg(requests_per_second=0.1, request_timeout_seconds=20))
        self.assertEqual(st["status"], "SUCCEEDED", st)

    def test_fatal_error_with_stdout_closed(self):
        lines, _ = base_lines(self)
        airbyte_input.check_stdout_closed(self, lines)

    # Each poison value of the JSON intake, in place of the record's key.
    POISON = [
        (b'"C-\xc0\xaf-1"', "invalid UTF-8"),            # overlong 2 bytes
        (b'"C-\xe0\x80\xaf-2"', "invalid UTF-8"),        # overlong 3 bytes
        (b'"C-\xed\xa0\x80-3"', "invalid UTF-8"),        # UTF-8 surrogate
        (b'"C-\xf4\x90\x80\x80-4"', "invalid UTF-8"),   # above U+10FFFF
        (b'"C-\xff\xfe-5"', "invalid UTF-8"),
        (b'"C-\\udc00-6"', "unpaired surrogate escape (low half)"),
        (b'"C-\\ud800-7"', "unpaired surrogate escape (high half)"),
        (b'"C-8\\u0000evil"', "escaped NUL"),
        (b'"C-9","KEY":"C-9b"', "appears twice"),
        (b'1e999', "number out of range"),
    ]

    def test_poison_values_are_dead_lettered(self):
        """A record holding a value the intake refuses is dead-lettered
        with its line, stream and reason; every other record loads."""
        lines, exp = base_lines(self)
        bad = [DATA_TMPL.replace(b"%POISON%", p.replace(b"KEY", KEY_NAME)) for p, _ in self.POISON]
        # sourceStats count the poison lines too: fix them on parseable
        # stand-ins (Python's json refuses some poison), then swap back
        stand_in = DATA_TMPL.replace(b"%POISON%", b'"stand-in"')
        lines, n = insert_mid_window(lines, [stand_in] * len(bad), after_state=4)
        lines = fix_source_stats(lines)
        lines[n - 1:n - 1 + len(bad)] = bad
        inp = self.wd.write_lines("in.jsonl", lines)
        res = self.write(inp)
        self.assert_ok(res)
        invalid = [{"stream": STREAM_NAME, "line": n + i, "reason": r}
                   for i, (_, r) in enumerate(self.POISON)]

        def check_entry(e, want, line):
            self.assertEqual(e["rejected_by"], "destination")
            self.assertIsInstance(e["record"], str, "the line, as text")
            msg = " ".join(x.get("message", "") for x in e["errors"])
            self.assertIn(want["reason"], msg, "line %d: %r" % (line, e["errors"]))
            self.assertIn("at byte", msg)
            self.assertTrue(e["errors"][0]["field"].startswith("$.record.data"))

        airbyte_input.check_dead_letters(self, self.dead_letters(), invalid, check_entry)
        # every state goes out, and the summary counts the rejections
        # (Python's json cannot read the poison lines to check per state)
        self.assertEqual(len(res.states), sum(
            1 for ln in lines if ln.startswith(b'{"type":"STATE"')))
        self.assertTrue(any("%d rejected" % len(self.POISON) in m for m in res.logs()),
                        res.describe())
        stored = dump_by_key(self.dump())
        for obj in OBJECTS:
            self.assertEqual(set(stored[obj]), set(exp[obj]))

    def test_poison_stream_name_is_a_protocol_error(self):
        lines, _ = base_lines(self)
        bad = (b'{"type":"RECORD","record":{"stream":"' + STREAM_NAME.encode()
               + b'\\u0000evil","data":{}}}')
        lines, n = insert_mid_window(lines, [bad], after_state=4)
        inp = self.wd.write_lines("in.jsonl", lines)
        self.assert_input_error(inp, self.write(inp), n, ["escaped NUL", "$.record.stream"])

    def test_state_with_a_duplicate_member(self):
        lines, _ = base_lines(self)
        desc = b'"stream":{"stream_descriptor":{"name":"%s"},"stream_state":{}}' % STREAM_NAME.encode()
        bad = (b'{"type":"STATE","state":{"type":"STREAM",' + desc + b'},'
               b'"st\\u0061te":{"type":"STREAM",' + desc + b'}}')
        lines, n = insert_mid_window(lines, [bad], after_state=4)
        inp = self.wd.write_lines("in.jsonl", lines)
        self.assert_input_error(inp, self.write(inp), n, ["member 'state' appears twice"])

    def test_record_for_stream_not_in_catalog(self):
        lines, _ = base_lines(self)
        bad = js(record("invoices", {"external_id": "I-1", "brand": "aurora",
                                     "updated_at": "2026-05-01T00:00:00Z"}))
        lines, n = insert_mid_window(lines, [bad], after_state=2)
        inp = self.wd.write_lines("in.jsonl", lines)
        self.assert_input_error(inp, self.write(inp), n, ["invoices"], failure_type=None)

    def test_record_for_misspelt_stream_names_the_closest(self):
        lines, _ = base_lines(self)
        rec = record("custmers", {"external_id": "C-1", "brand": "aurora",
                                  "updated_at": "2026-05-01T00:00:00Z"})
        rec["record"]["namespace"] = "crm"
        lines, n = insert_mid_window(lines, [js(rec)], after_state=2)
        inp = self.wd.write_lines("in.jsonl", lines)
        self.assert_input_error(
            inp, self.write(inp), n,
            ["'crm.custmers' which is not in the configured catalog",
             "closest streams in the catalog: 'customers', 'orders'",
             "no stream of the catalog has a namespace"], failure_type=None)

    def test_global_state_after_stream_states(self):
        """A GLOBAL state counts from the previous state of any type: ten
        STREAM states then a GLOBAL state after one more record."""
        lines = []
        for i in range(11):
            lines.append(js(record("customers", {
                "external_id": "G-%d" % i, "brand": "aurora", "email": "g%d@b.com" % i,
                "updated_at": "2026-05-01T00:00:00Z"})))
            if i < 10:
                lines.append(js({"type": "STATE", "state": {
                    "type": "STREAM", "stream": {"stream_descriptor": {"name": "customers"},
                                                 "stream_state": {"n": i}},
                    "sourceStats": {"recordCount": 1.0}}}))
        lines.append(js({"type": "STATE", "state": {
            "type": "GLOBAL", "global": {"shared_state": {"n": 11}, "stream_states": []},
            "sourceStats": {"recordCount": 1.0}}}))
        inp = self.wd.write_lines("in.jsonl", lines)
        res = self.write(inp)
        self.assertEqual(res.rc, 0, res.describe())
        assert_states(self, inp, res, [])
        self.assertEqual(res.states[-1]["destinationStats"]["recordCount"], 1.0)

    def test_line_over_max_line_bytes_boundary(self):
        """A line of exactly max_line_bytes is accepted; one byte more is
        fatal naming the line and the limit."""
        lines, _ = base_lines(self)
        airbyte_input.check_max_line_bytes_boundary(self, lines, 64 * 1024)

    def test_oversize_line_in_the_same_read_as_earlier_lines(self):
        """The lines read together with the start of an oversize line are
        still loaded and their states emitted before the fatal error."""
        lines, _ = base_lines(self)
        over, n = insert_mid_window(lines, [b'{"type":"RECORD","record":{"stream":"customers",'
                                            b'"data":{"x":"' + b"y" * 5000 + b'"}}}'])
        inp = self.wd.write_lines("over-small.jsonl", over)
        # every line before the bad one fits in the first read of 64 KiB
        self.assertLess(sum(len(x) + 1 for x in over[:n - 1]), 64 * 1024)
        res = self.write(inp, cfg=self.cfg(max_line_bytes=1024), name="over-small")
        self.assert_input_error(inp, res, n, ["1024"])

    def test_200mb_line_memory_bounded(self):
        """A 200 MB line with max_line_bytes 1 MiB: fatal naming the line and
        the limit, peak RSS of the destination < 100 MB."""
        lines, _ = base_lines(self)
        airbyte_input.check_200mb_line(
            self, lines,
            b'{"type":"RECORD","record":{"stream":"customers","data":{"external_id":"C-H",'
            b'"brand":"aurora","attributes":{"blob":"',
            b'"}}}}\n', measure=True)

    # -- rejected records: dead letter, the sync goes on ---------------------

    def run_with_rejects(self, bad_records):
        """Insert (stream, data, reason) records mid-window; the sync must
        finish, dead-letter exactly them and count them in their states."""
        lines, exp = base_lines(self)
        bad_lines = [js(record(s, d)) for s, d, _ in bad_records]
        lines, n = insert_mid_window(lines, bad_lines)
        inp = self.wd.write_lines("in.jsonl", fix_source_stats(lines))
        invalid = [{"stream": s, "line": n + i, "reason": r, "key": key_of(d)}
                   for i, (s, d, r) in enumerate(bad_records)]
        res = self.write(inp)
        self.assert_ok(res)
        assert_states(self, inp, res, invalid)
        assert_dead_letters(self, self.dead_letters(), invalid)
        stored = dump_by_key(self.dump())
        for obj in ("customers", "orders"):
            self.assertEqual(set(stored[obj]), set(exp[obj]))
        return res

    def test_record_missing_its_key(self):
        cust = {"brand": "aurora", "email": "x@example.com",
                "updated_at": "2026-02-01T00:00:00Z"}
        self.run_with_rejects([
            ("customers", dict(cust), "missing_field external_id"),
            ("customers", dict(cust, external_id=""), "missing_field external_id"),
            ("customers", dict(cust, external_id=None), "missing_field external_id"),
            ("orders", {"brand": "aurora", "customer_external_id": "C-0000000",
                        "status": "paid", "currency": "BRL", "total": "1.00",
                        "items": [{"sku": "S", "quantity": 1, "unit_price": "1.00"}],
                        "placed_at": "2026-02-01T00:00:00Z",
                        "updated_at": "2026-02-01T00:00:00Z"}, "missing_field external_id"),
        ])

    def test_wrong_field_types(self):
        lines, _ = base_lines(self)
        cust = json.loads(lines[0])["record"]["data"]
        order = next(json.loads(ln)["record"]["data"] for ln in lines
                     if b'"stream":"orders"' in ln)
        u = "2026-03-01T00:00:00Z"
        self.run_with_rejects([
            ("orders", dict(order, external_id="O-T1", total=12.5, updated_at=u),
             "invalid_type total"),
            ("orders", dict(order, external_id="O-T2", total=12, updated_at=u),
             "invalid_type total"),
            ("customers", dict(cust, external_id=12345, updated_at=u),
             "invalid_type external_id"),
            ("customers", dict(cust, external_id="C-T3", tags="vip", updated_at=u),
             "invalid_type tags"),
            ("customers", dict(cust, external_id="C-T4", updated_at=1767225600),
             "invalid_type updated_at"),
            ("orders", dict(order, external_id="O-T5", items={"sku": "x"}, updated_at=u),
             "invalid_type items"),
        ])

    # -- tolerated input -----------------------------------------------------

    def test_state_for_stream_not_in_catalog(self):
        lines, _ = base_lines(self)
        airbyte_input.check_state_for_unknown_stream(self, lines, "invoices", "i-77")

    def test_empty_input(self):
        airbyte_input.check_empty_input(self)

    def test_unknown_message_type(self):
        lines, exp = base_lines(self)
        airbyte_input.check_unknown_message_type(self, lines)
        stored = dump_by_key(self.dump())
        self.assertEqual(set(stored["customers"]), set(exp["customers"]))

    def test_integers_over_64_bits(self):
        lines, _ = base_lines(self)
        cust = json.loads(lines[0])["record"]["data"]
        attrs = {"big": BIG, "neg": BIG_NEG, "u64_plus_1": U64_PLUS_1,
                 "nested": {"list": [BIG, -U64_PLUS_1]}}
        data = dict(cust, external_id="C-BIG", updated_at="2026-04-01T00:00:00Z",
                    attributes=attrs)
        airbyte_input.check_integers_over_64_bits(self, "customers", data)
        stored = dump_by_key(self.dump())["customers"]["%s/C-BIG" % cust["brand"]]
        self.assertEqual(stored["attributes"], attrs)


# A target whose parser allows less nesting than the connector's intake.
TARGET_MAX_DEPTH = 16


def deep(levels):
    v = "bottom"
    for _ in range(levels):
        v = {"a": v}
    return v


class TargetRefusesTheBatch(CrmCase):
    """One record in a batch makes CRM360 refuse the whole batch as
    invalid_json: the destination splits the batch until the record is
    alone, dead-letters it with CRM360's error and commits every other
    record; the connection is not stuck."""

    @classmethod
    def launch_emulator(cls):
        return start_emulator(rate=cls.emulator_rate,
                              extra=["--max-json-depth", str(TARGET_MAX_DEPTH)])

    def test_poison_record_is_isolated(self):
        lines, exp = base_lines(self)
        poison = js(record("customers", {
            "external_id": "C-POISON", "brand": "aurora", "email": "p@example.com",
            "attributes": deep(TARGET_MAX_DEPTH + 4),
            "updated_at": "2026-05-01T00:00:00Z"}))
        lines, n = insert_mid_window(lines, [poison], after_state=4)
        lines = fix_source_stats(lines)
        inp = self.wd.write_lines("in.jsonl", lines)
        n_states = sum(1 for ln in lines if ln.startswith(b'{"type":"STATE"'))
        for run in ("first", "rerun"):
            if run == "rerun":
                os.remove(self.wd.join("dead-letters.jsonl"))
            res = self.write(inp, name="write-" + run)
            self.assert_ok(res)
            self.assertEqual(len(res.states), n_states, res.describe())
            dls = self.dead_letters()
            self.assertEqual(len(dls), 1, dls)
            e = dls[0]
            self.assertEqual(e["rejected_by"], "target")
            self.assertEqual(e["line"], n)
            self.assertEqual(e["stream"], "customers")
            self.assertEqual(key_of(e["record"]), "aurora/C-POISON")
            self.assertEqual(e["errors"][0]["code"], "invalid_json", e["errors"])
            self.assertIn("nested deeper than", e["errors"][0]["message"])
            assert_store_matches(self, self.dump(), exp)
            if run == "first":
                self.assertTrue(any("refused batch" in m and "as a whole" in m
                                    for m in res.logs("WARN")), res.describe())


if __name__ == "__main__":
    lib.main(__doc__.split("\n")[0])
