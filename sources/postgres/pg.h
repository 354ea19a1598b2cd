/* pg.h - source-postgres: tables, views and materialized views of PostgreSQL. */
/* SPDX-License-Identifier: MIT */
#ifndef PG_PG_H
#define PG_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ab/buf.h"
#include "ab/error.h"
#include "ab/source.h"

/* spec.json, embedded at build time */
extern const char pg_spec_json[];
extern const struct ab_source_ops pg_source_ops;

/*
 * How a value in PostgreSQL's text output becomes JSON. The session runs
 * with DateStyle ISO, TimeZone UTC, IntervalStyle iso_8601, bytea_output
 * hex and extra_float_digits 1 (shortest exact floats), so the text forms
 * below are the only ones the converters see.
 */
enum pg_conv {
    PG_CONV_STRING = 0,  /* text, varchar, uuid, enums, inet, interval, ...: a JSON string */
    PG_CONV_INTEGER,     /* int2, int4, int8, oid: the digits as a JSON number (exact) */
    PG_CONV_FLOAT,       /* float4, float8: a number; NaN, Infinity, -Infinity as strings */
    PG_CONV_DECIMAL,     /* numeric (and money, selected as numeric): a decimal string */
    PG_CONV_BOOL,        /* t / f */
    PG_CONV_JSON,        /* json, jsonb, arrays (selected through to_json): embedded */
    PG_CONV_BYTEA,       /* \x hex: base64 */
    PG_CONV_DATE,        /* 2024-01-31, BC as an astronomical year (-0043-03-15) */
    PG_CONV_TIMESTAMP,   /* 2024-01-31T10:00:00.5 */
    PG_CONV_TIMESTAMPTZ, /* 2024-01-31T10:00:00.5Z */
    PG_CONV_TIME,        /* 10:00:00.5 */
    PG_CONV_TIMETZ       /* 10:00:00.5+02:00 */
};

/* The conversion of a result column of type oid (a domain is reported as
 * its base type; an unknown oid is a string). */
enum pg_conv pg_conv_of_oid(uint32_t oid);

/* Appends the JSON form of the text value v (n bytes) to out. AB_ERR_PROTOCOL
 * naming the problem when the text is not of the expected form (an internal
 * error: the server sent what its type never produces); AB_ERR_NOMEM. */
enum ab_status pg_value_json(struct ab_buf *out, enum pg_conv conv, const char *v, size_t n,
                             struct ab_error *err);

/* Appends base64 (RFC 4648, padded) of n bytes. */
enum ab_status pg_base64(struct ab_buf *out, const unsigned char *p, size_t n,
                         struct ab_error *err);

/* Appends "ident" with every double quote doubled: a quoted SQL identifier. */
enum ab_status pg_quote_ident(struct ab_buf *out, const char *ident, struct ab_error *err);

/* The JSON schema of a column from its base type name (typname), type
 * category, array element type name ("" when not an array) and nullability. */
enum ab_status pg_column_schema(struct ab_buf *out, const char *base, char category,
                                const char *elem, bool notnull, struct ab_error *err);

/* True when a column of this base type can be a cursor (it is ordered and
 * its text form is read back by the type's input function). */
bool pg_cursor_type(const char *base);

/* xmin wraparound decision: the saved (num_wraparound, xid) against the
 * current snapshot's. True when the stream must be read whole again
 * (a wraparound happened since the state was saved). */
bool pg_xmin_needs_full(int64_t saved_wrap, int64_t cur_wrap);

/* pg_lsn text ("16/B374D848") to a number; false when malformed. */
bool pg_lsn_parse(const char *text, uint64_t *out);
/* A PostgreSQL array literal ({1,"a b",NULL,{2}}) as a JSON array of
 * elements converted with conv. AB_ERR_PROTOCOL when malformed. */
enum ab_status pg_array_json(struct ab_buf *out, enum pg_conv conv, const char *v, size_t n,
                             struct ab_error *err);

#endif
