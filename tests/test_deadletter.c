/* test_deadletter.c - rejected-records file: lines, appends, sync, probe. */
/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <regex.h>

#include "ab/buf.h"
#include "ab/deadletter.h"
#include "ab/json.h"

#include "ab_test.h"

struct fixture {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (!f) {
        return -1;
    }
    (void)snprintf(f->dir, sizeof(f->dir), "/tmp/ab_test_dl_XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    (void)snprintf(f->path, sizeof(f->path), "%s/rejected.jsonl", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char p[192];

    (void)unlink(f->path);
    (void)snprintf(p, sizeof(p), "%s/ro.jsonl", f->dir);
    (void)unlink(p);
    (void)rmdir(f->dir);
    free(f);
    return 0;
}

/* The file's lines (caller frees the array and each line). */
static char **read_lines(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "r");
    char **lines = NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;

    assert_non_null(fp);
    *n = 0;
    for (len = getline(&line, &cap, fp); len >= 0; len = getline(&line, &cap, fp)) {
        char **p = realloc(lines, (*n + 1) * sizeof(*p));

        assert_non_null(p);
        lines = p;
        assert_true(len > 0 && line[len - 1] == '\n'); /* every line is complete */
        line[len - 1] = '\0';
        lines[(*n)++] = line;
        line = NULL;
        cap = 0;
    }
    free(line);
    assert_int_equal(fclose(fp), 0);
    return lines;
}

static void free_lines(char **lines, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(lines[i]);
    }
    free(lines);
}

static long long days_from_civil(long long y, long long m, long long d)
{
    long long era;
    long long yoe;
    long long doy;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

/* The decimal number of n digits at ts + off. */
static long long num_at(const char *ts, size_t off, size_t n)
{
    long long v = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        v = v * 10 + (ts[off + i] - '0');
    }
    return v;
}

/* rejected_at is RFC 3339 UTC with milliseconds, and about now. */
static void assert_timestamp(const char *ts)
{
    regex_t re;
    long long y;
    long long mo;
    long long d;
    long long h;
    long long mi;
    long long s;
    long long t;
    struct timespec ts_now;
    long long now;

    assert_int_equal(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\."
                             "[0-9]{3}Z$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    assert_int_equal(regexec(&re, ts, 0, NULL, 0), 0);
    regfree(&re);
    /* the layout is fixed (checked above): read the fields by position */
    y = num_at(ts, 0, 4);
    mo = num_at(ts, 5, 2);
    d = num_at(ts, 8, 2);
    h = num_at(ts, 11, 2);
    mi = num_at(ts, 14, 2);
    s = num_at(ts, 17, 2);
    t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    /* the precise clock, as the writer reads it: time() reads a coarse one
     * that can still be in the second before */
    assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts_now), 0);
    now = (long long)ts_now.tv_sec;
    assert_true(t <= now && t >= now - 60);
}

struct line_want {
    const char *stream;
    const char *ns; /* NULL: null */
    long long line; /* -1: null */
    const char *rejected_by;
    const char *errors;
    const char *record;
};

static void assert_line(const char *text, const struct line_want *w)
{
    struct ab_error err;
    struct ab_buf b;
    yajl_val v;
    yajl_val f;
    int64_t i;

    ab_error_init(&err);
    v = ab_json_parse(text, strlen(text), &err);
    if (!v) {
        fail_msg("line is not JSON (%s): %s", err.message, text);
        return; /* not reached: fail_msg() does not return */
    }
    assert_int_equal(v->type, yajl_t_object);
    assert_int_equal(v->u.object.len, 8);
    assert_int_equal(ab_json_get(v, "record_sent")->type, yajl_t_null);
    assert_string_equal(ab_json_get_str(v, "stream", "?"), w->stream);
    f = ab_json_get(v, "namespace");
    assert_non_null(f);
    if (w->ns) {
        assert_string_equal(ab_json_str(f), w->ns);
    } else {
        assert_int_equal(f->type, yajl_t_null);
    }
    f = ab_json_get(v, "line");
    assert_non_null(f);
    if (w->line < 0) {
        assert_int_equal(f->type, yajl_t_null);
    } else {
        assert_true(ab_json_int(f, &i));
        assert_int_equal(i, w->line);
    }
    assert_string_equal(ab_json_get_str(v, "rejected_by", "?"), w->rejected_by);
    assert_timestamp(ab_json_get_str(v, "rejected_at", "?"));
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_json_write(&b, ab_json_get(v, "errors"), &err), AB_OK);
    assert_string_equal(b.data, w->errors);
    ab_buf_reset(&b);
    assert_int_equal(ab_json_write(&b, ab_json_get(v, "record"), &err), AB_OK);
    assert_string_equal(b.data, w->record);
    ab_buf_release(&b);
    yajl_tree_free(v);
}

