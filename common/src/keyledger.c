/* keyledger.c - sets of keys kept as sorted runs in files, merged and
 * compared with bounded memory. */
/* SPDX-License-Identifier: MIT */
#include "ab/keyledger.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include "ab/assert.h"

struct kr_set {
    uint64_t *files; /* ids of its run files */
    size_t n;
    size_t cap;
    uint64_t entries; /* of its run, once merged */
    bool merged;      /* one run, read through by a merge */
};

struct ab_keyruns {
    char dir[4096];
    size_t fan_in;
    uint64_t next_id;
    uint64_t passes;
    struct kr_set sets[AB_KEYRUNS_SETS];
    FILE *writing;
    int writing_set;
    uint64_t writing_id;
    FILE *reading;
};

/* One input of a merge: its current line and the key before it. */
struct kr_in {
    FILE *fp;
    uint64_t id;
    char *line;
    size_t len;
    size_t klen;
    char *prev;
    size_t prev_klen;
    uint64_t lineno;
    bool eof;
};

static enum ab_status io_fail(struct ab_error *err, const char *what, const char *path, int e)
{
    char msg[256];

    if (strerror_r(e, msg, sizeof(msg)) != 0) {
        (void)snprintf(msg, sizeof(msg), "error %d", e);
    }
    return ab_error_set(err, AB_ERR_IO, "key ledger: %s '%s': %s", what, path, msg);
}

enum ab_status ab_keyrun_escape(struct ab_buf *out, const char *s, size_t n, struct ab_error *err)
{
    enum ab_status rc = AB_OK;
    size_t i;

    for (i = 0; i < n && rc == AB_OK; i++) {
        switch (s[i]) {
        case '\\':
            rc = ab_buf_add(out, "\\\\", 2, err);
            break;
        case '\t':
            rc = ab_buf_add(out, "\\t", 2, err);
            break;
        case '\n':
            rc = ab_buf_add(out, "\\n", 2, err);
            break;
        default:
            rc = ab_buf_addc(out, s[i], err);
            break;
        }
    }
    return rc;
}

enum ab_status ab_keyrun_unescape(struct ab_buf *out, const char *s, size_t n, struct ab_error *err)
{
    enum ab_status rc = AB_OK;
    size_t i;

    for (i = 0; i < n && rc == AB_OK; i++) {
        char ch = s[i];

        if (ch == '\\' && i + 1 < n) {
            ch = s[++i];
            ch = ch == 't' ? '\t' : ch == 'n' ? '\n' : ch;
        }
        rc = ab_buf_addc(out, ch, err);
    }
    return rc;
}

size_t ab_keyrun_key_len(const char *line, size_t len)
{
    size_t i;

    for (i = 0; i < len && line[i] != '\t' && line[i] != '\n'; i++) {
    }
    return i;
}

static int key_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);

    if (c != 0) {
        return c;
    }
    return an < bn ? -1 : an > bn ? 1 : 0;
}

/* The value of a line of len bytes (without its '\n') whose key is klen. */
static int value_cmp(const char *a, size_t alen, size_t aklen, const char *b, size_t blen,
                     size_t bklen)
{
    size_t ao = aklen < alen ? aklen + 1 : alen;
    size_t bo = bklen < blen ? bklen + 1 : blen;

    return key_cmp(a + ao, alen - ao, b + bo, blen - bo);
}

struct kr_line {
    const char *p;
    size_t len; /* without '\n' */
    size_t klen;
};

static int line_order(const void *x, const void *y)
{
    const struct kr_line *a = x;
    const struct kr_line *b = y;
    int c = key_cmp(a->p, a->klen, b->p, b->klen);

    /* the greatest value first: it is the one kept */
    return c ? c : -value_cmp(a->p, a->len, a->klen, b->p, b->len, b->klen);
}

enum ab_status ab_keyrun_sort(struct ab_buf *in, struct ab_buf *out, struct ab_error *err)
{
    struct kr_line *lines = NULL;
    size_t n = 0;
    size_t cap = 0;
    size_t i = 0;
    enum ab_status rc = AB_OK;

