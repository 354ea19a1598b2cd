/* write.c - the write command: stdin into a destination, states out. */
/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ab/assert.h"
#include "ab/clock.h"
#include "ab/json.h"
#include "ab/log.h"
#include "ab/mapping.h"

#include "driver_int.h"

/* A forced flush is asked for at most this often: what the previous one sent
 * may still be on its way. */
#define FORCED_FLUSH_GAP_US (10 * 1000000LL)

/* ---- rejections ---------------------------------------------------------- */

/* A dry run details this many rejections, then only counts them. */
#define DRY_REJECTS_SHOWN 100
/* and shows at most this much of a request body */
#define DRY_BODY_SHOWN ((size_t)64 * 1024)

bool ab_driver_dry_run(const struct ab_driver *d)
{
    return d->run.dry_run;
}

void ab_driver_dry_request(struct ab_driver *d, const char *object, const char *op,
                           const char *label, size_t records, const char *body, size_t len)
{
    struct dry_row *row = NULL;

    for (size_t i = 0; i < d->ndry; i++) {
        if (strcmp(d->dry[i].object, object) == 0 && strcmp(d->dry[i].op, op) == 0) {
            row = &d->dry[i];
        }
    }
    if (!row && d->ndry < DRY_ROWS) {
        row = &d->dry[d->ndry++];
        (void)snprintf(row->object, sizeof(row->object), "%s", object);
        (void)snprintf(row->op, sizeof(row->op), "%s", op);
    }
    if (row) {
        row->requests++;
        row->records += records;
        row->bytes += len;
    }
    if (d->dry_shown < (uint64_t)d->run.show_requests) {
        d->dry_shown++;
        AB_INFO(d->em, "dry run: request %llu: %s (%zu records, %zu bytes): %.*s%s",
                (unsigned long long)d->dry_shown, label, records, len,
                (int)(len < DRY_BODY_SHOWN ? len : DRY_BODY_SHOWN), body ? body : "",
                len > DRY_BODY_SHOWN ? " [...]" : "");
    }
}

static void log_dry_summary(struct ab_driver *d)
{
    uint64_t req = 0;
    uint64_t recs = 0;

    for (size_t i = 0; i < d->ndry; i++) {
        const struct dry_row *r = &d->dry[i];

        AB_INFO(d->em, "dry run: %s %s: %llu requests, %llu records, %llu bytes would be sent",
                r->object, r->op, (unsigned long long)r->requests, (unsigned long long)r->records,
                (unsigned long long)r->bytes);
        req += r->requests;
        recs += r->records;
    }
    AB_INFO(d->em,
            "dry run: nothing was sent; %llu requests with %llu records would be sent, %llu "
            "records would be rejected (%llu by the destination, %llu by the target's rules "
            "checked locally)%s",
            (unsigned long long)req, (unsigned long long)recs,
            (unsigned long long)(d->dry_rejects[0] + d->dry_rejects[1]),
            (unsigned long long)d->dry_rejects[0], (unsigned long long)d->dry_rejects[1],
            d->mode == WM_WRITE ? "; states held back" : "");
}

/* A crossed rejection threshold: the error, its secrets masked. */
static enum ab_status over_limit(struct ab_driver *d, size_t stream, const char *errors_json,
                                 struct ab_error *err)
{
    const struct ab_stream *s = &d->catalog.streams[stream];
    char name[300];
    char masked[AB_ERROR_MSG_MAX];
    enum ab_status rc;

    ab_driver_describe_stream(name, sizeof(name), s->name, s->ns);
    rc = ab_rejlimit_reject(d->rejlimit, stream, name, errors_json, err);
    if (rc != AB_OK) {
        ab_emitter_mask(d->em, err->message, masked, sizeof(masked));
        (void)snprintf(err->message, sizeof(err->message), "%s", masked);
    }
    return rc;
}

/* A dry run goes on after the rejection a real run stops at (rejected_records
 * "fail", a crossed rejection threshold) and says so, once. */
static void dry_would_stop(struct ab_driver *d, const struct ab_rejection *r)
{
    struct ab_error e;

    if (d->dry_stop_noted) {
        return;
    }
    ab_error_init(&e);
    if (d->fail_on_reject) {
        (void)ab_error_set(&e, AB_ERR_REJECTED, "rejected_records is \"fail\"");
    } else if (over_limit(d, r->stream, r->errors_json, &e) == AB_OK) {
        return;
    }
    d->dry_stop_noted = true;
    AB_WARN(d->em, "dry run: a real run would stop at line %llu of stream '%s': %s",
            (unsigned long long)r->lineno, d->catalog.streams[r->stream].name, e.message);
}

/* load: the input file a record (seq) came from. */
static const char *load_file_of(const struct ab_driver *d, uint64_t seq)
{
    size_t i = d->cur_file;

    while (i > 0 && d->file_seq[i] > seq) {
        i--;
    }
    return d->lf[i].path;
}

/* Opens the configured sink at the first rejection; a local file without a
 * path gets its default name (ab_driver_name_sink()). */
static enum ab_status open_sink(struct ab_driver *d, struct ab_error *err)
{
    struct ab_deadletter_target t = d->dl_target;

    if (t.kind == AB_DL_FILE && (!t.path || !*t.path)) {
        t.path = d->dl_default_path;
    }
    d->dl = ab_deadletter_open_target(&t, err);
    return d->dl ? AB_OK : err->code;
}

enum ab_status ab_driver_reject_ex(struct ab_driver *d, const struct ab_rejection *r,
                                   struct ab_error *err)
{
    const struct ab_stream *s = &d->catalog.streams[r->stream];
    struct ab_rejected line;
    struct ab_buf safe_errors;
    enum ab_status rc;

