/* mapping.h - which stream loads which target object, and how fields map. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_MAPPING_H
#define AB_MAPPING_H

#include <stdbool.h>
#include <stddef.h>

#include <yajl/yajl_tree.h>

#include "ab/buf.h"
#include "ab/catalog.h"
#include "ab/error.h"

struct ab_json_member;

/*
 * Config shape (the "stream_mappings" array of both destinations):
 *   [{"stream": "clientes", "namespace": "erp", "object": "customers",
 *     "fields": {"external_id": "id", "email": "contato.email"}}]
 * "fields" maps a target field to a source field path (dot-separated), or to
 * a transform object:
 *   {"from": "path", "as": "string"}       a number as its text, a string as is
 *   {"from": "path", "as": "decimal", "scale": 2}
 *                                          a number (or numeric text) as a
 *                                          decimal text with scale digits
 *   {"from": "path", "as": "integer"}      a whole number (or numeric text,
 *                                          "12.0" too) as a JSON integer; a
 *                                          fraction is not converted
 *   {"from": "path", "as": "array"}        a value as a one-element array (an
 *                                          array as it is, "" not converted)
 *   {"from": "path", "as": "pairs", "separator": ";", "assign": ":",
 *    "keys": {"Tamanho": "size"}}          a text "Tamanho:G;Cor:Verde" as an
 *                                          object of texts, keys renamed
 *                                          through "keys" (others kept);
 *                                          separator ";" and assign ":" by
 *                                          default; a part without the
 *                                          assign text: not converted
 *   {"from": "path", "as": "rfc3339", "utc_offset_minutes": -180}
 *                                          a date or date-time text (forms of
 *                                          ab_time_parse(), offset for texts
 *                                          without one) as RFC 3339 UTC
 *   {"from": "path", "map": {"9": "paid"}, "default": "pending"}
 *                                          the source value (a string, or a
 *                                          number's text) looked up; no entry
 *                                          (or no value) gives the default
 *   {"value": <JSON>}                      a constant
 *   {"from": "path", "each": {<fields>}}   an array, each element mapped with
 *                                          the nested fields
 *   {"fields": {<fields>}}                 an object made of the nested fields,
 *                                          mapped from the same record (members
 *                                          without a value left out)
 * A path step into an array is an element's index ("emails.0.email").
 *
 * A target field name with dots is a path into objects of the mapped record:
 * "attributes.size": "grade.Tamanho" and "attributes.color": "cor" write
 * {"attributes": {"size": ..., "color": ...}}: the targets under one parent
 * merge into one object, its members in the order the config first names
 * them; a parent none of whose members has a value is left out. A name and
 * a dotted path under it ("attributes" and "attributes.size", or
 * "attributes.size" and "attributes.size.code") are a config error naming
 * both; so are an empty part ("a..b") and a path of more than
 * AB_MAPPING_TARGET_DEPTH parts. Dotted names work inside "fields" and
 * "each" too. ab_mapping_get() and ab_mapping_annotate_errors() take a
 * dotted name as well ("attributes.size"), and the parent's name gives the
 * whole object.
 * A value the transform cannot convert leaves the target field absent (the
 * destination then reports the missing field). With "fields", only the
 * listed target fields are sent; without it the record's top-level fields
 * are sent as they are, except Airbyte's own ("_ab_*", "_airbyte_*"). A
 * stream with no mapping whose name equals an object name loads that object
 * with identical fields.
 *
 * A mapping with transforms keeps the last value it computed per field:
 * values returned by ab_mapping_get() are valid until the next call for the
 * same field or ab_mappings_release(); one thread at a time per mapping.
 */
/* The most parts of a dotted target name ("a.b.c" has 3). */
#define AB_MAPPING_TARGET_DEPTH 8

struct ab_mapping_xform; /* private to mapping.c */

struct ab_mapping_field {
    char *to; /* the target name (the last part of a dotted one) */
    struct ab_path from;
    struct ab_mapping_xform *xf; /* NULL: the value at from as it is */
};

struct ab_mapping {
    char *stream;
    char *ns; /* NULL: any namespace */
    char *object;
    struct ab_mapping_field *fields;
    size_t nfields;
    bool identity; /* no "fields": pass the record through */
};

struct ab_mappings {
    struct ab_mapping *m; /* the explicit mappings, in config order */
    size_t n;
    /* private: identity mappings made by ab_mappings_resolve(), one
     * allocation each so that returned pointers never move */
    struct ab_mapping **implicit;
    size_t nimplicit;
};

