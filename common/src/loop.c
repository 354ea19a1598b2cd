/* loop.c - the event loop: file descriptors, timers and the HTTP client. */
/* SPDX-License-Identifier: MIT */
#include "ab/loop.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <poll.h>

#include "ab/assert.h"
#include "ab/clock.h"
#include "ab/http.h"

struct loop_fd {
    int fd;
    unsigned mask;
    ab_loop_fd_fn fn;
    void *arg;
};

struct loop_timer {
    uint64_t id; /* 0: free slot */
    int64_t due_us;
    int64_t period_us;
    ab_loop_timer_fn fn;
    void *arg;
};

/* Entries of the descriptor table before it first grows. */
#define LOOP_FDS_INITIAL 16

/*
 * Invariants: fds[0..nfds) hold distinct descriptors, nfds <= cap <=
 * AB_LOOP_MAX_FDS, and pfd has cap entries too (the poll set of a turn never
 * needs more). in_turn is set while a turn runs (no nested turns).
 */
struct ab_loop {
    struct loop_fd *fds;
    struct pollfd *pfd;
    unsigned nfds;
    unsigned cap;
    bool in_turn;
    struct loop_timer timers[AB_LOOP_MAX_TIMERS];
    uint64_t next_id;
    struct ab_http *http;
    ab_loop_hook_fn before_wait;
    void *before_wait_arg;
    bool stop;
    bool woken;
};

struct ab_loop *ab_loop_new(struct ab_error *err)
{
    struct ab_loop *l = calloc(1, sizeof(*l));

    if (!l) {
        (void)ab_error_set(err, AB_ERR_NOMEM, "out of memory (event loop)");
        return NULL;
    }
    l->next_id = 1;
    return l;
}

void ab_loop_free(struct ab_loop *l)
{
    if (!l) {
        return;
    }
    AB_ASSERT(!l->in_turn);
    ab_loop_set_http(l, NULL);
    free(l->fds);
    free(l->pfd);
    free(l);
}

/* Room for one more descriptor: doubles the table (and the poll set). */
static enum ab_status grow_fds(struct ab_loop *l, struct ab_error *err)
{
    unsigned cap = l->cap ? l->cap * 2 : LOOP_FDS_INITIAL;
    struct loop_fd *fds;
    struct pollfd *pfd;

    if (cap > AB_LOOP_MAX_FDS) {
        cap = AB_LOOP_MAX_FDS;
    }
    AB_ASSERT(cap > l->cap);
    fds = realloc(l->fds, cap * sizeof(*fds));
    if (!fds) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (event loop descriptors)");
    }
    l->fds = fds;
    pfd = realloc(l->pfd, cap * sizeof(*pfd));
    if (!pfd) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (event loop descriptors)");
    }
    l->pfd = pfd;
    l->cap = cap;
    return AB_OK;
}

static struct loop_fd *find_fd(struct ab_loop *l, int fd)
{
    for (unsigned i = 0; i < l->nfds; i++) {
        if (l->fds[i].fd == fd) {
            return &l->fds[i];
        }
    }
    return NULL;
}

enum ab_status ab_loop_add_fd(struct ab_loop *l, int fd, unsigned mask, ab_loop_fd_fn fn, void *arg,
                              struct ab_error *err)
{
    struct loop_fd *f;

    if (fd < 0 || !fn || find_fd(l, fd)) {
        return ab_error_set(err, AB_ERR_INTERNAL, "event loop: descriptor %d cannot be added", fd);
    }
    if (l->nfds == AB_LOOP_MAX_FDS) {
        return ab_error_set(err, AB_ERR_INTERNAL, "event loop: more than %d descriptors",
                            AB_LOOP_MAX_FDS);
    }
    if (l->nfds == l->cap && grow_fds(l, err) != AB_OK) {
        return err->code;
    }
    AB_ASSERT(l->nfds < l->cap);
    f = &l->fds[l->nfds++];
    f->fd = fd;
    f->mask = mask;
    f->fn = fn;
    f->arg = arg;
    return AB_OK;
}

void ab_loop_fd_mask(struct ab_loop *l, int fd, unsigned mask)
{
    struct loop_fd *f = find_fd(l, fd);

    if (f) {
        f->mask = mask;
    }
}

