/* jsonl_reader.h - splits a byte stream into lines of bounded length. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_JSONL_READER_H
#define AB_JSONL_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ab/error.h"

/*
 * Push model, so the driver can poll stdin together with its HTTP sockets:
 * feed bytes in any chunking, take complete lines out. A trailing "\r" is
 * stripped (CRLF tolerated). Lines are numbered from 1. Empty lines (also
 * whitespace-only) are skipped but counted. The buffer grows up to the line
 * cap plus one read chunk and never further: a line longer than the cap is
 * AB_ERR_PROTOCOL "line N: longer than the limit of M bytes" as soon as the cap
 * is exceeded, without waiting for its end; that error is sticky (feed and
 * fill return it again), lines before the long one can still be taken.
 * The bound assumes the caller drains next() after each feed/fill.
 */
struct ab_jsonl_reader;

#define AB_JSONL_DEFAULT_MAX_LINE ((size_t)64 * 1024 * 1024)

/* max_line 0 means AB_JSONL_DEFAULT_MAX_LINE. */
struct ab_jsonl_reader *ab_jsonl_reader_new(size_t max_line, struct ab_error *err);
void ab_jsonl_reader_free(struct ab_jsonl_reader *r);

/* Copies n bytes in. Fails only on allocation failure or an oversize line. */
enum ab_status ab_jsonl_reader_feed(struct ab_jsonl_reader *r, const void *p, size_t n,
                                    struct ab_error *err);
/* Reads once from fd (non-blocking or blocking) into the buffer. Sets *eof at
 * end of file. EAGAIN/EINTR return AB_OK with nothing read. */
enum ab_status ab_jsonl_reader_fill(struct ab_jsonl_reader *r, int fd, bool *eof,
                                    struct ab_error *err);
/*
 * Feeding without a copy: ab_jsonl_reader_space() makes room for up to want
 * bytes (at most one read chunk, at least 1) and sets *to to where they go
 * and *room to how many fit; it fails as feed() does (allocation, or the
 * sticky oversize error). ab_jsonl_reader_commit() then takes the n <= *room
 * bytes written there, as feed() would have taken a copy of them. *to is
 * valid until the next call of any reader function.
 */
enum ab_status ab_jsonl_reader_space(struct ab_jsonl_reader *r, size_t want, char **to,
                                     size_t *room, struct ab_error *err);
enum ab_status ab_jsonl_reader_commit(struct ab_jsonl_reader *r, size_t n, struct ab_error *err);
/* Marks end of input: a final line without "\n" becomes available. */
void ab_jsonl_reader_finish(struct ab_jsonl_reader *r);

/*
 * Next complete line: true and *line (NUL-terminated, borrowed until the next
 * call of any reader function), *len and *lineno set; false when no complete
 * line is buffered. The line may be modified in place by the caller (yajl
 * does not need that, but it is allowed).
 */
bool ab_jsonl_reader_next(struct ab_jsonl_reader *r, char **line, size_t *len, uint64_t *lineno);

/* Bytes buffered and not yet returned. */
size_t ab_jsonl_reader_pending(const struct ab_jsonl_reader *r);
/* True after finish() when the last line had no terminating "\n". */
bool ab_jsonl_reader_last_unterminated(const struct ab_jsonl_reader *r);
uint64_t ab_jsonl_reader_bytes(const struct ab_jsonl_reader *r);
/* Before the first feed: the stream starts at byte offset of a longer input
 * and its first line is number first_line (a load resuming a file). */
void ab_jsonl_reader_set_origin(struct ab_jsonl_reader *r, uint64_t offset, uint64_t first_line);
/* Byte offset just after the last line next() returned (its "\n" included). */
uint64_t ab_jsonl_reader_offset(const struct ab_jsonl_reader *r);

#endif
