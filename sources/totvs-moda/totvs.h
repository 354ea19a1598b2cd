/* totvs.h - source-totvs-moda: TOTVS Moda API V2 persons, sales orders, references, SKUs and
 * stock balances. */
/* SPDX-License-Identifier: MIT */
#ifndef TOTVS_H
#define TOTVS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "ab/buf.h"
#include "ab/error.h"
#include "ab/source.h"

extern const struct ab_source_ops tm_source_ops;
extern const char tm_spec_json[];
extern const char tm_catalog_text[]; /* catalog.json */

/* The streams, in catalog order. */
enum tm_kind {
    TM_INDIVIDUALS = 0,
    TM_LEGAL_ENTITIES,
    TM_SALES_ORDERS,
    TM_REFERENCES,
    TM_PRODUCTS,
    TM_BALANCES,
    TM_NKINDS
};

/* The stream's name ("sales_orders") and search path under /api/totvsmoda
 * ("/sales-order/v2/orders/search"); static. */
const char *tm_stream_name(enum tm_kind k);
const char *tm_stream_path(enum tm_kind k);
/* The kind of a stream name; false for an unknown one. */
bool tm_kind_of(const char *name, enum tm_kind *k);
/* The whole AirbyteCatalog of discover (static text). */
const char *tm_catalog_json(void);

/*
 * What a search body says besides the page: the config's lists as JSON
 * arrays of integers ("[1,2]"; borrowed), the API's clock offset.
 */
struct tm_opts {
    const char *branches; /* branch_codes */
    const char *stocks;   /* stock_codes */
    const char *prices;   /* price_codes */
    int64_t first_branch;
    int utc_offset;
};

/*
 * Appends the JSON body of one search of kind k to out: filter (the
 * branches of sales orders; change {startDate: start, endDate: end} in the
 * API's clock with its offset, left out when start < 0), option (balances
 * per branch with the stock codes; prices of the first branch), expand,
 * order (maxChangeFilterDate, then the key), page and pageSize.
 */
enum ab_status tm_search_body(enum tm_kind k, const struct tm_opts *o, int64_t start, int64_t end,
                              int64_t page, int64_t size, struct ab_buf *out, struct ab_error *err);

/* "Code: message" of TOTVS's {"messages":[{"code","message",...}]} into
 * out (size bytes, NUL-terminated, "" when the body has none). */
const char *tm_error_detail(yajl_val body, char *out, size_t size);

/*
 * A 64-bit digest of the record's primary key values (kind's key fields
 * as their JSON text); false when a key field is missing or not a scalar.
 */
bool tm_key_hash(enum tm_kind k, yajl_val rec, uint64_t *out);

/*
 * Per-stream state; times are UTC ISO 8601 text:
 *   {"cursor": T}                           incremental, every change up to T read
 *   {"cursor": T, "page": N}                incremental mid-pass: the next search
 *                                           asks for changes from T, page N
 *   {"resume": {"cursor": T, "page": N}}    full refresh mid-pass, likewise
 *   {}                                      nothing read yet / full pass done
 * cursor -1 when absent; page 1 when absent.
 */
struct tm_state {
    int64_t cursor;
    int64_t page;
    bool resume; /* a full refresh's resume point */
};
enum ab_status tm_state_parse(yajl_val v, struct tm_state *st, struct ab_error *err);
enum ab_status tm_state_write(const struct tm_state *st, struct ab_buf *out, struct ab_error *err);

#endif
