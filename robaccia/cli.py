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
import importlib
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


def _tables(root: Path) -> list[Any]:
    from sqlalchemy import Table

    tables: list[Any] = []
    for path in sorted((root / "models").glob("*.py")):
        if path.stem.startswith("_"):
            continue
        module = importlib.import_module(f"models.{path.stem}")
        tables.extend(v for v in vars(module).values() if isinstance(v, Table) and v not in tables)
    return tables


@main.command("createdb")
@_friendly
def createdb_command() -> None:
    """Create the tables of every models/*.py (existing tables are left alone)."""
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import inspect

    root = _project()
    try:
        import dbconfig
    except sa_exc.ArgumentError as exc:  # a malformed URL or an unknown dialect
        raise click.ClickException(f"The database URL is not valid: {exc}") from None

    tables = _tables(root)
    try:
        existing = set(inspect(dbconfig.engine).get_table_names())
        dbconfig.metadata.create_all(dbconfig.engine, tables=tables, checkfirst=True)
    except sa_exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0]
        raise click.ClickException(f"Could not reach the database: {reason}") from None
    for table in tables:
        state = "exists" if table.name in existing else "created"
        click.echo(f" {state} table {table.name}")
    if not tables:
        click.echo("No tables in models/: add one with robaccia-admin addmodelview.")


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
    project = _load()
    if host is None:
        host = project.setting("RUN_HOST", "127.0.0.1")
    server.run(project.root, host, port, reload=not no_reload)


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
