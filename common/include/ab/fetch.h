/* fetch.h - a source's HTTP reads on the loop, and what their failures mean. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_FETCH_H
#define AB_FETCH_H

#include <stdbool.h>
#include <stddef.h>

#include <yajl/yajl_tree.h>

#include "ab/buf.h"
#include "ab/driver.h"
#include "ab/error.h"
#include "ab/http.h"
#include "ab/source.h"

/* The API's own message from an error body (NULL when it was not JSON)
 * into out (size bytes, NUL-terminated, "" when there is none); returns
 * out. Each source knows its API's error envelope. */
typedef const char *(*ab_error_detail_fn)(yajl_val body, char *out, size_t size);

/*
 * One request of a source in flight at a time, on the client the driver's
 * loop drives (ab_driver_set_http()). step() submits it and answers
 * AB_SOURCE_WAIT; the completion copies the final answer into the fetch and
 * calls ab_source_resume(), so the next step() finds it ready. The client's
 * rate limiter (one client per account) paces the requests, its retries
 * absorb transient answers as the request's classifier and header hooks
 * decide (each API says "slow down" its own way: give those hooks to the
 * request before submitting).
 *
 * Single-threaded (the loop's thread). The body is capped at max_body bytes
 * (a larger answer is a final failure of the request).
 */
struct ab_fetch {
    struct ab_driver *d;
    struct ab_http *h;
    bool busy;  /* submitted, not completed */
    bool ready; /* completed, not yet taken with ab_fetch_done() */
    int status; /* HTTP status; 0 when no answer came */
    bool transient;
    bool in_doubt;
    int attempts;
    double elapsed_s;
    struct ab_buf body; /* the answer's body, NUL-terminated */
    char error[256];    /* transport failure text, "" otherwise */
};

void ab_fetch_init(struct ab_fetch *f, struct ab_driver *d, struct ab_http *h, size_t max_body);
void ab_fetch_release(struct ab_fetch *f);
/* Submits r (ownership taken, also on failure). The fetch must not be busy
 * or ready. */
enum ab_status ab_fetch_submit(struct ab_fetch *f, struct ab_http_req *r, struct ab_error *err);
/* The caller has read the answer: the fetch is free again. */
void ab_fetch_done(struct ab_fetch *f);

/*
 * The read of a source that takes its catalog's streams one after the
 * other, one request at a time: ab_fetch_walk_step() is the source's whole
 * step() around its own callbacks.
 *
 *   begin(self, stream, err)   plan catalog stream `stream` from its input
 *                              state; the walk then says STARTED and RUNNING
 *   answer(self, err)          the fetch's answer is ready: take it (records,
 *                              states, the next request's plan); the walk then
 *                              frees the fetch (ab_fetch_done())
 *   submit(self, &done, err)   submit the next request (ab_fetch_submit()),
 *                              or set done when the stream is complete: the
 *                              walk says COMPLETE and goes to the next stream
 *
 * A step does one of: wait while the fetch is busy; take a ready answer and
 * submit the next request (WAIT); begin a stream (MORE); complete one (MORE,
 * DONE after the last). A callback's failure ends the step with it (the
 * driver marks the stream INCOMPLETE). Single-threaded, like the fetch.
 */
struct ab_fetch_walk_ops {
    enum ab_status (*begin)(void *self, size_t stream, struct ab_error *err);
    enum ab_status (*answer)(void *self, struct ab_error *err);
    enum ab_status (*submit)(void *self, bool *done, struct ab_error *err);
};

struct ab_fetch_walk {
    const struct ab_fetch_walk_ops *ops;
    void *self;         /* the callbacks' argument, borrowed */
    struct ab_fetch *f; /* borrowed */
    size_t cur;         /* the catalog stream being read */
    bool begun;         /* cur was begun and is not complete */
};

/* Starts at the first catalog stream. ops, self and f are borrowed for the
 * walk's life. */
void ab_fetch_walk_init(struct ab_fetch_walk *w, const struct ab_fetch_walk_ops *ops, void *self,
                        struct ab_fetch *f);
/* One step() (see above). Errors: the callbacks', the emitter's. */
enum ab_status ab_fetch_walk_step(struct ab_fetch_walk *w, enum ab_source_next *next,
                                  struct ab_error *err);

