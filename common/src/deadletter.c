/* deadletter.c - rejected records: one JSON line per rejection, to a file or a bucket. */
/* SPDX-License-Identifier: MIT */
/*
 * The one funnel every rejection goes through. A line is composed in memory
 * and handed to the sink: a file (a stdio stream with a large buffer), an
 * object store (one buffer per stream, put as one object per stream and
 * sync), or none (counted only). Durability comes only from
 * ab_deadletter_sync() (file: fflush + fsync; object store: every non-empty
 * buffer put), which the driver calls before a STATE covering rejected
 * records is released; a buffer that outgrows DL_OBJ_FLUSH_BYTES is put
 * earlier, so memory stays bounded. The first write, flush or
 * sync failure is sticky: every later call returns it without doing I/O, so a
 * half-written line is never followed by more lines that look fine.
 * Record and error texts are copied byte for byte, except that CR and LF
 * (legal in JSON only as whitespace between tokens) become spaces so that a
 * line is always one JSON document.
 */
#include "ab/deadletter.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ab/assert.h"
#include "ab/buf.h"
#include "ab/json.h"
#include "ab/objstore.h"

#define DL_IOBUF_BYTES     ((size_t)1024 * 1024)
#define DL_OBJ_FLUSH_BYTES ((size_t)8 * 1024 * 1024)

/* Object-store lines of one stream not put yet. */
struct dl_part {
    char *stream; /* the key segment: "ns.name" or "name", '/' as '_' */
    struct ab_buf lines;
    struct dl_part *next;
};

struct ab_deadletter {
    enum ab_deadletter_kind kind;
    FILE *fp;
    char *path; /* file path, or "s3://bucket/prefix" for messages */
    char *iobuf;
    struct ab_buf line; /* the line being composed */
    uint64_t count;
    const char *file;       /* borrowed: the input file of the next lines */
    struct ab_error sticky; /* code != AB_OK once something failed */
    /* object store */
    struct ab_objstore *os;
    char *prefix;   /* without a trailing '/', may be "" */
    char *run_name; /* object names: <run_name>-<n>.jsonl */
    struct dl_part *parts;
    size_t buffered;
    unsigned objects;
    struct ab_buf key;
};

static enum ab_status sys_error(struct ab_error *err, enum ab_status code, const char *what,
                                const char *path, int errnum)
{
    char why[256];

    if (strerror_r(errnum, why, sizeof(why)) != 0) {
        (void)snprintf(why, sizeof(why), "error %d", errnum);
    }
    return ab_error_set(err, code, "%s '%s': %s", what, path, why);
}

static enum ab_status sticky_return(const struct ab_deadletter *dl, struct ab_error *err)
{
    if (err) {
        *err = dl->sticky;
    }
    return dl->sticky.code;
}

/* Records the first I/O failure and returns it. */
static enum ab_status fail_io(struct ab_deadletter *dl, const char *what, int errnum,
                              struct ab_error *err)
{
    if (dl->sticky.code == AB_OK) {
        (void)sys_error(&dl->sticky, AB_ERR_IO, what, dl->path, errnum);
    }
    return sticky_return(dl, err);
}

struct ab_deadletter *ab_deadletter_open(const char *path, struct ab_error *err)
{
    struct ab_deadletter *dl = NULL;
    size_t n = strlen(path) + 1;
    int fd = -1;