static void test_lines_are_json_with_all_fields(void **state)
{
    static const struct {
        const char *stream;
        const char *ns;
        uint64_t lineno;
        const char *by;
        const char *record;
        const char *errors;
        struct line_want want;
    } cases[] = {
        {"orders",
         "erp",
         17,
         "destination",
         "{\"id\":1,\"total\":1.50}",
         "[{\"field\":\"email\",\"code\":\"required\",\"message\":\"is required\"}]",
         {"orders", "erp", 17, "destination",
          "[{\"field\":\"email\",\"code\":\"required\",\"message\":\"is required\"}]",
          "{\"id\":1,\"total\":1.50}"}},
        {"cli\"entes",
         NULL,
         0,
         "target",
         "{\"a\":\n1,\r\n\"s\":\"x\\ny\"}",
         NULL,
         {"cli\"entes", NULL, -1, "target", "[]", "{\"a\":1,\"s\":\"x\\ny\"}"}},
        {"s",
         NULL,
         18446744073709551615ULL,
         "destination",
         NULL,
         "[\n]",
         {"s", NULL, -1, "destination", "[]", "null"}},
    };
    struct fixture *fx = *state;
    struct ab_deadletter *dl;
    struct ab_error err;
    struct stat st;
    char **lines;
    size_t n;
    size_t i;

    ab_error_init(&err);
    dl = ab_deadletter_open(fx->path, &err);
    assert_non_null(dl);
    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(ab_deadletter_write(dl, cases[i].stream, cases[i].ns, cases[i].lineno,
                                             cases[i].by, cases[i].record,
                                             cases[i].record ? strlen(cases[i].record) : 0,
                                             cases[i].errors, &err),
                         AB_OK);
        assert_int_equal(ab_deadletter_count(dl), i + 1);
    }
    assert_int_equal(ab_deadletter_sync(dl, &err), AB_OK);
    lines = read_lines(fx->path, &n);
    assert_int_equal(n, 3);
    for (i = 0; i < 2; i++) {
        assert_line(lines[i], &cases[i].want);
    }
    /* a line number beyond int64 stays exact (yajl cannot read it back as an
     * integer, hence the text check) */
    assert_non_null(strstr(lines[2], "\"line\":18446744073709551615,"));
    free_lines(lines, n);
    assert_int_equal(ab_deadletter_close(dl, &err), AB_OK);
}

static void test_record_longer_than_the_buffer(void **state)
{
    struct fixture *fx = *state;
    struct ab_deadletter *dl;
    struct ab_error err;
    size_t len = (size_t)3 * 1024 * 1024;
    char *record = malloc(len + 1);
    char **lines;
    size_t n;
    struct line_want w = {"big", "ns", 1, "destination", "[]", NULL};

    assert_non_null(record);
    memset(record, 'x', len);
    memcpy(record, "{\"k\":\"", 6);
    memcpy(record + len - 2, "\"}", 2);
    record[len] = '\0';
    w.record = record;
    ab_error_init(&err);
    dl = ab_deadletter_open(fx->path, &err);
    assert_non_null(dl);
    assert_int_equal(
        ab_deadletter_write(dl, "big", "ns", 1, "destination", record, len, "[]", &err), AB_OK);
    assert_int_equal(ab_deadletter_close(dl, &err), AB_OK);
    lines = read_lines(fx->path, &n);
    assert_int_equal(n, 1);
    assert_line(lines[0], &w);
    free_lines(lines, n);
    free(record);
}

