/* http.c - HTTP client over curl multi: concurrency, retries, rate limiting. */
/* SPDX-License-Identifier: MIT */
#include "ab/http.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <isa-l/igzip_lib.h>

#include "ab/assert.h"
#include "ab/clock.h"
#include "ab/loop.h"

#include "http_int.h"

/*
 * Invariants:
 * - Every submitted request is on exactly one of three lists: queue (new,
 *   FIFO), retry (waiting for its due time, in scheduling order) or active
 *   (an easy handle in the multi). pending = sum of the three.
 * - A request leaves the lists only to be completed (callback, then freed) or
 *   aborted (ab_http_free, or ab_http_run when waiting failed).
 * - Attempt state (easy handle, header list, response buffer) belongs to the
 *   request while it is active; the easy handle goes back to the pool after.
 * - The Authorization value lives only in h->bearer / h->token and in the
 *   attempt's header list; both are wiped before they are freed, and no log
 *   or error text is ever built from headers.
 * - curl_global_init() is reference-counted by libcurl: each client takes one
 *   reference in ab_http_new() and drops it in ab_http_free().
 * - Transfers are driven only by curl_multi_socket_action(), from pump():
 *   socks mirrors the sockets curl asked to watch (CURLMOPT_SOCKETFUNCTION)
 *   and curl_due_us its timeout (CURLMOPT_TIMERFUNCTION). With a loop
 *   attached, every entry of socks is registered with it (same fd, mask
 *   from CURL_POLL_*) and one loop timer (timer_id) is armed for
 *   min(curl_due_us, next_wake_us) whenever that is finite; ab_http_wait()
 *   polls socks itself, with the caller's descriptors, in one poll(2).
 * - pump() never nests (in_pump), and curl's socket and timer callbacks
 *   only record what curl asked for: socket_action is never called from
 *   inside curl.
 */

#define AB_HTTP_TOKEN_MAX 8192
#define AB_HTTP_LABEL_MAX 128
#define AB_HTTP_RA_MAX    64
#define AB_HTTP_ERROR_MAX 256
/* Rounds of curl timeouts due at once that one pump() handles before
 * leaving the rest to the next loop turn. */
#define AB_HTTP_PUMP_ROUNDS 4

/* A socket curl asked to watch: what is CURL_POLL_IN, _OUT or _INOUT. */
struct ab_http_sock {
    curl_socket_t fd;
    int what;
};

struct ab_http_list {
    struct ab_http_req *head;
    struct ab_http_req *tail;
    size_t n;
};

/* Why an attempt ended without a usable answer. */
enum ab_http_body_fail { AB_HTTP_BODY_OK = 0, AB_HTTP_BODY_TOO_LARGE, AB_HTTP_BODY_NOMEM };

struct ab_http_req {
    struct ab_http_req *prev;
    struct ab_http_req *next;
    struct ab_http_list *on; /* the list holding it, NULL before submit */

    char *method;
    char *url;
    char label[AB_HTTP_LABEL_MAX];
    struct curl_slist *headers; /* caller's header lines */
    char *body;                 /* owned; or NULL and body_ref */
    const char *body_ref;       /* the caller's (ab_http_req_body_ref()) */
    size_t body_len;
    char *type; /* Content-Type, NULL: none */
    unsigned flags;
    bool gzipped;
    ab_http_header_fn header_fn;
    void *header_arg;
    char *delay_header; /* a field naming the seconds to wait, or NULL */
    int delay_status;   /* ... honoured on answers with this status */
    ab_http_classify_fn classify_fn;
    void *classify_arg;

    ab_http_done_fn done;
    void *arg;
    int64_t submit_us;
    int64_t due_us;      /* earliest start of the next attempt (retry list) */
    int attempts;        /* attempts made, all kinds */
    int retries;         /* retries used, counted against max_retries */
    bool auth_refreshed; /* the AB_HTTP_REFRESH_AUTH retry was used */
    bool force_auth;     /* the next attempt asks the provider for a new token */

    /* the attempt on the wire */
    CURL *easy;
    struct curl_slist *attempt_headers;
    int64_t attempt_us;
    struct ab_buf resp;
    char errbuf[CURL_ERROR_SIZE];
    char retry_after[AB_HTTP_RA_MAX];
    char delay_value[AB_HTTP_RA_MAX];
    enum ab_http_body_fail body_fail;

    /* the outcome of the last attempt */
    int status;
    long retry_after_ms;
    bool in_doubt;
    enum ab_status fail_code; /* when status == 0 */
    char error[AB_HTTP_ERROR_MAX];
};

struct ab_http {
    struct ab_http_opts o;
    char *ca_path;
    char *user_agent;
    bool curl_inited;
    CURLM *multi;
    CURL **pool;             /* idle easy handles, at most max_in_flight */
    struct ab_http_gzip *gz; /* gzip bodies; made on first use */
    unsigned char *zbuf;     /* its output, zcap bytes */
    size_t zcap;
    size_t n_pool;

    struct ab_http_list queue;
    struct ab_http_list retry;
    struct ab_http_list active;

    struct ab_ratelimit rl;
    int64_t next_wake_us; /* when a blocked start may become possible */
    int64_t curl_due_us;  /* curl's timeout, INT64_MAX: none */

    struct ab_http_sock *socks; /* what curl watches, nsocks of sock_cap */
    size_t nsocks;
    size_t sock_cap;
    struct pollfd *pfd; /* ab_http_wait()'s poll set, pfd_cap entries */
    size_t pfd_cap;
    struct ab_loop *loop;  /* borrowed; NULL: none */
    uint64_t timer_id;     /* the loop timer, 0: none armed */
    int64_t timer_due_us;  /* its due time, INT64_MAX: none */
    bool in_pump;          /* pump() is running */
    enum ab_status broken; /* a loop registration failed: every later call fails */
    char broken_msg[AB_HTTP_ERROR_MAX];
    uint64_t rng;
    struct ab_http_stats stats;

    char *bearer;
    ab_http_auth_fn auth_fn;
    void *auth_arg;
    char *token; /* AB_HTTP_TOKEN_MAX bytes, the provider's output */

    bool in_callback;
    size_t n_done;                 /* callbacks run since ab_http_wait() began */
    enum ab_status done_fail_code; /* of the request whose callback runs */
};

/* ---- small helpers ---- */

static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;

    while (n--) {
        *v++ = 0;
    }
}

static void free_secret(char *s)
{
    if (s) {
        wipe(s, strlen(s));
        free(s);
    }
}

static int lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

/* ASCII case-insensitive, independent of the locale. */
static bool prefix_ci(const char *p, size_t len, const char *name)
{
    size_t n = strlen(name);

    if (len < n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (lower((unsigned char)p[i]) != lower((unsigned char)name[i])) {
            return false;
        }
    }
    return true;
}

/* Saturates far below INT64_MAX so that now + ms_to_us(x) cannot overflow. */
static int64_t ms_to_us(long ms)
{
    const int64_t max_ms = INT64_MAX / 4000;

    return (int64_t)ms > max_ms ? max_ms * 1000 : (int64_t)ms * 1000;
}

static void list_push(struct ab_http_list *l, struct ab_http_req *r)
{
    r->prev = l->tail;
    r->next = NULL;
    if (l->tail) {
        l->tail->next = r;
    } else {
        l->head = r;
    }
    l->tail = r;
    l->n++;
    r->on = l;
}

static void list_remove(struct ab_http_req *r)
{
    struct ab_http_list *l = r->on;

    if (!l) {
        return;
    }
    if (r->prev) {
        r->prev->next = r->next;
    } else {
        l->head = r->next;
    }
    if (r->next) {
        r->next->prev = r->prev;
    } else {
        l->tail = r->prev;
    }
    l->n--;
    r->prev = NULL;
    r->next = NULL;
    r->on = NULL;
}