    if (d->s_rej) {
        d->s_rej[r->stream]++;
    }
    if (d->run.dry_run) {
        /* nothing is written: the rejection is reported */
        bool by_target = strcmp(r->rejected_by, "target") == 0;

        if (d->dry_rejects[0] + d->dry_rejects[1] < DRY_REJECTS_SHOWN) {
            AB_INFO(d->em, "dry run: line %llu%s%s of stream '%s' would be rejected by the %s: %s",
                    (unsigned long long)r->lineno, d->mode == WM_LOAD ? " of " : "",
                    d->mode == WM_LOAD ? load_file_of(d, r->seq) : "", s->name,
                    by_target ? "target (its rules, checked locally)" : "destination",
                    r->errors_json);
        }
        d->dry_rejects[by_target]++;
        ab_ckpt_reject(d->ck, r->stream, r->seq);
        dry_would_stop(d, r);
        return AB_OK;
    }
    rc = ab_mapping_annotate_errors(r->mapping, r->errors_json, &d->dl_errors, err);
    if (rc != AB_OK) {
        return rc;
    }
    if (d->fail_on_reject) {
        char masked[512];

        ab_emitter_mask(d->em, d->dl_errors.data, masked, sizeof(masked));
        return ab_error_set(err, AB_ERR_REJECTED,
                            "line %llu: record of stream '%s' rejected by the %s: %s "
                            "(rejected_records is \"fail\")",
                            (unsigned long long)r->lineno, s->name, r->rejected_by, masked);
    }
    if (!d->dl) {
        rc = open_sink(d, err);
        if (rc != AB_OK) {
            return rc;
        }
    }
    ab_deadletter_set_file(d->dl, d->mode == WM_LOAD ? load_file_of(d, r->seq) : NULL);
    memset(&line, 0, sizeof(line));
    line.stream = s->name;
    line.ns = s->ns;
    line.lineno = r->lineno;
    line.rejected_by = r->rejected_by;
    line.received = r->received;
    line.received_len = r->received_len;
    line.sent = r->sent;
    line.sent_len = r->sent_len;
    /* the errors are the target's texts and may quote a secret; the record
     * is the data being moved */
    ab_buf_init(&safe_errors, AB_BUF_UNBOUNDED);
    rc = ab_emitter_mask_buf(d->em, d->dl_errors.data ? d->dl_errors.data : "[]",
                             d->dl_errors.data ? d->dl_errors.len : 2, &safe_errors, err);
    if (rc == AB_OK) {
        line.errors_json = safe_errors.data;
        rc = ab_deadletter_put(d->dl, &line, err);
    }
    ab_buf_release(&safe_errors);
    if (rc != AB_OK) {
        return rc;
    }
    d->dl_dirty = true;
    ab_ckpt_reject(d->ck, r->stream, r->seq);
    rc = over_limit(d, r->stream, r->errors_json, err);
    if (rc != AB_OK) {
        return rc;
    }
    AB_DEBUG(d->em, "line %llu: record of stream '%s' rejected by the %s: %s",
             (unsigned long long)r->lineno, s->name, r->rejected_by, d->dl_errors.data);
    return AB_OK;
}

enum ab_status ab_driver_reject(struct ab_driver *d, size_t stream, uint64_t seq, uint64_t lineno,
                                const char *rejected_by, const char *record_json, size_t record_len,
                                const char *errors_json, struct ab_error *err)
{
    struct ab_rejection r;

    memset(&r, 0, sizeof(r));
    r.stream = stream;
    r.seq = seq;
    r.lineno = lineno;
    r.rejected_by = rejected_by;
    r.received = record_json;
    r.received_len = record_len;
    r.errors_json = errors_json;
    return ab_driver_reject_ex(d, &r, err);
}

/* ---- states -------------------------------------------------------------- */

/* load: a mark "file offset line complete" was released: everything
 * before it is committed. */
static enum ab_status on_mark(struct ab_driver *d, const char *members, struct ab_error *err)
{
    unsigned long long f = 0;
    unsigned long long off = 0;
    unsigned long long line = 0;
    int complete = 0;

    if (sscanf(members, "%llu %llu %llu %d", &f, &off, &line, &complete) != 4 ||
        f >= d->run.nfiles) {
        return ab_error_set(err, AB_ERR_INTERNAL, "bad load mark '%s'", members);
    }
    for (size_t i = 0; i < f; i++) {
        d->lf[i].complete = true;
    }
    d->lf[f].offset = off;
    d->lf[f].line = line;
    d->lf[f].complete = complete != 0;
    d->ckpt_dirty = true;
    return AB_OK;
}

static enum ab_status emit_state(void *arg, const char *members, size_t len, uint64_t record_count,
                                 uint64_t rejected_count, struct ab_error *err)
{
    struct ab_driver *d = arg;
    enum ab_status rc;

    /* A rejection must be stored before the state that counts it. */
    if (d->dl_dirty && d->dl) {
        rc = ab_deadletter_sync(d->dl, err);
        if (rc != AB_OK) {
            return rc;
        }
        d->dl_dirty = false;
    }
    if (d->mode == WM_LOAD) {
        return on_mark(d, members, err);
    }
    if (d->run.dry_run) {
        d->dry_states++;
        return AB_OK;
    }
    (void)snprintf(d->last_state, sizeof(d->last_state), "%.*s", (int)(len < 500 ? len : 500),
                   members);
    d->states_acked++;
    rc = ab_emitter_state(d->em, members, len, record_count, rejected_count);
    if (rc != AB_OK) {
        return ab_error_set(err, rc, "cannot write to stdout");
    }
    return AB_OK;
}

/* load: writes the checkpoint file when progress was made, at most every
 * CKPT_GAP_US while the run goes on (each write is an fsync), at once when
 * forced (the end of the run, a signal, an error). */
#define CKPT_GAP_US (1000000LL)

static enum ab_status write_checkpoint(struct ab_driver *d, bool force, struct ab_error *err)
{
    int64_t now;
    enum ab_status rc;

    if (!d->ckpt_dirty || !d->run.checkpoint || d->run.dry_run) {
        return AB_OK;
    }
    now = ab_now_us();
    if (!force && now - d->ckpt_written_us < CKPT_GAP_US) {
        return AB_OK;
    }
    rc = ab_load_ckpt_write(d->run.checkpoint, d->name, d->target, d->lf, d->run.nfiles, err);
    d->ckpt_dirty = false;
    d->ckpt_written_us = now;
    return rc;
}

static enum ab_status release_states(struct ab_driver *d, struct ab_error *err)
{
    enum ab_status rc = ab_ckpt_release(d->ck, emit_state, d, NULL, err);

    return rc == AB_OK ? write_checkpoint(d, d->phase != WP_READING, err) : rc;
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

/* A record for a stream outside the catalog fails the sync (the strict
 * reading of the protocol), naming the catalog's streams closest to it. */
static enum ab_status not_in_catalog(struct ab_driver *d, const struct ab_msg *msg,
                                     struct ab_error *err)
{
    char name[300];
    char near[400];

