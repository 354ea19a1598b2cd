/* rules.c - destination-shops: the item rules of the Shops contract, checked locally. */
/* SPDX-License-Identifier: MIT */
#include "rules.h"

#include <stdio.h>
#include <string.h>

#include <strings.h>

#include "ab/json.h"
#include "ab/pager.h"

/*
 * shared/api/shops.md, "Items": the product and inventory tables, with the
 * emulator's README (integration/emulators/README-shops.md, "Item rules
 * where the tables are silent") for what they leave open: null counts as
 * absent; an empty required string is missing_field, an empty optional one
 * that must hold characters invalid_format; lengths count code points
 * (description: UTF-8 bytes); a sku's characters are checked before its
 * length; prices are "-?digits[.d[d]]", negative non-zero or more than 15
 * integer digits out_of_range; currency three upper-case letters; images
 * https URLs of printable ASCII; quantity a JSON integer. One error per
 * field, in the order of the tables.
 */

enum kind {
    K_SKU,      /* [A-Za-z0-9._-], max characters */
    K_TEXT,     /* a string of min..max characters (bytes when .bytes) */
    K_DECIMAL,  /* a price: decimal string >= 0, <= 2 fraction digits */
    K_CURRENCY, /* [A-Z]{3} */
    K_OBJECT,
    K_URLS, /* an array of at most max https URLs */
    K_BOOL,
    K_QUANTITY, /* a JSON integer 0..max */
    K_TIME      /* RFC 3339 with seconds and an offset */
};

struct rule {
    const char *field;
    enum kind kind;
    bool required;
    size_t min;
    unsigned long long max; /* 0: none */
    bool bytes;
    const char *at_least; /* K_DECIMAL: not below this field's value */
};

#define MAX_SKU_CHARS         64
#define MAX_TITLE_CHARS       256
#define MAX_DESCRIPTION_BYTES (64 * 1024)
#define MAX_IMAGES            20
#define MAX_LOCATION_CHARS    64
#define MAX_QUANTITY          1000000000ULL
#define MAX_PRICE_INT_DIGITS  15

static const struct rule product_rules[] = {
    {"sku", K_SKU, true, 1, MAX_SKU_CHARS, false, NULL},
    {"parent_sku", K_SKU, false, 1, MAX_SKU_CHARS, false, NULL},
    {"brand", K_TEXT, true, 1, 0, false, NULL},
    {"title", K_TEXT, true, 1, MAX_TITLE_CHARS, false, NULL},
    {"description", K_TEXT, false, 0, MAX_DESCRIPTION_BYTES, true, NULL},
    {"price", K_DECIMAL, true, 0, 0, false, NULL},
    {"compare_at_price", K_DECIMAL, false, 0, 0, false, "price"},
    {"currency", K_CURRENCY, true, 0, 0, false, NULL},
    {"attributes", K_OBJECT, false, 0, 0, false, NULL},
    {"images", K_URLS, false, 0, MAX_IMAGES, false, NULL},
    {"active", K_BOOL, false, 0, 0, false, NULL},
    {"updated_at", K_TIME, true, 0, 0, false, NULL},
};

static const struct rule inventory_rules[] = {
    {"sku", K_SKU, true, 1, MAX_SKU_CHARS, false, NULL},
    {"location", K_TEXT, false, 1, MAX_LOCATION_CHARS, false, NULL},
    {"quantity", K_QUANTITY, true, 0, MAX_QUANTITY, false, NULL},
    {"updated_at", K_TIME, true, 0, 0, false, NULL},
};

static const struct {
    const struct rule *rules;
    size_t n;
} tables[] = {
    {product_rules, sizeof(product_rules) / sizeof(product_rules[0])},
    {inventory_rules, sizeof(inventory_rules) / sizeof(inventory_rules[0])},
};

static const char target_only[] =
    "unknown_sku (an inventory sku must name a product the channel stores or the same import "
    "applies, checked at commit), unknown_parent (the same for a product's parent_sku), and "
    "each item's outcome (applied, unchanged when its updated_at is older than the stored one "
    "or its content equal, deactivated by a replace import), and any rule Shops applies beyond "
    "its contract (rejected at part upload)";

