"""The project's middlewares: small WSGI middlewares, one job each.

A project lists them in ``settings.MIDDLEWARE``, outermost first; the project
loader composes them around the routes (``run``, ``serve``, ``runtests`` and
the test client all load a project the same way, so a ``dispatcher.py`` never
has to). Without the setting, :data:`DEFAULT_MIDDLEWARE` applies:

=============================  ===================================================
:class:`ErrorPages`            an unhandled exception becomes a 500 page (a debug
                               page under ``run``), logged; never internals
:class:`AllowedHosts`          400 for a Host the site is not (``ALLOWED_HOSTS``)
:class:`SecurityHeaders`       X-Frame-Options, X-Content-Type-Options,
                               Referrer-Policy and a Content-Security-Policy on
                               every response, error pages included; with
                               ``HTTPS`` on, Strict-Transport-Security and a
                               redirect from ``http://``
:class:`FlashMessages`         ``Request.flash()`` messages, kept in a signed cookie
:class:`CSRFProtection`        refuses unsafe requests from other sites and POSTs
                               without this browser's form token
=============================  ===================================================

Each takes the app it wraps and its options (``CSRFProtection(app, secret)``),
and ``from_project(app, project)`` reads them from the project::

    >>> from robaccia.testing import call
    >>> def app(environ, start_response):
    ...     start_response('200 OK', [('Content-Type', 'text/plain')])
    ...     return [b'changed']
    >>> guarded = CSRFProtection(app, 's' * 32)
    >>> call(guarded, 'POST', '/things/', {'name': 'x'}, headers={'Cookie': 'a=b'})[0]
    '403 Forbidden'
    >>> call(guarded, 'POST', '/things/', json={'name': 'x'})[2]
    b'changed'

They cooperate through the :class:`~robaccia.request.Request`: the CSRF
protection mints the form token a page asks for, the flash store reads and
writes its cookie, and the headers they add are sent with whatever response
the request gets.
"""

from __future__ import annotations

import hmac
import importlib
import logging
import re
import secrets
import sys
import traceback
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from robaccia.errors import BadRequest, Forbidden, HTTPException, InternalServerError, PermanentRedirect
from robaccia.parsers import FORM, JSON, MULTIPART, media_type
from robaccia.request import Request
from robaccia.signing import Signer

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from robaccia.project import Project

__all__ = [
    "AllowedHosts",
    "CSRFProtection",
    "Step",
    "Steps",
    "DEFAULT_MIDDLEWARE",
    "ErrorPages",
    "FlashMessages",
    "SECURITY_HEADERS",
    "SecurityHeaders",
    "compose",
    "csrf_token",
]

logger = logging.getLogger(__name__)

#: The middlewares a project gets when its settings name none, outermost first.
DEFAULT_MIDDLEWARE = (
    "robaccia.middleware.ErrorPages",
    "robaccia.middleware.AllowedHosts",
    "robaccia.middleware.SecurityHeaders",
    "robaccia.middleware.FlashMessages",
    "robaccia.middleware.CSRFProtection",
)

SECURITY_HEADERS = (
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    (
        "Content-Security-Policy",
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'; "
        "object-src 'none'",
    ),
)


def cookie_flags(secure: bool) -> str:
    """The attributes of every cookie robaccia sets."""
    return "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")


class _CookieFlags:
    """A cookie's attributes for a request: Secure when the site or the request is HTTPS."""

    def __init__(self, secure: bool) -> None:
        self.plain = cookie_flags(secure)
        self.secure = cookie_flags(True)

    def __call__(self, request: Request) -> str:
        # NOTE: wsgi.url_scheme is https for a TLS request, or one a trusted proxy
        # says came over TLS (X-Forwarded-Proto, honoured by serve from TRUSTED_PROXY only).
        return self.secure if request.environ.get("wsgi.url_scheme") == "https" else self.plain


def csrf_token(environ: WSGIEnvironment) -> str:
    """Return this browser's CSRF token ("" without CSRF protection)."""
    return Request.of(environ).csrf_token


# --- the steps -------------------------------------------------------------------------------


