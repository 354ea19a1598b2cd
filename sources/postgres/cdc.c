/* cdc.c - CDC: logical replication with pgoutput, from the slot to RECORDs. */
/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ab/clock.h"
#include "ab/json.h"
#include "ab/log.h"

#include "pg_int.h"

/*
 * The WAL phase: a replication connection (replication=database) runs
 * START_REPLICATION SLOT <slot> LOGICAL <state lsn> with pgoutput (protocol
 * 1, the configured publication). The server sends each committed
 * transaction as Begin, Relation, Insert/Update/Delete..., Commit. Changes
 * become RECORDs as they arrive; a GLOBAL state with the commit's end LSN
 * follows a commit once checkpoint_interval rows were emitted, and at the
 * end. The phase ends when a keepalive between transactions reports a
 * position at or past pg_current_wal_insert_lsn() read when the phase
 * started: the insert position, not the write position, which lags behind
 * commits that are not written out yet (synchronous_commit off), so that
 * every transaction committed before the start is read.
 *
 * The only position ever reported to the server (standby status update) is
 * the LSN of the input state: the destination has acknowledged everything
 * before it, since the platform hands back only states the destination
 * confirmed. What this run emits is confirmed by the next run.
 */

#define PG_EPOCH_UNIX 946684800LL /* 2000-01-01 in Unix seconds */

struct cdc_rel {
    uint32_t relid;
    long stream; /* catalog index, -1: not a CDC stream of this read */
    size_t ncols;
    char **names; /* JSON-quoted "name": keys */
    enum pg_conv *conv;
    bool *array;
};

struct pg_cdc {
    PGconn *conn;
    int fd;
    bool fd_added;
    uint64_t timer;
    uint64_t target;
    struct cdc_rel *rels;
    size_t nrels;
    bool in_tx;
    int64_t commit_us; /* microseconds since 2000-01-01 */
    int64_t since_state;
    uint64_t changes;
    struct ab_buf row;
    struct ab_buf tmp;
};

static uint64_t be64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

enum pg_conv pg_conv_of_col(const struct pg_col *col)
{
    static const struct {
        const char *base;
        enum pg_conv conv;
    } map[] = {
        {"int2", PG_CONV_INTEGER},
        {"int4", PG_CONV_INTEGER},
        {"int8", PG_CONV_INTEGER},
        {"oid", PG_CONV_INTEGER},
        {"float4", PG_CONV_FLOAT},
        {"float8", PG_CONV_FLOAT},
        {"numeric", PG_CONV_DECIMAL},
        {"money", PG_CONV_DECIMAL},
        {"bool", PG_CONV_BOOL},
        {"json", PG_CONV_JSON},
        {"jsonb", PG_CONV_JSON},
        {"bytea", PG_CONV_BYTEA},
        {"date", PG_CONV_DATE},
        {"timestamp", PG_CONV_TIMESTAMP},
        {"timestamptz", PG_CONV_TIMESTAMPTZ},
        {"time", PG_CONV_TIME},
        {"timetz", PG_CONV_TIMETZ},
    };
    const char *base = col->category == 'A' && col->elem[0] ? col->elem : col->base;

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(map[i].base, base) == 0) {
            return map[i].conv;
        }
    }
    return PG_CONV_STRING;
}

/* ---- verification ---------------------------------------------------------- */

/* The result of a catalog query, or NULL with err set (the caller clears it). */
static PGresult *one_row(PGconn *c, const char *sql, int n, const char *const *params,
                         struct ab_error *err)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_result_error(c, r, "reading the replication catalog", err);
        PQclear(r);
        return NULL;
    }
    return r;
}

static const char slot_sql[] = "SELECT plugin, coalesce(database, ''), current_database(), "
                               "coalesce(confirmed_flush_lsn::text, '') FROM "
                               "pg_replication_slots WHERE slot_name = $1";

