#!/usr/bin/env python3
"""Bling ERP API v3 emulator (the read side a source needs).

A local, in-memory Bling account with seeded, deterministic data; the
behaviour below and the choices where Bling's documentation is silent are in
``README-bling.md`` beside this file:

* ``POST /Api/v3/oauth/token``: HTTP Basic client authentication, grants
  ``authorization_code`` and ``refresh_token``; every refresh rotates the
  refresh token (the old one answers ``invalid_grant`` from then on); access
  tokens live ``--access-ttl`` seconds (21600, as Bling's).
* ``GET /Api/v3/contatos``, ``/pedidos/vendas``, ``/produtos`` (lists) and
  ``/{...}/{id}`` (details); ``GET /Api/v3/estoques/saldos`` with the
  required ``idsProdutos[]``.
* Lists answer ``{"data": [...]}`` only: no count, no page number. ``pagina``
  is 1-based, ``limite`` defaults to 100 and is clamped at 100; past the end
  ``{"data": []}``.
* ``dataAlteracaoInicial``/``dataAlteracaoFinal`` (``YYYY-MM-DD HH:MM:SS``,
  Brazil time UTC-03:00, inclusive) filter on a modification time that is
  never serialised; a window longer than 366 days is a 400.
* ``criterio``: products default 1 and contacts default 3 ("últimos
  incluídos": created in the last 30 days); products 5 / contacts 1 list all.
* 3 requests/s per account (token bucket, burst 3) and a daily quota, both
  answered with 429 ``TOO_MANY_REQUESTS``; an expired or unknown token is 401
  ``invalid_token``.
* Seeded fault injection (``POST /_admin/faults``): 429, 500, 503, connection
  resets and ``token_expire`` (the token of the request is revoked, 401).

Admin endpoints (``/_admin/...``, no authentication): health, stats, faults,
dump (everything the account holds, with modification times), mutate (change
records now), refresh_token (a fresh authorization of the app: a new valid
refresh token), hold (hold requests made with tokens from a given refresh
generation until released), reset.

Standard library only. Nothing on stdout; one start-up line on stderr.
"""

import datetime
import os
import random
import re
import secrets
import sys
import threading
import time
import urllib.parse
import collections
import copy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import httpbase  # noqa: E402
from brdata import ascii_fold, cpf, money  # noqa: E402

API = "/Api/v3"
MAX_LIMIT = 100
DEFAULT_LIMIT = 100
MAX_WINDOW_DAYS = 366
RECENT_DAYS = 30
BRT = datetime.timezone(datetime.timedelta(hours=-3))

FIRST_NAMES = ("Ana", "Bruno", "Carla", "Diego", "Elaine", "Fábio", "Gabriela", "Heitor",
               "Isabela", "João", "Lívia", "Marcos", "Natália", "Otávio", "Paula", "Renato")
LAST_NAMES = ("Silva", "Souza", "Oliveira", "Pereira", "Costa", "Rodrigues", "Almeida",
              "Nascimento", "Lima", "Araújo", "Gonçalves", "Ribeiro")
CITIES = (("São Paulo", "SP", "01000-000"), ("Rio de Janeiro", "RJ", "20000-000"),
          ("Bento Gonçalves", "RS", "95700-000"), ("Belo Horizonte", "MG", "30100-000"),
          ("Curitiba", "PR", "80000-000"), ("Recife", "PE", "50000-000"))
GARMENTS = ("Camiseta", "Vestido", "Calça", "Blusa", "Saia", "Jaqueta", "Bermuda", "Camisa")
SIZES = ("P", "M", "G", "GG")
COLOURS = ("Preto", "Branco", "Azul", "Verde", "Vermelho")
DEPOSITOS = (14887164, 14887165)


def bling_error(status, type_, message, description, headers=None):
    body = {"error": {"type": type_, "message": message, "description": description}}
    return status, body, headers or {}


def fmt_brt(t):
    return datetime.datetime.fromtimestamp(t, BRT).strftime("%Y-%m-%d %H:%M:%S")


def parse_brt(text):
    try:
        dt = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return dt.replace(tzinfo=BRT).timestamp()


