#!/usr/bin/env python3
"""Summarise a destination run: emitted states, logs, dead letters, stored data."""

import argparse
import json
import urllib.request


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--output", required=True, help="the destination's stdout")
    p.add_argument("--dead-letters")
    p.add_argument("--emulator", help="base URL of an emulator with /_admin/dump")
    a = p.parse_args()

    states, logs, errors = [], [], []
    with open(a.output, encoding="utf-8") as f:
        for line in f:
            msg = json.loads(line)
            if msg["type"] == "STATE":
                states.append(msg["state"])
            elif msg["type"] == "LOG":
                logs.append(msg["log"])
            elif msg["type"] == "TRACE" and msg["trace"]["type"] == "ERROR":
                errors.append(msg["trace"]["error"])

    print("\n-- emitted states (%d), in input order, each after its records were committed" % len(states))
    for st in states:
        if st.get("type") == "GLOBAL":
            scope = "GLOBAL"
        else:
            scope = st["stream"]["stream_descriptor"]["name"]
        ds = st.get("destinationStats", {})
        print("  id %-4s %-10s source %4d  committed %4d  rejected %2d" % (
            st.get("id"), scope, st.get("sourceStats", {}).get("recordCount", 0),
            ds.get("recordCount", 0), ds.get("rejectedRecordCount", 0)))
    print("\n-- log")
    for log in logs:
        print("  %-5s %s" % (log["level"], log["message"]))
    for e in errors:
        print("  ERROR (%s) %s" % (e.get("failure_type"), e.get("message")))

    if a.dead_letters:
        print("\n-- rejected records (dead-letter file)")
        try:
            with open(a.dead_letters, encoding="utf-8") as f:
                for line in f:
                    d = json.loads(line)
                    rec = d.get("record") or {}
                    print("  line %-5s %-9s %-12s by %-11s %s" % (
                        d.get("line"), d.get("stream"), rec.get("external_id") or rec.get("sku"),
                        d.get("rejected_by"),
                        "; ".join("%s %s" % (x.get("field"), x.get("code")) for x in d.get("errors", []))))
        except FileNotFoundError:
            print("  (none)")

    if a.emulator:
        with urllib.request.urlopen(a.emulator + "/_admin/dump") as r:
            dump = json.load(r)
        print("\n-- what the emulator now holds")
        for obj, rows in dump.items():
            if not isinstance(rows, list):
                continue
            print("  %-10s %d" % (obj, len(rows)))
            for row in rows[:2]:
                print("    " + json.dumps(row, ensure_ascii=False)[:160])


if __name__ == "__main__":
    main()
