/* error.c - status codes and the error record. */
/* SPDX-License-Identifier: MIT */
#include "ab/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void ab_error_init(struct ab_error *err)
{
    err->code = AB_OK;
    err->message[0] = '\0';
    err->internal[0] = '\0';
}

enum ab_status ab_error_set(struct ab_error *err, enum ab_status code, const char *fmt, ...)
{
    va_list ap;

    if (!err) {
        return code;
    }
    err->code = code;
    err->internal[0] = '\0';
    va_start(ap, fmt);
    (void)vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return code;
}

enum ab_status ab_error_internal(struct ab_error *err, const char *fmt, ...)
{
    va_list ap;

    if (!err) {
        return AB_ERR_INTERNAL;
    }
    va_start(ap, fmt);
    (void)vsnprintf(err->internal, sizeof(err->internal), fmt, ap);
    va_end(ap);
    return err->code;
}

enum ab_status ab_error_prefix(struct ab_error *err, const char *fmt, ...)
{
    char prefix[256];
    char old[AB_ERROR_MSG_MAX];
    va_list ap;

    if (!err) {
        return AB_ERR_INTERNAL;
    }
    va_start(ap, fmt);
    (void)vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof(old));
    {
        size_t n = strlen(prefix);

        if (n > sizeof(err->message) - 3) {
            n = sizeof(err->message) - 3;
        }
        memcpy(err->message, prefix, n);
        memcpy(err->message + n, ": ", 2);
        n += 2;
        {
            size_t m = strlen(old);

            if (m > sizeof(err->message) - 1 - n) {
                m = sizeof(err->message) - 1 - n;
            }
            memcpy(err->message + n, old, m);
            err->message[n + m] = '\0';
        }
    }
    return err->code;
}

const char *ab_status_failure_type(enum ab_status code)
{
    switch (code) {
    case AB_ERR_CONFIG:
        return "config_error";
    case AB_ERR_TRANSIENT:
        return "transient_error";
    case AB_OK:
    case AB_ERR_REJECTED:
    case AB_ERR_PROTOCOL:
    case AB_ERR_NOMEM:
    case AB_ERR_IO:
    case AB_ERR_INTERNAL:
        break;
    }
    return "system_error";
}

const char *ab_status_name(enum ab_status code)
{
    switch (code) {
    case AB_OK:
        return "ok";
    case AB_ERR_TRANSIENT:
        return "transient";
    case AB_ERR_REJECTED:
        return "rejected";
    case AB_ERR_CONFIG:
        return "config";
    case AB_ERR_PROTOCOL:
        return "protocol";
    case AB_ERR_NOMEM:
        return "out of memory";
    case AB_ERR_IO:
        return "io";
    case AB_ERR_INTERNAL:
        return "internal";
    }
    return "unknown";
}
