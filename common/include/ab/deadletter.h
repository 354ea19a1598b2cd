/* deadletter.h - rejected records: one JSON line per rejection, to a file or a bucket. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_DEADLETTER_H
#define AB_DEADLETTER_H

#include <stddef.h>
#include <stdint.h>

#include "ab/error.h"
#include "ab/objstore.h"

/*
 * The one place rejected records go through. Three sinks:
 *   AB_DL_FILE      appends to a file (created 0600 if missing);
 *   AB_DL_OBJSTORE  buffers the lines of each stream and puts them as objects
 *                   <prefix>/<stream>/<YYYY-MM-DD>/<run_name>-<NNNNNN>.jsonl
 *                   (stream: "ns.name" or "name", '/' written as '_'; date of
 *                   the put, UTC) at each sync, or earlier when 8 MiB are
 *                   buffered;
 *   AB_DL_NONE      counts only.
 * Each line:
 * {"stream":..,"namespace":..,"line":N,"rejected_by":"destination"|"target",
 *  "rejected_at":"<RFC 3339 UTC>","errors":[...],"record":<as received>,
 *  "record_sent":<as sent, null when it was never built>}
 * ab_deadletter_sync() makes every line durable (file: fflush + fsync;
 * object store: the puts): the driver calls it before a STATE that covers
 * rejected records goes out, so a rejection is stored before the source is
 * told to move on.
 * "namespace" is null when ns is NULL, "line" null when lineno is 0,
 * "rejected_at" has milliseconds ("2024-05-01T12:00:00.123Z"). CR and LF in
 * record_json/errors_json become spaces so that each line stays one document.
 * Opening fails with AB_ERR_CONFIG ("cannot open dead-letter file '<path>':
 * <reason>"); parent directories are not created. The first write, flush or
 * sync failure (AB_ERR_IO) is sticky: later calls return it without I/O.
 */
struct ab_deadletter;

enum ab_deadletter_kind { AB_DL_NONE, AB_DL_FILE, AB_DL_OBJSTORE };

/* Where rejected records go; strings are borrowed for the call only. */
struct ab_deadletter_target {
    enum ab_deadletter_kind kind;
    const char *path;             /* AB_DL_FILE */
    struct ab_objstore_cfg store; /* AB_DL_OBJSTORE */
    const char *prefix;           /* AB_DL_OBJSTORE: key prefix, may be "" */
    const char *run_name;         /* AB_DL_OBJSTORE: object and probe names */
};

/* One rejection. received: the record as the source sent it; sent: as the
 * destination built it for the target (NULL when never built); both compact
 * JSON text, NULL or empty written as null. errors_json: a JSON array text
 * (NULL: []). ns may be NULL, lineno 0 when unknown. */
struct ab_rejected {
    const char *stream;
    const char *ns;
    uint64_t lineno;
    const char *rejected_by;
    const char *received;
    size_t received_len;
    const char *sent;
    size_t sent_len;
    const char *errors_json;
};

/* Opens the sink of t (a file is opened now; an object store connects at
 * the first put). The handle belongs to the caller (ab_deadletter_close()).
 * Errors as ab_deadletter_open() and ab_objstore_new(). */
struct ab_deadletter *ab_deadletter_open_target(const struct ab_deadletter_target *t,
                                                struct ab_error *err);
/* A file sink at path. */
struct ab_deadletter *ab_deadletter_open(const char *path, struct ab_error *err);
/* Closes (after a final sync); NULL-safe. */
enum ab_status ab_deadletter_close(struct ab_deadletter *dl, struct ab_error *err);

/* Writes one line (buffered: durable only after sync). A failed object put
 * is sticky like a failed write: AB_ERR_CONFIG when the store refused it,
 * AB_ERR_TRANSIENT when it stayed unreachable. */
enum ab_status ab_deadletter_put(struct ab_deadletter *dl, const struct ab_rejected *r,
                                 struct ab_error *err);

/* As ab_deadletter_put() with received = record_json and no record sent.
 * record_json: the record as compact JSON text (copied into the line; NULL
 * or empty: null); errors_json: a JSON array text (NULL: []); ns may be NULL;
 * lineno 0 when unknown. Lines are buffered: durable only after sync. */
enum ab_status ab_deadletter_write(struct ab_deadletter *dl, const char *stream, const char *ns,
                                   uint64_t lineno, const char *rejected_by,
                                   const char *record_json, size_t record_len,
                                   const char *errors_json, struct ab_error *err);
/* The input file the following lines come from (a "file" member after
 * "line"), borrowed until the next call; NULL: none (Airbyte messages). */
void ab_deadletter_set_file(struct ab_deadletter *dl, const char *file);
enum ab_status ab_deadletter_sync(struct ab_deadletter *dl, struct ab_error *err);
uint64_t ab_deadletter_count(const struct ab_deadletter *dl);
enum ab_deadletter_kind ab_deadletter_kind(const struct ab_deadletter *dl);
/* The file path or "s3://bucket/prefix" (for messages); "" for none. */
const char *ab_deadletter_where(const struct ab_deadletter *dl);

/* Checks that path can be created or appended to without writing to it
 * (for check): an existing file must be writable (access W_OK), else its
 * directory must exist and be writable. AB_ERR_CONFIG naming the path. */
enum ab_status ab_deadletter_probe(const char *path, struct ab_error *err);

/* For check: a file as ab_deadletter_probe(); an object store by putting
 * and deleting <prefix>/_check/<run_name>.txt; none is AB_OK. */
enum ab_status ab_deadletter_probe_target(const struct ab_deadletter_target *t,
                                          struct ab_error *err);

#endif
