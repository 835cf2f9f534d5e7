"""Parsers: read a request body within limits and turn it into a dict.

Bodies are read once, with limits checked before anything is buffered, and
parsed by their Content-Type: ``application/x-www-form-urlencoded`` and
``application/json`` by the standard library, ``multipart/form-data`` by the
``multipart`` package (all three strictly: bad UTF-8 is a 400, never
replacement characters)::

    >>> from robaccia.parsers import parse_body, Limits
    >>> from robaccia.testing import make_environ
    >>> parse_body(make_environ('POST', '/v/', {'name': 'Ada', 'title': ''}))
    {'name': 'Ada', 'title': ''}
    >>> parse_body(make_environ('POST', '/v/', json={'name': 'Ada'}))
    {'name': 'Ada'}
    >>> parse_body(make_environ('POST', '/v/', 'x' * 11, content_type='text/plain'))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    robaccia.errors.UnsupportedMediaType: Send application/x-www-form-urlencoded, ...

Blank form fields are kept, so emptying a field clears a nullable column.
Limits (:class:`Limits`, set per project in settings.py) give 413 past the
body size or field count; a malformed body is 400, an unknown type 415, a
chunked body the server did not decode 411.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from robaccia.errors import BadRequest, HTTPError, PayloadTooLarge, UnsupportedMediaType

if TYPE_CHECKING:
    from wsgiref.types import WSGIEnvironment

__all__ = [
    "Limits",
    "LengthRequired",
    "find_parser",
    "form_parser",
    "json_parser",
    "parse_body",
    "read_body",
    "UploadedFile",
]

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
JSON = "application/json"
Parser = Callable[..., dict[str, Any]]


class LengthRequired(HTTPError):
    code, title = 411, "Length Required"
    default_detail = "Send a Content-Length with the request body."


@dataclass(frozen=True)
class Limits:
    """Limits on request bodies.

    :param max_body: the largest body, in bytes (413 beyond).
    :param max_fields: the most form fields, multipart parts or JSON members (413 beyond).
    """

    max_body: int = 1024 * 1024
    max_fields: int = 1000


DEFAULT_LIMITS = Limits()


def _read(stream: Any, size: int) -> bytes:
    """Read from wsgi.input; a body the server cannot deliver is the client's error.

    >>> class Reset:
    ...     def read(self, size):
    ...         raise ConnectionResetError('reset by peer')
    >>> _read(Reset(), 10)
    Traceback (most recent call last):
    ...
    robaccia.errors.BadRequest: The request body could not be read.
    """
    try:
        return stream.read(size)  # type: ignore[no-any-return]
    except Exception:
        # NOTE: servers raise their own types here: gunicorn's InvalidChunkSize,
        # NoMoreData and ChunkMissingTerminator on a malformed chunked body,
        # OSError/TimeoutError when the client stalls or goes away. None is a 500.
        raise BadRequest("The request body could not be read.") from None


def read_body(environ: WSGIEnvironment, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Read the request body once, within ``limits``; later calls reuse it."""
    request = environ.get("robaccia.request")
    if request is None:
        from robaccia.request import Request  # NOTE: here, as request.py imports this module

        request = Request(environ)
    cached: bytes | None = request.__dict__.get("_body")
    if cached is not None:
        return cached
    stream = environ.get("wsgi.input")
    raw_length = environ.get("CONTENT_LENGTH", "")
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if raw_length in ("", None) and not chunked:
        body = b""
    elif chunked and raw_length in ("", None):
        # NOTE: only a server that decoded the chunks and marks the end of
        # input can be read without a length; otherwise read() could hang.
        if not environ.get("wsgi.input_terminated") or stream is None:
            raise LengthRequired()
        body = _read(stream, limits.max_body + 1)
        if len(body) > limits.max_body:
            raise PayloadTooLarge(f"The request body is larger than {limits.max_body} bytes.")
    else:
        text = str(raw_length).strip()
        if not text.isdigit() or not text.isascii() or len(text) > 18:
            raise BadRequest("The Content-Length header is not a valid length.")
        length = int(text)
        if length > limits.max_body:
            raise PayloadTooLarge(f"The request body is larger than {limits.max_body} bytes.")
        body = _read(stream, length) if (length and stream is not None) else b""
        if len(body) < length:
            raise BadRequest("The request body is shorter than its Content-Length.")
    request.__dict__["_body"] = body
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def form_parser(body: bytes | str, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Parse a form-encoded body; blank fields are kept, the last repeat wins."""
    fields = body.count(b"&") if isinstance(body, bytes) else body.count("&")
    if fields >= limits.max_fields:
        raise PayloadTooLarge(f"The form has more than {limits.max_fields} fields.")
    if isinstance(body, bytes):
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError:
            raise BadRequest("A form body must be percent-encoded ASCII.") from None
    else:
        text = body
    # PERF: parse_qsl's rules (blank values kept, "+" is a space, strict
    # UTF-8), but only names and values that hold a "%" are unquoted; the text
    # is ASCII, for which unquote(s, "utf-8", "strict") is this, without its
    # search for non-ASCII runs.
    values: dict[str, Any] = {}
    try:
        for piece in text.split("&"):
            if not piece:
                continue
            name, _, value = piece.partition("=")
            if "+" in piece:
                name = name.replace("+", " ")
                value = value.replace("+", " ")
            if "%" in piece:
                if "%" in name:
                    name = unquote_to_bytes(name).decode("utf-8", "strict")
                if "%" in value:
                    value = unquote_to_bytes(value).decode("utf-8", "strict")
            values[name] = value
    except UnicodeDecodeError:
        raise BadRequest("The form is not valid UTF-8.") from None
    return values


#: How deep a JSON body may nest (robaccia's columns hold scalars: one level is enough).
MAX_JSON_DEPTH = 32
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def json_parser(body: bytes | str, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Parse a JSON body, which must be an object, shallow and with no lone surrogate."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _depth(raw) > MAX_JSON_DEPTH:
        raise BadRequest(f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.")
    try:
        value = json.loads(raw) if raw else {}
    except (ValueError, RecursionError):
        raise BadRequest("The body is not valid JSON.") from None
    if _SURROGATE_ESCAPE.search(raw) and _lone_surrogate(value):
        raise BadRequest("The JSON body holds a lone surrogate (\\ud800-\\udfff), which is no character.")
    if not isinstance(value, dict):
        raise BadRequest("The JSON body must be an object.")
    if len(value) > limits.max_fields:
        raise PayloadTooLarge(f"The object has more than {limits.max_fields} members.")
    return value


def _depth(raw: bytes) -> int:
    """How deep brackets nest in a JSON text (strings skipped), without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _lone_surrogate(value: Any) -> bool:
    """Tell whether a parsed JSON value holds a string with a lone surrogate."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return False


def _boundary(ctype: str) -> bytes:
    """Return the boundary parameter of a multipart Content-Type (b"" if none).

    Parameters after it, quotes and the name's case do not change it (the
    part count must use the boundary WebOb will parse with)::

        >>> _boundary('multipart/form-data; BOUNDARY="x y"; charset=utf-8')
        b'x y'
    """
    for param in ctype.split(";")[1:]:
        name, sep, value = param.partition("=")
        if sep and name.strip().lower() == "boundary":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value.encode("latin-1", "replace")
    return b""


class UploadedFile:
    """A file part of a multipart form: its name, type and bytes."""

    __slots__ = ("filename", "content_type", "data")

    def __init__(self, filename: str, content_type: str, data: bytes) -> None:
        self.filename = filename
        self.content_type = content_type
        self.data = data

    @property
    def file(self) -> io.BytesIO:
        """The bytes, as a file to read."""
        return io.BytesIO(self.data)

    def __repr__(self) -> str:
        return f"<UploadedFile {self.filename!r}, {len(self.data)} bytes>"


def multipart_parser(environ: WSGIEnvironment, body: bytes, limits: Limits) -> dict[str, Any]:
    """Parse multipart/form-data; a file part becomes an :class:`UploadedFile`."""
    import multipart

    ctype = environ.get("CONTENT_TYPE", "")
    boundary = _boundary(ctype)
    if not boundary or len(boundary) > 200:
        raise BadRequest("The multipart body has no valid boundary.")
    values: dict[str, Any] = {}
    try:
        parser = multipart.MultipartParser(
            io.BytesIO(body), boundary.decode("latin-1"), len(body), charset="utf-8",
            part_limit=limits.max_fields, memory_limit=max(limits.max_body, 1),
            spool_limit=max(limits.max_body, 1), disk_limit=0,
        )
        for part in parser:
            data = part.raw
            if part.filename is not None:
                values[part.name] = UploadedFile(part.filename, part.content_type or "", data)
            else:
                values[part.name] = data.decode("utf-8")
            part.close()
    except multipart.ParserLimitReached:
        raise PayloadTooLarge(f"The form has more than {limits.max_fields} parts.") from None
    except UnicodeDecodeError:
        raise BadRequest("The form is not valid UTF-8.") from None
    except (multipart.MultipartError, ValueError, LookupError) as exc:
        raise BadRequest("The multipart body could not be parsed.") from exc
    return values


_BY_TYPE: dict[str, Parser] = {FORM: form_parser, JSON: json_parser}


def find_parser(ext: str) -> Parser | None:
    """Return the default parser for a representation (``html`` or ``json``)."""
    return {"html": form_parser, "json": json_parser}.get(ext)


def media_type(environ: WSGIEnvironment) -> str:
    """Return the request's media type, lowercased, without parameters."""
    return str(environ.get("CONTENT_TYPE", "")).partition(";")[0].strip().lower()