void pg_cdc_check(PGconn *c, const char *slot, const char *pub, struct ab_check *chk)
{
    struct ab_error err = {0};
    const char *params[1] = {slot};
    PGresult *r;

    if ((r = one_row(c, slot_sql, 1, params, &err)) == NULL) {
        ab_check_problem(chk, "%s", err.message);
        return;
    }
    if (PQntuples(r) == 0) {
        ab_check_problem(chk,
                         "replication_method.replication_slot: no replication slot '%s' (create "
                         "it: SELECT pg_create_logical_replication_slot('%s', 'pgoutput'))",
                         slot, slot);
    } else if (strcmp(PQgetvalue(r, 0, 0), "pgoutput") != 0) {
        ab_check_problem(chk,
                         "replication_method.replication_slot: slot '%s' uses plugin '%s', "
                         "not pgoutput",
                         slot, PQgetvalue(r, 0, 0));
    } else if (strcmp(PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2)) != 0) {
        ab_check_problem(chk,
                         "replication_method.replication_slot: slot '%s' belongs to database "
                         "'%s', not '%s'",
                         slot, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
    }
    PQclear(r);
    params[0] = pub;
    if ((r = one_row(c, "SELECT 1 FROM pg_publication WHERE pubname = $1", 1, params, &err)) ==
        NULL) {
        ab_check_problem(chk, "%s", err.message);
        return;
    }
    if (PQntuples(r) == 0) {
        ab_check_problem(chk,
                         "replication_method.publication: no publication '%s' (create it: "
                         "CREATE PUBLICATION %s FOR TABLE ...)",
                         pub, pub);
    }
    PQclear(r);
}

enum ab_status pg_cdc_verify(struct pgsrc *p, struct ab_error *err)
{
    const struct ab_catalog *cat = ab_driver_catalog(p->d);
    const char *params[3] = {p->slot, NULL, NULL};
    PGresult *r;
    yajl_val shared = ab_source_shared_state(p->d);
    bool ok;

    if ((r = one_row(p->conn, slot_sql, 1, params, err)) == NULL) {
        return err->code;
    }
    ok = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "pgoutput") == 0 &&
         strcmp(PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2)) == 0;
    if (ok && !pg_lsn_parse(PQgetvalue(r, 0, 3), &p->lsn)) {
        ok = false;
    }
    PQclear(r);
    if (!ok) {
        return ab_error_set(err, AB_ERR_CONFIG,
                            "replication_method.replication_slot: no logical replication slot "
                            "'%s' with plugin pgoutput in database '%s' (create it: SELECT "
                            "pg_create_logical_replication_slot('%s', 'pgoutput'))",
                            p->slot, PQdb(p->conn), p->slot);
    }
    if (shared) {
        int64_t lsn;

        if (!ab_json_int(ab_json_get(shared, "lsn"), &lsn) || lsn <= 0) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "state: shared_state.lsn must be a whole number > 0");
        }
        p->lsn = (uint64_t)lsn;
        p->input_lsn = (uint64_t)lsn;
    }
    params[0] = p->publication;
    if ((r = one_row(p->conn, "SELECT 1 FROM pg_publication WHERE pubname = $1", 1, params, err)) ==
        NULL) {
        return err->code;
    }
    ok = PQntuples(r) == 1;
    PQclear(r);
    if (!ok) {
        return ab_error_set(err, AB_ERR_CONFIG,
                            "replication_method.publication: no publication '%s' in database "
                            "'%s' (create it: CREATE PUBLICATION %s FOR TABLE ...)",
                            p->publication, PQdb(p->conn), p->publication);
    }
    for (size_t i = 0; i < p->n; i++) {
        const struct pg_rel *rel = p->st[i].rel;

        if (!p->st[i].cdc) {
            continue;
        }
        params[1] = rel->schema;
        params[2] = rel->name;
        if ((r = one_row(p->conn,
                         "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND "
                         "schemaname = $2 AND tablename = $3",
                         3, params, err)) == NULL) {
            return err->code;
        }
        ok = PQntuples(r) == 1;
        PQclear(r);
        if (!ok) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "stream '%s': publication '%s' does not include table "
                                "\"%s\".\"%s\" (ALTER PUBLICATION %s ADD TABLE ...)",
                                cat->streams[i].name, p->publication, rel->schema, rel->name,
                                p->publication);
        }
    }
    return AB_OK;
}

