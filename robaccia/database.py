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
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.engine import create_engine as _create_engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import StaticPool

__all__ = ["make_engine"]


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
