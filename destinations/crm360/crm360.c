/* crm360.c - destination-crm360: customers and orders into CRM360. */
/* SPDX-License-Identifier: MIT */
#include "crm360.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ab/catalog.h"
#include "ab/checkpoint.h"
#include "ab/http.h"
#include "ab/json.h"
#include "ab/log.h"

/*
 * Records are grouped per (object, operation) into batches of at most
 * batch_size records and max_batch_bytes of body. Each batch is one
 * checkpoint unit: the driver releases a STATE once every batch holding its
 * records has been answered 200 by CRM360, which by contract means they are
 * durably committed. Up to max_in_flight batches are on the wire at once.
 *
 * Orders wait for customers: a sealed batch of orders is sent only once every
 * customer record that arrived before its last order is committed, so an
 * order never reaches CRM360 before the customer it names (sealing orders
 * seals the open customer batches too, so they never wait long).
 */

enum crm_result {
    CRM_R_CREATED = 0,
    CRM_R_UPDATED,
    CRM_R_UNCHANGED,
    CRM_R_STALE,
    CRM_R_DELETED,
    CRM_R_NOT_FOUND,
    CRM_R_REJECTED,
    CRM_R_NRESULTS
};

static const char *const result_names[CRM_R_NRESULTS] = {
    "created", "updated", "unchanged", "stale", "deleted", "not_found", "rejected"};

static const char *const object_names[] = {"customers", "orders", NULL};

struct crm_rec {
    uint64_t seq;
    uint64_t lineno;
    size_t stream;
    size_t off; /* of the record's text within the body */
    size_t len;
};

struct crm_batch {
    struct crm_dest *owner;
    struct crm_batch *next;      /* in the send queue */
    struct crm_batch *live_prev; /* every sealed batch not yet freed */
    struct crm_batch *live_next;
    enum crm_object obj;
    enum crm_op op;
    uint64_t id;
    uint64_t unit;
    uint64_t last_seq;
    struct ab_buf body;
    struct crm_rec *recs;
    size_t n;
    size_t cap;
};

struct crm_dest {
    struct ab_driver *d;
    struct ab_emitter *em;
    struct ab_http *http;
    struct ab_ckpt *ck;
    const struct ab_catalog *cat;
    struct ab_mappings maps;
    struct ab_mapping *extra_maps; /* identity mappings by destination_object_name */
    size_t nextra;
    const struct ab_mapping **stream_map; /* per catalog stream */
    enum crm_object *stream_obj;
    enum crm_op *stream_op;

    char *api_url;
    const char *brand;
    int64_t sync_id;
    size_t batch_size;
    size_t max_bytes;
    size_t max_in_flight;
    bool gzip;

    struct crm_batch *open[CRM_NOBJECTS][CRM_NOPS];
    struct crm_batch *queue_head;
    struct crm_batch *queue_tail;
    struct crm_batch *live; /* sealed batches, queued or on the wire */
    size_t queued;
    size_t in_flight;
    uint64_t next_batch_id;

    uint64_t results[CRM_NOBJECTS][CRM_R_NRESULTS];
    uint64_t local_rejects;
    uint64_t batches_sent;
    uint64_t batches_replayed;
    struct ab_buf scratch;
    struct ab_buf errors;
};

const char *crm_object_name(enum crm_object o)
{
    return o == CRM_ORDERS ? "orders" : "customers";
}

const char *crm_op_name(enum crm_op op)
{
    return op == CRM_DELETE ? "batchDelete" : "batchUpsert";
}

void crm_idempotency_key(int64_t sync_id, enum crm_object o, enum crm_op op, const char *body,
                         size_t len, char *key)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char head[96];
    int hn;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int i;

    hn = snprintf(head, sizeof(head), "%lld\n%s:%s\n", (long long)sync_id, crm_object_name(o),
                  crm_op_name(op));
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, head, (size_t)hn) != 1 || EVP_DigestUpdate(ctx, body, len) != 1 ||
        EVP_DigestFinal_ex(ctx, md, &mdlen) != 1) {
        mdlen = 0;
    }
    EVP_MD_CTX_free(ctx);
    memcpy(key, "crm360-", 7);
    for (i = 0; i < mdlen && i < 32; i++) {
        key[7 + 2 * i] = hex[md[i] >> 4];
        key[8 + 2 * i] = hex[md[i] & 15];
    }
    key[7 + 2 * i] = '\0';
}

