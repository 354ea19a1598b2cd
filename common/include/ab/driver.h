/* driver.h - the destination driver: commands, the stdin loop, checkpoints. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_DRIVER_H
#define AB_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "ab/catalog.h"
#include "ab/checkpoint.h"
#include "ab/emitter.h"
#include "ab/error.h"
#include "ab/http.h"
#include "ab/protocol.h"

/*
 * A connector's main() is one call: ab_destination_main(argc, argv, &ops).
 * The driver parses the command line (spec | check | write, --config,
 * --catalog, --help, --version, in any order), loads and validates the config
 * against the connector's spec, owns stdout through the emitter, reads stdin,
 * tracks checkpoints, writes dead letters, logs progress, and maps errors to
 * exit codes and TRACE messages in one place.
 *
 * Common config fields every destination spec declares (the driver reads
 * them): "rejected_records" ("dead_letter" | "fail"), "dead_letter_path",
 * "max_line_bytes", "progress_interval_seconds", "max_checkpoint_wait_seconds",
 * "log_level".
 *
 * The write loop is single-threaded: it polls stdin and the HTTP client's
 * sockets together, so committed states go out as soon as they are
 * releasable even while the source is quiet, and it stops reading while the
 * destination says it is busy (backpressure). Callbacks from the HTTP client
 * run inside that loop.
 */
struct ab_driver;

/* A record as handed to the destination; everything is borrowed for the call. */
struct ab_record {
    size_t stream; /* catalog index */
    const struct ab_stream *desc;
    uint64_t seq;
    uint64_t lineno;
    yajl_val data;
    bool deleted; /* data has a non-null "_ab_cdc_deleted_at" */
};

/* Problems found by check, all reported at once. */
struct ab_check;
void ab_check_problem(struct ab_check *chk, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

struct ab_destination_ops {
    const char *name;      /* "destination-example" */
    const char *version;   /* "0.1.0" */
    const char *spec_json; /* the whole ConnectorSpecification object */

    /* check: config is already valid. Report each problem with
     * ab_check_problem(); return non-OK only for an internal failure. */
    enum ab_status (*check)(struct ab_driver *d, struct ab_check *chk, struct ab_error *err);

    /* write: config and catalog loaded. Reject unsupported sync modes here
     * (AB_ERR_CONFIG naming the stream). Must call ab_driver_set_http(). */
    enum ab_status (*open)(struct ab_driver *d, void **self, struct ab_error *err);
    /* One valid RECORD of a catalog stream. Must add it to a checkpoint unit
     * or reject it (ab_driver_reject()) before returning. */
    enum ab_status (*record)(void *self, const struct ab_record *rec, struct ab_error *err);
    /* Optional: a STATE was queued (its records are before it). */
    enum ab_status (*state)(void *self, const struct ab_msg *msg, struct ab_error *err);
    /* Optional: a STREAM_STATUS trace for a catalog stream. */
    enum ab_status (*stream_status)(void *self, size_t stream, enum ab_stream_status status,
                                    struct ab_error *err);
    /* True while the destination cannot take more records (input paused). */
    bool (*busy)(void *self);
    /* Send everything buffered. final: end of input, nothing more will come.
     * Called also when a state has waited max_checkpoint_wait_seconds. */
    enum ab_status (*flush)(void *self, bool final, struct ab_error *err);
    /* True when nothing is buffered, in flight or waiting to be retried. */
    bool (*idle)(void *self);
    /* Optional: log the destination's own summary lines. */
    void (*summary)(void *self, struct ab_emitter *em);
    /* Optional: called before close when the run ends; ok=false after a
     * fatal error (do not commit anything then). */
    enum ab_status (*finish)(void *self, bool ok, struct ab_error *err);
    void (*close)(void *self);
};

int ab_destination_main(int argc, char **argv, const struct ab_destination_ops *ops);

/* Accessors for the destination (borrowed for the driver's lifetime). */
struct ab_emitter *ab_driver_emitter(struct ab_driver *d);
yajl_val ab_driver_config(struct ab_driver *d);
yajl_val ab_driver_spec(struct ab_driver *d); /* connectionSpecification */
const struct ab_catalog *ab_driver_catalog(struct ab_driver *d);
struct ab_ckpt *ab_driver_ckpt(struct ab_driver *d);
/* The client the loop drives (borrowed; the destination frees it in close). */
void ab_driver_set_http(struct ab_driver *d, struct ab_http *h);

/* Registers a secret (copied) so it is masked in every log and error. */
void ab_driver_add_secret(struct ab_driver *d, const char *secret);

/*
 * A record was rejected (by validation before sending, or by the target).
 * Writes the dead-letter line and counts it against its state. Under the
 * "fail" policy returns AB_ERR_REJECTED with a message naming the stream,
 * line and errors; the destination propagates it and the run stops.
 * record_json is the record as sent (or as received), errors_json a JSON array
 * of {"field","code","message"}.
 */
enum ab_status ab_driver_reject(struct ab_driver *d, size_t stream, uint64_t seq, uint64_t lineno,
                                const char *rejected_by, const char *record_json, size_t record_len,
                                const char *errors_json, struct ab_error *err);

/* Counts committed records (for progress and the summary). */
void ab_driver_add_committed(struct ab_driver *d, uint64_t n);

/* A fatal error found inside an HTTP callback: the loop stops at its next
 * turn, emits one TRACE error and exits non-zero. The first error wins. */
void ab_driver_fail(struct ab_driver *d, const struct ab_error *err);
bool ab_driver_failed(const struct ab_driver *d);

/* True once reading stopped at bad input (a malformed or oversize line, a
 * record of a stream outside the catalog). The final flush that follows
 * commits what came before, but it is no successful end of input: nothing
 * that needs the whole of a stream (a replace) may be finalised. */
bool ab_driver_input_failed(const struct ab_driver *d);

/*
 * HTTP options from the common config fields: "max_in_flight",
 * "requests_per_second", "burst", "connect_timeout_seconds",
 * "request_timeout_seconds", "max_retries", "ca_path"; absent fields keep
 * ab_http_opts_init() defaults. The log is the driver's emitter.
 */
void ab_driver_http_opts(struct ab_driver *d, struct ab_http_opts *o);
/* An http(s) URL whose scheme is https, or http with a loopback host
 * (localhost, 127.0.0.0/8, [::1]); AB_ERR_CONFIG naming field otherwise. */
enum ab_status ab_driver_check_url(const char *url, const char *field, struct ab_error *err);

#endif
