/* test_http.c - unit tests for the HTTP client (against a local Python server). */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <spawn.h>
#include <strings.h>

#include "ab/clock.h"
#include "ab/emitter.h"
#include "ab/http.h"
#include "ab/loop.h"
#include "ab/oauth2.h"

#include "ab_test.h"
#include "clock_int.h"
#include "driver_int.h"
#include "http_int.h"

#ifndef AB_HTTP_TEST_SERVER
#define AB_HTTP_TEST_SERVER AB_TEST_DATA_DIR "/../http_test_server.py"
#endif

extern char **environ;

/* The test server, started once for the whole group. */
static pid_t srv_pid = -1;
static int srv_port;
static char srv_dir[64];
static char srv_portfile[128];

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int server_start(void **state)
{
    char prog[] = "python3";
    char script[] = AB_HTTP_TEST_SERVER;
    char *argv[] = {prog, script, srv_portfile, NULL};

    (void)state;
    (void)snprintf(srv_dir, sizeof(srv_dir), "/tmp/ab_http_test_XXXXXX");
    if (!mkdtemp(srv_dir)) {
        return -1;
    }
    (void)snprintf(srv_portfile, sizeof(srv_portfile), "%s/port", srv_dir);
    if (posix_spawnp(&srv_pid, "python3", NULL, NULL, argv, environ) != 0) {
        srv_pid = -1;
        return -1;
    }
    /* up to 60 s: a loaded machine starts Python slowly */
    for (int i = 0; i < 1200 && srv_port <= 0; i++) {
        FILE *f = fopen(srv_portfile, "r");

        if (f) {
            char line[32];

            if (fgets(line, sizeof(line), f)) {
                srv_port = (int)strtol(line, NULL, 10);
            }
            (void)fclose(f);
        }
        if (srv_port <= 0) {
            if (waitpid(srv_pid, NULL, WNOHANG) == srv_pid) {
                srv_pid = -1; /* the server died: no use waiting */
                return -1;
            }
            sleep_ms(50);
        }
    }
    return srv_port > 0 ? 0 : -1;
}

static int server_stop(void **state)
{
    (void)state;
    if (srv_pid > 0) {
        (void)kill(srv_pid, SIGTERM);
        (void)waitpid(srv_pid, NULL, 0);
    }
    (void)unlink(srv_portfile);
    (void)rmdir(srv_dir);
    curl_global_cleanup();
    return 0;
}

/* What a completion callback saw. */
struct got {
    int calls;
    int status;
    bool transient;
    bool in_doubt;
    int attempts;
    long retry_after_ms;
    double elapsed_s;
    char body[4096];
    size_t body_len;
    char error[256];
};

static void on_done(void *arg, const struct ab_http_resp *r)
{
    struct got *g = arg;
    size_t n = r->body_len < sizeof(g->body) - 1 ? r->body_len : sizeof(g->body) - 1;

    g->calls++;
    g->status = r->status;
    g->transient = r->transient;
    g->in_doubt = r->in_doubt;
    g->attempts = r->attempts;
    g->retry_after_ms = r->retry_after_ms;
    g->elapsed_s = r->elapsed_s;
    memcpy(g->body, r->body, n);
    g->body[n] = '\0';
    g->body_len = r->body_len;
    (void)snprintf(g->error, sizeof(g->error), "%s", r->error);
}

static void opts_for_test(struct ab_http_opts *o)
{
    ab_http_opts_init(o);
    o->seed = 42;
    o->connect_timeout_ms = 5000;
    o->request_timeout_ms = 10000;
    o->backoff_base_ms = 10;
    o->backoff_max_ms = 50;
    o->max_retries = 3;
}

static struct ab_http *client_new(const struct ab_http_opts *o)
{
    struct ab_error err;
    struct ab_http *h;

    ab_error_init(&err);
    h = ab_http_new(o, &err);
    assert_non_null(h);
    return h;
}

static struct ab_http *client_default(void)
{
    struct ab_http_opts o;

    opts_for_test(&o);
    return client_new(&o);
}

static void url_for(char *out, size_t size, const char *path)
{
    (void)snprintf(out, size, "http://127.0.0.1:%d%s", srv_port, path);
}

static struct ab_http_req *req_new(const char *method, const char *path)
{
    struct ab_error err;
    char url[512];
    struct ab_http_req *r;

    ab_error_init(&err);
    url_for(url, sizeof(url), path);
    r = ab_http_req_new(method, url, &err);
    assert_non_null(r);
    return r;
}

static void req_body(struct ab_http_req *r, const void *data, size_t len)
{
    struct ab_error err;
    struct ab_buf b;

    ab_error_init(&err);
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_buf_add(&b, data, len, &err), AB_OK);
    assert_int_equal(ab_http_req_body(r, &b, "application/octet-stream", &err), AB_OK);
    assert_null(b.data);
}

static void submit(struct ab_http *h, struct ab_http_req *r, struct got *g)
{
    struct ab_error err;

    ab_error_init(&err);
    memset(g, 0, sizeof(*g));
    assert_int_equal(ab_http_submit(h, r, on_done, g, &err), AB_OK);
}

/* Drives h until nothing is pending; fails the test after limit_s. */
static void drain(struct ab_http *h, double limit_s)
{
    int64_t start = ab_now_us();

    while (ab_http_pending(h) > 0) {
        struct ab_error err;

        ab_error_init(&err);
        assert_int_equal(ab_http_wait(h, NULL, 0, 200, &err), AB_OK);
        assert_true((double)(ab_now_us() - start) < limit_s * 1e6);
    }
}

static void fetch(struct ab_http *h, const char *method, const char *path, unsigned flags,
                  struct got *g)
{
    struct ab_http_req *r = req_new(method, path);

    ab_http_req_flags(r, flags);
    submit(h, r, g);
    drain(h, 30);
    assert_int_equal(g->calls, 1);
}

/* GETs a number from the server (/count, /conns) with client h. */
static long server_number(struct ab_http *h, const char *path)
{
    struct got g;

    fetch(h, "GET", path, 0, &g);
    assert_int_equal(g.status, 200);
    return strtol(g.body, NULL, 10);
}

static double seconds_since(int64_t start_us)
{
    return (double)(ab_now_us() - start_us) / 1e6;
}

/* ---- pure helpers ---- */

struct ra_case {
    const char *value;
    int64_t now;
    long want;
};

static void test_retry_after_parse_table(void **state)
{
    static const struct ra_case cases[] = {
        {"120", 0, 120000},
        {"  7 ", 0, 7000},
        {"0", 0, 0},
        {"99999999999999999999999", 0, -2}, /* saturates: huge, positive */
        {"Sun, 06 Nov 1994 08:49:47 GMT", 784111777, 10000},
        {"Sun, 06 Nov 1994 08:49:37 GMT", 784111777, 0},
        {"Sat, 05 Nov 1994 08:49:37 GMT", 784111777, 0}, /* in the past */
        {"Sunday, 06-Nov-94 08:50:37 GMT", 784111777, 60000},
        {"Sun Nov  6 08:49:57 1994", 784111777, 20000},
        {"Thu, 01 Jan 1970 00:00:01 GMT", 0, 1000},
        {"Tue, 29 Feb 2000 00:00:05 GMT", 951782400, 5000},
        {"Fri, 01 Jan 2100 00:00:00 GMT", 4102444800 - 3, 3000},
        {"", 0, -1},
        {"   ", 0, -1},
        {"soon", 0, -1},
        {"-5", 0, -1},
        {"5x", 0, -1},
        {"1.5", 0, -1},
        {"Sun, 06 Nov 1994 08:49:37 PST", 784111777, -1},
        {"Sun, 31 Nov 1994 08:49:37 GMT", 784111777, -1},
        {"Sun, 29 Feb 1900 08:49:37 GMT", 0, -1},
        {"Sun, 06 Nov 1994 25:00:00 GMT", 784111777, -1},
        {"Sun, 06 Nov 94 08:49:37 GMT", 784111777, -1},
        {"sun, 06 nov 1994 08:49:37 gmt", 784111777, -1},
        {"Sun, 06 Nov 1994 08:49:37 GMT trailing", 784111777, -1},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        long got = ab_http_parse_retry_after(cases[i].value, cases[i].now);

        if (cases[i].want == -2) {
            assert_true(got > 1000L * 1000 * 1000);
        } else if (got != cases[i].want) {
            fail_msg("'%s': got %ld, want %ld", cases[i].value, got, cases[i].want);
        }
    }
    assert_int_equal(ab_http_parse_retry_after(NULL, 0), -1);
}

