/* tiny.c - source-tiny: the read, one request at a time, pages and details. */
/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/assert.h"
#include "ab/clock.h"
#include "ab/json.h"
#include "ab/log.h"
#include "ab/options.h"

#include "tiny_int.h"

#define BODY_MAX ((size_t)16 << 20)

static const char *phase_name(enum tn_phase p)
{
    static const char *const n[] = {"start", "list", "detail", "stock", "done"};

    return n[p];
}

void tn_set_phase(struct tiny *t, enum tn_phase to)
{
    /* start -> list; list -> detail|stock|list|done; detail -> detail|stock|list|done;
     * stock -> stock|list|done; done -> start (next stream) */
    AB_ASSERT(
        (t->phase == TN_PH_START && to == TN_PH_LIST) ||
        (t->phase == TN_PH_LIST && to != TN_PH_START) ||
        (t->phase == TN_PH_DETAIL && to != TN_PH_START) ||
        (t->phase == TN_PH_STOCK && (to == TN_PH_STOCK || to == TN_PH_LIST || to == TN_PH_DONE)) ||
        (t->phase == TN_PH_DONE && to == TN_PH_START));
    if (t->phase != to) {
        AB_DEBUG(ab_driver_emitter(t->d), "tiny: %s: %s -> %s", tn_stream_name(t->kind),
                 phase_name(t->phase), phase_name(to));
    }
    t->phase = to;
}

static enum ab_status on_rotate(void *arg, const char *refresh_token, struct ab_error *err)
{
    struct tiny *t = arg;
    enum ab_status rc = ab_source_config_update(t->d, "refresh_token", refresh_token, err);

    t->rotations += rc == AB_OK;
    return rc;
}

enum ab_status tn_config(struct tiny *t, struct ab_driver *d, struct ab_error *err)
{
    const char *start;
    enum ab_status rc;

    t->d = d;
    t->config = ab_driver_config(d);
    t->api_url = ab_opt_str(t->config, "api_url");
    t->page_size = ab_opt_int(t->config, "page_size");
    t->lookback_s = ab_opt_int(t->config, "lookback_seconds");
    t->utc_offset = (int)ab_opt_int(t->config, "utc_offset_minutes");
    t->start_date = -1;
    ab_buf_init(&t->url, 64 * 1024);
    ab_buf_init(&t->rec, BODY_MAX);
    ab_buf_init(&t->out, BODY_MAX);
    rc = ab_driver_check_url(t->api_url, "api_url", err);
    if (rc == AB_OK) {
        rc = ab_driver_check_url(ab_opt_str(t->config, "token_url"), "token_url", err);
    }
    if (rc != AB_OK) {
        return rc;
    }
    start = ab_opt_str(t->config, "start_date");
    if (start && ab_time_parse(start, t->utc_offset, &t->start_date, err) != AB_OK) {
        return ab_error_set(err, AB_ERR_CONFIG, "start_date: not a valid date (YYYY-MM-DD)");
    }
    return AB_OK;
}

enum ab_status tn_auth_new(struct tiny *t, bool fail_driver, struct ab_error *err)
{
    struct ab_oauth2_opts o;
    struct ab_http_opts ho;

    memset(&o, 0, sizeof(o));
    o.d = t->d;
    o.token_url = ab_opt_str(t->config, "token_url");
    o.client_id = ab_opt_str(t->config, "client_id");
    o.client_secret = ab_opt_str(t->config, "client_secret");
    o.grant = AB_OAUTH2_REFRESH;
    o.client_auth = AB_OAUTH2_CLIENT_BODY; /* Keycloak: credentials in the form */
    o.refresh_token = ab_opt_str(t->config, "refresh_token");
    o.on_rotate = on_rotate;
    o.rotate_arg = t;
    o.fail_driver = fail_driver;
    ab_driver_http_opts(t->d, &ho);
    t->auth = ab_oauth2_new(&o, &ho, err);
    if (!t->auth) {
        return err->code;
    }
    t->h = ab_http_new(&ho, err);
    if (!t->h) {
        return err->code;
    }
    ab_http_set_auth(t->h, ab_oauth2_provide, t->auth);
    return AB_OK;
}

void tn_release(struct tiny *t)
{
    ab_fetch_release(&t->f);
    ab_http_free(t->h);
    ab_oauth2_free(t->auth);
    ab_buf_release(&t->url);
    ab_buf_release(&t->rec);
    ab_buf_release(&t->out);
    free(t->stock);
}

