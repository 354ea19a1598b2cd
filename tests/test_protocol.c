/* test_protocol.c - message parsing table (golden) and STATE member echoes. */
/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/buf.h"
#include "ab/json.h"
#include "ab/protocol.h"

#include "ab_golden.h"
#include "ab_test.h"

static const char *type_label(enum ab_msg_type t)
{
    switch (t) {
    case AB_MSG_UNKNOWN:
        return "UNKNOWN";
    case AB_MSG_RECORD:
        return "RECORD";
    case AB_MSG_STATE:
        return "STATE";
    case AB_MSG_TRACE:
        return "TRACE";
    case AB_MSG_LOG:
        return "LOG";
    case AB_MSG_CONTROL:
        return "CONTROL";
    case AB_MSG_OTHER:
        return "OTHER";
    }
    return "?";
}

static const char *state_label(enum ab_state_type t)
{
    switch (t) {
    case AB_STATE_STREAM:
        return "STREAM";
    case AB_STATE_GLOBAL:
        return "GLOBAL";
    case AB_STATE_LEGACY:
        return "LEGACY";
    }
    return "?";
}

/* One summary line for a parsed message (or its error). */
static void summarize(struct ab_buf *out, const char *line, size_t len)
{
    struct ab_msg msg;
    struct ab_error err = {0};
    enum ab_status rc;

    rc = ab_msg_parse(&msg, line, len, &err);
    if (rc == AB_ERR_REJECTED) {
        /* a RECORD failing the intake: its stream is known, the rest is not */
        assert_true(msg.invalid);
        assert_int_equal(msg.type, AB_MSG_RECORD);
        assert_non_null(msg.stream);
        assert_int_equal(ab_buf_printf(out, NULL, "rejected: stream=%s ns=%s field=%s: %s\n",
                                       msg.stream, msg.ns ? msg.ns : "-", msg.invalid_field,
                                       err.message),
                         AB_OK);
        ab_msg_release(&msg);
        assert_null(msg.root);
        return;
    }
    if (rc != AB_OK) {
        assert_int_equal(rc, AB_ERR_PROTOCOL);
        assert_int_equal(err.code, AB_ERR_PROTOCOL);
        /* a failed parse leaves nothing to release */
        assert_null(msg.root);
        assert_int_equal(msg.type, AB_MSG_UNKNOWN);
        assert_int_equal(ab_buf_printf(out, NULL, "error: %s\n", err.message), AB_OK);
        return;
    }
    assert_non_null(msg.root);
    assert_non_null(msg.type_name);
    assert_int_equal(ab_buf_printf(out, NULL, "%s type=%s", type_label(msg.type), msg.type_name),
                     AB_OK);
    switch (msg.type) {
    case AB_MSG_RECORD:
        assert_non_null(msg.data);
        assert_int_equal(msg.data->type, yajl_t_object);
        assert_int_equal(ab_buf_printf(out, NULL, " stream=%s ns=%s emitted_at=%" PRId64 " data=",
                                       msg.stream, msg.ns ? msg.ns : "-", msg.emitted_at),
                         AB_OK);
        assert_int_equal(ab_json_write(out, msg.data, NULL), AB_OK);
        break;
    case AB_MSG_STATE:
        assert_non_null(msg.state);
        assert_int_equal(ab_buf_printf(out, NULL,
                                       " state_type=%s stream=%s ns=%s source_count=%g"
                                       " members=",
                                       state_label(msg.state_type), msg.stream ? msg.stream : "-",
                                       msg.ns ? msg.ns : "-", msg.source_count),
                         AB_OK);
        assert_int_equal(ab_proto_state_members(out, msg.state, NULL), AB_OK);
        break;
    case AB_MSG_TRACE:
        assert_int_equal(ab_buf_printf(out, NULL, " trace_type=%s stream=%s ns=%s status=%s",
                                       msg.trace_type ? msg.trace_type : "-",
                                       msg.stream ? msg.stream : "-", msg.ns ? msg.ns : "-",
                                       ab_stream_status_name(msg.status)),
                         AB_OK);
        break;
    case AB_MSG_UNKNOWN:
    case AB_MSG_LOG:
    case AB_MSG_CONTROL:
    case AB_MSG_OTHER:
        assert_null(msg.stream);
        assert_null(msg.data);
        assert_null(msg.state);
        break;
    }
    assert_int_equal(ab_buf_addc(out, '\n', NULL), AB_OK);
    ab_msg_release(&msg);
    assert_null(msg.root);
    ab_msg_release(&msg); /* twice is harmless */
}

