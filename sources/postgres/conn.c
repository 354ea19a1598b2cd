/* conn.c - the connection, error mapping and the catalog of relations. */
/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ab/json.h"
#include "ab/options.h"

#include "pg_int.h"

/* Writes a PEM text to tmpdir/name, mode 0600 (libpq refuses a key that
 * others can read). */
static enum ab_status write_pem(char *tmpdir, size_t tmpsz, const char *name, const char *pem,
                                char *path, size_t pathsz, struct ab_error *err)
{
    size_t n = strlen(pem);
    int fd;

    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");

        (void)snprintf(tmpdir, tmpsz, "%s/source-postgres-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
            tmpdir[0] = '\0';
            return ab_error_set(err, AB_ERR_IO,
                                "cannot create a private folder for certificates: %s",
                                strerror(errno));
        }
    }
    (void)snprintf(path, pathsz, "%s/%s", tmpdir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return ab_error_set(err, AB_ERR_IO, "cannot write %s: %s", name, strerror(errno));
    }
    if (write(fd, pem, n) != (ssize_t)n) {
        (void)close(fd);
        return ab_error_set(err, AB_ERR_IO, "cannot write %s", name);
    }
    if (close(fd) != 0) {
        return ab_error_set(err, AB_ERR_IO, "cannot write %s: %s", name, strerror(errno));
    }
    return AB_OK;
}

void pg_tmpdir_remove(char *tmpdir)
{
    static const char *const names[] = {"ca.pem", "client.pem", "client.key"};
    char path[4200];

    if (!tmpdir[0]) {
        return;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        (void)snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
        (void)unlink(path);
    }
    (void)rmdir(tmpdir);
    tmpdir[0] = '\0';
}

/* The first line of libpq's message, without "FATAL:  " / "ERROR:  ". */
static void first_line(const char *msg, char *out, size_t size)
{
    size_t n;

    if (!msg) {
        msg = "";
    }
    if (strncmp(msg, "connection to server at", 23) == 0 && strstr(msg, "failed: ")) {
        msg = strstr(msg, "failed: ") + 8;
    }
    if (strncmp(msg, "FATAL:  ", 8) == 0 || strncmp(msg, "ERROR:  ", 8) == 0) {
        msg += 8;
    }
    n = strcspn(msg, "\n");
    if (n >= size) {
        n = size - 1;
    }
    memcpy(out, msg, n);
    out[n] = '\0';
}

