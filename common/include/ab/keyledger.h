/* keyledger.h - sets of keys kept as sorted runs in files, merged and
 * compared with bounded memory. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_KEYLEDGER_H
#define AB_KEYLEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ab/buf.h"
#include "ab/error.h"

/*
 * A run is text: one entry per line, "<key>\n" or "<key>\t<value>\n", the
 * key and the value escaped with ab_keyrun_escape() (no raw '\t', '\n' or
 * '\\' inside them), sorted by the bytes of the key (memcmp order, a key
 * before every longer key it begins), each key once. Two entries with the
 * same key are merged into the one with the greater value (memcmp order).
 * A line is at most AB_KEYRUN_LINE_MAX bytes.
 *
 * ab_keyrun_sort() makes a run of lines held in memory (a caller holds a
 * bounded number of them: a checkpoint unit's keys). Many runs, each a file,
 * are merged by struct ab_keyruns: files in a private directory (mode 0700,
 * created under $TMPDIR or /tmp, never the working directory, removed with
 * everything in it by ab_keyruns_free()), grouped in sets; merging a set
 * reads at most fan_in runs at once (one line buffer each), writing the
 * merged runs as new files, pass after pass, until one run is left. Memory:
 * fan_in lines, whatever the number of keys; disk: twice the set's runs.
 *
 * Ownership: handles belong to the caller; FILE handles returned stay owned
 * by the module (closed by the matching call or ab_keyruns_free()). Errors:
 * AB_ERR_IO naming the file and the reason, AB_ERR_PROTOCOL for a run that
 * is not sorted or has an overlong line ("run 3 of set 1, line 12: keys out
 * of order"), AB_ERR_NOMEM. Not thread-safe: one thread per handle.
 */

#define AB_KEYRUN_LINE_MAX 4096
#define AB_KEYRUNS_SETS    4

/* Appends s[0..n) escaped ('\\' -> "\\\\", '\t' -> "\\t", '\n' -> "\\n"). */
enum ab_status ab_keyrun_escape(struct ab_buf *out, const char *s, size_t n, struct ab_error *err);
/* Appends the text s[0..n) escaped with ab_keyrun_escape() as it was. */
enum ab_status ab_keyrun_unescape(struct ab_buf *out, const char *s, size_t n,
                                  struct ab_error *err);

/* Sorts the lines of in (each ending with '\n') into out as a run (sorted,
 * one entry per key). in is reordered in place. */
enum ab_status ab_keyrun_sort(struct ab_buf *in, struct ab_buf *out, struct ab_error *err);

/* The key of a line: its bytes up to the first '\t' or '\n'. */
size_t ab_keyrun_key_len(const char *line, size_t len);

struct ab_keyruns;

/* fan_in >= 2: how many runs one merge reads at once. */
struct ab_keyruns *ab_keyruns_new(size_t fan_in, struct ab_error *err);
void ab_keyruns_free(struct ab_keyruns *kr); /* NULL-safe; removes every file */

/* A new run of set (< AB_KEYRUNS_SETS): returns a file open for writing;
 * the caller writes the run's lines (or has them written, e.g. by a
 * download) and then calls ab_keyruns_end(). One run is written at a time. */
FILE *ab_keyruns_begin(struct ab_keyruns *kr, int set, struct ab_error *err);
enum ab_status ab_keyruns_end(struct ab_keyruns *kr, struct ab_error *err);

/* Merges the runs of set into one (an empty run when it has none). */
enum ab_status ab_keyruns_merge(struct ab_keyruns *kr, int set, struct ab_error *err);

/* Merges sets a and b, then makes set out (emptied first) one run holding
 * the entries of a whose key b does not hold. */
enum ab_status ab_keyruns_difference(struct ab_keyruns *kr, int a, int b, int out,
                                     struct ab_error *err);

/* Runs of set; entries of its run once merged. */
size_t ab_keyruns_runs(const struct ab_keyruns *kr, int set);
uint64_t ab_keyruns_entries(const struct ab_keyruns *kr, int set);
/* Merge passes made so far (over every set). */
uint64_t ab_keyruns_passes(const struct ab_keyruns *kr);

/* Opens the merged run of set for reading (from its start); the file stays
 * the module's. Read lines with ab_keyruns_next(): 1 a line (into line,
 * with its '\n' removed), 0 the end, -1 an error (err). */
FILE *ab_keyruns_open(struct ab_keyruns *kr, int set, struct ab_error *err);
int ab_keyruns_next(FILE *fp, struct ab_buf *line, struct ab_error *err);

#endif
