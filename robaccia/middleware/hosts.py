"""Allowed hosts: the host a request names, and a 400 for one the site is not.

    >>> request_host({'HTTP_HOST': 'WWW.Example.com:8080'})
    'www.example.com'
    >>> request_host({'HTTP_HOST': 'example.com/path'}) is None
    True
    >>> site = AllowedHosts(None, ['.example.com'])
    >>> site.allows('www.example.com'), site.allows('example.com'), site.allows('example.org')
    (True, True, False)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from robaccia.errors import BadRequest
from robaccia.middleware.steps import Step
from robaccia.request import Request

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication, WSGIEnvironment

    from robaccia.project import Project

__all__ = ["LOOPBACK_HOSTS", "AllowedHosts", "request_host"]

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
