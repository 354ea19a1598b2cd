/* write.c - the write command: stdin into a destination, states out. */
/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "ab/assert.h"
#include "ab/clock.h"
#include "ab/log.h"

#include "driver_int.h"

/* A forced flush is asked for at most this often: what the previous one sent
 * may still be on its way. */
#define FORCED_FLUSH_GAP_US (10 * 1000000LL)

/* ---- rejections ---------------------------------------------------------- */

enum ab_status ab_driver_reject(struct ab_driver *d, size_t stream, uint64_t seq, uint64_t lineno,
                                const char *rejected_by, const char *record_json, size_t record_len,
                                const char *errors_json, struct ab_error *err)
{
    const struct ab_stream *s = &d->catalog.streams[stream];
    struct ab_buf safe_errors;
    enum ab_status rc;

    if (d->fail_on_reject) {
        char masked[512];

        ab_emitter_mask(d->em, errors_json, masked, sizeof(masked));
        return ab_error_set(err, AB_ERR_REJECTED,
                            "line %llu: record of stream '%s' rejected by the %s: %s "
                            "(rejected_records is \"fail\")",
                            (unsigned long long)lineno, s->name, rejected_by, masked);
    }
    if (!d->dl) {
        d->dl = ab_deadletter_open(d->dl_path, err);
        if (!d->dl) {
            return err->code;
        }
    }
    /* the errors are the target's texts and may quote a secret; the record
     * is the data being moved */
    ab_buf_init(&safe_errors, AB_BUF_UNBOUNDED);
    rc = ab_emitter_mask_buf(d->em, errors_json ? errors_json : "[]",
                             errors_json ? strlen(errors_json) : 2, &safe_errors, err);
    if (rc == AB_OK) {
        rc = ab_deadletter_write(d->dl, s->name, s->ns, lineno, rejected_by, record_json,
                                 record_len, safe_errors.data, err);
    }
    ab_buf_release(&safe_errors);
    if (rc != AB_OK) {
        return rc;
    }
    d->dl_dirty = true;
    ab_ckpt_reject(d->ck, stream, seq);
    AB_DEBUG(d->em, "line %llu: record of stream '%s' rejected by the %s: %s",
             (unsigned long long)lineno, s->name, rejected_by, errors_json);
    return AB_OK;
}

/* ---- states -------------------------------------------------------------- */

static enum ab_status emit_state(void *arg, const char *members, size_t len, uint64_t record_count,
                                 uint64_t rejected_count, struct ab_error *err)
{
    struct ab_driver *d = arg;
    enum ab_status rc;

    /* A rejection must be on disk before the state that counts it. */
    if (d->dl_dirty) {
        rc = ab_deadletter_sync(d->dl, err);
        if (rc != AB_OK) {
            return rc;
        }
        d->dl_dirty = false;
    }
    rc = ab_emitter_state(d->em, members, len, record_count, rejected_count);
    if (rc != AB_OK) {
        return ab_error_set(err, rc, "cannot write to stdout");
    }
    return AB_OK;
}

static enum ab_status release_states(struct ab_driver *d, struct ab_error *err)
{
    return ab_ckpt_release(d->ck, emit_state, d, NULL, err);
}

/* ---- the write loop ------------------------------------------------------ */

static long find_stream(struct ab_driver *d, const char *name, const char *ns)
{
    const struct ab_stream *s;

    if (d->last_stream >= 0) {
        s = &d->catalog.streams[d->last_stream];
        if (strcmp(s->name, name) == 0 && strcmp(s->ns ? s->ns : "", ns ? ns : "") == 0) {
            return d->last_stream;
        }
    }
    d->last_stream = ab_catalog_find(&d->catalog, name, ns);
    return d->last_stream;
}

void ab_driver_describe_stream(char *buf, size_t size, const char *name, const char *ns)
{
    if (ns && *ns) {
        (void)snprintf(buf, size, "%s.%s", ns, name);
    } else {
        (void)snprintf(buf, size, "%s", name);
    }
}

static enum ab_status on_record(struct ab_driver *d, struct ab_msg *msg, uint64_t lineno,
                                struct ab_error *err)
{
    struct ab_record rec;
    long idx = find_stream(d, msg->stream, msg->ns);
    char name[300];

    if (idx < 0) {
        ab_driver_describe_stream(name, sizeof(name), msg->stream, msg->ns);
        return ab_error_set(err, AB_ERR_PROTOCOL,
                            "record for stream '%s' which is not in the configured catalog", name);
    }
    rec.stream = (size_t)idx;
    rec.desc = &d->catalog.streams[idx];
    rec.seq = ab_ckpt_record(d->ck, rec.stream);
    rec.lineno = lineno;
    rec.data = msg->data;
    rec.deleted = !ab_json_is_null(ab_json_get(msg->data, "_ab_cdc_deleted_at"));
    return d->dops->record(d->self, &rec, err);
}

