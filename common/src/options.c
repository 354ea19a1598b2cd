/* options.c - connector options: declared once, merged into each spec, read back. */
/* SPDX-License-Identifier: MIT */
/*
 * The common option groups are JSON files embedded by cmake/embed.cmake; a
 * group file is {"description", "groups": [UI groups], "properties": {...}}.
 * ab_spec_build() parses them on every call (a few kilobytes, once per run),
 * so nothing is cached and nothing needs freeing at exit.
 */
#include "ab/options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/buf.h"
#include "ab/config.h"
#include "ab/emitter.h"
#include "ab/json.h"
#include "ab/protocol.h"

#define LINT_MAX_DEPTH    32
#define LINT_MAX_PROBLEMS ((size_t)16 * 1024)
#define PATH_MAX_CHARS    256

/* Generated from common/spec/options-*.json (cmake/embed.cmake). */
extern const char ab_spec_core_json[];
extern const char ab_spec_destination_json[];
extern const char ab_spec_http_json[];

const char *const ab_option_groups[] = {"core", "destination", "http", NULL};

#define NGROUPS (sizeof(ab_option_groups) / sizeof(ab_option_groups[0]) - 1)

const char *ab_option_group_json(const char *name)
{
    if (!name) {
        return NULL;
    }
    if (strcmp(name, "core") == 0) {
        return ab_spec_core_json;
    }
    if (strcmp(name, "destination") == 0) {
        return ab_spec_destination_json;
    }
    if (strcmp(name, "http") == 0) {
        return ab_spec_http_json;
    }
    return NULL;
}

/* ---- tree editing ---------------------------------------------------------- */

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

/* Removes key (and frees its value) from obj; false when absent. */
static bool object_remove(yajl_val obj, const char *key)
{
    size_t i;

    for (i = 0; obj && obj->type == yajl_t_object && i < obj->u.object.len; i++) {
        if (strcmp(obj->u.object.keys[i], key) == 0) {
            size_t rest = obj->u.object.len - i - 1;

            free((void *)(uintptr_t)obj->u.object.keys[i]);
            yajl_tree_free(obj->u.object.values[i]);
            memmove(&obj->u.object.keys[i], &obj->u.object.keys[i + 1],
                    rest * sizeof(obj->u.object.keys[0]));
            memmove(&obj->u.object.values[i], &obj->u.object.values[i + 1],
                    rest * sizeof(obj->u.object.values[0]));
            obj->u.object.len--;
            return true;
        }
    }
    return false;
}

/* Appends val to arr (takes ownership of val, also on failure). */
static bool array_add(yajl_val arr, yajl_val val)
{
    size_t n = arr->u.array.len;
    yajl_val *values = realloc(arr->u.array.values,
                               (n + 1) * sizeof(*values)); /* NOLINT(bugprone-sizeof-expression) */

    if (!values) {
        yajl_tree_free(val);
        return false;
    }
    arr->u.array.values = values;
    values[n] = val;
    arr->u.array.len = n + 1;
    return true;
}

static yajl_val parse_text(const char *text, struct ab_error *perr)
{
    return ab_json_parse(text, strlen(text), perr);
}

/* ---- building ---------------------------------------------------------------- */

struct build {
    yajl_val groups[NGROUPS]; /* parsed group files (all of them) */
    bool included[NGROUPS];
    yajl_val cs;    /* connectionSpecification */
    yajl_val props; /* its properties */
};

static long group_index(const char *name)
{
    size_t i;

    for (i = 0; i < NGROUPS; i++) {
        if (strcmp(ab_option_groups[i], name) == 0) {
            return (long)i;
        }
    }
    return -1;
}

static enum ab_status load_groups(struct build *b, struct ab_error *err)
{
    size_t i;

    for (i = 0; i < NGROUPS; i++) {
        struct ab_error perr;
        yajl_val g;

        ab_error_init(&perr);
        g = parse_text(ab_option_group_json(ab_option_groups[i]), &perr);
        if (!g) {
            return ab_error_set(err, perr.code == AB_ERR_NOMEM ? AB_ERR_NOMEM : AB_ERR_INTERNAL,
                                "common option group '%s' is not valid JSON: %s",
                                ab_option_groups[i], perr.message);
        }
        b->groups[i] = g;
        if (!YAJL_IS_OBJECT(ab_json_get(g, "properties"))) {
            return ab_error_set(err, AB_ERR_INTERNAL,
                                "common option group '%s' has no \"properties\" object",
                                ab_option_groups[i]);
        }
    }
    return AB_OK;
}

