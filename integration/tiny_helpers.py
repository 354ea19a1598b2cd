"""tiny_helpers.py - running source-tiny against the Tiny emulator in tests."""

import os

import lib

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "emulators", "tiny_emulator.py")
RT0 = "rt-tiny-initial-000000000000"
STREAMS = ("contatos", "pedidos", "produtos", "variacoes", "estoque")


def emulator(contacts=60, products=12, orders=50, per_minute=0, extra=(), timeout=20):
    args = ["--contacts", str(contacts), "--products", str(products), "--orders", str(orders),
            "--per-minute", str(per_minute)] + list(extra)
    return lib.Server(EMULATOR, args, timeout=timeout)


def config(srv, **over):
    cfg = {"api_url": srv.url + "/public-api/v3",
           "token_url": srv.url + "/realms/tiny/protocol/openid-connect/token",
           "client_id": "tiny-client", "client_secret": "tiny-secret", "refresh_token": RT0,
           "requests_per_second": 0, "page_size": 20}
    cfg.update(over)
    return cfg


def catalog(modes=None):
    """modes: stream -> sync mode (a stream left out is not selected);
    default every stream, estoque full refresh, the rest incremental."""
    if modes is None:
        modes = {s: ("full_refresh" if s == "estoque" else "incremental") for s in STREAMS}
    return lib.source_catalog(modes, full_refresh_only=("estoque",))


latest_config = lib.latest_config
last_states = lib.last_states
records = lib.records


def public(row):
    return {k: v for k, v in row.items() if not k.startswith("_")}


def expected(dump, stream):
    """What a full read of stream must emit, from the emulator's dump: the
    records as the API serves them (stock: id and balance of each product
    or variation that has stock)."""
    if stream == "estoque":
        return {int(pid): s["saldo"] for pid, s in dump["estoque"].items()}
    if stream == "variacoes":
        out = {}
        for p in dump["produtos"]:
            parent = {k: p[k] for k in ("id", "sku", "descricao", "dataAlteracao")}
            for v in p["variacoes"]:
                out[v["id"]] = dict(v, produtoPai=parent,
                                    _ab_grade={g["chave"]: g["valor"] for g in v["grade"]})
        return out
    return {r["id"]: public(r) for r in dump[stream]}
