/* shops.c - destination-shops: the ops table, config, records, states, flushes. */
/* SPDX-License-Identifier: MIT */
#include "shops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <unistd.h>

#include "ab/json.h"
#include "ab/log.h"
#include "ab/options.h"
#include "ab/protocol.h"

#include "rules.h"
#include "shops_int.h"

#define SHP_NAME "destination-shops"
/* A flush forced by a waiting state seals the open merge import at most
 * this often (a state blocked by the replace import would otherwise force a
 * commit at every loop turn). */
#define FORCED_SEAL_EVERY_US ((int64_t)10 * 1000 * 1000)

/* ---- config ---------------------------------------------------------------- */

static size_t clamp_size(int64_t v, size_t lo, size_t hi)
{
    if (v < (int64_t)lo) {
        return lo;
    }
    if ((uint64_t)v > hi) {
        return hi;
    }
    return (size_t)v;
}

enum ab_status shp_config_load(struct shp_config *c, yajl_val cfg, struct ab_error *err)
{
    const char *url = ab_json_get_str(cfg, "api_url", NULL);
    const char *fields[] = {"client_id", "client_secret", "channel"};
    const char *values[3];
    size_t n;
    size_t i;
    int64_t interval;

    memset(c, 0, sizeof(*c));
    if (!url || !*url) {
        return ab_error_set(err, AB_ERR_CONFIG, "api_url: required");
    }
    for (i = 0; i < 3; i++) {
        values[i] = ab_json_get_str(cfg, fields[i], NULL);
        if (!values[i] || !*values[i]) {
            return ab_error_set(err, AB_ERR_CONFIG, "%s: required", fields[i]);
        }
    }
    n = strlen(url);
    while (n > 0 && url[n - 1] == '/') {
        n--;
    }
    c->api_url = malloc(n + 1);
    if (!c->api_url) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (config)");
    }
    memcpy(c->api_url, url, n);
    c->api_url[n] = '\0';
    c->client_id = values[0];
    c->client_secret = values[1];
    c->channel = values[2];
    /* defaults come from spec.json and the common groups, filled in by validation */
    c->label_prefix = ab_opt_str(cfg, "label_prefix");
    c->spool_dir = ab_opt_str(cfg, "spool_dir");
    if (c->spool_dir && !*c->spool_dir) {
        c->spool_dir = NULL;
    }
    c->lim.max_items = clamp_size(ab_opt_int(cfg, "part_max_items"), 1, 1000);
    c->lim.max_bytes = clamp_size(ab_opt_int(cfg, "part_max_bytes"), 1024, 8388608);
    c->gzip = ab_opt_bool(cfg, "gzip");
    c->min_commit_records =
        (uint64_t)clamp_size(ab_opt_int(cfg, "min_commit_records"), 1, SIZE_MAX);
    interval = ab_opt_int(cfg, "max_commit_interval_seconds");
    c->max_commit_interval_us = (interval < 1 ? 1 : interval) * 1000000;
    c->spool_memory_bytes = clamp_size(ab_opt_int(cfg, "spool_memory_bytes"), 0, SIZE_MAX);
    c->max_line_bytes = clamp_size(ab_opt_int(cfg, "max_line_bytes"), 0, SIZE_MAX);
    c->deactivate_without_complete = ab_opt_bool(cfg, "replace_deactivate_without_complete");
    c->max_in_flight = clamp_size(ab_opt_int(cfg, "max_in_flight"), 1, 64);
    if (!c->label_prefix || strlen(c->label_prefix) > 64 || !*c->label_prefix) {
        return ab_error_set(err, AB_ERR_CONFIG, "label_prefix: must be 1 to 64 characters");
    }
    return AB_OK;
}

void shp_config_release(struct shp_config *c)
{
    free(c->api_url);
    c->api_url = NULL;
}

/* ---- open ------------------------------------------------------------------ */

static unsigned object_index(const char *name)
{
    const char *const *o = shp_objects();
    unsigned i;

    for (i = 0; o[i]; i++) {
        if (strcmp(o[i], name) == 0) {
            return i;
        }
    }
    return SHP_NOBJ;
}

static bool maps_key(const struct ab_mapping *m)
{
    size_t i;

    if (m->identity) {
        return true;
    }
    for (i = 0; i < m->nfields; i++) {
        if (strcmp(m->fields[i].to, "sku") == 0) {
            return true;
        }
    }
    return false;
}

/* Resolves each catalog stream to its object and track. */
static enum ab_status plan_streams(struct shp_dest *s, struct ab_error *err)
{
    size_t i;

