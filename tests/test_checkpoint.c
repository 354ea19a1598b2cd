/* test_checkpoint.c - unit tests for the checkpoint tracker. */
/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/checkpoint.h"

#include "ab_test.h"

/* ---- emit sink ---- */

#define SINK_MAX 64

struct emitted {
    char members[32];
    uint64_t count;
    uint64_t rejected;
};

struct sink {
    struct emitted out[SINK_MAX];
    size_t n;
    size_t calls;
    size_t fail_at; /* the call with this number (from 1) fails; 0: never */
};

static enum ab_status sink_emit(void *arg, const char *members, size_t len, uint64_t record_count,
                                uint64_t rejected_count, struct ab_error *err)
{
    struct sink *s = arg;
    struct emitted *e;

    s->calls++;
    if (s->fail_at != 0 && s->calls == s->fail_at) {
        return ab_error_set(err, AB_ERR_IO, "cannot write state");
    }
    assert_true(s->n < SINK_MAX);
    assert_true(len < sizeof(e->members));
    assert_int_equal(members[len], '\0');
    e = &s->out[s->n++];
    memcpy(e->members, members, len);
    e->members[len] = '\0';
    e->count = record_count;
    e->rejected = rejected_count;
    return AB_OK;
}

/* ---- table-driven scenarios ---- */

enum op {
    OP_END = 0,
    OP_REC,   /* a: stream, b: unit slot to join or NOU */
    OP_OPEN,  /* a: unit slot */
    OP_DONE,  /* a: unit slot */
    OP_STATE, /* a: scope, b: stream; members are "s<state index>" */
    OP_REJ,   /* a: record index */
    OP_REL,   /* a: states expected to go out now */
    OP_EXP,   /* a: emitted index, b: recordCount, c: rejectedRecordCount */
    OP_PEND,  /* a: pending states, b: live units */
};

struct step {
    enum op op;
    size_t a;
    size_t b;
    uint64_t c;
};

#define NOU ((size_t)-1)
#define NOS AB_CKPT_NO_STREAM
#define REC(s, u)                                                                                  \
    {                                                                                              \
        OP_REC, (s), (u), 0                                                                        \
    }
#define OPEN(u)                                                                                    \
    {                                                                                              \
        OP_OPEN, (u), 0, 0                                                                         \
    }
#define DONE(u)                                                                                    \
    {                                                                                              \
        OP_DONE, (u), 0, 0                                                                         \
    }
#define SST(s)                                                                                     \
    {                                                                                              \
        OP_STATE, AB_CKPT_STREAM, (s), 0                                                           \
    }
#define GST                                                                                        \
    {                                                                                              \
        OP_STATE, AB_CKPT_GLOBAL, 0, 0                                                             \
    }
#define REJ(r)                                                                                     \
    {                                                                                              \
        OP_REJ, (r), 0, 0                                                                          \
    }
#define REL(n)                                                                                     \
    {                                                                                              \
        OP_REL, (n), 0, 0                                                                          \
    }
#define EXP(i, cnt, rj)                                                                            \
    {                                                                                              \
        OP_EXP, (i), (cnt), (rj)                                                                   \
    }
#define PEND(n, u)                                                                                 \
    {                                                                                              \
        OP_PEND, (n), (u), 0                                                                       \
    }

struct scenario {
    const char *name;
    size_t nstreams;
    struct step steps[48];
};

enum { A = 0, B = 1, C = 2 };