class Account:
    """One company's data. Every record has hidden ``_mtime`` and
    ``_created`` (epoch seconds), never serialised."""

    def __init__(self, seed, contacts, products, orders, now):
        rng = random.Random("bling:%s" % seed)
        self.contacts = {}
        self.products = {}   # id -> product (parents, simple, variations)
        self.orders = {}
        self.stock = {}      # product id -> {deposito id: saldo}
        self.next_id = 16000000000

        def past():
            return now - rng.uniform(3600, 400 * 86400)

        for i in range(contacts):
            cid = self._new_id()
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            city, uf, cep = rng.choice(CITIES)
            created = past()
            doc = cpf(rng)
            self.contacts[cid] = {
                "id": cid, "nome": "%s %s" % (first, last), "codigo": "C%05d" % (i + 1),
                "situacao": "A", "numeroDocumento": doc,
                "telefone": "(54) 3%03d-%04d" % (rng.randrange(1000), rng.randrange(10000)),
                "celular": "(11) 9%04d-%04d" % (rng.randrange(10000), rng.randrange(10000)),
                "fantasia": "", "tipo": "F", "indicadorIe": 9, "ie": "", "rg": "",
                "inscricaoMunicipal": "", "orgaoEmissor": "",
                "email": ascii_fold("%s.%s%d@exemplo.com.br" % (first.lower(), last.lower(),
                                                                 i + 1)),
                "emailNotaFiscal": "", "orgaoPublico": "N",
                "endereco": {"geral": {"endereco": "Rua %s" % rng.choice(LAST_NAMES),
                                       "cep": cep, "bairro": "Centro", "municipio": city,
                                       "uf": uf, "numero": str(rng.randrange(1, 2000)),
                                       "complemento": ""}},
                "vendedor": {"id": 0},
                "dadosAdicionais": {"dataNascimento": "19%02d-%02d-%02d" % (
                    rng.randrange(50, 100), rng.randrange(1, 13), rng.randrange(1, 29)),
                    "sexo": rng.choice("MF"), "naturalidade": "Brasileira"},
                "financeiro": {"limiteCredito": 0, "condicaoPagamento": "30",
                               "categoria": {"id": 0}},
                "pais": {"nome": "BRASIL"},
                "tiposContato": [{"id": 1, "descricao": "Cliente"}],
                "pessoasContato": [],
                "_created": created, "_mtime": rng.uniform(created, now - 60),
            }
        sellable = []
        for i in range(products):
            pid = self._new_id()
            garment = rng.choice(GARMENTS)
            colour = rng.choice(COLOURS)
            created = past()
            price = money(rng.uniform(29, 399))
            with_variants = rng.random() < 0.6
            code = "%s-%04d" % (garment[:3].upper(), i + 1)
            parent = {
                "id": pid, "idProdutoPai": 0, "nome": "%s %s" % (garment, colour),
                "codigo": code, "preco": price, "precoCusto": money(price * 0.45),
                "tipo": "P", "situacao": "A", "formato": "V" if with_variants else "S",
                "descricaoCurta": "%s em algodão" % garment,
                "imagemURL": "https://www.bling.com.br/imagens/%d.jpg" % pid,
                "unidade": "UN", "pesoLiquido": 0.3, "pesoBruto": 0.35, "gtin": "",
                "marca": "Marca Exemplo", "categoria": {"id": 0},
                "estoque": {"minimo": 0, "maximo": 0, "crossdocking": 0, "localizacao": "",
                            "saldoVirtualTotal": "0.0"},
                "variacoes": [],
                "_created": created, "_mtime": rng.uniform(created, now - 60),
            }
            self.products[pid] = parent
            if with_variants:
                for j, size in enumerate(rng.sample(SIZES, rng.randrange(2, 5))):
                    vid = self._new_id()
                    variant = {
                        "id": vid, "idProdutoPai": pid, "nome": "%s %s %s" % (
                            garment, colour, size),
                        "codigo": "%s-%s" % (code, size), "preco": price,
                        "precoCusto": parent["precoCusto"], "tipo": "P", "situacao": "A",
                        "formato": "S", "descricaoCurta": parent["descricaoCurta"],
                        "imagemURL": parent["imagemURL"], "unidade": "UN",
                        "gtin": "789%010d" % (vid % 10 ** 10),
                        "estoque": {"saldoVirtualTotal": "0.0"},
                        "variacao": {"nome": "Tamanho:%s;Cor:%s" % (size, colour),
                                     "ordem": j + 1,
                                     "produtoPai": {"id": pid, "cloneInfo": True}},
                        "_created": created, "_mtime": parent["_mtime"],
                    }
                    self.products[vid] = variant
                    sellable.append(vid)
            else:
                sellable.append(pid)
        for pid, p in self.products.items():
            if p["formato"] == "S":
                self.stock[pid] = {d: float(rng.randrange(0, 50)) for d in DEPOSITOS}
        contact_ids = sorted(self.contacts)
        for i in range(orders):
            oid = self._new_id()
            created = past()
            items = []
            for _ in range(rng.randrange(1, 4)) if sellable else ():
                pid = rng.choice(sellable)
                p = self.products[pid]
                qty = rng.randrange(1, 4)
                items.append({"id": self._new_id(), "codigo": p["codigo"], "unidade": "UN",
                              "quantidade": qty, "desconto": 0, "valor": p["preco"],
                              "aliquotaIPI": 0, "descricao": p["nome"],
                              "descricaoDetalhada": "", "produto": {"id": pid},
                              "comissao": {"base": 0, "aliquota": 0, "valor": 0},
                              "naturezaOperacao": {"id": 0}})
            total_products = money(sum(it["valor"] * it["quantidade"] for it in items))
            freight = money(rng.choice((0, 9.9, 19.9, 29.9)))
            contact = self.contacts[rng.choice(contact_ids)] if contact_ids else None
            day = datetime.datetime.fromtimestamp(created, BRT).strftime("%Y-%m-%d")
            self.orders[oid] = {
                "id": oid, "numero": i + 1, "numeroLoja": "LOJA-%06d" % (i + 1),
                "data": day, "dataSaida": day, "dataPrevista": day,
                "totalProdutos": total_products, "total": money(total_products + freight),
                "contato": ({"id": contact["id"], "nome": contact["nome"], "tipoPessoa": "F",
                             "numeroDocumento": contact["numeroDocumento"]}
                            if contact else {"id": 0, "nome": "", "tipoPessoa": "F",
                                             "numeroDocumento": ""}),
                "situacao": {"id": rng.choice((6, 9, 15)), "valor": 0},
                "loja": {"id": 0, "unidadeNegocio": {"id": 0}},
                "numeroPedidoCompra": "", "outrasDespesas": 0, "observacoes": "",
                "observacoesInternas": "", "desconto": {"valor": 0, "unidade": "REAL"},
                "categoria": {"id": 0}, "notaFiscal": {"id": 0},
                "tributacao": {"totalICMS": 0, "totalIPI": 0},
                "itens": items,
                "parcelas": [{"id": self._new_id(), "dataVencimento": day,
                              "valor": money(total_products + freight), "observacoes": "",
                              "caut": "", "formaPagamento": {"id": 1}}],
                "transporte": {"fretePorConta": 0, "frete": freight, "quantidadeVolumes": 1,
                               "pesoBruto": 0.5, "prazoEntrega": 5,
                               "contato": {"id": 0, "nome": "Transportador"}, "volumes": []},
                "vendedor": {"id": 0}, "intermediador": {"cnpj": "", "nomeUsuario": ""},
                "taxas": {"taxaComissao": 0, "custoFrete": 0, "valorBase": 0},
                "_created": created, "_mtime": rng.uniform(created, now - 60),
            }

    def _new_id(self):
        self.next_id += 1
        return self.next_id

    def product_detail(self, pid):
        p = self.products[pid]
        out = public(p)
        if p["formato"] == "V":
            out["variacoes"] = [self.product_detail(v["id"]) for v in self.variations(pid)]
        saldo = sum(sum(self.stock.get(v["id"], {}).values()) for v in self.variations(pid)) \
            if p["formato"] == "V" else sum(self.stock.get(pid, {}).values())
        out["estoque"] = dict(out.get("estoque", {}), saldoVirtualTotal="%.1f" % saldo)
        return out

    def variations(self, pid):
        return [v for v in self.products.values() if v["idProdutoPai"] == pid]


