/* totvs_int.h - source-totvs-moda internals shared by its files. */
/* SPDX-License-Identifier: MIT */
#ifndef TOTVS_INT_H
#define TOTVS_INT_H

#include "ab/fetch.h"
#include "ab/http.h"
#include "ab/oauth2.h"

#include "totvs.h"

#define TM_MAX_PAGE 500
#define TM_API      "/api/totvsmoda"

/* What one stream's read is doing; changed only through tm_set_phase(). */
enum tm_phase {
    TM_PH_START = 0, /* plan the stream: window, resume point */
    TM_PH_SEARCH,    /* ask for a page */
    TM_PH_DONE       /* the stream is complete */
};

struct totvs {
    struct ab_driver *d;
    yajl_val config;
    const char *api_url;
    int64_t page_size, lookback_s, start_date, collection_type;
    struct tm_opts opts;
    struct ab_buf lists; /* the texts opts points into */
    /* through the API Hub: "<api_key_header>: <api_key>", sent with every
     * request (the token request too); empty for direct access */
    struct ab_buf key_line;
    int64_t run_start;
    struct ab_http *h;
    struct ab_oauth2 *auth;
    struct ab_fetch f;
    /* the stream being read */
    struct ab_fetch_walk walk; /* walk.cur: the catalog stream being read */
    enum tm_kind kind;
    enum tm_phase phase;
    bool incremental;
    bool estimated;
    int64_t start, page; /* the next search: changes from start, this page */
    /* keys read with changes at exactly start (a new start re-reads them) */
    uint64_t seen[TM_MAX_PAGE];
    size_t nseen;
    /* buffers */
    struct ab_buf url, body, rec, out;
    /* figures */
    uint64_t records, requests, repeats;
};

void tm_set_phase(struct totvs *t, enum tm_phase to);
enum ab_status tm_config(struct totvs *t, struct ab_driver *d, struct ab_error *err);
/* The token provider (password grant) and the API client; through the API
 * Hub the token request carries the key line too. */
enum ab_status tm_auth_new(struct totvs *t, bool fail_driver, struct ab_error *err);
void tm_release(struct totvs *t);
/* A POST of body (taken) to the search of kind k, with the 401 classifier
 * and, through the API Hub, the key line. */
struct ab_http_req *tm_request(struct totvs *t, enum tm_kind k, struct ab_buf *body,
                               const char *label, struct ab_error *err);
enum ab_status tm_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err);

#endif
