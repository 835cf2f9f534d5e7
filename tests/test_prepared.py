"""robaccia.prepared: the shortcut answers what SQLAlchemy answers, on all three databases."""

from __future__ import annotations

import datetime
import decimal
import enum
import logging
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    Time,
    bindparam,
    create_engine,
    insert,
    select,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from robaccia.prepared import Prepared
from tests.conftest import _connect, unique


class Size(enum.Enum):
    S = 1
    M = 2
    L = 3


ROW = {"n": 42, "f": 2.5, "price": decimal.Decimal("12.30"), "code": "abcde", "body": "long " * 300,
       "flag": True, "day": datetime.date(2024, 2, 29), "at": datetime.datetime(2024, 2, 29, 13, 45, 10),
       "clock": datetime.time(7, 30, 15), "size": Size.M, "label": "M"}


@pytest.fixture(autouse=True, params=["shortcut", "through SQLAlchemy"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs both ways: they must answer the same."""
    if request.param != "shortcut":
        monkeypatch.setattr(Prepared, "_shortcut", lambda self: False)
    return str(request.param)


@pytest.fixture
def kinds(make_table: Any) -> Table:
    return make_table(
        "pkinds",
        Column("id", Integer, primary_key=True),
        Column("n", Integer),
        Column("f", Float),
        Column("price", Numeric(8, 2)),
        Column("code", String(5), unique=True),
        Column("body", Text),
        Column("flag", Boolean),
        Column("day", Date),
        Column("at", DateTime),
        Column("clock", Time),
        Column("size", Enum(Size, name=unique("psize"))),
        Column("label", Enum("S", "M", "L", name=unique("plabel"))),
    )


def _returning(db: Engine) -> bool:
    return db.dialect.name == "postgresql"


def _insert(kinds: Table, db: Engine, keys: list[str]) -> Prepared:
    stmt: Any = insert(kinds).values({k: bindparam(k) for k in keys})
    if _returning(db):
        stmt = stmt.returning(kinds.c.id)
    return Prepared(db, stmt)


def _new_id(outcome: Any) -> Any:
    return outcome.rows[0]["id"] if outcome.rows else outcome.lastrowid


def test_every_column_type_reads_back_as_sqlalchemy_reads_it(kinds: Table, db: Engine) -> None:
    outcome = _insert(kinds, db, list(ROW)).execute(ROW)
    new_id = _new_id(outcome)
    assert outcome.rowcount == 1
    one = select(kinds).where(kinds.c.id == bindparam("pk"))
    got = Prepared(db, one, autocommit=True).first({"pk": new_id})
    with db.connect() as conn:
        expected = conn.execute(one, {"pk": new_id}).first()._asdict()  # type: ignore[union-attr]
    assert got == expected
    assert got is not None and got["size"] is Size.M and got["flag"] is True
    assert got["day"] == ROW["day"] and got["price"] == ROW["price"]


def test_nulls_missing_rows_and_pages(kinds: Table, db: Engine) -> None:
    add = _insert(kinds, db, ["n", "code"])
    ids = [_new_id(add.execute({"n": i, "code": None})) for i in range(5)]
    page = Prepared(db, select(kinds).where(kinds.c.id > bindparam("after"))
                    .order_by(kinds.c.id).limit(bindparam("limit")))
    rows = page.all({"after": ids[0], "limit": 3})
    assert [r["id"] for r in rows] == ids[1:4]
    assert rows[0]["code"] is None and rows[0]["size"] is None and rows[0]["day"] is None
    assert page.all({"after": ids[-1], "limit": 3}) == []
    one = Prepared(db, select(kinds).where(kinds.c.id == bindparam("pk")))
    assert one.first({"pk": ids[-1] + 1000}) is None


def test_a_missing_parameter_is_an_error_not_a_null(kinds: Table, db: Engine) -> None:
    one = Prepared(db, select(kinds).where(kinds.c.id == bindparam("pk")))
    with pytest.raises(sa_exc.StatementError, match="pk"):
        one.first({})


def test_errors_are_sqlalchemys_and_nothing_is_half_written(kinds: Table, db: Engine) -> None:
    add = _insert(kinds, db, ["code"])
    add.execute({"code": "same"})
    with pytest.raises(sa_exc.IntegrityError):
        add.execute({"code": "same"})
    with db.connect() as conn:
        count = conn.execute(select(kinds.c.id).where(kinds.c.code == "same")).all()
    assert len(count) == 1
    assert db.pool.checkedout() == 0  # type: ignore[attr-defined]
    missing = Table(unique("absent"), kinds.metadata, Column("id", Integer, primary_key=True))
    with pytest.raises(sa_exc.DBAPIError):
        Prepared(db, select(missing)).all()
    assert db.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_autocommit_reads_leave_writes_transactional(kinds: Table, db: Engine) -> None:
    reader = Prepared(db, select(kinds.c.id), autocommit=True)
    for _ in range(3):
        reader.all()
    with db.connect() as conn:
        conn.execute(insert(kinds).values(code="undo"))
        conn.rollback()
    assert reader.all() == []
    with db.connect() as conn:
        assert conn.execute(select(kinds.c.id).where(kinds.c.code == "undo")).all() == []


def test_echo_still_logs_every_statement(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'echo.db'}", echo=True)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
            conn.exec_driver_sql("INSERT INTO t (name) VALUES ('a')")
        table = Table("t", MetaData(), autoload_with=engine)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
            rows = Prepared(engine, select(table)).all()
        assert rows == [{"id": 1, "name": "a"}]
        assert any("SELECT" in r.getMessage() for r in caplog.records)
    finally:
        engine.dispose()


@pytest.fixture(params=["postgresql", "mariadb"])
def server_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    engine = _connect(str(request.param), tmp_path_factory)
    yield engine
    engine.dispose()


def test_a_lost_connection_is_replaced(server_db: Engine) -> None:
    db = server_db
    postgres = db.dialect.name == "postgresql"
    who = "SELECT pg_backend_pid() AS who" if postgres else "SELECT CONNECTION_ID() AS who"
    ask = Prepared(db, text(who).columns(Column("who", Integer)), autocommit=True)
    first = ask.first()
    assert first is not None
    # the server drops the pooled connection (as a restart or a proxy would)
    killer = create_engine(db.url, poolclass=NullPool)
    try:
        with killer.connect() as conn:
            if postgres:
                conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first["who"]})
            else:
                conn.exec_driver_sql(f"KILL {int(first['who'])}")
    finally:
        killer.dispose()
    with pytest.raises(sa_exc.DBAPIError) as lost:
        ask.first()
    assert lost.value.connection_invalidated
    after = ask.first()
    assert after is not None and after["who"] != first["who"]
    assert db.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_connection_pinged_after_idling_reads_in_autocommit(
    server_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The idle ping must hand the connection over idle, or the next read fails."""
    import robaccia.database

    monkeypatch.setattr(robaccia.database, "IDLE_PING_AFTER", 0.0)
    engine = robaccia.database.make_engine(server_db.url.render_as_string(hide_password=False))
    try:
        ask = Prepared(engine, text("SELECT 1 AS one").columns(Column("one", Integer)), autocommit=True)
        answers = [ask.first() for _ in range(5)]
        assert answers == [{"one": 1}] * 5
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            conn.rollback()
    finally:
        engine.dispose()
