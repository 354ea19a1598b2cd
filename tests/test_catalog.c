/* test_catalog.c - configured catalog parsing, lookups and field paths. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/catalog.h"
#include "ab/json.h"

#include "ab_test.h"

#define DATA AB_TEST_DATA_DIR "/catalog/"

static enum ab_status parse_text(struct ab_catalog *cat, const char *text, struct ab_error *err)
{
    enum ab_status rc;
    yajl_val root = ab_json_parse(text, strlen(text), err);

    assert_non_null(root);
    rc = ab_catalog_parse(cat, root, err);
    yajl_tree_free(root);
    return rc;
}

static void assert_path(const struct ab_path *p, const char *dotted)
{
    char buf[256];

    assert_string_equal(ab_path_str(p, buf, sizeof(buf)), dotted);
    assert_null(p->n ? p->keys[p->n] : NULL);
}

static void test_load_valid_multi_stream(void **state)
{
    struct ab_catalog cat;
    struct ab_error err;
    const struct ab_stream *s;

    (void)state;
    ab_error_init(&err);
    assert_int_equal(ab_catalog_load(&cat, DATA "valid.json", &err), AB_OK);
    assert_int_equal(cat.n, 6);

    s = &cat.streams[0];
    assert_string_equal(s->name, "users");
    assert_string_equal(s->ns, "public");
    assert_int_equal(s->sync_mode, AB_SYNC_INCREMENTAL);
    assert_int_equal(s->dest_mode, AB_DEST_APPEND_DEDUP);
    assert_string_equal(s->dest_mode_name, "append_dedup");
    assert_null(s->destination_object);
    assert_int_equal(s->npk, 2);
    assert_path(&s->primary_key[0], "id");
    assert_path(&s->primary_key[1], "customer.id");
    assert_path(&s->cursor, "meta.updated_at"); /* configured beats default */
    assert_int_equal(s->generation_id, 4);
    assert_int_equal(s->minimum_generation_id, 0);
    assert_int_equal(s->sync_id, 8123);

    /* same name, other namespace; keys fall back to the source's */
    s = &cat.streams[1];
    assert_string_equal(s->name, "users");
    assert_string_equal(s->ns, "archive");
    assert_int_equal(s->sync_mode, AB_SYNC_FULL_REFRESH);
    assert_int_equal(s->dest_mode, AB_DEST_OVERWRITE);
    assert_int_equal(s->npk, 1);
    assert_path(&s->primary_key[0], "uid");
    assert_path(&s->cursor, "changed");
    assert_int_equal(s->generation_id, 7);
    assert_int_equal(s->minimum_generation_id, 7);

    /* "" namespace is no namespace; null and absent ids are -1 */
    s = &cat.streams[2];
    assert_string_equal(s->name, "events");
    assert_null(s->ns);
    assert_int_equal(s->dest_mode, AB_DEST_APPEND);
    assert_int_equal(s->npk, 0);
    assert_int_equal(s->cursor.n, 0);
    assert_int_equal(s->generation_id, -1);
    assert_int_equal(s->minimum_generation_id, -1);
    assert_int_equal(s->sync_id, -1);

    /* data activation: object name, explicit key beats the source's */
    s = &cat.streams[3];
    assert_null(s->ns);
    assert_int_equal(s->dest_mode, AB_DEST_UPDATE);
    assert_string_equal(s->destination_object, "Contact");
    assert_int_equal(s->npk, 1);
    assert_path(&s->primary_key[0], "Email");
    assert_int_equal(s->cursor.n, 0);
    assert_int_equal(s->sync_id, 42);

    /* an explicit empty key does not fall back; absent sync_mode is full_refresh */
    s = &cat.streams[4];
    assert_int_equal(s->dest_mode, AB_DEST_SOFT_DELETE);
    assert_int_equal(s->sync_mode, AB_SYNC_FULL_REFRESH);
    assert_int_equal(s->npk, 0);

    /* a null key falls back */
    s = &cat.streams[5];
    assert_int_equal(s->dest_mode, AB_DEST_OVERWRITE_DEDUP);
    assert_int_equal(s->npk, 2);
    assert_path(&s->primary_key[0], "k1");
    assert_path(&s->primary_key[1], "k2");

    assert_int_equal(ab_catalog_find(&cat, "users", "public"), 0);
    assert_int_equal(ab_catalog_find(&cat, "users", "archive"), 1);
    assert_int_equal(ab_catalog_find(&cat, "users", NULL), -1);
    assert_int_equal(ab_catalog_find(&cat, "events", NULL), 2);
    assert_int_equal(ab_catalog_find(&cat, "events", ""), 2);
    assert_int_equal(ab_catalog_find(&cat, "events", "public"), -1);
    assert_int_equal(ab_catalog_find(&cat, "contacts_model", ""), 3);
    assert_int_equal(ab_catalog_find(&cat, "nope", NULL), -1);
    assert_int_equal(ab_catalog_find(&cat, NULL, NULL), -1);

    ab_catalog_release(&cat);
    assert_null(cat.streams);
    assert_int_equal(cat.n, 0);
    ab_catalog_release(&cat); /* twice is safe */
}

