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

enum pg_method { PG_FULL_PK = 0, PG_FULL_CTID, PG_FULL_ONE, PG_INCR_CURSOR, PG_INCR_XMIN };

enum pg_phase { PG_PH_START = 0, PG_PH_QUERY, PG_PH_DONE };

struct pg_stream {
    struct pg_rels rels; /* the one relation */
    const struct pg_rel *rel;
    enum pg_method method;
    long cursor_col;
    struct ab_buf from; /* "SELECT <columns> , <hidden> FROM <rel>" */
    struct ab_buf keys; /* the record keys, "\"name\":" each, NUL separated */
    size_t *key_off;    /* offsets into keys */
    size_t nsel;        /* selected columns (the record's fields) */
    enum pg_conv *conv; /* per selected column, from the first result */
    bool conv_known;
    /* progress */
    char **pk;     /* last primary key values (text), npk */
    int64_t page;  /* ctid: next page */
    int64_t pages; /* ctid: pages at start */
    int64_t pages_per_chunk;
    struct ab_buf cursor; /* last cursor value emitted (text) */
    bool has_cursor;
    int64_t cursor_count; /* rows emitted with that value (this run or the state's) */
    int64_t since_state;
    char xmin_state[160];
    bool cdc;             /* read by CDC: a snapshot, then the WAL */
    bool snap_done;       /* the snapshot is complete (from the state or this run) */
    struct ab_buf gstate; /* CDC: this stream's part of the GLOBAL state */
};

struct pgsrc {
    struct ab_driver *d;
    PGconn *conn;
    char tmpdir[4096];
    bool fd_added;
    int fd;
    bool xmin;
    int64_t chunk_size;
    int64_t interval;
    struct pg_stream *st;
    size_t n;
    size_t cur;
    enum pg_phase phase;
    bool started;
    int64_t chunk_rows; /* rows of the current statement */
    PGresult *last;     /* the last row of the current statement */
    struct ab_buf row;
    struct ab_buf sql;
    struct ab_buf state;
    uint64_t records;
    /* CDC */
    bool cdc_mode;
    size_t ncdc; /* CDC streams; 0 once their WAL phase completed */
    bool global; /* the catalog has CDC streams: every state is GLOBAL */
    const char *slot;
    const char *publication;
    uint64_t lsn;       /* every change before it was emitted (the shared state) */
    uint64_t input_lsn; /* the shared state's, confirmed to the slot; 0: none */
    char snap_ts[40];   /* _ab_cdc_updated_at of snapshot rows */
    struct pg_cdc *wal; /* the WAL phase, NULL before it */
    bool wal_done;
};

/* The WAL phase of a CDC read (cdc.c). */
struct pg_cdc;

/* Connects with the config's fields (connection_string first, the fields
 * override it). AB_ERR_CONFIG naming host, database and user for a refused
 * login, a missing database, TLS refused or failed verification;
 * AB_ERR_TRANSIENT for an unreachable server. *out on success, owned by the
 * caller (PQfinish). tmpdir: the private folder certificate files are
 * written to (created on first use, removed by pg_tmpdir_remove).
 * replication: a walsender connection (replication=database) for CDC. */
enum ab_status pg_connect(struct ab_driver *d, char *tmpdir, size_t tmpsz, bool replication,
                          PGconn **out, struct ab_error *err);
void pg_tmpdir_remove(char *tmpdir);

/* The loop's callback of a connection's socket (arg: the struct pgsrc): it
 * became ready, so the watch is masked and step() runs again to consume the
 * input (the snapshot's connection and the WAL's). */
enum ab_status pg_on_socket(void *arg, int fd, unsigned ready, struct ab_error *err);

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

/* The discover catalog of rels. method: the replication method's name. */
enum ab_status pg_catalog_json(const struct pg_rels *rels, const char *method, struct ab_buf *out,
                               struct ab_error *err);

enum ab_status pg_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err);

/* CDC: the slot and the publication exist and cover every CDC stream's
 * table; AB_ERR_CONFIG naming what is missing. */
enum ab_status pg_cdc_verify(struct pgsrc *p, struct ab_error *err);
/* The shared state {"lsn": ...} and every CDC stream's state as one GLOBAL. */
enum ab_status pg_cdc_global_state(struct pgsrc *p, struct ab_error *err);
/* One step of the WAL phase: starts replication on first call, emits the
 * changes of complete transactions, ends once caught up with the WAL
 * position read when it started (p->wal_done). */
enum ab_status pg_cdc_step(struct pgsrc *p, enum ab_source_next *next, struct ab_error *err);
void pg_cdc_free(struct pgsrc *p);
/* The check's CDC part: slot and publication problems. */
void pg_cdc_check(PGconn *c, const char *slot, const char *pub, struct ab_check *chk);

/* The conversion of a column from its catalog description (CDC rows carry
 * type oids of domains and arrays, so the catalog decides). */
enum pg_conv pg_conv_of_col(const struct pg_col *col);
#endif
