/* jsonl_reader.c - splits a byte stream into lines of bounded length. */
/* SPDX-License-Identifier: MIT */
#include "ab/jsonl_reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

/*
 * One buffer holds [start, len): bytes not yet returned. Everything in
 * [start, scan_at) has been checked by feed()/fill(): every line ending
 * before line_start is complete and within the cap, and [line_start, len) is
 * the partial line (no "\n" in it), also within the cap. next() only hands out
 * lines in [start, line_start), and after finish() the partial line.
 *
 * The consumed prefix [0, start) is reclaimed lazily, when room is needed for
 * new bytes or when it is larger than half the buffer, so many small lines
 * cost no memmove each. If the caller drains next() after every feed/fill,
 * the buffer never holds more than one partial line (max_line + 1 bytes with
 * its "\r") plus one chunk, which is the size it is allowed to grow to.
 */

#define AB_JSONL_CHUNK   ((size_t)64 * 1024)
#define AB_JSONL_SLACK   ((size_t)64)
#define AB_JSONL_MIN_CAP ((size_t)4096)

struct ab_jsonl_reader {
    char *buf;
    size_t cap;
    size_t start;       /* first byte not yet returned */
    size_t line_start;  /* first byte of the partial (unterminated) line */
    size_t len;         /* bytes in buf */
    size_t max_line;    /* content bytes allowed per line */
    size_t limit;       /* buffer size the drained reader never exceeds */
    uint64_t next_line; /* number of the line at start */
    uint64_t scan_line; /* number of the line at line_start */
    uint64_t bytes;
    bool finished;
    bool unterminated;
    struct ab_error failure; /* sticky: code != AB_OK after an oversize line */
};

struct ab_jsonl_reader *ab_jsonl_reader_new(size_t max_line, struct ab_error *err)
{
    struct ab_jsonl_reader *r;

    r = calloc(1, sizeof(*r));
    if (!r) {
        (void)ab_error_set(err, AB_ERR_NOMEM, "out of memory (line reader)");
        return NULL;
    }
    if (max_line == 0) {
        max_line = AB_JSONL_DEFAULT_MAX_LINE;
    }
    /* keeps max_line + chunk + slack far from overflowing */
    if (max_line > ((size_t)-1) / 4) {
        max_line = ((size_t)-1) / 4;
    }
    r->max_line = max_line;
    r->limit = max_line + 1 + AB_JSONL_CHUNK + AB_JSONL_SLACK;
    r->next_line = 1;
    r->scan_line = 1;
    ab_error_init(&r->failure);
    return r;
}

void ab_jsonl_reader_free(struct ab_jsonl_reader *r)
{
    if (!r) {
        return;
    }
    free(r->buf);
    free(r);
}

/* Drops the consumed prefix: offsets move down by start. */
static void compact(struct ab_jsonl_reader *r)
{
    size_t shift = r->start;

    if (shift == 0) {
        return;
    }
    if (r->len > shift) {
        memmove(r->buf, r->buf + shift, r->len - shift);
    }
    r->len -= shift;
    r->line_start -= shift;
    r->start = 0;
}

/* Makes room for n more bytes plus the NUL the last line may need. */
static enum ab_status make_room(struct ab_jsonl_reader *r, size_t n, struct ab_error *err)
{
    size_t need;
    size_t cap;
    char *p;

    if (r->start == r->len) {
        /* everything consumed: restart at the front for free */
        r->start = 0;
        r->line_start = 0;
        r->len = 0;
    } else if (r->start > r->cap / 2 || r->len + n + 1 > r->cap) {
        compact(r);
    }
    need = r->len + n + 1;
    if (need <= r->cap) {
        return AB_OK;
    }
    cap = r->cap ? r->cap : AB_JSONL_MIN_CAP;
    while (cap < need) {
        cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
    }
    /* do not overshoot the bound a drained reader needs; only a caller that
     * feeds many complete lines without taking them goes beyond it */
    if (need <= r->limit && cap > r->limit) {
        cap = r->limit;
    }
    p = realloc(r->buf, cap);
    if (!p) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (line buffer of %zu bytes)", cap);
    }
    r->buf = p;
    r->cap = cap;
    return AB_OK;
}

static enum ab_status fail_oversize(struct ab_jsonl_reader *r, struct ab_error *err)
{
    (void)ab_error_set(&r->failure, AB_ERR_PROTOCOL,
                       "line %llu: longer than the limit of %zu bytes",
                       (unsigned long long)r->scan_line, r->max_line);
    if (err) {
        *err = r->failure;
    }
    return AB_ERR_PROTOCOL;
}

static enum ab_status sticky(const struct ab_jsonl_reader *r, struct ab_error *err)
{
    if (err) {
        *err = r->failure;
    }
    return r->failure.code;
}

/* Content length of [b, e) without a trailing "\r". */
static size_t content_len(const char *b, const char *e)
{
    size_t n = (size_t)(e - b);

    if (n > 0 && e[-1] == '\r') {
        n--;
    }
    return n;
}

/* Checks the bytes [from, len) just appended. */
static enum ab_status scan(struct ab_jsonl_reader *r, size_t from, struct ab_error *err)
{
    const char *end = r->buf + r->len;
    const char *p = r->buf + from;
    const char *nl;
    size_t partial;

