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
/* As shp_part_body_add() for an item whose bytes the caller writes: *at is
 * where its len bytes go, at the end of b, whose length counts them
 * already (write them before anything else changes b). */
enum ab_status shp_part_body_room(struct ab_buf *b, bool first, size_t len, char **at,
                                  struct ab_error *err);

/*
 * A part the target refuses as a whole (400 invalid_json or invalid_encoding:
 * something in one of its items, not the items' values) is searched for the
 * items it refuses: subsets of it are uploaded under the same part number
 * (a PUT replaces the part) until each refused item is alone; those are
 * left out of the part for good (dead-lettered) and the part is uploaded
 * once more without them. Indexes are positions among the part's records
 * in the spool (0..count-1); the items a PUT sends are the part's records
 * minus the left-out ones, so the target's index i names the i-th record
 * that is not left out.
 */
struct shp_leftout {
    uint32_t *idx; /* sorted, owned */
    uint32_t n;
    uint32_t cap;
};

/* Whether k is left out. */
bool shp_leftout_has(const struct shp_leftout *l, uint32_t k);
/* Adds k (kept sorted; no effect when already there). */
enum ab_status shp_leftout_add(struct shp_leftout *l, uint32_t k, struct ab_error *err);
void shp_leftout_release(struct shp_leftout *l);
/* Records of [lo, hi) that are not left out. */
uint32_t shp_live_in(const struct shp_leftout *l, uint32_t lo, uint32_t hi);
/* The record that is the target's index i (the i-th record not left out),
 * or UINT32_MAX when there is none below count. */
uint32_t shp_live_nth(const struct shp_leftout *l, uint32_t i, uint32_t count);

struct shp_probe_range {
    uint32_t lo;
    uint32_t hi;
    bool refused; /* known to hold a refused item */
};

#define SHP_PROBE_STACK 64

/* The search: a stack of ranges still to examine and the subset on the
 * wire, [cur.lo, end). Fixed size: each step replaces a range by at most
 * two, one of them at most half as large, so the depth stays below
 * 2 * log2(items) + 2. */
struct shp_probe {
    struct shp_probe_range stack[SHP_PROBE_STACK];
    unsigned n;
    struct shp_probe_range cur;
    uint32_t end;
    bool active; /* a subset is on the wire (else the whole part minus the left-out) */
};

enum shp_probe_step {
    SHP_PROBE_SEND,     /* upload the subset [cur.lo, end) */
    SHP_PROBE_ISOLATED, /* *isolated is refused alone: leave it out, then step again */
    SHP_PROBE_DONE      /* upload the whole part minus the left-out records */
};

/* Starts a search over a part of count records refused as a whole. */
void shp_probe_start(struct shp_probe *p, uint32_t count);
/* The answer to the subset on the wire: refused as a whole or not. */
void shp_probe_answer(struct shp_probe *p, bool refused);
/* What to do next. */
enum shp_probe_step shp_probe_next(struct shp_probe *p, const struct shp_leftout *l,
                                   uint32_t *isolated);
/* Whether record k is in the subset on the wire (every record when none). */
bool shp_probe_includes(const struct shp_probe *p, uint32_t k);

#endif
