"""Engines with the settings a web app wants, for SQLite, PostgreSQL and MariaDB.

    >>> from robaccia.database import make_engine
    >>> engine = make_engine('sqlite://')
    >>> with engine.connect() as conn:
    ...     conn.exec_driver_sql('PRAGMA foreign_keys').scalar()
    1

* a pooled connection to a database server that sat idle for a few seconds
  is checked before use (and replaced if the server went away), so a
  restarted server needs no restart of ours; a connection in steady use is
  not pinged, so a read stays one round trip;
* connecting and waiting for a pooled connection time out after a few
  seconds (the request becomes a 503 with Retry-After, never a hang);
* SQLite files use WAL and a busy timeout, so readers don't block the
  writer, and enforce foreign keys.

:func:`unavailable` tells an error that means "the database cannot be
reached right now" (a 503 with Retry-After) from every other database error,
by SQLAlchemy's exception types, ``connection_invalidated`` and the drivers'
error codes, never by message text; :func:`http_error` gives the answer any
failed statement means to the client::

    >>> from sqlalchemy import exc
    >>> http_error(exc.IntegrityError('INSERT ...', {}, Exception('UNIQUE constraint failed'))).code
    409
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import MetaData, Table, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine import create_engine as _create_engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import StaticPool

from robaccia.errors import Conflict, HTTPError, RobacciaError, ServiceUnavailable, UnprocessableEntity

__all__ = ["STATEMENT_ERRORS", "DatabaseUnavailable", "connection", "driver_code", "http_error", "lock_timed_out",
           "make_engine", "make_metadata", "unavailable"]


class DatabaseUnavailable(RobacciaError):
    """The database cannot be reached (or stays busy): answer 503 and try again later."""


#: Driver error codes that mean "busy, try again" rather than "wrong".
_SQLITE_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED (primary result codes)
_MYSQL_BUSY = {1205, 1213, 2003, 2006, 2013}  # lock wait, deadlock, cannot connect, gone, lost
_POSTGRES_BUSY = {"40P01", "55P03", "40001", "57P01", "57P03", "08000", "08001", "08003", "08006"}


def driver_code(exc: sa_exc.DBAPIError) -> tuple[str, Any]:
    """The database family and the driver's error code of a failed statement.

    ``("sqlite", primary result code)``, ``("postgresql", SQLSTATE)``,
    ``("mysql", error number)`` (MariaDB too), or ``("", None)``.
    """
    orig = exc.orig
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return "sqlite", code & 0xFF
    # NOTE: the error number before the SQLSTATE: PyMySQL 1.2 gives server errors a
    # sqlstate too ("HY000" for a lock wait), while psycopg's first argument is text.
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    if args and isinstance(args[0], int):
        return "mysql", args[0]
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return "postgresql", sqlstate
    return "", None


_BUSY: dict[str, frozenset[Any]] = {"sqlite": frozenset(_SQLITE_BUSY), "postgresql": frozenset(_POSTGRES_BUSY),
                                     "mysql": frozenset(_MYSQL_BUSY)}
#: Driver codes of a statement that gave up waiting for a lock (lock_timeout, lock_wait_timeout).
_LOCK_TIMEOUTS = {("postgresql", "55P03"), ("mysql", 1205)}


def unavailable(exc: BaseException) -> bool:
    """Tell whether a database error means it cannot be reached (or is busy) now."""
    if isinstance(exc, (DatabaseUnavailable, sa_exc.TimeoutError, DisconnectionError)):
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    family, code = driver_code(exc)
    return code in _BUSY.get(family, frozenset())


def lock_timed_out(exc: BaseException) -> bool:
    """Tell whether a statement failed for want of a lock it waited for too long."""
    return isinstance(exc, sa_exc.DBAPIError) and driver_code(exc) in _LOCK_TIMEOUTS


#: What a failed statement raises: the errors :func:`http_error` answers for.
STATEMENT_ERRORS = (DatabaseUnavailable, sa_exc.DBAPIError, sa_exc.TimeoutError, sa_exc.DisconnectionError)


def http_error(exc: BaseException) -> HTTPError | None:
    """The HTTP error a failed statement is to the client; None for a server error.

    503 while the database cannot be reached (:func:`unavailable`), 422 for a
    value that does not fit its column, 409 for a unique or foreign-key
    violation.
    """
    if unavailable(exc):
        return ServiceUnavailable("The database is not reachable right now.")
    if isinstance(exc, sa_exc.DataError):
        return UnprocessableEntity({}, "A value does not fit its column.")
    if isinstance(exc, sa_exc.IntegrityError):
        return Conflict("That change conflicts with existing data: a value that must be "
                        "unique is taken, or a referenced row does not exist.")
    return None


@contextlib.contextmanager
def connection(engine: Engine, *, begin: bool = False) -> Iterator[Connection]:
    """A connection from the pool (in a transaction with ``begin``).

    Failing to get one raises :class:`DatabaseUnavailable`: whatever the
    driver said, the database could not be reached.
    """
    try:
        conn = engine.connect()
    except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
        raise DatabaseUnavailable("The database cannot be reached.") from exc
    with conn:
        if begin:
            with conn.begin():
                yield conn
        else:
            yield conn


def make_metadata() -> MetaData:
    """A MetaData whose tables never give a deleted row's key to a new row.

    PostgreSQL and MariaDB never reuse a generated key; SQLite does (it takes
    the largest key plus one) unless a table says ``sqlite_autoincrement``,
    which every table of this MetaData says unless it says otherwise::

        >>> from sqlalchemy import Column, Integer, Table
        >>> from sqlalchemy.schema import CreateTable
        >>> table = Table('t', make_metadata(), Column('id', Integer, primary_key=True))
        >>> 'AUTOINCREMENT' in str(CreateTable(table).compile(make_engine('sqlite://')))
        True
    """
    return MetaData(info={_NEVER_REUSE: True})


_NEVER_REUSE = "robaccia.never_reuse_keys"


@event.listens_for(Table, "after_parent_attach")
def _never_reuse_keys(table: Table, parent: Any) -> None:
    if isinstance(parent, MetaData) and parent.info.get(_NEVER_REUSE) \
            and "sqlite_autoincrement" not in dict(table.dialect_kwargs):  # the table's own wins
        table.dialect_kwargs["sqlite_autoincrement"] = True


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for a web app; ``kwargs`` go to ``create_engine``."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {}
    if backend == "sqlite":
        memory = parsed.database in (None, "", ":memory:")
        options["connect_args"] = {"check_same_thread": False, "timeout": 15}
        if memory:
            options["poolclass"] = StaticPool
    elif backend == "postgresql":
        options.update(pool_timeout=5, connect_args={"connect_timeout": 5})
    elif backend in ("mysql", "mariadb"):
        options.update(pool_timeout=5, pool_recycle=3600,
                       connect_args={"connect_timeout": 5, "charset": "utf8mb4"})
    options.update(kwargs)
    engine = _create_engine(url, **options)
    if backend == "sqlite":
        # NOTE: a file has no server to lose, so no ping at all.
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        event.listen(engine, "checkout", _ping_if_idle)
        event.listen(engine, "checkin", _mark_used)
    return engine


#: Seconds a pooled connection may sit unused before it is checked on checkout.
IDLE_PING_AFTER = 2.0


def _mark_used(dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info["robaccia.used"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    used = record.info.get("robaccia.used")
    if used is None or time.monotonic() - used < IDLE_PING_AFTER:
        return  # new, or in steady use
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        # NOTE: the SELECT opened a transaction; hand the connection over idle,
        # or switching it to autocommit for a read would fail.
        dbapi_connection.rollback()
    except Exception as exc:
        # The pool discards this connection and tries another (SQLAlchemy's
        # documented pessimistic disconnect handling).
        raise DisconnectionError(f"stale pooled connection: {exc}") from exc


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
