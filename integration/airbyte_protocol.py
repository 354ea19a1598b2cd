"""airbyte_protocol.py - the shapes of Airbyte protocol messages (v0.18.0).

A hand-written check of AirbyteMessage and what it carries, as the
protocol's airbyte_protocol.yaml declares them: required members, types,
enums, and no null where the schema has no null (a StreamDescriptor's
"namespace" is a string or absent, never null). Unknown members are allowed,
as in the schema (additionalProperties: true), and so is the platform's
integer "id" on a STATE.

    validate_message(obj) -> list of problems ([] when valid)

Standard library only.
"""

PROTOCOL_VERSION = "0.18.0"

MESSAGE_TYPES = {
    "RECORD": "record", "STATE": "state", "LOG": "log", "SPEC": "spec",
    "CONNECTION_STATUS": "connectionStatus", "CATALOG": "catalog", "TRACE": "trace",
    "CONTROL": "control", "DESTINATION_CATALOG": "destination_catalog",
}
LOG_LEVELS = ("FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE")
STATE_TYPES = ("GLOBAL", "STREAM", "LEGACY")
TRACE_TYPES = ("ERROR", "ESTIMATE", "STREAM_STATUS", "ANALYTICS")
FAILURE_TYPES = ("system_error", "config_error", "transient_error")
STREAM_STATUSES = ("STARTED", "RUNNING", "COMPLETE", "INCOMPLETE")
SYNC_MODES = ("full_refresh", "incremental")
DESTINATION_SYNC_MODES = ("append", "overwrite", "append_dedup", "overwrite_dedup", "update",
                          "soft_delete")
CHANGES = ("NULLED", "TRUNCATED")


