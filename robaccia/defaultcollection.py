"""DefaultCollection: handlers that return a dict get their template rendered.

A handler returns ``None`` (the default result for its name), a dict
("render ``<view>/<handler>.<ext>`` with these variables") or a WSGI
response (what it called ``start_response`` for, or a WSGI application such
as a ``webob.Response``)::

    >>> from robaccia.defaultcollection import DefaultCollection
    >>> from robaccia.renderers import render
    >>> from robaccia.request import Request
    >>> from robaccia.testing import call, make_environ
    >>> class Fred(DefaultCollection):
    ...     def retrieve(self, environ, start_response):
    ...         return {'id': Request.of(environ).id, 'name': 'Fred'}
    >>> env = make_environ('GET', '/fred/1', **{'wsgiorg.routing_args': ((), {'view': 'fred', 'id': '1'})})
    >>> call(Fred('json', render), environ=env)[2]
    b'{"id": "1", "name": "Fred"}'

The defaults are public methods: ``super().retrieve(environ, start_response)``
returns the dict the default would render, for an override to extend. Here
they are ``{'id': id}`` on a member and ``{}`` on the collection (the 2007
rules); :class:`~robaccia.defaultmodelcollection.DefaultModelCollection`
fills them from its table.

Anything else a handler returns (a str, an int, bytes, a list it did not
call ``start_response`` for) is an error that names the view, the handler,
what it returned and what it may return.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from robaccia.errors import RobacciaError
from robaccia.renderers import render
from robaccia.representations import Representation, representation, template_name
from robaccia.request import Request
from robaccia.wsgicollection import Collection

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

__all__ = ["DefaultCollection", "OddResult", "template_name"]

#: What a handler may return, for the message about anything else.
_MAY_RETURN = ("A handler may return None (the default behaviour), a dict (rendered with "
               "templates/{template}) or a WSGI response: the iterable of bytes it called "
               "start_response for, or a WSGI application such as a webob.Response.")


def library_default(cls: type, name: str) -> Callable[..., Any] | None:
    """The default robaccia's own classes give the handler ``name`` of ``cls`` (None: none).

    Looked up once per class and name (PERF: every request that returns None asks).
    """
    cache: dict[str, Any] | None = cls.__dict__.get("_robaccia_defaults")
    if cache is None:
        cache = {}
        cls._robaccia_defaults = cache  # type: ignore[attr-defined]
    if name not in cache:
        cache[name] = next((k.__dict__[name] for k in cls.__mro__
                            if k.__dict__.get("_robaccia_library") and name in k.__dict__), None)
    return cache[name]  # type: ignore[no-any-return]


class OddResult(RobacciaError, TypeError):
    """A handler returned something that is neither None, a dict nor a WSGI response."""

    def __init__(self, where: str, result: Any, template: str) -> None:
        shown = repr(result)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{where} returned {shown} (a {type(result).__name__}).")
        self.hint = _MAY_RETURN.format(template=template)


class DefaultCollection(Collection):
    """A collection whose handlers may return template variables.

    :param ext: the representation, ``"html"`` or ``"json"``.
    :param renderer: ``renderer(environ, start_response, template_file, vars)``
        (default :func:`robaccia.render`).
    """

    _robaccia_library = True

    def __init__(self, ext: str = "html", renderer: Callable[..., Iterable[bytes]] | None = None) -> None:
        self.ext = ext
        self.representation: Representation = representation(ext)
        self.renderer = renderer or render

    # --- the defaults (public: super() gives them) -----------------------------------

    def list(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        """GET /view/: nothing but the page."""
        return {}

    def create(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        """POST /view/: nothing but the page."""
        return {}

    def retrieve(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        """GET /view/id: the id."""
        return {"id": Request.of(environ).id}

    def update(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        """PUT /view/id: the id."""
        return {"id": Request.of(environ).id}

    def delete(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        """DELETE /view/id: the id."""
        return {"id": Request.of(environ).id}

    # --- rendering ------------------------------------------------------------------

    def standard_context(self, environ: WSGIEnvironment) -> dict[str, Any]:
        """The variables every page of this collection gets under a handler's (none here:
        the 2007 contract renders exactly the handler's dict, plus the project's page chrome)."""
        return {}

    def json_body(self, context: Mapping[str, Any]) -> Any:
        """What a JSON answer holds for a handler's dict: the dict itself."""
        return context

    def default_result(self, environ: WSGIEnvironment, start_response: StartResponse, name: str) -> Any:
        """What ``None`` from the handler ``name`` stands for."""
        default = library_default(type(self), name)
        if default is not None:
            return default(self, environ, start_response)
        request = Request.of(environ)
        return {"id": request.id} if request.id else {}

    def respond(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        request = environ.get("robaccia.request") or Request(environ)
        request.representation = self.ext
        if request.project is None:
            # NOTE: without a project nothing marks the response as started;
            # a list returned after start_response must still count as one.
            def tracked(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                request.started = True
                return start_response(status, headers, exc_info)

            return super().respond(environ, tracked)
        return super().respond(environ, start_response)

    def finish(
        self, environ: WSGIEnvironment, start_response: StartResponse, name: str, result: Any
    ) -> Any:
        if result is None:
            result = self.default_result(environ, start_response, name)
        if isinstance(result, dict):
            return self.representation.page(self, environ, start_response, name, result)
        request = environ.get("robaccia.request") or Request(environ)  # PERF: Request.of, inline
        if request.started and not isinstance(result, (str, bytes, int, float, dict)):
            return result
        if callable(result) and not isinstance(result, type):
            return result(environ, start_response)
        if isinstance(result, Iterator) or (hasattr(result, "__iter__") and hasattr(result, "close")
                                            and not isinstance(result, (list, tuple, str, bytes))):
            return result  # a generator: it calls start_response when first iterated
        raise OddResult(self._where(name), result, template_name(environ, name, self.ext))

    def _where(self, name: str) -> str:
        cls = type(self)
        try:
            source = inspect.getsourcefile(cls) or cls.__module__
        except TypeError:
            source = cls.__module__
        parts = source.replace("\\", "/").split("/")
        shown = "/".join(parts[-2:]) if len(parts) > 1 and parts[-2] == "views" else parts[-1]
        return f"{shown}: {cls.__name__}.{name}"