static const struct scenario scenarios[] = {
    {"single stream, one unit",
     1,
     {OPEN(0), REC(A, 0), REC(A, 0), REC(A, 0), SST(A), PEND(1, 1), REL(0), DONE(0), PEND(1, 0),
      REL(1), EXP(0, 3, 0), PEND(0, 0)}},
    {"stream states: B waits behind A (head of line)",
     2,
     {OPEN(0), OPEN(1), REC(A, 0), REC(B, 1), SST(A), REC(B, 1), SST(B), DONE(1), REL(0),
      PEND(2, 1), DONE(0), REL(2), EXP(0, 1, 0), EXP(1, 2, 0)}},
    {"stream states: B goes out while A's unit is live",
     2,
     {OPEN(0), OPEN(1), REC(B, 1), SST(B), REC(A, 0), SST(A), DONE(1), REL(1), EXP(0, 1, 0),
      PEND(1, 1), DONE(0), REL(1), EXP(1, 1, 0)}},
    {"stream state ignores other streams' older records",
     2,
     {OPEN(0), OPEN(1), REC(A, 0), REC(B, 1), REC(B, 1), SST(B), REL(0), DONE(1), REL(1),
      EXP(0, 2, 0), PEND(0, 1)}},
    {"global state waits for every stream",
     3,
     {OPEN(0), OPEN(1), REC(A, 0), REC(B, 1), REC(C, NOU), GST, DONE(0), REL(0), DONE(1), REL(1),
      EXP(0, 3, 0)}},
    {"global states count all streams per window",
     2,
     {OPEN(0), REC(A, 0), REC(B, 0), GST, REC(B, 0), GST, GST, DONE(0), REL(3), EXP(0, 2, 0),
      EXP(1, 1, 0), EXP(2, 0, 0)}},
    {"global state ignores records after it",
     2,
     {OPEN(0), OPEN(1), REC(A, 0), GST, REC(B, 1), DONE(0), REL(1), EXP(0, 1, 0), PEND(0, 1)}},
    {"states without records go out at once",
     2,
     {SST(A), GST, SST(NOS), SST(B), PEND(4, 0), REL(4), EXP(0, 0, 0), EXP(1, 0, 0), EXP(2, 0, 0),
      EXP(3, 0, 0)}},
    {"many states per unit",
     1,
     {OPEN(0), REC(A, 0), SST(A), REC(A, 0), REC(A, 0), SST(A), REC(A, 0), SST(A), SST(A), REL(0),
      DONE(0), REL(4), EXP(0, 1, 0), EXP(1, 2, 0), EXP(2, 1, 0), EXP(3, 0, 0)}},
    {"a unit spanning several states",
     1,
     {OPEN(0), REC(A, 0), OPEN(1), REC(A, 1), SST(A), REC(A, 0), DONE(1), OPEN(2), REC(A, 2),
      SST(A), REC(A, 0), SST(A), DONE(2), REL(0), DONE(0), REL(3), EXP(0, 2, 0), EXP(1, 2, 0),
      EXP(2, 1, 0)}},
    {"units committing out of order",
     1,
     {OPEN(0), OPEN(1), OPEN(2), REC(A, 0), SST(A), REC(A, 1), SST(A), REC(A, 2), SST(A), DONE(2),
      REL(0), DONE(1), REL(0), DONE(0), REL(3), EXP(0, 1, 0), EXP(1, 1, 0), EXP(2, 1, 0)}},
    {"oldest unit commits first, later states still wait",
     1,
     {OPEN(0), OPEN(1), OPEN(2), REC(A, 0), SST(A), REC(A, 1), SST(A), REC(A, 2), SST(A), DONE(0),
      REL(1), DONE(2), REL(0), DONE(1), REL(2), EXP(0, 1, 0), EXP(1, 1, 0), EXP(2, 1, 0)}},
    {"rejection before the state arrives",
     1,
     {OPEN(0), REC(A, 0), REC(A, NOU), REJ(1), REC(A, 0), SST(A), DONE(0), REL(1), EXP(0, 2, 1)}},
    {"rejection after the state arrives (at commit)",
     1,
     {OPEN(0), REC(A, 0), REC(A, 0), SST(A), REC(A, 0), SST(A), REJ(1), REJ(2), DONE(0), REL(2),
      EXP(0, 1, 1), EXP(1, 0, 1)}},
    {"rejection counted in its stream's state",
     2,
     {OPEN(0), REC(A, 0), REC(B, 0), SST(A), SST(B), REJ(1), DONE(0), REL(2), EXP(0, 1, 0),
      EXP(1, 0, 1)}},
    {"rejection between states goes to the next window",
     1,
     {OPEN(0), REC(A, 0), SST(A), REC(A, NOU), REJ(1), DONE(0), REL(1), EXP(0, 1, 0), SST(A),
      REL(1), EXP(1, 0, 1)}},
    {"rejections in global windows",
     2,
     {OPEN(0), REC(A, 0), REC(B, NOU), REJ(1), GST, REC(B, 0), GST, REJ(0), REJ(2), DONE(0), REL(2),
      EXP(0, 0, 2), EXP(1, 0, 1)}},
    {"mixed scopes: a global state counts from the previous state of any type",
     2,
     {OPEN(0), REC(A, 0), REC(B, 0), SST(A), REC(A, 0), GST, REC(A, 0), SST(A), SST(B), DONE(0),
      REL(4), EXP(0, 1, 0), EXP(1, 1, 0), EXP(2, 1, 0), EXP(3, 0, 0)}},
    {"mixed scopes: ten stream states then a global state, no double counting",
     1,
     {OPEN(0),      REC(A, 0),    SST(A),       REC(A, 0),    SST(A),       REC(A, 0),
      SST(A),       REC(A, 0),    SST(A),       REC(A, 0),    SST(A),       REC(A, 0),
      SST(A),       REC(A, 0),    SST(A),       REC(A, 0),    SST(A),       REC(A, 0),
      SST(A),       REC(A, 0),    SST(A),       REC(A, 0),    GST,          DONE(0),
      REL(11),      EXP(0, 1, 0), EXP(1, 1, 0), EXP(2, 1, 0), EXP(3, 1, 0), EXP(4, 1, 0),
      EXP(5, 1, 0), EXP(6, 1, 0), EXP(7, 1, 0), EXP(8, 1, 0), EXP(9, 1, 0), EXP(10, 1, 0)}},
    {"mixed scopes: a rejection is charged once",
     2,
     {OPEN(0), REC(A, 0), REC(A, 0), SST(A), REC(B, 0), GST, REJ(0), REJ(2), DONE(0), REL(2),
      EXP(0, 1, 1), EXP(1, 0, 1)}},
    {"mixed scopes: rejection before both states",
     2,
     {OPEN(0), REC(A, NOU), REJ(0), REC(A, 0), SST(A), GST, DONE(0), REL(2), EXP(0, 1, 1),
      EXP(1, 0, 0)}},
    {"mixed scopes: a stream state of another stream closes the global window",
     2,
     {OPEN(0), REC(A, NOU), REJ(0), REC(B, 0), SST(B), REC(A, 0), GST, DONE(0), REL(2),
      EXP(0, 1, 0), EXP(1, 1, 0)}},
    {"state for a stream outside the catalog",
     1,
     {OPEN(0), REC(A, 0), SST(NOS), REL(1), EXP(0, 0, 0), SST(A), SST(NOS), REL(0), PEND(2, 1),
      DONE(0), REL(2), EXP(1, 1, 0), EXP(2, 0, 0)}},
    {"records outside the catalog count only in global windows",
     1,
     {REC(NOS, NOU), REJ(0), REC(NOS, NOU), REC(NOS, NOU), GST, SST(NOS), SST(A), REJ(1), REL(3),
      EXP(0, 1, 2), EXP(1, 0, 0), EXP(2, 0, 0)}},
    {"records outside the catalog after a stream state",
     1,
     {REC(NOS, NOU), REJ(0), SST(NOS), REC(NOS, NOU), REC(NOS, NOU), GST, REJ(2), REL(2),
      EXP(0, 0, 0), EXP(1, 1, 1)}},
    {"records that join no unit hold nothing",
     1,
     {REC(A, NOU), REC(A, NOU), SST(A), REL(1), EXP(0, 2, 0)}},
};

