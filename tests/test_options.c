/* test_options.c - common option groups, spec building and linting, getters. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/http.h"
#include "ab/options.h"
#include "ab/protocol.h"

#include "ab_spec_test.h"

/* A connector spec whose own options are a and b, taking the groups in
 * include (a JSON array) and the overrides in defaults (a JSON object). */
static char *connector(const char *include, const char *defaults, const char *extra_props)
{
    static char text[4096];

    (void)snprintf(
        text, sizeof(text),
        "{\"x-ab-options\":{\"include\":%s,\"defaults\":%s},"
        "\"connectionSpecification\":{\"type\":\"object\",\"required\":[\"a\"],"
        "\"groups\":[{\"id\":\"main\",\"title\":\"Main\"}],\"properties\":{"
        "\"a\":{\"type\":\"string\",\"title\":\"A\",\"description\":\"The a.\",\"group\":\"main\","
        "\"order\":0},"
        "\"b\":{\"type\":\"integer\",\"title\":\"B\",\"description\":\"The b.\",\"default\":3,"
        "\"group\":\"main\",\"order\":1}%s}}}",
        include, defaults, extra_props);
    return text;
}

static enum ab_status build(const char *text, yajl_val *spec, struct ab_error *err)
{
    ab_error_init(err);
    return ab_spec_build(text, spec, err);
}

static void assert_build_fails(const char *text, const char *needle)
{
    struct ab_error err;
    yajl_val spec = (yajl_val)1;

    assert_int_equal(build(text, &spec, &err), AB_ERR_INTERNAL);
    assert_null(spec);
    if (!strstr(err.message, needle)) {
        fail_msg("error '%s' does not say '%s'", err.message, needle);
    }
}

static size_t nprops(yajl_val spec)
{
    return ab_json_get_dotted(spec, "connectionSpecification.properties")->u.object.len;
}

/* ---- the group files ------------------------------------------------------ */

/* Each group builds on its own and lints clean: every property has a type,
 * title and description, every default validates, orders are unique. */
