/* protocol.c - reading Airbyte messages and preparing STATE echoes. */
/* SPDX-License-Identifier: MIT */
#include "ab/protocol.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "ab/json.h"

/*
 * Strict where a mistake would lose or misplace data (a RECORD without a
 * stream or data, a STATE that cannot be scoped), lenient everywhere else:
 * unknown types and fields are ignored, and a TRACE we cannot read is only
 * reported as such (stream NULL, status AB_STATUS_NONE), since the worst a
 * lost STREAM_STATUS does is skip a destructive finalisation.
 */

/* Longest stream name quoted in a message. */
#define AB_PROTO_NAME_MAX 200

struct type_name {
    const char *name;
    enum ab_msg_type type;
};

static const struct type_name type_names[] = {
    {"RECORD", AB_MSG_RECORD},
    {"STATE", AB_MSG_STATE},
    {"TRACE", AB_MSG_TRACE},
    {"LOG", AB_MSG_LOG},
    {"CONTROL", AB_MSG_CONTROL},
    {"SPEC", AB_MSG_OTHER},
    {"CATALOG", AB_MSG_OTHER},
    {"CONNECTION_STATUS", AB_MSG_OTHER},
    {"DESTINATION_CATALOG", AB_MSG_OTHER},
};

static const char *const status_names[] = {"NONE", "STARTED", "RUNNING", "COMPLETE", "INCOMPLETE"};

const char *ab_stream_status_name(enum ab_stream_status s)
{
    if ((unsigned)s < sizeof(status_names) / sizeof(status_names[0])) {
        return status_names[s];
    }
    return "NONE";
}

static enum ab_stream_status parse_status(const char *s)
{
    size_t i;

    if (!s) {
        return AB_STATUS_NONE;
    }
    for (i = 1; i < sizeof(status_names) / sizeof(status_names[0]); i++) {
        if (strcmp(s, status_names[i]) == 0) {
            return (enum ab_stream_status)i;
        }
    }
    return AB_STATUS_NONE;
}

/* emitted_at is an integer in ms, but some sources write it as a double. */
static int64_t parse_ms(yajl_val v)
{
    int64_t i;
    double d;

    if (ab_json_int(v, &i)) {
        return i;
    }
    if (ab_json_double(v, &d) && d > -9.0e18 && d < 9.0e18) {
        return (int64_t)d;
    }
    return 0;
}

/* A namespace: string, or absent/null (NULL). false for any other type. */
static bool parse_ns(yajl_val v, const char **ns)
{
    *ns = NULL;
    if (ab_json_is_null(v)) {
        return true;
    }
    *ns = ab_json_str(v);
    return *ns != NULL;
}

static enum ab_status parse_record(struct ab_msg *msg, struct ab_error *err)
{
    yajl_val rec = ab_json_get(msg->root, "record");
    yajl_val stream_v = NULL;
    yajl_val ns = NULL;
    yajl_val data = NULL;
    yajl_val emitted_at = NULL;
    const char *stream;

    if (!rec || rec->type != yajl_t_object) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "RECORD has no \"record\" object");
    }
    /* one pass over the members (names are unique: the parser checks) */
    for (size_t i = 0; i < rec->u.object.len; i++) {
        const char *k = rec->u.object.keys[i];
        yajl_val v = rec->u.object.values[i];

        switch (k[0]) {
        case 's':
            stream_v = strcmp(k, "stream") == 0 ? v : stream_v;
            break;
        case 'd':
            data = strcmp(k, "data") == 0 ? v : data;
            break;
        case 'e':
            emitted_at = strcmp(k, "emitted_at") == 0 ? v : emitted_at;
            break;
        case 'n':
            ns = strcmp(k, "namespace") == 0 ? v : ns;
            break;
        default:
            break;
        }
    }
    stream = ab_json_str(stream_v);
    if (!stream || !stream[0]) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "RECORD has no \"stream\"");
    }
    msg->stream = stream;
    if (!parse_ns(ns, &msg->ns)) {
        return ab_error_set(err, AB_ERR_PROTOCOL,
                            "RECORD for stream '%.*s' has a \"namespace\" that is not a string",
                            AB_PROTO_NAME_MAX, stream);
    }
    if (!data || data->type != yajl_t_object) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "RECORD for stream '%.*s' has no \"data\" object",
                            AB_PROTO_NAME_MAX, stream);
    }
    msg->data = data;
    msg->emitted_at = parse_ms(emitted_at);
    return AB_OK;
}

