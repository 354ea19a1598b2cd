#!/usr/bin/env python3
"""Captures of this repository's sources in integration/captures/: each
source run against its server (source-bling, source-tiny and
source-totvs-moda against their emulators, whose data is made as of a
fixed day, source-postgres against a real PostgreSQL holding
examples/postgres/warehouse.sql) with the catalog of its example pipeline,
its output normalised and written beside the files gen_captures.py writes:

    <name>.jsonl           what the source printed, normalised (below)
    <name>.catalog.json    the destination catalog of the example pipeline
    <name>.expected.json   {"destination", "destination_config", "store",
                           "rejected", "records", "states", "final_state"}:
                           destination_config is the example's destination
                           config (its stream_mappings are used by the
                           replay); store is what the emulator holds after
                           one replay into an empty emulator

Normalised: CONTROL messages are left out (they carry the source's config,
credentials included); every emitted_at is CAPTURE_MS; every date-time
between an hour before the run and its end (the source's clock: window
ends, cursors) is CAPTURE_TIME; LOG durations read "N s".

    python3 integration/source_captures.py --bin-dir build/gcc --write
    python3 integration/source_captures.py --bin-dir build/gcc --check

--write writes the captures and their expected dumps (the dump is what the
destination stores when the capture is replayed through ab-run: review the
diff); --check runs the sources again and fails unless their normalised
output and catalogs equal the committed files. A new source: a Source
subclass (start its server, return its config) and an entry in CAPTURES.
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bling_helpers as bh  # noqa: E402
import crm360_helpers as crm  # noqa: E402
import gen_captures  # noqa: E402
import lib  # noqa: E402
import shops_helpers as shp  # noqa: E402
import tiny_helpers as th  # noqa: E402
import totvs_helpers as tv  # noqa: E402

ROOT = os.path.dirname(HERE)
EPOCH = "1764547200"  # the day the emulators' data is made as of: 2025-12-01
CAPTURE_MS = 1767225600000.0
CAPTURE_TIME = "2026-01-01T00:00:00Z"
DATETIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
DURATION_RE = re.compile(r"\b\d+(\.\d+)? s\b")


class Source:
    """A source and the server it reads; binary: the path under the build
    directory."""
    binary = None

    def __init__(self, bindir):
        self.path = os.path.join(bindir, self.binary)
        self.servers = []

    def config(self, example_config, tmp):
        """The source's config for a run (servers started), from the
        example's."""
        raise NotImplementedError

    def secrets(self):
        return ()

    def stop(self):
        for s in reversed(self.servers):
            s.stop()


class Bling(Source):
    binary = "sources/bling/source-bling"

    def config(self, example_config, tmp):
        if not self.servers:
            # the data as of a fixed day (the emulator makes it relative to its epoch)
            self.servers.append(bh.emulator(contacts=40, products=10, orders=30,
                                            extra=["--epoch", EPOCH]).start())
        cfg = dict(example_config, **bh.config(self.servers[0]))
        cfg.pop("start_date", None)
        return cfg

    def secrets(self):
        return ("bling-secret",)


class Tiny(Source):
    binary = "sources/tiny/source-tiny"

    def config(self, example_config, tmp):
        if not self.servers:
            self.servers.append(th.emulator(contacts=5, products=5, orders=5,
                                            extra=["--epoch", EPOCH]).start())
        # pages of 4: several pages, and a STATE after each, per stream
        cfg = dict(example_config, **th.config(self.servers[0], page_size=4))
        cfg.pop("start_date", None)
        return cfg

    def secrets(self):
        return ("tiny-secret", th.RT0)


class Totvs(Source):
    binary = "sources/totvs-moda/source-totvs-moda"

    def config(self, example_config, tmp):
        if not self.servers:
            self.servers.append(tv.emulator(persons=16, companies=2, references=3, orders=12,
                                            extra=["--epoch", EPOCH]).start())
        cfg = dict(example_config, **tv.config(self.servers[0], page_size=5))
        # the example's branch, stock and price codes
        for k in ("branch_codes", "stock_codes", "price_codes"):
            if k in example_config:
                cfg[k] = example_config[k]
        cfg.pop("start_date", None)
        return cfg

    def secrets(self):
        return (tv.SECRET, tv.PASSWORD)


class Postgres(Source):
    binary = "sources/postgres/source-postgres"
    password = "reader-" + os.urandom(6).hex()

    def config(self, example_config, tmp):
        import pg_server
        if not self.servers:
            pg = pg_server.PgServer(os.path.dirname(self.path)).start()
            self.servers.append(pg)
            pg.sql("create database warehouse")
            subprocess.run(pg.psql_argv("warehouse") + [
                "-f", os.path.join(ROOT, "examples", "postgres", "warehouse.sql")],
                check=True, stdout=subprocess.DEVNULL)
            pg.sql("create role airbyte_reader login password '%s'; "
                   "grant usage on schema warehouse to airbyte_reader; "
                   "grant select on all tables in schema warehouse to airbyte_reader"
                   % self.password, database="warehouse")
        return dict(example_config, port=self.servers[0].port, password=self.password,
                    ssl_mode={"mode": "disable"})

    def secrets(self):
        return (self.password,)


