/* emitter.h - the only writer of the protocol channel (stdout). */
/* SPDX-License-Identifier: MIT */
#ifndef AB_EMITTER_H
#define AB_EMITTER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ab/error.h"

/*
 * One AirbyteMessage per line. Every STATE and TRACE is followed by fflush.
 * Secrets registered with ab_emitter_add_secret() are replaced by "**********"
 * in every LOG and TRACE text it writes (and in a CONNECTION_STATUS message),
 * in their raw and in their JSON-escaped form; invalid UTF-8 in those texts
 * becomes U+FFFD. LOG messages over 64 KiB are cut (after masking) and marked.
 * The level filter starts at AB_LOG_INFO. Errors are sticky: after a failed
 * write (a broken pipe is an error) every call returns that error (AB_ERR_IO).
 */
struct ab_emitter;

enum ab_log_level {
    AB_LOG_TRACE = 0,
    AB_LOG_DEBUG,
    AB_LOG_INFO,
    AB_LOG_WARN,
    AB_LOG_ERROR,
    AB_LOG_FATAL
};

/* out is borrowed for the emitter's lifetime. now_ms may be NULL (real clock);
 * it exists so tests get stable emitted_at values. */
struct ab_emitter *ab_emitter_new(FILE *out, int64_t (*now_ms)(void), struct ab_error *err);
void ab_emitter_free(struct ab_emitter *em);

/* Copies s; strings shorter than AB_SECRET_MIN_LENGTH bytes are ignored
 * (they would mask words), so every spec secret needs that minLength. The mask holds at
 * most 1024 patterns (a secret takes two when its JSON-escaped form
 * differs): beyond that AB_ERR_INTERNAL and the secret is NOT masked, which
 * callers must treat as fatal. AB_ERR_NOMEM likewise. */
#define AB_SECRET_MIN_LENGTH 4
enum ab_status ab_emitter_add_secret(struct ab_emitter *em, const char *s);
/* Removes a secret that can no longer appear (a replaced access token), so
 * the mask does not fill up over a long run. */
void ab_emitter_remove_secret(struct ab_emitter *em, const char *s);
/* Writes the secrets-masked form of text into out (always NUL-terminated,
 * truncated to size). Exposed so that files (dead letters) can use it too. */
void ab_emitter_mask(const struct ab_emitter *em, const char *text, char *out, size_t size);
/* Appends the secrets-masked form of text[0, n) to out, whatever its size. */
struct ab_buf;
enum ab_status ab_emitter_mask_buf(const struct ab_emitter *em, const char *text, size_t n,
                                   struct ab_buf *out, struct ab_error *err);

void ab_emitter_set_level(struct ab_emitter *em, enum ab_log_level min);
/* Text mode (a person at a terminal): LOG messages go to text as
 * "HH:MM:SS LEVEL message" lines (masked) instead of stdout; a TRACE error
 * still goes to stdout and is echoed there too. before (may be NULL) runs
 * before each text line (to clear a progress line). text NULL: off. */
void ab_emitter_set_text(struct ab_emitter *em, FILE *text, void (*before)(void *arg), void *arg);
bool ab_emitter_enabled(const struct ab_emitter *em, enum ab_log_level level);

enum ab_status ab_emitter_log(struct ab_emitter *em, enum ab_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
enum ab_status ab_emitter_vlog(struct ab_emitter *em, enum ab_log_level level, const char *fmt,
                               va_list ap) __attribute__((format(printf, 3, 0)));

/* TRACE ERROR with failure_type from err->code; stream may be NULL. */
enum ab_status ab_emitter_trace_error(struct ab_emitter *em, const struct ab_error *err,
                                      const char *stream, const char *ns);
/* SPEC: spec_json is the whole ConnectorSpecification object, written compact. */
enum ab_status ab_emitter_spec(struct ab_emitter *em, const char *spec_json);
/* CONNECTION_STATUS; message may be NULL. */
enum ab_status ab_emitter_connection_status(struct ab_emitter *em, bool ok, const char *message);
/* STATE: writes {"type":"STATE","state":{<members>,"destinationStats":{...}}}
 * where members is the state object's member list without braces (as built
 * by ab_proto_state_members()). Counts are written with a decimal point:
 * "destinationStats":{"recordCount":N.0,"rejectedRecordCount":M.0}. */
enum ab_status ab_emitter_state(struct ab_emitter *em, const char *members, size_t len,
                                uint64_t record_count, uint64_t rejected_count);
/*
 * Source messages. Names are written as JSON strings; data, members, config
 * and catalog are pre-serialised JSON (valid, one line) written as they are,
 * unmasked: they are the data the connector moves. RECORD and ESTIMATE lines
 * are buffered (stdio); the others are flushed. A slow reader of stdout
 * blocks these calls (stdout stays blocking), which is the source's
 * back-pressure: nothing is buffered beyond stdio's buffer.
 */
/* {"type":"RECORD","record":{"stream":..,"namespace":..,"data":<data>,"emitted_at":ms}} */
enum ab_status ab_emitter_record(struct ab_emitter *em, const char *stream, const char *ns,
                                 const char *data, size_t len);
/* {"type":"STATE","state":{<members>,"sourceStats":{"recordCount":N.0}}} */
enum ab_status ab_emitter_source_state(struct ab_emitter *em, const char *members, size_t len,
                                       uint64_t record_count);
/* TRACE STREAM_STATUS; status is "STARTED", "RUNNING", "COMPLETE" or "INCOMPLETE". */
enum ab_status ab_emitter_stream_status(struct ab_emitter *em, const char *stream, const char *ns,
                                        const char *status);
/* TRACE ESTIMATE of type STREAM; a negative count is left out. */
enum ab_status ab_emitter_estimate(struct ab_emitter *em, const char *stream, const char *ns,
                                   int64_t rows, int64_t bytes);
/* CONTROL CONNECTOR_CONFIG: the platform stores config as the connector's new
 * configuration (rotated credentials). It carries secrets by design, on the
 * protocol channel only. */
enum ab_status ab_emitter_control_config(struct ab_emitter *em, const char *config, size_t len);
/* {"type":"CATALOG","catalog":<catalog>} */
enum ab_status ab_emitter_catalog(struct ab_emitter *em, const char *catalog, size_t len);

/* Writes a complete pre-serialised message line (a "\n" is appended). */
enum ab_status ab_emitter_raw(struct ab_emitter *em, const char *json, size_t len, bool flush);
enum ab_status ab_emitter_flush(struct ab_emitter *em);

#endif
