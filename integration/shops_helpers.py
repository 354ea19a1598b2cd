"""shops_helpers.py - what the Shops test scripts and benchmark share.

Emulator start-up, credentials, config and catalog, the stream generator,
the expected store and its comparison with the emulator's dump, dead-letter
checks, the live state checker (Source, Checker), the import expirer and the
test case class. Imported by test_shops_*.py and bench_shops.py; what does
not depend on the destination is in lib.py and airbyte_input.py.
"""

import json
import os
import re
import secrets
import sys
import threading
import time
import urllib.parse
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from airbyte_input import (assert_states, check_dead_letters, check_emitted_state,  # noqa: E402
                           descriptor, reason_matches)

# ---------------------------------------------------------------------------
# Shops helpers
# ---------------------------------------------------------------------------

EMULATOR = os.path.join(lib.EMULATORS, "shops_emulator.py")
GENERATOR = os.path.join(lib.HERE, "gen_shops_stream.py")
# Fresh random credentials per process, so a leak cannot hide behind a constant.
CLIENT_ID = "it-shops-client"
SECRET = "cs-shops-" + secrets.token_hex(16)
WRONG_SECRET = "cs-shops-wrong-" + secrets.token_hex(12)
OTHER_CLIENT = "it-other-client"
OTHER_SECRET = "cs-other-" + secrets.token_hex(12)
ALL_SECRETS = (SECRET, WRONG_SECRET, OTHER_SECRET)
CHANNEL = "store-br"
OTHER_CHANNEL = "store-ar"
LABEL_PREFIX = "it-shops"
# The emulator's access tokens: "tok_" + 32 url-safe base64 characters.
TOKEN_RE = re.compile(rb"tok_[A-Za-z0-9_-]{20,}")

STREAMS = ("products", "inventory")
PRODUCT_FIELDS = ("sku", "parent_sku", "brand", "title", "description", "price",
                  "compare_at_price", "currency", "attributes", "images", "active",
                  "updated_at")


def start_emulator(rate=0, seed=7, token_ttl=None, import_ttl=None, extra=()):
    args = ["--rate", str(rate), "--client", "%s:%s" % (CLIENT_ID, SECRET),
            "--client", "%s:%s" % (OTHER_CLIENT, OTHER_SECRET),
            "--channel", "%s:Loja BR:BRL" % CHANNEL,
            "--channel", "%s:Tienda AR:ARS" % OTHER_CHANNEL,
            "--seed", str(seed)]
    if token_ttl is not None:
        args += ["--token-ttl", str(token_ttl)]
    if import_ttl is not None:
        args += ["--import-ttl", str(import_ttl)]
    return lib.Server(EMULATOR, args + list(extra), name="shops").start()


def catalog(mode="append_dedup", modes=None, sync_id=42, namespace=None, streams=STREAMS):
    cs = []
    for s in streams:
        m = (modes or {}).get(s, mode)
        pk = [["sku"]] if s == "products" else [["sku"], ["location"]]
        cs.append({
            "stream": dict(descriptor(s, namespace), json_schema={"type": "object"},
                           supported_sync_modes=["full_refresh", "incremental"],
                           source_defined_primary_key=pk),
            "sync_mode": "full_refresh" if m == "overwrite" else "incremental",
            "destination_sync_mode": m, "primary_key": pk, "cursor_field": ["updated_at"],
            "generation_id": 1, "minimum_generation_id": 0, "sync_id": sync_id})
    return {"streams": cs}


def config(url, workdir, **over):
    cfg = {"api_url": url, "client_id": CLIENT_ID, "client_secret": SECRET,
           "channel": CHANNEL, "label_prefix": LABEL_PREFIX, "requests_per_second": 0,
           "dead_letter_path": workdir.join("dead-letters.jsonl"), "min_commit_records": 300,
           "part_max_items": 100, "max_in_flight": 4, "max_retries": 5,
           "connect_timeout_seconds": 5, "request_timeout_seconds": 20}
    cfg.update(over)
    return {k: v for k, v in cfg.items() if v is not None}


def run_gen(workdir, name="input", **opts):
    """Run gen_shops_stream.py through lib.run_generator. Returns (input
    path, expected dict)."""
    return lib.run_generator(GENERATOR, workdir, name, **opts)


def ts_key(text):
    """An RFC 3339 time as a comparable instant (seconds since the epoch)."""
    t = text.replace("z", "Z").replace("t", "T")
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    return datetime.fromisoformat(t).timestamp()


