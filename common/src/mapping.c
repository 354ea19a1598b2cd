/* mapping.c - which stream loads which target object, and how fields map. */
/* SPDX-License-Identifier: MIT */
/*
 * Explicit mappings live in ms->m (parsed once from the config). Identity
 * mappings made up by ab_mappings_resolve() live in ms->implicit, each in its
 * own allocation, so a pointer returned by resolve stays valid until
 * ab_mappings_release() however many streams are resolved after it.
 */
#include "ab/mapping.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/assert.h"
#include "ab/json.h"
#include "ab/pager.h"

static bool ns_equal(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static bool in_list(const char *const *list, const char *s)
{
    for (; list && *list; list++) {
        if (strcmp(*list, s) == 0) {
            return true;
        }
    }
    return false;
}

enum xf_as { XF_AS_IS = 0, XF_STRING, XF_DECIMAL, XF_INTEGER, XF_RFC3339, XF_ARRAY, XF_PAIRS };

struct ab_mapping_xform {
    enum xf_as as;
    int scale;
    int utc_offset;
    yajl_val value;           /* "value": a constant (owned) */
    yajl_val map;             /* "map" (owned) */
    yajl_val dflt;            /* "default" (owned) */
    yajl_val keys;            /* "keys" of "pairs" (owned) */
    char *separator, *assign; /* "separator", "assign" of "pairs" (owned) */
    struct ab_mapping *each;  /* "each" or "fields": nested fields (owned) */
    bool object;              /* "fields": an object made of this record's fields */
    bool dotted;              /* object made of dotted targets ("a.b"): absent when empty */
    yajl_val cache;           /* the last computed value (owned) */
    struct ab_buf buf;
};

static void mapping_release(struct ab_mapping *m);

static void xform_free(struct ab_mapping_xform *x)
{
    if (!x) {
        return;
    }
    ab_json_free(x->value);
    ab_json_free(x->map);
    ab_json_free(x->dflt);
    ab_json_free(x->keys);
    free(x->separator);
    free(x->assign);
    ab_json_free(x->cache);
    if (x->each) {
        mapping_release(x->each);
        free(x->each);
    }
    ab_buf_release(&x->buf);
    free(x);
}

static void mapping_release(struct ab_mapping *m)
{
    size_t i;

    free(m->stream);
    free(m->ns);
    free(m->object);
    for (i = 0; m->fields && i < m->nfields; i++) {
        free(m->fields[i].to);
        ab_path_release(&m->fields[i].from);
        xform_free(m->fields[i].xf);
    }
    free(m->fields);
    memset(m, 0, sizeof(*m));
}

void ab_mappings_release(struct ab_mappings *ms)
{
    size_t i;

    if (!ms) {
        return;
    }
    for (i = 0; ms->m && i < ms->n; i++) {
        mapping_release(&ms->m[i]);
    }
    free(ms->m);
    for (i = 0; ms->implicit && i < ms->nimplicit; i++) {
        mapping_release(ms->implicit[i]);
        free(ms->implicit[i]);
    }
    free(ms->implicit);
    memset(ms, 0, sizeof(*ms));
}

/* "customers, orders" (for messages). */
static void list_text(char *buf, size_t size, const char *const *list)
{
    size_t len = 0;

    buf[0] = '\0';
    for (; list && *list && len + 1 < size; list++) {
        int n = snprintf(buf + len, size - len, "%s%s", len ? ", " : "", *list);

        if (n < 0) {
            break;
        }
        len += (size_t)n;
    }
}

/* AB_ERR_CONFIG with a message, as a constant so that analysers (which do
 * not follow variadic calls) see the failure. */
#define CONFIG_ERROR(err, ...)                                                                     \
    ((void)ab_error_set((err), AB_ERR_CONFIG, __VA_ARGS__), AB_ERR_CONFIG)

/* Constant return (not ab_error_set's) so that analysers see the failure. */
static enum ab_status nomem(struct ab_error *err)
{
    (void)ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    return AB_ERR_NOMEM;
}

static enum ab_status parse_fields(struct ab_mapping *m, yajl_val fields, size_t idx,
                                   struct ab_error *err);

/* The transform object of field f (see mapping.h). */
static enum ab_status parse_xform(struct ab_mapping_field *f, yajl_val spec, size_t idx,
                                  struct ab_error *err)
{
    static const char *const known[] = {"from", "as",        "scale",  "utc_offset_minutes",
                                        "map",  "default",   "value",  "each",
                                        "keys", "separator", "assign", "fields",
                                        NULL};
    struct ab_mapping_xform *x = calloc(1, sizeof(*x));
    const char *from = ab_json_str(ab_json_get(spec, "from"));
    const char *as = ab_json_str(ab_json_get(spec, "as"));
    yajl_val v;
    int64_t n;
    size_t i;

    if (!x) {
        return nomem(err);
    }
    f->xf = x;
    ab_buf_init(&x->buf, AB_BUF_UNBOUNDED);
    x->scale = 2;
    for (i = 0; i < spec->u.object.len; i++) {
        if (!in_list(known, spec->u.object.keys[i])) {
            return CONFIG_ERROR(err,
                                "stream_mappings[%zu].fields.%s: unknown transform member "
                                "'%s' (from, as, scale, utc_offset_minutes, map, default, value, "
                                "each, fields, keys, separator, assign)",
                                idx, f->to, spec->u.object.keys[i]);
        }
    }
    v = ab_json_get(spec, "fields");
    if (v) {
        if (spec->u.object.len != 1) {
            return CONFIG_ERROR(err, "stream_mappings[%zu].fields.%s: \"fields\" stands alone", idx,
                                f->to);
        }
        x->object = true;
        x->each = calloc(1, sizeof(*x->each));
        if (!x->each) {
            return nomem(err);
        }
        return parse_fields(x->each, v, idx, err);
    }
    v = ab_json_get(spec, "value");
    if (v) {
        if (spec->u.object.len != 1) {
            return CONFIG_ERROR(err, "stream_mappings[%zu].fields.%s: \"value\" stands alone", idx,
                                f->to);
        }
        x->value = ab_json_clone(v);
        return x->value ? AB_OK : nomem(err);
    }
    if (!from || !*from) {
        return CONFIG_ERROR(err,
                            "stream_mappings[%zu].fields.%s: a transform needs \"from\" (a "
                            "source field path) or \"value\"",
                            idx, f->to);
    }
    if (ab_path_parse(&f->from, from, err) != AB_OK) {
        return ab_error_prefix(err, "stream_mappings[%zu].fields.%s", idx, f->to);
    }
    if (as) {
        if (strcmp(as, "string") == 0) {
            x->as = XF_STRING;
        } else if (strcmp(as, "decimal") == 0) {
            x->as = XF_DECIMAL;
        } else if (strcmp(as, "integer") == 0) {
            x->as = XF_INTEGER;
        } else if (strcmp(as, "rfc3339") == 0) {
            x->as = XF_RFC3339;
        } else if (strcmp(as, "array") == 0) {
            x->as = XF_ARRAY;
        } else if (strcmp(as, "pairs") == 0) {
            x->as = XF_PAIRS;
        } else {
            return CONFIG_ERROR(err,
                                "stream_mappings[%zu].fields.%s.as: '%s' is not one of string, "
                                "decimal, integer, rfc3339, array, pairs",
                                idx, f->to, as);
        }
    } else if (ab_json_get(spec, "as")) {
        return CONFIG_ERROR(err, "stream_mappings[%zu].fields.%s.as: must be a string", idx, f->to);
    }
    if (x->as == XF_PAIRS) {
        static const char *const texts[] = {"separator", "assign"};
        static const char *const dflts[] = {";", ":"};
        char **dst[] = {&x->separator, &x->assign};

        for (i = 0; i < 2; i++) {
            const char *t = ab_json_str(ab_json_get(spec, texts[i]));

            if (ab_json_get(spec, texts[i]) && (!t || !*t)) {
                return CONFIG_ERROR(err, "stream_mappings[%zu].fields.%s.%s: a non-empty text", idx,
                                    f->to, texts[i]);
            }
            *dst[i] = strdup(t ? t : dflts[i]);
            if (!*dst[i]) {
                return nomem(err);
            }
        }
        v = ab_json_get(spec, "keys");
        if (v) {
            for (i = 0; v->type == yajl_t_object && i < v->u.object.len; i++) {
                if (!ab_json_str(v->u.object.values[i])) {
                    break;
                }
            }
            if (v->type != yajl_t_object || i < v->u.object.len) {
                return CONFIG_ERROR(err, "stream_mappings[%zu].fields.%s.keys: an object of texts",
                                    idx, f->to);
            }
            x->keys = ab_json_clone(v);
            if (!x->keys) {
                return nomem(err);
            }
        }
    } else if (ab_json_get(spec, "keys") || ab_json_get(spec, "separator") ||
               ab_json_get(spec, "assign")) {
        return CONFIG_ERROR(err,
                            "stream_mappings[%zu].fields.%s: \"keys\", \"separator\" and "
                            "\"assign\" go with \"as\": \"pairs\"",
                            idx, f->to);
    }
    v = ab_json_get(spec, "scale");
    if (v) {
        if (!ab_json_int(v, &n) || n < 0 || n > 12) {
            return CONFIG_ERROR(err, "stream_mappings[%zu].fields.%s.scale: 0 to 12", idx, f->to);
        }
        x->scale = (int)n;
    }
    v = ab_json_get(spec, "utc_offset_minutes");
    if (v) {
        if (!ab_json_int(v, &n) || n < -720 || n > 840) {
            return CONFIG_ERROR(
                err, "stream_mappings[%zu].fields.%s.utc_offset_minutes: -720 to 840", idx, f->to);
        }
        x->utc_offset = (int)n;
    }
    v = ab_json_get(spec, "map");
    if (v) {
        if (v->type != yajl_t_object) {
            return CONFIG_ERROR(err, "stream_mappings[%zu].fields.%s.map: must be an object", idx,
                                f->to);
        }
        x->map = ab_json_clone(v);
        if (!x->map) {
            return nomem(err);
        }
    }
    v = ab_json_get(spec, "default");
    if (v) {
        x->dflt = ab_json_clone(v);
        if (!x->dflt) {
            return nomem(err);
        }
    }
    v = ab_json_get(spec, "each");
    if (v) {
        if (x->map || x->as != XF_AS_IS) {
            return CONFIG_ERROR(err,
                                "stream_mappings[%zu].fields.%s: \"each\" goes without \"as\" "
                                "and \"map\"",
                                idx, f->to);
        }
        x->each = calloc(1, sizeof(*x->each));
        if (!x->each) {
            return nomem(err);
        }
        return parse_fields(x->each, v, idx, err);
    }
    return AB_OK;
}

/* True when target a is a dotted prefix of target b ("a" of "a.b"). */
static bool target_prefix(const char *a, const char *b)
{
    size_t n = strlen(a);

    return strncmp(a, b, n) == 0 && b[n] == '.';
}

/* Checks the target name to (a name, or a dotted path of names) and that no
 * earlier target of fields (keys[0..i)) is the same or sets it too. */
static enum ab_status check_target(yajl_val fields, size_t i, size_t idx, struct ab_error *err)
{
    const char *to = fields->u.object.keys[i];
    const char *p = to;
    size_t depth = 1;
    size_t j;

    if (!*to) {
        return CONFIG_ERROR(err, "stream_mappings[%zu].fields: empty target field name", idx);
    }
    for (;; p++) {
        if (*p == '.' && (p == to || p[1] == '.' || p[1] == '\0')) {
            return CONFIG_ERROR(
                err, "stream_mappings[%zu].fields.%s: empty part in the target path", idx, to);
        }
        if (*p == '\0') {
            break;
        }
        depth += *p == '.';
    }
    if (depth > AB_MAPPING_TARGET_DEPTH) {
        return CONFIG_ERROR(err,
                            "stream_mappings[%zu].fields.%s: a target path has at most %d parts",
                            idx, to, AB_MAPPING_TARGET_DEPTH);
    }
    for (j = 0; j < i; j++) {
        const char *other = fields->u.object.keys[j];

        if (strcmp(other, to) == 0) {
            return CONFIG_ERROR(err, "stream_mappings[%zu].fields.%s: listed twice", idx, to);
        }
        if (target_prefix(other, to) || target_prefix(to, other)) {
            const char *a = target_prefix(other, to) ? other : to;

            return CONFIG_ERROR(err,
                                "stream_mappings[%zu].fields: '%s' and '%s' both set '%s' (a "
                                "target is either one value or an object of dotted targets)",
                                idx, a, a == other ? to : other, a);
        }
    }
    return AB_OK;
}

/* A new zeroed field at the end of m->fields (grown by one). */
static struct ab_mapping_field *add_field(struct ab_mapping *m, struct ab_error *err)
{
    struct ab_mapping_field *f = realloc(m->fields, (m->nfields + 1) * sizeof(*f));

    if (!f) {
        (void)nomem(err);
        return NULL;
    }
    m->fields = f;
    f += m->nfields++;
    memset(f, 0, sizeof(*f));
    return f;
}

/* The object field of m named by to[0..len), made (with an empty nested
 * mapping) when m has none. check_target() made sure that no plain field
 * has that name. */
static struct ab_mapping *dotted_parent(struct ab_mapping *m, const char *to, size_t len,
                                        struct ab_error *err)
{
    struct ab_mapping_field *f;
    struct ab_mapping_xform *x;
    size_t i;

    for (i = 0; i < m->nfields; i++) {
        if (strncmp(m->fields[i].to, to, len) == 0 && m->fields[i].to[len] == '\0') {
            AB_ASSERT(m->fields[i].xf && m->fields[i].xf->dotted);
            return m->fields[i].xf->each;
        }
    }
    f = add_field(m, err);
    if (!f) {
        return NULL;
    }
    f->to = strndup(to, len);
    x = calloc(1, sizeof(*x));
    f->xf = x;
    if (x) {
        ab_buf_init(&x->buf, AB_BUF_UNBOUNDED);
        x->object = true;
        x->dotted = true;
        x->each = calloc(1, sizeof(*x->each));
    }
    if (!f->to || !x || !x->each) {
        (void)nomem(err);
        return NULL;
    }
    return x->each;
}

static enum ab_status parse_fields(struct ab_mapping *m, yajl_val fields, size_t idx,
                                   struct ab_error *err)
{
    size_t i;

    if (fields->type != yajl_t_object) {
        return CONFIG_ERROR(err,
                            "stream_mappings[%zu].fields: must be an object of "
                            "{\"target\": \"source.path\"}",
                            idx);
    }
    if (fields->u.object.len == 0) {
        return CONFIG_ERROR(err, "stream_mappings[%zu].fields: must list at least one field", idx);
    }
    for (i = 0; i < fields->u.object.len; i++) {
        const char *to = fields->u.object.keys[i];
        const char *from = ab_json_str(fields->u.object.values[i]);
        const char *dot;
        struct ab_mapping *parent = m;
        struct ab_mapping_field *f;
        enum ab_status rc = check_target(fields, i, idx, err);

        if (rc != AB_OK) {
            return rc;
        }
        if (!from && fields->u.object.values[i]->type != yajl_t_object) {
            return CONFIG_ERROR(err,
                                "stream_mappings[%zu].fields.%s: must be a source field path "
                                "string or a transform object",
                                idx, to);
        }
        /* "a.b.c": c in the object b in the object a */
        for (const char *p = to; (dot = strchr(p, '.')) != NULL; p = dot + 1) {
            parent = dotted_parent(parent, p, (size_t)(dot - p), err);
            if (!parent) {
                return AB_ERR_NOMEM;
            }
        }
        f = add_field(parent, err);
        if (!f) {
            return AB_ERR_NOMEM;
        }
        /* the whole target path while parsing, for the messages */
        f->to = strdup(to);
        if (!f->to) {
            return nomem(err);
        }
        if (!from) {
            rc = parse_xform(f, fields->u.object.values[i], idx, err);
        } else {
            rc = ab_path_parse(&f->from, from, err);
            if (rc == AB_ERR_CONFIG) {
                (void)ab_error_prefix(err, "stream_mappings[%zu].fields.%s", idx, to);
            }
        }
        if (rc != AB_OK) {
            return rc;
        }
        dot = strrchr(f->to, '.');
        if (dot) {
            memmove(f->to, dot + 1, strlen(dot + 1) + 1);
        }
    }
    return AB_OK;
}

static enum ab_status parse_one(struct ab_mapping *m, yajl_val e, size_t idx,
                                const char *const *objects, struct ab_error *err)
{
    yajl_val v;
    const char *stream = ab_json_str(ab_json_get(e, "stream"));
    const char *object;

    if (!e || e->type != yajl_t_object) {
        return CONFIG_ERROR(err, "stream_mappings[%zu]: must be an object", idx);
    }
    if (!stream || !*stream) {
        return CONFIG_ERROR(err, "stream_mappings[%zu].stream: is required (a stream name)", idx);
    }
    m->stream = strdup(stream);
    if (!m->stream) {
        return nomem(err);
    }
    v = ab_json_get(e, "namespace");
    if (!ab_json_is_null(v)) {
        if (!ab_json_str(v)) {
            return CONFIG_ERROR(err, "stream_mappings[%zu].namespace: must be a string", idx);
        }
        m->ns = strdup(v->u.string);
        if (!m->ns) {
            return nomem(err);
        }
    }
    v = ab_json_get(e, "object");
    if (!ab_json_is_null(v) && !ab_json_str(v)) {
        return CONFIG_ERROR(err, "stream_mappings[%zu].object: must be a string", idx);
    }
    /* no "object": the stream loads the object of the same name */
    object = ab_json_str(v) ? v->u.string : stream;
    if (objects && !in_list(objects, object)) {
        char names[512];

        list_text(names, sizeof(names), objects);
        return CONFIG_ERROR(err,
                            "stream_mappings[%zu].object: unknown object '%s' (expected one of "
                            "%s)",
                            idx, object, names);
    }
    m->object = strdup(object);
    if (!m->object) {
        return nomem(err);
    }
    v = ab_json_get(e, "fields");
    if (ab_json_is_null(v)) {
        m->identity = true;
        return AB_OK;
    }
    return parse_fields(m, v, idx, err);
}

enum ab_status ab_mappings_parse(struct ab_mappings *ms, yajl_val arr, const char *const *objects,
                                 struct ab_error *err)
{
    enum ab_status rc;
    size_t i;

    memset(ms, 0, sizeof(*ms));
    if (ab_json_is_null(arr)) {
        return AB_OK;
    }
    if (arr->type != yajl_t_array) {
        return CONFIG_ERROR(err, "stream_mappings: must be an array");
    }
    if (arr->u.array.len == 0) {
        return AB_OK;
    }
    ms->m = calloc(arr->u.array.len, sizeof(*ms->m));
    if (!ms->m) {
        return nomem(err);
    }
    for (i = 0; i < arr->u.array.len; i++) {
        size_t j;

        ms->n = i + 1; /* so that release frees a half-parsed entry */
        rc = parse_one(&ms->m[i], arr->u.array.values[i], i, objects, err);
        if (rc != AB_OK) {
            goto fail;
        }
        for (j = 0; j < i; j++) {
            if (strcmp(ms->m[j].stream, ms->m[i].stream) == 0 &&
                ((!ms->m[j].ns && !ms->m[i].ns) ||
                 (ms->m[j].ns && ms->m[i].ns && strcmp(ms->m[j].ns, ms->m[i].ns) == 0))) {
                rc = CONFIG_ERROR(err,
                                  "stream_mappings[%zu]: stream '%s' is already mapped by "
                                  "stream_mappings[%zu]",
                                  i, ms->m[i].stream, j);
                goto fail;
            }
        }
    }
    return AB_OK;
fail:
    ab_mappings_release(ms);
    return rc;
}

static enum ab_status add_identity(struct ab_mappings *ms, const char *stream,
                                   struct ab_mapping **out, struct ab_error *err)
{
    struct ab_mapping **list;
    struct ab_mapping *m;

    list = realloc(ms->implicit,
                   (ms->nimplicit + 1) * sizeof(*list)); /* NOLINT(bugprone-sizeof-expression) */
    if (!list) {
        return nomem(err);
    }
    ms->implicit = list;
    m = calloc(1, sizeof(*m));
    if (!m) {
        return nomem(err);
    }
    m->stream = strdup(stream);
    m->object = strdup(stream);
    m->identity = true;
    if (!m->stream || !m->object) {
        mapping_release(m);
        free(m);
        return nomem(err);
    }
    list[ms->nimplicit++] = m;
    *out = m;
    return AB_OK;
}

const struct ab_mapping *ab_mappings_resolve(struct ab_mappings *ms, const char *stream,
                                             const char *ns, const char *const *objects,
                                             struct ab_error *err)
{
    struct ab_mapping *any = NULL;
    struct ab_mapping *m = NULL;
    size_t i;

    for (i = 0; i < ms->n; i++) {
        if (strcmp(ms->m[i].stream, stream) != 0) {
            continue;
        }
        if (ms->m[i].ns && ns_equal(ms->m[i].ns, ns)) {
            return &ms->m[i]; /* an exact namespace beats "any namespace" */
        }
        if (!ms->m[i].ns && !any) {
            any = &ms->m[i];
        }
    }
    if (any) {
        return any;
    }
    for (i = 0; i < ms->nimplicit; i++) {
        if (strcmp(ms->implicit[i]->stream, stream) == 0) {
            return ms->implicit[i];
        }
    }
    if (!in_list(objects, stream)) {
        char names[512];

        list_text(names, sizeof(names), objects);
        if (ns && *ns) {
            (void)ab_error_set(
                err, AB_ERR_CONFIG,
                "stream '%s' (namespace '%s') has no entry in stream_mappings and is "
                "not an object name (%s)",
                stream, ns, names);
        } else {
            (void)ab_error_set(err, AB_ERR_CONFIG,
                               "stream '%s' has no entry in stream_mappings and is not an object "
                               "name (%s)",
                               stream, names);
        }
        return NULL;
    }
    if (add_identity(ms, stream, &m, err) != AB_OK) {
        return NULL;
    }
    return m;
}

static bool is_airbyte_field(const char *key)
{
    return strncmp(key, "_ab_", 4) == 0 || strncmp(key, "_airbyte_", 9) == 0;
}

/* The number or numeric text v as a double. */
static bool numeric(yajl_val v, double *out)
{
    const char *s = ab_json_str(v);
    char *end = NULL;

    if (ab_json_double(v, out)) {
        return true;
    }
    if (!s || !*s) {
        return false;
    }
    *out = strtod(s, &end);
    return end && *end == '\0';
}

/* Appends s[0..n) without the blanks around it as a JSON string. */
static bool write_trimmed(struct ab_buf *out, const char *s, size_t n, char *tmp,
                          struct ab_error *err)
{
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) {
        n--;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return ab_json_write_cstr(out, tmp, err) == AB_OK;
}

/* "Tamanho:G;Cor:Verde" as {"size":"G","color":"Verde"} (keys renamed
 * through x->keys); false for a part without the assign text. */
static bool convert_pairs(struct ab_mapping_xform *x, const char *s, struct ab_error *err)
{
    size_t seplen = strlen(x->separator), aslen = strlen(x->assign);
    char *tmp = malloc(strlen(s) + 1);
    bool ok = tmp && ab_buf_addc(&x->buf, '{', err) == AB_OK;
    bool first = true;

    while (ok && *s) {
        const char *end = strstr(s, x->separator);
        size_t n = end ? (size_t)(end - s) : strlen(s);
        const char *eq;
        const char *key;
        size_t kn;

        memcpy(tmp, s, n);
        tmp[n] = '\0';
        eq = strstr(tmp, x->assign);
        if (!eq) {
            ok = false;
            break;
        }
        /* the key, trimmed, then renamed */
        key = tmp;
        kn = (size_t)(eq - tmp);
        while (kn && (*key == ' ' || *key == '\t')) {
            key++;
            kn--;
        }
        while (kn && (key[kn - 1] == ' ' || key[kn - 1] == '\t')) {
            kn--;
        }
        tmp[(size_t)(key - tmp) + kn] = '\0';
        {
            const char *renamed = x->keys ? ab_json_str(ab_json_get(x->keys, key)) : NULL;
            size_t vstart = (size_t)(eq - tmp) + aslen;

            ok = (first || ab_buf_addc(&x->buf, ',', err) == AB_OK) &&
                 ab_json_write_cstr(&x->buf, renamed ? renamed : key, err) == AB_OK &&
                 ab_buf_addc(&x->buf, ':', err) == AB_OK &&
                 write_trimmed(&x->buf, s + vstart, n - vstart, tmp, err);
        }
        first = false;
        s = end ? end + seplen : s + n;
    }
    ok = ok && ab_buf_addc(&x->buf, '}', err) == AB_OK;
    free(tmp);
    return ok;
}

/* Appends the converted value; false when it cannot be converted. */
static bool convert(struct ab_mapping_xform *x, yajl_val v, struct ab_error *err)
{
    const char *s = ab_json_str(v);
    double d;
    int64_t t;
    char num[64];

    switch (x->as) {
    case XF_STRING:
        if (s) {
            return ab_json_write_cstr(&x->buf, s, err) == AB_OK;
        }
        if (v->type == yajl_t_number) {
            return ab_json_write_cstr(&x->buf, v->u.number.r, err) == AB_OK;
        }
        return false;
    case XF_DECIMAL:
        if (!numeric(v, &d)) {
            return false;
        }
        (void)snprintf(num, sizeof(num), "%.*f", x->scale, d);
        return ab_json_write_cstr(&x->buf, num, err) == AB_OK;
    case XF_INTEGER:
        /* whole numbers only (12, 12.0, "12.0"), exact in a double; a
         * fraction is not rounded away */
        if (!numeric(v, &d) || !(d >= -9007199254740992.0 && d <= 9007199254740992.0)) {
            return false;
        }
        t = (int64_t)d;
        if ((double)t != d) {
            return false;
        }
        (void)snprintf(num, sizeof(num), "%" PRId64, t);
        return ab_buf_adds(&x->buf, num, err) == AB_OK;
    case XF_RFC3339:
        if (!s || ab_time_parse(s, x->utc_offset, &t, err) != AB_OK) {
            return false;
        }
        return ab_buf_addc(&x->buf, '"', err) == AB_OK &&
               ab_time_format(t, 0, "%Y-%m-%dT%H:%M:%SZ", &x->buf, err) == AB_OK &&
               ab_buf_addc(&x->buf, '"', err) == AB_OK;
    case XF_ARRAY:
        /* one value as a one-element array; an array as it is; "" as nothing */
        if (v->type == yajl_t_array) {
            break;
        }
        if (s && !*s) {
            return false;
        }
        return ab_buf_addc(&x->buf, '[', err) == AB_OK && ab_json_write(&x->buf, v, err) == AB_OK &&
               ab_buf_addc(&x->buf, ']', err) == AB_OK;
    case XF_PAIRS:
        return s && convert_pairs(x, s, err);
    case XF_AS_IS:
        break;
    }
    return ab_json_write(&x->buf, v, err) == AB_OK;
}

/* The target value of field f for data: the source value, or the transform's
 * (kept in the transform's cache); NULL when absent. */
static yajl_val field_value(const struct ab_mapping_field *f, yajl_val data)
{
    struct ab_mapping_xform *x = f->xf;
    struct ab_error err;
    yajl_val v;
    bool ok = true;

    if (!x) {
        return ab_path_get(&f->from, data);
    }
    if (x->value) {
        return x->value;
    }
    if (x->object) {
        ab_error_init(&err);
        ab_buf_reset(&x->buf);
        ok = ab_mapping_write(x->each, data, NULL, NULL, &x->buf, &err) == AB_OK;
        /* an object of dotted targets none of which has a value: absent */
        ok = ok && !(x->dotted && x->buf.len == 2);
        ab_json_free(x->cache);
        x->cache = ok ? ab_json_parse(x->buf.data, x->buf.len, &err) : NULL;
        return x->cache;
    }
    v = ab_path_get(&f->from, data);
    if (x->map) {
        char key[64];
        const char *k = ab_json_str(v);
        yajl_val hit;

        if (!k && v && v->type == yajl_t_number) {
            (void)snprintf(key, sizeof(key), "%s", v->u.number.r);
            k = key;
        }
        hit = k ? ab_json_get(x->map, k) : NULL;
        if (!hit) {
            return x->dflt;
        }
        if (x->as == XF_AS_IS) {
            return hit;
        }
        v = hit;
    }
    if (ab_json_is_null(v)) {
        return x->dflt;
    }
    ab_error_init(&err);
    ab_buf_reset(&x->buf);
    if (x->each) {
        if (v->type != yajl_t_array) {
            return x->dflt;
        }
        ok = ab_buf_addc(&x->buf, '[', &err) == AB_OK;
        for (size_t i = 0; ok && i < v->u.array.len; i++) {
            ok =
                (i == 0 || ab_buf_addc(&x->buf, ',', &err) == AB_OK) &&
                ab_mapping_write(x->each, v->u.array.values[i], NULL, NULL, &x->buf, &err) == AB_OK;
        }
        ok = ok && ab_buf_addc(&x->buf, ']', &err) == AB_OK;
    } else {
        ok = convert(x, v, &err);
    }
    ab_json_free(x->cache);
    x->cache = ok ? ab_json_parse(x->buf.data, x->buf.len, &err) : NULL;
    return x->cache ? x->cache : x->dflt;
}

/* The index of the object field of m ("fields" or dotted targets) that
 * holds the dotted name ("attributes" for "attributes.size"); m->nfields
 * when there is none. */
static size_t object_field(const struct ab_mapping *m, const char *name)
{
    const char *dot = strchr(name, '.');
    size_t i;

    for (i = 0; dot && i < m->nfields; i++) {
        const struct ab_mapping_field *f = &m->fields[i];

        if (f->xf && f->xf->object && strncmp(f->to, name, (size_t)(dot - name)) == 0 &&
            f->to[dot - name] == '\0') {
            return i;
        }
    }
    return m->nfields;
}

yajl_val ab_mapping_get(const struct ab_mapping *m, yajl_val data, const char *field)
{
    size_t i;

    if (!m || !field) {
        return NULL;
    }
    if (m->identity) {
        return ab_json_get(data, field);
    }
    for (i = 0; i < m->nfields; i++) {
        if (strcmp(m->fields[i].to, field) == 0) {
            return field_value(&m->fields[i], data);
        }
    }
    i = object_field(m, field);
    if (i < m->nfields) {
        return ab_mapping_get(m->fields[i].xf->each, data, strchr(field, '.') + 1);
    }
    return NULL;
}

/* Writer state: the extra member is written in place of a null member of
 * the same name, or appended at the end when there was none. */
struct writer {
    struct ab_buf *out;
    const char *extra_key;
    const char *extra_val;
    size_t nmembers;
    bool extra_done;
};

static enum ab_status write_member(struct writer *w, const char *key, yajl_val v,
                                   struct ab_error *err)
{
    enum ab_status rc;
    bool extra = w->extra_key && !w->extra_done && strcmp(key, w->extra_key) == 0;

    if (w->nmembers++) {
        rc = ab_buf_addc(w->out, ',', err);
        if (rc != AB_OK) {
            return rc;
        }
    }
    rc = ab_json_write_cstr(w->out, key, err);
    if (rc == AB_OK) {
        rc = ab_buf_addc(w->out, ':', err);
    }
    if (rc != AB_OK) {
        return rc;
    }
    if (extra) {
        w->extra_done = true;
        if (ab_json_is_null(v)) {
            return ab_json_write_cstr(w->out, w->extra_val, err);
        }
    }
    return ab_json_write(w->out, v, err);
}

/* True when some field of m has a value for data (an object of "fields"
 * always has one: it is written even when empty). */
static bool has_value(const struct ab_mapping *m, yajl_val data)
{
    for (size_t i = 0; i < m->nfields; i++) {
        const struct ab_mapping_field *f = &m->fields[i];

        if (f->xf && f->xf->object ? !f->xf->dotted || has_value(f->xf->each, data)
                                   : field_value(f, data) != NULL) {
            return true;
        }
    }
    return false;
}

/* The member of object field f ("fields" or dotted targets), written
 * straight into w->out (its byte limit holds); an object of dotted targets
 * none of which has a value is left out. */
static enum ab_status write_object_member(struct writer *w, const struct ab_mapping_field *f,
                                          yajl_val data, struct ab_error *err)
{
    size_t mark = w->out->len;
    size_t value_at;
    enum ab_status rc = AB_OK;

    if (w->nmembers) {
        rc = ab_buf_addc(w->out, ',', err);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(w->out, f->to, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(w->out, ':', err);
    }
    value_at = w->out->len;
    if (rc == AB_OK) {
        rc = ab_mapping_write(f->xf->each, data, NULL, NULL, w->out, err);
    }
    if (rc == AB_ERR_PROTOCOL && f->xf->dotted && !has_value(f->xf->each, data)) {
        /* over the limit only with the names of an object left out */
        ab_buf_truncate(w->out, mark);
        return AB_OK;
    }
    if (rc != AB_OK || (f->xf->dotted && w->out->len - value_at == 2)) {
        ab_buf_truncate(w->out, mark);
        return rc;
    }
    w->nmembers++;
    if (w->extra_key && !w->extra_done && strcmp(f->to, w->extra_key) == 0) {
        w->extra_done = true; /* an object, not null: kept */
    }
    return AB_OK;
}

enum ab_status ab_mapping_write(const struct ab_mapping *m, yajl_val data, const char *extra_key,
                                const char *extra_val, struct ab_buf *out, struct ab_error *err)
{
    struct writer w;
    enum ab_status rc;
    size_t start = out->len;
    size_t i;

    if (!data || data->type != yajl_t_object) {
        return ab_error_set(err, AB_ERR_REJECTED, "record data is %s, not an object",
                            ab_json_type_name(data));
    }
    w.out = out;
    w.extra_key = (extra_key && extra_val) ? extra_key : NULL;
    w.extra_val = extra_val;
    w.nmembers = 0;
    w.extra_done = false;
    rc = ab_buf_addc(out, '{', err);
    if (m->identity) {
        for (i = 0; rc == AB_OK && i < data->u.object.len; i++) {
            if (!is_airbyte_field(data->u.object.keys[i])) {
                rc = write_member(&w, data->u.object.keys[i], data->u.object.values[i], err);
            }
        }
    } else {
        for (i = 0; rc == AB_OK && i < m->nfields; i++) {
            const struct ab_mapping_field *f = &m->fields[i];
            yajl_val v;

            if (f->xf && f->xf->object) {
                rc = write_object_member(&w, f, data, err);
                continue;
            }
            v = field_value(f, data);
            if (v) {
                rc = write_member(&w, f->to, v, err);
            }
        }
    }
    if (rc == AB_OK && w.extra_key && !w.extra_done) {
        rc = write_member(&w, w.extra_key, NULL, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(out, '}', err);
    }
    if (rc != AB_OK) {
        ab_buf_truncate(out, start);
    }
    return rc;
}

/* The source path of target field name under m into buf; false if unmapped. */
static bool source_of(const struct ab_mapping *m, const char *name, char *buf, size_t size)
{
    size_t i;

    if (m->identity) {
        (void)snprintf(buf, size, "%s", name);
        return true;
    }
    for (i = 0; i < m->nfields; i++) {
        if (strcmp(m->fields[i].to, name) == 0) {
            /* a constant ("value") comes from no source field */
            if (m->fields[i].from.n == 0) {
                return false;
            }
            (void)ab_path_str(&m->fields[i].from, buf, size);
            return true;
        }
    }
    i = object_field(m, name);
    return i < m->nfields && source_of(m->fields[i].xf->each, strchr(name, '.') + 1, buf, size);
}

enum ab_status ab_mapping_annotate_errors(const struct ab_mapping *m, const char *errors_json,
                                          struct ab_buf *out, struct ab_error *err)
{
    struct ab_error perr;
    yajl_val arr;
    enum ab_status rc;
    size_t i;

    ab_buf_reset(out);
    if (!errors_json || !*errors_json) {
        return ab_buf_adds(out, "[]", err);
    }
    ab_error_init(&perr);
    arr = m ? ab_json_parse(errors_json, strlen(errors_json), &perr) : NULL;
    if (!YAJL_IS_ARRAY(arr)) {
        ab_json_free(arr);
        return ab_buf_adds(out, errors_json, err);
    }
    rc = ab_buf_addc(out, '[', err);
    for (i = 0; rc == AB_OK && i < arr->u.array.len; i++) {
        yajl_val e = arr->u.array.values[i];
        const char *field = ab_json_str(ab_json_get(e, "field"));
        char src[1024];
        size_t j;

        if (i > 0) {
            rc = ab_buf_addc(out, ',', err);
        }
        if (rc != AB_OK) {
            break;
        }
        if (!YAJL_IS_OBJECT(e) || !field || ab_json_get(e, "source_field") ||
            !source_of(m, field, src, sizeof(src))) {
            rc = ab_json_write(out, e, err);
            continue;
        }
        rc = ab_buf_addc(out, '{', err);
        for (j = 0; rc == AB_OK && j < e->u.object.len; j++) {
            rc = ab_json_write_cstr(out, e->u.object.keys[j], err);
            if (rc == AB_OK) {
                rc = ab_buf_addc(out, ':', err);
            }
            if (rc == AB_OK) {
                rc = ab_json_write(out, e->u.object.values[j], err);
            }
            if (rc == AB_OK) {
                rc = ab_buf_addc(out, ',', err);
            }
        }
        if (rc == AB_OK) {
            rc = ab_buf_adds(out, "\"source_field\":", err);
        }
        if (rc == AB_OK) {
            rc = ab_json_write_cstr(out, src, err);
        }
        if (rc == AB_OK) {
            rc = ab_buf_adds(out, ",\"mapping\":", err);
        }
        if (rc == AB_OK) {
            char both[2100];

            (void)snprintf(both, sizeof(both), "%s <- %s", field, src);
            rc = ab_json_write_cstr(out, both, err);
        }
        if (rc == AB_OK) {
            rc = ab_buf_addc(out, '}', err);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(out, ']', err);
    }
    ab_json_free(arr);
    return rc;
}

/* ---- the byte-range path ---------------------------------------------------
 *
 * The line was accepted by the strict intake, so it is well-formed JSON:
 * these scanners only find where things end, they validate nothing. Every
 * index stays below n. */

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t raw_ws(const char *p, size_t i, size_t n)
{
    while (i < n && is_ws(p[i])) {
        i++;
    }
    return i;
}

/* p[i] is '"'; the index after the closing quote. *esc: it held a backslash. */
static size_t raw_string(const char *p, size_t i, size_t n, bool *esc)
{
    const char *q;
    size_t e;

    i++;
    q = i < n ? memchr(p + i, '"', n - i) : NULL;
    if (!q) {
        return n;
    }
    e = (size_t)(q - p);
    if (!memchr(p + i, '\\', e - i)) {
        return e + 1; /* no escape: the first quote closes it */
    }
    *esc = true;
    for (; i < n; i++) {
        if (p[i] == '"') {
            return i + 1;
        }
        if (p[i] == '\\') {
            i++;
        }
    }
    return n;
}

/* The index after the value starting at p[i]; *ws: whitespace outside
 * strings inside it. */
static size_t raw_value(const char *p, size_t i, size_t n, bool *ws)
{
    size_t depth = 0;
    bool esc = false;

    if (i < n && p[i] == '"') {
        return raw_string(p, i, n, &esc);
    }
    if (i < n && p[i] != '{' && p[i] != '[') {
        while (i < n && p[i] != ',' && p[i] != '}' && p[i] != ']' && !is_ws(p[i])) {
            i++;
        }
        return i;
    }
    while (i < n) {
        char c = p[i];

        if (c == '"') {
            i = raw_string(p, i, n, &esc);
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0) {
                return i + 1;
            }
        } else if (is_ws(c)) {
            *ws = true;
        }
        i++;
    }
    return n;
}

/* Appends p[i..end) without the whitespace outside strings. */
static enum ab_status add_compact(struct ab_buf *out, const char *p, size_t i, size_t end,
                                  struct ab_error *err)
{
    size_t run = i;
    bool esc = false;
    enum ab_status rc = AB_OK;

    while (i < end && rc == AB_OK) {
        if (p[i] == '"') {
            i = raw_string(p, i, end, &esc);
        } else if (is_ws(p[i])) {
            rc = ab_buf_add(out, p + run, i - run, err);
            i = raw_ws(p, i, end);
            run = i;
        } else {
            i++;
        }
    }
    return rc == AB_OK ? ab_buf_add(out, p + run, end - run, err) : rc;
}

static bool raw_key_is(const char *p, size_t k, size_t ke, const char *name, size_t len)
{
    return ke - k == len + 2 && memcmp(p + k + 1, name, len) == 0;
}

/* The offset in p of the value of member name (plain, unescaped) of the
 * object at p[i], or 0 when it has none under that exact spelling. */
static size_t raw_member(const char *p, size_t i, size_t n, const char *name)
{
    size_t len = strlen(name);
    bool flag = false;

    i = raw_ws(p, i, n);
    if (i >= n || p[i] != '{') {
        return 0;
    }
    i = raw_ws(p, i + 1, n);
    while (i < n && p[i] == '"') {
        size_t k = i;

        i = raw_string(p, i, n, &flag);
        if (raw_key_is(p, k, i, name, len)) {
            i = raw_ws(p, i, n);
            return i < n && p[i] == ':' ? raw_ws(p, i + 1, n) : 0;
        }
        i = raw_ws(p, i, n);
        if (i >= n || p[i] != ':') {
            return 0;
        }
        i = raw_value(p, raw_ws(p, i + 1, n), n, &flag);
        i = raw_ws(p, i, n);
        if (i >= n || p[i] != ',') {
            return 0;
        }
        i = raw_ws(p, i + 1, n);
    }
    return 0;
}

static bool raw_airbyte_key(const char *p, size_t k, size_t ke)
{
    size_t n = ke - k - 2;

    return (n >= 4 && memcmp(p + k + 1, "_ab_", 4) == 0) ||
           (n >= 9 && memcmp(p + k + 1, "_airbyte_", 9) == 0);
}

/* Copies the members of the data object at p[i] into out as the identity
 * writer would write them. *handled false (nothing written): a member name
 * holds an escape, so the tree path must decide. */
static enum ab_status copy_members(const char *p, size_t i, size_t n, struct writer *w,
                                   bool *handled, struct ab_error *err)
{
    size_t start = w->out->len;
    enum ab_status rc = AB_OK;

    *handled = false;
    i = raw_ws(p, i + 1, n);
    while (rc == AB_OK && i < n && p[i] == '"') {
        size_t k = i;
        size_t ke;
        size_t v;
        size_t ve;
        bool esc = false;
        bool ws = false;

        ke = raw_string(p, i, n, &esc);
        if (esc) {
            ab_buf_truncate(w->out, start);
            return AB_OK;
        }
        i = raw_ws(p, ke, n);
        v = raw_ws(p, i + 1, n); /* p[i] is ':' */
        ve = raw_value(p, v, n, &ws);
        i = raw_ws(p, ve, n);
        if (i < n && p[i] == ',') {
            i = raw_ws(p, i + 1, n);
        }
        if (raw_airbyte_key(p, k, ke)) {
            continue;
        }
        if (w->nmembers++) {
            rc = ab_buf_addc(w->out, ',', err);
        }
        if (rc != AB_OK) {
            break;
        }
        if (w->extra_key && !w->extra_done &&
            raw_key_is(p, k, ke, w->extra_key, strlen(w->extra_key))) {
            w->extra_done = true;
            if (ve - v == 4 && memcmp(p + v, "null", 4) == 0) {
                rc = ab_buf_add(w->out, p + k, ke - k, err);
                if (rc == AB_OK) {
                    rc = ab_buf_addc(w->out, ':', err);
                }
                if (rc == AB_OK) {
                    rc = ab_json_write_cstr(w->out, w->extra_val, err);
                }
                continue;
            }
        }
        if (!ws && ke + 1 == v) {
            rc = ab_buf_add(w->out, p + k, ve - k, err); /* "key":value, as it came */
        } else {
            rc = ab_buf_add(w->out, p + k, ke - k, err);
            if (rc == AB_OK) {
                rc = ab_buf_addc(w->out, ':', err);
            }
            if (rc == AB_OK) {
                rc = ws ? add_compact(w->out, p, v, ve, err)
                        : ab_buf_add(w->out, p + v, ve - v, err);
            }
        }
    }
    *handled = rc == AB_OK;
    return rc;
}

const char *ab_record_data_text(const char *line, size_t len, size_t *data_len)
{
    size_t rec = raw_member(line, 0, len, "record");
    size_t at = rec ? raw_member(line, rec, len, "data") : 0;
    bool ws = false;

    *data_len = 0;
    if (!at || line[at] != '{') {
        return NULL;
    }
    *data_len = raw_value(line, at, len, &ws) - at;
    return line + at;
}

bool ab_mapping_verbatim(const struct ab_mapping *m, yajl_val data, const char *extra_key,
                         const char *extra_val)
{
    bool extra_found = !(extra_key && extra_val);
    size_t i;

    if (!m->identity || !data || data->type != yajl_t_object) {
        return false;
    }
    for (i = 0; i < data->u.object.len; i++) {
        const char *k = data->u.object.keys[i];

        if (k[0] == '_' && is_airbyte_field(k)) {
            return false;
        }
        if (!extra_found && k[0] == extra_key[0] && strcmp(k, extra_key) == 0) {
            if (ab_json_is_null(data->u.object.values[i])) {
                return false; /* the extra value replaces it */
            }
            extra_found = true;
        }
    }
    return extra_found;
}

bool ab_mapping_verbatim_members(const struct ab_mapping *m, const char *text,
                                 const struct ab_json_member *members, size_t n,
                                 const char *extra_key, const char *extra_val)
{
    bool extra_found = !(extra_key && extra_val);
    size_t klen = extra_key ? strlen(extra_key) : 0;
    size_t i;

    if (!m->identity || !text || n == 0) {
        return false;
    }
    for (i = 0; i < n; i++) {
        const char *k = text + members[i].name_off;
        size_t len = members[i].name_len;

        if (k[0] == '_' && ((len >= 4 && memcmp(k, "_ab_", 4) == 0) ||
                            (len >= 9 && memcmp(k, "_airbyte_", 9) == 0))) {
            return false;
        }
        if (!extra_found && len == klen && memcmp(k, extra_key, klen) == 0) {
            if (members[i].val_len == 4 && memcmp(text + members[i].val_off, "null", 4) == 0) {
                return false; /* the extra value replaces it */
            }
            extra_found = true;
        }
    }
    return extra_found;
}

enum ab_status ab_mapping_write_span(const struct ab_mapping *m, yajl_val data, const char *text,
                                     size_t len, bool compact, const char *extra_key,
                                     const char *extra_val, struct ab_buf *out, bool *verbatim,
                                     struct ab_error *err)
{
    *verbatim = false;
    if (text && compact && ab_mapping_verbatim(m, data, extra_key, extra_val)) {
        *verbatim = true;
        return ab_buf_add(out, text, len, err);
    }
    return ab_mapping_write_text(m, data, text, len, extra_key, extra_val, out, err);
}

enum ab_status ab_mapping_write_text(const struct ab_mapping *m, yajl_val data, const char *text,
                                     size_t len, const char *extra_key, const char *extra_val,
                                     struct ab_buf *out, struct ab_error *err)
{
    struct writer w;
    enum ab_status rc;
    size_t start = out->len;
    size_t at;
    bool handled = false;

    if (!m->identity || !text || !data || data->type != yajl_t_object) {
        return ab_mapping_write(m, data, extra_key, extra_val, out, err);
    }
    at = raw_ws(text, 0, len);
    if (at >= len || text[at] != '{') {
        return ab_mapping_write(m, data, extra_key, extra_val, out, err);
    }
    w.out = out;
    w.extra_key = (extra_key && extra_val) ? extra_key : NULL;
    w.extra_val = extra_val;
    w.nmembers = 0;
    w.extra_done = false;
    rc = ab_buf_addc(out, '{', err);
    if (rc == AB_OK) {
        rc = copy_members(text, at, len, &w, &handled, err);
    }
    if (rc == AB_OK && !handled) {
        ab_buf_truncate(out, start);
        return ab_mapping_write(m, data, extra_key, extra_val, out, err);
    }
    if (rc == AB_OK && w.extra_key && !w.extra_done) {
        rc = write_member(&w, w.extra_key, NULL, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(out, '}', err);
    }
    if (rc != AB_OK) {
        ab_buf_truncate(out, start);
    }
    return rc;
}
