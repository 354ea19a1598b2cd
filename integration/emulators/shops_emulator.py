#!/usr/bin/env python3
"""Shops import API v1 emulator.

A local, in-memory implementation of the contract in ``docs/api/shops.md``
(OAuth 2.0 client credentials, channels, transactional imports made of parts,
atomic commits, replace-mode deactivation, last-write-wins) for the
destination-shops tests. Standard library only.

Where the contract is silent, the choices made are listed in
``README-shops.md`` beside this file. Admin endpoints under ``/_admin/`` need
no authentication and let tests inspect state and inject faults.

Usage::

    shops_emulator.py --port 0 --port-file /tmp/shops.port \\
        --client demo-client:demo-secret --channel store-br:Loja\\ BR:BRL

Nothing is written to stdout; a single startup line goes to stderr.
"""

import argparse
import base64
import binascii
import bisect
import collections
import datetime
import gc
import hmac
import json
import os
import random
import re
import sys
import threading
import time
import traceback
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import httpbase  # noqa: E402  (integration/httpbase.py: server plumbing)

# ---------------------------------------------------------------------------
# Limits and constants
# ---------------------------------------------------------------------------

OBJECTS = ("products", "inventory")
MODES = ("merge", "replace")
STATUSES = ("open", "committing", "committed", "aborted", "expired")

MAX_PART_ITEMS = 1000
MAX_PART_NUMBER = 10000
MAX_BODY_BYTES = 8 * 1024 * 1024            # uncompressed, every endpoint
MAX_WIRE_BYTES = MAX_BODY_BYTES + 1024 * 1024  # as sent (gzip may not shrink)
MAX_CHECKPOINT_BYTES = 64 * 1024
MAX_LABEL_CHARS = 256
MAX_IDEMPOTENCY_KEY = 255
IDEMPOTENCY_WINDOW = 24 * 3600
LIST_IMPORTS_LIMIT = 100
LIST_ITEMS_DEFAULT = 100
LIST_ITEMS_MAX = 1000

MAX_SKU_CHARS = 64
MAX_TITLE_CHARS = 256
MAX_DESCRIPTION_BYTES = 64 * 1024
MAX_IMAGES = 20
MAX_LOCATION_CHARS = 64
MAX_QUANTITY = 10 ** 9
MAX_PRICE_INT_DIGITS = 15
DEFAULT_LOCATION = "default"

# Injected faults (POST /_admin/faults), stacked in this order; commit_drop
# is drawn for commits only.
FAULT_KINDS = httpbase.API_FAULT_KINDS + (("rate_commit_drop", "commit_drop"),)
NON_COMMIT_FAULTS = frozenset(("reset", "429", "500", "503", "token_expire"))

# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

_canonical_json = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"),
                                   sort_keys=True).encode


to_json = httpbase.encode_json  # compact ASCII JSON bytes
_encode_json = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


def rfc3339(t):
    """UTC RFC 3339 timestamp with millisecond precision."""
    ms = int(round(t * 1000))
    secs, frac = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%03dZ" % frac


class ApiError(httpbase.HttpError):
    """An error answer: {"error": {"code", "message", ...extra}, ...extra}.

    Extra fields (``missing``, ``max_bytes``...) appear inside ``error`` and
    again at the top level, so either reading works.
    """

    def response(self):
        return error_response(self)


def error_response(exc):
    """The Response for an httpbase.HttpError (ApiError included)."""
    return Response(exc.status, exc.body(), exc.headers)


class Response:
    """What the HTTP layer sends. ``action`` is None, "reset" or "drop"."""

    __slots__ = ("status", "body", "headers", "action")

    def __init__(self, status, body=None, headers=None, action=None):
        self.status = status
        if body is None:
            self.body = b""
        elif isinstance(body, bytes):
            self.body = body
        else:
            self.body = to_json(body)
        self.headers = list(headers or ())
        self.action = action


class Request:
    """One HTTP request as the application sees it (body not yet decoded)."""

    __slots__ = ("method", "path", "query", "headers", "body", "oversize")

    def __init__(self, method, path, query, headers, body, oversize):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.oversize = oversize


def oauth_error(status, code, description, headers=()):
    body = {"error": code, "error_description": description}
    hdrs = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
    hdrs.extend(headers)
    return Response(status, body, hdrs)


def _reject_constant(name):
    raise ValueError("%s is not valid JSON" % name)


def parse_json(data):
    if not data:
        raise ApiError(400, "invalid_json", "request body is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_json", "request body is not valid UTF-8")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", "request body is not valid JSON: %s" % exc)


# ---------------------------------------------------------------------------
# Item validation (hot path: keep it flat and regex-precompiled)
# ---------------------------------------------------------------------------

_SKU_RE = re.compile(r"[A-Za-z0-9._-]+")
_PRICE_RE = re.compile(r"(-?)([0-9]+)(?:\.([0-9]{1,2}))?")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_TS_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))")
_URL_RE = re.compile(
    r"[Hh][Tt][Tt][Pp][Ss]://"  # not (?i:https): Unicode case folding takes "ſ" for "s"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
    r"(?::[0-9]{1,5})?"
    r"(?:[/?#][!-~]*)?")

_TS_CACHE = {}
_TS_CACHE_MAX = 100000


def parse_timestamp(text):
    """Strict RFC 3339 -> comparable instant key, or None when invalid.

    The key is (UTC seconds, fraction digits without trailing zeros); two
    keys compare as the instants they denote, fractions of any length.
    """
    key = _TS_CACHE.get(text)
    if key is not None:
        return key
    m = _TS_RE.fullmatch(text)
    if m is None:
        return None
    year, month, day, hh, mm, ss, frac, sign, oh, om = m.groups()
    hh, mm, ss = int(hh), int(mm), int(ss)
    if hh > 23 or mm > 59 or ss > 59:
        return None
    try:
        days = datetime.date(int(year), int(month), int(day)).toordinal()
    except ValueError:
        return None
    offset = 0
    if sign:
        oh, om = int(oh), int(om)
        if oh > 23 or om > 59:
            return None
        offset = oh * 3600 + om * 60
        if sign == "-":
            offset = -offset
    key = (days * 86400 + hh * 3600 + mm * 60 + ss - offset,
           frac.rstrip("0") if frac else "")
    if len(_TS_CACHE) >= _TS_CACHE_MAX:
        _TS_CACHE.clear()
    _TS_CACHE[text] = key
    return key


def _err(field, code, message):
    return {"field": field, "code": code, "message": message}


def _check_sku(value, field, errors, required):
    """Validate a sku-shaped string; returns it when valid, else None."""
    if value is None or (required and value == ""):
        if required:
            errors.append(_err(field, "missing_field", "%s is required" % field))
        return None
    if type(value) is not str:
        errors.append(_err(field, "invalid_type", "%s must be a string" % field))
        return None
    if not _SKU_RE.fullmatch(value):
        errors.append(_err(field, "invalid_format",
                           "%s must use only A-Z a-z 0-9 - _ ." % field))
        return None
    if len(value) > MAX_SKU_CHARS:
        errors.append(_err(field, "too_long",
                           "%s must be at most %d characters" % (field, MAX_SKU_CHARS)))
        return None
    return value


