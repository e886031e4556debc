"""The fidelity corpus: popular packages, each imported at the top level of its own worker.

Each case is the source of a module ``case`` that the worker's entry imports at top level (so
the import is in the snapshot). ``check()`` (plain or async) exercises the package after the
restore and returns a string; it asserts facts known independently of the package (a digest, a
parse, a round trip), and its answer must equal the one a plain interpreter gives (the test
compares). ``draw()``, where the package draws randomness, returns a value that two restored
instances must not share.

The Debian package of each case is installed by scripts/install-deps.sh.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    name: str  # the worker is "fid-" + name
    debian: str  # the package that provides it
    kind: str  # web, data, parsing, crypto, clients, templating
    source: str

    @property
    def draws(self) -> bool:
        return "\ndef draw(" in self.source


CASES = [
    # ------------------------------------------------------------------ web frameworks, parts
    Case("flask", "python3-flask", "web", '''
import flask

app = flask.Flask("fid")
app.config["SECRET_KEY"] = "fixed"

@app.route("/hello/<name>")
def hello(name):
    flask.session["seen"] = name
    return flask.jsonify(greeting=f"hi {name}", args=flask.request.args.to_dict())

def check():
    client = app.test_client()
    r = client.get("/hello/ada?x=1")
    assert r.status_code == 200 and r.json == {"greeting": "hi ada", "args": {"x": "1"}}
    return r.get_data(as_text=True).strip()
'''),
    Case("werkzeug", "python3-werkzeug", "web", '''
from werkzeug.datastructures import MultiDict
from werkzeug.http import parse_options_header, dump_cookie
from werkzeug.security import check_password_hash, gen_salt, generate_password_hash
from werkzeug.routing import Map, Rule

URLS = Map([Rule("/item/<int:id>", endpoint="item")])

def check():
    adapter = URLS.bind("example.org")
    endpoint, args = adapter.match("/item/42")
    assert (endpoint, args) == ("item", {"id": 42})
    hashed = generate_password_hash("pw", method="pbkdf2:sha256:1000")
    assert check_password_hash(hashed, "pw") and not check_password_hash(hashed, "no")
    return repr((parse_options_header("text/html; charset=utf-8"),
                 dump_cookie("k", "v", path="/p", httponly=True), MultiDict([("a", 1), ("a", 2)]).getlist("a")))

def draw():
    return gen_salt(24)
'''),
    Case("itsdangerous", "python3-itsdangerous", "web", '''
from itsdangerous import URLSafeSerializer, BadSignature

SIGNER = URLSafeSerializer("secret-key", salt="fid")

def check():
    token = SIGNER.dumps({"user": 7})
    assert SIGNER.loads(token) == {"user": 7}
    try:
        SIGNER.loads(token[:-1] + ("A" if token[-1] != "A" else "B"))
        raise AssertionError("a forged token was accepted")
    except BadSignature:
        pass
    return token
'''),
    Case("bottle", "python3-bottle", "web", '''
import bottle

APP = bottle.Bottle()

@APP.route("/sum/<a:int>/<b:int>")
def add(a, b):
    return {"sum": a + b}

def check():
    route, args = APP.router.match({"PATH_INFO": "/sum/2/40", "REQUEST_METHOD": "GET"})
    assert route.callback(**args) == {"sum": 42}
    return bottle.template("{{name}} has {{len(items)}} items", name="cart", items=[1, 2, 3])
'''),
    Case("falcon", "python3-falcon", "web", '''
import falcon
import falcon.testing

class Things:
    def on_get(self, req, resp, thing):
        resp.media = {"thing": thing, "q": req.get_param("q")}

APP = falcon.App()
APP.add_route("/things/{thing}", Things())

def check():
    result = falcon.testing.TestClient(APP).simulate_get("/things/box", params={"q": "x"})
    assert result.status_code == 200
    return result.text
'''),
    Case("django", "python3-django", "web", '''
import django
from django.conf import settings

settings.configure(
    DEBUG=False, SECRET_KEY="fixed", USE_TZ=True,
    INSTALLED_APPS=["django.contrib.contenttypes"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
)
django.setup()

from django.template import Context, Template
from django.utils.crypto import get_random_string
from django.utils.text import slugify

TEMPLATE = Template("{% for x in xs %}{{ x|upper }}{% if not forloop.last %},{% endif %}{% endfor %}")

def query():
    from django.db import connection
    with connection.cursor() as cursor:
        cursor.execute("select 6 * 7")
        (answer,) = cursor.fetchone()
    return answer

async def check():
    from asgiref.sync import sync_to_async
    # The ORM is synchronous: from a coroutine (the handler), it runs in a thread.
    assert await sync_to_async(query)() == 42
    return TEMPLATE.render(Context({"xs": ["a", "b"]})) + " " + slugify("Héllo Wörld!")

def draw():
    return get_random_string(24)
'''),
    Case("starlette", "python3-starlette", "web", '''
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def home(request):
    return JSONResponse({"path": request.url.path, "n": int(request.query_params["n"])})

APP = Starlette(routes=[Route("/home", home)])

async def check():
    sent = []
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        sent.append(message)
    scope = {"type": "http", "method": "GET", "path": "/home", "query_string": b"n=5",
             "headers": [], "root_path": "", "scheme": "http", "server": ("t", 80)}
    await APP(scope, receive, send)
    assert sent[0]["status"] == 200
    return sent[1]["body"].decode()
'''),
    Case("fastapi", "python3-fastapi", "web", '''
from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel

class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []

APP = FastAPI()

@APP.post("/items")
async def create(item: Item):
    return item

def check():
    item = Item(name="pen", price="1.5", tags=["a"])
    assert item.price == 1.5
    return repr(jsonable_encoder(item)) + " " + ",".join(sorted(APP.openapi()["paths"]))
'''),
    Case("pydantic", "python3-pydantic", "web", '''
from pydantic import BaseModel, ValidationError, validator

class User(BaseModel):
    id: int
    email: str

    @validator("email")
    def has_at(cls, value):
        if "@" not in value:
            raise ValueError("no @")
        return value.lower()

def check():
    user = User(id="3", email="A@B.C")
    try:
        User(id="x", email="none")
        raise AssertionError("invalid data was accepted")
    except ValidationError as error:
        problems = len(error.errors())
    return f"{user.json()} {problems}"
'''),
    Case("multipart", "python3-multipart", "web", '''
import io
import multipart

BODY = (b"--xyz\\r\\nContent-Disposition: form-data; name=\\"a\\"\\r\\n\\r\\none\\r\\n"
        b"--xyz\\r\\nContent-Disposition: form-data; name=\\"f\\"; filename=\\"t.txt\\"\\r\\n"
        b"Content-Type: text/plain\\r\\n\\r\\nfile body\\r\\n--xyz--\\r\\n")

def check():
    fields, files = [], []
    parser = multipart.create_form_parser(
        {"Content-Type": "multipart/form-data; boundary=xyz"},
        lambda field: fields.append((field.field_name, field.value)),
        lambda file: files.append((file.field_name, file.file_name, file.file_object.getvalue())))
    parser.write(BODY)
    parser.finalize()
    return repr((fields, files))
'''),
    Case("h11", "python3-h11", "web", '''
import h11

def check():
    client = h11.Connection(h11.CLIENT)
    server = h11.Connection(h11.SERVER)
    data = client.send(h11.Request(method="GET", target="/x", headers=[("Host", "a")]))
    data += client.send(h11.EndOfMessage())
    server.receive_data(data)
    event = server.next_event()
    assert isinstance(event, h11.Request)
    return f"{event.method.decode()} {event.target.decode()} {dict(event.headers)}"
'''),
    Case("anyio", "python3-anyio", "web", '''
import anyio

async def check():
    results = []
    async def work(n):
        await anyio.sleep(0)
        results.append(n * n)
    async with anyio.create_task_group() as group:
        for n in range(5):
            group.start_soon(work, n)
    send, receive = anyio.create_memory_object_stream(1)
    async with send, receive:
        await send.send("through")
        got = await receive.receive()
    return f"{sorted(results)} {got}"
'''),
    # ------------------------------------------------------------------ templating
    Case("jinja2", "python3-jinja2", "templating", '''
import jinja2

ENV = jinja2.Environment(loader=jinja2.DictLoader({
    "base": "<ul>{% block body %}{% endblock %}</ul>",
    "page": "{% extends 'base' %}{% block body %}{% for x in xs %}<li>{{ x|e }}</li>"
            "{% endfor %}{% endblock %}",
}), autoescape=True)

def check():
    return ENV.get_template("page").render(xs=["a", "<b>"])
'''),
    Case("markupsafe", "python3-markupsafe", "templating", '''
from markupsafe import Markup, escape

def check():
    return str(Markup("<em>%s</em>") % "<script>") + " " + str(escape("a & b"))
'''),
    Case("mako", "python3-mako", "templating", '''
from mako.template import Template

TEMPLATE = Template("% for n in range(count):\\n${n * n} \\n% endfor\\n${name | h}")

def check():
    return TEMPLATE.render(count=4, name="<x>")
'''),
    # ------------------------------------------------------------------ data and science
    Case("numpy", "python3-numpy", "data", '''
import numpy as np

RNG = np.random.default_rng()  # a generator made at import: reseeded in every instance
A = np.array([[3.0, 1.0], [1.0, 2.0]])

def check():
    x = np.linalg.solve(A, np.array([9.0, 8.0]))
    assert np.allclose(x, [2.0, 3.0])
    return f"{x.tolist()} {np.fft.fft(np.ones(4)).real.tolist()} {np.arange(10).reshape(2, 5).sum(axis=0).tolist()}"

def draw():
    return f"{RNG.random():.17f} {np.random.random():.17f}"
'''),
    Case("pandas", "python3-pandas", "data", '''
import io
import pandas as pd

FRAME = pd.DataFrame({"city": ["a", "b", "a", "c"], "sales": [10, 20, 30, 40]})

def check():
    totals = FRAME.groupby("city")["sales"].sum()
    assert totals["a"] == 40
    csv = pd.read_csv(io.StringIO("x,y\\n1,2\\n3,4\\n"))
    dates = pd.date_range("2024-01-30", periods=3, freq="D").strftime("%m-%d").tolist()
    return f"{totals.to_dict()} {csv.y.mean()} {dates} {FRAME.describe().loc['mean', 'sales']}"

def draw():
    return FRAME.sample(frac=1).city.str.cat() + str(pd.Series(range(100)).sample(3).tolist())
'''),
    Case("sympy", "python3-sympy", "data", '''
import sympy
import sympy.core.random

x = sympy.Symbol("x")

def check():
    assert sympy.factor(x**2 - 1) == (x - 1) * (x + 1)
    integral = sympy.integrate(sympy.sin(x) * sympy.exp(x), x)
    return f"{sympy.expand((x + 2)**3)} {integral} {sympy.solve(x**2 - 4, x)} {sympy.Dummy('d').name}"

def draw():
    return f"{sympy.core.random.rng.random()} {sympy.core.random.random()}"
'''),
    Case("mpmath", "python3-mpmath", "data", '''
import mpmath

mpmath.mp.dps = 40

def check():
    assert str(mpmath.pi)[:12] == "3.1415926535"
    return f"{mpmath.pi} {mpmath.sqrt(2)} {mpmath.zeta(3)}"
'''),
    Case("networkx", "python3-networkx", "data", '''
import networkx as nx

GRAPH = nx.Graph([(1, 2, {"weight": 1}), (2, 3, {"weight": 1}), (1, 3, {"weight": 5}),
                  (3, 4, {"weight": 1})])

def check():
    path = nx.shortest_path(GRAPH, 1, 4, weight="weight")
    assert path == [1, 2, 3, 4]
    return f"{path} {max(nx.degree_centrality(GRAPH).items(), key=lambda kv: kv[1])[0]} {nx.is_connected(GRAPH)}"

def draw():
    return sorted(nx.gnp_random_graph(30, 0.3).edges())[:8]
'''),
    Case("dateutil", "python3-dateutil", "data", '''
from datetime import datetime
from dateutil import parser, rrule
from dateutil.relativedelta import relativedelta

def check():
    when = parser.parse("2024-01-31T10:00:00+02:00")
    later = when + relativedelta(months=1)
    fridays = list(rrule.rrule(rrule.WEEKLY, byweekday=rrule.FR, count=3,
                               dtstart=datetime(2024, 1, 1)))
    return f"{later.isoformat()} {[d.day for d in fridays]}"
'''),
    Case("pytz", "python3-tz", "data", '''
from datetime import datetime
import pytz

ZONE = pytz.timezone("Europe/Paris")

def check():
    summer = ZONE.localize(datetime(2024, 7, 1, 12))
    winter = ZONE.localize(datetime(2024, 1, 1, 12))
    return f"{summer.utcoffset()} {winter.utcoffset()} {summer.astimezone(pytz.utc).isoformat()}"
'''),
    Case("babel", "python3-babel", "data", '''
from datetime import date
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal

def check():
    return " | ".join([format_currency(1234.5, "EUR", locale="de_DE"),
                       format_decimal(1234567.891, locale="en_US"),
                       format_date(date(2024, 3, 1), format="long", locale="fr_FR")])
'''),
    Case("arrow", "python3-arrow", "data", '''
import arrow

def check():
    moment = arrow.get("2024-02-28T23:00:00+00:00")
    return f"{moment.shift(days=1).isoformat()} {moment.to('Asia/Tokyo').format('YYYY-MM-DD HH:mm')}"
'''),
    Case("humanize", "python3-humanize", "data", '''
import humanize

def check():
    return f"{humanize.naturalsize(123456789)} {humanize.intcomma(1234567)} {humanize.ordinal(3)}"
'''),
    Case("natsort", "python3-natsort", "data", '''
from natsort import natsorted

def check():
    return repr(natsorted(["file10", "file2", "file1", "File3"]))
'''),
    Case("tabulate", "python3-tabulate", "data", '''
from tabulate import tabulate

def check():
    return tabulate([["a", 1.5], ["bb", 22]], headers=["name", "value"], tablefmt="github")
'''),
    Case("toolz", "python3-toolz", "data", '''
from toolz import curried, frequencies, pipe

def check():
    words = "the cat and the hat and the bat".split()
    return repr((frequencies(words), pipe(range(10), curried.filter(lambda n: n % 3 == 0), list)))
'''),
    # ------------------------------------------------------------------ parsing
    Case("lxml", "python3-lxml", "parsing", '''
from lxml import etree, html

DOC = etree.fromstring(b"<root><item n='1'>a</item><item n='2'>b</item></root>")
BOMS = (b"\\xff\\xfe", b"\\xfe\\xff")

def check():
    # A document in another charset goes through glibc's iconv (its shared module cache).
    latin = etree.fromstring("<?xml version='1.0' encoding='ISO-8859-1'?><a>caf\\u00e9</a>"
                             .encode("latin-1"))
    assert latin.text == "caf\\u00e9"
    page = html.fromstring("<div><p class='x'>one</p><p>two</p></div>")
    utf16 = etree.tostring(DOC, encoding="utf-16")
    assert utf16[:2] in BOMS
    return f"{DOC.xpath('//item[@n=2]/text()')} {latin.text} {page.xpath('//p/text()')} {len(utf16)}"
'''),
    Case("bs4", "python3-bs4", "parsing", '''
from bs4 import BeautifulSoup

HTML = "<html><body><a href='/x' class='c'>X</a><a href='/y'>Y</a><p>t<b>b</b></p></body></html>"

def check():
    results = []
    for parser in ("html.parser", "lxml"):
        soup = BeautifulSoup(HTML, parser)
        results.append(([a["href"] for a in soup.find_all("a")], soup.select_one("a.c").text,
                        soup.p.get_text()))
    assert results[0] == results[1]
    return repr(results[0])
'''),
    Case("html5lib", "python3-html5lib", "parsing", '''
import html5lib

def check():
    tree = html5lib.parse("<p>unclosed <b>bold<p>next", namespaceHTMLElements=False)
    return repr([p.text for p in tree.iter("p")]) + " " + repr([b.text for b in tree.iter("b")])
'''),
    Case("regex", "python3-regex", "parsing", '''
import regex

WORDS = regex.compile(r"\\p{Greek}+|\\p{Han}+")

def check():
    found = WORDS.findall("abc \\u03b1\\u03b2\\u03b3 def \\u4e2d\\u6587")
    assert len(found) == 2
    fuzzy = regex.search(r"(?:hello){e<=1}", "say helo there")
    named = regex.sub(r"(?<word>\\w+)", r"<\\g<word>>", "a b")
    return f"{found} {fuzzy.group()} {named}"
'''),
    Case("yaml", "python3-yaml", "parsing", '''
import yaml

def check():
    data = yaml.safe_load("a: 1\\nb: [x, y]\\nc: {d: true}\\n")
    assert data == {"a": 1, "b": ["x", "y"], "c": {"d": True}}
    return yaml.safe_dump(data, sort_keys=True).replace("\\n", "|")
'''),
    Case("tomli", "python3-tomli", "parsing", '''
import tomli

def check():
    return repr(tomli.loads('title = "t"\\n[owner]\\nname = "n"\\nnums = [1, 2]\\n'))
'''),
    Case("markdown", "python3-markdown", "parsing", '''
import markdown

def check():
    return markdown.markdown("# Title\\n\\n*em* and `code`\\n\\n- a\\n- b", extensions=["extra"])
'''),
    Case("mistune", "python3-mistune", "parsing", '''
import mistune

def check():
    return mistune.html("## Head\\n\\n**bold** [link](http://x)\\n")
'''),
    Case("pyparsing", "python3-pyparsing", "parsing", '''
import pyparsing as pp

NUMBER = pp.pyparsing_common.number
EXPR = pp.infix_notation(NUMBER, [(pp.one_of("* /"), 2, pp.OpAssoc.LEFT),
                                  (pp.one_of("+ -"), 2, pp.OpAssoc.LEFT)])

def check():
    return repr(EXPR.parse_string("1 + 2 * 3").as_list())
'''),
    Case("lark", "python3-lark", "parsing", '''
from lark import Lark

PARSER = Lark("""
start: pair ("," pair)*
pair: WORD "=" NUMBER
%import common.WORD
%import common.NUMBER
%ignore " "
""")

def check():
    tree = PARSER.parse("a = 1, b = 22")
    return repr([(p.children[0].value, int(p.children[1])) for p in tree.children])
'''),
    Case("sqlparse", "python3-sqlparse", "parsing", '''
import sqlparse

def check():
    return sqlparse.format("select a,b from t where x=1 and y=2", reindent=True,
                           keyword_case="upper")
'''),
    Case("docutils", "python3-docutils", "parsing", '''
from docutils.core import publish_parts

def check():
    return publish_parts("Title\\n=====\\n\\n*emphasis* and ``code``\\n", writer_name="html")["body"]
'''),
    Case("xmltodict", "python3-xmltodict", "parsing", '''
import xmltodict

def check():
    data = xmltodict.parse("<a x='1'><b>t</b><b>u</b></a>")
    return repr(data) + " " + xmltodict.unparse(data)
'''),
    Case("pygments", "python3-pygments", "parsing", '''
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

def check():
    return highlight("def f(x):\\n    return x + 1\\n", PythonLexer(), HtmlFormatter())
'''),
    # ------------------------------------------------------------------ crypto and compression
    Case("cryptography", "python3-cryptography", "crypto", '''
import hashlib
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ed25519

KEY = b"0" * 32
import base64
FERNET = Fernet(base64.urlsafe_b64encode(KEY))

def check():
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"abc")
    value = digest.finalize().hex()
    assert value == hashlib.sha256(b"abc").hexdigest()
    mac = hmac.HMAC(KEY, hashes.SHA256())
    mac.update(b"msg")
    token = FERNET.encrypt(b"secret")
    assert FERNET.decrypt(token) == b"secret"
    private = ed25519.Ed25519PrivateKey.from_private_bytes(KEY)
    signature = private.sign(b"msg")
    private.public_key().verify(signature, b"msg")
    return f"{value} {mac.finalize().hex()} {signature.hex()[:32]}"

def draw():
    return Fernet.generate_key().decode() + " " + FERNET.encrypt(b"x").decode()
'''),
    Case("nacl", "python3-nacl", "crypto", '''
import nacl.encoding
import nacl.hash
import nacl.secret
import nacl.utils

BOX = nacl.secret.SecretBox(b"k" * 32)

def check():
    sealed = BOX.encrypt(b"message")
    assert BOX.decrypt(sealed) == b"message"
    return nacl.hash.sha256(b"abc", encoder=nacl.encoding.HexEncoder).decode()

def draw():
    return nacl.utils.random(16).hex()
'''),
    Case("bcrypt", "python3-bcrypt", "crypto", '''
import bcrypt

SALT = b"$2b$04$abcdefghijklmnopqrstuu"

def check():
    hashed = bcrypt.hashpw(b"password", SALT)
    assert bcrypt.checkpw(b"password", hashed) and not bcrypt.checkpw(b"other", hashed)
    return hashed.decode()

def draw():
    return bcrypt.gensalt(4).decode()
'''),
    Case("jwt", "python3-jwt", "crypto", '''
import jwt

def check():
    token = jwt.encode({"sub": "42", "n": 1}, "secret", algorithm="HS256")
    assert jwt.decode(token, "secret", algorithms=["HS256"]) == {"sub": "42", "n": 1}
    try:
        jwt.decode(token, "wrong", algorithms=["HS256"])
        raise AssertionError("a wrong key verified")
    except jwt.InvalidSignatureError:
        pass
    return token
'''),
    Case("passlib", "python3-passlib", "crypto", '''
from passlib.hash import pbkdf2_sha256, sha256_crypt

def check():
    fixed = sha256_crypt.using(salt="abcdefgh", rounds=1000).hash("pw")
    assert sha256_crypt.verify("pw", fixed)
    return fixed

def draw():
    return pbkdf2_sha256.using(rounds=1000).hash("pw")
'''),
    Case("argon2", "python3-argon2", "crypto", '''
import argon2

HASHER = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

def check():
    raw = argon2.low_level.hash_secret_raw(b"pw", b"somesalt", time_cost=1, memory_cost=1024,
                                           parallelism=1, hash_len=16, type=argon2.Type.ID)
    assert HASHER.verify(HASHER.hash("pw"), "pw")
    return raw.hex()

def draw():
    return HASHER.hash("pw")
'''),
    Case("brotli", "python3-brotli", "crypto", '''
import brotli

DATA = b"thaw " * 1000

def check():
    packed = brotli.compress(DATA)
    assert brotli.decompress(packed) == DATA and len(packed) < 100
    return f"{len(packed)} {packed[:8].hex()}"
'''),
    Case("zstandard", "python3-zstandard", "crypto", '''
import zstandard

DATA = bytes(range(256)) * 100

def check():
    packed = zstandard.ZstdCompressor(level=3).compress(DATA)
    assert zstandard.ZstdDecompressor().decompress(packed) == DATA
    return f"{len(packed)}"
'''),
    Case("lz4", "python3-lz4", "crypto", '''
import lz4.frame

DATA = b"0123456789" * 500

def check():
    packed = lz4.frame.compress(DATA)
    assert lz4.frame.decompress(packed) == DATA
    return f"{len(packed) < len(DATA)}"
'''),
    Case("xxhash", "python3-xxhash", "crypto", '''
import xxhash

def check():
    return f"{xxhash.xxh64(b'abc').hexdigest()} {xxhash.xxh32(b'abc', seed=1).intdigest()}"
'''),
    # ------------------------------------------------------------------ clients and serialisers
    Case("requests", "python3-requests", "clients", '''
import requests

SESSION = requests.Session()

def check():
    prepared = SESSION.prepare_request(requests.Request(
        "POST", "http://example.org/a b", params={"q": "x y"}, json={"k": [1, 2]}))
    return f"{prepared.url} {prepared.body!r} {prepared.headers['Content-Type']}"
'''),
    Case("urllib3", "python3-urllib3", "clients", '''
import urllib3
from urllib3.util import parse_url, Retry

POOL = urllib3.PoolManager(retries=Retry(total=2, backoff_factor=0.1))

def check():
    url = parse_url("https://user@example.org:8443/p/a?q=1#f")
    return f"{url.host} {url.port} {url.path} {url.query} {urllib3.util.make_headers(basic_auth='a:b')}"
'''),
    Case("httpx", "python3-httpx", "clients", '''
import httpx

def handler(request):
    return httpx.Response(200, json={"method": request.method, "path": request.url.path,
                                     "body": request.content.decode()})

CLIENT = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://test")

async def check():
    response = await CLIENT.post("/echo", content=b"ping")
    return response.text
'''),
    Case("aiohttp", "python3-aiohttp", "clients", '''
import inspect
import aiohttp
import aiohttp.http_websocket
from aiohttp import web

async def hello(request):
    return web.json_response({"hello": request.match_info["name"], "q": request.query.get("q")})

async def check():
    # A real client request to a real aiohttp server, both on the worker's event loop.
    app = web.Application()
    app.router.add_get("/hello/{name}", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/hello/ada?q=1") as response:
                return await response.text()
    finally:
        await runner.cleanup()

def draw():
    # The websocket writer's masking generator is made at import, as a default argument.
    generator = inspect.signature(aiohttp.http_websocket.WebSocketWriter).parameters["random"]
    return generator.default.getrandbits(64)
'''),
    Case("yarl", "python3-yarl", "clients", '''
from yarl import URL

def check():
    url = URL("http://example.org/path/a b?x=1") / "more" % {"y": "z w"}
    return f"{url} {url.with_scheme('https').host} {url.query['y']}"
'''),
    Case("multidict", "python3-multidict", "clients", '''
from multidict import CIMultiDict

def check():
    headers = CIMultiDict([("Accept", "a"), ("accept", "b")])
    headers.add("X-One", "1")
    return f"{headers.getall('ACCEPT')} {headers['x-one']} {len(headers)}"
'''),
    Case("charset_normalizer", "python3-charset-normalizer", "clients", '''
from charset_normalizer import from_bytes

def check():
    text = "Příliš žluťoučký kůň úpěl ďábelské ódy, a tady je další věta v češtině."
    best = from_bytes(text.encode("cp1250")).best()
    return f"{str(best) == text}"
'''),
    Case("chardet", "python3-chardet", "clients", '''
import chardet

def check():
    return repr(chardet.detect("Всем привет, это длинная строка в кодировке KOI8-R для теста".encode("koi8-r"))["encoding"])
'''),
    Case("idna", "python3-idna", "clients", '''
import idna

def check():
    return f"{idna.encode('bücher.example').decode()} {idna.decode('xn--bcher-kva.example')}"
'''),
    Case("certifi", "python3-certifi", "clients", '''
import ssl
import certifi

def check():
    context = ssl.create_default_context(cafile=certifi.where())
    return f"{context.cert_store_stats()['x509_ca'] > 50}"
'''),
    Case("msgpack", "python3-msgpack", "clients", '''
import msgpack

def check():
    data = {"a": [1, 2.5, None, True], "b": b"\\x00\\x01"}
    packed = msgpack.packb(data)
    assert msgpack.unpackb(packed) == data
    return packed.hex()
'''),
    Case("ujson", "python3-ujson", "clients", '''
import ujson

def check():
    text = ujson.dumps({"b": [1, 2], "a": "\\u00e9"}, sort_keys=True, ensure_ascii=False)
    assert ujson.loads(text) == {"b": [1, 2], "a": "\\u00e9"}
    return text
'''),
    Case("simplejson", "python3-simplejson", "clients", '''
from decimal import Decimal
import simplejson

def check():
    text = simplejson.dumps({"price": Decimal("1.10")}, use_decimal=True)
    assert simplejson.loads(text, use_decimal=True)["price"] == Decimal("1.10")
    return text
'''),
    Case("cbor2", "python3-cbor2", "clients", '''
from datetime import datetime, timezone
import cbor2

def check():
    data = {"when": datetime(2024, 1, 2, tzinfo=timezone.utc), "n": [1, -2, 3.5]}
    packed = cbor2.dumps(data)
    assert cbor2.loads(packed) == data
    return packed.hex()
'''),
    Case("protobuf", "python3-protobuf", "clients", '''
from google.protobuf import json_format, struct_pb2, timestamp_pb2

def check():
    message = struct_pb2.Struct()
    message.update({"name": "thaw", "n": 3, "list": [1, "a"]})
    parsed = struct_pb2.Struct.FromString(message.SerializeToString())
    assert parsed == message
    stamp = timestamp_pb2.Timestamp(seconds=1700000000)
    return json_format.MessageToJson(parsed, sort_keys=True).replace("\\n", "") + " " + stamp.ToJsonString()
'''),
    Case("email_validator", "python3-email-validator", "clients", '''
from email_validator import EmailNotValidError, validate_email

def check():
    result = validate_email("Someone@Example.ORG", check_deliverability=False)
    try:
        validate_email("not an address", check_deliverability=False)
        raise AssertionError("an invalid address was accepted")
    except EmailNotValidError:
        pass
    return result.email
'''),
    Case("dnspython", "python3-dnspython", "clients", '''
import dns.message
import dns.name
import dns.rdatatype

def check():
    query = dns.message.make_query("www.example.org", dns.rdatatype.AAAA)
    wire = query.to_wire()
    again = dns.message.from_wire(wire)
    assert again.question == query.question
    return f"{dns.name.from_text('www.example.org').labels} {again.question[0].to_text()}"

def draw():
    return dns.message.make_query("example.org", "A").id * 65536 + dns.message.make_query("example.org", "A").id
'''),
    Case("sqlalchemy", "python3-sqlalchemy", "clients", '''
from sqlalchemy import Column, Integer, String, create_engine, select
from sqlalchemy.orm import Session, declarative_base

Base = declarative_base()

class Note(Base):
    __tablename__ = "notes"
    id = Column(Integer, primary_key=True)
    text = Column(String(50))

def check():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all([Note(text="a"), Note(text="b")])
        session.commit()
        return repr(session.scalars(select(Note.text).order_by(Note.id.desc())).all())
'''),
    Case("marshmallow", "python3-marshmallow", "clients", '''
from marshmallow import Schema, ValidationError, fields

class Person(Schema):
    class Meta:
        ordered = True  # else the order of fields follows str hashes, which differ by process

    name = fields.Str(required=True)
    age = fields.Int()

def check():
    loaded = Person().load({"name": "Ada", "age": "36"})
    try:
        Person().load({"age": "x"})
        raise AssertionError("invalid data was accepted")
    except ValidationError as error:
        errors = sorted(error.messages)
    return f"{loaded} {errors} {Person().dumps(loaded)}"
'''),
    Case("attrs", "python3-attr", "clients", '''
import attr

@attr.s(auto_attribs=True, frozen=True)
class Point:
    x: int
    y: int = attr.ib(converter=int, default=0)

def check():
    point = Point(1, "2")
    return f"{point} {attr.asdict(point)} {attr.evolve(point, x=5)}"
'''),
    # ------------------------------------------------------------------ the rest of a stack
    Case("click", "python3-click", "web", '''
import click
from click.testing import CliRunner

@click.command()
@click.option("--count", default=1, type=int)
@click.argument("name")
def greet(count, name):
    for _ in range(count):
        click.echo(f"hello {name}")

def check():
    return CliRunner().invoke(greet, ["--count", "2", "ada"]).output
'''),
    Case("rich", "python3-rich", "data", '''
import io
from rich.console import Console
from rich.table import Table

def check():
    console = Console(file=io.StringIO(), record=True, width=40, color_system=None)
    table = Table("name", "n")
    table.add_row("a", "1")
    console.print(table)
    return console.export_text()
'''),
    Case("cachetools", "python3-cachetools", "data", '''
from cachetools import LRUCache, cached

CACHE = LRUCache(maxsize=2)
CALLS = []

@cached(CACHE)
def square(n):
    CALLS.append(n)
    return n * n

def check():
    values = [square(n) for n in (2, 3, 2, 4, 3)]
    return f"{values} {len(CALLS)}"
'''),
    Case("tenacity", "python3-tenacity", "data", '''
import tenacity

def check():
    attempts = []

    @tenacity.retry(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_none(),
                    reraise=True)
    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise ValueError("again")
        return "done"

    return f"{flaky()} after {len(attempts)}"
'''),
    Case("structlog", "python3-structlog", "data", '''
import structlog
from structlog.testing import capture_logs

LOG = structlog.get_logger()

def check():
    with capture_logs() as logs:
        LOG.info("event", user=7)
    return repr(logs)
'''),
    Case("jsonschema", "python3-jsonschema", "parsing", '''
import jsonschema

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}},
          "required": ["n"]}

def check():
    jsonschema.validate({"n": 3}, SCHEMA)
    errors = sorted(e.message for e in jsonschema.Draft7Validator(SCHEMA).iter_errors({"n": 0}))
    return repr(errors)
'''),
    Case("unidecode", "python3-unidecode", "parsing", '''
from unidecode import unidecode

def check():
    return unidecode("Žluťoučký kůň, 北京")
'''),
    Case("slugify", "python3-slugify", "parsing", '''
from slugify import slugify

def check():
    return slugify("Hello, Wörld! This is thaw")
'''),
    Case("pillow", "python3-pil", "data", '''
import hashlib
import io
from PIL import Image, ImageDraw

def check():
    image = Image.new("RGB", (32, 16), "white")
    ImageDraw.Draw(image).rectangle((4, 4, 12, 12), fill=(255, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    again = Image.open(io.BytesIO(out.getvalue()))
    return f"{again.size} {again.getpixel((8, 8))} {hashlib.sha256(again.tobytes()).hexdigest()[:16]}"
'''),
]
