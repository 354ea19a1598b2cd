/* test_shops.c - unit tests of destination-shops' pure parts. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ab/assert.h"
#include "ab/config.h"
#include "ab/json.h"
#include "ab/protocol.h"

#include "ab_spec_test.h"
#include "ab_test.h"
#include "part.h"
#include "shops.h"
#include "shops_int.h"
#include "wire.h"

/* ---- spec ------------------------------------------------------------------ */

static yajl_val parse(const char *text)
{
    struct ab_error err = {0};
    yajl_val v = ab_json_parse(text, strlen(text), &err);

    if (!v) {
        fail_msg("invalid JSON: %s", err.message);
    }
    return v;
}

static void test_spec_is_valid_json_with_modes(void **state)
{
    yajl_val spec = spec_test_build(shp_spec_json);
    yajl_val modes = ab_json_get(spec, "supported_destination_sync_modes");
    const char *want[] = {"append", "append_dedup", "overwrite"};
    size_t i;

    (void)state;
    assert_true(YAJL_IS_ARRAY(modes));
    assert_int_equal(modes->u.array.len, 3);
    for (i = 0; i < 3; i++) {
        assert_string_equal(ab_json_str(modes->u.array.values[i]), want[i]);
    }
    assert_true(YAJL_IS_TRUE(ab_json_get(spec, "supportsIncremental")));
    assert_string_equal(ab_json_get_str(spec, "protocol_version", ""), AB_PROTOCOL_VERSION);
    {
        const char *doc = ab_json_get_str(spec, "documentationUrl", "");
        const char *tail = "/destinations/shops/README.md#configuration";

        assert_true(strncmp(doc, "https://", 8) == 0);
        assert_true(strlen(doc) > strlen(tail));
        assert_string_equal(doc + strlen(doc) - strlen(tail), tail);
    }
    yajl_tree_free(spec);
}

static void test_spec_declares_every_field_read(void **state)
{
    static const char *const fields[] = {"api_url",
                                         "client_id",
                                         "client_secret",
                                         "channel",
                                         "stream_mappings",
                                         "label_prefix",
                                         "part_max_items",
                                         "part_max_bytes",
                                         "gzip",
                                         "min_commit_records",
                                         "max_commit_interval_seconds",
                                         "replace_deactivate_without_complete",
                                         "spool_memory_bytes",
                                         "spool_dir",
                                         "rejected_records",
                                         "object_storage_config",
                                         "dead_letter_path",
                                         "max_line_bytes",
                                         "progress_interval_seconds",
                                         "max_checkpoint_wait_seconds",
                                         "log_level",
                                         "max_in_flight",
                                         "requests_per_second",
                                         "burst",
                                         "connect_timeout_seconds",
                                         "request_timeout_seconds",
                                         "max_retries",
                                         "ca_path",
                                         NULL};
    yajl_val spec = spec_test_build(shp_spec_json);
    yajl_val props = ab_json_get_dotted(spec, "connectionSpecification.properties");

    (void)state;
    spec_test_declares(spec, fields);
    assert_null(ab_json_get(spec, "x-ab-options"));
    assert_true(YAJL_IS_TRUE(ab_json_get(ab_json_get(props, "client_secret"), "airbyte_secret")));
    assert_int_equal(ab_json_get_int(ab_json_get(props, "client_secret"), "minLength", 0), 8);
    yajl_tree_free(spec);
}

