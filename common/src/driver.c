/* driver.c - the connector driver: commands, config, signals, errors. */
/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fcntl.h>
#include <unistd.h>

#include "ab/clock.h"
#include "ab/config.h"
#include "ab/log.h"
#include "ab/options.h"

#include "driver_int.h"

/*
 * Exit codes: 0 success, 1 a fatal error (one TRACE error was written; when
 * stdout cannot take it, "<name>: error: <masked text>" on stderr),
 * 2 a usage error, 128 + signal when stopped by SIGTERM or SIGINT.
 */
#define EXIT_FATAL 1
#define EXIT_USAGE 2

#define CHECK_MAX_PROBLEMS 8192

struct ab_check {
    struct ab_buf text;
    size_t count;
};

/* The self-pipe the signal handler writes to: the only mutable global, since a
 * signal handler can reach nothing else. */
static int signal_pipe[2] = {-1, -1};
volatile sig_atomic_t ab_driver_signal_seen;

static void on_signal(int sig)
{
    int saved = errno;
    char c = (char)sig;

    ab_driver_signal_seen = sig;
    if (signal_pipe[1] >= 0) {
        ssize_t n = write(signal_pipe[1], &c, 1);

        (void)n;
    }
    errno = saved;
}

static enum ab_status on_signal_pipe(void *arg, int fd, unsigned ready, struct ab_error *err)
{
    struct ab_driver *d = arg;
    char c;

    (void)ready;
    (void)err;
    while (read(fd, &c, 1) == 1) {
    }
    if (ab_driver_signal_seen) {
        ab_loop_stop(d->loop);
    }
    return AB_OK;
}

enum ab_status ab_driver_watch_signals(struct ab_driver *d, struct ab_error *err)
{
    struct sigaction sa;

    if (pipe(signal_pipe) != 0) {
        return ab_error_set(err, AB_ERR_IO, "cannot create a pipe: %s", strerror(errno));
    }
    for (int i = 0; i < 2; i++) {
        (void)fcntl(signal_pipe[i], F_SETFD, FD_CLOEXEC);
        (void)fcntl(signal_pipe[i], F_SETFL, O_NONBLOCK);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    (void)sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
        return ab_error_set(err, AB_ERR_IO, "cannot install signal handlers: %s", strerror(errno));
    }
    sa.sa_handler = SIG_IGN;
    (void)sigaction(SIGPIPE, &sa, NULL);
    return ab_loop_add_fd(d->loop, signal_pipe[0], AB_LOOP_READ, on_signal_pipe, d, err);
}

static void close_signal_pipe(void)
{
    for (int i = 0; i < 2; i++) {
        if (signal_pipe[i] >= 0) {
            (void)close(signal_pipe[i]);
            signal_pipe[i] = -1;
        }
    }
}

/* ---- accessors ---------------------------------------------------------- */

struct ab_emitter *ab_driver_emitter(struct ab_driver *d)
{
    return d->em;
}

yajl_val ab_driver_config(struct ab_driver *d)
{
    return d->config;
}

yajl_val ab_driver_spec(struct ab_driver *d)
{
    return d->schema;
}

const struct ab_catalog *ab_driver_catalog(struct ab_driver *d)
{
    return &d->catalog;
}

struct ab_ckpt *ab_driver_ckpt(struct ab_driver *d)
{
    return d->ck;
}

struct ab_loop *ab_driver_loop(struct ab_driver *d)
{
    return d->loop;
}

void ab_driver_set_http(struct ab_driver *d, struct ab_http *h)
{
    d->http = h;
}

enum ab_status ab_driver_add_secret(struct ab_driver *d, const char *secret, struct ab_error *err)
{
    struct ab_error e;
    enum ab_status rc;

    if (!secret || !d->em) {
        return AB_OK;
    }
    rc = ab_emitter_add_secret(d->em, secret);
    if (rc == AB_OK) {
        return AB_OK;
    }
    ab_error_init(&e);
    (void)ab_error_set(&e, rc,
                       rc == AB_ERR_NOMEM ? "out of memory registering a secret to mask"
                                          : "the secrets mask is full: a secret could not be "
                                            "registered and is not used");
    ab_driver_fail(d, &e);
    if (err) {
        *err = e;
    }
    return rc;
}

