"""robaccia-admin: create projects, add collections, run them.

    robaccia-admin createproject myproject && cd myproject
    robaccia-admin addmodelview employees name:string title:string office_number:integer
    robaccia-admin createdb
    robaccia-admin run

The library raises :class:`~robaccia.errors.RobacciaError`; this module alone
turns errors into one line on stderr and a non-zero exit code.

    >>> from click.testing import CliRunner
    >>> CliRunner().invoke(main, ['addview', 'fred']).output.splitlines()[0][:46]
    'Error: This folder is not in a robaccia projec'
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from robaccia import scaffold
from robaccia.errors import RobacciaError

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])
HELP_HEADER = "robaccia -- command line tool for the robaccia web framework."


def _friendly(func: F) -> F:
    """Turn library and environment errors into one-line messages."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RobacciaError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            raise click.ClickException(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None
        except ImportError as exc:
            from robaccia.debug import hint_for

            hint = hint_for(exc)
            raise click.ClickException(f"Could not import the project: {exc}." +
                                       (f" {hint}" if hint else "")) from None

    return wrapper  # type: ignore[return-value]


def _load() -> Any:
    """The project at or above the current folder, loaded (settings, sys.path)."""
    from robaccia.project import load_project

    return load_project(scaffold.find_project("."))


def _project() -> Path:
    """The project folder at or above the current one, loaded."""
    return _load().root  # type: ignore[no-any-return]


def _print_created(root: Path, paths: list[Path]) -> None:
    for path in paths:
        click.echo(f" created {path.relative_to(root)}")


_NO_ARGS = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _Group(click.Group):
    """A click group whose usage errors are one line, like every other error."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except _NO_ARGS as exc:  # plain "robaccia-admin": the help, as in 2007
            click.echo(exc.ctx.get_help() if exc.ctx else HELP_HEADER)
            sys.exit(0)
        except click.UsageError as exc:
            where = f"robaccia-admin {exc.ctx.info_name} --help" if exc.ctx and exc.ctx.parent \
                else "robaccia-admin --help"
            message = " ".join(exc.format_message().split())
            click.echo(f"Error: {message} (see {where})", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=_Group, help=HELP_HEADER,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="robaccia")
def main() -> None:
    """The robaccia-admin command group."""


@main.command("createproject")
@click.argument("name", required=False, default="")
@click.option("--templates", "engine", type=click.Choice(["genshi", "jinja2"]), default="genshi",
              show_default=True, help="The template engine for HTML pages.")
@_friendly
def createproject_command(name: str, engine: str) -> None:
    """Create a new project folder NAME (which must not exist)."""
    root = scaffold.create_project(name, ".", engine)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        click.echo(f" created {path.relative_to(root.parent)}")
    click.echo(f"Next: cd {name} && robaccia-admin addmodelview NAME field:type ...")


_TYPE = click.option("--type", "kind", type=click.Choice(["html", "json"]), default="html",
                     show_default=True, help="The representation the collection serves.")


@main.command("addview")
@click.argument("name", required=False, default="")
@_TYPE
@_friendly
def addview_command(name: str, kind: str) -> None:
    """Add a collection without a model: views/NAME.py and its templates."""
    root = scaffold.find_project(".")
    _print_created(root, scaffold.add_view(root, name, kind))


@main.command("addtemplate")
@click.argument("view", required=False, default="")
@click.argument("handler", required=False, default="")
@_friendly
def addtemplate_command(view: str, handler: str) -> None:
    """Add a starter page for a handler: templates/VIEW/HANDLER.html."""
    root = scaffold.find_project(".")
    _print_created(root, scaffold.add_template(root, view, handler))


@main.command("addmodelview")
@click.argument("name", required=False, default="")
@click.argument("fields", nargs=-1)
@_TYPE
@click.option("--table", default=None, metavar="MODEL",
              help="Serve the table of an existing models/MODEL.py (no new model), e.g. an API "
                   "beside the pages: addmodelview api_employees --type json --table employees.")
@_friendly
def addmodelview_command(name: str, fields: tuple[str, ...], kind: str, table: str | None) -> None:
    """Add a collection with a model. FIELDS are name:type[:option...].

    Types: string, text, integer, float, decimal, boolean, date, datetime, email, url.
    Options: required, unique, a length for strings (name:string:100), digits and
    decimal places for decimals (price:decimal:10,2).
    """
    root = scaffold.find_project(".")
    _print_created(root, scaffold.add_model_view(root, name, kind, list(fields), table))
    if table is None:
        click.echo("Next: robaccia-admin createdb")


def _models() -> Any:
    """The project's dbconfig and models/*.py, loaded."""
    from robaccia import migrations

    return migrations.load_models(_project())


@main.command("createdb")
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


@main.command("makemigration")
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


@main.command("migrate", context_settings={"ignore_unknown_options": True})
@click.argument("revision", required=False, default="head")
@click.option("--sql", is_flag=True, help="Print the SQL instead of running it (nothing changes).")
@click.option("--allow-data-loss", is_flag=True,
              help="Apply it even when it drops a column or table or narrows a type.")
@_friendly
def migrate_command(revision: str, sql: bool, allow_data_loss: bool) -> None:
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
                                 allow_data_loss=allow_data_loss)
    if sql:
        return
    for step in applied:
        click.echo(f" {step}")
    if not applied:
        click.echo("Nothing to do: the database is at that revision already.")