static enum ab_status on_state(struct ab_driver *d, struct ab_msg *msg, const char *line,
                               size_t len, struct ab_error *err)
{
    struct ab_buf members;
    enum ab_ckpt_scope scope = AB_CKPT_GLOBAL;
    size_t stream = AB_CKPT_NO_STREAM;
    enum ab_status rc;
    char name[300];

    if (msg->state_type == AB_STATE_STREAM) {
        long idx = find_stream(d, msg->stream, msg->ns);

        scope = AB_CKPT_STREAM;
        if (idx >= 0) {
            stream = (size_t)idx;
        } else {
            ab_driver_describe_stream(name, sizeof(name), msg->stream, msg->ns);
            AB_WARN(d->em,
                    "state for stream '%s', which is not in the configured catalog: it covers "
                    "no records and is passed through in order",
                    name);
        }
    }
    ab_buf_init(&members, AB_BUF_UNBOUNDED);
    rc = ab_proto_state_members_raw(&members, line, len, msg->state, err);
    if (rc == AB_OK) {
        rc = ab_ckpt_state(d->ck, scope, stream, members.data ? members.data : "", members.len,
                           ab_now_us(), err);
    }
    ab_buf_release(&members);
    if (rc == AB_OK && d->dops->state) {
        rc = d->dops->state(d->self, msg, err);
    }
    return rc;
}

static enum ab_status on_trace(struct ab_driver *d, struct ab_msg *msg, struct ab_error *err)
{
    long idx;

    if (msg->status == AB_STATUS_NONE || !msg->stream) {
        return AB_OK;
    }
    idx = find_stream(d, msg->stream, msg->ns);
    if (idx < 0) {
        AB_DEBUG(d->em, "stream status for stream '%s' outside the catalog ignored", msg->stream);
        return AB_OK;
    }
    AB_DEBUG(d->em, "stream '%s' is %s", msg->stream, ab_stream_status_name(msg->status));
    if (d->dops->stream_status) {
        return d->dops->stream_status(d->self, (size_t)idx, msg->status, err);
    }
    return AB_OK;
}

/* A RECORD that failed the JSON intake (protocol.h): dead-lettered with the
 * line as a JSON string (bytes that are not UTF-8 as U+FFFD) and the reason. */
static enum ab_status on_invalid_record(struct ab_driver *d, struct ab_msg *msg, const char *line,
                                        size_t len, uint64_t lineno, struct ab_error *err)
{
    long idx = find_stream(d, msg->stream, msg->ns);
    struct ab_buf rec;
    struct ab_buf errors;
    enum ab_status rc = AB_OK;
    char reason[AB_ERROR_MSG_MAX];
    char name[300];
    size_t i = 0;

    (void)snprintf(reason, sizeof(reason), "%s", err->message);
    ab_error_init(err);
    if (idx < 0) {
        ab_driver_describe_stream(name, sizeof(name), msg->stream, msg->ns);
        return ab_error_set(err, AB_ERR_PROTOCOL,
                            "record for stream '%s' which is not in the configured catalog", name);
    }
    ab_buf_init(&rec, AB_BUF_UNBOUNDED);
    ab_buf_init(&errors, AB_BUF_UNBOUNDED);
    while (rc == AB_OK && i < len) {
        size_t bad = len - i;

        if (ab_utf8_valid(line + i, len - i, &bad)) {
            bad = len - i;
        }
        rc = ab_buf_add(&rec, line + i, bad, err);
        i += bad;
        if (rc == AB_OK && i < len) {
            rc = ab_buf_add(&rec, "\xef\xbf\xbd", 3, err);
            i++;
        }
    }
    if (rc == AB_OK) {
        struct ab_buf quoted;

        ab_buf_init(&quoted, AB_BUF_UNBOUNDED);
        rc = ab_json_write_str(&quoted, rec.data ? rec.data : "", rec.len, err);
        ab_buf_release(&rec);
        rec = quoted;
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&errors, "[{\"field\":", err);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(&errors, msg->invalid_field, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&errors, ",\"code\":\"invalid_json\",\"message\":", err);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(&errors, reason, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&errors, "}]", err);
    }
    if (rc == AB_OK) {
        rc = ab_driver_reject(d, (size_t)idx, ab_ckpt_record(d->ck, (size_t)idx), lineno,
                              "destination", rec.data, rec.len, errors.data, err);
    }
    ab_buf_release(&rec);
    ab_buf_release(&errors);
    return rc;
}

