/* read.c - the discover and read commands: a source's messages out. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/assert.h"
#include "ab/clock.h"
#include "ab/log.h"

#include "driver_int.h"

/* Largest --state file accepted. */
#define STATE_FILE_MAX ((size_t)64 * 1024 * 1024)

/* ---- the input state -------------------------------------------------------- */

/* Finds the catalog stream of a stream_descriptor; -1 when absent. */
static long descriptor_stream(struct ab_driver *d, yajl_val desc)
{
    const char *name = ab_json_get_str(desc, "name", NULL);
    const char *ns = ab_json_get_str(desc, "namespace", NULL);

    return name ? ab_catalog_find(&d->catalog, name, ns) : -1;
}

static void take_stream_states(struct ab_driver *d, yajl_val list)
{
    if (!YAJL_IS_ARRAY(list)) {
        return;
    }
    for (size_t i = 0; i < list->u.array.len; i++) {
        yajl_val ss = list->u.array.values[i];
        long idx = descriptor_stream(d, ab_json_get(ss, "stream_descriptor"));

        if (idx >= 0) {
            d->rs[idx].state_in = ab_json_get(ss, "stream_state");
        }
    }
}

/* Parses --state: an array of AirbyteStateMessage objects. States of
 * streams outside the catalog are ignored (the platform keeps them). */
static enum ab_status load_state(struct ab_driver *d, struct ab_error *err)
{
    struct ab_buf text;
    char why[256];
    enum ab_status rc;
    yajl_val root;

    if (!d->state_path) {
        return AB_OK;
    }
    ab_buf_init(&text, STATE_FILE_MAX);
    rc = ab_buf_read_file(d->state_path, STATE_FILE_MAX, &text, why, sizeof(why));
    if (rc != AB_OK) {
        ab_buf_release(&text);
        return ab_error_set(err, AB_ERR_CONFIG, "cannot read state '%s': %s", d->state_path, why);
    }
    if (text.len == 0 || strspn(text.data, " \t\r\n") == text.len) {
        ab_buf_release(&text);
        return AB_OK;
    }
    root = ab_json_parse(text.data, text.len, err);
    ab_buf_release(&text);
    if (!root) {
        ab_error_prefix(err, "state '%s'", d->state_path);
        err->code = AB_ERR_CONFIG;
        return AB_ERR_CONFIG;
    }
    d->state_tree = root;
    if (!YAJL_IS_ARRAY(root)) {
        return ab_error_set(err, AB_ERR_CONFIG,
                            "state '%s': expected a JSON array of state messages", d->state_path);
    }
    for (size_t i = 0; i < root->u.array.len; i++) {
        yajl_val m = root->u.array.values[i];
        const char *type = ab_json_get_str(m, "type", "STREAM");

        if (strcmp(type, "STREAM") == 0) {
            yajl_val s = ab_json_get(m, "stream");
            long idx = descriptor_stream(d, ab_json_get(s, "stream_descriptor"));

            if (idx >= 0) {
                d->rs[idx].state_in = ab_json_get(s, "stream_state");
            }
        } else if (strcmp(type, "GLOBAL") == 0) {
            yajl_val g = ab_json_get(m, "global");

            d->shared_state = ab_json_get(g, "shared_state");
            take_stream_states(d, ab_json_get(g, "stream_states"));
        } else {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "state '%s': [%zu]: state type '%s' is not supported (STREAM "
                                "or GLOBAL)",
                                d->state_path, i, type);
        }
    }
    return AB_OK;
}

yajl_val ab_source_state_of(struct ab_driver *d, size_t stream)
{
    return d->rs && stream < d->catalog.n ? d->rs[stream].state_in : NULL;
}

yajl_val ab_source_shared_state(struct ab_driver *d)
{
    return d->shared_state;
}

/* ---- what a source emits ------------------------------------------------------ */

static enum ab_status out_error(struct ab_error *err)
{
    return ab_error_set(err, AB_ERR_IO, "cannot write to stdout");
}

enum ab_status ab_source_record(struct ab_driver *d, size_t stream, const char *data, size_t len,
                                struct ab_error *err)
{
    const struct ab_stream *s;

    AB_ASSERT(stream < d->catalog.n);
    s = &d->catalog.streams[stream];
    if (ab_emitter_record(d->em, s->name, s->ns, data, len) != AB_OK) {
        return out_error(err);
    }
    d->rs[stream].since_state++;
    d->since_global++;
    d->emitted++;
    return AB_OK;
}

