/* rules.c - destination-crm360: CRM360's field rules, checked locally by a dry run. */
/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "ab/json.h"
#include "ab/pager.h"

#include "crm360_int.h"

/*
 * The record rules of docs/api/crm360.md ("Records", "Details" 6-9), with
 * the same fields and codes CRM360 answers. One rule is not local:
 * unknown_customer (an order whose customer does not exist when its batch
 * is applied) depends on what CRM360 holds; so do the per-record outcomes
 * (created, updated, unchanged, stale, not_found).
 */

#define MAX_TAGS              50
#define MAX_TAG_CHARS         64
#define MAX_ATTRIBUTES_BYTES  (16 * 1024)
#define MIN_ITEMS             1
#define MAX_ITEMS             500
#define MAX_QUANTITY          2147483647LL
#define MAX_EMAIL_CHARS       254
#define MAX_EMAIL_LOCAL_CHARS 64

struct rules {
    struct ab_buf *errors;
    struct ab_error *err;
    enum ab_status rc;
    char field[96];
};

static void problem(struct rules *r, const char *field, const char *code, const char *message)
{
    if (r->rc == AB_OK) {
        r->rc = crm_add_problem(r->errors, field, code, message, r->err);
    }
}

/* Unicode code points of a valid UTF-8 string. */
static size_t chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++) {
        n += ((unsigned char)*s & 0xC0) != 0x80;
    }
    return n;
}

static const char *req_string(struct rules *r, yajl_val rec, const char *key, size_t max,
                              const char *field)
{
    yajl_val v = ab_json_get(rec, key);
    char msg[64];

    field = field ? field : key;
    if (ab_json_is_null(v) || (v->type == yajl_t_string && !*v->u.string)) {
        problem(r, field, "missing_field", "is required");
        return NULL;
    }
    if (v->type != yajl_t_string) {
        problem(r, field, "invalid_type", "must be a string");
        return NULL;
    }
    if (max && chars(v->u.string) > max) {
        (void)snprintf(msg, sizeof(msg), "must be at most %zu characters", max);
        problem(r, field, "too_long", msg);
        return NULL;
    }
    return v->u.string;
}

