/* test_pager.c - paging, request windows, API times, forms, failure mapping. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/fetch.h"
#include "ab/json.h"
#include "ab/pager.h"

#include "ab_test.h"

static void test_page_number_ends_on_short_or_empty_page(void **state)
{
    struct ab_pager p;

    (void)state;
    ab_pager_init(&p, AB_PAGE_NUMBER, 1, 100);
    assert_int_equal(p.page, 1);
    assert_true(ab_pager_next(&p, 100, -1, -1));
    assert_int_equal(p.page, 2);
    assert_false(ab_pager_next(&p, 37, -1, -1));
    assert_true(p.done);
    assert_int_equal(p.items, 137);
    assert_int_equal(p.pages, 2);
    /* an exact multiple needs the empty page to end */
    ab_pager_init(&p, AB_PAGE_NUMBER, 1, 10);
    assert_true(ab_pager_next(&p, 10, -1, -1));
    assert_true(ab_pager_next(&p, 10, -1, -1));
    assert_false(ab_pager_next(&p, 0, -1, -1));
    assert_int_equal(p.items, 20);
}

static void test_offset_ends_at_total(void **state)
{
    struct ab_pager p;

    (void)state;
    ab_pager_init(&p, AB_PAGE_OFFSET, 0, 100);
    assert_true(ab_pager_next(&p, 100, 250, -1));
    assert_int_equal(p.offset, 100);
    assert_true(ab_pager_next(&p, 100, 250, -1));
    assert_int_equal(p.offset, 200);
    assert_false(ab_pager_next(&p, 50, 250, -1));
    /* a server capping the limit lower: the offset follows what came */
    ab_pager_init(&p, AB_PAGE_OFFSET, 0, 100);
    assert_true(ab_pager_next(&p, 50, 120, -1));
    assert_int_equal(p.offset, 50);
    /* the total shrinking under us, or an empty page, ends the list */
    assert_false(ab_pager_next(&p, 0, 120, -1));
    ab_pager_init(&p, AB_PAGE_OFFSET, 0, 100);
    assert_false(ab_pager_next(&p, 100, 100, -1));
}

static void test_has_next(void **state)
{
    struct ab_pager p;

    (void)state;
    ab_pager_init(&p, AB_PAGE_HAS_NEXT, 1, 500);
    assert_true(ab_pager_next(&p, 500, 1200, 1));
    assert_int_equal(p.page, 2);
    assert_true(ab_pager_next(&p, 500, 1200, 1));
    assert_false(ab_pager_next(&p, 200, 1200, 0));
    assert_int_equal(p.page, 3);
    ab_pager_init(&p, AB_PAGE_HAS_NEXT, 1, 500);
    assert_false(ab_pager_next(&p, 0, 0, 1)); /* empty: ended, whatever hasNext says */
}

/* The loop a source runs around a pager: ask, account, until it ends. */
struct answer {
    int64_t n, total;
    int has_next;
};

static int64_t pages_asked(enum ab_page_style style, int64_t limit, const struct answer *a,
                           size_t na, int64_t *last_page, int64_t *last_offset)
{
    struct ab_pager p;
    size_t i = 0;

    ab_pager_init(&p, style, 1, limit);
    for (;;) {
        assert_true(i < na); /* asked for a page past the script */
        *last_page = p.page;
        *last_offset = p.offset;
        if (!ab_pager_next(&p, a[i].n, a[i].total, a[i].has_next)) {
            break;
        }
        i++;
    }
    assert_true(p.done);
    return p.pages;
}

