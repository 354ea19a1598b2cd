/* values.c - PostgreSQL text values as JSON, column schemas: pure functions. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/json.h"

#include "pg.h"

/* Built-in type oids (pg_type.dat; stable across versions). */
enum {
    OID_BOOL = 16,
    OID_BYTEA = 17,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_OID = 26,
    OID_JSON = 114,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_MONEY = 790,
    OID_DATE = 1082,
    OID_TIME = 1083,
    OID_TIMESTAMP = 1114,
    OID_TIMESTAMPTZ = 1184,
    OID_TIMETZ = 1266,
    OID_NUMERIC = 1700,
    OID_JSONB = 3802
};

enum pg_conv pg_conv_of_oid(uint32_t oid)
{
    switch (oid) {
    case OID_BOOL:
        return PG_CONV_BOOL;
    case OID_BYTEA:
        return PG_CONV_BYTEA;
    case OID_INT8:
    case OID_INT2:
    case OID_INT4:
    case OID_OID:
        return PG_CONV_INTEGER;
    case OID_JSON:
    case OID_JSONB:
        return PG_CONV_JSON;
    case OID_FLOAT4:
    case OID_FLOAT8:
        return PG_CONV_FLOAT;
    case OID_MONEY:
    case OID_NUMERIC:
        return PG_CONV_DECIMAL;
    case OID_DATE:
        return PG_CONV_DATE;
    case OID_TIME:
        return PG_CONV_TIME;
    case OID_TIMESTAMP:
        return PG_CONV_TIMESTAMP;
    case OID_TIMESTAMPTZ:
        return PG_CONV_TIMESTAMPTZ;
    case OID_TIMETZ:
        return PG_CONV_TIMETZ;
    default:
        return PG_CONV_STRING;
    }
}

enum ab_status pg_base64(struct ab_buf *out, const unsigned char *p, size_t n, struct ab_error *err)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *w;
    size_t i;

    if (ab_buf_reserve(out, (n + 2) / 3 * 4, err) != AB_OK) {
        return err->code;
    }
    w = out->data + out->len;
    for (i = 0; i + 2 < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        *w++ = tab[v >> 18];
        *w++ = tab[(v >> 12) & 63];
        *w++ = tab[(v >> 6) & 63];
        *w++ = tab[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0U);
        *w++ = tab[v >> 18];
        *w++ = tab[(v >> 12) & 63];
        *w++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *w++ = '=';
    }
    out->len = (size_t)(w - out->data);
    out->data[out->len] = '\0';
    return AB_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* bytea hex output "\x0a0b..." to base64, three bytes at a time. */
static enum ab_status bytea_json(struct ab_buf *out, const char *v, size_t n, struct ab_error *err)
{
    unsigned char chunk[3 * 256];
    size_t used = 0;

    if (n < 2 || v[0] != '\\' || v[1] != 'x' || n % 2 != 0) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "bytea value not in hex output form");
    }
    if (ab_buf_addc(out, '"', err) != AB_OK) {
        return err->code;
    }
    for (size_t i = 2; i < n; i += 2) {
        int hi = hexval(v[i]);
        int lo = hexval(v[i + 1]);

        if (hi < 0 || lo < 0) {
            return ab_error_set(err, AB_ERR_PROTOCOL, "bytea value with a non-hex digit");
        }
        chunk[used++] = (unsigned char)(hi << 4 | lo);
        if (used == sizeof(chunk)) {
            if (pg_base64(out, chunk, used, err) != AB_OK) {
                return err->code;
            }
            used = 0;
        }
    }
    if (pg_base64(out, chunk, used, err) != AB_OK) {
        return err->code;
    }
    return ab_buf_addc(out, '"', err);
}

/* json text: newlines and carriage returns can only be whitespace outside
 * strings (the server rejects them raw inside one), so they become spaces
 * and the record stays on one line. */
static enum ab_status json_embed(struct ab_buf *out, const char *v, size_t n, struct ab_error *err)
{
    size_t start = out->len;

    if (ab_buf_add(out, v, n, err) != AB_OK) {
        return err->code;
    }
    for (size_t i = start; i < out->len; i++) {
        if (out->data[i] == '\n' || out->data[i] == '\r') {
            out->data[i] = ' ';
        }
    }
    return AB_OK;
}

