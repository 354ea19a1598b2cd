/* spool.c - append-only record store: RAM up to a budget, then a temporary file. */
/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* O_TMPFILE */
#include "ab/spool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include "ab/assert.h"

/*
 * Layout: a logical byte stream of frames "<u32 little-endian length><bytes>".
 * Logical bytes [0, mem_len) sit in RAM chunks; once a chunk cannot be taken
 * from the budget the spool "spills" and bytes [mem_len, mem_len + file_len)
 * go to the file at position (offset - mem_len). While spilled, RAM never
 * grows again (so the mapping stays a simple split); a truncate below the
 * split or to it ends the spill.
 *
 * Writes to the file go through a small buffer (wbuf, holding file bytes
 * [file_flushed, file_len)); reads of the file go through a one-window cache
 * so sequential iteration costs one pread per window, not two per record.
 *
 * Invariants (SPOOL_OK, checked with AB_ASSERT after every change): RAM bytes
 * fit the chunks taken; file bytes exist only while spilled; the file holds
 * file_flushed bytes and the write buffer the rest (wlen <= its size); the
 * chunks taken stay within the shared budget.
 */

#define SPOOL_WBUF  ((size_t)64 * 1024)
#define SPOOL_RBUF  ((size_t)64 * 1024)
#define SPOOL_FRAME ((size_t)4)

#define SPOOL_OK(sp)                                                                               \
    ((sp)->mem_len <= (uint64_t)(sp)->nchunks * AB_SPOOL_CHUNK &&                                  \
     ((sp)->spilled || (sp)->file_len == 0) &&                                                     \
     (sp)->file_flushed + (sp)->wlen == (sp)->file_len && (sp)->wlen <= SPOOL_WBUF &&              \
     (sp)->budget->used + (sp)->budget->cached <= (sp)->budget->limit)

struct ab_spool {
    struct ab_spool_budget own;
    struct ab_spool_budget *budget;
    char *dir;
    size_t max_record;

    char **chunks;
    size_t nchunks;
    size_t chunks_cap;
    uint64_t mem_len;

    bool spilled;
    int fd;
    uint64_t file_len;
    uint64_t file_flushed;
    char *wbuf;
    size_t wlen;
    char *rbuf;
    uint64_t rpos;
    size_t rlen;

    uint64_t count;
    struct ab_error sticky; /* code != AB_OK once broken */
};

void ab_spool_budget_init(struct ab_spool_budget *b, size_t limit)
{
    b->limit = limit;
    b->used = 0;
    b->cached = 0;
    b->free = NULL;
}

/* A chunk is filled whole soon after it is taken, so where the system
 * allows it its pages are mapped by the one call that makes it
 * (MAP_POPULATE) instead of one page fault each, which costs microseconds
 * apiece on a virtual machine; the memory is the same. */
