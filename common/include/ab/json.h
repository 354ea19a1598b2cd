/* json.h - the strict JSON intake, lookup and compact serialisation of values. */
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
 *
 * The intake. Every document from outside (stdin lines, config, catalog,
 * HTTP answers, files) is parsed by the one strict parser behind the
 * functions below; yajl's own parser is not used. Beyond RFC 8259 it refuses:
 *   - strings and member names that are not UTF-8 per RFC 3629 (overlong
 *     forms, surrogates, code points above U+10FFFF, truncated sequences),
 *     whether raw bytes or escapes;
 *   - an escaped NUL (\u0000) and surrogate escapes that are not a pair;
 *   - numbers that do not fit a double (1e999, -1e999);
 *   - a member name twice in one object (compared after unescaping);
 *   - nesting deeper than AB_JSON_MAX_DEPTH;
 *   - a document needing more than its memory budget (AB_JSON_BUDGET_FACTOR
 *     times its size plus AB_JSON_BUDGET_BASE; valid JSON stays far below,
 *     see json_arena.c for the per-byte costs).
 * Errors are AB_ERR_PROTOCOL (AB_ERR_NOMEM when memory runs out) and name
 * the reason and the place: "invalid JSON: invalid UTF-8 at byte 17
 * ($.data.name)", "invalid JSON: member 'state' appears twice at byte 40
 * ($)", "invalid JSON: number out of range at byte 9 ($.data.price)". They
 * quote member names (up to 64 bytes), never string values, so no secret
 * from a config file ends up in a message. Parsing and freeing never
 * recurse: nesting costs no C stack.
 */
#define AB_JSON_MAX_DEPTH     512
#define AB_JSON_BUDGET_FACTOR 16
#define AB_JSON_BUDGET_BASE   ((size_t)1 << 20)

/* Per-arena limits; a zero field keeps its default. */
struct ab_json_limits {
    size_t max_depth;  /* default AB_JSON_MAX_DEPTH */
    size_t max_bytes;  /* memory per document; default from the budget */
    size_t max_values; /* values per document; default unlimited */
};

/* Parses text of length len (it needs no NUL terminator). The result is
 * malloc'd like yajl_tree's and belongs to the caller: ab_json_free() (or
 * yajl_tree_free(); its recursion is bounded by the depth cap). NULL on
 * error, with err set as above. */
yajl_val ab_json_parse(const char *text, size_t len, struct ab_error *err);

/* Frees a tree from ab_json_parse() or ab_json_clone() without recursion.
 * NULL is a no-op. Never pass an arena tree. */
void ab_json_free(yajl_val v);

/* True when s (n bytes) is UTF-8 per RFC 3629; else *bad (if not NULL) is
 * the offset of the first invalid byte. */
bool ab_utf8_valid(const char *s, size_t n, size_t *bad);

/*
 * An arena for trees parsed on the hot path (one per input line): nodes and
 * strings are carved from 64 KiB blocks with no per-value malloc, and
 * ab_json_arena_reset() drops them all at once, keeping one block for the
 * next line. Trees from an arena are read-only (some nodes are shared
 * statics), stay valid until the next parse or reset of their arena, and
 * are never freed on their own. Only the members of a node's own type exist
 * (a string node has no room for u.number): check the type before reading,
 * as every accessor here does. One thread at a time per arena.
 */
struct ab_json_arena;

struct ab_json_arena *ab_json_arena_new(struct ab_error *err);
void ab_json_arena_free(struct ab_json_arena *a);
void ab_json_arena_reset(struct ab_json_arena *a);
/* Limits for the following parses (copied). */
void ab_json_arena_set_limits(struct ab_json_arena *a, const struct ab_json_limits *l);
/* Memory the last document took from the arena (blocks, stack, tables). */
size_t ab_json_arena_doc_bytes(const struct ab_json_arena *a);
/* Where v, an object or array of the last document parsed into a, lies in
 * that document's text: *off and *len of its bytes, brackets included, and
 * *compact when no whitespace outside strings lies within. Known for the
 * non-empty containers nested at most three deep (the root, the values of
 * its members or items, theirs: a RECORD line's record and record.data),
 * the first eight of a document; false for any other value, and after a
 * reset. */
bool ab_json_arena_span(const struct ab_json_arena *a, yajl_val v, size_t *off, size_t *len,
                        bool *compact);
/*
 * Lazy data. With lazy on, the object at record.data of a RECORD line (the
 * value of the member "data" of the value of the root's member "record") is
 * read without a tree when it is plain: member names without escapes,
 * strings without \u escapes, numbers without an exponent, nesting and
 * member counts within fixed bounds. It is validated as strictly as the
 * tree path would, and gets a node of type object with no members; its
 * span is kept as for any container, and ab_json_arena_lazy() gives its
 * top-level members. Anything else (or any error) is parsed into a tree as
 * usual, from the same byte, so errors and their messages do not change.
 */
struct ab_json_member {
    size_t name_off; /* of the name's first byte after the quote, from the '{' */
    size_t name_len; /* its bytes, no escapes */
    size_t val_off;  /* of the value's first byte, from the '{' */
    size_t val_len;  /* the value's JSON text, quotes and brackets included */
    bool escaped;    /* a string in the value holds an escape (a backslash) */
};
void ab_json_arena_set_lazy(struct ab_json_arena *a, bool on);
/* True when v is the object the last document read lazily: its members in
 * order in *members (owned by a, valid until its next parse or reset). */
bool ab_json_arena_lazy(const struct ab_json_arena *a, yajl_val v,
                        const struct ab_json_member **members, size_t *n);
/* Strict parse into the arena; NULL on any error (err says why). */
yajl_val ab_json_parse_arena(struct ab_json_arena *a, const char *text, size_t len,
                             struct ab_error *err);
/*
 * As ab_json_parse_arena(); with salvage and content not NULL, a content
 * error (bad UTF-8, escaped NUL, unpaired surrogate, number out of range,
 * duplicate member) does not stop the parse: the tree is still returned,
 * content->code is set with the first such error (reason, byte and path),
 * and every offending value, the value of a member whose name is invalid and
 * the first value of a duplicated member are replaced by a marker node for
 * which ab_json_is_invalid() is true. Syntax, depth and budget errors are
 * still fatal (NULL, err set).
 */
yajl_val ab_json_parse_ex(struct ab_json_arena *a, const char *text, size_t len, bool salvage,
                          struct ab_error *content, struct ab_error *err);
/* The marker of ab_json_parse_ex()'s salvage mode (a string node). */
bool ab_json_is_invalid(yajl_val v);

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

/* Deep copy into malloc'd nodes (caller frees with ab_json_free()); works on
 * arena trees too. NULL on allocation failure. */
yajl_val ab_json_clone(yajl_val v);

#endif
