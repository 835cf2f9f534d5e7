"""robaccia.database and robaccia.schema: which database errors are whose.

503 with Retry-After only for a database that cannot be reached (or stays
busy); a table that lacks a column of its model is a 500 that names the
column and the fix; on all three databases.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from support import load, make_project

from robaccia import DefaultModelCollection
from robaccia.database import driver_code, http_error, lock_timed_out, make_engine, unavailable
from robaccia.schema import SchemaMismatch
from robaccia.testing import Client, call, make_environ


class Api(DefaultModelCollection):
    def list(self, environ: Any, start_response: Any) -> None:
        pass

    def retrieve(self, environ: Any, start_response: Any) -> None:
        pass

    def create(self, environ: Any, start_response: Any) -> None:
        pass


def get(app: Any, method: str = "GET", id: str | None = None, **kw: Any) -> tuple[str, Any, bytes]:
    environ = make_environ(method, "/t/", **{"wsgiorg.routing_args": ((), {"view": "t", "id": id})}, **kw)
    return call(app, environ=environ)


def test_a_column_missing_from_the_table_is_named(db: Engine) -> None:
    name = f"drift_{uuid.uuid4().hex[:8]}"
    old = Table(name, MetaData(), Column("id", Integer, primary_key=True), Column("name", String(20)))
    old.create(db)
    try:
        new = Table(name, MetaData(), Column("id", Integer, primary_key=True), Column("name", String(20)),
                    Column("phone", String(30)))
        app = Api(new, ext="json", engine=db)
        for method, kw in (("GET", {}), ("POST", {"json": {"name": "x", "phone": "1"}})):
            with pytest.raises(SchemaMismatch) as raised:
                get(app, method, **kw)
            assert f"the column {name}.phone is in the model but not in the database" in str(raised.value)
            assert "robaccia-admin makemigration" in raised.value.hint
    finally:
        old.drop(db)


def test_a_database_that_cannot_be_reached_is_503(tmp_path: Path) -> None:
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True))
    for engine in (make_engine(f"sqlite:///{tmp_path}/no/such/folder/db.sqlite"),
                   create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none",
                                 connect_args={"connect_timeout": 1})):
        status, headers, body = get(Api(table, ext="json", engine=engine))
        assert status.startswith("503") and ("Retry-After", "5") in headers, body


def test_a_missing_column_under_run_is_a_debug_page_not_a_503(tmp_path: Path) -> None:
    root = make_project(tmp_path, "genshi", debug=True)
    project = load(root)
    model = root / "models" / "employees.py"
    model.write_text(model.read_text().replace("    Column('title'", "    Column('phone', String(30)),\n"
                                                                 "    Column('title'"))
    # a new process would import the changed model: here, forget the old one
    import sys

    from robaccia.project import Project

    for name in [m for m in sys.modules if m.partition(".")[0] in ("models", "views", "dbconfig")]:
        del sys.modules[name]
    project = Project(root)
    response = Client(project).get("/employees/")
    assert response.status_code == 500
    assert "the column employees.phone is in the model but not in the database" in response.text
    assert "robaccia-admin makemigration" in response.text


@pytest.mark.parametrize(("number", "sqlstate", "busy", "lock"), [
    (1205, "HY000", True, True),  # lock wait timeout: PyMySQL 1.2 gives server errors a SQLSTATE too
    (1213, "40001", True, False),  # deadlock
    (2013, None, True, False),  # lost connection (a client-side error: no SQLSTATE)
    (1062, "23000", False, False),  # duplicate key: the client's mistake, not the database's state
])
def test_mariadb_errors_are_told_by_their_number(number: int, sqlstate: str | None, busy: bool, lock: bool) -> None:
    """A busy MariaDB is a 503 to retry, and a lock timeout is told as one, whatever SQLSTATE it carries."""
    pymysql = pytest.importorskip("pymysql")
    raised = pymysql.err.OperationalError(number, "...")
    raised.sqlstate = sqlstate  # as PyMySQL 1.2 sets it from the server's error packet
    error = sa_exc.OperationalError("UPDATE ...", {}, raised)
    assert driver_code(error) == ("mysql", number)
    assert (unavailable(error), lock_timed_out(error)) == (busy, lock)
    assert (http_error(error) is not None and http_error(error).code == 503) == busy  # type: ignore[union-attr]
