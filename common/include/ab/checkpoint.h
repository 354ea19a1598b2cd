/* checkpoint.h - which records each STATE covers, and when it may go out. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_CHECKPOINT_H
#define AB_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ab/error.h"

/*
 * Records get sequence numbers in input order (ab_ckpt_record()). A STATE
 * taken at sequence P covers the records with seq < P of its scope: its
 * stream for a STREAM state, every stream for GLOBAL and LEGACY. A state for a
 * stream outside the catalog covers nothing.
 *
 * A destination groups records into "units" (a batch, a transactional import)
 * and says when a unit is committed by the target. Only records that joined a
 * unit hold states back, so a destination adds each record to a unit (or
 * rejects it with ab_ckpt_reject()) before control returns to the driver.
 *
 * A state is released when every earlier state has been released and no live
 * (uncommitted) unit holds a record of its scope with seq < P. States leave in
 * exactly the order they arrived.
 *
 * Counts follow the protocol: recordCount is the number of records of the
 * state's scope received since the previous state of the same scope, minus
 * the rejected ones; rejectedRecordCount counts those rejected. A rejection
 * reported after its state arrived (the target rejects at commit) is charged
 * to the earliest pending state covering it.
 *
 * Sequence numbers start at 0, so a state queued after n records covers
 * seq < n. In a sync mixing STREAM and GLOBAL states, a STREAM state counts
 * the records of its stream since the previous STREAM state of that stream or
 * GLOBAL state, and a GLOBAL state counts every record since the previous
 * state of any type (never one a STREAM state already counted); rejections
 * are charged the same way, so that for each state
 * recordCount + rejectedRecordCount = records received in its window.
 */
struct ab_ckpt;

#define AB_CKPT_NO_STREAM ((size_t)-1)

enum ab_ckpt_scope { AB_CKPT_STREAM = 0, AB_CKPT_GLOBAL };

/* Called for each released state, in order; members as given to
 * ab_ckpt_state() (borrowed for the call, NUL-terminated). record_count is
 * the destinationStats.recordCount to write: records received in the state's
 * window minus rejected_count. A failure stops the release and is returned;
 * the state stays pending and the next ab_ckpt_release() offers it again. */
typedef enum ab_status (*ab_ckpt_emit_fn)(void *arg, const char *members, size_t len,
                                          uint64_t record_count, uint64_t rejected_count,
                                          struct ab_error *err);

struct ab_ckpt *ab_ckpt_new(size_t nstreams, struct ab_error *err);
void ab_ckpt_free(struct ab_ckpt *ck);

/* Counts a received record of stream and returns its sequence number. */
uint64_t ab_ckpt_record(struct ab_ckpt *ck, size_t stream);

/* Queues a state (members copied). stream is the catalog index for a STREAM
 * scope, or AB_CKPT_NO_STREAM for a stream not in the catalog. now_us is the
 * arrival time (for ab_ckpt_oldest_us()). */
enum ab_status ab_ckpt_state(struct ab_ckpt *ck, enum ab_ckpt_scope scope, size_t stream,
                             const char *members, size_t len, int64_t now_us, struct ab_error *err);

/* A mark: a position (pos <= records received, >= the last queued position)
 * released like a GLOBAL state once every record before it is committed,
 * but with no counts and never charged a rejection. load records with marks
 * how far its input files are committed. */
enum ab_status ab_ckpt_mark(struct ab_ckpt *ck, uint64_t pos, const char *members, size_t len,
                            int64_t now_us, struct ab_error *err);
/* Units opened so far (a unit opened by a record starts at that record). */
uint64_t ab_ckpt_units_opened(const struct ab_ckpt *ck);

/* A new unit; ids grow from 1. Returns 0 (err filled) when out of memory. */
uint64_t ab_ckpt_unit_open(struct ab_ckpt *ck, struct ab_error *err);
/* Adds a record (seq) of stream to a live unit. AB_ERR_INTERNAL for a unit
 * that is not live, a stream outside the catalog or a seq not received. */
enum ab_status ab_ckpt_unit_add(struct ab_ckpt *ck, uint64_t unit, size_t stream, uint64_t seq,
                                struct ab_error *err);
/* The unit is committed in the target: its records no longer hold states.
 * Its memory is freed; an unknown or committed unit is ignored. */
void ab_ckpt_unit_done(struct ab_ckpt *ck, uint64_t unit);

/* The record (seq of stream) was rejected: counted in rejectedRecordCount of
 * the state covering it. Report it before the unit holding it is done (or
 * before the next state when it joined no unit): a later rejection is charged
 * to the next state of the scope. */
void ab_ckpt_reject(struct ab_ckpt *ck, size_t stream, uint64_t seq);

/* True when every record of stream with a sequence number below seq that
 * joined a unit is committed (orders wait on earlier customers). */
bool ab_ckpt_committed_before(const struct ab_ckpt *ck, size_t stream, uint64_t seq);

/* Releases every releasable state through emit, in order. *released (may be
 * NULL) receives how many went out. */
enum ab_status ab_ckpt_release(struct ab_ckpt *ck, ab_ckpt_emit_fn emit, void *arg,
                               size_t *released, struct ab_error *err);

/* States waiting. */
size_t ab_ckpt_pending(const struct ab_ckpt *ck);
/* Arrival time of the oldest waiting state, or -1 when none waits. */
int64_t ab_ckpt_oldest_us(const struct ab_ckpt *ck);
/* Live units. */
size_t ab_ckpt_live_units(const struct ab_ckpt *ck);

struct ab_ckpt_stats {
    uint64_t records;
    uint64_t rejected;
    uint64_t states_in;
    uint64_t states_out;
};
void ab_ckpt_get_stats(const struct ab_ckpt *ck, struct ab_ckpt_stats *out);

#endif