static char *chunk_new(void)
{
#ifdef MAP_POPULATE
    void *c = mmap(NULL, AB_SPOOL_CHUNK, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

    return c == MAP_FAILED ? NULL : c;
#else
    return malloc(AB_SPOOL_CHUNK);
#endif
}

static void chunk_free(char *c)
{
#ifdef MAP_POPULATE
    (void)munmap(c, AB_SPOOL_CHUNK);
#else
    free(c);
#endif
}

void ab_spool_budget_release(struct ab_spool_budget *b)
{
    AB_ASSERT(b->used == 0);
    while (b->free) {
        char *c = b->free;

        memcpy(&b->free, c, sizeof(b->free));
        chunk_free(c);
        b->cached -= AB_SPOOL_CHUNK;
    }
    AB_ASSERT(b->cached == 0);
}

size_t ab_spool_budget_held(const struct ab_spool_budget *b)
{
    return b->used + b->cached;
}

/* A chunk from the budget's cache, else a new one if the budget allows;
 * NULL when it does not (or malloc fails). */
static char *budget_take(struct ab_spool_budget *b)
{
    char *c = b->free;

    if (c) {
        memcpy(&b->free, c, sizeof(b->free));
        b->cached -= AB_SPOOL_CHUNK;
    } else if (b->used > b->limit || b->limit - b->used < AB_SPOOL_CHUNK) {
        return NULL;
    } else if ((c = chunk_new()) == NULL) {
        return NULL; /* RAM is short: the file takes over */
    }
    b->used += AB_SPOOL_CHUNK;
    AB_ASSERT(b->used + b->cached <= b->limit);
    return c;
}

/* Gives a chunk back to the budget's cache. */
static void budget_give(struct ab_spool_budget *b, char *c)
{
    AB_ASSERT(b->used >= AB_SPOOL_CHUNK);
    memcpy(c, &b->free, sizeof(b->free));
    b->free = c;
    b->used -= AB_SPOOL_CHUNK;
    b->cached += AB_SPOOL_CHUNK;
}

void ab_spool_opts_init(struct ab_spool_opts *o)
{
    o->memory_bytes = (size_t)64 * 1024 * 1024;
    o->budget = NULL;
    o->dir = NULL;
    o->max_record = 0;
}

static const char *default_dir(void)
{
    /* The one environment read of this module: the POSIX temporary
     * directory convention, resolved once when a spool is created. */
    const char *t = getenv("TMPDIR"); /* NOLINT(concurrency-mt-unsafe) */

    return (t && *t) ? t : "/tmp";
}

static enum ab_status io_error(struct ab_error *err, const char *what, const char *dir, int e)
{
    char msg[256];

    if (strerror_r(e, msg, sizeof(msg)) != 0) {
        (void)snprintf(msg, sizeof(msg), "error %d", e);
    }
    return ab_error_set(err, AB_ERR_IO, "%s in '%s': %s", what, dir, msg);
}

/* Creates an unlinked temporary file in dir; -1 and err on failure. Where
 * the file system supports it the file never has a name (O_TMPFILE), so no
 * other process can see customer data by path even for an instant; elsewhere
 * it is created and unlinked at once. */
static int make_temp(const char *dir, enum ab_status code, struct ab_error *err)
{
    char path[4096];
    int fd;
    int n;
    int flags;

#ifdef O_TMPFILE
    fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        return fd;
    }
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
        (void)io_error(err, "cannot create a spool file", dir, errno);
        if (err) {
            err->code = code;
        }
        return -1;
    }
#endif
    n = snprintf(path, sizeof(path), "%s/ab-spool-XXXXXX", dir);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        ab_error_set(err, code, "spool directory '%s': path too long", dir);
        return -1;
    }
    fd = mkstemp(path);
    if (fd < 0) {
        (void)io_error(err, "cannot create a spool file", dir, errno);
        if (err) {
            err->code = code;
        }
        return -1;
    }
    if (unlink(path) != 0) {
        (void)io_error(err, "cannot unlink the spool file", dir, errno);
        if (err) {
            err->code = code;
        }
        (void)close(fd);
        return -1;
    }
    flags = fcntl(fd, F_GETFD);
    if (flags >= 0) {
        (void)fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
    return fd;
}

struct ab_spool *ab_spool_new(const struct ab_spool_opts *o, struct ab_error *err)
{
    struct ab_spool *sp = calloc(1, sizeof(*sp));

    if (!sp) {
        ab_error_set(err, AB_ERR_NOMEM, "out of memory (spool)");
        return NULL;
    }
    sp->fd = -1;
    ab_error_init(&sp->sticky);
    ab_spool_budget_init(&sp->own, o->memory_bytes);
    sp->budget = o->budget ? o->budget : &sp->own;
    sp->max_record = o->max_record ? o->max_record : AB_SPOOL_MAX_RECORD;
    if (sp->max_record > UINT32_MAX) {
        sp->max_record = UINT32_MAX;
    }
    sp->dir = strdup((o->dir && *o->dir) ? o->dir : default_dir());
    if (!sp->dir) {
        ab_error_set(err, AB_ERR_NOMEM, "out of memory (spool)");
        ab_spool_free(sp);
        return NULL;
    }
    return sp;
}

static void free_chunks_from(struct ab_spool *sp, size_t keep)
{
    while (sp->nchunks > keep) {
        sp->nchunks--;
        budget_give(sp->budget, sp->chunks[sp->nchunks]);
        sp->chunks[sp->nchunks] = NULL;
    }
}