/* ---- state ------------------------------------------------------------------- */

enum ab_status pg_cdc_global_state(struct pgsrc *p, struct ab_error *err)
{
    const char **states = calloc(p->n ? p->n : 1, sizeof(*states));
    char shared[64];
    enum ab_status rc;

    if (!states) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (state)");
    }
    for (size_t i = 0; i < p->n; i++) {
        if (p->st[i].gstate.len > 0) {
            states[i] = p->st[i].gstate.data;
        }
    }
    (void)snprintf(shared, sizeof(shared), "{\"lsn\":%" PRIu64 "}", p->lsn);
    rc = ab_source_global_state(p->d, shared, states, err);
    free(states);
    if (p->wal) {
        p->wal->since_state = 0;
    }
    return rc;
}

/* ---- the replication connection -------------------------------------------- */

/* Standby status update: written, flushed and applied up to the input
 * state's LSN (never more); reply asks the server for a keepalive. */
static enum ab_status send_status(struct pgsrc *p, bool reply, struct ab_error *err)
{
    unsigned char msg[34];
    int64_t now = (ab_now_us() / 1000000 - PG_EPOCH_UNIX) * 1000000;

    msg[0] = 'r';
    put64(msg + 1, p->input_lsn);
    put64(msg + 9, p->input_lsn);
    put64(msg + 17, p->input_lsn);
    put64(msg + 25, (uint64_t)now);
    msg[33] = reply ? 1 : 0;
    if (PQputCopyData(p->wal->conn, (const char *)msg, sizeof(msg)) != 1 ||
        PQflush(p->wal->conn) != 0) {
        return pg_result_error(p->wal->conn, NULL, "replication: sending a status update", err);
    }
    return AB_OK;
}

static enum ab_status on_status_timer(void *arg, uint64_t id, struct ab_error *err)
{
    struct pgsrc *p = arg;

    (void)id;
    return p->wal && !p->wal_done ? send_status(p, true, err) : AB_OK;
}

static void rel_free(struct cdc_rel *r)
{
    for (size_t i = 0; i < r->ncols; i++) {
        free(r->names[i]);
    }
    free(r->names);
    free(r->conv);
    free(r->array);
    memset(r, 0, sizeof(*r));
}

void pg_cdc_free(struct pgsrc *p)
{
    struct pg_cdc *w = p->wal;

    if (!w) {
        return;
    }
    if (w->timer) {
        ab_loop_del_timer(ab_driver_loop(p->d), w->timer);
    }
    if (w->fd_added) {
        ab_loop_del_fd(ab_driver_loop(p->d), w->fd);
    }
    if (w->conn) {
        PQfinish(w->conn);
    }
    for (size_t i = 0; i < w->nrels; i++) {
        rel_free(&w->rels[i]);
    }
    free(w->rels);
    ab_buf_release(&w->row);
    ab_buf_release(&w->tmp);
    free(w);
    p->wal = NULL;
}

static enum ab_status start(struct pgsrc *p, struct ab_error *err)
{
    struct pg_cdc *w = calloc(1, sizeof(*w));
    char v[64], cmd[600];
    PGresult *r;
    enum ab_status rc;
    struct ab_buf slot, pub;

