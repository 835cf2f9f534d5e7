"""Drift: where the database's tables differ from the models that describe them.

A model that gained a column the table lacks makes every query of it fail;
:func:`drift` says which, in sentences a user can act on::

    >>> from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine
    >>> engine = create_engine('sqlite://')
    >>> old = Table('notes', MetaData(), Column('id', Integer, primary_key=True))
    >>> old.create(engine)
    >>> new = Table('notes', MetaData(), Column('id', Integer, primary_key=True), Column('text', String(20)))
    >>> drift(engine, [new])
    ['the column notes.text is in the model but not in the database']
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlalchemy.schema import Table

from robaccia.errors import RobacciaError

__all__ = ["SchemaMismatch", "drift"]

FIX = ('robaccia-admin makemigration "describe the change", then robaccia-admin migrate')


class SchemaMismatch(RobacciaError):
    """The database's tables do not match the models (a 500 that says how to fix it)."""

    def __init__(self, differences: list[str]) -> None:
        self.differences = differences
        super().__init__("The database does not match the models: " + "; ".join(differences) + ".")
        self.hint = f"Bring the database up to date with the models: {FIX}."


def drift(engine: Engine, tables: Iterable[Table]) -> list[str]:
    """Return what the models have that the database lacks (tables, columns)."""
    inspector = inspect(engine)
    found = []
    for table in tables:
        if not inspector.has_table(table.name, schema=table.schema):
            found.append(f"the table {table.name} is in the models but not in the database")
            continue
        have = {c["name"] for c in inspector.get_columns(table.name, schema=table.schema)}
        for column in table.columns:
            if column.name not in have:
                found.append(f"the column {table.name}.{column.name} is in the model but not in the database")
    return found