def _check_price(value, field, errors, required):
    """Validate a decimal price string; returns its value in cents or None."""
    if value is None or (required and value == ""):
        if required:
            errors.append(_err(field, "missing_field", "%s is required" % field))
        return None
    if type(value) is not str:
        errors.append(_err(field, "invalid_type",
                           "%s must be a decimal string such as \"19.90\"" % field))
        return None
    m = _PRICE_RE.fullmatch(value)
    if m is None:
        errors.append(_err(field, "invalid_format",
                           "%s must be a decimal with at most 2 fraction digits" % field))
        return None
    negative, whole, frac = m.groups()
    if len(whole.lstrip("0")) > MAX_PRICE_INT_DIGITS:
        errors.append(_err(field, "out_of_range", "%s is too large" % field))
        return None
    cents = int(whole) * 100 + (int(frac.ljust(2, "0")) if frac else 0)
    if negative and cents:
        errors.append(_err(field, "out_of_range", "%s must be >= 0" % field))
        return None
    return cents


def _check_updated_at(value, errors):
    if value is None or value == "":
        errors.append(_err("updated_at", "missing_field", "updated_at is required"))
        return None
    if type(value) is not str:
        errors.append(_err("updated_at", "invalid_type", "updated_at must be a string"))
        return None
    key = parse_timestamp(value)
    if key is None:
        errors.append(_err("updated_at", "invalid_format",
                           "updated_at must be an RFC 3339 date-time with offset"))
    return key


def validate_product(item):
    """Return (record, instant_key, errors) for one product item."""
    if type(item) is not dict:
        return None, None, [_err("item", "invalid_type", "item must be a JSON object")]
    errors = []
    get = item.get

    sku = _check_sku(get("sku"), "sku", errors, True)
    parent = _check_sku(get("parent_sku"), "parent_sku", errors, False)

    brand = get("brand")
    if brand is None or brand == "":
        errors.append(_err("brand", "missing_field", "brand is required"))
    elif type(brand) is not str:
        errors.append(_err("brand", "invalid_type", "brand must be a string"))

    title = get("title")
    if title is None or title == "":
        errors.append(_err("title", "missing_field", "title is required"))
    elif type(title) is not str:
        errors.append(_err("title", "invalid_type", "title must be a string"))
    elif len(title) > MAX_TITLE_CHARS:
        errors.append(_err("title", "too_long",
                           "title must be at most %d characters" % MAX_TITLE_CHARS))

    description = get("description")
    if description is not None:
        if type(description) is not str:
            errors.append(_err("description", "invalid_type", "description must be a string"))
        elif (len(description) * 4 > MAX_DESCRIPTION_BYTES
              and len(description.encode("utf-8", "surrogatepass")) > MAX_DESCRIPTION_BYTES):
            errors.append(_err("description", "too_long",
                               "description must be at most %d bytes" % MAX_DESCRIPTION_BYTES))

    price_cents = _check_price(get("price"), "price", errors, True)
    compare_at = get("compare_at_price")
    compare_cents = _check_price(compare_at, "compare_at_price", errors, False)
    if compare_cents is not None and price_cents is not None and compare_cents < price_cents:
        errors.append(_err("compare_at_price", "out_of_range",
                           "compare_at_price must be >= price"))

    currency = get("currency")
    if currency is None or currency == "":
        errors.append(_err("currency", "missing_field", "currency is required"))
    elif type(currency) is not str:
        errors.append(_err("currency", "invalid_type", "currency must be a string"))
    elif not _CURRENCY_RE.fullmatch(currency):
        errors.append(_err("currency", "invalid_format",
                           "currency must be an ISO 4217 code such as BRL"))

    attributes = get("attributes")
    if attributes is not None and type(attributes) is not dict:
        errors.append(_err("attributes", "invalid_type", "attributes must be an object"))

    images = get("images")
    if images is not None:
        if type(images) is not list:
            errors.append(_err("images", "invalid_type", "images must be an array of strings"))
        elif len(images) > MAX_IMAGES:
            errors.append(_err("images", "out_of_range",
                               "images must have at most %d entries" % MAX_IMAGES))
        else:
            for i, url in enumerate(images):
                if type(url) is not str:
                    errors.append(_err("images[%d]" % i, "invalid_type", "image must be a string"))
                elif not _URL_RE.fullmatch(url):
                    errors.append(_err("images[%d]" % i, "invalid_format",
                                       "image must be an https URL"))

    active = get("active")
    if active is not None and type(active) is not bool:
        errors.append(_err("active", "invalid_type", "active must be a boolean"))

    updated_at = get("updated_at")
    key = _check_updated_at(updated_at, errors)

    if errors:
        return None, None, errors
    record = {"sku": sku}
    if parent is not None:
        record["parent_sku"] = parent
    record["brand"] = brand
    record["title"] = title
    if description is not None:
        record["description"] = description
    record["price"] = get("price")
    if compare_at is not None:
        record["compare_at_price"] = compare_at
    record["currency"] = currency
    if attributes is not None:
        record["attributes"] = attributes
    if images is not None:
        record["images"] = images
    record["active"] = True if active is None else active
    record["updated_at"] = updated_at
    return record, key, None


def validate_inventory(item):
    """Return (record, instant_key, errors) for one inventory item."""
    if type(item) is not dict:
        return None, None, [_err("item", "invalid_type", "item must be a JSON object")]
    errors = []
    get = item.get

    sku = _check_sku(get("sku"), "sku", errors, True)

    location = get("location")
    if location is None:
        location = DEFAULT_LOCATION
    elif type(location) is not str:
        errors.append(_err("location", "invalid_type", "location must be a string"))
    elif location == "":
        errors.append(_err("location", "invalid_format",
                           "location must be 1-%d characters" % MAX_LOCATION_CHARS))
    elif len(location) > MAX_LOCATION_CHARS:
        errors.append(_err("location", "too_long",
                           "location must be at most %d characters" % MAX_LOCATION_CHARS))

    quantity = get("quantity")
    if quantity is None:
        errors.append(_err("quantity", "missing_field", "quantity is required"))
    elif type(quantity) is not int:
        errors.append(_err("quantity", "invalid_type", "quantity must be an integer"))
    elif quantity < 0 or quantity > MAX_QUANTITY:
        errors.append(_err("quantity", "out_of_range",
                           "quantity must be between 0 and %d" % MAX_QUANTITY))

    updated_at = get("updated_at")
    key = _check_updated_at(updated_at, errors)

    if errors:
        return None, None, errors
    record = {"sku": sku, "location": location, "quantity": quantity,
              "updated_at": updated_at}
    return record, key, None


def _rejection(index, item, errors):
    sku = item.get("sku") if type(item) is dict else None
    return {"index": index, "sku": sku if type(sku) is str else None, "errors": errors}


def same_content(old, new):
    """Equal records apart from updated_at.

    Python's == says 1 == 1.0 == True; free-form ``attributes`` holding
    non-string values are therefore compared as canonical JSON as well.
    """
    if old["updated_at"] == new["updated_at"]:
        if old != new:
            return False
    elif dict(old, updated_at=None) != dict(new, updated_at=None):
        return False
    attributes = new.get("attributes")
    if attributes is None or all(type(v) is str for v in attributes.values()):
        return True
    return _canonical_json(old["attributes"]) == _canonical_json(attributes)


def _merge(items, stored):
    """Apply ``items`` in order over ``stored`` with last-write-wins.

    Returns (overlay of new entries, applied records in order, unchanged
    count); ``stored`` itself is not modified.
    """
    overlay = {}
    applied = []
    unchanged = 0
    for _, _, k, record, instant in items:
        current = overlay.get(k) or stored.get(k)
        if current is not None:
            current_instant = current[1]
            if instant < current_instant or (
                    instant == current_instant and same_content(current[0], record)):
                unchanged += 1
                continue
        overlay[k] = (record, instant)
        applied.append(record)
    return overlay, applied, unchanged


