#!/usr/bin/env python3
"""TOTVS Moda API V2 emulator (the read side a source needs).

A local, in-memory TOTVS Moda environment with seeded, deterministic data;
the behaviour and the choices where TOTVS's documentation is silent are in
``README-totvs.md`` beside this file:

* ``POST /api/totvsmoda/authorization/v2/token``: form grants ``password``
  (client id/secret in the body, user name and password), ``refresh_token``
  and ``client_credentials``; answers ``{access_token (a signed JWT),
  token_type, expires_in, refresh_token}``; access tokens live
  ``--access-ttl`` seconds. Refused grants answer 400 with the RFC 6749
  ``{"error": ..., "error_description": ...}``.
* POST searches with a JSON body ``{filter, option, expand, order, page,
  pageSize}``: ``person/v2/individuals/search``,
  ``person/v2/legal-entities/search``, ``sales-order/v2/orders/search``
  (``filter.branchCodeList`` required, at most 900),
  ``product/v2/products/search`` (SKUs of a size/colour grid, prices with
  ``option.prices``), ``product/v2/references/search`` and
  ``product/v2/balances/search`` (``option.balances`` required).
* Answers ``{"count","totalPages","hasNext","totalItems","items"}``; ``page``
  is 1-based; ``pageSize`` defaults to 100, at most 500 (1000 on balances),
  over it a 400.
* ``filter.change.startDate``/``endDate`` (ISO 8601; without an offset in
  the API's clock, Brazil UTC-03:00), inclusive, against each item's
  ``maxChangeFilterDate`` (serialised, local time, whole seconds).
* ``expand``: sub-arrays appear only when expanded; ``order``: comma list of
  fields, ``-`` for descending.
* Errors: 400 ``{"messages": [{"code","message","detailedMessage",
  "severity"}]}``; a missing, expired or unknown token is 401 with an empty
  body and ``WWW-Authenticate: Bearer error="invalid_token"``; over the rate
  limit 429 with ``Retry-After`` and a ``messages`` body.
* ``--api-key KEY``: the environment is reached through the TOTVS Moda API
  Hub, under ``--path-prefix`` (``/treino`` for the Hub's training
  environment): every request, the token request too (unless
  ``--hub-open-token``), must carry the key in ``--api-key-header``
  (``x-api-key``) besides its Bearer token; a missing or wrong key answers
  ``--api-key-status`` (401 or 403) with a ``messages`` body, before the
  token is looked at. The data are the same.
* Seeded fault injection (``POST /_admin/faults``): 429, 500, 503,
  connection resets and ``token_expire`` (the token of the request is
  revoked: 401).

Admin endpoints (``/_admin/...``, no authentication): health, stats, faults,
expire_tokens, dump (everything the environment holds, with modification
times), mutate (change records now), reset.

Standard library only. Nothing on stdout; one start-up line on stderr.
"""

import argparse
import base64
import bisect
import copy
import datetime
import hashlib
import hmac
import json
import math
import os
import random
import re
import secrets
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import httpbase  # noqa: E402
from brdata import ascii_fold, doc_digits, money  # noqa: E402

BASE = "/api/totvsmoda"
BRT = datetime.timezone(datetime.timedelta(hours=-3))
MAX_BRANCHES = 900

FIRST_NAMES = ("ANA", "BRUNO", "CARLA", "DIEGO", "ELAINE", "FABIO", "GABRIELA", "HEITOR",
               "ISABELA", "JOAO", "LIVIA", "MARCOS", "NATALIA", "OTAVIO", "PAULA", "RENATO")
LAST_NAMES = ("SILVA", "SOUZA", "OLIVEIRA", "PEREIRA", "COSTA", "RODRIGUES", "ALMEIDA",
              "NASCIMENTO", "LIMA", "ARAUJO", "GONCALVES", "RIBEIRO")
CITIES = ((3550308, "SÃO PAULO", "SP", "01001000"), (3304557, "RIO DE JANEIRO", "RJ", "20010000"),
          (4302105, "BENTO GONÇALVES", "RS", "95700000"), (3106200, "BELO HORIZONTE", "MG",
                                                           "30110000"),
          (4106902, "CURITIBA", "PR", "80010000"))
GARMENTS = ("VESTIDO", "BLUSA", "CALCA", "SAIA", "CAMISA", "JAQUETA", "BERMUDA", "MACACAO")
FABRICS = ("LINHO", "ALGODAO", "VISCOSE", "JEANS", "MALHA")
COLOURS = (("001", "PRETO"), ("002", "BRANCO"), ("014", "AZUL MARINHO"), ("027", "VERDE"),
           ("033", "VERMELHO"), ("045", "BEGE"))
GRIDS = {1: ("LETRAS", ("P", "M", "G", "GG")), 2: ("NUMERICA", ("36", "38", "40", "42", "44")),
         3: ("UNICO", ("U",))}