static void test_backoff_bounds_and_growth(void **state)
{
    uint64_t rng = 42;
    uint64_t a = 7;
    uint64_t b = 7;
    double mean[8] = {0};
    const int n = 4000;
    bool differs = false;

    (void)state;
    for (int attempt = 1; attempt <= 7; attempt++) {
        long cap = 100L << (attempt - 1);
        long hi = 0;

        if (cap > 5000) {
            cap = 5000;
        }
        for (int i = 0; i < n; i++) {
            long d = ab_http_backoff_ms(100, 5000, attempt, &rng);

            assert_true(d >= 0 && d <= cap);
            hi = d > hi ? d : hi;
            mean[attempt] += (double)d / n;
        }
        /* Full jitter: uniform over [0, cap]. */
        assert_true(mean[attempt] > 0.42 * (double)cap && mean[attempt] < 0.58 * (double)cap);
        assert_true((double)hi > 0.95 * (double)cap);
    }
    assert_true(mean[2] > 1.6 * mean[1] && mean[3] > 1.6 * mean[2] && mean[4] > 1.6 * mean[3]);
    /* Capped: attempts 7 (6400 uncapped) and 1000 stay under max_ms. */
    for (int i = 0; i < 100; i++) {
        assert_true(ab_http_backoff_ms(100, 5000, 1000, &rng) <= 5000);
        assert_true(ab_http_backoff_ms(100, 5000, 2147483647, &rng) <= 5000);
        assert_true(ab_http_backoff_ms(9000, 5000, 1, &rng) <= 5000);
    }
    /* Deterministic for a seed; another seed gives another sequence. */
    for (int i = 0; i < 50; i++) {
        assert_int_equal(ab_http_backoff_ms(500, 30000, 5, &a),
                         ab_http_backoff_ms(500, 30000, 5, &b));
    }
    b = 8;
    for (int i = 0; i < 50; i++) {
        if (ab_http_backoff_ms(500, 30000, 5, &a) != ab_http_backoff_ms(500, 30000, 5, &b)) {
            differs = true;
        }
    }
    assert_true(differs);
}

static void test_ratelimit_burst_then_rate(void **state)
{
    struct ab_ratelimit rl;
    int64_t t0 = 1000000;
    long w;

    (void)state;
    ab_ratelimit_init(&rl, 10, 3, t0);
    assert_int_equal(ab_ratelimit_take(&rl, t0), 0);
    assert_int_equal(ab_ratelimit_take(&rl, t0), 0);
    assert_int_equal(ab_ratelimit_take(&rl, t0), 0);
    w = ab_ratelimit_take(&rl, t0);
    assert_true(w >= 99 && w <= 101);
    w = ab_ratelimit_take(&rl, t0 + 50000);
    assert_true(w >= 49 && w <= 51);
    assert_int_equal(ab_ratelimit_take(&rl, t0 + 100000), 0);
    assert_true(ab_ratelimit_take(&rl, t0 + 100000) > 0);
    /* A long pause refills the bucket up to the burst only. */
    t0 += (int64_t)10 * 1000000;
    assert_int_equal(ab_ratelimit_take(&rl, t0), 0);
    assert_int_equal(ab_ratelimit_take(&rl, t0), 0);
    assert_int_equal(ab_ratelimit_take(&rl, t0), 0);
    assert_true(ab_ratelimit_take(&rl, t0) > 0);
    /* Steady state: one token per 1/rate. */
    for (int i = 1; i <= 20; i++) {
        assert_int_equal(ab_ratelimit_take(&rl, t0 + (int64_t)i * 100000), 0);
        assert_true(ab_ratelimit_take(&rl, t0 + (int64_t)i * 100000) > 0);
    }
    /* Default burst max(1, rate). */
    ab_ratelimit_init(&rl, 0.5, 0, 0);
    assert_int_equal(ab_ratelimit_take(&rl, 0), 0);
    assert_int_equal(ab_ratelimit_take(&rl, 0), 2000);
    /* Unlimited. */
    ab_ratelimit_init(&rl, 0, 0, 0);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(ab_ratelimit_take(&rl, 0), 0);
    }
}

/* ---- against the test server ---- */

static void test_http_200_with_body(void **state)
{
    struct ab_http *h = client_default();
    struct ab_http_stats st;
    struct got g;

    (void)state;
    fetch(h, "GET", "/seq?k=ok200&s=200", 0, &g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "ok200 0 200");
    assert_int_equal(g.body_len, strlen("ok200 0 200"));
    assert_int_equal(g.attempts, 1);
    assert_false(g.transient);
    assert_false(g.in_doubt);
    assert_string_equal(g.error, "");
    assert_int_equal(g.retry_after_ms, -1);
    fetch(h, "GET", "/seq?k=ok200b&s=204", 0, &g);
    assert_int_equal(g.status, 204);
    assert_string_equal(g.body, "");
    ab_http_get_stats(h, &st);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.attempts, 2);
    assert_int_equal(st.retries, 0);
    assert_int_equal(ab_http_pending(h), 0);
    assert_int_equal(ab_http_active(h), 0);
    ab_http_free(h);
}

static void test_http_503_then_200_retried(void **state)
{
    struct ab_http *h = client_default();
    struct ab_http_stats st;
    struct got g;

    (void)state;
    fetch(h, "POST", "/seq?k=r503&s=503,200", 0, &g);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.attempts, 2);
    assert_string_equal(g.body, "r503 1 200");
    assert_int_equal(server_number(h, "/count?k=r503"), 2);
    ab_http_get_stats(h, &st);
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.attempts, 3);
    ab_http_free(h);
}

static void test_http_429_retry_after_honoured(void **state)
{
    struct ab_http_opts o;
    struct ab_http *h;
    struct ab_http_stats st;
    struct got g;

    (void)state;
    opts_for_test(&o);
    h = client_new(&o);
    fetch(h, "GET", "/seq?k=r429&s=429,200&ra=1", 0, &g);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.attempts, 2);
    assert_true(g.elapsed_s >= 1.0);
    ab_http_get_stats(h, &st);
    assert_int_equal(st.throttled, 1);
    /* Without the header the same sequence retries after the ~10 ms backoff. */
    fetch(h, "GET", "/seq?k=r429b&s=429,200", 0, &g);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.attempts, 2);
    assert_true(g.elapsed_s < 0.5);
    ab_http_free(h);

    /* Capped by max_retry_after_ms. */
    o.max_retry_after_ms = 100;
    h = client_new(&o);
    fetch(h, "GET", "/seq?k=r429c&s=429,200&ra=30", 0, &g);
    assert_int_equal(g.status, 200);
    assert_true(g.elapsed_s >= 0.1 && g.elapsed_s < 1.0);
    /* Exhausted: the last answer's Retry-After is reported. */
    o.max_retries = 0;
    ab_http_free(h);
    h = client_new(&o);
    fetch(h, "GET", "/seq?k=r429d&s=429&ra=7", 0, &g);
    assert_int_equal(g.status, 429);
    assert_true(g.transient);
    assert_int_equal(g.retry_after_ms, 7000);
    ab_http_free(h);
}

/* A request whose delay header is X-Window-Reset on status 429. */
static void fetch_delay_header(struct ab_http *h, const char *path, struct got *g)
{
    struct ab_http_req *r = req_new("GET", path);
    struct ab_error err;

    ab_error_init(&err);
    assert_int_equal(ab_http_req_delay_header(r, "x-window-reset", 429, &err), AB_OK);
    submit(h, r, g);
    drain(h, 30);
    assert_int_equal(g->calls, 1);
}

static void test_http_delay_header_honoured_on_its_status(void **state)
{
    struct ab_http *h = client_default();
    struct got g;

    (void)state;
    /* 429 with the API's own "wait N seconds" field: the retry waits */
    fetch_delay_header(h, "/seq?k=wr1&s=429,200&wr=1", &g);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.attempts, 2);
    assert_true(g.elapsed_s >= 1.0);
    /* the same field on a 503 is not a delay */
    fetch_delay_header(h, "/seq?k=wr2&s=503,200&wr=5", &g);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.attempts, 2);
    assert_true(g.elapsed_s < 1.0);
    /* a request without the hook ignores the field */
    fetch(h, "GET", "/seq?k=wr3&s=429,200&wr=5", 0, &g);
    assert_int_equal(g.status, 200);
    assert_true(g.elapsed_s < 1.0);
    ab_http_free(h);
}

