"""The project middleware: CSRF, flash messages, security headers, error pages.

``ProjectMiddleware(app, secret=...)`` wraps a project's dispatcher (the
generated dispatcher.py does this). Per request it:

* rejects unsafe requests (POST, PUT, PATCH, DELETE) from other sites: an
  ``Origin`` naming another site or ``Sec-Fetch-Site: cross-site`` is 403;
* requires a valid CSRF token on them (form field ``_csrf`` or header
  ``X-CSRF-Token``), checked on the method as sent, before any ``_method``
  override; bodies sent as ``application/json`` need none, since a browser
  cannot send them cross-site without CORS;
* gives templates ``csrf_token`` and ``flashes`` and keeps both in signed,
  HttpOnly, SameSite=Lax cookies;
* adds X-Frame-Options, X-Content-Type-Options, Referrer-Policy and a
  Content-Security-Policy to every response, error pages included;
* turns an unhandled exception into a 500 page (a traceback page when
  ``debug``; never any internals otherwise) and logs it.

    >>> from robaccia.testing import call
    >>> def app(environ, start_response):
    ...     start_response('200 OK', [('Content-Type', 'text/plain')])
    ...     return [b'changed']
    >>> guarded = ProjectMiddleware(app, secret='s' * 32)
    >>> call(guarded, 'POST', '/things/', {'name': 'x'})[0]
    '403 Forbidden'
    >>> call(guarded, 'POST', '/things/', json={'name': 'x'})[2]
    b'changed'
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import re
import secrets
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from robaccia.errors import Forbidden, HTTPException, InternalServerError
from robaccia.parsers import DEFAULT_LIMITS, FORM, JSON, MULTIPART, Limits, media_type, parse_body

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["ProjectMiddleware", "SECURITY_HEADERS", "csrf_token"]

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CHECKED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_COOKIE = "robaccia_csrf"
FLASH_COOKIE = "robaccia_flash"
CSRF_FIELD = "_csrf"
SECURITY_HEADERS = [
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    (
        "Content-Security-Policy",
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'; "
        "object-src 'none'",
    ),
]
_SECURITY_NAMES = {name.lower() for name, _ in SECURITY_HEADERS}


def _cookies(environ: WSGIEnvironment) -> dict[str, str]:
    cached = environ.get("robaccia.cookies")
    if cached is None:
        cached = {}
        for part in environ.get("HTTP_COOKIE", "").split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name not in cached:
                cached[name] = value.strip('"')
        environ["robaccia.cookies"] = cached
    return cached  # type: ignore[no-any-return]


_PLAIN_TEXT = re.compile(r"[A-Za-z0-9 .,_-]*")


def _cookie_quote(message: str) -> str:
    """Percent-encode a message for a cookie value (plain sentences take a shortcut)."""
    if _PLAIN_TEXT.fullmatch(message):
        return message.replace(" ", "%20").replace(",", "%2C")
    return quote(message, safe="")


#: How many verified cookies and tokens are remembered (then forgotten at once).
MEMO_SIZE = 4096


def _remember(memo: dict[str, str], key: str, value: str) -> None:
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[key] = value


def csrf_token(environ: WSGIEnvironment) -> str:
    """Return the CSRF token for this browser, starting a cookie if needed."""
    middleware: ProjectMiddleware | None = environ.get("robaccia.middleware")
    if middleware is None:
        return ""
    return middleware.token_for(environ)


class ProjectMiddleware:
    """Wrap an app with CSRF, flash messages, security headers and error pages.

    :param app: the project's dispatcher.
    :param secret: the project's secret key (signs cookies and tokens).
    :param debug: show tracebacks on error pages (development only).
    :param secure_cookies: mark cookies ``Secure`` (serve over HTTPS).
    :param limits: body limits, also used by the model collections.
    :param environ_defaults: extra environ keys set on every request.
    :param ext_for: tells the representation (``"json"``) of the collection a
        request addresses, so errors raised before it runs match it.
    """

    def __init__(
        self,
        app: WSGIApplication,
        secret: str,
        *,
        debug: bool = False,
        secure_cookies: bool = False,
        limits: Limits = DEFAULT_LIMITS,
        environ_defaults: dict[str, Any] | None = None,
        ext_for: Callable[[WSGIEnvironment], str | None] | None = None,
    ) -> None:
        if not secret:
            raise ValueError("ProjectMiddleware needs a secret key")
        self.app = app
        self.key = hashlib.sha256(b"robaccia-cookies:" + secret.encode()).digest()
        self.debug = debug
        self.limits = limits
        self.ext_for = ext_for
        self.cookie_flags = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure_cookies else "")
        self.defaults = dict(environ_defaults or {})
        self.defaults["robaccia.limits"] = limits
        self.defaults["robaccia.middleware"] = self
        self.defaults["robaccia.context"] = self.context
        self._verified: dict[str, str] = {}
        self._tokens: dict[str, str] = {}

    # --- signing --------------------------------------------------------------

    def _sign(self, value: str) -> str:
        mac = hmac.digest(self.key, value.encode(), "sha256").hex()[:32]
        return f"{value}.{mac}"

    def _unsign(self, signed: str) -> str | None:
        # PERF: a browser sends the same cookie on every request; its value,
        # once verified, is remembered (only verified values, a bounded number).
        value = self._verified.get(signed)
        if value is not None:
            return value
        value, _, mac = signed.rpartition(".")
        if value and hmac.compare_digest(self._sign(value), signed):
            _remember(self._verified, signed, value)
            return value
        return None

    def _csrf_mac(self, seed: str) -> str:
        token = self._tokens.get(seed)
        if token is None:
            token = hmac.digest(self.key, b"csrf:" + seed.encode(), "sha256").hex()
            _remember(self._tokens, seed, token)
        return token

    # --- CSRF -------------------------------------------------------------------

    def token_for(self, environ: WSGIEnvironment) -> str:
        """Return this browser's form token (an HMAC of its CSRF cookie)."""
        seed = environ.get("robaccia.csrf_seed") or self._unsign(_cookies(environ).get(CSRF_COOKIE, ""))
        if seed is None:
            seed = secrets.token_urlsafe(24)
            environ["robaccia.csrf_new"] = seed
        environ["robaccia.csrf_seed"] = seed
        return self._csrf_mac(seed)

    def _check_csrf(self, environ: WSGIEnvironment) -> None:
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
        sent = environ.get("HTTP_X_CSRF_TOKEN")
        if sent is None and mtype in (FORM, MULTIPART):
            sent = parse_body(environ, None, self.limits).get(CSRF_FIELD)
        seed = self._unsign(_cookies(environ).get(CSRF_COOKIE, ""))
        if not isinstance(sent, str) or seed is None:
            raise Forbidden("The form has expired or was not sent from this site. "
                            "Reload the page and try again.")
        expected = self._csrf_mac(seed)
        if not hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode()):
            raise Forbidden("The form has expired or was not sent from this site. "
                            "Reload the page and try again.")

    # --- flash messages ---------------------------------------------------------

    def flashes(self, environ: WSGIEnvironment) -> list[str]:
        """Return (and consume) the flash messages sent to this browser."""
        signed = _cookies(environ).get(FLASH_COOKIE)
        if not signed:
            return []
        environ["robaccia.flash_clear"] = True
        raw = self._unsign(signed)
        if raw is None:
            return []
        return [unquote(m) for m in raw.split("&") if m][:10]

    def context(self, environ: WSGIEnvironment) -> dict[str, Any]:
        """Return the variables every HTML template gets."""
        return {
            "csrf_token": self.token_for(environ),
            "csrf_field": CSRF_FIELD,
            "flashes": self.flashes(environ),
        }

    def _cookie_headers(self, environ: WSGIEnvironment) -> list[tuple[str, str]]:
        headers = []
        seed = environ.get("robaccia.csrf_new")
        if seed:
            headers.append(("Set-Cookie", f"{CSRF_COOKIE}={self._sign(seed)}{self.cookie_flags}"))
        out = environ.get("robaccia.flash_out")
        if out:
            value = self._sign("&".join(_cookie_quote(m[:500]) for m in out[-10:]))
            headers.append(("Set-Cookie", f"{FLASH_COOKIE}={value}{self.cookie_flags}"))
        elif environ.get("robaccia.flash_clear"):
            headers.append(("Set-Cookie", f"{FLASH_COOKIE}=; Max-Age=0{self.cookie_flags}"))
        return headers

    # --- the request ------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ.update(self.defaults)

        def respond(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            for name, _ in headers:
                if name.lower() in _SECURITY_NAMES:
                    headers = [h for h in headers if h[0].lower() not in _SECURITY_NAMES]
                    break
            # NOTE: a new list: the app's own list may be shared between responses.
            headers = headers + SECURITY_HEADERS
            if ("robaccia.csrf_new" in environ or "robaccia.flash_out" in environ
                    or "robaccia.flash_clear" in environ):
                headers.extend(self._cookie_headers(environ))
                headers.append(("Cache-Control", "private, no-store"))
                headers.append(("Vary", "Cookie"))
            return start_response(status, headers, exc_info)

        try:
            if environ.get("REQUEST_METHOD") in CHECKED_METHODS:
                self._check_csrf(environ)
            result = self.app(environ, respond)
        except HTTPException as exc:
            if "robaccia.ext" not in environ and self.ext_for is not None:
                environ["robaccia.ext"] = self.ext_for(environ)
            return exc(environ, respond)
        except Exception:
            return self.error(environ, respond, sys.exc_info())
        return result

    def error(self, environ: WSGIEnvironment, start_response: StartResponse, exc_info: Any) -> Iterable[bytes]:
        """Log an unhandled exception and answer 500."""
        logger.error("Unhandled error on %s %s", environ.get("REQUEST_METHOD"),
                     environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), exc_info=exc_info)
        if not self.debug:
            return InternalServerError()(
                environ, lambda status, headers, _=None: start_response(status, headers, exc_info)
            )
        text = "".join(traceback.format_exception(*exc_info))
        page = (
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error</title>"
            "<link rel=\"stylesheet\" href=\"/static/robaccia.css\"></head><body><main>"
            "<h1>500: unhandled exception</h1><p>This page is shown because the project runs "
            "in debug mode.</p><pre class=\"traceback\">" + html.escape(text) + "</pre></main></body></html>"
        ).encode()
        start_response("500 Internal Server Error", [("Content-Type", "text/html; charset=utf-8"),
                                                     ("Content-Length", str(len(page)))], exc_info)
        return [page]

