/* catalog.c - the configured catalog: streams, modes, keys, generations. */
/* SPDX-License-Identifier: MIT */
/*
 * The catalog is parsed once at start-up into plain structs so that the hot
 * path never touches the yajl tree. Every problem is AB_ERR_CONFIG and names
 * the stream ("catalog: streams[2] ('orders'): ..."): a bad catalog is
 * something the user fixes in the connection settings, not a retryable fault.
 * Namespaces are normalised: absent, null and "" are all stored as NULL.
 */
#include "ab/catalog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/buf.h"
#include "ab/json.h"

#include "text_int.h"

/* A catalog carries a JSON schema per stream; wide ones are big, but not
 * this big. */
#define CATALOG_MAX_BYTES ((size_t)64 * 1024 * 1024)

static const char *const dest_mode_names[] = {
    "append", "overwrite", "append_dedup", "overwrite_dedup", "update", "soft_delete",
};

const char *ab_dest_mode_name(enum ab_dest_mode m)
{
    size_t i = (size_t)m;

    if (i < sizeof(dest_mode_names) / sizeof(dest_mode_names[0])) {
        return dest_mode_names[i];
    }
    return "unknown";
}

static enum ab_dest_mode dest_mode_parse(const char *s)
{
    size_t i;

    for (i = 0; i < sizeof(dest_mode_names) / sizeof(dest_mode_names[0]); i++) {
        if (strcmp(s, dest_mode_names[i]) == 0) {
            return (enum ab_dest_mode)i;
        }
    }
    return AB_DEST_UNKNOWN;
}

/* Constant return (not ab_error_set's) so that analysers see the failure. */
static enum ab_status nomem(struct ab_error *err)
{
    (void)ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    return AB_ERR_NOMEM;
}

/* ---- paths ---- */

void ab_path_release(struct ab_path *p)
{
    if (!p) {
        return;
    }
    if (p->keys) {
        size_t i;

        for (i = 0; i < p->n; i++) {
            free(p->keys[i]);
        }
        free(p->keys);
    }
    p->keys = NULL;
    p->n = 0;
}

/* Allocates a path of n keys, all NULL (the terminator included). */
static enum ab_status path_alloc(struct ab_path *p, size_t n, struct ab_error *err)
{
    p->n = 0;
    p->keys = calloc(n + 1, sizeof(char *));
    if (!p->keys) {
        return nomem(err);
    }
    return AB_OK;
}

enum ab_status ab_path_parse(struct ab_path *p, const char *dotted, struct ab_error *err)
{
    enum ab_status rc;
    const char *s;
    size_t n = 1;

    p->keys = NULL;
    p->n = 0;
    if (!dotted || !*dotted) {
        return ab_error_set(err, AB_ERR_CONFIG, "empty field path");
    }
    for (s = dotted; *s; s++) {
        if (*s == '.') {
            n++;
        }
    }
    rc = path_alloc(p, n, err);
    if (rc != AB_OK) {
        return rc;
    }
    s = dotted;
    while (p->n < n) {
        const char *dot = strchr(s, '.');
        size_t len = dot ? (size_t)(dot - s) : strlen(s);

        if (len == 0) {
            ab_path_release(p);
            return ab_error_set(err, AB_ERR_CONFIG, "empty segment in field path '%s'", dotted);
        }
        p->keys[p->n] = malloc(len + 1);
        if (!p->keys[p->n]) {
            ab_path_release(p);
            return nomem(err);
        }
        memcpy(p->keys[p->n], s, len);
        p->keys[p->n][len] = '\0';
        p->n++;
        s += len + (dot ? 1 : 0);
    }
    return AB_OK;
}

yajl_val ab_path_get(const struct ab_path *p, yajl_val data)
{
    size_t i;

    if (!p || p->n == 0) {
        return NULL;
    }
    for (i = 0; data && i < p->n; i++) {
        const char *k = p->keys[i];

        if (YAJL_IS_ARRAY(data)) {
            /* an element by its index: "emails.0.email" */
            char *end = NULL;
            unsigned long idx;

            if (*k < '0' || *k > '9' || (*k == '0' && k[1])) {
                return NULL;
            }
            idx = strtoul(k, &end, 10);
            data = *end == '\0' && idx < data->u.array.len ? data->u.array.values[idx] : NULL;
            continue;
        }
        data = ab_json_get(data, k);
    }
    return data;
}

