"""The test databases: their URLs, and what to do when one cannot be reached.

The server URLs come from ``ROBACCIA_TEST_POSTGRES_URL`` and
``ROBACCIA_TEST_MARIADB_URL``. A service that cannot be reached skips its
tests, unless ``ROBACCIA_REQUIRE_SERVICES=1`` makes that a failure (CI sets
it so a missing service is never silent).
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_SERVICES = os.environ.get("ROBACCIA_REQUIRE_SERVICES") == "1"

POSTGRES_URL = os.environ.get(
    "ROBACCIA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get("ROBACCIA_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
DATABASE_URLS = {"postgresql": POSTGRES_URL, "mariadb": MARIADB_URL}


def missing(reason: str) -> NoReturn:
    """Skip the test for want of a service, or fail it with ROBACCIA_REQUIRE_SERVICES=1."""
    if REQUIRE_SERVICES:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def database_problem(url: str, timeout: float = 3) -> str | None:
    """Why the database at ``url`` cannot be used now, or None when it answers."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, connect_args={"connect_timeout": timeout}, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return None
    except Exception as exc:  # any driver error means "not reachable"
        return f"{engine.url!r} is not reachable: {type(exc).__name__}: {exc}"
    finally:
        engine.dispose()


_reachable: set[str] = set()


def require_database(backend: str) -> str:
    """The URL of ``backend`` (postgresql or mariadb); a missing server skips or fails.

    A server that answered once is not asked again this session; one that
    did not is asked again next time (it may have been restarting).
    """
    url = DATABASE_URLS[backend]
    if backend not in _reachable:
        problem = database_problem(url)
        if problem is not None:
            missing(f"{backend}: {problem}")
        _reachable.add(backend)
    return url


def require_postgres() -> str:
    """The PostgreSQL URL; a missing server skips the test (or fails it)."""
    return require_database("postgresql")
