/* bling_int.h - source-bling internals shared by its files. */
/* SPDX-License-Identifier: MIT */
#ifndef BLING_INT_H
#define BLING_INT_H

#include "ab/fetch.h"
#include "ab/http.h"
#include "ab/oauth2.h"
#include "ab/pager.h"

#include "bling.h"

#define BL_MAX_PAGE 100

/* What one stream's read is doing; changed only through bl_set_phase(). */
enum bl_phase {
    BL_PH_START = 0, /* plan the stream: windows, resume point */
    BL_PH_LIST,      /* ask for a list page */
    BL_PH_DETAIL,    /* ask for the detail of ids[idx] */
    BL_PH_SALDOS,    /* ask for the stock of the page's ids */
    BL_PH_PROBE,     /* ask for a later list page: where the list ends (ESTIMATE) */
    BL_PH_DONE       /* the stream is complete */
};

struct bling {
    struct ab_driver *d;
    yajl_val config;
    const char *api_url;
    int64_t page_size, window_s, lookback_s, start_date;
    int utc_offset;
    int64_t run_start;
    struct ab_http *h;
    struct ab_oauth2 *auth;
    struct ab_fetch f;
    /* the stream being read */
    struct ab_fetch_walk walk; /* walk.cur: the catalog stream being read */
    enum bl_kind kind;
    enum bl_phase phase;
    bool incremental;
    bool filtered; /* the current pass has a date window */
    struct ab_windows windows;
    bool more_windows;
    struct ab_resume_state st; /* what the next state says */
    struct ab_pager pager;
    int64_t ids[BL_MAX_PAGE];
    size_t nids, idx, items;
    /* the list's end, looked for after a full first page: pages up to
     * probe_lo are full, probe_hi (-1: not found yet) is not and holds
     * probe_hi_items; probe_page is being asked for */
    int64_t probe_lo, probe_hi, probe_hi_items, probe_page, probes;
    uint64_t stream_records;
    /* buffers */
    struct ab_buf url, rec, out;
    /* figures */
    uint64_t records, requests, missing, rotations;
};

void bl_set_phase(struct bling *b, enum bl_phase to);
/* The auth provider and its client (check and read share the code). */
enum ab_status bl_auth_new(struct bling *b, bool fail_driver, struct ab_error *err);
enum ab_status bl_config(struct bling *b, struct ab_driver *d, struct ab_error *err);
void bl_release(struct bling *b);
/* A GET of url with the token and the 401 classifier. */
struct ab_http_req *bl_request(struct bling *b, const char *url, const char *label,
                               struct ab_error *err);
enum ab_status bl_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err);

#endif
