/* ledger.c - destination-crm360: the key ledger of orders in object storage,
 * and the removal of the orders earlier generations loaded. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/assert.h"
#include "ab/destination.h"
#include "ab/json.h"
#include "ab/keyledger.h"
#include "ab/log.h"
#include "ab/objstore.h"

#include "crm360_int.h"

/*
 * An order has no free-form field to carry a generation tag, so what each
 * generation of an orders stream loaded is kept beside CRM360, in the
 * object storage the user configured for rejected records:
 *
 *   <prefix>/refresh-ledger/orders/<stream hash>/g<generation, 20 digits>/
 *       <run name>-<NNNNNNNN>.keys
 *
 * one object (a "run") per committed batch, put before the batch's
 * checkpoint unit is done (so before any STATE covering its records goes
 * out), holding the sorted keys the batch committed (created, updated,
 * unchanged or stale; not rejected), one line each:
 * "<brand>\\|<external_id>\t<updated_at>" (escaped, ab_keyrun_escape()).
 * A restarted attempt of a generation adds runs under the same generation;
 * nothing is ever rewritten, so a crash loses at most the run of a batch
 * whose STATE never went out (and whose records the next attempt sends
 * again).
 *
 * Once a truncating orders stream is COMPLETE and every batch committed,
 * the runs of its generation are merged into one sorted set and those of
 * every earlier generation into another (ab_keyruns: files in a private
 * temporary directory, a bounded fan-in, several passes if need be); the
 * keys of the earlier set missing from the current one are deleted in
 * batches (batchDelete, deleted_at = the updated_at the ledger recorded for
 * the key, so that a newer version written meanwhile is "stale" and stays,
 * and a later load of a newer version is created again); then the earlier
 * generations' runs are deleted from the bucket. A crash in between only
 * deletes again: not_found.
 */

#define LEDGER_DIR    "refresh-ledger/orders/"
#define LEDGER_FAN_IN 32
#define SET_CURRENT   0
#define SET_EARLIER   1
#define SET_REMOVE    2
#define SET_OBJECTS   3
#define KEY_SEPARATOR "\\|"
/* Escaping doubles a byte at most: lines stay within AB_KEYRUN_LINE_MAX. */
#define LEDGER_LINE_MAX ((AB_KEYRUN_LINE_MAX - 8) / 2)

struct crm_ledger {
    struct ab_objstore *os;
    const char *prefix;
    const char *run_name;
    uint64_t next_run;
    uint64_t runs_put;
    uint64_t keys_put;
    uint64_t unrecorded;  /* keys too long for a ledger line */
    struct ab_buf lines;  /* a batch's key lines of one stream */
    struct ab_buf sorted; /* as a run */
    struct ab_buf name;
    struct ab_json_arena *arena;
    bool *seen; /* per catalog stream, while a batch is recorded */

    /* the removal at the end */
    bool started;
    bool done;
    size_t stream; /* the stream being swept */
    struct ab_keyruns *kr;
    FILE *todo; /* the keys to delete (SET_REMOVE) */
    struct ab_buf line;
    struct ab_buf field;
    struct ab_buf body;
    size_t nbody;
    uint64_t requests;
    uint64_t results[CRM_R_NRESULTS];
    uint64_t runs_read;
    uint64_t runs_removed;
    uint64_t current_keys;
    uint64_t earlier_keys;
    uint64_t later_runs; /* of a generation above the current one: left alone */
};

/* "<prefix>/refresh-ledger/orders/<hash>/" into out. */
static enum ab_status stream_root(const struct crm_dest *c, size_t stream, struct ab_buf *out,
                                  struct ab_error *err)
{
    const struct crm_ledger *l = c->ledger;
    size_t n = strlen(l->prefix);
    char h[13];

    crm_stream_hash(&c->cat->streams[stream], h);
    ab_buf_reset(out);
    while (n > 0 && l->prefix[n - 1] == '/') {
        n--;
    }
    return ab_buf_printf(out, err, "%.*s%s" LEDGER_DIR "%s/", (int)n, l->prefix, n ? "/" : "", h);
}

