/* test_buf.c - growable buffer with a hard cap; the error record. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "ab/buf.h"
#include "ab/error.h"

#include "ab_test.h"

static void test_add_grows_and_terminates(void **state)
{
    struct ab_buf b;
    struct ab_error err;
    size_t i;

    (void)state;
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    for (i = 0; i < 10000; i++) {
        assert_int_equal(ab_buf_addc(&b, (char)('a' + (char)(i % 26)), &err), AB_OK);
    }
    assert_int_equal(b.len, 10000);
    assert_int_equal(b.data[b.len], '\0');
    assert_int_equal(ab_buf_printf(&b, &err, "%d-%s", 42, "x"), AB_OK);
    assert_string_equal(b.data + 10000, "42-x");
    ab_buf_consume(&b, 9998);
    assert_string_equal(b.data, "op42-x");
    ab_buf_truncate(&b, 2);
    assert_string_equal(b.data, "op");
    ab_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    ab_buf_release(&b);
    assert_null(b.data);
}

static void test_cap_refuses_and_keeps_content(void **state)
{
    struct ab_buf b;
    struct ab_error err;

    (void)state;
    ab_buf_init(&b, 8);
    assert_int_equal(ab_buf_adds(&b, "12345678", &err), AB_OK);
    ab_error_init(&err);
    assert_int_equal(ab_buf_addc(&b, '9', &err), AB_ERR_PROTOCOL);
    assert_non_null(strstr(err.message, "limit of 8 bytes"));
    assert_string_equal(b.data, "12345678");
    assert_int_equal(ab_buf_printf(&b, &err, "%s", "more"), AB_ERR_PROTOCOL);
    assert_int_equal(b.len, 8);
    ab_buf_release(&b);
}

static void test_detach_hands_over(void **state)
{
    struct ab_buf b;
    size_t len = 0;
    char *p;

    (void)state;
    ab_buf_init(&b, 64);
    assert_int_equal(ab_buf_adds(&b, "hello", NULL), AB_OK);
    p = ab_buf_detach(&b, &len);
    assert_string_equal(p, "hello");
    assert_int_equal(len, 5);
    assert_null(b.data);
    assert_int_equal(b.max, 64);
    free(p);
}

static void test_read_file(void **state)
{
    char path[] = "/tmp/ab-test-buf-XXXXXX";
    int fd = mkstemp(path);
    struct ab_buf b;
    char why[128];
    FILE *f;

    (void)state;
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(fputs("{\"a\":1}", f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(ab_buf_read_file(path, 1024, &b, why, sizeof(why)), AB_OK);
    assert_string_equal(b.data, "{\"a\":1}");
    ab_buf_release(&b);
    assert_int_equal(ab_buf_read_file(path, 4, &b, why, sizeof(why)), AB_ERR_CONFIG);
    assert_non_null(strstr(why, "larger than 4 bytes"));
    assert_null(b.data);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(ab_buf_read_file(path, 1024, &b, why, sizeof(why)), AB_ERR_CONFIG);
    assert_non_null(strstr(why, "No such file"));
}

static void test_error_set_prefix_and_failure_types(void **state)
{
    struct ab_error err;
    char longtext[3000];

    (void)state;
    ab_error_init(&err);
    assert_int_equal(ab_error_set(&err, AB_ERR_CONFIG, "bad '%s'", "x"), AB_ERR_CONFIG);
    assert_int_equal(ab_error_prefix(&err, "line %d", 3), AB_ERR_CONFIG);
    assert_string_equal(err.message, "line 3: bad 'x'");
    assert_int_equal(ab_error_internal(&err, "detail %d", 1), AB_ERR_CONFIG);
    assert_string_equal(err.internal, "detail 1");
    /* long texts are cut, never overflow */
    memset(longtext, 'z', sizeof(longtext) - 1);
    longtext[sizeof(longtext) - 1] = '\0';
    ab_error_set(&err, AB_ERR_IO, "%s", longtext);
    ab_error_prefix(&err, "%s", longtext);
    assert_int_equal(strlen(err.message), AB_ERROR_MSG_MAX - 1);
    assert_string_equal(ab_status_failure_type(AB_ERR_CONFIG), "config_error");
    assert_string_equal(ab_status_failure_type(AB_ERR_TRANSIENT), "transient_error");
    assert_string_equal(ab_status_failure_type(AB_ERR_REJECTED), "system_error");
    assert_string_equal(ab_status_failure_type(AB_ERR_PROTOCOL), "system_error");
    assert_string_equal(ab_status_name(AB_ERR_REJECTED), "rejected");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_grows_and_terminates),
        cmocka_unit_test(test_cap_refuses_and_keeps_content),
        cmocka_unit_test(test_detach_hands_over),
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_error_set_prefix_and_failure_types),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
