"""Cookies: the Cookie header read as WebOb reads it, each cookie on its own.

:meth:`Request.cookie <robaccia.request.Request.cookie>` reads the header
once through :func:`parse_cookies`. It gives what WebOb's parser gives
(quoted values and their escapes, the first of a repeated name, no cookie
named like an attribute), but decodes each value on its own, so one cookie
that is not UTF-8 is left out instead of hiding the others::

    >>> from robaccia.cookies import parse_cookies
    >>> parse_cookies('sid=abc; theme=dark; sid=other; Path=/')
    {'sid': 'abc', 'theme': 'dark'}
    >>> parse_cookies(r'lang="en\\054fr"; bad="\\377"; n=1')
    {'lang': 'en,fr', 'n': '1'}
"""

from __future__ import annotations

import re

__all__ = ["parse_cookies"]

#: Names WebOb's parser drops, in any case: a cookie's attributes, never a cookie.
_ATTRIBUTES = frozenset({"path", "comment", "domain", "max-age", "expires", "secure", "httponly", "samesite"})
_SIMPLE_COOKIES = re.compile(r"(?:[A-Za-z0-9_.-]+=[A-Za-z0-9!#$%&'*+\-.^_`|~:/?@=]*(?:; ?(?=.)|\Z))+\Z").match


def parse_cookies(header: str | None) -> dict[str, str]:
    """The cookies of a Cookie header, by name (the first of a repeated name).

    WebOb's parser reads them (quoted values, escapes), each value decoded on
    its own: one that is not UTF-8 is left out instead of spoiling the rest.
    PERF: a header of only plain ``name=value`` pairs, the usual one, is split
    directly (what WebOb's parser gives for it).
    """
    jar: dict[str, str] = {}
    if not header:
        return jar
    if _SIMPLE_COOKIES(header):
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name not in jar and name.lower() not in _ATTRIBUTES:
                jar[name] = value
        return jar
    # NOTE: public in WebOb (its own cookie parser), absent from its type stubs
    from webob.cookies import parse_cookie  # type: ignore[attr-defined]

    if not header.isascii():  # a WSGI header is latin-1; anything past that is noise
        header = header.encode("latin-1", "replace").decode("latin-1")
    for key, value in parse_cookie(header):
        try:
            jar.setdefault(key.decode("ascii"), value.decode("utf-8"))
        except UnicodeError:
            continue
    return jar
