/* pg.c - source-postgres: the ops table, discover and the read. */
/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ab/assert.h"
#include "ab/json.h"
#include "ab/log.h"
#include "ab/options.h"

#include "pg_int.h"

/*
 * A read goes stream by stream. Each stream's rows come from one statement at
 * a time, sent with PQsendQueryParams in single-row mode: step() turns the
 * rows libpq has parsed into RECORDs (a bounded number per step) and, when
 * libpq needs more bytes, answers WAIT with the connection's socket watched
 * by the loop. Memory is one row, whatever the table size.
 *
 *   full refresh, primary key: chunks "WHERE (pk) > (last) ORDER BY pk
 *       LIMIT chunk_size", a STATE {"pk": [...]} after each;
 *   full refresh, no key (table, materialized view): ctid page ranges, a
 *       STATE {"ctid_page": n} after each;
 *   full refresh of a view without key: one statement, a STATE at the end;
 *   incremental by cursor: one statement "ORDER BY cursor", STATEs on cursor
 *       value boundaries every checkpoint_interval rows;
 *   incremental by xmin: one statement, a STATE at the end.
 */

/* ---- discover ------------------------------------------------------------ */

static enum ab_status pg_discover(struct ab_driver *d, struct ab_error *err)
{
    char tmpdir[4096] = "";
    yajl_val cfg = ab_driver_config(d);
    const char *method = ab_json_get_str(ab_json_get(cfg, "replication_method"), "method", "");
    struct pg_rels rels = {0};
    struct ab_buf out;
    PGconn *c;
    enum ab_status rc;

    rc = pg_connect(d, tmpdir, sizeof(tmpdir), false, &c, err);
    pg_tmpdir_remove(tmpdir);
    if (rc != AB_OK) {
        return rc;
    }
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    rc = pg_load_rels(c, ab_json_get(cfg, "schemas"), NULL, NULL, &rels, err);
    if (rc == AB_OK) {
        rc = pg_catalog_json(&rels, method, &out, err);
    }
    if (rc == AB_OK) {
        rc = ab_source_catalog(d, out.data, out.len, err);
    }
    pg_rels_release(&rels);
    ab_buf_release(&out);
    PQfinish(c);
    return rc;
}

/* ---- open ---------------------------------------------------------------- */

static void stream_release(struct pg_stream *s)
{
    if (s->pk) {
        for (size_t k = 0; s->rel && k < s->rel->npk; k++) {
            free(s->pk[k]);
        }
        free(s->pk);
    }
    pg_rels_release(&s->rels);
    ab_buf_release(&s->from);
    ab_buf_release(&s->keys);
    ab_buf_release(&s->cursor);
    ab_buf_release(&s->gstate);
    free(s->key_off);
    free(s->conv);
}

static void pg_close(void *self)
{
    struct pgsrc *p = self;

    if (!p) {
        return;
    }
    pg_cdc_free(p);
    if (p->fd_added) {
        ab_loop_del_fd(ab_driver_loop(p->d), p->fd);
    }
    PQclear(p->last);
    if (p->conn) {
        PQfinish(p->conn);
    }
    pg_tmpdir_remove(p->tmpdir);
    for (size_t i = 0; i < p->n; i++) {
        stream_release(&p->st[i]);
    }
    free(p->st);
    ab_buf_release(&p->row);
    ab_buf_release(&p->sql);
    ab_buf_release(&p->state);
    free(p);
}

/* The select list: the record's columns (money as numeric, arrays as JSON),
 * then the hidden ones the state needs. */
static enum ab_status build_select(struct pg_stream *s, struct ab_error *err)
{
    const struct pg_rel *rel = s->rel;
    struct ab_buf *b = &s->from;

    s->nsel = rel->ncols;
    s->key_off = calloc(rel->ncols + 1, sizeof(*s->key_off));
    s->conv = calloc(rel->ncols + 1, sizeof(*s->conv));
    if (!s->key_off || !s->conv) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (stream)");
    }
    if (ab_buf_adds(b, "SELECT ", err) != AB_OK) {
        return err->code;
    }
    for (size_t i = 0; i < rel->ncols; i++) {
        const struct pg_col *col = &rel->cols[i];
        bool arr = col->category == 'A';
        bool money = strcmp(col->base, "money") == 0;

        if ((i > 0 && ab_buf_adds(b, ", ", err) != AB_OK) ||
            (arr && ab_buf_adds(b, "to_json(", err) != AB_OK) ||
            pg_quote_ident(b, col->name, err) != AB_OK ||
            (arr && ab_buf_addc(b, ')', err) != AB_OK) ||
            (money && ab_buf_adds(b, "::numeric", err) != AB_OK)) {
            return err->code;
        }
        s->key_off[i] = s->keys.len;
        if ((i > 0 && ab_buf_addc(&s->keys, ',', err) != AB_OK) ||
            ab_json_write_cstr(&s->keys, col->name, err) != AB_OK ||
            ab_buf_addc(&s->keys, ':', err) != AB_OK) {
            return err->code;
        }
    }
    s->key_off[rel->ncols] = s->keys.len;
    if (s->method == PG_FULL_PK) {
        for (size_t k = 0; k < rel->npk; k++) {
            if (ab_buf_adds(b, ", ", err) != AB_OK ||
                pg_quote_ident(b, rel->cols[rel->pk[k]].name, err) != AB_OK ||
                ab_buf_printf(b, err, "::text AS \"_ab_key%zu\"", k) != AB_OK) {
                return err->code;
            }
        }
    } else if (s->method == PG_INCR_CURSOR) {
        if (ab_buf_adds(b, ", ", err) != AB_OK ||
            pg_quote_ident(b, rel->cols[s->cursor_col].name, err) != AB_OK ||
            ab_buf_adds(b, "::text AS \"_ab_cursor\"", err) != AB_OK) {
            return err->code;
        }
    }
    if (ab_buf_adds(b, " FROM ", err) != AB_OK || pg_quote_ident(b, rel->schema, err) != AB_OK ||
        ab_buf_addc(b, '.', err) != AB_OK || pg_quote_ident(b, rel->name, err) != AB_OK) {
        return err->code;
    }
    return AB_OK;
}

