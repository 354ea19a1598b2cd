#!/usr/bin/env python3
"""Tiny ERP (Olist) API v3 emulator: the read side a source needs.

A local, in-memory Tiny account with seeded, deterministic data
(``README-tiny.md`` beside this file says what it does where Tiny's
documentation is silent):

* ``POST /realms/tiny/protocol/openid-connect/token``: Keycloak-style,
  client credentials in the form body, grants ``authorization_code`` and
  ``refresh_token``; each refresh rotates the refresh token (the old one
  answers 400 ``{"error":"invalid_grant"}``); access tokens live 4 h,
  refresh tokens 24 h.
* ``GET /public-api/v3/contatos``, ``/produtos``, ``/pedidos``: lists
  ``{"itens":[...],"paginacao":{"limit","offset","total"}}`` with ``limit``
  (default 100, clamped at 100) and ``offset``; details
  ``/{...}/{id}`` answer the bare object; ``/estoque/{idProduto}`` the stock.
* Filters: contacts ``dataAtualizacao``, products ``dataAlteracao``, orders
  ``dataAtualizacao`` (``YYYY-MM-DD HH:MM:SS``, Brazil time, a lower bound,
  inclusive). Contacts and products carry those fields; orders carry none.
* Per-account reads per minute (``--per-minute``): over it, HTTP 429 with
  ``X-RateLimit-Limit/Remaining/Reset``; every answer carries those headers.
* 400 ``{"mensagem","detalhes":[{"campo","mensagem"}]}``; 401, 404 with an
  empty body.
* Seeded faults (``POST /_admin/faults``): 429, 500, 503, resets,
  ``token_expire``.

Standard library only. Nothing on stdout; one start-up line on stderr.
"""

import copy
import datetime
import os
import random
import re
import secrets
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import httpbase  # noqa: E402

API = "/public-api/v3"
TOKEN_PATH = "/realms/tiny/protocol/openid-connect/token"
MAX_LIMIT = 100
BRT = datetime.timezone(datetime.timedelta(hours=-3))
NAMES = ("Ana Souza", "Bruno Lima", "Carla Costa", "Diego Alves", "Elaine Rocha", "Fabio Melo",
         "Gabriela Nunes", "Heitor Dias", "Isabela Pinto", "Joao Ramos")
GARMENTS = ("Camiseta", "Vestido", "Calca", "Blusa", "Saia", "Jaqueta")
SIZES = ("P", "M", "G", "GG")
COLOURS = ("Preto", "Branco", "Azul", "Verde")


def brt(t):
    return datetime.datetime.fromtimestamp(t, BRT).strftime("%Y-%m-%d %H:%M:%S")


def parse_brt(text):
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(
            tzinfo=BRT).timestamp()
    except ValueError:
        return None


