/* http.h - HTTP client over curl multi: concurrency, retries, rate limiting. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_HTTP_H
#define AB_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <poll.h>

#include "ab/buf.h"
#include "ab/emitter.h"
#include "ab/error.h"

/*
 * Single-threaded. Requests are queued with ab_http_submit() and progress
 * only inside ab_http_wait()/ab_http_run(), which also call the completion
 * callbacks. Connections are reused (keep-alive). TLS peers are verified.
 *
 * Each request is retried by this module when an attempt is transient:
 * transport failures (timeout, reset, refused, DNS), 408, 429, 500-599, plus
 * the statuses the request adds with ab_http_req_retry_status() (409 for
 * CRM360's "in use"). Backoff is capped exponential with full jitter
 * (delay = rand(0, min(cap, base * 2^(n-1))) before retry n); a Retry-After header
 * (seconds or HTTP date) overrides it when longer. Every attempt first takes
 * a token from the rate limiter. The callback sees only the final outcome.
 *
 * A transport failure after the request was sent leaves the outcome unknown
 * ("in doubt"): a retry is only safe when the request is idempotent (an
 * Idempotency-Key, a PUT); requests marked AB_HTTP_NO_RETRY_IN_DOUBT report
 * such a failure to the caller instead, with resp->in_doubt set. They also
 * go on a fresh connection: curl silently re-sends a request once when a
 * reused keep-alive connection turns out dead, which would break "at most
 * once". Failures before sending (DNS, connection refused) are never in doubt.
 *
 * Transport failures retrying cannot fix (unsupported scheme, malformed URL,
 * TLS verification) and a response over max_response_bytes are final:
 * status 0, transient false, in_doubt false, error says why.
 */
struct ab_http;
struct ab_http_req;

struct ab_http_opts {
    const char *ca_path;        /* CA bundle file or NULL for the system store */
    long connect_timeout_ms;    /* default 10000 */
    long request_timeout_ms;    /* whole attempt, default 60000 */
    int max_in_flight;          /* concurrent attempts, default 4 */
    double requests_per_second; /* token bucket rate; <= 0: unlimited */
    double burst;               /* bucket size; <= 0: max(1, rps) */
    int max_retries;            /* retries after the first attempt, default 5 */
    long backoff_base_ms;       /* default 500 */
    long backoff_max_ms;        /* default 30000 */
    long max_retry_after_ms;    /* cap on an honoured Retry-After, default 300000 */
    size_t max_response_bytes;  /* default 64 MiB */
    uint64_t seed;              /* jitter RNG seed; 0: from the clock */
    const char *user_agent;
    struct ab_emitter *log; /* borrowed; NULL: no logs */
};

/* The final outcome of a request, valid during the callback only. */
struct ab_http_resp {
    int status;       /* HTTP status, or 0 when no answer was received */
    bool transient;   /* the last attempt failed transiently (retries exhausted) */
    bool in_doubt;    /* sent, but no answer: the server may have applied it */
    const char *body; /* NUL-terminated, never NULL */
    size_t body_len;
    const char *error;   /* transport error text ("" when status != 0) */
    int attempts;        /* includes the token_expired retry and auth failures */
    bool replayed;       /* "Idempotent-Replayed: true" was present */
    long retry_after_ms; /* parsed Retry-After of the last answer, -1 when absent */
    double elapsed_s;    /* from submit to completion */
};

typedef void (*ab_http_done_fn)(void *arg, const struct ab_http_resp *resp);

/* Supplies the bearer token before each attempt (Shops OAuth): fills token
 * (NUL-terminated, at most size bytes) or fails. Called with force=true after
 * an answer of 401 whose body has code "token_expired": the provider must
 * fetch a new token; the request is then retried once more (not counted as a
 * retry). Set with ab_http_set_auth(). */
typedef enum ab_status (*ab_http_auth_fn)(void *arg, bool force, char *token, size_t size,
                                          struct ab_error *err);

#define AB_HTTP_NO_RETRY_IN_DOUBT (1U << 0)
#define AB_HTTP_GZIP              (1U << 1) /* send the body gzip-compressed */
#define AB_HTTP_NO_RETRY          (1U << 2) /* a single attempt */

void ab_http_opts_init(struct ab_http_opts *o);
/* o is copied (strings too); timeouts, max_in_flight, backoff and
 * max_response_bytes <= 0 mean the default (max_retries 0: no retries,
 * < 0: the default). Takes a reference on curl_global_init(), released by
 * ab_http_free() (libcurl counts them). */