    s->nstreams = s->cat->n;
    s->streams = calloc(s->nstreams ? s->nstreams : 1, sizeof(*s->streams));
    if (!s->streams) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (streams)");
    }
    for (i = 0; i < s->nstreams; i++) {
        const struct ab_stream *cs = &s->cat->streams[i];
        struct shp_stream *st = &s->streams[i];

        if (cs->dest_mode != AB_DEST_APPEND && cs->dest_mode != AB_DEST_APPEND_DEDUP &&
            cs->dest_mode != AB_DEST_OVERWRITE) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "stream '%s': destination_sync_mode '%s' is not supported "
                                "(append, append_dedup, overwrite)",
                                cs->name, cs->dest_mode_name ? cs->dest_mode_name : "?");
        }
        st->map = ab_mappings_resolve(&s->maps, cs->name, cs->ns, shp_objects(), err);
        if (!st->map && err->code == AB_ERR_CONFIG && cs->destination_object) {
            /* no stream_mappings entry: the catalog's destination_object_name
             * (data activation) names the object, fields as they come */
            ab_error_init(err);
            st->map =
                ab_mappings_resolve(&s->maps, cs->destination_object, NULL, shp_objects(), err);
        }
        if (!st->map) {
            return err->code;
        }
        st->obj = object_index(st->map->object);
        if (st->obj >= SHP_NOBJ) {
            return ab_error_set(err, AB_ERR_CONFIG, "stream '%s': unknown object '%s'", cs->name,
                                st->map->object);
        }
        if (!maps_key(st->map)) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "stream_mappings: the entry of stream '%s' does not map the key "
                                "field 'sku'",
                                cs->name);
        }
        if (cs->dest_mode != AB_DEST_OVERWRITE && cs->generation_id > 0 &&
            cs->minimum_generation_id == cs->generation_id) {
            /* A truncating refresh (Airbyte's "refresh and remove records",
             * or overwrite from a platform that speaks refreshes): what
             * earlier generations loaded goes, which a replace import does
             * atomically, committed only after COMPLETE. */
            AB_INFO(s->em,
                    "stream '%s': generation %lld removes what earlier generations loaded: "
                    "one replace import, committed only after STREAM_STATUS COMPLETE",
                    cs->name, (long long)cs->generation_id);
        }
        if (cs->dest_mode == AB_DEST_OVERWRITE ||
            (cs->generation_id > 0 && cs->minimum_generation_id == cs->generation_id)) {
            st->overwrite = true;
            st->replace_track = true;
            s->replace_objects |= 1U << st->obj;
            s->has_overwrite = true;
        }
    }
    for (i = 0; i < s->nstreams; i++) {
        struct shp_stream *st = &s->streams[i];

        if (st->overwrite) {
            continue;
        }
        if (s->replace_objects & (1U << st->obj)) {
            /* A merge import committed before the replace would have its
             * items deactivated by it: they join the replace import. */
            st->replace_track = true;
            AB_INFO(s->em,
                    "stream '%s' (%s) loads '%s', which an overwrite stream replaces: its "
                    "records join the replace import",
                    s->cat->streams[i].name, ab_dest_mode_name(s->cat->streams[i].dest_mode),
                    shp_object_name(st->obj));
        } else {
            s->merge_objects |= 1U << st->obj;
        }
    }
    for (i = 0; i < s->nstreams; i++) {
        AB_INFO(s->em, "stream '%s' -> %s (%s, %s import)", s->cat->streams[i].name,
                shp_object_name(s->streams[i].obj), ab_dest_mode_name(s->cat->streams[i].dest_mode),
                s->streams[i].replace_track ? "replace" : "merge");
    }
    return AB_OK;
}

/* 16 hex digits from /dev/urandom (the clock and pid when unavailable). */
static void make_run_id(char out[17])
{
    unsigned char b[8];
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    bool ok = false;
    size_t i;

    if (fd >= 0) {
        ok = read(fd, b, sizeof(b)) == (ssize_t)sizeof(b);
        (void)close(fd);
    }
    if (ok) {
        for (i = 0; i < sizeof(b); i++) {
            v = (v << 8) | b[i];
        }
    } else {
        v = ((uint64_t)ab_now_us() * (uint64_t)0x9E3779B97F4A7C15U) ^ (uint64_t)getpid();
    }
    (void)snprintf(out, 17, "%016llx", (unsigned long long)v);
}

static void make_sync_ident(struct shp_dest *s)
{
    size_t i;

    for (i = 0; i < s->cat->n; i++) {
        if (s->cat->streams[i].sync_id >= 0) {
            (void)snprintf(s->sync_ident, sizeof(s->sync_ident), "%lld",
                           (long long)s->cat->streams[i].sync_id);
            return;
        }
    }
    (void)snprintf(s->sync_ident, sizeof(s->sync_ident), "%s", s->run_id);
}

static enum ab_status shp_open(struct ab_driver *d, void **self, struct ab_error *err)
{
    struct shp_dest *s = calloc(1, sizeof(*s));
    yajl_val cfg = ab_driver_config(d);
    struct ab_http_opts o;
    enum ab_status rc;

