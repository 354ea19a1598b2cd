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

struct ab_json_member;

/* The value of a target field of the item being checked (NULL or a JSON
 * null: absent). arg is the caller's. */
typedef yajl_val (*shp_field_fn)(void *arg, const char *field);

/*
 * A target field's value as the rules read it: taken from a tree node
 * (shp_val_of_tree()) or from the text of lazily read data
 * (shp_vals_of_members()); the checks are the same for both.
 */
enum shp_vtype {
    SHP_V_NULL = 0, /* absent, or a JSON null */
    SHP_V_STRING,
    SHP_V_NUMBER,
    SHP_V_TRUE,
    SHP_V_FALSE,
    SHP_V_OBJECT,
    SHP_V_ARRAY
};

struct shp_val {
    enum shp_vtype type;
    /* STRING: its bytes, unescaped (never a NUL among them); NUMBER: its
     * text; ARRAY read lazily: its text, brackets included. Borrowed. */
    const char *s;
    size_t len;
    bool nul_ended; /* s[len] is a NUL (a tree's string) */
    yajl_val tree;  /* ARRAY: its node; NULL when read lazily (strings only) */
    size_t count;   /* ARRAY: its items */
};

/* The most rules of one object: the size of a values array. */
#define SHP_MAX_RULES 12
/* The key, sku, is the first rule of every object (vals[SHP_RULE_SKU]). */
#define SHP_RULE_SKU 0

/* The value of node v (NULL: absent). Borrowed from v. */
void shp_val_of_tree(yajl_val v, struct shp_val *out);
/* The values of object obj's rules (vals[i] for its i-th rule, in the
 * tables' order) from a tree object o, in one pass over its members. */
void shp_vals_of_object(unsigned obj, yajl_val o, struct shp_val vals[SHP_MAX_RULES]);
/* The same through a field getter (a mapped item). */
void shp_vals_of_fields(unsigned obj, shp_field_fn get, void *arg,
                        struct shp_val vals[SHP_MAX_RULES]);
/* The same from lazily read data (text: the object's text, members as
 * struct ab_record gives them), in one pass over the members. False when
 * a value the rules read is not plain enough to be read from its text (a
 * string with an escape, an images array holding anything but strings
 * without escapes, a time of 256 bytes or more): then only a tree can say,
 * and vals is not to be used. */
bool shp_vals_of_members(unsigned obj, const char *text, const struct ab_json_member *members,
                         size_t n, struct shp_val vals[SHP_MAX_RULES]);
/* As shp_check_item(), over values filled by one of the above. */
enum ab_status shp_check_vals(unsigned obj, const struct shp_val *vals, struct ab_buf *errors,
                              struct ab_error *err);

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
