/* emitter.c - the only writer of the protocol channel (stdout). */
/* SPDX-License-Identifier: MIT */
#include "ab/emitter.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ab/buf.h"
#include "ab/json.h"

/*
 * Each message is composed in one reusable buffer and written with a single
 * fwrite, newline included, so a failed write never leaves half a line that
 * the next message would continue. Text fields are masked first (on the raw
 * text), then made valid UTF-8 (invalid bytes become U+FFFD, since the JSON
 * writer needs valid UTF-8 and the platform drops unparseable lines), then
 * escaped.
 *
 * Masking looks for each secret in its raw form and, when it differs, in its
 * JSON-escaped form too (a message may quote a JSON body that holds the
 * secret). Patterns are kept longest first, so when one secret is a prefix of
 * another the longer one wins and no tail of it leaks.
 */

#define AB_EMITTER_MASK        "**********"
#define AB_EMITTER_MIN_SECRET  ((size_t)AB_SECRET_MIN_LENGTH)
#define AB_EMITTER_MAX_SECRETS ((size_t)1024)
#define AB_EMITTER_LOG_MAX     ((size_t)64 * 1024)
/* formatting stops here; masking runs before the cut to AB_EMITTER_LOG_MAX */
#define AB_EMITTER_FORMAT_MAX ((size_t)16 * 1024 * 1024)
#define AB_EMITTER_LINE_MAX   ((size_t)1024 * 1024 * 1024)
/* a line buffer larger than this is given back after use */
#define AB_EMITTER_KEEP ((size_t)1024 * 1024)

struct ab_secret {
    char *s;
    size_t n;
};

struct ab_emitter {
    FILE *out;
    int64_t (*now_ms)(void);
    enum ab_log_level min;
    enum ab_status failed; /* sticky: the first write failure */
    struct ab_secret *pats;
    size_t npats;
    struct ab_buf line;    /* the message being composed */
    struct ab_buf scratch; /* masked text */
    struct ab_buf clean;   /* masked, valid UTF-8 text */
    FILE *text;            /* text mode: LOG lines go here as text */
    void (*before_text)(void *arg);
    void *before_arg;
};

static const char *const level_names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"};

struct ab_emitter *ab_emitter_new(FILE *out, int64_t (*now_ms)(void), struct ab_error *err)
{
    struct ab_emitter *em;

    if (!out) {
        (void)ab_error_set(err, AB_ERR_INTERNAL, "emitter needs an output stream");
        return NULL;
    }
    em = calloc(1, sizeof(*em));
    if (!em) {
        (void)ab_error_set(err, AB_ERR_NOMEM, "out of memory (emitter)");
        return NULL;
    }
    em->out = out;
    em->now_ms = now_ms;
    em->min = AB_LOG_INFO;
    em->failed = AB_OK;
    ab_buf_init(&em->line, AB_EMITTER_LINE_MAX);
    ab_buf_init(&em->scratch, AB_EMITTER_LINE_MAX);
    ab_buf_init(&em->clean, AB_EMITTER_LINE_MAX);
    return em;
}

void ab_emitter_free(struct ab_emitter *em)
{
    size_t i;

    if (!em) {
        return;
    }
    for (i = 0; i < em->npats; i++) {
        /* wipe: secrets should not linger in freed heap */
        memset(em->pats[i].s, 0, em->pats[i].n);
        free(em->pats[i].s);
    }
    free(em->pats);
    ab_buf_release(&em->line);
    ab_buf_release(&em->scratch);
    ab_buf_release(&em->clean);
    free(em);
}

/* Inserts a pattern, keeping the list longest first; duplicates are dropped. */
static enum ab_status add_pattern(struct ab_emitter *em, const char *s, size_t n)
{
    struct ab_secret *pats;
    size_t i;
    size_t at;
    char *copy;