struct ab_http *ab_http_new(const struct ab_http_opts *o, struct ab_error *err);
/* Aborts whatever is queued or running without calling callbacks. */
void ab_http_free(struct ab_http *h);

/* Static bearer token (copied), sent as "Authorization: Bearer <t>". */
enum ab_status ab_http_set_bearer(struct ab_http *h, const char *token, struct ab_error *err);
void ab_http_set_auth(struct ab_http *h, ab_http_auth_fn fn, void *arg);

/* url and method are copied. */
struct ab_http_req *ab_http_req_new(const char *method, const char *url, struct ab_error *err);
void ab_http_req_free(struct ab_http_req *r);
/* "Name: value", copied. */
enum ab_status ab_http_req_header(struct ab_http_req *r, const char *line, struct ab_error *err);
/* Takes the buffer's content (body is re-initialised); also on failure.
 * type (copied) is the Content-Type; NULL sends none. */
enum ab_status ab_http_req_body(struct ab_http_req *r, struct ab_buf *body, const char *type,
                                struct ab_error *err);
void ab_http_req_flags(struct ab_http_req *r, unsigned flags);
void ab_http_req_retry_status(struct ab_http_req *r, int status);
/* Short label for logs ("POST customers:batchUpsert #12"), copied. */
void ab_http_req_label(struct ab_http_req *r, const char *label);

/* Queues r (ownership taken, also on failure); done is called exactly once,
 * from ab_http_wait()/ab_http_run(), unless the client is freed first. */
enum ab_status ab_http_submit(struct ab_http *h, struct ab_http_req *r, ab_http_done_fn done,
                              void *arg, struct ab_error *err);

/* Requests submitted and not yet completed (queued, waiting for a retry, or
 * on the wire). */
size_t ab_http_pending(const struct ab_http *h);
/* Attempts on the wire now. */
size_t ab_http_active(const struct ab_http *h);

/*
 * Drives transfers, starts queued attempts as the concurrency and the rate
 * limiter allow, calls completion callbacks, and waits at most timeout_ms for
 * activity. extra_fd >= 0 is polled for reading too (stdin, a signal pipe):
 * *extra_ready tells whether it became readable. extra_fd2 likewise (or -1).
 * Returns as soon as a callback ran or an extra fd is readable, when
 * timeout_ms passed (< 0: no limit), or at once when nothing is pending and
 * no extra fd is given. Callbacks may submit requests but must not call
 * ab_http_wait(), ab_http_run() or ab_http_free().
 */
enum ab_status ab_http_wait(struct ab_http *h, struct pollfd *fds, unsigned nfds, long timeout_ms,
                            struct ab_error *err);

/* Blocking convenience: submits r and drives the client until it completes;
 * the answer is copied to out (body into out_body, reset first, may be NULL).
 * Any HTTP status is AB_OK; with no answer (status 0) it fails: TRANSIENT
 * (also when in doubt, the message says "outcome unknown"), or the final
 * failure's code (CONFIG, PROTOCOL, an auth provider's code). */
enum ab_status ab_http_run(struct ab_http *h, struct ab_http_req *r, int *status,
                           struct ab_buf *out_body, struct ab_error *err);

struct ab_http_stats {
    uint64_t requests; /* completed requests */
    uint64_t attempts; /* attempts started */
    uint64_t retries;  /* attempts after the first */
    uint64_t transport_errors;
    uint64_t throttled; /* 429 answers */
    uint64_t bytes_sent;
};
void ab_http_get_stats(const struct ab_http *h, struct ab_http_stats *out);

/* Parses a Retry-After value (delta seconds or IMF-fixdate) relative to now;
 * -1 when unparseable. Exposed for tests. */
long ab_http_parse_retry_after(const char *value, int64_t now_unix_s);

/* Backoff delay for attempt (1 = first retry) with full jitter; exposed for
 * tests. rng is a xorshift state updated in place. */
long ab_http_backoff_ms(long base_ms, long max_ms, int attempt, uint64_t *rng);

/* Token bucket, exposed for tests: refill at rate per second up to burst.
 * ab_ratelimit_take() returns 0 when a token was taken, else the ms to wait. */
struct ab_ratelimit {
    double rate;
    double burst;
    double tokens;
    int64_t last_us;
};
void ab_ratelimit_init(struct ab_ratelimit *rl, double rate, double burst, int64_t now_us);
long ab_ratelimit_take(struct ab_ratelimit *rl, int64_t now_us);

/* Monotonic clock in microseconds. */
int64_t ab_now_us(void);

#endif
