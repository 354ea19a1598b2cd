/* input.c - input files (plain or gzip) and the load checkpoint file. */
/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ab/buf.h"
#include "ab/json.h"

#include "input_int.h"

#define IN_CHUNK    ((size_t)64 * 1024)
#define ID_HEAD     ((size_t)64 * 1024)
#define CKPT_FORMAT "ab-load-checkpoint"
#define CKPT_MAX    ((size_t)16 * 1024 * 1024)

static enum ab_status sys_err(struct ab_error *err, enum ab_status code, const char *what,
                              const char *path, int e)
{
    char why[160];

    if (strerror_r(e, why, sizeof(why)) != 0) {
        (void)snprintf(why, sizeof(why), "errno %d", e);
    }
    return ab_error_set(err, code, "%s '%s': %s", what, path, why);
}

/* ---- input ------------------------------------------------------------------ */

enum ab_status ab_input_open(struct ab_input *in, const char *path, uint64_t start_offset,
                             struct ab_error *err)
{
    struct stat st;

    memset(in, 0, sizeof(*in));
    in->fd = -1;
    in->path = path;
    if (strcmp(path, "-") == 0) {
        in->is_stdin = true;
        in->fd = STDIN_FILENO;
    } else {
        in->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (in->fd < 0) {
            return sys_err(err, AB_ERR_CONFIG, "cannot open input file", path, errno);
        }
        if (fstat(in->fd, &st) == 0 && S_ISREG(st.st_mode)) {
            in->size = (uint64_t)st.st_size;
        }
    }
    in->raw = malloc(IN_CHUNK);
    in->out = malloc(IN_CHUNK);
    if (!in->raw || !in->out) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (input buffers)");
    }
    if (start_offset > 0) {
        unsigned char magic[2];
        ssize_t n = pread(in->fd, magic, 2, 0);

        if (n == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
            in->skip = start_offset; /* inflated from the start, dropped */
        } else if (lseek(in->fd, (off_t)start_offset, SEEK_SET) < 0) {
            return sys_err(err, AB_ERR_CONFIG, "cannot seek in input file", path, errno);
        } else {
            in->raw_read = start_offset;
            in->sniffed = true;
        }
    }
    return AB_OK;
}

void ab_input_close(struct ab_input *in)
{
    if (in->z_live) {
        (void)inflateEnd(&in->z);
        in->z_live = false;
    }
    if (in->fd >= 0 && !in->is_stdin) {
        (void)close(in->fd);
    }
    in->fd = -1;
    free(in->raw);
    free(in->out);
    in->raw = NULL;
    in->out = NULL;
}

/* Reads at most cap bytes into dst; *got 0 at end of file (*eof) or when
 * nothing was ready. */
static enum ab_status read_raw(struct ab_input *in, void *dst, size_t cap, size_t *got, bool *eof,
                               struct ab_error *err)
{
    ssize_t n = read(in->fd, dst, cap);

    *got = 0;
    *eof = n == 0;
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
            return AB_OK;
        }
        return sys_err(err, AB_ERR_IO, "cannot read input", in->path, errno);
    }
    *got = (size_t)n;
    in->raw_read += (uint64_t)n;
    return AB_OK;
}

/* Hands decompressed bytes to the reader, dropping what a resume skips. */
static enum ab_status deliver(struct ab_input *in, struct ab_jsonl_reader *r, const void *p,
                              size_t n, struct ab_error *err)
{
    const char *s = p;

    if (in->skip) {
        size_t k = in->skip < n ? (size_t)in->skip : n;

        in->skip -= k;
        s += k;
        n -= k;
    }
    return n ? ab_jsonl_reader_feed(r, s, n, err) : AB_OK;
}

static enum ab_status gz_error(struct ab_input *in, const char *what, struct ab_error *err)
{
    uint64_t at = in->raw_read - in->z.avail_in;

    in->corrupt = true;
    return ab_error_set(err, AB_ERR_PROTOCOL, "%s: %s at byte %" PRIu64 " of the compressed file",
                        in->is_stdin ? "stdin" : in->path, what, at);
}