class _V:
    def __init__(self):
        self.problems = []

    def bad(self, where, what):
        self.problems.append("%s: %s" % (where, what))

    def obj(self, v, where, required=()):
        if not isinstance(v, dict):
            self.bad(where, "must be an object, not %s" % _tname(v))
            return False
        for r in required:
            if r not in v:
                self.bad(where, "lacks the required member %r" % r)
        return True

    def typed(self, v, where, kind):
        ok = {
            "string": lambda x: isinstance(x, str),
            "integer": lambda x: isinstance(x, int) and not isinstance(x, bool),
            "number": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
            "boolean": lambda x: isinstance(x, bool),
            "object": lambda x: isinstance(x, dict),
            "array": lambda x: isinstance(x, list),
        }[kind](v)
        if not ok:
            self.bad(where, "must be %s, not %s" % (kind, _tname(v)))
        return ok

    def opt(self, o, key, where, kind):
        """An optional member: absent, or of its type (null is not)."""
        if isinstance(o, dict) and key in o:
            return self.typed(o[key], "%s.%s" % (where, key), kind)
        return False

    def enum(self, v, where, values):
        if v not in values:
            self.bad(where, "%r is not one of %s" % (v, ", ".join(values)))

    # -- shapes ---------------------------------------------------------------

    def descriptor(self, d, where):
        if self.obj(d, where, ("name",)):
            self.opt(d, "name", where, "string")
            self.opt(d, "namespace", where, "string")

    def stream_state(self, s, where):
        if self.obj(s, where, ("stream_descriptor",)):
            self.descriptor(s.get("stream_descriptor"), where + ".stream_descriptor")
            self.opt(s, "stream_state", where, "object")

    def stats(self, s, where):
        if self.obj(s, where):
            self.opt(s, "recordCount", where, "number")
            self.opt(s, "rejectedRecordCount", where, "number")

    def record(self, r, where):
        if not self.obj(r, where, ("stream", "data", "emitted_at")):
            return
        self.opt(r, "stream", where, "string")
        self.opt(r, "namespace", where, "string")
        self.opt(r, "data", where, "object")
        self.opt(r, "emitted_at", where, "integer")
        if self.opt(r, "meta", where, "object") and self.opt(r["meta"], "changes",
                                                               where + ".meta", "array"):
            for i, c in enumerate(r["meta"]["changes"]):
                w = "%s.meta.changes[%d]" % (where, i)
                if self.obj(c, w, ("field", "change", "reason")):
                    self.opt(c, "field", w, "string")
                    self.enum(c.get("change"), w + ".change", CHANGES)

    def state(self, s, where):
        if not self.obj(s, where):
            return
        if "type" in s:
            self.enum(s["type"], where + ".type", STATE_TYPES)
        t = s.get("type", "LEGACY")
        if t == "STREAM":
            if "stream" not in s:
                self.bad(where, "a STREAM state lacks 'stream'")
            else:
                self.stream_state(s["stream"], where + ".stream")
        elif t == "GLOBAL":
            g = s.get("global")
            if "global" not in s:
                self.bad(where, "a GLOBAL state lacks 'global'")
            elif self.obj(g, where + ".global", ("stream_states",)):
                self.opt(g, "shared_state", where + ".global", "object")
                if self.opt(g, "stream_states", where + ".global", "array"):
                    for i, ss in enumerate(g["stream_states"]):
                        self.stream_state(ss, "%s.global.stream_states[%d]" % (where, i))
        self.opt(s, "data", where, "object")
        for k in ("sourceStats", "destinationStats"):
            if k in s:
                self.stats(s[k], "%s.%s" % (where, k))
        if "id" in s:
            self.typed(s["id"], where + ".id", "integer")

    def log(self, lg, where):
        if self.obj(lg, where, ("level", "message")):
            self.enum(lg.get("level"), where + ".level", LOG_LEVELS)
            self.opt(lg, "message", where, "string")
            self.opt(lg, "stack_trace", where, "string")

    def trace(self, t, where):
        if not self.obj(t, where, ("type", "emitted_at")):
            return
        self.enum(t.get("type"), where + ".type", TRACE_TYPES)
        self.opt(t, "emitted_at", where, "number")
        kind = t.get("type")
        if kind == "ERROR":
            e = t.get("error")
            if self.obj(e, where + ".error", ("message",)):
                w = where + ".error"
                self.opt(e, "message", w, "string")
                self.opt(e, "internal_message", w, "string")
                self.opt(e, "stack_trace", w, "string")
                if "failure_type" in e:
                    self.enum(e["failure_type"], w + ".failure_type", FAILURE_TYPES)
                if "stream_descriptor" in e:
                    self.descriptor(e["stream_descriptor"], w + ".stream_descriptor")
        elif kind == "STREAM_STATUS":
            st = t.get("stream_status")
            w = where + ".stream_status"
            if self.obj(st, w, ("stream_descriptor", "status")):
                self.descriptor(st.get("stream_descriptor"), w + ".stream_descriptor")
                self.enum(st.get("status"), w + ".status", STREAM_STATUSES)
                if self.opt(st, "reasons", w, "array"):
                    for i, r in enumerate(st["reasons"]):
                        self.obj(r, "%s.reasons[%d]" % (w, i), ("type",))
        elif kind == "ESTIMATE":
            es = t.get("estimate")
            w = where + ".estimate"
            if self.obj(es, w, ("name", "type")):
                self.opt(es, "name", w, "string")
                self.opt(es, "namespace", w, "string")
                self.enum(es.get("type"), w + ".type", ("STREAM", "SYNC"))
                self.opt(es, "row_estimate", w, "integer")
                self.opt(es, "byte_estimate", w, "integer")
        elif kind == "ANALYTICS":
            self.obj(t.get("analytics"), where + ".analytics", ("type", "value"))

    def spec(self, s, where):
        if not self.obj(s, where, ("connectionSpecification",)):
            return
        self.opt(s, "connectionSpecification", where, "object")
        for k in ("documentationUrl", "changelogUrl", "protocol_version"):
            self.opt(s, k, where, "string")
        for k in ("supportsIncremental", "supportsNormalization", "supportsDBT"):
            self.opt(s, k, where, "boolean")
        if self.opt(s, "supported_destination_sync_modes", where, "array"):
            for i, m in enumerate(s["supported_destination_sync_modes"]):
                self.enum(m, "%s.supported_destination_sync_modes[%d]" % (where, i),
                          DESTINATION_SYNC_MODES)

    def connection_status(self, c, where):
        if self.obj(c, where, ("status",)):
            self.enum(c.get("status"), where + ".status", ("SUCCEEDED", "FAILED"))
            self.opt(c, "message", where, "string")

    def catalog(self, c, where):
        if self.obj(c, where, ("streams",)) and self.opt(c, "streams", where, "array"):
            for i, s in enumerate(c["streams"]):
                w = "%s.streams[%d]" % (where, i)
                if self.obj(s, w, ("name", "json_schema", "supported_sync_modes")):
                    self.opt(s, "name", w, "string")
                    self.opt(s, "namespace", w, "string")
                    self.opt(s, "json_schema", w, "object")
                    if self.opt(s, "supported_sync_modes", w, "array"):
                        for j, m in enumerate(s["supported_sync_modes"]):
                            self.enum(m, "%s.supported_sync_modes[%d]" % (w, j), SYNC_MODES)

    def control(self, c, where):
        if self.obj(c, where, ("type", "emitted_at")):
            self.enum(c.get("type"), where + ".type", ("CONNECTOR_CONFIG",))
            self.opt(c, "emitted_at", where, "number")
            cc = c.get("connectorConfig")
            if c.get("type") == "CONNECTOR_CONFIG" and self.obj(
                    cc, where + ".connectorConfig", ("config",)):
                self.opt(cc, "config", where + ".connectorConfig", "object")

    def destination_catalog(self, c, where):
        if not (self.obj(c, where, ("operations",)) and self.opt(c, "operations", where, "array")):
            return
        for i, op in enumerate(c["operations"]):
            w = "%s.operations[%d]" % (where, i)
            if not self.obj(op, w, ("object_name", "sync_mode", "json_schema")):
                continue
            self.opt(op, "object_name", w, "string")
            self.enum(op.get("sync_mode"), w + ".sync_mode", DESTINATION_SYNC_MODES)
            self.opt(op, "json_schema", w, "object")
            if self.opt(op, "matching_keys", w, "array"):
                for j, key in enumerate(op["matching_keys"]):
                    wk = "%s.matching_keys[%d]" % (w, j)
                    if self.typed(key, wk, "array"):
                        for k, part in enumerate(key):
                            self.typed(part, "%s[%d]" % (wk, k), "string")


def _tname(v):
    if v is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(v), type(v).__name__)


def validate_message(msg, where="message"):
    """Problems of msg (parsed JSON) as an AirbyteMessage; [] when valid."""
    v = _V()
    if not v.obj(msg, where, ("type",)):
        return v.problems
    t = msg.get("type")
    if t not in MESSAGE_TYPES:
        v.bad(where + ".type", "%r is not a message type" % (t,))
        return v.problems
    member = MESSAGE_TYPES[t]
    if member not in msg:
        v.bad(where, "a %s message lacks %r" % (t, member))
        return v.problems
    getattr(v, {"connectionStatus": "connection_status"}.get(member, member))(
        msg[member], "%s.%s" % (where, member))
    return v.problems
