/* http.h - HTTP client over curl multi: concurrency, retries, rate limiting. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_HTTP_H
#define AB_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <poll.h>
#include <signal.h>

#include "ab/buf.h"
#include "ab/emitter.h"
#include "ab/error.h"

/*
 * Single-threaded: the client, its requests and the loop it is attached to
 * are used from one thread. Requests are queued with ab_http_submit() and
 * progress only inside ab_http_wait()/ab_http_run() or, once attached to a
 * loop (ab_loop_set_http()), inside that loop's turns; the completion
 * callbacks run there too, one at a time, never from inside
 * ab_http_submit(). Connections are reused (keep-alive). TLS peers are
 * verified.
 *
 * Each request is retried by this module when an attempt is transient:
 * transport failures (timeout, reset, refused, DNS), and answers its
 * classifier calls AB_HTTP_RETRY (by default 408, 429, 500-599; see
 * ab_http_req_classify()). Backoff is capped exponential with full jitter
 * (delay = rand(0, min(cap, base * 2^(n-1))) before retry n); a Retry-After header
 * (seconds or HTTP date) overrides it when longer. Every attempt first takes
 * a token from the rate limiter. The callback sees only the final outcome.
 *
 * This module knows HTTP, not any API: what an API means by a status, a
 * header or an error body (a replayed idempotent request, an expired token,
 * a "busy, try again" conflict) is read by the connector through the
 * per-request hooks ab_http_req_on_header() and ab_http_req_classify().
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
struct ab_loop;

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
    /* borrowed; once *stop is non-zero (a signal handler sets it),
     * ab_http_run() abandons its request within STOP_POLL_MS and fails with
     * AB_ERR_TRANSIENT; NULL: never */
    const volatile sig_atomic_t *stop;
};

/* The final outcome of a request, valid during the callback only. */
struct ab_http_resp {
    int status;       /* HTTP status, or 0 when no answer was received */
    bool transient;   /* the last attempt failed transiently (retries exhausted) */
    bool in_doubt;    /* sent, but no answer: the server may have applied it */
    const char *body; /* NUL-terminated, never NULL */
    size_t body_len;
    const char *error;   /* transport error text ("" when status != 0) */
    int attempts;        /* includes the auth refresh retry and auth failures */
    long retry_after_ms; /* parsed Retry-After of the last answer, -1 when absent */
    double elapsed_s;    /* from submit to completion */
};

typedef void (*ab_http_done_fn)(void *arg, const struct ab_http_resp *resp);

/* Supplies the bearer token before each attempt (an OAuth client, say): fills
 * token (NUL-terminated, at most size bytes) or fails. Called with force=true
 * for the attempt after one its classifier called AB_HTTP_REFRESH_AUTH: the
 * provider must fetch a new token. Set with ab_http_set_auth(). */
typedef enum ab_status (*ab_http_auth_fn)(void *arg, bool force, char *token, size_t size,
                                          struct ab_error *err);

/*
 * What to do with the answer to one attempt (a status was received).
 *  AB_HTTP_DEFAULT       the built-in rules: 408, 429 and 500-599 are
 *                        AB_HTTP_RETRY, every other status AB_HTTP_FINAL.
 *  AB_HTTP_RETRY         transient: back off (Retry-After honoured) and try
 *                        again, counted against max_retries; once they are
 *                        used up (or with AB_HTTP_NO_RETRY) the answer goes to
 *                        the callback with resp->transient set.
 *  AB_HTTP_REFRESH_AUTH  the token was refused: the next attempt asks the
 *                        auth provider for a new one (force=true) and starts
 *                        at once, not counted as a retry. Honoured once per
 *                        request, and only with an auth provider and without
 *                        AB_HTTP_NO_RETRY; otherwise it is AB_HTTP_FINAL.
 *  AB_HTTP_FINAL         hand this answer to the callback.
 */
enum ab_http_verdict { AB_HTTP_DEFAULT = 0, AB_HTTP_RETRY, AB_HTTP_REFRESH_AUTH, AB_HTTP_FINAL };

/* Classifies the answer to each attempt. answer is valid during the call
 * only; its status is never 0 (transport failures are not classified),
 * transient is false, error is "", and attempts counts this one. Headers are
 * not in it: a classifier that needs them collects them with
 * ab_http_req_on_header() (called for the same attempt before it). */
typedef enum ab_http_verdict (*ab_http_classify_fn)(void *arg, const struct ab_http_resp *answer);