# name -> (source class, destination, example files relative to the
# repository: source config, source catalog, destination config,
# destination catalog)
CAPTURES = {
    "bling-crm360": (Bling, "crm360", (
        "examples/bling-crm360/source.json", "examples/bling-crm360/source-catalog.json",
        "examples/bling-crm360/destination.json",
        "examples/bling-crm360/destination-catalog.json")),
    "postgres-crm360": (Postgres, "crm360", (
        "examples/postgres/crm360/source.json", "examples/postgres/crm360/catalog.json",
        "examples/postgres/crm360/destination.json", "examples/postgres/crm360/catalog.json")),
    "postgres-shops": (Postgres, "shops", (
        "examples/postgres/shops/source.json", "examples/postgres/shops/catalog.json",
        "examples/postgres/shops/destination.json", "examples/postgres/shops/catalog.json")),
    "tiny-shops": (Tiny, "shops", (
        "examples/tiny-shops/source.json", "examples/tiny-shops/catalog.json",
        "examples/tiny-shops/destination.json", "examples/tiny-shops/catalog.json")),
    "totvs-crm360": (Totvs, "crm360", (
        "examples/totvs-crm360/source.json", "examples/totvs-crm360/source-catalog.json",
        "examples/totvs-crm360/destination.json",
        "examples/totvs-crm360/destination-catalog.json")),
    "totvs-shops": (Totvs, "shops", (
        "examples/totvs-shops/source.json", "examples/totvs-shops/source-catalog.json",
        "examples/totvs-shops/destination.json",
        "examples/totvs-shops/destination-catalog.json")),
}