static void test_messages_golden(void **state)
{
    char path[1024];
    size_t len = 0;
    char *input;
    char *p;
    char *end;
    struct ab_buf out;
    unsigned lineno = 0;

    (void)state;
    (void)snprintf(path, sizeof(path), "%s/protocol/messages.jsonl", AB_TEST_DATA_DIR);
    input = ab_test_read_file(path, &len);
    assert_non_null(input);
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    p = input;
    end = input + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

        lineno++;
        p[n] = '\0';
        if (p[0] == '#') {
            assert_int_equal(ab_buf_printf(&out, NULL, "%s\n", p), AB_OK);
        } else {
            assert_int_equal(ab_buf_printf(&out, NULL, "%u: ", lineno), AB_OK);
            summarize(&out, p, n);
        }
        p += n + 1;
    }
    ab_test_check_golden("protocol/messages.golden", out.data);
    ab_buf_release(&out);
    free(input);
}

static void test_nul_byte_rejected(void **state)
{
    static const char line[] = "{\"type\":\"LOG\",\"log\":{\"message\":\"a\0b\"}}";
    struct ab_msg msg;
    struct ab_error err = {0};

    (void)state;
    assert_int_equal(ab_msg_parse(&msg, line, sizeof(line) - 1, &err), AB_ERR_PROTOCOL);
    assert_non_null(strstr(err.message, "control character in a string at byte 33"));
    assert_null(msg.root);
}

static void test_record_fields(void **state)
{
    static const char line[] =
        "{\"type\":\"RECORD\",\"record\":{\"stream\":\"users\",\"namespace\":"
        "\"public\",\"emitted_at\":1735689600000,\"data\":{\"id\":1}}}";
    struct ab_msg msg;
    struct ab_error err = {0};

    (void)state;
    assert_int_equal(ab_msg_parse(&msg, line, sizeof(line) - 1, &err), AB_OK);
    assert_int_equal(msg.type, AB_MSG_RECORD);
    assert_string_equal(msg.type_name, "RECORD");
    assert_string_equal(msg.stream, "users");
    assert_string_equal(msg.ns, "public");
    assert_int_equal(msg.emitted_at, 1735689600000LL);
    assert_int_equal(ab_json_get_int(msg.data, "id", -1), 1);
    assert_null(msg.state);
    assert_true(msg.source_count < 0);
    assert_int_equal(msg.status, AB_STATUS_NONE);
    assert_null(msg.trace_type);
    ab_msg_release(&msg);
}

static void test_state_fields(void **state)
{
    static const char line[] =
        "{\"type\":\"STATE\",\"state\":{\"type\":\"GLOBAL\",\"global\":{\"shared_state\":{}},"
        "\"sourceStats\":{\"recordCount\":5.0},\"id\":18}}";
    struct ab_msg msg;
    struct ab_error err = {0};

    (void)state;
    assert_int_equal(ab_msg_parse(&msg, line, sizeof(line) - 1, &err), AB_OK);
    assert_int_equal(msg.type, AB_MSG_STATE);
    assert_int_equal(msg.state_type, AB_STATE_GLOBAL);
    assert_null(msg.stream);
    assert_null(msg.data);
    assert_true(msg.source_count > 4.99 && msg.source_count < 5.01);
    assert_int_equal(ab_json_get_int(msg.state, "id", -1), 18);
    ab_msg_release(&msg);
}

static void test_state_members_appends(void **state)
{
    static const char line[] =
        "{\"type\":\"STATE\",\"state\":{\"destinationStats\":{\"recordCount\":1.0},\"type\":"
        "\"LEGACY\",\"data\":{\"x\":[1,2.50,{\"y\":null}]},\"id\":3}}";
    struct ab_msg msg;
    struct ab_error err = {0};
    struct ab_buf out;

    (void)state;
    assert_int_equal(ab_msg_parse(&msg, line, sizeof(line) - 1, &err), AB_OK);
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_buf_adds(&out, "prefix>", NULL), AB_OK);
    assert_int_equal(ab_proto_state_members(&out, msg.state, &err), AB_OK);
    assert_string_equal(
        out.data, "prefix>\"type\":\"LEGACY\",\"data\":{\"x\":[1,2.50,{\"y\":null}]},\"id\":3");
    ab_buf_release(&out);
    ab_msg_release(&msg);
}

