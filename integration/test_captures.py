#!/usr/bin/env python3
"""Every capture in integration/captures/ replayed through `ab-run --replay`
into its destination against the emulator: the emulator then holds exactly
the capture's expected dump, the dead-letter file holds the expected number
of rejections, the state file holds the merge of every state; a second
replay changes nothing and reports its results as already applied. The
generated captures are what gen_captures.py makes; the captures of this
repository's sources (source_captures.py, replayed with their example
pipeline's stream_mappings) are what the sources emit today.

    python3 integration/test_captures.py --bin build/gcc/tools/ab-run/ab-run \\
        --crm360 build/gcc/destinations/crm360/destination-crm360 \\
        --shops build/gcc/destinations/shops/destination-shops --bin-dir build/gcc
"""
import json
import os
import re
import shutil
import subprocess
import sys

import crm360_helpers as crm
import gen_captures
import lib
import shops_helpers as shp
import source_captures


def captures():
    return sorted(n[:-len(".jsonl")] for n in os.listdir(gen_captures.CAPTURES)
                  if n.endswith(".jsonl"))


def load(name, suffix):
    with open(os.path.join(gen_captures.CAPTURES, name + suffix), encoding="utf-8") as f:
        return json.load(f)


def summary_numbers(stderr, pattern):
    m = re.search(pattern.encode(), stderr)
    if not m:
        raise AssertionError("no line matching %r in ab-run's stderr:\n%s"
                             % (pattern, stderr.decode("utf-8", "replace")[-3000:]))
    return [int(g) for g in m.groups()]