/*
 * A date or the date part of a timestamp: "YYYY-MM-DD[ rest][ BC]". BC years
 * become astronomical years (1 BC is 0000, 44 BC is -0043), the space before
 * the time becomes 'T', "+00" at the end (timestamptz) becomes "Z", another
 * "+hh" offset "+hh:00". "infinity" and "-infinity" stay strings.
 */
static enum ab_status datetime_json(struct ab_buf *out, enum pg_conv conv, const char *v, size_t n,
                                    struct ab_error *err)
{
    bool bc = n > 3 && memcmp(v + n - 3, " BC", 3) == 0;
    size_t dash;
    char year[32];

    if (n == 8 && memcmp(v, "infinity", 8) == 0) {
        return ab_buf_adds(out, "\"infinity\"", err);
    }
    if (n == 9 && memcmp(v, "-infinity", 9) == 0) {
        return ab_buf_adds(out, "\"-infinity\"", err);
    }
    if (bc) {
        n -= 3;
    }
    for (dash = 0; dash < n && v[dash] >= '0' && v[dash] <= '9'; dash++) {
    }
    if (dash < 4 || dash >= n || v[dash] != '-' || dash > 20) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "date value not in ISO form");
    }
    if (ab_buf_addc(out, '"', err) != AB_OK) {
        return err->code;
    }
    if (bc) {
        long y = strtol(v, NULL, 10) - 1;

        (void)snprintf(year, sizeof(year), y == 0 ? "%04ld" : "-%04ld", y);
        if (ab_buf_adds(out, year, err) != AB_OK) {
            return err->code;
        }
    } else if (ab_buf_add(out, v, dash, err) != AB_OK) {
        return err->code;
    }
    for (size_t i = dash; i < n; i++) {
        char c = v[i];

        if (c == ' ') {
            c = 'T';
        } else if (conv == PG_CONV_TIMESTAMPTZ && (c == '+' || c == '-') && i > dash + 6) {
            /* the offset: the rest of the value */
            if (n - i == 3 && memcmp(v + i, "+00", 3) == 0) {
                if (ab_buf_addc(out, 'Z', err) != AB_OK) {
                    return err->code;
                }
            } else if (ab_buf_add(out, v + i, n - i, err) != AB_OK ||
                       (n - i == 3 && ab_buf_adds(out, ":00", err) != AB_OK)) {
                return err->code;
            }
            break;
        }
        if (ab_buf_addc(out, c, err) != AB_OK) {
            return err->code;
        }
    }
    return ab_buf_addc(out, '"', err);
}

/* timetz "10:00:00.5+02" -> "10:00:00.5+02:00". */
static enum ab_status timetz_json(struct ab_buf *out, const char *v, size_t n, struct ab_error *err)
{
    size_t i = n;

    while (i > 0 && v[i - 1] != '+' && v[i - 1] != '-') {
        i--;
    }
    if (ab_buf_addc(out, '"', err) != AB_OK || ab_buf_add(out, v, n, err) != AB_OK) {
        return err->code;
    }
    if (i > 0 && n - i == 2 && ab_buf_adds(out, ":00", err) != AB_OK) {
        return err->code;
    }
    return ab_buf_addc(out, '"', err);
}

enum ab_status pg_value_json(struct ab_buf *out, enum pg_conv conv, const char *v, size_t n,
                             struct ab_error *err)
{
    switch (conv) {
    case PG_CONV_INTEGER:
        return ab_buf_add(out, v, n, err);
    case PG_CONV_FLOAT:
        if ((n == 3 && memcmp(v, "NaN", 3) == 0) || (n > 0 && (v[n - 1] == 'y'))) {
            return ab_json_write_str(out, v, n, err); /* NaN, Infinity, -Infinity */
        }
        return ab_buf_add(out, v, n, err);
    case PG_CONV_BOOL:
        return ab_buf_adds(out, n > 0 && v[0] == 't' ? "true" : "false", err);
    case PG_CONV_JSON:
        return json_embed(out, v, n, err);
    case PG_CONV_BYTEA:
        return bytea_json(out, v, n, err);
    case PG_CONV_DATE:
    case PG_CONV_TIMESTAMP:
    case PG_CONV_TIMESTAMPTZ:
        return datetime_json(out, conv, v, n, err);
    case PG_CONV_TIMETZ:
        return timetz_json(out, v, n, err);
    case PG_CONV_DECIMAL:
    case PG_CONV_TIME:
    case PG_CONV_STRING:
    default:
        return ab_json_write_str(out, v, n, err);
    }
}

