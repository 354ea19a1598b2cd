/* shops_int.h - destination-shops internals shared by shops.c, import.c, check.c. */
/* SPDX-License-Identifier: MIT */
#ifndef SHP_SHOPS_INT_H
#define SHP_SHOPS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "ab/buf.h"
#include "ab/checkpoint.h"
#include "ab/clock.h"
#include "ab/destination.h"
#include "ab/emitter.h"
#include "ab/error.h"
#include "ab/http.h"
#include "ab/latency.h"
#include "ab/mapping.h"
#include "ab/oauth2.h"
#include "ab/spool.h"

#include "part.h"
#include "wire.h"

/*
 * Model. Records are mapped, spooled (per import and object) and grouped
 * into parts; parts are uploaded into an import as soon as it exists, and a
 * commit applies the import atomically. An import is one checkpoint unit:
 * its records hold their states back until the commit's 200.
 *
 * Two tracks:
 *  - merge: append and append_dedup streams. One import accepts records at a
 *    time (merge_cur); it is sealed at a STATE once it holds
 *    min_commit_records or is older than max_commit_interval_seconds (or on
 *    flush), and a new one takes the following records while the sealed one
 *    uploads its last parts and commits. Sealed imports commit one at a time,
 *    in the order they were sealed.
 *  - replace: overwrite streams (and append streams loading the same
 *    objects). One import in mode "replace" for the whole sync, committed at
 *    the end of input only when every overwrite stream reported COMPLETE;
 *    otherwise it is aborted and its records are uploaded again from the
 *    spool into a merge import (nothing deactivated).
 *
 * Requests carry a small context (struct shp_req) naming their import by
 * serial number and generation: an import that was re-created (expired,
 * aborted, replace fallback) bumps its generation, so answers to requests
 * about its previous incarnation are recognised and ignored.
 */

enum shp_obj { SHP_PRODUCTS = 0, SHP_INVENTORY = 1 };
#define SHP_NOBJ         2
#define SHP_NO_PART      ((size_t)-1)
#define SHP_ID_MAX       128
#define SHP_SPARE_BODIES 65 /* max_in_flight (at most 64) + 1 */

/* The object names, NULL-terminated. */
const char *const *shp_objects(void);
const char *shp_object_name(unsigned obj);

struct shp_config {
    char *api_url; /* owned, without a trailing "/" */
    const char *client_id;
    const char *client_secret;
    const char *channel;
    const char *label_prefix;
    const char *spool_dir; /* NULL: default */
    struct shp_part_limits lim;
    bool gzip;
    uint64_t min_commit_records;
    int64_t max_commit_interval_us;
    size_t spool_memory_bytes;
    size_t max_line_bytes; /* the longest record as received a spool holds */
    bool deactivate_without_complete;
    size_t max_in_flight;
};

/* Reads the connector's fields from the driver's validated config (strings
 * borrowed from it). AB_ERR_CONFIG naming the field otherwise. */
enum ab_status shp_config_load(struct shp_config *c, yajl_val cfg, struct ab_error *err);
void shp_config_release(struct shp_config *c);

enum shp_part_state {
    SHP_PART_OPEN = 0, /* still taking records */
    SHP_PART_READY,    /* complete, to upload */
    SHP_PART_UPLOADING,
    SHP_PART_UPLOADED
};

/* A part refused as a whole (see part.h): the records left out of it, the
 * search for them, and the last refusal (what the left-out records are
 * dead-lettered with). */
struct shp_part_fix {
    struct shp_leftout out;
    struct shp_probe probe;
    unsigned searches; /* started for this part */
    int status;
    char code[64];
    char field[128];
    char message[512];
};

struct shp_part {
    struct shp_part_fix *fix; /* NULL until the part is refused as a whole; owned */
    uint64_t first;           /* spool offset of its first record */
    size_t bytes;             /* body size, uncompressed */
    uint32_t count;
    uint32_t accepted;
    uint32_t rejected;
    unsigned char obj;
    unsigned char state;
    bool reported; /* upload-time rejections already dead-lettered */
};

enum shp_imp_state {
    SHP_IMP_NEW = 0,    /* not created on the server yet */
    SHP_IMP_CREATING,   /* POST /v1/imports in flight */
    SHP_IMP_OPEN,       /* id known: parts upload */
    SHP_IMP_COMMITTING, /* POST .../commit in flight */
    SHP_IMP_WAIT,       /* a commit runs on the server: ask again later */
    SHP_IMP_RESOLVING,  /* GET /v1/imports/{id} in flight */
    SHP_IMP_COMMITTED
};

