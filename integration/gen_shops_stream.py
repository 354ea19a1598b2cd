#!/usr/bin/env python3
"""Generate a sample Airbyte message stream of Shops products and inventory.

The stream holds RECORD messages for the `products` stream (parent products,
and variants that carry `parent_sku` and size/color attributes) and the
`inventory` stream (sku, location among a few, quantity), later versions of
some of them (newer `updated_at`), invalid records of known kinds, STATE
messages (STREAM or GLOBAL) every K records with the platform's integer `id`
and `sourceStats`, and optionally STREAM_STATUS COMPLETE traces at the end.
Output is deterministic for a seed.

A product always comes before its variants and its inventory in the stream,
so whatever the import boundaries, a commit finds the product it names.

Invalid records (fresh skus that no valid record uses), in turn:

| kind          | record                                   | reason                      |
|---------------|------------------------------------------|-----------------------------|
| missing sku   | product or inventory without `sku`       | missing_field sku (local)   |
| price number  | product with `"price": 59.9`             | invalid_type price (upload) |
| price format  | product with `"price": "59.999"` / "1e3" | invalid_format price        |
| reserved sku  | valid product whose sku starts `RSV-`    | invalid_format sku (upload, |
|               |                                          | emulator run with           |
|               |                                          | --reserved-sku-prefix RSV-) |
| unknown sku   | inventory for a sku that exists nowhere  | unknown_sku sku (commit)    |
| unknown parent| variant whose parent_sku exists nowhere  | unknown_parent parent_sku   |

The "expected" JSON written beside it holds the latest valid version of every
product (by sku) and of every inventory item (by "sku|location"), the invalid
records with their reasons, `rejected_by` ("destination" or "target") and
input lines, the number of states and lines, valid records and distinct keys
per stream, and `clock` (the last updated_at, in seconds after 2026-01-01:
pass more than it as --time-offset for a later stream). --counts-only leaves
the items out (for large benchmark streams).

    gen_shops_stream.py --products 1000 --inventory 3000 --invalid 10 \\
        --out in.jsonl --expected exp.json
"""

import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from airbyte_input import GEN_EPOCH, StreamGenerator  # noqa: E402

BRANDS = ["aurora", "bossa", "caju", "duna", "estela", "flor", "garoa"]
KINDS = ["Camiseta", "Calça", "Vestido", "Tênis", "Jaqueta", "Bermuda", "Saia", "Blusa"]
SIZES = ["PP", "P", "M", "G", "GG", "36", "38", "40", "42"]
COLORS = ["azul", "preto", "branco", "verde", "vermelho", "areia", "rosa"]
COLLECTIONS = ["verao-2026", "inverno-2026", "basicos", "praia"]
LOCATIONS = ["cd-sao-paulo", "loja-rio", "loja-bh", "loja-poa", "cd-recife", "loja-sp-2"]
DEFAULT_LOCATION = "default"
# skus of the reserved_sku kind: the emulator rejects them only when started
# with --reserved-sku-prefix RSV- (a rule beyond the contract)
RESERVED_PREFIX = "RSV-"
BASE_EPOCH = int(GEN_EPOCH.timestamp())
STREAMS = ("products", "inventory")


def inv_key(sku, location):
    return "%s|%s" % (sku, location if location is not None else DEFAULT_LOCATION)


