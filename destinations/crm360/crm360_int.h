/* crm360_int.h - destination-crm360 internals shared by its files. */
/* SPDX-License-Identifier: MIT */
#ifndef CRM_CRM360_INT_H
#define CRM_CRM360_INT_H

#include "ab/catalog.h"
#include "ab/checkpoint.h"
#include "ab/http.h"
#include "ab/json.h"
#include "ab/latency.h"
#include "ab/mapping.h"

#include "crm360.h"

/*
 * Records are grouped per (object, operation) into batches of at most
 * batch_size records and max_batch_bytes of body. Each batch is one
 * checkpoint unit: the driver releases a STATE once every batch holding its
 * records has been answered 200 by CRM360, which by contract means they are
 * durably committed. Up to max_in_flight batches are on the wire at once.
 *
 * Orders wait for customers: a sealed batch of orders is sent only once every
 * customer record that arrived before its last order is committed, so an
 * order never reaches CRM360 before the customer it names (sealing orders
 * seals the open customer batches too, so they never wait long).
 *
 * A batch CRM360 refuses as a whole for what a record holds (400
 * invalid_json or invalid_encoding, 413) is split in two slices, sent one
 * after the other, and so on until each refused record is alone: that one is
 * dead-lettered with CRM360's error and every other record is committed.
 */

struct crm_rec {
    uint64_t seq;
    uint64_t lineno;
    size_t stream;
    size_t off; /* of the record's text within the body */
    size_t len;
    size_t roff; /* of the record as received within received; CRM_AS_SENT: */
    size_t rlen;
};

/* Input is read while fewer than max_in_flight + CRM_QUEUED_MAX sealed
 * batches are queued or on the wire: enough waiting to refill every slot
 * freed by an answer, and no more batches held than that. */
#define CRM_QUEUED_MAX 2

/* roff of a record received as it was sent (its data's bytes unchanged):
 * the body holds it, received does not. */
#define CRM_AS_SENT SIZE_MAX

struct crm_batch {
    struct crm_dest *owner;
    struct crm_batch *next;      /* in the send queue */
    struct crm_batch *live_prev; /* every sealed batch not yet freed */
    struct crm_batch *live_next;
    enum crm_object obj;
    enum crm_op op;
    uint64_t id;
    uint64_t unit;
    uint64_t last_seq;
    struct ab_buf body;
    struct ab_buf received; /* the records as received, for rejections */
    struct crm_rec *recs;
    size_t n;
    size_t cap;
    bool replayed; /* the answer carried "Idempotent-Replayed: true" */
    /* A slice of a batch CRM360 refused as a whole: the slices of one batch
     * share its checkpoint unit (shares counts those alive, NULL for an
     * unsplit batch) and go out one after the other (after: the next). */
    unsigned *shares;
    struct crm_batch *after;
    int64_t sent_us; /* submitted to the HTTP client */
};

/* The generation of a catalog stream (refresh.c). */
struct crm_gen {
    char tag[64];      /* "ab-gen:<stream hash>:<generation_id>"; "": customers not tagged */
    size_t prefix_len; /* of "ab-gen:<stream hash>:" */
    bool truncating;   /* an upsert stream with minimum_generation_id == generation_id > 0 */
    bool ledger;       /* an orders upsert stream whose keys go in the refresh ledger */
    bool sweeping;     /* its earlier generations are being removed */
    enum ab_stream_status status; /* the last STREAM_STATUS */
};

struct crm_sweep;
struct crm_ledger;
struct crm_restale;

struct crm_dest {
    struct ab_driver *d;
    struct ab_emitter *em;
    struct ab_http *http;
    struct ab_ckpt *ck;
    const struct ab_catalog *cat;
    struct ab_mappings maps;
    struct ab_mapping *extra_maps; /* identity mappings by destination_object_name */
    size_t nextra;
    const struct ab_mapping **stream_map; /* per catalog stream */
    enum crm_object *stream_obj;
    enum crm_op *stream_op;

    char *api_url;
    const char *brand;
    int64_t sync_id;
    size_t batch_size;
    size_t max_bytes;
    size_t max_in_flight;
    bool gzip;

    struct crm_batch *open[CRM_NOBJECTS][CRM_NOPS];
    struct crm_batch *queue_head;
    struct crm_batch *queue_tail;
    struct crm_batch *live; /* sealed batches, queued or on the wire */
    size_t queued;
    size_t in_flight;
    uint64_t next_batch_id;

