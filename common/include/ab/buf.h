/* buf.h - growable byte buffer with a hard cap. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_BUF_H
#define AB_BUF_H

#include <stdbool.h>
#include <stddef.h>

#include "ab/error.h"

/*
 * Value struct, fields private: use the API. data is always NUL-terminated
 * when non-NULL (the NUL is not counted in len). Growth past max fails with
 * AB_ERR_PROTOCOL and leaves the buffer unchanged (curl dynbuf "toobig").
 * The pointer data moves when the buffer grows.
 */
struct ab_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
};

#define AB_BUF_UNBOUNDED ((size_t)-1)

void ab_buf_init(struct ab_buf *b, size_t max);
void ab_buf_release(struct ab_buf *b);
/* Keeps the allocation, empties the content. */
void ab_buf_reset(struct ab_buf *b);
/* Ensures room for extra more bytes (plus the NUL). */
enum ab_status ab_buf_reserve(struct ab_buf *b, size_t extra, struct ab_error *err);
enum ab_status ab_buf_add(struct ab_buf *b, const void *p, size_t n, struct ab_error *err);
enum ab_status ab_buf_adds(struct ab_buf *b, const char *s, struct ab_error *err);
enum ab_status ab_buf_addc(struct ab_buf *b, char c, struct ab_error *err);
enum ab_status ab_buf_printf(struct ab_buf *b, struct ab_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Hands the content to the caller (free() it) and re-initialises b. */
char *ab_buf_detach(struct ab_buf *b, size_t *len);
/* Drops the first n bytes. */
void ab_buf_consume(struct ab_buf *b, size_t n);
/* Truncates to len bytes (len <= b->len). */
void ab_buf_truncate(struct ab_buf *b, size_t len);

/* Reads a whole file of at most max bytes into out (initialised here;
 * NUL-terminated). On failure out is released, why holds the reason
 * (strerror text, "larger than N bytes", ...) and the status is
 * AB_ERR_CONFIG, or AB_ERR_NOMEM. */
enum ab_status ab_buf_read_file(const char *path, size_t max, struct ab_buf *out, char *why,
                                size_t whysz);

#endif
