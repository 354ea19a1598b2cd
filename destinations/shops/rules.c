/* rules.c - destination-shops: the item rules of the Shops contract, checked locally. */
/* SPDX-License-Identifier: MIT */
#include "rules.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <strings.h>

#include "ab/assert.h"
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
    size_t flen; /* strlen(field) */
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

/* A field's name and its length. */
#define F(name) name, sizeof(name) - 1

static const struct rule product_rules[] = {
    {F("sku"), K_SKU, true, 1, MAX_SKU_CHARS, false, NULL},
    {F("parent_sku"), K_SKU, false, 1, MAX_SKU_CHARS, false, NULL},
    {F("brand"), K_TEXT, true, 1, 0, false, NULL},
    {F("title"), K_TEXT, true, 1, MAX_TITLE_CHARS, false, NULL},
    {F("description"), K_TEXT, false, 0, MAX_DESCRIPTION_BYTES, true, NULL},
    {F("price"), K_DECIMAL, true, 0, 0, false, NULL},
    {F("compare_at_price"), K_DECIMAL, false, 0, 0, false, "price"},
    {F("currency"), K_CURRENCY, true, 0, 0, false, NULL},
    {F("attributes"), K_OBJECT, false, 0, 0, false, NULL},
    {F("images"), K_URLS, false, 0, MAX_IMAGES, false, NULL},
    {F("active"), K_BOOL, false, 0, 0, false, NULL},
    {F("updated_at"), K_TIME, true, 0, 0, false, NULL},
};

static const struct rule inventory_rules[] = {
    {F("sku"), K_SKU, true, 1, MAX_SKU_CHARS, false, NULL},
    {F("location"), K_TEXT, false, 1, MAX_LOCATION_CHARS, false, NULL},
    {F("quantity"), K_QUANTITY, true, 0, MAX_QUANTITY, false, NULL},
    {F("updated_at"), K_TIME, true, 0, 0, false, NULL},
};

static const struct {
    const struct rule *rules;
    size_t n;
} tables[] = {
    {product_rules, sizeof(product_rules) / sizeof(product_rules[0])},
    {inventory_rules, sizeof(inventory_rules) / sizeof(inventory_rules[0])},
};

_Static_assert(sizeof(product_rules) / sizeof(product_rules[0]) <= SHP_MAX_RULES &&
                   sizeof(inventory_rules) / sizeof(inventory_rules[0]) <= SHP_MAX_RULES,
               "SHP_MAX_RULES holds every table");

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

/* ---- values ----------------------------------------------------------------- */

/* Times read from lazy text are copied to be NUL-terminated: up to this. */
#define TIME_TEXT_MAX 256

void shp_val_of_tree(yajl_val v, struct shp_val *out)
{
    memset(out, 0, sizeof(*out));
    if (!v) {
        return;
    }
    switch (v->type) {
    case yajl_t_string:
        out->type = SHP_V_STRING;
        out->s = v->u.string;
        out->len = strlen(v->u.string);
        out->nul_ended = true;
        break;
    case yajl_t_number:
        out->type = SHP_V_NUMBER;
        out->s = v->u.number.r;
        out->len = v->u.number.r ? strlen(v->u.number.r) : 0;
        out->nul_ended = true;
        break;
    case yajl_t_true:
        out->type = SHP_V_TRUE;
        break;
    case yajl_t_false:
        out->type = SHP_V_FALSE;
        break;
    case yajl_t_object:
        out->type = SHP_V_OBJECT;
        break;
    case yajl_t_array:
        out->type = SHP_V_ARRAY;
        out->tree = v;
        out->count = v->u.array.len;
        break;
    default:
        break; /* null */
    }
}

