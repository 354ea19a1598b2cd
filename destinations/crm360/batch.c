/* batch.c - destination-crm360: batches, their requests and their answers. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strings.h>

#include "ab/assert.h"
#include "ab/clock.h"
#include "ab/json.h"
#include "ab/log.h"

#include "crm360_int.h"

/* ---- batches ------------------------------------------------------------- */

/* Batches answered for good keep their buffers in a pool for the next ones,
 * as many as can be alive at once (max_in_flight + CRM_QUEUED_MAX sealed,
 * one open per object and operation): the heap does not churn through
 * blocks of a batch's size, whose changing sizes would fragment it. */
static size_t pool_cap(const struct crm_dest *c)
{
    return c->max_in_flight + CRM_QUEUED_MAX + CRM_NOBJECTS * CRM_NOPS;
}

static void batch_destroy(struct crm_batch *b)
{
    ab_buf_release(&b->body);
    ab_buf_release(&b->received);
    free(b->recs);
    free(b);
}

void crm_batch_free(struct crm_batch *b)
{
    struct crm_dest *c;

    if (!b) {
        return;
    }
    c = b->owner;
    if (b->live_prev) {
        b->live_prev->live_next = b->live_next;
    } else if (c->live == b) {
        c->live = b->live_next;
    }
    if (b->live_next) {
        b->live_next->live_prev = b->live_prev;
    }
    if (b->shares && --*b->shares == 0) {
        free(b->shares);
    }
    if (c->npool >= pool_cap(c)) {
        batch_destroy(b);
        return;
    }
    b->next = c->pool;
    c->pool = b;
    c->npool++;
}

void crm_pool_free(struct crm_dest *c)
{
    struct crm_batch *b;

    while ((b = c->pool) != NULL) {
        c->pool = b->next;
        batch_destroy(b);
    }
    c->npool = 0;
}

/* A batch from the pool (its buffers emptied, their memory kept), or a new
 * one. */
static struct crm_batch *batch_alloc(struct crm_dest *c)
{
    struct crm_batch *b = c->pool;
    struct crm_batch keep;

    if (!b) {
        b = calloc(1, sizeof(*b));
        if (b) {
            ab_buf_init(&b->body, c->max_bytes + 64);
            ab_buf_init(&b->received, AB_BUF_UNBOUNDED);
        }
        return b;
    }
    c->pool = b->next;
    c->npool--;
    keep = *b;
    memset(b, 0, sizeof(*b));
    b->body = keep.body;
    b->received = keep.received;
    b->recs = keep.recs;
    b->cap = keep.cap;
    ab_buf_reset(&b->body);
    ab_buf_reset(&b->received);
    return b;
}

