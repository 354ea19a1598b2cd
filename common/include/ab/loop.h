/* loop.h - the event loop: file descriptors, timers and the HTTP client. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_LOOP_H
#define AB_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "ab/error.h"

/*
 * One loop per run, single-threaded (redis' ae.c in miniature): every call
 * on a loop, and every callback it makes, happens on the thread that made
 * it. Everything a connector waits for is registered here: file descriptors
 * (stdin, a signal pipe, a libpq socket, a subprocess pipe, the HTTP
 * client's sockets), and timers (one-shot or periodic; the HTTP client's
 * curl timeout and retry/rate-limit wake-up among them). A turn:
 *
 *   1. the before-wait hook runs (the driver advances its phase there);
 *   2. one poll(2) over every watched descriptor, until one is ready or the
 *      nearest timer is due (not at all when a timer is already due);
 *   3. ready descriptors' callbacks run, then every due timer's.
 *
 * The loop knows nothing of HTTP: the client attached with ab_loop_set_http()
 * registers its sockets and its timer like any other (see ab/http.h), and
 * its completion callbacks run inside those descriptor and timer callbacks.
 *
 * Callbacks run only inside ab_loop_turn()/ab_loop_run() and may add and
 * delete descriptors and timers (their own included). A callback that
 * returns non-OK ends the turn: ab_loop_turn()/ab_loop_run() return that
 * status with err as the callback filled it. ab_loop_turn() must not be
 * called from a callback of the same loop (asserted).
 */
struct ab_loop;
struct ab_http;

#define AB_LOOP_READ  1U /* readable, or hung up / in error (the read says which) */
#define AB_LOOP_WRITE 2U
/* In ready only, with AB_LOOP_READ: POLLHUP, POLLERR or POLLNVAL was reported. */
#define AB_LOOP_ERROR 4U

/* Most descriptors one loop watches at once, the HTTP client's sockets
 * included (curl keeps at most 2 x max_in_flight <= 128 connections in its
 * cache, plus those being opened). The table starts with 16 entries and
 * doubles as descriptors are added, up to this bound. */
#define AB_LOOP_MAX_FDS 512
/* Most timers armed at once. */
#define AB_LOOP_MAX_TIMERS 32

/* ready: the AB_LOOP_* conditions that hold. */
typedef enum ab_status (*ab_loop_fd_fn)(void *arg, int fd, unsigned ready, struct ab_error *err);
typedef enum ab_status (*ab_loop_timer_fn)(void *arg, uint64_t id, struct ab_error *err);
typedef enum ab_status (*ab_loop_hook_fn)(void *arg, struct ab_error *err);

/* NULL with err set (AB_ERR_NOMEM) on failure. */
struct ab_loop *ab_loop_new(struct ab_error *err);
/* Frees the loop (not from its callbacks); registered descriptors are not
 * closed; the client of ab_loop_set_http() is detached. NULL is ignored. */
void ab_loop_free(struct ab_loop *l);

/* Watches fd for the conditions in mask (0: registered, not watched).
 * AB_ERR_INTERNAL when fd is already registered or the table is full,
 * AB_ERR_NOMEM when it cannot grow. */
enum ab_status ab_loop_add_fd(struct ab_loop *l, int fd, unsigned mask, ab_loop_fd_fn fn, void *arg,
                              struct ab_error *err);
/* Changes what fd is watched for (back-pressure: 0 pauses it). An unknown
 * fd is ignored. */
void ab_loop_fd_mask(struct ab_loop *l, int fd, unsigned mask);
/* Stops watching fd (not closed). An unknown fd is ignored. */
void ab_loop_del_fd(struct ab_loop *l, int fd);

/* Arms a timer due after delay_us, then every period_us (0: once; a one-shot
 * timer is deleted before its callback runs). Returns its id (> 0), or 0
 * with err set (AB_ERR_INTERNAL) when AB_LOOP_MAX_TIMERS are armed. */
uint64_t ab_loop_add_timer(struct ab_loop *l, int64_t delay_us, int64_t period_us,
                           ab_loop_timer_fn fn, void *arg, struct ab_error *err);
/* Disarms a timer; 0 and ids no longer armed are ignored. */
void ab_loop_del_timer(struct ab_loop *l, uint64_t id);
/* True while the timer is armed. */
bool ab_loop_timer_armed(const struct ab_loop *l, uint64_t id);

/* The client whose sockets and timer this loop watches (borrowed; NULL:
 * none): calls ab_http_set_loop(h, l) (and ab_http_set_loop(old, NULL) for
 * a previous client). Its completion callbacks then run inside this loop's
 * descriptor and timer callbacks. Freeing either detaches the client. */
void ab_loop_set_http(struct ab_loop *l, struct ab_http *h);
struct ab_http *ab_loop_http(const struct ab_loop *l);

/* Called at the start of every turn, before waiting. */
void ab_loop_set_before_wait(struct ab_loop *l, ab_loop_hook_fn fn, void *arg);

/* The next wait returns at once (more work is ready without any event). */
void ab_loop_wake(struct ab_loop *l);

/* One turn, waiting at most max_wait_ms (< 0: until something happens). */
enum ab_status ab_loop_turn(struct ab_loop *l, long max_wait_ms, struct ab_error *err);
/* Turns until ab_loop_stop() is called (from a callback or the hook) or a
 * callback fails. */
enum ab_status ab_loop_run(struct ab_loop *l, struct ab_error *err);
void ab_loop_stop(struct ab_loop *l);

#endif