    if (n < AB_EMITTER_MIN_SECRET) {
        return AB_OK;
    }
    for (i = 0; i < em->npats; i++) {
        if (em->pats[i].n == n && memcmp(em->pats[i].s, s, n) == 0) {
            return AB_OK;
        }
    }
    if (em->npats >= AB_EMITTER_MAX_SECRETS) {
        return AB_ERR_INTERNAL;
    }
    copy = malloc(n + 1);
    if (!copy) {
        return AB_ERR_NOMEM;
    }
    memcpy(copy, s, n);
    copy[n] = '\0';
    pats = realloc(em->pats, (em->npats + 1) * sizeof(*pats));
    if (!pats) {
        free(copy);
        return AB_ERR_NOMEM;
    }
    em->pats = pats;
    at = 0;
    while (at < em->npats && em->pats[at].n >= n) {
        at++;
    }
    memmove(em->pats + at + 1, em->pats + at, (em->npats - at) * sizeof(*pats));
    em->pats[at].s = copy;
    em->pats[at].n = n;
    em->npats++;
    return AB_OK;
}

/* Drops the pattern s[0, n) if present. */
static void remove_pattern(struct ab_emitter *em, const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < em->npats; i++) {
        if (em->pats[i].n == n && memcmp(em->pats[i].s, s, n) == 0) {
            memset(em->pats[i].s, 0, n);
            free(em->pats[i].s);
            memmove(em->pats + i, em->pats + i + 1, (em->npats - i - 1) * sizeof(*em->pats));
            em->npats--;
            return;
        }
    }
}

void ab_emitter_remove_secret(struct ab_emitter *em, const char *s)
{
    struct ab_buf esc;
    size_t n;

    if (!em || !s || (n = strlen(s)) < AB_EMITTER_MIN_SECRET) {
        return;
    }
    remove_pattern(em, s, n);
    ab_buf_init(&esc, AB_BUF_UNBOUNDED);
    if (ab_json_write_str(&esc, s, n, NULL) == AB_OK && esc.len >= 2) {
        remove_pattern(em, esc.data + 1, esc.len - 2);
    }
    if (esc.data) {
        memset(esc.data, 0, esc.len);
    }
    ab_buf_release(&esc);
}

enum ab_status ab_emitter_add_secret(struct ab_emitter *em, const char *s)
{
    struct ab_buf esc;
    enum ab_status rc;
    size_t n;

    if (!em || !s) {
        return AB_OK;
    }
    n = strlen(s);
    if (n < AB_EMITTER_MIN_SECRET) {
        return AB_OK;
    }
    rc = add_pattern(em, s, n);
    if (rc != AB_OK) {
        return rc;
    }
    /* the escaped form, without its quotes, when it differs */
    ab_buf_init(&esc, AB_BUF_UNBOUNDED);
    rc = ab_json_write_str(&esc, s, n, NULL);
    if (rc == AB_OK && (esc.len - 2 != n || memcmp(esc.data + 1, s, n) != 0)) {
        rc = add_pattern(em, esc.data + 1, esc.len - 2);
    }
    if (esc.data) {
        memset(esc.data, 0, esc.len);
    }
    ab_buf_release(&esc);
    return rc;
}

/* Length of the longest pattern found at text[i], 0 when none. */
static size_t match_at(const struct ab_emitter *em, const char *text, size_t n, size_t i)
{
    size_t k;

    for (k = 0; k < em->npats; k++) {
        const struct ab_secret *p = &em->pats[k];

        if (p->n <= n - i && text[i] == p->s[0] && memcmp(text + i, p->s, p->n) == 0) {
            return p->n;
        }
    }
    return 0;
}

/* Appends the masked form of text[0, n) to out. */
static enum ab_status mask_into(const struct ab_emitter *em, const char *text, size_t n,
                                struct ab_buf *out, struct ab_error *err)
{
    enum ab_status rc;
    size_t i = 0;
    size_t run = 0;

