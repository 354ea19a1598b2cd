/* totvs.c - source-totvs-moda: the read, one search page at a time, by change time. */
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
#include "ab/pager.h"

#include "totvs_int.h"

#define BODY_MAX ((size_t)64 << 20)

static const char *phase_name(enum tm_phase p)
{
    static const char *const n[] = {"start", "search", "done"};

    return n[p];
}

void tm_set_phase(struct totvs *t, enum tm_phase to)
{
    /* start -> search; search -> search|done; done -> start (next stream) */
    AB_ASSERT((t->phase == TM_PH_START && to == TM_PH_SEARCH) ||
              (t->phase == TM_PH_SEARCH && to != TM_PH_START) ||
              (t->phase == TM_PH_DONE && to == TM_PH_START));
    if (t->phase != to) {
        AB_DEBUG(ab_driver_emitter(t->d), "totvs: %s: %s -> %s", tm_stream_name(t->kind),
                 phase_name(t->phase), phase_name(to));
    }
    t->phase = to;
}

/* The config's integer list at key as JSON text, appended to t->lists;
 * *at is its offset there. */
static enum ab_status list_text(struct totvs *t, const char *key, size_t *at, int64_t *first,
                                struct ab_error *err)
{
    yajl_val v = ab_json_get(t->config, key);
    enum ab_status rc;

    if (!v || !YAJL_IS_ARRAY(v) || v->u.array.len == 0) {
        return ab_error_set(err, AB_ERR_CONFIG, "%s: a list of at least one code is required", key);
    }
    for (size_t i = 0; i < v->u.array.len; i++) {
        int64_t n;

        if (!ab_json_int(v->u.array.values[i], &n) || n < 1) {
            return ab_error_set(err, AB_ERR_CONFIG, "%s[%zu]: must be a whole number >= 1", key, i);
        }
        if (i == 0 && first) {
            *first = n;
        }
    }
    *at = t->lists.len;
    rc = ab_json_write(&t->lists, v, err);
    if (rc == AB_OK) {
        rc = ab_buf_addc(&t->lists, '\0', err);
    }
    return rc;
}

/* The "authentication" option: direct (nothing to add) or through the API
 * Hub (the header line with the key; the key is a spec secret, so the
 * driver masks it everywhere). */
static enum ab_status access_config(struct totvs *t, struct ab_error *err)
{
    yajl_val a = ab_json_get(t->config, "authentication");
    const char *mode = ab_opt_str(a, "mode");

    AB_ASSERT(mode); /* the spec's default and oneOf give it */
    if (strcmp(mode, "direct") == 0) {
        return AB_OK;
    }
    AB_ASSERT(strcmp(mode, "api_hub") == 0);
    return ab_buf_printf(&t->key_line, err, "%s: %s", ab_opt_str(a, "api_key_header"),
                         ab_opt_str(a, "api_key"));
}

enum ab_status tm_config(struct totvs *t, struct ab_driver *d, struct ab_error *err)
{
    size_t b = 0, s = 0, p = 0;
    enum ab_status rc;

    t->d = d;
    t->config = ab_driver_config(d);
    t->api_url = ab_opt_str(t->config, "api_url");
    t->page_size = ab_opt_int(t->config, "page_size");
    t->lookback_s = ab_opt_int(t->config, "lookback_seconds");
    t->opts.utc_offset = (int)ab_opt_int(t->config, "utc_offset_minutes");
    t->collection_type =
        ab_json_get(t->config, "collection_type") ? ab_opt_int(t->config, "collection_type") : -1;
    ab_buf_init(&t->url, 64 * 1024);
    ab_buf_init(&t->body, 64 * 1024);
    ab_buf_init(&t->rec, BODY_MAX);
    ab_buf_init(&t->out, 64 * 1024);
    ab_buf_init(&t->lists, 64 * 1024);
    ab_buf_init(&t->key_line, 4096);
    rc = ab_driver_check_url(t->api_url, "api_url", err);
    if (rc == AB_OK) {
        rc = access_config(t, err);
    }
    if (rc == AB_OK) {
        rc = list_text(t, "branch_codes", &b, &t->opts.first_branch, err);
    }
    if (rc == AB_OK) {
        rc = list_text(t, "stock_codes", &s, NULL, err);
    }
    if (rc == AB_OK) {
        rc = list_text(t, "price_codes", &p, NULL, err);
    }
    if (rc != AB_OK) {
        return rc;
    }
    /* the buffer is complete: point into it */
    t->opts.branches = t->lists.data + b;
    t->opts.stocks = t->lists.data + s;
    t->opts.prices = t->lists.data + p;
    if (ab_time_parse(ab_opt_str(t->config, "start_date"), t->opts.utc_offset, &t->start_date,
                      err) != AB_OK) {
        return ab_error_set(err, AB_ERR_CONFIG, "start_date: not a valid date (YYYY-MM-DD)");
    }
    return AB_OK;
}

