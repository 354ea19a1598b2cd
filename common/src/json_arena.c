/* json_arena.c - strict JSON parsing into arena-allocated yajl_val trees. */
/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "ab/json.h"

/*
 * yajl_tree mallocs every node, key and string and frees them one by one;
 * on a stream of small records that is most of the parsing time. Here yajl's
 * callback parser builds the same structures from blocks that are dropped
 * together. Children of open containers wait on one reusable stack and are
 * copied into exact-size arrays when their container closes.
 */

#define BLOCK_SIZE ((size_t)64 * 1024)
#define MAX_DEPTH  512

struct block {
    struct block *next;
    size_t used;
    size_t size;
    /* data follows, max_align_t aligned */
};

struct frame {
    yajl_val node;
    size_t first; /* index of its first child on the value stack */
};

struct ab_json_arena {
    struct block *blocks; /* newest first; the last one is kept on reset */
    yajl_val *vals;       /* children of open containers */
    char **keys;          /* their keys (objects only; NULL for array items) */
    size_t nvals;
    size_t cap;
    struct frame frames[MAX_DEPTH];
    size_t depth;
    char *pending_key;
    yajl_val root;
    bool nomem;
    bool too_deep;
};

#define BLOCK_HEADER ((sizeof(struct block) + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1))

static void *arena_alloc(struct ab_json_arena *a, size_t n)
{
    struct block *b = a->blocks;
    size_t align = sizeof(max_align_t);

    n = (n + align - 1) & ~(align - 1);
    if (!b || b->size - b->used < n) {
        size_t size = n > BLOCK_SIZE ? n : BLOCK_SIZE;

        b = malloc(BLOCK_HEADER + size);
        if (!b) {
            a->nomem = true;
            return NULL;
        }
        b->size = size;
        b->used = 0;
        b->next = a->blocks;
        a->blocks = b;
    }
    b->used += n;
    return (char *)b + BLOCK_HEADER + b->used - n;
}

static char *arena_strdup(struct ab_json_arena *a, const unsigned char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);

    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

struct ab_json_arena *ab_json_arena_new(struct ab_error *err)
{
    struct ab_json_arena *a = calloc(1, sizeof(*a));

