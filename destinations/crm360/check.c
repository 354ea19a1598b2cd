/* check.c - destination-crm360: the check command. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/json.h"

#include "crm360_int.h"

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
    } else if (status != 200) {
        ab_check_problem(chk, "CRM360 answered GET /v1/ping with HTTP %d", status);
    } else {
        yajl_val root = ab_json_parse(body.data ? body.data : "", body.len, &e);
        yajl_val scopes = ab_json_get(root, "scopes");
        bool write = false;
        size_t i;

        for (i = 0; scopes && scopes->type == yajl_t_array && i < scopes->u.array.len; i++) {
            const char *s = ab_json_str(scopes->u.array.values[i]);

            write = write || (s && strcmp(s, "write") == 0);
        }
        if (!write) {
            ab_check_problem(chk, "the api_key has no write scope in CRM360 workspace '%s'",
                             ab_json_get_str(root, "workspace", "?"));
        }
        if (root) {
            ab_json_free(root);
        }
    }
out:
    ab_http_free(http);
    ab_buf_release(&body);
    free(base);
    return AB_OK;
}
