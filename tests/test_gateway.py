"""robaccia.gateway: every statement through the hook, and the fast path provably the same.

The model collection's answers are compared with the SQL fast path on and
off, on SQLite, PostgreSQL and MariaDB: byte for byte, for creates, pages in
every sort order, members, updates, conditional writes and deletes.
"""

from __future__ import annotations

import json
import types
import uuid
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import Boolean, Column, Date, Integer, MetaData, Numeric, String, Table, Text, insert, text
from sqlalchemy.engine import Engine

from robaccia import DefaultModelCollection
from robaccia.gateway import TableGateway
from robaccia.prepared import Prepared, fast_path_allowed
from robaccia.testing import call, make_environ


def columns() -> list[Column[Any]]:
    return [Column("id", Integer, primary_key=True), Column("name", String(40), nullable=False),
            Column("notes", Text), Column("price", Numeric(10, 2)), Column("day", Date),
            Column("flag", Boolean)]


class Api(DefaultModelCollection):
    def list(self, environ: Any, start_response: Any) -> None:
        pass

    def create(self, environ: Any, start_response: Any) -> None:
        pass

    def retrieve(self, environ: Any, start_response: Any) -> None:
        pass

    def update(self, environ: Any, start_response: Any) -> None:
        pass

    def delete(self, environ: Any, start_response: Any) -> None:
        pass


def request(app: Any, method: str, id: str | None = None, query: str = "", **kw: Any) -> tuple[str, Any, bytes]:
    environ = make_environ(method, f"/things/{id or ''}", query=query,
                           **{"wsgiorg.routing_args": ((), {"view": "things", "id": id})}, **kw)
    status, headers, body = call(app, environ=environ)
    kept = sorted((k, v) for k, v in headers if k in ("Location", "ETag", "Link", "Content-Type"))
    return status, kept, body


def script(app: Any) -> list[tuple[str, Any, bytes]]:
    """The same requests for either path: what a client sees."""
    seen = []
    for n in range(7):
        seen.append(request(app, "POST", json={"name": f"thing {n % 3}", "notes": "x" * (n * 50),
                                               "price": f"{n}.25", "day": f"2024-01-0{n + 1}",
                                               "flag": n % 2 == 0}))
    for sort in ("", "-id", "name", "-name", "notes", "price", "-day", "flag"):
        query = f"limit=3&sort={sort}" if sort else "limit=3"
        page = request(app, "GET", query=query)
        seen.append(page)
        for _ in range(4):
            following = json.loads(page[2]).get("next")
            if not following:
                break
            page = request(app, "GET", query=following.partition("?")[2])
            seen.append(page)
    seen.append(request(app, "GET", "2"))
    etag = dict(seen[-1][1])["ETag"]
    seen.append(request(app, "PUT", "2", json={"name": "renamed"}, headers={"If-Match": etag}))
    seen.append(request(app, "PUT", "2", json={"name": "stale"}, headers={"If-Match": etag}))
    seen.append(request(app, "GET", "2", headers={"If-None-Match": dict(seen[-2][1])["ETag"]}))
    seen.append(request(app, "DELETE", "3", content_type="application/json"))
    seen.append(request(app, "GET", "3"))
    seen.append(request(app, "GET", "999"))
    return seen


def test_the_fast_path_setting_off_gives_the_same_answers(db: Engine) -> None:
    meta = MetaData()
    fast = Table(f"fast_{uuid.uuid4().hex[:8]}", meta, *columns())
    slow = Table(f"slow_{uuid.uuid4().hex[:8]}", meta, *columns())
    meta.create_all(db)
    try:
        on = Api(fast, ext="json", engine=db)
        off = Api(slow, ext="json", engine=db)
        off._gateways[id(db)] = TableGateway(slow, db, fast=False)  # the project's SQL_FAST_PATH = False
        answers_on, answers_off = script(on), script(off)
        assert next(iter(on._gateways.values())).fast is fast_path_allowed(db)
        assert answers_on == answers_off
        assert [a[0] for a in answers_on][-7:] == ["200 OK", "200 OK", "412 Precondition Failed",
                                                   "304 Not Modified", "204 No Content", "404 Not Found",
                                                   "404 Not Found"]
        assert sum(b'"next"' in a[2] and b'"next": null' not in a[2] for a in answers_on) >= 8
    finally:
        meta.drop_all(db)


