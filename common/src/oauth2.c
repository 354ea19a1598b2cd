/* oauth2.c - OAuth 2.0 access tokens: refresh-token, password and client-credentials grants. */
/* SPDX-License-Identifier: MIT */
#include "ab/oauth2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/assert.h"
#include "ab/buf.h"
#include "ab/clock.h"
#include "ab/json.h"
#include "ab/log.h"
#include "ab/pager.h"

#include "oauth2_int.h"

#define TOKEN_MAX        16384 /* JWT access tokens run to a few kB */
#define DEFAULT_FRACTION 0.9
#define DEFAULT_LIFETIME 3600.0
/* a longer expires_in is taken as this (and a token is renewed at least
 * daily): the renewal time must stay far inside int64 microseconds */
#define MAX_LIFETIME 86400.0

struct ab_oauth2 {
    struct ab_driver *d;
    struct ab_http *h;
    char *token_url, *client_id, *client_secret, *username, *password, *scope, *extra_header,
        *refusal_hint;
    enum ab_oauth2_grant grant;
    enum ab_oauth2_client_auth client_auth;
    double fraction;
    ab_oauth2_rotate_fn on_rotate;
    void *rotate_arg;
    bool fail_driver;
    char *access;  /* TOKEN_MAX bytes, "" when none */
    char *refresh; /* TOKEN_MAX bytes, "" when none */
    /* The tokens they replaced (TOKEN_MAX bytes each, "" when none): still
     * masked; the ones before those left the mask. */
    char *prev_access;
    char *prev_refresh;
    char *given_refresh; /* the options' refresh token: never unregistered */
    int64_t renew_at_us;
    uint64_t fetches;
};

static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;

    while (n--) {
        *v++ = 0;
    }
}

static void free_str(char *s)
{
    if (s) {
        wipe(s, strlen(s));
        free(s);
    }
}

static void free_token(char *t)
{
    if (t) {
        wipe(t, TOKEN_MAX);
        free(t);
    }
}

static char *dup_or_null(const char *s, bool *oom)
{
    char *c;

    if (!s) {
        return NULL;
    }
    c = strdup(s);
    if (!c) {
        *oom = true;
    }
    return c;
}

void ab_oauth2_free(struct ab_oauth2 *a)
{
    if (!a) {
        return;
    }
    ab_http_free(a->h);
    free_str(a->token_url);
    free_str(a->client_id);
    free_str(a->client_secret);
    free_str(a->username);
    free_str(a->password);
    free_str(a->scope);
    free_str(a->extra_header);
    free_str(a->refusal_hint);
    free_token(a->access);
    free_token(a->refresh);
    free_token(a->prev_access);
    free_token(a->prev_refresh);
    free_str(a->given_refresh);
    free(a);
}

struct ab_oauth2 *ab_oauth2_new(const struct ab_oauth2_opts *o, const struct ab_http_opts *ho,
                                struct ab_error *err)
{
    struct ab_oauth2 *a = calloc(1, sizeof(*a));
    struct ab_http_opts to = *ho;
    bool oom = false;

