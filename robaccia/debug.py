"""The debug page: what went wrong, in the user's code, first.

Shown only under ``robaccia-admin run`` (``ErrorPages(debug=True)``): the
exception as the heading and a sentence on what to do about it; then the
template line or the frame of the project's own code that raised it (file
relative to the project, the lines around it, its local variables); then the
whole traceback with the library's frames folded away::

    >>> import sys
    >>> from robaccia.testing import make_environ
    >>> try:
    ...     {}['missing']
    ... except KeyError:
    ...     page = render_page(make_environ('GET', '/boom/'), sys.exc_info())
    >>> b'<h1>KeyError: &#x27;missing&#x27;</h1>' in page
    True

An exception may carry a ``hint`` attribute (robaccia's own do: a view that
cannot be imported, a column missing from the database); :func:`hint_for`
adds hints for the exceptions of other libraries that newcomers meet first
(a missing template, a template that does not parse, a database driver that
is not installed). When an error wraps another (``raise ... from exc``), the
page looks for the user's code in the one it wraps too.
"""

from __future__ import annotations

import html
import linecache
import os
import re
import sysconfig
import traceback
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wsgiref.types import WSGIEnvironment

__all__ = ["describe", "hint_for", "render_page"]

#: robaccia's own folder: its frames are the library's, shown as robaccia/<module>.py.
_ROBACCIA = str(Path(__file__).resolve().parent) + os.sep
_LIBRARY_DIRS = tuple(
    {str(Path(p).resolve()) + os.sep for p in (sysconfig.get_paths()["stdlib"],
                                               sysconfig.get_paths()["purelib"],
                                               sysconfig.get_paths()["platlib"])} | {_ROBACCIA}
)
_DRIVERS = {"psycopg": "postgresql", "psycopg2": "postgresql", "pymysql": "mariadb",
            "MySQLdb": "mariadb", "mariadb": "mariadb"}
#: Drivers that a URL names when it names none, and the URL that uses the extra's driver instead.
_OTHER_DRIVERS = {"psycopg2": "postgresql+psycopg://USER@HOST/DATABASE",
                  "MySQLdb": "mysql+pymysql://USER@HOST/DATABASE"}
#: Source lines shown before and after the failing one.
CONTEXT_LINES = 4
#: The longest local variable value shown, in characters of its repr.
MAX_VALUE = 300
_GENSHI_NOT_FOUND = re.compile(r'Template "(.+)" not found')


def _missing_template(exc: BaseException) -> str | None:
    """The template name a TemplateNotFound (Genshi's or Jinja2's) is about."""
    if type(exc).__name__ != "TemplateNotFound":
        return None
    name = getattr(exc, "name", None)  # Jinja2
    if isinstance(name, str) and name:
        return name
    found = _GENSHI_NOT_FOUND.search(str(getattr(exc, "msg", None) or exc))
    return found.group(1) if found else None


def hint_for(exc: BaseException, root: Path | None = None) -> str:
    """Return a sentence saying what to do about ``exc`` ("" when there is none).

    ``root``, the project folder, lets the sentence say where a file was expected.
    """
    hint = getattr(exc, "hint", None)
    if isinstance(hint, str) and hint:
        return hint
    name = type(exc).__name__
    module = type(exc).__module__
    template = _missing_template(exc)
    if template is not None:
        view, _, page = template.rpartition("/")
        handler, dot, ext = page.rpartition(".")
        where = f" in the project folder {root}" if root is not None else ""
        if view and dot and "/" not in view:
            return (f"The handler {handler} of views/{view}.py returned a dict, so robaccia renders "
                    f"it with the template templates/{template}, and there is no such file{where}. "
                    f"Make it with: robaccia-admin addtemplate {view} {handler} "
                    f"(or return a WSGI response instead of a dict).")
        return f"The template templates/{template} does not exist{where}."
    if module.startswith("genshi") and name in ("TemplateSyntaxError", "ParseError"):
        return ("Genshi templates are XML: every tag is closed (write <br/>, <hr/>, <img .../>, "
                "<input .../>, not <br>), attributes are quoted and & is written &amp;. The tag "
                "left open is on the line named or one above it.")
    if module.startswith("jinja2") and name == "TemplateSyntaxError":
        return ("Jinja2 could not read this template: every {{ ... }} and {% ... %} is closed, and "
                "each {% if %}, {% for %} and {% block %} has its {% endif %}, {% endfor %} and "
                "{% endblock %}.")
    if module.startswith("jinja2") and name == "UndefinedError":
        return ("The template uses a variable the handler did not give it. Return it in the "
                "handler's dict, or check its spelling.")
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        driver = exc.name.partition(".")[0]
        if driver in _DRIVERS:
            extra = _DRIVERS[driver]
            hint = (f"The database driver is not installed; for "
                    f"{'PostgreSQL' if extra == 'postgresql' else 'MariaDB and MySQL'} run: "
                    f"pip install 'robaccia[{extra}]'")
            if driver in _OTHER_DRIVERS:
                # NOTE: a URL without +driver names SQLAlchemy's default driver, not the extra's.
                hint += f" and write the URL as {_OTHER_DRIVERS[driver]}"
            return hint
    # NOTE: a column or table the code names that the database lacks: a model changed, not migrated.
    orig = getattr(exc, "orig", None)  # the driver's error inside SQLAlchemy's
    if orig is not None and (getattr(orig, "sqlstate", None) in ("42703", "42P01")  # PostgreSQL
                             or (getattr(orig, "args", None) or (None,))[0] in (1054, 1146)  # MariaDB
                             or str(orig).startswith(("no such column", "no such table"))):  # SQLite
        return ("The database lacks a column or table the code uses. If a model changed, record and "
                'apply the change: robaccia-admin makemigration "what changed", then robaccia-admin migrate.')
    return ""


