/* fuzz_jsonl_reader.c - the JSON-lines reader gives the same lines for any
 * chunking of the same bytes. */
/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "ab/buf.h"
#include "ab/jsonl_reader.h"

#include "fuzz.h"

/* Feeds text in chunks (sizes from the first bytes), appends each line as
 * "<lineno>:<line>\n" to out, and the final status. */
static void read_all(const uint8_t *sizes, size_t nsizes, const uint8_t *text, size_t len,
                     size_t max_line, struct ab_buf *out)
{
    struct ab_error err = {0};
    struct ab_jsonl_reader *r = ab_jsonl_reader_new(max_line, &err);
    enum ab_status rc = AB_OK;
    size_t off = 0;
    size_t k = 0;
    char *line;
    size_t n;
    uint64_t lineno;

    FUZZ_ASSERT(r != NULL);
    while (off < len && rc == AB_OK) {
        size_t chunk = nsizes ? (size_t)sizes[k++ % nsizes] + 1 : len;

        if (chunk > len - off) {
            chunk = len - off;
        }
        rc = ab_jsonl_reader_feed(r, text + off, chunk, &err);
        off += chunk;
        /* lines before an oversize one can still be taken */
        while (ab_jsonl_reader_next(r, &line, &n, &lineno)) {
            FUZZ_ASSERT(strlen(line) <= n && n <= max_line);
            FUZZ_ASSERT(ab_buf_printf(out, NULL, "%llu:", (unsigned long long)lineno) == AB_OK);
            FUZZ_ASSERT(ab_buf_add(out, line, n, NULL) == AB_OK);
            FUZZ_ASSERT(ab_buf_addc(out, '\n', NULL) == AB_OK);
        }
    }
    if (rc == AB_OK) {
        ab_jsonl_reader_finish(r);
        while (ab_jsonl_reader_next(r, &line, &n, &lineno)) {
            FUZZ_ASSERT(ab_buf_printf(out, NULL, "%llu:", (unsigned long long)lineno) == AB_OK);
            FUZZ_ASSERT(ab_buf_add(out, line, n, NULL) == AB_OK);
            FUZZ_ASSERT(ab_buf_addc(out, '\n', NULL) == AB_OK);
        }
    }
    FUZZ_ASSERT(ab_buf_printf(out, NULL, "status %d", (int)rc) == AB_OK);
    ab_jsonl_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ab_buf whole;
    struct ab_buf chunked;
    size_t nsizes;
    size_t max_line;

    if (size < 2) {
        return 0;
    }
    /* byte 0: line cap (16..271), byte 1: how many chunk sizes follow */
    max_line = (size_t)data[0] + 16;
    nsizes = data[1] % 8;
    if (size < 2 + nsizes) {
        return 0;
    }
    ab_buf_init(&whole, AB_BUF_UNBOUNDED);
    ab_buf_init(&chunked, AB_BUF_UNBOUNDED);
    read_all(NULL, 0, data + 2 + nsizes, size - 2 - nsizes, max_line, &whole);
    read_all(data + 2, nsizes, data + 2 + nsizes, size - 2 - nsizes, max_line, &chunked);
    /* an oversize line stops both at the same place; before it, the same lines */
    FUZZ_ASSERT(whole.len == chunked.len && memcmp(whole.data, chunked.data, whole.len) == 0);
    ab_buf_release(&whole);
    ab_buf_release(&chunked);
    return 0;
}