static void test_loop_ends(void **state)
{
    static const struct answer empty[] = {{0, -1, -1}};
    static const struct answer short_page[] = {{10, -1, -1}, {10, -1, -1}, {4, -1, -1}};
    static const struct answer exact[] = {{10, -1, -1}, {10, -1, -1}, {0, -1, -1}};
    static const struct answer no_next[] = {{10, 55, 1}, {10, 55, 0}};
    static const struct answer next_empty[] = {{10, -1, 1}, {0, -1, 1}};
    static const struct answer totals[] = {{10, 25, -1}, {10, 25, -1}, {5, 25, -1}};
    static const struct answer no_total[] = {{10, -1, -1}, {3, -1, -1}, {0, -1, -1}};
    int64_t page = 0, offset = 0;

    (void)state;
    /* an empty first page ends every style at once */
    assert_int_equal(pages_asked(AB_PAGE_NUMBER, 10, empty, 1, &page, &offset), 1);
    assert_int_equal(pages_asked(AB_PAGE_OFFSET, 10, empty, 1, &page, &offset), 1);
    assert_int_equal(pages_asked(AB_PAGE_HAS_NEXT, 10, empty, 1, &page, &offset), 1);
    /* page numbers: a short page ends, a full one asks on */
    assert_int_equal(pages_asked(AB_PAGE_NUMBER, 10, short_page, 3, &page, &offset), 3);
    assert_int_equal(page, 3);
    assert_int_equal(pages_asked(AB_PAGE_NUMBER, 10, exact, 3, &page, &offset), 3);
    /* hasNext false ends, whatever the page's size; true with an empty page too */
    assert_int_equal(pages_asked(AB_PAGE_HAS_NEXT, 10, no_next, 2, &page, &offset), 2);
    assert_int_equal(page, 2);
    assert_int_equal(pages_asked(AB_PAGE_HAS_NEXT, 10, next_empty, 2, &page, &offset), 2);
    /* offset/total: the total ends it; without one, a short page does not */
    assert_int_equal(pages_asked(AB_PAGE_OFFSET, 10, totals, 3, &page, &offset), 3);
    assert_int_equal(offset, 20);
    assert_int_equal(pages_asked(AB_PAGE_OFFSET, 10, no_total, 3, &page, &offset), 3);
    assert_int_equal(offset, 13);
}

static void test_windows(void **state)
{
    struct ab_windows w;
    int64_t s, e;

    (void)state;
    ab_windows_init(&w, 0, 250, 100);
    assert_true(ab_windows_next(&w, &s, &e));
    assert_int_equal(s, 0);
    assert_int_equal(e, 100);
    assert_true(ab_windows_next(&w, &s, &e));
    assert_int_equal(s, 100);
    assert_int_equal(e, 200);
    assert_true(ab_windows_next(&w, &s, &e));
    assert_int_equal(s, 200);
    assert_int_equal(e, 250);
    assert_false(ab_windows_next(&w, &s, &e));
    ab_windows_init(&w, 10, 10, 100); /* empty but valid: one window */
    assert_true(ab_windows_next(&w, &s, &e));
    assert_int_equal(e, 10);
    assert_false(ab_windows_next(&w, &s, &e));
    ab_windows_init(&w, 11, 10, 100);
    assert_false(ab_windows_next(&w, &s, &e));
    ab_windows_init(&w, 0, 1000, 0);
    assert_true(ab_windows_next(&w, &s, &e));
    assert_int_equal(e, 1000);
    assert_false(ab_windows_next(&w, &s, &e));
}

static void test_time_parse_forms(void **state)
{
    struct ab_error err;
    int64_t t;

    (void)state;
    ab_error_init(&err);
    assert_int_equal(ab_time_parse("2024-06-01 10:25:02", 0, &t, &err), AB_OK);
    assert_int_equal(t, 1717237502);
    assert_int_equal(ab_time_parse("2024-06-01 07:25:02", -180, &t, &err), AB_OK);
    assert_int_equal(t, 1717237502);
    assert_int_equal(ab_time_parse("2024-06-01T10:25:02Z", -180, &t, &err), AB_OK);
    assert_int_equal(t, 1717237502);
    assert_int_equal(ab_time_parse("2024-06-01T07:25:02.123-03:00", 0, &t, &err), AB_OK);
    assert_int_equal(t, 1717237502);
    assert_int_equal(ab_time_parse("01/06/2024 10:25:02", 0, &t, &err), AB_OK);
    assert_int_equal(t, 1717237502);
    assert_int_equal(ab_time_parse("2024-06-01", 0, &t, &err), AB_OK);
    assert_int_equal(t, 1717200000);
    assert_int_equal(ab_time_parse("1969-12-31 23:59:59", 0, &t, &err), AB_OK);
    assert_int_equal(t, -1);
    const char *bad[] = {
        "2024-02-30", "2024-13-01", "2024-06-01 25:00:00",   "2024-06-01x",
        "yesterday",  "",           "2024-06-01T10:25:02+3", "2024-06-01T10:25:02."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ab_time_parse(bad[i], 0, &t, &err), AB_ERR_PROTOCOL);
    }
    assert_int_equal(ab_time_parse(NULL, 0, &t, &err), AB_ERR_PROTOCOL);
}

