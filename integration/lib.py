"""lib.py - shared helpers for the connector integration tests.

Generic on purpose: nothing here knows about one destination. It covers

* temporary work directories (config, catalog and input files, outputs),
* emulator (or any local server) subprocesses that announce their port in a
  port file,
* running a connector binary with stdin from a file, bytes or an iterator,
  capturing stdout/stderr to files, resource usage (CPU, peak RSS) and exit
  status, optionally streaming stdout lines to a callback while it runs,
* parsing stdout as Airbyte messages (every line must be one JSON
  AirbyteMessage),
* small JSON-over-HTTP helpers for admin endpoints,
* running a stream generator script,
* a base TestCase for a destination's tests (an emulator per class, a work
  directory per test, spec/check/write runs, the search for leaked secrets,
  outcome assertions),
* a unittest entry point that takes --bin and exits non-zero on failure.

airbyte_input.py builds on it for what concerns the input streams.

Standard library only.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import airbyte_protocol  # noqa: E402

EMULATORS = os.path.join(HERE, "emulators")

# Set by main() from --bin; tests read it through binary().
_BINARY = None
# --keep: leave work directories behind for inspection.
KEEP = os.environ.get("AB_IT_KEEP", "") not in ("", "0")


def test_failed(case):
    """Whether the unittest.TestCase case has failed or errored so far (in
    its tearDown: its work directory is then kept for inspection)."""
    outcome = getattr(case, "_outcome", None)
    if outcome is None:
        return False
    errs = getattr(outcome, "errors", None)
    if errs is None:  # Python >= 3.11
        res = getattr(outcome, "result", None)
        if res is None:
            return not getattr(outcome, "success", True)
        return (not getattr(outcome, "success", True)
                or any(t is case for t, _ in res.errors + res.failures))
    return any(e for _, e in errs)


def binary():
    if not _BINARY:
        raise unittest.SkipTest("no connector binary given (--bin)")
    return _BINARY


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


class Workdir:
    """A temporary directory; removed on cleanup() unless KEEP is set or
    keep=True was asked (e.g. after a failure)."""

    def __init__(self, prefix="ab-it-"):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def join(self, *names):
        return os.path.join(self.path, *names)

    def write_json(self, name, obj):
        path = self.join(name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(obj, f)
        return path

    def write_bytes(self, name, data):
        path = self.join(name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def write_lines(self, name, objs, final_newline=True):
        """Write JSON documents (or raw str/bytes lines) one per line."""
        path = self.join(name)
        with open(path, "wb") as f:
            items = list(objs)
            for i, o in enumerate(items):
                if isinstance(o, bytes):
                    line = o
                elif isinstance(o, str):
                    line = o.encode("utf-8")
                else:
                    line = json.dumps(o, separators=(",", ":")).encode("utf-8")
                f.write(line)
                if final_newline or i + 1 < len(items):
                    f.write(b"\n")
        return path

    def files(self):
        for root, _, names in os.walk(self.path):
            for n in names:
                yield os.path.join(root, n)

    def cleanup(self, keep=False):
        if keep or KEEP:
            sys.stderr.write("kept work directory %s\n" % self.path)
            return
        shutil.rmtree(self.path, ignore_errors=True)


def read_jsonl(path, allow_partial_tail=False):
    """Parse a JSON-lines file. A missing file is an empty list. With
    allow_partial_tail, an unterminated last line (a writer killed mid-line)
    is dropped instead of failing."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    out = []
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError as exc:
            raise AssertionError("%s line %d is not JSON: %s: %r" % (path, i, exc, line[:200]))
    if tail.strip():
        if not allow_partial_tail:
            raise AssertionError("%s: last line has no newline: %r" % (path, tail[:200]))
    return out


def read_input_lines(path):
    """The lines of an input file as bytes, without their newlines."""
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def assert_absent(needle, paths=(), blobs=()):
    """Fail if needle (str) occurs in any of the files or byte strings."""
    if not needle:
        return
    raw = needle.encode("utf-8")
    for p in paths:
        if os.path.isfile(p):
            with open(p, "rb") as f:
                if raw in f.read():
                    raise AssertionError("secret found in %s" % p)
    for i, b in enumerate(blobs):
        if raw in b:
            raise AssertionError("secret found in output blob %d" % i)


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------


def http_request(method, url, body=None, headers=None, timeout=60):
    """Return (status, headers dict, body bytes); never raises on HTTP errors."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    # test tooling talks to its own https emulators: their CA is the test's
    ctx = ssl._create_unverified_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def http_call(method, url, body=None, headers=None, timeout=30):
    """(status, the JSON body or None when empty, headers dict) of one
    request, body (bytes or None) and headers sent as given (no defaults);
    never raises on HTTP errors. For tests of a server's exact answers."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw, status, hdrs = r.read(), r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        raw, status, hdrs = e.read(), e.code, dict(e.headers)
    return status, (json.loads(raw) if raw else None), hdrs


def http_json(method, url, body=None, headers=None, timeout=60):
    status, _, data = http_request(method, url, body, headers, timeout)
    try:
        obj = json.loads(data) if data else None
    except ValueError:
        obj = data
    return status, obj


