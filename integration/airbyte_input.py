"""airbyte_input.py - Airbyte input streams for the destination tests.

What every destination built on the core driver must do with its input is
the same, whatever the API behind it; so are the tests' ways of building that
input and of checking the outcome against it. This module covers

* generating input (the part the stream generators share: their clock,
  their output, their STATE messages),
* building and editing input lines: compact JSON lines, RECORD messages,
  lines inserted in the middle of a state window, sourceStats recomputed
  after records were inserted,
* reading an input file back: its states and the records each one covers,
  and what a source restarted from the last emitted states sends again,
* checking a destination's output against its input: the emitted states
  (order, unchanged but for destinationStats, counts per window), each state
  as the stdout reader reads it, and the dead-letter entries,
* the bad-input cases whose outcome the core driver defines for every
  destination (a truncated last line, max_line_bytes, a 200 MB line, a STATE
  of a stream not in the catalog, empty input, an unknown message type,
  integers over 64 bits),
* SIGKILL-and-restart runs: a connector killed at planned points and
  restarted each time from the last states it emitted, the way Airbyte does.

The checks take the running unittest.TestCase (tc); the bad-input cases and
the restarts take a lib.DestinationCase. Nothing here knows about one
destination. Standard library only.
"""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import lib

BIG = 123456789012345678901234567890          # > 2^64
BIG_NEG = -98765432109876543210987654321
U64_PLUS_1 = 18446744073709551616
# A state id over 64 bits (check_integers_over_64_bits).
BIG_STATE_ID = 98765432109876543210987654321987654321
MiB = 1024 * 1024


# ---------------------------------------------------------------------------
# Generating input
# ---------------------------------------------------------------------------

# The generators' clock counts seconds from here.
GEN_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


def gen_time(seconds):
    """A time of the generators' clock (seconds after 2026-01-01) in RFC
    3339 (UTC, whole seconds)."""
    return (GEN_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


class StreamGenerator:
    """What the stream generators (gen_stream.py, gen_shops_stream.py) share:
    tick() advances the clock by 1 to 3 seconds (drawn from self.rng) and
    returns the new time; emit() writes a message as one compact JSON line to
    self.out, counted in self.lines; state() emits a STATE, GLOBAL (over
    every stream) or STREAM (for one stream), with the platform's integer id
    (self.state_id, incremented) and sourceStats (the records since the
    previous state of its scope).

    A subclass sets rng, clock, state_id, lines, out, since_state (stream ->
    records since its last state), since_global (records since the last
    GLOBAL state), streams (the stream names), state_type ("STREAM" or
    "GLOBAL") and namespace."""

    def tick(self):
        self.clock += 1 + self.rng.randrange(3)
        return gen_time(self.clock)

    def emit(self, obj):
        self.out.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))
        self.out.write("\n")
        self.lines += 1

    def state(self, stream=None):
        self.state_id += 1
        if self.state_type == "GLOBAL":
            count, self.since_global = self.since_global, 0
            for s in self.since_state:
                self.since_state[s] = 0
            st = {"type": "GLOBAL", "global": {
                "shared_state": {"position": self.lines},
                "stream_states": [
                    {"stream_descriptor": descriptor(s, self.namespace),
                     "stream_state": {"cursor": gen_time(self.clock)}}
                    for s in self.streams]}}
        else:
            count, self.since_state[stream] = self.since_state[stream], 0
            st = {"type": "STREAM", "stream": {
                "stream_descriptor": descriptor(stream, self.namespace),
                "stream_state": {"cursor": gen_time(self.clock), "line": self.lines}}}
        st["sourceStats"] = {"recordCount": float(count)}
        st["id"] = self.state_id
        self.emit({"type": "STATE", "state": st})


# ---------------------------------------------------------------------------
# Building and editing input
# ---------------------------------------------------------------------------


def descriptor(name, namespace):
    """A StreamDescriptor as the platform writes it: no "namespace" key when
    there is none (the protocol's schema has no null namespace)."""
    d = {"name": name}
    if namespace:
        d["namespace"] = namespace
    return d


