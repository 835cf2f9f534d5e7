"""The one HTTP client of the tests for real servers (http.client, HTTP/1.1)."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

# Called with each answer: method, path, what was sent (body and headers), status, body.
Audit = Callable[[str, str, bytes, int, bytes], None]


class TransportError(AssertionError):
    """A request got no answer (refused, reset, timed out); says what was sent."""


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of a header (any case), or None."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def all(self, name: str) -> list[str]:
        """Every value of a header (any case), in order."""
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One browser of a served site: its cookies, its CSRF token, its requests.

    ``keep_cookies=False`` makes a client without a cookie jar: Set-Cookie is
    ignored and nothing is sent but what each request says. ``token_page`` is
    a page whose form holds the CSRF token; ``audit`` sees every answer.
    No redirect is followed.
    """

    def __init__(self, base: str, *, timeout: float = 30, keep_cookies: bool = True,
                 token_page: str | None = None, audit: Audit | None = None) -> None:
        self.base = base
        self.timeout = timeout
        self.keep_cookies = keep_cookies
        self.cookies: dict[str, str] = {}
        self.token_page = token_page
        self.audit = audit
        self._token: str | None = None

    @property
    def token(self) -> str:
        """This browser's CSRF token, read from the form of ``token_page``."""
        if self._token is None:
            assert self.token_page is not None, "this client was given no token_page"
            page = self.request("GET", self.token_page)
            assert page.status == 200, page.status
            match = re.search(r'name="_csrf" value="([0-9a-f]+)"', page.text)
            assert match, page.text[:500]
            self._token = match.group(1)
        return self._token

    def cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        *,
        form: dict[str, Any] | list[tuple[str, Any]] | None = None,
        json_body: Any = None,
        cookies: bool = True,
        csrf: bool = False,
    ) -> Response:
        """Send one request; return its answer.

        ``form`` is form-encoded (with this browser's token when ``csrf``),
        ``json_body`` sent as application/json (the token in X-CSRF-Token
        when ``csrf``), ``body`` as it is (str as UTF-8). ``cookies=False``
        sends no Cookie header this once.
        """
        sent_headers = dict(headers or {})
        if form is not None:
            pairs = list(form.items()) if isinstance(form, dict) else list(form)
            if csrf:
                pairs.append(("_csrf", self.token))
            body = urlencode(pairs)
            sent_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif json_body is not None:
            body = json.dumps(json_body)
            sent_headers.setdefault("Content-Type", "application/json")
            if csrf:
                sent_headers.setdefault("X-CSRF-Token", self.token)
        elif csrf:
            sent_headers.setdefault("X-CSRF-Token", self.token)
        if cookies and self.cookies:
            sent_headers.setdefault("Cookie", self.cookie_header())
        data = body.encode() if isinstance(body, str) else body
        host, port = self.base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
        try:
            conn.request(method, path, body=data, headers=sent_headers)
            raw = conn.getresponse()
            response = Response(raw.status, raw.getheaders(), raw.read())
        except OSError as exc:
            raise TransportError(
                f"{method} {path} {sent_headers} {data!r:.200}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            conn.close()
        if self.keep_cookies:
            for value in response.all("Set-Cookie"):
                name, _, rest = value.partition("=")
                if "Max-Age=0" in value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = rest.split(";", 1)[0]
        if self.audit is not None:
            sent = (data or b"") + repr(sent_headers).encode()
            self.audit(method, path, sent, response.status, response.body)
        return response
