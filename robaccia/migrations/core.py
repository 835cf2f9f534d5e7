"""Migrations' core: their errors, what a migration would lose, a project's models and Alembic's configuration.

    >>> print(DataLossRefused([Loss('employees', 'phone', count='3 values'), Loss('old_notes')]))
    Refused, as this would lose data: employees.phone (dropped, 3 values); table old_notes (dropped). Check \
that it is what you want (a backup?), then run the same robaccia-admin migrate with --allow-data-loss.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import column, func, inspect, select, table
from sqlalchemy import exc as sa_exc
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import MetaData, Table

from robaccia.database import driver_code, lock_timed_out
from robaccia.errors import RobacciaError

#: The name of a revision file: 20250101_093000_1a2b3c4d5e6f_add_phone.py (in the order they were made).
FILE_TEMPLATE = "%%(year)d%%(month).2d%%(day).2d_%%(hour).2d%%(minute).2d%%(second).2d_%%(rev)s_%%(slug)s"
# Keys of Alembic's Config.attributes that env.py passes on to Alembic (see run_environment).
_OPTIONS = "robaccia.options"
_PLAN = "robaccia.plan"
_LOCK_TIMEOUT = "robaccia.lock_timeout"
#: Seconds ``migrate`` waits for a table a running site is using, before it gives up.
#: NOTE: while a schema change waits for its lock, the site's queries of that table queue
#: behind it (PostgreSQL, MariaDB): a short wait keeps the site answering.
LOCK_TIMEOUT = 5.0


class MigrationError(RobacciaError):
    """A migration that cannot be made or applied, in one sentence."""


@dataclass(frozen=True)
class Loss:
    """What a migration would lose: a table (``column`` None), a column, or a column's values' width."""

    table: str
    column: str | None = None
    change: str = "drop"  # or "VARCHAR(250) to VARCHAR(30)", say
    count: str = ""  # "3 values", when the database could tell

    def __str__(self) -> str:
        what = f"table {self.table}" if self.column is None else f"{self.table}.{self.column}"
        detail = ", ".join(x for x in ("dropped" if self.change == "drop" else self.change, self.count) if x)
        return f"{what} ({detail})"


class DataLossRefused(MigrationError):
    """The migration would drop or narrow columns that hold data, and that was not allowed."""

    def __init__(self, losses: list[Loss]) -> None:
        self.losses = losses
        super().__init__("Refused, as this would lose data: " + "; ".join(map(str, losses))
                         + ". Check that it is what you want (a backup?), then run the same "
                         "robaccia-admin migrate with --allow-data-loss.")


# --- a project's models and Alembic's configuration ---------------------------------------------


@dataclass(frozen=True)
class Models:
    """A project's tables (models/*.py) and the database they belong in (dbconfig)."""

    root: Path
    engine: Engine
    metadata: MetaData
    tables: tuple[Table, ...]

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tables]


def import_models(root: Path) -> list[Table]:
    """Import every ``models/*.py`` of the project at ``root``; return their tables.

    The project folder must be on ``sys.path`` (loading the project puts it there).
    """
    tables: list[Table] = []
    for path in sorted((root / "models").glob("*.py")):
        if path.stem.startswith("_"):
            continue
        module = importlib.import_module(f"models.{path.stem}")
        tables.extend(v for v in vars(module).values() if isinstance(v, Table) and v not in tables)
    return tables


def load_models(root: Path) -> Models:
    """Import the project's dbconfig and models."""
    try:
        dbconfig = importlib.import_module("dbconfig")
    except sa_exc.ArgumentError as exc:  # a malformed URL or an unknown dialect
        raise MigrationError(f"The database URL is not valid: {exc}") from None
    return Models(root, dbconfig.engine, dbconfig.metadata, tuple(import_models(root)))


def add_migrations_folder(root: Path) -> list[Path]:
    """Give a project made before migrations its ``migrations/`` folder; return the files written."""
    from robaccia import scaffold

    if (root / "migrations").exists():
        return []
    source = scaffold.TEMPLATES / "project" / "migrations"
    return scaffold._write_all(scaffold._tree(source, root / "migrations", {"name": root.name}))


def _config(models: Models, output: TextIO | None = None, **attributes: Any) -> Any:
    from alembic.config import Config

    folder = models.root / "migrations"
    if not (folder / "env.py").is_file():
        raise MigrationError(f"{folder} has no env.py: this project has no migrations folder "
                             "(robaccia-admin createdb or makemigration adds one).")
    # NOTE: quiet, or Alembic prints "Generating ..." itself; the CLI says what was written.
    config = Config(output_buffer=output, cmd_opts=argparse.Namespace(quiet=True))
    config.set_main_option("script_location", str(folder))
    config.set_main_option("file_template", FILE_TEMPLATE)
    config.set_main_option("truncate_slug_length", "40")
    config.attributes.update(attributes)
    return config


