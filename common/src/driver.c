/* driver.c - the destination driver: commands, the stdin loop, checkpoints. */
/* SPDX-License-Identifier: MIT */
#include "ab/driver.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include "ab/buf.h"
#include "ab/config.h"
#include "ab/deadletter.h"
#include "ab/json.h"
#include "ab/jsonl_reader.h"
#include "ab/log.h"

/*
 * Exit codes: 0 success, 1 a fatal error (one TRACE error was written),
 * 2 a usage error, 128 + signal when stopped by SIGTERM or SIGINT.
 */
#define EXIT_FATAL 1
#define EXIT_USAGE 2

#define CHECK_MAX_PROBLEMS  8192
#define FORCED_FLUSH_GAP_US (10 * 1000000LL)

struct ab_check {
    struct ab_buf text;
    size_t count;
};

struct ab_driver {
    const struct ab_destination_ops *ops;
    struct ab_emitter *em;
    yajl_val spec;   /* the parsed ConnectorSpecification */
    yajl_val schema; /* borrowed: spec.connectionSpecification */
    yajl_val config;
    struct ab_catalog catalog;
    struct ab_ckpt *ck;
    struct ab_deadletter *dl;
    struct ab_http *http; /* borrowed from the destination */
    struct ab_jsonl_reader *reader;
    struct ab_json_arena *arena; /* the current line's tree */
    void *self;

    const char *config_path;
    const char *catalog_path;
    const char *dl_path;
    bool fail_on_reject;

    /* sticky fatal error, from a callback or the loop */
    bool failed;
    struct ab_error fatal;
    /* an input error stops reading; what came before it is still committed */
    bool input_failed;
    struct ab_error input_err;
    bool reader_failed; /* the reader refused a line: no more input */
    struct ab_error reader_err;

    bool dl_dirty; /* dead letters written since the last sync */
    uint64_t committed;
    uint64_t lines;
    uint64_t unknown_types;
    int64_t start_us;
    int64_t last_progress_us;
    uint64_t last_progress_records;
    int64_t progress_every_us;
    int64_t max_wait_us;
    int64_t last_forced_us; /* last flush forced by a waiting state */
    long last_stream;       /* lookup cache */
};

/* The self-pipe the signal handler writes to: the only mutable global, since a
 * signal handler can reach nothing else. */
static int signal_pipe[2] = {-1, -1};
static volatile sig_atomic_t signal_seen;

static void on_signal(int sig)
{
    int saved = errno;
    char c = (char)sig;

    signal_seen = sig;
    if (signal_pipe[1] >= 0) {
        ssize_t n = write(signal_pipe[1], &c, 1);

        (void)n;
    }
    errno = saved;
}

static enum ab_status install_signals(struct ab_error *err)
{
    struct sigaction sa;

    if (pipe(signal_pipe) != 0) {
        return ab_error_set(err, AB_ERR_IO, "cannot create a pipe: %s", strerror(errno));
    }
    (void)fcntl(signal_pipe[0], F_SETFD, FD_CLOEXEC);
    (void)fcntl(signal_pipe[1], F_SETFD, FD_CLOEXEC);
    (void)fcntl(signal_pipe[1], F_SETFL, O_NONBLOCK);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    (void)sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
        return ab_error_set(err, AB_ERR_IO, "cannot install signal handlers: %s", strerror(errno));
    }
    sa.sa_handler = SIG_IGN;
    (void)sigaction(SIGPIPE, &sa, NULL);
    return AB_OK;
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

void ab_driver_set_http(struct ab_driver *d, struct ab_http *h)
{
    d->http = h;
}

