/* clock.c - the two clocks of the core, and the fake clock for unit tests. */
/* SPDX-License-Identifier: MIT */
#include "ab/clock.h"

#include <time.h>

#include "clock_int.h"

/* The fake clock: off in every binary; only unit tests switch it on. */
static struct {
    bool on;
    int64_t mono_us;
    int64_t wall_us;
} fake;

int64_t ab_now_us(void)
{
    struct timespec ts;

    if (fake.on) {
        return fake.mono_us;
    }
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return 0;
    }
    return (int64_t)ts.tv_sec * 1000000 + (int64_t)ts.tv_nsec / 1000;
}

int64_t ab_wall_ms(void)
{
    struct timespec ts;

    if (fake.on) {
        return fake.wall_us / 1000;
    }
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        return 0;
    }
    return (int64_t)ts.tv_sec * 1000 + (int64_t)ts.tv_nsec / 1000000;
}

void ab_clock_fake_set(int64_t mono_us, int64_t wall_ms)
{
    fake.on = true;
    fake.mono_us = mono_us;
    fake.wall_us = wall_ms * 1000;
}

void ab_clock_fake_advance(int64_t us)
{
    fake.mono_us += us;
    fake.wall_us += us;
}

void ab_clock_fake_off(void)
{
    fake.on = false;
}

bool ab_clock_is_fake(void)
{
    return fake.on;
}
