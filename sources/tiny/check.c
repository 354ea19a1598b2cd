/* check.c - source-tiny check: the credentials, then one read per stream. */
/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/json.h"

#include "tiny_int.h"

/* One GET; its failure (if any) as a problem of stream name. On success
 * *body is the parsed answer (the caller frees it); with list set it must
 * be a list answer. */
static bool probe(struct tiny *t, struct ab_check *chk, const char *name, const char *path,
                  bool list, yajl_val *body)
{
    struct ab_http_req *r;
    struct ab_buf resp;
    struct ab_error err;
    char detail[400];
    int status = 0;
    bool ok = false;

    *body = NULL;
    ab_error_init(&err);
    ab_buf_init(&resp, (size_t)16 << 20);
    ab_buf_reset(&t->url);
    if (ab_buf_printf(&t->url, &err, "%s%s", t->api_url, path) != AB_OK) {
        goto out;
    }
    r = tn_request(t, t->url.data, path, &err);
    if (!r || ab_http_run(t->h, r, &status, &resp, &err) != AB_OK) {
        ab_check_problem(chk, "stream '%s': %s", name, err.message);
        goto out;
    }
    if (status != 200) {
        yajl_val e = ab_json_parse(resp.data ? resp.data : "", resp.len, NULL);

        tn_error_detail(e, detail, sizeof(detail));
        if (e) {
            ab_json_free(e);
        }
        (void)ab_http_status_error(status, false, path, detail, &err);
        ab_check_problem(chk, "stream '%s': %s", name, err.message);
        goto out;
    }
    *body = ab_json_parse(resp.data ? resp.data : "", resp.len, &err);
    if (!*body || !YAJL_IS_OBJECT(*body) || (list && !YAJL_IS_ARRAY(ab_json_get(*body, "itens")))) {
        ab_check_problem(chk, "stream '%s': GET %s: the answer is not %s", name, path,
                         list ? "{\"itens\": [...]}" : "a JSON object");
        goto out;
    }
    ok = true;
out:
    if (!ok && *body) {
        ab_json_free(*body);
        *body = NULL;
    }
    ab_buf_release(&resp);
    return ok;
}

enum ab_status tn_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err)
{
    struct tiny t;
    struct ab_error e;
    yajl_val body = NULL;
    int64_t ids[10], stock_id = 0;
    bool parent[10];
    size_t n = 0, items = 0;
    int64_t total;
    char path[96];

    memset(&t, 0, sizeof(t));
    ab_error_init(&e);
    if (tn_config(&t, d, &e) != AB_OK || tn_auth_new(&t, false, &e) != AB_OK) {
        if (e.code != AB_ERR_CONFIG) {
            tn_release(&t);
            *err = e;
            return e.code;
        }
        ab_check_problem(chk, "%s", e.message);
        tn_release(&t);
        return AB_OK;
    }
    /* the token first: a refused refresh token is the one problem to report */
    if (ab_oauth2_fetch(t.auth, &e) != AB_OK) {
        ab_check_problem(chk, "credentials: %s", e.message);
        tn_release(&t);
        return AB_OK;
    }
    if (probe(&t, chk, "contatos", "/contatos?limit=1&offset=0", true, &body)) {
        ab_json_free(body);
    }
    if (probe(&t, chk, "pedidos", "/pedidos?limit=1&offset=0", true, &body)) {
        ab_json_free(body);
    }
    if (probe(&t, chk, "produtos", "/produtos?limit=10&offset=0", true, &body)) {
        /* estoque: the stock of a product that has some of its own */
        if (tn_list_parse(body, ids, parent, 10, &n, &items, &total, &e) != AB_OK) {
            ab_check_problem(chk, "stream 'produtos': GET /produtos: %s", e.message);
            n = 0;
        }
        ab_json_free(body);
        for (size_t i = 0; i < n && stock_id == 0; i++) {
            stock_id = parent[i] ? 0 : ids[i];
        }
        if (stock_id > 0) {
            (void)snprintf(path, sizeof(path), "/estoque/%" PRId64, stock_id);
            if (probe(&t, chk, "estoque", path, false, &body)) {
                ab_json_free(body);
            }
        }
    }
    tn_release(&t);
    return AB_OK;
}