static void test_spec_defaults_fill_a_minimal_config(void **state)
{
    yajl_val spec = spec_test_build(shp_spec_json);
    yajl_val schema = ab_json_get(spec, "connectionSpecification");
    yajl_val cfg = parse("{\"api_url\":\"https://api.shops.example/\",\"client_id\":\"c\","
                         "\"client_secret\":\"s3cr3t-value\",\"channel\":\"store-br\"}");
    struct ab_error err = {0};
    struct shp_config c;
    struct ab_http_opts o;

    (void)state;
    assert_int_equal(ab_config_validate(cfg, schema, &err), AB_OK);
    assert_string_equal(ab_json_get_str(cfg, "rejected_records", ""), "dead_letter");
    assert_null(ab_json_get(cfg, "dead_letter_path"));
    assert_null(ab_json_get(cfg, "object_storage_config"));
    assert_int_equal(ab_json_get_int(cfg, "max_line_bytes", 0), 67108864);
    assert_int_equal(ab_json_get_int(cfg, "max_in_flight", 0), 4);
    assert_int_equal(ab_json_get_int(cfg, "max_retries", 0), 5);
    assert_int_equal(ab_json_get_int(cfg, "request_timeout_seconds", 0), 120);
    assert_string_equal(ab_json_get_str(cfg, "log_level", ""), "INFO");

    assert_int_equal(shp_config_load(&c, cfg, &err), AB_OK);
    assert_string_equal(c.api_url, "https://api.shops.example"); /* slash trimmed */
    assert_string_equal(c.label_prefix, "airbyte-shops");
    assert_int_equal(c.lim.max_items, 1000);
    assert_int_equal(c.lim.max_bytes, 8388608);
    assert_true(c.gzip);
    assert_int_equal(c.min_commit_records, 20000);
    assert_int_equal(c.max_commit_interval_us, (int64_t)300 * 1000000);
    assert_int_equal(c.spool_memory_bytes, 8388608);
    assert_false(c.deactivate_without_complete);
    assert_null(c.spool_dir);
    /* what the code took is what the spec declares */
    assert_string_equal(c.label_prefix, ab_json_str(spec_test_default(spec, "label_prefix")));
    SPEC_TEST_EQ("part_max_items", c.lim.max_items, spec_test_default_num(spec, "part_max_items"));
    SPEC_TEST_EQ("part_max_bytes", c.lim.max_bytes, spec_test_default_num(spec, "part_max_bytes"));
    SPEC_TEST_EQ("min_commit_records", c.min_commit_records,
                 spec_test_default_num(spec, "min_commit_records"));
    SPEC_TEST_EQ("max_commit_interval_seconds (us)", c.max_commit_interval_us,
                 spec_test_default_num(spec, "max_commit_interval_seconds") * 1e6);
    SPEC_TEST_EQ("spool_memory_bytes", c.spool_memory_bytes,
                 spec_test_default_num(spec, "spool_memory_bytes"));
    SPEC_TEST_EQ("max_in_flight", c.max_in_flight, spec_test_default_num(spec, "max_in_flight"));
    assert_true(c.gzip == YAJL_IS_TRUE(spec_test_default(spec, "gzip")));
    assert_true(c.deactivate_without_complete ==
                YAJL_IS_TRUE(spec_test_default(spec, "replace_deactivate_without_complete")));
    spec_test_driver_defaults(spec, cfg);
    /* Shops' own limits override the common HTTP defaults */
    ab_opts_http(cfg, &o);
    assert_true(o.requests_per_second > 4.99 && o.requests_per_second < 5.01);
    assert_true(o.burst > 9.99 && o.burst < 10.01);
    assert_int_equal(o.request_timeout_ms, 120000);
    assert_int_equal(o.connect_timeout_ms, 10000);
    shp_config_release(&c);
    yajl_tree_free(cfg);
    yajl_tree_free(spec);
}

static void test_spec_rejects_bad_values(void **state)
{
    static const char *const bad[] = {
        "{\"api_url\":\"https://"
        "x\",\"client_id\":\"c\",\"client_secret\":\"s3cr3t-value\",\"channel\":"
        "\"b\",\"part_max_items\":1001}",
        "{\"api_url\":\"https://"
        "x\",\"client_id\":\"c\",\"client_secret\":\"s3cr3t-value\",\"channel\":"
        "\"b\",\"part_max_bytes\":8388609}",
        "{\"api_url\":\"https://"
        "x\",\"client_id\":\"c\",\"client_secret\":\"s3cr3t-value\",\"channel\":"
        "\"b\",\"label_prefix\":\"has space\"}",
        "{\"api_url\":\"https://x\",\"client_id\":\"c\",\"channel\":\"b\"}",
        "{\"api_url\":\"ftp://"
        "x\",\"client_id\":\"c\",\"client_secret\":\"s3cr3t-value\",\"channel\":\"b\"}",
        "{\"api_url\":\"https://"
        "x\",\"client_id\":\"c\",\"client_secret\":\"s3cr3t-value\",\"channel\":"
        "\"b\",\"stream_mappings\":[{\"stream\":\"p\",\"object\":\"orders\"}]}",
        NULL};
    yajl_val spec = spec_test_build(shp_spec_json);
    yajl_val schema = ab_json_get(spec, "connectionSpecification");
    size_t i;

    (void)state;
    for (i = 0; bad[i]; i++) {
        struct ab_error err = {0};
        yajl_val cfg = parse(bad[i]);

        if (ab_config_validate(cfg, schema, &err) != AB_ERR_CONFIG) {
            fail_msg("config %zu was accepted: %s", i, bad[i]);
        }
        yajl_tree_free(cfg);
    }
    yajl_tree_free(spec);
}

