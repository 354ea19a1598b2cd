#!/usr/bin/env python3
"""crm360_emulator.py - local emulator of the CRM360 ingestion API, v1.

Implements the contract in docs/api/crm360.md for the integration tests and
benchmarks of destination-crm360. Standard library only.

Layout of this file, top to bottom:

* validation: pure functions that turn one input record into a `Prepared`
  value (clean record + sort key) or a list of per-field errors;
* `Store`: the records, last-write-wins and delete rules, versions, listing;
* `IdempotencyStore`, `Stats`: request-level state (rate limiting and fault
  injection come from httpbase.py);
* `Emulator`: owns all state behind one lock and applies whole batches;
* `Handler`: the API over httpbase.Handler (routing, auth, envelope checks,
  fault injection);
* `main()`: command-line parsing and server start-up.

Invariants:

* Every state change happens while holding `Emulator.lock`. A batch is applied
  and its idempotency result stored in the same critical section, so a batch
  is either fully visible (and replayable) or not at all.
* Validation is pure and runs outside the lock; only the `unknown_customer`
  check depends on state and runs at apply time.
* Time fields are compared as instants: `parse_instant()` maps an RFC 3339
  string to `(epoch_seconds, fraction_digits)`, a tuple whose natural order is
  the order of the instants.

The README next to this file lists the choices made where the contract is
silent, the command-line flags, the admin endpoints and fault injection.
"""

import argparse
import base64
import hashlib
import hmac
import json
import operator
import os
import random
import re
import sys
import threading
import time
import traceback
from bisect import bisect_left, bisect_right
from collections import Counter, deque
from datetime import date, datetime, timezone
from urllib.parse import parse_qs, unquote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import httpbase  # noqa: E402  (integration/httpbase.py: server plumbing)
from httpbase import encode_json, error_body, parse_json  # noqa: E402

# ---------------------------------------------------------------------------
# Contract constants
# ---------------------------------------------------------------------------

OBJECTS = ("customers", "orders")
SCOPES = ("read", "write")

MAX_RECORDS = 1000
MAX_BYTES = 8 * 1024 * 1024  # uncompressed body
MAX_ATTRIBUTES_BYTES = 16 * 1024
MAX_TAGS = 50
MAX_TAG_CHARS = 64
MIN_ITEMS = 1
MAX_ITEMS = 500
MAX_QUANTITY = 2**31 - 1
MAX_EMAIL_CHARS = 254
MAX_EMAIL_LOCAL_CHARS = 64

DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000

# Bodies above MAX_BYTES are read and discarded up to this size so that the
# client gets a clean 413; anything bigger is answered without being read and
# the connection is closed.
DRAIN_LIMIT = 64 * 1024 * 1024

IDEMPOTENCY_TTL = 24 * 3600
IN_USE_RETRY_AFTER = 1
IDLE_TIMEOUT = 120

ORDER_STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled", "returned")
_ORDER_STATUS_SET = frozenset(ORDER_STATUSES)

# Record error codes.
MISSING_FIELD = "missing_field"
INVALID_TYPE = "invalid_type"
INVALID_FORMAT = "invalid_format"
TOO_LONG = "too_long"
OUT_OF_RANGE = "out_of_range"
UNKNOWN_CUSTOMER = "unknown_customer"
INVALID_ENUM = "invalid_enum"

# Record result statuses.
CREATED = "created"
UPDATED = "updated"
UNCHANGED = "unchanged"
STALE = "stale"
REJECTED = "rejected"
DELETED = "deleted"
NOT_FOUND = "not_found"
APPLIED_STATUSES = frozenset((CREATED, UPDATED, DELETED))

UPSERT = "upsert"
DELETE = "delete"

_COMPACT = (",", ":")
# Reused encoders: json.dumps() with non-default options builds a new encoder
# on every call, which shows up when a million records go through.
_ENCODER = json.JSONEncoder(separators=_COMPACT)
_UTF8_ENCODER = json.JSONEncoder(separators=_COMPACT, ensure_ascii=False)
_CANONICAL_ENCODER = json.JSONEncoder(separators=_COMPACT, sort_keys=True)

# ---------------------------------------------------------------------------
# Validation (pure)
# ---------------------------------------------------------------------------