    if (!em || em->npats == 0) {
        return ab_buf_add(out, text, n, err);
    }
    while (i < n) {
        size_t m = match_at(em, text, n, i);

        if (m == 0) {
            i++;
            continue;
        }
        rc = ab_buf_add(out, text + run, i - run, err);
        if (rc == AB_OK) {
            rc = ab_buf_add(out, AB_EMITTER_MASK, sizeof(AB_EMITTER_MASK) - 1, err);
        }
        if (rc != AB_OK) {
            return rc;
        }
        i += m;
        run = i;
    }
    return ab_buf_add(out, text + run, n - run, err);
}

/* Length of the valid UTF-8 sequence at s[0, n), 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    size_t i;
    unsigned int cp;

    if (s[0] < 0x80) {
        return 1;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        cp = s[0] & 0x1FU;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        cp = s[0] & 0x0FU;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        cp = s[0] & 0x07U;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3FU);
    }
    /* overlong forms, surrogates, beyond U+10FFFF */
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

/* Appends text with every invalid UTF-8 byte replaced by U+FFFD. */
static enum ab_status utf8_clean(const char *text, size_t n, struct ab_buf *out,
                                 struct ab_error *err)
{
    const unsigned char *s = (const unsigned char *)text;
    enum ab_status rc;
    size_t i = 0;
    size_t run = 0;

    while (i < n) {
        size_t m = utf8_seq(s + i, n - i);

        if (m > 0) {
            i += m;
            continue;
        }
        rc = ab_buf_add(out, text + run, i - run, err);
        if (rc == AB_OK) {
            rc = ab_buf_add(out, "\xEF\xBF\xBD", 3, err);
        }
        if (rc != AB_OK) {
            return rc;
        }
        i++;
        run = i;
    }
    return ab_buf_add(out, text + run, n - run, err);
}

/* Largest length <= n that does not cut a UTF-8 sequence of s. */
static size_t utf8_cut(const char *s, size_t n)
{
    size_t back = 0;

    while (back < 3 && back < n && ((unsigned char)s[n - back] & 0xC0) == 0x80) {
        back++;
    }
    if (back < n && ((unsigned char)s[n - back] & 0xC0) == 0x80) {
        return n; /* not UTF-8 anyway */
    }
    return n - back;
}

/*
 * Appends text as a masked, valid-UTF-8 JSON string. Longer than max (0: no
 * limit) after masking: cut at a character boundary and marked.
 */
static enum ab_status write_text(struct ab_emitter *em, const char *text, size_t n, size_t max,
                                 struct ab_error *err)
{
    enum ab_status rc;
    size_t total;

    ab_buf_reset(&em->scratch);
    ab_buf_reset(&em->clean);
    rc = mask_into(em, text, n, &em->scratch, err);
    if (rc != AB_OK) {
        return rc;
    }
    total = em->scratch.len;
    if (max > 0 && total > max) {
        ab_buf_truncate(&em->scratch, utf8_cut(em->scratch.data, max));
    }
    rc = utf8_clean(em->scratch.data ? em->scratch.data : "", em->scratch.len, &em->clean, err);
    if (rc == AB_OK && total > em->scratch.len) {
        rc = ab_buf_printf(&em->clean, err, " ... [truncated, %zu bytes in all]", total);
    }
    if (rc != AB_OK) {
        return rc;
    }
    return ab_json_write_str(&em->line, em->clean.data ? em->clean.data : "", em->clean.len, err);
}

enum ab_status ab_emitter_mask_buf(const struct ab_emitter *em, const char *text, size_t n,
                                   struct ab_buf *out, struct ab_error *err)
{
    return mask_into(em, text, n, out, err);
}

void ab_emitter_mask(const struct ab_emitter *em, const char *text, char *out, size_t size)
{
    struct ab_buf b;
    size_t n;

    if (!out || size == 0) {
        return;
    }
    out[0] = '\0';
    if (!text) {
        return;
    }
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    if (mask_into(em, text, strlen(text), &b, NULL) != AB_OK) {
        /* out of memory: say nothing rather than risk the unmasked text */
        ab_buf_release(&b);
        return;
    }
    n = b.len;
    if (n > size - 1) {
        n = utf8_cut(b.data, size - 1);
    }
    if (n > 0) {
        memcpy(out, b.data, n);
    }
    out[n] = '\0';
    ab_buf_release(&b);
}

