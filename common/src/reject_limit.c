/* reject_limit.c - rejection thresholds of a write run. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/assert.h"
#include "ab/json.h"

#include "reject_limit_int.h"

#define RL_CODES      32
#define RL_CODE_MAX   48
#define RL_SAMPLE_MAX 160
#define RL_TOP        3

struct rl_code {
    char code[RL_CODE_MAX];
    char sample[RL_SAMPLE_MAX]; /* the first message seen with the code */
    char option[RL_CODE_MAX];   /* the config option named by that problem, "" */
    uint64_t n;
};

struct ab_rejlimit {
    size_t nstreams;
    double max_ratio;
    uint64_t min_records;
    uint64_t max_records;
    uint64_t *records;
    uint64_t *rejected;
    uint64_t total;
    uint64_t by_config;
    bool tripped;
    struct rl_code codes[RL_CODES + 1]; /* the last one is "other" */
    size_t ncodes;
};

struct ab_rejlimit *ab_rejlimit_new(size_t nstreams, double max_ratio, uint64_t min_records,
                                    uint64_t max_records, struct ab_error *err)
{
    struct ab_rejlimit *rl = calloc(1, sizeof(*rl));
    size_t n = nstreams ? nstreams : 1;

    if (rl) {
        rl->records = calloc(n, sizeof(*rl->records));
        rl->rejected = calloc(n, sizeof(*rl->rejected));
    }
    if (!rl || !rl->records || !rl->rejected) {
        ab_rejlimit_free(rl);
        (void)ab_error_set(err, AB_ERR_NOMEM, "out of memory (rejection counters)");
        return NULL;
    }
    rl->nstreams = nstreams;
    rl->max_ratio = max_ratio;
    rl->min_records = min_records;
    rl->max_records = max_records;
    (void)snprintf(rl->codes[RL_CODES].code, RL_CODE_MAX, "other");
    return rl;
}

void ab_rejlimit_free(struct ab_rejlimit *rl)
{
    if (!rl) {
        return;
    }
    free(rl->records);
    free(rl->rejected);
    free(rl);
}

void ab_rejlimit_record(struct ab_rejlimit *rl, size_t stream)
{
    if (rl && stream < rl->nstreams) {
        rl->records[stream]++;
    }
}

/* Copies text for a message: control characters as '?', cut at size. */
static void clean_copy(char *out, size_t size, const char *text)
{
    size_t n = 0;

    for (; text && *text && n + 1 < size; text++) {
        unsigned char ch = (unsigned char)*text;

        out[n++] = (char)(ch < 0x20 || ch == 0x7F ? '?' : ch);
    }
    out[n] = '\0';
}

static void count_code(struct ab_rejlimit *rl, const char *code, const char *message,
                       const char *option)
{
    struct rl_code *c = NULL;
    size_t i;

    for (i = 0; i < rl->ncodes; i++) {
        if (strncmp(rl->codes[i].code, code, RL_CODE_MAX - 1) == 0) {
            c = &rl->codes[i];
            break;
        }
    }
    if (!c && rl->ncodes < RL_CODES) {
        c = &rl->codes[rl->ncodes++];
        clean_copy(c->code, sizeof(c->code), code);
        clean_copy(c->sample, sizeof(c->sample), message);
        clean_copy(c->option, sizeof(c->option), option);
    }
    if (!c) {
        c = &rl->codes[RL_CODES];
    }
    c->n++;
}

/* Counts the codes of one rejection; true when a problem names an option. */
static bool count_errors(struct ab_rejlimit *rl, const char *errors_json)
{
    struct ab_error ignored;
    yajl_val root;
    bool by_config = false;
    size_t i;

    ab_error_init(&ignored);
    root = errors_json ? ab_json_parse(errors_json, strlen(errors_json), &ignored) : NULL;
    if (!root || root->type != yajl_t_array || root->u.array.len == 0) {
        count_code(rl, "unknown", "the errors could not be read", NULL);
    } else {
        for (i = 0; i < root->u.array.len; i++) {
            yajl_val p = root->u.array.values[i];
            const char *option = ab_json_get_str(p, "option", NULL);

            count_code(rl, ab_json_get_str(p, "code", "unknown"), ab_json_get_str(p, "message", ""),
                       option);
            by_config = by_config || (option && *option);
        }
    }
    if (root) {
        ab_json_free(root);
    }
    return by_config;
}