@main.command("migrations")
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


@main.command("run")
@click.option("--host", default=None, help="Address to bind (default: settings.RUN_HOST or 127.0.0.1).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-reload", is_flag=True, help="Do not restart on code and template changes.")
@_friendly
def run_command(host: str | None, port: int, no_reload: bool) -> None:
    """Run the development server (debug on, reloading, loopback only by default)."""
    from robaccia import server

    # NOTE: settings.py reads ROBACCIA_DEBUG when the project loads.
    os.environ["ROBACCIA_DEBUG"] = "1"
    root = scaffold.find_project(".")
    try:
        project = _load()
    except Exception as exc:  # noqa: BLE001 - the server's debug page says what is broken
        # A project that does not load still gets its server: the child serves a
        # debug page naming the file and line, until a save fixes it.
        click.echo(f"The project does not load ({type(exc).__name__}): the site shows why, "
                   "and restarts when you save a fix.")
        host = host or "127.0.0.1"
        server.check_port(host, port)
        server.run(root, host, port, reload=not no_reload)
        return
    if host is None:
        host = project.setting("RUN_HOST", "127.0.0.1")
    server.check_port(host, port)  # before the notice: a port in use is the one line said
    _database_notice(project.root)
    server.run(project.root, host, port, reload=not no_reload)


def _database_notice(root: Path) -> None:
    """Say at start when the database and the models differ (never stop the server for it)."""
    from robaccia import migrations

    try:
        lines = migrations.status(migrations.load_models(root))
    except migrations.MigrationError as exc:  # the database is down, say
        lines = [str(exc)]
    except Exception as exc:  # a model that does not import: the debug page will tell
        lines = [f"Could not compare the database with the models: {' '.join(str(exc).split())}"]
    for line in lines:
        click.echo(line)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=None, type=click.IntRange(1, 256),
              help="Worker processes. Default: cores + 1.")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 256),
              help="Request threads per worker.")
@_friendly
def serve_command(host: str, port: int, workers: int | None, threads: int) -> None:
    """Serve the project with waitress in worker processes, debug off (production)."""
    from robaccia import production

    production.main(_project(), host, port, workers, threads)


@main.command("runtests")
@click.option("-v", "--verbose", is_flag=True)
@_friendly
def runtests_command(verbose: bool) -> None:
    """Run the project's tests/ and exit non-zero when one fails."""
    root = _project()
    command = [sys.executable, "-m", "unittest", "discover", "-s", "tests", "-t", "."]
    if verbose:
        command.append("-v")
    result = subprocess.run(command, cwd=root)
    sys.exit(result.returncode)


@main.command("secretkey")
@click.option("--print", "show", is_flag=True, help="Print a new key instead (for ROBACCIA_SECRET_KEY).")
@_friendly
def secretkey_command(show: bool) -> None:
    """Write the project's .secret_key (a fresh checkout has none), or print a new key."""
    if show:
        click.echo(scaffold.new_secret_key())
        return
    path = scaffold.write_secret_key(_project())
    click.echo(f" created {path.name} (keep it out of version control; .gitignore does)")


@main.command("check")
@click.option("--deploy", is_flag=True, help="Check the settings for production.")
@_friendly
def check_command(deploy: bool) -> None:
    """Report what would be unsafe in production (each finding has a stable id)."""
    from robaccia import checks
    from robaccia.project import load_project

    project = load_project(_project())
    findings = checks.check_project(project.root, project.settings, project if deploy else None)
    for finding in findings:
        click.echo(str(finding))
    if findings:
        raise click.ClickException(f"{len(findings)} finding(s).")
    click.echo("No findings.")


@main.command("demo")
@click.option("--dir", "parent", default=None, help="Where to create the demo project.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--templates", "engine", type=click.Choice(["genshi", "jinja2"]), default="genshi")
@click.option("--no-serve", is_flag=True, help="Create the project and rows, but do not serve.")
@_friendly
def demo_command(parent: str | None, port: int, engine: str, no_serve: bool) -> None:
    """Scaffold an employees project with sample rows (in ./robaccia-demo) and serve it."""
    from robaccia import demo

    root = demo.build(Path(parent) if parent else Path("robaccia-demo"), engine)
    click.echo(f"Demo project: {root}")
    click.echo(f"Open http://127.0.0.1:{port}/employees/ to list, create, edit and delete employees.")
    if not no_serve:
        root = root.resolve()  # NOTE: before the chdir, which would make a relative path wrong
        os.chdir(root)
        from robaccia import server

        server.run(root, "127.0.0.1", port, reload=False)


@main.command("commands")
def commands_command() -> None:
    """List the commands."""
    for name, command in sorted(main.commands.items()):
        click.echo(f"  {name:<15} {command.get_short_help_str(70)}")


@main.command("help")
@click.argument("command", required=False)
@click.pass_context
def help_command(ctx: click.Context, command: str | None) -> None:
    """Show help for a command, or for robaccia-admin."""
    parent = ctx.parent
    assert parent is not None
    if command is None:
        click.echo(main.get_help(parent))
        return
    target = main.get_command(parent, command)
    if target is None:
        raise click.ClickException(f"'{command}' is not a valid command. See robaccia-admin commands.")
    with click.Context(target, info_name=command, parent=parent) as sub:
        click.echo(target.get_help(sub))
