/* test_emitter.c - exact message lines, masking, level filter, sticky errors. */
/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>
#include <unistd.h>

#include "ab/buf.h"
#include "ab/emitter.h"
#include "ab/json.h"
#include "ab/log.h"
#include "ab/protocol.h"

#include "ab_golden.h"
#include "ab_test.h"

static int64_t fixed_clock(void)
{
    return 1735689600123;
}

/* An emitter on an open_memstream buffer. */
struct mem_out {
    char *data;
    size_t size;
    FILE *f;
    struct ab_emitter *em;
};

static void mem_open(struct mem_out *m)
{
    struct ab_error err = {0};

    m->data = NULL;
    m->size = 0;
    m->f = open_memstream(&m->data, &m->size);
    assert_non_null(m->f);
    m->em = ab_emitter_new(m->f, fixed_clock, &err);
    assert_non_null(m->em);
}

/* Flushes and returns the text written so far (owned by m). */
static const char *mem_text(struct mem_out *m)
{
    assert_int_equal(fflush(m->f), 0);
    return m->data ? m->data : "";
}

static void mem_close(struct mem_out *m)
{
    ab_emitter_free(m->em);
    assert_int_equal(fclose(m->f), 0);
    free(m->data);
}

static void test_messages_golden(void **state)
{
    static const char spec[] = "{\n  \"documentationUrl\": \"https://example.com/docs\",\n"
                               "  \"connectionSpecification\": {\"type\": \"object\",\n"
                               "    \"properties\": {\"port\": {\"type\": \"integer\", "
                               "\"maximum\": 65535, \"default\": 1e300}}},\n"
                               "  \"supported_destination_sync_modes\": [\"append\"],\n"
                               "  \"big\": 123456789012345678901234567890\n}\n";
    static const char members[] =
        "\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"users\","
        "\"namespace\":\"public\"},\"stream_state\":{\"cursor\":2}},\"sourceStats\":{"
        "\"recordCount\":2.0},\"id\":17";
    struct mem_out m;
    struct ab_error err;

    (void)state;
    mem_open(&m);
    assert_int_equal(ab_emitter_log(m.em, AB_LOG_INFO, "Starting write: %d stream(s)", 1), AB_OK);
    assert_int_equal(ab_emitter_log(m.em, AB_LOG_DEBUG, "filtered out"), AB_OK);
    assert_int_equal(ab_emitter_log(m.em, AB_LOG_WARN,
                                    "quote \" backslash \\ nl \n tab \t cr \r bell \a %s",
                                    "caf\xc3\xa9 \xe2\x82\xac"),
                     AB_OK);
    assert_int_equal(ab_emitter_log(m.em, AB_LOG_ERROR, "bad bytes \xff\xc3( end"), AB_OK);
    assert_int_equal(ab_emitter_log(m.em, AB_LOG_FATAL, "fatal %s", "x"), AB_OK);

    ab_error_init(&err);
    (void)ab_error_set(&err, AB_ERR_CONFIG, "cannot write to schema \"public\": permission denied");
    (void)ab_error_internal(&err, "ERROR: permission denied (SQLSTATE 42501)");
    assert_int_equal(ab_emitter_trace_error(m.em, &err, "users", "public"), AB_OK);
    (void)ab_error_set(&err, AB_ERR_TRANSIENT, "the API kept returning 503");
    assert_int_equal(ab_emitter_trace_error(m.em, &err, "events", NULL), AB_OK);
    (void)ab_error_set(&err, AB_ERR_IO, "cannot write");
    assert_int_equal(ab_emitter_trace_error(m.em, &err, NULL, NULL), AB_OK);
    ab_error_init(&err);
    assert_int_equal(ab_emitter_trace_error(m.em, &err, NULL, NULL), AB_OK);
    assert_int_equal(ab_emitter_trace_error(m.em, NULL, NULL, NULL), AB_OK);

    assert_int_equal(ab_emitter_spec(m.em, spec), AB_OK);
    assert_int_equal(ab_emitter_connection_status(m.em, true, NULL), AB_OK);
    assert_int_equal(
        ab_emitter_connection_status(m.em, false, "Could not connect: password for \"airbyte\""),
        AB_OK);
    assert_int_equal(ab_emitter_state(m.em, members, strlen(members), 2, 0), AB_OK);
    assert_int_equal(
        ab_emitter_state(m.em, "\"type\":\"GLOBAL\",\"global\":{},\"id\":18", 35, 97, 3), AB_OK);
    assert_int_equal(ab_emitter_state(m.em, NULL, 0, 0, 0), AB_OK);
    assert_int_equal(ab_emitter_raw(m.em, "{\"type\":\"TRACE\",\"x\":1}", 22, false), AB_OK);
    assert_int_equal(ab_emitter_flush(m.em), AB_OK);
    ab_test_check_golden("emitter/messages.golden", mem_text(&m));
    mem_close(&m);
}