def test_the_fast_path_is_allowed_only_where_tested(monkeypatch: pytest.MonkeyPatch) -> None:
    def engine(dialect: str, driver: str, **options: Any) -> Any:
        return types.SimpleNamespace(dialect=types.SimpleNamespace(name=dialect, driver=driver),
                                     get_execution_options=lambda: options)

    assert fast_path_allowed(engine("sqlite", "pysqlite"))
    assert fast_path_allowed(engine("postgresql", "psycopg"))
    assert fast_path_allowed(engine("mysql", "pymysql"))
    for other in (("mysql", "mariadbconnector"), ("mysql", "pyodbc"), ("postgresql", "psycopg2"),
                  ("postgresql", "asyncpg"), ("oracle", "oracledb"), ("sqlite", "aiosqlite")):
        assert not fast_path_allowed(engine(*other)), other
    for option in ({"schema_translate_map": {None: "x"}}, {"stream_results": True},
                   {"isolation_level": "SERIALIZABLE"}, {"compiled_cache": None}, {"logging_token": "a"}):
        assert not fast_path_allowed(engine("sqlite", "pysqlite", **option)), option
    monkeypatch.setattr(sqlalchemy, "__version__", "2.2.0")
    assert not fast_path_allowed(engine("sqlite", "pysqlite"))


@pytest.fixture
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """PostgreSQL alone: schemas are its (MariaDB's are databases, SQLite has none)."""
    from conftest import _connect

    engine = _connect("postgresql", tmp_path_factory)
    yield engine
    engine.dispose()


def test_schema_translate_map_is_honoured(postgres: Engine) -> None:
    schema = f"other_{uuid.uuid4().hex[:8]}"
    name = f"things_{uuid.uuid4().hex[:8]}"
    table = Table(name, MetaData(), Column("id", Integer, primary_key=True), Column("name", String(20)))
    with postgres.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    translated = postgres.execution_options(schema_translate_map={None: schema})
    try:
        table.create(postgres)
        table.create(translated)
        with postgres.begin() as conn:
            conn.execute(insert(table).values(name="in public"))
        with translated.begin() as conn:
            conn.execute(insert(table).values(name="in the other schema"))
        # the prepared statement and the collection both read the translated schema
        from sqlalchemy import bindparam, select

        one = Prepared(translated, select(table).where(table.c.id == bindparam("pk")))
        assert one.first({"pk": 1}) == {"id": 1, "name": "in the other schema"}
        assert not one.fast
        app = Api(table, ext="json", engine=translated)
        assert json.loads(request(app, "GET", "1")[2]) == {"id": 1, "name": "in the other schema"}
        assert json.loads(request(app, "GET")[2])["data"] == [{"id": 1, "name": "in the other schema"}]
        created = request(app, "POST", json={"name": "new"})
        assert created[0] == "201 Created"
        with translated.connect() as conn:
            assert conn.execute(text(f'SELECT count(*) FROM "{schema}"."{name}"')).scalar() == 2
        with postgres.connect() as conn:
            assert conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar() == 1
    finally:
        with postgres.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))


def test_rows_of_a_hook_see_only_what_it_lets_through(db: Engine) -> None:
    meta = MetaData()
    table = Table(f"owned_{uuid.uuid4().hex[:8]}", meta, Column("id", Integer, primary_key=True),
                  Column("owner", String(10)))
    meta.create_all(db)
    try:
        gateway = TableGateway(table, db)
        everyone = gateway.rows()
        ada_id = everyone.insert({"owner": "ada"})["id"]
        bob_id = everyone.insert({"owner": "bob"})["id"]
        ada = gateway.rows(lambda s: s.where(table.c.owner == "ada"))
        assert ada.get(bob_id) is None and ada.get(ada_id) == {"id": ada_id, "owner": "ada"}
        assert ada.count() == 1 and everyone.count() == 2 and everyone.count(limit=1) == 1
        from robaccia.errors import NotFound

        with pytest.raises(NotFound):
            ada.update_if(bob_id, {"owner": "ada"}, None)
        with pytest.raises(NotFound):
            ada.delete_if(bob_id, None)
        assert everyone.get(bob_id) == {"id": bob_id, "owner": "bob"}
    finally:
        meta.drop_all(db)