/* An option of the connector's own that a common group declares. */
static enum ab_status check_redeclared(const struct build *b, struct ab_error *err)
{
    size_t i;
    size_t g;

    for (i = 0; i < b->props->u.object.len; i++) {
        const char *key = b->props->u.object.keys[i];

        for (g = 0; g < NGROUPS; g++) {
            if (ab_json_get(ab_json_get(b->groups[g], "properties"), key)) {
                return ab_error_set(err, AB_ERR_INTERNAL,
                                    "the connector's spec declares '%s', which the common option "
                                    "group '%s' declares: include the group in x-ab-options and "
                                    "set a different default in x-ab-options.defaults",
                                    key, ab_option_groups[g]);
            }
        }
    }
    return AB_OK;
}

static bool has_group_id(yajl_val groups, const char *id)
{
    size_t i;

    for (i = 0; i < groups->u.array.len; i++) {
        const char *have = ab_json_get_str(groups->u.array.values[i], "id", NULL);

        if (have && strcmp(have, id) == 0) {
            return true;
        }
    }
    return false;
}

/* Adds a group's UI groups (those not declared yet) and its properties. */
static enum ab_status merge_group(struct build *b, size_t g, struct ab_error *err)
{
    yajl_val gprops = ab_json_get(b->groups[g], "properties");
    yajl_val ui = ab_json_get(b->groups[g], "groups");
    yajl_val have = ab_json_get(b->cs, "groups");
    size_t i;

    if (ui && YAJL_IS_ARRAY(ui) && ui->u.array.len) {
        if (!have) {
            struct ab_error perr;

            ab_error_init(&perr);
            have = parse_text("[]", &perr);
            if (!have || !object_add(b->cs, "groups", have)) {
                return ab_error_set(err, AB_ERR_NOMEM, "out of memory (spec)");
            }
        }
        if (!YAJL_IS_ARRAY(have)) {
            return ab_error_set(err, AB_ERR_INTERNAL,
                                "connectionSpecification.groups must be an array");
        }
        for (i = 0; i < ui->u.array.len; i++) {
            const char *id = ab_json_get_str(ui->u.array.values[i], "id", NULL);
            yajl_val copy;

            if (!id || has_group_id(have, id)) {
                continue;
            }
            copy = ab_json_clone(ui->u.array.values[i]);
            if (!copy || !array_add(have, copy)) {
                return ab_error_set(err, AB_ERR_NOMEM, "out of memory (spec)");
            }
        }
    }
    for (i = 0; i < gprops->u.object.len; i++) {
        yajl_val copy = ab_json_clone(gprops->u.object.values[i]);

        if (!copy || !object_add(b->props, gprops->u.object.keys[i], copy)) {
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory (spec)");
        }
    }
    return AB_OK;
}

static enum ab_status apply_includes(struct build *b, yajl_val include, struct ab_error *err)
{
    size_t i;

    if (!include) {
        return AB_OK;
    }
    if (!YAJL_IS_ARRAY(include)) {
        return ab_error_set(err, AB_ERR_INTERNAL,
                            "x-ab-options.include must be an array of group names");
    }
    for (i = 0; i < include->u.array.len; i++) {
        const char *name = ab_json_str(include->u.array.values[i]);
        long g = name ? group_index(name) : -1;
        enum ab_status rc;

        if (g < 0) {
            return ab_error_set(err, AB_ERR_INTERNAL,
                                "x-ab-options.include[%zu]: unknown option group '%s' (known: "
                                "core, destination, http)",
                                i, name ? name : "(not a string)");
        }
        if (b->included[g]) {
            return ab_error_set(err, AB_ERR_INTERNAL,
                                "x-ab-options.include: option group '%s' is listed twice", name);
        }
        b->included[g] = true;
        rc = merge_group(b, (size_t)g, err);
        if (rc != AB_OK) {
            return rc;
        }
    }
    return AB_OK;
}

/* The included group that declares key, or -1. */
static long included_group_of(const struct build *b, const char *key)
{
    size_t g;

    for (g = 0; g < NGROUPS; g++) {
        if (b->included[g] && ab_json_get(ab_json_get(b->groups[g], "properties"), key)) {
            return (long)g;
        }
    }
    return -1;
}

