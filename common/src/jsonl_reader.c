/* jsonl_reader.c - splits a byte stream into lines of bounded length. */
/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* memrchr */
#include "ab/jsonl_reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "ab/assert.h"

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
    size_t reserved;    /* bytes handed out by space(), not yet committed */
    uint64_t next_line; /* number of the line at start */
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

/* Number of the line that starts at pos (start <= pos <= len): lines are
 * counted only when one is needed for a message. */
static uint64_t line_number_at(const struct ab_jsonl_reader *r, size_t pos)
{
    const char *p = r->buf + r->start;
    const char *end = r->buf + pos;
    uint64_t n = r->next_line;
    const char *nl;

    while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p = nl + 1;
    }
    return n;
}

static enum ab_status fail_oversize(struct ab_jsonl_reader *r, struct ab_error *err)
{
    (void)ab_error_set(&r->failure, AB_ERR_PROTOCOL,
                       "line %llu: longer than the limit of %zu bytes",
                       (unsigned long long)line_number_at(r, r->line_start), r->max_line);
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

/*
 * Checks the bytes [from, len) just appended. The lines completed by them
 * lie in [line_start, the last "\n"]: when that whole span is within the cap
 * so is each of its lines, and one search from the end finds the new partial
 * line (next() finds the line ends as it hands the lines out). Only a span
 * longer than the cap is walked line by line.
 */
static enum ab_status scan(struct ab_jsonl_reader *r, size_t from, struct ab_error *err)
{
    const char *end = r->buf + r->len;
    const char *last = memrchr(r->buf + from, '\n', r->len - from);
    size_t partial;

    if (last && (size_t)(last - r->buf) - r->line_start > r->max_line) {
        const char *p = r->buf + from;
        const char *nl;

        while (p <= last) {
            nl = memchr(p, '\n', (size_t)(end - p));
            AB_ASSERT(nl != NULL);
            if (content_len(r->buf + r->line_start, nl) > r->max_line) {
                return fail_oversize(r, err);
            }
            r->line_start = (size_t)(nl + 1 - r->buf);
            p = nl + 1;
        }
    } else if (last) {
        r->line_start = (size_t)(last + 1 - r->buf);
    }
    /* The partial line may hold one byte more than the cap if that is the
     * "\r" of a CRLF: anything else over the cap fails now, not at its end. */
    partial = r->len - r->line_start;
    if (partial > r->max_line + 1 || (partial == r->max_line + 1 && r->buf[r->len - 1] != '\r')) {
        return fail_oversize(r, err);
    }
    return AB_OK;
}

enum ab_status ab_jsonl_reader_space(struct ab_jsonl_reader *r, size_t want, char **to,
                                     size_t *room, struct ab_error *err)
{
    size_t m = want < AB_JSONL_CHUNK ? want : AB_JSONL_CHUNK;
    enum ab_status rc;

    *to = NULL;
    *room = 0;
    if (r->failure.code != AB_OK) {
        return sticky(r, err);
    }
    if (m == 0) {
        m = 1;
    }
    rc = make_room(r, m, err);
    if (rc != AB_OK) {
        return rc;
    }
    AB_ASSERT(r->len + m + 1 <= r->cap);
    r->reserved = m;
    *to = r->buf + r->len;
    *room = m;
    return AB_OK;
}

enum ab_status ab_jsonl_reader_commit(struct ab_jsonl_reader *r, size_t n, struct ab_error *err)
{
    size_t from = r->len;

    AB_ASSERT(n <= r->reserved);
    r->reserved = 0;
    if (n == 0) {
        return AB_OK;
    }
    r->len += n;
    r->bytes += n;
    return scan(r, from, err);
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
        char *to;
        size_t m;
        enum ab_status rc = ab_jsonl_reader_space(r, n, &to, &m, err);

        if (rc != AB_OK) {
            return rc;
        }
        memcpy(to, src, m);
        rc = ab_jsonl_reader_commit(r, m, err);
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
    size_t room;
    char *to;
    ssize_t got;
    enum ab_status rc;

    *eof = false;
    rc = ab_jsonl_reader_space(r, AB_JSONL_CHUNK, &to, &room, err);
    if (rc != AB_OK) {
        return rc;
    }
    got = read(fd, to, room);
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
    }
    return ab_jsonl_reader_commit(r, (size_t)got, err);
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
}

uint64_t ab_jsonl_reader_offset(const struct ab_jsonl_reader *r)
{
    return r->bytes - (r->len - r->start);
}