    if (!s) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (destination)");
    }
    *self = s; /* close() frees whatever is built, also after a failure */
    s->d = d;
    s->em = ab_driver_emitter(d);
    s->ck = ab_driver_ckpt(d);
    s->cat = ab_driver_catalog(d);
    ab_buf_init(&s->item, AB_BUF_UNBOUNDED);
    ab_buf_init(&s->received, AB_BUF_UNBOUNDED);
    ab_buf_init(&s->scratch, AB_BUF_UNBOUNDED);
    ab_buf_init(&s->rule_errors, AB_BUF_UNBOUNDED);
    rc = shp_config_load(&s->cfg, cfg, err);
    if (rc != AB_OK) {
        return rc;
    }
    rc = ab_driver_add_secret(d, s->cfg.client_secret, err);
    if (rc != AB_OK) {
        return rc;
    }
    rc = ab_driver_check_url(s->cfg.api_url, "api_url", err);
    if (rc != AB_OK) {
        return rc;
    }
    rc = ab_mappings_parse(&s->maps, ab_json_get(cfg, "stream_mappings"), shp_objects(), err);
    if (rc != AB_OK) {
        return rc;
    }
    rc = plan_streams(s, err);
    if (rc != AB_OK) {
        return rc;
    }
    make_run_id(s->run_id);
    make_sync_ident(s);
    ab_spool_budget_init(&s->budget, s->cfg.spool_memory_bytes);
    s->backlog_cap = 4 * s->cfg.max_in_flight < 8 ? 8 : 4 * s->cfg.max_in_flight;

    ab_driver_http_opts(d, &o);
    o.user_agent = SHP_NAME "/" AB_VERSION;
    s->h = ab_http_new(&o, err);
    if (!s->h) {
        return err->code;
    }
    s->auth =
        shp_auth_new(d, s->cfg.api_url, s->cfg.client_id, s->cfg.client_secret, &o, true, err);
    if (!s->auth) {
        return err->code;
    }
    ab_http_set_auth(s->h, ab_oauth2_provide, s->auth);
    ab_driver_set_http(d, s->h);
    AB_INFO(s->em,
            "channel '%s'; imports labelled '%s:%s:<n>'; parts of up to %zu items / %zu bytes; "
            "commit every %llu records or %lld s",
            s->cfg.channel, s->cfg.label_prefix, s->sync_ident, s->cfg.lim.max_items,
            s->cfg.lim.max_bytes, (unsigned long long)s->cfg.min_commit_records,
            (long long)(s->cfg.max_commit_interval_us / 1000000));
    if (ab_driver_dry_run(d)) {
        /* no token, no clean-up of stale imports: nothing is sent */
        return AB_OK;
    }
    return shp_recover(s, err);
}

/* ---- records --------------------------------------------------------------- */

static enum ab_status reject_local(struct shp_dest *s, const struct ab_record *rec,
                                   const char *field, const char *code, const char *message,
                                   struct ab_error *err)
{
    struct ab_buf errs;
    enum ab_status rc;

    yajl_val data = ab_record_tree(rec, err);

    if (!data) {
        return err->code;
    }
    ab_buf_init(&errs, AB_BUF_UNBOUNDED);
    ab_buf_reset(&s->scratch);
    rc = ab_json_write(&s->scratch, data, err);
    if (rc == AB_OK) {
        rc = ab_buf_adds(&errs, "[{\"field\":", err);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(&errs, field, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&errs, ",\"code\":", err);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(&errs, code, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&errs, ",\"message\":", err);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(&errs, message, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&errs, "}]", err);
    }
    if (rc == AB_OK) {
        struct ab_rejection rj = {.stream = rec->stream,
                                  .seq = rec->seq,
                                  .lineno = rec->lineno,
                                  .rejected_by = "destination",
                                  .received = s->scratch.data,
                                  .received_len = s->scratch.len,
                                  .errors_json = errs.data,
                                  .mapping = s->streams[rec->stream].map};

        rc = ab_driver_reject_ex(s->d, &rj, err);
    }
    if (rc == AB_OK) {
        s->stats.rejected_local++;
    }
    ab_buf_release(&errs);
    return rc;
}

/* The target fields of a record's item through its stream's mapping. */
struct mapped_item {
    const struct ab_mapping *map;
    yajl_val data;
};

static yajl_val mapped_field(void *arg, const char *field)
{
    const struct mapped_item *m = arg;

    return ab_mapping_get(m->map, m->data, field);
}

/* Shops' item rules (rules.h), checked before the item is spooled, in a
 * real run as in a dry run: an item breaking one is rejected as Shops would
 * reject it (rejected_by "target", its field and code) and never sent.
 * *rejected tells. data: the record's data as a tree (ab_record_tree()). A
 * deactivated item (a deletion) was rewritten: it is parsed back; any other
 * item is read through the mapping. */
