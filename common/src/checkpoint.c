/* checkpoint.c - which records each STATE covers, and when it may go out. */
/* SPDX-License-Identifier: MIT */
#include "ab/checkpoint.h"

#include <stdlib.h>
#include <string.h>

#include "ab/assert.h"

/*
 * Invariants.
 *
 * Sequence numbers start at 0: the n-th record received gets n - 1, and a
 * state queued after n records has position P = n and covers seq < P.
 *
 * Live units sit in an array sorted by id (ids only grow, so opening appends
 * and lookups are a binary search). Committed units are removed at once, so
 * memory follows the number of live units, not the id span. Each unit keeps,
 * per stream it holds, the smallest seq added to it (a short unsorted array:
 * units rarely hold more than a few streams), and the smallest seq overall.
 *
 * Pending states form a FIFO ring of copies of their members. Their counts
 * are fixed when they arrive (received) or charged later (rejected).
 *
 * Counting windows. Every record belongs to two windows:
 *  - its stream window, closed by the next state that covers its stream (a
 *    STREAM state of that stream or a GLOBAL state);
 *  - its global window, closed by the next state of any type.
 * A STREAM state reports its stream window, a GLOBAL state its global
 * window: the records of every stream since the previous state, whatever its
 * type. With only STREAM or only GLOBAL states (the normal case) this is
 * exactly "records of the scope since the previous state of the same scope";
 * in a mixed sync a GLOBAL state never counts a record a STREAM state before
 * it already counted (a source counts its sourceStats the same way).
 *
 * Rejections follow the same windows, so that for every state
 * recordCount + rejectedRecordCount = records received in its window: a
 * rejection is charged to the earliest pending state covering its stream with
 * P > seq when that is a STREAM state, or a GLOBAL state with no other state
 * between the record and it. A window whose state has not arrived yet keeps
 * the charge in a per-stream or global counter, taken by the state that
 * closes it. A rejection reported after its state went out (a caller bug:
 * the record left its unit before it was rejected) moves on to the next state
 * of the scope; recordCount then floors at 0.
 *
 * States leave in the order they arrived, each exactly once: their positions
 * never decrease along the ring, and states_in = states_out + pending. These
 * and the unit order are checked with AB_ASSERT.
 */

struct ab_ckpt_entry {
    size_t stream;
    uint64_t min_seq;
};

struct ab_ckpt_unit {
    uint64_t id;
    uint64_t min_seq; /* over all entries; UINT64_MAX when empty */
    size_t last;      /* entry found last, tried first (records come in runs) */
    size_t n;
    size_t cap;
    struct ab_ckpt_entry *ent;
};

struct ab_ckpt_state {
    enum ab_ckpt_scope scope;
    size_t stream; /* STREAM scope: catalog index or AB_CKPT_NO_STREAM */
    uint64_t pos;  /* covers seq < pos */
    char *members;
    size_t len;
    int64_t now_us;
    uint64_t received;
    uint64_t rejected;
    bool mark; /* a position without counts (ab_ckpt_mark()) */
};

struct ab_ckpt {
    size_t nstreams;
    uint64_t next_seq;
    uint64_t next_unit;

    /* Open windows: records and rejections not yet taken by a state. */
    uint64_t *recv_stream;
    uint64_t *rej_stream;
    uint64_t recv_global;
    uint64_t rej_global;
    uint64_t last_released_pos; /* position of the last state released */

    struct ab_ckpt_unit *units; /* live units, sorted by id */
    size_t nunits;
    size_t cap_units;

    struct ab_ckpt_state *states; /* ring */
    size_t head;
    size_t nstates;
    size_t cap_states;

    struct ab_ckpt_stats stats;
};

struct ab_ckpt *ab_ckpt_new(size_t nstreams, struct ab_error *err)
{
    struct ab_ckpt *ck = calloc(1, sizeof(*ck));
    size_t n = nstreams ? nstreams : 1;

