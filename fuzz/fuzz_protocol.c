/* fuzz_protocol.c - message parsing and the STATE echo: the byte-exact echo
 * says the same as the structured one. */
/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "ab/buf.h"
#include "ab/json.h"
#include "ab/protocol.h"

#include "fuzz.h"

static struct ab_json_arena *arena;

/* "{" members "}" in compact form, or NULL when that is not JSON. */
static char *compact_object(const char *members, size_t n, size_t *outlen)
{
    struct ab_buf in;
    struct ab_buf out;
    yajl_val v;

    ab_buf_init(&in, AB_BUF_UNBOUNDED);
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    FUZZ_ASSERT(ab_buf_addc(&in, '{', NULL) == AB_OK);
    FUZZ_ASSERT(ab_buf_add(&in, members, n, NULL) == AB_OK);
    FUZZ_ASSERT(ab_buf_addc(&in, '}', NULL) == AB_OK);
    v = ab_json_parse(in.data, in.len, NULL);
    FUZZ_ASSERT(v != NULL);
    FUZZ_ASSERT(ab_json_write(&out, v, NULL) == AB_OK);
    ab_json_free(v);
    ab_buf_release(&in);
    *outlen = out.len;
    return ab_buf_detach(&out, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *line = (const char *)data;
    struct ab_error err = {0};
    struct ab_msg msg;
    enum ab_status rc;

    if (!arena) {
        arena = ab_json_arena_new(NULL);
    }
    ab_json_arena_reset(arena);
    rc = ab_msg_parse_in(&msg, arena, line, size, &err);
    if (rc == AB_ERR_REJECTED) {
        FUZZ_ASSERT(msg.invalid && msg.type == AB_MSG_RECORD && msg.stream && msg.stream[0]);
        FUZZ_ASSERT(ab_utf8_valid(msg.stream, strlen(msg.stream), NULL));
        FUZZ_ASSERT(strncmp(msg.invalid_field, "$", 1) == 0);
    } else if (rc != AB_OK) {
        FUZZ_ASSERT(msg.root == NULL);
        FUZZ_ASSERT(err.message[0] != '\0');
    } else if (msg.type == AB_MSG_RECORD) {
        FUZZ_ASSERT(msg.data && msg.data->type == yajl_t_object && msg.stream);
    } else if (msg.type == AB_MSG_STATE) {
        struct ab_buf raw;
        struct ab_buf structured;
        char *a;
        char *b;
        size_t alen;
        size_t blen;

        ab_buf_init(&raw, AB_BUF_UNBOUNDED);
        ab_buf_init(&structured, AB_BUF_UNBOUNDED);
        FUZZ_ASSERT(ab_proto_state_members_raw(&raw, line, size, msg.state, NULL) == AB_OK);
        FUZZ_ASSERT(ab_proto_state_members(&structured, msg.state, NULL) == AB_OK);
        a = compact_object(raw.data ? raw.data : "", raw.len, &alen);
        b = compact_object(structured.data ? structured.data : "", structured.len, &blen);
        FUZZ_ASSERT(alen == blen && memcmp(a, b, alen) == 0);
        free(a);
        free(b);
        ab_buf_release(&raw);
        ab_buf_release(&structured);
    }
    ab_msg_release(&msg);
    return 0;
}
