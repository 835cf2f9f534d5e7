"""What the migration commands do: createdb, makemigration, migrate, migrations and run's notice.

Each takes the project's :class:`~robaccia.migrations.core.Models` and returns
what it did, for the CLI to print; a renamed column is given as TABLE.OLD:NEW::

    >>> _parse_rename('employees.title:job_title')
    ('employees', 'title', 'job_title')
"""

from __future__ import annotations

import io
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import create_engine, event

from robaccia.migrations.core import (
    _LOCK_TIMEOUT,
    _OPTIONS,
    _PLAN,
    LOCK_TIMEOUT,
    DataLossRefused,
    Loss,
    MigrationError,
    Models,
    _alembic_errors,
    _config,
    _connect,
    _counted,
    _reason,
    _scripts,
    _state,
)
from robaccia.schema import FIX, changes, describe, differences, type_sql

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
            allow_data_loss: bool = False, lock_timeout: float = LOCK_TIMEOUT) -> list[Applied]:
    """Upgrade the database to ``revision`` (default the latest) or down to it.

    ``revision`` is a revision id (or its start), ``head``, ``base`` or
    ``-N`` (undo N). With ``sql``, write the SQL there and change nothing.
    A migration that would drop or narrow a column or table raises
    :class:`DataLossRefused` unless ``allow_data_loss``. A statement waits at
    most ``lock_timeout`` seconds for a table in use (PostgreSQL, MariaDB);
    then the migration stops with :class:`MigrationError`.
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
        _command(name, models, target or "base",
                 attributes={_OPTIONS: {"on_version_apply": record}, _LOCK_TIMEOUT: lock_timeout})
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