COLLECTIONS = (("V24", "VERAO 2024"), ("I24", "INVERNO 2024"), ("V25", "VERAO 2025"),
               ("I25", "INVERNO 2025"))
STATUSES = ("InProgress", "BillingReleased", "PartiallyAnswered", "Attended", "Canceled")
STOCKS = {1: "FISICO", 3: "FIS+INSPECAO"}
PRICE_TABLES = {1: "VAREJO", 2: "ATACADO"}
COLLECTION_TYPE = 1  # classification type holding the collection
GROUP_TYPE = 2

# search endpoints: path -> (kind, largest pageSize, primary key fields)
SEARCHES = {
    "/person/v2/individuals/search": ("individuals", 500, ("code",)),
    "/person/v2/legal-entities/search": ("legal_entities", 500, ("code",)),
    "/sales-order/v2/orders/search": ("orders", 500, ("branchCode", "orderCode")),
    "/product/v2/products/search": ("products", 500, ("productCode",)),
    "/product/v2/references/search": ("references", 500, ("referenceCode",)),
    "/product/v2/balances/search": ("balances", 1000, ("productCode",)),
}
# sub-arrays each kind serves only when expanded
EXPANDABLE = {
    "individuals": ("phones", "addresses", "emails", "classifications"),
    "legal_entities": ("phones", "addresses", "emails", "classifications"),
    "orders": ("items", "invoices", "shippingAddress", "observations", "classifications"),
    "products": ("barCodes", "classifications", "additionalFields", "details"),
    "references": ("colors", "classifications", "details"),
    "balances": ("locations",),
}


def fmt_local(t):
    """An epoch time as TOTVS writes it: local (UTC-03:00), no offset."""
    return datetime.datetime.fromtimestamp(int(t), BRT).strftime("%Y-%m-%dT%H:%M:%S")


_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:\.\d{1,7})?)?)?"
                  r"(Z|[+-]\d\d:?\d\d)?")


def parse_iso(text):
    """ISO 8601 as the API takes it: an offset or Z, else the API's clock;
    None when malformed."""
    if not isinstance(text, str):
        return None
    m = _ISO.fullmatch(text.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, tz = m.groups()
    if tz is None:
        zone = BRT
    elif tz == "Z":
        zone = datetime.timezone.utc
    else:
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        zone = datetime.timezone(sign * datetime.timedelta(hours=int(digits[:2]),
                                                           minutes=int(digits[2:])))
    try:
        dt = datetime.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0),
                               tzinfo=zone)
    except ValueError:
        return None
    return dt.timestamp()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def messages(code, message, detail=None):
    """The DomainNotificationMessage body of a 400."""
    return {"messages": [{"code": code, "message": message,
                          "detailedMessage": detail or message, "severity": "Error"}]}


