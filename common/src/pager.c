/* pager.c - paged reads, request windows, API time formats and stream states for sources. */
/* SPDX-License-Identifier: MIT */
#include "ab/pager.h"

#include <stdio.h>
#include <string.h>

#include "ab/assert.h"
#include "ab/json.h"

void ab_pager_init(struct ab_pager *p, enum ab_page_style style, int64_t first_page, int64_t limit)
{
    AB_ASSERT(limit > 0);
    memset(p, 0, sizeof(*p));
    p->style = style;
    p->page = first_page;
    p->limit = limit;
}

bool ab_pager_next(struct ab_pager *p, int64_t n, int64_t total, int has_next)
{
    AB_ASSERT(!p->done);
    AB_ASSERT(n >= 0);
    p->pages++;
    p->items += n;
    if (n == 0) {
        p->done = true;
        return false;
    }
    switch (p->style) {
    case AB_PAGE_NUMBER:
        if (n < p->limit) {
            p->done = true;
            return false;
        }
        p->page++;
        return true;
    case AB_PAGE_OFFSET:
        if (total >= 0 && p->offset + n >= total) {
            p->done = true;
            return false;
        }
        p->offset += n;
        return true;
    case AB_PAGE_HAS_NEXT:
        if (has_next == 0) {
            p->done = true;
            return false;
        }
        p->page++;
        return true;
    }
    p->done = true;
    return false;
}

void ab_windows_init(struct ab_windows *w, int64_t from, int64_t to, int64_t span)
{
    w->from = from;
    w->to = to;
    w->span = span;
    w->next = from;
    w->done = from > to;
}

bool ab_windows_next(struct ab_windows *w, int64_t *start, int64_t *end)
{
    int64_t e;

    if (w->done) {
        return false;
    }
    e = w->span > 0 && w->to - w->next > w->span ? w->next + w->span : w->to;
    *start = w->next;
    *end = e;
    AB_ASSERT(*start <= *end);
    if (e >= w->to) {
        w->done = true;
    } else {
        w->next = e;
    }
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    int64_t era, doe, yoe, doy, mp, yy;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    yy = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

/* n digits at s into *out; false when one is not a digit. */
static bool digits(const char *s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : dm[m - 1];
}

enum ab_status ab_time_parse(const char *text, int utc_offset_min, int64_t *epoch_s,
                             struct ab_error *err)
{
    const char *s = text;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0, oh = 0, om = 0;
    int offset = utc_offset_min;
    bool ok;

    if (!s) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "no date-time");
    }
    if (strlen(s) >= 10 && s[2] == '/' && s[5] == '/') {
        ok = digits(s, 2, &d) && digits(s + 3, 2, &mo) && digits(s + 6, 4, &y);
    } else {
        ok = strlen(s) >= 10 && s[4] == '-' && s[7] == '-' && digits(s, 4, &y) &&
             digits(s + 5, 2, &mo) && digits(s + 8, 2, &d);
    }
    s += 10;
    if (ok && (*s == ' ' || *s == 'T')) {
        ok = strlen(s) >= 9 && s[3] == ':' && s[6] == ':' && digits(s + 1, 2, &h) &&
             digits(s + 4, 2, &mi) && digits(s + 7, 2, &se);
        s += 9;
        if (ok && *s == '.') {
            s++;
            ok = *s >= '0' && *s <= '9';
            while (*s >= '0' && *s <= '9') {
                s++;
            }
        }
        if (ok && *s == 'Z') {
            offset = 0;
            s++;
        } else if (ok && (*s == '+' || *s == '-')) {
            ok = strlen(s) >= 6 && s[3] == ':' && digits(s + 1, 2, &oh) && digits(s + 4, 2, &om);
            offset = (*s == '-' ? -1 : 1) * (oh * 60 + om);
            s += 6;
        }
    }
    ok = ok && *s == '\0' && y >= 1 && mo >= 1 && mo <= 12 && d >= 1 && d <= days_in_month(y, mo) &&
         h <= 23 && mi <= 59 && se <= 60 && oh <= 23 && om <= 59;
    if (!ok) {
        return ab_error_set(err, AB_ERR_PROTOCOL,
                            "not a date-time in a known form (YYYY-MM-DD[ HH:MM:SS], "
                            "ISO 8601, DD/MM/YYYY[ HH:MM:SS])");
    }
    *epoch_s = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - (int64_t)offset * 60;
    return AB_OK;
}

