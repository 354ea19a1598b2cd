"""crm360_helpers.py - what the CRM360 test scripts and benchmark share.

Emulator start-up, keys, config and catalog, the expected store and its
comparison with the emulator's dump, dead-letter and ordering checks, and
the test case class. Imported by test_crm360_*.py and bench_crm360.py; what
does not depend on the destination is in lib.py and airbyte_input.py.
"""

import os
import secrets
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from airbyte_input import (check_dead_letters, descriptor, input_states,  # noqa: E402
                           reason_matches)

# ---------------------------------------------------------------------------
# CRM360 helpers
# ---------------------------------------------------------------------------

EMULATOR = os.path.join(lib.EMULATORS, "crm360_emulator.py")
# Fresh random keys per process, so a leak cannot hide behind a constant.
API_KEY = "sk-crm360-rw-" + secrets.token_hex(12)
RO_KEY = "sk-crm360-ro-" + secrets.token_hex(12)
WRONG_KEY = "sk-crm360-wrong-" + secrets.token_hex(12)
ALL_KEYS = (API_KEY, RO_KEY, WRONG_KEY)

FIELDS = {
    "customers": ("external_id", "brand", "email", "name", "phone", "document", "tags",
                  "attributes", "created_at", "updated_at"),
    "orders": ("external_id", "brand", "customer_external_id", "status", "currency", "total",
               "items", "placed_at", "updated_at"),
}
OBJECTS = ("customers", "orders")


def start_emulator(rate=0, seed=7, extra=()):
    """The emulator with a read-write key and a read-only key."""
    args = ["--rate", str(rate), "--api-key", API_KEY, "--api-key", RO_KEY + ":read",
            "--seed", str(seed)] + list(extra)
    return lib.Server(EMULATOR, args, name="crm360").start()


def catalog(mode="append_dedup", streams=OBJECTS, sync_id=42, modes=None, namespace=None):
    cs = []
    for s in streams:
        m = (modes or {}).get(s, mode)
        cs.append({
            "stream": dict(descriptor(s, namespace), json_schema={"type": "object"},
                           supported_sync_modes=["full_refresh", "incremental"],
                           source_defined_primary_key=[["brand"], ["external_id"]]),
            "sync_mode": "incremental", "destination_sync_mode": m,
            "primary_key": [["brand"], ["external_id"]], "cursor_field": ["updated_at"],
            "generation_id": 1, "minimum_generation_id": 0, "sync_id": sync_id})
    return {"streams": cs}


def config(url, workdir, **over):
    cfg = {"api_url": url, "api_key": API_KEY, "requests_per_second": 0,
           "dead_letter_path": workdir.join("dead-letters.jsonl"), "batch_size": 100,
           "max_in_flight": 4, "max_retries": 5, "connect_timeout_seconds": 5,
           "request_timeout_seconds": 20}
    cfg.update(over)
    return {k: v for k, v in cfg.items() if v is not None}


def key_of(rec):
    return "%s/%s" % (rec.get("brand"), rec.get("external_id"))


def expected_stored(obj, rec):
    """What CRM360 stores for an accepted input record: known fields only,
    null dropped, email lower-cased."""
    out = {k: rec[k] for k in FIELDS[obj] if rec.get(k) is not None}
    if obj == "customers":
        out["email"] = out["email"].lower()
    if obj == "orders":
        out["items"] = [{"sku": i["sku"], "quantity": i["quantity"],
                         "unit_price": i["unit_price"]} for i in out["items"]]
    return out


GENERATION_TAG = "ab-gen:"


def without_generation_tag(rec, want=None):
    """A stored customer without the tag naming the stream and generation
    that loaded it (test_crm360_refresh.py checks those tags); at most one
    may be there. A tag list holding only that tag goes too, unless the
    expected record (want) has an empty tag list."""
    tags = rec.get("tags")
    if not isinstance(tags, list):
        return rec
    gen = [t for t in tags if isinstance(t, str) and t.startswith(GENERATION_TAG)]
    if not gen:
        return rec
    assert len(gen) == 1, "more than one generation tag: %r" % tags
    out = dict(rec)
    out["tags"] = [t for t in tags if t not in gen]
    if not out["tags"] and (want is None or "tags" not in want):
        del out["tags"]
    return out