const char *ab_path_str(const struct ab_path *p, char *buf, size_t size)
{
    size_t len = 0;
    size_t i;

    if (!buf || size == 0) {
        return "";
    }
    buf[0] = '\0';
    for (i = 0; p && i < p->n; i++) {
        size_t k = strlen(p->keys[i]);

        if (i > 0 && len + 1 < size) {
            buf[len++] = '.';
        }
        if (k > size - 1 - len) {
            k = size - 1 - len;
        }
        memcpy(buf + len, p->keys[i], k);
        len += k;
    }
    buf[len] = '\0';
    return buf;
}

/* ---- catalog ---- */

static void stream_release(struct ab_stream *s)
{
    size_t i;

    free(s->name);
    free(s->ns);
    free(s->dest_mode_name);
    free(s->destination_object);
    for (i = 0; s->primary_key && i < s->npk; i++) {
        ab_path_release(&s->primary_key[i]);
    }
    free(s->primary_key);
    ab_path_release(&s->cursor);
    memset(s, 0, sizeof(*s));
}

void ab_catalog_release(struct ab_catalog *cat)
{
    size_t i;

    if (!cat) {
        return;
    }
    for (i = 0; cat->streams && i < cat->n; i++) {
        stream_release(&cat->streams[i]);
    }
    free(cat->streams);
    cat->streams = NULL;
    cat->n = 0;
}

/* Error for stream i: "catalog: streams[i] ('name'): <what>". */
static enum ab_status stream_error(struct ab_error *err, size_t i, const char *name,
                                   const char *what)
{
    if (name) {
        return ab_error_set(err, AB_ERR_CONFIG, "catalog: streams[%zu] ('%s'): %s", i, name, what);
    }
    return ab_error_set(err, AB_ERR_CONFIG, "catalog: streams[%zu]: %s", i, what);
}

/* A JSON array of strings into p; what names the field for messages. */
static enum ab_status path_from_json(struct ab_path *p, yajl_val arr, char *what, size_t whatsz,
                                     const char *field, struct ab_error *err)
{
    enum ab_status rc;
    size_t i;

    if (!arr || arr->type != yajl_t_array) {
        (void)snprintf(what, whatsz, "%s must be an array of strings", field);
        return AB_ERR_CONFIG;
    }
    for (i = 0; i < arr->u.array.len; i++) {
        if (!ab_json_str(arr->u.array.values[i])) {
            (void)snprintf(what, whatsz, "%s[%zu] must be a string", field, i);
            return AB_ERR_CONFIG;
        }
    }
    rc = path_alloc(p, arr->u.array.len, err);
    if (rc != AB_OK) {
        return rc;
    }
    for (i = 0; i < arr->u.array.len; i++) {
        p->keys[i] = strdup(arr->u.array.values[i]->u.string);
        if (!p->keys[i]) {
            ab_path_release(p);
            return nomem(err);
        }
        p->n = i + 1;
    }
    return AB_OK;
}

/* [[path...]...] into s->primary_key. */
static enum ab_status keys_from_json(struct ab_stream *s, yajl_val arr, const char *field,
                                     char *what, size_t whatsz, struct ab_error *err)
{
    size_t i;

    if (arr->type != yajl_t_array) {
        (void)snprintf(what, whatsz, "%s must be an array of field paths", field);
        return AB_ERR_CONFIG;
    }
    if (arr->u.array.len == 0) {
        return AB_OK;
    }
    s->primary_key = calloc(arr->u.array.len, sizeof(struct ab_path));
    if (!s->primary_key) {
        return nomem(err);
    }
    for (i = 0; i < arr->u.array.len; i++) {
        yajl_val p = arr->u.array.values[i];
        enum ab_status rc;
        char sub[64];

        (void)snprintf(sub, sizeof(sub), "%s[%zu]", field, i);
        if (!p || p->type != yajl_t_array || p->u.array.len == 0) {
            (void)snprintf(what, whatsz, "%s must be a non-empty array of strings", sub);
            return AB_ERR_CONFIG;
        }
        rc = path_from_json(&s->primary_key[i], p, what, whatsz, sub, err);
        if (rc != AB_OK) {
            return rc;
        }
        s->npk = i + 1;
    }
    return AB_OK;
}

/* Integer member or -1 when absent or null. */
static bool int_field(yajl_val obj, const char *key, int64_t *out)
{
    yajl_val v = ab_json_get(obj, key);

    *out = -1;
    if (ab_json_is_null(v)) {
        return true;
    }
    if (v->type != yajl_t_number || strpbrk(v->u.number.r, ".eE")) {
        return false;
    }
    return ab_json_int(v, out);
}