enum ab_status ab_time_format(int64_t epoch_s, int utc_offset_min, const char *fmt,
                              struct ab_buf *out, struct ab_error *err)
{
    int64_t t = epoch_s + (int64_t)utc_offset_min * 60;
    int64_t days = (t >= 0 ? t : t - 86399) / 86400;
    int64_t secs = t - days * 86400;
    int y, m, d;
    enum ab_status rc = AB_OK;

    civil_from_days(days, &y, &m, &d);
    for (const char *f = fmt; *f && rc == AB_OK; f++) {
        if (*f != '%' || !f[1]) {
            rc = ab_buf_addc(out, *f, err);
            continue;
        }
        switch (*++f) {
        case 'Y':
            rc = ab_buf_printf(out, err, "%04d", y);
            break;
        case 'm':
            rc = ab_buf_printf(out, err, "%02d", m);
            break;
        case 'd':
            rc = ab_buf_printf(out, err, "%02d", d);
            break;
        case 'H':
            rc = ab_buf_printf(out, err, "%02d", (int)(secs / 3600));
            break;
        case 'M':
            rc = ab_buf_printf(out, err, "%02d", (int)(secs / 60 % 60));
            break;
        case 'S':
            rc = ab_buf_printf(out, err, "%02d", (int)(secs % 60));
            break;
        case 'z': {
            int a = utc_offset_min < 0 ? -utc_offset_min : utc_offset_min;

            rc = ab_buf_printf(out, err, "%c%02d:%02d", utc_offset_min < 0 ? '-' : '+', a / 60,
                               a % 60);
            break;
        }
        default:
            rc = ab_buf_addc(out, *f, err);
            break;
        }
    }
    return rc;
}

enum ab_status ab_json_time(yajl_val v, const char *what, int64_t *epoch_s, struct ab_error *err)
{
    const char *s = ab_json_str(v);

    if (!s || ab_time_parse(s, 0, epoch_s, err) != AB_OK) {
        return ab_error_set(err, AB_ERR_CONFIG, "\"%s\" must be a date-time text (UTC ISO 8601)",
                            what);
    }
    return AB_OK;
}

enum ab_status ab_resume_state_parse(yajl_val v, const struct ab_resume_keys *keys,
                                     struct ab_resume_state *st, struct ab_error *err)
{
    yajl_val c, r, s;
    char what[64];

    AB_ASSERT(keys && keys->from && keys->at);
    st->cursor = st->from = st->end = -1;
    st->resume = false;
    st->at = keys->at_min;
    if (!v) {
        return AB_OK;
    }
    if (!YAJL_IS_OBJECT(v)) {
        return ab_error_set(err, AB_ERR_CONFIG, "the state must be an object");
    }
    c = ab_json_get(v, "cursor");
    if (c && ab_json_time(c, "cursor", &st->cursor, err) != AB_OK) {
        return err->code;
    }
    r = ab_json_get(v, "resume");
    if (!r) {
        return AB_OK;
    }
    if (!YAJL_IS_OBJECT(r) || !ab_json_int(ab_json_get(r, keys->at), &st->at) ||
        st->at < keys->at_min) {
        return ab_error_set(err, AB_ERR_CONFIG,
                            "\"resume\" must be an object with a \"%s\" >= %lld", keys->at,
                            (long long)keys->at_min);
    }
    st->resume = true;
    s = ab_json_get(r, keys->from);
    (void)snprintf(what, sizeof(what), "resume.%s", keys->from);
    if (s && !ab_json_is_null(s) && ab_json_time(s, what, &st->from, err) != AB_OK) {
        return err->code;
    }
    s = ab_json_get(r, "end");
    if (s && ab_json_time(s, "resume.end", &st->end, err) != AB_OK) {
        return err->code;
    }
    if (st->from >= 0 && st->end < 0) {
        return ab_error_set(err, AB_ERR_CONFIG, "\"resume\" has a \"%s\" and no \"end\"",
                            keys->from);
    }
    return AB_OK;
}