/* Field names are short: 4 to 16 bytes compared as two overlapping words. */
static inline bool same_bytes(const char *a, const char *b, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t x[4];

        memcpy(&x[0], a, 8);
        memcpy(&x[1], b, 8);
        memcpy(&x[2], a + n - 8, 8);
        memcpy(&x[3], b + n - 8, 8);
        return x[0] == x[1] && x[2] == x[3];
    }
    if (n >= 4 && n < 8) {
        uint32_t y[4];

        memcpy(&y[0], a, 4);
        memcpy(&y[1], b, 4);
        memcpy(&y[2], a + n - 4, 4);
        memcpy(&y[3], b + n - 4, 4);
        return y[0] == y[1] && y[2] == y[3];
    }
    if (n > 0 && n < 4) {
        return a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1];
    }
    return memcmp(a, b, n) == 0;
}

/* Whether rule r is named name (len bytes). */
static inline bool named(const struct rule *r, const char *name, size_t len)
{
    return r->flen == len && same_bytes(r->field, name, len);
}

/* The index of the rule of rules[0..n) named name (len bytes), or n;
 * hint: where to look first (members mostly come in the tables' order). */
static size_t rule_index(const struct rule *rules, size_t n, const char *name, size_t len,
                         size_t hint)
{
    for (size_t i = hint; i < n; i++) {
        if (named(&rules[i], name, len)) {
            return i;
        }
    }
    for (size_t i = 0; i < hint && i < n; i++) {
        if (named(&rules[i], name, len)) {
            return i;
        }
    }
    return n;
}

void shp_vals_of_object(unsigned obj, yajl_val o, struct shp_val vals[SHP_MAX_RULES])
{
    const struct rule *rules;
    size_t n;
    size_t hint = 0;

    memset(vals, 0, SHP_MAX_RULES * sizeof(*vals));
    if (obj >= sizeof(tables) / sizeof(tables[0]) || !o || o->type != yajl_t_object) {
        return;
    }
    rules = tables[obj].rules;
    n = tables[obj].n;
    for (size_t j = 0; j < o->u.object.len; j++) {
        const char *k = o->u.object.keys[j];
        size_t i = rule_index(rules, n, k, strlen(k), hint);

        if (i < n) {
            shp_val_of_tree(o->u.object.values[j], &vals[i]);
            hint = i + 1 < n ? i + 1 : 0;
        }
    }
}

void shp_vals_of_fields(unsigned obj, shp_field_fn get, void *arg,
                        struct shp_val vals[SHP_MAX_RULES])
{
    memset(vals, 0, SHP_MAX_RULES * sizeof(*vals));
    if (obj >= sizeof(tables) / sizeof(tables[0])) {
        return;
    }
    for (size_t i = 0; i < tables[obj].n; i++) {
        shp_val_of_tree(get(arg, tables[obj].rules[i].field), &vals[i]);
    }
}

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }
    return p;
}

/* The next string of a lazily read array of strings (the member holds no
 * escape: the lazy reader said so), from
 * *p (just after '[' or the previous item): its bytes in *s, *len; false
 * at the end, or at an item that is not such a string (*plain false). */
static bool next_plain_string(const char **p, const char *e, const char **s, size_t *len,
                              bool *plain)
{
    const char *q = skip_ws(*p, e);
    const char *end;

    *plain = true;
    if (q < e && *q == ',') {
        q = skip_ws(q + 1, e);
    }
    if (q >= e || *q == ']') {
        return false;
    }
    if (*q != '"') {
        *plain = false;
        return false;
    }
    end = memchr(q + 1, '"', (size_t)(e - q - 1)); /* no escape: its closing quote */
    if (!end) {
        *plain = false;
        return false;
    }
    *s = q + 1;
    *len = (size_t)(end - q - 1);
    *p = end + 1;
    return true;
}

/* A member's value text (t, n bytes: as the lazy reader kept it, escaped
 * when a string in it holds an escape) for rule r. */
