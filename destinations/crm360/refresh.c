/* refresh.c - destination-crm360: generation tags and the removal of what
 * earlier generations of a truncating stream loaded. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ab/assert.h"
#include "ab/json.h"
#include "ab/log.h"

#include "crm360_int.h"

/*
 * Every customer a stream with a generation_id loads carries one tag
 * "ab-gen:<h>:<generation>", h naming the stream (12 hex digits of the
 * SHA-256 of its namespace and name). The tag is stored in CRM360 with the
 * record, so what each generation loaded survives crashes and restarts
 * without any state of the destination's own; an attempt restarted within
 * a generation writes the same tag. After a truncating stream
 * (minimum_generation_id == generation_id > 0) has reported COMPLETE and
 * every batch is committed, the customers are listed page by page
 * (GET /v1/customers, ordered by (updated_at, external_id)), and those
 * holding a tag of that stream with another generation are deleted in
 * batches (batchDelete, deleted_at = their stored updated_at, so a record
 * written again meanwhile with a newer updated_at is "stale" and stays).
 * One page and one delete batch are held at a time.
 */

#define TAG_PREFIX "ab-gen:"

struct crm_sweep {
    bool started;
    bool active; /* a request is on the wire or due */
    bool done;
    char *cursor;  /* next_cursor of the last page, NULL at the start */
    yajl_val page; /* the page being deleted from */
    size_t next;   /* its next record to look at */
    bool more;     /* a page follows this one */
    struct ab_buf body;
    size_t nbody;
    uint64_t listed;
    uint64_t pages;
    uint64_t results[CRM_R_NRESULTS];
    uint64_t requests;
};

void crm_stream_hash(const struct ab_stream *s, char out[13])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const char *ns = s->ns ? s->ns : "";
    int i;

    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, ns, strlen(ns)) != 1 || EVP_DigestUpdate(ctx, "\n", 1) != 1 ||
        EVP_DigestUpdate(ctx, s->name, strlen(s->name)) != 1 ||
        EVP_DigestFinal_ex(ctx, md, &mdlen) != 1) {
        mdlen = 0;
    }
    EVP_MD_CTX_free(ctx);
    for (i = 0; i < 6; i++) {
        unsigned char b = (unsigned)i < mdlen ? md[i] : 0;

        out[2 * i] = hex[b >> 4];
        out[2 * i + 1] = hex[b & 15];
    }
    out[12] = '\0';
}

enum ab_status crm_refresh_init(struct crm_dest *c, struct ab_error *err)
{
    size_t i;

    c->gens = calloc(c->cat->n ? c->cat->n : 1, sizeof(*c->gens));
    if (!c->gens) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    for (i = 0; i < c->cat->n; i++) {
        const struct ab_stream *s = &c->cat->streams[i];
        struct crm_gen *g = &c->gens[i];
        bool truncating = s->generation_id > 0 && s->minimum_generation_id == s->generation_id;
        char h[13];

        if (c->stream_obj[i] == CRM_CUSTOMERS && s->generation_id >= 0) {
            crm_stream_hash(s, h);
            (void)snprintf(g->tag, sizeof(g->tag), TAG_PREFIX "%s:%lld", h,
                           (long long)s->generation_id);
            g->prefix_len = strlen(TAG_PREFIX) + 12 + 1;
        }
        if (!truncating) {
            continue;
        }
        if (c->stream_op[i] == CRM_DELETE) {
            AB_WARN(c->em,
                    "stream '%s': generation %lld asks to remove what earlier generations "
                    "loaded; a soft_delete stream loads no record, so nothing is removed",
                    s->name, (long long)s->generation_id);
        } else if (c->stream_obj[i] == CRM_ORDERS) {
            g->truncating = true;
            c->refreshing++;
            AB_INFO(c->em,
                    "stream '%s': generation %lld removes what earlier generations loaded: "
                    "every committed batch records its order keys in the refresh ledger (object "
                    "storage); once the stream is COMPLETE and committed, the orders earlier "
                    "generations recorded and this one did not load are deleted",
                    s->name, (long long)s->generation_id);
        } else {
            g->truncating = true;
            c->refreshing++;
            AB_INFO(c->em,
                    "stream '%s': generation %lld removes what earlier generations loaded: once "
                    "the stream is COMPLETE and committed, customers tagged by an earlier "
                    "generation of it and not loaded again are deleted",
                    s->name, (long long)s->generation_id);
        }
    }
    return crm_ledger_init(c, err);
}

