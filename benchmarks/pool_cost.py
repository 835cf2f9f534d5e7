"""Where a robaccia read's instructions go: the pool, the query, the rest.

    python benchmarks/pool_cost.py

Counts instructions per call with callgrind (two runs of different lengths;
their difference cancels start-up) for three things on one SQLite file:

* ``raw``: the query on an open sqlite3 connection, as a dict;
* ``pool``: SQLAlchemy's pool checkout and return, nothing else;
* ``prepared``: ``robaccia.prepared.Prepared.first``, the path a member page takes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

N1, N2 = 1000, 3000
WHAT = ("raw", "pool", "prepared")


def work(what: str, n: int, path: str) -> None:
    import sqlite3

    from sqlalchemy import Column, Date, Integer, MetaData, String, Table, bindparam, select

    from robaccia.database import make_engine
    from robaccia.prepared import Prepared

    table = Table("e", MetaData(), Column("id", Integer, primary_key=True), Column("name", String(50)),
                  Column("day", Date))
    engine = make_engine(f"sqlite:///{path}")
    prepared = Prepared(engine, select(table).where(table.c.id == bindparam("pk")))
    raw = sqlite3.connect(path, check_same_thread=False, isolation_level=None)

    def raw_query() -> dict[str, object]:
        row = raw.execute("SELECT id, name, day FROM e WHERE id = ?", (3,)).fetchone()
        return dict(zip(("id", "name", "day"), row, strict=True))

    def pool() -> None:
        engine.raw_connection().close()

    def member() -> object:
        return prepared.first({"pk": 3})

    call = {"raw": raw_query, "pool": pool, "prepared": member}[what]
    for _ in range(200):
        call()
    for _ in range(n):
        call()


def seed(path: str) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE e (id INTEGER PRIMARY KEY, name VARCHAR(50), day DATE)")
    conn.executemany("INSERT INTO e (name, day) VALUES (?, '2024-01-01')", [(f"n{i}",) for i in range(200)])
    conn.commit()
    conn.close()


def count(what: str, n: int, path: str, out: str) -> int:
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
         "--work", what, str(n), path],
        capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(result.stderr[-2000:])
    return int(found.group(1))


def main() -> int:
    if sys.argv[1:2] == ["--work"]:
        work(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is missing: apt-get install -y valgrind", file=sys.stderr)
        return 1
    folder = tempfile.mkdtemp(prefix="robaccia-pool-")
    try:
        path = os.path.join(folder, "e.db")
        seed(path)
        print(f"instructions per call (callgrind, ({N2} - {N1}) calls)")
        for what in WHAT:
            per_call = (count(what, N2, path, os.path.join(folder, "cg2"))
                        - count(what, N1, path, os.path.join(folder, "cg1"))) / (N2 - N1)
            print(f"  {what:9s} {per_call:10,.0f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