void ab_spool_free(struct ab_spool *sp)
{
    if (!sp) {
        return;
    }
    free_chunks_from(sp, 0);
    if (sp->budget == &sp->own) {
        ab_spool_budget_release(&sp->own);
    }
    free(sp->chunks);
    if (sp->fd >= 0) {
        (void)close(sp->fd);
    }
    free(sp->wbuf);
    free(sp->rbuf);
    free(sp->dir);
    free(sp);
}

static enum ab_status broken(struct ab_spool *sp, struct ab_error *err)
{
    if (err) {
        *err = sp->sticky;
    }
    return sp->sticky.code;
}

static enum ab_status fail(struct ab_spool *sp, const struct ab_error *err)
{
    if (err) {
        sp->sticky = *err;
    } else {
        ab_error_set(&sp->sticky, AB_ERR_IO, "spool failure");
    }
    return sp->sticky.code;
}

static enum ab_status write_full(struct ab_spool *sp, const char *p, size_t n, uint64_t pos,
                                 struct ab_error *err)
{
    while (n > 0) {
        ssize_t w = pwrite(sp->fd, p, n, (off_t)pos);

        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return io_error(err, "cannot write the spool file", sp->dir, errno);
        }
        p += w;
        n -= (size_t)w;
        pos += (uint64_t)w;
    }
    return AB_OK;
}

static enum ab_status read_full(struct ab_spool *sp, char *p, size_t n, uint64_t pos,
                                struct ab_error *err)
{
    while (n > 0) {
        ssize_t r = pread(sp->fd, p, n, (off_t)pos);

        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return io_error(err, "cannot read the spool file", sp->dir, errno);
        }
        if (r == 0) {
            return ab_error_set(err, AB_ERR_IO, "spool file in '%s' is shorter than expected",
                                sp->dir);
        }
        p += r;
        n -= (size_t)r;
        pos += (uint64_t)r;
    }
    return AB_OK;
}

static enum ab_status flush_wbuf(struct ab_spool *sp, struct ab_error *err)
{
    enum ab_status rc;

    if (sp->wlen == 0) {
        return AB_OK;
    }
    rc = write_full(sp, sp->wbuf, sp->wlen, sp->file_flushed, err);
    if (rc != AB_OK) {
        return rc;
    }
    sp->file_flushed += sp->wlen;
    sp->wlen = 0;
    return AB_OK;
}

static enum ab_status file_put(struct ab_spool *sp, const char *p, size_t n, struct ab_error *err)
{
    enum ab_status rc;

    if (sp->fd < 0) {
        sp->fd = make_temp(sp->dir, AB_ERR_IO, err);
        if (sp->fd < 0) {
            return err ? err->code : AB_ERR_IO;
        }
    }
    if (!sp->wbuf) {
        sp->wbuf = malloc(SPOOL_WBUF);
        if (!sp->wbuf) {
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory (spool write buffer)");
        }
    }
    while (n > 0) {
        size_t k;

        if (sp->wlen == SPOOL_WBUF) {
            rc = flush_wbuf(sp, err);
            if (rc != AB_OK) {
                return rc;
            }
        }
        if (sp->wlen == 0 && n >= SPOOL_WBUF) {
            /* Large pieces skip the buffer. */
            rc = write_full(sp, p, n, sp->file_flushed, err);
            if (rc != AB_OK) {
                return rc;
            }
            sp->file_flushed += n;
            sp->file_len += n;
            return AB_OK;
        }
        k = SPOOL_WBUF - sp->wlen;
        if (k > n) {
            k = n;
        }
        memcpy(sp->wbuf + sp->wlen, p, k);
        sp->wlen += k;
        sp->file_len += k;
        p += k;
        n -= k;
    }
    return AB_OK;
}

