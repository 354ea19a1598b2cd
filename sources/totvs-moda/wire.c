/* wire.c - source-totvs-moda: TOTVS Moda's search bodies, answers, the catalog and the state. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "ab/json.h"
#include "ab/pager.h"

#include "totvs.h"

struct stream_def {
    const char *name;
    const char *path;
    const char *expand;
    const char *order;
    const char *change; /* the filter.change flags: which changes count */
    const char *key[2];
};

static const struct stream_def defs[TM_NKINDS] = {
    {"individuals",
     "/person/v2/individuals/search",
     "phones,addresses,emails,classifications",
     "maxChangeFilterDate,code",
     "\"inPerson\":true,\"inCustomer\":true,\"inAddress\":true,\"inPhone\":true,\"inEmail\":true",
     {"code", NULL}},
    {"legal_entities",
     "/person/v2/legal-entities/search",
     "phones,addresses,emails,classifications",
     "maxChangeFilterDate,code",
     "\"inPerson\":true,\"inCustomer\":true,\"inAddress\":true,\"inPhone\":true,\"inEmail\":true",
     {"code", NULL}},
    {"sales_orders",
     "/sales-order/v2/orders/search",
     "items,invoices,shippingAddress,classifications",
     "maxChangeFilterDate,branchCode,orderCode",
     NULL,
     {"branchCode", "orderCode"}},
    {"references",
     "/product/v2/references/search",
     "colors,classifications",
     "maxChangeFilterDate,referenceCode",
     NULL,
     {"referenceCode", NULL}},
    {"products",
     "/product/v2/products/search",
     "barCodes,classifications",
     "maxChangeFilterDate,productCode",
     "\"inProduct\":true,\"inPrice\":true",
     {"productCode", NULL}},
    {"balances",
     "/product/v2/balances/search",
     NULL,
     "maxChangeFilterDate,productCode",
     "\"inStock\":true",
     {"productCode", NULL}},
};

const char *tm_stream_name(enum tm_kind k)
{
    return k < TM_NKINDS ? defs[k].name : "?";
}

const char *tm_stream_path(enum tm_kind k)
{
    return k < TM_NKINDS ? defs[k].path : "?";
}

bool tm_kind_of(const char *name, enum tm_kind *k)
{
    for (int i = 0; i < TM_NKINDS; i++) {
        if (strcmp(name, defs[i].name) == 0) {
            *k = (enum tm_kind)i;
            return true;
        }
    }
    return false;
}

const char *tm_catalog_json(void)
{
    return tm_catalog_text;
}

static enum ab_status put_api_time(struct ab_buf *out, const char *key, int64_t t, int offset,
                                   struct ab_error *err)
{
    enum ab_status rc = ab_buf_printf(out, err, "\"%s\":\"", key);

    if (rc == AB_OK) {
        rc = ab_time_format(t, offset, "%Y-%m-%dT%H:%M:%S%z\"", out, err);
    }
    return rc;
}