/* Every line written is one valid JSON object. */
static void assert_lines_parse(const char *text)
{
    const char *p = text;

    while (*p) {
        const char *nl = strchr(p, '\n');
        char *line;
        struct ab_error err = {0};
        yajl_val v;

        assert_non_null(nl);
        line = strndup(p, (size_t)(nl - p));
        assert_non_null(line);
        v = ab_json_parse(line, strlen(line), &err);
        if (!v) {
            fail_msg("not JSON: %s (%s)", line, err.message);
            free(line);
            return;
        }
        assert_int_equal(v->type, yajl_t_object);
        yajl_tree_free(v);
        free(line);
        p = nl + 1;
    }
}

static void test_golden_lines_are_json(void **state)
{
    char path[1024];
    char *text;

    (void)state;
    (void)snprintf(path, sizeof(path), "%s/%s", AB_TEST_DATA_DIR, "emitter/messages.golden");
    text = ab_test_read_file(path, NULL);
    assert_non_null(text);
    assert_lines_parse(text);
    free(text);
}

static void test_secrets_masked(void **state)
{
    struct mem_out m;
    struct ab_error err;
    const char *out;

    (void)state;
    mem_open(&m);
    assert_int_equal(ab_emitter_add_secret(m.em, "hunter2"), AB_OK);
    assert_int_equal(ab_emitter_add_secret(m.em, "pa\"ss\\w0rd"), AB_OK);
    assert_int_equal(ab_emitter_add_secret(m.em, "abc"), AB_OK); /* too short: ignored */
    assert_int_equal(ab_emitter_add_secret(m.em, "hunter2"), AB_OK);
    assert_int_equal(ab_emitter_add_secret(m.em, NULL), AB_OK);
    assert_int_equal(ab_emitter_log(m.em, AB_LOG_INFO,
                                    "password=%s and %s and body {\"p\":\"pa\\\"ss\\\\w0rd\"} abc",
                                    "hunter2", "pa\"ss\\w0rd"),
                     AB_OK);
    ab_error_init(&err);
    (void)ab_error_set(&err, AB_ERR_CONFIG, "login failed for token hunter2hunter2");
    (void)ab_error_internal(&err,
                            "POST /login {\"password\":\"pa\\\"ss\\\\w0rd\"} raw pa\"ss\\w0rd");
    assert_int_equal(ab_emitter_trace_error(m.em, &err, NULL, NULL), AB_OK);
    assert_int_equal(ab_emitter_connection_status(m.em, false, "bad password hunter2"), AB_OK);
    out = mem_text(&m);
    assert_null(strstr(out, "hunter2"));
    assert_null(strstr(out, "w0rd"));
    assert_null(strstr(out, "pa\\\"ss"));
    assert_non_null(strstr(out, "abc"));
    assert_string_equal(
        out, "{\"type\":\"LOG\",\"log\":{\"level\":\"INFO\",\"message\":\"password=********** "
             "and ********** and body {\\\"p\\\":\\\"**********\\\"} abc\"}}\n"
             "{\"type\":\"TRACE\",\"trace\":{\"type\":\"ERROR\",\"emitted_at\":1735689600123.0,"
             "\"error\":{\"message\":\"login failed for token ********************\","
             "\"internal_message\":\"POST /login {\\\"password\\\":\\\"**********\\\"} raw "
             "**********\",\"failure_type\":\"config_error\"}}}\n"
             "{\"type\":\"CONNECTION_STATUS\",\"connectionStatus\":{\"status\":\"FAILED\","
             "\"message\":\"bad password **********\"}}\n");
    assert_lines_parse(out);
    mem_close(&m);
}

