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

import argparse
import contextlib
import importlib
import io
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import column, create_engine, event, func, inspect, select, table
from sqlalchemy import exc as sa_exc
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import MetaData, Table

from robaccia.errors import RobacciaError
from robaccia.schema import FIX, changes, comparison_options, describe, differences, type_sql

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

#: The name of a revision file: 20250101_093000_1a2b3c4d5e6f_add_phone.py (in the order they were made).
FILE_TEMPLATE = "%%(year)d%%(month).2d%%(day).2d_%%(hour).2d%%(minute).2d%%(second).2d_%%(rev)s_%%(slug)s"
# Keys of Alembic's Config.attributes that env.py passes on to Alembic (see run_environment).
_OPTIONS = "robaccia.options"
_PLAN = "robaccia.plan"


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
        raise MigrationError(f"Could not {doing}: {_reason(exc)}") from None


def _state(conn: Connection, models: Models) -> tuple[tuple[str, ...] | None, list[str]]:
    """The database's revisions (None: never stamped) and which model tables it has."""
    from alembic.migration import MigrationContext

    inspector = inspect(conn)
    context = MigrationContext.configure(conn)
    versioned = inspector.has_table(context.version_table)
    heads = tuple(context.get_current_heads()) if versioned else None
    return heads, [t.name for t in models.tables if inspector.has_table(t.name, schema=t.schema)]


# --- createdb -----------------------------------------------------------------------------------


@dataclass
class Created:
    """What :func:`create_database` did and found."""

    created: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)  # where the tables differ from the models
    stamped: str | None = None  # the revision the new database was marked as being at
    behind: str = ""  # "at X, latest Y" when revisions are not applied


def create_database(models: Models) -> Created:
    """Create the models' tables in a new database and mark it as at the latest revision.

    In a database that has some of them, create the missing ones only while
    the project has no revisions (after that, a new table is a migration), and
    report every difference between the existing tables and the models.
    """
    scripts = _scripts(models)
    head = scripts.get_current_head()
    result = Created()
    with _connect(models.engine) as conn:
        heads, existing = _state(conn, models)
        missing = [t for t in models.tables if t.name not in existing]
        if not existing or head is None:
            models.metadata.create_all(conn, tables=missing)
            result.created = [t.name for t in missing]
        conn.commit()
        if heads and set(heads) != set(scripts.get_heads()):
            result.behind = f"at {', '.join(heads)}, the latest is {head}"
            return result
        compare = [n for n in models.names if n not in result.created]
        if compare:
            result.differences = differences(changes(conn, models.metadata, compare), conn.dialect)
    if head is not None and not heads and not result.differences:
        with _alembic_errors("mark the database as up to date"):
            _command("stamp", models, "head")
        result.stamped = head
    return result


