/* json.h - parsing, lookup and compact serialisation of JSON values (yajl_tree). */
/* SPDX-License-Identifier: MIT */
#ifndef AB_JSON_H
#define AB_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "ab/buf.h"
#include "ab/error.h"

/*
 * Values are yajl_val trees. Numbers keep their source text (u.number.r), and
 * ab_json_write() writes that text back, so integers too large for 64 bits and
 * decimals pass through byte-exact.
 */

/* Parses NUL-terminated text of length len. Invalid JSON or invalid UTF-8 is
 * AB_ERR_PROTOCOL with yajl's reason (and the byte offset) in the message.
 * The result belongs to the caller: yajl_tree_free(). */
yajl_val ab_json_parse(const char *text, size_t len, struct ab_error *err);

/*
 * An arena for trees parsed on the hot path (one per input line): nodes,
 * strings and arrays are carved from large blocks, and
 * ab_json_arena_reset() drops them all at once, keeping one block for the
 * next line. Trees from ab_json_parse_arena() are read-only, stay valid until
 * the next reset of their arena, and are never passed to yajl_tree_free().
 * They are the same yajl_val structures as yajl_tree's, so every accessor
 * here works on them. Parsing is strict JSON (no comments), UTF-8 validated.
 */
struct ab_json_arena;

struct ab_json_arena *ab_json_arena_new(struct ab_error *err);
void ab_json_arena_free(struct ab_json_arena *a);
void ab_json_arena_reset(struct ab_json_arena *a);
yajl_val ab_json_parse_arena(struct ab_json_arena *a, const char *text, size_t len,
                             struct ab_error *err);

/* Member of an object by key; NULL when v is not an object or has no such key.
 * Borrowed from v. */
yajl_val ab_json_get(yajl_val v, const char *key);
/* Member by a dotted path "a.b.c" (no escaping; keys holding dots cannot be
 * reached this way: use ab_json_get_path()). */
yajl_val ab_json_get_dotted(yajl_val v, const char *dotted);
/* Member by a NULL-terminated array of keys. */
yajl_val ab_json_get_path(yajl_val v, const char *const *path);

/* Typed accessors: NULL / the fallback when absent or of another type. */
const char *ab_json_str(yajl_val v);
bool ab_json_is_null(yajl_val v); /* NULL pointer or JSON null */
/* Integer value if v is a number that fits int64 exactly; false otherwise. */
bool ab_json_int(yajl_val v, int64_t *out);
bool ab_json_double(yajl_val v, double *out);
const char *ab_json_get_str(yajl_val obj, const char *key, const char *fallback);
int64_t ab_json_get_int(yajl_val obj, const char *key, int64_t fallback);
double ab_json_get_double(yajl_val obj, const char *key, double fallback);
bool ab_json_get_bool(yajl_val obj, const char *key, bool fallback);

/* Appends the compact JSON text of v (numbers as their source text). */
enum ab_status ab_json_write(struct ab_buf *out, yajl_val v, struct ab_error *err);
/* Appends s as a JSON string literal (quotes included), escaping as needed;
 * s must be valid UTF-8 (n bytes). */
enum ab_status ab_json_write_str(struct ab_buf *out, const char *s, size_t n, struct ab_error *err);
enum ab_status ab_json_write_cstr(struct ab_buf *out, const char *s, struct ab_error *err);

/* Name of v's JSON type ("string", "number", "object", ...), for messages. */
const char *ab_json_type_name(yajl_val v);

/* Deep copy (caller frees with yajl_tree_free()). NULL on allocation failure. */
yajl_val ab_json_clone(yajl_val v);

#endif