def free_port():
    """A port nothing listens on (bound then closed)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------
# Emulators
# ---------------------------------------------------------------------------


class Server:
    """A local server subprocess started with --port 0 --port-file F; ready
    once F holds the port number. Usable as a context manager."""

    def __init__(self, script, args=(), workdir=None, name=None, timeout=20):
        self.script = script
        self.args = list(args)
        self.name = name or os.path.splitext(os.path.basename(script))[0]
        self.timeout = timeout
        self._own_dir = workdir is None
        self.dir = tempfile.mkdtemp(prefix="ab-srv-") if workdir is None else workdir
        self.port_file = os.path.join(self.dir, "%s.port" % self.name)
        self.log_path = os.path.join(self.dir, "%s.log" % self.name)
        self.proc = None
        self.port = None

    @property
    def url(self):
        scheme = "https" if "--tls-cert" in self.args else "http"
        return "%s://127.0.0.1:%d" % (scheme, self.port)

    def start(self):
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, self.script, "--port", "0", "--port-file", self.port_file]
            + self.args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s; log:\n%s"
                                   % (self.name, self.proc.returncode, self.log()))
            try:
                with open(self.port_file) as f:
                    text = f.read().strip()
                if text:
                    self.port = int(text)
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("%s did not write its port file in %ss" % (self.name, self.timeout))

    def log(self):
        try:
            with open(self.log_path, "r", encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
        if self._own_dir and not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # JSON admin helpers
    def get(self, path, timeout=120):
        status, obj = http_json("GET", self.url + path, timeout=timeout)
        if status != 200:
            raise AssertionError("GET %s: HTTP %s %r" % (path, status, obj))
        return obj

    def post(self, path, body=None, timeout=60):
        status, obj = http_json("POST", self.url + path, body if body is not None else {},
                                timeout=timeout)
        if status != 200:
            raise AssertionError("POST %s: HTTP %s %r" % (path, status, obj))
        return obj


# ---------------------------------------------------------------------------
# Airbyte messages
# ---------------------------------------------------------------------------

class ProtocolError(AssertionError):
    pass


def check_message(msg, where="message"):
    """Assert that msg (parsed JSON) is a well-formed AirbyteMessage: the
    shapes of the protocol (airbyte_protocol.py, v0.18.0)."""
    problems = airbyte_protocol.validate_message(msg, where)
    if problems:
        raise ProtocolError("; ".join(problems[:5]))
    return msg


def parse_messages(data, allow_partial_tail=False):
    """Split stdout bytes into AirbyteMessages, asserting every line is one
    (UTF-8, JSON object, known type). Output must end with a newline unless
    allow_partial_tail (a process killed with SIGKILL mid-write)."""
    msgs = []
    if not data:
        return msgs
    lines = data.split(b"\n")
    tail = lines.pop()
    if tail and not allow_partial_tail:
        raise ProtocolError("stdout ends with a partial line: %r" % tail[:200])
    for i, line in enumerate(lines, 1):
        try:
            text = line.decode("utf-8")
            msg = json.loads(text)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ProtocolError("stdout line %d is not JSON (%s): %r" % (i, exc, line[:300]))
        msgs.append(check_message(msg, "stdout line %d" % i))
    return msgs


SANITIZER_MARKS = (b"ERROR: AddressSanitizer", b"ERROR: LeakSanitizer", b"runtime error:",
                   b"WARNING: ThreadSanitizer", b"ERROR: MemorySanitizer")


def sanitizer_report(stderr):
    """The part of stderr from the first sanitizer report on ("" if none).
    Any such report fails the run, whatever its exit code."""
    idx = [stderr.find(m) for m in SANITIZER_MARKS]
    idx = [i for i in idx if i >= 0]
    if not idx:
        return ""
    start = stderr.rfind(b"\n", 0, min(idx)) + 1
    return stderr[start:start + 4000].decode("utf-8", "replace")


class RunResult:
    def __init__(self, rc, stdout, stderr, wall, user, sys_, maxrss_kb, timed_out,
                 stdout_path=None, stderr_path=None, allow_partial_tail=False):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.wall = wall
        self.user = user
        self.sys = sys_
        self.cpu = user + sys_
        self.maxrss_kb = maxrss_kb
        self.timed_out = timed_out
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path
        self.messages = parse_messages(stdout, allow_partial_tail)

    def of_type(self, t):
        return [m for m in self.messages if m["type"] == t]

    @property
    def states(self):
        return [m["state"] for m in self.of_type("STATE")]

    def logs(self, level=None):
        return [m["log"]["message"] for m in self.of_type("LOG")
                if level is None or m["log"]["level"] == level]

    @property
    def errors(self):
        """The error objects of TRACE ERROR messages."""
        return [m["trace"]["error"] for m in self.of_type("TRACE")
                if m["trace"].get("type") == "ERROR"]

    def describe(self):
        out = self.stdout.decode("utf-8", "replace")
        err = self.stderr.decode("utf-8", "replace")
        if len(out) > 6000:
            out = out[:3000] + "\n...\n" + out[-3000:]
        return "exit %s after %.1fs\n--- stdout\n%s\n--- stderr\n%s" % (
            self.rc, self.wall, out, err[-3000:])


GNU_TIME = "/usr/bin/time"


class Connector:
    """A connector process. stdin from a file path, bytes, an iterable of
    byte chunks (written by a thread; a closed pipe ends the writer), or
    keep_stdin_open to hold the pipe open after the data. stdout is read by a
    thread: each complete line (bytes, without newline) goes to on_line(line)
    as it arrives. stderr goes to a file. wait() reaps with wait4, so the
    CPU time is the process's own.

    Peak RSS: Linux carries the forking process's RSS high-water mark into
    the child across exec, so ru_maxrss of a child forked by this (large)
    Python process is at least Python's own RSS. With measure=True the
    connector runs under GNU time (forked from a small process), whose %M is
    the connector's true peak; do not signal such a run (the signal would go
    to time). Otherwise peak RSS is VmHWM polled from /proc while it runs
    (exact except for growth in its last few milliseconds)."""

    def __init__(self, bin_path, args, workdir, name="run", stdin=None,
                 keep_stdin_open=False, on_line=None, env=None, cwd=None, measure=False):
        self.workdir = workdir
        self.time_path = None
        argv = [bin_path] + list(args)
        if measure and os.access(GNU_TIME, os.X_OK):
            self.time_path = workdir.join("%s.time" % name)
            argv = [GNU_TIME, "-f", "%M %U %S", "-o", self.time_path] + argv
        self.hwm_kb = 0
        self.stdout_path = workdir.join("%s.stdout" % name)
        self.stderr_path = workdir.join("%s.stderr" % name)
        self._stderr = open(self.stderr_path, "wb")
        self._stdin_file = None
        self._writer = None
        self.on_line = on_line
        self.keep_stdin_open = keep_stdin_open
        if isinstance(stdin, str):
            self._stdin_file = open(stdin, "rb")
            stdin_arg = self._stdin_file
        elif stdin is None and not keep_stdin_open:
            stdin_arg = subprocess.DEVNULL
        else:
            stdin_arg = subprocess.PIPE
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=stdin_arg,
                                     stdout=subprocess.PIPE, stderr=self._stderr,
                                     env=env, cwd=cwd or workdir.path)
        self.pid = self.proc.pid
        self._chunks = []
        self.lines = []
        self._lock = threading.Lock()
        # set before the threads start: the reader uses them at once
        self.result = None
        self.callback_error = None
        self._status = None
        self._rusage = None
        self.end_time = None
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        if stdin_arg is subprocess.PIPE:
            self._writer = threading.Thread(target=self._write_stdin, args=(stdin,), daemon=True)
            self._writer.start()

    def _write_stdin(self, data):
        pipe = self.proc.stdin
        try:
            if isinstance(data, (bytes, bytearray)):
                view = memoryview(data)
                for off in range(0, len(view), 1 << 16):
                    pipe.write(view[off:off + (1 << 16)])
            elif data is not None:
                for chunk in data:
                    pipe.write(chunk)
            pipe.flush()
            if self.keep_stdin_open:
                return
            pipe.close()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def close_stdin(self):
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass

    def _read_stdout(self):
        buf = b""
        f = self.proc.stdout
        while True:
            chunk = f.read1(1 << 16) if hasattr(f, "read1") else f.read(1 << 16)
            if not chunk:
                break
            with self._lock:
                self._chunks.append(chunk)
            buf += chunk
            while True:
                nl = buf.find(b"\n")
                if nl < 0:
                    break
                line, buf = buf[:nl], buf[nl + 1:]
                with self._lock:
                    self.lines.append(line)
                if self.on_line and self.callback_error is None:
                    try:
                        self.on_line(line)
                    except BaseException as exc:  # reported by wait()
                        self.callback_error = exc

    def stdout_so_far(self):
        with self._lock:
            return b"".join(self._chunks)

    def wait_for_states(self, n, timeout=60):
        """Waits until n STATE messages are on stdout (or timeout seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(b'"STATE"' in ln for ln in self.stdout_so_far().splitlines()) >= n:
                return
            time.sleep(0.05)

    def _poll_hwm(self):
        try:
            with open("/proc/%d/status" % self.pid, "rb") as f:
                for line in f:
                    if line.startswith(b"VmHWM:"):
                        self.hwm_kb = max(self.hwm_kb, int(line.split()[1]))
                        break
        except (OSError, ValueError, IndexError):
            pass

    def _reap(self, block):
        """wait4 the process once; True when it has ended (status kept)."""
        if self._status is not None:
            return True
        pid, status, ru = os.wait4(self.pid, 0 if block else os.WNOHANG)
        if pid != self.pid:
            return False
        self._status, self._rusage = status, ru
        self.end_time = time.monotonic()
        return True

    def poll(self):
        """The exit code, or None while running (reaps without losing the
        resource usage; never use self.proc.poll())."""
        if not self._reap(False):
            return None
        return os.waitstatus_to_exitcode(self._status)

    def signal(self, sig):
        if self._status is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout=300, allow_partial_tail=False):
        """Reap the process (SIGKILL after timeout) and return a RunResult."""
        if self.result is not None:
            return self.result
        deadline = self.t0 + timeout
        timed_out = False
        while not self._reap(False):
            self._poll_hwm()
            if time.monotonic() > deadline:
                timed_out = True
                os.kill(self.pid, signal.SIGKILL)
                self._reap(True)
                break
            time.sleep(0.005)
        status, ru = self._status, self._rusage
        wall = self.end_time - self.t0
        rc = os.waitstatus_to_exitcode(status)
        self.proc.returncode = rc
        self._reader.join(30)
        if self._writer:
            self.close_stdin()
            self._writer.join(5)
        if self._stdin_file:
            self._stdin_file.close()
        self._stderr.close()
        out = self.stdout_so_far()
        with open(self.stdout_path, "wb") as f:
            f.write(out)
        with open(self.stderr_path, "rb") as f:
            err = f.read()
        maxrss = self.hwm_kb
        user, sys_ = ru.ru_utime, ru.ru_stime
        if self.time_path:
            try:
                with open(self.time_path) as f:
                    fields = f.read().split()
                maxrss = int(fields[-3])
                user, sys_ = float(fields[-2]), float(fields[-1])
            except (OSError, ValueError, IndexError):
                pass
        self.result = RunResult(rc, out, err, wall, user, sys_, maxrss, timed_out,
                                self.stdout_path, self.stderr_path,
                                allow_partial_tail=allow_partial_tail or rc < 0)
        if self.callback_error is not None:
            raise self.callback_error
        report = sanitizer_report(err)
        if report:
            raise AssertionError("sanitizer report from %s:\n%s" % (self.stderr_path, report))
        return self.result