    /* A symbolic link at the path is not followed (the default path under
     * the temporary directory is predictable), and an existing file holding
     * customer data is made private like a new one. */
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        if (errno == ELOOP) {
            (void)ab_error_set(err, AB_ERR_CONFIG,
                               "cannot open dead-letter file '%s': it is a symbolic link, which "
                               "is not followed",
                               path);
        } else {
            (void)sys_error(err, AB_ERR_CONFIG, "cannot open dead-letter file", path, errno);
        }
        return NULL;
    }
    {
        struct stat st;

        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) != 0 &&
            fchmod(fd, 0600) != 0) {
            (void)sys_error(err, AB_ERR_CONFIG, "cannot make dead-letter file private", path,
                            errno);
            (void)close(fd);
            return NULL;
        }
    }
    dl = calloc(1, sizeof(*dl));
    if (!dl) {
        goto nomem;
    }
    ab_error_init(&dl->sticky);
    dl->kind = AB_DL_FILE;
    ab_buf_init(&dl->line, AB_BUF_UNBOUNDED);
    ab_buf_init(&dl->key, 8192);
    dl->path = malloc(n);
    dl->iobuf = malloc(DL_IOBUF_BYTES);
    if (!dl->path || !dl->iobuf) {
        goto nomem;
    }
    memcpy(dl->path, path, n);
    dl->fp = fdopen(fd, "a");
    if (!dl->fp) {
        (void)sys_error(err, AB_ERR_IO, "cannot open dead-letter file", path, errno);
        goto fail;
    }
    fd = -1; /* the stream owns it now */
    if (setvbuf(dl->fp, dl->iobuf, _IOFBF, DL_IOBUF_BYTES) != 0) {
        (void)ab_error_set(err, AB_ERR_IO, "cannot set up dead-letter file '%s'", path);
        goto fail;
    }
    return dl;
nomem:
    (void)ab_error_set(err, AB_ERR_NOMEM, "out of memory");
fail:
    if (fd >= 0) {
        (void)close(fd);
    }
    if (dl) {
        if (dl->fp) {
            (void)fclose(dl->fp);
        }
        free(dl->iobuf);
        free(dl->path);
        free(dl);
    }
    return NULL;
}

struct ab_deadletter *ab_deadletter_open_target(const struct ab_deadletter_target *t,
                                                struct ab_error *err)
{
    struct ab_deadletter *dl;
    const char *prefix;
    size_t n;

