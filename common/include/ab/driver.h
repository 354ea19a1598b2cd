/* driver.h - the connector driver: commands, config, the event loop, errors. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_DRIVER_H
#define AB_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "ab/catalog.h"
#include "ab/emitter.h"
#include "ab/error.h"
#include "ab/http.h"
#include "ab/loop.h"

/*
 * One driver runs every connector, source or destination. A connector's
 * main() is one call, ab_destination_main() (ab/destination.h) or
 * ab_source_main() (ab/source.h), with its ops table. The driver parses the
 * command line (commands and options in any order), loads the spec and
 * validates the config against it, owns stdout through the emitter, runs the
 * event loop (ab/loop.h) with stdin or the connector's own descriptors, a
 * signal pipe and timers, and maps errors to exit codes and TRACE messages
 * in one place:
 *
 *   0    success
 *   1    a fatal error: exactly one TRACE ERROR was written (failure_type
 *        config_error, transient_error or system_error)
 *   2    a usage error (stderr)
 *   128+N stopped by signal N (SIGTERM, SIGINT)
 *
 * Everything runs on one thread; connector callbacks run inside the loop.
 */
struct ab_driver;

/* Problems found by check, all reported at once in one CONNECTION_STATUS. */
struct ab_check;
void ab_check_problem(struct ab_check *chk, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Accessors (borrowed for the driver's lifetime). */
struct ab_emitter *ab_driver_emitter(struct ab_driver *d);
yajl_val ab_driver_config(struct ab_driver *d);
yajl_val ab_driver_spec(struct ab_driver *d); /* connectionSpecification */
const struct ab_catalog *ab_driver_catalog(struct ab_driver *d);
/* The run's event loop: register descriptors and timers here. */
struct ab_loop *ab_driver_loop(struct ab_driver *d);
/* The client the loop drives (borrowed; the connector frees it in close). */
void ab_driver_set_http(struct ab_driver *d, struct ab_http *h);

/* Registers a secret (copied) so it is masked in every log and error. When
 * the mask cannot take it, the run fails (ab_driver_fail()) and the error is
 * returned: the secret must not be used then. */
enum ab_status ab_driver_add_secret(struct ab_driver *d, const char *secret, struct ab_error *err);
/* Unregisters a secret that can no longer appear (a replaced token). */
void ab_driver_remove_secret(struct ab_driver *d, const char *secret);

/* A fatal error found inside a callback: the loop stops at the end of its
 * turn, one TRACE error is written and the run exits 1. The first wins. */
void ab_driver_fail(struct ab_driver *d, const struct ab_error *err);
bool ab_driver_failed(const struct ab_driver *d);

/*
 * HTTP options from the common config fields: "max_in_flight",
 * "requests_per_second", "burst", "connect_timeout_seconds",
 * "request_timeout_seconds", "max_retries", "ca_path"; absent fields keep
 * ab_http_opts_init() defaults. The log is the driver's emitter; stop is
 * the flag SIGTERM/SIGINT set, so blocking calls (ab_http_run) end promptly.
 */
void ab_driver_http_opts(struct ab_driver *d, struct ab_http_opts *o);
/* An http(s) URL whose scheme is https, or http with a loopback host
 * (localhost, 127.0.0.0/8, [::1]); AB_ERR_CONFIG naming field otherwise. */
enum ab_status ab_driver_check_url(const char *url, const char *field, struct ab_error *err);

#endif
