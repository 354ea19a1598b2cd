"""totvs_helpers.py - running source-totvs-moda against the TOTVS Moda emulator in tests."""

import os

import lib

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "emulators", "totvs_emulator.py")
PASSWORD = "apipass1234"
SECRET = "totvs-secret"
HUB_KEY = "hub-key-7f3a9c2e5b1d4086"
HUB_PREFIX = "/treino"
STREAMS = ("individuals", "legal_entities", "sales_orders", "references", "products", "balances")
KEYS = {"individuals": ("code",), "legal_entities": ("code",),
        "sales_orders": ("branchCode", "orderCode"), "references": ("referenceCode",),
        "products": ("productCode",), "balances": ("productCode",)}


def emulator(persons=60, companies=5, references=8, orders=50, rate=0, extra=(), timeout=20):
    args = ["--persons", str(persons), "--companies", str(companies), "--references",
            str(references), "--orders", str(orders), "--rate", str(rate)] + list(extra)
    return lib.Server(EMULATOR, args, timeout=timeout)


def hub_emulator(status=401, header=None, open_token=False, **kw):
    """The emulator as the TOTVS Moda API Hub's training environment: the
    API under HUB_PREFIX, every request (the token request too, unless
    open_token) needing HUB_KEY in header (x-api-key by default)."""
    extra = ["--api-key", HUB_KEY, "--api-key-status", str(status), "--path-prefix", HUB_PREFIX]
    if header:
        extra += ["--api-key-header", header]
    if open_token:
        extra.append("--hub-open-token")
    return emulator(extra=extra + list(kw.pop("extra", ())), **kw)


def hub_config(srv, key=HUB_KEY, header=None, **over):
    """config() through the Hub emulator: api_url with its path, the key."""
    auth = {"mode": "api_hub", "api_key": key}
    if header:
        auth["api_key_header"] = header
    return config(srv, api_url=srv.url + HUB_PREFIX, authentication=auth, **over)


def config(srv, **over):
    cfg = {"api_url": srv.url, "client_id": "totvs-client", "client_secret": SECRET,
           "username": "apiuser", "password": PASSWORD, "branch_codes": [1, 2, 3],
           "collection_type": 1, "requests_per_second": 0, "page_size": 20}
    cfg.update(over)
    return cfg


def catalog(modes=None):
    """modes: stream -> sync mode (a stream left out is not selected);
    default every stream incremental."""
    if modes is None:
        modes = {s: "incremental" for s in STREAMS}
    return lib.source_catalog(modes)


latest_config = lib.latest_config
last_states = lib.last_states
records = lib.records


def key(stream, row):
    return tuple(row[k] for k in KEYS[stream])


def collection(row):
    for c in row.get("classifications") or []:
        if c["type"] == 1:
            return c
    return None


def expected(dump, stream, branches=(1, 2, 3), stocks=(1,), prices=(1,)):
    """What the source should emit for stream, from the emulator's dump,
    keyed by primary key (maxChangeFilterDate left out: compared apart)."""
    out = {}
    if stream in ("individuals", "legal_entities", "references"):
        for r in dump[stream]:
            row = {k: v for k, v in r.items() if not k.startswith("_")}
            if stream == "references":
                row.pop("details", None)
                row["_ab_collection"] = collection(r)
            out[key(stream, row)] = row
    elif stream == "sales_orders":
        for r in dump["orders"]:
            if r["branchCode"] not in branches:
                continue
            row = {k: v for k, v in r.items() if not k.startswith("_")}
            row.pop("observations", None)
            out[key(stream, row)] = row
    elif stream == "products":
        for r in dump["products"]:
            row = {k: v for k, v in r.items() if not k.startswith("_")}
            row.pop("additionalFields", None)
            row.pop("details", None)
            row["prices"] = [{"branchCode": branches[0], "priceCode": c,
                              "priceName": {1: "VAREJO", 2: "ATACADO"}[c],
                              "price": r["_prices"][str(c)], "promotionalPrice": None}
                             for c in prices]
            row["_ab_collection"] = collection(r)
            out[key(stream, row)] = row
    elif stream == "balances":
        for r in dump["balances"]:
            out[(r["productCode"],)] = [
                (b["branchCode"], b["stockCode"], b["stock"], b["salesOrder"])
                for b in r["balances"] if b["branchCode"] in branches and b["stockCode"] in stocks]
    return out