def run_on_pty(argv, workdir, stdin_tty=False, stop_after=None):
    """Runs argv with stderr (and, with stdin_tty, stdin) on a pseudo-terminal
    and stdout to a file; SIGINT after stop_after seconds; with stdin_tty
    Ctrl-D after 1 s. Returns (rc, [(seconds since start, stderr text)],
    stdout bytes)."""
    import pty
    import select
    master, slave = pty.openpty()
    out_path = workdir.join("tty.stdout")
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=slave,
                                stdin=slave if stdin_tty else subprocess.DEVNULL,
                                cwd=workdir.path)
    os.close(slave)
    chunks = []
    t0 = time.monotonic()
    sent_eof = False
    while True:
        if stop_after is not None and time.monotonic() - t0 > stop_after and \
                proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            stop_after = None
        if stdin_tty and not sent_eof and time.monotonic() - t0 > 1.0:
            os.write(master, b"\x04")  # Ctrl-D: end of input
            sent_eof = True
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append((time.monotonic() - t0, data.decode("utf-8", "replace")))
        elif proc.poll() is not None:
            break
    rc = proc.wait(timeout=60)
    os.close(master)
    with open(out_path, "rb") as f:
        return rc, chunks, f.read()


def run_connector(bin_path, args, workdir, stdin=None, timeout=300, name="run", **kw):
    """Run to completion; see Connector for stdin forms."""
    return Connector(bin_path, args, workdir, name=name, stdin=stdin, **kw).wait(timeout)


