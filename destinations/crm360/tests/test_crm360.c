/* test_crm360.c - pure parts of destination-crm360: spec, keys, record building, answers. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/destination.h"
#include "ab/json.h"
#include "ab/mapping.h"
#include "ab/protocol.h"

#include "ab_spec_test.h"
#include "ab_test.h"
#include "crm360.h"
#include "crm360_int.h"

static void test_spec_declares_every_field_read(void **state)
{
    static const char *const fields[] = {"api_url",
                                         "api_key",
                                         "brand",
                                         "batch_size",
                                         "max_batch_bytes",
                                         "stream_mappings",
                                         "rejected_records",
                                         "object_storage_config",
                                         "dead_letter_path",
                                         "max_in_flight",
                                         "requests_per_second",
                                         "burst",
                                         "connect_timeout_seconds",
                                         "request_timeout_seconds",
                                         "max_retries",
                                         "ca_path",
                                         "gzip",
                                         "max_line_bytes",
                                         "progress_interval_seconds",
                                         "max_checkpoint_wait_seconds",
                                         "log_level",
                                         NULL};
    yajl_val spec = spec_test_build(crm_spec_json);
    yajl_val props = ab_json_get_dotted(spec, "connectionSpecification.properties");

    (void)state;
    spec_test_declares(spec, fields);
    assert_true(ab_json_get_bool(ab_json_get(props, "api_key"), "airbyte_secret", false));
    assert_int_equal(ab_json_get_int(ab_json_get(props, "api_key"), "minLength", 0), 8);
    assert_int_equal(ab_json_get_int(ab_json_get(props, "batch_size"), "maximum", 0), 1000);
    assert_null(ab_json_get(spec, "x-ab-options"));
    assert_string_equal(ab_json_get_str(spec, "protocol_version", ""), AB_PROTOCOL_VERSION);
    {
        const char *doc = ab_json_get_str(spec, "documentationUrl", "");
        const char *tail = "/destinations/crm360/README.md#configuration";

        assert_true(strncmp(doc, "https://", 8) == 0);
        assert_true(strlen(doc) > strlen(tail));
        assert_string_equal(doc + strlen(doc) - strlen(tail), tail);
    }
    yajl_tree_free(spec);
}

/* CRM360's own limit overrides the common rate defaults; the rest stay. */
static void test_spec_defaults_reach_the_code(void **state)
{
    yajl_val spec = spec_test_build(crm_spec_json);
    yajl_val cfg = spec_test_config(spec, "{\"api_url\":\"https://api.crm360.example\","
                                          "\"api_key\":\"k-123456\"}");
    struct ab_http_opts o;

    (void)state;
    spec_test_driver_defaults(spec, cfg);
    ab_opts_http(cfg, &o);
    assert_true(o.requests_per_second > 9.99 && o.requests_per_second < 10.01);
    assert_true(o.burst > 19.99 && o.burst < 20.01);
    assert_int_equal(o.request_timeout_ms, 60000);
    assert_int_equal(ab_opt_int(cfg, "batch_size"), 500);
    assert_int_equal(ab_opt_int(cfg, "max_batch_bytes"), 8000000);
    assert_null(ab_opt_str(cfg, "brand"));
    yajl_tree_free(cfg);
    yajl_tree_free(spec);
}

static void test_idempotency_key_deterministic(void **state)
{
    char k1[CRM_IDEMPOTENCY_KEY_SIZE];
    char k2[CRM_IDEMPOTENCY_KEY_SIZE];
    const char body[] = "{\"records\":[{\"external_id\":\"C-1\"}]}";

    (void)state;
    crm_idempotency_key(7, CRM_CUSTOMERS, CRM_UPSERT, body, strlen(body), k1);
    crm_idempotency_key(7, CRM_CUSTOMERS, CRM_UPSERT, body, strlen(body), k2);
    assert_string_equal(k1, k2);
    assert_int_equal(strlen(k1), 7 + 64);
    assert_memory_equal(k1, "crm360-", 7);
    /* every input changes the key */
    crm_idempotency_key(8, CRM_CUSTOMERS, CRM_UPSERT, body, strlen(body), k2);
    assert_string_not_equal(k1, k2);
    crm_idempotency_key(7, CRM_ORDERS, CRM_UPSERT, body, strlen(body), k2);
    assert_string_not_equal(k1, k2);
    crm_idempotency_key(7, CRM_CUSTOMERS, CRM_DELETE, body, strlen(body), k2);
    assert_string_not_equal(k1, k2);
    crm_idempotency_key(7, CRM_CUSTOMERS, CRM_UPSERT, body, strlen(body) - 1, k2);
    assert_string_not_equal(k1, k2);
}