const char *shp_rules_target_only(void)
{
    return target_only;
}

void shp_rules_local_fields(unsigned obj, char *out, size_t size)
{
    size_t len = 0;

    if (size == 0) {
        return;
    }
    out[0] = '\0';
    if (obj >= sizeof(tables) / sizeof(tables[0])) {
        return;
    }
    for (size_t i = 0; i < tables[obj].n && len < size; i++) {
        int k = snprintf(out + len, size - len, "%s%s", i ? ", " : "", tables[obj].rules[i].field);

        if (k < 0) {
            return;
        }
        len += (size_t)k;
    }
}

yajl_val shp_item_field(void *arg, const char *field)
{
    return ab_json_get((yajl_val)arg, field);
}

/* ---- checks ----------------------------------------------------------------- */

struct check {
    struct ab_buf *errors;
    struct ab_error *err;
    enum ab_status rc;
};

static void problem(struct check *c, const char *field, const char *code, const char *message)
{
    enum ab_status rc;

    if (c->rc != AB_OK) {
        return;
    }
    rc = ab_buf_adds(c->errors, c->errors->len ? ",{\"field\":" : "[{\"field\":", c->err);
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(c->errors, field, c->err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_printf(c->errors, c->err, ",\"code\":\"%s\",\"message\":", code);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(c->errors, message, c->err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(c->errors, '}', c->err);
    }
    c->rc = rc;
}

/* Unicode code points of a UTF-8 string (the intake accepts valid UTF-8 only). */
static size_t chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++) {
        n += ((unsigned char)*s & 0xC0) != 0x80;
    }
    return n;
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_upper(char ch)
{
    return ch >= 'A' && ch <= 'Z';
}

static bool is_alnum(char ch)
{
    return is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i])) {
            return false;
        }
    }
    return true;
}

/* https://host[:port][(/|?|#)printable ASCII], the scheme of either case;
 * host: letters, digits, '.', '-' starting and ending with a letter or
 * digit, or [an IPv6 literal]; port 1 to 5 digits. */
static bool https_url(const char *s)
{
    const char *p = s;
    const char *h;

    if (strncasecmp(p, "https://", 8) != 0) {
        return false;
    }
    p += 8;
    if (*p == '[') {
        h = ++p;
        while (*p && (is_digit(*p) || strchr("abcdefABCDEF:.", *p) != NULL)) {
            p++;
        }
        if (p == h || *p != ']') {
            return false;
        }
        p++;
    } else {
        h = p;
        while (is_alnum(*p) || *p == '.' || *p == '-') {
            p++;
        }
        if (p == h || !is_alnum(h[0]) || !is_alnum(p[-1])) {
            return false;
        }
    }
    if (*p == ':') {
        h = ++p;
        while (is_digit(*p)) {
            p++;
        }
        if (p == h || p - h > 5) {
            return false;
        }
    }
    if (*p == '\0') {
        return true;
    }
    if (*p != '/' && *p != '?' && *p != '#') {
        return false;
    }
    for (p++; *p; p++) {
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7E) {
            return false;
        }
    }
    return true;
}

/* A price in cents into *cents: 1 valid, 0 bad format, -1 out of range
 * (negative non-zero, or more than 15 integer digits). */
static int decimal(const char *s, long long *cents)
{
    const char *p = s;
    bool neg = *p == '-';
    const char *whole;
    long long v = 0;
    size_t sig;

    p += neg;
    whole = p;
    while (is_digit(*p)) {
        p++;
    }
    if (p == whole) {
        return 0;
    }
    while (*whole == '0' && whole < p) {
        whole++;
    }
    sig = (size_t)(p - whole);
    for (const char *q = whole; q < p && sig <= MAX_PRICE_INT_DIGITS; q++) {
        v = v * 10 + (*q - '0');
    }
    v *= 100;
    if (*p == '.') {
        p++;
        if (!is_digit(*p)) {
            return 0;
        }
        v += (*p++ - '0') * 10;
        if (is_digit(*p)) {
            v += *p++ - '0';
        }
    }
    if (*p) {
        return 0;
    }
    if (sig > MAX_PRICE_INT_DIGITS || (neg && v != 0)) {
        return -1;
    }
    *cents = v;
    return 1;
}