# ---------------------------------------------------------------------------
# Input streams
# ---------------------------------------------------------------------------


def run_generator(script, workdir, name="input", **opts):
    """Run a stream generator (gen_stream.py, gen_shops_stream.py: --out
    and --expected files) with --key value options (underscores become
    dashes; True flags are bare). workdir: a Workdir or a directory path.
    Returns (input path, expected dict)."""
    base = workdir if isinstance(workdir, str) else workdir.path
    out = os.path.join(base, name + ".jsonl")
    exp = os.path.join(base, name + ".expected.json")
    cmd = [sys.executable, script, "--out", out, "--expected", exp]
    for k, v in opts.items():
        flag = "--" + k.replace("_", "-")
        if v is True:
            cmd.append(flag)
        elif v is not None and v is not False:
            cmd += [flag, str(v)]
    subprocess.run(cmd, check=True)
    with open(exp, encoding="utf-8") as f:
        return out, json.load(f)


def run_gen_stream(workdir, name="input", **opts):
    """Run gen_stream.py (customers and orders) through run_generator."""
    return run_generator(os.path.join(HERE, "gen_stream.py"), workdir, name, **opts)


def parse_input(path):
    """The messages of an input file as (lineno, message) pairs (1-based).
    Lines that are not JSON (bad-input tests) are skipped."""
    out = []
    for i, line in enumerate(read_input_lines(path), 1):
        if not line.strip():
            continue
        try:
            out.append((i, json.loads(line.decode("utf-8"))))
        except (UnicodeDecodeError, ValueError):
            continue
    return out


def strip_dest_stats(state):
    s = dict(state)
    s.pop("destinationStats", None)
    return s


# ---------------------------------------------------------------------------
# Test cases
# ---------------------------------------------------------------------------