void ab_driver_add_secret(struct ab_driver *d, const char *secret)
{
    if (secret && d->em) {
        (void)ab_emitter_add_secret(d->em, secret);
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

static double config_number(yajl_val config, const char *key, double fallback)
{
    return ab_json_get_double(config, key, fallback);
}

void ab_driver_http_opts(struct ab_driver *d, struct ab_http_opts *o)
{
    yajl_val c = d->config;
    const char *ca = ab_json_get_str(c, "ca_path", NULL);

    ab_http_opts_init(o);
    o->max_in_flight = (int)config_number(c, "max_in_flight", o->max_in_flight);
    o->requests_per_second = config_number(c, "requests_per_second", o->requests_per_second);
    o->burst = config_number(c, "burst", o->burst);
    o->connect_timeout_ms =
        (long)(config_number(c, "connect_timeout_seconds", (double)o->connect_timeout_ms / 1e3) *
               1e3);
    o->request_timeout_ms =
        (long)(config_number(c, "request_timeout_seconds", (double)o->request_timeout_ms / 1e3) *
               1e3);
    o->max_retries = (int)config_number(c, "max_retries", o->max_retries);
    if (ca && *ca) {
        o->ca_path = ca;
    }
    o->log = d->em;
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
    ab_driver_add_secret(arg, secret);
}

/* Loads and validates the config; registers its secrets. */
static enum ab_status load_config(struct ab_driver *d, struct ab_error *err)
{
    enum ab_status rc;
    const char *level;

    if (!d->config_path) {
        return ab_error_set(err, AB_ERR_CONFIG, "missing --config <file>");
    }
    rc = ab_config_load(d->config_path, d->schema, &d->config, err);
    if (d->config) {
        ab_config_each_secret(d->config, d->schema, add_secret_cb, d);
    }
    if (rc != AB_OK) {
        return rc;
    }
    level = ab_json_get_str(d->config, "log_level", "INFO");
    if (strcmp(level, "DEBUG") == 0) {
        ab_emitter_set_level(d->em, AB_LOG_DEBUG);
    } else if (strcmp(level, "WARN") == 0) {
        ab_emitter_set_level(d->em, AB_LOG_WARN);
    } else if (strcmp(level, "ERROR") == 0) {
        ab_emitter_set_level(d->em, AB_LOG_ERROR);
    }
    d->dl_path = ab_json_get_str(d->config, "dead_letter_path", "rejected-records.jsonl");
    d->fail_on_reject =
        strcmp(ab_json_get_str(d->config, "rejected_records", "dead_letter"), "fail") == 0;
    d->progress_every_us =
        (int64_t)(config_number(d->config, "progress_interval_seconds", 30) * 1e6);
    d->max_wait_us = (int64_t)(config_number(d->config, "max_checkpoint_wait_seconds", 600) * 1e6);
    return AB_OK;
}

/* ---- rejections ---------------------------------------------------------- */

enum ab_status ab_driver_reject(struct ab_driver *d, size_t stream, uint64_t seq, uint64_t lineno,
                                const char *rejected_by, const char *record_json, size_t record_len,
                                const char *errors_json, struct ab_error *err)
{
    const struct ab_stream *s = &d->catalog.streams[stream];
    enum ab_status rc;

    if (d->fail_on_reject) {
        char masked[512];

        ab_emitter_mask(d->em, errors_json, masked, sizeof(masked));
        return ab_error_set(err, AB_ERR_REJECTED,
                            "line %llu: record of stream '%s' rejected by the %s: %s "
                            "(rejected_records is \"fail\")",
                            (unsigned long long)lineno, s->name, rejected_by, masked);
    }
    if (!d->dl) {
        d->dl = ab_deadletter_open(d->dl_path, err);
        if (!d->dl) {
            return err->code;
        }
    }
    rc = ab_deadletter_write(d->dl, s->name, s->ns, lineno, rejected_by, record_json, record_len,
                             errors_json, err);
    if (rc != AB_OK) {
        return rc;
    }
    d->dl_dirty = true;
    ab_ckpt_reject(d->ck, stream, seq);
    AB_DEBUG(d->em, "line %llu: record of stream '%s' rejected by the %s: %s",
             (unsigned long long)lineno, s->name, rejected_by, errors_json);
    return AB_OK;
}

/* ---- states -------------------------------------------------------------- */

static enum ab_status emit_state(void *arg, const char *members, size_t len, uint64_t record_count,
                                 uint64_t rejected_count, struct ab_error *err)
{
    struct ab_driver *d = arg;
    enum ab_status rc;

    /* A rejection must be on disk before the state that counts it. */
    if (d->dl_dirty) {
        rc = ab_deadletter_sync(d->dl, err);
        if (rc != AB_OK) {
            return rc;
        }
        d->dl_dirty = false;
    }
    rc = ab_emitter_state(d->em, members, len, record_count, rejected_count);
    if (rc != AB_OK) {
        return ab_error_set(err, rc, "cannot write to stdout");
    }
    return AB_OK;
}

static enum ab_status release_states(struct ab_driver *d, struct ab_error *err)
{
    return ab_ckpt_release(d->ck, emit_state, d, NULL, err);
}

/* ---- the write loop ------------------------------------------------------ */

static long find_stream(struct ab_driver *d, const char *name, const char *ns)
{
    const struct ab_stream *s;

    if (d->last_stream >= 0) {
        s = &d->catalog.streams[d->last_stream];
        if (strcmp(s->name, name) == 0 && strcmp(s->ns ? s->ns : "", ns ? ns : "") == 0) {
            return d->last_stream;
        }
    }
    d->last_stream = ab_catalog_find(&d->catalog, name, ns);
    return d->last_stream;
}

static void describe_stream(char *buf, size_t size, const char *name, const char *ns)
{
    if (ns && *ns) {
        (void)snprintf(buf, size, "%s.%s", ns, name);
    } else {
        (void)snprintf(buf, size, "%s", name);
    }
}

static enum ab_status on_record(struct ab_driver *d, struct ab_msg *msg, uint64_t lineno,
                                struct ab_error *err)
{
    struct ab_record rec;
    long idx = find_stream(d, msg->stream, msg->ns);
    char name[300];

    if (idx < 0) {
        describe_stream(name, sizeof(name), msg->stream, msg->ns);
        return ab_error_set(err, AB_ERR_PROTOCOL,
                            "record for stream '%s' which is not in the configured catalog", name);
    }
    rec.stream = (size_t)idx;
    rec.desc = &d->catalog.streams[idx];
    rec.seq = ab_ckpt_record(d->ck, rec.stream);
    rec.lineno = lineno;
    rec.data = msg->data;
    rec.deleted = !ab_json_is_null(ab_json_get(msg->data, "_ab_cdc_deleted_at"));
    return d->ops->record(d->self, &rec, err);
}

static enum ab_status on_state(struct ab_driver *d, struct ab_msg *msg, const char *line,
                               size_t len, struct ab_error *err)
{
    struct ab_buf members;
    enum ab_ckpt_scope scope = AB_CKPT_GLOBAL;
    size_t stream = AB_CKPT_NO_STREAM;
    enum ab_status rc;
    char name[300];

    if (msg->state_type == AB_STATE_STREAM) {
        long idx = find_stream(d, msg->stream, msg->ns);

        scope = AB_CKPT_STREAM;
        if (idx >= 0) {
            stream = (size_t)idx;
        } else {
            describe_stream(name, sizeof(name), msg->stream, msg->ns);
            AB_WARN(d->em,
                    "state for stream '%s', which is not in the configured catalog: it covers "
                    "no records and is passed through in order",
                    name);
        }
    }
    ab_buf_init(&members, AB_BUF_UNBOUNDED);
    rc = ab_proto_state_members_raw(&members, line, len, msg->state, err);
    if (rc == AB_OK) {
        rc = ab_ckpt_state(d->ck, scope, stream, members.data ? members.data : "", members.len,
                           ab_now_us(), err);
    }
    ab_buf_release(&members);
    if (rc == AB_OK && d->ops->state) {
        rc = d->ops->state(d->self, msg, err);
    }
    return rc;
}

static enum ab_status on_trace(struct ab_driver *d, struct ab_msg *msg, struct ab_error *err)
{
    long idx;

    if (msg->status == AB_STATUS_NONE || !msg->stream) {
        return AB_OK;
    }
    idx = find_stream(d, msg->stream, msg->ns);
    if (idx < 0) {
        AB_DEBUG(d->em, "stream status for stream '%s' outside the catalog ignored", msg->stream);
        return AB_OK;
    }
    AB_DEBUG(d->em, "stream '%s' is %s", msg->stream, ab_stream_status_name(msg->status));
    if (d->ops->stream_status) {
        return d->ops->stream_status(d->self, (size_t)idx, msg->status, err);
    }
    return AB_OK;
}

/* A RECORD that failed the JSON intake (protocol.h): dead-lettered with the
 * line as a JSON string (bytes that are not UTF-8 as U+FFFD) and the reason. */
static enum ab_status on_invalid_record(struct ab_driver *d, struct ab_msg *msg, const char *line,
                                        size_t len, uint64_t lineno, struct ab_error *err)
{
    long idx = find_stream(d, msg->stream, msg->ns);
    struct ab_buf rec;
    struct ab_buf errors;
    enum ab_status rc = AB_OK;
    char reason[AB_ERROR_MSG_MAX];
    char name[300];
    size_t i = 0;

    (void)snprintf(reason, sizeof(reason), "%s", err->message);
    ab_error_init(err);
    if (idx < 0) {
        describe_stream(name, sizeof(name), msg->stream, msg->ns);
        return ab_error_set(err, AB_ERR_PROTOCOL,
                            "record for stream '%s' which is not in the configured catalog", name);
    }
    ab_buf_init(&rec, AB_BUF_UNBOUNDED);
    ab_buf_init(&errors, AB_BUF_UNBOUNDED);
    while (rc == AB_OK && i < len) {
        size_t bad = len - i;

        if (ab_utf8_valid(line + i, len - i, &bad)) {
            bad = len - i;
        }
        rc = ab_buf_add(&rec, line + i, bad, err);
        i += bad;
        if (rc == AB_OK && i < len) {
            rc = ab_buf_add(&rec, "\xef\xbf\xbd", 3, err);
            i++;
        }
    }
    if (rc == AB_OK) {
        struct ab_buf quoted;

        ab_buf_init(&quoted, AB_BUF_UNBOUNDED);
        rc = ab_json_write_str(&quoted, rec.data ? rec.data : "", rec.len, err);
        ab_buf_release(&rec);
        rec = quoted;
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&errors, "[{\"field\":", err);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(&errors, msg->invalid_field, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&errors, ",\"code\":\"invalid_json\",\"message\":", err);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(&errors, reason, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&errors, "}]", err);
    }
    if (rc == AB_OK) {
        rc = ab_driver_reject(d, (size_t)idx, ab_ckpt_record(d->ck, (size_t)idx), lineno,
                              "destination", rec.data, rec.len, errors.data, err);
    }
    ab_buf_release(&rec);
    ab_buf_release(&errors);
    return rc;
}

static enum ab_status handle_line(struct ab_driver *d, const char *line, size_t len,
                                  uint64_t lineno, struct ab_error *err)
{
    struct ab_msg msg;
    enum ab_status rc;

    d->lines++;
    ab_json_arena_reset(d->arena);
    rc = ab_msg_parse_in(&msg, d->arena, line, len, err);
    if (rc == AB_ERR_REJECTED && msg.invalid) {
        rc = on_invalid_record(d, &msg, line, len, lineno, err);
        ab_msg_release(&msg);
        return rc;
    }
    if (rc != AB_OK) {
        return rc;
    }
    switch (msg.type) {
    case AB_MSG_RECORD:
        rc = on_record(d, &msg, lineno, err);
        break;
    case AB_MSG_STATE:
        rc = on_state(d, &msg, line, len, err);
        break;
    case AB_MSG_TRACE:
        rc = on_trace(d, &msg, err);
        break;
    case AB_MSG_UNKNOWN:
        if (d->unknown_types++ == 0) {
            AB_WARN(d->em, "line %llu: message type '%s' is unknown and ignored",
                    (unsigned long long)lineno, msg.type_name ? msg.type_name : "");
        }
        break;
    case AB_MSG_LOG:
    case AB_MSG_CONTROL:
    case AB_MSG_OTHER:
        break;
    }
    ab_msg_release(&msg);
    return rc;
}

static void log_progress(struct ab_driver *d, int64_t now, bool force)
{
    struct ab_ckpt_stats cs;
    struct ab_http_stats hs = {0};
    double secs = (double)(now - d->last_progress_us) / 1e6;
    double rate;

    if (!force && now - d->last_progress_us < d->progress_every_us) {
        return;
    }
    ab_ckpt_get_stats(d->ck, &cs);
    if (d->http) {
        ab_http_get_stats(d->http, &hs);
    }
    rate = secs > 0 ? (double)(cs.records - d->last_progress_records) / secs : 0.0;
    AB_INFO(d->em,
            "progress: read %llu records, committed %llu, rejected %llu, retried %llu requests, "
            "%zu requests in flight, %llu of %llu states emitted, %.0f records/s",
            (unsigned long long)cs.records, (unsigned long long)d->committed,
            (unsigned long long)cs.rejected, (unsigned long long)hs.retries,
            d->http ? ab_http_pending(d->http) : 0, (unsigned long long)cs.states_out,
            (unsigned long long)cs.states_in, rate);
    d->last_progress_us = now;
    d->last_progress_records = cs.records;
}

static void log_summary(struct ab_driver *d, bool ok)
{
    struct ab_ckpt_stats cs;
    struct ab_http_stats hs = {0};
    double secs = (double)(ab_now_us() - d->start_us) / 1e6;

    ab_ckpt_get_stats(d->ck, &cs);
    if (d->http) {
        ab_http_get_stats(d->http, &hs);
    }
    AB_INFO(d->em,
            "summary: %s; %llu lines, %llu records read, %llu committed, %llu rejected%s%s%s, "
            "%llu of %llu states emitted, %llu requests (%llu retried), %.1f s, %.0f records/s",
            ok ? "finished" : "stopped", (unsigned long long)d->lines,
            (unsigned long long)cs.records, (unsigned long long)d->committed,
            (unsigned long long)cs.rejected, cs.rejected && d->dl ? " (dead letters in '" : "",
            cs.rejected && d->dl ? d->dl_path : "", cs.rejected && d->dl ? "')" : "",
            (unsigned long long)cs.states_out, (unsigned long long)cs.states_in,
            (unsigned long long)hs.requests, (unsigned long long)hs.retries, secs,
            secs > 0 ? (double)cs.records / secs : 0.0);
    if (d->ops->summary) {
        d->ops->summary(d->self, d->em);
    }
}

/* Waits for input, sockets or a signal. */
static enum ab_status wait_events(struct ab_driver *d, bool want_stdin, long timeout_ms,
                                  bool *stdin_ready, struct ab_error *err)
{
    bool sig_ready = false;

    *stdin_ready = false;
    if (d->http) {
        return ab_http_wait(d->http, want_stdin ? STDIN_FILENO : -1, signal_pipe[0], timeout_ms,
                            stdin_ready, &sig_ready, err);
    }
    {
        struct pollfd fds[2];
        nfds_t n = 0;
        int r;

        fds[n].fd = signal_pipe[0];
        fds[n++].events = POLLIN;
        if (want_stdin) {
            fds[n].fd = STDIN_FILENO;
            fds[n++].events = POLLIN;
        }
        r = poll(fds, n, (int)timeout_ms);
        if (r < 0 && errno != EINTR) {
            return ab_error_set(err, AB_ERR_IO, "poll failed: %s", strerror(errno));
        }
        *stdin_ready = want_stdin && r > 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR));
    }
    return AB_OK;
}

