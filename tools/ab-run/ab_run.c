/* ab_run.c - ab-run: a source piped into a destination, the state carried from run to run. */
/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ab/buf.h"
#include "ab/json.h"
#include "ab/jsonl_reader.h"
#include "ab/loop.h"

#include "run_state.h"

/*
 * One loop turns around six descriptors: the source's stdout (or the replay
 * file), both sides' stderr, the destination's stdin and stdout, and a
 * periodic timer that reaps the children and notices signals. The source's
 * lines go unchanged to the destination (and the capture file) through a
 * buffer of at most --buffer-bytes (plus one line); above it the source is
 * not read, so a slow destination holds the source back. Every STATE the
 * destination emits is merged into the state file before the next line is
 * looked at. The first failure decides the exit code and stops the other
 * side (SIGTERM, SIGKILL 10 s later).
 */

#define RUN_EXIT_OK          0
#define RUN_EXIT_RUNNER      1
#define RUN_EXIT_USAGE       2
#define RUN_EXIT_SOURCE      3
#define RUN_EXIT_DESTINATION 4

#define RUN_DEFAULT_BUFFER ((size_t)4 * 1024 * 1024)
#define RUN_ERRLINE_MAX    ((size_t)16 * 1024)
#define RUN_SPEC_MAX       ((size_t)16 * 1024 * 1024)
#define RUN_REAP_US        ((int64_t)20 * 1000)
#define RUN_KILL_AFTER_US  ((int64_t)10 * 1000 * 1000)
#define RUN_MASK           "**********"

enum outcome { OUT_NONE, OUT_SOURCE, OUT_DEST, OUT_RUNNER, OUT_SIGNAL };

struct runner;

struct side {
    struct runner *r;
    const char *name; /* "source", "destination" */
    pid_t pid;        /* 0: no process (replay) */
    bool reaped;
    int status;
    bool stopping;
    int out_fd; /* its stdout (the source's: or the replay file); -1 once closed */
    int err_fd;
    int in_fd; /* the destination's stdin */
    struct ab_jsonl_reader *out;
    struct ab_buf errline;
    uint64_t kill_timer;
    yajl_val spec;           /* its SPEC message (secrets of config updates) */
    const char *config_path; /* rewritten on a CONTROL config update */
    uint64_t config_updates;
};

struct runner {
    struct ab_loop *loop;
    struct side src;
    struct side dst;
    bool replay;
    struct ab_buf pipe; /* bytes on their way to the destination's stdin */
    size_t high_water;
    bool src_paused;
    bool src_eof;
    bool input_done; /* the destination's stdin was closed after the last line */
    bool discard;    /* a failure: the source's output goes nowhere */
    int capture_fd;
    const char *capture_path;
    struct ab_buf capbuf;
    struct run_state *state;
    const char *state_path;
    struct ab_json_arena *arena;
    char **masks;
    size_t nmasks;
    uint64_t lines;
    uint64_t records;
    uint64_t src_states;
    uint64_t acked;
    enum outcome outcome;
    int exit_code;
};

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

/* ---- output: every forwarded text passes the mask ---------------------------- */

static void put_masked(const struct runner *r, const char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t k;
        size_t hit = 0;

        for (k = 0; k < r->nmasks; k++) {
            size_t ml = strlen(r->masks[k]);

            if (ml <= n - i && memcmp(s + i, r->masks[k], ml) == 0) {
                hit = ml;
                break;
            }
        }
        if (hit) {
            (void)fputs(RUN_MASK, stderr);
            i += hit;
        } else {
            (void)fputc(s[i], stderr);
            i++;
        }
    }
}

/* "[side] <head><text>\n", text masked. */
static void say(const struct runner *r, const char *side, const char *head, const char *text,
                size_t n)
{
    (void)fprintf(stderr, "[%s] %s", side, head);
    put_masked(r, text, n);
    (void)fputc('\n', stderr);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    va_list ap;

    (void)fputs("ab-run: ", stderr);
    va_start(ap, fmt);
    (void)vfprintf(stderr, fmt, ap);
    va_end(ap);
    (void)fputc('\n', stderr);
}

/* ---- processes --------------------------------------------------------------- */

static int set_flags(int fd, bool nonblock)
{
    int fl = fcntl(fd, F_GETFD);

    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0) {
        return -1;
    }
    if (nonblock) {
        fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
            return -1;
        }
    }
    return 0;
}

/* A pipe whose both ends close on exec; the parent's end non-blocking. */
static int make_pipe(int p[2], bool parent_reads)
{
    if (pipe(p) != 0) {
        return -1;
    }
    if (set_flags(p[0], parent_reads) != 0 || set_flags(p[1], !parent_reads) != 0) {
        (void)close(p[0]);
        (void)close(p[1]);
        return -1;
    }
    return 0;
}

/*
 * Starts `sh -c 'exec <cmd> "$@"' <args>` in its own process group with the
 * given descriptors as stdin, stdout and stderr (-1: inherit). The command
 * is a shell command line; the runner's arguments are appended to it.
 */