static enum ab_status apply_defaults(struct build *b, yajl_val defaults, struct ab_error *err)
{
    size_t i;

    if (!defaults) {
        return AB_OK;
    }
    if (!YAJL_IS_OBJECT(defaults)) {
        return ab_error_set(err, AB_ERR_INTERNAL, "x-ab-options.defaults must be an object");
    }
    for (i = 0; i < defaults->u.object.len; i++) {
        const char *key = defaults->u.object.keys[i];
        yajl_val prop = ab_json_get(b->props, key);
        yajl_val copy;
        struct ab_error verr;

        if (included_group_of(b, key) < 0 || !YAJL_IS_OBJECT(prop)) {
            return ab_error_set(err, AB_ERR_INTERNAL,
                                "x-ab-options.defaults.%s: no included option group declares "
                                "'%s' (a connector's own option takes its default in its own "
                                "declaration)",
                                key, key);
        }
        copy = ab_json_clone(defaults->u.object.values[i]);
        if (!copy) {
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory (spec)");
        }
        ab_error_init(&verr);
        if (ab_config_validate(copy, prop, &verr) != AB_OK) {
            yajl_tree_free(copy);
            return ab_error_set(err, AB_ERR_INTERNAL, "x-ab-options.defaults.%s: %s", key,
                                verr.message);
        }
        (void)object_remove(prop, "default");
        if (!object_add(prop, "default", copy)) {
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory (spec)");
        }
    }
    return AB_OK;
}

/* A new string value (NULL when out of memory). */
static yajl_val new_string(const char *text)
{
    yajl_val v = calloc(1, sizeof(*v));
    size_t n = strlen(text) + 1;

    if (!v) {
        return NULL;
    }
    v->type = yajl_t_string;
    v->u.string = malloc(n);
    if (!v->u.string) {
        free(v);
        return NULL;
    }
    memcpy(v->u.string, text, n);
    return v;
}

/* protocol_version from the core; a relative documentationUrl (a path in
 * the repository, "destinations/x/README.md#section") made absolute with
 * the repository's address (AB_DOC_BASE, from CMake). */
static enum ab_status set_spec_meta(yajl_val spec, struct ab_error *err)
{
    yajl_val doc = ab_json_get(spec, "documentationUrl");
    const char *path = ab_json_str(doc);
    yajl_val v;

    if (ab_json_get(spec, "protocol_version")) {
        return ab_error_set(err, AB_ERR_INTERNAL,
                            "the connector's spec declares protocol_version: the core writes it "
                            "(%s, the version of what it prints)",
                            AB_PROTOCOL_VERSION);
    }
    v = new_string(AB_PROTOCOL_VERSION);
    if (!v || !object_add(spec, "protocol_version", v)) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (spec)");
    }
    if (doc && !path) {
        return ab_error_set(err, AB_ERR_INTERNAL, "documentationUrl must be a string");
    }
    if (path && strncmp(path, "https://", 8) != 0 && strncmp(path, "http://", 7) != 0) {
        size_t n = strlen(AB_DOC_BASE) + strlen(path) + 1;
        char *url = malloc(n);

        if (!url) {
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory (spec)");
        }
        (void)snprintf(url, n, "%s%s", AB_DOC_BASE, path);
        v = new_string(url);
        free(url);
        (void)object_remove(spec, "documentationUrl");
        if (!v || !object_add(spec, "documentationUrl", v)) {
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory (spec)");
        }
    }
    return AB_OK;
}

static enum ab_status build(struct build *b, yajl_val spec, struct ab_error *err)
{
    yajl_val xo = ab_json_get(spec, "x-ab-options");
    enum ab_status rc;
    size_t i;