class ServersCase(unittest.TestCase):
    """A work directory per test (kept when the test failed)
    and the servers it started, stopped after it."""

    workdir_prefix = "ab-it-"

    def setUp(self):
        self.wd = Workdir(self.workdir_prefix)
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        self.wd.cleanup(keep=test_failed(self))

    def started(self, server):
        """server (started), stopped after the test."""
        self.servers.append(server)
        return server

    def emulator(self, name, args=()):
        """integration/emulators/<name>_emulator.py with its default
        credentials (those of examples/), no rate limit."""
        return self.started(Server(os.path.join(EMULATORS, name + "_emulator.py"),
                                   ["--rate", "0"] + list(args), name=name).start())


class DestinationCase(unittest.TestCase):
    """The base of a destination's test cases. One emulator per class
    (launch_emulator(), in cls.emu), reset (POST /_admin/reset) before each
    test; a work directory per test (self.wd), kept when the test failed;
    after each test that passed, every file the test produced (stdout,
    stderr, dead letters, ...) but the config files is searched for the
    secrets. Runs of the connector's write and check go through write(),
    start()/finish() and check(), which search their output for the secrets
    too and keep the results in self.runs.

    A subclass gives launch_emulator(), cfg(**over) (a config for self.emu),
    default_catalog(), its secrets and its work-directory prefix."""

    workdir_prefix = "ab-it-"
    # Strings no output or file of a test may hold (API keys, secrets).
    secret_values = ()
    # A compiled bytes pattern of secrets made while the tests run (access
    # tokens), or None, and what a match is called in a failure.
    secret_pattern = None
    secret_pattern_name = "a secret"
    # assert_fatal: the TRACE ERROR must also be the last message.
    fatal_error_last = False

    @classmethod
    def launch_emulator(cls):
        """The started emulator (a Server) the tests of the class share."""
        raise NotImplementedError

    def cfg(self, **over):
        """A connector config for self.emu, with members replaced by over."""
        raise NotImplementedError

    def default_catalog(self):
        """The configured catalog of a write run that names none."""
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls.emu = cls.launch_emulator()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def setUp(self):
        self.emu.post("/_admin/reset")
        self.wd = Workdir(prefix=self.workdir_prefix)
        self.config_files = set()
        self.runs = []

    def tearDown(self):
        failed = test_failed(self)
        try:
            if not failed:
                self.assert_no_secrets()
        finally:
            self.wd.cleanup(keep=failed)

    def assert_no_secrets(self, extra_paths=()):
        """No file of the work directory but the config files (and none of
        extra_paths) holds a secret."""
        files = [p for p in self.wd.files() if p not in self.config_files] + list(extra_paths)
        for key in self.secret_values:
            assert_absent(key, paths=files)
        if self.secret_pattern is None:
            return
        for p in files:
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    m = self.secret_pattern.search(f.read())
                self.assertIsNone(m, "%s appears in %s" % (self.secret_pattern_name, p))

    # -- running ---------------------------------------------------------------

    def write_config(self, cfg, name="config.json"):
        """Write a config file (left out of the secrets search)."""
        p = self.wd.write_json(name, cfg)
        self.config_files.add(p)
        return p

    def start(self, input_path, cfg=None, cat=None, name="write", on_line=None, data=None):
        """Start `write` on input_path (or on data: bytes or chunks) with cfg
        (default self.cfg()) and cat (default self.default_catalog()); see
        Connector for on_line."""
        cfg_path = self.write_config(cfg or self.cfg(), name + ".config.json")
        cat_path = self.wd.write_json(name + ".catalog.json", cat or self.default_catalog())
        return Connector(binary(), ["write", "--config", cfg_path, "--catalog", cat_path],
                         self.wd, name=name, stdin=data if data is not None else input_path,
                         on_line=on_line)

    def finish(self, conn, timeout=180):
        """Wait for a started run: it must end in time, its output hold no
        secret."""
        res = conn.wait(timeout=timeout)
        self.assertFalse(res.timed_out, "timed out:\n" + res.describe())
        for key in self.secret_values:
            assert_absent(key, blobs=[res.stdout, res.stderr])
        if self.secret_pattern is not None:
            self.assertIsNone(self.secret_pattern.search(res.stdout + res.stderr),
                              "%s appears in the output" % self.secret_pattern_name)
        self.runs.append(res)
        return res

    def write(self, input_path, cfg=None, cat=None, name="write", timeout=180, on_line=None):
        """Run `write` to its end (start, then finish)."""
        return self.finish(self.start(input_path, cfg, cat, name, on_line), timeout)

    def spec(self):
        """Run `spec`: exit 0 with one message, a SPEC; returns its spec."""
        res = run_connector(binary(), ["spec"], self.wd, name="spec", timeout=30)
        self.assert_ok(res)
        self.assertEqual([m["type"] for m in res.messages], ["SPEC"], res.describe())
        return res.messages[0]["spec"]

    def check(self, cfg, name="check"):
        """Run `check`: exit 0 with one CONNECTION_STATUS and no TRACE
        error; returns (result, connectionStatus)."""
        cfg_path = self.write_config(cfg, name + ".config.json")
        res = run_connector(binary(), ["check", "--config", cfg_path], self.wd,
                            name=name, timeout=60)
        for key in self.secret_values:
            assert_absent(key, blobs=[res.stdout, res.stderr])
        self.assertEqual(res.rc, 0, res.describe())
        st = res.of_type("CONNECTION_STATUS")
        self.assertEqual(len(st), 1, "expected one CONNECTION_STATUS:\n" + res.describe())
        self.assertEqual(res.errors, [], res.describe())
        return res, st[0]["connectionStatus"]

    def discover(self, cfg, name="discover"):
        """Run `discover`: exit 0 with exactly one message, a
        DESTINATION_CATALOG (checked against the protocol's shapes);
        returns its destination_catalog."""
        cfg_path = self.write_config(cfg, name + ".config.json")
        res = run_connector(binary(), ["discover", "--config", cfg_path], self.wd,
                            name=name, timeout=60)
        self.assert_ok(res)
        self.assertEqual([m["type"] for m in res.messages], ["DESTINATION_CATALOG"],
                         res.describe())
        return res.messages[0]["destination_catalog"]

    # -- outcome ---------------------------------------------------------------

    def assert_ok(self, res):
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual(res.errors, [], res.describe())

    def assert_fatal(self, res, failure_type=None, contains=()):
        """Exit 1 and exactly one TRACE ERROR (the last message, with
        fatal_error_last), naming every string in contains; returns its
        error object."""
        self.assertEqual(res.rc, 1, res.describe())
        errs = res.errors
        self.assertEqual(len(errs), 1, "expected exactly one TRACE ERROR:\n" + res.describe())
        if self.fatal_error_last:
            traces = [m for m in res.messages if m["type"] == "TRACE"]
            self.assertIs(res.messages[-1], traces[-1], "the TRACE ERROR is not the last message")
        e = errs[0]
        if failure_type:
            self.assertEqual(e.get("failure_type"), failure_type, res.describe())
        for c in contains:
            self.assertIn(c, e["message"], "TRACE message lacks %r:\n%s" % (c, res.describe()))
        return e

    def dead_letters(self, path=None):
        """The dead-letter entries (default: the work directory's
        dead-letters.jsonl)."""
        return read_jsonl(path or self.wd.join("dead-letters.jsonl"))

    def applied(self):
        """The emulator's log of applied writes."""
        return self.emu.get("/_admin/applied")