    if (!w) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (replication)");
    }
    p->wal = w;
    ab_buf_init(&w->row, AB_BUF_UNBOUNDED);
    ab_buf_init(&w->tmp, AB_BUF_UNBOUNDED);
    r = PQexec(p->conn, "SELECT pg_current_wal_insert_lsn()::text");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || !pg_lsn_parse(PQgetvalue(r, 0, 0), &w->target)) {
        rc = pg_result_error(p->conn, r, "reading the WAL position", err);
        PQclear(r);
        return rc;
    }
    PQclear(r);
    rc = pg_connect(p->d, p->tmpdir, sizeof(p->tmpdir), true, &w->conn, err);
    if (rc != AB_OK) {
        return ab_error_prefix(err, "replication connection");
    }
    /* START_REPLICATION takes no parameters: the names go in quoted, the
     * publication name inside a quoted string literal */
    ab_buf_init(&slot, AB_BUF_UNBOUNDED);
    ab_buf_init(&pub, AB_BUF_UNBOUNDED);
    rc = pg_quote_ident(&slot, p->slot, err);
    if (rc == AB_OK) {
        rc = pg_quote_ident(&pub, p->publication, err);
    }
    if (rc == AB_OK) {
        char *lit = PQescapeLiteral(w->conn, pub.data, pub.len);

        (void)snprintf(v, sizeof(v), "%X/%X", (unsigned)(p->lsn >> 32), (unsigned)p->lsn);
        if (!lit || snprintf(cmd, sizeof(cmd),
                             "START_REPLICATION SLOT %s LOGICAL %s (proto_version '1', "
                             "publication_names %s)",
                             slot.data, v, lit) >= (int)sizeof(cmd)) {
            rc = ab_error_set(err, AB_ERR_CONFIG,
                              "replication_method: slot or publication name too long");
        }
        PQfreemem(lit);
    }
    ab_buf_release(&slot);
    ab_buf_release(&pub);
    if (rc != AB_OK) {
        return rc;
    }
    AB_INFO(ab_driver_emitter(p->d),
            "cdc: reading slot '%s' from %s up to %X/%X (the WAL position at start)", p->slot, v,
            (unsigned)(w->target >> 32), (unsigned)w->target);
    r = PQexec(w->conn, cmd);
    if (PQresultStatus(r) != PGRES_COPY_BOTH) {
        rc = pg_result_error(w->conn, r, "replication: START_REPLICATION", err);
        PQclear(r);
        return rc;
    }
    PQclear(r);
    w->fd = PQsocket(w->conn);
    if (ab_loop_add_fd(ab_driver_loop(p->d), w->fd, 0, pg_on_socket, p, err) != AB_OK) {
        return err->code;
    }
    w->fd_added = true;
    w->timer = ab_loop_add_timer(ab_driver_loop(p->d), 1000000, 1000000, on_status_timer, p, err);
    if (!w->timer) {
        return err->code;
    }
    /* confirms the input state's LSN, asks for a keepalive */
    return send_status(p, true, err);
}

/* ---- pgoutput ----------------------------------------------------------------- */

struct rd {
    const unsigned char *p;
    size_t n;
    bool bad;
};

static uint8_t rd8(struct rd *r)
{
    if (r->n < 1) {
        r->bad = true;
        return 0;
    }
    r->n--;
    return *r->p++;
}

static uint32_t rd32(struct rd *r)
{
    uint32_t v;

    if (r->n < 4) {
        r->bad = true;
        return 0;
    }
    v = be32(r->p);
    r->p += 4;
    r->n -= 4;
    return v;
}

static uint64_t rd64(struct rd *r)
{
    uint64_t v;

    if (r->n < 8) {
        r->bad = true;
        return 0;
    }
    v = be64(r->p);
    r->p += 8;
    r->n -= 8;
    return v;
}

static uint16_t rd16(struct rd *r)
{
    uint16_t v;

    if (r->n < 2) {
        r->bad = true;
        return 0;
    }
    v = (uint16_t)(r->p[0] << 8 | r->p[1]);
    r->p += 2;
    r->n -= 2;
    return v;
}

static const char *rdstr(struct rd *r)
{
    const unsigned char *end = r->n ? memchr(r->p, 0, r->n) : NULL;
    const char *s = (const char *)r->p;

    if (!end) {
        r->bad = true;
        return "";
    }
    r->n -= (size_t)(end - r->p) + 1;
    r->p = end + 1;
    return s;
}

static struct cdc_rel *find_rel(struct pg_cdc *w, uint32_t relid)
{
    for (size_t i = 0; i < w->nrels; i++) {
        if (w->rels[i].relid == relid) {
            return &w->rels[i];
        }
    }
    return NULL;
}

/* Relation: the columns of a table as this transaction sees them. Columns
 * are matched to the stream by name; their conversion comes from the
 * catalog (the message carries domain and array type oids). */
