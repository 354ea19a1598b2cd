/* fetch.c - a source's HTTP reads on the loop, and what their failures mean. */
/* SPDX-License-Identifier: MIT */
#include "ab/fetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/assert.h"
#include "ab/json.h"
#include "ab/oauth2.h"
#include "ab/source.h"

/* a check read's answer at the most */
#define CHECK_BODY_MAX ((size_t)16 << 20)

void ab_fetch_init(struct ab_fetch *f, struct ab_driver *d, struct ab_http *h, size_t max_body)
{
    memset(f, 0, sizeof(*f));
    f->d = d;
    f->h = h;
    ab_buf_init(&f->body, max_body);
}

void ab_fetch_release(struct ab_fetch *f)
{
    ab_buf_release(&f->body);
}

static void on_done(void *arg, const struct ab_http_resp *resp)
{
    struct ab_fetch *f = arg;
    struct ab_error err;

    AB_ASSERT(f->busy && !f->ready);
    f->busy = false;
    f->ready = true;
    f->status = resp->status;
    f->transient = resp->transient;
    f->in_doubt = resp->in_doubt;
    f->attempts = resp->attempts;
    f->elapsed_s = resp->elapsed_s;
    (void)snprintf(f->error, sizeof(f->error), "%s", resp->error ? resp->error : "");
    ab_buf_reset(&f->body);
    ab_error_init(&err);
    if (ab_buf_add(&f->body, resp->body, resp->body_len, &err) != AB_OK) {
        f->status = 0;
        f->transient = false;
        (void)snprintf(f->error, sizeof(f->error), "answer larger than %zu bytes", f->body.max);
        ab_buf_reset(&f->body);
    }
    ab_source_resume(f->d);
}

enum ab_status ab_fetch_submit(struct ab_fetch *f, struct ab_http_req *r, struct ab_error *err)
{
    AB_ASSERT(!f->busy && !f->ready);
    if (ab_http_submit(f->h, r, on_done, f, err) != AB_OK) {
        return err->code;
    }
    f->busy = true;
    return AB_OK;
}

void ab_fetch_done(struct ab_fetch *f)
{
    AB_ASSERT(f->ready);
    f->ready = false;
}

void ab_fetch_walk_init(struct ab_fetch_walk *w, const struct ab_fetch_walk_ops *ops, void *self,
                        struct ab_fetch *f)
{
    AB_ASSERT(ops && ops->begin && ops->answer && ops->submit && f);
    memset(w, 0, sizeof(*w));
    w->ops = ops;
    w->self = self;
    w->f = f;
}

enum ab_status ab_fetch_walk_step(struct ab_fetch_walk *w, enum ab_source_next *next,
                                  struct ab_error *err)
{
    struct ab_driver *d = w->f->d;
    size_t n = ab_driver_catalog(d)->n;
    bool done = false;
    enum ab_status rc = AB_OK;

    *next = AB_SOURCE_MORE;
    if (w->f->busy) {
        *next = AB_SOURCE_WAIT;
        return AB_OK;
    }
    if (w->cur >= n) {
        *next = AB_SOURCE_DONE;
        return AB_OK;
    }
    if (w->f->ready) {
        AB_ASSERT(w->begun); /* an answer needs a request */
        rc = w->ops->answer(w->self, err);
        ab_fetch_done(w->f);
        if (rc != AB_OK) {
            return rc;
        }
    }
    if (!w->begun) {
        rc = w->ops->begin(w->self, w->cur, err);
        if (rc == AB_OK) {
            w->begun = true;
            rc = ab_source_stream_status(d, w->cur, AB_STATUS_STARTED, err);
        }
        if (rc == AB_OK) {
            rc = ab_source_stream_status(d, w->cur, AB_STATUS_RUNNING, err);
        }
        return rc;
    }
    rc = w->ops->submit(w->self, &done, err);
    if (rc != AB_OK) {
        return rc;
    }
    if (!done) {
        AB_ASSERT(w->f->busy); /* a request in flight, or the stream is complete */
        *next = AB_SOURCE_WAIT;
        return AB_OK;
    }
    rc = ab_source_stream_status(d, w->cur, AB_STATUS_COMPLETE, err);
    w->cur++;
    w->begun = false;
    if (w->cur >= n) {
        *next = AB_SOURCE_DONE;
    }
    return rc;
}

enum ab_status ab_fetch_json(const struct ab_fetch *f, const char *what, ab_error_detail_fn detail,
                             yajl_val *body, struct ab_error *err)
{
    char text[400];

    *body = NULL;
    if (f->status == 200) {
        *body = ab_json_parse(f->body.data ? f->body.data : "", f->body.len, err);
        return *body ? AB_OK : ab_error_prefix(err, "%s: the answer is not JSON", what);
    }
    text[0] = '\0';
    if (f->status != 0 && detail) {
        yajl_val e = ab_json_parse(f->body.data ? f->body.data : "", f->body.len, NULL);

        detail(e, text, sizeof(text));
        if (e) {
            ab_json_free(e);
        }
    }
    return ab_fetch_error(f, what, text, err);
}