void ab_emitter_set_level(struct ab_emitter *em, enum ab_log_level min)
{
    if (em) {
        em->min = min;
    }
}

bool ab_emitter_enabled(const struct ab_emitter *em, enum ab_log_level level)
{
    return em && level >= em->min;
}

static enum ab_status set_failed(struct ab_emitter *em)
{
    em->failed = AB_ERR_IO;
    return em->failed;
}

/* Starts a message in em->line with its opening text; the sticky error, if
 * any, instead. */
static enum ab_status begin_line(struct ab_emitter *em, const char *head)
{
    if (!em) {
        return AB_ERR_INTERNAL;
    }
    if (em->failed != AB_OK) {
        return em->failed;
    }
    ab_buf_reset(&em->line);
    return ab_buf_adds(&em->line, head, NULL);
}

/* Writes em->line plus "\n" as one piece; flushes when asked. */
static enum ab_status send_line(struct ab_emitter *em, bool flush)
{
    enum ab_status rc = ab_buf_addc(&em->line, '\n', NULL);

    if (rc != AB_OK) {
        goto out;
    }
    if (fwrite(em->line.data, 1, em->line.len, em->out) != em->line.len || ferror(em->out)) {
        rc = set_failed(em);
        goto out;
    }
    if (flush && fflush(em->out) != 0) {
        rc = set_failed(em);
        goto out;
    }
out:
    if (em->line.cap > AB_EMITTER_KEEP) {
        ab_buf_release(&em->line);
    } else {
        ab_buf_reset(&em->line);
    }
    if (em->scratch.cap > AB_EMITTER_KEEP) {
        ab_buf_release(&em->scratch);
    }
    if (em->clean.cap > AB_EMITTER_KEEP) {
        ab_buf_release(&em->clean);
    }
    return rc;
}

/* The line is dropped after a failure to compose it (nothing was written). */
static enum ab_status drop_line(struct ab_emitter *em, enum ab_status rc)
{
    ab_buf_reset(&em->line);
    return rc;
}

static int64_t clock_ms(const struct ab_emitter *em)
{
    struct timespec ts;

    if (em->now_ms) {
        return em->now_ms();
    }
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        return 0;
    }
    return (int64_t)ts.tv_sec * 1000 + (int64_t)(ts.tv_nsec / 1000000);
}