_RFC3339_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
_EMAIL_RE = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})"
)
_E164_RE = re.compile(r"\+[1-9][0-9]{6,14}")
_DOCUMENT_RE = re.compile(r"[0-9]{11}|[0-9]{14}")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_DECIMAL_RE = re.compile(r"(-?)([0-9]+)(?:\.([0-9]{1,2}))?")
_IDEMPOTENCY_KEY_RE = re.compile(r"[\x21-\x7e]{1,255}")

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_CPF_WEIGHTS_1 = tuple(range(10, 1, -1))
_CPF_WEIGHTS_2 = tuple(range(11, 1, -1))
_CNPJ_WEIGHTS_1 = (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
_CNPJ_WEIGHTS_2 = (6,) + _CNPJ_WEIGHTS_1

# Batches often repeat timestamps; parsed instants are memoised in a bounded
# dict (cleared when full, which is cheaper than LRU bookkeeping).
_INSTANT_CACHE = {}
_INSTANT_CACHE_MAX = 1 << 16


def parse_instant(text):
    """Return `(epoch_seconds, fraction_digits)` for a strict RFC 3339
    date-time, or None. Fraction digits have trailing zeros removed, so equal
    instants give equal keys and tuple order is instant order."""
    instant = _INSTANT_CACHE.get(text)
    if instant is None:
        instant = _parse_instant(text)
        if instant is not None:
            if len(_INSTANT_CACHE) >= _INSTANT_CACHE_MAX:
                _INSTANT_CACHE.clear()
            _INSTANT_CACHE[text] = instant
    return instant


def _parse_instant(text):
    m = _RFC3339_RE.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second, frac, sign, off_h, off_m = m.groups()
    try:
        days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    hour, minute, second = int(hour), int(minute), int(second)
    if hour > 23 or minute > 59 or second > 59:
        return None
    seconds = ((days * 24 + hour) * 60 + minute) * 60 + second
    if sign is not None:
        off_h, off_m = int(off_h), int(off_m)
        if off_h > 23 or off_m > 59:
            return None
        offset = (off_h * 60 + off_m) * 60
        seconds = seconds - offset if sign == "+" else seconds + offset
    return (seconds, frac.rstrip("0") if frac else "")


def parse_cents(text):
    """Return the value of a contract decimal string in cents, or None when
    the string is not `-?digits[.d[d]]`. Negative values are returned as such
    so the caller can tell `out_of_range` from `invalid_format`."""
    m = _DECIMAL_RE.fullmatch(text)
    if m is None:
        return None
    sign, whole, frac = m.groups()
    cents = int(whole) * 100 + (int(frac.ljust(2, "0")) if frac else 0)
    return -cents if sign else cents


def valid_email(text):
    if len(text) > MAX_EMAIL_CHARS or _EMAIL_RE.fullmatch(text) is None:
        return False
    return text.index("@") <= MAX_EMAIL_LOCAL_CHARS


def _cpf_ok(digits):
    if sum(map(operator.mul, digits, _CPF_WEIGHTS_1)) * 10 % 11 % 10 != digits[9]:
        return False
    return sum(map(operator.mul, digits, _CPF_WEIGHTS_2)) * 10 % 11 % 10 == digits[10]


def _cnpj_check_digit(digits, weights):
    rest = sum(map(operator.mul, digits, weights)) % 11
    return 0 if rest < 2 else 11 - rest


def _cnpj_ok(digits):
    return (_cnpj_check_digit(digits, _CNPJ_WEIGHTS_1) == digits[12]
            and _cnpj_check_digit(digits, _CNPJ_WEIGHTS_2) == digits[13])


def valid_document(text):
    """Brazilian CPF (11 digits) or CNPJ (14 digits), digits only, with valid
    check digits. Numbers made of one repeated digit are rejected: they pass
    the arithmetic but are not issued."""
    if _DOCUMENT_RE.fullmatch(text) is None or text.count(text[0]) == len(text):
        return False
    digits = [b - 48 for b in text.encode("ascii")]
    return _cpf_ok(digits) if len(digits) == 11 else _cnpj_ok(digits)


def _error(field, code, message):
    return {"field": field, "code": code, "message": message}


def _required_string(obj, key, errors, max_chars=None, field=None):
    """A required string: absent, null and "" are `missing_field`."""
    field = field or key
    value = obj.get(key)
    if value is None or value == "":
        errors.append(_error(field, MISSING_FIELD, "is required"))
        return None
    if type(value) is not str:
        errors.append(_error(field, INVALID_TYPE, "must be a string"))
        return None
    if max_chars is not None and len(value) > max_chars:
        errors.append(_error(field, TOO_LONG, f"must be at most {max_chars} characters"))
        return None
    return value


def _optional_string(obj, key, errors, max_chars=None):
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is not str:
        errors.append(_error(key, INVALID_TYPE, "must be a string"))
        return None
    if max_chars is not None and len(value) > max_chars:
        errors.append(_error(key, TOO_LONG, f"must be at most {max_chars} characters"))
        return None
    return value


def _time_field(obj, key, errors, required):
    """Return `(text, instant)`; `(None, None)` when absent or invalid."""
    value = obj.get(key)
    if value is None or (required and value == ""):
        if required:
            errors.append(_error(key, MISSING_FIELD, "is required"))
        return None, None
    if type(value) is not str:
        errors.append(_error(key, INVALID_TYPE, "must be an RFC 3339 string"))
        return None, None
    instant = parse_instant(value)
    if instant is None:
        errors.append(_error(key, INVALID_FORMAT,
                             "not an RFC 3339 date-time (needs T, seconds and an offset)"))
        return None, None
    return value, instant


def _decimal_field(obj, key, errors, field):
    """A required non-negative decimal string with at most 2 fraction digits."""
    value = obj.get(key)
    if value is None or value == "":
        errors.append(_error(field, MISSING_FIELD, "is required"))
        return None
    if type(value) is not str:
        errors.append(_error(field, INVALID_TYPE, "must be a decimal string such as \"199.90\""))
        return None
    cents = parse_cents(value)
    if cents is None:
        errors.append(_error(field, INVALID_FORMAT,
                             "must be a decimal with at most 2 fraction digits"))
        return None
    if cents < 0:
        errors.append(_error(field, OUT_OF_RANGE, "must be >= 0"))
        return None
    return value


def _tags_field(rec, errors):
    tags = rec.get("tags")
    if tags is None:
        return None
    if type(tags) is not list:
        errors.append(_error("tags", INVALID_TYPE, "must be an array of strings"))
        return None
    if len(tags) > MAX_TAGS:
        errors.append(_error("tags", OUT_OF_RANGE, f"at most {MAX_TAGS} tags"))
        return None
    for i, tag in enumerate(tags):
        if type(tag) is not str:
            errors.append(_error(f"tags[{i}]", INVALID_TYPE, "must be a string"))
        elif len(tag) > MAX_TAG_CHARS:
            errors.append(_error(f"tags[{i}]", TOO_LONG,
                                 f"must be at most {MAX_TAG_CHARS} characters"))
    return tags


def _attributes_field(rec, errors):
    attributes = rec.get("attributes")
    if attributes is None:
        return None
    if type(attributes) is not dict:
        errors.append(_error("attributes", INVALID_TYPE, "must be an object"))
        return None
    size = len(_UTF8_ENCODER.encode(attributes).encode("utf-8", "surrogatepass"))
    if size > MAX_ATTRIBUTES_BYTES:
        errors.append(_error("attributes", TOO_LONG,
                             f"serialized size {size} exceeds {MAX_ATTRIBUTES_BYTES} bytes"))
        return None
    return attributes


def _items_field(rec, errors):
    items = rec.get("items")
    if items is None:
        errors.append(_error("items", MISSING_FIELD, "is required"))
        return None
    if type(items) is not list:
        errors.append(_error("items", INVALID_TYPE, "must be an array"))
        return None
    if not MIN_ITEMS <= len(items) <= MAX_ITEMS:
        errors.append(_error("items", OUT_OF_RANGE,
                             f"must have {MIN_ITEMS} to {MAX_ITEMS} items"))
        return None
    clean = []
    for i, item in enumerate(items):
        prefix = f"items[{i}]"
        if type(item) is not dict:
            errors.append(_error(prefix, INVALID_TYPE, "must be an object"))
            continue
        sku = _required_string(item, "sku", errors, field=prefix + ".sku")
        quantity = item.get("quantity")
        if quantity is None:
            errors.append(_error(prefix + ".quantity", MISSING_FIELD, "is required"))
        elif type(quantity) is not int:  # also rejects JSON true/false and 2.0
            errors.append(_error(prefix + ".quantity", INVALID_TYPE, "must be an integer"))
        elif not 1 <= quantity <= MAX_QUANTITY:
            errors.append(_error(prefix + ".quantity", OUT_OF_RANGE,
                                 f"must be between 1 and {MAX_QUANTITY}"))
        unit_price = _decimal_field(item, "unit_price", errors, prefix + ".unit_price")
        clean.append({"sku": sku, "quantity": quantity, "unit_price": unit_price})
    return clean


class Prepared:
    """One validated input record.

    For accepted records `errors` is None, `record` is the clean record to
    store (known fields only, in schema order) and `instant` its LWW key. For
    deletes `record` is the raw `deleted_at`. `customer` is the order's
    customer key. Rejected records keep the echoed `external_id`/`brand`
    (strings only) and their `errors`.
    """

    __slots__ = ("external_id", "brand", "instant", "record", "customer", "errors")

    def __init__(self, external_id, brand, instant=None, record=None, customer=None,
                 errors=None):
        self.external_id = external_id
        self.brand = brand
        self.instant = instant
        self.record = record
        self.customer = customer
        self.errors = errors


def _rejected(rec, errors):
    ext = rec.get("external_id")
    brand = rec.get("brand")
    return Prepared(ext if type(ext) is str else None, brand if type(brand) is str else None,
                    errors=errors)


def _not_an_object():
    return Prepared(None, None, errors=[_error("", INVALID_TYPE, "record must be an object")])


def prepare_customer(rec):
    if type(rec) is not dict:
        return _not_an_object()
    errors = []
    external_id = _required_string(rec, "external_id", errors, 128)
    brand = _required_string(rec, "brand", errors, 64)
    email = _required_string(rec, "email", errors)
    if email is not None and not valid_email(email):
        errors.append(_error("email", INVALID_FORMAT, "not an email address"))
    name = _optional_string(rec, "name", errors, 256)
    phone = _optional_string(rec, "phone", errors)
    if phone is not None and _E164_RE.fullmatch(phone) is None:
        errors.append(_error("phone", INVALID_FORMAT, "not an E.164 phone number"))
    document = _optional_string(rec, "document", errors)
    if document is not None and not valid_document(document):
        errors.append(_error("document", INVALID_FORMAT,
                             "not a valid CPF (11 digits) or CNPJ (14 digits)"))
    tags = _tags_field(rec, errors)
    attributes = _attributes_field(rec, errors)
    created_at, _ = _time_field(rec, "created_at", errors, required=False)
    updated_at, instant = _time_field(rec, "updated_at", errors, required=True)
    if errors:
        return _rejected(rec, errors)

    record = {"external_id": external_id, "brand": brand, "email": email.lower()}
    for key, value in (("name", name), ("phone", phone), ("document", document),
                       ("tags", tags), ("attributes", attributes),
                       ("created_at", created_at)):
        if value is not None:
            record[key] = value
    record["updated_at"] = updated_at
    return Prepared(external_id, brand, instant, record)


def prepare_order(rec):
    if type(rec) is not dict:
        return _not_an_object()
    errors = []
    external_id = _required_string(rec, "external_id", errors, 128)
    brand = _required_string(rec, "brand", errors, 64)
    customer = _required_string(rec, "customer_external_id", errors, 128)
    status = _required_string(rec, "status", errors)
    if status is not None and status not in _ORDER_STATUS_SET:
        errors.append(_error("status", INVALID_ENUM,
                             "must be one of " + ", ".join(ORDER_STATUSES)))
    currency = _required_string(rec, "currency", errors)
    if currency is not None and _CURRENCY_RE.fullmatch(currency) is None:
        errors.append(_error("currency", INVALID_FORMAT,
                             "must be an upper-case ISO 4217 code such as BRL"))
    total = _decimal_field(rec, "total", errors, "total")
    items = _items_field(rec, errors)
    placed_at, _ = _time_field(rec, "placed_at", errors, required=True)
    updated_at, instant = _time_field(rec, "updated_at", errors, required=True)
    if errors:
        return _rejected(rec, errors)

    record = {"external_id": external_id, "brand": brand, "customer_external_id": customer,
              "status": status, "currency": currency, "total": total, "items": items,
              "placed_at": placed_at, "updated_at": updated_at}
    return Prepared(external_id, brand, instant, record, customer=customer)


def prepare_delete(rec):
    if type(rec) is not dict:
        return _not_an_object()
    errors = []
    external_id = _required_string(rec, "external_id", errors, 128)
    brand = _required_string(rec, "brand", errors, 64)
    deleted_at, instant = _time_field(rec, "deleted_at", errors, required=True)
    if errors:
        return _rejected(rec, errors)
    return Prepared(external_id, brand, instant, deleted_at)


_PREPARERS = {
    ("customers", UPSERT): prepare_customer,
    ("orders", UPSERT): prepare_order,
    ("customers", DELETE): prepare_delete,
    ("orders", DELETE): prepare_delete,
}


def canonical_content(obj, record):
    """A string equal for two records exactly when their content is equal:
    time fields compared as instants, decimals by value, object keys unordered,
    JSON types distinguished (true is not 1)."""
    content = dict(record)
    for key in ("created_at", "updated_at", "placed_at"):
        if key in content:
            content[key] = parse_instant(content[key])
    if obj == "orders":
        content["total"] = parse_cents(content["total"])
        content["items"] = [
            {"sku": it["sku"], "quantity": it["quantity"],
             "unit_price": parse_cents(it["unit_price"])}
            for it in content["items"]
        ]
    return _CANONICAL_ENCODER.encode(content)


# ---------------------------------------------------------------------------
# Record store
# ---------------------------------------------------------------------------


class StoredRecord:
    """A stored record. `doc` is the compact JSON of the clean record (kept as
    text to hold millions of records in little memory). `instant` is the LWW
    key: `updated_at`, or `deleted_at` once deleted."""

    __slots__ = ("doc", "version", "instant", "deleted", "deleted_at")

    def __init__(self, doc, instant):
        self.doc = doc
        self.version = 1
        self.instant = instant
        self.deleted = False
        self.deleted_at = None


def _encode_record(record):
    return _ENCODER.encode(record)


class Store:
    """Records of one workspace, keyed `object -> brand -> external_id`.

    Not thread-safe: callers hold `Emulator.lock`."""

    def __init__(self):
        self.clear()

    def clear(self):
        self.records = {obj: {} for obj in OBJECTS}
        self.generation = dict.fromkeys(OBJECTS, 0)
        self._index_cache = {}

    def get(self, obj, brand, external_id):
        bucket = self.records[obj].get(brand)
        return None if bucket is None else bucket.get(external_id)

    def customer_exists(self, brand, external_id):
        stored = self.get("customers", brand, external_id)
        return stored is not None and not stored.deleted

    def upsert(self, obj, prep):
        """Apply one upsert with last-write-wins; return its result status."""
        bucket = self.records[obj].get(prep.brand)
        if bucket is None:
            bucket = self.records[obj][prep.brand] = {}
        current = bucket.get(prep.external_id)
        if current is None:
            bucket[prep.external_id] = StoredRecord(_encode_record(prep.record), prep.instant)
            self.generation[obj] += 1
            return CREATED
        if current.deleted:
            # A tombstone keeps deleted_at as its LWW key; only a newer
            # upsert brings the record back, continuing its version.
            if prep.instant <= current.instant:
                return STALE
            current.deleted = False
            current.deleted_at = None
            status = CREATED
        elif prep.instant < current.instant:
            return STALE
        elif prep.instant == current.instant and self._same_content(obj, prep.record, current):
            return UNCHANGED
        else:
            status = UPDATED
        current.doc = _encode_record(prep.record)
        current.version += 1
        current.instant = prep.instant
        self.generation[obj] += 1
        return status

    @staticmethod
    def _same_content(obj, record, stored):
        # Only reached on an updated_at tie, so the cost of decoding the
        # stored record is paid rarely.
        return canonical_content(obj, record) == canonical_content(obj, json.loads(stored.doc))

    def delete(self, obj, prep):
        """Apply one delete; a tie with the stored `updated_at` deletes."""
        current = self.get(obj, prep.brand, prep.external_id)
        if current is None or current.deleted:
            return NOT_FOUND
        if prep.instant < current.instant:
            return STALE
        current.deleted = True
        current.deleted_at = prep.record
        current.instant = prep.instant
        current.version += 1
        self.generation[obj] += 1
        return DELETED

    @staticmethod
    def public(stored):
        """The record as the API returns it: stored fields plus `version`."""
        record = json.loads(stored.doc)
        record["version"] = stored.version
        return record

    def _sorted_index(self, obj, brand):
        """Live records ordered by `(updated_at, external_id, brand)`, cached
        until the next write to `obj`."""
        cache_key = (obj, brand)
        cached = self._index_cache.get(cache_key)
        if cached is not None and cached[0] == self.generation[obj]:
            return cached[1]
        if brand is None:
            buckets = self.records[obj].items()
        else:
            buckets = [(brand, self.records[obj].get(brand, {}))]
        index = [
            (stored.instant[0], stored.instant[1], ext, b)
            for b, bucket in buckets
            for ext, stored in bucket.items()
            if not stored.deleted
        ]
        index.sort()
        self._index_cache = {k: v for k, v in self._index_cache.items()
                             if v[0] == self.generation[k[0]]}
        self._index_cache[cache_key] = (self.generation[obj], index)
        return index

    def list_page(self, obj, brand, since, after, limit):
        """Return `(records, last_position_or_None_when_no_more)`."""
        index = self._sorted_index(obj, brand)
        start = 0
        if since is not None:
            start = bisect_left(index, since)
        if after is not None:
            start = max(start, bisect_right(index, after))
        page = index[start:start + limit]
        records = [self.public(self.records[obj][b][ext]) for _, _, ext, b in page]
        more = start + limit < len(index)
        return records, (page[-1] if more and page else None)

    def dump(self):
        out = {}
        for obj in OBJECTS:
            rows = []
            for brand in sorted(self.records[obj]):
                bucket = self.records[obj][brand]
                for ext in sorted(bucket):
                    stored = bucket[ext]
                    record = self.public(stored)
                    record["deleted"] = stored.deleted
                    if stored.deleted:
                        record["deleted_at"] = stored.deleted_at
                    rows.append(record)
            out[obj] = rows
        return out

    def live_counts(self):
        return {obj: sum(1 for bucket in self.records[obj].values()
                         for stored in bucket.values() if not stored.deleted)
                for obj in OBJECTS}


# ---------------------------------------------------------------------------
# Request-level state
# ---------------------------------------------------------------------------


class IdempotencyEntry:
    __slots__ = ("fingerprint", "status", "body")

    def __init__(self, fingerprint):
        self.fingerprint = fingerprint
        self.status = None
        self.body = None  # None while the first request is in flight


class IdempotencyStore:
    """Idempotency keys per API key, expiring `ttl` seconds after first use.

    `begin()` answers one of NEW (entry reserved, in flight), REPLAY (entry
    done), IN_USE (same body still in flight) or REUSED (different
    fingerprint). Not thread-safe: callers hold `Emulator.lock`."""

    NEW, REPLAY, IN_USE, REUSED = "new", "replay", "in_use", "reused"

    def __init__(self, ttl):
        self.ttl = ttl
        self.clear()

    def clear(self):
        self._entries = {}
        self._expiry = deque()  # (expires_at, slot, entry) in insertion order

    def _expire(self, now):
        while self._expiry and self._expiry[0][0] <= now:
            _, slot, entry = self._expiry.popleft()
            if self._entries.get(slot) is entry:
                del self._entries[slot]

    def begin(self, api_key, key, fingerprint, now):
        self._expire(now)
        slot = (api_key, key)
        entry = self._entries.get(slot)
        if entry is not None:
            if entry.fingerprint != fingerprint:
                return self.REUSED, None
            if entry.body is None:
                return self.IN_USE, None
            return self.REPLAY, entry
        entry = IdempotencyEntry(fingerprint)
        self._entries[slot] = entry
        self._expiry.append((now + self.ttl, slot, entry))
        return self.NEW, entry

    @staticmethod
    def finish(entry, status, body):
        entry.status = status
        entry.body = body

    def abandon(self, api_key, key, entry):
        """Forget an in-flight entry whose request did not complete."""
        slot = (api_key, key)
        if self._entries.get(slot) is entry and entry.body is None:
            del self._entries[slot]

    def __len__(self):
        return len(self._entries)


# Injected faults (POST /_admin/faults), stacked in this order.
FAULT_KINDS = (
    ("rate_429", "429"),
    ("rate_500", "500"),
    ("rate_503", "503"),
    ("rate_reset", "reset"),
    ("rate_commit_drop", "commit_drop"),
)


class Stats:
    def __init__(self):
        self.clear()

    def clear(self):
        self.requests = Counter()
        self.records = Counter()
        self.faults = Counter()
        self.batches_applied = 0
        self.replays = 0


class BatchIds:
    """Monotonic ULIDs prefixed with `b_`."""

    _ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

    def __init__(self, seed):
        self._rng = random.Random(seed)
        self._last = 0

    def next(self):
        value = (int(time.time() * 1000) << 80) | self._rng.getrandbits(80)
        if value <= self._last:
            value = self._last + 1
        self._last = value
        chars = []
        for _ in range(26):
            chars.append(self._ALPHABET[value & 31])
            value >>= 5
        return "b_" + "".join(reversed(chars))


def utc_now_rfc3339():
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------------------
# Emulator state
# ---------------------------------------------------------------------------


class ApiKey:
    __slots__ = ("token", "scopes")

    def __init__(self, token, scopes):
        self.token = token
        self.scopes = scopes


class Emulator:
    """All state of one emulated workspace, guarded by `lock`."""

    def __init__(self, workspace, keys, rate, burst, seed, journal_path, idempotency_ttl,
                 max_json_depth=0):
        self.workspace = workspace
        self.max_json_depth = max_json_depth
        self.keys = keys
        self.lock = threading.Lock()
        self.store = Store()
        self.idempotency = IdempotencyStore(idempotency_ttl)
        self.limiter = httpbase.RateLimiter(rate, burst)
        self.faults = httpbase.FaultInjector(seed, FAULT_KINDS)
        self.stats = Stats()
        self.batch_ids = BatchIds(seed)
        self.applied = []  # (object, brand, external_id, updated_at, status, batch_id, seq)
        self.journal = open(journal_path, "a", encoding="utf-8") if journal_path else None

    def close(self):
        if self.journal is not None:
            self.journal.close()
            self.journal = None

    def lookup_key(self, token):
        raw = token.encode("latin-1", "replace")
        for key in self.keys:
            if hmac.compare_digest(raw, key.token.encode("latin-1", "replace")):
                return key
        return None

    def reset(self):
        with self.lock:
            self.store.clear()
            self.idempotency.clear()
            self.limiter.clear()
            self.faults.reset()
            self.stats.clear()
            self.applied = []
            if self.journal is not None:
                self.journal.seek(0)
                self.journal.truncate()
                self.journal.flush()

    def apply_batch(self, obj, op, prepared):
        """Apply a validated batch and return `(results, batch_id,
        committed_at)`. Caller holds `lock`."""
        batch_id = self.batch_ids.next()
        committed_at = utc_now_rfc3339()
        store = self.store
        results = []
        applied = []
        for prep in prepared:
            errors = prep.errors
            if errors is not None:
                status = REJECTED
            elif op == DELETE:
                status = store.delete(obj, prep)
            elif obj == "orders" and not store.customer_exists(prep.brand, prep.customer):
                status = REJECTED
                errors = [_error("customer_external_id", UNKNOWN_CUSTOMER,
                                 "no customer with this external_id and brand")]
            else:
                status = store.upsert(obj, prep)
            result = {"external_id": prep.external_id, "brand": prep.brand, "status": status}
            if errors is not None:
                result["errors"] = errors
            results.append(result)
            if status in APPLIED_STATUSES:
                when = prep.record if op == DELETE else prep.record["updated_at"]
                applied.append((obj, prep.brand, prep.external_id, when, status, batch_id,
                                len(self.applied) + len(applied) + 1))
        self.applied.extend(applied)
        if self.journal is not None and applied:
            self.journal.write("".join(
                _ENCODER.encode(applied_entry(a)) + "\n" for a in applied))
            self.journal.flush()
        self.stats.batches_applied += 1
        self.stats.records.update(r["status"] for r in results)
        return results, batch_id, committed_at

    def stats_snapshot(self):
        stats = self.stats
        return {
            "requests_total": sum(stats.requests.values()),
            "requests_by_status": dict(sorted(stats.requests.items())),
            "batches_applied": stats.batches_applied,
            "records_by_status": dict(sorted(stats.records.items())),
            "faults_injected": dict(sorted(stats.faults.items())),
            "idempotent_replays": stats.replays,
            "idempotency_keys": len(self.idempotency),
            "applied_writes": len(self.applied),
            "records_live": self.store.live_counts(),
        }


def applied_entry(entry):
    obj, brand, external_id, updated_at, status, batch_id, seq = entry
    return {"object": obj, "brand": brand, "external_id": external_id,
            "updated_at": updated_at, "status": status, "batch_id": batch_id, "seq": seq}


def encode_cursor(position, brand, since):
    raw = json.dumps([list(position), brand, list(since) if since else None],
                     separators=_COMPACT)
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(text):
    """Return `(position, brand, since)` or None when the cursor is invalid."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        position, brand, since = json.loads(raw.decode("utf-8"))
        secs, frac, ext, pos_brand = position
        if not (type(secs) is int and type(frac) is str and type(ext) is str
                and type(pos_brand) is str and (brand is None or type(brand) is str)):
            return None
        if since is not None:
            since = (int(since[0]), str(since[1]))
        return (secs, frac, ext, pos_brand), brand, since
    except (ValueError, TypeError, IndexError, UnicodeDecodeError):
        return None


# ---------------------------------------------------------------------------
# HTTP layer
# ---------------------------------------------------------------------------

_BATCH_ROUTE = re.compile(r"/v1/(customers|orders):(batchUpsert|batchDelete)")
_RECORD_ROUTE = re.compile(r"/v1/(customers|orders)/([^/]+)/([^/]+)")
_LIST_ROUTE = re.compile(r"/v1/(customers|orders)")

class Handler(httpbase.Handler):
    """One connection (plumbing in httpbase.Handler). Per-request state is
    reset by `_begin()`."""

    server_version = "crm360-emulator/1"
    max_body = MAX_BYTES
    drain_limit = DRAIN_LIMIT

    # -- plumbing ------------------------------------------------------------

    @property
    def emu(self):
        return self.server.app

    def _begin(self):
        self._api = False
        self._slept = False
        self._drop = False
        self._remaining = self.emu.limiter.burst
        self._body = b""
        self._body_too_large = False

    def _count(self, outcome):
        if self._api:
            with self.emu.lock:
                self.emu.stats.requests[str(outcome)] += 1

    def _sleep_latency(self):
        if self._api and not self._slept:
            self._slept = True
            delay = self.emu.faults.latency()
            if delay:
                with self.emu.lock:
                    self.emu.stats.faults["latency"] += 1
                time.sleep(delay)

    def _write(self, status, data, headers=None):
        """Write one complete response, with the rate-limit headers."""
        hdrs = [("X-RateLimit-Limit", self.emu.limiter.burst),
                ("X-RateLimit-Remaining", self._remaining)]
        hdrs.extend((headers or {}).items())
        self.send_bytes(status, data, hdrs)

    def _send(self, status, payload, headers=None):
        data = payload if isinstance(payload, bytes) else encode_json(payload)
        self._sleep_latency()
        if self._drop:
            # commit-then-drop: the work is done, the answer never leaves.
            self._count("dropped")
            self.reset_connection()
            return
        self._count(status)
        self._write(status, data, headers)

    def _send_error(self, status, code, message, headers=None, **extra):
        self._send(status, error_body(code, message, **extra), headers)

    def _send_http_error(self, exc):
        self._send_error(exc.status, exc.code, exc.message, dict(exc.headers), **exc.extra)

    def on_bug(self):
        """A bug: report it, answer 500 (the base class closes)."""
        traceback.print_exc(file=sys.stderr)
        self._drop = False
        self._send_error(500, "internal_error", "internal error")

    # -- dispatch ------------------------------------------------------------

    def handle_request(self):
        self._begin()
        self._body = self.read_body()
        self._body_too_large = self.body_oversize
        path = self.url_path
        if path.startswith("/_admin/"):
            self._admin(self.method, path, self.query)
        else:
            self._api = True
            self._api_request(self.method, path, self.query)

    def _route(self, method, path):
        """Return `(handler, scope, args)`, or `(None, status, allow)`."""
        m = _BATCH_ROUTE.fullmatch(unquote(path))
        if m:
            op = UPSERT if m.group(2) == "batchUpsert" else DELETE
            return self._route_method(method, "POST", self._batch, "write", (m.group(1), op))
        if path == "/v1/ping":
            return self._route_method(method, "GET", self._ping, None, ())
        m = _RECORD_ROUTE.fullmatch(path)
        if m:
            return self._route_method(method, "GET", self._get_record, "read",
                                      (m.group(1), unquote(m.group(2)), unquote(m.group(3))))
        m = _LIST_ROUTE.fullmatch(path)
        if m:
            return self._route_method(method, "GET", self._list, "read", (m.group(1),))
        return None, 404, None

    @staticmethod
    def _route_method(method, allowed, handler, scope, args):
        if method != allowed:
            return None, 405, allowed
        return handler, scope, args

    def _api_request(self, method, path, query):
        key = self._authenticate()
        if key is None:
            return
        with self.emu.lock:
            allowed, self._remaining, retry_after = self.emu.limiter.take(
                key.token, time.monotonic())
        if not allowed:
            self._send_error(429, "rate_limited", "rate limit exceeded",
                             headers={"Retry-After": retry_after}, retry_after=retry_after)
            return
        handler, scope, args = self._route(method, path)
        if handler is None:
            if scope == 405:
                self._send_error(405, "method_not_allowed", f"use {args}",
                                 headers={"Allow": args})
            else:
                self._send_error(404, "not_found", "no such endpoint")
            return
        if scope is not None and scope not in key.scopes:
            self._send_error(403, "forbidden", f"API key lacks the '{scope}' scope",
                             required_scope=scope)
            return
        handler(key, query, *args)

    def _authenticate(self):
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.strip().partition(" ")
        key = None
        if scheme.lower() == "bearer" and token.strip():
            key = self.emu.lookup_key(token.strip())
        if key is None:
            self._send_error(401, "unauthorized", "missing or invalid API key",
                             headers={"WWW-Authenticate": 'Bearer realm="crm360"'})
        return key

    # -- read endpoints ------------------------------------------------------

    def _ping(self, key, query):
        self._send(200, {"workspace": self.emu.workspace,
                         "scopes": [s for s in SCOPES if s in key.scopes]})

    def _get_record(self, key, query, obj, brand, external_id):
        with self.emu.lock:
            stored = self.emu.store.get(obj, brand, external_id)
            record = None if stored is None or stored.deleted else Store.public(stored)
        if record is None:
            self._send_error(404, "not_found", "no such record")
        else:
            self._send(200, record)

    def _list(self, key, query, obj):
        params = {name: values[0] for name, values in
                  parse_qs(query, keep_blank_values=True).items() if values[0] != ""}
        brand = params.get("brand")
        since = None
        if "updated_since" in params:
            since = parse_instant(params["updated_since"])
            if since is None:
                self._send_error(400, "invalid_request", "'updated_since' is not RFC 3339",
                                 parameter="updated_since")
                return
        limit = DEFAULT_LIST_LIMIT
        if "limit" in params:
            text = params["limit"]
            if not (text.isascii() and text.isdigit()
                    and 1 <= int(text) <= MAX_LIST_LIMIT):
                self._send_error(400, "invalid_request",
                                 f"'limit' must be an integer from 1 to {MAX_LIST_LIMIT}",
                                 parameter="limit")
                return
            limit = int(text)
        after = None
        if "cursor" in params:
            decoded = decode_cursor(params["cursor"])
            if decoded is None:
                self._send_error(400, "invalid_cursor", "cursor is not valid",
                                 parameter="cursor")
                return
            after, cursor_brand, cursor_since = decoded
            if (("brand" in params and brand != cursor_brand)
                    or ("updated_since" in params and since != cursor_since)):
                self._send_error(400, "invalid_cursor",
                                 "cursor was issued for other filters", parameter="cursor")
                return
            brand, since = cursor_brand, cursor_since
        with self.emu.lock:
            data, last = self.emu.store.list_page(obj, brand, since, after, limit)
        next_cursor = None if last is None else encode_cursor(last, brand, since)
        self._send(200, {"data": data, "next_cursor": next_cursor})

    # -- batch endpoints -----------------------------------------------------

    def _inject_fault(self):
        """Draw a fault; return True when the request is finished."""
        emu = self.emu
        kind = emu.faults.draw()
        if kind is None:
            return False
        retry_after = emu.faults["retry_after"]
        with emu.lock:
            emu.stats.faults[kind] += 1
        if kind == "429":
            self._send_error(429, "rate_limited", "rate limit exceeded",
                             headers={"Retry-After": retry_after}, retry_after=retry_after)
        elif kind == "500":
            self._send_error(500, "internal_error", "internal error")
        elif kind == "503":
            self._send_error(503, "service_unavailable", "down for maintenance",
                             headers={"Retry-After": retry_after}, retry_after=retry_after)
        elif kind == "reset":
            self._count("reset")
            self.reset_connection()
        else:  # commit_drop: process normally, then drop the answer
            self._drop = True
            return False
        return True

    def _idempotency_key(self):
        """Return the Idempotency-Key, or None after answering 400."""
        values = self.headers.get_all("Idempotency-Key") or []
        if not values or (len(values) == 1 and values[0].strip() == ""):
            self._send_error(400, "idempotency_key_missing",
                             "the Idempotency-Key header is required")
            return None
        if len(values) > 1 or _IDEMPOTENCY_KEY_RE.fullmatch(values[0].strip()) is None:
            self._send_error(400, "idempotency_key_invalid",
                             "Idempotency-Key must be 1-255 printable ASCII characters "
                             "(0x21-0x7E)")
            return None
        return values[0].strip()

    def _decoded_body(self):
        """Return the uncompressed body, or None after answering."""
        if httpbase.content_encodings(self.headers) not in ([], ["gzip"], ["x-gzip"]):
            self._send_error(415, "unsupported_encoding",
                             "Content-Encoding must be gzip or absent",
                             headers={"Accept-Encoding": "gzip"})
            return None
        if self._body_too_large:
            self._send_too_large(f"body exceeds {MAX_BYTES} bytes")
            return None
        try:
            return httpbase.decode_body(self.headers, self._body, MAX_BYTES)
        except httpbase.BodyTooLarge:
            self._send_too_large(f"uncompressed body exceeds {MAX_BYTES} bytes")
        except httpbase.HttpError as exc:
            self._send_http_error(exc)
        return None

    def _send_too_large(self, message):
        self._send_error(413, "batch_too_large", message,
                         max_records=MAX_RECORDS, max_bytes=MAX_BYTES)

    def _batch(self, key, query, obj, op):
        if self._inject_fault():
            return
        idempotency_key = self._idempotency_key()
        if idempotency_key is None:
            return
        body = self._decoded_body()
        if body is None:
            return
        try:
            doc = parse_json(body)
        except ValueError as exc:
            self._send_error(400, "invalid_json", f"body is not valid JSON: {exc}")
            return
        if self.emu.max_json_depth and httpbase.json_depth(body) > self.emu.max_json_depth:
            self._send_error(400, "invalid_json",
                             f"body is not valid JSON: nested deeper than "
                             f"{self.emu.max_json_depth}")
            return
        records = doc.get("records") if type(doc) is dict else None
        if type(records) is not list or not records:
            self._send_error(400, "invalid_request",
                             'body must be {"records": [...]} with at least one record')
            return
        if len(records) > MAX_RECORDS:
            self._send_too_large(f"{len(records)} records, at most {MAX_RECORDS} allowed")
            return

        path = unquote(urlsplit(self.path).path)
        fingerprint = f"POST {path} {hashlib.sha256(body).hexdigest()}"
        emu = self.emu
        with emu.lock:
            outcome, entry = emu.idempotency.begin(key.token, idempotency_key, fingerprint,
                                                   time.monotonic())
            if outcome == IdempotencyStore.REPLAY:
                emu.stats.replays += 1
        if outcome == IdempotencyStore.REUSED:
            self._send_error(422, "idempotency_key_reused",
                             "Idempotency-Key was already used with another request")
            return
        if outcome == IdempotencyStore.IN_USE:
            self._send_error(409, "idempotency_key_in_use",
                             "a request with this Idempotency-Key is still being processed",
                             headers={"Retry-After": IN_USE_RETRY_AFTER},
                             retry_after=IN_USE_RETRY_AFTER)
            return
        if outcome == IdempotencyStore.REPLAY:
            self._send(entry.status, entry.body, headers={"Idempotent-Replayed": "true"})
            return

        done = False
        try:
            self._sleep_latency()  # inside the in-flight window
            prepare = _PREPARERS[(obj, op)]
            prepared = [prepare(rec) for rec in records]
            with emu.lock:
                results, batch_id, committed_at = emu.apply_batch(obj, op, prepared)
                data = encode_json({"batch_id": batch_id, "committed_at": committed_at,
                                    "results": results})
                IdempotencyStore.finish(entry, 200, data)
                done = True
        finally:
            if not done:
                with emu.lock:
                    emu.idempotency.abandon(key.token, idempotency_key, entry)
        self._send(200, data)

    # -- admin endpoints -----------------------------------------------------

    def _admin(self, method, path, query):
        handler, _ = httpbase.route(_ADMIN_ROUTES, method, path, "no such admin endpoint")
        self._write(200, encode_json(handler(self, query)))

    def _admin_health(self, query):
        return {"status": "ok"}

    def _admin_dump(self, query):
        with self.emu.lock:
            return self.emu.store.dump()

    def _admin_stats(self, query):
        with self.emu.lock:
            return self.emu.stats_snapshot()

    def _admin_applied(self, query):
        after = httpbase.query_params(query).get("after_seq", "0")
        after = int(after) if after.isascii() and after.isdigit() else 0
        with self.emu.lock:
            return [applied_entry(a) for a in self.emu.applied[after:]]

    def _admin_get_faults(self, query):
        return self._faults_view()

    def _admin_set_faults(self, query):
        try:
            spec = parse_json(self._body)
        except ValueError as exc:
            raise httpbase.HttpError(400, "invalid_request",
                                     f"body is not valid JSON: {exc}") from None
        self.emu.faults.configure(spec)
        return self._faults_view()

    def _faults_view(self):
        view = self.emu.faults.view()
        del view["seed"]
        return view

    def _admin_reset(self, query):
        self.emu.reset()
        return {"status": "reset"}


_ADMIN_ROUTES = [
    ("/_admin/health", {"GET": Handler._admin_health}),
    ("/_admin/dump", {"GET": Handler._admin_dump}),
    ("/_admin/stats", {"GET": Handler._admin_stats}),
    ("/_admin/applied", {"GET": Handler._admin_applied}),
    ("/_admin/faults", {"GET": Handler._admin_get_faults, "POST": Handler._admin_set_faults}),
    ("/_admin/reset", {"POST": Handler._admin_reset}),
]


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def parse_api_key(text):
    """`KEY` (read and write) or `KEY:scope,scope` (possibly no scopes)."""
    token, sep, scope_text = text.rpartition(":")
    if not sep:
        return ApiKey(text, frozenset(SCOPES))
    scopes = frozenset(s.strip() for s in scope_text.split(",") if s.strip())
    unknown = scopes - set(SCOPES)
    if unknown or not token:
        raise argparse.ArgumentTypeError(
            f"invalid --api-key '{text}': expected KEY[:scope,...] with scopes "
            f"from {', '.join(SCOPES)}")
    return ApiKey(token, scopes)


def build_parser():
    p = argparse.ArgumentParser(description="CRM360 ingestion API v1 emulator")
    httpbase.add_server_arguments(p)  # --host --port --port-file --tls-cert --tls-key
    p.add_argument("--api-key", action="append", type=parse_api_key, dest="api_keys",
                   metavar="KEY[:scope,scope]",
                   help="accepted API key, repeatable (default demo-key:read,write)")
    p.add_argument("--workspace", default="demo", help="workspace name (default demo)")
    p.add_argument("--rate", type=float, default=10.0,
                   help="requests/s per key; 0 disables limiting (default 10)")
    p.add_argument("--burst", type=int, default=20, help="bucket size (default 20)")
    p.add_argument("--seed", type=int, default=None, help="seed for faults and batch ids")
    p.add_argument("--journal", help="append one JSON line per applied write to this file")
    p.add_argument("--idempotency-ttl", type=float, default=IDEMPOTENCY_TTL,
                   help="seconds an Idempotency-Key is remembered (default 86400)")
    p.add_argument("--max-json-depth", type=int, default=0,
                   help="refuse a batch nested deeper than this as 400 invalid_json, as a "
                        "stricter parser would (default 0: no limit beyond Python's)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.rate < 0 or args.burst < 1:
        build_parser().error("--rate must be >= 0 and --burst >= 1")
    keys = args.api_keys or [ApiKey("demo-key", frozenset(SCOPES))]
    emulator = Emulator(args.workspace, keys, args.rate, args.burst, args.seed,
                        args.journal, args.idempotency_ttl, args.max_json_depth)
    limit = f"{args.rate:g}/s burst {args.burst}" if args.rate > 0 else "off"
    return httpbase.run_server(
        args, Handler, emulator,
        lambda url: (f"crm360-emulator: listening on {url} workspace '{args.workspace}', "
                     f"{len(keys)} key(s), rate limit {limit}"), on_close=emulator.close)


if __name__ == "__main__":
    sys.exit(main())
