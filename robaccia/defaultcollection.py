"""DefaultCollection: handlers that return a dict get their template rendered.

A handler that returns ``None`` or a dict means "render
``<view>/<handler>.<ext>`` with these variables" (``None`` gives ``{'id': id}``
on a member and ``{}`` on the collection); anything else is the response::

    >>> from robaccia.defaultcollection import DefaultCollection
    >>> from robaccia.renderers import render
    >>> from robaccia.testing import call, make_environ
    >>> class Fred(DefaultCollection):
    ...     def retrieve(self, environ, start_response):
    ...         return {'id': environ['robaccia.id'], 'name': 'Fred'}
    >>> env = make_environ('GET', '/fred/1', **{'wsgiorg.routing_args': ((), {'view': 'fred', 'id': '1'})})
    >>> call(Fred('json', render), environ=env)[2]
    b'{"id": "1", "name": "Fred"}'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from robaccia.wsgicollection import Collection, routing_vars

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

__all__ = ["DefaultCollection", "template_name"]


def template_name(environ: WSGIEnvironment, handler: str, ext: str) -> str:
    """Return ``<view>/<handler>.<ext>`` for this request."""
    view = (routing_vars(environ) or {}).get("view") or "."
    return f"{view}/{handler}.{ext}"


class DefaultCollection(Collection):
    """A collection whose handlers may return template variables.

    :param ext: the representation, ``"html"`` or ``"json"``.
    :param renderer: ``renderer(environ, start_response, template_file, vars)``.
    """

    def __init__(self, ext: str, renderer: Callable[..., Iterable[bytes]]) -> None:
        self.ext = ext
        self.renderer = renderer

    def respond(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        environ["robaccia.ext"] = self.ext
        return super().respond(environ, start_response)

    def finish(
        self, environ: WSGIEnvironment, start_response: StartResponse, name: str, result: Any
    ) -> Any:
        if result is None:
            id = environ.get("robaccia.id")
            result = {"id": id} if id else {}
        if isinstance(result, dict):
            template = template_name(environ, name, self.ext)
            return self.renderer(environ, start_response, template, result)
        return result