enum ab_status ab_http_status_error(int status, bool transient, const char *what,
                                    const char *detail, struct ab_error *err)
{
    const char *sep = detail && *detail ? ": " : "";

    detail = detail ? detail : "";
    if (status == 401 || status == 403) {
        return ab_error_set(err, AB_ERR_CONFIG,
                            "%s: HTTP %d, the API refused the credentials or their scopes%s%s",
                            what, status, sep, detail);
    }
    if (status == 404) {
        return ab_error_set(err, AB_ERR_CONFIG, "%s: HTTP 404, not found (check the base URL)%s%s",
                            what, sep, detail);
    }
    if (transient || status == 408 || status == 429 || status >= 500) {
        return ab_error_set(err, AB_ERR_TRANSIENT, "%s: HTTP %d after the retries%s%s", what,
                            status, sep, detail);
    }
    return ab_error_set(err, AB_ERR_PROTOCOL, "%s: HTTP %d, the API refused the request%s%s", what,
                        status, sep, detail);
}

enum ab_status ab_fetch_error(const struct ab_fetch *f, const char *what, const char *detail,
                              struct ab_error *err)
{
    if (f->status == 0) {
        if (f->transient || f->in_doubt) {
            return ab_error_set(err, AB_ERR_TRANSIENT, "%s: no answer after %d attempt(s): %s",
                                what, f->attempts, f->error);
        }
        return ab_error_set(err, AB_ERR_CONFIG, "%s: %s", what, f->error);
    }
    return ab_http_status_error(f->status, f->transient, what, detail, err);
}

bool ab_check_begin(struct ab_check *chk, enum ab_status rc, const struct ab_error *e,
                    struct ab_oauth2 *auth, struct ab_error *err)
{
    struct ab_error fe;

    if (rc != AB_OK) {
        if (rc != AB_ERR_CONFIG) {
            *err = *e;
            return false;
        }
        ab_check_problem(chk, "%s", e->message);
        ab_error_init(err);
        return false;
    }
    ab_error_init(&fe);
    if (auth && ab_oauth2_fetch(auth, &fe) != AB_OK) {
        ab_check_problem(chk, "credentials: %s", fe.message);
        ab_error_init(err);
        return false;
    }
    return true;
}

yajl_val ab_check_probe(struct ab_check *chk, struct ab_http *h, struct ab_http_req *r,
                        const struct ab_probe *p, struct ab_error *err)
{
    struct ab_buf resp;
    yajl_val body = NULL;
    char detail[400];
    int status = 0;
    bool ok = false;

    AB_ASSERT(p->stream && p->what);
    ab_buf_init(&resp, CHECK_BODY_MAX);
    if (!r || ab_http_run(h, r, &status, &resp, err) != AB_OK) {
        ab_check_problem(chk, "stream '%s': %s", p->stream, err->message);
        goto out;
    }
    body = ab_json_parse(resp.data ? resp.data : "", resp.len, NULL);
    if (status != 200) {
        detail[0] = '\0';
        if (p->detail) {
            p->detail(body, detail, sizeof(detail));
        }
        (void)ab_http_status_error(status, false, p->what, detail, err);
        ab_check_problem(chk, "stream '%s': %s", p->stream, err->message);
        goto out;
    }
    if (!body || !YAJL_IS_OBJECT(body) || (p->list && !YAJL_IS_ARRAY(ab_json_get(body, p->list)))) {
        if (p->list) {
            ab_check_problem(chk, "stream '%s': %s: the answer is not {\"%s\": [...]}", p->stream,
                             p->what, p->list);
        } else {
            ab_check_problem(chk, "stream '%s': %s: the answer is not a JSON object", p->stream,
                             p->what);
        }
        goto out;
    }
    ok = true;
out:
    if (!ok && body) {
        ab_json_free(body);
        body = NULL;
    }
    ab_buf_release(&resp);
    return body;
}

enum ab_status ab_source_config_update(struct ab_driver *d, const char *dotted, const char *value,
                                       struct ab_error *err)
{
    struct ab_buf out;
    enum ab_status rc;

    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    rc = ab_config_with(ab_driver_config(d), dotted, value, &out, err);
    if (rc == AB_OK) {
        rc = ab_source_control_config(d, out.data, out.len, err);
    }
    if (out.data) {
        memset(out.data, 0, out.len);
    }
    ab_buf_release(&out);
    return rc;
}

enum ab_status ab_source_catalog_text(struct ab_driver *d, const char *text, struct ab_error *err)
{
    yajl_val v = ab_json_parse(text, strlen(text), err);
    struct ab_buf out;
    enum ab_status rc;

    if (!v) {
        (void)ab_error_prefix(err, "the embedded catalog");
        err->code = AB_ERR_INTERNAL;
        return AB_ERR_INTERNAL;
    }
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    rc = ab_json_write(&out, v, err);
    ab_json_free(v);
    if (rc == AB_OK) {
        rc = ab_source_catalog(d, out.data, out.len, err);
    }
    ab_buf_release(&out);
    return rc;
}

enum ab_status ab_config_with(yajl_val config, const char *dotted, const char *value,
                              struct ab_buf *out, struct ab_error *err)
{
    yajl_val copy = ab_json_clone(config);
    yajl_val node;
    char *s;
    enum ab_status rc;

    if (!copy) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (config copy)");
    }
    node = ab_json_get_dotted(copy, dotted);
    if (!node || !YAJL_IS_STRING(node)) {
        ab_json_free(copy);
        return ab_error_set(err, AB_ERR_INTERNAL, "config: '%s' is not a string", dotted);
    }
    s = strdup(value);
    if (!s) {
        ab_json_free(copy);
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (config copy)");
    }
    free(node->u.string);
    node->u.string = s;
    rc = ab_json_write(out, copy, err);
    ab_json_free(copy);
    return rc;
}