LIST_FIELDS = {
    "contatos": ("id", "nome", "codigo", "situacao", "numeroDocumento", "telefone", "celular"),
    "pedidos": ("id", "numero", "numeroLoja", "data", "dataSaida", "dataPrevista",
                "totalProdutos", "total", "contato", "situacao", "loja"),
    "produtos": ("id", "idProdutoPai", "nome", "codigo", "preco", "precoCusto", "estoque",
                 "tipo", "situacao", "formato", "descricaoCurta", "imagemURL"),
}


def public(record):
    return {k: v for k, v in record.items() if not k.startswith("_")}


def list_item(kind, record):
    return {k: record[k] for k in LIST_FIELDS[kind] if k in record}


class App:
    def __init__(self, args):
        self.args = args
        self.lock = threading.RLock()
        self.started = time.time()
        self.faults = httpbase.FaultInjector(args.seed, httpbase.API_FAULT_KINDS,
                                             min_retry_after=0)
        self.limiter = httpbase.RateLimiter(args.rate, args.burst)
        self.hold = httpbase.GenerationHold(self.lock)
        self.reset()

    def reset(self):
        with self.lock:
            self.account = Account(self.args.seed, self.args.contacts, self.args.products,
                                   self.args.orders,
                                   time.time() if self.args.epoch is None else self.args.epoch)
            self.tokens = {}        # access token -> (expires_at, generation)
            self.refresh = {}       # refresh token -> generation (the one valid token)
            self.generation = 0
            self.counters = {}
            self.day_count = 0
            self.hold.clear()
            self.limiter.clear()
            self.faults.reset()
            self.events = collections.deque(maxlen=1000)
            self._sorted = {}
            self._new_refresh(self.args.refresh_token)

    def count(self, name, n=1):
        self.counters[name] = self.counters.get(name, 0) + n

    def _new_refresh(self, token=None):
        self.generation += 1
        token = token or "rt_%d_%s" % (self.generation, secrets.token_urlsafe(24))
        self.refresh = {token: self.generation}
        return token

    # -- OAuth --------------------------------------------------------------

    def token(self, handler, body):
        try:
            creds = httpbase.basic_credentials(handler.headers)
        except ValueError:
            creds = None
        if creds is None or creds != tuple(self.args.client.split(":", 1)):
            self.count("token_refused")
            return bling_error(401, "invalid_client", "invalid_client",
                               "Client authentication failed")
        form = httpbase.query_params(body.decode("utf-8", "replace"))
        grant = form.get("grant_type")
        with self.lock:
            if grant == "refresh_token":
                rt = form.get("refresh_token", "")
                if rt not in self.refresh:
                    self.count("token_invalid_grant")
                    return bling_error(400, "invalid_grant", "invalid_grant",
                                       "Invalid refresh token")
            elif grant == "authorization_code":
                if form.get("code") != self.args.auth_code:
                    return bling_error(400, "invalid_grant", "invalid_grant",
                                       "Invalid authorization code")
            else:
                return bling_error(400, "unsupported_grant_type", "unsupported_grant_type",
                                   "grant_type must be authorization_code or refresh_token")
            new_rt = self._new_refresh()
            access = "at_%d_%s" % (self.generation, secrets.token_hex(20))
            self.tokens[access] = (time.time() + self.args.access_ttl, self.generation)
            self.count("tokens_issued")
            self.events.append(("token", self.generation))
            return 200, {"access_token": access, "expires_in": self.args.access_ttl,
                         "token_type": "Bearer", "scope": "98309 318257570",
                         "refresh_token": new_rt}, {}

    def authenticate(self, handler):
        token = httpbase.bearer_token(handler.headers)
        with self.lock:
            entry = self.tokens.get(token) if token else None
            if entry is None or entry[0] <= time.time():
                self.tokens.pop(token, None)
                self.count("unauthorized")
                return None
            return token, entry[1]

    # -- API ----------------------------------------------------------------

    def api(self, handler):
        path = handler.url_path[len(API):]
        fault = self.faults.draw()
        delay = self.faults.latency()
        if delay:
            time.sleep(delay)
        if fault == "reset":
            with self.lock:
                self.count("fault.reset")
            return None
        auth = self.authenticate(handler)
        if auth is None:
            return bling_error(401, "invalid_token", "invalid_token",
                               "The access token provided is invalid")
        token, generation = auth
        with self.lock:
            self.events.append(("api", generation))
            self.hold.wait(generation)
            allowed, _, retry = self.limiter.take("account", time.monotonic())
            if not allowed:
                self.count("rate_limited")
                return bling_error(429, "TOO_MANY_REQUESTS", "Limite de requisições atingido.",
                                   "O limite de requisições por segundo foi atingido, tente "
                                   "novamente mais tarde.")
            self.day_count += 1
            if self.day_count > self.args.daily_quota:
                self.count("quota_exceeded")
                return bling_error(429, "TOO_MANY_REQUESTS", "Limite de requisições atingido.",
                                   "O limite diário de requisições foi atingido.")
            if fault in ("429", "500", "503"):
                self.count("fault." + fault)
                if fault == "429":
                    return bling_error(429, "TOO_MANY_REQUESTS",
                                       "Limite de requisições atingido.",
                                       "O limite de requisições por segundo foi atingido.")
                return bling_error(int(fault), "SERVER_ERROR", "Erro interno",
                                   "Ocorreu um erro inesperado.")
            if fault == "token_expire":
                self.count("fault.token_expire")
                self.tokens.pop(token, None)
                return bling_error(401, "invalid_token", "invalid_token",
                                   "The access token provided is invalid")
            self.count("api_requests")
            self.count("path." + re.sub(r"/[0-9]+", "/{id}", path))
            return self.route(path, handler)

    def route(self, path, handler):
        q = handler.query
        params = {}
        multi = {}
        for name, value in urllib.parse.parse_qsl(q, keep_blank_values=True):
            params.setdefault(name, value)
            multi.setdefault(name, []).append(value)
        acc = self.account
        m = re.fullmatch(r"/(contatos|produtos|pedidos/vendas)(?:/([0-9]+))?", path)
        if m:
            kind = "pedidos" if m.group(1) == "pedidos/vendas" else m.group(1)
            store = {"contatos": acc.contacts, "produtos": acc.products,
                     "pedidos": acc.orders}[kind]
            if m.group(2) is not None:
                rec = store.get(int(m.group(2)))
                if rec is None:
                    return bling_error(404, "RESOURCE_NOT_FOUND", "Recurso não encontrado",
                                       "O recurso requisitado não foi encontrado")
                data = acc.product_detail(rec["id"]) if kind == "produtos" else public(rec)
                return 200, {"data": data}, {}
            return self.list(kind, store, params)
        if path == "/estoques/saldos":
            ids = multi.get("idsProdutos[]", [])
            if not ids:
                return 400, {"error": {
                    "type": "MISSING_REQUIRED_FIELD_ERROR", "message": "Campo obrigatório",
                    "description": "O parâmetro idsProdutos é obrigatório",
                    "fields": [{"code": 1, "msg": "idsProdutos[] é obrigatório",
                                "element": "idsProdutos", "namespace": "ESTOQUES"}]}}, {}
            out = []
            for text in ids:
                if not text.isdigit() or int(text) not in acc.products:
                    continue
                pid = int(text)
                p = acc.products[pid]
                if p["formato"] == "V":
                    per = {}
                    for v in acc.variations(pid):
                        for d, s in acc.stock.get(v["id"], {}).items():
                            per[d] = per.get(d, 0.0) + s
                else:
                    per = acc.stock.get(pid, {})
                total = sum(per.values())
                out.append({"produto": {"id": pid, "codigo": p["codigo"]},
                            "saldoFisicoTotal": total, "saldoVirtualTotal": total,
                            "depositos": [{"id": d, "saldoFisico": s, "saldoVirtual": s}
                                          for d, s in sorted(per.items())]})
            return 200, {"data": out}, {}
        return bling_error(404, "RESOURCE_NOT_FOUND", "Recurso não encontrado",
                           "O recurso requisitado não foi encontrado")

    def _sorted_ids(self, store):
        key = (id(store), len(store))
        cached = self._sorted.get(key)
        if cached is None:
            cached = sorted(store)
            self._sorted = {k: v for k, v in self._sorted.items() if k[0] != key[0]}
            self._sorted[key] = cached
        return cached

    def list(self, kind, store, params):
        def bad(desc, element):
            return 400, {"error": {"type": "VALIDATION_ERROR", "message": "Parâmetro inválido",
                                   "description": desc,
                                   "fields": [{"code": 1, "msg": desc, "element": element,
                                               "namespace": kind.upper()}]}}, {}

        try:
            page = int(params.get("pagina", "1"))
            limit = int(params.get("limite", str(DEFAULT_LIMIT)))
        except ValueError:
            return bad("pagina e limite devem ser números inteiros", "pagina")
        if page < 1 or limit < 1:
            return bad("pagina e limite devem ser positivos", "pagina")
        limit = min(limit, MAX_LIMIT)
        lo = hi = None
        if "dataAlteracaoInicial" in params:
            lo = parse_brt(params["dataAlteracaoInicial"])
            if lo is None:
                return bad("dataAlteracaoInicial inválida", "dataAlteracaoInicial")
        if "dataAlteracaoFinal" in params:
            hi = parse_brt(params["dataAlteracaoFinal"])
            if hi is None:
                return bad("dataAlteracaoFinal inválida", "dataAlteracaoFinal")
        if lo is not None and hi is not None and hi - lo > MAX_WINDOW_DAYS * 86400:
            return bad("O período não pode ser maior que 1 ano", "dataAlteracaoFinal")
        now = time.time()
        if kind == "produtos":
            criterio = params.get("criterio", "1")
            recent_only = criterio == "1"
            tipo = params.get("tipo", "T")
        elif kind == "contatos":
            criterio = params.get("criterio", "3")
            recent_only = criterio == "3"
            tipo = "T"
        else:
            recent_only = False
            tipo = "T"
        rows = []
        ids = self._sorted_ids(store)
        if lo is None and hi is None and not recent_only and tipo == "T":
            # the common unfiltered page: no scan of the whole account
            start = (page - 1) * limit
            return 200, {"data": [list_item(kind, store[i])
                                  for i in ids[start:start + limit]]}, {}
        for rid in ids:
            rec = store[rid]
            # modification times have second precision, as the filters do
            mtime = int(rec["_mtime"])
            if lo is not None and mtime < lo:
                continue
            if hi is not None and mtime > hi:
                continue
            if recent_only and rec["_created"] < now - RECENT_DAYS * 86400:
                continue
            if tipo == "V" and not rec.get("idProdutoPai"):
                continue
            if tipo == "C" and rec.get("formato") != "V":
                continue
            if tipo == "PS" and (rec.get("formato") != "S" or rec.get("idProdutoPai")):
                continue
            rows.append(rec)
        start = (page - 1) * limit
        return 200, {"data": [list_item(kind, r) for r in rows[start:start + limit]]}, {}

    # -- admin --------------------------------------------------------------

    def admin(self, handler, body):
        path = handler.url_path
        with self.lock:
            if path == "/_admin/health":
                return 200, {"status": "ok"}, {}
            if path == "/_admin/stats":
                return 200, {"counters": dict(self.counters), "generation": self.generation,
                             "held": self.hold.held, "requests_today": self.day_count,
                             "events": list(self.events)}, {}
            if path == "/_admin/refresh_token":
                # what authorizing the app again gives: a fresh refresh token
                if handler.method == "POST":
                    return 200, {"refresh_token": self._new_refresh()}, {}
                return 200, {"generation": self.generation}, {}
            if path == "/_admin/faults":
                if handler.method == "POST":
                    return 200, self.faults.configure(httpbase.parse_json(body or b"{}")), {}
                return 200, self.faults.view(), {}
            if path == "/_admin/hold":
                return 200, self.hold.configure(httpbase.parse_json(body or b"{}")), {}
            if path == "/_admin/expire_tokens":
                n = len(self.tokens)
                self.tokens.clear()
                return 200, {"expired": n}, {}
            if path == "/_admin/reset":
                self.reset()
                return 200, {"status": "reset"}, {}
            if path == "/_admin/dump":
                acc = self.account

                def rows(store, detail=None):
                    return [dict(detail(r["id"]) if detail else public(r),
                                 _mtime=r["_mtime"]) for _, r in sorted(store.items())]
                stock = []
                for pid in sorted(acc.products):
                    status, saldo, _ = self.route("/estoques/saldos", _Q("idsProdutos[]=%d"
                                                                          % pid))
                    stock.extend(saldo["data"])
                return 200, {"contatos": rows(acc.contacts),
                             "pedidos": rows(acc.orders),
                             "produtos": rows({k: v for k, v in acc.products.items()
                                               if not v["idProdutoPai"]}, acc.product_detail),
                             "variacoes": rows({k: v for k, v in acc.products.items()
                                                if v["idProdutoPai"]}, acc.product_detail),
                             "estoques": stock}, {}
            if path == "/_admin/mutate":
                spec = httpbase.parse_json(body or b"{}")
                return 200, self.mutate(spec), {}
        raise httpbase.HttpError(404, "not_found", "no such admin endpoint")

    def mutate(self, spec):
        """{"contatos": n, "pedidos": n, "produtos": n, "new_pedidos": n,
        "stock": n, "seed": s}: change n records of each kind now (a field
        and the modification time; a product's price and time go to its
        variations too); returns the ids touched ("variacoes": those
        variations)."""
        acc = self.account
        rng = random.Random(spec.get("seed", 1))
        now = time.time()
        touched = {}
        for kind, store, change in (
                ("contatos", acc.contacts,
                 lambda r: r.update(celular="(11) 9%04d-%04d" % (rng.randrange(10000),
                                                                  rng.randrange(10000)))),
                ("pedidos", acc.orders, lambda r: r["situacao"].update(id=9)),
                ("produtos", {k: v for k, v in acc.products.items() if not v["idProdutoPai"]},
                 lambda r: r.update(preco=money(r["preco"] + 1)))):
            ids = rng.sample(sorted(store), min(spec.get(kind, 0), len(store)))
            for rid in ids:
                change(store[rid])
                store[rid]["_mtime"] = now
                if kind == "produtos":
                    for v in acc.variations(rid):
                        v["preco"] = store[rid]["preco"]
                        v["_mtime"] = now
            touched[kind] = ids
        touched["variacoes"] = sorted(v["id"] for pid in touched["produtos"]
                                      for v in acc.variations(pid))
        new = []
        for _ in range(spec.get("new_pedidos", 0)):
            src = acc.orders[rng.choice(sorted(acc.orders))]
            oid = acc._new_id()
            order = dict(copy.deepcopy(src), id=oid, numero=len(acc.orders) + 1, _created=now, _mtime=now)
            acc.orders[oid] = order
            new.append(oid)
        touched["new_pedidos"] = new
        stock_ids = rng.sample(sorted(acc.stock), min(spec.get("stock", 0), len(acc.stock)))
        for pid in stock_ids:
            acc.stock[pid][DEPOSITOS[0]] += 1
        touched["stock"] = stock_ids
        return touched