enum ab_status tm_auth_new(struct totvs *t, bool fail_driver, struct ab_error *err)
{
    struct ab_oauth2_opts o;
    struct ab_http_opts ho;
    struct ab_buf url;
    enum ab_status rc;

    ab_buf_init(&url, 64 * 1024);
    rc = ab_buf_printf(&url, err, "%s" TM_API "/authorization/v2/token", t->api_url);
    if (rc != AB_OK) {
        ab_buf_release(&url);
        return rc;
    }
    memset(&o, 0, sizeof(o));
    o.d = t->d;
    o.token_url = url.data;
    o.client_id = ab_opt_str(t->config, "client_id");
    o.client_secret = ab_opt_str(t->config, "client_secret");
    o.grant = AB_OAUTH2_PASSWORD;
    o.client_auth = AB_OAUTH2_CLIENT_BODY;
    o.username = ab_opt_str(t->config, "username");
    o.password = ab_opt_str(t->config, "password");
    o.scope = "openid";
    if (t->key_line.len) {
        o.extra_header = t->key_line.data;
        o.refusal_hint = "through the API Hub also a missing or wrong authentication.api_key";
    }
    o.fail_driver = fail_driver;
    ab_driver_http_opts(t->d, &ho);
    t->auth = ab_oauth2_new(&o, &ho, err);
    ab_buf_release(&url);
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

void tm_release(struct totvs *t)
{
    ab_fetch_release(&t->f);
    ab_http_free(t->h);
    ab_oauth2_free(t->auth);
    ab_buf_release(&t->url);
    ab_buf_release(&t->body);
    ab_buf_release(&t->rec);
    ab_buf_release(&t->out);
    ab_buf_release(&t->lists);
    if (t->key_line.data) {
        memset(t->key_line.data, 0, t->key_line.len);
    }
    ab_buf_release(&t->key_line);
}

struct ab_http_req *tm_request(struct totvs *t, enum tm_kind k, struct ab_buf *body,
                               const char *label, struct ab_error *err)
{
    struct ab_http_req *r;

    ab_buf_reset(&t->url);
    if (ab_buf_printf(&t->url, err, "%s" TM_API "%s", t->api_url, tm_stream_path(k)) != AB_OK) {
        return NULL;
    }
    r = ab_http_req_new("POST", t->url.data, err);
    if (!r) {
        return NULL;
    }
    if (ab_http_req_header(r, "Accept: application/json", err) != AB_OK ||
        (t->key_line.len && ab_http_req_header(r, t->key_line.data, err) != AB_OK) ||
        ab_http_req_body(r, body, "application/json", err) != AB_OK) {
        ab_http_req_free(r);
        return NULL;
    }
    ab_http_req_classify(r, ab_oauth2_classify, t->auth);
    ab_http_req_label(r, label);
    return r;
}

static void tm_close(void *self)
{
    struct totvs *t = self;

    if (t) {
        tm_release(t);
        free(t);
    }
}

static enum ab_status tm_discover(struct ab_driver *d, struct ab_error *err)
{
    return ab_source_catalog_text(d, tm_catalog_json(), err);
}

static enum ab_status tm_open(struct ab_driver *d, void **self, struct ab_error *err)
{
    const struct ab_catalog *cat = ab_driver_catalog(d);
    struct totvs *t;
    enum ab_status rc;