def describe(exc: BaseException | None) -> str:
    """One line for the log: the exception, and what to do about it when robaccia knows."""
    if exc is None:
        return ""
    line = f"{type(exc).__name__}: {exc}"
    hint = hint_for(exc)
    return " ".join((line + (" " + hint if hint else "")).split())


# --- where things are ---------------------------------------------------------------------------


def _is_library(filename: str) -> bool:
    if filename.startswith("<"):
        return True
    try:
        path = str(Path(filename).resolve())
    except OSError:
        return True
    return path.startswith(_LIBRARY_DIRS)


def _shown(filename: str, root: Path | None) -> str:
    """A file name as a reader wants it: relative to the project, or to its library."""
    try:
        path = Path(filename).resolve()
    except OSError:
        return filename
    text = str(path)
    if root is not None and path.is_relative_to(root) and not text.startswith(_LIBRARY_DIRS):
        return path.relative_to(root).as_posix()
    if text.startswith(_ROBACCIA):
        return "robaccia/" + text[len(_ROBACCIA):]
    for folder in _LIBRARY_DIRS:
        if text.startswith(folder):
            return text[len(folder):]
    return filename


def _shorten(text: str, root: Path | None) -> str:
    """Write paths inside the project relative to it (in messages that name them)."""
    if root is None:
        return text
    return text.replace(str(root) + os.sep, "")


def _chain(exc: BaseException | None) -> list[BaseException]:
    """The exception and those it wraps (its cause or context), outermost first."""
    seen: list[BaseException] = []
    while exc is not None and not any(exc is s for s in seen):
        seen.append(exc)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return seen


def _frames(tb: TracebackType | None) -> list[tuple[Any, int]]:
    frames = []
    while tb is not None:
        frames.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return frames


def _user_frame(chain: list[BaseException]) -> tuple[Any, int] | None:
    """The innermost frame of the user's code, in the innermost exception that has one."""
    for exc in reversed(chain):
        user = [(f, n) for f, n in _frames(exc.__traceback__) if not _is_library(f.f_code.co_filename)]
        if user:
            return user[-1]
    return None


def _file_location(chain: list[BaseException]) -> tuple[str, int] | None:
    """The file and line a syntax error names (a template's, or a Python file's)."""
    for exc in chain:
        filename = getattr(exc, "filename", None)
        lineno = getattr(exc, "lineno", None)
        if (isinstance(filename, str) and isinstance(lineno, int) and lineno > 0
                and not filename.startswith("<") and os.path.isfile(filename)):
            return filename, lineno
    return None


# --- the page -----------------------------------------------------------------------------------


def _source(filename: str, lineno: int, around: int = CONTEXT_LINES) -> str:
    linecache.checkcache(filename)
    lines = []
    for n in range(max(1, lineno - around), lineno + around + 1):
        text = linecache.getline(filename, n)
        if not text and n > lineno:
            break
        mark = ' class="here"' if n == lineno else ""
        arrow = "&gt;" if n == lineno else " "
        lines.append(f'<span{mark}><span class="lineno">{arrow}{n:>5}</span> {html.escape(text.rstrip())}</span>')
    # NOTE: no newline between the lines: the stylesheet makes each a block of its own.
    return "".join(lines)


def _value(name: str, value: Any) -> str:
    if isinstance(value, dict) and "REQUEST_METHOD" in value and "wsgi.version" in value:
        # the WSGI environ holds the whole process environment: name the request instead
        return (f"<WSGI environ of {value.get('REQUEST_METHOD')} "
                f"{value.get('SCRIPT_NAME', '')}{value.get('PATH_INFO', '')}>")
    try:
        shown = repr(value)
    except Exception as exc:  # a broken __repr__ must not break the page
        shown = f"<repr failed: {type(exc).__name__}>"
    if len(shown) > MAX_VALUE:
        shown = shown[:MAX_VALUE] + f"... ({len(shown):,} characters)"
    return shown