    if (!ck) {
        goto fail;
    }
    ck->nstreams = nstreams;
    ck->next_unit = 1;
    ck->recv_stream = calloc(n, sizeof(*ck->recv_stream));
    ck->rej_stream = calloc(n, sizeof(*ck->rej_stream));
    if (!ck->recv_stream || !ck->rej_stream) {
        goto fail;
    }
    return ck;

fail:
    ab_ckpt_free(ck);
    (void)ab_error_set(err, AB_ERR_NOMEM, "out of memory (checkpoints for %zu streams)", nstreams);
    return NULL;
}

static struct ab_ckpt_state *state_at(const struct ab_ckpt *ck, size_t i)
{
    return &ck->states[(ck->head + i) % ck->cap_states];
}

void ab_ckpt_free(struct ab_ckpt *ck)
{
    size_t i;

    if (!ck) {
        return;
    }
    for (i = 0; i < ck->nunits; i++) {
        free(ck->units[i].ent);
    }
    free(ck->units);
    for (i = 0; i < ck->nstates; i++) {
        free(state_at(ck, i)->members);
    }
    free(ck->states);
    free(ck->recv_stream);
    free(ck->rej_stream);
    free(ck);
}

uint64_t ab_ckpt_record(struct ab_ckpt *ck, size_t stream)
{
    if (stream < ck->nstreams) {
        ck->recv_stream[stream]++;
    }
    ck->recv_global++;
    ck->stats.records++;
    return ck->next_seq++;
}

static enum ab_status states_grow(struct ab_ckpt *ck, struct ab_error *err)
{
    size_t cap = ck->cap_states ? ck->cap_states * 2 : 8;
    struct ab_ckpt_state *s;
    size_t i;

    if (cap < ck->cap_states || cap > ((size_t)-1) / sizeof(*s)) {
        return ab_error_set(err, AB_ERR_NOMEM, "too many pending states");
    }
    s = malloc(cap * sizeof(*s));
    if (!s) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (%zu pending states)", cap);
    }
    for (i = 0; i < ck->nstates; i++) {
        s[i] = *state_at(ck, i);
    }
    free(ck->states);
    ck->states = s;
    ck->cap_states = cap;
    ck->head = 0;
    return AB_OK;
}

/* The next free entry of the ring with a copy of members, no counts, not a
 * mark; the caller sets scope, stream and position before counting it.
 * NULL (err set) when out of memory. */
static struct ab_ckpt_state *new_entry(struct ab_ckpt *ck, const char *members, size_t len,
                                       int64_t now_us, struct ab_error *err)
{
    struct ab_ckpt_state *st;
    char *copy;

    if (ck->nstates == ck->cap_states && states_grow(ck, err) != AB_OK) {
        return NULL;
    }
    copy = malloc(len + 1);
    if (!copy) {
        (void)ab_error_set(err, AB_ERR_NOMEM, "out of memory (state of %zu bytes)", len);
        return NULL;
    }
    if (len > 0) {
        memcpy(copy, members, len);
    }
    copy[len] = '\0';
    st = state_at(ck, ck->nstates);
    memset(st, 0, sizeof(*st));
    st->members = copy;
    st->len = len;
    st->now_us = now_us;
    return st;
}