void crm_refresh_status(struct crm_dest *c, size_t stream, enum ab_stream_status status)
{
    if (stream >= c->cat->n || status == AB_STATUS_NONE) {
        return;
    }
    if (status == AB_STATUS_COMPLETE || status == AB_STATUS_INCOMPLETE ||
        c->gens[stream].status == AB_STATUS_NONE) {
        c->gens[stream].status = status;
    }
}

/* Writes a tag list: the strings of tags (NULL: none) that are not of the
 * stream's generations, then the stream's tag. */
enum ab_status crm_write_tags(struct ab_buf *out, yajl_val tags, const struct crm_gen *g,
                              struct ab_error *err)
{
    enum ab_status rc = ab_buf_addc(out, '[', err);
    bool first = true;
    size_t i;

    for (i = 0; tags && tags->type == yajl_t_array && i < tags->u.array.len && rc == AB_OK; i++) {
        yajl_val t = tags->u.array.values[i];

        if (t && t->type == yajl_t_string && strncmp(t->u.string, g->tag, g->prefix_len) == 0) {
            continue;
        }
        if (!first) {
            rc = ab_buf_addc(out, ',', err);
        }
        if (rc == AB_OK) {
            rc = ab_json_write(out, t, err);
        }
        first = false;
    }
    if (rc == AB_OK && !first) {
        rc = ab_buf_addc(out, ',', err);
    }
    if (rc == AB_OK) {
        /* the tag is ASCII letters, digits, '-' and ':': a JSON string as it is */
        rc = ab_buf_addc(out, '"', err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_add(out, g->tag, strlen(g->tag), err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_add(out, "\"]", 2, err);
    }
    return rc;
}

/* Appends what crm_write_tags() writes for the parsed list whose text is
 * text (len bytes), when that list is compact and holds only strings of
 * plain text ([], ["a","b"]), each written as it reads. 1: done (*rc: its
 * status); 0: another list, out left as it was. */
static int write_plain_tags(struct ab_buf *out, const char *text, size_t len,
                            const struct crm_gen *g, enum ab_status *rc, struct ab_error *err)
{
    const unsigned char *p = (const unsigned char *)text;
    const unsigned char *e = p + len;
    size_t mark = out->len;
    bool first = true;

    *rc = AB_OK;
    if (len < 2 || p[0] != '[' || e[-1] != ']') {
        return 0;
    }
    p++;
    e--;
    if (p < e) {
        for (;;) {
            const unsigned char *q = *p == '"' ? crm_plain_string_end(p, e) : NULL;

            if (!q) {
                ab_buf_truncate(out, mark);
                return 0;
            }
            /* one of the stream's own tags is left out */
            if ((size_t)(q - p - 1) < g->prefix_len || memcmp(p + 1, g->tag, g->prefix_len) != 0) {
                *rc = ab_buf_add(out, first ? "[" : ",", 1, err);
                if (*rc == AB_OK) {
                    *rc = ab_buf_add(out, p, (size_t)(q - p + 1), err);
                }
                if (*rc != AB_OK) {
                    return 1;
                }
                first = false;
            }
            p = q + 1;
            if (p == e) {
                break;
            }
            if (*p != ',') {
                ab_buf_truncate(out, mark);
                return 0;
            }
            p++;
        }
    }
    *rc = ab_buf_add(out, first ? "[\"" : ",\"", 2, err);
    if (*rc == AB_OK) {
        *rc = ab_buf_add(out, g->tag, strlen(g->tag), err);
    }
    if (*rc == AB_OK) {
        *rc = ab_buf_add(out, "\"]", 2, err);
    }
    return 1;
}

/* Finds the top-level member "tags" of rec, a valid JSON object (built by
 * crm_build_record), without building a tree: a record can hold up to
 * max_line_bytes, and a second tree of it would double the line's memory.
 * Returns 1 and the value's span when found, 0 when absent, -1 when a
 * top-level name holds an escape (the caller parses the record instead). */
static int find_tags(const char *s, size_t n, size_t *voff, size_t *vlen)
{
    size_t i = 1;
    int depth = 1;

    AB_ASSERT(n >= 2 && s[0] == '{');
    while (i < n && depth > 0) {
        char ch = s[i];

        if (ch == '"' && depth == 1) {
            size_t k = ++i;
            bool esc = false;

            while (i < n && s[i] != '"') {
                if (s[i] == '\\') {
                    esc = true;
                    i++;
                }
                i++;
            }
            if (esc) {
                return -1;
            }
            {
                bool hit = i - k == 4 && memcmp(s + k, "tags", 4) == 0;
                size_t v;
                int d = 0;

                i++; /* closing quote */
                while (i < n && (s[i] == ' ' || s[i] == ':')) {
                    i++;
                }
                v = i;
                /* the value: up to the ',' or '}' at this level */
                while (i < n) {
                    ch = s[i];
                    if (ch == '"') {
                        for (i++; i < n && s[i] != '"'; i++) {
                            if (s[i] == '\\') {
                                i++;
                            }
                        }
                    } else if (ch == '{' || ch == '[') {
                        d++;
                    } else if (ch == '}' || ch == ']') {
                        if (d == 0) {
                            break;
                        }
                        d--;
                    } else if (ch == ',' && d == 0) {
                        break;
                    }
                    i++;
                }
                if (hit) {
                    *voff = v;
                    *vlen = i - v;
                    return 1;
                }
                continue;
            }
        }
        if (ch == '}') {
            depth--;
        }
        i++;
    }
    return 0;
}

enum ab_status crm_tag_record(struct crm_dest *c, size_t stream, struct ab_buf *rec,
                              struct ab_error *err)
{
    return crm_tag_record_at(c, stream, rec, -1, 0, 0, err);
}

enum ab_status crm_tag_record_at(struct crm_dest *c, size_t stream, struct ab_buf *rec, int known,
                                 size_t tags_off, size_t tags_len, struct ab_error *err)
{
    const struct crm_gen *g = &c->gens[stream];
    yajl_val v;
    enum ab_status rc;
    bool tagged = false;
    size_t i;

    if (!g->tag[0]) {
        return AB_OK;
    }
    if (!c->tag_arena) {
        c->tag_arena = ab_json_arena_new(err);
        if (!c->tag_arena) {
            return err->code;
        }
    }
    ab_json_arena_reset(c->tag_arena);
    ab_buf_reset(&c->tagged);
    {
        size_t off = tags_off;
        size_t len = tags_len;
        int found = known >= 0 ? known : find_tags(rec->data, rec->len, &off, &len);

        if (found == 0) {
            /* the common case: the tag list is appended in place, no copy */
            bool empty = rec->len == 2;
            size_t was = rec->len;

            AB_ASSERT(rec->data[rec->len - 1] == '}');
            ab_buf_truncate(rec, was - 1);
            rc = ab_buf_adds(rec, empty ? "\"tags\":" : ",\"tags\":", err);
            if (rc == AB_OK) {
                rc = crm_write_tags(rec, NULL, g, err);
            }
            if (rc == AB_OK) {
                rc = ab_buf_addc(rec, '}', err);
            }
            if (rc != AB_OK) {
                rec->len = was; /* the record as it was */
                rec->data[was - 1] = '}';
                rec->data[was] = '\0';
            }
            return rc;
        }
        if (found == 1) {
            yajl_val t;

            rc = ab_buf_add(&c->tagged, rec->data, off, err);
            if (rc == AB_OK &&
                write_plain_tags(&c->tagged, rec->data + off, len, g, &rc, err) == 1) {
                /* a list of plain strings: no parse */
                if (rc == AB_OK) {
                    rc = ab_buf_add(&c->tagged, rec->data + off + len, rec->len - off - len, err);
                }
                goto done;
            }
            if (rc != AB_OK) {
                return rc;
            }
            ab_buf_reset(&c->tagged);
            /* only the tag list is parsed */
            t = ab_json_parse_arena(c->tag_arena, rec->data + off, len, err);
            if (!t) {
                return err->code;
            }
            if (!ab_json_is_null(t) && t->type != yajl_t_array) {
                return AB_OK; /* not a list: sent as it is, CRM360 rejects it */
            }
            rc = ab_buf_add(&c->tagged, rec->data, off, err);
            if (rc == AB_OK) {
                rc = crm_write_tags(&c->tagged, t, g, err);
            }
            if (rc == AB_OK) {
                rc = ab_buf_add(&c->tagged, rec->data + off + len, rec->len - off - len, err);
            }
            goto done;
        }
    }
    v = ab_json_parse_arena(c->tag_arena, rec->data, rec->len, err);
    if (!v) {
        return err->code;
    }
    AB_ASSERT(v->type == yajl_t_object);
    ab_buf_reset(&c->tagged);
    /* Most records: the other members are copied as they are, only the tag
     * list is written (the record is compact JSON built by crm_build_record) */
    {
        yajl_val tags = ab_json_get(v, "tags");
        size_t off;
        size_t len;
        bool compact;

        if (!tags && rec->len >= 2 && rec->data[rec->len - 1] == '}') {
            rc = ab_buf_add(&c->tagged, rec->data, rec->len - 1, err);
            if (rc == AB_OK) {
                rc = ab_buf_adds(&c->tagged, v->u.object.len ? ",\"tags\":" : "\"tags\":", err);
            }
            if (rc == AB_OK) {
                rc = crm_write_tags(&c->tagged, NULL, g, err);
            }
            if (rc == AB_OK) {
                rc = ab_buf_addc(&c->tagged, '}', err);
            }
            goto done;
        }
        if (tags && tags->type == yajl_t_array &&
            ab_json_arena_span(c->tag_arena, tags, &off, &len, &compact)) {
            rc = ab_buf_add(&c->tagged, rec->data, off, err);
            if (rc == AB_OK) {
                rc = crm_write_tags(&c->tagged, tags, g, err);
            }
            if (rc == AB_OK) {
                rc = ab_buf_add(&c->tagged, rec->data + off + len, rec->len - off - len, err);
            }
            goto done;
        }
    }
    rc = ab_buf_addc(&c->tagged, '{', err);
    for (i = 0; i < v->u.object.len && rc == AB_OK; i++) {
        const char *k = v->u.object.keys[i];
        yajl_val m = v->u.object.values[i];
        bool is_tags = strcmp(k, "tags") == 0;
        /* tags that are no list stay as they are: CRM360 rejects them */
        bool tags = is_tags && (ab_json_is_null(m) || m->type == yajl_t_array);

        if (i) {
            rc = ab_buf_addc(&c->tagged, ',', err);
        }
        if (rc == AB_OK) {
            rc = ab_json_write_cstr(&c->tagged, k, err);
        }
        if (rc == AB_OK) {
            rc = ab_buf_addc(&c->tagged, ':', err);
        }
        if (rc == AB_OK) {
            rc = tags ? crm_write_tags(&c->tagged, m, g, err) : ab_json_write(&c->tagged, m, err);
        }
        tagged = tagged || is_tags;
    }
    if (rc == AB_OK && !tagged) {
        rc = ab_buf_adds(&c->tagged, v->u.object.len ? ",\"tags\":" : "\"tags\":", err);
        if (rc == AB_OK) {
            rc = crm_write_tags(&c->tagged, NULL, g, err);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(&c->tagged, '}', err);
    }
done:
    if (rc == AB_OK) {
        struct ab_buf t = *rec;

        *rec = c->tagged;
        c->tagged = t;
    }
    return rc;
}

/* ---- the sweep ------------------------------------------------------------- */

static void sweep_list(struct crm_dest *c);
static void sweep_next(struct crm_dest *c);

void crm_refresh_sweep_fail(struct crm_dest *c, const char *what, const struct ab_http_resp *resp)
{
    struct ab_error err;
    struct ab_error perr;
    yajl_val root = NULL;
    const char *code = "";

    ab_error_init(&err);
    ab_error_init(&perr);
    if (resp->status) {
        root = ab_json_parse(resp->body, resp->body_len, &perr);
        code = ab_json_get_str(ab_json_get(root, "error"), "code", "");
    }
    if (resp->status == 401) {
        ab_error_set(&err, AB_ERR_CONFIG, "CRM360 rejected the api_key (HTTP 401 %s) %s", code,
                     what);
    } else if (resp->status == 403) {
        ab_error_set(&err, AB_ERR_CONFIG,
                     "the api_key lacks a scope CRM360 requires %s (HTTP 403): a refresh needs "
                     "the read and write scopes",
                     what);
    } else if (resp->status == 0 || resp->transient) {
        ab_error_set(&err, AB_ERR_TRANSIENT,
                     "CRM360 kept failing %s (HTTP %d after %d attempts%s%s): every record of "
                     "the generation is committed; the next attempt of this generation removes "
                     "what earlier ones loaded",
                     what, resp->status, resp->attempts, resp->error[0] ? ": " : "", resp->error);
    } else {
        ab_error_set(&err, AB_ERR_INTERNAL, "CRM360 refused %s: HTTP %d %s", what, resp->status,
                     code);
    }
    if (root) {
        ab_json_free(root);
    }
    c->sweep->active = false;
    ab_driver_fail(c->d, &err);
}

/* The stream whose earlier generation rec holds, or -1: a tag of a
 * truncating COMPLETE stream with a lower generation, and a key and an
 * updated_at to delete it with. */
static long stale_generation(const struct crm_dest *c, yajl_val rec)
{
    yajl_val tags = ab_json_get(rec, "tags");
    size_t i;
    size_t s;

    if (!tags || tags->type != yajl_t_array || !ab_json_str(ab_json_get(rec, "external_id")) ||
        !ab_json_str(ab_json_get(rec, "brand")) || !ab_json_str(ab_json_get(rec, "updated_at"))) {
        return -1;
    }
    for (i = 0; i < tags->u.array.len; i++) {
        yajl_val t = tags->u.array.values[i];

        if (!t || t->type != yajl_t_string || strncmp(t->u.string, TAG_PREFIX, 7) != 0) {
            continue;
        }
        for (s = 0; s < c->cat->n; s++) {
            const struct crm_gen *g = &c->gens[s];

            char *end = NULL;
            long long gen;

            if (!g->sweeping || !g->tag[0] || strncmp(t->u.string, g->tag, g->prefix_len) != 0) {
                continue;
            }
            gen = strtoll(t->u.string + g->prefix_len, &end, 10);
            if (end != t->u.string + g->prefix_len && *end == '\0' && gen >= 0 &&
                gen < c->cat->streams[s].generation_id) {
                return (long)s;
            }
        }
    }
    return -1;
}

static void on_delete_done(void *arg, const struct ab_http_resp *resp)
{
    struct crm_dest *c = arg;
    struct crm_sweep *w = c->sweep;
    struct ab_error err;
    yajl_val root;
    yajl_val results;

    ab_error_init(&err);
    if (resp->status != 200) {
        crm_refresh_sweep_fail(c, "deleting customers of earlier generations", resp);
        return;
    }
    root = ab_json_parse(resp->body, resp->body_len, &err);
    results = crm_batch_results(root, w->nbody, "a batchDelete of customers of earlier generations",
                                &err);
    if (!results) {
        ab_json_free(root);
        w->active = false;
        ab_driver_fail(c->d, &err);
        return;
    }
    crm_count_results(results, w->results);
    ab_json_free(root);
    sweep_next(c);
}

yajl_val crm_batch_results(yajl_val root, size_t n, const char *what, struct ab_error *err)
{
    yajl_val results = ab_json_get(root, "results");
    size_t got = results && results->type == yajl_t_array ? results->u.array.len : 0;

    if (!results || results->type != yajl_t_array || got != n) {
        ab_error_set(err, AB_ERR_PROTOCOL, "CRM360 answered %s of %zu records with %zu results",
                     what, n, got);
        return NULL;
    }
    return results;
}

void crm_count_results(yajl_val results, uint64_t counts[CRM_R_NRESULTS])
{
    size_t i;

    AB_ASSERT(results && results->type == yajl_t_array);
    for (i = 0; i < results->u.array.len; i++) {
        const char *st = ab_json_get_str(results->u.array.values[i], "status", "");
        int k;

        for (k = 0; k < CRM_R_NRESULTS; k++) {
            if (strcmp(st, crm_result_names[k]) == 0) {
                counts[k]++;
                break;
            }
        }
    }
}

enum ab_status crm_post_batch(struct crm_dest *c, enum crm_object o, enum crm_op op,
                              const struct ab_buf *body, const char *label, ab_http_done_fn done,
                              struct ab_error *err)
{
    char url[2048];
    char key[CRM_IDEMPOTENCY_KEY_SIZE];
    char header[CRM_IDEMPOTENCY_KEY_SIZE + 32];
    struct ab_http_req *req;
    enum ab_status rc;

    (void)snprintf(url, sizeof(url), "%s/v1/%s:%s", c->api_url, crm_object_name(o),
                   crm_op_name(op));
    crm_idempotency_key(c->sync_id, o, op, body->data, body->len, key);
    (void)snprintf(header, sizeof(header), "Idempotency-Key: %s", key);
    req = ab_http_req_new("POST", url, err);
    if (!req) {
        return err->code;
    }
    rc = ab_http_req_header(req, header, err);
    if (rc == AB_OK) {
        rc = ab_http_req_body_ref(req, body->data, body->len, "application/json", err);
    }
    if (rc != AB_OK) {
        ab_http_req_free(req);
        return rc;
    }
    ab_http_req_flags(req, c->gzip ? AB_HTTP_GZIP : 0);
    ab_http_req_label(req, label);
    return ab_http_submit(c->http, req, done, c, err);
}

/* Sends the delete batch built in w->body. */
static void send_delete(struct crm_dest *c)
{
    struct crm_sweep *w = c->sweep;
    struct ab_error err;

    ab_error_init(&err);
    w->requests++;
    if (crm_post_batch(c, CRM_CUSTOMERS, CRM_DELETE, &w->body,
                       "customers batchDelete (earlier generations)", on_delete_done,
                       &err) != AB_OK) {
        ab_driver_fail(c->d, &err);
    }
}

/* Deletes from the page what earlier generations hold, a batch at a time;
 * then lists the next page, or ends. */
static void sweep_next(struct crm_dest *c)
{
    struct crm_sweep *w = c->sweep;
    yajl_val data = ab_json_get(w->page, "data");
    size_t n = data && data->type == yajl_t_array ? data->u.array.len : 0;
    struct ab_error err;
    enum ab_status rc = AB_OK;

    ab_error_init(&err);
    ab_buf_reset(&w->body);
    w->nbody = 0;
    rc = ab_buf_adds(&w->body, "{\"records\":[", &err);
    while (rc == AB_OK && w->next < n && w->nbody < c->batch_size) {
        yajl_val r = data->u.array.values[w->next];
        size_t mark = w->body.len;

        if (stale_generation(c, r) < 0) {
            w->next++;
            continue;
        }
        rc = ab_buf_adds(&w->body, w->nbody ? ",{\"external_id\":" : "{\"external_id\":", &err);
        if (rc == AB_OK) {
            rc = ab_json_write(&w->body, ab_json_get(r, "external_id"), &err);
        }
        if (rc == AB_OK) {
            rc = ab_buf_adds(&w->body, ",\"brand\":", &err);
        }
        if (rc == AB_OK) {
            rc = ab_json_write(&w->body, ab_json_get(r, "brand"), &err);
        }
        if (rc == AB_OK) {
            rc = ab_buf_adds(&w->body, ",\"deleted_at\":", &err);
        }
        if (rc == AB_OK) {
            rc = ab_json_write(&w->body, ab_json_get(r, "updated_at"), &err);
        }
        if (rc == AB_OK) {
            rc = ab_buf_addc(&w->body, '}', &err);
        }
        if (rc == AB_OK && w->nbody > 0 && w->body.len + 2 > c->max_bytes) {
            ab_buf_truncate(&w->body, mark); /* goes into the next batch */
            break;
        }
        w->nbody++;
        w->next++;
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&w->body, "]}", &err);
    }
    if (rc != AB_OK) {
        w->active = false;
        ab_driver_fail(c->d, &err);
        return;
    }
    if (w->nbody) {
        send_delete(c);
        return;
    }
    ab_json_free(w->page);
    w->page = NULL;
    if (w->more) {
        sweep_list(c);
        return;
    }
    crm_ledger_sweep(c); /* then the orders */
}

void crm_refresh_sweep_done(struct crm_dest *c, bool ok)
{
    c->sweep->active = false;
    c->sweep->done = ok;
}

static void on_list_done(void *arg, const struct ab_http_resp *resp)
{
    struct crm_dest *c = arg;
    struct crm_sweep *w = c->sweep;
    struct ab_error err;
    yajl_val data;
    const char *next;

    ab_error_init(&err);
    if (resp->status != 200) {
        crm_refresh_sweep_fail(c, "listing customers (GET /v1/customers)", resp);
        return;
    }
    w->page = ab_json_parse(resp->body, resp->body_len, &err);
    data = ab_json_get(w->page, "data");
    if (!data || data->type != yajl_t_array) {
        ab_error_set(&err, AB_ERR_PROTOCOL,
                     "CRM360 answered GET /v1/customers without a \"data\" array");
        w->active = false;
        ab_driver_fail(c->d, &err);
        return;
    }
    w->pages++;
    w->listed += data->u.array.len;
    next = ab_json_get_str(w->page, "next_cursor", NULL);
    free(w->cursor);
    w->cursor = next && *next ? strdup(next) : NULL;
    w->more = w->cursor != NULL;
    if (next && *next && !w->cursor) {
        ab_error_set(&err, AB_ERR_NOMEM, "out of memory");
        w->active = false;
        ab_driver_fail(c->d, &err);
        return;
    }
    w->next = 0;
    sweep_next(c);
}

/* Appends s to url, percent-encoded (RFC 3986 unreserved kept). */
bool crm_url_add_encoded(char *url, size_t size, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(url);

    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        bool keep = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' || ch == '~';

        if (n + 4 >= size) {
            return false;
        }
        if (keep) {
            url[n++] = (char)ch;
        } else {
            url[n++] = '%';
            url[n++] = hex[ch >> 4];
            url[n++] = hex[ch & 15];
        }
    }
    url[n] = '\0';
    return true;
}

static void sweep_list(struct crm_dest *c)
{
    struct crm_sweep *w = c->sweep;
    char url[4096];
    struct ab_http_req *req;
    struct ab_error err;

    ab_error_init(&err);
    (void)snprintf(url, sizeof(url), "%s/v1/customers?limit=%zu%s", c->api_url,
                   c->batch_size < 1000 ? c->batch_size : (size_t)1000,
                   w->cursor ? "&cursor=" : "");
    if (w->cursor && !crm_url_add_encoded(url, sizeof(url), w->cursor)) {
        ab_error_set(&err, AB_ERR_PROTOCOL, "CRM360's next_cursor is too long (%zu bytes)",
                     strlen(w->cursor));
        w->active = false;
        ab_driver_fail(c->d, &err);
        return;
    }
    req = ab_http_req_new("GET", url, &err);
    if (!req) {
        ab_driver_fail(c->d, &err);
        return;
    }
    ab_http_req_label(req, "customers list (earlier generations)");
    w->requests++;
    if (ab_http_submit(c->http, req, on_list_done, c, &err) != AB_OK) {
        ab_driver_fail(c->d, &err);
    }
}

void crm_refresh_maybe_start(struct crm_dest *c)
{
    struct crm_sweep *w;
    size_t i;
    size_t n = 0;
    size_t ncustomers = 0;

    if (!c->refreshing || !c->final || (c->sweep && c->sweep->started) || ab_driver_failed(c->d) ||
        c->queued || c->in_flight || crm_restale_pending(c)) {
        return;
    }
    for (i = 0; i < CRM_NOBJECTS * CRM_NOPS; i++) {
        if (c->open[i / CRM_NOPS][i % CRM_NOPS]) {
            return;
        }
    }
    c->sweep = calloc(1, sizeof(*c->sweep));
    if (!c->sweep) {
        struct ab_error err;

        ab_error_init(&err);
        ab_error_set(&err, AB_ERR_NOMEM, "out of memory");
        ab_driver_fail(c->d, &err);
        return;
    }
    w = c->sweep;
    w->started = true;
    ab_buf_init(&w->body, AB_BUF_UNBOUNDED);
    for (i = 0; i < c->cat->n; i++) {
        struct crm_gen *g = &c->gens[i];
        const char *name = c->cat->streams[i].name;

        if (!g->truncating) {
            continue;
        }
        if (ab_driver_input_failed(c->d)) {
            AB_WARN(c->em,
                    "stream '%s': reading stopped at bad input, so nothing of earlier "
                    "generations is removed",
                    name);
        } else if (g->status != AB_STATUS_COMPLETE) {
            AB_WARN(c->em,
                    "stream '%s': no STREAM_STATUS COMPLETE (the end of input does not prove the "
                    "source finished), so nothing of earlier generations is removed",
                    name);
        } else if (ab_driver_dry_run(c->d)) {
            AB_INFO(c->em,
                    "dry run: stream '%s' is COMPLETE; a real run would now delete the %s "
                    "of its earlier generations",
                    name, crm_object_name(c->stream_obj[i]));
        } else {
            g->sweeping = true;
            n++;
            ncustomers += c->stream_obj[i] == CRM_CUSTOMERS;
        }
    }
    if (n == 0) {
        w->done = true;
        return;
    }
    w->active = true;
    if (ncustomers) {
        sweep_list(c);
    } else {
        crm_ledger_sweep(c);
    }
}

bool crm_refresh_busy(const struct crm_dest *c)
{
    return (c->sweep && c->sweep->active) || crm_restale_pending(c);
}

bool crm_refresh_wants_results(const struct crm_dest *c, const struct crm_batch *b)
{
    return crm_ledger_wants(c, b) || crm_restale_wants(c, b);
}

enum ab_status crm_refresh_committed(struct crm_dest *c, const struct crm_batch *b,
                                     yajl_val results, struct ab_error *err)
{
    enum ab_status rc = crm_ledger_batch(c, b, results, err);

    return rc == AB_OK ? crm_restale_batch(c, b, results, err) : rc;
}

void crm_refresh_summary(struct crm_dest *c, struct ab_emitter *em)
{
    const struct crm_sweep *w = c->sweep;
    size_t i;

    crm_restale_summary(c, em);
    crm_ledger_summary(c, em);
    if (!w || !w->started) {
        return;
    }
    for (i = 0; i < c->cat->n; i++) {
        if (c->gens[i].sweeping) {
            AB_INFO(em, "refresh of stream '%s': %s", c->cat->streams[i].name,
                    w->done ? "what earlier generations loaded is removed"
                            : "removal of earlier generations not finished");
        }
    }
    if (w->pages) {
        AB_INFO(em,
                "refresh: %llu customers listed in %llu pages; earlier generations: deleted "
                "%llu, stale (written again meanwhile, kept) %llu, not_found %llu, rejected %llu",
                (unsigned long long)w->listed, (unsigned long long)w->pages,
                (unsigned long long)w->results[CRM_R_DELETED],
                (unsigned long long)w->results[CRM_R_STALE],
                (unsigned long long)w->results[CRM_R_NOT_FOUND],
                (unsigned long long)w->results[CRM_R_REJECTED]);
    }
}

void crm_refresh_free(struct crm_dest *c)
{
    crm_ledger_free(c);
    crm_restale_free(c);
    if (c->sweep) {
        ab_json_free(c->sweep->page);
        free(c->sweep->cursor);
        ab_buf_release(&c->sweep->body);
        free(c->sweep);
        c->sweep = NULL;
    }
    free(c->gens);
    c->gens = NULL;
}
