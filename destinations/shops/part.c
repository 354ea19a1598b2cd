/* part.c - how records become parts: spool record layout, limits, bodies. */
/* SPDX-License-Identifier: MIT */
#include "part.h"

#include <stdlib.h>
#include <string.h>

#include "ab/assert.h"

#define BODY_HEAD "{\"object\":\""
#define BODY_MID  "\",\"items\":["
#define BODY_TAIL "]}"

/* The header's fields in the host's byte order, each copied whole (the
 * spool never outlives the process, so no byte order is fixed). */
_Static_assert(SHP_REC_HEADER == 4 + 8 + 8 + 4, "the header holds the four fields");

void shp_rec_header_encode(unsigned char out[SHP_REC_HEADER], const struct shp_rec_meta *m)
{
    memcpy(out, &m->stream, 4);
    memcpy(out + 4, &m->seq, 8);
    memcpy(out + 12, &m->lineno, 8);
    memcpy(out + 20, &m->item_len, 4);
}

void shp_rec_header_decode(const unsigned char in[SHP_REC_HEADER], struct shp_rec_meta *m)
{
    memcpy(&m->stream, in, 4);
    memcpy(&m->seq, in + 4, 8);
    memcpy(&m->lineno, in + 12, 8);
    memcpy(&m->item_len, in + 20, 4);
}

size_t shp_part_overhead(const char *object)
{
    return sizeof(BODY_HEAD) - 1 + strlen(object) + sizeof(BODY_MID) - 1 + sizeof(BODY_TAIL) - 1;
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

enum ab_status shp_part_body_room(struct ab_buf *b, bool first, size_t len, char **at,
                                  struct ab_error *err)
{
    enum ab_status rc = ab_buf_reserve(b, len + (first ? 0 : 1), err);

    if (rc != AB_OK) {
        return rc;
    }
    if (!first) {
        b->data[b->len++] = ',';
    }
    *at = b->data + b->len;
    b->len += len;
    b->data[b->len] = '\0';
    return AB_OK;
}

/* ---- parts refused as a whole ------------------------------------------- */

/* The position of the first left-out index >= k. */
static uint32_t leftout_lower(const struct shp_leftout *l, uint32_t k)
{
    uint32_t lo = 0;
    uint32_t hi = l->n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;

        if (l->idx[mid] < k) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

bool shp_leftout_has(const struct shp_leftout *l, uint32_t k)
{
    uint32_t i = leftout_lower(l, k);

    return i < l->n && l->idx[i] == k;
}

enum ab_status shp_leftout_add(struct shp_leftout *l, uint32_t k, struct ab_error *err)
{
    uint32_t i = leftout_lower(l, k);

    if (i < l->n && l->idx[i] == k) {
        return AB_OK;
    }
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 4;
        uint32_t *p = realloc(l->idx, (size_t)cap * sizeof(*p));

        if (!p) {
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory (left-out items)");
        }
        l->idx = p;
        l->cap = cap;
    }
    memmove(l->idx + i + 1, l->idx + i, (size_t)(l->n - i) * sizeof(*l->idx));
    l->idx[i] = k;
    l->n++;
    return AB_OK;
}

void shp_leftout_release(struct shp_leftout *l)
{
    free(l->idx);
    memset(l, 0, sizeof(*l));
}

uint32_t shp_live_in(const struct shp_leftout *l, uint32_t lo, uint32_t hi)
{
    if (hi <= lo) {
        return 0;
    }
    return (hi - lo) - (leftout_lower(l, hi) - leftout_lower(l, lo));
}

uint32_t shp_live_nth(const struct shp_leftout *l, uint32_t i, uint32_t count)
{
    uint32_t k = i;
    uint32_t j;

    /* k = i + (left-out indexes <= k): walk the sorted list once */
    for (j = 0; j < l->n && l->idx[j] <= k; j++) {
        k++;
    }
    return k < count ? k : UINT32_MAX;
}

static void probe_push(struct shp_probe *p, uint32_t lo, uint32_t hi, bool refused)
{
    AB_ASSERT(p->n < SHP_PROBE_STACK);
    if (p->n < SHP_PROBE_STACK) {
        p->stack[p->n].lo = lo;
        p->stack[p->n].hi = hi;
        p->stack[p->n].refused = refused;
        p->n++;
    }
}

void shp_probe_start(struct shp_probe *p, uint32_t count)
{
    memset(p, 0, sizeof(*p));
    probe_push(p, 0, count, true);
}

void shp_probe_answer(struct shp_probe *p, bool refused)
{
    struct shp_probe_range c = p->cur;

    AB_ASSERT(p->active);
    p->active = false;
    if (c.refused) {
        /* the first half [lo, end) was on the wire */
        if (refused) {
            probe_push(p, p->end, c.hi, false);
            probe_push(p, c.lo, p->end, true);
        } else {
            probe_push(p, p->end, c.hi, true);
        }
    } else if (refused) {
        probe_push(p, c.lo, c.hi, true);
    }
}

enum shp_probe_step shp_probe_next(struct shp_probe *p, const struct shp_leftout *l,
                                   uint32_t *isolated)
{
    while (p->n > 0) {
        struct shp_probe_range c = p->stack[--p->n];
        uint32_t live = shp_live_in(l, c.lo, c.hi);

        if (live == 0) {
            continue;
        }
        if (c.refused && live == 1) {
            uint32_t k = c.lo;

            while (shp_leftout_has(l, k)) {
                k++;
            }
            *isolated = k;
            return SHP_PROBE_ISOLATED;
        }
        p->cur = c;
        if (c.refused) {
            /* the first half of the records that are not left out */
            uint32_t before = shp_live_in(l, 0, c.lo);
            uint32_t k = shp_live_nth(l, before + live / 2, c.hi);

            AB_ASSERT(k != UINT32_MAX && k > c.lo);
            p->end = k;
        } else {
            p->end = c.hi;
        }
        p->active = true;
        return SHP_PROBE_SEND;
    }
    p->active = false;
    return SHP_PROBE_DONE;
}

bool shp_probe_includes(const struct shp_probe *p, uint32_t k)
{
    return !p || !p->active || (k >= p->cur.lo && k < p->end);
}
