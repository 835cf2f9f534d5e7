"""Alembic's environment for a project: what its migrations/env.py runs.

:func:`run_environment` configures Alembic for the project's engine and
models. Around Alembic's own implementation, ``_Impl`` plans before it
applies: with a plan, what a migration would drop or narrow is recorded
instead of done (``migrate`` refuses it unless data loss is allowed)::

    >>> from sqlalchemy import Column, String
    >>> plan = []
    >>> _Impl(object(), plan=plan).drop_column('employees', Column('phone', String(30)))
    >>> [str(loss) for loss in plan]
    ['employees.phone (dropped)']
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import column, table
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import MetaData, Table

from robaccia.migrations.core import _LOCK_TIMEOUT, _OPTIONS, _PLAN, Loss, _connect, narrows
from robaccia.schema import comparison_options, type_sql

# --- env.py -------------------------------------------------------------------------------------


def run_environment(context: Any, engine: Engine, metadata: MetaData) -> None:
    """Run Alembic for a project: what its ``migrations/env.py`` calls with its engine and models.

    Offline (``--sql``), the SQL goes to the output; online, the migration
    runs on one connection. On SQLite foreign keys are off while it runs (batch
    mode drops and recreates tables, which would cascade).
    """
    config = context.config
    options = comparison_options(metadata)
    options.update(config.attributes.get(_OPTIONS, {}))
    if context.is_offline_mode():
        context.configure(url=engine.url, literal_binds=True, **options)
        migration = context.get_context()
        migration.impl = _Impl(migration.impl, plan=config.attributes.get(_PLAN))
        with context.begin_transaction():
            context.run_migrations()
        return
    given = config.attributes.get("connection")
    with contextlib.nullcontext(given) if given is not None else _connect(engine) as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        wait = config.attributes.get(_LOCK_TIMEOUT)
        if wait is not None and not sqlite:
            _limit_lock_waits(conn, wait)
        try:
            context.configure(connection=conn, **options)
            if sqlite:
                migration = context.get_context()
                migration.impl = _Impl(migration.impl, reader=conn)
            with context.begin_transaction():
                context.run_migrations()
            conn.commit()
        finally:
            if sqlite:
                conn.rollback()
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def _limit_lock_waits(conn: Connection, seconds: float) -> None:
    """Make this connection's statements give up waiting for a table lock after ``seconds``.

    A schema change waiting for a table that a request is reading makes the
    site's next queries of that table wait behind it; with a limit, the
    migration fails (``lock_timed_out``) and the site goes on.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET lock_timeout = {max(1, round(seconds * 1000))}")
    elif conn.dialect.name in ("mysql", "mariadb"):
        whole = max(1, round(seconds))  # NOTE: whole seconds only
        conn.exec_driver_sql(f"SET SESSION lock_wait_timeout = {whole}, innodb_lock_wait_timeout = {whole}")
    conn.commit()


class _Impl:
    """Alembic's DDL implementation for one run, with robaccia's additions.

    * ``plan``: a list to record each change that loses data in; the SQL goes
      nowhere, and batch mode never rebuilds a table (so planning needs no
      live table);
    * ``reader``: the migration's connection, on SQLite: a table that batch
      mode rebuilds keeps AUTOINCREMENT and its sequence (a deleted row's id
      is never given again).
    """

    def __init__(self, impl: Any, *, plan: list[Loss] | None = None, reader: Connection | None = None) -> None:
        self._impl = impl
        self._plan = plan
        self._reader = reader
        self._sequences: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._impl, name)

    def requires_recreate_in_batch(self, batch_op: Any) -> bool:
        return self._plan is None and bool(self._impl.requires_recreate_in_batch(batch_op))

    def drop_table(self, table: Table, **kw: Any) -> None:
        if self._plan is not None:
            self._plan.append(Loss(table.name))
            return
        self._impl.drop_table(table, **kw)

    def drop_column(self, table_name: str, column: Any, *args: Any, **kw: Any) -> None:
        if self._plan is not None:
            self._plan.append(Loss(table_name, column.name))
            return
        self._impl.drop_column(table_name, column, *args, **kw)

    def alter_column(self, table_name: str, column_name: str, **kw: Any) -> None:
        if self._plan is not None:
            new, old = kw.get("type_"), kw.get("existing_type")
            if new is not None and narrows(old, new):
                dialect = self._impl.dialect
                change = f"{type_sql(old, dialect) if old is not None else '?'} to {type_sql(new, dialect)}"
                self._plan.append(Loss(table_name, column_name, change))
            return
        self._impl.alter_column(table_name, column_name, **kw)

    def prep_table_for_batch(self, batch_impl: Any, table: Table) -> None:
        self._impl.prep_table_for_batch(batch_impl, table)
        if self._reader is None:
            return
        sql = self._reader.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table.name,)).scalar()
        if sql and "AUTOINCREMENT" in sql.upper():
            batch_impl.new_table.dialect_kwargs["sqlite_autoincrement"] = True
            seq = self._reader.exec_driver_sql(
                "SELECT seq FROM sqlite_sequence WHERE name = ?", (table.name,)).scalar()
            if seq:
                self._sequences[table.name] = int(seq)

    def rename_table(self, old: str, new: str, **kw: Any) -> None:
        self._impl.rename_table(old, new, **kw)
        seq = self._sequences.pop(new, None)
        if seq is not None:  # the rebuilt table goes on from where the old one was
            sequence = table("sqlite_sequence", column("name"), column("seq"))
            self._impl.execute(sequence.delete().where(sequence.c.name == new))
            self._impl.execute(sequence.insert().values(name=new, seq=seq))
