"""The request: WebOb's, plus what robaccia's layers know about it.

One :class:`Request` per request, kept in ``environ['robaccia.request']``;
:meth:`Request.of` finds it (or makes it) from any layer that has the
environ. (A project takes it out of the environ once its answer is whole:
then no layer needs it, and the two are no reference cycle.) WebOb gives
the HTTP side (cookies, ``Accept``, conditional headers); robaccia adds the
routing (``view``, ``id``, ``noun``, ``handler``), the body
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
from urllib.parse import parse_qsl, quote

from webob.request import BaseRequest

from robaccia.errors import BadRequest, RobacciaError
from robaccia.parsers import parse

if TYPE_CHECKING:
    from wsgiref.types import WSGIEnvironment

    from robaccia.project import Project

__all__ = ["Request", "UnsafeURLError", "site_path"]

# PERF: the request path imports nothing inside functions: in CPython 3.11 each
# "from module import name" run there looks for the module's __path__ and
# formats the AttributeError it does not find (a few thousand instructions).

#: What a path robaccia emits may hold: RFC 3986 path characters and "%".
_SITE_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*(?:\?[^\s#\\]*)?\Z")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9._~/-]*\Z").match
_PLAIN_KEY = re.compile(r"[A-Za-z0-9._~-]+\Z").match
_ROOT = re.compile(r"(?:/[A-Za-z0-9\-._~!$&'()*+,;=:@%]+)*\Z")

SendHook = Callable[["Request", list[tuple[str, str]]], None]
#: Response header names, as apps usually spell them, that no layer replaces.
_USUAL = frozenset({"Content-Type", "Content-Length", "ETag", "Location", "Set-Cookie", "Link",
                    "Cache-Control", "Vary", "Allow", "Retry-After", "Last-Modified", "Date"})
#: Header names, as usually spelled, that are no spelling of Cache-Control.
_NOT_CACHE_CONTROL = (_USUAL - {"Cache-Control"}) | {
    "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy", "Content-Security-Policy",
    "Strict-Transport-Security"}


#: Names WebOb's parser drops, in any case: a cookie's attributes, never a cookie.
_ATTRIBUTES = frozenset({"path", "comment", "domain", "max-age", "expires", "secure", "httponly", "samesite"})
_SIMPLE_COOKIES = re.compile(r"(?:[A-Za-z0-9_.-]+=[A-Za-z0-9!#$%&'*+\-.^_`|~:/?@=]*(?:; ?(?=.)|\Z))+\Z").match


def _parse_cookies(header: str | None) -> dict[str, str]:
    """The cookies of a Cookie header, by name (the first of a repeated name).

    WebOb's parser reads them (quoted values, escapes), each value decoded on
    its own: one that is not UTF-8 is left out instead of spoiling the rest.
    PERF: a header of only plain ``name=value`` pairs, the usual one, is split
    directly (what WebOb's parser gives for it).
    """
    jar: dict[str, str] = {}
    if not header:
        return jar
    if _SIMPLE_COOKIES(header):
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name not in jar and name.lower() not in _ATTRIBUTES:
                jar[name] = value
        return jar
    # NOTE: public in WebOb (its own cookie parser), absent from its type stubs
    from webob.cookies import parse_cookie  # type: ignore[attr-defined]

    if not header.isascii():  # a WSGI header is latin-1; anything past that is noise
        header = header.encode("latin-1", "replace").decode("latin-1")
    for key, value in parse_cookie(header):
        try:
            jar.setdefault(key.decode("ascii"), value.decode("utf-8"))
        except UnicodeError:
            continue
    return jar


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

    #: The messages this request flashed (for the next page).
    flash_out: tuple[str, ...] | list[str] = ()
    _send_hooks: tuple[SendHook, ...] | list[SendHook] = ()
    _headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = ()
    #: Headers every response gets, replacing the app's own of these names
    #: (the security headers); see :meth:`always_send`.
    _always: list[tuple[str, str]] = []
    _always_names: frozenset[str] = frozenset()
    _values: dict[str, Any] | None = None
    _is_form = False
    _script_root: str | None = None

    def __init__(self, environ: WSGIEnvironment) -> None:
        # PERF: WebOb's checks (charset, keywords) are for hand-built requests,
        # and the lists above are made only by the requests that use them.
        self.environ = environ
        environ["robaccia.request"] = self

    @classmethod
    def of(cls, environ: WSGIEnvironment) -> Request:
        """Return the request of this environ, making it on first use."""
        req = environ.get("robaccia.request")
        if req is None:
            req = cls(environ)
        return req

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
            try:
                cached = dict(parse_qsl(self.environ.get("QUERY_STRING", ""), keep_blank_values=True,
                                        max_num_fields=max_fields, errors="strict"))
            except UnicodeError:
                raise BadRequest("The query string is not valid UTF-8.") from None
            except ValueError:
                raise BadRequest("Too many query parameters.") from None
            self.__dict__["_query"] = cached
        return cached

    # --- the body -----------------------------------------------------------------

    def read_values(self, default: Any = None, limits: Any = None) -> dict[str, Any]:
        """Parse the body once (by its Content-Type; ``default`` parses one sent without)."""
        if self._values is None:
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

        The header is parsed once (by WebOb's parser), each cookie decoded on
        its own: WebOb's ``cookies`` decodes them all at once and fails on the
        first that is not UTF-8, and one hostile cookie must not hide the others.
        """
        jar = self.__dict__.get("_jar")
        if jar is None:
            jar = self.__dict__["_jar"] = _parse_cookies(self.environ.get("HTTP_COOKIE"))
        return jar.get(name)

    # --- what the response carries --------------------------------------------------

    def add_header(self, name: str, value: str) -> None:
        """Send a header with whatever response this request gets."""
        if not self._headers:
            self._headers = []
        self._headers.append((name, value))  # type: ignore[union-attr]

    def always_send(self, headers: list[tuple[str, str]], names: frozenset[str]) -> None:
        """Send these headers with the response, instead of any the app set by these (lowercase) names.

        PERF: the security headers go on every response; a list kept aside is
        cheaper than a hook on every request.
        """
        self._always = headers
        self._always_names = names

    def before_send(self, hook: SendHook) -> None:
        """Call ``hook(request, headers)`` just before the response starts (once per hook)."""
        hooks = self._send_hooks
        if not hooks:
            self._send_hooks = [hook]
        elif hook not in hooks:
            hooks.append(hook)  # type: ignore[union-attr]

    def hook(self, start_response: Any) -> Any:
        """Wrap ``start_response`` so the response carries this request's headers.

        The first robaccia layer a request meets does this (the project, or a
        middleware used on its own); later layers see ``hooked`` and do not.
        """
        self.hooked = True
        self._start_response = start_response
        return self.respond

    def respond(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        """The start_response :meth:`hook` gives: what the layers add, then the server's.

        The app's headers are kept (in a new list) with this request's
        headers after them: those sent always (replacing the app's own of
        those names), those added, and what the send hooks add.
        """
        self.started = True
        always = self._always
        if always:
            names = self._always_names
            for name, _ in headers:
                # PERF: the usual names are known not to clash, without lower().
                if name not in _USUAL and name.lower() in names:
                    headers = [h for h in headers if h[0].lower() not in names]
                    break
            out = headers + always
        else:
            out = list(headers)
        if self._headers:
            out += self._headers
        for hook in self._send_hooks:
            hook(self, out)
        if self.personal:
            for name, _ in out:
                if name in _NOT_CACHE_CONTROL:
                    continue  # PERF: the usual names, without lower()
                if name.lower() == "cache-control":
                    break
            else:
                out.append(("Cache-Control", "private, no-store"))
                out.append(("Vary", "Cookie"))
        return self._start_response(status, out, exc_info)

    # --- flash messages and the form token ---------------------------------------------

    def flash(self, message: str) -> None:
        """Queue a message for the next page this browser shows."""
        if not self.flash_out:
            self.flash_out = []
            if self.flash_store is not None:
                self.before_send(self.flash_store.send)
        self.flash_out.append(message)  # type: ignore[union-attr]

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
            "home_url": self.script_root + "/",  # a checked root (see the project) and a slash
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
        root = self._script_root
        if root is None:
            routes = self.environ.get("robaccia.routes")
            root = routes[1] if routes is not None else ""
        return root

    @script_root.setter
    def script_root(self, value: str) -> None:
        self._script_root = value

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
            names = route.template._names
            current = {k: v for k, v in self.routing.items() if k in names}
            for key, value in values.items():
                if key in names:
                    current[key] = value
            return site_path(script + route.build(current))
        return site_path(self._fallback_url(values))

    def _fallback_url(self, values: dict[str, Any]) -> str:
        """A collection URL for a request no template routed (a bare collection)."""
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
        shape = self._shape()
        return shape[0] if shape else self.route_url(id=None, noun=None)

    def member_url(self, id: Any, noun: str | None = None) -> str:
        """The URL of a member of this collection (or of one of its nouns)."""
        if noun is None:
            # PERF: a list page asks for one per row. The route was expanded
            # once around a marker; a plain key that its range takes goes in
            # the marker's place (what expanding with it would give).
            shape = self._shape()
            if shape:
                text = id if type(id) is str else str(id)
                if _PLAIN_KEY(text) and shape[3](text) is not None:
                    return shape[1] + text + shape[2]
        return self.route_url(id=str(id), noun=noun)

    def _shape(self) -> tuple[str, str, str, Any] | None:
        """(collection URL, before the id, after the id, id check) of this request's
        collection, or None when its route cannot be built that way.

        Kept on the route, per SCRIPT_NAME and the route's other values (the
        view), a bounded number: they are the same for every request to a
        collection.
        """
        known = self.__dict__
        if "_url_shape" in known:
            kept: tuple[str, str, str, Any] | None = known["_url_shape"]
            return kept
        shape: tuple[str, str, str, Any] | None = None
        matched = self.environ.get("robaccia.route")
        if matched is not None and matched[0].template is not None:
            route, script = matched
            # NOTE: a name routing lacks is None to it, as to expansion
            key = (script, *map(self.routing.get, route.others))
            shapes = route.shapes
            shape = shapes.get(key)
            if shape is None:
                shape = self._new_shape(route)
                if len(shapes) >= 256:
                    shapes.clear()
                shapes[key] = shape
        self.__dict__["_url_shape"] = shape
        return shape

    def _new_shape(self, route: Any) -> tuple[str, str, str, Any] | None:
        check = route.template.checker("id")
        if check is None or "noun" in route.template._names and route.template.checker("noun") is None:
            return None
        marker = next((m for m in ("Rx0bacc1a", "9081726354") if check(m) is not None), None)
        if marker is None:
            return None
        collection = self.route_url(id=None, noun=None)
        before, found, after = self.route_url(id=marker, noun=None).rpartition(marker)
        return (collection, before, after, check) if found and marker not in before else None

    def static_url(self, path: str) -> str:
        """The URL of a file below the project's static/ folder."""
        if not _PLAIN_PATH(path):
            path = quote(path, safe="/-._~")
        return site_path(self.script_root + "/static/" + path)
