/* config.c - connector config loading and validation against the spec. */
/* SPDX-License-Identifier: MIT */
/*
 * A small JSON-Schema validator for the subset Airbyte specs use. It never
 * stops at the first problem: every problem is collected (one line each in
 * a capped buffer) and the final AB_ERR_CONFIG message lists them all, so the
 * user fixes the config in one round. Values are quoted only when short,
 * printable and not under a schema marked airbyte_secret.
 *
 * oneOf branches are first tried without touching the config ("trial" runs
 * that do not fill defaults, but count an absent property that has a default
 * as present); only the winning branch is then applied for real, so a losing
 * branch never leaves its defaults behind.
 */
#include "ab/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <regex.h>

#include "ab/assert.h"
#include "ab/json.h"

#include "text_int.h"

#define CONFIG_MAX_BYTES   ((size_t)16 * 1024 * 1024)
#define PROBLEMS_MAX_BYTES ((size_t)64 * 1024)
#define PATH_MAX_BYTES     ((size_t)4096)
#define SCHEMA_MAX_DEPTH   64
#define PROBLEM_MAX        512
#define QUOTE_MAX          40

struct re_entry {
    const char *pattern; /* borrowed from the schema */
    regex_t re;
    bool ok;
};

/* State shared by a validation run and its oneOf trial runs. */
struct vshared {
    struct ab_buf path; /* "a.b[2].c" of the value being checked */
    struct re_entry *res;
    size_t nres;
    size_t capres;
    enum ab_status fatal;   /* AB_ERR_NOMEM once an allocation failed */
    ab_config_warn_fn warn; /* unknown top-level fields; NULL: none */
    void *warn_arg;
};

struct vctx {
    struct vshared *sh;
    struct ab_buf problems; /* one problem per line */
    size_t nproblems;
    size_t ndropped; /* problems that did not fit in the buffer */
    size_t nconst;   /* failed "const" checks (oneOf discriminators) */
    bool fill;       /* fill defaults (false in oneOf trial runs) */
};

static void validate(struct vctx *c, yajl_val v, yajl_val s, bool secret, int depth);

static void ctx_init(struct vctx *c, struct vshared *sh, bool fill)
{
    c->sh = sh;
    ab_buf_init(&c->problems, PROBLEMS_MAX_BYTES);
    c->nproblems = 0;
    c->ndropped = 0;
    c->nconst = 0;
    c->fill = fill;
}

static void ctx_release(struct vctx *c)
{
    ab_buf_release(&c->problems);
}

/* Appends a problem line as is. */
static void add_line(struct vctx *c, const char *line, size_t n)
{
    struct ab_error e;

    c->nproblems++;
    ab_error_init(&e);
    if (ab_buf_reserve(&c->problems, n + 1, &e) != AB_OK) {
        if (e.code == AB_ERR_NOMEM) {
            c->sh->fatal = AB_ERR_NOMEM;
        }
        c->ndropped++;
        return;
    }
    (void)ab_buf_add(&c->problems, line, n, &e);
    (void)ab_buf_addc(&c->problems, '\n', &e);
}

/* Adds "<path>: <what>" for the value being checked. */
static void problem(struct vctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct vctx *c, const char *fmt, ...)
{
    char line[PROBLEM_MAX];
    const char *path = c->sh->path.len ? c->sh->path.data : "config";
    va_list ap;
    int n;
    size_t len;

    n = snprintf(line, sizeof(line), "%s: ", path);
    len = n < 0 ? 0 : (size_t)n;
    if (len >= sizeof(line)) {
        len = sizeof(line) - 1;
    }
    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): clang 14 false positive */
    n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        len += (size_t)n;
    }
    if (len >= sizeof(line)) {
        len = sizeof(line) - 1;
    }
    add_line(c, line, len);
}

/* ---- path ---- */

static size_t path_push_key(struct vctx *c, const char *key)
{
    struct ab_buf *p = &c->sh->path;
    size_t old = p->len;
    struct ab_error e;

    ab_error_init(&e);
    if (old) {
        (void)ab_buf_addc(p, '.', &e);
    }
    (void)ab_buf_adds(p, key, &e);
    if (e.code == AB_ERR_NOMEM) {
        c->sh->fatal = AB_ERR_NOMEM;
    }
    return old;
}

static size_t path_push_index(struct vctx *c, size_t i)
{
    struct ab_buf *p = &c->sh->path;
    size_t old = p->len;
    struct ab_error e;

    ab_error_init(&e);
    (void)ab_buf_printf(p, &e, "[%zu]", i);
    if (e.code == AB_ERR_NOMEM) {
        c->sh->fatal = AB_ERR_NOMEM;
    }
    return old;
}