void ab_loop_del_fd(struct ab_loop *l, int fd)
{
    struct loop_fd *f = find_fd(l, fd);

    if (f) {
        *f = l->fds[--l->nfds];
    }
}

uint64_t ab_loop_add_timer(struct ab_loop *l, int64_t delay_us, int64_t period_us,
                           ab_loop_timer_fn fn, void *arg, struct ab_error *err)
{
    for (unsigned i = 0; i < AB_LOOP_MAX_TIMERS; i++) {
        struct loop_timer *t = &l->timers[i];

        if (t->id == 0) {
            t->id = l->next_id++;
            t->due_us = ab_now_us() + (delay_us > 0 ? delay_us : 0);
            t->period_us = period_us > 0 ? period_us : 0;
            t->fn = fn;
            t->arg = arg;
            return t->id;
        }
    }
    (void)ab_error_set(err, AB_ERR_INTERNAL, "event loop: more than %d timers", AB_LOOP_MAX_TIMERS);
    return 0;
}

/* Slot of an armed timer, or -1. */
static int find_timer(const struct ab_loop *l, uint64_t id)
{
    for (int i = 0; id && i < AB_LOOP_MAX_TIMERS; i++) {
        if (l->timers[i].id == id) {
            return i;
        }
    }
    return -1;
}

void ab_loop_del_timer(struct ab_loop *l, uint64_t id)
{
    int i = find_timer(l, id);

    if (i >= 0) {
        l->timers[i].id = 0;
    }
}

bool ab_loop_timer_armed(const struct ab_loop *l, uint64_t id)
{
    return find_timer(l, id) >= 0;
}

void ab_loop_set_http(struct ab_loop *l, struct ab_http *h)
{
    if (l->http == h) {
        return;
    }
    if (l->http) {
        ab_http_set_loop(l->http, NULL);
    }
    l->http = h;
    if (h) {
        ab_http_set_loop(h, l);
    }
}

struct ab_http *ab_loop_http(const struct ab_loop *l)
{
    return l->http;
}

void ab_loop_set_before_wait(struct ab_loop *l, ab_loop_hook_fn fn, void *arg)
{
    l->before_wait = fn;
    l->before_wait_arg = arg;
}

void ab_loop_wake(struct ab_loop *l)
{
    l->woken = true;
}

void ab_loop_stop(struct ab_loop *l)
{
    l->stop = true;
}

/* Milliseconds until the nearest timer (rounded up), capped by max_wait_ms;
 * -1 when neither limits the wait. */
static long wait_ms(const struct ab_loop *l, long max_wait_ms, int64_t now)
{
    long ms = max_wait_ms;

    for (unsigned i = 0; i < AB_LOOP_MAX_TIMERS; i++) {
        const struct loop_timer *t = &l->timers[i];
        int64_t left;
        long tm;

        if (t->id == 0) {
            continue;
        }
        left = t->due_us - now;
        tm = left <= 0 ? 0
                       : (left >= (int64_t)INT_MAX * 1000 ? INT_MAX : (long)((left + 999) / 1000));
        if (ms < 0 || tm < ms) {
            ms = tm;
        }
    }
    return ms;
}

/* The one poll(2) of a turn; *n gets the entries of l->pfd it filled. */
static enum ab_status wait_fds(struct ab_loop *l, long ms, unsigned *n, struct ab_error *err)
{
    struct pollfd *pfd = l->pfd;
    unsigned k = 0;

    for (unsigned i = 0; i < l->nfds; i++) {
        if (l->fds[i].mask == 0) {
            continue;
        }
        pfd[k].fd = l->fds[i].fd;
        pfd[k].events = (short)(((l->fds[i].mask & AB_LOOP_READ) ? POLLIN : 0) |
                                ((l->fds[i].mask & AB_LOOP_WRITE) ? POLLOUT : 0));
        pfd[k].revents = 0;
        k++;
    }
    *n = k;
    if (k == 0 && ms < 0) {
        return ab_error_set(err, AB_ERR_INTERNAL, "event loop: nothing to wait for");
    }
    if (k == 0 && ms == 0) {
        return AB_OK; /* a due timer and nothing to poll: no system call */
    }
    if (poll(pfd, k, ms > INT_MAX ? INT_MAX : (int)ms) < 0 && errno != EINTR) {
        return ab_error_set(err, AB_ERR_IO, "poll failed: %s", strerror(errno));
    }
    return AB_OK;
}