enum ab_status crm_ledger_init(struct crm_dest *c, struct ab_error *err)
{
    struct ab_objstore_cfg cfg;
    const char *prefix = NULL;
    const char *run_name = NULL;
    bool any_truncating = false;
    bool any = false;
    size_t i;

    for (i = 0; i < c->cat->n; i++) {
        const struct ab_stream *s = &c->cat->streams[i];

        if (c->stream_obj[i] != CRM_ORDERS || c->stream_op[i] != CRM_UPSERT ||
            s->generation_id < 0) {
            continue;
        }
        any = true;
        any_truncating = any_truncating || c->gens[i].truncating;
    }
    if (!any) {
        return AB_OK;
    }
    if (!ab_driver_object_storage(c->d, &cfg, &prefix, &run_name)) {
        for (i = 0; i < c->cat->n; i++) {
            const struct ab_stream *s = &c->cat->streams[i];

            if (c->gens[i].truncating && c->stream_obj[i] == CRM_ORDERS) {
                return ab_error_set(
                    err, AB_ERR_CONFIG,
                    "stream '%s': generation %lld asks to remove the orders earlier generations "
                    "loaded, and CRM360 keeps no generation with an order: destination-crm360 "
                    "tracks the keys each generation of an orders stream loaded in object "
                    "storage; set object_storage_config to S3 (the bucket of rejected records) "
                    "before refreshing it",
                    s->name, (long long)s->generation_id);
            }
        }
        return AB_OK; /* nothing recorded: a later refresh cannot remove these */
    }
    c->ledger = calloc(1, sizeof(*c->ledger));
    if (!c->ledger) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    c->ledger->prefix = prefix;
    c->ledger->run_name = run_name;
    ab_buf_init(&c->ledger->lines, AB_BUF_UNBOUNDED);
    ab_buf_init(&c->ledger->sorted, AB_BUF_UNBOUNDED);
    ab_buf_init(&c->ledger->name, AB_BUF_UNBOUNDED);
    ab_buf_init(&c->ledger->line, AB_BUF_UNBOUNDED);
    ab_buf_init(&c->ledger->field, AB_BUF_UNBOUNDED);
    ab_buf_init(&c->ledger->body, AB_BUF_UNBOUNDED);
    c->ledger->seen = calloc(c->cat->n ? c->cat->n : 1, sizeof(*c->ledger->seen));
    if (!c->ledger->seen) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    c->ledger->arena = ab_json_arena_new(err);
    if (!c->ledger->arena) {
        return err->code;
    }
    c->ledger->os = ab_objstore_new(&cfg, err);
    if (!c->ledger->os) {
        return err->code;
    }
    for (i = 0; i < c->cat->n; i++) {
        const struct ab_stream *s = &c->cat->streams[i];

        if (c->stream_obj[i] == CRM_ORDERS && c->stream_op[i] == CRM_UPSERT &&
            s->generation_id >= 0) {
            c->gens[i].ledger = true;
            if (!any_truncating) {
                AB_INFO(c->em,
                        "stream '%s': the keys of the orders generation %lld loads are "
                        "recorded in object storage (s3://%s/%s...), so that a later refresh "
                        "can remove them",
                        s->name, (long long)s->generation_id, cfg.bucket, prefix);
            }
        }
    }
    return AB_OK;
}

/* Puts the sorted run of l->lines as the next run of stream. */
static enum ab_status put_run(struct crm_dest *c, size_t stream, struct ab_error *err)
{
    struct crm_ledger *l = c->ledger;
    enum ab_status rc = ab_keyrun_sort(&l->lines, &l->sorted, err);

