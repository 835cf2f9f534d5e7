"""What every contestant shares: the scenarios, the run's context, validation, pages, stores.

Every contestant answers the same request with the same body bytes. The peers
run the same SQL through SQLAlchemy Core, as its tutorial shows; raw WSGI (the
limit) talks to the DB-API driver directly, and "sa" is raw WSGI on the peers'
SQLAlchemy code. HTML pages are the scaffolded project's templates, rendered
with jinja2 or Genshi directly.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, urlencode

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
OUTPUT = BENCH_DIR / "output"

FIXED_BODY = b"Hello, World!"
TEXT_TYPE = "text/plain; charset=utf-8"
JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=utf-8"

COLUMNS = ("id", "name", "title", "office_number")
PAGE_SIZE = 50
MAIN_ROWS = 200
DEEP_TABLE = "benchdeep"
DEEP_ROWS = 1_000_000
DEEP_AFTER = 500_000
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
FIELD_SPECS = ["name:string:required", "title:string", "office_number:integer"]
FORM_VALUES = {"name": "Grace Hopper", "title": "Rear admiral & <computing>",
               "office_number": "417"}


def cursor(key: int, position: int) -> str:
    """A page cursor as robaccia writes one (robaccia/paging.py): base64 JSON, sorted by key."""
    raw = json.dumps([key, position, False, None], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


#: raw: raw WSGI on the DB-API driver (the limit); sa: raw WSGI on the SQLAlchemy Core
#: statements the peers use (what a peer adds to it is the framework's own overhead).
CONTESTANTS = ("raw", "sa", "falcon", "bottle", "pyramid", "flask", "django", "robaccia")
NO_DATABASE = tuple(c for c in CONTESTANTS if c != "sa")  # without a query sa is raw
BASELINES = ("raw", "sa", "robaccia")  # where no target compares robaccia with the peers


@dataclass(frozen=True)
class Scenario:
    """One request, answered by several contestants with the same body."""

    key: str
    title: str
    app: str  # the app each contestant builds for it (scenarios may share one)
    method: str
    path: str
    query: str = ""
    cookie: str = ""  # "jinja2" or "genshi": send that project's CSRF cookie
    form: bool = False  # POST the employee form (with the CSRF token)
    accept: str = "text/html,application/xhtml+xml,*/*;q=0.8"
    contestants: tuple[str, ...] = CONTESTANTS
    expect: int = 200
    note: str = ""


_RAW_NOTE = ("raw = plain {} + the query (sqlite3); sa = the same with the SQLAlchemy Core "
             "query.")
_DEEP = f"after={cursor(DEEP_AFTER, DEEP_AFTER)}"
SCENARIOS: list[Scenario] = [
    Scenario("plumbing", "1a. Plumbing: GET /employees/1, a fixed 13-byte body", "plumbing",
             "GET", "/employees/1", accept="*/*", contestants=NO_DATABASE,
             note="Routing, request and response only. robaccia: a custom collection added "
                  "before the default route of the generated dispatcher.py."),
    Scenario("convention", "1b. Convention route: GET /hello/1 to views/hello.py, a fixed "
             "13-byte body", "convention", "GET", "/hello/1", accept="*/*",
             contestants=NO_DATABASE,
             note="The path every user's request takes. robaccia: the generated dispatcher.py "
                  "unchanged, its default route and deferred_collection to views/hello.py, a "
                  "plain Collection whose retrieve answers the body. Peers: a route with a "
                  "variable to a handler."),
    Scenario("json_member", "2. JSON member: one row by primary key (SQLite file)", "json_member",
             "GET", "/employees/1", accept=JSON_TYPE,
             note="robaccia: `addmodelview employees ... --type json` as generated."),
    Scenario("html_member", "3a. HTML member page, Jinja2 (SQLite)", "jinja2", "GET",
             "/employees/1", cookie="jinja2",
             note="templates/employees/retrieve.html of the jinja2 project for all; "
                  + _RAW_NOTE.format("Template.render")),
    Scenario("html_list", "3b. HTML list page, 50 rows, Jinja2 (SQLite)", "jinja2", "GET",
             "/employees/", cookie="jinja2",
             note="templates/employees/list.html for all; " + _RAW_NOTE.format("Template.render")),
    Scenario("genshi_member", "3c. HTML member page, Genshi (SQLite)", "genshi", "GET",
             "/employees/1", cookie="genshi", contestants=BASELINES,
             note=_RAW_NOTE.format("cached Genshi template (generate + render)")),
    Scenario("genshi_list", "3d. HTML list page, 50 rows, Genshi (SQLite)", "genshi", "GET",
             "/employees/", cookie="genshi", contestants=BASELINES,
             note=_RAW_NOTE.format("cached Genshi template (generate + render)")),
    Scenario("create", "4. Create: POST a form, validate, insert, 303 (SQLite)", "jinja2",
             "POST", "/employees/", cookie="jinja2", form=True, expect=303,
             note="Every contestant validates name (required, <= 250), title (<= 250) and "
                  "office_number (integer); robaccia also checks the CSRF cookie + token."),
    Scenario("deep_sqlite_first", "5a. Keyset list (JSON), first page, SQLite, 1,000,000 rows",
             "deep_sqlite", "GET", f"/{DEEP_TABLE}/", accept=JSON_TYPE, contestants=BASELINES),
    Scenario("deep_sqlite_deep", "5b. Keyset list (JSON), page at depth 500,000, SQLite",
             "deep_sqlite", "GET", f"/{DEEP_TABLE}/", query=_DEEP, accept=JSON_TYPE,
             contestants=BASELINES),
    Scenario("deep_pg_first", "5c. Keyset list (JSON), first page, PostgreSQL, 1,000,000 rows",
             "deep_pg", "GET", f"/{DEEP_TABLE}/", accept=JSON_TYPE, contestants=BASELINES),
    Scenario("deep_pg_deep", "5d. Keyset list (JSON), page at depth 500,000, PostgreSQL",
             "deep_pg", "GET", f"/{DEEP_TABLE}/", query=_DEEP, accept=JSON_TYPE,
             contestants=BASELINES),
]
BY_KEY = {s.key: s for s in SCENARIOS}


@dataclass
class Context:
    """Where the run's files are; saved as JSON for the callgrind workers and gunicorn."""

    workdir: str
    main_db: str
    deep_db: str
    pg: bool
    projects: dict[str, str] = field(default_factory=dict)  # jinja2/json/genshi -> root
    cookies: dict[str, str] = field(default_factory=dict)  # jinja2/genshi -> Cookie header
    tokens: dict[str, str] = field(default_factory=dict)  # jinja2/genshi -> CSRF token

    def save(self) -> Path:
        path = Path(self.workdir) / "context.json"
        path.write_text(json.dumps(self.__dict__, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Context:
        return cls(**json.loads(Path(path).read_text()))

    def url(self, db: str) -> str:
        return {"main": f"sqlite:///{self.main_db}", "deep_sqlite": f"sqlite:///{self.deep_db}",
                "deep_pg": PG_URL}[db]


def base_environ(scenario: Scenario, ctx: Context) -> tuple[dict[str, Any], bytes]:
    """The environ a server would build for this request (less wsgi.input), and the body."""
    body = b""
    env: dict[str, Any] = {
        "REQUEST_METHOD": scenario.method, "SCRIPT_NAME": "", "PATH_INFO": scenario.path,
        "QUERY_STRING": scenario.query,
        "RAW_URI": scenario.path + ("?" + scenario.query if scenario.query else ""),
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "54321", "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "robaccia-bench/1", "HTTP_ACCEPT": scenario.accept,
        "HTTP_ACCEPT_ENCODING": "gzip, deflate", "HTTP_CONNECTION": "keep-alive",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.multithread": False,
        "wsgi.multiprocess": False, "wsgi.run_once": False, "wsgi.input_terminated": True,
    }
    if scenario.cookie:
        env["HTTP_COOKIE"] = ctx.cookies[scenario.cookie]
    if scenario.form:
        body = urlencode(dict(FORM_VALUES, _csrf=ctx.tokens.get("jinja2", ""))).encode()
        env.update(CONTENT_TYPE="application/x-www-form-urlencoded",
                   CONTENT_LENGTH=str(len(body)), HTTP_ORIGIN="http://127.0.0.1:8000")
    return env, body


# --- the work behind the routes ---------------------------------------------------------

_INT = re.compile(r"[+-]?[0-9]+\Z")


def validate_employee(form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Check name (required, <= 250), title (<= 250), office_number (32-bit integer)."""
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    name = form.get("name")
    if name is None or not name.strip():
        errors["name"] = "This field is required."
    elif len(name) > 250 or "\x00" in name:
        errors["name"] = "Use at most 250 characters."
    else:
        clean["name"] = name
    title = form.get("title")
    if title is not None:
        if not title.strip():
            clean["title"] = None
        elif len(title) > 250 or "\x00" in title:
            errors["title"] = "Use at most 250 characters."
        else:
            clean["title"] = title
    office = form.get("office_number")
    if office is not None:
        text = office.strip()
        if not text:
            clean["office_number"] = None
        elif not _INT.match(text) or len(text) > 25 or not -(2**31) <= int(text) < 2**31:
            errors["office_number"] = "Enter a whole number."
        else:
            clean["office_number"] = int(text)
    return clean, errors


def member_location(pk: Any) -> str:
    return "/employees/" + quote(str(pk), safe="-._~")


class PageField:
    """What the project templates read of a column (robaccia passes its Field objects)."""

    __slots__ = ("name", "label", "input", "long")

    def __init__(self, name: str, label: str, input: str, long: bool = False) -> None:
        self.name, self.label, self.input, self.long = name, label, input, long

    def display(self, value: Any) -> str:
        return "" if value is None else str(value)

    def excerpt(self, value: Any) -> str:  # a list cell of a long column: 200 characters
        text = self.display(value)
        return text if len(text) <= 200 else text[:200].rstrip() + "\u2026"

    def link(self, value: Any) -> str | None:  # a member page's link: url and email columns only
        return None


FIELDS = [PageField("id", "Id", "number"), PageField("name", "Name", "text", long=True),
          PageField("title", "Title", "text", long=True),
          PageField("office_number", "Office number", "number")]
_CAN = SimpleNamespace(create=True, update=True, delete=True)
_NAV = [{"name": "employees", "title": "Employees", "url": "/employees/", "current": True}]


def _page_vars(csrf_token: str, project: str) -> dict[str, Any]:
    """What robaccia gives every HTML page of the employees view (collection and request)."""
    return {"primary": "id", "item": "Employee", "title": "Employees", "fields": FIELDS,
            "collection_url": "/employees/", "member_url": member_location, "message": "",
            "csrf_token": csrf_token, "csrf_field": "_csrf", "flashes": [],
            "static_url": lambda path: "/static/" + path, "home_url": "/", "project": project,
            "can": _CAN, "nav": _NAV}


def member_context(row: dict[str, Any], csrf_token: str, project: str) -> dict[str, Any]:
    return {**_page_vars(csrf_token, project), "row": row}


def page(rows: list[dict[str, Any]], base: str, after: tuple[int, int] | None) -> dict[str, Any]:
    """Cut the limit + 1 rows of a keyset page; name the next and previous pages."""
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    start = after[1] + 1 if after is not None else 1
    next_url = prev_url = None
    if rows and more:
        next_url = base + "?" + urlencode({"after": cursor(rows[-1]["id"], start + len(rows) - 1)})
    if rows and after is not None:
        prev_url = base + "?" + urlencode({"before": cursor(rows[0]["id"], start)})
    return {"data": rows, "next": next_url, "prev": prev_url, "start": start,
            "end": start + len(rows) - 1}


def list_context(rows: list[dict[str, Any]], csrf_token: str, project: str) -> dict[str, Any]:
    cut = page(rows, "/employees/", None)
    return {**_page_vars(csrf_token, project), "data": cut["data"], "next_url": cut["next"],
            "prev_url": cut["prev"], "sort": "", "limit": PAGE_SIZE, "meta": list(COLUMNS),
            "start": cut["start"], "end": cut["end"]}


def after_param(text: str | None) -> tuple[int, int] | None:
    """The ?after= cursor (key, position): None when absent; ValueError when not a cursor."""
    if text is None:
        return None
    if len(text) > 200:
        raise ValueError(text)
    key, position, is_null, value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    if type(key) is not int or type(position) is not int or is_null is not False or value is not None:
        raise ValueError(text)
    return key, position


def to_json(value: Any) -> bytes:
    return json.dumps(value).encode()


class Templates:
    """The project's templates, each loaded once and rendered by the engine directly.

    As in production, and as robaccia's own loaders outside debug mode: templates
    are not re-checked on disk at every render (auto_reload off).
    """

    def __init__(self, ctx: Context) -> None:
        import jinja2
        from genshi.template import TemplateLoader

        self.jinja_env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(f"{ctx.projects['jinja2']}/templates"),
            autoescape=True, auto_reload=False)
        self.genshi_loader = TemplateLoader([f"{ctx.projects['genshi']}/templates"],
                                            auto_reload=False)
        self._cache: dict[tuple[str, str], Any] = {}

    def get(self, engine: str, name: str) -> Any:
        template = self._cache.get((engine, name))
        if template is None:
            template = self._cache[(engine, name)] = (
                self.jinja_env.get_template(name) if engine == "jinja2"
                else self.genshi_loader.load(name))
        return template


# --- stores -----------------------------------------------------------------------------


class SAStore:
    """The peers' data access: SQLAlchemy Core as its tutorial shows it.

    The same statements as robaccia's (a SELECT by key, keyset pages, an INSERT),
    on an engine with the default pool: reads in ``engine.connect()``, the insert
    in ``engine.begin()``.
    """

    def __init__(self, url: str, table: str) -> None:
        from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, create_engine, insert, select

        args = {"connect_args": {"check_same_thread": False}} if url.startswith("sqlite") else {}
        self.engine = create_engine(url, **args)
        t = Table(table, MetaData(), Column("id", Integer, primary_key=True),
                  Column("name", String(250), nullable=False), Column("title", String(250)),
                  Column("office_number", Integer))
        self.one = select(t).where(t.c.id == bindparam("pk"))
        self.first = select(t).order_by(t.c.id).limit(bindparam("limit"))
        self.after = select(t).where(t.c.id > bindparam("cursor")).order_by(t.c.id).limit(
            bindparam("limit"))
        self.insert = insert(t)

    def member(self, pk: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(self.one, {"pk": pk}).first()
        return None if row is None else row._asdict()

    def page(self, after: int | None) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            if after is None:
                rows = conn.execute(self.first, {"limit": PAGE_SIZE + 1}).all()
            else:
                rows = conn.execute(self.after, {"cursor": after, "limit": PAGE_SIZE + 1}).all()
        return [r._asdict() for r in rows]

    def create(self, clean: dict[str, Any]) -> Any:
        values = {"name": None, "title": None, "office_number": None, **clean}
        with self.engine.begin() as conn:
            key = conn.execute(self.insert, values).inserted_primary_key
        return key[0] if key else None


class RawStore:
    """The limit: the DB-API driver (sqlite3, or psycopg in autocommit) on one open connection."""

    def __init__(self, db: str, path: str) -> None:
        table = "employees" if db == "main" else DEEP_TABLE
        if db == "deep_pg":
            import psycopg

            self.conn: Any = psycopg.connect(PG_DSN, autocommit=True)
            mark = "%s"
        else:
            self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            mark = "?"
        cols = ", ".join(COLUMNS)
        self.one = f"SELECT {cols} FROM {table} WHERE id = {mark}"
        self.first = f"SELECT {cols} FROM {table} ORDER BY id LIMIT {mark}"
        self.after = f"SELECT {cols} FROM {table} WHERE id > {mark} ORDER BY id LIMIT {mark}"
        self.insert = f"INSERT INTO {table} (name, title, office_number) VALUES (?, ?, ?)"

    def member(self, pk: int) -> dict[str, Any] | None:
        row = self.conn.execute(self.one, (pk,)).fetchone()
        return None if row is None else dict(zip(COLUMNS, row, strict=True))

    def page(self, after: int | None) -> list[dict[str, Any]]:
        if after is None:
            rows = self.conn.execute(self.first, (PAGE_SIZE + 1,)).fetchall()
        else:
            rows = self.conn.execute(self.after, (after, PAGE_SIZE + 1)).fetchall()
        return [dict(zip(COLUMNS, r, strict=True)) for r in rows]

    def create(self, clean: dict[str, Any]) -> Any:
        values = (clean.get("name"), clean.get("title"), clean.get("office_number"))
        return self.conn.execute(self.insert, values).lastrowid