/* Takes one more RAM chunk if the budget allows; false otherwise. */
static bool grow_chunks(struct ab_spool *sp)
{
    char *c;

    if (sp->nchunks == sp->chunks_cap) {
        size_t cap = sp->chunks_cap ? sp->chunks_cap * 2 : 16;
        char **v = realloc(sp->chunks, cap * sizeof(*v));

        if (!v) {
            return false;
        }
        sp->chunks = v;
        sp->chunks_cap = cap;
    }
    c = budget_take(sp->budget);
    if (!c) {
        return false;
    }
    sp->chunks[sp->nchunks++] = c;
    return true;
}

static enum ab_status put_bytes(struct ab_spool *sp, const void *src, size_t n,
                                struct ab_error *err)
{
    const char *p = src;

    while (n > 0 && !sp->spilled) {
        uint64_t cap = (uint64_t)sp->nchunks * AB_SPOOL_CHUNK;
        size_t in_chunk;
        size_t k;

        if (sp->mem_len == cap) {
            if (!grow_chunks(sp)) {
                sp->spilled = true;
                break;
            }
            continue;
        }
        in_chunk = (size_t)(sp->mem_len % AB_SPOOL_CHUNK);
        k = AB_SPOOL_CHUNK - in_chunk;
        if (k > n) {
            k = n;
        }
        memcpy(sp->chunks[sp->mem_len / AB_SPOOL_CHUNK] + in_chunk, p, k);
        sp->mem_len += k;
        p += k;
        n -= k;
    }
    if (n > 0) {
        return file_put(sp, p, n, err);
    }
    return AB_OK;
}

static enum ab_status file_get(struct ab_spool *sp, uint64_t f, char *dst, size_t n,
                               struct ab_error *err)
{
    enum ab_status rc;

    while (n > 0) {
        size_t k;

        if (f >= sp->file_flushed) {
            /* Still in the write buffer. */
            memcpy(dst, sp->wbuf + (f - sp->file_flushed), n);
            return AB_OK;
        }
        if (sp->rbuf && f >= sp->rpos && f < sp->rpos + sp->rlen) {
            k = (size_t)(sp->rpos + sp->rlen - f);
            if (k > n) {
                k = n;
            }
            memcpy(dst, sp->rbuf + (f - sp->rpos), k);
        } else {
            uint64_t avail = sp->file_flushed - f;

            if (n >= SPOOL_RBUF && avail >= n) {
                return read_full(sp, dst, n, f, err);
            }
            if (!sp->rbuf) {
                sp->rbuf = malloc(SPOOL_RBUF);
                if (!sp->rbuf) {
                    return ab_error_set(err, AB_ERR_NOMEM, "out of memory (spool read buffer)");
                }
            }
            sp->rlen = avail < SPOOL_RBUF ? (size_t)avail : SPOOL_RBUF;
            sp->rpos = f;
            rc = read_full(sp, sp->rbuf, sp->rlen, f, err);
            if (rc != AB_OK) {
                sp->rlen = 0;
                return rc;
            }
            continue;
        }
        dst += k;
        f += k;
        n -= k;
    }
    return AB_OK;
}

static enum ab_status get_bytes(struct ab_spool *sp, uint64_t x, void *out, size_t n,
                                struct ab_error *err)
{
    char *dst = out;

    while (n > 0 && x < sp->mem_len) {
        size_t in_chunk = (size_t)(x % AB_SPOOL_CHUNK);
        size_t k = AB_SPOOL_CHUNK - in_chunk;

        if (k > n) {
            k = n;
        }
        if ((uint64_t)k > sp->mem_len - x) {
            k = (size_t)(sp->mem_len - x);
        }
        memcpy(dst, sp->chunks[x / AB_SPOOL_CHUNK] + in_chunk, k);
        dst += k;
        x += k;
        n -= k;
    }
    if (n > 0) {
        return file_get(sp, x - sp->mem_len, dst, n, err);
    }
    return AB_OK;
}

/* The RAM bytes [x, x + n) when they lie in one chunk (the common case:
 * records are small beside a chunk); NULL otherwise (across chunks, or in
 * the file), where the general paths take over. */
