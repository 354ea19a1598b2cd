/* restale.c - destination-crm360: stale customers of a truncating stream
 * tagged with the current generation. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/assert.h"
#include "ab/json.h"
#include "ab/log.h"

#include "crm360_int.h"

/*
 * A customer the stream sends that CRM360 answers `stale` (it holds a newer
 * version, written by someone else) is not written: the stored record keeps
 * its tags, which may name an earlier generation of the stream, and the
 * removal at the end of the generation would delete a customer the stream
 * sent. So the stored record is read back (GET /v1/customers/{brand}/{id})
 * and written again as it is, with its updated_at, its tags of this stream
 * replaced by the current generation's: by the contract an equal updated_at
 * with a different content is applied (`updated`), the same content is
 * `unchanged` (it already holds the tag). Only the tags change. Should it be
 * `stale` again (written meanwhile), it is read and written again, up to
 * RESTALE_TRIES times; then a WARN names it.
 *
 * A body holds at most batch_size records and max_batch_bytes, like every
 * batch: a record that would overflow it is left for the next body (read
 * again after the full one is answered). A stored record that alone does
 * not fit fails the sync naming it, before any removal: sent untagged, the
 * removal would delete it.
 *
 * The states covering those records wait: each batch holding stale records
 * opens a checkpoint unit holding them, done once they are tagged. One
 * request is on the wire at a time; reading input waits while more than
 * max_in_flight such units are open.
 */

#define RESTALE_TRIES 3

struct rs_item {
    size_t stream;
    uint64_t seq;
    char *brand;
    char *id;
    int tries;
    bool again; /* stale again: read and write once more */
};

struct rs_job {
    struct rs_job *next;
    uint64_t unit;
    struct rs_item *items;
    size_t n;
    size_t next_get; /* the item to read next; those before it are read */
    size_t *sent;    /* items in the body, in its order */
    size_t nsent;
};

struct crm_restale {
    struct rs_job *head;
    struct rs_job *tail;
    size_t jobs;
    bool active; /* a request is on the wire */
    struct ab_buf body;
    struct ab_json_arena *arena;
    uint64_t records;
    uint64_t updated;
    uint64_t unchanged;
    uint64_t gone;
    uint64_t gave_up;
    uint64_t rejected;
};

static void job_free(struct rs_job *j)
{
    size_t i;

    for (i = 0; i < j->n; i++) {
        free(j->items[i].brand);
        free(j->items[i].id);
    }
    free(j->items);
    free(j->sent);
    free(j);
}

void crm_restale_free(struct crm_dest *c)
{
    struct crm_restale *r = c->restale;
    struct rs_job *j;

    if (!r) {
        return;
    }
    while ((j = r->head) != NULL) {
        r->head = j->next;
        job_free(j);
    }
    ab_buf_release(&r->body);
    ab_json_arena_free(r->arena);
    free(r);
    c->restale = NULL;
}

bool crm_restale_pending(const struct crm_dest *c)
{
    return c->restale && c->restale->jobs > 0;
}

bool crm_restale_backlog(const struct crm_dest *c)
{
    return c->restale && c->restale->jobs > c->max_in_flight;
}

static void rs_fail(struct crm_dest *c, const char *what, const struct ab_http_resp *resp)
{
    struct ab_error err;

    ab_error_init(&err);
    if (resp->status == 401 || resp->status == 403) {
        ab_error_set(&err, AB_ERR_CONFIG,
                     "CRM360 refused %s (HTTP %d): a refresh needs the read and write scopes", what,
                     resp->status);
    } else if (resp->status == 0 || resp->transient) {
        ab_error_set(&err, AB_ERR_TRANSIENT, "CRM360 kept failing %s (HTTP %d after %d attempts)",
                     what, resp->status, resp->attempts);
    } else {
        ab_error_set(&err, AB_ERR_INTERNAL, "CRM360 refused %s: HTTP %d", what, resp->status);
    }
    c->restale->active = false;
    ab_driver_fail(c->d, &err);
}

static void rs_fail_err(struct crm_dest *c, const struct ab_error *err)
{
    c->restale->active = false;
    ab_driver_fail(c->d, err);
}

static void rs_step(struct crm_dest *c);