static void test_state_members_capped(void **state)
{
    static const char line[] =
        "{\"type\":\"STATE\",\"state\":{\"type\":\"LEGACY\",\"data\":{\"a\":\"0123456789\"}}}";
    struct ab_msg msg;
    struct ab_error err = {0};
    struct ab_buf out;

    (void)state;
    assert_int_equal(ab_msg_parse(&msg, line, sizeof(line) - 1, &err), AB_OK);
    ab_buf_init(&out, 16);
    assert_int_equal(ab_proto_state_members(&out, msg.state, &err), AB_ERR_PROTOCOL);
    ab_buf_release(&out);
    ab_msg_release(&msg);
}

static void test_state_members_not_object(void **state)
{
    struct ab_error err = {0};
    struct ab_buf out;

    (void)state;
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_proto_state_members(&out, NULL, &err), AB_ERR_INTERNAL);
    assert_int_equal(out.len, 0);
    ab_buf_release(&out);
}

struct raw_case {
    const char *line;
    const char *members; /* expected */
};

static void test_state_members_raw(void **state)
{
    static const struct raw_case cases[] = {
        /* escapes, spacing and number text come back byte for byte */
        {"{\"type\":\"STATE\",\"state\":{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":"
         "{\"name\":\"a\\/b\"},\"stream_state\":{\"c\":\"\\u00e9\",\"n\":1.50e1}},\"id\":17}}",
         "\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"a\\/b\"},"
         "\"stream_state\":{\"c\":\"\\u00e9\",\"n\":1.50e1}},\"id\":17"},
        {"  { \"state\" : { \"type\" : \"GLOBAL\", \"global\":{\"shared_state\":{\"k\":[1, "
         "{\"}\":\"{\"}]}}"
         ", \"id\": 123456789012345678901234567890 } , \"type\":\"STATE\", \"x\":[\"state\"]}  ",
         "\"type\" : \"GLOBAL\", \"global\":{\"shared_state\":{\"k\":[1, {\"}\":\"{\"}]}}, \"id\": "
         "123456789012345678901234567890"},
        /* an incoming destinationStats is dropped: serialised without it */
        {"{\"type\":\"STATE\",\"state\":{\"type\":\"LEGACY\",\"data\":{\"a\":1},"
         "\"destinationStats\":{\"recordCount\":9.0},\"id\":2}}",
         "\"type\":\"LEGACY\",\"data\":{\"a\":1},\"id\":2"},
    };
    struct ab_error err;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ab_msg msg;
        struct ab_buf out;
        size_t len = strlen(cases[i].line);

        ab_error_init(&err);
        ab_buf_init(&out, AB_BUF_UNBOUNDED);
        if (ab_msg_parse(&msg, cases[i].line, len, &err) != AB_OK) {
            fail_msg("case %zu: %s", i, err.message);
        }
        assert_int_equal(msg.type, AB_MSG_STATE);
        assert_int_equal(ab_proto_state_members_raw(&out, cases[i].line, len, msg.state, &err),
                         AB_OK);
        if (strcmp(out.data, cases[i].members) != 0) {
            fail_msg("case %zu:\n got  %s\n want %s", i, out.data, cases[i].members);
        }
        ab_buf_release(&out);
        ab_msg_release(&msg);
    }
}

static void test_status_names(void **state)
{
    (void)state;
    assert_string_equal(ab_stream_status_name(AB_STATUS_NONE), "NONE");
    assert_string_equal(ab_stream_status_name(AB_STATUS_STARTED), "STARTED");
    assert_string_equal(ab_stream_status_name(AB_STATUS_RUNNING), "RUNNING");
    assert_string_equal(ab_stream_status_name(AB_STATUS_COMPLETE), "COMPLETE");
    assert_string_equal(ab_stream_status_name(AB_STATUS_INCOMPLETE), "INCOMPLETE");
    assert_string_equal(ab_stream_status_name((enum ab_stream_status)42), "NONE");
}

static void test_release_null(void **state)
{
    (void)state;
    ab_msg_release(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages_golden),
        cmocka_unit_test(test_nul_byte_rejected),
        cmocka_unit_test(test_record_fields),
        cmocka_unit_test(test_state_fields),
        cmocka_unit_test(test_state_members_appends),
        cmocka_unit_test(test_state_members_capped),
        cmocka_unit_test(test_state_members_not_object),
        cmocka_unit_test(test_state_members_raw),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_release_null),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