static enum ab_status read_lines(struct ab_driver *d, bool *drained, struct ab_error *err)
{
    char *line;
    size_t len;
    uint64_t lineno;
    enum ab_status rc;

    *drained = false;
    while (!d->input_failed && !d->failed && !(d->ops->busy && d->ops->busy(d->self))) {
        if (!ab_jsonl_reader_next(d->reader, &line, &len, &lineno)) {
            *drained = true;
            return AB_OK;
        }
        rc = handle_line(d, line, len, lineno, err);
        if (rc == AB_ERR_PROTOCOL) {
            /* Bad input: stop reading, but commit what came before it. */
            ab_error_prefix(err, "line %llu", (unsigned long long)lineno);
            d->input_failed = true;
            d->input_err = *err;
            return AB_OK;
        }
        if (rc != AB_OK) {
            return rc;
        }
    }
    return AB_OK;
}

static enum ab_status run_loop(struct ab_driver *d, struct ab_error *err)
{
    bool eof = false;
    bool final_flushed = false;
    enum ab_status rc;

    for (;;) {
        bool drained = false;
        bool ready = false;
        int64_t now;
        long timeout = 1000;

        if (signal_seen) {
            return AB_OK;
        }
        rc = read_lines(d, &drained, err);
        if (rc != AB_OK) {
            return rc;
        }
        if (d->failed) {
            *err = d->fatal;
            return err->code;
        }
        rc = release_states(d, err);
        if (rc != AB_OK) {
            return rc;
        }
        now = ab_now_us();
        log_progress(d, now, false);
        if (eof && drained && d->reader_failed && !d->input_failed) {
            /* every complete line before the oversize one has been handled */
            d->input_failed = true;
            d->input_err = d->reader_err;
        }
        if (!final_flushed && ((eof && drained) || d->input_failed)) {
            rc = d->ops->flush(d->self, true, err);
            if (rc != AB_OK) {
                return rc;
            }
            final_flushed = true;
            continue;
        }
        if (final_flushed && (!d->ops->idle || d->ops->idle(d->self))) {
            rc = release_states(d, err);
            if (rc != AB_OK) {
                return rc;
            }
            if (ab_ckpt_pending(d->ck) != 0) {
                return ab_error_set(err, AB_ERR_INTERNAL,
                                    "%zu states could not be released although every record "
                                    "was sent",
                                    ab_ckpt_pending(d->ck));
            }
            return AB_OK;
        }
        if (!final_flushed && ab_ckpt_oldest_us(d->ck) >= 0 &&
            now - ab_ckpt_oldest_us(d->ck) > d->max_wait_us &&
            now - d->last_forced_us >= FORCED_FLUSH_GAP_US) {
            /* once per gap: what a forced flush sent may still be on its way */
            d->last_forced_us = now;
            AB_INFO(d->em, "a state has waited %.0f s: flushing",
                    (double)(now - ab_ckpt_oldest_us(d->ck)) / 1e6);
            rc = d->ops->flush(d->self, false, err);
            if (rc != AB_OK) {
                return rc;
            }
        }
        rc = wait_events(d, !eof && drained && !d->input_failed, timeout, &ready, err);
        if (rc != AB_OK) {
            return rc;
        }
        if (ready) {
            rc = ab_jsonl_reader_fill(d->reader, STDIN_FILENO, &eof, err);
            if (rc == AB_ERR_PROTOCOL) {
                /* an oversize line: read no further, but the lines before
                 * it are still handed out and loaded */
                d->reader_failed = true;
                d->reader_err = *err;
                eof = true;
            } else if (rc != AB_OK) {
                return rc;
            }
            if (eof) {
                ab_jsonl_reader_finish(d->reader);
            }
        }
    }
}

