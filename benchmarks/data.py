"""The benchmark's rows: 200 employees, and the 1,000,000-row keyset tables.

The million-row tables are built once by one bulk statement (a recursive CTE
on SQLite, generate_series on PostgreSQL) and kept: a later run that finds
exactly 1,000,000 rows reuses them. The SQLite one lives in
benchmarks/output/ (ignored by git), the PostgreSQL one is the table
``benchdeep`` of the ``test`` database.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from common import DEEP_ROWS, DEEP_TABLE, MAIN_ROWS, PG_DSN

DDL = (f"CREATE TABLE IF NOT EXISTS {DEEP_TABLE} (id INTEGER NOT NULL PRIMARY KEY, "
       "name VARCHAR(250) NOT NULL, title VARCHAR(250), office_number INTEGER)")
TITLES = ["Engineer", "R&D <lead>", None, "Sales \"east\"", "Manager"]


def main_rows() -> list[tuple[Any, ...]]:
    """Employees 1..200; some titles need escaping, some values are NULL."""
    return [(i, f"Employee {i}", TITLES[i % len(TITLES)], None if i % 7 == 0 else 100 + i)
            for i in range(1, MAIN_ROWS + 1)]


def seed_main(path: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN")
        conn.execute("DELETE FROM employees")
        conn.executemany("INSERT INTO employees (id, name, title, office_number) "
                         "VALUES (?, ?, ?, ?)", main_rows())
        conn.execute("COMMIT")
    finally:
        conn.close()


def ensure_deep_sqlite(path: str) -> tuple[bool, float]:
    """Make sure the SQLite file has the million rows; return (built now, seconds)."""
    start = time.perf_counter()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(DDL)
        if conn.execute(f"SELECT count(*) FROM {DEEP_TABLE}").fetchone()[0] == DEEP_ROWS:
            return False, time.perf_counter() - start
        conn.execute("BEGIN")
        conn.execute(f"DELETE FROM {DEEP_TABLE}")
        conn.execute(
            f"INSERT INTO {DEEP_TABLE} (id, name, title, office_number) "
            "WITH RECURSIVE n(x) AS "
            f"(SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {DEEP_ROWS}) "
            "SELECT x, 'Employee ' || x, 'Title ' || (x % 7), x % 1000 FROM n")
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("ANALYZE")
        return True, time.perf_counter() - start
    finally:
        conn.close()


def pg_available() -> str | None:
    """Return the server version, or None when PostgreSQL is not reachable."""
    try:
        import psycopg

        with psycopg.connect(PG_DSN, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "unknown"
    except Exception:
        return None


def ensure_deep_pg() -> tuple[bool, float]:
    """Make sure the PostgreSQL table has the million rows; return (built now, seconds)."""
    import psycopg

    start = time.perf_counter()
    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(DDL)
        count = conn.execute(f"SELECT count(*) FROM {DEEP_TABLE}").fetchone()
        if count is not None and count[0] == DEEP_ROWS:
            return False, time.perf_counter() - start
        with conn.transaction():
            conn.execute(f"TRUNCATE {DEEP_TABLE}")
            conn.execute(
                f"INSERT INTO {DEEP_TABLE} (id, name, title, office_number) "
                "SELECT g, 'Employee ' || g, 'Title ' || (g % 7), g % 1000 "
                f"FROM generate_series(1, {DEEP_ROWS}) AS g")
        conn.execute(f"VACUUM ANALYZE {DEEP_TABLE}")
        return True, time.perf_counter() - start