# ---------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------

class Channel:
    """A sales channel and its stored items.

    ``products`` maps sku -> (record, instant_key); ``inventory`` maps
    (sku, location) -> (record, instant_key). Sorted key lists for paging are
    rebuilt lazily when new keys appear.
    """

    def __init__(self, channel_id, name, currency):
        self.id = channel_id
        self.name = name
        self.currency = currency
        self.products = {}
        self.inventory = {}
        self._product_keys = None
        self._inventory_keys = None

    def product_keys(self):
        if self._product_keys is None:
            self._product_keys = sorted(self.products)
        return self._product_keys

    def inventory_keys(self):
        if self._inventory_keys is None:
            self._inventory_keys = sorted(self.inventory)
        return self._inventory_keys

    def keys_changed(self):
        self._product_keys = None
        self._inventory_keys = None

    def view(self):
        return {"channel": self.id, "name": self.name, "currency": self.currency}


class Part:
    __slots__ = ("number", "object", "items", "accepted", "rejected", "uploaded_at")

    def __init__(self, number, obj, items, rejected, uploaded_at):
        self.number = number
        self.object = obj
        self.items = items            # [(index, store_key, record, instant_key)]
        self.accepted = len(items)
        self.rejected = rejected
        self.uploaded_at = uploaded_at


class Import:
    __slots__ = ("id", "seq", "client_id", "channel", "mode", "objects", "label",
                 "status", "created_at", "last_activity", "ended_at", "parts",
                 "checkpoint", "committed_at", "commit_body", "idempotency_key")

    def __init__(self, import_id, seq, client_id, channel, mode, objects, label,
                 now, idempotency_key):
        self.id = import_id
        self.seq = seq
        self.client_id = client_id
        self.channel = channel
        self.mode = mode
        self.objects = objects
        self.label = label
        self.status = "open"
        self.created_at = now
        self.last_activity = now
        self.ended_at = None          # when it expired or was aborted
        self.parts = {}               # number -> Part
        self.checkpoint = None
        self.committed_at = None
        self.commit_body = None
        self.idempotency_key = idempotency_key

    def release_items(self):
        for part in self.parts.values():
            part.items = None


# ---------------------------------------------------------------------------
# Application
# ---------------------------------------------------------------------------

_ROUTES = [
    (re.compile(r"/v1/channels/([^/]+)"), {"GET": "get_channel"}),
    (re.compile(r"/v1/channels/([^/]+)/products"), {"GET": "list_products"}),
    (re.compile(r"/v1/channels/([^/]+)/products/([^/]+)"), {"GET": "get_product"}),
    (re.compile(r"/v1/channels/([^/]+)/inventory"), {"GET": "list_inventory"}),
    (re.compile(r"/v1/channels/([^/]+)/inventory/([^/]+)"), {"GET": "get_inventory"}),
    (re.compile(r"/v1/imports"), {"GET": "list_imports", "POST": "create_import"}),
    (re.compile(r"/v1/imports/([^/]+)"), {"GET": "get_import", "DELETE": "abort_import"}),
    (re.compile(r"/v1/imports/([^/]+)/parts/([^/]+)"), {"PUT": "put_part"}),
    (re.compile(r"/v1/imports/([^/]+)/commit"), {"POST": "commit"}),
]

_ADMIN_ROUTES = [
    ("/_admin/health", {"GET": "admin_health"}),
    ("/_admin/dump", {"GET": "admin_dump"}),
    ("/_admin/stats", {"GET": "admin_stats"}),
    ("/_admin/applied", {"GET": "admin_applied"}),
    ("/_admin/faults", {"GET": "admin_get_faults", "POST": "admin_set_faults"}),
    ("/_admin/expire", {"POST": "admin_expire"}),
    ("/_admin/reset", {"POST": "admin_reset"}),
]

_COMMIT_PATH_RE = re.compile(r"/v1/imports/[^/]+/commit")
_PART_PATH_RE = re.compile(r"/v1/imports/[^/]+/parts/[^/]+")
_PART_NUMBER_RE = re.compile(r"[0-9]{1,5}")
_DIGITS_RE = re.compile(r"[0-9]{1,18}")


def _method_not_allowed(methods):
    allow = ", ".join(sorted(methods))
    return ApiError(405, "method_not_allowed", "method not allowed; use %s" % allow,
                    headers=[("Allow", allow)])


class Config:
    def __init__(self, clients, channels, rate, burst, token_ttl, import_ttl,
                 seed, journal, max_json_depth=0, reserved_sku_prefix=None):
        self.clients = clients          # id -> secret
        self.channels = channels        # [(id, name, currency)]
        self.rate = rate
        self.burst = burst
        self.token_ttl = token_ttl
        self.import_ttl = import_ttl
        self.seed = seed
        self.journal = journal
        self.max_json_depth = max_json_depth  # 0: only Python's own limit
        self.reserved_sku_prefix = reserved_sku_prefix or None  # a rule beyond the contract


