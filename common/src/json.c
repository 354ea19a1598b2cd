/* json.c - parsing, lookup and compact serialisation of JSON values. */
/* SPDX-License-Identifier: MIT */
#include "ab/json.h"

#include <stdlib.h>
#include <string.h>

yajl_val ab_json_parse(const char *text, size_t len, struct ab_error *err)
{
    struct ab_json_arena *a = ab_json_arena_new(err);
    yajl_val v;
    yajl_val c = NULL;

    if (!a) {
        return NULL;
    }
    v = ab_json_parse_arena(a, text, len, err);
    if (v) {
        c = ab_json_clone(v);
        if (!c) {
            ab_error_set(err, AB_ERR_NOMEM, "out of memory copying a document of %zu bytes", len);
        }
    }
    ab_json_arena_free(a);
    return c;
}

/* Frees v's own allocations except its children. */
static void free_node(yajl_val v)
{
    switch (v->type) {
    case yajl_t_string:
        free(v->u.string);
        break;
    case yajl_t_number:
        free(v->u.number.r);
        break;
    case yajl_t_object:
        free((void *)v->u.object.keys);
        free(v->u.object.values);
        break;
    case yajl_t_array:
        free(v->u.array.values);
        break;
    case yajl_t_true:
    case yajl_t_false:
    case yajl_t_null:
    case yajl_t_any:
        break;
    }
    free(v);
}

/*
 * Depth-first without a stack: descending into the last child of a
 * container, its slot keeps the container's parent (pointer reversal);
 * coming back up, the slot gives the parent back and the child is dropped.
 */
void ab_json_free(yajl_val v)
{
    yajl_val parent = NULL;

    while (v) {
        yajl_val *vals = NULL;
        size_t len = 0;

        if (v->type == yajl_t_array) {
            vals = v->u.array.values;
            len = v->u.array.len;
        } else if (v->type == yajl_t_object) {
            vals = v->u.object.values;
            len = v->u.object.len;
        }
        if (len > 0 && vals[len - 1]) {
            yajl_val child = vals[len - 1];

            vals[len - 1] = parent;
            parent = v;
            v = child;
            continue;
        }
        if (len > 0) {
            /* a NULL child: drop the slot */
            if (v->type == yajl_t_object) {
                free((void *)(uintptr_t)v->u.object.keys[len - 1]);
                v->u.object.len--;
            } else {
                v->u.array.len--;
            }
            continue;
        }
        free_node(v);
        v = parent;
        if (!v) {
            break;
        }
        if (v->type == yajl_t_object) {
            len = v->u.object.len;
            parent = v->u.object.values[len - 1];
            free((void *)(uintptr_t)v->u.object.keys[len - 1]);
            v->u.object.len--;
        } else {
            len = v->u.array.len;
            parent = v->u.array.values[len - 1];
            v->u.array.len--;
        }
    }
}

yajl_val ab_json_get(yajl_val v, const char *key)
{
    size_t i;

    if (!v || v->type != yajl_t_object) {
        return NULL;
    }
    for (i = 0; i < v->u.object.len; i++) {
        const char *k = v->u.object.keys[i];

        /* the first byte inline: most names differ there */
        if (k[0] == key[0] && strcmp(k, key) == 0) {
            return v->u.object.values[i];
        }
    }
    return NULL;
}

yajl_val ab_json_get_path(yajl_val v, const char *const *path)
{
    for (; v && *path; path++) {
        v = ab_json_get(v, *path);
    }
    return v;
}

yajl_val ab_json_get_dotted(yajl_val v, const char *dotted)
{
    char key[256];
    const char *p = dotted;

    while (v && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);

        if (n >= sizeof(key)) {
            return NULL;
        }
        memcpy(key, p, n);
        key[n] = '\0';
        v = ab_json_get(v, key);
        p += n;
        if (*p == '.') {
            p++;
        }
    }
    return v;
}