class Environment:
    """One TOTVS Moda environment's data. Records keep hidden ``_mtime``
    (epoch seconds, whole) and, SKUs, ``_stock_mtime``; never serialised
    as such (``maxChangeFilterDate`` is derived from them)."""

    def __init__(self, seed, persons, companies, references, orders, branches, now):
        rng = random.Random("totvs:%s" % seed)
        self.branches = list(range(1, branches + 1))
        self.individuals = {}
        self.legal_entities = {}
        self.references = {}
        self.products = {}
        self.orders = {}
        self.stock = {}   # productCode -> {(branch, stockCode): [stock, salesOrder]}
        self.next_order = {b: 10000 for b in self.branches}
        self.next_order_id = 5500000
        self.rng = rng
        self.now = now  # the time the data is made as of

        def past():
            return int(now - rng.uniform(3600, 400 * 86400))

        def mtime(created):
            return int(rng.uniform(created, now - 60))

        code = 100000
        for i in range(persons):
            code += 1
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            ibge, city, uf, cep = rng.choice(CITIES)
            created = past()
            self.individuals[code] = {
                "code": code, "name": "%s %s" % (first, last), "cpf": doc_digits(rng, 9),
                "rg": str(rng.randrange(10 ** 8, 10 ** 9)),
                "gender": rng.choice(("Female", "Male")),
                "birthDate": "19%02d-%02d-%02dT00:00:00" % (rng.randrange(50, 100),
                                                            rng.randrange(1, 13),
                                                            rng.randrange(1, 29)),
                "nationality": "BRASILEIRA", "homeTown": None, "registrationStatus": "Normal",
                "isCustomer": True, "isSupplier": False, "isRepresentative": False,
                "isShippingCompany": False, "isEmployee": False, "isInactive": False,
                "isBloqued": False, "employeeStatus": None, "customerStatus": "Active",
                "insertDate": fmt_local(created), "branchInsertCode": rng.choice(self.branches),
                "addresses": [{"addressTypeCode": 1, "addressType": "Residencial",
                               "address": "RUA %s" % rng.choice(LAST_NAMES),
                               "addressNumber": rng.randrange(1, 2000), "complement": None,
                               "neighborhood": "CENTRO", "ibgeCityCode": ibge, "cityName": city,
                               "stateAbbreviation": uf, "cep": cep, "bcbCountryCode": 1058,
                               "countryName": "BRASIL"}],
                "phones": [{"typeCode": 3, "typeName": "CELULAR",
                            "number": "11%09d" % rng.randrange(900000000, 999999999),
                            "isDefault": True}],
                "emails": [{"typeName": "PESSOAL",
                            "email": ascii_fold("%s.%s%d@exemplo.com.br" % (
                                first.lower(), last.lower(), code))}],
                "classifications": [],
                "_mtime": mtime(created),
            }
        code = 900000
        for i in range(companies):
            code += 1
            ibge, city, uf, cep = rng.choice(CITIES)
            created = past()
            name = "%s MODAS LTDA" % rng.choice(LAST_NAMES)
            self.legal_entities[code] = {
                "code": code, "name": name, "fantasyName": name.split()[0] + " MODAS",
                "cnpj": doc_digits(rng, 12), "numberStateRegistration": None,
                "uf": uf, "isCustomer": True, "isSupplier": False, "isInactive": False,
                "isBloqued": False, "customerStatus": "Active",
                "insertDate": fmt_local(created), "branchInsertCode": rng.choice(self.branches),
                "addresses": [{"addressTypeCode": 2, "addressType": "Comercial",
                               "address": "AVENIDA %s" % rng.choice(LAST_NAMES),
                               "addressNumber": rng.randrange(1, 3000), "complement": None,
                               "neighborhood": "CENTRO", "ibgeCityCode": ibge, "cityName": city,
                               "stateAbbreviation": uf, "cep": cep, "bcbCountryCode": 1058,
                               "countryName": "BRASIL"}],
                "phones": [{"typeCode": 1, "typeName": "COMERCIAL",
                            "number": "11%08d" % rng.randrange(30000000, 39999999),
                            "isDefault": True}],
                "emails": [{"typeName": "COMERCIAL",
                            "email": "compras%d@%s.com.br" % (code, name.split()[0].lower())}],
                "classifications": [],
                "_mtime": mtime(created),
            }
        product_code = 120000
        for i in range(references):
            ref_code = "%s%04d" % (rng.choice("VIJ"), 1000 + i)
            garment, fabric = rng.choice(GARMENTS), rng.choice(FABRICS)
            grid = rng.choice(sorted(GRIDS))
            colours = rng.sample(COLOURS, rng.randrange(1, 4))
            coll = rng.choice(COLLECTIONS)
            created = past()
            price = money(rng.uniform(59, 699))
            ref_mtime = mtime(created)
            classifications = [
                {"type": COLLECTION_TYPE, "typeName": "COLECAO", "code": coll[0], "name": coll[1]},
                {"type": GROUP_TYPE, "typeName": "GRUPO", "code": "%02d" % (
                    GARMENTS.index(garment) + 1), "name": garment}]
            rng.shuffle(classifications)
            self.references[ref_code] = {
                "referenceId": 9000 + i, "referenceCode": ref_code,
                "referenceName": "%s %s" % (garment, fabric), "description": None,
                "gridCode": grid, "gridDescription": GRIDS[grid][0],
                "sizes": list(GRIDS[grid][1]), "isActive": True,
                "insertDate": fmt_local(created),
                "colors": [{"colorCode": c, "colorName": n} for c, n in colours],
                "classifications": classifications, "details": None,
                "_mtime": ref_mtime,
            }
            for ccode, cname in colours:
                for size in GRIDS[grid][1]:
                    product_code += 1
                    ean = "789%09d" % product_code
                    ean += str((10 - sum(int(c) * (3 if k % 2 else 1)
                                         for k, c in enumerate(ean)) % 10) % 10)
                    pmt = max(ref_mtime, mtime(created))
                    self.products[product_code] = {
                        "productCode": product_code, "productSku": ean,
                        "productName": "%s %s %s %s" % (garment, fabric, cname, size),
                        "referenceCode": ref_code, "referenceId": 9000 + i,
                        "referenceName": "%s %s" % (garment, fabric),
                        "colorCode": ccode, "colorName": cname, "size": size,
                        "gridCode": grid, "ncm": "62044300", "cst": "0", "cest": None,
                        "isActive": True, "isFinishedProduct": True, "isRawMaterial": False,
                        "isBulkMaterial": False, "isOwnProduction": True,
                        "measuredUnit": "PC", "isBlocked": False, "description": None,
                        "barCodes": [ean], "classifications": classifications,
                        "additionalFields": None, "details": None,
                        "_prices": {1: price, 2: money(price * 0.55)},
                        "_mtime": pmt,
                    }
                    self.stock[product_code] = {
                        (b, s): [rng.randrange(0, 40), rng.randrange(0, 3)]
                        for b in self.branches for s in STOCKS}
                    self.products[product_code]["_stock_mtime"] = mtime(created)
        skus = sorted(self.products)
        people = sorted(self.individuals)
        for i in range(orders):
            self._new_order(rng, rng.choice(self.branches), skus, people, past())

    def _new_order(self, rng, branch, skus, people, created, mtime=None):
        self.next_order[branch] += 1
        self.next_order_id += 1
        items = []
        for _ in range(rng.randrange(1, 4)) if skus else ():
            p = self.products[rng.choice(skus)]
            qty = rng.randrange(1, 4)
            price = p["_prices"][1]
            items.append({
                "productCode": p["productCode"], "productSku": p["productSku"],
                "name": p["productName"], "referenceCode": p["referenceCode"],
                "referenceName": p["referenceName"], "colorCode": p["colorCode"],
                "colorName": p["colorName"], "sizeName": p["size"], "quantity": qty,
                "toSettleQuantity": qty, "settledQuantity": 0, "canceledQuantity": 0,
                "pendingQuantity": qty, "originalPrice": price, "price": price,
                "discountPercentage": 0, "billingForecastDate": fmt_local(created)[:10]
                + "T00:00:00", "lastChangeDate": fmt_local(created),
                "insertDate": fmt_local(created)})
        gross = money(sum(it["price"] * it["quantity"] for it in items))
        freight = rng.choice((0, 9.9, 19.9, 29.9))
        person = self.individuals[rng.choice(people)] if people else None
        addr = person["addresses"][0] if person else None
        order = {
            "branchCode": branch, "orderCode": self.next_order[branch],
            "orderId": self.next_order_id, "customerOrderCode": "ECOM-%06d" % self.next_order_id,
            "integrationCode": None, "insertDate": fmt_local(created),
            "orderDate": fmt_local(created)[:10] + "T00:00:00",
            "arrivalDate": fmt_local(created + 5 * 86400)[:10] + "T00:00:00", "sellerCode": 12,
            "customerCode": person["code"] if person else 0,
            "customerCpfCnpj": person["cpf"] if person else None,
            "customerName": person["name"] if person else None,
            "representativeCode": 0, "representativeName": None, "operationCode": 510,
            "operationName": "VENDA E-COMMERCE", "paymentConditionCode": 3,
            "paymentConditionName": "CARTAO 3X", "priceTableCode": 1,
            "quantity": sum(it["quantity"] for it in items), "grossValue": gross,
            "discountValue": 0.0, "netValue": gross, "freightType": 1, "freightValue": freight,
            "shippingCompanyCode": 55, "shippingCompanyCpfCnpj": "00000000000191",
            "shippingCompanyName": "TRANSPORTADORA X",
            "totalAmountOrder": money(gross + freight), "statusOrder": rng.choice(STATUSES),
            "reasonBlockingCode": None, "hasPdvTransaction": False, "shippingService": "SEDEX",
            "items": items, "invoices": [], "observations": [], "classifications": [],
            "shippingAddress": dict(addr) if addr else None,
            "_mtime": int(mtime if mtime is not None else rng.uniform(created, self.now - 60)),
        }
        self.orders[(branch, order["orderCode"])] = order
        return order

    def store(self, kind):
        return {"individuals": self.individuals, "legal_entities": self.legal_entities,
                "orders": self.orders, "products": self.products,
                "references": self.references, "balances": self.products}[kind]