    ab_buf_reset(out);
    while (i < in->len) {
        const char *p = in->data + i;
        const char *nl = memchr(p, '\n', in->len - i);
        size_t len = nl ? (size_t)(nl - p) : in->len - i;

        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            struct kr_line *m = realloc(lines, ncap * sizeof(*m));

            if (!m) {
                free(lines);
                return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
            }
            lines = m;
            cap = ncap;
        }
        lines[n].p = p;
        lines[n].len = len;
        lines[n].klen = ab_keyrun_key_len(p, len);
        n++;
        i += len + 1;
    }
    if (n) {
        qsort(lines, n, sizeof(*lines), line_order);
    }
    for (i = 0; i < n && rc == AB_OK; i++) {
        if (i > 0 && key_cmp(lines[i].p, lines[i].klen, lines[i - 1].p, lines[i - 1].klen) == 0) {
            continue;
        }
        rc = ab_buf_add(out, lines[i].p, lines[i].len, err);
        if (rc == AB_OK) {
            rc = ab_buf_addc(out, '\n', err);
        }
    }
    free(lines);
    return rc;
}

/* ---- files --------------------------------------------------------------- */

static void run_path(const struct ab_keyruns *kr, uint64_t id, char *out, size_t size)
{
    (void)snprintf(out, size, "%s/run-%llu", kr->dir, (unsigned long long)id);
}

struct ab_keyruns *ab_keyruns_new(size_t fan_in, struct ab_error *err)
{
    /* The one environment read of this module: the POSIX temporary
     * directory convention. */
    const char *t = getenv("TMPDIR"); /* NOLINT(concurrency-mt-unsafe) */
    struct ab_keyruns *kr;
    int n;

    AB_ASSERT(fan_in >= 2);
    kr = calloc(1, sizeof(*kr));
    if (!kr) {
        (void)ab_error_set(err, AB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    kr->fan_in = fan_in;
    n = snprintf(kr->dir, sizeof(kr->dir), "%s/ab-keys-XXXXXX", t && *t ? t : "/tmp");
    if (n < 0 || (size_t)n >= sizeof(kr->dir)) {
        (void)ab_error_set(err, AB_ERR_IO, "key ledger: temporary directory path too long");
        free(kr);
        return NULL;
    }
    /* mkdtemp creates it 0700: only this user reads the keys */
    if (!mkdtemp(kr->dir)) {
        (void)io_fail(err, "cannot create a private directory like", kr->dir, errno);
        free(kr);
        return NULL;
    }
    return kr;
}

void ab_keyruns_free(struct ab_keyruns *kr)
{
    DIR *dir;
    int s;

    if (!kr) {
        return;
    }
    if (kr->writing) {
        (void)fclose(kr->writing);
    }
    if (kr->reading) {
        (void)fclose(kr->reading);
    }
    dir = opendir(kr->dir);
    if (dir) {
        const struct dirent *e;

        while ((e = readdir(dir)) != NULL) {
            char path[4400];

            if (strncmp(e->d_name, "run-", 4) != 0) {
                continue;
            }
            (void)snprintf(path, sizeof(path), "%s/%s", kr->dir, e->d_name);
            (void)unlink(path);
        }
        (void)closedir(dir);
    }
    (void)rmdir(kr->dir);
    for (s = 0; s < AB_KEYRUNS_SETS; s++) {
        free(kr->sets[s].files);
    }
    free(kr);
}

static enum ab_status set_push(struct kr_set *st, uint64_t id, struct ab_error *err)
{
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 16;
        uint64_t *m = realloc(st->files, cap * sizeof(*m));

        if (!m) {
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
        }
        st->files = m;
        st->cap = cap;
    }
    st->files[st->n++] = id;
    return AB_OK;
}

static FILE *create_run(struct ab_keyruns *kr, uint64_t *id, struct ab_error *err)
{
    char path[4400];
    FILE *fp;
    int fd;

    *id = ++kr->next_id;
    run_path(kr, *id, path, sizeof(path));
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        (void)io_fail(err, "cannot create", path, errno);
        return NULL;
    }
    fp = fdopen(fd, "w");
    if (!fp) {
        (void)io_fail(err, "cannot open", path, errno);
        (void)close(fd);
        return NULL;
    }
    return fp;
}