static enum ab_status parse_state(struct ab_msg *msg, struct ab_error *err)
{
    static const char *const desc_path[] = {"stream", "stream_descriptor", NULL};
    static const char *const count_path[] = {"sourceStats", "recordCount", NULL};
    yajl_val state = ab_json_get(msg->root, "state");
    yajl_val type;
    yajl_val desc;
    const char *t;
    double d;

    if (!state || state->type != yajl_t_object) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "STATE has no \"state\" object");
    }
    msg->state = state;
    type = ab_json_get(state, "type");
    t = ab_json_str(type);
    if (ab_json_is_null(type) || (t && strcmp(t, "LEGACY") == 0)) {
        msg->state_type = AB_STATE_LEGACY; /* absent type: the old format */
    } else if (t && strcmp(t, "STREAM") == 0) {
        msg->state_type = AB_STATE_STREAM;
    } else if (t && strcmp(t, "GLOBAL") == 0) {
        msg->state_type = AB_STATE_GLOBAL;
    } else if (t) {
        return ab_error_set(err, AB_ERR_PROTOCOL, "STATE has an unknown type '%.*s'",
                            AB_PROTO_NAME_MAX, t);
    } else {
        return ab_error_set(err, AB_ERR_PROTOCOL, "STATE has a \"type\" that is not a string");
    }
    if (msg->state_type == AB_STATE_STREAM) {
        desc = ab_json_get_path(state, desc_path);
        msg->stream = ab_json_str(ab_json_get(desc, "name"));
        if (!msg->stream || !msg->stream[0]) {
            msg->stream = NULL;
            return ab_error_set(err, AB_ERR_PROTOCOL,
                                "STREAM state has no \"stream_descriptor\" name");
        }
        if (!parse_ns(ab_json_get(desc, "namespace"), &msg->ns)) {
            return ab_error_set(
                err, AB_ERR_PROTOCOL,
                "STREAM state for stream '%.*s' has a \"namespace\" that is not a string",
                AB_PROTO_NAME_MAX, msg->stream);
        }
    } else if (msg->state_type == AB_STATE_GLOBAL) {
        yajl_val global = ab_json_get(state, "global");

        if (!global || global->type != yajl_t_object) {
            return ab_error_set(err, AB_ERR_PROTOCOL, "GLOBAL state has no \"global\" object");
        }
    }
    if (ab_json_double(ab_json_get_path(state, count_path), &d)) {
        msg->source_count = d;
    }
    return AB_OK;
}

static void parse_trace(struct ab_msg *msg)
{
    static const char *const desc_path[] = {"stream_status", "stream_descriptor", NULL};
    yajl_val trace = ab_json_get(msg->root, "trace");
    yajl_val desc;
    const char *name;

    msg->trace_type = ab_json_get_str(trace, "type", NULL);
    if (!msg->trace_type || strcmp(msg->trace_type, "STREAM_STATUS") != 0) {
        return;
    }
    desc = ab_json_get_path(trace, desc_path);
    name = ab_json_str(ab_json_get(desc, "name"));
    if (name && name[0]) {
        msg->stream = name;
        if (!parse_ns(ab_json_get(desc, "namespace"), &msg->ns)) {
            msg->ns = NULL;
        }
    }
    msg->status =
        parse_status(ab_json_str(ab_json_get(ab_json_get(trace, "stream_status"), "status")));
}

static void msg_init(struct ab_msg *msg)
{
    /* every field but the path buffer, whose first byte says it is empty
     * (this runs twice per line) */
    memset(msg, 0, offsetof(struct ab_msg, invalid_field));
    msg->invalid_field[0] = '\0';
    msg->type = AB_MSG_UNKNOWN;
    msg->root = NULL;
    msg->type_name = NULL;
    msg->stream = NULL;
    msg->ns = NULL;
    msg->data = NULL;
    msg->state = NULL;
    msg->trace_type = NULL;
    msg->state_type = AB_STATE_STREAM;
    msg->status = AB_STATUS_NONE;
    msg->source_count = -1.0;
}

static enum ab_status parse_root(struct ab_msg *msg, struct ab_error *err);

/*
 * The line broke a content rule of the intake (content says which). Only a
 * RECORD with a readable stream can be rejected on its own; anything else
 * stops the run.
 */
static enum ab_status invalid_line(struct ab_msg *msg, const struct ab_error *content,
                                   struct ab_error *err)
{
    yajl_val type = ab_json_get(msg->root, "type");
    yajl_val rec = ab_json_get(msg->root, "record");
    yajl_val stream = ab_json_get(rec, "stream");
    yajl_val ns = ab_json_get(rec, "namespace");
    const char *t = ab_json_is_invalid(type) ? NULL : ab_json_str(type);
    enum ab_status rc;