static void http_log(struct ab_http *h, enum ab_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void http_log(struct ab_http *h, enum ab_log_level level, const char *fmt, ...)
{
    va_list ap;

    if (!h->o.log || !ab_emitter_enabled(h->o.log, level)) {
        return;
    }
    va_start(ap, fmt);
    /* A failed log write is sticky in the emitter; the driver sees it there. */
    (void)ab_emitter_vlog(h->o.log, level, fmt, ap);
    va_end(ap);
}

/* ---- exposed pure helpers ---- */

static uint64_t xorshift64s(uint64_t *state)
{
    uint64_t x = *state;

    if (x == 0) {
        x = 0x9E3779B97F4A7C15ULL;
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

long ab_http_backoff_ms(long base_ms, long max_ms, int attempt, uint64_t *rng)
{
    long cap = base_ms;

    if (base_ms <= 0 || max_ms <= 0) {
        return 0;
    }
    if (cap > max_ms) {
        cap = max_ms;
    }
    for (int i = 1; i < attempt && cap < max_ms; i++) {
        cap = cap > max_ms / 2 ? max_ms : cap * 2;
    }
    /* Full jitter: uniform in [0, cap]; the high bits of xorshift64* are the good ones. */
    return (long)((xorshift64s(rng) >> 11) % ((uint64_t)cap + 1));
}

void ab_ratelimit_init(struct ab_ratelimit *rl, double rate, double burst, int64_t now_us)
{
    rl->rate = rate > 0 ? rate : 0;
    if (burst > 0) {
        rl->burst = burst;
    } else {
        rl->burst = rate > 1 ? rate : 1;
    }
    rl->tokens = rl->burst;
    rl->last_us = now_us;
}

long ab_ratelimit_take(struct ab_ratelimit *rl, int64_t now_us)
{
    double need_ms;
    long wait;

    if (rl->rate <= 0) {
        return 0;
    }
    if (now_us > rl->last_us) {
        rl->tokens += (double)(now_us - rl->last_us) / 1e6 * rl->rate;
        if (rl->tokens > rl->burst) {
            rl->tokens = rl->burst;
        }
        rl->last_us = now_us;
    }
    /* The epsilon absorbs rounding after waiting exactly the announced time. */
    if (rl->tokens >= 1.0 - 1e-9) {
        rl->tokens -= 1.0;
        return 0;
    }
    need_ms = (1.0 - rl->tokens) / rl->rate * 1000.0;
    if (need_ms > (double)LONG_MAX / 2) {
        return LONG_MAX / 2;
    }
    wait = (long)need_ms;
    if ((double)wait < need_ms) {
        wait++;
    }
    return wait < 1 ? 1 : wait;
}

/* Cursor over a Retry-After value, for the three HTTP date forms. */
struct ab_scan {
    const char *p;
    const char *end;
};

static bool scan_lit(struct ab_scan *s, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0) {
        return false;
    }
    s->p += n;
    return true;
}

static bool scan_digits(struct ab_scan *s, int n, int *out)
{
    int v = 0;

    if (s->end - s->p < n) {
        return false;
    }
    for (int i = 0; i < n; i++) {
        char c = s->p[i];

        if (c < '0' || c > '9') {
            return false;
        }
        v = v * 10 + (c - '0');
    }
    s->p += n;
    *out = v;
    return true;
}

static bool scan_month(struct ab_scan *s, int *mon)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

    for (int i = 0; i < 12; i++) {
        if (scan_lit(s, months[i])) {
            *mon = i + 1;
            return true;
        }
    }
    return false;
}

static bool scan_wkday(struct ab_scan *s, bool long_form)
{
    static const char *const shortd[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    static const char *const longd[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                        "Friday", "Saturday", "Sunday"};

    for (int i = 0; i < 7; i++) {
        if (scan_lit(s, long_form ? longd[i] : shortd[i])) {
            return true;
        }
    }
    return false;
}

static bool scan_time(struct ab_scan *s, int *hh, int *mm, int *ss)
{
    return scan_digits(s, 2, hh) && scan_lit(s, ":") && scan_digits(s, 2, mm) && scan_lit(s, ":") &&
           scan_digits(s, 2, ss);
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era;
    int64_t yoe;
    int64_t doy;
    int64_t doe;

    y -= m <= 2 ? 1 : 0;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return (m == 2 && leap) ? 29 : days[m - 1];
}

/* IMF-fixdate, RFC 850 or asctime (RFC 9110 5.6.7); false when malformed. */
static bool parse_http_date(const char *p, const char *end, int64_t *out)
{
    struct ab_scan s = {p, end};
    int day = 0;
    int mon = 0;
    int year = 0;
    int hh = 0;
    int mm = 0;
    int ss = 0;
    bool ok;

    /* Sun, 06 Nov 1994 08:49:37 GMT */
    ok = scan_wkday(&s, false) && scan_lit(&s, ", ") && scan_digits(&s, 2, &day) &&
         scan_lit(&s, " ") && scan_month(&s, &mon) && scan_lit(&s, " ") &&
         scan_digits(&s, 4, &year) && scan_lit(&s, " ") && scan_time(&s, &hh, &mm, &ss) &&
         scan_lit(&s, " GMT") && s.p == s.end;
    if (!ok) {
        /* Sunday, 06-Nov-94 08:49:37 GMT */
        s.p = p;
        ok = scan_wkday(&s, true) && scan_lit(&s, ", ") && scan_digits(&s, 2, &day) &&
             scan_lit(&s, "-") && scan_month(&s, &mon) && scan_lit(&s, "-") &&
             scan_digits(&s, 2, &year) && scan_lit(&s, " ") && scan_time(&s, &hh, &mm, &ss) &&
             scan_lit(&s, " GMT") && s.p == s.end;
        year += year < 70 ? 2000 : 1900;
    }
    if (!ok) {
        /* Sun Nov  6 08:49:37 1994 */
        s.p = p;
        ok =
            scan_wkday(&s, false) && scan_lit(&s, " ") && scan_month(&s, &mon) && scan_lit(&s, " ");
        if (ok && scan_lit(&s, " ")) {
            ok = scan_digits(&s, 1, &day);
        } else if (ok) {
            ok = scan_digits(&s, 2, &day);
        }
        ok = ok && scan_lit(&s, " ") && scan_time(&s, &hh, &mm, &ss) && scan_lit(&s, " ") &&
             scan_digits(&s, 4, &year) && s.p == s.end;
    }
    if (!ok || mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) || hh > 23 ||
        mm > 59 || ss > 60) {
        return false;
    }
    *out = days_from_civil(year, mon, day) * 86400 + (int64_t)hh * 3600 + (int64_t)mm * 60 + ss;
    return true;
}

long ab_http_parse_retry_after(const char *value, int64_t now_unix_s)
{
    const char *p = value;
    const char *end;
    int64_t when = 0;
    int64_t delta;

    if (!value) {
        return -1;
    }
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    end = p + strlen(p);
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n')) {
        end--;
    }
    if (p == end) {
        return -1;
    }
    if (*p >= '0' && *p <= '9') {
        long secs = 0;

        for (const char *q = p; q < end; q++) {
            if (*q < '0' || *q > '9') {
                return -1;
            }
            if (secs > LONG_MAX / 10000) {
                secs = LONG_MAX / 1000; /* saturate: capped by the caller anyway */
            } else {
                secs = secs * 10 + (*q - '0');
            }
        }
        return secs > LONG_MAX / 1000 ? LONG_MAX : secs * 1000;
    }
    if (!parse_http_date(p, end, &when)) {
        return -1;
    }
    delta = when - now_unix_s;
    if (delta <= 0) {
        return 0;
    }
    return delta > LONG_MAX / 1000 ? LONG_MAX : (long)delta * 1000;
}

/* ---- requests ---- */

struct ab_http_req *ab_http_req_new(const char *method, const char *url, struct ab_error *err)
{
    struct ab_http_req *r = NULL;

    if (!method || !*method || !url || !*url) {
        ab_error_set(err, AB_ERR_INTERNAL, "HTTP request needs a method and a URL");
        goto fail;
    }
    for (const char *p = method; *p; p++) {
        if (*p < 'A' || *p > 'Z') {
            ab_error_set(err, AB_ERR_INTERNAL, "invalid HTTP method '%s'", method);
            goto fail;
        }
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        goto nomem;
    }
    ab_buf_init(&r->resp, AB_BUF_UNBOUNDED);
    r->retry_after_ms = -1;
    r->method = strdup(method);
    r->url = strdup(url);
    if (!r->method || !r->url) {
        goto nomem;
    }
    return r;
nomem:
    ab_error_set(err, AB_ERR_NOMEM, "out of memory (HTTP request)");
fail:
    ab_http_req_free(r);
    return NULL;
}

void ab_http_req_free(struct ab_http_req *r)
{
    if (!r) {
        return;
    }
    free(r->method);
    free(r->url);
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r->type);
    free(r->delay_header);
    ab_buf_release(&r->resp);
    /* Only reached with the attempt over; kept for safety. */
    curl_slist_free_all(r->attempt_headers);
    free(r);
}

enum ab_status ab_http_req_header(struct ab_http_req *r, const char *line, struct ab_error *err)
{
    struct curl_slist *l;
    const char *colon;