/* RECORD lines of customers, tricky for the byte-range path. */
static const char *const batch_lines[] = {
    "{\"type\":\"RECORD\",\"record\":{\"stream\":\"customers\",\"data\":{\"_ab_cdc_lsn\":1,"
    "\"external_id\":\"C-1\",\"brand\":\"b\",\"name\":\"Jos\\u00e9 \\\"Z\\\" \\\\ ação 😀\","
    "\"_airbyte_raw_id\":\"r\",\"n\":123456789012345678901234567890,\"_ab_last\":0}}}",
    "{\"type\":\"RECORD\",\"record\":{\"stream\":\"customers\",\"data\":{\"external_id\":\"C-2\","
    "\"brand\":null,\"addr\":{\"_ab_nested\":1,\"l\":[1.50,-2e-7,{}]},\"_ab_x\":{\"y\":[]}}}}",
    "{ \"type\" : \"RECORD\", \"record\" : { \"data\" : { \"_ab_a\" : 1 , \"external_id\" : "
    "\"C-3\" , \"tags\" : [ \"a b\" , true , null ] } , \"stream\" : \"customers\" } }",
    "{\"type\":\"RECORD\",\"record\":{\"stream\":\"customers\",\"data\":{\"\\u005fab_z\":1,"
    "\"external_id\":\"C-4\"}}}",
    /* sent as they came: compact, a brand, no top-level Airbyte member */
    "{\"type\":\"RECORD\",\"record\":{\"stream\":\"customers\",\"data\":{\"external_id\":"
    "\"C-5\",\"brand\":\"b\",\"s\":\"\\u00e9 \\\"q\\\" \\/ ação 😀\",\"n\":-1.50e+300,"
    "\"o\":{\"_ab_nested\":[{},[]]}},\"emitted_at\":1}}",
    "{ \"type\" : \"RECORD\" , \"record\" : {\"data\":{\"brand\":\"b\",\"external_id\":\"C-6\","
    "\"big\":123456789012345678901234567890}, \"stream\" : \"customers\" } }",
    /* plain data (lazy): escapes (no unicode escape), raw unicode, nested Airbyte members */
    "{\"type\":\"RECORD\",\"record\":{\"stream\":\"customers\",\"data\":{\"external_id\":"
    "\"C-7\",\"brand\":\"b\",\"s\":\"q\\\"d \\\\ \\/ \\n ação 😀\","
    "\"big\":123456789012345678901234567890,\"o\":{\"_ab_nested\":[{},[]],\"x\":{\"y\":"
    "[true,false,null]}}},\"emitted_at\":1}}",
    "{\"type\":\"RECORD\",\"record\":{\"stream\":\"customers\",\"data\":{\"_ab_first\":1,"
    "\"external_id\":\"C-8\",\"brand\":null,\"n\":-0.5,\"_airbyte_last\":\"z\"}}}",
    /* as it came, tags between the keys */
    "{\"type\":\"RECORD\",\"record\":{\"stream\":\"customers\",\"data\":{\"external_id\":"
    "\"C-9\",\"tags\":[\"t\"],\"brand\":\"b\"}}}",
};

enum build_path {
    PATH_TREE,  /* parse and serialise */
    PATH_BYTES, /* data found by a scan of the line, its members copied */
    PATH_SPAN,  /* as the driver does: data where the parser saw it, copied at
                 * once when it goes out as it came */
    PATH_LAZY   /* lazy data: no tree when it goes out as it came, else the
                 * tree of data's text and PATH_SPAN */
};

/* Builds the batch body of batch_lines by path, each line parsed anew;
 * returns its idempotency key in key and how many records went out as
 * they came in *verbatim. */
static void build_batch(enum build_path path, struct ab_buf *body, char *key, size_t *verbatim,
                        size_t *lazily)
{
    bool lines = path != PATH_TREE;
    struct ab_json_arena *arena;
    struct ab_json_arena *tree_arena;
    static const char *const objects[] = {"customers", "orders", NULL};
    struct ab_mappings maps;
    const struct ab_mapping *m;
    struct ab_error err;
    struct ab_buf errors;
    size_t i;

    memset(&maps, 0, sizeof(maps));
    ab_error_init(&err);
    ab_buf_init(&errors, AB_BUF_UNBOUNDED);
    arena = ab_json_arena_new(&err);
    assert_non_null(arena);
    tree_arena = ab_json_arena_new(&err);
    assert_non_null(tree_arena);
    ab_json_arena_set_lazy(arena, path == PATH_LAZY);
    *verbatim = 0;
    assert_int_equal(ab_mappings_parse(&maps, NULL, objects, &err), AB_OK);
    m = ab_mappings_resolve(&maps, "customers", NULL, objects, &err);
    assert_non_null(m);
    assert_int_equal(ab_buf_adds(body, "{\"records\":[", &err), AB_OK);
    for (i = 0; i < sizeof(batch_lines) / sizeof(batch_lines[0]); i++) {
        const char *line = batch_lines[i];
        yajl_val root;
        yajl_val data;
        size_t text_len = 0;
        const char *text = NULL;
        bool compact = false;
        bool same = false;

        ab_json_arena_reset(arena);
        root = ab_json_parse_arena(arena, line, strlen(line), &err);
        data = ab_json_get(ab_json_get(root, "record"), "data");
        assert_non_null(data);
        if (i) {
            assert_int_equal(ab_buf_addc(body, ',', &err), AB_OK);
        }
        if (path == PATH_BYTES) {
            text = ab_record_data_text(line, strlen(line), &text_len);
        } else if (path == PATH_SPAN || path == PATH_LAZY) {
            size_t off;

            assert_true(ab_json_arena_span(arena, data, &off, &text_len, &compact));
            text = line + off;
        }
        assert_true(text || !lines);
        if (path == PATH_LAZY) {
            struct ab_record rec;

            memset(&rec, 0, sizeof(rec));
            rec.data_text = text;
            rec.data_len = text_len;
            rec.data_compact = compact;
            if (ab_json_arena_lazy(arena, data, &rec.members, &rec.nmembers)) {
                (*lazily)++;
                const struct ab_json_member *tags = &rec.members[0];
                bool came = crm_record_as_it_came(m, &rec, CRM_UPSERT, &tags);
                const struct ab_json_member *id = ab_record_member(&rec, "external_id");
                const struct ab_json_member *br = ab_record_member(&rec, "brand");

                /* the one pass decides as the member lookups and the mapping do */
                assert_int_equal(came, id && id->val_len > 2 && text[id->val_off] == '"' && br &&
                                           br->val_len > 2 && text[br->val_off] == '"' &&
                                           ab_mapping_verbatim_members(m, text, rec.members,
                                                                       rec.nmembers, NULL, NULL));
                assert_ptr_equal(tags, came ? ab_record_member(&rec, "tags") : NULL);
                assert_false(crm_record_as_it_came(m, &rec, CRM_DELETE, NULL));
                if (came) {
                    assert_int_equal(ab_buf_add(body, text, text_len, &err), AB_OK);
                    (*verbatim)++;
                    continue;
                }
                /* the tree when one is needed: data's text parsed */
                ab_json_arena_reset(tree_arena);
                data = ab_json_parse_arena(tree_arena, text, text_len, &err);
                assert_non_null(data);
            }
        }
        assert_int_equal(crm_build_record(m, data, text, text_len, compact, "dflt", CRM_UPSERT,
                                          body, &same, &errors, &err),
                         AB_OK);
        *verbatim += same;
    }
    assert_int_equal(ab_buf_adds(body, "]}", &err), AB_OK);
    crm_idempotency_key(42, CRM_CUSTOMERS, CRM_UPSERT, body->data, body->len, key);
    ab_json_arena_free(arena);
    ab_json_arena_free(tree_arena);
    ab_buf_release(&errors);
    ab_mappings_release(&maps);
}