static enum ab_status check_rules(struct shp_dest *s, const struct ab_record *rec, yajl_val data,
                                  unsigned obj, bool *rejected, struct ab_error *err)
{
    struct mapped_item view = {s->streams[rec->stream].map, data};
    struct shp_val vals[SHP_MAX_RULES];
    yajl_val parsed = NULL;
    enum ab_status rc;

    *rejected = false;
    if (rec->deleted) {
        parsed = ab_json_parse(s->item.data, s->item.len, err);
        if (!parsed) {
            return err->code;
        }
        shp_vals_of_object(obj, parsed, vals);
    } else if (view.map->identity) {
        shp_vals_of_object(obj, data, vals);
    } else {
        shp_vals_of_fields(obj, mapped_field, &view, vals);
    }
    rc = shp_check_vals(obj, vals, &s->rule_errors, err);
    ab_json_free(parsed);
    if (rc != AB_OK || s->rule_errors.len == 0) {
        return rc;
    }
    *rejected = true;
    ab_buf_reset(&s->scratch);
    rc = ab_json_write(&s->scratch, data, err);
    if (rc == AB_OK) {
        struct ab_rejection rj = {.stream = rec->stream,
                                  .seq = rec->seq,
                                  .lineno = rec->lineno,
                                  .rejected_by = "target",
                                  .received = s->scratch.data,
                                  .received_len = s->scratch.len,
                                  .sent = s->item.data,
                                  .sent_len = s->item.len,
                                  .errors_json = s->rule_errors.data,
                                  .mapping = s->streams[rec->stream].map};

        rc = ab_driver_reject_ex(s->d, &rj, err);
    }
    if (rc == AB_OK) {
        s->stats.rejected_rules++;
    }
    return rc;
}

/* Where the key comes from, for messages: "sku" or "sku (from 'a.b')". */
static void key_source(const struct ab_mapping *m, char *out, size_t size)
{
    char path[256];
    size_t i;

    (void)snprintf(out, size, "'sku'");
    if (m->identity) {
        return;
    }
    for (i = 0; i < m->nfields; i++) {
        if (strcmp(m->fields[i].to, "sku") == 0) {
            (void)snprintf(out, size, "'sku' (mapped from '%s')",
                           ab_path_str(&m->fields[i].from, path, sizeof(path)));
            return;
        }
    }
}

static struct shp_import *track_import(struct shp_dest *s, bool replace, struct ab_error *err)
{
    struct shp_import **slot = replace ? &s->replace_imp : &s->merge_cur;

    if (!*slot) {
        *slot = shp_imp_new(s, replace, err);
    }
    return *slot;
}

/* Whether lazy data goes out as it came with every check passed, read
 * from its members without a tree: an identity mapping, compact data with
 * no top-level Airbyte member (so no deletion either), a sku, values the
 * item rules can read from the text and break none of, and an item that
 * fits a part. Anything else (*ok false) goes the tree's way, which then
 * decides as it always did, with the same messages. AB_ERR_NOMEM only. */
static enum ab_status as_it_came(struct shp_dest *s, const struct ab_record *rec,
                                 const struct shp_stream *st, bool *ok, struct ab_error *err)
{
    struct shp_val vals[SHP_MAX_RULES];
    enum ab_status rc;

    *ok = false;
    if (!rec->members || !rec->data_compact || rec->deleted ||
        !ab_mapping_verbatim_members(st->map, rec->data_text, rec->members, rec->nmembers, NULL,
                                     NULL) ||
        !shp_vals_of_members(st->obj, rec->data_text, rec->members, rec->nmembers, vals) ||
        vals[SHP_RULE_SKU].type == SHP_V_NULL ||
        !shp_item_fits_alone(shp_object_name(st->obj), rec->data_len, &s->cfg.lim)) {
        return AB_OK;
    }
    rc = shp_check_vals(st->obj, vals, &s->rule_errors, err);
    *ok = rc == AB_OK && s->rule_errors.len == 0;
    return rc;
}

/* The item of a record through the tree (mapped, deactivated, checked):
 * into s->item, and the record as received into s->received when it is
 * not the item's very bytes. *done: rejected (or failed) here. */