    colon = strchr(line, ':');
    if (!colon || colon == line || strpbrk(line, "\r\n")) {
        /* Never echo the line: it may hold a credential. */
        return ab_error_set(err, AB_ERR_INTERNAL, "invalid HTTP header line");
    }
    l = curl_slist_append(r->headers, line);
    if (!l) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (HTTP header)");
    }
    r->headers = l;
    return AB_OK;
}

/* The Content-Type (copied); on failure the body is dropped. */
static enum ab_status set_type(struct ab_http_req *r, const char *type, struct ab_error *err)
{
    free(r->type);
    r->type = NULL;
    if (type) {
        r->type = strdup(type);
        if (!r->type) {
            free(r->body);
            r->body = NULL;
            r->body_ref = NULL;
            r->body_len = 0;
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory (HTTP body)");
        }
        if (strpbrk(r->type, "\r\n")) {
            free(r->type);
            r->type = NULL;
            free(r->body);
            r->body = NULL;
            r->body_ref = NULL;
            r->body_len = 0;
            return ab_error_set(err, AB_ERR_INTERNAL, "invalid content type");
        }
    }
    return AB_OK;
}

enum ab_status ab_http_req_body(struct ab_http_req *r, struct ab_buf *body, const char *type,
                                struct ab_error *err)
{
    free(r->body);
    r->body_ref = NULL;
    r->gzipped = false;
    r->body = ab_buf_detach(body, &r->body_len);
    return set_type(r, type, err);
}

enum ab_status ab_http_req_body_ref(struct ab_http_req *r, const char *data, size_t len,
                                    const char *type, struct ab_error *err)
{
    free(r->body);
    r->body = NULL;
    r->body_ref = data;
    r->body_len = len;
    r->gzipped = false;
    return set_type(r, type, err);
}

void ab_http_req_flags(struct ab_http_req *r, unsigned flags)
{
    r->flags = flags;
}

void ab_http_req_on_header(struct ab_http_req *r, ab_http_header_fn fn, void *arg)
{
    r->header_fn = fn;
    r->header_arg = fn ? arg : NULL;
}

enum ab_status ab_http_req_delay_header(struct ab_http_req *r, const char *name, int status,
                                        struct ab_error *err)
{
    char *c = strdup(name);

    if (!c) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (HTTP request)");
    }
    free(r->delay_header);
    r->delay_header = c;
    r->delay_status = status;
    return AB_OK;
}

void ab_http_req_classify(struct ab_http_req *r, ab_http_classify_fn fn, void *arg)
{
    r->classify_fn = fn;
    r->classify_arg = fn ? arg : NULL;
}

void ab_http_req_label(struct ab_http_req *r, const char *label)
{
    (void)snprintf(r->label, sizeof(r->label), "%s", label ? label : "");
}

/* "POST host/path": no userinfo, query or fragment, which may carry secrets. */
static void default_label(struct ab_http_req *r)
{
    const char *p = strstr(r->url, "://");
    const char *host;
    const char *at;
    size_t n;

    p = p ? p + 3 : r->url;
    n = strcspn(p, "/?#");
    at = memchr(p, '@', n);
    host = at ? at + 1 : p;
    n = strcspn(host, "?#");
    if (n > INT_MAX) {
        n = INT_MAX;
    }
    (void)snprintf(r->label, sizeof(r->label), "%s %.*s", r->method, (int)n, host);
}

/* The compressor's state: ISA-L's stream (82 KB, its stateful buffers unused
 * here) and the level-1 match buffer (84 KB). */
struct ab_http_gzip {
    struct isal_zstream zs;
    unsigned char level_buf[ISAL_DEF_LVL1_SMALL];
};

/* The most a stateless deflate writes for n bytes: the input in stored
 * blocks (5 bytes of header per 64 KiB), the largest block header, the gzip
 * header and trailer, with room to spare. */
static size_t gzip_bound(size_t n)
{
    return n + (n >> 12) + ISAL_DEF_MAX_HDR_SIZE + 1024;
}

/* gzip at ISA-L's level 1 (igzip), with the client's one compressor: about
 * twice libdeflate's level 1 and ten times zlib's Z_BEST_SPEED on JSON bodies,
 * within 3 % of their size (README, Dependencies). It compresses into the
 * client's scratch buffer (the size of the largest body so far), and the
 * request keeps an exact copy: no large transient blocks left to fragment
 * the heap while requests wait. */
static enum ab_status gzip_body(struct ab_http *h, struct ab_http_req *r, struct ab_error *err)
{
    struct isal_zstream *zs;
    size_t bound;
    size_t n;
    char *out;
    int rc;

    if (!h->gz) {
        /* zeroed: igzip reads its hash table before it has written all of
         * it (a stale entry is checked against the input, so the table's
         * content changes the output's size, never its meaning) */
        h->gz = calloc(1, sizeof(*h->gz));
        if (!h->gz) {
            return ab_error_set(err, AB_ERR_NOMEM, "cannot initialise gzip compression");
        }
    }
    if (r->body_len > UINT32_MAX / 2) { /* igzip counts in 32 bits */
        return ab_error_set(err, AB_ERR_INTERNAL, "a body of %zu bytes is too large to gzip",
                            r->body_len);
    }
    bound = gzip_bound(r->body_len);
    if (bound > h->zcap) {
        unsigned char *z = realloc(h->zbuf, bound);

        if (!z) {
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory (gzip body of %zu bytes)", bound);
        }
        h->zbuf = z;
        h->zcap = bound;
    }
    zs = &h->gz->zs;
    isal_deflate_stateless_init(zs);
    zs->level = 1;
    zs->level_buf = h->gz->level_buf;
    zs->level_buf_size = sizeof(h->gz->level_buf);
    zs->gzip_flag = IGZIP_GZIP;
    zs->end_of_stream = 1;
    zs->flush = NO_FLUSH;
    zs->next_in = (uint8_t *)(uintptr_t)(r->body ? r->body : r->body_ref);
    zs->avail_in = (uint32_t)r->body_len;
    zs->next_out = h->zbuf;
    zs->avail_out = (uint32_t)bound;
    rc = isal_deflate_stateless(zs);
    n = (size_t)(zs->next_out - h->zbuf);
    if (rc != COMP_OK || zs->avail_in != 0 || n == 0) {
        return ab_error_set(err, AB_ERR_INTERNAL, "gzip compression failed (igzip %d)", rc);
    }
    out = malloc(n);
    if (!out) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (gzip body of %zu bytes)", n);
    }
    memcpy(out, h->zbuf, n);
    free(r->body);
    r->body = out;
    r->body_ref = NULL;
    r->body_len = n;
    r->gzipped = true;
    return AB_OK;
}

/* ---- client ---- */

void ab_http_opts_init(struct ab_http_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->connect_timeout_ms = 10000;
    o->request_timeout_ms = 60000;
    o->max_in_flight = 4;
    o->max_retries = 5;
    o->backoff_base_ms = 500;
    o->backoff_max_ms = 30000;
    o->max_retry_after_ms = 300000;
    o->max_response_bytes = (size_t)64 * 1024 * 1024;
}

static uint64_t clock_seed(void)
{
    struct timespec ts;
    uint64_t s = (uint64_t)ab_now_us();

    if (clock_gettime(CLOCK_REALTIME, &ts) == 0) {
        s ^= (uint64_t)ts.tv_nsec << 20 ^ (uint64_t)ts.tv_sec;
    }
    /* splitmix64 finaliser spreads the few changing bits over the state. */
    s += 0x9E3779B97F4A7C15ULL;
    s = (s ^ (s >> 30)) * 0xBF58476D1CE4E5B9ULL;
    s = (s ^ (s >> 27)) * 0x94D049BB133111EBULL;
    s ^= s >> 31;
    return s ? s : 1;
}

/* Zero or negative values mean "the default". */
static void apply_defaults(struct ab_http_opts *o)
{
    struct ab_http_opts def;

    ab_http_opts_init(&def);
    if (o->connect_timeout_ms <= 0) {
        o->connect_timeout_ms = def.connect_timeout_ms;
    }
    if (o->request_timeout_ms <= 0) {
        o->request_timeout_ms = def.request_timeout_ms;
    }
    if (o->max_in_flight <= 0) {
        o->max_in_flight = def.max_in_flight;
    }
    if (o->max_retries < 0) {
        o->max_retries = def.max_retries;
    }
    if (o->backoff_base_ms <= 0) {
        o->backoff_base_ms = def.backoff_base_ms;
    }
    if (o->backoff_max_ms <= 0) {
        o->backoff_max_ms = def.backoff_max_ms;
    }
    if (o->max_retry_after_ms < 0) {
        o->max_retry_after_ms = def.max_retry_after_ms;
    }
    if (o->max_response_bytes == 0) {
        o->max_response_bytes = def.max_response_bytes;
    }
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp);
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp);

