/* deadletter.h - the rejected-records file: one JSON line per rejection. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_DEADLETTER_H
#define AB_DEADLETTER_H

#include <stddef.h>
#include <stdint.h>

#include "ab/error.h"

/*
 * Appends to the file (created 0600 if missing). Each line:
 * {"stream":..,"namespace":..,"line":N,"rejected_by":"destination"|"target",
 *  "rejected_at":"<RFC 3339 UTC>","errors":[...],"record":{...}}
 * ab_deadletter_sync() flushes and fsyncs: the driver calls it before a STATE
 * that covers rejected records goes out, so a rejection is on disk before the
 * source is told to move on.
 * "namespace" is null when ns is NULL, "line" null when lineno is 0,
 * "rejected_at" has milliseconds ("2024-05-01T12:00:00.123Z"). CR and LF in
 * record_json/errors_json become spaces so that each line stays one document.
 * Opening fails with AB_ERR_CONFIG ("cannot open dead-letter file '<path>':
 * <reason>"); parent directories are not created. The first write, flush or
 * sync failure (AB_ERR_IO) is sticky: later calls return it without I/O.
 */
struct ab_deadletter;

struct ab_deadletter *ab_deadletter_open(const char *path, struct ab_error *err);
/* Closes (after a final sync); NULL-safe. */
enum ab_status ab_deadletter_close(struct ab_deadletter *dl, struct ab_error *err);

/* record_json: the record as compact JSON text (copied into the line; NULL
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

/* Checks that path can be created or appended to without writing to it
 * (for check): an existing file must be writable (access W_OK), else its
 * directory must exist and be writable. AB_ERR_CONFIG naming the path. */
enum ab_status ab_deadletter_probe(const char *path, struct ab_error *err);

#endif
