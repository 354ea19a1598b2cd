/* wire.h - pure helpers of destination-shops: identities, encodings, decisions. */
/* SPDX-License-Identifier: MIT */
#ifndef SHP_WIRE_H
#define SHP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "ab/buf.h"
#include "ab/error.h"

/*
 * Nothing here does I/O: these functions are unit-tested without a server
 * (tests/test_shops.c).
 */

/* Part numbers are 1..SHP_MAX_PARTS in one import. */
#define SHP_MAX_PARTS 10000
/* The commit's checkpoint is at most this many bytes. */
#define SHP_CHECKPOINT_MAX ((size_t)64 * 1024)
/* Longest label the API accepts. */
#define SHP_LABEL_MAX 256
/* "shp-" + 40 hex digits + NUL. */
#define SHP_KEY_SIZE 45

/*
 * The import label, "<prefix>:<sync>:<n>": prefix is label_prefix, sync the
 * sync identity (the catalog's sync_id, else this run's id), n the import
 * sequence of this run (1, 2, ...; a re-created import takes the next n).
 * AB_ERR_CONFIG when it does not fit SHP_LABEL_MAX characters.
 */
enum ab_status shp_label(char *out, size_t size, const char *prefix, const char *sync_ident,
                         uint64_t n, struct ab_error *err);

/*
 * The Idempotency-Key of the n-th import creation of this run: "shp-" and 40
 * hex digits of SHA-256 over prefix, sync identity, run id and n. The same
 * inputs always give the same key, so a retried POST /v1/imports returns the
 * import of the first attempt; the run id keeps a later attempt of the same
 * sync (same sync_id) from getting back an import an earlier attempt
 * committed or aborted.
 */
void shp_idempotency_key(char out[SHP_KEY_SIZE], const char *prefix, const char *sync_ident,
                         const char *run_id, uint64_t n);

/* SHA-256 of data as 64 lower-case hex digits (out: 65 bytes). */
void shp_sha256_hex(const void *data, size_t len, char out[65]);

/*
 * The checkpoint text sent with a commit for a window closed by a state
 * whose member list is members (len bytes): the members themselves when they
 * fit SHP_CHECKPOINT_MAX bytes, else "sha256:<hex>" of them. Replaces the
 * content of out.
 */
enum ab_status shp_checkpoint_text(struct ab_buf *out, const char *members, size_t len,
                                   struct ab_error *err);

/* Appends s percent-encoded for a URL path segment or query value (every
 * byte outside A-Z a-z 0-9 - . _ ~ as %XX). */
enum ab_status shp_url_escape(struct ab_buf *out, const char *s, struct ab_error *err);

/* Appends "key=value" in application/x-www-form-urlencoded form, preceded by
 * "&" when out is not empty (space as "+"). */
enum ab_status shp_form_add(struct ab_buf *out, const char *key, const char *value,
                            struct ab_error *err);

/* The error code of an API error body: error.code, or error when it is a
 * string (OAuth's {"error": "invalid_client"}); "" when absent. Borrowed
 * from body. */
const char *shp_error_code(yajl_val body);

/* What to do next with an import whose commit is not known to be done. */
enum shp_next {
    SHP_NEXT_DONE = 0,       /* committed and the commit result is in hand */
    SHP_NEXT_FETCH_RESULT,   /* committed: commit again to get the stored result */
    SHP_NEXT_COMMIT,         /* open: commit (again) */
    SHP_NEXT_WAIT,           /* committing: wait, then ask again */
    SHP_NEXT_RESOLVE,        /* answer lost: ask GET /v1/imports/{id} */
    SHP_NEXT_UPLOAD_MISSING, /* 409 parts_missing: upload them, then commit */
    SHP_NEXT_RECREATE,       /* expired or aborted: new import, upload again */
    SHP_NEXT_FAIL            /* anything else: a fatal error */
};

/*
 * The in-doubt decision table: the status of GET /v1/imports/{id} after a
 * commit whose answer was lost. committed -> FETCH_RESULT, open -> COMMIT,
 * committing -> WAIT, expired | aborted -> RECREATE, anything else -> FAIL.
 */
enum shp_next shp_resolve_decide(const char *status);

/*
 * The answer to POST .../commit: status (0: no answer), transient (the
 * client gave up on a transient failure: in doubt, reset, 5xx, 429) and the
 * error code of the body. 200 -> DONE; no answer or 408/429/5xx after the
 * retries -> RESOLVE; 409 import_committing -> RESOLVE; 409 parts_missing ->
 * UPLOAD_MISSING; 410 -> RECREATE; a local failure (no answer, not transient)
 * and every other status -> FAIL.
 */
enum shp_next shp_commit_decide(int status, bool transient, const char *code);

const char *shp_next_name(enum shp_next n);

/* Whether an answer to a part upload refuses the part as a whole for what
 * its items hold: 400 invalid_json or invalid_encoding, or 413 (too large)
 * of a part of one item; not after a transient failure. */
bool shp_part_refused_whole(int status, bool transient, const char *code, uint32_t items);

/* Delay before the k-th (from 1) "still committing" check: 1, 2, 4 .. 30 s,
 * or retry_after_ms when that is longer (capped at 300 s). */
long shp_wait_ms(unsigned k, long retry_after_ms);

/*
 * Shops has no delete: a record deleted upstream (a non-null
 * _ab_cdc_deleted_at) deactivates its item instead, as a full refresh would.
 * Rewrites the mapped item (a JSON object) in place: a product gets
 * "active": false, an inventory row "quantity": 0, and updated_at becomes
 * deleted_at when given, so last write wins against older versions.
 */
enum ab_status shp_deactivate_item(bool product, const char *deleted_at, struct ab_buf *item,
                                   struct ab_error *err);

#endif
