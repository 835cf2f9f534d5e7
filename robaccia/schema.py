"""Drift: where the database's tables differ from the models that describe them.

The comparison is Alembic's autogenerate (the one ``robaccia-admin
makemigration`` writes revisions from), made with the same options, so what
:func:`drift` reports is what a migration would change, one sentence each::

    >>> from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine
    >>> engine = create_engine('sqlite://')
    >>> old = Table('notes', MetaData(), Column('id', Integer, primary_key=True))
    >>> old.create(engine)
    >>> new = Table('notes', MetaData(), Column('id', Integer, primary_key=True), Column('text', String(20)))
    >>> drift(engine, [new])
    ['the column notes.text is in the model but not in the database']
    >>> describe(changes(engine.connect(), new.metadata), engine.dialect)
    ['add column notes.text VARCHAR(20)']

Only the models' own tables are compared: other tables in the same database
are none of the project's business.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.schema import Column, MetaData, Table

from robaccia.errors import RobacciaError

__all__ = ["FIX", "SchemaMismatch", "changes", "comparison_options", "describe", "differences", "drift",
           "type_sql"]

FIX = 'robaccia-admin makemigration "what changed", then robaccia-admin migrate'


class SchemaMismatch(RobacciaError):
    """The database's tables do not match the models (a 500 that says how to fix it)."""

    def __init__(self, differences: list[str]) -> None:
        self.differences = differences
        super().__init__("The database does not match the models: " + "; ".join(differences) + ".")
        self.hint = f"Bring the database up to date with the models: {FIX}."


def comparison_options(metadata: MetaData, tables: Iterable[str] | None = None) -> dict[str, Any]:
    """Alembic's autogenerate options for a project (``tables``: compare only these).

    Types and server defaults are compared; migrations are rendered in batch
    mode (SQLite rebuilds a table to drop, rename or retype a column, and the
    same revision runs unchanged on PostgreSQL and MariaDB); robaccia's own
    column types are written as ``robaccia.types`` names.
    """
    wanted = set(metadata.tables) if tables is None else set(tables)

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        # NOTE: tables of the database that no model names are left alone: never dropped.
        return type_ != "table" or name in wanted

    return {"target_metadata": metadata, "compare_type": True, "compare_server_default": True,
            "render_as_batch": True, "include_name": include_name, "render_item": _render_item}


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    from robaccia import types

    if type_ == "type":
        for name in types.__all__:
            if obj is getattr(types, name):
                autogen_context.imports.add("import robaccia.types")
                return f"robaccia.types.{name}"
    return False  # Alembic's own rendering


def changes(connection: Connection, metadata: MetaData, tables: Iterable[str] | None = None) -> Any:
    """What a migration from the database to ``metadata`` would do: Alembic's ``UpgradeOps``."""
    from alembic.autogenerate import produce_migrations
    from alembic.migration import MigrationContext

    context = MigrationContext.configure(connection, opts=comparison_options(metadata, tables))
    return produce_migrations(context, metadata).upgrade_ops


def drift(engine: Engine, tables: Iterable[Table]) -> list[str]:
    """Where the database differs from ``tables``, one sentence each (empty: it matches)."""
    by_metadata: dict[int, tuple[MetaData, list[str]]] = {}
    for table in tables:
        by_metadata.setdefault(id(table.metadata), (table.metadata, []))[1].append(table.name)
    found: list[str] = []
    with engine.connect() as conn:
        for metadata, names in by_metadata.values():
            found += differences(changes(conn, metadata, names), engine.dialect)
    return found


def describe(ops: Any, dialect: Dialect) -> list[str]:
    """One line for each change in Alembic's operations ``ops`` (an ``UpgradeOps``, say)."""
    return [line for op in _flatten(ops) for line in _describe(op, dialect)]