void ab_driver_remove_secret(struct ab_driver *d, const char *secret)
{
    if (secret && d->em) {
        ab_emitter_remove_secret(d->em, secret);
    }
}

void ab_driver_add_committed(struct ab_driver *d, uint64_t n)
{
    d->committed += n;
}

void ab_driver_fail(struct ab_driver *d, const struct ab_error *err)
{
    if (!d->failed) {
        d->failed = true;
        d->fatal = *err;
        if (d->fatal.code == AB_OK) {
            d->fatal.code = AB_ERR_INTERNAL;
        }
    }
}

bool ab_driver_failed(const struct ab_driver *d)
{
    return d->failed;
}

bool ab_driver_input_failed(const struct ab_driver *d)
{
    return d->input_failed;
}

void ab_check_problem(struct ab_check *chk, const char *fmt, ...)
{
    char line[AB_ERROR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (chk->count++) {
        (void)ab_buf_add(&chk->text, "; ", 2, NULL);
    }
    (void)ab_buf_adds(&chk->text, line, NULL);
}

/* ---- config helpers ------------------------------------------------------ */

void ab_driver_http_opts(struct ab_driver *d, struct ab_http_opts *o)
{
    ab_opts_http(d->config, o);
    o->log = d->em;
    /* blocking calls (start-up, tokens) end within a poll after SIGTERM */
    o->stop = &ab_driver_signal_seen;
}

static bool host_is_loopback(const char *host, size_t n)
{
    if (n == 9 && strncmp(host, "localhost", 9) == 0) {
        return true;
    }
    if (n == 5 && strncmp(host, "[::1]", 5) == 0) {
        return true;
    }
    return n >= 4 && strncmp(host, "127.", 4) == 0 && strspn(host, "0123456789.") >= n;
}

enum ab_status ab_driver_check_url(const char *url, const char *field, struct ab_error *err)
{
    const char *host;
    size_t n;

    if (!url) {
        return ab_error_set(err, AB_ERR_CONFIG, "%s: is required", field);
    }
    if (strncmp(url, "https://", 8) == 0) {
        host = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        host = url + 7;
    } else {
        return ab_error_set(err, AB_ERR_CONFIG, "%s: must be an http(s) URL", field);
    }
    if (host[0] == '[') {
        const char *end = strchr(host, ']');

        n = end ? (size_t)(end - host) + 1 : strlen(host);
    } else {
        n = strcspn(host, ":/?#");
    }
    if (n == 0) {
        return ab_error_set(err, AB_ERR_CONFIG, "%s: has no host", field);
    }
    if (url[4] != 's' && !host_is_loopback(host, n)) {
        return ab_error_set(err, AB_ERR_CONFIG,
                            "%s: must use https (plain http is allowed only for a loopback host)",
                            field);
    }
    return AB_OK;
}

static void add_secret_cb(void *arg, const char *secret)
{
    (void)ab_driver_add_secret(arg, secret, NULL);
}

static void config_warn_cb(void *arg, const char *message)
{
    struct ab_driver *d = arg;

    AB_WARN(d->em, "%s", message);
}

/* A client-side rate so low that one request waits longer than the request
 * timeout is a mistake (1e-300 would wait forever without a word). */
static enum ab_status check_rate(yajl_val config, struct ab_error *err)
{
    yajl_val rps = ab_json_get(config, "requests_per_second");
    yajl_val timeout = ab_json_get(config, "request_timeout_seconds");
    double rate;
    double secs;

    if (!rps || !timeout || !ab_json_double(rps, &rate) || !ab_json_double(timeout, &secs)) {
        return AB_OK;
    }
    if (rate > 0 && 1.0 / rate > secs) {
        return ab_error_set(err, AB_ERR_CONFIG,
                            "requests_per_second: %g allows one request every %.3g s, longer than "
                            "request_timeout_seconds (%g s); use at least %g, or 0 for no limit",
                            rate, 1.0 / rate, secs, 1.0 / secs);
    }
    return AB_OK;
}

/* Loads and validates the config; registers its secrets. Every option comes
 * from the config, its defaults filled in from the spec (ab/options.h). */
static enum ab_status load_config(struct ab_driver *d, struct ab_error *err)
{
    struct ab_core_opts core;
    enum ab_status rc;

    if (!d->config_path) {
        return ab_error_set(err, AB_ERR_CONFIG, "missing --config <file>");
    }
    rc = ab_config_load_warn(d->config_path, d->schema, config_warn_cb, d, &d->config, err);
    if (d->config) {
        ab_config_each_secret(d->config, d->schema, add_secret_cb, d);
        if (d->failed) {
            *err = d->fatal;
            return err->code;
        }
    }
    if (rc != AB_OK) {
        return rc;
    }
    rc = check_rate(d->config, err);
    if (rc != AB_OK) {
        return rc;
    }
    ab_opts_core(d->config, &core);
    ab_emitter_set_level(d->em, core.log_level);
    d->progress_every_us = core.progress_every_us;
    if (d->kind == AB_KIND_DESTINATION) {
        struct ab_destination_opts dest;

        ab_opts_destination(d->config, &dest);
        memset(&d->dl_target, 0, sizeof(d->dl_target));
        d->dl_target.kind = dest.storage;
        d->dl_target.path = dest.local_path;
        d->dl_target.store = dest.s3;
        d->dl_target.prefix = dest.s3_prefix;
        d->dl_target.run_name = d->dl_run_name;
        if (dest.storage_set && dest.dead_letter_path) {
            AB_WARN(d->em, "dead_letter_path is ignored: object_storage_config is set");
        }
        d->fail_on_reject = dest.fail_on_reject;
        d->max_wait_us = dest.max_wait_us;
        d->max_line_bytes = dest.max_line_bytes;
        d->dest_opts = dest;
    }
    return AB_OK;
}

void ab_driver_name_sink(struct ab_driver *d)
{
    const char *tmp = getenv("TMPDIR");
    int64_t sync_id = -1;
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    size_t i;

    if (!tmp || tmp[0] != '/') {
        tmp = "/tmp";
    }
    for (i = 0; i < d->catalog.n && sync_id < 0; i++) {
        sync_id = d->catalog.streams[i].sync_id;
    }
    if (!gmtime_r(&now, &tm) || strftime(when, sizeof(when), "%Y%m%dT%H%M%SZ", &tm) == 0) {
        (void)snprintf(when, sizeof(when), "0");
    }
    if (sync_id >= 0) {
        (void)snprintf(d->dl_run_name, sizeof(d->dl_run_name), "%s-sync-%lld-%s-%ld", d->name,
                       (long long)sync_id, when, (long)getpid());
        (void)snprintf(d->dl_default_path, sizeof(d->dl_default_path),
                       "%s/%s-sync-%lld-rejected.jsonl", tmp, d->name, (long long)sync_id);
    } else {
        (void)snprintf(d->dl_run_name, sizeof(d->dl_run_name), "%s-%s-%ld", d->name, when,
                       (long)getpid());
        (void)snprintf(d->dl_default_path, sizeof(d->dl_default_path), "%s/%s-rejected.jsonl", tmp,
                       d->dl_run_name);
    }
}

bool ab_driver_object_storage(const struct ab_driver *d, struct ab_objstore_cfg *cfg,
                              const char **prefix, const char **run_name)
{
    if (d->dl_target.kind != AB_DL_OBJSTORE) {
        return false;
    }
    *cfg = d->dl_target.store;
    *prefix = d->dl_target.prefix ? d->dl_target.prefix : "";
    *run_name = d->dl_run_name;
    return true;
}

void ab_driver_describe_sink(const struct ab_driver *d, char *buf, size_t size)
{
    const struct ab_deadletter_target *t = &d->dl_target;

    if (t->kind == AB_DL_NONE) {
        (void)snprintf(buf, size, "nowhere (object_storage_config None: counted only)");
    } else if (t->kind == AB_DL_OBJSTORE) {
        (void)snprintf(buf, size, "s3://%s/%s", t->store.bucket ? t->store.bucket : "",
                       t->prefix ? t->prefix : "");
    } else {
        (void)snprintf(buf, size, "file '%s'", t->path && *t->path ? t->path : d->dl_default_path);
    }
}

bool ab_driver_in_container(void)
{
    return access("/.dockerenv", F_OK) == 0 || access("/run/.containerenv", F_OK) == 0 ||
           getenv("container") != NULL || getenv("KUBERNETES_SERVICE_HOST") != NULL;
}

static enum ab_status cmd_check(struct ab_driver *d, struct ab_error *err)
{
    struct ab_check chk;
    enum ab_status rc;

    ab_buf_init(&chk.text, CHECK_MAX_PROBLEMS);
    chk.count = 0;
    if (d->kind == AB_KIND_DESTINATION && !d->fail_on_reject) {
        struct ab_error derr;

        ab_error_init(&derr);
        struct ab_deadletter_target t = d->dl_target;

        ab_driver_name_sink(d);
        if (t.kind == AB_DL_FILE && (!t.path || !*t.path)) {
            t.path = d->dl_default_path;
        }
        if (ab_deadletter_probe_target(&t, &derr) != AB_OK) {
            ab_check_problem(&chk, "%s", derr.message);
        }
    }
    rc = d->kind == AB_KIND_DESTINATION ? d->dops->check(d, &chk, err)
                                        : d->sops->check(d, &chk, err);
    if (rc == AB_OK) {
        rc = ab_emitter_connection_status(d->em, chk.count == 0, chk.count ? chk.text.data : NULL);
        if (rc != AB_OK) {
            ab_error_set(err, rc, "cannot write to stdout");
        }
    }
    ab_buf_release(&chk.text);
    return rc;
}

/* ---- the command line ------------------------------------------------------ */

enum command {
    CMD_NONE,
    CMD_SPEC,
    CMD_CHECK,
    CMD_DISCOVER,
    CMD_READ,
    CMD_WRITE,
    CMD_LOAD,
    CMD_HELP,
    CMD_VERSION
};

/* The commands, which kind of connector has each, and what each needs. */
static const struct command_desc {
    const char *name;
    enum command cmd;
    int kinds; /* 1 << enum ab_kind */
    bool config;
    bool catalog;
    const char *usage;
} commands[] = {
    {"spec", CMD_SPEC, 3, false, false, "print the connector specification"},
    {"check", CMD_CHECK, 3, true, false, "test the configuration and the connection"},
    {"discover", CMD_DISCOVER, 3, true, false,
     "print the streams the source can read, or the objects the destination loads"},
    {"read", CMD_READ, 1 << AB_KIND_SOURCE, true, true,
     "read the catalog's streams as Airbyte messages on standard output"},
    {"write", CMD_WRITE, 1 << AB_KIND_DESTINATION, true, true,
     "load Airbyte messages read on standard input (or --input FILE)"},
    {"load", CMD_LOAD, 1 << AB_KIND_DESTINATION, true, false,
     "load plain JSONL records (one object per line) from files"},
};

static const struct command_desc *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, name) == 0) {
            return &commands[i];
        }
    }
    return NULL;
}

