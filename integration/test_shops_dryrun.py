#!/usr/bin/env python3
"""Shops' item rules, checked before sending, and --dry-run of destination-shops.

    test_shops_dryrun.py --bin build/destinations/shops/destination-shops

* The emulator (the reference) rejects every item of the rules table
  (destinations/shops/tests/data/item_rules.json, the table test_shops_rules
  checks rules.c against) with exactly the table's [field, code] pairs, and
  accepts its valid items: the local rules and the target agree on every row.
* A dry run of a stream of good and bad products and inventory makes no
  request (the emulator's request counter, tokens, imports, parts and store
  stay empty), writes no dead letter and no STATE; it reports the parts it
  would upload per object, shows --show-requests N bodies (which the emulator
  accepts item for item when uploaded as they are), and every rejection a
  real run of the same input makes for a locally checkable rule, with the
  same line, stream, field and code; the real run's other rejections are
  the ones the dry run names as Shops' alone (unknown_sku, unknown_parent,
  and a rule of the emulator beyond the contract, --reserved-sku-prefix).
  It says how many imports it would create and commit: as many as the real
  run commits. In the real run, of all the bad items only the one breaking
  the emulator's extra rule reaches Shops (rejected at upload).
* The same holds for `load` of a plain JSONL file of inventory.
* Deletions are judged as the deactivated item they send (a product deletion
  with only its key lacks the required fields; a bad deletion time is the
  item's updated_at), the same in both runs.
* Where a real run stops (max_rejected_ratio crossed, rejected_records
  "fail"), the dry run names that line and reason once and goes on.
"""

import json
import os
import re
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from shops_helpers import CHANNEL, CLIENT_ID, SECRET, ShopsCase, catalog  # noqa: E402

TABLE = os.path.join(os.path.dirname(lib.HERE), "destinations", "shops", "tests", "data",
                     "item_rules.json")
REJECT_RE = re.compile(r"^dry run: line (\d+)(?: of (\S+))? of stream '([^']*)' would be "
                       r"rejected by the (destination|target \(its rules, checked locally\)): "
                       r"(\[.*\])$")
SHOWN_RE = re.compile(r"^dry run: request \d+: PUT /v1/imports/\{import #\d+\}/parts/\d+ "
                      r"\((\d+) records, (\d+) bytes\): (.*)$")
TARGET_ONLY = ("unknown_sku", "unknown_parent")


def load_table():
    with open(TABLE, encoding="utf-8") as f:
        return json.load(f)


def build_item(base, case):
    item = {k: v for k, v in base[case["object"]].items() if k not in case.get("unset", ())}
    item.update(case.get("set", {}))
    rep = case.get("repeat")
    if rep:
        if "text" in rep:
            item[rep["field"]] = rep["text"] * rep["times"] + rep.get("suffix", "")
        else:
            item[rep["field"]] = [rep["element"]] * rep["times"]
    return item


def dry_rejections(res):
    out = set()
    for m in res.logs():
        g = REJECT_RE.match(m)
        if g:
            for e in json.loads(g.group(5)):
                out.add((int(g.group(1)), g.group(3), e["field"], e["code"]))
    return out


def real_rejections(entries):
    return {(e["line"], e["stream"], x["field"], x["code"]) for e in entries for x in e["errors"]}


def record(stream, data):
    return {"type": "RECORD", "record": {"stream": stream, "emitted_at": 1, "data": data}}


def state(n):
    return {"type": "STATE", "state": {"type": "STREAM", "stream": {
        "stream_descriptor": {"name": "products"}, "stream_state": {"n": n}}, "id": n}}