static void test_longer_secret_wins(void **state)
{
    struct mem_out m;
    char buf[64];

    (void)state;
    mem_open(&m);
    assert_int_equal(ab_emitter_add_secret(m.em, "secret"), AB_OK);
    assert_int_equal(ab_emitter_add_secret(m.em, "secret-tail"), AB_OK);
    ab_emitter_mask(m.em, "x secret-tail y secret z", buf, sizeof(buf));
    assert_string_equal(buf, "x ********** y ********** z");
    mem_close(&m);
}

static void test_mask_capped(void **state)
{
    struct mem_out m;
    char buf[8];
    char one[1];

    (void)state;
    mem_open(&m);
    assert_int_equal(ab_emitter_add_secret(m.em, "topsecret"), AB_OK);
    ab_emitter_mask(m.em, "topsecret!", buf, sizeof(buf));
    assert_string_equal(buf, "*******");
    ab_emitter_mask(m.em, "abc\xc3\xa9\xc3\xa9", buf, 7);
    /* never cuts a UTF-8 sequence: 6 bytes would split the second e-acute */
    assert_string_equal(buf, "abc\xc3\xa9");
    ab_emitter_mask(m.em, "a\xc3\xa9\xc3\xa9", buf, 5);
    assert_string_equal(buf, "a\xc3\xa9");
    one[0] = 'q';
    ab_emitter_mask(m.em, "anything", one, sizeof(one));
    assert_int_equal(one[0], '\0');
    ab_emitter_mask(m.em, "anything", NULL, 0);
    ab_emitter_mask(NULL, "no emitter", buf, sizeof(buf));
    assert_string_equal(buf, "no emit");
    mem_close(&m);
}

static int evaluated;

static const char *count_eval(void)
{
    evaluated++;
    return "x";
}

static void test_level_filter(void **state)
{
    struct mem_out m;

    (void)state;
    mem_open(&m);
    assert_true(ab_emitter_enabled(m.em, AB_LOG_INFO));
    assert_false(ab_emitter_enabled(m.em, AB_LOG_DEBUG));
    assert_false(ab_emitter_enabled(NULL, AB_LOG_FATAL));
    ab_emitter_set_level(m.em, AB_LOG_WARN);
    evaluated = 0;
    AB_INFO(m.em, "info %s", count_eval());
    AB_DEBUG(m.em, "debug %s", count_eval());
    assert_int_equal(evaluated, 0);
    AB_WARN(m.em, "warn %s", count_eval());
    AB_ERROR(m.em, "error %s", count_eval());
    assert_int_equal(evaluated, 2);
    assert_int_equal(ab_emitter_log(m.em, AB_LOG_INFO, "direct info"), AB_OK);
    ab_emitter_set_level(m.em, AB_LOG_TRACE);
    assert_int_equal(ab_emitter_log(m.em, AB_LOG_TRACE, "trace"), AB_OK);
    assert_string_equal(mem_text(&m),
                        "{\"type\":\"LOG\",\"log\":{\"level\":\"WARN\",\"message\":\"warn x\"}}\n"
                        "{\"type\":\"LOG\",\"log\":{\"level\":\"ERROR\",\"message\":\"error x\"}}\n"
                        "{\"type\":\"LOG\",\"log\":{\"level\":\"TRACE\",\"message\":\"trace\"}}\n");
    mem_close(&m);
}

static void test_long_log_truncated(void **state)
{
    size_t n = (size_t)100 * 1024;
    char *big = malloc(n + 1);
    struct mem_out m;
    const char *out;
    const char *msg;

    (void)state;
    assert_non_null(big);
    memset(big, 'a', n);
    big[n] = '\0';
    /* a secret straddling the 64 KiB cut is masked before the cut */
    memcpy(big + (size_t)64 * 1024 - 3, "longsecret", 10);
    mem_open(&m);
    assert_int_equal(ab_emitter_add_secret(m.em, "longsecret"), AB_OK);
    assert_int_equal(ab_emitter_log(m.em, AB_LOG_INFO, "%s", big), AB_OK);
    out = mem_text(&m);
    assert_null(strstr(out, "long"));
    assert_non_null(strstr(out, "*** ... [truncated, 102400 bytes in all]\"}}\n"));
    msg = strstr(out, "\"message\":\"");
    assert_non_null(msg);
    /* 64 KiB of message, the marker and the closing */
    assert_true(strlen(msg) < 64 * 1024 + 100);
    assert_lines_parse(out);
    mem_close(&m);
    free(big);
}

