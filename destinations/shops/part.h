/* part.h - how records become parts: spool record layout, limits, bodies. */
/* SPDX-License-Identifier: MIT */
#ifndef SHP_PART_H
#define SHP_PART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ab/buf.h"
#include "ab/error.h"

/*
 * Each accepted record is spooled once, as a fixed header (its catalog
 * stream, sequence number and input line, so a rejection reported later can
 * be charged and dead-lettered, and the item's length) followed by the
 * mapped item's compact JSON and the record as received (nothing when it
 * is the item's very bytes), which a rejection stores beside the item.
 * A part is a run of consecutive records of one object's spool; its body is
 *   {"object":"<object>","items":[<item>,<item>,...]}
 * and its size is counted exactly as it will be sent (before gzip).
 */

#define SHP_REC_HEADER 24

struct shp_rec_meta {
    uint32_t stream;
    uint64_t seq;
    uint64_t lineno;
    uint32_t item_len; /* bytes of the item after the header */
};

void shp_rec_header_encode(unsigned char out[SHP_REC_HEADER], const struct shp_rec_meta *m);
void shp_rec_header_decode(const unsigned char in[SHP_REC_HEADER], struct shp_rec_meta *m);

struct shp_part_limits {
    size_t max_items; /* 1..1000 */
    size_t max_bytes; /* uncompressed body, at most 8 MiB */
};

/* Body bytes of a part of object with no items: the fixed text around them. */
size_t shp_part_overhead(const char *object);

/* A part being filled: count items, bytes = body size so far. */
struct shp_part_acc {
    size_t count;
    size_t bytes;
};

void shp_part_acc_init(struct shp_part_acc *a, const char *object);
/* Whether an item of item_len bytes fits into the part (count and size). */
bool shp_part_fits(const struct shp_part_acc *a, size_t item_len,
                   const struct shp_part_limits *lim);
void shp_part_acc_add(struct shp_part_acc *a, size_t item_len);
/* Whether a part holding only this item would respect max_bytes. */
bool shp_item_fits_alone(const char *object, size_t item_len, const struct shp_part_limits *lim);

/* Body composition; begin resets b. */
enum ab_status shp_part_body_begin(struct ab_buf *b, const char *object, struct ab_error *err);
enum ab_status shp_part_body_add(struct ab_buf *b, bool first, const char *item, size_t len,
                                 struct ab_error *err);
enum ab_status shp_part_body_end(struct ab_buf *b, struct ab_error *err);

#endif