static void print_usage(struct ab_driver *d, const char *prog)
{
    struct ab_buf b;
    enum ab_status rc;

    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    rc = ab_buf_printf(&b, NULL, "usage: %s <command> [options]\n\ncommands:\n", prog);
    for (size_t i = 0; rc == AB_OK && i < sizeof(commands) / sizeof(commands[0]); i++) {
        const struct command_desc *c = &commands[i];
        char words[128];

        if (!(c->kinds & (1 << d->kind))) {
            continue;
        }
        (void)snprintf(words, sizeof(words), "%s%s%s%s%s", c->name,
                       c->config ? " --config FILE" : "", c->catalog ? " --catalog FILE" : "",
                       c->cmd == CMD_READ ? " [--state FILE]" : "",
                       c->cmd == CMD_LOAD ? " --object NAME FILE..." : "");
        rc = ab_buf_printf(&b, NULL, "  %-52s %s\n", words, c->usage);
    }
    if (rc == AB_OK) {
        rc = ab_buf_printf(&b, NULL,
                           "\noptions:\n"
                           "  --config FILE    connector configuration (JSON)\n"
                           "  --catalog FILE   configured catalog (JSON)\n"
                           "%s"
                           "  --help           this text\n"
                           "  --version        the connector's version\n",
                           d->kind == AB_KIND_SOURCE
                               ? "  --state FILE     state to resume from (a JSON array of "
                                 "state messages)\n"
                               : "\nwrite and load (see the README):\n"
                                 "  --input FILE          write: read messages from FILE "
                                 "(plain or gzip); --catalog is then optional\n"
                                 "  --print-catalog       write: print the catalog (given or "
                                 "inferred from --input) and exit\n"
                                 "  --sync-mode MODE      destination_sync_mode of an inferred "
                                 "catalog or of load (default append)\n"
                                 "  --sync-id N           sync_id of an inferred catalog or of "
                                 "load (a new one applies again)\n"
                                 "  --object NAME         load: the target object, fields as "
                                 "they are\n"
                                 "  --stream NAME         load: the stream name, through its "
                                 "stream_mappings entry\n"
                                 "  --namespace NS        load: the stream's namespace\n"
                                 "  --checkpoint-file F   load: record how far each file is "
                                 "committed; a rerun resumes there\n"
                                 "  --dry-run             validate, map and batch; send "
                                 "nothing\n"
                                 "  --show-requests N     dry run: print N request bodies\n"
                                 "  --log-format FMT      json (Airbyte LOG messages) or text "
                                 "(on a terminal)\n"
                                 "  --report FILE         write the run's summary as JSON\n");
    }
    if (rc == AB_OK) {
        (void)ab_emitter_raw(d->em, b.data, b.len - 1, true);
    }
    ab_buf_release(&b);
}