def inv_key(sku, location):
    return "%s|%s" % (sku, location if location is not None else "default")


def item_key(stream, data):
    if stream == "products":
        return data.get("sku")
    return inv_key(data.get("sku"), data.get("location"))


def stored_product(d):
    """What the API stores for an accepted product: known fields, null
    dropped, active defaulting to true."""
    out = {k: d[k] for k in PRODUCT_FIELDS if d.get(k) is not None}
    out.setdefault("active", True)
    return out


def stored_inventory(d):
    return {"sku": d["sku"], "location": d.get("location") or "default",
            "quantity": d["quantity"], "updated_at": d["updated_at"]}


def stored_view(stream, d):
    return stored_product(d) if stream == "products" else stored_inventory(d)


def dump_by_key(dump):
    out = {"products": {}, "inventory": {}}
    for p in dump["products"]:
        p = dict(p)
        p.pop("channel", None)
        out["products"][p["sku"]] = p
    for i in dump["inventory"]:
        i = dict(i)
        i.pop("channel", None)
        out["inventory"][inv_key(i["sku"], i["location"])] = i
    return out


def expected_store(exp):
    """Stored form of a generator's expected file: stream -> key -> item."""
    return {s: {k: stored_view(s, d) for k, d in exp[s].items()} for s in STREAMS}


def expected_after_replace(old, new, replaced=STREAMS):
    """The store after a full refresh `new` (stored form) replaced `old` for
    the objects in `replaced`: keys only in old are deactivated, updated_at
    kept; other objects merge."""
    out = {}
    for s in STREAMS:
        m = {}
        for k, v in old[s].items():
            if s in replaced and k not in new[s]:
                v = dict(v, active=False) if s == "products" else dict(v, quantity=0)
            m[k] = v
        for k, v in new[s].items():
            cur = m.get(k)
            if cur is None or ts_key(v["updated_at"]) >= ts_key(cur["updated_at"]):
                m[k] = v
        out[s] = m
    return out


def merge_stores(*stores):
    """Latest version of every key over several stored-form stores."""
    out = {s: {} for s in STREAMS}
    for st in stores:
        for s in STREAMS:
            for k, v in st[s].items():
                cur = out[s].get(k)
                if cur is None or ts_key(v["updated_at"]) >= ts_key(cur["updated_at"]):
                    out[s][k] = v
    return out


def assert_store_equals(tc, dump, want, what="store"):
    """The channel holds exactly the items of want (stored form), field by
    field."""
    have = dump_by_key(dump)
    for s in STREAMS:
        missing = sorted(set(want[s]) - set(have[s]))
        extra = sorted(set(have[s]) - set(want[s]))
        tc.assertFalse(missing, "%s: %s: %d expected keys not stored, e.g. %s"
                       % (what, s, len(missing), missing[:5]))
        tc.assertFalse(extra, "%s: %s: %d unexpected keys stored, e.g. %s"
                       % (what, s, len(extra), extra[:5]))
        bad = [(k, have[s][k], v) for k, v in want[s].items() if have[s][k] != v]
        tc.assertFalse(bad, "%s: %s: %d items differ; first %s: stored %r expected %r"
                       % ((what, s, len(bad)) + (bad[0] if bad else (None, None, None))))


def assert_dead_letters(tc, entries, invalid, line_map=None, exact=True):
    """entries: dead-letter lines; invalid: the generator's list. line_map
    maps a dead-letter line to the original input line (restarted runs).
    exact: each invalid record exactly once, else at least once. No entry may
    be for a valid record. Each entry holds the reason ('code field') and
    `rejected_by` of its invalid record, and the item as sent when the API
    rejected it."""

    def check_entry(e, w, line):
        tc.assertTrue(reason_matches(e, w["reason"]), "dead letter for line %s has errors %r, "
                      "expected %s" % (line, e["errors"], w["reason"]))
        if w.get("rejected_by"):
            tc.assertEqual(e["rejected_by"], w["rejected_by"], "dead letter %r" % (e,))
        if w.get("key") and w["rejected_by"] == "target":
            tc.assertEqual(item_key(e["stream"], e["record_sent"]), w["key"],
                           "dead letter of line %s holds another item" % line)
            tc.assertIsInstance(e["record"], dict, "dead letter of line %s: the record as "
                                "received" % line)
            tc.assertEqual(item_key(e["stream"], e["record"]), w["key"],
                           "dead letter of line %s holds another record" % line)

    check_dead_letters(tc, entries, invalid, check_entry, line_map, exact)


