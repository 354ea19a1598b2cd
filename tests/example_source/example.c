/* example.c - source-example: the smallest real source on the connector core. */
/* SPDX-License-Identifier: MIT */
#include "example.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/buf.h"
#include "ab/clock.h"
#include "ab/json.h"
#include "ab/log.h"
#include "ab/source.h"

/*
 * One stream, "numbers": rows {"id", "square", "label"} with id 1..count.
 * full_refresh reads them all; incremental resumes after the state's cursor
 * ({"cursor": <last id emitted>}). A STATE follows every state_every rows
 * and the last row. Each step() emits one page of page_size rows; with
 * page_delay_ms > 0 the source waits for a loop timer between pages (the
 * path a rate-limited HTTP source or a database socket takes). With
 * customer_fields rows also carry "email" and a fixed "updated_at", so
 * that they can load as customers.
 */

#define EX_NAME "source-example"

struct example {
    struct ab_driver *d;
    int64_t count;
    int64_t page_size;
    int64_t state_every;
    int64_t page_delay_ms;
    bool customer_fields;
    int64_t next_id; /* the next row to emit */
    int64_t last_state_id;
    bool started;
    bool stated; /* a state was emitted by this run */
    struct ab_buf row;
    struct ab_buf state;
};

static enum ab_status ex_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err)
{
    const char *token = ab_json_get_str(ab_driver_config(d), "token", NULL);

    (void)err;
    if (token && strcmp(token, "wrong") == 0) {
        ab_check_problem(chk, "token: refused by the example service");
    }
    return AB_OK;
}

static const char catalog_json[] =
    "{\"streams\":[{\"name\":\"numbers\",\"json_schema\":{\"$schema\":"
    "\"http://json-schema.org/draft-07/schema#\",\"type\":\"object\",\"properties\":{"
    "\"id\":{\"type\":\"integer\"},\"square\":{\"type\":\"integer\"},"
    "\"label\":{\"type\":\"string\"}}},"
    "\"supported_sync_modes\":[\"full_refresh\",\"incremental\"],"
    "\"source_defined_cursor\":true,\"default_cursor_field\":[\"id\"],"
    "\"source_defined_primary_key\":[[\"id\"]],\"is_resumable\":true}]}";

static enum ab_status ex_discover(struct ab_driver *d, struct ab_error *err)
{
    return ab_source_catalog(d, catalog_json, sizeof(catalog_json) - 1, err);
}

static void ex_close(void *self)
{
    struct example *x = self;

    if (x) {
        ab_buf_release(&x->row);
        ab_buf_release(&x->state);
        free(x);
    }
}

static enum ab_status ex_open(struct ab_driver *d, void **self, struct ab_error *err)
{
    const struct ab_catalog *cat = ab_driver_catalog(d);
    yajl_val config = ab_driver_config(d);
    struct example *x;
    yajl_val st;
    int64_t cursor = 0;

    if (cat->n != 1 || strcmp(cat->streams[0].name, "numbers") != 0) {
        return ab_error_set(err, AB_ERR_CONFIG, "catalog: the only stream is 'numbers'");
    }
    x = calloc(1, sizeof(*x));
    if (!x) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    x->d = d;
    x->count = ab_json_get_int(config, "count", 0);
    x->page_size = ab_json_get_int(config, "page_size", 1000);
    x->state_every = ab_json_get_int(config, "state_every", 10000);
    x->page_delay_ms = ab_json_get_int(config, "page_delay_ms", 0);
    x->customer_fields = ab_json_get_bool(config, "customer_fields", false);
    ab_buf_init(&x->row, 4096);
    ab_buf_init(&x->state, 4096);
    st = ab_source_state_of(d, 0);
    if (cat->streams[0].sync_mode == AB_SYNC_INCREMENTAL && st) {
        if (!ab_json_int(ab_json_get(st, "cursor"), &cursor) || cursor < 0) {
            ex_close(x);
            return ab_error_set(err, AB_ERR_CONFIG,
                                "state of stream 'numbers': \"cursor\" must be a whole number "
                                ">= 0");
        }
    }
    x->next_id = cursor + 1;
    x->last_state_id = cursor;
    *self = x;
    return AB_OK;
}

