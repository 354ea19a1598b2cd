/* auth.c - OAuth 2.0 client-credentials tokens for the Shops API. */
/* SPDX-License-Identifier: MIT */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/clock.h"
#include "ab/json.h"
#include "ab/log.h"

#include "shops_int.h"
#include "wire.h"

#define TOKEN_MAX       8192
#define REFRESH_PERCENT 0.9
/* a longer expires_in (1e300) is taken as this: a token is renewed at least
 * daily, and the renewal time stays far inside int64 microseconds */
#define MAX_LIFETIME_S 86400.0

struct shp_auth {
    struct ab_driver *d;
    struct ab_http *h;
    char *url;
    char *client_id;
    char *client_secret;
    char *token; /* TOKEN_MAX bytes; "" when none */
    /* The token it replaced (TOKEN_MAX bytes): still masked, since answers
     * to requests that carried it may still come; the one before leaves
     * the mask, so a long run does not fill it. */
    char *prev;
    int64_t refresh_at_us;
    bool fail_driver;
    uint64_t fetches;
};

static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;

    while (n--) {
        *v++ = 0;
    }
}

static void free_secret(char *s, size_t n)
{
    if (s) {
        wipe(s, n);
        free(s);
    }
}

void shp_auth_free(struct shp_auth *a)
{
    if (!a) {
        return;
    }
    ab_http_free(a->h);
    free(a->url);
    free(a->client_id);
    if (a->client_secret) {
        free_secret(a->client_secret, strlen(a->client_secret));
    }
    free_secret(a->token, TOKEN_MAX);
    free_secret(a->prev, TOKEN_MAX);
    free(a);
}

struct shp_auth *shp_auth_new(struct ab_driver *d, const char *api_url, const char *client_id,
                              const char *client_secret, const struct ab_http_opts *o,
                              bool fail_driver, struct ab_error *err)
{
    struct shp_auth *a = calloc(1, sizeof(*a));
    struct ab_http_opts to;
    size_t n;

    if (!a) {
        ab_error_set(err, AB_ERR_NOMEM, "out of memory (auth)");
        return NULL;
    }
    a->d = d;
    a->fail_driver = fail_driver;
    n = strlen(api_url) + sizeof("/oauth/token");
    a->url = malloc(n);
    a->client_id = strdup(client_id);
    a->client_secret = strdup(client_secret);
    a->token = calloc(1, TOKEN_MAX);
    a->prev = calloc(1, TOKEN_MAX);
    if (!a->url || !a->client_id || !a->client_secret || !a->token || !a->prev) {
        ab_error_set(err, AB_ERR_NOMEM, "out of memory (auth)");
        goto fail;
    }
    (void)snprintf(a->url, n, "%s/oauth/token", api_url);
    to = *o;
    to.requests_per_second = 0; /* the token endpoint is not rate-limited */
    to.max_in_flight = 1;
    a->h = ab_http_new(&to, err);
    if (!a->h) {
        goto fail;
    }
    return a;
fail:
    shp_auth_free(a);
    return NULL;
}

uint64_t shp_auth_fetches(const struct shp_auth *a)
{
    return a->fetches;
}

enum ab_status shp_auth_parse(yajl_val body, const char **token, double *expires_in,
                              struct ab_error *err)
{
    const char *t = ab_json_get_str(body, "access_token", NULL);
    const char *type = ab_json_get_str(body, "token_type", "Bearer");
    double e = ab_json_get_double(body, "expires_in", 3600);

    if (!t || !*t || strlen(t) >= TOKEN_MAX || strpbrk(t, "\r\n")) {
        return ab_error_set(err, AB_ERR_PROTOCOL,
                            "the token endpoint answered without a usable access_token");
    }
    if (strcmp(type, "Bearer") != 0 && strcmp(type, "bearer") != 0) {
        return ab_error_set(err, AB_ERR_PROTOCOL,
                            "the token endpoint returned token_type '%s', not 'Bearer'", type);
    }
    if (!(e > 0)) {
        e = 3600;
    }
    if (e > MAX_LIFETIME_S) {
        e = MAX_LIFETIME_S;
    }
    *token = t;
    *expires_in = e;
    return AB_OK;
}

/* Maps a non-200 token answer to an error. */
static enum ab_status token_error(struct shp_auth *a, int status, yajl_val body,
                                  struct ab_error *err)
{
    const char *code = shp_error_code(body);

    if (status == 401 || (status == 400 && strcmp(code, "invalid_client") == 0)) {
        return ab_error_set(err, AB_ERR_CONFIG,
                            "the Shops API rejected the client credentials (client_id '%s'): %s",
                            a->client_id, *code ? code : "unauthorized");
    }
    if (status == 400) {
        return ab_error_set(err, AB_ERR_CONFIG, "the token endpoint '%s' refused the request: %s",
                            a->url, *code ? code : "HTTP 400");
    }
    if (status == 408 || status == 429 || status >= 500) {
        return ab_error_set(err, AB_ERR_TRANSIENT, "the token endpoint '%s' answered HTTP %d",
                            a->url, status);
    }
    if (status == 404) {
        return ab_error_set(err, AB_ERR_CONFIG,
                            "no token endpoint at '%s' (HTTP 404): check api_url", a->url);
    }
    return ab_error_set(err, AB_ERR_PROTOCOL, "the token endpoint '%s' answered HTTP %d%s%s",
                        a->url, status, *code ? ": " : "", code);
}