static enum ab_status on_relation(struct pgsrc *p, struct rd *r, struct ab_error *err)
{
    struct pg_cdc *w = p->wal;
    uint32_t relid = rd32(r);
    const char *ns = rdstr(r);
    const char *name = rdstr(r);
    struct cdc_rel *rel;
    const struct pg_rel *prel = NULL;
    size_t ncols;

    (void)rd8(r); /* replica identity */
    ncols = rd16(r);
    if (r->bad) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "replication: short Relation message");
    }
    rel = find_rel(w, relid);
    if (rel) {
        rel_free(rel);
    } else {
        struct cdc_rel *v = realloc(w->rels, (w->nrels + 1) * sizeof(*v));

        if (!v) {
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory (replication)");
        }
        w->rels = v;
        rel = &v[w->nrels++];
        memset(rel, 0, sizeof(*rel));
    }
    rel->relid = relid;
    rel->stream = -1;
    for (size_t i = 0; i < p->n; i++) {
        if (p->st[i].cdc && strcmp(p->st[i].rel->schema, ns) == 0 &&
            strcmp(p->st[i].rel->name, name) == 0) {
            rel->stream = (long)i;
            prel = p->st[i].rel;
        }
    }
    rel->names = calloc(ncols + 1, sizeof(*rel->names));
    rel->conv = calloc(ncols + 1, sizeof(*rel->conv));
    rel->array = calloc(ncols + 1, sizeof(*rel->array));
    if (!rel->names || !rel->conv || !rel->array) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (replication)");
    }
    rel->ncols = ncols;
    for (size_t i = 0; i < ncols; i++) {
        const char *col;
        long k;

        (void)rd8(r); /* flags */
        col = rdstr(r);
        (void)rd32(r); /* type oid */
        (void)rd32(r); /* typmod */
        if (r->bad) {
            return ab_error_set(err, AB_ERR_PROTOCOL, "replication: short Relation message");
        }
        ab_buf_reset(&w->tmp);
        if (ab_json_write_cstr(&w->tmp, col, err) != AB_OK ||
            ab_buf_addc(&w->tmp, ':', err) != AB_OK) {
            return err->code;
        }
        rel->names[i] = strdup(w->tmp.data);
        if (!rel->names[i]) {
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory (replication)");
        }
        k = prel ? pg_rel_col(prel, col) : -1;
        if (k >= 0) {
            rel->conv[i] = pg_conv_of_col(&prel->cols[k]);
            rel->array[i] = prel->cols[k].category == 'A';
        } else if (prel) {
            AB_WARN(ab_driver_emitter(p->d),
                    "cdc: column '%s' of \"%s\".\"%s\" is newer than the catalog read at start: "
                    "sent as text",
                    col, ns, name);
        }
    }
    return AB_OK;
}

