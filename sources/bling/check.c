/* check.c - source-bling check: the credentials, then one read per stream. */
/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ab/json.h"

#include "bling_int.h"

/* One GET of path (its "data" list) for stream name; the answer or NULL
 * (the problem reported). The caller frees the answer. */
static yajl_val probe(struct bling *b, struct ab_check *chk, const char *name, const char *path)
{
    struct ab_probe p = {name, NULL, "data", bl_error_detail};
    struct ab_http_req *r = NULL;
    struct ab_error err;
    char what[128];

    ab_error_init(&err);
    (void)snprintf(what, sizeof(what), "GET %s", path);
    p.what = what;
    ab_buf_reset(&b->url);
    if (ab_buf_printf(&b->url, &err, "%s%s", b->api_url, path) == AB_OK) {
        r = bl_request(b, b->url.data, path, &err);
    }
    return ab_check_probe(chk, b->h, r, &p, &err);
}

enum ab_status bl_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err)
{
    struct bling b;
    struct ab_error e;
    yajl_val body;
    int64_t id = 0;
    char path[96];
    enum ab_status rc;

    memset(&b, 0, sizeof(b));
    ab_error_init(&e);
    rc = bl_config(&b, d, &e);
    if (rc == AB_OK) {
        rc = bl_auth_new(&b, false, &e);
    }
    /* the token first: a refused refresh token is the one problem to report */
    if (!ab_check_begin(chk, rc, &e, b.auth, err)) {
        bl_release(&b);
        return err->code;
    }
    if ((body = probe(&b, chk, "contatos", "/contatos?pagina=1&limite=1&criterio=1"))) {
        ab_json_free(body);
    }
    if ((body = probe(&b, chk, "pedidos", "/pedidos/vendas?pagina=1&limite=1"))) {
        ab_json_free(body);
    }
    if ((body = probe(&b, chk, "variacoes", "/produtos?pagina=1&limite=1&criterio=5&tipo=V"))) {
        ab_json_free(body);
    }
    if ((body = probe(&b, chk, "produtos", "/produtos?pagina=1&limite=1&criterio=5&tipo=T"))) {
        yajl_val data = ab_json_get(body, "data");

        if (data->u.array.len > 0) {
            (void)ab_json_int(ab_json_get(data->u.array.values[0], "id"), &id);
        }
        ab_json_free(body);
        if (id > 0) {
            (void)snprintf(path, sizeof(path), "/estoques/saldos?idsProdutos%%5B%%5D=%" PRId64, id);
            if ((body = probe(&b, chk, "estoques", path))) {
                ab_json_free(body);
            }
        }
    }
    bl_release(&b);
    return AB_OK;
}
