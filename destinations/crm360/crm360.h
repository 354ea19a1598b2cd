/* crm360.h - destination-crm360: customers and orders into CRM360. */
/* SPDX-License-Identifier: MIT */
#ifndef CRM_CRM360_H
#define CRM_CRM360_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "ab/buf.h"
#include "ab/destination.h"
#include "ab/error.h"
#include "ab/mapping.h"

/* The connector's spec (spec.json, embedded at build time; x-ab-options
 * merged by ab_spec_build()). */
extern const char crm_spec_json[];
extern const char crm_destination_catalog_json[];
extern const struct ab_destination_ops crm_destination_ops;

enum crm_object { CRM_CUSTOMERS = 0, CRM_ORDERS, CRM_NOBJECTS };
enum crm_op { CRM_UPSERT = 0, CRM_DELETE, CRM_NOPS };

/* "customers" / "orders" and the endpoint suffix ":batchUpsert" / ":batchDelete". */
const char *crm_object_name(enum crm_object o);
const char *crm_op_name(enum crm_op op);

/*
 * The Idempotency-Key of a batch: "crm360-" and the SHA-256 (hex) of the sync
 * id, the endpoint and the exact body. The same batch gets the same key on
 * every retry and after a restart, so CRM360 answers a repeated batch from
 * its idempotency store instead of applying it again. key must hold
 * CRM_IDEMPOTENCY_KEY_SIZE bytes.
 */
#define CRM_IDEMPOTENCY_KEY_SIZE 72
void crm_idempotency_key(int64_t sync_id, enum crm_object o, enum crm_op op, const char *body,
                         size_t len, char *key);

/*
 * Builds the CRM360 form of one record into out (appended):
 * - upsert: the mapped record, with the configured default brand when it has
 *   none;
 * - delete: {"external_id","brand","deleted_at"} where deleted_at is
 *   _ab_cdc_deleted_at, else the record's deleted_at, else its updated_at.
 * A record that cannot be sent (key missing or not a string, no deletion
 * time) is AB_ERR_REJECTED, with a JSON array of {"field","code","message"}
 * in errors (appended), and out is left as it was.
 * text/len (may be NULL/0): data's JSON text as read, whose bytes an upsert
 * through an identity mapping copies (ab_mapping_write_span(), compact: the
 * text holds no whitespace outside strings). *verbatim (verbatim may be
 * NULL) is set when what was appended to out is exactly text.
 */
enum ab_status crm_build_record(const struct ab_mapping *m, yajl_val data, const char *text,
                                size_t len, bool compact, const char *brand, enum crm_op op,
                                struct ab_buf *out, bool *verbatim, struct ab_buf *errors,
                                struct ab_error *err);

/* True when rec's lazy data (struct ab_record's members) is what
 * crm_build_record() would send as it came: an upsert, an identity mapping,
 * compact data with non-empty strings as external_id and brand and no
 * top-level Airbyte member. Its data_text is then the record, no tree
 * needed. */
struct ab_record;
bool crm_record_as_it_came(const struct ab_mapping *m, const struct ab_record *rec, enum crm_op op);

#endif