/* "key":"T" (null when t < 0). */
static enum ab_status put_time(struct ab_buf *out, const char *key, int64_t t, struct ab_error *err)
{
    enum ab_status rc = ab_buf_printf(out, err, "\"%s\":", key);

    if (rc == AB_OK && t < 0) {
        return ab_buf_adds(out, "null", err);
    }
    if (rc == AB_OK) {
        rc = ab_time_format(t, 0, "\"%Y-%m-%dT%H:%M:%SZ\"", out, err);
    }
    return rc;
}

enum ab_status ab_resume_state_write(const struct ab_resume_state *st,
                                     const struct ab_resume_keys *keys, struct ab_buf *out,
                                     struct ab_error *err)
{
    enum ab_status rc = ab_buf_addc(out, '{', err);

    if (rc == AB_OK && st->cursor >= 0) {
        rc = put_time(out, "cursor", st->cursor, err);
        if (rc == AB_OK && st->resume) {
            rc = ab_buf_addc(out, ',', err);
        }
    }
    if (rc == AB_OK && st->resume) {
        rc = ab_buf_adds(out, "\"resume\":{", err);
        if (rc == AB_OK && st->end >= 0) {
            rc = put_time(out, keys->from, st->from, err);
            if (rc == AB_OK) {
                rc = ab_buf_addc(out, ',', err);
            }
            if (rc == AB_OK) {
                rc = put_time(out, "end", st->end, err);
            }
            if (rc == AB_OK) {
                rc = ab_buf_addc(out, ',', err);
            }
        }
        if (rc == AB_OK) {
            rc = ab_buf_printf(out, err, "\"%s\":%lld}", keys->at, (long long)st->at);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(out, '}', err);
    }
    return rc;
}

enum ab_status ab_form_add(struct ab_buf *out, const char *key, const char *value,
                           struct ab_error *err)
{
    static const char hex[] = "0123456789ABCDEF";
    const char *parts[2] = {key, value};
    enum ab_status rc = AB_OK;

    if (out->len > 0) {
        rc = ab_buf_addc(out, '&', err);
    }
    for (int i = 0; i < 2 && rc == AB_OK; i++) {
        if (i == 1) {
            rc = ab_buf_addc(out, '=', err);
        }
        for (const unsigned char *p = (const unsigned char *)parts[i]; *p && rc == AB_OK; p++) {
            if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                *p == '-' || *p == '.' || *p == '_' || *p == '~') {
                rc = ab_buf_addc(out, (char)*p, err);
            } else if (*p == ' ') {
                rc = ab_buf_addc(out, '+', err);
            } else {
                char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};

                rc = ab_buf_add(out, enc, 3, err);
            }
        }
    }
    return rc;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return true;
}

static int two(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

bool ab_rfc3339_valid(const char *s)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p;
    int y;
    int m;
    int d;

    if (strlen(s) < 20 || !all_digits(s, 4) || s[4] != '-' || !all_digits(s + 5, 2) ||
        s[7] != '-' || !all_digits(s + 8, 2) || (s[10] != 'T' && s[10] != 't') ||
        !all_digits(s + 11, 2) || s[13] != ':' || !all_digits(s + 14, 2) || s[16] != ':' ||
        !all_digits(s + 17, 2)) {
        return false;
    }
    y = two(s) * 100 + two(s + 2);
    m = two(s + 5);
    d = two(s + 8);
    if (y < 1 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] ||
        (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) ||
        two(s + 11) > 23 || two(s + 14) > 59 || two(s + 17) > 59) {
        return false;
    }
    p = s + 19;
    if (*p == '.') {
        p++;
        if (!all_digits(p, 1)) {
            return false;
        }
        while (all_digits(p, 1)) {
            p++;
        }
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        return true;
    }
    return (*p == '+' || *p == '-') && strlen(p) == 6 && all_digits(p + 1, 2) && p[3] == ':' &&
           all_digits(p + 4, 2) && two(p + 1) <= 23 && two(p + 4) <= 59;
}