struct scenario_run {
    const struct scenario *sc;
    struct ab_ckpt *ck;
    struct ab_error err;
    struct sink sink;
    uint64_t units[8];
    uint64_t seq_of[48];
    size_t stream_of[48];
    size_t nrec;
    size_t nstate;
};

static void scenario_check_emitted(struct scenario_run *r, const struct step *st, size_t i)
{
    const struct emitted *e = st->a < r->sink.n ? &r->sink.out[st->a] : NULL;
    char want[32];

    (void)snprintf(want, sizeof(want), "s%zu", st->a);
    if (!e || strcmp(e->members, want) != 0 || e->count != st->b || e->rejected != st->c) {
        fail_msg("%s, step %zu: emitted #%zu is %s %" PRIu64 "/%" PRIu64 ", want %s %zu/%" PRIu64,
                 r->sc->name, i, st->a, e ? e->members : "-", e ? e->count : 0, e ? e->rejected : 0,
                 want, st->b, st->c);
    }
}

static enum ab_status scenario_record(struct scenario_run *r, const struct step *st, size_t i)
{
    uint64_t seq = ab_ckpt_record(r->ck, st->a);

    if (seq != r->nrec) {
        fail_msg("%s, step %zu: seq %" PRIu64 ", want %zu", r->sc->name, i, seq, r->nrec);
    }
    r->seq_of[r->nrec] = seq;
    r->stream_of[r->nrec] = st->a;
    r->nrec++;
    if (st->b == NOU) {
        return AB_OK;
    }
    return ab_ckpt_unit_add(r->ck, r->units[st->b], st->a, seq, &r->err);
}

static enum ab_status scenario_step(struct scenario_run *r, const struct step *st, size_t i)
{
    char members[32];
    size_t released = 99;
    enum ab_status rc = AB_OK;

    switch (st->op) {
    case OP_REC:
        rc = scenario_record(r, st, i);
        break;
    case OP_OPEN:
        r->units[st->a] = ab_ckpt_unit_open(r->ck, &r->err);
        rc = r->units[st->a] == 0 ? r->err.code : AB_OK;
        break;
    case OP_DONE:
        ab_ckpt_unit_done(r->ck, r->units[st->a]);
        break;
    case OP_STATE:
        (void)snprintf(members, sizeof(members), "s%zu", r->nstate++);
        rc = ab_ckpt_state(r->ck, (enum ab_ckpt_scope)st->a, st->b, members, strlen(members),
                           (int64_t)i, &r->err);
        break;
    case OP_REJ:
        ab_ckpt_reject(r->ck, r->stream_of[st->a], r->seq_of[st->a]);
        break;
    case OP_REL:
        rc = ab_ckpt_release(r->ck, sink_emit, &r->sink, &released, &r->err);
        if (rc == AB_OK && released != st->a) {
            fail_msg("%s, step %zu: released %zu, want %zu", r->sc->name, i, released, st->a);
        }
        break;
    case OP_EXP:
        scenario_check_emitted(r, st, i);
        break;
    case OP_PEND:
        if (ab_ckpt_pending(r->ck) != st->a || ab_ckpt_live_units(r->ck) != st->b) {
            fail_msg("%s, step %zu: %zu pending, %zu live; want %zu, %zu", r->sc->name, i,
                     ab_ckpt_pending(r->ck), ab_ckpt_live_units(r->ck), st->a, st->b);
        }
        break;
    case OP_END:
        break;
    }
    return rc;
}