enum ab_status shp_auth_fetch(struct shp_auth *a, struct ab_error *err)
{
    struct ab_http_req *r = NULL;
    struct ab_buf form;
    struct ab_buf resp;
    yajl_val body = NULL;
    const char *tok = NULL;
    double expires_in = 0;
    struct ab_error perr;
    enum ab_status rc;
    int status = 0;

    ab_buf_init(&form, 16384);
    ab_buf_init(&resp, AB_BUF_UNBOUNDED);
    rc = shp_form_add(&form, "grant_type", "client_credentials", err);
    if (rc == AB_OK) {
        rc = shp_form_add(&form, "client_id", a->client_id, err);
    }
    if (rc == AB_OK) {
        rc = shp_form_add(&form, "client_secret", a->client_secret, err);
    }
    if (rc == AB_OK) {
        /* a server quoting the request body quotes the secret URL-encoded */
        const char *enc = strstr(form.data, "&client_secret=");

        if (enc && strcmp(enc + 15, a->client_secret) != 0) {
            rc = ab_driver_add_secret(a->d, enc + 15, err);
        }
    }
    if (rc != AB_OK) {
        goto out;
    }
    r = ab_http_req_new("POST", a->url, err);
    if (!r) {
        rc = err->code;
        goto out;
    }
    ab_http_req_label(r, "POST /oauth/token");
    rc = ab_http_req_header(r, "Accept: application/json", err);
    if (rc == AB_OK) {
        rc = ab_http_req_body(r, &form, "application/x-www-form-urlencoded", err);
    }
    if (rc != AB_OK) {
        ab_http_req_free(r);
        goto out;
    }
    rc = ab_http_run(a->h, r, &status, &resp, err);
    if (rc != AB_OK) {
        (void)ab_error_prefix(err, "cannot reach the token endpoint '%s'", a->url);
        goto out;
    }
    ab_error_init(&perr);
    body = ab_json_parse(resp.data ? resp.data : "", resp.len, &perr);
    rc = status != 200 ? token_error(a, status, body, err)
                       : shp_auth_parse(body, &tok, &expires_in, err);
    if (rc != AB_OK) {
        if (!body && resp.len) {
            /* say why no code or token was found: the body cannot be read */
            size_t n = strlen(err->message);

            (void)snprintf(err->message + n, sizeof(err->message) - n,
                           " (its body is unreadable: %.200s)", perr.message);
        }
        goto out;
    }
    /* Masked before it can appear anywhere. */
    rc = ab_driver_add_secret(a->d, tok, err);
    if (rc != AB_OK) {
        goto out;
    }
    if (a->prev[0] && strcmp(a->prev, tok) != 0 && strcmp(a->prev, a->token) != 0 &&
        strcmp(a->prev, a->client_secret) != 0) {
        ab_driver_remove_secret(a->d, a->prev);
    }
    wipe(a->prev, TOKEN_MAX);
    memcpy(a->prev, a->token, strlen(a->token) + 1);
    wipe(a->token, TOKEN_MAX);
    memcpy(a->token, tok, strlen(tok) + 1);
    a->refresh_at_us = ab_now_us() + (int64_t)(expires_in * REFRESH_PERCENT * 1e6);
    a->fetches++;
    AB_DEBUG(ab_driver_emitter(a->d), "access token fetched (valid for %.0f s)", expires_in);
out:
    if (body) {
        ab_json_free(body);
    }
    if (resp.data) {
        wipe(resp.data, resp.len);
    }
    ab_buf_release(&resp);
    if (form.data) {
        wipe(form.data, form.len);
    }
    ab_buf_release(&form);
    return rc;
}

enum ab_status shp_auth_provide(void *arg, bool force, char *token, size_t size,
                                struct ab_error *err)
{
    struct shp_auth *a = arg;
    enum ab_status rc;
    size_t n;

    if (force || !a->token[0] || ab_now_us() >= a->refresh_at_us) {
        if (force) {
            AB_INFO(ab_driver_emitter(a->d), "the access token was refused: fetching a new one");
        }
        rc = shp_auth_fetch(a, err);
        if (rc != AB_OK) {
            if (rc == AB_ERR_CONFIG && a->fail_driver) {
                ab_driver_fail(a->d, err);
            }
            return rc;
        }
    }
    n = strlen(a->token);
    if (n >= size) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "the access token is too long (%zu bytes)", n);
    }
    memcpy(token, a->token, n + 1);
    return AB_OK;
}

enum ab_http_verdict shp_classify(void *arg, const struct ab_http_resp *answer)
{
    yajl_val body;
    bool expired;

    (void)arg;
    if (answer->status != 401) {
        return AB_HTTP_DEFAULT;
    }
    body = ab_json_parse(answer->body, answer->body_len, NULL);
    expired = strcmp(shp_error_code(body), "token_expired") == 0;
    if (body) {
        yajl_tree_free(body);
    }
    return expired ? AB_HTTP_REFRESH_AUTH : AB_HTTP_DEFAULT;
}
