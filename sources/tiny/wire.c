/* wire.c - source-tiny: Tiny's wire format, the catalog and the stream state. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "ab/json.h"
#include "ab/pager.h"

#include "tiny.h"

static const char *const names[TN_NKINDS] = {"contatos", "pedidos", "produtos", "variacoes",
                                             "estoque"};
static const char *const paths[TN_NKINDS] = {"/contatos", "/pedidos", "/produtos", "/produtos",
                                             "/produtos"};
static const char *const filters[TN_NKINDS] = {"dataAtualizacao", "dataAtualizacao",
                                               "dataAlteracao", "dataAlteracao", "dataAlteracao"};

const char *tn_stream_name(enum tn_kind k)
{
    return k < TN_NKINDS ? names[k] : "?";
}

const char *tn_list_path(enum tn_kind k)
{
    return k < TN_NKINDS ? paths[k] : "?";
}

const char *tn_filter_name(enum tn_kind k)
{
    return k < TN_NKINDS ? filters[k] : "?";
}

bool tn_kind_of(const char *name, enum tn_kind *k)
{
    for (int i = 0; i < TN_NKINDS; i++) {
        if (strcmp(name, names[i]) == 0) {
            *k = (enum tn_kind)i;
            return true;
        }
    }
    return false;
}

const char *tn_catalog_json(void)
{
    return tn_catalog_text;
}

enum ab_status tn_list_parse(yajl_val body, int64_t *ids, bool *parent, size_t max, size_t *n,
                             size_t *items, int64_t *total, struct ab_error *err)
{
    yajl_val list = ab_json_get(body, "itens");

    *n = 0;
    *items = 0;
    *total = -1;
    if (!list || !YAJL_IS_ARRAY(list)) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "the answer has no \"itens\" array");
    }
    if (!ab_json_int(ab_json_get(ab_json_get(body, "paginacao"), "total"), total) || *total < 0) {
        *total = -1;
    }
    if (list->u.array.len > max) {
        return ab_error_set(err, AB_ERR_PROTOCOL,
                            "the answer has %zu records, more than the %zu asked for",
                            list->u.array.len, max);
    }
    for (size_t i = 0; i < list->u.array.len; i++) {
        yajl_val el = list->u.array.values[i];
        const char *tv, *tipo;
        int64_t id = 0;

        if (!YAJL_IS_OBJECT(el) || !ab_json_int(ab_json_get(el, "id"), &id) || id <= 0) {
            return ab_error_set(err, AB_ERR_PROTOCOL,
                                "record %zu of \"itens\" has no positive whole-number \"id\"", i);
        }
        (*items)++;
        if (!ids) {
            continue;
        }
        tv = ab_json_get_str(el, "tipoVariacao", "");
        tipo = ab_json_get_str(el, "tipo", "");
        if (strcmp(tv, "V") == 0) {
            continue;
        }
        parent[*n] = strcmp(tv, "P") == 0 || strcmp(tipo, "V") == 0;
        ids[(*n)++] = id;
    }
    return AB_OK;
}

enum ab_status tn_variation_ids(yajl_val detail, int64_t *ids, size_t max, size_t *n,
                                struct ab_error *err)
{
    yajl_val vs = ab_json_get(detail, "variacoes");

    if (!vs || ab_json_is_null(vs)) {
        return AB_OK;
    }
    if (!YAJL_IS_ARRAY(vs)) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "\"variacoes\" is not an array");
    }
    for (size_t i = 0; i < vs->u.array.len; i++) {
        int64_t id = 0;

        if (!ab_json_int(ab_json_get(vs->u.array.values[i], "id"), &id) || id <= 0) {
            return ab_error_set(err, AB_ERR_PROTOCOL,
                                "variation %zu has no positive whole-number \"id\"", i);
        }
        if (*n >= max) {
            return ab_error_set(err, AB_ERR_PROTOCOL,
                                "more than %zu products and variations on one page", max);
        }
        ids[(*n)++] = id;
    }
    return AB_OK;
}

/* ,"key":<p's key> when p has it. */
static enum ab_status copy_member(struct ab_buf *out, yajl_val p, const char *key, bool *first,
                                  struct ab_error *err)
{
    yajl_val v = ab_json_get(p, key);
    enum ab_status rc;