static bool val_of_text(const struct rule *r, const char *t, size_t n, bool escaped,
                        struct shp_val *v)
{
    memset(v, 0, sizeof(*v));
    if (escaped) {
        return false; /* only the tree unescapes */
    }
    switch (t[0]) {
    case '"':
        if (n < 2) {
            return false;
        }
        v->type = SHP_V_STRING;
        v->s = t + 1;
        v->len = n - 2;
        return r->kind != K_TIME || v->len < TIME_TEXT_MAX;
    case 'n':
        return true;
    case 't':
        v->type = SHP_V_TRUE;
        return true;
    case 'f':
        v->type = SHP_V_FALSE;
        return true;
    case '{':
        v->type = SHP_V_OBJECT;
        return true;
    case '[':
        v->type = SHP_V_ARRAY;
        v->s = t;
        v->len = n;
        if (r->kind == K_URLS) {
            const char *p = t + 1;
            const char *s;
            size_t len;
            bool plain = true;

            while (next_plain_string(&p, t + n, &s, &len, &plain)) {
                v->count++;
            }
            return plain;
        }
        return true;
    default:
        v->type = SHP_V_NUMBER;
        v->s = t;
        v->len = n;
        return true;
    }
}

bool shp_vals_of_members(unsigned obj, const char *text, const struct ab_json_member *members,
                         size_t n, struct shp_val vals[SHP_MAX_RULES])
{
    const struct rule *rules;
    size_t nr;
    size_t hint = 0;

    if (obj >= sizeof(tables) / sizeof(tables[0]) || !text) {
        return false;
    }
    rules = tables[obj].rules;
    nr = tables[obj].n;
    for (size_t i = 0; i < nr; i++) {
        vals[i].type = SHP_V_NULL; /* absent: nothing else is read */
    }
    for (size_t j = 0; j < n; j++) {
        const struct ab_json_member *m = &members[j];
        const char *name = text + m->name_off;
        /* the hint inline: members mostly come in the tables' order */
        size_t i = named(&rules[hint], name, m->name_len)
                       ? hint
                       : rule_index(rules, nr, name, m->name_len, hint);

        if (i < nr) {
            if (m->val_len == 0 ||
                !val_of_text(&rules[i], text + m->val_off, m->val_len, m->escaped, &vals[i])) {
                return false;
            }
            hint = i + 1 < nr ? i + 1 : 0;
        }
    }
    return true;
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
static size_t chars(const char *s, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    return k;
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

static bool is_hex_or(char ch)
{
    return is_digit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F') || ch == ':' ||
           ch == '.';
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
 * digit, or [an IPv6 literal]; port 1 to 5 digits. s: n bytes. */
static bool https_url(const char *s, size_t n)
{
    const char *e = s + n;
    const char *p = s;
    const char *h;

    if (n < 8 || strncasecmp(p, "https://", 8) != 0) {
        return false;
    }
    p += 8;
    if (p < e && *p == '[') {
        h = ++p;
        while (p < e && is_hex_or(*p)) {
            p++;
        }
        if (p == h || p == e || *p != ']') {
            return false;
        }
        p++;
    } else {
        h = p;
        while (p < e && (is_alnum(*p) || *p == '.' || *p == '-')) {
            p++;
        }
        if (p == h || !is_alnum(h[0]) || !is_alnum(p[-1])) {
            return false;
        }
    }
    if (p < e && *p == ':') {
        h = ++p;
        while (p < e && is_digit(*p)) {
            p++;
        }
        if (p == h || p - h > 5) {
            return false;
        }
    }
    if (p == e) {
        return true;
    }
    if (*p != '/' && *p != '?' && *p != '#') {
        return false;
    }
    for (p++; p < e; p++) {
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7E) {
            return false;
        }
    }
    return true;
}

/* A price (n bytes) in cents into *cents: 1 valid, 0 bad format, -1 out of
 * range (negative non-zero, or more than 15 integer digits). */
static int decimal(const char *s, size_t n, long long *cents)
{
    const char *e = s + n;
    const char *p = s;
    bool neg = p < e && *p == '-';
    const char *whole;
    long long v = 0;
    size_t sig;

    p += neg;
    whole = p;
    while (p < e && is_digit(*p)) {
        p++;
    }
    if (p == whole) {
        return 0;
    }
    while (whole < p && *whole == '0') {
        whole++;
    }
    sig = (size_t)(p - whole);
    for (const char *q = whole; q < p && sig <= MAX_PRICE_INT_DIGITS; q++) {
        v = v * 10 + (*q - '0');
    }
    v *= 100;
    if (p < e && *p == '.') {
        p++;
        if (p == e || !is_digit(*p)) {
            return 0;
        }
        v += (*p++ - '0') * 10;
        if (p < e && is_digit(*p)) {
            v += *p++ - '0';
        }
    }
    if (p != e) {
        return 0;
    }
    if (sig > MAX_PRICE_INT_DIGITS || (neg && v != 0)) {
        return -1;
    }
    *cents = v;
    return 1;
}

/* -?digits, as JSON writes an integer (a number's text, n bytes): 1 in
 * range, 0 not an integer, -1 out of 0..max. */
static int integer(const char *s, size_t n, unsigned long long max)
{
    const char *p;
    size_t k;
    unsigned long long v = 0;

    if (!s || n == 0) {
        return 0;
    }
    p = s + (*s == '-');
    k = n - (size_t)(p - s);
    if (k == 0 || !digits(p, k)) {
        return 0;
    }
    if (*s == '-') {
        for (size_t i = 0; i < k; i++) {
            if (p[i] != '0') {
                return -1;
            }
        }
        return 1;
    }
    if (k > 19) {
        return -1;
    }
    for (size_t i = 0; i < k; i++) {
        v = v * 10 + (unsigned long long)(p[i] - '0');
    }
    return v <= max ? 1 : -1;
}

/* The bytes of a sku: [A-Za-z0-9._-]. */
static const bool sku_byte[256] = {
    ['-'] = true, ['.'] = true, ['0'] = true, ['1'] = true, ['2'] = true, ['3'] = true,
    ['4'] = true, ['5'] = true, ['6'] = true, ['7'] = true, ['8'] = true, ['9'] = true,
    ['A'] = true, ['B'] = true, ['C'] = true, ['D'] = true, ['E'] = true, ['F'] = true,
    ['G'] = true, ['H'] = true, ['I'] = true, ['J'] = true, ['K'] = true, ['L'] = true,
    ['M'] = true, ['N'] = true, ['O'] = true, ['P'] = true, ['Q'] = true, ['R'] = true,
    ['S'] = true, ['T'] = true, ['U'] = true, ['V'] = true, ['W'] = true, ['X'] = true,
    ['Y'] = true, ['Z'] = true, ['_'] = true, ['a'] = true, ['b'] = true, ['c'] = true,
    ['d'] = true, ['e'] = true, ['f'] = true, ['g'] = true, ['h'] = true, ['i'] = true,
    ['j'] = true, ['k'] = true, ['l'] = true, ['m'] = true, ['n'] = true, ['o'] = true,
    ['p'] = true, ['q'] = true, ['r'] = true, ['s'] = true, ['t'] = true, ['u'] = true,
    ['v'] = true, ['w'] = true, ['x'] = true, ['y'] = true, ['z'] = true,
};

/* The length of s (n bytes) when it is only [A-Za-z0-9._-], else 0. */
static size_t sku_chars(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!sku_byte[(unsigned char)s[i]]) {
            return 0;
        }
    }
    return n;
}