class _Q:
    """A query string where route() expects a handler."""

    def __init__(self, query):
        self.query = query


class Handler(httpbase.Handler):
    server_version = "bling-emulator/1"

    def handle_request(self):
        body = self.read_body()
        if self.url_path.startswith("/_admin/"):
            status, obj, headers = self.app.admin(self, body)
        elif self.url_path == API + "/oauth/token":
            if self.method != "POST":
                raise httpbase.HttpError(405, "method_not_allowed", "use POST",
                                         headers={"Allow": "POST"})
            status, obj, headers = self.app.token(self, body)
        elif self.url_path.startswith(API + "/"):
            if self.method != "GET":
                raise httpbase.HttpError(405, "method_not_allowed", "read-only emulator",
                                         headers={"Allow": "GET"})
            answer = self.app.api(self)
            if answer is None:
                self.reset_connection()
                return
            status, obj, headers = answer
        else:
            status, obj, headers = bling_error(404, "RESOURCE_NOT_FOUND", "Not found",
                                               "no such endpoint")
        self.send_json(status, obj, headers)


def main():
    p = httpbase.emulator_parser("Bling API v3 emulator", epoch=True)
    p.add_argument("--client", default="bling-client:bling-secret", help="ID:SECRET")
    p.add_argument("--refresh-token", default="rt-initial-0000000000000000",
                   help="the refresh token valid at start")
    p.add_argument("--auth-code", default="code-0000", help="the authorization code accepted")
    p.add_argument("--contacts", type=int, default=120)
    p.add_argument("--products", type=int, default=40)
    p.add_argument("--orders", type=int, default=150)
    p.add_argument("--rate", type=float, default=3.0, help="requests/s per account; 0: off")
    p.add_argument("--burst", type=float, default=3.0)
    p.add_argument("--daily-quota", type=int, default=120000)
    p.add_argument("--access-ttl", type=int, default=21600)
    args = p.parse_args()
    return httpbase.run_server(args, Handler, App(args),
                               lambda url: "bling emulator on %s (seed %d)" % (url, args.seed))


if __name__ == "__main__":
    sys.exit(main())
