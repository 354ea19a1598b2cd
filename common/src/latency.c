/* latency.c - request latencies kept for a run's summary. */
/* SPDX-License-Identifier: MIT */
#include "ab/latency.h"

#include <stdio.h>
#include <stdlib.h>

#include "ab/assert.h"

void ab_latency_add(struct ab_latency *l, int64_t us, int attempts)
{
    AB_ASSERT(l != NULL);
    l->us[l->n % AB_LATENCY_KEEP] = us;
    l->n++;
    if (us > l->max_us) {
        l->max_us = us;
    }
    l->retried += attempts > 1 ? (uint64_t)(attempts - 1) : 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

void ab_latency_quantiles(struct ab_latency *l, double *p50_ms, double *p95_ms, double *max_ms)
{
    size_t n = l->n < AB_LATENCY_KEEP ? (size_t)l->n : AB_LATENCY_KEEP;

    *p50_ms = *p95_ms = *max_ms = 0;
    if (n == 0) {
        return;
    }
    qsort(l->us, n, sizeof(l->us[0]), cmp_i64);
    *p50_ms = (double)l->us[(n - 1) / 2] / 1e3;
    *p95_ms = (double)l->us[(n * 95 - 1) / 100] / 1e3;
    *max_ms = (double)l->max_us / 1e3;
}

void ab_latency_text(struct ab_latency *l, char *out, size_t size)
{
    double p50;
    double p95;
    double max;

    if (l->n == 0) {
        (void)snprintf(out, size, "no requests");
        return;
    }
    ab_latency_quantiles(l, &p50, &p95, &max);
    (void)snprintf(out, size, "request latency p50 %.1f ms, p95 %.1f ms, max %.1f ms", p50, p95,
                   max);
}
