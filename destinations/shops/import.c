/* import.c - the import lifecycle: creation, parts, commit, in-doubt resolution. */
/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strings.h>

#include "ab/assert.h"
#include "ab/json.h"
#include "ab/log.h"

#include "shops_int.h"

/*
 * Everything here runs inside the driver loop: the ops (record, state,
 * flush, busy, idle) and the HTTP completion callbacks call shp_pump(),
 * which starts whatever can start. A callback never waits; a fatal problem
 * found in one goes to shp_fail() (ab_driver_fail()), and nothing more is
 * started afterwards.
 *
 * Per import, the server-side steps are strictly sequential: create, upload
 * parts (up to max_in_flight at a time over all imports), commit. When the
 * import is found expired or aborted (410 on a part, RECREATE after a lost
 * commit answer), it is "re-created": a new generation and import sequence
 * number (so a new label and Idempotency-Key), every part back to READY, and
 * the same records uploaded again from the spool into the new import. Its
 * checkpoint unit stays the same: the records never left it.
 */

#define MAX_RECREATES      5
#define MAX_RESOLVE_ROUNDS 60
#define MAX_MISSING_ROUNDS 3
#define MAX_RECOVER_ROUNDS 50
#define MAX_AUTH_REFUSALS  5

static const char *const object_names[] = {"products", "inventory", NULL};

const char *const *shp_objects(void)
{
    return object_names;
}

const char *shp_object_name(unsigned obj)
{
    return obj < SHP_NOBJ ? object_names[obj] : "?";
}

/* ---- errors ---------------------------------------------------------------- */

void shp_fail(struct shp_dest *s, const struct ab_error *err)
{
    s->failed = true;
    ab_driver_fail(s->d, err);
}

