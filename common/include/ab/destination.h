/* destination.h - what a destination gives the driver, and what it gets. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_DESTINATION_H
#define AB_DESTINATION_H

#include "ab/checkpoint.h"
#include "ab/driver.h"
#include "ab/latency.h"
#include "ab/mapping.h"
#include "ab/objstore.h"
#include "ab/protocol.h"

/*
 * Commands: spec, check --config, write --config --catalog.
 *
 * write reads Airbyte messages on stdin. stdin is a descriptor of the event
 * loop: it is watched only while the destination takes records (back-
 * pressure), so committed states go out as soon as they are releasable even
 * while the source is quiet. The run moves through explicit phases:
 *
 *   READING   lines are handed to the destination
 *   FLUSHING  input ended (or stopped at bad input): the final flush was
 *             asked for; waiting until the destination is idle
 *   DONE      every state that can be released was emitted
 *
 * A STATE waiting longer than max_checkpoint_wait_seconds forces a flush (a
 * timer); progress is logged every progress_interval_seconds (a timer).
 * Common config fields the driver reads: "rejected_records",
 * "object_storage_config", "dead_letter_path", "max_line_bytes", "progress_interval_seconds",
 * "max_checkpoint_wait_seconds", "log_level".
 */

/* A record as handed to the destination; everything is borrowed for the call. */
struct ab_record {
    size_t stream; /* catalog index */
    const struct ab_stream *desc;
    uint64_t seq;
    uint64_t lineno;
    yajl_val data;
    bool deleted;          /* data has a non-null "_ab_cdc_deleted_at" */
    const char *data_text; /* data's JSON text as read, or NULL (ab_mapping_write_text()) */
    size_t data_len;
    bool data_compact; /* data_text has no whitespace outside strings */
    /* Lazy data (ops.lazy_data): when the line's data was plain (see
     * ab_json_arena_set_lazy()) it was validated without a tree: data is
     * NULL, data_text its compact or spaced text, and members its top-level
     * members (offsets into data_text, names without escapes, in order).
     * ab_record_tree() gives the tree when one is needed. Otherwise members
     * is NULL and data the tree, as without lazy data. */
    const struct ab_json_member *members;
    size_t nmembers;
    struct ab_record_lazy *lazy; /* the driver's, for ab_record_tree() */
};

/* rec's data as a tree: rec->data, or (lazy data) data_text parsed into an
 * arena of the driver, once per record; valid until the record call
 * returns. NULL with err set only when out of memory. */
yajl_val ab_record_tree(const struct ab_record *rec, struct ab_error *err);
/* The member of rec's lazy data named name (no escapes), or NULL. */
const struct ab_json_member *ab_record_member(const struct ab_record *rec, const char *name);

struct ab_destination_ops {
    const char *name;      /* "destination-x" */
    const char *version;   /* AB_VERSION: the project version, from CMake */
    const char *spec_json; /* the whole ConnectorSpecification object */
    /* The DestinationCatalog `discover` prints (protocol 0.16.0+): the
     * objects, the operations (destination sync modes) each really
     * supports, their JSON schemas and matching keys; NULL: no discover. */
    const char *destination_catalog_json;
    /* true: records may come with lazy data (struct ab_record: members, and
     * data NULL until ab_record_tree()); every use of rec->data must then go
     * through ab_record_tree(). */
    bool lazy_data;
    /* Why sending the same input again applies nothing twice (the end of a
     * run cites it in its resume advice), or NULL when nothing says so. */
    const char *replay_note;

    /* check: config is already valid. Report each problem with
     * ab_check_problem(); return non-OK only for an internal failure. */
    enum ab_status (*check)(struct ab_driver *d, struct ab_check *chk, struct ab_error *err);