static enum ab_status cmd_write(struct ab_driver *d, struct ab_error *err)
{
    enum ab_status rc;
    size_t max_line;

    if (!d->catalog_path) {
        return ab_error_set(err, AB_ERR_CONFIG, "missing --catalog <file>");
    }
    rc = ab_catalog_load(&d->catalog, d->catalog_path, err);
    if (rc != AB_OK) {
        return rc;
    }
    d->ck = ab_ckpt_new(d->catalog.n, err);
    if (!d->ck) {
        return err->code;
    }
    max_line =
        (size_t)config_number(d->config, "max_line_bytes", (double)AB_JSONL_DEFAULT_MAX_LINE);
    d->reader = ab_jsonl_reader_new(max_line, err);
    if (!d->reader) {
        return err->code;
    }
    d->arena = ab_json_arena_new(err);
    if (!d->arena) {
        return err->code;
    }
    rc = d->ops->open(d, &d->self, err);
    if (rc != AB_OK) {
        return rc;
    }
    if (d->fail_on_reject) {
        AB_INFO(d->em, "%s %s: writing %zu stream(s); a rejected record fails the sync",
                d->ops->name, d->ops->version, d->catalog.n);
    } else {
        AB_INFO(d->em, "%s %s: writing %zu stream(s); rejected records go to '%s'", d->ops->name,
                d->ops->version, d->catalog.n, d->dl_path);
    }
    d->start_us = ab_now_us();
    d->last_progress_us = d->start_us;
    rc = run_loop(d, err);
    if (signal_seen) {
        return AB_OK;
    }
    if (rc == AB_OK && d->input_failed) {
        *err = d->input_err;
        rc = err->code;
    }
    if (rc != AB_OK) {
        struct ab_error ignored;

        /* Whatever is committed may still go out; nothing else does. */
        ab_error_init(&ignored);
        (void)release_states(d, &ignored);
    }
    if (d->ops->finish) {
        struct ab_error ferr;
        enum ab_status frc;

        ab_error_init(&ferr);
        frc = d->ops->finish(d->self, rc == AB_OK, &ferr);
        if (rc == AB_OK && frc != AB_OK) {
            *err = ferr;
            rc = frc;
        }
    }
    if (rc == AB_OK) {
        rc = release_states(d, err);
    }
    log_progress(d, ab_now_us(), true);
    log_summary(d, rc == AB_OK);
    if (d->dl) {
        struct ab_error derr;

        ab_error_init(&derr);
        if (ab_deadletter_close(d->dl, &derr) != AB_OK && rc == AB_OK) {
            *err = derr;
            rc = derr.code;
        }
        d->dl = NULL;
    }
    return rc;
}

