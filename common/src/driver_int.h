/* driver_int.h - the driver's internals, shared by driver.c, write.c, read.c. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_DRIVER_INT_H
#define AB_DRIVER_INT_H

#include <signal.h>

#include "ab/buf.h"
#include "ab/deadletter.h"
#include "ab/destination.h"
#include "ab/json.h"
#include "ab/jsonl_reader.h"
#include "ab/options.h"
#include "ab/source.h"

#include "input_int.h"
#include "reject_limit_int.h"

enum ab_kind { AB_KIND_DESTINATION, AB_KIND_SOURCE };

/* Phases of a write run; moved only by write_set_phase(). */
enum write_phase { WP_READING = 0, WP_FLUSHING, WP_DONE };

/* What a write run reads: Airbyte messages, or plain records (load). */
enum write_mode { WM_WRITE = 0, WM_LOAD };

/* Options of write and load from the command line (not the config: they
 * describe one run, not the connection). */
struct ab_run_opts {
    const char *input;      /* write --input FILE */
    const char *object;     /* load --object */
    const char *stream;     /* load --stream */
    const char *ns;         /* --namespace */
    const char *sync_mode;  /* load, and write without --catalog */
    const char *checkpoint; /* load --checkpoint-file */
    const char *report;     /* --report FILE */
    const char *log_format; /* --log-format json|text */
    const char *sync_id;    /* --sync-id N */
    const char **files;     /* load FILE... (argv) */
    size_t nfiles;
    bool dry_run;
    bool print_catalog;
    long show_requests;
};

/* A dry run's requests per object and operation. */
#define DRY_ROWS 16
struct dry_row {
    char object[48];
    char op[32];
    uint64_t requests;
    uint64_t records;
    uint64_t bytes;
};

/* Per catalog stream, for a read run. */
struct read_stream {
    yajl_val state_in;          /* borrowed from the driver's state tree */
    uint64_t since_state;       /* records since this stream's last state */
    enum ab_stream_status last; /* the last status emitted */
};

/* ab_record_tree() of a record with lazy data: its tree, made once. */
struct ab_record_lazy {
    struct ab_json_arena *arena;
    yajl_val tree;
};

struct ab_driver {
    enum ab_kind kind;
    const struct ab_destination_ops *dops;
    const struct ab_source_ops *sops;
    const char *name;
    const char *version;
    const char *spec_json;

    struct ab_emitter *em;
    struct ab_loop *loop;
    yajl_val spec;   /* the parsed ConnectorSpecification */
    yajl_val schema; /* borrowed: spec.connectionSpecification */
    yajl_val config;
    struct ab_catalog catalog;
    struct ab_http *http; /* borrowed from the connector */
    void *self;           /* the connector's run object */

    const char *config_path;
    const char *catalog_path;
    const char *state_path;

    int64_t progress_every_us;
    int64_t start_us;

    /* sticky fatal error, from a callback or the loop */
    bool failed;
    struct ab_error fatal;