static int by_count(const void *a, const void *b)
{
    const struct rl_code *x = *(const struct rl_code *const *)a;
    const struct rl_code *y = *(const struct rl_code *const *)b;

    return x->n < y->n ? 1 : x->n > y->n ? -1 : 0;
}

/* The codes with a count, most frequent first (stable for ties: the
 * first seen first); returns how many. */
static size_t ranked(const struct ab_rejlimit *rl, const struct rl_code **out)
{
    size_t n = 0;
    size_t i;
    size_t j;

    for (i = 0; i <= RL_CODES; i++) {
        if ((i < rl->ncodes || i == RL_CODES) && rl->codes[i].n > 0) {
            out[n++] = &rl->codes[i];
        }
    }
    /* insertion sort keeps ties in order (qsort would not) */
    for (i = 1; i < n; i++) {
        const struct rl_code *c = out[i];

        for (j = i; j > 0 && by_count(&out[j - 1], &c) > 0; j--) {
            out[j] = out[j - 1];
        }
        out[j] = c;
    }
    return n;
}

void ab_rejlimit_top(const struct ab_rejlimit *rl, char *out, size_t size)
{
    const struct rl_code *r[RL_CODES + 1];
    size_t n = rl ? ranked(rl, r) : 0;
    size_t used = 0;
    size_t i;

    if (size == 0) {
        return;
    }
    out[0] = '\0';
    if (!rl) {
        return;
    }
    for (i = 0; i < n && i < RL_TOP && used + 1 < size; i++) {
        int w = snprintf(out + used, size - used, "%s%s %llu", i ? ", " : "", r[i]->code,
                         (unsigned long long)r[i]->n);

        if (w < 0) {
            break;
        }
        used += (size_t)w < size - used ? (size_t)w : size - used - 1;
    }
}

/* "missing_field 120 ('brand' is required; set the config option 'brand'),
 * ..." */
static void top_detail(const struct ab_rejlimit *rl, char *out, size_t size)
{
    const struct rl_code *r[RL_CODES + 1];
    size_t n = ranked(rl, r);
    size_t used = 0;
    size_t i;

    out[0] = '\0';
    for (i = 0; i < n && i < RL_TOP && used + 1 < size; i++) {
        int w = snprintf(out + used, size - used, "%s%s %llu%s%s%s%s%s", i ? ", " : "", r[i]->code,
                         (unsigned long long)r[i]->n, r[i]->sample[0] ? " (" : "", r[i]->sample,
                         r[i]->option[0] ? "; set the config option '" : "", r[i]->option,
                         r[i]->option[0]   ? "')"
                         : r[i]->sample[0] ? ")"
                                           : "");

        if (w < 0) {
            break;
        }
        used += (size_t)w < size - used ? (size_t)w : size - used - 1;
    }
}

enum ab_status ab_rejlimit_reject(struct ab_rejlimit *rl, size_t stream, const char *stream_desc,
                                  const char *errors_json, struct ab_error *err)
{
    char what[300];
    char top[640];
    uint64_t recs;
    uint64_t rej;

    if (!rl || stream >= rl->nstreams) {
        return AB_OK;
    }
    rl->rejected[stream]++;
    rl->total++;
    if (count_errors(rl, errors_json)) {
        rl->by_config++;
    }
    AB_ASSERT(rl->by_config <= rl->total && rl->rejected[stream] <= rl->total);
    if (rl->tripped) {
        return AB_OK;
    }
    recs = rl->records[stream];
    rej = rl->rejected[stream];
    if (rl->max_records > 0 && rl->total > rl->max_records) {
        (void)snprintf(what, sizeof(what),
                       "%llu records rejected, more than max_rejected_records "
                       "(%llu)",
                       (unsigned long long)rl->total, (unsigned long long)rl->max_records);
    } else if (recs >= rl->min_records && recs > 0 && (double)rej > rl->max_ratio * (double)recs) {
        (void)snprintf(what, sizeof(what),
                       "%llu of the %llu records of stream '%s' rejected (%.1f%%), more than "
                       "max_rejected_ratio (%g) allows",
                       (unsigned long long)rej, (unsigned long long)recs,
                       stream_desc ? stream_desc : "?", 100.0 * (double)rej / (double)recs,
                       rl->max_ratio);
    } else {
        return AB_OK;
    }
    rl->tripped = true;
    top_detail(rl, top, sizeof(top));
    return ab_error_set(err, rl->by_config * 2 >= rl->total ? AB_ERR_CONFIG : AB_ERR_REJECTED,
                        "too many rejected records: %s; the most frequent errors: %s", what, top);
}