/* A STATE saying every row up to cursor was emitted. */
static enum ab_status emit_state(struct example *x, int64_t cursor, struct ab_error *err)
{
    ab_buf_reset(&x->state);
    if (ab_buf_printf(&x->state, err, "{\"cursor\":%" PRId64 "}", cursor) != AB_OK) {
        return err->code;
    }
    x->last_state_id = cursor;
    x->stated = true;
    return ab_source_stream_state(x->d, 0, x->state.data, x->state.len, err);
}

static enum ab_status on_delay(void *arg, uint64_t id, struct ab_error *err)
{
    struct example *x = arg;

    (void)id;
    (void)err;
    ab_source_resume(x->d);
    return AB_OK;
}

static enum ab_status ex_step(void *self, enum ab_source_next *next, struct ab_error *err)
{
    struct example *x = self;
    enum ab_status rc;
    int64_t end;

    if (!x->started) {
        x->started = true;
        rc = ab_source_stream_status(x->d, 0, AB_STATUS_STARTED, err);
        if (rc == AB_OK) {
            rc = ab_source_estimate(x->d, 0, x->count - x->next_id + 1, -1, err);
        }
        if (rc == AB_OK) {
            rc = ab_source_stream_status(x->d, 0, AB_STATUS_RUNNING, err);
        }
        if (rc != AB_OK) {
            return rc;
        }
    }
    end = x->next_id + x->page_size;
    for (; x->next_id < end && x->next_id <= x->count; x->next_id++) {
        int64_t id = x->next_id;

        ab_buf_reset(&x->row);
        rc = ab_buf_printf(&x->row, err,
                           "{\"id\":%" PRId64 ",\"square\":%" PRId64 ",\"label\":\"n%" PRId64 "\"}",
                           id, id * id % 1000000007, id);
        if (rc == AB_OK && x->customer_fields) {
            ab_buf_truncate(&x->row, x->row.len - 1);
            rc = ab_buf_printf(&x->row, err,
                               ",\"email\":\"n%" PRId64
                               "@example.com\",\"updated_at\":\"2026-01-01T00:00:00Z\"}",
                               id);
        }
        if (rc == AB_OK) {
            rc = ab_source_record(x->d, 0, x->row.data, x->row.len, err);
        }
        if (rc == AB_OK && id - x->last_state_id >= x->state_every) {
            rc = emit_state(x, id, err);
        }
        if (rc != AB_OK) {
            return rc;
        }
    }
    if (x->next_id > x->count) {
        /* a final state, also when nothing was new */
        if (x->last_state_id < x->count || !x->stated) {
            rc = emit_state(x, x->count, err);
            if (rc != AB_OK) {
                return rc;
            }
        }
        *next = AB_SOURCE_DONE;
        return ab_source_stream_status(x->d, 0, AB_STATUS_COMPLETE, err);
    }
    if (x->page_delay_ms > 0) {
        if (!ab_loop_add_timer(ab_driver_loop(x->d), x->page_delay_ms * 1000, 0, on_delay, x,
                               err)) {
            return err->code;
        }
        *next = AB_SOURCE_WAIT;
        return AB_OK;
    }
    *next = AB_SOURCE_MORE;
    return AB_OK;
}

static void ex_summary(void *self, struct ab_emitter *em)
{
    const struct example *x = self;

    AB_INFO(em, "example: last id %" PRId64 " of %" PRId64, x->next_id - 1, x->count);
}

const struct ab_source_ops ex_source_ops = {
    .name = EX_NAME,
    .version = AB_VERSION,
    .spec_json = ex_spec_json,
    .check = ex_check,
    .discover = ex_discover,
    .open = ex_open,
    .step = ex_step,
    .summary = ex_summary,
    .close = ex_close,
};
