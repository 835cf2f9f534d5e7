"""Shared fixtures: template folders, a recording renderer, databases, tables.

The database fixture runs a test on SQLite (a file in a temporary folder),
PostgreSQL (psycopg 3) and MariaDB (PyMySQL). The server URLs come from
``ROBACCIA_TEST_POSTGRES_URL`` and ``ROBACCIA_TEST_MARIADB_URL``; a server
that cannot be reached skips its tests, unless ``ROBACCIA_REQUIRE_SERVICES=1``
makes that a failure (CI sets it so a missing service is never silent).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

# The repository root is not installed in the virtualenv; make it importable.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import Column, MetaData, Table, create_engine, event  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from robaccia.renderers import Templates  # noqa: E402

INPUT = Path(__file__).resolve().parent / "input"
TEMPLATES = INPUT / "templates"

DATABASE_URLS = {
    "postgresql": os.environ.get(
        "ROBACCIA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get(
        "ROBACCIA_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
    ),
}


# --- templates ------------------------------------------------------------------


@pytest.fixture(params=["genshi", "jinja2"])
def engine_name(request: pytest.FixtureRequest) -> str:
    """Each template engine in turn."""
    return str(request.param)


@pytest.fixture
def templates(engine_name: str) -> Templates:
    """The test template set for one engine (views ``fred`` and ``greeter``)."""
    return Templates(str(TEMPLATES / engine_name), engine_name)


# --- a renderer that records what it was asked to render ---------------------------


class Recorder:
    """A mock renderer: records each call and answers with its status."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self,
        environ: dict[str, Any],
        start_response: Any,
        template: str,
        vars: dict[str, Any],
        headers: Any = None,
        status: str = "200 OK",
    ) -> list[bytes]:
        self.calls.append(
            {"environ": environ, "template": template, "vars": vars,
             "headers": list(headers or []), "status": status}
        )
        start_response(status, [("Content-Type", "text/plain"), *(headers or [])])
        return [b"rendered " + template.encode()]

    @property
    def last(self) -> dict[str, Any]:
        return self.calls[-1]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


# --- reading HTML responses ---------------------------------------------------------


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.inputs: dict[str, dict[str, str | None]] = {}
        self.ids: dict[str, str] = {}
        self.attrs: dict[str, dict[str, str | None]] = {}
        self.links: dict[str, str] = {}
        self.text: list[str] = []
        self._stack: list[tuple[str, tuple[str, str] | None]] = []
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        name = a.get("name")
        capture: tuple[str, str] | None = None
        if tag == "input" and name:
            if a.get("type") != "radio" or "checked" in a:
                self.inputs[name] = a
        elif tag == "textarea" and name:
            self.inputs[name] = dict(a, value="")
            capture = ("textarea", name)
        elif tag == "select" and name:
            self._select = name
            self.inputs[name] = dict(a, value=None)
        elif tag == "option" and self._select and "selected" in a:
            self.inputs[self._select]["value"] = a.get("value")
        if tag == "a" and a.get("rel"):
            self.links[str(a["rel"])] = str(a.get("href"))
        if a.get("id") and capture is None:
            self.ids[str(a["id"])] = ""
            self.attrs[str(a["id"])] = a
            capture = ("id", str(a["id"]))
        if tag not in _VOID:
            self._stack.append((tag, capture))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self._stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        while self._stack:
            if self._stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for _, capture in self._stack:
            if capture is None:
                continue
            kind, key = capture
            if kind == "id":
                self.ids[key] += data
            else:
                self.inputs[key]["value"] = (self.inputs[key]["value"] or "") + data


def read_page(body: bytes) -> _Page:
    """Parse an HTML page: inputs by name, text and attributes by element id, rel links."""
    page = _Page()
    page.feed(body.decode("utf-8"))
    page.close()
    return page


# --- databases ------------------------------------------------------------------------


def _sqlite_foreign_keys(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _connect(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("db") / "test.db"
        engine = create_engine(f"sqlite:///{path}")
        event.listen(engine, "connect", _sqlite_foreign_keys)
        return engine
    url = DATABASE_URLS[backend]
    args = {"connect_timeout": 3}
    engine = create_engine(url, connect_args=args, pool_size=10, max_overflow=10)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # any driver error means "not reachable"
        engine.dispose()
        message = f"{backend} is not reachable at {engine.url!r}: {exc}"
        if os.environ.get("ROBACCIA_REQUIRE_SERVICES") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return engine


@pytest.fixture(scope="session", params=["sqlite", "postgresql", "mariadb"])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """An engine for each database in turn (created once per session)."""
    engine = _connect(str(request.param), tmp_path_factory)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = _connect("sqlite", tmp_path_factory)
    yield engine
    engine.dispose()


def unique(prefix: str) -> str:
    """A name no other test (or concurrent test run) is using."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_table(db: Engine) -> Iterator[Any]:
    """Create tables with unique names on ``db``; all are dropped afterwards.

    ``make_table('people', Column(...), ...)`` returns the created Table.
    """
    metadata = MetaData()

    def make(prefix: str, *columns: Column[Any], **kw: Any) -> Table:
        table = Table(unique(prefix), metadata, *columns, **kw)
        table.create(db)
        return table

    yield make
    metadata.drop_all(db)