static void test_load_errors_name_the_stream(void **state)
{
    static const struct {
        const char *file;
        const char *message;
    } cases[] = {
        {"unknown_mode.json", "catalog: streams[2] ('orders'): unknown destination_sync_mode "
                              "'merge'"},
        {"duplicate.json", "catalog: streams[2] ('orders'): duplicate of streams[1]"},
        {"missing_name.json", "catalog: streams[1]: missing stream.name"},
        {"no_streams.json", "catalog: 'streams' must be an array"},
        {"does_not_exist.json", "cannot read catalog '" DATA "does_not_exist.json': No such file "
                                "or directory"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ab_catalog cat;
        struct ab_error err;
        char path[512];

        ab_error_init(&err);
        (void)snprintf(path, sizeof(path), "%s%s", DATA, cases[i].file);
        assert_int_equal(ab_catalog_load(&cat, path, &err), AB_ERR_CONFIG);
        assert_int_equal(err.code, AB_ERR_CONFIG);
        assert_string_equal(err.message, cases[i].message);
        assert_null(cat.streams);
        assert_int_equal(cat.n, 0);
    }
}

static void test_load_invalid_json_is_config_error(void **state)
{
    struct ab_catalog cat;
    struct ab_error err;
    const char *prefix = "cannot read catalog '" DATA "truncated.json': invalid JSON: ";

    (void)state;
    ab_error_init(&err);
    assert_int_equal(ab_catalog_load(&cat, DATA "truncated.json", &err), AB_ERR_CONFIG);
    assert_int_equal(strncmp(err.message, prefix, strlen(prefix)), 0);
    assert_null(strchr(err.message, '\n'));
    assert_int_equal(cat.n, 0);
}

static void test_parse_error_messages(void **state)
{
    static const struct {
        const char *json;
        const char *message;
    } cases[] = {
        {"[]", "catalog: must be a JSON object"},
        {"{\"streams\":{}}", "catalog: 'streams' must be an array"},
        {"{\"streams\":[1]}", "catalog: streams[0]: must be an object"},
        {"{\"streams\":[{\"destination_sync_mode\":\"append\"}]}",
         "catalog: streams[0]: missing 'stream' object"},
        {"{\"streams\":[{\"stream\":{\"name\":\"\"}}]}",
         "catalog: streams[0]: missing stream.name"},
        {"{\"streams\":[{\"stream\":{\"name\":7}}]}", "catalog: streams[0]: missing stream.name"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\",\"namespace\":3},"
         "\"destination_sync_mode\":\"append\"}]}",
         "catalog: streams[0] ('a'): stream.namespace must be a string"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\"},\"sync_mode\":\"sometimes\","
         "\"destination_sync_mode\":\"append\"}]}",
         "catalog: streams[0] ('a'): unknown sync_mode 'sometimes'"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\"},\"sync_mode\":1,"
         "\"destination_sync_mode\":\"append\"}]}",
         "catalog: streams[0] ('a'): unknown sync_mode '(not a string)'"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\"}}]}",
         "catalog: streams[0] ('a'): missing destination_sync_mode"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\"},\"destination_sync_mode\":null}]}",
         "catalog: streams[0] ('a'): missing destination_sync_mode"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\"},\"destination_sync_mode\":2}]}",
         "catalog: streams[0] ('a'): destination_sync_mode must be a string"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\"},\"destination_sync_mode\":\"Append\"}]}",
         "catalog: streams[0] ('a'): unknown destination_sync_mode 'Append'"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\"},\"destination_sync_mode\":\"append\","
         "\"destination_object_name\":[]}]}",
         "catalog: streams[0] ('a'): destination_object_name must be a string"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\"},\"destination_sync_mode\":\"append\","
         "\"primary_key\":\"id\"}]}",
         "catalog: streams[0] ('a'): primary_key must be an array of field paths"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\"},\"destination_sync_mode\":\"append\","
         "\"primary_key\":[[]]}]}",
         "catalog: streams[0] ('a'): primary_key[0] must be a non-empty array of strings"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\"},\"destination_sync_mode\":\"append\","
         "\"primary_key\":[\"id\"]}]}",
         "catalog: streams[0] ('a'): primary_key[0] must be a non-empty array of strings"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\"},\"destination_sync_mode\":\"append\","
         "\"primary_key\":[[\"id\"],[\"x\",1]]}]}",
         "catalog: streams[0] ('a'): primary_key[1][1] must be a string"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\",\"source_defined_primary_key\":[[]]},"
         "\"destination_sync_mode\":\"append\"}]}",
         "catalog: streams[0] ('a'): stream.source_defined_primary_key[0] must be a non-empty "
         "array of strings"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\"},\"destination_sync_mode\":\"append\","
         "\"cursor_field\":\"ts\"}]}",
         "catalog: streams[0] ('a'): cursor_field must be an array of strings"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\",\"default_cursor_field\":[1]},"
         "\"destination_sync_mode\":\"append\"}]}",
         "catalog: streams[0] ('a'): stream.default_cursor_field[0] must be a string"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\"},\"destination_sync_mode\":\"append\","
         "\"generation_id\":\"4\"}]}",
         "catalog: streams[0] ('a'): generation_id must be an integer"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\"},\"destination_sync_mode\":\"append\","
         "\"minimum_generation_id\":1.0}]}",
         "catalog: streams[0] ('a'): minimum_generation_id must be an integer"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\"},\"destination_sync_mode\":\"append\","
         "\"sync_id\":1e3}]}",
         "catalog: streams[0] ('a'): sync_id must be an integer"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\"},\"destination_sync_mode\":\"append\","
         "\"sync_id\":99999999999999999999}]}",
         "catalog: streams[0] ('a'): sync_id must be an integer"},
        {"{\"streams\":[{\"stream\":{\"name\":\"a\"},\"destination_sync_mode\":\"append\"},"
         "{\"stream\":{\"name\":\"b\"},\"destination_sync_mode\":\"append\"},"
         "{\"stream\":{\"name\":\"a\",\"namespace\":null},\"destination_sync_mode\":\"update\"}]}",
         "catalog: streams[2] ('a'): duplicate of streams[0]"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ab_catalog cat;
        struct ab_error err;

        ab_error_init(&err);
        assert_int_equal(parse_text(&cat, cases[i].json, &err), AB_ERR_CONFIG);
        if (strcmp(err.message, cases[i].message) != 0) {
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, err.message, cases[i].message);
        }
        assert_int_equal(cat.n, 0);
        assert_null(cat.streams);
    }
}

static void test_parse_empty_streams_ok(void **state)
{
    struct ab_catalog cat;
    struct ab_error err;

    (void)state;
    ab_error_init(&err);
    assert_int_equal(parse_text(&cat, "{\"streams\":[]}", &err), AB_OK);
    assert_int_equal(cat.n, 0);
    assert_int_equal(ab_catalog_find(&cat, "x", NULL), -1);
    ab_catalog_release(&cat);
}

static void test_parse_large_ids(void **state)
{
    struct ab_catalog cat;
    struct ab_error err;

    (void)state;
    ab_error_init(&err);
    assert_int_equal(parse_text(&cat,
                                "{\"streams\":[{\"stream\":{\"name\":\"a\"},"
                                "\"destination_sync_mode\":\"append\","
                                "\"generation_id\":9007199254740993,"
                                "\"minimum_generation_id\":-5,\"sync_id\":0}]}",
                                &err),
                     AB_OK);
    assert_int_equal(cat.streams[0].generation_id, 9007199254740993LL);
    assert_int_equal(cat.streams[0].minimum_generation_id, -5);
    assert_int_equal(cat.streams[0].sync_id, 0);
    ab_catalog_release(&cat);
}

static void test_dest_mode_names(void **state)
{
    static const struct {
        enum ab_dest_mode m;
        const char *name;
    } cases[] = {
        {AB_DEST_APPEND, "append"},
        {AB_DEST_OVERWRITE, "overwrite"},
        {AB_DEST_APPEND_DEDUP, "append_dedup"},
        {AB_DEST_OVERWRITE_DEDUP, "overwrite_dedup"},
        {AB_DEST_UPDATE, "update"},
        {AB_DEST_SOFT_DELETE, "soft_delete"},
        {AB_DEST_UNKNOWN, "unknown"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_string_equal(ab_dest_mode_name(cases[i].m), cases[i].name);
    }
}

static void test_path_parse(void **state)
{
    static const struct {
        const char *dotted;
        enum ab_status rc;
        size_t n;
        const char *message;
    } cases[] = {
        {"id", AB_OK, 1, NULL},
        {"contato.email", AB_OK, 2, NULL},
        {"a.b.c.d", AB_OK, 4, NULL},
        {"", AB_ERR_CONFIG, 0, "empty field path"},
        {"a..b", AB_ERR_CONFIG, 0, "empty segment in field path 'a..b'"},
        {".a", AB_ERR_CONFIG, 0, "empty segment in field path '.a'"},
        {"a.", AB_ERR_CONFIG, 0, "empty segment in field path 'a.'"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ab_path p;
        struct ab_error err;

        ab_error_init(&err);
        assert_int_equal(ab_path_parse(&p, cases[i].dotted, &err), cases[i].rc);
        assert_int_equal(p.n, cases[i].n);
        if (cases[i].rc == AB_OK) {
            assert_path(&p, cases[i].dotted);
        } else {
            assert_null(p.keys);
            assert_string_equal(err.message, cases[i].message);
        }
        ab_path_release(&p);
        ab_path_release(&p);
    }
}

static void test_path_get_walks_objects(void **state)
{
    static const struct {
        const char *dotted;
        const char *want; /* JSON text, NULL: absent */
    } cases[] = {
        {"id", "1"},
        {"contato", "{\"email\":\"a@b.c\",\"n\":null}"},
        {"contato.email", "\"a@b.c\""},
        {"contato.n", "null"},
        {"contato.missing", NULL},
        {"id.x", NULL},    /* through a number */
        {"list.0", "5"},   /* an array element by its index */
        {"list.1", NULL},  /* past the end */
        {"list.x", NULL},  /* not an index */
        {"list.00", NULL}, /* not a canonical index */
        {"nope", NULL},
    };
    const char *doc = "{\"id\":1,\"contato\":{\"email\":\"a@b.c\",\"n\":null},\"list\":[5]}";
    struct ab_error err;
    yajl_val data;
    size_t i;

    (void)state;
    ab_error_init(&err);
    data = ab_json_parse(doc, strlen(doc), &err);
    assert_non_null(data);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ab_path p;
        yajl_val v;

        assert_int_equal(ab_path_parse(&p, cases[i].dotted, &err), AB_OK);
        v = ab_path_get(&p, data);
        if (!cases[i].want) {
            assert_null(v);
        } else {
            struct ab_buf b;

            ab_buf_init(&b, 1024);
            assert_non_null(v);
            assert_int_equal(ab_json_write(&b, v, &err), AB_OK);
            assert_string_equal(b.data, cases[i].want);
            ab_buf_release(&b);
        }
        ab_path_release(&p);
    }
    {
        struct ab_path empty = {NULL, 0};

        assert_null(ab_path_get(&empty, data));
        assert_null(ab_path_get(NULL, data));
    }
    yajl_tree_free(data);
}

static void test_path_str_truncates(void **state)
{
    struct ab_path p;
    struct ab_error err;
    char buf[6];
    char big[64];

    (void)state;
    ab_error_init(&err);
    assert_int_equal(ab_path_parse(&p, "abc.defgh.i", &err), AB_OK);
    assert_string_equal(ab_path_str(&p, big, sizeof(big)), "abc.defgh.i");
    assert_string_equal(ab_path_str(&p, buf, sizeof(buf)), "abc.d");
    assert_string_equal(ab_path_str(&p, buf, 1), "");
    assert_string_equal(ab_path_str(&p, buf, 0), "");
    ab_path_release(&p);
}

static void test_closest_streams(void **state)
{
    struct ab_catalog cat;
    struct ab_error err;
    char out[400];

    (void)state;
    ab_error_init(&err);
    assert_int_equal(ab_catalog_load(&cat, DATA "valid.json", &err), AB_OK);
    ab_catalog_closest(&cat, "user", "pubic", out, sizeof(out));
    assert_string_equal(out, "closest streams in the catalog: 'public.users', 'archive.users', "
                             "'events'; namespaces in the catalog: 'public', 'archive'");
    ab_catalog_closest(&cat, "snp", NULL, out, sizeof(out));
    assert_string_equal(out, "closest streams in the catalog: 'snap', 'gone', 'events'; "
                             "namespaces in the catalog: 'public', 'archive'");
    /* always terminated, even when cut */
    ab_catalog_closest(&cat, "snp", NULL, out, 20);
    assert_string_equal(out, "closest streams in ");
    ab_catalog_release(&cat);

    assert_int_equal(parse_text(&cat,
                                "{\"streams\":[{\"stream\":{\"name\":\"a'b\\u0001\"},"
                                "\"destination_sync_mode\":\"append\"}]}",
                                &err),
                     AB_OK);
    ab_catalog_closest(&cat, "ab", "x", out, sizeof(out));
    assert_string_equal(out, "closest streams in the catalog: 'a?b?'; no stream of the catalog "
                             "has a namespace");
    ab_catalog_release(&cat);
    ab_catalog_closest(NULL, "ab", NULL, out, sizeof(out));
    assert_string_equal(out, "the catalog has no streams");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_valid_multi_stream),
        cmocka_unit_test(test_load_errors_name_the_stream),
        cmocka_unit_test(test_load_invalid_json_is_config_error),
        cmocka_unit_test(test_parse_error_messages),
        cmocka_unit_test(test_parse_empty_streams_ok),
        cmocka_unit_test(test_parse_large_ids),
        cmocka_unit_test(test_dest_mode_names),
        cmocka_unit_test(test_path_parse),
        cmocka_unit_test(test_path_get_walks_objects),
        cmocka_unit_test(test_path_str_truncates),
        cmocka_unit_test(test_closest_streams),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