static void run_scenario(const struct scenario *sc)
{
    struct scenario_run r = {0};
    size_t nsteps = sizeof(sc->steps) / sizeof(sc->steps[0]);
    size_t checked = 0;
    size_t i;

    r.sc = sc;
    r.ck = ab_ckpt_new(sc->nstreams, &r.err);
    assert_non_null(r.ck);
    for (i = 0; i < nsteps && sc->steps[i].op != OP_END; i++) {
        if (scenario_step(&r, &sc->steps[i], i) != AB_OK) {
            fail_msg("%s, step %zu: %s", sc->name, i, r.err.message);
        }
        if (sc->steps[i].op == OP_EXP) {
            checked++;
        }
    }
    /* Every scenario checks all it emitted. */
    if (checked != r.sink.n) {
        fail_msg("%s: emitted %zu states, checked %zu", sc->name, r.sink.n, checked);
    }
    ab_ckpt_free(r.ck);
}

static void test_scenarios_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
        run_scenario(&scenarios[i]);
    }
}

/* ---- single-purpose tests ---- */

static void test_record_seq_starts_at_zero(void **state)
{
    struct ab_ckpt *ck = ab_ckpt_new(2, NULL);

    (void)state;
    assert_non_null(ck);
    assert_int_equal(ab_ckpt_record(ck, 0), 0);
    assert_int_equal(ab_ckpt_record(ck, 1), 1);
    assert_int_equal(ab_ckpt_record(ck, 0), 2);
    ab_ckpt_free(ck);
}

static void test_unit_ids_grow_from_one(void **state)
{
    struct ab_ckpt *ck = ab_ckpt_new(1, NULL);
    uint64_t i;

    (void)state;
    assert_non_null(ck);
    for (i = 1; i <= 100; i++) {
        assert_int_equal(ab_ckpt_unit_open(ck, NULL), i);
    }
    assert_int_equal(ab_ckpt_live_units(ck), 100);
    for (i = 1; i <= 100; i += 2) {
        ab_ckpt_unit_done(ck, i);
    }
    assert_int_equal(ab_ckpt_live_units(ck), 50);
    ab_ckpt_unit_done(ck, 1);   /* twice: ignored */
    ab_ckpt_unit_done(ck, 999); /* unknown: ignored */
    assert_int_equal(ab_ckpt_live_units(ck), 50);
    assert_int_equal(ab_ckpt_unit_open(ck, NULL), 101);
    ab_ckpt_free(ck);
}

static void test_committed_before(void **state)
{
    struct ab_error err = {0};
    struct ab_ckpt *ck = ab_ckpt_new(2, &err);
    uint64_t u1;
    uint64_t u2;
    uint64_t s0;
    uint64_t s1;
    uint64_t s2;
    uint64_t s3;

    (void)state;
    assert_non_null(ck);
    u1 = ab_ckpt_unit_open(ck, &err);
    u2 = ab_ckpt_unit_open(ck, &err);
    s0 = ab_ckpt_record(ck, 0);
    s1 = ab_ckpt_record(ck, 1);
    s2 = ab_ckpt_record(ck, 0);
    s3 = ab_ckpt_record(ck, 0);
    assert_int_equal(ab_ckpt_unit_add(ck, u1, 0, s2, &err), AB_OK);
    assert_int_equal(ab_ckpt_unit_add(ck, u2, 1, s1, &err), AB_OK);
    assert_int_equal(ab_ckpt_unit_add(ck, u2, 0, s3, &err), AB_OK);
    /* s0 joined no unit. */
    assert_true(ab_ckpt_committed_before(ck, 0, s0));
    assert_true(ab_ckpt_committed_before(ck, 0, s2));
    assert_false(ab_ckpt_committed_before(ck, 0, s2 + 1));
    assert_false(ab_ckpt_committed_before(ck, 0, 100));
    assert_true(ab_ckpt_committed_before(ck, 1, s1));
    assert_false(ab_ckpt_committed_before(ck, 1, s1 + 1));
    ab_ckpt_unit_done(ck, u1);
    assert_true(ab_ckpt_committed_before(ck, 0, s3));
    assert_false(ab_ckpt_committed_before(ck, 0, s3 + 1));
    /* Lower seqs added later lower the unit's minimum. */
    assert_int_equal(ab_ckpt_unit_add(ck, u2, 0, s0, &err), AB_OK);
    assert_false(ab_ckpt_committed_before(ck, 0, s0 + 1));
    ab_ckpt_unit_done(ck, u2);
    assert_true(ab_ckpt_committed_before(ck, 0, 100));
    assert_true(ab_ckpt_committed_before(ck, 1, 100));
    assert_true(ab_ckpt_committed_before(ck, 7, 100)); /* outside the catalog */
    ab_ckpt_free(ck);
}

