/* check.c - destination-crm360: the check command. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/json.h"
#include "ab/log.h"
#include "ab/options.h"

#include "crm360_int.h"

/* No default brand: a mapping whose fields send no brand rejects every
 * record (a problem); records loaded with their own fields are rejected
 * when they carry none (a warning). */
static void check_brand_default(struct ab_driver *d, const struct ab_mappings *maps,
                                struct ab_check *chk)
{
    size_t i;
    size_t j;

    for (i = 0; i < maps->n; i++) {
        const struct ab_mapping *m = &maps->m[i];
        bool has = m->identity;

        for (j = 0; !has && j < m->nfields; j++) {
            has = strcmp(m->fields[j].to, "brand") == 0;
        }
        if (!has) {
            ab_check_problem(chk,
                             "stream_mappings[%zu] (stream '%s') maps no 'brand' and the config "
                             "sets no default brand: every record of the stream would be "
                             "rejected; set 'brand' or map a brand field",
                             i, m->stream);
        }
    }
    AB_WARN(ab_driver_emitter(d),
            "no default brand is set: every record without a 'brand' field will be rejected "
            "(and the sync fails once max_rejected_ratio or max_rejected_records is crossed); "
            "set 'brand' unless every record carries one");
}

/* The body starts, after blanks, with '<'. */
static bool looks_html(const struct ab_buf *body)
{
    size_t n = 0;

    while (n < body->len && n < 4096 && strchr(" \t\r\n", body->data[n])) {
        n++;
    }
    return n < body->len && body->data[n] == '<';
}

/* The answer to GET /v1/ping: a JSON object with "workspace" and
 * "scopes", or not CRM360 at all (an HTML page, a proxy, another API). */
static void check_ping(struct ab_check *chk, struct ab_emitter *em, const char *base,
                       const struct ab_buf *body)
{
    struct ab_error e;
    yajl_val root;
    yajl_val scopes;
    const char *workspace;
    bool write = false;
    bool read = false;
    size_t i;

    ab_error_init(&e);
    root = ab_json_parse(body->data ? body->data : "", body->len, &e);
    scopes = ab_json_get(root, "scopes");
    workspace = ab_json_get_str(root, "workspace", NULL);
    if (!root || root->type != yajl_t_object || !workspace || !scopes ||
        scopes->type != yajl_t_array) {
        ab_check_problem(chk,
                         "this is not a CRM360 API: GET %s/v1/ping answered HTTP 200 with %s, "
                         "not {\"workspace\": ..., \"scopes\": [...]}; check api_url",
                         base,
                         looks_html(body) ? "an HTML page"
                         : !root          ? "something that is not JSON"
                                          : "another JSON document");
    } else {
        for (i = 0; i < scopes->u.array.len; i++) {
            const char *s = ab_json_str(scopes->u.array.values[i]);

            write = write || (s && strcmp(s, "write") == 0);
            read = read || (s && strcmp(s, "read") == 0);
        }
        if (!write) {
            ab_check_problem(chk, "the api_key has no write scope in CRM360 workspace '%s'",
                             workspace);
        }
        if (!read) {
            AB_WARN(em,
                    "the api_key has no read scope in CRM360 workspace '%s': a refresh "
                    "(minimum_generation_id = generation_id) lists customers to remove earlier "
                    "generations and would fail",
                    workspace);
        }
    }
    if (root) {
        ab_json_free(root);
    }
}

enum ab_status crm_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err)
{
    yajl_val cfg = ab_driver_config(d);
    const char *url = ab_json_get_str(cfg, "api_url", NULL);
    struct ab_mappings maps;
    struct ab_http *http = NULL;
    struct ab_http_req *req;
    struct ab_buf body;
    struct ab_error e;
    char *base = NULL;
    char full[2048];
    int status = 0;

    (void)err;
    ab_error_init(&e);
    memset(&maps, 0, sizeof(maps));
    if (ab_mappings_parse(&maps, ab_json_get(cfg, "stream_mappings"), crm_object_names, &e) !=
        AB_OK) {
        ab_check_problem(chk, "%s", e.message);
    } else if (!ab_opt_str(cfg, "brand")) {
        check_brand_default(d, &maps, chk);
    }
    ab_mappings_release(&maps);
    if (ab_driver_check_url(url, "api_url", &e) != AB_OK) {
        ab_check_problem(chk, "%s", e.message);
        return AB_OK;
    }
    ab_buf_init(&body, 1 << 20);
    base = crm_dup_url(url);
    if (!base || crm_make_client(d, true, &http, &e) != AB_OK) {
        ab_check_problem(chk, "cannot set up the HTTP client: %s", e.message);
        goto out;
    }
    (void)snprintf(full, sizeof(full), "%s/v1/ping", base);
    req = ab_http_req_new("GET", full, &e);
    if (!req || ab_http_run(http, req, &status, &body, &e) != AB_OK) {
        ab_check_problem(chk, "cannot reach CRM360 at '%s': %s", base, e.message);
        goto out;
    }
    if (status == 401) {
        ab_check_problem(chk, "CRM360 rejected the api_key (HTTP 401)");
    } else if (status == 403) {
        ab_check_problem(chk, "the api_key may not use CRM360 (HTTP 403)");
    } else if (status != 200 && looks_html(&body)) {
        ab_check_problem(chk,
                         "this is not a CRM360 API: GET %s/v1/ping answered HTTP %d with an HTML "
                         "page; check api_url",
                         base, status);
    } else if (status != 200) {
        ab_check_problem(chk, "CRM360 answered GET /v1/ping with HTTP %d", status);
    } else {
        check_ping(chk, ab_driver_emitter(d), base, &body);
    }
out:
    crm_ledger_check(d);
    ab_http_free(http);
    ab_buf_release(&body);
    free(base);
    return AB_OK;
}
