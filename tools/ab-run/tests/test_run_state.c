/* test_run_state.c - ab-run's state file: merge rules, atomic writes, bad files. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

#include "ab/buf.h"
#include "ab/json.h"

#include "ab_test.h"
#include "run_state.h"

struct fx {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    memcpy(f->dir, "/tmp/ab-run-state-XXXXXX", 25);
    assert_non_null(mkdtemp(f->dir));
    (void)snprintf(f->path, sizeof(f->path), "%s/state.json", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char tmp[160];

    (void)unlink(f->path);
    (void)snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
    (void)unlink(tmp);
    (void)rmdir(f->dir);
    free(f);
    return 0;
}

/* Applies the "state" member of a STATE message given as text. */
static enum ab_status apply(struct run_state *s, const char *msg, const char **note)
{
    struct ab_error err = {0};
    yajl_val m = ab_json_parse(msg, strlen(msg), &err);
    enum ab_status rc;

    assert_non_null(m);
    rc = run_state_apply(s, ab_json_get(m, "state"), note, &err);
    ab_json_free(m);
    return rc;
}

static char *file_text(const char *path)
{
    struct ab_buf b;
    char why[128];

    assert_int_equal(ab_buf_read_file(path, 1 << 20, &b, why, sizeof(why)), AB_OK);
    return ab_buf_detach(&b, NULL);
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

#define ST(name, ns, cur)                                                                          \
    "{\"type\":\"STATE\",\"state\":{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{"       \
    "\"name\":\"" name "\"" ns "},\"stream_state\":{\"c\":" cur "}},\"sourceStats\":{"             \
    "\"recordCount\":3.0},\"destinationStats\":{\"recordCount\":3,\"rejectedRecordCount\":0},"     \
    "\"id\":12345678901234567890123}}"

static void test_stream_states_merge_in_place(void **state)
{
    struct fx *f = *state;
    struct ab_error err = {0};
    struct run_state *s = run_state_open(f->path, &err);
    const char *note = "x";
    char *text;
    struct stat st;

    assert_non_null(s);
    assert_false(run_state_exists(s));
    assert_int_equal(apply(s, ST("a", "", "1"), &note), AB_OK);
    assert_null(note);
    assert_int_equal(apply(s, ST("b", ",\"namespace\":\"n\"", "1"), NULL), AB_OK);
    assert_int_equal(apply(s, ST("b", "", "7"), NULL), AB_OK); /* another namespace */
    assert_int_equal(apply(s, ST("a", "", "2"), NULL), AB_OK); /* replaces, keeps its place */
    assert_int_equal(run_state_entries(s), 3);
    assert_true(run_state_exists(s));
    assert_true(run_state_saved(s));
    text = file_text(f->path);
    assert_string_equal(
        text, "[\n"
              "{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"a\"},"
              "\"stream_state\":{\"c\":2}},\"id\":12345678901234567890123},\n"
              "{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"b\","
              "\"namespace\":\"n\"},\"stream_state\":{\"c\":1}},\"id\":12345678901234567890123},\n"
              "{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"b\"},"
              "\"stream_state\":{\"c\":7}},\"id\":12345678901234567890123}\n"
              "]\n");
    free(text);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    run_state_free(s);

    /* read back: the same entries, and the merge goes on from them */
    s = run_state_open(f->path, &err);
    assert_non_null(s);
    assert_true(run_state_exists(s));
    assert_int_equal(run_state_entries(s), 3);
    assert_int_equal(apply(s, ST("b", "", "8"), NULL), AB_OK);
    assert_int_equal(run_state_entries(s), 3);
    run_state_free(s);
}

static void test_global_replaces_everything(void **state)
{
    struct fx *f = *state;
    struct ab_error err = {0};
    struct run_state *s = run_state_open(f->path, &err);
    const char *note = NULL;
    char *text;

    assert_non_null(s);
    assert_int_equal(apply(s, ST("a", "", "1"), NULL), AB_OK);
    assert_int_equal(apply(s, ST("b", "", "1"), NULL), AB_OK);
    assert_int_equal(apply(s,
                           "{\"type\":\"STATE\",\"state\":{\"type\":\"GLOBAL\",\"global\":{"
                           "\"shared_state\":{\"lsn\":9},\"stream_states\":[]},"
                           "\"sourceStats\":{\"recordCount\":1.0}}}",
                           &note),
                     AB_OK);
    assert_non_null(note);
    assert_int_equal(run_state_entries(s), 1);
    text = file_text(f->path);
    assert_string_equal(text, "[\n{\"type\":\"GLOBAL\",\"global\":{\"shared_state\":{\"lsn\":9},"
                              "\"stream_states\":[]}}\n]\n");
    free(text);
    /* a later GLOBAL replaces it without a note; a STREAM state replaces it with one */
    assert_int_equal(apply(s,
                           "{\"type\":\"STATE\",\"state\":{\"type\":\"GLOBAL\",\"global\":{"
                           "\"shared_state\":{\"lsn\":10},\"stream_states\":[]}}}",
                           &note),
                     AB_OK);
    assert_null(note);
    assert_int_equal(apply(s, ST("a", "", "3"), &note), AB_OK);
    assert_non_null(note);
    assert_int_equal(run_state_entries(s), 1);
    /* a LEGACY state replaces everything too */
    assert_int_equal(apply(s, "{\"type\":\"STATE\",\"state\":{\"data\":{\"x\":1}}}", NULL), AB_OK);
    text = file_text(f->path);
    assert_string_equal(text, "[\n{\"data\":{\"x\":1}}\n]\n");
    free(text);
    run_state_free(s);
}

static void test_bad_states_and_files(void **state)
{
    struct fx *f = *state;
    struct ab_error err = {0};
    struct run_state *s = run_state_open(f->path, &err);
    char *text;

    assert_non_null(s);
    assert_int_equal(apply(s, ST("a", "", "1"), NULL), AB_OK);
    /* not an object; a STREAM state without a name: refused, the file unchanged */
    assert_int_equal(apply(s, "{\"type\":\"STATE\",\"state\":[1]}", NULL), AB_ERR_PROTOCOL);
    assert_int_equal(apply(s, "{\"type\":\"STATE\",\"state\":{\"type\":\"STREAM\"}}", NULL),
                     AB_ERR_PROTOCOL);
    run_state_free(s);
    text = file_text(f->path);
    assert_non_null(strstr(text, "\"c\":1"));
    free(text);

    write_text(f->path, "{\"not\":\"an array\"}");
    assert_null(run_state_open(f->path, &err));
    assert_int_equal(err.code, AB_ERR_CONFIG);
    assert_non_null(strstr(err.message, "expected a JSON array"));
    write_text(f->path, "[{\"type\":\"STREAM\",\"stream\":{}}]");
    assert_null(run_state_open(f->path, &err));
    assert_non_null(strstr(err.message, "[0]"));
    write_text(f->path, "[{\"type\":\"GLOB");
    assert_null(run_state_open(f->path, &err));
    assert_int_equal(err.code, AB_ERR_CONFIG);
    assert_non_null(strstr(err.message, f->path));
}

static void test_write_failure_keeps_old_file(void **state)
{
    struct fx *f = *state;
    struct ab_error err = {0};
    char path[200];
    char tmp[200];
    struct run_state *s;
    char *text;

    /* no directory for the file */
    (void)snprintf(path, sizeof(path), "%s/missing/state.json", f->dir);
    s = run_state_open(path, &err);
    assert_non_null(s);
    assert_int_equal(apply(s, ST("a", "", "1"), NULL), AB_ERR_IO);
    assert_false(run_state_saved(s));
    assert_false(run_state_exists(s));
    run_state_free(s);

    /* the temporary file cannot be created: the old file stays as it was */
    s = run_state_open(f->path, &err);
    assert_non_null(s);
    assert_int_equal(apply(s, ST("a", "", "1"), NULL), AB_OK);
    (void)snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
    assert_int_equal(mkdir(tmp, 0700), 0);
    assert_int_equal(apply(s, ST("a", "", "2"), NULL), AB_ERR_IO);
    assert_false(run_state_saved(s));
    run_state_free(s);
    assert_int_equal(rmdir(tmp), 0);
    text = file_text(f->path);
    assert_non_null(strstr(text, "\"c\":1"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stream_states_merge_in_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_global_replaces_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_states_and_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure_keeps_old_file, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
