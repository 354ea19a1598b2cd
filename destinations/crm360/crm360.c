/* crm360.c - destination-crm360: the ops table, config, records, flushes. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/json.h"
#include "ab/log.h"
#include "ab/options.h"

#include "crm360_int.h"

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
    bool verbatim = false;
    const char *out = NULL; /* the record as it goes into the batch */
    size_t out_len = 0;
    const struct ab_json_member *t = NULL; /* data's "tags" when as_it_came */
    bool as_it_came = crm_record_as_it_came(m, rec, op, &t);

    ab_buf_reset(&c->scratch);
    ab_buf_reset(&c->errors);
    if (as_it_came && !(obj == CRM_CUSTOMERS && c->gens[rec->stream].tag[0])) {
        /* the batch takes data's text as it came, with no copy in between */
        out = rec->data_text;
        out_len = rec->data_len;
        verbatim = true;
        rc = AB_OK;
    } else if (as_it_came) {
        /* the record is data's text: its members say where tags are */
        rc = ab_buf_add(&c->scratch, rec->data_text, rec->data_len, err);
        if (rc == AB_OK) {
            /* the generation tag changes the record: not verbatim */
            rc = crm_tag_record_at(c, rec->stream, &c->scratch, t != NULL, t ? t->val_off : 0,
                                   t ? t->val_len : 0, err);
        }
    } else {
        yajl_val data = ab_record_tree(rec, err);

        if (!data) {
            return err->code;
        }
        rc = crm_build_record(m, data, rec->data_text, rec->data_len, rec->data_compact, c->brand,
                              op, &c->scratch, &verbatim, &c->errors, err);
        if (rc == AB_OK && obj == CRM_CUSTOMERS && op == CRM_UPSERT &&
            c->gens[rec->stream].tag[0]) {
            verbatim = false; /* the generation tag changes the record */
            rc = crm_tag_record(c, rec->stream, &c->scratch, err);
        }
    }
    if (!out) {
        out = c->scratch.data;
        out_len = c->scratch.len;
    }
    if (rc == AB_OK && out_len + 16 > c->max_bytes) {
        ab_buf_reset(&c->errors);
        rc = crm_add_problem(&c->errors, "", "too_long",
                             "the record is larger than max_batch_bytes", err);
        if (rc == AB_OK) {
            rc = ab_buf_addc(&c->errors, ']', err);
        }
        if (rc == AB_OK) {
            rc = AB_ERR_REJECTED;
        }
    }
    if (rc == AB_ERR_REJECTED) {
        yajl_val data = ab_record_tree(rec, err);

        ab_buf_reset(&c->scratch);
        rc = data ? ab_json_write(&c->scratch, data, err) : err->code;
        if (rc != AB_OK) {
            return rc;
        }
        c->local_rejects++;
        {
            struct ab_rejection rj = {.stream = rec->stream,
                                      .seq = rec->seq,
                                      .lineno = rec->lineno,
                                      .rejected_by = "destination",
                                      .received = c->scratch.data,
                                      .received_len = c->scratch.len,
                                      .errors_json = c->errors.data,
                                      .mapping = m};

            return ab_driver_reject_ex(c->d, &rj, err);
        }
    }
    if (rc != AB_OK) {
        return rc;
    }
    b = c->open[obj][op];
    if (b && b->body.len + 1 + out_len + 2 > c->max_bytes) {
        rc = crm_seal(c, obj, op, err);
        if (rc != AB_OK) {
            return rc;
        }
        crm_pump(c);
        b = NULL;
    }
    if (!b) {
        b = crm_batch_new(c, obj, op, out_len, err);
        if (!b) {
            return err->code;
        }
        c->open[obj][op] = b;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : c->batch_size > 0 ? c->batch_size : 64;
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
    r->len = out_len;
    r->seq = rec->seq;
    r->lineno = rec->lineno;
    r->stream = rec->stream;
    if (rc == AB_OK) {
        rc = ab_buf_add(&b->body, out, out_len, err);
    }
    if (verbatim) {
        r->roff = CRM_AS_SENT; /* what went out is the data as it came */
        r->rlen = 0;
    } else {
        r->roff = b->received.len;
        if (rc == AB_OK && rec->data_text && rec->data_compact) {
            /* compact text as read: the same JSON value the tree writes */
            rc = ab_buf_add(&b->received, rec->data_text, rec->data_len, err);
        } else if (rc == AB_OK) {
            yajl_val data = ab_record_tree(rec, err);

            rc = data ? ab_json_write(&b->received, data, err) : err->code;
        }
        r->rlen = b->received.len - r->roff;
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
        rc = crm_seal(c, obj, op, err);
        if (rc == AB_OK) {
            crm_pump(c);
        }
    }
    return rc;
}

