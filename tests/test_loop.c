/* test_loop.c - the event loop: timers, descriptors, the before-wait hook. */
/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "ab/clock.h"
#include "ab/http.h"
#include "ab/loop.h"

#include "ab_test.h"

struct log {
    char text[256];
    size_t len;
    int fails_at; /* the call number that fails, 0: none */
    int calls;
    struct ab_loop *l;
    uint64_t victim; /* a timer deleted by the first callback */
};

static void note(struct log *g, char c)
{
    if (g->len + 1 < sizeof(g->text)) {
        g->text[g->len++] = c;
        g->text[g->len] = '\0';
    }
}

static enum ab_status on_timer(void *arg, uint64_t id, struct ab_error *err)
{
    struct log *g = arg;

    note(g, (char)('0' + (int)(id % 10)));
    if (g->victim) {
        ab_loop_del_timer(g->l, g->victim);
        g->victim = 0;
    }
    if (++g->calls == g->fails_at) {
        return ab_error_set(err, AB_ERR_IO, "timer %llu failed", (unsigned long long)id);
    }
    return AB_OK;
}

static struct ab_loop *new_loop(void)
{
    struct ab_error err;
    struct ab_loop *l = ab_loop_new(&err);

    assert_non_null(l);
    return l;
}

static void turns_for(struct ab_loop *l, long ms)
{
    struct ab_error err;
    int64_t end = ab_now_us() + ms * 1000;

    while (ab_now_us() < end) {
        assert_int_equal(ab_loop_turn(l, 10, &err), AB_OK);
    }
}

static void test_timers_fire_in_due_order(void **state)
{
    struct ab_loop *l = new_loop();
    struct log g = {0};
    struct ab_error err;
    uint64_t a;
    uint64_t b;
    uint64_t c;

    (void)state;
    g.l = l;
    a = ab_loop_add_timer(l, 60000, 0, on_timer, &g, &err);  /* id 1 */
    b = ab_loop_add_timer(l, 20000, 0, on_timer, &g, &err);  /* id 2 */
    c = ab_loop_add_timer(l, 200000, 0, on_timer, &g, &err); /* id 3 */
    assert_true(a && b && c);
    ab_loop_del_timer(l, c);
    assert_false(ab_loop_timer_armed(l, c));
    turns_for(l, 120);
    assert_string_equal(g.text, "21");
    assert_false(ab_loop_timer_armed(l, a));
    ab_loop_free(l);
}

static void test_periodic_timer_repeats_until_deleted(void **state)
{
    struct ab_loop *l = new_loop();
    struct log g = {0};
    struct ab_error err;
    uint64_t id;

    (void)state;
    g.l = l;
    id = ab_loop_add_timer(l, 10000, 10000, on_timer, &g, &err);
    turns_for(l, 105);
    assert_in_range(g.len, 2, 11); /* a loaded machine may stall a turn */
    assert_true(ab_loop_timer_armed(l, id));
    ab_loop_del_timer(l, id);
    g.len = 0;
    turns_for(l, 30);
    assert_int_equal(g.len, 0);
    ab_loop_free(l);
}

static void stall_ms(long ms)
{
    int64_t end = ab_now_us() + ms * 1000;

    while (ab_now_us() < end) {
    }
}

/* Two timers overdue by a stall fire in the order they fell due, whatever
 * their slots; one a callback adds waits for the next turn. */
static enum ab_status on_timer_adds(void *arg, uint64_t id, struct ab_error *err)
{
    struct log *g = arg;

    (void)on_timer(arg, id, err);
    if (g->calls == 1) {
        (void)ab_loop_add_timer(g->l, 0, 0, on_timer, g, err);
    }
    return AB_OK;
}