    if (rc == AB_OK) {
        rc = stream_root(c, stream, &l->name, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_printf(&l->name, err, "g%020lld/%s-%08llu.keys",
                           (long long)c->cat->streams[stream].generation_id, l->run_name,
                           (unsigned long long)++l->next_run);
    }
    if (rc == AB_OK) {
        rc = ab_objstore_put(l->os, l->name.data, l->sorted.data, l->sorted.len, "text/plain", err);
    }
    if (rc != AB_OK) {
        return ab_error_prefix(err,
                               "stream '%s': cannot record the keys of committed orders in "
                               "the refresh ledger (no STATE covering them goes out)",
                               c->cat->streams[stream].name);
    }
    l->runs_put++;
    return AB_OK;
}

static void clear_seen(struct crm_ledger *l, const struct crm_batch *b)
{
    size_t i;

    for (i = 0; i < b->n; i++) {
        l->seen[b->recs[i].stream] = false;
    }
}

bool crm_ledger_wants(const struct crm_dest *c, const struct crm_batch *b)
{
    return c->ledger && b->obj == CRM_ORDERS && b->op == CRM_UPSERT;
}

enum ab_status crm_ledger_batch(struct crm_dest *c, const struct crm_batch *b, yajl_val results,
                                struct ab_error *err)
{
    struct crm_ledger *l = c->ledger;
    size_t s;
    size_t i;
    size_t k;

    if (!crm_ledger_wants(c, b)) {
        return AB_OK;
    }
    /* a batch may hold several streams: one run per stream, each stream
     * taken at its first record (seen: streams done, cleared after) */
    for (k = 0; k < b->n; k++) {
        enum ab_status rc = AB_OK;
        bool has = false;

        s = b->recs[k].stream;
        if (!c->gens[s].ledger || l->seen[s]) {
            continue;
        }
        l->seen[s] = true;
        ab_buf_reset(&l->lines);
        for (i = k; i < b->n && rc == AB_OK; i++) {
            const struct crm_rec *r = &b->recs[i];
            const char *st = ab_json_get_str(results->u.array.values[i], "status", "");
            yajl_val rec;
            const char *brand;
            const char *id;
            const char *upd;

            if (r->stream != s || strcmp(st, "rejected") == 0) {
                continue;
            }
            ab_json_arena_reset(l->arena);
            rec = ab_json_parse_arena(l->arena, b->body.data + r->off, r->len, err);
            if (!rec) {
                rc = err->code;
                break;
            }
            brand = ab_json_str(ab_json_get(rec, "brand"));
            id = ab_json_str(ab_json_get(rec, "external_id"));
            upd = ab_json_str(ab_json_get(rec, "updated_at"));
            if (!brand || !id || !upd) {
                continue; /* CRM360 committed no such record */
            }
            if (strlen(brand) + strlen(id) + strlen(upd) > LEDGER_LINE_MAX) {
                /* beyond CRM360's key limits, or an updated_at with a
                 * fraction of hundreds of digits: never removed */
                if (l->unrecorded++ == 0) {
                    AB_WARN(c->em,
                            "stream '%s': order %s/%s is not recorded in the refresh ledger "
                            "(its key and updated_at exceed %d bytes), so a refresh will not "
                            "remove it",
                            c->cat->streams[s].name, brand, id, LEDGER_LINE_MAX);
                }
                continue;
            }
            rc = ab_keyrun_escape(&l->lines, brand, strlen(brand), err);
            if (rc == AB_OK) {
                rc = ab_buf_adds(&l->lines, KEY_SEPARATOR, err);
            }
            if (rc == AB_OK) {
                rc = ab_keyrun_escape(&l->lines, id, strlen(id), err);
            }
            if (rc == AB_OK) {
                rc = ab_buf_addc(&l->lines, '\t', err);
            }
            if (rc == AB_OK) {
                rc = ab_keyrun_escape(&l->lines, upd, strlen(upd), err);
            }
            if (rc == AB_OK) {
                rc = ab_buf_addc(&l->lines, '\n', err);
            }
            l->keys_put++;
            has = true;
        }
        if (rc == AB_OK && has) {
            rc = put_run(c, s, err);
        }
        if (rc != AB_OK) {
            clear_seen(l, b);
            return rc;
        }
    }
    clear_seen(l, b);
    ab_json_arena_reset(l->arena);
    return AB_OK;
}

/* ---- the removal ----------------------------------------------------------- */

struct list_ctx {
    struct crm_dest *c;
    FILE *fp;
    size_t root_len;
};

/* A listed ledger object: "<escaped key>\t<generation>" into SET_OBJECTS. */
static enum ab_status on_listed(void *arg, const char *key, struct ab_error *err)
{
    struct list_ctx *x = arg;
    struct crm_ledger *l = x->c->ledger;
    const char *g = key + x->root_len;
    char *end = NULL;
    long long gen;