static void rfc3339_us(int64_t pg_us, char *out, size_t size)
{
    int64_t unix_us = pg_us + PG_EPOCH_UNIX * 1000000LL;
    time_t secs = (time_t)(unix_us / 1000000);
    long frac = (long)(unix_us % 1000000);
    struct tm tm;

    if (frac < 0) {
        frac += 1000000;
        secs--;
    }
    (void)gmtime_r(&secs, &tm);
    (void)snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

/* Insert, Update (new tuple) or Delete (key or old tuple) as a RECORD.
 * Unchanged TOAST values ('u') are not in the message: their fields are left
 * out and named in _ab_cdc_unchanged_columns, never sent as null. */
static enum ab_status emit_tuple(struct pgsrc *p, struct cdc_rel *rel, struct rd *r, uint64_t lsn,
                                 bool deleted, struct ab_error *err)
{
    struct pg_cdc *w = p->wal;
    struct ab_buf *b = &w->row;
    size_t ncols = rd16(r);
    size_t unchanged = 0;
    bool first = true;
    char ts[48];

    ab_buf_reset(b);
    ab_buf_reset(&w->tmp);
    if (ncols != rel->ncols || ab_buf_addc(b, '{', err) != AB_OK) {
        return ncols != rel->ncols ? ab_error_set(err, AB_ERR_PROTOCOL,
                                                  "replication: tuple of %zu columns for a "
                                                  "relation of %zu",
                                                  ncols, rel->ncols)
                                   : err->code;
    }
    for (size_t i = 0; i < ncols; i++) {
        uint8_t kind = rd8(r);
        uint32_t len;

        if (kind == 'u') {
            if ((unchanged++ > 0 && ab_buf_addc(&w->tmp, ',', err) != AB_OK) ||
                ab_buf_add(&w->tmp, rel->names[i], strlen(rel->names[i]) - 1, err) != AB_OK) {
                return err->code;
            }
            continue;
        }
        if ((!first && ab_buf_addc(b, ',', err) != AB_OK) ||
            ab_buf_adds(b, rel->names[i], err) != AB_OK) {
            return err->code;
        }
        first = false;
        if (kind == 'n') {
            if (ab_buf_adds(b, "null", err) != AB_OK) {
                return err->code;
            }
            continue;
        }
        len = rd32(r);
        if (kind != 't' || r->bad || len > r->n) {
            return ab_error_set(err, AB_ERR_PROTOCOL, "replication: malformed tuple data");
        }
        if ((rel->array[i]
                 ? pg_array_json(b, rel->conv[i], (const char *)r->p, len, err)
                 : pg_value_json(b, rel->conv[i], (const char *)r->p, len, err)) != AB_OK) {
            return err->code;
        }
        r->p += len;
        r->n -= len;
    }
    if (r->bad) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "replication: short tuple data");
    }
    rfc3339_us(w->commit_us, ts, sizeof(ts));
    if (ab_buf_printf(b, err, "%s\"_ab_cdc_lsn\":%" PRIu64 ",\"_ab_cdc_updated_at\":\"%s\"",
                      first ? "" : ",", lsn, ts) != AB_OK ||
        ab_buf_printf(b, err, ",\"_ab_cdc_deleted_at\":%s%s%s", deleted ? "\"" : "",
                      deleted ? ts : "null", deleted ? "\"" : "") != AB_OK) {
        return err->code;
    }
    if (unchanged > 0 && (ab_buf_adds(b, ",\"_ab_cdc_unchanged_columns\":[", err) != AB_OK ||
                          ab_buf_add(b, w->tmp.data, w->tmp.len, err) != AB_OK ||
                          ab_buf_addc(b, ']', err) != AB_OK)) {
        return err->code;
    }
    if (ab_buf_addc(b, '}', err) != AB_OK) {
        return err->code;
    }
    w->since_state++;
    w->changes++;
    p->records++;
    return ab_source_record(p->d, (size_t)rel->stream, b->data, b->len, err);
}

/* One pgoutput message of an XLogData at lsn. */
static enum ab_status on_message(struct pgsrc *p, struct rd *r, uint64_t lsn, struct ab_error *err)
{
    struct pg_cdc *w = p->wal;
    uint8_t type = rd8(r);
    struct cdc_rel *rel;
    uint8_t kind;