static enum ab_status close_run(struct ab_keyruns *kr, FILE *fp, uint64_t id, struct ab_error *err)
{
    char path[4400];
    bool bad = ferror(fp) != 0;

    bad = fclose(fp) != 0 || bad;
    if (bad) {
        run_path(kr, id, path, sizeof(path));
        return io_fail(err, "cannot write", path, errno ? errno : EIO);
    }
    return AB_OK;
}

static void remove_run(const struct ab_keyruns *kr, uint64_t id)
{
    char path[4400];

    run_path(kr, id, path, sizeof(path));
    (void)unlink(path);
}

FILE *ab_keyruns_begin(struct ab_keyruns *kr, int set, struct ab_error *err)
{
    AB_ASSERT(kr && set >= 0 && set < AB_KEYRUNS_SETS && !kr->writing);
    kr->writing = create_run(kr, &kr->writing_id, err);
    kr->writing_set = set;
    return kr->writing;
}

enum ab_status ab_keyruns_end(struct ab_keyruns *kr, struct ab_error *err)
{
    FILE *fp = kr->writing;
    enum ab_status rc;

    AB_ASSERT(fp);
    kr->writing = NULL;
    rc = close_run(kr, fp, kr->writing_id, err);
    if (rc == AB_OK) {
        rc = set_push(&kr->sets[kr->writing_set], kr->writing_id, err);
    }
    if (rc != AB_OK) {
        remove_run(kr, kr->writing_id);
    }
    kr->sets[kr->writing_set].merged = false;
    return rc;
}

/* ---- merging --------------------------------------------------------------- */

/* Reads the next line of in: AB_OK with in->eof at the end. */
static enum ab_status in_next(struct ab_keyruns *kr, int set, struct kr_in *in,
                              struct ab_error *err)
{
    char path[4400];
    char *tmp;

    if (in->eof) {
        return AB_OK;
    }
    /* the line read becomes the previous one */
    tmp = in->prev;
    in->prev = in->line;
    in->line = tmp;
    in->prev_klen = in->klen;
    if (!fgets(in->line, AB_KEYRUN_LINE_MAX + 2, in->fp)) {
        if (ferror(in->fp)) {
            run_path(kr, in->id, path, sizeof(path));
            return io_fail(err, "cannot read", path, errno ? errno : EIO);
        }
        in->eof = true;
        return AB_OK;
    }
    in->lineno++;
    in->len = strlen(in->line);
    if (in->len == 0 || in->line[in->len - 1] != '\n') {
        return ab_error_set(err, AB_ERR_PROTOCOL, "key ledger: a run of set %d, line %llu: %s", set,
                            (unsigned long long)in->lineno,
                            in->len > AB_KEYRUN_LINE_MAX ? "line too long" : "no end of line");
    }
    in->len--;
    in->line[in->len] = '\0';
    in->klen = ab_keyrun_key_len(in->line, in->len);
    if (in->lineno > 1 && key_cmp(in->prev, in->prev_klen, in->line, in->klen) >= 0) {
        return ab_error_set(err, AB_ERR_PROTOCOL,
                            "key ledger: a run of set %d, line %llu: keys out of order or "
                            "repeated",
                            set, (unsigned long long)in->lineno);
    }
    return AB_OK;
}

static void ins_close(struct kr_in *ins, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (ins[i].fp) {
            (void)fclose(ins[i].fp);
        }
        free(ins[i].line);
        free(ins[i].prev);
    }
    free(ins);
}

static struct kr_in *ins_open(struct ab_keyruns *kr, int set, const uint64_t *ids, size_t n,
                              struct ab_error *err)
{
    struct kr_in *ins = calloc(n ? n : 1, sizeof(*ins));
    size_t i;