    b->cs = ab_json_get(spec, "connectionSpecification");
    b->props = ab_json_get(b->cs, "properties");
    if (!YAJL_IS_OBJECT(b->cs) || !YAJL_IS_OBJECT(b->props)) {
        return ab_error_set(err, AB_ERR_INTERNAL,
                            "the connector's spec has no connectionSpecification.properties "
                            "object");
    }
    rc = set_spec_meta(spec, err);
    if (rc == AB_OK) {
        rc = load_groups(b, err);
    }
    if (rc == AB_OK) {
        rc = check_redeclared(b, err);
    }
    if (rc != AB_OK || !xo) {
        return rc;
    }
    if (!YAJL_IS_OBJECT(xo)) {
        return ab_error_set(err, AB_ERR_INTERNAL, "x-ab-options must be an object");
    }
    for (i = 0; i < xo->u.object.len; i++) {
        const char *k = xo->u.object.keys[i];

        if (strcmp(k, "include") != 0 && strcmp(k, "defaults") != 0) {
            return ab_error_set(err, AB_ERR_INTERNAL,
                                "x-ab-options.%s: unknown member (known: include, defaults)", k);
        }
    }
    rc = apply_includes(b, ab_json_get(xo, "include"), err);
    if (rc == AB_OK) {
        rc = apply_defaults(b, ab_json_get(xo, "defaults"), err);
    }
    if (rc == AB_OK) {
        (void)object_remove(spec, "x-ab-options");
    }
    return rc;
}

enum ab_status ab_spec_build(const char *connector_spec_json, yajl_val *spec_out,
                             struct ab_error *err)
{
    struct build b;
    struct ab_error perr;
    enum ab_status rc;
    yajl_val spec;
    size_t i;

    *spec_out = NULL;
    memset(&b, 0, sizeof(b));
    if (!connector_spec_json) {
        return ab_error_set(err, AB_ERR_INTERNAL, "the connector has no spec");
    }
    ab_error_init(&perr);
    spec = parse_text(connector_spec_json, &perr);
    if (!spec) {
        return ab_error_set(err, perr.code == AB_ERR_NOMEM ? AB_ERR_NOMEM : AB_ERR_INTERNAL,
                            "the connector's spec is not valid JSON: %s", perr.message);
    }
    if (!YAJL_IS_OBJECT(spec)) {
        yajl_tree_free(spec);
        return ab_error_set(err, AB_ERR_INTERNAL, "the connector's spec is not a JSON object");
    }
    rc = build(&b, spec, err);
    for (i = 0; i < NGROUPS; i++) {
        yajl_tree_free(b.groups[i]);
    }
    if (rc != AB_OK) {
        yajl_tree_free(spec);
        return rc;
    }
    *spec_out = spec;
    return AB_OK;
}

/* ---- lint ---------------------------------------------------------------------- */

struct lint {
    struct ab_buf problems;
    size_t count;
};

static void lint_problem(struct lint *l, const char *path, const char *what)
{
    struct ab_error e;

    ab_error_init(&e);
    if (l->count++) {
        (void)ab_buf_adds(&l->problems, "; ", &e);
    }
    (void)ab_buf_printf(&l->problems, &e, "%s: %s", path, what);
}

static void join_path(char *out, size_t size, const char *parent, const char *key)
{
    if (parent[0]) {
        (void)snprintf(out, size, "%s.%s", parent, key);
    } else {
        (void)snprintf(out, size, "%s", key);
    }
}

static bool same_order(yajl_val a, yajl_val b)
{
    double x;
    double y;

    return ab_json_double(ab_json_get(a, "order"), &x) &&
           ab_json_double(ab_json_get(b, "order"), &y) && !(x < y) && !(x > y);
}

static bool same_group(yajl_val a, yajl_val b)
{
    const char *x = ab_json_get_str(a, "group", "");
    const char *y = ab_json_get_str(b, "group", "");

    return strcmp(x, y) == 0;
}

static void lint_schema(struct lint *l, yajl_val s, const char *path, bool top, yajl_val groups,
                        int depth);

/* The properties of an object schema: each one, and their orders. */
/* NOLINTNEXTLINE(misc-no-recursion): depth capped by LINT_MAX_DEPTH */
static void lint_properties(struct lint *l, yajl_val props, const char *path, bool top,
                            yajl_val groups, int depth)
{
    char sub[PATH_MAX_CHARS];
    size_t i;
    size_t j;

    if (!YAJL_IS_OBJECT(props)) {
        return;
    }
    for (i = 0; i < props->u.object.len; i++) {
        yajl_val p = props->u.object.values[i];
        const char *group = ab_json_get_str(p, "group", NULL);

        join_path(sub, sizeof(sub), path, props->u.object.keys[i]);
        if (top && groups && !group) {
            lint_problem(l, sub, "has no group (the spec declares groups)");
        } else if (top && group && !(groups && has_group_id(groups, group))) {
            lint_problem(l, sub, "names a group that connectionSpecification.groups lacks");
        } else if (!top && group) {
            lint_problem(l, sub, "has a group, which Airbyte allows on top-level properties only");
        }
        for (j = 0; j < i; j++) {
            yajl_val q = props->u.object.values[j];

            if (same_order(p, q) && (!top || same_group(p, q))) {
                lint_problem(l, sub, "has the same order as another property of its group");
            }
        }
        lint_schema(l, p, sub, false, groups, depth + 1);
    }
}