static enum ab_status format_message(struct ab_buf *out, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static enum ab_status format_message(struct ab_buf *out, const char *fmt, va_list ap)
{
    char small[512];
    va_list aq;
    int n;
    size_t len;
    enum ab_status rc;

    va_copy(aq, ap);
    n = vsnprintf(small, sizeof(small), fmt, aq);
    va_end(aq);
    if (n < 0) {
        return ab_buf_adds(out, "(cannot format the log message)", NULL);
    }
    len = (size_t)n;
    if (len < sizeof(small)) {
        return ab_buf_add(out, small, len, NULL);
    }
    if (len > AB_EMITTER_FORMAT_MAX) {
        len = AB_EMITTER_FORMAT_MAX;
    }
    rc = ab_buf_reserve(out, len, NULL);
    if (rc != AB_OK) {
        return rc;
    }
    va_copy(aq, ap);
    (void)vsnprintf(out->data + out->len, len + 1, fmt, aq);
    va_end(aq);
    out->len += len;
    return AB_OK;
}

/* Text mode: "HH:MM:SS LEVEL message" on the text stream, masked. */
static enum ab_status text_line(struct ab_emitter *em, const char *level, const char *msg,
                                size_t len)
{
    struct ab_buf b;
    int64_t ms = clock_ms(em);
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char when[16] = "";

    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    if (mask_into(em, msg, len, &b, NULL) != AB_OK) {
        ab_buf_release(&b);
        return AB_OK; /* say nothing rather than risk the unmasked text */
    }
    if (gmtime_r(&t, &tm)) {
        (void)strftime(when, sizeof(when), "%H:%M:%S", &tm);
    }
    if (em->before_text) {
        em->before_text(em->before_arg);
    }
    (void)fprintf(em->text, "%s %-5s %s\n", when, level, b.data ? b.data : "");
    (void)fflush(em->text);
    ab_buf_release(&b);
    return AB_OK;
}

void ab_emitter_set_text(struct ab_emitter *em, FILE *text, void (*before)(void *arg), void *arg)
{
    em->text = text;
    em->before_text = before;
    em->before_arg = arg;
}

enum ab_status ab_emitter_vlog(struct ab_emitter *em, enum ab_log_level level, const char *fmt,
                               va_list ap)
{
    struct ab_buf msg;
    enum ab_status rc;

    if (!em) {
        return AB_ERR_INTERNAL;
    }
    if (em->failed != AB_OK) {
        return em->failed;
    }
    if (level < em->min) {
        return AB_OK;
    }
    if ((unsigned)level > (unsigned)AB_LOG_FATAL) {
        level = AB_LOG_FATAL;
    }
    ab_buf_init(&msg, AB_EMITTER_FORMAT_MAX);
    rc = format_message(&msg, fmt, ap);
    if (rc != AB_OK) {
        goto out;
    }
    if (em->text) {
        rc = text_line(em, level_names[level], msg.data ? msg.data : "", msg.len);
        goto out;
    }
    ab_buf_reset(&em->line);
    rc = ab_buf_adds(&em->line, "{\"type\":\"LOG\",\"log\":{\"level\":\"", NULL);
    if (rc == AB_OK) {
        rc = ab_buf_adds(&em->line, level_names[level], NULL);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&em->line, "\",\"message\":", NULL);
    }
    if (rc == AB_OK) {
        rc = write_text(em, msg.data ? msg.data : "", msg.len, AB_EMITTER_LOG_MAX, NULL);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(&em->line, "}}", NULL);
    }
    if (rc != AB_OK) {
        rc = drop_line(em, rc);
        goto out;
    }
    /* INFO and above reach the platform at once; DEBUG lines ride along with
     * the next flush. */
    rc = send_line(em, level >= AB_LOG_INFO);
out:
    ab_buf_release(&msg);
    return rc;
}

enum ab_status ab_emitter_log(struct ab_emitter *em, enum ab_log_level level, const char *fmt, ...)
{
    va_list ap;
    enum ab_status rc;

    va_start(ap, fmt);
    rc = ab_emitter_vlog(em, level, fmt, ap);
    va_end(ap);
    return rc;
}

static enum ab_status write_key(struct ab_buf *b, const char *key, struct ab_error *err)
{
    enum ab_status rc = ab_buf_addc(b, ',', err);

    if (rc == AB_OK) {
        rc = ab_json_write_cstr(b, key, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(b, ':', err);
    }
    return rc;
}

/* Appends ,"stream_descriptor":{"name":..[,"namespace":..]}. */
static enum ab_status write_descriptor(struct ab_emitter *em, const char *stream, const char *ns)
{
    enum ab_status rc = write_key(&em->line, "stream_descriptor", NULL);