class Account:
    def __init__(self, seed, contacts, products, orders, now):
        rng = random.Random("tiny:%s" % seed)
        self.contacts, self.products, self.orders, self.stock = {}, {}, {}, {}
        self.next_id = 700000000

        def past():
            return now - rng.uniform(3600, 300 * 86400)

        for i in range(contacts):
            cid = self._id()
            created = past()
            name = rng.choice(NAMES)
            self.contacts[cid] = {
                "id": cid, "nome": name, "codigo": "C-%d" % (i + 1), "fantasia": "",
                "tipoPessoa": "F", "cpfCnpj": "", "inscricaoEstadual": "", "rg": "",
                "telefone": "", "celular": "(11) 9%04d-%04d" % (rng.randrange(10000),
                                                               rng.randrange(10000)),
                "email": "%s%d@exemplo.com.br" % (name.split()[0].lower(), i + 1),
                "endereco": {"endereco": "Rua A", "numero": str(rng.randrange(1, 999)),
                             "complemento": "", "bairro": "Centro", "municipio": "Sao Paulo",
                             "cep": "01000-000", "uf": "SP", "pais": "Brasil"},
                "vendedor": {"id": 0, "nome": ""}, "situacao": "B", "statusCrm": "C",
                "dataCriacao": brt(created), "_mtime": rng.uniform(created, now - 60)}
            self.contacts[cid]["dataAtualizacao"] = brt(self.contacts[cid]["_mtime"])
        sellable = []
        for i in range(products):
            pid = self._id()
            created = past()
            garment, colour = rng.choice(GARMENTS), rng.choice(COLOURS)
            price = round(rng.uniform(29, 399), 2)
            variants = rng.random() < 0.6
            sku = "%s-%04d" % (garment[:3].upper(), i + 1)
            mtime = rng.uniform(created, now - 60)
            parent = {"id": pid, "sku": sku, "descricao": "%s %s" % (garment, colour),
                      "tipo": "V" if variants else "S", "situacao": "A",
                      "dataCriacao": brt(created), "dataAlteracao": brt(mtime), "unidade": "UN",
                      "gtin": "", "precos": {"preco": price, "precoPromocional": 0,
                                             "precoCusto": round(price * 0.4, 2),
                                             "precoCustoMedio": round(price * 0.4, 2)},
                      "estoque": {"localizacao": ""}, "tipoVariacao": "P" if variants else "N",
                      "variacoes": [], "_mtime": mtime}
            self.products[pid] = parent
            if variants:
                for size in rng.sample(SIZES, rng.randrange(2, 5)):
                    vid = self._id()
                    parent["variacoes"].append({
                        "id": vid, "descricao": "%s - %s %s" % (parent["descricao"], size,
                                                                 colour),
                        "sku": "%s-%s" % (sku, size), "gtin": "",
                        "precos": dict(parent["precos"]),
                        "estoque": {"controlar": True, "sobEncomenda": False,
                                    "diasPreparacao": 0, "localizacao": "", "minimo": 0,
                                    "maximo": 0, "quantidade": 0},
                        "grade": [{"chave": "Tamanho", "valor": size},
                                  {"chave": "Cor", "valor": colour}]})
                    sellable.append((vid, "%s-%s" % (sku, size), price))
            else:
                sellable.append((pid, sku, price))
        for pid, sku, _ in sellable:
            saldo = rng.randrange(0, 40)
            reserved = rng.randrange(0, 3)
            self.stock[pid] = {"saldo": saldo, "reservado": reserved, "codigo": sku}
        cids = sorted(self.contacts)
        for i in range(orders):
            oid = self._id()
            created = past()
            items = []
            for _ in range(rng.randrange(1, 4)) if sellable else ():
                pid, sku, price = rng.choice(sellable)
                items.append({"produto": {"id": pid, "sku": sku, "descricao": sku, "tipo": "P"},
                              "quantidade": rng.randrange(1, 4), "valorUnitario": price,
                              "infoAdicional": ""})
            total = round(sum(x["valorUnitario"] * x["quantidade"] for x in items), 2)
            c = self.contacts[rng.choice(cids)] if cids else None
            self.orders[oid] = {
                "id": oid, "numeroPedido": i + 1, "situacao": rng.choice((0, 3, 1, 5, 6)),
                "data": datetime.datetime.fromtimestamp(created, BRT).strftime("%Y-%m-%d"),
                "dataPrevista": "", "cliente": {k: c[k] for k in ("id", "nome", "codigo",
                                                                   "email", "celular")}
                if c else {}, "valorTotalProdutos": total, "valorTotalPedido": total,
                "itens": items, "origemPedido": 0, "_created": created,
                "_mtime": rng.uniform(created, now - 60)}

    def _id(self):
        self.next_id += 1
        return self.next_id


def public(r):
    return {k: v for k, v in r.items() if not k.startswith("_")}


ORDER_LIST = ("id", "situacao", "numeroPedido", "dataPrevista", "cliente", "origemPedido")