struct ab_http_req *tn_request(struct tiny *t, const char *url, const char *label,
                               struct ab_error *err)
{
    struct ab_http_req *r = ab_http_req_new("GET", url, err);

    if (!r) {
        return NULL;
    }
    if (ab_http_req_header(r, "Accept: application/json", err) != AB_OK ||
        ab_http_req_delay_header(r, TN_RESET_HEADER, 429, err) != AB_OK) {
        ab_http_req_free(r);
        return NULL;
    }
    ab_http_req_classify(r, ab_oauth2_classify, t->auth);
    ab_http_req_label(r, label);
    return r;
}

static void tn_close(void *self)
{
    struct tiny *t = self;

    if (t) {
        tn_release(t);
        free(t);
    }
}

static enum ab_status tn_discover(struct ab_driver *d, struct ab_error *err)
{
    return ab_source_catalog_text(d, tn_catalog_json(), err);
}

static enum ab_status tn_open(struct ab_driver *d, void **self, struct ab_error *err)
{
    const struct ab_catalog *cat = ab_driver_catalog(d);
    struct tiny *t;
    enum ab_status rc;

    for (size_t i = 0; i < cat->n; i++) {
        enum tn_kind k;

        if (!tn_kind_of(cat->streams[i].name, &k)) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "catalog: stream '%s' is not one of contatos, pedidos, produtos, "
                                "variacoes, estoque",
                                cat->streams[i].name);
        }
        if (k == TN_ESTOQUE && cat->streams[i].sync_mode == AB_SYNC_INCREMENTAL) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "catalog: stream 'estoque' supports full_refresh only (Tiny has "
                                "no change filter for stock)");
        }
    }
    t = calloc(1, sizeof(*t));
    if (!t) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    t->stock = calloc(TN_MAX_STOCK, sizeof(*t->stock));
    rc = t->stock ? tn_config(t, d, err) : ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    if (rc == AB_OK) {
        rc = tn_auth_new(t, true, err);
    }
    if (rc != AB_OK) {
        tn_close(t);
        return rc;
    }
    ab_fetch_init(&t->f, d, t->h, BODY_MAX);
    ab_driver_set_http(d, t->h);
    t->run_start = ab_wall_ms() / 1000;
    /* every state parses before anything is read */
    for (size_t i = 0; i < cat->n; i++) {
        struct ab_resume_state st;

        if (tn_state_parse(ab_source_state_of(d, i), &st, err) != AB_OK) {
            (void)ab_error_prefix(err, "state of stream '%s'", cat->streams[i].name);
            tn_close(t);
            return err->code;
        }
    }
    *self = t;
    return AB_OK;
}

/* ---- requests ------------------------------------------------------------------- */

static enum ab_status submit(struct tiny *t, const char *label, struct ab_error *err)
{
    struct ab_http_req *r = tn_request(t, t->url.data, label, err);

    if (!r) {
        return err->code;
    }
    t->requests++;
    return ab_fetch_submit(&t->f, r, err);
}

static enum ab_status submit_list(struct tiny *t, struct ab_error *err)
{
    char label[96];
    enum ab_status rc;

    ab_buf_reset(&t->out);
    rc = ab_buf_printf(&t->out, err, "limit=%" PRId64 "&offset=%" PRId64, t->pager.limit,
                       t->pager.offset);
    if (rc == AB_OK && t->incremental && t->st.from >= 0) {
        struct ab_buf v;

        ab_buf_init(&v, 64);
        rc = ab_time_format(t->st.from, t->utc_offset, "%Y-%m-%d %H:%M:%S", &v, err);
        if (rc == AB_OK) {
            rc = ab_form_add(&t->out, tn_filter_name(t->kind), v.data, err);
        }
        ab_buf_release(&v);
    }
    ab_buf_reset(&t->url);
    if (rc == AB_OK) {
        rc = ab_buf_printf(&t->url, err, "%s%s?%s", t->api_url, tn_list_path(t->kind), t->out.data);
    }
    if (rc != AB_OK) {
        return rc;
    }
    (void)snprintf(label, sizeof(label), "GET %s offset %" PRId64, tn_list_path(t->kind),
                   t->pager.offset);
    return submit(t, label, err);
}

static enum ab_status submit_one(struct tiny *t, const char *path, int64_t id, struct ab_error *err)
{
    char label[96];
    enum ab_status rc;

    ab_buf_reset(&t->url);
    rc = ab_buf_printf(&t->url, err, "%s%s/%" PRId64, t->api_url, path, id);
    if (rc != AB_OK) {
        return rc;
    }
    (void)snprintf(label, sizeof(label), "GET %s/%" PRId64, path, id);
    return submit(t, label, err);
}

