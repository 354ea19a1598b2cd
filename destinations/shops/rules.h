/* rules.h - the item rules of the Shops contract, checked before sending. */
/* SPDX-License-Identifier: MIT */
#ifndef SHP_RULES_H
#define SHP_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include <yajl/yajl_tree.h>

#include "ab/buf.h"
#include "ab/error.h"

/*
 * The field rules of the product and inventory tables of shared/api/shops.md
 * (and the choices the emulator's README writes down where the tables are
 * silent), declared once in rules.c and checked by both a real run and a dry
 * run before an item is spooled: an item that breaks one is rejected with
 * the field and code Shops would answer, and never sent. Pure: no I/O, no
 * state; any thread.
 *
 * The rules only Shops can check (they depend on what it stores) are
 * declared beside them: shp_rules_target_only().
 */

/* The value of a target field of the item being checked (NULL or a JSON
 * null: absent). arg is the caller's. */
typedef yajl_val (*shp_field_fn)(void *arg, const char *field);

/*
 * Checks the item of object obj (0 products, 1 inventory: enum shp_obj)
 * whose fields get() returns. Each broken rule appends one error object
 * {"field","code","message"} to errors, in the contract's field order, one
 * per field; errors holds a JSON array ("[{...},...]") when the item breaks
 * a rule and stays empty when it breaks none. errors is reset first.
 * AB_ERR_NOMEM only.
 */
enum ab_status shp_check_item(unsigned obj, shp_field_fn get, void *arg, struct ab_buf *errors,
                              struct ab_error *err);

/* A field getter over a parsed item (arg: the yajl_val object). */
yajl_val shp_item_field(void *arg, const char *field);

/* For reports: the fields of object obj whose rules are checked locally, as
 * "sku, parent_sku, ..." into out (cut to size, always terminated), from the
 * declarations; and the rules only Shops can check, as one sentence. */
void shp_rules_local_fields(unsigned obj, char *out, size_t size);
const char *shp_rules_target_only(void);

#endif