    while (p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            break;
        }
        if (content_len(r->buf + r->line_start, nl) > r->max_line) {
            return fail_oversize(r, err);
        }
        r->line_start = (size_t)(nl + 1 - r->buf);
        r->scan_line++;
        p = nl + 1;
    }
    /* The partial line may hold one byte more than the cap if that is the
     * "\r" of a CRLF: anything else over the cap fails now, not at its end. */
    partial = r->len - r->line_start;
    if (partial > r->max_line + 1 || (partial == r->max_line + 1 && r->buf[r->len - 1] != '\r')) {
        return fail_oversize(r, err);
    }
    return AB_OK;
}

enum ab_status ab_jsonl_reader_feed(struct ab_jsonl_reader *r, const void *p, size_t n,
                                    struct ab_error *err)
{
    const char *src = p;

    if (r->failure.code != AB_OK) {
        return sticky(r, err);
    }
    /* A chunk at a time, so that an oversize line is caught before a huge
     * input is copied in whole. */
    while (n > 0) {
        size_t m = n < AB_JSONL_CHUNK ? n : AB_JSONL_CHUNK;
        size_t from;
        enum ab_status rc = make_room(r, m, err);

        if (rc != AB_OK) {
            return rc;
        }
        from = r->len;
        memcpy(r->buf + r->len, src, m);
        r->len += m;
        r->bytes += m;
        rc = scan(r, from, err);
        if (rc != AB_OK) {
            return rc;
        }
        src += m;
        n -= m;
    }
    return AB_OK;
}

enum ab_status ab_jsonl_reader_fill(struct ab_jsonl_reader *r, int fd, bool *eof,
                                    struct ab_error *err)
{
    enum ab_status rc;
    ssize_t got;
    size_t from;

    *eof = false;
    if (r->failure.code != AB_OK) {
        return sticky(r, err);
    }
    rc = make_room(r, AB_JSONL_CHUNK, err);
    if (rc != AB_OK) {
        return rc;
    }
    got = read(fd, r->buf + r->len, AB_JSONL_CHUNK);
    if (got < 0) {
        int e = errno;
        char msg[128];

        if (e == EINTR || e == EAGAIN || e == EWOULDBLOCK) {
            return AB_OK;
        }
        if (strerror_r(e, msg, sizeof(msg)) != 0) {
            msg[0] = '\0';
        }
        return ab_error_set(err, AB_ERR_IO, "cannot read the input: %s (errno %d)", msg, e);
    }
    if (got == 0) {
        *eof = true;
        return AB_OK;
    }
    from = r->len;
    r->len += (size_t)got;
    r->bytes += (uint64_t)got;
    return scan(r, from, err);
}

static bool blank(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') {
            return false;
        }
    }
    return true;
}

void ab_jsonl_reader_finish(struct ab_jsonl_reader *r)
{
    r->finished = true;
    r->unterminated = r->failure.code == AB_OK && r->line_start < r->len &&
                      !blank(r->buf + r->line_start, r->len - r->line_start);
}

bool ab_jsonl_reader_next(struct ab_jsonl_reader *r, char **line, size_t *len, uint64_t *lineno)
{
    while (r->start < r->line_start) {
        char *b = r->buf + r->start;
        char *nl = memchr(b, '\n', r->line_start - r->start);
        size_t n;
        uint64_t num = r->next_line;

        if (!nl) {
            /* cannot happen: line_start always follows a "\n" */
            r->start = r->line_start;
            break;
        }
        n = content_len(b, nl);
        r->start = (size_t)(nl + 1 - r->buf);
        r->next_line++;
        if (blank(b, n)) {
            continue;
        }
        b[n] = '\0';
        *line = b;
        *len = n;
        *lineno = num;
        return true;
    }
    if (r->finished && r->failure.code == AB_OK && r->start < r->len) {
        char *b = r->buf + r->start;
        size_t n = content_len(b, r->buf + r->len);
        uint64_t num = r->next_line;

        /* make_room() always leaves a byte for this NUL */
        r->start = r->len;
        r->line_start = r->len;
        r->next_line++;
        r->scan_line = r->next_line;
        if (blank(b, n)) {
            return false;
        }
        b[n] = '\0';
        *line = b;
        *len = n;
        *lineno = num;
        return true;
    }
    return false;
}

size_t ab_jsonl_reader_pending(const struct ab_jsonl_reader *r)
{
    return r->len - r->start;
}

bool ab_jsonl_reader_last_unterminated(const struct ab_jsonl_reader *r)
{
    return r->finished && r->unterminated;
}

uint64_t ab_jsonl_reader_bytes(const struct ab_jsonl_reader *r)
{
    return r->bytes;
}

void ab_jsonl_reader_set_origin(struct ab_jsonl_reader *r, uint64_t offset, uint64_t first_line)
{
    r->bytes = offset;
    r->next_line = first_line ? first_line : 1;
    r->scan_line = r->next_line;
}

uint64_t ab_jsonl_reader_offset(const struct ab_jsonl_reader *r)
{
    return r->bytes - (r->len - r->start);
}