static bool ns_equal(const char *a, const char *b)
{
    if (!a) {
        a = "";
    }
    if (!b) {
        b = "";
    }
    return strcmp(a, b) == 0;
}

/* stream.name and stream.namespace. */
static enum ab_status parse_names(struct ab_stream *s, yajl_val cs, size_t idx,
                                  struct ab_error *err)
{
    yajl_val st = ab_json_get(cs, "stream");
    const char *name = ab_json_str(ab_json_get(st, "name"));
    yajl_val v;
    const char *ns;

    if (!cs || cs->type != yajl_t_object) {
        return stream_error(err, idx, NULL, "must be an object");
    }
    if (!st || st->type != yajl_t_object) {
        return stream_error(err, idx, NULL, "missing 'stream' object");
    }
    if (!name || !*name) {
        return stream_error(err, idx, NULL, "missing stream.name");
    }
    s->name = strdup(name);
    if (!s->name) {
        return nomem(err);
    }
    v = ab_json_get(st, "namespace");
    if (!ab_json_is_null(v) && !ab_json_str(v)) {
        return stream_error(err, idx, name, "stream.namespace must be a string");
    }
    ns = ab_json_str(v);
    if (ns && *ns) {
        s->ns = strdup(ns);
        if (!s->ns) {
            return nomem(err);
        }
    }
    return AB_OK;
}

/* sync_mode, destination_sync_mode and destination_object_name. */
static enum ab_status parse_modes(struct ab_stream *s, yajl_val cs, size_t idx,
                                  struct ab_error *err)
{
    char what[256];
    yajl_val v = ab_json_get(cs, "sync_mode");
    const char *str = ab_json_str(v);

    if (ab_json_is_null(v) || (str && strcmp(str, "full_refresh") == 0)) {
        s->sync_mode = AB_SYNC_FULL_REFRESH;
    } else if (str && strcmp(str, "incremental") == 0) {
        s->sync_mode = AB_SYNC_INCREMENTAL;
    } else {
        (void)snprintf(what, sizeof(what), "unknown sync_mode '%s'", str ? str : "(not a string)");
        return stream_error(err, idx, s->name, what);
    }

    v = ab_json_get(cs, "destination_sync_mode");
    str = ab_json_str(v);
    if (ab_json_is_null(v)) {
        return stream_error(err, idx, s->name, "missing destination_sync_mode");
    }
    if (!str) {
        return stream_error(err, idx, s->name, "destination_sync_mode must be a string");
    }
    s->dest_mode = dest_mode_parse(str);
    if (s->dest_mode == AB_DEST_UNKNOWN) {
        (void)snprintf(what, sizeof(what), "unknown destination_sync_mode '%s'", str);
        return stream_error(err, idx, s->name, what);
    }
    s->dest_mode_name = strdup(str);
    if (!s->dest_mode_name) {
        return nomem(err);
    }

    v = ab_json_get(cs, "destination_object_name");
    if (ab_json_is_null(v)) {
        return AB_OK;
    }
    if (!ab_json_str(v)) {
        return stream_error(err, idx, s->name, "destination_object_name must be a string");
    }
    s->destination_object = strdup(v->u.string);
    return s->destination_object ? AB_OK : nomem(err);
}

/* primary_key and cursor_field, each falling back to the source's. */
static enum ab_status parse_keys(struct ab_stream *s, yajl_val cs, size_t idx, struct ab_error *err)
{
    char what[256];
    enum ab_status rc = AB_OK;
    yajl_val st = ab_json_get(cs, "stream");
    yajl_val v = ab_json_get(cs, "primary_key");

    what[0] = '\0';
    if (!ab_json_is_null(v)) {
        rc = keys_from_json(s, v, "primary_key", what, sizeof(what), err);
    } else {
        v = ab_json_get(st, "source_defined_primary_key");
        if (!ab_json_is_null(v)) {
            rc = keys_from_json(s, v, "stream.source_defined_primary_key", what, sizeof(what), err);
        }
    }
    if (rc == AB_OK) {
        v = ab_json_get(cs, "cursor_field");
        if (!ab_json_is_null(v)) {
            rc = path_from_json(&s->cursor, v, what, sizeof(what), "cursor_field", err);
        } else {
            v = ab_json_get(st, "default_cursor_field");
            if (!ab_json_is_null(v)) {
                rc = path_from_json(&s->cursor, v, what, sizeof(what),
                                    "stream.default_cursor_field", err);
            }
        }
    }
    if (rc == AB_ERR_CONFIG) {
        return stream_error(err, idx, s->name, what);
    }
    return rc;
}