/* -?digits, as JSON writes an integer: 1 in range, 0 not an integer, -1 out
 * of 0..max. */
static int integer(yajl_val v, unsigned long long max)
{
    const char *s = v->u.number.r;
    const char *p;
    unsigned long long n = 0;

    if (!s) {
        return 0;
    }
    p = s + (*s == '-');
    if (!*p || !digits(p, strlen(p))) {
        return 0;
    }
    if (*s == '-') {
        return strspn(p, "0") == strlen(p) ? 1 : -1;
    }
    if (strlen(p) > 19) {
        return -1;
    }
    for (; *p; p++) {
        n = n * 10 + (unsigned long long)(*p - '0');
    }
    return n <= max ? 1 : -1;
}

/* The length of s when it is only [A-Za-z0-9._-], else 0. */
static size_t sku_chars(const char *s)
{
    const char *p = s;

    while (is_alnum(*p) || *p == '.' || *p == '_' || *p == '-') {
        p++;
    }
    return *p ? 0 : (size_t)(p - s);
}

static void sku_rule(struct check *c, const struct rule *r, const char *s)
{
    char msg[96];
    size_t n = sku_chars(s);

    if (n == 0) {
        (void)snprintf(msg, sizeof(msg), "%s must use only A-Z a-z 0-9 - _ .", r->field);
        problem(c, r->field, "invalid_format", msg);
    } else if (n > r->max) {
        (void)snprintf(msg, sizeof(msg), "%s must be at most %llu characters", r->field, r->max);
        problem(c, r->field, "too_long", msg);
    }
}

static void text_rule(struct check *c, const struct rule *r, const char *s)
{
    char msg[96];

    if (!*s && r->min > 0) {
        (void)snprintf(msg, sizeof(msg), "%s must be %zu-%llu characters", r->field, r->min,
                       r->max);
        problem(c, r->field, "invalid_format", msg);
    } else if (r->max && (r->bytes ? strlen(s) : chars(s)) > r->max) {
        (void)snprintf(msg, sizeof(msg), "%s must be at most %llu %s", r->field, r->max,
                       r->bytes ? "bytes" : "characters");
        problem(c, r->field, "too_long", msg);
    }
}

static void urls_rule(struct check *c, const struct rule *r, yajl_val v)
{
    char field[64];
    char msg[96];

    if (v->type != yajl_t_array) {
        problem(c, r->field, "invalid_type", "images must be an array of strings");
        return;
    }
    if (v->u.array.len > r->max) {
        (void)snprintf(msg, sizeof(msg), "images must have at most %llu entries", r->max);
        problem(c, r->field, "out_of_range", msg);
        return;
    }
    for (size_t i = 0; i < v->u.array.len; i++) {
        yajl_val u = v->u.array.values[i];

        bool str = u->type == yajl_t_string;

        if (!str || !https_url(u->u.string)) {
            (void)snprintf(field, sizeof(field), "%s[%zu]", r->field, i);
            problem(c, field, str ? "invalid_format" : "invalid_type",
                    str ? "image must be an https URL" : "image must be a string");
        }
    }
}

