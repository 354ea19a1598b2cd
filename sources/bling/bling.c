/* bling.c - source-bling: the read, one request at a time, pages and windows. */
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

#include "bling_int.h"

#define BODY_MAX ((size_t)16 << 20)

static const char *phase_name(enum bl_phase p)
{
    static const char *const n[] = {"start", "list", "detail", "saldos", "probe", "done"};

    return n[p];
}

void bl_set_phase(struct bling *b, enum bl_phase to)
{
    /* start -> list; list -> probe|detail|saldos|list|done; probe -> anything
     * list goes to; detail -> detail|list|done; saldos -> list|done; done ->
     * start (next stream) */
    AB_ASSERT((b->phase == BL_PH_START && to == BL_PH_LIST) ||
              ((b->phase == BL_PH_LIST || b->phase == BL_PH_PROBE) && to != BL_PH_START) ||
              (b->phase == BL_PH_DETAIL &&
               (to == BL_PH_DETAIL || to == BL_PH_LIST || to == BL_PH_DONE)) ||
              (b->phase == BL_PH_SALDOS && (to == BL_PH_LIST || to == BL_PH_DONE)) ||
              (b->phase == BL_PH_DONE && to == BL_PH_START));
    if (b->phase != to) {
        AB_DEBUG(ab_driver_emitter(b->d), "bling: %s: %s -> %s", bl_stream_name(b->kind),
                 phase_name(b->phase), phase_name(to));
    }
    b->phase = to;
}

static enum ab_status on_rotate(void *arg, const char *refresh_token, struct ab_error *err)
{
    struct bling *b = arg;
    enum ab_status rc = ab_source_config_update(b->d, "refresh_token", refresh_token, err);

    b->rotations += rc == AB_OK;
    return rc;
}

enum ab_status bl_config(struct bling *b, struct ab_driver *d, struct ab_error *err)
{
    const char *start;
    enum ab_status rc;

    b->d = d;
    b->config = ab_driver_config(d);
    b->api_url = ab_opt_str(b->config, "api_url");
    b->page_size = ab_opt_int(b->config, "page_size");
    b->window_s = ab_opt_int(b->config, "window_days") * 86400;
    b->lookback_s = ab_opt_int(b->config, "lookback_seconds");
    b->utc_offset = (int)ab_opt_int(b->config, "utc_offset_minutes");
    b->start_date = -1;
    ab_buf_init(&b->url, 64 * 1024);
    ab_buf_init(&b->rec, BODY_MAX);
    ab_buf_init(&b->out, BODY_MAX);
    rc = ab_driver_check_url(b->api_url, "api_url", err);
    if (rc != AB_OK) {
        return rc;
    }
    start = ab_opt_str(b->config, "start_date");
    if (start && ab_time_parse(start, b->utc_offset, &b->start_date, err) != AB_OK) {
        return ab_error_set(err, AB_ERR_CONFIG, "start_date: not a valid date (YYYY-MM-DD)");
    }
    return AB_OK;
}

enum ab_status bl_auth_new(struct bling *b, bool fail_driver, struct ab_error *err)
{
    struct ab_oauth2_opts o;
    struct ab_http_opts ho;
    enum ab_status rc;

    ab_buf_reset(&b->url);
    rc = ab_buf_printf(&b->url, err, "%s/oauth/token", b->api_url);
    if (rc != AB_OK) {
        return rc;
    }
    memset(&o, 0, sizeof(o));
    o.d = b->d;
    o.token_url = b->url.data;
    o.client_id = ab_opt_str(b->config, "client_id");
    o.client_secret = ab_opt_str(b->config, "client_secret");
    o.grant = AB_OAUTH2_REFRESH;
    o.client_auth = AB_OAUTH2_CLIENT_BASIC;
    o.refresh_token = ab_opt_str(b->config, "refresh_token");
    o.on_rotate = on_rotate;
    o.rotate_arg = b;
    o.fail_driver = fail_driver;
    ab_driver_http_opts(b->d, &ho);
    b->auth = ab_oauth2_new(&o, &ho, err);
    if (!b->auth) {
        return err->code;
    }
    b->h = ab_http_new(&ho, err);
    if (!b->h) {
        return err->code;
    }
    ab_http_set_auth(b->h, ab_oauth2_provide, b->auth);
    return AB_OK;
}

