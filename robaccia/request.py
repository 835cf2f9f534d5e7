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
take the request with ``Request.of(environ)`` when they need it. The URL
builders and the check every URL robaccia emits passes are in
:mod:`robaccia.urls`; the Cookie header is read by :mod:`robaccia.cookies`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from webob.request import BaseRequest

from robaccia.cookies import _ATTRIBUTES, _SIMPLE_COOKIES  # noqa: F401 (NOTE: moved, importable here as before)
from robaccia.cookies import parse_cookies as _parse_cookies
from robaccia.errors import BadRequest
from robaccia.parsers import parse
from robaccia.urls import _PLAIN_KEY, _PLAIN_PATH, _ROOT, _SITE_PATH, UnsafeURLError, URLMethods, site_path  # noqa: F401
from robaccia.urls import safe_root as safe_root  # NOTE: importable from here, as before

if TYPE_CHECKING:
    from wsgiref.types import WSGIEnvironment

    from robaccia.project import Project

__all__ = ["FormToken", "Request", "UnsafeURLError", "flash", "site_path"]

# PERF: the request path imports nothing inside functions: in CPython 3.11 each
# "from module import name" run there looks for the module's __path__ and
# formats the AttributeError it does not find (a few thousand instructions).

SendHook = Callable[["Request", list[tuple[str, str]]], None]
#: Response header names, as apps usually spell them, that no layer replaces.
_USUAL = frozenset({"Content-Type", "Content-Length", "ETag", "Location", "Set-Cookie", "Link",
                    "Cache-Control", "Vary", "Allow", "Retry-After", "Last-Modified", "Date"})
#: Header names, as usually spelled, that are no spelling of Cache-Control.
_NOT_CACHE_CONTROL = (_USUAL - {"Cache-Control"}) | {
    "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy", "Content-Security-Policy",
    "Strict-Transport-Security"}


class FormToken:
    """This browser's form token, minted when a page first shows it.

    A page without a form (the index, a list, a member page) then starts no
    CSRF cookie and stays shareable: no ``Set-Cookie``, no ``Cache-Control:
    private``. Templates show it as text (both engines call ``__html__`` or
    ``str``), and it compares equal to the token's text.
    """

    __slots__ = ("_request", "_value")

    def __init__(self, request: Request) -> None:
        self._request = request
        self._value: str | None = None

    def __str__(self) -> str:
        if self._value is None:
            self._value = self._request.csrf_token
        return self._value

    def __html__(self) -> str:
        return str(self)  # NOTE: a MAC in hex, nothing to escape

    def __eq__(self, other: object) -> bool:
        return str(self) == (str(other) if isinstance(other, FormToken) else other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __repr__(self) -> str:
        return f"<FormToken {self._value or '(not minted yet)'}>"


class Request(URLMethods, BaseRequest):
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
            "csrf_token": FormToken(self) if self.csrf is not None else "",
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


def flash(environ: WSGIEnvironment, message: str) -> None:
    """Queue a message for the next page the browser shows."""
    Request.of(environ).flash(message)
