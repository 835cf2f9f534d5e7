"""Representations: how a collection's results become HTML pages or JSON documents.

A collection chooses its representation once, from its ``ext``
(``'html'`` or ``'json'``); every answer goes through it, so the handlers
never branch on the format. A representation turns a handler's dict into a
response (:meth:`~Representation.page`) and tells the outcome of a write:
created, updated, deleted, invalid, or in conflict with a newer version::

    >>> from robaccia.representations import representation
    >>> html, json = representation('html'), representation('json')
    >>> html.media_type, json.media_type
    ('text/html; charset=utf-8', 'application/json')

========================  ==============================  ==========================
outcome                   HTML                            JSON
========================  ==============================  ==========================
a dict from a handler     its template, whole context     the dict (a row, a page)
created                   flash, 303 to the member        201, Location, ETag, row
updated                   flash, 303 to the member        200, ETag, row
deleted                   flash, 303 to the collection    204
invalid                   the form again, 422             problem+json 422
conflict (stale ETag)     the form with current values    412
========================  ==============================  ==========================

A new format (CSV, Atom) is one more subclass registered in
:data:`REPRESENTATIONS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType, SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar

from robaccia.conditional import etag_of
from robaccia.errors import Conflict, PreconditionFailed, SeeOther, UnprocessableEntity
from robaccia.request import Request, site_path

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    from sqlalchemy.schema import Table

    from robaccia.fields import Field

__all__ = ["FORMS", "HTML", "JSON", "REPRESENTATIONS", "STANDARD_KEYS", "Representation", "TablePages",
           "representation", "singular", "template_name"]

Headers = list[tuple[str, str]]


def template_name(environ: WSGIEnvironment, handler: str, ext: str) -> str:
    """Return ``<view>/<handler>.<ext>`` for this request."""
    return f"{Request.of(environ).view or '.'}/{handler}.{ext}"


def page_headers(environ: WSGIEnvironment, context: Mapping[str, Any]) -> Headers:
    """The headers a page's context implies: its row's ETag, its pages' Link."""
    headers: Headers = []
    etag = context.get("etag")
    if isinstance(etag, str) and etag and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
        headers.append(("ETag", etag))
    links = [f'<{site_path(url)}>; rel="{rel}"' for url, rel in
             ((context.get("next_url"), "next"), (context.get("prev_url"), "prev")) if url]
    if links:
        headers.append(("Link", ", ".join(links)))
    return headers


class Representation:
    """How one media type answers; subclasses fill in each outcome."""

    ext: ClassVar[str]
    media_type: ClassVar[str]
    #: Whether :meth:`created` shows the new row (else only its key is needed).
    shows_created_row: ClassVar[bool] = True

    def page(self, collection: Any, environ: WSGIEnvironment, start_response: StartResponse,
             handler: str, context: Mapping[str, Any], status: str = "200 OK",
             headers: Iterable[tuple[str, str]] = ()) -> Iterable[bytes]:
        """Render a handler's dict."""
        raise NotImplementedError

    def created(self, collection: Any, environ: WSGIEnvironment, start_response: StartResponse,
                row: dict[str, Any]) -> Iterable[bytes]:
        raise NotImplementedError

    def updated(self, collection: Any, environ: WSGIEnvironment, start_response: StartResponse,
                row: dict[str, Any]) -> Iterable[bytes]:
        raise NotImplementedError

    def deleted(self, collection: Any, environ: WSGIEnvironment, start_response: StartResponse,
                key: Any) -> Iterable[bytes]:
        raise NotImplementedError

    def invalid(self, collection: Any, environ: WSGIEnvironment, start_response: StartResponse,
                form: str, shown: dict[str, Any], errors: dict[Any, str], status: int) -> Iterable[bytes]:
        raise NotImplementedError

    def conflict(self, collection: Any, environ: WSGIEnvironment, start_response: StartResponse,
                 row: dict[str, Any]) -> Iterable[bytes]:
        raise NotImplementedError


