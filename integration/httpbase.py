"""httpbase.py - the HTTP plumbing shared by the local test servers.

The emulators (integration/emulators/*_emulator.py), the benchmark sinks
(integration/fast_sink*.py) and the scripted server of the HTTP client's unit
tests (tests/http_test_server.py) keep only their API's logic and build on:

* `Server`: a threaded HTTP/1.1 server on a loopback address (port 0 picks a
  free one), IPv4 or IPv6, optional TLS, quiet about client disconnects;
  `add_server_arguments()` and `serve()` give every script the same
  --host/--port/--port-file/--tls-cert/--tls-key flags, the atomic port file,
  one start-up line on stderr and a clean stop on SIGTERM/SIGINT;
  `emulator_parser()` adds --seed for the emulators, `run_server()` builds
  and serves the Server of parsed flags;
* `Handler`: keep-alive connections, request bodies (Content-Length or
  chunked, with a size cap and optional draining of oversized bodies), one
  write per response, JSON error envelopes for malformed requests, a TCP
  reset on demand (`reset_connection()`);
* body and JSON helpers: `decode_body()` (gzip, with a cap on the
  uncompressed size), `parse_json()` (strict), `encode_json()`,
  `error_body()` / `HttpError` (the `{"error": {"code", "message", ...}}`
  envelope), `query_params()`;
* `route()`: a table of paths (strings or regular expressions) to handlers per
  method, answering 404/405 for the rest, for APIs and admin endpoints alike;
* request-level state for emulators: `bearer_token()`, `basic_credentials()`,
  `TokenStore` (issued OAuth access tokens with expiry), `RateLimiter` (a
  token bucket per client) and `FaultInjector` (seeded draws of 429, 5xx,
  connection resets and drop-after-apply, plus latency; `API_FAULT_KINDS`
  are those of an API behind OAuth access tokens).

Every class that holds state has its own lock and may be used from any
handler thread. Standard library only.
"""

import argparse
import base64
import binascii
import ipaddress
import json
import math
import os
import random
import re
import secrets
import signal
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import zlib
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote_plus

IDLE_TIMEOUT = 120  # seconds an idle keep-alive connection is kept

# ---------------------------------------------------------------------------
# JSON and error envelopes
# ---------------------------------------------------------------------------

_encode = json.JSONEncoder(separators=(",", ":")).encode


def encode_json(obj):
    """Compact ASCII JSON bytes (safe even for lone surrogates)."""
    return _encode(obj).encode("ascii")