static void test_stats_pending_oldest(void **state)
{
    struct ab_error err = {0};
    struct ab_ckpt *ck = ab_ckpt_new(2, &err);
    struct ab_ckpt_stats stats;
    struct sink sink = {0};
    size_t released = 0;
    uint64_t u;

    (void)state;
    assert_non_null(ck);
    ab_ckpt_get_stats(ck, &stats);
    assert_int_equal(stats.records, 0);
    assert_int_equal(stats.states_in, 0);
    assert_int_equal(ab_ckpt_oldest_us(ck), -1);
    assert_int_equal(ab_ckpt_pending(ck), 0);

    u = ab_ckpt_unit_open(ck, &err);
    assert_int_equal(ab_ckpt_unit_add(ck, u, 0, ab_ckpt_record(ck, 0), &err), AB_OK);
    ab_ckpt_reject(ck, 1, ab_ckpt_record(ck, 1));
    assert_int_equal(ab_ckpt_state(ck, AB_CKPT_STREAM, 0, "a", 1, 1000, &err), AB_OK);
    assert_int_equal(ab_ckpt_state(ck, AB_CKPT_STREAM, 1, "b", 1, 2000, &err), AB_OK);
    assert_int_equal(ab_ckpt_pending(ck), 2);
    assert_int_equal(ab_ckpt_oldest_us(ck), 1000);
    assert_int_equal(ab_ckpt_release(ck, sink_emit, &sink, &released, &err), AB_OK);
    assert_int_equal(released, 0);
    ab_ckpt_get_stats(ck, &stats);
    assert_int_equal(stats.records, 2);
    assert_int_equal(stats.rejected, 1);
    assert_int_equal(stats.states_in, 2);
    assert_int_equal(stats.states_out, 0);

    ab_ckpt_unit_done(ck, u);
    assert_int_equal(ab_ckpt_release(ck, sink_emit, &sink, NULL, &err), AB_OK);
    assert_int_equal(sink.n, 2);
    assert_int_equal(sink.out[1].count, 0);
    assert_int_equal(sink.out[1].rejected, 1);
    assert_int_equal(ab_ckpt_pending(ck), 0);
    assert_int_equal(ab_ckpt_oldest_us(ck), -1);
    ab_ckpt_get_stats(ck, &stats);
    assert_int_equal(stats.states_out, 2);
    ab_ckpt_free(ck);
}

static void test_emit_failure_resumes_at_same_state(void **state)
{
    struct ab_error err = {0};
    struct ab_ckpt *ck = ab_ckpt_new(1, &err);
    struct sink sink = {0};
    struct ab_ckpt_stats stats;
    size_t released = 99;
    const char *names[] = {"s0", "s1", "s2"};
    size_t i;

    (void)state;
    assert_non_null(ck);
    for (i = 0; i < 3; i++) {
        (void)ab_ckpt_record(ck, 0);
        assert_int_equal(ab_ckpt_state(ck, AB_CKPT_STREAM, 0, names[i], 2, (int64_t)i, &err),
                         AB_OK);
    }
    sink.fail_at = 2;
    assert_int_equal(ab_ckpt_release(ck, sink_emit, &sink, &released, &err), AB_ERR_IO);
    assert_string_equal(err.message, "cannot write state");
    assert_int_equal(released, 1);
    assert_int_equal(sink.n, 1);
    assert_int_equal(ab_ckpt_pending(ck), 2);
    assert_int_equal(ab_ckpt_oldest_us(ck), 1);
    ab_ckpt_get_stats(ck, &stats);
    assert_int_equal(stats.states_out, 1);

    /* First call fails at once: nothing goes out. */
    sink.calls = 0;
    sink.fail_at = 1;
    assert_int_equal(ab_ckpt_release(ck, sink_emit, &sink, &released, &err), AB_ERR_IO);
    assert_int_equal(released, 0);
    assert_int_equal(ab_ckpt_pending(ck), 2);

    sink.fail_at = 0;
    assert_int_equal(ab_ckpt_release(ck, sink_emit, &sink, &released, &err), AB_OK);
    assert_int_equal(released, 2);
    assert_int_equal(sink.n, 3);
    for (i = 0; i < 3; i++) {
        assert_string_equal(sink.out[i].members, names[i]);
        assert_int_equal(sink.out[i].count, 1);
    }
    ab_ckpt_free(ck);
}

static void test_bad_calls_rejected(void **state)
{
    struct ab_error err = {0};
    struct ab_ckpt *ck = ab_ckpt_new(2, &err);
    uint64_t u;
    uint64_t seq;

    (void)state;
    assert_non_null(ck);
    u = ab_ckpt_unit_open(ck, &err);
    seq = ab_ckpt_record(ck, 0);
    assert_int_equal(ab_ckpt_unit_add(ck, u + 1, 0, seq, &err), AB_ERR_INTERNAL);
    assert_int_equal(ab_ckpt_unit_add(ck, u, 2, seq, &err), AB_ERR_INTERNAL);
    assert_int_equal(ab_ckpt_unit_add(ck, u, 0, seq + 1, &err), AB_ERR_INTERNAL);
    ab_ckpt_unit_done(ck, u);
    assert_int_equal(ab_ckpt_unit_add(ck, u, 0, seq, &err), AB_ERR_INTERNAL);
    assert_int_equal(ab_ckpt_state(ck, AB_CKPT_STREAM, 2, "x", 1, 0, &err), AB_ERR_INTERNAL);
    assert_int_equal(ab_ckpt_state(ck, AB_CKPT_STREAM, 0, NULL, 3, 0, &err), AB_ERR_INTERNAL);
    assert_int_equal(ab_ckpt_pending(ck), 0);
    assert_int_equal(ab_ckpt_release(ck, NULL, NULL, NULL, &err), AB_ERR_INTERNAL);
    /* An empty member string is fine. */
    assert_int_equal(ab_ckpt_state(ck, AB_CKPT_GLOBAL, 0, NULL, 0, 0, &err), AB_OK);
    ab_ckpt_free(ck);
    ab_ckpt_free(NULL);
}