void bl_release(struct bling *b)
{
    ab_fetch_release(&b->f);
    ab_http_free(b->h);
    ab_oauth2_free(b->auth);
    ab_buf_release(&b->url);
    ab_buf_release(&b->rec);
    ab_buf_release(&b->out);
}

struct ab_http_req *bl_request(struct bling *b, const char *url, const char *label,
                               struct ab_error *err)
{
    struct ab_http_req *r = ab_http_req_new("GET", url, err);

    if (!r) {
        return NULL;
    }
    if (ab_http_req_header(r, "Accept: application/json", err) != AB_OK) {
        ab_http_req_free(r);
        return NULL;
    }
    ab_http_req_classify(r, ab_oauth2_classify, b->auth);
    ab_http_req_label(r, label);
    return r;
}

static void bl_close(void *self)
{
    struct bling *b = self;

    if (b) {
        bl_release(b);
        free(b);
    }
}

static enum ab_status bl_discover(struct ab_driver *d, struct ab_error *err)
{
    return ab_source_catalog_text(d, bl_catalog_json(), err);
}

static enum ab_status bl_open(struct ab_driver *d, void **self, struct ab_error *err)
{
    const struct ab_catalog *cat = ab_driver_catalog(d);
    struct bling *b;
    enum ab_status rc;

    for (size_t i = 0; i < cat->n; i++) {
        enum bl_kind k;

        if (!bl_kind_of(cat->streams[i].name, &k)) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "catalog: stream '%s' is not one of contatos, pedidos, produtos, "
                                "variacoes, estoques",
                                cat->streams[i].name);
        }
        if (k == BL_ESTOQUES && cat->streams[i].sync_mode == AB_SYNC_INCREMENTAL) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "catalog: stream 'estoques' supports full_refresh only (Bling "
                                "has no change filter for stock)");
        }
    }
    b = calloc(1, sizeof(*b));
    if (!b) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    rc = bl_config(b, d, err);
    if (rc == AB_OK) {
        rc = bl_auth_new(b, true, err);
    }
    if (rc != AB_OK) {
        bl_close(b);
        return rc;
    }
    ab_fetch_init(&b->f, d, b->h, BODY_MAX);
    ab_driver_set_http(d, b->h);
    b->run_start = ab_wall_ms() / 1000;
    /* every state parses before anything is read */
    for (size_t i = 0; i < cat->n; i++) {
        struct ab_resume_state st;

        if (bl_state_parse(ab_source_state_of(d, i), &st, err) != AB_OK) {
            (void)ab_error_prefix(err, "state of stream '%s'", cat->streams[i].name);
            bl_close(b);
            return err->code;
        }
    }
    *self = b;
    return AB_OK;
}

/* ---- requests ------------------------------------------------------------------- */

static enum ab_status add_time(struct bling *b, const char *key, int64_t t, struct ab_error *err)
{
    struct ab_buf v;
    enum ab_status rc;

    ab_buf_init(&v, 64);
    rc = ab_time_format(t, b->utc_offset, "%Y-%m-%d %H:%M:%S", &v, err);
    if (rc == AB_OK) {
        rc = ab_form_add(&b->out, key, v.data, err);
    }
    ab_buf_release(&v);
    return rc;
}

static enum ab_status submit(struct bling *b, const char *label, struct ab_error *err)
{
    struct ab_http_req *r = bl_request(b, b->url.data, label, err);

    if (!r) {
        return err->code;
    }
    b->requests++;
    return ab_fetch_submit(&b->f, r, err);
}

static enum ab_status submit_list(struct bling *b, int64_t page, struct ab_error *err)
{
    enum bl_kind k = b->kind == BL_ESTOQUES ? BL_PRODUTOS : b->kind;
    char label[96];
    enum ab_status rc;