    for (size_t i = 0; i < cat->n; i++) {
        enum tm_kind k;

        if (!tm_kind_of(cat->streams[i].name, &k)) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "catalog: stream '%s' is not one of individuals, legal_entities, "
                                "sales_orders, references, products, balances",
                                cat->streams[i].name);
        }
    }
    t = calloc(1, sizeof(*t));
    if (!t) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    rc = tm_config(t, d, err);
    if (rc == AB_OK) {
        rc = tm_auth_new(t, true, err);
    }
    if (rc != AB_OK) {
        tm_close(t);
        return rc;
    }
    ab_fetch_init(&t->f, d, t->h, BODY_MAX);
    ab_driver_set_http(d, t->h);
    t->run_start = ab_wall_ms() / 1000;
    for (size_t i = 0; i < cat->n; i++) {
        struct tm_state st;

        if (tm_state_parse(ab_source_state_of(d, i), &st, err) != AB_OK) {
            (void)ab_error_prefix(err, "state of stream '%s'", cat->streams[i].name);
            tm_close(t);
            return err->code;
        }
    }
    *self = t;
    return AB_OK;
}

/* ---- one page -------------------------------------------------------------------- */

static enum ab_status submit(struct totvs *t, struct ab_error *err)
{
    struct ab_http_req *r;
    char label[128];
    enum ab_status rc;

    ab_buf_reset(&t->body);
    rc = tm_search_body(t->kind, &t->opts, t->start, t->run_start, t->page, t->page_size, &t->body,
                        err);
    if (rc != AB_OK) {
        return rc;
    }
    (void)snprintf(label, sizeof(label), "POST %s page %" PRId64, tm_stream_path(t->kind), t->page);
    r = tm_request(t, t->kind, &t->body, label, err);
    if (!r) {
        return err->code;
    }
    t->requests++;
    return ab_fetch_submit(&t->f, r, err);
}

static enum ab_status emit_state(struct totvs *t, bool pass_done, struct ab_error *err)
{
    struct tm_state st;

    st.resume = !t->incremental && !pass_done;
    st.cursor =
        t->incremental ? (pass_done ? t->run_start : t->start) : (st.resume ? t->start : -1);
    st.page = pass_done ? 1 : t->page;
    ab_buf_reset(&t->out);
    if (tm_state_write(&st, &t->out, err) != AB_OK) {
        return err->code;
    }
    return ab_source_stream_state(t->d, t->walk.cur, t->out.data, t->out.len, err);
}

/* The collection classification of rec, or NULL. */
static yajl_val collection_of(const struct totvs *t, yajl_val rec)
{
    yajl_val cl = ab_json_get(rec, "classifications");

    if (t->collection_type < 0 || !cl || !YAJL_IS_ARRAY(cl)) {
        return NULL;
    }
    for (size_t i = 0; i < cl->u.array.len; i++) {
        int64_t type;

        if (ab_json_int(ab_json_get(cl->u.array.values[i], "type"), &type) &&
            type == t->collection_type) {
            return cl->u.array.values[i];
        }
    }
    return NULL;
}

/* The record: TOTVS's object, plus "_ab_collection" on references and
 * products when the config names the collection's classification type. */
static enum ab_status emit_record(struct totvs *t, yajl_val v, struct ab_error *err)
{
    yajl_val coll = NULL;
    enum ab_status rc;

    ab_buf_reset(&t->rec);
    rc = ab_json_write(&t->rec, v, err);
    if (rc == AB_OK && (t->kind == TM_REFERENCES || t->kind == TM_PRODUCTS)) {
        coll = collection_of(t, v);
    }
    if (rc == AB_OK && coll) {
        ab_buf_truncate(&t->rec, t->rec.len - 1); /* the closing brace */
        rc = ab_buf_adds(&t->rec,
                         v->u.object.len ? ",\"_ab_collection\":" : "\"_ab_collection\":", err);
        if (rc == AB_OK) {
            rc = ab_json_write(&t->rec, coll, err);
        }
        if (rc == AB_OK) {
            rc = ab_buf_addc(&t->rec, '}', err);
        }
    }
    if (rc == AB_OK) {
        rc = ab_source_record(t->d, t->walk.cur, t->rec.data, t->rec.len, err);
    }
    t->records += rc == AB_OK;
    return rc;
}

static bool seen_at_start(const struct totvs *t, uint64_t h)
{
    for (size_t i = 0; i < t->nseen; i++) {
        if (t->seen[i] == h) {
            return true;
        }
    }
    return false;
}