/* Why a catalog stream has no relation: missing, or not readable. */
static enum ab_status missing_rel(PGconn *c, const struct ab_stream *cs, const char *schema,
                                  struct ab_error *err)
{
    const char *params[2] = {schema, cs->name};
    PGresult *r = PQexecParams(c,
                               "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = "
                               "c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                               2, NULL, params, NULL, NULL, 0);
    bool exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0;

    PQclear(r);
    if (exists) {
        return ab_error_set(err, AB_ERR_CONFIG,
                            "stream '%s.%s': permission denied: the role may not SELECT from "
                            "table \"%s\".\"%s\" (GRANT SELECT)",
                            schema, cs->name, schema, cs->name);
    }
    return ab_error_set(err, AB_ERR_CONFIG,
                        "stream '%s.%s': no table, view or materialized view \"%s\".\"%s\" in "
                        "database '%s'",
                        schema, cs->name, schema, cs->name, PQdb(c));
}

static enum ab_status state_error(const struct ab_stream *cs, const char *what,
                                  struct ab_error *err)
{
    return ab_error_set(err, AB_ERR_CONFIG, "state of stream '%s': %s", cs->name, what);
}

/* The stream's plan and its position from the input state. */
static enum ab_status open_stream(struct pgsrc *p, size_t i, struct ab_error *err)
{
    const struct ab_stream *cs = &ab_driver_catalog(p->d)->streams[i];
    struct pg_stream *s = &p->st[i];
    const char *schema = cs->ns ? cs->ns : "public";
    yajl_val st = ab_source_state_of(p->d, i);
    enum ab_status rc;