class ShopsApp:
    """All emulator state and request handling, independent of HTTP I/O.

    One lock (``self.lock``) guards every piece of state. Work that needs no
    state (JSON parsing, item validation, injected latency, commit delay)
    runs outside it.
    """

    def __init__(self, config):
        self.config = config
        self.lock = threading.RLock()
        self.started = time.time()
        seed = config.seed
        self.id_rng = random.Random(None if seed is None else "ids:%d" % seed)
        self.faults = httpbase.FaultInjector(
            seed, FAULT_KINDS, min_retry_after=0,
            extra={"import_ttl": (config.import_ttl, 0.001, 10 ** 9),
                   "commit_delay_ms": (0.0, 0, 600000)})
        self.tokens = httpbase.TokenStore("tok_")
        self.limiter = httpbase.RateLimiter(config.rate, config.burst)
        self.journal = open(config.journal, "w", encoding="utf-8") if config.journal else None
        self._reset_state()

    # -- state --------------------------------------------------------------

    def _reset_state(self):
        self.channels = {cid: Channel(cid, name, cur) for cid, name, cur in self.config.channels}
        self.imports = {}
        self.import_seq = 0
        self.idempotency = {}           # (client, key) -> (fingerprint, import_id, time)
        self.tokens.clear()
        self.limiter.clear()
        self.applied = []               # segments, see _log_applied
        self.applied_count = 0
        self.faults.reset()
        self.counters = {}
        self.last_internal_error = None
        if self.journal is not None:
            self.journal.seek(0)
            self.journal.truncate()
            self.journal.flush()

    def count(self, name, n=1):
        self.counters[name] = self.counters.get(name, 0) + n

    def _new_import_id(self):
        while True:
            iid = "imp_%020x" % self.id_rng.getrandbits(80)
            if iid not in self.imports:
                return iid

    def _refresh_expiry(self, imp, now):
        if imp.status == "open":
            deadline = imp.last_activity + self.faults["import_ttl"]
            if now >= deadline:
                imp.status = "expired"
                imp.ended_at = deadline
                imp.release_items()
                self.count("imports_expired")

    def _import_view(self, imp):
        if imp.status == "open":
            expires = rfc3339(imp.last_activity + self.faults["import_ttl"])
        elif imp.status == "expired":
            expires = rfc3339(imp.ended_at)
        else:
            expires = None
        return {
            "import_id": imp.id,
            "channel": imp.channel,
            "mode": imp.mode,
            "objects": list(imp.objects),
            "label": imp.label,
            "status": imp.status,
            "parts": sorted(imp.parts),
            "checkpoint": imp.checkpoint,
            "created_at": rfc3339(imp.created_at),
            "updated_at": rfc3339(imp.last_activity),
            "expires_at": expires,
            "committed_at": imp.committed_at,
        }

    def _channel(self, channel_id):
        ch = self.channels.get(channel_id)
        if ch is None:
            raise ApiError(404, "not_found", "channel '%s' not found" % channel_id)
        return ch

    def _visible_import(self, client, import_id, now):
        imp = self.imports.get(import_id)
        if imp is None or imp.client_id != client:
            raise ApiError(404, "not_found", "import '%s' not found" % import_id)
        self._refresh_expiry(imp, now)
        return imp

    @staticmethod
    def _committing_error(what):
        return ApiError(409, "import_committing", "a commit of this import is running; %s" % what,
                        headers=[("Retry-After", "1")], retry_after=1)

    def _check_uploadable(self, imp):
        status = imp.status
        if status == "open":
            return
        if status == "committing":
            raise self._committing_error("parts cannot change")
        if status == "committed":
            raise ApiError(409, "import_committed", "import is already committed")
        if status == "aborted":
            raise ApiError(410, "import_aborted", "import was aborted")
        raise ApiError(410, "import_expired", "import expired")

    # -- request entry point ------------------------------------------------

    def handle(self, req):
        with self.lock:
            self.count("requests")
        try:
            resp = self._dispatch(req)
        except httpbase.HttpError as exc:
            resp = error_response(exc)
        except Exception:  # a bug: answer 500 and keep the trace for /_admin/stats
            with self.lock:
                self.last_internal_error = traceback.format_exc()
                self.count("internal_errors")
            resp = ApiError(500, "internal_error", "internal error").response()
        with self.lock:
            if resp.action is None:
                self.count("status.%d" % resp.status)
            else:
                self.count("connections_" + resp.action)
        return resp

    def _dispatch(self, req):
        path = req.path
        if path.startswith("/_admin/"):
            name, _ = httpbase.route(_ADMIN_ROUTES, req.method, path, "no such admin endpoint")
            return getattr(self, name)(req)
        if path == "/oauth/token":
            if req.method != "POST":
                raise _method_not_allowed(["POST"])
            return self.token(req)
        if path == "/v1" or path.startswith("/v1/"):
            return self._dispatch_v1(req)
        raise ApiError(404, "not_found", "no such endpoint")

    def _dispatch_v1(self, req):
        is_commit = req.method == "POST" and _COMMIT_PATH_RE.fullmatch(req.path) is not None
        fault, delay = self._draw_fault(is_commit)
        if delay > 0:
            time.sleep(delay)
        if fault == "reset":
            return Response(0, action="reset")
        if fault in ("429", "500", "503"):
            return self._injected_error(fault)

        now = time.time()
        with self.lock:
            client, token = self._authenticate(req, now)
            if fault == "token_expire":
                self.tokens.revoke(token)
                self.count("fault.token_expire")
                raise ApiError(401, "token_expired", "access token expired",
                               headers=[("WWW-Authenticate",
                                         'Bearer realm="shops", error="invalid_token"')])
            self._take_rate_token(client, now)

        if req.oversize:
            raise self._too_large(req.path)
        name, args = httpbase.route(_ROUTES, req.method, req.path)
        args = [urllib.parse.unquote(g) for g in args]
        if fault != "commit_drop":
            return getattr(self, name)(req, client, *args)
        # The commit runs to completion; its answer, whatever it is, is lost.
        try:
            resp = getattr(self, name)(req, client, *args)
        except httpbase.HttpError as exc:
            resp = error_response(exc)
        resp.action = "drop"
        return resp

    # -- faults, auth, rate limit -------------------------------------------

    def _draw_fault(self, is_commit):
        """One uniform draw picks at most one fault; latency is separate."""
        picked = self.faults.draw(None if is_commit else NON_COMMIT_FAULTS)
        if picked is not None and picked != "token_expire":
            with self.lock:
                self.count("fault." + picked)
        return picked, self.faults.latency()

    def _injected_error(self, kind):
        retry_after = self.faults["retry_after"]
        if kind == "429":
            return ApiError(429, "rate_limited", "too many requests (injected)",
                            headers=[("Retry-After", str(retry_after))],
                            retry_after=retry_after).response()
        if kind == "503":
            return ApiError(503, "service_unavailable", "service unavailable (injected)",
                            headers=[("Retry-After", str(retry_after))],
                            retry_after=retry_after).response()
        return ApiError(500, "internal_error", "internal error (injected)").response()

    def _authenticate(self, req, now):
        header = req.headers.get("Authorization")
        challenge = [("WWW-Authenticate", 'Bearer realm="shops"')]
        if not header:
            raise ApiError(401, "unauthorized", "missing Authorization header", headers=challenge)
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthorized", "Authorization must be 'Bearer <access_token>'",
                           headers=challenge)
        client = self.tokens.client(token, now)
        if client is None:
            raise ApiError(401, "token_expired", "access token is expired, revoked or unknown",
                           headers=[("WWW-Authenticate",
                                     'Bearer realm="shops", error="invalid_token"')])
        return client, token

    def _take_rate_token(self, client, now):
        allowed, _, wait = self.limiter.take(client, now)
        if allowed:
            return
        self.count("rate_limited")
        raise ApiError(429, "rate_limited",
                       "rate limit of %g requests/s exceeded" % self.config.rate,
                       headers=[("Retry-After", str(wait))], retry_after=wait)

    # -- bodies -------------------------------------------------------------

    @staticmethod
    def _too_large(path):
        if _PART_PATH_RE.fullmatch(path):
            return ApiError(413, "part_too_large",
                            "a part holds at most %d items and %d bytes uncompressed"
                            % (MAX_PART_ITEMS, MAX_BODY_BYTES),
                            max_items=MAX_PART_ITEMS, max_bytes=MAX_BODY_BYTES)
        return ApiError(413, "request_too_large",
                        "request body is over %d bytes uncompressed" % MAX_BODY_BYTES,
                        max_bytes=MAX_BODY_BYTES)

    def _body_bytes(self, req):
        if req.oversize:
            raise self._too_large(req.path)
        encoding = (req.headers.get("Content-Encoding") or "").strip().lower()
        data = req.body or b""
        if encoding in ("", "identity"):
            pass
        elif encoding in ("gzip", "x-gzip"):
            try:
                data = httpbase.gunzip(data, MAX_BODY_BYTES) if data else b""
            except httpbase.BodyTooLarge:
                raise self._too_large(req.path) from None
            except httpbase.BadEncoding as exc:
                raise ApiError(400, "invalid_encoding", "invalid gzip body: %s" % exc) from None
        else:
            raise ApiError(415, "unsupported_encoding",
                           "Content-Encoding '%s' is not supported; use gzip" % encoding)
        if len(data) > MAX_BODY_BYTES:
            raise self._too_large(req.path)
        return data

    def _json_object(self, req):
        body = parse_json(self._body_bytes(req))
        if type(body) is not dict:
            raise ApiError(400, "invalid_request", "request body must be a JSON object")
        return body

    # -- OAuth token --------------------------------------------------------

    def token(self, req):
        try:
            text = self._body_bytes(req).decode("utf-8")
        except UnicodeDecodeError:
            return oauth_error(400, "invalid_request", "body is not valid UTF-8")
        except ApiError as exc:
            return oauth_error(exc.status, "invalid_request", exc.message)
        params = {}
        for name, value in urllib.parse.parse_qsl(text, keep_blank_values=True):
            if name in params:
                return oauth_error(400, "invalid_request", "parameter '%s' repeated" % name)
            params[name] = value

        try:
            basic = httpbase.basic_credentials(req.headers)
        except ValueError:
            return self._invalid_client(True)
        body_creds = "client_id" in params or "client_secret" in params
        if basic is not None and body_creds:
            return oauth_error(400, "invalid_request",
                               "use either HTTP Basic or body credentials, not both")
        if basic is not None:
            client_id, secret = basic
        else:
            client_id, secret = params.get("client_id"), params.get("client_secret")
        expected = self.config.clients.get(client_id) if client_id else None
        if expected is None or secret is None or not hmac.compare_digest(
                expected.encode("utf-8"), secret.encode("utf-8")):
            return self._invalid_client(basic is not None)

        grant = params.get("grant_type")
        if not grant:
            return oauth_error(400, "invalid_request", "grant_type is required")
        if grant != "client_credentials":
            return oauth_error(400, "unsupported_grant_type",
                               "only grant_type=client_credentials is supported")

        ttl = self.config.token_ttl
        token = self.tokens.issue(client_id, ttl, time.time())
        with self.lock:
            self.count("tokens_issued")
        return Response(200, {"access_token": token, "token_type": "Bearer",
                              "expires_in": int(ttl)},
                        [("Cache-Control", "no-store"), ("Pragma", "no-cache")])

    @staticmethod
    def _invalid_client(basic_used):
        headers = [("WWW-Authenticate", 'Basic realm="shops"')] if basic_used else []
        return oauth_error(401, "invalid_client", "client authentication failed", headers)

    # -- channels and stored items ------------------------------------------

    def get_channel(self, req, client, channel_id):
        return Response(200, self._channel(channel_id).view())

    def get_product(self, req, client, channel_id, sku):
        with self.lock:
            entry = self._channel(channel_id).products.get(sku)
            if entry is None:
                raise ApiError(404, "not_found", "product '%s' not found" % sku)
            return Response(200, entry[0])

    def get_inventory(self, req, client, channel_id, sku):
        location = req.query.get("location") or DEFAULT_LOCATION
        with self.lock:
            entry = self._channel(channel_id).inventory.get((sku, location))
            if entry is None:
                raise ApiError(404, "not_found",
                               "inventory '%s' at '%s' not found" % (sku, location))
            return Response(200, entry[0])

    @staticmethod
    def _page_args(req):
        raw = req.query.get("limit")
        limit = LIST_ITEMS_DEFAULT
        if raw:
            if not _DIGITS_RE.fullmatch(raw) or not (1 <= int(raw) <= LIST_ITEMS_MAX):
                raise ApiError(400, "invalid_request",
                               "limit must be an integer 1..%d" % LIST_ITEMS_MAX, field="limit")
            limit = int(raw)
        after = None
        cursor = req.query.get("cursor")
        if cursor:
            try:
                padded = cursor + "=" * (-len(cursor) % 4)
                after = json.loads(base64.urlsafe_b64decode(padded).decode("utf-8"))
            except (ValueError, binascii.Error, UnicodeDecodeError):
                raise ShopsApp._bad_cursor()
        return limit, after

    @staticmethod
    def _page(keys, store, limit, after):
        """One page of ``store`` in ``keys`` order, after the cursor key."""
        start = bisect.bisect_right(keys, after) if after is not None else 0
        chunk = keys[start:start + limit]
        next_cursor = None
        if chunk and start + limit < len(keys):
            last = chunk[-1]
            raw = to_json(list(last) if isinstance(last, tuple) else last)
            next_cursor = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
        return Response(200, {"data": [store[k][0] for k in chunk],
                              "next_cursor": next_cursor})

    @staticmethod
    def _bad_cursor():
        return ApiError(400, "invalid_request", "invalid cursor", field="cursor")

    def list_products(self, req, client, channel_id):
        limit, after = self._page_args(req)
        if after is not None and type(after) is not str:
            raise self._bad_cursor()
        with self.lock:
            ch = self._channel(channel_id)
            return self._page(ch.product_keys(), ch.products, limit, after)

    def list_inventory(self, req, client, channel_id):
        limit, after = self._page_args(req)
        if after is not None:
            if (type(after) is not list or len(after) != 2
                    or not all(type(a) is str for a in after)):
                raise self._bad_cursor()
            after = tuple(after)
        with self.lock:
            ch = self._channel(channel_id)
            return self._page(ch.inventory_keys(), ch.inventory, limit, after)

    # -- imports ------------------------------------------------------------

    def create_import(self, req, client):
        key = req.headers.get("Idempotency-Key")
        if key is None:
            raise ApiError(400, "idempotency_key_missing", "Idempotency-Key header is required")
        if not (1 <= len(key) <= MAX_IDEMPOTENCY_KEY) or not all(" " <= c <= "~" for c in key):
            raise ApiError(400, "idempotency_key_invalid",
                           "Idempotency-Key must be 1-%d printable ASCII characters"
                           % MAX_IDEMPOTENCY_KEY)
        body = self._json_object(req)

        channel_id = body.get("channel")
        if channel_id is None or channel_id == "":
            raise ApiError(400, "invalid_request", "channel is required", field="channel")
        if type(channel_id) is not str:
            raise ApiError(400, "invalid_request", "channel must be a string", field="channel")
        mode = body.get("mode")
        if mode not in MODES:
            raise ApiError(400, "invalid_request", "mode must be 'merge' or 'replace'",
                           field="mode")
        objects = body.get("objects")
        if (type(objects) is not list or not objects
                or any(o not in OBJECTS for o in objects if type(o) is str)
                or any(type(o) is not str for o in objects)
                or len(set(objects)) != len(objects)):
            raise ApiError(400, "invalid_request",
                           "objects must be a non-empty array of distinct values among "
                           "'products' and 'inventory'", field="objects")
        label = body.get("label")
        if label is None:
            label = ""
        elif type(label) is not str:
            raise ApiError(400, "invalid_request", "label must be a string", field="label")
        elif len(label) > MAX_LABEL_CHARS:
            raise ApiError(400, "invalid_request",
                           "label must be at most %d characters" % MAX_LABEL_CHARS, field="label")
        fingerprint = _canonical_json(body)

        now = time.time()
        with self.lock:
            self._channel(channel_id)
            remembered = self.idempotency.get((client, key))
            if remembered is not None and now - remembered[2] < IDEMPOTENCY_WINDOW:
                if remembered[0] != fingerprint:
                    raise ApiError(422, "idempotency_key_reused",
                                   "Idempotency-Key was already used with a different body")
                imp = self.imports[remembered[1]]
                self._refresh_expiry(imp, now)
                self.count("create_replays")
                return Response(200, self._import_view(imp),
                                [("Idempotent-Replayed", "true"),
                                 ("Location", "/v1/imports/" + imp.id)])
            self.import_seq += 1
            imp = Import(self._new_import_id(), self.import_seq, client, channel_id, mode,
                         tuple(objects), label, now, key)
            self.imports[imp.id] = imp
            self.idempotency[(client, key)] = (fingerprint, imp.id, now)
            self.count("imports_created")
            return Response(201, self._import_view(imp),
                            [("Location", "/v1/imports/" + imp.id)])

    def get_import(self, req, client, import_id):
        with self.lock:
            imp = self._visible_import(client, import_id, time.time())
            return Response(200, self._import_view(imp))

    def list_imports(self, req, client):
        q = req.query
        status = q.get("status") or None
        if status is not None and status not in STATUSES:
            raise ApiError(400, "invalid_request",
                           "status must be one of %s" % ", ".join(STATUSES), field="status")
        prefix = q.get("label_prefix") or ""
        limit = LIST_IMPORTS_LIMIT
        if q.get("limit"):
            raw = q["limit"]
            if not _DIGITS_RE.fullmatch(raw) or not (1 <= int(raw) <= LIST_IMPORTS_LIMIT):
                raise ApiError(400, "invalid_request",
                               "limit must be an integer 1..%d" % LIST_IMPORTS_LIMIT,
                               field="limit")
            limit = int(raw)
        channel_id = q.get("channel") or None
        now = time.time()
        with self.lock:
            if channel_id is not None:
                self._channel(channel_id)
            found = []
            for imp in self.imports.values():
                if imp.client_id != client:
                    continue
                if channel_id is not None and imp.channel != channel_id:
                    continue
                self._refresh_expiry(imp, now)
                if status is not None and imp.status != status:
                    continue
                if not imp.label.startswith(prefix):
                    continue
                found.append(imp)
            found.sort(key=lambda i: i.seq, reverse=True)
            data = [self._import_view(imp) for imp in found[:limit]]
            return Response(200, {"data": data, "has_more": len(found) > limit})

    def abort_import(self, req, client, import_id):
        now = time.time()
        with self.lock:
            imp = self._visible_import(client, import_id, now)
            if imp.status == "open":
                imp.status = "aborted"
                imp.ended_at = now
                imp.release_items()
                self.count("imports_aborted")
            elif imp.status == "committing":
                raise self._committing_error("it cannot be aborted")
            elif imp.status == "committed":
                raise ApiError(409, "import_committed", "a committed import cannot be aborted")
            elif imp.status == "expired":
                raise ApiError(410, "import_expired", "import expired")
            return Response(200, {"import_id": imp.id, "status": "aborted"})

    def put_part(self, req, client, import_id, raw_number):
        if not _PART_NUMBER_RE.fullmatch(raw_number) or not (
                1 <= int(raw_number) <= MAX_PART_NUMBER):
            raise ApiError(400, "invalid_request",
                           "part number must be an integer 1..%d" % MAX_PART_NUMBER, field="n")
        number = int(raw_number)
        with self.lock:
            imp = self._visible_import(client, import_id, time.time())
            self._check_uploadable(imp)
            objects = imp.objects

        data = self._body_bytes(req)
        depth = self.config.max_json_depth
        if depth and httpbase.json_depth(data) > depth:
            raise ApiError(400, "invalid_json",
                           "request body is not valid JSON: nested deeper than %d" % depth)
        body = parse_json(data)
        if type(body) is not dict:
            raise ApiError(400, "invalid_request", "request body must be a JSON object")
        obj = body.get("object")
        if obj not in OBJECTS:
            raise ApiError(400, "invalid_request",
                           "object must be 'products' or 'inventory'", field="object")
        if obj not in objects:
            raise ApiError(400, "invalid_request",
                           "object '%s' is not one of this import's objects" % obj,
                           field="object")
        items = body.get("items")
        if type(items) is not list:
            raise ApiError(400, "invalid_request", "items must be an array", field="items")
        if not items:
            raise ApiError(400, "invalid_request", "items must not be empty", field="items")
        if len(items) > MAX_PART_ITEMS:
            raise self._too_large(req.path)

        accepted = []
        rejected = []
        reserved = self.config.reserved_sku_prefix
        if reserved:
            # a rule of this target that the contract does not state
            keep = []
            for index, item in enumerate(items):
                sku = item.get("sku") if type(item) is dict else None
                if type(sku) is str and sku.startswith(reserved):
                    rejected.append(_rejection(index, item, [_err(
                        "sku", "invalid_format",
                        "sku prefix '%s' is reserved by the channel" % reserved)]))
                else:
                    keep.append(index)
        else:
            keep = range(len(items))
        if obj == "products":
            for index in keep:
                item = items[index]
                record, instant, errors = validate_product(item)
                if errors is None:
                    accepted.append((index, record["sku"], record, instant))
                else:
                    rejected.append(_rejection(index, item, errors))
        else:
            for index in keep:
                item = items[index]
                record, instant, errors = validate_inventory(item)
                if errors is None:
                    accepted.append((index, (record["sku"], record["location"]), record,
                                     instant))
                else:
                    rejected.append(_rejection(index, item, errors))
        if reserved:
            rejected.sort(key=lambda r: r["index"])

        now = time.time()
        with self.lock:
            self._refresh_expiry(imp, now)
            self._check_uploadable(imp)
            replaced = number in imp.parts
            imp.parts[number] = Part(number, obj, accepted, len(rejected), now)
            imp.last_activity = now
            self.count("parts_uploaded")
            if replaced:
                self.count("parts_replaced")
            self.count("items_accepted", len(accepted))
            self.count("items_rejected_upload", len(rejected))
        return Response(200, {"part": number, "object": obj, "accepted": len(accepted),
                              "rejected": rejected})

    def commit(self, req, client, import_id):
        with self.lock:
            imp = self._visible_import(client, import_id, time.time())
            replay = self._commit_state_check(imp)
            if replay is not None:
                return replay

        body = self._json_object(req)
        parts = body.get("parts")
        if type(parts) is not int or not (0 <= parts <= MAX_PART_NUMBER):
            raise ApiError(400, "invalid_request",
                           "parts must be an integer 0..%d" % MAX_PART_NUMBER, field="parts")
        checkpoint = body.get("checkpoint")
        if checkpoint is not None:
            if type(checkpoint) is not str:
                raise ApiError(400, "invalid_request", "checkpoint must be a string",
                               field="checkpoint")
            if len(checkpoint.encode("utf-8", "surrogatepass")) > MAX_CHECKPOINT_BYTES:
                raise ApiError(413, "checkpoint_too_large",
                               "checkpoint must be at most %d bytes" % MAX_CHECKPOINT_BYTES,
                               max_bytes=MAX_CHECKPOINT_BYTES)

        with self.lock:
            self._refresh_expiry(imp, time.time())
            replay = self._commit_state_check(imp)
            if replay is not None:
                return replay
            uploaded = imp.parts
            missing = [n for n in range(1, parts + 1) if n not in uploaded]
            unexpected = sorted(n for n in uploaded if n > parts)
            if missing:
                extra = {"missing": missing}
                if unexpected:
                    extra["unexpected"] = unexpected
                raise ApiError(409, "parts_missing",
                               "%d of parts 1..%d were not uploaded" % (len(missing), parts),
                               **extra)
            if unexpected:
                raise ApiError(409, "parts_unexpected",
                               "parts beyond %d were uploaded" % parts, unexpected=unexpected)
            imp.status = "committing"
            snapshot = [uploaded[n] for n in sorted(uploaded)]
            delay = self.faults["commit_delay_ms"] / 1000.0

        try:
            if delay > 0:
                time.sleep(delay)
            with self.lock:
                if self.imports.get(imp.id) is not imp:    # state was reset meanwhile
                    raise ApiError(404, "not_found", "import '%s' not found" % imp.id)
                body_bytes = self._apply_commit(imp, snapshot, parts, checkpoint)
        except BaseException:
            with self.lock:
                if imp.status == "committing":
                    imp.status = "open"
            raise
        return Response(200, body_bytes)

    def _commit_state_check(self, imp):
        """Replay response for a committed import, or raise for dead states."""
        if imp.status == "committed":
            self.count("commit_replays")
            return Response(200, imp.commit_body, [("Idempotent-Replayed", "true")])
        if imp.status == "committing":
            raise self._committing_error("retry later")
        if imp.status == "aborted":
            raise ApiError(410, "import_aborted", "import was aborted")
        if imp.status == "expired":
            raise ApiError(410, "import_expired", "import expired")
        return None

    def _apply_commit(self, imp, parts, part_count, checkpoint):
        """Compute every change of the import, then apply them all. Lock held."""
        ch = self.channels[imp.channel]
        stored_products = ch.products
        stored_inventory = ch.inventory

        # Flatten in part order then index order: (part, index, key, record, instant).
        products = []
        inventory = []
        for part in parts:
            target = products if part.object == "products" else inventory
            number = part.number
            target.extend((number, index, k, record, instant)
                          for index, k, record, instant in part.items)

        rejected = {}       # (part, index) -> commit-time rejection
        with_parent = [item for item in products if "parent_sku" in item[3]]
        # How many not-rejected product items of this import carry each sku.
        import_skus = (collections.Counter(item[2] for item in products)
                       if with_parent or inventory else None)

        # parent_sku must name a stored product or a product of this import
        # that is not itself rejected: iterate until no new rejection appears.
        changed = bool(with_parent)
        while changed:
            changed = False
            for number, index, sku, record, _ in with_parent:
                if (number, index) in rejected:
                    continue
                parent = record["parent_sku"]
                if parent in stored_products or import_skus[parent] > 0:
                    continue
                rejected[(number, index)] = {
                    "part": number, "index": index, "sku": sku,
                    "errors": [_err("parent_sku", "unknown_parent",
                                    "parent product '%s' does not exist" % parent)]}
                import_skus[sku] -= 1
                changed = True
        if rejected:
            products = [item for item in products if (item[0], item[1]) not in rejected]

        # Inventory sku must name a stored product or a product of this import.
        inventory_rejected = False
        for number, index, k, _, _ in inventory:
            sku = k[0]
            if sku in stored_products or import_skus[sku] > 0:
                continue
            inventory_rejected = True
            rejected[(number, index)] = {
                "part": number, "index": index, "sku": sku,
                "errors": [_err("sku", "unknown_sku",
                                "product '%s' does not exist in the channel or the import"
                                % sku)]}
        if inventory_rejected:
            inventory = [item for item in inventory if (item[0], item[1]) not in rejected]

        product_overlay, product_applied, product_unchanged = _merge(products, stored_products)
        inventory_overlay, inventory_applied, inventory_unchanged = _merge(
            inventory, stored_inventory)

        # Replace: the channel's items the import does not hold are deactivated.
        deactivate_products = []
        deactivate_inventory = []
        if imp.mode == "replace":
            if "products" in imp.objects:
                present = {item[2] for item in products}
                deactivate_products = [k for k, (record, _) in stored_products.items()
                                       if k not in present and record["active"] is not False]
            if "inventory" in imp.objects:
                present = {item[2] for item in inventory}
                deactivate_inventory = [k for k, (record, _) in stored_inventory.items()
                                        if k not in present and record["quantity"] != 0]

        # Everything is computed: apply.
        sizes = (len(stored_products), len(stored_inventory))
        stored_products.update(product_overlay)
        stored_inventory.update(inventory_overlay)
        for k in deactivate_products:
            record, instant = stored_products[k]
            stored_products[k] = (dict(record, active=False), instant)
        for k in deactivate_inventory:
            record, instant = stored_inventory[k]
            stored_inventory[k] = (dict(record, quantity=0), instant)
        if sizes != (len(stored_products), len(stored_inventory)):
            ch.keys_changed()
        self._log_applied(imp.id, "products", product_applied)
        self._log_applied(imp.id, "inventory", inventory_applied)

        counts = {
            "applied": {"products": len(product_applied), "inventory": len(inventory_applied)},
            "unchanged": {"products": product_unchanged, "inventory": inventory_unchanged},
            "deactivated": {"products": len(deactivate_products),
                            "inventory": len(deactivate_inventory)},
        }
        committed_at = rfc3339(time.time())
        rejected_list = [rejected[k] for k in sorted(rejected)]
        body = {"import_id": imp.id, "status": "committed", "committed_at": committed_at,
                "parts": part_count}
        body.update(counts)
        body["rejected"] = rejected_list
        imp.status = "committed"
        imp.committed_at = committed_at
        imp.checkpoint = checkpoint
        imp.commit_body = to_json(body)
        imp.release_items()

        self.count("commits")
        self.count("items_rejected_commit", len(rejected_list))
        for group, by_object in counts.items():
            for obj, n in by_object.items():
                self.count("%s.%s" % (group, obj), n)
        return imp.commit_body

    # The applied-write log is kept as segments (first_seq, import_id, object,
    # records) so that logging a commit of a million items costs nothing.

    def _log_applied(self, import_id, object_name, records):
        """Record applied writes in order (seq 1, 2, ...) and journal them."""
        if not records:
            return
        first = self.applied_count + 1
        self.applied.append((first, import_id, object_name, records))
        self.applied_count += len(records)
        if self.journal is not None:
            if object_name == "products":
                # sku, import id and updated_at are validated: no escaping needed.
                head = '{"import_id":"%s","object":"products","sku":"' % import_id
                lines = ['%s%s","location":null,"updated_at":"%s","seq":%d}\n'
                         % (head, r["sku"], r["updated_at"], seq)
                         for seq, r in enumerate(records, first)]
            else:
                head = '{"import_id":"%s","object":"inventory","sku":"' % import_id
                lines = ['%s%s","location":%s,"updated_at":"%s","seq":%d}\n'
                         % (head, r["sku"], _encode_json(r["location"]), r["updated_at"], seq)
                         for seq, r in enumerate(records, first)]
            self.journal.write("".join(lines))
            self.journal.flush()

    def _applied_entries(self, since, limit):
        """Applied writes with seq > since, at most ``limit`` (None: all)."""
        out = []
        for first, import_id, object_name, records in self.applied:
            last = first + len(records) - 1
            if last <= since:
                continue
            for seq in range(max(first, since + 1), last + 1):
                if limit is not None and len(out) >= limit:
                    return out
                r = records[seq - first]
                out.append({"import_id": import_id, "object": object_name, "sku": r["sku"],
                            "location": r["location"] if object_name == "inventory" else None,
                            "updated_at": r["updated_at"], "seq": seq})
        return out

    # -- admin --------------------------------------------------------------

    def admin_health(self, req):
        return Response(200, {"status": "ok", "uptime_s": round(time.time() - self.started, 3)})

    def admin_dump(self, req):
        channel_id = req.query.get("channel") or None
        now = time.time()
        with self.lock:
            if channel_id is not None:
                channels = [self._channel(channel_id)]
            else:
                channels = [self.channels[c] for c in sorted(self.channels)]
            products = []
            inventory = []
            for ch in channels:
                for sku in ch.product_keys():
                    products.append(dict(ch.products[sku][0], channel=ch.id))
                for k in ch.inventory_keys():
                    inventory.append(dict(ch.inventory[k][0], channel=ch.id))
            imports = []
            for imp in sorted(self.imports.values(), key=lambda i: i.seq):
                if channel_id is not None and imp.channel != channel_id:
                    continue
                self._refresh_expiry(imp, now)
                view = self._import_view(imp)
                view["client_id"] = imp.client_id
                view["checkpoint_bytes"] = (len(imp.checkpoint.encode("utf-8", "surrogatepass"))
                                            if imp.checkpoint is not None else 0)
                view["accepted_items"] = sum(p.accepted for p in imp.parts.values())
                imports.append(view)
            return Response(200, {"products": products, "inventory": inventory,
                                  "imports": imports})

    def admin_stats(self, req):
        now = time.time()
        with self.lock:
            c = self.counters
            by_status = {s: 0 for s in STATUSES}
            for imp in self.imports.values():
                self._refresh_expiry(imp, now)
                by_status[imp.status] += 1
            responses = {k[7:]: v for k, v in sorted(c.items()) if k.startswith("status.")}
            faults = {kind: c.get("fault." + kind, 0)
                      for kind in ("reset", "429", "500", "503", "token_expire", "commit_drop")}
            body = {
                "uptime_s": round(now - self.started, 3),
                "cpu_s": round(time.process_time(), 3),
                "requests": c.get("requests", 0),
                "responses": responses,
                "faults": faults,
                "rate_limited": c.get("rate_limited", 0),
                "tokens_issued": c.get("tokens_issued", 0),
                "imports": by_status,
                "create_replays": c.get("create_replays", 0),
                "parts_uploaded": c.get("parts_uploaded", 0),
                "parts_replaced": c.get("parts_replaced", 0),
                "items": {"accepted": c.get("items_accepted", 0),
                          "rejected_upload": c.get("items_rejected_upload", 0),
                          "rejected_commit": c.get("items_rejected_commit", 0)},
                "commits": c.get("commits", 0),
                "commit_replays": c.get("commit_replays", 0),
                "applied": {o: c.get("applied." + o, 0) for o in OBJECTS},
                "unchanged": {o: c.get("unchanged." + o, 0) for o in OBJECTS},
                "deactivated": {o: c.get("deactivated." + o, 0) for o in OBJECTS},
                "stored": {"products": sum(len(ch.products) for ch in self.channels.values()),
                           "inventory": sum(len(ch.inventory) for ch in self.channels.values())},
                "applied_log": self.applied_count,
                "internal_errors": c.get("internal_errors", 0),
                "last_internal_error": self.last_internal_error,
            }
            return Response(200, body)

    def admin_applied(self, req):
        since = req.query.get("since") or "0"
        limit = req.query.get("limit")
        if not _DIGITS_RE.fullmatch(since) or (limit is not None
                                                 and not _DIGITS_RE.fullmatch(limit)):
            raise ApiError(400, "invalid_request", "since and limit must be integers")
        with self.lock:
            entries = self._applied_entries(int(since), None if limit is None else int(limit))
            return Response(200, entries)

    def admin_get_faults(self, req):
        with self.lock:
            return Response(200, self.faults.view())

    def admin_set_faults(self, req):
        body = parse_json(self._body_bytes(req))
        return Response(200, self.faults.configure(body))

    def admin_expire(self, req):
        import_id = req.query.get("import_id")
        if not import_id:
            raise ApiError(400, "invalid_request", "import_id is required", field="import_id")
        now = time.time()
        with self.lock:
            imp = self.imports.get(import_id)
            if imp is None:
                raise ApiError(404, "not_found", "import '%s' not found" % import_id)
            self._refresh_expiry(imp, now)
            if imp.status != "open":
                raise ApiError(409, "import_not_open", "import is %s" % imp.status,
                               import_status=imp.status)
            imp.status = "expired"
            imp.ended_at = now
            imp.release_items()
            self.count("imports_expired")
            return Response(200, self._import_view(imp))

    def admin_reset(self, req):
        with self.lock:
            self._reset_state()
            return Response(200, {"status": "reset"})


