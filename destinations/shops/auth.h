/* auth.h - OAuth 2.0 client-credentials tokens for the Shops API. */
/* SPDX-License-Identifier: MIT */
#ifndef SHP_AUTH_H
#define SHP_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ab/driver.h"
#include "ab/error.h"
#include "ab/http.h"

/*
 * Fetches tokens from POST <api_url>/oauth/token (form body, grant_type
 * client_credentials) through a client of its own, blocking (ab_http_run):
 * a fetch is rare (once per token lifetime) and the token endpoint is not
 * rate-limited. The token is cached and fetched again when 90 % of its
 * expires_in has passed, or when the HTTP client asks (force=true after a
 * 401 token_expired). Every token is registered with ab_driver_add_secret()
 * before it is used, and wiped from memory when replaced or freed; neither
 * the secret nor a token is ever logged.
 *
 * Wrong credentials (401 invalid_client) are AB_ERR_CONFIG. With fail_driver
 * (write), that error is also reported through ab_driver_fail(), so the
 * sync ends with a config_error even though the failure surfaces inside an
 * HTTP attempt.
 */
struct shp_auth;

/* api_url (no trailing slash), client_id and client_secret are copied; o is
 * the base HTTP options (timeouts, CA), used without the rate limit. */
struct shp_auth *shp_auth_new(struct ab_driver *d, const char *api_url, const char *client_id,
                              const char *client_secret, const struct ab_http_opts *o,
                              bool fail_driver, struct ab_error *err);
void shp_auth_free(struct shp_auth *a);

/* Fetches a new token now. */
enum ab_status shp_auth_fetch(struct shp_auth *a, struct ab_error *err);

/* The ab_http_auth_fn of the API client (arg: the struct shp_auth). */
enum ab_status shp_auth_provide(void *arg, bool force, char *token, size_t size,
                                struct ab_error *err);

/* Tokens fetched so far. */
uint64_t shp_auth_fetches(const struct shp_auth *a);

/* Parses a token answer: the access_token (borrowed from body) and its
 * lifetime (expires_in, 3600 when absent). AB_ERR_PROTOCOL when there is no
 * usable token. Exposed for tests. */
enum ab_status shp_auth_parse(yajl_val body, const char **token, double *expires_in,
                              struct ab_error *err);

#endif