def read_json(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return json.load(f)


def _parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def normalise(msgs, t0, t1):
    """msgs (a source's output, parsed) as committed: see the module doc.
    t0, t1: the run's start and end (seconds since the epoch)."""
    def walk(v):
        if isinstance(v, dict):
            return {k: (type(x)(CAPTURE_MS) if k == "emitted_at" else walk(x))
                    for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, str) and DATETIME_RE.match(v) and \
                t0 - 3600 - 1 <= _parse_time(v) <= t1 + 1:
            return CAPTURE_TIME
        return v
    out = []
    for m in msgs:
        if m["type"] == "CONTROL":
            continue
        m = walk(m)
        if m["type"] == "LOG":
            m["log"]["message"] = DURATION_RE.sub("N s", m["log"]["message"])
        out.append(m)
    return out


def secret_keys(binary):
    """The names of the properties marked airbyte_secret in binary's spec."""
    res = subprocess.run([binary, "spec"], capture_output=True, timeout=60, check=True)
    spec = next(m["spec"] for m in lib.parse_messages(res.stdout) if m["type"] == "SPEC")
    keys = set()

    def walk(v):
        if isinstance(v, dict):
            for k, x in (v.get("properties") or {}).items():
                if isinstance(x, dict) and x.get("airbyte_secret"):
                    keys.add(k)
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(spec["connectionSpecification"])
    return keys


def capture(name, source, tmp):
    """Run the source of capture name; returns its normalised messages."""
    _, _, (src_cfg, src_cat, _, _) = CAPTURES[name]
    cfg = source.config(read_json(src_cfg), tmp)
    cfg_path = os.path.join(tmp, name + ".source.json")
    with open(cfg_path, "w", encoding="utf-8") as f:
        json.dump(cfg, f)
    t0 = time.time()
    res = subprocess.run([source.path, "read", "--config", cfg_path, "--catalog",
                          os.path.join(ROOT, src_cat)], capture_output=True, timeout=300)
    t1 = time.time()
    os.unlink(cfg_path)
    if res.returncode != 0:
        raise RuntimeError("%s: the source failed (%d):\n%s" % (
            name, res.returncode, res.stderr.decode("utf-8", "replace")[-3000:]))
    raw = lib.parse_messages(res.stdout)
    msgs = normalise(raw, t0, t1)
    text = json.dumps(msgs)
    # the secrets of the config, and the secret values a CONTROL message
    # changed (rotated refresh tokens)
    secrets = list(source.secrets())
    keys = secret_keys(source.path)
    for m in raw:
        if m["type"] == "CONTROL":
            new = m["control"].get("connectorConfig", {}).get("config", {})
            secrets += [v for k, v in new.items() if k in keys and isinstance(v, str) and v]
    for s in secrets:
        if s in text:
            raise RuntimeError("%s: a secret in the normalised capture" % name)
    return msgs


def destination_config(name, emu_url, workdir):
    """The config a replay of capture name uses: the test settings (the
    emulator, its credentials) with the example's stream_mappings."""
    _, dest, (_, _, dst_cfg, _) = CAPTURES[name]
    example = read_json(dst_cfg)
    cfg = (crm.config if dest == "crm360" else shp.config)(emu_url, workdir)
    cfg["stream_mappings"] = example["stream_mappings"]
    if dest == "crm360" and not example.get("brand", "<").startswith("<"):
        cfg["brand"] = example["brand"]
    elif dest == "crm360":
        cfg["brand"] = "acme"
    return cfg


def write_files(outdir, names, bindir):
    """Run each capture's source and write <name>.jsonl and .catalog.json
    into outdir."""
    sources = {}
    try:
        with tempfile.TemporaryDirectory(prefix="ab-srccap-") as tmp:
            for name in names:
                cls = CAPTURES[name][0]
                if cls not in sources:
                    sources[cls] = cls(bindir)
                msgs = capture(name, sources[cls], tmp)
                with open(os.path.join(outdir, name + ".jsonl"), "w", encoding="utf-8") as f:
                    for m in msgs:
                        f.write(json.dumps(m, separators=(",", ":"), ensure_ascii=False))
                        f.write("\n")
                gen_captures.write_json(os.path.join(outdir, name + ".catalog.json"),
                                        read_json(CAPTURES[name][2][3]))
    finally:
        for s in sources.values():
            s.stop()


def replay_expected(name, bindir):
    """The expected dump of capture name: the capture replayed once through
    ab-run into an empty emulator."""
    dest = CAPTURES[name][1]
    path = os.path.join(gen_captures.CAPTURES, name + ".jsonl")
    with open(path, "rb") as f:
        msgs = lib.parse_messages(f.read())
    emu = crm.start_emulator() if dest == "crm360" else shp.start_emulator()
    try:
        wd = lib.Workdir("ab-srccap-")
        tmp = wd.path
        cfgdir = wd.join("cfg")
        os.makedirs(cfgdir)
        cfg = destination_config(name, emu.url, wd)
        with open(os.path.join(cfgdir, "destination.json"), "w") as f:
            json.dump(cfg, f)
        binary = os.path.join(bindir, "destinations", dest, "destination-" + dest)
        res = subprocess.run([os.path.join(bindir, "tools", "ab-run", "ab-run"),
                              "--replay", path, "--destination", binary,
                              "--config-dir", cfgdir, "--state", wd.join("state.json"),
                              "--catalog",
                              os.path.join(gen_captures.CAPTURES, name + ".catalog.json")],
                             capture_output=True, cwd=tmp, timeout=300)
        if res.returncode != 0:
            raise RuntimeError("%s: the replay failed:\n%s" % (
                name, res.stderr.decode("utf-8", "replace")[-3000:]))
        rejected = len(lib.read_jsonl(cfg["dead_letter_path"])) \
            if os.path.exists(cfg["dead_letter_path"]) else 0
        wd.cleanup()
        store = gen_captures.store_view(dest, emu.get("/_admin/dump"))
    finally:
        emu.stop()
    return {"destination": dest, "destination_config": CAPTURES[name][2][2], "store": store,
            "rejected": rejected,
            "records": sum(1 for m in msgs if m["type"] == "RECORD"),
            "states": sum(1 for m in msgs if m["type"] == "STATE"),
            "final_state": gen_captures.final_state(msgs)}


def check(bindir, names, captures_dir=None):
    """0 when every capture in names is what its source emits today (compared
    with the files in captures_dir, default integration/captures/)."""
    captures_dir = captures_dir or gen_captures.CAPTURES
    with tempfile.TemporaryDirectory(prefix="ab-srccap-check-") as tmp:
        write_files(tmp, names, bindir)
        bad = []
        for n in sorted(os.listdir(tmp)):
            try:
                with open(os.path.join(captures_dir, n), "rb") as b:
                    committed = b.read()
            except FileNotFoundError:
                committed = None
            with open(os.path.join(tmp, n), "rb") as a:
                if a.read() != committed:
                    bad.append(n)
        if bad:
            sys.stderr.write("the sources' output differs from the committed captures: %s "
                             "(rerun with --write and review the diff)\n" % ", ".join(bad))
            return 1
    print("%d source captures match what the sources emit" % len(names))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin-dir", required=True, help="the build directory (build/gcc)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", action="store_true", help="rewrite the captures and expected dumps")
    g.add_argument("--check", action="store_true", help="compare with the committed captures")
    p.add_argument("--captures-dir", default=gen_captures.CAPTURES,
                   help="with --check: the committed files to compare with (default: %(default)s)")
    p.add_argument("names", nargs="*", help="captures (default: all)")
    a = p.parse_args()
    names = a.names or sorted(CAPTURES)
    unknown = [n for n in names if n not in CAPTURES]
    if unknown:
        p.error("unknown capture(s) %s (known: %s)" % (", ".join(unknown),
                                                       ", ".join(sorted(CAPTURES))))
    bindir = os.path.abspath(a.bin_dir)
    if a.check:
        return check(bindir, names, os.path.abspath(a.captures_dir))
    write_files(gen_captures.CAPTURES, names, bindir)
    for name in names:
        gen_captures.write_json(os.path.join(gen_captures.CAPTURES, name + ".expected.json"),
                                replay_expected(name, bindir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
