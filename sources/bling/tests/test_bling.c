/* test_bling.c - source-bling: spec, catalog, list answers, errors, state. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/json.h"

#include "ab_spec_test.h"
#include "bling.h"

static yajl_val parse(const char *text)
{
    struct ab_error err = {0};
    yajl_val v = ab_json_parse(text, strlen(text), &err);

    if (!v) {
        fail_msg("test JSON: %s", err.message);
    }
    return v;
}

static void test_spec_builds_and_defaults(void **state)
{
    yajl_val spec = spec_test_build(bl_spec_json);
    yajl_val cfg;

    (void)state;
    /* Bling's limit: 3 requests/s per account; pages of at most 100 */
    assert_true(spec_test_default_num(spec, "requests_per_second") <= 3);
    assert_int_equal((int)spec_test_default_num(spec, "page_size"), 100);
    assert_non_null(ab_json_get(spec_test_prop(spec, "refresh_token"), "airbyte_secret"));
    assert_non_null(ab_json_get(spec_test_prop(spec, "client_secret"), "airbyte_secret"));
    cfg = spec_test_config(spec, "{\"client_id\":\"id\",\"client_secret\":\"secret-1234\","
                                 "\"refresh_token\":\"refresh-1234\"}");
    assert_string_equal(ab_json_get_str(cfg, "api_url", ""), "https://api.bling.com.br/Api/v3");
    yajl_tree_free(cfg);
    yajl_tree_free(spec);
}

static void test_catalog(void **state)
{
    yajl_val cat = parse(bl_catalog_json());
    yajl_val streams = ab_json_get(cat, "streams");

    (void)state;
    assert_int_equal(streams->u.array.len, BL_NKINDS);
    for (int k = 0; k < BL_NKINDS; k++) {
        yajl_val s = streams->u.array.values[k];
        enum bl_kind got;

        assert_string_equal(ab_json_get_str(s, "name", ""), bl_stream_name((enum bl_kind)k));
        assert_true(bl_kind_of(bl_stream_name((enum bl_kind)k), &got));
        assert_int_equal(got, k);
        assert_non_null(ab_json_get(s, "source_defined_primary_key"));
        assert_string_equal(ab_json_get_str(ab_json_get(s, "json_schema"), "type", ""), "object");
    }
    assert_false(bl_kind_of("nfe", &(enum bl_kind){0}));
    ab_json_free(cat);
}

static void test_list_ids(void **state)
{
    yajl_val v = parse("{\"data\":[{\"id\":11,\"idProdutoPai\":0},{\"id\":12,\"idProdutoPai\":11},"
                       "{\"id\":13}]}");
    struct ab_error err = {0};
    int64_t ids[3];
    size_t n, items;

    (void)state;
    assert_int_equal(bl_list_ids(v, true, ids, 3, &n, &items, &err), AB_OK);
    assert_int_equal(n, 2);
    assert_int_equal(items, 3);
    assert_int_equal(ids[0], 11);
    assert_int_equal(ids[1], 13);
    assert_int_equal(bl_list_ids(v, false, ids, 3, &n, &items, &err), AB_OK);
    assert_int_equal(n, 3);
    assert_int_equal(bl_list_ids(v, false, ids, 2, &n, &items, &err), AB_ERR_PROTOCOL);
    assert_non_null(strstr(err.message, "more than"));
    ab_json_free(v);
    v = parse("{\"data\":[{\"id\":\"11\"}]}");
    assert_int_equal(bl_list_ids(v, false, ids, 3, &n, &items, &err), AB_ERR_PROTOCOL);
    assert_non_null(strstr(err.message, "record 0"));
    ab_json_free(v);
    v = parse("{\"error\":{}}");
    assert_int_equal(bl_list_ids(v, false, ids, 3, &n, &items, &err), AB_ERR_PROTOCOL);
    ab_json_free(v);
    v = parse("{\"data\":[]}");
    assert_int_equal(bl_list_ids(v, false, ids, 3, &n, &items, &err), AB_OK);
    assert_int_equal(items, 0);
    ab_json_free(v);
}

static void test_error_detail(void **state)
{
    yajl_val v = parse("{\"error\":{\"type\":\"TOO_MANY_REQUESTS\",\"message\":\"m\","
                       "\"description\":\"O limite foi atingido\"}}");
    char out[128];

    (void)state;
    assert_string_equal(bl_error_detail(v, out, sizeof(out)),
                        "TOO_MANY_REQUESTS: O limite foi atingido");
    ab_json_free(v);
    v = parse("{\"x\":1}");
    assert_string_equal(bl_error_detail(v, out, sizeof(out)), "");
    ab_json_free(v);
    assert_string_equal(bl_error_detail(NULL, out, sizeof(out)), "");
}

static void round_trip(const char *text)
{
    struct ab_error err = {0};
    struct ab_resume_state st;
    struct ab_buf b;
    yajl_val v = parse(text);

    assert_int_equal(bl_state_parse(v, &st, &err), AB_OK);
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    assert_int_equal(bl_state_write(&st, &b, &err), AB_OK);
    assert_string_equal(b.data, text);
    ab_buf_release(&b);
    ab_json_free(v);
}

static void test_state(void **state)
{
    struct ab_error err = {0};
    struct ab_resume_state st;
    yajl_val v;

    (void)state;
    round_trip("{}");
    round_trip("{\"cursor\":\"2026-12-01T10:00:00Z\"}");
    round_trip("{\"cursor\":\"2026-12-01T10:00:00Z\",\"resume\":{\"start\":"
               "\"2026-11-01T10:00:00Z\",\"end\":\"2026-12-01T10:00:00Z\",\"page\":7}}");
    round_trip("{\"resume\":{\"start\":null,\"end\":\"2026-12-01T10:00:00Z\",\"page\":2}}");
    round_trip("{\"resume\":{\"page\":3}}");
    assert_int_equal(bl_state_parse(NULL, &st, &err), AB_OK);
    assert_int_equal(st.cursor, -1);
    const char *bad[] = {"[]", "{\"cursor\":5}", "{\"cursor\":\"yesterday\"}",
                         "{\"resume\":{\"page\":0}}", "{\"resume\":true}",
                         "{\"resume\":{\"page\":2,\"start\":\"2026-12-01T10:00:00Z\"}}",
                         /* a window that ends before its start */
                         ("{\"resume\":{\"page\":2,\"start\":\"2026-12-02T10:00:00Z\",\"end\":"
                          "\"2026-12-01T10:00:00Z\"}}")};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = parse(bad[i]);
        assert_int_equal(bl_state_parse(v, &st, &err), AB_ERR_CONFIG);
        ab_json_free(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_builds_and_defaults),
        cmocka_unit_test(test_catalog),
        cmocka_unit_test(test_list_ids),
        cmocka_unit_test(test_error_detail),
        cmocka_unit_test(test_state),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