static enum ab_status handle_line(struct ab_driver *d, const char *line, size_t len,
                                  uint64_t lineno, struct ab_error *err)
{
    struct ab_msg msg;
    enum ab_status rc;

    d->lines++;
    ab_json_arena_reset(d->arena);
    rc = ab_msg_parse_in(&msg, d->arena, line, len, err);
    if (rc == AB_ERR_REJECTED && msg.invalid) {
        rc = on_invalid_record(d, &msg, line, len, lineno, err);
        ab_msg_release(&msg);
        return rc;
    }
    if (rc != AB_OK) {
        return rc;
    }
    switch (msg.type) {
    case AB_MSG_RECORD:
        rc = on_record(d, &msg, lineno, err);
        break;
    case AB_MSG_STATE:
        rc = on_state(d, &msg, line, len, err);
        break;
    case AB_MSG_TRACE:
        rc = on_trace(d, &msg, err);
        break;
    case AB_MSG_UNKNOWN:
        if (d->unknown_types++ == 0) {
            AB_WARN(d->em, "line %llu: message type '%s' is unknown and ignored",
                    (unsigned long long)lineno, msg.type_name ? msg.type_name : "");
        }
        break;
    case AB_MSG_LOG:
    case AB_MSG_CONTROL:
    case AB_MSG_OTHER:
        break;
    }
    ab_msg_release(&msg);
    return rc;
}

static void log_progress(struct ab_driver *d, int64_t now)
{
    struct ab_ckpt_stats cs;
    struct ab_http_stats hs = {0};
    double secs = (double)(now - d->last_progress_us) / 1e6;
    double rate;

    ab_ckpt_get_stats(d->ck, &cs);
    if (d->http) {
        ab_http_get_stats(d->http, &hs);
    }
    rate = secs > 0 ? (double)(cs.records - d->last_progress_records) / secs : 0.0;
    AB_INFO(d->em,
            "progress: read %llu records, committed %llu, rejected %llu, retried %llu requests, "
            "%zu requests in flight, %llu of %llu states emitted, %.0f records/s",
            (unsigned long long)cs.records, (unsigned long long)d->committed,
            (unsigned long long)cs.rejected, (unsigned long long)hs.retries,
            d->http ? ab_http_pending(d->http) : 0, (unsigned long long)cs.states_out,
            (unsigned long long)cs.states_in, rate);
    d->last_progress_us = now;
    d->last_progress_records = cs.records;
}

static void log_summary(struct ab_driver *d, bool ok)
{
    struct ab_ckpt_stats cs;
    struct ab_http_stats hs = {0};
    double secs = (double)(ab_now_us() - d->start_us) / 1e6;

    ab_ckpt_get_stats(d->ck, &cs);
    if (d->http) {
        ab_http_get_stats(d->http, &hs);
    }
    AB_INFO(d->em,
            "summary: %s; %llu lines, %llu records read, %llu committed, %llu rejected%s%s%s, "
            "%llu of %llu states emitted, %llu requests (%llu retried), %.1f s, %.0f records/s",
            ok ? "finished" : "stopped", (unsigned long long)d->lines,
            (unsigned long long)cs.records, (unsigned long long)d->committed,
            (unsigned long long)cs.rejected, cs.rejected && d->dl ? " (dead letters in '" : "",
            cs.rejected && d->dl ? d->dl_path : "", cs.rejected && d->dl ? "')" : "",
            (unsigned long long)cs.states_out, (unsigned long long)cs.states_in,
            (unsigned long long)hs.requests, (unsigned long long)hs.retries, secs,
            secs > 0 ? (double)cs.records / secs : 0.0);
    if (d->dops->summary) {
        d->dops->summary(d->self, d->em);
    }
}

/* ---- phases ---------------------------------------------------------------- */

static const char *const phase_names[] = {"reading", "flushing", "done"};

/* The one place the phase changes: READING -> FLUSHING -> DONE. */
static void write_set_phase(struct ab_driver *d, enum write_phase to, const char *why)
{
    AB_ASSERT(to == d->phase + 1);
    AB_DEBUG(d->em, "write: %s -> %s (%s)", phase_names[d->phase], phase_names[to], why);
    d->phase = to;
}

/* ---- timers ----------------------------------------------------------------- */

static enum ab_status on_progress(void *arg, uint64_t id, struct ab_error *err)
{
    (void)id;
    (void)err;
    log_progress(arg, ab_now_us());
    return AB_OK;
}