static void test_each_group_works_alone(void **state)
{
    static const char *const only[][2] = {
        {"[\"core\"]", "log_level"},
        {"[\"destination\"]", "rejected_records"},
        {"[\"http\"]", "max_in_flight"},
    };
    static const char *const absent[][2] = {
        {"[\"core\"]", "max_in_flight"},
        {"[\"destination\"]", "log_level"},
        {"[\"http\"]", "dead_letter_path"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < 3; i++) {
        yajl_val spec = spec_test_build(connector(only[i][0], "{}", ""));

        assert_non_null(spec_test_prop(spec, only[i][1]));
        assert_null(spec_test_prop(spec, absent[i][1]));
        assert_null(ab_json_get(spec, "x-ab-options"));
        yajl_tree_free(spec);
    }
}

static void test_all_groups_merge_without_clashes(void **state)
{
    yajl_val spec = spec_test_build(connector("[\"core\",\"destination\",\"http\"]", "{}", ""));
    yajl_val groups = ab_json_get_dotted(spec, "connectionSpecification.groups");
    size_t g;
    size_t n = 0;

    (void)state;
    for (g = 0; ab_option_groups[g]; g++) {
        struct ab_error err = {0};
        const char *text = ab_option_group_json(ab_option_groups[g]);
        yajl_val v = ab_json_parse(text, strlen(text), &err);

        if (!v) {
            fail_msg("common/spec/options-%s.json: %s", ab_option_groups[g], err.message);
        }
        n += ab_json_get(v, "properties")->u.object.len;
        yajl_tree_free(v);
    }
    assert_int_equal(nprops(spec), 2 + n);
    /* the UI groups the common options use were added after the connector's */
    assert_int_equal(groups->u.array.len, 3);
    assert_string_equal(ab_json_get_str(groups->u.array.values[0], "id", ""), "main");
    assert_null(ab_option_group_json("nope"));
    yajl_tree_free(spec);
}

/* The library's own HTTP defaults (for callers without a config) are the
 * declared ones of the http group. */
static void test_http_library_defaults_match_declarations(void **state)
{
    yajl_val spec = spec_test_build(connector("[\"http\"]", "{}", ""));
    struct ab_http_opts o;

    (void)state;
    ab_http_opts_init(&o);
    SPEC_TEST_EQ("max_in_flight", o.max_in_flight, spec_test_default_num(spec, "max_in_flight"));
    SPEC_TEST_EQ("requests_per_second", o.requests_per_second,
                 spec_test_default_num(spec, "requests_per_second"));
    SPEC_TEST_EQ("burst", o.burst, spec_test_default_num(spec, "burst"));
    SPEC_TEST_EQ("connect_timeout_ms", o.connect_timeout_ms,
                 spec_test_default_num(spec, "connect_timeout_seconds") * 1e3);
    SPEC_TEST_EQ("request_timeout_ms", o.request_timeout_ms,
                 spec_test_default_num(spec, "request_timeout_seconds") * 1e3);
    SPEC_TEST_EQ("max_retries", o.max_retries, spec_test_default_num(spec, "max_retries"));
    yajl_tree_free(spec);
}

/* The driver's options, from a config with the required values only. */
static void test_driver_options_are_the_declared_defaults(void **state)
{
    yajl_val spec = spec_test_build(connector("[\"core\",\"destination\",\"http\"]", "{}", ""));
    yajl_val cfg = spec_test_config(spec, "{\"a\":\"x\"}");
    struct ab_core_opts core;
    struct ab_destination_opts dest;

    (void)state;
    spec_test_driver_defaults(spec, cfg);
    /* and the values themselves, as the README documents them */
    ab_opts_core(cfg, &core);
    ab_opts_destination(cfg, &dest);
    assert_int_equal(core.log_level, AB_LOG_INFO);
    assert_int_equal(core.progress_every_us, 30 * 1000000LL);
    assert_null(dest.dead_letter_path);
    assert_false(dest.storage_set);
    assert_int_equal(dest.storage, AB_DL_FILE);
    assert_null(dest.local_path);
    assert_false(dest.fail_on_reject);
    assert_int_equal(dest.max_line_bytes, 64 * 1024 * 1024);
    assert_int_equal(dest.max_wait_us, 600 * 1000000LL);
    yajl_tree_free(cfg);
    yajl_tree_free(spec);
}

static void test_values_given_win_over_defaults(void **state)
{
    yajl_val spec = spec_test_build(connector("[\"core\",\"destination\",\"http\"]", "{}", ""));
    yajl_val cfg = spec_test_config(
        spec, "{\"a\":\"x\",\"log_level\":\"ERROR\",\"rejected_records\":\"fail\","
              "\"connect_timeout_seconds\":0.5,\"max_retries\":0,\"ca_path\":\"/etc/ca.pem\","
              "\"gzip\":false,\"progress_interval_seconds\":2}");
    struct ab_core_opts core;
    struct ab_destination_opts dest;
    struct ab_http_opts o;

    (void)state;
    ab_opts_core(cfg, &core);
    ab_opts_destination(cfg, &dest);
    ab_opts_http(cfg, &o);
    assert_int_equal(core.log_level, AB_LOG_ERROR);
    assert_int_equal(core.progress_every_us, 2000000);
    assert_true(dest.fail_on_reject);
    assert_int_equal(o.connect_timeout_ms, 500);
    assert_int_equal(o.max_retries, 0);
    assert_string_equal(o.ca_path, "/etc/ca.pem");
    assert_false(ab_opt_bool(cfg, "gzip"));
    yajl_tree_free(cfg);
    yajl_tree_free(spec);
}

/* ---- overrides -------------------------------------------------------------- */

static void test_connector_overrides_a_common_default(void **state)
{
    yajl_val spec = spec_test_build(connector(
        "[\"http\"]", "{\"requests_per_second\":10,\"request_timeout_seconds\":120}", ""));
    yajl_val cfg = spec_test_config(spec, "{\"a\":\"x\"}");
    struct ab_http_opts o;
    yajl_val common;
    struct ab_error err = {0};
    const char *text = ab_option_group_json("http");

    (void)state;
    assert_true(spec_test_default_num(spec, "requests_per_second") > 9.99);
    ab_opts_http(cfg, &o);
    assert_int_equal(o.request_timeout_ms, 120000);
    assert_true(o.requests_per_second > 9.99 && o.requests_per_second < 10.01);
    /* the override changed this connector's spec only */
    common = ab_json_parse(text, strlen(text), &err);
    assert_non_null(common);
    assert_int_equal(ab_json_get_int(ab_json_get_dotted(common, "properties.requests_per_second"),
                                     "default", -1),
                     0);
    yajl_tree_free(common);
    yajl_tree_free(cfg);
    yajl_tree_free(spec);
}

/* ---- connector bugs the build refuses ------------------------------------- */

static void test_redeclaring_a_common_option_fails(void **state)
{
    static const char gzip[] = ",\"gzip\":{\"type\":\"boolean\",\"title\":\"G\","
                               "\"description\":\"g\",\"default\":true}";

    (void)state;
    assert_build_fails(connector("[\"core\",\"http\"]", "{}", gzip), "declares 'gzip'");
    assert_build_fails(connector("[\"core\",\"http\"]", "{}", gzip), "group 'http'");
    /* also when the group that declares it is not included */
    assert_build_fails(connector("[\"core\"]", "{}", gzip), "group 'http'");
    assert_build_fails(connector("[\"core\"]", "{}",
                                 ",\"log_level\":{\"type\":\"string\",\"title\":\"L\","
                                 "\"description\":\"l\"}"),
                       "declares 'log_level'");
}

static void test_bad_x_ab_options_fail(void **state)
{
    (void)state;
    assert_build_fails(connector("[\"core\",\"sink\"]", "{}", ""), "unknown option group 'sink'");
    assert_build_fails(connector("[\"core\",\"core\"]", "{}", ""), "listed twice");
    assert_build_fails(connector("\"core\"", "{}", ""), "must be an array");
    /* an override of an option no included group declares */
    assert_build_fails(connector("[\"core\"]", "{\"burst\":3}", ""), "defaults.burst");
    assert_build_fails(connector("[\"core\"]", "{\"b\":4}", ""), "defaults.b");
    /* an override its option's own schema refuses */
    assert_build_fails(connector("[\"http\"]", "{\"max_retries\":99}", ""),
                       "defaults.max_retries: config is invalid: config: must be <= 20");
    assert_build_fails(connector("[\"http\"]", "{\"gzip\":\"yes\"}", ""), "must be a boolean");
    assert_build_fails("{\"x-ab-options\":{\"includes\":[]},\"connectionSpecification\":"
                       "{\"properties\":{}}}",
                       "x-ab-options.includes: unknown member");
}

/* A spec file that does not parse fails with a message that says so. */
static void test_invalid_spec_json_fails_clearly(void **state)
{
    (void)state;
    assert_build_fails("{\"connectionSpecification\": {\"properties\": {}},}",
                       "the connector's spec is not valid JSON");
    assert_build_fails("[1]", "not a JSON object");
    assert_build_fails("{\"x\":1}", "no connectionSpecification.properties");
    assert_build_fails("", "not valid JSON");
}

/* A spec without x-ab-options is taken as it is. */
static void test_no_includes(void **state)
{
    struct ab_error err;
    yajl_val spec = NULL;

    (void)state;
    assert_int_equal(
        build("{\"connectionSpecification\":{\"properties\":{\"a\":{}}}}", &spec, &err), AB_OK);
    assert_int_equal(nprops(spec), 1);
    yajl_tree_free(spec);
}

/* ---- lint ------------------------------------------------------------------- */

static void assert_lint_fails(const char *extra_props, const char *needle)
{
    struct ab_error err;
    yajl_val spec = NULL;

    assert_int_equal(build(connector("[\"core\"]", "{}", extra_props), &spec, &err), AB_OK);
    assert_int_equal(ab_spec_lint(spec, &err), AB_ERR_INTERNAL);
    if (!strstr(err.message, needle)) {
        fail_msg("lint '%s' does not say '%s'", err.message, needle);
    }
    yajl_tree_free(spec);
}

static void test_lint_catches_incomplete_declarations(void **state)
{
    (void)state;
    assert_lint_fails(",\"c\":{\"type\":\"string\",\"description\":\"d\",\"group\":\"main\","
                      "\"order\":2}",
                      "c: has no title");
    assert_lint_fails(",\"c\":{\"type\":\"string\",\"title\":\"C\",\"group\":\"main\",\"order\":2}",
                      "c: has no description");
    assert_lint_fails(",\"c\":{\"title\":\"C\",\"description\":\"d\",\"group\":\"main\","
                      "\"order\":2}",
                      "c: has no type");
    assert_lint_fails(",\"c\":{\"type\":\"string\",\"title\":\"C\",\"description\":\"d\","
                      "\"pattern\":\"^x$\",\"group\":\"main\",\"order\":2}",
                      "c: has a pattern but no pattern_descriptor");
    assert_lint_fails(",\"c\":{\"type\":\"string\",\"title\":\"C\",\"description\":\"d\","
                      "\"airbyte_secret\":true,\"minLength\":3,\"group\":\"main\",\"order\":2}",
                      "c: is a secret without minLength >= 4");
    /* nested: array items and their properties */
    assert_lint_fails(",\"c\":{\"type\":\"array\",\"title\":\"C\",\"description\":\"d\","
                      "\"group\":\"main\",\"order\":2,\"items\":{\"type\":\"object\",\"title\":"
                      "\"I\",\"description\":\"i\",\"properties\":{\"s\":{\"type\":\"string\","
                      "\"title\":\"S\"}}}}",
                      "c[].s: has no description");
    assert_lint_fails(",\"c\":{\"type\":\"string\",\"title\":\"C\",\"description\":\"d\","
                      "\"group\":\"main\",\"order\":1}",
                      "c: has the same order as another property of its group");
    assert_lint_fails(",\"c\":{\"type\":\"string\",\"title\":\"C\",\"description\":\"d\","
                      "\"group\":\"extra\",\"order\":2}",
                      "c: names a group that connectionSpecification.groups lacks");
    assert_lint_fails(",\"c\":{\"type\":\"integer\",\"title\":\"C\",\"description\":\"d\","
                      "\"group\":\"main\",\"order\":2,\"maximum\":5,\"default\":6}",
                      "c: has a default its own schema rejects");
}

/* ---- getters ---------------------------------------------------------------- */

static void test_getters_have_no_fallback(void **state)
{
    struct ab_error err = {0};
    static const char text[] = "{\"i\":7,\"d\":0.25,\"s\":\"x\",\"t\":true,\"f\":false}";
    yajl_val cfg = ab_json_parse(text, strlen(text), &err);

    (void)state;
    assert_int_equal(ab_opt_int(cfg, "i"), 7);
    assert_true(ab_opt_double(cfg, "d") > 0.24 && ab_opt_double(cfg, "d") < 0.26);
    assert_true(ab_opt_double(cfg, "i") > 6.99 && ab_opt_double(cfg, "i") < 7.01);
    assert_string_equal(ab_opt_str(cfg, "s"), "x");
    assert_true(ab_opt_bool(cfg, "t"));
    assert_false(ab_opt_bool(cfg, "f"));
    /* absent: an optional string without default is NULL; the rest read 0 */
    assert_null(ab_opt_str(cfg, "none"));
    assert_int_equal(ab_opt_int(cfg, "none"), 0);
    assert_false(ab_opt_bool(cfg, "none"));
    assert_null(ab_opt_str(cfg, "i"));
    yajl_tree_free(cfg);
}

/* protocol_version comes from the core; a relative documentationUrl is made
 * absolute with the repository's address. */
static void test_spec_meta(void **state)
{
    struct ab_error err;
    yajl_val spec = NULL;
    char text[8192];
    const char *doc;

    (void)state;
    assert_int_equal(build(connector("[]", "{}", ""), &spec, &err), AB_OK);
    assert_string_equal(ab_json_get_str(spec, "protocol_version", ""), AB_PROTOCOL_VERSION);
    assert_string_equal(AB_PROTOCOL_VERSION, "0.18.0");
    assert_null(ab_json_get(spec, "documentationUrl"));
    yajl_tree_free(spec);

    (void)snprintf(text, sizeof(text),
                   "{\"documentationUrl\":\"destinations/x/README.md#setup\",%s",
                   connector("[]", "{}", "") + 1);
    assert_int_equal(build(text, &spec, &err), AB_OK);
    doc = ab_json_get_str(spec, "documentationUrl", "");
    assert_true(strncmp(doc, "http", 4) == 0);
    assert_non_null(strstr(doc, "/blob/"));
    assert_string_equal(doc + strlen(doc) - strlen("/destinations/x/README.md#setup"),
                        "/destinations/x/README.md#setup");
    yajl_tree_free(spec);

    (void)snprintf(text, sizeof(text), "{\"documentationUrl\":\"https://docs.example/x\",%s",
                   connector("[]", "{}", "") + 1);
    assert_int_equal(build(text, &spec, &err), AB_OK);
    assert_string_equal(ab_json_get_str(spec, "documentationUrl", ""), "https://docs.example/x");
    yajl_tree_free(spec);

    (void)snprintf(text, sizeof(text), "{\"protocol_version\":\"0.5.0\",%s",
                   connector("[]", "{}", "") + 1);
    assert_build_fails(text, "declares protocol_version");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_group_works_alone),
        cmocka_unit_test(test_all_groups_merge_without_clashes),
        cmocka_unit_test(test_http_library_defaults_match_declarations),
        cmocka_unit_test(test_driver_options_are_the_declared_defaults),
        cmocka_unit_test(test_values_given_win_over_defaults),
        cmocka_unit_test(test_connector_overrides_a_common_default),
        cmocka_unit_test(test_redeclaring_a_common_option_fails),
        cmocka_unit_test(test_bad_x_ab_options_fail),
        cmocka_unit_test(test_invalid_spec_json_fails_clearly),
        cmocka_unit_test(test_no_includes),
        cmocka_unit_test(test_lint_catches_incomplete_declarations),
        cmocka_unit_test(test_getters_have_no_fallback),
        cmocka_unit_test(test_spec_meta),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