/* "--name FILE" or "--name=FILE": true when a matched, *i advanced. */
static bool take_path(int argc, char **argv, int *i, const char *name, const char **out,
                      struct ab_error *err)
{
    const char *a = argv[*i];
    size_t n = strlen(name);

    if (strncmp(a, name, n) != 0) {
        return false;
    }
    if (a[n] == '=') {
        *out = a + n + 1;
        return true;
    }
    if (a[n] != '\0') {
        return false;
    }
    if (*i + 1 >= argc) {
        (void)ab_error_set(err, AB_ERR_CONFIG, "option '%s' needs a file name", name);
        *out = NULL;
        return true;
    }
    *out = argv[++*i];
    return true;
}

/* The options of write and load; true when a matched. */
static bool take_run_option(struct ab_driver *d, int argc, char **argv, int *i,
                            struct ab_error *err)
{
    struct ab_run_opts *o = &d->run;
    const char *a = argv[*i];
    const char *n = NULL;

    if (d->kind != AB_KIND_DESTINATION) {
        return false;
    }
    if (strcmp(a, "--dry-run") == 0) {
        o->dry_run = true;
        return true;
    }
    if (strcmp(a, "--print-catalog") == 0) {
        o->print_catalog = true;
        return true;
    }
    if (take_path(argc, argv, i, "--show-requests", &n, err)) {
        char *end = NULL;

        if (n) {
            o->show_requests = strtol(n, &end, 10);
        }
        if (err->code == AB_OK && (!n || !*n || *end || o->show_requests < 0)) {
            (void)ab_error_set(err, AB_ERR_CONFIG, "--show-requests needs a number");
        }
        return true;
    }
    return take_path(argc, argv, i, "--input", &o->input, err) ||
           take_path(argc, argv, i, "--object", &o->object, err) ||
           take_path(argc, argv, i, "--stream", &o->stream, err) ||
           take_path(argc, argv, i, "--namespace", &o->ns, err) ||
           take_path(argc, argv, i, "--sync-mode", &o->sync_mode, err) ||
           take_path(argc, argv, i, "--sync-id", &o->sync_id, err) ||
           take_path(argc, argv, i, "--checkpoint-file", &o->checkpoint, err) ||
           take_path(argc, argv, i, "--report", &o->report, err) ||
           take_path(argc, argv, i, "--log-format", &o->log_format, err);
}