/* Inflates what is in z.next_in/avail_in into the reader. */
static enum ab_status gz_pump(struct ab_input *in, struct ab_jsonl_reader *r, struct ab_error *err)
{
    while (in->z.avail_in > 0) {
        int zr;
        enum ab_status rc;

        if (in->z_end) {
            /* another member follows */
            if (inflateReset(&in->z) != Z_OK) {
                return gz_error(in, "cannot restart inflation", err);
            }
            in->z_end = false;
        }
        in->z.next_out = in->out;
        in->z.avail_out = (uInt)IN_CHUNK;
        zr = inflate(&in->z, Z_NO_FLUSH);
        if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
            char what[200];

            (void)snprintf(what, sizeof(what), "corrupt gzip data (%s)",
                           in->z.msg ? in->z.msg : "inflate failed");
            return gz_error(in, what, err);
        }
        rc = deliver(in, r, in->out, IN_CHUNK - in->z.avail_out, err);
        if (rc != AB_OK) {
            return rc;
        }
        if (zr == Z_STREAM_END) {
            in->z_end = true;
        } else if (zr == Z_BUF_ERROR && in->z.avail_out == IN_CHUNK) {
            break; /* needs more input */
        }
    }
    return AB_OK;
}

/* Plain input once sniffed: read straight into the line reader's buffer. */
static enum ab_status read_plain(struct ab_input *in, struct ab_jsonl_reader *r, bool *eof,
                                 struct ab_error *err)
{
    char *to;
    size_t room;
    size_t got = 0;
    enum ab_status rc = ab_jsonl_reader_space(r, IN_CHUNK, &to, &room, err);

    if (rc == AB_OK) {
        rc = read_raw(in, to, room, &got, eof, err);
    }
    return rc == AB_OK ? ab_jsonl_reader_commit(r, got, err) : rc;
}

enum ab_status ab_input_fill(struct ab_input *in, struct ab_jsonl_reader *r, bool *eof,
                             struct ab_error *err)
{
    size_t got;
    enum ab_status rc;

    *eof = false;
    if (in->sniffed && !in->gz && in->skip == 0) {
        return read_plain(in, r, eof, err);
    }
    rc = read_raw(in, in->raw, IN_CHUNK, &got, eof, err);
    if (rc != AB_OK) {
        return rc;
    }
    if (*eof) {
        if (in->gz && !in->z_end) {
            return gz_error(in, "truncated gzip data (the stream ends inside a member)", err);
        }
        return AB_OK;
    }
    if (got == 0) {
        return AB_OK;
    }
    if (!in->sniffed) {
        in->sniffed = true;
        in->gz = got >= 2 && in->raw[0] == 0x1f && in->raw[1] == 0x8b;
        if (in->gz) {
            memset(&in->z, 0, sizeof(in->z));
            if (inflateInit2(&in->z, 16 + MAX_WBITS) != Z_OK) {
                return ab_error_set(err, AB_ERR_NOMEM, "cannot start gzip inflation");
            }
            in->z_live = true;
        }
    }
    if (!in->gz) {
        return deliver(in, r, in->raw, got, err);
    }
    in->z.next_in = in->raw;
    in->z.avail_in = (uInt)got;
    return gz_pump(in, r, err);
}

/* ---- file identity ---------------------------------------------------------- */

enum ab_status ab_file_identify(const char *path, struct ab_file_id *id, struct ab_error *err)
{
    unsigned char *head;
    struct stat st;
    ssize_t n;
    int fd;

    memset(id, 0, sizeof(*id));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return sys_err(err, AB_ERR_CONFIG, "cannot open input file", path, errno);
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        (void)close(fd);
        return ab_error_set(err, AB_ERR_CONFIG,
                            "input '%s' is not a regular file: a checkpoint needs files it can "
                            "read again",
                            path);
    }
    head = malloc(ID_HEAD);
    if (!head) {
        (void)close(fd);
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    n = pread(fd, head, ID_HEAD, 0);
    (void)close(fd);
    if (n < 0) {
        free(head);
        return sys_err(err, AB_ERR_CONFIG, "cannot read input file", path, errno);
    }
    id->size = (uint64_t)st.st_size;
    id->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    id->head_crc32 = (uint32_t)crc32(crc32(0L, Z_NULL, 0), head, (uInt)n);
    free(head);
    return AB_OK;
}

/* ---- the checkpoint file ---------------------------------------------------- */