def dump_by_key(dump):
    return {obj: {key_of(r): r for r in dump[obj]} for obj in OBJECTS}


def assert_store_matches(tc, dump, expected):
    """Every stored record is the latest valid version of an expected key
    (field by field), every expected key is stored, nothing else is."""
    stored = dump_by_key(dump)
    for obj in OBJECTS:
        exp = expected[obj]
        have = stored[obj]
        missing = sorted(set(exp) - set(have))
        extra = sorted(set(have) - set(exp))
        tc.assertFalse(missing, "%s: %d expected keys not stored, e.g. %s"
                       % (obj, len(missing), missing[:5]))
        tc.assertFalse(extra, "%s: %d unexpected keys stored, e.g. %s"
                       % (obj, len(extra), extra[:5]))
        bad = []
        for key, rec in exp.items():
            want = expected_stored(obj, rec)
            s = dict(without_generation_tag(have[key], want))
            s.pop("version", None)
            deleted = s.pop("deleted", None)
            if deleted or s != want:
                bad.append((key, s, want, deleted))
        tc.assertFalse(bad, "%s: %d records differ from the latest valid version; first: "
                       "stored %r expected %r deleted=%r" % ((obj, len(bad)) + (bad[0][1:] if bad
                                                                               else (0, 0, 0))))


def assert_dead_letters(tc, entries, invalid, line_map=None, exact=True):
    """entries: dead-letter lines; invalid: gen_stream's list. line_map maps a
    dead-letter line number to the original input line (restarted runs).
    exact: each invalid record exactly once; else at least once. No entry may
    be for another (valid) line. Each entry holds the key and the reason
    ('code field' or 'code') of its invalid record."""

    def check_entry(e, want, line):
        rec = e["record"] if isinstance(e["record"], dict) else {}
        tc.assertEqual(key_of(rec), want["key"], "dead letter for line %s holds key %s, "
                       "expected %s" % (line, key_of(rec), want["key"]))
        tc.assertTrue(reason_matches(e, want["reason"]),
                      "dead letter for line %s has errors %r, expected %s"
                      % (line, e["errors"], want["reason"]))

    check_dead_letters(tc, entries, invalid, check_entry, line_map, exact)


def order_customer_map(input_path):
    """order key -> customer key, from the input's order records."""
    out = {}
    for _, m in lib.parse_input(input_path):
        if m["type"] == "RECORD" and m["record"]["stream"] == "orders":
            d = m["record"]["data"]
            out[key_of(d)] = "%s/%s" % (d.get("brand"), d.get("customer_external_id"))
    return out


def assert_orders_after_customers(tc, applied, input_path):
    """For each applied order write, the first applied write of its customer
    has a smaller sequence number."""
    first_customer = {}
    cust_of = order_customer_map(input_path)
    checked = 0
    for a in sorted(applied, key=lambda a: a["seq"]):
        k = "%s/%s" % (a["brand"], a["external_id"])
        if a["object"] == "customers":
            first_customer.setdefault(k, a["seq"])
        elif a["status"] in ("created", "updated"):
            c = cust_of.get(k)
            tc.assertIsNotNone(c, "applied order %s is not in the input" % k)
            tc.assertIn(c, first_customer, "order %s (seq %d) applied before its customer %s"
                        % (k, a["seq"], c))
            checked += 1
    return checked


class CrmCase(lib.DestinationCase):
    """One emulator per class, reset before each test; a work directory per
    test; after each test every file the test produced (stdout, stderr, dead
    letters, ...) is searched for the API keys."""

    emulator_rate = 0
    workdir_prefix = "crm360-it-"
    secret_values = ALL_KEYS

    @classmethod
    def launch_emulator(cls):
        return start_emulator(rate=cls.emulator_rate)

    def cfg(self, **over):
        return config(self.emu.url, self.wd, **over)

    def default_catalog(self):
        return catalog()

    def dump(self):
        return self.emu.get("/_admin/dump")


def split_states_at(input_path, line):
    """Input states strictly before / after a line number."""
    ins = input_states(input_path)
    return [s for s in ins if s[0] < line], [s for s in ins if s[0] > line]