static void path_pop(struct vctx *c, size_t old)
{
    ab_buf_truncate(&c->sh->path, old);
}

/* ---- value helpers ---- */

static bool is_integer(yajl_val v)
{
    return v && v->type == yajl_t_number && (v->u.number.flags & YAJL_NUMBER_INT_VALID) &&
           !strpbrk(v->u.number.r, ".eE");
}

/* NOLINTNEXTLINE(misc-no-recursion): depth capped by SCHEMA_MAX_DEPTH */
static bool json_equal(yajl_val a, yajl_val b, int depth)
{
    size_t i;

    if (!a || !b || depth > SCHEMA_MAX_DEPTH) {
        return a == b;
    }
    if (a->type != b->type) {
        return false;
    }
    switch (a->type) {
    case yajl_t_string:
        return strcmp(a->u.string, b->u.string) == 0;
    case yajl_t_number:
        if (is_integer(a) && is_integer(b)) {
            return a->u.number.i == b->u.number.i;
        }
        if ((a->u.number.flags & YAJL_NUMBER_DOUBLE_VALID) &&
            (b->u.number.flags & YAJL_NUMBER_DOUBLE_VALID)) {
            return !(a->u.number.d < b->u.number.d) && !(a->u.number.d > b->u.number.d);
        }
        return strcmp(a->u.number.r, b->u.number.r) == 0;
    case yajl_t_array:
        if (a->u.array.len != b->u.array.len) {
            return false;
        }
        for (i = 0; i < a->u.array.len; i++) {
            if (!json_equal(a->u.array.values[i], b->u.array.values[i], depth + 1)) {
                return false;
            }
        }
        return true;
    case yajl_t_object:
        if (a->u.object.len != b->u.object.len) {
            return false;
        }
        for (i = 0; i < a->u.object.len; i++) {
            if (!json_equal(a->u.object.values[i], ab_json_get(b, a->u.object.keys[i]),
                            depth + 1)) {
                return false;
            }
        }
        return true;
    case yajl_t_true:
    case yajl_t_false:
    case yajl_t_null:
    case yajl_t_any:
        break;
    }
    return true;
}

/* Compares a number with a schema limit: <0, 0, >0. */
static int num_cmp(yajl_val v, yajl_val limit)
{
    double a;
    double b;

    if (is_integer(v) && is_integer(limit)) {
        long long x = v->u.number.i;
        long long y = limit->u.number.i;

        return x < y ? -1 : (x > y ? 1 : 0);
    }
    a = (v->u.number.flags & YAJL_NUMBER_DOUBLE_VALID) ? v->u.number.d : (double)v->u.number.i;
    b = (limit->u.number.flags & YAJL_NUMBER_DOUBLE_VALID) ? limit->u.number.d
                                                           : (double)limit->u.number.i;
    return a < b ? -1 : (a > b ? 1 : 0);
}

static size_t utf8_len(const char *s)
{
    size_t n = 0;

    for (; *s; s++) {
        if (((unsigned char)*s & 0xC0U) != 0x80U) {
            n++;
        }
    }
    return n;
}

/* " (got 'x')" for short printable non-secret values, else "". */
static const char *got(char *buf, size_t size, yajl_val v, bool secret)
{
    buf[0] = '\0';
    if (secret || !v) {
        return buf;
    }
    if (v->type == yajl_t_string) {
        size_t n = strlen(v->u.string);

        const char *s;

        if (n > QUOTE_MAX) {
            return buf;
        }
        for (s = v->u.string; *s; s++) {
            unsigned char ch = (unsigned char)*s;

            if (ch < 0x20 || ch == 0x7F || ch == '\'') {
                return buf;
            }
        }
        (void)snprintf(buf, size, " (got '%s')", v->u.string);
    } else if (v->type == yajl_t_number && strlen(v->u.number.r) <= QUOTE_MAX) {
        (void)snprintf(buf, size, " (got %s)", v->u.number.r);
    } else if (v->type == yajl_t_true || v->type == yajl_t_false) {
        (void)snprintf(buf, size, " (got %s)", v->type == yajl_t_true ? "true" : "false");
    }
    return buf;
}

/* Short text of a schema value for messages: strings bare, else JSON. */
static void value_text(struct ab_buf *out, yajl_val v)
{
    struct ab_error e;

    ab_error_init(&e);
    if (v && v->type == yajl_t_string) {
        (void)ab_buf_adds(out, v->u.string, &e);
    } else {
        (void)ab_json_write(out, v, &e);
    }
}

/* ---- type ---- */