enum ab_status tm_search_body(enum tm_kind k, const struct tm_opts *o, int64_t start, int64_t end,
                              int64_t page, int64_t size, struct ab_buf *out, struct ab_error *err)
{
    const struct stream_def *s = &defs[k];
    enum ab_status rc = ab_buf_adds(out, "{\"filter\":{", err);
    bool comma = false;

    if (rc == AB_OK && k == TM_SALES_ORDERS) {
        rc = ab_buf_printf(out, err, "\"branchCodeList\":%s", o->branches);
        comma = true;
    }
    if (rc == AB_OK && start >= 0) {
        rc = ab_buf_adds(out, comma ? ",\"change\":{" : "\"change\":{", err);
        if (rc == AB_OK) {
            rc = put_api_time(out, "startDate", start, o->utc_offset, err);
        }
        if (rc == AB_OK) {
            rc = ab_buf_addc(out, ',', err);
        }
        if (rc == AB_OK) {
            rc = put_api_time(out, "endDate", end, o->utc_offset, err);
        }
        if (rc == AB_OK && s->change) {
            rc = ab_buf_printf(out, err, ",%s", s->change);
        }
        if (rc == AB_OK) {
            rc = ab_buf_addc(out, '}', err);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(out, "},\"option\":{", err);
    }
    if (rc == AB_OK && k == TM_PRODUCTS) {
        rc = ab_buf_printf(out, err, "\"prices\":[{\"branchCode\":%lld,\"priceCodeList\":%s}]",
                           (long long)o->first_branch, o->prices);
    }
    if (rc == AB_OK && k == TM_BALANCES) {
        /* one entry per branch: walk the branch list's text ("[1,2,3]") */
        const char *p = o->branches + 1;

        rc = ab_buf_adds(out, "\"balances\":[", err);
        while (rc == AB_OK && *p && *p != ']') {
            size_t n = strcspn(p, ",]");

            rc = ab_buf_printf(out, err,
                               "%s{\"branchCode\":%.*s,\"stockCodeList\":%s,\"isSalesOrder\":true,"
                               "\"isTransaction\":true}",
                               p == o->branches + 1 ? "" : ",", (int)n, p, o->stocks);
            p += n;
            p += *p == ',';
        }
        if (rc == AB_OK) {
            rc = ab_buf_addc(out, ']', err);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(out, '}', err);
    }
    if (rc == AB_OK && s->expand) {
        rc = ab_buf_printf(out, err, ",\"expand\":\"%s\"", s->expand);
    }
    if (rc == AB_OK) {
        rc = ab_buf_printf(out, err, ",\"order\":\"%s\",\"page\":%lld,\"pageSize\":%lld}", s->order,
                           (long long)page, (long long)size);
    }
    return rc;
}

const char *tm_error_detail(yajl_val body, char *out, size_t size)
{
    yajl_val msgs = ab_json_get(body, "messages");
    yajl_val m;
    const char *code, *text;

    out[0] = '\0';
    if (!msgs || !YAJL_IS_ARRAY(msgs) || msgs->u.array.len == 0) {
        return out;
    }
    m = msgs->u.array.values[0];
    code = ab_json_get_str(m, "code", "");
    text = ab_json_get_str(m, "message", "");
    (void)snprintf(out, size, "%.64s%s%.300s", code, *code && *text ? ": " : "", text);
    return out;
}

bool tm_key_hash(enum tm_kind k, yajl_val rec, uint64_t *out)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (int i = 0; i < 2 && defs[k].key[i]; i++) {
        yajl_val v = ab_json_get(rec, defs[k].key[i]);
        const char *s = ab_json_str(v);
        char num[32];

        if (!s && v && YAJL_IS_NUMBER(v)) {
            (void)snprintf(num, sizeof(num), "%s", v->u.number.r);
            s = num;
        }
        if (!s) {
            return false;
        }
        for (const char *p = s; *p; p++) {
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        }
        h = (h ^ 0xffU) * 1099511628211ULL; /* separator */
    }
    *out = h;
    return true;
}

static enum ab_status page_of(yajl_val v, const char *what, int64_t *out, struct ab_error *err)
{
    if (v && (!ab_json_int(v, out) || *out < 1)) {
        return ab_error_set(err, AB_ERR_CONFIG, "\"%s\" must be a whole number >= 1", what);
    }
    return AB_OK;
}

enum ab_status tm_state_parse(yajl_val v, struct tm_state *st, struct ab_error *err)
{
    yajl_val r, c;

    st->cursor = -1;
    st->page = 1;
    st->resume = false;
    if (!v) {
        return AB_OK;
    }
    if (!YAJL_IS_OBJECT(v)) {
        return ab_error_set(err, AB_ERR_CONFIG, "the state must be an object");
    }
    r = ab_json_get(v, "resume");
    if (r) {
        if (!YAJL_IS_OBJECT(r) || !ab_json_get(r, "cursor")) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "\"resume\" must be an object with a \"cursor\"");
        }
        st->resume = true;
        v = r;
    }
    c = ab_json_get(v, "cursor");
    if (c && ab_json_time(c, st->resume ? "resume.cursor" : "cursor", &st->cursor, err) != AB_OK) {
        return err->code;
    }
    if (page_of(ab_json_get(v, "page"), st->resume ? "resume.page" : "page", &st->page, err) !=
        AB_OK) {
        return err->code;
    }
    if (st->page > 1 && st->cursor < 0) {
        return ab_error_set(err, AB_ERR_CONFIG, "\"page\" goes with a \"cursor\"");
    }
    return AB_OK;
}

enum ab_status tm_state_write(const struct tm_state *st, struct ab_buf *out, struct ab_error *err)
{
    enum ab_status rc = ab_buf_adds(out, st->resume ? "{\"resume\":{" : "{", err);

    if (rc == AB_OK && st->cursor >= 0) {
        rc = ab_buf_adds(out, "\"cursor\":\"", err);
        if (rc == AB_OK) {
            rc = ab_time_format(st->cursor, 0, "%Y-%m-%dT%H:%M:%SZ\"", out, err);
        }
        if (rc == AB_OK && st->page > 1) {
            rc = ab_buf_printf(out, err, ",\"page\":%lld", (long long)st->page);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(out, st->resume ? "}}" : "}", err);
    }
    return rc;
}
