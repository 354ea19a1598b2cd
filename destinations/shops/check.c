/* check.c - destination-shops check: every prerequisite, all problems at once. */
/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "ab/json.h"

#include "shops_int.h"

/*
 * The driver validated the config against the spec and probed the
 * dead-letter path already (under the dead_letter policy). Here: the URL,
 * the stream mappings, the spool directory, the credentials (a token) and
 * the channel (GET /v1/channels/{channel}, which also proves the token
 * works). Each failure is one ab_check_problem(); none stops the others,
 * except that the channel cannot be asked without a token.
 */

static void check_mappings(struct ab_check *chk, yajl_val cfg)
{
    struct ab_mappings maps;
    struct ab_error e;
    size_t i;
    size_t j;

    memset(&maps, 0, sizeof(maps));
    ab_error_init(&e);
    if (ab_mappings_parse(&maps, ab_json_get(cfg, "stream_mappings"), shp_objects(), &e) != AB_OK) {
        ab_check_problem(chk, "%s", e.message);
    } else {
        for (i = 0; i < maps.n; i++) {
            const struct ab_mapping *m = &maps.m[i];
            bool key = m->identity;

            for (j = 0; j < m->nfields && !key; j++) {
                key = strcmp(m->fields[j].to, "sku") == 0;
            }
            if (!key) {
                ab_check_problem(chk,
                                 "stream_mappings: the entry of stream '%s' does not map the "
                                 "key field 'sku'",
                                 m->stream);
            }
        }
    }
    ab_mappings_release(&maps);
}

static void check_channel(struct ab_driver *d, struct ab_check *chk, const struct shp_config *c,
                          struct ab_http *h)
{
    struct ab_error e;
    struct ab_buf url;
    struct ab_buf out;
    struct ab_http_req *r = NULL;
    int status = 0;

    (void)d;
    ab_error_init(&e);
    ab_buf_init(&url, 4096);
    ab_buf_init(&out, (size_t)1 << 20);
    if (ab_buf_printf(&url, &e, "%s/v1/channels/", c->api_url) != AB_OK ||
        shp_url_escape(&url, c->channel, &e) != AB_OK) {
        ab_check_problem(chk, "%s", e.message);
        goto out;
    }
    r = ab_http_req_new("GET", url.data, &e);
    if (!r) {
        ab_check_problem(chk, "%s", e.message);
        goto out;
    }
    ab_http_req_label(r, "GET channel");
    ab_http_req_classify(r, shp_classify, NULL);
    if (ab_http_run(h, r, &status, &out, &e) != AB_OK) {
        ab_check_problem(chk, "cannot read channel '%s': %s", c->channel, e.message);
    } else if (status == 404) {
        ab_check_problem(chk, "channel '%s' does not exist or these credentials cannot access it",
                         c->channel);
    } else if (status == 401 || status == 403) {
        ab_check_problem(chk, "the API refused access to channel '%s' (HTTP %d)", c->channel,
                         status);
    } else if (status != 200) {
        ab_check_problem(chk, "cannot read channel '%s': HTTP %d", c->channel, status);
    }
out:
    ab_buf_release(&out);
    ab_buf_release(&url);
}

enum ab_status shp_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err)
{
    yajl_val cfg = ab_driver_config(d);
    struct shp_config c;
    struct ab_oauth2 *auth = NULL;
    struct ab_http *h = NULL;
    struct ab_http_opts o;
    struct ab_error e;

    ab_error_init(&e);
    if (shp_config_load(&c, cfg, &e) != AB_OK) {
        ab_check_problem(chk, "%s", e.message);
        shp_config_release(&c);
        return AB_OK;
    }
    if (ab_driver_add_secret(d, c.client_secret, &e) != AB_OK) {
        shp_config_release(&c);
        *err = e;
        return e.code;
    }
    check_mappings(chk, cfg);
    if (ab_spool_probe_dir(c.spool_dir, &e) != AB_OK) {
        ab_check_problem(chk, "spool_dir: %s", e.message);
    }
    if (ab_driver_check_url(c.api_url, "api_url", &e) != AB_OK) {
        ab_check_problem(chk, "%s", e.message);
        goto out;
    }
    ab_driver_http_opts(d, &o);
    o.user_agent = "destination-shops/check";
    h = ab_http_new(&o, &e);
    if (!h) {
        ab_check_problem(chk, "%s", e.message);
        goto out;
    }
    auth = shp_auth_new(d, c.api_url, c.client_id, c.client_secret, &o, false, &e);
    if (!auth) {
        ab_check_problem(chk, "%s", e.message);
        goto out;
    }
    if (ab_oauth2_fetch(auth, &e) != AB_OK) {
        ab_check_problem(chk, "%s", e.message);
        goto out;
    }
    ab_http_set_auth(h, ab_oauth2_provide, auth);
    check_channel(d, chk, &c, h);
out:
    ab_http_free(h);
    ab_oauth2_free(auth);
    shp_config_release(&c);
    return AB_OK;
}
