/* clock.h - the two clocks of the core: monotonic for intervals, wall for stamps. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_CLOCK_H
#define AB_CLOCK_H

#include <stdint.h>

/*
 * Thread-safe, never fail. Unit tests can replace both clocks with a fake
 * one (common/src/clock_int.h); production code never does.
 */

/* Monotonic clock (CLOCK_MONOTONIC) in microseconds: deadlines, timeouts,
 * rates. Its origin is arbitrary; only differences mean something. */
int64_t ab_now_us(void);

/* Wall clock (CLOCK_REALTIME) in milliseconds since the Unix epoch: time
 * stamps that leave the process (log and trace messages). May jump. */
int64_t ab_wall_ms(void);

#endif