static void test_medium_log_not_truncated(void **state)
{
    size_t n = 5000;
    char *big = malloc(n + 1);
    struct mem_out m;
    const char *out;

    (void)state;
    assert_non_null(big);
    memset(big, 'b', n);
    big[n] = '\0';
    mem_open(&m);
    assert_int_equal(ab_emitter_log(m.em, AB_LOG_INFO, "<%s>", big), AB_OK);
    out = mem_text(&m);
    assert_int_equal(strlen(out), strlen("{\"type\":\"LOG\",\"log\":{\"level\":\"INFO\","
                                         "\"message\":\"<>\"}}\n") +
                                      n);
    assert_null(strstr(out, "truncated"));
    mem_close(&m);
    free(big);
}

static void test_state_keeps_integer_id(void **state)
{
    static const char in[] =
        "{\"type\":\"STATE\",\"state\":{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{"
        "\"name\":\"users\",\"namespace\":\"public\"},\"stream_state\":{\"cursor\":"
        "123456789012345678901234567890}},\"sourceStats\":{\"recordCount\":2.0},"
        "\"destinationStats\":{\"recordCount\":99.0},\"id\":17}}";
    struct mem_out m;
    struct ab_msg msg;
    struct ab_error err = {0};
    struct ab_buf members;

    (void)state;
    assert_int_equal(ab_msg_parse(&msg, in, strlen(in), &err), AB_OK);
    ab_buf_init(&members, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_proto_state_members(&members, msg.state, &err), AB_OK);
    mem_open(&m);
    assert_int_equal(ab_emitter_state(m.em, members.data, members.len, 2, 0), AB_OK);
    assert_string_equal(
        mem_text(&m),
        "{\"type\":\"STATE\",\"state\":{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{"
        "\"name\":\"users\",\"namespace\":\"public\"},\"stream_state\":{\"cursor\":"
        "123456789012345678901234567890}},\"sourceStats\":{\"recordCount\":2.0},\"id\":17,"
        "\"destinationStats\":{\"recordCount\":2.0,\"rejectedRecordCount\":0.0}}}\n");
    mem_close(&m);
    ab_buf_release(&members);
    ab_msg_release(&msg);
}

static void test_trace_real_clock(void **state)
{
    char *data = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&data, &size);
    struct ab_error err = {0};
    struct ab_emitter *em;
    const char *p;
    long long ms;

    (void)state;
    assert_non_null(f);
    em = ab_emitter_new(f, NULL, &err);
    assert_non_null(em);
    (void)ab_error_set(&err, AB_ERR_INTERNAL, "boom");
    assert_int_equal(ab_emitter_trace_error(em, &err, NULL, NULL), AB_OK);
    /* trace flushes by itself */
    p = strstr(data, "\"emitted_at\":");
    assert_non_null(p);
    ms = strtoll(p + 13, NULL, 10);
    assert_true(ms > 1600000000000LL);
    assert_non_null(strstr(p, ".0,\"error\":{\"message\":\"boom\","
                              "\"failure_type\":\"system_error\"}}}\n"));
    ab_emitter_free(em);
    assert_int_equal(fclose(f), 0);
    free(data);
}

static void test_bad_spec(void **state)
{
    struct mem_out m;

    (void)state;
    mem_open(&m);
    assert_int_equal(ab_emitter_spec(m.em, "{\"a\":"), AB_ERR_INTERNAL);
    assert_int_equal(ab_emitter_spec(m.em, "[1]"), AB_ERR_INTERNAL);
    assert_int_equal(ab_emitter_spec(m.em, NULL), AB_ERR_INTERNAL);
    /* not sticky: nothing failed on the channel */
    assert_int_equal(ab_emitter_spec(m.em, "{}"), AB_OK);
    assert_non_null(strstr(mem_text(&m), "{\"type\":\"SPEC\",\"spec\":{}}\n"));
    assert_non_null(strstr(mem_text(&m), "\"level\":\"ERROR\",\"message\":\"the connector's spec "
                                         "is not a JSON object: invalid JSON"));
    mem_close(&m);
}