static char *in_one_chunk(const struct ab_spool *sp, uint64_t x, size_t n)
{
    size_t in_chunk = (size_t)(x % AB_SPOOL_CHUNK);

    if (x >= sp->mem_len || n > sp->mem_len - x || n > AB_SPOOL_CHUNK - in_chunk) {
        return NULL;
    }
    return sp->chunks[x / AB_SPOOL_CHUNK] + in_chunk;
}

static uint32_t frame_len(const unsigned char *f)
{
    return (uint32_t)f[0] | ((uint32_t)f[1] << 8) | ((uint32_t)f[2] << 16) | ((uint32_t)f[3] << 24);
}

uint64_t ab_spool_end(const struct ab_spool *sp)
{
    return sp->mem_len + sp->file_len;
}

enum ab_status ab_spool_append3(struct ab_spool *sp, const void *a, size_t na, const void *b,
                                size_t nb, const void *c, size_t nc, uint64_t *off,
                                struct ab_error *err)
{
    unsigned char frame[SPOOL_FRAME];
    uint64_t start;
    size_t n;
    enum ab_status rc;

    if (sp->sticky.code != AB_OK) {
        return broken(sp, err);
    }
    if (na > sp->max_record || nb > sp->max_record - na || nc > sp->max_record - na - nb) {
        return ab_error_set(err, AB_ERR_PROTOCOL,
                            "record of %zu bytes exceeds the spool limit of %zu bytes",
                            na > sp->max_record        ? na
                            : nb > sp->max_record - na ? na + nb
                                                       : na + nb + nc,
                            sp->max_record);
    }
    n = na + nb + nc;
    frame[0] = (unsigned char)(n & 0xFFU);
    frame[1] = (unsigned char)((n >> 8) & 0xFFU);
    frame[2] = (unsigned char)((n >> 16) & 0xFFU);
    frame[3] = (unsigned char)((n >> 24) & 0xFFU);
    start = ab_spool_end(sp);
    if (!sp->spilled && sp->mem_len < (uint64_t)sp->nchunks * AB_SPOOL_CHUNK &&
        SPOOL_FRAME + n <= AB_SPOOL_CHUNK - (size_t)(sp->mem_len % AB_SPOOL_CHUNK)) {
        /* The whole frame fits the current chunk: copied in place. */
        char *at = sp->chunks[sp->mem_len / AB_SPOOL_CHUNK] + sp->mem_len % AB_SPOOL_CHUNK;

        memcpy(at, frame, SPOOL_FRAME);
        if (na > 0) {
            memcpy(at + SPOOL_FRAME, a, na);
        }
        if (nb > 0) {
            memcpy(at + SPOOL_FRAME + na, b, nb);
        }
        if (nc > 0) {
            memcpy(at + SPOOL_FRAME + na + nb, c, nc);
        }
        sp->mem_len += SPOOL_FRAME + n;
        sp->count++;
        AB_ASSERT(SPOOL_OK(sp));
        if (off) {
            *off = start;
        }
        return AB_OK;
    }
    rc = put_bytes(sp, frame, sizeof(frame), err);
    if (rc == AB_OK && na > 0) {
        rc = put_bytes(sp, a, na, err);
    }
    if (rc == AB_OK && nb > 0) {
        rc = put_bytes(sp, b, nb, err);
    }
    if (rc == AB_OK && nc > 0) {
        rc = put_bytes(sp, c, nc, err);
    }
    if (rc != AB_OK) {
        return fail(sp, err);
    }
    sp->count++;
    AB_ASSERT(SPOOL_OK(sp));
    AB_ASSERT(ab_spool_end(sp) == start + SPOOL_FRAME + n);
    if (off) {
        *off = start;
    }
    return AB_OK;
}

enum ab_status ab_spool_append2(struct ab_spool *sp, const void *a, size_t na, const void *b,
                                size_t nb, uint64_t *off, struct ab_error *err)
{
    return ab_spool_append3(sp, a, na, b, nb, NULL, 0, off, err);
}

enum ab_status ab_spool_append(struct ab_spool *sp, const void *p, size_t n, uint64_t *off,
                               struct ab_error *err)
{
    return ab_spool_append2(sp, p, n, NULL, 0, off, err);
}