    if (!t || strcmp(t, "RECORD") != 0) {
        rc = ab_error_set(err, AB_ERR_PROTOCOL, "%.*s: invalid JSON: %s", AB_PROTO_NAME_MAX,
                          t ? t : "message", content->message);
        ab_msg_release(msg);
        return rc;
    }
    if (!rec || rec->type != yajl_t_object || ab_json_is_invalid(stream) || !ab_json_str(stream) ||
        !ab_json_str(stream)[0] || ab_json_is_invalid(ns) || !parse_ns(ns, &msg->ns)) {
        rc = ab_error_set(err, AB_ERR_PROTOCOL,
                          "RECORD whose stream cannot be read: invalid JSON: %s", content->message);
        ab_msg_release(msg);
        return rc;
    }
    msg->type = AB_MSG_RECORD;
    msg->type_name = t;
    msg->stream = ab_json_str(stream);
    msg->data = ab_json_get(rec, "data");
    if (!msg->data || msg->data->type != yajl_t_object) {
        msg->data = NULL;
    }
    msg->emitted_at = parse_ms(ab_json_get(rec, "emitted_at"));
    msg->invalid = true;
    (void)snprintf(msg->invalid_field, sizeof(msg->invalid_field), "%.255s", content->internal);
    rc = ab_error_set(err, AB_ERR_REJECTED, "%s", content->message);
    return rc;
}

static enum ab_status parse_into(struct ab_msg *msg, struct ab_json_arena *arena,
                                 struct ab_json_arena *own, const char *line, size_t len,
                                 struct ab_error *err)
{
    struct ab_error content;

    msg_init(msg);
    msg->own_arena = own;
    msg->root = ab_json_parse_ex(arena, line, len, true, &content, err);
    if (!msg->root) {
        ab_msg_release(msg);
        return err ? err->code : AB_ERR_PROTOCOL;
    }
    msg->in_arena = true;
    if (content.code != AB_OK) {
        return invalid_line(msg, &content, err);
    }
    return parse_root(msg, err);
}

enum ab_status ab_msg_parse_in(struct ab_msg *msg, struct ab_json_arena *arena, const char *line,
                               size_t len, struct ab_error *err)
{
    return parse_into(msg, arena, NULL, line, len, err);
}

enum ab_status ab_msg_parse(struct ab_msg *msg, const char *line, size_t len, struct ab_error *err)
{
    struct ab_json_arena *a = ab_json_arena_new(err);

    if (!a) {
        msg_init(msg);
        return AB_ERR_NOMEM;
    }
    return parse_into(msg, a, a, line, len, err);
}

static enum ab_status parse_root(struct ab_msg *msg, struct ab_error *err)
{
    enum ab_status rc = AB_OK;
    size_t i;

    if (msg->root->type != yajl_t_object) {
        rc = ab_error_set(err, AB_ERR_PROTOCOL, "message is not a JSON object (got %s)",
                          ab_json_type_name(msg->root));
        goto fail;
    }
    msg->type_name = ab_json_get_str(msg->root, "type", NULL);
    if (!msg->type_name) {
        rc = ab_error_set(err, AB_ERR_PROTOCOL, "message has no \"type\"");
        goto fail;
    }
    for (i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++) {
        if (strcmp(msg->type_name, type_names[i].name) == 0) {
            msg->type = type_names[i].type;
            break;
        }
    }
    switch (msg->type) {
    case AB_MSG_RECORD:
        rc = parse_record(msg, err);
        break;
    case AB_MSG_STATE:
        rc = parse_state(msg, err);
        break;
    case AB_MSG_TRACE:
        parse_trace(msg);
        break;
    case AB_MSG_UNKNOWN:
    case AB_MSG_LOG:
    case AB_MSG_CONTROL:
    case AB_MSG_OTHER:
        break;
    }
    if (rc != AB_OK) {
        goto fail;
    }
    return AB_OK;
fail:
    ab_msg_release(msg);
    return rc;
}

void ab_msg_release(struct ab_msg *msg)
{
    if (!msg) {
        return;
    }
    ab_json_arena_free(msg->own_arena);
    msg_init(msg);
}

enum ab_status ab_proto_state_members(struct ab_buf *out, yajl_val state, struct ab_error *err)
{
    enum ab_status rc = AB_OK;
    bool first = true;
    size_t i;

