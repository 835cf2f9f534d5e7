"""DefaultModelCollection: list, show, create, edit and delete a SQLAlchemy table.

A view subclasses it and names the handlers it serves; a handler that returns
``None`` gets the default behaviour for its name, and ``super()`` gives that
default to an override that wants to extend it:

=========================  =================================================
``GET /v/`` list           a page of rows (keyset paging, ``?after=``, ``?sort=``)
``GET /v/1`` retrieve      the row, with an ETag (404 if absent, 304 if unchanged)
``GET /v/;new_form``       the empty form (served while ``create`` is)
``GET /v/1;edit_form``     the form with the row and its ETag (while ``update`` is)
``GET /v/1;delete_form``   the confirmation (while ``delete`` is)
``POST /v/`` create        validate, insert, 303 to the member (JSON: 201 + row)
``PUT /v/1`` update        validate, update, 303 to the member (JSON: 200 + row)
``DELETE /v/1`` delete     delete, 303 to the collection (JSON: 204)
=========================  =================================================

Two hooks change what the defaults do without replacing them:
``query(environ, statement)`` narrows every statement over the collection's
rows, and ``validate(environ, values)`` checks values after their conversion
(raise :class:`~robaccia.fields.Invalid` to refuse them). HTML forms send PUT
and DELETE as POST with a ``_method`` field::

    >>> from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine
    >>> from robaccia.testing import call, make_environ
    >>> meta = MetaData()
    >>> notes = Table('notes', meta, Column('id', Integer, primary_key=True),
    ...               Column('text', String(100), nullable=False))
    >>> engine = create_engine('sqlite://')
    >>> meta.create_all(engine)
    >>> class Notes(DefaultModelCollection):
    ...     def create(self, environ, start_response):
    ...         pass  # None: the default behaviour
    ...     def validate(self, environ, values):
    ...         if values.get('text') == 'spam':
    ...             raise Invalid({'text': 'No spam, please.'})
    >>> app = Notes(notes, ext='json', engine=engine)
    >>> def env(method, id=None, **kw):
    ...     return make_environ(method, **kw, **{'wsgiorg.routing_args': ((), {'view': 'notes', 'id': id})})
    >>> status, headers, body = call(app, environ=env('POST', json={'text': 'hello'}))
    >>> status, dict(headers)['Location'], body
    ('201 Created', '/notes/1', b'{"id": 1, "text": "hello"}')
    >>> import json
    >>> json.loads(call(app, environ=env('POST', json={'text': 'spam'}))[2])['errors']
    {'text': 'No spam, please.'}

Every write is one transaction, rolled back on any error. Unique and
foreign-key violations are 409; invalid values 422 (HTML forms are shown
again with the messages beside their fields). ``If-Match`` (or the edit
form's ``_etag`` field) makes an update or delete conditional, checked in the
statement's WHERE clause so that two concurrent writers cannot both win.
What its pages hold is :class:`~robaccia.representations.TablePages`'s.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, overload

from sqlalchemy import exc as sa_exc
from sqlalchemy import types as sqltypes
from sqlalchemy.schema import Table

from robaccia.conditional import check_not_modified, etag_of, precondition
from robaccia.database import STATEMENT_ERRORS, http_error
from robaccia.defaultcollection import DefaultCollection, library_default
from robaccia.errors import MethodNotAllowed, NotFound
from robaccia.fields import Field, Invalid, describe, validate
from robaccia.gateway import Changed, Rows, TableGateway
from robaccia.paging import PageQuery
from robaccia.parsers import Limits, find_parser
from robaccia.representations import _NO_ERRORS, STANDARD_KEYS, TablePages  # noqa: F401 (NOTE: importable here as before)
from robaccia.representations import FORMS as FORMS
from robaccia.representations import singular as _singular
from robaccia.request import Request, flash

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    from sqlalchemy.engine import Engine

__all__ = ["DefaultModelCollection", "Invalid", "STANDARD_KEYS", "flash"]

logger = logging.getLogger(__name__)

_UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
#: The front page counts rows up to this many (then shows "10,000+").
SUMMARY_COUNT_LIMIT = 10_001
_OVERRIDES = ("PUT", "DELETE")


class DefaultModelCollection(TablePages, DefaultCollection):
    """A collection over one SQLAlchemy ``Table``.

    Two ways to make one: ``DefaultModelCollection(table)`` (``ext='json'``
    for an API), with the renderer, parser, engine, page size and body
    limits taken from the project; or the 2007 form
    ``DefaultModelCollection(ext, renderer, parser, table)``.

    :param engine: the SQLAlchemy engine (default: the project's).
    :param page_size: rows per list page (default: the project's PAGE_SIZE).
    :param max_page_size: the most ``?limit=`` may ask for (MAX_PAGE_SIZE).
    :param limits: body limits (default: the project's).
    """

    _robaccia_library = True

    @overload
    def __init__(self, table: Table, *, ext: str = ..., engine: Engine | None = ...,
                 page_size: int | None = ..., max_page_size: int | None = ...,
                 limits: Limits | None = ...) -> None: ...

    @overload
    def __init__(self, ext: str, renderer: Callable[..., Iterable[bytes]] | None = ...,
                 parser: Callable[..., dict[str, Any]] | None = ..., table: Table | None = ...,
                 engine: Engine | None = ..., *, page_size: int | None = ...,
                 max_page_size: int | None = ..., limits: Limits | None = ...) -> None: ...

    def __init__(self, *args: Any, ext: str | None = None, engine: Engine | None = None,
                 page_size: int | None = None, max_page_size: int | None = None,
                 limits: Limits | None = None, **kwargs: Any) -> None:
        if args and isinstance(args[0], Table):
            if len(args) > 1:
                raise TypeError("Give the short form as DefaultModelCollection(table, ext='json')")
            table: Table | None = args[0]
            ext = ext or "html"
            renderer = parser = None
        else:
            names = ("ext", "renderer", "parser", "table", "engine")
            given = dict(zip(names, args, strict=False))
            given.update(kwargs)
            if ext is not None:
                given["ext"] = ext
            if engine is not None:
                given["engine"] = engine
            ext = given.get("ext") or "html"
            renderer, parser, table = given.get("renderer"), given.get("parser"), given.get("table")
            engine = given.get("engine")
        super().__init__(ext, renderer)
        self.parser = parser if parser is not None else find_parser(ext)
        self.table = table
        self.engine = engine
        self.page_size = page_size
        self.max_page_size = max_page_size
        self.limits = limits
        self._gateways: dict[int, TableGateway] = {}
        self._lock = threading.Lock()
        if table is not None:
            self._describe(table)

    def _describe(self, table: Table) -> None:
        self.fields: list[Field] = describe(table)
        self.columns = {c.name: c for c in table.columns}
        pks = list(table.primary_key.columns)
        if not pks:
            raise ValueError(f"Table {table.name!r} has no primary key")
        self.pk = pks[0]
        self.primary = self.pk.name
        self.pk_field = next(f for f in self.fields if f.name == self.primary)
        self.title = table.name.replace("_", " ").capitalize()
        self.item = _singular(self.title)
        self._int_pk = isinstance(self.pk.type, sqltypes.Integer)
        self._int_bound = 2**15 if isinstance(self.pk.type, sqltypes.SmallInteger) else (
            2**63 if isinstance(self.pk.type, sqltypes.BigInteger) else 2**31)

    # --- the two hooks --------------------------------------------------------------

    def query(self, environ: WSGIEnvironment, statement: Any) -> Any:
        """Narrow a statement over this collection's rows; return it (default: unchanged).

        Every statement passes here: the list and its count, a row, the forms,
        update and delete. A row it excludes is 404 on every URI, and a write
        to it changes nothing. Add WHERE clauses (``statement.where(...)``):
        SELECT, UPDATE and DELETE statements all take them.
        """
        return statement

    def validate(self, environ: WSGIEnvironment, values: dict[str, Any]) -> dict[str, Any] | None:
        """Check a create's or update's values, converted to their column types.

        Raise ``Invalid({'field': 'message', None: 'form-level message'})`` to
        refuse them (422, nothing written); return a dict to write other
        values instead (None: these).
        """
        return None

    # --- the rows -----------------------------------------------------------------------

    def rows(self, environ: WSGIEnvironment) -> Rows:
        """This request's view of the table: every statement passes :meth:`query`."""
        request = environ.get("robaccia.request") or Request(environ)  # PERF: Request.of, inline
        engine = self.engine or (request.project.engine if request.project is not None else None)
        if engine is None or self.table is None:
            raise RuntimeError(f"{type(self).__name__} has no database engine: give engine=, or serve "
                               "it from a project (whose dbconfig.py has one)")
        gateway = self._gateways.get(id(engine))
        if gateway is None:
            with self._lock:
                gateway = self._gateways.get(id(engine))
                if gateway is None:
                    fast = request.project.fast_sql if request.project is not None else True
                    gateway = self._gateways[id(engine)] = TableGateway(self.table, engine, fast=fast)
        if type(self).query is DefaultModelCollection.query:
            return gateway.rows()
        return gateway.rows(lambda statement: self.query(environ, statement))

    def _key(self, environ: WSGIEnvironment) -> Any:
        """The member's key from the URL; an id that cannot exist is a 404."""
        args = environ.get("wsgiorg.routing_args")
        raw = (args[1] if args is not None else Request.of(environ).routing).get("id") or ""
        if self._int_pk:
            # PERF: digits that fit the column are the whole check for an integer key
            if not raw.isdigit() or not raw.isascii() or len(raw) > 19:
                raise NotFound()
            key = int(raw)
            if key < self._int_bound:
                return key
        try:
            return self.pk_field.convert(raw)
        except Invalid:
            raise NotFound() from None

    def _row(self, environ: WSGIEnvironment) -> dict[str, Any]:
        row = self.rows(environ).get(self._key(environ))
        if row is None:
            raise NotFound()
        return row

    # --- the defaults (public: super() gives them) -------------------------------------

    def list(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        """A page of rows: ``data``, ``next_url``, ``prev_url``, ``start``, ``end``, ``sort``."""
        request = Request.of(environ)
        project = request.project
        page_size = self.page_size or (project.page_size if project is not None else 50)
        max_page_size = self.max_page_size or (project.max_page_size if project is not None else 500)
        params = request.query_params(max_fields=20)
        query = PageQuery.parse(params, self.table, page_size=page_size,  # type: ignore[arg-type]
                                max_page_size=max_page_size)
        page = query.page(self.rows(environ).page(query), request.collection_url)
        return {"data": page.data, "next_url": page.next_url, "prev_url": page.prev_url,
                "start": page.start, "end": page.end, "sort": query.sort, "limit": query.limit}

    def retrieve(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        """The row (``row``, ``etag``); 404 when absent, 304 when ``If-None-Match`` names it."""
        row = self._row(environ)
        etag = etag_of(row)
        check_not_modified(Request.of(environ), etag)
        return {"row": row, "etag": etag}

    def get_new_form(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        """The empty form."""
        return {"row": {}, "errors": {}}

    def get_edit_form(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        """The form with the row and its ETag."""
        row = self._row(environ)
        return {"row": row, "etag": etag_of(row), "errors": {}}

    def get_delete_form(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        """The confirmation page, with the row and its ETag."""
        row = self._row(environ)
        return {"row": row, "etag": etag_of(row)}

    def create(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        """Validate the body, insert it, answer with the new row (or the errors)."""
        request = environ.get("robaccia.request") or Request(environ)  # PERF: Request.of, inline
        request.collection_url  # noqa: B018 (NOTE: the URLs it answers with must build before a write)
        values = request.values
        clean, errors = self._convert(environ, values, creating=True)
        if errors:
            return self.representation.invalid(self, environ, start_response, "get_new_form",
                                               values, errors, 422)
        rows = self.rows(environ)
        try:
            row = rows.insert(clean, whole=self.representation.shows_created_row)
        except sa_exc.IntegrityError:
            return self._integrity(environ, start_response, "get_new_form", values, clean, None)
        return self.representation.created(self, environ, start_response, row)

    def update(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        """Validate the body, update the row (if unchanged since read), answer with it."""
        request = Request.of(environ)
        request.collection_url  # noqa: B018 (NOTE: the URLs it answers with must build before a write)
        key = self._key(environ)
        values = request.values
        shown = dict(values, **{self.primary: request.id})
        clean, errors = self._convert(environ, values, creating=False)
        if errors:
            return self.representation.invalid(self, environ, start_response, "get_edit_form",
                                               shown, errors, 422)
        try:
            row = self.rows(environ).update_if(key, clean, precondition(request, values))
        except Changed as changed:
            return self.representation.conflict(self, environ, start_response, changed.row)
        except sa_exc.IntegrityError:
            return self._integrity(environ, start_response, "get_edit_form", shown, clean, key)
        return self.representation.updated(self, environ, start_response, row)

    def delete(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        """Delete the row (if unchanged since read)."""
        request = Request.of(environ)
        request.collection_url  # noqa: B018 (NOTE: the URLs it answers with must build before a write)
        key = self._key(environ)
        try:
            self.rows(environ).delete_if(key, precondition(request, request.values))
        except Changed as changed:
            return self.representation.conflict(self, environ, start_response, changed.row)
        return self.representation.deleted(self, environ, start_response, request.id)

    # --- what the defaults share ------------------------------------------------------------

    def _convert(self, environ: WSGIEnvironment, values: Mapping[str, Any],
                 creating: bool) -> tuple[dict[str, Any], dict[Any, str]]:
        request = environ.get("robaccia.request") or Request(environ)  # PERF: Request.of, inline
        clean, errors = validate(self.fields, values, creating=creating, form=request.is_form)
        if errors:
            return clean, dict(errors)
        try:
            replaced = self.validate(environ, clean)
        except Invalid as exc:
            return clean, exc.errors
        return (replaced if replaced is not None else clean), {}

    def _integrity(self, environ: WSGIEnvironment, start_response: StartResponse, form: str,
                   shown: dict[str, Any], clean: dict[str, Any], key: Any) -> Any:
        """Explain a unique violation field by field, where the table can tell."""
        errors: dict[Any, str] = dict(self.rows(environ).taken(clean, key))
        errors[None] = ("Another row already has this value." if errors else
                        "That change conflicts with existing data (a referenced row may be missing).")
        return self.representation.invalid(self, environ, start_response, form, shown, errors, 409)

    # --- the protocol -------------------------------------------------------------------------

    def default_result(self, environ: WSGIEnvironment, start_response: StartResponse, name: str) -> Any:
        if self.table is None:
            raise NotFound()
        default = library_default(type(self), name)
        if default is not None:
            return default(self, environ, start_response)
        # a noun handler of the user's that returned None
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            raise MethodNotAllowed(["GET", "HEAD", "OPTIONS"])
        if Request.of(environ).id:
            row = self._row(environ)
            return {"row": row, "etag": etag_of(row)}
        return {}

    def respond(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        request = environ.get("robaccia.request") or Request(environ)  # PERF: Request.of, inline
        method = environ.get("REQUEST_METHOD", "GET")
        if method in _UNSAFE:
            limits = self.limits or (request.project.limits if request.project is not None else None)
            values = request.read_values(self.parser, limits)
            override = values.pop("_method", None) if request.is_form else None
            # NOTE: the override is taken only from a POSTed form body and only
            # to PUT or DELETE; anything else leaves the method alone.
            if method == "POST" and isinstance(override, str) and override.upper() in _OVERRIDES:
                environ["REQUEST_METHOD"] = override.upper()
        # PERF: a plain try, not a context manager: this runs on every request.
        try:
            return super().respond(environ, start_response)
        except STATEMENT_ERRORS as exc:
            error = http_error(exc)
            if error is not None:
                raise error from exc
            self._explain(environ, exc)
            raise

    def _explain(self, environ: WSGIEnvironment, exc: BaseException) -> None:
        """Raise :class:`~robaccia.schema.SchemaMismatch` if the table lacks what the model has."""
        from robaccia.schema import SchemaMismatch, drift

        request = Request.of(environ)
        engine = self.engine or (request.project.engine if request.project is not None else None)
        if engine is None or self.table is None:
            return
        try:
            differences = drift(engine, [self.table])
        except Exception:  # the database may be down for this too: keep the first error
            return
        if differences:
            raise SchemaMismatch(differences) from exc

    def summary(self, environ: WSGIEnvironment, url: str) -> dict[str, Any]:
        """What the project's front page shows of this collection (at ``url``): New, a row count."""
        info: dict[str, Any] = {"new_url": None, "count": None}
        if self.ext == "html" and self.serves("get_new_form"):
            info["new_url"] = url + ";new_form"
        if self.table is not None:
            try:
                info["count"] = self.rows(environ).count(limit=SUMMARY_COUNT_LIMIT)
            except Exception:  # the front page must not fail for one collection
                logger.exception("Could not count the rows of %s", self.table.name)
        return info