    if (rc == AB_OK) {
        rc = ab_buf_adds(&em->line, "{\"name\":", NULL);
    }
    if (rc == AB_OK) {
        rc = write_text(em, stream, strlen(stream), 0, NULL);
    }
    if (rc == AB_OK && ns) {
        rc = write_key(&em->line, "namespace", NULL);
        if (rc == AB_OK) {
            rc = write_text(em, ns, strlen(ns), 0, NULL);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(&em->line, '}', NULL);
    }
    return rc;
}

enum ab_status ab_emitter_trace_error(struct ab_emitter *em, const struct ab_error *err,
                                      const char *stream, const char *ns)
{
    const char *message;
    const char *internal;
    enum ab_status code;
    enum ab_status rc;
    struct ab_buf *b;

    if (!em) {
        return AB_ERR_INTERNAL;
    }
    if (em->failed != AB_OK) {
        return em->failed;
    }
    code = err ? err->code : AB_ERR_INTERNAL;
    message = err && err->message[0] ? err->message : NULL;
    internal = err && err->internal[0] ? err->internal : NULL;
    b = &em->line;
    ab_buf_reset(b);
    rc = ab_buf_printf(b, NULL,
                       "{\"type\":\"TRACE\",\"trace\":{\"type\":\"ERROR\",\"emitted_at\":%" PRId64
                       ".0,\"error\":{\"message\":",
                       clock_ms(em));
    if (rc == AB_OK && message) {
        rc = write_text(em, message, strlen(message), 0, NULL);
    } else if (rc == AB_OK) {
        rc = ab_buf_printf(b, NULL, "\"the connector failed (%s error)\"",
                           ab_status_name(code == AB_OK ? AB_ERR_INTERNAL : code));
    }
    if (rc == AB_OK && internal) {
        rc = write_key(b, "internal_message", NULL);
        if (rc == AB_OK) {
            rc = write_text(em, internal, strlen(internal), 0, NULL);
        }
    }
    if (rc == AB_OK) {
        rc = write_key(b, "failure_type", NULL);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(b, ab_status_failure_type(code), NULL);
    }
    if (rc == AB_OK && stream) {
        rc = write_descriptor(em, stream, ns);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(b, "}}}", NULL);
    }
    if (rc != AB_OK) {
        return drop_line(em, rc);
    }
    if (em->text && message) {
        (void)text_line(em, "ERROR", message, strlen(message));
    }
    return send_line(em, true);
}

enum ab_status ab_emitter_spec(struct ab_emitter *em, const char *spec_json)
{
    struct ab_error perr;
    yajl_val spec = NULL;
    enum ab_status rc;

    if (!em) {
        return AB_ERR_INTERNAL;
    }
    if (em->failed != AB_OK) {
        return em->failed;
    }
    ab_error_init(&perr);
    if (spec_json) {
        spec = ab_json_parse(spec_json, strlen(spec_json), &perr);
    }
    if (!spec || spec->type != yajl_t_object) {
        /* a connector bug: say so on the channel, the caller exits non-zero */
        (void)ab_emitter_log(em, AB_LOG_ERROR, "the connector's spec is not a JSON object: %s",
                             perr.message[0] ? perr.message : "wrong type");
        rc = em->failed != AB_OK ? em->failed : AB_ERR_INTERNAL;
        goto out;
    }
    ab_buf_reset(&em->line);
    rc = ab_buf_adds(&em->line, "{\"type\":\"SPEC\",\"spec\":", NULL);
    if (rc == AB_OK) {
        rc = ab_json_write(&em->line, spec, NULL);
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(&em->line, '}', NULL);
    }
    if (rc != AB_OK) {
        rc = drop_line(em, rc);
        goto out;
    }
    rc = send_line(em, true);
out:
    yajl_tree_free(spec);
    return rc;
}

enum ab_status ab_emitter_connection_status(struct ab_emitter *em, bool ok, const char *message)
{
    enum ab_status rc;
    struct ab_buf *b;