struct ab_http *ab_http_new(const struct ab_http_opts *o, struct ab_error *err)
{
    struct ab_http *h;
    struct ab_http_opts def;

    ab_http_opts_init(&def);
    h = calloc(1, sizeof(*h));
    if (!h) {
        ab_error_set(err, AB_ERR_NOMEM, "out of memory (HTTP client)");
        return NULL;
    }
    h->o = o ? *o : def;
    apply_defaults(&h->o);
    h->o.ca_path = NULL;
    h->o.user_agent = NULL;
    if (o && o->ca_path) {
        h->ca_path = strdup(o->ca_path);
        if (!h->ca_path) {
            goto nomem;
        }
    }
    if (o && o->user_agent) {
        h->user_agent = strdup(o->user_agent);
        if (!h->user_agent) {
            goto nomem;
        }
    }
    h->rng = h->o.seed ? h->o.seed : clock_seed();
    h->next_wake_us = INT64_MAX;
    h->curl_due_us = INT64_MAX;
    h->timer_due_us = INT64_MAX;
    ab_ratelimit_init(&h->rl, h->o.requests_per_second, h->o.burst, ab_now_us());
    h->pool = calloc((size_t)h->o.max_in_flight, sizeof(*h->pool));
    h->token = calloc(1, AB_HTTP_TOKEN_MAX);
    if (!h->pool || !h->token) {
        goto nomem;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ab_error_set(err, AB_ERR_INTERNAL, "cannot initialise libcurl");
        goto fail;
    }
    h->curl_inited = true;
    h->multi = curl_multi_init();
    if (!h->multi) {
        goto nomem;
    }
    /* Connections stay open in the multi's cache and are reused (keep-alive). */
    if (curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)h->o.max_in_flight) !=
            CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)h->o.max_in_flight * 2) !=
            CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, (void *)h) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, (void *)h) != CURLM_OK) {
        ab_error_set(err, AB_ERR_INTERNAL, "cannot configure libcurl");
        goto fail;
    }
    return h;
nomem:
    ab_error_set(err, AB_ERR_NOMEM, "out of memory (HTTP client)");
fail:
    ab_http_free(h);
    return NULL;
}

static void free_attempt_headers(struct ab_http_req *r)
{
    /* The list holds the Authorization line: wipe before freeing. */
    for (struct curl_slist *l = r->attempt_headers; l; l = l->next) {
        if (l->data && prefix_ci(l->data, strlen(l->data), "authorization:")) {
            wipe(l->data, strlen(l->data));
        }
    }
    curl_slist_free_all(r->attempt_headers);
    r->attempt_headers = NULL;
}