struct shp_import {
    struct shp_import *next;
    uint64_t serial;
    bool replace_track;
    bool mode_replace; /* mode of the next creation */
    unsigned objects;  /* bit (1U << obj) per object it may hold */
    uint64_t unit;     /* checkpoint unit */
    uint64_t seq;      /* n of its label and Idempotency-Key */
    unsigned gen;
    char id[SHP_ID_MAX];
    enum shp_imp_state state;
    struct ab_spool *spool[SHP_NOBJ];
    size_t open_part[SHP_NOBJ];
    struct shp_part_acc acc[SHP_NOBJ];
    struct shp_part *parts;
    size_t nparts;
    size_t cap;
    size_t nready;      /* parts in SHP_PART_READY */
    size_t first_ready; /* no READY part below this index */
    uint64_t records;
    uint64_t rejected;         /* by the target, upload or commit time */
    uint64_t deferred;         /* moved to the deferred import at commit */
    uint64_t records_at_state; /* records a received STATE covers */
    int64_t created_us;
    char *checkpoint;
    size_t checkpoint_len;
    bool sealed;
    uint64_t seal_no;
    bool fallback_pending; /* switch to merge once the creation answers */
    unsigned recreates;
    unsigned resolve_rounds;
    unsigned missing_rounds;
    int64_t wait_until_us;
    long retry_after_ms;
};

enum shp_req_kind { SHP_REQ_CREATE, SHP_REQ_PART, SHP_REQ_COMMIT, SHP_REQ_GET, SHP_REQ_ABORT };
#define SHP_NREQ_KINDS (SHP_REQ_ABORT + 1)

struct shp_req {
    struct shp_req *prev;
    struct shp_req *next;
    struct shp_dest *s;
    enum shp_req_kind kind;
    uint64_t serial;
    unsigned gen;
    size_t part;
    char id[SHP_ID_MAX]; /* the import id the request addressed */
    bool replayed;       /* the answer carried "Idempotent-Replayed: true" */
    bool probe;          /* a part upload carrying a subset of the part (part.h) */
    struct ab_buf *body; /* a part upload's body, which the request points at */
    int64_t sent_us;     /* submitted to the HTTP client */
};

struct shp_stream {
    const struct ab_mapping *map;
    unsigned obj;
    bool replace_track; /* its records load into the replace import */
    bool overwrite;     /* destination_sync_mode overwrite */
    enum ab_stream_status status;
};

struct shp_stats {
    uint64_t records;
    uint64_t applied[SHP_NOBJ];
    uint64_t unchanged[SHP_NOBJ];
    uint64_t deactivated[SHP_NOBJ];
    uint64_t rejected_local;
    uint64_t rejected_rules; /* by Shops' item rules, checked before sending (rules.h) */
    uint64_t rejected_upload;
    uint64_t rejected_commit;
    uint64_t imports_created;
    uint64_t imports_committed;
    uint64_t imports_recreated;
    uint64_t stale_aborted;
    uint64_t parts_uploaded;
    uint64_t parts_refused;  /* searches for the items of a part refused as a whole */
    uint64_t parts_probes;   /* subsets uploaded by those searches */
    uint64_t rejected_whole; /* items they left out (also in rejected_upload) */
    uint64_t parts_dropped;  /* parts left with no item */
    uint64_t commits_in_doubt;
    uint64_t deferred;
    uint64_t deleted;          /* records deleted upstream, sent deactivated */
    uint64_t spool_file_bytes; /* spooled bytes beyond the RAM budget (counted at seal) */
};

struct shp_dest {
    struct ab_driver *d;
    struct ab_emitter *em;
    struct ab_ckpt *ck;
    const struct ab_catalog *cat;
    struct shp_config cfg;
    struct ab_mappings maps;
    struct shp_stream *streams;
    size_t nstreams;
    unsigned merge_objects;
    unsigned replace_objects;
    bool has_overwrite;

    struct ab_http *h;
    struct ab_oauth2 *auth;
    struct ab_spool_budget budget;

    char run_id[17];
    char sync_ident[32];
    uint64_t import_seq;
    uint64_t import_serial;
    uint64_t seal_seq;
    struct shp_import *imports; /* in creation order */
    struct shp_import *merge_cur;
    struct shp_import *replace_imp;
    struct shp_import *deferred; /* inventory waiting for the replace import */
    struct shp_req *reqs;
    size_t uploads_inflight;
    size_t aborts_inflight;
    size_t backlog_cap;
    unsigned auth_refusals; /* consecutive final 401 token_expired answers */

    bool final;
    bool failed;
    bool replace_outcome_known;
    bool replace_applied;
    char replace_note[512];
    int64_t last_forced_seal_us;
    uint64_t timer;       /* the one-shot wake-up timer, 0 when disarmed */
    int64_t timer_due_us; /* when it is due */

    struct ab_buf item;        /* the record being mapped */
    struct ab_buf received;    /* the record as received, when not the item's bytes */
    struct ab_buf scratch;     /* spool reads, rejection records */
    struct ab_buf rule_errors; /* the errors of an item breaking Shops' rules */
    /* Part bodies not on the wire, kept for the next uploads (at most
     * max_in_flight + 1: no fresh large buffer per part). */
    struct ab_buf *spare_bodies[SHP_SPARE_BODIES];
    size_t nspare_bodies;
    struct shp_stats stats;
    struct ab_latency lat[SHP_NREQ_KINDS]; /* per request kind, for the summary */
};