static enum ab_status parse_args(struct ab_driver *d, int argc, char **argv, enum command *cmd,
                                 struct ab_error *err)
{
    *cmd = CMD_NONE;
    d->run.files = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*d->run.files));
    if (!d->run.files) {
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const struct command_desc *desc;
        const char *ignored = NULL;
        enum command c;

        if (take_run_option(d, argc, argv, &i, err)) {
            if (err->code != AB_OK) {
                return err->code;
            }
            continue;
        }
        if (*cmd == CMD_LOAD && (a[0] != '-' || strcmp(a, "-") == 0)) {
            d->run.files[d->run.nfiles++] = a;
            continue;
        }
        if (take_path(argc, argv, &i, "--config", &d->config_path, err) ||
            take_path(argc, argv, &i, "--catalog", &d->catalog_path, err) ||
            take_path(argc, argv, &i, "--state",
                      d->kind == AB_KIND_SOURCE ? &d->state_path : &ignored, err)) {
            /* destinations accept --state for compatibility and take none */
            if (err->code != AB_OK) {
                return err->code;
            }
            continue;
        }
        desc = find_command(a);
        if (desc && (desc->kinds & (1 << d->kind))) {
            c = desc->cmd;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "help") == 0) {
            c = CMD_HELP;
        } else if (strcmp(a, "--version") == 0 || strcmp(a, "version") == 0) {
            c = CMD_VERSION;
        } else if (desc) {
            return ab_error_set(err, AB_ERR_CONFIG, "'%s' is a command of %s, not of a %s", a,
                                d->kind == AB_KIND_SOURCE ? "destinations" : "sources",
                                d->kind == AB_KIND_SOURCE ? "source" : "destination");
        } else {
            return ab_error_set(err, AB_ERR_CONFIG, "unknown argument '%s' (see --help)", a);
        }
        if (*cmd != CMD_NONE && *cmd != c && c != CMD_HELP && *cmd != CMD_HELP) {
            return ab_error_set(err, AB_ERR_CONFIG, "more than one command given");
        }
        if (*cmd != CMD_HELP) {
            *cmd = c;
        }
    }
    if (*cmd == CMD_NONE) {
        return ab_error_set(err, AB_ERR_CONFIG, "no command given (see --help)");
    }
    return ab_driver_check_run_opts(d, *cmd == CMD_LOAD, *cmd == CMD_WRITE, err);
}