static void sku_rule(struct check *c, const struct rule *r, const struct shp_val *v)
{
    char msg[96];
    size_t n = sku_chars(v->s, v->len);

    if (n == 0) {
        (void)snprintf(msg, sizeof(msg), "%s must use only A-Z a-z 0-9 - _ .", r->field);
        problem(c, r->field, "invalid_format", msg);
    } else if (n > r->max) {
        (void)snprintf(msg, sizeof(msg), "%s must be at most %llu characters", r->field, r->max);
        problem(c, r->field, "too_long", msg);
    }
}

static void text_rule(struct check *c, const struct rule *r, const struct shp_val *v)
{
    char msg[96];

    /* no more characters than bytes: counted only past max bytes */
    if (v->len == 0 && r->min > 0) {
        (void)snprintf(msg, sizeof(msg), "%s must be %zu-%llu characters", r->field, r->min,
                       r->max);
        problem(c, r->field, "invalid_format", msg);
    } else if (r->max && v->len > r->max && (r->bytes ? v->len : chars(v->s, v->len)) > r->max) {
        (void)snprintf(msg, sizeof(msg), "%s must be at most %llu %s", r->field, r->max,
                       r->bytes ? "bytes" : "characters");
        problem(c, r->field, "too_long", msg);
    }
}