def _command(name: str, models: Models, *args: Any, output: TextIO | None = None,
             attributes: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """Run Alembic's ``command.<name>`` on the project."""
    from alembic import command

    return getattr(command, name)(_config(models, output, **(attributes or {})), *args, **kwargs)


# --- makemigration ------------------------------------------------------------------------------


@dataclass
class Made:
    """What :func:`make_migration` found and wrote."""

    changes: list[str]
    path: Path | None
    notes: list[str] = field(default_factory=list)


def make_migration(models: Models, message: str = "", renames: tuple[str, ...] = ()) -> Made:
    """Write a revision that changes the database to match the models (nothing when they match).

    ``renames`` are ``table.old:new``: a column the models no longer have and
    one they gained become a rename, which keeps the values.
    """
    parsed = [_parse_rename(r) for r in renames]
    found: list[str] = []
    notes: list[str] = []

    def process(context: Any, revision: Any, directives: list[Any]) -> None:
        script = directives[0]
        for table_name, old, new in parsed:
            if not (_rename(script.upgrade_ops, table_name, old, new, context.dialect)
                    and _rename(script.downgrade_ops, table_name, new, old, context.dialect)):
                raise MigrationError(f"--rename {table_name}.{old}:{new} does not match a change: the "
                                     f"models must have dropped {old} from {table_name} and added {new}.")
        found.extend(describe(script.upgrade_ops, context.dialect))
        if script.upgrade_ops.is_empty():
            directives[:] = []
            return
        script.message = message or _summary(found)
        notes.extend(_rename_notes(script.upgrade_ops, context.dialect))

    with _connect(models.engine) as conn:
        heads, existing = _state(conn, models)
    if heads is None and not existing:
        raise MigrationError("The database has none of the models' tables: create them with robaccia-admin "
                             "createdb; a migration records what changes after that.")
    scripts = _scripts(models)
    if set(heads or ()) != set(scripts.get_heads()):
        raise MigrationError(f"The database is at {', '.join(heads or ()) or 'no revision'}, not at the latest "
                             "revision: apply the revisions first (robaccia-admin migrate), so that the "
                             "new one records only the models' changes.")
    with _alembic_errors("make the migration"):
        script = _command("revision", models, message=message or None, autogenerate=True,
                          attributes={_OPTIONS: {"process_revision_directives": process}})
    path = Path(script.path) if script and not isinstance(script, list) else None
    return Made(found, path, notes if path else [])


def _parse_rename(spec: str) -> tuple[str, str, str]:
    where, _, new = spec.partition(":")
    table_name, _, old = where.rpartition(".")
    if not (table_name and old and new and new.isidentifier()):
        raise MigrationError(f"--rename {spec!r} is not TABLE.OLD:NEW, such as employees.title:job_title.")
    return table_name, old, new


def _rename(ops: Any, table_name: str, old: str, new: str, dialect: Any) -> bool:
    """Turn dropping ``old`` and adding ``new`` in ``table_name`` into renaming it (in place)."""
    from alembic.operations import ops as alembic_ops

    for modify in ops.ops:
        if not isinstance(modify, alembic_ops.ModifyTableOps) or modify.table_name != table_name:
            continue
        drop = next((o for o in modify.ops if isinstance(o, alembic_ops.DropColumnOp)
                     and o.column_name == old), None)
        add = next((o for o in modify.ops if isinstance(o, alembic_ops.AddColumnOp)
                    and o.column.name == new), None)
        if drop is None or add is None:
            continue
        before, after = drop.to_column(), add.column
        alter = alembic_ops.AlterColumnOp(
            table_name, old, schema=modify.schema, modify_name=new,
            existing_type=before.type, existing_nullable=before.nullable,
            existing_server_default=getattr(before.server_default, "arg", None),
        )
        if type_sql(before.type, dialect) != type_sql(after.type, dialect):
            alter.modify_type = after.type
        if bool(before.nullable) != bool(after.nullable):
            alter.modify_nullable = after.nullable
        modify.ops[modify.ops.index(drop)] = alter
        modify.ops.remove(add)
        return True
    return False


def _rename_notes(ops: Any, dialect: Any) -> list[str]:
    """A note for each column added where one was dropped: was it renamed?"""
    from alembic.operations import ops as alembic_ops

    notes = []
    for modify in ops.ops:
        if not isinstance(modify, alembic_ops.ModifyTableOps):
            continue
        dropped = {o.column_name: type_sql(o.to_column().type, dialect) for o in modify.ops
                   if isinstance(o, alembic_ops.DropColumnOp)}
        for add in (o for o in modify.ops if isinstance(o, alembic_ops.AddColumnOp)):
            if not dropped:
                break
            kind = type_sql(add.column.type, dialect)
            old = next((name for name, was in dropped.items() if was == kind), next(iter(dropped)))
            notes.append(f"{modify.table_name}.{old} is dropped, its values with it, and {add.column.name} "
                         f"added: if it was renamed, delete this revision and run robaccia-admin "
                         f"makemigration --rename {modify.table_name}.{old}:{add.column.name}")
    return notes


def _summary(found: list[str]) -> str:
    return found[0] + (f" and {len(found) - 1} more" if len(found) > 1 else "")


# --- migrate ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    """One revision applied (``upgrade``) or undone by :func:`migrate`."""

    revision: str
    message: str
    upgrade: bool

    def __str__(self) -> str:
        return f"{'applied' if self.upgrade else 'undid'} {self.revision} {self.message}"


def migrate(models: Models, revision: str = "head", *, sql: TextIO | None = None,
            allow_data_loss: bool = False) -> list[Applied]:
    """Upgrade the database to ``revision`` (default the latest) or down to it.

    ``revision`` is a revision id (or its start), ``head``, ``base`` or
    ``-N`` (undo N). With ``sql``, write the SQL there and change nothing.
    A migration that would drop or narrow a column or table raises
    :class:`DataLossRefused` unless ``allow_data_loss``.
    """
    scripts = _scripts(models)
    with _connect(models.engine) as conn:
        heads, existing = _state(conn, models)
    if heads is None and not existing:
        raise MigrationError("The database has none of the models' tables: create them with "
                             "robaccia-admin createdb, which marks them as up to date.")
    if heads and len(heads) > 1:
        raise MigrationError(f"The database is at several revisions ({', '.join(heads)}): merge them "
                             "(alembic merge) before migrating.")
    current = heads[0] if heads else None
    target, upgrade = _resolve(scripts, revision, current)
    if target == current:
        return []
    name = "upgrade" if upgrade else "downgrade"
    if sql is not None:
        with _alembic_errors("write the SQL"):
            _write_sql(models, name, current, target, sql)
        return []
    losses: list[Loss] = []
    try:
        goal = target or "base"
        _command(name, models, f"{current}:{goal}" if current else goal, output=io.StringIO(), sql=True,
                 attributes={_PLAN: losses})
    except Exception as exc:  # a revision that reads the database, say: it cannot be planned offline
        if not allow_data_loss:
            raise MigrationError(f"Could not check whether the migration loses data ({_reason(exc)}); "
                                 "if it does not, run it with --allow-data-loss.") from None
    if losses and not allow_data_loss:
        raise DataLossRefused([_counted(models.engine, loss) for loss in losses])
    applied: list[Applied] = []

    def record(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        applied.append(Applied(step.up_revision_id, (step.up_revision.doc or "").strip(), step.is_upgrade))

    with _alembic_errors(f"{name} the database"):
        _command(name, models, target or "base", attributes={_OPTIONS: {"on_version_apply": record}})
    return applied


def _resolve(scripts: Any, revision: str, current: str | None) -> tuple[str | None, bool]:
    """The revision to go to (None: before the first), and whether that is an upgrade."""
    from alembic.util import CommandError

    below = [s.revision for s in scripts.iterate_revisions(current, "base")] if current else []
    if revision in ("head", "heads"):
        latest = scripts.get_current_head()
        return latest, latest not in below
    if revision == "base" or re.fullmatch(r"-[0-9]+", revision):
        steps = len(below) if revision == "base" else int(revision[1:])
        if not below:
            raise MigrationError("No migration is applied to the database: there is nothing to undo.")
        if steps > len(below):
            raise MigrationError(f"Only {len(below)} migration(s) are applied to the database: "
                                 f"there are not {steps} to undo.")
        return (below[steps] if steps < len(below) else None), False
    try:
        found = scripts.get_revision(revision)
    except CommandError as exc:
        raise MigrationError(f"No revision {revision!r} in migrations/versions ({exc}); "
                             "robaccia-admin migrations lists them.") from None
    if found is None:
        raise MigrationError(f"No revision {revision!r}: robaccia-admin migrations lists them.")
    return found.revision, found.revision not in below


def _write_sql(models: Models, name: str, current: str | None, target: str | None, out: TextIO) -> None:
    """Write the SQL of a migration to ``out``, changing nothing."""
    goal = target or "base"
    if models.engine.dialect.name != "sqlite":
        _command(name, models, f"{current}:{goal}" if current else goal, output=out, sql=True)
        return
    # NOTE: batch mode rebuilds a SQLite table from the live one, which --sql mode
    # cannot read: migrate a copy of the database and write what that executed.
    with tempfile.TemporaryDirectory() as folder:
        copy = create_engine(f"sqlite:///{Path(folder) / 'copy.db'}")
        try:
            with _connect(models.engine) as live, copy.connect() as conn:
                live.connection.driver_connection.backup(conn.connection.driver_connection)  # type: ignore[union-attr]

            def write(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
                if not statement.lstrip().upper().startswith(("SELECT", "PRAGMA")):
                    out.write(_with_literals(statement.strip(), parameters) + ";\n\n")

            event.listen(copy, "before_cursor_execute", write)
            with copy.connect() as conn:
                _command(name, models, goal, attributes={"connection": conn})
        finally:
            copy.dispose()


def _with_literals(statement: str, parameters: Any) -> str:
    """A SQLite statement with its ``?`` parameters written in."""
    values = iter(parameters or ())

    def literal(match: re.Match[str]) -> str:
        value = next(values)
        if value is None:
            return "NULL"
        if isinstance(value, (int, float)):
            return str(value)
        return "'" + str(value).replace("'", "''") + "'"

    return re.sub(r"\?", literal, statement) if parameters else statement


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


# --- migrations, and run's notice ---------------------------------------------------------------


@dataclass
class History:
    """The revisions, oldest first (id, message, applied), where the database is, what is not in one."""

    revisions: list[tuple[str, str, bool]]
    current: tuple[str, ...] | None  # None: the database was never marked
    pending: list[str]  # model changes no revision has (only known when the database is at the latest)
    behind: bool


def history(models: Models) -> History:
    """The project's revisions, the database's place among them, and unrecorded model changes."""
    scripts = _scripts(models)
    revisions = list(reversed(list(scripts.walk_revisions())))
    latest = set(scripts.get_heads())
    with _connect(models.engine) as conn:
        heads, existing = _state(conn, models)
        applied: set[str] = set()
        for head in heads or ():
            applied.update(s.revision for s in scripts.iterate_revisions(head, "base"))
        behind = set(heads or ()) != latest
        pending = [] if behind and heads is not None else \
            describe(changes(conn, models.metadata, models.names), conn.dialect)
    listed = [(s.revision, (s.doc or "").strip(), s.revision in applied) for s in revisions]
    return History(listed, heads, pending, behind and heads is not None)


def status(models: Models) -> list[str]:
    """What ``run`` says at start when the database and the models differ (nothing when they match)."""
    scripts = _scripts(models)
    with _connect(models.engine) as conn:
        heads, existing = _state(conn, models)
        if heads is None and not existing:
            return ["The database has none of the models' tables: create them with robaccia-admin createdb."]
        if heads is not None and set(heads) != set(scripts.get_heads()):
            return [f"The database is at revision {', '.join(heads) or 'none'}, not at the latest "
                    f"({', '.join(scripts.get_heads())}): apply the rest with robaccia-admin migrate."]
        found = differences(changes(conn, models.metadata, models.names), conn.dialect)
    if not found:
        return []
    return (["The database does not match the models (pages that need what it lacks will fail):"]
            + [f"  {line}" for line in found] + [f"Record and apply the change: {FIX}."])


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
            self._impl._exec(sequence.delete().where(sequence.c.name == new))
            self._impl._exec(sequence.insert().values(name=new, seq=seq))