static void test_time_format_round_trip(void **state)
{
    struct ab_error err;
    struct ab_buf b;
    int64_t t;

    (void)state;
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_time_format(1717237502, -180, "%Y-%m-%d %H:%M:%S", &b, &err), AB_OK);
    assert_string_equal(b.data, "2024-06-01 07:25:02");
    ab_buf_reset(&b);
    assert_int_equal(ab_time_format(1717237502, -180, "%Y-%m-%dT%H:%M:%S%z", &b, &err), AB_OK);
    assert_string_equal(b.data, "2024-06-01T07:25:02-03:00");
    ab_buf_reset(&b);
    assert_int_equal(ab_time_format(1717237502, 0, "%d/%m/%Y %H:%M:%S 100%%", &b, &err), AB_OK);
    assert_string_equal(b.data, "01/06/2024 10:25:02 100%");
    /* every second of a leap day and the turn of a century round-trips */
    for (int64_t s = 951782400 - 86400; s < 951782400 + 2 * 86400; s += 997) {
        ab_buf_reset(&b);
        assert_int_equal(ab_time_format(s, -180, "%Y-%m-%d %H:%M:%S", &b, &err), AB_OK);
        assert_int_equal(ab_time_parse(b.data, -180, &t, &err), AB_OK);
        assert_int_equal(t, s);
    }
    ab_buf_release(&b);
}

static yajl_val parse(const char *text)
{
    struct ab_error err;
    yajl_val v = ab_json_parse(text, strlen(text), &err);

    assert_non_null(v);
    return v;
}

static void test_json_time(void **state)
{
    static const char *const bad[] = {
        "1717237502", "\"yesterday\"", "\"2024-02-30\"", "null", "\"\"", "{}", "[\"2024-06-01\"]"};
    struct ab_error err;
    int64_t t = 7;
    yajl_val v;

    (void)state;
    ab_error_init(&err);
    v = parse("[\"2024-06-01T10:25:02Z\",\"2024-06-01T07:25:02-03:00\",\"2024-06-01 10:25:02\"]");
    for (size_t i = 0; i < v->u.array.len; i++) {
        t = 0;
        assert_int_equal(ab_json_time(v->u.array.values[i], "cursor", &t, &err), AB_OK);
        assert_int_equal(t, 1717237502); /* UTC unless the text has its own offset */
    }
    ab_json_free(v);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = parse(bad[i]);
        ab_error_init(&err);
        assert_int_equal(ab_json_time(v, "resume.end", &t, &err), AB_ERR_CONFIG);
        assert_non_null(strstr(err.message, "\"resume.end\" must be a date-time text"));
        ab_json_free(v);
    }
    ab_error_init(&err);
    assert_int_equal(ab_json_time(NULL, "cursor", &t, &err), AB_ERR_CONFIG);
    assert_non_null(strstr(err.message, "\"cursor\""));
}

static const struct ab_resume_keys page_keys = {"start", "page", 1};
static const struct ab_resume_keys offset_keys = {"since", "offset", 0};

/* text parses and writes back byte for byte */
static void resume_round_trip(const struct ab_resume_keys *k, const char *text)
{
    struct ab_resume_state st;
    struct ab_error err;
    struct ab_buf b;
    yajl_val v = parse(text);

    ab_error_init(&err);
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_resume_state_parse(v, k, &st, &err), AB_OK);
    assert_int_equal(ab_resume_state_write(&st, k, &b, &err), AB_OK);
    assert_string_equal(b.data, text);
    ab_buf_release(&b);
    ab_json_free(v);
}