def _strict_float(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    return value


def _reject_constant(name):
    raise ValueError("invalid JSON constant %s" % name)


def parse_json(data):
    """Strict JSON from UTF-8 bytes (no NaN/Infinity, no overflowing floats);
    raise ValueError on any problem."""
    try:
        return json.loads(data.decode("utf-8"), parse_float=_strict_float,
                          parse_constant=_reject_constant)
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(str(exc)) from None


_JSON_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth(data):
    """The deepest nesting of arrays and objects in JSON text (bytes)."""
    depth = deepest = 0
    for m in _JSON_STRING_OR_BRACKET.finditer(data):
        c = m.group()
        if c in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif c in (b"]", b"}"):
            depth -= 1
    return deepest


def error_body(code, message, **extra):
    """`{"error": {"code", "message", ...extra}, ...extra}`: extra fields
    (`retry_after`, `max_bytes`...) sit inside `error` and again at the top
    level, so either reading works."""
    body = {"error": {"code": code, "message": message, **extra}}
    body.update(extra)
    return body


class HttpError(Exception):
    """An error answer; raise it from a handler and `Handler` sends it."""

    def __init__(self, status, code, message, headers=None, **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = list(headers.items() if isinstance(headers, dict) else headers or ())
        self.extra = extra

    def body(self):
        return error_body(self.code, self.message, **self.extra)


def query_params(query):
    """The first value of each query parameter (blank values kept)."""
    params = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(name, value)
    return params


# ---------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------


class BodyTooLarge(Exception):
    pass


class BadEncoding(Exception):
    pass


def gunzip(data, limit):
    """Decompress one or more gzip members, at most `limit` bytes of output;
    raise BodyTooLarge or BadEncoding."""
    if not data:
        raise BadEncoding("empty gzip body")
    out = []
    total = 0
    try:
        while data:
            decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            chunk = decoder.decompress(data, limit + 1 - total)
            total += len(chunk)
            if total > limit or decoder.unconsumed_tail:
                raise BodyTooLarge()
            if not decoder.eof:
                raise BadEncoding("truncated gzip stream")
            out.append(chunk)
            data = decoder.unused_data
    except zlib.error as exc:
        raise BadEncoding(str(exc)) from None
    return b"".join(out)


def content_encodings(headers):
    """The request's Content-Encoding codings, lower case, `identity` left out."""
    codings = [e.strip().lower() for value in (headers.get_all("Content-Encoding") or [])
               for e in value.split(",")]
    return [e for e in codings if e and e != "identity"]


def decode_body(headers, body, limit):
    """The uncompressed request body: plain or gzip (`x-gzip`). Raise
    BodyTooLarge over `limit` bytes, HttpError 415 `unsupported_encoding` for
    another coding, HttpError 400 `invalid_encoding` for broken gzip."""
    codings = content_encodings(headers)
    if not codings:
        if len(body) > limit:
            raise BodyTooLarge()
        return body
    if codings not in (["gzip"], ["x-gzip"]):
        raise HttpError(415, "unsupported_encoding", "Content-Encoding must be gzip or absent",
                        headers={"Accept-Encoding": "gzip"})
    try:
        return gunzip(body, limit)
    except BadEncoding as exc:
        raise HttpError(400, "invalid_encoding", "bad gzip body: %s" % exc) from None


# ---------------------------------------------------------------------------
# Routing
# ---------------------------------------------------------------------------


def route(routes, method, path, not_found="no such endpoint"):
    """`routes` is a list of `(pattern, {method: handler})`; a pattern is a
    string (exact path) or a compiled regular expression (full match, its
    groups are the arguments). Return `(handler, args)`; raise HttpError 404
    for an unknown path, 405 (with Allow) for a known path and another
    method."""
    for pattern, methods in routes:
        if isinstance(pattern, str):
            if pattern != path:
                continue
            args = ()
        else:
            m = pattern.fullmatch(path)
            if m is None:
                continue
            args = m.groups()
        handler = methods.get(method)
        if handler is None:
            allow = ", ".join(sorted(methods))
            raise HttpError(405, "method_not_allowed", "method not allowed; use " + allow,
                            headers={"Allow": allow})
        return handler, args
    raise HttpError(404, "not_found", not_found)


# ---------------------------------------------------------------------------
# Authentication and rate limiting
# ---------------------------------------------------------------------------


def bearer_token(headers):
    """The token of `Authorization: Bearer <token>`, or None."""
    scheme, _, token = (headers.get("Authorization") or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def basic_credentials(headers):
    """`(user, password)` from `Authorization: Basic`, form-decoded as OAuth 2
    asks; None without Basic; ValueError when malformed."""
    scheme, _, credentials = (headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise ValueError("no colon in Basic credentials")
    return unquote_plus(user), unquote_plus(password)


class TokenStore:
    """OAuth access tokens issued to clients, each with an expiry time."""

    MAX_TOKENS = 10000  # expired tokens are swept beyond this many

    def __init__(self, prefix="tok_"):
        self.prefix = prefix
        self.lock = threading.Lock()
        self.clear()

    def clear(self):
        with self.lock:
            self._tokens = {}  # token -> (client, expires_at)

    def issue(self, client, ttl, now):
        token = self.prefix + secrets.token_urlsafe(24)
        with self.lock:
            if len(self._tokens) > self.MAX_TOKENS:
                self._tokens = {t: e for t, e in self._tokens.items() if e[1] > now}
            self._tokens[token] = (client, now + ttl)
        return token

    def client(self, token, now):
        """The client a live token was issued to, or None (an expired token
        is forgotten)."""
        with self.lock:
            entry = self._tokens.get(token)
            if entry is not None and entry[1] > now:
                return entry[0]
            self._tokens.pop(token, None)
        return None

    def revoke(self, token):
        with self.lock:
            self._tokens.pop(token, None)


class RateLimiter:
    """Token bucket per client: `rate` tokens/s, capacity `burst`. A rate of 0
    disables limiting."""

    def __init__(self, rate, burst):
        self.rate = rate
        self.burst = burst
        self.lock = threading.Lock()
        self.clear()

    def clear(self):
        with self.lock:
            self._buckets = {}

    def take(self, client, now):
        """Return `(allowed, remaining, retry_after_seconds)`."""
        if self.rate <= 0:
            return True, self.burst, 0
        with self.lock:
            tokens, stamp = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                return True, int(tokens - 1.0), 0
            self._buckets[client] = (tokens, now)
        return False, 0, max(1, math.ceil((1.0 - tokens) / self.rate))


# ---------------------------------------------------------------------------
# Fault injection
# ---------------------------------------------------------------------------


class GenerationHold:
    """Holds API requests made with access tokens of a given refresh-token
    generation or later until released (the emulators' `POST /_admin/hold`
    `{"from_generation": G}`, `null` releases): a test kills a client while
    it uses a token it has just received. Works under the caller's lock (a
    `threading.Lock` or `RLock` the app holds around every call)."""

    def __init__(self, lock):
        self.cond = threading.Condition(lock)
        self.from_generation = None
        self.held = 0

    def clear(self):
        """Releases everything (with the lock held)."""
        self.from_generation = None
        self.held = 0
        self.cond.notify_all()

    def configure(self, spec):
        """`{"from_generation": G or null}` (with the lock held); the answer
        of the admin endpoint."""
        self.from_generation = spec.get("from_generation")
        if self.from_generation is not None:
            self.held = 0
        self.cond.notify_all()
        return {"hold_from": self.from_generation}

    def wait(self, generation):
        """Blocks a request of this generation while it is held (with the
        lock held; waiting releases it)."""
        if self.from_generation is None or generation < self.from_generation:
            return
        self.held += 1
        self.cond.notify_all()
        while self.from_generation is not None and generation >= self.from_generation:
            self.cond.wait(1)


# The FaultInjector kinds of an API behind OAuth access tokens: resets, 429,
# 500, 503 and token_expire (the emulator revokes the request's token: 401).
API_FAULT_KINDS = (("rate_reset", "reset"), ("rate_429", "429"), ("rate_500", "500"),
                   ("rate_503", "503"), ("rate_token_expire", "token_expire"))


class FaultInjector:
    """Seeded fault injection, configured by a JSON object (the emulators'
    `POST /_admin/faults`).

    `kinds` lists `(field, kind)` in the order their probability ranges are
    stacked; the shared kinds are `429`, `500`, `503`, `reset` and
    `commit_drop` (drop-after-apply: process the request, then reset the
    connection instead of answering), and an emulator may add its own.
    `extra` maps further numeric fields to `(default, low, high)`.
    Every configuration has `latency_ms`, `latency_jitter_ms` (0..600000) and
    `retry_after` (an integer, `min_retry_after`..86400, default 1).
    `configure()` replaces the whole configuration (absent fields take their
    defaults); `seed` reseeds the generator. One `draw()` per request picks at
    most one fault."""

    def __init__(self, seed, kinds, extra=None, min_retry_after=1):
        self.initial_seed = seed
        self.kinds = tuple(kinds)
        self.extra = dict(extra or {})
        self.min_retry_after = min_retry_after
        self.lock = threading.Lock()
        self.reset()

    def defaults(self):
        config = {"seed": None}
        config.update((name, 0.0) for name, _ in self.kinds)
        config.update(latency_ms=0.0, latency_jitter_ms=0.0, retry_after=1)
        config.update((name, spec[0]) for name, spec in self.extra.items())
        return config

    def reset(self, seed=None):
        """Defaults, and the generator reseeded with `seed` (else the initial
        one)."""
        with self.lock:
            self.rng = random.Random(self.initial_seed if seed is None else seed)
            self.config = self.defaults()
            self._active = False

    def __getitem__(self, name):
        return self.config[name]

    def view(self):
        with self.lock:
            return dict(self.config)

    def configure(self, spec):
        """Replace the configuration; raise HttpError 400 and keep the old
        one when `spec` is not valid."""

        def bad(message, name=None):
            extra = {} if name is None else {"field": name}
            return HttpError(400, "invalid_request", message, **extra)

        if type(spec) is not dict:
            raise bad("body must be a JSON object")
        config = self.defaults()
        unknown = sorted(set(spec) - set(config))
        if unknown:
            raise bad("unknown fault fields: " + ", ".join(unknown))
        rates = {name for name, _ in self.kinds}
        for name, value in spec.items():
            if value is None:
                continue
            if name == "seed":
                if type(value) is not int:
                    raise bad("'seed' must be an integer", name)
            elif name == "retry_after":
                if type(value) is not int or not self.min_retry_after <= value <= 86400:
                    raise bad("'retry_after' must be an integer from %d to 86400"
                              % self.min_retry_after, name)
            else:
                if name in rates:
                    low, high = 0, 1
                elif name in self.extra:
                    low, high = self.extra[name][1:]
                else:
                    low, high = 0, 600000
                if type(value) not in (int, float) or not low <= value <= high:
                    raise bad("'%s' must be a number from %s to %s" % (name, low, high), name)
                value = float(value)
            config[name] = value
        if sum(config[name] for name in rates) > 1.0 + 1e-9:
            raise bad("fault probabilities must add up to at most 1")
        with self.lock:
            self.config = config
            self._active = any(config[name] for name in rates)
            if config["seed"] is not None:
                self.rng = random.Random(config["seed"])
        return dict(config)

    def draw(self, allowed=None):
        """One uniform draw: a fault kind or None. Kinds not in `allowed`
        (when given) take no part; no draw is made while every rate is 0."""
        with self.lock:
            if not self._active:
                return None
            roll = self.rng.random()
            threshold = 0.0
            for name, kind in self.kinds:
                if allowed is not None and kind not in allowed:
                    continue
                threshold += self.config[name]
                if roll < threshold:
                    return kind
        return None

    def latency(self):
        """Seconds to sleep before answering (0 when off)."""
        with self.lock:
            ms = self.config["latency_ms"]
            jitter = self.config["latency_jitter_ms"]
            if jitter:
                ms += self.rng.uniform(0, jitter)
        return ms / 1000.0


# ---------------------------------------------------------------------------
# Connections
# ---------------------------------------------------------------------------

_STATUS_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed",
                 408: "request_timeout", 411: "length_required", 413: "payload_too_large",
                 414: "uri_too_long", 431: "headers_too_large", 501: "not_implemented",
                 505: "http_version_not_supported"}

_date_cache = [0, ""]


def _http_date():
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[1] = formatdate(now, usegmt=True)
        _date_cache[0] = now
    return _date_cache[1]


class Handler(BaseHTTPRequestHandler):
    """One keep-alive connection. Subclasses set `server_version` and
    `methods`, and implement `handle_request()`: read `self.method` (HEAD is
    seen as GET), `self.url_path`, `self.query`; call `read_body()`; answer
    with `send_json()` / `send_bytes()` or raise `HttpError`, or call
    `reset_connection()`. A request answered with nothing closes the
    connection."""

    protocol_version = "HTTP/1.1"
    server_version = "httpbase/1"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    methods = ("GET", "POST", "PUT", "PATCH", "DELETE")
    max_body = 8 * 1024 * 1024    # read at most this much of a body ...
    drain_limit = 0               # ... and drain (then answer 413) up to this much

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def log_message(self, format, *args):  # noqa: A002 - base class signature
        pass

    def version_string(self):
        return self.server_version

    @property
    def app(self):
        return self.server.app

    def _on_request(self):
        if self.command not in self.methods:
            self.send_error(501, "method %s not supported" % self.command)
            return
        self.method = "GET" if self.command == "HEAD" else self.command
        path, _, self.query = self.path.partition("?")
        self.url_path, _, _ = path.partition("#")
        self.body_oversize = False
        self.answered = False
        try:
            self.handle_request()
            if not self.answered:
                self.close_connection = True
        except HttpError as exc:
            self.send_http_error(exc)
        except (ConnectionError, TimeoutError, ssl.SSLError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - a bug: report it, answer 500, close
            self.close_connection = True
            self.on_bug()
            if not self.answered:
                self.send_json(500, error_body("internal_error", "internal error"))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _on_request

    def handle_request(self):
        raise HttpError(404, "not_found", "no such endpoint")

    def on_bug(self):
        """An exception escaped `handle_request()`: print its traceback."""
        import traceback
        traceback.print_exc(file=sys.stderr)

    # -- request body ----------------------------------------------------------

    def read_body(self):
        """The raw request body (Content-Length or chunked). Over `max_body`
        bytes it returns b"" and sets `body_oversize`; the rest of the body is
        drained up to `drain_limit` bytes so the connection stays usable, or
        the connection is closed after the answer. Raises HttpError 400 for
        broken framing, ConnectionError when the client goes away."""
        te = self.headers.get("Transfer-Encoding")
        if te is not None:
            if te.strip().lower() != "chunked":
                self.close_connection = True
                raise HttpError(400, "invalid_request", "unsupported Transfer-Encoding")
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        length = length.strip()
        if not (length.isascii() and length.isdigit()):
            self.close_connection = True
            raise HttpError(400, "invalid_request", "invalid Content-Length")
        size = int(length)
        if size > self.max_body:
            self.body_oversize = True
            if size > self.drain_limit:
                self.close_connection = True
                return b""
            while size > 0:
                chunk = self.rfile.read(min(size, 1 << 20))
                if not chunk:
                    raise ConnectionError("client closed the connection mid-body")
                size -= len(chunk)
            return b""
        data = self.rfile.read(size) if size else b""
        if len(data) < size:
            raise ConnectionError("client closed the connection mid-body")
        return data

    def _read_chunked(self):
        parts = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise HttpError(400, "invalid_request", "malformed chunked body") from None
            if size == 0:
                while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass
                break
            total += size
            if total > max(self.max_body, self.drain_limit):
                self.body_oversize = True
                self.close_connection = True
                return b""
            chunk = self.rfile.read(size)
            self.rfile.readline(8)
            if len(chunk) < size:
                raise ConnectionError("client closed the connection mid-body")
            if total <= self.max_body:
                parts.append(chunk)
        if total > self.max_body:
            self.body_oversize = True
            return b""
        return b"".join(parts)

    # -- responses -------------------------------------------------------------

    def send_bytes(self, status, body, headers=(), content_type="application/json"):
        """Write one complete response (status line, headers and body in one
        write: no Nagle or delayed-ACK stalls). `headers` is a dict or a list
        of pairs. Adds `Connection: close` when the connection ends after it."""
        self.answered = True
        head = ["HTTP/1.1 %d %s\r\nServer: %s\r\nDate: %s\r\nContent-Type: %s\r\n"
                "Content-Length: %d\r\n"
                % (status, self.responses.get(status, ("",))[0], self.server_version,
                   _http_date(), content_type, len(body))]
        for name, value in (headers.items() if isinstance(headers, dict) else headers):
            head.append("%s: %s\r\n" % (name, value))
        if self.close_connection:
            head.append("Connection: close\r\n")
        head.append("\r\n")
        data = "".join(head).encode("latin-1")
        if self.command != "HEAD":
            data += body
        self.wfile.write(data)

    def send_json(self, status, obj, headers=()):
        self.send_bytes(status, obj if isinstance(obj, bytes) else encode_json(obj), headers)

    def send_http_error(self, exc):
        self.send_json(exc.status, exc.body(), exc.headers)

    def send_error(self, code, message=None, explain=None):
        """Base-class hook for malformed requests: a JSON envelope, then close."""
        self.close_connection = True
        body = error_body(_STATUS_CODES.get(code, "http_error"),
                          message or self.responses.get(code, ("request rejected",))[0])
        try:
            self.send_json(code, body)
        except OSError:
            pass

    def reset_connection(self):
        """Close at once so that the peer sees a TCP reset (SO_LINGER 0), not
        an answer or a FIN."""
        self.answered = True
        self.close_connection = True
        sock = self.connection
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            os.close(sock.detach())
        except OSError:
            pass


# ---------------------------------------------------------------------------
# Server and command line
# ---------------------------------------------------------------------------


class Server(ThreadingHTTPServer):
    """Threaded server; `app` is whatever the handlers need (`Handler.app`).
    `tls=(cert, key)` serves https (the handshake runs in the connection's
    thread)."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # the default 5 drops SYNs of parallel connects

    def __init__(self, address, handler, app=None, tls=None):
        self.app = app
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)
        self.scheme = "http"
        if tls is not None and tls[0]:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[0], tls[1])
            self.socket = ctx.wrap_socket(self.socket, server_side=True,
                                          do_handshake_on_connect=False)
            self.scheme = "https"

    def server_bind(self):
        # Skip HTTPServer's reverse DNS lookup of the bind address.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    @property
    def port(self):
        return self.server_address[1]

    @property
    def url(self):
        host = self.server_address[0]
        return "%s://%s:%d" % (self.scheme, "[%s]" % host if ":" in host else host, self.port)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, ssl.SSLError)):
            super().handle_error(request, client_address)


def loopback_host(text):
    """argparse type: a host name or address that resolves to loopback; the
    address to bind (IPv4 preferred)."""
    try:
        infos = socket.getaddrinfo(text, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise argparse.ArgumentTypeError("cannot resolve '%s': %s" % (text, exc)) from None
    found = sorted((family != socket.AF_INET, addr[0]) for family, _, _, _, addr in infos
                   if ipaddress.ip_address(addr[0].split("%")[0]).is_loopback)
    if not found:
        raise argparse.ArgumentTypeError("'%s' is not a loopback address" % text)
    return found[0][1]


def add_server_arguments(parser):
    """--host, --port, --port-file, --tls-cert, --tls-key."""
    parser.add_argument("--host", type=loopback_host, default="127.0.0.1",
                        help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0,
                        help="port; 0 picks a free one (default)")
    parser.add_argument("--port-file", help="write the bound port number here (atomically)")
    parser.add_argument("--tls-cert", help="serve https with this PEM certificate (chain)")
    parser.add_argument("--tls-key", help="the certificate's PEM private key")


def emulator_parser(description, epoch=False):
    """An emulator's argument parser: add_server_arguments(), --seed (of the
    data and the fault draws) and, with epoch, --epoch (the time the data is
    made as of)."""
    parser = argparse.ArgumentParser(description=description)
    add_server_arguments(parser)
    parser.add_argument("--seed", type=int, default=1, help="seeds the data and the fault draws")
    if epoch:
        parser.add_argument("--epoch", type=float, default=None,
                            help="the data is made as of this time (seconds since the epoch; "
                                 "default: the start), so it does not depend on the day it runs")
    return parser


def run_server(args, handler, app, banner, on_close=None):
    """Serves app with handler on the address of the parsed
    add_server_arguments() flags (https with --tls-cert) until SIGTERM or
    SIGINT, as serve() does; banner(url) is the start-up line. Returns 0."""
    server = Server((args.host, args.port), handler, app, tls=(args.tls_cert, args.tls_key))
    return serve(server, args.port_file, banner(server.url), on_close=on_close)


def write_port_file(path, port):
    """Write atomically: readers see either no file or the whole number."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    with open(tmp, "w", encoding="ascii") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def serve(server, port_file=None, banner=None, on_close=None):
    """Announce the server (port file, then one `banner` line on stderr; the
    port file is written last, so a reader that sees it finds a ready server)
    and serve until SIGTERM or SIGINT; then close the socket and call
    `on_close`. Returns 0."""

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if banner:
        sys.stderr.write(banner.rstrip("\n") + "\n")
        sys.stderr.flush()
    if port_file:
        write_port_file(port_file, server.port)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if on_close is not None:
            on_close()
    return 0

