/* reject_limit_int.h - rejection thresholds of a write run (driver internal). */
/* SPDX-License-Identifier: MIT */
#ifndef AB_REJECT_LIMIT_INT_H
#define AB_REJECT_LIMIT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ab/error.h"

/*
 * Counts records and rejections per stream and the rejections' error codes,
 * and says when a threshold is crossed:
 *  - max_rejected_ratio: a stream with at least min_records records has more
 *    than this share of them rejected (1 never trips);
 *  - max_rejected_records: more rejections than this in the sync (0: none).
 * A rejection whose errors name a config "option" (a problem object
 * {"field","code","message","option"}: setting that option would have avoided
 * it, such as a default the config leaves unset) counts as caused by the
 * config. The error of a crossed threshold is AB_ERR_CONFIG when at least
 * half of the rejections were caused by the config, AB_ERR_REJECTED
 * (system_error) otherwise, and names the most frequent error codes with
 * their counts and one message of each.
 *
 * Memory: two counters per stream and at most RL_CODES codes (the rest count
 * as "other"). Single-threaded, owned by the driver.
 */
struct ab_rejlimit;

struct ab_rejlimit *ab_rejlimit_new(size_t nstreams, double max_ratio, uint64_t min_records,
                                    uint64_t max_records, struct ab_error *err);
void ab_rejlimit_free(struct ab_rejlimit *rl);

/* A record of stream (catalog index) was received. */
void ab_rejlimit_record(struct ab_rejlimit *rl, size_t stream);

/* A record of stream was rejected with errors_json (a JSON array of problem
 * objects; anything else counts as code "unknown"). stream_desc names the
 * stream for the message. AB_OK while under the thresholds; the error of the
 * first crossing otherwise (and AB_OK again after it: the caller stops). */
enum ab_status ab_rejlimit_reject(struct ab_rejlimit *rl, size_t stream, const char *stream_desc,
                                  const char *errors_json, struct ab_error *err);

/* "missing_field 120, invalid_type 3" (the most frequent codes first, at
 * most 3) into out, always NUL-terminated; "" when nothing was rejected. */
void ab_rejlimit_top(const struct ab_rejlimit *rl, char *out, size_t size);

#endif
