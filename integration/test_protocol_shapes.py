#!/usr/bin/env python3
"""Protocol shapes: what the tests feed the destinations looks like what
the platform sends, and the shape check itself can fail.

    test_protocol_shapes.py

Every message any connector prints in any integration test already goes
through the same check (lib.parse_messages -> airbyte_protocol); this
script covers the other side:

| what                                              | outcome                    |
|---------------------------------------------------|----------------------------|
| both stream generators, STREAM and GLOBAL states, | every line a valid         |
| with and without a namespace, invalid records     | AirbyteMessage, no         |
|                                                   | "namespace": null          |
| the captures (integration/captures) and their     | the same                   |
| catalogs                                          |                            |
| the catalogs the test helpers write               | valid configured streams   |
| messages breaking the v0.18.0 shapes              | each named by the check    |
"""

import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import airbyte_protocol  # noqa: E402
import lib  # noqa: E402
import crm360_helpers  # noqa: E402
import shops_helpers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = {"crm360": os.path.join(HERE, "gen_stream.py"),
       "shops": os.path.join(HERE, "gen_shops_stream.py")}


def small(kind):
    if kind == "crm360":
        return {"customers": 30, "orders": 40, "invalid": 3, "state_every": 7}
    return {"products": 20, "inventory": 30, "invalid": 3, "state_every": 7}


class Shapes(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ab-shapes-")

    def tearDown(self):
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)

    def assert_valid_lines(self, path):
        n = 0
        with open(path, "rb") as f:
            for i, line in enumerate(f, 1):
                msg = json.loads(line)
                problems = airbyte_protocol.validate_message(msg, "line %d" % i)
                self.assertEqual(problems, [], "%s line %d: %s" % (path, i, line[:300]))
                self.assertNotIn(b'"namespace": null', line)
                self.assertNotIn(b'"namespace":null', line)
                n += 1
        self.assertGreater(n, 20)

    def test_generated_streams(self):
        for kind, script in GEN.items():
            for state_type in ("STREAM", "GLOBAL"):
                for ns in (None, "erp"):
                    name = "%s-%s-%s" % (kind, state_type, ns)
                    with self.subTest(name):
                        inp, _ = lib.run_generator(script, self.dir, name=name,
                                                   state_type=state_type, namespace=ns,
                                                   complete=True, **small(kind))
                        self.assert_valid_lines(inp)
                        if ns:
                            recs = [json.loads(x)["record"] for x in open(inp, "rb")
                                    if b'"RECORD"' in x]
                            self.assertTrue(all(r.get("namespace") == ns for r in recs))
                        else:
                            self.assertNotIn(b'"namespace"', open(inp, "rb").read())

    def test_captures(self):
        caps = os.path.join(HERE, "captures")
        names = sorted(n for n in os.listdir(caps) if n.endswith(".jsonl"))
        self.assertGreater(len(names), 0)
        for n in names:
            with self.subTest(n):
                self.assert_valid_lines(os.path.join(caps, n))
                with open(os.path.join(caps, n[:-len(".jsonl")] + ".catalog.json")) as f:
                    cat = json.load(f)
                for st in cat["streams"]:
                    self.assertNotIn(None, st["stream"].values(), st)

    def test_helper_catalogs(self):
        for cat in (crm360_helpers.catalog(), crm360_helpers.catalog(namespace="erp"),
                    shops_helpers.catalog(), shops_helpers.catalog(namespace="erp")):
            for s in cat["streams"]:
                self.assertNotIn(None, s["stream"].values(), s)
                msg = {"type": "CATALOG", "catalog": {"streams": [s["stream"]]}}
                self.assertEqual(airbyte_protocol.validate_message(msg), [])

    def test_the_check_names_what_is_wrong(self):
        rec = {"stream": "customers", "emitted_at": 1, "data": {}}
        cases = [
            ({"type": "RECORD", "record": dict(rec, namespace=None)},
             "message.record.namespace: must be string, not null"),
            ({"type": "RECORD", "record": {"stream": "customers", "data": {}}},
             "lacks the required member 'emitted_at'"),
            ({"type": "RECORD", "record": dict(rec, emitted_at=1.5)},
             "emitted_at: must be integer, not number"),
            ({"type": "STATE", "state": {"type": "STREAM", "stream": {
                "stream_descriptor": {"name": "a", "namespace": None}}}},
             "stream_descriptor.namespace: must be string, not null"),
            ({"type": "STATE", "state": {"type": "GLOBAL", "global": {"shared_state": {}}}},
             "lacks the required member 'stream_states'"),
            ({"type": "STATE", "state": {"type": "STREAM", "stream": {
                "stream_descriptor": {"name": "a"}},
                "destinationStats": {"recordCount": "1"}}},
             "destinationStats.recordCount: must be number"),
            ({"type": "TRACE", "trace": {"type": "ERROR", "emitted_at": 1.0,
                                         "error": {"message": "x", "failure_type": "oops"}}},
             "'oops' is not one of system_error"),
            ({"type": "TRACE", "trace": {"type": "STREAM_STATUS", "emitted_at": 1.0,
                                         "stream_status": {"stream_descriptor": {"name": "a"},
                                                           "status": "DONE"}}},
             "'DONE' is not one of STARTED"),
            ({"type": "LOG", "log": {"level": "NOTICE", "message": "x"}},
             "'NOTICE' is not one of FATAL"),
            ({"type": "SPEC", "spec": {"connectionSpecification": {},
                                       "supported_destination_sync_modes": ["merge"]}},
             "'merge' is not one of append"),
            ({"type": "DESTINATION_CATALOG", "destination_catalog": {"operations": [
                {"object_name": "customers", "sync_mode": "append_dedup",
                 "json_schema": {}, "matching_keys": ["external_id"]}]}},
             "matching_keys[0]: must be array, not string"),
            ({"type": "DESTINATION_CATALOG", "destination_catalog": {"operations": [
                {"object_name": "customers", "sync_mode": "append", "schema": {}}]}},
             "lacks the required member 'json_schema'"),
            ({"type": "CONNECTION_STATUS", "connectionStatus": {"status": "OK"}},
             "'OK' is not one of SUCCEEDED"),
            ({"type": "STATUS", "status": {}}, "'STATUS' is not a message type"),
            ({"type": "CONTROL", "control": {"type": "CONNECTOR_CONFIG", "emitted_at": 1.0,
                                             "connectorConfig": {}}},
             "lacks the required member 'config'"),
        ]
        for msg, want in cases:
            with self.subTest(want):
                problems = airbyte_protocol.validate_message(msg)
                self.assertTrue(any(want in p for p in problems), problems)
        good = [
            {"type": "RECORD", "record": dict(rec, namespace="erp")},
            {"type": "STATE", "state": {"type": "GLOBAL", "id": 3, "global": {
                "shared_state": {}, "stream_states": [
                    {"stream_descriptor": {"name": "a"}, "stream_state": {}}]},
                "sourceStats": {"recordCount": 1.0},
                "destinationStats": {"recordCount": 1.0, "rejectedRecordCount": 0.0}}},
            {"type": "DESTINATION_CATALOG", "destination_catalog": {"operations": [
                {"object_name": "customers", "sync_mode": "append_dedup",
                 "json_schema": {"type": "object"}, "matching_keys": [["brand", "external_id"]]}]}},
        ]
        for msg in good:
            self.assertEqual(airbyte_protocol.validate_message(msg), [], msg)


if __name__ == "__main__":
    unittest.main(verbosity=2)
