/* http_int.h - internals of http.c exposed to its unit tests. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_HTTP_INT_H
#define AB_HTTP_INT_H

#include <stdint.h>

/*
 * Private: only http.c and tests/test_http.c include this header (the "_int"
 * suffix marks internals and test hooks; connectors use ab/http.h). Pure
 * functions, no state of their own, any thread.
 */

/* Parses a Retry-After value (delta seconds or an HTTP date: IMF-fixdate,
 * RFC 850, asctime) relative to now_unix_s; milliseconds, 0 for a date in
 * the past, -1 when NULL or unparseable. */
long ab_http_parse_retry_after(const char *value, int64_t now_unix_s);

/* Backoff delay in ms before retry attempt (1 = first retry), full jitter:
 * uniform in [0, min(max_ms, base_ms * 2^(attempt-1))]. rng is a xorshift
 * state updated in place; 0 when base_ms or max_ms <= 0. */
long ab_http_backoff_ms(long base_ms, long max_ms, int attempt, uint64_t *rng);

/* Token bucket: refills at rate per second up to burst (<= 0: max(1, rate));
 * rate <= 0 never limits. ab_ratelimit_take() returns 0 when a token was
 * taken at now_us, else the ms to wait (>= 1) before one is available. */
struct ab_ratelimit {
    double rate;
    double burst;
    double tokens;
    int64_t last_us;
};
void ab_ratelimit_init(struct ab_ratelimit *rl, double rate, double burst, int64_t now_us);
long ab_ratelimit_take(struct ab_ratelimit *rl, int64_t now_us);

#endif