def differences(ops: Any, dialect: Dialect) -> list[str]:
    """Each change in ``ops`` as the difference it mends: what the models have and the database has not."""
    from alembic.operations import ops as alembic_ops

    found = []
    for op in _flatten(ops):
        table = getattr(op, "table_name", "?")
        if isinstance(op, alembic_ops.CreateTableOp):
            found.append(f"the table {table} is in the models but not in the database")
        elif isinstance(op, alembic_ops.AddColumnOp):
            found.append(f"the column {table}.{op.column.name} is in the model but not in the database")
        elif isinstance(op, alembic_ops.DropColumnOp):
            found.append(f"the column {table}.{op.column_name} is in the database but not in the model")
        elif isinstance(op, alembic_ops.AlterColumnOp) and op.modify_type is not None:
            found.append(f"the column {table}.{op.column_name} is {type_sql(op.existing_type, dialect)} in "
                         f"the database but {type_sql(op.modify_type, dialect)} in the model")
        elif isinstance(op, alembic_ops.AlterColumnOp) and op.modify_nullable is not None:
            found.append(f"the column {table}.{op.column_name} is "
                         f"{'optional' if op.modify_nullable else 'required'} in the model but not in the database")
        else:
            found += [f"the database differs from the models: a migration would {line}"
                      for line in _describe(op, dialect)]
    return found


def _flatten(ops: Any) -> Iterator[Any]:
    for op in getattr(ops, "ops", ()):
        if hasattr(op, "ops"):  # ModifyTableOps: the changes to one table
            yield from _flatten(op)
        else:
            yield op


def type_sql(type_: Any, dialect: Dialect) -> str:
    """A column type as ``dialect`` writes it (its repr when it cannot)."""
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:  # a type this dialect cannot render
        return repr(type_)


def _default(default: Any) -> str:
    if default is None or default is False:
        return "none"
    arg = getattr(default, "arg", default)
    return repr(arg) if isinstance(arg, str) else str(getattr(arg, "text", arg))


def _describe(op: Any, dialect: Dialect) -> list[str]:
    from alembic.operations import ops

    table = getattr(op, "table_name", "?")
    if isinstance(op, ops.CreateTableOp):
        names = [str(c.name) for c in op.columns if isinstance(c, Column)]
        return [f"add table {table} ({', '.join(names)})"]
    if isinstance(op, ops.DropTableOp):
        return [f"drop table {table}"]
    if isinstance(op, ops.AddColumnOp):
        column = op.column
        return [f"add column {table}.{column.name} {type_sql(column.type, dialect)}"
                + ("" if column.nullable else ", required")
                + ("" if column.server_default is None else f", default {_default(column.server_default)}")]
    if isinstance(op, ops.DropColumnOp):
        return [f"drop column {table}.{op.column_name}"]
    if isinstance(op, ops.AlterColumnOp):
        return _describe_alter(op, dialect)
    if isinstance(op, ops.CreateIndexOp):
        columns = ", ".join(str(c) for c in op.columns)
        return [f"add {'unique ' if op.unique else ''}index {op.index_name} on {table} ({columns})"]
    if isinstance(op, ops.DropIndexOp):
        return [f"drop index {op.index_name} on {table}"]
    if isinstance(op, ops.CreateUniqueConstraintOp):
        return [f"add unique constraint on {table} ({', '.join(op.columns)})"]
    if isinstance(op, ops.DropConstraintOp):
        return [f"drop {op.constraint_type or 'a'} constraint {op.constraint_name} on {table}"]
    return [f"{type(op).__name__} on {table}"]


def _describe_alter(op: Any, dialect: Dialect) -> list[str]:
    name = f"{op.table_name}.{op.column_name}"
    lines = []
    if op.modify_name:
        lines.append(f"rename column {name} to {op.modify_name}")
    if op.modify_type is not None:
        lines.append(f"change the type of {name} from {type_sql(op.existing_type, dialect)} "
                     f"to {type_sql(op.modify_type, dialect)}")
    if op.modify_nullable is not None:
        lines.append(f"make {name} {'optional' if op.modify_nullable else 'required'}")
    if op.modify_server_default is not False:
        lines.append(f"change the default of {name} from {_default(op.existing_server_default)} "
                     f"to {_default(op.modify_server_default)}")
    return lines or [f"alter column {name}"]