static bool crm_busy(const void *self)
{
    const struct crm_dest *c = self;

    return c->queued + c->in_flight >= c->max_in_flight + CRM_QUEUED_MAX || crm_restale_backlog(c);
}

static enum ab_status crm_flush(void *self, bool final, struct ab_error *err)
{
    struct crm_dest *c = self;
    enum ab_status rc = crm_seal_all(c, err);

    if (rc == AB_OK) {
        crm_pump(c);
    }
    if (rc == AB_OK && final) {
        c->final = true;
        crm_refresh_maybe_start(c);
    }
    return rc;
}

static bool crm_idle(const void *self)
{
    const struct crm_dest *c = self;
    int o;
    int op;

    for (o = 0; o < CRM_NOBJECTS; o++) {
        for (op = 0; op < CRM_NOPS; op++) {
            if (c->open[o][op]) {
                return false;
            }
        }
    }
    return c->queued == 0 && c->in_flight == 0 && !crm_refresh_busy(c);
}

static enum ab_status crm_stream_status(void *self, size_t stream, enum ab_stream_status status,
                                        struct ab_error *err)
{
    (void)err;
    crm_refresh_status(self, stream, status);
    return AB_OK;
}

static void crm_summary(void *self, struct ab_emitter *em)
{
    struct crm_dest *c = self;
    int o;

    for (o = 0; o < CRM_NOBJECTS; o++) {
        const uint64_t *r = c->results[o];

        AB_INFO(em,
                "crm360 %s: created %llu, updated %llu, unchanged %llu, stale %llu, deleted "
                "%llu, not_found %llu, rejected by CRM360 %llu, already applied by an earlier "
                "run %llu",
                crm_object_name((enum crm_object)o), (unsigned long long)r[CRM_R_CREATED],
                (unsigned long long)r[CRM_R_UPDATED], (unsigned long long)r[CRM_R_UNCHANGED],
                (unsigned long long)r[CRM_R_STALE], (unsigned long long)r[CRM_R_DELETED],
                (unsigned long long)r[CRM_R_NOT_FOUND], (unsigned long long)r[CRM_R_REJECTED],
                (unsigned long long)c->already_applied[o]);
        if (c->lat[o].n) {
            char lat[160];

            ab_latency_text(&c->lat[o], lat, sizeof(lat));
            AB_INFO(em, "crm360 %s: %llu batches, %llu retried attempts, %s",
                    crm_object_name((enum crm_object)o), (unsigned long long)c->lat[o].n,
                    (unsigned long long)c->lat[o].retried, lat);
        }
    }
    AB_INFO(em,
            "crm360: %llu batches sent (%llu answered from the idempotency store; %llu refused "
            "as a whole and split), %llu records rejected before sending",
            (unsigned long long)c->batches_sent, (unsigned long long)c->batches_replayed,
            (unsigned long long)c->batches_split, (unsigned long long)c->local_rejects);
    if (c->batches_earlier) {
        AB_INFO(em,
                "crm360: %llu batches were applied by an earlier run with the same sync_id; to "
                "apply their records again, run with a new sync_id (the catalog's sync_id, or "
                "--sync-id N with an inferred catalog or load)",
                (unsigned long long)c->batches_earlier);
    }
    crm_refresh_summary(c, em);
    if (ab_driver_dry_run(c->d)) {
        AB_INFO(em, "dry run: CRM360's record rules were checked locally; only CRM360 can tell "
                    "unknown_customer (an order whose customer it does not hold) and each "
                    "record's outcome (created, updated, unchanged, stale, not_found)");
    }
}