enum ab_status pg_quote_ident(struct ab_buf *out, const char *ident, struct ab_error *err)
{
    if (ab_buf_addc(out, '"', err) != AB_OK) {
        return err->code;
    }
    for (const char *p = ident; *p; p++) {
        if (ab_buf_addc(out, *p, err) != AB_OK || (*p == '"' && ab_buf_addc(out, '"', err))) {
            return err->code;
        }
    }
    return ab_buf_addc(out, '"', err);
}

struct type_schema {
    const char *base;
    const char *schema; /* without the type */
    const char *type;
};

static const struct type_schema type_schemas[] = {
    {"int2", "", "integer"},
    {"int4", "", "integer"},
    {"int8", ",\"airbyte_type\":\"integer\"", "integer"},
    {"oid", "", "integer"},
    {"float4", "", "number\",\"string"},
    {"float8", "", "number\",\"string"},
    {"numeric", ",\"format\":\"decimal\"", "string"},
    {"money", ",\"format\":\"decimal\"", "string"},
    {"bool", "", "boolean"},
    {"date", ",\"format\":\"date\"", "string"},
    {"timestamp", ",\"format\":\"date-time\",\"airbyte_type\":\"timestamp_without_timezone\"",
     "string"},
    {"timestamptz", ",\"format\":\"date-time\",\"airbyte_type\":\"timestamp_with_timezone\"",
     "string"},
    {"time", ",\"format\":\"time\",\"airbyte_type\":\"time_without_timezone\"", "string"},
    {"timetz", ",\"format\":\"time\",\"airbyte_type\":\"time_with_timezone\"", "string"},
    {"uuid", ",\"format\":\"uuid\"", "string"},
    {"bytea", ",\"contentEncoding\":\"base64\"", "string"},
    {"interval", ",\"format\":\"duration\"", "string"},
};

static const struct type_schema *schema_of(const char *base)
{
    for (size_t i = 0; i < sizeof(type_schemas) / sizeof(type_schemas[0]); i++) {
        if (strcmp(type_schemas[i].base, base) == 0) {
            return &type_schemas[i];
        }
    }
    return NULL;
}

static enum ab_status scalar_schema(struct ab_buf *out, const char *base, bool notnull,
                                    struct ab_error *err)
{
    const struct type_schema *ts = schema_of(base);

    if (strcmp(base, "json") == 0 || strcmp(base, "jsonb") == 0) {
        return ab_buf_adds(out, "{}", err); /* any JSON value */
    }
    return ab_buf_printf(out, err, "{\"type\":[%s\"%s\"]%s}", notnull ? "" : "\"null\",",
                         ts ? ts->type : "string", ts ? ts->schema : "");
}

enum ab_status pg_column_schema(struct ab_buf *out, const char *base, char category,
                                const char *elem, bool notnull, struct ab_error *err)
{
    if (category == 'A' && elem[0]) {
        /* items may themselves be arrays (more dimensions) or null */
        if (ab_buf_printf(out, err, "{\"type\":[%s\"array\"],\"items\":{\"anyOf\":[",
                          notnull ? "" : "\"null\",") != AB_OK ||
            scalar_schema(out, elem, false, err) != AB_OK ||
            ab_buf_adds(out, ",{\"type\":\"array\"}]}}", err) != AB_OK) {
            return err->code;
        }
        return AB_OK;
    }
    return scalar_schema(out, base, notnull, err);
}

bool pg_cursor_type(const char *base)
{
    static const char *const ok[] = {
        "int2", "int4",   "int8", "numeric", "float4", "float8", "date", "timestamp", "timestamptz",
        "time", "timetz", "text", "varchar", "bpchar", "uuid",   "oid",  "money"};

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (strcmp(ok[i], base) == 0) {
            return true;
        }
    }
    return false;
}