static void test_http_404_final_without_retry(void **state)
{
    struct ab_http *h = client_default();
    struct got g;

    (void)state;
    fetch(h, "GET", "/seq?k=f404&s=404,200", 0, &g);
    assert_int_equal(g.status, 404);
    assert_int_equal(g.attempts, 1);
    assert_false(g.transient);
    assert_int_equal(server_number(h, "/count?k=f404"), 1);
    ab_http_free(h);
}

/* What a classifier and a header hook saw, and the verdicts to give. */
struct hooks {
    int classified;      /* classifier calls */
    int statuses[8];     /* status of each classified answer */
    char last_body[256]; /* body of the last classified answer */
    int starts;          /* header hook: responses started */
    int fields;          /* header hook: fields of the current response */
    bool marker;         /* the current response carries "Idempotent-Replayed: true" */
    int retry_status;    /* this status is AB_HTTP_RETRY */
    int final_status;    /* this status is AB_HTTP_FINAL */
    int refresh_status;  /* this status is AB_HTTP_REFRESH_AUTH */
};

static enum ab_http_verdict classify_cb(void *arg, const struct ab_http_resp *a)
{
    struct hooks *k = arg;
    size_t n = a->body_len < sizeof(k->last_body) - 1 ? a->body_len : sizeof(k->last_body) - 1;

    assert_true(a->status != 0);
    assert_false(a->transient);
    assert_int_equal(a->attempts, k->classified + 1);
    if (k->classified < 8) {
        k->statuses[k->classified] = a->status;
    }
    k->classified++;
    memcpy(k->last_body, a->body, n);
    k->last_body[n] = '\0';
    if (a->status == k->retry_status) {
        return AB_HTTP_RETRY;
    }
    if (a->status == k->final_status) {
        return AB_HTTP_FINAL;
    }
    if (a->status == k->refresh_status) {
        return AB_HTTP_REFRESH_AUTH;
    }
    return AB_HTTP_DEFAULT;
}

static void header_cb(void *arg, const char *name, size_t name_len, const char *value,
                      size_t value_len)
{
    struct hooks *k = arg;

    if (!name) {
        assert_int_equal(name_len, 0);
        k->starts++;
        k->fields = 0;
        k->marker = false;
        return;
    }
    assert_true(name_len > 0);
    assert_null(memchr(name, ':', name_len));
    k->fields++;
    if (name_len == 19 && strncasecmp(name, "idempotent-replayed", 19) == 0) {
        /* the value comes trimmed, without the line end */
        k->marker = value_len == 4 && memcmp(value, "true", 4) == 0;
    }
}

static void fetch_hooked(struct ab_http *h, const char *method, const char *path, struct hooks *k,
                         struct got *g)
{
    struct ab_http_req *r = req_new(method, path);

    ab_http_req_classify(r, classify_cb, k);
    ab_http_req_on_header(r, header_cb, k);
    submit(h, r, g);
    drain(h, 30);
    assert_int_equal(g->calls, 1);
}

static void test_http_classifier_retry_and_final(void **state)
{
    struct ab_http *h = client_default();
    struct hooks k;
    struct got g;

    (void)state;
    /* Without a classifier a 409 is final. */
    fetch(h, "POST", "/seq?k=c409a&s=409,200", 0, &g);
    assert_int_equal(g.status, 409);
    assert_int_equal(g.attempts, 1);
    assert_false(g.transient);
    /* AB_HTTP_RETRY: retried, and the classifier sees every answer. */
    memset(&k, 0, sizeof(k));
    k.retry_status = 409;
    fetch_hooked(h, "POST", "/seq?k=c409b&s=409,409,200", &k, &g);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.attempts, 3);
    assert_int_equal(k.classified, 3);
    assert_int_equal(k.statuses[0], 409);
    assert_int_equal(k.statuses[1], 409);
    assert_int_equal(k.statuses[2], 200);
    assert_string_equal(k.last_body, "c409b 2 200");
    /* AB_HTTP_FINAL overrides the default retry of a 503. */
    memset(&k, 0, sizeof(k));
    k.final_status = 503;
    fetch_hooked(h, "GET", "/seq?k=c503&s=503,200", &k, &g);
    assert_int_equal(g.status, 503);
    assert_int_equal(g.attempts, 1);
    assert_false(g.transient);
    assert_int_equal(k.classified, 1);
    /* AB_HTTP_DEFAULT keeps the built-in rules: a 503 is retried. */
    memset(&k, 0, sizeof(k));
    fetch_hooked(h, "GET", "/seq?k=c503b&s=503,200", &k, &g);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.attempts, 2);
    /* AB_HTTP_RETRY until the retries are used up: transient. */
    memset(&k, 0, sizeof(k));
    k.retry_status = 418;
    fetch_hooked(h, "GET", "/seq?k=c418&s=418", &k, &g);
    assert_int_equal(g.status, 418);
    assert_true(g.transient);
    assert_int_equal(g.attempts, 4); /* max_retries 3 */
    assert_int_equal(k.classified, 4);
    /* AB_HTTP_REFRESH_AUTH without an auth provider is final. */
    memset(&k, 0, sizeof(k));
    k.refresh_status = 401;
    fetch_hooked(h, "GET", "/seq?k=c401&s=401,200", &k, &g);
    assert_int_equal(g.status, 401);
    assert_int_equal(g.attempts, 1);
    assert_false(g.transient);
    ab_http_free(h);
}

static void test_http_header_hook_every_attempt(void **state)
{
    struct ab_http *h = client_default();
    struct hooks k;
    struct got g;

    (void)state;
    memset(&k, 0, sizeof(k));
    fetch_hooked(h, "GET", "/seq?k=hdr&s=200&replayed=1", &k, &g);
    assert_int_equal(g.status, 200);
    assert_int_equal(k.starts, 1);
    assert_true(k.fields >= 2);
    assert_true(k.marker);
    /* One start per attempt; the fields of the last answer are what is left. */
    memset(&k, 0, sizeof(k));
    fetch_hooked(h, "GET", "/seq?k=hdr2&s=503,200", &k, &g);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.attempts, 2);
    assert_int_equal(k.starts, 2);
    assert_false(k.marker);
    ab_http_free(h);
}

static void test_http_reset_retried(void **state)
{
    struct ab_http *h = client_default();
    struct ab_http_req *r;
    struct got g;

    (void)state;
    r = req_new("POST", "/seq?k=rst1&s=reset,200");
    req_body(r, "{\"a\":1}", 7);
    submit(h, r, &g);
    drain(h, 30);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.attempts, 2);
    assert_string_equal(g.body, "rst1 1 200");
    ab_http_free(h);
}

static void test_http_reset_in_doubt_reported(void **state)
{
    struct ab_http *h = client_default();
    struct ab_http_stats st;
    struct ab_http_req *r;
    struct got g;

    (void)state;
    /* A first request leaves a keep-alive connection for the next to reuse. */
    fetch(h, "GET", "/seq?k=rst2warm&s=200", 0, &g);
    r = req_new("POST", "/seq?k=rst2&s=reset,200");
    req_body(r, "{\"a\":1}", 7);
    ab_http_req_flags(r, AB_HTTP_NO_RETRY_IN_DOUBT);
    submit(h, r, &g);
    drain(h, 30);
    assert_int_equal(g.status, 0);
    assert_true(g.in_doubt);
    assert_true(g.transient);
    assert_int_equal(g.attempts, 1);
    assert_true(strlen(g.error) > 0);
    assert_string_equal(g.body, "");
    ab_http_get_stats(h, &st);
    assert_int_equal(st.transport_errors, 1);
    /* The server saw it exactly once: neither we nor curl re-sent it. */
    assert_int_equal(server_number(h, "/count?k=rst2"), 1);
    ab_http_free(h);
}