    if (!a) {
        ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    return a;
}

void ab_json_arena_reset(struct ab_json_arena *a)
{
    struct block *b;

    if (!a) {
        return;
    }
    /* keep the oldest block (the regular 64 KiB one), free the rest */
    while (a->blocks && a->blocks->next) {
        b = a->blocks;
        a->blocks = b->next;
        free(b);
    }
    if (a->blocks) {
        a->blocks->used = 0;
        if (a->blocks->size > BLOCK_SIZE) {
            free(a->blocks);
            a->blocks = NULL;
        }
    }
    a->nvals = 0;
    a->depth = 0;
    a->pending_key = NULL;
    a->root = NULL;
    a->nomem = false;
    a->too_deep = false;
}

void ab_json_arena_free(struct ab_json_arena *a)
{
    if (!a) {
        return;
    }
    ab_json_arena_reset(a);
    free(a->blocks);
    free(a->vals);
    free(a->keys);
    free(a);
}

static yajl_val new_node(struct ab_json_arena *a, yajl_type t)
{
    yajl_val v = arena_alloc(a, sizeof(*v));

    if (v) {
        memset(v, 0, sizeof(*v));
        v->type = t;
    }
    return v;
}

/* Attaches a finished value to the open container, or makes it the root. */
static int attach(struct ab_json_arena *a, yajl_val v)
{
    if (!v) {
        return 0;
    }
    if (a->depth == 0) {
        a->root = v;
        return 1;
    }
    if (a->nvals == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        yajl_val *vals = realloc(a->vals, cap * sizeof(*vals));
        char **keys;

        if (!vals) {
            a->nomem = true;
            return 0;
        }
        a->vals = vals;
        keys = realloc(a->keys, cap * sizeof(*keys));
        if (!keys) {
            a->nomem = true;
            return 0;
        }
        a->keys = keys;
        a->cap = cap;
    }
    a->keys[a->nvals] = a->pending_key;
    a->vals[a->nvals++] = v;
    a->pending_key = NULL;
    return 1;
}

static int on_null(void *ctx)
{
    struct ab_json_arena *a = ctx;

    return attach(a, new_node(a, yajl_t_null));
}

static int on_bool(void *ctx, int b)
{
    struct ab_json_arena *a = ctx;

    return attach(a, new_node(a, b ? yajl_t_true : yajl_t_false));
}

static int on_number(void *ctx, const char *s, size_t n)
{
    struct ab_json_arena *a = ctx;
    yajl_val v = new_node(a, yajl_t_number);
    char *end;

    if (!v) {
        return 0;
    }
    v->u.number.r = arena_strdup(a, (const unsigned char *)s, n);
    if (!v->u.number.r) {
        return 0;
    }
    errno = 0;
    v->u.number.i = strtoll(v->u.number.r, &end, 10);
    if (errno == 0 && *end == '\0') {
        v->u.number.flags |= YAJL_NUMBER_INT_VALID;
    }
    errno = 0;
    v->u.number.d = strtod(v->u.number.r, &end);
    if (errno == 0 && *end == '\0') {
        v->u.number.flags |= YAJL_NUMBER_DOUBLE_VALID;
    }
    return attach(a, v);
}

static int on_string(void *ctx, const unsigned char *s, size_t n)
{
    struct ab_json_arena *a = ctx;
    yajl_val v = new_node(a, yajl_t_string);

    if (!v) {
        return 0;
    }
    v->u.string = arena_strdup(a, s, n);
    return v->u.string ? attach(a, v) : 0;
}

static int open_container(struct ab_json_arena *a, yajl_type t)
{
    yajl_val v = new_node(a, t);
    struct frame *f;

    if (!v) {
        return 0;
    }
    if (a->depth == MAX_DEPTH) {
        a->too_deep = true;
        return 0;
    }
    /* its key is consumed now; the node is attached when it closes */
    f = &a->frames[a->depth++];
    f->node = v;
    f->first = a->nvals;
    if (attach(a, v) == 0) {
        return 0;
    }
    f->first = a->nvals; /* children come after the node's own slot */
    return 1;
}

static int close_container(struct ab_json_arena *a)
{
    struct frame *f = &a->frames[--a->depth];
    size_t n = a->nvals - f->first;
    yajl_val v = f->node;

    if (v->type == yajl_t_object) {
        v->u.object.keys = arena_alloc(a, (n ? n : 1) * sizeof(char *));
        v->u.object.values = arena_alloc(a, (n ? n : 1) * sizeof(yajl_val));
        if (!v->u.object.keys || !v->u.object.values) {
            return 0;
        }
        memcpy((void *)v->u.object.keys, a->keys + f->first, n * sizeof(char *));
        memcpy(v->u.object.values, a->vals + f->first, n * sizeof(yajl_val));
        v->u.object.len = n;
    } else {
        v->u.array.values = arena_alloc(a, (n ? n : 1) * sizeof(yajl_val));
        if (!v->u.array.values) {
            return 0;
        }
        memcpy(v->u.array.values, a->vals + f->first, n * sizeof(yajl_val));
        v->u.array.len = n;
    }
    a->nvals = f->first;
    if (a->depth == 0) {
        /* the root container sat on the stack as its own first entry */
        a->root = v;
        a->nvals = 0;
    }
    return 1;
}

static int on_start_map(void *ctx)
{
    return open_container(ctx, yajl_t_object);
}

static int on_map_key(void *ctx, const unsigned char *s, size_t n)
{
    struct ab_json_arena *a = ctx;

    a->pending_key = arena_strdup(a, s, n);
    return a->pending_key != NULL;
}

static int on_end(void *ctx)
{
    return close_container(ctx);
}

static int on_start_array(void *ctx)
{
    return open_container(ctx, yajl_t_array);
}

static const yajl_callbacks callbacks = {
    on_null,      on_bool,    NULL,   NULL,           on_number, on_string,
    on_start_map, on_map_key, on_end, on_start_array, on_end,
};

yajl_val ab_json_parse_arena(struct ab_json_arena *a, const char *text, size_t len,
                             struct ab_error *err)
{
    yajl_handle h;
    yajl_status st;
    const char *nul = memchr(text, '\0', len);

    if (nul) {
        ab_error_set(err, AB_ERR_PROTOCOL, "invalid JSON: contains a NUL byte at offset %zu",
                     (size_t)(nul - text));
        return NULL;
    }
    a->nvals = 0;
    a->depth = 0;
    a->pending_key = NULL;
    a->root = NULL;
    a->nomem = false;
    a->too_deep = false;
    h = yajl_alloc(&callbacks, NULL, a);
    if (!h) {
        ab_error_set(err, AB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    st = yajl_parse(h, (const unsigned char *)text, len);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }
    if (st != yajl_status_ok) {
        if (a->nomem) {
            ab_error_set(err, AB_ERR_NOMEM, "out of memory parsing a line of %zu bytes", len);
        } else if (a->too_deep) {
            ab_error_set(err, AB_ERR_PROTOCOL, "invalid JSON: nested deeper than %d levels",
                         MAX_DEPTH);
        } else {
            unsigned char *msg = yajl_get_error(h, 0, (const unsigned char *)text, len);
            char reason[256];
            size_t i;

            (void)snprintf(reason, sizeof(reason), "%s", msg ? (const char *)msg : "error");
            for (i = 0; reason[i]; i++) {
                if (reason[i] == '\n' || reason[i] == '\r') {
                    reason[i] = '\0';
                    break;
                }
            }
            ab_error_set(err, AB_ERR_PROTOCOL, "invalid JSON: %s", reason);
            yajl_free_error(h, msg);
        }
        yajl_free(h);
        return NULL;
    }
    yajl_free(h);
    if (!a->root) {
        ab_error_set(err, AB_ERR_PROTOCOL, "invalid JSON: empty input");
    }
    return a->root;
}
