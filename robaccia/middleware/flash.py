"""Flash messages: what ``Request.flash()`` queued, shown on the next page, kept in a signed cookie.

    >>> from robaccia.testing import call
    >>> def app(environ, start_response):
    ...     request = Request.of(environ)
    ...     if environ['REQUEST_METHOD'] == 'POST':
    ...         request.flash('Saved.')
    ...     start_response('200 OK', [('Content-Type', 'text/plain')])
    ...     return [' '.join(request.flashes).encode()]
    >>> store = FlashMessages(app, 's' * 32)
    >>> status, headers, _ = call(store, 'POST', '/things/', json={})
    >>> cookie = dict(headers)['Set-Cookie'].split(';')[0]
    >>> call(store, 'GET', '/things/', headers={'Cookie': cookie})[2]
    b'Saved.'
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from robaccia.middleware.headers import _CookieFlags
from robaccia.middleware.steps import Step
from robaccia.request import Request
from robaccia.signing import Signer

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

    from robaccia.project import Project

__all__ = ["FlashMessages"]

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
