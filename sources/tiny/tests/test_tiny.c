/* test_tiny.c - source-tiny: spec, catalog, list answers, errors, state. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/json.h"

#include "ab_spec_test.h"
#include "tiny.h"

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
    yajl_val spec = spec_test_build(tn_spec_json);
    yajl_val cfg;

    (void)state;
    /* the smallest plan's 30 reads per minute; pages of at most 100 */
    assert_true(spec_test_default_num(spec, "requests_per_second") <= 0.5);
    assert_int_equal((int)spec_test_default_num(spec, "page_size"), 100);
    assert_non_null(ab_json_get(spec_test_prop(spec, "refresh_token"), "airbyte_secret"));
    assert_non_null(ab_json_get(spec_test_prop(spec, "client_secret"), "airbyte_secret"));
    cfg = spec_test_config(spec, "{\"client_id\":\"id\",\"client_secret\":\"secret-1234\","
                                 "\"refresh_token\":\"refresh-1234\"}");
    assert_string_equal(ab_json_get_str(cfg, "api_url", ""),
                        "https://api.tiny.com.br/public-api/v3");
    assert_string_equal(ab_json_get_str(cfg, "token_url", ""),
                        "https://accounts.tiny.com.br/realms/tiny/protocol/openid-connect/token");
    yajl_tree_free(cfg);
    yajl_tree_free(spec);
}

static void test_catalog(void **state)
{
    yajl_val cat = parse(tn_catalog_json());
    yajl_val streams = ab_json_get(cat, "streams");

    (void)state;
    assert_int_equal(streams->u.array.len, TN_NKINDS);
    for (int k = 0; k < TN_NKINDS; k++) {
        yajl_val s = streams->u.array.values[k];
        enum tn_kind got;

        assert_string_equal(ab_json_get_str(s, "name", ""), tn_stream_name((enum tn_kind)k));
        assert_true(tn_kind_of(tn_stream_name((enum tn_kind)k), &got));
        assert_int_equal(got, k);
        assert_non_null(ab_json_get(s, "source_defined_primary_key"));
        assert_string_equal(ab_json_get_str(ab_json_get(s, "json_schema"), "type", ""), "object");
    }
    assert_false(tn_kind_of("notas", &(enum tn_kind){0}));
    assert_string_equal(tn_filter_name(TN_PRODUTOS), "dataAlteracao");
    assert_string_equal(tn_filter_name(TN_PEDIDOS), "dataAtualizacao");
    assert_string_equal(tn_list_path(TN_ESTOQUE), "/produtos");
    ab_json_free(cat);
}

static void test_list_parse(void **state)
{
    yajl_val v = parse("{\"itens\":[{\"id\":11,\"tipo\":\"V\",\"tipoVariacao\":\"P\"},"
                       "{\"id\":12,\"tipoVariacao\":\"V\"},{\"id\":13,\"tipo\":\"S\"}],"
                       "\"paginacao\":{\"limit\":3,\"offset\":0,\"total\":7}}");
    struct ab_error err = {0};
    int64_t ids[3], total;
    bool parent[3];
    size_t n, items;

    (void)state;
    assert_int_equal(tn_list_parse(v, ids, parent, 3, &n, &items, &total, &err), AB_OK);
    assert_int_equal(n, 2);
    assert_int_equal(items, 3);
    assert_int_equal(total, 7);
    assert_int_equal(ids[0], 11);
    assert_true(parent[0]);
    assert_int_equal(ids[1], 13);
    assert_false(parent[1]);
    /* without ids: the count only */
    assert_int_equal(tn_list_parse(v, NULL, NULL, 3, &n, &items, &total, &err), AB_OK);
    assert_int_equal(n, 0);
    assert_int_equal(items, 3);
    assert_int_equal(tn_list_parse(v, ids, parent, 2, &n, &items, &total, &err), AB_ERR_PROTOCOL);
    assert_non_null(strstr(err.message, "more than"));
    ab_json_free(v);
    v = parse("{\"itens\":[{\"id\":\"11\"}]}");
    assert_int_equal(tn_list_parse(v, ids, parent, 3, &n, &items, &total, &err), AB_ERR_PROTOCOL);
    assert_non_null(strstr(err.message, "record 0"));
    ab_json_free(v);
    v = parse("{\"mensagem\":\"x\"}");
    assert_int_equal(tn_list_parse(v, ids, parent, 3, &n, &items, &total, &err), AB_ERR_PROTOCOL);
    ab_json_free(v);
    /* an empty search is an empty list (no error in v3), total absent */
    v = parse("{\"itens\":[]}");
    assert_int_equal(tn_list_parse(v, ids, parent, 3, &n, &items, &total, &err), AB_OK);
    assert_int_equal(items, 0);
    assert_int_equal(total, -1);
    ab_json_free(v);
}

