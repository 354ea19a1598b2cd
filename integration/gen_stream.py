#!/usr/bin/env python3
"""Generate a sample Airbyte message stream of customers and orders.

The stream holds RECORD messages for the `customers` and `orders` streams,
later versions of some records (newer `updated_at`), a few invalid records of
known kinds, and STATE messages (STREAM or GLOBAL) every few records, with the
platform's integer `id` and `sourceStats`. Output is deterministic for a seed.

Beside the stream it can write an "expected" JSON file: for every key
(object, brand, external_id) the latest valid version, and the list of
invalid records with the reason they must be rejected. Tests compare the
emulator's stored data and the dead-letter file against it.

    gen_stream.py --customers 1000 --orders 2000 --out in.jsonl --expected exp.json
"""

import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from airbyte_input import StreamGenerator  # noqa: E402
from airbyte_input import gen_time as ts  # noqa: E402

BRANDS = ["aurora", "bossa", "caju", "duna", "estela", "flor", "garoa",
          "horizonte", "ipe", "jambo", "kiri"]
STATUSES = ["pending", "paid", "shipped", "delivered", "cancelled", "returned"]
STREAMS = ("customers", "orders")


def cpf(rng):
    digits = [rng.randrange(10) for _ in range(9)]
    for n in (10, 11):
        s = sum(d * w for d, w in zip(digits, range(n, 1, -1)))
        r = (s * 10) % 11
        digits.append(0 if r == 10 else r)
    return "".join(map(str, digits))