static void test_resume_state(void **state)
{
    struct ab_resume_state st;
    struct ab_error err;
    yajl_val v;

    (void)state;
    ab_error_init(&err);
    /* no state: nothing read yet, at its first position */
    assert_int_equal(ab_resume_state_parse(NULL, &page_keys, &st, &err), AB_OK);
    assert_int_equal(st.cursor, -1);
    assert_false(st.resume);
    assert_int_equal(st.at, 1);
    assert_int_equal(ab_resume_state_parse(NULL, &offset_keys, &st, &err), AB_OK);
    assert_int_equal(st.at, 0);
    /* mid-pass with its filter, the names the source chose */
    v = parse("{\"cursor\":\"2026-12-01T10:00:00Z\",\"resume\":{\"since\":\"2026-11-30T10:00:00Z\","
              "\"end\":\"2026-12-02T10:00:00Z\",\"offset\":200}}");
    assert_int_equal(ab_resume_state_parse(v, &offset_keys, &st, &err), AB_OK);
    assert_true(st.resume);
    assert_int_equal(st.cursor, 1796119200);
    assert_int_equal(st.from, 1796119200 - 86400);
    assert_int_equal(st.end, 1796119200 + 86400);
    assert_int_equal(st.at, 200);
    ab_json_free(v);
    /* a null from: a filter without a lower bound */
    v = parse("{\"resume\":{\"start\":null,\"end\":\"2026-12-01T10:00:00Z\",\"page\":3}}");
    assert_int_equal(ab_resume_state_parse(v, &page_keys, &st, &err), AB_OK);
    assert_int_equal(st.from, -1);
    assert_int_equal(st.end, 1796119200);
    assert_int_equal(st.at, 3);
    ab_json_free(v);
    resume_round_trip(&page_keys, "{}");
    resume_round_trip(&page_keys, "{\"cursor\":\"2026-12-01T10:00:00Z\"}");
    resume_round_trip(&page_keys, "{\"resume\":{\"page\":4}}");
    resume_round_trip(&page_keys, "{\"cursor\":\"2026-12-01T10:00:00Z\",\"resume\":{\"start\":"
                                  "\"2026-11-30T10:00:00Z\",\"end\":\"2026-12-01T10:00:00Z\","
                                  "\"page\":2}}");
    resume_round_trip(&offset_keys, "{\"resume\":{\"since\":null,\"end\":\"2026-12-01T10:00:00Z\","
                                    "\"offset\":0}}");
}

static void test_resume_state_refused(void **state)
{
    static const struct {
        const char *text, *says;
    } bad[] = {
        {"[]", "the state must be an object"},
        {"{\"cursor\":17}", "\"cursor\" must be a date-time"},
        {"{\"cursor\":\"soon\"}", "\"cursor\" must be a date-time"},
        {"{\"resume\":true}", "\"resume\" must be an object with a \"page\" >= 1"},
        {"{\"resume\":{}}", "\"resume\" must be an object with a \"page\" >= 1"},
        {"{\"resume\":{\"page\":0}}", "\"resume\" must be an object with a \"page\" >= 1"},
        {"{\"resume\":{\"page\":1.5}}", "\"resume\" must be an object with a \"page\" >= 1"},
        {"{\"resume\":{\"page\":2,\"start\":\"x\",\"end\":\"2026-12-01T10:00:00Z\"}}",
         "\"resume.start\" must be a date-time"},
        {"{\"resume\":{\"page\":2,\"end\":null}}", "\"resume.end\" must be a date-time"},
        {"{\"resume\":{\"page\":2,\"start\":\"2026-12-01T10:00:00Z\"}}",
         "\"resume\" has a \"start\" and no \"end\""},
    };
    struct ab_resume_state st;
    struct ab_error err;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        yajl_val v = parse(bad[i].text);

        ab_error_init(&err);
        assert_int_equal(ab_resume_state_parse(v, &page_keys, &st, &err), AB_ERR_CONFIG);
        if (!strstr(err.message, bad[i].says)) {
            fail_msg("%s: '%s' does not say '%s'", bad[i].text, err.message, bad[i].says);
        }
        ab_json_free(v);
    }
    {
        yajl_val v = parse("{\"resume\":{\"offset\":-1}}");

        assert_int_equal(ab_resume_state_parse(v, &offset_keys, &st, &err), AB_ERR_CONFIG);
        assert_non_null(strstr(err.message, "\"offset\" >= 0"));
        ab_json_free(v);
    }
}