    AB_ASSERT(o->token_url && o->client_id && o->client_secret);
    if (!a) {
        ab_error_set(err, AB_ERR_NOMEM, "out of memory (oauth2)");
        return NULL;
    }
    a->d = o->d;
    a->grant = o->grant;
    a->client_auth = o->client_auth;
    a->fraction = o->refresh_fraction > 0 && o->refresh_fraction <= 1 ? o->refresh_fraction
                                                                      : DEFAULT_FRACTION;
    a->on_rotate = o->on_rotate;
    a->rotate_arg = o->rotate_arg;
    a->fail_driver = o->fail_driver;
    a->token_url = dup_or_null(o->token_url, &oom);
    a->client_id = dup_or_null(o->client_id, &oom);
    a->client_secret = dup_or_null(o->client_secret, &oom);
    a->username = dup_or_null(o->username, &oom);
    a->password = dup_or_null(o->password, &oom);
    a->scope = dup_or_null(o->scope, &oom);
    a->extra_header = dup_or_null(o->extra_header, &oom);
    a->refusal_hint = dup_or_null(o->refusal_hint, &oom);
    a->given_refresh = dup_or_null(o->refresh_token, &oom);
    a->access = calloc(1, TOKEN_MAX);
    a->refresh = calloc(1, TOKEN_MAX);
    a->prev_access = calloc(1, TOKEN_MAX);
    a->prev_refresh = calloc(1, TOKEN_MAX);
    if (oom || !a->access || !a->refresh || !a->prev_access || !a->prev_refresh) {
        ab_error_set(err, AB_ERR_NOMEM, "out of memory (oauth2)");
        goto fail;
    }
    if (o->refresh_token) {
        if (strlen(o->refresh_token) >= TOKEN_MAX) {
            ab_error_set(err, AB_ERR_CONFIG, "the refresh token is longer than %d bytes",
                         TOKEN_MAX - 1);
            goto fail;
        }
        memcpy(a->refresh, o->refresh_token, strlen(o->refresh_token) + 1);
    }
    AB_ASSERT(a->grant != AB_OAUTH2_PASSWORD || (a->username && a->password));
    to.requests_per_second = 0;
    to.max_in_flight = 1;
    a->h = ab_http_new(&to, err);
    if (!a->h) {
        goto fail;
    }
    return a;
fail:
    ab_oauth2_free(a);
    return NULL;
}

uint64_t ab_oauth2_fetches(const struct ab_oauth2 *a)
{
    return a->fetches;
}

const char *ab_oauth2_refresh_token(const struct ab_oauth2 *a)
{
    return a->refresh;
}

static enum ab_status base64(struct ab_buf *out, const unsigned char *in, size_t n,
                             struct ab_error *err)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    enum ab_status rc = AB_OK;

    for (size_t i = 0; i < n && rc == AB_OK; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        char q[4];

        if (i + 1 < n) {
            v |= (unsigned)in[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= in[i + 2];
        }
        q[0] = tbl[(v >> 18) & 63];
        q[1] = tbl[(v >> 12) & 63];
        q[2] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? tbl[v & 63] : '=';
        rc = ab_buf_add(out, q, 4, err);
    }
    return rc;
}

/* "Authorization: Basic base64(urlenc(id):urlenc(secret))" */
static enum ab_status basic_header(struct ab_oauth2 *a, struct ab_buf *line, struct ab_error *err)
{
    struct ab_buf pair, id, secret;
    enum ab_status rc;

    ab_buf_init(&pair, AB_BUF_UNBOUNDED);
    ab_buf_init(&id, AB_BUF_UNBOUNDED);
    ab_buf_init(&secret, AB_BUF_UNBOUNDED);
    /* ab_form_add gives "k=v": encode each alone with an empty key */
    rc = ab_form_add(&id, "", a->client_id, err);
    if (rc == AB_OK) {
        rc = ab_form_add(&secret, "", a->client_secret, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_printf(&pair, err, "%s:%s", id.data + 1, secret.data + 1);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(line, "Authorization: Basic ", err);
    }
    if (rc == AB_OK) {
        rc = base64(line, (const unsigned char *)pair.data, pair.len, err);
    }
    if (pair.data) {
        wipe(pair.data, pair.len);
    }
    if (secret.data) {
        wipe(secret.data, secret.len);
    }
    ab_buf_release(&pair);
    ab_buf_release(&id);
    ab_buf_release(&secret);
    return rc;
}

/* The RFC 6749 error code of a token answer: "error" as a string, or the
 * "type" (else "code") of an "error" object; "" when none. */
static const char *error_code(yajl_val body)
{
    yajl_val e = ab_json_get(body, "error");
    const char *s = ab_json_str(e);

    if (!s && e && YAJL_IS_OBJECT(e)) {
        s = ab_json_get_str(e, "type", NULL);
        if (!s) {
            s = ab_json_get_str(e, "code", NULL);
        }
    }
    /* a code is an identifier: never echo anything else */
    if (!s || strlen(s) > 64 ||
        strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-.0123456789") !=
            strlen(s)) {
        return "";
    }
    return s;
}

static enum ab_status token_error(struct ab_oauth2 *a, int status, yajl_val body,
                                  struct ab_error *err)
{
    const char *code = error_code(body);

