/* test_json_arena.c - the arena parser builds what yajl_tree builds. */
/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
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
    "{\"\":\"\",\"dup\":1,\"dup2\":2}",
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
        ab_json_free(t);
    }
    ab_json_arena_free(a);
}

/* Strings with one byte that ends a plain run (an escape, a quote, a
 * non-ASCII byte, a control character) at every position of the first
 * forty bytes: the arena's 16- and 8-byte scans stop exactly there. */
static void test_arena_string_stops(void **state)
{
    static const char *const specials[] = {"\\n", "\\\"", "\\\\", "\xc3\xa9", "\t", "\xff"};
    static const char *const decoded[] = {"\n", "\"", "\\", "\xc3\xa9", NULL, NULL};
    struct ab_json_arena *a;
    struct ab_error err;
    size_t k;
    size_t p;

    (void)state;
    ab_error_init(&err);
    a = ab_json_arena_new(&err);
    assert_non_null(a);
    for (k = 0; k < sizeof(specials) / sizeof(specials[0]); k++) {
        for (p = 0; p < 40; p++) {
            char text[96];
            char want[96];
            yajl_val v;

            /* ["<p x's><special>yy..."] and the decoded string */
            (void)snprintf(text, sizeof(text), "[\"%.*s%syyyyyyyyy\"]", (int)p,
                           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", specials[k]);
            ab_json_arena_reset(a);
            v = ab_json_parse_arena(a, text, strlen(text), &err);
            if (!decoded[k]) {
                assert_null(v); /* a control character or bad UTF-8 */
                continue;
            }
            (void)snprintf(want, sizeof(want), "%.*s%syyyyyyyyy", (int)p,
                           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", decoded[k]);
            assert_non_null(v);
            assert_string_equal(v->u.array.values[0]->u.string, want);
        }
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
        {nul, sizeof(nul) - 1, "control character in a string at byte 7"},
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

/* Every UTF-8 edge of RFC 3629, raw and escaped. */
static void test_utf8_edges(void **state)
{
    static const struct {
        const char *text;
        bool ok;
    } cases[] = {
        {"\"\xc2\x80\"", true},          /* U+0080 */
        {"\"\xdf\xbf\"", true},          /* U+07FF */
        {"\"\xe0\xa0\x80\"", true},      /* U+0800 */
        {"\"\xef\xbf\xbf\"", true},      /* U+FFFF */
        {"\"\xf0\x9f\x98\x80\"", true},  /* emoji, 4 bytes */
        {"\"\\ud83d\\ude00\"", true},    /* the same as a pair */
        {"\"\xf4\x8f\xbf\xbf\"", true},  /* U+10FFFF */
        {"\"\xc0\xaf\"", false},         /* overlong 2 bytes */
        {"\"\xc1\xbf\"", false},         /* overlong 2 bytes */
        {"\"\xe0\x80\xaf\"", false},     /* overlong 3 bytes */
        {"\"\xe0\x9f\xbf\"", false},     /* overlong 3 bytes */
        {"\"\xf0\x80\x80\xaf\"", false}, /* overlong 4 bytes */
        {"\"\xf0\x8f\xbf\xbf\"", false}, /* overlong 4 bytes */
        {"\"\xed\xa0\x80\"", false},     /* U+D800 encoded */
        {"\"\xed\xbf\xbf\"", false},     /* U+DFFF encoded */
        {"\"\xf4\x90\x80\x80\"", false}, /* U+110000 */
        {"\"\xf5\x80\x80\x80\"", false}, /* lead F5 */
        {"\"\xff\"", false},             /* never in UTF-8 */
        {"\"\x80\"", false},             /* lone continuation */
        {"\"\xc3\"", false},             /* truncated 2 */
        {"\"\xe2\x82\"", false},         /* truncated 3 */
        {"\"\xf0\x9f\x98\"", false},     /* truncated 4 */
        {"\"\\udc00\"", false},          /* lone low escape */
        {"\"\\ud800\"", false},          /* lone high escape */
        {"\"\\ud800x\"", false},         /* high then text */
        {"\"\\ud800\\ud800\"", false},   /* high then high */
        {"\"a\\u0000\"", false},         /* escaped NUL */
    };
    struct ab_json_arena *a = ab_json_arena_new(NULL);
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ab_error err = {0};
        yajl_val v = ab_json_parse_arena(a, cases[i].text, strlen(cases[i].text), &err);

        if ((v != NULL) != cases[i].ok) {
            fail_msg("case %zu (%s): %s", i, cases[i].ok ? "valid" : "invalid", err.message);
        }
        if (!v) {
            assert_non_null(strstr(err.message, " ($)"));
        } else {
            assert_true(ab_utf8_valid(v->u.string, strlen(v->u.string), NULL));
        }
    }
    ab_json_arena_free(a);
}

/* A million levels: an error, no crash (parsing and freeing use no C stack). */
static void test_million_deep(void **state)
{
    size_t n = 1000000;
    char *deep = malloc(2 * n);
    struct ab_error err = {0};
    struct ab_json_limits lim = {.max_depth = 2 * n, .max_bytes = (size_t)1 << 31};
    struct ab_json_arena *a = ab_json_arena_new(NULL);
    yajl_val v;
    yajl_val c;
    size_t depth = 0;

    (void)state;
    assert_non_null(deep);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    assert_null(ab_json_parse(deep, 2 * n, &err));
    assert_non_null(strstr(err.message, "nested deeper than 512 levels at byte 512"));
    /* with the cap lifted, the arena parse and the malloc free both work */
    ab_json_arena_set_limits(a, &lim);
    v = ab_json_parse_arena(a, deep, 2 * n, &err);
    assert_non_null(v);
    for (c = v; c->type == yajl_t_array && c->u.array.len; c = c->u.array.values[0]) {
        depth++;
    }
    assert_int_equal(depth, n - 1);
    ab_json_arena_free(a);
    /* a deep malloc'd tree, built by hand, is freed without recursion */
    v = NULL;
    for (depth = 0; depth < n; depth++) {
        yajl_val p = calloc(1, sizeof(*p));

        assert_non_null(p);
        p->type = yajl_t_array;
        if (v) {
            p->u.array.values = malloc(sizeof(yajl_val));
            assert_non_null(p->u.array.values);
            p->u.array.values[0] = v;
            p->u.array.len = 1;
        }
        v = p;
    }
    ab_json_free(v);
    free(deep);
}

/* The budget: a line costs a bounded multiple of its size, and more fails. */
static void test_budget(void **state)
{
    size_t n = 4 << 20;
    char *text = malloc(n);
    struct ab_json_arena *a = ab_json_arena_new(NULL);
    struct ab_json_limits lim = {.max_bytes = 1 << 20};
    struct ab_error err = {0};
    size_t i;

    (void)state;
    assert_non_null(text);
    /* [1000,1001,...]: the worst case for numbers */
    text[0] = '[';
    for (i = 1; i + 6 < n; i += 5) {
        (void)snprintf(text + i, 6, "%04zu,", 1000 + (i / 5) % 9000);
    }
    text[i - 1] = ']';
    assert_non_null(ab_json_parse_arena(a, text, i, &err));
    assert_true(ab_json_arena_doc_bytes(a) < (size_t)AB_JSON_BUDGET_FACTOR * i);
    print_message("[1000,...] of %zu bytes: %zu bytes of memory (%.1fx)\n", i,
                  ab_json_arena_doc_bytes(a), (double)ab_json_arena_doc_bytes(a) / (double)i);
    ab_json_arena_set_limits(a, &lim);
    assert_null(ab_json_parse_arena(a, text, i, &err));
    assert_non_null(strstr(err.message, "needs more than 1048576 bytes of memory"));
    lim.max_bytes = 0;
    lim.max_values = 10;
    ab_json_arena_set_limits(a, &lim);
    assert_null(ab_json_parse_arena(a, text, i, &err));
    assert_non_null(strstr(err.message, "more than 10 values"));
    ab_json_arena_free(a);
    free(text);
}

/* Salvage: the tree comes back with markers, the first problem is named. */
static void test_salvage(void **state)
{
    static const char text[] =
        "{\"stream\":\"s\",\"data\":{\"a\":\"\\u0000\",\"b\":1e999,\"c\":1,\"c\":2,\"ok\":3}}";
    struct ab_json_arena *a = ab_json_arena_new(NULL);
    struct ab_error content;
    struct ab_error err = {0};
    yajl_val v;
    yajl_val data;

    (void)state;
    v = ab_json_parse_ex(a, text, strlen(text), true, &content, &err);
    assert_non_null(v);
    assert_int_equal(content.code, AB_ERR_PROTOCOL);
    assert_string_equal(content.message, "escaped NUL (\\u0000) at byte 27 ($.data.a)");
    assert_string_equal(content.internal, "$.data.a");
    data = ab_json_get(v, "data");
    assert_true(ab_json_is_invalid(ab_json_get(data, "a")));
    assert_true(ab_json_is_invalid(ab_json_get(data, "b")));
    assert_true(ab_json_is_invalid(ab_json_get(data, "c")));
    assert_int_equal(ab_json_get_int(data, "ok", 0), 3);
    assert_string_equal(ab_json_get_str(v, "stream", ""), "s");
    ab_json_arena_free(a);
}

/* Every number's double and int64 are strtod's and strtoll's, bit for bit,
 * whichever way the parser took (fast or library). */
static void check_number(struct ab_json_arena *a, const char *text)
{
    struct ab_error err;
    yajl_val v;
    double d;
    long long i;
    char *end;

    ab_error_init(&err);
    ab_json_arena_reset(a);
    v = ab_json_parse_arena(a, text, strlen(text), &err);
    if (!v) {
        fail_msg("%s: %s", text, err.message);
    }
    assert_int_equal(v->type, yajl_t_number);
    assert_string_equal(v->u.number.r, text);
    d = strtod(text, &end);
    if (memcmp(&d, &v->u.number.d, sizeof(d)) != 0) {
        fail_msg("%s: %.17g, strtod %.17g", text, v->u.number.d, d);
    }
    assert_true(v->u.number.flags & YAJL_NUMBER_DOUBLE_VALID);
    if (!strpbrk(text, ".eE")) {
        errno = 0;
        i = strtoll(text, &end, 10);
        assert_int_equal(errno == 0, (v->u.number.flags & YAJL_NUMBER_INT_VALID) != 0);
        if (errno == 0) {
            assert_true(v->u.number.i == i);
        }
    } else {
        assert_false(v->u.number.flags & YAJL_NUMBER_INT_VALID);
    }
}

static void test_arena_numbers_as_strtod(void **state)
{
    static const char *const fixed[] = {"0",
                                        "-0",
                                        "-0.0",
                                        "0.1",
                                        "0.3",
                                        "664.87",
                                        "1.50",
                                        "-2.50e-7",
                                        "1E+300",
                                        "1e22",
                                        "1e23",
                                        "1e-22",
                                        "1e-23",
                                        "123456789012345",
                                        "1234567890123456",
                                        "9007199254740993",
                                        "999999999999999999",
                                        "-999999999999999999",
                                        "9223372036854775807",
                                        "-9223372036854775808",
                                        "9223372036854775808",
                                        "123456789012345678901234567890",
                                        "0.000000000000000000001",
                                        "4.35",
                                        "1.7976931348623157e308",
                                        "5e-324",
                                        "2.2250738585072014e-308",
                                        "123456.789012345",
                                        "0.1e1",
                                        "100e-2",
                                        "12345678901234.5e-10",
                                        "1e0",
                                        "7e-0"};
    struct ab_json_arena *a;
    struct ab_error err;
    char text[64];
    size_t k;
    unsigned long long x = 88172645463325252ull;
    int digits;

    (void)state;
    ab_error_init(&err);
    a = ab_json_arena_new(&err);
    assert_non_null(a);
    for (k = 0; k < sizeof(fixed) / sizeof(fixed[0]); k++) {
        check_number(a, fixed[k]);
    }
    for (k = 0; k < 200000; k++) {
        unsigned long long mant;
        int frac;
        int e;

        x ^= x << 13; /* xorshift: the same numbers every run */
        x ^= x >> 7;
        x ^= x << 17;
        digits = 1 + (int)(x % 18);
        mant = (x >> 8) % 1000000000000000000ull;
        frac = (int)((x >> 40) % (unsigned)(digits + 1));
        e = (int)((x >> 48) % 61) - 30;
        switch ((x >> 56) % 3) {
        case 0: /* an integer */
            (void)snprintf(text, sizeof(text), "%s%llu", (x & 1) ? "-" : "",
                           mant % 1000000000000000000ull);
            break;
        case 1: /* a decimal of 1 to 18 fraction digits */
            (void)snprintf(text, sizeof(text), "%s%llu.%0*llu", (x & 1) ? "-" : "",
                           mant % 1000000ull, frac + 1, (x >> 3) % 1000000000000000000ull);
            break;
        default: /* an exponent */
            (void)snprintf(text, sizeof(text), "%s%llu.%llue%d", (x & 1) ? "-" : "", mant % 1000ull,
                           (mant / 1000ull) % 1000000000000ull, e);
            break;
        }
        check_number(a, text);
    }
    ab_json_arena_free(a);
}

/* Spans: where the root, record and record.data lie, and whether they
 * hold whitespace outside strings. */
static void test_arena_spans(void **state)
{
    static const char line[] =
        " {\"type\":\"RECORD\",\"record\":{\"stream\":\"s\",\"data\":"
        "{\"k\":[1, 2],\"s\":\"a b\",\"o\":{\"x\":{}}},\"meta\":{\"c\":[]}}} ";
    struct ab_json_arena *a;
    struct ab_error err;
    yajl_val root;
    yajl_val rec;
    yajl_val data;
    size_t off;
    size_t len;
    bool compact;

    (void)state;
    ab_error_init(&err);
    a = ab_json_arena_new(&err);
    assert_non_null(a);
    root = ab_json_parse_arena(a, line, strlen(line), &err);
    assert_non_null(root);
    rec = ab_json_get(root, "record");
    data = ab_json_get(rec, "data");
    assert_true(ab_json_arena_span(a, root, &off, &len, &compact));
    assert_int_equal(off, 1);
    assert_int_equal(len, strlen(line) - 2);
    assert_false(compact);
    assert_true(ab_json_arena_span(a, data, &off, &len, &compact));
    assert_memory_equal(line + off, "{\"k\":[1, 2],\"s\":\"a b\",\"o\":{\"x\":{}}}", len);
    assert_false(compact); /* "[1, 2]" */
    assert_true(ab_json_arena_span(a, rec, &off, &len, &compact));
    assert_int_equal(line[off], '{');
    assert_int_equal(line[off + len - 1], '}');
    /* deeper than three levels, scalars and shared empty nodes: unknown */
    assert_false(ab_json_arena_span(a, ab_json_get(data, "k"), &off, &len, &compact));
    assert_false(ab_json_arena_span(a, ab_json_get(data, "s"), &off, &len, &compact));
    assert_false(
        ab_json_arena_span(a, ab_json_get(ab_json_get(rec, "meta"), "c"), &off, &len, &compact));
    /* a whitespace-free data */
    ab_json_arena_reset(a);
    assert_false(ab_json_arena_span(a, data, &off, &len, &compact));
    {
        static const char compact_line[] = "{\"record\":{\"data\":{\"s\":\"a  b\",\"n\":[1,2]}}}";

        root = ab_json_parse_arena(a, compact_line, strlen(compact_line), &err);
    }
    assert_non_null(root);
    assert_true(ab_json_arena_span(a, ab_json_get(ab_json_get(root, "record"), "data"), &off, &len,
                                   &compact));
    assert_true(compact);
    assert_int_equal(len, strlen("{\"s\":\"a  b\",\"n\":[1,2]}"));
    ab_json_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_matches_yajl_tree),
        cmocka_unit_test(test_arena_string_stops),
        cmocka_unit_test(test_arena_number_flags),
        cmocka_unit_test(test_arena_rejects_bad_json),
        cmocka_unit_test(test_arena_deep_nesting_and_large_values),
        cmocka_unit_test(test_utf8_edges),
        cmocka_unit_test(test_million_deep),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_salvage),
        cmocka_unit_test(test_arena_numbers_as_strtod),
        cmocka_unit_test(test_arena_spans),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
