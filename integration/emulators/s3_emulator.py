#!/usr/bin/env python3
"""s3_emulator.py - a small S3-compatible object store for the tests.

Path-style requests only (`/<bucket>/<key>`): PUT, GET and DELETE of objects
and ListObjectsV2 (`GET /<bucket>?list-type=2&prefix=&max-keys=&continuation-token=`,
keys in binary order, at most --page-size per page, an opaque token
continuing after the last key of the page), each authenticated with AWS Signature Version 4 (header form) and verified
here with hmac/hashlib: the canonical request is rebuilt from what arrived
(method, raw path, query, signed headers, x-amz-content-sha256, which must
match the body unless UNSIGNED-PAYLOAD), the signing key derived from the
configured secret. A bad signature is 403 SignatureDoesNotMatch, an unknown
key id 403 InvalidAccessKeyId, a missing bucket 404 NoSuchBucket, a bucket
named with --refuse 403 AccessDenied for writes (a bucket policy that
refuses the connector's key), one named with --no-list 403 AccessDenied for
listings. Errors are S3's XML documents.

Admin (no authentication): GET /_admin/objects lists every object with its
text ({"objects": [{"bucket", "key", "size", "text"}]}); GET /_admin/requests
counts requests per outcome; POST /_admin/clear empties every bucket.

Standard library only, on integration/httpbase.py.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import os
import sys
import threading
from urllib.parse import parse_qsl, quote, unquote

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import httpbase  # noqa: E402

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW = datetime.timedelta(minutes=15)


class S3Error(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Store:
    def __init__(self, buckets, refused, keys, region, page_size=1000):
        self.page_size = page_size
        self.lock = threading.Lock()
        self.objects = {b: {} for b in buckets}
        self.refused = set(refused)
        self.unlisted = set()
        self.keys = dict(keys)
        self.region = region
        self.counts = {}

    def count(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1


def _hmac(key, text):
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _canonical_query(query):
    pairs = sorted((quote(unquote(k), safe="-_.~"), quote(unquote(v), safe="-_.~"))
                   for k, v in parse_qsl(query, keep_blank_values=True))
    return "&".join("%s=%s" % p for p in pairs)


def verify_sigv4(store, method, raw_path, query, headers, body):
    """Raises S3Error unless the request carries a valid SigV4 signature."""
    auth = headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        raise S3Error(403, "AccessDenied", "a SigV4 Authorization header is required")
    fields = {}
    for part in auth[len("AWS4-HMAC-SHA256 "):].split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    try:
        key_id, date, region, service, term = fields["Credential"].split("/")
        signed = fields["SignedHeaders"].split(";")
        signature = fields["Signature"]
    except (KeyError, ValueError):
        raise S3Error(400, "AuthorizationHeaderMalformed", "malformed Authorization header")
    if key_id not in store.keys:
        raise S3Error(403, "InvalidAccessKeyId", "the access key id does not exist")
    if region != store.region or service != "s3" or term != "aws4_request":
        raise S3Error(400, "AuthorizationHeaderMalformed",
                      "the credential scope must be %s/s3/aws4_request" % store.region)
    amz_date = headers.get("x-amz-date", "")
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        raise S3Error(403, "AccessDenied", "x-amz-date is missing or malformed")
    if abs(datetime.datetime.now(datetime.timezone.utc) - when) > MAX_SKEW or \
            not amz_date.startswith(date):
        raise S3Error(403, "RequestTimeTooSkewed", "the request time is too far from ours")
    for required in ("host", "x-amz-date"):
        if required not in signed:
            raise S3Error(403, "AccessDenied", "%s must be signed" % required)
    payload = headers.get("x-amz-content-sha256")
    if payload is None:
        raise S3Error(400, "InvalidRequest", "x-amz-content-sha256 is required")
    if payload != "UNSIGNED-PAYLOAD" and payload != hashlib.sha256(body).hexdigest():
        raise S3Error(400, "XAmzContentSHA256Mismatch",
                      "x-amz-content-sha256 does not match the body")
    canon_headers = ""
    for name in signed:
        value = headers.get(name)
        if value is None:
            raise S3Error(403, "AccessDenied", "signed header %s is absent" % name)
        canon_headers += "%s:%s\n" % (name, " ".join(value.split()))
    canonical = "\n".join([method, raw_path, _canonical_query(query), canon_headers,
                           ";".join(signed), payload])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, "/".join([date, region, "s3",
                         "aws4_request"]), hashlib.sha256(canonical.encode()).hexdigest()])
    k = _hmac(("AWS4" + store.keys[key_id]).encode(), date)
    for part in (region, "s3", "aws4_request"):
        k = _hmac(k, part)
    want = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, signature):
        raise S3Error(403, "SignatureDoesNotMatch",
                      "the request signature we calculated does not match the signature "
                      "you provided")


def error_xml(code, message):
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
            "<Message>%s</Message></Error>" % (code, message)).encode()


class Handler(httpbase.Handler):
    server_version = "s3-emulator/1"
    methods = ("GET", "PUT", "DELETE", "HEAD", "POST")
    max_body = 64 * 1024 * 1024

    def handle_request(self):
        store = self.app
        if self.url_path.startswith("/_admin/"):
            return self.admin(store)
        body = self.read_body()
        try:
            verify_sigv4(store, self.command, self.url_path, self.query, self.headers, body)
            parts = self.url_path.lstrip("/").split("/", 1)
            bucket = unquote(parts[0])
            key = unquote(parts[1]) if len(parts) > 1 else ""
            if bucket not in store.objects:
                raise S3Error(404, "NoSuchBucket", "the bucket does not exist")
            if not key and self.method == "GET" and \
                    dict(parse_qsl(self.query)).get("list-type") == "2":
                if bucket in store.unlisted:
                    raise S3Error(403, "AccessDenied", "Access Denied")
                return self.list_objects(store, bucket)
            if not key:
                raise S3Error(400, "InvalidRequest", "bucket operations are not supported")
            if self.method in ("PUT", "DELETE") and bucket in store.refused:
                raise S3Error(403, "AccessDenied", "Access Denied")
            with store.lock:
                objs = store.objects[bucket]
                if self.method == "PUT":
                    objs[key] = body
                    answer = (200, b"")
                elif self.method == "DELETE":
                    objs.pop(key, None)
                    answer = (204, b"")
                elif key in objs:
                    answer = (200, objs[key])
                else:
                    raise S3Error(404, "NoSuchKey", "the key does not exist")
            store.count("%s %d" % (self.method, answer[0]))
            self.send_bytes(answer[0], answer[1], content_type="application/octet-stream")
        except S3Error as exc:
            store.count("%s %d %s" % (self.method, exc.status, exc.code))
            self.send_bytes(exc.status, error_xml(exc.code, exc.message),
                            content_type="application/xml")

    def list_objects(self, store, bucket):
        q = dict(parse_qsl(self.query, keep_blank_values=True))
        prefix = q.get("prefix", "")
        try:
            limit = min(int(q.get("max-keys", "1000")), 1000, store.page_size)
        except ValueError:
            raise S3Error(400, "InvalidArgument", "max-keys must be an integer")
        after = ""
        if q.get("continuation-token"):
            try:
                after = base64.urlsafe_b64decode(q["continuation-token"].encode()).decode()
            except (ValueError, UnicodeDecodeError):
                raise S3Error(400, "InvalidArgument", "the continuation token is invalid")
        with store.lock:
            keys = sorted(k for k in store.objects[bucket]
                          if k.startswith(prefix) and (not after or k.encode() > after.encode()))
            sizes = {k: len(store.objects[bucket][k]) for k in keys[:limit]}
        page, more = keys[:limit], len(keys) > limit
        esc = lambda t: t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        out = ['<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult '
               'xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
               "<Name>%s</Name><Prefix>%s</Prefix><KeyCount>%d</KeyCount>"
               "<MaxKeys>%d</MaxKeys><IsTruncated>%s</IsTruncated>"
               % (esc(bucket), esc(prefix), len(page), limit, "true" if more else "false")]
        for k in page:
            out.append("<Contents><Key>%s</Key><Size>%d</Size><StorageClass>STANDARD"
                       "</StorageClass></Contents>" % (esc(k), sizes[k]))
        if more:
            out.append("<NextContinuationToken>%s</NextContinuationToken>"
                       % base64.urlsafe_b64encode(page[-1].encode()).decode())
        out.append("</ListBucketResult>")
        store.count("LIST 200")
        self.send_bytes(200, "".join(out).encode(), content_type="application/xml")

    def admin(self, store):
        with store.lock:
            if self.url_path == "/_admin/objects":
                objs = [{"bucket": b, "key": k, "size": len(v),
                         "text": v.decode("utf-8", "replace")}
                        for b, kv in sorted(store.objects.items()) for k, v in sorted(kv.items())]
                return self.send_json(200, {"objects": objs})
            if self.url_path == "/_admin/clear" and self.method == "POST":
                for b in store.objects:
                    store.objects[b] = {}
                return self.send_json(200, {"cleared": True})
            if self.url_path == "/_admin/requests":
                return self.send_json(200, dict(store.counts))
        raise httpbase.HttpError(404, "not_found", "no such admin endpoint")


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    httpbase.add_server_arguments(p)
    p.add_argument("--bucket", action="append", default=[], help="a bucket (repeatable)")
    p.add_argument("--refuse", action="append", default=[],
                   help="a bucket that refuses writes with 403 AccessDenied (repeatable)")
    p.add_argument("--key", action="append", default=[], metavar="ID:SECRET",
                   help="an access key (repeatable)")
    p.add_argument("--no-list", action="append", default=[],
                   help="a bucket that refuses ListObjectsV2 with 403 AccessDenied (repeatable)")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--page-size", type=int, default=1000,
                   help="keys per ListObjectsV2 page at most (to exercise continuations)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    keys = [k.split(":", 1) for k in args.key]
    if not keys or any(len(k) != 2 for k in keys):
        build_parser().error("give at least one --key ID:SECRET")
    store = Store(args.bucket + args.refuse + args.no_list, args.refuse, keys, args.region,
                  args.page_size)
    store.unlisted = set(args.no_list)
    server = httpbase.Server((args.host, args.port), Handler, store,
                             tls=(args.tls_cert, args.tls_key))
    banner = "s3-emulator: listening on %s, buckets %s" % (server.url,
                                                          ", ".join(sorted(store.objects)))
    return httpbase.serve(server, args.port_file, banner)


if __name__ == "__main__":
    sys.exit(main())