const char *ab_json_str(yajl_val v)
{
    return (v && v->type == yajl_t_string) ? v->u.string : NULL;
}

bool ab_json_is_null(yajl_val v)
{
    return !v || v->type == yajl_t_null;
}

bool ab_json_int(yajl_val v, int64_t *out)
{
    if (!v || v->type != yajl_t_number || !(v->u.number.flags & YAJL_NUMBER_INT_VALID)) {
        return false;
    }
    *out = (int64_t)v->u.number.i;
    return true;
}

bool ab_json_double(yajl_val v, double *out)
{
    if (!v || v->type != yajl_t_number || !(v->u.number.flags & YAJL_NUMBER_DOUBLE_VALID)) {
        return false;
    }
    *out = v->u.number.d;
    return true;
}

const char *ab_json_get_str(yajl_val obj, const char *key, const char *fallback)
{
    const char *s = ab_json_str(ab_json_get(obj, key));

    return s ? s : fallback;
}

int64_t ab_json_get_int(yajl_val obj, const char *key, int64_t fallback)
{
    int64_t i;

    return ab_json_int(ab_json_get(obj, key), &i) ? i : fallback;
}

double ab_json_get_double(yajl_val obj, const char *key, double fallback)
{
    double d;

    return ab_json_double(ab_json_get(obj, key), &d) ? d : fallback;
}

bool ab_json_get_bool(yajl_val obj, const char *key, bool fallback)
{
    yajl_val v = ab_json_get(obj, key);

    if (v && v->type == yajl_t_true) {
        return true;
    }
    if (v && v->type == yajl_t_false) {
        return false;
    }
    return fallback;
}

enum ab_status ab_json_write_str(struct ab_buf *out, const char *s, size_t n, struct ab_error *err)
{
    static const char hex[] = "0123456789abcdef";
    enum ab_status rc;
    size_t i;
    size_t run = 0;

    /* Worst case every byte becomes \u00XX. */
    rc = ab_buf_reserve(out, n + 2, err);
    if (rc != AB_OK) {
        return rc;
    }
    out->data[out->len++] = '"';
    out->data[out->len] = '\0'; /* ab_buf keeps its content NUL-terminated */
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        size_t elen = 0;

        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        /* flush the plain run before this byte */
        rc = ab_buf_add(out, s + run, i - run, err);
        if (rc != AB_OK) {
            return rc;
        }
        run = i + 1;
        esc[0] = '\\';
        switch (c) {
        case '"':
            esc[1] = '"';
            elen = 2;
            break;
        case '\\':
            esc[1] = '\\';
            elen = 2;
            break;
        case '\n':
            esc[1] = 'n';
            elen = 2;
            break;
        case '\r':
            esc[1] = 'r';
            elen = 2;
            break;
        case '\t':
            esc[1] = 't';
            elen = 2;
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
            break;
        }
        rc = ab_buf_add(out, esc, elen, err);
        if (rc != AB_OK) {
            return rc;
        }
    }
    rc = ab_buf_add(out, s + run, n - run, err);
    if (rc != AB_OK) {
        return rc;
    }
    return ab_buf_addc(out, '"', err);
}

enum ab_status ab_json_write_cstr(struct ab_buf *out, const char *s, struct ab_error *err)
{
    return ab_json_write_str(out, s, strlen(s), err);
}

enum ab_status ab_json_write(struct ab_buf *out, yajl_val v, struct ab_error *err)
{
    enum ab_status rc = AB_OK;
    size_t i;