class Generator(StreamGenerator):
    def __init__(self, args):
        self.args = args
        self.streams = STREAMS
        self.state_type = args.state_type
        self.namespace = args.namespace
        self.rng = random.Random(args.seed)
        self.clock = 0
        self.state_id = 0
        self.since_state = {"customers": 0, "orders": 0}
        self.since_global = 0
        self.customers = []          # keys known to be valid and stored
        self.expected = {"customers": {}, "orders": {}}
        self.invalid = []
        self.lines = 0
        self.out = None

    def record(self, stream, data, valid, reason=None):
        # the platform leaves the key out when there is no namespace
        rec = {"stream": stream}
        if self.args.namespace:
            rec["namespace"] = self.args.namespace
        rec["emitted_at"] = 1767225600000 + self.clock
        rec["data"] = data
        self.emit({"type": "RECORD", "record": rec})
        self.since_state[stream] += 1
        self.since_global += 1
        key = "%s/%s" % (data.get("brand"), data.get("external_id"))
        if valid:
            self.expected[stream][key] = data
        else:
            self.invalid.append({"stream": stream, "key": key, "reason": reason,
                                 "line": self.lines})

    def customer(self, n, version):
        brand = BRANDS[n % len(BRANDS)]
        data = {"external_id": "C-%07d" % n, "brand": brand,
                "email": "cliente%d.v%d@exemplo.com.br" % (n, version),
                "name": "Cliente %d" % n,
                "phone": "+55119%08d" % (n % 100000000),
                "document": cpf(self.rng),
                "tags": ["vip"] if n % 7 == 0 else [],
                "attributes": {"version": version, "segment": "s%d" % (n % 5)},
                "created_at": ts(0),
                "updated_at": self.tick()}
        return data

    def order(self, n, cust, version):
        items = [{"sku": "SKU-%05d" % self.rng.randrange(50000),
                  "quantity": 1 + self.rng.randrange(3),
                  "unit_price": "%d.%02d" % (10 + self.rng.randrange(500), self.rng.randrange(100))}
                 for _ in range(1 + self.rng.randrange(3))]
        total = sum(int(i["unit_price"].replace(".", "")) * i["quantity"] for i in items)
        return {"external_id": "O-%07d" % n, "brand": cust["brand"],
                "customer_external_id": cust["external_id"],
                "status": STATUSES[version % len(STATUSES)], "currency": "BRL",
                "total": "%d.%02d" % (total // 100, total % 100), "items": items,
                "placed_at": ts(0), "updated_at": self.tick()}

    def maybe_state(self, stream):
        every = self.args.state_every
        if self.args.state_type == "GLOBAL":
            if self.since_global >= every:
                self.state()
        elif self.since_state[stream] >= every:
            self.state(stream)

    def invalid_record(self, i):
        kind = i % 4
        n = 9000000 + i
        if kind == 0:
            data = self.customer(n, 1)
            del data["external_id"]
            data["external_id"] = None
            self.record("customers", data, False, "missing_field external_id")
        elif kind == 1:
            data = self.customer(n, 1)
            data["email"] = "not-an-email"
            self.record("customers", data, False, "invalid_format email")
        elif kind == 2:
            cust = self.rng.choice(self.customers)
            data = self.order(n, cust, 1)
            data["total"] = 12.5
            self.record("orders", data, False, "invalid_type total")
            self.maybe_state("orders")
            return
        else:
            data = self.order(n, {"external_id": "C-MISSING-%d" % i, "brand": "aurora"}, 1)
            self.record("orders", data, False, "unknown_customer")
            self.maybe_state("orders")
            return
        self.maybe_state("customers")

    def run(self):
        a = self.args
        versions = {}
        order_versions = {}
        invalid_at = set()
        total = a.customers + a.orders
        if a.invalid and total:
            step = max(1, total // (a.invalid + 1))
            invalid_at = {step * (k + 1) for k in range(a.invalid)}
        ci = oi = 0
        inv = 0
        for i in range(total):
            if i in invalid_at and self.customers:
                self.invalid_record(inv)
                inv += 1
            # interleave: customers lead, orders follow customers already sent
            want_order = self.customers and (ci >= a.customers or
                                             self.rng.random() < a.orders / max(1, total))
            if not want_order and ci < a.customers:
                if ci > 10 and self.rng.random() < a.update_rate:
                    n = self.rng.randrange(ci)
                else:
                    n = ci
                    ci += 1
                versions[n] = versions.get(n, 0) + 1
                data = self.customer(n, versions[n])
                self.record("customers", data, True)
                if versions[n] == 1:
                    self.customers.append(data)
                self.maybe_state("customers")
            elif oi < a.orders:
                if oi > 10 and self.rng.random() < a.update_rate:
                    n = self.rng.randrange(oi)
                    cust = order_versions[n][1]
                else:
                    n = oi
                    oi += 1
                    cust = self.rng.choice(self.customers)
                v = order_versions.get(n, (0, cust))[0] + 1
                order_versions[n] = (v, cust)
                self.record("orders", self.order(n, cust, v), True)
                self.maybe_state("orders")
        # final states, the platform's stream-status traces
        if a.state_type == "GLOBAL":
            self.state()
        else:
            self.state("customers")
            self.state("orders")
        if a.complete:
            for s in ("customers", "orders"):
                self.emit({"type": "TRACE", "trace": {
                    "type": "STREAM_STATUS", "emitted_at": float(1767225600000 + self.clock),
                    "stream_status": {"stream_descriptor": descriptor(s, a.namespace),
                                      "status": "COMPLETE"}}})


def descriptor(name, namespace):
    """A StreamDescriptor; no "namespace" key when there is none."""
    d = {"name": name}
    if namespace:
        d["namespace"] = namespace
    return d


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--customers", type=int, default=100)
    p.add_argument("--orders", type=int, default=200)
    p.add_argument("--update-rate", type=float, default=0.1,
                   help="share of records that are newer versions of earlier ones")
    p.add_argument("--invalid", type=int, default=0, help="invalid records to mix in")
    p.add_argument("--state-every", type=int, default=50,
                   help="records of a stream between two of its states")
    p.add_argument("--state-type", choices=["STREAM", "GLOBAL"], default="STREAM")
    p.add_argument("--namespace", default=None)
    p.add_argument("--complete", action="store_true", help="end with STREAM_STATUS COMPLETE")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="-")
    p.add_argument("--expected", help="write the expected outcome here")
    a = p.parse_args()
    g = Generator(a)
    g.out = sys.stdout if a.out == "-" else open(a.out, "w", encoding="utf-8")
    g.run()
    if g.out is not sys.stdout:
        g.out.close()
    if a.expected:
        with open(a.expected, "w", encoding="utf-8") as f:
            json.dump({"customers": g.expected["customers"], "orders": g.expected["orders"],
                       "invalid": g.invalid, "states": g.state_id, "lines": g.lines}, f)


if __name__ == "__main__":
    main()