static enum ab_status tree_item(struct shp_dest *s, const struct ab_record *rec,
                                const struct shp_stream *st, bool *done, struct ab_error *err)
{
    const char *object = shp_object_name(st->obj);
    enum ab_status rc;
    bool verbatim;
    bool rejected = false;
    char msg[512];
    char src[300];
    yajl_val data;

    *done = true;
    data = ab_record_tree(rec, err);
    if (!data) {
        return err->code;
    }
    if (ab_json_is_null(ab_mapping_get(st->map, data, "sku"))) {
        key_source(st->map, src, sizeof(src));
        (void)snprintf(msg, sizeof(msg), "required key field %s is missing or null", src);
        return reject_local(s, rec, "sku", "missing_field", msg, err);
    }
    ab_buf_reset(&s->item);
    rc = ab_mapping_write_span(st->map, data, rec->data_text, rec->data_len, rec->data_compact,
                               NULL, NULL, &s->item, &verbatim, err);
    if (rc == AB_ERR_REJECTED) {
        return reject_local(s, rec, "", "invalid_type", err->message, err);
    }
    if (rc == AB_OK && rec->deleted) {
        rc = shp_deactivate_item(st->obj == SHP_PRODUCTS,
                                 ab_json_str(ab_json_get(data, "_ab_cdc_deleted_at")), &s->item,
                                 err);
        s->stats.deleted++;
    }
    if (rc == AB_OK) {
        rc = check_rules(s, rec, data, st->obj, &rejected, err);
    }
    if (rc != AB_OK || rejected) {
        return rc;
    }
    if (!shp_item_fits_alone(object, s->item.len, &s->cfg.lim)) {
        (void)snprintf(msg, sizeof(msg),
                       "the mapped %s item is %zu bytes: a part of one item would exceed "
                       "part_max_bytes (%zu)",
                       object, s->item.len, s->cfg.lim.max_bytes);
        return reject_local(s, rec, "", "too_long", msg, err);
    }
    /* The record as received is spooled beside the item for a rejection
     * at upload or commit, unless the item is its very bytes. */
    ab_buf_reset(&s->received);
    if (!rec->data_text || rec->data_len != s->item.len ||
        memcmp(rec->data_text, s->item.data, s->item.len) != 0) {
        rc = ab_json_write(&s->received, data, err);
        if (rc != AB_OK) {
            return rc;
        }
    }
    *done = false;
    return AB_OK;
}

static enum ab_status shp_record(void *self, const struct ab_record *rec, struct ab_error *err)
{
    struct shp_dest *s = self;
    const struct shp_stream *st = &s->streams[rec->stream];
    struct shp_import *imp;
    struct shp_rec_meta meta;
    const char *item;
    size_t len;
    const char *received = NULL;
    size_t rlen = 0;
    enum ab_status rc;
    bool ok;

    rc = as_it_came(s, rec, st, &ok, err);
    if (rc != AB_OK) {
        return rc;
    }
    if (ok) {
        item = rec->data_text; /* the item is the data's very bytes */
        len = rec->data_len;
    } else {
        bool done;

        rc = tree_item(s, rec, st, &done, err);
        if (rc != AB_OK || done) {
            return rc;
        }
        item = s->item.data;
        len = s->item.len;
        received = s->received.data;
        rlen = s->received.len;
    }
    imp = track_import(s, st->replace_track, err);
    if (!imp) {
        return err->code;
    }
    if (!shp_imp_can_take(s, imp, st->obj, len)) {
        if (imp->replace_track) {
            return ab_error_set(err, AB_ERR_CONFIG,
                                "the full refresh does not fit one replace import (%d parts): "
                                "raise part_max_items or part_max_bytes",
                                SHP_MAX_PARTS);
        }
        shp_imp_seal(s, imp);
        imp = track_import(s, false, err);
        if (!imp) {
            return err->code;
        }
    }
    meta.stream = (uint32_t)rec->stream;
    meta.seq = rec->seq;
    meta.lineno = rec->lineno;
    meta.item_len = 0;
    rc = shp_imp_add(s, imp, st->obj, &meta, item, len, received, rlen, err);
    if (rc != AB_OK) {
        return rc;
    }
    s->stats.records++;
    if (imp == s->merge_cur) {
        shp_wake_at(s, imp->created_us + s->cfg.max_commit_interval_us);
    }
    shp_pump(s);
    return AB_OK;
}

/* ---- states, statuses, flushes ----------------------------------------------- */

static enum ab_status set_checkpoint(struct shp_import *imp, const struct ab_buf *text,
                                     struct ab_error *err)
{
    char *c;

    if (!imp) {
        return AB_OK;
    }
    c = malloc(text->len + 1);
    if (!c) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory (checkpoint)");
    }
    memcpy(c, text->data ? text->data : "", text->len);
    c[text->len] = '\0';
    free(imp->checkpoint);
    imp->checkpoint = c;
    imp->checkpoint_len = text->len;
    imp->records_at_state = imp->records;
    return AB_OK;
}

static bool merge_due(const struct shp_dest *s, int64_t now, bool at_state)
{
    const struct shp_import *imp = s->merge_cur;

    if (!imp || imp->records == 0) {
        return false;
    }
    if (now - imp->created_us >= s->cfg.max_commit_interval_us) {
        return true;
    }
    return at_state && imp->records >= s->cfg.min_commit_records;
}

static enum ab_status shp_state(void *self, const struct ab_msg *msg, struct ab_error *err)
{
    struct shp_dest *s = self;
    struct ab_buf members;
    struct ab_buf text;
    bool merge = true;
    bool replace = true;
    enum ab_status rc;