static enum ab_status ckpt_corrupt(const char *path, const char *why, struct ab_error *err)
{
    return ab_error_set(err, AB_ERR_CONFIG,
                        "checkpoint file '%s' %s; nothing was loaded. Delete it only to load "
                        "every file again from its start",
                        path, why);
}

static bool get_u64(yajl_val obj, const char *key, uint64_t *out)
{
    yajl_val v = ab_json_get(obj, key);

    if (!v || !YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0) {
        return false;
    }
    *out = (uint64_t)YAJL_GET_INTEGER(v);
    return true;
}

enum ab_status ab_load_ckpt_read(const char *path, const char *connector, const char *target,
                                 struct ab_load_file *files, size_t nfiles, bool *found,
                                 struct ab_error *err)
{
    struct ab_buf text;
    yajl_val root;
    yajl_val arr;
    enum ab_status rc = AB_OK;
    char why[1400];
    char chunk[4096];
    ssize_t n;
    int fd;

    *found = false;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return AB_OK;
        }
        return sys_err(err, AB_ERR_CONFIG, "cannot open checkpoint file", path, errno);
    }
    ab_buf_init(&text, CKPT_MAX);
    while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
        if (ab_buf_add(&text, chunk, (size_t)n, err) != AB_OK) {
            (void)close(fd);
            ab_buf_release(&text);
            return ckpt_corrupt(path, "is too large to be a checkpoint", err);
        }
    }
    (void)close(fd);
    if (n < 0) {
        ab_buf_release(&text);
        return sys_err(err, AB_ERR_CONFIG, "cannot read checkpoint file", path, errno);
    }
    *found = true;
    root = ab_json_parse(text.data ? text.data : "", text.len, err);
    ab_buf_release(&text);
    if (!root) {
        (void)snprintf(why, sizeof(why), "is corrupt (%.500s)", err->message);
        return ckpt_corrupt(path, why, err);
    }
    if (strcmp(ab_json_get_str(root, "format", ""), CKPT_FORMAT) != 0 ||
        ab_json_get_int(root, "version", 0) != 1) {
        rc = ckpt_corrupt(path, "is not a load checkpoint (format ab-load-checkpoint, version 1)",
                          err);
        goto out;
    }
    if (strcmp(ab_json_get_str(root, "connector", ""), connector) != 0 ||
        strcmp(ab_json_get_str(root, "target", ""), target) != 0) {
        (void)snprintf(why, sizeof(why),
                       "belongs to another load (%.100s, %.200s; this one is %.100s, %.200s)",
                       ab_json_get_str(root, "connector", "?"),
                       ab_json_get_str(root, "target", "?"), connector, target);
        rc = ckpt_corrupt(path, why, err);
        goto out;
    }
    arr = ab_json_get(root, "files");
    if (!arr || !YAJL_IS_ARRAY(arr) || arr->u.array.len != nfiles) {
        (void)snprintf(why, sizeof(why), "records %zu input file(s), this load names %zu",
                       arr && YAJL_IS_ARRAY(arr) ? arr->u.array.len : 0, nfiles);
        rc = ckpt_corrupt(path, why, err);
        goto out;
    }
    for (size_t i = 0; i < nfiles; i++) {
        yajl_val f = arr->u.array.values[i];
        struct ab_load_file *lf = &files[i];
        uint64_t size = 0;
        uint64_t mtime = 0;
        uint64_t crc = 0;
        yajl_val complete = ab_json_get(f, "complete");

        if (strcmp(ab_json_get_str(f, "path", ""), lf->path) != 0) {
            (void)snprintf(why, sizeof(why),
                           "records file %zu as '%.200s', this load names '%.200s'", i + 1,
                           ab_json_get_str(f, "path", "?"), lf->path);
            rc = ckpt_corrupt(path, why, err);
            goto out;
        }
        if (!get_u64(f, "size", &size) || !get_u64(f, "mtime_ns", &mtime) ||
            !get_u64(f, "head_crc32", &crc) || !get_u64(f, "offset", &lf->offset) ||
            !get_u64(f, "line", &lf->line) || !complete ||
            (complete->type != yajl_t_true && complete->type != yajl_t_false)) {
            (void)snprintf(why, sizeof(why),
                           "is corrupt (files[%zu] lacks a field or has one of "
                           "the wrong type)",
                           i);
            rc = ckpt_corrupt(path, why, err);
            goto out;
        }
        lf->complete = complete->type == yajl_t_true;
        if (size != lf->id.size || (int64_t)mtime != lf->id.mtime_ns || crc != lf->id.head_crc32) {
            (void)snprintf(why, sizeof(why),
                           "was recorded for another file '%.200s' (%s differs: the file was "
                           "replaced or changed)",
                           lf->path,
                           size != lf->id.size        ? "the size"
                           : crc != lf->id.head_crc32 ? "the content"
                                                      : "the modification time");
            rc = ckpt_corrupt(path, why, err);
            goto out;
        }
        if (lf->offset > 0 && lf->line == 0) {
            rc = ckpt_corrupt(path, "is corrupt (an offset without a line)", err);
            goto out;
        }
    }