enum ab_status pg_connect(struct ab_driver *d, char *tmpdir, size_t tmpsz, bool replication,
                          PGconn **out, struct ab_error *err)
{
    yajl_val cfg = ab_driver_config(d);
    yajl_val ssl = ab_json_get(cfg, "ssl_mode");
    const char *keys[20];
    const char *vals[20];
    char port[16], timeout[16], options[160], ca[4300], cert[4300], key[4300];
    char why[600];
    const char *host = ab_opt_str(cfg, "host");
    const char *db = ab_opt_str(cfg, "database");
    const char *user = ab_opt_str(cfg, "username");
    const char *pw = ab_opt_str(cfg, "password");
    const char *cs = ab_opt_str(cfg, "connection_string");
    const char *mode = ab_json_get_str(ssl, "mode", NULL);
    const char *pem;
    int n = 0;
    PGconn *c;

    *out = NULL;
    if (cs) {
        keys[n] = "dbname";
        vals[n++] = cs;
    }
    if (host) {
        keys[n] = "host";
        vals[n++] = host;
    }
    if (ab_json_get(cfg, "port")) {
        (void)snprintf(port, sizeof(port), "%lld", (long long)ab_opt_int(cfg, "port"));
        keys[n] = "port";
        vals[n++] = port;
    }
    if (db) {
        keys[n] = "dbname";
        vals[n++] = db;
    }
    if (user) {
        keys[n] = "user";
        vals[n++] = user;
    }
    if (pw) {
        keys[n] = "password";
        vals[n++] = pw;
    }
    if (mode) {
        keys[n] = "sslmode";
        vals[n++] = mode;
    }
    pem = ab_json_get_str(ssl, "ca_certificate", NULL);
    if (pem) {
        if (write_pem(tmpdir, tmpsz, "ca.pem", pem, ca, sizeof(ca), err) != AB_OK) {
            return err->code;
        }
        keys[n] = "sslrootcert";
        vals[n++] = ca;
    }
    pem = ab_json_get_str(ssl, "client_certificate", NULL);
    if (pem) {
        if (write_pem(tmpdir, tmpsz, "client.pem", pem, cert, sizeof(cert), err) != AB_OK) {
            return err->code;
        }
        keys[n] = "sslcert";
        vals[n++] = cert;
    }
    pem = ab_json_get_str(ssl, "client_key", NULL);
    if (pem) {
        if (write_pem(tmpdir, tmpsz, "client.key", pem, key, sizeof(key), err) != AB_OK) {
            return err->code;
        }
        keys[n] = "sslkey";
        vals[n++] = key;
    }
    (void)snprintf(timeout, sizeof(timeout), "%lld",
                   (long long)ab_opt_int(cfg, "login_timeout_seconds"));
    keys[n] = "connect_timeout";
    vals[n++] = timeout;
    (void)snprintf(options, sizeof(options),
                   "-c DateStyle=ISO,YMD -c TimeZone=UTC -c IntervalStyle=iso_8601 "
                   "-c extra_float_digits=1 -c bytea_output=hex -c statement_timeout=%lld",
                   (long long)ab_opt_int(cfg, "statement_timeout_seconds") * 1000);
    keys[n] = "options";
    vals[n++] = options;
    keys[n] = "client_encoding";
    vals[n++] = "UTF8";
    if (replication) {
        keys[n] = "replication";
        vals[n++] = "database";
    }
    keys[n] = "application_name";
    vals[n++] = PG_NAME;
    keys[n] = NULL;
    vals[n] = NULL;

    c = PQconnectdbParams(keys, vals, 1);
    if (!c) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (connection)");
    }
    if (PQstatus(c) != CONNECTION_OK) {
        const char *m = PQerrorMessage(c);
        enum ab_status code = AB_ERR_CONFIG;

        first_line(m, why, sizeof(why));
        if (strstr(m, "Connection refused") || strstr(m, "timeout expired") ||
            strstr(m, "the database system is") || strstr(m, "too many clients") ||
            strstr(m, "server closed the connection")) {
            code = AB_ERR_TRANSIENT;
        }
        ab_error_set(err, code,
                     "cannot connect to PostgreSQL at %s:%s, database '%s', user '%s': %s",
                     PQhost(c) ? PQhost(c) : "?", PQport(c) ? PQport(c) : "?",
                     PQdb(c) ? PQdb(c) : "?", PQuser(c) ? PQuser(c) : "?", why);
        PQfinish(c);
        return code;
    }
    *out = c;
    return AB_OK;
}

enum ab_status pg_result_error(PGconn *c, const PGresult *r, const char *what, struct ab_error *err)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    enum ab_status code = AB_ERR_INTERNAL;
    char line[600];

    if (!msg) {
        first_line(PQerrorMessage(c), line, sizeof(line));
        msg = line;
    }
    if (PQstatus(c) == CONNECTION_BAD || (state && strncmp(state, "08", 2) == 0) ||
        (state && (strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 ||
                   strcmp(state, "57P03") == 0 || strcmp(state, "40001") == 0 ||
                   strcmp(state, "40P01") == 0 || strcmp(state, "57014") == 0 ||
                   strcmp(state, "53300") == 0))) {
        code = AB_ERR_TRANSIENT; /* lost connection, shutdown, canceled (timeout), conflicts */
    } else if (state && (strncmp(state, "42", 2) == 0 || strncmp(state, "28", 2) == 0 ||
                         strcmp(state, "3D000") == 0 || strcmp(state, "3F000") == 0)) {
        code = AB_ERR_CONFIG; /* privileges, missing objects, authorization */
    }
    return ab_error_set(err, code, "%s: %s%s%s%s", what, msg, state ? " (SQLSTATE " : "",
                        state ? state : "", state ? ")" : "");
}

static char *dup_value(const PGresult *r, int row, int col)
{
    return strdup(PQgetvalue(r, row, col));
}