    if (t->kind == AB_DL_FILE) {
        return ab_deadletter_open(t->path, err);
    }
    dl = calloc(1, sizeof(*dl));
    if (!dl) {
        (void)ab_error_set(err, AB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    ab_error_init(&dl->sticky);
    dl->kind = t->kind;
    ab_buf_init(&dl->line, AB_BUF_UNBOUNDED);
    ab_buf_init(&dl->key, 8192);
    if (t->kind == AB_DL_NONE) {
        return dl;
    }
    AB_ASSERT(t->kind == AB_DL_OBJSTORE);
    prefix = t->prefix ? t->prefix : "";
    while (*prefix == '/') {
        prefix++;
    }
    dl->prefix = strdup(prefix);
    dl->run_name = strdup(t->run_name && *t->run_name ? t->run_name : "rejected");
    n = strlen(t->store.bucket ? t->store.bucket : "") + strlen(prefix) + 8;
    dl->path = malloc(n);
    if (!dl->prefix || !dl->run_name || !dl->path) {
        (void)ab_error_set(err, AB_ERR_NOMEM, "out of memory");
        (void)ab_deadletter_close(dl, NULL);
        return NULL;
    }
    (void)snprintf(dl->path, n, "s3://%s/%s", t->store.bucket ? t->store.bucket : "", prefix);
    n = strlen(dl->prefix);
    while (n > 0 && dl->prefix[n - 1] == '/') {
        dl->prefix[--n] = '\0';
    }
    dl->os = ab_objstore_new(&t->store, err);
    if (!dl->os) {
        (void)ab_deadletter_close(dl, NULL);
        return NULL;
    }
    return dl;
}

/* "2024-05-01" (UTC) */
static void today(char *buf, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;

    if (!gmtime_r(&now, &tm) || strftime(buf, size, "%Y-%m-%d", &tm) == 0) {
        (void)snprintf(buf, size, "1970-01-01");
    }
}

/* Puts every non-empty stream buffer as one object. */
static enum ab_status put_parts(struct ab_deadletter *dl, struct ab_error *err)
{
    struct dl_part *p;
    char date[32];
    enum ab_status rc = AB_OK;

    today(date, sizeof(date));
    for (p = dl->parts; p && rc == AB_OK; p = p->next) {
        struct ab_error e;

        if (p->lines.len == 0) {
            continue;
        }
        ab_error_init(&e);
        ab_buf_reset(&dl->key);
        rc = ab_buf_printf(&dl->key, &e, "%s%s%s/%s/%s-%06u.jsonl", dl->prefix,
                           *dl->prefix ? "/" : "", p->stream, date, dl->run_name, dl->objects + 1);
        if (rc == AB_OK) {
            rc = ab_objstore_put(dl->os, dl->key.data, p->lines.data, p->lines.len,
                                 "application/x-ndjson", &e);
        }
        if (rc != AB_OK) {
            if (dl->sticky.code == AB_OK) {
                dl->sticky = e;
            }
            return sticky_return(dl, err);
        }
        dl->objects++;
        dl->buffered -= p->lines.len;
        ab_buf_reset(&p->lines);
    }
    return rc;
}

enum ab_status ab_deadletter_sync(struct ab_deadletter *dl, struct ab_error *err)
{
    if (!dl) {
        return AB_OK;
    }
    if (dl->sticky.code != AB_OK) {
        return sticky_return(dl, err);
    }
    if (dl->kind == AB_DL_NONE) {
        return AB_OK;
    }
    if (dl->kind == AB_DL_OBJSTORE) {
        return put_parts(dl, err);
    }
    if (fflush(dl->fp) != 0) {
        return fail_io(dl, "cannot write dead-letter file", errno, err);
    }
    if (fsync(fileno(dl->fp)) != 0) {
        return fail_io(dl, "cannot sync dead-letter file", errno, err);
    }
    return AB_OK;
}

enum ab_status ab_deadletter_close(struct ab_deadletter *dl, struct ab_error *err)
{
    enum ab_status rc;
    struct dl_part *p;

    if (!dl) {
        return AB_OK;
    }
    rc = dl->os || dl->fp ? ab_deadletter_sync(dl, err) : AB_OK;
    if (dl->fp && fclose(dl->fp) != 0 && rc == AB_OK) {
        rc = fail_io(dl, "cannot close dead-letter file", errno, err);
    }
    dl->fp = NULL;
    while ((p = dl->parts) != NULL) {
        dl->parts = p->next;
        ab_buf_release(&p->lines);
        free(p->stream);
        free(p);
    }
    ab_objstore_free(dl->os);
    ab_buf_release(&dl->line);
    ab_buf_release(&dl->key);
    free(dl->iobuf);
    free(dl->path);
    free(dl->prefix);
    free(dl->run_name);
    free(dl);
    return rc;
}

uint64_t ab_deadletter_count(const struct ab_deadletter *dl)
{
    return dl ? dl->count : 0;
}

enum ab_deadletter_kind ab_deadletter_kind(const struct ab_deadletter *dl)
{
    return dl ? dl->kind : AB_DL_NONE;
}

const char *ab_deadletter_where(const struct ab_deadletter *dl)
{
    return dl && dl->path ? dl->path : "";
}

/* "2024-05-01T12:00:00.123Z" */
static void now_rfc3339(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || !gmtime_r(&ts.tv_sec, &tm)) {
        (void)snprintf(buf, size, "1970-01-01T00:00:00.000Z");
        return;
    }
    n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    (void)snprintf(buf + n, size - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
}

/* Adds JSON text with CR/LF turned into spaces ("null" when empty). */
static enum ab_status add_json_text(struct ab_buf *b, const char *s, size_t n, struct ab_error *err)
{
    size_t run = 0;
    size_t i;
    enum ab_status rc = AB_OK;

    if (!s || n == 0) {
        return ab_buf_adds(b, "null", err);
    }
    for (i = 0; i < n && rc == AB_OK; i++) {
        if (s[i] != '\n' && s[i] != '\r') {
            continue;
        }
        rc = ab_buf_add(b, s + run, i - run, err);
        if (rc == AB_OK) {
            rc = ab_buf_addc(b, ' ', err);
        }
        run = i + 1;
    }
    return rc == AB_OK ? ab_buf_add(b, s + run, n - run, err) : rc;
}

static enum ab_status compose(struct ab_buf *h, const struct ab_rejected *r, const char *file,
                              struct ab_error *err)
{
    char when[64];
    enum ab_status rc;
    const char *errors = r->errors_json && *r->errors_json ? r->errors_json : "[]";

    now_rfc3339(when, sizeof(when));
    ab_buf_reset(h);
    rc = ab_buf_adds(h, "{\"stream\":", err);
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(h, r->stream ? r->stream : "", err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(h, ",\"namespace\":", err);
    }
    if (rc == AB_OK) {
        rc = r->ns ? ab_json_write_cstr(h, r->ns, err) : ab_buf_adds(h, "null", err);
    }
    if (rc == AB_OK) {
        rc = r->lineno ? ab_buf_printf(h, err, ",\"line\":%llu", (unsigned long long)r->lineno)
                       : ab_buf_adds(h, ",\"line\":null", err);
    }
    if (rc == AB_OK && file) {
        rc = ab_buf_adds(h, ",\"file\":", err);
        if (rc == AB_OK) {
            rc = ab_json_write_cstr(h, file, err);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(h, ",\"rejected_by\":", err);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(h, r->rejected_by ? r->rejected_by : "destination", err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_printf(h, err, ",\"rejected_at\":\"%s\",\"errors\":", when);
    }
    if (rc == AB_OK) {
        rc = add_json_text(h, errors, strlen(errors), err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(h, ",\"record\":", err);
    }
    if (rc == AB_OK) {
        rc = add_json_text(h, r->received, r->received_len, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(h, ",\"record_sent\":", err);
    }
    if (rc == AB_OK) {
        rc = add_json_text(h, r->sent, r->sent_len, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(h, "}\n", err);
    }
    return rc;
}

/* The stream's buffer, created on first use. */
static struct dl_part *part_of(struct ab_deadletter *dl, const char *stream, const char *ns)
{
    struct dl_part *p;
    char name[600];
    char *c;

    if (ns && *ns) {
        (void)snprintf(name, sizeof(name), "%s.%s", ns, stream ? stream : "");
    } else {
        (void)snprintf(name, sizeof(name), "%s", stream && *stream ? stream : "_");
    }
    for (c = name; *c; c++) {
        if (*c == '/') {
            *c = '_';
        }
    }
    for (p = dl->parts; p; p = p->next) {
        if (strcmp(p->stream, name) == 0) {
            return p;
        }
    }
    p = calloc(1, sizeof(*p));
    if (!p) {
        return NULL;
    }
    p->stream = strdup(name);
    if (!p->stream) {
        free(p);
        return NULL;
    }
    ab_buf_init(&p->lines, AB_BUF_UNBOUNDED);
    p->next = dl->parts;
    dl->parts = p;
    return p;
}

enum ab_status ab_deadletter_put(struct ab_deadletter *dl, const struct ab_rejected *r,
                                 struct ab_error *err)
{
    struct ab_error e;
    enum ab_status rc;
    struct dl_part *p;

    if (dl->sticky.code != AB_OK) {
        return sticky_return(dl, err);
    }
    ab_error_init(&e);
    if (dl->kind == AB_DL_NONE) {
        dl->count++;
        return AB_OK;
    }
    rc = compose(&dl->line, r, dl->file, &e);
    if (rc != AB_OK) {
        /* nothing was written yet: not sticky */
        if (err) {
            *err = e;
        }
        return rc;
    }
    if (dl->kind == AB_DL_FILE) {
        if (fwrite(dl->line.data, 1, dl->line.len, dl->fp) != dl->line.len) {
            return fail_io(dl, "cannot write dead-letter file", errno, err);
        }
        dl->count++;
        return AB_OK;
    }
    p = part_of(dl, r->stream, r->ns);
    if (!p) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    rc = ab_buf_add(&p->lines, dl->line.data, dl->line.len, &e);
    if (rc != AB_OK) {
        if (err) {
            *err = e;
        }
        return rc;
    }
    dl->buffered += dl->line.len;
    dl->count++;
    if (dl->buffered >= DL_OBJ_FLUSH_BYTES) {
        return put_parts(dl, err);
    }
    return AB_OK;
}

enum ab_status ab_deadletter_write(struct ab_deadletter *dl, const char *stream, const char *ns,
                                   uint64_t lineno, const char *rejected_by,
                                   const char *record_json, size_t record_len,
                                   const char *errors_json, struct ab_error *err)
{
    struct ab_rejected r = {.stream = stream,
                            .ns = ns,
                            .lineno = lineno,
                            .rejected_by = rejected_by,
                            .received = record_json,
                            .received_len = record_len,
                            .errors_json = errors_json};

    return ab_deadletter_put(dl, &r, err);
}

enum ab_status ab_deadletter_probe_target(const struct ab_deadletter_target *t,
                                          struct ab_error *err)
{
    struct ab_objstore *os;
    struct ab_buf key;
    enum ab_status rc;
    const char *prefix;

    if (t->kind == AB_DL_NONE) {
        return AB_OK;
    }
    if (t->kind == AB_DL_FILE) {
        return ab_deadletter_probe(t->path, err);
    }
    os = ab_objstore_new(&t->store, err);
    if (!os) {
        return err->code;
    }
    prefix = t->prefix ? t->prefix : "";
    while (*prefix == '/') {
        prefix++;
    }
    ab_buf_init(&key, 8192);
    rc = ab_buf_printf(&key, err, "%s%s_check/%s.txt", prefix,
                       *prefix && prefix[strlen(prefix) - 1] != '/' ? "/" : "",
                       t->run_name && *t->run_name ? t->run_name : "check");
    if (rc == AB_OK) {
        rc = ab_objstore_put(os, key.data, "check\n", 6, "text/plain", err);
    }
    if (rc == AB_OK) {
        rc = ab_objstore_delete(os, key.data, err);
    }
    ab_buf_release(&key);
    ab_objstore_free(os);
    return rc;
}

enum ab_status ab_deadletter_probe(const char *path, struct ab_error *err)
{
    enum ab_status rc = AB_OK;
    struct stat st;
    char *dir = NULL;
    char *slash;
    size_t n;

    if (!path || !*path) {
        return ab_error_set(err, AB_ERR_CONFIG, "dead-letter file path is empty");
    }
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            return ab_error_set(err, AB_ERR_CONFIG, "cannot write dead-letter file '%s': %s", path,
                                "is a directory");
        }
        if (access(path, W_OK) != 0) {
            return sys_error(err, AB_ERR_CONFIG, "cannot write dead-letter file", path, errno);
        }
        return AB_OK;
    }
    if (errno != ENOENT) {
        return sys_error(err, AB_ERR_CONFIG, "cannot access dead-letter file", path, errno);
    }
    n = strlen(path);
    dir = malloc(n + 2);
    if (!dir) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    memcpy(dir, path, n + 1);
    slash = strrchr(dir, '/');
    if (!slash) {
        memcpy(dir, ".", 2);
    } else if (slash == dir) {
        dir[1] = '\0';
    } else {
        *slash = '\0';
    }
    if (stat(dir, &st) != 0) {
        rc = sys_error(err, AB_ERR_CONFIG, "cannot create dead-letter file", path, errno);
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        rc =
            ab_error_set(err, AB_ERR_CONFIG,
                         "cannot create dead-letter file '%s': '%s' is not a directory", path, dir);
        goto out;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        rc = sys_error(err, AB_ERR_CONFIG, "cannot create dead-letter file", path, errno);
        goto out;
    }
out:
    free(dir);
    return rc;
}

void ab_deadletter_set_file(struct ab_deadletter *dl, const char *file)
{
    dl->file = file;
}