    ab_buf_reset(&b->out);
    rc = ab_buf_printf(&b->out, err, "pagina=%" PRId64 "&limite=%" PRId64, page, b->pager.limit);
    if (rc == AB_OK && k == BL_PRODUTOS) {
        /* criterio 5: every product (the default lists recent ones only) */
        rc = ab_buf_adds(&b->out, "&criterio=5&tipo=T", err);
    } else if (rc == AB_OK && k == BL_VARIACOES) {
        rc = ab_buf_adds(&b->out, "&criterio=5&tipo=V", err); /* the variations alone */
    } else if (rc == AB_OK && k == BL_CONTATOS) {
        rc = ab_buf_adds(&b->out, "&criterio=1", err); /* every contact */
    }
    if (rc == AB_OK && b->filtered) {
        rc = add_time(b, "dataAlteracaoInicial", b->st.from, err);
        if (rc == AB_OK) {
            rc = add_time(b, "dataAlteracaoFinal", b->st.end, err);
        }
    }
    ab_buf_reset(&b->url);
    if (rc == AB_OK) {
        rc = ab_buf_printf(&b->url, err, "%s%s?%s", b->api_url, bl_stream_path(k), b->out.data);
    }
    if (rc != AB_OK) {
        return rc;
    }
    (void)snprintf(label, sizeof(label), "GET %s page %" PRId64, bl_stream_path(k), page);
    return submit(b, label, err);
}

static enum ab_status submit_detail(struct bling *b, struct ab_error *err)
{
    char label[96];
    enum ab_status rc;

    ab_buf_reset(&b->url);
    rc = ab_buf_printf(&b->url, err, "%s%s/%" PRId64, b->api_url, bl_stream_path(b->kind),
                       b->ids[b->idx]);
    if (rc != AB_OK) {
        return rc;
    }
    (void)snprintf(label, sizeof(label), "GET %s/%" PRId64, bl_stream_path(b->kind),
                   b->ids[b->idx]);
    return submit(b, label, err);
}

static enum ab_status submit_saldos(struct bling *b, struct ab_error *err)
{
    enum ab_status rc;
    char num[24];

    ab_buf_reset(&b->out);
    rc = AB_OK;
    for (size_t i = 0; i < b->nids && rc == AB_OK; i++) {
        (void)snprintf(num, sizeof(num), "%" PRId64, b->ids[i]);
        rc = ab_form_add(&b->out, "idsProdutos[]", num, err);
    }
    ab_buf_reset(&b->url);
    if (rc == AB_OK) {
        rc = ab_buf_printf(&b->url, err, "%s/estoques/saldos?%s", b->api_url, b->out.data);
    }
    if (rc != AB_OK) {
        return rc;
    }
    return submit(b, "GET /estoques/saldos", err);
}

/* ---- answers -------------------------------------------------------------------- */

/* The record: Bling's object v plus "_ab_window_end", the end of the
 * request window it was read in (its modification time is at most that). */
static enum ab_status emit_record(struct bling *b, yajl_val v, struct ab_error *err)
{
    int64_t end = b->st.end >= 0 ? b->st.end : b->run_start;
    enum ab_status rc;

    AB_ASSERT(v && YAJL_IS_OBJECT(v));
    ab_buf_reset(&b->rec);
    rc = ab_json_write(&b->rec, v, err);
    if (rc != AB_OK) {
        return rc;
    }
    ab_buf_truncate(&b->rec, b->rec.len - 1); /* the closing brace */
    rc = ab_buf_adds(&b->rec, v->u.object.len ? ",\"_ab_window_end\":\"" : "\"_ab_window_end\":\"",
                     err);
    if (rc == AB_OK) {
        rc = ab_time_format(end, 0, "%Y-%m-%dT%H:%M:%SZ\"}", &b->rec, err);
    }
    if (rc == AB_OK) {
        rc = ab_source_record(b->d, b->walk.cur, b->rec.data, b->rec.len, err);
    }
    b->records += rc == AB_OK;
    b->stream_records += rc == AB_OK;
    return rc;
}

/* The answer as JSON, or the failure it means. *body belongs to the caller. */
static enum ab_status answer(struct bling *b, const char *what, yajl_val *body,
                             struct ab_error *err)
{
    return ab_fetch_json(&b->f, what, bl_error_detail, body, err);
}

static enum ab_status emit_state(struct bling *b, struct ab_error *err)
{
    ab_buf_reset(&b->out);
    if (bl_state_write(&b->st, &b->out, err) != AB_OK) {
        return err->code;
    }
    return ab_source_stream_state(b->d, b->walk.cur, b->out.data, b->out.len, err);
}

/* Starts the next window of an incremental stream; false when none is left. */
static bool next_window(struct bling *b)
{
    int64_t s, e;

    if (!b->more_windows || !ab_windows_next(&b->windows, &s, &e)) {
        b->more_windows = false;
        return false;
    }
    b->st.from = s;
    b->st.end = e;
    b->filtered = true;
    ab_pager_init(&b->pager, AB_PAGE_NUMBER, 1, b->page_size);
    return true;
}

