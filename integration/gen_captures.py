#!/usr/bin/env python3
"""Generate the captured Airbyte message streams in integration/captures/.

Each capture is what a source would print: RECORD and STATE messages of
several streams, interleaved, with the source's LOG and TRACE noise (stream
statuses, estimates, progress logs). `namespace` is omitted where there is
none. It is built from the stream generators (gen_stream.py,
gen_shops_stream.py) and written beside three files:

    <name>.jsonl           the capture (replay it with ab-run --replay)
    <name>.catalog.json    its configured catalog
    <name>.expected.json   {"destination", "store", "rejected", "records",
                            "states", "final_state"}: what the emulator holds
                           after the capture is replayed once into an empty
                           emulator (store: object -> key -> stored record,
                           see store_view()), how many records the
                           destination or the target rejects, and the state
                           file ab-run writes

    python3 integration/gen_captures.py            # rewrite integration/captures/
    python3 integration/gen_captures.py --check    # regenerate elsewhere, compare

Output is deterministic: the captures are in the repository, and --check
proves they are what this script makes.
"""

import argparse
import filecmp
import json
import os
import random
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import crm360_helpers as crm  # noqa: E402
import lib  # noqa: E402
import shops_helpers as shp  # noqa: E402

CAPTURES = os.path.join(HERE, "captures")

# name -> (destination, generator, generator options, catalog namespace)
CAPTURE_SET = {
    "crm360-global": ("crm360", "gen_stream.py",
                      {"customers": 120, "orders": 240, "update_rate": 0.2, "invalid": 4,
                       "state_every": 40, "state_type": "GLOBAL", "seed": 11}, None),
    "crm360-streams-erp": ("crm360", "gen_stream.py",
                           {"customers": 80, "orders": 160, "update_rate": 0.15, "invalid": 2,
                            "state_every": 25, "state_type": "STREAM", "namespace": "erp",
                            "seed": 12}, "erp"),
    "shops-global": ("shops", "gen_shops_stream.py",
                     {"products": 60, "inventory": 180, "update_rate": 0.15, "invalid": 3,
                      "invalid_kinds": "missing_sku,price_number", "state_every": 50,
                      "state_type": "GLOBAL", "seed": 13}, None),
    "shops-streams-catalogo": ("shops", "gen_shops_stream.py",
                               {"products": 50, "inventory": 150, "update_rate": 0.1,
                                "invalid": 2, "invalid_kinds": "missing_sku,price_format",
                                "state_every": 30, "state_type": "STREAM",
                                "namespace": "catalogo", "seed": 14}, "catalogo"),
}


def drop_null_namespace(obj):
    """obj without "namespace": null members, at any depth."""
    if isinstance(obj, dict):
        return {k: drop_null_namespace(v) for k, v in obj.items()
                if not (k == "namespace" and v is None)}
    if isinstance(obj, list):
        return [drop_null_namespace(v) for v in obj]
    return obj


def descriptor(stream, namespace):
    d = {"name": stream}
    if namespace is not None:
        d["namespace"] = namespace
    return d


def trace(kind, body, t):
    return {"type": "TRACE", "trace": dict({"type": kind, "emitted_at": float(t)}, **body)}


def log(level, message):
    return {"type": "LOG", "log": {"level": level, "message": message}}


def add_noise(msgs, streams, namespace, rng):
    """The source's LOG and TRACE messages around and between the data."""
    t = 1767225600000
    out = [log("INFO", "Starting syncing source (%d streams)" % len(streams))]
    for s in streams:
        out.append(trace("STREAM_STATUS", {"stream_status": {
            "stream_descriptor": descriptor(s, namespace), "status": "STARTED"}}, t))
        out.append(trace("ESTIMATE", {"estimate": {
            "name": s, "type": "STREAM", "row_estimate": sum(
                1 for m in msgs if m["type"] == "RECORD" and m["record"]["stream"] == s)}}, t))
        if namespace is not None:
            out[-1]["trace"]["estimate"]["namespace"] = namespace
        out.append(trace("STREAM_STATUS", {"stream_status": {
            "stream_descriptor": descriptor(s, namespace), "status": "RUNNING"}}, t))
    page = 0
    for i, m in enumerate(msgs):
        out.append(m)
        if i % 37 == 36:
            page += 1
            level = rng.choice(["INFO", "INFO", "DEBUG", "WARN"])
            out.append(log(level, "page %d read (%s)" % (
                page, "slow answer, 1.2 s" if level == "WARN" else "ok")))
    for s in streams:
        out.append(trace("STREAM_STATUS", {"stream_status": {
            "stream_descriptor": descriptor(s, namespace), "status": "COMPLETE"}}, t))
    out.append(log("INFO", "Finished syncing source"))
    return out