/* Every call after the first failed write returns it without writing. */
static void assert_sticky(struct ab_emitter *em)
{
    assert_int_equal(ab_emitter_log(em, AB_LOG_ERROR, "again"), AB_ERR_IO);
    assert_int_equal(ab_emitter_state(em, "\"id\":1", 6, 1, 0), AB_ERR_IO);
    assert_int_equal(ab_emitter_trace_error(em, NULL, NULL, NULL), AB_ERR_IO);
    assert_int_equal(ab_emitter_spec(em, "{}"), AB_ERR_IO);
    assert_int_equal(ab_emitter_connection_status(em, true, NULL), AB_ERR_IO);
    assert_int_equal(ab_emitter_raw(em, "{}", 2, true), AB_ERR_IO);
    assert_int_equal(ab_emitter_flush(em), AB_ERR_IO);
}

static void test_sticky_error_read_only_stream(void **state)
{
    FILE *f = fopen("/dev/null", "r");
    struct ab_error err = {0};
    struct ab_emitter *em;

    (void)state;
    assert_non_null(f);
    em = ab_emitter_new(f, fixed_clock, &err);
    assert_non_null(em);
    assert_int_equal(ab_emitter_log(em, AB_LOG_INFO, "first"), AB_ERR_IO);
    assert_sticky(em);
    ab_emitter_free(em);
    (void)fclose(f);
}

static void test_sticky_error_flush_fails(void **state)
{
    FILE *f = fopen("/dev/full", "w");
    struct ab_error err = {0};
    struct ab_emitter *em;

    (void)state;
    if (!f) {
        skip();
    }
    em = ab_emitter_new(f, fixed_clock, &err);
    assert_non_null(em);
    /* a DEBUG line is buffered: the LOG itself succeeds, the STATE's flush
     * fails (INFO and above are flushed at once) */
    ab_emitter_set_level(em, AB_LOG_DEBUG);
    assert_int_equal(ab_emitter_log(em, AB_LOG_DEBUG, "buffered"), AB_OK);
    assert_int_equal(ab_emitter_state(em, "\"id\":1", 6, 1, 0), AB_ERR_IO);
    assert_sticky(em);
    ab_emitter_free(em);
    (void)fclose(f);
}

static void test_info_log_flushed_at_once(void **state)
{
    FILE *f = fopen("/dev/full", "w");
    struct ab_error err = {0};
    struct ab_emitter *em;

    (void)state;
    if (!f) {
        skip();
    }
    em = ab_emitter_new(f, fixed_clock, &err);
    assert_non_null(em);
    /* the flush of an INFO line reaches the device and fails there */
    assert_int_equal(ab_emitter_log(em, AB_LOG_INFO, "now"), AB_ERR_IO);
    assert_sticky(em);
    ab_emitter_free(em);
    (void)fclose(f);
}

static void test_sticky_error_broken_pipe(void **state)
{
    int fds[2];
    FILE *f;
    struct ab_error err = {0};
    struct ab_emitter *em;
    void (*old)(int);

    (void)state;
    old = signal(SIGPIPE, SIG_IGN);
    assert_int_equal(pipe(fds), 0);
    (void)close(fds[0]);
    f = fdopen(fds[1], "w");
    assert_non_null(f);
    em = ab_emitter_new(f, fixed_clock, &err);
    assert_non_null(em);
    assert_int_equal(ab_emitter_connection_status(em, true, NULL), AB_ERR_IO);
    assert_sticky(em);
    ab_emitter_free(em);
    (void)fclose(f);
    (void)signal(SIGPIPE, old);
}

static void test_new_without_stream(void **state)
{
    struct ab_error err = {0};

    (void)state;
    assert_null(ab_emitter_new(NULL, NULL, &err));
    assert_int_equal(err.code, AB_ERR_INTERNAL);
    ab_emitter_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages_golden),
        cmocka_unit_test(test_golden_lines_are_json),
        cmocka_unit_test(test_secrets_masked),
        cmocka_unit_test(test_longer_secret_wins),
        cmocka_unit_test(test_mask_capped),
        cmocka_unit_test(test_level_filter),
        cmocka_unit_test(test_long_log_truncated),
        cmocka_unit_test(test_medium_log_not_truncated),
        cmocka_unit_test(test_state_keeps_integer_id),
        cmocka_unit_test(test_trace_real_clock),
        cmocka_unit_test(test_bad_spec),
        cmocka_unit_test(test_sticky_error_read_only_stream),
        cmocka_unit_test(test_sticky_error_flush_fails),
        cmocka_unit_test(test_info_log_flushed_at_once),
        cmocka_unit_test(test_sticky_error_broken_pipe),
        cmocka_unit_test(test_new_without_stream),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
