/* deadletter.c - the rejected-records file: one JSON line per rejection. */
/* SPDX-License-Identifier: MIT */
/*
 * Lines go through a stdio stream with a large buffer; durability comes only
 * from ab_deadletter_sync() (fflush + fsync), which the driver calls before a
 * STATE covering rejected records is released. The first write, flush or
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

#include "ab/buf.h"
#include "ab/json.h"

#define DL_IOBUF_BYTES ((size_t)1024 * 1024)
#define DL_HEAD_MAX    ((size_t)1024 * 1024)

struct ab_deadletter {
    FILE *fp;
    char *path;
    char *iobuf;
    struct ab_buf head; /* the line up to "errors" */
    uint64_t count;
    const char *file;       /* borrowed: the input file of the next lines */
    struct ab_error sticky; /* code != AB_OK once something failed */
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

    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        (void)sys_error(err, AB_ERR_CONFIG, "cannot open dead-letter file", path, errno);
        return NULL;
    }
    dl = calloc(1, sizeof(*dl));
    if (!dl) {
        goto nomem;
    }
    ab_error_init(&dl->sticky);
    ab_buf_init(&dl->head, DL_HEAD_MAX);
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

enum ab_status ab_deadletter_sync(struct ab_deadletter *dl, struct ab_error *err)
{
    if (!dl) {
        return AB_OK;
    }
    if (dl->sticky.code != AB_OK) {
        return sticky_return(dl, err);
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

    if (!dl) {
        return AB_OK;
    }
    rc = ab_deadletter_sync(dl, err);
    if (fclose(dl->fp) != 0 && rc == AB_OK) {
        rc = fail_io(dl, "cannot close dead-letter file", errno, err);
    }
    dl->fp = NULL;
    ab_buf_release(&dl->head);
    free(dl->iobuf);
    free(dl->path);
    free(dl);
    return rc;
}

uint64_t ab_deadletter_count(const struct ab_deadletter *dl)
{
    return dl ? dl->count : 0;
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

/* Writes JSON text with CR/LF turned into spaces. */
static bool write_json_text(FILE *fp, const char *s, size_t n)
{
    size_t run = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] != '\n' && s[i] != '\r') {
            continue;
        }
        if (fwrite(s + run, 1, i - run, fp) != i - run || fputc(' ', fp) == EOF) {
            return false;
        }
        run = i + 1;
    }
    return fwrite(s + run, 1, n - run, fp) == n - run;
}

enum ab_status ab_deadletter_write(struct ab_deadletter *dl, const char *stream, const char *ns,
                                   uint64_t lineno, const char *rejected_by,
                                   const char *record_json, size_t record_len,
                                   const char *errors_json, struct ab_error *err)
{
    struct ab_buf *h;
    struct ab_error e;
    char when[64];
    enum ab_status rc = AB_OK;

    if (dl->sticky.code != AB_OK) {
        return sticky_return(dl, err);
    }
    h = &dl->head;
    ab_buf_reset(h);
    ab_error_init(&e);
    now_rfc3339(when, sizeof(when));
    if (!record_json || record_len == 0) {
        record_json = "null";
        record_len = 4;
    }
    if (!errors_json || !*errors_json) {
        errors_json = "[]";
    }
    rc = ab_buf_adds(h, "{\"stream\":", &e);
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(h, stream ? stream : "", &e);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(h, ",\"namespace\":", &e);
    }
    if (rc == AB_OK) {
        rc = ns ? ab_json_write_cstr(h, ns, &e) : ab_buf_adds(h, "null", &e);
    }
    if (rc == AB_OK) {
        rc = lineno ? ab_buf_printf(h, &e, ",\"line\":%llu", (unsigned long long)lineno)
                    : ab_buf_adds(h, ",\"line\":null", &e);
    }
    if (rc == AB_OK && dl->file) {
        rc = ab_buf_adds(h, ",\"file\":", &e);
        if (rc == AB_OK) {
            rc = ab_json_write_cstr(h, dl->file, &e);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(h, ",\"rejected_by\":", &e);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(h, rejected_by ? rejected_by : "destination", &e);
    }
    if (rc == AB_OK) {
        rc = ab_buf_printf(h, &e, ",\"rejected_at\":\"%s\",\"errors\":", when);
    }
    if (rc != AB_OK) {
        /* nothing was written yet: not sticky */
        if (err) {
            *err = e;
        }
        return rc;
    }
    if (fwrite(h->data, 1, h->len, dl->fp) != h->len ||
        !write_json_text(dl->fp, errors_json, strlen(errors_json)) ||
        fputs(",\"record\":", dl->fp) == EOF || !write_json_text(dl->fp, record_json, record_len) ||
        fputs("}\n", dl->fp) == EOF) {
        return fail_io(dl, "cannot write dead-letter file", errno, err);
    }
    dl->count++;
    return AB_OK;
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