class Generator(StreamGenerator):
    def __init__(self, args):
        self.a = args
        self.streams = STREAMS
        self.state_type = args.state_type
        self.namespace = args.namespace
        self.rng = random.Random(args.seed)
        self.clock = args.time_offset
        self.state_id = args.state_id_start
        self.since_state = {s: 0 for s in STREAMS}
        self.since_global = 0
        self.lines = 0
        self.out = None
        self.keep = args.expected is not None
        self.expected = {"products": {}, "inventory": {}}
        self.invalid = []
        self.valid_records = {s: 0 for s in STREAMS}
        # generation state
        self.parents = []            # skus of valid parent products
        self.product_skus = []       # every valid product sku (parents and variants)
        self.product_seen = set()
        self.product_version = {}    # sku -> (version, parent_sku or None, attributes seed)
        self.inv_keys = []           # (sku, location or None) emitted so far
        self.inv_seen = set()
        self.next_parent = args.sku_start
        self.fresh_bad = 0

    # -- output ----------------------------------------------------------------

    def record(self, stream, data, valid, reason=None, rejected_by=None, key=None):
        # the platform leaves the key out when there is no namespace
        rec = {"stream": stream}
        if self.a.namespace:
            rec["namespace"] = self.a.namespace
        rec["emitted_at"] = (BASE_EPOCH + self.clock) * 1000
        rec["data"] = data
        self.emit({"type": "RECORD", "record": rec})
        self.since_state[stream] += 1
        self.since_global += 1
        if valid:
            if self.keep:
                self.expected[stream][key] = None if self.a.counts_only else data
            self.valid_records[stream] += 1
        else:
            self.invalid.append({"stream": stream, "key": key, "reason": reason,
                                 "rejected_by": rejected_by, "line": self.lines})
        self.maybe_state(stream)

    def maybe_state(self, stream):
        every = self.a.state_every
        if every <= 0:
            return
        if self.a.state_type == "GLOBAL":
            if self.since_global >= every:
                self.state()
        elif self.since_state[stream] >= every:
            self.state(stream)

    # -- items -----------------------------------------------------------------

    def product(self, sku, version, parent=None, attrs=None):
        r = self.rng
        n = sum(map(ord, sku))
        kind = KINDS[n % len(KINDS)]
        cents = 1990 + (n * 37 + version * 500) % 40000
        data = {"sku": sku}
        if parent is not None:
            data["parent_sku"] = parent
        data["brand"] = BRANDS[n % len(BRANDS)]
        data["title"] = "%s %s v%d" % (kind, sku, version)
        if r.random() < 0.5:
            data["description"] = "%s de algodão, coleção %s. Versão %d." % (
                kind, COLLECTIONS[n % len(COLLECTIONS)], version)
        data["price"] = "%d.%02d" % (cents // 100, cents % 100)
        if r.random() < 0.3:
            c = cents + 1000
            data["compare_at_price"] = "%d.%02d" % (c // 100, c % 100)
        data["currency"] = "BRL"
        a = {"collection": COLLECTIONS[n % len(COLLECTIONS)],
             "gender": "F" if n % 2 else "M"}
        if attrs:
            a.update(attrs)
        data["attributes"] = a
        data["images"] = ["https://img.shops.example/%s/%d.jpg" % (sku, i)
                          for i in range(1 + n % 3)]
        if r.random() < 0.03:
            data["active"] = False
        elif r.random() < 0.2:
            data["active"] = True
        data["updated_at"] = self.tick()
        return data

    def new_product(self):
        """A new parent, or a new variant of an earlier parent."""
        r = self.rng
        if self.parents and r.random() < self.a.variant_rate:
            for _ in range(8):
                parent = self.parents[r.randrange(max(0, len(self.parents) - 200),
                                                  len(self.parents))]
                size, color = r.choice(SIZES), r.choice(COLORS)
                sku = "%s-%s-%s" % (parent, size, color.upper())
                if sku not in self.product_seen:
                    attrs = {"size": size, "color": color}
                    return sku, parent, attrs
        sku = "%s%06d" % (self.a.sku_prefix, self.next_parent)
        self.next_parent += 1
        return sku, None, None

    def emit_product(self, update):
        if update and self.product_skus:
            sku = self.product_skus[self.rng.randrange(len(self.product_skus))]
            version, parent, attrs = self.product_version[sku]
            version += 1
        else:
            sku, parent, attrs = self.new_product()
            version = 1
            self.product_seen.add(sku)
            self.product_skus.append(sku)
            if parent is None:
                self.parents.append(sku)
        self.product_version[sku] = (version, parent, attrs)
        self.record("products", self.product(sku, version, parent, attrs), True, key=sku)

    def emit_inventory(self, update):
        r = self.rng
        if update and self.inv_keys:
            sku, loc = self.inv_keys[r.randrange(len(self.inv_keys))]
        else:
            for _ in range(8):
                sku = self.product_skus[r.randrange(len(self.product_skus))]
                loc = None if r.random() < 0.1 else r.choice(LOCATIONS[:self.a.locations])
                if (sku, loc) not in self.inv_seen:
                    break
            if (sku, loc) not in self.inv_seen:
                self.inv_seen.add((sku, loc))
                self.inv_keys.append((sku, loc))
        data = {"sku": sku}
        if loc is not None:
            data["location"] = loc
        data["quantity"] = r.randrange(0, 500) if r.random() > 0.05 else 0
        data["updated_at"] = self.tick()
        self.record("inventory", data, True, key=inv_key(sku, loc))

    def emit_invalid(self, i):
        kinds = self.a.invalid_kinds
        kind = kinds[i % len(kinds)]
        self.fresh_bad += 1
        bad = "BAD-%s%05d" % (self.a.sku_prefix, self.fresh_bad)
        if kind == "missing_sku":
            if i // len(kinds) % 2 == 0:
                data = self.product(bad, 1)
                del data["sku"]
                self.record("products", data, False, "missing_field sku", "destination",
                            key=None)
            else:
                data = {"sku": None, "location": LOCATIONS[0], "quantity": 3,
                        "updated_at": self.tick()}
                self.record("inventory", data, False, "missing_field sku", "destination",
                            key=None)
        elif kind == "price_number":
            data = self.product(bad, 1)
            data["price"] = 59.9
            self.record("products", data, False, "invalid_type price", "target", key=bad)
        elif kind == "price_format":
            data = self.product(bad, 1)
            data["price"] = ["59.999", "1e3", "12,50", "-"][i // len(kinds) % 4]
            self.record("products", data, False, "invalid_format price", "target", key=bad)
        elif kind == "reserved_sku":
            data = self.product(RESERVED_PREFIX + bad, 1)
            self.record("products", data, False, "invalid_format sku", "target",
                        key=data["sku"])
        elif kind == "unknown_sku":
            data = {"sku": bad, "location": LOCATIONS[1], "quantity": 7,
                    "updated_at": self.tick()}
            self.record("inventory", data, False, "unknown_sku sku", "target",
                        key=inv_key(bad, LOCATIONS[1]))
        elif kind == "unknown_parent":
            data = self.product(bad + "-M-AZUL", 1, parent="NOPARENT-" + bad,
                                attrs={"size": "M", "color": "azul"})
            self.record("products", data, False, "unknown_parent parent_sku", "target",
                        key=data["sku"])
        else:
            raise SystemExit("unknown invalid kind %r" % kind)

    # -- the stream ------------------------------------------------------------

    def run(self):
        a = self.a
        r = self.rng
        total = a.products + a.inventory
        invalid_at = {}
        if a.invalid and total:
            step = max(1, total // (a.invalid + 1))
            for k in range(a.invalid):
                invalid_at[min(total - 1, step * (k + 1))] = \
                    invalid_at.get(min(total - 1, step * (k + 1)), 0) + 1
        pi = ii = 0
        ninv = 0
        for i in range(total):
            for _ in range(invalid_at.get(i, 0)):
                self.emit_invalid(ninv)
                ninv += 1
            want_inv = self.product_skus and ii < a.inventory and (
                pi >= a.products or r.random() < a.inventory / float(total))
            if want_inv:
                self.emit_inventory(ii > 10 and r.random() < a.update_rate)
                ii += 1
            else:
                self.emit_product(pi > 10 and r.random() < a.update_rate)
                pi += 1
        # final states covering every record, then the platform's statuses
        if a.state_type == "GLOBAL":
            if self.since_global or a.state_every <= 0:
                self.state()
        else:
            for s in STREAMS:
                if self.since_state[s]:
                    self.state(s)
        for s in a.complete_streams:
            self.emit({"type": "TRACE", "trace": {
                "type": "STREAM_STATUS", "emitted_at": float((BASE_EPOCH + self.clock) * 1000),
                "stream_status": {"stream_descriptor": descriptor(s, a.namespace),
                                  "status": "COMPLETE"}}})


def descriptor(name, namespace):
    """A StreamDescriptor; no "namespace" key when there is none."""
    d = {"name": name}
    if namespace:
        d["namespace"] = namespace
    return d


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--products", type=int, default=200,
                   help="product records (parents, variants and their updates)")
    p.add_argument("--inventory", type=int, default=600,
                   help="inventory records (new sku/location pairs and updates)")
    p.add_argument("--variant-rate", type=float, default=0.5,
                   help="share of new products that are variants of an earlier parent")
    p.add_argument("--locations", type=int, default=4, choices=range(1, len(LOCATIONS) + 1),
                   help="distinct locations used (besides records without one: 'default')")
    p.add_argument("--update-rate", type=float, default=0.1,
                   help="share of records that are newer versions of earlier ones")
    p.add_argument("--invalid", type=int, default=0, help="invalid records to mix in")
    p.add_argument("--invalid-kinds", default="missing_sku,price_number,price_format,"
                   "unknown_sku,unknown_parent",
                   help="comma-separated kinds, used in turn")
    p.add_argument("--state-every", type=int, default=50,
                   help="records of a stream (GLOBAL: of any stream) between two states")
    p.add_argument("--state-type", choices=["STREAM", "GLOBAL"], default="STREAM")
    p.add_argument("--state-id-start", type=int, default=0, help="first state id - 1")
    p.add_argument("--namespace", default=None)
    p.add_argument("--complete", action="store_true",
                   help="end with STREAM_STATUS COMPLETE for both streams")
    p.add_argument("--complete-streams", default=None,
                   help="comma-separated streams to end with COMPLETE (instead of --complete)")
    p.add_argument("--sku-prefix", default="P-", help="prefix of parent skus")
    p.add_argument("--sku-start", type=int, default=0, help="number of the first parent sku")
    p.add_argument("--time-offset", type=int, default=0,
                   help="seconds after 2026-01-01 of the first updated_at")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="-")
    p.add_argument("--expected", help="write the expected outcome here")
    p.add_argument("--counts-only", action="store_true",
                   help="the expected file holds counts instead of the items (large streams)")
    a = p.parse_args(argv)
    a.invalid_kinds = [k for k in a.invalid_kinds.split(",") if k]
    if a.complete_streams is not None:
        a.complete_streams = [s for s in a.complete_streams.split(",") if s]
    else:
        a.complete_streams = list(STREAMS) if a.complete else []
    g = Generator(a)
    g.out = sys.stdout if a.out == "-" else open(a.out, "w", encoding="utf-8",
                                                   buffering=1 << 20)
    g.run()
    if g.out is not sys.stdout:
        g.out.close()
    if a.expected:
        out = {"invalid": g.invalid, "states": g.state_id - a.state_id_start,
               "lines": g.lines, "clock": g.clock, "next_sku": g.next_parent,
               "valid_records": g.valid_records,
               "distinct": {s: len(g.expected[s]) for s in STREAMS}}
        if not a.counts_only:
            out["products"] = g.expected["products"]
            out["inventory"] = g.expected["inventory"]
        with open(a.expected, "w", encoding="utf-8") as f:
            json.dump(out, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