/*
 * What a final answer that is not a success means, in one table for every
 * source (what: "GET /orders page 3"; detail: the API's own message from its
 * error envelope, or NULL):
 *   no answer, retries used up or transient  AB_ERR_TRANSIENT
 *   no answer, final (TLS, URL, too large)   AB_ERR_CONFIG
 *   401, 403                                 AB_ERR_CONFIG (credentials, scopes)
 *   404                                      AB_ERR_CONFIG (wrong base URL)
 *   408, 429, 5xx (retries used up)          AB_ERR_TRANSIENT
 *   any other status                         AB_ERR_PROTOCOL (system_error: the
 *                                            API refused what the source sent)
 * The message names what, the status and detail; never a token.
 */
enum ab_status ab_fetch_error(const struct ab_fetch *f, const char *what, const char *detail,
                              struct ab_error *err);
/* The ready answer of f as JSON: on HTTP 200 its body parsed into *body
 * (the caller frees it with ab_json_free(); "what: the answer is not JSON"
 * with the parser's reason otherwise), on any other outcome the failure it
 * means (ab_fetch_error() with the API's detail from the error body; detail
 * NULL: none). *body is NULL on failure. */
enum ab_status ab_fetch_json(const struct ab_fetch *f, const char *what, ab_error_detail_fn detail,
                             yajl_val *body, struct ab_error *err);
enum ab_status ab_http_status_error(int status, bool transient, const char *what,
                                    const char *detail, struct ab_error *err);

struct ab_oauth2;

/*
 * check of an HTTP source: set up, credentials, then one read per stream.
 *
 * ab_check_begin(): rc and e are what setting up the source's config and
 * client gave. A config failure (AB_ERR_CONFIG) is reported as check's
 * problem; any other is check's own failure and is copied to err. Then,
 * with auth (NULL: a source without tokens), a token is fetched: refused
 * credentials are the one problem worth reporting ("credentials: ..."), the
 * reads would only repeat it. True when the reads go on; otherwise check
 * returns err->code (AB_OK, err cleared, when a problem was reported).
 *
 * ab_check_probe(): one read, run now on h (blocking, on check's thread; r
 * is taken, also on failure, and carries the hooks a read gives it). NULL r
 * means building it failed, as err says. Every failure is a problem of the
 * stream: "stream 's': what: HTTP 401, ..." with the API's detail, mapped
 * as ab_http_status_error(); so is an answer that is not a JSON object with
 * the array member list (NULL: any object). Returns the parsed answer (the
 * caller frees it with ab_json_free()), or NULL when a problem was
 * reported. err is scratch.
 */
struct ab_probe {
    const char *stream;        /* the stream the read stands for */
    const char *what;          /* "GET /contatos", for messages */
    const char *list;          /* the answer's array member, NULL: any object */
    ab_error_detail_fn detail; /* NULL: error bodies say nothing */
};

bool ab_check_begin(struct ab_check *chk, enum ab_status rc, const struct ab_error *e,
                    struct ab_oauth2 *auth, struct ab_error *err);
yajl_val ab_check_probe(struct ab_check *chk, struct ab_http *h, struct ab_http_req *r,
                        const struct ab_probe *p, struct ab_error *err);

/*
 * The config with the string at dotted path ("refresh_token",
 * "credentials.refresh_token") set to value, serialised into out (appended):
 * what a source emits with ab_source_control_config() when a credential
 * rotates. AB_ERR_INTERNAL when the path does not lead to a string.
 */
enum ab_status ab_config_with(yajl_val config, const char *dotted, const char *value,
                              struct ab_buf *out, struct ab_error *err);

/* The run's config with the string at dotted set to value, emitted as a
 * CONTROL connector-config message (ab_source_control_config()); the copy is
 * wiped once written. What an ab_oauth2 on_rotate callback does with a new
 * refresh token. Errors: those two functions'. */
enum ab_status ab_source_config_update(struct ab_driver *d, const char *dotted, const char *value,
                                       struct ab_error *err);

/* The discover answer from a catalog text of any layout (an embedded JSON
 * file): parsed and emitted on one line. AB_ERR_INTERNAL when the text is
 * not JSON. */
enum ab_status ab_source_catalog_text(struct ab_driver *d, const char *text, struct ab_error *err);

#endif
