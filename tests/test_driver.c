/* test_driver.c - the driver with a fake destination and a fake source, in a child process. */
/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ab/destination.h"
#include "ab/fetch.h"
#include "ab/json.h"
#include "ab/pager.h"

#include "ab_test.h"

/*
 * The fake destination commits nothing until flush(): every record joins the
 * one open unit, and flush marks it done. So a STATE can only go out after a
 * flush, which the driver calls at end of input or when a state waited
 * max_checkpoint_wait_seconds. A record whose data has "reject": true is
 * rejected through the driver.
 */

/* The driver's own options come from the common groups (ab/options.h). */
static const char spec_json[] =
    "{\"supported_destination_sync_modes\":[\"append\"],"
    "\"x-ab-options\":{\"include\":[\"core\",\"destination\"]},\"connectionSpecification\":{"
    "\"type\":\"object\",\"required\":[\"name\"],\"properties\":{"
    "\"name\":{\"type\":\"string\",\"minLength\":1},"
    "\"token\":{\"type\":\"string\",\"airbyte_secret\":true}}}}";

struct fake {
    struct ab_driver *d;
    uint64_t unit;
    size_t records;
};

static enum ab_status fake_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err)
{
    (void)err;
    if (strcmp(ab_json_get_str(ab_driver_config(d), "name", ""), "bad") == 0) {
        ab_check_problem(chk, "name 'bad' is refused");
        ab_check_problem(chk, "and a second problem");
    }
    return AB_OK;
}

static enum ab_status fake_open(struct ab_driver *d, void **self, struct ab_error *err)
{
    struct fake *f = calloc(1, sizeof(*f));

    if (!f) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    f->d = d;
    *self = f;
    return AB_OK;
}

static enum ab_status fake_record(void *self, const struct ab_record *rec, struct ab_error *err)
{
    struct fake *f = self;

    if (ab_json_get_bool(rec->data, "reject", false)) {
        return ab_driver_reject(f->d, rec->stream, rec->seq, rec->lineno, "destination",
                                "{\"reject\":true}", 15,
                                "[{\"field\":\"reject\",\"code\":\"refused\"}]", err);
    }
    if (f->unit == 0) {
        f->unit = ab_ckpt_unit_open(ab_driver_ckpt(f->d), err);
        if (f->unit == 0) {
            return err->code;
        }
    }
    f->records++;
    return ab_ckpt_unit_add(ab_driver_ckpt(f->d), f->unit, rec->stream, rec->seq, err);
}

static bool fake_busy(const void *self)
{
    (void)self;
    return false;
}

static enum ab_status fake_flush(void *self, bool final, struct ab_error *err)
{
    struct fake *f = self;

    (void) final;
    (void)err;
    if (f->unit) {
        ab_ckpt_unit_done(ab_driver_ckpt(f->d), f->unit);
        ab_driver_add_committed(f->d, f->records);
        f->unit = 0;
        f->records = 0;
    }
    return AB_OK;
}

static bool fake_idle(const void *self)
{
    return ((const struct fake *)self)->unit == 0;
}

static void fake_close(void *self)
{
    free(self);
}

static const struct ab_destination_ops fake_ops = {
    .name = "test-dest",
    .version = "1.0",
    .spec_json = spec_json,
    .check = fake_check,
    .open = fake_open,
    .record = fake_record,
    .busy = fake_busy,
    .flush = fake_flush,
    .idle = fake_idle,
    .close = fake_close,
};

/* ---- a source on ab_fetch_walk_step() ------------------------------------- */

/*
 * Every stream pages through a script in the config ({"pages": {"a": [3, 3,
 * 1]}}: the item counts of its answers) with a pager of 3 items per page.
 * A "request" is a loop timer that makes the answer ready, as an HTTP
 * completion would. Each answer emits its items and the state {"page": N};
 * a page the script does not have is a failure of the stream. Its check
 * sets up as "setup" says (ok, config, internal), then probes stream "a"
 * with a request that could not be built.
 */
static const char walk_spec_json[] =
    "{\"x-ab-options\":{\"include\":[\"core\"]},\"connectionSpecification\":{"
    "\"type\":\"object\",\"required\":[\"pages\"],\"properties\":{"
    "\"pages\":{\"type\":\"object\"},\"setup\":{\"type\":\"string\"}}}}";

