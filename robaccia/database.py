"""Engines with the settings a web app wants, for SQLite, PostgreSQL and MariaDB.

    >>> from robaccia.database import make_engine
    >>> engine = make_engine('sqlite://')
    >>> with engine.connect() as conn:
    ...     conn.exec_driver_sql('PRAGMA foreign_keys').scalar()
    1

* every pool checks a connection before use (``pool_pre_ping``), so a
  restarted database server costs one failed request at most, not a restart;
* connecting and waiting for a pooled connection time out after a few
  seconds (the request becomes a 503 with Retry-After, never a hang);
* SQLite files use WAL and a busy timeout, so readers don't block the
  writer, and enforce foreign keys.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.engine import create_engine as _create_engine
from sqlalchemy.pool import StaticPool

__all__ = ["make_engine"]


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for a web app; ``kwargs`` go to ``create_engine``."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {"pool_pre_ping": True}
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
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