    ab_buf_init(&members, AB_BUF_UNBOUNDED);
    ab_buf_init(&text, AB_BUF_UNBOUNDED);
    if (msg->state_type == AB_STATE_STREAM) {
        long idx = ab_catalog_find(s->cat, msg->stream, msg->ns);

        merge = idx >= 0 && !s->streams[idx].replace_track;
        replace = idx >= 0 && s->streams[idx].replace_track;
    }
    rc = ab_proto_state_members(&members, msg->state, err);
    if (rc == AB_OK) {
        rc = shp_checkpoint_text(&text, members.data ? members.data : "", members.len, err);
    }
    if (rc == AB_OK && merge) {
        rc = set_checkpoint(s->merge_cur, &text, err);
    }
    if (rc == AB_OK && replace) {
        rc = set_checkpoint(s->replace_imp, &text, err);
    }
    ab_buf_release(&text);
    ab_buf_release(&members);
    if (rc != AB_OK) {
        return rc;
    }
    if (merge && merge_due(s, ab_now_us(), true)) {
        shp_imp_seal(s, s->merge_cur);
    }
    shp_pump(s);
    return AB_OK;
}

static enum ab_status shp_stream_status(void *self, size_t stream, enum ab_stream_status status,
                                        struct ab_error *err)
{
    struct shp_dest *s = self;

    (void)err;
    if (stream < s->nstreams && status != AB_STATUS_NONE) {
        /* STARTED/RUNNING after a COMPLETE would be odd; only the last
         * terminal status matters for the replace decision. */
        if (status == AB_STATUS_COMPLETE || status == AB_STATUS_INCOMPLETE ||
            s->streams[stream].status == AB_STATUS_NONE) {
            s->streams[stream].status = status;
        }
    }
    return AB_OK;
}

/* The wake-up timer: the commit interval of the open merge import, and the
 * waits of imports asking again whether their commit finished. */
static enum ab_status on_wake(void *arg, uint64_t id, struct ab_error *err)
{
    struct shp_dest *s = arg;

    (void)err;
    if (id == s->timer) {
        s->timer = 0;
    }
    if (s->failed) {
        return AB_OK;
    }
    if (merge_due(s, ab_now_us(), false)) {
        shp_imp_seal(s, s->merge_cur);
    }
    shp_pump(s);
    if (s->merge_cur && s->merge_cur->records > 0) {
        shp_wake_at(s, s->merge_cur->created_us + s->cfg.max_commit_interval_us);
    }
    return AB_OK;
}

void shp_wake_at(struct shp_dest *s, int64_t when_us)
{
    struct ab_loop *loop = ab_driver_loop(s->d);
    struct ab_error err;

    if (s->timer && s->timer_due_us <= when_us) {
        return;
    }
    ab_loop_del_timer(loop, s->timer);
    ab_error_init(&err);
    s->timer = ab_loop_add_timer(loop, when_us - ab_now_us(), 0, on_wake, s, &err);
    s->timer_due_us = when_us;
    if (!s->timer) {
        ab_driver_fail(s->d, &err);
    }
}

static bool shp_busy(const void *self)
{
    const struct shp_dest *s = self;

    if (s->failed) {
        return false;
    }
    return shp_sealed_pending(s) >= 2 || shp_ready_parts(s) >= s->backlog_cap;
}

/* The names of the overwrite streams without COMPLETE into out; true when
 * every overwrite stream completed. */
static bool replace_complete(const struct shp_dest *s, char *out, size_t size)
{
    size_t used = 0;
    size_t i;
    bool all = true;

    out[0] = '\0';
    for (i = 0; i < s->nstreams; i++) {
        if (!s->streams[i].overwrite || s->streams[i].status == AB_STATUS_COMPLETE) {
            continue;
        }
        all = false;
        if (used < size) {
            int k = snprintf(out + used, size - used, "%s'%s'", used ? ", " : "",
                             s->cat->streams[i].name);

            used += k > 0 ? (size_t)k : 0;
        }
    }
    return all;
}

static enum ab_status final_replace(struct shp_dest *s, struct ab_error *err)
{
    char missing[300];
    bool complete = replace_complete(s, missing, sizeof(missing));
    /* Input that stopped at a bad line is no end of the source's data: the
     * catalog is never replaced from it, whatever the flag says. */
    bool input_failed = ab_driver_input_failed(s->d);