static void release_easy(struct ab_http *h, CURL *e)
{
    if (h->n_pool < (size_t)h->o.max_in_flight) {
        h->pool[h->n_pool++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

/* Takes r off the wire without completing it. */
static void detach_attempt(struct ab_http *h, struct ab_http_req *r)
{
    if (r->easy) {
        (void)curl_multi_remove_handle(h->multi, r->easy);
        release_easy(h, r->easy);
        r->easy = NULL;
    }
    free_attempt_headers(r);
}

/* Removes r from the client without calling its callback. */
static void abort_req(struct ab_http *h, struct ab_http_req *r)
{
    detach_attempt(h, r);
    list_remove(r);
    ab_http_req_free(r);
}

static void abort_list(struct ab_http *h, struct ab_http_list *l)
{
    struct ab_http_req *next;

    for (struct ab_http_req *r = l->head; r; r = next) {
        next = r->next;
        detach_attempt(h, r);
        ab_http_req_free(r);
    }
    memset(l, 0, sizeof(*l));
}

void ab_http_free(struct ab_http *h)
{
    if (!h) {
        return;
    }
    AB_ASSERT(!h->in_pump && !h->in_callback);
    if (h->loop) {
        /* no callback of curl's touches the loop from here on */
        if (ab_loop_http(h->loop) == h) {
            ab_loop_set_http(h->loop, NULL);
        } else {
            ab_http_set_loop(h, NULL);
        }
    }
    AB_ASSERT(!h->loop);
    abort_list(h, &h->active);
    abort_list(h, &h->retry);
    abort_list(h, &h->queue);
    for (size_t i = 0; i < h->n_pool; i++) {
        curl_easy_cleanup(h->pool[i]);
    }
    free(h->pool);
    free(h->gz);
    free(h->zbuf);
    if (h->multi) {
        (void)curl_multi_cleanup(h->multi);
    }
    if (h->curl_inited) {
        curl_global_cleanup();
    }
    free(h->socks);
    free(h->pfd);
    free_secret(h->bearer);
    if (h->token) {
        wipe(h->token, AB_HTTP_TOKEN_MAX);
        free(h->token);
    }
    free(h->ca_path);
    free(h->user_agent);
    free(h);
}

enum ab_status ab_http_set_bearer(struct ab_http *h, const char *token, struct ab_error *err)
{
    char *t = NULL;

    if (token) {
        if (strpbrk(token, "\r\n")) {
            return ab_error_set(err, AB_ERR_CONFIG, "the bearer token contains a line break");
        }
        t = strdup(token);
        if (!t) {
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory (bearer token)");
        }
    }
    free_secret(h->bearer);
    h->bearer = t;
    return AB_OK;
}

void ab_http_set_auth(struct ab_http *h, ab_http_auth_fn fn, void *arg)
{
    h->auth_fn = fn;
    h->auth_arg = arg;
}

size_t ab_http_pending(const struct ab_http *h)
{
    return h->queue.n + h->retry.n + h->active.n;
}

size_t ab_http_active(const struct ab_http *h)
{
    return h->active.n;
}

void ab_http_get_stats(const struct ab_http *h, struct ab_http_stats *out)
{
    *out = h->stats;
}

static void sync_timer(struct ab_http *h);

enum ab_status ab_http_submit(struct ab_http *h, struct ab_http_req *r, ab_http_done_fn done,
                              void *arg, struct ab_error *err)
{
    enum ab_status rc;

    if (!r) {
        (void)ab_error_set(err, AB_ERR_INTERNAL, "no HTTP request to submit");
        return AB_ERR_INTERNAL;
    }
    if (!done) {
        rc = ab_error_set(err, AB_ERR_INTERNAL, "HTTP request without a callback");
        goto fail;
    }
    if (!r->label[0]) {
        default_label(r);
    }
    if ((r->flags & AB_HTTP_GZIP) && r->body_len > 0 && !r->gzipped) {
        rc = gzip_body(h, r, err);
        if (rc != AB_OK) {
            goto fail;
        }
    }
    r->done = done;
    r->arg = arg;
    r->submit_us = ab_now_us();
    r->due_us = r->submit_us;
    list_push(&h->queue, r);
    /* a start may be possible now: the next pump (a loop timer due at once
     * when a loop is attached) tries */
    h->next_wake_us = r->submit_us;
    if (!h->in_pump) {
        sync_timer(h);
    }
    return AB_OK;
fail:
    ab_http_req_free(r);
    return rc;
}

/* ---- attempts ---- */

/* The view of r's last attempt that callbacks and classifiers get. */
static void make_resp(const struct ab_http_req *r, bool transient, struct ab_http_resp *resp)
{
    memset(resp, 0, sizeof(*resp));
    resp->status = r->status;
    resp->transient = transient;
    resp->in_doubt = r->status == 0 && r->in_doubt;
    resp->body = r->resp.data ? r->resp.data : "";
    resp->body_len = r->resp.len;
    resp->error = r->status != 0 ? "" : r->error;
    resp->attempts = r->attempts;
    resp->retry_after_ms = r->retry_after_ms;
    resp->elapsed_s = (double)(ab_now_us() - r->submit_us) / 1e6;
}

static void complete(struct ab_http *h, struct ab_http_req *r, bool transient)
{
    struct ab_http_resp resp;

    list_remove(r);
    make_resp(r, transient, &resp);
    h->stats.requests++;
    h->n_done++;
    h->done_fail_code = r->status == 0 ? r->fail_code : AB_OK;
    h->in_callback = true;
    r->done(r->arg, &resp);
    h->in_callback = false;
    ab_http_req_free(r);
}

static bool can_retry(const struct ab_http *h, const struct ab_http_req *r, bool in_doubt)
{
    if (r->flags & AB_HTTP_NO_RETRY) {
        return false;
    }
    if (in_doubt && (r->flags & AB_HTTP_NO_RETRY_IN_DOUBT)) {
        return false;
    }
    return r->retries < h->o.max_retries;
}

/* Schedules the next attempt; why is the log text ("HTTP 503"). */
static void schedule_retry(struct ab_http *h, struct ab_http_req *r, const char *why)
{
    long delay;

    r->retries++;
    delay = ab_http_backoff_ms(h->o.backoff_base_ms, h->o.backoff_max_ms, r->retries, &h->rng);
    if (r->retry_after_ms >= 0) {
        long ra = r->retry_after_ms;

        if (ra > h->o.max_retry_after_ms) {
            ra = h->o.max_retry_after_ms;
        }
        if (ra > delay) {
            delay = ra;
        }
    }
    r->due_us = ab_now_us() + ms_to_us(delay);
    list_remove(r);
    list_push(&h->retry, r);
    http_log(h, AB_LOG_WARN, "retrying '%s' in %ld ms after %s (attempt %d of %d)", r->label, delay,
             why, r->retries + 1, h->o.max_retries + 1);
}

/* Copies src into dst (size > 0), truncated, always NUL-terminated; snprintf
 * with "%s" would draw gcc's format-truncation warning at -O2. */
static void copy_text(char *dst, size_t size, const char *prefix, const char *src)
{
    size_t p = strlen(prefix);
    size_t n = strlen(src);

    if (p >= size) {
        p = size - 1;
    }
    memcpy(dst, prefix, p);
    if (n > size - 1 - p) {
        n = size - 1 - p;
    }
    memcpy(dst + p, src, n);
    dst[p + n] = '\0';
}

/* An attempt failed before reaching the wire (auth provider, setup). */
static void fail_local(struct ab_http *h, struct ab_http_req *r, enum ab_status code,
                       const char *msg)
{
    bool transient = code == AB_ERR_TRANSIENT;

    r->status = 0;
    r->in_doubt = false;
    r->fail_code = code;
    r->retry_after_ms = -1;
    copy_text(r->error, sizeof(r->error), "", msg);
    http_log(h, AB_LOG_DEBUG, "'%s' attempt %d: %s", r->label, r->attempts, msg);
    if (transient && can_retry(h, r, false)) {
        char why[AB_HTTP_ERROR_MAX + 32];

        copy_text(why, sizeof(why), "error: ", msg);
        schedule_retry(h, r, why);
        return;
    }
    complete(h, r, transient);
}

static enum ab_status add_header(struct curl_slist **l, const char *line)
{
    struct curl_slist *n = curl_slist_append(*l, line);

    if (!n) {
        return AB_ERR_NOMEM;
    }
    *l = n;
    return AB_OK;
}

static enum ab_status add_auth_header(struct ab_http *h, struct ab_http_req *r,
                                      struct ab_error *err)
{
    enum ab_status rc = AB_OK;
    const char *tok = NULL;
    char *line = NULL;
    size_t n;

    if (h->auth_fn) {
        memset(h->token, 0, AB_HTTP_TOKEN_MAX);
        rc = h->auth_fn(h->auth_arg, r->force_auth, h->token, AB_HTTP_TOKEN_MAX, err);
        r->force_auth = false;
        if (rc != AB_OK) {
            (void)ab_error_prefix(err, "cannot get an access token");
            goto out;
        }
        h->token[AB_HTTP_TOKEN_MAX - 1] = '\0';
        tok = h->token;
    } else if (h->bearer) {
        tok = h->bearer;
    }
    if (!tok) {
        return AB_OK;
    }
    if (!*tok || strpbrk(tok, "\r\n")) {
        rc = ab_error_set(err, AB_ERR_INTERNAL, "the access token is empty or malformed");
        goto out;
    }
    n = strlen(tok) + sizeof("Authorization: Bearer ");
    line = malloc(n);
    if (!line) {
        rc = ab_error_set(err, AB_ERR_NOMEM, "out of memory (authorization header)");
        goto out;
    }
    (void)snprintf(line, n, "Authorization: Bearer %s", tok);
    if (add_header(&r->attempt_headers, line) != AB_OK) {
        rc = ab_error_set(err, AB_ERR_NOMEM, "out of memory (authorization header)");
    }
out:
    if (line) {
        wipe(line, n);
        free(line);
    }
    if (h->auth_fn) {
        wipe(h->token, AB_HTTP_TOKEN_MAX);
    }
    return rc;
}

static bool has_body(const struct ab_http_req *r)
{
    return strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0;
}

static enum ab_status build_headers(struct ab_http *h, struct ab_http_req *r, struct ab_error *err)
{
    enum ab_status rc = AB_OK;
    char *line = NULL;

    for (const struct curl_slist *l = r->headers; l && rc == AB_OK; l = l->next) {
        rc = add_header(&r->attempt_headers, l->data);
    }
    if (rc == AB_OK && has_body(r) && r->type) {
        size_t n = strlen(r->type) + sizeof("Content-Type: ");

        line = malloc(n);
        if (!line) {
            rc = AB_ERR_NOMEM;
        } else {
            (void)snprintf(line, n, "Content-Type: %s", r->type);
            rc = add_header(&r->attempt_headers, line);
        }
    } else if (rc == AB_OK && has_body(r)) {
        /* No type given: suppress curl's form-urlencoded default. */
        rc = add_header(&r->attempt_headers, "Content-Type:");
    }
    if (rc == AB_OK && has_body(r) && r->gzipped) {
        rc = add_header(&r->attempt_headers, "Content-Encoding: gzip");
    }
    if (rc == AB_OK) {
        /* Bodies are in memory: waiting for 100-continue only costs a round trip. */
        rc = add_header(&r->attempt_headers, "Expect:");
    }
    free(line);
    if (rc != AB_OK) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (HTTP headers)");
    }
    return add_auth_header(h, r, err);
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct ab_http_req *r = ud;
    size_t n = size * nmemb;
    struct ab_error e;

    ab_error_init(&e);
    if (ab_buf_add(&r->resp, p, n, &e) != AB_OK) {
        r->body_fail = e.code == AB_ERR_NOMEM ? AB_HTTP_BODY_NOMEM : AB_HTTP_BODY_TOO_LARGE;
        return 0;
    }
    return n;
}

/* Copies the trimmed value of a "Name: value" line. */
static void header_value(const char *p, size_t len, size_t name_len, char *out, size_t size)
{
    size_t i = name_len + 1;
    size_t end = len;

    while (i < len && (p[i] == ' ' || p[i] == '\t')) {
        i++;
    }
    while (end > i &&
           (p[end - 1] == '\r' || p[end - 1] == '\n' || p[end - 1] == ' ' || p[end - 1] == '\t')) {
        end--;
    }
    if (end - i >= size) {
        end = i + size - 1;
    }
    memcpy(out, p + i, end - i);
    out[end - i] = '\0';
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Each header line of every response of an attempt (curl calls it for the
 * status line, the fields and the blank line ending them). */
static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct ab_http_req *r = ud;
    size_t n = size * nmemb;
    const char *colon;
    size_t v;
    size_t end = n;

    if (prefix_ci(p, n, "HTTP/")) {
        /* A new response (after a 1xx): its headers replace the previous ones. */
        r->retry_after[0] = '\0';
        r->delay_value[0] = '\0';
        if (r->header_fn) {
            r->header_fn(r->header_arg, NULL, 0, NULL, 0);
        }
        return n;
    }
    colon = memchr(p, ':', n);
    if (!colon || colon == p || is_blank(p[0])) {
        return n; /* the blank end line, or an obsolete folded line */
    }
    if (prefix_ci(p, n, "retry-after:")) {
        header_value(p, n, strlen("retry-after"), r->retry_after, sizeof(r->retry_after));
    }
    if (r->delay_header && (size_t)(colon - p) == strlen(r->delay_header) &&
        prefix_ci(p, n, r->delay_header)) {
        header_value(p, n, strlen(r->delay_header), r->delay_value, sizeof(r->delay_value));
    }
    if (r->header_fn) {
        v = (size_t)(colon - p) + 1;
        while (v < n && (p[v] == ' ' || p[v] == '\t')) {
            v++;
        }
        while (end > v && is_blank(p[end - 1])) {
            end--;
        }
        r->header_fn(r->header_arg, p, (size_t)(colon - p), p + v, end - v);
    }
    return n;
}

static CURLcode configure_easy(struct ab_http *h, struct ab_http_req *r, CURL *e)
{
    int bad = 0; /* failed setopt calls */
    bool get = strcmp(r->method, "GET") == 0;
    bool head = strcmp(r->method, "HEAD") == 0;

    bad += curl_easy_setopt(e, CURLOPT_URL, r->url) != CURLE_OK;
    bad += curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)r) != CURLE_OK;
    bad += curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad += curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad += curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->o.connect_timeout_ms) != CURLE_OK;
    bad += curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->o.request_timeout_ms) != CURLE_OK;
    bad += curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    bad += curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    if (h->ca_path) {
        bad += curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_path) != CURLE_OK;
    }
    if (h->user_agent) {
        bad += curl_easy_setopt(e, CURLOPT_USERAGENT, h->user_agent) != CURLE_OK;
    }
    bad += curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
    bad += curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "") != CURLE_OK;
    bad += curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->attempt_headers) != CURLE_OK;
    bad += curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
    bad += curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)r) != CURLE_OK;
    bad += curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
    bad += curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)r) != CURLE_OK;
    bad += curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) != CURLE_OK;
    if (h->o.max_response_bytes <= (size_t)INT64_MAX) {
        bad += curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
                                (curl_off_t)h->o.max_response_bytes) != CURLE_OK;
    }
    if (r->flags & AB_HTTP_NO_RETRY_IN_DOUBT) {
        /* curl silently re-sends a request once when a reused connection
         * turns out dead; a fresh connection keeps "at most once". */
        bad += curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L) != CURLE_OK;
    }
    if (get) {
        bad += curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) != CURLE_OK;
    } else if (head) {
        bad += curl_easy_setopt(e, CURLOPT_NOBODY, 1L) != CURLE_OK;
    } else {
        if (strcmp(r->method, "POST") != 0) {
            bad += curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method) != CURLE_OK;
        }
        if (r->body_len > 0 || strcmp(r->method, "DELETE") != 0) {
            bad += curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len) !=
                   CURLE_OK;
            bad += curl_easy_setopt(e, CURLOPT_POSTFIELDS,
                                    r->body       ? r->body
                                    : r->body_ref ? r->body_ref
                                                  : "") != CURLE_OK;
        }
    }
    return bad == 0 ? CURLE_OK : CURLE_OUT_OF_MEMORY;
}

