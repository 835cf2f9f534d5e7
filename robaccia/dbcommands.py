"""robaccia-admin's database commands: createdb, makemigration, migrate, migrations.

They are registered on :data:`robaccia.cli.main` and run through it (click
keeps a command's help option, with ``-h`` or without, from the first
context it runs in). :mod:`robaccia.migrations` does the work, imported when
a command runs. Outside a project each says so::

    >>> from click.testing import CliRunner
    >>> from robaccia.cli import main
    >>> CliRunner().invoke(main, ['migrations']).output.splitlines()[0][:46]
    'Error: This folder is not in a robaccia projec'
"""

from __future__ import annotations

import sys
from typing import Any

import click

from robaccia.clibase import _friendly, _print_created, _project

__all__ = ["createdb_command", "makemigration_command", "migrate_command", "migrations_command"]


def _models() -> Any:
    """The project's dbconfig and models/*.py, loaded."""
    from robaccia import migrations

    return migrations.load_models(_project())


@click.command("createdb")
@_friendly
def createdb_command() -> None:
    """Create the tables of models/*.py in a new database.

    A new database is marked as up to date with migrations/. In one that has
    tables, the missing ones are created while the project has no migration
    yet; a table that differs from its model is listed, with what to run.
    """
    from robaccia import migrations

    models = _models()
    _print_created(models.root, migrations.add_migrations_folder(models.root))
    result = migrations.create_database(models)
    for name in models.names:
        click.echo(f" {'created' if name in result.created else 'exists'} table {name}")
    if not models.tables:
        click.echo("No tables in models/: add one with robaccia-admin addmodelview.")
    if result.stamped:
        click.echo(f" marked the database as at the latest migration ({result.stamped})")
    if result.behind:
        raise click.ClickException(f"The database is not up to date with migrations/ ({result.behind}): "
                                   "apply them with robaccia-admin migrate.")
    if result.differences:
        click.echo("The database does not match the models:")
        for line in result.differences:
            click.echo(f"  {line}")
        raise click.ClickException('Record the change with robaccia-admin makemigration "what changed", '
                                   "then apply it with robaccia-admin migrate.")


@click.command("makemigration")
@click.argument("message", required=False, default="")
@click.option("--rename", "renames", multiple=True, metavar="TABLE.OLD:NEW",
              help="A column that was renamed (its values are kept), e.g. employees.title:job_title. "
                   "Without it a rename is a drop and an add. Repeatable.")
@_friendly
def makemigration_command(message: str, renames: tuple[str, ...]) -> None:
    """Write a migration from what changed in models/*.py: "add phone", say.

    Compares the models with the database (which must have every migration
    applied), prints one line per change and writes the revision into
    migrations/versions/. Nothing changed: nothing is written. Apply it with
    robaccia-admin migrate.
    """
    from robaccia import migrations

    models = _models()
    _print_created(models.root, migrations.add_migrations_folder(models.root))
    made = migrations.make_migration(models, message, renames)
    if made.path is None:
        click.echo("No changes: the database matches models/, so no migration was written.")
        return
    for line in made.changes:
        click.echo(f"  {line}")
    click.echo(f" created {made.path.relative_to(models.root)}")
    for note in made.notes:
        click.echo(f"Note: {note}")
    click.echo("Next: robaccia-admin migrate")


@click.command("migrate", context_settings={"ignore_unknown_options": True})
@click.argument("revision", required=False, default="head")
@click.option("--sql", is_flag=True, help="Print the SQL instead of running it (nothing changes).")
@click.option("--allow-data-loss", is_flag=True,
              help="Apply it even when it drops a column or table or narrows a type.")
@click.option("--lock-timeout", type=click.FloatRange(min=0.001), default=5.0, show_default=True,
              metavar="SECONDS",
              help="How long to wait for a table the site is using (PostgreSQL, MariaDB); then stop.")
@_friendly
def migrate_command(revision: str, sql: bool, allow_data_loss: bool, lock_timeout: float) -> None:
    """Apply the migrations in migrations/versions/, or go back to REVISION.

    REVISION: head (the default: every migration), -1 (undo the last one),
    -N (undo N), base (undo all), or a revision id (its first characters
    do). A change that loses data is refused unless --allow-data-loss says
    it is wanted.
    """
    from robaccia import migrations

    if revision.startswith("-") and not revision[1:].isdigit():
        raise click.UsageError(f"No such option: {revision}")
    models = _models()
    applied = migrations.migrate(models, revision, sql=sys.stdout if sql else None,
                                 allow_data_loss=allow_data_loss, lock_timeout=lock_timeout)
    if sql:
        return
    for step in applied:
        click.echo(f" {step}")
    if not applied:
        click.echo("Nothing to do: the database is at that revision already.")


@click.command("migrations")
@_friendly
def migrations_command() -> None:
    """List the migrations, mark where the database is, and show model changes not in one yet."""
    from robaccia import migrations

    found = migrations.history(_models())
    for revision, message, applied in found.revisions:
        here = found.current is not None and revision in found.current
        click.echo(f"{'>' if here else ' '} {revision}  {message}"
                   + ("  (the database is here)" if here else "" if applied else "  (not applied)"))
    if not found.revisions:
        click.echo("No migrations yet.")
    elif not found.current:
        click.echo("The database is before the first migration.")
    if found.behind:
        click.echo("Apply the migrations not applied yet: robaccia-admin migrate")
    elif found.pending:
        click.echo("Model changes not in a migration yet:")
        for line in found.pending:
            click.echo(f"  {line}")
        click.echo('Record them: robaccia-admin makemigration "what changed"')
    else:
        click.echo("The models and the database match.")