    ab_buf_init(&s->from, AB_BUF_UNBOUNDED);
    ab_buf_init(&s->keys, AB_BUF_UNBOUNDED);
    ab_buf_init(&s->cursor, AB_BUF_UNBOUNDED);
    ab_buf_init(&s->gstate, AB_BUF_UNBOUNDED);
    s->cursor_col = -1;
    rc = pg_load_rels(p->conn, NULL, schema, cs->name, &s->rels, err);
    if (rc != AB_OK) {
        return ab_error_prefix(err, "stream '%s'", cs->name);
    }
    if (s->rels.n != 1) {
        return missing_rel(p->conn, cs, schema, err);
    }
    s->rel = &s->rels.v[0];
    if (cs->sync_mode == AB_SYNC_INCREMENTAL && p->cdc_mode) {
        if (s->rel->kind != 'r' && s->rel->kind != 'p') {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "stream '%s': CDC needs a table; \"%s\".\"%s\" is a view or "
                                "materialized view (read it with full_refresh)",
                                cs->name, schema, cs->name);
        }
        if (s->rel->kind == 'p' && s->rel->npk == 0) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "stream '%s': the snapshot of a partitioned table needs a "
                                "primary key",
                                cs->name);
        }
        s->cdc = true;
        s->method = s->rel->npk > 0 ? PG_FULL_PK : PG_FULL_CTID;
        s->snap_done = st && strcmp(ab_json_get_str(st, "snapshot", ""), "done") == 0;
        if (s->snap_done && ab_buf_adds(&s->gstate, "{\"snapshot\":\"done\"}", err) != AB_OK) {
            return err->code;
        }
    } else if (cs->sync_mode == AB_SYNC_INCREMENTAL && p->xmin) {
        if (s->rel->kind != 'r' && s->rel->kind != 'm') {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "stream '%s': incremental by xmin needs a table or materialized "
                                "view; \"%s\".\"%s\" is neither",
                                cs->name, schema, cs->name);
        }
        s->method = PG_INCR_XMIN;
    } else if (cs->sync_mode == AB_SYNC_INCREMENTAL) {
        char path[256];

        if (cs->cursor.n != 1) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "stream '%s': incremental needs a cursor_field of one top-level "
                                "column (got '%s')",
                                cs->name, ab_path_str(&cs->cursor, path, sizeof(path)));
        }
        s->cursor_col = pg_rel_col(s->rel, cs->cursor.keys[0]);
        if (s->cursor_col < 0) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "stream '%s': cursor_field '%s' is not a column of \"%s\".\"%s\"",
                                cs->name, cs->cursor.keys[0], schema, cs->name);
        }
        s->method = PG_INCR_CURSOR;
    } else if (s->rel->npk > 0) {
        s->method = PG_FULL_PK;
    } else if (s->rel->kind == 'r' || s->rel->kind == 'm') {
        s->method = PG_FULL_CTID;
    } else {
        s->method = PG_FULL_ONE;
    }
    rc = build_select(s, err);
    if (rc != AB_OK || !st || (YAJL_IS_OBJECT(st) && st->u.object.len == 0)) {
        return rc;
    }
    /* the position in the input state */
    if (s->method == PG_FULL_PK) {
        yajl_val pk = ab_json_get(st, "pk");

        if (!pk) {
            return AB_OK; /* a state of another mode: start over */
        }
        if (!YAJL_IS_ARRAY(pk) || pk->u.array.len != s->rel->npk) {
            return state_error(cs, "\"pk\" must be an array of the primary key's values", err);
        }
        s->pk = calloc(s->rel->npk, sizeof(*s->pk));
        if (!s->pk) {
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory (state)");
        }
        for (size_t k = 0; k < s->rel->npk; k++) {
            const char *v = ab_json_str(pk->u.array.values[k]);

            if (!v) {
                return state_error(cs, "\"pk\" values must be strings", err);
            }
            s->pk[k] = strdup(v);
            if (!s->pk[k]) {
                return ab_error_set(err, AB_ERR_NOMEM, "out of memory (state)");
            }
        }
    } else if (s->method == PG_FULL_CTID) {
        yajl_val page = ab_json_get(st, "ctid_page");

        if (page && (!ab_json_int(page, &s->page) || s->page < 0)) {
            return state_error(cs, "\"ctid_page\" must be a whole number >= 0", err);
        }
    } else if (s->method == PG_INCR_CURSOR) {
        yajl_val cur = ab_json_get(st, "cursor");
        yajl_val field = ab_json_get(st, "cursor_field");

        if (cur && !ab_json_is_null(cur)) {
            const char *v = ab_json_str(cur);
            const char *f = YAJL_IS_ARRAY(field) && field->u.array.len == 1
                                ? ab_json_str(field->u.array.values[0])
                                : NULL;

            if (!v) {
                return state_error(cs, "\"cursor\" must be a string", err);
            }
            if (f && strcmp(f, cs->cursor.keys[0]) != 0) {
                AB_WARN(ab_driver_emitter(p->d),
                        "stream '%s': the cursor field changed from '%s' to '%s': reading all "
                        "rows",
                        cs->name, f, cs->cursor.keys[0]);
                return AB_OK;
            }
            if (!ab_json_int(ab_json_get(st, "cursor_record_count"), &s->cursor_count) ||
                s->cursor_count < 0) {
                return state_error(cs, "\"cursor_record_count\" must be a whole number >= 0", err);
            }
            s->has_cursor = true;
            if (ab_buf_adds(&s->cursor, v, err) != AB_OK) {
                return err->code;
            }
        }
    } else if (s->method == PG_INCR_XMIN) {
        int64_t v;

        if (ab_json_get(st, "xmin_xid_value")) {
            if (!ab_json_int(ab_json_get(st, "xmin_xid_value"), &v) || v < 0 ||
                !ab_json_int(ab_json_get(st, "num_wraparound"), &s->page) || s->page < 0) {
                return state_error(cs,
                                   "\"xmin_xid_value\" and \"num_wraparound\" must be whole "
                                   "numbers >= 0",
                                   err);
            }
            s->has_cursor = true;
            s->cursor_count = v; /* the saved xid */
        }
    }
    return AB_OK;
}

enum ab_status pg_on_socket(void *arg, int fd, unsigned ready, struct ab_error *err)
{
    struct pgsrc *p = arg;

    (void)ready;
    (void)err;
    ab_loop_fd_mask(ab_driver_loop(p->d), fd, 0);
    ab_source_resume(p->d);
    return AB_OK;
}

static enum ab_status pg_open(struct ab_driver *d, void **self, struct ab_error *err)
{
    const struct ab_catalog *cat = ab_driver_catalog(d);
    yajl_val cfg = ab_driver_config(d);
    const char *method = ab_json_get_str(ab_json_get(cfg, "replication_method"), "method", "");
    struct pgsrc *p = calloc(1, sizeof(*p));
    enum ab_status rc;