static CURL *acquire_easy(struct ab_http *h)
{
    if (h->n_pool > 0) {
        CURL *e = h->pool[--h->n_pool];

        curl_easy_reset(e);
        return e;
    }
    return curl_easy_init();
}

static void start_attempt(struct ab_http *h, struct ab_http_req *r)
{
    struct ab_error err;
    CURL *e = NULL;

    ab_error_init(&err);
    list_remove(r);
    r->attempts++;
    r->status = 0;
    r->in_doubt = false;
    r->error[0] = '\0';
    r->errbuf[0] = '\0';
    r->retry_after[0] = '\0';
    r->delay_value[0] = '\0';
    r->retry_after_ms = -1;
    r->body_fail = AB_HTTP_BODY_OK;
    ab_buf_release(&r->resp);
    ab_buf_init(&r->resp, h->o.max_response_bytes);

    if (build_headers(h, r, &err) != AB_OK) {
        free_attempt_headers(r);
        fail_local(h, r, err.code, err.message);
        return;
    }
    e = acquire_easy(h);
    if (!e) {
        free_attempt_headers(r);
        fail_local(h, r, AB_ERR_NOMEM, "cannot create a curl handle");
        return;
    }
    if (configure_easy(h, r, e) != CURLE_OK) {
        release_easy(h, e);
        free_attempt_headers(r);
        fail_local(h, r, AB_ERR_NOMEM, "cannot configure a curl handle");
        return;
    }
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
        release_easy(h, e);
        free_attempt_headers(r);
        fail_local(h, r, AB_ERR_INTERNAL, "cannot start a curl transfer");
        return;
    }
    r->easy = e;
    r->attempt_us = ab_now_us();
    list_push(&h->active, r);
    h->stats.attempts++;
    if (r->attempts > 1) {
        h->stats.retries++;
    }
}

/* The next request allowed to start now, or NULL; *next_due gets the earliest
 * future due time of the retry list. */
static struct ab_http_req *pick(struct ab_http *h, int64_t now, int64_t *next_due)
{
    *next_due = INT64_MAX;
    for (struct ab_http_req *r = h->retry.head; r; r = r->next) {
        if (r->due_us <= now) {
            return r;
        }
        if (r->due_us < *next_due) {
            *next_due = r->due_us;
        }
    }
    return h->queue.head;
}

static void start_attempts(struct ab_http *h)
{
    h->next_wake_us = INT64_MAX;
    while (h->active.n < (size_t)h->o.max_in_flight) {
        int64_t now = ab_now_us();
        int64_t next_due;
        struct ab_http_req *r = pick(h, now, &next_due);
        long wait;

        if (!r) {
            h->next_wake_us = next_due;
            return;
        }
        wait = ab_ratelimit_take(&h->rl, now);
        if (wait > 0) {
            h->next_wake_us = now + ms_to_us(wait);
            return;
        }
        start_attempt(h, r);
    }
}

/* Transport errors that happen before any byte of the request is sent. */
static bool curl_not_sent(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return true;
    default:
        return false;
    }
}

/* Transport errors that retrying cannot fix (the configuration must change). */
static bool curl_config_error(CURLcode cc)
{
    switch (cc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        return true;
    default:
        return false;
    }
}

static bool transient_status(int status)
{
    return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

/* What to do with the answer r just received (r->status != 0). */
static enum ab_http_verdict classify(const struct ab_http *h, struct ab_http_req *r)
{
    enum ab_http_verdict v = AB_HTTP_DEFAULT;

    if (r->classify_fn) {
        struct ab_http_resp answer;

        make_resp(r, false, &answer);
        v = r->classify_fn(r->classify_arg, &answer);
    }
    switch (v) {
    case AB_HTTP_RETRY:
    case AB_HTTP_FINAL:
        return v;
    case AB_HTTP_REFRESH_AUTH:
        if (h->auth_fn && !r->auth_refreshed && !(r->flags & AB_HTTP_NO_RETRY)) {
            return v;
        }
        return AB_HTTP_FINAL;
    case AB_HTTP_DEFAULT:
    default:
        return transient_status(r->status) ? AB_HTTP_RETRY : AB_HTTP_FINAL;
    }
}

/* Classifies a transport failure; returns whether it is transient. */
static bool transport_failure(struct ab_http *h, struct ab_http_req *r, CURLcode cc)
{
    h->stats.transport_errors++;
    r->status = 0;
    if (r->body_fail == AB_HTTP_BODY_TOO_LARGE || cc == CURLE_FILESIZE_EXCEEDED) {
        (void)snprintf(r->error, sizeof(r->error), "response too large (over %zu bytes)",
                       h->o.max_response_bytes);
        r->fail_code = AB_ERR_PROTOCOL;
        r->in_doubt = false;
        return false;
    }
    if (r->body_fail == AB_HTTP_BODY_NOMEM) {
        (void)snprintf(r->error, sizeof(r->error), "out of memory (response body)");
        r->fail_code = AB_ERR_NOMEM;
        r->in_doubt = false;
        return false;
    }
    (void)snprintf(r->error, sizeof(r->error), "%s",
                   r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc));
    if (curl_config_error(cc)) {
        r->fail_code = AB_ERR_CONFIG;
        r->in_doubt = false;
        return false;
    }
    r->fail_code = AB_ERR_TRANSIENT;
    r->in_doubt = !curl_not_sent(cc);
    return true;
}