static enum ab_status arm_wait_timer(struct ab_driver *d, struct ab_error *err);

/* The oldest pending state has waited max_checkpoint_wait_seconds. */
static enum ab_status on_wait_timer(void *arg, uint64_t id, struct ab_error *err)
{
    struct ab_driver *d = arg;
    int64_t now = ab_now_us();
    int64_t oldest = ab_ckpt_oldest_us(d->ck);
    enum ab_status rc;

    (void)id;
    d->wait_timer = 0;
    if (d->phase != WP_READING || oldest < 0) {
        return AB_OK;
    }
    if (now - oldest >= d->max_wait_us && now - d->last_forced_us >= FORCED_FLUSH_GAP_US) {
        d->last_forced_us = now;
        AB_INFO(d->em, "a state has waited %.0f s: flushing", (double)(now - oldest) / 1e6);
        rc = d->dops->flush(d->self, false, err);
        if (rc != AB_OK) {
            return rc;
        }
    }
    return arm_wait_timer(d, err);
}

/* Armed while a state is pending: due when the oldest one has waited
 * max_checkpoint_wait_seconds (and no sooner than the gap after the last
 * forced flush). */
static enum ab_status arm_wait_timer(struct ab_driver *d, struct ab_error *err)
{
    int64_t oldest = ab_ckpt_oldest_us(d->ck);
    int64_t due;

    if (d->wait_timer || oldest < 0 || d->phase != WP_READING) {
        return AB_OK;
    }
    due = oldest + d->max_wait_us;
    if (d->last_forced_us && due < d->last_forced_us + FORCED_FLUSH_GAP_US) {
        due = d->last_forced_us + FORCED_FLUSH_GAP_US;
    }
    d->wait_timer = ab_loop_add_timer(d->loop, due - ab_now_us(), 0, on_wait_timer, d, err);
    return d->wait_timer ? AB_OK : err->code;
}

/* ---- stdin ------------------------------------------------------------------ */

static enum ab_status on_stdin(void *arg, int fd, unsigned ready, struct ab_error *err)
{
    struct ab_driver *d = arg;
    enum ab_status rc;

    (void)ready;
    rc = ab_jsonl_reader_fill(d->reader, fd, &d->eof, err);
    if (rc == AB_ERR_PROTOCOL) {
        /* an oversize line: read no further, but the lines before it are
         * still handed out and loaded */
        d->reader_failed = true;
        d->reader_err = *err;
        ab_error_init(err);
        d->eof = true;
    } else if (rc != AB_OK) {
        return rc;
    }
    if (d->eof) {
        ab_jsonl_reader_finish(d->reader);
        ab_loop_del_fd(d->loop, fd);
    }
    return AB_OK;
}

/* Hands complete lines to the destination until it is busy or none is left;
 * *drained: every buffered line was handled. */
static enum ab_status read_lines(struct ab_driver *d, bool *drained, struct ab_error *err)
{
    char *line;
    size_t len;
    uint64_t lineno;
    enum ab_status rc;

    *drained = false;
    while (!d->input_failed && !d->failed && !(d->dops->busy && d->dops->busy(d->self))) {
        if (!ab_jsonl_reader_next(d->reader, &line, &len, &lineno)) {
            *drained = true;
            return AB_OK;
        }
        rc = handle_line(d, line, len, lineno, err);
        if (rc == AB_ERR_PROTOCOL) {
            /* Bad input: stop reading, but commit what came before it. */
            ab_error_prefix(err, "line %llu", (unsigned long long)lineno);
            d->input_failed = true;
            d->input_err = *err;
            ab_error_init(err);
            return AB_OK;
        }
        if (rc != AB_OK) {
            return rc;
        }
    }
    return AB_OK;
}

/* ---- the turn --------------------------------------------------------------- */

/* Runs at the start of every loop turn: hands over input, moves the phase,
 * releases states, and decides whether stdin is watched. */
static enum ab_status before_wait(void *arg, struct ab_error *err)
{
    struct ab_driver *d = arg;
    bool drained = true;
    enum ab_status rc;