static void test_overdue_timers_fire_in_due_order_in_one_turn(void **state)
{
    struct ab_loop *l = new_loop();
    struct log g = {0};
    struct ab_error err;

    (void)state;
    g.l = l;
    (void)ab_loop_add_timer(l, 20000, 0, on_timer, &g, &err);      /* id 1, slot 0, later */
    (void)ab_loop_add_timer(l, 10000, 0, on_timer_adds, &g, &err); /* id 2, slot 1, earlier */
    stall_ms(30); /* both fall due while no turn runs */
    assert_int_equal(ab_loop_turn(l, 0, &err), AB_OK);
    assert_string_equal(g.text, "21");
    assert_int_equal(ab_loop_turn(l, 0, &err), AB_OK);
    assert_string_equal(g.text, "213");
    ab_loop_free(l);
}

static void test_callback_deletes_a_due_timer(void **state)
{
    struct ab_loop *l = new_loop();
    struct log g = {0};
    struct ab_error err;

    (void)state;
    g.l = l;
    (void)ab_loop_add_timer(l, 0, 0, on_timer, &g, &err);
    g.victim = ab_loop_add_timer(l, 0, 0, on_timer, &g, &err);
    turns_for(l, 20);
    assert_string_equal(g.text, "1");
    ab_loop_free(l);
}

static void test_timer_failure_ends_the_turn(void **state)
{
    struct ab_loop *l = new_loop();
    struct log g = {0};
    struct ab_error err;

    (void)state;
    g.l = l;
    g.fails_at = 1;
    ab_error_init(&err);
    (void)ab_loop_add_timer(l, 0, 0, on_timer, &g, &err);
    (void)ab_loop_add_timer(l, 0, 0, on_timer, &g, &err);
    assert_int_equal(ab_loop_run(l, &err), AB_ERR_IO);
    assert_string_equal(err.message, "timer 1 failed");
    assert_int_equal(g.calls, 1);
    ab_loop_free(l);
}

static void test_timer_table_is_bounded(void **state)
{
    struct ab_loop *l = new_loop();
    struct log g = {0};
    struct ab_error err;

    (void)state;
    for (int i = 0; i < AB_LOOP_MAX_TIMERS; i++) {
        assert_true(ab_loop_add_timer(l, 1000000, 0, on_timer, &g, &err) != 0);
    }
    assert_int_equal(ab_loop_add_timer(l, 1000000, 0, on_timer, &g, &err), 0);
    assert_int_equal(err.code, AB_ERR_INTERNAL);
    ab_loop_free(l);
}

struct fdlog {
    struct ab_loop *l;
    int reads;
    int stops_after;
};

static enum ab_status on_fd(void *arg, int fd, unsigned ready, struct ab_error *err)
{
    struct fdlog *f = arg;
    char c;

    (void)err;
    assert_true(ready & AB_LOOP_READ);
    assert_int_equal(read(fd, &c, 1), 1);
    if (++f->reads == f->stops_after) {
        ab_loop_stop(f->l);
    }
    return AB_OK;
}

static void test_descriptor_read_pause_and_delete(void **state)
{
    struct ab_loop *l = new_loop();
    struct fdlog f = {0};
    struct ab_error err;
    int p[2];

    (void)state;
    f.l = l;
    f.stops_after = 2;
    assert_int_equal(pipe(p), 0);
    assert_int_equal(ab_loop_add_fd(l, p[0], AB_LOOP_READ, on_fd, &f, &err), AB_OK);
    assert_int_equal(ab_loop_add_fd(l, p[0], AB_LOOP_READ, on_fd, &f, &err), AB_ERR_INTERNAL);
    assert_int_equal(write(p[1], "ab", 2), 2);
    assert_int_equal(ab_loop_run(l, &err), AB_OK);
    assert_int_equal(f.reads, 2);
    /* paused: readable data is left alone */
    assert_int_equal(write(p[1], "c", 1), 1);
    ab_loop_fd_mask(l, p[0], 0);
    turns_for(l, 30);
    assert_int_equal(f.reads, 2);
    ab_loop_fd_mask(l, p[0], AB_LOOP_READ);
    turns_for(l, 30);
    assert_int_equal(f.reads, 3);
    ab_loop_del_fd(l, p[0]);
    assert_int_equal(write(p[1], "d", 1), 1);
    turns_for(l, 30);
    assert_int_equal(f.reads, 3);
    (void)close(p[0]);
    (void)close(p[1]);
    ab_loop_free(l);
}