struct walker {
    struct ab_driver *d;
    struct ab_fetch f;
    struct ab_fetch_walk walk;
    struct ab_pager pager;
    yajl_val script; /* the stream's item counts */
};

static enum ab_status walker_answered(void *arg, uint64_t id, struct ab_error *err)
{
    struct walker *w = arg;

    (void)id;
    (void)err;
    w->f.busy = false;
    w->f.ready = true;
    w->f.status = 200;
    ab_source_resume(w->d);
    return AB_OK;
}

static enum ab_status walker_begin(void *self, size_t stream, struct ab_error *err)
{
    struct walker *w = self;
    const char *name = ab_driver_catalog(w->d)->streams[stream].name;

    w->script = ab_json_get(ab_json_get(ab_driver_config(w->d), "pages"), name);
    if (!w->script || !YAJL_IS_ARRAY(w->script)) {
        return ab_error_set(err, AB_ERR_CONFIG, "no pages for stream '%s'", name);
    }
    ab_pager_init(&w->pager, AB_PAGE_NUMBER, 1, 3);
    return AB_OK;
}

static enum ab_status walker_answer(void *self, struct ab_error *err)
{
    struct walker *w = self;
    size_t at = (size_t)w->pager.pages;
    int64_t n = 0;
    char state[32];
    int len;
    enum ab_status rc = AB_OK;

    if (at >= w->script->u.array.len || !ab_json_int(w->script->u.array.values[at], &n)) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "page %lld is not in the script",
                            (long long)w->pager.page);
    }
    for (int64_t i = 0; i < n && rc == AB_OK; i++) {
        rc = ab_source_record(w->d, w->walk.cur, "{\"k\":1}", 7, err);
    }
    len = snprintf(state, sizeof(state), "{\"page\":%lld}", (long long)w->pager.page);
    if (rc == AB_OK) {
        rc = ab_source_stream_state(w->d, w->walk.cur, state, (size_t)len, err);
    }
    (void)ab_pager_next(&w->pager, n, -1, -1);
    return rc;
}

static enum ab_status walker_submit(void *self, bool *done, struct ab_error *err)
{
    struct walker *w = self;

    if (w->pager.done) {
        *done = true;
        return AB_OK;
    }
    if (ab_loop_add_timer(ab_driver_loop(w->d), 0, 0, walker_answered, w, err) == 0) {
        return err->code;
    }
    w->f.busy = true;
    return AB_OK;
}

static const struct ab_fetch_walk_ops walker_ops = {walker_begin, walker_answer, walker_submit};

static enum ab_status walker_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err)
{
    const char *setup = ab_json_get_str(ab_driver_config(d), "setup", "ok");
    const struct ab_probe p = {"a", "GET /a", "items", NULL};
    struct ab_error e;
    enum ab_status rc = AB_OK;
    yajl_val body;

    ab_error_init(&e);
    if (strcmp(setup, "config") == 0) {
        rc = ab_error_set(&e, AB_ERR_CONFIG, "setup: the option is refused");
    } else if (strcmp(setup, "internal") == 0) {
        rc = ab_error_set(&e, AB_ERR_INTERNAL, "setup: something broke");
    }
    if (!ab_check_begin(chk, rc, &e, NULL, err)) {
        return err->code;
    }
    (void)ab_error_set(&e, AB_ERR_CONFIG, "no URL for it");
    body = ab_check_probe(chk, NULL, NULL, &p, &e);
    if (body) {
        ab_json_free(body);
    }
    return AB_OK;
}

static enum ab_status walker_discover(struct ab_driver *d, struct ab_error *err)
{
    return ab_source_catalog(d, "{\"streams\":[]}", 14, err);
}

static enum ab_status walker_open(struct ab_driver *d, void **self, struct ab_error *err)
{
    struct walker *w = calloc(1, sizeof(*w));

    if (!w) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    w->d = d;
    ab_fetch_init(&w->f, d, NULL, 64);
    ab_fetch_walk_init(&w->walk, &walker_ops, w, &w->f);
    *self = w;
    return AB_OK;
}

static enum ab_status walker_step(void *self, enum ab_source_next *next, struct ab_error *err)
{
    return ab_fetch_walk_step(&((struct walker *)self)->walk, next, err);
}

static void walker_close(void *self)
{
    struct walker *w = self;

    if (w) {
        ab_fetch_release(&w->f);
        free(w);
    }
}

