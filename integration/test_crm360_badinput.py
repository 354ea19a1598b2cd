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
| RECORD for a stream not in the catalog  | fatal naming the stream and the line           |
| RECORD missing its key                  | dead letter, the sync goes on                  |
| wrong field types                       | dead letter (local or CRM360), sync goes on    |
| line over max_line_bytes                | fatal naming the line and the limit; peak RSS  |
|                                         | < 100 MB for a 200 MB line with a 1 MiB limit  |
| STATE for a stream not in the catalog   | passed through in order, counts 0              |
| empty input                             | exit 0, no states                              |
| unknown message type                    | ignored with a WARN log                        |
| integers over 64 bits                   | stored exactly in attributes; a state id over  |
|                                         | 64 bits is echoed with the same digits         |
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from test_crm360_e2e import (CrmCase, assert_dead_letters, assert_states,  # noqa: E402
                             catalog, dump_by_key, input_states, key_of)

BIG = 123456789012345678901234567890          # > 2^64
BIG_NEG = -98765432109876543210987654321
U64_PLUS_1 = 18446744073709551616
MiB = 1024 * 1024


def base_lines(case, seed=101):
    """A small generated stream (80 records, states every 10 records of a
    stream) as a list of byte lines."""
    inp, exp = lib.run_gen_stream(case.wd, name="base", customers=40, orders=40,
                                  state_every=10, update_rate=0.1, seed=seed)
    return lib.read_input_lines(inp), exp


def insert_mid_window(lines, bad, after_state=3, skip=2):
    """Insert bad lines `skip` lines after the after_state-th STATE; returns
    (lines, 1-based number of the first inserted line)."""
    seen = 0
    for i, ln in enumerate(lines):
        if ln.startswith(b'{"type":"STATE"'):
            seen += 1
            if seen == after_state:
                at = i + 1 + skip
                return lines[:at] + list(bad) + lines[at:], at + 1
    raise AssertionError("not enough states")


def fix_source_stats(lines):
    """Recompute sourceStats.recordCount of STREAM states after records were
    inserted (lines that are not JSON are left alone)."""
    counts = {}
    out = []
    for ln in lines:
        try:
            m = json.loads(ln)
        except ValueError:
            out.append(ln)
            continue
        if isinstance(m, dict) and m.get("type") == "RECORD":
            s = m["record"]["stream"]
            counts[s] = counts.get(s, 0) + 1
        elif isinstance(m, dict) and m.get("type") == "STATE" and \
                m["state"].get("type") == "STREAM":
            s = m["state"]["stream"]["stream_descriptor"]["name"]
            m["state"]["sourceStats"] = {"recordCount": float(counts.pop(s, 0))}
            ln = js(m)
        out.append(ln)
    return out


def record(stream, data):
    return {"type": "RECORD", "record": {"stream": stream, "emitted_at": 1767225600000,
                                         "data": data}}