/* What the callback of a descriptor table test saw. */
struct seen {
    int calls;
    int fd;
    unsigned ready;
};

static enum ab_status on_seen(void *arg, int fd, unsigned ready, struct ab_error *err)
{
    struct seen *s = arg;

    (void)err;
    s->calls++;
    s->fd = fd;
    s->ready = ready;
    return AB_OK;
}

#define MANY_PIPES 40

static void test_descriptor_table_grows_and_reports_hangup(void **state)
{
    struct ab_loop *l = new_loop();
    struct seen s = {0, -1, 0};
    struct ab_error err;
    int p[MANY_PIPES][2];

    (void)state;
    /* more than the initial 16 entries */
    for (int i = 0; i < MANY_PIPES; i++) {
        assert_int_equal(pipe(p[i]), 0);
        assert_int_equal(ab_loop_add_fd(l, p[i][0], AB_LOOP_READ, on_seen, &s, &err), AB_OK);
    }
    assert_int_equal(write(p[MANY_PIPES - 1][1], "x", 1), 1);
    assert_int_equal(ab_loop_turn(l, 1000, &err), AB_OK);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.fd, p[MANY_PIPES - 1][0]);
    assert_int_equal(s.ready, AB_LOOP_READ);
    ab_loop_del_fd(l, p[MANY_PIPES - 1][0]);
    /* a closed writer: readable and hung up, even when only watched for
     * writing or paused for reading */
    (void)close(p[3][1]);
    p[3][1] = -1;
    ab_loop_fd_mask(l, p[3][0], AB_LOOP_WRITE);
    assert_int_equal(ab_loop_turn(l, 1000, &err), AB_OK);
    assert_int_equal(s.calls, 2);
    assert_int_equal(s.fd, p[3][0]);
    assert_int_equal(s.ready, AB_LOOP_READ | AB_LOOP_ERROR);
    for (int i = 0; i < MANY_PIPES; i++) {
        ab_loop_del_fd(l, p[i][0]);
        (void)close(p[i][0]);
        if (p[i][1] >= 0) {
            (void)close(p[i][1]);
        }
    }
    ab_loop_free(l);
}

struct hook {
    int calls;
    struct ab_loop *l;
};

static enum ab_status before_wait(void *arg, struct ab_error *err)
{
    struct hook *h = arg;

    (void)err;
    if (++h->calls < 1000) {
        ab_loop_wake(h->l); /* more work: the wait must not block */
    } else {
        ab_loop_stop(h->l);
    }
    return AB_OK;
}

static void test_wake_skips_the_wait(void **state)
{
    struct ab_loop *l = new_loop();
    struct hook h = {0, l};
    struct ab_error err;
    struct log g = {0};
    int64_t t0 = ab_now_us();

    (void)state;
    /* a far timer: without wake each turn would sleep until it */
    (void)ab_loop_add_timer(l, 60 * 1000000LL, 0, on_timer, &g, &err);
    ab_loop_set_before_wait(l, before_wait, &h);
    assert_int_equal(ab_loop_run(l, &err), AB_OK);
    assert_int_equal(h.calls, 1000);
    assert_true(ab_now_us() - t0 < 2000000);
    ab_loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_fire_in_due_order),
        cmocka_unit_test(test_periodic_timer_repeats_until_deleted),
        cmocka_unit_test(test_overdue_timers_fire_in_due_order_in_one_turn),
        cmocka_unit_test(test_callback_deletes_a_due_timer),
        cmocka_unit_test(test_timer_failure_ends_the_turn),
        cmocka_unit_test(test_timer_table_is_bounded),
        cmocka_unit_test(test_descriptor_read_pause_and_delete),
        cmocka_unit_test(test_wake_skips_the_wait),
        cmocka_unit_test(test_descriptor_table_grows_and_reports_hangup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
