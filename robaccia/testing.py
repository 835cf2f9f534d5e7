"""Helpers to drive WSGI apps in tests, used by robaccia's tests and by projects.

    >>> from robaccia.testing import call
    >>> def app(environ, start_response):
    ...     start_response('200 OK', [('Content-Type', 'text/plain')])
    ...     return [environ['REQUEST_METHOD'].encode()]
    >>> call(app, 'PUT', '/x')
    ('200 OK', [('Content-Type', 'text/plain')], b'PUT')
"""

from __future__ import annotations

import io
import json as jsonlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication, WSGIEnvironment

__all__ = ["call", "make_environ"]


def make_environ(
    method: str = "GET",
    path: str = "/",
    body: bytes | str | Mapping[str, Any] | None = None,
    *,
    json: Any = None,
    content_type: str | None = None,
    headers: Mapping[str, str] | None = None,
    query: str = "",
    **extra: Any,
) -> WSGIEnvironment:
    """Build a WSGI environ for a request.

    A mapping body is sent form-encoded; ``json=`` sends a JSON body.
    ``headers`` are HTTP request headers by their usual names.
    """
    if json is not None:
        body = jsonlib.dumps(json)
        content_type = content_type or "application/json"
    elif isinstance(body, Mapping):
        body = urlencode(body)
        content_type = content_type or "application/x-www-form-urlencoded"
    data = body.encode() if isinstance(body, str) else (body or b"")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "HTTP_HOST": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(data),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if data or body is not None:
        environ["CONTENT_LENGTH"] = str(len(data))
    if content_type:
        environ["CONTENT_TYPE"] = content_type
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
        else:
            environ["HTTP_" + key] = value
    environ.update(extra)
    return environ


def call(
    app: WSGIApplication,
    method: str = "GET",
    path: str = "/",
    body: bytes | str | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Call a WSGI app; return its status, headers and whole body."""
    environ = kwargs.pop("environ", None) or make_environ(method, path, body, **kwargs)
    captured: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured[:] = [status, headers]
        return lambda data: None

    result = app(environ, start_response)
    try:
        data = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return captured[0], captured[1], data