class Step:
    """A middleware whose work is a step on the request before the app runs.

    A step says what it sets on every request (:meth:`defaults`: attributes of
    the :class:`~robaccia.request.Request`) and what it checks on unsafe
    requests (:meth:`check`). Used alone it is an ordinary WSGI middleware;
    composed in a project, steps next to each other are one layer
    (:class:`Steps`) that sets all their attributes at once and runs their
    checks in order: the same work, with fewer calls on every request.
    """

    app: WSGIApplication
    #: True when :meth:`check` has work to do on unsafe methods.
    checks_unsafe = False
    #: True when :meth:`check` has work to do on every request.
    checks_every = False

    def defaults(self) -> dict[str, Any]:
        """The request attributes this step sets on every request."""
        return {}

    def check(self, request: Request) -> None:
        """Check a request (unsafe ones, or all: see the flags); raise an HTTPException to refuse it."""

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return Steps(self.app, [self])(environ, start_response)


class Steps:
    """Steps as one WSGI layer: their attributes at once, their checks in order, then the app.

    :param guard: the :class:`ErrorPages` that wrapped these steps, if it did:
        then this layer answers errors for it (the same pages, one call fewer).
    """

    def __init__(self, app: WSGIApplication, steps: Sequence[Step], guard: ErrorPages | None = None) -> None:
        self.app = app
        self.steps = tuple(steps)
        self.guard = guard
        self.defaults: dict[str, Any] = {}
        for step in self.steps:
            self.defaults.update(step.defaults())
        self.every = tuple(step.check for step in self.steps if step.checks_every)
        self.checks = tuple(step.check for step in self.steps if step.checks_unsafe)

    def enter(self, request: Request) -> None:
        """Set the steps' attributes on the request and run their checks."""
        request.__dict__.update(self.defaults)
        for check in self.every:
            check(request)
        if self.checks and request.environ.get("REQUEST_METHOD") in _CHECKED_METHODS:
            for check in self.checks:
                check(request)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = environ.get("robaccia.request") or Request(environ)
        if not request.hooked:
            start_response = request.hook(start_response)
        if self.guard is None:
            try:
                self.enter(request)
            except HTTPException as refused:
                return refused(environ, start_response)
            return self.app(environ, start_response)
        try:
            self.enter(request)
            return self.app(environ, start_response)
        except HTTPException as exc:
            return exc(environ, start_response)
        except Exception:
            return self.guard.error(environ, start_response, sys.exc_info())


_CHECKED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


# --- hosts ---------------------------------------------------------------------------------

#: The names a site answers to when ALLOWED_HOSTS names none (the development server's).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_HOST = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.?"
                   r"|\[[0-9a-f:.]+\]")


def request_host(environ: WSGIEnvironment) -> str | None:
    """The host a request names, lowercase, without its port; None if malformed or absent.

    The Host header; without one, SERVER_NAME, but only for HTTP/1.0 (HTTP/1.1
    requires the header, RFC 9112). A name longer than DNS allows is malformed.
    """
    host = environ.get("HTTP_HOST")
    if host is None:
        if environ.get("SERVER_PROTOCOL") != "HTTP/1.0":
            return None
        host = environ.get("SERVER_NAME") or ""
    host = host.lower()
    if host.startswith("["):
        name, bracket, port = host.partition("]")
        if not bracket:
            return None
        name += "]"
        if port and not port.startswith(":"):
            return None
        port = port[1:]
    else:
        name, _, port = host.partition(":")
    if port and (not port.isdigit() or not port.isascii() or len(port) > 5):
        return None
    if len(name) > 254 or not _HOST.fullmatch(name):
        return None
    return name.rstrip(".")