def desc_key(st):
    d = st["stream"]["stream_descriptor"]
    return d.get("namespace"), d["name"]


def final_state(msgs):
    """The state file ab-run writes once every STATE of msgs is
    acknowledged: a STREAM state replaces its stream's entry in place (or is
    appended), a GLOBAL state replaces everything, statistics dropped."""
    entries = []
    for m in msgs:
        if m["type"] != "STATE":
            continue
        st = {k: v for k, v in m["state"].items()
              if k not in ("sourceStats", "destinationStats")}
        if st.get("type") != "STREAM":
            entries = [st]
            continue
        if any(e.get("type") != "STREAM" for e in entries):
            entries = []
        for i, e in enumerate(entries):
            if desc_key(e) == desc_key(st):
                entries[i] = st
                break
        else:
            entries.append(st)
    return entries


def store_view(destination, dump, expected=None):
    """The emulator's dump (GET /_admin/dump) as object -> key -> record,
    without what depends on the history of writes (version, the generation
    tag of a customer), the channel, or the imports; a deleted CRM360 record
    keeps "deleted": true. expected (the expected store, when known) tells
    an empty tag list from none."""
    if destination == "crm360":
        out = {}
        for obj in crm.OBJECTS:
            out[obj] = {}
            for r in dump[obj]:
                want = ((expected or {}).get(obj) or {}).get(crm.key_of(r))
                r = dict(crm.without_generation_tag(r, want))
                r.pop("version", None)
                if r.pop("deleted", False):
                    r["deleted"] = True
                out[obj][crm.key_of(r)] = r
        return out
    return shp.dump_by_key(dump)


def expected_store(destination, exp):
    if destination == "crm360":
        return {obj: {k: crm.expected_stored(obj, r) for k, r in exp[obj].items()}
                for obj in crm.OBJECTS}
    return shp.expected_store(exp)


def catalog(destination, namespace):
    if destination == "crm360":
        cat = crm.catalog(namespace=namespace, sync_id=4242)
    else:
        cat = shp.catalog(namespace=namespace, sync_id=4343)
    return drop_null_namespace(cat)


def load_expected(name):
    with open(os.path.join(CAPTURES, name + ".expected.json"), encoding="utf-8") as f:
        return json.load(f)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")


def generate(outdir):
    for name, (dest, script, opts, namespace) in sorted(CAPTURE_SET.items()):
        with tempfile.TemporaryDirectory(prefix="ab-cap-") as tmp:
            path, exp = lib.run_generator(os.path.join(HERE, script), tmp, "gen", **opts)
            with open(path, encoding="utf-8") as f:
                msgs = [drop_null_namespace(json.loads(line)) for line in f if line.strip()]
        # the generators' own end-of-stream traces are replaced by the noise's
        msgs = [m for m in msgs if m["type"] != "TRACE"]
        streams = list(crm.OBJECTS if dest == "crm360" else shp.STREAMS)
        rng = random.Random(opts["seed"])
        lines = add_noise(msgs, streams, namespace, rng)
        with open(os.path.join(outdir, name + ".jsonl"), "w", encoding="utf-8") as f:
            for m in lines:
                f.write(json.dumps(m, separators=(",", ":"), ensure_ascii=False))
                f.write("\n")
        write_json(os.path.join(outdir, name + ".catalog.json"), catalog(dest, namespace))
        write_json(os.path.join(outdir, name + ".expected.json"), {
            "destination": dest,
            "store": expected_store(dest, exp),
            "rejected": len(exp["invalid"]),
            "records": sum(1 for m in msgs if m["type"] == "RECORD"),
            "states": sum(1 for m in msgs if m["type"] == "STATE"),
            "final_state": final_state(msgs),
        })


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=CAPTURES, help="directory to write (default: %(default)s)")
    p.add_argument("--check", action="store_true",
                   help="generate into a temporary directory and compare with --out")
    a = p.parse_args()
    if not a.check:
        os.makedirs(a.out, exist_ok=True)
        generate(a.out)
        return 0
    with tempfile.TemporaryDirectory(prefix="ab-cap-check-") as tmp:
        generate(tmp)
        names = sorted(os.listdir(tmp))
        _, mismatch, errors = filecmp.cmpfiles(tmp, a.out, names, shallow=False)
        if mismatch or errors:
            sys.stderr.write("captures differ from what gen_captures.py makes: %s\n"
                             % ", ".join(mismatch + errors))
            return 1
    print("%d capture files match the generator" % len(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