static enum ab_status cmd_check(struct ab_driver *d, struct ab_error *err)
{
    struct ab_check chk;
    enum ab_status rc;

    ab_buf_init(&chk.text, CHECK_MAX_PROBLEMS);
    chk.count = 0;
    if (!d->fail_on_reject) {
        struct ab_error derr;

        ab_error_init(&derr);
        if (ab_deadletter_probe(d->dl_path, &derr) != AB_OK) {
            ab_check_problem(&chk, "%s", derr.message);
        }
    }
    rc = d->ops->check(d, &chk, err);
    if (rc == AB_OK) {
        rc = ab_emitter_connection_status(d->em, chk.count == 0, chk.count ? chk.text.data : NULL);
        if (rc != AB_OK) {
            ab_error_set(err, rc, "cannot write to stdout");
        }
    }
    ab_buf_release(&chk.text);
    return rc;
}

/* ---- entry point --------------------------------------------------------- */

static const char usage_text[] =
    "usage: %s <command> [options]\n"
    "\n"
    "commands:\n"
    "  spec                                   print the connector specification\n"
    "  check --config FILE                    test the configuration and the connection\n"
    "  write --config FILE --catalog FILE     load Airbyte messages read on standard input\n"
    "\n"
    "options:\n"
    "  --config FILE    connector configuration (JSON)\n"
    "  --catalog FILE   configured catalog (JSON)\n"
    "  --help           this text\n"
    "  --version        the connector's version\n";