static enum ab_status pass_done(struct bling *b, struct ab_error *err)
{
    b->st.resume = false;
    if (b->incremental) {
        AB_ASSERT(b->st.end >= 0);
        b->st.cursor = b->st.end;
    }
    if (emit_state(b, err) != AB_OK) {
        return err->code;
    }
    if (b->incremental && next_window(b)) {
        bl_set_phase(b, BL_PH_LIST);
        return AB_OK;
    }
    bl_set_phase(b, BL_PH_DONE);
    return AB_OK;
}

static enum ab_status page_done(struct bling *b, struct ab_error *err)
{
    if (!ab_pager_next(&b->pager, (int64_t)b->items, -1, -1)) {
        return pass_done(b, err);
    }
    b->st.resume = true;
    b->st.at = b->pager.page;
    if (emit_state(b, err) != AB_OK) {
        return err->code;
    }
    bl_set_phase(b, BL_PH_LIST);
    return AB_OK;
}

/* After a list page (and the search for the list's end): its records. */
static enum ab_status page_listed(struct bling *b, struct ab_error *err)
{
    if (b->nids == 0) {
        return page_done(b, err);
    }
    bl_set_phase(b, b->kind == BL_ESTOQUES ? BL_PH_SALDOS : BL_PH_DETAIL);
    return AB_OK;
}

/* ESTIMATE: what this run emitted of the stream, plus the pass's list
 * length (produtos: its variations too, which come inside their parents). */
static enum ab_status estimate(struct bling *b, int64_t listed, struct ab_error *err)
{
    AB_DEBUG(ab_driver_emitter(b->d),
             "bling: stream '%s': %" PRId64 " listed (%" PRId64 " pages asked for the end)",
             bl_stream_name(b->kind), listed, b->probes);
    return ab_source_estimate(b->d, b->walk.cur, (int64_t)b->stream_records + listed, -1, err);
}

/* Bling's lists carry no count: after a full first page, pages 2, 4, 8 ...
 * then a bisection find the last one (about 2 log2(pages) requests). */
#define BL_MAX_PROBES 64

static enum ab_status on_probe(struct bling *b, struct ab_error *err)
{
    char what[96];
    int64_t ids[BL_MAX_PAGE];
    size_t n = 0, items = 0;
    yajl_val body;
    enum ab_status rc;

    (void)snprintf(what, sizeof(what), "stream '%s': GET %s page %" PRId64, bl_stream_name(b->kind),
                   bl_stream_path(b->kind == BL_ESTOQUES ? BL_PRODUTOS : b->kind), b->probe_page);
    rc = answer(b, what, &body, err);
    if (rc != AB_OK) {
        return rc;
    }
    rc = bl_list_ids(body, false, ids, (size_t)b->page_size, &n, &items, err);
    ab_json_free(body);
    if (rc != AB_OK) {
        return ab_error_prefix(err, "%s", what);
    }
    if ((int64_t)items >= b->page_size) {
        b->probe_lo = b->probe_page;
    } else {
        b->probe_hi = b->probe_page;
        b->probe_hi_items = (int64_t)items;
    }
    if (b->probe_hi >= 0 && b->probe_hi == b->probe_lo + 1) {
        rc = estimate(b, b->probe_lo * b->page_size + b->probe_hi_items, err);
        return rc == AB_OK ? page_listed(b, err) : rc;
    }
    if (++b->probes >= BL_MAX_PROBES) {
        return page_listed(b, err); /* no end in sight: no estimate */
    }
    b->probe_page =
        b->probe_hi < 0 ? b->probe_lo * 2 : b->probe_lo + (b->probe_hi - b->probe_lo) / 2;
    bl_set_phase(b, BL_PH_PROBE);
    return AB_OK;
}

static enum ab_status on_list(struct bling *b, struct ab_error *err)
{
    char what[96];
    yajl_val body;
    enum ab_status rc;

