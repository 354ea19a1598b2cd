/* check.c - source-bling check: the credentials, then one read per stream. */
/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/json.h"

#include "bling_int.h"

/* One GET; its failure (if any) as a problem of stream name. On success
 * *body is the parsed answer (the caller frees it). */
static bool probe(struct bling *b, struct ab_check *chk, const char *name, const char *path,
                  yajl_val *body)
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
    ab_buf_reset(&b->url);
    if (ab_buf_printf(&b->url, &err, "%s%s", b->api_url, path) != AB_OK) {
        goto out;
    }
    r = bl_request(b, b->url.data, path, &err);
    if (!r || ab_http_run(b->h, r, &status, &resp, &err) != AB_OK) {
        ab_check_problem(chk, "stream '%s': %s", name, err.message);
        goto out;
    }
    if (status != 200) {
        yajl_val e = ab_json_parse(resp.data ? resp.data : "", resp.len, NULL);

        bl_error_detail(e, detail, sizeof(detail));
        if (e) {
            ab_json_free(e);
        }
        (void)ab_http_status_error(status, false, path, detail, &err);
        ab_check_problem(chk, "stream '%s': %s", name, err.message);
        goto out;
    }
    *body = ab_json_parse(resp.data ? resp.data : "", resp.len, &err);
    if (!*body || !YAJL_IS_ARRAY(ab_json_get(*body, "data"))) {
        ab_check_problem(chk, "stream '%s': GET %s: the answer is not {\"data\": [...]}", name,
                         path);
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

enum ab_status bl_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err)
{
    struct bling b;
    struct ab_error e;
    yajl_val body = NULL;
    int64_t id = 0;
    char path[96];

    memset(&b, 0, sizeof(b));
    ab_error_init(&e);
    if (bl_config(&b, d, &e) != AB_OK || bl_auth_new(&b, false, &e) != AB_OK) {
        if (e.code != AB_ERR_CONFIG) {
            bl_release(&b);
            *err = e;
            return e.code;
        }
        ab_check_problem(chk, "%s", e.message);
        bl_release(&b);
        return AB_OK;
    }
    /* the token first: a refused refresh token is the one problem to report */
    if (ab_oauth2_fetch(b.auth, &e) != AB_OK) {
        ab_check_problem(chk, "credentials: %s", e.message);
        bl_release(&b);
        return AB_OK;
    }
    if (probe(&b, chk, "contatos", "/contatos?pagina=1&limite=1&criterio=1", &body)) {
        ab_json_free(body);
    }
    if (probe(&b, chk, "pedidos", "/pedidos/vendas?pagina=1&limite=1", &body)) {
        ab_json_free(body);
    }
    if (probe(&b, chk, "variacoes", "/produtos?pagina=1&limite=1&criterio=5&tipo=V", &body)) {
        ab_json_free(body);
    }
    if (probe(&b, chk, "produtos", "/produtos?pagina=1&limite=1&criterio=5&tipo=T", &body)) {
        yajl_val data = ab_json_get(body, "data");

        if (data->u.array.len > 0) {
            (void)ab_json_int(ab_json_get(data->u.array.values[0], "id"), &id);
        }
        ab_json_free(body);
        if (id > 0) {
            (void)snprintf(path, sizeof(path), "/estoques/saldos?idsProdutos%%5B%%5D=%" PRId64, id);
            if (probe(&b, chk, "estoques", path, &body)) {
                ab_json_free(body);
            }
        }
    }
    bl_release(&b);
    return AB_OK;
}