static void test_byte_path_bodies_and_keys(void **state)
{
    char k1[CRM_IDEMPOTENCY_KEY_SIZE];
    char k2[CRM_IDEMPOTENCY_KEY_SIZE];
    char kt[CRM_IDEMPOTENCY_KEY_SIZE];
    char ks[CRM_IDEMPOTENCY_KEY_SIZE];
    char ks2[CRM_IDEMPOTENCY_KEY_SIZE];
    char kl[CRM_IDEMPOTENCY_KEY_SIZE];
    char kl2[CRM_IDEMPOTENCY_KEY_SIZE];
    size_t verbatim[7];
    size_t lazily[3] = {0, 0, 0};
    struct ab_buf bl;
    struct ab_buf bl2;
    struct ab_buf bs;
    struct ab_buf bs2;
    struct ab_buf b1;
    struct ab_buf b2;
    struct ab_buf bt;
    struct ab_buf canon1;
    struct ab_buf canont;
    struct ab_error err;
    yajl_val v1;
    yajl_val vt;

    (void)state;
    ab_error_init(&err);
    ab_buf_init(&b1, AB_BUF_UNBOUNDED);
    ab_buf_init(&b2, AB_BUF_UNBOUNDED);
    ab_buf_init(&bt, AB_BUF_UNBOUNDED);
    ab_buf_init(&canon1, AB_BUF_UNBOUNDED);
    ab_buf_init(&canont, AB_BUF_UNBOUNDED);
    ab_buf_init(&bs, AB_BUF_UNBOUNDED);
    ab_buf_init(&bs2, AB_BUF_UNBOUNDED);
    ab_buf_init(&bl, AB_BUF_UNBOUNDED);
    ab_buf_init(&bl2, AB_BUF_UNBOUNDED);
    build_batch(PATH_BYTES, &b1, k1, &verbatim[0], &lazily[0]);
    build_batch(PATH_BYTES, &b2, k2, &verbatim[1], &lazily[0]);
    build_batch(PATH_TREE, &bt, kt, &verbatim[2], &lazily[0]);
    build_batch(PATH_SPAN, &bs, ks, &verbatim[3], &lazily[0]);
    build_batch(PATH_SPAN, &bs2, ks2, &verbatim[4], &lazily[0]);
    build_batch(PATH_LAZY, &bl, kl, &verbatim[5], &lazily[1]);
    build_batch(PATH_LAZY, &bl2, kl2, &verbatim[6], &lazily[2]);
    /* no lazy data but on the lazy path; there, every line whose data is
     * plain (no \u escape, no exponent) */
    assert_int_equal(lazily[0], 0);
    assert_int_equal(lazily[1], 5);
    assert_int_equal(lazily[2], 5);
    /* the same bodies and keys as the driver's path, again when rebuilt,
     * with as many records copied at once */
    assert_int_equal(verbatim[5], verbatim[3]);
    assert_int_equal(verbatim[6], verbatim[3]);
    assert_int_equal(bl.len, bs.len);
    assert_memory_equal(bl.data, bs.data, bs.len);
    assert_string_equal(kl, ks);
    assert_int_equal(bl2.len, bl.len);
    assert_memory_equal(bl2.data, bl.data, bl.len);
    assert_string_equal(kl2, kl);
    ab_buf_release(&bl);
    ab_buf_release(&bl2);
    /* only the driver's path copies a record at once: the four compact ones */
    assert_int_equal(verbatim[0] + verbatim[1] + verbatim[2], 0);
    assert_int_equal(verbatim[3], 4);
    assert_int_equal(verbatim[4], 4);
    /* and its bodies, and so its keys, are those of the copying path */
    assert_int_equal(bs.len, b1.len);
    assert_memory_equal(bs.data, b1.data, b1.len);
    assert_string_equal(ks, k1);
    assert_int_equal(bs2.len, bs.len);
    assert_memory_equal(bs2.data, bs.data, bs.len);
    assert_string_equal(ks2, ks);
    /* the same input: the same body and key, so a rebuilt batch is recognised */
    assert_int_equal(b1.len, b2.len);
    assert_memory_equal(b1.data, b2.data, b1.len);
    assert_string_equal(k1, k2);
    /* the same JSON as parse and serialise: both written by the serialiser
     * from their parse are the same bytes */
    v1 = ab_json_parse(b1.data, b1.len, &err);
    vt = ab_json_parse(bt.data, bt.len, &err);
    assert_non_null(v1);
    assert_non_null(vt);
    assert_int_equal(ab_json_write(&canon1, v1, &err), AB_OK);
    assert_int_equal(ab_json_write(&canont, vt, &err), AB_OK);
    assert_string_equal(canon1.data, canont.data);
    /* the default brand replaced the null one and was added where none was */
    assert_non_null(strstr(b1.data, "{\"external_id\":\"C-2\",\"brand\":\"dflt\",\"addr\""));
    assert_non_null(strstr(b1.data, "\"tags\":[\"a b\",true,null],\"brand\":\"dflt\"}"));
    /* escapes came through as they were written */
    assert_non_null(strstr(b1.data, "Jos\\u00e9"));
    /* top-level Airbyte members dropped, however spelled; nested ones kept */
    assert_null(strstr(b1.data, "_ab_cdc_lsn"));
    assert_null(strstr(b1.data, "_ab_last"));
    assert_null(strstr(b1.data, "_airbyte_raw_id"));
    assert_null(strstr(b1.data, "_ab_x"));
    assert_null(strstr(b1.data, "005fab_z"));
    assert_non_null(strstr(b1.data, "\"_ab_nested\":1"));
    ab_json_free(v1);
    ab_json_free(vt);
    ab_buf_release(&b1);
    ab_buf_release(&b2);
    ab_buf_release(&bt);
    ab_buf_release(&canon1);
    ab_buf_release(&canont);
    ab_buf_release(&bs);
    ab_buf_release(&bs2);
}