/* ---- answers -------------------------------------------------------------------- */

/* The record: Tiny's object v; a stock balance, which carries no time of
 * its own, gets "_ab_read_at", the run's start (UTC). */
static enum ab_status emit_record(struct tiny *t, yajl_val v, struct ab_error *err)
{
    enum ab_status rc;

    AB_ASSERT(v && YAJL_IS_OBJECT(v));
    ab_buf_reset(&t->rec);
    rc = ab_json_write(&t->rec, v, err);
    if (rc == AB_OK && t->kind == TN_ESTOQUE) {
        ab_buf_truncate(&t->rec, t->rec.len - 1); /* the closing brace */
        rc = ab_buf_adds(&t->rec, v->u.object.len ? ",\"_ab_read_at\":\"" : "\"_ab_read_at\":\"",
                         err);
        if (rc == AB_OK) {
            rc = ab_time_format(t->run_start, 0, "%Y-%m-%dT%H:%M:%SZ\"}", &t->rec, err);
        }
    }
    if (rc == AB_OK) {
        rc = ab_source_record(t->d, t->walk.cur, t->rec.data, t->rec.len, err);
    }
    t->records += rc == AB_OK;
    return rc;
}

/* The answer as a JSON object, or the failure it means. *body belongs to
 * the caller. */
static enum ab_status answer(struct tiny *t, const char *what, yajl_val *body, struct ab_error *err)
{
    if (ab_fetch_json(&t->f, what, tn_error_detail, body, err) != AB_OK) {
        return err->code;
    }
    if (!YAJL_IS_OBJECT(*body)) {
        ab_json_free(*body);
        *body = NULL;
        return ab_error_set(err, AB_ERR_PROTOCOL, "%s: the answer is not a JSON object", what);
    }
    return AB_OK;
}

static enum ab_status emit_state(struct tiny *t, struct ab_error *err)
{
    ab_buf_reset(&t->out);
    if (tn_state_write(&t->st, &t->out, err) != AB_OK) {
        return err->code;
    }
    return ab_source_stream_state(t->d, t->walk.cur, t->out.data, t->out.len, err);
}

static enum ab_status page_done(struct tiny *t, struct ab_error *err)
{
    if (!ab_pager_next(&t->pager, (int64_t)t->items, t->total, -1)) {
        t->st.resume = false;
        if (t->incremental) {
            AB_ASSERT(t->st.end >= 0);
            t->st.cursor = t->st.end;
        }
        if (emit_state(t, err) != AB_OK) {
            return err->code;
        }
        tn_set_phase(t, TN_PH_DONE);
        return AB_OK;
    }
    t->st.resume = true;
    t->st.at = t->pager.offset;
    if (emit_state(t, err) != AB_OK) {
        return err->code;
    }
    tn_set_phase(t, TN_PH_LIST);
    return AB_OK;
}

/* After the details of a page: its stock, or the next page. */
static enum ab_status details_done(struct tiny *t, struct ab_error *err)
{
    if (t->kind == TN_ESTOQUE && t->nstock > 0) {
        t->sidx = 0;
        tn_set_phase(t, TN_PH_STOCK);
        return AB_OK;
    }
    return page_done(t, err);
}

static enum ab_status on_list(struct tiny *t, struct ab_error *err)
{
    char what[128];
    yajl_val body, list;
    bool first = t->pager.pages == 0;
    size_t parents = 0;
    enum ab_status rc;

    (void)snprintf(what, sizeof(what), "stream '%s': GET %s offset %" PRId64,
                   tn_stream_name(t->kind), tn_list_path(t->kind), t->pager.offset);
    rc = answer(t, what, &body, err);
    if (rc != AB_OK) {
        return rc;
    }
    rc = tn_list_parse(body, t->kind == TN_CONTATOS ? NULL : t->ids, t->parent,
                       (size_t)t->page_size, &t->nids, &t->items, &t->total, err);
    if (rc != AB_OK) {
        ab_json_free(body);
        return ab_error_prefix(err, "%s", what);
    }
    if (first && t->total >= 0 && t->kind != TN_VARIACOES && t->kind != TN_ESTOQUE) {
        /* the list counts records of this stream (not products' variations or stock) */
        rc = ab_source_estimate(t->d, t->walk.cur, t->total - t->pager.offset, -1, err);
    }
    if (rc == AB_OK && t->kind == TN_CONTATOS) {
        /* the list carries the whole contact */
        list = ab_json_get(body, "itens");
        for (size_t i = 0; i < list->u.array.len && rc == AB_OK; i++) {
            rc = emit_record(t, list->u.array.values[i], err);
        }
    }
    ab_json_free(body);
    if (rc != AB_OK) {
        return rc;
    }
    t->idx = 0;
    if (t->kind == TN_ESTOQUE || t->kind == TN_VARIACOES) {
        /* simple products have stock; a parent's variations come from its detail */
        t->nstock = 0;
        for (size_t i = 0; i < t->nids; i++) {
            if (t->parent[i]) {
                t->ids[parents++] = t->ids[i];
            } else if (t->kind == TN_ESTOQUE) {
                t->stock[t->nstock++] = t->ids[i];
            }
        }
        t->nids = parents;
    }
    if (t->nids > 0) {
        tn_set_phase(t, TN_PH_DETAIL);
        return AB_OK;
    }
    return details_done(t, err);
}

