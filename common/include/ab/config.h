/* config.h - connector config loading and validation against the spec. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_CONFIG_H
#define AB_CONFIG_H

#include <stdbool.h>

#include <yajl/yajl_tree.h>

#include "ab/buf.h"
#include "ab/error.h"

/*
 * Validates a config against the connectionSpecification JSON Schema subset
 * connectors use: type (incl. type arrays and "integer"), required,
 * properties, additionalProperties (false only), items, enum, const,
 * minimum/maximum, exclusiveMinimum/exclusiveMaximum, minLength/maxLength,
 * minItems/maxItems, pattern (POSIX ERE), default (filled in where absent),
 * oneOf (the first branch that validates wins).
 * Every problem is collected; the error (AB_ERR_CONFIG) lists them all, each
 * naming the field path ("batch_size: must be <= 1000"). Never quotes the
 * value of a field marked airbyte_secret.
 */

/* Receives one warning (a NUL-terminated line, valid during the call) per
 * unknown top-level field of the config: "config: unknown field 'batchsize'
 * (did you mean 'batch_size'?)". Unknown fields stay allowed unless the
 * schema says additionalProperties: false (then each is a problem, with the
 * same suggestion). Called on the validating thread, before the result. */
typedef void (*ab_config_warn_fn)(void *arg, const char *message);

/* Loads path (at most 16 MiB), validates against schema (the
 * connectionSpecification object; NULL: no validation) and fills defaults in
 * place. *out belongs to the caller (yajl_tree_free); NULL on failure. An
 * unreadable file, invalid JSON or an invalid config is AB_ERR_CONFIG. */
enum ab_status ab_config_load(const char *path, yajl_val schema, yajl_val *out,
                              struct ab_error *err);
/* Validates (and fills defaults into) an already parsed config. */
enum ab_status ab_config_validate(yajl_val config, yajl_val schema, struct ab_error *err);

/* The same, reporting unknown top-level fields to warn (NULL: not reported),
 * also when the config turns out invalid. */
enum ab_status ab_config_load_warn(const char *path, yajl_val schema, ab_config_warn_fn warn,
                                   void *arg, yajl_val *out, struct ab_error *err);
enum ab_status ab_config_validate_warn(yajl_val config, yajl_val schema, ab_config_warn_fn warn,
                                       void *arg, struct ab_error *err);

/* Calls fn for every non-empty string value in config whose schema property
 * is marked airbyte_secret (at any depth: properties, items, and every
 * oneOf/anyOf/allOf branch, so a secret is reported even when its branch is
 * not the one that validated). */
void ab_config_each_secret(yajl_val config, yajl_val schema,
                           void (*fn)(void *arg, const char *secret), void *arg);

#endif
