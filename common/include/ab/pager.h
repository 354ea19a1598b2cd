/* pager.h - paged reads, request windows, API time formats and stream states for sources. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_PAGER_H
#define AB_PAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "ab/buf.h"
#include "ab/error.h"

/*
 * Pure bookkeeping, no I/O; nothing allocates but the appends to a caller's
 * buffer. Every function is safe from any thread on its own values.
 *
 * A pager says which page to ask for next and when a list has ended. The
 * three ways list APIs page:
 *
 *   AB_PAGE_NUMBER   ?page=N&limit=L, N from first_page; the answer carries
 *                    no count: the list ends on an empty page or one shorter
 *                    than the limit.
 *   AB_PAGE_OFFSET   ?offset=O&limit=L; the answer carries the total: the
 *                    list ends when offset + items >= total (or on an empty
 *                    page, whatever the total says).
 *   AB_PAGE_HAS_NEXT page N in a request body; the answer says hasNext: the
 *                    list ends when it is false (or on an empty page).
 */
enum ab_page_style { AB_PAGE_NUMBER = 0, AB_PAGE_OFFSET, AB_PAGE_HAS_NEXT };

struct ab_pager {
    enum ab_page_style style;
    int64_t page;   /* the page to ask for (AB_PAGE_NUMBER, AB_PAGE_HAS_NEXT) */
    int64_t offset; /* the offset to ask for (AB_PAGE_OFFSET) */
    int64_t limit;  /* items per page asked for, > 0 */
    int64_t pages;  /* pages seen */
    int64_t items;  /* items seen */
    bool done;
};

void ab_pager_init(struct ab_pager *p, enum ab_page_style style, int64_t first_page, int64_t limit);
/*
 * Accounts for the answer to the current page: n items, total (the API's
 * item count, -1 when it has none) and has_next (1, 0, or -1 when the API
 * does not say). Returns true when another page must be fetched (page or
 * offset advanced), false when the list ended (done set). A total or
 * has_next the style does not use is ignored.
 */
bool ab_pager_next(struct ab_pager *p, int64_t n, int64_t total, int has_next);

/*
 * Request windows for incremental filters by modification time, when the
 * records themselves carry no such time (the cursor is then the end of the
 * last window read). Times are seconds since the epoch, UTC. Windows are
 * [start, end] with end - start <= span, consecutive windows share their
 * bound (APIs differ on inclusive bounds; duplicates are deduplicated by
 * primary key downstream), the last one ends at to.
 */
struct ab_windows {
    int64_t from, to, span;
    int64_t next; /* start of the next window */
    bool done;
};
/* from > to gives no window; span <= 0 means one window. */
void ab_windows_init(struct ab_windows *w, int64_t from, int64_t to, int64_t span);
bool ab_windows_next(struct ab_windows *w, int64_t *start, int64_t *end);

/*
 * Times as APIs write them. utc_offset_min is the API's clock (Brazil: -180);
 * a text with its own offset or Z ignores it. Parsed forms:
 *   YYYY-MM-DD, YYYY-MM-DD HH:MM:SS, YYYY-MM-DDTHH:MM:SS[.fff][Z|+hh:mm|-hh:mm],
 *   DD/MM/YYYY, DD/MM/YYYY HH:MM:SS.
 * AB_ERR_PROTOCOL for anything else (the message names no value).
 */
enum ab_status ab_time_parse(const char *text, int utc_offset_min, int64_t *epoch_s,
                             struct ab_error *err);
/* true when s is an RFC 3339 date-time as targets check them:
 * YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), T and Z of either case,
 * fractions of any length, a real calendar date (years 1..9999), no leap
 * second. */
bool ab_rfc3339_valid(const char *s);
/* Formats with strftime conversions (%Y %m %d %H %M %S and literal text) in
 * the API's clock; "%z" writes the offset as +hh:mm. Appends to out. */
enum ab_status ab_time_format(int64_t epoch_s, int utc_offset_min, const char *fmt,
                              struct ab_buf *out, struct ab_error *err);

/*
 * A date-time text of a JSON value a source wrote itself (a cursor in its
 * state): v must be a string in a form ab_time_parse() reads, UTC unless it
 * carries its own offset. AB_ERR_CONFIG naming what ("cursor",
 * "resume.end") when v is absent, not a string or not such a text; the
 * message never quotes the value. v is borrowed.
 */
enum ab_status ab_json_time(yajl_val v, const char *what, int64_t *epoch_s, struct ab_error *err);

/*
 * The stream state of a paged source that filters by modification time:
 *
 *   {"cursor": T, "resume": {"<from>": T | null, "end": T, "<at>": N}}
 *
 * cursor: every record changed up to T was emitted (absent: no pass ended
 * yet). resume: a pass stopped between pages; the pass's filter [from, end]
 * (both left out for a pass without a filter; from null when the filter has
 * no lower bound) and where the pass goes on: at, a page number or an
 * offset, >= at_min. Times are UTC ISO 8601 texts; -1 stands for an absent
 * time. The names of from and at are the source's (keys), so states already
 * written keep their meaning.
 */
struct ab_resume_keys {
    const char *from; /* "start", "since" */
    const char *at;   /* "page", "offset" */
    int64_t at_min;   /* 1 for pages, 0 for offsets; also at's value without resume */
};

struct ab_resume_state {
    int64_t cursor;    /* -1: none */
    bool resume;       /* a pass stopped mid-way */
    int64_t from, end; /* the stopped pass's filter; -1: none */
    int64_t at;        /* where the stopped pass goes on */
};

/* Reads st from v (borrowed; NULL is the empty state). AB_ERR_CONFIG naming
 * the member for anything else than the shape above, or a from without an
 * end; st is then partly filled. */
enum ab_status ab_resume_state_parse(yajl_val v, const struct ab_resume_keys *keys,
                                     struct ab_resume_state *st, struct ab_error *err);
/* Appends st in the shape above: cursor when >= 0, resume when set (from
 * and end when end >= 0, from as null when < 0). Errors: the buffer's. */
enum ab_status ab_resume_state_write(const struct ab_resume_state *st,
                                     const struct ab_resume_keys *keys, struct ab_buf *out,
                                     struct ab_error *err);

/* Appends key=value in application/x-www-form-urlencoded form (and the query
 * string's), preceded by '&' when out is not empty. */
enum ab_status ab_form_add(struct ab_buf *out, const char *key, const char *value,
                           struct ab_error *err);

#endif