static void rel_release(struct pg_rel *rel)
{
    for (size_t i = 0; i < rel->ncols; i++) {
        free(rel->cols[i].name);
        free(rel->cols[i].type);
        free(rel->cols[i].base);
        free(rel->cols[i].elem);
    }
    free(rel->cols);
    free(rel->pk);
    free(rel->schema);
    free(rel->name);
}

void pg_rels_release(struct pg_rels *rels)
{
    for (size_t i = 0; i < rels->n; i++) {
        rel_release(&rels->v[i]);
    }
    free(rels->v);
    rels->v = NULL;
    rels->n = 0;
}

/* One row per column; domains resolved two levels deep. */
static const char rels_sql[] =
    "SELECT n.nspname, c.relname, c.relkind::text, a.attname, a.attnotnull, "
    "format_type(a.atttypid, NULL), bt.typname, bt.typcategory::text, coalesce(et.typname, ''), "
    "coalesce((SELECT k.ord FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(attnum, ord) "
    "WHERE i.indrelid = c.oid AND i.indisprimary AND k.attnum = a.attnum), 0) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "JOIN pg_type t ON t.oid = a.atttypid "
    "LEFT JOIN pg_type t2 ON t.typtype = 'd' AND t2.oid = t.typbasetype "
    "JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype <> 'd' THEN t.oid "
    "WHEN t2.typtype = 'd' THEN t2.typbasetype ELSE t2.oid END "
    "LEFT JOIN pg_type et ON bt.typcategory = 'A' AND et.oid = bt.typelem "
    "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname = ANY($1::text[]) "
    "AND ($2::text IS NULL OR (n.nspname = $2 AND c.relname = $3)) "
    "AND has_table_privilege(c.oid, 'SELECT') "
    "ORDER BY n.nspname, c.relname, a.attnum";

/* The schemas array as a text[] literal: {"a","b"} with " and \ escaped. */
static enum ab_status schemas_literal(yajl_val schemas, struct ab_buf *out, struct ab_error *err)
{
    size_t n = YAJL_IS_ARRAY(schemas) ? schemas->u.array.len : 0;

    if (ab_buf_addc(out, '{', err) != AB_OK) {
        return err->code;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = ab_json_str(schemas->u.array.values[i]);

        if (!s || (i > 0 && ab_buf_addc(out, ',', err) != AB_OK) ||
            ab_buf_addc(out, '"', err) != AB_OK) {
            return s ? err->code : ab_error_set(err, AB_ERR_CONFIG, "schemas: strings only");
        }
        for (; *s; s++) {
            if ((*s == '"' || *s == '\\') && ab_buf_addc(out, '\\', err) != AB_OK) {
                return err->code;
            }
            if (ab_buf_addc(out, *s, err) != AB_OK) {
                return err->code;
            }
        }
        if (ab_buf_addc(out, '"', err) != AB_OK) {
            return err->code;
        }
    }
    return ab_buf_addc(out, '}', err);
}

enum ab_status pg_load_rels(PGconn *c, yajl_val schemas, const char *schema, const char *name,
                            struct pg_rels *rels, struct ab_error *err)
{
    struct ab_buf lit;
    const char *params[3];
    PGresult *r;
    int rows;
    struct pg_rel *cur = NULL;
    enum ab_status rc = AB_OK;