# ---------------------------------------------------------------------------
# HTTP layer
# ---------------------------------------------------------------------------

class Handler(httpbase.Handler):
    """The HTTP side (plumbing in httpbase.Handler): a Request to ShopsApp, its
    Response back; HEAD is answered as GET without a body."""

    server_version = "shops-emulator/1"
    methods = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
    max_body = MAX_WIRE_BYTES

    def handle_request(self):
        body = self.read_body()
        req = Request(self.method, self.url_path, httpbase.query_params(self.query),
                      self.headers, body, self.body_oversize)
        resp = self.app.handle(req)
        if resp.action is not None:    # "reset" or "drop"
            self.reset_connection()
            return
        self.send_json(resp.status, resp.body, resp.headers)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def _parse_client(text):
    cid, sep, secret = text.partition(":")
    if not sep or not cid or not secret:
        raise argparse.ArgumentTypeError("--client must be ID:SECRET")
    return cid, secret


def _parse_channel(text):
    fields = text.split(":")
    if not fields[0] or len(fields) > 3:
        raise argparse.ArgumentTypeError("--channel must be ID[:NAME[:CURRENCY]]")
    name = fields[1] if len(fields) > 1 and fields[1] else fields[0]
    currency = fields[2] if len(fields) > 2 and fields[2] else "BRL"
    if not _CURRENCY_RE.fullmatch(currency):
        raise argparse.ArgumentTypeError("channel currency must be 3 upper-case letters")
    return fields[0], name, currency


