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

/* ---- answers ------------------------------------------------------------- */

/* The bytes a string of plain text holds: printable ASCII but '"' and '\\'
 * (what needs neither unescaping nor UTF-8 checks). */
static const unsigned char scan_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

static const unsigned char *scan_ws(const unsigned char *p, const unsigned char *e)
{
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) {
        p++;
    }
    return p;
}

/* After the next token, the character ch; NULL: another token. */
static const unsigned char *scan_char(const unsigned char *p, const unsigned char *e, char ch)
{
    p = scan_ws(p, e);
    return p < e && *p == (unsigned char)ch ? p + 1 : NULL;
}

const unsigned char *crm_plain_string_end(const unsigned char *p, const unsigned char *e)
{
    for (p++; p < e && scan_plain[*p]; p++) {
    }
    return p < e && *p == '"' ? p : NULL;
}

/* After the next token, a string of plain text (its text in text, len). */
static const unsigned char *scan_str(const unsigned char *p, const unsigned char *e,
                                     const char **text, size_t *len)
{
    const unsigned char *q;

    p = scan_ws(p, e);
    if (p >= e || *p != '"') {
        return NULL;
    }
    q = crm_plain_string_end(p, e);
    if (!q) {
        return NULL;
    }
    *text = (const char *)p + 1;
    *len = (size_t)(q - p - 1);
    return q + 1;
}

/* The result status named by text (len bytes); -1: none. */
static int scan_status(const char *text, size_t len)
{
    int k;

    for (k = 0; k < CRM_R_NRESULTS; k++) {
        const char *known = crm_result_names[k];

        /* strncmp stops at the end of a shorter name */
        if (known[0] == text[0] && strncmp(known, text, len) == 0 && known[len] == '\0') {
            return k;
        }
    }
    return -1;
}

static bool scan_is(const char *text, size_t len, const char *name, size_t name_len)
{
    return len == name_len && memcmp(text, name, len) == 0;
}

/* After the next token, one result, its status in *k (never a rejection). */
static const unsigned char *scan_result(const unsigned char *p, const unsigned char *e, int *k)
{
    static const char id_at[] = "{\"external_id\":\"";
    static const char brand_at[] = "\",\"brand\":\"";
    static const char status_at[] = "\",\"status\":\"";
    bool have_id = false;
    bool have_brand = false;
    const char *name;
    const char *val;
    size_t nlen;
    size_t vlen;

    *k = -1;
    p = scan_ws(p, e);
    /* the usual form, compact: {"external_id":"..",["brand":"..",]"status":".."} */
    if ((size_t)(e - p) > sizeof(id_at) && memcmp(p, id_at, sizeof(id_at) - 1) == 0) {
        const unsigned char *q = crm_plain_string_end(p + sizeof(id_at) - 2, e);

        if (q && (size_t)(e - q) > sizeof(brand_at) &&
            memcmp(q, brand_at, sizeof(brand_at) - 1) == 0) {
            q = crm_plain_string_end(q + sizeof(brand_at) - 2, e);
        }
        if (q && (size_t)(e - q) > sizeof(status_at) &&
            memcmp(q, status_at, sizeof(status_at) - 1) == 0) {
            const unsigned char *v = q + sizeof(status_at) - 2;
            const unsigned char *r = crm_plain_string_end(v, e);

            if (r && r + 1 < e && r[1] == '}') {
                *k = scan_status((const char *)v + 1, (size_t)(r - v - 1));
                return *k >= 0 && *k != CRM_R_REJECTED ? r + 2 : NULL;
            }
        }
    }
    /* any other: members one by one */
    p = scan_char(p, e, '{');
    while (p) {
        const unsigned char *q;

        p = scan_str(p, e, &name, &nlen);
        p = p ? scan_char(p, e, ':') : NULL;
        if (!p) {
            return NULL;
        }
        if (scan_is(name, nlen, "status", 6) && *k < 0) {
            p = scan_str(p, e, &val, &vlen);
            if (!p) {
                return NULL;
            }
            *k = scan_status(val, vlen);
            if (*k < 0 || *k == CRM_R_REJECTED) {
                return NULL; /* an error, or a rejection to record */
            }
        } else if ((scan_is(name, nlen, "external_id", 11) && !have_id) ||
                   (scan_is(name, nlen, "brand", 5) && !have_brand)) {
            if (nlen == 5) {
                have_brand = true;
            } else {
                have_id = true;
            }
            p = scan_ws(p, e);
            if (e - p >= 4 && memcmp(p, "null", 4) == 0) {
                p += 4;
            } else {
                p = scan_str(p, e, &val, &vlen);
                if (!p) {
                    return NULL;
                }
            }
        } else {
            return NULL;
        }
        q = scan_char(p, e, ',');
        if (!q) {
            break;
        }
        p = q;
    }
    p = p ? scan_char(p, e, '}') : NULL;
    return p && *k >= 0 ? p : NULL;
}

