/* check.c - source-tiny check: the credentials, then one read per stream. */
/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ab/json.h"

#include "tiny_int.h"

/* One GET of path for stream name, with list set a list answer ("itens");
 * the answer or NULL (the problem reported). The caller frees the answer. */
static yajl_val probe(struct tiny *t, struct ab_check *chk, const char *name, const char *path,
                      bool list)
{
    struct ab_probe p = {name, NULL, list ? "itens" : NULL, tn_error_detail};
    struct ab_http_req *r = NULL;
    struct ab_error err;
    char what[128];

    ab_error_init(&err);
    (void)snprintf(what, sizeof(what), "GET %s", path);
    p.what = what;
    ab_buf_reset(&t->url);
    if (ab_buf_printf(&t->url, &err, "%s%s", t->api_url, path) == AB_OK) {
        r = tn_request(t, t->url.data, path, &err);
    }
    return ab_check_probe(chk, t->h, r, &p, &err);
}

enum ab_status tn_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err)
{
    struct tiny t;
    struct ab_error e;
    yajl_val body;
    int64_t ids[10], stock_id = 0;
    bool parent[10];
    size_t n = 0, items = 0;
    int64_t total;
    char path[96];
    enum ab_status rc;

    memset(&t, 0, sizeof(t));
    ab_error_init(&e);
    rc = tn_config(&t, d, &e);
    if (rc == AB_OK) {
        rc = tn_auth_new(&t, false, &e);
    }
    /* the token first: a refused refresh token is the one problem to report */
    if (!ab_check_begin(chk, rc, &e, t.auth, err)) {
        tn_release(&t);
        return err->code;
    }
    if ((body = probe(&t, chk, "contatos", "/contatos?limit=1&offset=0", true))) {
        ab_json_free(body);
    }
    if ((body = probe(&t, chk, "pedidos", "/pedidos?limit=1&offset=0", true))) {
        ab_json_free(body);
    }
    if ((body = probe(&t, chk, "produtos", "/produtos?limit=10&offset=0", true))) {
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
            if ((body = probe(&t, chk, "estoque", path, false))) {
                ab_json_free(body);
            }
        }
    }
    tn_release(&t);
    return AB_OK;
}