/* ---- identities ------------------------------------------------------------ */

static void test_sha256_known_vector(void **state)
{
    char hex[65];

    (void)state;
    shp_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_label_format_and_limit(void **state)
{
    char label[SHP_LABEL_MAX + 1];
    char longp[300];
    struct ab_error err = {0};

    (void)state;
    assert_int_equal(shp_label(label, sizeof(label), "airbyte-shops", "42", 3, &err), AB_OK);
    assert_string_equal(label, "airbyte-shops:42:3");
    memset(longp, 'x', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    assert_int_equal(shp_label(label, sizeof(label), longp, "42", 1, &err), AB_ERR_CONFIG);
}

static void test_idempotency_key_is_deterministic(void **state)
{
    char a[SHP_KEY_SIZE];
    char b[SHP_KEY_SIZE];
    char c[SHP_KEY_SIZE];
    char d[SHP_KEY_SIZE];
    char e[SHP_KEY_SIZE];
    size_t i;

    (void)state;
    shp_idempotency_key(a, "airbyte-shops", "42", "00aa11bb22cc33dd", 1);
    shp_idempotency_key(b, "airbyte-shops", "42", "00aa11bb22cc33dd", 1);
    shp_idempotency_key(c, "airbyte-shops", "42", "00aa11bb22cc33dd", 2);
    shp_idempotency_key(d, "airbyte-shops", "42", "ffaa11bb22cc33dd", 1);
    shp_idempotency_key(e, "other", "42", "00aa11bb22cc33dd", 1);
    assert_string_equal(a, b);     /* a retried creation returns the same import */
    assert_string_not_equal(a, c); /* the next import of the run */
    assert_string_not_equal(a, d); /* another attempt of the same sync */
    assert_string_not_equal(a, e);
    assert_int_equal(strlen(a), SHP_KEY_SIZE - 1);
    assert_memory_equal(a, "shp-", 4);
    for (i = 4; a[i]; i++) {
        assert_non_null(strchr("0123456789abcdef", a[i]));
    }
    /* "0" vs "\n0": the separator keeps field boundaries apart */
    shp_idempotency_key(c, "a", "b1", "r", 1);
    shp_idempotency_key(d, "a", "b", "1r", 1);
    assert_string_not_equal(c, d);
}

static void test_checkpoint_text_digest_over_64k(void **state)
{
    struct ab_buf out;
    struct ab_error err = {0};
    size_t big = SHP_CHECKPOINT_MAX + 1;
    char *members = malloc(big);

    (void)state;
    assert_non_null(members);
    memset(members, 'a', big);
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    assert_int_equal(shp_checkpoint_text(&out, "\"type\":\"STREAM\"", 15, &err), AB_OK);
    assert_string_equal(out.data, "\"type\":\"STREAM\"");
    assert_int_equal(shp_checkpoint_text(&out, members, SHP_CHECKPOINT_MAX, &err), AB_OK);
    assert_int_equal(out.len, SHP_CHECKPOINT_MAX); /* exactly 64 KiB still fits */
    assert_int_equal(shp_checkpoint_text(&out, members, big, &err), AB_OK);
    assert_int_equal(out.len, 7 + 64);
    assert_memory_equal(out.data, "sha256:", 7);
    ab_buf_release(&out);
    free(members);
}

static void test_url_and_form_encoding(void **state)
{
    struct ab_buf b;
    struct ab_error err = {0};

    (void)state;
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    assert_int_equal(shp_url_escape(&b, "store br/1:x~_.-", &err), AB_OK);
    assert_string_equal(b.data, "store%20br%2F1%3Ax~_.-");
    ab_buf_reset(&b);
    assert_int_equal(shp_form_add(&b, "grant_type", "client_credentials", &err), AB_OK);
    assert_int_equal(shp_form_add(&b, "client_secret", "a b&c=d+é", &err), AB_OK);
    assert_string_equal(b.data, "grant_type=client_credentials&client_secret=a+b%26c%3Dd%2B%C3%A9");
    ab_buf_release(&b);
}

static void test_error_code_shapes(void **state)
{
    yajl_val a = parse("{\"error\":{\"code\":\"token_expired\",\"message\":\"x\"}}");
    yajl_val b = parse("{\"error\":\"invalid_client\"}");
    yajl_val c = parse("{\"ok\":true}");

    (void)state;
    assert_string_equal(shp_error_code(a), "token_expired");
    assert_string_equal(shp_error_code(b), "invalid_client");
    assert_string_equal(shp_error_code(c), "");
    assert_string_equal(shp_error_code(NULL), "");
    yajl_tree_free(a);
    yajl_tree_free(b);
    yajl_tree_free(c);
}

/* ---- parts ----------------------------------------------------------------- */

static void test_record_header_round_trip(void **state)
{
    unsigned char h[SHP_REC_HEADER];
    struct shp_rec_meta in = {
        .stream = 70000, .seq = 0x0123456789ABCDEFULL, .lineno = 42, .item_len = 8388608};
    struct shp_rec_meta out;

    (void)state;
    shp_rec_header_encode(h, &in);
    shp_rec_header_decode(h, &out);
    assert_int_equal(out.stream, in.stream);
    assert_true(out.seq == in.seq);
    assert_true(out.lineno == in.lineno);
    assert_int_equal(out.item_len, in.item_len);
}

/* Splits items of the given sizes into parts; returns the number of parts
 * and their item counts in counts[]; checks each body against its count. */
static size_t split(const size_t *sizes, size_t n, const struct shp_part_limits *lim,
                    size_t *counts)
{
    struct shp_part_acc acc;
    struct ab_buf body;
    struct ab_error err = {0};
    size_t parts = 0;
    size_t i;
    size_t start = 0;
    char *item = malloc(lim->max_bytes + 1);

    assert_non_null(item);
    ab_buf_init(&body, AB_BUF_UNBOUNDED);
    shp_part_acc_init(&acc, "products");
    for (i = 0; i <= n; i++) {
        if (i == n || !shp_part_fits(&acc, sizes[i], lim)) {
            size_t k;

            if (acc.count == 0) {
                break;
            }
            /* the body of the closed part is exactly as counted */
            assert_int_equal(shp_part_body_begin(&body, "products", &err), AB_OK);
            for (k = start; k < i; k++) {
                memset(item, 'x', sizes[k]);
                item[0] = '"';
                item[sizes[k] - 1] = '"';
                assert_int_equal(shp_part_body_add(&body, k == start, item, sizes[k], &err), AB_OK);
            }
            assert_int_equal(shp_part_body_end(&body, &err), AB_OK);
            assert_int_equal(body.len, acc.bytes);
            assert_true(body.len <= lim->max_bytes);
            assert_true(acc.count <= lim->max_items);
            counts[parts++] = acc.count;
            start = i;
            shp_part_acc_init(&acc, "products");
            if (i == n) {
                break;
            }
        }
        assert_true(shp_part_fits(&acc, sizes[i], lim));
        shp_part_acc_add(&acc, sizes[i]);
    }
    ab_buf_release(&body);
    free(item);
    return parts;
}

static void test_parts_split_by_items(void **state)
{
    static size_t sizes[2500];
    size_t counts[10];
    struct shp_part_limits lim = {.max_items = 1000, .max_bytes = 8388608};
    size_t i;

    (void)state;
    for (i = 0; i < 2500; i++) {
        sizes[i] = 10;
    }
    assert_int_equal(split(sizes, 2500, &lim, counts), 3);
    assert_int_equal(counts[0], 1000);
    assert_int_equal(counts[1], 1000);
    assert_int_equal(counts[2], 500);
}

static void test_parts_split_by_bytes(void **state)
{
    size_t sizes[7] = {400, 400, 400, 100, 900, 100, 10};
    size_t counts[7];
    size_t over = shp_part_overhead("products");
    struct shp_part_limits lim = {.max_items = 1000, .max_bytes = 1024};

    (void)state;
    /* 400+1+400 fits with the overhead; a third 400 would not */
    assert_int_equal(split(sizes, 7, &lim, counts), 4);
    assert_int_equal(counts[0], 2);
    assert_int_equal(counts[1], 2); /* 400 + 100 */
    assert_int_equal(counts[2], 1); /* 900 */
    assert_int_equal(counts[3], 2);
    assert_true(over + 900 <= 1024);
}

static void test_parts_exact_fit_boundary(void **state)
{
    struct shp_part_limits lim = {.max_items = 1000, .max_bytes = 1024};
    size_t over = shp_part_overhead("inventory");
    struct shp_part_acc acc;

    (void)state;
    assert_int_equal(over, strlen("{\"object\":\"inventory\",\"items\":[]}"));
    assert_true(shp_item_fits_alone("inventory", 1024 - over, &lim));
    assert_false(shp_item_fits_alone("inventory", 1024 - over + 1, &lim));
    shp_part_acc_init(&acc, "inventory");
    shp_part_acc_add(&acc, 100);
    /* the comma counts: exactly up to the limit, not one byte more */
    assert_true(shp_part_fits(&acc, 1024 - over - 100 - 1, &lim));
    assert_false(shp_part_fits(&acc, 1024 - over - 100, &lim));
}

/* The search of a part refused as a whole against a target that refuses
 * any subset holding one of bad[] (records of a part of count). Returns the
 * subsets uploaded; every bad record must end up left out, and only those. */
static unsigned search_part(uint32_t count, const bool *bad)
{
    struct shp_leftout l = {0};
    struct shp_probe p;
    struct ab_error err;
    enum shp_probe_step step;
    uint32_t k = 0;
    unsigned sent = 0;

    ab_error_init(&err);
    shp_probe_start(&p, count);
    while ((step = shp_probe_next(&p, &l, &k)) != SHP_PROBE_DONE) {
        if (step == SHP_PROBE_ISOLATED) {
            assert_true(k < count);
            assert_true(bad[k]);
            assert_false(shp_leftout_has(&l, k));
            assert_int_equal(shp_leftout_add(&l, k, &err), AB_OK);
            continue;
        }
        {
            bool refused = false;
            uint32_t live = 0;

            for (uint32_t i = 0; i < count; i++) {
                if (shp_probe_includes(&p, i) && !shp_leftout_has(&l, i)) {
                    refused |= bad[i];
                    live++;
                }
            }
            assert_true(live > 0);
            assert_true(live < count || l.n > 0); /* never the refused whole again */
            sent++;
            shp_probe_answer(&p, refused);
        }
    }
    for (uint32_t i = 0; i < count; i++) {
        assert_int_equal(shp_leftout_has(&l, i), bad[i]);
    }
    assert_int_equal(shp_live_in(&l, 0, count), count - l.n);
    shp_leftout_release(&l);
    return sent;
}

static void test_part_search_finds_refused_items(void **state)
{
    bool bad[40];
    uint32_t count;

    (void)state;
    for (count = 1; count <= 40; count++) {
        for (uint32_t a = 0; a < count; a++) {
            for (uint32_t b = a; b < count; b++) {
                unsigned sent;

                memset(bad, 0, sizeof(bad));
                bad[a] = true;
                bad[b] = true;
                sent = search_part(count, bad);
                /* about two uploads per halving per refused item */
                assert_true(sent <= 4U * 7U);
            }
        }
        memset(bad, 1, sizeof(bad));
        (void)search_part(count, bad); /* every item refused */
    }
    /* one refused item among 1000: about log2(1000) subsets */
    {
        static bool big[1000];

        big[613] = true;
        assert_true(search_part(1000, big) <= 20);
    }
}

static void test_left_out_positions(void **state)
{
    struct shp_leftout l = {0};
    struct ab_error err;

    (void)state;
    ab_error_init(&err);
    assert_int_equal(shp_live_nth(&l, 3, 10), 3);
    assert_int_equal(shp_leftout_add(&l, 5, &err), AB_OK);
    assert_int_equal(shp_leftout_add(&l, 1, &err), AB_OK);
    assert_int_equal(shp_leftout_add(&l, 2, &err), AB_OK);
    assert_int_equal(shp_leftout_add(&l, 5, &err), AB_OK); /* twice: once */
    assert_int_equal(l.n, 3);
    /* the target's indexes 0, 1, 2, 3 are records 0, 3, 4, 6 */
    assert_int_equal(shp_live_nth(&l, 0, 10), 0);
    assert_int_equal(shp_live_nth(&l, 1, 10), 3);
    assert_int_equal(shp_live_nth(&l, 2, 10), 4);
    assert_int_equal(shp_live_nth(&l, 3, 10), 6);
    assert_int_equal(shp_live_nth(&l, 6, 10), 9);
    assert_int_equal(shp_live_nth(&l, 7, 10), UINT32_MAX);
    assert_int_equal(shp_live_in(&l, 0, 10), 7);
    assert_int_equal(shp_live_in(&l, 1, 3), 0);
    assert_int_equal(shp_live_in(&l, 2, 6), 2);
    shp_leftout_release(&l);
}

static void test_part_refused_whole(void **state)
{
    (void)state;
    assert_true(shp_part_refused_whole(400, false, "invalid_json", 10));
    assert_true(shp_part_refused_whole(400, false, "invalid_encoding", 10));
    assert_false(shp_part_refused_whole(400, false, "invalid_request", 10));
    assert_false(shp_part_refused_whole(400, false, "", 10));
    assert_false(shp_part_refused_whole(400, true, "invalid_json", 10));
    /* a size limit lower than the contract's: only an item alone is the item's fault */
    assert_true(shp_part_refused_whole(413, false, "part_too_large", 1));
    assert_false(shp_part_refused_whole(413, false, "part_too_large", 2));
    assert_false(shp_part_refused_whole(422, false, "invalid_json", 1));
    assert_false(shp_part_refused_whole(200, false, "", 1));
}

static void test_parts_split_by_item_count_limit(void **state)
{
    struct shp_part_limits lim = {.max_items = 3, .max_bytes = 8388608};
    size_t sizes[7] = {5, 5, 5, 5, 5, 5, 5};
    size_t counts[7];

    (void)state;
    assert_int_equal(split(sizes, 7, &lim, counts), 3);
    assert_int_equal(counts[0], 3);
    assert_int_equal(counts[1], 3);
    assert_int_equal(counts[2], 1);
}

/* ---- decisions ------------------------------------------------------------- */

static void test_in_doubt_decision_table(void **state)
{
    static const struct {
        const char *status;
        enum shp_next next;
    } rows[] = {
        {"committed", SHP_NEXT_FETCH_RESULT},
        {"open", SHP_NEXT_COMMIT},
        {"committing", SHP_NEXT_WAIT},
        {"expired", SHP_NEXT_RECREATE},
        {"aborted", SHP_NEXT_RECREATE},
        {"weird", SHP_NEXT_FAIL},
        {"", SHP_NEXT_FAIL},
        {NULL, SHP_NEXT_FAIL},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (shp_resolve_decide(rows[i].status) != rows[i].next) {
            fail_msg("status '%s': got '%s'", rows[i].status ? rows[i].status : "(null)",
                     shp_next_name(shp_resolve_decide(rows[i].status)));
        }
    }
}

static void test_commit_answer_decision_table(void **state)
{
    static const struct {
        int status;
        bool transient;
        const char *code;
        enum shp_next next;
    } rows[] = {
        {200, false, "", SHP_NEXT_DONE},
        {0, true, "", SHP_NEXT_RESOLVE},   /* in doubt, reset, timeout */
        {0, false, "", SHP_NEXT_FAIL},     /* local: no token, bad CA */
        {500, true, "", SHP_NEXT_RESOLVE}, /* 5xx after the retries */
        {503, true, "", SHP_NEXT_RESOLVE},
        {429, true, "", SHP_NEXT_RESOLVE},
        {408, true, "", SHP_NEXT_RESOLVE},
        {409, false, "import_committing", SHP_NEXT_RESOLVE},
        {409, false, "parts_missing", SHP_NEXT_UPLOAD_MISSING},
        {409, false, "parts_unexpected", SHP_NEXT_FAIL},
        {410, false, "import_expired", SHP_NEXT_RECREATE},
        {410, false, "import_aborted", SHP_NEXT_RECREATE},
        {413, false, "checkpoint_too_large", SHP_NEXT_FAIL},
        {404, false, "not_found", SHP_NEXT_FAIL},
        {401, false, "unauthorized", SHP_NEXT_FAIL},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        enum shp_next got = shp_commit_decide(rows[i].status, rows[i].transient, rows[i].code);

        if (got != rows[i].next) {
            fail_msg("HTTP %d %s: got '%s', want '%s'", rows[i].status, rows[i].code,
                     shp_next_name(got), shp_next_name(rows[i].next));
        }
    }
    assert_int_equal(shp_commit_decide(409, false, NULL), SHP_NEXT_FAIL);
}

static void test_wait_backoff(void **state)
{
    (void)state;
    assert_int_equal(shp_wait_ms(1, -1), 1000);
    assert_int_equal(shp_wait_ms(2, -1), 2000);
    assert_int_equal(shp_wait_ms(3, -1), 4000);
    assert_int_equal(shp_wait_ms(10, -1), 30000);
    assert_int_equal(shp_wait_ms(1, 5000), 5000);       /* Retry-After wins when longer */
    assert_int_equal(shp_wait_ms(1, 10000000), 300000); /* capped */
}

struct deactivate_case {
    bool product;
    const char *deleted_at;
    const char *item;
    const char *expect;
};

static void test_deactivate_deleted_items(void **state)
{
    static const struct deactivate_case cases[] = {
        {true, "2026-02-01T00:00:00Z",
         "{\"sku\":\"P1\",\"active\":true,\"title\":\"T\",\"updated_at\":\"2026-01-01T00:00:00Z\"}",
         "{\"sku\":\"P1\",\"title\":\"T\",\"updated_at\":\"2026-02-01T00:00:00Z\",\"active\":"
         "false}"},
        {false, "2026-02-01T00:00:00Z",
         "{\"sku\":\"P1\",\"location\":\"l\",\"quantity\":7,\"updated_at\":\"x\"}",
         "{\"sku\":\"P1\",\"location\":\"l\",\"updated_at\":\"2026-02-01T00:00:00Z\","
         "\"quantity\":0}"},
        /* no deletion time as text: updated_at stays */
        {false, NULL, "{\"sku\":\"P1\",\"updated_at\":\"u\"}",
         "{\"sku\":\"P1\",\"updated_at\":\"u\",\"quantity\":0}"},
    };
    struct ab_error err;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ab_buf item;

        ab_buf_init(&item, AB_BUF_UNBOUNDED);
        assert_int_equal(ab_buf_adds(&item, cases[i].item, &err), AB_OK);
        assert_int_equal(shp_deactivate_item(cases[i].product, cases[i].deleted_at, &item, &err),
                         AB_OK);
        assert_string_equal(item.data, cases[i].expect);
        ab_buf_release(&item);
    }
}

/* ---- state machines ---------------------------------------------------------- */

static void test_import_transition_table(void **state)
{
    (void)state;
    /* The normal life of an import. */
    assert_true(shp_imp_transition_ok(SHP_IMP_NEW, SHP_IMP_CREATING));
    assert_true(shp_imp_transition_ok(SHP_IMP_CREATING, SHP_IMP_OPEN));
    assert_true(shp_imp_transition_ok(SHP_IMP_OPEN, SHP_IMP_COMMITTING));
    assert_true(shp_imp_transition_ok(SHP_IMP_COMMITTING, SHP_IMP_COMMITTED));
    /* In doubt, waiting, re-creation. */
    assert_true(shp_imp_transition_ok(SHP_IMP_COMMITTING, SHP_IMP_RESOLVING));
    assert_true(shp_imp_transition_ok(SHP_IMP_RESOLVING, SHP_IMP_WAIT));
    assert_true(shp_imp_transition_ok(SHP_IMP_WAIT, SHP_IMP_RESOLVING));
    assert_true(shp_imp_transition_ok(SHP_IMP_RESOLVING, SHP_IMP_COMMITTING));
    assert_true(shp_imp_transition_ok(SHP_IMP_COMMITTING, SHP_IMP_OPEN));
    assert_true(shp_imp_transition_ok(SHP_IMP_OPEN, SHP_IMP_NEW));
    /* Illegal: skipping the creation or the commit, leaving COMMITTED. */
    assert_false(shp_imp_transition_ok(SHP_IMP_NEW, SHP_IMP_OPEN));
    assert_false(shp_imp_transition_ok(SHP_IMP_NEW, SHP_IMP_COMMITTED));
    assert_false(shp_imp_transition_ok(SHP_IMP_OPEN, SHP_IMP_COMMITTED));
    assert_false(shp_imp_transition_ok(SHP_IMP_CREATING, SHP_IMP_COMMITTING));
    assert_false(shp_imp_transition_ok(SHP_IMP_WAIT, SHP_IMP_COMMITTED));
    assert_false(shp_imp_transition_ok(SHP_IMP_NEW, SHP_IMP_NEW));
    for (int to = SHP_IMP_NEW; to <= SHP_IMP_COMMITTED; to++) {
        assert_false(shp_imp_transition_ok(SHP_IMP_COMMITTED, (enum shp_imp_state)to));
    }
    assert_false(shp_imp_transition_ok((enum shp_imp_state)99, SHP_IMP_NEW));
    /* Parts. */
    assert_true(shp_part_transition_ok(SHP_PART_OPEN, SHP_PART_READY));
    assert_true(shp_part_transition_ok(SHP_PART_READY, SHP_PART_UPLOADING));
    assert_true(shp_part_transition_ok(SHP_PART_UPLOADING, SHP_PART_UPLOADED));
    assert_true(shp_part_transition_ok(SHP_PART_UPLOADED, SHP_PART_READY));
    assert_false(shp_part_transition_ok(SHP_PART_OPEN, SHP_PART_UPLOADED));
    assert_false(shp_part_transition_ok(SHP_PART_READY, SHP_PART_UPLOADED));
    assert_false(shp_part_transition_ok(SHP_PART_UPLOADED, SHP_PART_OPEN));
}

/* Runs shp_imp_set_state(from -> to) in a child; returns its wait status and
 * what it wrote to stderr. */
static int set_state_in_child(enum shp_imp_state from, enum shp_imp_state to, char *out,
                              size_t size)
{
    int fds[2];
    pid_t pid;
    int status = 0;
    size_t n = 0;
    ssize_t k;

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct shp_import imp;

        (void)dup2(fds[1], STDERR_FILENO);
        (void)close(fds[0]);
        memset(&imp, 0, sizeof(imp));
        imp.serial = 7;
        imp.state = from;
        shp_imp_set_state(NULL, &imp, to, "unit test");
        _exit(imp.state == to ? 0 : 3);
    }
    (void)close(fds[1]);
    while (n + 1 < size && (k = read(fds[0], out + n, size - 1 - n)) > 0) {
        n += (size_t)k;
    }
    out[n] = '\0';
    (void)close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void test_illegal_transition_caught(void **state)
{
    char err[1024];
    int st;

    (void)state;
    /* A legal transition passes in every build. */
    st = set_state_in_child(SHP_IMP_OPEN, SHP_IMP_COMMITTING, err, sizeof(err));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(err, "");
    /* COMMITTED -> OPEN: aborts with a message naming both states in Debug
     * and sanitizer builds; compiled out of release builds. */
    st = set_state_in_child(SHP_IMP_COMMITTED, SHP_IMP_OPEN, err, sizeof(err));
    if (AB_ASSERTIONS_ON) {
        assert_true(WIFSIGNALED(st));
        assert_int_equal(WTERMSIG(st), SIGABRT);
        assert_non_null(strstr(err, "illegal state transition committed -> open (unit test)"));
        assert_non_null(strstr(err, "import.c:"));
        assert_non_null(strstr(err, "assertion failed: shp_imp_transition_ok(imp->state, to)"));
    } else {
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
        assert_string_equal(err, "");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_is_valid_json_with_modes),
        cmocka_unit_test(test_spec_declares_every_field_read),
        cmocka_unit_test(test_spec_defaults_fill_a_minimal_config),
        cmocka_unit_test(test_spec_rejects_bad_values),
        cmocka_unit_test(test_sha256_known_vector),
        cmocka_unit_test(test_label_format_and_limit),
        cmocka_unit_test(test_idempotency_key_is_deterministic),
        cmocka_unit_test(test_checkpoint_text_digest_over_64k),
        cmocka_unit_test(test_url_and_form_encoding),
        cmocka_unit_test(test_error_code_shapes),
        cmocka_unit_test(test_record_header_round_trip),
        cmocka_unit_test(test_parts_split_by_items),
        cmocka_unit_test(test_parts_split_by_bytes),
        cmocka_unit_test(test_parts_exact_fit_boundary),
        cmocka_unit_test(test_parts_split_by_item_count_limit),
        cmocka_unit_test(test_part_search_finds_refused_items),
        cmocka_unit_test(test_left_out_positions),
        cmocka_unit_test(test_part_refused_whole),
        cmocka_unit_test(test_in_doubt_decision_table),
        cmocka_unit_test(test_commit_answer_decision_table),
        cmocka_unit_test(test_wait_backoff),
        cmocka_unit_test(test_deactivate_deleted_items),
        cmocka_unit_test(test_import_transition_table),
        cmocka_unit_test(test_illegal_transition_caught),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