    uint64_t results[CRM_NOBJECTS][CRM_R_NRESULTS];
    uint64_t local_rejects;
    uint64_t batches_sent;
    uint64_t batches_replayed;
    uint64_t batches_earlier;               /* answered for an earlier run */
    struct ab_latency lat[CRM_NOBJECTS];    /* per object: its batches */
    uint64_t already_applied[CRM_NOBJECTS]; /* records of those batches */
    uint64_t batches_split;                 /* refused as a whole and sent as two slices */
    struct ab_buf scratch;
    struct ab_buf errors;
    struct ab_json_arena *answers; /* batch answers are parsed here */
    struct crm_batch *pool;        /* freed batches, their buffers kept (batch.c) */
    size_t npool;
    size_t body_hint; /* the largest body sealed so far */

    struct crm_gen *gens; /* per catalog stream */
    size_t refreshing;    /* truncating customers streams */
    bool final;           /* the final flush was asked for */
    struct crm_sweep *sweep;
    struct crm_ledger *ledger;   /* NULL: no orders stream records keys (ledger.c) */
    struct crm_restale *restale; /* stale customers being tagged again (restale.c) */
    struct ab_buf tagged;
    struct ab_json_arena *tag_arena; /* a built record is parsed here to be tagged */
};

/* wire.c: the names of per-record results and of the objects (NULL-ended). */
extern const char *const crm_result_names[CRM_R_NRESULTS];
extern const char *const crm_object_names[];
/* Appends {"field","code","message"} to the JSON array being built in errors;
 * crm_add_problem_opt() adds "option", the config option that would have
 * avoided the problem (the driver's rejection thresholds read it). */
enum ab_status crm_add_problem_opt(struct ab_buf *errors, const char *field, const char *code,
                                   const char *message, const char *option, struct ab_error *err);
enum ab_status crm_add_problem(struct ab_buf *errors, const char *field, const char *code,
                               const char *message, struct ab_error *err);

/* p (before e) at a '"': the closing quote of a JSON string of plain text,
 * printable ASCII but '"' and '\\' (it reads as it is written); NULL: not one. */
const unsigned char *crm_plain_string_end(const unsigned char *p, const unsigned char *e);

/* batch.c: batches, their requests and answers. */
/* first_len: the size of its first record, to size the body. */
struct crm_batch *crm_batch_new(struct crm_dest *c, enum crm_object obj, enum crm_op op,
                                size_t first_len, struct ab_error *err);
/* Returns b to the pool of its destination (or frees it when the pool is
 * full); crm_pool_free() frees the pool. */
void crm_batch_free(struct crm_batch *b);
void crm_pool_free(struct crm_dest *c);
/* Sends what can be sent: sealed batches, as far as max_in_flight and the
 * orders-after-customers rule allow. */
void crm_pump(struct crm_dest *c);
/* Closes the open batch of (obj, op) and queues it. */
enum ab_status crm_seal(struct crm_dest *c, enum crm_object obj, enum crm_op op,
                        struct ab_error *err);
enum ab_status crm_seal_all(struct crm_dest *c, struct ab_error *err);

/* crm360.c: the base URL without trailing slashes (malloc'd), the client. */
char *crm_dup_url(const char *url);
enum ab_status crm_make_client(struct ab_driver *d, bool for_check, struct ab_http **out,
                               struct ab_error *err);

/* rules.c: CRM360's record rules (docs/api/crm360.md) for a dry run;
 * problems are appended with crm_add_problem() (nothing added: valid). */
enum ab_status crm_check_rules(enum crm_object obj, enum crm_op op, yajl_val rec,
                               struct ab_buf *errors, struct ab_error *err);

/* refresh.c: generation tags and the removal of earlier generations.
 * crm_refresh_init() after the streams are resolved; crm_tag_record()
 * rewrites a built customer (in rec) with its stream's generation tag;
 * crm_refresh_maybe_start() starts the removal once the final flush was
 * asked for and every batch is answered (failures go to ab_driver_fail());
 * crm_refresh_busy() while it runs. */
enum ab_status crm_refresh_init(struct crm_dest *c, struct ab_error *err);
void crm_refresh_status(struct crm_dest *c, size_t stream, enum ab_stream_status status);
enum ab_status crm_tag_record(struct crm_dest *c, size_t stream, struct ab_buf *rec,
                              struct ab_error *err);
/* As crm_tag_record(), told where rec's top-level "tags" member is (known 1:
 * its value at tags_off, tags_len bytes; 0: none) instead of looking. */
enum ab_status crm_tag_record_at(struct crm_dest *c, size_t stream, struct ab_buf *rec, int known,
                                 size_t tags_off, size_t tags_len, struct ab_error *err);