/* The job at the head is done: its records' states may go. */
static void job_done(struct crm_dest *c)
{
    struct crm_restale *r = c->restale;
    struct rs_job *j = r->head;

    r->head = j->next;
    if (!r->head) {
        r->tail = NULL;
    }
    r->jobs--;
    ab_ckpt_unit_done(c->ck, j->unit);
    job_free(j);
}

static void on_upserted(void *arg, const struct ab_http_resp *resp)
{
    struct crm_dest *c = arg;
    struct crm_restale *r = c->restale;
    struct rs_job *j = r->head;
    struct ab_error err;
    yajl_val root;
    yajl_val results;
    size_t i;
    size_t k;

    ab_error_init(&err);
    r->active = false;
    if (resp->status != 200) {
        rs_fail(c, "writing stale customers again with their generation tag", resp);
        return;
    }
    root = ab_json_parse(resp->body, resp->body_len, &err);
    results = crm_batch_results(root, j->nsent, "an upsert of stale customers tagged again", &err);
    if (!results) {
        ab_json_free(root);
        rs_fail_err(c, &err);
        return;
    }
    for (i = 0; i < j->nsent; i++) {
        struct rs_item *it = &j->items[j->sent[i]];
        const char *st = ab_json_get_str(results->u.array.values[i], "status", "");

        if (strcmp(st, "updated") == 0 || strcmp(st, "created") == 0) {
            r->updated++;
        } else if (strcmp(st, "unchanged") == 0) {
            r->unchanged++;
        } else if (strcmp(st, "stale") == 0 && it->tries < RESTALE_TRIES) {
            it->again = true;
        } else if (strcmp(st, "stale") == 0) {
            r->gave_up++;
            AB_WARN(c->em,
                    "stream '%s': customer %s/%s was written by another writer %d times while "
                    "it was being tagged with this generation; the removal of earlier "
                    "generations may delete it",
                    c->cat->streams[it->stream].name, it->brand, it->id, it->tries);
        } else {
            r->rejected++;
            AB_WARN(c->em,
                    "stream '%s': CRM360 answered '%s' to customer %s/%s written again with its "
                    "generation tag; the removal of earlier generations may delete it",
                    c->cat->streams[it->stream].name, st, it->brand, it->id);
        }
    }
    ab_json_free(root);
    /* the items stale again are read once more, those not read yet too */
    for (i = 0, k = 0; i < j->n; i++) {
        if (j->items[i].again || i >= j->next_get) {
            struct rs_item t = j->items[k];

            j->items[k] = j->items[i];
            j->items[i] = t;
            j->items[k].again = false;
            k++;
        }
    }
    for (i = k; i < j->n; i++) {
        free(j->items[i].brand);
        free(j->items[i].id);
    }
    j->n = k;
    j->next_get = 0;
    j->nsent = 0;
    ab_buf_reset(&r->body);
    if (j->n == 0) {
        job_done(c);
    }
    rs_step(c);
}

static void send_upsert(struct crm_dest *c)
{
    struct crm_restale *r = c->restale;
    struct ab_error err;

    ab_error_init(&err);
    if (ab_buf_adds(&r->body, "]}", &err) != AB_OK) {
        rs_fail_err(c, &err);
        return;
    }
    r->active = true;
    if (crm_post_batch(c, CRM_CUSTOMERS, CRM_UPSERT, &r->body,
                       "customers batchUpsert (stale, tagged again)", on_upserted, &err) != AB_OK) {
        rs_fail_err(c, &err);
    }
}

/* Appends the stored record rec to the body, its tags of the stream
 * replaced by the current generation's, without "version". */
static enum ab_status add_record(struct crm_dest *c, yajl_val rec, const struct crm_gen *g,
                                 struct ab_error *err)
{
    struct crm_restale *r = c->restale;
    enum ab_status rc = ab_buf_adds(&r->body, r->head->nsent ? ",{" : "{", err);
    bool tagged = false;
    bool first = true;
    size_t i;