static void test_http_refused_not_in_doubt(void **state)
{
    struct ab_http *h = client_default();
    struct ab_http_req *r;
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    char url[128];
    struct ab_error err;
    struct got g;
    int fd;

    (void)state;
    ab_error_init(&err);
    /* A port that was just free: nothing listens there. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    (void)close(fd);
    (void)snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", ntohs(sa.sin_port));
    r = ab_http_req_new("POST", url, &err);
    assert_non_null(r);
    ab_http_req_flags(r, AB_HTTP_NO_RETRY_IN_DOUBT);
    submit(h, r, &g);
    drain(h, 30);
    /* Never sent, so retried despite NO_RETRY_IN_DOUBT (max_retries 3). */
    assert_int_equal(g.status, 0);
    assert_false(g.in_doubt);
    assert_true(g.transient);
    assert_int_equal(g.attempts, 4);
    ab_http_free(h);
}

/* The SHA-256 of data in 64 hex digits, at out (65 bytes). */
static void hex_sha256(const unsigned char *data, size_t n, char *out)
{
    unsigned char md[32];

    assert_non_null(SHA256(data, n, md));
    for (size_t i = 0; i < sizeof(md); i++) {
        (void)snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
}

static void test_http_gzip_body_arrives_decompressed(void **state)
{
    struct ab_http *h = client_default();
    struct ab_http_stats st;
    struct ab_http_req *r;
    size_t n = 3000;
    unsigned char *data = malloc(n);
    char want[96];
    struct got g;

    (void)state;
    assert_non_null(data);
    for (size_t i = 0; i < n; i++) {
        data[i] = (unsigned char)((i % 7 == 0) ? (i / 7) % 256 : 'a' + i % 13);
    }
    r = req_new("POST", "/echo");
    req_body(r, data, n);
    ab_http_req_flags(r, AB_HTTP_GZIP);
    submit(h, r, &g);
    drain(h, 30);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.body_len, n);
    assert_memory_equal(g.body, data, n);
    ab_http_get_stats(h, &st);
    assert_true(st.bytes_sent > 0 && st.bytes_sent < n / 2);

    /* What arrived was gzip, smaller than the original. */
    r = req_new("PUT", "/echo?info=1");
    req_body(r, data, n);
    ab_http_req_flags(r, AB_HTTP_GZIP);
    submit(h, r, &g);
    drain(h, 30);
    assert_int_equal(g.status, 200);
    assert_true(strncmp(g.body, "gzip ", 5) == 0);
    assert_true(strtoul(g.body + 5, NULL, 10) < n / 2);

    /* Without the flag the body goes as is. */
    r = req_new("PATCH", "/echo?info=1");
    req_body(r, data, n);
    submit(h, r, &g);
    drain(h, 30);
    (void)snprintf(want, sizeof(want), "none %zu", n);
    assert_string_equal(g.body, want);
    free(data);

    /* Incompressible bytes (stored blocks, larger than the input) over
     * several 64 KiB blocks arrive intact too. */
    n = 300000;
    data = malloc(n);
    assert_non_null(data);
    for (size_t i = 0, x = 12345; i < n; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        data[i] = (unsigned char)(x >> 56);
    }
    r = req_new("POST", "/echo?digest=1");
    req_body(r, data, n);
    ab_http_req_flags(r, AB_HTTP_GZIP);
    submit(h, r, &g);
    drain(h, 30);
    assert_int_equal(g.status, 200);
    (void)snprintf(want, sizeof(want), "%zu ", n);
    hex_sha256(data, n, want + strlen(want));
    assert_string_equal(g.body, want);
    free(data);
    ab_http_free(h);
}

static double run_concurrent(int max_in_flight, const char *key)
{
    struct ab_http_opts o;
    struct ab_http *h;
    struct got g[8];
    char path[128];
    int64_t start;
    double secs;

    opts_for_test(&o);
    o.max_in_flight = max_in_flight;
    h = client_new(&o);
    start = ab_now_us();
    for (int i = 0; i < 8; i++) {
        (void)snprintf(path, sizeof(path), "/seq?k=%s%d&s=200&delay=200", key, i);
        submit(h, req_new("GET", path), &g[i]);
    }
    assert_int_equal(ab_http_pending(h), 8);
    drain(h, 30);
    secs = seconds_since(start);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].status, 200);
    }
    ab_http_free(h);
    return secs;
}

static void test_http_concurrency(void **state)
{
    double parallel;
    double serial;

    (void)state;
    parallel = run_concurrent(8, "par");
    serial = run_concurrent(1, "ser");
    if (!(parallel < 0.9) || !(serial >= 1.6)) {
        fail_msg("8 x 200 ms: %.3f s with 8 in flight, %.3f s with 1", parallel, serial);
    }
}

static void test_http_active_bounded_by_max_in_flight(void **state)
{
    struct ab_http_opts o;
    struct ab_http *h;
    struct got g[6];
    char path[128];
    size_t most = 0;
    struct ab_error err;

    (void)state;
    ab_error_init(&err);
    opts_for_test(&o);
    o.max_in_flight = 2;
    h = client_new(&o);
    for (int i = 0; i < 6; i++) {
        (void)snprintf(path, sizeof(path), "/seq?k=bound%d&s=200&delay=50", i);
        submit(h, req_new("GET", path), &g[i]);
    }
    while (ab_http_pending(h) > 0) {
        assert_int_equal(ab_http_wait(h, NULL, 0, 20, &err), AB_OK);
        most = ab_http_active(h) > most ? ab_http_active(h) : most;
    }
    assert_int_equal(most, 2);
    ab_http_free(h);
}

static void test_http_keepalive_reuse(void **state)
{
    struct ab_http *h = client_default();
    long before;
    long after;
    struct got g;

    (void)state;
    before = server_number(h, "/conns");
    for (int i = 0; i < 20; i++) {
        fetch(h, i % 2 ? "POST" : "GET", "/seq?k=ka&s=200", 0, &g);
        assert_int_equal(g.status, 200);
    }
    after = server_number(h, "/conns");
    /* The connection of the first /conns plus at most one more. */
    assert_true(after - before <= 1);

    /* The counter does see new connections: NO_RETRY_IN_DOUBT forces fresh ones. */
    before = server_number(h, "/conns");
    for (int i = 0; i < 5; i++) {
        fetch(h, "POST", "/seq?k=ka2&s=200", AB_HTTP_NO_RETRY_IN_DOUBT, &g);
        assert_int_equal(g.status, 200);
    }
    after = server_number(h, "/conns");
    assert_true(after - before >= 5);
    ab_http_free(h);
}

static void test_http_bearer_header(void **state)
{
    struct ab_http_opts o;
    struct ab_http *h;
    struct ab_http_req *r;
    struct ab_error err;
    struct got g;

    (void)state;
    ab_error_init(&err);
    opts_for_test(&o);
    o.user_agent = "ab-test/1.0";
    h = client_new(&o);
    assert_int_equal(ab_http_set_bearer(h, "tok-abc123", &err), AB_OK);
    r = req_new("POST", "/headers");
    assert_int_equal(ab_http_req_header(r, "X-Custom: yes", &err), AB_OK);
    assert_int_not_equal(ab_http_req_header(r, "X-Bad: a\r\nX-Injected: b", &err), AB_OK);
    assert_int_not_equal(ab_http_req_header(r, "no colon", &err), AB_OK);
    req_body(r, "{}", 2);
    submit(h, r, &g);
    drain(h, 30);
    assert_int_equal(g.status, 200);
    assert_non_null(strstr(g.body, "Authorization: Bearer tok-abc123\n"));
    assert_non_null(strstr(g.body, "X-Custom: yes\n"));
    assert_non_null(strstr(g.body, "User-Agent: ab-test/1.0\n"));
    assert_non_null(strstr(g.body, "Content-Type: application/octet-stream\n"));
    assert_null(strstr(g.body, "Expect"));
    assert_null(strstr(g.body, "X-Injected"));
    /* Removing the token removes the header. */
    assert_int_equal(ab_http_set_bearer(h, NULL, &err), AB_OK);
    fetch(h, "GET", "/headers", 0, &g);
    assert_null(strstr(g.body, "Authorization"));
    ab_http_free(h);
}

struct auth_ctx {
    int calls;
    int forced;
    bool refresh_works;
    const char *current;
};

static enum ab_status auth_cb(void *arg, bool force, char *token, size_t size, struct ab_error *err)
{
    struct auth_ctx *a = arg;

