"""Small helpers that several layers share, with no dependencies of their own.

    >>> from robaccia.util import is_loopback
    >>> is_loopback('127.0.0.1'), is_loopback('0.0.0.0')
    (True, False)
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

__all__ = ["drop_body", "is_loopback", "loggable"]


def drop_body(result: Iterable[bytes]) -> list[bytes]:
    """Answer a HEAD request from a GET response: run it, close it, send no body."""
    try:
        # A generator app calls start_response only when first iterated
        # (PEP 3333): take one chunk so it runs, then drop the body.
        next(iter(result), None)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return []


def is_loopback(host: str) -> bool:
    """Tell whether a bind address only accepts local connections."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\]")


def loggable(value: object, limit: int = 2000) -> str:
    """Return a request value safe to write into a log line.

    Control characters (newlines, ESC, CR...) and backslashes are escaped, so
    a request can never start a line of its own or colour a terminal.

    >>> loggable('/a\\nb\\x1b[31m')
    '/a\\\\nb\\\\x1b[31m'
    """
    text = str(value)[:limit]
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
