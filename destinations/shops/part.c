/* part.c - how records become parts: spool record layout, limits, bodies. */
/* SPDX-License-Identifier: MIT */
#include "part.h"

#include <string.h>

#define BODY_HEAD "{\"object\":\""
#define BODY_MID  "\",\"items\":["
#define BODY_TAIL "]}"

static void put_le(unsigned char *p, uint64_t v, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        p[i] = (unsigned char)((v >> (8 * i)) & 0xFFU);
    }
}

static uint64_t get_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    size_t i;

    for (i = n; i-- > 0;) {
        v = (v << 8) | p[i];
    }
    return v;
}

void shp_rec_header_encode(unsigned char out[SHP_REC_HEADER], const struct shp_rec_meta *m)
{
    put_le(out, m->stream, 4);
    put_le(out + 4, m->seq, 8);
    put_le(out + 12, m->lineno, 8);
    put_le(out + 20, m->item_len, 4);
}

void shp_rec_header_decode(const unsigned char in[SHP_REC_HEADER], struct shp_rec_meta *m)
{
    m->stream = (uint32_t)get_le(in, 4);
    m->seq = get_le(in + 4, 8);
    m->lineno = get_le(in + 12, 8);
    m->item_len = (uint32_t)get_le(in + 20, 4);
}

size_t shp_part_overhead(const char *object)
{
    return strlen(BODY_HEAD) + strlen(object) + strlen(BODY_MID) + strlen(BODY_TAIL);
}

void shp_part_acc_init(struct shp_part_acc *a, const char *object)
{
    a->count = 0;
    a->bytes = shp_part_overhead(object);
}

static size_t added_bytes(const struct shp_part_acc *a, size_t item_len)
{
    return item_len + (a->count > 0 ? 1U : 0U); /* the comma */
}

bool shp_part_fits(const struct shp_part_acc *a, size_t item_len, const struct shp_part_limits *lim)
{
    size_t add = added_bytes(a, item_len);

    if (a->count >= lim->max_items) {
        return false;
    }
    return add <= lim->max_bytes && a->bytes <= lim->max_bytes - add;
}

void shp_part_acc_add(struct shp_part_acc *a, size_t item_len)
{
    a->bytes += added_bytes(a, item_len);
    a->count++;
}

bool shp_item_fits_alone(const char *object, size_t item_len, const struct shp_part_limits *lim)
{
    struct shp_part_acc a;

    shp_part_acc_init(&a, object);
    return lim->max_items > 0 && shp_part_fits(&a, item_len, lim);
}

enum ab_status shp_part_body_begin(struct ab_buf *b, const char *object, struct ab_error *err)
{
    enum ab_status rc;

    ab_buf_reset(b);
    rc = ab_buf_adds(b, BODY_HEAD, err);
    if (rc == AB_OK) {
        rc = ab_buf_adds(b, object, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(b, BODY_MID, err);
    }
    return rc;
}

enum ab_status shp_part_body_add(struct ab_buf *b, bool first, const char *item, size_t len,
                                 struct ab_error *err)
{
    enum ab_status rc = AB_OK;

    if (!first) {
        rc = ab_buf_addc(b, ',', err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_add(b, item, len, err);
    }
    return rc;
}

enum ab_status shp_part_body_end(struct ab_buf *b, struct ab_error *err)
{
    return ab_buf_adds(b, BODY_TAIL, err);
}
