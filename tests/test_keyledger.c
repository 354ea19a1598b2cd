/* test_keyledger.c - sorted key runs: sorting, multi-pass merges, differences. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include "ab/keyledger.h"

#include "ab_test.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    (void)snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-keyledger-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    assert_int_equal(setenv("TMPDIR", tmpdir, 1), 0);
    return 0;
}

static size_t entries_in(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    const struct dirent *e;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    (void)closedir(d);
    return n;
}

static int teardown(void **state)
{
    (void)state;
    /* every key file and the private directory are gone */
    assert_int_equal(entries_in(tmpdir), 0);
    assert_int_equal(rmdir(tmpdir), 0);
    return 0;
}

static void write_run(struct ab_keyruns *kr, int set, const char *text)
{
    struct ab_error err;
    FILE *fp;

    ab_error_init(&err);
    fp = ab_keyruns_begin(kr, set, &err);
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(ab_keyruns_end(kr, &err), AB_OK);
}

/* The lines of the merged run of set, '\n'-joined. */
static char *read_set(struct ab_keyruns *kr, int set)
{
    struct ab_error err;
    struct ab_buf line;
    struct ab_buf all;
    FILE *fp;
    int r;

    ab_error_init(&err);
    ab_buf_init(&line, AB_BUF_UNBOUNDED);
    ab_buf_init(&all, AB_BUF_UNBOUNDED);
    fp = ab_keyruns_open(kr, set, &err);
    assert_non_null(fp);
    while ((r = ab_keyruns_next(fp, &line, &err)) == 1) {
        assert_int_equal(ab_buf_add(&all, line.data, line.len, &err), AB_OK);
        assert_int_equal(ab_buf_addc(&all, '\n', &err), AB_OK);
    }
    assert_int_equal(r, 0);
    assert_int_equal(ab_buf_addc(&all, '\0', &err), AB_OK);
    ab_buf_release(&line);
    return ab_buf_detach(&all, NULL);
}

static void test_sort_dedups_keeping_greatest_value(void **state)
{
    struct ab_error err;
    struct ab_buf in;
    struct ab_buf out;
    const char *text = "b\t2026-01-02\na\t1\nb\t2026-01-03\nab\nb\t2026-01-01\na\t1\n";

    (void)state;
    ab_error_init(&err);
    ab_buf_init(&in, AB_BUF_UNBOUNDED);
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_buf_adds(&in, text, &err), AB_OK);
    assert_int_equal(ab_keyrun_sort(&in, &out, &err), AB_OK);
    assert_int_equal(out.len, strlen("a\t1\nab\nb\t2026-01-03\n"));
    assert_memory_equal(out.data, "a\t1\nab\nb\t2026-01-03\n", out.len);
    ab_buf_release(&in);
    ab_buf_release(&out);
}

static void test_escape_round_trip(void **state)
{
    struct ab_error err;
    struct ab_buf esc;
    struct ab_buf back;
    const char raw[] = "a\tb\nc\\d";

    (void)state;
    ab_error_init(&err);
    ab_buf_init(&esc, AB_BUF_UNBOUNDED);
    ab_buf_init(&back, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_keyrun_escape(&esc, raw, sizeof(raw) - 1, &err), AB_OK);
    assert_null(memchr(esc.data, '\t', esc.len));
    assert_null(memchr(esc.data, '\n', esc.len));
    assert_int_equal(ab_keyrun_unescape(&back, esc.data, esc.len, &err), AB_OK);
    assert_int_equal(back.len, sizeof(raw) - 1);
    assert_memory_equal(back.data, raw, back.len);
    ab_buf_release(&esc);
    ab_buf_release(&back);
}

/* 300 runs, fan-in 4: several passes; keys 0..2999 of the current set,
 * every third one absent; the older set holds 0..3999 in 500 tiny runs. */
