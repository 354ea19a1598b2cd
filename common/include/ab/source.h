/* source.h - what a source gives the driver, and what it gets. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_SOURCE_H
#define AB_SOURCE_H

#include "ab/driver.h"
#include "ab/protocol.h"

/*
 * Commands: spec, check --config, discover --config,
 * read --config --catalog [--state FILE].
 *
 * read: the driver loads the configured catalog and the input state (a JSON
 * array of AirbyteStateMessage objects, STREAM or GLOBAL, as the platform
 * passes it; an empty file or [] is no state), calls open(), then runs the
 * event loop. In every turn where the source last answered AB_SOURCE_MORE,
 * step() is called once: it emits a bounded amount (one page, one chunk of
 * rows) and returns. A source that waits for its own descriptors or timers
 * (a database socket, a rate limit) answers AB_SOURCE_WAIT and calls
 * ab_source_resume() from their callbacks. AB_SOURCE_DONE ends the read.
 *
 * Output goes through the emitter to stdout, which stays blocking: when the
 * consumer reads slowly, the emit calls block, so a source never buffers
 * more than stdio's buffer and its own current page (back-pressure).
 *
 * Guarantee the driver keeps: a STATE goes out only through
 * ab_source_stream_state()/ab_source_global_state(), after every record the
 * source emitted before it, with sourceStats.recordCount = the records of
 * its scope since the previous state of that scope. After a fatal error the
 * streams that started and did not complete get STREAM_STATUS INCOMPLETE
 * before the TRACE error.
 */
enum ab_source_next {
    AB_SOURCE_MORE = 0, /* call step() again in the next turn */
    AB_SOURCE_WAIT,     /* wait for the source's descriptors or timers */
    AB_SOURCE_DONE      /* every stream is finished */
};

struct ab_source_ops {
    const char *name;      /* "source-postgres" */
    const char *version;   /* AB_VERSION: the project version, from CMake */
    const char *spec_json; /* the whole ConnectorSpecification object */

    /* check: config is valid. Report each problem with ab_check_problem();
     * return non-OK only for an internal failure. */
    enum ab_status (*check)(struct ab_driver *d, struct ab_check *chk, struct ab_error *err);
    /* discover: write the catalog with ab_source_catalog(). */
    enum ab_status (*discover)(struct ab_driver *d, struct ab_error *err);
    /* read: config, catalog and state loaded; reject what the source cannot
     * do (a sync mode, a cursor) with AB_ERR_CONFIG naming the stream. */
    enum ab_status (*open)(struct ab_driver *d, void **self, struct ab_error *err);
    enum ab_status (*step)(void *self, enum ab_source_next *next, struct ab_error *err);
    /* Optional: log the source's own summary lines. */
    void (*summary)(void *self, struct ab_emitter *em);
    void (*close)(void *self);
};

int ab_source_main(int argc, char **argv, const struct ab_source_ops *ops);

/* The input state of a catalog stream (its stream_state), the GLOBAL
 * shared_state, or NULL; borrowed for the run. */
yajl_val ab_source_state_of(struct ab_driver *d, size_t stream);
yajl_val ab_source_shared_state(struct ab_driver *d);

/* A RECORD of a catalog stream; data is one serialised JSON object. */
enum ab_status ab_source_record(struct ab_driver *d, size_t stream, const char *data, size_t len,
                                struct ab_error *err);
/* A STREAM state: state is the serialised stream_state. */
enum ab_status ab_source_stream_state(struct ab_driver *d, size_t stream, const char *state,
                                      size_t len, struct ab_error *err);
/* A GLOBAL state: shared is the serialised shared_state (NULL: none);
 * states[i] (NULL: absent) the stream_state of catalog stream i, for every
 * i < catalog size. */
enum ab_status ab_source_global_state(struct ab_driver *d, const char *shared,
                                      const char *const *states, struct ab_error *err);
/* STREAM_STATUS of a catalog stream (STARTED, RUNNING, COMPLETE, INCOMPLETE). */
enum ab_status ab_source_stream_status(struct ab_driver *d, size_t stream,
                                       enum ab_stream_status status, struct ab_error *err);
/* ESTIMATE of a catalog stream; a negative count is left out. */
enum ab_status ab_source_estimate(struct ab_driver *d, size_t stream, int64_t rows, int64_t bytes,
                                  struct ab_error *err);
/* CONTROL connector-config update: config (serialised, the whole new
 * config) replaces the connection's config on the platform. Emit it before
 * the new credential is used, so that a crash never strands the connection. */
enum ab_status ab_source_control_config(struct ab_driver *d, const char *config, size_t len,
                                        struct ab_error *err);
/* The discover answer: catalog is a serialised AirbyteCatalog object. */
enum ab_status ab_source_catalog(struct ab_driver *d, const char *catalog, size_t len,
                                 struct ab_error *err);
/* Ends an AB_SOURCE_WAIT: step() is called in the next turn. */
void ab_source_resume(struct ab_driver *d);

#endif