struct build_case {
    const char *data;
    const char *brand;
    enum crm_op op;
    enum ab_status rc;
    const char *expect; /* the record, or a substring of the errors */
};

static const struct build_case build_cases[] = {
    {"{\"external_id\":\"C-1\",\"brand\":\"b\",\"email\":\"a@b.co\",\"_ab_cdc_lsn\":5}", NULL,
     CRM_UPSERT, AB_OK, "{\"external_id\":\"C-1\",\"brand\":\"b\",\"email\":\"a@b.co\"}"},
    {"{\"external_id\":\"C-1\",\"email\":\"a@b.co\"}", "lojas", CRM_UPSERT, AB_OK,
     "{\"external_id\":\"C-1\",\"email\":\"a@b.co\",\"brand\":\"lojas\"}"},
    {"{\"external_id\":\"C-1\",\"brand\":\"own\"}", "lojas", CRM_UPSERT, AB_OK,
     "{\"external_id\":\"C-1\",\"brand\":\"own\"}"},
    {"{\"brand\":\"b\",\"email\":\"a@b.co\"}", NULL, CRM_UPSERT, AB_ERR_REJECTED,
     "\"field\":\"external_id\",\"code\":\"missing_field\""},
    {"{\"external_id\":\"\",\"brand\":\"b\"}", NULL, CRM_UPSERT, AB_ERR_REJECTED,
     "\"code\":\"missing_field\""},
    {"{\"external_id\":12,\"brand\":\"b\"}", NULL, CRM_UPSERT, AB_ERR_REJECTED,
     "\"field\":\"external_id\",\"code\":\"invalid_type\""},
    {"{\"external_id\":\"C-1\"}", NULL, CRM_UPSERT, AB_ERR_REJECTED, "\"field\":\"brand\""},
    {"{\"external_id\":\"C-1\",\"brand\":\"b\",\"updated_at\":\"2026-01-01T00:00:00Z\","
     "\"_ab_cdc_deleted_at\":\"2026-02-01T00:00:00Z\"}",
     NULL, CRM_DELETE, AB_OK,
     "{\"external_id\":\"C-1\",\"brand\":\"b\",\"deleted_at\":\"2026-02-01T00:00:00Z\"}"},
    {"{\"external_id\":\"C-1\",\"updated_at\":\"2026-01-01T00:00:00Z\"}", "x", CRM_DELETE, AB_OK,
     "{\"external_id\":\"C-1\",\"brand\":\"x\",\"deleted_at\":\"2026-01-01T00:00:00Z\"}"},
    {"{\"external_id\":\"C-1\",\"brand\":\"b\"}", NULL, CRM_DELETE, AB_ERR_REJECTED,
     "\"field\":\"deleted_at\""},
    {"{\"external_id\":\"99999999999999999999999\",\"brand\":\"b\",\"n\":"
     "123456789012345678901234567890}",
     NULL, CRM_UPSERT, AB_OK,
     "{\"external_id\":\"99999999999999999999999\",\"brand\":\"b\",\"n\":"
     "123456789012345678901234567890}"},
};

