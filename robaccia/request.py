"""The request: WebOb's, plus what robaccia's layers know about it.

One :class:`Request` per request, kept in ``environ['robaccia.request']``;
:meth:`Request.of` finds it (or makes it) from any layer that has the
environ. WebOb gives the HTTP side (cookies, ``Accept``, conditional headers);
robaccia adds the routing (``view``, ``id``, ``noun``, ``handler``), the body
as values, flash messages, URL building and headers that every response must
carry::

    >>> from robaccia.request import Request
    >>> from robaccia.testing import make_environ
    >>> environ = make_environ('GET', '/employees/7', query='sort=name',
    ...                        **{'wsgiorg.routing_args': ((), {'view': 'employees', 'id': '7'})})
    >>> req = Request.of(environ)
    >>> req.view, req.id, req.GET['sort']
    ('employees', '7', 'name')
    >>> Request.of(environ) is req
    True
    >>> req.collection_url, req.member_url(8)
    ('/employees/', '/employees/8')

Handlers keep the Gloves signature ``(self, environ, start_response)`` and
take the request with ``Request.of(environ)`` when they need it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from webob.request import BaseRequest

from robaccia.errors import RobacciaError

if TYPE_CHECKING:
    from wsgiref.types import WSGIEnvironment

    from robaccia.project import Project

__all__ = ["Request", "UnsafeURLError", "site_path"]

#: What a path robaccia emits may hold: RFC 3986 path characters and "%".
_SITE_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*(?:\?[^\s#\\]*)?\Z")
_ROOT = re.compile(r"(?:/[A-Za-z0-9\-._~!$&'()*+,;=:@%]+)*\Z")

SendHook = Callable[["Request", list[tuple[str, str]]], None]


class UnsafeURLError(RobacciaError, ValueError):
    """A URL robaccia was about to emit is not a plain path on this site."""


def site_path(url: str) -> str:
    """Return ``url`` if it is a path on this site; refuse anything else.

    Every URL robaccia emits (redirects, ``Location``, ``Link``, page links)
    passes here: a scheme-relative ``//host``, a backslash, a control
    character or a space can never leave the server.

    >>> site_path('/employees/?after=x')
    '/employees/?after=x'
    >>> site_path('//evil.example/employees/')
    Traceback (most recent call last):
    robaccia.request.UnsafeURLError: '//evil.example/employees/' is not a path on this site
    """
    if not _SITE_PATH.match(url):
        raise UnsafeURLError(f"{url[:200]!r} is not a path on this site")
    return url


def safe_root(script_name: str) -> bool:
    """Tell whether a SCRIPT_NAME can prefix the URLs robaccia emits."""
    return bool(_ROOT.match(script_name))


class Request(BaseRequest):
    """A request, shared by every layer it passes through (one per request)."""

    #: The project serving the request (None for a bare collection).
    project: Project | None = None
    #: The representation of the collection answering (``"html"``, ``"json"``).
    representation: str | None = None
    #: The collection handler the request resolved to.
    handler: str | None = None
    #: The CSRF protection in use (it mints and checks tokens), if any.
    csrf: Any = None
    #: The flash-message store in use (it reads and writes the cookie), if any.
    flash_store: Any = None
    #: True once the response holds per-visitor data (a CSRF token, flashes).
    personal: bool = False
    #: True once start_response was called through the project.
    started: bool = False
    #: True once a layer wrapped start_response with :meth:`hook`.
    hooked: bool = False

    def __init__(self, environ: WSGIEnvironment) -> None:
        # PERF: WebOb's checks (charset, keywords) are for hand-built requests.
        self.__dict__["environ"] = environ
        environ["robaccia.request"] = self
        self.flash_out: list[str] = []
        self._send_hooks: list[SendHook] = []
        self._headers: list[tuple[str, str]] = []
        self._values: dict[str, Any] | None = None
        self._is_form = False

    @classmethod
    def of(cls, environ: WSGIEnvironment) -> Request:
        """Return the request of this environ, making it on first use."""
        req = environ.get("robaccia.request")
        if req is None:
            req = cls(environ)
        return req  # type: ignore[no-any-return]

    # --- routing ------------------------------------------------------------------

    @property
    def routing(self) -> dict[str, Any]:
        """The named routing arguments (``wsgiorg.routing_args``, else ``selector.vars``)."""
        args = self.environ.get("wsgiorg.routing_args")
        if args is not None:
            return args[1]  # type: ignore[no-any-return]
        return self.environ.get("selector.vars") or {}

    @property
    def view(self) -> str | None:
        """The ``view`` routing argument: the collection's name."""
        return self.routing.get("view") or None

    @property
    def id(self) -> str | None:
        """The member id from the URL, or None on the collection."""
        return self.routing.get("id") or None

    @property
    def noun(self) -> str | None:
        """The ``;noun`` from the URL, or None."""
        return self.routing.get("noun") or None

    @property
    def debug(self) -> bool:
        """True when the project shows debug pages (``run``)."""
        return bool(self.project is not None and self.project.debug)

    def query_params(self, max_fields: int = 100) -> dict[str, str]:
        """The query string's fields (the last of a repeated one wins); 400 if unreadable."""
        cached = self.__dict__.get("_query")
        if cached is None:
            from urllib.parse import parse_qsl

            from robaccia.errors import BadRequest

            try:
                cached = dict(parse_qsl(self.environ.get("QUERY_STRING", ""), keep_blank_values=True,
                                        max_num_fields=max_fields, errors="strict"))
            except UnicodeError:
                raise BadRequest("The query string is not valid UTF-8.") from None
            except ValueError:
                raise BadRequest("Too many query parameters.") from None
            self.__dict__["_query"] = cached
        return cached  # type: ignore[no-any-return]

    # --- the body -----------------------------------------------------------------

    def read_values(self, default: Any = None, limits: Any = None) -> dict[str, Any]:
        """Parse the body once (by its Content-Type; ``default`` parses one sent without)."""
        if self._values is None:
            from robaccia.parsers import parse

            if limits is None:
                limits = self.project.limits if self.project is not None else None
            self._values, self._is_form = parse(self.environ, default, limits)
        return self._values

    @property
    def values(self) -> dict[str, Any]:
        """The body's fields (a form or a JSON object), parsed once."""
        return self.read_values()

    @property
    def is_form(self) -> bool:
        """True when the body was an HTML form (urlencoded or multipart)."""
        self.read_values()
        return self._is_form

    def cookie(self, name: str) -> str | None:
        """Return a cookie's value; a cookie that cannot be read is absent.

        WebOb decodes every cookie of the header at once and fails on the
        first that is not UTF-8; one hostile cookie must not hide the others.
        """
        try:
            return self.cookies.get(name)  # type: ignore[no-any-return]
        except (UnicodeError, ValueError):
            from webob.cookies import parse_cookie

            for key, value in parse_cookie(self.environ.get("HTTP_COOKIE", "")):
                if key == name.encode("ascii"):
                    try:
                        return value.decode("utf-8")  # type: ignore[no-any-return]
                    except UnicodeError:
                        return None
            return None

    # --- what the response carries --------------------------------------------------

    def add_header(self, name: str, value: str) -> None:
        """Send a header with whatever response this request gets."""
        self._headers.append((name, value))

    def before_send(self, hook: SendHook) -> None:
        """Call ``hook(request, headers)`` just before the response starts."""
        self._send_hooks.append(hook)

    def hook(self, start_response: Any) -> Any:
        """Wrap ``start_response`` so the response carries this request's headers.

        The first robaccia layer a request meets does this (the project, or a
        middleware used on its own); later layers see ``hooked`` and do not.
        """
        self.hooked = True

        def respond(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, self.finish_headers(headers), exc_info)

        return respond

    def finish_headers(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Return the response headers with what the layers added (a new list)."""
        self.started = True
        out = headers + self._headers
        for hook in self._send_hooks:
            hook(self, out)
        if self.personal and not any(k.lower() == "cache-control" for k, _ in out):
            out.append(("Cache-Control", "private, no-store"))
            out.append(("Vary", "Cookie"))
        return out

    # --- flash messages and the form token ---------------------------------------------

    def flash(self, message: str) -> None:
        """Queue a message for the next page this browser shows."""
        self.flash_out.append(message)

    @property
    def flashes(self) -> list[str]:
        """The messages queued for this page (read once)."""
        if self.flash_store is None:
            return []
        messages = self.flash_store.read(self)
        if messages:
            self.personal = True
        return messages  # type: ignore[no-any-return]

    @property
    def csrf_token(self) -> str:
        """This browser's form token ("" without CSRF protection)."""
        if self.csrf is None:
            return ""
        self.personal = True
        return self.csrf.token_for(self)  # type: ignore[no-any-return]

    # --- pages ------------------------------------------------------------------------

    @property
    def templates(self) -> Any:
        """The templates pages are rendered with (the project's, unless set)."""
        templates = self.__dict__.get("_templates")
        if templates is None and self.project is not None:
            templates = self.project.templates
        return templates

    @templates.setter
    def templates(self, value: Any) -> None:
        self.__dict__["_templates"] = value

    def template_context(self) -> dict[str, Any]:
        """The variables every HTML page gets: the form token, flashes, URL builders, chrome."""
        context: dict[str, Any] = {
            "csrf_token": self.csrf_token,
            "csrf_field": getattr(self.csrf, "FIELD", "_csrf"),
            "flashes": self.flashes,
            "url_for": self.url_for,
            "static_url": self.static_url,
            "home_url": site_path(self.script_root + "/"),
            "request": self,
        }
        if self.project is not None:
            context.update(self.project.template_context(self))
        else:
            context.update(project="", nav=[])
        return context

    # --- URLs -----------------------------------------------------------------------

    @property
    def script_root(self) -> str:
        """The path the application is mounted at (SCRIPT_NAME when the project got it)."""
        root = self.__dict__.get("_script_root")
        if root is None:
            routes = self.environ.get("robaccia.routes")
            root = routes[1] if routes is not None else ""
        return root  # type: ignore[no-any-return]

    @script_root.setter
    def script_root(self, value: str) -> None:
        self.__dict__["_script_root"] = value

    def url_for(self, name: str, **values: Any) -> str:
        """Return the path of the route named ``name`` (with SCRIPT_NAME).

        :raises RouteBuildError: no such route, or the values do not fit it.
        """
        routes = self.environ.get("robaccia.routes")
        if routes is None:
            from robaccia.uritemplate import RouteBuildError

            raise RouteBuildError(f"No route is named {name!r} (the request was not routed)")
        dispatcher, root = routes
        return site_path(root + dispatcher.url_for(name, **values))

    def route_url(self, **values: Any) -> str:
        """Return the path of the route that matched, with some values changed.

        ``route_url(id=None, noun=None)`` is this collection's URL,
        ``route_url(id=7)`` a member's.
        """
        matched = self.environ.get("robaccia.route")
        if matched is not None and matched[0].template is not None:
            route, script = matched
            current = {k: v for k, v in self.routing.items() if k in route.template.variables}
            current.update((k, v) for k, v in values.items() if k in route.template.variables)
            return site_path(script + route.build(current))
        return site_path(self._fallback_url(values))

    def _fallback_url(self, values: dict[str, Any]) -> str:
        """A collection URL for a request no template routed (a bare collection)."""
        from urllib.parse import quote

        view = self.view
        base = (self.script_root + f"/{view}/") if view else self.script_root + "/"
        if values.get("id") is not None:
            base += quote(str(values["id"]), safe="-._~")
        if values.get("noun"):
            base += ";" + str(values["noun"])
        return base

    @property
    def collection_url(self) -> str:
        """The URL of the collection this request addressed."""
        return self.route_url(id=None, noun=None)

    def member_url(self, id: Any, noun: str | None = None) -> str:
        """The URL of a member of this collection (or of one of its nouns)."""
        return self.route_url(id=str(id), noun=noun)

    def static_url(self, path: str) -> str:
        """The URL of a file below the project's static/ folder."""
        from urllib.parse import quote

        return site_path(self.script_root + "/static/" + quote(path, safe="/-._~"))