    /* ---- write ---- */
    enum write_mode mode;
    struct ab_run_opts run;
    struct ab_input in; /* the input being read */
    bool in_open;
    int in_fd;                    /* its descriptor, watched by the loop */
    struct ab_load_file *lf;      /* load: one per input file */
    uint64_t *file_seq;           /* load: seq of the first record of each file */
    size_t cur_file;              /* load: the file being read */
    uint64_t cand_off;            /* load: offset after the last line handled */
    uint64_t cand_line;           /* load: that line */
    bool ckpt_dirty;              /* load: progress not yet written */
    int64_t ckpt_written_us;      /* load: when the checkpoint file was last written */
    bool load_done;               /* load: the last file's end mark is queued */
    char target[400];             /* load: "object x" or "stream ns.name" */
    struct ab_buf catalog_text;   /* a made catalog, for --print-catalog */
    struct dry_row dry[DRY_ROWS]; /* dry run */
    size_t ndry;
    uint64_t dry_shown;
    uint64_t dry_rejects[2]; /* by the destination, by the target's rules */
    bool dry_stop_noted;     /* a real run would have stopped at a rejection */
    uint64_t dry_states;
    /* terminal experience */
    bool text;            /* human-readable logs on stderr */
    bool tty_progress;    /* a live progress line on stderr */
    bool progress_shown;  /* the line is on screen */
    uint64_t total_bytes; /* of the input files, 0 when unknown */
    double rate;          /* records/s, smoothed */
    uint64_t tick_records;
    int64_t tick_us;
    uint64_t *s_read; /* per stream */
    uint64_t *s_rej;
    char last_state[512]; /* the last acknowledged state (write), cut */
    uint64_t states_acked;
    enum write_phase phase;
    struct ab_ckpt *ck;
    struct ab_deadletter *dl;
    struct ab_jsonl_reader *reader;
    struct ab_json_arena *arena;           /* the current line's tree */
    struct ab_record_lazy *lazy;           /* lazy data: the record's tree when asked */
    struct ab_deadletter_target dl_target; /* strings borrowed from config */
    char dl_default_path[4096];            /* a local file without a path */
    char dl_run_name[512];                 /* "<connector>-sync-<id>-<time>-<pid>" */
    struct ab_buf dl_errors;               /* a rejection's annotated errors */
    bool fail_on_reject;
    struct ab_destination_opts dest_opts;
    struct ab_rejlimit *rejlimit;
    size_t max_line_bytes;
    bool eof;          /* stdin reached its end */
    bool input_failed; /* reading stopped at bad input; what came before commits */
    struct ab_error input_err;
    bool reader_failed; /* the reader refused a line: no more input */
    struct ab_error reader_err;
    bool dl_dirty; /* dead letters written since the last sync */
    uint64_t committed;
    uint64_t lines;
    uint64_t unknown_types;
    int64_t max_wait_us;
    int64_t last_forced_us; /* last flush forced by a waiting state */
    uint64_t wait_timer;    /* the checkpoint-wait timer, 0 when disarmed */
    long last_stream;       /* lookup cache */
    uint64_t last_progress_records;
    int64_t last_progress_us;

    /* ---- read ---- */
    yajl_val state_tree; /* the parsed --state file */
    yajl_val shared_state;
    struct read_stream *rs;
    uint64_t since_global; /* records since the last GLOBAL state */
    uint64_t emitted;
    uint64_t states_out;
    enum ab_source_next next;
    struct ab_buf scratch; /* state members being composed */
};

/* The signal number that stopped the run, 0 while none. */
extern volatile sig_atomic_t ab_driver_signal_seen;
/* Registers the signal pipe with d->loop: a signal stops the loop. */
enum ab_status ab_driver_watch_signals(struct ab_driver *d, struct ab_error *err);

enum ab_status ab_driver_write(struct ab_driver *d, struct ab_error *err);
/* Checks the write/load options of the command line against the command. */
enum ab_status ab_driver_check_run_opts(struct ab_driver *d, bool load, bool write,
                                        struct ab_error *err);
/* The catalog of a load (one stream) or of a write without --catalog
 * (inferred from --input). */
enum ab_status ab_driver_make_catalog(struct ab_driver *d, struct ab_error *err);
/* --print-catalog: the catalog in use on stdout. */
enum ab_status ab_driver_print_catalog(struct ab_driver *d, struct ab_error *err);
enum ab_status ab_driver_read(struct ab_driver *d, struct ab_error *err);
enum ab_status ab_driver_discover(struct ab_driver *d, struct ab_error *err);
void ab_driver_write_release(struct ab_driver *d);
void ab_driver_read_release(struct ab_driver *d);

/* Names the run's rejected-records sink: dl_run_name and dl_default_path
 * (<TMPDIR or /tmp>/<connector>-sync-<sync_id>-rejected.jsonl, or with the
 * start time and pid instead of the sync when the catalog has no sync_id). */
void ab_driver_name_sink(struct ab_driver *d);
/* "file '<path>'", "s3://bucket/prefix" or "nowhere (counted only)". */
void ab_driver_describe_sink(const struct ab_driver *d, char *buf, size_t size);
/* True when the process runs in a container (/.dockerenv, /run/.containerenv,
 * $container or a Kubernetes pod's environment). */
bool ab_driver_in_container(void);

/* "ns.name" or "name" into buf, for messages. */
void ab_driver_describe_stream(char *buf, size_t size, const char *name, const char *ns);

#endif