static void test_append_across_reopen(void **state)
{
    struct fixture *fx = *state;
    struct ab_error err;
    char **lines;
    size_t n;
    size_t i;
    int round;

    ab_error_init(&err);
    for (round = 0; round < 3; round++) {
        struct ab_deadletter *dl = ab_deadletter_open(fx->path, &err);

        assert_non_null(dl);
        assert_int_equal(ab_deadletter_count(dl), 0);
        assert_int_equal(
            ab_deadletter_write(dl, "s", NULL, (uint64_t)round + 1, "target", "{}", 2, "[]", &err),
            AB_OK);
        assert_int_equal(ab_deadletter_write(dl, "s", NULL, (uint64_t)round + 100, "target", "{}",
                                             2, "[]", &err),
                         AB_OK);
        assert_int_equal(ab_deadletter_count(dl), 2);
        /* close syncs: no explicit sync needed */
        assert_int_equal(ab_deadletter_close(dl, &err), AB_OK);
    }
    lines = read_lines(fx->path, &n);
    assert_int_equal(n, 6);
    for (i = 0; i < 3; i++) {
        struct line_want w1 = {"s", NULL, (long long)i + 1, "target", "[]", "{}"};
        struct line_want w2 = {"s", NULL, (long long)i + 100, "target", "[]", "{}"};

        assert_line(lines[2 * i], &w1);
        assert_line(lines[2 * i + 1], &w2);
    }
    free_lines(lines, n);
}

static void test_open_errors(void **state)
{
    struct fixture *fx = *state;
    struct ab_error err;
    char path[192];
    char want[512];

    ab_error_init(&err);
    (void)snprintf(path, sizeof(path), "%s/missing/rejected.jsonl", fx->dir);
    assert_null(ab_deadletter_open(path, &err));
    assert_int_equal(err.code, AB_ERR_CONFIG);
    (void)snprintf(want, sizeof(want),
                   "cannot open dead-letter file '%s': No such file or directory", path);
    assert_string_equal(err.message, want);

    assert_null(ab_deadletter_open(fx->dir, &err));
    assert_int_equal(err.code, AB_ERR_CONFIG);
    (void)snprintf(want, sizeof(want), "cannot open dead-letter file '%s': Is a directory",
                   fx->dir);
    assert_string_equal(err.message, want);

    /* a symbolic link at the path is not followed; the target is untouched */
    assert_int_equal(symlink("/dev/null", fx->path), 0);
    assert_null(ab_deadletter_open(fx->path, &err));
    assert_int_equal(err.code, AB_ERR_CONFIG);
    assert_non_null(strstr(err.message, "symbolic link"));
    assert_int_equal(unlink(fx->path), 0);

    assert_int_equal(ab_deadletter_close(NULL, &err), AB_OK);
    assert_int_equal(ab_deadletter_count(NULL), 0);
    assert_int_equal(ab_deadletter_sync(NULL, &err), AB_OK);
}