    rc = begin_line(em, "{\"type\":\"CONNECTION_STATUS\",\"connectionStatus\":{\"status\":");
    if (rc != AB_OK) {
        return rc;
    }
    b = &em->line;
    if (rc == AB_OK) {
        rc = ab_buf_adds(b, ok ? "\"SUCCEEDED\"" : "\"FAILED\"", NULL);
    }
    if (rc == AB_OK && message) {
        rc = write_key(b, "message", NULL);
        if (rc == AB_OK) {
            rc = write_text(em, message, strlen(message), 0, NULL);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(b, "}}", NULL);
    }
    if (rc != AB_OK) {
        return drop_line(em, rc);
    }
    return send_line(em, true);
}

enum ab_status ab_emitter_state(struct ab_emitter *em, const char *members, size_t len,
                                uint64_t record_count, uint64_t rejected_count)
{
    enum ab_status rc;
    struct ab_buf *b;

    rc = begin_line(em, "{\"type\":\"STATE\",\"state\":{");
    if (rc != AB_OK) {
        return rc;
    }
    b = &em->line;
    if (rc == AB_OK && members && len > 0) {
        rc = ab_buf_add(b, members, len, NULL);
        if (rc == AB_OK) {
            rc = ab_buf_addc(b, ',', NULL);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_printf(b, NULL,
                           "\"destinationStats\":{\"recordCount\":%" PRIu64
                           ".0,\"rejectedRecordCount\":%" PRIu64 ".0}}}",
                           record_count, rejected_count);
    }
    if (rc != AB_OK) {
        return drop_line(em, rc);
    }
    return send_line(em, true);
}

/* Appends "name":<stream>[,"namespace":<ns>] (no masking: names are data). */
static enum ab_status write_names(struct ab_buf *b, const char *name_key, const char *stream,
                                  const char *ns)
{
    enum ab_status rc = ab_json_write_cstr(b, name_key, NULL);

    if (rc == AB_OK) {
        rc = ab_buf_addc(b, ':', NULL);
    }
    if (rc == AB_OK) {
        rc = ab_json_write_cstr(b, stream, NULL);
    }
    if (rc == AB_OK && ns) {
        rc = write_key(b, "namespace", NULL);
        if (rc == AB_OK) {
            rc = ab_json_write_cstr(b, ns, NULL);
        }
    }
    return rc;
}

enum ab_status ab_emitter_record(struct ab_emitter *em, const char *stream, const char *ns,
                                 const char *data, size_t len)
{
    enum ab_status rc = begin_line(em, "{\"type\":\"RECORD\",\"record\":{");
    struct ab_buf *b = &em->line;

    if (rc == AB_OK) {
        rc = write_names(b, "stream", stream, ns);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(b, ",\"data\":", NULL);
    }
    if (rc == AB_OK) {
        rc = ab_buf_add(b, data, len, NULL);
    }
    if (rc == AB_OK) {
        rc = ab_buf_printf(b, NULL, ",\"emitted_at\":%" PRId64 "}}", clock_ms(em));
    }
    if (rc != AB_OK) {
        return em && em->failed != AB_OK ? em->failed : drop_line(em, rc);
    }
    return send_line(em, false);
}

enum ab_status ab_emitter_source_state(struct ab_emitter *em, const char *members, size_t len,
                                       uint64_t record_count)
{
    enum ab_status rc = begin_line(em, "{\"type\":\"STATE\",\"state\":{");
    struct ab_buf *b = &em->line;

    if (rc == AB_OK) {
        rc = ab_buf_add(b, members, len, NULL);
    }
    if (rc == AB_OK) {
        rc = ab_buf_printf(b, NULL, ",\"sourceStats\":{\"recordCount\":%" PRIu64 ".0}}}",
                           record_count);
    }
    if (rc != AB_OK) {
        return em && em->failed != AB_OK ? em->failed : drop_line(em, rc);
    }
    return send_line(em, true);
}

/* Starts {"type":"TRACE","trace":{"type":<type>,"emitted_at":N, */
static enum ab_status begin_trace(struct ab_emitter *em, const char *type)
{
    enum ab_status rc = begin_line(em, "{\"type\":\"TRACE\",\"trace\":{\"type\":\"");

    if (rc == AB_OK) {
        rc = ab_buf_printf(&em->line, NULL, "%s\",\"emitted_at\":%" PRId64 ".0,", type,
                           clock_ms(em));
    }
    return rc;
}

enum ab_status ab_emitter_stream_status(struct ab_emitter *em, const char *stream, const char *ns,
                                        const char *status)
{
    enum ab_status rc = begin_trace(em, "STREAM_STATUS");
    struct ab_buf *b = &em->line;

    if (rc == AB_OK) {
        rc = ab_buf_adds(b, "\"stream_status\":{\"stream_descriptor\":{", NULL);
    }
    if (rc == AB_OK) {
        rc = write_names(b, "name", stream, ns);
    }
    if (rc == AB_OK) {
        rc = ab_buf_printf(b, NULL, "},\"status\":\"%s\"}}}", status);
    }
    if (rc != AB_OK) {
        return em && em->failed != AB_OK ? em->failed : drop_line(em, rc);
    }
    return send_line(em, true);
}

enum ab_status ab_emitter_estimate(struct ab_emitter *em, const char *stream, const char *ns,
                                   int64_t rows, int64_t bytes)
{
    enum ab_status rc = begin_trace(em, "ESTIMATE");
    struct ab_buf *b = &em->line;

    if (rc == AB_OK) {
        rc = ab_buf_adds(b, "\"estimate\":{", NULL);
    }
    if (rc == AB_OK) {
        rc = write_names(b, "name", stream, ns);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(b, ",\"type\":\"STREAM\"", NULL);
    }
    if (rc == AB_OK && rows >= 0) {
        rc = ab_buf_printf(b, NULL, ",\"row_estimate\":%" PRId64, rows);
    }
    if (rc == AB_OK && bytes >= 0) {
        rc = ab_buf_printf(b, NULL, ",\"byte_estimate\":%" PRId64, bytes);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(b, "}}}", NULL);
    }
    if (rc != AB_OK) {
        return em && em->failed != AB_OK ? em->failed : drop_line(em, rc);
    }
    return send_line(em, false);
}

enum ab_status ab_emitter_control_config(struct ab_emitter *em, const char *config, size_t len)
{
    enum ab_status rc = begin_line(em, "{\"type\":\"CONTROL\",\"control\":{\"type\":"
                                       "\"CONNECTOR_CONFIG\",");
    struct ab_buf *b = &em->line;

    if (rc == AB_OK) {
        rc = ab_buf_printf(
            b, NULL, "\"emitted_at\":%" PRId64 ".0,\"connectorConfig\":{\"config\":", clock_ms(em));
    }
    if (rc == AB_OK) {
        rc = ab_buf_add(b, config, len, NULL);
    }
    if (rc == AB_OK) {
        rc = ab_buf_adds(b, "}}}", NULL);
    }
    if (rc != AB_OK) {
        return em && em->failed != AB_OK ? em->failed : drop_line(em, rc);
    }
    return send_line(em, true);
}

enum ab_status ab_emitter_catalog(struct ab_emitter *em, const char *catalog, size_t len)
{
    enum ab_status rc = begin_line(em, "{\"type\":\"CATALOG\",\"catalog\":");

    if (rc == AB_OK) {
        rc = ab_buf_add(&em->line, catalog, len, NULL);
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(&em->line, '}', NULL);
    }
    if (rc != AB_OK) {
        return em && em->failed != AB_OK ? em->failed : drop_line(em, rc);
    }
    return send_line(em, true);
}

enum ab_status ab_emitter_raw(struct ab_emitter *em, const char *json, size_t len, bool flush)
{
    enum ab_status rc;

    if (!em) {
        return AB_ERR_INTERNAL;
    }
    if (em->failed != AB_OK) {
        return em->failed;
    }
    ab_buf_reset(&em->line);
    rc = ab_buf_add(&em->line, json, len, NULL);
    if (rc != AB_OK) {
        return drop_line(em, rc);
    }
    return send_line(em, flush);
}

enum ab_status ab_emitter_flush(struct ab_emitter *em)
{
    if (!em) {
        return AB_ERR_INTERNAL;
    }
    if (em->failed != AB_OK) {
        return em->failed;
    }
    if (fflush(em->out) != 0) {
        return set_failed(em);
    }
    return AB_OK;
}