/* generation_id, minimum_generation_id, sync_id: -1 when absent or null. */
static enum ab_status parse_ids(struct ab_stream *s, yajl_val cs, size_t idx, struct ab_error *err)
{
    static const char *const fields[] = {"generation_id", "minimum_generation_id", "sync_id"};
    int64_t *const dst[] = {&s->generation_id, &s->minimum_generation_id, &s->sync_id};
    char what[128];
    size_t i;

    for (i = 0; i < 3; i++) {
        if (!int_field(cs, fields[i], dst[i])) {
            (void)snprintf(what, sizeof(what), "%s must be an integer", fields[i]);
            return stream_error(err, idx, s->name, what);
        }
    }
    return AB_OK;
}

static enum ab_status stream_parse(struct ab_stream *s, yajl_val cs, size_t idx,
                                   struct ab_error *err)
{
    enum ab_status rc = parse_names(s, cs, idx, err);

    if (rc == AB_OK) {
        rc = parse_modes(s, cs, idx, err);
    }
    if (rc == AB_OK) {
        rc = parse_keys(s, cs, idx, err);
    }
    if (rc == AB_OK) {
        rc = parse_ids(s, cs, idx, err);
    }
    return rc;
}

enum ab_status ab_catalog_parse(struct ab_catalog *cat, yajl_val root, struct ab_error *err)
{
    enum ab_status rc;
    yajl_val streams = ab_json_get(root, "streams");
    size_t i;
    size_t j;

    cat->streams = NULL;
    cat->n = 0;
    if (!root || root->type != yajl_t_object) {
        return ab_error_set(err, AB_ERR_CONFIG, "catalog: must be a JSON object");
    }
    if (!streams || streams->type != yajl_t_array) {
        return ab_error_set(err, AB_ERR_CONFIG, "catalog: 'streams' must be an array");
    }
    if (streams->u.array.len == 0) {
        return AB_OK;
    }
    cat->streams = calloc(streams->u.array.len, sizeof(struct ab_stream));
    if (!cat->streams) {
        return nomem(err);
    }
    for (i = 0; i < streams->u.array.len; i++) {
        struct ab_stream *s = &cat->streams[i];

        /* counted first so that release frees a half-parsed stream */
        cat->n = i + 1;
        rc = stream_parse(s, streams->u.array.values[i], i, err);
        if (rc != AB_OK) {
            goto fail;
        }
        for (j = 0; j < i; j++) {
            if (strcmp(cat->streams[j].name, s->name) == 0 && ns_equal(cat->streams[j].ns, s->ns)) {
                char what[64];

                (void)snprintf(what, sizeof(what), "duplicate of streams[%zu]", j);
                rc = stream_error(err, i, s->name, what);
                goto fail;
            }
        }
    }
    return AB_OK;
fail:
    ab_catalog_release(cat);
    return rc;
}

enum ab_status ab_catalog_load(struct ab_catalog *cat, const char *path, struct ab_error *err)
{
    struct ab_error perr;
    enum ab_status rc;
    struct ab_buf text;
    char why[256];
    yajl_val root;

    ab_error_init(&perr);
    cat->streams = NULL;
    cat->n = 0;
    rc = ab_buf_read_file(path, CATALOG_MAX_BYTES, &text, why, sizeof(why));
    if (rc != AB_OK) {
        return ab_error_set(err, rc, "cannot read catalog '%s': %s", path, why);
    }
    root = ab_json_parse(text.data, text.len, &perr);
    ab_buf_release(&text);
    if (!root) {
        return ab_error_set(err, AB_ERR_CONFIG, "cannot read catalog '%s': %s", path, perr.message);
    }
    rc = ab_catalog_parse(cat, root, err);
    ab_json_free(root);
    return rc;
}

long ab_catalog_find(const struct ab_catalog *cat, const char *name, const char *ns)
{
    size_t i;

    if (!cat || !name) {
        return -1;
    }
    for (i = 0; i < cat->n; i++) {
        if (strcmp(cat->streams[i].name, name) == 0 && ns_equal(cat->streams[i].ns, ns)) {
            return (long)i;
        }
    }
    return -1;
}

