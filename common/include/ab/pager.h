/* pager.h - paged reads, request windows and API time formats for sources. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_PAGER_H
#define AB_PAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ab/buf.h"
#include "ab/error.h"

/*
 * Pure bookkeeping, no I/O, no allocation; every function is safe from any
 * thread on its own value.
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
/* Formats with strftime conversions (%Y %m %d %H %M %S and literal text) in
 * the API's clock; "%z" writes the offset as +hh:mm. Appends to out. */
enum ab_status ab_time_format(int64_t epoch_s, int utc_offset_min, const char *fmt,
                              struct ab_buf *out, struct ab_error *err);

/* Appends key=value in application/x-www-form-urlencoded form (and the query
 * string's), preceded by '&' when out is not empty. */
enum ab_status ab_form_add(struct ab_buf *out, const char *key, const char *value,
                           struct ab_error *err);

#endif