    (void)err;
    a->calls++;
    if (force) {
        a->forced++;
        if (a->refresh_works) {
            a->current = "new-token";
        }
    }
    (void)snprintf(token, size, "%s", a->current);
    return AB_OK;
}

/* A connector's own expiry signal: 401 with "token_expired" in the body. */
static enum ab_http_verdict expiry_classify(void *arg, const struct ab_http_resp *a)
{
    int *calls = arg;

    (*calls)++;
    if (a->status == 401 && strstr(a->body, "token_expired")) {
        return AB_HTTP_REFRESH_AUTH;
    }
    return AB_HTTP_DEFAULT;
}

static void fetch_expiry(struct ab_http *h, const char *path, int *calls, struct got *g)
{
    struct ab_http_req *r = req_new("GET", path);

    ab_http_req_classify(r, expiry_classify, calls);
    submit(h, r, g);
    drain(h, 30);
    assert_int_equal(g->calls, 1);
}

static void test_http_token_expired_refreshes(void **state)
{
    struct ab_http_opts o;
    struct ab_http *h;
    struct auth_ctx a = {0, 0, true, "old-token"};
    struct got g;
    int calls = 0;

    (void)state;
    opts_for_test(&o);
    o.max_retries = 0; /* the refresh retry is not counted */
    h = client_new(&o);
    ab_http_set_auth(h, auth_cb, &a);
    /* Without a classifier saying so, a 401 is final and no token is forced. */
    fetch(h, "GET", "/auth?good=new-token", 0, &g);
    assert_int_equal(g.status, 401);
    assert_int_equal(g.attempts, 1);
    assert_int_equal(a.forced, 0);
    a.calls = 0;
    fetch_expiry(h, "/auth?good=new-token", &calls, &g);
    assert_int_equal(calls, 2);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.attempts, 2);
    assert_int_equal(a.forced, 1);
    assert_int_equal(a.calls, 2);
    /* Later requests use the new token with force=false. */
    fetch_expiry(h, "/auth?good=new-token", &calls, &g);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.attempts, 1);
    assert_int_equal(a.forced, 1);

    /* A refresh that does not help: one extra attempt only, then the 401. */
    a.current = "old-token";
    a.refresh_works = false;
    a.forced = 0;
    fetch_expiry(h, "/auth?good=new-token", &calls, &g);
    assert_int_equal(g.status, 401);
    assert_false(g.transient);
    assert_int_equal(g.attempts, 2);
    assert_int_equal(a.forced, 1);
    assert_non_null(strstr(g.body, "token_expired"));
    ab_http_free(h);
}

static enum ab_status auth_fail_cb(void *arg, bool force, char *token, size_t size,
                                   struct ab_error *err)
{
    int *calls = arg;

    (void)force;
    if (size > 0) {
        token[0] = '\0';
    }
    (*calls)++;
    return ab_error_set(err, AB_ERR_TRANSIENT, "token endpoint unavailable");
}

static void test_http_auth_failure_reported(void **state)
{
    struct ab_http *h = client_default();
    struct got g;
    int calls = 0;

    (void)state;
    ab_http_set_auth(h, auth_fail_cb, &calls);
    fetch(h, "GET", "/seq?k=authfail&s=200", 0, &g);
    assert_int_equal(g.status, 0);
    assert_true(g.transient);
    assert_false(g.in_doubt);
    assert_int_equal(g.attempts, 4);
    assert_int_equal(calls, 4);
    assert_non_null(strstr(g.error, "token endpoint unavailable"));
    ab_http_set_auth(h, NULL, NULL);
    assert_int_equal(server_number(h, "/count?k=authfail"), 0);
    ab_http_free(h);
}

static void test_http_retries_exhausted(void **state)
{
    struct ab_http_opts o;
    struct ab_http *h;
    struct ab_http_stats st;
    struct got g;

    (void)state;
    opts_for_test(&o);
    o.max_retries = 2;
    h = client_new(&o);
    fetch(h, "PUT", "/seq?k=exh&s=503", 0, &g);
    assert_int_equal(g.status, 503);
    assert_true(g.transient);
    assert_false(g.in_doubt);
    assert_int_equal(g.attempts, 3);
    assert_string_equal(g.body, "exh 2 503");
    ab_http_get_stats(h, &st);
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.attempts, 3);
    assert_int_equal(st.retries, 2);
    /* NO_RETRY: one attempt, reported as transient. */
    fetch(h, "GET", "/seq?k=exh1&s=500", AB_HTTP_NO_RETRY, &g);
    assert_int_equal(g.status, 500);
    assert_true(g.transient);
    assert_int_equal(g.attempts, 1);
    ab_http_free(h);
}

static void test_http_response_too_large(void **state)
{
    struct ab_http_opts o;
    struct ab_http *h;
    struct got g;

    (void)state;
    opts_for_test(&o);
    o.max_response_bytes = 1000;
    h = client_new(&o);
    fetch(h, "GET", "/big?n=1000", 0, &g);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.body_len, 1000);
    fetch(h, "GET", "/big?n=5000", 0, &g);
    assert_int_equal(g.status, 0);
    assert_false(g.transient);
    assert_int_equal(g.attempts, 1);
    assert_non_null(strstr(g.error, "too large"));
    ab_http_free(h);
}

static void test_http_extra_fd_ready(void **state)
{
    struct ab_http *h = client_default();
    struct ab_http_req *r;
    struct ab_error err;
    struct pollfd fds[3];
    int p1[2];
    int p2[2];
    int64_t start;
    struct got g;

    (void)state;
    ab_error_init(&err);
    assert_int_equal(pipe(p1), 0);
    assert_int_equal(pipe(p2), 0);
    fds[0] = (struct pollfd){.fd = p1[0], .events = POLLIN, .revents = 77};
    fds[1] = (struct pollfd){.fd = -1, .events = POLLIN, .revents = 77}; /* ignored */
    fds[2] = (struct pollfd){.fd = p2[0], .events = POLLIN, .revents = 77};
    /* Nothing to read: the full timeout passes, revents cleared. */
    start = ab_now_us();
    assert_int_equal(ab_http_wait(h, fds, 3, 150, &err), AB_OK);
    assert_int_equal(fds[0].revents, 0);
    assert_int_equal(fds[1].revents, 0);
    assert_int_equal(fds[2].revents, 0);
    assert_true(seconds_since(start) >= 0.14);
    /* Readable: returns at once, while a slow request is still pending. */
    r = req_new("GET", "/seq?k=fd&s=200&delay=1500");
    submit(h, r, &g);
    assert_int_equal(write(p1[1], "x", 1), 1);
    start = ab_now_us();
    assert_int_equal(ab_http_wait(h, fds, 3, 5000, &err), AB_OK);
    assert_true(fds[0].revents & POLLIN);
    assert_int_equal(fds[2].revents, 0);
    assert_true(seconds_since(start) < 1.0);
    assert_int_equal(ab_http_pending(h), 1);
    assert_int_equal(g.calls, 0);
    /* Another fd alone, the first no longer polled. */
    fds[0].fd = -1;
    assert_int_equal(write(p2[1], "y", 1), 1);
    assert_int_equal(ab_http_wait(h, fds, 3, 5000, &err), AB_OK);
    assert_int_equal(fds[0].revents, 0);
    assert_true(fds[2].revents & POLLIN);
    drain(h, 30);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 200);
    /* A closed writer with nothing left to read is reported (POLLHUP), at
     * once, with nothing pending. */
    {
        char c;

        assert_int_equal(read(p2[0], &c, 1), 1);
    }
    (void)close(p2[1]);
    start = ab_now_us();
    assert_int_equal(ab_http_wait(h, &fds[2], 1, 5000, &err), AB_OK);
    assert_true(fds[2].revents & POLLHUP);
    assert_true(seconds_since(start) < 1.0);
    (void)close(p1[0]);
    (void)close(p1[1]);
    (void)close(p2[0]);
    ab_http_free(h);
}

