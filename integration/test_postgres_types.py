#!/usr/bin/env python3
"""source-postgres type mapping: a table with one column per type, rows with
edge values (extremes, NaN and infinities, BC dates, empty and awkward
strings, NULLs), read by the connector and compared, value by value, with
what psql prints for the same rows (each column as text).

    python3 integration/test_postgres_types.py --bin build/gcc/sources/postgres/source-postgres
"""
import base64
import datetime
import decimal
import json
import subprocess

import lib
from pg_helpers import PgCase, catalog, records

COLUMNS = [
    ("c_int2", "int2"), ("c_int4", "int4"), ("c_int8", "int8"), ("c_oid", "oid"),
    ("c_numeric", "numeric"), ("c_num_scaled", "numeric(20,6)"), ("c_money", "money"),
    ("c_float4", "float4"), ("c_float8", "float8"), ("c_bool", "bool"),
    ("c_text", "text"), ("c_varchar", "varchar(20)"), ("c_char", "char(4)"),
    ("c_uuid", "uuid"), ("c_json", "json"), ("c_jsonb", "jsonb"), ("c_bytea", "bytea"),
    ("c_date", "date"), ("c_ts", "timestamp"), ("c_tstz", "timestamptz"),
    ("c_time", "time"), ("c_timetz", "timetz"), ("c_interval", "interval"),
    ("c_inet", "inet"), ("c_cidr", "cidr"), ("c_mood", "mood"), ("c_dom", "short_text"),
    ("c_ints", "int4[]"), ("c_texts", "text[]"), ("c_grid", "int8[]"), ("c_bit", "bit(4)"),
]

ROWS = [
    # ordinary values
    "(1, 1, 1, 1, 10.5, 3.141593, 12.34, 1.5, 0.1, true, 'hello', 'world', 'ab', "
    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": [1, 2.50, null], \"b\": \"x\"}', "
    "'{\"k\": {\"n\": 1e3}}', '\\x000102ff', '2024-02-29', '2024-02-29 13:14:15.123456', "
    "'2024-02-29 13:14:15.5+02', '23:59:59.999999', '10:00:00+02', '1 year 2 mons 3 days 04:05:06.7', "
    "'192.168.0.1/24', '10.0.0.0/8', 'ok', 'short', '{1,2,3}', '{\"a b\",\"c,d\",\"q\\\"uote\",NULL}', "
    "'{{1,2},{3,4}}', '1010')",
    # extremes
    "(-32768, -2147483648, 9223372036854775807, 4294967295, "
    "-123456789012345678901234567890.123456789, 'NaN', -92233720368547758.08, 'NaN', "
    "'-Infinity', false, E'quote\" back\\\\ nl\\n tab\\t bell\\x07 é 😀', '', ' ', "
    "'00000000-0000-0000-0000-000000000000', '[]', '\"just a string\"', '\\x', "
    "'0044-03-15 BC', '0001-01-01 00:00:00 BC', 'infinity', '00:00:00', '00:00:00-12:30', "
    "'-178000000 years', '::1', '::/0', 'sad', '', '{}', '{NULL}', '{{{1}},{{2}}}', '0000')",
    # more extremes
    "(32767, 2147483647, -9223372036854775808, 0, 'Infinity', 0.000001, 0, 'Infinity', "
    "1.7976931348623157e308, true, 'x', 'y', 'z', 'ffffffff-ffff-ffff-ffff-ffffffffffff', "
    "'{\"deep\": {\"deeper\": [{}]}}', 'null', '\\xdeadbeef', '5874897-12-31', "
    "'294276-12-31 23:59:59.999999', '-infinity', '24:00:00', '23:59:59+14', 'PT0S', "
    "'2001:db8::1', '2001:db8::/32', 'ok', 'x', '{-1}', '{\"\"}', '{}', '1111')",
    # NULLs
    "(" + ", ".join(["NULL"] * len(COLUMNS)) + ")",
]


def parse_array(text):
    """A PostgreSQL array literal ({1,"a b",NULL,{2}}) as nested lists of
    strings and None."""
    pos = 0

    def value():
        nonlocal pos
        if text[pos] == "{":
            pos += 1
            out = []
            if text[pos] == "}":
                pos += 1
                return out
            while True:
                out.append(value())
                c = text[pos]
                pos += 1
                if c == "}":
                    return out
        if text[pos] == '"':
            pos += 1
            s = ""
            while text[pos] != '"':
                if text[pos] == "\\":
                    pos += 1
                s += text[pos]
                pos += 1
            pos += 1
            return s
        start = pos
        while text[pos] not in ",}":
            pos += 1
        tok = text[start:pos]
        return None if tok == "NULL" else tok

    return value()


def rfc3339(text, tz):
    """psql's ISO timestamp/date text as the connector's RFC 3339 form,
    computed independently; also parsed by Python where it can be."""
    if text in ("infinity", "-infinity"):
        return text
    bc = text.endswith(" BC")
    if bc:
        text = text[:-3]
    date, _, rest = text.partition(" ")
    y, m, d = date.split("-")
    year = int(y)
    ystr = "%04d" % (year - 1) if bc and year == 1 else ("-%04d" % (year - 1) if bc else y)
    out = ystr + "-" + m + "-" + d
    if rest:
        if tz:
            assert rest.endswith("+00"), rest
            rest = rest[:-3] + "Z"
        out += "T" + rest
    if not bc and 1 <= year <= 9999 and rest:
        datetime.datetime.fromisoformat(out.replace("Z", "+00:00"))  # a valid timestamp
    return out