static bool type_is(yajl_val v, const char *t)
{
    if (strcmp(t, "string") == 0) {
        return v->type == yajl_t_string;
    }
    if (strcmp(t, "integer") == 0) {
        return is_integer(v);
    }
    if (strcmp(t, "number") == 0) {
        return v->type == yajl_t_number;
    }
    if (strcmp(t, "boolean") == 0) {
        return v->type == yajl_t_true || v->type == yajl_t_false;
    }
    if (strcmp(t, "object") == 0) {
        return v->type == yajl_t_object;
    }
    if (strcmp(t, "array") == 0) {
        return v->type == yajl_t_array;
    }
    if (strcmp(t, "null") == 0) {
        return v->type == yajl_t_null;
    }
    return true; /* a type this validator does not know: do not block the user */
}

static const char *type_article(const char *t)
{
    static const char *const names[][2] = {
        {"string", "a string"},   {"integer", "an integer"}, {"number", "a number"},
        {"boolean", "a boolean"}, {"object", "an object"},   {"array", "an array"},
    };
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(t, names[i][0]) == 0) {
            return names[i][1];
        }
    }
    return t;
}

/* False (and a problem reported) when v does not have one of the types. */
static bool check_type(struct vctx *c, yajl_val v, yajl_val t)
{
    struct ab_buf want;
    struct ab_error e;
    size_t i;
    size_t nnames = 0;

    if (ab_json_str(t)) {
        if (type_is(v, t->u.string)) {
            return true;
        }
        problem(c, "must be %s, not %s", type_article(t->u.string),
                type_article(ab_json_type_name(v)));
        return false;
    }
    if (!t || t->type != yajl_t_array) {
        return true;
    }
    for (i = 0; i < t->u.array.len; i++) {
        const char *name = ab_json_str(t->u.array.values[i]);

        if (name && type_is(v, name)) {
            return true;
        }
    }
    ab_buf_init(&want, 1024);
    ab_error_init(&e);
    for (i = 0; i < t->u.array.len; i++) {
        const char *name = ab_json_str(t->u.array.values[i]);

        if (name) {
            if (nnames++) {
                (void)ab_buf_adds(&want, " or ", &e);
            }
            (void)ab_buf_adds(&want, type_article(name), &e);
        }
    }
    if (nnames == 0) {
        ab_buf_release(&want);
        return true;
    }
    problem(c, "must be %s, not %s", want.data ? want.data : "?",
            type_article(ab_json_type_name(v)));
    ab_buf_release(&want);
    return false;
}

/* ---- keyword groups ---- */

static void check_enum_const(struct vctx *c, yajl_val v, yajl_val s, bool secret)
{
    yajl_val en = ab_json_get(s, "enum");
    yajl_val cn = ab_json_get(s, "const");
    char gotbuf[QUOTE_MAX + 16];
    struct ab_buf list;
    struct ab_error e;

    if (en && en->type == yajl_t_array) {
        size_t i;

        for (i = 0; i < en->u.array.len; i++) {
            if (json_equal(v, en->u.array.values[i], 0)) {
                break;
            }
        }
        if (i == en->u.array.len) {
            ab_buf_init(&list, 256);
            ab_error_init(&e);
            for (i = 0; i < en->u.array.len; i++) {
                if (i) {
                    (void)ab_buf_adds(&list, ", ", &e);
                }
                value_text(&list, en->u.array.values[i]);
            }
            problem(c, "must be one of %s%s", list.data ? list.data : "(nothing)",
                    got(gotbuf, sizeof(gotbuf), v, secret));
            ab_buf_release(&list);
        }
    }
    if (cn && !json_equal(v, cn, 0)) {
        ab_buf_init(&list, 256);
        ab_error_init(&e);
        value_text(&list, cn);
        problem(c, "must be %s%s", list.data ? list.data : "null",
                got(gotbuf, sizeof(gotbuf), v, secret));
        ab_buf_release(&list);
        c->nconst++;
    }
}

static void check_number(struct vctx *c, yajl_val v, yajl_val s, bool secret)
{
    yajl_val min = ab_json_get(s, "minimum");
    yajl_val max = ab_json_get(s, "maximum");
    yajl_val xmin = ab_json_get(s, "exclusiveMinimum");
    yajl_val xmax = ab_json_get(s, "exclusiveMaximum");
    char gotbuf[QUOTE_MAX + 16];

    /* draft-04 spelling: a boolean that makes minimum/maximum exclusive */
    if (xmin && xmin->type == yajl_t_true) {
        xmin = min;
        min = NULL;
    }
    if (xmax && xmax->type == yajl_t_true) {
        xmax = max;
        max = NULL;
    }
    if (min && min->type == yajl_t_number && num_cmp(v, min) < 0) {
        problem(c, "must be >= %s%s", min->u.number.r, got(gotbuf, sizeof(gotbuf), v, secret));
    }
    if (max && max->type == yajl_t_number && num_cmp(v, max) > 0) {
        problem(c, "must be <= %s%s", max->u.number.r, got(gotbuf, sizeof(gotbuf), v, secret));
    }
    if (xmin && xmin->type == yajl_t_number && num_cmp(v, xmin) <= 0) {
        problem(c, "must be > %s%s", xmin->u.number.r, got(gotbuf, sizeof(gotbuf), v, secret));
    }
    if (xmax && xmax->type == yajl_t_number && num_cmp(v, xmax) >= 0) {
        problem(c, "must be < %s%s", xmax->u.number.r, got(gotbuf, sizeof(gotbuf), v, secret));
    }
}