    (void)snprintf(what, sizeof(what), "stream '%s': GET %s page %" PRId64, bl_stream_name(b->kind),
                   bl_stream_path(b->kind == BL_ESTOQUES ? BL_PRODUTOS : b->kind), b->pager.page);
    rc = answer(b, what, &body, err);
    if (rc != AB_OK) {
        return rc;
    }
    rc = bl_list_ids(body, b->kind == BL_PRODUTOS, b->ids, (size_t)b->page_size, &b->nids,
                     &b->items, err);
    ab_json_free(body);
    if (rc != AB_OK) {
        return ab_error_prefix(err, "%s", what);
    }
    b->idx = 0;
    if (b->pager.page == 1) {
        /* a pass begins: how long is its list? */
        if ((int64_t)b->items < b->page_size) {
            rc = estimate(b, (int64_t)b->items, err);
            return rc == AB_OK ? page_listed(b, err) : rc;
        }
        b->probe_lo = 1;
        b->probe_hi = -1;
        b->probe_hi_items = 0;
        b->probe_page = 2;
        b->probes = 0;
        bl_set_phase(b, BL_PH_PROBE);
        return AB_OK;
    }
    return page_listed(b, err);
}

static enum ab_status on_detail(struct bling *b, struct ab_error *err)
{
    char what[96];
    yajl_val body = NULL, data;
    enum ab_status rc;

    (void)snprintf(what, sizeof(what), "stream '%s': GET %s/%" PRId64, bl_stream_name(b->kind),
                   bl_stream_path(b->kind), b->ids[b->idx]);
    if (b->f.status == 404) {
        /* deleted between the list and the detail: said, not silently lost */
        AB_WARN(ab_driver_emitter(b->d), "%s: gone (HTTP 404) since the list was read; skipped",
                what);
        b->missing++;
    } else {
        rc = answer(b, what, &body, err);
        if (rc != AB_OK) {
            return rc;
        }
        data = ab_json_get(body, "data");
        if (!data || !YAJL_IS_OBJECT(data)) {
            ab_json_free(body);
            return ab_error_set(err, AB_ERR_PROTOCOL, "%s: the answer has no \"data\" object",
                                what);
        }
        rc = emit_record(b, data, err);
        ab_json_free(body);
        if (rc != AB_OK) {
            return rc;
        }
    }
    if (++b->idx < b->nids) {
        bl_set_phase(b, BL_PH_DETAIL);
        return AB_OK;
    }
    return page_done(b, err);
}

static enum ab_status on_saldos(struct bling *b, struct ab_error *err)
{
    const char *what = "stream 'estoques': GET /estoques/saldos";
    yajl_val body, data;
    enum ab_status rc;

    rc = answer(b, what, &body, err);
    if (rc != AB_OK) {
        return rc;
    }
    data = ab_json_get(body, "data");
    if (!data || !YAJL_IS_ARRAY(data)) {
        ab_json_free(body);
        return ab_error_set(err, AB_ERR_PROTOCOL, "%s: the answer has no \"data\" array", what);
    }
    for (size_t i = 0; i < data->u.array.len && rc == AB_OK; i++) {
        if (!YAJL_IS_OBJECT(data->u.array.values[i])) {
            rc = ab_error_set(err, AB_ERR_PROTOCOL, "%s: element %zu of \"data\" is not an object",
                              what, i);
            break;
        }
        rc = emit_record(b, data->u.array.values[i], err);
    }
    ab_json_free(body);
    if (rc != AB_OK) {
        return rc;
    }
    return page_done(b, err);
}

/* ---- the stream plan ------------------------------------------------------------- */

static enum ab_status begin_stream(void *self, size_t stream, struct ab_error *err)
{
    struct bling *b = self;
    const struct ab_stream *s = &ab_driver_catalog(b->d)->streams[stream];
    enum ab_status rc;
    int64_t from = -1;

