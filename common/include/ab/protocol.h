/* protocol.h - reading Airbyte messages and preparing STATE echoes. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_PROTOCOL_H
#define AB_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "ab/buf.h"
#include "ab/error.h"
#include "ab/json.h"

/* The Airbyte protocol version the connectors speak: the newest message
 * shape they print (destinationStats.rejectedRecordCount: 0.18.0;
 * DESTINATION_CATALOG: 0.16.0). ab_spec_build() writes it into every spec
 * as protocol_version; no connector spec declares its own. */
#define AB_PROTOCOL_VERSION "0.18.0"

enum ab_msg_type {
    AB_MSG_UNKNOWN = 0, /* a type this connector does not know: ignored */
    AB_MSG_RECORD,
    AB_MSG_STATE,
    AB_MSG_TRACE,
    AB_MSG_LOG,
    AB_MSG_CONTROL,
    AB_MSG_OTHER /* a known type a destination does not consume (SPEC, CATALOG, ...) */
};

enum ab_state_type { AB_STATE_STREAM = 0, AB_STATE_GLOBAL, AB_STATE_LEGACY };

enum ab_stream_status {
    AB_STATUS_NONE = 0,
    AB_STATUS_STARTED,
    AB_STATUS_RUNNING,
    AB_STATUS_COMPLETE,
    AB_STATUS_INCOMPLETE
};

/*
 * A parsed message. All pointers borrow from root, which the message owns:
 * ab_msg_release() frees it. Fields not relevant to the type are NULL/0.
 */
struct ab_msg {
    enum ab_msg_type type;
    const char *type_name; /* the "type" text as received */
    yajl_val root;

    /* RECORD */
    const char *stream;
    const char *ns; /* NULL when absent or null */
    yajl_val data;  /* always an object for a valid RECORD */
    int64_t emitted_at;

    /* STATE */
    enum ab_state_type state_type;
    yajl_val state; /* the "state" object */
    /* STREAM state: its descriptor (stream/ns above are set too) */
    double source_count; /* sourceStats.recordCount, -1 when absent */

    /* TRACE of type STREAM_STATUS (stream/ns set too; stream NULL when the
     * descriptor has no name, status NONE when absent or unknown). A TRACE is
     * never an error; trace_type is NULL when it has none. */
    enum ab_stream_status status;
    const char *trace_type;

    bool in_arena;                   /* root lives in an arena, not freed by ab_msg_release() */
    struct ab_json_arena *own_arena; /* ab_msg_parse()'s private arena */

    /* A RECORD whose stream and namespace are valid but which fails the
     * intake elsewhere (bad UTF-8, escaped NUL, 1e999, duplicate member):
     * see AB_ERR_REJECTED below. invalid_field is the JSON path of the first
     * problem ("$.record.data.name"). data is NULL or partly replaced by
     * ab_json_is_invalid() markers: never load it. */
    bool invalid;
    char invalid_field[256]; /* stays last: only its first byte is reset */
};

/*
 * Parses one line. Malformed JSON, a missing or non-string "type", a RECORD
 * without stream or with non-object data, a STATE whose state is not an object
 * or whose STREAM descriptor has no name: AB_ERR_PROTOCOL naming what is wrong
 * (the caller prefixes the line number). Unknown types and unknown fields are
 * not errors.
 *
 * The JSON intake's content rules (json.h) apply to every line. A line that
 * breaks one of them is AB_ERR_PROTOCOL naming the type, reason, byte and
 * path ("STATE: member 'state' appears twice at byte 40 ($.state)"), except
 * a RECORD whose type, stream and namespace could be read validly: that is
 * AB_ERR_REJECTED with msg->invalid set, msg->type/stream/ns filled, the
 * reason in err->message and msg kept: ab_msg_release() it. A stream name
 * or namespace that itself breaks a rule is AB_ERR_PROTOCOL.
 */
enum ab_status ab_msg_parse(struct ab_msg *msg, const char *line, size_t len, struct ab_error *err);
/* As ab_msg_parse(), with the tree in arena (json.h): the message is valid
 * until the arena is reset; ab_msg_release() it before that. */
enum ab_status ab_msg_parse_in(struct ab_msg *msg, struct ab_json_arena *arena, const char *line,
                               size_t len, struct ab_error *err);
void ab_msg_release(struct ab_msg *msg);

/*
 * Serialises the members of the state object without the enclosing braces and
 * without any incoming "destinationStats", preserving every other member,
 * its order and the exact number text (the platform's integer "id" stays an
 * integer). Appends to out.
 */
enum ab_status ab_proto_state_members(struct ab_buf *out, yajl_val state, struct ab_error *err);

/*
 * The same members, byte for byte as they stand in line (the whole message
 * line msg was parsed from, of len bytes): what goes back is exactly what
 * came in, escapes and spacing included. Falls back to
 * ab_proto_state_members() when the state carries its own
 * "destinationStats" (it is replaced) or its key is spelled with escapes.
 */
enum ab_status ab_proto_state_members_raw(struct ab_buf *out, const char *line, size_t len,
                                          yajl_val state, struct ab_error *err);

const char *ab_stream_status_name(enum ab_stream_status s);

#endif