static void test_existing_file_made_private(void **state)
{
    struct fixture *fx = *state;
    struct ab_deadletter *dl;
    struct ab_error err;
    struct stat st;
    FILE *f = fopen(fx->path, "w");

    ab_error_init(&err);
    assert_non_null(f);
    assert_int_equal(fputs("{\"earlier\":1}\n", f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(fx->path, 0644), 0);
    dl = ab_deadletter_open(fx->path, &err);
    assert_non_null(dl);
    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(ab_deadletter_close(dl, &err), AB_OK);
    assert_int_equal(st.st_size, 14); /* appended to, not truncated */
}

static void test_write_errors_are_sticky(void **state)
{
    struct ab_deadletter *dl;
    struct ab_error err;
    const char *want = "cannot write dead-letter file '/dev/full': No space left on device";

    (void)state;
    ab_error_init(&err);
    dl = ab_deadletter_open("/dev/full", &err);
    if (!dl) {
        skip();
    }
    /* buffered: the failure shows at the sync */
    assert_int_equal(ab_deadletter_write(dl, "s", NULL, 1, "target", "{}", 2, "[]", &err), AB_OK);
    assert_int_equal(ab_deadletter_sync(dl, &err), AB_ERR_IO);
    assert_string_equal(err.message, want);
    ab_error_init(&err);
    assert_int_equal(ab_deadletter_write(dl, "s", NULL, 2, "target", "{}", 2, "[]", &err),
                     AB_ERR_IO);
    assert_string_equal(err.message, want);
    assert_int_equal(ab_deadletter_count(dl), 1);
    ab_error_init(&err);
    assert_int_equal(ab_deadletter_sync(dl, &err), AB_ERR_IO);
    assert_string_equal(err.message, want);
    ab_error_init(&err);
    assert_int_equal(ab_deadletter_close(dl, &err), AB_ERR_IO);
    assert_string_equal(err.message, want);
}

static void test_probe(void **state)
{
    struct fixture *fx = *state;
    struct ab_error err;
    char missing_dir[192];
    char fresh[192];
    char under_file[256];
    char want[512];
    struct stat st;
    FILE *fp;
    struct {
        const char *path;
        enum ab_status rc;
        const char *what; /* message: "<what> '<path>': <why>" */
        const char *why;
    } cases[] = {
        {fx->path, AB_OK, NULL, NULL}, /* existing writable file */
        {fresh, AB_OK, NULL, NULL},    /* absent file, writable directory */
        {"relative-dl-probe.jsonl", AB_OK, NULL, NULL},
        {missing_dir, AB_ERR_CONFIG, "cannot create dead-letter file", "No such file or directory"},
        {under_file, AB_ERR_CONFIG, "cannot access dead-letter file", "Not a directory"},
        {fx->dir, AB_ERR_CONFIG, "cannot write dead-letter file", "is a directory"},
        {"", AB_ERR_CONFIG, NULL, "dead-letter file path is empty"},
    };
    size_t i;

    (void)snprintf(missing_dir, sizeof(missing_dir), "%s/nope/rejected.jsonl", fx->dir);
    (void)snprintf(fresh, sizeof(fresh), "%s/fresh.jsonl", fx->dir);
    (void)snprintf(under_file, sizeof(under_file), "%s/rejected.jsonl", fx->path);
    fp = fopen(fx->path, "w");
    assert_non_null(fp);
    assert_int_equal(fclose(fp), 0);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ab_error_init(&err);
        assert_int_equal(ab_deadletter_probe(cases[i].path, &err), cases[i].rc);
        if (cases[i].what) {
            (void)snprintf(want, sizeof(want), "%s '%s': %s", cases[i].what, cases[i].path,
                           cases[i].why);
            assert_string_equal(err.message, want);
        } else if (cases[i].why) {
            assert_string_equal(err.message, cases[i].why);
        }
    }
    /* probing writes nothing */
    assert_int_equal(stat(fresh, &st), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(stat("relative-dl-probe.jsonl", &st), -1);
    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(st.st_size, 0);
}

/* Runs probe in a child that has dropped root (root ignores permission
 * bits), returning what the child saw. */
static void probe_as_nobody(const char *path, enum ab_status *rc, char *msg, size_t size)
{
    int fds[2];
    pid_t pid;
    int status = 0;
    ssize_t n;

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct ab_error err;
        enum ab_status r = AB_ERR_INTERNAL;

        (void)close(fds[0]);
        ab_error_init(&err);
        if (setgid(65534) == 0 && setuid(65534) == 0) {
            r = ab_deadletter_probe(path, &err);
        } else {
            (void)snprintf(err.message, sizeof(err.message), "cannot drop root");
        }
        if (write(fds[1], err.message, strlen(err.message)) < 0) {
            r = AB_ERR_INTERNAL;
        }
        _exit((int)r);
    }
    (void)close(fds[1]);
    n = read(fds[0], msg, size - 1);
    msg[n > 0 ? n : 0] = '\0';
    (void)close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    *rc = (enum ab_status)WEXITSTATUS(status);
}

static void test_probe_read_only_file(void **state)
{
    struct fixture *fx = *state;
    char ro[192];
    char msg[AB_ERROR_MSG_MAX];
    char want[512];
    enum ab_status rc;
    FILE *fp;

    if (geteuid() != 0) {
        skip(); /* the drop to nobody needs root; runs as root in CI */
    }
    (void)snprintf(ro, sizeof(ro), "%s/ro.jsonl", fx->dir);
    fp = fopen(ro, "w");
    assert_non_null(fp);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(chmod(ro, 0444), 0);
    assert_int_equal(chmod(fx->dir, 0755), 0);

    probe_as_nobody(ro, &rc, msg, sizeof(msg));
    (void)snprintf(want, sizeof(want), "cannot write dead-letter file '%s': Permission denied", ro);
    assert_string_equal(msg, want);
    assert_int_equal(rc, AB_ERR_CONFIG);

    /* a directory nobody may write into */
    probe_as_nobody(fx->path, &rc, msg, sizeof(msg));
    (void)snprintf(want, sizeof(want), "cannot create dead-letter file '%s': Permission denied",
                   fx->path);
    assert_string_equal(msg, want);
    assert_int_equal(rc, AB_ERR_CONFIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lines_are_json_with_all_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_longer_than_the_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_across_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_existing_file_made_private, setup, teardown),
        cmocka_unit_test(test_write_errors_are_sticky),
        cmocka_unit_test_setup_teardown(test_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_read_only_file, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