/* shops.c: asks the loop to run the commit cadence and the pump at when_us
 * (or earlier, when already due earlier). */
void shp_wake_at(struct shp_dest *s, int64_t when_us);

/*
 * State machines, checked: every change of an import's or a part's state goes
 * through one function in import.c that asserts (AB_ASSERT) the transition
 * is in these tables. Imports (-> NEW is a re-creation):
 *   NEW        -> CREATING
 *   CREATING   -> OPEN | NEW
 *   OPEN       -> COMMITTING | NEW
 *   COMMITTING -> COMMITTED | RESOLVING | WAIT | OPEN (parts missing)
 *                 | COMMITTING (sent again after a refused token) | NEW
 *   WAIT       -> RESOLVING | NEW
 *   RESOLVING  -> COMMITTING | WAIT | RESOLVING (sent again) | NEW
 *   COMMITTED  -> (none: the import is freed)
 * Parts: OPEN -> READY -> UPLOADING -> UPLOADED, UPLOADING -> READY (sent
 * again; also a part refused as a whole, whose next upload is a subset or
 * the part without its refused items), UPLOADED -> READY (missing on the
 * server, re-creation), READY -> READY (re-creation). A READY part left with
 * no item is removed and the parts after it renumbered (the import is
 * re-created when one of those was sent already). Pure functions, exposed
 * for tests.
 */
bool shp_imp_transition_ok(enum shp_imp_state from, enum shp_imp_state to);
bool shp_part_transition_ok(enum shp_part_state from, enum shp_part_state to);
const char *shp_imp_state_name(enum shp_imp_state st);
/* Moves imp to state to: asserts the transition is legal (in Debug and
 * sanitizer builds; an illegal one prints both states and why to stderr,
 * then aborts) and logs it at DEBUG with why. s may be NULL (no log). */
void shp_imp_set_state(struct shp_dest *s, struct shp_import *imp, enum shp_imp_state to,
                       const char *why);

/* import.c: the import lifecycle. */
struct shp_import *shp_imp_new(struct shp_dest *s, bool replace_track, struct ab_error *err);
void shp_imp_free(struct shp_import *imp);
/* Whether imp can take one more item of len bytes of obj (part number limit). */
bool shp_imp_can_take(const struct shp_dest *s, const struct shp_import *imp, unsigned obj,
                      size_t len);
/* Spools one record: its item (len bytes) and the record as received
 * (rlen bytes; 0: the item's very bytes). */
enum ab_status shp_imp_add(struct shp_dest *s, struct shp_import *imp, unsigned obj,
                           const struct shp_rec_meta *meta, const char *item, size_t len,
                           const char *received, size_t rlen, struct ab_error *err);
/* No more records: close its open parts and queue its commit. */
void shp_imp_seal(struct shp_dest *s, struct shp_import *imp);
/* The replace import loads in merge mode instead (no COMPLETE signal). */
void shp_imp_fallback_merge(struct shp_dest *s, struct shp_import *imp);
/* After the final flush: seals the deferred import (if it holds records),
 * so it commits after the replace import. */
void shp_seal_deferred(struct shp_dest *s);
/* Drops an import that never received a record (its unit is done). */
void shp_imp_drop_empty(struct shp_dest *s, struct shp_import *imp);
/* Starts whatever can start: creations, uploads, commits, status checks. */
void shp_pump(struct shp_dest *s);
/* Parts waiting for upload, and sealed imports not committed yet. */
size_t shp_ready_parts(const struct shp_dest *s);
size_t shp_sealed_pending(const struct shp_dest *s);
/* Aborts the open imports a crashed run left behind (blocking, at start). */
enum ab_status shp_recover(struct shp_dest *s, struct ab_error *err);
/* A fatal error found in a callback. */
void shp_fail(struct shp_dest *s, const struct ab_error *err);
/* Frees the request contexts the HTTP client will never complete. */
void shp_reqs_free(struct shp_dest *s);
/* Frees the spare part bodies (at close, after shp_reqs_free()). */
void shp_bodies_free(struct shp_dest *s);

/* The token provider of the API: OAuth 2.0 client credentials at
 * <api_url>/oauth/token, sent in the form body (common/ oauth2.h: cached,
 * renewed at 90 % of expires_in, every token masked). fail_driver: a
 * refused credential also fails the run (write). */
struct ab_oauth2 *shp_auth_new(struct ab_driver *d, const char *api_url, const char *client_id,
                               const char *client_secret, const struct ab_http_opts *o,
                               bool fail_driver, struct ab_error *err);

/* import.c: the ab_http_classify_fn of every request to the API (arg unused):
 * 401 with error code "token_expired" is AB_HTTP_REFRESH_AUTH (a new token,
 * one more attempt); everything else the client's defaults. */
enum ab_http_verdict shp_classify(void *arg, const struct ab_http_resp *answer);

/* check.c */
enum ab_status shp_check(struct ab_driver *d, struct ab_check *chk, struct ab_error *err);

#endif