static void finish_attempt(struct ab_http *h, struct ab_http_req *r, CURLcode cc)
{
    long code = 0;
    curl_off_t sent = 0;
    bool transient = false;
    bool refresh = false;
    long ms = (long)((ab_now_us() - r->attempt_us) / 1000);
    char why[AB_HTTP_ERROR_MAX + 32];

    (void)curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    if (curl_easy_getinfo(r->easy, CURLINFO_SIZE_UPLOAD_T, &sent) == CURLE_OK && sent > 0) {
        h->stats.bytes_sent += (uint64_t)sent;
    }
    detach_attempt(h, r);
    list_remove(r);
    r->retry_after_ms =
        r->retry_after[0] ? ab_http_parse_retry_after(r->retry_after, ab_wall_ms() / 1000) : -1;
    if (r->delay_value[0] && cc == CURLE_OK && code == r->delay_status) {
        long wait_ms = ab_http_parse_retry_after(r->delay_value, ab_wall_ms() / 1000);

        if (wait_ms > r->retry_after_ms) {
            r->retry_after_ms = wait_ms;
        }
    }

    if (cc == CURLE_OK && (code < 100 || code > 999)) {
        cc = CURLE_WEIRD_SERVER_REPLY;
    }
    if (cc != CURLE_OK) {
        transient = transport_failure(h, r, cc);
        http_log(h, AB_LOG_DEBUG, "'%s' attempt %d: %s%s after %ld ms", r->label, r->attempts,
                 r->error, r->in_doubt ? " (outcome unknown)" : "", ms);
        (void)snprintf(why, sizeof(why), "transport error: %s", r->error);
    } else {
        r->status = (int)code;
        r->in_doubt = false;
        r->fail_code = AB_OK;
        if (code == 429) {
            h->stats.throttled++;
        }
        http_log(h, AB_LOG_DEBUG, "'%s' attempt %d: HTTP %d after %ld ms", r->label, r->attempts,
                 r->status, ms);
        switch (classify(h, r)) {
        case AB_HTTP_REFRESH_AUTH:
            refresh = true;
            break;
        case AB_HTTP_RETRY:
            transient = true;
            break;
        default:
            break;
        }
        (void)snprintf(why, sizeof(why), "HTTP %d", r->status);
    }
    if (refresh) {
        /* Not counted against max_retries: the next attempt forces a new token. */
        r->auth_refreshed = true;
        r->force_auth = true;
        r->due_us = ab_now_us();
        list_push(&h->retry, r);
        http_log(h, AB_LOG_WARN, "retrying '%s' with a new access token after HTTP %d", r->label,
                 r->status);
        return;
    }
    if (transient && can_retry(h, r, r->in_doubt)) {
        schedule_retry(h, r, why);
        return;
    }
    complete(h, r, transient);
}

/* ---- driving: curl_multi_socket_action() and the loop ---- */

static void set_broken(struct ab_http *h, const struct ab_error *e)
{
    if (h->broken == AB_OK) {
        h->broken = e->code != AB_OK ? e->code : AB_ERR_INTERNAL;
        copy_text(h->broken_msg, sizeof(h->broken_msg), "", e->message);
    }
}

static enum ab_status fail_broken(const struct ab_http *h, struct ab_error *err)
{
    return ab_error_set(err, h->broken, "HTTP client: %s", h->broken_msg);
}

static unsigned loop_mask(int what)
{
    return ((what == CURL_POLL_IN || what == CURL_POLL_INOUT) ? AB_LOOP_READ : 0U) |
           ((what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ? AB_LOOP_WRITE : 0U);
}

static short poll_events(int what)
{
    unsigned m = loop_mask(what);

    return (short)(((m & AB_LOOP_READ) ? POLLIN : 0) | ((m & AB_LOOP_WRITE) ? POLLOUT : 0));
}

/* CURL_CSELECT_* bits of poll(2) revents; a hang-up or an error is passed
 * on as readable too, so that curl reads the end of the stream. */
static int cselect_of_revents(short rev)
{
    int bits = 0;

    if (rev & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) {
        bits |= CURL_CSELECT_IN;
    }
    if (rev & POLLOUT) {
        bits |= CURL_CSELECT_OUT;
    }
    if (rev & (POLLHUP | POLLERR | POLLNVAL)) {
        bits |= CURL_CSELECT_ERR;
    }
    return bits;
}

static enum ab_status on_loop_fd(void *arg, int fd, unsigned ready, struct ab_error *err);
static enum ab_status on_loop_timer(void *arg, uint64_t id, struct ab_error *err);

/* Arms the loop timer for the earliest of curl's timeout and the next
 * possible start (disarms it when neither is set). */
static void sync_timer(struct ab_http *h)
{
    int64_t due = h->curl_due_us < h->next_wake_us ? h->curl_due_us : h->next_wake_us;
    struct ab_error e;

    if (!h->loop || (due == h->timer_due_us && (h->timer_id != 0) == (due != INT64_MAX))) {
        return;
    }
    ab_loop_del_timer(h->loop, h->timer_id);
    h->timer_id = 0;
    h->timer_due_us = INT64_MAX;
    if (due == INT64_MAX) {
        return;
    }
    ab_error_init(&e);
    h->timer_id = ab_loop_add_timer(h->loop, due - ab_now_us(), 0, on_loop_timer, h, &e);
    if (h->timer_id == 0) {
        set_broken(h, &e);
        return;
    }
    h->timer_due_us = due;
}

static struct ab_http_sock *find_sock(struct ab_http *h, curl_socket_t fd)
{
    for (size_t i = 0; i < h->nsocks; i++) {
        if (h->socks[i].fd == fd) {
            return &h->socks[i];
        }
    }
    return NULL;
}

/* CURLMOPT_SOCKETFUNCTION: records what curl wants watched on fd, and
 * (un)registers fd with the loop. Never calls back into curl. */
static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct ab_http *h = userp;
    struct ab_http_sock *s = find_sock(h, fd);
    struct ab_error err;

    (void)e;
    (void)socketp;
    ab_error_init(&err);
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            *s = h->socks[--h->nsocks];
        }
        if (h->loop) {
            ab_loop_del_fd(h->loop, fd);
        }
        return 0;
    }
    if (s) {
        s->what = what;
        if (h->loop) {
            ab_loop_fd_mask(h->loop, fd, loop_mask(what));
        }
        return 0;
    }
    if (h->nsocks == h->sock_cap) {
        size_t cap = h->sock_cap ? h->sock_cap * 2 : 8;
        struct ab_http_sock *n = realloc(h->socks, cap * sizeof(*n));

        if (!n) {
            (void)ab_error_set(&err, AB_ERR_NOMEM, "out of memory (sockets)");
            set_broken(h, &err);
            return -1;
        }
        h->socks = n;
        h->sock_cap = cap;
    }
    if (h->loop && ab_loop_add_fd(h->loop, fd, loop_mask(what), on_loop_fd, h, &err) != AB_OK) {
        set_broken(h, &err);
        return -1;
    }
    h->socks[h->nsocks].fd = fd;
    h->socks[h->nsocks].what = what;
    h->nsocks++;
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: curl wants socket_action(CURL_SOCKET_TIMEOUT)
 * after timeout_ms (0: as soon as possible; -1: no timeout). */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct ab_http *h = userp;

    (void)multi;
    h->curl_due_us = timeout_ms < 0 ? INT64_MAX : ab_now_us() + ms_to_us(timeout_ms);
    if (!h->in_pump) {
        sync_timer(h);
    }
    return 0;
}

static enum ab_status socket_action(struct ab_http *h, curl_socket_t fd, int bits,
                                    struct ab_error *err)
{
    int running = 0;
    CURLMcode mc = curl_multi_socket_action(h->multi, fd, bits, &running);

    /* a socket curl dropped while its readiness was pending is no error */
    if (mc != CURLM_OK && mc != CURLM_BAD_SOCKET) {
        if (h->broken != AB_OK) {
            return fail_broken(h, err);
        }
        return ab_error_set(err, AB_ERR_INTERNAL, "curl_multi_socket_action failed: %s",
                            curl_multi_strerror(mc));
    }
    return AB_OK;
}

/* Finishes the attempts curl reports done. */
static enum ab_status read_done(struct ab_http *h, struct ab_error *err)
{
    for (;;) {
        int left = 0;
        CURLMsg *msg = curl_multi_info_read(h->multi, &left);
        CURL *e;
        CURLcode cc;
        char *priv = NULL;

        if (!msg) {
            return AB_OK;
        }
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        /* msg is invalid once the handle is removed: copy what is needed. */
        e = msg->easy_handle;
        cc = msg->data.result;
        if (curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv) != CURLE_OK || !priv) {
            return ab_error_set(err, AB_ERR_INTERNAL, "curl transfer without its request");
        }
        finish_attempt(h, (struct ab_http_req *)(void *)priv, cc);
    }
}

/*
 * The one place transfers advance: tells curl which sockets are ready
 * (ready: n poll(2) entries, revents set; entries without revents are
 * skipped), runs curl's due timeout, finishes the completed attempts (their
 * callbacks run here) and starts queued or due ones; then rounds of curl
 * timeouts already due (a new transfer's first step), at most
 * AB_HTTP_PUMP_ROUNDS; finally re-arms the loop timer.
 */
static enum ab_status pump(struct ab_http *h, const struct pollfd *ready, size_t n,
                           struct ab_error *err)
{
    enum ab_status rc = AB_OK;