static void driver_release(struct ab_driver *d)
{
    if (d->self) {
        if (d->kind == AB_KIND_DESTINATION && d->dops->close) {
            d->dops->close(d->self);
        } else if (d->kind == AB_KIND_SOURCE && d->sops->close) {
            d->sops->close(d->self);
        }
    }
    d->self = NULL;
    ab_driver_write_release(d);
    ab_driver_read_release(d);
    ab_catalog_release(&d->catalog);
    if (d->config) {
        yajl_tree_free(d->config);
    }
    if (d->spec) {
        yajl_tree_free(d->spec);
    }
    ab_loop_free(d->loop);
    free((void *)d->run.files);
    d->run.files = NULL;
    close_signal_pipe();
    ab_emitter_free(d->em);
}

/* Loads the catalog (write and read). */
static enum ab_status load_catalog(struct ab_driver *d, struct ab_error *err)
{
    if (!d->catalog_path) {
        return ab_error_set(err, AB_ERR_CONFIG, "missing --catalog <file>");
    }
    return ab_catalog_load(&d->catalog, d->catalog_path, err);
}

/* Runs one command; AB_OK or the error to report. *usage: a usage error. */
static enum ab_status run_command(struct ab_driver *d, enum command cmd, const char *prog,
                                  struct ab_error *err)
{
    enum ab_status rc;