    if (strlen(key) <= x->root_len || g[0] != 'g') {
        return AB_OK; /* not a run */
    }
    gen = strtoll(g + 1, &end, 10);
    if (end == g + 1 || *end != '/' || gen < 0) {
        return AB_OK;
    }
    ab_buf_reset(&l->field);
    if (ab_keyrun_escape(&l->field, key, strlen(key), err) != AB_OK) {
        return err->code;
    }
    if (fprintf(x->fp, "%s\t%lld\n", l->field.data ? l->field.data : "", gen) < 0) {
        return ab_error_set(err, AB_ERR_IO, "key ledger: cannot write a listing");
    }
    return AB_OK;
}

/* Parses a SET_OBJECTS line into l->name (the object key) and *gen. */
static bool object_line(struct crm_ledger *l, long long *gen, struct ab_error *err)
{
    const char *tab = memchr(l->line.data, '\t', l->line.len);

    if (!tab) {
        return false;
    }
    ab_buf_reset(&l->name);
    if (ab_keyrun_unescape(&l->name, l->line.data, (size_t)(tab - l->line.data), err) != AB_OK ||
        ab_buf_addc(&l->name, '\0', err) != AB_OK) {
        return false;
    }
    l->name.len--;
    *gen = strtoll(tab + 1, NULL, 10);
    return true;
}

/* Lists the stream's runs, fetches them into the current and earlier sets
 * and computes the keys to delete (blocking: object storage calls). */
static enum ab_status prepare_stream(struct crm_dest *c, size_t stream, struct ab_error *err)
{
    struct crm_ledger *l = c->ledger;
    long long cur = c->cat->streams[stream].generation_id;
    struct list_ctx x = {.c = c};
    struct ab_buf root;
    enum ab_status rc;
    FILE *objs;
    int r;

    ab_keyruns_free(l->kr);
    l->kr = ab_keyruns_new(LEDGER_FAN_IN, err);
    if (!l->kr) {
        return err->code;
    }
    ab_buf_init(&root, AB_BUF_UNBOUNDED);
    rc = stream_root(c, stream, &root, err);
    x.root_len = root.len;
    x.fp = rc == AB_OK ? ab_keyruns_begin(l->kr, SET_OBJECTS, err) : NULL;
    if (!x.fp) {
        ab_buf_release(&root);
        return err->code;
    }
    rc = ab_objstore_list(l->os, root.data, on_listed, &x, err);
    ab_buf_release(&root);
    if (rc == AB_OK) {
        rc = ab_keyruns_end(l->kr, err);
    } else {
        struct ab_error ignored;

        ab_error_init(&ignored);
        (void)ab_keyruns_end(l->kr, &ignored);
    }
    if (rc != AB_OK) {
        return rc;
    }
    objs = ab_keyruns_open(l->kr, SET_OBJECTS, err);
    if (!objs) {
        return err->code;
    }
    while (rc == AB_OK && (r = ab_keyruns_next(objs, &l->line, err)) == 1) {
        long long gen = 0;
        FILE *fp;

        if (!object_line(l, &gen, err)) {
            continue;
        }
        if (gen > cur) {
            l->later_runs++;
            continue;
        }
        fp = ab_keyruns_begin(l->kr, gen == cur ? SET_CURRENT : SET_EARLIER, err);
        if (!fp) {
            return err->code;
        }
        rc = ab_objstore_get_file(l->os, l->name.data, fp, err);
        if (rc == AB_OK) {
            rc = ab_keyruns_end(l->kr, err);
        } else {
            struct ab_error ignored;

            ab_error_init(&ignored);
            (void)ab_keyruns_end(l->kr, &ignored);
        }
        l->runs_read++;
    }
    if (rc == AB_OK && r < 0) {
        rc = err->code;
    }
    if (rc == AB_OK) {
        rc = ab_keyruns_difference(l->kr, SET_EARLIER, SET_CURRENT, SET_REMOVE, err);
    }
    if (rc != AB_OK) {
        return ab_error_prefix(err, "stream '%s': reading the refresh ledger",
                               c->cat->streams[stream].name);
    }
    l->current_keys += ab_keyruns_entries(l->kr, SET_CURRENT);
    l->earlier_keys += ab_keyruns_entries(l->kr, SET_EARLIER);
    AB_INFO(c->em,
            "stream '%s': refresh ledger: %llu orders in generation %lld, %llu in earlier "
            "generations, %llu of them to delete (%llu merge passes)",
            c->cat->streams[stream].name,
            (unsigned long long)ab_keyruns_entries(l->kr, SET_CURRENT), cur,
            (unsigned long long)ab_keyruns_entries(l->kr, SET_EARLIER),
            (unsigned long long)ab_keyruns_entries(l->kr, SET_REMOVE),
            (unsigned long long)ab_keyruns_passes(l->kr));
    l->todo = ab_keyruns_open(l->kr, SET_REMOVE, err);
    return l->todo ? AB_OK : err->code;
}

/* Deletes the ledger objects of the stream's earlier generations. */
static enum ab_status remove_earlier_runs(struct crm_dest *c, size_t stream, struct ab_error *err)
{
    struct crm_ledger *l = c->ledger;
    long long cur = c->cat->streams[stream].generation_id;
    FILE *objs = ab_keyruns_open(l->kr, SET_OBJECTS, err);
    enum ab_status rc = AB_OK;
    int r;

