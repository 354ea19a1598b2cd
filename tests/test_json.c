/* test_json.c - parse errors, byte-exact numbers, escaping, lookups, clone. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/buf.h"
#include "ab/json.h"

#include "ab_test.h"

/* Parses text and returns its compact form (caller frees). */
static char *roundtrip(const char *text)
{
    struct ab_error err = {0};
    struct ab_buf out;
    yajl_val v = ab_json_parse(text, strlen(text), &err);

    if (!v) {
        fail_msg("cannot parse %s: %s", text, err.message);
    }
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_json_write(&out, v, &err), AB_OK);
    ab_json_free(v);
    return ab_buf_detach(&out, NULL);
}

struct bad_case {
    const char *text;
    size_t len; /* 0: strlen */
    const char *message;
};

static void test_parse_errors(void **state)
{
    static const struct bad_case cases[] = {
        {"{\"a\":", 0, "invalid JSON: unexpected end of input (value expected)"},
        {"", 0, "invalid JSON: empty input"},
        {"{\"a\":1}x", 0,
         "invalid JSON: end of input expected after the value at byte 7 (found 'x')"},
        {"{a:1}", 0, "invalid JSON: member name expected at byte 1 (found 'a')"},
        {"[01]", 0, "invalid JSON: ',' or ']' expected at byte 2 (found '1')"},
        {"[NaN]", 0, "invalid JSON: value expected at byte 1 (found 'N')"},
        {"[1,]", 0, "invalid JSON: value expected at byte 3 (found ']')"},
        {"{\"a\":tru}", 0, "invalid JSON: value expected at byte 5 (found 't')"},
        {"[1.]", 0,
         "invalid JSON: invalid number (digit expected after '.') at byte 3 (found ']')"},
        {"\"\xff\"", 0, "invalid JSON: invalid UTF-8 at byte 1 ($)"},
        {"\"\xe2\x82\"", 0, "invalid JSON: invalid UTF-8 at byte 1 ($)"},
        {"{\"k\xc3\":1}", 0, "invalid JSON: invalid UTF-8 at byte 3 ($)"},
        {"\"a\tb\"", 0, "invalid JSON: control character in a string at byte 2 (found byte 0x09)"},
        {"{\"a\":\"x\0y\"}", 11,
         "invalid JSON: control character in a string at byte 7 (found byte 0x00)"},
        {"\0", 1, "invalid JSON: value expected at byte 0 (found byte 0x00)"},
        {"\"\\x\"", 0, "invalid JSON: invalid escape at byte 2 (found 'x')"},
        {"\"\\u12\"", 0, "invalid JSON: invalid \\u escape at byte 2 (found 'u')"},
        /* the rules beyond RFC 8259, each naming byte and path */
        {"{\"data\":{\"price\":1e999}}", 0,
         "invalid JSON: number out of range at byte 17 ($.data.price)"},
        {"[-1e999]", 0, "invalid JSON: number out of range at byte 1 ($[0])"},
        {"{\"a\":[\"x\",\"\\u0000\"]}", 0,
         "invalid JSON: escaped NUL (\\u0000) at byte 11 ($.a[1])"},
        {"{\"s\\u0000x\":1}", 0, "invalid JSON: escaped NUL (\\u0000) at byte 3 ($)"},
        {"\"\\ud800\"", 0, "invalid JSON: unpaired surrogate escape (high half) at byte 1 ($)"},
        {"\"\\ud800\\u0041\"", 0,
         "invalid JSON: unpaired surrogate escape (high half) at byte 1 ($)"},
        {"\"\\udc00\"", 0, "invalid JSON: unpaired surrogate escape (low half) at byte 1 ($)"},
        {"{\"state\":{},\"st\\u0061te\":{}}", 0,
         "invalid JSON: member 'state' appears twice at byte 12 ($)"},
        {"{\"a\":{\"b\":1,\"b\":2}}", 0, "invalid JSON: member 'b' appears twice at byte 12 ($.a)"},
        /* member names in messages: never a control character (found by fuzz_json) */
        {"{\"a\\nb\":\"\xff\"}", 0,
         "invalid JSON: invalid UTF-8 at byte 9 ($.<member name of 3 bytes>)"},
        {"{\"a\\nb\":1,\"a\\nb\":2}", 0,
         "invalid JSON: member '<member name of 3 bytes>' appears twice at byte 10 ($)"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ab_error err = {0};
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        yajl_val v = ab_json_parse(cases[i].text, len, &err);

        if (v) {
            fail_msg("case %zu parsed", i);
        }
        assert_int_equal(err.code, AB_ERR_PROTOCOL);
        assert_string_equal(err.message, cases[i].message);
        /* one line only: yajl's caret drawing is cut */
        assert_null(strchr(err.message, '\n'));
    }
}

static void test_numbers_byte_exact(void **state)
{
    static const char *const cases[] = {
        "[123456789012345678901234567890]",
        "[-123456789012345678901234567890]",
        "[18446744073709551616]",
        "[9223372036854775808]",
        "[-9223372036854775809]",
        "[1e308]",
        "[-1E-400]",
        "[1.0000000000000000000000001]",
        "[0.1,2.50,1E+2,1e-2,-0,0,-0.0]",
        "{\"a\":{\"b\":[1.10,{\"c\":100000000000000000000.000}]}}",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = roundtrip(cases[i]);

        assert_string_equal(got, cases[i]);
        free(got);
    }
}

static void test_number_accessors(void **state)
{
    static const char text[] = "{\"max\":9223372036854775807,\"over\":9223372036854775808,"
                               "\"min\":-9223372036854775808,\"min1\":-9223372036854775807,"
                               "\"d\":2.5,\"huge\":1e308,"
                               "\"s\":\"7\",\"t\":true,\"f\":false,\"n\":null}";
    struct ab_error err = {0};
    yajl_val v = ab_json_parse(text, strlen(text), &err);
    int64_t i;
    double d;

    (void)state;
    assert_non_null(v);
    assert_true(ab_json_int(ab_json_get(v, "max"), &i));
    assert_true(i == INT64_MAX);
    assert_false(ab_json_int(ab_json_get(v, "over"), &i));
    assert_true(ab_json_int(ab_json_get(v, "min1"), &i));
    assert_true(i == INT64_MIN + 1);
    assert_true(ab_json_int(ab_json_get(v, "min"), &i));
    assert_true(i == INT64_MIN);
    assert_true(ab_json_double(ab_json_get(v, "min"), &d));
    assert_false(ab_json_int(ab_json_get(v, "d"), &i));
    assert_true(ab_json_double(ab_json_get(v, "d"), &d));
    assert_true(d > 2.49 && d < 2.51);
    assert_false(ab_json_int(ab_json_get(v, "s"), &i));
    assert_int_equal(ab_json_get_int(v, "s", -7), -7);
    assert_int_equal(ab_json_get_int(v, "max", 0), INT64_MAX);
    assert_true(ab_json_get_double(v, "absent", 1.5) > 1.49);
    assert_true(ab_json_get_bool(v, "t", false));
    assert_false(ab_json_get_bool(v, "f", true));
    assert_true(ab_json_get_bool(v, "n", true));
    assert_true(ab_json_is_null(ab_json_get(v, "n")));
    assert_true(ab_json_is_null(ab_json_get(v, "absent")));
    assert_false(ab_json_is_null(ab_json_get(v, "f")));
    assert_string_equal(ab_json_type_name(ab_json_get(v, "max")), "integer");
    assert_string_equal(ab_json_type_name(ab_json_get(v, "over")), "number");
    assert_string_equal(ab_json_type_name(ab_json_get(v, "d")), "number");
    assert_string_equal(ab_json_type_name(ab_json_get(v, "s")), "string");
    assert_string_equal(ab_json_type_name(ab_json_get(v, "t")), "boolean");
    assert_string_equal(ab_json_type_name(ab_json_get(v, "n")), "null");
    assert_string_equal(ab_json_type_name(NULL), "absent");
    assert_string_equal(ab_json_type_name(v), "object");
    ab_json_free(v);
}

struct esc_case {
    const char *in;
    size_t len;
    const char *out;
};

static void test_string_escaping(void **state)
{
    static const struct esc_case cases[] = {
        {"plain", 5, "\"plain\""},
        {"q\"b\\s/", 6, "\"q\\\"b\\\\s/\""},
        {"\n\r\t", 3, "\"\\n\\r\\t\""},
        {"\x01\x08\x0c\x1f\x7f", 5, "\"\\u0001\\u0008\\u000c\\u001f\x7f\""},
        {"a\0b", 3, "\"a\\u0000b\""},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
         "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""},
        {"", 0, "\"\""},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ab_buf out;

        ab_buf_init(&out, AB_BUF_UNBOUNDED);
        assert_int_equal(ab_json_write_str(&out, cases[i].in, cases[i].len, NULL), AB_OK);
        assert_int_equal(out.len, strlen(cases[i].out));
        assert_string_equal(out.data, cases[i].out);
        ab_buf_release(&out);
    }
}

static void test_strings_roundtrip(void **state)
{
    static const char *const cases[] = {
        "[\"\\\"\\\\\\n\\r\\t\\u0001\\u001f\"]",
        "{\"k\\\"ey\":\"v\\\\al\"}",
        "[\"caf\xc3\xa9\",\"\xf0\x9f\x98\x80\"]",
    };
    size_t i;
    char *got;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        got = roundtrip(cases[i]);
        assert_string_equal(got, cases[i]);
        free(got);
    }
    /* escapes that have a shorter form come back in it */
    got = roundtrip("[\"\\u00e9\\/\\b\\f\\u0041\"]");
    assert_string_equal(got, "[\"\xc3\xa9/\\u0008\\u000cA\"]");
    free(got);
    /* whitespace goes away, key order stays */
    got = roundtrip(" { \"b\" : [ 1 , true , null , false ] ,\n \"a\" : { } , \"c\" : [ ] } ");
    assert_string_equal(got, "{\"b\":[1,true,null,false],\"a\":{},\"c\":[]}");
    free(got);
}