static void print_usage(struct ab_driver *d, const char *prog)
{
    struct ab_buf b;

    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    if (ab_buf_printf(&b, NULL, usage_text, prog) == AB_OK) {
        (void)ab_emitter_raw(d->em, b.data, b.len - 1, true);
    }
    ab_buf_release(&b);
}

enum command { CMD_NONE, CMD_SPEC, CMD_CHECK, CMD_WRITE, CMD_HELP, CMD_VERSION };

static enum ab_status parse_args(struct ab_driver *d, int argc, char **argv, enum command *cmd,
                                 struct ab_error *err)
{
    int i;

    *cmd = CMD_NONE;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        enum command c = CMD_NONE;

        if (strcmp(a, "--config") == 0 || strcmp(a, "--catalog") == 0) {
            if (i + 1 >= argc) {
                return ab_error_set(err, AB_ERR_CONFIG, "option '%s' needs a file name", a);
            }
            if (a[3] == 'o') {
                d->config_path = argv[++i];
            } else {
                d->catalog_path = argv[++i];
            }
            continue;
        }
        if (strncmp(a, "--config=", 9) == 0) {
            d->config_path = a + 9;
            continue;
        }
        if (strncmp(a, "--catalog=", 10) == 0) {
            d->catalog_path = a + 10;
            continue;
        }
        if (strcmp(a, "spec") == 0) {
            c = CMD_SPEC;
        } else if (strcmp(a, "check") == 0) {
            c = CMD_CHECK;
        } else if (strcmp(a, "write") == 0) {
            c = CMD_WRITE;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "help") == 0) {
            c = CMD_HELP;
        } else if (strcmp(a, "--version") == 0 || strcmp(a, "version") == 0) {
            c = CMD_VERSION;
        } else if (strcmp(a, "--state") == 0 && i + 1 < argc) {
            i++; /* accepted for compatibility; destinations take no state file */
            continue;
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
    return AB_OK;
}

