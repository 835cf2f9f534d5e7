"""CSRF protection: refuse unsafe requests another site could have made.

A form sends this browser's token (:func:`csrf_token`, or a template's
``csrf_token``) with it; a JSON request needs none::

    >>> from robaccia.testing import call
    >>> def app(environ, start_response):
    ...     start_response('200 OK', [('Content-Type', 'text/plain')])
    ...     return [b'changed']
    >>> guarded = CSRFProtection(app, 's' * 32)
    >>> cookie, token = CSRFProtection.pair('s' * 32)
    >>> browser = {'Cookie': f'robaccia_csrf={cookie}'}
    >>> call(guarded, 'POST', '/things/', {'name': 'x', '_csrf': token}, headers=browser)[2]
    b'changed'
    >>> call(guarded, 'POST', '/things/', {'name': 'x', '_csrf': 'forged'}, headers=browser)[0]
    '403 Forbidden'
    >>> call(guarded, 'POST', '/things/', json={'name': 'x'}, headers={'Origin': 'https://evil.example'})[0]
    '403 Forbidden'
"""

from __future__ import annotations

import hmac
import secrets
from typing import TYPE_CHECKING, Any

from robaccia.errors import Forbidden
from robaccia.middleware.headers import _CookieFlags
from robaccia.middleware.steps import Step
from robaccia.parsers import FORM, JSON, MULTIPART, media_type
from robaccia.request import Request
from robaccia.signing import Signer

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication, WSGIEnvironment

    from robaccia.project import Project

__all__ = ["CSRFProtection", "csrf_token"]


def csrf_token(environ: WSGIEnvironment) -> str:
    """Return this browser's CSRF token ("" without CSRF protection)."""
    return Request.of(environ).csrf_token


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