static void test_http_wait_many_fds(void **state)
{
    struct ab_http *h = client_default();
    struct ab_error err;
    struct pollfd fds[20];
    int pipes[20][2];

    (void)state;
    ab_error_init(&err);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(pipe(pipes[i]), 0);
        fds[i] = (struct pollfd){.fd = pipes[i][0], .events = POLLIN};
    }
    /* More descriptors than fit on the stack; only the last is ready. */
    assert_int_equal(write(pipes[19][1], "z", 1), 1);
    assert_int_equal(ab_http_wait(h, fds, 20, 5000, &err), AB_OK);
    for (int i = 0; i < 19; i++) {
        assert_int_equal(fds[i].revents, 0);
    }
    assert_true(fds[19].revents & POLLIN);
    /* Nothing pending and no descriptor: returns at once. */
    assert_int_equal(ab_http_wait(h, NULL, 0, -1, &err), AB_OK);
    for (int i = 0; i < 20; i++) {
        (void)close(pipes[i][0]);
        (void)close(pipes[i][1]);
    }
    ab_http_free(h);
}

static void test_fake_clock(void **state)
{
    struct ab_ratelimit rl;

    (void)state;
    assert_false(ab_clock_is_fake());
    ab_clock_fake_set(1000, 1700000000000LL);
    assert_true(ab_clock_is_fake());
    assert_int_equal(ab_now_us(), 1000);
    assert_int_equal(ab_wall_ms(), 1700000000000LL);
    ab_ratelimit_init(&rl, 2, 1, ab_now_us());
    assert_int_equal(ab_ratelimit_take(&rl, ab_now_us()), 0);
    assert_int_equal(ab_ratelimit_take(&rl, ab_now_us()), 500);
    ab_clock_fake_advance(500000);
    assert_int_equal(ab_now_us(), 501000);
    assert_int_equal(ab_wall_ms(), 1700000000500LL);
    assert_int_equal(ab_ratelimit_take(&rl, ab_now_us()), 0);
    ab_clock_fake_off();
    assert_false(ab_clock_is_fake());
    assert_true(ab_wall_ms() > 1700000000000LL);
}

static void test_http_run_blocking(void **state)
{
    struct ab_http *h = client_default();
    struct ab_error err;
    struct ab_buf body;
    struct ab_http_req *r;
    int status = -1;

    (void)state;
    ab_error_init(&err);
    ab_buf_init(&body, 1 << 20);
    r = req_new("GET", "/seq?k=run&s=201");
    assert_int_equal(ab_http_run(h, r, &status, &body, &err), AB_OK);
    assert_int_equal(status, 201);
    assert_string_equal(body.data, "run 0 201");
    /* A final error status is an answer, not a failure. */
    r = req_new("GET", "/seq?k=run2&s=422");
    assert_int_equal(ab_http_run(h, r, &status, &body, &err), AB_OK);
    assert_int_equal(status, 422);
    /* No answer: a transient error saying the outcome is unknown. */
    r = req_new("POST", "/seq?k=run3&s=reset");
    ab_http_req_flags(r, AB_HTTP_NO_RETRY_IN_DOUBT);
    assert_int_equal(ab_http_run(h, r, &status, NULL, &err), AB_ERR_TRANSIENT);
    assert_int_equal(status, 0);
    assert_non_null(strstr(err.message, "outcome unknown"));
    ab_buf_release(&body);
    ab_http_free(h);
}

static void test_http_rate_limited_client(void **state)
{
    struct ab_http_opts o;
    struct ab_http *h;
    struct got g[6];
    char path[64];
    int64_t start;

    (void)state;
    opts_for_test(&o);
    o.max_in_flight = 8;
    o.requests_per_second = 5;
    o.burst = 1;
    h = client_new(&o);
    start = ab_now_us();
    for (int i = 0; i < 6; i++) {
        (void)snprintf(path, sizeof(path), "/seq?k=rl%d&s=200", i);
        submit(h, req_new("GET", path), &g[i]);
    }
    drain(h, 30);
    /* One at once, then five at 200 ms intervals. */
    assert_true(seconds_since(start) >= 0.95);
    assert_true(seconds_since(start) < 3.0);
    ab_http_free(h);
}

static void test_http_free_aborts_without_callbacks(void **state)
{
    struct ab_http_opts o;
    struct ab_http *h;
    struct ab_error err;
    struct got g[4];
    char path[64];

    (void)state;
    ab_error_init(&err);
    opts_for_test(&o);
    o.max_in_flight = 2;
    h = client_new(&o);
    for (int i = 0; i < 3; i++) {
        (void)snprintf(path, sizeof(path), "/seq?k=abort%d&s=200&delay=1000", i);
        submit(h, req_new("POST", path), &g[i]);
    }
    submit(h, req_new("GET", "/seq?k=abort3&s=503&delay=1000"), &g[3]);
    assert_int_equal(ab_http_wait(h, NULL, 0, 100, &err), AB_OK);
    assert_int_equal(ab_http_pending(h), 4);
    assert_int_equal(ab_http_active(h), 2);
    ab_http_free(h);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(g[i].calls, 0);
    }
}

/* ---- the OAuth 2.0 token provider (oauth2.h) against /token ---- */

/* A driver holding only an emitter (its secrets mask), writing to a file. */
struct mask_driver {
    struct ab_driver d;
    FILE *out;
};

static void mask_driver_init(struct mask_driver *m)
{
    struct ab_error err;

    ab_error_init(&err);
    memset(m, 0, sizeof(*m));
    m->out = tmpfile();
    assert_non_null(m->out);
    m->d.em = ab_emitter_new(m->out, NULL, &err);
    assert_non_null(m->d.em);
}

static void mask_driver_release(struct mask_driver *m)
{
    ab_emitter_free(m->d.em);
    assert_int_equal(fclose(m->out), 0);
}

/* Whether the driver's mask hides text. */
static bool masked(const struct mask_driver *m, const char *text)
{
    char out[512];

    ab_emitter_mask(m->d.em, text, out, sizeof(out));
    return strstr(out, text) == NULL;
}

static struct ab_oauth2 *oauth2_for_test(struct mask_driver *m, const char *path,
                                         const char *secret)
{
    struct ab_oauth2_opts o;
    struct ab_http_opts ho;
    struct ab_oauth2 *a;
    struct ab_error err;
    char url[256];

    ab_error_init(&err);
    url_for(url, sizeof(url), path);
    memset(&o, 0, sizeof(o));
    o.d = &m->d;
    o.token_url = url;
    o.client_id = "client-1";
    o.client_secret = secret;
    o.grant = AB_OAUTH2_CLIENT_CREDENTIALS;
    o.client_auth = AB_OAUTH2_CLIENT_BODY;
    opts_for_test(&ho);
    a = ab_oauth2_new(&o, &ho, &err);
    assert_non_null(a);
    return a;
}

static void test_oauth2_client_credentials(void **state)
{
    static const char secret[] = "se cret&=+/x";
    static const char encoded[] = "se+cret%26%3D%2B%2Fx";
    struct mask_driver m;
    struct ab_oauth2 *a;
    struct ab_error err;
    struct ab_http *h;
    char token[256];
    struct got g;

    (void)state;
    ab_error_init(&err);
    mask_driver_init(&m);
    assert_int_equal(ab_driver_add_secret(&m.d, secret, &err), AB_OK);
    a = oauth2_for_test(&m, "/token?k=cc", secret);
    assert_int_equal(ab_oauth2_fetch(a, &err), AB_OK);
    assert_int_equal(ab_oauth2_provide(a, false, token, sizeof(token), &err), AB_OK);
    assert_string_equal(token, "tok-cc-0-0123456789abcdef");
    assert_int_equal(ab_oauth2_fetches(a), 1); /* cached */
    /* the grant and the client's credentials in the form body */
    h = client_default();
    fetch(h, "GET", "/last?k=cc", 0, &g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "grant_type=client_credentials&client_id=client-1&client_secret=se+"
                                "cret%26%3D%2B%2Fx");
    ab_http_free(h);
    /* the token and the secret as the server may quote it are masked */
    assert_true(masked(&m, token));
    assert_true(masked(&m, encoded));
    assert_true(masked(&m, secret));
    assert_false(masked(&m, "client-1"));
    ab_oauth2_free(a);
    mask_driver_release(&m);
}