static void fail_msg(struct shp_dest *s, enum ab_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_msg(struct shp_dest *s, enum ab_status code, const char *fmt, ...)
{
    struct ab_error e;
    char msg[AB_ERROR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ab_error_init(&e);
    ab_error_set(&e, code, "%s", msg);
    shp_fail(s, &e);
}

/* An answer that ends the run: classified once, here. */
static void fail_http(struct shp_dest *s, const char *what, const struct ab_http_resp *resp,
                      yajl_val body)
{
    const char *code = shp_error_code(body);
    const char *message = ab_json_get_str(ab_json_get(body, "error"), "message", "");

    if (resp->status == 0) {
        fail_msg(s, resp->transient ? AB_ERR_TRANSIENT : AB_ERR_CONFIG, "%s: %s (%d attempts)",
                 what, resp->error, resp->attempts);
    } else if (resp->status == 401 || resp->status == 403) {
        fail_msg(s, AB_ERR_CONFIG,
                 "%s: the API refused access (HTTP %d %s): check client_id, client_secret and "
                 "the channel",
                 what, resp->status, code);
    } else if (resp->status == 408 || resp->status == 429 || resp->status >= 500) {
        fail_msg(s, AB_ERR_TRANSIENT, "%s: HTTP %d after %d attempts", what, resp->status,
                 resp->attempts);
    } else {
        fail_msg(s, AB_ERR_PROTOCOL, "%s: unexpected answer HTTP %d %s%s%s", what, resp->status,
                 code, *message ? ": " : "", message);
    }
}

struct ab_oauth2 *shp_auth_new(struct ab_driver *d, const char *api_url, const char *client_id,
                               const char *client_secret, const struct ab_http_opts *o,
                               bool fail_driver, struct ab_error *err)
{
    struct ab_oauth2_opts ao;
    struct ab_oauth2 *a = NULL;
    struct ab_buf url;

    ab_buf_init(&url, AB_BUF_UNBOUNDED);
    if (ab_buf_printf(&url, err, "%s/oauth/token", api_url) == AB_OK) {
        memset(&ao, 0, sizeof(ao));
        ao.d = d;
        ao.token_url = url.data;
        ao.client_id = client_id;
        ao.client_secret = client_secret;
        ao.grant = AB_OAUTH2_CLIENT_CREDENTIALS;
        ao.client_auth = AB_OAUTH2_CLIENT_BODY;
        ao.fail_driver = fail_driver;
        a = ab_oauth2_new(&ao, o, err);
    }
    ab_buf_release(&url);
    return a;
}

enum ab_http_verdict shp_classify(void *arg, const struct ab_http_resp *answer)
{
    yajl_val body;
    bool expired;

    (void)arg;
    if (answer->status != 401) {
        return AB_HTTP_DEFAULT;
    }
    body = ab_json_parse(answer->body, answer->body_len, NULL);
    expired = strcmp(shp_error_code(body), "token_expired") == 0;
    if (body) {
        ab_json_free(body);
    }
    return expired ? AB_HTTP_REFRESH_AUTH : AB_HTTP_DEFAULT;
}

/* ---- request contexts ------------------------------------------------------ */

static void part_fix_free(struct shp_part_fix *fix)
{
    if (fix) {
        shp_leftout_release(&fix->out);
        free(fix);
    }
}

/* The items part p sends: its records that are not left out. */
static uint32_t part_items(const struct shp_part *p)
{
    return p->fix ? shp_live_in(&p->fix->out, 0, p->count) : p->count;
}

/* The probe of part pi, NULL when no subset of it is being uploaded. */
static const struct shp_probe *part_probe(const struct shp_import *imp, size_t pi)
{
    const struct shp_part_fix *fix = imp->parts[pi].fix;

    return fix && fix->probe.active ? &fix->probe : NULL;
}

static void on_done(void *arg, const struct ab_http_resp *resp);

static struct shp_req *req_new(struct shp_dest *s, enum shp_req_kind kind,
                               const struct shp_import *imp, size_t part, const char *id)
{
    struct shp_req *q = calloc(1, sizeof(*q));

    if (!q) {
        return NULL;
    }
    q->s = s;
    q->kind = kind;
    q->serial = imp ? imp->serial : 0;
    q->gen = imp ? imp->gen : 0;
    q->part = part;
    q->probe = kind == SHP_REQ_PART && imp && part < imp->nparts && part_probe(imp, part);
    (void)snprintf(q->id, sizeof(q->id), "%s", id ? id : "");
    q->next = s->reqs;
    if (s->reqs) {
        s->reqs->prev = q;
    }
    s->reqs = q;
    return q;
}

/* A part body to fill: a spare one, or a new one (NULL: out of memory). */
static struct ab_buf *body_take(struct shp_dest *s)
{
    struct ab_buf *b;

    if (s->nspare_bodies > 0) {
        return s->spare_bodies[--s->nspare_bodies];
    }
    b = malloc(sizeof(*b));
    if (b) {
        ab_buf_init(b, s->cfg.lim.max_bytes);
    }
    return b;
}

/* b (may be NULL) is no longer needed: kept for the next part, or freed. */
static void body_give(struct shp_dest *s, struct ab_buf *b)
{
    if (!b) {
        return;
    }
    if (s->nspare_bodies < s->cfg.max_in_flight + 1 && s->nspare_bodies < SHP_SPARE_BODIES) {
        ab_buf_reset(b);
        s->spare_bodies[s->nspare_bodies++] = b;
        return;
    }
    ab_buf_release(b);
    free(b);
}

void shp_bodies_free(struct shp_dest *s)
{
    while (s->nspare_bodies > 0) {
        struct ab_buf *b = s->spare_bodies[--s->nspare_bodies];

        ab_buf_release(b);
        free(b);
    }
}

/* Frees an unlinked request context and gives its body back. */
static void req_free(struct shp_dest *s, struct shp_req *q)
{
    body_give(s, q->body);
    free(q);
}

static void req_unlink(struct shp_req *q)
{
    if (q->prev) {
        q->prev->next = q->next;
    } else {
        q->s->reqs = q->next;
    }
    if (q->next) {
        q->next->prev = q->prev;
    }
    q->prev = NULL;
    q->next = NULL;
}

void shp_reqs_free(struct shp_dest *s)
{
    while (s->reqs) {
        struct shp_req *q = s->reqs;

        req_unlink(q);
        req_free(s, q);
    }
}

/* ab_http_header_fn of every request (arg: its struct shp_req): a creation or
 * commit whose Idempotency-Key the API already applied is answered from its
 * store with "Idempotent-Replayed: true". */
static void on_header(void *arg, const char *name, size_t name_len, const char *value,
                      size_t value_len)
{
    static const char hdr[] = "idempotent-replayed";
    struct shp_req *q = arg;

    if (!name) {
        q->replayed = false; /* a new answer */
        return;
    }
    if (name_len == sizeof(hdr) - 1 && strncasecmp(name, hdr, name_len) == 0) {
        q->replayed = value_len == 4 && strncasecmp(value, "true", 4) == 0;
    }
}

/* Submits r (ownership taken) with a fresh context, which keeps body (may
 * be NULL: the part body r points at) until the answer; false after
 * shp_fail. */
static bool submit_body(struct shp_dest *s, struct ab_http_req *r, enum shp_req_kind kind,
                        const struct shp_import *imp, size_t part, const char *id,
                        struct ab_buf *body)
{
    struct ab_error e;
    struct shp_req *q = req_new(s, kind, imp, part, id);

    ab_error_init(&e);
    if (!q) {
        ab_http_req_free(r);
        body_give(s, body);
        fail_msg(s, AB_ERR_NOMEM, "out of memory (request context)");
        return false;
    }
    q->body = body;
    ab_http_req_on_header(r, on_header, q);
    q->sent_us = ab_now_us();
    if (ab_http_submit(s->h, r, on_done, q, &e) != AB_OK) {
        req_unlink(q);
        req_free(s, q);
        shp_fail(s, &e);
        return false;
    }
    return true;
}

static bool submit(struct shp_dest *s, struct ab_http_req *r, enum shp_req_kind kind,
                   const struct shp_import *imp, size_t part, const char *id)
{
    return submit_body(s, r, kind, imp, part, id, NULL);
}

/* "<api_url>/v1/imports/<id><suffix>" into u. */
static enum ab_status import_url(const struct shp_dest *s, struct ab_buf *u, const char *id,
                                 const char *suffix, struct ab_error *err)
{
    enum ab_status rc;

    ab_buf_reset(u);
    rc = ab_buf_printf(u, err, "%s/v1/imports/", s->cfg.api_url);
    if (rc == AB_OK) {
        rc = shp_url_escape(u, id, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(u, suffix, err);
    }
    return rc;
}

/* A request with a JSON body (body's content is taken). */
static struct ab_http_req *json_req(const char *method, const char *url, struct ab_buf *body,
                                    const char *label, struct ab_error *err)
{
    struct ab_http_req *r = ab_http_req_new(method, url, err);

    if (!r) {
        ab_buf_release(body);
        return NULL;
    }
    ab_http_req_label(r, label);
    ab_http_req_classify(r, shp_classify, NULL);
    if (ab_http_req_header(r, "Accept: application/json", err) != AB_OK ||
        (body && ab_http_req_body(r, body, "application/json", err) != AB_OK)) {
        ab_http_req_free(r);
        return NULL;
    }
    return r;
}

/* A request to "<api_url>/v1/imports/<id><suffix>" (body's content is taken,
 * also on failure; body may be NULL). */
static struct ab_http_req *import_req(const struct shp_dest *s, const char *method, const char *id,
                                      const char *suffix, struct ab_buf *body, const char *label,
                                      struct ab_error *err)
{
    struct ab_http_req *r = NULL;
    struct ab_buf url;

    ab_buf_init(&url, 4096);
    if (import_url(s, &url, id, suffix, err) == AB_OK) {
        r = json_req(method, url.data, body, label, err);
    } else if (body) {
        ab_buf_release(body);
    }
    ab_buf_release(&url);
    return r;
}

/* ---- imports --------------------------------------------------------------- */

static struct shp_import *find_import(struct shp_dest *s, uint64_t serial)
{
    struct shp_import *imp;

    for (imp = s->imports; imp; imp = imp->next) {
        if (imp->serial == serial) {
            return imp;
        }
    }
    return NULL;
}

struct shp_import *shp_imp_new(struct shp_dest *s, bool replace_track, struct ab_error *err)
{
    struct shp_import *imp = calloc(1, sizeof(*imp));
    struct shp_import **tail;
    unsigned i;

    if (!imp) {
        ab_error_set(err, AB_ERR_NOMEM, "out of memory (import)");
        return NULL;
    }
    imp->unit = ab_ckpt_unit_open(s->ck, err);
    if (imp->unit == 0) {
        free(imp);
        return NULL;
    }
    imp->serial = ++s->import_serial;
    imp->replace_track = replace_track;
    imp->mode_replace = replace_track;
    imp->objects = replace_track ? s->replace_objects : s->merge_objects;
    imp->seq = ++s->import_seq;
    imp->created_us = ab_now_us();
    imp->retry_after_ms = -1;
    for (i = 0; i < SHP_NOBJ; i++) {
        imp->open_part[i] = SHP_NO_PART;
        shp_part_acc_init(&imp->acc[i], shp_object_name(i));
    }
    for (tail = &s->imports; *tail; tail = &(*tail)->next) {
    }
    *tail = imp;
    return imp;
}

void shp_imp_free(struct shp_import *imp)
{
    unsigned i;

    if (!imp) {
        return;
    }
    for (i = 0; i < SHP_NOBJ; i++) {
        ab_spool_free(imp->spool[i]);
    }
    for (size_t k = 0; k < imp->nparts; k++) {
        part_fix_free(imp->parts[k].fix);
    }
    free(imp->parts);
    free(imp->checkpoint);
    free(imp);
}

static void unlink_import(struct shp_dest *s, struct shp_import *imp)
{
    struct shp_import **pp;

    for (pp = &s->imports; *pp; pp = &(*pp)->next) {
        if (*pp == imp) {
            *pp = imp->next;
            break;
        }
    }
    imp->next = NULL;
    if (s->merge_cur == imp) {
        s->merge_cur = NULL;
    }
    if (s->replace_imp == imp) {
        s->replace_imp = NULL;
    }
    if (s->deferred == imp) {
        s->deferred = NULL;
    }
}

/* ---- state machines ---------------------------------------------------------- */

bool shp_imp_transition_ok(enum shp_imp_state from, enum shp_imp_state to)
{
#define B(st) (1U << (st))
    static const unsigned allowed[] = {
        [SHP_IMP_NEW] = B(SHP_IMP_CREATING),
        [SHP_IMP_CREATING] = B(SHP_IMP_OPEN) | B(SHP_IMP_NEW),
        [SHP_IMP_OPEN] = B(SHP_IMP_COMMITTING) | B(SHP_IMP_NEW),
        [SHP_IMP_COMMITTING] = B(SHP_IMP_COMMITTED) | B(SHP_IMP_RESOLVING) | B(SHP_IMP_WAIT) |
                               B(SHP_IMP_OPEN) | B(SHP_IMP_COMMITTING) | B(SHP_IMP_NEW),
        [SHP_IMP_WAIT] = B(SHP_IMP_RESOLVING) | B(SHP_IMP_NEW),
        [SHP_IMP_RESOLVING] =
            B(SHP_IMP_COMMITTING) | B(SHP_IMP_WAIT) | B(SHP_IMP_RESOLVING) | B(SHP_IMP_NEW),
        [SHP_IMP_COMMITTED] = 0,
    };

    if ((unsigned)from >= sizeof(allowed) / sizeof(allowed[0]) || (unsigned)to >= 32) {
        return false;
    }
    return (allowed[from] & B(to)) != 0;
}

bool shp_part_transition_ok(enum shp_part_state from, enum shp_part_state to)
{
    static const unsigned allowed[] = {
        [SHP_PART_OPEN] = B(SHP_PART_READY),
        [SHP_PART_READY] = B(SHP_PART_READY) | B(SHP_PART_UPLOADING),
        [SHP_PART_UPLOADING] = B(SHP_PART_READY) | B(SHP_PART_UPLOADED),
        [SHP_PART_UPLOADED] = B(SHP_PART_READY),
    };

    if ((unsigned)from >= sizeof(allowed) / sizeof(allowed[0]) || (unsigned)to >= 32) {
        return false;
    }
    return (allowed[from] & B(to)) != 0;
#undef B
}

const char *shp_imp_state_name(enum shp_imp_state st)
{
    switch (st) {
    case SHP_IMP_NEW:
        return "new";
    case SHP_IMP_CREATING:
        return "creating";
    case SHP_IMP_OPEN:
        return "open";
    case SHP_IMP_COMMITTING:
        return "committing";
    case SHP_IMP_WAIT:
        return "waiting";
    case SHP_IMP_RESOLVING:
        return "resolving";
    case SHP_IMP_COMMITTED:
        return "committed";
    }
    return "?";
}

void shp_imp_set_state(struct shp_dest *s, struct shp_import *imp, enum shp_imp_state to,
                       const char *why)
{
    if (AB_ASSERTIONS_ON && !shp_imp_transition_ok(imp->state, to)) {
        (void)fprintf(stderr, "import #%llu: illegal state transition %s -> %s (%s)\n",
                      (unsigned long long)imp->serial, shp_imp_state_name(imp->state),
                      shp_imp_state_name(to), why);
    }
    AB_ASSERT(shp_imp_transition_ok(imp->state, to));
    if (s && s->em) {
        AB_DEBUG(s->em, "import #%llu%s%s: %s -> %s (%s)", (unsigned long long)imp->serial,
                 imp->id[0] ? " " : "", imp->id, shp_imp_state_name(imp->state),
                 shp_imp_state_name(to), why);
    }
    imp->state = to;
}

static void set_part_state(struct shp_import *imp, size_t i, enum shp_part_state st)
{
    struct shp_part *p = &imp->parts[i];

    AB_ASSERT(shp_part_transition_ok((enum shp_part_state)p->state, st));
    if (p->state == SHP_PART_READY) {
        imp->nready--;
    }
    if (st == SHP_PART_READY) {
        imp->nready++;
        if (i < imp->first_ready) {
            imp->first_ready = i;
        }
    }
    p->state = (unsigned char)st;
}

static void close_open_part(struct shp_import *imp, unsigned obj)
{
    if (imp->open_part[obj] != SHP_NO_PART) {
        set_part_state(imp, imp->open_part[obj], SHP_PART_READY);
        imp->open_part[obj] = SHP_NO_PART;
    }
}

bool shp_imp_can_take(const struct shp_dest *s, const struct shp_import *imp, unsigned obj,
                      size_t len)
{
    if (imp->open_part[obj] != SHP_NO_PART && shp_part_fits(&imp->acc[obj], len, &s->cfg.lim)) {
        return true;
    }
    return imp->nparts < SHP_MAX_PARTS;
}

static enum ab_status new_part(struct shp_import *imp, unsigned obj, uint64_t first,
                               struct ab_error *err)
{
    struct shp_part *p;

    if (imp->nparts == imp->cap) {
        size_t cap = imp->cap ? imp->cap * 2 : 16;

        if (cap > SHP_MAX_PARTS) {
            cap = SHP_MAX_PARTS;
        }
        if (cap <= imp->nparts) {
            return ab_error_set(err, AB_ERR_INTERNAL, "import holds %d parts already",
                                SHP_MAX_PARTS);
        }
        p = realloc(imp->parts, cap * sizeof(*p));
        if (!p) {
            return ab_error_set(err, AB_ERR_NOMEM, "out of memory (%zu parts)", cap);
        }
        imp->parts = p;
        imp->cap = cap;
    }
    p = &imp->parts[imp->nparts];
    memset(p, 0, sizeof(*p));
    p->first = first;
    p->obj = (unsigned char)obj;
    p->state = SHP_PART_OPEN;
    imp->open_part[obj] = imp->nparts++;
    shp_part_acc_init(&imp->acc[obj], shp_object_name(obj));
    return AB_OK;
}

static struct ab_spool *spool_for(struct shp_dest *s, struct shp_import *imp, unsigned obj,
                                  struct ab_error *err)
{
    struct ab_spool_opts o;

    if (!imp->spool[obj]) {
        ab_spool_opts_init(&o);
        o.memory_bytes = 0;
        o.budget = &s->budget;
        o.dir = s->cfg.spool_dir;
        /* the item, and the record as received: at most a line */
        o.max_record = SHP_REC_HEADER + s->cfg.lim.max_bytes + s->cfg.max_line_bytes;
        imp->spool[obj] = ab_spool_new(&o, err);
    }
    return imp->spool[obj];
}

enum ab_status shp_imp_add(struct shp_dest *s, struct shp_import *imp, unsigned obj,
                           const struct shp_rec_meta *meta, const char *item, size_t len,
                           const char *received, size_t rlen, struct ab_error *err)
{
    unsigned char hdr[SHP_REC_HEADER];
    struct shp_rec_meta m = *meta;
    struct ab_spool *sp = spool_for(s, imp, obj, err);
    bool fresh =
        imp->open_part[obj] == SHP_NO_PART || !shp_part_fits(&imp->acc[obj], len, &s->cfg.lim);
    struct shp_part *p;
    uint64_t off;
    enum ab_status rc;

    if (!sp) {
        return err->code;
    }
    AB_ASSERT(len <= UINT32_MAX);
    m.item_len = (uint32_t)len;
    shp_rec_header_encode(hdr, &m);
    rc = ab_spool_append3(sp, hdr, sizeof(hdr), item, len, received, rlen, &off, err);
    if (rc != AB_OK) {
        return rc;
    }
    if (fresh) {
        close_open_part(imp, obj);
        rc = new_part(imp, obj, off, err);
        if (rc != AB_OK) {
            return rc;
        }
    }
    p = &imp->parts[imp->open_part[obj]];
    shp_part_acc_add(&imp->acc[obj], len);
    p->count++;
    p->bytes = imp->acc[obj].bytes;
    if (imp->acc[obj].count >= s->cfg.lim.max_items) {
        close_open_part(imp, obj);
    }
    imp->records++;
    return ab_ckpt_unit_add(s->ck, imp->unit, meta->stream, meta->seq, err);
}

void shp_imp_seal(struct shp_dest *s, struct shp_import *imp)
{
    unsigned i;

    if (imp->sealed) {
        return;
    }
    imp->sealed = true;
    imp->seal_no = ++s->seal_seq;
    for (i = 0; i < SHP_NOBJ; i++) {
        close_open_part(imp, i);
        if (imp->spool[i]) {
            s->stats.spool_file_bytes += ab_spool_file_bytes(imp->spool[i]);
        }
    }
    if (s->merge_cur == imp) {
        s->merge_cur = NULL;
    }
    AB_DEBUG(s->em, "import #%llu sealed: %llu records in %zu parts",
             (unsigned long long)imp->serial, (unsigned long long)imp->records, imp->nparts);
}

void shp_imp_drop_empty(struct shp_dest *s, struct shp_import *imp)
{
    ab_ckpt_unit_done(s->ck, imp->unit);
    unlink_import(s, imp);
    shp_imp_free(imp);
}

static void abort_remote(struct shp_dest *s, const char *id, const char *why)
{
    struct ab_error e;
    struct ab_http_req *r;
    char label[160];

    ab_error_init(&e);
    (void)snprintf(label, sizeof(label), "DELETE import %s", id);
    r = import_req(s, "DELETE", id, "", NULL, label, &e);
    if (!r) {
        shp_fail(s, &e);
        return;
    }
    AB_INFO(s->em, "aborting import %s: %s", id, why);
    if (submit(s, r, SHP_REQ_ABORT, NULL, 0, id)) {
        s->aborts_inflight++;
    }
}

/* Back to NEW under a new sequence number: every part uploads again.
 * counted: the import failed on the server (expired, aborted), as opposed
 * to parts renumbered by this destination; only those count towards
 * MAX_RECREATES. */
static void recreate(struct shp_dest *s, struct shp_import *imp, const char *why, bool counted)
{
    size_t i;

    if (counted && ++imp->recreates > MAX_RECREATES) {
        fail_msg(s, AB_ERR_TRANSIENT,
                 "import %s: %s, and it was re-created %d times already: giving up", imp->id, why,
                 MAX_RECREATES);
        return;
    }
    AB_WARN(s->em,
            "import %s: %s: creating a new import and uploading its %llu records again from the "
            "spool",
            imp->id[0] ? imp->id : "(not created)", why, (unsigned long long)imp->records);
    imp->gen++;
    imp->seq = ++s->import_seq;
    shp_imp_set_state(s, imp, SHP_IMP_NEW, why);
    imp->id[0] = '\0';
    imp->resolve_rounds = 0;
    imp->missing_rounds = 0;
    for (i = 0; i < imp->nparts; i++) {
        if (imp->parts[i].state != SHP_PART_OPEN) {
            set_part_state(imp, i, SHP_PART_READY);
        }
        if (imp->parts[i].fix) {
            /* a search under way starts again from the whole part */
            imp->parts[i].fix->probe.active = false;
            imp->parts[i].fix->probe.n = 0;
        }
    }
    imp->first_ready = 0;
    s->stats.imports_recreated++;
}

void shp_imp_fallback_merge(struct shp_dest *s, struct shp_import *imp)
{
    imp->mode_replace = false;
    switch (imp->state) {
    case SHP_IMP_NEW:
        break;
    case SHP_IMP_CREATING:
        imp->fallback_pending = true;
        break;
    default:
        abort_remote(s, imp->id, "the replace import is not committed without COMPLETE");
        recreate(s, imp, "replace not confirmed, loading in merge mode", true);
        break;
    }
}

/* ---- creation -------------------------------------------------------------- */

static void submit_create(struct shp_dest *s, struct shp_import *imp)
{
    struct ab_error e;
    struct ab_buf body;
    struct ab_buf url;
    struct ab_http_req *r;
    char label[SHP_LABEL_MAX + 1];
    char key[SHP_KEY_SIZE];
    char hdr[SHP_KEY_SIZE + 32];
    char what[64];
    enum ab_status rc;
    unsigned i;
    bool first = true;

    ab_error_init(&e);
    ab_buf_init(&body, 65536);
    ab_buf_init(&url, 4096);
    rc = shp_label(label, sizeof(label), s->cfg.label_prefix, s->sync_ident, imp->seq, &e);
    if (rc == AB_OK) {
        rc = ab_buf_adds(&body, "{\"channel\":", &e);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(&body, s->cfg.channel, &e);
    }
    if (rc == AB_OK) {
        rc = ab_buf_printf(&body, &e, ",\"mode\":\"%s\",\"objects\":[",
                           imp->mode_replace ? "replace" : "merge");
    }
    for (i = 0; rc == AB_OK && i < SHP_NOBJ; i++) {
        if (imp->objects & (1U << i)) {
            rc = ab_buf_printf(&body, &e, "%s\"%s\"", first ? "" : ",", shp_object_name(i));
            first = false;
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&body, "],\"label\":", &e);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(&body, label, &e);
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(&body, '}', &e);
    }
    if (rc == AB_OK) {
        rc = ab_buf_printf(&url, &e, "%s/v1/imports", s->cfg.api_url);
    }
    if (rc != AB_OK) {
        ab_buf_release(&body);
        ab_buf_release(&url);
        shp_fail(s, &e);
        return;
    }
    (void)snprintf(what, sizeof(what), "POST /v1/imports (#%llu)", (unsigned long long)imp->seq);
    r = json_req("POST", url.data, &body, what, &e);
    ab_buf_release(&url);
    if (!r) {
        shp_fail(s, &e);
        return;
    }
    shp_idempotency_key(key, s->cfg.label_prefix, s->sync_ident, s->run_id, imp->seq);
    (void)snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s", key);
    if (ab_http_req_header(r, hdr, &e) != AB_OK) {
        ab_http_req_free(r);
        shp_fail(s, &e);
        return;
    }
    if (submit(s, r, SHP_REQ_CREATE, imp, 0, NULL)) {
        shp_imp_set_state(s, imp, SHP_IMP_CREATING, "creation sent");
        AB_DEBUG(s->em, "creating import '%s' (mode %s)", label,
                 imp->mode_replace ? "replace" : "merge");
    }
}

static void on_create(struct shp_dest *s, struct shp_import *imp, const struct shp_req *q,
                      const struct ab_http_resp *resp, yajl_val body)
{
    const char *id;
    const char *status;

    if (resp->status != 200 && resp->status != 201) {
        fail_http(s, "cannot create an import", resp, body);
        return;
    }
    id = ab_json_get_str(body, "import_id", NULL);
    status = ab_json_get_str(body, "status", "open");
    if (!id || !*id || strlen(id) >= sizeof(imp->id)) {
        fail_msg(s, AB_ERR_PROTOCOL, "POST /v1/imports answered without a usable import_id");
        return;
    }
    (void)snprintf(imp->id, sizeof(imp->id), "%s", id);
    if (strcmp(status, "open") != 0) {
        /* A replayed creation whose import is gone meanwhile. */
        if (shp_resolve_decide(status) == SHP_NEXT_RECREATE) {
            recreate(s, imp, "the replayed creation returned a closed import", true);
        } else {
            fail_msg(s, AB_ERR_PROTOCOL, "new import %s has status '%s', not 'open'", id, status);
        }
        return;
    }
    shp_imp_set_state(s, imp, SHP_IMP_OPEN, "created");
    s->stats.imports_created++;
    /* A pending fallback means it was sent as a replace import. */
    AB_INFO(s->em, "import %s created (mode %s%s)", imp->id,
            imp->mode_replace || imp->fallback_pending ? "replace" : "merge",
            q->replayed ? ", replayed" : "");
    if (imp->fallback_pending) {
        imp->fallback_pending = false;
        abort_remote(s, imp->id, "the replace import is not committed without COMPLETE");
        recreate(s, imp, "replace not confirmed, loading in merge mode", true);
    }
}

/* ---- parts ----------------------------------------------------------------- */

/* The header of a spooled record (in rec), checked against its length. */
static enum ab_status spooled_meta(const struct ab_buf *rec, struct shp_rec_meta *meta,
                                   struct ab_error *err)
{
    if (rec->len < SHP_REC_HEADER) {
        return ab_error_set(err, AB_ERR_INTERNAL, "spool record shorter than its header");
    }
    shp_rec_header_decode((const unsigned char *)rec->data, meta);
    if (meta->item_len > rec->len - SHP_REC_HEADER) {
        return ab_error_set(err, AB_ERR_INTERNAL, "spool record shorter than its item");
    }
    return AB_OK;
}

/* The body of part pi into body: each item copied from the spool straight
 * into its place (where the record lies in one RAM chunk, from there;
 * otherwise the header read first, then the item's bytes alone). */
static enum ab_status part_body(struct shp_dest *s, struct shp_import *imp, size_t pi,
                                struct ab_buf *body, struct ab_error *e)
{
    struct shp_part *p = &imp->parts[pi];
    struct ab_spool *sp = imp->spool[p->obj];
    const struct shp_probe *probe = part_probe(imp, pi);
    uint64_t off = p->first;
    enum ab_status rc;
    uint32_t k;
    uint32_t n = 0;

    (void)s;
    rc = shp_part_body_begin(body, shp_object_name(p->obj), e);
    if (rc == AB_OK && p->bytes > body->len) {
        rc = ab_buf_reserve(body, p->bytes - body->len, e); /* the whole part: no growth */
    }
    for (k = 0; rc == AB_OK && k < p->count; k++) {
        unsigned char hdr[SHP_REC_HEADER];
        struct shp_rec_meta meta;
        const char *rec = NULL;
        size_t len = 0;
        uint64_t next = 0;
        char *at;

        if (ab_spool_peek(sp, off, &rec, &len, &next) && len >= SHP_REC_HEADER) {
            memcpy(hdr, rec, sizeof(hdr));
        } else {
            rec = NULL;
            rc = ab_spool_read_at(sp, off, 0, hdr, sizeof(hdr), &len, &next, e);
            if (rc != AB_OK) {
                break;
            }
        }
        if (!(p->fix && shp_leftout_has(&p->fix->out, k)) && shp_probe_includes(probe, k)) {
            /* (a left-out record was refused by the target: dead-lettered) */
            shp_rec_header_decode(hdr, &meta);
            if (meta.item_len > len - SHP_REC_HEADER) {
                rc = ab_error_set(e, AB_ERR_INTERNAL, "spool record shorter than its item");
                break;
            }
            rc = shp_part_body_room(body, n == 0, meta.item_len, &at, e);
            if (rc == AB_OK && rec) {
                memcpy(at, rec + SHP_REC_HEADER, meta.item_len);
            } else if (rc == AB_OK) {
                rc = ab_spool_read_at(sp, off, SHP_REC_HEADER, at, meta.item_len, NULL, NULL, e);
            }
            n++;
        }
        off = next;
    }
    if (rc == AB_OK) {
        rc = shp_part_body_end(body, e);
    }
    AB_ASSERT(rc != AB_OK || n > 0);
    if (rc == AB_OK && !p->fix && body->len != p->bytes) {
        rc = ab_error_set(e, AB_ERR_INTERNAL, "part %zu body is %zu bytes, %zu were counted",
                          pi + 1, body->len, p->bytes);
    }
    return rc;
}

/* A dry run: a sealed import is reported part by part instead of being
 * created, uploaded and committed, and counts as committed at once. */
static void dry_import(struct shp_dest *s, struct shp_import *imp)
{
    struct ab_error e;
    char label[96];

    ab_error_init(&e);
    for (size_t pi = 0; pi < imp->nparts; pi++) {
        struct ab_buf *body = body_take(s);
        enum ab_status rc;

        if (!body) {
            fail_msg(s, AB_ERR_NOMEM, "out of memory (part body)");
            return;
        }
        rc = part_body(s, imp, pi, body, &e);
        if (rc == AB_OK) {
            (void)snprintf(label, sizeof(label), "PUT /v1/imports/{import #%llu}/parts/%zu",
                           (unsigned long long)imp->serial, pi + 1);
            ab_driver_dry_request(s->d, shp_object_name(imp->parts[pi].obj),
                                  imp->mode_replace ? "replace import part" : "import part", label,
                                  imp->parts[pi].count, body->data, body->len);
        }
        body_give(s, body);
        if (rc != AB_OK) {
            shp_fail(s, &e);
            return;
        }
    }
    s->stats.imports_committed++;
    ab_ckpt_unit_done(s->ck, imp->unit);
    unlink_import(s, imp);
    shp_imp_free(imp);
}

static void submit_part(struct shp_dest *s, struct shp_import *imp, size_t pi)
{
    struct ab_error e;
    struct ab_buf *body = body_take(s);
    struct ab_http_req *r = NULL;
    char label[SHP_ID_MAX + 64];
    enum ab_status rc;

    ab_error_init(&e);
    if (!body) {
        fail_msg(s, AB_ERR_NOMEM, "out of memory (part body)");
        return;
    }
    rc = part_body(s, imp, pi, body, &e);
    if (rc == AB_OK) {
        char suffix[32];

        (void)snprintf(suffix, sizeof(suffix), "/parts/%zu", pi + 1);
        (void)snprintf(label, sizeof(label), "PUT %s part %zu", imp->id, pi + 1);
        r = import_req(s, "PUT", imp->id, suffix, NULL, label, &e);
        if (!r) {
            rc = e.code;
        } else {
            /* the request points at the body, kept with its context */
            rc = ab_http_req_body_ref(r, body->data, body->len, "application/json", &e);
        }
    }
    if (rc != AB_OK) {
        ab_http_req_free(r);
        body_give(s, body);
        shp_fail(s, &e);
        return;
    }
    if (s->cfg.gzip) {
        ab_http_req_flags(r, AB_HTTP_GZIP);
    }
    if (submit_body(s, r, SHP_REQ_PART, imp, pi, imp->id, body)) {
        set_part_state(imp, pi, SHP_PART_UPLOADING);
        s->uploads_inflight++;
    }
}

static void pump_uploads(struct shp_dest *s, struct shp_import *imp)
{
    size_t i;

    while (imp->first_ready < imp->nparts && imp->parts[imp->first_ready].state != SHP_PART_READY) {
        imp->first_ready++;
    }
    for (i = imp->first_ready; i < imp->nparts && imp->nready > 0 && !s->failed; i++) {
        if (s->uploads_inflight >= s->cfg.max_in_flight) {
            return;
        }
        if (imp->parts[i].state == SHP_PART_READY) {
            submit_part(s, imp, i);
        }
    }
}

struct rej {
    uint64_t part;
    uint64_t index;
    yajl_val entry;
};

static int rej_cmp(const void *a, const void *b)
{
    const struct rej *x = a;
    const struct rej *y = b;

    if (x->part != y->part) {
        return x->part < y->part ? -1 : 1;
    }
    if (x->index != y->index) {
        return x->index < y->index ? -1 : 1;
    }
    return 0;
}

/* The errors array of a rejection as JSON text into out. */
static enum ab_status rejection_errors(yajl_val entry, struct ab_buf *out, struct ab_error *err)
{
    yajl_val errs = ab_json_get(entry, "errors");
    enum ab_status rc;

    ab_buf_reset(out);
    if (YAJL_IS_ARRAY(errs) && errs->u.array.len > 0) {
        return ab_json_write(out, errs, err);
    }
    rc = ab_buf_adds(out, "[{\"field\":null,\"code\":", err);
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(out, ab_json_get_str(entry, "code", "rejected"), err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(out, ",\"message\":\"rejected by the target without details\"}]", err);
    }
    return rc;
}

static bool has_error_code(yajl_val entry, const char *code)
{
    yajl_val errs = ab_json_get(entry, "errors");
    size_t i;

    if (strcmp(ab_json_get_str(entry, "code", ""), code) == 0) {
        return true;
    }
    for (i = 0; YAJL_IS_ARRAY(errs) && i < errs->u.array.len; i++) {
        if (strcmp(ab_json_get_str(errs->u.array.values[i], "code", ""), code) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * Whether a commit-time unknown_sku of imp may be a product that only the
 * pending replace import holds (mixed sync: overwrite products, append
 * inventory): then the record waits for the replace commit instead of being
 * rejected.
 */
static bool may_defer(const struct shp_dest *s, const struct shp_import *imp)
{
    return s->replace_imp && !imp->replace_track && imp != s->deferred &&
           (s->replace_imp->objects & (1U << SHP_PRODUCTS)) != 0;
}

/* Moves a spooled record (header + item in rec) into the deferred import:
 * it joins that import's checkpoint unit before its own unit is done, so
 * the states covering it stay held. */
static enum ab_status defer_record(struct shp_dest *s, unsigned obj, const struct ab_buf *rec,
                                   struct ab_error *err)
{
    struct shp_rec_meta meta;

    if (!s->deferred || s->deferred->sealed) {
        s->deferred = shp_imp_new(s, false, err);
        if (!s->deferred) {
            return err->code;
        }
    }
    if (spooled_meta(rec, &meta, err) != AB_OK) {
        return err->code;
    }
    s->stats.deferred++;
    return shp_imp_add(s, s->deferred, obj, &meta, rec->data + SHP_REC_HEADER, meta.item_len,
                       rec->data + SHP_REC_HEADER + meta.item_len,
                       rec->len - SHP_REC_HEADER - meta.item_len, err);
}

void shp_seal_deferred(struct shp_dest *s)
{
    if (s->deferred && !s->deferred->sealed) {
        if (s->deferred->records == 0) {
            shp_imp_drop_empty(s, s->deferred);
        } else {
            shp_imp_seal(s, s->deferred);
        }
    }
}

/*
 * Dead-letters the rejections r[0..n) of part pi (sorted by index): walks
 * the part's records in the spool once. Returns the driver's status (an
 * error under the "fail" policy).
 */
static enum ab_status reject_in_part(struct shp_dest *s, struct shp_import *imp, size_t pi,
                                     const struct rej *r, size_t n, bool defer, uint64_t *counter,
                                     struct ab_error *err)
{
    struct shp_part *p = &imp->parts[pi];
    struct ab_spool *sp = imp->spool[p->obj];
    struct ab_buf errs;
    uint64_t off = p->first;
    enum ab_status rc = AB_OK;
    size_t j = 0;
    uint32_t k;
    uint32_t sent = 0; /* the target's index of record k: records not left out before it */

    ab_buf_init(&errs, AB_BUF_UNBOUNDED);
    for (k = 0; rc == AB_OK && k < p->count && j < n; k++) {
        struct shp_rec_meta meta;
        uint32_t index = sent;

        rc = ab_spool_read(sp, off, &s->scratch, &off, err);
        if (p->fix && shp_leftout_has(&p->fix->out, k)) {
            continue;
        }
        sent++;
        if (rc != AB_OK || r[j].index != index) {
            continue;
        }
        rc = spooled_meta(&s->scratch, &meta, err);
        if (rc != AB_OK) {
            break;
        }
        if (defer && has_error_code(r[j].entry, "unknown_sku")) {
            rc = defer_record(s, p->obj, &s->scratch, err);
            imp->deferred++;
            while (j < n && r[j].index == index) {
                j++;
            }
            continue;
        }
        while (rc == AB_OK && j < n && r[j].index == index) {
            rc = rejection_errors(r[j].entry, &errs, err);
            if (rc == AB_OK && meta.stream < s->nstreams) {
                const char *item = s->scratch.data + SHP_REC_HEADER;
                size_t rlen = s->scratch.len - SHP_REC_HEADER - meta.item_len;
                struct ab_rejection rj = {.stream = meta.stream,
                                          .seq = meta.seq,
                                          .lineno = meta.lineno,
                                          .rejected_by = "target",
                                          .received = rlen ? item + meta.item_len : item,
                                          .received_len = rlen ? rlen : meta.item_len,
                                          .sent = item,
                                          .sent_len = meta.item_len,
                                          .errors_json = errs.data,
                                          .mapping = s->streams[meta.stream].map};

                rc = ab_driver_reject_ex(s->d, &rj, err);
                if (rc == AB_OK) {
                    (*counter)++;
                    p->rejected++;
                    imp->rejected++;
                }
            }
            j++;
        }
    }
    if (rc == AB_OK && j < n) {
        AB_WARN(s->em, "import %s part %zu: %zu rejection(s) name items beyond its %u items",
                imp->id, pi + 1, n - j, (unsigned)part_items(p));
    }
    ab_buf_release(&errs);
    return rc;
}

/* Collects {part, index} rejections of a rejected[] array (part 0: the
 * given default part) and dead-letters them grouped by part. */
static enum ab_status reject_list(struct shp_dest *s, struct shp_import *imp, yajl_val arr,
                                  size_t default_part, uint64_t *counter, struct ab_error *err)
{
    bool defer = default_part == 0 && may_defer(s, imp);
    struct rej *r;
    size_t n = 0;
    size_t i;
    size_t j;
    enum ab_status rc = AB_OK;

    if (!YAJL_IS_ARRAY(arr) || arr->u.array.len == 0) {
        return AB_OK;
    }
    r = calloc(arr->u.array.len, sizeof(*r));
    if (!r) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (rejections)");
    }
    for (i = 0; i < arr->u.array.len; i++) {
        yajl_val e = arr->u.array.values[i];
        int64_t part = default_part ? (int64_t)default_part : ab_json_get_int(e, "part", -1);
        int64_t index = ab_json_get_int(e, "index", -1);

        if (part < 1 || (uint64_t)part > imp->nparts || index < 0) {
            AB_WARN(s->em, "import %s: a rejection names no known item (part %lld, index %lld)",
                    imp->id, (long long)part, (long long)index);
            continue;
        }
        r[n].part = (uint64_t)part;
        r[n].index = (uint64_t)index;
        r[n].entry = e;
        n++;
    }
    qsort(r, n, sizeof(*r), rej_cmp);
    for (i = 0; rc == AB_OK && i < n; i = j) {
        for (j = i; j < n && r[j].part == r[i].part; j++) {
        }
        rc = reject_in_part(s, imp, (size_t)(r[i].part - 1), r + i, j - i, defer, counter, err);
    }
    free(r);
    return rc;
}

/* ---- parts refused as a whole ------------------------------------------------ */

#define MAX_PART_SEARCHES 3

/* Dead-letters record k of part pi, which the target refuses even alone,
 * with the part's last refusal, and leaves it out of the part. */
static enum ab_status leave_out(struct shp_dest *s, struct shp_import *imp, size_t pi, uint32_t k,
                                struct ab_error *err)
{
    struct shp_part *p = &imp->parts[pi];
    struct shp_part_fix *fix = p->fix;
    struct ab_buf errs;
    struct shp_rec_meta meta;
    uint64_t off = p->first;
    enum ab_status rc = AB_OK;
    uint32_t i;
    char text[128];

    for (i = 0; rc == AB_OK && i <= k; i++) {
        rc = ab_spool_read(imp->spool[p->obj], off, &s->scratch, &off, err);
    }
    if (rc == AB_OK) {
        rc = spooled_meta(&s->scratch, &meta, err);
    }
    if (rc != AB_OK) {
        return rc;
    }
    rc = shp_leftout_add(&fix->out, k, err);
    if (rc != AB_OK) {
        return rc;
    }
    (void)snprintf(text, sizeof(text), "Shops refused a part holding only this item (HTTP %d)",
                   fix->status);
    ab_buf_init(&errs, AB_BUF_UNBOUNDED);
    rc = ab_buf_adds(&errs, "[{\"field\":", err);
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(&errs, fix->field[0] ? fix->field : "$", err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&errs, ",\"code\":", err);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(&errs, fix->code[0] ? fix->code : "refused", err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&errs, ",\"message\":", err);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(&errs, fix->message[0] ? fix->message : text, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&errs, "}]", err);
    }
    if (rc == AB_OK && meta.stream < s->nstreams) {
        const char *item = s->scratch.data + SHP_REC_HEADER;
        size_t rlen = s->scratch.len - SHP_REC_HEADER - meta.item_len;
        struct ab_rejection rj = {.stream = meta.stream,
                                  .seq = meta.seq,
                                  .lineno = meta.lineno,
                                  .rejected_by = "target",
                                  .received = rlen ? item + meta.item_len : item,
                                  .received_len = rlen ? rlen : meta.item_len,
                                  .sent = item,
                                  .sent_len = meta.item_len,
                                  .errors_json = errs.data,
                                  .mapping = s->streams[meta.stream].map};

        AB_WARN(s->em,
                "import %s part %zu: Shops refuses item %u (line %llu) even alone (HTTP %d %s): "
                "it is left out of the part and dead-lettered",
                imp->id, pi + 1, (unsigned)k, (unsigned long long)meta.lineno, fix->status,
                fix->code);
        rc = ab_driver_reject_ex(s->d, &rj, err);
        if (rc == AB_OK) {
            s->stats.rejected_upload++;
            s->stats.rejected_whole++;
            p->rejected++;
            imp->rejected++;
        }
    }
    ab_buf_release(&errs);
    return rc;
}

/* Part pi (READY) holds no item any more: it goes, and the parts after it
 * move down one number, as part numbers must be 1..count at the commit.
 * When one of those was sent already, the server holds it under its old
 * number: the import is aborted and created again. */
static void drop_part(struct shp_dest *s, struct shp_import *imp, size_t pi)
{
    bool sent_after = false;
    size_t i;
    unsigned o;

    AB_ASSERT(imp->parts[pi].state == SHP_PART_READY);
    for (i = pi + 1; i < imp->nparts; i++) {
        sent_after |=
            imp->parts[i].state == SHP_PART_UPLOADING || imp->parts[i].state == SHP_PART_UPLOADED;
    }
    imp->nready--;
    part_fix_free(imp->parts[pi].fix);
    memmove(imp->parts + pi, imp->parts + pi + 1, (imp->nparts - pi - 1) * sizeof(*imp->parts));
    imp->nparts--;
    for (o = 0; o < SHP_NOBJ; o++) {
        if (imp->open_part[o] != SHP_NO_PART && imp->open_part[o] > pi) {
            imp->open_part[o]--;
        }
    }
    imp->first_ready = 0;
    s->stats.parts_dropped++;
    AB_INFO(s->em,
            "import %s: part %zu held only refused items: dropped, %zu parts after it move "
            "down one number",
            imp->id, pi + 1, imp->nparts - pi);
    if (sent_after) {
        abort_remote(s, imp->id, "parts renumbered after a part was dropped");
        recreate(s, imp, "a part held only refused items and parts after it were sent", false);
    }
}

/* Advances the search of part pi (READY): leaves out the records found,
 * then either a subset goes next, or the part without them, or the part is
 * dropped. */
static void search_advance(struct shp_dest *s, struct shp_import *imp, size_t pi)
{
    struct shp_part *p = &imp->parts[pi];
    struct ab_error e;
    enum shp_probe_step step;
    uint32_t k = 0;

    ab_error_init(&e);
    while ((step = shp_probe_next(&p->fix->probe, &p->fix->out, &k)) == SHP_PROBE_ISOLATED) {
        if (leave_out(s, imp, pi, k, &e) != AB_OK) {
            shp_fail(s, &e);
            return;
        }
    }
    if (step == SHP_PROBE_SEND) {
        s->stats.parts_probes++;
        AB_DEBUG(s->em, "import %s part %zu: uploading records %u..%u of it alone", imp->id, pi + 1,
                 (unsigned)p->fix->probe.cur.lo, (unsigned)p->fix->probe.end - 1);
    } else if (part_items(p) == 0) {
        drop_part(s, imp, pi);
    }
}

/* The upload of part pi (q) was refused as a whole. */
static void part_refused(struct shp_dest *s, struct shp_import *imp, const struct shp_req *q,
                         const struct ab_http_resp *resp, yajl_val body)
{
    size_t pi = q->part;
    struct shp_part *p = &imp->parts[pi];
    struct shp_part_fix *fix = p->fix;
    yajl_val eobj = ab_json_get(body, "error");

    if (!fix) {
        fix = calloc(1, sizeof(*fix));
        if (!fix) {
            fail_msg(s, AB_ERR_NOMEM, "out of memory (part %zu refused as a whole)", pi + 1);
            return;
        }
        p->fix = fix;
    }
    fix->status = resp->status;
    (void)snprintf(fix->code, sizeof(fix->code), "%s", shp_error_code(body));
    (void)snprintf(fix->field, sizeof(fix->field), "%s", ab_json_get_str(eobj, "field", ""));
    (void)snprintf(fix->message, sizeof(fix->message), "%s", ab_json_get_str(eobj, "message", ""));
    set_part_state(imp, pi, SHP_PART_READY);
    if (q->probe) {
        shp_probe_answer(&fix->probe, true);
    } else {
        if (++fix->searches > MAX_PART_SEARCHES) {
            fail_msg(s, AB_ERR_PROTOCOL,
                     "import %s: Shops refused part %zu as a whole again (HTTP %d %s) after %d "
                     "searches for the items it refuses",
                     imp->id, pi + 1, resp->status, fix->code, MAX_PART_SEARCHES);
            return;
        }
        s->stats.parts_refused++;
        AB_WARN(s->em,
                "import %s: Shops refused part %zu of %u items as a whole (HTTP %d %s): uploading "
                "parts of it to find the items it refuses",
                imp->id, pi + 1, (unsigned)part_items(p), resp->status, fix->code);
        shp_probe_start(&fix->probe, p->count);
    }
    search_advance(s, imp, pi);
}

static void on_part(struct shp_dest *s, struct shp_import *imp, const struct shp_req *q,
                    const struct ab_http_resp *resp, yajl_val body)
{
    bool stale = !imp || q->gen != imp->gen;
    struct shp_part *p = imp && q->part < imp->nparts ? &imp->parts[q->part] : NULL;
    char what[SHP_ID_MAX + 64];

    if (stale) {
        /* about an import's earlier incarnation, whose parts may have been
         * numbered otherwise: the new one reports its own answers */
        return;
    }
    if (p && q->probe) {
        /* a subset of a part refused as a whole */
        if (resp->status == 200) {
            set_part_state(imp, q->part, SHP_PART_READY);
            shp_probe_answer(&p->fix->probe, false);
            search_advance(s, imp, q->part);
            return;
        }
        if (shp_part_refused_whole(resp->status, resp->transient, shp_error_code(body), 1)) {
            part_refused(s, imp, q, resp, body);
            return;
        }
    }
    if (resp->status == 200) {
        if (p && !p->reported) {
            struct ab_error e;

            ab_error_init(&e);
            p->reported = true;
            if (reject_list(s, imp, ab_json_get(body, "rejected"), q->part + 1,
                            &s->stats.rejected_upload, &e) != AB_OK) {
                shp_fail(s, &e);
                return;
            }
        }
        if (p) {
            p->accepted = (uint32_t)ab_json_get_int(body, "accepted", 0);
            set_part_state(imp, q->part, SHP_PART_UPLOADED);
            s->stats.parts_uploaded++;
        }
        return;
    }
    if (p && shp_part_refused_whole(resp->status, resp->transient, shp_error_code(body),
                                    part_items(p))) {
        part_refused(s, imp, q, resp, body);
        return;
    }
    if (resp->status == 410) {
        char why[128];

        (void)snprintf(why, sizeof(why), "part upload answered 410 %s", shp_error_code(body));
        recreate(s, imp, why, true);
        return;
    }
    if (resp->status == 413 && p) {
        fail_msg(s, AB_ERR_CONFIG,
                 "Shops refused part %zu of import %s (%u items) as too large (HTTP "
                 "413 %s): its limit is below the configured one; lower part_max_bytes or "
                 "part_max_items",
                 q->part + 1, q->id, (unsigned)part_items(p), shp_error_code(body));
        return;
    }
    (void)snprintf(what, sizeof(what), "cannot upload part %zu of import %s", q->part + 1, q->id);
    fail_http(s, what, resp, body);
}

/* ---- commit ---------------------------------------------------------------- */

/* Every part uploaded, and every import sealed before it is committed. */
static bool commit_ready(const struct shp_dest *s, const struct shp_import *imp)
{
    const struct shp_import *o;
    size_t i;

    if (imp->nready > 0) {
        return false;
    }
    for (i = 0; i < imp->nparts; i++) {
        if (imp->parts[i].state != SHP_PART_UPLOADED) {
            return false;
        }
    }
    for (o = s->imports; o; o = o->next) {
        if (o != imp && o->sealed && o->seal_no < imp->seal_no) {
            return false;
        }
    }
    return true;
}

static void submit_commit(struct shp_dest *s, struct shp_import *imp)
{
    struct ab_error e;
    struct ab_buf body;
    struct ab_http_req *r = NULL;
    char label[SHP_ID_MAX + 32];
    enum ab_status rc;

    ab_error_init(&e);
    ab_buf_init(&body, SHP_CHECKPOINT_MAX * 8 + 256);
    rc = ab_buf_printf(&body, &e, "{\"parts\":%zu", imp->nparts);
    if (rc == AB_OK && imp->checkpoint) {
        rc = ab_buf_adds(&body, ",\"checkpoint\":", &e);
        if (rc == AB_OK) {
            rc = ab_json_write_str(&body, imp->checkpoint, imp->checkpoint_len, &e);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(&body, '}', &e);
    }
    if (rc == AB_OK) {
        (void)snprintf(label, sizeof(label), "POST %s commit", imp->id);
        r = import_req(s, "POST", imp->id, "/commit", &body, label, &e);
        if (!r) {
            rc = e.code;
        }
    }
    ab_buf_release(&body);
    if (rc != AB_OK) {
        shp_fail(s, &e);
        return;
    }
    /* A commit whose answer is lost is not retried blindly: the import's
     * status tells what happened (GET /v1/imports/{id}). */
    ab_http_req_flags(r, AB_HTTP_NO_RETRY_IN_DOUBT);
    if (submit(s, r, SHP_REQ_COMMIT, imp, 0, imp->id)) {
        shp_imp_set_state(s, imp, SHP_IMP_COMMITTING, "commit sent");
        AB_INFO(s->em, "committing import %s (%s): %llu records in %zu parts", imp->id,
                imp->mode_replace ? "replace" : "merge", (unsigned long long)imp->records,
                imp->nparts);
    }
}

static void submit_get(struct shp_dest *s, struct shp_import *imp)
{
    struct ab_error e;
    struct ab_http_req *r;
    char label[SHP_ID_MAX + 32];

    ab_error_init(&e);
    (void)snprintf(label, sizeof(label), "GET import %s", imp->id);
    r = import_req(s, "GET", imp->id, "", NULL, label, &e);
    if (!r) {
        shp_fail(s, &e);
        return;
    }
    if (submit(s, r, SHP_REQ_GET, imp, 0, imp->id)) {
        shp_imp_set_state(s, imp, SHP_IMP_RESOLVING, "status request sent");
    }
}

static uint64_t object_count(yajl_val o, unsigned obj)
{
    int64_t n = ab_json_get_int(o, shp_object_name(obj), 0);

    return n > 0 ? (uint64_t)n : 0;
}

static void commit_done(struct shp_dest *s, struct shp_import *imp, yajl_val body, bool replayed)
{
    struct ab_error e;
    uint64_t applied[SHP_NOBJ];
    uint64_t unchanged[SHP_NOBJ];
    uint64_t deactivated[SHP_NOBJ];
    uint64_t before = s->stats.rejected_commit;
    unsigned i;

    ab_error_init(&e);
    if (!YAJL_IS_OBJECT(body)) {
        fail_msg(s, AB_ERR_PROTOCOL, "the commit of import %s answered 200 without a JSON body",
                 imp->id);
        return;
    }
    if (reject_list(s, imp, ab_json_get(body, "rejected"), 0, &s->stats.rejected_commit, &e) !=
        AB_OK) {
        shp_fail(s, &e);
        return;
    }
    for (i = 0; i < SHP_NOBJ; i++) {
        applied[i] = object_count(ab_json_get(body, "applied"), i);
        unchanged[i] = object_count(ab_json_get(body, "unchanged"), i);
        deactivated[i] = object_count(ab_json_get(body, "deactivated"), i);
        s->stats.applied[i] += applied[i];
        s->stats.unchanged[i] += unchanged[i];
        s->stats.deactivated[i] += deactivated[i];
    }
    s->stats.imports_committed++;
    if (imp->replace_track) {
        s->replace_outcome_known = true;
        s->replace_applied = imp->mode_replace;
    }
    AB_INFO(s->em,
            "import %s committed%s (%s): products applied %llu, unchanged %llu, deactivated "
            "%llu; inventory applied %llu, unchanged %llu, deactivated %llu; %llu rejected at "
            "commit",
            imp->id, replayed ? " (stored result)" : "", imp->mode_replace ? "replace" : "merge",
            (unsigned long long)applied[0], (unsigned long long)unchanged[0],
            (unsigned long long)deactivated[0], (unsigned long long)applied[1],
            (unsigned long long)unchanged[1], (unsigned long long)deactivated[1],
            (unsigned long long)(s->stats.rejected_commit - before));
    if (s->final) {
        shp_seal_deferred(s); /* records deferred after the final flush */
    }
    ab_driver_add_committed(s->d, imp->records > imp->rejected + imp->deferred
                                      ? imp->records - imp->rejected - imp->deferred
                                      : 0);
    /* Only now may the states covering these records go out. */
    ab_ckpt_unit_done(s->ck, imp->unit);
    shp_imp_set_state(s, imp, SHP_IMP_COMMITTED, "commit confirmed");
    unlink_import(s, imp);
    shp_imp_free(imp);
}

static void wait_then_ask(struct shp_dest *s, struct shp_import *imp, long retry_after_ms)
{
    long ms;

    if (++imp->resolve_rounds > MAX_RESOLVE_ROUNDS) {
        fail_msg(s, AB_ERR_TRANSIENT, "import %s is still committing after %d status checks",
                 imp->id, MAX_RESOLVE_ROUNDS);
        return;
    }
    ms = shp_wait_ms(imp->resolve_rounds, retry_after_ms);
    shp_imp_set_state(s, imp, SHP_IMP_WAIT, "a commit runs on the server");
    imp->wait_until_us = ab_now_us() + (int64_t)ms * 1000;
    shp_wake_at(s, imp->wait_until_us);
    AB_INFO(s->em, "import %s: a commit is running; asking again in %ld ms", imp->id, ms);
}

static bool mark_missing(struct shp_import *imp, yajl_val body)
{
    yajl_val m = ab_json_get(body, "missing");
    size_t i;
    bool any = false;

    if (!YAJL_IS_ARRAY(m)) {
        m = ab_json_get(ab_json_get(body, "error"), "missing");
    }
    if (!YAJL_IS_ARRAY(m)) {
        return false;
    }
    for (i = 0; i < m->u.array.len; i++) {
        int64_t n;

        if (ab_json_int(m->u.array.values[i], &n) && n >= 1 && (uint64_t)n <= imp->nparts) {
            set_part_state(imp, (size_t)(n - 1), SHP_PART_READY);
            any = true;
        }
    }
    return any;
}

static void on_commit(struct shp_dest *s, struct shp_import *imp, const struct shp_req *q,
                      const struct ab_http_resp *resp, yajl_val body)
{
    const char *code = shp_error_code(body);
    enum shp_next next = shp_commit_decide(resp->status, resp->transient, code);
    char what[SHP_ID_MAX + 64];

    switch (next) {
    case SHP_NEXT_DONE:
        commit_done(s, imp, body, q->replayed);
        return;
    case SHP_NEXT_RESOLVE:
        s->stats.commits_in_doubt++;
        if (resp->status == 409) {
            wait_then_ask(s, imp, resp->retry_after_ms);
            return;
        }
        if (++imp->resolve_rounds > MAX_RESOLVE_ROUNDS) {
            fail_msg(s, AB_ERR_TRANSIENT, "commit of import %s: no answer after %d attempts",
                     imp->id, MAX_RESOLVE_ROUNDS);
            return;
        }
        AB_WARN(s->em, "commit of import %s: %s%s: the outcome is unknown, asking the API", imp->id,
                resp->status ? "HTTP " : "",
                resp->status ? (resp->status >= 500 ? "5xx after retries" : "error") : resp->error);
        submit_get(s, imp);
        return;
    case SHP_NEXT_UPLOAD_MISSING:
        if (++imp->missing_rounds > MAX_MISSING_ROUNDS || !mark_missing(imp, body)) {
            fail_msg(s, AB_ERR_PROTOCOL, "commit of import %s: parts reported missing again",
                     imp->id);
            return;
        }
        AB_WARN(s->em, "commit of import %s: parts missing on the server: uploading them again",
                imp->id);
        imp->first_ready = 0;
        shp_imp_set_state(s, imp, SHP_IMP_OPEN, "parts missing on the server");
        return;
    case SHP_NEXT_RECREATE:
        recreate(s, imp, "the commit answered 410 (expired or aborted)", true);
        return;
    default:
        break;
    }
    (void)snprintf(what, sizeof(what), "cannot commit import %s", imp->id);
    fail_http(s, what, resp, body);
}

static void on_get(struct shp_dest *s, struct shp_import *imp, const struct ab_http_resp *resp,
                   yajl_val body)
{
    const char *status;
    enum shp_next next;
    char what[SHP_ID_MAX + 64];

    if (resp->status != 200) {
        (void)snprintf(what, sizeof(what), "cannot read the status of import %s", imp->id);
        fail_http(s, what, resp, body);
        return;
    }
    status = ab_json_get_str(body, "status", NULL);
    next = shp_resolve_decide(status);
    AB_INFO(s->em, "import %s is '%s': %s", imp->id, status ? status : "?", shp_next_name(next));
    switch (next) {
    case SHP_NEXT_FETCH_RESULT:
    case SHP_NEXT_COMMIT:
        submit_commit(s, imp);
        break;
    case SHP_NEXT_WAIT:
        wait_then_ask(s, imp, -1);
        break;
    case SHP_NEXT_RECREATE:
        recreate(s, imp, status, true);
        break;
    default:
        fail_msg(s, AB_ERR_PROTOCOL, "import %s has an unexpected status '%s'", imp->id,
                 status ? status : "(none)");
        break;
    }
}

static void on_abort(struct shp_dest *s, const struct shp_req *q, const struct ab_http_resp *resp,
                     yajl_val body)
{
    if (resp->status == 200) {
        AB_INFO(s->em, "import %s aborted", q->id);
    } else {
        AB_WARN(s->em,
                "cannot abort import %s (HTTP %d %s%s): it stays open until it expires or the "
                "next run aborts it",
                q->id, resp->status, shp_error_code(body), resp->status ? "" : resp->error);
    }
}

/*
 * The client already fetched a new token and retried once after a 401
 * token_expired; tokens "may expire early", so a second refusal is not
 * proof of bad credentials: the request is issued again (a PUT of the same
 * part, a creation with the same Idempotency-Key, a commit the server did
 * not run). MAX_AUTH_REFUSALS in a row end the run.
 */
static void redo(struct shp_dest *s, const struct shp_req *q, struct shp_import *imp)
{
    bool current = imp && imp->gen == q->gen;

    AB_WARN(s->em, "the API refused a fresh access token (401 token_expired): retrying '%s'",
            q->kind == SHP_REQ_PART     ? "part upload"
            : q->kind == SHP_REQ_CREATE ? "import creation"
            : q->kind == SHP_REQ_COMMIT ? "commit"
            : q->kind == SHP_REQ_GET    ? "import status"
                                        : "abort");
    switch (q->kind) {
    case SHP_REQ_CREATE:
        if (current && imp->state == SHP_IMP_CREATING) {
            shp_imp_set_state(s, imp, SHP_IMP_NEW, "creation refused a token");
        }
        break;
    case SHP_REQ_PART:
        if (current && q->part < imp->nparts && imp->parts[q->part].state == SHP_PART_UPLOADING) {
            set_part_state(imp, q->part, SHP_PART_READY);
        }
        break;
    case SHP_REQ_COMMIT:
        if (current && imp->state == SHP_IMP_COMMITTING) {
            submit_commit(s, imp);
        }
        break;
    case SHP_REQ_GET:
        if (current && imp->state == SHP_IMP_RESOLVING) {
            submit_get(s, imp);
        }
        break;
    case SHP_REQ_ABORT:
        abort_remote(s, q->id, "retry after a refused token");
        break;
    }
}

static void on_done(void *arg, const struct ab_http_resp *resp)
{
    struct shp_req *q = arg;
    struct shp_dest *s = q->s;
    struct shp_import *imp;
    struct ab_buf *sent;
    yajl_val body;

    req_unlink(q);
    ab_latency_add(&s->lat[q->kind], ab_now_us() - q->sent_us, resp->attempts);
    if (q->kind == SHP_REQ_PART) {
        s->uploads_inflight--;
    } else if (q->kind == SHP_REQ_ABORT) {
        s->aborts_inflight--;
    }
    if (s->failed) {
        req_free(s, q);
        return;
    }
    imp = q->kind == SHP_REQ_ABORT ? NULL : find_import(s, q->serial);
    body = ab_json_parse(resp->body, resp->body_len, NULL);
    if (resp->status >= 200 && resp->status < 300) {
        s->auth_refusals = 0;
    } else if (resp->status == 401 && strcmp(shp_error_code(body), "token_expired") == 0 &&
               s->auth_refusals < MAX_AUTH_REFUSALS) {
        s->auth_refusals++;
        redo(s, q, imp);
        goto out;
    }
    switch (q->kind) {
    case SHP_REQ_CREATE:
        if (imp && imp->gen == q->gen && imp->state == SHP_IMP_CREATING) {
            on_create(s, imp, q, resp, body);
        }
        break;
    case SHP_REQ_PART:
        on_part(s, imp, q, resp, body);
        break;
    case SHP_REQ_COMMIT:
        if (imp && imp->gen == q->gen && imp->state == SHP_IMP_COMMITTING) {
            on_commit(s, imp, q, resp, body);
        }
        break;
    case SHP_REQ_GET:
        if (imp && imp->gen == q->gen && imp->state == SHP_IMP_RESOLVING) {
            on_get(s, imp, resp, body);
        }
        break;
    case SHP_REQ_ABORT:
        on_abort(s, q, resp, body);
        break;
    }
out:
    if (body) {
        ab_json_free(body);
    }
    /* its part body is given back once the pump is done: the client may
     * read it until this callback returns */
    sent = q->body;
    q->body = NULL;
    free(q);
    shp_pump(s);
    body_give(s, sent);
}

/* ---- the pump -------------------------------------------------------------- */

void shp_pump(struct shp_dest *s)
{
    struct shp_import *imp;
    struct shp_import *next;
    int64_t now = -1; /* read when an import waits: not at every record */

    for (imp = s->imports; imp && !s->failed; imp = next) {
        next = imp->next;
        if (ab_driver_dry_run(s->d)) {
            if (imp->state == SHP_IMP_NEW && imp->sealed) {
                dry_import(s, imp);
            }
            continue;
        }
        switch (imp->state) {
        case SHP_IMP_NEW:
            if (imp->records > 0 || imp->sealed) {
                submit_create(s, imp);
            }
            break;
        case SHP_IMP_OPEN:
            pump_uploads(s, imp);
            if (!s->failed && imp->sealed && commit_ready(s, imp)) {
                submit_commit(s, imp);
            }
            break;
        case SHP_IMP_WAIT:
            if (now < 0) {
                now = ab_now_us();
            }
            if (now >= imp->wait_until_us) {
                submit_get(s, imp);
            }
            break;
        default:
            break;
        }
    }
}

size_t shp_ready_parts(const struct shp_dest *s)
{
    const struct shp_import *imp;
    size_t n = 0;

    for (imp = s->imports; imp; imp = imp->next) {
        n += imp->nready;
    }
    return n;
}

size_t shp_sealed_pending(const struct shp_dest *s)
{
    const struct shp_import *imp;
    size_t n = 0;

    for (imp = s->imports; imp; imp = imp->next) {
        n += imp->sealed ? 1U : 0U;
    }
    return n;
}

/* ---- recovery after a crash -------------------------------------------------- */

static enum ab_status http_status_error(const char *what, int status, yajl_val body,
                                        struct ab_error *err)
{
    const char *code = shp_error_code(body);

    if (status == 401 || status == 403) {
        return ab_error_set(err, AB_ERR_CONFIG,
                            "%s: the API refused access (HTTP %d %s): check the credentials "
                            "and the channel",
                            what, status, code);
    }
    if (status == 404 && strcmp(code, "not_found") == 0) {
        return ab_error_set(err, AB_ERR_CONFIG, "%s: HTTP 404 (unknown channel?)", what);
    }
    if (status == 408 || status == 429 || status >= 500) {
        return ab_error_set(err, AB_ERR_TRANSIENT, "%s: HTTP %d", what, status);
    }
    return ab_error_set(err, AB_ERR_PROTOCOL, "%s: unexpected answer HTTP %d %s", what, status,
                        code);
}

/* One blocking request; *body is parsed (NULL when not JSON). */
static enum ab_status run_req(struct shp_dest *s, const char *method, const char *url,
                              const char *label, int *status, yajl_val *body, struct ab_error *err)
{
    struct ab_buf out;
    struct ab_http_req *r = json_req(method, url, NULL, label, err);
    enum ab_status rc;

    *body = NULL;
    if (!r) {
        return err->code;
    }
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    rc = ab_http_run(s->h, r, status, &out, err);
    if (rc == AB_OK) {
        *body = ab_json_parse(out.data ? out.data : "", out.len, NULL);
    }
    ab_buf_release(&out);
    return rc;
}

static enum ab_status abort_stale(struct shp_dest *s, yajl_val imp, const char *prefix,
                                  bool *aborted, struct ab_error *err)
{
    const char *id = ab_json_get_str(imp, "import_id", NULL);
    const char *label = ab_json_get_str(imp, "label", "");
    const char *status = ab_json_get_str(imp, "status", "open");
    struct ab_buf url;
    yajl_val body = NULL;
    int code = 0;
    enum ab_status rc;

    *aborted = false;
    if (!id || strncmp(label, prefix, strlen(prefix)) != 0 || strcmp(status, "open") != 0) {
        return AB_OK;
    }
    ab_buf_init(&url, 4096);
    rc = import_url(s, &url, id, "", err);
    if (rc == AB_OK) {
        rc = run_req(s, "DELETE", url.data, "DELETE stale import", &code, &body, err);
    }
    if (rc == AB_OK) {
        if (code == 200) {
            AB_INFO(s->em, "aborted import %s ('%s') left open by an earlier run", id, label);
            s->stats.stale_aborted++;
            *aborted = true;
        } else if (code == 409 || code == 410 || code == 404) {
            AB_INFO(s->em, "stale import %s could not be aborted (HTTP %d %s): skipped", id, code,
                    shp_error_code(body));
        } else {
            rc = http_status_error("cannot abort a stale import", code, body, err);
        }
    }
    if (body) {
        ab_json_free(body);
    }
    ab_buf_release(&url);
    return rc;
}

enum ab_status shp_recover(struct shp_dest *s, struct ab_error *err)
{
    struct ab_buf url;
    struct ab_buf prefix;
    enum ab_status rc = AB_OK;
    int round;

    ab_buf_init(&url, 8192);
    ab_buf_init(&prefix, 1024);
    rc = ab_buf_printf(&prefix, err, "%s:", s->cfg.label_prefix);
    for (round = 0; rc == AB_OK && round < MAX_RECOVER_ROUNDS; round++) {
        yajl_val body = NULL;
        yajl_val data;
        int code = 0;
        size_t i;
        size_t aborted = 0;

        ab_buf_reset(&url);
        rc = ab_buf_printf(&url, err, "%s/v1/imports?channel=", s->cfg.api_url);
        if (rc == AB_OK) {
            rc = shp_url_escape(&url, s->cfg.channel, err);
        }
        if (rc == AB_OK) {
            rc = ab_buf_adds(&url, "&status=open&label_prefix=", err);
        }
        if (rc == AB_OK) {
            rc = shp_url_escape(&url, prefix.data, err);
        }
        if (rc == AB_OK) {
            rc = run_req(s, "GET", url.data, "GET open imports", &code, &body, err);
        }
        if (rc == AB_OK && code != 200) {
            rc = http_status_error("cannot list the open imports of the channel", code, body, err);
        }
        data = ab_json_get(body, "data");
        for (i = 0; rc == AB_OK && YAJL_IS_ARRAY(data) && i < data->u.array.len; i++) {
            bool done = false;

            rc = abort_stale(s, data->u.array.values[i], prefix.data, &done, err);
            aborted += done ? 1U : 0U;
        }
        if (body) {
            ab_json_free(body);
        }
        if (aborted == 0) {
            break;
        }
    }
    if (rc == AB_OK && s->stats.stale_aborted > 0) {
        AB_WARN(s->em,
                "aborted %llu open import(s) labelled '%s*' left by an earlier run: their states "
                "were never emitted, so the platform sends those records again",
                (unsigned long long)s->stats.stale_aborted, prefix.data);
    }
    ab_buf_release(&prefix);
    ab_buf_release(&url);
    return rc;
}