    if (!p) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    p->d = d;
    p->xmin = strcmp(method, "Xmin") == 0;
    p->cdc_mode = strcmp(method, "CDC") == 0;
    p->slot = ab_json_get_str(ab_json_get(cfg, "replication_method"), "replication_slot", NULL);
    p->publication = ab_json_get_str(ab_json_get(cfg, "replication_method"), "publication", NULL);
    p->chunk_size = ab_opt_int(cfg, "chunk_size");
    p->interval = ab_opt_int(cfg, "checkpoint_interval");
    ab_buf_init(&p->row, AB_BUF_UNBOUNDED);
    ab_buf_init(&p->sql, AB_BUF_UNBOUNDED);
    ab_buf_init(&p->state, AB_BUF_UNBOUNDED);
    p->st = calloc(cat->n ? cat->n : 1, sizeof(*p->st));
    p->n = cat->n;
    if (!p->st) {
        pg_close(p);
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    rc = pg_connect(d, p->tmpdir, sizeof(p->tmpdir), false, &p->conn, err);
    for (size_t i = 0; rc == AB_OK && i < cat->n; i++) {
        rc = open_stream(p, i, err);
        p->ncdc += p->st[i].cdc ? 1 : 0;
    }
    p->global = p->ncdc > 0;
    for (size_t i = 0; rc == AB_OK && p->global && i < cat->n; i++) {
        yajl_val st = ab_source_state_of(d, i);

        /* a full-refresh stream's position carried in the GLOBAL state */
        if (!p->st[i].cdc && st) {
            rc = ab_json_write(&p->st[i].gstate, st, err);
        }
    }
    if (rc == AB_OK && p->ncdc > 0) {
        time_t now = time(NULL);
        struct tm tm;

        (void)gmtime_r(&now, &tm);
        (void)strftime(p->snap_ts, sizeof(p->snap_ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
        rc = pg_cdc_verify(p, err);
    }
    if (rc == AB_OK) {
        p->fd = PQsocket(p->conn);
        rc = ab_loop_add_fd(ab_driver_loop(d), p->fd, 0, pg_on_socket, p, err);
        p->fd_added = rc == AB_OK;
    }
    if (rc != AB_OK) {
        pg_close(p);
        return rc;
    }
    *self = p;
    return AB_OK;
}

/* ---- the read ------------------------------------------------------------ */

static struct pg_stream *cur_stream(struct pgsrc *p)
{
    return &p->st[p->cur];
}

/* p->state as the current stream's state: a STREAM state, or, when the
 * catalog has CDC streams, its part of the one GLOBAL state (so that a
 * GLOBAL state, which replaces the whole state, carries every stream). */
static enum ab_status emit_state(struct pgsrc *p, struct ab_error *err)
{
    struct pg_stream *s = cur_stream(p);

    s->since_state = 0;
    if (p->global) {
        ab_buf_reset(&s->gstate);
        if (ab_buf_add(&s->gstate, p->state.data, p->state.len, err) != AB_OK) {
            return err->code;
        }
        return pg_cdc_global_state(p, err);
    }
    return ab_source_stream_state(p->d, p->cur, p->state.data, p->state.len, err);
}

/* A one-row, one-column synchronous query (a count, a size, the xmin). */
static enum ab_status query_value(struct pgsrc *p, const char *sql, int n,
                                  const char *const *params, const char *what, char *out,
                                  size_t size, struct ab_error *err)
{
    PGresult *r = PQexecParams(p->conn, sql, n, NULL, params, NULL, NULL, 0);
    enum ab_status rc = AB_OK;

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = pg_result_error(p->conn, r, what, err);
    } else {
        (void)snprintf(out, size, "%s", PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    return rc;
}

static enum ab_status add_rel(struct ab_buf *b, const struct pg_rel *rel, struct ab_error *err)
{
    if (pg_quote_ident(b, rel->schema, err) != AB_OK || ab_buf_addc(b, '.', err) != AB_OK ||
        pg_quote_ident(b, rel->name, err) != AB_OK) {
        return err->code;
    }
    return AB_OK;
}

/* Before the first statement: sizes, tie counts, the xmin horizon. */
static enum ab_status prepare_stream(struct pgsrc *p, struct ab_error *err)
{
    struct pg_stream *s = cur_stream(p);
    const struct ab_stream *cs = &ab_driver_catalog(p->d)->streams[p->cur];
    char v[160], what[300];
    const char *params[1];
    enum ab_status rc = AB_OK;

    ab_buf_reset(&p->sql);
    (void)snprintf(what, sizeof(what), "stream '%s'", cs->name);
    if (s->method == PG_FULL_CTID) {
        double tuples;
        int64_t relpages;

        if (add_rel(&p->sql, s->rel, err) != AB_OK) {
            return err->code;
        }
        params[0] = p->sql.data;
        rc = query_value(p,
                         "SELECT (pg_relation_size(c.oid) / current_setting('block_size')::int)"
                         "::text || ' ' || c.reltuples::text || ' ' || c.relpages::text "
                         "FROM pg_class c WHERE c.oid = $1::regclass",
                         1, params, what, v, sizeof(v), err);
        if (rc != AB_OK) {
            return rc;
        }
        if (sscanf(v, "%" SCNd64 " %lf %" SCNd64, &s->pages, &tuples, &relpages) != 3) {
            return ab_error_set(err, AB_ERR_INTERNAL, "%s: unexpected size answer", what);
        }
        /* rows per page from the statistics, 100 when the table was never analysed */
        s->pages_per_chunk = tuples > 0 && relpages > 0
                                 ? (int64_t)((double)p->chunk_size / (tuples / (double)relpages))
                                 : p->chunk_size / 100;
        if (s->pages_per_chunk < 1) {
            s->pages_per_chunk = 1;
        }
        rc = ab_source_estimate(p->d, p->cur, tuples > 0 ? (int64_t)tuples : -1, -1, err);
    } else if (s->method == PG_FULL_PK) {
        if (add_rel(&p->sql, s->rel, err) != AB_OK) {
            return err->code;
        }
        params[0] = p->sql.data;
        rc = query_value(
            p, "SELECT c.reltuples::bigint::text FROM pg_class c WHERE c.oid = $1::regclass", 1,
            params, what, v, sizeof(v), err);
        if (rc != AB_OK) {
            return rc;
        }
        /* the statistics' row count; -1 (never analysed) leaves it out */
        rc = ab_source_estimate(p->d, p->cur, strtoll(v, NULL, 10), -1, err);
    } else if (s->method == PG_INCR_CURSOR && s->has_cursor) {
        const struct pg_col *col = &s->rel->cols[s->cursor_col];
        int64_t ties;

        if (ab_buf_adds(&p->sql, "SELECT count(*) FROM ", err) != AB_OK ||
            add_rel(&p->sql, s->rel, err) != AB_OK ||
            ab_buf_adds(&p->sql, " WHERE ", err) != AB_OK ||
            pg_quote_ident(&p->sql, col->name, err) != AB_OK ||
            ab_buf_printf(&p->sql, err, " = $1::%s", col->type) != AB_OK) {
            return err->code;
        }
        params[0] = s->cursor.data;
        rc = query_value(p, p->sql.data, 1, params, what, v, sizeof(v), err);
        if (rc != AB_OK) {
            return rc;
        }
        ties = strtoll(v, NULL, 10);
        /* all rows of the last value were emitted: read past it; otherwise
         * rows of that value appeared since, and all of them are read again */
        s->since_state = ties == s->cursor_count ? 1 : 0;
        AB_DEBUG(ab_driver_emitter(p->d),
                 "stream '%s': %" PRId64 " row(s) at the last cursor value, %" PRId64
                 " emitted: %s",
                 cs->name, ties, s->cursor_count, ties == s->cursor_count ? ">" : ">=");
    } else if (s->method == PG_INCR_XMIN) {
        int64_t raw, wrap, xid;

        rc = query_value(p, "SELECT txid_snapshot_xmin(txid_current_snapshot())::text", 0, NULL,
                         what, v, sizeof(v), err);
        if (rc != AB_OK) {
            return rc;
        }
        raw = strtoll(v, NULL, 10);
        wrap = raw >> 32;
        xid = raw & 0xffffffffLL;
        if (s->has_cursor && pg_xmin_needs_full(s->page, wrap)) {
            AB_WARN(ab_driver_emitter(p->d),
                    "stream '%s': transaction ids wrapped around since the last sync: reading "
                    "all rows",
                    cs->name);
            s->has_cursor = false;
        }
        (void)snprintf(s->xmin_state, sizeof(s->xmin_state),
                       "{\"xmin_raw_value\":%" PRId64 ",\"xmin_xid_value\":%" PRId64
                       ",\"num_wraparound\":%" PRId64 "}",
                       raw, xid, wrap);
    }
    return rc;
}

/* Sends the next statement of the current stream. */
static enum ab_status send_query(struct pgsrc *p, struct ab_error *err)
{
    struct pg_stream *s = cur_stream(p);
    const struct pg_rel *rel = s->rel;
    const char *params[34];
    char lo[40], hi[40], limit[24];
    int n = 0;

    ab_buf_reset(&p->sql);
    if (ab_buf_add(&p->sql, s->from.data, s->from.len, err) != AB_OK) {
        return err->code;
    }
    (void)snprintf(limit, sizeof(limit), "%" PRId64, p->chunk_size);
    switch (s->method) {
    case PG_FULL_PK:
        if (rel->npk > 32) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "stream '%s': a primary key of more than 32 "
                                "columns",
                                rel->name);
        }
        if (s->pk) {
            if (ab_buf_adds(&p->sql, " WHERE (", err) != AB_OK) {
                return err->code;
            }
            for (size_t k = 0; k < rel->npk; k++) {
                if ((k > 0 && ab_buf_adds(&p->sql, ", ", err) != AB_OK) ||
                    pg_quote_ident(&p->sql, rel->cols[rel->pk[k]].name, err) != AB_OK) {
                    return err->code;
                }
            }
            if (ab_buf_adds(&p->sql, ") > (", err) != AB_OK) {
                return err->code;
            }
            for (size_t k = 0; k < rel->npk; k++) {
                params[n++] = s->pk[k];
                if (ab_buf_printf(&p->sql, err, "%s$%d::%s", k > 0 ? ", " : "", n,
                                  rel->cols[rel->pk[k]].type) != AB_OK) {
                    return err->code;
                }
            }
            if (ab_buf_addc(&p->sql, ')', err) != AB_OK) {
                return err->code;
            }
        }
        if (ab_buf_adds(&p->sql, " ORDER BY ", err) != AB_OK) {
            return err->code;
        }
        for (size_t k = 0; k < rel->npk; k++) {
            if ((k > 0 && ab_buf_adds(&p->sql, ", ", err) != AB_OK) ||
                pg_quote_ident(&p->sql, rel->cols[rel->pk[k]].name, err) != AB_OK) {
                return err->code;
            }
        }
        params[n++] = limit;
        if (ab_buf_printf(&p->sql, err, " LIMIT $%d::bigint", n) != AB_OK) {
            return err->code;
        }
        break;
    case PG_FULL_CTID:
        (void)snprintf(lo, sizeof(lo), "(%" PRId64 ",0)", s->page);
        (void)snprintf(hi, sizeof(hi), "(%" PRId64 ",0)", s->page + s->pages_per_chunk);
        params[n++] = lo;
        params[n++] = hi;
        if (ab_buf_adds(&p->sql, " WHERE ctid >= $1::tid AND ctid < $2::tid", err) != AB_OK) {
            return err->code;
        }
        break;
    case PG_INCR_CURSOR: {
        const struct pg_col *col = &rel->cols[s->cursor_col];

        if (ab_buf_adds(&p->sql, " WHERE ", err) != AB_OK ||
            pg_quote_ident(&p->sql, col->name, err) != AB_OK ||
            ab_buf_adds(&p->sql, " IS NOT NULL", err) != AB_OK) {
            return err->code;
        }
        if (s->has_cursor) {
            params[n++] = s->cursor.data;
            if (ab_buf_adds(&p->sql, " AND ", err) != AB_OK ||
                pg_quote_ident(&p->sql, col->name, err) != AB_OK ||
                ab_buf_printf(&p->sql, err, " %s $1::%s", s->since_state ? ">" : ">=", col->type) !=
                    AB_OK) {
                return err->code;
            }
        }
        if (ab_buf_adds(&p->sql, " ORDER BY ", err) != AB_OK ||
            pg_quote_ident(&p->sql, col->name, err) != AB_OK) {
            return err->code;
        }
        /* the count of emitted rows restarts with the first value read */
        s->has_cursor = false;
        s->cursor_count = 0;
        s->since_state = 0;
        break;
    }
    case PG_INCR_XMIN:
        if (s->has_cursor) {
            (void)snprintf(lo, sizeof(lo), "%" PRId64, s->cursor_count);
            params[n++] = lo;
            if (ab_buf_adds(&p->sql, " WHERE xmin::text::bigint >= $1::bigint", err) != AB_OK) {
                return err->code;
            }
        }
        break;
    case PG_FULL_ONE:
    default:
        break;
    }
    AB_DEBUG(ab_driver_emitter(p->d), "stream '%s': %s", rel->name, p->sql.data);
    if (!PQsendQueryParams(p->conn, p->sql.data, n, NULL, params, NULL, NULL, 0) ||
        !PQsetSingleRowMode(p->conn)) {
        return pg_result_error(p->conn, NULL, "sending a query", err);
    }
    p->chunk_rows = 0;
    PQclear(p->last);
    p->last = NULL;
    return AB_OK;
}

/* The RECORD of one row. */
static enum ab_status emit_row(struct pgsrc *p, const PGresult *r, struct ab_error *err)
{
    struct pg_stream *s = cur_stream(p);
    struct ab_buf *b = &p->row;

    if (!s->conv_known) {
        for (size_t i = 0; i < s->nsel; i++) {
            s->conv[i] = pg_conv_of_oid((uint32_t)PQftype(r, (int)i));
        }
        s->conv_known = true;
    }
    ab_buf_reset(b);
    if (ab_buf_addc(b, '{', err) != AB_OK) {
        return err->code;
    }
    for (size_t i = 0; i < s->nsel; i++) {
        if (ab_buf_add(b, s->keys.data + s->key_off[i], s->key_off[i + 1] - s->key_off[i], err) !=
            AB_OK) {
            return err->code;
        }
        if (PQgetisnull(r, 0, (int)i)) {
            if (ab_buf_adds(b, "null", err) != AB_OK) {
                return err->code;
            }
        } else if (pg_value_json(b, s->conv[i], PQgetvalue(r, 0, (int)i),
                                 (size_t)PQgetlength(r, 0, (int)i), err) != AB_OK) {
            return ab_error_prefix(err, "stream '%s', column '%s'", s->rel->name,
                                   s->rel->cols[i].name);
        }
    }
    if (s->cdc && ab_buf_printf(b, err,
                                ",\"_ab_cdc_lsn\":%" PRIu64 ",\"_ab_cdc_updated_at\":\"%s\","
                                "\"_ab_cdc_deleted_at\":null",
                                p->lsn, p->snap_ts) != AB_OK) {
        return err->code;
    }
    if (ab_buf_addc(b, '}', err) != AB_OK) {
        return err->code;
    }
    p->records++;
    return ab_source_record(p->d, p->cur, b->data, b->len, err);
}

/* The state of an incremental read: every row up to cursor was emitted,
 * cursor_record_count of them with that value. */
static enum ab_status cursor_state(struct pgsrc *p, struct ab_error *err)
{
    struct pg_stream *s = cur_stream(p);
    const struct ab_stream *cs = &ab_driver_catalog(p->d)->streams[p->cur];

    ab_buf_reset(&p->state);
    if (ab_buf_adds(&p->state, "{\"cursor_field\":[", err) != AB_OK ||
        ab_json_write_cstr(&p->state, cs->cursor.keys[0], err) != AB_OK ||
        ab_buf_adds(&p->state, "],\"cursor\":", err) != AB_OK ||
        ab_json_write_cstr(&p->state, s->cursor.data, err) != AB_OK ||
        ab_buf_printf(&p->state, err, ",\"cursor_record_count\":%" PRId64 "}", s->cursor_count) !=
            AB_OK) {
        return err->code;
    }
    return AB_OK;
}

/* An incremental row: a STATE first when the cursor moves on and enough rows
 * were emitted since the last one (states fall between two values). */
static enum ab_status cursor_row(struct pgsrc *p, const PGresult *r, struct ab_error *err)
{
    struct pg_stream *s = cur_stream(p);
    const char *v = PQgetvalue(r, 0, (int)s->nsel);
    size_t n = (size_t)PQgetlength(r, 0, (int)s->nsel);

    if (s->has_cursor && s->cursor.len == n && memcmp(s->cursor.data, v, n) == 0) {
        s->cursor_count++;
    } else {
        if (s->has_cursor && s->since_state >= p->interval &&
            (cursor_state(p, err) != AB_OK || emit_state(p, err) != AB_OK)) {
            return err->code;
        }
        ab_buf_reset(&s->cursor);
        if (ab_buf_add(&s->cursor, v, n, err) != AB_OK) {
            return err->code;
        }
        s->has_cursor = true;
        s->cursor_count = 1;
    }
    s->since_state++;
    return emit_row(p, r, err);
}

/* The statement ended: a STATE, and the next chunk or the next stream. */
static enum ab_status end_query(struct pgsrc *p, struct ab_error *err)
{
    struct pg_stream *s = cur_stream(p);
    bool done = true;

    ab_buf_reset(&p->state);
    switch (s->method) {
    case PG_FULL_PK:
        if (p->chunk_rows >= p->chunk_size && p->last) {
            done = false;
            if (!s->pk) {
                s->pk = calloc(s->rel->npk, sizeof(*s->pk));
                if (!s->pk) {
                    return ab_error_set(err, AB_ERR_NOMEM, "out of memory (state)");
                }
            }
            if (ab_buf_adds(&p->state, "{\"pk\":[", err) != AB_OK) {
                return err->code;
            }
            for (size_t k = 0; k < s->rel->npk; k++) {
                const char *v = PQgetvalue(p->last, 0, (int)(s->nsel + k));

                free(s->pk[k]);
                s->pk[k] = strdup(v);
                if (!s->pk[k]) {
                    return ab_error_set(err, AB_ERR_NOMEM, "out of memory (state)");
                }
                if ((k > 0 && ab_buf_addc(&p->state, ',', err) != AB_OK) ||
                    ab_json_write_cstr(&p->state, v, err) != AB_OK) {
                    return err->code;
                }
            }
            if (ab_buf_adds(&p->state, "]}", err) != AB_OK) {
                return err->code;
            }
        }
        break;
    case PG_FULL_CTID:
        s->page += s->pages_per_chunk;
        if (s->page < s->pages) {
            done = false;
            if (ab_buf_printf(&p->state, err, "{\"ctid_page\":%" PRId64 "}", s->page) != AB_OK) {
                return err->code;
            }
        }
        break;
    case PG_INCR_CURSOR:
        if (s->has_cursor) {
            if (cursor_state(p, err) != AB_OK) {
                return err->code;
            }
        } else {
            /* nothing new: the input state again */
            yajl_val st = ab_source_state_of(p->d, p->cur);

            if (st && ab_json_write(&p->state, st, err) != AB_OK) {
                return err->code;
            }
        }
        break;
    case PG_INCR_XMIN:
        if (ab_buf_adds(&p->state, s->xmin_state, err) != AB_OK) {
            return err->code;
        }
        break;
    case PG_FULL_ONE:
    default:
        break;
    }
    if (done && s->cdc) {
        ab_buf_reset(&p->state);
        s->snap_done = true;
        if (ab_buf_adds(&p->state, "{\"snapshot\":\"done\"}", err) != AB_OK) {
            return err->code;
        }
    }
    if (done && p->state.len == 0 && ab_buf_adds(&p->state, "{}", err) != AB_OK) {
        return err->code; /* a full refresh that completed starts over next time */
    }
    if (emit_state(p, err) != AB_OK) {
        return err->code;
    }
    p->phase = done ? PG_PH_DONE : PG_PH_START;
    return done ? AB_OK : send_query(p, err);
}

/* Turns the rows libpq holds into records, at most budget of them. */
static enum ab_status drain(struct pgsrc *p, enum ab_source_next *next, struct ab_error *err)
{
    struct pg_stream *s = cur_stream(p);

    for (int budget = 2000; budget > 0; budget--) {
        PGresult *r;
        enum ab_status rc;

        if (PQisBusy(p->conn)) {
            if (!PQconsumeInput(p->conn)) {
                return pg_result_error(p->conn, NULL, "reading rows", err);
            }
            if (PQisBusy(p->conn)) {
                ab_loop_fd_mask(ab_driver_loop(p->d), p->fd, AB_LOOP_READ);
                *next = AB_SOURCE_WAIT;
                return AB_OK;
            }
        }
        r = PQgetResult(p->conn);
        if (!r) {
            p->phase = PG_PH_START;
            rc = end_query(p, err);
            if (rc != AB_OK || p->phase == PG_PH_DONE) {
                *next = AB_SOURCE_MORE;
                return rc;
            }
            p->phase = PG_PH_QUERY;
            continue;
        }
        switch (PQresultStatus(r)) {
        case PGRES_SINGLE_TUPLE:
            p->chunk_rows++;
            rc = s->method == PG_INCR_CURSOR ? cursor_row(p, r, err) : emit_row(p, r, err);
            PQclear(p->last);
            p->last = r;
            break;
        case PGRES_TUPLES_OK:
            PQclear(r);
            rc = AB_OK;
            break;
        default: {
            char what[300];

            (void)snprintf(what, sizeof(what), "stream '%s'", s->rel->name);
            rc = pg_result_error(p->conn, r, what, err);
            PQclear(r);
            break;
        }
        }
        if (rc != AB_OK) {
            return rc;
        }
    }
    *next = AB_SOURCE_MORE;
    return AB_OK;
}

static enum ab_status pg_step(void *self, enum ab_source_next *next, struct ab_error *err)
{
    struct pgsrc *p = self;
    enum ab_status rc;

    while (p->cur < p->n && p->phase == PG_PH_DONE) {
        /* a CDC stream completes after the WAL phase */
        rc = p->st[p->cur].cdc ? AB_OK
                               : ab_source_stream_status(p->d, p->cur, AB_STATUS_COMPLETE, err);
        if (rc != AB_OK) {
            return rc;
        }
        p->cur++;
        p->phase = PG_PH_START;
        p->started = false;
    }
    if (p->cur >= p->n) {
        if (p->ncdc > 0 && !p->wal_done) {
            return pg_cdc_step(p, next, err);
        }
        for (size_t i = 0; i < p->n; i++) {
            if (p->st[i].cdc && p->ncdc > 0 &&
                ab_source_stream_status(p->d, i, AB_STATUS_COMPLETE, err) != AB_OK) {
                return err->code;
            }
        }
        p->ncdc = 0;
        *next = AB_SOURCE_DONE;
        return AB_OK;
    }
    if (!p->started) {
        struct pg_stream *s = cur_stream(p);

        p->started = true;
        rc = ab_source_stream_status(p->d, p->cur, AB_STATUS_STARTED, err);
        if (rc == AB_OK && s->cdc && s->snap_done) {
            p->phase = PG_PH_DONE; /* straight to the WAL phase */
            rc = ab_source_stream_status(p->d, p->cur, AB_STATUS_RUNNING, err);
            *next = AB_SOURCE_MORE;
            return rc;
        }
        if (rc == AB_OK) {
            rc = prepare_stream(p, err);
        }
        if (rc == AB_OK) {
            rc = ab_source_stream_status(p->d, p->cur, AB_STATUS_RUNNING, err);
        }
        if (rc == AB_OK) {
            rc = send_query(p, err);
        }
        if (rc != AB_OK) {
            return rc;
        }
        p->phase = PG_PH_QUERY;
    }
    return drain(p, next, err);
}

static void pg_summary(void *self, struct ab_emitter *em)
{
    const struct pgsrc *p = self;

    AB_INFO(em, "postgres: %" PRIu64 " rows read from %zu stream(s)", p->records, p->n);
}

const struct ab_source_ops pg_source_ops = {
    .name = PG_NAME,
    .version = AB_VERSION,
    .spec_json = pg_spec_json,
    .check = pg_check,
    .discover = pg_discover,
    .open = pg_open,
    .step = pg_step,
    .summary = pg_summary,
    .close = pg_close,
};