static const char *opt_string(struct rules *r, yajl_val rec, const char *key, size_t max)
{
    yajl_val v = ab_json_get(rec, key);

    if (ab_json_is_null(v)) {
        return NULL;
    }
    return req_string(r, rec, key, max, NULL);
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

static void time_field(struct rules *r, yajl_val rec, const char *key, bool required)
{
    yajl_val v = ab_json_get(rec, key);

    if (ab_json_is_null(v) || (required && v->type == yajl_t_string && !*v->u.string)) {
        if (required) {
            problem(r, key, "missing_field", "is required");
        }
        return;
    }
    if (v->type != yajl_t_string) {
        problem(r, key, "invalid_type", "must be an RFC 3339 string");
    } else if (!ab_rfc3339_valid(v->u.string)) {
        problem(r, key, "invalid_format",
                "not an RFC 3339 date-time (needs T, seconds and an offset)");
    }
}

static bool atext(int c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+/=?^_`{|}~-", c));
}

static bool email_ok(const char *s)
{
    const char *at = strchr(s, '@');
    const char *p;
    const char *label;
    const char *last;

    if (!at || chars(s) > MAX_EMAIL_CHARS || at - s > MAX_EMAIL_LOCAL_CHARS || at == s) {
        return false;
    }
    /* local: atoms joined by single dots */
    for (p = s; p < at; p++) {
        if (*p == '.') {
            if (p == s || p[-1] == '.' || p + 1 == at) {
                return false;
            }
        } else if (!atext((unsigned char)*p)) {
            return false;
        }
    }
    /* domain: labels of [A-Za-z0-9-] (no leading/trailing '-', <= 63), at
     * least two; the last is letters (2-63) or xn--... */
    label = at + 1;
    last = strrchr(label, '.');
    if (!last || !*label) {
        return false;
    }
    for (p = label;; p++) {
        if (*p == '.' || *p == '\0') {
            size_t n = (size_t)(p - label);

            if (n == 0 || n > 63 || label[0] == '-' || p[-1] == '-') {
                return false;
            }
            if (*p == '\0') {
                break;
            }
            label = p + 1;
        } else if (!isalnum((unsigned char)*p) && *p != '-') {
            return false;
        } else if ((unsigned char)*p >= 0x80) {
            return false;
        }
    }
    label = last + 1;
    if (strncmp(label, "xn--", 4) == 0) {
        return strlen(label) >= 5 && strlen(label) <= 63;
    }
    for (p = label; *p; p++) {
        if (!isalpha((unsigned char)*p)) {
            return false;
        }
    }
    return p - label >= 2 && p - label <= 63;
}

static bool e164_ok(const char *s)
{
    size_t n = strlen(s);

    return s[0] == '+' && n >= 8 && n <= 16 && s[1] >= '1' && s[1] <= '9' && digits(s + 1, n - 1);
}

static bool document_ok(const char *s)
{
    static const int w1[] = {5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2};
    static const int w2[] = {6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2};
    size_t n = strlen(s);
    size_t i;
    int sum;

    if ((n != 11 && n != 14) || !digits(s, n) || strspn(s, (char[]){s[0], 0}) == n) {
        return false;
    }
    if (n == 11) {
        for (int k = 9; k <= 10; k++) {
            sum = 0;
            for (i = 0; i < (size_t)k; i++) {
                sum += (s[i] - '0') * (k + 1 - (int)i);
            }
            if (sum * 10 % 11 % 10 != s[k] - '0') {
                return false;
            }
        }
        return true;
    }
    sum = 0;
    for (i = 0; i < 12; i++) {
        sum += (s[i] - '0') * w1[i];
    }
    if ((sum % 11 < 2 ? 0 : 11 - sum % 11) != s[12] - '0') {
        return false;
    }
    sum = 0;
    for (i = 0; i < 13; i++) {
        sum += (s[i] - '0') * w2[i];
    }
    return (sum % 11 < 2 ? 0 : 11 - sum % 11) == s[13] - '0';
}

/* -?digits[.d[d]]: 1 valid, 0 bad format, -1 negative. */
static int decimal(const char *s)
{
    const char *p = s;
    bool neg = *p == '-';

    p += neg;
    if (!isdigit((unsigned char)*p)) {
        return 0;
    }
    while (isdigit((unsigned char)*p)) {
        p++;
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) {
            return 0;
        }
        p++;
        if (isdigit((unsigned char)*p)) {
            p++;
        }
    }
    if (*p) {
        return 0;
    }
    if (neg && strspn(s + 1, "0.") != strlen(s + 1)) {
        return -1;
    }
    return 1;
}

static void decimal_field(struct rules *r, yajl_val rec, const char *key, const char *field)
{
    yajl_val v = ab_json_get(rec, key);
    int k;

    if (ab_json_is_null(v) || (v->type == yajl_t_string && !*v->u.string)) {
        problem(r, field, "missing_field", "is required");
        return;
    }
    if (v->type != yajl_t_string) {
        problem(r, field, "invalid_type", "must be a decimal string such as \"199.90\"");
        return;
    }
    k = decimal(v->u.string);
    if (k == 0) {
        problem(r, field, "invalid_format", "must be a decimal with at most 2 fraction digits");
    } else if (k < 0) {
        problem(r, field, "out_of_range", "must be >= 0");
    }
}

static void tags_field(struct rules *r, yajl_val rec)
{
    yajl_val v = ab_json_get(rec, "tags");
    char field[32];

    if (ab_json_is_null(v)) {
        return;
    }
    if (v->type != yajl_t_array) {
        problem(r, "tags", "invalid_type", "must be an array of strings");
        return;
    }
    if (v->u.array.len > MAX_TAGS) {
        problem(r, "tags", "out_of_range", "at most 50 tags");
        return;
    }
    for (size_t i = 0; i < v->u.array.len; i++) {
        yajl_val t = v->u.array.values[i];

        (void)snprintf(field, sizeof(field), "tags[%zu]", i);
        if (t->type != yajl_t_string) {
            problem(r, field, "invalid_type", "must be a string");
        } else if (chars(t->u.string) > MAX_TAG_CHARS) {
            problem(r, field, "too_long", "must be at most 64 characters");
        }
    }
}

static void attributes_field(struct rules *r, yajl_val rec)
{
    yajl_val v = ab_json_get(rec, "attributes");
    struct ab_buf text;
    char msg[96];

    if (ab_json_is_null(v)) {
        return;
    }
    if (v->type != yajl_t_object) {
        problem(r, "attributes", "invalid_type", "must be an object");
        return;
    }
    ab_buf_init(&text, AB_BUF_UNBOUNDED);
    if (ab_json_write(&text, v, r->err) != AB_OK) {
        r->rc = r->err->code;
    } else if (text.len > MAX_ATTRIBUTES_BYTES) {
        (void)snprintf(msg, sizeof(msg), "serialized size %zu exceeds %d bytes", text.len,
                       MAX_ATTRIBUTES_BYTES);
        problem(r, "attributes", "too_long", msg);
    }
    ab_buf_release(&text);
}

static void items_field(struct rules *r, yajl_val rec)
{
    yajl_val v = ab_json_get(rec, "items");
    char field[64];

    if (ab_json_is_null(v)) {
        problem(r, "items", "missing_field", "is required");
        return;
    }
    if (v->type != yajl_t_array) {
        problem(r, "items", "invalid_type", "must be an array");
        return;
    }
    if (v->u.array.len < MIN_ITEMS || v->u.array.len > MAX_ITEMS) {
        problem(r, "items", "out_of_range", "must have 1 to 500 items");
        return;
    }
    for (size_t i = 0; i < v->u.array.len; i++) {
        yajl_val it = v->u.array.values[i];
        yajl_val q;

        if (it->type != yajl_t_object) {
            (void)snprintf(field, sizeof(field), "items[%zu]", i);
            problem(r, field, "invalid_type", "must be an object");
            continue;
        }
        (void)snprintf(field, sizeof(field), "items[%zu].sku", i);
        (void)req_string(r, it, "sku", 0, field);
        (void)snprintf(field, sizeof(field), "items[%zu].quantity", i);
        q = ab_json_get(it, "quantity");
        if (ab_json_is_null(q)) {
            problem(r, field, "missing_field", "is required");
        } else if (!YAJL_IS_INTEGER(q)) {
            problem(r, field, "invalid_type", "must be an integer");
        } else if (YAJL_GET_INTEGER(q) < 1 || YAJL_GET_INTEGER(q) > MAX_QUANTITY) {
            problem(r, field, "out_of_range", "must be between 1 and 2147483647");
        }
        (void)snprintf(field, sizeof(field), "items[%zu].unit_price", i);
        decimal_field(r, it, "unit_price", field);
    }
}

enum ab_status crm_check_rules(enum crm_object obj, enum crm_op op, yajl_val rec,
                               struct ab_buf *errors, struct ab_error *err)
{
    static const char *const statuses[] = {"pending",   "paid",     "shipped", "delivered",
                                           "cancelled", "returned", NULL};
    struct rules r = {errors, err, AB_OK, ""};
    const char *s;

    if (rec->type != yajl_t_object) {
        problem(&r, "", "invalid_type", "record must be an object");
        return r.rc;
    }
    (void)req_string(&r, rec, "external_id", 128, NULL);
    (void)req_string(&r, rec, "brand", 64, NULL);
    if (op == CRM_DELETE) {
        time_field(&r, rec, "deleted_at", true);
        return r.rc;
    }
    if (obj == CRM_CUSTOMERS) {
        s = req_string(&r, rec, "email", 0, NULL);
        if (s && !email_ok(s)) {
            problem(&r, "email", "invalid_format", "not an email address");
        }
        (void)opt_string(&r, rec, "name", 256);
        s = opt_string(&r, rec, "phone", 0);
        if (s && !e164_ok(s)) {
            problem(&r, "phone", "invalid_format", "not an E.164 phone number");
        }
        s = opt_string(&r, rec, "document", 0);
        if (s && !document_ok(s)) {
            problem(&r, "document", "invalid_format",
                    "not a valid CPF (11 digits) or CNPJ (14 digits)");
        }
        tags_field(&r, rec);
        attributes_field(&r, rec);
        time_field(&r, rec, "created_at", false);
        time_field(&r, rec, "updated_at", true);
        return r.rc;
    }
    (void)req_string(&r, rec, "customer_external_id", 128, NULL);
    s = req_string(&r, rec, "status", 0, NULL);
    if (s) {
        size_t i = 0;

        while (statuses[i] && strcmp(statuses[i], s) != 0) {
            i++;
        }
        if (!statuses[i]) {
            problem(&r, "status", "invalid_enum",
                    "must be one of pending, paid, shipped, delivered, cancelled, returned");
        }
    }
    s = req_string(&r, rec, "currency", 0, NULL);
    if (s && !(strlen(s) == 3 && isupper((unsigned char)s[0]) && isupper((unsigned char)s[1]) &&
               isupper((unsigned char)s[2]))) {
        problem(&r, "currency", "invalid_format",
                "must be an upper-case ISO 4217 code such as BRL");
    }
    decimal_field(&r, rec, "total", "total");
    items_field(&r, rec);
    time_field(&r, rec, "placed_at", true);
    time_field(&r, rec, "updated_at", true);
    return r.rc;
}