static void test_build_record_table(void **state)
{
    static const char *const objects[] = {"customers", "orders", NULL};
    struct ab_mappings maps;
    const struct ab_mapping *m;
    struct ab_error err;
    size_t i;

    (void)state;
    memset(&maps, 0, sizeof(maps));
    ab_error_init(&err);
    assert_int_equal(ab_mappings_parse(&maps, NULL, objects, &err), AB_OK);
    m = ab_mappings_resolve(&maps, "customers", NULL, objects, &err);
    assert_non_null(m);
    for (i = 0; i < sizeof(build_cases) / sizeof(build_cases[0]); i++) {
        const struct build_case *bc = &build_cases[i];
        yajl_val data = ab_json_parse(bc->data, strlen(bc->data), &err);
        struct ab_buf out;
        struct ab_buf errors;
        enum ab_status rc;

        assert_non_null(data);
        ab_buf_init(&out, AB_BUF_UNBOUNDED);
        ab_buf_init(&errors, AB_BUF_UNBOUNDED);
        rc =
            crm_build_record(m, data, NULL, 0, false, bc->brand, bc->op, &out, NULL, &errors, &err);
        if (rc != bc->rc) {
            fail_msg("case %zu: status %d, expected %d (%s)", i, rc, bc->rc, err.message);
        }
        if (rc == AB_OK) {
            assert_string_equal(out.data, bc->expect);
        } else {
            assert_int_equal(out.len, 0);
            if (!strstr(errors.data, bc->expect)) {
                fail_msg("case %zu: errors %s lack %s", i, errors.data, bc->expect);
            }
            /* the errors are a JSON array */
            yajl_tree_free(ab_json_parse(errors.data, errors.len, &err));
        }
        ab_buf_release(&out);
        ab_buf_release(&errors);
        yajl_tree_free(data);
    }
    ab_mappings_release(&maps);
}

static void test_build_record_with_field_mapping(void **state)
{
    static const char *const objects[] = {"customers", "orders", NULL};
    const char cfg[] = "[{\"stream\":\"clientes\",\"object\":\"customers\",\"fields\":{"
                       "\"external_id\":\"id\",\"email\":\"contato.email\",\"brand\":\"marca\"}}]";
    const char rec[] = "{\"id\":\"9\",\"marca\":\"m\",\"contato\":{\"email\":\"x@y.br\"},\"z\":1}";
    struct ab_mappings maps;
    const struct ab_mapping *m;
    struct ab_error err;
    yajl_val arr = ab_json_parse(cfg, strlen(cfg), &err);
    yajl_val data = ab_json_parse(rec, strlen(rec), &err);
    struct ab_buf out;
    struct ab_buf errors;

    (void)state;
    memset(&maps, 0, sizeof(maps));
    assert_int_equal(ab_mappings_parse(&maps, arr, objects, &err), AB_OK);
    m = ab_mappings_resolve(&maps, "clientes", NULL, objects, &err);
    assert_non_null(m);
    assert_string_equal(m->object, "customers");
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    ab_buf_init(&errors, AB_BUF_UNBOUNDED);
    assert_int_equal(
        crm_build_record(m, data, NULL, 0, false, NULL, CRM_UPSERT, &out, NULL, &errors, &err),
        AB_OK);
    assert_non_null(strstr(out.data, "\"external_id\":\"9\""));
    assert_non_null(strstr(out.data, "\"email\":\"x@y.br\""));
    assert_non_null(strstr(out.data, "\"brand\":\"m\""));
    assert_null(strstr(out.data, "\"z\""));
    ab_buf_release(&out);
    ab_buf_release(&errors);
    ab_mappings_release(&maps);
    yajl_tree_free(arr);
    yajl_tree_free(data);
}

/* ---- batch answers read without a tree ---------------------------------- */

/* What the tree path (batch.c: apply_results, record_result) makes of an
 * answer to n records, with the same accessors. */
enum tree_outcome {
    T_UNREADABLE, /* the parser refuses it */
    T_COUNT,      /* no results array of n entries */
    T_UNKNOWN,    /* a status it does not know */
    T_REJECTION,  /* a rejection: dead-lettered */
    T_COUNTED     /* every result counted */
};

static enum tree_outcome tree_read(const char *text, size_t len, size_t n,
                                   uint64_t counts[CRM_R_NRESULTS], char *batch_id, size_t size)
{
    struct ab_error err;
    yajl_val root;
    yajl_val results;
    enum tree_outcome out = T_COUNTED;
    size_t i;

    ab_error_init(&err);
    memset(counts, 0, CRM_R_NRESULTS * sizeof(*counts));
    root = ab_json_parse(text, len, &err);
    if (!root) {
        return T_UNREADABLE;
    }
    results = ab_json_get(root, "results");
    if (!results || results->type != yajl_t_array || results->u.array.len != n) {
        out = T_COUNT;
    }
    for (i = 0; out == T_COUNTED && i < n; i++) {
        const char *st = ab_json_get_str(results->u.array.values[i], "status", "");
        int k;

        for (k = 0; k < CRM_R_NRESULTS && strcmp(st, crm_result_names[k]) != 0; k++) {
        }
        if (k == CRM_R_NRESULTS) {
            out = T_UNKNOWN;
        } else if (k == CRM_R_REJECTED) {
            out = T_REJECTION;
        } else {
            counts[k]++;
        }
    }
    (void)snprintf(batch_id, size, "%s", ab_json_get_str(root, "batch_id", "?"));
    ab_json_free(root);
    return out;
}