static void test_members_copied(void **state)
{
    struct ab_error err = {0};
    struct ab_ckpt *ck = ab_ckpt_new(1, &err);
    struct sink sink = {0};
    char members[] = "{\"a\":1}";

    (void)state;
    assert_non_null(ck);
    assert_int_equal(ab_ckpt_state(ck, AB_CKPT_STREAM, 0, members, 5, 0, &err), AB_OK);
    memset(members, 'x', sizeof(members) - 1);
    assert_int_equal(ab_ckpt_release(ck, sink_emit, &sink, NULL, &err), AB_OK);
    assert_string_equal(sink.out[0].members, "{\"a\":");
    ab_ckpt_free(ck);
}

/* Many pending states and live units: the ring and the unit array grow and
 * wrap, and units freed mid-array keep the others findable. */
static void test_many_units_and_states(void **state)
{
    struct ab_error err = {0};
    struct ab_ckpt *ck = ab_ckpt_new(40, &err);
    struct sink sink = {0};
    uint64_t units[200];
    size_t released = 0;
    size_t round;
    size_t i;

    (void)state;
    assert_non_null(ck);
    for (round = 0; round < 3; round++) {
        for (i = 0; i < 200; i++) {
            uint64_t seq = ab_ckpt_record(ck, i % 40);

            units[i] = ab_ckpt_unit_open(ck, &err);
            assert_int_equal(ab_ckpt_unit_add(ck, units[i], i % 40, seq, &err), AB_OK);
            assert_int_equal(ab_ckpt_state(ck, AB_CKPT_STREAM, i % 40, "s", 1, 0, &err), AB_OK);
        }
        /* Commit from the newest: nothing may go out until unit 0 is done. */
        for (i = 199; i > 0; i--) {
            ab_ckpt_unit_done(ck, units[i]);
            if (i % 50 == 0) {
                assert_int_equal(ab_ckpt_release(ck, sink_emit, &sink, &released, &err), AB_OK);
                assert_int_equal(released, 0);
            }
        }
        assert_int_equal(ab_ckpt_pending(ck), 200);
        ab_ckpt_unit_done(ck, units[0]);
        assert_int_equal(ab_ckpt_live_units(ck), 0);
        sink.n = 0;
        for (i = 0; i < 200; i += SINK_MAX) {
            /* The sink holds SINK_MAX; fail after that and resume. */
            sink.calls = 0;
            sink.fail_at = SINK_MAX + 1;
            (void)ab_ckpt_release(ck, sink_emit, &sink, &released, &err);
            assert_int_equal(released, 200 - i < SINK_MAX ? 200 - i : SINK_MAX);
            sink.n = 0;
        }
        assert_int_equal(ab_ckpt_pending(ck), 0);
    }
    ab_ckpt_free(ck);
}

/* ---- randomized property test against a brute-force model ---- */

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}

static size_t rng_below(struct rng *r, size_t n)
{
    return (size_t)(rng_next(r) % n);
}

struct mrec {
    size_t stream;
    uint64_t unit; /* 0: joined no unit */
    bool rejected;
};

struct mstate {
    enum ab_ckpt_scope scope;
    size_t stream;
    uint64_t pos;
    int64_t now_us;
};

struct model {
    size_t nstreams;
    struct mrec *recs;
    size_t nrecs;
    bool *unit_live; /* by unit id */
    uint64_t *live;  /* live unit ids */
    size_t nlive;
    uint64_t nunits;
    struct mstate *states;
    size_t nstates;
    size_t nreleased;
    size_t emit_calls;
    size_t fail_at;
};

static bool m_covers(const struct mstate *st, size_t stream)
{
    if (st->scope == AB_CKPT_GLOBAL) {
        return true;
    }
    return st->stream != AB_CKPT_NO_STREAM && st->stream == stream;
}

/* Brute force: some record of the state's scope before it sits in a live unit. */
static bool m_blocked(const struct model *m, const struct mstate *st)
{
    uint64_t q;

    for (q = 0; q < st->pos; q++) {
        const struct mrec *r = &m->recs[q];

        if (r->unit != 0 && m->unit_live[r->unit] && m_covers(st, r->stream)) {
            return true;
        }
    }
    return false;
}

/* Brute force: records and rejections in state i's window. */
static void m_window(const struct model *m, size_t i, uint64_t *received, uint64_t *rejected)
{
    const struct mstate *st = &m->states[i];
    uint64_t start = 0;
    uint64_t q;
    size_t j;

    *received = 0;
    *rejected = 0;
    if (st->scope == AB_CKPT_STREAM && st->stream == AB_CKPT_NO_STREAM) {
        return;
    }
    for (j = i; j-- > 0;) {
        const struct mstate *p = &m->states[j];
        /* a GLOBAL window starts after the previous state of any type */
        bool closes = st->scope == AB_CKPT_GLOBAL ? true : m_covers(p, st->stream);

        if (closes) {
            start = p->pos;
            break;
        }
    }
    for (q = start; q < st->pos; q++) {
        if (m_covers(st, m->recs[q].stream)) {
            (*received)++;
            *rejected += m->recs[q].rejected ? 1 : 0;
        }
    }
}

