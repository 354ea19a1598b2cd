/* loop.h - the event loop: file descriptors, timers and the HTTP client. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_LOOP_H
#define AB_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "ab/error.h"

/*
 * One loop per run, single-threaded (redis' ae.c in miniature). Everything a
 * connector waits for is registered here: file descriptors (stdin, a signal
 * pipe, a libpq socket, a subprocess pipe), timers (one-shot or periodic),
 * and the HTTP client, whose sockets are polled together with the
 * descriptors. A turn:
 *
 *   1. the before-wait hook runs (the driver advances its phase there);
 *   2. the loop waits until a descriptor is ready, an HTTP transfer needs
 *      attention or completes, or the nearest timer is due;
 *   3. ready descriptors' callbacks run, then every due timer's.
 *
 * Callbacks run only inside ab_loop_turn()/ab_loop_run() and may add and
 * delete descriptors and timers (their own included). A callback that
 * returns non-OK ends the turn: ab_loop_turn()/ab_loop_run() return that
 * status with err as the callback filled it.
 */
struct ab_loop;
struct ab_http;

#define AB_LOOP_READ  1U /* readable, or hung up / in error (the read says which) */
#define AB_LOOP_WRITE 2U

/* Most descriptors one loop watches at once (besides the HTTP sockets). */
#define AB_LOOP_MAX_FDS 16
/* Most timers armed at once. */
#define AB_LOOP_MAX_TIMERS 32

/* ready: the AB_LOOP_* conditions that hold. */
typedef enum ab_status (*ab_loop_fd_fn)(void *arg, int fd, unsigned ready, struct ab_error *err);
typedef enum ab_status (*ab_loop_timer_fn)(void *arg, uint64_t id, struct ab_error *err);
typedef enum ab_status (*ab_loop_hook_fn)(void *arg, struct ab_error *err);

/* NULL with err set (AB_ERR_NOMEM) on failure. */
struct ab_loop *ab_loop_new(struct ab_error *err);
/* Frees the loop; registered descriptors are not closed. NULL is ignored. */
void ab_loop_free(struct ab_loop *l);

/* Watches fd for the conditions in mask (0: registered, not watched).
 * AB_ERR_INTERNAL when fd is already registered or the table is full. */
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

/* The client whose sockets and timeouts the loop drives (borrowed; NULL:
 * none). Its completion callbacks run during the wait of a turn. */
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
