/* catalog.h - the configured catalog: streams, modes, keys, generations. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_CATALOG_H
#define AB_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "ab/error.h"

enum ab_sync_mode { AB_SYNC_FULL_REFRESH = 0, AB_SYNC_INCREMENTAL };

enum ab_dest_mode {
    AB_DEST_APPEND = 0,
    AB_DEST_OVERWRITE,
    AB_DEST_APPEND_DEDUP,
    AB_DEST_OVERWRITE_DEDUP,
    AB_DEST_UPDATE,
    AB_DEST_SOFT_DELETE,
    AB_DEST_UNKNOWN
};

/* A field path such as ["customer", "id"]: keys, NULL-terminated. */
struct ab_path {
    char **keys;
    size_t n;
};

struct ab_stream {
    char *name;
    char *ns; /* NULL when the stream has no namespace (absent, null or "") */
    enum ab_sync_mode sync_mode;
    enum ab_dest_mode dest_mode;
    char *dest_mode_name;        /* as written in the catalog */
    char *destination_object;    /* destination_object_name or NULL */
    struct ab_path *primary_key; /* npk paths */
    size_t npk;
    struct ab_path cursor; /* n == 0 when absent */
    int64_t generation_id; /* -1 when absent */
    int64_t minimum_generation_id;
    int64_t sync_id;
};

struct ab_catalog {
    struct ab_stream *streams;
    size_t n;
};

/* Loads and checks a ConfiguredAirbyteCatalog file: missing streams, names,
 * unknown destination_sync_mode are AB_ERR_CONFIG naming the stream
 * ("catalog: streams[2] ('orders'): unknown destination_sync_mode 'merge'"),
 * as are a duplicate (name, namespace) pair, a malformed key or cursor and a
 * non-integer id. An unreadable file or invalid JSON is AB_ERR_CONFIG
 * "cannot read catalog '<path>': ...". primary_key falls back to
 * stream.source_defined_primary_key and cursor_field to
 * stream.default_cursor_field when absent or null (an explicit [] does not
 * fall back); an absent sync_mode is full_refresh. On failure cat is left
 * empty; release it with ab_catalog_release() after success. */
enum ab_status ab_catalog_load(struct ab_catalog *cat, const char *path, struct ab_error *err);
enum ab_status ab_catalog_parse(struct ab_catalog *cat, yajl_val root, struct ab_error *err);
void ab_catalog_release(struct ab_catalog *cat);

/* Index of the stream (ns may be NULL; NULL and "" are equal), or -1. */
long ab_catalog_find(const struct ab_catalog *cat, const char *name, const char *ns);

/* Writes into out (always NUL-terminated, truncated to size) the catalog's
 * streams closest to (name, ns) by edit distance of their "namespace.name"
 * form, at most three, and its namespaces closest to ns, for a message:
 * "closest streams in the catalog: 'public.users', 'users'; namespaces in
 * the catalog: 'public'" ("no stream of the catalog has a namespace" when
 * none has). Quotes and control characters in names are written as '?'. */
void ab_catalog_closest(const struct ab_catalog *cat, const char *name, const char *ns, char *out,
                        size_t size);

const char *ab_dest_mode_name(enum ab_dest_mode m);

/* Value at path inside data, or NULL. */
/* A step into an array takes the element of that index ("0", "12"). */
yajl_val ab_path_get(const struct ab_path *p, yajl_val data);
/* "a.b" form of a path into buf (for messages). */
const char *ab_path_str(const struct ab_path *p, char *buf, size_t size);
/* Parses a dotted path "a.b.c" into p (p owns copies). */
enum ab_status ab_path_parse(struct ab_path *p, const char *dotted, struct ab_error *err);
void ab_path_release(struct ab_path *p);

#endif
