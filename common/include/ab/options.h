/* options.h - connector options: declared once, merged into each spec, read back. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_OPTIONS_H
#define AB_OPTIONS_H

/*
 * Every option a connector takes is declared in exactly one JSON file, with its
 * type, limits, title, description and default (fluent-bit's config_map idea):
 *
 *   common/spec/options-core.json         every connector (log_level, progress)
 *   common/spec/options-destination.json  every destination (rejected records,
 *                                         dead-letter file, rejection thresholds,
 *                                         line cap, state wait)
 *   common/spec/options-http.json         every HTTP connector (HTTP tuning, gzip)
 *   <connector>/spec.json                 the connector's own options
 *
 * The files are embedded at build time (cmake/embed.cmake). A connector's spec
 * names the common groups it takes in a top-level member
 *
 *   "x-ab-options": {"include": ["core", "destination", "http"],
 *                    "defaults": {"requests_per_second": 10}}
 *
 * and ab_spec_build() merges them into its connectionSpecification. Defaults
 * then reach the code only through config validation (ab_config_validate()
 * fills them in), and the code reads options with the ab_opt_*() getters,
 * which take no fallback: a default exists in one place only.
 *
 * Nothing here keeps state; every function is safe from any thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "ab/deadletter.h"
#include "ab/emitter.h"
#include "ab/error.h"
#include "ab/http.h"

/* The common option groups, in the order they are documented. */
extern const char *const ab_option_groups[]; /* NULL-terminated: "core", ... */

/* The embedded JSON text of a common group ("core", "destination", "http"),
 * static; NULL for an unknown name. */
const char *ab_option_group_json(const char *name);

/*
 * Builds the ConnectorSpecification from a connector's spec text: parses it,
 * adds the properties of every group in "x-ab-options".include to its
 * connectionSpecification.properties (and the UI groups they use to
 * connectionSpecification.groups), applies "x-ab-options".defaults to the
 * included properties, and removes "x-ab-options". *spec_out belongs to the
 * caller (yajl_tree_free); NULL on failure.
 * AB_ERR_INTERNAL (a connector bug), naming what is wrong, when a text does
 * not parse, a group is unknown or listed twice, the connector declares an
 * option that a common group declares (included or not), a default names an
 * option of no included group or breaks that option's own schema.
 * AB_ERR_NOMEM on allocation failure.
 */
enum ab_status ab_spec_build(const char *connector_spec_json, yajl_val *spec_out,
                             struct ab_error *err);

/*
 * Checks the shape of a built spec for the Airbyte form: every property, at
 * any depth (properties, items, additionalProperties), has a type, a title and
 * a description; every pattern has a pattern_descriptor; a top-level property
 * with a group names one of connectionSpecification.groups, a nested one has
 * none; order values are unique among the top-level properties of a group and
 * among the properties of a nested object; a default validates against its
 * property. AB_ERR_INTERNAL listing the problems (as many as fit).
 */
enum ab_status ab_spec_lint(yajl_val spec, struct ab_error *err);

/*
 * Getters for a config that ab_config_validate() accepted against a built
 * spec, so every option with a declared default is present. There is no
 * fallback argument: a value comes from the config or from its declaration.
 * An absent or mistyped value (an option read by code but declared without a
 * default: a connector bug the spec tests catch) reads as 0 / false; for
 * ab_opt_str, NULL, which is also the value of an optional string option
 * without default that the user left out.
 */
int64_t ab_opt_int(yajl_val config, const char *key);
double ab_opt_double(yajl_val config, const char *key);
const char *ab_opt_str(yajl_val config, const char *key);
bool ab_opt_bool(yajl_val config, const char *key);

/* The "core" group, as the driver uses it. */
struct ab_core_opts {
    enum ab_log_level log_level;
    int64_t progress_every_us;
};
void ab_opts_core(yajl_val config, struct ab_core_opts *o);

/* The "destination" group, as the driver uses it. Strings are borrowed from
 * config. storage is where object_storage_config sends rejected records;
 * without that option AB_DL_FILE at dead_letter_path (the legacy option),
 * or with local_path NULL when that is unset too: the caller picks the
 * default file. local_path NULL or "": the default file. */
struct ab_destination_opts {
    const char *dead_letter_path; /* NULL when unset */
    bool storage_set;             /* object_storage_config is in the config */
    enum ab_deadletter_kind storage;
    const char *local_path;
    struct ab_objstore_cfg s3;
    const char *s3_prefix;
    bool fail_on_reject;
    size_t max_line_bytes;
    int64_t max_wait_us;
    double max_rejected_ratio;
    uint64_t rejected_ratio_min_records;
    uint64_t max_rejected_records; /* 0: no limit */
};
void ab_opts_destination(yajl_val config, struct ab_destination_opts *o);

/* The "http" group as client options: ab_http_opts_init(), then every field
 * the group declares from config (ca_path borrowed from config; an empty one
 * is NULL, the system store). gzip is the connector's to read. */
void ab_opts_http(yajl_val config, struct ab_http_opts *o);

#endif