static void test_many_runs_multi_pass_difference(void **state)
{
    struct ab_error err;
    struct ab_keyruns *kr;
    struct ab_buf line;
    struct ab_buf run;
    struct ab_buf sorted;
    FILE *fp;
    unsigned expect = 0;
    unsigned got = 0;
    int r;
    int i;
    int k;

    (void)state;
    ab_error_init(&err);
    ab_buf_init(&line, AB_BUF_UNBOUNDED);
    ab_buf_init(&run, AB_BUF_UNBOUNDED);
    ab_buf_init(&sorted, AB_BUF_UNBOUNDED);
    kr = ab_keyruns_new(4, &err);
    assert_non_null(kr);
    /* set 0 (current): run i holds keys i, i+300, ... (scattered, sorted per run) */
    for (i = 0; i < 300; i++) {
        ab_buf_reset(&run);
        for (k = i; k < 3000; k += 300) {
            if (k % 3 != 0) {
                assert_int_equal(ab_buf_printf(&run, &err, "acme K-%05d\t2026\n", k), AB_OK);
            }
        }
        /* a key repeated in another run (a restarted attempt) */
        assert_int_equal(ab_buf_printf(&run, &err, "acme K-%05d\t2026\n", 1 + 3 * (i % 10)), AB_OK);
        assert_int_equal(ab_keyrun_sort(&run, &sorted, &err), AB_OK);
        assert_int_equal(ab_buf_addc(&sorted, '\0', &err), AB_OK);
        write_run(kr, 0, sorted.data);
    }
    /* set 1 (older generations): 500 runs of 8 keys */
    for (i = 0; i < 500; i++) {
        ab_buf_reset(&run);
        for (k = i * 8; k < i * 8 + 8; k++) {
            assert_int_equal(ab_buf_printf(&run, &err, "acme K-%05d\t2025-%d\n", k, i % 3), AB_OK);
        }
        assert_int_equal(ab_keyrun_sort(&run, &sorted, &err), AB_OK);
        assert_int_equal(ab_buf_addc(&sorted, '\0', &err), AB_OK);
        write_run(kr, 1, sorted.data);
    }
    assert_int_equal(ab_keyruns_runs(kr, 0), 300);
    assert_int_equal(ab_keyruns_difference(kr, 1, 0, 2, &err), AB_OK);
    assert_int_equal(ab_keyruns_runs(kr, 0), 1);
    assert_int_equal(ab_keyruns_runs(kr, 1), 1);
    assert_int_equal(ab_keyruns_entries(kr, 0), 2000);
    assert_int_equal(ab_keyruns_entries(kr, 1), 4000);
    /* 300 runs at fan-in 4: ceil(log4(300)) = 5 passes; 500: 5 passes */
    assert_true(ab_keyruns_passes(kr) >= 10);
    fp = ab_keyruns_open(kr, 2, &err);
    assert_non_null(fp);
    while ((r = ab_keyruns_next(fp, &line, &err)) == 1) {
        char want[64];

        while (expect < 4000 && expect < 3000 && expect % 3 != 0) {
            expect++;
        }
        (void)snprintf(want, sizeof(want), "acme K-%05u\t2025-%u", expect, (expect / 8) % 3);
        assert_string_equal(line.data, want);
        expect++;
        got++;
    }
    assert_int_equal(r, 0);
    /* 1000 of 0..2999 (multiples of 3) and 3000..3999 */
    assert_int_equal(got, 2000);
    assert_int_equal(ab_keyruns_entries(kr, 2), 2000);
    ab_keyruns_free(kr);
    ab_buf_release(&line);
    ab_buf_release(&run);
    ab_buf_release(&sorted);
}

static void test_merge_keeps_greatest_value_across_runs(void **state)
{
    struct ab_error err;
    struct ab_keyruns *kr;
    char *text;

    (void)state;
    ab_error_init(&err);
    kr = ab_keyruns_new(2, &err);
    assert_non_null(kr);
    write_run(kr, 0, "a\t1\nc\t5\n");
    write_run(kr, 0, "a\t3\nb\t1\n");
    write_run(kr, 0, "a\t2\nc\t4\nd\n");
    assert_int_equal(ab_keyruns_merge(kr, 0, &err), AB_OK);
    text = read_set(kr, 0);
    assert_string_equal(text, "a\t3\nb\t1\nc\t5\nd\n");
    free(text);
    /* no runs: an empty set */
    assert_int_equal(ab_keyruns_merge(kr, 3, &err), AB_OK);
    text = read_set(kr, 3);
    assert_string_equal(text, "");
    free(text);
    ab_keyruns_free(kr);
}

static void test_unsorted_run_is_an_error(void **state)
{
    struct ab_error err;
    struct ab_keyruns *kr;

    (void)state;
    ab_error_init(&err);
    kr = ab_keyruns_new(8, &err);
    assert_non_null(kr);
    write_run(kr, 0, "a\nc\n");
    write_run(kr, 0, "b\na\n");
    assert_int_equal(ab_keyruns_merge(kr, 0, &err), AB_ERR_PROTOCOL);
    assert_non_null(strstr(err.message, "line 2: keys out of order"));
    ab_keyruns_free(kr);

    ab_error_init(&err);
    kr = ab_keyruns_new(8, &err);
    assert_non_null(kr);
    write_run(kr, 0, "a\nb"); /* cut short */
    assert_int_equal(ab_keyruns_merge(kr, 0, &err), AB_ERR_PROTOCOL);
    assert_non_null(strstr(err.message, "no end of line"));
    ab_keyruns_free(kr);
}

static void test_private_directory(void **state)
{
    struct ab_error err;
    struct ab_keyruns *kr;
    DIR *d;
    const struct dirent *e;
    struct stat st;
    char path[600];
    int found = 0;

    (void)state;
    ab_error_init(&err);
    kr = ab_keyruns_new(2, &err);
    assert_non_null(kr);
    write_run(kr, 0, "a\n");
    d = opendir(tmpdir);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "ab-keys-", 8) == 0) {
            (void)snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
            assert_int_equal(stat(path, &st), 0);
            assert_int_equal(st.st_mode & 0777, 0700);
            found++;
        }
    }
    (void)closedir(d);
    assert_int_equal(found, 1);
    ab_keyruns_free(kr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sort_dedups_keeping_greatest_value),
        cmocka_unit_test(test_escape_round_trip),
        cmocka_unit_test(test_many_runs_multi_pass_difference),
        cmocka_unit_test(test_merge_keeps_greatest_value_across_runs),
        cmocka_unit_test(test_unsorted_run_is_an_error),
        cmocka_unit_test(test_private_directory),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