static enum ab_status read_frame(struct ab_spool *sp, uint64_t off, size_t *len,
                                 struct ab_error *err)
{
    unsigned char frame[SPOOL_FRAME];
    enum ab_status rc;
    uint64_t end = ab_spool_end(sp);

    if (off >= end || end - off < SPOOL_FRAME) {
        return ab_error_set(err, AB_ERR_INTERNAL, "spool offset %llu is past the end (%llu)",
                            (unsigned long long)off, (unsigned long long)end);
    }
    rc = get_bytes(sp, off, frame, sizeof(frame), err);
    if (rc != AB_OK) {
        return fail(sp, err);
    }
    *len = frame_len(frame);
    if (*len > end - off - SPOOL_FRAME) {
        return ab_error_set(err, AB_ERR_INTERNAL, "spool offset %llu is not a record",
                            (unsigned long long)off);
    }
    return AB_OK;
}

enum ab_status ab_spool_read(struct ab_spool *sp, uint64_t off, struct ab_buf *out, uint64_t *next,
                             struct ab_error *err)
{
    size_t len = 0;
    enum ab_status rc;

    if (sp->sticky.code != AB_OK) {
        return broken(sp, err);
    }
    rc = read_frame(sp, off, &len, err);
    if (rc != AB_OK) {
        return rc;
    }
    ab_buf_reset(out);
    rc = ab_buf_reserve(out, len, err);
    if (rc != AB_OK) {
        return rc;
    }
    rc = get_bytes(sp, off + SPOOL_FRAME, out->data, len, err);
    if (rc != AB_OK) {
        return fail(sp, err);
    }
    out->len = len;
    out->data[len] = '\0';
    if (next) {
        *next = off + SPOOL_FRAME + len;
    }
    return AB_OK;
}

enum ab_status ab_spool_read_at(struct ab_spool *sp, uint64_t off, size_t pos, void *dst, size_t n,
                                size_t *len, uint64_t *next, struct ab_error *err)
{
    size_t rlen = 0;
    enum ab_status rc;
    const char *at;

    if (sp->sticky.code != AB_OK) {
        return broken(sp, err);
    }
    at = in_one_chunk(sp, off, SPOOL_FRAME);
    if (at) {
        const char *src = NULL;

        rlen = frame_len((const unsigned char *)at);
        if (rlen <= ab_spool_end(sp) - off - SPOOL_FRAME && pos <= rlen && n <= rlen - pos) {
            src = in_one_chunk(sp, off + SPOOL_FRAME + pos, n);
        }
        if (src) {
            /* The bytes asked for lie in one RAM chunk: copied from it. */
            memcpy(dst, src, n);
            if (len) {
                *len = rlen;
            }
            if (next) {
                *next = off + SPOOL_FRAME + rlen;
            }
            return AB_OK;
        }
    }
    rc = read_frame(sp, off, &rlen, err);
    if (rc != AB_OK) {
        return rc;
    }
    if (pos > rlen || n > rlen - pos) {
        return ab_error_set(err, AB_ERR_INTERNAL,
                            "bytes %zu to %zu of a spool record of %zu bytes asked for", pos,
                            pos + n, rlen);
    }
    if (n > 0) {
        rc = get_bytes(sp, off + SPOOL_FRAME + pos, dst, n, err);
        if (rc != AB_OK) {
            return fail(sp, err);
        }
    }
    if (len) {
        *len = rlen;
    }
    if (next) {
        *next = off + SPOOL_FRAME + rlen;
    }
    return AB_OK;
}

bool ab_spool_peek(struct ab_spool *sp, uint64_t off, const char **p, size_t *len, uint64_t *next)
{
    const char *at;
    const char *rec;
    size_t rlen;

    if (sp->sticky.code != AB_OK || (at = in_one_chunk(sp, off, SPOOL_FRAME)) == NULL) {
        return false;
    }
    rlen = frame_len((const unsigned char *)at);
    if (rlen > ab_spool_end(sp) - off - SPOOL_FRAME ||
        (rec = in_one_chunk(sp, off + SPOOL_FRAME, rlen)) == NULL) {
        return false;
    }
    *p = rec;
    *len = rlen;
    if (next) {
        *next = off + SPOOL_FRAME + rlen;
    }
    return true;
}