    for (i = 0; i < rec->u.object.len && rc == AB_OK; i++) {
        const char *k = rec->u.object.keys[i];
        yajl_val m = rec->u.object.values[i];
        bool is_tags = strcmp(k, "tags") == 0;

        if (strcmp(k, "version") == 0) {
            continue;
        }
        if (!first) {
            rc = ab_buf_addc(&r->body, ',', err);
        }
        first = false;
        if (rc == AB_OK) {
            rc = ab_json_write_cstr(&r->body, k, err);
        }
        if (rc == AB_OK) {
            rc = ab_buf_addc(&r->body, ':', err);
        }
        if (rc == AB_OK) {
            rc = is_tags && m && m->type == yajl_t_array ? crm_write_tags(&r->body, m, g, err)
                 : is_tags                               ? crm_write_tags(&r->body, NULL, g, err)
                                                         : ab_json_write(&r->body, m, err);
        }
        tagged = tagged || is_tags;
    }
    if (rc == AB_OK && !tagged) {
        rc = ab_buf_adds(&r->body, first ? "\"tags\":" : ",\"tags\":", err);
        if (rc == AB_OK) {
            rc = crm_write_tags(&r->body, NULL, g, err);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(&r->body, '}', err);
    }
    return rc;
}

static void on_read(void *arg, const struct ab_http_resp *resp)
{
    struct crm_dest *c = arg;
    struct crm_restale *r = c->restale;
    struct rs_job *j = r->head;
    size_t at = j->next_get;
    struct rs_item *it = &j->items[at];
    struct ab_error err;
    enum ab_status rc;
    size_t mark;
    yajl_val rec;

    ab_error_init(&err);
    r->active = false;
    j->next_get++;
    if (resp->status == 404) {
        r->gone++; /* deleted meanwhile: nothing to keep */
        rs_step(c);
        return;
    }
    if (resp->status != 200) {
        rs_fail(c, "reading a stale customer back (GET /v1/customers/{brand}/{external_id})", resp);
        return;
    }
    ab_json_arena_reset(r->arena);
    rec = ab_json_parse_arena(r->arena, resp->body, resp->body_len, &err);
    if (!rec || rec->type != yajl_t_object) {
        ab_error_set(&err, AB_ERR_PROTOCOL,
                     "CRM360 answered GET /v1/customers/%s/%s without a record", it->brand, it->id);
        rs_fail_err(c, &err);
        return;
    }
    if (!j->sent) {
        j->sent = calloc(j->n ? j->n : 1, sizeof(*j->sent));
        if (!j->sent) {
            ab_error_set(&err, AB_ERR_NOMEM, "out of memory");
            rs_fail_err(c, &err);
            return;
        }
    }
    AB_ASSERT(j->nsent < c->batch_size);
    mark = r->body.len;
    rc = add_record(c, rec, &c->gens[it->stream], &err);
    if (rc == AB_OK && r->body.len + 2 > c->max_bytes) {
        rc = AB_ERR_PROTOCOL; /* no room for the closing "]}" */
    }
    if (rc == AB_ERR_PROTOCOL) { /* larger than the body's room */
        ab_buf_truncate(&r->body, mark);
        ab_json_arena_reset(r->arena);
        if (j->nsent > 0) {
            j->next_get = at; /* read again for the next body */
            send_upsert(c);
            return;
        }
        ab_error_init(&err);
        ab_error_set(&err, AB_ERR_CONFIG,
                     "stream '%s': customer %s/%s answered stale is stored by CRM360 larger "
                     "than max_batch_bytes (%zu bytes): it cannot be written again with this "
                     "generation's tag, and the removal of earlier generations would delete "
                     "it; raise max_batch_bytes",
                     c->cat->streams[it->stream].name, it->brand, it->id, c->max_bytes);
        rs_fail_err(c, &err);
        return;
    }
    if (rc != AB_OK) {
        rs_fail_err(c, &err);
        return;
    }
    it->tries++;
    j->sent[j->nsent++] = at;
    ab_json_arena_reset(r->arena);
    rs_step(c);
}

/* Reads the next stale customer of the head job, or writes those read. */
static void rs_step(struct crm_dest *c)
{
    struct crm_restale *r = c->restale;
    struct rs_job *j = r->head;
    struct rs_item *it;
    struct ab_http_req *req;
    struct ab_error err;
    char url[4096];
    bool ok;

    ab_error_init(&err);
    if (r->active || !j || ab_driver_failed(c->d)) {
        if (!j) {
            crm_refresh_maybe_start(c);
        }
        return;
    }
    if (j->next_get == j->n || j->nsent == c->batch_size) {
        if (j->nsent) {
            send_upsert(c);
            return;
        }
        job_done(c); /* every record was gone */
        rs_step(c);
        return;
    }
    if (j->nsent == 0) {
        ab_buf_reset(&r->body);
        if (ab_buf_adds(&r->body, "{\"records\":[", &err) != AB_OK) {
            rs_fail_err(c, &err);
            return;
        }
    }
    it = &j->items[j->next_get];
    (void)snprintf(url, sizeof(url), "%s/v1/customers/", c->api_url);
    ok = crm_url_add_encoded(url, sizeof(url) - 1, it->brand); /* room for the '/' */
    if (ok) {
        size_t n = strlen(url);

        url[n] = '/';
        url[n + 1] = '\0';
        ok = crm_url_add_encoded(url, sizeof(url), it->id);
    }
    if (!ok) {
        ab_error_set(&err, AB_ERR_INTERNAL, "customer key too long for a URL");
        rs_fail_err(c, &err);
        return;
    }
    req = ab_http_req_new("GET", url, &err);
    if (!req) {
        rs_fail_err(c, &err);
        return;
    }
    ab_http_req_label(req, "customer read back (stale in a refresh)");
    r->active = true;
    if (ab_http_submit(c->http, req, on_read, c, &err) != AB_OK) {
        rs_fail_err(c, &err);
    }
}

bool crm_restale_wants(const struct crm_dest *c, const struct crm_batch *b)
{
    return b->obj == CRM_CUSTOMERS && b->op == CRM_UPSERT && c->refreshing;
}

enum ab_status crm_restale_batch(struct crm_dest *c, const struct crm_batch *b, yajl_val results,
                                 struct ab_error *err)
{
    struct crm_restale *r;
    struct rs_job *j = NULL;
    size_t i;

