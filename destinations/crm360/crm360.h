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

/* What CRM360 answers for each record of a batch (its "status"). */
enum crm_result {
    CRM_R_CREATED = 0,
    CRM_R_UPDATED,
    CRM_R_UNCHANGED,
    CRM_R_STALE,
    CRM_R_DELETED,
    CRM_R_NOT_FOUND,
    CRM_R_REJECTED,
    CRM_R_NRESULTS
};

/* What an answer of the usual form holds (crm_answer_scan()). */
struct crm_answer_scan {
    uint64_t counts[CRM_R_NRESULTS]; /* results per status; never a rejection */
    const char *batch_id;            /* within the answer; NULL: none */
    size_t batch_id_len;
};

/*
 * Reads a 200 answer to a batch of n records without building a tree, when
 * it is of the usual form and nothing in it needs more than counting:
 *   {"batch_id":"..","committed_at":"..","results":[{"external_id":"..",
 *    "brand":"..","status":".."},...]}
 * - top-level members batch_id (a string), committed_at (a string) and
 *   results (an array of exactly n objects), each at most once, in any
 *   order, results required;
 * - each result: status (one of the known statuses except rejected) and
 *   optionally external_id and brand (strings or null), each at most once,
 *   in any order;
 * - every string printable ASCII with no escape, whitespace (space, tab, CR,
 *   LF) only between tokens and after the object.
 * True: *out holds the counts and batch_id. False: anything else (out
 * untouched), which the caller reads with the JSON parser as before, so an
 * unusual or wrong answer gets the handling and the messages it always had.
 * s (len bytes) is borrowed; batch_id points into it.
 */
bool crm_answer_scan(const char *s, size_t len, size_t n, struct crm_answer_scan *out);

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
 * needed. *tags (tags may be NULL) is then its top-level member "tags"
 * (NULL: none), pointing into rec's members. */
struct ab_record;
bool crm_record_as_it_came(const struct ab_mapping *m, const struct ab_record *rec, enum crm_op op,
                           const struct ab_json_member **tags);

#endif
