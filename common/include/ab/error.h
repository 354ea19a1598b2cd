/* error.h - status codes and the error record every fallible call fills. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_ERROR_H
#define AB_ERROR_H

#include <stddef.h>

/*
 * The status says what the caller should do next. The driver maps it to an
 * Airbyte failure_type in exactly one place (ab_status_failure_type()).
 */
enum ab_status {
    AB_OK = 0,
    AB_ERR_TRANSIENT, /* retry later: timeouts, resets, 408, 429, 5xx */
    AB_ERR_REJECTED,  /* final for this data: retrying is useless */
    AB_ERR_CONFIG,    /* the user must fix the configuration */
    AB_ERR_PROTOCOL,  /* bad input on stdin or an answer breaking the contract */
    AB_ERR_NOMEM,
    AB_ERR_IO,
    AB_ERR_INTERNAL
};

#define AB_ERROR_MSG_MAX 1024

/* Caller-owned value struct; ab_error_init() or "= {0}" before use. */
struct ab_error {
    enum ab_status code;
    char message[AB_ERROR_MSG_MAX];  /* user-facing, never holds secrets */
    char internal[AB_ERROR_MSG_MAX]; /* technical detail, never holds secrets */
};

void ab_error_init(struct ab_error *err);

/* Sets code and message (printf-style) and returns code, so that reporting and
 * propagating is one line: return ab_error_set(err, AB_ERR_IO, "cannot ..."). */
enum ab_status ab_error_set(struct ab_error *err, enum ab_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets the internal detail; keeps code and message. Returns err->code. */
enum ab_status ab_error_internal(struct ab_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefixes the message with "<prefix>: " (for context such as "line 17"). */
enum ab_status ab_error_prefix(struct ab_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Airbyte failure_type for a status: "config_error", "transient_error" or
 * "system_error". */
const char *ab_status_failure_type(enum ab_status code);

/* Short name of a status, for logs ("transient", "rejected", ...). */
const char *ab_status_name(enum ab_status code);

#endif