/*
 * One answer {"count","totalPages","hasNext","totalItems","items"}. Items
 * come in change-time order; a record changed at exactly the search's start
 * and already read in this run (the previous page's last second) is not
 * emitted again. The next search starts at the page's last change time
 * (page 1), or, when every item of a full page changed in that one second,
 * at the next page of the same start.
 */
static enum ab_status on_page(struct totvs *t, struct ab_error *err)
{
    char what[160];
    yajl_val body, items, v;
    int64_t last = t->start, total = -1;
    size_t n;
    bool has_next;
    enum ab_status rc = AB_OK;

    (void)snprintf(what, sizeof(what), "stream '%s': POST %s page %" PRId64,
                   tm_stream_name(t->kind), tm_stream_path(t->kind), t->page);
    if (ab_fetch_json(&t->f, what, tm_error_detail, &body, err) != AB_OK) {
        return err->code;
    }
    items = ab_json_get(body, "items");
    v = ab_json_get(body, "hasNext");
    if (!items || !YAJL_IS_ARRAY(items) || !v || !(YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v))) {
        ab_json_free(body);
        return ab_error_set(err, AB_ERR_PROTOCOL,
                            "%s: the answer has no \"items\" array and \"hasNext\" flag", what);
    }
    has_next = YAJL_IS_TRUE(v);
    n = items->u.array.len;
    if (n > (size_t)t->page_size) {
        ab_json_free(body);
        return ab_error_set(err, AB_ERR_PROTOCOL,
                            "%s: %zu items, more than the %" PRId64 " asked for", what, n,
                            t->page_size);
    }
    if (!t->estimated && ab_json_int(ab_json_get(body, "totalItems"), &total) && total >= 0) {
        rc = ab_source_estimate(t->d, t->walk.cur, total, -1, err);
        t->estimated = true;
    }
    /* pass 1: every item has a change time, in order */
    for (size_t i = 0; i < n && rc == AB_OK; i++) {
        const char *s = ab_json_str(ab_json_get(items->u.array.values[i], "maxChangeFilterDate"));
        int64_t ts;

        if (!YAJL_IS_OBJECT(items->u.array.values[i]) || !s ||
            ab_time_parse(s, t->opts.utc_offset, &ts, NULL) != AB_OK) {
            rc = ab_error_set(err, AB_ERR_PROTOCOL,
                              "%s: item %zu is not an object with a \"maxChangeFilterDate\" "
                              "date-time",
                              what, i);
        } else if (ts < last) {
            rc = ab_error_set(err, AB_ERR_PROTOCOL,
                              "%s: item %zu is out of \"maxChangeFilterDate\" order (the API did "
                              "not sort as asked; reading on could miss records)",
                              what, i);
        } else {
            last = ts;
        }
    }
    /* pass 2: emit, and the keys of the last second for the next page */
    {
        size_t nseen = 0;
        uint64_t next_seen[TM_MAX_PAGE];

        for (size_t i = 0; i < n && rc == AB_OK; i++) {
            yajl_val it = items->u.array.values[i];
            int64_t ts = 0;
            uint64_t h = 0;
            bool keyed = tm_key_hash(t->kind, it, &h);

            (void)ab_time_parse(ab_json_str(ab_json_get(it, "maxChangeFilterDate")),
                                t->opts.utc_offset, &ts, NULL);
            if (!keyed) {
                rc = ab_error_set(err, AB_ERR_PROTOCOL, "%s: item %zu has no primary key", what, i);
                break;
            }
            if (ts == t->start && seen_at_start(t, h)) {
                t->repeats++;
            } else {
                rc = emit_record(t, it, err);
            }
            if (ts == last && nseen < TM_MAX_PAGE) {
                next_seen[nseen++] = h;
            }
        }
        if (rc == AB_OK && has_next && n > 0) {
            if (last > t->start) {
                memcpy(t->seen, next_seen, nseen * sizeof(next_seen[0]));
                t->nseen = nseen;
                t->start = last;
                t->page = 1;
            } else {
                /* a whole page changed in one second: the next page of it */
                for (size_t i = 0; i < nseen && t->nseen < TM_MAX_PAGE; i++) {
                    t->seen[t->nseen++] = next_seen[i];
                }
                t->page++;
            }
        }
    }
    ab_json_free(body);
    if (rc != AB_OK) {
        return rc;
    }
    if (!has_next || n == 0) {
        rc = emit_state(t, true, err);
        tm_set_phase(t, TM_PH_DONE);
        return rc;
    }
    rc = emit_state(t, false, err);
    tm_set_phase(t, TM_PH_SEARCH);
    return rc;
}

