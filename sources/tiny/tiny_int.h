/* tiny_int.h - source-tiny internals shared by its files. */
/* SPDX-License-Identifier: MIT */
#ifndef TINY_INT_H
#define TINY_INT_H

#include "ab/fetch.h"
#include "ab/http.h"
#include "ab/oauth2.h"
#include "ab/pager.h"

#include "tiny.h"

#define TN_MAX_PAGE 100
/* stock ids of one product page: the products and their variations */
#define TN_MAX_STOCK (TN_MAX_PAGE * 200)
/* Tiny's "slow down": HTTP 429 with the seconds to the window's reset */
#define TN_RESET_HEADER "X-RateLimit-Reset"

/* What one stream's read is doing; changed only through tn_set_phase(). */
enum tn_phase {
    TN_PH_START = 0, /* plan the stream: filter, resume point */
    TN_PH_LIST,      /* ask for a list page */
    TN_PH_DETAIL,    /* ask for the detail of ids[idx] */
    TN_PH_STOCK,     /* ask for the stock of stock[sidx] */
    TN_PH_DONE       /* the stream is complete */
};

struct tiny {
    struct ab_driver *d;
    yajl_val config;
    const char *api_url;
    int64_t page_size, lookback_s, start_date;
    int utc_offset;
    int64_t run_start;
    struct ab_http *h;
    struct ab_oauth2 *auth;
    struct ab_fetch f;
    /* the stream being read */
    struct ab_fetch_walk walk; /* walk.cur: the catalog stream being read */
    enum tn_kind kind;
    enum tn_phase phase;
    bool incremental;
    struct ab_resume_state st; /* what the next state says */
    struct ab_pager pager;
    int64_t ids[TN_MAX_PAGE];
    bool parent[TN_MAX_PAGE];
    size_t nids, idx, items;
    int64_t total;  /* the list's total, -1 when it has none */
    int64_t *stock; /* TN_MAX_STOCK */
    size_t nstock, sidx;
    /* buffers */
    struct ab_buf url, rec, out;
    /* figures */
    uint64_t records, requests, missing, no_stock, rotations;
};

void tn_set_phase(struct tiny *t, enum tn_phase to);
/* The auth provider and its client (check and read share the code). */
enum ab_status tn_auth_new(struct tiny *t, bool fail_driver, struct ab_error *err);
enum ab_status tn_config(struct tiny *t, struct ab_driver *d, struct ab_error *err);
void tn_release(struct tiny *t);
/* A GET of url with the token, the 401 classifier and the 429 delay header. */
struct ab_http_req *tn_request(struct tiny *t, const char *url, const char *label,
                               struct ab_error *err);
enum ab_status tn_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err);

#endif
