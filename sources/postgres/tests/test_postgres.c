/* test_postgres.c - unit tests of source-postgres' pure parts. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/json.h"
#include "ab/options.h"

#include "ab_spec_test.h"
#include "ab_test.h"
#include "pg.h"

static char *conv(enum pg_conv c, const char *v)
{
    static char out[512];
    struct ab_buf b;
    struct ab_error err = {0};

    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    assert_int_equal(pg_value_json(&b, c, v, strlen(v), &err), AB_OK);
    (void)snprintf(out, sizeof(out), "%s", b.data);
    ab_buf_release(&b);
    return out;
}

static void test_numbers(void **state)
{
    (void)state;
    assert_string_equal(conv(PG_CONV_INTEGER, "9223372036854775807"), "9223372036854775807");
    assert_string_equal(conv(PG_CONV_FLOAT, "1.5e-07"), "1.5e-07");
    assert_string_equal(conv(PG_CONV_FLOAT, "NaN"), "\"NaN\"");
    assert_string_equal(conv(PG_CONV_FLOAT, "Infinity"), "\"Infinity\"");
    assert_string_equal(conv(PG_CONV_FLOAT, "-Infinity"), "\"-Infinity\"");
    assert_string_equal(conv(PG_CONV_DECIMAL, "-12345678901234567890.000100"),
                        "\"-12345678901234567890.000100\"");
    assert_string_equal(conv(PG_CONV_BOOL, "t"), "true");
    assert_string_equal(conv(PG_CONV_BOOL, "f"), "false");
}

static void test_dates(void **state)
{
    (void)state;
    assert_string_equal(conv(PG_CONV_DATE, "2024-02-29"), "\"2024-02-29\"");
    assert_string_equal(conv(PG_CONV_DATE, "0044-03-15 BC"), "\"-0043-03-15\"");
    assert_string_equal(conv(PG_CONV_DATE, "0001-01-01 BC"), "\"0000-01-01\"");
    assert_string_equal(conv(PG_CONV_DATE, "infinity"), "\"infinity\"");
    assert_string_equal(conv(PG_CONV_TIMESTAMP, "2024-01-31 10:00:00.5"),
                        "\"2024-01-31T10:00:00.5\"");
    assert_string_equal(conv(PG_CONV_TIMESTAMPTZ, "2024-01-31 10:00:00.5+00"),
                        "\"2024-01-31T10:00:00.5Z\"");
    assert_string_equal(conv(PG_CONV_TIMESTAMPTZ, "2024-01-31 10:00:00+05:30"),
                        "\"2024-01-31T10:00:00+05:30\"");
    assert_string_equal(conv(PG_CONV_TIMESTAMPTZ, "2024-01-31 10:00:00-03"),
                        "\"2024-01-31T10:00:00-03:00\"");
    assert_string_equal(conv(PG_CONV_TIMESTAMPTZ, "-infinity"), "\"-infinity\"");
    assert_string_equal(conv(PG_CONV_TIMESTAMP, "10000-01-01 00:00:00"),
                        "\"10000-01-01T00:00:00\"");
    assert_string_equal(conv(PG_CONV_TIMETZ, "10:00:00+02"), "\"10:00:00+02:00\"");
    assert_string_equal(conv(PG_CONV_TIMETZ, "10:00:00-02:30"), "\"10:00:00-02:30\"");
}

static void test_bytes_json_strings(void **state)
{
    struct ab_buf b;
    struct ab_error err = {0};

    (void)state;
    assert_string_equal(conv(PG_CONV_BYTEA, "\\x"), "\"\"");
    assert_string_equal(conv(PG_CONV_BYTEA, "\\x66"), "\"Zg==\"");
    assert_string_equal(conv(PG_CONV_BYTEA, "\\x666f"), "\"Zm8=\"");
    assert_string_equal(conv(PG_CONV_BYTEA, "\\x666f6f00ff"), "\"Zm9vAP8=\"");
    assert_string_equal(conv(PG_CONV_JSON, "{\"a\":\n [1,\r\n2]}"), "{\"a\":  [1,  2]}");
    assert_string_equal(conv(PG_CONV_STRING, "a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    assert_int_equal(pg_value_json(&b, PG_CONV_BYTEA, "\\x6", 3, &err), AB_ERR_PROTOCOL);
    assert_int_equal(pg_value_json(&b, PG_CONV_BYTEA, "\\xzz", 4, &err), AB_ERR_PROTOCOL);
    ab_buf_release(&b);
}

static void test_quote_and_schema(void **state)
{
    struct ab_buf b;
    struct ab_error err = {0};

    (void)state;
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    assert_int_equal(pg_quote_ident(&b, "we\"ird name", &err), AB_OK);
    assert_string_equal(b.data, "\"we\"\"ird name\"");
    ab_buf_reset(&b);
    assert_int_equal(pg_column_schema(&b, "int8", 'N', "", true, &err), AB_OK);
    assert_string_equal(b.data, "{\"type\":[\"integer\"],\"airbyte_type\":\"integer\"}");
    ab_buf_reset(&b);
    assert_int_equal(pg_column_schema(&b, "timestamptz", 'D', "", false, &err), AB_OK);
    assert_non_null(strstr(b.data, "\"null\",\"string\""));
    assert_non_null(strstr(b.data, "date-time"));
    ab_buf_reset(&b);
    assert_int_equal(pg_column_schema(&b, "_int4", 'A', "int4", false, &err), AB_OK);
    assert_non_null(strstr(b.data, "\"array\""));
    ab_buf_reset(&b);
    assert_int_equal(pg_column_schema(&b, "jsonb", 'U', "", false, &err), AB_OK);
    assert_string_equal(b.data, "{}");
    ab_buf_release(&b);
    assert_true(pg_cursor_type("timestamptz"));
    assert_false(pg_cursor_type("jsonb"));
    assert_false(pg_xmin_needs_full(3, 3));
    assert_true(pg_xmin_needs_full(3, 4));
}

static char *arr(enum pg_conv c, const char *v, enum ab_status want)
{
    static char out[512];
    struct ab_buf b;
    struct ab_error err = {0};

    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    assert_int_equal(pg_array_json(&b, c, v, strlen(v), &err), want);
    (void)snprintf(out, sizeof(out), "%s", b.data ? b.data : "");
    ab_buf_release(&b);
    return out;
}

static void test_arrays_and_lsns(void **state)
{
    uint64_t lsn = 0;

    (void)state;
    assert_string_equal(arr(PG_CONV_INTEGER, "{1,2,NULL}", AB_OK), "[1,2,null]");
    assert_string_equal(arr(PG_CONV_INTEGER, "{}", AB_OK), "[]");
    assert_string_equal(arr(PG_CONV_INTEGER, "{{1,2},{3,4}}", AB_OK), "[[1,2],[3,4]]");
    assert_string_equal(arr(PG_CONV_STRING, "{\"a b\",\"c,d\",\"q\\\"u\",\"NULL\",x}", AB_OK),
                        "[\"a b\",\"c,d\",\"q\\\"u\",\"NULL\",\"x\"]");
    assert_string_equal(arr(PG_CONV_INTEGER, "[0:1]={7,8}", AB_OK), "[7,8]");
    assert_string_equal(arr(PG_CONV_BOOL, "{t,f}", AB_OK), "[true,false]");
    (void)arr(PG_CONV_INTEGER, "{1,2", AB_ERR_PROTOCOL);
    (void)arr(PG_CONV_INTEGER, "1,2}", AB_ERR_PROTOCOL);
    (void)arr(PG_CONV_STRING, "{\"open}", AB_ERR_PROTOCOL);
    (void)arr(PG_CONV_INTEGER, "{{{{{{{{1}}}}}}}}", AB_ERR_PROTOCOL);
    assert_true(pg_lsn_parse("16/B374D848", &lsn));
    assert_true(lsn == ((uint64_t)0x16 << 32 | 0xB374D848U));
    assert_true(pg_lsn_parse("0/0", &lsn));
    assert_true(lsn == 0);
    assert_false(pg_lsn_parse("16-B3", &lsn));
    assert_false(pg_lsn_parse("1/2x", &lsn));
    assert_false(pg_lsn_parse(NULL, &lsn));
}

static void test_spec_builds_and_lints(void **state)
{
    yajl_val spec = spec_test_build(pg_spec_json);
    struct ab_error err = {0};

    (void)state;
    assert_int_equal(ab_spec_lint(spec, &err), AB_OK);
    assert_non_null(spec_test_prop(spec, "password"));
    assert_true(ab_json_get_bool(spec_test_prop(spec, "password"), "airbyte_secret", false));
    assert_non_null(spec_test_prop(spec, "replication_method"));
    ab_json_free(spec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_bytes_json_strings),
        cmocka_unit_test(test_quote_and_schema),
        cmocka_unit_test(test_arrays_and_lsns),
        cmocka_unit_test(test_spec_builds_and_lints),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