/* The scan accepts text only when the tree path counts it, with the same
 * counts and batch_id; returns whether it accepted. */
static bool scan_agrees(const char *text, size_t len, size_t n)
{
    struct crm_answer_scan a;
    struct crm_answer_scan untouched;
    uint64_t counts[CRM_R_NRESULTS];
    char tree_id[256];
    char scan_id[256];
    enum tree_outcome t = tree_read(text, len, n, counts, tree_id, sizeof(tree_id));
    bool ok;

    memset(&a, 0xa5, sizeof(a));
    untouched = a;
    ok = crm_answer_scan(text, len, n, &a);
    if (!ok) {
        assert_memory_equal(&a, &untouched, sizeof(a));
        return false;
    }
    if (t != T_COUNTED) {
        fail_msg("scanned an answer the tree path does not count (%d): %.*s", (int)t, (int)len,
                 text);
    }
    assert_memory_equal(a.counts, counts, sizeof(counts));
    (void)snprintf(scan_id, sizeof(scan_id), "%.*s", a.batch_id ? (int)a.batch_id_len : 1,
                   a.batch_id ? a.batch_id : "?");
    assert_string_equal(scan_id, tree_id);
    return true;
}

static const char usual[] =
    "{\"batch_id\":\"b_1\",\"committed_at\":\"2026-01-01T00:00:00Z\",\"results\":["
    "{\"external_id\":\"C-1\",\"status\":\"created\"},{\"external_id\":\"C-2\",\"brand\":"
    "\"b\",\"status\":\"updated\"},{\"external_id\":null,\"status\":\"unchanged\"},{\"status\":"
    "\"stale\","
    "\"external_id\":\"C-4\"},{\"external_id\":\"C-5\",\"status\":\"not_found\"},"
    "{\"external_id\":\"\",\"status\":\"deleted\"}]}";