class AllowedHosts(Step):
    """Answer 400 to a request for a host this site is not (DNS rebinding, forged links).

    :param hosts: the names the site answers to: exact names, ``.example.com``
        for a domain and its subdomains, ``*`` for any (not advised). None or
        empty: the loopback names only, as the development server uses.
    """

    checks_every = True
    #: The verdicts kept, one per Host header value (see :meth:`check`).
    MAX_VERDICTS = 512

    def __init__(self, app: WSGIApplication, hosts: Sequence[str] | None = None) -> None:
        self.app = app
        names = [h.strip().lower().rstrip(".") for h in (hosts or LOOPBACK_HOSTS) if h.strip()]
        self.any = "*" in names
        self.exact = frozenset(n for n in names if not n.startswith("."))
        self.domains = tuple(n for n in names if n.startswith("."))
        self._verdicts: dict[str | None, bool] = {}

    @classmethod
    def from_project(cls, app: WSGIApplication, project: Project) -> AllowedHosts:
        return cls(app, project.allowed_hosts)

    def allows(self, host: str | None) -> bool:
        """Tell whether a request naming ``host`` (as :func:`request_host` gives it) is served."""
        if host is None:
            return False
        if self.any or host in self.exact:
            return True
        return any(host.endswith(d) or host == d[1:] for d in self.domains)

    def check(self, request: Request) -> None:
        # PERF: a site sees a handful of Host values, and reading one (case, port,
        # the grammar of a name) costs more than the rest of the request's steps:
        # the verdict on a Host header is kept, by its exact value (on which alone
        # request_host depends when the header is there), for a bounded number.
        environ = request.environ
        host = environ.get("HTTP_HOST")
        verdict = self._verdicts.get(host)
        if verdict is None:
            verdict = self.allows(request_host(environ))
            if host is not None and len(host) <= 300:
                if len(self._verdicts) >= self.MAX_VERDICTS:
                    self._verdicts.clear()
                self._verdicts[host] = verdict
        if not verdict:
            raise BadRequest("This site does not answer to that host name (see ALLOWED_HOSTS).")


# --- CSRF ---------------------------------------------------------------------------------
_EXPIRED = ("The form has expired or was not sent from this site. "
            "Reload the page and try again.")
_API = ("Send Content-Type: application/json with this request (an API client needs no "
        "token), or submit the form from this site's pages.")


class CSRFProtection(Step):
    """Refuse unsafe requests that another site could have made.

    * an ``Origin`` naming another site, or ``Sec-Fetch-Site`` saying
      ``cross-site`` or ``same-site``, is 403 on any unsafe method;
    * a request with a body needs this browser's token (form field ``_csrf``
      or header ``X-CSRF-Token``), checked on the method as sent, before any
      ``_method`` override; unless the body is ``application/json``, which a
      browser cannot send to another site without a CORS preflight;
    * a request with no body and no cookies needs no token: it carries no
      credentials to abuse, and browsers cannot send PUT, PATCH or DELETE to
      another site without a preflight either.

    The token is an HMAC of a random seed kept in a signed cookie.
    """

    COOKIE = "robaccia_csrf"
    FIELD = "_csrf"

    def __init__(self, app: WSGIApplication, secret: str, *, secure_cookies: bool = False) -> None:
        self.app = app
        self.signer = Signer(secret, "csrf")
        self.flags = _CookieFlags(secure_cookies)

    @classmethod
    def from_project(cls, app: WSGIApplication, project: Project) -> CSRFProtection:
        return cls(app, project.secret(), secure_cookies=project.secure_cookies)

    checks_unsafe = True

    def defaults(self) -> dict[str, Any]:
        return {"csrf": self}

    @classmethod
    def pair(cls, secret: str) -> tuple[str, str]:
        """A fresh (cookie value, form token) pair, as a page gives a browser: for test clients."""
        signer = Signer(secret, "csrf")
        seed = secrets.token_urlsafe(24)
        return signer.sign(seed), signer.mac("token:" + seed)

    def token_for(self, request: Request) -> str:
        """Return this browser's form token, starting its cookie if needed."""
        seed = request.__dict__.get("_csrf_seed")
        if seed is None:
            seed = self.signer.unsign(request.cookie(self.COOKIE))
            if seed is None:
                seed = secrets.token_urlsafe(24)
                value = self.signer.sign(seed)
                request.add_header("Set-Cookie", f"{self.COOKIE}={value}{self.flags(request)}")
            request.__dict__["_csrf_seed"] = seed
        return self.signer.mac("token:" + seed)

    def check(self, request: Request) -> None:
        """Raise Forbidden unless the request could only come from this site."""
        environ = request.environ
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None:
            host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
            if origin.lower() != f"{environ.get('wsgi.url_scheme', 'http')}://{host}".lower():
                raise Forbidden("Requests from other sites are refused (Origin does not match).")
        if environ.get("HTTP_SEC_FETCH_SITE", "").lower() in ("cross-site", "same-site"):
            raise Forbidden("Requests from other sites are refused.")
        mtype = media_type(environ)
        if mtype == JSON:
            return
        bodiless = environ.get("CONTENT_LENGTH", "") in ("", "0") and "HTTP_TRANSFER_ENCODING" not in environ
        if bodiless and not environ.get("HTTP_COOKIE"):
            return
        sent = environ.get("HTTP_X_CSRF_TOKEN")
        if sent is None and mtype in (FORM, MULTIPART):
            sent = request.read_values().get(self.FIELD)
        seed = self.signer.unsign(request.cookie(self.COOKIE))
        if isinstance(sent, str) and seed is not None and hmac.compare_digest(
                sent.encode("utf-8", "replace"), self.signer.mac("token:" + seed).encode()):
            return
        raise Forbidden(_EXPIRED if _from_a_browser(environ) else _API)


