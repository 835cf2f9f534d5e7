"""Conditional requests: a row's ETag, ``If-None-Match`` and ``If-Match``.

A row's ETag is a strong validator of its values. ``If-None-Match`` uses the
weak comparison (RFC 9110 13.1.2), ``If-Match`` the strong one (13.1.1): a
weak tag never satisfies it::

    >>> from robaccia.conditional import etag_of, strong_match
    >>> tag = etag_of({'id': 1, 'name': 'Ada'})
    >>> strong_match(tag, tag), strong_match('W/' + tag, tag), strong_match('*', tag)
    (True, False, True)

An edit form carries the ETag it was rendered with in an ``_etag`` field, so
that a browser's save is conditional too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from webob.etag import AnyETag, ETagMatcher

from robaccia.errors import NotModified

if TYPE_CHECKING:
    from robaccia.request import Request

__all__ = ["ETAG_FIELD", "check_not_modified", "etag_of", "precondition", "strong_match"]

#: The form field an edit form sends its ETag in.
ETAG_FIELD = "_etag"


def etag_of(row: Mapping[str, Any]) -> str:
    """Return a strong ETag (quoted) for a row's values."""
    digest = hashlib.blake2b(repr(tuple(row.values())).encode(), digest_size=12)
    return '"' + digest.hexdigest() + '"'


def check_not_modified(request: Request, etag: str) -> None:
    """Raise 304 when ``If-None-Match`` names this ETag (weak comparison)."""
    header = request.environ.get("HTTP_IF_NONE_MATCH")
    if header and etag.strip('"') in ETagMatcher.parse(header, strong=False):
        raise NotModified(headers=[("ETag", etag)])


def precondition(request: Request, values: Mapping[str, Any]) -> str | None:
    """Return the ETag a write is conditional on: ``If-Match``, else the form's ``_etag``."""
    header = request.environ.get("HTTP_IF_MATCH")
    if header is not None:
        return header  # type: ignore[no-any-return]
    sent = values.get(ETAG_FIELD)
    return sent if isinstance(sent, str) and sent else None


def strong_match(header: str, etag: str) -> bool:
    """Tell whether an ``If-Match`` value names ``etag`` (strong comparison; ``*`` matches)."""
    matcher = ETagMatcher.parse(header.strip(), strong=True)
    if matcher is AnyETag:
        return True
    return etag.strip('"') in matcher