struct crm_batch *crm_batch_new(struct crm_dest *c, enum crm_object obj, enum crm_op op,
                                size_t first_len, struct ab_error *err)
{
    struct crm_batch *b = batch_alloc(c);
    size_t want;

    if (!b) {
        ab_error_set(err, AB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    b->owner = c;
    b->obj = obj;
    b->op = op;
    b->id = ++c->next_batch_id;
    /* The body is filled where it is, no copy as it grows: room for the
     * largest body so far, or for batch_size records the size of the first
     * (at most max_batch_bytes; untouched room costs no memory). */
    want = c->body_hint ? c->body_hint : c->batch_size * (first_len + 1) + 16;
    if (want > c->max_bytes) {
        want = c->max_bytes;
    }
    if (ab_buf_reserve(&b->body, want, err) != AB_OK ||
        ab_buf_adds(&b->body, "{\"records\":[", err) != AB_OK) {
        crm_batch_free(b);
        return NULL;
    }
    b->unit = ab_ckpt_unit_open(c->ck, err);
    if (b->unit == 0) {
        crm_batch_free(b);
        return NULL;
    }
    return b;
}

static bool customers_committed_before(struct crm_dest *c, uint64_t seq)
{
    size_t i;

    for (i = 0; i < c->cat->n; i++) {
        if (c->stream_map[i] && c->stream_obj[i] == CRM_CUSTOMERS &&
            !ab_ckpt_committed_before(c->ck, i, seq)) {
            return false;
        }
    }
    return true;
}

static void report_failure(struct crm_dest *c, struct crm_batch *b, const struct ab_http_resp *resp)
{
    struct ab_error err;
    yajl_val root = NULL;
    const char *code = "";
    const char *message = "";
    char what[96];
    char unreadable[256];
    enum ab_status st = AB_ERR_INTERNAL;

    ab_error_init(&err);
    (void)snprintf(what, sizeof(what), "batch %llu of %zu %s (%s)", (unsigned long long)b->id, b->n,
                   crm_object_name(b->obj), crm_op_name(b->op));
    if (resp->status) {
        struct ab_error perr;

        ab_error_init(&perr);
        root = ab_json_parse(resp->body, resp->body_len, &perr);
        code = ab_json_get_str(ab_json_get(root, "error"), "code", "");
        message = ab_json_get_str(ab_json_get(root, "error"), "message", "");
        if (!root && resp->body_len) {
            /* say why the error code is missing: the body cannot be read */
            (void)snprintf(unreadable, sizeof(unreadable), "(its body is unreadable: %.200s)",
                           perr.message);
            code = unreadable;
        }
    }
    if (resp->status == 0 && !resp->transient && !resp->in_doubt) {
        /* what retrying cannot fix: TLS verification, a malformed URL */
        ab_error_set(&err, AB_ERR_CONFIG, "cannot send %s to CRM360: %s", what, resp->error);
    } else if (resp->transient || resp->status == 0) {
        st = AB_ERR_TRANSIENT;
        if (resp->status) {
            ab_error_set(&err, st, "CRM360 kept failing %s: HTTP %d after %d attempts", what,
                         resp->status, resp->attempts);
        } else {
            ab_error_set(&err, st,
                         "CRM360 could not be reached for %s after %d attempts: %s; nothing "
                         "after the last emitted state is confirmed, the next run sends it again",
                         what, resp->attempts, resp->error);
        }
    } else if (resp->status == 401) {
        ab_error_set(&err, AB_ERR_CONFIG, "CRM360 rejected the api_key (HTTP 401 %s)", code);
    } else if (resp->status == 403) {
        ab_error_set(&err, AB_ERR_CONFIG, "the api_key has no write scope in CRM360 (HTTP 403)");
    } else if (resp->status == 413) {
        ab_error_set(&err, AB_ERR_CONFIG,
                     "CRM360 refused %s as too large (HTTP 413 %s): lower batch_size or "
                     "max_batch_bytes",
                     what, code);
    } else if (resp->status == 422) {
        ab_error_set(&err, AB_ERR_INTERNAL,
                     "CRM360 refused %s: the idempotency key was already used for another body "
                     "(HTTP 422 %s)",
                     what, code);
    } else {
        ab_error_set(&err, st, "CRM360 refused %s: HTTP %d %s", what, resp->status, code);
    }
    ab_error_internal(&err, "%s %s: HTTP %d %s: %s (attempts %d)", crm_object_name(b->obj),
                      crm_op_name(b->op), resp->status, code, message, resp->attempts);
    if (root) {
        ab_json_free(root);
    }
    ab_driver_fail(c->d, &err);
}

static enum ab_status record_result(struct crm_dest *c, struct crm_batch *b, size_t i,
                                    yajl_val result, bool earlier_run, struct ab_error *err)
{
    const char *status = ab_json_get_str(result, "status", "");
    const struct crm_rec *r = &b->recs[i];
    int k;

    for (k = 0; k < CRM_R_NRESULTS; k++) {
        if (strcmp(status, crm_result_names[k]) == 0) {
            break;
        }
    }
    if (k == CRM_R_NRESULTS) {
        return ab_error_set(err, AB_ERR_PROTOCOL,
                            "CRM360 answered an unknown status '%s' for record %zu of batch %llu",
                            status, i, (unsigned long long)b->id);
    }
    if (earlier_run && k != CRM_R_REJECTED) {
        /* applied when an earlier run sent this very batch: nothing changed now */
        c->already_applied[b->obj]++;
    } else {
        c->results[b->obj][k]++;
    }
    if (k == CRM_R_REJECTED) {
        struct ab_buf errs;
        enum ab_status rc;

        ab_buf_init(&errs, AB_BUF_UNBOUNDED);
        rc = ab_json_write(&errs, ab_json_get(result, "errors"), err);
        if (rc == AB_OK) {
            struct ab_rejection rj = {.stream = r->stream,
                                      .seq = r->seq,
                                      .lineno = r->lineno,
                                      .rejected_by = "target",
                                      .received = r->roff == CRM_AS_SENT
                                                      ? b->body.data + r->off
                                                      : b->received.data + r->roff,
                                      .received_len = r->roff == CRM_AS_SENT ? r->len : r->rlen,
                                      .sent = b->body.data + r->off,
                                      .sent_len = r->len,
                                      .errors_json = errs.data,
                                      .mapping = c->stream_map[r->stream]};

            rc = ab_driver_reject_ex(c->d, &rj, err);
        }
        ab_buf_release(&errs);
        return rc;
    }
    return AB_OK;
}

/* An answer of the usual form (crm_answer_scan()): what record_result()
 * counts for each of its results, none a rejection. */
static void apply_scanned(struct crm_dest *c, const struct crm_batch *b,
                          const struct crm_answer_scan *a, bool earlier_run)
{
    int k;

    for (k = 0; k < CRM_R_NRESULTS; k++) {
        if (earlier_run) {
            c->already_applied[b->obj] += a->counts[k];
        } else {
            c->results[b->obj][k] += a->counts[k];
        }
    }
}

static enum ab_status apply_results(struct crm_dest *c, struct crm_batch *b,
                                    const struct ab_http_resp *resp, struct ab_error *err)
{
    struct crm_answer_scan scan;
    yajl_val root = NULL;
    yajl_val results;
    enum ab_status rc = AB_OK;
    size_t i;
    uint64_t rejected_before = c->results[b->obj][CRM_R_REJECTED];
    /* An answer from the idempotency store to a first attempt: the batch
     * was applied by an earlier run (same sync id, same body). After an
     * attempt of this run whose answer was lost it is this run's own. */
    bool earlier_run = b->replayed && resp->attempts <= 1;
    const char *batch_id = "?";
    size_t batch_id_len = 1;

    if (!crm_refresh_wants_results(c, b) &&
        crm_answer_scan(resp->body, resp->body_len, b->n, &scan)) {
        /* the usual answer, only counted: no tree */
        apply_scanned(c, b, &scan, earlier_run);
        if (scan.batch_id) {
            batch_id = scan.batch_id;
            batch_id_len = scan.batch_id_len;
        }
        goto committed;
    }
    /* one arena for every answer: no node-by-node malloc and free */
    root = ab_json_parse_arena(c->answers, resp->body, resp->body_len, err);
    if (!root) {
        return ab_error_prefix(err, "CRM360 answer to batch %llu", (unsigned long long)b->id);
    }
    results = ab_json_get(root, "results");
    if (!results || results->type != yajl_t_array || results->u.array.len != b->n) {
        rc = ab_error_set(err, AB_ERR_PROTOCOL,
                          "CRM360 answered batch %llu of %zu records with %zu results",
                          (unsigned long long)b->id, b->n,
                          results && results->type == yajl_t_array ? results->u.array.len : 0);
        goto out;
    }
    for (i = 0; i < b->n && rc == AB_OK; i++) {
        rc = record_result(c, b, i, results->u.array.values[i], earlier_run, err);
    }
    if (rc == AB_OK) {
        rc = crm_refresh_committed(c, b, results, err); /* before the unit is done */
    }
    if (rc != AB_OK) {
        goto out;
    }
    batch_id = ab_json_get_str(root, "batch_id", "?");
    batch_id_len = strlen(batch_id);
committed:
    ab_driver_add_committed(c->d, b->n - (c->results[b->obj][CRM_R_REJECTED] - rejected_before));
    if (b->replayed) {
        c->batches_replayed++;
    }
    if (earlier_run) {
        c->batches_earlier++;
    }
    AB_DEBUG(c->em, "batch %llu of %zu %s committed (%.*s)%s", (unsigned long long)b->id, b->n,
             crm_object_name(b->obj), (int)batch_id_len, batch_id,
             b->replayed ? ", replayed by CRM360" : "");
out:
    if (root) {
        ab_json_arena_reset(c->answers);
    }
    return rc;
}

void crm_pump(struct crm_dest *c);

/* Whether an answer refuses the batch as a whole for what its records hold
 * (code: the answer's error code). */
static bool refused_as_whole(const struct ab_http_resp *resp, const char *code)
{
    if (resp->transient || resp->in_doubt) {
        return false;
    }
    return resp->status == 413 || (resp->status == 400 && (strcmp(code, "invalid_json") == 0 ||
                                                           strcmp(code, "invalid_encoding") == 0));
}

static void live_add(struct crm_dest *c, struct crm_batch *b)
{
    b->live_prev = NULL;
    b->live_next = c->live;
    if (c->live) {
        c->live->live_prev = b;
    }
    c->live = b;
}

static void queue_front(struct crm_dest *c, struct crm_batch *b)
{
    b->next = c->queue_head;
    c->queue_head = b;
    if (!c->queue_tail) {
        c->queue_tail = b;
    }
    c->queued++;
}

/* Records [lo, hi) of b as a new batch sharing b's checkpoint unit. */
static struct crm_batch *batch_slice(struct crm_dest *c, struct crm_batch *b, size_t lo, size_t hi,
                                     struct ab_error *err)
{
    struct crm_batch *s = batch_alloc(c);
    enum ab_status rc;
    size_t i;

    AB_ASSERT(lo < hi && hi <= b->n);
    if (!s) {
        ab_error_set(err, AB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    s->owner = c;
    s->obj = b->obj;
    s->op = b->op;
    s->id = ++c->next_batch_id;
    s->unit = b->unit;
    s->last_seq = b->last_seq;
    s->shares = b->shares;
    ++*s->shares;
    live_add(c, s);
    if (s->cap < hi - lo) {
        struct crm_rec *p = realloc(s->recs, (hi - lo) * sizeof(*s->recs));

        if (!p) {
            crm_batch_free(s);
            ab_error_set(err, AB_ERR_NOMEM, "out of memory");
            return NULL;
        }
        s->recs = p;
        s->cap = hi - lo;
    }
    rc = ab_buf_adds(&s->body, "{\"records\":[", err);
    for (i = lo; i < hi && rc == AB_OK; i++) {
        struct crm_rec *r = &s->recs[s->n];

        *r = b->recs[i];
        if (i > lo) {
            rc = ab_buf_addc(&s->body, ',', err);
        }
        r->off = s->body.len;
        if (rc == AB_OK) {
            rc = ab_buf_add(&s->body, b->body.data + b->recs[i].off, b->recs[i].len, err);
        }
        if (rc == AB_OK && r->roff != CRM_AS_SENT) {
            r->roff = s->received.len;
            rc = ab_buf_add(&s->received, b->received.data + b->recs[i].roff, r->rlen, err);
        }
        s->n++;
    }
    if (rc == AB_OK) {
        rc = ab_buf_add(&s->body, "]}", 2, err);
    }
    if (rc != AB_OK) {
        crm_batch_free(s);
        return NULL;
    }
    return s;
}

/* b was refused as a whole: its two halves take its place at the head of
 * the queue, the second sent once the first is answered. */
static enum ab_status split_batch(struct crm_dest *c, struct crm_batch *b, int status,
                                  const char *code, struct ab_error *err)
{
    struct crm_batch *lo;
    struct crm_batch *hi;

    if (!b->shares) {
        b->shares = malloc(sizeof(*b->shares));
        if (!b->shares) {
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
        }
        *b->shares = 1;
    }
    lo = batch_slice(c, b, 0, b->n / 2, err);
    if (!lo) {
        return err->code;
    }
    hi = batch_slice(c, b, b->n / 2, b->n, err);
    if (!hi) {
        crm_batch_free(lo);
        return err->code;
    }
    AB_WARN(c->em,
            "CRM360 refused batch %llu of %zu %s as a whole (HTTP %d %s): sending it as batches "
            "%llu and %llu to find the records it refuses",
            (unsigned long long)b->id, b->n, crm_object_name(b->obj), status, code,
            (unsigned long long)lo->id, (unsigned long long)hi->id);
    lo->after = hi;
    hi->after = b->after;
    b->after = NULL;
    queue_front(c, lo);
    c->batches_split++;
    return AB_OK;
}

/* A batch of one record refused as a whole: the record is dead-lettered
 * with CRM360's error. */
static enum ab_status reject_alone(struct crm_dest *c, struct crm_batch *b,
                                   const struct ab_http_resp *resp, const char *code,
                                   const char *message, struct ab_error *err)
{
    const struct crm_rec *r = &b->recs[0];
    struct ab_buf errs;
    char text[160];
    enum ab_status rc;

    AB_ASSERT(b->n == 1);
    (void)snprintf(text, sizeof(text),
                   "CRM360 refused the batch holding only this record (HTTP %d)", resp->status);
    ab_buf_init(&errs, AB_BUF_UNBOUNDED);
    rc = crm_add_problem(&errs, "", *code ? code : "refused", *message ? message : text, err);
    if (rc == AB_OK) {
        rc = ab_buf_addc(&errs, ']', err);
    }
    if (rc == AB_OK) {
        c->results[b->obj][CRM_R_REJECTED]++;
        rc = ab_driver_reject(c->d, r->stream, r->seq, r->lineno, "target", b->body.data + r->off,
                              r->len, errs.data, err);
    }
    ab_buf_release(&errs);
    return rc;
}

/* b is answered for good: its unit is done once no slice of it is left,
 * and the slice after it goes out. */
static void batch_finished(struct crm_dest *c, struct crm_batch *b)
{
    if (!b->shares || *b->shares == 1) {
        ab_ckpt_unit_done(c->ck, b->unit);
    }
    if (b->after) {
        queue_front(c, b->after);
        b->after = NULL;
    }
}

/* An answer refusing b as a whole: split, dead-letter its one record, or
 * false (another failure). */
static bool handle_refusal(struct crm_dest *c, struct crm_batch *b, const struct ab_http_resp *resp)
{
    struct ab_error err;
    struct ab_error ignored;
    yajl_val root = ab_json_parse(resp->body, resp->body_len, &ignored);
    const char *code = ab_json_get_str(ab_json_get(root, "error"), "code", "");
    const char *message = ab_json_get_str(ab_json_get(root, "error"), "message", "");
    enum ab_status rc;
    bool handled = refused_as_whole(resp, code);

    ab_error_init(&err);
    if (handled) {
        if (b->n > 1) {
            rc = split_batch(c, b, resp->status, code, &err);
        } else {
            rc = reject_alone(c, b, resp, code, message, &err);
            if (rc == AB_OK) {
                batch_finished(c, b);
            }
        }
        if (rc != AB_OK) {
            ab_driver_fail(c->d, &err);
        }
    }
    if (root) {
        ab_json_free(root);
    }
    return handled;
}

static void on_batch_done(void *arg, const struct ab_http_resp *resp)
{
    struct crm_batch *b = arg;
    struct crm_dest *c = b->owner;
    struct ab_error err;

    ab_error_init(&err);
    c->in_flight--;
    ab_latency_add(&c->lat[b->obj], ab_now_us() - b->sent_us, resp->attempts);
    if (resp->status == 200) {
        if (apply_results(c, b, resp, &err) != AB_OK) {
            ab_driver_fail(c->d, &err);
        } else {
            batch_finished(c, b);
        }
    } else if (!handle_refusal(c, b, resp)) {
        report_failure(c, b, resp);
    }
    crm_batch_free(b);
    if (!ab_driver_failed(c->d)) {
        crm_pump(c);
        crm_refresh_maybe_start(c);
    }
}

/* ab_http_header_fn of a batch request (arg: the batch): CRM360 answers a
 * request whose Idempotency-Key it already applied from its store, saying
 * so with "Idempotent-Replayed: true". */
static void on_batch_header(void *arg, const char *name, size_t name_len, const char *value,
                            size_t value_len)
{
    static const char hdr[] = "idempotent-replayed";
    struct crm_batch *b = arg;

    if (!name) {
        b->replayed = false; /* a new answer */
        return;
    }
    if (name_len == sizeof(hdr) - 1 && strncasecmp(name, hdr, name_len) == 0) {
        b->replayed = value_len == 4 && strncasecmp(value, "true", 4) == 0;
    }
}

/* ab_http_classify_fn of a batch request: 409 idempotency_key_in_use means
 * the same batch is still being applied; it is retried after Retry-After. */
static enum ab_http_verdict classify_batch(void *arg, const struct ab_http_resp *answer)
{
    (void)arg;
    return answer->status == 409 ? AB_HTTP_RETRY : AB_HTTP_DEFAULT;
}

/* A dry run: CRM360's record rules checked locally, the batch counted (and
 * shown) instead of sent, and its unit done at once. */
static enum ab_status dry_batch(struct crm_dest *c, struct crm_batch *b, struct ab_error *err)
{
    struct ab_buf errors;
    char label[64];
    enum ab_status rc = AB_OK;
    size_t bad = 0;

    ab_buf_init(&errors, AB_BUF_UNBOUNDED);
    for (size_t i = 0; i < b->n && rc == AB_OK; i++) {
        const struct crm_rec *r = &b->recs[i];
        yajl_val rec = ab_json_parse(b->body.data + r->off, r->len, err);

        if (!rec) {
            rc = err->code;
            break;
        }
        ab_buf_reset(&errors);
        rc = crm_check_rules(b->obj, b->op, rec, &errors, err);
        ab_json_free(rec);
        if (rc == AB_OK && errors.len) {
            rc = ab_buf_addc(&errors, ']', err);
            if (rc == AB_OK) {
                bad++;
                c->results[b->obj][CRM_R_REJECTED]++;
                rc = ab_driver_reject(c->d, r->stream, r->seq, r->lineno, "target",
                                      b->body.data + r->off, r->len, errors.data, err);
            }
        }
    }
    ab_buf_release(&errors);
    if (rc == AB_OK) {
        (void)snprintf(label, sizeof(label), "POST /v1/%s:%s", crm_object_name(b->obj),
                       crm_op_name(b->op));
        ab_driver_dry_request(c->d, crm_object_name(b->obj), crm_op_name(b->op), label, b->n - bad,
                              b->body.data, b->body.len);
        ab_ckpt_unit_done(c->ck, b->unit);
    }
    crm_batch_free(b);
    return rc;
}

static enum ab_status send_batch(struct crm_dest *c, struct crm_batch *b, struct ab_error *err)
{
    char url[2048];
    char key[CRM_IDEMPOTENCY_KEY_SIZE];
    char header[CRM_IDEMPOTENCY_KEY_SIZE + 32];
    char label[64];
    struct ab_http_req *req;
    enum ab_status rc;

    (void)snprintf(url, sizeof(url), "%s/v1/%s:%s", c->api_url, crm_object_name(b->obj),
                   crm_op_name(b->op));
    crm_idempotency_key(c->sync_id, b->obj, b->op, b->body.data, b->body.len, key);
    (void)snprintf(header, sizeof(header), "Idempotency-Key: %s", key);
    (void)snprintf(label, sizeof(label), "%s %s #%llu", crm_object_name(b->obj), crm_op_name(b->op),
                   (unsigned long long)b->id);
    req = ab_http_req_new("POST", url, err);
    if (!req) {
        return err->code;
    }
    /* The body stays with the batch (dead letters quote it), which outlives
     * the request: the request points at it, no copy. */
    rc = ab_http_req_header(req, header, err);
    if (rc == AB_OK) {
        rc = ab_http_req_body_ref(req, b->body.data, b->body.len, "application/json", err);
    }
    if (rc != AB_OK) {
        ab_http_req_free(req);
        return rc;
    }
    b->replayed = false;
    ab_http_req_on_header(req, on_batch_header, b);
    ab_http_req_classify(req, classify_batch, NULL);
    ab_http_req_flags(req, c->gzip ? AB_HTTP_GZIP : 0);
    ab_http_req_label(req, label);
    c->in_flight++;
    c->batches_sent++;
    b->sent_us = ab_now_us();
    rc = ab_http_submit(c->http, req, on_batch_done, b, err);
    if (rc != AB_OK) {
        c->in_flight--;
    }
    return rc;
}

/* Sends the queued batches the concurrency limit and the order rule allow. */
void crm_pump(struct crm_dest *c)
{
    struct crm_batch **pp = &c->queue_head;
    struct crm_batch *prev = NULL;
    struct ab_error err;

    ab_error_init(&err);
    while (*pp && c->in_flight < c->max_in_flight) {
        struct crm_batch *b = *pp;

        if (b->obj == CRM_ORDERS && !customers_committed_before(c, b->last_seq + 1)) {
            prev = b;
            pp = &b->next;
            continue;
        }
        *pp = b->next;
        if (c->queue_tail == b) {
            c->queue_tail = prev;
        }
        b->next = NULL;
        c->queued--;
        if (ab_driver_dry_run(c->d)) {
            if (dry_batch(c, b, &err) != AB_OK) {
                ab_driver_fail(c->d, &err);
                return;
            }
            continue;
        }
        if (send_batch(c, b, &err) != AB_OK) {
            crm_batch_free(b);
            ab_driver_fail(c->d, &err);
            return;
        }
    }
}

enum ab_status crm_seal(struct crm_dest *c, enum crm_object obj, enum crm_op op,
                        struct ab_error *err)
{
    struct crm_batch *b = c->open[obj][op];
    enum ab_status rc;

    if (!b) {
        return AB_OK;
    }
    if (obj == CRM_ORDERS) {
        /* the customers before these orders must not wait in an open batch */
        rc = crm_seal(c, CRM_CUSTOMERS, CRM_UPSERT, err);
        if (rc == AB_OK) {
            rc = crm_seal(c, CRM_CUSTOMERS, CRM_DELETE, err);
        }
        if (rc != AB_OK) {
            return rc;
        }
    }
    c->open[obj][op] = NULL;
    rc = ab_buf_add(&b->body, "]}", 2, err);
    if (rc != AB_OK) {
        crm_batch_free(b);
        return rc;
    }
    if (b->body.len > c->body_hint) {
        c->body_hint = b->body.len;
    }
    if (c->queue_tail) {
        c->queue_tail->next = b;
    } else {
        c->queue_head = b;
    }
    c->queue_tail = b;
    c->queued++;
    b->live_next = c->live;
    if (c->live) {
        c->live->live_prev = b;
    }
    c->live = b;
    return AB_OK;
}

enum ab_status crm_seal_all(struct crm_dest *c, struct ab_error *err)
{
    enum ab_status rc = AB_OK;
    int o;
    int op;

    for (o = 0; o < CRM_NOBJECTS && rc == AB_OK; o++) {
        for (op = 0; op < CRM_NOPS && rc == AB_OK; op++) {
            rc = crm_seal(c, (enum crm_object)o, (enum crm_op)op, err);
        }
    }
    return rc;
}