static const struct ab_source_ops walker_source_ops = {
    .name = "test-source",
    .version = "1.0",
    .spec_json = walk_spec_json,
    .check = walker_check,
    .discover = walker_discover,
    .open = walker_open,
    .step = walker_step,
    .close = walker_close,
};

/* ---- running the driver in a child ---------------------------------------- */

/* The connector the child runs: the fake destination, or the walking source. */
static bool child_is_source;

struct run {
    int rc;
    char *out; /* stdout */
};

static char dir[] = "/tmp/ab-test-driver-XXXXXX";

static char *path_in(const char *name)
{
    static char p[256];

    (void)snprintf(p, sizeof(p), "%s/%s", dir, name);
    return p;
}

static void write_file(const char *name, const char *text)
{
    FILE *f = fopen(path_in(name), "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static char *read_fd(int fd)
{
    size_t cap = 4096;
    size_t len = 0;
    char *buf = malloc(cap);
    ssize_t n;

    assert_non_null(buf);
    for (;;) {
        if (len + 1 >= cap) {
            char *grown = realloc(buf, cap * 2);

            assert_non_null(grown);
            buf = grown;
            cap *= 2;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

/*
 * Runs ab_destination_main(argv) (ab_source_main() with child_is_source) in a child with input on
 * stdin. With hold_until non-NULL, stdin stays open until stdout shows that text (or 10 s pass), as
 * a source that is still running would.
 */
static struct run run_main(const char *const *argv, const char *input, const char *hold_until)
{
    int in[2];
    int out[2];
    pid_t pid;
    int status = 0;
    struct run r;
    int argc = 0;

    while (argv[argc]) {
        argc++;
    }
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    (void)fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        (void)dup2(in[0], STDIN_FILENO);
        (void)dup2(out[1], STDOUT_FILENO);
        (void)close(in[0]);
        (void)close(in[1]);
        (void)close(out[0]);
        (void)close(out[1]);
        _exit(child_is_source ? ab_source_main(argc, (char **)(uintptr_t)argv, &walker_source_ops)
                              : ab_destination_main(argc, (char **)(uintptr_t)argv, &fake_ops));
    }
    (void)close(in[0]);
    (void)close(out[1]);
    if (input && *input) {
        size_t len = strlen(input);

        assert_int_equal(write(in[1], input, len), (ssize_t)len);
    }
    if (hold_until) {
        char seen[65536];
        size_t len = 0;
        int waited = 0;

        seen[0] = '\0';
        while (!strstr(seen, hold_until) && waited < 10000) {
            struct pollfd p = {out[0], POLLIN, 0};
            ssize_t n;

            if (poll(&p, 1, 100) <= 0) {
                waited += 100;
                continue;
            }
            n = read(out[0], seen + len, sizeof(seen) - 1 - len);
            if (n <= 0) {
                break;
            }
            len += (size_t)n;
            seen[len] = '\0';
        }
        (void)close(in[1]);
        r.out = read_fd(out[0]);
        {
            /* keep what was read while holding */
            char *all = malloc(len + strlen(r.out) + 1);

            assert_non_null(all);
            memcpy(all, seen, len);
            strcpy(all + len, r.out);
            free(r.out);
            r.out = all;
        }
    } else {
        (void)close(in[1]);
        r.out = read_fd(out[0]);
    }
    (void)close(out[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;

    for (hay = strstr(hay, needle); hay; hay = strstr(hay + 1, needle)) {
        n++;
    }
    return n;
}

static const char catalog_json[] =
    "{\"streams\":[{\"stream\":{\"name\":\"a\",\"json_schema\":{}},\"sync_mode\":\"incremental\","
    "\"destination_sync_mode\":\"append\"},{\"stream\":{\"name\":\"b\",\"json_schema\":{}},"
    "\"sync_mode\":\"incremental\",\"destination_sync_mode\":\"append\"}]}";

static int setup(void **state)
{
    char config[512];

    (void)state;
    if (!mkdtemp(dir)) {
        return -1;
    }
    (void)snprintf(
        config, sizeof(config),
        "{\"name\":\"ok\",\"token\":\"s3cr3t-t0ken\",\"dead_letter_path\":\"%s/dl.jsonl\"}", dir);
    write_file("config.json", config);
    (void)snprintf(
        config, sizeof(config),
        "{\"name\":\"ok\",\"token\":\"s3cr3t-t0ken\",\"dead_letter_path\":\"%s/dl.jsonl\","
        "\"max_checkpoint_wait_seconds\":1}",
        dir);
    write_file("fast.json", config);
    write_file("bad.json", "{\"name\":\"bad\",\"token\":\"s3cr3t-t0ken\"}");
    write_file("invalid.json", "{\"name\":\"\",\"token\":\"s3cr3t-t0ken\"}");
    write_file("catalog.json", catalog_json);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

#define REC(stream, extra)                                                                         \
    "{\"type\":\"RECORD\",\"record\":{\"stream\":\"" stream "\",\"data\":{\"k\":1" extra "}}}\n"
#define STATE(stream, id)                                                                          \
    "{\"type\":\"STATE\",\"state\":{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":"        \
    "{\"name\":\"" stream "\"},\"stream_state\":{}},\"id\":" id "}}\n"

/* ---- tests ---------------------------------------------------------------- */

static void test_spec_and_version(void **state)
{
    const char *spec[] = {"dest", "spec", NULL};
    const char *version[] = {"dest", "--version", NULL};
    const char *none[] = {"dest", NULL};
    const char *unknown[] = {"dest", "write", "--frobnicate", NULL};
    struct run r;

    (void)state;
    r = run_main(spec, NULL, NULL);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "{\"type\":\"SPEC\",\"spec\":{"));
    assert_non_null(strstr(r.out, "\"connectionSpecification\""));
    free(r.out);
    r = run_main(version, NULL, NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "test-dest 1.0\n");
    free(r.out);
    r = run_main(none, NULL, NULL);
    assert_int_equal(r.rc, 2);
    free(r.out);
    r = run_main(unknown, NULL, NULL);
    assert_int_equal(r.rc, 2);
    free(r.out);
}

static void test_check_reports_every_problem(void **state)
{
    const char *bad[] = {"dest", "check", "--config", NULL, NULL};
    const char *invalid[] = {"dest", "--config", NULL, "check", NULL};
    char p1[256];
    char p2[256];
    struct run r;

    (void)state;
    (void)snprintf(p1, sizeof(p1), "%s", path_in("bad.json"));
    bad[3] = p1;
    r = run_main(bad, NULL, NULL);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "\"status\":\"FAILED\""));
    assert_non_null(strstr(r.out, "name 'bad' is refused; and a second problem"));
    assert_null(strstr(r.out, "s3cr3t-t0ken"));
    free(r.out);
    /* arguments in another order; a config the spec refuses */
    (void)snprintf(p2, sizeof(p2), "%s", path_in("invalid.json"));
    invalid[2] = p2;
    r = run_main(invalid, NULL, NULL);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "\"status\":\"FAILED\""));
    assert_non_null(strstr(r.out, "name"));
    assert_null(strstr(r.out, "s3cr3t-t0ken"));
    free(r.out);
}

static const char *write_argv[] = {"dest", "write", "--config", NULL, "--catalog", NULL, NULL};

static struct run write_run(const char *config, const char *input, const char *hold_until)
{
    static char c[256];
    static char k[256];

    (void)snprintf(c, sizeof(c), "%s", path_in(config));
    (void)snprintf(k, sizeof(k), "%s", path_in("catalog.json"));
    write_argv[3] = c;
    write_argv[5] = k;
    return run_main(write_argv, input, hold_until);
}

static void test_states_after_commit_with_counts(void **state)
{
    struct run r;
    const char *first;
    const char *second;

    (void)state;
    r = write_run("config.json",
                  REC("a", "") REC("b", "") REC("a", "") STATE("a", "7")
                      REC("a", ",\"reject\":true") REC("a", "") STATE("a", "8") STATE("b", "9"),
                  NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(count(r.out, "\"type\":\"STATE\""), 3);
    first = strstr(r.out, "\"id\":7,\"destinationStats\":{\"recordCount\":2.0,"
                          "\"rejectedRecordCount\":0.0}");
    second = strstr(r.out, "\"id\":8,\"destinationStats\":{\"recordCount\":1.0,"
                           "\"rejectedRecordCount\":1.0}");
    assert_non_null(first);
    assert_non_null(second);
    assert_true(first < second);
    assert_non_null(strstr(r.out, "\"id\":9,\"destinationStats\":{\"recordCount\":1.0,"));
    assert_null(strstr(r.out, "TRACE"));
    free(r.out);
}

static void test_bad_line_commits_what_came_before(void **state)
{
    struct run r;

    (void)state;
    r = write_run(
        "config.json",
        REC("a", "") STATE("a", "1") "{\"type\":\"RECORD\",\n" REC("a", "") STATE("a", "2"), NULL);
    assert_int_equal(r.rc, 1);
    assert_int_equal(count(r.out, "\"type\":\"STATE\""), 1);
    assert_non_null(strstr(r.out, "\"id\":1,"));
    assert_non_null(strstr(r.out, "line 3: invalid JSON"));
    assert_non_null(strstr(r.out, "\"failure_type\":\"system_error\""));
    free(r.out);
}

static void test_unknown_stream_and_types(void **state)
{
    struct run r;

    (void)state;
    r = write_run("config.json",
                  "{\"type\":\"WHATEVER\",\"x\":1}\n" STATE("zz", "1") REC("a", "") STATE("a", "2")
                      REC("zz", ""),
                  NULL);
    assert_int_equal(r.rc, 1);
    /* the unknown type is skipped with a warning; the state of an unknown
     * stream passes through in order; the record of one is fatal */
    assert_non_null(strstr(r.out, "'WHATEVER' is unknown"));
    assert_non_null(strstr(r.out, "\"id\":1,\"destinationStats\":{\"recordCount\":0.0"));
    assert_non_null(strstr(r.out, "\"id\":2,"));
    assert_non_null(strstr(r.out, "line 5: record for stream 'zz' which is not in the configured"));
    free(r.out);
}

static void test_empty_input(void **state)
{
    struct run r;

    (void)state;
    r = write_run("config.json", "", NULL);
    assert_int_equal(r.rc, 0);
    assert_null(strstr(r.out, "\"type\":\"STATE\""));
    assert_non_null(strstr(r.out, "0 records read"));
    free(r.out);
}

static void test_waiting_state_forces_a_flush(void **state)
{
    struct run r;

    (void)state;
    /* stdin stays open: only the max_checkpoint_wait_seconds timer can get
     * the state out */
    r = write_run("fast.json", REC("a", "") STATE("a", "5"), "\"id\":5,");
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "a state has waited"));
    assert_non_null(strstr(r.out, "\"id\":5,\"destinationStats\":{\"recordCount\":1.0"));
    free(r.out);
}

static void test_fail_config_is_config_error(void **state)
{
    const char *argv[] = {"dest", "write", "--config", NULL, "--catalog", "/nonexistent", NULL};
    char c[256];
    struct run r;

    (void)state;
    (void)snprintf(c, sizeof(c), "%s", path_in("invalid.json"));
    argv[3] = c;
    r = run_main(argv, "", NULL);
    assert_int_equal(r.rc, 1);
    assert_int_equal(count(r.out, "\"type\":\"TRACE\""), 1);
    assert_non_null(strstr(r.out, "\"failure_type\":\"config_error\""));
    assert_null(strstr(r.out, "s3cr3t-t0ken"));
    free(r.out);
}

/* The places of each needle in out, in that order; fails when one is
 * missing or out of order. */
static void in_order(const char *out, const char *const *needles, size_t n)
{
    const char *at = out;

    for (size_t i = 0; i < n; i++) {
        const char *p = strstr(at, needles[i]);

        if (!p) {
            fail_msg("'%s' missing (in that order) from:\n%s", needles[i], out);
        }
        at = p + strlen(needles[i]);
    }
}

static struct run walk_run(const char *pages)
{
    static const char *argv[] = {"src", "read", "--config", NULL, "--catalog", NULL, NULL};
    static char c[256];
    static char k[256];
    char config[256];
    struct run r;

    (void)snprintf(config, sizeof(config), "{\"pages\":%s}", pages);
    write_file("walk.json", config);
    (void)snprintf(c, sizeof(c), "%s", path_in("walk.json"));
    (void)snprintf(k, sizeof(k), "%s", path_in("catalog.json"));
    argv[3] = c;
    argv[5] = k;
    child_is_source = true;
    r = run_main(argv, NULL, NULL);
    child_is_source = false;
    return r;
}

#define STATUS(stream, status)                                                                     \
    "\"stream_descriptor\":{\"name\":\"" stream "\"},\"status\":\"" status "\""
#define PAGE(n) "\"stream_state\":{\"page\":" n "}"

static void test_walk_streams_and_pages(void **state)
{
    /* a: a full page, a full page, a short page ends it; b: an empty first page */
    static const char *const seq[] = {STATUS("a", "STARTED"),
                                      STATUS("a", "RUNNING"),
                                      PAGE("1"),
                                      PAGE("2"),
                                      PAGE("3"),
                                      STATUS("a", "COMPLETE"),
                                      STATUS("b", "STARTED"),
                                      STATUS("b", "RUNNING"),
                                      PAGE("1"),
                                      STATUS("b", "COMPLETE")};
    struct run r;

    (void)state;
    r = walk_run("{\"a\":[3,3,1],\"b\":[0]}");
    assert_int_equal(r.rc, 0);
    in_order(r.out, seq, sizeof(seq) / sizeof(seq[0]));
    assert_int_equal(count(r.out, "\"type\":\"RECORD\""), 7);
    assert_int_equal(count(r.out, "\"type\":\"STATE\""), 4);
    assert_int_equal(count(r.out, "\"status\":\"COMPLETE\""), 2);
    free(r.out);
}

static void test_walk_failure_ends_the_stream(void **state)
{
    /* two full pages: the list only ends on an empty third page, which the
     * script does not have */
    static const char *const seq[] = {STATUS("a", "STARTED"), PAGE("1"), PAGE("2"),
                                      STATUS("a", "INCOMPLETE"), "page 3 is not in the script"};
    struct run r;

    (void)state;
    r = walk_run("{\"a\":[3,3],\"b\":[0]}");
    assert_int_not_equal(r.rc, 0);
    in_order(r.out, seq, sizeof(seq) / sizeof(seq[0]));
    assert_int_equal(count(r.out, "\"status\":\"COMPLETE\""), 0);
    assert_null(strstr(r.out, "\"name\":\"b\""));
    free(r.out);
    /* a stream that cannot begin: nothing of it is said to have started */
    r = walk_run("{\"a\":[0]}");
    assert_int_not_equal(r.rc, 0);
    assert_non_null(strstr(r.out, STATUS("a", "COMPLETE")));
    assert_null(strstr(r.out, STATUS("b", "STARTED")));
    assert_non_null(strstr(r.out, "no pages for stream 'b'"));
    free(r.out);
}

static struct run check_run(const char *config)
{
    static const char *argv[] = {"src", "check", "--config", NULL, NULL};
    static char c[256];
    struct run r;

    write_file("walk-check.json", config);
    (void)snprintf(c, sizeof(c), "%s", path_in("walk-check.json"));
    argv[3] = c;
    child_is_source = true;
    r = run_main(argv, NULL, NULL);
    child_is_source = false;
    return r;
}

static void test_check_begin_and_probe(void **state)
{
    struct run r;

    (void)state;
    /* set up: the probe runs, its failure is a problem of its stream */
    r = check_run("{\"pages\":{},\"setup\":\"ok\"}");
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "\"status\":\"FAILED\""));
    assert_non_null(strstr(r.out, "stream 'a': no URL for it"));
    free(r.out);
    /* a config failure is the problem; no probe runs */
    r = check_run("{\"pages\":{},\"setup\":\"config\"}");
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "\"status\":\"FAILED\""));
    assert_non_null(strstr(r.out, "setup: the option is refused"));
    assert_null(strstr(r.out, "stream 'a'"));
    free(r.out);
    /* any other failure is check's own: no connection status, an error */
    r = check_run("{\"pages\":{},\"setup\":\"internal\"}");
    assert_int_not_equal(r.rc, 0);
    assert_null(strstr(r.out, "CONNECTION_STATUS"));
    assert_non_null(strstr(r.out, "setup: something broke"));
    free(r.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_and_version),
        cmocka_unit_test(test_check_reports_every_problem),
        cmocka_unit_test(test_states_after_commit_with_counts),
        cmocka_unit_test(test_bad_line_commits_what_came_before),
        cmocka_unit_test(test_unknown_stream_and_types),
        cmocka_unit_test(test_empty_input),
        cmocka_unit_test(test_waiting_state_forces_a_flush),
        cmocka_unit_test(test_fail_config_is_config_error),
        cmocka_unit_test(test_walk_streams_and_pages),
        cmocka_unit_test(test_walk_failure_ends_the_stream),
        cmocka_unit_test(test_check_begin_and_probe),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