static void test_form_encoding(void **state)
{
    struct ab_error err;
    struct ab_buf b;

    (void)state;
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_form_add(&b, "grant_type", "refresh_token", &err), AB_OK);
    assert_int_equal(ab_form_add(&b, "idsProdutos[]", "a b&c=d/é", &err), AB_OK);
    assert_string_equal(b.data, "grant_type=refresh_token&idsProdutos%5B%5D=a+b%26c%3Dd%2F%C3%A9");
    ab_buf_release(&b);
}

static void test_status_mapping(void **state)
{
    struct ab_error err;

    (void)state;
    ab_error_init(&err);
    assert_int_equal(ab_http_status_error(401, false, "GET /x", "invalid_token", &err),
                     AB_ERR_CONFIG);
    assert_non_null(strstr(err.message, "GET /x: HTTP 401"));
    assert_non_null(strstr(err.message, "invalid_token"));
    assert_int_equal(ab_http_status_error(403, false, "GET /x", NULL, &err), AB_ERR_CONFIG);
    assert_int_equal(ab_http_status_error(404, false, "GET /x", NULL, &err), AB_ERR_CONFIG);
    assert_int_equal(ab_http_status_error(429, true, "GET /x", NULL, &err), AB_ERR_TRANSIENT);
    assert_int_equal(ab_http_status_error(503, true, "GET /x", NULL, &err), AB_ERR_TRANSIENT);
    assert_int_equal(ab_http_status_error(200, true, "GET /x", "slow down", &err),
                     AB_ERR_TRANSIENT);
    assert_int_equal(ab_http_status_error(400, false, "GET /x", "bad", &err), AB_ERR_PROTOCOL);
    assert_string_equal(ab_status_failure_type(AB_ERR_PROTOCOL), "system_error");
}

/* A test API's error envelope: {"error": "..."}. */
static const char *error_of(yajl_val body, char *out, size_t size)
{
    (void)snprintf(out, size, "%s", ab_json_get_str(body, "error", ""));
    return out;
}

static void test_fetch_json(void **state)
{
    struct ab_fetch f;
    struct ab_error err;
    yajl_val body = NULL;

    (void)state;
    ab_error_init(&err);
    ab_fetch_init(&f, NULL, NULL, 1024);
    /* 200 with JSON: the body */
    f.status = 200;
    assert_int_equal(ab_buf_adds(&f.body, "{\"items\":[1]}", &err), AB_OK);
    assert_int_equal(ab_fetch_json(&f, "GET /x", error_of, &body, &err), AB_OK);
    assert_non_null(ab_json_get(body, "items"));
    ab_json_free(body);
    /* 200 that is not JSON: a protocol failure naming what */
    ab_buf_reset(&f.body);
    assert_int_equal(ab_buf_adds(&f.body, "<html>", &err), AB_OK);
    assert_int_equal(ab_fetch_json(&f, "GET /x", error_of, &body, &err), AB_ERR_PROTOCOL);
    assert_null(body);
    assert_non_null(strstr(err.message, "GET /x: the answer is not JSON"));
    /* an error status: the mapping, with the API's own message */
    f.status = 401;
    ab_buf_reset(&f.body);
    assert_int_equal(ab_buf_adds(&f.body, "{\"error\":\"token expired\"}", &err), AB_OK);
    assert_int_equal(ab_fetch_json(&f, "GET /x", error_of, &body, &err), AB_ERR_CONFIG);
    assert_null(body);
    assert_non_null(strstr(err.message, "GET /x: HTTP 401"));
    assert_non_null(strstr(err.message, "token expired"));
    /* an error body that is not JSON, or no detail function: no detail */
    f.status = 400;
    ab_buf_reset(&f.body);
    assert_int_equal(ab_buf_adds(&f.body, "oops", &err), AB_OK);
    assert_int_equal(ab_fetch_json(&f, "GET /x", error_of, &body, &err), AB_ERR_PROTOCOL);
    assert_null(strstr(err.message, "oops"));
    assert_int_equal(ab_fetch_json(&f, "GET /x", NULL, &body, &err), AB_ERR_PROTOCOL);
    /* no answer at all */
    f.status = 0;
    f.transient = true;
    f.attempts = 3;
    (void)snprintf(f.error, sizeof(f.error), "connection reset");
    assert_int_equal(ab_fetch_json(&f, "GET /x", error_of, &body, &err), AB_ERR_TRANSIENT);
    assert_non_null(strstr(err.message, "connection reset"));
    ab_fetch_release(&f);
}