    l->todo = NULL; /* ab_keyruns_open closed it */
    if (!objs) {
        return err->code;
    }
    while (rc == AB_OK && (r = ab_keyruns_next(objs, &l->line, err)) == 1) {
        long long gen = 0;

        if (object_line(l, &gen, err) && gen < cur) {
            rc = ab_objstore_delete(l->os, l->name.data, err);
            l->runs_removed += rc == AB_OK;
        }
    }
    if (rc == AB_OK && r < 0) {
        rc = err->code;
    }
    return rc;
}

static void ledger_fail(struct crm_dest *c, const struct ab_error *err)
{
    crm_refresh_sweep_done(c, false);
    ab_driver_fail(c->d, err);
}

static void send_next(struct crm_dest *c);

static void on_deleted(void *arg, const struct ab_http_resp *resp)
{
    struct crm_dest *c = arg;
    struct crm_ledger *l = c->ledger;
    struct ab_error err;
    yajl_val root;
    yajl_val results;

    ab_error_init(&err);
    if (resp->status != 200) {
        crm_refresh_sweep_fail(c, "deleting orders of earlier generations", resp);
        return;
    }
    root = ab_json_parse(resp->body, resp->body_len, &err);
    results =
        crm_batch_results(root, l->nbody, "a batchDelete of orders of earlier generations", &err);
    if (!results) {
        ab_json_free(root);
        ledger_fail(c, &err);
        return;
    }
    crm_count_results(results, l->results);
    ab_json_free(root);
    send_next(c);
}

/* Appends the n bytes at src, a ledger field, unescaped as a JSON string. */
static enum ab_status add_unescaped(struct crm_ledger *l, const char *src, size_t n,
                                    struct ab_error *err)
{
    enum ab_status rc;

    ab_buf_reset(&l->field);
    rc = ab_keyrun_unescape(&l->field, src, n, err);
    return rc == AB_OK ? ab_json_write_str(&l->body, l->field.data, l->field.len, err) : rc;
}

/* Appends the delete of one ledger line ("<brand>\|<id>\t<updated_at>"). */
static enum ab_status add_delete(struct crm_ledger *l, struct ab_error *err)
{
    const char *s = l->line.data;
    size_t klen = ab_keyrun_key_len(s, l->line.len);
    const char *sep = NULL;
    size_t i;
    enum ab_status rc;

