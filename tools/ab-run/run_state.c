/* run_state.c - ab-run's state file: acknowledged states merged as the platform does. */
/* SPDX-License-Identifier: MIT */
#include "run_state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <unistd.h>

#include "ab/buf.h"
#include "ab/json.h"

/* Largest state file read back. */
#define STATE_FILE_MAX ((size_t)256 * 1024 * 1024)

struct entry {
    char *ns;   /* NULL: no namespace */
    char *name; /* NULL: a GLOBAL or LEGACY state (the only entry) */
    char *text; /* the state message as compact JSON */
};

struct run_state {
    char *path;
    struct entry *e;
    size_t n;
    size_t cap;
    bool exists;
    bool failed; /* a write failed */
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void clear_entries(struct run_state *s)
{
    size_t i;

    for (i = 0; i < s->n; i++) {
        free(s->e[i].ns);
        free(s->e[i].name);
        free(s->e[i].text);
    }
    s->n = 0;
}

void run_state_free(struct run_state *s)
{
    if (s) {
        clear_entries(s);
        free(s->e);
        free(s->path);
        free(s);
    }
}

size_t run_state_entries(const struct run_state *s)
{
    return s->n;
}

bool run_state_saved(const struct run_state *s)
{
    return !s->failed;
}

bool run_state_exists(const struct run_state *s)
{
    return s->exists;
}

/* The state object as compact JSON, without the statistics members. */
static enum ab_status serialise(yajl_val st, struct ab_buf *out, struct ab_error *err)
{
    size_t i;
    bool first = true;
    enum ab_status rc = ab_buf_addc(out, '{', err);

    for (i = 0; rc == AB_OK && i < st->u.object.len; i++) {
        const char *k = st->u.object.keys[i];

        if (strcmp(k, "sourceStats") == 0 || strcmp(k, "destinationStats") == 0) {
            continue;
        }
        if (!first) {
            rc = ab_buf_addc(out, ',', err);
        }
        first = false;
        if (rc == AB_OK) {
            rc = ab_json_write_cstr(out, k, err);
        }
        if (rc == AB_OK) {
            rc = ab_buf_addc(out, ':', err);
        }
        if (rc == AB_OK) {
            rc = ab_json_write(out, st->u.object.values[i], err);
        }
    }
    return rc == AB_OK ? ab_buf_addc(out, '}', err) : rc;
}

/* Kind of a state object: its stream descriptor for a STREAM state
 * (*name set), nothing for GLOBAL/LEGACY. */
static enum ab_status describe(yajl_val st, const char **ns, const char **name,
                               struct ab_error *err)
{
    const char *type = ab_json_get_str(st, "type", NULL);
    static const char *const desc_path[] = {"stream", "stream_descriptor", NULL};
    yajl_val desc;

    *ns = NULL;
    *name = NULL;
    if (!YAJL_IS_OBJECT(st)) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "a state is a %s, not an object",
                            ab_json_type_name(st));
    }
    if (!type || strcmp(type, "STREAM") != 0) {
        return AB_OK; /* GLOBAL, LEGACY or an untyped legacy state */
    }
    desc = ab_json_get_path(st, desc_path);
    *name = ab_json_str(ab_json_get(desc, "name"));
    *ns = ab_json_str(ab_json_get(desc, "namespace"));
    if (!*name) {
        return ab_error_set(err, AB_ERR_PROTOCOL,
                            "a STREAM state without stream.stream_descriptor.name");
    }
    return AB_OK;
}

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Puts (ns, name, text) in place: replaces the entry of the same stream,
 * else appends. name NULL replaces everything. Takes text. */
static enum ab_status put(struct run_state *s, const char *ns, const char *name, char *text,
                          const char **note, struct ab_error *err)
{
    size_t i;
    struct entry *e = NULL;

    if (!name) {
        if (note && s->n > 0 && s->e[0].name) {
            *note = "a GLOBAL state replaced the per-stream states";
        }
        clear_entries(s);
    } else {
        if (s->n == 1 && !s->e[0].name) {
            if (note) {
                *note = "a STREAM state replaced the GLOBAL state";
            }
            clear_entries(s);
        }
        for (i = 0; i < s->n; i++) {
            if (same(s->e[i].name, name) && same(s->e[i].ns, ns)) {
                e = &s->e[i];
                break;
            }
        }
    }
    if (e) {
        free(e->text);
        e->text = text;
        return AB_OK;
    }
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 8;
        struct entry *ne = realloc(s->e, ncap * sizeof(*ne));

        if (!ne) {
            free(text);
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory (state)");
        }
        s->e = ne;
        s->cap = ncap;
    }
    e = &s->e[s->n];
    e->ns = dup_or_null(ns);
    e->name = dup_or_null(name);
    e->text = text;
    if ((ns && !e->ns) || (name && !e->name)) {
        free(e->ns);
        free(e->name);
        free(text);
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (state)");
    }
    s->n++;
    return AB_OK;
}