static enum ab_status dispatch_fds(struct ab_loop *l, unsigned n, struct ab_error *err)
{
    const struct pollfd *pfd = l->pfd;

    for (unsigned i = 0; i < n && !l->stop; i++) {
        struct loop_fd *f;
        unsigned ready = 0;
        enum ab_status rc;

        if (pfd[i].revents == 0) {
            continue;
        }
        /* a callback may have removed or paused it */
        f = find_fd(l, pfd[i].fd);
        if (!f) {
            continue;
        }
        if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) {
            ready |= AB_LOOP_READ;
        }
        if (pfd[i].revents & POLLOUT) {
            ready |= AB_LOOP_WRITE;
        }
        if (pfd[i].revents & (POLLHUP | POLLERR | POLLNVAL)) {
            ready |= AB_LOOP_ERROR;
        }
        ready &=
            f->mask |
            ((pfd[i].revents & (POLLHUP | POLLERR | POLLNVAL)) ? AB_LOOP_READ | AB_LOOP_ERROR : 0);
        if (!ready) {
            continue;
        }
        rc = f->fn(f->arg, f->fd, ready, err);
        if (rc != AB_OK) {
            return rc;
        }
    }
    return AB_OK;
}

/* Fires the timers due at the start of the turn, earliest first (an overdue
 * timer never waits behind a later one in a lower slot). Ids are taken
 * before the first call: a timer a callback adds, or re-arms, waits for the
 * next turn, and one a callback deletes does not fire. */
static enum ab_status fire_timers(struct ab_loop *l, struct ab_error *err)
{
    uint64_t due_ids[AB_LOOP_MAX_TIMERS] = {0};
    int64_t due_at[AB_LOOP_MAX_TIMERS] = {0};
    unsigned n = 0;
    int64_t now = ab_now_us();

    for (unsigned i = 0; i < AB_LOOP_MAX_TIMERS; i++) {
        const struct loop_timer *t = &l->timers[i];
        unsigned j;

        if (t->id == 0 || t->due_us > now) {
            continue;
        }
        /* insertion sort by due time; ties keep slot order */
        for (j = n; j > 0 && due_at[j - 1] > t->due_us; j--) {
            due_ids[j] = due_ids[j - 1];
            due_at[j] = due_at[j - 1];
        }
        due_ids[j] = t->id;
        due_at[j] = t->due_us;
        n++;
    }
    for (unsigned k = 0; k < n && !l->stop; k++) {
        int i = find_timer(l, due_ids[k]);
        struct loop_timer *t;
        ab_loop_timer_fn fn;
        void *arg;
        enum ab_status rc;

        if (i < 0) {
            continue; /* deleted by an earlier callback of this turn */
        }
        t = &l->timers[i];
        AB_ASSERT(t->due_us <= now);
        fn = t->fn;
        arg = t->arg;
        if (t->period_us > 0) {
            /* no burst of catch-up calls after a long stall */
            t->due_us = now + t->period_us;
        } else {
            t->id = 0;
        }
        rc = fn(arg, due_ids[k], err);
        if (rc != AB_OK) {
            return rc;
        }
    }
    return AB_OK;
}

enum ab_status ab_loop_turn(struct ab_loop *l, long max_wait_ms, struct ab_error *err)
{
    unsigned n = 0;
    enum ab_status rc;
    long ms;

    AB_ASSERT(!l->in_turn);
    l->in_turn = true;
    l->stop = false;
    if (l->before_wait) {
        rc = l->before_wait(l->before_wait_arg, err);
        if (rc != AB_OK || l->stop) {
            l->in_turn = false;
            return rc;
        }
    }
    ms = l->woken ? 0 : wait_ms(l, max_wait_ms, ab_now_us());
    l->woken = false;
    rc = wait_fds(l, ms, &n, err);
    if (rc == AB_OK) {
        rc = dispatch_fds(l, n, err);
    }
    if (rc == AB_OK) {
        rc = fire_timers(l, err);
    }
    l->in_turn = false;
    return rc;
}

enum ab_status ab_loop_run(struct ab_loop *l, struct ab_error *err)
{
    enum ab_status rc;

    do {
        rc = ab_loop_turn(l, -1, err);
    } while (rc == AB_OK && !l->stop);
    return rc;
}