def expected(typ, text):
    if text is None:
        return None
    if typ in ("int2", "int4", "int8", "oid"):
        return int(text)
    if typ.startswith("numeric") or typ == "money":
        return text
    if typ in ("float4", "float8"):
        return text if text in ("NaN", "Infinity", "-Infinity") else float(text)
    if typ == "bool":
        return text == "t"
    if typ in ("json", "jsonb"):
        return json.loads(text)
    if typ == "bytea":
        return base64.b64encode(bytes.fromhex(text[2:])).decode()
    if typ == "date":
        return rfc3339(text, False)
    if typ == "timestamp":
        return rfc3339(text, False)
    if typ == "timestamptz":
        return rfc3339(text, True)
    if typ == "timetz":
        return text + ":00" if len(text.rsplit("+", 1)[-1].rsplit("-", 1)[-1]) == 2 else text
    if typ in ("int4[]", "int8[]"):
        def ints(v):
            return [ints(x) for x in v] if isinstance(v, list) else (None if v is None else int(v))
        return ints(parse_array(text))
    if typ == "text[]":
        return parse_array(text)
    return text


class Types(PgCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pg.sql("create type mood as enum ('sad', 'ok'); "
                   "create domain short_text as varchar(10); "
                   "create table alltypes (row_no serial primary key, %s)"
                   % ", ".join("%s %s" % c for c in COLUMNS))
        cols = ", ".join(c for c, _ in COLUMNS)
        for r in ROWS:
            cls.pg.sql("insert into alltypes (%s) values %s" % (cols, r))

    def psql_rows(self):
        """Each column as psql prints it (money as numeric: its text
        form follows lc_monetary)."""
        sel = ", ".join("%s::numeric" % c if t == "money" else c
                        for c, t in COLUMNS)
        argv = self.pg.psql_argv() + ["-A", "-t", "-F", "\x1f", "-R", "\x1e", "-P",
                                      "null=\x1d", "-c",
                                      "select row_no, %s from alltypes order by row_no" % sel]
        env = {"PGOPTIONS": "-c DateStyle=ISO,YMD -c TimeZone=UTC -c IntervalStyle=iso_8601 "
                            "-c extra_float_digits=1", "PATH": "/usr/bin:/bin"}
        out = subprocess.run(argv, stdout=subprocess.PIPE, check=True, env=env).stdout
        rows = []
        for rec in out.decode().rstrip("\n").split("\x1e"):
            vals = [None if v == "\x1d" else v for v in rec.split("\x1f")]
            rows.append(vals)
        return rows

    def test_every_type_round_trips(self):
        res = self.read(catalog(("alltypes", "full_refresh")), self.config(chunk_size=2))
        self.assert_ok(res)
        got = records(res)
        want = self.psql_rows()
        self.assertEqual(len(got), len(ROWS))
        self.assertEqual(len(want), len(ROWS))
        for rec, prow in zip(got, want):
            self.assertEqual(rec["row_no"], int(prow[0]))
            self.assertEqual(list(rec)[1:], [c for c, _ in COLUMNS])  # column order kept
            for (col, typ), text in zip(COLUMNS, prow[1:]):
                with self.subTest(row=rec["row_no"], column=col, psql=text):
                    self.assertEqual(rec[col], expected(typ, text))
        # exact integers beyond 2^53 and decimal digits kept in the raw output
        raw = res.stdout.decode()
        self.assertIn('"c_int8":9223372036854775807', raw)
        self.assertIn('"c_int8":-9223372036854775808', raw)
        self.assertIn('"c_numeric":"-123456789012345678901234567890.123456789"', raw)
        self.assertIn('"c_float8":1.7976931348623157e+308', raw)

    def test_discovered_schema_of_every_type(self):
        res = self.run_src("discover", self.config())
        self.assert_ok(res)
        stream = [s for s in res.of_type("CATALOG")[0]["catalog"]["streams"]
                  if s["name"] == "alltypes"][0]
        props = stream["json_schema"]["properties"]
        self.assertEqual(props["c_int8"]["type"], ["null", "integer"])
        self.assertEqual(props["c_numeric"]["type"], ["null", "string"])
        self.assertEqual(props["c_money"]["type"], ["null", "string"])
        self.assertEqual(props["c_float8"]["type"], ["null", "number", "string"])
        self.assertEqual(props["c_tstz"]["airbyte_type"], "timestamp_with_timezone")
        self.assertEqual(props["c_ts"]["airbyte_type"], "timestamp_without_timezone")
        self.assertEqual(props["c_date"]["format"], "date")
        self.assertEqual(props["c_bytea"]["contentEncoding"], "base64")
        self.assertEqual(props["c_grid"]["type"], ["null", "array"])
        self.assertEqual(props["c_dom"]["type"], ["null", "string"])
        self.assertEqual(props["row_no"]["type"], ["integer"])


if __name__ == "__main__":
    lib.main(__doc__)
