"""robaccia-admin: create projects, add collections, run them.

    robaccia-admin createproject myproject && cd myproject
    robaccia-admin addmodelview employees name:string title:string office_number:integer
    robaccia-admin createdb
    robaccia-admin run

The library raises :class:`~robaccia.errors.RobacciaError`; only the CLI
turns errors into one line on stderr and a non-zero exit code, with the
helpers of :mod:`robaccia.clibase` (shared with the database commands of
:mod:`robaccia.dbcommands`, which are registered on :data:`main` here).

    >>> from click.testing import CliRunner
    >>> CliRunner().invoke(main, ['addview', 'fred']).output.splitlines()[0][:46]
    'Error: This folder is not in a robaccia projec'
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from robaccia import scaffold
from robaccia.clibase import (  # noqa: F401 (F, _load and _NO_ARGS: importable here as before)
    _NO_ARGS,
    HELP_HEADER,
    F,
    _friendly,
    _Group,
    _load,
    _print_created,
    _project,
)
from robaccia.dbcommands import (  # noqa: F401 (_models: importable here as before)
    _models,
    createdb_command,
    makemigration_command,
    migrate_command,
    migrations_command,
)

__all__ = ["main"]

@click.group(cls=_Group, help=HELP_HEADER,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="robaccia")
def main() -> None:
    """The robaccia-admin command group."""


main.add_command(createdb_command)
main.add_command(makemigration_command)
main.add_command(migrate_command)
main.add_command(migrations_command)


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