    if (status == 400 || status == 401 || status == 403) {
        if (a->grant == AB_OAUTH2_REFRESH && strcmp(code, "invalid_grant") == 0) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "the token endpoint refused the refresh token (invalid_grant): "
                                "it expired or was replaced; authorize the app again");
        }
        return ab_error_set(err, AB_ERR_CONFIG,
                            "the token endpoint '%s' refused the credentials (HTTP %d%s%s)%s%s",
                            a->token_url, status, *code ? ", " : "", code,
                            a->refusal_hint ? "; " : "", a->refusal_hint ? a->refusal_hint : "");
    }
    if (status == 404) {
        return ab_error_set(err, AB_ERR_CONFIG, "no token endpoint at '%s' (HTTP 404)",
                            a->token_url);
    }
    if (status == 408 || status == 429 || status >= 500) {
        return ab_error_set(err, AB_ERR_TRANSIENT, "the token endpoint '%s' answered HTTP %d%s%s",
                            a->token_url, status, *code ? ": " : "", code);
    }
    return ab_error_set(err, AB_ERR_PROTOCOL, "the token endpoint '%s' answered HTTP %d%s%s",
                        a->token_url, status, *code ? ": " : "", code);
}

static enum ab_status build_form(struct ab_oauth2 *a, struct ab_buf *form, struct ab_error *err)
{
    enum ab_status rc;

    if (a->grant == AB_OAUTH2_REFRESH) {
        if (!a->refresh[0]) {
            return ab_error_set(err, AB_ERR_CONFIG, "no refresh token to ask for an access token");
        }
        rc = ab_form_add(form, "grant_type", "refresh_token", err);
        if (rc == AB_OK) {
            rc = ab_form_add(form, "refresh_token", a->refresh, err);
        }
    } else if (a->grant == AB_OAUTH2_PASSWORD) {
        rc = ab_form_add(form, "grant_type", "password", err);
        if (rc == AB_OK) {
            rc = ab_form_add(form, "username", a->username, err);
        }
        if (rc == AB_OK) {
            rc = ab_form_add(form, "password", a->password, err);
        }
    } else {
        rc = ab_form_add(form, "grant_type", "client_credentials", err);
    }
    if (rc == AB_OK && a->client_auth == AB_OAUTH2_CLIENT_BODY) {
        rc = ab_form_add(form, "client_id", a->client_id, err);
        if (rc == AB_OK) {
            rc = ab_form_add(form, "client_secret", a->client_secret, err);
        }
        if (rc == AB_OK) {
            /* a server quoting the request body quotes the secret form-encoded */
            const char *enc = strstr(form->data, "&client_secret=");

            if (enc) {
                size_t n = strcspn(enc + 15, "&");
                char *copy = strndup(enc + 15, n);

                if (!copy) {
                    return ab_error_set(err, AB_ERR_NOMEM, "out of memory (oauth2)");
                }
                if (strcmp(copy, a->client_secret) != 0) {
                    rc = ab_driver_add_secret(a->d, copy, err);
                }
                free_str(copy);
            }
        }
    }
    if (rc == AB_OK && a->scope) {
        rc = ab_form_add(form, "scope", a->scope, err);
    }
    return rc;
}

static bool usable(const char *t)
{
    return t && *t && strlen(t) < TOKEN_MAX && !strpbrk(t, "\r\n");
}