static pid_t spawn(const char *side, const char *cmd, const char *const *args, int in, int out,
                   int errfd)
{
    const char *argv[16];
    size_t n = 0;
    size_t clen = strlen(cmd);
    char *script = malloc(clen + 16);
    pid_t pid;

    if (!script) {
        return -1;
    }
    memcpy(script, "exec ", 5);
    memcpy(script + 5, cmd, clen);
    memcpy(script + 5 + clen, " \"$@\"", 6);
    argv[n++] = "sh";
    argv[n++] = "-c";
    argv[n++] = script;
    argv[n++] = side; /* $0: named in the shell's own errors */
    while (*args && n < 15) {
        argv[n++] = *args++;
    }
    argv[n] = NULL;
    pid = fork();
    if (pid == 0) {
        (void)setpgid(0, 0);
        (void)signal(SIGPIPE, SIG_DFL);
        (void)signal(SIGINT, SIG_DFL);
        (void)signal(SIGTERM, SIG_DFL);
        if ((in >= 0 && dup2(in, 0) < 0) || (out >= 0 && dup2(out, 1) < 0) ||
            (errfd >= 0 && dup2(errfd, 2) < 0)) {
            _exit(127);
        }
        execv("/bin/sh", (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    if (pid > 0) {
        (void)setpgid(pid, pid); /* either this or the child's own call wins */
    }
    free(script);
    return pid;
}

static void describe_status(int status, char *out, size_t n)
{
    if (WIFEXITED(status)) {
        (void)snprintf(out, n, "exited with %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        (void)snprintf(out, n, "killed by signal %d", WTERMSIG(status));
    } else {
        (void)snprintf(out, n, "ended (status %d)", status);
    }
}

static bool status_ok(int status)
{
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* ---- secrets: the values of the fields each spec marks airbyte_secret -------- */

static enum ab_status add_mask(struct runner *r, const char *v)
{
    char **nm;

    if (!v || !*v) {
        return AB_OK;
    }
    nm = realloc(r->masks, (r->nmasks + 1) * sizeof(*nm));
    if (!nm) {
        return AB_ERR_NOMEM;
    }
    r->masks = nm;
    r->masks[r->nmasks] = strdup(v);
    if (!r->masks[r->nmasks]) {
        return AB_ERR_NOMEM;
    }
    r->nmasks++;
    return AB_OK;
}

static enum ab_status collect_secrets(struct runner *r, yajl_val schema, yajl_val config, int depth)
{
    yajl_val props = ab_json_get(schema, "properties");
    yajl_val one_of = ab_json_get(schema, "oneOf");
    size_t i;
    enum ab_status rc = AB_OK;

    if (depth > 32 || !YAJL_IS_OBJECT(config)) {
        return AB_OK;
    }
    for (i = 0; rc == AB_OK && YAJL_IS_OBJECT(props) && i < props->u.object.len; i++) {
        yajl_val p = props->u.object.values[i];
        yajl_val v = ab_json_get(config, props->u.object.keys[i]);

        if (ab_json_get_bool(p, "airbyte_secret", false)) {
            rc = add_mask(r, ab_json_str(v));
        } else if (YAJL_IS_OBJECT(v)) {
            rc = collect_secrets(r, p, v, depth + 1);
        }
    }
    for (i = 0; rc == AB_OK && YAJL_IS_ARRAY(one_of) && i < one_of->u.array.len; i++) {
        rc = collect_secrets(r, one_of->u.array.values[i], config, depth + 1);
    }
    return rc;
}

/* Runs `<cmd> spec` and masks the secrets of the config file. */
static int learn_secrets(struct runner *r, struct side *sd, const char *cmd,
                         const char *config_path)
{
    const char *side = sd->name;
    static const char *const spec_args[] = {"spec", NULL};
    struct ab_error err = {0};
    struct ab_buf out;
    struct ab_buf text;
    char why[256];
    char buf[65536];
    int p[2];
    int devnull;
    int status = 0;
    pid_t pid;
    yajl_val config;
    yajl_val spec = NULL;
    const char *line;
    int rc = 0;

    if (make_pipe(p, true) != 0) {
        note("cannot create a pipe: %s", strerror(errno));
        return RUN_EXIT_RUNNER;
    }
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid = spawn(side, cmd, spec_args, devnull, p[1], -1);
    (void)close(p[1]);
    if (devnull >= 0) {
        (void)close(devnull);
    }
    ab_buf_init(&out, RUN_SPEC_MAX);
    if (pid > 0) {
        int fl = fcntl(p[0], F_GETFL);

        (void)fcntl(p[0], F_SETFL, fl & ~O_NONBLOCK);
        for (;;) {
            ssize_t got = read(p[0], buf, sizeof(buf));

            if (got < 0 && errno == EINTR) {
                continue;
            }
            if (got <= 0 || ab_buf_add(&out, buf, (size_t)got, &err) != AB_OK) {
                break;
            }
        }
        (void)close(p[0]); /* before waiting: a spec too long for the buffer gets EPIPE */
        p[0] = -1;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
    if (p[0] >= 0) {
        (void)close(p[0]);
    }
    if (pid <= 0 || !status_ok(status)) {
        char st[64];

        describe_status(status, st, sizeof(st));
        note("%s: `spec` failed (%s)", side, pid <= 0 ? "cannot start it" : st);
        ab_buf_release(&out);
        return -1;
    }
    for (line = out.data; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        yajl_val m = ab_json_parse(line, len, &err);

        if (m && strcmp(ab_json_get_str(m, "type", ""), "SPEC") == 0) {
            spec = m;
            break;
        }
        ab_json_free(m);
        line = nl ? nl + 1 : NULL;
    }
    ab_buf_release(&out);
    if (!spec) {
        note("%s: `spec` printed no SPEC message", side);
        return -1;
    }
    if (ab_buf_read_file(config_path, RUN_SPEC_MAX, &text, why, sizeof(why)) != AB_OK) {
        note("%s config '%s': %s", side, config_path, why);
        ab_json_free(spec);
        return RUN_EXIT_USAGE;
    }
    config = ab_json_parse(text.data, text.len, &err);
    ab_buf_release(&text);
    if (!config) {
        note("%s config '%s': %s", side, config_path, err.message);
        rc = RUN_EXIT_USAGE;
    } else {
        static const char *const cs[] = {"spec", "connectionSpecification", NULL};

        if (collect_secrets(r, ab_json_get_path(spec, cs), config, 0) != AB_OK) {
            note("out of memory");
            rc = RUN_EXIT_RUNNER;
        }
    }
    ab_json_free(config);
    sd->spec = spec;
    sd->config_path = config_path;
    return rc;
}

/* ---- failures and the end ------------------------------------------------------ */

static enum ab_status on_kill_timer(void *arg, uint64_t id, struct ab_error *err)
{
    struct side *s = arg;

    (void)id;
    (void)err;
    s->kill_timer = 0;
    if (s->pid > 0 && !s->reaped) {
        note("%s: still running 10 s after SIGTERM, sending SIGKILL", s->name);
        (void)kill(-s->pid, SIGKILL);
    }
    return AB_OK;
}

static void stop_side(struct runner *r, struct side *s)
{
    struct ab_error err = {0};

    if (s->pid <= 0 || s->reaped || s->stopping) {
        return;
    }
    s->stopping = true;
    note("stopping the %s (SIGTERM)", s->name);
    (void)kill(-s->pid, SIGTERM);
    s->kill_timer = ab_loop_add_timer(r->loop, RUN_KILL_AFTER_US, 0, on_kill_timer, s, &err);
}

static void close_fd(struct runner *r, int *fd)
{
    if (*fd >= 0) {
        ab_loop_del_fd(r->loop, *fd);
        (void)close(*fd);
        *fd = -1;
    }
}

/* The first failure decides the outcome; both sides are stopped. */
static void fail(struct runner *r, enum outcome o, int code)
{
    if (r->outcome != OUT_NONE) {
        return;
    }
    r->outcome = o;
    r->exit_code = code;
    r->discard = true;
    ab_buf_reset(&r->pipe);
    close_fd(r, &r->dst.in_fd);
    if (r->replay) {
        close_fd(r, &r->src.out_fd);
    } else if (r->src_paused && r->src.out_fd >= 0) {
        ab_loop_fd_mask(r->loop, r->src.out_fd, AB_LOOP_READ); /* drained, not forwarded */
        r->src_paused = false;
    }
    stop_side(r, &r->src);
    stop_side(r, &r->dst);
}

static enum ab_status flush_capture(struct runner *r, bool sync)
{
    size_t off = 0;

    if (r->capture_fd < 0) {
        return AB_OK;
    }
    while (off < r->capbuf.len) {
        ssize_t w = write(r->capture_fd, r->capbuf.data + off, r->capbuf.len - off);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            note("cannot write the capture '%s': %s", r->capture_path, strerror(errno));
            return AB_ERR_IO;
        }
        off += (size_t)w;
    }
    ab_buf_reset(&r->capbuf);
    if (sync && fsync(r->capture_fd) != 0) {
        note("cannot sync the capture '%s': %s", r->capture_path, strerror(errno));
        return AB_ERR_IO;
    }
    return AB_OK;
}

/* Closes the destination's stdin once the source is done and all its bytes
 * are delivered; a source that failed stops the run instead. */
static void maybe_close_input(struct runner *r)
{
    char st[64];

    if (r->outcome != OUT_NONE || !r->src_eof || r->pipe.len > 0 || r->dst.in_fd < 0) {
        return;
    }
    if (!r->replay) {
        if (!r->src.reaped) {
            return; /* its exit status decides; the reap timer comes back */
        }
        if (!status_ok(r->src.status)) {
            describe_status(r->src.status, st, sizeof(st));
            note("the source failed (%s)", st);
            fail(r, OUT_SOURCE, RUN_EXIT_SOURCE);
            return;
        }
    }
    if (flush_capture(r, true) != AB_OK) {
        fail(r, OUT_RUNNER, RUN_EXIT_RUNNER);
        return;
    }
    close_fd(r, &r->dst.in_fd);
    r->input_done = true;
}

static bool finished(const struct runner *r)
{
    return (r->src.pid <= 0 || r->src.reaped) && r->dst.reaped && r->src.out_fd < 0 &&
           r->src.err_fd < 0 && r->dst.out_fd < 0 && r->dst.err_fd < 0;
}

static void reap(struct runner *r, struct side *s)
{
    int status;
    pid_t got;

    if (s->pid <= 0 || s->reaped) {
        return;
    }
    got = waitpid(s->pid, &status, WNOHANG);
    if (got != s->pid) {
        return;
    }
    s->reaped = true;
    s->status = status;
    if (s->kill_timer) {
        ab_loop_del_timer(r->loop, s->kill_timer);
        s->kill_timer = 0;
    }
    /* anything left in its process group goes too */
    (void)kill(-s->pid, SIGKILL);
}

static enum ab_status on_tick(void *arg, uint64_t id, struct ab_error *err)
{
    struct runner *r = arg;
    char st[64];

    (void)id;
    (void)err;
    if (got_signal && r->outcome == OUT_NONE) {
        note("interrupted by signal %d", (int)got_signal);
        fail(r, OUT_SIGNAL, 128 + (int)got_signal);
    }
    reap(r, &r->src);
    if (r->src.reaped && r->outcome == OUT_NONE && !status_ok(r->src.status)) {
        describe_status(r->src.status, st, sizeof(st));
        note("the source failed (%s)", st);
        fail(r, OUT_SOURCE, RUN_EXIT_SOURCE);
    }
    maybe_close_input(r);
    reap(r, &r->dst);
    if (r->dst.reaped && r->outcome == OUT_NONE) {
        if (!status_ok(r->dst.status)) {
            describe_status(r->dst.status, st, sizeof(st));
            note("the destination failed (%s)", st);
            fail(r, OUT_DEST, RUN_EXIT_DESTINATION);
        } else if (!r->input_done) {
            note("the destination exited before the end of its input");
            fail(r, OUT_DEST, RUN_EXIT_DESTINATION);
        }
    }
    if (finished(r)) {
        ab_loop_stop(r->loop);
    }
    return AB_OK;
}

/* ---- the source's output ------------------------------------------------------- */

/* LOG and TRACE ERROR lines of either side, shown on stderr. */
static void show_message(struct runner *r, const char *side, yajl_val m, const char *type)
{
    if (strcmp(type, "LOG") == 0) {
        yajl_val log = ab_json_get(m, "log");
        const char *level = ab_json_get_str(log, "level", "INFO");
        const char *msg = ab_json_get_str(log, "message", "");
        char head[32];

        (void)snprintf(head, sizeof(head), "%s ", level);
        say(r, side, head, msg, strlen(msg));
    } else if (strcmp(type, "TRACE") == 0) {
        yajl_val t = ab_json_get(m, "trace");
        yajl_val e = ab_json_get(t, "error");
        char head[64];
        const char *msg;

        if (strcmp(ab_json_get_str(t, "type", ""), "ERROR") != 0) {
            return;
        }
        msg = ab_json_get_str(e, "message", "");
        (void)snprintf(head, sizeof(head), "ERROR (%s) ",
                       ab_json_get_str(e, "failure_type", "error"));
        say(r, side, head, msg, strlen(msg));
    }
}

/*
 * A CONTROL connector-config message: the side's new config (a rotated
 * refresh token, say) replaces its config file atomically, as the platform
 * would persist it, and its secrets join the mask first. The message itself
 * goes nowhere else: not to the destination, the capture or the log.
 */
static void handle_control(struct runner *r, struct side *s, yajl_val m)
{
    static const char *const cfg_path[] = {"control", "connectorConfig", "config", NULL};
    static const char *const cs[] = {"spec", "connectionSpecification", NULL};
    struct ab_error err = {0};
    yajl_val config = ab_json_get_path(m, cfg_path);
    struct ab_buf b;
    enum ab_status rc;

    if (strcmp(ab_json_get_str(ab_json_get(m, "control"), "type", ""), "CONNECTOR_CONFIG") != 0 ||
        !YAJL_IS_OBJECT(config)) {
        note("%s: a CONTROL message that is not a connector config update (ignored)", s->name);
        return;
    }
    if (!s->config_path) {
        note("%s: a config update in the replayed stream (ignored)", s->name);
        return;
    }
    if (collect_secrets(r, ab_json_get_path(s->spec, cs), config, 0) != AB_OK) {
        note("out of memory");
        fail(r, OUT_RUNNER, RUN_EXIT_RUNNER);
        return;
    }
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    rc = ab_json_write(&b, config, &err);
    if (rc == AB_OK) {
        rc = ab_buf_addc(&b, '\n', &err);
    }
    if (rc == AB_OK) {
        rc = run_write_file(s->config_path, b.data, b.len, &err);
    }
    ab_buf_release(&b);
    if (rc != AB_OK) {
        note("%s config update: %s", s->name, err.message);
        fail(r, OUT_RUNNER, RUN_EXIT_RUNNER);
        return;
    }
    s->config_updates++;
    note("the %s updated its config: '%s' rewritten", s->name, s->config_path);
}

static enum ab_status source_line(struct runner *r, const char *line, size_t len)
{
    static const char record_prefix[] = "{\"type\":\"RECORD\"";
    struct ab_error err = {0};
    enum ab_status rc;

    yajl_val m = NULL;
    const char *type = "RECORD";

    r->lines++;
    if (r->discard) {
        return AB_OK;
    }
    if (len < sizeof(record_prefix) - 1 ||
        memcmp(line, record_prefix, sizeof(record_prefix) - 1) != 0) {
        /* not the common case: parsed (an unreadable line goes on as it is,
         * the destination names it) */
        ab_json_arena_reset(r->arena);
        m = ab_json_parse_arena(r->arena, line, len, &err);
        type = ab_json_get_str(m, "type", "");
        if (strcmp(type, "CONTROL") == 0) {
            handle_control(r, &r->src, m);
            return AB_OK;
        }
    }
    if (r->capture_fd >= 0) {
        rc = ab_buf_add(&r->capbuf, line, len, &err);
        if (rc == AB_OK) {
            rc = ab_buf_addc(&r->capbuf, '\n', &err);
        }
        if (rc == AB_OK && r->capbuf.len >= (size_t)1 << 20) {
            rc = flush_capture(r, false);
        }
        if (rc != AB_OK) {
            return rc;
        }
    }
    rc = ab_buf_add(&r->pipe, line, len, &err);
    if (rc == AB_OK) {
        rc = ab_buf_addc(&r->pipe, '\n', &err);
    }
    if (rc != AB_OK) {
        note("out of memory");
        return rc;
    }
    if (strcmp(type, "RECORD") == 0) {
        r->records++;
    } else if (strcmp(type, "STATE") == 0) {
        r->src_states++;
    } else {
        show_message(r, "source", m, type);
    }
    return AB_OK;
}

static enum ab_status on_src_out(void *arg, int fd, unsigned ready, struct ab_error *err)
{
    struct runner *r = arg;
    struct side *s = &r->src;
    bool eof = false;
    char *line;
    size_t len;
    uint64_t lineno;
    enum ab_status rc;

    (void)ready;
    rc = ab_jsonl_reader_fill(s->out, fd, &eof, err);
    if (rc != AB_OK) {
        note("%s output: %s", r->replay ? "replay" : "source", err->message);
        fail(r, OUT_SOURCE, RUN_EXIT_SOURCE);
        close_fd(r, &s->out_fd);
        return AB_OK;
    }
    if (eof) {
        ab_jsonl_reader_finish(s->out);
    }
    while (ab_jsonl_reader_next(s->out, &line, &len, &lineno)) {
        if (source_line(r, line, len) != AB_OK) {
            fail(r, OUT_RUNNER, RUN_EXIT_RUNNER);
        }
    }
    if (eof) {
        close_fd(r, &s->out_fd);
        r->src_eof = true;
    } else if (!r->discard && r->pipe.len >= r->high_water) {
        ab_loop_fd_mask(r->loop, fd, 0);
        r->src_paused = true;
    }
    if (r->pipe.len > 0 && r->dst.in_fd >= 0) {
        ab_loop_fd_mask(r->loop, r->dst.in_fd, AB_LOOP_WRITE);
    }
    maybe_close_input(r);
    return AB_OK;
}

static enum ab_status on_dst_in(void *arg, int fd, unsigned ready, struct ab_error *err)
{
    struct runner *r = arg;
    ssize_t w;

    (void)ready;
    (void)err;
    if (r->pipe.len > 0) {
        w = write(fd, r->pipe.data, r->pipe.len);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                return AB_OK;
            }
            /* EPIPE: the destination is gone; its exit status tells why */
            note("the destination stopped reading its input (%s)", strerror(errno));
            ab_buf_reset(&r->pipe);
            close_fd(r, &r->dst.in_fd);
            r->discard = true;
            return AB_OK;
        }
        ab_buf_consume(&r->pipe, (size_t)w);
    }
    if (r->pipe.len == 0) {
        ab_loop_fd_mask(r->loop, fd, 0);
    }
    if (r->src_paused && r->pipe.len < r->high_water / 2 && r->src.out_fd >= 0) {
        ab_loop_fd_mask(r->loop, r->src.out_fd, AB_LOOP_READ);
        r->src_paused = false;
    }
    maybe_close_input(r);
    return AB_OK;
}

/* ---- the destination's output ------------------------------------------------- */

static void destination_line(struct runner *r, char *line, size_t len, uint64_t lineno)
{
    struct ab_error err = {0};
    yajl_val m;
    const char *type;

    ab_json_arena_reset(r->arena);
    m = ab_json_parse_arena(r->arena, line, len, &err);
    if (!m) {
        char head[64];

        (void)snprintf(head, sizeof(head), "(output line %" PRIu64 " is not JSON) ", lineno);
        say(r, "destination", head, line, len > 200 ? 200 : len);
        return;
    }
    type = ab_json_get_str(m, "type", "");
    if (strcmp(type, "STATE") == 0) {
        const char *why = NULL;

        if (run_state_apply(r->state, ab_json_get(m, "state"), &why, &err) != AB_OK) {
            note("state file '%s': %s", r->state_path, err.message);
            fail(r, OUT_RUNNER, RUN_EXIT_RUNNER);
            return;
        }
        r->acked++;
        if (why) {
            note("state file: %s", why);
        }
        return;
    }
    if (strcmp(type, "CONTROL") == 0) {
        handle_control(r, &r->dst, m);
        return;
    }
    show_message(r, "destination", m, type);
}

static enum ab_status on_dst_out(void *arg, int fd, unsigned ready, struct ab_error *err)
{
    struct runner *r = arg;
    struct side *s = &r->dst;
    bool eof = false;
    char *line;
    size_t len;
    uint64_t lineno;

    (void)ready;
    if (ab_jsonl_reader_fill(s->out, fd, &eof, err) != AB_OK) {
        note("destination output: %s", err->message);
        fail(r, OUT_DEST, RUN_EXIT_DESTINATION);
        close_fd(r, &s->out_fd);
        return AB_OK;
    }
    while (ab_jsonl_reader_next(s->out, &line, &len, &lineno)) {
        destination_line(r, line, len, lineno);
    }
    if (eof) {
        ab_jsonl_reader_finish(s->out);
        if (ab_jsonl_reader_next(s->out, &line, &len, &lineno)) {
            /* a line cut short by the end of the process is no state */
            note("destination output ends with an unterminated line %" PRIu64 " (ignored)", lineno);
        }
        close_fd(r, &s->out_fd);
    }
    return AB_OK;
}

/* ---- stderr of either side ------------------------------------------------------ */

static void flush_errline(struct runner *r, struct side *s)
{
    if (s->errline.len > 0) {
        say(r, s->name, "", s->errline.data, s->errline.len);
        ab_buf_reset(&s->errline);
    }
}

static enum ab_status on_err(void *arg, int fd, unsigned ready, struct ab_error *err)
{
    struct side *s = arg;
    struct runner *r = s->r;
    char buf[8192];
    ssize_t got;
    ssize_t i;

    (void)ready;
    (void)err;
    got = read(fd, buf, sizeof(buf));
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return AB_OK;
    }
    if (got <= 0) {
        flush_errline(r, s);
        close_fd(r, &s->err_fd);
        return AB_OK;
    }
    for (i = 0; i < got; i++) {
        if (buf[i] == '\n') {
            flush_errline(r, s);
        } else if (s->errline.len + 1 >= RUN_ERRLINE_MAX) {
            flush_errline(r, s);
            (void)ab_buf_addc(&s->errline, buf[i], err);
        } else {
            (void)ab_buf_addc(&s->errline, buf[i], err);
        }
    }
    return AB_OK;
}

/* ---- start ---------------------------------------------------------------------- */

static int start_side(struct runner *r, struct side *s, const char *cmd, const char *const *args,
                      bool with_stdin)
{
    struct ab_error err = {0};
    int in[2] = {-1, -1};
    int out[2];
    int er[2];
    int devnull = -1;

    if (make_pipe(out, true) != 0 || make_pipe(er, true) != 0 ||
        (with_stdin && make_pipe(in, false) != 0)) {
        note("cannot create a pipe: %s", strerror(errno));
        return -1;
    }
    if (!with_stdin) {
        devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    s->pid = spawn(s->name, cmd, args, with_stdin ? in[0] : devnull, out[1], er[1]);
    (void)close(out[1]);
    (void)close(er[1]);
    if (with_stdin) {
        (void)close(in[0]);
    }
    if (devnull >= 0) {
        (void)close(devnull);
    }
    s->out_fd = out[0];
    s->err_fd = er[0];
    s->in_fd = with_stdin ? in[1] : -1;
    if (s->pid < 0) {
        note("cannot start the %s: %s", s->name, strerror(errno));
        s->pid = 0;
        return -1;
    }
    if (ab_loop_add_fd(r->loop, s->err_fd, AB_LOOP_READ, on_err, s, &err) != AB_OK ||
        ab_loop_add_fd(r->loop, s->out_fd, AB_LOOP_READ, s == &r->src ? on_src_out : on_dst_out, r,
                       &err) != AB_OK ||
        (with_stdin && ab_loop_add_fd(r->loop, s->in_fd, 0, on_dst_in, r, &err) != AB_OK)) {
        note("%s", err.message);
        return -1;
    }
    return 0;
}

static void usage(FILE *f)
{
    (void)fputs("usage: ab-run --source CMD --destination CMD --config-dir DIR [--state FILE]\n"
                "              [--catalog FILE] [--capture FILE] [--buffer-bytes N]\n"
                "       ab-run --replay FILE --destination CMD --config-dir DIR [--state FILE]\n"
                "              [--catalog FILE] [--buffer-bytes N]\n"
                "\n"
                "Runs `CMD read --config DIR/source.json --catalog CATALOG [--state FILE]`\n"
                "into `CMD write --config DIR/destination.json --catalog CATALOG`, writes every\n"
                "STATE the destination acknowledges into FILE (default DIR/state.json) and\n"
                "passes it to the source next time. CATALOG defaults to DIR/catalog.json.\n"
                "--capture F also writes the source's output to F; --replay F feeds F to the\n"
                "destination instead of a source. Logs of both sides go to stderr, prefixed\n"
                "[source] and [destination].\n"
                "\n"
                "Exit: 0 both sides succeeded, 1 the runner failed (state or capture file),\n"
                "2 usage, 3 the source failed, 4 the destination failed, 128+N stopped by\n"
                "signal N (130 SIGINT, 143 SIGTERM).\n",
                f);
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir);
    size_t b = strlen(name);
    char *p = malloc(a + b + 2);

    if (p) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

static bool readable(const char *what, const char *path)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        note("%s '%s': %s", what, path, strerror(errno));
        return false;
    }
    if (S_ISDIR(st.st_mode)) {
        note("%s '%s': a directory, not a file", what, path);
        return false;
    }
    return true;
}

struct opts {
    const char *source;
    const char *destination;
    const char *config_dir;
    const char *state;
    const char *catalog;
    const char *capture;
    const char *replay;
    size_t buffer;
};

static int parse_args(int argc, char **argv, struct opts *o)
{
    int i;

    o->buffer = RUN_DEFAULT_BUFFER;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stderr);
            exit(RUN_EXIT_OK);
        }
        if (strcmp(a, "--version") == 0) {
            (void)fprintf(stderr, "ab-run %s\n", AB_VERSION);
            exit(RUN_EXIT_OK);
        }
        if (strcmp(a, "--source") == 0) {
            slot = &o->source;
        } else if (strcmp(a, "--destination") == 0) {
            slot = &o->destination;
        } else if (strcmp(a, "--config-dir") == 0) {
            slot = &o->config_dir;
        } else if (strcmp(a, "--state") == 0) {
            slot = &o->state;
        } else if (strcmp(a, "--catalog") == 0) {
            slot = &o->catalog;
        } else if (strcmp(a, "--capture") == 0) {
            slot = &o->capture;
        } else if (strcmp(a, "--replay") == 0) {
            slot = &o->replay;
        } else if (strcmp(a, "--buffer-bytes") == 0 && i + 1 < argc) {
            char *end;
            unsigned long long v = strtoull(argv[++i], &end, 10);

            if (*end || v < 65536 || v > ((unsigned long long)1 << 32)) {
                note("--buffer-bytes: a number from 65536 to 4294967296");
                return RUN_EXIT_USAGE;
            }
            o->buffer = (size_t)v;
            continue;
        } else {
            note("unknown argument '%s' (see --help)", a);
            return RUN_EXIT_USAGE;
        }
        if (i + 1 >= argc) {
            note("%s needs a value", a);
            return RUN_EXIT_USAGE;
        }
        *slot = argv[++i];
    }
    if (!o->destination || !o->config_dir || (!o->source == !o->replay)) {
        note("needs --destination, --config-dir and either --source or --replay (see --help)");
        return RUN_EXIT_USAGE;
    }
    if (o->capture && o->replay) {
        note("--capture goes with --source, not with --replay");
        return RUN_EXIT_USAGE;
    }
    return RUN_EXIT_OK;
}