    if (!input_failed && (complete || s->cfg.deactivate_without_complete)) {
        if (!s->replace_imp && !track_import(s, true, err)) {
            return err->code;
        }
        if (!complete) {
            (void)snprintf(s->replace_note, sizeof(s->replace_note),
                           "stream(s) %s reported no COMPLETE status, but "
                           "replace_deactivate_without_complete is set: the end of input counts "
                           "as completion and items not sent are deactivated",
                           missing);
            AB_WARN(s->em, "replace: %s", s->replace_note);
        } else {
            (void)snprintf(s->replace_note, sizeof(s->replace_note),
                           "every overwrite stream reported COMPLETE: items not sent are "
                           "deactivated");
        }
        shp_imp_seal(s, s->replace_imp);
        return AB_OK;
    }
    if (input_failed) {
        (void)snprintf(s->replace_note, sizeof(s->replace_note),
                       "reading stopped at bad input: the records before it are loaded in merge "
                       "mode and nothing is deactivated");
    } else {
        (void)snprintf(s->replace_note, sizeof(s->replace_note),
                       "stream(s) %s did not report COMPLETE (the end of input does not prove "
                       "the source finished): their records are loaded in merge mode and nothing "
                       "is deactivated",
                       missing);
    }
    AB_WARN(s->em, "replace not applied: %s", s->replace_note);
    s->replace_outcome_known = true;
    s->replace_applied = false;
    if (s->replace_imp) {
        if (s->replace_imp->records == 0) {
            shp_imp_drop_empty(s, s->replace_imp);
        } else {
            shp_imp_fallback_merge(s, s->replace_imp);
            shp_imp_seal(s, s->replace_imp);
        }
    }
    return AB_OK;
}

static enum ab_status shp_flush(void *self, bool final, struct ab_error *err)
{
    struct shp_dest *s = self;
    int64_t now = ab_now_us();
    enum ab_status rc;

    if (!final) {
        /* A state waited too long: commit what the open merge import holds
         * for states. The replace import cannot commit before the end. */
        if (s->merge_cur && s->merge_cur->records_at_state > 0 &&
            now - s->last_forced_seal_us >= FORCED_SEAL_EVERY_US) {
            s->last_forced_seal_us = now;
            shp_imp_seal(s, s->merge_cur);
        }
        shp_pump(s);
        return AB_OK;
    }
    s->final = true;
    /* The replace import is sealed first, so it commits before the last
     * merge import: inventory of new products then finds them. */
    if (s->has_overwrite) {
        rc = final_replace(s, err);
        if (rc != AB_OK) {
            return rc;
        }
    }
    if (s->merge_cur) {
        if (s->merge_cur->records == 0) {
            shp_imp_drop_empty(s, s->merge_cur);
        } else {
            shp_imp_seal(s, s->merge_cur);
        }
    }
    /* Inventory that waited for products of the replace import: after it. */
    shp_seal_deferred(s);
    shp_pump(s);
    return AB_OK;
}

static bool shp_idle(const void *self)
{
    const struct shp_dest *s = self;

    return !s->failed && s->imports == NULL && ab_http_pending(s->h) == 0;
}

/* Request latencies by kind of request (an import holds both objects). */
static size_t shp_latencies(void *self, const char **names, struct ab_latency **lats, size_t max)
{
    static const char *const kinds[SHP_NREQ_KINDS] = {
        "import creations", "part uploads", "import commits", "import reads", "import aborts"};
    struct shp_dest *s = self;
    size_t n = 0;

    for (int k = 0; k < SHP_NREQ_KINDS && n < max; k++) {
        if (s->lat[k].n) {
            names[n] = kinds[k];
            lats[n++] = &s->lat[k];
        }
    }
    return n;
}

