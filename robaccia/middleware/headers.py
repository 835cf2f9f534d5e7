"""Security headers on every response, the HTTPS redirect, and the attributes of cookies.

    >>> from robaccia.testing import call
    >>> def app(environ, start_response):
    ...     start_response('200 OK', [('Content-Type', 'text/plain'), ('X-Frame-Options', 'ALLOW')])
    ...     return [b'page']
    >>> dict(call(SecurityHeaders(app))[1])['X-Frame-Options']
    'DENY'
    >>> status, headers, _ = call(SecurityHeaders(app, https=True), 'GET', '/a b', headers={'Host': 'example.com'})
    >>> status, dict(headers)['Location']
    ('301 Moved Permanently', 'https://example.com/a%20b')
    >>> cookie_flags(secure=True)
    '; Path=/; HttpOnly; SameSite=Lax; Secure'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from robaccia.errors import BadRequest, PermanentRedirect
from robaccia.middleware.hosts import request_host
from robaccia.middleware.steps import Step
from robaccia.request import Request

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

    from robaccia.project import Project

__all__ = ["SECURITY_HEADERS", "SecurityHeaders", "cookie_flags"]

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