def js(obj):
    """obj as one compact JSON line (UTF-8 bytes, no newline), the way the
    stream generators write their lines."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def record(stream, data):
    """A RECORD message of stream with data."""
    return {"type": "RECORD", "record": {"stream": stream, "emitted_at": 1767225600000,
                                         "data": data}}


def stream_state(stream, state, namespace=None):
    """A STREAM STATE message of stream holding state."""
    return {"type": "STATE", "state": {"type": "STREAM", "stream": {
        "stream_descriptor": descriptor(stream, namespace), "stream_state": state}}}


def stream_status(stream, status, namespace=None):
    """A STREAM_STATUS trace of stream (STARTED, RUNNING, COMPLETE, INCOMPLETE)."""
    return {"type": "TRACE", "trace": {"type": "STREAM_STATUS", "emitted_at": 1767225600000.0,
                                       "stream_status": {
                                           "stream_descriptor": descriptor(stream, namespace),
                                           "status": status}}}


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


# ---------------------------------------------------------------------------
# Reading input back
# ---------------------------------------------------------------------------


def input_states(path):
    """[(line, state, stream-or-None, window_lines)] of an input file, where
    window_lines are the RECORD lines the state's window covers (its stream's
    records since that stream's previous state or GLOBAL state, or every
    record since the previous state of any type)."""
    out = []
    pending = {}   # stream -> record lines since its last state
    pending_all = []
    for line, m in lib.parse_input(path):
        if m.get("type") == "RECORD":
            s = m["record"]["stream"]
            pending.setdefault(s, []).append(line)
            pending_all.append(line)
        elif m.get("type") == "STATE":
            st = m["state"]
            if st.get("type") == "GLOBAL":
                out.append((line, st, None, pending_all))
                pending_all, pending = [], {}
            else:
                s = st["stream"]["stream_descriptor"]["name"]
                out.append((line, st, s, pending.pop(s, [])))
                pending_all = []
    return out


def resume_lines(src, last):
    """Original line numbers of a restarted input. src: the original input,
    indexed (src.lines: its lines; src.msgs: line -> parsed message;
    src.state_stream: STATE line -> stream name, None for GLOBAL). last:
    stream (None: GLOBAL) -> line of its last emitted state. GLOBAL:
    everything after the last emitted state. STREAM: a RECORD or STATE line
    of stream s stays when it is after the last emitted state of s (the
    source keeps one cursor per stream)."""
    g = last.get(None, 0)
    out = []
    for n in range(g + 1, len(src.lines) + 1):
        m = src.msgs.get(n)
        s = None
        if m is not None and m.get("type") == "RECORD":
            s = m["record"]["stream"]
        elif m is not None and m.get("type") == "STATE":
            s = src.state_stream[n]
        if s is not None and n <= last.get(s, 0):
            continue
        out.append(n)
    return out


# ---------------------------------------------------------------------------
# Checking the output against the input
# ---------------------------------------------------------------------------


def assert_states(tc, input_path, res, invalid, prefix=False):
    """Emitted states are the input states in order, unchanged but for
    destinationStats; the counts add up per window. invalid: the records
    (dicts with their input "line") that must count as rejected. prefix: the
    run may have stopped early (its states are a prefix of the input's)."""
    ins = input_states(input_path)
    outs = res.states
    if prefix:
        tc.assertLessEqual(len(outs), len(ins))
        ins = ins[:len(outs)]
    tc.assertEqual(len(outs), len(ins), "emitted %d states, input has %d"
                   % (len(outs), len(ins)))
    bad_lines = {i["line"] for i in invalid}
    for n, ((line, st, _, window), out) in enumerate(zip(ins, outs)):
        tc.assertEqual(lib.strip_dest_stats(out), st,
                       "state %d (input line %d) differs from the input" % (n + 1, line))
        if "id" in st:
            tc.assertIs(type(out["id"]), int, "state id must stay an integer: %r" % out["id"])
        ds = out.get("destinationStats")
        tc.assertIsInstance(ds, dict, "state %d has no destinationStats" % (n + 1))
        rc, rej = ds.get("recordCount"), ds.get("rejectedRecordCount", 0)
        src = st.get("sourceStats", {}).get("recordCount")
        if src is not None:
            tc.assertEqual(rc + rej, src, "state at line %d: %s + %s != sourceStats %s"
                           % (line, rc, rej, src))
        tc.assertEqual(rc + rej, len(window), "state at line %d: counts %s + %s, window has %d "
                       "records" % (line, rc, rej, len(window)))
        want_rej = sum(1 for ln in window if ln in bad_lines)
        tc.assertEqual(rej, want_rej, "state at line %d: rejectedRecordCount %s, %d invalid "
                       "records in its window" % (line, rej, want_rej))


def assert_fatal_at_line(tc, inp, res, line_no, contains=(), failure_type="system_error"):
    """Fatal input error at line_no: one TRACE error naming the line (and
    every string in contains; tc.assert_fatal), every input state before the
    line emitted unchanged but for destinationStats, none after. Returns
    those input states (input_states entries)."""
    tc.assert_fatal(res, failure_type, ["line %d" % line_no] + list(contains))
    before = [s for s in input_states(inp) if s[0] < line_no]
    tc.assertEqual(len(res.states), len(before),
                   "expected the %d states before line %d, got %d:\n%s"
                   % (len(before), line_no, len(res.states), res.describe()))
    for (ln, st, _, _), out in zip(before, res.states):
        tc.assertEqual(lib.strip_dest_stats(out), st)
    return before


def check_emitted_state(src, st, run_states, emitted, failures):
    """The checks of a STATE read from a running destination's stdout that
    need only the input: it names an input state (by id), it is the next
    state of the run's input, and it is unchanged but for destinationStats.
    src: the input indexed (state_line_by_id, msgs); run_states: the input
    lines of the run's states, in order; emitted: those emitted so far.
    Problems are appended to failures (the reader thread must go on).
    Returns the state's input line, or None for an unknown id."""
    line = src.state_line_by_id.get(st.get("id"))
    if line is None:
        failures.append("emitted a state with unknown id %r" % st.get("id"))
        return None
    k = len(emitted)
    if k >= len(run_states) or run_states[k] != line:
        failures.append("state of input line %d emitted out of order (expected %s)"
                        % (line, run_states[k] if k < len(run_states) else None))
    if lib.strip_dest_stats(st) != src.msgs[line]["state"]:
        failures.append("state at line %d changed: %r" % (line, st))
    return line


def reason_matches(entry, reason):
    """A dead-letter entry's errors hold the expected reason ('code field'
    or 'code')."""
    code, _, field = reason.partition(" ")
    for e in entry.get("errors") or []:
        if e.get("code") == code and (not field or e.get("field") == field):
            return True
    return False


def check_dead_letters(tc, entries, invalid, check_entry, line_map=None, exact=True):
    """entries: dead-letter lines; invalid: the expected rejections (dicts
    with "stream" and input "line"). line_map maps a dead-letter line number
    to the original input line (restarted runs). Every entry has the
    dead-letter members and is for an invalid record; check_entry(entry,
    want, line) checks it further against its expected rejection. exact: each
    invalid record exactly once, else at least once."""
    want = {(i["stream"], i["line"]): i for i in invalid}
    seen = {}
    for e in entries:
        for k in ("stream", "line", "errors", "record", "rejected_by"):
            tc.assertIn(k, e, "dead-letter entry without %r: %r" % (k, e))
        line = line_map(e["line"]) if line_map else e["line"]
        k = (e["stream"], line)
        tc.assertIn(k, want, "dead letter for a record that is not invalid: %r" % (e,))
        check_entry(e, want[k], line)
        seen[k] = seen.get(k, 0) + 1
    missing = sorted(set(want) - set(seen))
    tc.assertFalse(missing, "%d invalid records missing from the dead letters, e.g. %s"
                   % (len(missing), missing[:5]))
    if exact:
        dup = {k: n for k, n in seen.items() if n > 1}
        tc.assertFalse(dup, "invalid records dead-lettered more than once: %s" % dup)


# ---------------------------------------------------------------------------
# Bad input with one outcome for every destination
# ---------------------------------------------------------------------------
#
# tc: a lib.DestinationCase that also has assert_input_error(inp, res,
# line_no, contains) (assert_fatal_at_line plus its own store checks); lines:
# a small valid generated stream (byte lines, a RECORD first, at least four
# STATEs).


def check_truncated_last_line(tc, lines):
    """Half a RECORD line as the last line, without newline: fatal naming
    that line."""
    full = lines[10]
    tc.assertTrue(full.startswith(b'{"type":"RECORD"'))
    lines = lines + [full[:len(full) // 2]]
    inp = tc.wd.write_lines("in.jsonl", lines, final_newline=False)
    tc.assert_input_error(inp, tc.write(inp), len(lines))


def check_lines_the_intake_stops_at(tc, lines, stream):
    """A raw NUL, a raw control character, and nesting one level deeper than
    the intake's 512, each in a RECORD line mid-window of its own run: fatal
    naming the line; what came before committed with its states (the
    suite's assert_input_error)."""
    tc.assertTrue(lines[10].startswith(b'{"type":"RECORD"'))
    head = b'{"type":"RECORD","record":{"stream":"' + stream.encode() + b'","data":'
    nest = 512 - 3 + 1  # the message, "record" and "data" objects are three levels
    cases = [
        ("raw NUL", head + b'{"k":"a\x00b"}}}', "(found byte 0x00)"),
        ("raw control character", head + b'{"k":"a\x01b"}}}', "(found byte 0x01)"),
        ("nesting", head + b'{"k":' + b"[" * nest + b"]" * nest + b'}}}',
         "nested deeper than 512 levels"),
    ]
    for what, bad, reason in cases:
        with tc.subTest(what):
            ls, n = insert_mid_window(list(lines), [bad])
            inp = tc.wd.write_lines("in-%s.jsonl" % what.replace(" ", "-"), ls)
            tc.assert_input_error(inp, tc.write(inp, name="write-" + what.replace(" ", "-")), n,
                                  ["invalid JSON", reason])


def check_complete_last_line_without_newline(tc, lines):
    """The stream's last line (a STATE), complete but without newline, is
    accepted: every state goes out, that one last. Returns the run's
    result."""
    tc.assertTrue(lines[-1].startswith(b'{"type":"STATE"'))
    inp = tc.wd.write_lines("in.jsonl", lines, final_newline=False)
    res = tc.write(inp)
    tc.assert_ok(res)
    assert_states(tc, inp, res, [])
    tc.assertEqual(res.states[-1]["id"], json.loads(lines[-1])["state"]["id"])
    return res


def check_stdout_closed(tc, lines):
    """A fatal input error (a malformed line) while stdout is closed: the
    TRACE cannot be written, so the error goes to stderr, masked, as
    "<name>: error: <text>", and the exit code is 1."""
    lines = list(lines)
    lines[10] = b'{"type":"RECORD","record":'
    inp = tc.wd.write_lines("in.jsonl", lines)
    cfg_path = tc.write_config(tc.cfg(), "closed.config.json")
    cat_path = tc.wd.write_json("closed.catalog.json", tc.default_catalog())
    with open(inp, "rb") as stdin:
        res = subprocess.run([lib.binary(), "write", "--config", cfg_path, "--catalog", cat_path],
                             stdin=stdin, stderr=subprocess.PIPE, cwd=tc.wd.path,
                             preexec_fn=lambda: os.close(1), timeout=120, check=False)
    err = res.stderr.decode("utf-8", "replace")
    tc.assertEqual(res.returncode, 1, err)
    name = os.path.basename(lib.binary())
    tc.assertRegex(err, r"(?m)^%s: error: .*line 11" % name, err)
    for key in tc.secret_values:
        tc.assertNotIn(key, err)


def check_crlf_line_endings(tc, lines):
    """Lines ending in CRLF are accepted: every state goes out. Returns the
    run's result."""
    inp = tc.wd.write_bytes("in.jsonl", b"".join(ln + b"\r\n" for ln in lines))
    res = tc.write(inp)
    tc.assert_ok(res)
    tc.assertEqual(len(res.states), len(input_states(inp)))
    return res


def check_max_line_bytes_boundary(tc, lines, limit=64 * 1024):
    """A line of exactly max_line_bytes is accepted; one byte more is fatal
    naming the line and the limit."""
    rec = json.loads(lines[0])
    tc.assertEqual(rec["type"], "RECORD")

    def padded(size):
        rec["record"]["padding"] = ""   # unknown message member: ignored
        raw = js(rec)
        rec["record"]["padding"] = "x" * (size - len(raw))
        raw = js(rec)
        tc.assertEqual(len(raw), size)
        return raw

    ok_lines = [padded(limit)] + lines[1:]
    inp = tc.wd.write_lines("fits.jsonl", ok_lines)
    res = tc.write(inp, cfg=tc.cfg(max_line_bytes=limit), name="fits")
    tc.assert_ok(res)
    tc.assertEqual(len(res.states), len(input_states(inp)))

    tc.emu.post("/_admin/reset")
    over, n = insert_mid_window(lines, [padded(limit + 1)])
    inp = tc.wd.write_lines("over.jsonl", over)
    res = tc.write(inp, cfg=tc.cfg(max_line_bytes=limit), name="over")
    tc.assert_input_error(inp, res, n, [str(limit)])


def check_200mb_line(tc, lines, opening, closing, measure=False):
    """A 200 MB line (opening, 200 MiB of 'y', closing: a RECORD with one
    long string) mid-window with max_line_bytes 1 MiB: fatal naming the line
    and the limit, peak RSS of the destination < 100 MB. measure: take the
    peak RSS from GNU time (lib.Connector)."""
    head, n = insert_mid_window(lines, [b"@@HUGE@@"])
    head = head[:n - 1]
    tail = lines[n - 1:]
    chunk = b"y" * MiB

    def stream():
        yield b"".join(ln + b"\n" for ln in head)
        yield opening
        for _ in range(200):
            yield chunk
        yield closing
        yield b"".join(ln + b"\n" for ln in tail)

    # for the state check: the same lines with a small stand-in
    inp = tc.wd.write_lines("huge-standin.jsonl", head + [b"@@huge@@"] + tail)
    cfg_path = tc.write_config(tc.cfg(max_line_bytes=MiB), "huge.config.json")
    cat_path = tc.wd.write_json("huge.catalog.json", tc.default_catalog())
    res = lib.run_connector(lib.binary(), ["write", "--config", cfg_path, "--catalog",
                                           cat_path], tc.wd, stdin=stream(), name="huge",
                            timeout=120, measure=measure)
    tc.assertFalse(res.timed_out, res.describe())
    tc.assert_input_error(inp, res, n, [str(MiB)])
    peak_mb = res.maxrss_kb / 1024.0
    sys.stderr.write("[200 MB line: peak RSS %.1f MB, %.2f s] " % (peak_mb, res.wall))
    tc.assertLess(peak_mb, 100, "peak RSS %.1f MB" % peak_mb)


def check_state_for_unknown_stream(tc, lines, stream, cursor):
    """A STREAM state of a stream not in the catalog, inserted mid-window,
    goes out in order with counts 0, and a WARN names the stream. Returns the
    run's result."""
    st = {"type": "STATE", "state": {
        "type": "STREAM", "stream": {"stream_descriptor": {"name": stream},
                                     "stream_state": {"cursor": cursor}},
        "sourceStats": {"recordCount": 0.0}, "id": 9001}}
    lines, n = insert_mid_window(lines, [js(st)], after_state=3)
    inp = tc.wd.write_lines("in.jsonl", lines)
    res = tc.write(inp)
    tc.assert_ok(res)
    assert_states(tc, inp, res, [])
    out = [s for s in res.states if s.get("id") == 9001]
    tc.assertEqual(len(out), 1)
    tc.assertEqual(out[0]["destinationStats"],
                   {"recordCount": 0, "rejectedRecordCount": 0})
    tc.assertTrue(any(stream in m for m in res.logs("WARN")), res.describe())
    return res


def check_empty_input(tc):
    """Empty and blank input: exit 0, no states, nothing applied."""
    for name, data in (("empty", b""), ("blank", b"\n\n  \n")):
        inp = tc.wd.write_bytes(name + ".jsonl", data)
        res = tc.write(inp, name=name)
        tc.assert_ok(res)
        tc.assertEqual(res.states, [])
    tc.assertEqual(tc.applied(), [])


def check_unknown_message_type(tc, lines, copies=1):
    """`copies` messages of an unknown type, inserted mid-window: ignored
    with one WARN, every state out. Returns the run's result."""
    unk = js({"type": "SHINY_NEW_THING", "shiny_new_thing": {"a": 1}})
    lines, n = insert_mid_window(lines, [unk] * copies)
    inp = tc.wd.write_lines("in.jsonl", lines)
    res = tc.write(inp)
    tc.assert_ok(res)
    assert_states(tc, inp, res, [])
    warns = [m for m in res.logs("WARN") if "SHINY_NEW_THING" in m]
    tc.assertEqual(len(warns), 1, res.describe())
    return res


def check_integers_over_64_bits(tc, stream, data):
    """One RECORD of stream with data, then a STATE whose id (BIG_STATE_ID)
    and cursor (BIG) are over 64 bits: both echoed digit for digit. Returns
    the run's result."""
    st = {"type": "STATE", "state": {
        "type": "STREAM", "stream": {"stream_descriptor": {"name": stream},
                                     "stream_state": {"cursor": BIG}},
        "sourceStats": {"recordCount": 1.0}, "id": BIG_STATE_ID}}
    inp = tc.wd.write_lines("in.jsonl", [js(record(stream, data)), js(st)])
    res = tc.write(inp)
    tc.assert_ok(res)
    tc.assertEqual(len(res.states), 1)
    tc.assertEqual(res.states[0]["id"], BIG_STATE_ID)
    tc.assertEqual(res.states[0]["stream"]["stream_state"]["cursor"], BIG)
    tc.assertIn(b'"id":%d' % BIG_STATE_ID, res.stdout, "state id not echoed digit for digit")
    tc.assertIn(b'"cursor":%d' % BIG, res.stdout)
    return res


# ---------------------------------------------------------------------------
# SIGKILL and restart
# ---------------------------------------------------------------------------


class Restarts:
    """Runs a destination again and again until a run ends by itself,
    killing runs with SIGKILL and restarting each from the last states it
    emitted (resume_lines), the way Airbyte does.

    src: the original input, indexed as resume_lines wants. checker: gets
    begin_run(original lines) before each run, then its .emitted (the input
    lines of the states the run emitted, appended by the stdout reader) and
    .run_states (those of the run's input) tell what the run did."""

    def __init__(self, src, checker):
        self.src = src
        self.checker = checker
        self.last = {}          # stream (None: GLOBAL) -> line of its last emitted state
        self.kills = 0
        self.run_maps = []      # per run: the original line of each input line
        self.results = []       # per run: its lib.RunResult
        self.per_run = []       # per run: (states emitted, first input line, rc)

    def run(self, tc, plans, start_run, max_runs, wait_limit, after_run=None):
        """plans: one kill plan per run, from the first; later runs are not
        killed. ("time", seconds, _): SIGKILL that long after the start;
        ("line", n, extra): once a state at or past input line n is out
        (waiting at most wait_limit seconds, or until the run ends), `extra`
        seconds later. start_run(run, lines) starts run number `run` on those
        original lines and returns its lib.Connector; after_run(res) sees
        each result. A run ends killed or with exit 0 and no TRACE error, and
        the one that ends by itself must emit every state of its input."""
        plans = list(plans)
        checker = self.checker
        for run in range(max_runs):
            lines = resume_lines(self.src, self.last)
            self.run_maps.append(lines)
            checker.begin_run(lines)
            p = start_run(run, lines)
            plan = plans.pop(0) if plans else None
            if plan is not None:
                kind, value, extra = plan
                if kind == "time":
                    time.sleep(value)
                else:
                    # once a state at or past input line `value` is out
                    deadline = time.monotonic() + wait_limit
                    while ((not checker.emitted or checker.emitted[-1] < value)
                           and p.poll() is None and time.monotonic() < deadline):
                        time.sleep(0.002)
                    time.sleep(extra)
                p.signal(signal.SIGKILL)
            res = p.wait(timeout=150)
            self.results.append(res)
            tc.assertFalse(res.timed_out, "run %d timed out:\n%s" % (run, res.describe()))
            if res.rc == -signal.SIGKILL:
                self.kills += 1
            else:
                tc.assertEqual(res.rc, 0, "run %d:\n%s" % (run, res.describe()))
                tc.assertEqual(res.errors, [])
            if after_run:
                after_run(res)
            for n in checker.emitted:
                self.last[self.src.state_stream[n]] = n
            self.per_run.append((len(checker.emitted), lines[0] if lines else None, res.rc))
            if res.rc == 0:
                tc.assertEqual(checker.emitted, checker.run_states,
                               "the final run did not emit every state")
                break   # (a late kill may find the run already done)
        return self

    def dead_letters(self, path_of):
        """The dead letters of every run (path_of(run) names its file), each
        with its line mapped to the original input; a killed run's file may
        end in a partial line."""
        entries = []
        for run, lines in enumerate(self.run_maps):
            for e in lib.read_jsonl(path_of(run),
                                    allow_partial_tail=self.results[run].rc != 0):
                entries.append(dict(e, line=lines[e["line"] - 1]))
        return entries