def _from_a_browser(environ: WSGIEnvironment) -> bool:
    """Tell a browser's request (a page's form) from an API client's, to word the refusal."""
    if environ.get("HTTP_SEC_FETCH_MODE"):  # every current browser sends it
        return True
    return "text/html" in environ.get("HTTP_ACCEPT", "") and (
        bool(environ.get("HTTP_COOKIE")) or media_type(environ) in (FORM, MULTIPART))


# --- flash messages ---------------------------------------------------------------------------

_PLAIN_TEXT = re.compile(r"[A-Za-z0-9 ._-]*\Z").match


def _cookie_quote(message: str) -> str:
    """Percent-encode a message for a cookie value (PERF: plain sentences take a shortcut)."""
    if _PLAIN_TEXT(message):
        return message.replace(" ", "%20")
    return quote(message, safe="")


class FlashMessages(Step):
    """Keep ``Request.flash()`` messages for the next page, in a signed cookie."""

    COOKIE = "robaccia_flash"
    #: At most this many messages, each cut to MAX_LENGTH characters.
    MAX_MESSAGES = 10
    MAX_LENGTH = 500

    def __init__(self, app: WSGIApplication, secret: str, *, secure_cookies: bool = False) -> None:
        self.app = app
        self.signer = Signer(secret, "flash")
        self.flags = _CookieFlags(secure_cookies)

    @classmethod
    def from_project(cls, app: WSGIApplication, project: Project) -> FlashMessages:
        return cls(app, project.secret(), secure_cookies=project.secure_cookies)

    def defaults(self) -> dict[str, Any]:
        return {"flash_store": self}

    def read(self, request: Request) -> list[str]:
        """Return the messages this browser was sent, and clear them."""
        signed = request.cookie(self.COOKIE)
        if not signed:
            return []
        request.__dict__["_flash_read"] = True
        request.before_send(self.send)
        raw = self.signer.unsign(signed)
        if raw is None:
            return []
        return [unquote(m) for m in raw.split("&") if m][: self.MAX_MESSAGES]

    def send(self, request: Request, headers: list[tuple[str, str]]) -> None:
        """Set the cookie for the messages this request flashed, or clear the ones it read."""
        out = request.flash_out
        if out:
            if len(out) == 1:  # PERF: the usual one message, without a generator
                value = _cookie_quote(out[0][: self.MAX_LENGTH])
            else:
                value = "&".join(_cookie_quote(m[: self.MAX_LENGTH]) for m in out[-self.MAX_MESSAGES:])
            headers.append(("Set-Cookie", f"{self.COOKIE}={self.signer.sign(value)}{self.flags(request)}"))
            request.personal = True
        elif request.__dict__.get("_flash_read"):
            headers.append(("Set-Cookie", f"{self.COOKIE}=; Max-Age=0{self.flags(request)}"))


# --- headers and errors -----------------------------------------------------------------------