static void test_answer_scan_matches_tree(void **state)
{
    /* accept: 1 when the scan must read it, 0 when it must leave it to the
     * tree path (which may still count it: the scan keeps to one form) */
    static const struct {
        int accept;
        size_t n;
        const char *text;
    } cases[] = {
        {1, 6, usual},
        {1, 1, "{\"results\":[{\"status\":\"created\"}]}"},
        /* as the emulator answers */
        {1, 2,
         "{\"batch_id\":\"b_000001\",\"committed_at\":\"2026-11-21T10:00:00.000Z\","
         "\"results\":[{\"external_id\":\"C-1\",\"brand\":\"acme\",\"status\":\"created\"},"
         "{\"external_id\":\"C-2\",\"brand\":\"acme\",\"status\":\"stale\"}]}"},
        {1, 1, "{\"results\":[{\"brand\":null,\"status\":\"deleted\",\"external_id\":null}]}"},
        {1, 1, "{\"results\":[{\"external_id\":\"C\",\"brand\":\"\",\"status\":\"created\"}]}"},
        {0, 1,
         "{\"results\":[{\"external_id\":\"C\",\"brand\":\"b\",\"brand\":\"b\","
         "\"status\":\"created\"}]}"},
        {0, 1, "{\"results\":[{\"external_id\":\"C\",\"brand\":1,\"status\":\"created\"}]}"},
        {0, 1,
         "{\"results\":[{\"external_id\":\"C\",\"brand\":\"\u00e9\",\"status\":"
         "\"created\"}]}"},
        {0, 1,
         "{\"results\":[{\"external_id\":\"C\",\"brand\":\"b\",\"status\":\"rejected\","
         "\"errors\":[]}]}"},
        {1, 1,
         " \r\n\t{ \"results\" : [ { \"external_id\" : \"X\" , \"status\" : \"deleted\" } ] "
         ", \"batch_id\" : \"b 2\" } \n"},
        {1, 2,
         "{\"committed_at\":\"t\",\"results\":[{\"status\":\"stale\",\"external_id\":null},"
         "{\"status\":\"stale\"}],\"batch_id\":\"\"}"},
        /* wrong counts */
        {0, 5, usual},
        {0, 7, usual},
        {0, 1, "{\"results\":[]}"},
        {0, 0, "{\"results\":{}}"},
        {0, 1, "{\"batch_id\":\"b\"}"},
        {0, 1, "{}"},
        {0, 1, "[]"},
        {0, 1, ""},
        {0, 1, "null"},
        /* rejections, unknown or missing statuses */
        {0, 1,
         "{\"results\":[{\"external_id\":\"C\",\"status\":\"rejected\",\"errors\":"
         "[{\"field\":\"email\",\"code\":\"invalid_format\",\"message\":\"no\"}]}]}"},
        {0, 1, "{\"results\":[{\"external_id\":\"C\",\"status\":\"rejected\"}]}"},
        {0, 1, "{\"results\":[{\"external_id\":\"C\",\"status\":\"Created\"}]}"},
        {0, 1, "{\"results\":[{\"external_id\":\"C\",\"status\":\"create\"}]}"},
        {0, 1, "{\"results\":[{\"external_id\":\"C\",\"status\":\"createdd\"}]}"},
        {0, 1, "{\"results\":[{\"external_id\":\"C\",\"status\":\"\"}]}"},
        {0, 1, "{\"results\":[{\"external_id\":\"C\"}]}"},
        {0, 1, "{\"results\":[{\"external_id\":\"C\",\"status\":null}]}"},
        {0, 1, "{\"results\":[{\"external_id\":\"C\",\"status\":1}]}"},
        {0, 1, "{\"results\":[{}]}"},
        {0, 1, "{\"results\":[null]}"},
        {0, 1, "{\"results\":[\"created\"]}"},
        /* escapes and non-ASCII text: the parser reads them */
        {0, 1, "{\"results\":[{\"external_id\":\"C\",\"status\":\"cr\\u0065ated\"}]}"},
        {0, 1, "{\"results\":[{\"external_id\":\"C\\\"1\",\"status\":\"created\"}]}"},
        {0, 1, "{\"results\":[{\"external_id\":\"Jos\xc3\xa9\",\"status\":\"created\"}]}"},
        {0, 1, "{\"results\":[{\"external_id\":\"bad \xc3\",\"status\":\"created\"}]}"},
        {0, 1, "{\"results\":[{\"external_id\":\"tab\there\",\"status\":\"created\"}]}"},
        {0, 1, "{\"batch_id\":\"b\\n\",\"results\":[{\"status\":\"created\"}]}"},
        {0, 1, "{\"res\\u0075lts\":[{\"status\":\"created\"}]}"},
        {0, 1, "{\"results\":[{\"st\\u0061tus\":\"created\"}]}"},
        /* members the scan does not expect, duplicates, other types */
        {0, 1, "{\"results\":[{\"external_id\":\"C\",\"status\":\"created\",\"errors\":[]}]}"},
        {1, 1, "{\"results\":[{\"external_id\":\"C\",\"status\":\"created\",\"brand\":\"b\"}]}"},
        {0, 1, "{\"results\":[{\"external_id\":\"C\",\"status\":\"created\",\"at\":\"b\"}]}"},
        {0, 1, "{\"results\":[{\"status\":\"created\",\"status\":\"created\"}]}"},
        {0, 1,
         "{\"results\":[{\"external_id\":\"C\",\"external_id\":\"C\",\"status\":"
         "\"created\"}]}"},
        {0, 1, "{\"results\":[{\"status\":\"created\"}],\"results\":[{\"status\":\"created\"}]}"},
        {0, 1, "{\"batch_id\":\"a\",\"batch_id\":\"b\",\"results\":[{\"status\":\"created\"}]}"},
        {0, 1, "{\"results\":[{\"status\":\"created\"}],\"extra\":1}"},
        {0, 1, "{\"batch_id\":7,\"results\":[{\"status\":\"created\"}]}"},
        {0, 1, "{\"committed_at\":null,\"results\":[{\"status\":\"created\"}]}"},
        {0, 1, "{\"results\":[{\"external_id\":7,\"status\":\"created\"}]}"},
        {0, 1, "{\"results\":[{\"external_id\":nul,\"status\":\"created\"}]}"},
        {0, 1, "{\"results\":[{\"external_id\":nullx,\"status\":\"created\"}]}"},
        {0, 1, "{\"results\":[{\"external_id\":true,\"status\":\"created\"}]}"},
        /* not JSON, or more after it */
        {0, 1, "{\"results\":[{\"status\":\"created\"}]}x"},
        {0, 1, "{\"results\":[{\"status\":\"created\"}]}{}"},
        {0, 1, "{\"results\":[{\"status\":\"created\"},]}"},
        {0, 1, "{\"results\":[,{\"status\":\"created\"}]}"},
        {0, 1, "{\"results\":[{\"status\":\"created\",}]}"},
        {0, 1, "{\"results\":[{\"status\":\"created\"}],}"},
        {0, 1, "{,\"results\":[{\"status\":\"created\"}]}"},
        {0, 1, "{\"results\" [{\"status\":\"created\"}]}"},
        {0, 1, "{\"results\":[{\"status\" \"created\"}]}"},
        {0, 1, "{\"results\":[{\"status\":\"created\"}]"},
        {0, 1, "{\"results\":[{\"status\":\"created\"}}"},
        {0, 1, "{'results':[{'status':'created'}]}"},
        {0, 1, "{\"results\":[{\"status\":\"created\"}]}\f"},
        {0, 1, "\xef\xbb\xbf{\"results\":[{\"status\":\"created\"}]}"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool ok = scan_agrees(cases[i].text, strlen(cases[i].text), cases[i].n);

        if (ok != (cases[i].accept == 1)) {
            fail_msg("case %zu: scan %s %s", i, ok ? "accepted" : "refused", cases[i].text);
        }
    }
    /* counts come out per status */
    {
        struct crm_answer_scan a;

        assert_true(crm_answer_scan(usual, strlen(usual), 6, &a));
        assert_int_equal(a.counts[CRM_R_CREATED], 1);
        assert_int_equal(a.counts[CRM_R_UPDATED], 1);
        assert_int_equal(a.counts[CRM_R_UNCHANGED], 1);
        assert_int_equal(a.counts[CRM_R_STALE], 1);
        assert_int_equal(a.counts[CRM_R_NOT_FOUND], 1);
        assert_int_equal(a.counts[CRM_R_DELETED], 1);
        assert_int_equal(a.counts[CRM_R_REJECTED], 0);
        assert_int_equal(a.batch_id_len, 3);
        assert_memory_equal(a.batch_id, "b_1", 3);
    }
}

/* Every prefix of the usual answer, and every byte of it replaced by each of
 * a set of troublesome bytes: the scan never reads what the tree path would
 * not count the same way. */
static void test_answer_scan_sweep(void **state)
{
    static const char subst[] = "\"\\,:{}[] \t\nx0-n\x01\x7f\x80\xc3\xff";
    size_t len = strlen(usual);
    char *t = malloc(len + 1);
    size_t accepted = 0;
    size_t i;
    size_t j;

    (void)state;
    assert_non_null(t);
    for (i = 0; i < len; i++) {
        assert_false(scan_agrees(usual, i, 6));
    }
    for (i = 0; i < len; i++) {
        for (j = 0; j < sizeof(subst) - 1; j++) {
            memcpy(t, usual, len + 1);
            t[i] = subst[j];
            accepted += scan_agrees(t, len, 6);
            /* and with one result fewer asked for */
            (void)scan_agrees(t, len, 5);
        }
    }
    /* the replacements inside strings of plain text are still read */
    assert_true(accepted > 0);
    free(t);
}

/* A generation tag written into a record's list of plain strings without a
 * parse comes out as crm_write_tags() writes the parsed list. */
static void test_tags_written_as_parsed(void **state)
{
    static const char *const lists[] = {
        "[]",
        "[\"vip\"]",
        "[\"a\",\"b\"]",
        "[\"\"]",
        "[\"ab-gen:0123456789ab:7\"]",
        "[\"x\",\"ab-gen:0123456789ab:1\",\"y\"]",
        "[\"ab-gen:0123456789ab:\"]",
        "[\"ab-gen:0123456789ab\"]",
        "[\"ab-gen:0123456789abX7\"]",
        "[\"ab-gen:ffffffffffff:7\"]",
        "[\"ab-gen:0123456789ab:7\",\"ab-gen:0123456789ab:7\"]",
        "[\"caf\\u00e9\",\"q\\\"\"]",
        "[\"Jos\xc3\xa9\",\"a/b\"]",
        "[\"tab\\t\"]",
        "[1,\"a\",true,null,{\"k\":\"ab-gen:0123456789ab:7\"}]",
        "[null]",
        "[[\"a\"]]",
        "[ \"a\" , \"b\" ]",
        "null",
        "\"vip\"",
        "{}",
    };
    struct crm_dest c;
    struct crm_gen g;
    struct ab_error err;
    size_t i;

    (void)state;
    memset(&c, 0, sizeof(c));
    memset(&g, 0, sizeof(g));
    (void)snprintf(g.tag, sizeof(g.tag), "ab-gen:0123456789ab:7");
    g.prefix_len = strlen("ab-gen:0123456789ab:");
    c.gens = &g;
    ab_buf_init(&c.tagged, AB_BUF_UNBOUNDED);
    ab_error_init(&err);
    for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        struct ab_buf rec;
        struct ab_buf want;
        yajl_val tree;
        yajl_val tags;
        const char *at;

        ab_buf_init(&rec, AB_BUF_UNBOUNDED);
        ab_buf_init(&want, AB_BUF_UNBOUNDED);
        assert_int_equal(
            ab_buf_printf(&rec, &err, "{\"external_id\":\"C\",\"tags\":%s,\"b\":1}", lists[i]),
            AB_OK);
        /* what the parse makes of it */
        tree = ab_json_parse(rec.data, rec.len, &err);
        assert_non_null(tree);
        tags = ab_json_get(tree, "tags");
        at = strstr(rec.data, "\"tags\":") + 7;
        if (!ab_json_is_null(tags) && tags->type != yajl_t_array) {
            assert_int_equal(ab_buf_add(&want, rec.data, rec.len, &err), AB_OK);
        } else {
            assert_int_equal(ab_buf_add(&want, rec.data, (size_t)(at - rec.data), &err), AB_OK);
            assert_int_equal(crm_write_tags(&want, ab_json_is_null(tags) ? NULL : tags, &g, &err),
                             AB_OK);
            assert_int_equal(ab_buf_adds(&want, ",\"b\":1}", &err), AB_OK);
        }
        assert_int_equal(crm_tag_record(&c, 0, &rec, &err), AB_OK);
        if (rec.len != want.len || memcmp(rec.data, want.data, want.len) != 0) {
            fail_msg("list %s: %s, parsed: %s", lists[i], rec.data, want.data);
        }
        ab_json_free(tree);
        ab_buf_release(&rec);
        ab_buf_release(&want);
    }
    ab_buf_release(&c.tagged);
    ab_json_arena_free(c.tag_arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_declares_every_field_read),
        cmocka_unit_test(test_spec_defaults_reach_the_code),
        cmocka_unit_test(test_idempotency_key_deterministic),
        cmocka_unit_test(test_byte_path_bodies_and_keys),
        cmocka_unit_test(test_build_record_table),
        cmocka_unit_test(test_build_record_with_field_mapping),
        cmocka_unit_test(test_answer_scan_matches_tree),
        cmocka_unit_test(test_answer_scan_sweep),
        cmocka_unit_test(test_tags_written_as_parsed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
