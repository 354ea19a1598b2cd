/* wire.c - destination-crm360: record bodies, idempotency keys, names. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ab/destination.h"
#include "ab/json.h"

#include "crm360_int.h"

const char *const crm_result_names[CRM_R_NRESULTS] = {"created", "updated",   "unchanged", "stale",
                                                      "deleted", "not_found", "rejected"};

const char *const crm_object_names[] = {"customers", "orders", NULL};

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

enum ab_status crm_add_problem_opt(struct ab_buf *errors, const char *field, const char *code,
                                   const char *message, const char *option, struct ab_error *err)
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
    if (rc == AB_OK && option) {
        rc = ab_buf_adds(errors, ",\"option\":", err);
        if (rc == AB_OK) {
            rc = ab_json_write_cstr(errors, option, err);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(errors, '}', err);
    }
    return rc;
}

enum ab_status crm_add_problem(struct ab_buf *errors, const char *field, const char *code,
                               const char *message, struct ab_error *err)
{
    return crm_add_problem_opt(errors, field, code, message, NULL, err);
}

static enum ab_status check_key(yajl_val v, const char *field, struct ab_buf *errors, bool *bad,
                                struct ab_error *err);

/* The record has no brand: the default brand would have served. */
static enum ab_status check_brand(yajl_val br, const char *brand, struct ab_buf *errors, bool *bad,
                                  struct ab_error *err)
{
    if (ab_json_is_null(br) && !brand) {
        *bad = true;
        return crm_add_problem_opt(errors, "brand", "missing_field",
                                   "'brand' is required: the record has none and the config sets "
                                   "no default brand",
                                   "brand", err);
    }
    if (ab_json_is_null(br)) {
        return AB_OK;
    }
    return check_key(br, "brand", errors, bad, err);
}

/* Checks that a key field is a non-empty string; records a problem if not. */
static enum ab_status check_key(yajl_val v, const char *field, struct ab_buf *errors, bool *bad,
                                struct ab_error *err)
{
    char msg[128];

    if (ab_json_is_null(v) || (v->type == yajl_t_string && v->u.string[0] == '\0')) {
        *bad = true;
        (void)snprintf(msg, sizeof(msg), "'%s' is required", field);
        return crm_add_problem(errors, field, "missing_field", msg, err);
    }
    if (v->type != yajl_t_string) {
        *bad = true;
        (void)snprintf(msg, sizeof(msg), "'%s' must be a string, not %s", field,
                       ab_json_type_name(v));
        return crm_add_problem(errors, field, "invalid_type", msg, err);
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
    if (rc == AB_OK) {
        rc = check_brand(br, brand, errors, bad, err);
    }
    if (rc == AB_OK && (ab_json_is_null(at) || at->type != yajl_t_string)) {
        *bad = true;
        rc = crm_add_problem(errors, "deleted_at", "missing_field",
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

/* A string value of more than "" in the text of lazy data. */
static bool member_string(const struct ab_record *rec, const struct ab_json_member *mb)
{
    return mb && mb->val_len > 2 && rec->data_text[mb->val_off] == '"';
}

/* Lazy data that crm_build_record() would send as it came (an upsert: an
 * identity mapping, compact data, no top-level Airbyte member, non-empty
 * strings as external_id and brand): then it is copied without a tree. */
bool crm_record_as_it_came(const struct ab_mapping *m, const struct ab_record *rec, enum crm_op op)
{
    return op == CRM_UPSERT && rec->members && rec->data_compact &&
           member_string(rec, ab_record_member(rec, "external_id")) &&
           member_string(rec, ab_record_member(rec, "brand")) &&
           ab_mapping_verbatim_members(m, rec->data_text, rec->members, rec->nmembers, NULL, NULL);
}

enum ab_status crm_build_record(const struct ab_mapping *m, yajl_val data, const char *text,
                                size_t len, bool compact, const char *brand, enum crm_op op,
                                struct ab_buf *out, bool *verbatim, struct ab_buf *errors,
                                struct ab_error *err)
{
    size_t mark = out->len;
    size_t emark = errors->len;
    bool bad = false;
    bool same = false;
    enum ab_status rc;

    if (op == CRM_DELETE) {
        rc = build_delete(m, data, brand, out, errors, &bad, err);
    } else {
        yajl_val br = ab_mapping_get(m, data, "brand");

        rc = check_key(ab_mapping_get(m, data, "external_id"), "external_id", errors, &bad, err);
        if (rc == AB_OK) {
            rc = check_brand(br, brand, errors, &bad, err);
        }
        if (rc == AB_OK && !bad) {
            rc =
                ab_mapping_write_span(m, data, text, len, compact, "brand", brand, out, &same, err);
        }
    }
    if (verbatim) {
        *verbatim = same && rc == AB_OK && !bad;
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