def our_imports(dump, prefix=LABEL_PREFIX):
    return [i for i in dump["imports"] if (i.get("label") or "").startswith(prefix + ":")]


def assert_no_open_imports(tc, dump, prefix=LABEL_PREFIX):
    left = [(i["import_id"], i["status"], i["label"]) for i in our_imports(dump, prefix)
            if i["status"] in ("open", "committing")]
    tc.assertEqual(left, [], "imports of ours left open: %s" % left)


def checkpoint_state(imp):
    """The STATE message (as a dict) an import's checkpoint names, or None."""
    cp = imp.get("checkpoint")
    if not cp:
        return None
    if cp.startswith("sha256:"):
        return {"sha256": cp}
    return json.loads("{" + cp + "}")


class Source:
    """An input file, indexed: states, and every valid record with its key
    and updated_at, for the live checks and restarts."""

    def __init__(self, path, expected):
        self.path = path
        self.lines = lib.read_input_lines(path)
        self.msgs = {}
        self.state_line_by_id = {}
        self.state_stream = {}      # line -> stream name, or None for GLOBAL
        self.valid = {}             # stream -> [(line, key, instant)]
        self.record_at = {}         # (stream, key, instant) -> line (valid records)
        self.invalid_lines = {i["line"] for i in expected["invalid"]}
        for n, m in lib.parse_input(path):
            self.msgs[n] = m
            t = m.get("type")
            if t == "STATE":
                st = m["state"]
                self.state_line_by_id[st.get("id")] = n
                self.state_stream[n] = (None if st.get("type") == "GLOBAL"
                                        else st["stream"]["stream_descriptor"]["name"])
            elif t == "RECORD" and n not in self.invalid_lines:
                s = m["record"]["stream"]
                d = m["record"]["data"]
                k, inst = item_key(s, d), ts_key(d["updated_at"])
                self.valid.setdefault(s, []).append((n, k, inst))
                self.record_at[(s, k, inst)] = n
        self.streams = sorted(self.valid)
        self.state_lines = sorted(self.state_stream)

    def after(self, line):
        """Original line numbers after `line` (a restart from that state)."""
        return list(range(line + 1, len(self.lines) + 1))

    def data(self, lines):
        return b"".join(self.lines[n - 1] + b"\n" for n in lines)


def applied_key(a):
    if a["object"] == "products":
        return ("products", a["sku"])
    return ("inventory", inv_key(a["sku"], a["location"]))