/* ---- building records ---------------------------------------------------- */

static enum ab_status add_problem(struct ab_buf *errors, const char *field, const char *code,
                                  const char *message, struct ab_error *err)
{
    enum ab_status rc;

    rc = ab_buf_adds(errors, errors->len ? "," : "[", err);
    if (rc == AB_OK) {
        rc = ab_buf_adds(errors, "{\"field\":", err);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(errors, field, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(errors, ",\"code\":", err);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(errors, code, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(errors, ",\"message\":", err);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(errors, message, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(errors, '}', err);
    }
    return rc;
}

/* Checks that a key field is a non-empty string; records a problem if not. */
static enum ab_status check_key(yajl_val v, const char *field, struct ab_buf *errors, bool *bad,
                                struct ab_error *err)
{
    char msg[128];

    if (ab_json_is_null(v) || (v->type == yajl_t_string && v->u.string[0] == '\0')) {
        *bad = true;
        (void)snprintf(msg, sizeof(msg), "'%s' is required", field);
        return add_problem(errors, field, "missing_field", msg, err);
    }
    if (v->type != yajl_t_string) {
        *bad = true;
        (void)snprintf(msg, sizeof(msg), "'%s' must be a string, not %s", field,
                       ab_json_type_name(v));
        return add_problem(errors, field, "invalid_type", msg, err);
    }
    return AB_OK;
}

static enum ab_status build_delete(const struct ab_mapping *m, yajl_val data, const char *brand,
                                   struct ab_buf *out, struct ab_buf *errors, bool *bad,
                                   struct ab_error *err)
{
    yajl_val id = ab_mapping_get(m, data, "external_id");
    yajl_val br = ab_mapping_get(m, data, "brand");
    yajl_val at = ab_json_get(data, "_ab_cdc_deleted_at");
    enum ab_status rc;

    if (ab_json_is_null(at)) {
        at = ab_mapping_get(m, data, "deleted_at");
    }
    if (ab_json_is_null(at)) {
        at = ab_mapping_get(m, data, "updated_at");
    }
    rc = check_key(id, "external_id", errors, bad, err);
    if (rc == AB_OK && !(ab_json_is_null(br) && brand)) {
        rc = check_key(br, "brand", errors, bad, err);
    }
    if (rc == AB_OK && (ab_json_is_null(at) || at->type != yajl_t_string)) {
        *bad = true;
        rc = add_problem(errors, "deleted_at", "missing_field",
                         "a deletion needs _ab_cdc_deleted_at, deleted_at or updated_at as an "
                         "RFC 3339 string",
                         err);
    }
    if (rc != AB_OK || *bad) {
        return rc;
    }
    rc = ab_buf_adds(out, "{\"external_id\":", err);
    if (rc == AB_OK) {
        rc = ab_json_write(out, id, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(out, ",\"brand\":", err);
    }
    if (rc == AB_OK) {
        rc =
            ab_json_is_null(br) ? ab_json_write_cstr(out, brand, err) : ab_json_write(out, br, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(out, ",\"deleted_at\":", err);
    }
    if (rc == AB_OK) {
        rc = ab_json_write(out, at, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(out, '}', err);
    }
    return rc;
}

enum ab_status crm_build_record(const struct ab_mapping *m, yajl_val data, const char *brand,
                                enum crm_op op, struct ab_buf *out, struct ab_buf *errors,
                                struct ab_error *err)
{
    size_t mark = out->len;
    size_t emark = errors->len;
    bool bad = false;
    enum ab_status rc;

    if (op == CRM_DELETE) {
        rc = build_delete(m, data, brand, out, errors, &bad, err);
    } else {
        yajl_val br = ab_mapping_get(m, data, "brand");

        rc = check_key(ab_mapping_get(m, data, "external_id"), "external_id", errors, &bad, err);
        if (rc == AB_OK && !(ab_json_is_null(br) && brand)) {
            rc = check_key(br, "brand", errors, &bad, err);
        }
        if (rc == AB_OK && !bad) {
            rc = ab_mapping_write(m, data, "brand", brand, out, err);
        }
    }
    if (rc != AB_OK) {
        ab_buf_truncate(out, mark);
        ab_buf_truncate(errors, emark);
        return rc;
    }
    if (bad) {
        ab_buf_truncate(out, mark);
        rc = ab_buf_addc(errors, ']', err);
        return rc != AB_OK ? rc : ab_error_set(err, AB_ERR_REJECTED, "%s", errors->data);
    }
    return AB_OK;
}

/* ---- batches ------------------------------------------------------------- */

static void batch_free(struct crm_batch *b)
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

static struct crm_batch *batch_new(struct crm_dest *c, enum crm_object obj, enum crm_op op,
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
        batch_free(b);
        return NULL;
    }
    b->unit = ab_ckpt_unit_open(c->ck, err);
    if (b->unit == 0) {
        batch_free(b);
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
                                    yajl_val result, struct ab_error *err)
{
    const char *status = ab_json_get_str(result, "status", "");
    const struct crm_rec *r = &b->recs[i];
    int k;

    for (k = 0; k < CRM_R_NRESULTS; k++) {
        if (strcmp(status, result_names[k]) == 0) {
            break;
        }
    }
    if (k == CRM_R_NRESULTS) {
        return ab_error_set(err, AB_ERR_PROTOCOL,
                            "CRM360 answered an unknown status '%s' for record %zu of batch %llu",
                            status, i, (unsigned long long)b->id);
    }
    c->results[b->obj][k]++;
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
    yajl_val root = ab_json_parse(resp->body, resp->body_len, err);
    yajl_val results;
    enum ab_status rc = AB_OK;
    size_t i;
    uint64_t rejected_before = c->results[b->obj][CRM_R_REJECTED];

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
        rc = record_result(c, b, i, results->u.array.values[i], err);
    }
    if (rc == AB_OK) {
        ab_driver_add_committed(c->d,
                                b->n - (c->results[b->obj][CRM_R_REJECTED] - rejected_before));
        if (resp->replayed) {
            c->batches_replayed++;
        }
        AB_DEBUG(c->em, "batch %llu of %zu %s committed (%s)%s", (unsigned long long)b->id, b->n,
                 crm_object_name(b->obj), ab_json_get_str(root, "batch_id", "?"),
                 resp->replayed ? ", replayed by CRM360" : "");
    }
out:
    ab_json_free(root);
    return rc;
}

static void pump(struct crm_dest *c);

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
    batch_free(b);
    if (!ab_driver_failed(c->d)) {
        pump(c);
    }
}

static enum ab_status send_batch(struct crm_dest *c, struct crm_batch *b, struct ab_error *err)
{
    char url[2048];
    char key[CRM_IDEMPOTENCY_KEY_SIZE];
    char header[CRM_IDEMPOTENCY_KEY_SIZE + 32];
    char label[64];
    struct ab_http_req *req;
    struct ab_buf body;
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
    /* The body stays with the batch (dead letters quote it); the request
     * gets a copy. */
    ab_buf_init(&body, AB_BUF_UNBOUNDED);
    rc = ab_buf_add(&body, b->body.data, b->body.len, err);
    if (rc == AB_OK) {
        rc = ab_http_req_header(req, header, err);
    }
    if (rc == AB_OK) {
        rc = ab_http_req_body(req, &body, "application/json", err);
    }
    ab_buf_release(&body);
    if (rc != AB_OK) {
        ab_http_req_free(req);
        return rc;
    }
    ab_http_req_retry_status(req, 409); /* idempotency_key_in_use: wait and retry */
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
static void pump(struct crm_dest *c)
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
            batch_free(b);
            ab_driver_fail(c->d, &err);
            return;
        }
    }
}

static enum ab_status seal(struct crm_dest *c, enum crm_object obj, enum crm_op op,
                           struct ab_error *err)
{
    struct crm_batch *b = c->open[obj][op];
    enum ab_status rc;

    if (!b) {
        return AB_OK;
    }
    if (obj == CRM_ORDERS) {
        /* the customers before these orders must not wait in an open batch */
        rc = seal(c, CRM_CUSTOMERS, CRM_UPSERT, err);
        if (rc == AB_OK) {
            rc = seal(c, CRM_CUSTOMERS, CRM_DELETE, err);
        }
        if (rc != AB_OK) {
            return rc;
        }
    }
    c->open[obj][op] = NULL;
    rc = ab_buf_add(&b->body, "]}", 2, err);
    if (rc != AB_OK) {
        batch_free(b);
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

static enum ab_status seal_all(struct crm_dest *c, struct ab_error *err)
{
    enum ab_status rc = AB_OK;
    int o;
    int op;

    for (o = 0; o < CRM_NOBJECTS && rc == AB_OK; o++) {
        for (op = 0; op < CRM_NOPS && rc == AB_OK; op++) {
            rc = seal(c, (enum crm_object)o, (enum crm_op)op, err);
        }
    }
    return rc;
}

/* ---- ops ----------------------------------------------------------------- */

static enum ab_status crm_record(void *self, const struct ab_record *rec, struct ab_error *err)
{
    struct crm_dest *c = self;
    const struct ab_mapping *m = c->stream_map[rec->stream];
    enum crm_object obj = c->stream_obj[rec->stream];
    enum crm_op op = rec->deleted ? CRM_DELETE : c->stream_op[rec->stream];
    struct crm_batch *b;
    struct crm_rec *r;
    enum ab_status rc;

    ab_buf_reset(&c->scratch);
    ab_buf_reset(&c->errors);
    rc = crm_build_record(m, rec->data, c->brand, op, &c->scratch, &c->errors, err);
    if (rc == AB_OK && c->scratch.len + 16 > c->max_bytes) {
        ab_buf_reset(&c->errors);
        rc = add_problem(&c->errors, "", "too_long", "the record is larger than max_batch_bytes",
                         err);
        if (rc == AB_OK) {
            rc = ab_buf_addc(&c->errors, ']', err);
        }
        if (rc == AB_OK) {
            rc = AB_ERR_REJECTED;
        }
    }
    if (rc == AB_ERR_REJECTED) {
        ab_buf_reset(&c->scratch);
        rc = ab_json_write(&c->scratch, rec->data, err);
        if (rc != AB_OK) {
            return rc;
        }
        c->local_rejects++;
        return ab_driver_reject(c->d, rec->stream, rec->seq, rec->lineno, "destination",
                                c->scratch.data, c->scratch.len, c->errors.data, err);
    }
    if (rc != AB_OK) {
        return rc;
    }
    b = c->open[obj][op];
    if (b && b->body.len + 1 + c->scratch.len + 2 > c->max_bytes) {
        rc = seal(c, obj, op, err);
        if (rc != AB_OK) {
            return rc;
        }
        pump(c);
        b = NULL;
    }
    if (!b) {
        b = batch_new(c, obj, op, err);
        if (!b) {
            return err->code;
        }
        c->open[obj][op] = b;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        struct crm_rec *p = realloc(b->recs, cap * sizeof(*p));

        if (!p) {
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
        }
        b->recs = p;
        b->cap = cap;
    }
    if (b->n) {
        rc = ab_buf_addc(&b->body, ',', err);
    }
    r = &b->recs[b->n];
    r->off = b->body.len;
    r->len = c->scratch.len;
    r->seq = rec->seq;
    r->lineno = rec->lineno;
    r->stream = rec->stream;
    if (rc == AB_OK) {
        rc = ab_buf_add(&b->body, c->scratch.data, c->scratch.len, err);
    }
    if (rc == AB_OK) {
        rc = ab_ckpt_unit_add(c->ck, b->unit, rec->stream, rec->seq, err);
    }
    if (rc != AB_OK) {
        return rc;
    }
    b->n++;
    b->last_seq = rec->seq;
    if (b->n >= c->batch_size) {
        rc = seal(c, obj, op, err);
        if (rc == AB_OK) {
            pump(c);
        }
    }
    return rc;
}

static bool crm_busy(void *self)
{
    struct crm_dest *c = self;

    return c->queued + c->in_flight >= 2 * c->max_in_flight;
}

static enum ab_status crm_flush(void *self, bool final, struct ab_error *err)
{
    struct crm_dest *c = self;
    enum ab_status rc = seal_all(c, err);

    (void) final;
    if (rc == AB_OK) {
        pump(c);
    }
    return rc;
}

static bool crm_idle(void *self)
{
    struct crm_dest *c = self;
    int o;
    int op;

    for (o = 0; o < CRM_NOBJECTS; o++) {
        for (op = 0; op < CRM_NOPS; op++) {
            if (c->open[o][op]) {
                return false;
            }
        }
    }
    return c->queued == 0 && c->in_flight == 0;
}

static void crm_summary(void *self, struct ab_emitter *em)
{
    struct crm_dest *c = self;
    int o;

    for (o = 0; o < CRM_NOBJECTS; o++) {
        const uint64_t *r = c->results[o];

        AB_INFO(em,
                "crm360 %s: created %llu, updated %llu, unchanged %llu, stale %llu, deleted "
                "%llu, not_found %llu, rejected by CRM360 %llu",
                crm_object_name((enum crm_object)o), (unsigned long long)r[CRM_R_CREATED],
                (unsigned long long)r[CRM_R_UPDATED], (unsigned long long)r[CRM_R_UNCHANGED],
                (unsigned long long)r[CRM_R_STALE], (unsigned long long)r[CRM_R_DELETED],
                (unsigned long long)r[CRM_R_NOT_FOUND], (unsigned long long)r[CRM_R_REJECTED]);
    }
    AB_INFO(em,
            "crm360: %llu batches sent (%llu answered from the idempotency store), %llu records "
            "rejected before sending",
            (unsigned long long)c->batches_sent, (unsigned long long)c->batches_replayed,
            (unsigned long long)c->local_rejects);
}

static void crm_close(void *self)
{
    struct crm_dest *c = self;
    struct crm_batch *b;
    size_t i;
    int o;
    int op;

    if (!c) {
        return;
    }
    ab_http_free(c->http); /* drops what is in flight, without callbacks */
    while ((b = c->live) != NULL) {
        batch_free(b);
    }
    for (o = 0; o < CRM_NOBJECTS; o++) {
        for (op = 0; op < CRM_NOPS; op++) {
            batch_free(c->open[o][op]);
        }
    }
    for (i = 0; i < c->nextra; i++) {
        free(c->extra_maps[i].stream);
        free(c->extra_maps[i].object);
    }
    free(c->extra_maps);
    ab_mappings_release(&c->maps);
    free((void *)c->stream_map);
    free(c->stream_obj);
    free(c->stream_op);
    free(c->api_url);
    ab_buf_release(&c->scratch);
    ab_buf_release(&c->errors);
    free(c);
}

static char *dup_url(const char *url)
{
    size_t n = strlen(url);
    char *p;

    while (n > 0 && url[n - 1] == '/') {
        n--;
    }
    p = malloc(n + 1);
    if (p) {
        memcpy(p, url, n);
        p[n] = '\0';
    }
    return p;
}

/* check asks once or twice: an operator waits for its answer. */
#define CHECK_MAX_RETRIES 1

static enum ab_status make_client(struct ab_driver *d, bool for_check, struct ab_http **out,
                                  struct ab_error *err)
{
    yajl_val cfg = ab_driver_config(d);
    struct ab_http_opts o;
    enum ab_status rc;

    ab_driver_http_opts(d, &o);
    if (for_check && o.max_retries > CHECK_MAX_RETRIES) {
        o.max_retries = CHECK_MAX_RETRIES;
    }
    o.user_agent = "destination-crm360/0.1.0";
    *out = ab_http_new(&o, err);
    if (!*out) {
        return err->code;
    }
    rc = ab_http_set_bearer(*out, ab_json_get_str(cfg, "api_key", ""), err);
    if (rc != AB_OK) {
        ab_http_free(*out);
        *out = NULL;
    }
    return rc;
}

static int object_index(const char *name)
{
    return strcmp(name, "orders") == 0 ? CRM_ORDERS : CRM_CUSTOMERS;
}

/* Resolves each catalog stream to an object, a mapping and an operation. */
static enum ab_status resolve_streams(struct crm_dest *c, struct ab_error *err)
{
    size_t i;
    enum ab_status rc;

    c->stream_map = calloc(c->cat->n ? c->cat->n : 1, sizeof(*c->stream_map));
    c->stream_obj = calloc(c->cat->n ? c->cat->n : 1, sizeof(*c->stream_obj));
    c->stream_op = calloc(c->cat->n ? c->cat->n : 1, sizeof(*c->stream_op));
    c->extra_maps = calloc(c->cat->n ? c->cat->n : 1, sizeof(*c->extra_maps));
    if (!c->stream_map || !c->stream_obj || !c->stream_op || !c->extra_maps) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    for (i = 0; i < c->cat->n; i++) {
        const struct ab_stream *s = &c->cat->streams[i];
        const struct ab_mapping *m;

        struct ab_error none;

        ab_error_init(&none);
        m = ab_mappings_resolve(&c->maps, s->name, s->ns, object_names, &none);
        if (!m && none.code != AB_OK && none.code != AB_ERR_CONFIG) {
            *err = none;
            return err->code;
        }
        if (!m && s->destination_object &&
            (strcmp(s->destination_object, "customers") == 0 ||
             strcmp(s->destination_object, "orders") == 0)) {
            struct ab_mapping *x = &c->extra_maps[c->nextra++];

            x->stream = strdup(s->name);
            x->object = strdup(s->destination_object);
            x->identity = true;
            if (!x->stream || !x->object) {
                return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
            }
            m = x;
        }
        if (!m) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "stream '%s' loads no CRM360 object: name the stream customers "
                                "or orders, or map it in stream_mappings",
                                s->name);
        }
        switch (s->dest_mode) {
        case AB_DEST_APPEND:
        case AB_DEST_APPEND_DEDUP:
            c->stream_op[i] = CRM_UPSERT;
            break;
        case AB_DEST_SOFT_DELETE:
            c->stream_op[i] = CRM_DELETE;
            break;
        case AB_DEST_OVERWRITE:
        case AB_DEST_OVERWRITE_DEDUP:
        case AB_DEST_UPDATE:
        case AB_DEST_UNKNOWN:
            return ab_error_set(err, AB_ERR_CONFIG,
                                "stream '%s': destination_sync_mode '%s' is not supported by "
                                "destination-crm360 (supported: append, append_dedup, "
                                "soft_delete)",
                                s->name, s->dest_mode_name ? s->dest_mode_name : "?");
        }
        c->stream_map[i] = m;
        c->stream_obj[i] = (enum crm_object)object_index(m->object);
        if (c->sync_id < 0 && s->sync_id >= 0) {
            c->sync_id = s->sync_id;
        }
    }
    rc = AB_OK;
    return rc;
}

static enum ab_status crm_open(struct ab_driver *d, void **self, struct ab_error *err)
{
    yajl_val cfg = ab_driver_config(d);
    struct crm_dest *c = calloc(1, sizeof(*c));
    enum ab_status rc;

    if (!c) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    *self = c;
    c->d = d;
    c->em = ab_driver_emitter(d);
    c->ck = ab_driver_ckpt(d);
    c->cat = ab_driver_catalog(d);
    c->sync_id = -1;
    c->brand = ab_json_get_str(cfg, "brand", NULL);
    c->batch_size = (size_t)ab_json_get_int(cfg, "batch_size", 500);
    c->max_bytes = (size_t)ab_json_get_int(cfg, "max_batch_bytes", 8000000);
    c->max_in_flight = (size_t)ab_json_get_int(cfg, "max_in_flight", 4);
    c->gzip = ab_json_get_bool(cfg, "gzip", true);
    ab_buf_init(&c->scratch, AB_BUF_UNBOUNDED);
    ab_buf_init(&c->errors, AB_BUF_UNBOUNDED);
    rc = ab_driver_check_url(ab_json_get_str(cfg, "api_url", NULL), "api_url", err);
    if (rc != AB_OK) {
        return rc;
    }
    c->api_url = dup_url(ab_json_get_str(cfg, "api_url", ""));
    if (!c->api_url) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    rc = ab_mappings_parse(&c->maps, ab_json_get(cfg, "stream_mappings"), object_names, err);
    if (rc == AB_OK) {
        rc = resolve_streams(c, err);
    }
    if (rc == AB_OK) {
        rc = make_client(d, false, &c->http, err);
    }
    if (rc == AB_OK) {
        ab_driver_set_http(d, c->http);
        AB_INFO(c->em, "loading into '%s' in batches of up to %zu records, %zu in flight",
                c->api_url, c->batch_size, c->max_in_flight);
    }
    return rc;
}

static enum ab_status crm_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err)
{
    yajl_val cfg = ab_driver_config(d);
    const char *url = ab_json_get_str(cfg, "api_url", NULL);
    struct ab_mappings maps;
    struct ab_http *http = NULL;
    struct ab_http_req *req;
    struct ab_buf body;
    struct ab_error e;
    char *base = NULL;
    char full[2048];
    int status = 0;

    (void)err;
    ab_error_init(&e);
    memset(&maps, 0, sizeof(maps));
    if (ab_mappings_parse(&maps, ab_json_get(cfg, "stream_mappings"), object_names, &e) != AB_OK) {
        ab_check_problem(chk, "%s", e.message);
    }
    ab_mappings_release(&maps);
    if (ab_driver_check_url(url, "api_url", &e) != AB_OK) {
        ab_check_problem(chk, "%s", e.message);
        return AB_OK;
    }
    ab_buf_init(&body, 1 << 20);
    base = dup_url(url);
    if (!base || make_client(d, true, &http, &e) != AB_OK) {
        ab_check_problem(chk, "cannot set up the HTTP client: %s", e.message);
        goto out;
    }
    (void)snprintf(full, sizeof(full), "%s/v1/ping", base);
    req = ab_http_req_new("GET", full, &e);
    if (!req || ab_http_run(http, req, &status, &body, &e) != AB_OK) {
        ab_check_problem(chk, "cannot reach CRM360 at '%s': %s", base, e.message);
        goto out;
    }
    if (status == 401) {
        ab_check_problem(chk, "CRM360 rejected the api_key (HTTP 401)");
    } else if (status == 403) {
        ab_check_problem(chk, "the api_key may not use CRM360 (HTTP 403)");
    } else if (status != 200) {
        ab_check_problem(chk, "CRM360 answered GET /v1/ping with HTTP %d", status);
    } else {
        yajl_val root = ab_json_parse(body.data ? body.data : "", body.len, &e);
        yajl_val scopes = ab_json_get(root, "scopes");
        bool write = false;
        size_t i;

        for (i = 0; scopes && scopes->type == yajl_t_array && i < scopes->u.array.len; i++) {
            const char *s = ab_json_str(scopes->u.array.values[i]);

            write = write || (s && strcmp(s, "write") == 0);
        }
        if (!write) {
            ab_check_problem(chk, "the api_key has no write scope in CRM360 workspace '%s'",
                             ab_json_get_str(root, "workspace", "?"));
        }
        if (root) {
            ab_json_free(root);
        }
    }
out:
    ab_http_free(http);
    ab_buf_release(&body);
    free(base);
    return AB_OK;
}

const struct ab_destination_ops crm_destination_ops = {
    .name = "destination-crm360",
    .version = "0.1.0",
    .spec_json = crm_spec_json,
    .check = crm_check,
    .open = crm_open,
    .record = crm_record,
    .state = NULL,
    .stream_status = NULL,
    .busy = crm_busy,
    .flush = crm_flush,
    .idle = crm_idle,
    .summary = crm_summary,
    .finish = NULL,
    .close = crm_close,
};
