"""Helpers to drive WSGI apps in tests, used by robaccia's tests and by projects.

:func:`call` runs one request through any WSGI app::

    >>> from robaccia.testing import call
    >>> def app(environ, start_response):
    ...     start_response('200 OK', [('Content-Type', 'text/plain')])
    ...     return [environ['REQUEST_METHOD'].encode()]
    >>> call(app, 'PUT', '/x')
    ('200 OK', [('Content-Type', 'text/plain')], b'PUT')

:class:`Client` is a project's test client: it loads the project as the
servers do (the same routes and middlewares), keeps cookies like a browser,
and sends an HTML form with its CSRF token. :func:`sample_row` makes valid
values for any table, read from its columns when the test runs, so a
generated test keeps passing after the model changes.
"""

from __future__ import annotations

import datetime
import io
import itertools
import json as jsonlib
from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication, WSGIEnvironment

    from sqlalchemy.engine import Engine
    from sqlalchemy.schema import Table

__all__ = ["Client", "Response", "call", "make_environ", "sample_row", "sample_value", "typed"]


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
    path, _, in_path = path.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query or in_path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "HTTP_HOST": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
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


class Response:
    """What a :class:`Client` got back."""

    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def status_code(self) -> int:
        return int(self.status.split()[0])

    def header(self, name: str) -> str | None:
        """The value of a header (the first, if sent twice), or None."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @property
    def location(self) -> str | None:
        return self.header("Location")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return jsonlib.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status}>"


class Client:
    """Send requests to a project the way a browser or an API client would.

    ``Client()`` loads the project in the current folder (or above it);
    ``Client(app)`` drives any WSGI app. Cookies the app sets are sent back,
    and a form sent to a project carries a CSRF token, as one from the
    project's pages would (``csrf=False`` sends none).
    """

    def __init__(self, app: Any = None, *, csrf: bool = True) -> None:
        from robaccia.project import Project, load_project

        if app is None or isinstance(app, str) or hasattr(app, "__fspath__"):
            app = load_project(app)
        self.app = app
        self.cookies: dict[str, str] = {}
        self._secret = app.secret() if csrf and isinstance(app, Project) else None
        self._token: str | None = None

    def _csrf_header(self) -> dict[str, str]:
        from robaccia.middleware import CSRFProtection

        if self._secret is None:
            return {}
        if self._token is None or CSRFProtection.COOKIE not in self.cookies:
            cookie, self._token = CSRFProtection.pair(self._secret)
            self.cookies[CSRFProtection.COOKIE] = cookie
        return {"X-CSRF-Token": self._token}

    def request(self, method: str, path: str, body: Any = None, *, json: Any = None,
                headers: Mapping[str, str] | None = None, **kw: Any) -> Response:
        """Send one request (no redirect is followed)."""
        sent = dict(headers or {})
        if method not in ("GET", "HEAD", "OPTIONS") and json is None:
            sent = {**self._csrf_header(), **sent}
        if self.cookies and "Cookie" not in sent:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        status, out, data = call(self.app, method, path, body, json=json, headers=sent, **kw)
        for name, value in out:
            if name.lower() == "set-cookie":
                for morsel in SimpleCookie(value).values():
                    if morsel["max-age"] == "0":
                        self.cookies.pop(morsel.key, None)
                    else:
                        self.cookies[morsel.key] = morsel.value
        return Response(status, out, data)

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Response:
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Response:
        return self.request("PUT", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Response:
        return self.request("DELETE", path, **kw)

    def submit(self, path: str, values: Mapping[str, Any], method: str = "POST") -> Response:
        """Send ``values`` as an HTML form (a PUT or DELETE goes as POST with ``_method``)."""
        form = dict(values)
        if method != "POST":
            form["_method"] = method
        return self.request("POST", path, form)


# --- sample values -----------------------------------------------------------------------

_counter = itertools.count(1)


def sample_value(column: Any, n: int) -> Any:
    """A valid value for a column, different for each ``n`` (JSON-ready)."""
    from sqlalchemy import types as sqltypes

    ctype = column.type
    if isinstance(ctype, sqltypes.Boolean):
        return n % 2 == 0
    if isinstance(ctype, sqltypes.Enum):
        return list(ctype.enums)[n % len(ctype.enums)]
    if isinstance(ctype, sqltypes.Integer):
        return n
    if isinstance(ctype, sqltypes.Float):
        return n + 0.5
    if isinstance(ctype, sqltypes.Numeric):
        scale = ctype.scale if ctype.scale is not None else 2
        digits = (ctype.precision - scale) if ctype.precision else 6
        whole = n % (10 ** digits) if digits > 0 else 0
        return f"{whole}.{'5'.ljust(scale, '0')}" if scale else str(whole)
    if isinstance(ctype, sqltypes.DateTime):
        # RFC 3339 with its offset, as JSON bodies need; forms take it too
        return (datetime.datetime(2024, 1, 1, 9, 30) + datetime.timedelta(minutes=n)).isoformat() + "Z"
    if isinstance(ctype, sqltypes.Date):
        return (datetime.date(2024, 1, 1) + datetime.timedelta(days=n % 3000)).isoformat()
    if isinstance(ctype, sqltypes.Time):
        return datetime.time(9, n % 60).isoformat()
    info = column.info.get("type")
    length = getattr(ctype, "length", None) or 40
    if info == "email":
        text = f"user{n}@example.com"
    elif info == "url":
        text = f"https://example.com/{n}"
    else:
        text = f"{column.name.replace('_', ' ')} {n}"
    return text[-length:] if len(text) > length else text


def sample_row(table: Table, engine: Engine | None = None, *, n: int | None = None) -> dict[str, Any]:
    """Valid values for every writable column of ``table`` (unique ones fresh each call).

    A required foreign key gets a row of the table it references, created
    first (``engine`` is then needed).
    """
    from sqlalchemy import insert

    n = n if n is not None else next(_counter)
    values: dict[str, Any] = {}
    auto = table.autoincrement_column
    for column in table.columns:
        if column is auto or column.computed is not None:
            continue
        if column.foreign_keys:
            if column.nullable:
                continue
            if engine is None:
                raise ValueError(f"{table.name}.{column.name} needs a referenced row: give engine=")
            target = next(iter(column.foreign_keys)).column
            parent = typed(target.table, sample_row(target.table, engine))
            with engine.begin() as conn:
                inserted = conn.execute(insert(target.table).values(parent)).inserted_primary_key
                key = inserted[0] if inserted else None
            values[column.name] = key if target.primary_key else parent[target.name]
            continue
        values[column.name] = sample_value(column, n)
    return values


def typed(table: Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """Convert sample (JSON-ready) values to the column types, for inserting them directly."""
    from robaccia.fields import describe

    fields = {f.name: f for f in describe(table)}
    return {k: fields[k].convert(v) if k in fields else v for k, v in values.items()}
