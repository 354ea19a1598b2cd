/* bling.h - source-bling: Bling API v3 contacts, orders, products and stock. */
/* SPDX-License-Identifier: MIT */
#ifndef BLING_H
#define BLING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "ab/buf.h"
#include "ab/error.h"
#include "ab/pager.h"
#include "ab/source.h"

extern const struct ab_source_ops bl_source_ops;
extern const char bl_spec_json[];
extern const char bl_catalog_text[]; /* catalog.json */

/* The streams, in catalog order. */
enum bl_kind { BL_CONTATOS = 0, BL_PEDIDOS, BL_PRODUTOS, BL_VARIACOES, BL_ESTOQUES, BL_NKINDS };

/* The stream's name ("contatos") and API path ("/pedidos/vendas"); static. */
const char *bl_stream_name(enum bl_kind k);
const char *bl_stream_path(enum bl_kind k);
/* The kind of a stream name; false for an unknown one. */
bool bl_kind_of(const char *name, enum bl_kind *k);
/* The whole AirbyteCatalog of discover (static text). */
const char *bl_catalog_json(void);

/*
 * The ids of a list answer {"data":[{"id":..},...]}: at most max ids into
 * ids; *items is the count of elements (paging counts them all). With
 * skip_children, elements whose idProdutoPai is a non-zero number are left
 * out (variations come inside their parent's detail). AB_ERR_PROTOCOL naming
 * what is wrong (no data array, an element without a whole-number id, more
 * than max elements).
 */
enum ab_status bl_list_ids(yajl_val body, bool skip_children, int64_t *ids, size_t max, size_t *n,
                           size_t *items, struct ab_error *err);

/* "TYPE: description" from Bling's {"error":{"type","message","description"}}
 * into out (size bytes, NUL-terminated, "" when the body has none). */
const char *bl_error_detail(yajl_val body, char *out, size_t size);

/*
 * Per-stream state (ab_resume_state with from "start", at "page"):
 *   {"cursor": "<UTC ISO>"}                               windows read up to cursor
 *   {"cursor": .., "resume": {"start": S|null, "end": E, "page": N}}
 *                                                        mid-window: resume at page N
 *   {"resume": {"page": N}}                              mid full pass (full refresh)
 *   {}                                                   nothing read yet / full pass done
 * cursor/from/end are -1 when absent (start null: no date filter); a window
 * never ends before its start.
 */
enum ab_status bl_state_parse(yajl_val v, struct ab_resume_state *st, struct ab_error *err);
enum ab_status bl_state_write(const struct ab_resume_state *st, struct ab_buf *out,
                              struct ab_error *err);

#endif