static void test_oauth2_replaced_tokens_leave_the_mask(void **state)
{
    struct mask_driver m;
    struct ab_oauth2 *a;
    struct ab_error err;
    char token[256];
    int i;

    (void)state;
    ab_error_init(&err);
    mask_driver_init(&m);
    assert_int_equal(ab_driver_add_secret(&m.d, "client-secret-1", &err), AB_OK);
    a = oauth2_for_test(&m, "/token?k=renew", "client-secret-1");
    /* more renewals than the mask holds patterns (1024) */
    for (i = 0; i < 1100; i++) {
        assert_int_equal(ab_oauth2_provide(a, true, token, sizeof(token), &err), AB_OK);
    }
    assert_false(m.d.failed);
    assert_string_equal(token, "tok-renew-1099-0123456789abcdef");
    /* the current token and the one it replaced are masked (answers to
     * requests that carried it may still come), older ones are not */
    assert_true(masked(&m, "tok-renew-1099-0123456789abcdef"));
    assert_true(masked(&m, "tok-renew-1098-0123456789abcdef"));
    assert_false(masked(&m, "tok-renew-1097-0123456789abcdef"));
    assert_false(masked(&m, "tok-renew-0-0123456789abcdef"));
    /* what the provider was given stays */
    assert_true(masked(&m, "client-secret-1"));
    ab_oauth2_free(a);
    mask_driver_release(&m);
}

static void test_oauth2_huge_lifetime_is_a_day(void **state)
{
    struct mask_driver m;
    struct ab_oauth2 *a;
    struct ab_error err;
    char token[256];

    (void)state;
    ab_error_init(&err);
    mask_driver_init(&m);
    ab_clock_fake_set(1000000, 1700000000000);
    a = oauth2_for_test(&m, "/token?k=forever&exp=1e300", "client-secret-1");
    /* no undefined conversion (the sanitizer build aborts on one), no
     * fetch before every request: renewed at 90 % of one day */
    assert_int_equal(ab_oauth2_provide(a, false, token, sizeof(token), &err), AB_OK);
    ab_clock_fake_advance((int64_t)(86400 * 0.9 - 10) * 1000000);
    assert_int_equal(ab_oauth2_provide(a, false, token, sizeof(token), &err), AB_OK);
    assert_int_equal(ab_oauth2_fetches(a), 1);
    ab_clock_fake_advance((int64_t)20 * 1000000);
    assert_int_equal(ab_oauth2_provide(a, false, token, sizeof(token), &err), AB_OK);
    assert_int_equal(ab_oauth2_fetches(a), 2);
    assert_string_equal(token, "tok-forever-1-0123456789abcdef");
    ab_clock_fake_off();
    ab_oauth2_free(a);
    mask_driver_release(&m);
}

static void test_oauth2_unusable_answers(void **state)
{
    struct mask_driver m;
    struct ab_oauth2 *a;
    struct ab_error err;

    (void)state;
    ab_error_init(&err);
    mask_driver_init(&m);
    a = oauth2_for_test(&m, "/token?k=none&none=1", "client-secret-1");
    assert_int_equal(ab_oauth2_fetch(a, &err), AB_ERR_PROTOCOL);
    assert_non_null(strstr(err.message, "without a usable access_token"));
    ab_oauth2_free(a);
    a = oauth2_for_test(&m, "/token?k=mac&type=mac", "client-secret-1");
    assert_int_equal(ab_oauth2_fetch(a, &err), AB_ERR_PROTOCOL);
    assert_non_null(strstr(err.message, "Bearer"));
    ab_oauth2_free(a);
    a = oauth2_for_test(&m, "/big?n=10", "client-secret-1");
    assert_int_equal(ab_oauth2_fetch(a, &err), AB_ERR_PROTOCOL);
    assert_non_null(strstr(err.message, "its body is unreadable"));
    ab_oauth2_free(a);
    mask_driver_release(&m);
}

static void test_http_logs_never_show_secrets(void **state)
{
    struct ab_http_opts o;
    struct ab_http *h;
    struct ab_emitter *em;
    struct ab_http_req *r;
    struct ab_error err;
    char *text = NULL;
    size_t len = 0;
    FILE *out;
    struct got g;

    (void)state;
    ab_error_init(&err);
    out = open_memstream(&text, &len);
    assert_non_null(out);
    em = ab_emitter_new(out, NULL, &err);
    assert_non_null(em);
    ab_emitter_set_level(em, AB_LOG_DEBUG);
    opts_for_test(&o);
    o.log = em;
    o.max_retries = 5;
    h = client_new(&o);
    assert_int_equal(ab_http_set_bearer(h, "Sup3rS3cretBearerValue", &err), AB_OK);
    r = req_new("POST", "/seq?k=logs&s=503,200&api_key=QuerySecretValue");
    req_body(r, "PayloadSecretValue", 18);
    submit(h, r, &g);
    drain(h, 30);
    assert_int_equal(g.status, 200);
    r = req_new("POST", "/seq?k=logs2&s=503,200");
    ab_http_req_label(r, "POST customers:batchUpsert #12");
    submit(h, r, &g);
    drain(h, 30);
    ab_http_free(h);
    ab_emitter_free(em);
    assert_int_equal(fclose(out), 0);
    assert_non_null(text);
    assert_non_null(strstr(text, "retrying 'POST 127.0.0.1:"));
    assert_non_null(strstr(text, "after HTTP 503 (attempt 2 of 6)"));
    assert_non_null(strstr(text, "retrying 'POST customers:batchUpsert #12' in "));
    assert_non_null(strstr(text, "\"level\":\"WARN\""));
    assert_non_null(strstr(text, "\"level\":\"DEBUG\""));
    assert_null(strstr(text, "Sup3rS3cretBearerValue"));
    assert_null(strstr(text, "QuerySecretValue"));
    assert_null(strstr(text, "PayloadSecretValue"));
    free(text);
}

static void test_http_bad_requests_rejected(void **state)
{
    struct ab_http *h = client_default();
    struct ab_error err;
    struct got g;

    (void)state;
    ab_error_init(&err);
    assert_null(ab_http_req_new("", "http://x/", &err));
    assert_null(ab_http_req_new("get", "http://x/", &err));
    assert_null(ab_http_req_new("GET", "", &err));
    assert_int_not_equal(ab_http_submit(h, NULL, on_done, &g, &err), AB_OK);
    /* An unsupported scheme is final, never retried. */
    submit(h, ab_http_req_new("GET", "ftp://127.0.0.1/x", &err), &g);
    drain(h, 30);
    assert_int_equal(g.status, 0);
    assert_false(g.transient);
    assert_false(g.in_doubt);
    assert_int_equal(g.attempts, 1);
    ab_http_free(h);
    ab_http_free(NULL);
    ab_http_req_free(NULL);
}

/* ---- the client attached to an event loop ---- */

/* Turns l until *calls reaches want; fails the test after limit_s. Returns
 * the number of turns (a loop that sleeps takes few, one that spins many). */
static int turn_until(struct ab_loop *l, const int *calls, int want, double limit_s)
{
    int64_t start = ab_now_us();
    int turns = 0;

    while (*calls < want) {
        struct ab_error err;

        ab_error_init(&err);
        assert_int_equal(ab_loop_turn(l, -1, &err), AB_OK);
        turns++;
        assert_true(seconds_since(start) < limit_s);
    }
    return turns;
}

static struct ab_loop *loop_new(struct ab_http *h)
{
    struct ab_error err;
    struct ab_loop *l;

    ab_error_init(&err);
    l = ab_loop_new(&err);
    assert_non_null(l);
    ab_loop_set_http(l, h);
    assert_ptr_equal(ab_loop_http(l), h);
    return l;
}

/* A blocking request from inside a loop callback, on the attached client. */
struct run_in_timer {
    struct ab_http *h;
    int calls;
    int status;
};

static enum ab_status on_run_timer(void *arg, uint64_t id, struct ab_error *err)
{
    struct run_in_timer *t = arg;

    (void)id;
    t->calls++;
    return ab_http_run(t->h, req_new("GET", "/seq?k=lrun&s=202"), &t->status, NULL, err);
}

