/* buf.c - growable byte buffer with a hard cap. */
/* SPDX-License-Identifier: MIT */
#include "ab/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/assert.h"

/*
 * Invariants (checked with AB_ASSERT): len <= max, and when data is set,
 * len < cap and data[len] == '\0'; without data, len == 0 and cap == 0.
 */
#define BUF_OK(b)                                                                                  \
    ((b)->len <= (b)->max && ((b)->data ? (b)->len < (b)->cap && (b)->data[(b)->len] == '\0'       \
                                        : (b)->len == 0 && (b)->cap == 0))

void ab_buf_init(struct ab_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void ab_buf_release(struct ab_buf *b)
{
    free(b->data);
    ab_buf_init(b, b->max);
}

void ab_buf_reset(struct ab_buf *b)
{
    b->len = 0;
    if (b->data) {
        b->data[0] = '\0';
    }
}

enum ab_status ab_buf_reserve(struct ab_buf *b, size_t extra, struct ab_error *err)
{
    size_t need;
    size_t cap;
    char *p;

    AB_ASSERT(BUF_OK(b));
    if (extra > b->max || b->len > b->max - extra) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "data exceeds the limit of %zu bytes", b->max);
    }
    need = b->len + extra + 1;
    if (need <= b->cap) {
        return AB_OK;
    }
    cap = b->cap ? b->cap : 256;
    while (cap < need) {
        cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
    }
    p = realloc(b->data, cap);
    if (!p) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (buffer of %zu bytes)", cap);
    }
    p[b->len] = '\0'; /* a first allocation has none yet */
    b->data = p;
    b->cap = cap;
    AB_ASSERT(BUF_OK(b));
    return AB_OK;
}

enum ab_status ab_buf_add(struct ab_buf *b, const void *p, size_t n, struct ab_error *err)
{
    enum ab_status rc = ab_buf_reserve(b, n, err);

    if (rc != AB_OK) {
        return rc;
    }
    if (n) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    AB_ASSERT(BUF_OK(b));
    return AB_OK;
}

enum ab_status ab_buf_adds(struct ab_buf *b, const char *s, struct ab_error *err)
{
    return ab_buf_add(b, s, strlen(s), err);
}

enum ab_status ab_buf_addc(struct ab_buf *b, char c, struct ab_error *err)
{
    if (b->len + 1 < b->cap && b->len < b->max) {
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
        AB_ASSERT(BUF_OK(b));
        return AB_OK;
    }
    return ab_buf_add(b, &c, 1, err);
}

enum ab_status ab_buf_printf(struct ab_buf *b, struct ab_error *err, const char *fmt, ...)
{
    va_list ap;
    int n;
    enum ab_status rc;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return ab_error_set(err, AB_ERR_INTERNAL, "cannot format text");
    }
    rc = ab_buf_reserve(b, (size_t)n, err);
    if (rc != AB_OK) {
        return rc;
    }
    va_start(ap, fmt);
    (void)vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    AB_ASSERT(BUF_OK(b));
    return AB_OK;
}

char *ab_buf_detach(struct ab_buf *b, size_t *len)
{
    char *p = b->data;

    if (len) {
        *len = b->len;
    }
    ab_buf_init(b, b->max);
    return p;
}

void ab_buf_consume(struct ab_buf *b, size_t n)
{
    if (n >= b->len) {
        ab_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

void ab_buf_truncate(struct ab_buf *b, size_t len)
{
    AB_ASSERT(len <= b->len);
    if (len < b->len) {
        b->len = len;
        b->data[len] = '\0';
    }
}

enum ab_status ab_buf_read_file(const char *path, size_t max, struct ab_buf *out, char *why,
                                size_t whysz)
{
    const size_t chunk = 65536;
    enum ab_status rc = AB_OK;
    struct ab_error e;
    FILE *fp = fopen(path, "rb");

    ab_buf_init(out, AB_BUF_UNBOUNDED);
    if (!fp) {
        (void)strerror_r(errno, why, whysz);
        return AB_ERR_CONFIG;
    }
    ab_error_init(&e);
    for (;;) {
        size_t room = max - out->len;
        size_t want = room < chunk ? room : chunk;
        size_t n;

        if (room == 0) {
            if (fgetc(fp) != EOF) {
                (void)snprintf(why, whysz, "larger than %zu bytes", max);
                rc = AB_ERR_CONFIG;
            }
            break;
        }
        if (ab_buf_reserve(out, want, &e) != AB_OK) {
            (void)snprintf(why, whysz, "out of memory");
            rc = AB_ERR_NOMEM;
            break;
        }
        n = fread(out->data + out->len, 1, want, fp);
        out->len += n;
        out->data[out->len] = '\0';
        if (n < want) {
            break;
        }
    }
    if (rc == AB_OK && ferror(fp)) {
        (void)snprintf(why, whysz, "read error");
        rc = AB_ERR_CONFIG;
    }
    (void)fclose(fp);
    if (rc == AB_OK && !out->data && ab_buf_reserve(out, 1, &e) != AB_OK) {
        (void)snprintf(why, whysz, "out of memory");
        rc = AB_ERR_NOMEM;
    } else if (rc == AB_OK && out->len == 0) {
        out->data[0] = '\0';
    }
    if (rc != AB_OK) {
        ab_buf_release(out);
    }
    return rc;
}