/* ---- the stream plan ------------------------------------------------------------- */

static enum ab_status begin_stream(void *self, size_t stream, struct ab_error *err)
{
    struct totvs *t = self;
    const struct ab_stream *s = &ab_driver_catalog(t->d)->streams[stream];
    struct tm_state st;
    enum ab_status rc;

    if (!tm_kind_of(s->name, &t->kind)) {
        return ab_error_set(err, AB_ERR_INTERNAL, "unknown stream '%s'", s->name);
    }
    t->incremental = s->sync_mode == AB_SYNC_INCREMENTAL;
    rc = tm_state_parse(ab_source_state_of(t->d, stream), &st, err);
    if (rc != AB_OK) {
        return rc;
    }
    t->start = t->start_date;
    t->page = 1;
    t->nseen = 0;
    t->estimated = false;
    if (t->incremental && !st.resume && st.cursor >= 0) {
        /* mid-pass (page > 1): exactly there; else the lookback before it */
        t->start = st.page > 1 ? st.cursor : st.cursor - t->lookback_s;
        t->page = st.page;
    } else if (!t->incremental && st.resume) {
        t->start = st.cursor;
        t->page = st.page;
    }
    if (t->start > t->run_start) {
        t->start = t->run_start; /* a cursor past the run's start (a clock step) */
    }
    AB_INFO(ab_driver_emitter(t->d), "totvs: stream '%s' (%s) from page %" PRId64,
            tm_stream_name(t->kind), t->incremental ? "incremental" : "full refresh", t->page);
    tm_set_phase(t, TM_PH_SEARCH);
    return AB_OK;
}

/* The fetch's answer: a page. */
static enum ab_status on_answer(void *self, struct ab_error *err)
{
    struct totvs *t = self;

    AB_ASSERT(t->phase == TM_PH_SEARCH); /* an answer needs a request */
    return on_page(t, err);
}

/* The request of the current phase, or the stream's end. */
static enum ab_status submit_next(void *self, bool *done, struct ab_error *err)
{
    struct totvs *t = self;

    switch (t->phase) {
    case TM_PH_SEARCH:
        return submit(t, err);
    case TM_PH_DONE:
        tm_set_phase(t, TM_PH_START);
        *done = true;
        return AB_OK;
    case TM_PH_START:
        break;
    }
    return ab_error_set(err, AB_ERR_INTERNAL, "stream '%s': a request before its plan",
                        tm_stream_name(t->kind));
}

static const struct ab_fetch_walk_ops walk_ops = {begin_stream, on_answer, submit_next};

static enum ab_status tm_step(void *self, enum ab_source_next *next, struct ab_error *err)
{
    struct totvs *t = self;

    if (!t->walk.ops) { /* the first step */
        ab_fetch_walk_init(&t->walk, &walk_ops, t, &t->f);
    }
    return ab_fetch_walk_step(&t->walk, next, err);
}

static void tm_summary(void *self, struct ab_emitter *em)
{
    const struct totvs *t = self;
    struct ab_http_stats hs;

    ab_http_get_stats(t->h, &hs);
    AB_INFO(em,
            "totvs: %" PRIu64 " records, %" PRIu64 " requests (%" PRIu64 " retries, %" PRIu64
            " throttled), %" PRIu64 " token fetches, %" PRIu64
            " records of a page boundary's second not read twice",
            t->records, t->requests, hs.retries, hs.throttled, ab_oauth2_fetches(t->auth),
            t->repeats);
}

const struct ab_source_ops tm_source_ops = {
    .name = "source-totvs-moda",
    .version = AB_VERSION,
    .spec_json = tm_spec_json,
    .check = tm_check,
    .discover = tm_discover,
    .open = tm_open,
    .step = tm_step,
    .summary = tm_summary,
    .close = tm_close,
};