class Checker:
    """Verifies each emitted STATE as soon as the stdout reader thread reads
    it: it is the next input state of the run, unchanged but for its counts,
    which add up; and every valid record of its scope before it in the input
    is applied in the emulator (an applied write of that key with an
    updated_at at least the record's). Also notes when each state arrived and
    which import ids the destination logged as created."""

    CREATED_RE = re.compile(r"import (imp_[A-Za-z0-9_]+) created")

    def __init__(self, emu, source, live=True):
        self.emu = emu
        self.src = source
        self.live = live
        self.mirror = {}            # (stream, key) -> max applied instant
        self.seen = 0               # applied entries fetched so far
        self.failures = []
        self.states_checked = 0
        self.records_checked = 0
        self.refreshes = 0          # /_admin/applied calls made
        self.lock = threading.Lock()
        self.on_created = None      # callback(import_id) for tests
        self.begin_run(list(range(1, len(source.lines) + 1)))

    def begin_run(self, run_lines):
        self.run_states = [n for n in run_lines if n in self.src.state_stream]
        self.emitted = []           # original lines of the states emitted this run
        self.arrivals = []          # (original line, time.time()) of this run
        self.checked = {s: 0 for s in self.src.streams}
        self.run_lines = run_lines
        # Per stream, the records of this run start at the first of them in
        # run_lines (a restart resumes each stream at a suffix of its lines);
        # earlier ones were covered by states of earlier runs.
        in_run = set(run_lines)
        for s in self.src.streams:
            recs = self.src.valid[s]
            i = 0
            while i < len(recs) and recs[i][0] not in in_run:
                i += 1
            self.checked[s] = i

    def refresh(self):
        self.refreshes += 1
        new = self.emu.get("/_admin/applied?since=%d" % self.seen)
        self.seen += len(new)
        for a in new:
            k = applied_key(a)
            inst = ts_key(a["updated_at"])
            if inst > self.mirror.get(k, float("-inf")):
                self.mirror[k] = inst

    def on_line(self, raw):
        t = time.time()
        if b'"STATE"' not in raw and b" created (mode " not in raw:
            return
        try:
            msg = json.loads(raw)
        except ValueError:
            return  # lib.parse_messages reports it at the end
        if msg.get("type") == "LOG" and self.on_created:
            m = self.CREATED_RE.search(msg.get("log", {}).get("message", ""))
            if m:
                self.on_created(m.group(1))
            return
        if msg.get("type") != "STATE":
            return
        with self.lock:
            try:
                self._check(msg["state"], t)
            except Exception as exc:  # keep reading; reported at the end
                self.failures.append("checker error: %r" % (exc,))

    def _check(self, st, t):
        line = check_emitted_state(self.src, st, self.run_states, self.emitted, self.failures)
        if line is None:
            return
        self.arrivals.append((line, t))
        orig = self.src.msgs[line]["state"]
        ds = st.get("destinationStats", {})
        src_count = orig.get("sourceStats", {}).get("recordCount")
        if src_count is not None and \
                ds.get("recordCount", -1) + ds.get("rejectedRecordCount", 0) != src_count:
            self.failures.append("state at line %d: destinationStats %r, sourceStats %r"
                                 % (line, ds, orig["sourceStats"]))
        self.emitted.append(line)
        if not self.live:
            return
        self.refresh()
        scope = self.src.state_stream[line]
        for s in ([scope] if scope else self.src.streams):
            recs = self.src.valid.get(s, [])
            i = self.checked.get(s, 0)
            while i < len(recs) and recs[i][0] < line:
                n, key, inst = recs[i]
                have = self.mirror.get((s, key))
                if have is None or have < inst:
                    self.failures.append(
                        "state at line %d emitted but %s %s (line %d) is not applied "
                        "(applied up to %s)" % (line, s, key, n, have))
                i += 1
                self.records_checked += 1
            self.checked[s] = i
        self.states_checked += 1


class Expirer(threading.Thread):
    """Every `every` seconds (a random interval by default), while armed,
    lists the open imports of ours through the API (GET
    /v1/imports?status=open&label_prefix=, with a token of the same client:
    imports are visible to their client only) and expires one of them with
    POST /_admin/expire. arm(n): n more expirations. Requests that meet an
    injected fault are simply tried again later. (The destination's LOG lines
    are not flushed before its next STATE, so its "created" log cannot serve
    as the trigger.)"""

    def __init__(self, emu, rng, every=None):
        super().__init__(daemon=True)
        self.emu = emu
        self.rng = rng
        self.every = every
        self.remaining = 0
        self.expired = []
        self.admin_calls = 0        # POST /_admin/expire calls made
        self.errors = 0
        self._halt = threading.Event()
        self._token = None

    def token(self):
        if self._token is None:
            body = urllib.parse.urlencode({"grant_type": "client_credentials",
                                           "client_id": CLIENT_ID,
                                           "client_secret": SECRET}).encode()
            st, obj = lib.http_json("POST", self.emu.url + "/oauth/token", body,
                                    {"Content-Type": "application/x-www-form-urlencoded"})
            if st != 200:
                raise AssertionError("token: HTTP %s %r" % (st, obj))
            self._token = obj["access_token"]
        return self._token

    def open_imports(self):
        url = (self.emu.url + "/v1/imports?channel=%s&status=open&label_prefix=%s:"
               % (CHANNEL, LABEL_PREFIX))
        try:
            st, obj = lib.http_json("GET", url, headers={"Authorization": "Bearer "
                                                         + self.token()}, timeout=10)
        except OSError:
            return []       # an injected connection reset
        if st == 401:
            self._token = None
        if st != 200:
            return []
        return [i["import_id"] for i in obj["data"]]

    def arm(self, n):
        self.remaining = n

    @property
    def armed(self):
        return self.remaining > 0

    def run(self):
        while not self._halt.wait(self.every or self.rng.uniform(0.05, 0.25)):
            if self.remaining <= 0:
                continue
            try:
                ids = self.open_imports()
                if not ids:
                    continue
                target = self.rng.choice(ids)
                self.admin_calls += 1
                st, _ = lib.http_json("POST", self.emu.url + "/_admin/expire?import_id="
                                      + target)
                if st == 200:
                    self.expired.append(target)
                    self.remaining -= 1
            except Exception:  # noqa: BLE001 - counted, the test goes on
                self.errors += 1

    def stop(self):
        self._halt.set()
        self.join(10)