    ab_driver_describe_stream(name, sizeof(name), msg->stream, msg->ns);
    ab_catalog_closest(&d->catalog, msg->stream, msg->ns, near, sizeof(near));
    return ab_error_set(err, AB_ERR_PROTOCOL,
                        "record for stream '%s' which is not in the configured catalog (%s)", name,
                        near);
}

static enum ab_status on_record(struct ab_driver *d, struct ab_msg *msg, const char *line,
                                size_t len, uint64_t lineno, struct ab_error *err)
{
    struct ab_record rec;
    long idx = find_stream(d, msg->stream, msg->ns);

    if (idx < 0) {
        return not_in_catalog(d, msg, err);
    }
    rec.stream = (size_t)idx;
    rec.desc = &d->catalog.streams[idx];
    rec.seq = ab_ckpt_record(d->ck, rec.stream);
    d->s_read[rec.stream]++;
    ab_rejlimit_record(d->rejlimit, rec.stream);
    rec.lineno = lineno;
    rec.data = msg->data;
    rec.members = NULL;
    rec.nmembers = 0;
    rec.lazy = d->lazy;
    {
        size_t off;
        bool compact;

        /* where the parser saw record.data; else found by a scan */
        if (ab_json_arena_span(d->arena, msg->data, &off, &rec.data_len, &compact) &&
            off + rec.data_len <= len) {
            rec.data_text = line + off;
            rec.data_compact = compact;
        } else {
            rec.data_text = ab_record_data_text(line, len, &rec.data_len);
            rec.data_compact = false;
        }
    }
    if (ab_json_arena_lazy(d->arena, msg->data, &rec.members, &rec.nmembers)) {
        const struct ab_json_member *del;

        AB_ASSERT(rec.data_text && d->lazy);
        rec.data = NULL;
        d->lazy->tree = NULL;
        del = ab_record_member(&rec, "_ab_cdc_deleted_at");
        rec.deleted =
            del && !(del->val_len == 4 && memcmp(rec.data_text + del->val_off, "null", 4) == 0);
    } else {
        rec.deleted = !ab_json_is_null(ab_json_get(msg->data, "_ab_cdc_deleted_at"));
    }
    return d->dops->record(d->self, &rec, err);
}

yajl_val ab_record_tree(const struct ab_record *rec, struct ab_error *err)
{
    struct ab_record_lazy *lz = rec->lazy;

    if (rec->data || !rec->members) {
        return rec->data;
    }
    AB_ASSERT(lz && rec->data_text);
    if (!lz->tree) {
        ab_json_arena_reset(lz->arena);
        /* validated as the tree path would: only memory can fail */
        lz->tree = ab_json_parse_arena(lz->arena, rec->data_text, rec->data_len, err);
    }
    return lz->tree;
}

const struct ab_json_member *ab_record_member(const struct ab_record *rec, const char *name)
{
    size_t n = strlen(name);
    size_t i;

    for (i = 0; i < rec->nmembers; i++) {
        const struct ab_json_member *m = &rec->members[i];

        if (m->name_len == n && memcmp(rec->data_text + m->name_off, name, n) == 0) {
            return m;
        }
    }
    return NULL;
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

/* The line as a JSON string into out (bytes that are not UTF-8 as U+FFFD). */
static enum ab_status quote_line(struct ab_buf *out, const char *line, size_t len,
                                 struct ab_error *err)
{
    struct ab_buf rec;
    enum ab_status rc = AB_OK;
    size_t i = 0;

    ab_buf_init(&rec, AB_BUF_UNBOUNDED);
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
        rc = ab_json_write_str(out, rec.data ? rec.data : "", rec.len, err);
    }
    ab_buf_release(&rec);
    return rc;
}

/* [{"field": field, "code": code, "message": message}] into out. */
static enum ab_status one_error(struct ab_buf *out, const char *field, const char *code,
                                const char *message, struct ab_error *err)
{
    enum ab_status rc = ab_buf_adds(out, "[{\"field\":", err);

    if (rc == AB_OK) {
        rc = ab_json_write_cstr(out, field, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(out, ",\"code\":", err);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(out, code, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(out, ",\"message\":", err);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(out, message, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(out, "}]", err);
    }
    return rc;
}

/* A line rejected before it reaches the destination: dead-lettered with the
 * line (as a JSON string when quote) and one error. */
static enum ab_status reject_line(struct ab_driver *d, size_t stream, const char *line, size_t len,
                                  bool quote, uint64_t lineno, const char *field, const char *code,
                                  const char *message, struct ab_error *err)
{
    struct ab_buf rec;
    struct ab_buf errors;
    enum ab_status rc = AB_OK;

    ab_buf_init(&rec, AB_BUF_UNBOUNDED);
    ab_buf_init(&errors, AB_BUF_UNBOUNDED);
    if (quote) {
        rc = quote_line(&rec, line, len, err);
    } else {
        rc = ab_buf_add(&rec, line, len, err);
    }
    if (rc == AB_OK) {
        rc = one_error(&errors, field, code, message, err);
    }
    if (d->mode == WM_WRITE) {
        d->s_read[stream]++;
    }
    if (rc == AB_OK) {
        ab_rejlimit_record(d->rejlimit, stream);
        rc = ab_driver_reject(d, stream, ab_ckpt_record(d->ck, stream), lineno, "destination",
                              rec.data, rec.len, errors.data, err);
    }
    ab_buf_release(&rec);
    ab_buf_release(&errors);
    return rc;
}

/* A RECORD that failed the JSON intake (protocol.h): dead-lettered with the
 * line as a JSON string (bytes that are not UTF-8 as U+FFFD) and the reason. */
static enum ab_status on_invalid_record(struct ab_driver *d, struct ab_msg *msg, const char *line,
                                        size_t len, uint64_t lineno, struct ab_error *err)
{
    long idx = find_stream(d, msg->stream, msg->ns);
    char reason[AB_ERROR_MSG_MAX];

    (void)snprintf(reason, sizeof(reason), "%s", err->message);
    ab_error_init(err);
    if (idx < 0) {
        return not_in_catalog(d, msg, err);
    }
    return reject_line(d, (size_t)idx, line, len, true, lineno, msg->invalid_field, "invalid_json",
                       reason, err);
}

/* ---- load: one record per line ------------------------------------------------ */

static const char *json_type_name(yajl_val v)
{
    switch (v->type) {
    case yajl_t_array:
        return "an array";
    case yajl_t_string:
        return "a string";
    case yajl_t_number:
        return "a number";
    case yajl_t_true:
    case yajl_t_false:
        return "a boolean";
    case yajl_t_null:
        return "null";
    default:
        return "not an object";
    }
}

/* The sequence number the next record gets. */
static uint64_t next_seq(const struct ab_driver *d)
{
    struct ab_ckpt_stats cs;

    ab_ckpt_get_stats(d->ck, &cs);
    return cs.records;
}

/* load: queues a mark at pos saying file f is committed up to off/line. */
static enum ab_status load_mark(struct ab_driver *d, uint64_t pos, size_t f, uint64_t off,
                                uint64_t line, bool complete, struct ab_error *err)
{
    char m[96];
    int n = snprintf(m, sizeof(m), "%zu %llu %llu %d", f, (unsigned long long)off,
                     (unsigned long long)line, complete ? 1 : 0);

    return ab_ckpt_mark(d->ck, pos, m, (size_t)n, ab_now_us(), err);
}

static enum ab_status handle_load_line(struct ab_driver *d, const char *line, size_t len,
                                       uint64_t lineno, struct ab_error *err)
{
    struct ab_error perr;
    struct ab_record rec;
    yajl_val v;
    uint64_t opened;
    enum ab_status rc;
    char msg[AB_ERROR_MSG_MAX + 64];

    d->lines++;
    d->s_read[0]++;
    ab_json_arena_reset(d->arena);
    ab_error_init(&perr);
    v = ab_json_parse_arena(d->arena, line, len, &perr);
    if (!v) {
        (void)snprintf(msg, sizeof(msg), "line %llu: %s", (unsigned long long)lineno, perr.message);
        rc = reject_line(d, 0, line, len, true, lineno, "$", "invalid_json", msg, err);
    } else if (v->type != yajl_t_object) {
        (void)snprintf(msg, sizeof(msg), "line %llu: %s, not a JSON object",
                       (unsigned long long)lineno, json_type_name(v));
        rc = reject_line(d, 0, line, len, false, lineno, "$", "not_an_object", msg, err);
    } else {
        rec.stream = 0;
        rec.desc = &d->catalog.streams[0];
        rec.seq = ab_ckpt_record(d->ck, 0);
        rec.lineno = lineno;
        rec.data = v;
        rec.members = NULL;
        rec.nmembers = 0;
        rec.lazy = NULL;
        rec.deleted = !ab_json_is_null(ab_json_get(v, "_ab_cdc_deleted_at"));
        rec.data_text = line; /* the line is the record */
        rec.data_len = len;
        rec.data_compact = false;
        {
            size_t off;

            if (ab_json_arena_span(d->arena, v, &off, &rec.data_len, &rec.data_compact)) {
                rec.data_text = line + off;
            }
        }
        opened = ab_ckpt_units_opened(d->ck);
        ab_rejlimit_record(d->rejlimit, 0);
        rc = d->dops->record(d->self, &rec, err);
        if (rc == AB_OK && ab_ckpt_units_opened(d->ck) != opened) {
            /* a unit starts at this record: once every unit before it is
             * committed, the input is committed up to the line before */
            rc = load_mark(d, rec.seq, d->cur_file, d->cand_off, d->cand_line, false, err);
        }
    }
    d->cand_off = ab_jsonl_reader_offset(d->reader);
    d->cand_line = lineno;
    return rc;
}

static enum ab_status handle_line(struct ab_driver *d, const char *line, size_t len,
                                  uint64_t lineno, struct ab_error *err)
{
    struct ab_msg msg;
    enum ab_status rc;

    if (d->mode == WM_LOAD) {
        return handle_load_line(d, line, len, lineno, err);
    }
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
        rc = on_record(d, &msg, line, len, lineno, err);
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
    char top[256] = "";

    ab_ckpt_get_stats(d->ck, &cs);
    if (d->http) {
        ab_http_get_stats(d->http, &hs);
    }
    if (cs.rejected > 0) {
        ab_rejlimit_top(d->rejlimit, top, sizeof(top));
    }
    /* a WARN when anything was rejected: someone has to look at it */
    AB_LOG(d->em, cs.rejected > 0 ? AB_LOG_WARN : AB_LOG_INFO,
           "summary: %s; %llu lines, %llu records read, %llu committed, %llu rejected%s%s%s%s%s%s, "
           "%llu of %llu states emitted, %llu requests (%llu retried), %.1f s, %.0f records/s",
           ok ? "finished" : "stopped", (unsigned long long)d->lines,
           (unsigned long long)cs.records, (unsigned long long)d->committed,
           (unsigned long long)cs.rejected, top[0] ? " (" : "", top, top[0] ? ")" : "",
           cs.rejected && d->dl && d->dl_target.kind != AB_DL_NONE ? " (stored in '" : "",
           cs.rejected && d->dl ? ab_deadletter_where(d->dl) : "",
           cs.rejected && d->dl && d->dl_target.kind != AB_DL_NONE ? "')" : "",
           (unsigned long long)cs.states_out, (unsigned long long)cs.states_in,
           (unsigned long long)hs.requests, (unsigned long long)hs.retries, secs,
           secs > 0 ? (double)cs.records / secs : 0.0);
    if (d->dops->summary) {
        d->dops->summary(d->self, d->em);
    }
    if (d->run.dry_run) {
        log_dry_summary(d);
    }
}

/* ---- the terminal ------------------------------------------------------------ */

/* Called before each text log line: the progress line is cleared first. */
static void clear_progress(void *arg)
{
    struct ab_driver *d = arg;

    if (d->progress_shown) {
        (void)fputs("\r\033[K", stderr);
        d->progress_shown = false;
    }
}

/* Bytes of the input read so far (raw, as on disk), for the percentage. */
static uint64_t bytes_done(const struct ab_driver *d)
{
    uint64_t n = d->in_open ? d->in.raw_read : 0;

    if (d->mode == WM_LOAD && d->lf) {
        for (size_t i = 0; i < d->cur_file && i < d->run.nfiles; i++) {
            struct stat st;

            if (strcmp(d->lf[i].path, "-") != 0 && stat(d->lf[i].path, &st) == 0) {
                n += (uint64_t)st.st_size;
            }
        }
    }
    return n;
}

static void human_bytes(char *out, size_t size, uint64_t n)
{
    if (n >= 1000000000ULL) {
        (void)snprintf(out, size, "%.2f GB", (double)n / 1e9);
    } else if (n >= 1000000ULL) {
        (void)snprintf(out, size, "%.1f MB", (double)n / 1e6);
    } else {
        (void)snprintf(out, size, "%.1f kB", (double)n / 1e3);
    }
}

/* The live line: records, bytes, records/s, in flight, committed, rejected;
 * percentage and ETA when the input's size is known. */
static enum ab_status on_tty_progress(void *arg, uint64_t id, struct ab_error *err)
{
    struct ab_driver *d = arg;
    struct ab_ckpt_stats cs;
    int64_t now = ab_now_us();
    double dt = (double)(now - d->tick_us) / 1e6;
    uint64_t done = bytes_done(d);
    char bytes[32];
    char tail[96] = "";

    (void)id;
    (void)err;
    ab_ckpt_get_stats(d->ck, &cs);
    if (dt > 0) {
        double r = (double)(cs.records - d->tick_records) / dt;

        d->rate = d->tick_us == d->start_us ? r : 0.5 * d->rate + 0.5 * r;
    }
    d->tick_records = cs.records;
    d->tick_us = now;
    human_bytes(bytes, sizeof(bytes), done);
    if (d->total_bytes > 0 && done <= d->total_bytes) {
        double elapsed = (double)(now - d->start_us) / 1e6;
        double frac = (double)done / (double)d->total_bytes;
        double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;

        (void)snprintf(tail, sizeof(tail), " | %3.0f%% ETA %d:%02d", frac * 100, (int)eta / 60,
                       (int)eta % 60);
    }
    (void)fprintf(stderr,
                  "\r\033[K%llu records | %s read | %.0f rec/s | in flight %zu | committed %llu | "
                  "rejected %llu%s",
                  (unsigned long long)cs.records, bytes, d->rate,
                  d->http ? ab_http_pending(d->http) : 0, (unsigned long long)d->committed,
                  (unsigned long long)cs.rejected, tail);
    (void)fflush(stderr);
    d->progress_shown = true;
    return AB_OK;
}

/* Latency groups a destination may report (ab_destination_ops.latencies). */
#define LAT_GROUPS_MAX 16

/* The end of the run (or a signal): a table per stream, the last
 * acknowledged state and how to resume; the same as JSON with --report. */
static void log_table(struct ab_driver *d, bool ok, const char *how)
{
    struct ab_ckpt_stats cs;
    struct ab_http_stats hs = {0};
    double secs = (double)(ab_now_us() - d->start_us) / 1e6;
    char resume[600];
    const char *note = d->dops->replay_note;
    char state[700] = "";
    const char *lat_names[LAT_GROUPS_MAX];
    struct ab_latency *lats[LAT_GROUPS_MAX];
    double q[LAT_GROUPS_MAX][3];
    size_t nlat;

    clear_progress(d);
    ab_ckpt_get_stats(d->ck, &cs);
    if (d->http) {
        ab_http_get_stats(d->http, &hs);
    }
    AB_INFO(d->em, "%-32s %12s %12s", "stream", "read", "rejected");
    for (size_t i = 0; i < d->catalog.n; i++) {
        char name[300];

        ab_driver_describe_stream(name, sizeof(name), d->catalog.streams[i].name,
                                  d->catalog.streams[i].ns);
        AB_INFO(d->em, "%-32s %12llu %12llu", name, (unsigned long long)d->s_read[i],
                (unsigned long long)d->s_rej[i]);
    }
    AB_INFO(d->em, "%-32s %12llu %12llu   committed %llu, %llu requests (%llu retried), %.1f s",
            "total", (unsigned long long)cs.records, (unsigned long long)cs.rejected,
            (unsigned long long)d->committed, (unsigned long long)hs.requests,
            (unsigned long long)hs.retries, secs);
    nlat = d->dops->latencies ? d->dops->latencies(d->self, lat_names, lats, LAT_GROUPS_MAX) : 0;
    if (nlat > 0) {
        AB_INFO(d->em, "%-32s %12s %12s %10s %10s %10s", "requests", "count", "retried", "p50 ms",
                "p95 ms", "max ms");
    }
    for (size_t i = 0; i < nlat; i++) {
        ab_latency_quantiles(lats[i], &q[i][0], &q[i][1], &q[i][2]);
        AB_INFO(d->em, "%-32s %12llu %12llu %10.1f %10.1f %10.1f", lat_names[i],
                (unsigned long long)lats[i]->n, (unsigned long long)lats[i]->retried, q[i][0],
                q[i][1], q[i][2]);
    }
    if (d->mode == WM_LOAD) {
        size_t k = 0;

        for (size_t i = 0; d->lf && i < d->run.nfiles && k < sizeof(state) - 1; i++) {
            int n = snprintf(state + k, sizeof(state) - k, "%s%s %s", i ? "; " : "", d->lf[i].path,
                             d->lf[i].complete ? "complete" : "");
            k += n > 0 ? (size_t)n : 0;
            if (!d->lf[i].complete && k < sizeof(state) - 1) {
                n = snprintf(state + k, sizeof(state) - k, "committed up to line %llu (byte %llu)",
                             (unsigned long long)d->lf[i].line,
                             (unsigned long long)d->lf[i].offset);
                k += n > 0 ? (size_t)n : 0;
            }
        }
        if (d->run.checkpoint) {
            (void)snprintf(resume, sizeof(resume),
                           "rerun the same command: --checkpoint-file '%s' resumes after the "
                           "last committed line of each file",
                           d->run.checkpoint);
        } else {
            (void)snprintf(resume, sizeof(resume),
                           "without --checkpoint-file a rerun starts from the first line%s%s%s",
                           note ? " (" : "", note ? note : "", note ? ")" : "");
        }
    } else {
        (void)snprintf(state, sizeof(state), "%s", d->states_acked ? d->last_state : "none");
        (void)snprintf(resume, sizeof(resume),
                       "start the source from the last acknowledged state (the platform does); "
                       "records after it are not confirmed and are sent again%s%s%s",
                       d->run.input && note ? "; replaying the same file again is safe (" : "",
                       d->run.input && note ? note : "", d->run.input && note ? ")" : "");
    }
    AB_INFO(d->em, "%s after %.1f s; last acknowledged: %s", how, secs, state);
    AB_INFO(d->em, "resume: %s", ok ? "nothing to resume, every record was handled" : resume);
    if (d->run.report) {
        FILE *f = fopen(d->run.report, "w");
        struct ab_buf b;

        ab_buf_init(&b, AB_BUF_UNBOUNDED);
        if (ab_buf_adds(&b, "{\"connector\":", NULL) == AB_OK &&
            ab_json_write_cstr(&b, d->name, NULL) == AB_OK &&
            ab_buf_printf(&b, NULL,
                          ",\"command\":\"%s\",\"outcome\":\"%s\",\"dry_run\":%s,"
                          "\"duration_s\":%.3f,\"records_read\":%llu,\"committed\":%llu,"
                          "\"rejected\":%llu,\"requests\":%llu,\"retried\":%llu,"
                          "\"states_acknowledged\":%llu,\"streams\":[",
                          d->mode == WM_LOAD ? "load" : "write", how,
                          d->run.dry_run ? "true" : "false", secs, (unsigned long long)cs.records,
                          (unsigned long long)d->committed, (unsigned long long)cs.rejected,
                          (unsigned long long)hs.requests, (unsigned long long)hs.retries,
                          (unsigned long long)d->states_acked) == AB_OK) {
            enum ab_status rc = AB_OK;

            for (size_t i = 0; rc == AB_OK && i < d->catalog.n; i++) {
                const struct ab_stream *st = &d->catalog.streams[i];

                rc = ab_buf_adds(&b, i ? ",{\"name\":" : "{\"name\":", NULL);
                if (rc == AB_OK) {
                    rc = ab_json_write_cstr(&b, st->name, NULL);
                }
                if (rc == AB_OK) {
                    rc = ab_buf_adds(&b, ",\"namespace\":", NULL);
                }
                if (rc == AB_OK) {
                    rc = st->ns ? ab_json_write_cstr(&b, st->ns, NULL)
                                : ab_buf_adds(&b, "null", NULL);
                }
                if (rc == AB_OK) {
                    rc = ab_buf_printf(&b, NULL, ",\"read\":%llu,\"rejected\":%llu}",
                                       (unsigned long long)d->s_read[i],
                                       (unsigned long long)d->s_rej[i]);
                }
            }
            if (rc == AB_OK) {
                rc = ab_buf_adds(&b, "],\"requests_by\":[", NULL);
            }
            for (size_t i = 0; rc == AB_OK && i < nlat; i++) {
                rc = ab_buf_adds(&b, i ? ",{\"name\":" : "{\"name\":", NULL);
                if (rc == AB_OK) {
                    rc = ab_json_write_cstr(&b, lat_names[i], NULL);
                }
                if (rc == AB_OK) {
                    rc = ab_buf_printf(&b, NULL,
                                       ",\"requests\":%llu,\"retried\":%llu,\"p50_ms\":%.3f,"
                                       "\"p95_ms\":%.3f,\"max_ms\":%.3f}",
                                       (unsigned long long)lats[i]->n,
                                       (unsigned long long)lats[i]->retried, q[i][0], q[i][1],
                                       q[i][2]);
                }
            }
            if (rc == AB_OK) {
                rc = ab_buf_adds(&b, "],\"last_acknowledged\":", NULL);
            }
            if (rc == AB_OK) {
                rc = ab_json_write_cstr(&b, state, NULL);
            }
            if (rc == AB_OK) {
                rc = ab_buf_adds(&b, ",\"resume\":", NULL);
            }
            if (rc == AB_OK) {
                rc = ab_json_write_cstr(&b, ok ? "" : resume, NULL);
            }
            if (rc == AB_OK) {
                rc = ab_buf_adds(&b, "}\n", NULL);
            }
            if (rc == AB_OK && f) {
                char *masked = malloc(b.len * 2 + 64);

                if (masked) {
                    ab_emitter_mask(d->em, b.data, masked, b.len * 2 + 64);
                    (void)fputs(masked, f);
                    free(masked);
                }
            }
        }
        ab_buf_release(&b);
        if (!f || fclose(f) != 0) {
            AB_WARN(d->em, "cannot write the report '%s'", d->run.report);
        }
    }
}

/* Text logs and the live line when a person watches (or --log-format text). */
static enum ab_status terminal_open(struct ab_driver *d, struct ab_error *err)
{
    if (d->mode == WM_WRITE && !d->run.input && isatty(STDIN_FILENO)) {
        AB_INFO(d->em, "reading Airbyte messages from stdin (end with Ctrl-D; --input FILE reads "
                       "a file, load reads plain JSONL)");
    }
    if (d->mode == WM_LOAD) {
        for (size_t i = 0; i < d->run.nfiles; i++) {
            struct stat st;

            if (strcmp(d->run.files[i], "-") != 0 && stat(d->run.files[i], &st) == 0) {
                d->total_bytes += (uint64_t)st.st_size;
            }
        }
    } else if (d->run.input) {
        d->total_bytes = d->in.size;
    }
    if (d->tty_progress && !ab_loop_add_timer(d->loop, 1000000, 1000000, on_tty_progress, d, err)) {
        return err->code;
    }
    return AB_OK;
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
    rc = ab_input_fill(&d->in, d->reader, &d->eof, err);
    if (rc != AB_OK && d->in.corrupt) {
        /* corrupt compressed data: the run stops, nothing more is committed
         * or acknowledged */
        return rc;
    }
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

/* load: every line of the current file was handled; queues its end mark and
 * opens the next file (*more) if there is one. */
static enum ab_status load_next_file(struct ab_driver *d, bool *more, struct ab_error *err);

static enum ab_status open_input(struct ab_driver *d, const char *path, uint64_t off, uint64_t line,
                                 struct ab_error *err)
{
    enum ab_status rc;

    ab_jsonl_reader_free(d->reader);
    d->reader = ab_jsonl_reader_new(d->max_line_bytes, err);
    if (!d->reader) {
        return err->code;
    }
    ab_jsonl_reader_set_origin(d->reader, off, line + 1);
    d->cand_off = off;
    d->cand_line = line;
    rc = ab_input_open(&d->in, path, off, err);
    d->in_open = true;
    if (rc != AB_OK) {
        return rc;
    }
    d->in_fd = d->in.fd;
    d->eof = false;
    return ab_loop_add_fd(d->loop, d->in_fd, AB_LOOP_READ, on_stdin, d, err);
}

static enum ab_status load_next_file(struct ab_driver *d, bool *more, struct ab_error *err)
{
    enum ab_status rc;

    *more = false;
    rc = load_mark(d, next_seq(d), d->cur_file, ab_jsonl_reader_bytes(d->reader), d->cand_line,
                   true, err);
    if (rc != AB_OK) {
        return rc;
    }
    if (d->in_open) {
        ab_loop_del_fd(d->loop, d->in_fd);
        ab_input_close(&d->in);
        d->in_open = false;
    }
    while (d->cur_file + 1 < d->run.nfiles) {
        struct ab_load_file *f = &d->lf[++d->cur_file];

        d->file_seq[d->cur_file] = next_seq(d);
        if (f->complete) {
            AB_INFO(d->em, "'%s' was loaded completely by an earlier run: skipped", f->path);
            continue;
        }
        if (f->line) {
            AB_INFO(d->em,
                    "'%s': resuming after line %llu (byte %llu), committed by an earlier "
                    "run",
                    f->path, (unsigned long long)f->line, (unsigned long long)f->offset);
        }
        *more = true;
        return open_input(d, f->path, f->offset, f->line, err);
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
        if (d->mode == WM_LOAD && d->eof && drained && !d->input_failed && !d->load_done) {
            bool more = false;

            rc = load_next_file(d, &more, err);
            if (rc != AB_OK) {
                return rc;
            }
            d->load_done = !more;
        }
        if ((d->eof && drained) || d->input_failed) {
            rc = d->dops->flush(d->self, true, err);
            if (rc != AB_OK) {
                return rc;
            }
            write_set_phase(d, WP_FLUSHING, d->input_failed ? "bad input" : "end of input");
            ab_loop_del_timer(d->loop, d->wait_timer);
            d->wait_timer = 0;
            ab_loop_fd_mask(d->loop, d->in_fd, 0);
        } else {
            /* back-pressure: the input is read only when every line read so
             * far was taken */
            ab_loop_fd_mask(d->loop, d->in_fd, drained ? AB_LOOP_READ : 0);
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

/* load: identifies the files, reads the checkpoint file and opens the first
 * file not completely loaded. */
static enum ab_status load_start(struct ab_driver *d, struct ab_error *err)
{
    size_t n = d->run.nfiles;
    enum ab_status rc = AB_OK;
    bool found = false;

    d->lf = calloc(n, sizeof(*d->lf));
    d->file_seq = calloc(n, sizeof(*d->file_seq));
    if (!d->lf || !d->file_seq) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n && rc == AB_OK; i++) {
        d->lf[i].path = d->run.files[i];
        if (d->run.checkpoint) {
            rc = ab_file_identify(d->lf[i].path, &d->lf[i].id, err);
        }
    }
    if (rc == AB_OK && d->run.checkpoint) {
        rc = ab_load_ckpt_read(d->run.checkpoint, d->name, d->target, d->lf, n, &found, err);
        if (rc == AB_OK && !found && !d->run.dry_run) {
            /* written before anything is sent: the path is writable, and the
             * files' identities are recorded */
            rc = ab_load_ckpt_write(d->run.checkpoint, d->name, d->target, d->lf, n, err);
        }
    }
    if (rc != AB_OK) {
        return rc;
    }
    for (d->cur_file = 0; d->cur_file < n; d->cur_file++) {
        struct ab_load_file *f = &d->lf[d->cur_file];

        if (f->complete) {
            AB_INFO(d->em, "'%s' was loaded completely by an earlier run: skipped", f->path);
            continue;
        }
        if (f->line) {
            AB_INFO(d->em,
                    "'%s': resuming after line %llu (byte %llu), committed by an earlier run",
                    f->path, (unsigned long long)f->line, (unsigned long long)f->offset);
        }
        return open_input(d, f->path, f->offset, f->line, err);
    }
    /* every file was loaded already */
    d->cur_file = n - 1;
    d->reader = ab_jsonl_reader_new(d->max_line_bytes, err);
    if (!d->reader) {
        return err->code;
    }
    d->eof = true;
    d->load_done = true;
    AB_INFO(d->em, "every input file was loaded by an earlier run: nothing to do");
    return AB_OK;
}

static enum ab_status write_open(struct ab_driver *d, struct ab_error *err)
{
    enum ab_status rc;

    ab_buf_init(&d->dl_errors, AB_BUF_UNBOUNDED);
    ab_driver_name_sink(d);
    /* text logs from the first line on, the destination's too */
    d->text = d->run.log_format ? strcmp(d->run.log_format, "text") == 0 : isatty(STDERR_FILENO);
    if (d->text) {
        ab_emitter_set_text(d->em, stderr, clear_progress, d);
        d->tty_progress = isatty(STDERR_FILENO);
    }
    d->ck = ab_ckpt_new(d->catalog.n, err);
    if (!d->ck) {
        return err->code;
    }
    d->s_read = calloc(d->catalog.n ? d->catalog.n : 1, sizeof(*d->s_read));
    d->s_rej = calloc(d->catalog.n ? d->catalog.n : 1, sizeof(*d->s_rej));
    if (!d->s_read || !d->s_rej) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    d->rejlimit = ab_rejlimit_new(d->catalog.n, d->dest_opts.max_rejected_ratio,
                                  d->dest_opts.rejected_ratio_min_records,
                                  d->dest_opts.max_rejected_records, err);
    if (!d->rejlimit) {
        return err->code;
    }
    d->arena = ab_json_arena_new(err);
    if (!d->arena) {
        return err->code;
    }
    if (d->dops->lazy_data && d->mode != WM_LOAD) {
        d->lazy = calloc(1, sizeof(*d->lazy));
        if (!d->lazy) {
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
        }
        d->lazy->arena = ab_json_arena_new(err);
        if (!d->lazy->arena) {
            return err->code;
        }
        ab_json_arena_set_lazy(d->arena, true);
    }
    rc = d->dops->open(d, &d->self, err);
    if (rc != AB_OK) {
        return rc;
    }
    ab_loop_set_http(d->loop, d->http);
    d->in_fd = -1;
    if (d->mode == WM_LOAD) {
        rc = load_start(d, err);
    } else {
        rc = open_input(d, d->run.input ? d->run.input : "-", 0, 0, err);
    }
    if (rc == AB_OK) {
        rc = terminal_open(d, err);
    }
    if (rc == AB_OK && !d->tty_progress &&
        !ab_loop_add_timer(d->loop, d->progress_every_us, d->progress_every_us, on_progress, d,
                           err)) {
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
    if (d->mode == WM_LOAD) {
        char where[4200];

        ab_driver_describe_sink(d, where, sizeof(where));
        AB_INFO(d->em, "%s %s: loading %zu file(s) into %s; rejected records %s%s", d->name,
                d->version, d->run.nfiles, d->target,
                d->fail_on_reject ? "fail the load" : "go to ", d->fail_on_reject ? "" : where);
    } else if (d->fail_on_reject) {
        AB_INFO(d->em, "%s %s: writing %zu stream(s); a rejected record fails the sync", d->name,
                d->version, d->catalog.n);
    } else {
        char where[4200];

        ab_driver_describe_sink(d, where, sizeof(where));
        AB_INFO(d->em, "%s %s: writing %zu stream(s); rejected records go to %s", d->name,
                d->version, d->catalog.n, where);
        if (d->dl_target.kind == AB_DL_FILE && ab_driver_in_container()) {
            AB_WARN(d->em, "rejected records go to a file inside the container, lost with it; "
                           "set object_storage_config to an S3-compatible bucket to keep them");
        }
    }
    d->start_us = ab_now_us();
    d->last_progress_us = d->start_us;
    rc = ab_loop_run(d->loop, err);
    if (ab_driver_signal_seen) {
        struct ab_error ignored;

        /* what is committed is recorded; nothing else */
        ab_error_init(&ignored);
        if (release_states(d, &ignored) == AB_OK) {
            (void)write_checkpoint(d, true, &ignored);
        }
        log_summary(d, false);
        log_table(d, false,
                  ab_driver_signal_seen == SIGINT ? "stopped by SIGINT" : "stopped by SIGTERM");
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
        if (release_states(d, &ignored) == AB_OK) {
            (void)write_checkpoint(d, true, &ignored);
        }
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
    if (rc == AB_OK) {
        rc = write_checkpoint(d, true, err);
    }
    clear_progress(d);
    if (!d->tty_progress) {
        log_progress(d, ab_now_us());
    }
    log_summary(d, rc == AB_OK);
    log_table(d, rc == AB_OK, rc == AB_OK ? "finished" : "failed");
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
    ab_buf_release(&d->dl_errors);
    ab_jsonl_reader_free(d->reader);
    d->reader = NULL;
    if (d->in_open) {
        ab_input_close(&d->in);
        d->in_open = false;
    }
    free(d->lf);
    d->lf = NULL;
    free(d->file_seq);
    d->file_seq = NULL;
    free(d->s_read);
    d->s_read = NULL;
    free(d->s_rej);
    d->s_rej = NULL;
    ab_buf_release(&d->catalog_text);
    ab_json_arena_free(d->arena);
    d->arena = NULL;
    if (d->lazy) {
        ab_json_arena_free(d->lazy->arena);
        free(d->lazy);
        d->lazy = NULL;
    }
    ab_ckpt_free(d->ck);
    d->ck = NULL;
    ab_rejlimit_free(d->rejlimit);
    d->rejlimit = NULL;
}

/* ---- the command line of write and load ------------------------------------------ */

enum ab_status ab_driver_check_run_opts(struct ab_driver *d, bool load, bool write,
                                        struct ab_error *err)
{
    const struct ab_run_opts *o = &d->run;

    if (!load && !write) {
        if (o->input || o->object || o->stream || o->ns || o->sync_mode || o->checkpoint ||
            o->report || o->log_format || o->sync_id || o->dry_run || o->print_catalog ||
            o->show_requests) {
            return ab_error_set(err, AB_ERR_CONFIG, "that option is for write and load only");
        }
        return AB_OK;
    }
    if (o->log_format && strcmp(o->log_format, "json") != 0 && strcmp(o->log_format, "text") != 0) {
        return ab_error_set(err, AB_ERR_CONFIG, "--log-format is json or text");
    }
    if (o->sync_id) {
        char *end = NULL;
        long long v = strtoll(o->sync_id, &end, 10);

        if (!*o->sync_id || *end || v < 0) {
            return ab_error_set(err, AB_ERR_CONFIG, "--sync-id needs a whole number >= 0");
        }
    }
    if (o->show_requests && !o->dry_run) {
        return ab_error_set(err, AB_ERR_CONFIG, "--show-requests goes with --dry-run");
    }
    if (write) {
        if (o->object || o->stream || o->checkpoint) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "--object, --stream and --checkpoint-file are options of load");
        }
        if (d->catalog_path && (o->sync_mode || o->sync_id || o->ns)) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "--sync-mode and --sync-id describe an inferred catalog: with "
                                "--catalog, set them in the catalog");
        }
        return AB_OK;
    }
    if (o->input) {
        return ab_error_set(err, AB_ERR_CONFIG, "load takes its files as arguments, not --input");
    }
    if (!o->object == !o->stream) {
        return ab_error_set(err, AB_ERR_CONFIG,
                            "load needs exactly one of --object NAME (fields as they are) or "
                            "--stream NAME (through its stream_mappings entry)");
    }
    if (o->nfiles == 0) {
        return ab_error_set(err, AB_ERR_CONFIG, "load needs at least one FILE ('-' is stdin)");
    }
    for (size_t i = 0; i < o->nfiles; i++) {
        if (strcmp(o->files[i], "-") == 0 && (o->checkpoint || o->nfiles > 1)) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "'-' (stdin) is read only alone and without --checkpoint-file: "
                                "stdin cannot be read again to resume");
        }
    }
    return AB_OK;
}

/* One ConfiguredAirbyteStream into b. */
static enum ab_status catalog_stream(struct ab_buf *b, const char *name, const char *ns,
                                     const char *mode, const char *sync_id, const char *object,
                                     struct ab_error *err)
{
    enum ab_status rc = ab_buf_adds(b, "{\"stream\":{\"name\":", err);

    if (rc == AB_OK) {
        rc = ab_json_write_cstr(b, name, err);
    }
    if (rc == AB_OK && ns) {
        rc = ab_buf_adds(b, ",\"namespace\":", err);
        if (rc == AB_OK) {
            rc = ab_json_write_cstr(b, ns, err);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(b,
                         ",\"json_schema\":{\"type\":\"object\"},\"supported_sync_modes\":"
                         "[\"full_refresh\",\"incremental\"]},\"sync_mode\":\"incremental\","
                         "\"destination_sync_mode\":",
                         err);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(b, mode, err);
    }
    if (rc == AB_OK && object) {
        rc = ab_buf_adds(b, ",\"destination_object_name\":", err);
        if (rc == AB_OK) {
            rc = ab_json_write_cstr(b, object, err);
        }
    }
    if (rc == AB_OK && sync_id) {
        rc = ab_buf_printf(b, err, ",\"sync_id\":%s", sync_id);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(b, "}", err);
    }
    return rc;
}

/* The streams seen in the input file (RECORD, STREAM STATE, STREAM_STATUS),
 * in order of first appearance, into b as catalog streams. */
#define INFER_MAX_STREAMS 10000

static enum ab_status infer_streams(struct ab_driver *d, struct ab_buf *b, size_t *count,
                                    struct ab_error *err)
{
    struct ab_catalog seen = {NULL, 0};
    struct ab_jsonl_reader *r = ab_jsonl_reader_new(d->max_line_bytes, err);
    struct ab_json_arena *arena = ab_json_arena_new(err);
    struct ab_input in;
    const char *mode = d->run.sync_mode ? d->run.sync_mode : "append";
    enum ab_status rc = r && arena ? AB_OK : err->code;
    bool eof = false;
    size_t cap = 0;

    *count = 0;
    if (rc == AB_OK) {
        rc = ab_input_open(&in, d->run.input, 0, err);
    }
    while (rc == AB_OK && !eof) {
        char *line;
        size_t len;
        uint64_t lineno;

        rc = ab_input_fill(&in, r, &eof, err);
        if (eof) {
            ab_jsonl_reader_finish(r);
        }
        while (rc == AB_OK && ab_jsonl_reader_next(r, &line, &len, &lineno)) {
            struct ab_msg msg;
            enum ab_status prc;

            ab_json_arena_reset(arena);
            prc = ab_msg_parse_in(&msg, arena, line, len, err);
            ab_error_init(err);
            if ((prc == AB_OK || (prc == AB_ERR_REJECTED && msg.invalid)) && msg.stream &&
                (msg.type == AB_MSG_RECORD ||
                 (msg.type == AB_MSG_STATE && msg.state_type == AB_STATE_STREAM) ||
                 (msg.type == AB_MSG_TRACE && msg.status != AB_STATUS_NONE)) &&
                ab_catalog_find(&seen, msg.stream, msg.ns) < 0) {
                if (seen.n == INFER_MAX_STREAMS) {
                    rc = ab_error_set(err, AB_ERR_CONFIG,
                                      "'%s' names more than %d streams: give --catalog",
                                      d->run.input, INFER_MAX_STREAMS);
                } else if (seen.n == cap) {
                    size_t ncap = cap ? cap * 2 : 16;
                    struct ab_stream *p = realloc(seen.streams, ncap * sizeof(*p));

                    if (!p) {
                        rc = ab_error_set(err, AB_ERR_NOMEM, "out of memory");
                    } else {
                        seen.streams = p;
                        cap = ncap;
                    }
                }
                if (rc == AB_OK) {
                    struct ab_stream *st = &seen.streams[seen.n];

                    memset(st, 0, sizeof(*st));
                    st->name = strdup(msg.stream);
                    st->ns = msg.ns && *msg.ns ? strdup(msg.ns) : NULL;
                    seen.n++;
                    if (!st->name) {
                        rc = ab_error_set(err, AB_ERR_NOMEM, "out of memory");
                    }
                }
                if (rc == AB_OK) {
                    rc = ab_buf_adds(b, *count ? "," : "", err);
                }
                if (rc == AB_OK) {
                    rc = catalog_stream(b, msg.stream, msg.ns && *msg.ns ? msg.ns : NULL, mode,
                                        d->run.sync_id, NULL, err);
                }
                if (rc == AB_OK) {
                    (*count)++;
                }
            }
            if (prc == AB_OK || prc == AB_ERR_REJECTED) {
                ab_msg_release(&msg);
            }
        }
    }
    if (r) {
        ab_input_close(&in);
    }
    ab_catalog_release(&seen);
    ab_jsonl_reader_free(r);
    ab_json_arena_free(arena);
    return rc;
}

enum ab_status ab_driver_make_catalog(struct ab_driver *d, struct ab_error *err)
{
    const struct ab_run_opts *o = &d->run;
    struct ab_buf *b = &d->catalog_text;
    const char *mode = o->sync_mode ? o->sync_mode : "append";
    yajl_val root;
    enum ab_status rc;
    size_t n = 1;

    ab_buf_init(b, AB_BUF_UNBOUNDED);
    rc = ab_buf_adds(b, "{\"streams\":[", err);
    if (rc == AB_OK && d->mode == WM_LOAD) {
        char name[300];

        ab_driver_describe_stream(name, sizeof(name), o->object ? o->object : o->stream, o->ns);
        (void)snprintf(d->target, sizeof(d->target), "%s %s", o->object ? "object" : "stream",
                       name);
        rc = catalog_stream(b, o->object ? o->object : o->stream, o->ns, mode, o->sync_id,
                            o->object, err);
    } else if (rc == AB_OK) {
        if (!o->input) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "missing --catalog <file> (or --input FILE to infer the catalog "
                                "from the messages)");
        }
        if (strcmp(o->input, "-") == 0) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "a catalog is inferred from a file read twice: give --catalog "
                                "with --input -");
        }
        rc = infer_streams(d, b, &n, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(b, "]}", err);
    }
    if (rc != AB_OK) {
        return rc;
    }
    root = ab_json_parse(b->data, b->len, err);
    if (!root) {
        return ab_error_prefix(err, "the made catalog");
    }
    rc = ab_catalog_parse(&d->catalog, root, err);
    ab_json_free(root);
    if (rc == AB_OK && d->mode == WM_WRITE && !o->print_catalog) {
        AB_INFO(d->em, "catalog inferred from '%s': %zu stream(s), destination_sync_mode '%s'%s",
                o->input, n, mode, o->sync_id ? "" : ", no sync_id");
    }
    return rc;
}

enum ab_status ab_driver_print_catalog(struct ab_driver *d, struct ab_error *err)
{
    if (!d->catalog_text.data) {
        return ab_error_set(err, AB_ERR_CONFIG,
                            "--print-catalog prints a made catalog: give --input without "
                            "--catalog, or use load");
    }
    if (ab_emitter_raw(d->em, d->catalog_text.data, d->catalog_text.len, true) != AB_OK) {
        return ab_error_set(err, AB_ERR_IO, "cannot write to stdout");
    }
    return AB_OK;
}