    if (!v) {
        return AB_OK;
    }
    rc = ab_buf_adds(out, *first ? "" : ",", err);
    *first = false;
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(out, key, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(out, ':', err);
    }
    return rc == AB_OK ? ab_json_write(out, v, err) : rc;
}

enum ab_status tn_variation_record(yajl_val p, yajl_val v, struct ab_buf *out, struct ab_error *err)
{
    static const char *const parent_keys[] = {"id", "sku", "descricao", "dataAlteracao"};
    yajl_val grade = ab_json_get(v, "grade");
    bool first = true;
    enum ab_status rc;

    if (!v || !YAJL_IS_OBJECT(v)) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "a variation is not an object");
    }
    rc = ab_buf_addc(out, '{', err);
    for (size_t i = 0; i < v->u.object.len && rc == AB_OK; i++) {
        const char *k = v->u.object.keys[i];

        if (strcmp(k, "produtoPai") != 0 && strcmp(k, "_ab_grade") != 0) {
            rc = copy_member(out, v, k, &first, err);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(out, first ? "\"produtoPai\":{" : ",\"produtoPai\":{", err);
    }
    first = true;
    for (size_t i = 0; i < 4 && rc == AB_OK; i++) {
        rc = copy_member(out, p, parent_keys[i], &first, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(out, "},\"_ab_grade\":{", err);
    }
    first = true;
    for (size_t i = 0; grade && YAJL_IS_ARRAY(grade) && i < grade->u.array.len && rc == AB_OK;
         i++) {
        const char *k = ab_json_get_str(grade->u.array.values[i], "chave", NULL);
        yajl_val val = ab_json_get(grade->u.array.values[i], "valor");
        bool later = false;

        if (!k || !val) {
            continue;
        }
        for (size_t j = i + 1; j < grade->u.array.len; j++) {
            const char *k2 = ab_json_get_str(grade->u.array.values[j], "chave", NULL);

            later = later || (k2 && strcmp(k, k2) == 0);
        }
        if (later) {
            continue;
        }
        rc = ab_buf_adds(out, first ? "" : ",", err);
        first = false;
        if (rc == AB_OK) {
            rc = ab_json_write_cstr(out, k, err);
        }
        if (rc == AB_OK) {
            rc = ab_buf_addc(out, ':', err);
        }
        if (rc == AB_OK) {
            rc = ab_json_write(out, val, err);
        }
    }
    return rc == AB_OK ? ab_buf_adds(out, "}}", err) : rc;
}

const char *tn_error_detail(yajl_val body, char *out, size_t size)
{
    const char *msg = ab_json_get_str(body, "mensagem", NULL);
    yajl_val det = ab_json_get(body, "detalhes");
    size_t len;

    out[0] = '\0';
    if (!msg) {
        return out;
    }
    (void)snprintf(out, size, "%.200s", msg);
    if (!det || !YAJL_IS_ARRAY(det)) {
        return out;
    }
    for (size_t i = 0; i < det->u.array.len && i < 4; i++) {
        yajl_val d = det->u.array.values[i];

        len = strlen(out);
        (void)snprintf(out + len, size - len, "%s%.40s: %.120s", i ? "; " : " (",
                       ab_json_get_str(d, "campo", "?"), ab_json_get_str(d, "mensagem", ""));
    }
    len = strlen(out);
    if (det->u.array.len > 0 && len + 1 < size) {
        out[len] = ')';
        out[len + 1] = '\0';
    }
    return out;
}

static const struct ab_resume_keys state_keys = {"since", "offset", 0};

enum ab_status tn_state_parse(yajl_val v, struct ab_resume_state *st, struct ab_error *err)
{
    if (ab_resume_state_parse(v, &state_keys, st, err) != AB_OK) {
        return err->code;
    }
    return AB_OK;
}

enum ab_status tn_state_write(const struct ab_resume_state *st, struct ab_buf *out,
                              struct ab_error *err)
{
    return ab_resume_state_write(st, &state_keys, out, err);
}