static enum ab_status model_emit(void *arg, const char *members, size_t len, uint64_t record_count,
                                 uint64_t rejected_count, struct ab_error *err)
{
    struct model *m = arg;
    const struct mstate *st;
    char want[32];
    uint64_t received;
    uint64_t rejected;

    m->emit_calls++;
    if (m->fail_at != 0 && m->emit_calls == m->fail_at) {
        return ab_error_set(err, AB_ERR_TRANSIENT, "stdout is full");
    }
    assert_true(m->nreleased < m->nstates);
    st = &m->states[m->nreleased];
    /* Released in arrival order, and only with all its records committed. */
    (void)snprintf(want, sizeof(want), "%zu", m->nreleased);
    assert_int_equal(len, strlen(want));
    assert_string_equal(members, want);
    assert_false(m_blocked(m, st));
    m_window(m, m->nreleased, &received, &rejected);
    assert_int_equal(rejected_count, rejected);
    assert_int_equal(record_count, received - rejected);
    m->nreleased++;
    return AB_OK;
}

struct prop_case {
    uint64_t seed;
    size_t nstreams;
    int scopes;      /* 0: STREAM only, 1: GLOBAL only, 2: mixed */
    unsigned p_done; /* per mille of operations committing a unit */
};

static void m_add_to_unit(struct model *m, struct ab_ckpt *ck, struct rng *r, uint64_t seq)
{
    struct ab_error err = {0};
    uint64_t u;

    if (m->nlive == 0 || rng_below(r, 10) == 0) {
        u = ab_ckpt_unit_open(ck, &err);
        assert_int_equal(u, m->nunits + 1);
        m->nunits = u;
        m->unit_live[u] = true;
        m->live[m->nlive++] = u;
    } else {
        u = m->live[rng_below(r, m->nlive)];
    }
    assert_int_equal(ab_ckpt_unit_add(ck, u, m->recs[seq].stream, seq, &err), AB_OK);
    m->recs[seq].unit = u;
}

static void m_reject_in_unit(struct model *m, struct ab_ckpt *ck, struct rng *r)
{
    uint64_t u;
    size_t start;
    size_t k;

    if (m->nlive == 0 || m->nrecs == 0) {
        return;
    }
    u = m->live[rng_below(r, m->nlive)];
    start = rng_below(r, m->nrecs);
    for (k = 0; k < m->nrecs; k++) {
        struct mrec *rec = &m->recs[(start + k) % m->nrecs];

        if (rec->unit == u && !rec->rejected) {
            rec->rejected = true;
            ab_ckpt_reject(ck, rec->stream, (start + k) % m->nrecs);
            return;
        }
    }
}

static void m_release(struct model *m, struct ab_ckpt *ck, struct rng *r)
{
    struct ab_error err = {0};
    size_t allowed = 0;
    size_t before = m->nreleased;
    size_t released = 0;
    enum ab_status rc;
    size_t i;

    /* As early as allowed: the longest prefix whose records are committed. */
    for (i = m->nreleased; i < m->nstates && !m_blocked(m, &m->states[i]); i++) {
        allowed++;
    }
    m->emit_calls = 0;
    m->fail_at = rng_below(r, 10) == 0 ? 1 + rng_below(r, 3) : 0;
    rc = ab_ckpt_release(ck, model_emit, m, &released, &err);
    if (m->fail_at != 0 && m->fail_at <= allowed) {
        assert_int_equal(rc, AB_ERR_TRANSIENT);
        assert_int_equal(released, m->fail_at - 1);
    } else {
        assert_int_equal(rc, AB_OK);
        assert_int_equal(released, allowed);
    }
    assert_int_equal(m->nreleased - before, released);
}

static void m_record(struct model *m, struct ab_ckpt *ck, struct rng *r)
{
    size_t s = rng_below(r, m->nstreams);
    uint64_t seq = ab_ckpt_record(ck, s);
    unsigned how = (unsigned)rng_below(r, 100);

    assert_int_equal(seq, m->nrecs);
    m->recs[m->nrecs++] = (struct mrec){s, 0, false};
    if (how < 75) {
        m_add_to_unit(m, ck, r, seq);
    } else if (how < 90) {
        /* Rejected before it joins a unit (validation). */
        m->recs[seq].rejected = true;
        ab_ckpt_reject(ck, s, seq);
    }
}

static void m_unit_done(struct model *m, struct ab_ckpt *ck, struct rng *r)
{
    size_t k;

    if (m->nlive == 0) {
        return;
    }
    k = rng_below(r, m->nlive);
    ab_ckpt_unit_done(ck, m->live[k]);
    m->unit_live[m->live[k]] = false;
    m->live[k] = m->live[--m->nlive];
}