enum ab_status ab_ckpt_state(struct ab_ckpt *ck, enum ab_ckpt_scope scope, size_t stream,
                             const char *members, size_t len, int64_t now_us, struct ab_error *err)
{
    struct ab_ckpt_state *st;

    if (scope != AB_CKPT_STREAM && scope != AB_CKPT_GLOBAL) {
        return ab_error_set(err, AB_ERR_INTERNAL, "unknown state scope %d", (int)scope);
    }
    if (scope == AB_CKPT_STREAM && stream != AB_CKPT_NO_STREAM && stream >= ck->nstreams) {
        return ab_error_set(err, AB_ERR_INTERNAL, "state for stream %zu outside the catalog (%zu)",
                            stream, ck->nstreams);
    }
    if (!members && len > 0) {
        return ab_error_set(err, AB_ERR_INTERNAL, "state without members");
    }
    if (len == (size_t)-1) {
        return ab_error_set(err, AB_ERR_NOMEM, "state too large");
    }
    st = new_entry(ck, members, len, now_us, err);
    if (!st) {
        return err->code;
    }
    st->scope = scope;
    st->stream = scope == AB_CKPT_GLOBAL ? AB_CKPT_NO_STREAM : stream;
    st->pos = ck->next_seq;
    if (scope == AB_CKPT_GLOBAL) {
        size_t i;

        st->received = ck->recv_global;
        st->rejected = ck->rej_global;
        ck->recv_global = 0;
        ck->rej_global = 0;
        /* A GLOBAL state closes every stream window too. */
        for (i = 0; i < ck->nstreams; i++) {
            ck->recv_stream[i] = 0;
            ck->rej_stream[i] = 0;
        }
    } else {
        if (stream != AB_CKPT_NO_STREAM) {
            st->received = ck->recv_stream[stream];
            st->rejected = ck->rej_stream[stream];
            ck->recv_stream[stream] = 0;
            ck->rej_stream[stream] = 0;
        }
        /* Any state closes the global window. */
        ck->recv_global = 0;
        ck->rej_global = 0;
    }
    /* Positions never decrease along the ring: release order is input order. */
    AB_ASSERT(ck->nstates == 0 || state_at(ck, ck->nstates - 1)->pos <= st->pos);
    AB_ASSERT(ck->nstates < ck->cap_states);
    ck->nstates++;
    ck->stats.states_in++;
    AB_ASSERT(ck->stats.states_in == ck->stats.states_out + ck->nstates);
    return AB_OK;
}

enum ab_status ab_ckpt_mark(struct ab_ckpt *ck, uint64_t pos, const char *members, size_t len,
                            int64_t now_us, struct ab_error *err)
{
    struct ab_ckpt_state *st;

    if (pos > ck->next_seq || (ck->nstates > 0 && state_at(ck, ck->nstates - 1)->pos > pos)) {
        return ab_error_set(err, AB_ERR_INTERNAL, "mark at %llu out of order",
                            (unsigned long long)pos);
    }
    st = new_entry(ck, members, len, now_us, err);
    if (!st) {
        return err->code;
    }
    st->scope = AB_CKPT_GLOBAL;
    st->stream = AB_CKPT_NO_STREAM;
    st->pos = pos;
    st->mark = true;
    ck->nstates++;
    ck->stats.states_in++;
    AB_ASSERT(ck->stats.states_in == ck->stats.states_out + ck->nstates);
    return AB_OK;
}

uint64_t ab_ckpt_units_opened(const struct ab_ckpt *ck)
{
    return ck->next_unit - 1;
}

/* Index of unit id in the live array, or nunits when it is not live. */
static size_t unit_find(const struct ab_ckpt *ck, uint64_t id)
{
    size_t lo = 0;
    size_t hi = ck->nunits;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (ck->units[mid].id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < ck->nunits && ck->units[lo].id == id) {
        return lo;
    }
    return ck->nunits;
}

uint64_t ab_ckpt_unit_open(struct ab_ckpt *ck, struct ab_error *err)
{
    struct ab_ckpt_unit *u;

    if (ck->nunits == ck->cap_units) {
        size_t cap = ck->cap_units ? ck->cap_units * 2 : 8;

        if (cap < ck->cap_units || cap > ((size_t)-1) / sizeof(*u)) {
            (void)ab_error_set(err, AB_ERR_NOMEM, "too many live units");
            return 0;
        }
        u = realloc(ck->units, cap * sizeof(*u));
        if (!u) {
            (void)ab_error_set(err, AB_ERR_NOMEM, "out of memory (%zu live units)", cap);
            return 0;
        }
        ck->units = u;
        ck->cap_units = cap;
    }
    /* Ids only grow: appending keeps the live array sorted. */
    AB_ASSERT(ck->nunits == 0 || ck->units[ck->nunits - 1].id < ck->next_unit);
    u = &ck->units[ck->nunits++];
    u->id = ck->next_unit++;
    u->min_seq = UINT64_MAX;
    u->last = 0;
    u->n = 0;
    u->cap = 0;
    u->ent = NULL;
    return u->id;
}

