/* test_spool.c - unit tests of the RAM/file record spool. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include "ab/spool.h"

#include "ab_test.h"

static char tmpdir[256];

static int setup_dir(void **state)
{
    (void)state;
    (void)snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_spool_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    return rmdir(tmpdir);
}

static size_t dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            n++;
        }
    }
    (void)closedir(d);
    return n;
}

/* Record i: a deterministic text of varying length (0 .. 3000 bytes). */
static size_t make_record(size_t i, char *out, size_t size)
{
    size_t len = (i * 7919U) % 3001U;
    size_t k;

    assert_true(len < size);
    for (k = 0; k < len; k++) {
        out[k] = (char)('a' + (char)((i + k) % 26U));
    }
    return len;
}

static struct ab_spool *new_spool(size_t memory, struct ab_spool_budget *budget)
{
    struct ab_spool_opts o;
    struct ab_error err = {0};
    struct ab_spool *sp;

    ab_spool_opts_init(&o);
    o.memory_bytes = memory;
    o.budget = budget;
    o.dir = tmpdir;
    sp = ab_spool_new(&o, &err);
    assert_non_null(sp);
    return sp;
}

static void check_all(struct ab_spool *sp, const uint64_t *offs, size_t n)
{
    struct ab_spool_iter it;
    struct ab_buf b;
    struct ab_error err = {0};
    enum ab_status rc;
    char want[4096];
    size_t i = 0;

    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    ab_spool_iter_init(&it, sp, 0);
    while (ab_spool_iter_next(&it, &b, &rc, &err)) {
        size_t len = make_record(i, want, sizeof(want));

        assert_true(i < n);
        assert_int_equal(b.len, len);
        assert_memory_equal(b.len ? b.data : "", want, len);
        i++;
    }
    assert_int_equal(rc, AB_OK);
    assert_int_equal(i, n);
    /* Random access by offset, backwards. */
    for (i = n; i-- > 0;) {
        size_t len = make_record(i, want, sizeof(want));
        uint64_t next;

        assert_int_equal(ab_spool_read(sp, offs[i], &b, &next, &err), AB_OK);
        assert_int_equal(b.len, len);
        assert_memory_equal(b.len ? b.data : "", want, len);
        if (i + 1 < n) {
            assert_int_equal(next, offs[i + 1]);
        } else {
            assert_int_equal(next, ab_spool_end(sp));
        }
    }
    /* A piece of a record, read where it is wanted: its length and the
     * next offset come along; nothing past its end. */
    for (i = 0; i < n; i++) {
        size_t len = make_record(i, want, sizeof(want));
        size_t pos = len / 3;
        size_t got_len = 0;
        uint64_t next = 0;
        char piece[4096];

        assert_int_equal(
            ab_spool_read_at(sp, offs[i], pos, piece, len - pos, &got_len, &next, &err), AB_OK);
        assert_int_equal(got_len, len);
        assert_memory_equal(len > pos ? piece : "", want + pos, len - pos);
        assert_int_equal(next, i + 1 < n ? offs[i + 1] : ab_spool_end(sp));
        assert_int_equal(ab_spool_read_at(sp, offs[i], 0, piece, len, NULL, NULL, &err), AB_OK);
        assert_memory_equal(len ? piece : "", want, len);
        assert_int_equal(ab_spool_read_at(sp, offs[i], pos, piece, len - pos + 1, NULL, NULL, &err),
                         AB_ERR_INTERNAL);
        assert_int_equal(ab_spool_read_at(sp, offs[i], len + 1, piece, 0, NULL, NULL, &err),
                         AB_ERR_INTERNAL);
    }
    ab_buf_release(&b);
}

/* Peeks at every record: each one peek gives is the record's very bytes,
 * with its length and the next offset. Returns how many it gave; the end
 * gives none. */
static size_t peek_all(struct ab_spool *sp, const uint64_t *offs, size_t n)
{
    char want[4096];
    size_t given = 0;
    const char *p = NULL;
    size_t len = 0;
    uint64_t next = 0;

    for (size_t i = 0; i < n; i++) {
        size_t wlen = make_record(i, want, sizeof(want));

        if (ab_spool_peek(sp, offs[i], &p, &len, &next)) {
            assert_int_equal(len, wlen);
            assert_memory_equal(len ? p : "", want, wlen);
            assert_int_equal(next, i + 1 < n ? offs[i + 1] : ab_spool_end(sp));
            given++;
        }
    }
    assert_false(ab_spool_peek(sp, ab_spool_end(sp), &p, &len, &next));
    return given;
}

static void fill(struct ab_spool *sp, uint64_t *offs, size_t from, size_t to)
{
    struct ab_error err = {0};
    char rec[4096];
    size_t i;

    for (i = from; i < to; i++) {
        size_t len = make_record(i, rec, sizeof(rec));

        assert_int_equal(ab_spool_append(sp, rec, len, &offs[i], &err), AB_OK);
    }
}