/* The array's items: a tree's nodes, or the strings of lazy text. */
static void urls_rule(struct check *c, const struct rule *r, const struct shp_val *v)
{
    char field[64];
    char msg[96];
    const char *p = v->tree ? NULL : v->s + 1;

    if (v->type != SHP_V_ARRAY) {
        problem(c, r->field, "invalid_type", "images must be an array of strings");
        return;
    }
    if (v->count > r->max) {
        (void)snprintf(msg, sizeof(msg), "images must have at most %llu entries", r->max);
        problem(c, r->field, "out_of_range", msg);
        return;
    }
    for (size_t i = 0; i < v->count; i++) {
        const char *s = NULL;
        size_t len = 0;
        bool str;

        if (v->tree) {
            yajl_val u = v->tree->u.array.values[i];

            str = u->type == yajl_t_string;
            if (str) {
                s = u->u.string;
                len = strlen(s);
            }
        } else {
            bool plain;

            str = next_plain_string(&p, v->s + v->len, &s, &len, &plain);
            AB_ASSERT(str); /* shp_vals_of_members() counted only such strings */
        }
        if (!str || !https_url(s, len)) {
            (void)snprintf(field, sizeof(field), "%s[%zu]", r->field, i);
            problem(c, field, str ? "invalid_format" : "invalid_type",
                    str ? "image must be an https URL" : "image must be a string");
        }
    }
}

static bool time_valid(const struct shp_val *v)
{
    char text[TIME_TEXT_MAX];

    if (v->nul_ended) {
        return ab_rfc3339_valid(v->s);
    }
    AB_ASSERT(v->len < sizeof(text)); /* shp_vals_of_members() took only such */
    memcpy(text, v->s, v->len);
    text[v->len] = '\0';
    return ab_rfc3339_valid(text);
}

/* One rule; *cents gets a valid decimal's value (else -1). vals: the
 * item's values, for a rule comparing with another field. */