static void test_http_loop_socket_readiness_drives_transfers(void **state)
{
    struct ab_http *h = client_default();
    struct ab_loop *l = loop_new(h);
    struct ab_error err;
    struct run_in_timer t = {h, 0, 0};
    struct got g[3];
    int turns;

    (void)state;
    ab_error_init(&err);
    /* The answers come 300 ms late: only the sockets' readiness (curl's
     * timeouts are 5 and 10 s) can end the waits, in few turns. */
    submit(h, req_new("GET", "/seq?k=lsock&s=200&delay=300"), &g[0]);
    turns = turn_until(l, &g[0].calls, 1, 5);
    assert_int_equal(g[0].status, 200);
    assert_string_equal(g[0].body, "lsock 0 200");
    assert_true(g[0].elapsed_s >= 0.3);
    assert_true(turns < 30);
    /* Several at once, each completing in its own callback. */
    submit(h, req_new("POST", "/seq?k=lsock1&s=201&delay=100"), &g[1]);
    submit(h, req_new("GET", "/seq?k=lsock2&s=200&delay=200"), &g[2]);
    (void)turn_until(l, &g[2].calls, 1, 5);
    (void)turn_until(l, &g[1].calls, 1, 5);
    assert_int_equal(g[1].status, 201);
    assert_int_equal(g[2].status, 200);
    assert_int_equal(ab_http_pending(h), 0);
    /* ab_http_run() from a loop callback drives the attached client itself. */
    assert_int_not_equal(ab_loop_add_timer(l, 0, 0, on_run_timer, &t, &err), 0);
    (void)turn_until(l, &t.calls, 1, 5);
    assert_int_equal(t.status, 202);
    ab_http_free(h);
    assert_null(ab_loop_http(l));
    ab_loop_free(l);
}

static void test_http_loop_timer_alone_completes_a_transfer(void **state)
{
    struct ab_http_opts o;
    struct ab_http *h;
    struct ab_loop *l;
    struct got g;
    int turns;

    (void)state;
    opts_for_test(&o);
    o.request_timeout_ms = 300;
    o.max_retries = 0;
    h = client_new(&o);
    l = loop_new(h);
    /* The server answers after 3 s: curl's timeout, a loop timer, ends the
     * attempt while its socket stays silent. */
    submit(h, req_new("GET", "/seq?k=ltimer&s=200&delay=3000"), &g);
    turns = turn_until(l, &g.calls, 1, 2.5);
    assert_int_equal(g.status, 0);
    assert_true(g.transient);
    assert_true(g.elapsed_s >= 0.3 && g.elapsed_s < 2.5);
    assert_non_null(strstr(g.error, "imed out"));
    assert_true(turns < 30);
    ab_loop_free(l); /* freed first: it detaches the client */
    ab_http_free(h);
}

struct hup_seen {
    int calls;
    unsigned ready;
    size_t pending;
    struct ab_http *h;
    struct ab_loop *l;
};

static enum ab_status on_hup(void *arg, int fd, unsigned ready, struct ab_error *err)
{
    struct hup_seen *s = arg;

    (void)err;
    s->calls++;
    s->ready = ready;
    s->pending = ab_http_pending(s->h);
    ab_loop_del_fd(s->l, fd);
    return AB_OK;
}

static void test_http_loop_fd_hangup_reported_while_transfers_run(void **state)
{
    struct ab_http *h = client_default();
    struct ab_loop *l = loop_new(h);
    struct hup_seen s = {0, 0, 0, h, l};
    struct ab_error err;
    struct got g;
    int p[2];
    int64_t start;

    (void)state;
    ab_error_init(&err);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(ab_loop_add_fd(l, p[0], AB_LOOP_READ, on_hup, &s, &err), AB_OK);
    submit(h, req_new("GET", "/seq?k=lhup&s=200&delay=1500"), &g);
    /* The request goes out; then the writer closes. */
    assert_int_equal(ab_loop_turn(l, 100, &err), AB_OK);
    (void)close(p[1]);
    start = ab_now_us();
    (void)turn_until(l, &s.calls, 1, 1.0);
    assert_true(seconds_since(start) < 1.0);
    assert_true(s.ready & AB_LOOP_READ);
    assert_true(s.ready & AB_LOOP_ERROR);
    assert_int_equal(s.pending, 1);
    assert_int_equal(g.calls, 0);
    (void)turn_until(l, &g.calls, 1, 10);
    assert_int_equal(g.status, 200);
    (void)close(p[0]);
    ab_http_free(h);
    ab_loop_free(l);
}

static void test_http_loop_retries_and_rate_limit_wake_on_time(void **state)
{
    struct ab_http_opts o;
    struct ab_http *h;
    struct ab_loop *l;
    struct got g[6];
    char path[64];
    int64_t start;
    int turns;

    (void)state;
    opts_for_test(&o);
    h = client_new(&o);
    l = loop_new(h);
    /* Retry-After: 1 s, waited on a loop timer (no spinning). */
    submit(h, req_new("GET", "/seq?k=lra&s=429,200&ra=1"), &g[0]);
    turns = turn_until(l, &g[0].calls, 1, 10);
    assert_int_equal(g[0].status, 200);
    assert_int_equal(g[0].attempts, 2);
    assert_true(g[0].elapsed_s >= 1.0 && g[0].elapsed_s < 2.5);
    assert_true(turns < 30);
    /* Backoff after a 503 (10 to 50 ms). */
    submit(h, req_new("GET", "/seq?k=lbo&s=503,503,200"), &g[1]);
    (void)turn_until(l, &g[1].calls, 1, 10);
    assert_int_equal(g[1].status, 200);
    assert_int_equal(g[1].attempts, 3);
    ab_http_free(h);

    /* The rate limiter: one at once, then five at 200 ms intervals. */
    o.max_in_flight = 8;
    o.requests_per_second = 5;
    o.burst = 1;
    h = client_new(&o);
    ab_loop_set_http(l, h);
    start = ab_now_us();
    for (int i = 0; i < 6; i++) {
        (void)snprintf(path, sizeof(path), "/seq?k=lrl%d&s=200", i);
        submit(h, req_new("GET", path), &g[i]);
    }
    turns = turn_until(l, &g[5].calls, 1, 10);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(g[i].calls, 1);
    }
    assert_true(seconds_since(start) >= 0.95 && seconds_since(start) < 3.0);
    assert_true(turns < 60);
    ab_loop_set_http(l, NULL);
    ab_http_free(h);
    ab_loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_after_parse_table),
        cmocka_unit_test(test_backoff_bounds_and_growth),
        cmocka_unit_test(test_ratelimit_burst_then_rate),
        cmocka_unit_test(test_http_200_with_body),
        cmocka_unit_test(test_http_503_then_200_retried),
        cmocka_unit_test(test_http_429_retry_after_honoured),
        cmocka_unit_test(test_http_delay_header_honoured_on_its_status),
        cmocka_unit_test(test_http_404_final_without_retry),
        cmocka_unit_test(test_http_classifier_retry_and_final),
        cmocka_unit_test(test_http_header_hook_every_attempt),
        cmocka_unit_test(test_http_reset_retried),
        cmocka_unit_test(test_http_reset_in_doubt_reported),
        cmocka_unit_test(test_http_refused_not_in_doubt),
        cmocka_unit_test(test_http_gzip_body_arrives_decompressed),
        cmocka_unit_test(test_http_concurrency),
        cmocka_unit_test(test_http_active_bounded_by_max_in_flight),
        cmocka_unit_test(test_http_keepalive_reuse),
        cmocka_unit_test(test_http_bearer_header),
        cmocka_unit_test(test_http_token_expired_refreshes),
        cmocka_unit_test(test_http_auth_failure_reported),
        cmocka_unit_test(test_http_retries_exhausted),
        cmocka_unit_test(test_http_response_too_large),
        cmocka_unit_test(test_http_extra_fd_ready),
        cmocka_unit_test(test_http_wait_many_fds),
        cmocka_unit_test(test_fake_clock),
        cmocka_unit_test(test_http_run_blocking),
        cmocka_unit_test(test_http_rate_limited_client),
        cmocka_unit_test(test_http_free_aborts_without_callbacks),
        cmocka_unit_test(test_http_loop_socket_readiness_drives_transfers),
        cmocka_unit_test(test_http_loop_timer_alone_completes_a_transfer),
        cmocka_unit_test(test_http_loop_fd_hangup_reported_while_transfers_run),
        cmocka_unit_test(test_http_loop_retries_and_rate_limit_wake_on_time),
        cmocka_unit_test(test_http_logs_never_show_secrets),
        cmocka_unit_test(test_http_bad_requests_rejected),
        cmocka_unit_test(test_oauth2_client_credentials),
        cmocka_unit_test(test_oauth2_replaced_tokens_leave_the_mask),
        cmocka_unit_test(test_oauth2_unusable_answers),
        cmocka_unit_test(test_oauth2_huge_lifetime_is_a_day),
    };

    return cmocka_run_group_tests(tests, server_start, server_stop);
}