class App:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.hold = httpbase.GenerationHold(self.lock)
        self.faults = httpbase.FaultInjector(args.seed, httpbase.API_FAULT_KINDS,
                                             min_retry_after=0)
        self.reset()

    def reset(self):
        with self.lock:
            self.account = Account(self.args.seed, self.args.contacts, self.args.products,
                                   self.args.orders,
                                   time.time() if self.args.epoch is None else self.args.epoch)
            self.tokens = {}  # access token -> (expires at, refresh generation)
            self.refresh = {self.args.refresh_token: time.time() + 86400}
            self.generation = 0  # refresh tokens issued
            self.hold.clear()
            self.window = (0, 0)  # (minute, reads)
            self.counters = {}
            self.faults.reset()

    def count(self, k):
        self.counters[k] = self.counters.get(k, 0) + 1

    def token(self, body):
        form = httpbase.query_params(body.decode("utf-8", "replace"))
        cid, secret = self.args.client.split(":", 1)
        if form.get("client_id") != cid or form.get("client_secret") != secret:
            return 401, {"error": "invalid_client",
                         "error_description": "Invalid client credentials"}, {}
        with self.lock:
            grant = form.get("grant_type")
            if grant == "refresh_token":
                rt = form.get("refresh_token", "")
                if self.refresh.get(rt, 0) <= time.time():
                    self.count("invalid_grant")
                    return 400, {"error": "invalid_grant",
                                 "error_description": "Token is not active"}, {}
                del self.refresh[rt]
            elif grant != "authorization_code" or form.get("code") != self.args.auth_code:
                return 400, {"error": "invalid_grant", "error_description": "Code not valid"}, {}
            access = "eyJ" + secrets.token_urlsafe(60)
            rt = "eyR" + secrets.token_urlsafe(40)
            self.generation += 1
            self.tokens[access] = (time.time() + self.args.access_ttl, self.generation)
            self.refresh = {rt: time.time() + 86400}
            self.count("tokens_issued")
            return 200, {"access_token": access, "expires_in": self.args.access_ttl,
                         "refresh_expires_in": 86400, "refresh_token": rt,
                         "token_type": "Bearer", "not-before-policy": 0,
                         "session_state": secrets.token_hex(8), "scope": "openid email"}, {}

    def api(self, handler):
        fault = self.faults.draw()
        if fault == "reset":
            return None
        token = httpbase.bearer_token(handler.headers)
        now = time.time()
        with self.lock:
            if not token or self.tokens.get(token, (0, 0))[0] <= now:
                self.count("unauthorized")
                return 401, b"", {}
            generation = self.tokens[token][1]
            self.hold.wait(generation)
            minute = int(now // 60)
            reads = self.window[1] + 1 if self.window[0] == minute else 1
            self.window = (minute, reads)
            limit = self.args.per_minute
            headers = {}
            if limit > 0:
                headers = {"X-RateLimit-Limit": str(limit),
                           "X-RateLimit-Remaining": str(max(0, limit - reads)),
                           "X-RateLimit-Reset": str(60 - int(now) % 60)}
                if reads > limit:
                    self.count("rate_limited")
                    return 429, b"", headers
            if fault in ("429", "500", "503"):
                self.count("fault." + fault)
                return int(fault), b"", headers
            if fault == "token_expire":
                self.count("fault.token_expire")
                self.tokens.pop(token, None)
                return 401, b"", headers
            self.count("api_requests")
            self.count("path." + handler.url_path[len(API):].split("/")[1])
            status, body = self.route(handler)
            return status, body, headers

    def route(self, handler):
        path = handler.url_path[len(API):]
        q = httpbase.query_params(handler.query)
        acc = self.account
        m = re.fullmatch(r"/(contatos|produtos|pedidos)(?:/([0-9]+))?", path)
        if m:
            store = {"contatos": acc.contacts, "produtos": acc.products,
                     "pedidos": acc.orders}[m.group(1)]
            if m.group(2):
                rec = store.get(int(m.group(2)))
                return (200, public(rec)) if rec else (404, b"")
            return self.list(m.group(1), store, q)
        m = re.fullmatch(r"/estoque/([0-9]+)", path)
        if m:
            pid = int(m.group(1))
            if pid not in acc.stock:
                return 404, b""
            s = acc.stock[pid]
            return 200, {"id": pid, "nome": "", "codigo": s["codigo"], "unidade": "UN",
                         "saldo": s["saldo"], "reservado": s["reservado"],
                         "disponivel": s["saldo"] - s["reservado"], "localizacao": "",
                         "depositos": [{"id": 1, "nome": "Geral", "desconsiderar": False,
                                        "saldo": s["saldo"], "reservado": s["reservado"],
                                        "disponivel": s["saldo"] - s["reservado"],
                                        "empresa": "Minha Loja LTDA"}]}
        return 404, b""

    def list(self, kind, store, q):
        def bad(field, msg):
            return 400, {"mensagem": "Ocorreram erros de validação",
                         "detalhes": [{"campo": field, "mensagem": msg}]}

        try:
            limit = min(int(q.get("limit", "100")), MAX_LIMIT)
            offset = int(q.get("offset", "0"))
        except ValueError:
            return bad("limit", "limit e offset devem ser inteiros")
        if limit < 1 or offset < 0:
            return bad("limit", "limit deve ser positivo e offset não negativo")
        key = "dataAlteracao" if kind == "produtos" else "dataAtualizacao"
        lo = None
        if key in q:
            lo = parse_brt(q[key])
            if lo is None:
                return bad(key, "formato esperado: YYYY-MM-DD HH:MM:SS")
        rows = [store[i] for i in sorted(store) if lo is None or int(store[i]["_mtime"]) >= lo]
        page = rows[offset:offset + limit]
        if kind == "pedidos":
            items = [{k: r[k] for k in ORDER_LIST if k in r} for r in page]
            for it, r in zip(items, page):
                it["dataCriacao"] = r["data"]
                it["valor"] = "%.2f" % r["valorTotalPedido"]
        elif kind == "produtos":
            items = [{k: v for k, v in public(r).items() if k != "variacoes"} for r in page]
        else:
            items = [public(r) for r in page]
        return 200, {"itens": items, "paginacao": {"limit": limit, "offset": offset,
                                                   "total": len(rows)}}

    def admin(self, handler, body):
        path = handler.url_path
        with self.lock:
            if path == "/_admin/health":
                return 200, {"status": "ok"}
            if path == "/_admin/stats":
                return 200, {"counters": dict(self.counters), "generation": self.generation,
                             "held": self.hold.held}
            if path == "/_admin/refresh_token":
                return 200, {"generation": self.generation}
            if path == "/_admin/hold":
                return 200, self.hold.configure(httpbase.parse_json(body or b"{}"))
            if path == "/_admin/mutate":
                return 200, self.mutate(httpbase.parse_json(body or b"{}"))
            if path == "/_admin/faults":
                if handler.method == "POST":
                    return 200, self.faults.configure(httpbase.parse_json(body or b"{}"))
                return 200, self.faults.view()
            if path == "/_admin/expire_tokens":
                self.tokens.clear()
                return 200, {"status": "expired"}
            if path == "/_admin/dump":
                acc = self.account
                return 200, {"contatos": [dict(public(r), _mtime=r["_mtime"])
                                          for _, r in sorted(acc.contacts.items())],
                             "produtos": [dict(public(r), _mtime=r["_mtime"])
                                          for _, r in sorted(acc.products.items())],
                             "pedidos": [dict(public(r), _mtime=r["_mtime"])
                                         for _, r in sorted(acc.orders.items())],
                             "estoque": {str(k): v for k, v in sorted(acc.stock.items())}}
        if path == "/_admin/reset":
            self.reset()
            return 200, {"status": "reset"}
        raise httpbase.HttpError(404, "not_found", "no such admin endpoint")


    def mutate(self, spec):
        """{"contatos": n, "pedidos": n, "produtos": n, "new_pedidos": n,
        "stock": n, "seed": s}: change n records of each kind now (a field
        and the modification time); returns the ids touched."""
        acc = self.account
        rng = random.Random(spec.get("seed", 1))
        now = time.time()
        touched = {}
        for kind, store in (("contatos", acc.contacts), ("pedidos", acc.orders),
                            ("produtos", acc.products)):
            ids = rng.sample(sorted(store), min(spec.get(kind, 0), len(store)))
            for rid in ids:
                r = store[rid]
                r["_mtime"] = now
                if kind == "contatos":
                    r["celular"] = "(11) 9%04d-%04d" % (rng.randrange(10000), rng.randrange(10000))
                    r["dataAtualizacao"] = brt(now)
                elif kind == "pedidos":
                    r["situacao"] = 2
                else:
                    r["precos"]["preco"] = round(r["precos"]["preco"] + 1, 2)
                    r["dataAlteracao"] = brt(now)
                    for v in r["variacoes"]:
                        v["precos"]["preco"] = r["precos"]["preco"]
            touched[kind] = ids
        new = []
        for _ in range(spec.get("new_pedidos", 0)):
            src = acc.orders[rng.choice(sorted(acc.orders))]
            oid = acc._id()
            acc.orders[oid] = dict(copy.deepcopy(src), id=oid, numeroPedido=len(acc.orders) + 1,
                                   _created=now, _mtime=now)
            new.append(oid)
        touched["new_pedidos"] = new
        stock_ids = rng.sample(sorted(acc.stock), min(spec.get("stock", 0), len(acc.stock)))
        for pid in stock_ids:
            acc.stock[pid]["saldo"] += 1
        touched["stock"] = stock_ids
        return touched


class Handler(httpbase.Handler):
    server_version = "tiny-emulator/1"

    def handle_request(self):
        body = self.read_body()
        if self.url_path.startswith("/_admin/"):
            status, obj = self.app.admin(self, body)
            self.send_json(status, obj)
            return
        if self.url_path == TOKEN_PATH:
            if self.method != "POST":
                raise httpbase.HttpError(405, "method_not_allowed", "use POST",
                                         headers={"Allow": "POST"})
            status, obj, headers = self.app.token(body)
            self.send_json(status, obj, headers)
            return
        if not self.url_path.startswith(API + "/") or self.method != "GET":
            self.send_bytes(404, b"")
            return
        answer = self.app.api(self)
        if answer is None:
            self.reset_connection()
            return
        status, obj, headers = answer
        if isinstance(obj, bytes):
            self.send_bytes(status, obj, headers)
        else:
            self.send_json(status, obj, headers)


def main():
    p = httpbase.emulator_parser("Tiny ERP API v3 emulator", epoch=True)
    p.add_argument("--client", default="tiny-client:tiny-secret", help="ID:SECRET")
    p.add_argument("--refresh-token", default="rt-tiny-initial-000000000000")
    p.add_argument("--auth-code", default="code-0000")
    p.add_argument("--contacts", type=int, default=120)
    p.add_argument("--products", type=int, default=40)
    p.add_argument("--orders", type=int, default=150)
    p.add_argument("--per-minute", type=int, default=60, help="reads per minute; 0: off")
    p.add_argument("--access-ttl", type=int, default=14400)
    args = p.parse_args()
    return httpbase.run_server(args, Handler, App(args),
                               lambda url: "tiny emulator on %s (seed %d)" % (url, args.seed))


if __name__ == "__main__":
    sys.exit(main())