    switch (cmd) {
    case CMD_HELP:
        print_usage(d, prog);
        return AB_OK;
    case CMD_VERSION: {
        char line[128];
        int n = snprintf(line, sizeof(line), "%s %s", d->name, d->version);

        (void)ab_emitter_raw(d->em, line, (size_t)n, true);
        return AB_OK;
    }
    case CMD_SPEC: {
        struct ab_buf text;

        ab_buf_init(&text, AB_BUF_UNBOUNDED);
        rc = ab_json_write(&text, d->spec, NULL);
        if (rc == AB_OK) {
            rc = ab_emitter_spec(d->em, text.data);
        }
        ab_buf_release(&text);
        return rc == AB_OK ? AB_OK
                           : ab_error_set(err, AB_ERR_INTERNAL, "cannot print the specification");
    }
    case CMD_CHECK:
        rc = load_config(d, err);
        if (rc == AB_ERR_CONFIG) {
            /* a config that does not validate is a failed check, not a crash */
            (void)ab_emitter_connection_status(d->em, false, err->message);
            return AB_OK;
        }
        return rc == AB_OK ? cmd_check(d, err) : rc;
    case CMD_DISCOVER:
        rc = load_config(d, err);
        return rc == AB_OK ? ab_driver_discover(d, err) : rc;
    case CMD_LOAD:
    case CMD_READ:
    case CMD_WRITE:
        rc = ab_driver_watch_signals(d, err);
        if (rc == AB_OK) {
            rc = load_config(d, err);
        }
        if (rc == AB_OK && cmd == CMD_READ) {
            rc = load_catalog(d, err);
        } else if (rc == AB_OK) {
            d->mode = cmd == CMD_LOAD ? WM_LOAD : WM_WRITE;
            rc = d->catalog_path && cmd == CMD_WRITE ? load_catalog(d, err)
                                                     : ab_driver_make_catalog(d, err);
            if (rc == AB_OK && d->run.print_catalog) {
                return ab_driver_print_catalog(d, err);
            }
        }
        if (rc == AB_OK) {
            rc = cmd == CMD_READ ? ab_driver_read(d, err) : ab_driver_write(d, err);
        }
        return rc;
    case CMD_NONE:
        break;
    }
    return ab_error_set(err, AB_ERR_INTERNAL, "no command");
}

static int driver_main(struct ab_driver *d, int argc, char **argv)
{
    struct ab_error err;
    enum command cmd = CMD_NONE;
    enum ab_status rc;
    int code = 0;

    ab_error_init(&err);
    d->last_stream = -1;
    d->em = ab_emitter_new(stdout, ab_wall_ms, &err);
    if (!d->em) {
        (void)fprintf(stderr, "%s: %s\n", d->name, err.message);
        return EXIT_FATAL;
    }
    d->loop = ab_loop_new(&err);
    if (!d->loop) {
        goto fatal;
    }
    /* the connector's spec with the common option groups merged in */
    if (ab_spec_build(d->spec_json, &d->spec, &err) != AB_OK) {
        goto fatal;
    }
    d->schema = ab_json_get(d->spec, "connectionSpecification");
    rc = parse_args(d, argc, argv, &cmd, &err);
    if (rc != AB_OK) {
        (void)fprintf(stderr, "%s: %s\n", d->name, err.message);
        code = EXIT_USAGE;
        goto out;
    }
    rc = run_command(d, cmd, argc > 0 ? argv[0] : d->name, &err);
    if (ab_driver_signal_seen) {
        AB_WARN(d->em, "stopped by signal %d: %s", (int)ab_driver_signal_seen,
                d->kind == AB_KIND_DESTINATION
                    ? "records after the last emitted state are not confirmed and will be sent "
                      "again by the next run"
                    : "the next run resumes from the last emitted state");
        code = 128 + (int)ab_driver_signal_seen;
        goto out;
    }
    if (rc == AB_OK) {
        goto out;
    }
fatal:
    if (ab_emitter_trace_error(d->em, &err, NULL, NULL) != AB_OK) {
        /* stdout is gone (closed, a broken pipe): stderr is the fallback */
        char masked[sizeof(err.message)];

        ab_emitter_mask(d->em, err.message, masked, sizeof(masked));
        (void)fprintf(stderr, "%s: error: %s\n", d->name, masked);
    }
    code = EXIT_FATAL;
out:
    driver_release(d);
    return code;
}

int ab_destination_main(int argc, char **argv, const struct ab_destination_ops *ops)
{
    struct ab_driver d;

    memset(&d, 0, sizeof(d));
    d.kind = AB_KIND_DESTINATION;
    d.dops = ops;
    d.name = ops->name;
    d.version = ops->version;
    d.spec_json = ops->spec_json;
    return driver_main(&d, argc, argv);
}

int ab_source_main(int argc, char **argv, const struct ab_source_ops *ops)
{
    struct ab_driver d;

    memset(&d, 0, sizeof(d));
    d.kind = AB_KIND_SOURCE;
    d.sops = ops;
    d.name = ops->name;
    d.version = ops->version;
    d.spec_json = ops->spec_json;
    return driver_main(&d, argc, argv);
}