/* The variations of product detail p, each a record. */
static enum ab_status emit_variations(struct tiny *t, yajl_val p, const char *what,
                                      struct ab_error *err)
{
    yajl_val vs = ab_json_get(p, "variacoes");
    enum ab_status rc = AB_OK;

    if (!vs || ab_json_is_null(vs)) {
        return AB_OK;
    }
    if (!YAJL_IS_ARRAY(vs)) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "%s: \"variacoes\" is not an array", what);
    }
    for (size_t i = 0; i < vs->u.array.len && rc == AB_OK; i++) {
        ab_buf_reset(&t->rec);
        rc = tn_variation_record(p, vs->u.array.values[i], &t->rec, err);
        if (rc != AB_OK) {
            return ab_error_prefix(err, "%s: variation %zu", what, i);
        }
        rc = ab_source_record(t->d, t->walk.cur, t->rec.data, t->rec.len, err);
        t->records += rc == AB_OK;
    }
    return rc;
}

static enum ab_status on_detail(struct tiny *t, struct ab_error *err)
{
    const char *path = t->kind == TN_PEDIDOS ? "/pedidos" : "/produtos";
    char what[128];
    yajl_val body = NULL;
    enum ab_status rc = AB_OK;

    (void)snprintf(what, sizeof(what), "stream '%s': GET %s/%" PRId64, tn_stream_name(t->kind),
                   path, t->ids[t->idx]);
    if (t->f.status == 404) {
        /* deleted between the list and the detail: said, not silently lost */
        AB_WARN(ab_driver_emitter(t->d), "%s: gone (HTTP 404) since the list was read; skipped",
                what);
        t->missing++;
    } else {
        rc = answer(t, what, &body, err);
        if (rc != AB_OK) {
            return rc;
        }
        if (t->kind == TN_ESTOQUE) {
            rc = tn_variation_ids(body, t->stock, TN_MAX_STOCK, &t->nstock, err);
            if (rc != AB_OK) {
                (void)ab_error_prefix(err, "%s", what);
            }
        } else if (t->kind == TN_VARIACOES) {
            rc = emit_variations(t, body, what, err);
        } else {
            rc = emit_record(t, body, err);
        }
        ab_json_free(body);
        if (rc != AB_OK) {
            return rc;
        }
    }
    if (++t->idx < t->nids) {
        tn_set_phase(t, TN_PH_DETAIL);
        return AB_OK;
    }
    return details_done(t, err);
}

static enum ab_status on_stock(struct tiny *t, struct ab_error *err)
{
    char what[128];
    yajl_val body = NULL;
    enum ab_status rc;

    (void)snprintf(what, sizeof(what), "stream 'estoque': GET /estoque/%" PRId64,
                   t->stock[t->sidx]);
    if (t->f.status == 404) {
        /* a product without stock of its own (a kit, a service, a parent) */
        AB_DEBUG(ab_driver_emitter(t->d), "%s: no stock (HTTP 404)", what);
        t->no_stock++;
    } else {
        rc = answer(t, what, &body, err);
        if (rc == AB_OK) {
            rc = emit_record(t, body, err);
        }
        if (body) {
            ab_json_free(body);
        }
        if (rc != AB_OK) {
            return rc;
        }
    }
    if (++t->sidx < t->nstock) {
        tn_set_phase(t, TN_PH_STOCK);
        return AB_OK;
    }
    return page_done(t, err);
}

/* ---- the stream plan ------------------------------------------------------------- */

static enum ab_status begin_stream(void *self, size_t stream, struct ab_error *err)
{
    struct tiny *t = self;
    const struct ab_stream *s = &ab_driver_catalog(t->d)->streams[stream];
    enum ab_status rc;
    int64_t offset = 0;

