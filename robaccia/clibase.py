"""What every robaccia-admin command shares: one-line errors, the loaded project, the group's class.

The commands are in :mod:`robaccia.cli` and :mod:`robaccia.dbcommands`.
Library code raises; :func:`_friendly` turns what it raises into a click
error, which the group prints as one line on stderr with exit code 1::

    >>> from robaccia.errors import RobacciaError
    >>> @_friendly
    ... def addview():
    ...     raise RobacciaError("'2fast' is not a valid view name")
    >>> addview()
    Traceback (most recent call last):
    ...
    click.exceptions.ClickException: '2fast' is not a valid view name
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from robaccia import scaffold
from robaccia.errors import RobacciaError

__all__ = ["HELP_HEADER"]

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