static void test_write_capped(void **state)
{
    struct ab_error err = {0};
    yajl_val v = ab_json_parse("{\"a\":\"0123456789\"}", 18, &err);
    struct ab_buf out;

    (void)state;
    assert_non_null(v);
    ab_buf_init(&out, 8);
    assert_int_equal(ab_json_write(&out, v, &err), AB_ERR_PROTOCOL);
    assert_int_equal(err.code, AB_ERR_PROTOCOL);
    ab_buf_release(&out);
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_json_write(&out, NULL, &err), AB_OK);
    assert_string_equal(out.data, "null");
    ab_buf_release(&out);
    ab_json_free(v);
}

static void test_lookups(void **state)
{
    static const char text[] =
        "{\"a\":{\"b\":{\"c\":\"deep\"},\"x.y\":1},\"list\":[1],\"s\":\"str\"}";
    static const char *const path[] = {"a", "b", "c", NULL};
    static const char *const dotted_key[] = {"a", "x.y", NULL};
    static const char *const empty[] = {NULL};
    struct ab_error err = {0};
    yajl_val v = ab_json_parse(text, strlen(text), &err);

    (void)state;
    assert_non_null(v);
    assert_string_equal(ab_json_str(ab_json_get_dotted(v, "a.b.c")), "deep");
    assert_null(ab_json_get_dotted(v, "a.b.c.d"));
    assert_null(ab_json_get_dotted(v, "a.x.y"));
    assert_string_equal(ab_json_str(ab_json_get_path(v, path)), "deep");
    assert_int_equal(ab_json_get_int(ab_json_get_path(v, dotted_key), "nope", 5), 5);
    assert_non_null(ab_json_get_path(v, dotted_key));
    assert_ptr_equal(ab_json_get_path(v, empty), v);
    assert_null(ab_json_get(ab_json_get(v, "list"), "0"));
    assert_null(ab_json_get(NULL, "a"));
    assert_null(ab_json_str(ab_json_get(v, "list")));
    assert_string_equal(ab_json_get_str(v, "s", "fb"), "str");
    assert_string_equal(ab_json_get_str(v, "list", "fb"), "fb");
    ab_json_free(v);
}