/* The entry of stream in u, or NULL. */
static const struct ab_ckpt_entry *entry_find(const struct ab_ckpt_unit *u, size_t stream)
{
    size_t i;

    for (i = 0; i < u->n; i++) {
        if (u->ent[i].stream == stream) {
            return &u->ent[i];
        }
    }
    return NULL;
}

/* The entry of stream in u, added if missing; NULL when out of memory. */
static struct ab_ckpt_entry *entry_get(struct ab_ckpt_unit *u, size_t stream, uint64_t seq)
{
    size_t i;

    if (u->last < u->n && u->ent[u->last].stream == stream) {
        return &u->ent[u->last];
    }
    for (i = 0; i < u->n; i++) {
        if (u->ent[i].stream == stream) {
            u->last = i;
            return &u->ent[i];
        }
    }
    if (u->n == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 4;
        struct ab_ckpt_entry *p;

        if (cap < u->cap || cap > ((size_t)-1) / sizeof(*p)) {
            return NULL;
        }
        p = realloc(u->ent, cap * sizeof(*p));
        if (!p) {
            return NULL;
        }
        u->ent = p;
        u->cap = cap;
    }
    u->last = u->n;
    u->ent[u->n].stream = stream;
    u->ent[u->n].min_seq = seq;
    return &u->ent[u->n++];
}

enum ab_status ab_ckpt_unit_add(struct ab_ckpt *ck, uint64_t unit, size_t stream, uint64_t seq,
                                struct ab_error *err)
{
    size_t idx = unit_find(ck, unit);
    struct ab_ckpt_unit *u;
    struct ab_ckpt_entry *e;

    if (idx == ck->nunits) {
        return ab_error_set(err, AB_ERR_INTERNAL, "unit %llu is not live",
                            (unsigned long long)unit);
    }
    if (stream >= ck->nstreams) {
        return ab_error_set(err, AB_ERR_INTERNAL, "record of stream %zu outside the catalog (%zu)",
                            stream, ck->nstreams);
    }
    if (seq >= ck->next_seq) {
        return ab_error_set(err, AB_ERR_INTERNAL, "record %llu not received yet",
                            (unsigned long long)seq);
    }
    u = &ck->units[idx];
    e = entry_get(u, stream, seq);
    if (!e) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (unit of %zu streams)", u->n + 1);
    }
    if (seq < e->min_seq) {
        e->min_seq = seq;
    }
    if (seq < u->min_seq) {
        u->min_seq = seq;
    }
    AB_ASSERT(u->min_seq <= e->min_seq && e->min_seq <= seq);
    return AB_OK;
}

void ab_ckpt_unit_done(struct ab_ckpt *ck, uint64_t unit)
{
    size_t idx = unit_find(ck, unit);

    if (idx == ck->nunits) {
        return;
    }
    AB_ASSERT(ck->units[idx].id == unit);
    free(ck->units[idx].ent);
    memmove(&ck->units[idx], &ck->units[idx + 1], (ck->nunits - idx - 1) * sizeof(*ck->units));
    ck->nunits--;
}

static bool covers(const struct ab_ckpt_state *st, size_t stream)
{
    if (st->scope == AB_CKPT_GLOBAL) {
        return true;
    }
    return st->stream != AB_CKPT_NO_STREAM && st->stream == stream;
}

