/* latency.h - request latencies kept for a run's summary (p50, p95, max). */
/* SPDX-License-Identifier: MIT */
#ifndef AB_LATENCY_H
#define AB_LATENCY_H

#include <stddef.h>
#include <stdint.h>

/*
 * The latencies of the last AB_LATENCY_KEEP requests of one kind (submission
 * to final answer, retries included), the maximum of all of them and the
 * retried attempts. Zero-initialised is empty; fixed size (memory bounded
 * whatever the run's length). Owned by the caller; not thread-safe (one
 * loop thread).
 */
#define AB_LATENCY_KEEP 4096

struct ab_latency {
    int64_t us[AB_LATENCY_KEEP];
    uint64_t n;       /* requests counted */
    int64_t max_us;   /* over all n */
    uint64_t retried; /* attempts after the first */
};

/* Counts one request that took us microseconds in attempts attempts. */
void ab_latency_add(struct ab_latency *l, int64_t us, int attempts);

/* p50, p95 and max in milliseconds (0 when no request was counted). Sorts
 * the kept samples. */
void ab_latency_quantiles(struct ab_latency *l, double *p50_ms, double *p95_ms, double *max_ms);

/* "request latency p50 12.3 ms, p95 40.1 ms, max 80.2 ms" (or "no
 * requests") into out (always terminated). Sorts the kept samples. */
void ab_latency_text(struct ab_latency *l, char *out, size_t size);

#endif