static void test_config_with(void **state)
{
    const char *text = "{\"a\":1,\"credentials\":{\"refresh_token\":\"old\",\"x\":[true]}}";
    struct ab_error err;
    struct ab_buf b;
    yajl_val v = ab_json_parse(text, strlen(text), &err);

    (void)state;
    assert_non_null(v);
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_config_with(v, "credentials.refresh_token", "new\"one", &b, &err), AB_OK);
    assert_string_equal(
        b.data, "{\"a\":1,\"credentials\":{\"refresh_token\":\"new\\\"one\",\"x\":[true]}}");
    assert_int_equal(ab_config_with(v, "a", "x", &b, &err), AB_ERR_INTERNAL);
    assert_int_equal(ab_config_with(v, "nope", "x", &b, &err), AB_ERR_INTERNAL);
    /* the original is untouched */
    assert_string_equal(ab_json_get_str(ab_json_get(v, "credentials"), "refresh_token", ""), "old");
    ab_buf_release(&b);
    ab_json_free(v);
}

/* The RFC 3339 check both destinations apply before sending: each row is
 * one side of a rule. */
static void test_rfc3339_valid(void **state)
{
    static const char *const good[] = {
        "2026-01-01T00:00:00Z",
        "2026-01-01t00:00:00z",
        "2024-02-29T23:59:59+14:00",
        "2026-12-31T10:00:00.1Z",
        "2026-12-31T10:00:00.123456789-03:00",
        "0001-01-01T00:00:00Z",
        "2000-02-29T00:00:00Z",
    };
    static const char *const bad[] = {
        "",
        "2026-01-01",
        "2026-01-01 00:00:00Z",
        "2026-01-01T00:00Z",
        "2026-01-01T00:00:00",
        "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:60Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:60:00Z",
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2025-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00+03:60",
        "2026-01-01T00:00:00+0300",
        "2026-01-01T00:00:00ZZ",
        "2026-01-01T00:00:00 Z",
        "２026-01-01T00:00:00Z",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!ab_rfc3339_valid(good[i])) {
            fail_msg("refused: %s", good[i]);
        }
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ab_rfc3339_valid(bad[i])) {
            fail_msg("accepted: %s", bad[i]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_number_ends_on_short_or_empty_page),
        cmocka_unit_test(test_offset_ends_at_total),
        cmocka_unit_test(test_has_next),
        cmocka_unit_test(test_rfc3339_valid),
        cmocka_unit_test(test_loop_ends),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_time_parse_forms),
        cmocka_unit_test(test_time_format_round_trip),
        cmocka_unit_test(test_json_time),
        cmocka_unit_test(test_resume_state),
        cmocka_unit_test(test_resume_state_refused),
        cmocka_unit_test(test_form_encoding),
        cmocka_unit_test(test_status_mapping),
        cmocka_unit_test(test_fetch_json),
        cmocka_unit_test(test_config_with),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