    if (!v) {
        return ab_buf_add(out, "null", 4, err);
    }
    switch (v->type) {
    case yajl_t_string:
        return ab_json_write_cstr(out, v->u.string, err);
    case yajl_t_number:
        return ab_buf_adds(out, v->u.number.r, err);
    case yajl_t_true:
        return ab_buf_add(out, "true", 4, err);
    case yajl_t_false:
        return ab_buf_add(out, "false", 5, err);
    case yajl_t_null:
    case yajl_t_any:
        return ab_buf_add(out, "null", 4, err);
    case yajl_t_object:
        rc = ab_buf_addc(out, '{', err);
        for (i = 0; rc == AB_OK && i < v->u.object.len; i++) {
            if (i) {
                rc = ab_buf_addc(out, ',', err);
            }
            if (rc == AB_OK) {
                rc = ab_json_write_cstr(out, v->u.object.keys[i], err);
            }
            if (rc == AB_OK) {
                rc = ab_buf_addc(out, ':', err);
            }
            if (rc == AB_OK) {
                rc = ab_json_write(out, v->u.object.values[i], err);
            }
        }
        return rc == AB_OK ? ab_buf_addc(out, '}', err) : rc;
    case yajl_t_array:
        rc = ab_buf_addc(out, '[', err);
        for (i = 0; rc == AB_OK && i < v->u.array.len; i++) {
            if (i) {
                rc = ab_buf_addc(out, ',', err);
            }
            if (rc == AB_OK) {
                rc = ab_json_write(out, v->u.array.values[i], err);
            }
        }
        return rc == AB_OK ? ab_buf_addc(out, ']', err) : rc;
    }
    return ab_error_set(err, AB_ERR_INTERNAL, "unknown JSON value type");
}

const char *ab_json_type_name(yajl_val v)
{
    if (!v) {
        return "absent";
    }
    switch (v->type) {
    case yajl_t_string:
        return "string";
    case yajl_t_number:
        return (v->u.number.flags & YAJL_NUMBER_INT_VALID) ? "integer" : "number";
    case yajl_t_object:
        return "object";
    case yajl_t_array:
        return "array";
    case yajl_t_true:
    case yajl_t_false:
        return "boolean";
    case yajl_t_null:
    case yajl_t_any:
        break;
    }
    return "null";
}

/* NOLINTNEXTLINE(misc-no-recursion): depth capped by AB_JSON_MAX_DEPTH */
static yajl_val clone_at(yajl_val v, size_t depth)
{
    yajl_val c;
    size_t i;
    size_t n;

    if (!v) {
        return NULL;
    }
    if (depth > AB_JSON_MAX_DEPTH) {
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        return NULL;
    }
    c->type = v->type;
    switch (v->type) {
    case yajl_t_string:
        c->u.string = strdup(v->u.string);
        if (!c->u.string) {
            goto fail;
        }
        break;
    case yajl_t_number:
        c->u.number = v->u.number;
        c->u.number.r = strdup(v->u.number.r);
        if (!c->u.number.r) {
            goto fail;
        }
        break;
    case yajl_t_object:
        n = v->u.object.len;
        c->u.object.keys = calloc(n ? n : 1, sizeof(char *));
        c->u.object.values = calloc(n ? n : 1, sizeof(yajl_val));
        if (!c->u.object.keys || !c->u.object.values) {
            goto fail;
        }
        for (i = 0; i < n; i++) {
            c->u.object.keys[i] = strdup(v->u.object.keys[i]);
            c->u.object.values[i] = clone_at(v->u.object.values[i], depth + 1);
            c->u.object.len = i + 1;
            if (!c->u.object.keys[i] || !c->u.object.values[i]) {
                goto fail;
            }
        }
        break;
    case yajl_t_array:
        n = v->u.array.len;
        c->u.array.values = calloc(n ? n : 1, sizeof(yajl_val));
        if (!c->u.array.values) {
            goto fail;
        }
        for (i = 0; i < n; i++) {
            c->u.array.values[i] = clone_at(v->u.array.values[i], depth + 1);
            c->u.array.len = i + 1;
            if (!c->u.array.values[i]) {
                goto fail;
            }
        }
        break;
    case yajl_t_true:
    case yajl_t_false:
    case yajl_t_null:
    case yajl_t_any:
        break;
    }
    return c;
fail:
    ab_json_free(c);
    return NULL;
}

yajl_val ab_json_clone(yajl_val v)
{
    return clone_at(v, 0);
}