    switch (type) {
    case 'B':
        (void)rd64(r); /* final lsn */
        w->commit_us = (int64_t)rd64(r);
        w->in_tx = true;
        return AB_OK;
    case 'C': {
        uint64_t end;

        (void)rd8(r);
        (void)rd64(r); /* commit lsn */
        end = rd64(r);
        if (r->bad) {
            return ab_error_set(err, AB_ERR_PROTOCOL, "replication: short Commit message");
        }
        w->in_tx = false;
        if (end > p->lsn) {
            p->lsn = end;
        }
        if (w->since_state >= p->interval) {
            return pg_cdc_global_state(p, err);
        }
        return AB_OK;
    }
    case 'R':
        return on_relation(p, r, err);
    case 'I':
    case 'U':
    case 'D':
        rel = find_rel(w, rd32(r));
        if (!rel) {
            return ab_error_set(err, AB_ERR_PROTOCOL,
                                "replication: a change of an unknown "
                                "relation");
        }
        if (rel->stream < 0) {
            return AB_OK; /* a table of the publication this read does not take */
        }
        kind = rd8(r);
        if (type == 'U' && (kind == 'K' || kind == 'O')) {
            /* the old key or row: skip it, the new tuple follows */
            size_t n = rd16(r);

            for (size_t i = 0; i < n && !r->bad; i++) {
                uint8_t k = rd8(r);

                if (k == 't' || k == 'b') {
                    uint32_t len = rd32(r);

                    if (len > r->n) {
                        r->bad = true;
                        break;
                    }
                    r->p += len;
                    r->n -= len;
                }
            }
            kind = rd8(r);
        }
        if (r->bad || (type == 'D' ? (kind != 'K' && kind != 'O') : kind != 'N')) {
            return ab_error_set(err, AB_ERR_PROTOCOL, "replication: malformed change message");
        }
        return emit_tuple(p, rel, r, lsn, type == 'D', err);
    case 'T':
        AB_WARN(ab_driver_emitter(p->d),
                "cdc: a TRUNCATE at %X/%X is not replicated as records (the rows it removed "
                "stay in the destination)",
                (unsigned)(lsn >> 32), (unsigned)lsn);
        return AB_OK;
    default:
        return AB_OK; /* Type, Origin, Message */
    }
}

enum ab_status pg_cdc_step(struct pgsrc *p, enum ab_source_next *next, struct ab_error *err)
{
    struct pg_cdc *w;

    if (!p->wal && start(p, err) != AB_OK) {
        return err->code;
    }
    w = p->wal;
    for (int budget = 2000; budget > 0; budget--) {
        char *buf = NULL;
        int n = PQgetCopyData(w->conn, &buf, 1);
        enum ab_status rc = AB_OK;
        struct rd r;

        if (n == 0) {
            if (!PQconsumeInput(w->conn)) {
                return pg_result_error(w->conn, NULL, "replication: reading", err);
            }
            n = PQgetCopyData(w->conn, &buf, 1);
            if (n == 0) {
                ab_loop_fd_mask(ab_driver_loop(p->d), w->fd, AB_LOOP_READ);
                *next = AB_SOURCE_WAIT;
                return AB_OK;
            }
        }
        if (n < 0) {
            PGresult *res = PQgetResult(w->conn);

            rc = pg_result_error(w->conn, res, "replication: the server ended the stream", err);
            PQclear(res);
            return rc == AB_ERR_INTERNAL ? ab_error_set(err, AB_ERR_TRANSIENT, "%s", err->message)
                                         : rc;
        }
        r.p = (const unsigned char *)buf;
        r.n = (size_t)n;
        r.bad = false;
        switch (rd8(&r)) {
        case 'w': {
            uint64_t start_lsn = rd64(&r);

            (void)rd64(&r); /* server wal end */
            (void)rd64(&r); /* clock */
            rc = r.bad ? ab_error_set(err, AB_ERR_PROTOCOL, "replication: short XLogData")
                       : on_message(p, &r, start_lsn, err);
            break;
        }
        case 'k': {
            uint64_t end = rd64(&r);

            (void)rd64(&r);
            if (rd8(&r)) {
                rc = send_status(p, false, err);
            }
            if (rc == AB_OK && !w->in_tx && end >= w->target) {
                /* caught up: everything committed before end was sent */
                if (end > p->lsn) {
                    p->lsn = end;
                }
                p->wal_done = true;
            }
            break;
        }
        default:
            break;
        }
        PQfreemem(buf);
        if (rc != AB_OK) {
            return rc;
        }
        if (!w->in_tx && p->lsn >= w->target && w->target > 0) {
            p->wal_done = true;
        }
        if (p->wal_done) {
            AB_INFO(ab_driver_emitter(p->d), "cdc: %" PRIu64 " change(s), caught up at %X/%X",
                    w->changes, (unsigned)(p->lsn >> 32), (unsigned)p->lsn);
            rc = pg_cdc_global_state(p, err);
            pg_cdc_free(p);
            *next = AB_SOURCE_MORE;
            return rc;
        }
    }
    *next = AB_SOURCE_MORE;
    return AB_OK;
}