static void m_state(struct model *m, struct ab_ckpt *ck, struct rng *r, int scopes, int64_t now)
{
    struct ab_error err = {0};
    struct mstate *st = &m->states[m->nstates];
    char members[32];
    bool global = scopes == 1 || (scopes == 2 && rng_below(r, 3) == 0);

    st->scope = global ? AB_CKPT_GLOBAL : AB_CKPT_STREAM;
    st->stream = global ? AB_CKPT_NO_STREAM : rng_below(r, m->nstreams);
    if (!global && rng_below(r, 20) == 0) {
        st->stream = AB_CKPT_NO_STREAM;
    }
    st->pos = m->nrecs;
    st->now_us = now;
    (void)snprintf(members, sizeof(members), "%zu", m->nstates);
    assert_int_equal(
        ab_ckpt_state(ck, st->scope, st->stream, members, strlen(members), st->now_us, &err),
        AB_OK);
    m->nstates++;
}

static void m_probe(const struct model *m, const struct ab_ckpt *ck, struct rng *r)
{
    size_t s = rng_below(r, m->nstreams);
    uint64_t q = rng_below(r, m->nrecs + 1);
    struct mstate probe = {AB_CKPT_STREAM, s, q, 0};

    assert_int_equal(ab_ckpt_committed_before(ck, s, q), !m_blocked(m, &probe));
}

static void m_check(const struct model *m, const struct ab_ckpt *ck)
{
    assert_int_equal(ab_ckpt_pending(ck), m->nstates - m->nreleased);
    assert_int_equal(ab_ckpt_live_units(ck), m->nlive);
    assert_int_equal(ab_ckpt_oldest_us(ck),
                     m->nreleased < m->nstates ? m->states[m->nreleased].now_us : -1);
}

/* Commits everything: every state goes out; the totals add up. */
static void m_drain(struct model *m, struct ab_ckpt *ck)
{
    struct ab_error err = {0};
    struct ab_ckpt_stats stats;
    uint64_t nrejected = 0;
    size_t i;

    while (m->nlive > 0) {
        ab_ckpt_unit_done(ck, m->live[--m->nlive]);
        m->unit_live[m->live[m->nlive]] = false;
    }
    m->fail_at = 0;
    assert_int_equal(ab_ckpt_release(ck, model_emit, m, NULL, &err), AB_OK);
    assert_int_equal(m->nreleased, m->nstates);
    ab_ckpt_get_stats(ck, &stats);
    for (i = 0; i < m->nrecs; i++) {
        nrejected += m->recs[i].rejected ? 1 : 0;
    }
    assert_int_equal(stats.records, m->nrecs);
    assert_int_equal(stats.rejected, nrejected);
    assert_int_equal(stats.states_in, m->nstates);
    assert_int_equal(stats.states_out, m->nstates);
}

static void run_property(const struct prop_case *pc)
{
    enum { NOPS = 10000 };
    struct ab_error err = {0};
    struct ab_ckpt *ck = ab_ckpt_new(pc->nstreams, &err);
    struct model m = {0};
    struct rng r = {pc->seed};
    size_t op;

    assert_non_null(ck);
    m.nstreams = pc->nstreams;
    m.recs = calloc(NOPS, sizeof(*m.recs));
    m.unit_live = calloc(NOPS + 1, sizeof(*m.unit_live));
    m.live = calloc(NOPS, sizeof(*m.live));
    m.states = calloc(NOPS, sizeof(*m.states));
    assert_non_null(m.recs);
    assert_non_null(m.unit_live);
    assert_non_null(m.live);
    assert_non_null(m.states);

    for (op = 0; op < NOPS; op++) {
        unsigned dice = (unsigned)rng_below(&r, 1000);

        if (dice < 400) {
            m_record(&m, ck, &r);
        } else if (dice < 400 + pc->p_done) {
            m_unit_done(&m, ck, &r);
        } else if (dice < 450 + pc->p_done) {
            m_reject_in_unit(&m, ck, &r);
        } else if (dice < 550 + pc->p_done) {
            m_state(&m, ck, &r, pc->scopes, (int64_t)op);
        } else if (dice < 750 + pc->p_done) {
            m_release(&m, ck, &r);
        } else {
            m_probe(&m, ck, &r);
        }
        m_check(&m, ck);
    }
    m_drain(&m, ck);
    free(m.recs);
    free(m.unit_live);
    free(m.live);
    free(m.states);
    ab_ckpt_free(ck);
}

static void test_random_against_model(void **state)
{
    static const struct prop_case cases[] = {
        {0x9e3779b97f4a7c15U, 3, 0, 60},  {0x2545f4914f6cdd1dU, 1, 0, 60},
        {0xd1b54a32d192ed03U, 40, 0, 40}, {0x8cb92ba72f3d8dd7U, 3, 1, 60},
        {0x94d049bb133111ebU, 5, 1, 20},  {0xbf58476d1ce4e5b9U, 3, 2, 60},
        {0x5851f42d4c957f2dU, 40, 2, 30}, {0x14057b7ef767814fU, 2, 2, 100},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_property(&cases[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scenarios_table),
        cmocka_unit_test(test_record_seq_starts_at_zero),
        cmocka_unit_test(test_unit_ids_grow_from_one),
        cmocka_unit_test(test_committed_before),
        cmocka_unit_test(test_stats_pending_oldest),
        cmocka_unit_test(test_emit_failure_resumes_at_same_state),
        cmocka_unit_test(test_bad_calls_rejected),
        cmocka_unit_test(test_members_copied),
        cmocka_unit_test(test_many_units_and_states),
        cmocka_unit_test(test_random_against_model),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