/* The compiled pattern (cached for the whole validation run), or NULL. */
static const regex_t *regex_for(struct vctx *c, const char *pattern)
{
    struct vshared *sh = c->sh;
    struct re_entry *e;
    size_t i;

    for (i = 0; i < sh->nres; i++) {
        if (strcmp(sh->res[i].pattern, pattern) == 0) {
            return sh->res[i].ok ? &sh->res[i].re : NULL;
        }
    }
    if (sh->nres == sh->capres) {
        size_t ncap = sh->capres ? sh->capres * 2 : 8;
        struct re_entry *p = realloc(sh->res, ncap * sizeof(*p));

        if (!p) {
            sh->fatal = AB_ERR_NOMEM;
            return NULL;
        }
        sh->res = p;
        sh->capres = ncap;
    }
    e = &sh->res[sh->nres++];
    e->pattern = pattern;
    e->ok = regcomp(&e->re, pattern, REG_EXTENDED | REG_NOSUB) == 0;
    return e->ok ? &e->re : NULL;
}

static void check_string(struct vctx *c, yajl_val v, yajl_val s, bool secret)
{
    yajl_val minl = ab_json_get(s, "minLength");
    yajl_val maxl = ab_json_get(s, "maxLength");
    const char *pattern = ab_json_str(ab_json_get(s, "pattern"));
    size_t n = 0;

    if (is_integer(minl) || is_integer(maxl)) {
        n = utf8_len(v->u.string);
    }
    if (is_integer(minl) && (long long)n < minl->u.number.i) {
        if (minl->u.number.i == 1) {
            problem(c, "must not be empty");
        } else {
            problem(c, "must be at least %lld characters long", minl->u.number.i);
        }
    }
    if (is_integer(maxl) && (long long)n > maxl->u.number.i) {
        problem(c, "must be at most %lld characters long", maxl->u.number.i);
    }
    if (pattern) {
        const regex_t *re = regex_for(c, pattern);

        if (!re) {
            if (c->sh->fatal == AB_OK) {
                problem(c, "the spec's pattern '%s' is not a valid POSIX regular expression",
                        pattern);
            }
        } else if (regexec(re, v->u.string, 0, NULL, 0) != 0) {
            char gotbuf[QUOTE_MAX + 16];

            problem(c, "must match the pattern '%s'%s", pattern,
                    got(gotbuf, sizeof(gotbuf), v, secret));
        }
    }
}

/* NOLINTNEXTLINE(misc-no-recursion): depth capped by SCHEMA_MAX_DEPTH */
static void check_array(struct vctx *c, yajl_val v, yajl_val s, bool secret, int depth)
{
    yajl_val mini = ab_json_get(s, "minItems");
    yajl_val maxi = ab_json_get(s, "maxItems");
    yajl_val items = ab_json_get(s, "items");
    size_t n = v->u.array.len;
    size_t i;

    if (is_integer(mini) && (long long)n < mini->u.number.i) {
        if (mini->u.number.i == 1) {
            problem(c, "must not be empty");
        } else {
            problem(c, "must have at least %lld items", mini->u.number.i);
        }
    }
    if (is_integer(maxi) && (long long)n > maxi->u.number.i) {
        problem(c, "must have at most %lld items", maxi->u.number.i);
    }
    if (!items || items->type != yajl_t_object) {
        return;
    }
    for (i = 0; i < n && c->sh->fatal == AB_OK; i++) {
        size_t old = path_push_index(c, i);

        validate(c, v->u.array.values[i], items, secret, depth + 1);
        path_pop(c, old);
    }
}