static void test_spool_memory_only(void **state)
{
    uint64_t offs[200];
    struct ab_spool *sp = new_spool((size_t)4 * 1024 * 1024, NULL);

    (void)state;
    fill(sp, offs, 0, 200);
    assert_int_equal(ab_spool_count(sp), 200);
    assert_int_equal(ab_spool_file_bytes(sp), 0);
    assert_true(ab_spool_memory(sp) > 0);
    assert_true(ab_spool_memory(sp) <= (size_t)4 * 1024 * 1024);
    check_all(sp, offs, 200);
    /* in RAM, only a record across two chunks is not given in place */
    assert_true(peek_all(sp, offs, 200) + ab_spool_memory(sp) / AB_SPOOL_CHUNK >= 200);
    ab_spool_free(sp);
    assert_int_equal(dir_entries(tmpdir), 0);
}

static void test_spool_spills_to_file_with_bounded_memory(void **state)
{
    static uint64_t offs[3000];
    struct ab_spool *sp = new_spool(AB_SPOOL_CHUNK * 2, NULL);

    (void)state;
    fill(sp, offs, 0, 3000); /* about 4.5 MB of records */
    assert_int_equal(ab_spool_count(sp), 3000);
    assert_int_equal(ab_spool_memory(sp), AB_SPOOL_CHUNK * 2);
    assert_true(ab_spool_file_bytes(sp) > 0);
    /* the file is unlinked as soon as it is created */
    assert_int_equal(dir_entries(tmpdir), 0);
    check_all(sp, offs, 3000);
    /* the records in the file are read, not given in place */
    assert_true(peek_all(sp, offs, 3000) < 2 * AB_SPOOL_CHUNK / 1000);
    ab_spool_free(sp);
}

static void test_spool_zero_budget_all_on_file(void **state)
{
    uint64_t offs[50];
    struct ab_spool *sp = new_spool(0, NULL);

    (void)state;
    fill(sp, offs, 0, 50);
    assert_int_equal(ab_spool_memory(sp), 0);
    check_all(sp, offs, 50);
    assert_int_equal(peek_all(sp, offs, 50), 0);
    ab_spool_free(sp);
}

static void test_spool_truncate_and_reset(void **state)
{
    static uint64_t offs[2000];
    struct ab_error err = {0};
    struct ab_spool *sp = new_spool(AB_SPOOL_CHUNK, NULL);

    (void)state;
    fill(sp, offs, 0, 2000);
    /* drop the tail inside the file */
    assert_int_equal(ab_spool_truncate(sp, offs[1500], &err), AB_OK);
    assert_int_equal(ab_spool_count(sp), 1500);
    assert_int_equal(ab_spool_end(sp), offs[1500]);
    check_all(sp, offs, 1500);
    /* appending continues at the cut: same offsets as before */
    fill(sp, offs, 1500, 2000);
    check_all(sp, offs, 2000);
    /* drop into the RAM part */
    assert_int_equal(ab_spool_truncate(sp, offs[10], &err), AB_OK);
    assert_int_equal(ab_spool_count(sp), 10);
    assert_int_equal(ab_spool_file_bytes(sp), 0);
    check_all(sp, offs, 10);
    fill(sp, offs, 10, 2000);
    check_all(sp, offs, 2000);
    assert_int_equal(ab_spool_reset(sp, &err), AB_OK);
    assert_int_equal(ab_spool_count(sp), 0);
    assert_int_equal(ab_spool_end(sp), 0);
    assert_int_equal(ab_spool_memory(sp), 0);
    assert_int_equal(ab_spool_file_bytes(sp), 0);
    fill(sp, offs, 0, 100);
    check_all(sp, offs, 100);
    ab_spool_free(sp);
}

static void test_spool_shared_budget(void **state)
{
    static uint64_t offs_a[1000];
    static uint64_t offs_b[1000];
    struct ab_spool_budget budget;
    struct ab_spool *a;
    struct ab_spool *b;
    struct ab_error err = {0};

    (void)state;
    ab_spool_budget_init(&budget, AB_SPOOL_CHUNK * 3);
    a = new_spool(0, &budget);
    b = new_spool(0, &budget);
    fill(a, offs_a, 0, 1000);
    fill(b, offs_b, 0, 1000);
    assert_true(budget.used <= budget.limit);
    assert_int_equal(ab_spool_memory(a) + ab_spool_memory(b), budget.used);
    check_all(a, offs_a, 1000);
    check_all(b, offs_b, 1000);
    assert_int_equal(ab_spool_budget_held(&budget), ab_spool_memory(a) + ab_spool_memory(b));
    assert_int_equal(ab_spool_reset(a, &err), AB_OK);
    assert_int_equal(budget.used, ab_spool_memory(b));
    /* a's chunks stay with the budget, counted against its limit */
    assert_true(budget.cached > 0);
    assert_int_equal(ab_spool_budget_held(&budget), budget.used + budget.cached);
    assert_true(budget.used + budget.cached <= budget.limit);
    /* and a spool that fills again takes them: nothing new beyond the limit */
    fill(a, offs_a, 0, 1000);
    check_all(a, offs_a, 1000);
    check_all(b, offs_b, 1000);
    assert_true(budget.used + budget.cached <= budget.limit);
    ab_spool_free(b);
    assert_int_equal(budget.used, ab_spool_memory(a));
    ab_spool_free(a);
    assert_int_equal(budget.used, 0);
    assert_int_equal(budget.cached, AB_SPOOL_CHUNK * 3);
    /* what it held at most, still held until the release */
    assert_int_equal(ab_spool_budget_held(&budget), AB_SPOOL_CHUNK * 3);
    ab_spool_budget_release(&budget);
    assert_int_equal(budget.cached, 0);
    assert_int_equal(ab_spool_budget_held(&budget), 0);
    assert_null(budget.free);
}