/* One response header field: name without the colon, value with leading and
 * trailing white space removed; neither is NUL-terminated, both valid during
 * the call only. name == NULL (lengths 0) marks the start of a response (its
 * status line): of every attempt, and again after an interim 1xx answer, so
 * the hook forgets what it saw before. The fields of the answer the callback
 * gets are those after the last start mark; after a transport failure the
 * hook may have seen some fields of the failed attempt. */
typedef void (*ab_http_header_fn)(void *arg, const char *name, size_t name_len, const char *value,
                                  size_t value_len);

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
/* As ab_http_req_body() without a copy: the request points at data (len
 * bytes), which the caller keeps unchanged until the request's done callback
 * has returned or the request is freed. With AB_HTTP_GZIP the request
 * compresses it once, into a buffer of its own. */
enum ab_status ab_http_req_body_ref(struct ab_http_req *r, const char *data, size_t len,
                                    const char *type, struct ab_error *err);
void ab_http_req_flags(struct ab_http_req *r, unsigned flags);
/* Per-request hooks, each replacing a previous one (fn NULL: none); arg is
 * borrowed and must outlive the request (until its callback ran or the
 * client was freed). Both run where transfers progress (see above), for every
 * attempt; they must not call into the client. */
void ab_http_req_on_header(struct ab_http_req *r, ab_http_header_fn fn, void *arg);
void ab_http_req_classify(struct ab_http_req *r, ab_http_classify_fn fn, void *arg);
/* A response field (name, case-insensitive; copied) that says, in seconds
 * (or as an HTTP date), how long to wait before the next attempt, as
 * Retry-After does, on answers with this status only (an API's own "slow
 * down" header, such as a rate-limit window reset on 429): the backoff
 * before a retry is at least that long (capped at max_retry_after_ms).
 * AB_ERR_NOMEM only. */
enum ab_status ab_http_req_delay_header(struct ab_http_req *r, const char *name, int status,
                                        struct ab_error *err);
/* Short label for logs ("POST customers:batchUpsert #12"), copied. */
void ab_http_req_label(struct ab_http_req *r, const char *label);

/* Queues r (ownership taken, also on failure); done is called exactly once,
 * where transfers progress (ab_http_wait()/ab_http_run() or the loop), unless
 * the client is freed first. */
enum ab_status ab_http_submit(struct ab_http *h, struct ab_http_req *r, ab_http_done_fn done,
                              void *arg, struct ab_error *err);

/* Requests submitted and not yet completed (queued, waiting for a retry, or
 * on the wire). */
size_t ab_http_pending(const struct ab_http *h);
/* Attempts on the wire now. */
size_t ab_http_active(const struct ab_http *h);

/*
 * Attaches the client to a loop (borrowed; NULL detaches): its sockets and
 * one timer are then registered there, and the loop's turns drive the
 * transfers (curl_multi_socket_action() on readiness, with
 * CURL_CSELECT_ERR for a hang-up or an error; on the timer, curl's timeout
 * and the next possible start after a retry backoff or the rate limiter);
 * completion callbacks run inside those loop callbacks. A registration the
 * loop refuses (its tables full, out of memory) breaks the client: every
 * later loop callback, ab_http_wait() and ab_http_run() fails with that
 * error. Called by ab_loop_set_http(), which connectors use (ab_http_free()
 * and ab_loop_free() detach). Not from a callback of the client's.
 */
void ab_http_set_loop(struct ab_http *h, struct ab_loop *l);

/*
 * Drives transfers, starts queued attempts as the concurrency and the rate
 * limiter allow, calls completion callbacks, and waits at most timeout_ms for
 * activity, in one poll(2) per round over the fds and the client's sockets
 * (the same machinery as the loop's: curl_multi_socket_action(); with a loop
 * attached, the sockets stay registered there too, so ab_http_run() works
 * from inside a loop callback). fds (nfds entries, POSIX struct pollfd, may be NULL when nfds is
 * 0) are polled too: events in, revents out (0, or what poll(2) reported,
 * POLLHUP/POLLERR/POLLNVAL included); an entry with fd < 0 is ignored.
 * Returns as soon as a callback ran or any fd is ready, when timeout_ms
 * passed (< 0: no limit), or at once when nothing is pending and no fd is
 * given. Callbacks may submit requests but must not call ab_http_wait(),
 * ab_http_run() or ab_http_free().
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

#endif
