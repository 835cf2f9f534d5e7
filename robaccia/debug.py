"""The debug page: what went wrong, in the user's code, first.

Shown only under ``robaccia-admin run`` (``ErrorPages(debug=True)``): the
exception and a sentence on what to do about it, then the frame of the
project's own code that raised it (its source lines and local variables),
then the whole traceback with the library's frames folded away::

    >>> import sys
    >>> from robaccia.testing import make_environ
    >>> try:
    ...     {}['missing']
    ... except KeyError:
    ...     page = render_page(make_environ('GET', '/boom/'), sys.exc_info())
    >>> b'<h1>KeyError: &#x27;missing&#x27;</h1>' in page
    True

An exception may carry a ``hint`` attribute (robaccia's own do: a missing
template, a view that cannot be imported, a column missing from the
database); :func:`hint_for` adds hints for a few exceptions of other
libraries that newcomers meet first.
"""

from __future__ import annotations

import html
import linecache
import os
import sysconfig
import traceback
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wsgiref.types import WSGIEnvironment

__all__ = ["describe", "hint_for", "render_page"]

_LIBRARY_DIRS = tuple(
    str(Path(p).resolve()) + os.sep
    for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
              sysconfig.get_paths()["platlib"], str(Path(__file__).resolve().parent)}
)
_DRIVERS = {"psycopg": "postgresql", "psycopg2": "postgresql", "pymysql": "mariadb",
            "MySQLdb": "mariadb", "mariadb": "mariadb"}


def hint_for(exc: BaseException) -> str:
    """Return a sentence saying what to do about ``exc`` ("" when there is none)."""
    hint = getattr(exc, "hint", None)
    if isinstance(hint, str) and hint:
        return hint
    name = type(exc).__name__
    module = type(exc).__module__
    if name == "TemplateNotFound":
        missing = getattr(exc, "name", None) or getattr(exc, "filename", None) or str(exc)
        missing = str(missing).strip('"').removeprefix("Template ").strip('"').removesuffix(" not found")
        view, _, page = missing.partition("/")
        command = (f" Make one with: robaccia-admin addtemplate {view} {page.rpartition('.')[0]}"
                   if view and page.endswith(".html") else "")
        return (f"The template templates/{missing} does not exist: the handler returned a dict, "
                f"which is rendered with it.{command} (or return a WSGI response instead of a dict).")
    if module.startswith("genshi") and name in ("TemplateSyntaxError", "ParseError"):
        return ("Genshi templates are XML: every tag is closed (<br/>, <input .../>), attributes "
                "are quoted and & is written &amp;. Check the line named above.")
    if module.startswith("jinja2") and name == "UndefinedError":
        return ("The template uses a variable the handler did not give it. Return it in the "
                "handler's dict, or check its spelling.")
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        driver = exc.name.partition(".")[0]
        if driver in _DRIVERS:
            return (f"The database driver is not installed; for "
                    f"{'PostgreSQL' if _DRIVERS[driver] == 'postgresql' else 'MariaDB and MySQL'} run: "
                    f"pip install 'robaccia[{_DRIVERS[driver]}]'")
    return ""


def describe(exc: BaseException | None) -> str:
    """One line for the log: the exception, and what to do about it when robaccia knows."""
    if exc is None:
        return ""
    line = f"{type(exc).__name__}: {exc}"
    hint = hint_for(exc)
    return " ".join((line + (" " + hint if hint else "")).split())


def _is_library(filename: str) -> bool:
    try:
        path = str(Path(filename).resolve())
    except OSError:
        return True
    return path.startswith(_LIBRARY_DIRS) or filename.startswith("<")


def _frames(tb: TracebackType | None) -> list[tuple[Any, int]]:
    frames = []
    while tb is not None:
        frames.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return frames


def _source(filename: str, lineno: int, around: int = 5) -> str:
    lines = []
    for n in range(max(1, lineno - around), lineno + around + 1):
        text = linecache.getline(filename, n)
        if not text and n > lineno:
            break
        mark = ' class="here"' if n == lineno else ""
        lines.append(f'<span{mark}><span class="lineno">{n:>5}</span> {html.escape(text.rstrip())}</span>')
    return "\n".join(lines)


def _locals(frame: Any) -> str:
    rows = []
    for name, value in sorted(frame.f_locals.items()):
        if name.startswith("__"):
            continue
        try:
            shown = repr(value)
        except Exception as exc:  # a broken __repr__ must not break the page
            shown = f"<repr failed: {type(exc).__name__}>"
        if len(shown) > 300:
            shown = shown[:300] + "..."
        rows.append(f"<tr><th>{html.escape(name)}</th><td><code>{html.escape(shown)}</code></td></tr>")
    if not rows:
        return ""
    return '<table class="locals"><caption>Local variables</caption>' + "".join(rows) + "</table>"


def _frame_html(frame: Any, lineno: int, with_locals: bool) -> str:
    code = frame.f_code
    where = f"{html.escape(code.co_filename)}, line {lineno}, in {html.escape(code.co_name)}"
    parts = [f'<p class="where">{where}</p>', f'<pre class="source">{_source(code.co_filename, lineno)}</pre>']
    if with_locals:
        parts.append(_locals(frame))
    return "".join(parts)


def _template_location(exc: BaseException) -> str:
    """The file and line of a template syntax error (they are not Python frames)."""
    filename = getattr(exc, "filename", None)
    lineno = getattr(exc, "lineno", None)
    if not filename or not isinstance(lineno, int):
        return ""
    return (f'<p class="where">{html.escape(str(filename))}, line {lineno}</p>'
            f'<pre class="source">{_source(str(filename), lineno)}</pre>')


def render_page(environ: WSGIEnvironment, exc_info: Any) -> bytes:
    """Return the debug page for an exception raised while answering ``environ``."""
    from robaccia.request import Request

    _type, exc, tb = exc_info
    request = Request.of(environ)
    try:
        css = request.static_url("robaccia.css")
    except ValueError:
        css = "/static/robaccia.css"
    frames = _frames(tb)
    user = [(f, n) for f, n in frames if not _is_library(f.f_code.co_filename)]
    title = f"{type(exc).__name__}: {exc}"
    hint = hint_for(exc)
    out = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title[:120])}</title>",
        f'<link rel="stylesheet" href="{html.escape(css)}"></head><body class="debug"><main id="content">',
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="request">{html.escape(environ.get("REQUEST_METHOD", ""))} '
        f'{html.escape(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))}</p>',
    ]
    if hint:
        out.append(f'<p class="hint">{html.escape(hint)}</p>')
    location = _template_location(exc)
    if location:
        out.append('<section><h2>In the template</h2>' + location + "</section>")
    if user:
        frame, lineno = user[-1]
        out.append("<section><h2>In your code</h2>" + _frame_html(frame, lineno, True) + "</section>")
    out.append("<section><h2>Traceback</h2>")
    for frame, lineno in frames:
        body = _frame_html(frame, lineno, False)
        if _is_library(frame.f_code.co_filename):
            name = html.escape(f"{Path(frame.f_code.co_filename).name}: {frame.f_code.co_name}")
            out.append(f'<details class="library"><summary>{name}</summary>{body}</details>')
        else:
            out.append(f'<div class="frame">{body}</div>')
    text = "".join(traceback.format_exception(*exc_info))
    out.append(f'<details><summary>As text</summary><pre class="traceback">{html.escape(text)}</pre></details>')
    out.append("</section><p>This page is shown because the project runs in debug mode "
               "(robaccia-admin run); robaccia-admin serve shows a plain error page.</p>")
    out.append("</main></body></html>")
    return "".join(out).encode("utf-8", "replace")
