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
    struct ab_http_req *r;
    struct ab_buf resp, body;
    struct ab_error err;
    yajl_val v = NULL;
    char detail[400], what[128];
    int status = 0;

    ab_error_init(&err);
    ab_buf_init(&resp, (size_t)16 << 20);
    ab_buf_init(&body, 64 * 1024);
    (void)snprintf(what, sizeof(what), "POST %s", tm_stream_path(k));
    if (tm_search_body(k, &t->opts, t->start_date, t->run_start, 1, 1, &body, &err) != AB_OK) {
        ab_check_problem(chk, "stream '%s': %s", tm_stream_name(k), err.message);
        goto out;
    }
    r = tm_request(t, k, &body, what, &err);
    if (!r || ab_http_run(t->h, r, &status, &resp, &err) != AB_OK) {
        ab_check_problem(chk, "stream '%s': %s", tm_stream_name(k), err.message);
        goto out;
    }
    v = ab_json_parse(resp.data ? resp.data : "", resp.len, NULL);
    if (status != 200) {
        tm_error_detail(v, detail, sizeof(detail));
        (void)ab_http_status_error(status, false, what, *detail ? detail : NULL, &err);
        ab_check_problem(chk, "stream '%s': %s", tm_stream_name(k), err.message);
        goto out;
    }
    if (!v || !YAJL_IS_ARRAY(ab_json_get(v, "items"))) {
        ab_check_problem(chk, "stream '%s': %s: the answer is not {\"items\": [...], ...}",
                         tm_stream_name(k), what);
    }
out:
    if (v) {
        ab_json_free(v);
    }
    ab_buf_release(&resp);
    ab_buf_release(&body);
}

enum ab_status tm_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err)
{
    struct totvs t;
    struct ab_error e;

    memset(&t, 0, sizeof(t));
    ab_error_init(&e);
    if (tm_config(&t, d, &e) != AB_OK || tm_auth_new(&t, false, &e) != AB_OK) {
        if (e.code != AB_ERR_CONFIG) {
            tm_release(&t);
            *err = e;
            return e.code;
        }
        ab_check_problem(chk, "%s", e.message);
        tm_release(&t);
        return AB_OK;
    }
    /* the token first: refused credentials are the one problem to report */
    if (ab_oauth2_fetch(t.auth, &e) != AB_OK) {
        ab_check_problem(chk, "credentials: %s", e.message);
        tm_release(&t);
        return AB_OK;
    }
    t.run_start = ab_wall_ms() / 1000;
    for (int k = 0; k < TM_NKINDS; k++) {
        probe(&t, chk, (enum tm_kind)k);
    }
    tm_release(&t);
    return AB_OK;
}