    if (!bl_kind_of(s->name, &b->kind)) {
        return ab_error_set(err, AB_ERR_INTERNAL, "unknown stream '%s'", s->name);
    }
    b->incremental = s->sync_mode == AB_SYNC_INCREMENTAL;
    rc = bl_state_parse(ab_source_state_of(b->d, stream), &b->st, err);
    if (rc != AB_OK) {
        return rc;
    }
    b->more_windows = false;
    b->filtered = false;
    b->stream_records = 0;
    if (!b->incremental) {
        /* a full pass; a resume point of a full pass (no end) is honoured */
        int64_t page = b->st.resume && b->st.end < 0 ? b->st.at : 1;

        memset(&b->st, 0, sizeof(b->st));
        b->st.cursor = b->st.from = b->st.end = -1;
        ab_pager_init(&b->pager, AB_PAGE_NUMBER, page, b->page_size);
    } else if (b->st.resume && b->st.end >= 0) {
        /* mid-window: finish it from its page, then the windows after it */
        b->filtered = b->st.from >= 0;
        ab_pager_init(&b->pager, AB_PAGE_NUMBER, b->st.at, b->page_size);
        if (b->st.end < b->run_start) {
            ab_windows_init(&b->windows, b->st.end, b->run_start, b->window_s);
            b->more_windows = true;
        }
    } else {
        if (b->st.cursor >= 0) {
            from = b->st.cursor - b->lookback_s;
        } else if (b->start_date >= 0) {
            from = b->start_date;
        }
        b->st.resume = false;
        if (from >= 0) {
            /* a cursor past the run's start (a clock step): one empty window */
            ab_windows_init(&b->windows, from < b->run_start ? from : b->run_start, b->run_start,
                            b->window_s);
            b->more_windows = true;
            if (!next_window(b)) {
                return ab_error_set(err, AB_ERR_INTERNAL, "no request window");
            }
        } else {
            /* first run, no start date: everything, up to the run's start */
            b->st.from = -1;
            b->st.end = b->run_start;
            ab_pager_init(&b->pager, AB_PAGE_NUMBER, 1, b->page_size);
        }
    }
    AB_INFO(ab_driver_emitter(b->d), "bling: stream '%s' (%s)%s from page %" PRId64,
            bl_stream_name(b->kind), b->incremental ? "incremental" : "full refresh",
            b->filtered ? ", by modification window" : "", b->pager.page);
    bl_set_phase(b, BL_PH_LIST);
    return AB_OK;
}

/* The fetch's answer, by what was asked. */
static enum ab_status on_answer(void *self, struct ab_error *err)
{
    struct bling *b = self;

    switch (b->phase) {
    case BL_PH_LIST:
        return on_list(b, err);
    case BL_PH_DETAIL:
        return on_detail(b, err);
    case BL_PH_SALDOS:
        return on_saldos(b, err);
    case BL_PH_PROBE:
        return on_probe(b, err);
    default:
        AB_ASSERT(b->phase == BL_PH_LIST); /* an answer in a phase without a request */
        return AB_OK;
    }
}

/* The request of the current phase, or the stream's end. */
static enum ab_status submit_next(void *self, bool *done, struct ab_error *err)
{
    struct bling *b = self;

    switch (b->phase) {
    case BL_PH_LIST:
        return submit_list(b, b->pager.page, err);
    case BL_PH_PROBE:
        return submit_list(b, b->probe_page, err);
    case BL_PH_DETAIL:
        return submit_detail(b, err);
    case BL_PH_SALDOS:
        return submit_saldos(b, err);
    case BL_PH_DONE:
        bl_set_phase(b, BL_PH_START);
        *done = true;
        return AB_OK;
    case BL_PH_START:
        break;
    }
    return ab_error_set(err, AB_ERR_INTERNAL, "stream '%s': a request before its plan",
                        bl_stream_name(b->kind));
}

static const struct ab_fetch_walk_ops walk_ops = {begin_stream, on_answer, submit_next};

static enum ab_status bl_step(void *self, enum ab_source_next *next, struct ab_error *err)
{
    struct bling *b = self;

    if (!b->walk.ops) { /* the first step */
        ab_fetch_walk_init(&b->walk, &walk_ops, b, &b->f);
    }
    return ab_fetch_walk_step(&b->walk, next, err);
}

static void bl_summary(void *self, struct ab_emitter *em)
{
    const struct bling *b = self;
    struct ab_http_stats hs;

    ab_http_get_stats(b->h, &hs);
    AB_INFO(em,
            "bling: %" PRIu64 " records, %" PRIu64 " requests (%" PRIu64 " retries, %" PRIu64
            " throttled), %" PRIu64 " token fetches, %" PRIu64 " refresh-token rotations, %" PRIu64
            " records gone between list and detail",
            b->records, b->requests, hs.retries, hs.throttled, ab_oauth2_fetches(b->auth),
            b->rotations, b->missing);
}

const struct ab_source_ops bl_source_ops = {
    .name = "source-bling",
    .version = AB_VERSION,
    .spec_json = bl_spec_json,
    .check = bl_check,
    .discover = bl_discover,
    .open = bl_open,
    .step = bl_step,
    .summary = bl_summary,
    .close = bl_close,
};