static size_t crm_latencies(void *self, const char **names, struct ab_latency **lats, size_t max)
{
    struct crm_dest *c = self;
    size_t n = 0;

    for (int o = 0; o < CRM_NOBJECTS && n < max; o++) {
        if (c->lat[o].n) {
            names[n] = crm_object_name((enum crm_object)o);
            lats[n++] = &c->lat[o];
        }
    }
    return n;
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
    crm_refresh_free(c);
    while ((b = c->live) != NULL) {
        crm_batch_free(b);
    }
    for (o = 0; o < CRM_NOBJECTS; o++) {
        for (op = 0; op < CRM_NOPS; op++) {
            crm_batch_free(c->open[o][op]);
        }
    }
    crm_pool_free(c);
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
    ab_buf_release(&c->tagged);
    ab_json_arena_free(c->tag_arena);
    ab_json_arena_free(c->answers);
    free(c);
}

char *crm_dup_url(const char *url)
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

enum ab_status crm_make_client(struct ab_driver *d, bool for_check, struct ab_http **out,
                               struct ab_error *err)
{
    yajl_val cfg = ab_driver_config(d);
    struct ab_http_opts o;
    enum ab_status rc;

    ab_driver_http_opts(d, &o);
    if (for_check && o.max_retries > CHECK_MAX_RETRIES) {
        o.max_retries = CHECK_MAX_RETRIES;
    }
    o.user_agent = "destination-crm360/" AB_VERSION;
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
        m = ab_mappings_resolve(&c->maps, s->name, s->ns, crm_object_names, &none);
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
    return crm_refresh_init(c, err);
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
    /* defaults come from spec.json and the common groups, filled in by validation */
    c->brand = ab_opt_str(cfg, "brand");
    c->batch_size = (size_t)ab_opt_int(cfg, "batch_size");
    c->max_bytes = (size_t)ab_opt_int(cfg, "max_batch_bytes");
    c->max_in_flight = (size_t)ab_opt_int(cfg, "max_in_flight");
    c->gzip = ab_opt_bool(cfg, "gzip");
    ab_buf_init(&c->scratch, AB_BUF_UNBOUNDED);
    ab_buf_init(&c->errors, AB_BUF_UNBOUNDED);
    ab_buf_init(&c->tagged, AB_BUF_UNBOUNDED);
    c->answers = ab_json_arena_new(err);
    if (!c->answers) {
        return err->code;
    }
    rc = ab_driver_check_url(ab_json_get_str(cfg, "api_url", NULL), "api_url", err);
    if (rc != AB_OK) {
        return rc;
    }
    c->api_url = crm_dup_url(ab_json_get_str(cfg, "api_url", ""));
    if (!c->api_url) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    rc = ab_mappings_parse(&c->maps, ab_json_get(cfg, "stream_mappings"), crm_object_names, err);
    if (rc == AB_OK) {
        rc = resolve_streams(c, err);
    }
    if (rc == AB_OK) {
        rc = crm_make_client(d, false, &c->http, err);
    }
    if (rc == AB_OK) {
        ab_driver_set_http(d, c->http);
        AB_INFO(c->em, "loading into '%s' in batches of up to %zu records, %zu in flight",
                c->api_url, c->batch_size, c->max_in_flight);
    }
    return rc;
}

const struct ab_destination_ops crm_destination_ops = {
    .name = "destination-crm360",
    .version = AB_VERSION,
    .spec_json = crm_spec_json,
    .destination_catalog_json = crm_destination_catalog_json,
    .lazy_data = true,
    .replay_note = "CRM360 answers batches it applied from its idempotency store",
    .check = crm_check,
    .open = crm_open,
    .record = crm_record,
    .state = NULL,
    .stream_status = crm_stream_status,
    .busy = crm_busy,
    .flush = crm_flush,
    .idle = crm_idle,
    .summary = crm_summary,
    .latencies = crm_latencies,
    .finish = NULL,
    .close = crm_close,
};