class Captures(lib.ServersCase):
    workdir_prefix = "ab-cap-"

    def test_captures_match_the_generator(self):
        res = subprocess.run([sys.executable, os.path.join(lib.HERE, "gen_captures.py"),
                              "--check"], capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_source_captures_match_the_sources(self):
        """source-bling, source-tiny, source-totvs-moda and source-postgres
        run again against their servers print exactly the committed captures
        (normalised)."""
        self.assertEqual(set(source_captures.CAPTURES) - set(captures()), set(),
                         "a source capture is not committed")
        res = subprocess.run([sys.executable, os.path.join(lib.HERE, "source_captures.py"),
                              "--bin-dir", lib.OPTIONS.bin_dir, "--check"],
                             capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_source_capture_check_detects_drift(self):
        """--check fails, naming the file, when what a source emits differs
        from the committed capture: a record's value, a STATE left out."""
        names = ("tiny-shops", "totvs-crm360")
        copy = self.wd.join("committed")
        os.makedirs(copy)
        for n in names:
            for suffix in (".jsonl", ".catalog.json"):
                shutil.copy(os.path.join(gen_captures.CAPTURES, n + suffix), copy)

        def run_check():
            return subprocess.run([sys.executable, os.path.join(lib.HERE, "source_captures.py"),
                                   "--bin-dir", lib.OPTIONS.bin_dir, "--check",
                                   "--captures-dir", copy] + list(names),
                                  capture_output=True, text=True)

        res = run_check()
        self.assertEqual(res.returncode, 0, res.stderr)  # the copy as committed
        with open(os.path.join(copy, "tiny-shops.jsonl"), encoding="utf-8") as f:
            lines = f.read().splitlines(True)
        i = next(i for i, line in enumerate(lines) if '"stream":"produtos"' in line and
                 '"type":"RECORD"' in line)
        m = json.loads(lines[i])
        m["record"]["data"]["precos"]["preco"] += 1
        lines[i] = json.dumps(m, separators=(",", ":"), ensure_ascii=False) + "\n"
        with open(os.path.join(copy, "tiny-shops.jsonl"), "w", encoding="utf-8") as f:
            f.writelines(lines)
        with open(os.path.join(copy, "totvs-crm360.jsonl"), encoding="utf-8") as f:
            lines = f.read().splitlines(True)
        states = [i for i, line in enumerate(lines) if line.startswith('{"type":"STATE"')]
        self.assertGreater(len(states), 1)
        del lines[states[0]]
        with open(os.path.join(copy, "totvs-crm360.jsonl"), "w", encoding="utf-8") as f:
            f.writelines(lines)
        res = run_check()
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn("differs from the committed captures: tiny-shops.jsonl, "
                      "totvs-crm360.jsonl", res.stderr)

    def test_source_captures_hold_every_stream(self):
        for name, (_, _, files) in source_captures.CAPTURES.items():
            with open(os.path.join(gen_captures.CAPTURES, name + ".jsonl"), "rb") as f:
                msgs = lib.parse_messages(f.read())
            want = {(s["stream"].get("namespace"), s["stream"]["name"])
                    for s in source_captures.read_json(files[1])["streams"]}
            got = {(m["record"].get("namespace"), m["record"]["stream"])
                   for m in msgs if m["type"] == "RECORD"}
            self.assertEqual(got, want, name)
            self.assertFalse([m for m in msgs if m["type"] == "CONTROL"], name)
            self.assertGreaterEqual(sum(1 for m in msgs if m["type"] == "STATE"), len(want), name)

    def test_captures_have_noise_interleaving_and_no_null_namespace(self):
        for name in sorted(gen_captures.CAPTURE_SET):
            with open(os.path.join(gen_captures.CAPTURES, name + ".jsonl"), "rb") as f:
                msgs = lib.parse_messages(f.read())
            types = {m["type"] for m in msgs}
            self.assertTrue({"RECORD", "STATE", "LOG", "TRACE"} <= types, name)
            streams = [m["record"]["stream"] for m in msgs if m["type"] == "RECORD"]
            switches = sum(1 for a, b in zip(streams, streams[1:]) if a != b)
            self.assertGreater(switches, 10, "%s: streams are not interleaved" % name)
            self.assertNotIn(b'"namespace":null', json.dumps(msgs, separators=(",", ":"))
                             .encode())
        self.assertTrue(any(load(n, ".expected.json")["final_state"][0]["type"] == "GLOBAL"
                            for n in captures()))

    def start(self, dest):
        return self.started(crm.start_emulator() if dest == "crm360" else shp.start_emulator())

    def replay(self, name, dest, emu, run):
        cfgdir = self.wd.join("cfg-%s" % name)
        os.makedirs(cfgdir, exist_ok=True)
        if name in source_captures.CAPTURES:
            cfg = source_captures.destination_config(name, emu.url, self.wd)
        else:
            cfg = (crm.config if dest == "crm360" else shp.config)(emu.url, self.wd)
        cfg["dead_letter_path"] = self.wd.join("%s.dead-letters.jsonl" % name)
        with open(os.path.join(cfgdir, "destination.json"), "w") as f:
            json.dump(cfg, f)
        binary = os.path.abspath(lib.OPTIONS.crm360 if dest == "crm360" else lib.OPTIONS.shops)
        state = self.wd.join("%s.state.json" % name)
        res = lib.run_connector(lib.binary(), [
            "--replay", os.path.join(gen_captures.CAPTURES, name + ".jsonl"),
            "--destination", binary, "--config-dir", cfgdir, "--state", state,
            "--catalog", os.path.join(gen_captures.CAPTURES, name + ".catalog.json")],
            self.wd, name="%s-%d" % (name, run))
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual(res.stdout, b"", "ab-run writes nothing to stdout")
        self.assertEqual(lib.sanitizer_report(res.stderr), "")
        secrets = crm.ALL_KEYS if dest == "crm360" else shp.ALL_SECRETS
        for s in secrets:
            lib.assert_absent(s, paths=[p for p in self.wd.files() if "/cfg-" not in p],
                              blobs=[res.stderr])
        with open(state, encoding="utf-8") as f:
            return res, json.load(f)

    def check_capture(self, name):
        exp = load(name, ".expected.json")
        dest = exp["destination"]
        emu = self.start(dest)
        res, state = self.replay(name, dest, emu, 1)
        dump = emu.get("/_admin/dump")
        self.assertEqual(gen_captures.store_view(dest, dump, exp["store"]), exp["store"],
                         "%s: the emulator's contents differ from the expected dump" % name)
        dl = lib.read_jsonl(self.wd.join("%s.dead-letters.jsonl" % name))
        self.assertEqual(len(dl), exp["rejected"], "%s: dead letters" % name)
        self.assertEqual(state, exp["final_state"], "%s: state file" % name)
        self.assertIn(b"%d states acknowledged" % exp["states"], res.stderr)
        self.assertIn(b"[destination] INFO", res.stderr)

        # a second replay applies nothing and says so
        res2, state2 = self.replay(name, dest, emu, 2)
        dump2 = emu.get("/_admin/dump")
        dump.pop("imports", None)  # Shops: the second replay's own import
        dump2.pop("imports", None)
        self.assertEqual(dump2, dump, "%s: second replay changed data (versions included)" % name)
        self.assertEqual(state2, exp["final_state"])
        if dest == "crm360":
            sent, replayed = summary_numbers(
                res2.stderr, r"crm360: (\d+) batches sent \((\d+) answered from the "
                             r"idempotency store[;)]")
            earlier, = summary_numbers(
                res2.stderr, r"crm360: (\d+) batches were applied by an earlier run")
            self.assertGreater(sent, 0)
            self.assertEqual((replayed, earlier), (sent, sent),
                             "%s: every batch was applied before" % name)
            committed, = summary_numbers(res2.stderr, r"records read, (\d+) committed")
            already = 0
            for obj in crm.OBJECTS:
                created, updated, already_obj = summary_numbers(
                    res2.stderr, r"crm360 %s: created (\d+), updated (\d+), .*already applied "
                                 r"by an earlier run (\d+)" % obj)
                self.assertEqual((created, updated), (0, 0), "%s %s" % (name, obj))
                already += already_obj
            self.assertEqual(already, committed,
                             "%s: every committed record reported as already applied" % name)
        else:
            p_app, p_unch, _, i_app, i_unch, _ = summary_numbers(
                res2.stderr, r"shops: products applied (\d+), unchanged (\d+), deactivated "
                             r"(\d+); inventory applied (\d+), unchanged (\d+), deactivated (\d+)")
            self.assertEqual((p_app, i_app), (0, 0), "%s: second replay applied data" % name)
            self.assertGreaterEqual(p_unch, len(exp["store"]["products"]))
            self.assertGreaterEqual(i_unch, len(exp["store"]["inventory"]))

    def test_replay_every_capture(self):
        names = captures()
        self.assertTrue(any(n.startswith("crm360") for n in names))
        self.assertTrue(any(n.startswith("shops") for n in names))
        self.assertTrue(set(source_captures.CAPTURES) <= set(names))
        for name in names:
            with self.subTest(capture=name):
                self.check_capture(name)


def extra(p):
    p.add_argument("--crm360", required=True, help="destination-crm360 binary")
    p.add_argument("--shops", required=True, help="destination-shops binary")
    p.add_argument("--bin-dir", required=True,
                   help="the build directory, for the sources (source_captures.py)")


if __name__ == "__main__":
    lib.main(__doc__, extra)