void crm_refresh_maybe_start(struct crm_dest *c);
bool crm_refresh_busy(const struct crm_dest *c);
void crm_refresh_summary(struct crm_dest *c, struct ab_emitter *em);
void crm_refresh_free(struct crm_dest *c);
/* What a 200-answered batch committed (results: its answer's array), before
 * its unit is done: orders keys into the ledger, stale customers of a
 * truncating stream to be tagged again. */
enum ab_status crm_refresh_committed(struct crm_dest *c, const struct crm_batch *b,
                                     yajl_val results, struct ab_error *err);
/* Whether crm_refresh_committed() reads anything of b's results (false: it
 * does nothing with them, the answer may be read without a tree). */
bool crm_refresh_wants_results(const struct crm_dest *c, const struct crm_batch *b);
/* Writes a tag list: the strings of tags (NULL: none) that are not of g's
 * stream, then g's tag. */
enum ab_status crm_write_tags(struct ab_buf *out, yajl_val tags, const struct crm_gen *g,
                              struct ab_error *err);
/* Appends s to url (of size bytes), percent-encoded; false when too long. */
bool crm_url_add_encoded(char *url, size_t size, const char *s);
/* 12 hex digits of the SHA-256 of the stream's namespace and name. */
void crm_stream_hash(const struct ab_stream *s, char out[13]);
/* The end of the removal (ok: finished), or a failure of one of its
 * requests (what: the request, for the error). */
void crm_refresh_sweep_done(struct crm_dest *c, bool ok);
void crm_refresh_sweep_fail(struct crm_dest *c, const char *what, const struct ab_http_resp *resp);
/* The batch requests of refreshes (removals, stale customers tagged again).
 * crm_post_batch() posts body to /v1/<object>:<op> with the idempotency key
 * of its bytes; body is borrowed and must stay unchanged until done runs.
 * AB_OK: done runs once with the answer; otherwise err is set and nothing
 * was sent. crm_batch_results() returns the `results` array of a parsed
 * answer when it has exactly n entries, else NULL with err set (what: the
 * request, for the message). crm_count_results() adds each result's status
 * to counts. */
enum ab_status crm_post_batch(struct crm_dest *c, enum crm_object o, enum crm_op op,
                              const struct ab_buf *body, const char *label, ab_http_done_fn done,
                              struct ab_error *err);
yajl_val crm_batch_results(yajl_val root, size_t n, const char *what, struct ab_error *err);
void crm_count_results(yajl_val results, uint64_t counts[CRM_R_NRESULTS]);

/* ledger.c: the refresh ledger of orders in object storage.
 * crm_ledger_init() (from crm_refresh_init()) opens it when an orders
 * stream has a generation and S3 storage is configured, and refuses a
 * truncating orders stream without it (AB_ERR_CONFIG); crm_ledger_batch()
 * puts the keys a 200-answered orders batch committed (results: its answer's
 * array) before its unit is done; crm_ledger_sweep() removes the orders of
 * earlier generations of the sweeping orders streams, then calls
 * crm_refresh_sweep_done(). */
enum ab_status crm_ledger_init(struct crm_dest *c, struct ab_error *err);
enum ab_status crm_ledger_batch(struct crm_dest *c, const struct crm_batch *b, yajl_val results,
                                struct ab_error *err);
/* Whether crm_ledger_batch() reads b's results. */
bool crm_ledger_wants(const struct crm_dest *c, const struct crm_batch *b);
bool crm_ledger_sweeps(const struct crm_dest *c);
void crm_ledger_sweep(struct crm_dest *c);
void crm_ledger_summary(struct crm_dest *c, struct ab_emitter *em);
void crm_ledger_free(struct crm_dest *c);
/* check: a WARN when S3 storage is configured and its ledger prefix cannot
 * be listed (a refresh of orders would fail). */
void crm_ledger_check(struct ab_driver *d);

/* restale.c: a customer of a truncating stream answered `stale` keeps the
 * tags of its stored (newer) version, maybe an earlier generation's; it is
 * read back and written again, same updated_at, with the stream's current
 * tag. crm_restale_batch() holds the records' states in a unit of their own
 * until that is done; crm_restale_pending() while any is left;
 * crm_restale_backlog() when reading should wait for it. */
enum ab_status crm_restale_batch(struct crm_dest *c, const struct crm_batch *b, yajl_val results,
                                 struct ab_error *err);
/* Whether crm_restale_batch() reads b's results. */
bool crm_restale_wants(const struct crm_dest *c, const struct crm_batch *b);
bool crm_restale_pending(const struct crm_dest *c);
bool crm_restale_backlog(const struct crm_dest *c);
void crm_restale_summary(struct crm_dest *c, struct ab_emitter *em);
void crm_restale_free(struct crm_dest *c);

/* check.c */
enum ab_status crm_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err);

#endif