static void shp_summary(void *self, struct ab_emitter *em)
{
    struct shp_dest *s = self;
    struct ab_http_stats hs;

    if (ab_driver_dry_run(s->d)) {
        char products[256];
        char inventory[256];

        shp_rules_local_fields(SHP_PRODUCTS, products, sizeof(products));
        shp_rules_local_fields(SHP_INVENTORY, inventory, sizeof(inventory));
        AB_INFO(em,
                "dry run: the destination's own checks (sku present, item size) and Shops' item "
                "rules were checked locally, as in a real run (products: %s; inventory: %s); "
                "only Shops can check %s",
                products, inventory, shp_rules_target_only());
        AB_INFO(em,
                "dry run: %llu imports would be created (POST /v1/imports) and committed (POST "
                "/v1/imports/{id}/commit) around the part uploads below; nothing was created",
                (unsigned long long)s->stats.imports_committed);
    }

    ab_http_get_stats(s->h, &hs);
    AB_INFO(em,
            "shops: products applied %llu, unchanged %llu, deactivated %llu; inventory applied "
            "%llu, unchanged %llu, deactivated %llu",
            (unsigned long long)s->stats.applied[0], (unsigned long long)s->stats.unchanged[0],
            (unsigned long long)s->stats.deactivated[0], (unsigned long long)s->stats.applied[1],
            (unsigned long long)s->stats.unchanged[1], (unsigned long long)s->stats.deactivated[1]);
    AB_INFO(em,
            "shops: %llu records sent (%llu deleted upstream, sent deactivated), %llu rejected "
            "(%llu by the destination, %llu by Shops' item rules before sending, %llu at part "
            "upload, %llu at commit); %llu deferred after the replace import (unknown_sku)",
            (unsigned long long)s->stats.records, (unsigned long long)s->stats.deleted,
            (unsigned long long)(s->stats.rejected_local + s->stats.rejected_rules +
                                 s->stats.rejected_upload + s->stats.rejected_commit),
            (unsigned long long)s->stats.rejected_local,
            (unsigned long long)s->stats.rejected_rules,
            (unsigned long long)s->stats.rejected_upload,
            (unsigned long long)s->stats.rejected_commit, (unsigned long long)s->stats.deferred);
    AB_INFO(em,
            "shops: imports created %llu, committed %llu, re-created %llu; stale imports aborted "
            "at start %llu; parts uploaded %llu; commits in doubt %llu; HTTP requests %llu, "
            "retries %llu, throttled %llu; tokens fetched %llu",
            (unsigned long long)s->stats.imports_created,
            (unsigned long long)s->stats.imports_committed,
            (unsigned long long)s->stats.imports_recreated,
            (unsigned long long)s->stats.stale_aborted, (unsigned long long)s->stats.parts_uploaded,
            (unsigned long long)s->stats.commits_in_doubt, (unsigned long long)hs.requests,
            (unsigned long long)hs.retries, (unsigned long long)hs.throttled,
            (unsigned long long)(s->auth ? ab_oauth2_fetches(s->auth) : 0));
    AB_INFO(em,
            "shops: records kept for their commit: at most %.1f MiB in RAM (spool_memory_bytes "
            "%.1f MiB), %.1f MiB in the spool file",
            (double)ab_spool_budget_held(&s->budget) / (1024.0 * 1024.0),
            (double)s->cfg.spool_memory_bytes / (1024.0 * 1024.0),
            (double)s->stats.spool_file_bytes / (1024.0 * 1024.0));
    if (s->stats.parts_refused > 0) {
        AB_INFO(em,
                "shops: parts refused as a whole %llu: %llu parts of them uploaded to find the "
                "refused items, %llu items left out and dead-lettered, %llu parts dropped",
                (unsigned long long)s->stats.parts_refused,
                (unsigned long long)s->stats.parts_probes,
                (unsigned long long)s->stats.rejected_whole,
                (unsigned long long)s->stats.parts_dropped);
    }
    if (s->has_overwrite && s->replace_note[0]) {
        if (s->replace_outcome_known && !s->replace_applied) {
            AB_WARN(em, "shops: replace not applied: %s", s->replace_note);
        } else {
            AB_INFO(em, "shops: replace: %s", s->replace_note);
        }
    }
}

static const char *state_text(enum shp_imp_state st)
{
    switch (st) {
    case SHP_IMP_NEW:
    case SHP_IMP_CREATING:
    case SHP_IMP_OPEN:
        return "open, not committed";
    case SHP_IMP_COMMITTING:
    case SHP_IMP_WAIT:
    case SHP_IMP_RESOLVING:
        return "commit outcome unknown";
    case SHP_IMP_COMMITTED:
        break;
    }
    return "committed";
}

static enum ab_status shp_finish(void *self, bool ok, struct ab_error *err)
{
    struct shp_dest *s = self;
    const struct shp_import *imp;

    (void)err;
    if (ok) {
        return AB_OK;
    }
    /* Nothing is committed after a fatal error; the states of these
     * records were not emitted, so the platform sends them again. */
    for (imp = s->imports; imp; imp = imp->next) {
        if (imp->id[0]) {
            AB_WARN(s->em,
                    "import %s is left as is (%s): an open import expires after 24 h, and the "
                    "next run aborts it at start",
                    imp->id, state_text(imp->state));
        }
    }
    return AB_OK;
}

static void shp_close(void *self)
{
    struct shp_dest *s = self;
    struct shp_import *imp;

    if (!s) {
        return;
    }
    /* The client first: it drops its requests without calling back. */
    ab_http_free(s->h);
    s->h = NULL;
    shp_reqs_free(s);
    shp_bodies_free(s);
    while (s->imports) {
        imp = s->imports;
        s->imports = imp->next;
        shp_imp_free(imp);
    }
    ab_spool_budget_release(&s->budget); /* after every spool */
    ab_oauth2_free(s->auth);
    ab_mappings_release(&s->maps);
    free(s->streams);
    shp_config_release(&s->cfg);
    ab_buf_release(&s->item);
    ab_buf_release(&s->received);
    ab_buf_release(&s->scratch);
    ab_buf_release(&s->rule_errors);
    free(s);
}

const struct ab_destination_ops shp_destination_ops = {
    .name = SHP_NAME,
    .version = AB_VERSION,
    .spec_json = shp_spec_json,
    .destination_catalog_json = shp_destination_catalog_json,
    .lazy_data = true,
    .check = shp_check,
    .open = shp_open,
    .record = shp_record,
    .state = shp_state,
    .stream_status = shp_stream_status,
    .busy = shp_busy,
    .flush = shp_flush,
    .idle = shp_idle,
    .summary = shp_summary,
    .latencies = shp_latencies,
    .finish = shp_finish,
    .close = shp_close,
};
