/* run_state.h - ab-run's state file: acknowledged states merged as the platform does. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_RUN_STATE_H
#define AB_RUN_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include <yajl/yajl_tree.h>

#include "ab/error.h"

/*
 * The state file is a JSON array of AirbyteStateMessage objects, the form a
 * source's --state takes. A STREAM state replaces the entry of its stream
 * descriptor (name and namespace) and keeps the others; a GLOBAL or LEGACY
 * state replaces the whole file. The members "sourceStats" and
 * "destinationStats" are dropped. Every change is written to a temporary
 * file beside the state file, fsynced and renamed over it, then the
 * directory is fsynced: after a crash the file holds either the previous or
 * the new content, never a mixture.
 *
 * Single-threaded; the struct owns every string it holds.
 */
struct run_state;

/* Loads path if it exists (it must then be such an array; AB_ERR_CONFIG
 * naming the problem otherwise). NULL with err set on failure. */
struct run_state *run_state_open(const char *path, struct ab_error *err);
void run_state_free(struct run_state *s);

/* Merges the "state" member of a STATE message and rewrites the file.
 * AB_ERR_PROTOCOL for a state that is not an object or a STREAM state
 * without a stream name; AB_ERR_IO when the file cannot be written (the old
 * file is then intact). *note (may be NULL) is set to a static text when
 * the merge replaced entries of another kind ("a GLOBAL state replaced
 * STREAM states"), else NULL. */
enum ab_status run_state_apply(struct run_state *s, yajl_val state, const char **note,
                               struct ab_error *err);

/* Entries held (streams, or 1 for a GLOBAL/LEGACY state). */
size_t run_state_entries(const struct run_state *s);
/* False once a write of the file failed (it then holds an older state). */
bool run_state_saved(const struct run_state *s);
/* True when the file existed at open or has been written since. */
bool run_state_exists(const struct run_state *s);

/* Writes len bytes to path atomically: path.tmp (mode 0600), fsync, rename,
 * fsync of the directory. AB_ERR_IO naming the file on failure; path is
 * then unchanged. */
enum ab_status run_write_file(const char *path, const char *data, size_t len, struct ab_error *err);

#endif
