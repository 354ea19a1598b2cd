#!/usr/bin/env python3
"""Bad input for destination-shops: each case has one defined outcome.

    test_shops_badinput.py --bin build/destinations/shops/destination-shops

The same semantics as the core driver (and destination-crm360):

| input                                   | outcome                                        |
|-----------------------------------------|------------------------------------------------|
| malformed JSON line N                   | fatal TRACE system_error naming "line N";      |
|                                         | states before N emitted (their records         |
|                                         | committed), none after                         |
| truncated last line (no newline)        | the same, naming the last line                 |
| complete last line without newline      | accepted                                       |
| CRLF line endings                       | accepted                                       |
| invalid UTF-8 on line N                 | fatal system_error naming "line N"             |
| RECORD for a stream not in the catalog  | fatal system_error naming the line and stream  |
| line over max_line_bytes                | fatal naming the line and the limit (a line of |
|                                         | exactly the limit is accepted); peak RSS       |
|                                         | < 100 MB for a 200 MB line with a 1 MiB limit  |
| RECORD missing its key (sku)            | dead letter (missing_field sku), sync goes on  |
| wrong field types                       | dead letter by Shops' item rules, checked      |
|                                         | before sending (target, Shops' field and       |
|                                         | code), sync goes on                            |
| STATE for a stream not in the catalog   | passed through in order, counts 0, WARN        |
| empty input                             | exit 0, no states, nothing created             |
| unknown message type                    | ignored with one WARN                          |
| integers over 64 bits                   | stored exactly in attributes; state ids and    |
|                                         | cursors echoed with the same digits            |
| bad input in a full refresh (overwrite) | fatal as above, nothing deactivated, also with |
|                                         | replace_deactivate_without_complete            |
| an item Shops refuses its whole part for| parts of the part uploaded under its number    |
| (400 invalid_json: nesting deeper than  | until the item is alone: dead letter (target,  |
| the target's parser takes)              | invalid_json, line, stream), the rest          |
|                                         | committed, states counted; a part left empty   |
|                                         | is dropped; a rerun succeeds                   |
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import airbyte_input  # noqa: E402
import lib  # noqa: E402
from airbyte_input import (BIG, BIG_NEG, BIG_STATE_ID, U64_PLUS_1, assert_states,  # noqa: E402
                           fix_source_stats, input_states, insert_mid_window, js, record)
from shops_helpers import (STREAMS, ShopsCase, assert_dead_letters,  # noqa: E402
                           assert_no_open_imports, assert_store_equals, catalog, dump_by_key,
                           expected_store, item_key, ts_key)

T = "2026-03-01T00:00:00Z"


STREAM_NAME = 'products'
KEY_NAME = b'sku'
DATA_TMPL = (b'{"type":"RECORD","record":{"stream":"products","emitted_at":1,"data":'
             b'{"sku":%POISON%,"brand":"aurora","title":"x","price":"1.00",'
             b'"currency":"BRL","updated_at":"2026-05-01T00:00:00Z"}}}')


class BadInput(ShopsCase):
    # -- helpers -------------------------------------------------------------

    def base(self, seed=101, **opts):
        """A small generated stream (100 records, a state every 10 records of
        a stream) as a list of byte lines, and its expected outcome."""
        o = dict(products=40, inventory=60, state_every=10, update_rate=0.1, seed=seed)
        o.update(opts)
        inp, exp = self.gen(name="base", **o)
        return lib.read_input_lines(inp), exp

    def product_line(self, lines):
        return next(json.loads(ln)["record"]["data"] for ln in lines
                    if b'"stream":"products"' in ln and ln.startswith(b'{"type":"RECORD"'))

    def inventory_line(self, lines):
        return next(json.loads(ln)["record"]["data"] for ln in lines
                    if b'"stream":"inventory"' in ln and ln.startswith(b'{"type":"RECORD"'))

    def valid_records_before(self, inp, line_no):
        """(stream, key) -> latest instant among RECORD lines before line_no."""
        latest = {}
        for n, m in lib.parse_input(inp):
            if n >= line_no or m.get("type") != "RECORD":
                continue
            d = m["record"]["data"]
            k = (m["record"]["stream"], item_key(m["record"]["stream"], d))
            latest[k] = max(latest.get(k, 0), ts_key(d["updated_at"]))
        return latest

    def assert_input_error(self, inp, res, line_no, contains=(), failure_type="system_error"):
        """Fatal at line_no: one TRACE error naming it, every state before it
        emitted (with its records stored), none after; no import left open."""
        before = airbyte_input.assert_fatal_at_line(self, inp, res, line_no, contains,
                                                    failure_type)
        self.assertGreater(len(before), 0)
        dump = self.dump()
        stored = dump_by_key(dump)
        for (stream, key), inst in self.valid_records_before(inp, line_no).items():
            self.assertIn(key, stored[stream], "%s %s (before line %d) not stored"
                          % (stream, key, line_no))
            self.assertGreaterEqual(ts_key(stored[stream][key]["updated_at"]), inst)
        return dump

    # -- fatal input errors --------------------------------------------------

    def test_malformed_json_line(self):
        lines, _ = self.base()
        bad = b'{"type":"RECORD","record":{"stream":"products","data":{"sku":"X-1",}}}'
        lines, n = insert_mid_window(lines, [bad])
        inp = self.wd.write_lines("in.jsonl", lines)
        self.assert_input_error(inp, self.write(inp), n)

    def test_malformed_json_first_line(self):
        lines, _ = self.base()
        inp = self.wd.write_lines("in.jsonl", [b"RECORD products P-1"] + lines)
        res = self.write(inp)
        self.assert_fatal(res, "system_error", ["line 1"])
        self.assertEqual(res.states, [])
        self.assertEqual(self.applied(), [])

    def test_raw_nul_control_character_deep_nesting(self):
        lines, _ = self.base()
        airbyte_input.check_lines_the_intake_stops_at(self, lines, "products")

    def test_truncated_last_line(self):
        lines, _ = self.base()
        airbyte_input.check_truncated_last_line(self, lines)

    def test_complete_last_line_without_newline(self):
        lines, exp = self.base()
        airbyte_input.check_complete_last_line_without_newline(self, lines)
        assert_store_equals(self, self.dump(), expected_store(exp))

    def test_crlf_line_endings(self):
        lines, exp = self.base()
        airbyte_input.check_crlf_line_endings(self, lines)
        assert_store_equals(self, self.dump(), expected_store(exp))

    def test_fatal_error_with_stdout_closed(self):
        lines, _ = self.base()
        airbyte_input.check_stdout_closed(self, lines)

    # Each poison value of the JSON intake, in place of the record's key.
    POISON = [
        (b'"P-\xc0\xaf-1"', "invalid UTF-8"),            # overlong 2 bytes
        (b'"P-\xe0\x80\xaf-2"', "invalid UTF-8"),        # overlong 3 bytes
        (b'"P-\xed\xa0\x80-3"', "invalid UTF-8"),        # UTF-8 surrogate
        (b'"P-\xf4\x90\x80\x80-4"', "invalid UTF-8"),   # above U+10FFFF
        (b'"P-\xff\xfe-5"', "invalid UTF-8"),
        (b'"P-\\udc00-6"', "unpaired surrogate escape (low half)"),
        (b'"P-\\ud800-7"', "unpaired surrogate escape (high half)"),
        (b'"P-8\\u0000evil"', "escaped NUL"),
        (b'"P-9","KEY":"P-9b"', "appears twice"),
        (b'1e999', "number out of range"),
    ]

    def test_poison_values_are_dead_lettered(self):
        """A record holding a value the intake refuses is dead-lettered
        with its line, stream and reason; every other record loads."""
        lines, exp = self.base()
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
        dump = self.dump()
        assert_store_equals(self, dump, expected_store(exp))
        assert_no_open_imports(self, dump)

    def test_poison_stream_name_is_a_protocol_error(self):
        lines, _ = self.base()
        bad = (b'{"type":"RECORD","record":{"stream":"' + STREAM_NAME.encode()
               + b'\\u0000evil","data":{}}}')
        lines, n = insert_mid_window(lines, [bad], after_state=4)
        inp = self.wd.write_lines("in.jsonl", lines)
        self.assert_input_error(inp, self.write(inp), n, ["escaped NUL", "$.record.stream"])

    def test_state_with_a_duplicate_member(self):
        lines, _ = self.base()
        desc = b'"stream":{"stream_descriptor":{"name":"%s"},"stream_state":{}}' % STREAM_NAME.encode()
        bad = (b'{"type":"STATE","state":{"type":"STREAM",' + desc + b'},'
               b'"st\\u0061te":{"type":"STREAM",' + desc + b'}}')
        lines, n = insert_mid_window(lines, [bad], after_state=4)
        inp = self.wd.write_lines("in.jsonl", lines)
        self.assert_input_error(inp, self.write(inp), n, ["member 'state' appears twice"])

    def test_record_for_stream_not_in_catalog(self):
        lines, _ = self.base()
        bad = js(record("collections", {"sku": "C-1", "updated_at": T}))
        lines, n = insert_mid_window(lines, [bad], after_state=2)
        inp = self.wd.write_lines("in.jsonl", lines)
        self.assert_input_error(inp, self.write(inp), n, ["collections"])

    def test_line_over_max_line_bytes_boundary(self):
        """A line of exactly max_line_bytes is accepted; one byte more is
        fatal naming the line and the limit."""
        lines, _ = self.base()
        airbyte_input.check_max_line_bytes_boundary(self, lines, 64 * 1024)

    def test_200mb_line_memory_bounded(self):
        """A 200 MB line with max_line_bytes 1 MiB: fatal naming the line and
        the limit, peak RSS of the destination < 100 MB."""
        lines, _ = self.base()
        airbyte_input.check_200mb_line(
            self, lines,
            b'{"type":"RECORD","record":{"stream":"products","data":{"sku":"P-HUGE",'
            b'"brand":"aurora","description":"',
            b'"}}}\n')

    # -- rejected records: dead letter, the sync goes on ---------------------

    def run_with_rejects(self, bad_records, unknown_ok=False):
        """Insert (stream, data, reason, rejected_by) records mid-window; the
        sync must finish, dead-letter exactly them and count them in their
        states; every valid record is stored."""
        lines, exp = self.base()
        bad_lines = [js(record(s, d)) for s, d, _, _ in bad_records]
        lines, n = insert_mid_window(lines, bad_lines)
        inp = self.wd.write_lines("in.jsonl", fix_source_stats(lines))
        invalid = [{"stream": s, "line": n + i, "reason": r, "rejected_by": by}
                   for i, (s, _, r, by) in enumerate(bad_records)]
        res = self.write(inp)
        self.assert_ok(res)
        assert_states(self, inp, res, invalid)
        assert_dead_letters(self, self.dead_letters(), invalid)
        dump = self.dump()
        assert_store_equals(self, dump, expected_store(exp))
        assert_no_open_imports(self, dump)
        return res

    def test_record_missing_its_key(self):
        lines, _ = self.base()
        prod = self.product_line(lines)
        inv = self.inventory_line(lines)
        p = dict(prod, updated_at=T)
        del p["sku"]
        i = dict(inv, updated_at=T)
        del i["sku"]
        self.run_with_rejects([
            ("products", p, "missing_field sku", "destination"),
            ("products", dict(p, sku=None), "missing_field sku", "destination"),
            ("inventory", i, "missing_field sku", "destination"),
            ("inventory", dict(i, sku=None), "missing_field sku", "destination"),
            # present but empty: the API's rule (an empty required string)
            ("products", dict(p, sku=""), "missing_field sku", "target"),
        ])

    def test_wrong_field_types(self):
        lines, _ = self.base()
        prod = self.product_line(lines)
        inv = self.inventory_line(lines)
        self.run_with_rejects([
            ("products", dict(prod, sku="W-1", price=59.9, updated_at=T),
             "invalid_type price", "target"),
            ("products", dict(prod, sku="W-2", price=60, updated_at=T),
             "invalid_type price", "target"),
            ("products", dict(prod, sku="W-3", price="59.999", updated_at=T),
             "invalid_format price", "target"),
            ("products", dict(prod, sku=12345, updated_at=T), "invalid_type sku", "target"),
            ("products", dict(prod, sku="W-5", title=123, updated_at=T),
             "invalid_type title", "target"),
            ("products", dict(prod, sku="W-6", active="yes", updated_at=T),
             "invalid_type active", "target"),
            ("products", dict(prod, sku="W-7", images="https://x.example/a.jpg", updated_at=T),
             "invalid_type images", "target"),
            ("products", dict(prod, sku="W-8", attributes=["size", "M"], updated_at=T),
             "invalid_type attributes", "target"),
            ("products", dict(prod, sku="W-9", updated_at=1767225600),
             "invalid_type updated_at", "target"),
            ("inventory", dict(inv, quantity="5", updated_at=T), "invalid_type quantity",
             "target"),
            ("inventory", dict(inv, quantity=1.5, updated_at=T), "invalid_type quantity",
             "target"),
            ("inventory", dict(inv, location=5, updated_at=T), "invalid_type location",
             "target"),
            ("inventory", dict(inv, quantity=BIG, updated_at=T), "out_of_range quantity",
             "target"),
            ("inventory", dict(inv, sku=["P-1"], updated_at=T), "invalid_type sku", "target"),
        ])

    # -- tolerated input -----------------------------------------------------

    def test_state_for_stream_not_in_catalog(self):
        lines, exp = self.base()
        airbyte_input.check_state_for_unknown_stream(self, lines, "collections", "c-77")
        assert_store_equals(self, self.dump(), expected_store(exp))

    def test_empty_input(self):
        airbyte_input.check_empty_input(self)
        self.assertEqual(self.dump()["imports"], [], "an empty input created imports")

    def test_unknown_message_type(self):
        lines, exp = self.base()
        airbyte_input.check_unknown_message_type(self, lines, copies=2)
        assert_store_equals(self, self.dump(), expected_store(exp))

    def test_integers_over_64_bits(self):
        lines, _ = self.base()
        prod = self.product_line(lines)
        attrs = {"big": BIG, "neg": BIG_NEG, "u64_plus_1": U64_PLUS_1,
                 "nested": {"list": [BIG, -U64_PLUS_1]}, "size": "M"}
        data = dict(prod, sku="P-BIG", updated_at="2026-04-01T00:00:00Z", attributes=attrs)
        airbyte_input.check_integers_over_64_bits(self, "products", data)
        stored = dump_by_key(self.dump())["products"]["P-BIG"]
        self.assertEqual(stored["attributes"], attrs)
        # the checkpoint stored with the import keeps the digits too
        imps = [i for i in self.dump()["imports"] if i["status"] == "committed"]
        self.assertEqual(len(imps), 1)
        self.assertIn('"id":%d' % BIG_STATE_ID, imps[0]["checkpoint"])

    # -- bad input in a full refresh -----------------------------------------

    def full_refresh_with_bad_line(self, flag):
        seed_lines, seed_exp = self.base(seed=201)
        seed = self.wd.write_lines("seed.jsonl", seed_lines)
        self.assert_ok(self.write(seed, name="seed", cfg=self.cfg(
            dead_letter_path=self.wd.join("seed-dl.jsonl"))))
        old = expected_store(seed_exp)
        # a refresh holding only parents from 5 on, COMPLETE at the end, with
        # a malformed line in the middle
        lines, _ = self.base(seed=202, sku_start=5, time_offset=seed_exp["clock"] + 100,
                             complete=True)
        bad = b'{"type":"RECORD","record":{"stream":"products","data":{"sku":'
        lines, n = insert_mid_window(lines, [bad], after_state=3)
        inp = self.wd.write_lines("in.jsonl", lines)
        res = self.write(inp, cat=catalog(mode="overwrite"),
                         cfg=self.cfg(replace_deactivate_without_complete=flag))
        self.assert_fatal(res, "system_error", ["line %d" % n])
        after = dump_by_key(self.dump())
        deact = [(s, k) for s in STREAMS for k, v in old[s].items()
                 if k in after[s] and after[s][k] != v and
                 ts_key(after[s][k]["updated_at"]) == ts_key(v["updated_at"])]
        self.assertEqual(deact, [], "a failed full refresh deactivated %d items, e.g. %s"
                         % (len(deact), deact[:3]))
        self.assertEqual(self.stats()["deactivated"], {"products": 0, "inventory": 0})
        self.assertEqual(len(res.states), len([s for s in input_states(inp) if s[0] < n]))

    def test_bad_line_in_full_refresh_deactivates_nothing(self):
        self.full_refresh_with_bad_line(False)

    def test_bad_line_in_full_refresh_deactivates_nothing_even_with_flag(self):
        """replace_deactivate_without_complete makes a normal end of input
        count as completion; a fatal input error is not a normal end."""
        self.full_refresh_with_bad_line(True)


# A target whose parser allows less nesting than the connector's intake: a
# part holding a deeper item is refused as a whole (400 invalid_json).
TARGET_MAX_DEPTH = 16


def deep(levels):
    v = "bottom"
    for _ in range(levels):
        v = {"a": v}
    return v


class TargetRefusesThePart(ShopsCase):
    """One item makes Shops refuse its whole part as invalid_json: the
    destination uploads parts of the part under the same part number until
    the item is alone, dead-letters it with Shops' error, uploads the part
    without it and commits; the states go out with the right counts and a
    rerun is not stuck."""

    emulator_args = {"extra": ["--max-json-depth", str(TARGET_MAX_DEPTH)]}

    def poison_run(self, n_poison, **cfg):
        inp, exp = self.gen(name="base", products=40, inventory=60, state_every=10,
                            update_rate=0.1, seed=202)
        lines = lib.read_input_lines(inp)
        prod = next(json.loads(ln)["record"]["data"] for ln in lines
                    if b'"stream":"products"' in ln and ln.startswith(b'{"type":"RECORD"'))
        inv = next(json.loads(ln)["record"]["data"] for ln in lines
                   if b'"stream":"inventory"' in ln and ln.startswith(b'{"type":"RECORD"'))
        bad = []
        for i in range(n_poison):
            if i % 2 == 0:
                bad.append(("products", dict(prod, sku="POISON-%d" % i, updated_at=T,
                                             attributes={"x": deep(TARGET_MAX_DEPTH + 4)})))
            else:
                bad.append(("inventory", dict(inv, sku="POISON-%d" % i, updated_at=T,
                                              extra=deep(TARGET_MAX_DEPTH + 4))))
        lines, n = insert_mid_window(lines, [js(record(st, d)) for st, d in bad],
                                     after_state=4)
        lines = fix_source_stats(lines)
        src = self.wd.write_lines("in.jsonl", lines)
        invalid = [{"stream": st, "line": n + i, "reason": "invalid_json $",
                    "rejected_by": "target", "key": item_key(st, d)}
                   for i, (st, d) in enumerate(bad)]
        for run in ("first", "rerun"):
            dl = self.wd.join("dead-letters.jsonl")
            if os.path.exists(dl):
                os.remove(dl)
            res = self.write(src, self.cfg(**cfg), name="write-" + run)
            self.assert_ok(res)
            assert_states(self, src, res, invalid)
            dls = self.dead_letters()
            assert_dead_letters(self, dls, invalid)
            for e in dls:
                self.assertIn("nested deeper than", e["errors"][0]["message"], e["errors"])
            dump = self.dump()
            assert_store_equals(self, dump, expected_store(exp))
            assert_no_open_imports(self, dump)
            self.assertTrue(any("as a whole" in m for m in res.logs("WARN")), res.describe())
            self.assertTrue(any("parts refused as a whole" in m and
                                "%d items left out" % n_poison in m for m in res.logs()),
                            res.describe())
        return res

    def test_poison_item_is_isolated(self):
        """Two items in each of two parts (products, inventory)."""
        self.poison_run(4)

    def test_part_of_only_poison_is_dropped(self):
        """Parts of one item: the poison item's part is left empty, dropped,
        and the parts after it renumbered (the import created again when
        they were sent already)."""
        res = self.poison_run(3, part_max_items=1)
        self.assertTrue(any("parts dropped" in m and "3 parts dropped" in m
                            for m in res.logs()), res.describe())


if __name__ == "__main__":
    lib.main(__doc__.split("\n")[0])