    AB_ASSERT(!h->in_pump && !h->in_callback);
    if (h->broken != AB_OK) {
        return fail_broken(h, err);
    }
    h->in_pump = true;
    for (size_t i = 0; i < n && rc == AB_OK; i++) {
        int bits = cselect_of_revents(ready[i].revents);

        if (bits) {
            rc = socket_action(h, ready[i].fd, bits, err);
        }
    }
    for (int round = 0; rc == AB_OK; round++) {
        if (h->curl_due_us <= ab_now_us()) {
            h->curl_due_us = INT64_MAX;
            rc = socket_action(h, CURL_SOCKET_TIMEOUT, 0, err);
        }
        if (rc == AB_OK) {
            rc = read_done(h, err);
        }
        if (rc == AB_OK) {
            /* cheap when nothing waits; sets next_wake_us */
            start_attempts(h);
        }
        if (round + 1 >= AB_HTTP_PUMP_ROUNDS || h->curl_due_us > ab_now_us()) {
            break;
        }
    }
    h->in_pump = false;
    sync_timer(h);
    if (rc == AB_OK && h->broken != AB_OK) {
        rc = fail_broken(h, err);
    }
    return rc;
}

static enum ab_status on_loop_fd(void *arg, int fd, unsigned ready, struct ab_error *err)
{
    struct ab_http *h = arg;
    struct pollfd p;

    p.fd = fd;
    p.events = 0;
    p.revents =
        (short)(((ready & AB_LOOP_READ) ? POLLIN : 0) | ((ready & AB_LOOP_WRITE) ? POLLOUT : 0) |
                ((ready & AB_LOOP_ERROR) ? POLLERR : 0));
    return pump(h, &p, 1, err);
}

static enum ab_status on_loop_timer(void *arg, uint64_t id, struct ab_error *err)
{
    struct ab_http *h = arg;

    AB_ASSERT(id == h->timer_id);
    (void)id;
    /* one-shot: the loop deleted it before this call */
    h->timer_id = 0;
    h->timer_due_us = INT64_MAX;
    return pump(h, NULL, 0, err);
}

void ab_http_set_loop(struct ab_http *h, struct ab_loop *l)
{
    struct ab_error e;

    AB_ASSERT(!h->in_pump);
    if (h->loop == l) {
        return;
    }
    if (h->loop) {
        for (size_t i = 0; i < h->nsocks; i++) {
            ab_loop_del_fd(h->loop, h->socks[i].fd);
        }
        ab_loop_del_timer(h->loop, h->timer_id);
        h->timer_id = 0;
        h->timer_due_us = INT64_MAX;
    }
    h->loop = l;
    if (!l) {
        return;
    }
    ab_error_init(&e);
    for (size_t i = 0; i < h->nsocks; i++) {
        if (ab_loop_add_fd(l, h->socks[i].fd, loop_mask(h->socks[i].what), on_loop_fd, h, &e) !=
            AB_OK) {
            set_broken(h, &e);
        }
    }
    sync_timer(h);
}

/* Milliseconds to poll: until the deadline, curl's timeout or the next
 * possible start, whichever comes first. */
static int poll_ms(const struct ab_http *h, int64_t now, int64_t deadline)
{
    int64_t until = deadline;
    int64_t ms;

    if (h->next_wake_us < until) {
        until = h->next_wake_us;
    }
    if (h->curl_due_us < until) {
        until = h->curl_due_us;
    }
    if (until == INT64_MAX) {
        return -1;
    }
    ms = (until - now + 999) / 1000;
    if (ms > INT_MAX) {
        return INT_MAX;
    }
    return ms < 0 ? 0 : (int)ms;
}

/* Room for n entries in h->pfd. */
static enum ab_status pfd_room(struct ab_http *h, size_t n, struct ab_error *err)
{
    struct pollfd *p;

    if (n <= h->pfd_cap) {
        return AB_OK;
    }
    p = realloc(h->pfd, n * sizeof(*p));
    if (!p) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (%zu descriptors to poll)", n);
    }
    h->pfd = p;
    h->pfd_cap = n;
    return AB_OK;
}

enum ab_status ab_http_wait(struct ab_http *h, struct pollfd *fds, unsigned nfds, long timeout_ms,
                            struct ab_error *err)
{
    int64_t deadline = timeout_ms >= 0 ? ab_now_us() + ms_to_us(timeout_ms) : INT64_MAX;
    unsigned given = 0;
    bool ready = false;
    enum ab_status rc;

    for (unsigned i = 0; i < nfds; i++) {
        fds[i].revents = 0;
        given += fds[i].fd >= 0;
    }
    if (h->in_callback || h->in_pump) {
        return ab_error_set(err, AB_ERR_INTERNAL, "ab_http_wait called from a completion callback");
    }
    h->n_done = 0;
    rc = pump(h, NULL, 0, err);
    while (rc == AB_OK && h->n_done == 0 && !ready) {
        int64_t now = ab_now_us();
        size_t n = 0;
        size_t nsock = h->nsocks;
        int pr;

        if (now >= deadline || (ab_http_pending(h) == 0 && given == 0)) {
            break;
        }
        rc = pfd_room(h, (size_t)given + nsock, err);
        if (rc != AB_OK) {
            break;
        }
        for (unsigned i = 0; i < nfds; i++) {
            if (fds[i].fd >= 0) {
                h->pfd[n++] = (struct pollfd){.fd = fds[i].fd, .events = fds[i].events};
            }
        }
        for (size_t i = 0; i < nsock; i++) {
            h->pfd[n++] =
                (struct pollfd){.fd = h->socks[i].fd, .events = poll_events(h->socks[i].what)};
        }
        pr = poll(h->pfd, (nfds_t)n, poll_ms(h, now, deadline));
        if (pr < 0 && errno != EINTR) {
            rc = ab_error_set(err, AB_ERR_IO, "poll failed: %s", strerror(errno));
            break;
        }
        n = 0;
        for (unsigned i = 0; i < nfds; i++) {
            if (fds[i].fd >= 0) {
                fds[i].revents = pr > 0 ? h->pfd[n].revents : 0;
                ready = ready || fds[i].revents != 0;
                n++;
            }
        }
        /* the sockets' entries follow the caller's */
        rc = pump(h, pr > 0 ? h->pfd + given : NULL, pr > 0 ? nsock : 0, err);
    }
    return rc;
}

/* How often ab_http_run() looks at the stop flag while it waits. */
#define STOP_POLL_MS 100L

/* ab_http_run()'s view of its one request. */
struct ab_http_run_ctx {
    struct ab_http *h;
    bool done;
    int status;
    bool in_doubt;
    enum ab_status fail_code;
    char error[AB_HTTP_ERROR_MAX];
    char label[AB_HTTP_LABEL_MAX];
    struct ab_buf *out;
    enum ab_status copy_rc;
    struct ab_error *err;
};

static void run_done(void *arg, const struct ab_http_resp *resp)
{
    struct ab_http_run_ctx *c = arg;

    c->done = true;
    c->status = resp->status;
    c->in_doubt = resp->in_doubt;
    c->fail_code = c->h->done_fail_code;
    (void)snprintf(c->error, sizeof(c->error), "%s", resp->error);
    if (c->out) {
        ab_buf_reset(c->out);
        c->copy_rc = ab_buf_add(c->out, resp->body, resp->body_len, c->err);
    }
}

enum ab_status ab_http_run(struct ab_http *h, struct ab_http_req *r, int *status,
                           struct ab_buf *out_body, struct ab_error *err)
{
    struct ab_http_run_ctx c;
    enum ab_status rc;

    memset(&c, 0, sizeof(c));
    c.h = h;
    c.out = out_body;
    c.err = err;
    if (status) {
        *status = 0;
    }
    if (!r) {
        (void)ab_error_set(err, AB_ERR_INTERNAL, "no HTTP request to run");
        return AB_ERR_INTERNAL;
    }
    if (!r->label[0]) {
        default_label(r);
    }
    (void)snprintf(c.label, sizeof(c.label), "%s", r->label);
    rc = ab_http_submit(h, r, run_done, &c, err);
    if (rc != AB_OK) {
        return rc;
    }
    while (!c.done) {
        if (h->o.stop && *h->o.stop) {
            rc = ab_error_set(err, AB_ERR_TRANSIENT, "HTTP request '%s' abandoned: stopping",
                              c.label);
            break;
        }
        rc = ab_http_wait(h, NULL, 0, h->o.stop ? STOP_POLL_MS : -1, err);
        if (rc != AB_OK) {
            break;
        }
    }
    if (!c.done) {
        /* c lives on this stack: the request must not outlive the call. */
        abort_req(h, r);
        return rc;
    }
    if (c.copy_rc != AB_OK) {
        return c.copy_rc;
    }
    if (status) {
        *status = c.status;
    }
    if (c.status == 0) {
        return ab_error_set(err,
                            c.in_doubt || c.fail_code == AB_OK ? AB_ERR_TRANSIENT : c.fail_code,
                            "HTTP request '%s' failed: %s%s", c.label, c.error,
                            c.in_doubt ? " (outcome unknown)" : "");
    }
    return AB_OK;
}