    if (!crm_restale_wants(c, b)) {
        return AB_OK;
    }
    for (i = 0; i < b->n; i++) {
        const struct crm_rec *rec = &b->recs[i];
        yajl_val res = results->u.array.values[i];
        const char *brand = ab_json_get_str(res, "brand", NULL);
        const char *id = ab_json_get_str(res, "external_id", NULL);
        struct rs_item *it;

        if (!c->gens[rec->stream].truncating ||
            strcmp(ab_json_get_str(res, "status", ""), "stale") != 0) {
            continue;
        }
        if (!brand || !id) {
            return ab_error_set(err, AB_ERR_PROTOCOL,
                                "CRM360 answered 'stale' for record %zu of batch %llu without "
                                "its brand and external_id",
                                i, (unsigned long long)b->id);
        }
        if (!c->restale) {
            c->restale = calloc(1, sizeof(*c->restale));
            if (!c->restale) {
                return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
            }
            ab_buf_init(&c->restale->body, c->max_bytes);
            c->restale->arena = ab_json_arena_new(err);
            if (!c->restale->arena) {
                return err->code;
            }
        }
        r = c->restale;
        if (!j) {
            j = calloc(1, sizeof(*j));
            if (j) {
                j->items = calloc(b->n, sizeof(*j->items));
            }
            if (!j || !j->items) {
                free(j);
                return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
            }
            j->unit = ab_ckpt_unit_open(c->ck, err);
            if (j->unit == 0) {
                job_free(j);
                return err->code;
            }
            /* queued now: freed with the others whatever happens next */
            if (r->tail) {
                r->tail->next = j;
            } else {
                r->head = j;
            }
            r->tail = j;
            r->jobs++;
        }
        it = &j->items[j->n];
        it->stream = rec->stream;
        it->seq = rec->seq;
        it->brand = strdup(brand);
        it->id = strdup(id);
        if (!it->brand || !it->id) {
            free(it->brand);
            free(it->id);
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
        }
        j->n++;
        r->records++;
        if (ab_ckpt_unit_add(c->ck, j->unit, rec->stream, rec->seq, err) != AB_OK) {
            return err->code;
        }
    }
    if (j) {
        rs_step(c);
    }
    return AB_OK;
}

void crm_restale_summary(struct crm_dest *c, struct ab_emitter *em)
{
    const struct crm_restale *r = c->restale;

    if (!r || !r->records) {
        return;
    }
    AB_INFO(em,
            "refresh: %llu customers answered stale (CRM360 holds a newer version) were tagged "
            "with their generation: updated %llu, unchanged %llu, deleted meanwhile %llu, "
            "written again by others too often %llu, refused %llu",
            (unsigned long long)r->records, (unsigned long long)r->updated,
            (unsigned long long)r->unchanged, (unsigned long long)r->gone,
            (unsigned long long)r->gave_up, (unsigned long long)r->rejected);
}
