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

static const struct ab_resume_keys state_keys = {"start", "page", 1};

enum ab_status bl_state_parse(yajl_val v, struct ab_resume_state *st, struct ab_error *err)
{
    if (ab_resume_state_parse(v, &state_keys, st, err) != AB_OK) {
        return err->code;
    }
    if (st->from >= 0 && st->end < st->from) {
        return ab_error_set(err, AB_ERR_CONFIG,
                            "\"resume\" has a window that ends before its start");
    }
    return AB_OK;
}

enum ab_status bl_state_write(const struct ab_resume_state *st, struct ab_buf *out,
                              struct ab_error *err)
{
    return ab_resume_state_write(st, &state_keys, out, err);
}