    if (!state || state->type != yajl_t_object) {
        return ab_error_set(err, AB_ERR_INTERNAL, "state is not a JSON object");
    }
    for (i = 0; rc == AB_OK && i < state->u.object.len; i++) {
        const char *key = state->u.object.keys[i];

        if (strcmp(key, "destinationStats") == 0) {
            continue;
        }
        if (!first) {
            rc = ab_buf_addc(out, ',', err);
        }
        first = false;
        if (rc == AB_OK) {
            rc = ab_json_write_cstr(out, key, err);
        }
        if (rc == AB_OK) {
            rc = ab_buf_addc(out, ':', err);
        }
        if (rc == AB_OK) {
            rc = ab_json_write(out, state->u.object.values[i], err);
        }
    }
    return rc;
}

/*
 * A scanner over text yajl has already validated: it finds where members and
 * values begin and end without building anything.
 */
static size_t skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) {
        i++;
    }
    return i;
}

static size_t skip_string(const char *s, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\') {
            i++;
        } else if (s[i] == '"') {
            return i + 1;
        }
    }
    return n;
}

static size_t skip_value(const char *s, size_t i, size_t n)
{
    size_t depth = 0;

    if (i < n && s[i] == '"') {
        return skip_string(s, i, n);
    }
    if (i < n && s[i] != '{' && s[i] != '[') {
        while (i < n && !strchr(",}] \t\r\n", s[i])) {
            i++;
        }
        return i;
    }
    for (; i < n; i++) {
        if (s[i] == '"') {
            i = skip_string(s, i, n) - 1;
        } else if (s[i] == '{' || s[i] == '[') {
            depth++;
        } else if ((s[i] == '}' || s[i] == ']') && --depth == 0) {
            return i + 1;
        }
    }
    return n;
}

/* Calls back on each member of the object at s[i] ('{'): key span (quotes
 * included) and value span. True, with *end after the object, when the
 * object was walked to its end. */
static bool each_member(const char *s, size_t i, size_t n,
                        void (*fn)(void *arg, const char *key, size_t klen, size_t vstart,
                                   size_t vend),
                        void *arg, size_t *end)
{
    if (i >= n || s[i] != '{') {
        return false;
    }
    for (i = skip_ws(s, i + 1, n); i < n && s[i] != '}';) {
        size_t kstart = i;
        size_t kend;
        size_t vstart;
        size_t vend;

        if (s[i] != '"') {
            return false;
        }
        kend = skip_string(s, i, n);
        i = skip_ws(s, kend, n);
        if (i >= n || s[i] != ':') {
            return false;
        }
        vstart = skip_ws(s, i + 1, n);
        vend = skip_value(s, vstart, n);
        fn(arg, s + kstart, kend - kstart, vstart, vend);
        i = skip_ws(s, vend, n);
        if (i < n && s[i] == ',') {
            i = skip_ws(s, i + 1, n);
        }
    }
    if (i >= n) {
        return false;
    }
    *end = i + 1;
    return true;
}

struct span {
    const char *want; /* key with its quotes */
    size_t start;
    size_t end;
    bool found;
};

static void find_member(void *arg, const char *key, size_t klen, size_t vstart, size_t vend)
{
    struct span *sp = arg;

    if (!sp->found && klen == strlen(sp->want) && memcmp(key, sp->want, klen) == 0) {
        sp->found = true;
        sp->start = vstart;
        sp->end = vend;
    }
}

enum ab_status ab_proto_state_members_raw(struct ab_buf *out, const char *line, size_t len,
                                          yajl_val state, struct ab_error *err)
{
    struct span st = {"\"state\"", 0, 0, false};
    struct span stats = {"\"destinationStats\"", 0, 0, false};
    size_t start = skip_ws(line, 0, len);
    size_t end;

    if (!each_member(line, start, len, find_member, &st, &end) || !st.found) {
        return ab_proto_state_members(out, state, err);
    }
    if (!each_member(line, st.start, st.end, find_member, &stats, &end) || end != st.end ||
        stats.found) {
        /* an incoming destinationStats is replaced: serialise without it */
        return ab_proto_state_members(out, state, err);
    }
    /* the members between the braces, surrounding blanks trimmed */
    start = skip_ws(line, st.start + 1, st.end - 1);
    end = st.end - 1;
    while (end > start && strchr(" \t\r\n", line[end - 1])) {
        end--;
    }
    return ab_buf_add(out, line + start, end - start, err);
}