def js(obj):
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


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
        self.assert_fatal(res, failure_type, ["line %d" % line_no] + list(contains))
        before = [s for s in input_states(inp) if s[0] < line_no]
        self.assertEqual(len(res.states), len(before),
                         "expected the %d states before line %d, got %d:\n%s"
                         % (len(before), line_no, len(res.states), res.describe()))
        for (ln, st, _, _), out in zip(before, res.states):
            self.assertEqual(lib.strip_dest_stats(out), st)
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

    def test_malformed_json_first_line(self):
        lines, _ = base_lines(self)
        inp = self.wd.write_lines("in.jsonl", [b"RECORD customers C-1"] + lines)
        self.assert_input_error(inp, self.write(inp), 1)

    def test_truncated_last_line(self):
        lines, _ = base_lines(self)
        full = lines[10]
        self.assertTrue(full.startswith(b'{"type":"RECORD"'))
        lines = lines + [full[:len(full) // 2]]
        inp = self.wd.write_lines("in.jsonl", lines, final_newline=False)
        self.assert_input_error(inp, self.write(inp), len(lines))

    def test_complete_last_line_without_newline(self):
        lines, exp = base_lines(self)
        self.assertTrue(lines[-1].startswith(b'{"type":"STATE"'))
        inp = self.wd.write_lines("in.jsonl", lines, final_newline=False)
        res = self.write(inp)
        self.assert_ok(res)
        assert_states(self, inp, res, [])
        self.assertEqual(res.states[-1]["id"], json.loads(lines[-1])["state"]["id"])

    def test_crlf_line_endings(self):
        lines, exp = base_lines(self)
        inp = self.wd.write_bytes("in.jsonl", b"".join(ln + b"\r\n" for ln in lines))
        res = self.write(inp)
        self.assert_ok(res)
        self.assertEqual(len(res.states), len(input_states(inp)))

    def test_invalid_utf8(self):
        lines, _ = base_lines(self)
        bad = (b'{"type":"RECORD","record":{"stream":"customers","emitted_at":1,"data":'
               b'{"external_id":"C-\xff\xfe-1","brand":"aurora","email":"a@b.com",'
               b'"updated_at":"2026-05-01T00:00:00Z"}}}')
        lines, n = insert_mid_window(lines, [bad], after_state=4)
        inp = self.wd.write_lines("in.jsonl", lines)
        self.assert_input_error(inp, self.write(inp), n)

    def test_record_for_stream_not_in_catalog(self):
        lines, _ = base_lines(self)
        bad = js(record("invoices", {"external_id": "I-1", "brand": "aurora",
                                     "updated_at": "2026-05-01T00:00:00Z"}))
        lines, n = insert_mid_window(lines, [bad], after_state=2)
        inp = self.wd.write_lines("in.jsonl", lines)
        self.assert_input_error(inp, self.write(inp), n, ["invoices"], failure_type=None)

    def test_line_over_max_line_bytes_boundary(self):
        """A line of exactly max_line_bytes is accepted; one byte more is
        fatal naming the line and the limit."""
        limit = 64 * 1024
        lines, _ = base_lines(self)
        rec = json.loads(lines[0])
        self.assertEqual(rec["type"], "RECORD")

        def padded(size):
            rec["record"]["padding"] = ""   # unknown message member: ignored
            raw = js(rec)
            rec["record"]["padding"] = "x" * (size - len(raw))
            raw = js(rec)
            self.assertEqual(len(raw), size)
            return raw

        ok_lines = [padded(limit)] + lines[1:]
        inp = self.wd.write_lines("fits.jsonl", ok_lines)
        res = self.write(inp, cfg=self.cfg(max_line_bytes=limit), name="fits")
        self.assert_ok(res)
        self.assertEqual(len(res.states), len(input_states(inp)))

        self.emu.post("/_admin/reset")
        over, n = insert_mid_window(lines, [padded(limit + 1)])
        inp = self.wd.write_lines("over.jsonl", over)
        res = self.write(inp, cfg=self.cfg(max_line_bytes=limit), name="over")
        self.assert_input_error(inp, res, n, [str(limit)])

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
        head, n = insert_mid_window(lines, [b"@@HUGE@@"])
        head = head[:n - 1]
        tail = lines[n - 1:]
        chunk = b"y" * MiB

        def stream():
            yield b"".join(ln + b"\n" for ln in head)
            yield b'{"type":"RECORD","record":{"stream":"customers","data":{"external_id":"C-H",'
            yield b'"brand":"aurora","attributes":{"blob":"'
            for _ in range(200):
                yield chunk
            yield b'"}}}}\n'
            yield b"".join(ln + b"\n" for ln in tail)

        # for the state check: the same lines with a small stand-in
        inp = self.wd.write_lines("huge-standin.jsonl", head + [b"@@huge@@"] + tail)
        cfg_path = self.write_config(self.cfg(max_line_bytes=MiB), "huge.config.json")
        cat_path = self.wd.write_json("huge.catalog.json", catalog())
        res = lib.run_connector(lib.binary(), ["write", "--config", cfg_path, "--catalog",
                                               cat_path], self.wd, stdin=stream(), name="huge",
                                timeout=120, measure=True)
        self.assertFalse(res.timed_out, res.describe())
        self.assert_input_error(inp, res, n, [str(MiB)])
        peak_mb = res.maxrss_kb / 1024.0
        sys.stderr.write("[200 MB line: peak RSS %.1f MB, %.2f s] " % (peak_mb, res.wall))
        self.assertLess(peak_mb, 100, "peak RSS %.1f MB" % peak_mb)

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
        st = {"type": "STATE", "state": {
            "type": "STREAM", "stream": {"stream_descriptor": {"name": "invoices"},
                                         "stream_state": {"cursor": "i-77"}},
            "sourceStats": {"recordCount": 0.0}, "id": 9001}}
        lines, n = insert_mid_window(lines, [js(st)], after_state=3)
        inp = self.wd.write_lines("in.jsonl", lines)
        res = self.write(inp)
        self.assert_ok(res)
        assert_states(self, inp, res, [])
        out = [s for s in res.states if s.get("id") == 9001]
        self.assertEqual(len(out), 1)
        self.assertEqual(out[0]["destinationStats"],
                         {"recordCount": 0, "rejectedRecordCount": 0})
        self.assertTrue(any("invoices" in m for m in res.logs("WARN")), res.describe())

    def test_empty_input(self):
        for name, data in (("empty", b""), ("blank", b"\n\n  \n")):
            inp = self.wd.write_bytes(name + ".jsonl", data)
            res = self.write(inp, name=name)
            self.assert_ok(res)
            self.assertEqual(res.states, [])
        self.assertEqual(self.applied(), [])

    def test_unknown_message_type(self):
        lines, exp = base_lines(self)
        unk = js({"type": "SHINY_NEW_THING", "shiny_new_thing": {"a": 1}})
        lines, n = insert_mid_window(lines, [unk])
        inp = self.wd.write_lines("in.jsonl", lines)
        res = self.write(inp)
        self.assert_ok(res)
        assert_states(self, inp, res, [])
        warns = [m for m in res.logs("WARN") if "SHINY_NEW_THING" in m]
        self.assertEqual(len(warns), 1, res.describe())
        stored = dump_by_key(self.dump())
        self.assertEqual(set(stored["customers"]), set(exp["customers"]))

    def test_integers_over_64_bits(self):
        lines, _ = base_lines(self)
        cust = json.loads(lines[0])["record"]["data"]
        attrs = {"big": BIG, "neg": BIG_NEG, "u64_plus_1": U64_PLUS_1,
                 "nested": {"list": [BIG, -U64_PLUS_1]}}
        data = dict(cust, external_id="C-BIG", updated_at="2026-04-01T00:00:00Z",
                    attributes=attrs)
        st_id = 98765432109876543210987654321987654321
        st = {"type": "STATE", "state": {
            "type": "STREAM", "stream": {"stream_descriptor": {"name": "customers"},
                                         "stream_state": {"cursor": BIG}},
            "sourceStats": {"recordCount": 1.0}, "id": st_id}}
        inp = self.wd.write_lines("in.jsonl", [js(record("customers", data)), js(st)])
        res = self.write(inp)
        self.assert_ok(res)
        self.assertEqual(len(res.states), 1)
        self.assertEqual(res.states[0]["id"], st_id)
        self.assertEqual(res.states[0]["stream"]["stream_state"]["cursor"], BIG)
        self.assertIn(b'"id":%d' % st_id, res.stdout, "state id not echoed digit for digit")
        self.assertIn(b'"cursor":%d' % BIG, res.stdout)
        stored = dump_by_key(self.dump())["customers"]["%s/C-BIG" % cust["brand"]]
        self.assertEqual(stored["attributes"], attrs)


if __name__ == "__main__":
    lib.main(__doc__.split("\n")[0])