static void check_rule(struct check *c, const struct rule *r, const struct shp_val *v,
                       const struct rule *rules, const struct shp_val *vals, size_t n,
                       long long *cents)
{
    char msg[128];
    bool empty = v->type == SHP_V_STRING && v->len == 0;
    bool type_ok;
    int k;
    int q = 0; /* K_QUANTITY: integer()'s answer */

    *cents = -1;
    if (v->type == SHP_V_NULL || (r->required && empty)) {
        if (r->required) {
            (void)snprintf(msg, sizeof(msg), "%s is required", r->field);
            problem(c, r->field, "missing_field", msg);
        }
        return;
    }
    switch (r->kind) {
    case K_OBJECT:
        type_ok = v->type == SHP_V_OBJECT;
        break;
    case K_BOOL:
        type_ok = v->type == SHP_V_TRUE || v->type == SHP_V_FALSE;
        break;
    case K_QUANTITY:
        q = v->type == SHP_V_NUMBER ? integer(v->s, v->len, r->max) : 0;
        type_ok = q != 0;
        break;
    case K_URLS:
        type_ok = true; /* urls_rule() says what is wrong */
        break;
    default:
        type_ok = v->type == SHP_V_STRING;
        break;
    }
    if (!type_ok) {
        const char *want = r->kind == K_DECIMAL    ? "a decimal string such as \"19.90\""
                           : r->kind == K_OBJECT   ? "an object"
                           : r->kind == K_BOOL     ? "a boolean"
                           : r->kind == K_QUANTITY ? "an integer"
                                                   : "a string";

        (void)snprintf(msg, sizeof(msg), "%s must be %s", r->field, want);
        problem(c, r->field, "invalid_type", msg);
        return;
    }
    switch (r->kind) {
    case K_SKU:
        sku_rule(c, r, v);
        break;
    case K_TEXT:
        text_rule(c, r, v);
        break;
    case K_DECIMAL:
        k = decimal(v->s, v->len, cents);
        if (k == 0) {
            (void)snprintf(msg, sizeof(msg), "%s must be a decimal with at most 2 fraction digits",
                           r->field);
            problem(c, r->field, "invalid_format", msg);
        } else if (k < 0) {
            (void)snprintf(msg, sizeof(msg), "%s must be >= 0 with at most %d integer digits",
                           r->field, MAX_PRICE_INT_DIGITS);
            problem(c, r->field, "out_of_range", msg);
        } else if (r->at_least) {
            size_t j = rule_index(rules, n, r->at_least, strlen(r->at_least), 0);
            long long floor = -1;

            AB_ASSERT(j < n);
            if (vals[j].type == SHP_V_STRING && decimal(vals[j].s, vals[j].len, &floor) == 1 &&
                *cents < floor) {
                (void)snprintf(msg, sizeof(msg), "%s must be >= %s", r->field, r->at_least);
                problem(c, r->field, "out_of_range", msg);
            }
        }
        break;
    case K_CURRENCY:
        if (!(v->len == 3 && is_upper(v->s[0]) && is_upper(v->s[1]) && is_upper(v->s[2]))) {
            problem(c, r->field, "invalid_format",
                    "currency must be an ISO 4217 code such as BRL (three upper-case letters)");
        }
        break;
    case K_URLS:
        urls_rule(c, r, v);
        break;
    case K_QUANTITY:
        if (q < 0) {
            (void)snprintf(msg, sizeof(msg), "%s must be between 0 and %llu", r->field, r->max);
            problem(c, r->field, "out_of_range", msg);
        }
        break;
    case K_TIME:
        if (!time_valid(v)) {
            (void)snprintf(msg, sizeof(msg), "%s must be an RFC 3339 date-time with offset",
                           r->field);
            problem(c, r->field, "invalid_format", msg);
        }
        break;
    default:
        break;
    }
}

enum ab_status shp_check_vals(unsigned obj, const struct shp_val *vals, struct ab_buf *errors,
                              struct ab_error *err)
{
    struct check c = {errors, err, AB_OK};
    long long cents;

    ab_buf_reset(errors);
    if (obj >= sizeof(tables) / sizeof(tables[0])) {
        return ab_error_set(err, AB_ERR_INTERNAL, "no item rules for object %u", obj);
    }
    for (size_t i = 0; i < tables[obj].n && c.rc == AB_OK; i++) {
        if (vals[i].type == SHP_V_NULL && !tables[obj].rules[i].required) {
            continue; /* absent and optional: nothing to check */
        }
        check_rule(&c, &tables[obj].rules[i], &vals[i], tables[obj].rules, vals, tables[obj].n,
                   &cents);
    }
    if (c.rc == AB_OK && errors->len) {
        c.rc = ab_buf_addc(errors, ']', err);
    }
    return c.rc;
}

enum ab_status shp_check_item(unsigned obj, shp_field_fn get, void *arg, struct ab_buf *errors,
                              struct ab_error *err)
{
    struct shp_val vals[SHP_MAX_RULES];

    shp_vals_of_fields(obj, get, arg, vals);
    return shp_check_vals(obj, vals, errors, err);
}