/* Appends "stream_descriptor":{...},"stream_state":<state> to b. */
static enum ab_status add_stream_state(struct ab_buf *b, const struct ab_stream *s,
                                       const char *state, size_t len, struct ab_error *err)
{
    enum ab_status rc = ab_buf_adds(b, "\"stream_descriptor\":{\"name\":", err);

    if (rc == AB_OK) {
        rc = ab_json_write_cstr(b, s->name, err);
    }
    if (rc == AB_OK && s->ns) {
        rc = ab_buf_adds(b, ",\"namespace\":", err);
        if (rc == AB_OK) {
            rc = ab_json_write_cstr(b, s->ns, err);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(b, "},\"stream_state\":", err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_add(b, state, len, err);
    }
    return rc;
}

enum ab_status ab_source_stream_state(struct ab_driver *d, size_t stream, const char *state,
                                      size_t len, struct ab_error *err)
{
    struct ab_buf *b = &d->scratch;
    enum ab_status rc;

    AB_ASSERT(stream < d->catalog.n);
    ab_buf_reset(b);
    rc = ab_buf_adds(b, "\"type\":\"STREAM\",\"stream\":{", err);
    if (rc == AB_OK) {
        rc = add_stream_state(b, &d->catalog.streams[stream], state, len, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(b, '}', err);
    }
    if (rc != AB_OK) {
        return rc;
    }
    if (ab_emitter_source_state(d->em, b->data, b->len, d->rs[stream].since_state) != AB_OK) {
        return out_error(err);
    }
    d->rs[stream].since_state = 0;
    d->states_out++;
    return AB_OK;
}

enum ab_status ab_source_global_state(struct ab_driver *d, const char *shared,
                                      const char *const *states, struct ab_error *err)
{
    struct ab_buf *b = &d->scratch;
    enum ab_status rc;
    bool first = true;

    ab_buf_reset(b);
    rc = ab_buf_adds(b, "\"type\":\"GLOBAL\",\"global\":{", err);
    if (rc == AB_OK && shared) {
        rc = ab_buf_adds(b, "\"shared_state\":", err);
        if (rc == AB_OK) {
            rc = ab_buf_adds(b, shared, err);
        }
        if (rc == AB_OK) {
            rc = ab_buf_addc(b, ',', err);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(b, "\"stream_states\":[", err);
    }
    for (size_t i = 0; rc == AB_OK && i < d->catalog.n; i++) {
        if (!states || !states[i]) {
            continue;
        }
        rc = ab_buf_adds(b, first ? "{" : ",{", err);
        if (rc == AB_OK) {
            rc = add_stream_state(b, &d->catalog.streams[i], states[i], strlen(states[i]), err);
        }
        if (rc == AB_OK) {
            rc = ab_buf_addc(b, '}', err);
        }
        first = false;
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(b, "]}", err);
    }
    if (rc != AB_OK) {
        return rc;
    }
    if (ab_emitter_source_state(d->em, b->data, b->len, d->since_global) != AB_OK) {
        return out_error(err);
    }
    d->since_global = 0;
    for (size_t i = 0; i < d->catalog.n; i++) {
        d->rs[i].since_state = 0;
    }
    d->states_out++;
    return AB_OK;
}

enum ab_status ab_source_stream_status(struct ab_driver *d, size_t stream,
                                       enum ab_stream_status status, struct ab_error *err)
{
    const struct ab_stream *s;

    AB_ASSERT(stream < d->catalog.n && status != AB_STATUS_NONE);
    s = &d->catalog.streams[stream];
    if (ab_emitter_stream_status(d->em, s->name, s->ns, ab_stream_status_name(status)) != AB_OK) {
        return out_error(err);
    }
    d->rs[stream].last = status;
    return AB_OK;
}

enum ab_status ab_source_estimate(struct ab_driver *d, size_t stream, int64_t rows, int64_t bytes,
                                  struct ab_error *err)
{
    const struct ab_stream *s;

    AB_ASSERT(stream < d->catalog.n);
    s = &d->catalog.streams[stream];
    if (ab_emitter_estimate(d->em, s->name, s->ns, rows, bytes) != AB_OK) {
        return out_error(err);
    }
    return AB_OK;
}

enum ab_status ab_source_control_config(struct ab_driver *d, const char *config, size_t len,
                                        struct ab_error *err)
{
    if (ab_emitter_control_config(d->em, config, len) != AB_OK) {
        return out_error(err);
    }
    return AB_OK;
}

enum ab_status ab_source_catalog(struct ab_driver *d, const char *catalog, size_t len,
                                 struct ab_error *err)
{
    if (ab_emitter_catalog(d->em, catalog, len) != AB_OK) {
        return out_error(err);
    }
    return AB_OK;
}

void ab_source_resume(struct ab_driver *d)
{
    if (d->next == AB_SOURCE_WAIT) {
        d->next = AB_SOURCE_MORE;
        ab_loop_wake(d->loop);
    }
}

/* ---- the run ------------------------------------------------------------------ */

static enum ab_status on_progress(void *arg, uint64_t id, struct ab_error *err)
{
    struct ab_driver *d = arg;
    double secs = (double)(ab_now_us() - d->start_us) / 1e6;

    (void)id;
    (void)err;
    AB_INFO(d->em, "progress: %llu records, %llu states emitted, %.0f records/s",
            (unsigned long long)d->emitted, (unsigned long long)d->states_out,
            secs > 0 ? (double)d->emitted / secs : 0.0);
    return AB_OK;
}

/* Runs at the start of every turn: one step of the source when it has work. */
static enum ab_status before_wait(void *arg, struct ab_error *err)
{
    struct ab_driver *d = arg;
    enum ab_status rc;

    if (d->failed) {
        *err = d->fatal;
        return err->code;
    }
    if (d->next != AB_SOURCE_MORE) {
        return AB_OK;
    }
    rc = d->sops->step(d->self, &d->next, err);
    if (rc == AB_OK && d->failed) {
        *err = d->fatal;
        rc = err->code;
    }
    if (rc != AB_OK) {
        return rc;
    }
    if (d->next == AB_SOURCE_DONE) {
        ab_loop_stop(d->loop);
    } else if (d->next == AB_SOURCE_MORE) {
        ab_loop_wake(d->loop);
    }
    return AB_OK;
}

/* After a fatal error: the streams that started and did not finish. */
static void mark_incomplete(struct ab_driver *d)
{
    struct ab_error ignored;

    for (size_t i = 0; i < d->catalog.n; i++) {
        if (d->rs[i].last == AB_STATUS_STARTED || d->rs[i].last == AB_STATUS_RUNNING) {
            ab_error_init(&ignored);
            (void)ab_source_stream_status(d, i, AB_STATUS_INCOMPLETE, &ignored);
        }
    }
}

enum ab_status ab_driver_read(struct ab_driver *d, struct ab_error *err)
{
    enum ab_status rc;

    ab_buf_init(&d->scratch, AB_BUF_UNBOUNDED);
    d->rs = calloc(d->catalog.n ? d->catalog.n : 1, sizeof(*d->rs));
    if (!d->rs) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (streams)");
    }
    rc = load_state(d, err);
    if (rc != AB_OK) {
        return rc;
    }
    rc = d->sops->open(d, &d->self, err);
    if (rc != AB_OK) {
        return rc;
    }
    ab_loop_set_http(d->loop, d->http);
    ab_loop_set_before_wait(d->loop, before_wait, d);
    if (!ab_loop_add_timer(d->loop, d->progress_every_us, d->progress_every_us, on_progress, d,
                           err)) {
        return err->code;
    }
    AB_INFO(d->em, "%s %s: reading %zu stream(s)%s", d->name, d->version, d->catalog.n,
            d->state_path ? " from the given state" : "");
    d->start_us = ab_now_us();
    d->next = AB_SOURCE_MORE;
    rc = ab_loop_run(d->loop, err);
    if (ab_driver_signal_seen) {
        mark_incomplete(d);
        return AB_OK;
    }
    if (rc != AB_OK) {
        mark_incomplete(d);
    } else if (ab_emitter_flush(d->em) != AB_OK) {
        rc = out_error(err);
    }
    if (d->sops->summary) {
        d->sops->summary(d->self, d->em);
    }
    AB_INFO(d->em, "summary: %s; %llu records, %llu states emitted, %.1f s",
            rc == AB_OK ? "finished" : "stopped", (unsigned long long)d->emitted,
            (unsigned long long)d->states_out, (double)(ab_now_us() - d->start_us) / 1e6);
    return rc;
}

/* One DESTINATION_CATALOG message: the destination's catalog, compacted. */
static enum ab_status destination_discover(struct ab_driver *d, struct ab_error *err)
{
    const char *text = d->dops->destination_catalog_json;
    struct ab_buf out;
    yajl_val root;
    enum ab_status rc;

    if (!text) {
        return ab_error_set(err, AB_ERR_CONFIG, "%s has no discover: it loads fixed objects",
                            d->name);
    }
    root = ab_json_parse(text, strlen(text), err);
    if (!root) {
        return ab_error_set(err, AB_ERR_INTERNAL, "the destination catalog is not valid JSON");
    }
    if (!YAJL_IS_ARRAY(ab_json_get(root, "operations"))) {
        ab_json_free(root);
        return ab_error_set(err, AB_ERR_INTERNAL, "the destination catalog has no operations");
    }
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    rc = ab_buf_adds(&out, "{\"type\":\"DESTINATION_CATALOG\",\"destination_catalog\":", err);
    if (rc == AB_OK) {
        rc = ab_json_write(&out, root, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(&out, '}', err);
    }
    if (rc == AB_OK) {
        rc = ab_emitter_raw(d->em, out.data, out.len, true);
        if (rc != AB_OK) {
            rc = ab_error_set(err, rc, "cannot write to stdout");
        }
    }
    ab_buf_release(&out);
    ab_json_free(root);
    return rc;
}

enum ab_status ab_driver_discover(struct ab_driver *d, struct ab_error *err)
{
    if (d->kind == AB_KIND_DESTINATION) {
        return destination_discover(d, err);
    }
    return d->sops->discover(d, err);
}

void ab_driver_read_release(struct ab_driver *d)
{
    free(d->rs);
    d->rs = NULL;
    if (d->state_tree) {
        ab_json_free(d->state_tree);
        d->state_tree = NULL;
    }
    ab_buf_release(&d->scratch);
}