static enum ab_status add_state(struct run_state *s, yajl_val st, const char **note,
                                struct ab_error *err)
{
    const char *ns;
    const char *name;
    struct ab_buf b;
    char *text;
    enum ab_status rc = describe(st, &ns, &name, err);

    if (rc != AB_OK) {
        return rc;
    }
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    rc = serialise(st, &b, err);
    if (rc != AB_OK) {
        ab_buf_release(&b);
        return rc;
    }
    text = ab_buf_detach(&b, NULL);
    return put(s, ns, name, text, note, err);
}

struct run_state *run_state_open(const char *path, struct ab_error *err)
{
    struct run_state *s = calloc(1, sizeof(*s));
    struct ab_buf text;
    char why[256];
    yajl_val root;
    size_t i;

    if (!s) {
        (void)ab_error_set(err, AB_ERR_NOMEM, "out of memory (state)");
        return NULL;
    }
    s->path = strdup(path);
    if (!s->path) {
        run_state_free(s);
        (void)ab_error_set(err, AB_ERR_NOMEM, "out of memory (state)");
        return NULL;
    }
    if (access(path, F_OK) != 0) {
        return s; /* a first run */
    }
    s->exists = true;
    if (ab_buf_read_file(path, STATE_FILE_MAX, &text, why, sizeof(why)) != AB_OK) {
        (void)ab_error_set(err, AB_ERR_CONFIG, "state file '%s': %s", path, why);
        run_state_free(s);
        return NULL;
    }
    root = ab_json_parse(text.data, text.len, err);
    ab_buf_release(&text);
    if (!root) {
        (void)ab_error_prefix(err, "state file '%s'", path);
        err->code = AB_ERR_CONFIG;
        run_state_free(s);
        return NULL;
    }
    if (!YAJL_IS_ARRAY(root)) {
        ab_json_free(root);
        (void)ab_error_set(err, AB_ERR_CONFIG,
                           "state file '%s': expected a JSON array of state messages", path);
        run_state_free(s);
        return NULL;
    }
    for (i = 0; i < root->u.array.len; i++) {
        if (add_state(s, root->u.array.values[i], NULL, err) != AB_OK) {
            (void)ab_error_prefix(err, "state file '%s': [%zu]", path, i);
            err->code = AB_ERR_CONFIG;
            ab_json_free(root);
            run_state_free(s);
            return NULL;
        }
    }
    ab_json_free(root);
    return s;
}

static enum ab_status write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return AB_ERR_IO;
        }
        p += w;
        n -= (size_t)w;
    }
    return AB_OK;
}

/* fsync of the directory holding path, so that the rename is durable. */
static int sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    int fd;
    int rc;

    if (!slash) {
        dir[0] = '.';
        dir[1] = '\0';
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);

        if (n >= sizeof(dir)) {
            return -1;
        }
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    rc = fsync(fd);
    (void)close(fd);
    return rc;
}

enum ab_status run_write_file(const char *path, const char *data, size_t len, struct ab_error *err)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    int fd;

    if (!tmp) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        (void)ab_error_set(err, AB_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
        free(tmp);
        return AB_ERR_IO;
    }
    if (write_all(fd, data, len) != AB_OK || fsync(fd) != 0) {
        int e = errno;

        (void)close(fd);
        (void)unlink(tmp);
        (void)ab_error_set(err, AB_ERR_IO, "cannot write '%s': %s", tmp, strerror(e));
        free(tmp);
        return AB_ERR_IO;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;

        (void)unlink(tmp);
        free(tmp);
        return ab_error_set(err, AB_ERR_IO, "cannot replace '%s': %s", path, strerror(e));
    }
    free(tmp);
    if (sync_dir(path) != 0) {
        return ab_error_set(err, AB_ERR_IO, "cannot sync the directory of '%s': %s", path,
                            strerror(errno));
    }
    return AB_OK;
}

static enum ab_status save(struct run_state *s, struct ab_error *err)
{
    struct ab_buf b;
    size_t i;
    enum ab_status rc;

    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    rc = ab_buf_adds(&b, "[", err);
    for (i = 0; rc == AB_OK && i < s->n; i++) {
        rc = ab_buf_printf(&b, err, "%s\n%s", i ? "," : "", s->e[i].text);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&b, "\n]\n", err);
    }
    if (rc == AB_OK) {
        rc = run_write_file(s->path, b.data, b.len, err);
    }
    ab_buf_release(&b);
    if (rc == AB_OK) {
        s->exists = true;
    }
    return rc;
}

enum ab_status run_state_apply(struct run_state *s, yajl_val state, const char **note,
                               struct ab_error *err)
{
    enum ab_status rc;

    if (note) {
        *note = NULL;
    }
    rc = add_state(s, state, note, err);
    if (rc == AB_OK) {
        rc = save(s, err);
    }
    if (rc != AB_OK) {
        s->failed = true;
    }
    return rc;
}