/* NOLINTNEXTLINE(misc-no-recursion): depth capped by LINT_MAX_DEPTH */
static void lint_schema(struct lint *l, yajl_val s, const char *path, bool top, yajl_val groups,
                        int depth)
{
    yajl_val items = ab_json_get(s, "items");
    yajl_val addl = ab_json_get(s, "additionalProperties");
    yajl_val def = ab_json_get(s, "default");
    char sub[PATH_MAX_CHARS];

    if (depth > LINT_MAX_DEPTH) {
        lint_problem(l, path, "is nested too deeply");
        return;
    }
    if (!YAJL_IS_OBJECT(s)) {
        lint_problem(l, path, "is not a schema object");
        return;
    }
    if (!top) {
        yajl_val type = ab_json_get(s, "type");

        if (!ab_json_str(type) && !YAJL_IS_ARRAY(type)) {
            lint_problem(l, path, "has no type");
        }
        if (!ab_json_str(ab_json_get(s, "title"))) {
            lint_problem(l, path, "has no title");
        }
        if (!ab_json_str(ab_json_get(s, "description"))) {
            lint_problem(l, path, "has no description");
        }
    }
    if (ab_json_get_bool(s, "airbyte_secret", false) &&
        ab_json_get_int(s, "minLength", 0) < AB_SECRET_MIN_LENGTH) {
        char what[64];

        /* shorter secrets would not be masked, or would mask common words */
        (void)snprintf(what, sizeof(what), "is a secret without minLength >= %d",
                       AB_SECRET_MIN_LENGTH);
        lint_problem(l, path, what);
    }
    if (ab_json_get(s, "pattern") && !ab_json_str(ab_json_get(s, "pattern_descriptor"))) {
        lint_problem(l, path, "has a pattern but no pattern_descriptor");
    }
    if (def) {
        yajl_val copy = ab_json_clone(def);
        struct ab_error verr;

        ab_error_init(&verr);
        if (copy && ab_config_validate(copy, s, &verr) != AB_OK) {
            lint_problem(l, path, "has a default its own schema rejects");
        }
        yajl_tree_free(copy);
    }
    lint_properties(l, ab_json_get(s, "properties"), path, top, top ? groups : NULL, depth);
    if (items) {
        (void)snprintf(sub, sizeof(sub), "%s[]", path);
        lint_schema(l, items, sub, false, NULL, depth + 1);
    }
    if (YAJL_IS_OBJECT(addl)) {
        (void)snprintf(sub, sizeof(sub), "%s.*", path);
        lint_schema(l, addl, sub, false, NULL, depth + 1);
    }
}

enum ab_status ab_spec_lint(yajl_val spec, struct ab_error *err)
{
    yajl_val cs = ab_json_get(spec, "connectionSpecification");
    yajl_val groups = ab_json_get(cs, "groups");
    struct lint l;
    enum ab_status rc = AB_OK;

    if (!YAJL_IS_OBJECT(ab_json_get(cs, "properties"))) {
        return ab_error_set(err, AB_ERR_INTERNAL, "spec: no connectionSpecification.properties");
    }
    ab_buf_init(&l.problems, LINT_MAX_PROBLEMS);
    l.count = 0;
    if (ab_json_get(spec, "x-ab-options")) {
        lint_problem(&l, "x-ab-options", "is still present (the spec was not built)");
    }
    if (groups && !YAJL_IS_ARRAY(groups)) {
        lint_problem(&l, "connectionSpecification.groups", "is not an array");
        groups = NULL;
    }
    lint_schema(&l, cs, "", true, groups, 0);
    if (l.count) {
        rc = ab_error_set(err, AB_ERR_INTERNAL, "spec has %zu problems: %s", l.count,
                          l.problems.data ? l.problems.data : "");
    }
    ab_buf_release(&l.problems);
    return rc;
}

/* ---- getters ------------------------------------------------------------------- */