/* One rule; *cents gets a valid decimal's value (else -1). */
static void check_rule(struct check *c, const struct rule *r, yajl_val v, shp_field_fn get,
                       void *arg, long long *cents)
{
    char msg[128];
    bool empty = v && v->type == yajl_t_string && !*v->u.string;
    const char *want = r->kind == K_DECIMAL    ? "a decimal string such as \"19.90\""
                       : r->kind == K_OBJECT   ? "an object"
                       : r->kind == K_BOOL     ? "a boolean"
                       : r->kind == K_QUANTITY ? "an integer"
                                               : "a string";
    bool type_ok;
    int k;

    *cents = -1;
    if (ab_json_is_null(v) || (r->required && empty)) {
        if (r->required) {
            (void)snprintf(msg, sizeof(msg), "%s is required", r->field);
            problem(c, r->field, "missing_field", msg);
        }
        return;
    }
    switch (r->kind) {
    case K_OBJECT:
        type_ok = v->type == yajl_t_object;
        break;
    case K_BOOL:
        type_ok = v->type == yajl_t_true || v->type == yajl_t_false;
        break;
    case K_QUANTITY:
        type_ok = v->type == yajl_t_number && integer(v, r->max) != 0;
        break;
    case K_URLS:
        type_ok = true; /* urls_rule() says what is wrong */
        break;
    default:
        type_ok = v->type == yajl_t_string;
        break;
    }
    if (!type_ok) {
        (void)snprintf(msg, sizeof(msg), "%s must be %s", r->field, want);
        problem(c, r->field, "invalid_type", msg);
        return;
    }
    switch (r->kind) {
    case K_SKU:
        sku_rule(c, r, v->u.string);
        break;
    case K_TEXT:
        text_rule(c, r, v->u.string);
        break;
    case K_DECIMAL:
        k = decimal(v->u.string, cents);
        if (k == 0) {
            (void)snprintf(msg, sizeof(msg), "%s must be a decimal with at most 2 fraction digits",
                           r->field);
            problem(c, r->field, "invalid_format", msg);
        } else if (k < 0) {
            (void)snprintf(msg, sizeof(msg), "%s must be >= 0 with at most %d integer digits",
                           r->field, MAX_PRICE_INT_DIGITS);
            problem(c, r->field, "out_of_range", msg);
        } else if (r->at_least) {
            yajl_val o = get(arg, r->at_least);
            long long floor = -1;

            if (!ab_json_is_null(o) && o->type == yajl_t_string &&
                decimal(o->u.string, &floor) == 1 && *cents < floor) {
                (void)snprintf(msg, sizeof(msg), "%s must be >= %s", r->field, r->at_least);
                problem(c, r->field, "out_of_range", msg);
            }
        }
        break;
    case K_CURRENCY:
        if (!(is_upper(v->u.string[0]) && is_upper(v->u.string[1]) && is_upper(v->u.string[2]) &&
              v->u.string[3] == '\0')) {
            problem(c, r->field, "invalid_format",
                    "currency must be an ISO 4217 code such as BRL (three upper-case letters)");
        }
        break;
    case K_URLS:
        urls_rule(c, r, v);
        break;
    case K_QUANTITY:
        if (integer(v, r->max) < 0) {
            (void)snprintf(msg, sizeof(msg), "%s must be between 0 and %llu", r->field, r->max);
            problem(c, r->field, "out_of_range", msg);
        }
        break;
    case K_TIME:
        if (!ab_rfc3339_valid(v->u.string)) {
            (void)snprintf(msg, sizeof(msg), "%s must be an RFC 3339 date-time with offset",
                           r->field);
            problem(c, r->field, "invalid_format", msg);
        }
        break;
    default:
        break;
    }
}

enum ab_status shp_check_item(unsigned obj, shp_field_fn get, void *arg, struct ab_buf *errors,
                              struct ab_error *err)
{
    struct check c = {errors, err, AB_OK};
    long long cents;

    ab_buf_reset(errors);
    if (obj >= sizeof(tables) / sizeof(tables[0])) {
        return ab_error_set(err, AB_ERR_INTERNAL, "no item rules for object %u", obj);
    }
    for (size_t i = 0; i < tables[obj].n && c.rc == AB_OK; i++) {
        const struct rule *r = &tables[obj].rules[i];

        check_rule(&c, r, get(arg, r->field), get, arg, &cents);
    }
    if (c.rc == AB_OK && errors->len) {
        c.rc = ab_buf_addc(errors, ']', err);
    }
    return c.rc;
}