static void test_spool_large_records_and_two_pieces(void **state)
{
    struct ab_error err = {0};
    struct ab_spool *sp = new_spool(AB_SPOOL_CHUNK, NULL);
    struct ab_buf b;
    size_t big = AB_SPOOL_CHUNK * 3 + 17; /* spans RAM, the boundary and the file */
    char *p = malloc(big);
    uint64_t off1;
    uint64_t off2;
    uint64_t off3;
    size_t i;

    (void)state;
    assert_non_null(p);
    for (i = 0; i < big; i++) {
        p[i] = (char)(i % 251U);
    }
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_spool_append(sp, "x", 1, &off1, &err), AB_OK);
    assert_int_equal(ab_spool_append(sp, p, big, &off2, &err), AB_OK);
    assert_int_equal(ab_spool_append2(sp, "head:", 5, "body", 4, &off3, &err), AB_OK);
    assert_int_equal(ab_spool_read(sp, off2, &b, NULL, &err), AB_OK);
    assert_int_equal(b.len, big);
    assert_memory_equal(b.data, p, big);
    assert_int_equal(ab_spool_read(sp, off3, &b, NULL, &err), AB_OK);
    assert_string_equal(b.data, "head:body");
    assert_int_equal(ab_spool_read(sp, off1, &b, NULL, &err), AB_OK);
    assert_string_equal(b.data, "x");
    assert_int_equal(ab_spool_append3(sp, "h:", 2, "item", 4, "rec", 3, &off3, &err), AB_OK);
    assert_int_equal(ab_spool_read(sp, off3, &b, NULL, &err), AB_OK);
    assert_string_equal(b.data, "h:itemrec");
    /* an offset past the end is an internal error, not a crash */
    assert_int_equal(ab_spool_read(sp, ab_spool_end(sp), &b, NULL, &err), AB_ERR_INTERNAL);
    ab_buf_release(&b);
    free(p);
    ab_spool_free(sp);
}

static void test_spool_record_over_cap_is_rejected(void **state)
{
    struct ab_spool_opts o;
    struct ab_error err = {0};
    struct ab_spool *sp;

    (void)state;
    ab_spool_opts_init(&o);
    o.dir = tmpdir;
    o.max_record = 8;
    sp = ab_spool_new(&o, &err);
    assert_non_null(sp);
    assert_int_equal(ab_spool_append(sp, "123456789", 9, NULL, &err), AB_ERR_PROTOCOL);
    assert_int_equal(ab_spool_append2(sp, "1234", 4, "56789", 5, NULL, &err), AB_ERR_PROTOCOL);
    assert_int_equal(ab_spool_append3(sp, "12", 2, "345", 3, "6789", 4, NULL, &err),
                     AB_ERR_PROTOCOL);
    assert_int_equal(ab_spool_append(sp, "12345678", 8, NULL, &err), AB_OK);
    assert_int_equal(ab_spool_count(sp), 1);
    ab_spool_free(sp);
}

static void test_spool_bad_dir(void **state)
{
    struct ab_spool_opts o;
    struct ab_error err = {0};
    struct ab_spool *sp;
    char rec[100] = {0};

    (void)state;
    assert_int_equal(ab_spool_probe_dir(tmpdir, &err), AB_OK);
    assert_int_equal(dir_entries(tmpdir), 0);
    assert_int_equal(ab_spool_probe_dir("/nonexistent/spool/dir", &err), AB_ERR_CONFIG);
    assert_non_null(strstr(err.message, "/nonexistent/spool/dir"));

    ab_spool_opts_init(&o);
    o.memory_bytes = 0;
    o.dir = "/nonexistent/spool/dir";
    sp = ab_spool_new(&o, &err);
    assert_non_null(sp);
    assert_int_equal(ab_spool_append(sp, rec, sizeof(rec), NULL, &err), AB_ERR_IO);
    /* sticky */
    err.code = AB_OK;
    assert_int_equal(ab_spool_append(sp, rec, 1, NULL, &err), AB_ERR_IO);
    assert_int_equal(err.code, AB_ERR_IO);
    ab_spool_free(sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spool_memory_only),
        cmocka_unit_test(test_spool_spills_to_file_with_bounded_memory),
        cmocka_unit_test(test_spool_zero_budget_all_on_file),
        cmocka_unit_test(test_spool_truncate_and_reset),
        cmocka_unit_test(test_spool_shared_budget),
        cmocka_unit_test(test_spool_large_records_and_two_pieces),
        cmocka_unit_test(test_spool_record_over_cap_is_rejected),
        cmocka_unit_test(test_spool_bad_dir),
    };

    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
