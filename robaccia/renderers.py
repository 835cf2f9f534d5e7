"""Renderers: turn a handler's variables into a response by template extension.

The renderer contract is the 2007 one,
``renderer(environ, start_response, template_file, vars)``; :func:`render`
picks the representation from the template's extension: ``.json`` serialises
the variables, ``.html`` renders the template with the project's engine
(Genshi or Jinja2, both escaping by default)::

    >>> from robaccia.renderers import render
    >>> from robaccia.testing import call
    >>> def app(environ, start_response):
    ...     return render(environ, start_response, 'fred/list.json', {'a': 1})
    >>> call(app)
    ('200 OK', [('Content-Type', 'application/json'), ('Content-Length', '8')], b'{"a": 1}')

HTML templates are found at ``<template folder>/<view>/<handler>.html``. The
folder and engine come from the request's :class:`Templates` (the project's),
or from the one given to :func:`configure`. Under debug, a Jinja2 variable the
template uses but nobody defined is an error, as it always is in Genshi.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from robaccia.errors import RobacciaError

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

__all__ = [
    "ENGINES",
    "Templates",
    "configure",
    "find_renderer",
    "json_default",
    "render",
    "to_json",
]

ENGINES = ("genshi", "jinja2")
_SLASH = os.sep == "/"
CONTENT_TYPES = {"html": "text/html; charset=utf-8", "json": "application/json"}
Renderer = Callable[..., Iterable[bytes]]


class TemplateConfigError(RobacciaError, ValueError):
    """The template engine or folder is misconfigured."""


def json_default(value: Any) -> Any:
    """Serialise the column values JSON has no type for.

    A date and time without a zone is UTC (what a JSON body's offset is
    converted to), and says so: ``2026-11-30T09:30:00Z`` (RFC 3339).
    """
    if isinstance(value, datetime.datetime) and value.tzinfo is None:
        return value.isoformat() + "Z"
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, enum.Enum):
        return value.name  # what the column's form field and JSON input accept
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json(value: Any) -> bytes:
    """Serialise a value to JSON bytes, with dates and decimals as strings."""
    return json.dumps(value, default=json_default).encode()


class Templates:
    """A template folder and the engine that renders it, loaded once.

    :param directory: the template folder (made absolute at construction).
    :param engine: ``"genshi"`` or ``"jinja2"``.
    :param debug: re-read templates that changed on disk.
    """

    def __init__(self, directory: str, engine: str = "genshi", debug: bool = False) -> None:
        if engine not in ENGINES:
            raise TemplateConfigError(f"Unknown template engine {engine!r}; use one of {ENGINES}")
        self.directory = os.path.abspath(directory)
        self.engine = engine
        self.debug = debug
        self._render = self._genshi() if engine == "genshi" else self._jinja2()

    def _genshi(self) -> Callable[[str, Mapping[str, Any]], bytes]:
        from genshi.template import TemplateLoader

        loader = TemplateLoader([self.directory], auto_reload=self.debug, max_cache_size=200)
        load = loader.load if self.debug else _kept(loader.load)

        def render(name: str, context: Mapping[str, Any]) -> bytes:
            stream = load(name).generate(**context)
            return stream.render("html", encoding="utf-8")  # type: ignore[no-any-return]

        return render

    def _jinja2(self) -> Callable[[str, Mapping[str, Any]], bytes]:
        import jinja2

        # NOTE: autoescape is always on; robaccia never builds an environment
        # without it (check --deploy looks for one that does).
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(self.directory),
            autoescape=True,
            auto_reload=self.debug,
            cache_size=400,
            # NOTE: typos are loud while developing; in production a missing
            # variable renders empty, as Jinja2's default does.
            undefined=jinja2.StrictUndefined if self.debug else jinja2.ChainableUndefined,
        )
        self.jinja_env = env
        load = env.get_template if self.debug else _kept(env.get_template)

        def render(name: str, context: Mapping[str, Any]) -> bytes:
            return load(name).render(context).encode()

        return render

    def render(self, name: str, context: Mapping[str, Any]) -> bytes:
        """Render the template ``name`` (relative to the folder) to UTF-8."""
        return self._render(name if _SLASH else name.replace(os.sep, "/"), context)


def _kept(load: Callable[[str], Any]) -> Callable[[str], Any]:
    """``load``, keeping what it gives per name (at most 400 names).

    PERF: with auto_reload off an engine's loader gives the same template for
    a name every time, from a cache behind a lock; kept here, a page skips
    that lookup (the engine still finds the layout a page extends).
    """
    kept: dict[str, Any] = {}

    def kept_load(name: str) -> Any:
        template = kept.get(name)
        if template is None:
            template = load(name)
            if len(kept) >= 400:
                kept.clear()
            kept[name] = template
        return template

    return kept_load


_lock = threading.Lock()
_default: Templates | None = None


def configure(directory: str, engine: str = "genshi", debug: bool = False) -> Templates:
    """Set the templates used when the environ names none; return them."""
    global _default
    with _lock:
        _default = Templates(directory, engine, debug)
    return _default


def _default_templates() -> Templates:
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                _default = Templates("templates")
    return _default


def render(
    environ: WSGIEnvironment,
    start_response: StartResponse,
    template_file: str,
    vars: Mapping[str, Any],
    headers: Iterable[tuple[str, str]] | None = None,
    status: str = "200 OK",
) -> list[bytes]:
    """Render ``vars`` as the representation ``template_file``'s extension names.

    ``.json`` serialises ``vars``; anything else renders an HTML template with
    the request's template context (``csrf_token``, ``flashes``, ``url_for``,
    ...) under ``vars``.
    """
    ext = template_file.rpartition(".")[2]
    if ext == "json":
        body = to_json(vars)
        content_type = CONTENT_TYPES["json"]
    else:
        request = environ.get("robaccia.request") or _request(environ)
        templates: Templates = request.templates or _default_templates()
        context = request.template_context()
        context.update(vars)
        body = templates.render(template_file, context)
        content_type = CONTENT_TYPES["html"]
    if not headers:
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]
    given = {name.lower() for name, _ in headers}
    out = []
    if "content-type" not in given:
        out.append(("Content-Type", content_type))
    if "content-length" not in given:
        out.append(("Content-Length", str(len(body))))
    out.extend(headers)
    start_response(status, out)
    return [body]


def _request(environ: WSGIEnvironment) -> Any:
    from robaccia.request import Request

    return Request.of(environ)


def find_renderer(ext: str) -> Renderer:
    """Return the renderer for a representation; every one uses :func:`render`."""
    if ext not in CONTENT_TYPES:
        raise TemplateConfigError(f"{ext!r} is not a representation type (html or json)")
    return render