/* Parses the array (NULL or JSON null: no explicit mappings). objects is the
 * NULL-terminated list of valid object names (NULL: any name); an unknown
 * object, a missing stream or an empty field path is AB_ERR_CONFIG naming its
 * index. Without "object" the object is the stream's name; without "fields"
 * the mapping is an identity one. Two entries for the same stream and
 * namespace are an error. On failure ms is left empty. */
enum ab_status ab_mappings_parse(struct ab_mappings *ms, yajl_val arr, const char *const *objects,
                                 struct ab_error *err);
void ab_mappings_release(struct ab_mappings *ms);

/* The mapping for a stream: an explicit one (one for exactly ns beats one
 * for any namespace), else an identity mapping when the stream's name is an
 * object name (stored in ms), else NULL with err set: AB_ERR_CONFIG naming
 * the stream when it has no mapping, AB_ERR_NOMEM. The pointer is borrowed
 * from ms and stays valid until ab_mappings_release(). */
const struct ab_mapping *ab_mappings_resolve(struct ab_mappings *ms, const char *stream,
                                             const char *ns, const char *const *objects,
                                             struct ab_error *err);

/* Target field value: for an identity mapping data[field], otherwise the
 * mapped source path (field may be dotted: "attributes.size"); NULL when
 * absent. */
yajl_val ab_mapping_get(const struct ab_mapping *m, yajl_val data, const char *field);

/* Writes the mapped record as a JSON object into out. Members whose value is
 * absent are left out. extra_key/extra_val (may be NULL) add one member
 * when the mapped record has none of that name (a default brand). */
enum ab_status ab_mapping_write(const struct ab_mapping *m, yajl_val data, const char *extra_key,
                                const char *extra_val, struct ab_buf *out, struct ab_error *err);

/* Copies the JSON array errors_json ([{"field": "<target field>", ...}]) into
 * out with, in each object whose "field" is a target field m maps,
 * "source_field": "<source path>" and "mapping": "<field> <- <source path>"
 * added (an identity mapping maps a field from itself). Anything that is not
 * such an array is copied as it is. m may be NULL (copied as it is). */
enum ab_status ab_mapping_annotate_errors(const struct ab_mapping *m, const char *errors_json,
                                          struct ab_buf *out, struct ab_error *err);

/* As ab_mapping_write(), given also text (len bytes): the JSON text data
 * was parsed from, as the strict intake accepted it (NULL: not known). For
 * an identity mapping the members are copied from these bytes, without
 * re-serialising: _ab_* and _airbyte_* members left out, whitespace outside
 * strings dropped, strings with the escapes they came with, numbers as
 * written. The JSON values are those ab_mapping_write() writes. A member
 * name spelled with an escape goes through ab_mapping_write(); so does
 * every other mapping, and text NULL. */
enum ab_status ab_mapping_write_text(const struct ab_mapping *m, yajl_val data, const char *text,
                                     size_t len, const char *extra_key, const char *extra_val,
                                     struct ab_buf *out, struct ab_error *err);

/* True when the record goes out as it came for mapping m: an identity
 * mapping, data an object without _ab_* and _airbyte_* members, and, when
 * extra_key and extra_val are set, a non-null extra_key member in data. */
bool ab_mapping_verbatim(const struct ab_mapping *m, yajl_val data, const char *extra_key,
                         const char *extra_val);
/* The same question for lazy data: members of the object whose text is
 * text (struct ab_record's members and data_text). */
bool ab_mapping_verbatim_members(const struct ab_mapping *m, const char *text,
                                 const struct ab_json_member *members, size_t n,
                                 const char *extra_key, const char *extra_val);

/* As ab_mapping_write_text(), told also whether text is compact (holds no
 * whitespace outside strings, see ab_json_arena_span()). A compact text of a
 * record that goes out as it came (ab_mapping_verbatim()) is copied as one
 * block and *verbatim is set: out then holds exactly text, the bytes
 * ab_mapping_write_text() would write for it unless a member name holds an
 * escape (then that writes the name unescaped; the values are the same). */
enum ab_status ab_mapping_write_span(const struct ab_mapping *m, yajl_val data, const char *text,
                                     size_t len, bool compact, const char *extra_key,
                                     const char *extra_val, struct ab_buf *out, bool *verbatim,
                                     struct ab_error *err);

/* The text of record.data in a RECORD line (len bytes, accepted by the
 * strict intake), *data_len its length; NULL when it is not found under
 * those plain member names (then only the parsed tree can say). Borrowed
 * from line. */
const char *ab_record_data_text(const char *line, size_t len, size_t *data_len);

#endif