static int run(struct runner *r, const struct opts *o)
{
    struct ab_error err = {0};
    char *src_cfg = join(o->config_dir, "source.json");
    char *dst_cfg = join(o->config_dir, "destination.json");
    char *def_cat = join(o->config_dir, "catalog.json");
    char *def_state = join(o->config_dir, "state.json");
    const char *catalog = o->catalog ? o->catalog : def_cat;
    const char *src_args[8];
    const char *dst_args[] = {"write", "--config", dst_cfg, "--catalog", catalog, NULL};
    int rc = RUN_EXIT_OK;
    size_t n = 0;

    r->state_path = o->state ? o->state : def_state;
    if (!src_cfg || !dst_cfg || !def_cat || !def_state) {
        note("out of memory");
        rc = RUN_EXIT_RUNNER;
        goto out;
    }
    if (!readable("catalog", catalog) || !readable("destination config", dst_cfg) ||
        (!o->replay && !readable("source config", src_cfg)) ||
        (o->replay && !readable("replay file", o->replay))) {
        rc = RUN_EXIT_USAGE;
        goto out;
    }
    r->state = run_state_open(r->state_path, &err);
    if (!r->state) {
        note("%s", err.message);
        rc = RUN_EXIT_USAGE;
        goto out;
    }
    rc = learn_secrets(r, &r->dst, o->destination, dst_cfg);
    if (rc < 0) {
        rc = RUN_EXIT_DESTINATION;
    }
    if (rc == RUN_EXIT_OK && !o->replay) {
        rc = learn_secrets(r, &r->src, o->source, src_cfg);
        if (rc < 0) {
            rc = RUN_EXIT_SOURCE;
        }
    }
    if (rc != RUN_EXIT_OK) {
        goto out;
    }
    if (o->capture) {
        r->capture_path = o->capture;
        r->capture_fd = open(o->capture, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (r->capture_fd < 0) {
            note("cannot create the capture '%s': %s", o->capture, strerror(errno));
            rc = RUN_EXIT_USAGE;
            goto out;
        }
    }
    if (start_side(r, &r->dst, o->destination, dst_args, true) != 0) {
        rc = RUN_EXIT_DESTINATION;
        goto out;
    }
    if (o->replay) {
        r->src.out_fd = open(o->replay, O_RDONLY | O_CLOEXEC);
        if (r->src.out_fd < 0 ||
            ab_loop_add_fd(r->loop, r->src.out_fd, AB_LOOP_READ, on_src_out, r, &err) != AB_OK) {
            note("replay file '%s': %s", o->replay, r->src.out_fd < 0 ? strerror(errno) : "");
            fail(r, OUT_RUNNER, RUN_EXIT_USAGE);
        }
        note("replaying '%s' into the destination", o->replay);
    } else {
        src_args[n++] = "read";
        src_args[n++] = "--config";
        src_args[n++] = src_cfg;
        src_args[n++] = "--catalog";
        src_args[n++] = catalog;
        if (run_state_exists(r->state)) {
            src_args[n++] = "--state";
            src_args[n++] = r->state_path;
            note("resuming from the state in '%s' (%zu entries)", r->state_path,
                 run_state_entries(r->state));
        } else {
            note("no state file '%s' yet: the source starts from the beginning", r->state_path);
        }
        src_args[n] = NULL;
        if (start_side(r, &r->src, o->source, src_args, false) != 0) {
            fail(r, OUT_SOURCE, RUN_EXIT_SOURCE);
        }
    }
    if (!ab_loop_add_timer(r->loop, RUN_REAP_US, RUN_REAP_US, on_tick, r, &err) ||
        ab_loop_run(r->loop, &err) != AB_OK) {
        note("%s", err.message);
        fail(r, OUT_RUNNER, RUN_EXIT_RUNNER);
        /* without the loop, wait for the children here */
        while (r->src.pid > 0 && !r->src.reaped && waitpid(r->src.pid, &r->src.status, 0) < 0 &&
               errno == EINTR) {
        }
        while (r->dst.pid > 0 && !r->dst.reaped && waitpid(r->dst.pid, &r->dst.status, 0) < 0 &&
               errno == EINTR) {
        }
    }
    /* after a failure too: the capture holds what the source wrote */
    if (flush_capture(r, true) != AB_OK && r->outcome == OUT_NONE) {
        r->exit_code = RUN_EXIT_RUNNER;
    }
    rc = r->exit_code;
    {
        char ss[64] = "replayed";
        char ds[64];

        if (r->src.pid > 0) {
            describe_status(r->src.status, ss, sizeof(ss));
        }
        describe_status(r->dst.status, ds, sizeof(ds));
        char held[64];
        size_t n_held = run_state_entries(r->state);

        if (run_state_saved(r->state)) {
            (void)snprintf(held, sizeof(held), "holds %zu entr%s", n_held,
                           n_held == 1 ? "y" : "ies");
        } else {
            (void)snprintf(held, sizeof(held), "not updated");
        }
        note("%s: %" PRIu64 " lines (%" PRIu64 " records, %" PRIu64
             " states); destination %s: %" PRIu64 " states acknowledged, state file '%s' %s; "
             "exit %d",
             r->replay ? "replay" : "source", r->lines, r->records, r->src_states,
             r->dst.pid > 0 ? ds : "not started", r->acked, r->state_path, held, rc);
    }
out:
    free(src_cfg);
    free(dst_cfg);
    free(def_cat);
    free(def_state);
    return rc;
}

int main(int argc, char **argv)
{
    struct ab_error err = {0};
    struct sigaction sa;
    struct opts o = {0};
    struct runner r;
    int rc;
    size_t i;

    rc = parse_args(argc, argv, &o);
    if (rc != RUN_EXIT_OK) {
        return rc;
    }
    memset(&r, 0, sizeof(r));
    r.src.name = "source";
    r.dst.name = "destination";
    r.src.r = &r;
    r.dst.r = &r;
    r.src.out_fd = r.src.err_fd = r.src.in_fd = -1;
    r.dst.out_fd = r.dst.err_fd = r.dst.in_fd = -1;
    r.capture_fd = -1;
    r.replay = o.replay != NULL;
    r.high_water = o.buffer;
    ab_buf_init(&r.pipe, AB_BUF_UNBOUNDED);
    ab_buf_init(&r.capbuf, AB_BUF_UNBOUNDED);
    ab_buf_init(&r.src.errline, AB_BUF_UNBOUNDED);
    ab_buf_init(&r.dst.errline, AB_BUF_UNBOUNDED);
    r.loop = ab_loop_new(&err);
    r.arena = ab_json_arena_new(&err);
    r.src.out = ab_jsonl_reader_new(0, &err);
    r.dst.out = ab_jsonl_reader_new(0, &err);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    (void)sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGINT, &sa, NULL);
    (void)sigaction(SIGTERM, &sa, NULL);
    (void)signal(SIGPIPE, SIG_IGN);
    if (!r.loop || !r.arena || !r.src.out || !r.dst.out) {
        note("out of memory");
        rc = RUN_EXIT_RUNNER;
    } else {
        rc = run(&r, &o);
    }
    if (r.capture_fd >= 0) {
        (void)close(r.capture_fd);
    }
    run_state_free(r.state);
    for (i = 0; i < r.nmasks; i++) {
        free(r.masks[i]);
    }
    free(r.masks);
    ab_json_free(r.src.spec);
    ab_json_free(r.dst.spec);
    ab_jsonl_reader_free(r.src.out);
    ab_jsonl_reader_free(r.dst.out);
    ab_json_arena_free(r.arena);
    ab_loop_free(r.loop);
    ab_buf_release(&r.pipe);
    ab_buf_release(&r.capbuf);
    ab_buf_release(&r.src.errline);
    ab_buf_release(&r.dst.errline);
    return rc;
}
