"""Shared fixtures: template folders, a recording renderer, databases, tables.

The database fixture runs a test on SQLite (a file in a temporary folder),
PostgreSQL (psycopg 3) and MariaDB (PyMySQL); their URLs, and what happens
when a server cannot be reached, are in support.py, as is the HTML reader
(``read_page``).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The repository root is not installed in the virtualenv; make it importable.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import Column, MetaData, Table, create_engine, event  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from support import read_page, require_database  # noqa: E402,F401 (read_page: tests import it from here)

from robaccia.renderers import Templates  # noqa: E402

INPUT = Path(__file__).resolve().parent / "input"
TEMPLATES = INPUT / "templates"


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
    url = require_database(backend)
    return create_engine(url, connect_args={"connect_timeout": 3}, pool_size=10, max_overflow=10)


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