    rels->v = NULL;
    rels->n = 0;
    ab_buf_init(&lit, AB_BUF_UNBOUNDED);
    if (schema) {
        rc = ab_buf_adds(&lit, "{\"", err);
        for (const char *s = schema; rc == AB_OK && *s; s++) {
            if (*s == '"' || *s == '\\') {
                rc = ab_buf_addc(&lit, '\\', err);
            }
            if (rc == AB_OK) {
                rc = ab_buf_addc(&lit, *s, err);
            }
        }
        if (rc == AB_OK) {
            rc = ab_buf_adds(&lit, "\"}", err);
        }
    } else {
        rc = schemas_literal(schemas, &lit, err);
    }
    if (rc != AB_OK) {
        ab_buf_release(&lit);
        return rc;
    }
    params[0] = lit.data;
    params[1] = schema;
    params[2] = name;
    r = PQexecParams(c, rels_sql, 3, NULL, params, NULL, NULL, 0);
    ab_buf_release(&lit);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = pg_result_error(c, r, "reading the catalog of tables", err);
        PQclear(r);
        return rc;
    }
    rows = PQntuples(r);
    for (int i = 0; i < rows && rc == AB_OK; i++) {
        struct pg_col *col;

        if (!cur || strcmp(cur->schema, PQgetvalue(r, i, 0)) != 0 ||
            strcmp(cur->name, PQgetvalue(r, i, 1)) != 0) {
            struct pg_rel *v = realloc(rels->v, (rels->n + 1) * sizeof(*v));

            if (!v) {
                rc = ab_error_set(err, AB_ERR_NOMEM, "out of memory (catalog)");
                break;
            }
            rels->v = v;
            cur = &v[rels->n++];
            memset(cur, 0, sizeof(*cur));
            cur->schema = dup_value(r, i, 0);
            cur->name = dup_value(r, i, 1);
            cur->kind = PQgetvalue(r, i, 2)[0];
        }
        col = realloc(cur->cols, (cur->ncols + 1) * sizeof(*col));
        if (!col) {
            rc = ab_error_set(err, AB_ERR_NOMEM, "out of memory (catalog)");
            break;
        }
        cur->cols = col;
        col = &col[cur->ncols++];
        col->name = dup_value(r, i, 3);
        col->notnull = PQgetvalue(r, i, 4)[0] == 't';
        col->type = dup_value(r, i, 5);
        col->base = dup_value(r, i, 6);
        col->category = PQgetvalue(r, i, 7)[0];
        col->elem = dup_value(r, i, 8);
        col->pkpos = atoi(PQgetvalue(r, i, 9));
        if (!col->name || !col->type || !col->base || !col->elem || !cur->schema || !cur->name) {
            rc = ab_error_set(err, AB_ERR_NOMEM, "out of memory (catalog)");
        } else if (col->pkpos > 0) {
            cur->npk++;
        }
    }
    PQclear(r);
    /* primary key column indices in key order */
    for (size_t i = 0; rc == AB_OK && i < rels->n; i++) {
        struct pg_rel *rel = &rels->v[i];

        if (rel->npk == 0) {
            continue;
        }
        rel->pk = calloc(rel->npk, sizeof(*rel->pk));
        if (!rel->pk) {
            rc = ab_error_set(err, AB_ERR_NOMEM, "out of memory (catalog)");
            break;
        }
        for (size_t k = 0; k < rel->ncols; k++) {
            int pos = rel->cols[k].pkpos;

            if (pos > 0 && (size_t)pos <= rel->npk) {
                rel->pk[pos - 1] = k;
            }
        }
    }
    if (rc != AB_OK) {
        pg_rels_release(rels);
    }
    return rc;
}

const struct pg_rel *pg_rels_find(const struct pg_rels *rels, const char *schema, const char *name)
{
    for (size_t i = 0; i < rels->n; i++) {
        if (strcmp(rels->v[i].schema, schema) == 0 && strcmp(rels->v[i].name, name) == 0) {
            return &rels->v[i];
        }
    }
    return NULL;
}

long pg_rel_col(const struct pg_rel *rel, const char *name)
{
    for (size_t i = 0; i < rel->ncols; i++) {
        if (strcmp(rel->cols[i].name, name) == 0) {
            return (long)i;
        }
    }
    return -1;
}

static enum ab_status str_array(struct ab_buf *out, const char *const *v, size_t n,
                                struct ab_error *err)
{
    if (ab_buf_addc(out, '[', err) != AB_OK) {
        return err->code;
    }
    for (size_t i = 0; i < n; i++) {
        if ((i > 0 && ab_buf_addc(out, ',', err) != AB_OK) ||
            ab_json_write_cstr(out, v[i], err) != AB_OK) {
            return err->code;
        }
    }
    return ab_buf_addc(out, ']', err);
}

enum ab_status pg_catalog_json(const struct pg_rels *rels, const char *method, struct ab_buf *out,
                               struct ab_error *err)
{
    bool xmin = strcmp(method, "Xmin") == 0;
    bool cdc = strcmp(method, "CDC") == 0;

