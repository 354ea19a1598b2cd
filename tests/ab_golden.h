/* ab_golden.h - test data: files, golden files, JSON written readably. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_GOLDEN_H
#define AB_GOLDEN_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/buf.h"
#include "ab/json.h"

#include "ab_test.h"

/* The whole file (free() it), or NULL when it cannot be opened; *len (may be
 * NULL) receives its length. */
static inline char *ab_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct ab_buf b;
    char chunk[4096];
    size_t n;

    if (!f) {
        return NULL;
    }
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_buf_adds(&b, "", NULL), AB_OK);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        assert_int_equal(ab_buf_add(&b, chunk, n, NULL), AB_OK);
    }
    assert_int_equal(fclose(f), 0);
    return ab_buf_detach(&b, len);
}

/* Compares text with the golden file AB_TEST_DATA_DIR/name, or rewrites the
 * file when AB_UPDATE_GOLDEN=1 (review the diff before committing it). */
static inline void ab_test_check_golden(const char *name, const char *text)
{
    char path[1024];
    const char *update = getenv("AB_UPDATE_GOLDEN"); /* NOLINT(concurrency-mt-unsafe) */
    char *want;

    (void)snprintf(path, sizeof(path), "%s/%s", AB_TEST_DATA_DIR, name);
    if (update && strcmp(update, "1") == 0) {
        FILE *f = fopen(path, "wb");

        assert_non_null(f);
        assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
        assert_int_equal(fclose(f), 0);
        return;
    }
    want = ab_test_read_file(path, NULL);
    if (!want) {
        fail_msg("missing golden file %s (run with AB_UPDATE_GOLDEN=1)", path);
    }
    assert_string_equal(text, want);
    free(want);
}

/* Parses JSON written with ' for " (keeps tables of cases readable); fails
 * the test on invalid JSON. yajl_tree_free() the result. */
static inline yajl_val ab_test_sq_parse(const char *sq)
{
    struct ab_error err;
    size_t n = strlen(sq);
    char *text = malloc(n + 1);
    yajl_val v;
    size_t i;

    assert_non_null(text);
    for (i = 0; i <= n; i++) {
        text[i] = sq[i] == '\'' ? '"' : sq[i];
    }
    ab_error_init(&err);
    v = ab_json_parse(text, n, &err);
    if (!v) {
        fail_msg("bad test JSON %s: %s", sq, err.message);
    }
    free(text);
    return v;
}

#endif