bool pg_xmin_needs_full(int64_t saved_wrap, int64_t cur_wrap)
{
    return cur_wrap != saved_wrap;
}

bool pg_lsn_parse(const char *text, uint64_t *out)
{
    unsigned long hi, lo;
    char tail;

    if (!text || sscanf(text, "%lX/%lX%c", &hi, &lo, &tail) != 2 || hi > 0xffffffffUL ||
        lo > 0xffffffffUL) {
        return false;
    }
    *out = (uint64_t)hi << 32 | lo;
    return true;
}

/* One element of an array literal at *pos (quoted, unquoted or NULL). */
static enum ab_status array_elem(struct ab_buf *out, enum pg_conv conv, const char *v, size_t n,
                                 size_t *pos, struct ab_buf *tmp, struct ab_error *err)
{
    size_t i = *pos;

    ab_buf_reset(tmp);
    if (i < n && v[i] == '"') {
        for (i++; i < n && v[i] != '"'; i++) {
            if (v[i] == '\\' && i + 1 < n) {
                i++;
            }
            if (ab_buf_addc(tmp, v[i], err) != AB_OK) {
                return err->code;
            }
        }
        if (i >= n) {
            return ab_error_set(err, AB_ERR_PROTOCOL, "array value with an unterminated quote");
        }
        *pos = i + 1;
    } else {
        size_t start = i;

        while (i < n && v[i] != ',' && v[i] != '}') {
            i++;
        }
        *pos = i;
        if (i - start == 4 && memcmp(v + start, "NULL", 4) == 0) {
            return ab_buf_adds(out, "null", err);
        }
        if (ab_buf_add(tmp, v + start, i - start, err) != AB_OK) {
            return err->code;
        }
    }
    return pg_value_json(out, conv, tmp->data ? tmp->data : "", tmp->len, err);
}

static enum ab_status array_level(struct ab_buf *out, enum pg_conv conv, const char *v, size_t n,
                                  size_t *pos, int depth, struct ab_buf *tmp, struct ab_error *err)
{
    size_t i = *pos;

    if (depth > 6 || i >= n || v[i] != '{') {
        return ab_error_set(err, AB_ERR_PROTOCOL, "array value not in literal form");
    }
    if (ab_buf_addc(out, '[', err) != AB_OK) {
        return err->code;
    }
    i++;
    if (i < n && v[i] == '}') {
        *pos = i + 1;
        return ab_buf_addc(out, ']', err);
    }
    for (;;) {
        enum ab_status rc = i < n && v[i] == '{'
                                ? array_level(out, conv, v, n, &i, depth + 1, tmp, err)
                                : array_elem(out, conv, v, n, &i, tmp, err);

        if (rc != AB_OK) {
            return rc;
        }
        if (i >= n) {
            return ab_error_set(err, AB_ERR_PROTOCOL, "array value not terminated");
        }
        if (v[i] == '}') {
            *pos = i + 1;
            return ab_buf_addc(out, ']', err);
        }
        if (v[i] != ',' || ab_buf_addc(out, ',', err) != AB_OK) {
            return v[i] != ',' ? ab_error_set(err, AB_ERR_PROTOCOL, "array value malformed")
                               : err->code;
        }
        i++;
    }
}

enum ab_status pg_array_json(struct ab_buf *out, enum pg_conv conv, const char *v, size_t n,
                             struct ab_error *err)
{
    struct ab_buf tmp;
    size_t pos = 0;
    enum ab_status rc;

    if (n > 0 && v[0] == '[') { /* explicit bounds "[0:1]={...}" */
        const char *eq = memchr(v, '=', n);

        if (!eq) {
            return ab_error_set(err, AB_ERR_PROTOCOL, "array value not in literal form");
        }
        pos = (size_t)(eq - v) + 1;
    }
    ab_buf_init(&tmp, AB_BUF_UNBOUNDED);
    rc = array_level(out, conv, v, n, &pos, 0, &tmp, err);
    ab_buf_release(&tmp);
    return rc;
}