static void driver_release(struct ab_driver *d)
{
    if (d->self && d->ops->close) {
        d->ops->close(d->self);
    }
    d->self = NULL;
    if (d->dl) {
        struct ab_error ignored;

        (void)ab_deadletter_close(d->dl, &ignored);
    }
    ab_jsonl_reader_free(d->reader);
    ab_json_arena_free(d->arena);
    ab_ckpt_free(d->ck);
    ab_catalog_release(&d->catalog);
    if (d->config) {
        yajl_tree_free(d->config);
    }
    if (d->spec) {
        yajl_tree_free(d->spec);
    }
    ab_emitter_free(d->em);
}

int ab_destination_main(int argc, char **argv, const struct ab_destination_ops *ops)
{
    struct ab_driver d;
    struct ab_error err;
    enum command cmd = CMD_NONE;
    enum ab_status rc;
    int code = 0;

    memset(&d, 0, sizeof(d));
    ab_error_init(&err);
    d.ops = ops;
    d.last_stream = -1;
    d.progress_every_us = 30 * 1000000LL;
    d.max_wait_us = 600 * 1000000LL;
    d.em = ab_emitter_new(stdout, wall_ms, &err);
    if (!d.em) {
        (void)fprintf(stderr, "%s: %s\n", ops->name, err.message);
        return EXIT_FATAL;
    }
    d.spec = ab_json_parse(ops->spec_json, strlen(ops->spec_json), &err);
    d.schema = ab_json_get(d.spec, "connectionSpecification");
    if (!d.schema) {
        ab_error_set(&err, AB_ERR_INTERNAL, "the connector's specification is invalid");
        goto fatal;
    }
    rc = parse_args(&d, argc, argv, &cmd, &err);
    if (rc != AB_OK) {
        (void)fprintf(stderr, "%s: %s\n", ops->name, err.message);
        code = EXIT_USAGE;
        goto out;
    }
    switch (cmd) {
    case CMD_HELP:
        print_usage(&d, argc > 0 ? argv[0] : ops->name);
        goto out;
    case CMD_VERSION: {
        char line[128];
        int n = snprintf(line, sizeof(line), "%s %s", ops->name, ops->version);

        (void)ab_emitter_raw(d.em, line, (size_t)n, true);
        goto out;
    }
    case CMD_SPEC:
        if (ab_emitter_spec(d.em, ops->spec_json) != AB_OK) {
            code = EXIT_FATAL;
        }
        goto out;
    case CMD_CHECK:
        rc = load_config(&d, &err);
        if (rc == AB_ERR_CONFIG) {
            (void)ab_emitter_connection_status(d.em, false, err.message);
            goto out;
        }
        if (rc == AB_OK) {
            rc = cmd_check(&d, &err);
        }
        break;
    case CMD_WRITE:
        rc = install_signals(&err);
        if (rc == AB_OK) {
            rc = load_config(&d, &err);
        }
        if (rc == AB_OK) {
            rc = cmd_write(&d, &err);
        }
        if (signal_seen) {
            AB_WARN(d.em,
                    "stopped by signal %d: records after the last emitted state are not "
                    "confirmed and will be sent again by the next run",
                    (int)signal_seen);
            code = 128 + (int)signal_seen;
            goto out;
        }
        break;
    case CMD_NONE:
        break;
    }
    if (rc == AB_OK) {
        goto out;
    }
fatal:
    (void)ab_emitter_trace_error(d.em, &err, NULL, NULL);
    code = EXIT_FATAL;
out:
    driver_release(&d);
    return code;
}
