/* spool.h - append-only record store: RAM up to a budget, then a temporary file. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_SPOOL_H
#define AB_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ab/buf.h"
#include "ab/error.h"

/*
 * A spool keeps records (opaque byte strings) in the order they were
 * appended, so a destination can send them again (re-upload after an expired
 * import) or find one again by its offset (a rejection reported later by the
 * target). Memory use is bounded whatever the volume: the first bytes live in
 * RAM chunks taken from a budget, and once the budget is spent every further
 * byte goes to a temporary file. The file is created with mkstemp() in the
 * configured directory only when first needed, and unlinked at once: nothing
 * is left behind, even after a crash.
 *
 * Records are addressed by offset: the value ab_spool_append() returns.
 * Offsets grow with every append and stay valid until a truncate or reset
 * drops the record. Errors are sticky: after an I/O failure every call
 * returns that error.
 *
 * Single-threaded; a budget may be shared by several spools of one thread.
 */
struct ab_spool;

/* Shared RAM budget (caller-owned value struct, fields private: use the API).
 * It must outlive every spool using it. Chunks a spool gives back (a
 * truncate, a reset, a free) stay with the budget for the next spool that
 * needs one, so a destination that fills and drops its spools at every
 * commit does not make the kernel zero fresh pages each time: used + cached
 * never exceeds limit, and ab_spool_budget_release() frees the cached ones. */
struct ab_spool_budget {
    size_t limit;
    size_t used;   /* bytes of chunks held by spools */
    size_t cached; /* bytes of chunks given back, kept for reuse */
    char *free;    /* the cached chunks, linked through their first bytes */
};

void ab_spool_budget_init(struct ab_spool_budget *b, size_t limit);
/* Frees the cached chunks (every spool of the budget freed first). */
void ab_spool_budget_release(struct ab_spool_budget *b);
/* Bytes of RAM the budget holds: chunks in spools and cached ones. Chunks
 * are kept until the release, so this is also the most it ever held. */
size_t ab_spool_budget_held(const struct ab_spool_budget *b);

struct ab_spool_opts {
    size_t memory_bytes;            /* RAM budget of this spool when budget is NULL */
    struct ab_spool_budget *budget; /* borrowed, shared; NULL: use memory_bytes */
    const char *dir;                /* copied; NULL or "": $TMPDIR, else /tmp */
    size_t max_record;              /* largest record; 0: AB_SPOOL_MAX_RECORD */
};

#define AB_SPOOL_MAX_RECORD ((size_t)1 << 30)
/* RAM is taken from the budget in chunks of this size. */
#define AB_SPOOL_CHUNK ((size_t)256 * 1024)

/* memory_bytes 64 MiB, no shared budget, default dir, default max_record. */
void ab_spool_opts_init(struct ab_spool_opts *o);

/* The options are copied. Touches no file yet. */
struct ab_spool *ab_spool_new(const struct ab_spool_opts *o, struct ab_error *err);
/* Frees RAM back to the budget and closes the file; NULL-safe. */
void ab_spool_free(struct ab_spool *sp);

/* Appends one record (n bytes, n <= max_record) and sets *off (may be NULL)
 * to its offset. A record over max_record is AB_ERR_PROTOCOL; a file that
 * cannot be created or written is AB_ERR_IO (sticky). */
enum ab_status ab_spool_append(struct ab_spool *sp, const void *p, size_t n, uint64_t *off,
                               struct ab_error *err);
/* Same, with the record given in two pieces (a header and a body). */
enum ab_status ab_spool_append2(struct ab_spool *sp, const void *a, size_t na, const void *b,
                                size_t nb, uint64_t *off, struct ab_error *err);
/* Same, in three pieces (a header and two bodies). */
enum ab_status ab_spool_append3(struct ab_spool *sp, const void *a, size_t na, const void *b,
                                size_t nb, const void *c, size_t nc, uint64_t *off,
                                struct ab_error *err);

/* Reads the record at off (an offset from append, or a *next) into out,
 * which is reset first. *next (may be NULL) receives the offset of the
 * following record, equal to ab_spool_end() after the last one. An offset at
 * or past the end is AB_ERR_INTERNAL. */
enum ab_status ab_spool_read(struct ab_spool *sp, uint64_t off, struct ab_buf *out, uint64_t *next,
                             struct ab_error *err);

/* Copies n bytes from position pos of the record at off into dst, without
 * reading the rest of it (a header, then only the part of the record the
 * caller needs, where it needs it). *len (may be NULL) receives the
 * record's length and *next (may be NULL) the offset of the following
 * record. pos + n past the record's length, or an offset that is not a
 * record, is AB_ERR_INTERNAL. */
enum ab_status ab_spool_read_at(struct ab_spool *sp, uint64_t off, size_t pos, void *dst, size_t n,
                                size_t *len, uint64_t *next, struct ab_error *err);

/* The record at off without copying it, when its bytes lie in one RAM
 * chunk (the usual case): *p points at them (valid until a truncate,
 * reset or free drops the record), *len is its length and *next (may be
 * NULL) the offset of the following record; true. False when the record
 * is split across chunks or lies in the file, when off is at or past the
 * end, or after an error: ab_spool_read_at() then reads it (or says what
 * is wrong). off must be an offset from append or a *next. */
bool ab_spool_peek(struct ab_spool *sp, uint64_t off, const char **p, size_t *len, uint64_t *next);

/* Iteration from a given offset (0: the first record). Value struct. */
struct ab_spool_iter {
    struct ab_spool *sp;
    uint64_t off;
};
void ab_spool_iter_init(struct ab_spool_iter *it, struct ab_spool *sp, uint64_t from);
/* The next record into out (reset first): true when one was read, false at
 * the end or on error (then *rc is the error, else AB_OK). */
bool ab_spool_iter_next(struct ab_spool_iter *it, struct ab_buf *out, enum ab_status *rc,
                        struct ab_error *err);

/* Offset one past the last record (0 when empty). */
uint64_t ab_spool_end(const struct ab_spool *sp);
/* Records stored. */
uint64_t ab_spool_count(const struct ab_spool *sp);
/* Bytes held in RAM (chunks taken from the budget). */
size_t ab_spool_memory(const struct ab_spool *sp);
/* Bytes stored in the temporary file (0 when it was never needed). */
uint64_t ab_spool_file_bytes(const struct ab_spool *sp);

/* Drops every record at or after off (a record offset or the end); RAM
 * beyond it goes back to the budget and the file shrinks. Later appends
 * continue at off. */
enum ab_status ab_spool_truncate(struct ab_spool *sp, uint64_t off, struct ab_error *err);
/* Drops everything (after a commit): truncate to 0. */
enum ab_status ab_spool_reset(struct ab_spool *sp, struct ab_error *err);

/* Checks that a spool file can be created in dir (NULL: the default), for
 * check: creates, unlinks and closes one. AB_ERR_CONFIG naming the directory
 * otherwise. */
enum ab_status ab_spool_probe_dir(const char *dir, struct ab_error *err);

#endif