    /* the separator: the first "\|" not inside an escape */
    for (i = 0; i + 1 < klen; i++) {
        if (s[i] == '\\' && s[i + 1] == '|') {
            sep = s + i;
            break;
        }
        if (s[i] == '\\') {
            i++;
        }
    }
    if (!sep || klen >= l->line.len) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "refresh ledger: a malformed key line");
    }
    rc = ab_buf_adds(&l->body, l->nbody ? ",{\"external_id\":" : "{\"external_id\":", err);
    if (rc == AB_OK) {
        rc = add_unescaped(l, sep + 2, klen - (size_t)(sep + 2 - s), err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&l->body, ",\"brand\":", err);
    }
    if (rc == AB_OK) {
        rc = add_unescaped(l, s, (size_t)(sep - s), err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&l->body, ",\"deleted_at\":", err);
    }
    if (rc == AB_OK) {
        rc = add_unescaped(l, s + klen + 1, l->line.len - klen - 1, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(&l->body, '}', err);
    }
    return rc;
}

static void submit_delete(struct crm_dest *c)
{
    struct crm_ledger *l = c->ledger;
    struct ab_error err;

    ab_error_init(&err);
    l->requests++;
    if (crm_post_batch(c, CRM_ORDERS, CRM_DELETE, &l->body,
                       "orders batchDelete (earlier generations)", on_deleted, &err) != AB_OK) {
        ledger_fail(c, &err);
    }
}

/* The next stream to sweep from l->stream on, or c->cat->n. */
static size_t next_stream(const struct crm_dest *c, size_t from)
{
    while (from < c->cat->n &&
           !(c->gens[from].sweeping && c->stream_obj[from] == CRM_ORDERS && c->gens[from].ledger)) {
        from++;
    }
    return from;
}

/* Sends the next delete batch; at the end of a stream removes its earlier
 * runs and moves to the next stream; at the end of every stream says so. */
static void send_next(struct crm_dest *c)
{
    struct crm_ledger *l = c->ledger;
    struct ab_error err;
    enum ab_status rc = AB_OK;

    ab_error_init(&err);
    for (;;) {
        int r = 1;

        if (!l->todo) {
            if (l->stream >= c->cat->n) {
                l->done = true;
                crm_refresh_sweep_done(c, true);
                return;
            }
            rc = prepare_stream(c, l->stream, &err);
            if (rc != AB_OK) {
                ledger_fail(c, &err);
                return;
            }
        }
        ab_buf_reset(&l->body);
        l->nbody = 0;
        rc = ab_buf_adds(&l->body, "{\"records\":[", &err);
        while (rc == AB_OK && l->nbody < c->batch_size &&
               (r = ab_keyruns_next(l->todo, &l->line, &err)) == 1) {
            size_t mark = l->body.len;

            rc = add_delete(l, &err);
            if (rc == AB_OK && l->nbody > 0 && l->body.len + 2 > c->max_bytes) {
                /* the line goes again into the next batch */
                ab_buf_truncate(&l->body, mark);
                if (fseek(l->todo, -(long)(l->line.len + 1), SEEK_CUR) != 0) {
                    rc = ab_error_set(&err, AB_ERR_IO, "key ledger: cannot seek");
                }
                break;
            }
            l->nbody++;
        }
        if (rc == AB_OK && r < 0) {
            rc = err.code;
        }
        if (rc == AB_OK) {
            rc = ab_buf_adds(&l->body, "]}", &err);
        }
        if (rc != AB_OK) {
            ledger_fail(c, &err);
            return;
        }
        if (l->nbody) {
            submit_delete(c);
            return;
        }
        /* this stream's orders are deleted: its earlier runs go */
        rc = remove_earlier_runs(c, l->stream, &err);
        if (rc != AB_OK) {
            (void)ab_error_prefix(&err, "stream '%s': removing earlier generations' ledger runs",
                                  c->cat->streams[l->stream].name);
            ledger_fail(c, &err);
            return;
        }
        ab_keyruns_free(l->kr);
        l->kr = NULL;
        l->stream = next_stream(c, l->stream + 1);
    }
}

