#!/usr/bin/env python3
"""Peak memory of one line at max_line_bytes (64 MiB) of small values.

The real destination-crm360 binary reads, against its emulator, one RECORD
line of exactly 64 MiB whose data holds an array of small numbers
(0..999, the common case) or of 4-digit numbers (the parser's worst case per
byte), followed by a STATE. Prints the peak RSS (GNU time), the RSS above
the same run with a small line, and that excess per input byte: the figure
the README quotes. Fails if the excess passes 16 bytes per input byte (the
intake's enforced budget, json.h).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from test_crm360_e2e import CrmCase  # noqa: E402

MiB = 1024 * 1024
LINE = 64 * MiB
HEAD = (b'{"type":"RECORD","record":{"stream":"customers","emitted_at":1,"data":'
        b'{"external_id":"C-1","brand":"aurora","email":"a@b.com",'
        b'"updated_at":"2026-05-01T00:00:00Z","values":[')
TAIL = b'}}}'
STATE = (b'{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":'
         b'{"name":"customers"},"stream_state":{}},"sourceStats":{"recordCount":1.0}}}\n')


def line_of(size, width):
    """HEAD, numbers of `width` digits (or 0..999 when width is 0), a short
    padding string, TAIL: exactly size bytes."""
    if width:
        nums = [b"%d" % (10 ** (width - 1) + i % 9000) for i in range(1000)]
    else:
        nums = [b"%d" % ((i * 7919) % 1000) for i in range(1000)]
    item = b",".join(nums)
    pad = b'],"pad":"'
    body = size - len(HEAD) - len(TAIL) - len(pad) - 1 - 16
    reps = body // (len(item) + 1)
    fill = b",".join([item] * reps)
    out = HEAD + fill + pad
    out += b"x" * (size - len(out) - len(TAIL) - 1) + b'"' + TAIL
    assert len(out) == size, (len(out), size)
    return out


class LineMemory(CrmCase):
    def run_line(self, name, line):
        cfg = self.write_config(self.cfg(max_line_bytes=LINE), name + ".config.json")
        cat = self.wd.write_json(name + ".catalog.json", self.default_catalog())

        def stream():
            yield line + b"\n"
            yield STATE

        res = lib.run_connector(lib.binary(), ["write", "--config", cfg, "--catalog", cat],
                                self.wd, stdin=stream(), name=name, timeout=300, measure=True)
        self.assertFalse(res.timed_out, res.describe())
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual(len(res.states), 1, res.describe())
        return res.maxrss_kb * 1024

    def test_line_memory(self):
        base = self.run_line("small", line_of(64 * 1024, 0))
        for label, width in (("small numbers 0..999", 0), ("4-digit numbers", 4)):
            peak = self.run_line("big%d" % width, line_of(LINE, width))
            per_byte = (peak - base) / LINE
            sys.stderr.write("\n[one 64 MiB line of %s: peak RSS %.0f MiB, %.0f MiB above a "
                             "small line, %.1f bytes per input byte] "
                             % (label, peak / MiB, (peak - base) / MiB, per_byte))
            self.assertLess(per_byte, 16.0)


if __name__ == "__main__":
    lib.main(__doc__.split("\n")[0])
