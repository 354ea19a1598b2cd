/* batch.c - destination-crm360: batches, their requests and their answers. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strings.h>

#include "ab/clock.h"
#include "ab/json.h"
#include "ab/log.h"

#include "crm360_int.h"

/* ---- batches ------------------------------------------------------------- */

void crm_batch_free(struct crm_batch *b)
{
    if (!b) {
        return;
    }
    if (b->live_prev) {
        b->live_prev->live_next = b->live_next;
    } else if (b->owner->live == b) {
        b->owner->live = b->live_next;
    }
    if (b->live_next) {
        b->live_next->live_prev = b->live_prev;
    }
    ab_buf_release(&b->body);
    free(b->recs);
    free(b);
}

struct crm_batch *crm_batch_new(struct crm_dest *c, enum crm_object obj, enum crm_op op,
                                struct ab_error *err)
{
    struct crm_batch *b = calloc(1, sizeof(*b));

    if (!b) {
        ab_error_set(err, AB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    b->owner = c;
    b->obj = obj;
    b->op = op;
    b->id = ++c->next_batch_id;
    ab_buf_init(&b->body, c->max_bytes + 64);
    if (ab_buf_adds(&b->body, "{\"records\":[", err) != AB_OK) {
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
    enum ab_status st = AB_ERR_INTERNAL;

    ab_error_init(&err);
    (void)snprintf(what, sizeof(what), "batch %llu of %zu %s (%s)", (unsigned long long)b->id, b->n,
                   crm_object_name(b->obj), crm_op_name(b->op));
    if (resp->status) {
        struct ab_error ignored;

        root = ab_json_parse(resp->body, resp->body_len, &ignored);
        code = ab_json_get_str(ab_json_get(root, "error"), "code", "");
        message = ab_json_get_str(ab_json_get(root, "error"), "message", "");
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
            rc = ab_driver_reject(c->d, r->stream, r->seq, r->lineno, "target",
                                  b->body.data + r->off, r->len, errs.data, err);
        }
        ab_buf_release(&errs);
        return rc;
    }
    return AB_OK;
}

static enum ab_status apply_results(struct crm_dest *c, struct crm_batch *b,
                                    const struct ab_http_resp *resp, struct ab_error *err)
{
    /* one arena for every answer: no node-by-node malloc and free */
    yajl_val root = ab_json_parse_arena(c->answers, resp->body, resp->body_len, err);
    yajl_val results;
    enum ab_status rc = AB_OK;
    size_t i;
    uint64_t rejected_before = c->results[b->obj][CRM_R_REJECTED];
    /* An answer from the idempotency store to a first attempt: the batch
     * was applied by an earlier run (same sync id, same body). After an
     * attempt of this run whose answer was lost it is this run's own. */
    bool earlier_run = b->replayed && resp->attempts <= 1;

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
        ab_driver_add_committed(c->d,
                                b->n - (c->results[b->obj][CRM_R_REJECTED] - rejected_before));
        if (b->replayed) {
            c->batches_replayed++;
        }
        if (earlier_run) {
            c->batches_earlier++;
        }
        AB_DEBUG(c->em, "batch %llu of %zu %s committed (%s)%s", (unsigned long long)b->id, b->n,
                 crm_object_name(b->obj), ab_json_get_str(root, "batch_id", "?"),
                 b->replayed ? ", replayed by CRM360" : "");
    }
out:
    ab_json_arena_reset(c->answers);
    return rc;
}

void crm_pump(struct crm_dest *c);

static void on_batch_done(void *arg, const struct ab_http_resp *resp)
{
    struct crm_batch *b = arg;
    struct crm_dest *c = b->owner;
    struct ab_error err;

    ab_error_init(&err);
    c->in_flight--;
    if (resp->status == 200) {
        if (apply_results(c, b, resp, &err) != AB_OK) {
            ab_driver_fail(c->d, &err);
        } else {
            ab_ckpt_unit_done(c->ck, b->unit);
        }
    } else {
        report_failure(c, b, resp);
    }
    crm_batch_free(b);
    if (!ab_driver_failed(c->d)) {
        crm_pump(c);
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