def _locals(frame: Any) -> str:
    rows = [f"<tr><th scope=\"row\">{html.escape(name)}</th><td><code>{html.escape(_value(name, value))}"
            f"</code></td></tr>"
            for name, value in sorted(frame.f_locals.items()) if not name.startswith("__")]
    if not rows:
        return ""
    return '<table class="locals"><caption>Local variables</caption><tbody>' + "".join(rows) + "</tbody></table>"


def _where(filename: str, lineno: int, function: str | None, root: Path | None) -> str:
    text = f"{_shown(filename, root)}, line {lineno}" + (f", in {function}" if function else "")
    return f'<p class="where">{html.escape(text)}</p>'


def _frame_html(frame: Any, lineno: int, with_locals: bool, root: Path | None) -> str:
    code = frame.f_code
    around = CONTEXT_LINES if with_locals else 1
    parts = [_where(code.co_filename, lineno, code.co_name, root),
             f'<pre class="source">{_source(code.co_filename, lineno, around)}</pre>']
    if with_locals:
        parts.append(_locals(frame))
    return "\n".join(parts)


def _project_root(environ: WSGIEnvironment) -> Path | None:
    request = environ.get("robaccia.request")
    project = getattr(request, "project", None)
    root = getattr(project, "root", None)
    return Path(root) if root is not None else None


def render_page(environ: WSGIEnvironment, exc_info: Any, root: Path | None = None,
                stylesheet: str | None = None) -> bytes:
    """Return the debug page for an exception raised while answering ``environ``.

    ``root``: the project folder (default: the request's project), which
    file names are shown relative to; ``stylesheet``: its URL (default:
    the project's static/robaccia.css).
    """
    from robaccia.request import Request

    _type, exc, tb = exc_info
    root = root if root is not None else _project_root(environ)
    if stylesheet is None:
        try:
            stylesheet = Request.of(environ).static_url("robaccia.css")
        except ValueError:
            stylesheet = "/static/robaccia.css"
    chain = _chain(exc)
    title = _shorten(f"{type(exc).__name__}: {exc}", root)
    hint = _shorten(hint_for(exc, root), root)
    out = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title[:120])}</title>",
        f'<link rel="stylesheet" href="{html.escape(stylesheet)}"></head>',
        '<body class="debug"><main id="content">',
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="request">{html.escape(environ.get("REQUEST_METHOD", ""))} '
        f'{html.escape(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))}</p>',
    ]
    if hint:
        out.append(f'<p class="hint">{html.escape(hint)}</p>')
    location = _file_location(chain)
    user = _user_frame(chain)
    if location is not None:
        filename, lineno = location
        heading = "In your code" if filename.endswith(".py") else "In the template"
        out.append(f'<section class="first"><h2>{heading}</h2>\n{_where(filename, lineno, None, root)}\n'
                   f'<pre class="source">{_source(filename, lineno)}</pre></section>')
    if user is not None and (location is None or (user[0].f_code.co_filename, user[1]) != location):
        heading = "In your code" if user[0].f_code.co_filename.endswith(".py") else "In the template"
        heading = heading if location is None else "Called from your code"
        out.append(f'<section class="first"><h2>{heading}</h2>\n'
                   + _frame_html(user[0], user[1], True, root) + "</section>")
    out.append("<section><h2>Traceback</h2>")
    for index, error in enumerate(reversed(chain)):
        if index:
            what = html.escape(_shorten(f"{type(error).__name__}: {error}", root))
            out.append(f'<p class="cause">The error above led to {what}</p>')
        for frame, lineno in _frames(error.__traceback__):
            filename = frame.f_code.co_filename
            if _is_library(filename):
                name = html.escape(f"{_shown(filename, root)}, line {lineno}, in {frame.f_code.co_name}")
                out.append(f'<details class="library"><summary>{name}</summary>'
                           f'<pre class="source">{_source(filename, lineno)}</pre></details>')
            else:
                out.append(f'<div class="frame">{_frame_html(frame, lineno, False, root)}</div>')
    text = _shorten("".join(traceback.format_exception(*exc_info)), root)
    out.append(f'<details><summary>The traceback as text</summary><pre class="traceback">'
               f"{html.escape(text)}</pre></details>")
    out.append("</section><p>This page is shown because the project runs in debug mode "
               "(robaccia-admin run); robaccia-admin serve shows a plain error page.</p>")
    out.append("</main></body></html>")
    return "\n".join(out).encode("utf-8", "replace")