    /* write: config and catalog loaded. Reject unsupported sync modes here
     * (AB_ERR_CONFIG naming the stream). Must call ab_driver_set_http() when
     * it uses HTTP; may register descriptors and timers with the loop. */
    enum ab_status (*open)(struct ab_driver *d, void **self, struct ab_error *err);
    /* One valid RECORD of a catalog stream. Must add it to a checkpoint unit
     * or reject it (ab_driver_reject()) before returning. */
    enum ab_status (*record)(void *self, const struct ab_record *rec, struct ab_error *err);
    /* Optional: a STATE was queued (its records are before it). */
    enum ab_status (*state)(void *self, const struct ab_msg *msg, struct ab_error *err);
    /* Optional: a STREAM_STATUS trace for a catalog stream. */
    enum ab_status (*stream_status)(void *self, size_t stream, enum ab_stream_status status,
                                    struct ab_error *err);
    /* Optional question, no side effects: true while the destination cannot
     * take more records (stdin is not watched then). */
    bool (*busy)(const void *self);
    /* Send everything buffered. final: end of input, nothing more will come.
     * Called also when a state has waited max_checkpoint_wait_seconds. */
    enum ab_status (*flush)(void *self, bool final, struct ab_error *err);
    /* Question, no side effects: true when nothing is buffered, in flight or
     * waiting to be retried. */
    bool (*idle)(const void *self);
    /* Optional: log the destination's own summary lines. */
    void (*summary)(void *self, struct ab_emitter *em);
    /* Optional: the destination's request latencies by group (an object, a
     * kind of request) for the summary table and --report: names[i] and
     * lats[i] for i below the count returned (at most max), owned by the
     * destination and valid until close. */
    size_t (*latencies)(void *self, const char **names, struct ab_latency **lats, size_t max);
    /* Optional: called before close when the run ends; ok=false after a
     * fatal error (do not commit anything then). */
    enum ab_status (*finish)(void *self, bool ok, struct ab_error *err);
    void (*close)(void *self);
};

int ab_destination_main(int argc, char **argv, const struct ab_destination_ops *ops);

/* The checkpoint manager of the run (write only). */
struct ab_ckpt *ab_driver_ckpt(struct ab_driver *d);

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

/* One rejection as ab_driver_reject_ex() takes it; everything borrowed for
 * the call. received: the record as the source sent it; sent: as built for
 * the target (NULL: never built); mapping: names, in each error whose
 * "field" is a mapped target field, the source path it comes from (NULL:
 * errors are stored as they are). */
struct ab_rejection {
    size_t stream;
    uint64_t seq;
    uint64_t lineno;
    const char *rejected_by; /* "destination" or "target" */
    const char *received;
    size_t received_len;
    const char *sent;
    size_t sent_len;
    const char *errors_json;
    const struct ab_mapping *mapping;
};

/* As ab_driver_reject(), with both forms of the record and the source paths
 * of the errors. */
enum ab_status ab_driver_reject_ex(struct ab_driver *d, const struct ab_rejection *r,
                                   struct ab_error *err);

/*
 * A dry run (--dry-run): the destination validates, maps and batches as
 * usual but sends no request that writes. Instead of sending a request it
 * reports it with ab_driver_dry_request() (object, operation, a label such
 * as "POST /v1/customers:upsert", the records it carries and its body) and
 * treats its unit as committed at once. Rules of the target that can be
 * checked locally are checked, and breaking records are rejected with
 * ab_driver_reject() as the target would reject them; a dry run writes no
 * dead-letter file and no checkpoint, and emits no STATE.
 */
bool ab_driver_dry_run(const struct ab_driver *d);
void ab_driver_dry_request(struct ab_driver *d, const char *object, const char *op,
                           const char *label, size_t records, const char *body, size_t len);

/* The S3-compatible object storage configured for rejected records
 * (object_storage_config S3), for a destination that keeps its own objects
 * there too: fills *cfg (strings borrowed from the config, valid until the
 * run ends), *prefix (the configured prefix, may be "") and *run_name (a
 * name unique to this attempt: connector, sync id, time, pid). False (and
 * nothing filled) when no S3 storage is configured. */
bool ab_driver_object_storage(const struct ab_driver *d, struct ab_objstore_cfg *cfg,
                              const char **prefix, const char **run_name);

/* Counts committed records (for progress and the summary). */
void ab_driver_add_committed(struct ab_driver *d, uint64_t n);

/* True once reading stopped at bad input (a malformed or oversize line, a
 * record of a stream outside the catalog). The final flush that follows
 * commits what came before, but it is no successful end of input: nothing
 * that needs the whole of a stream (a replace) may be finalised. */
bool ab_driver_input_failed(const struct ab_driver *d);

#endif