static bool same(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* Whether t is a secret this provider still uses or was given (other: the
 * other kind's replaced token). */
static bool in_use(const struct ab_oauth2 *a, const char *t, const char *incoming,
                   const char *other)
{
    return same(t, incoming) || same(t, a->access) || same(t, a->refresh) || same(t, other) ||
           same(t, a->given_refresh) || same(t, a->client_secret) || same(t, a->password);
}

/* cur is being replaced by incoming: the token cur replaced (in prev)
 * leaves the mask, and cur takes its place in prev. */
static void retire(struct ab_oauth2 *a, char *prev, const char *other, const char *cur,
                   const char *incoming)
{
    if (same(cur, incoming)) {
        return;
    }
    if (prev[0] && !in_use(a, prev, incoming, other)) {
        ab_driver_remove_secret(a->d, prev);
    }
    wipe(prev, TOKEN_MAX);
    memcpy(prev, cur, strlen(cur) + 1);
}

/* Takes the answer: rotation first, then the access token. */
enum ab_status ab_oauth2_answer_parse(yajl_val body, const char **tok_out, const char **rt_out,
                                      double *life_out, struct ab_error *err)
{
    const char *tok = ab_json_get_str(body, "access_token", NULL);
    const char *type = ab_json_get_str(body, "token_type", "Bearer");
    double life = ab_json_get_double(body, "expires_in", DEFAULT_LIFETIME);

    *tok_out = NULL;
    *rt_out = ab_json_get_str(body, "refresh_token", NULL);
    *life_out = 0;
    if (!usable(tok)) {
        return ab_error_set(err, AB_ERR_PROTOCOL,
                            "the token endpoint answered without a usable access_token");
    }
    if (strcmp(type, "Bearer") != 0 && strcmp(type, "bearer") != 0) {
        return ab_error_set(err, AB_ERR_PROTOCOL,
                            "the token endpoint returned a token_type "
                            "other than Bearer");
    }
    if (!(life > 0)) {
        life = DEFAULT_LIFETIME;
    }
    if (life > MAX_LIFETIME) {
        life = MAX_LIFETIME;
    }
    *tok_out = tok;
    *life_out = life;
    return AB_OK;
}

static enum ab_status take_answer(struct ab_oauth2 *a, yajl_val body, struct ab_error *err)
{
    const char *tok, *rt;
    double life;
    enum ab_status rc = ab_oauth2_answer_parse(body, &tok, &rt, &life, err);

    if (rc != AB_OK) {
        return rc;
    }
    rc = ab_driver_add_secret(a->d, tok, err);
    if (rc != AB_OK) {
        return rc;
    }
    if (rt && *rt && a->grant == AB_OAUTH2_PASSWORD) {
        /* not used: each renewal signs in again; masked all the same */
        rc = ab_driver_add_secret(a->d, rt, err);
        if (rc != AB_OK) {
            return rc;
        }
    } else if (rt && *rt) {
        if (!usable(rt)) {
            return ab_error_set(err, AB_ERR_PROTOCOL,
                                "the token endpoint answered with an unusable refresh_token");
        }
        rc = ab_driver_add_secret(a->d, rt, err);
        if (rc != AB_OK) {
            return rc;
        }
        if (strcmp(rt, a->refresh) != 0) {
            if (a->on_rotate) {
                rc = a->on_rotate(a->rotate_arg, rt, err);
                if (rc != AB_OK) {
                    return ab_error_prefix(err, "cannot keep the new refresh token");
                }
            }
            retire(a, a->prev_refresh, a->prev_access, a->refresh, rt);
            wipe(a->refresh, TOKEN_MAX);
            memcpy(a->refresh, rt, strlen(rt) + 1);
            AB_INFO(ab_driver_emitter(a->d), "oauth2: the refresh token rotated");
        }
    }
    retire(a, a->prev_access, a->prev_refresh, a->access, tok);
    wipe(a->access, TOKEN_MAX);
    memcpy(a->access, tok, strlen(tok) + 1);
    a->renew_at_us = ab_now_us() + (int64_t)(life * a->fraction * 1e6);
    a->fetches++;
    AB_DEBUG(ab_driver_emitter(a->d), "oauth2: access token fetched (valid for %.0f s)", life);
    return AB_OK;
}

enum ab_status ab_oauth2_fetch(struct ab_oauth2 *a, struct ab_error *err)
{
    struct ab_http_req *r = NULL;
    struct ab_buf form, resp, line;
    yajl_val body = NULL;
    enum ab_status rc;
    int status = 0;

    ab_buf_init(&form, AB_BUF_UNBOUNDED);
    ab_buf_init(&resp, 1 << 20);
    ab_buf_init(&line, AB_BUF_UNBOUNDED);
    rc = build_form(a, &form, err);
    if (rc != AB_OK) {
        goto out;
    }
    r = ab_http_req_new("POST", a->token_url, err);
    if (!r) {
        rc = err->code;
        goto out;
    }
    ab_http_req_label(r, "POST token");
    rc = ab_http_req_header(r, "Accept: application/json", err);
    if (rc == AB_OK && a->extra_header) {
        rc = ab_http_req_header(r, a->extra_header, err);
    }
    if (rc == AB_OK && a->client_auth == AB_OAUTH2_CLIENT_BASIC) {
        rc = basic_header(a, &line, err);
        if (rc == AB_OK) {
            rc = ab_http_req_header(r, line.data, err);
        }
    }
    if (rc == AB_OK) {
        rc = ab_http_req_body(r, &form, "application/x-www-form-urlencoded", err);
    }
    if (rc != AB_OK) {
        ab_http_req_free(r);
        goto out;
    }
    rc = ab_http_run(a->h, r, &status, &resp, err);
    if (rc != AB_OK) {
        (void)ab_error_prefix(err, "cannot reach the token endpoint '%s'", a->token_url);
        goto out;
    }
    {
        struct ab_error perr;

        ab_error_init(&perr);
        body = ab_json_parse(resp.data ? resp.data : "", resp.len, &perr);
        rc = status != 200 ? token_error(a, status, body, err) : take_answer(a, body, err);
        if (rc != AB_OK && !body && resp.len) {
            /* say why no code or token was found: the body cannot be read */
            size_t n = strlen(err->message);

            (void)snprintf(err->message + n, sizeof(err->message) - n,
                           " (its body is unreadable: %.200s)", perr.message);
        }
    }
out:
    if (body) {
        ab_json_free(body);
    }
    if (resp.data) {
        wipe(resp.data, resp.len);
    }
    if (form.data) {
        wipe(form.data, form.len);
    }
    if (line.data) {
        wipe(line.data, line.len);
    }
    ab_buf_release(&resp);
    ab_buf_release(&form);
    ab_buf_release(&line);
    if (rc == AB_ERR_CONFIG && a->fail_driver) {
        ab_driver_fail(a->d, err);
    }
    return rc;
}

enum ab_status ab_oauth2_provide(void *arg, bool force, char *token, size_t size,
                                 struct ab_error *err)
{
    struct ab_oauth2 *a = arg;
    enum ab_status rc;
    size_t n;

    if (force || !a->access[0] || ab_now_us() >= a->renew_at_us) {
        if (force) {
            AB_INFO(ab_driver_emitter(a->d), "oauth2: the access token was refused; renewing it");
        }
        rc = ab_oauth2_fetch(a, err);
        if (rc != AB_OK) {
            return rc;
        }
    }
    n = strlen(a->access);
    if (n >= size) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "the access token is too long (%zu bytes)", n);
    }
    memcpy(token, a->access, n + 1);
    return AB_OK;
}

enum ab_http_verdict ab_oauth2_classify(void *arg, const struct ab_http_resp *answer)
{
    (void)arg;
    return answer->status == 401 ? AB_HTTP_REFRESH_AUTH : AB_HTTP_DEFAULT;
}