def _scripts(models: Models) -> Any:
    """Alembic's view of migrations/versions, read (a revision whose predecessor is missing fails here)."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    scripts = ScriptDirectory.from_config(_config(models))
    try:
        scripts.get_heads()
    except (CommandError, KeyError) as exc:
        missing = f"a revision names {exc} as the one before it, and no file in it is that revision" \
            if isinstance(exc, KeyError) else str(exc)
        raise MigrationError(f"migrations/versions cannot be read: {missing}.") from None
    return scripts


@contextlib.contextmanager
def _connect(engine: Engine) -> Iterator[Connection]:
    try:
        conn = engine.connect()
    except sa_exc.DBAPIError as exc:
        raise MigrationError(f"Could not reach the database: {_reason(exc)}") from None
    with conn:
        yield conn


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def _alembic_errors(doing: str) -> Iterator[None]:
    """Alembic's and the driver's errors as MigrationError."""
    from alembic.util import CommandError

    try:
        yield
    except CommandError as exc:
        raise MigrationError(f"Could not {doing}: {exc}") from None
    except sa_exc.DBAPIError as exc:
        if lock_timed_out(exc):
            after = ("Nothing was changed. " if driver_code(exc)[0] == "postgresql" else
                     "What ran before it stays (schema changes cannot be undone on this database): "
                     "robaccia-admin migrations shows where the database is. ")
            raise MigrationError(f"Could not {doing}: a table it changes is in use by another connection "
                                 f"(its lock was not granted in time). {after}Run it again when the site "
                                 "is quieter, or wait longer with --lock-timeout SECONDS.") from None
        raise MigrationError(f"Could not {doing}: {_reason(exc)}") from None


def _state(conn: Connection, models: Models) -> tuple[tuple[str, ...] | None, list[str]]:
    """The database's revisions (None: never stamped) and which model tables it has."""
    from alembic.migration import MigrationContext

    inspector = inspect(conn)
    context = MigrationContext.configure(conn)
    versioned = inspector.has_table(context.version_table)
    heads = tuple(context.get_current_heads()) if versioned else None
    return heads, [t.name for t in models.tables if inspector.has_table(t.name, schema=t.schema)]


def _counted(engine: Engine, loss: Loss) -> Loss:
    """``loss`` with how many rows or values it would lose (left as it is when the database cannot tell)."""
    target = table(loss.table, *([column(loss.column)] if loss.column else []))
    query = select(func.count()).select_from(target)
    if loss.column is not None:
        query = query.where(target.c[loss.column].isnot(None))
    try:
        with engine.connect() as conn:
            count = conn.execute(query).scalar_one()
    except sa_exc.SQLAlchemyError:
        return loss
    unit = "row" if loss.column is None else "value"
    return Loss(loss.table, loss.column, loss.change, f"{count} {unit}{'' if count == 1 else 's'}")


_INTEGER_SIZE = ((sqltypes.SmallInteger, 2), (sqltypes.BigInteger, 8), (sqltypes.Integer, 4))


def narrows(old: Any, new: Any) -> bool:
    """Tell whether a value of type ``old`` might not fit type ``new`` (unknown ``old``: it might)."""
    if old is None:
        return True
    old = old() if isinstance(old, type) else old
    new = new() if isinstance(new, type) else new
    if isinstance(new, sqltypes.String) and new.length is None and not isinstance(new, sqltypes.Enum):
        return False  # unbounded text holds any value written as text
    if isinstance(old, sqltypes.String) and isinstance(new, sqltypes.String) and new.length is not None:
        return old.length is None or new.length < old.length
    if isinstance(old, sqltypes.Integer) and isinstance(new, sqltypes.Integer):
        return _integer_size(new) < _integer_size(old)
    if isinstance(old, sqltypes.Float) and isinstance(new, sqltypes.Float):
        return isinstance(old, sqltypes.Double) and not isinstance(new, sqltypes.Double)
    if isinstance(old, sqltypes.Numeric) and isinstance(new, sqltypes.Numeric) \
            and not isinstance(old, sqltypes.Float) and not isinstance(new, sqltypes.Float):
        if new.precision is None:
            return False
        old_scale, new_scale = old.scale or 0, new.scale or 0
        return old.precision is None or new_scale < old_scale \
            or new.precision - new_scale < old.precision - old_scale
    if isinstance(old, sqltypes.Date) and isinstance(new, sqltypes.DateTime):
        return False
    return type(old) is not type(new)


def _integer_size(type_: Any) -> int:
    return next(size for kind, size in _INTEGER_SIZE if isinstance(type_, kind))