class HTMLRepresentation(Representation):
    """Pages from the view's templates; writes answer with a flash and a redirect."""

    ext = "html"
    media_type = "text/html; charset=utf-8"
    shows_created_row = False

    def page(self, collection: Any, environ: WSGIEnvironment, start_response: StartResponse,
             handler: str, context: Mapping[str, Any], status: str = "200 OK",
             headers: Iterable[tuple[str, str]] = ()) -> Iterable[bytes]:
        full = collection.standard_context(environ)
        full.update(context)
        out = page_headers(environ, full) + list(headers)
        page: Iterable[bytes] = collection.renderer(environ, start_response,
                                                    template_name(environ, handler, self.ext),
                                                    full, out or None, status)
        return page

    def created(self, collection: Any, environ: WSGIEnvironment, start_response: StartResponse,
                row: dict[str, Any]) -> Iterable[bytes]:
        request = Request.of(environ)
        key = row[collection.primary]
        request.flash(f"{collection.item} {key} was created.")
        return SeeOther(request.member_url(key))(environ, start_response)

    def updated(self, collection: Any, environ: WSGIEnvironment, start_response: StartResponse,
                row: dict[str, Any]) -> Iterable[bytes]:
        request = Request.of(environ)
        key = row[collection.primary]
        request.flash(f"{collection.item} {key} was saved.")
        return SeeOther(request.member_url(key))(environ, start_response)

    def deleted(self, collection: Any, environ: WSGIEnvironment, start_response: StartResponse,
                key: Any) -> Iterable[bytes]:
        request = Request.of(environ)
        request.flash(f"{collection.item} {key} was deleted.")
        return SeeOther(request.collection_url)(environ, start_response)

    def invalid(self, collection: Any, environ: WSGIEnvironment, start_response: StartResponse,
                form: str, shown: dict[str, Any], errors: dict[Any, str], status: int) -> Iterable[bytes]:
        errors = dict(errors)
        default = ("Please correct the fields marked below." if status == 422 else
                   "That change conflicts with existing data.")
        message = errors.pop(None, None) or default
        context = {"row": shown, "errors": errors, "message": message, "etag": shown.get("_etag")}
        title = "422 Unprocessable Content" if status == 422 else "409 Conflict"
        return self.page(collection, environ, start_response, form, context, title)

    def conflict(self, collection: Any, environ: WSGIEnvironment, start_response: StartResponse,
                 row: dict[str, Any]) -> Iterable[bytes]:
        etag = etag_of(row)
        if environ.get("HTTP_IF_MATCH") is not None:
            raise PreconditionFailed(headers=[("ETag", etag)])
        context = {"row": row, "errors": {}, "etag": etag,
                   "message": "Someone else changed this row while you were editing it. "
                              "These are the current values; make your change again."}
        return self.page(collection, environ, start_response, "get_edit_form", context, "409 Conflict",
                         [("ETag", etag)])


class JSONRepresentation(Representation):
    """JSON documents; errors are problem+json (RFC 9457)."""

    ext = "json"
    media_type = "application/json"

    def page(self, collection: Any, environ: WSGIEnvironment, start_response: StartResponse,
             handler: str, context: Mapping[str, Any], status: str = "200 OK",
             headers: Iterable[tuple[str, str]] = ()) -> Iterable[bytes]:
        out = page_headers(environ, context) + list(headers)
        page: Iterable[bytes] = collection.renderer(environ, start_response,
                                                    template_name(environ, handler, self.ext),
                                                    collection.json_body(context), out or None, status)
        return page

    def _row(self, collection: Any, environ: WSGIEnvironment, start_response: StartResponse,
             handler: str, row: dict[str, Any], status: str, headers: Headers) -> Iterable[bytes]:
        return collection.renderer(environ, start_response, template_name(environ, handler, self.ext),  # type: ignore[no-any-return]
                                   row, headers + [("ETag", etag_of(row))], status)

    def created(self, collection: Any, environ: WSGIEnvironment, start_response: StartResponse,
                row: dict[str, Any]) -> Iterable[bytes]:
        location = Request.of(environ).member_url(row[collection.primary])
        return self._row(collection, environ, start_response, "create", row, "201 Created",
                         [("Location", location)])

    def updated(self, collection: Any, environ: WSGIEnvironment, start_response: StartResponse,
                row: dict[str, Any]) -> Iterable[bytes]:
        return self._row(collection, environ, start_response, "update", row, "200 OK", [])

    def deleted(self, collection: Any, environ: WSGIEnvironment, start_response: StartResponse,
                key: Any) -> Iterable[bytes]:
        start_response("204 No Content", [])
        return []

    def invalid(self, collection: Any, environ: WSGIEnvironment, start_response: StartResponse,
                form: str, shown: dict[str, Any], errors: dict[Any, str], status: int) -> Iterable[bytes]:
        errors = dict(errors)
        detail = errors.pop(None, None)
        if status == 409:
            raise Conflict(detail or "That change conflicts with existing data.", errors=errors)
        raise UnprocessableEntity(errors, detail)

    def conflict(self, collection: Any, environ: WSGIEnvironment, start_response: StartResponse,
                 row: dict[str, Any]) -> Iterable[bytes]:
        raise PreconditionFailed(headers=[("ETag", etag_of(row))])


