/* oauth2.h - OAuth 2.0 access tokens: refresh-token, password and client-credentials grants. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_OAUTH2_H
#define AB_OAUTH2_H

#include <stdbool.h>
#include <stdint.h>

#include "ab/driver.h"
#include "ab/error.h"
#include "ab/http.h"

/*
 * A token provider for the HTTP client (ab_http_set_auth(h, ab_oauth2_provide,
 * a)). It fetches an access token from the token endpoint when it has none,
 * when refresh_fraction of its lifetime (expires_in) has passed, or when the
 * client asks (a 401 the request's classifier turned into
 * AB_HTTP_REFRESH_AUTH; ab_oauth2_classify does that for every 401).
 *
 * Grants:
 *   AB_OAUTH2_REFRESH   grant_type=refresh_token with the current refresh
 *                       token (authorization-code apps). When the answer
 *                       carries a new refresh_token (rotation: the old one is
 *                       dead from now on), on_rotate is called with it BEFORE
 *                       the new access token is handed out; a source makes it
 *                       durable there (ab_source_control_config()), so a crash
 *                       at any later point never strands the connection with
 *                       a dead refresh token. A failing on_rotate fails the
 *                       fetch and the token is not used.
 *   AB_OAUTH2_PASSWORD  grant_type=password with username and password
 *                       (resource-owner password credentials), each time;
 *                       a refresh_token in the answer is masked, never used.
 *   AB_OAUTH2_CLIENT_CREDENTIALS  grant_type=client_credentials (RFC 6749
 *                       4.4): the client's own credentials, each time.
 * Client authentication: HTTP Basic (client_id:client_secret, form-encoded as
 * RFC 6749 2.3.1 asks) or client_id/client_secret in the form body.
 *
 * Errors of a fetch: the endpoint refusing the grant or the client (400 or
 * 401, RFC 6749 "error" as a string, or an object with a "type") or answering
 * 404 is AB_ERR_CONFIG naming the error code, never a token; 408, 429, 5xx
 * and transport failures after the client's retries are AB_ERR_TRANSIENT;
 * an answer without a usable access_token is AB_ERR_PROTOCOL. With
 * fail_driver set, an AB_ERR_CONFIG also goes to ab_driver_fail() (the
 * request that needed the token only sees a transport failure).
 *
 * Every token (access and refresh) is registered with ab_driver_add_secret()
 * before it is stored, so no log or error can show it (with client_id and
 * client_secret in the body, the secret's form-encoded spelling too, for a
 * server quoting the request). A replaced token stays masked while answers
 * to requests that carried it may still come; the one it replaced leaves
 * the mask (ab_driver_remove_secret), unless it equals a secret still in
 * use, so a long run that renews its token every few minutes never fills
 * the mask (a full mask fails the fetch). The refresh token given in the
 * options is never unregistered. Tokens are wiped from memory when
 * replaced or freed. Single-threaded: use
 * from the loop's thread only; the fetch is a blocking call on its own
 * client (the token endpoint is not rate-limited with the API).
 */
enum ab_oauth2_grant { AB_OAUTH2_REFRESH = 0, AB_OAUTH2_PASSWORD, AB_OAUTH2_CLIENT_CREDENTIALS };
enum ab_oauth2_client_auth { AB_OAUTH2_CLIENT_BASIC = 0, AB_OAUTH2_CLIENT_BODY };

typedef enum ab_status (*ab_oauth2_rotate_fn)(void *arg, const char *refresh_token,
                                              struct ab_error *err);

struct ab_oauth2_opts {
    struct ab_driver *d; /* secrets, logs, ab_driver_fail(); borrowed */
    const char *token_url;
    const char *client_id;
    const char *client_secret;
    enum ab_oauth2_grant grant;
    enum ab_oauth2_client_auth client_auth;
    const char *refresh_token;     /* AB_OAUTH2_REFRESH */
    const char *username;          /* AB_OAUTH2_PASSWORD */
    const char *password;          /* AB_OAUTH2_PASSWORD */
    const char *scope;             /* sent when not NULL */
    const char *extra_header;      /* one "Name: value" line, NULL: none */
    const char *refusal_hint;      /* appended to a refusal's error, NULL: none */
    double refresh_fraction;       /* of expires_in; <= 0 or > 1: 0.9 */
    ab_oauth2_rotate_fn on_rotate; /* NULL: rotation is only kept in memory */
    void *rotate_arg;
    bool fail_driver;
};

struct ab_oauth2;

/* Strings are copied; http options are copied (its rate limit is dropped). */
struct ab_oauth2 *ab_oauth2_new(const struct ab_oauth2_opts *o, const struct ab_http_opts *ho,
                                struct ab_error *err);
void ab_oauth2_free(struct ab_oauth2 *a);

/* Fetches a token now (check: "are the credentials good?"). */
enum ab_status ab_oauth2_fetch(struct ab_oauth2 *a, struct ab_error *err);
/* ab_http_auth_fn. */
enum ab_status ab_oauth2_provide(void *arg, bool force, char *token, size_t size,
                                 struct ab_error *err);
/* ab_http_classify_fn: 401 is AB_HTTP_REFRESH_AUTH, the rest AB_HTTP_DEFAULT. */
enum ab_http_verdict ab_oauth2_classify(void *arg, const struct ab_http_resp *answer);
/* Token fetches so far. */
uint64_t ab_oauth2_fetches(const struct ab_oauth2 *a);
/* The current refresh token (borrowed, "" when none). */
const char *ab_oauth2_refresh_token(const struct ab_oauth2 *a);

#endif