out:
    ab_json_free(root);
    return rc;
}

enum ab_status ab_load_ckpt_write(const char *path, const char *connector, const char *target,
                                  const struct ab_load_file *files, size_t nfiles,
                                  struct ab_error *err)
{
    struct ab_buf b;
    struct ab_buf tmp;
    enum ab_status rc;
    int fd = -1;

    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    ab_buf_init(&tmp, AB_BUF_UNBOUNDED);
    rc = ab_buf_printf(&b, err, "{\"format\":\"%s\",\"version\":1,\"connector\":", CKPT_FORMAT);
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(&b, connector, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&b, ",\"target\":", err);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(&b, target, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&b, ",\"files\":[", err);
    }
    for (size_t i = 0; rc == AB_OK && i < nfiles; i++) {
        const struct ab_load_file *f = &files[i];

        rc = ab_buf_adds(&b, i ? ",\n{\"path\":" : "\n{\"path\":", err);
        if (rc == AB_OK) {
            rc = ab_json_write_cstr(&b, f->path, err);
        }
        if (rc == AB_OK) {
            rc = ab_buf_printf(&b, err,
                               ",\"size\":%" PRIu64 ",\"mtime_ns\":%" PRId64
                               ",\"head_crc32\":%" PRIu32 ",\"offset\":%" PRIu64
                               ",\"line\":%" PRIu64 ",\"complete\":%s}",
                               f->id.size, f->id.mtime_ns, f->id.head_crc32, f->offset, f->line,
                               f->complete ? "true" : "false");
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&b, "]}\n", err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_printf(&tmp, err, "%s.tmp", path);
    }
    if (rc != AB_OK) {
        goto out;
    }
    fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = sys_err(err, AB_ERR_IO, "cannot write checkpoint file", tmp.data, errno);
        goto out;
    }
    {
        size_t off = 0;

        while (off < b.len) {
            ssize_t w = write(fd, b.data + off, b.len - off);

            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w <= 0) {
                rc = sys_err(err, AB_ERR_IO, "cannot write checkpoint file", tmp.data, errno);
                goto out;
            }
            off += (size_t)w;
        }
    }
    if (fsync(fd) != 0) {
        rc = sys_err(err, AB_ERR_IO, "cannot sync checkpoint file", tmp.data, errno);
        goto out;
    }
    (void)close(fd);
    fd = -1;
    if (rename(tmp.data, path) != 0) {
        rc = sys_err(err, AB_ERR_IO, "cannot rename checkpoint file into", path, errno);
        goto out;
    }
    {
        /* the rename itself is durable once the directory is synced */
        const char *slash = strrchr(path, '/');
        struct ab_buf dir;

        ab_buf_init(&dir, AB_BUF_UNBOUNDED);
        if (slash == path) {
            rc = ab_buf_adds(&dir, "/", err);
        } else if (slash) {
            rc = ab_buf_add(&dir, path, (size_t)(slash - path), err);
        } else {
            rc = ab_buf_adds(&dir, ".", err);
        }
        if (rc == AB_OK) {
            int dfd = open(dir.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

            if (dfd >= 0) {
                (void)fsync(dfd);
                (void)close(dfd);
            }
        }
        ab_buf_release(&dir);
    }
out:
    if (fd >= 0) {
        (void)close(fd);
    }
    ab_buf_release(&tmp);
    ab_buf_release(&b);
    return rc;
}