void ab_spool_iter_init(struct ab_spool_iter *it, struct ab_spool *sp, uint64_t from)
{
    it->sp = sp;
    it->off = from;
}

bool ab_spool_iter_next(struct ab_spool_iter *it, struct ab_buf *out, enum ab_status *rc,
                        struct ab_error *err)
{
    *rc = AB_OK;
    if (it->off >= ab_spool_end(it->sp)) {
        return false;
    }
    *rc = ab_spool_read(it->sp, it->off, out, &it->off, err);
    return *rc == AB_OK;
}

uint64_t ab_spool_count(const struct ab_spool *sp)
{
    return sp->count;
}

size_t ab_spool_memory(const struct ab_spool *sp)
{
    return sp->nchunks * AB_SPOOL_CHUNK;
}

uint64_t ab_spool_file_bytes(const struct ab_spool *sp)
{
    return sp->file_len;
}

/* Records in [off, end): walks the frames (only the headers are read). */
static enum ab_status count_from(struct ab_spool *sp, uint64_t off, uint64_t *n,
                                 struct ab_error *err)
{
    uint64_t end = ab_spool_end(sp);

    *n = 0;
    while (off < end) {
        size_t len = 0;
        enum ab_status rc = read_frame(sp, off, &len, err);

        if (rc != AB_OK) {
            return rc;
        }
        off += SPOOL_FRAME + len;
        (*n)++;
    }
    return AB_OK;
}

enum ab_status ab_spool_truncate(struct ab_spool *sp, uint64_t off, struct ab_error *err)
{
    uint64_t dropped = 0;

    if (sp->sticky.code != AB_OK) {
        return broken(sp, err);
    }
    if (off > ab_spool_end(sp)) {
        return ab_error_set(err, AB_ERR_INTERNAL, "spool truncate past the end");
    }
    if (off == 0) {
        dropped = sp->count;
    } else {
        enum ab_status rc = count_from(sp, off, &dropped, err);

        if (rc != AB_OK) {
            return rc;
        }
    }
    sp->rlen = 0; /* the file is about to change under the cache */
    if (sp->spilled && off > sp->mem_len) {
        uint64_t f = off - sp->mem_len;

        if (f >= sp->file_flushed) {
            sp->wlen = (size_t)(f - sp->file_flushed);
        } else {
            sp->wlen = 0;
            if (ftruncate(sp->fd, (off_t)f) != 0) {
                (void)io_error(err, "cannot truncate the spool file", sp->dir, errno);
                return fail(sp, err);
            }
            sp->file_flushed = f;
        }
        sp->file_len = f;
    } else {
        size_t keep;

        if (sp->fd >= 0 && sp->file_flushed > 0) {
            if (ftruncate(sp->fd, 0) != 0) {
                (void)io_error(err, "cannot truncate the spool file", sp->dir, errno);
                return fail(sp, err);
            }
        }
        sp->file_len = 0;
        sp->file_flushed = 0;
        sp->wlen = 0;
        sp->spilled = false;
        if (off < sp->mem_len) {
            sp->mem_len = off;
        }
        keep = (size_t)((sp->mem_len + AB_SPOOL_CHUNK - 1) / AB_SPOOL_CHUNK);
        free_chunks_from(sp, keep);
    }
    AB_ASSERT(dropped <= sp->count);
    sp->count -= dropped;
    AB_ASSERT(SPOOL_OK(sp));
    AB_ASSERT(ab_spool_end(sp) == off);
    return AB_OK;
}

enum ab_status ab_spool_reset(struct ab_spool *sp, struct ab_error *err)
{
    return ab_spool_truncate(sp, 0, err);
}

enum ab_status ab_spool_probe_dir(const char *dir, struct ab_error *err)
{
    const char *d = (dir && *dir) ? dir : default_dir();
    int fd = make_temp(d, AB_ERR_CONFIG, err);

    if (fd < 0) {
        return AB_ERR_CONFIG;
    }
    (void)close(fd);
    return AB_OK;
}
