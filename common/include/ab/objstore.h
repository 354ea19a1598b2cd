/* objstore.h - objects put into an S3-compatible bucket, signed with SigV4. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_OBJSTORE_H
#define AB_OBJSTORE_H

#include <stddef.h>
#include <stdio.h>

#include "ab/error.h"

/*
 * A small client for what rejected-record storage and key ledgers need: PUT,
 * GET (into a file), DELETE and list (ListObjectsV2) objects; an
 * object (path-style: <endpoint>/<bucket>/<key>), signed with AWS Signature
 * Version 4 by libcurl (CURLOPT_AWS_SIGV4, "aws:amz:<region>:s3"), with the
 * payload's SHA-256 in x-amz-content-sha256. Calls block (a put takes one
 * HTTP request, retried on connection failures and 5xx); they are made from
 * the driver's thread at checkpoints, never from a loop callback of another
 * module.
 *
 * Ownership: ab_objstore_new() copies every string of cfg; the handle belongs
 * to the caller (ab_objstore_free()). Not thread-safe: one thread per handle.
 * Errors never contain the secret access key: a refused request is
 * AB_ERR_CONFIG ("object storage refused PUT s3://bucket/key: HTTP 403
 * AccessDenied: <service message>"), a failure that persists after the retries
 * AB_ERR_TRANSIENT, a bad endpoint AB_ERR_CONFIG.
 */
struct ab_objstore_cfg {
    const char *endpoint; /* "https://host[:port]" (a trailing '/' is ignored) */
    const char *region;
    const char *bucket;
    const char *access_key_id;
    const char *secret_access_key;
    const char *ca_path; /* NULL: the system's CA bundle */
};

struct ab_objstore;

struct ab_objstore *ab_objstore_new(const struct ab_objstore_cfg *cfg, struct ab_error *err);
void ab_objstore_free(struct ab_objstore *os); /* NULL-safe */

/* Puts data[0..len) as object key (bytes of key outside [A-Za-z0-9._~/-] are
 * percent-encoded). content_type may be NULL (application/octet-stream). */
enum ab_status ab_objstore_put(struct ab_objstore *os, const char *key, const void *data,
                               size_t len, const char *content_type, struct ab_error *err);

/* Deletes object key (for check's probe object); a missing object is AB_OK. */
enum ab_status ab_objstore_delete(struct ab_objstore *os, const char *key, struct ab_error *err);

/* Gets object key into fp (written from its current position; a retried
 * attempt truncates fp and starts again, so fp is a file of its own). A
 * missing object is AB_ERR_CONFIG naming it (HTTP 404 NoSuchKey); a failed
 * write AB_ERR_IO. fp is flushed, not closed. */
enum ab_status ab_objstore_get_file(struct ab_objstore *os, const char *key, FILE *fp,
                                    struct ab_error *err);

/* Called for each key listed (borrowed for the call); a non-OK return stops
 * the listing and is returned. */
typedef enum ab_status (*ab_objstore_list_fn)(void *arg, const char *key, struct ab_error *err);

/* Lists every object whose key starts with prefix (ListObjectsV2, pages of
 * up to 1000 keys followed by their continuation tokens), in the store's
 * order (S3: UTF-8 binary order of keys). Memory: one page. A store
 * answering without ListBucketResult is AB_ERR_PROTOCOL. */
enum ab_status ab_objstore_list(struct ab_objstore *os, const char *prefix, ab_objstore_list_fn fn,
                                void *arg, struct ab_error *err);

#endif