# ---------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------


def latest_config(messages, cfg):
    """The config after the CONTROL messages of a source's run (cfg when
    none): what the platform would hold."""
    for m in messages:
        if m["type"] == "CONTROL":
            cfg = m["control"]["connectorConfig"]["config"]
    return cfg


def last_states(messages, previous=None):
    """The input state for a source's next run: the last STREAM state of
    each stream (of a source's output, or of a destination's), on top of
    previous (a list of AirbyteStateMessage)."""
    by_stream = {}
    for st in previous or []:
        by_stream[st["stream"]["stream_descriptor"]["name"]] = st
    for m in messages:
        if m["type"] == "STATE":
            st = dict(m["state"])
            st.pop("sourceStats", None)
            st.pop("destinationStats", None)
            by_stream[st["stream"]["stream_descriptor"]["name"]] = st
    return list(by_stream.values())


def records(messages, stream=None):
    """The data of the RECORD messages (of stream, or of every stream)."""
    return [m["record"]["data"] for m in messages
            if m["type"] == "RECORD" and (stream is None or m["record"]["stream"] == stream)]


def source_catalog(modes, full_refresh_only=()):
    """A configured catalog: modes is stream -> sync mode, in order; the
    streams of full_refresh_only support nothing else."""
    return {"streams": [{
        "stream": {"name": s, "json_schema": {},
                   "supported_sync_modes": ["full_refresh"] + (
                       [] if s in full_refresh_only else ["incremental"])},
        "sync_mode": m, "destination_sync_mode": "append"} for s, m in modes.items()]}