int64_t ab_opt_int(yajl_val config, const char *key)
{
    int64_t v = 0;

    if (!ab_json_int(ab_json_get(config, key), &v)) {
        double d = 0;

        if (ab_json_double(ab_json_get(config, key), &d) && d >= -9.2e18 && d <= 9.2e18) {
            return (int64_t)d;
        }
        return 0;
    }
    return v;
}

double ab_opt_double(yajl_val config, const char *key)
{
    double v = 0;

    return ab_json_double(ab_json_get(config, key), &v) ? v : 0;
}

const char *ab_opt_str(yajl_val config, const char *key)
{
    return ab_json_str(ab_json_get(config, key));
}

bool ab_opt_bool(yajl_val config, const char *key)
{
    return YAJL_IS_TRUE(ab_json_get(config, key));
}

/* ---- the common groups as the driver uses them ------------------------------- */

static int64_t seconds_us(double s)
{
    if (!(s > 0)) {
        return 0;
    }
    if (s > 9.2e12) {
        s = 9.2e12;
    }
    return (int64_t)(s * 1e6);
}

void ab_opts_core(yajl_val config, struct ab_core_opts *o)
{
    const char *level = ab_opt_str(config, "log_level");

    o->log_level = AB_LOG_INFO;
    if (level && strcmp(level, "DEBUG") == 0) {
        o->log_level = AB_LOG_DEBUG;
    } else if (level && strcmp(level, "WARN") == 0) {
        o->log_level = AB_LOG_WARN;
    } else if (level && strcmp(level, "ERROR") == 0) {
        o->log_level = AB_LOG_ERROR;
    }
    o->progress_every_us = seconds_us(ab_opt_double(config, "progress_interval_seconds"));
}

void ab_opts_destination(yajl_val config, struct ab_destination_opts *o)
{
    const char *mode = ab_opt_str(config, "rejected_records");
    int64_t line = ab_opt_int(config, "max_line_bytes");

    yajl_val store = ab_json_get(config, "object_storage_config");
    const char *type = ab_opt_str(store, "storage_type");
    const char *legacy = ab_opt_str(config, "dead_letter_path");

    memset(o, 0, sizeof(*o));
    o->dead_letter_path = legacy && *legacy ? legacy : NULL;
    o->storage_set = YAJL_IS_OBJECT(store) && type;
    o->storage = AB_DL_FILE;
    o->local_path = o->dead_letter_path;
    if (o->storage_set && strcmp(type, "None") == 0) {
        o->storage = AB_DL_NONE;
    } else if (o->storage_set && strcmp(type, "S3") == 0) {
        o->storage = AB_DL_OBJSTORE;
        o->s3.endpoint = ab_opt_str(store, "endpoint");
        o->s3.region = ab_opt_str(store, "region");
        o->s3.bucket = ab_opt_str(store, "bucket");
        o->s3.access_key_id = ab_opt_str(store, "access_key_id");
        o->s3.secret_access_key = ab_opt_str(store, "secret_access_key");
        o->s3_prefix = ab_opt_str(store, "prefix");
    } else if (o->storage_set) {
        o->local_path = ab_opt_str(store, "path");
    }
    o->fail_on_reject = mode && strcmp(mode, "fail") == 0;
    o->max_line_bytes = line > 0 ? (size_t)line : 0;
    o->max_wait_us = seconds_us(ab_opt_double(config, "max_checkpoint_wait_seconds"));
    o->max_rejected_ratio = ab_opt_double(config, "max_rejected_ratio");
    o->rejected_ratio_min_records = (uint64_t)ab_opt_int(config, "rejected_ratio_min_records");
    o->max_rejected_records = (uint64_t)ab_opt_int(config, "max_rejected_records");
}

void ab_opts_http(yajl_val config, struct ab_http_opts *o)
{
    const char *ca = ab_opt_str(config, "ca_path");

    ab_http_opts_init(o);
    o->max_in_flight = (int)ab_opt_int(config, "max_in_flight");
    o->requests_per_second = ab_opt_double(config, "requests_per_second");
    o->burst = ab_opt_double(config, "burst");
    o->connect_timeout_ms =
        (long)(seconds_us(ab_opt_double(config, "connect_timeout_seconds")) / 1000);
    o->request_timeout_ms =
        (long)(seconds_us(ab_opt_double(config, "request_timeout_seconds")) / 1000);
    o->max_retries = (int)ab_opt_int(config, "max_retries");
    o->ca_path = ca && *ca ? ca : NULL;
}