    if (!tn_kind_of(s->name, &t->kind)) {
        return ab_error_set(err, AB_ERR_INTERNAL, "unknown stream '%s'", s->name);
    }
    t->incremental = s->sync_mode == AB_SYNC_INCREMENTAL;
    rc = tn_state_parse(ab_source_state_of(t->d, stream), &t->st, err);
    if (rc != AB_OK) {
        return rc;
    }
    if (!t->incremental) {
        /* a full pass; a resume point of a full pass (no end) is honoured */
        offset = t->st.resume && t->st.end < 0 ? t->st.at : 0;
        t->st.cursor = t->st.from = t->st.end = -1;
        t->st.resume = false;
    } else if (t->st.resume && t->st.end >= 0) {
        /* mid-pass: the same filter from the same offset; records that
         * entered the filter since shift the rest forward (read twice, never
         * skipped) */
        offset = t->st.at;
    } else {
        t->st.from = t->st.cursor >= 0 ? t->st.cursor - t->lookback_s : t->start_date;
        t->st.end = t->run_start;
        t->st.resume = false;
    }
    t->st.at = offset;
    t->total = -1;
    ab_pager_init(&t->pager, AB_PAGE_OFFSET, 0, t->page_size);
    t->pager.offset = offset;
    AB_INFO(ab_driver_emitter(t->d), "tiny: stream '%s' (%s)%s from offset %" PRId64,
            tn_stream_name(t->kind), t->incremental ? "incremental" : "full refresh",
            t->incremental && t->st.from >= 0 ? ", changes since the cursor" : "", offset);
    tn_set_phase(t, TN_PH_LIST);
    return AB_OK;
}

/* The fetch's answer, by what was asked. */
static enum ab_status on_answer(void *self, struct ab_error *err)
{
    struct tiny *t = self;

    switch (t->phase) {
    case TN_PH_LIST:
        return on_list(t, err);
    case TN_PH_DETAIL:
        return on_detail(t, err);
    case TN_PH_STOCK:
        return on_stock(t, err);
    default:
        AB_ASSERT(t->phase == TN_PH_LIST); /* an answer in a phase without a request */
        return AB_OK;
    }
}

/* The request of the current phase, or the stream's end. */
static enum ab_status submit_next(void *self, bool *done, struct ab_error *err)
{
    struct tiny *t = self;

    switch (t->phase) {
    case TN_PH_LIST:
        return submit_list(t, err);
    case TN_PH_DETAIL:
        return submit_one(t, t->kind == TN_PEDIDOS ? "/pedidos" : "/produtos", t->ids[t->idx], err);
    case TN_PH_STOCK:
        return submit_one(t, "/estoque", t->stock[t->sidx], err);
    case TN_PH_DONE:
        tn_set_phase(t, TN_PH_START);
        *done = true;
        return AB_OK;
    case TN_PH_START:
        break;
    }
    return ab_error_set(err, AB_ERR_INTERNAL, "stream '%s': a request before its plan",
                        tn_stream_name(t->kind));
}

static const struct ab_fetch_walk_ops walk_ops = {begin_stream, on_answer, submit_next};

static enum ab_status tn_step(void *self, enum ab_source_next *next, struct ab_error *err)
{
    struct tiny *t = self;

    if (!t->walk.ops) { /* the first step */
        ab_fetch_walk_init(&t->walk, &walk_ops, t, &t->f);
    }
    return ab_fetch_walk_step(&t->walk, next, err);
}

static void tn_summary(void *self, struct ab_emitter *em)
{
    const struct tiny *t = self;
    struct ab_http_stats hs;

    ab_http_get_stats(t->h, &hs);
    AB_INFO(em,
            "tiny: %" PRIu64 " records, %" PRIu64 " requests (%" PRIu64 " retries, %" PRIu64
            " throttled), %" PRIu64 " token fetches, %" PRIu64 " refresh-token rotations, %" PRIu64
            " records gone between list and detail, %" PRIu64 " products without stock",
            t->records, t->requests, hs.retries, hs.throttled, ab_oauth2_fetches(t->auth),
            t->rotations, t->missing, t->no_stock);
}

const struct ab_source_ops tn_source_ops = {
    .name = "source-tiny",
    .version = AB_VERSION,
    .spec_json = tn_spec_json,
    .check = tn_check,
    .discover = tn_discover,
    .open = tn_open,
    .step = tn_step,
    .summary = tn_summary,
    .close = tn_close,
};