/* ---- the closest streams ------------------------------------------------- */

/* Names longer than this are compared by their first CLOSE_MAX bytes. */
#define CLOSE_MAX 128
#define CLOSE_N   3
_Static_assert(CLOSE_MAX <= AB_EDIT_MAX, "stream names are compared whole");

/* Levenshtein distance of the first CLOSE_MAX bytes of a and b. */
static size_t edit_distance(const char *a, const char *b)
{
    return ab_edit_distance(a, strnlen(a, CLOSE_MAX), b, strnlen(b, CLOSE_MAX), false);
}

/* "ns.name" or "name", at most CLOSE_MAX bytes. */
static void stream_form(char *out, const char *name, const char *ns)
{
    if (ns && *ns) {
        (void)snprintf(out, CLOSE_MAX + 1, "%s.%s", ns, name);
    } else {
        (void)snprintf(out, CLOSE_MAX + 1, "%s", name);
    }
}

struct close_pick {
    const char *text; /* NULL when empty */
    size_t dist;
};

/* Keeps the CLOSE_N smallest distances, first come first kept on ties. */
static void pick_offer(struct close_pick *picks, const char *text, size_t dist)
{
    size_t i;
    size_t k;

    for (i = 0; i < CLOSE_N; i++) {
        if (picks[i].text && strcmp(picks[i].text, text) == 0) {
            return;
        }
    }
    for (i = 0; i < CLOSE_N; i++) {
        if (!picks[i].text || dist < picks[i].dist) {
            for (k = CLOSE_N - 1; k > i; k--) {
                picks[k] = picks[k - 1];
            }
            picks[i].text = text;
            picks[i].dist = dist;
            return;
        }
    }
}

static void put_quoted(char *out, size_t size, size_t *n, const char *text)
{
    size_t i;

    if (*n + 1 < size) {
        out[(*n)++] = '\'';
    }
    for (i = 0; i < CLOSE_MAX && text[i] && *n + 1 < size; i++) {
        unsigned char ch = (unsigned char)text[i];

        out[(*n)++] = (char)(ch < 0x20 || ch == 0x7F || ch == '\'' ? '?' : ch);
    }
    if (*n + 1 < size) {
        out[(*n)++] = '\'';
    }
    out[*n] = '\0';
}

static void put_text(char *out, size_t size, size_t *n, const char *text)
{
    for (; *text && *n + 1 < size; text++) {
        out[(*n)++] = *text;
    }
    out[*n] = '\0';
}

void ab_catalog_closest(const struct ab_catalog *cat, const char *name, const char *ns, char *out,
                        size_t size)
{
    struct close_pick streams[CLOSE_N] = {{NULL, 0}};
    struct close_pick spaces[CLOSE_N] = {{NULL, 0}};
    char(*forms)[CLOSE_MAX + 1] = NULL;
    char want[CLOSE_MAX + 1];
    size_t n = 0;
    size_t i;

    if (size == 0) {
        return;
    }
    out[0] = '\0';
    if (!cat || cat->n == 0) {
        put_text(out, size, &n, "the catalog has no streams");
        return;
    }
    forms = calloc(cat->n, sizeof(*forms));
    stream_form(want, name ? name : "", ns);
    for (i = 0; i < cat->n; i++) {
        const struct ab_stream *s = &cat->streams[i];

        if (forms) {
            stream_form(forms[i], s->name, s->ns);
            pick_offer(streams, forms[i], edit_distance(want, forms[i]));
        }
        if (s->ns) {
            pick_offer(spaces, s->ns, edit_distance(ns ? ns : "", s->ns));
        }
    }
    if (forms) {
        put_text(out, size, &n, "closest streams in the catalog: ");
        for (i = 0; i < CLOSE_N && streams[i].text; i++) {
            if (i > 0) {
                put_text(out, size, &n, ", ");
            }
            put_quoted(out, size, &n, streams[i].text);
        }
        put_text(out, size, &n, "; ");
    }
    if (!spaces[0].text) {
        put_text(out, size, &n, "no stream of the catalog has a namespace");
    } else {
        put_text(out, size, &n, "namespaces in the catalog: ");
        for (i = 0; i < CLOSE_N && spaces[i].text; i++) {
            if (i > 0) {
                put_text(out, size, &n, ", ");
            }
            put_quoted(out, size, &n, spaces[i].text);
        }
    }
    free(forms);
}