bool crm_ledger_sweeps(const struct crm_dest *c)
{
    return c->ledger && next_stream(c, 0) < c->cat->n;
}

void crm_ledger_sweep(struct crm_dest *c)
{
    struct crm_ledger *l = c->ledger;

    if (!crm_ledger_sweeps(c)) {
        crm_refresh_sweep_done(c, true);
        return;
    }
    l->started = true;
    l->stream = next_stream(c, 0);
    send_next(c);
}

/* Stops a listing at its first key. */
static enum ab_status first_key(void *arg, const char *key, struct ab_error *err)
{
    (void)key;
    *(bool *)arg = true;
    return ab_error_set(err, AB_ERR_REJECTED, "enough");
}

void crm_ledger_check(struct ab_driver *d)
{
    struct ab_objstore_cfg cfg;
    struct ab_objstore *os;
    const char *prefix = NULL;
    const char *run_name = NULL;
    struct ab_error err;
    struct ab_buf root;
    enum ab_status rc;
    bool found = false;
    size_t n;

    if (!ab_driver_object_storage(d, &cfg, &prefix, &run_name)) {
        return;
    }
    ab_error_init(&err);
    ab_buf_init(&root, AB_BUF_UNBOUNDED);
    n = strlen(prefix);
    while (n > 0 && prefix[n - 1] == '/') {
        n--;
    }
    os = ab_objstore_new(&cfg, &err);
    rc = os ? ab_buf_printf(&root, &err, "%.*s%s" LEDGER_DIR, (int)n, prefix, n ? "/" : "")
            : err.code;
    if (rc == AB_OK) {
        rc = ab_objstore_list(os, root.data, first_key, &found, &err);
    }
    if (rc != AB_OK && !(rc == AB_ERR_REJECTED && found)) {
        AB_WARN(ab_driver_emitter(d),
                "object storage: listing the refresh ledger of orders failed (%s): a refresh of "
                "an orders stream lists, reads and deletes its ledger under %s and would fail; "
                "the access key needs to list, get and delete objects under the prefix",
                err.message, root.data ? root.data : LEDGER_DIR);
    }
    ab_objstore_free(os);
    ab_buf_release(&root);
}

void crm_ledger_summary(struct crm_dest *c, struct ab_emitter *em)
{
    const struct crm_ledger *l = c->ledger;

    if (!l) {
        return;
    }
    if (l->runs_put) {
        AB_INFO(em, "refresh ledger: %llu runs put holding %llu order keys",
                (unsigned long long)l->runs_put, (unsigned long long)l->keys_put);
    }
    if (l->started) {
        AB_INFO(em,
                "refresh of orders: %s; %llu ledger runs read (%llu keys of this generation, "
                "%llu of earlier ones); earlier generations: deleted %llu, stale (written again "
                "meanwhile, kept) %llu, not_found %llu, rejected %llu; %llu earlier runs "
                "removed%s",
                l->done ? "orders of earlier generations removed"
                        : "removal of earlier generations not finished",
                (unsigned long long)l->runs_read, (unsigned long long)l->current_keys,
                (unsigned long long)l->earlier_keys, (unsigned long long)l->results[CRM_R_DELETED],
                (unsigned long long)l->results[CRM_R_STALE],
                (unsigned long long)l->results[CRM_R_NOT_FOUND],
                (unsigned long long)l->results[CRM_R_REJECTED], (unsigned long long)l->runs_removed,
                l->later_runs ? " (runs of later generations left alone)" : "");
    }
}

void crm_ledger_free(struct crm_dest *c)
{
    struct crm_ledger *l = c->ledger;

    if (!l) {
        return;
    }
    ab_keyruns_free(l->kr);
    ab_objstore_free(l->os);
    ab_json_arena_free(l->arena);
    free(l->seen);
    ab_buf_release(&l->lines);
    ab_buf_release(&l->sorted);
    ab_buf_release(&l->name);
    ab_buf_release(&l->line);
    ab_buf_release(&l->field);
    ab_buf_release(&l->body);
    free(l);
    c->ledger = NULL;
}