    if (ab_buf_adds(out, "{\"streams\":[", err) != AB_OK) {
        return err->code;
    }
    for (size_t i = 0; i < rels->n; i++) {
        const struct pg_rel *rel = &rels->v[i];
        bool heap = rel->kind == 'r' || rel->kind == 'm';
        bool incr = xmin ? heap : cdc ? rel->kind == 'r' || rel->kind == 'p' : true;
        const char *updated = NULL;
        bool first = true;

        if ((i > 0 && ab_buf_addc(out, ',', err) != AB_OK) ||
            ab_buf_adds(out, "{\"name\":", err) != AB_OK ||
            ab_json_write_cstr(out, rel->name, err) != AB_OK ||
            ab_buf_adds(out, ",\"namespace\":", err) != AB_OK ||
            ab_json_write_cstr(out, rel->schema, err) != AB_OK ||
            ab_buf_adds(out,
                        ",\"json_schema\":{\"$schema\":\"http://json-schema.org/draft-07/schema#\","
                        "\"type\":\"object\",\"properties\":{",
                        err) != AB_OK) {
            return err->code;
        }
        for (size_t k = 0; k < rel->ncols; k++) {
            const struct pg_col *col = &rel->cols[k];

            if ((k > 0 && ab_buf_addc(out, ',', err) != AB_OK) ||
                ab_json_write_cstr(out, col->name, err) != AB_OK ||
                ab_buf_addc(out, ':', err) != AB_OK ||
                pg_column_schema(out, col->base, col->category, col->elem, col->notnull, err) !=
                    AB_OK) {
                return err->code;
            }
            if (!updated && pg_cursor_type(col->base) &&
                (strcmp(col->name, "updated_at") == 0 || strcmp(col->name, "modified_at") == 0)) {
                updated = col->name;
            }
        }
        if (cdc && incr &&
            ab_buf_adds(out,
                        ",\"_ab_cdc_lsn\":{\"type\":[\"null\",\"integer\"]},"
                        "\"_ab_cdc_updated_at\":{\"type\":[\"null\",\"string\"],\"format\":"
                        "\"date-time\"},\"_ab_cdc_deleted_at\":{\"type\":[\"null\",\"string\"],"
                        "\"format\":\"date-time\"},\"_ab_cdc_unchanged_columns\":{\"type\":["
                        "\"null\",\"array\"],\"items\":{\"type\":\"string\"}}",
                        err) != AB_OK) {
            return err->code;
        }
        if (cdc && incr) {
            updated = "_ab_cdc_lsn";
        }
        if (ab_buf_printf(out, err, "}},\"supported_sync_modes\":[\"full_refresh\"%s]",
                          incr ? ",\"incremental\"" : "") != AB_OK ||
            ab_buf_printf(out, err, ",\"source_defined_cursor\":%s",
                          xmin || cdc ? "true" : "false") != AB_OK ||
            ab_buf_adds(out, ",\"default_cursor_field\":", err) != AB_OK ||
            str_array(out, &updated, !xmin && updated ? 1 : 0, err) != AB_OK ||
            ab_buf_adds(out, ",\"source_defined_primary_key\":[", err) != AB_OK) {
            return err->code;
        }
        for (size_t k = 0; k < rel->npk; k++) {
            const char *name = rel->cols[rel->pk[k]].name;

            if ((k > 0 && ab_buf_addc(out, ',', err) != AB_OK) ||
                str_array(out, &name, 1, err) != AB_OK) {
                return err->code;
            }
        }
        if (ab_buf_printf(out, err, "],\"is_resumable\":%s,\"x-cursor-candidates\":[",
                          rel->npk > 0 || heap ? "true" : "false") != AB_OK) {
            return err->code;
        }
        for (size_t k = 0; k < rel->ncols; k++) {
            if (!pg_cursor_type(rel->cols[k].base)) {
                continue;
            }
            if ((!first && ab_buf_addc(out, ',', err) != AB_OK) ||
                ab_json_write_cstr(out, rel->cols[k].name, err) != AB_OK) {
                return err->code;
            }
            first = false;
        }
        if (ab_buf_adds(out, "]}", err) != AB_OK) {
            return err->code;
        }
    }
    return ab_buf_adds(out, "]}", err);
}
