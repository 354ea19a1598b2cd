/* check.c - source-totvs-moda check: the credentials, then one search per stream. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/clock.h"
#include "ab/json.h"

#include "totvs_int.h"

/* One search of a page of one record; its failure (if any) as a problem of
 * the stream. */
static void probe(struct totvs *t, struct ab_check *chk, enum tm_kind k)
{
    struct ab_probe p = {tm_stream_name(k), NULL, "items", tm_error_detail};
    struct ab_http_req *r = NULL;
    struct ab_buf body;
    struct ab_error err;
    yajl_val v;
    char what[128];

    ab_error_init(&err);
    ab_buf_init(&body, 64 * 1024);
    (void)snprintf(what, sizeof(what), "POST %s", tm_stream_path(k));
    p.what = what;
    if (tm_search_body(k, &t->opts, t->start_date, t->run_start, 1, 1, &body, &err) == AB_OK) {
        r = tm_request(t, k, &body, what, &err);
    }
    v = ab_check_probe(chk, t->h, r, &p, &err);
    if (v) {
        ab_json_free(v);
    }
    ab_buf_release(&body);
}

enum ab_status tm_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err)
{
    struct totvs t;
    struct ab_error e;
    enum ab_status rc;

    memset(&t, 0, sizeof(t));
    ab_error_init(&e);
    rc = tm_config(&t, d, &e);
    if (rc == AB_OK) {
        rc = tm_auth_new(&t, false, &e);
    }
    /* the token first: refused credentials are the one problem to report */
    if (!ab_check_begin(chk, rc, &e, t.auth, err)) {
        tm_release(&t);
        return err->code;
    }
    t.run_start = ab_wall_ms() / 1000;
    for (int k = 0; k < TM_NKINDS; k++) {
        probe(&t, chk, (enum tm_kind)k);
    }
    tm_release(&t);
    return AB_OK;
}