/* After the next token, an array of exactly n results, counted. */
static const unsigned char *scan_results(const unsigned char *p, const unsigned char *e, size_t n,
                                         uint64_t counts[CRM_R_NRESULTS])
{
    size_t got = 0;
    const unsigned char *q;

    p = scan_char(p, e, '[');
    q = p ? scan_char(p, e, ']') : NULL;
    if (q) {
        return n == 0 ? q : NULL;
    }
    while (p && got < n) {
        int k;

        p = scan_result(p, e, &k);
        if (!p) {
            return NULL;
        }
        counts[k]++;
        got++;
        q = scan_char(p, e, ',');
        if (!q) {
            break;
        }
        p = q;
    }
    /* got < n: too few results; a ',' after the nth: too many */
    return p && got == n && !q ? scan_char(p, e, ']') : NULL;
}

bool crm_answer_scan(const char *text, size_t len, size_t n, struct crm_answer_scan *out)
{
    const unsigned char *p = (const unsigned char *)text;
    const unsigned char *e = p + len;
    struct crm_answer_scan a;
    bool have_results = false;
    bool have_committed = false;
    const char *name;
    const char *val;
    size_t nlen;
    size_t vlen;

    memset(&a, 0, sizeof(a));
    p = text ? scan_char(p, e, '{') : NULL;
    while (p) {
        const unsigned char *q;

        p = scan_str(p, e, &name, &nlen);
        p = p ? scan_char(p, e, ':') : NULL;
        if (!p) {
            return false;
        }
        if (scan_is(name, nlen, "results", 7) && !have_results) {
            have_results = true;
            p = scan_results(p, e, n, a.counts);
        } else if (scan_is(name, nlen, "batch_id", 8) && !a.batch_id) {
            p = scan_str(p, e, &a.batch_id, &a.batch_id_len);
        } else if (scan_is(name, nlen, "committed_at", 12) && !have_committed) {
            have_committed = true;
            p = scan_str(p, e, &val, &vlen);
        } else {
            return false;
        }
        if (!p) {
            return false;
        }
        q = scan_char(p, e, ',');
        if (!q) {
            break;
        }
        p = q;
    }
    p = p ? scan_char(p, e, '}') : NULL;
    if (!p || !have_results || scan_ws(p, e) != e) {
        return false;
    }
    *out = a;
    return true;
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
 * strings as external_id and brand): then it is copied without a tree.
 * One pass over the members, which also finds "tags". */
bool crm_record_as_it_came(const struct ab_mapping *m, const struct ab_record *rec, enum crm_op op,
                           const struct ab_json_member **tags)
{
    const struct ab_json_member *id = NULL;
    const struct ab_json_member *brand = NULL;
    const struct ab_json_member *t = NULL;
    size_t i;

    if (tags) {
        *tags = NULL;
    }
    if (op != CRM_UPSERT || !rec->members || !rec->data_compact || !m->identity ||
        !rec->data_text || rec->nmembers == 0) {
        return false;
    }
    for (i = 0; i < rec->nmembers; i++) {
        const struct ab_json_member *mb = &rec->members[i];
        const char *k = rec->data_text + mb->name_off;
        size_t len = mb->name_len;

        if (k[0] == '_' && ((len >= 4 && memcmp(k, "_ab_", 4) == 0) ||
                            (len >= 9 && memcmp(k, "_airbyte_", 9) == 0))) {
            return false; /* Airbyte's own: the mapping leaves it out */
        }
        if (len == 11 && !id && memcmp(k, "external_id", 11) == 0) {
            id = mb;
        } else if (len == 5 && !brand && memcmp(k, "brand", 5) == 0) {
            brand = mb;
        } else if (len == 4 && !t && memcmp(k, "tags", 4) == 0) {
            t = mb;
        }
    }
    if (!member_string(rec, id) || !member_string(rec, brand)) {
        return false;
    }
    if (tags) {
        *tags = t;
    }
    return true;
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