def parse_body(
    environ: WSGIEnvironment,
    default: Parser | None = None,
    limits: Limits | None = None,
) -> dict[str, Any]:
    """Read and parse the body by its Content-Type, once per request.

    ``default`` parses a body sent without a Content-Type. The request
    remembers the values and whether they came from a form
    (``Request.of(environ).is_form``).
    """
    from robaccia.request import Request

    return Request.of(environ).read_values(default, limits)


def parse(
    environ: WSGIEnvironment,
    default: Parser | None = None,
    limits: Limits | None = None,
) -> tuple[dict[str, Any], bool]:
    """Parse the body by its Content-Type: the values, and whether it was a form."""
    limits = limits or DEFAULT_LIMITS
    body = read_body(environ, limits)
    mtype = media_type(environ)
    if not body and mtype in ("", FORM, MULTIPART, JSON):
        return {}, mtype in (FORM, MULTIPART) or (not mtype and default is not json_parser)
    if mtype == MULTIPART:
        return multipart_parser(environ, body, limits), True
    if mtype in _BY_TYPE or (mtype.startswith("application/") and mtype.endswith("+json")):
        parse_as: Callable[[bytes, Limits], dict[str, Any]] = _BY_TYPE.get(mtype, json_parser)
        return parse_as(body, limits), mtype == FORM
    if not mtype and default is not None:
        return default(body, limits), default is form_parser
    raise UnsupportedMediaType(f"Send {FORM}, {MULTIPART} or {JSON}.")
