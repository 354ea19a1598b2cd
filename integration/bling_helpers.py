"""bling_helpers.py - running source-bling against the Bling emulator in tests."""

import os

import lib

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "emulators", "bling_emulator.py")
RT0 = "rt-initial-0000000000000000"
STREAMS = ("contatos", "pedidos", "produtos", "variacoes", "estoques")


def emulator(contacts=60, products=12, orders=50, rate=0, extra=(), timeout=20):
    args = ["--contacts", str(contacts), "--products", str(products), "--orders", str(orders),
            "--rate", str(rate)] + list(extra)
    return lib.Server(EMULATOR, args, timeout=timeout)


def config(srv, **over):
    cfg = {"api_url": srv.url + "/Api/v3", "client_id": "bling-client",
           "client_secret": "bling-secret", "refresh_token": RT0,
           "requests_per_second": 0, "page_size": 20}
    cfg.update(over)
    return cfg


def catalog(modes=None):
    """modes: stream -> sync mode (a stream left out is not selected);
    default every stream, estoques full refresh, the rest incremental."""
    if modes is None:
        modes = {s: ("full_refresh" if s == "estoques" else "incremental") for s in STREAMS}
    return lib.source_catalog(modes, full_refresh_only=("estoques",))


latest_config = lib.latest_config
last_states = lib.last_states


def records(messages, stream=None, raw=False):
    """The records' data; without raw, the source's own "_ab_window_end"
    stamp is left out (what Bling sends remains)."""
    out = lib.records(messages, stream)
    if raw:
        return out
    return [{k: v for k, v in r.items() if k != "_ab_window_end"} for r in out]


def public(row):
    return {k: v for k, v in row.items() if not k.startswith("_")}
