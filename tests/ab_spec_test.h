/* ab_spec_test.h - checks every connector's spec tests share (includes ab_test.h). */
/* SPDX-License-Identifier: MIT */
#ifndef AB_SPEC_TEST_H
#define AB_SPEC_TEST_H

#include <string.h>

#include <math.h>

#include "ab/config.h"
#include "ab/json.h"
#include "ab/options.h"

#include "ab_test.h"

/* The built spec of a connector; fails the test, quoting why, when it does
 * not build (invalid JSON included) or does not lint clean. */
static inline yajl_val spec_test_build(const char *spec_json)
{
    struct ab_error err = {0};
    yajl_val spec = NULL;

    if (ab_spec_build(spec_json, &spec, &err) != AB_OK) {
        fail_msg("the spec does not build: %s", err.message);
    }
    if (ab_spec_lint(spec, &err) != AB_OK) {
        yajl_tree_free(spec);
        fail_msg("%s", err.message);
    }
    return spec;
}

static inline yajl_val spec_test_prop(yajl_val spec, const char *key)
{
    const char *path[] = {"connectionSpecification", "properties", key, NULL};

    return ab_json_get_path(spec, path);
}

/* The declared default of a top-level option; fails when there is none. */
static inline yajl_val spec_test_default(yajl_val spec, const char *key)
{
    yajl_val def = ab_json_get(spec_test_prop(spec, key), "default");

    if (!def) {
        fail_msg("option '%s' has no declared default", key);
    }
    return def;
}

static inline double spec_test_default_num(yajl_val spec, const char *key)
{
    double v = 0;

    if (!ab_json_double(spec_test_default(spec, key), &v)) {
        fail_msg("the default of '%s' is not a number", key);
    }
    return v;
}

/* The config a user gets with only required values given (validated, so
 * every declared default is filled in). */
static inline yajl_val spec_test_config(yajl_val spec, const char *required_json)
{
    struct ab_error err = {0};
    yajl_val cfg = ab_json_parse(required_json, strlen(required_json), &err);

    if (!cfg) {
        fail_msg("test config: %s", err.message);
    }
    if (ab_config_validate(cfg, ab_json_get(spec, "connectionSpecification"), &err) != AB_OK) {
        yajl_tree_free(cfg);
        fail_msg("a config with the required values only is refused: %s", err.message);
    }
    return cfg;
}

#define SPEC_TEST_EQ(what, code, declared)                                                         \
    do {                                                                                           \
        double c_ = (double)(code);                                                                \
        double d_ = (double)(declared);                                                            \
        if (fabs(c_ - d_) > 1e-9 * (fabs(d_) + 1)) {                                               \
            fail_msg("%s: the code uses %g, the spec declares %g", what, c_, d_);                  \
        }                                                                                          \
    } while (0)

/*
 * What the driver takes from a config holding the declared defaults only
 * equals the declarations, group by group (only the groups the spec includes):
 * the core options, the destination options, and the HTTP client options
 * built as ab_driver_http_opts() builds them.
 */
static inline void spec_test_driver_defaults(yajl_val spec, yajl_val cfg)
{
    if (spec_test_prop(spec, "log_level")) {
        struct ab_core_opts core;
        const char *level = ab_json_str(spec_test_default(spec, "log_level"));
        enum ab_log_level want = AB_LOG_INFO;

        ab_opts_core(cfg, &core);
        if (strcmp(level, "DEBUG") == 0) {
            want = AB_LOG_DEBUG;
        } else if (strcmp(level, "WARN") == 0) {
            want = AB_LOG_WARN;
        } else if (strcmp(level, "ERROR") == 0) {
            want = AB_LOG_ERROR;
        }
        SPEC_TEST_EQ("log_level", core.log_level, want);
        SPEC_TEST_EQ("progress_interval_seconds (us)", core.progress_every_us,
                     spec_test_default_num(spec, "progress_interval_seconds") * 1e6);
    }
    if (spec_test_prop(spec, "rejected_records")) {
        struct ab_destination_opts dest;

        ab_opts_destination(cfg, &dest);
        /* no stored default: the local file under the temporary directory */
        assert_null(ab_json_get(spec_test_prop(spec, "dead_letter_path"), "default"));
        assert_null(dest.dead_letter_path);
        assert_false(dest.storage_set);
        SPEC_TEST_EQ("object_storage_config", dest.storage, AB_DL_FILE);
        assert_null(dest.local_path);
        SPEC_TEST_EQ("rejected_records", dest.fail_on_reject,
                     strcmp(ab_json_str(spec_test_default(spec, "rejected_records")), "fail") == 0);
        SPEC_TEST_EQ("max_line_bytes", dest.max_line_bytes,
                     spec_test_default_num(spec, "max_line_bytes"));
        SPEC_TEST_EQ("max_checkpoint_wait_seconds (us)", dest.max_wait_us,
                     spec_test_default_num(spec, "max_checkpoint_wait_seconds") * 1e6);
    }
    if (spec_test_prop(spec, "max_in_flight")) {
        struct ab_http_opts o;

        ab_opts_http(cfg, &o);
        SPEC_TEST_EQ("max_in_flight", o.max_in_flight,
                     spec_test_default_num(spec, "max_in_flight"));
        SPEC_TEST_EQ("requests_per_second", o.requests_per_second,
                     spec_test_default_num(spec, "requests_per_second"));
        SPEC_TEST_EQ("burst", o.burst, spec_test_default_num(spec, "burst"));
        SPEC_TEST_EQ("connect_timeout_seconds (ms)", o.connect_timeout_ms,
                     spec_test_default_num(spec, "connect_timeout_seconds") * 1e3);
        SPEC_TEST_EQ("request_timeout_seconds (ms)", o.request_timeout_ms,
                     spec_test_default_num(spec, "request_timeout_seconds") * 1e3);
        SPEC_TEST_EQ("max_retries", o.max_retries, spec_test_default_num(spec, "max_retries"));
        assert_null(ab_json_get(spec_test_prop(spec, "ca_path"), "default"));
        assert_null(o.ca_path);
        assert_true(ab_opt_bool(cfg, "gzip") == YAJL_IS_TRUE(spec_test_default(spec, "gzip")));
    }
}

/* Every field in fields (NULL-terminated) is declared; those the code reads
 * as numbers or booleans (every type but string) have a default, since the
 * getters have no fallback. */
static inline void spec_test_declares(yajl_val spec, const char *const *fields)
{
    size_t i;

    for (i = 0; fields[i]; i++) {
        yajl_val p = spec_test_prop(spec, fields[i]);
        const char *type = ab_json_get_str(p, "type", "");

        if (!p) {
            fail_msg("the spec does not declare '%s'", fields[i]);
        }
        if ((strcmp(type, "integer") == 0 || strcmp(type, "number") == 0 ||
             strcmp(type, "boolean") == 0) &&
            !ab_json_get(p, "default")) {
            fail_msg("'%s' is read by the code but declares no default", fields[i]);
        }
    }
}

#endif
