/* clock_int.h - internals of clock.c: the fake clock for unit tests. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_CLOCK_INT_H
#define AB_CLOCK_INT_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Test hook. While the fake clock is on, ab_now_us() returns mono_us and
 * ab_wall_ms() returns wall_ms, both moving only through
 * ab_clock_fake_advance(). Not thread-safe: set it up before the code under
 * test runs, from the test's only thread. Code that waits on the clock
 * (ab_http_wait) must not run under it: time would never pass.
 */
void ab_clock_fake_set(int64_t mono_us, int64_t wall_ms);
/* Moves both fake clocks forward by us microseconds (wall: us / 1000 ms). */
void ab_clock_fake_advance(int64_t us);
/* Back to the system clocks. */
void ab_clock_fake_off(void);
bool ab_clock_is_fake(void);

#endif
