/* check.c - source-postgres check: connection, schemas, readable relations. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "ab/json.h"

#include "pg_int.h"

enum ab_status pg_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err)
{
    char tmpdir[4096] = "";
    yajl_val cfg = ab_driver_config(d);
    yajl_val schemas = ab_json_get(cfg, "schemas");
    struct pg_rels rels = {0};
    PGconn *c;
    enum ab_status rc;

    rc = pg_connect(d, tmpdir, sizeof(tmpdir), false, &c, err);
    pg_tmpdir_remove(tmpdir);
    if (rc == AB_ERR_CONFIG || rc == AB_ERR_TRANSIENT) {
        ab_check_problem(chk, "%s", err->message);
        ab_error_init(err);
        return AB_OK;
    }
    if (rc != AB_OK) {
        return rc;
    }
    for (size_t i = 0; YAJL_IS_ARRAY(schemas) && i < schemas->u.array.len; i++) {
        const char *name = ab_json_str(schemas->u.array.values[i]);
        const char *params[1] = {name};
        PGresult *r = PQexecParams(c,
                                   "SELECT has_schema_privilege(n.oid, 'USAGE') FROM pg_namespace "
                                   "n WHERE n.nspname = $1",
                                   1, NULL, params, NULL, NULL, 0);

        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = pg_result_error(c, r, "reading the schemas", err);
            ab_check_problem(chk, "%s", err->message);
            ab_error_init(err);
        } else if (PQntuples(r) == 0) {
            ab_check_problem(chk, "schemas: no schema '%s' in database '%s'", name, PQdb(c));
        } else if (PQgetvalue(r, 0, 0)[0] != 't') {
            ab_check_problem(chk, "schemas: permission denied: the role may not use schema '%s'",
                             name);
        }
        PQclear(r);
    }
    rc = pg_load_rels(c, schemas, NULL, NULL, &rels, err);
    if (rc != AB_OK) {
        ab_check_problem(chk, "%s", err->message);
        ab_error_init(err);
    }
    pg_rels_release(&rels);
    {
        yajl_val rm = ab_json_get(cfg, "replication_method");

        if (strcmp(ab_json_get_str(rm, "method", ""), "CDC") == 0) {
            pg_cdc_check(c, ab_json_get_str(rm, "replication_slot", ""),
                         ab_json_get_str(rm, "publication", ""), chk);
        }
    }
    PQfinish(c);
    return AB_OK;
}
