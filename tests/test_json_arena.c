/* test_json_arena.c - the arena parser builds what yajl_tree builds. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/json.h"

#include "ab_test.h"

static const char *const same_cases[] = {
    "{}",
    "[]",
    "null",
    "\"s\"",
    "-0.5e10",
    "{\"a\":1,\"b\":[true,false,null,\"x\",{\"c\":{}}],\"d\":\"\\u00e9\\n\"}",
    "{\"id\":12345678901234567890123,\"n\":-9223372036854775808,\"f\":1.50}",
    "[[[[[[[[[[1]]]]]]]]]]",
    "{\"\":\"\",\"dup\":1,\"dup\":2}",
    "  {\"type\":\"RECORD\",\"record\":{\"stream\":\"s\",\"data\":{\"k\":[1,2,3]}}}  ",
};

static void test_arena_matches_yajl_tree(void **state)
{
    struct ab_json_arena *a;
    struct ab_error err;
    size_t i;

    (void)state;
    a = ab_json_arena_new(&err);
    assert_non_null(a);
    for (i = 0; i < sizeof(same_cases) / sizeof(same_cases[0]); i++) {
        const char *text = same_cases[i];
        yajl_val t = ab_json_parse(text, strlen(text), &err);
        yajl_val v;
        struct ab_buf bt;
        struct ab_buf bv;

        assert_non_null(t);
        ab_json_arena_reset(a);
        v = ab_json_parse_arena(a, text, strlen(text), &err);
        if (!v) {
            fail_msg("case %zu: %s", i, err.message);
        }
        ab_buf_init(&bt, AB_BUF_UNBOUNDED);
        ab_buf_init(&bv, AB_BUF_UNBOUNDED);
        assert_int_equal(ab_json_write(&bt, t, &err), AB_OK);
        assert_int_equal(ab_json_write(&bv, v, &err), AB_OK);
        assert_string_equal(bv.data, bt.data);
        ab_buf_release(&bt);
        ab_buf_release(&bv);
        yajl_tree_free(t);
    }
    ab_json_arena_free(a);
}

static void test_arena_number_flags(void **state)
{
    struct ab_json_arena *a = ab_json_arena_new(NULL);
    struct ab_error err;
    const char text[] = "[42,1.5,123456789012345678901234567890,-7]";
    yajl_val v;
    int64_t i;
    double d;

    (void)state;
    v = ab_json_parse_arena(a, text, sizeof(text) - 1, &err);
    assert_non_null(v);
    assert_true(ab_json_int(v->u.array.values[0], &i));
    assert_int_equal(i, 42);
    assert_false(ab_json_int(v->u.array.values[1], &i));
    assert_true(ab_json_double(v->u.array.values[1], &d));
    assert_false(ab_json_int(v->u.array.values[2], &i));
    assert_string_equal(v->u.array.values[2]->u.number.r, "123456789012345678901234567890");
    assert_true(ab_json_int(v->u.array.values[3], &i));
    assert_int_equal(i, -7);
    ab_json_arena_free(a);
}

struct bad_case {
    const char *text;
    size_t len; /* 0: strlen */
    const char *message;
};

static void test_arena_rejects_bad_json(void **state)
{
    static const char nul[] = "{\"a\":\"x\0y\"}";
    const struct bad_case cases[] = {
        {"{\"a\":", 0, "invalid JSON"},
        {"{\"a\":1} {\"b\":2}", 0, "invalid JSON"},
        {"{\"a\":1,}", 0, "invalid JSON"},
        {"/* c */ {}", 0, "invalid JSON"},
        {"{\"a\":\"\xff\"}", 0, "invalid JSON"},
        {"", 0, "invalid JSON"},
        {nul, sizeof(nul) - 1, "NUL byte at offset 7"},
    };
    struct ab_json_arena *a = ab_json_arena_new(NULL);
    struct ab_error err;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);

        ab_error_init(&err);
        ab_json_arena_reset(a);
        if (ab_json_parse_arena(a, cases[i].text, len, &err) != NULL) {
            fail_msg("case %zu parsed", i);
        }
        assert_int_equal(err.code, AB_ERR_PROTOCOL);
        if (!strstr(err.message, cases[i].message)) {
            fail_msg("case %zu: '%s' lacks '%s'", i, err.message, cases[i].message);
        }
        assert_null(strchr(err.message, '\n'));
    }
    ab_json_arena_free(a);
}

static void test_arena_deep_nesting_and_large_values(void **state)
{
    struct ab_json_arena *a = ab_json_arena_new(NULL);
    struct ab_error err;
    size_t n = 2000;
    char *deep = malloc(2 * n + 1);
    char *big = malloc(300000);
    yajl_val v;
    size_t i;

    (void)state;
    assert_non_null(deep);
    assert_non_null(big);
    for (i = 0; i < n; i++) {
        deep[i] = '[';
        deep[n + i] = ']';
    }
    deep[2 * n] = '\0';
    assert_null(ab_json_parse_arena(a, deep, 2 * n, &err));
    assert_non_null(strstr(err.message, "nested deeper"));

    /* a string larger than a block, then a reset and a small parse */
    big[0] = '"';
    memset(big + 1, 'x', 299997);
    big[299998] = '"';
    big[299999] = '\0';
    ab_json_arena_reset(a);
    v = ab_json_parse_arena(a, big, 299999, &err);
    assert_non_null(v);
    assert_int_equal(strlen(v->u.string), 299997);
    ab_json_arena_reset(a);
    v = ab_json_parse_arena(a, "{\"k\":\"v\"}", 9, &err);
    assert_string_equal(ab_json_get_str(v, "k", ""), "v");
    free(deep);
    free(big);
    ab_json_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_matches_yajl_tree),
        cmocka_unit_test(test_arena_number_flags),
        cmocka_unit_test(test_arena_rejects_bad_json),
        cmocka_unit_test(test_arena_deep_nesting_and_large_values),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