def public(record, kind, expand, option):
    """The record as the API serialises it for this search."""
    out = {}
    for k, v in record.items():
        if k.startswith("_"):
            continue
        if k in EXPANDABLE[kind] and k not in expand:
            continue
        out[k] = copy.deepcopy(v) if isinstance(v, (list, dict)) else v
    out["maxChangeFilterDate"] = fmt_local(record["_mtime"])
    return out


class App:
    def __init__(self, args):
        self.args = args
        self.lock = threading.RLock()
        self.key = hashlib.sha256(("totvs-key:%d" % args.seed).encode()).digest()
        self.faults = httpbase.FaultInjector(args.seed, httpbase.API_FAULT_KINDS)
        self.limiter = httpbase.RateLimiter(args.rate, args.burst)
        self.client = tuple(args.client.split(":", 1))
        self.user = tuple(args.user.split(":", 1))
        self.reset()

    def reset(self):
        with self.lock:
            a = self.args
            self.env = Environment(a.seed, a.persons, a.companies, a.references, a.orders,
                                   a.branches, time.time() if a.epoch is None else a.epoch)
            self.revoked = set()
            self.refresh = {}
            self.counters = {}
            self.limiter.clear()
            self.faults.reset()
            self.version = 0
            self._sorted = {}
            self.quirks = {"ignore_order": False}

    def count(self, name, n=1):
        self.counters[name] = self.counters.get(name, 0) + n

    # -- API Hub ------------------------------------------------------------

    def hub_refusal(self, handler, token_request):
        """None when the request passes the Hub (or there is none); else the
        answer (status, body, headers) to a missing or wrong API key."""
        key = self.args.api_key
        if not key or (token_request and self.args.hub_open_token):
            return None
        got = handler.headers.get(self.args.api_key_header)
        if got is not None and hmac.compare_digest(got.encode(), key.encode()):
            return None
        with self.lock:
            self.count("hub_refused")
        if got is None:
            return (self.args.api_key_status,
                    messages("ApiKeyRequired", "Chave de API não informada",
                             "Informe a chave no cabeçalho %s" % self.args.api_key_header), {})
        return self.args.api_key_status, messages("InvalidApiKey", "Chave de API inválida"), {}

    # -- OAuth --------------------------------------------------------------

    def jwt(self, subject, now):
        header = b64url(b'{"alg":"HS256","typ":"JWT"}')
        claims = {"iss": "totvsmoda", "sub": subject, "client_id": self.client[0],
                  "iat": int(now), "nbf": int(now), "exp": math.ceil(now + self.args.access_ttl),
                  "jti": secrets.token_hex(8)}
        payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
        sig = hmac.new(self.key, ("%s.%s" % (header, payload)).encode(), hashlib.sha256).digest()
        return "%s.%s.%s" % (header, payload, b64url(sig))

    def verify(self, token, now):
        """The claims of a live token of ours, or None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        sig = hmac.new(self.key, ("%s.%s" % (parts[0], parts[1])).encode(),
                       hashlib.sha256).digest()
        if not hmac.compare_digest(b64url(sig), parts[2]):
            return None
        try:
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except ValueError:
            return None
        if claims.get("exp", 0) <= now or claims.get("jti") in self.revoked:
            return None
        return claims

    def token(self, handler, body):
        form = httpbase.query_params(body.decode("utf-8", "replace"))
        grant = form.get("grant_type")

        def refuse(error, description):
            self.count("token_refused")
            return 400, {"error": error, "error_description": description}, {}

        with self.lock:
            if (form.get("client_id"), form.get("client_secret")) != self.client:
                return refuse("invalid_client", "invalid_client")
            if grant == "password":
                if (form.get("username"), form.get("password")) != self.user:
                    return refuse("invalid_grant", "invalid_username_or_password")
                subject = form["username"]
            elif grant == "refresh_token":
                subject = self.refresh.pop(form.get("refresh_token", ""), None)
                if subject is None:
                    return refuse("invalid_grant", "invalid_refresh_token")
            elif grant == "client_credentials":
                subject = self.client[0]
            else:
                return refuse("unsupported_grant_type", "unsupported_grant_type")
            now = time.time()
            rt = secrets.token_urlsafe(32)
            self.refresh[rt] = subject
            self.count("tokens_issued")
            return 200, {"access_token": self.jwt(subject, now), "token_type": "Bearer",
                         "expires_in": self.args.access_ttl, "refresh_token": rt,
                         "scope": form.get("scope") or "openid"}, {}

    # -- API ----------------------------------------------------------------

    def api(self, handler, body):
        """(status, body, headers); body None: an empty body; None: reset."""
        fault = self.faults.draw()
        delay = self.faults.latency()
        if delay:
            time.sleep(delay)
        if fault == "reset":
            with self.lock:
                self.count("fault.reset")
            return None
        unauthorized = (401, None, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        token = httpbase.bearer_token(handler.headers)
        with self.lock:
            claims = self.verify(token, time.time()) if token else None
            if claims is None:
                self.count("unauthorized")
                return unauthorized
            allowed, _, retry = self.limiter.take(claims["sub"], time.monotonic())
            if not allowed or fault == "429":
                self.count("fault.429" if allowed else "rate_limited")
                return (429, messages("TooManyRequests", "Limite de requisições excedido",
                                      "Tente novamente em %d segundo(s)" % max(retry, 1)),
                        {"Retry-After": str(max(retry, self.faults["retry_after"]))})
            if fault in ("500", "503"):
                self.count("fault." + fault)
                return int(fault), messages("InternalError", "Erro interno do servidor"), {}
            if fault == "token_expire":
                self.count("fault.token_expire")
                self.revoked.add(claims.get("jti"))
                return unauthorized
            path = handler.api_path[len(BASE):]
            search = SEARCHES.get(path)
            if search is None:
                return 404, messages("NotFound", "Recurso não encontrado"), {}
            if handler.method != "POST":
                return 405, messages("MethodNotAllowed", "Use POST"), {"Allow": "POST"}
            try:
                req = httpbase.parse_json(body) if body else None
            except ValueError:
                req = None
            if type(req) is not dict:
                return 400, messages("InvalidBody", "O corpo da requisição deve ser um objeto "
                                     "JSON"), {}
            self.count("api_requests")
            self.count("path." + path)
            return self.search(search, req)

    def _ordered(self, kind, order, store, stamp):
        """Records of kind sorted by the order fields (cached per data
        version); with maxChangeFilterDate first, also their times."""
        key = (kind, order)
        hit = self._sorted.get(key)
        if hit is not None and hit[0] == self.version:
            return hit[1], hit[2]
        fields = [f.strip() for f in order.split(",") if f.strip()]

        def sort_key(field, rec):
            name = field.lstrip("-")
            if name == "maxChangeFilterDate":
                return rec[stamp]
            v = rec.get(name)
            return (v is None, v if v is not None else 0)

        rows = list(store.values())
        for field in reversed(fields):
            rows.sort(key=lambda r, f=field: sort_key(f, r), reverse=field.startswith("-"))
        by_time = fields and fields[0] == "maxChangeFilterDate"
        mtimes = [r[stamp] for r in rows] if by_time else None
        self._sorted[key] = (self.version, rows, mtimes)
        return rows, mtimes

    def search(self, search, req):
        kind, max_page, pk = search
        env = self.env

        def bad(code, message, detail=None):
            return 400, messages(code, message, detail), {}

        flt = req.get("filter") or {}
        option = req.get("option") or {}
        if type(flt) is not dict or type(option) is not dict:
            return bad("InvalidBody", "filter e option devem ser objetos")
        page, size = req.get("page", 1), req.get("pageSize", 100)
        if type(page) is not int or page < 1:
            return bad("InvalidPage", "page deve ser um inteiro maior que zero")
        if type(size) is not int or not 1 <= size <= max_page:
            return bad("InvalidPageSize", "pageSize deve estar entre 1 e %d" % max_page)
        expand = req.get("expand") or ""
        if type(expand) is not str:
            return bad("InvalidExpand", "expand deve ser um texto separado por vírgulas")
        expand = {e.strip() for e in expand.split(",") if e.strip()}
        order = req.get("order") or ",".join(pk)
        if type(order) is not str:
            return bad("InvalidOrder", "order deve ser um texto separado por vírgulas")
        if self.quirks["ignore_order"]:
            order = ",".join(pk)
        lo = hi = None
        change = flt.get("change")
        if change is not None:
            if type(change) is not dict:
                return bad("InvalidFilter", "filter.change deve ser um objeto")
            if "startDate" in change:
                lo = parse_iso(change["startDate"])
                if lo is None:
                    return bad("InvalidDate", "filter.change.startDate inválida",
                               "Use o formato ISO 8601, por exemplo 2024-06-01T00:00:00-03:00")
            if "endDate" in change:
                hi = parse_iso(change["endDate"])
                if hi is None:
                    return bad("InvalidDate", "filter.change.endDate inválida",
                               "Use o formato ISO 8601, por exemplo 2024-06-01T00:00:00-03:00")
        branches = None
        if kind == "orders":
            branches = flt.get("branchCodeList")
            if not isinstance(branches, list) or not branches:
                return bad("BranchCodeListRequired", "O filtro branchCodeList é obrigatório",
                           "Informe de 1 a %d empresas em filter.branchCodeList" % MAX_BRANCHES)
            if len(branches) > MAX_BRANCHES or any(type(b) is not int for b in branches):
                return bad("InvalidBranchCodeList",
                           "filter.branchCodeList aceita até %d códigos inteiros" % MAX_BRANCHES)
            branches = set(branches)
        balances = None
        if kind == "balances":
            balances = option.get("balances")
            if not isinstance(balances, list) or not balances or any(
                    type(b) is not dict or type(b.get("branchCode")) is not int
                    or not isinstance(b.get("stockCodeList"), list) or not b["stockCodeList"]
                    for b in balances):
                return bad("BalancesRequired", "option.balances é obrigatório",
                           "Informe option.balances com branchCode e stockCodeList")
        prices = option.get("prices") if kind == "products" else None
        code_lists = {"personCodeList": "code", "productCodeList": "productCode",
                      "referenceCodeList": "referenceCode", "orderCodeList": "orderCode"}
        wanted = {}
        for name, field in code_lists.items():
            if isinstance(flt.get(name), list):
                wanted[field] = set(flt[name])
        stamp = "_stock_mtime" if kind == "balances" else "_mtime"
        rows, mtimes = self._ordered(kind, order, env.store(kind), stamp)
        begin = 0
        if mtimes is not None and lo is not None:
            begin = bisect.bisect_left(mtimes, lo)
        matched = []
        for i in range(begin, len(rows)):
            r = rows[i]
            t = r[stamp]
            if (lo is not None and t < lo) or (hi is not None and t > hi):
                if mtimes is not None and hi is not None and t > hi:
                    break  # sorted by time: nothing later matches
                continue
            if branches is not None and r["branchCode"] not in branches:
                continue
            if any(r.get(f) not in s for f, s in wanted.items()):
                continue
            matched.append(r)
        total = len(matched)
        pages = math.ceil(total / size)
        chunk = matched[(page - 1) * size:page * size]
        items = []
        for r in chunk:
            if kind == "balances":
                items.append(self.balance(r, balances, expand))
                continue
            item = public(r, kind, expand, option)
            if kind == "products" and isinstance(prices, list):
                item["prices"] = [
                    {"branchCode": p.get("branchCode"), "priceCode": c,
                     "priceName": PRICE_TABLES.get(c), "price": r["_prices"].get(c),
                     "promotionalPrice": None}
                    for p in prices if type(p) is dict
                    for c in (p.get("priceCodeList") or []) if c in r["_prices"]]
            items.append(item)
        return 200, {"count": len(items), "totalPages": pages, "hasNext": page < pages,
                     "totalItems": total, "items": items}, {}

    def balance(self, p, balances, expand):
        stock = self.env.stock[p["productCode"]]
        out = {"productCode": p["productCode"], "productName": p["productName"],
               "productSku": p["productSku"], "referenceCode": p["referenceCode"],
               "colorCode": p["colorCode"], "colorName": p["colorName"], "sizeName": p["size"],
               "maxChangeFilterDate": fmt_local(p["_stock_mtime"]), "balances": []}
        for b in balances:
            for s in b["stockCodeList"]:
                q = stock.get((b["branchCode"], s))
                if q is None:
                    continue
                out["balances"].append({
                    "branchCode": b["branchCode"], "stockCode": s,
                    "stockDescription": STOCKS.get(s), "stock": q[0],
                    "salesOrder": q[1] if b.get("isSalesOrder") else 0,
                    "inputTransaction": 0, "outputTransaction": 0, "purchaseOrder": 0,
                    "productionOrderProgress": 0, "productionOrderWaitLib": 0,
                    "productionPlanning": 0, "stockTemp": 0})
        if "locations" in expand:
            out["locations"] = []
        return out

    # -- admin --------------------------------------------------------------

    def admin(self, handler, body):
        path = handler.url_path
        with self.lock:
            if path == "/_admin/health":
                return 200, {"status": "ok"}, {}
            if path == "/_admin/stats":
                return 200, {"counters": dict(self.counters)}, {}
            if path == "/_admin/faults":
                if handler.method == "POST":
                    return 200, self.faults.configure(httpbase.parse_json(body or b"{}")), {}
                return 200, self.faults.view(), {}
            if path == "/_admin/expire_tokens":
                # every token issued so far is dead (their jti cannot be listed: the
                # signing key changes instead)
                self.key = hashlib.sha256(self.key + b"rotate").digest()
                return 200, {"status": "expired"}, {}
            if path == "/_admin/quirks":
                spec = httpbase.parse_json(body or b"{}")
                if type(spec) is not dict or set(spec) - set(self.quirks):
                    raise httpbase.HttpError(400, "invalid_request",
                                             "quirks: " + ", ".join(sorted(self.quirks)))
                self.quirks.update((k, bool(v)) for k, v in spec.items())
                return 200, dict(self.quirks), {}
            if path == "/_admin/reset":
                self.reset()
                return 200, {"status": "reset"}, {}
            if path == "/_admin/dump":
                return 200, self.dump(), {}
            if path == "/_admin/mutate":
                out = self.mutate(httpbase.parse_json(body or b"{}"))
                self.version += 1
                return 200, out, {}
        raise httpbase.HttpError(404, "not_found", "no such admin endpoint")

    def dump(self):
        env = self.env

        def full(kind, r):
            out = public(r, kind, EXPANDABLE[kind], {})
            out["_mtime"] = r["_mtime"]
            return out

        def sku(r):
            out = full("products", r)
            out["_prices"] = {str(k): v for k, v in r["_prices"].items()}
            return out

        stock = []
        for code in sorted(env.products):
            p = env.products[code]
            stock.append({"productCode": code, "_mtime": p["_stock_mtime"],
                          "balances": [{"branchCode": b, "stockCode": s, "stock": q[0],
                                        "salesOrder": q[1]}
                                       for (b, s), q in sorted(env.stock[code].items())]})
        return {"individuals": [full("individuals", r) for _, r in
                                sorted(env.individuals.items())],
                "legal_entities": [full("legal_entities", r) for _, r in
                                   sorted(env.legal_entities.items())],
                "orders": [full("orders", r) for _, r in sorted(env.orders.items())],
                "references": [full("references", r) for _, r in sorted(env.references.items())],
                "products": [sku(r) for _, r in sorted(env.products.items())],
                "balances": stock}

    def mutate(self, spec):
        """{"individuals": n, "orders": n, "new_orders": n, "products": n
        (a reference's price: its SKUs change), "references": n, "stock": n,
        "seed": s}: change that many records now; answers what was touched
        (ids as the primary keys)."""
        env = self.env
        rng = random.Random(spec.get("seed", 1))
        now = int(time.time())
        touched = {}
        ids = rng.sample(sorted(env.individuals), min(spec.get("individuals", 0),
                                                       len(env.individuals)))
        for code in ids:
            r = env.individuals[code]
            r["phones"][0]["number"] = "11%09d" % rng.randrange(900000000, 999999999)
            r["_mtime"] = now
        touched["individuals"] = ids
        keys = rng.sample(sorted(env.orders), min(spec.get("orders", 0), len(env.orders)))
        for k in keys:
            env.orders[k]["statusOrder"] = "Attended"
            env.orders[k]["_mtime"] = now
        touched["orders"] = [list(k) for k in keys]
        new = []
        for _ in range(spec.get("new_orders", 0)):
            o = env._new_order(rng, rng.choice(env.branches), sorted(env.products),
                               sorted(env.individuals), now, mtime=now)
            new.append([o["branchCode"], o["orderCode"]])
        touched["new_orders"] = new
        refs = rng.sample(sorted(env.references), min(spec.get("products", 0),
                                                       len(env.references)))
        skus = []
        for ref in refs:
            for p in env.products.values():
                if p["referenceCode"] == ref:
                    p["_prices"][1] = money(p["_prices"][1] + 1)
                    p["_mtime"] = now
                    skus.append(p["productCode"])
        touched["products"] = sorted(skus)
        refs = rng.sample(sorted(env.references), min(spec.get("references", 0),
                                                       len(env.references)))
        for ref in refs:
            env.references[ref]["description"] = "ATUALIZADO %d" % now
            env.references[ref]["_mtime"] = now
        touched["references"] = refs
        codes = rng.sample(sorted(env.stock), min(spec.get("stock", 0), len(env.stock)))
        for code in codes:
            for q in env.stock[code].values():
                q[0] += 1
            env.products[code]["_stock_mtime"] = now
        touched["stock"] = codes
        return touched


class Handler(httpbase.Handler):
    server_version = "totvs-moda-emulator/1"

    def handle_request(self):
        body = self.read_body()
        prefix = self.app.args.path_prefix
        self.api_path = None
        if self.url_path.startswith(prefix + BASE + "/"):
            self.api_path = self.url_path[len(prefix):]
        hub = self.api_path and self.app.hub_refusal(
            self, self.api_path == BASE + "/authorization/v2/token")
        if self.url_path.startswith("/_admin/"):
            status, obj, headers = self.app.admin(self, body)
        elif hub:
            status, obj, headers = hub
        elif self.api_path == BASE + "/authorization/v2/token":
            if self.method != "POST":
                raise httpbase.HttpError(405, "method_not_allowed", "use POST",
                                         headers={"Allow": "POST"})
            status, obj, headers = self.app.token(self, body)
        elif self.api_path:
            answer = self.app.api(self, body)
            if answer is None:
                self.reset_connection()
                return
            status, obj, headers = answer
        else:
            status, obj, headers = 404, messages("NotFound", "Recurso não encontrado"), {}
        if obj is None:
            self.send_bytes(status, b"", headers)
        else:
            self.send_json(status, obj, headers)


def path_prefix(text):
    if text and not re.fullmatch(r"(/[^/?#]+)+", text):
        raise argparse.ArgumentTypeError("'%s': a path such as /treino, no trailing slash" % text)
    return text


def main():
    p = httpbase.emulator_parser("TOTVS Moda API V2 emulator")
    p.add_argument("--client", default="totvs-client:totvs-secret", help="ID:SECRET")
    p.add_argument("--user", default="apiuser:apipass1234", help="USER:PASSWORD of the API user")
    p.add_argument("--epoch", type=float, default=None,
                   help="the data is made as of this time (seconds since the epoch; default: "
                        "the start), so it does not depend on the day it runs")
    p.add_argument("--persons", type=int, default=120, help="individuals")
    p.add_argument("--companies", type=int, default=10, help="legal entities")
    p.add_argument("--references", type=int, default=20,
                   help="references (styles); each expands to colours x sizes SKUs")
    p.add_argument("--orders", type=int, default=150)
    p.add_argument("--branches", type=int, default=3)
    p.add_argument("--rate", type=float, default=10.0, help="requests/s per user; 0: off")
    p.add_argument("--burst", type=float, default=10.0)
    p.add_argument("--access-ttl", type=int, default=3600)
    p.add_argument("--api-key", help="serve as the TOTVS Moda API Hub: every request needs "
                   "this key besides its token")
    p.add_argument("--api-key-header", default="x-api-key", help="the key's header")
    p.add_argument("--api-key-status", type=int, choices=(401, 403), default=401,
                   help="the answer to a missing or wrong key")
    p.add_argument("--hub-open-token", action="store_true",
                   help="the token request needs no key")
    p.add_argument("--path-prefix", type=path_prefix, default="", help="the API under this path "
                   "(/treino: the Hub's training environment)")
    args = p.parse_args()
    return httpbase.run_server(args, Handler, App(args), lambda url: (
        "totvs moda emulator on %s%s (seed %d)%s" % (url, args.path_prefix, args.seed,
                                                    ", as the API Hub" if args.api_key else "")))


if __name__ == "__main__":
    sys.exit(main())