void ab_ckpt_reject(struct ab_ckpt *ck, size_t stream, uint64_t seq)
{
    bool in_catalog = stream < ck->nstreams;
    struct ab_ckpt_state *first_any = NULL; /* closes the record's global window */
    struct ab_ckpt_state *first_cov = NULL; /* closes its stream window */
    bool released_after;
    size_t i;

    ck->stats.rejected++;
    for (i = 0; i < ck->nstates && !first_cov; i++) {
        struct ab_ckpt_state *st = state_at(ck, i);

        if (st->pos <= seq || st->mark) {
            continue;
        }
        if (!first_any) {
            first_any = st;
        }
        if (covers(st, stream)) {
            first_cov = st;
        }
    }
    /* A released state after the record closed its global window before
     * any pending one did. */
    released_after = ck->stats.states_out > 0 && ck->last_released_pos > seq;
    if (first_cov) {
        /* A GLOBAL state reports its global window: the record is in it only
         * when no state came between them. */
        if (first_cov->scope == AB_CKPT_STREAM || (first_cov == first_any && !released_after)) {
            first_cov->rejected++;
        }
        return;
    }
    if (in_catalog) {
        ck->rej_stream[stream]++;
    }
    if (!first_any && !released_after) {
        ck->rej_global++;
    }
}

bool ab_ckpt_committed_before(const struct ab_ckpt *ck, size_t stream, uint64_t seq)
{
    size_t i;

    for (i = 0; i < ck->nunits; i++) {
        const struct ab_ckpt_unit *u = &ck->units[i];
        const struct ab_ckpt_entry *e;

        if (u->min_seq >= seq) {
            continue;
        }
        e = entry_find(u, stream);
        if (e && e->min_seq < seq) {
            return false;
        }
    }
    return true;
}

static bool releasable(const struct ab_ckpt *ck, const struct ab_ckpt_state *st)
{
    size_t i;

    if (st->scope == AB_CKPT_STREAM) {
        if (st->stream == AB_CKPT_NO_STREAM) {
            return true;
        }
        return ab_ckpt_committed_before(ck, st->stream, st->pos);
    }
    for (i = 0; i < ck->nunits; i++) {
        if (ck->units[i].min_seq < st->pos) {
            return false;
        }
    }
    return true;
}

enum ab_status ab_ckpt_release(struct ab_ckpt *ck, ab_ckpt_emit_fn emit, void *arg,
                               size_t *released, struct ab_error *err)
{
    enum ab_status rc = AB_OK;
    size_t n = 0;

    if (!emit) {
        rc = ab_error_set(err, AB_ERR_INTERNAL, "no emit callback for states");
        goto out;
    }
    while (ck->nstates > 0) {
        struct ab_ckpt_state *st = state_at(ck, 0);
        uint64_t accepted;

        if (!releasable(ck, st)) {
            break;
        }
        /* In input order. */
        AB_ASSERT(st->pos >= ck->last_released_pos);
        accepted = st->received > st->rejected ? st->received - st->rejected : 0;
        rc = emit(arg, st->members, st->len, accepted, st->rejected, err);
        if (rc != AB_OK) {
            /* The state stays at the head: the next call retries it. */
            goto out;
        }
        ck->last_released_pos = st->pos;
        free(st->members);
        st->members = NULL;
        ck->head = (ck->head + 1) % ck->cap_states;
        ck->nstates--;
        ck->stats.states_out++;
        AB_ASSERT(ck->stats.states_in == ck->stats.states_out + ck->nstates);
        n++;
    }
    if (ck->nstates == 0) {
        ck->head = 0;
    }

out:
    if (released) {
        *released = n;
    }
    return rc;
}

size_t ab_ckpt_pending(const struct ab_ckpt *ck)
{
    return ck->nstates;
}

int64_t ab_ckpt_oldest_us(const struct ab_ckpt *ck)
{
    if (ck->nstates == 0) {
        return -1;
    }
    return state_at(ck, 0)->now_us;
}

size_t ab_ckpt_live_units(const struct ab_ckpt *ck)
{
    return ck->nunits;
}

void ab_ckpt_get_stats(const struct ab_ckpt *ck, struct ab_ckpt_stats *out)
{
    *out = ck->stats;
}