def assert_states_after_commits(tc, src, arrivals, dump, applied, strict_mapping=True):
    """No state went out before the imports holding the records of its scope
    committed: each valid record before a state is mapped to the import that
    applied it (the emulator's applied log), and that import's committed_at
    must not be later than the moment the state was read (2 ms for the
    emulator's rounding). arrivals: [(input line of the state, time)]."""
    committed = {i["import_id"]: ts_key(i["committed_at"]) for i in dump["imports"]
                 if i["status"] == "committed"}
    first_commit = {}
    for a in applied:
        k = (a["object"], applied_key(a)[1], ts_key(a["updated_at"]))
        first_commit.setdefault(k, committed.get(a["import_id"]))
    # per stream: (line, commit time) of every valid record, in line order
    unmapped = []
    per_stream = {}
    for s, recs in src.valid.items():
        lst = []
        for n, key, inst in recs:
            c = first_commit.get((s, key, inst))
            if c is None:
                unmapped.append((s, key, n))
                continue
            lst.append((n, c))
        per_stream[s] = lst
    if strict_mapping:
        tc.assertFalse(unmapped, "%d valid records were never applied, e.g. %s"
                       % (len(unmapped), unmapped[:3]))
    late = []
    for line, t in arrivals:
        scope = src.state_stream[line]
        worst = None
        for s in ([scope] if scope else list(per_stream)):
            for n, c in per_stream.get(s, []):
                if n >= line:
                    break
                if worst is None or c > worst[0]:
                    worst = (c, s, n)
        if worst is not None and worst[0] > t + 0.002:
            late.append("state at line %d read at %.3f, but %s line %d was committed at %.3f"
                        % (line, t, worst[1], worst[2], worst[0]))
    tc.assertFalse(late, "%d states emitted before their import committed: %s"
                   % (len(late), late[:3]))


def assert_no_key_version_twice(tc, applied):
    counts = {}
    for a in applied:
        k = applied_key(a) + (a["updated_at"],)
        counts[k] = counts.get(k, 0) + 1
    twice = {k: n for k, n in counts.items() if n > 1}
    tc.assertFalse(twice, "%d key versions applied more than once, e.g. %s"
                   % (len(twice), list(twice.items())[:3]))


def summary_numbers(res, name):
    """The number before `name` in the destination's summary lines
    ('imports created 3' -> 3), or None."""
    pat = re.compile(re.escape(name) + r" (\d+)")
    for m in res.logs():
        if m.startswith("shops:"):
            g = pat.search(m)
            if g:
                return int(g.group(1))
    return None


class ShopsCase(lib.DestinationCase):
    """One emulator per class, reset before each test; a work directory per
    test; after each test every file the test produced (stdout, stderr, dead
    letters, ...) is searched for the secrets and for access tokens."""

    emulator_args = {}
    workdir_prefix = "shops-it-"
    secret_values = ALL_SECRETS
    secret_pattern = TOKEN_RE
    secret_pattern_name = "an access token"
    fatal_error_last = True

    @classmethod
    def launch_emulator(cls):
        return start_emulator(**cls.emulator_args)

    def cfg(self, **over):
        return config(self.emu.url, self.wd, **over)

    def default_catalog(self):
        return catalog()

    def gen(self, name="input", **opts):
        return run_gen(self.wd, name=name, **opts)

    def dump(self, channel=CHANNEL):
        return self.emu.get("/_admin/dump?channel=%s" % channel)

    def stats(self):
        return self.emu.get("/_admin/stats")

    def full_check(self, inp, exp, res, checker, want_store=None, fresh=True):
        """Everything a merge or replace run must satisfy."""
        self.assert_ok(res)
        self.assertFalse(checker.failures, "live checker: %d failures, first %s"
                         % (len(checker.failures), checker.failures[:3]))
        self.assertEqual(checker.emitted, checker.run_states, "not every state was emitted")
        dump = self.dump()
        assert_store_equals(self, dump, want_store or expected_store(exp))
        assert_dead_letters(self, self.dead_letters(), exp["invalid"])
        assert_states(self, inp, res, exp["invalid"])
        assert_no_open_imports(self, dump)
        applied = self.applied()
        assert_no_key_version_twice(self, applied)
        assert_states_after_commits(self, checker.src, checker.arrivals, dump, applied,
                                    strict_mapping=fresh)
        return dump, applied