class ShopsApi:
    """The Shops API as a client sees it (token, imports, parts)."""

    def __init__(self, url):
        self.url = url
        body = urllib.parse.urlencode({"grant_type": "client_credentials",
                                       "client_id": CLIENT_ID,
                                       "client_secret": SECRET}).encode()
        st, obj = lib.http_json("POST", url + "/oauth/token", body,
                                {"Content-Type": "application/x-www-form-urlencoded"})
        if st != 200:
            raise AssertionError("token: HTTP %s %r" % (st, obj))
        self.auth = {"Authorization": "Bearer " + obj["access_token"]}

    def call(self, method, path, body=None, headers=None, want=200):
        st, obj = lib.http_json(method, self.url + path, body, dict(self.auth, **(headers or {})))
        if st != want:
            raise AssertionError("%s %s: HTTP %s %r" % (method, path, st, obj))
        return obj

    def open_import(self, key):
        return self.call("POST", "/v1/imports", {"channel": CHANNEL, "mode": "merge",
                                                  "objects": ["products", "inventory"],
                                                  "label": "rules-check:" + key},
                         {"Idempotency-Key": key}, want=201)["import_id"]

    def put_part(self, imp, n, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.call("PUT", "/v1/imports/%s/parts/%d" % (imp, n), data)

    def abort(self, imp):
        self.call("DELETE", "/v1/imports/" + imp)


class Rules(ShopsCase):
    # a rule beyond the contract: only Shops can know it
    emulator_args = {"extra": ["--reserved-sku-prefix", "RSV-"]}

    def run_bin(self, args, name):
        return self.finish(lib.Connector(lib.binary(), args, self.wd, name=name))

    def assert_nothing_sent(self):
        st = self.stats()  # every request counts, this one too
        self.assertEqual(st["requests"], 1, st)
        self.assertEqual(st["tokens_issued"], 0)
        self.assertEqual(sum(st["imports"].values()), 0)
        self.assertEqual(st["parts_uploaded"], 0)
        self.assertEqual(st["stored"], {"products": 0, "inventory": 0})

    def test_emulator_agrees_with_the_rules_table(self):
        table = load_table()
        api = ShopsApi(self.emu.url)
        imp = api.open_import("rules-table")
        checked = 0
        for n, obj in enumerate(("products", "inventory"), 1):
            cases = [c for c in table["cases"] if c["object"] == obj]
            ans = api.put_part(imp, n, {"object": obj,
                                        "items": [build_item(table["base"], c) for c in cases]})
            got = {r["index"]: [[e["field"], e["code"]] for e in r["errors"]]
                   for r in ans["rejected"]}
            for i, c in enumerate(cases):
                self.assertEqual(got.get(i, []), c["errors"], "%s: %s" % (obj, c["rule"]))
                checked += 1
            self.assertEqual(ans["accepted"], sum(1 for c in cases if not c["errors"]))
        api.abort(imp)
        self.assertGreater(checked, 100)

    def mixed_input(self):
        """Good products and inventory, every bad case of the rules table
        (but for the bad products, at most 80 of them, so that the dry run
        details every rejection), records only Shops can reject and states."""
        table = load_table()
        lines = []
        expected_local = set()
        n = 0
        for i in range(150):
            lines.append(record("products", {"sku": "P-%03d" % i, "brand": "Aurora",
                                             "title": "Camiseta %d" % i, "price": "%d.90" % i,
                                             "currency": "BRL",
                                             "updated_at": "2026-01-01T00:%02d:%02dZ" % (i // 60, i % 60)}))
            lines.append(record("inventory", {"sku": "P-%03d" % i, "location": "loja-%d" % (i % 3),
                                              "quantity": i,
                                              "updated_at": "2026-01-01T00:00:00Z"}))
        bad = [c for c in table["cases"] if c["errors"]]
        bad = [c for c in bad if c["object"] == "inventory"] + \
            [c for c in bad if c["object"] == "products"][:80 - 20]
        for c in bad:
            item = build_item(table["base"], c)
            if "sku" not in {e[0] for e in c["errors"]}:
                item["sku"] = "BAD-%03d" % n
            lines.append(record(c["object"], item))
            for field, code in c["errors"]:
                expected_local.add((len(lines), c["object"], field, code))
            n += 1
            if n % 25 == 0:
                lines.append(state(n))
        # only Shops can tell: an unknown product, an unknown parent
        lines.append(record("inventory", {"sku": "NOWHERE-1", "quantity": 1,
                                          "updated_at": "2026-01-01T00:00:00Z"}))
        unknown_sku = len(lines)
        lines.append(record("products", {"sku": "VAR-1", "parent_sku": "NOWHERE-2",
                                         "brand": "Aurora", "title": "Variante", "price": "1.00",
                                         "currency": "BRL", "updated_at": "2026-01-01T00:00:00Z"}))
        unknown_parent = len(lines)
        lines.append(record("products", {"sku": "RSV-1", "brand": "Aurora", "title": "Reservado",
                                         "price": "1.00", "currency": "BRL",
                                         "updated_at": "2026-01-01T00:00:00Z"}))
        reserved = len(lines)
        lines.append(state(n + 1))
        return lines, expected_local, {unknown_sku, unknown_parent, reserved}

    def test_write_dry_run_reports_the_real_runs_rejections(self):
        lines, expected_local, target_lines = self.mixed_input()
        inp = self.wd.write_lines("mixed.jsonl", lines)
        cfg = self.write_config(self.cfg(part_max_items=20, dead_letter_path=self.wd.join(
            "dry-dl.jsonl")), "dry.json")
        cat = self.wd.write_json("cat.json", catalog())
        dry = self.run_bin(["write", "--config", cfg, "--catalog", cat, "--input", inp,
                            "--dry-run", "--show-requests", "50"], "dry")
        self.assert_ok(dry)
        self.assert_nothing_sent()
        self.assertEqual(dry.states, [])
        self.assertFalse(os.path.exists(self.wd.join("dry-dl.jsonl")))
        got = dry_rejections(dry)
        self.assertEqual(got, expected_local)
        logs = dry.logs()
        text = "\n".join(logs)
        self.assertIn("only Shops can check unknown_sku", text)
        self.assertIn("unknown_parent", text)
        self.assertIn("products: sku, parent_sku, brand, title, description, price, "
                      "compare_at_price, currency, attributes, images, active, updated_at", text)
        would = {}
        for m in logs:
            g = re.match(r"dry run: (\w+) import part: (\d+) requests, (\d+) records", m)
            if g:
                would[g.group(1)] = (int(g.group(2)), int(g.group(3)))
        self.assertEqual(set(would), {"products", "inventory"}, text)
        imports = re.search(r"dry run: (\d+) imports would be created", text)
        self.assertIsNotNone(imports, text)

        # the bodies shown are what the real run would upload: Shops accepts
        # every item of each
        shown = [SHOWN_RE.match(m) for m in logs if m.startswith("dry run: request ")]
        self.assertEqual(len(shown), sum(r for r, _ in would.values()))
        api = ShopsApi(self.emu.url)
        imp = api.open_import("shown-bodies")
        whole = 0
        for k, g in enumerate(shown, 1):
            self.assertIsNotNone(g)
            body = g.group(3)
            if body.endswith(" [...]"):
                continue  # cut at 64 KiB
            self.assertEqual(len(body.encode()), int(g.group(2)))
            doc = json.loads(body)
            self.assertEqual(len(doc["items"]), int(g.group(1)))
            self.assertLessEqual(len(doc["items"]), 20)
            ans = api.put_part(imp, k, body.encode())
            # every item passes the contract's rules; only the emulator's
            # extra rule (not in the contract) rejects one
            extra = [i for i, it in enumerate(doc["items"]) if it["sku"].startswith("RSV-")]
            self.assertEqual([r["index"] for r in ans["rejected"]], extra, body[:200])
            self.assertEqual(ans["accepted"], len(doc["items"]) - len(extra))
            whole += 1
        self.assertGreater(whole, 2)
        api.abort(imp)
        self.emu.post("/_admin/reset")

        real = self.write(inp, cfg=self.cfg(part_max_items=20), name="real")
        self.assert_ok(real)
        dl = self.dead_letters()
        real_rej = real_rejections(dl)
        local = {r for r in real_rej if r[0] not in target_lines}
        self.assertEqual(local, got)
        self.assertEqual({r[0] for r in real_rej if r[0] in target_lines}, target_lines)
        self.assertEqual({r[3] for r in real_rej if r[0] in target_lines},
                         set(TARGET_ONLY) | {"invalid_format"})
        for e in dl:
            # the destination's own checks build no item; Shops' rules judge the item
            self.assertEqual(e["rejected_by"], "destination" if e["record_sent"] is None
                             else "target", e)
        st = self.stats()
        # what was sent is what the dry run said it would send; of it Shops
        # rejected at upload only the item breaking its own extra rule
        self.assertEqual(st["items"]["rejected_upload"], 1, st)
        self.assertEqual(st["items"]["accepted"] + 1, sum(r for _, r in would.values()))
        self.assertEqual(st["parts_uploaded"], sum(p for p, _ in would.values()))
        self.assertEqual(st["imports"]["committed"], int(imports.group(1)))
        self.assertGreater(st["imports"]["committed"], 1)
        self.assertEqual(st["items"]["rejected_commit"], 2)  # unknown_sku, unknown_parent
        # the states (of stream products) count its rejections
        self.assertEqual(sum(s["destinationStats"]["rejectedRecordCount"] for s in real.states),
                         len([e for e in dl if e["stream"] == "products"]))

    def test_deletions_are_checked_as_sent(self):
        """A record deleted upstream is sent deactivated: the rules judge the
        deactivated item (a product deletion with only its key lacks the
        required fields; a bad deletion time is the item's updated_at)."""
        t = "2026-01-01T00:00:00Z"
        lines = [record("products", {"sku": "P-%d" % i, "brand": "b", "title": "t",
                                     "price": "1.00", "currency": "BRL", "updated_at": t})
                 for i in range(3)]
        lines += [record("inventory", {"sku": "P-%d" % i, "location": "loja", "quantity": 5,
                                       "updated_at": t}) for i in range(3)]
        lines.append(state(1))
        gone = "2026-02-01T00:00:00Z"
        lines.append(record("products", {"sku": "P-0", "_ab_cdc_deleted_at": gone}))
        lines.append(record("inventory", {"sku": "P-1", "location": "loja",
                                          "_ab_cdc_deleted_at": gone}))
        lines.append(record("inventory", {"sku": "P-2", "location": "loja", "quantity": 5,
                                          "updated_at": t, "_ab_cdc_deleted_at": "yesterday"}))
        lines.append(state(2))
        want = {(8, "products", f, "missing_field") for f in ("brand", "title", "price",
                                                               "currency")}
        want.add((10, "inventory", "updated_at", "invalid_format"))
        inp = self.wd.write_lines("del.jsonl", lines)
        cat = self.wd.write_json("cat.json", catalog())
        cfg = self.write_config(self.cfg(), "c.json")
        dry = self.run_bin(["write", "--config", cfg, "--catalog", cat, "--input", inp,
                            "--dry-run", "--show-requests", "10"], "dry")
        self.assert_ok(dry)
        self.assert_nothing_sent()
        self.assertEqual(dry_rejections(dry), want)
        self.assertTrue(any('"quantity":0' in m for m in dry.logs()
                            if m.startswith("dry run: request ")))
        real = self.write(inp, name="real")
        self.assert_ok(real)
        self.assertEqual(real_rejections(self.dead_letters()), want)
        inv = {r["sku"]: r for r in self.dump()["inventory"]}
        self.assertEqual(inv["P-1"]["quantity"], 0)
        self.assertEqual(inv["P-1"]["updated_at"], gone)
        self.assertEqual(inv["P-2"]["quantity"], 5)
        self.assertEqual(self.stats()["items"]["rejected_upload"], 0)

    def test_dry_run_says_where_a_real_run_stops(self):
        """A real run stops at the rejection that crosses max_rejected_ratio
        (or at the first under rejected_records "fail"); the dry run goes on
        and names that line and the same reason."""
        rows = []
        for i in range(150):
            p = {"sku": "P-%03d" % i, "brand": "b", "title": "t", "price": "1.00",
                 "currency": "BRL", "updated_at": "2026-01-01T00:00:00Z"}
            if i % 3:
                p["price"] = 1  # invalid_type: two thirds of the records
            rows.append(p)
        path = self.wd.write_bytes("p.jsonl", "".join(json.dumps(r) + "\n"
                                                      for r in rows).encode())
        for over, line, why in (({}, None, "too many rejected records"),
                                ({"rejected_records": "fail"}, 2, "rejected_records")):
            cfg = self.write_config(self.cfg(**over), "c.json")
            dry = self.run_bin(["load", "--config", cfg, "--object", "products", "--dry-run",
                                path], "dry")
            self.assert_ok(dry)
            self.assert_nothing_sent()
            stops = [m for m in dry.logs() if "a real run would stop" in m]
            self.assertEqual(len(stops), 1, dry.describe())
            self.assertEqual(len(dry_rejections(dry)), 100)
            real = self.run_bin(["load", "--config", cfg, "--object", "products", path], "real")
            e = self.assert_fatal(real)
            self.assertIn(why, e["message"])
            self.assertIn(why, stops[0])
            at = int(re.search(r"stop at line (\d+)", stops[0]).group(1))
            if line:
                self.assertEqual(at, line)
                self.assertIn("line %d" % line, e["message"])
            else:
                # the same count of the same stream's records
                self.assertIn(re.search(r"\d+ of the \d+ records", e["message"]).group(0),
                              stops[0])
            self.emu.post("/_admin/reset")

    def test_load_dry_run_of_inventory(self):
        table = load_table()
        rows = [{"sku": "P-%03d" % i, "quantity": i, "updated_at": "2026-01-01T00:00:00Z"}
                for i in range(30)]
        want = set()
        for c in table["cases"]:
            if c["object"] == "inventory" and c["errors"]:
                rows.append(build_item(table["base"], c))
                for field, code in c["errors"]:
                    want.add((len(rows), "inventory", field, code))
        path = self.wd.write_bytes("inv.jsonl", "".join(json.dumps(r) + "\n"
                                                        for r in rows).encode())
        ck = self.wd.join("ck")
        cfg = self.write_config(self.cfg(), "l.json")
        dry = self.run_bin(["load", "--config", cfg, "--object", "inventory", "--dry-run",
                            "--show-requests", "1", "--checkpoint-file", ck, path], "dry")
        self.assert_ok(dry)
        self.assert_nothing_sent()
        self.assertFalse(os.path.exists(ck))
        got = dry_rejections(dry)
        self.assertEqual(got, want)
        self.assertIn("dry run: inventory import part: 1 requests, 30 records",
                      "\n".join(dry.logs()))

        products = self.wd.write_bytes("p.jsonl", "".join(json.dumps(
            {"sku": "P-%03d" % i, "brand": "b", "title": "t", "price": "1", "currency": "BRL",
             "updated_at": "2026-01-01T00:00:00Z"}) + "\n" for i in range(30)).encode())
        self.assert_ok(self.run_bin(["load", "--config", cfg, "--object", "products", products],
                                    "products"))
        real = self.run_bin(["load", "--config", cfg, "--object", "inventory", path], "real")
        self.assert_ok(real)
        dl = [e for e in self.dead_letters() if e["file"] == path]
        self.assertEqual({(line, "inventory", f, c) for line, _, f, c in real_rejections(dl)},
                         got)
        self.assertEqual(len(self.dump()["inventory"]), 30)
        self.assertEqual(self.stats()["items"]["rejected_upload"], 0)


if __name__ == "__main__":
    lib.main(__doc__)