    if (d->failed) {
        *err = d->fatal;
        return err->code;
    }
    if (d->phase == WP_READING) {
        rc = read_lines(d, &drained, err);
        if (rc == AB_OK && d->failed) {
            *err = d->fatal;
            rc = err->code;
        }
        if (rc != AB_OK) {
            return rc;
        }
        if (d->eof && drained && d->reader_failed && !d->input_failed) {
            /* every complete line before the oversize one has been handled */
            d->input_failed = true;
            d->input_err = d->reader_err;
        }
        if ((d->eof && drained) || d->input_failed) {
            rc = d->dops->flush(d->self, true, err);
            if (rc != AB_OK) {
                return rc;
            }
            write_set_phase(d, WP_FLUSHING, d->input_failed ? "bad input" : "end of input");
            ab_loop_del_timer(d->loop, d->wait_timer);
            d->wait_timer = 0;
            ab_loop_fd_mask(d->loop, STDIN_FILENO, 0);
        } else {
            /* back-pressure: stdin is read only when every line read so far
             * was taken */
            ab_loop_fd_mask(d->loop, STDIN_FILENO, drained ? AB_LOOP_READ : 0);
        }
    }
    rc = release_states(d, err);
    if (rc != AB_OK) {
        return rc;
    }
    if (d->phase == WP_READING) {
        return arm_wait_timer(d, err);
    }
    if (d->phase == WP_FLUSHING && (!d->dops->idle || d->dops->idle(d->self))) {
        if (ab_ckpt_pending(d->ck) != 0) {
            return ab_error_set(err, AB_ERR_INTERNAL,
                                "%zu states could not be released although every record "
                                "was sent",
                                ab_ckpt_pending(d->ck));
        }
        write_set_phase(d, WP_DONE, "every record answered");
        ab_loop_stop(d->loop);
    }
    return AB_OK;
}

static enum ab_status write_open(struct ab_driver *d, struct ab_error *err)
{
    enum ab_status rc;

    d->ck = ab_ckpt_new(d->catalog.n, err);
    if (!d->ck) {
        return err->code;
    }
    d->reader = ab_jsonl_reader_new(d->max_line_bytes, err);
    if (!d->reader) {
        return err->code;
    }
    d->arena = ab_json_arena_new(err);
    if (!d->arena) {
        return err->code;
    }
    rc = d->dops->open(d, &d->self, err);
    if (rc != AB_OK) {
        return rc;
    }
    ab_loop_set_http(d->loop, d->http);
    rc = ab_loop_add_fd(d->loop, STDIN_FILENO, AB_LOOP_READ, on_stdin, d, err);
    if (rc == AB_OK && !ab_loop_add_timer(d->loop, d->progress_every_us, d->progress_every_us,
                                          on_progress, d, err)) {
        rc = err->code;
    }
    ab_loop_set_before_wait(d->loop, before_wait, d);
    return rc;
}

enum ab_status ab_driver_write(struct ab_driver *d, struct ab_error *err)
{
    enum ab_status rc;

    rc = write_open(d, err);
    if (rc != AB_OK) {
        return rc;
    }
    if (d->fail_on_reject) {
        AB_INFO(d->em, "%s %s: writing %zu stream(s); a rejected record fails the sync", d->name,
                d->version, d->catalog.n);
    } else {
        AB_INFO(d->em, "%s %s: writing %zu stream(s); rejected records go to '%s'", d->name,
                d->version, d->catalog.n, d->dl_path);
    }
    d->start_us = ab_now_us();
    d->last_progress_us = d->start_us;
    rc = ab_loop_run(d->loop, err);
    if (ab_driver_signal_seen) {
        return AB_OK;
    }
    if (rc == AB_OK && d->input_failed) {
        *err = d->input_err;
        rc = err->code;
    }
    if (rc != AB_OK) {
        struct ab_error ignored;

        /* Whatever is committed may still go out; nothing else does. */
        ab_error_init(&ignored);
        (void)release_states(d, &ignored);
    }
    if (d->dops->finish) {
        struct ab_error ferr;
        enum ab_status frc;

        ab_error_init(&ferr);
        frc = d->dops->finish(d->self, rc == AB_OK, &ferr);
        if (rc == AB_OK && frc != AB_OK) {
            *err = ferr;
            rc = frc;
        }
    }
    if (rc == AB_OK) {
        rc = release_states(d, err);
    }
    log_progress(d, ab_now_us());
    log_summary(d, rc == AB_OK);
    if (d->dl) {
        struct ab_error derr;

        ab_error_init(&derr);
        if (ab_deadletter_close(d->dl, &derr) != AB_OK && rc == AB_OK) {
            *err = derr;
            rc = derr.code;
        }
        d->dl = NULL;
    }
    return rc;
}

void ab_driver_write_release(struct ab_driver *d)
{
    if (d->dl) {
        struct ab_error ignored;

        (void)ab_deadletter_close(d->dl, &ignored);
        d->dl = NULL;
    }
    ab_jsonl_reader_free(d->reader);
    d->reader = NULL;
    ab_json_arena_free(d->arena);
    d->arena = NULL;
    ab_ckpt_free(d->ck);
    d->ck = NULL;
}