    if (!ins) {
        (void)ab_error_set(err, AB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    for (i = 0; i < n; i++) {
        char path[4400];

        ins[i].id = ids[i];
        ins[i].line = malloc(AB_KEYRUN_LINE_MAX + 2);
        ins[i].prev = malloc(AB_KEYRUN_LINE_MAX + 2);
        if (!ins[i].line || !ins[i].prev) {
            (void)ab_error_set(err, AB_ERR_NOMEM, "out of memory");
            ins_close(ins, n);
            return NULL;
        }
        ins[i].line[0] = '\0';
        run_path(kr, ids[i], path, sizeof(path));
        ins[i].fp = fopen(path, "re");
        if (!ins[i].fp) {
            (void)io_fail(err, "cannot open", path, errno);
            ins_close(ins, n);
            return NULL;
        }
        if (in_next(kr, set, &ins[i], err) != AB_OK) {
            ins_close(ins, n);
            return NULL;
        }
    }
    return ins;
}

/* Merges runs ids[0..n) of set into a new run; *out its id. */
static enum ab_status merge_group(struct ab_keyruns *kr, int set, const uint64_t *ids, size_t n,
                                  uint64_t *out, uint64_t *entries, struct ab_error *err)
{
    struct kr_in *ins = ins_open(kr, set, ids, n, err);
    FILE *fp;
    enum ab_status rc = AB_OK;

    *entries = 0;
    if (!ins) {
        return err->code;
    }
    fp = create_run(kr, out, err);
    if (!fp) {
        ins_close(ins, n);
        return err->code;
    }
    for (;;) {
        struct kr_in *best = NULL;
        size_t i;

        /* the smallest key; of equal keys the greatest value */
        for (i = 0; i < n; i++) {
            struct kr_in *in = &ins[i];
            int c;

            if (in->eof) {
                continue;
            }
            c = best ? key_cmp(in->line, in->klen, best->line, best->klen) : -1;
            if (c < 0 || (c == 0 && value_cmp(in->line, in->len, in->klen, best->line, best->len,
                                              best->klen) > 0)) {
                best = in;
            }
        }
        if (!best) {
            break;
        }
        if (fwrite(best->line, 1, best->len, fp) != best->len || fputc('\n', fp) == EOF) {
            break; /* close_run reports it */
        }
        (*entries)++;
        {
            /* every input at that key moves on (best last: its line is the key) */
            for (i = 0; i < n && rc == AB_OK; i++) {
                struct kr_in *in = &ins[i];

                if (in != best && !in->eof &&
                    key_cmp(in->line, in->klen, best->line, best->klen) == 0) {
                    rc = in_next(kr, set, in, err);
                }
            }
            if (rc == AB_OK) {
                rc = in_next(kr, set, best, err);
            }
        }
        if (rc != AB_OK) {
            break;
        }
    }
    ins_close(ins, n);
    if (rc != AB_OK) {
        (void)fclose(fp);
        remove_run(kr, *out);
        return rc;
    }
    rc = close_run(kr, fp, *out, err);
    if (rc != AB_OK) {
        remove_run(kr, *out);
    }
    return rc;
}

enum ab_status ab_keyruns_merge(struct ab_keyruns *kr, int set, struct ab_error *err)
{
    struct kr_set *st;

    AB_ASSERT(kr && set >= 0 && set < AB_KEYRUNS_SETS && !kr->writing);
    st = &kr->sets[set];
    if (st->n == 0) {
        FILE *fp = ab_keyruns_begin(kr, set, err);

        enum ab_status rc = fp ? ab_keyruns_end(kr, err) : err->code;

        st->entries = 0;
        st->merged = rc == AB_OK;
        return rc;
    }
    if (st->merged) {
        return AB_OK;
    }
    do {
        /* one pass: groups of fan_in runs become one run each */
        size_t done = 0;
        size_t kept = 0;

        kr->passes++;
        while (done < st->n) {
            size_t take = st->n - done < kr->fan_in ? st->n - done : kr->fan_in;
            uint64_t id = 0;
            uint64_t entries = 0;
            enum ab_status rc = merge_group(kr, set, st->files + done, take, &id, &entries, err);
            size_t i;

            if (rc != AB_OK) {
                return rc;
            }
            for (i = done; i < done + take; i++) {
                remove_run(kr, st->files[i]);
            }
            done += take;
            st->files[kept++] = id; /* kept <= done - take + 1 <= done */
            st->entries = entries;
        }
        st->n = kept;
    } while (st->n > 1);
    st->merged = true;
    return AB_OK;
}

static void set_clear(struct ab_keyruns *kr, int set)
{
    struct kr_set *st = &kr->sets[set];
    size_t i;

    for (i = 0; i < st->n; i++) {
        remove_run(kr, st->files[i]);
    }
    st->n = 0;
    st->entries = 0;
    st->merged = false;
}

enum ab_status ab_keyruns_difference(struct ab_keyruns *kr, int a, int b, int out,
                                     struct ab_error *err)
{
    enum ab_status rc;
    struct kr_in *ins;
    uint64_t ids[2];
    uint64_t id = 0;
    uint64_t entries = 0;
    FILE *fp;

    AB_ASSERT(a != b && a != out && b != out);
    rc = ab_keyruns_merge(kr, a, err);
    if (rc == AB_OK) {
        rc = ab_keyruns_merge(kr, b, err);
    }
    if (rc != AB_OK) {
        return rc;
    }
    set_clear(kr, out);
    ids[0] = kr->sets[a].files[0];
    ids[1] = kr->sets[b].files[0];
    ins = ins_open(kr, a, ids, 2, err);
    if (!ins) {
        return err->code;
    }
    fp = create_run(kr, &id, err);
    if (!fp) {
        ins_close(ins, 2);
        return err->code;
    }
    while (rc == AB_OK && !ins[0].eof) {
        int c = ins[1].eof ? -1 : key_cmp(ins[0].line, ins[0].klen, ins[1].line, ins[1].klen);

        if (c > 0) {
            rc = in_next(kr, b, &ins[1], err);
            continue;
        }
        if (c < 0) {
            if (fwrite(ins[0].line, 1, ins[0].len, fp) != ins[0].len || fputc('\n', fp) == EOF) {
                break;
            }
            entries++;
        }
        rc = in_next(kr, a, &ins[0], err);
    }
    ins_close(ins, 2);
    if (rc != AB_OK) {
        (void)fclose(fp);
        remove_run(kr, id);
        return rc;
    }
    rc = close_run(kr, fp, id, err);
    if (rc == AB_OK) {
        rc = set_push(&kr->sets[out], id, err);
    }
    if (rc != AB_OK) {
        remove_run(kr, id);
        return rc;
    }
    kr->sets[out].entries = entries;
    kr->sets[out].merged = true;
    return AB_OK;
}

size_t ab_keyruns_runs(const struct ab_keyruns *kr, int set)
{
    return kr->sets[set].n;
}

uint64_t ab_keyruns_entries(const struct ab_keyruns *kr, int set)
{
    return kr->sets[set].entries;
}

uint64_t ab_keyruns_passes(const struct ab_keyruns *kr)
{
    return kr->passes;
}

FILE *ab_keyruns_open(struct ab_keyruns *kr, int set, struct ab_error *err)
{
    char path[4400];

    AB_ASSERT(kr && set >= 0 && set < AB_KEYRUNS_SETS && kr->sets[set].n == 1);
    if (kr->reading) {
        (void)fclose(kr->reading);
    }
    run_path(kr, kr->sets[set].files[0], path, sizeof(path));
    kr->reading = fopen(path, "re");
    if (!kr->reading) {
        (void)io_fail(err, "cannot open", path, errno);
    }
    return kr->reading;
}

int ab_keyruns_next(FILE *fp, struct ab_buf *line, struct ab_error *err)
{
    int ch;

    ab_buf_reset(line);
    while ((ch = getc(fp)) != EOF && ch != '\n') {
        if (ab_buf_addc(line, (char)ch, err) != AB_OK) {
            return -1;
        }
    }
    if (ch == EOF && ferror(fp)) {
        (void)ab_error_set(err, AB_ERR_IO, "key ledger: cannot read a merged run");
        return -1;
    }
    if (ch == EOF && line->len == 0) {
        return 0;
    }
    if (ab_buf_addc(line, '\0', err) != AB_OK) {
        return -1;
    }
    line->len--;
    return 1;
}