def build_arg_parser():
    p = argparse.ArgumentParser(description="Shops import API v1 emulator")
    httpbase.add_server_arguments(p)  # --host --port --port-file --tls-cert --tls-key
    p.add_argument("--client", action="append", type=_parse_client, metavar="ID:SECRET",
                   help="OAuth client (repeatable; default demo-client:demo-secret)")
    p.add_argument("--channel", action="append", type=_parse_channel,
                   metavar="ID[:NAME[:CURRENCY]]",
                   help="channel (repeatable; default store-br:Loja BR:BRL)")
    p.add_argument("--rate", type=float, default=5.0, help="requests/s per client; 0 disables")
    p.add_argument("--burst", type=int, default=10, help="rate-limit burst")
    p.add_argument("--token-ttl", type=float, default=3600.0, help="access token lifetime (s)")
    p.add_argument("--import-ttl", type=float, default=86400.0,
                   help="open import lifetime after creation or last part upload (s)")
    p.add_argument("--seed", type=int, help="seed for fault draws and import ids")
    p.add_argument("--journal", help="append one JSON line per applied item write")
    p.add_argument("--max-json-depth", type=int, default=0,
                   help="refuse a part nested deeper than this as 400 invalid_json, as a "
                        "target with a stricter parser would (0: no limit of its own)")
    p.add_argument("--reserved-sku-prefix", default="",
                   help="reject items whose sku starts with this at upload (sku "
                        "invalid_format), as a target with a rule beyond the contract would")
    return p