/* Adds key: val to obj (takes ownership of val, also on failure). */
static bool object_add(yajl_val obj, const char *key, yajl_val val)
{
    size_t n = obj->u.object.len;
    size_t klen = strlen(key) + 1;
    const char **keys;
    yajl_val *values;
    char *k;

    keys = realloc(obj->u.object.keys, (n + 1) * sizeof(*keys));
    if (!keys) {
        goto fail;
    }
    obj->u.object.keys = keys;
    values = realloc(obj->u.object.values,
                     (n + 1) * sizeof(*values)); /* NOLINT(bugprone-sizeof-expression) */
    if (!values) {
        goto fail;
    }
    obj->u.object.values = values;
    k = malloc(klen);
    if (!k) {
        goto fail;
    }
    memcpy(k, key, klen);
    keys[n] = k;
    values[n] = val;
    obj->u.object.len = n + 1;
    return true;
fail:
    yajl_tree_free(val);
    return false;
}

/* ---- unknown fields ---- */

#define KEY_QUOTE_MAX 64

size_t ab_edit_distance(const char *a, size_t la, const char *b, size_t lb, bool fold)
{
    size_t row[AB_EDIT_MAX + 1];
    size_t i;
    size_t j;

    AB_ASSERT(la <= AB_EDIT_MAX && lb <= AB_EDIT_MAX);
    for (j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (i = 1; i <= la; i++) {
        size_t diag = row[0];

        row[0] = i;
        for (j = 1; j <= lb; j++) {
            unsigned char ca = (unsigned char)a[i - 1];
            unsigned char cb = (unsigned char)b[j - 1];
            size_t up = row[j];
            size_t best = diag + ((fold ? tolower(ca) == tolower(cb) : ca == cb) ? 0 : 1);

            if (up + 1 < best) {
                best = up + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

/* Edit distance of a and b, ASCII case folded; SIZE_MAX when either is longer
 * than KEY_QUOTE_MAX (no suggestion for such keys). */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a);
    size_t lb = strlen(b);

    if (la > KEY_QUOTE_MAX || lb > KEY_QUOTE_MAX) {
        return SIZE_MAX;
    }
    return ab_edit_distance(a, la, b, lb, true);
}

/* The declared property closest to key, when close enough to be a typo
 * (about one edit in four characters, at most 3); NULL otherwise. */
static const char *closest_key(yajl_val props, const char *key)
{
    size_t len = strlen(key);
    size_t limit = (len + 2) / 4;
    size_t best = SIZE_MAX;
    const char *found = NULL;
    size_t i;

    if (limit < 1) {
        limit = 1;
    } else if (limit > 3) {
        limit = 3;
    }
    for (i = 0; props && i < props->u.object.len; i++) {
        size_t d = distance(key, props->u.object.keys[i]);

        if (d <= limit && d < best) {
            best = d;
            found = props->u.object.keys[i];
        }
    }
    return found;
}

/* key for a message: at most KEY_QUOTE_MAX bytes, control characters and
 * quotes replaced by '?'. */
static void key_text(char *out, size_t size, const char *key)
{
    size_t n = 0;

    for (; *key && n + 4 < size && n < KEY_QUOTE_MAX; key++) {
        unsigned char ch = (unsigned char)*key;

        out[n++] = (char)(ch < 0x20 || ch == 0x7F || ch == '\'' ? '?' : ch);
    }
    if (*key) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

/* "<before>did you mean 'x'?<after>" or "". */
static void suggestion(char *out, size_t size, yajl_val props, const char *key, const char *before,
                       const char *after)
{
    const char *near = closest_key(props, key);

    out[0] = '\0';
    if (near) {
        (void)snprintf(out, size, "%sdid you mean '%s'?%s", before, near, after);
    }
}

static void warn_unknown(struct vctx *c, yajl_val props, const char *key)
{
    char line[PROBLEM_MAX];
    char quoted[KEY_QUOTE_MAX + 8];
    char hint[KEY_QUOTE_MAX + 32];

    key_text(quoted, sizeof(quoted), key);
    suggestion(hint, sizeof(hint), props, key, " (", ")");
    (void)snprintf(line, sizeof(line), "config: unknown field '%s'%s", quoted, hint);
    c->sh->warn(c->sh->warn_arg, line);
}

/* NOLINTNEXTLINE(misc-no-recursion): depth capped by SCHEMA_MAX_DEPTH */
static void check_object(struct vctx *c, yajl_val v, yajl_val s, bool secret, int depth)
{
    yajl_val props = ab_json_get(s, "properties");
    yajl_val req = ab_json_get(s, "required");
    yajl_val addl = ab_json_get(s, "additionalProperties");
    size_t i;

    if (props && props->type != yajl_t_object) {
        props = NULL;
    }
    /* defaults first, so that a required property with a default is met */
    for (i = 0; c->fill && props && i < props->u.object.len; i++) {
        yajl_val def = ab_json_get(props->u.object.values[i], "default");
        yajl_val copy;

        if (!def || ab_json_get(v, props->u.object.keys[i])) {
            continue;
        }
        copy = ab_json_clone(def);
        if (!copy || !object_add(v, props->u.object.keys[i], copy)) {
            c->sh->fatal = AB_ERR_NOMEM;
            return;
        }
    }
    for (i = 0; req && req->type == yajl_t_array && i < req->u.array.len; i++) {
        const char *name = ab_json_str(req->u.array.values[i]);
        size_t old;

        if (!name || ab_json_get(v, name)) {
            continue;
        }
        if (!c->fill && ab_json_get(ab_json_get(props, name), "default")) {
            continue; /* a trial run: the default will be filled in */
        }
        old = path_push_key(c, name);
        problem(c, "is required");
        path_pop(c, old);
    }
    for (i = 0; i < v->u.object.len && c->sh->fatal == AB_OK; i++) {
        const char *key = v->u.object.keys[i];
        yajl_val sub = ab_json_get(props, key);
        size_t old = path_push_key(c, key);

        if (sub) {
            validate(c, v->u.object.values[i], sub, secret, depth + 1);
        } else if (addl && addl->type == yajl_t_false) {
            char hint[KEY_QUOTE_MAX + 32];

            suggestion(hint, sizeof(hint), props, key, "; ", "");
            problem(c, "is not allowed (unknown field%s)", hint);
        } else if (depth == 0 && c->fill && props && c->sh->warn) {
            warn_unknown(c, props, key);
        }
        path_pop(c, old);
    }
}

/* First line of a trial run's problems, without the path it shares with
 * the value the oneOf belongs to ("a.b: x" -> "x", "a.b.c: x" -> "c: x"). */
static void first_problem(struct ab_buf *out, const struct vctx *t, const char *path)
{
    const char *s = t->problems.data ? t->problems.data : "";
    const char *nl = strchr(s, '\n');
    size_t len = nl ? (size_t)(nl - s) : strlen(s);
    size_t plen = strlen(path);
    struct ab_error e;

    if (len > plen && strncmp(s, path, plen) == 0) {
        if (s[plen] == ':' && s[plen + 1] == ' ') {
            s += plen + 2;
            len -= plen + 2;
        } else if (plen && s[plen] == '.') {
            s += plen + 1;
            len -= plen + 1;
        }
    }
    ab_error_init(&e);
    (void)ab_buf_add(out, s, len, &e);
}

/* Copies a trial run's problems into c. */
static void adopt_problems(struct vctx *c, const struct vctx *t)
{
    const char *s = t->problems.data ? t->problems.data : "";

    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);

        add_line(c, s, len);
        s += len + (nl ? 1 : 0);
    }
    c->ndropped += t->ndropped;
    c->nproblems += t->ndropped;
}

/* One problem summing up why every branch failed. */
static void report_no_branch(struct vctx *c, yajl_val arr, const struct vctx *trials)
{
    const char *path = c->sh->path.len ? c->sh->path.data : "config";
    struct ab_buf summary;
    struct ab_error e;
    size_t n = arr->u.array.len;
    size_t i;

    ab_buf_init(&summary, 2048);
    ab_error_init(&e);
    for (i = 0; i < n; i++) {
        const char *title = ab_json_get_str(arr->u.array.values[i], "title", NULL);

        (void)ab_buf_printf(&summary, &e, "%s%zu", i ? "; " : "", i + 1);
        if (title) {
            (void)ab_buf_printf(&summary, &e, " '%s'", title);
        }
        (void)ab_buf_adds(&summary, ": ", &e);
        first_problem(&summary, &trials[i], path);
    }
    problem(c, "matches none of the %zu options (%s)", n,
            summary.data ? summary.data : "no details");
    ab_buf_release(&summary);
}

/* NOLINTNEXTLINE(misc-no-recursion): depth capped by SCHEMA_MAX_DEPTH */
static void check_one_of(struct vctx *c, yajl_val v, yajl_val arr, bool secret, int depth)
{
    struct vctx *trials;
    size_t n = arr->u.array.len;
    size_t i;
    size_t nodiscr = 0;
    size_t candidate = 0;
    bool matched = false;

    if (n == 0) {
        return;
    }
    trials = calloc(n, sizeof(*trials));
    if (!trials) {
        c->sh->fatal = AB_ERR_NOMEM;
        return;
    }
    for (i = 0; i < n; i++) {
        ctx_init(&trials[i], c->sh, false);
    }
    for (i = 0; i < n && !matched && c->sh->fatal == AB_OK; i++) {
        validate(&trials[i], v, arr->u.array.values[i], secret, depth + 1);
        if (trials[i].nproblems == 0) {
            matched = true;
            /* the first branch that validates wins: apply it for real */
            if (c->fill) {
                validate(c, v, arr->u.array.values[i], secret, depth + 1);
            }
        } else if (trials[i].nconst == 0) {
            nodiscr++;
            candidate = i;
        }
    }
    if (!matched && c->sh->fatal == AB_OK) {
        if (n > 1 && nodiscr == 1) {
            /* exactly one branch whose discriminator ("const") matches: its
             * problems are the ones the user needs */
            adopt_problems(c, &trials[candidate]);
        } else {
            report_no_branch(c, arr, trials);
        }
    }
    for (i = 0; i < n; i++) {
        ctx_release(&trials[i]);
    }
    free(trials);
}

/* NOLINTNEXTLINE(misc-no-recursion): depth capped by SCHEMA_MAX_DEPTH */
static void validate(struct vctx *c, yajl_val v, yajl_val s, bool secret, int depth)
{
    yajl_val one_of;

    if (!v || !s || s->type != yajl_t_object || c->sh->fatal != AB_OK) {
        return;
    }
    if (depth > SCHEMA_MAX_DEPTH) {
        problem(c, "is nested too deeply");
        return;
    }
    if (ab_json_get_bool(s, "airbyte_secret", false)) {
        secret = true;
    }
    if (!check_type(c, v, ab_json_get(s, "type"))) {
        return;
    }
    check_enum_const(c, v, s, secret);
    switch (v->type) {
    case yajl_t_number:
        check_number(c, v, s, secret);
        break;
    case yajl_t_string:
        check_string(c, v, s, secret);
        break;
    case yajl_t_array:
        check_array(c, v, s, secret, depth);
        break;
    case yajl_t_object:
        check_object(c, v, s, secret, depth);
        break;
    case yajl_t_true:
    case yajl_t_false:
    case yajl_t_null:
    case yajl_t_any:
        break;
    }
    one_of = ab_json_get(s, "oneOf");
    if (one_of && one_of->type == yajl_t_array) {
        check_one_of(c, v, one_of, secret, depth);
    }
}

/* Joins the problem lines into err's message, as many as fit. */
static enum ab_status report(const struct vctx *c, struct ab_error *err)
{
    static const char head[] = "config is invalid: ";
    char msg[AB_ERROR_MSG_MAX];
    const char *s = c->problems.data ? c->problems.data : "";
    size_t len = sizeof(head) - 1;
    size_t shown = 0;
    /* room kept for " (and N more problems)" */
    const size_t tail = 40;

    memcpy(msg, head, len);
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        size_t sep = shown ? 2 : 0;

        if (len + sep + n + tail >= sizeof(msg)) {
            break;
        }
        if (sep) {
            memcpy(msg + len, "; ", 2);
            len += 2;
        }
        memcpy(msg + len, s, n);
        len += n;
        shown++;
        s += n + (nl ? 1 : 0);
    }
    msg[len] = '\0';
    if (shown < c->nproblems) {
        return ab_error_set(err, AB_ERR_CONFIG, "%s (and %zu more problems)", msg,
                            c->nproblems - shown);
    }
    return ab_error_set(err, AB_ERR_CONFIG, "%s", msg);
}

enum ab_status ab_config_validate(yajl_val config, yajl_val schema, struct ab_error *err)
{
    return ab_config_validate_warn(config, schema, NULL, NULL, err);
}

/* A quoted value of another field may hold a secret's text (a key pasted
 * into the wrong field): every secret of the config is replaced in the
 * report, so the message is safe before any mask sees it. */
struct scrub {
    struct ab_error *err;
};

static void scrub_text(char *text, size_t size, const char *secret)
{
    size_t n = strlen(secret);
    char out[AB_ERROR_MSG_MAX];
    size_t o = 0;
    const char *p = text;
    const char *hit;

    AB_ASSERT(size <= sizeof(out));
    if (n < 4 || !strstr(text, secret)) { /* as the mask: shorter would mask words */
        return;
    }
    while ((hit = strstr(p, secret)) != NULL && o < sizeof(out) - 1) {
        size_t k = (size_t)(hit - p);

        k = k < sizeof(out) - 1 - o ? k : sizeof(out) - 1 - o;
        memcpy(out + o, p, k);
        o += k;
        k = 4 < sizeof(out) - 1 - o ? 4 : sizeof(out) - 1 - o;
        memcpy(out + o, "****", k);
        o += k;
        p = hit + n;
    }
    n = strlen(p);
    n = n < sizeof(out) - 1 - o ? n : sizeof(out) - 1 - o;
    memcpy(out + o, p, n);
    o += n;
    out[o] = '\0';
    (void)snprintf(text, size, "%s", out);
}

static void scrub_secret(void *arg, const char *secret)
{
    struct scrub *sc = arg;

    scrub_text(sc->err->message, sizeof(sc->err->message), secret);
    scrub_text(sc->err->internal, sizeof(sc->err->internal), secret);
}

enum ab_status ab_config_validate_warn(yajl_val config, yajl_val schema, ab_config_warn_fn warn,
                                       void *arg, struct ab_error *err)
{
    struct vshared sh;
    struct vctx c;
    enum ab_status rc = AB_OK;
    size_t i;

    if (!schema) {
        return AB_OK;
    }
    if (!config) {
        return ab_error_set(err, AB_ERR_CONFIG, "config is invalid: config: is missing");
    }
    memset(&sh, 0, sizeof(sh));
    sh.warn = warn;
    sh.warn_arg = arg;
    ab_buf_init(&sh.path, PATH_MAX_BYTES);
    ctx_init(&c, &sh, true);
    validate(&c, config, schema, false, 0);
    if (sh.fatal != AB_OK) {
        rc = ab_error_set(err, sh.fatal, "cannot validate config: out of memory");
    } else if (c.nproblems) {
        struct scrub sc = {.err = err};

        rc = report(&c, err);
        if (err) {
            ab_config_each_secret(config, schema, scrub_secret, &sc);
        }
    }
    ctx_release(&c);
    for (i = 0; i < sh.nres; i++) {
        if (sh.res[i].ok) {
            regfree(&sh.res[i].re);
        }
    }
    free(sh.res);
    ab_buf_release(&sh.path);
    return rc;
}

/* ---- loading ---- */

enum ab_status ab_config_load(const char *path, yajl_val schema, yajl_val *out,
                              struct ab_error *err)
{
    return ab_config_load_warn(path, schema, NULL, NULL, out, err);
}

enum ab_status ab_config_load_warn(const char *path, yajl_val schema, ab_config_warn_fn warn,
                                   void *arg, yajl_val *out, struct ab_error *err)
{
    struct ab_error perr;
    enum ab_status rc;
    struct ab_buf text;
    char why[256];
    yajl_val config;

    *out = NULL;
    ab_error_init(&perr);
    rc = ab_buf_read_file(path, CONFIG_MAX_BYTES, &text, why, sizeof(why));
    if (rc != AB_OK) {
        return ab_error_set(err, rc, "cannot read config '%s': %s", path, why);
    }
    /* yajl's first error line carries no input text, so no secret leaks */
    config = ab_json_parse(text.data, text.len, &perr);
    ab_buf_release(&text);
    if (!config) {
        return ab_error_set(err, AB_ERR_CONFIG, "cannot parse config '%s': %s", path, perr.message);
    }
    rc = ab_config_validate_warn(config, schema, warn, arg, err);
    if (rc != AB_OK) {
        ab_json_free(config);
        return rc;
    }
    *out = config;
    return AB_OK;
}

/* ---- secrets ---- */

/* NOLINTNEXTLINE(misc-no-recursion): depth capped by SCHEMA_MAX_DEPTH */
static void each_secret(yajl_val v, yajl_val s, void (*fn)(void *arg, const char *secret),
                        void *arg, int depth)
{
    static const char *const combos[] = {"oneOf", "anyOf", "allOf"};
    yajl_val props = ab_json_get(s, "properties");
    yajl_val items = ab_json_get(s, "items");
    size_t i;
    size_t k;

    if (!v || !s || s->type != yajl_t_object || depth > SCHEMA_MAX_DEPTH) {
        return;
    }
    if (ab_json_get_bool(s, "airbyte_secret", false) && v->type == yajl_t_string &&
        v->u.string[0]) {
        fn(arg, v->u.string);
    }
    if (props && props->type == yajl_t_object && v->type == yajl_t_object) {
        for (i = 0; i < props->u.object.len; i++) {
            each_secret(ab_json_get(v, props->u.object.keys[i]), props->u.object.values[i], fn, arg,
                        depth + 1);
        }
    }
    if (items && v->type == yajl_t_array) {
        for (i = 0; i < v->u.array.len; i++) {
            each_secret(v->u.array.values[i], items, fn, arg, depth + 1);
        }
    }
    for (k = 0; k < sizeof(combos) / sizeof(combos[0]); k++) {
        yajl_val arr = ab_json_get(s, combos[k]);

        for (i = 0; arr && arr->type == yajl_t_array && i < arr->u.array.len; i++) {
            each_secret(v, arr->u.array.values[i], fn, arg, depth + 1);
        }
    }
}

void ab_config_each_secret(yajl_val config, yajl_val schema,
                           void (*fn)(void *arg, const char *secret), void *arg)
{
    if (fn) {
        each_secret(config, schema, fn, arg, 0);
    }
}
