"""Migrations: change a project's tables after createdb without losing a row, with Alembic.

A project's ``migrations/`` folder holds Alembic's environment (``env.py``,
which calls :func:`run_environment`) and its revisions (``versions/*.py``).
Alembic's configuration is built here, in code, so there is no alembic.ini::

    robaccia-admin makemigration "add phone"   # compare models/*.py with the database, write a revision
    robaccia-admin migrate                     # apply the revisions not applied yet
    robaccia-admin migrate -1                  # undo the last one
    robaccia-admin migrations                  # the history, and model changes not in a revision yet

:func:`migrate` refuses a change that loses data (a column or table dropped,
a type narrowed) unless it is allowed; :func:`narrows` tells the types apart::

    >>> from sqlalchemy import Integer, BigInteger, String, Text
    >>> narrows(Text(), String(30)), narrows(String(30), Text()), narrows(BigInteger(), Integer())
    (True, False, True)

Errors are :class:`MigrationError`, one sentence each, for the CLI to print.
"""

from __future__ import annotations

from robaccia.migrations.commands import (
    Applied,
    Created,
    History,
    create_database,
    history,
    make_migration,
    migrate,
    status,
)
from robaccia.migrations.core import (
    DataLossRefused,
    Loss,
    MigrationError,
    Models,
    add_migrations_folder,
    import_models,
    load_models,
    narrows,
)
from robaccia.migrations.environment import run_environment

__all__ = [
    "Applied",
    "Created",
    "DataLossRefused",
    "History",
    "Loss",
    "MigrationError",
    "Models",
    "add_migrations_folder",
    "create_database",
    "history",
    "import_models",
    "load_models",
    "make_migration",
    "migrate",
    "narrows",
    "run_environment",
    "status",
]
