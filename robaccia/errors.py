"""Errors: one hierarchy, and HTTP outcomes that are both exceptions and WSGI apps.

Library code raises; the boundary (a collection, the project middleware)
catches an :class:`HTTPException` and calls it as the response::

    >>> from robaccia.errors import NotFound
    >>> from robaccia.testing import call
    >>> status, headers, body = call(NotFound("No employee 7."), 'GET', '/employees/7')
    >>> status, dict(headers)['Content-Type']
    ('404 Not Found', 'text/html; charset=utf-8')
    >>> b'No employee 7.' in body
    True

JSON views (``environ['robaccia.ext'] == 'json'``) and clients that ask for
JSON get ``application/problem+json`` (RFC 9457) instead of HTML.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "HTTPError",
    "HTTPException",
    "InternalServerError",
    "MethodNotAllowed",
    "NotFound",
    "NotModified",
    "PayloadTooLarge",
    "PreconditionFailed",
    "RobacciaError",
    "SeeOther",
    "ServiceUnavailable",
    "UnprocessableEntity",
    "UnsupportedMediaType",
    "wants_json",
]


class RobacciaError(Exception):
    """The base of every error robaccia raises."""


def wants_json(environ: WSGIEnvironment) -> bool:
    """Tell whether an error for this request should be problem+json.

    The collection's representation decides when one answered; before that
    (a refused form, an id the route refuses), the collection the path names,
    found through the project's routes; otherwise what the client asked for:
    an ``Accept`` that prefers JSON, or a JSON body with no preference for HTML.
    """
    request = environ.get("robaccia.request")
    ext = request.representation if request is not None else None
    if ext is None and request is not None and request.project is not None:
        ext = request.project.representation_for(environ)
    if ext is not None:
        return bool(ext == "json")
    accept = environ.get("HTTP_ACCEPT", "")
    if accept:
        from webob.acceptparse import create_accept_header

        offers = create_accept_header(accept).acceptable_offers(
            ["text/html", "application/json", "application/problem+json"])
        if offers:
            best, quality = offers[0]
            html = next((q for o, q in offers if o == "text/html"), 0.0)
            if best != "text/html" and quality > html:
                return True
            if "*/*" not in accept and "text/html" in [o for o, _ in offers]:
                return False
    ctype = str(environ.get("CONTENT_TYPE", "")).partition(";")[0].strip().lower()
    return ctype == "application/json" or ctype.endswith("+json")


def _urls(environ: WSGIEnvironment) -> tuple[str, str]:
    """The site's home and stylesheet URLs for an error page (SCRIPT_NAME respected)."""
    request = environ.get("robaccia.request")
    if request is None:
        return "/", "/static/robaccia.css"
    try:
        return request.script_root + "/", request.static_url("robaccia.css")
    except ValueError:
        return "/", "/static/robaccia.css"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{css}"></head>
<body><header class="site"><div class="inner"><a href="{home}">Home</a></div></header>
<main id="content"><h1>{title}</h1><p>{detail}</p></main></body></html>
"""


class HTTPException(RobacciaError):
    """An HTTP response that can be raised; calling it answers the request."""

    code: int = 500
    title: str = "Internal Server Error"
    default_detail: str = ""

    def __init__(
        self,
        detail: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        **extra: Any,
    ) -> None:
        self.detail = detail if detail is not None else self.default_detail
        self.headers = list(headers)
        self.extra = extra
        super().__init__(self.detail or self.title)

    @property
    def status(self) -> str:
        return f"{self.code} {self.title}"

    def body(self, environ: WSGIEnvironment) -> tuple[str, bytes]:
        """Return the content type and body for this request."""
        if wants_json(environ):
            problem = {"type": "about:blank", "title": self.title, "status": self.code}
            if self.detail:
                problem["detail"] = self.detail
            problem.update(self.extra)
            return "application/problem+json", json.dumps(problem).encode()
        home, css = _urls(environ)
        page = _PAGE.format(title=escape(self.title), detail=escape(self.detail or self.title),
                            home=escape(home), css=escape(css))
        return "text/html; charset=utf-8", page.encode()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        content_type, body = self.body(environ)
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        headers.extend(self.headers)
        start_response(self.status, headers)
        if environ.get("REQUEST_METHOD") == "HEAD":
            return [b""]
        return [body]


class HTTPError(HTTPException):
    """A 4xx or 5xx response."""


class BadRequest(HTTPError):
    code, title = 400, "Bad Request"
    default_detail = "The request could not be understood."


class Forbidden(HTTPError):
    code, title = 403, "Forbidden"
    default_detail = "You are not allowed to do that."


class NotFound(HTTPError):
    code, title = 404, "Not Found"
    default_detail = "Nothing matches the requested address."


class MethodNotAllowed(HTTPError):
    code, title = 405, "Method Not Allowed"

    def __init__(self, allowed: Iterable[str], detail: str | None = None) -> None:
        self.allowed = [m for m in allowed if m != "_ANY_"]
        allow = ", ".join(self.allowed)
        super().__init__(
            detail or f"This resource does not allow that method. Allowed: {allow}.",
            headers=[("Allow", allow)],
        )


class Conflict(HTTPError):
    code, title = 409, "Conflict"


class PreconditionFailed(HTTPError):
    code, title = 412, "Precondition Failed"
    default_detail = "The resource has changed since you last read it."


class PayloadTooLarge(HTTPError):
    code, title = 413, "Content Too Large"
    default_detail = "The request body is too large."


class UnsupportedMediaType(HTTPError):
    code, title = 415, "Unsupported Media Type"


class UnprocessableEntity(HTTPError):
    code, title = 422, "Unprocessable Content"
    default_detail = "Some fields are not valid."

    def __init__(self, errors: Mapping[str, str], detail: str | None = None) -> None:
        super().__init__(detail, errors=dict(errors))
        self.errors = dict(errors)


class InternalServerError(HTTPError):
    code, title = 500, "Internal Server Error"
    default_detail = "Something went wrong on our side. It has been logged."


class ServiceUnavailable(HTTPError):
    code, title = 503, "Service Unavailable"
    default_detail = "The service is briefly unavailable. Please try again shortly."

    def __init__(self, detail: str | None = None, retry_after: int = 5) -> None:
        super().__init__(detail, headers=[("Retry-After", str(retry_after))])


class NotModified(HTTPException):
    code, title = 304, "Not Modified"

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response(self.status, self.headers)
        return []


class SeeOther(HTTPException):
    """A 303 redirect to an absolute path (never a relative or off-site URL)."""

    code, title = 303, "See Other"

    def __init__(self, location: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        if not location.startswith("/") or location.startswith("//"):
            raise ValueError(f"redirects go to absolute paths on this site, not {location!r}")
        if "\r" in location or "\n" in location or "\x00" in location:
            raise ValueError("a redirect location may not contain control characters")
        super().__init__(None, [("Location", location), *headers])

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response(self.status, [("Content-Length", "0"), *self.headers])
        return []


class PermanentRedirect(HTTPException):
    """A 301 (or 308, which keeps the method and body) to an ``https://`` URL on this site."""

    code, title = 301, "Moved Permanently"

    def __init__(self, location: str, keep_method: bool = False) -> None:
        if not location.startswith("https://") or any(c in location for c in "\r\n\x00"):
            raise ValueError(f"permanent redirects go to https:// URLs, not {location[:200]!r}")
        if keep_method:
            self.code, self.title = 308, "Permanent Redirect"
        super().__init__(None, [("Location", location), ("Cache-Control", "max-age=3600")])

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response(self.status, [("Content-Length", "0"), *self.headers])
        return []
