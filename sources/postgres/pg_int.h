/* pg_int.h - source-postgres internals shared by its files. */
/* SPDX-License-Identifier: MIT */
#ifndef PG_PG_INT_H
#define PG_PG_INT_H

#include <libpq-fe.h>

#include "ab/buf.h"
#include "ab/driver.h"

#include "pg.h"

#define PG_NAME "source-postgres"

/* A column as the catalog describes it. */
struct pg_col {
    char *name;
    char *type; /* format_type without typmod: what a bound value is cast to */
    char *base; /* typname of the base type (domains resolved) */
    char *elem; /* element typname of an array, else "" */
    char category;
    bool notnull;
    int pkpos; /* 1-based position in the primary key, 0: not in it */
};

/* A table, view, materialized view or foreign table. */
struct pg_rel {
    char *schema;
    char *name;
    char kind; /* pg_class.relkind: r p v m f */
    struct pg_col *cols;
    size_t ncols;
    size_t npk;
    size_t *pk; /* column indices in key order */
};

struct pg_rels {
    struct pg_rel *v;
    size_t n;
};

/* Connects with the config's fields (connection_string first, the fields
 * override it). AB_ERR_CONFIG naming host, database and user for a refused
 * login, a missing database, TLS refused or failed verification;
 * AB_ERR_TRANSIENT for an unreachable server. *out on success, owned by the
 * caller (PQfinish). tmpdir: the private folder certificate files are
 * written to (created on first use, removed by pg_tmpdir_remove). */
enum ab_status pg_connect(struct ab_driver *d, char *tmpdir, size_t tmpsz, PGconn **out,
                          struct ab_error *err);
void pg_tmpdir_remove(char *tmpdir);

/* Maps a failed result to a status and a message naming what (the SQLSTATE
 * class: privileges and missing objects are AB_ERR_CONFIG, a lost connection
 * AB_ERR_TRANSIENT). what: the statement's purpose, for the message. */
enum ab_status pg_result_error(PGconn *c, const PGresult *r, const char *what,
                               struct ab_error *err);

/* Loads the relations of the configured schemas (name: only that one, or
 * NULL) that the role may SELECT, with their columns and primary keys. */
enum ab_status pg_load_rels(PGconn *c, yajl_val schemas, const char *schema, const char *name,
                            struct pg_rels *rels, struct ab_error *err);
void pg_rels_release(struct pg_rels *rels);
const struct pg_rel *pg_rels_find(const struct pg_rels *rels, const char *schema, const char *name);
long pg_rel_col(const struct pg_rel *rel, const char *name);

/* The discover catalog of rels. xmin: the Xmin method is configured. */
enum ab_status pg_catalog_json(const struct pg_rels *rels, bool xmin, struct ab_buf *out,
                               struct ab_error *err);

enum ab_status pg_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err);

#endif
