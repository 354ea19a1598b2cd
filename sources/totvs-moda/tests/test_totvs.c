/* test_totvs.c - source-totvs-moda: spec, catalog, search bodies, errors, keys, state. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/json.h"

#include "ab_spec_test.h"
#include "totvs.h"

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
    yajl_val spec = spec_test_build(tm_spec_json);
    yajl_val cfg;

    (void)state;
    assert_int_equal((int)spec_test_default_num(spec, "page_size"), 100);
    assert_int_equal((int)spec_test_default_num(spec, "utc_offset_minutes"), -180);
    assert_non_null(ab_json_get(spec_test_prop(spec, "password"), "airbyte_secret"));
    assert_non_null(ab_json_get(spec_test_prop(spec, "client_secret"), "airbyte_secret"));
    cfg = spec_test_config(spec, "{\"api_url\":\"https://h:9443\",\"client_id\":\"id\","
                                 "\"client_secret\":\"secret-1234\",\"username\":\"u\","
                                 "\"password\":\"password-1\",\"branch_codes\":[1]}");
    assert_string_equal(ab_json_get_str(cfg, "start_date", ""), "2000-01-01");
    yajl_tree_free(cfg);
    yajl_tree_free(spec);
}

static void test_catalog(void **state)
{
    yajl_val cat = parse(tm_catalog_json());
    yajl_val streams = ab_json_get(cat, "streams");

    (void)state;
    assert_int_equal(streams->u.array.len, TM_NKINDS);
    for (int k = 0; k < TM_NKINDS; k++) {
        yajl_val s = streams->u.array.values[k];
        enum tm_kind got;

        assert_true(tm_kind_of(ab_json_get_str(s, "name", ""), &got));
        assert_int_equal(got, k);
        assert_string_equal(ab_json_str(ab_json_get(s, "default_cursor_field")->u.array.values[0]),
                            "maxChangeFilterDate");
        assert_non_null(ab_json_get(ab_json_get(ab_json_get(s, "json_schema"), "properties"),
                                    "maxChangeFilterDate"));
    }
    assert_false(tm_kind_of("invoices", &(enum tm_kind){0}));
    ab_json_free(cat);
}

static char *body_of(enum tm_kind k, int64_t start)
{
    struct tm_opts o = {"[1,2]", "[1,3]", "[1]", 1, -180};
    struct ab_buf out;
    struct ab_error err = {0};

    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    assert_int_equal(tm_search_body(k, &o, start, 1717248302, 3, 50, &out, &err), AB_OK);
    return out.data;
}

static void test_search_bodies(void **state)
{
    char *b;
    yajl_val v;

    (void)state;
    /* orders: the branches, the change window in Brazil time, order by change time */
    b = body_of(TM_SALES_ORDERS, 1717200000);
    v = parse(b);
    assert_string_equal(
        ab_json_str(ab_json_get(ab_json_get(ab_json_get(v, "filter"), "change"), "startDate")),
        "2024-05-31T21:00:00-03:00");
    assert_string_equal(
        ab_json_str(ab_json_get(ab_json_get(ab_json_get(v, "filter"), "change"), "endDate")),
        "2024-06-01T10:25:02-03:00");
    assert_int_equal(ab_json_get(ab_json_get(v, "filter"), "branchCodeList")->u.array.len, 2);
    assert_string_equal(ab_json_get_str(v, "order", ""),
                        "maxChangeFilterDate,branchCode,orderCode");
    assert_non_null(strstr(ab_json_get_str(v, "expand", ""), "items"));
    assert_int_equal(ab_json_get(v, "page")->u.number.i, 3);
    assert_int_equal(ab_json_get(v, "pageSize")->u.number.i, 50);
    ab_json_free(v);
    free(b);
    /* balances: one option entry per branch with the stock codes */
    b = body_of(TM_BALANCES, -1);
    v = parse(b);
    assert_null(ab_json_get(ab_json_get(v, "filter"), "change"));
    {
        yajl_val bal = ab_json_get(ab_json_get(v, "option"), "balances");

        assert_int_equal(bal->u.array.len, 2);
        assert_int_equal(ab_json_get(bal->u.array.values[1], "branchCode")->u.number.i, 2);
        assert_int_equal(ab_json_get(bal->u.array.values[1], "stockCodeList")->u.array.len, 2);
    }
    ab_json_free(v);
    free(b);
    /* products: prices of the first branch */
    b = body_of(TM_PRODUCTS, 0);
    v = parse(b);
    assert_int_equal(ab_json_get(ab_json_get(ab_json_get(v, "option"), "prices")->u.array.values[0],
                                 "branchCode")
                         ->u.number.i,
                     1);
    ab_json_free(v);
    free(b);
}

static void test_error_detail_and_keys(void **state)
{
    char out[128];
    yajl_val v = parse("{\"messages\":[{\"code\":\"BranchCodeListRequired\",\"message\":\"O filtro "
                       "e obrigatorio\",\"severity\":\"Error\"}]}");
    uint64_t a, b;

    (void)state;
    assert_string_equal(tm_error_detail(v, out, sizeof(out)),
                        "BranchCodeListRequired: O filtro e obrigatorio");
    ab_json_free(v);
    assert_string_equal(tm_error_detail(NULL, out, sizeof(out)), "");
    v = parse("[{\"branchCode\":1,\"orderCode\":12},{\"branchCode\":11,\"orderCode\":2},"
              "{\"branchCode\":1}]");
    assert_true(tm_key_hash(TM_SALES_ORDERS, v->u.array.values[0], &a));
    assert_true(tm_key_hash(TM_SALES_ORDERS, v->u.array.values[1], &b));
    assert_true(a != b);
    assert_false(tm_key_hash(TM_SALES_ORDERS, v->u.array.values[2], &a));
    ab_json_free(v);
}

static void test_state_round_trip(void **state)
{
    static const char *const ok[] = {
        "{}",
        "{\"cursor\":\"2024-06-01T13:25:02Z\"}",
        "{\"cursor\":\"2024-06-01T13:25:02Z\",\"page\":4}",
        "{\"resume\":{\"cursor\":\"2024-06-01T13:25:02Z\",\"page\":2}}",
    };
    static const char *const bad[] = {
        "[]",
        "{\"cursor\":\"yesterday\"}",
        "{\"cursor\":\"2024-06-01T13:25:02Z\",\"page\":0}",
        "{\"page\":3}",
        "{\"resume\":{\"page\":2}}",
    };
    struct tm_state st;
    struct ab_error err = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        yajl_val v = parse(ok[i]);
        struct ab_buf out;

        assert_int_equal(tm_state_parse(v, &st, &err), AB_OK);
        ab_buf_init(&out, AB_BUF_UNBOUNDED);
        assert_int_equal(tm_state_write(&st, &out, &err), AB_OK);
        assert_string_equal(out.data, ok[i]);
        ab_buf_release(&out);
        ab_json_free(v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        yajl_val v = parse(bad[i]);

        assert_int_equal(tm_state_parse(v, &st, &err), AB_ERR_CONFIG);
        ab_json_free(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_builds_and_defaults),
        cmocka_unit_test(test_catalog),
        cmocka_unit_test(test_search_bodies),
        cmocka_unit_test(test_error_detail_and_keys),
        cmocka_unit_test(test_state_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