class SourceCase(unittest.TestCase):
    """The base of an API source's test cases: an emulator per test
    (start_emulator(**emulator_args), in self.srv), a work directory per test
    (self.wd, kept when the test failed), runs of the binary with config,
    catalog and state files (run_src()), and the checks every source shares.
    A subclass gives start_emulator()."""

    emulator_args = {}
    workdir_prefix = "ab-source-"

    def start_emulator(self, **kw):
        raise NotImplementedError

    def setUp(self):
        self.wd = Workdir(self.workdir_prefix)
        self.srv = self.start_emulator(**self.emulator_args).start()

    def tearDown(self):
        self.srv.stop()
        self.wd.cleanup(keep=test_failed(self))

    def args(self, cmd, cfg, cat=None, state=None, name="run"):
        argv = [cmd, "--config", self.wd.write_json(name + ".config.json", cfg)]
        if cat is not None:
            argv += ["--catalog", self.wd.write_json(name + ".catalog.json", cat)]
        if state is not None:
            argv += ["--state", self.wd.write_json(name + ".state.json", state)]
        return argv

    def run_src(self, cmd, cfg, cat=None, state=None, name="run", timeout=300):
        res = run_connector(binary(), self.args(cmd, cfg, cat, state, name), self.wd,
                            name=name, timeout=timeout)
        for m in res.messages:
            check_message(m)
        return res

    def assert_no_secret(self, res, *secrets):
        """Nowhere but in CONTROL messages (the config for the platform)."""
        blob = b"\n".join(line for line in res.stdout.split(b"\n")
                          if not line.startswith(b'{"type":"CONTROL"')) + res.stderr
        for s in secrets:
            self.assertTrue(s.encode() not in blob, "a secret in the output")

    def dump(self):
        return self.srv.get("/_admin/dump")

    def counters(self):
        return self.srv.get("/_admin/stats")["counters"]

    def connection_status(self, res):
        """The CONNECTION_STATUS of a check run."""
        return res.of_type("CONNECTION_STATUS")[0]["connectionStatus"]

    def check_failed(self, cfg, needles, secrets=(), name="check"):
        """A check of cfg runs (exit status 0) and FAILS, its message naming
        every needle, with none of secrets in the output and no CONTROL
        message. Returns the message."""
        res = self.run_src("check", cfg, name=name)
        self.assertEqual(res.rc, 0, res.describe())
        status = self.connection_status(res)
        self.assertEqual(status["status"], "FAILED")
        for n in needles:
            self.assertIn(n, status["message"])
        self.assert_no_secret(res, *secrets)
        self.assertEqual(res.of_type("CONTROL"), [])
        return status["message"]

    def check_rotating(self, cfg):
        """For a source with rotating refresh tokens: a check of cfg
        SUCCEEDS, saying the new refresh token (a CONTROL) before its status;
        the CONTROL's config is cfg with only refresh_token changed, and is
        returned."""
        res = self.run_src("check", cfg)
        self.assertEqual(res.rc, 0, res.describe())
        types = [m["type"] for m in res.messages if m["type"] != "LOG"]
        self.assertEqual(types, ["CONTROL", "CONNECTION_STATUS"])
        self.assertEqual(self.connection_status(res)["status"], "SUCCEEDED")
        new = latest_config(res.messages, cfg)
        self.assertNotEqual(new["refresh_token"], cfg["refresh_token"])
        for k, v in cfg.items():
            if k != "refresh_token":
                self.assertEqual(new[k], v, k)
        return new

    def assert_only_the_rotated_token_works(self, old, new):
        """After check_rotating(old) gave new: a check of new succeeds, one
        of old fails naming invalid_grant (without the client secret)."""
        self.assertEqual(self.connection_status(self.run_src("check", new, name="again"))[
            "status"], "SUCCEEDED")
        res = self.run_src("check", old, name="old")
        status = self.connection_status(res)
        self.assertEqual(status["status"], "FAILED")
        self.assertIn("invalid_grant", status["message"])
        self.assert_no_secret(res, old["client_secret"])

    def assert_read_failed(self, res, failure_type, *needles):
        """The run ended with exit status 1 and its first error trace is of
        failure_type, naming every needle."""
        self.assertEqual(res.rc, 1, res.describe())
        self.assertEqual(res.errors[0]["failure_type"], failure_type)
        for n in needles:
            self.assertIn(n, res.errors[0]["message"])

    def assert_config_errors_before_any_request(self, cfg, cases):
        """cases: (catalog, state, needle): each read is a config_error naming
        needle, and the API saw no request."""
        for cat, state, needle in cases:
            self.assert_read_failed(self.run_src("read", cfg, cat, state), "config_error",
                                    needle)
        self.assertEqual(self.counters().get("api_requests"), None)

    def read_through_faults(self, faults, cfg, cat, at_least):
        """A read while the emulator injects faults (its /_admin/faults
        config): it succeeds, after more than at_least faults."""
        self.srv.post("/_admin/faults", faults)
        res = self.run_src("read", cfg, cat)
        self.assertEqual(res.rc, 0, res.describe())
        drawn = {k: v for k, v in self.counters().items() if k.startswith("fault.")}
        self.assertGreater(sum(drawn.values()), at_least, drawn)
        return res

    def read_killed(self, cfg, cat, name, states=5):
        """A read SIGKILLed once it has written states STATE messages (it
        must not finish before); its result."""
        conn = Connector(binary(), self.args("read", cfg, cat, name=name), self.wd, name=name)
        deadline = time.monotonic() + 60
        while conn.stdout_so_far().count(b'"type":"STATE"') < states:
            self.assertLess(time.monotonic(), deadline)
            self.assertIsNone(conn.poll(), "finished before it could be killed")
            time.sleep(0.01)
        conn.signal(signal.SIGKILL)
        return conn.wait(allow_partial_tail=True)

    def read_killed_then_resumed(self, cfg, cat, name):
        """read_killed(), then a read from its last states with the config
        of its last CONTROL (if any), which must succeed: (the killed read,
        the resumed one, the states it resumed from, the config)."""
        first = self.read_killed(cfg, cat, "k" + name)
        state = last_states(first.messages)
        cfg = latest_config(first.messages, cfg)
        second = self.run_src("read", cfg, cat, state=state, name="r" + name)
        self.assertEqual(second.rc, 0, second.describe())
        return first, second, state, cfg

    def read_killed_right_after_a_refresh(self, cfg, cat):
        """For a source with rotating refresh tokens and an emulator that can
        hold every request made with a token newer than a generation
        (/_admin/hold, /_admin/refresh_token): the read is SIGKILLed while
        its first request with the new token is held. By then the CONTROL
        with the new refresh token must be on stdout. Checks that, and that
        the old config is dead (a config_error); returns the CONTROL's
        config."""
        gen = self.srv.get("/_admin/refresh_token")["generation"]
        self.srv.post("/_admin/hold", {"from_generation": gen + 1})
        conn = Connector(binary(), self.args("read", cfg, cat, name="crash"), self.wd,
                         name="crash")
        deadline = time.monotonic() + 30
        while self.srv.get("/_admin/stats")["held"] < 1:
            self.assertLess(time.monotonic(), deadline, "no request with the new token")
            time.sleep(0.05)
        out = parse_messages(conn.stdout_so_far(), allow_partial_tail=True)
        controls = [m for m in out if m["type"] == "CONTROL"]
        self.assertEqual(len(controls), 1, "the CONTROL was not written before the token's use")
        new_cfg = controls[0]["control"]["connectorConfig"]["config"]
        self.assertEqual(self.srv.get("/_admin/refresh_token")["generation"], gen + 1)
        conn.signal(signal.SIGKILL)
        res = conn.wait(allow_partial_tail=True)
        self.assertEqual(res.rc, -signal.SIGKILL)
        self.srv.post("/_admin/hold", {"from_generation": None})
        # the old config cannot refresh any more
        res = self.run_src("read", cfg, cat, name="old")
        self.assertEqual(res.errors[0]["failure_type"], "config_error")
        return new_cfg

    def read_through_token_expiry(self, cfg, cat, rate):
        """For a source with rotating refresh tokens: a read while the
        emulator revokes tokens now and then succeeds, with one CONTROL per
        refresh (more than one revoked), and the last CONTROL holds the one
        refresh token the account accepts. rate: of the revocations (seeded:
        a token refused right after its renewal fails the request, so the
        draws must never hit one twice in a row). Returns the read."""
        self.srv.post("/_admin/faults", {"seed": 3, "rate_token_expire": rate})
        res = self.run_src("read", cfg, cat)
        self.assertEqual(res.rc, 0, res.describe())
        controls = res.of_type("CONTROL")
        expired = self.counters()["fault.token_expire"]
        self.assertGreater(expired, 1)
        self.assertEqual(len(controls), expired + 1)
        self.srv.post("/_admin/faults", {})
        after = self.run_src("check", latest_config(res.messages, cfg), name="after")
        self.assertEqual(self.connection_status(after)["status"], "SUCCEEDED")
        return res

    def assert_states_consistent(self, res):
        """Each STATE counts the records of its stream since the previous
        one; no record of a stream after its last state."""
        since = {}
        for m in res.messages:
            if m["type"] == "RECORD":
                s = m["record"]["stream"]
                since[s] = since.get(s, 0) + 1
            elif m["type"] == "STATE":
                s = m["state"]["stream"]["stream_descriptor"]["name"]
                self.assertEqual(m["state"]["sourceStats"]["recordCount"], since.get(s, 0))
                since[s] = 0
        self.assertEqual({s: n for s, n in since.items() if n}, {})