def main(argv=None):
    args = build_arg_parser().parse_args(argv)
    if (args.rate < 0 or args.burst < 1 or args.token_ttl <= 0 or args.import_ttl <= 0
            or args.max_json_depth < 0):
        raise SystemExit("shops-emulator: --rate >= 0, --burst >= 1, TTLs > 0, "
                         "--max-json-depth >= 0 required")
    clients = dict(args.client or [("demo-client", "demo-secret")])
    channels = args.channel or [("store-br", "Loja BR", "BRL")]

    config = Config(clients, channels, args.rate, args.burst, args.token_ttl,
                    args.import_ttl, args.seed, args.journal, args.max_json_depth,
                    args.reserved_sku_prefix)
    app = ShopsApp(config)
    # Millions of long-lived item objects: collect the young generation less
    # often so bulk uploads and commits do not spend their time in the GC.
    gc.freeze()
    gc.set_threshold(50000, 20, 20)

    def close():
        if app.journal is not None:
            app.journal.close()

    return httpbase.run_server(
        args, Handler, app,
        lambda url: "shops-emulator listening on %s (clients=%d channels=%d rate=%g burst=%d)"
        % (url, len(clients), len(channels), args.rate, args.burst), on_close=close)


if __name__ == "__main__":
    sys.exit(main())