static void test_variation_ids(void **state)
{
    yajl_val v = parse("{\"id\":1,\"variacoes\":[{\"id\":2},{\"id\":3}]}");
    struct ab_error err = {0};
    int64_t ids[3] = {9, 0, 0};
    size_t n = 1;

    (void)state;
    assert_int_equal(tn_variation_ids(v, ids, 3, &n, &err), AB_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[2], 3);
    n = 2;
    assert_int_equal(tn_variation_ids(v, ids, 3, &n, &err), AB_ERR_PROTOCOL);
    ab_json_free(v);
    v = parse("{\"id\":1,\"variacoes\":null}");
    n = 0;
    assert_int_equal(tn_variation_ids(v, ids, 3, &n, &err), AB_OK);
    assert_int_equal(n, 0);
    ab_json_free(v);
    v = parse("{\"variacoes\":[{\"sku\":\"x\"}]}");
    assert_int_equal(tn_variation_ids(v, ids, 3, &n, &err), AB_ERR_PROTOCOL);
    ab_json_free(v);
}

static void test_variation_record(void **state)
{
    yajl_val p = parse("{\"id\":1,\"sku\":\"CAM\",\"descricao\":\"Camiseta \\\"A\\\"\","
                       "\"dataAlteracao\":\"2024-05-10 14:22:01\",\"tipo\":\"V\",\"variacoes\":["
                       "{\"id\":2,\"sku\":\"CAM-GG\",\"grade\":[{\"chave\":\"Tamanho\",\"valor\":"
                       "\"G\"},{\"chave\":\"Cor\",\"valor\":\"Azul\"},{\"chave\":\"Tamanho\","
                       "\"valor\":\"GG\"}]},{\"id\":3},7]}");
    yajl_val vs = ab_json_get(p, "variacoes");
    struct ab_error err = {0};
    struct ab_buf b;

    (void)state;
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    assert_int_equal(tn_variation_record(p, vs->u.array.values[0], &b, &err), AB_OK);
    assert_string_equal(b.data,
                        "{\"id\":2,\"sku\":\"CAM-GG\",\"grade\":[{\"chave\":\"Tamanho\","
                        "\"valor\":\"G\"},{\"chave\":\"Cor\",\"valor\":\"Azul\"},{\"chave\":"
                        "\"Tamanho\",\"valor\":\"GG\"}],\"produtoPai\":{\"id\":1,\"sku\":"
                        "\"CAM\",\"descricao\":\"Camiseta \\\"A\\\"\",\"dataAlteracao\":"
                        "\"2024-05-10 14:22:01\"},\"_ab_grade\":{\"Cor\":\"Azul\","
                        "\"Tamanho\":\"GG\"}}");
    ab_buf_reset(&b);
    assert_int_equal(tn_variation_record(p, vs->u.array.values[1], &b, &err), AB_OK);
    yajl_val r = parse(b.data);
    assert_int_equal(ab_json_get(r, "_ab_grade")->u.object.len, 0);
    ab_json_free(r);
    assert_int_equal(tn_variation_record(p, vs->u.array.values[2], &b, &err), AB_ERR_PROTOCOL);
    ab_buf_release(&b);
    ab_json_free(p);
}

static void test_error_detail(void **state)
{
    yajl_val v = parse("{\"mensagem\":\"Ocorreram erros de validação\",\"detalhes\":[{\"campo\":"
                       "\"dataAlteracao\",\"mensagem\":\"formato inválido\"},{\"campo\":\"limit\","
                       "\"mensagem\":\"x\"}]}");
    char out[256];

    (void)state;
    assert_string_equal(tn_error_detail(v, out, sizeof(out)),
                        "Ocorreram erros de validação (dataAlteracao: formato inválido; limit: x)");
    ab_json_free(v);
    v = parse("{\"mensagem\":\"m\"}");
    assert_string_equal(tn_error_detail(v, out, sizeof(out)), "m");
    ab_json_free(v);
    assert_string_equal(tn_error_detail(NULL, out, sizeof(out)), "");
}

static void round_trip(const char *text)
{
    struct ab_error err = {0};
    struct ab_resume_state st;
    struct ab_buf b;
    yajl_val v = parse(text);

    assert_int_equal(tn_state_parse(v, &st, &err), AB_OK);
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    assert_int_equal(tn_state_write(&st, &b, &err), AB_OK);
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
    round_trip("{\"cursor\":\"2026-12-01T10:00:00Z\",\"resume\":{\"since\":"
               "\"2026-11-30T09:00:00Z\",\"end\":\"2026-12-02T10:00:00Z\",\"offset\":700}}");
    round_trip("{\"resume\":{\"since\":null,\"end\":\"2026-12-01T10:00:00Z\",\"offset\":200}}");
    round_trip("{\"resume\":{\"offset\":300}}");
    assert_int_equal(tn_state_parse(NULL, &st, &err), AB_OK);
    assert_int_equal(st.cursor, -1);
    const char *bad[] = {"[]",
                         "{\"cursor\":5}",
                         "{\"cursor\":\"yesterday\"}",
                         "{\"resume\":{\"offset\":-1}}",
                         "{\"resume\":true}",
                         "{\"resume\":{\"offset\":2,\"since\":\"2026-12-01T10:00:00Z\"}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = parse(bad[i]);
        assert_int_equal(tn_state_parse(v, &st, &err), AB_ERR_CONFIG);
        ab_json_free(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_builds_and_defaults),
        cmocka_unit_test(test_catalog),
        cmocka_unit_test(test_list_parse),
        cmocka_unit_test(test_variation_ids),
        cmocka_unit_test(test_variation_record),
        cmocka_unit_test(test_error_detail),
        cmocka_unit_test(test_state),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