HTML = HTMLRepresentation()
JSON = JSONRepresentation()
#: The representations by ``ext``.
REPRESENTATIONS: dict[str, Representation] = {"html": HTML, "json": JSON}


def representation(ext: str) -> Representation:
    """Return the representation for ``ext``.

    :raises ValueError: for an unknown one.
    """
    try:
        return REPRESENTATIONS[ext]
    except KeyError:
        raise ValueError(f"{ext!r} is not a representation: use one of {', '.join(REPRESENTATIONS)}") from None


#: The forms, and the handler each one submits to.
FORMS = {"get_new_form": "create", "get_edit_form": "update", "get_delete_form": "delete"}
#: The template variables a model collection gives every page (a handler's keys win).
STANDARD_KEYS = frozenset({
    "id", "collection_url", "member_url", "fields", "primary", "item", "title", "can", "meta",
    "row", "etag", "errors", "message", "data", "sort", "limit", "start", "end", "next_url",
    "prev_url",
})

_NO_ERRORS: Mapping[str, str] = MappingProxyType({})


class TablePages:
    """What the pages of a collection over one table hold (a mixin of
    :class:`~robaccia.defaultmodelcollection.DefaultModelCollection`).

    Its forms are served while the handlers they submit to are (:data:`FORMS`).
    An HTML page gets the table's description (``fields``, ``primary``,
    ``item``, ``title``, ``meta``, ``can``), the request's ``id`` and URL
    builders, and an empty default for every other name of
    :data:`STANDARD_KEYS`; a JSON document is a member's row or a page's
    ``data``, with the keys a handler added.
    """

    _robaccia_library = True

    if TYPE_CHECKING:
        table: Table | None
        fields: list[Field]
        columns: dict[str, Any]
        primary: str
        item: str
        title: str

        def serves(self, name: str) -> bool: ...

    def _serve(self, names: set[str]) -> set[str]:
        # NOTE: the UI follows the handlers: no create, no new form; no update,
        # no edit form; no delete, no confirmation.
        return {n for n in names if n not in FORMS or FORMS[n] in names}

    def standard_context(self, environ: WSGIEnvironment) -> dict[str, Any]:
        request = environ.get("robaccia.request") or Request(environ)
        if self.table is None:
            return {"id": request.id, "collection_url": request.collection_url,
                    "member_url": request.member_url}
        context = dict(self._constants())
        context["id"] = request.id
        context["collection_url"] = request.collection_url
        context["member_url"] = request.member_url
        return context

    def _constants(self) -> dict[str, Any]:
        """The page variables that are the same on every page of this collection (made once).

        PERF: copied for each page; the empty defaults are immutable, so no page
        can change another's.
        """
        constants = self.__dict__.get("_page_constants")
        if constants is None:
            constants = self.__dict__["_page_constants"] = {
                "fields": self.fields, "primary": self.primary, "item": self.item, "title": self.title,
                "meta": list(self.columns),
                # NOTE: a namespace, not a dict: in a template, can.update of a dict is dict.update.
                "can": SimpleNamespace(create=self.serves("create"), update=self.serves("update"),
                                       delete=self.serves("delete")),
                "etag": None, "errors": _NO_ERRORS, "message": "", "data": (), "sort": "",
                "limit": None, "start": 0, "end": 0, "next_url": None, "prev_url": None,
            }
        return constants

    def json_body(self, context: Mapping[str, Any]) -> Any:
        """A member's row, a page's ``data``/``next``/``prev``, plus any keys a handler added."""
        extra = {k: v for k, v in context.items() if k not in STANDARD_KEYS}
        if "data" in context:
            return {"data": context["data"], "next": context.get("next_url"),
                    "prev": context.get("prev_url"), **extra}
        if isinstance(context.get("row"), dict):
            return {**context["row"], **extra}
        return extra


def singular(title: str) -> str:
    """Guess the singular of an English table name, for page titles.

    >>> singular('Employees'), singular('Categories'), singular('Address')
    ('Employee', 'Category', 'Address')
    """
    if title.endswith("ies") and len(title) > 4:
        return title[:-3] + "y"
    if title.endswith("s") and not title.endswith("ss") and len(title) > 2:
        return title[:-1]
    return title