class SecurityHeaders(Step):
    """Send the security headers on every response (the app's own are replaced).

    :param https: the site is reached over HTTPS: a request that arrives over
        plain HTTP is redirected to ``https://`` (301; 308 for unsafe methods,
        which keep their method and body), and every response carries
        ``Strict-Transport-Security`` for ``hsts_seconds`` (0: none).
    """

    def __init__(self, app: WSGIApplication, headers: Sequence[tuple[str, str]] = SECURITY_HEADERS, *,
                 https: bool = False, hsts_seconds: int = 63072000,
                 hsts_subdomains: bool = True) -> None:
        self.app = app
        self.headers = list(headers)
        self.https = https
        if https and hsts_seconds > 0:
            self.headers.append(("Strict-Transport-Security", f"max-age={int(hsts_seconds)}" +
                                 ("; includeSubDomains" if hsts_subdomains else "")))
        self._names = frozenset(name.lower() for name, _ in self.headers)
        self.checks_every = https

    @classmethod
    def from_project(cls, app: WSGIApplication, project: Project) -> SecurityHeaders:
        return cls(app, https=project.https, hsts_seconds=int(project.setting("HSTS_SECONDS", 63072000)),
                   hsts_subdomains=bool(project.setting("HSTS_INCLUDE_SUBDOMAINS", True)))

    def defaults(self) -> dict[str, Any]:
        # what Request.always_send sets
        return {"_always": self.headers, "_always_names": self._names}

    def check(self, request: Request) -> None:
        environ = request.environ
        if environ.get("wsgi.url_scheme") == "https":
            return
        host = request_host(environ)
        if host is None:
            raise BadRequest("The Host header is not a host name.")
        path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), safe="/;=,~!$&'()*+:@%")
        path = "/" + path.lstrip("/")  # never //host: the redirect stays on this site
        query = quote(environ.get("QUERY_STRING", ""), safe="/;=,~!$&'()*+:@%?")
        name = f"[{host.strip('[]')}]" if ":" in host else host
        raise PermanentRedirect(f"https://{name}{path}" + (f"?{query}" if query else ""),
                                keep_method=environ.get("REQUEST_METHOD") not in ("GET", "HEAD"))


class ErrorPages:
    """Answer what the app raised: its HTTP error, or a 500 page for anything else.

    :param debug: show the debug page (the exception, the user's code, the
        traceback) instead of the plain 500 page. Only ``run`` turns it on.
    """

    def __init__(self, app: WSGIApplication, *, debug: bool = False) -> None:
        self.app = app
        self.debug = debug

    @classmethod
    def from_project(cls, app: WSGIApplication, project: Project) -> ErrorPages:
        return cls(app, debug=project.debug)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            return self.app(environ, start_response)
        except HTTPException as exc:
            return exc(environ, start_response)
        except Exception:
            return self.error(environ, start_response, sys.exc_info())

    def error(self, environ: WSGIEnvironment, start_response: StartResponse, exc_info: Any) -> Iterable[bytes]:
        """Log an unhandled exception and answer 500."""
        from robaccia.debug import describe, render_page
        from robaccia.util import loggable

        summary = describe(exc_info[1])
        # NOTE: an exception's message can carry request data: the traceback is
        # escaped like any request value, and indented, so no line of it can pass
        # for a log line of its own.
        trace = "".join(traceback.format_exception(*exc_info)).rstrip("\n")
        trace = "\n".join("    " + loggable(line, limit=10_000) for line in trace.split("\n"))
        logger.error("Unhandled error on %s %s%s\n%s", loggable(environ.get("REQUEST_METHOD", "")),
                     loggable(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")),
                     f": {loggable(summary)}" if summary else "", trace)
        if not self.debug:
            return InternalServerError()(
                environ, lambda status, headers, _=None: start_response(status, headers, exc_info)
            )
        page = render_page(environ, exc_info)
        start_response("500 Internal Server Error", [("Content-Type", "text/html; charset=utf-8"),
                                                     ("Content-Length", str(len(page)))], exc_info)
        return [page]


# --- composing -------------------------------------------------------------------------------


def _load(spec: Any) -> Any:
    if not isinstance(spec, str):
        return spec
    module, _, name = spec.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        from robaccia.errors import RobacciaError

        raise RobacciaError(f"MIDDLEWARE names {spec!r}, which cannot be imported: {exc}") from exc


def compose(app: WSGIApplication, middleware: Sequence[Any], project: Project) -> WSGIApplication:
    """Wrap ``app`` in the middlewares (dotted names or classes), the first outermost.

    A middleware with ``from_project(app, project)`` is built with it; any
    other is called as ``middleware(app)``. Steps next to each other become
    one :class:`Steps` layer (PERF: fewer calls on every request).
    """
    run: list[Step] = []
    for spec in reversed(list(middleware)):
        factory = _load(spec)
        make = getattr(factory, "from_project", None)
        if isinstance(factory, type) and issubclass(factory, Step):
            step = make(None, project) if make is not None else factory(None)  # type: ignore[call-arg]
            run.insert(0, step)
            continue
        if run:
            app, run = Steps(app, run), []
        app = make(app, project) if make is not None else factory(app)
        if isinstance(app, ErrorPages) and isinstance(app.app, Steps) and app.app.guard is None:
            app.app.guard = app  # error pages around steps: one layer does both
            app = app.app
    if run:
        app = Steps(app, run)
    return app
