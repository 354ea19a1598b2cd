/* wire.c - source-bling: Bling's wire format, the catalog and the stream state. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "ab/json.h"
#include "ab/pager.h"

#include "bling.h"

static const char *const names[BL_NKINDS] = {"contatos", "pedidos", "produtos", "variacoes",
                                             "estoques"};
static const char *const paths[BL_NKINDS] = {"/contatos", "/pedidos/vendas", "/produtos",
                                             "/produtos", "/estoques/saldos"};

const char *bl_stream_name(enum bl_kind k)
{
    return k < BL_NKINDS ? names[k] : "?";
}

const char *bl_stream_path(enum bl_kind k)
{
    return k < BL_NKINDS ? paths[k] : "?";
}

bool bl_kind_of(const char *name, enum bl_kind *k)
{
    for (int i = 0; i < BL_NKINDS; i++) {
        if (strcmp(name, names[i]) == 0) {
            *k = (enum bl_kind)i;
            return true;
        }
    }
    return false;
}

const char *bl_catalog_json(void)
{
    return bl_catalog_text;
}

enum ab_status bl_list_ids(yajl_val body, bool skip_children, int64_t *ids, size_t max, size_t *n,
                           size_t *items, struct ab_error *err)
{
    yajl_val data = ab_json_get(body, "data");

    *n = 0;
    *items = 0;
    if (!data || !YAJL_IS_ARRAY(data)) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "the answer has no \"data\" array");
    }
    if (data->u.array.len > max) {
        return ab_error_set(err, AB_ERR_PROTOCOL,
                            "the answer has %zu records, more than the %zu asked for",
                            data->u.array.len, max);
    }
    for (size_t i = 0; i < data->u.array.len; i++) {
        yajl_val el = data->u.array.values[i];
        int64_t id = 0, parent = 0;

        if (!ab_json_int(ab_json_get(el, "id"), &id) || id <= 0) {
            return ab_error_set(err, AB_ERR_PROTOCOL,
                                "record %zu of \"data\" has no positive whole-number \"id\"", i);
        }
        (*items)++;
        if (skip_children && ab_json_int(ab_json_get(el, "idProdutoPai"), &parent) && parent != 0) {
            continue;
        }
        ids[(*n)++] = id;
    }
    return AB_OK;
}

const char *bl_error_detail(yajl_val body, char *out, size_t size)
{
    yajl_val e = ab_json_get(body, "error");
    const char *type = ab_json_get_str(e, "type", NULL);
    const char *desc = ab_json_get_str(e, "description", NULL);

    if (!desc) {
        desc = ab_json_get_str(e, "message", "");
    }
    if (!type) {
        out[0] = '\0';
        return out;
    }
    (void)snprintf(out, size, "%.64s%s%.300s", type, *desc ? ": " : "", desc);
    return out;
}

static enum ab_status time_of(yajl_val v, const char *what, int64_t *out, struct ab_error *err)
{
    const char *s = ab_json_str(v);

    if (!s || ab_time_parse(s, 0, out, err) != AB_OK) {
        return ab_error_set(err, AB_ERR_CONFIG, "\"%s\" must be a date-time text (UTC ISO 8601)",
                            what);
    }
    return AB_OK;
}

enum ab_status bl_state_parse(yajl_val v, struct bl_state *st, struct ab_error *err)
{
    yajl_val c, r, s;

    st->cursor = st->start = st->end = -1;
    st->resume = false;
    st->page = 1;
    if (!v) {
        return AB_OK;
    }
    if (!YAJL_IS_OBJECT(v)) {
        return ab_error_set(err, AB_ERR_CONFIG, "the state must be an object");
    }
    c = ab_json_get(v, "cursor");
    if (c && time_of(c, "cursor", &st->cursor, err) != AB_OK) {
        return err->code;
    }
    r = ab_json_get(v, "resume");
    if (!r) {
        return AB_OK;
    }
    if (!YAJL_IS_OBJECT(r) || !ab_json_int(ab_json_get(r, "page"), &st->page) || st->page < 1) {
        return ab_error_set(err, AB_ERR_CONFIG,
                            "\"resume\" must be an object with a \"page\" >= 1");
    }
    st->resume = true;
    s = ab_json_get(r, "start");
    if (s && !ab_json_is_null(s) && time_of(s, "resume.start", &st->start, err) != AB_OK) {
        return err->code;
    }
    s = ab_json_get(r, "end");
    if (s && time_of(s, "resume.end", &st->end, err) != AB_OK) {
        return err->code;
    }
    if (st->start >= 0 && (st->end < 0 || st->end < st->start)) {
        return ab_error_set(err, AB_ERR_CONFIG, "\"resume\" has a start and no end after it");
    }
    return AB_OK;
}

static enum ab_status put_time(struct ab_buf *out, const char *key, int64_t t, struct ab_error *err)
{
    enum ab_status rc = ab_buf_printf(out, err, "\"%s\":", key);

    if (rc == AB_OK && t < 0) {
        return ab_buf_adds(out, "null", err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(out, '"', err);
    }
    if (rc == AB_OK) {
        rc = ab_time_format(t, 0, "%Y-%m-%dT%H:%M:%SZ", out, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(out, '"', err);
    }
    return rc;
}

enum ab_status bl_state_write(const struct bl_state *st, struct ab_buf *out, struct ab_error *err)
{
    enum ab_status rc = ab_buf_addc(out, '{', err);
    bool comma = false;

    if (rc == AB_OK && st->cursor >= 0) {
        rc = put_time(out, "cursor", st->cursor, err);
        comma = true;
    }
    if (rc == AB_OK && st->resume) {
        rc = ab_buf_adds(out, comma ? ",\"resume\":{" : "\"resume\":{", err);
        if (rc == AB_OK && st->end >= 0) {
            rc = put_time(out, "start", st->start, err);
            if (rc == AB_OK) {
                rc = ab_buf_addc(out, ',', err);
            }
            if (rc == AB_OK) {
                rc = put_time(out, "end", st->end, err);
            }
            if (rc == AB_OK) {
                rc = ab_buf_addc(out, ',', err);
            }
        }
        if (rc == AB_OK) {
            rc = ab_buf_printf(out, err, "\"page\":%lld}", (long long)st->page);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(out, '}', err);
    }
    return rc;
}