static void test_clone_deep_and_independent(void **state)
{
    static const char text[] = "{\"s\":\"t\\\"x\",\"n\":[123456789012345678901234567890,-1,2.50],"
                               "\"o\":{\"e\":{},\"a\":[],\"t\":true,\"f\":false,\"z\":null},"
                               "\"m\":9007199254740993}";
    struct ab_error err = {0};
    yajl_val v = ab_json_parse(text, strlen(text), &err);
    yajl_val c;
    struct ab_buf out;
    int64_t i;

    (void)state;
    assert_non_null(v);
    c = ab_json_clone(v);
    assert_non_null(c);
    assert_ptr_not_equal(c, v);
    assert_ptr_not_equal(ab_json_get(c, "o"), ab_json_get(v, "o"));
    ab_json_free(v); /* the clone owns all of its memory */
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_json_write(&out, c, &err), AB_OK);
    assert_string_equal(out.data, text);
    assert_true(ab_json_int(ab_json_get(c, "m"), &i));
    assert_true(i == 9007199254740993LL);
    assert_string_equal(ab_json_type_name(ab_json_get(c, "n")->u.array.values[0]), "number");
    ab_buf_release(&out);
    ab_json_free(c);
    assert_null(ab_json_clone(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors),      cmocka_unit_test(test_numbers_byte_exact),
        cmocka_unit_test(test_number_accessors),  cmocka_unit_test(test_string_escaping),
        cmocka_unit_test(test_strings_roundtrip), cmocka_unit_test(test_write_capped),
        cmocka_unit_test(test_lookups),           cmocka_unit_test(test_clone_deep_and_independent),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
