"""Statements compiled once and run on the pool's DB-API connection.

A model collection runs the same few statements over and over: a row by
key, a page of rows, an insert. :class:`Prepared` compiles one of them once
for its engine and runs it straight on a pooled DB-API connection, with the
same bind and result conversions SQLAlchemy would apply, and answers plain
dicts::

    >>> from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, insert, select
    >>> from robaccia.database import make_engine
    >>> meta = MetaData()
    >>> notes = Table('notes', meta, Column('id', Integer, primary_key=True),
    ...               Column('text', String(100)))
    >>> engine = make_engine('sqlite://')
    >>> meta.create_all(engine)
    >>> add = Prepared(engine, insert(notes).values(text=bindparam('text')))
    >>> add.execute({'text': 'hello'}).lastrowid
    1
    >>> Prepared(engine, select(notes).where(notes.c.id == bindparam('pk'))).first({'pk': 1})
    {'id': 1, 'text': 'hello'}

PERF: SQLAlchemy's own execution (a ``Connection``, the statement's cache
key, an execution context, a ``CursorResult`` and ``Row`` objects) costs
several times the query itself on SQLite. The pool is still SQLAlchemy's:
checkout events, timeouts, pre-ping and invalidation behave as usual.

This shortcut reads SQLAlchemy internals (the compiled statement's bind and
result processors, the pool's invalidation), so it is taken only where the
test suite shows it answers exactly as ``Connection.execute`` does
(tests/test_prepared.py runs every case both ways):

* SQLAlchemy of the minor versions in :data:`TESTED_SQLALCHEMY`;
* the (dialect, driver) pairs in :data:`FAST_DRIVERS`;
* engines with no execution options (``schema_translate_map``,
  ``stream_results``, ``isolation_level``, ``compiled_cache``,
  ``logging_token``... all take SQLAlchemy's path), no connection events and
  no SQL echo;
* statements with no parameters rendered at execution time.

Anything else runs through ``Connection.execute``, and so does everything
when the project sets ``SQL_FAST_PATH = False`` (or the environment
``ROBACCIA_SQL_FAST_PATH=0``). DB-API errors are raised as SQLAlchemy's
exceptions, and a lost connection invalidates the pool, as
``Connection.execute`` would.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import sqlalchemy
from sqlalchemy import exc as sa_exc

from robaccia.database import DatabaseUnavailable, connection

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.sql import Executable

__all__ = ["FAST_DRIVERS", "Outcome", "Prepared", "TESTED_SQLALCHEMY", "fast_path_allowed"]

#: (dialect, driver) pairs whose execution the shortcut reproduces, as tested.
FAST_DRIVERS = frozenset({("sqlite", "pysqlite"), ("postgresql", "psycopg"),
                          ("mysql", "pymysql"), ("mariadb", "pymysql")})
#: SQLAlchemy minor versions the both-ways tests ran on.
TESTED_SQLALCHEMY = ("2.1",)


def fast_path_allowed(engine: Engine) -> bool:
    """Tell whether statements on ``engine`` may take the shortcut at all."""
    if ".".join(sqlalchemy.__version__.split(".")[:2]) not in TESTED_SQLALCHEMY:
        return False
    dialect = engine.dialect
    return (dialect.name, dialect.driver) in FAST_DRIVERS and not engine.get_execution_options()


class Outcome:
    """What a write reports: rows affected, the new row id, any RETURNING rows."""

    __slots__ = ("rowcount", "lastrowid", "rows")

    def __init__(self, rowcount: int, lastrowid: Any, rows: list[dict[str, Any]]) -> None:
        self.rowcount = rowcount
        self.lastrowid = lastrowid
        self.rows = rows


class Prepared:
    """One statement, compiled once for ``engine``.

    :param engine: the engine (its pool, dialect and driver).
    :param statement: a Core statement whose parameters are ``bindparam`` names.
    :param autocommit: run reads (:meth:`all`, :meth:`first`) in driver
        autocommit mode (PostgreSQL: one round trip, no BEGIN/ROLLBACK);
        :meth:`execute` always runs in a transaction that commits.
    :param fast: False runs every call through ``Connection.execute``.
    """

    def __init__(self, engine: Engine, statement: Executable, *, autocommit: bool = False,
                 fast: bool = True) -> None:
        self.engine = engine
        self.statement = statement
        dialect = engine.dialect
        self.dialect = dialect
        # NOTE: only psycopg's autocommit is an attribute (PyMySQL's is a method).
        self.autocommit = autocommit and dialect.name == "postgresql"
        self._autocommit_engine = (engine.execution_options(isolation_level="AUTOCOMMIT")
                                   if self.autocommit else engine)
        compiled: Any = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        self.sql: str = compiled.string
        binds = compiled.bind_names
        self.fast = (fast and fast_path_allowed(engine)
                     and not compiled.literal_execute_params
                     and not compiled.post_compile_params
                     and not compiled.insert_prefetch and not compiled.update_prefetch
                     and not any(bind.callable for bind in binds)
                     and "POSTCOMPILE" not in self.sql)
        self._positional = dialect.positional
        processors = compiled._bind_processors
        escaped = compiled.escaped_bind_names or {}
        if self._positional:
            names = list(compiled.positiontup or ())
        else:
            names = list(dict.fromkeys(binds.values()))
        #: (name given, name the driver sees, conversion)
        self._slots = tuple((name, name if self._positional else escaped.get(name, name),
                             processors.get(name)) for name in names)
        self._plain = all(process is None for _, _, process in self._slots)
        # PERF: a plain positional statement's values taken in C (itemgetter, for
        # two names or more, raises the same KeyError for the first missing one)
        self._take = itemgetter(*names) if self._plain and self._positional and len(names) > 1 else None
        self._defaults = {name: bind.value for bind, name in binds.items() if not bind.required}
        self._columns = [(key, type_) for key, _name, _objs, type_ in compiled._result_columns]
        self._keys = tuple(key for key, _ in self._columns)
        self._processors: list[Any] | None = None
        self._error = dialect.loaded_dbapi.Error

    # --- the public calls -------------------------------------------------------

    def all(self, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a query and return every row as a dict."""
        return self._run(params, many=True)  # type: ignore[no-any-return]

    def first(self, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Run a query and return its first row as a dict, or None."""
        return self._run(params, many=False)  # type: ignore[no-any-return]

    def execute(self, params: dict[str, Any] | None = None) -> Outcome:
        """Run a write in its own transaction (committed) and report it."""
        return self._run(params, many=None)  # type: ignore[no-any-return]

    # --- how -----------------------------------------------------------------------

    def _shortcut(self) -> bool:
        engine = self.engine
        return self.fast and not engine._has_events and not self.dialect._has_events \
            and not engine._should_log_info()

    def _run(self, params: dict[str, Any] | None, many: bool | None) -> Any:
        if not self._shortcut():
            return self._through_sqlalchemy(params or {}, many)
        args = self._bind(params or {})
        engine = self.engine
        try:
            fairy = engine.raw_connection()
        except (sa_exc.DBAPIError, sa_exc.TimeoutError, self._error) as exc:
            raise DatabaseUnavailable("The database cannot be reached.") from exc
        cursor = dbapi = None
        autocommit = self.autocommit and many is not None  # never for a write
        try:
            dbapi = fairy.dbapi_connection
            assert dbapi is not None  # a checked-out fairy has one (fairy.cursor() asserts it too)
            if autocommit:
                dbapi.autocommit = True
            try:
                cursor = fairy.cursor()
                cursor.execute(self.sql, args)
                if many is None:
                    rows = self._rows(cursor, cursor.fetchall()) if cursor.description else []
                    outcome = Outcome(cursor.rowcount, getattr(cursor, "lastrowid", None), rows)
                    # PERF: what fairy.commit() calls (through the fairy's __getattr__,
                    # after a failed lookup that formats an AttributeError)
                    dbapi.commit()
                    return outcome
                if many:
                    return self._rows(cursor, cursor.fetchall())
                row = cursor.fetchone()
                return None if row is None else self._rows(cursor, [row])[0]
            finally:
                if autocommit:
                    try:
                        dbapi.autocommit = False
                    except self._error:
                        # never back in the pool still autocommitting
                        fairy.invalidate()
        except self._error as exc:
            self._raise(exc, fairy, dbapi, cursor)
        finally:
            if cursor is not None:
                try:
                    cursor.close()
                except self._error:
                    pass
            # returns it to the pool, which rolls back anything not committed
            fairy.close()

    def _bind(self, params: dict[str, Any]) -> Any:
        if self._defaults:
            params = {**self._defaults, **params}
        try:
            if self._plain:
                if self._positional:
                    if self._take is not None:
                        return self._take(params)
                    return tuple([params[name] for name, _, _ in self._slots])
                return {driver: params[name] for name, driver, _ in self._slots}
            values = [(driver, params[name] if process is None or params[name] is None
                       else process(params[name])) for name, driver, process in self._slots]
        except KeyError as exc:
            missing = sa_exc.InvalidRequestError(f"A value is required for bind parameter {exc}")
            raise sa_exc.StatementError(str(missing), self.sql, None, missing) from None
        if self._positional:
            return tuple([value for _, value in values])
        return dict(values)

    def _rows(self, cursor: Any, raw: Sequence[Any]) -> list[dict[str, Any]]:
        processors = self._processors
        if processors is None:
            processors = self._processors = self._result_processors(cursor)
        keys = self._keys
        if not any(processors):
            return [dict(zip(keys, row, strict=False)) for row in raw]
        return [{key: (value if process is None or value is None else process(value))
                 for key, value, process in zip(keys, row, processors, strict=False)} for row in raw]

    def _result_processors(self, cursor: Any) -> list[Any]:
        """The conversions SQLAlchemy applies, from the driver's column types."""
        description = cursor.description or ()
        if len(description) != len(self._columns):
            raise sa_exc.InvalidRequestError("The query's columns do not match its result.")
        return [type_._cached_result_processor(self.dialect, desc[1])
                for (_key, type_), desc in zip(self._columns, description, strict=True)]

    def _raise(self, exc: Any, fairy: Any, dbapi: Any, cursor: Any) -> Any:
        dialect = self.dialect
        lost = dialect.is_disconnect(exc, dbapi, cursor)
        if lost and fairy is not None:
            self.engine.pool._invalidate(fairy, exc)
        raise sa_exc.DBAPIError.instance(
            self.sql, None, exc, self._error, hide_parameters=self.engine.hide_parameters,
            connection_invalidated=lost, dialect=dialect,
        ) from exc

    def _through_sqlalchemy(self, params: dict[str, Any], many: bool | None) -> Any:
        if many is None:
            with connection(self.engine, begin=True) as conn:
                result = conn.execute(self.statement, params)
                rows = [r._asdict() for r in result] if result.returns_rows else []
                lastrowid = getattr(result, "lastrowid", None)
                # NOTE: a statement with RETURNING reports no rowcount here
                rowcount = len(rows) if rows and result.rowcount < 0 else result.rowcount
                return Outcome(rowcount, lastrowid, rows)
        with connection(self._autocommit_engine) as conn:
            result = conn.execute(self.statement, params)
            if many:
                return [r._asdict() for r in result]
            row = result.first()
            return None if row is None else row._asdict()
