/* tiny.h - source-tiny: Tiny ERP (Olist) API v3 contacts, orders, products and stock. */
/* SPDX-License-Identifier: MIT */
#ifndef TINY_H
#define TINY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "ab/buf.h"
#include "ab/error.h"
#include "ab/pager.h"
#include "ab/source.h"

extern const struct ab_source_ops tn_source_ops;
extern const char tn_spec_json[];
extern const char tn_catalog_text[]; /* catalog.json */

/* The streams, in catalog order. */
enum tn_kind { TN_CONTATOS = 0, TN_PEDIDOS, TN_PRODUTOS, TN_VARIACOES, TN_ESTOQUE, TN_NKINDS };

/* The stream's name ("contatos") and the API path of its list ("/produtos"
 * for estoque, which has no list of its own); static. */
const char *tn_stream_name(enum tn_kind k);
const char *tn_list_path(enum tn_kind k);
/* The list's modification-time filter ("dataAtualizacao", "dataAlteracao"). */
const char *tn_filter_name(enum tn_kind k);
/* The kind of a stream name; false for an unknown one. */
bool tn_kind_of(const char *name, enum tn_kind *k);
/* The whole AirbyteCatalog of discover (static text). */
const char *tn_catalog_json(void);

/*
 * A list answer {"itens":[...],"paginacao":{"limit","offset","total"}}:
 * *items is the count of elements (paging counts them all), *total the
 * paginacao total (-1 when absent). With ids set, at most max ids go there,
 * parent[i] saying whether the product has variations (tipoVariacao "P" or
 * tipo "V"); products that are variations themselves (tipoVariacao "V") are
 * left out (they come inside their parent's detail). AB_ERR_PROTOCOL naming
 * what is wrong (no itens array, an element that is not an object or has no
 * positive whole-number id, more than max elements).
 */
enum ab_status tn_list_parse(yajl_val body, int64_t *ids, bool *parent, size_t max, size_t *n,
                             size_t *items, int64_t *total, struct ab_error *err);

/*
 * The record of stream variacoes for variation v of product detail p, into
 * out (appended): Tiny's variation object plus "produtoPai" {id, sku,
 * descricao, dataAlteracao} of p and "_ab_grade", its grid as an object
 * ({"Tamanho": "GG", "Cor": "Branco"}; a key given twice keeps the last).
 * AB_ERR_PROTOCOL when v is not an object.
 */
enum ab_status tn_variation_record(yajl_val p, yajl_val v, struct ab_buf *out,
                                   struct ab_error *err);

/* The ids of a product detail's "variacoes" appended to ids (at most max in
 * all, *n counting them); AB_ERR_PROTOCOL on an element without an id or
 * when max would be passed. */
enum ab_status tn_variation_ids(yajl_val detail, int64_t *ids, size_t max, size_t *n,
                                struct ab_error *err);

/* "mensagem (campo: mensagem; ...)" from Tiny's {"mensagem","detalhes":[...]}
 * error body into out (size bytes, NUL-terminated, "" when there is none). */
const char *tn_error_detail(yajl_val body, char *out, size_t size);

/*
 * Per-stream state (ab_resume_state with from "since", at "offset"):
 *   {"cursor": "<UTC ISO>"}                        changes up to cursor were read
 *   {"cursor": .., "resume": {"since": S|null, "end": E, "offset": N}}
 *                                                  mid incremental pass: the pass
 *                                                  filtered from S, ends with
 *                                                  cursor E, resumes at offset N
 *   {"resume": {"offset": N}}                      mid full pass
 *   {}                                             nothing read yet / full pass done
 * Times are -1 when absent (since null: no filter).
 */
enum ab_status tn_state_parse(yajl_val v, struct ab_resume_state *st, struct ab_error *err);
enum ab_status tn_state_write(const struct ab_resume_state *st, struct ab_buf *out,
                              struct ab_error *err);

#endif