# ---------------------------------------------------------------------------
# Test runner
# ---------------------------------------------------------------------------


class Timed(unittest.TextTestResult):
    """Prints each test's duration in verbose mode."""

    def startTest(self, test):
        self._t0 = time.monotonic()
        super().startTest(test)

    def addSuccess(self, test):
        if self.showAll:
            self.stream.write("(%.1fs) " % (time.monotonic() - self._t0))
        super().addSuccess(test)


def main(description=None, extra_args=None):
    """Entry point for a test script: --bin PATH plus unittest arguments.
    extra_args(parser) may add options; the parsed namespace is returned in
    lib.OPTIONS. Exits 0 only when every test passed."""
    global _BINARY, KEEP, OPTIONS
    p = argparse.ArgumentParser(description=description, add_help=True)
    p.add_argument("--bin", help="connector binary under test")
    p.add_argument("--keep", action="store_true", help="keep work directories")
    if extra_args:
        extra_args(p)
    opts, rest = p.parse_known_args()
    _BINARY = os.path.abspath(opts.bin) if opts.bin else None
    if _BINARY and not os.access(_BINARY, os.X_OK):
        sys.stderr.write("not an executable: %s\n" % _BINARY)
        sys.exit(2)
    KEEP = KEEP or opts.keep
    OPTIONS = opts
    argv = [sys.argv[0], "-v"] + rest
    prog = unittest.main(module="__main__", argv=argv, exit=False,
                         testRunner=unittest.TextTestRunner(resultclass=Timed, verbosity=2))
    res = prog.result
    ok = res.wasSuccessful() and res.testsRun > 0
    sys.exit(0 if ok else 1)


OPTIONS = None
